//! A function's library (`KELP_IN_PROCESS=1`): a compiled language's build may hold the function
//! as a library ([`Build::library`](crate::language::Build::library): Rust's and Go's
//! `kelp-function.so`), which the front loads into its own process and calls on its own threads
//! ([`crate::in_process`]). The calls are the frames of `runtimes/PROTOCOL.md`, passed through the
//! C ABI of `runtimes/rust/kelp/src/native.rs` (and `runtimes/go/native.go`).
//!
//! The one module of Kelp with `unsafe` code (the workspace denies it elsewhere): loading a
//! library and calling it through C cannot be done otherwise. Each block says what it relies on.
#![allow(unsafe_code)]

use crate::protocol::{self, FromWorker, ProtocolError};
use bytes::BytesMut;
use std::ffi::{CString, c_void};
use std::path::Path;

/// The ABI version this front speaks (`kelp::native::ABI`).
const ABI: u32 = 1;

/// An answer frame of the library (`kelp::native::Frame`).
#[repr(C)]
struct RawFrame {
    ptr: *mut u8,
    len: usize,
}

/// A function library, loaded for the life of the process (never unloaded: the function's
/// threads and thread-locals may outlive any call).
pub struct Library {
    call: unsafe extern "C" fn(*const u8, usize) -> RawFrame,
    free: unsafe extern "C" fn(RawFrame),
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Library")
    }
}

impl Library {
    /// Loads the library at `path` and checks its ABI version.
    pub fn open(path: &Path) -> Result<Library, String> {
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{}: a path with a NUL byte", path.display()))?;
        // SAFETY: dlopen takes a NUL-terminated path; the library's initialisers are the Rust
        // standard library's and the function's (a Rust crate has no life before main).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("cannot load {}: {}", path.display(), dl_error()));
        }
        let symbol = |name: &str| -> Result<*mut c_void, String> {
            let c = CString::new(name).expect("symbol names have no NUL");
            // SAFETY: `handle` is a live handle from dlopen.
            let found = unsafe { libc::dlsym(handle, c.as_ptr()) };
            if found.is_null() {
                Err(format!("{}: no symbol {name}: {}", path.display(), dl_error()))
            } else {
                Ok(found)
            }
        };
        // SAFETY: the symbols are those `kelp::export!` defines, with these signatures.
        let (abi, call, free) = unsafe {
            (
                std::mem::transmute::<*mut c_void, extern "C" fn() -> u32>(symbol("kelp_native_abi")?),
                std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*const u8, usize) -> RawFrame>(symbol(
                    "kelp_native_call",
                )?),
                std::mem::transmute::<*mut c_void, unsafe extern "C" fn(RawFrame)>(symbol("kelp_native_free")?),
            )
        };
        match abi() {
            ABI => Ok(Library { call, free }),
            other => Err(format!("{}: ABI version {other}, this kelp-runtime speaks {ABI}", path.display())),
        }
    }

    /// Sends one frame (`load` or `invoke`) and returns the answer.
    pub fn call(&self, frame: &[u8]) -> Result<(FromWorker, bytes::Bytes), ProtocolError> {
        // SAFETY: `frame` is live for the call; the answer is read, then given back once.
        let mut answer = unsafe {
            let raw = (self.call)(frame.as_ptr(), frame.len());
            let copy = BytesMut::from(std::slice::from_raw_parts(raw.ptr, raw.len));
            (self.free)(raw);
            copy
        };
        protocol::take_frame(&mut answer)?
            .ok_or_else(|| ProtocolError::Invalid("the function's library answered an incomplete frame".into()))
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: as above.
        unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy().into_owned()
    }
}
