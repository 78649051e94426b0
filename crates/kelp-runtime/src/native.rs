//! In-process functions (`KELP_IN_PROCESS=1`): a compiled language's build may hold the function
//! as a library ([`Build::library`](crate::language::Build::library): Rust's and Go's
//! `kelp-function.so`),
//! which the front loads into its own process and calls on threads of its own, one per worker,
//! instead of through a worker process and its socket. The calls are the frames of
//! `runtimes/PROTOCOL.md`, passed through the C ABI of `runtimes/rust/kelp/src/native.rs` (and
//! `runtimes/go/native.go`), so a
//! call costs a function call and two thread wake-ups instead of two socket writes, two reads
//! and the wake-ups of a second process.
//!
//! What the function gives up for that: its own process. A panic is still answered 500, but a
//! function that exits or aborts takes the front with it (the instance restarts, as a pod's
//! container does), and a call past the timeout is answered 408 while its thread, which nothing
//! can stop, is left to finish: after [`MAX_ABANDONED`] such threads still running, the front
//! exits so that the instance is restarted with none.
//!
//! The one module of Kelp with `unsafe` code (the workspace denies it elsewhere): loading a
//! library and calling it through C cannot be done otherwise. Each block says what it relies on.
#![allow(unsafe_code)]

use crate::protocol::{self, FromWorker, ProtocolError};
use crate::worker::{Call, CallError, ConnState, hand_back, outcome};
use bytes::BytesMut;
use std::ffi::{CString, c_void};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The ABI version this front speaks (`kelp::native::ABI`).
const ABI: u32 = 1;
/// Calls left running past their timeout, in the whole process, beyond which the front exits.
pub const MAX_ABANDONED: usize = 4;
/// The stack of a function thread: what a worker process's main thread has.
const STACK: usize = 8 << 20;

/// Threads still running a call that timed out.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

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

/// What a function thread is doing.
const IDLE: u8 = 0;
const BUSY: u8 = 1;
/// Its call ran past the timeout: the thread is left to finish and then ends.
const ABANDONED_CALL: u8 = 2;
/// Stopped while idle.
const STOPPED: u8 = 3;

/// The life of one in-process worker: its thread's state, its queue of calls, and what runs once
/// it is over.
pub(crate) struct Life {
    state: AtomicU8,
    /// Held by the thread while it waits for a call, free while it runs one: a worker killed in
    /// a call hands the calls queued behind it back (they never started) at once.
    queue: Mutex<Option<mpsc::UnboundedReceiver<Call>>>,
    on_exit: Mutex<Option<OnExit>>,
}

/// What runs once a worker has ended.
type OnExit = Box<dyn FnOnce(ExitStatus) + Send>;

impl std::fmt::Debug for Life {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Life").field("state", &self.state.load(Ordering::Acquire)).finish()
    }
}

impl Life {
    /// A worker that has not ended; `on_exit` runs once when it does.
    pub(crate) fn new(on_exit: impl FnOnce(ExitStatus) + Send + 'static) -> Arc<Life> {
        Arc::new(Life {
            state: AtomicU8::new(IDLE),
            queue: Mutex::new(None),
            on_exit: Mutex::new(Some(Box::new(on_exit))),
        })
    }

    /// Whether it has ended (stopped, or its call abandoned).
    pub(crate) fn ended(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), ABANDONED_CALL | STOPPED)
    }

    /// Ends it: a call it runs is abandoned to its thread. Past [`MAX_ABANDONED`] such calls
    /// still running, the process exits (nothing else stops a thread that never returns).
    pub(crate) fn kill(&self) {
        if self.state.compare_exchange(BUSY, ABANDONED_CALL, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            let abandoned = ABANDONED.fetch_add(1, Ordering::AcqRel) + 1;
            if abandoned > MAX_ABANDONED {
                tracing::error!(
                    abandoned,
                    "calls of the in-process function are still running past their timeout; exiting so that the \
                     instance restarts without them (KELP_IN_PROCESS=1)"
                );
                std::process::exit(70);
            }
        } else {
            let _ = self.state.compare_exchange(IDLE, STOPPED, Ordering::AcqRel, Ordering::Acquire);
        }
        // Taken unless the thread waits on it, and then it hands them back itself.
        if let Ok(mut queue) = self.queue.try_lock()
            && let Some(queue) = queue.take()
        {
            hand_back(queue);
        }
        self.exited(ExitStatus::from_raw(libc::SIGKILL));
    }

    fn exited(&self, status: ExitStatus) {
        let on_exit = self.on_exit.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(on_exit) = on_exit {
            on_exit(status);
        }
    }
}

/// The next call for `life`'s thread, waiting for it; `None` once the queue is closed or taken.
fn next_call(life: &Life) -> Option<Call> {
    let mut queue = life.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    queue.as_mut()?.blocking_recv()
}

/// Starts the thread of one in-process worker: it runs the calls of `queue` one after the other
/// until the queue closes (every handle dropped) or the worker is killed. The thread is in the
/// caller's Tokio runtime's context, where the pool's callbacks start tasks.
pub(crate) fn serve(
    library: Arc<Library>,
    life: Arc<Life>,
    queue: mpsc::UnboundedReceiver<Call>,
    state: Arc<ConnState>,
    done: impl Fn(Duration) + Send + 'static,
) {
    *life.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(queue);
    let thread = life.clone();
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new().name("kelp-function".into()).stack_size(STACK).spawn(move || {
        let _runtime = runtime.enter();
        let life = thread;
        while let Some(call) = next_call(&life) {
            if life.state.compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire).is_err() {
                let _ = call.reply.send(Err(CallError::NotStarted(call.frame)));
                break;
            }
            let started = Instant::now();
            let answer = library.call(&call.frame);
            if life.state.compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire).is_err() {
                // Abandoned at its timeout: the front answered and replaced this worker.
                ABANDONED.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            let now = Instant::now();
            state.answered(now);
            let _ = call.reply.send(answer.and_then(outcome).map_err(CallError::Lost));
            done(now - started);
        }
        let queue = life.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(queue) = queue {
            hand_back(queue);
        }
        let _ = life.state.compare_exchange(IDLE, STOPPED, Ordering::AcqRel, Ordering::Acquire);
        life.exited(ExitStatus::from_raw(0));
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a thread for the in-process function");
        life.kill();
    }
}
