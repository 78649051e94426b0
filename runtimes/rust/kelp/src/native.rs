//! The function as a library loaded into the `kelp-runtime` front (`KELP_IN_PROCESS=1`): the
//! front calls it directly, on the threads that read the requests, instead of through a worker
//! process and its socket. The messages are those of `runtimes/PROTOCOL.md`, passed as whole
//! frames through a C ABI that [`export!`](crate::export) defines in the function's library:
//!
//! - `kelp_native_abi() -> u32`: [`ABI`]; the front refuses a library of another version.
//! - `kelp_native_call(frame, len) -> Frame`: a `load` frame answered with `loaded` or
//!   `load_error`, or an `invoke` frame answered with its `result`. Any thread, concurrently.
//! - `kelp_native_free(Frame)`: gives back an answer once the front has read it.
//!
//! The function runs inside the front's process: a panic is caught and answered 500 as in a
//! worker, but a function that exits or aborts the process takes the front (the instance) with
//! it, and one that never returns keeps its thread (the front answers 408 and starts another).

use crate::Handler;
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

/// The version of the ABI this crate exports.
pub const ABI: u32 = 1;

/// An answer frame handed to the front: a boxed byte slice it gives back with
/// `kelp_native_free`.
#[repr(C)]
pub struct Frame {
    /// The first byte.
    pub ptr: *mut u8,
    /// The length in bytes.
    pub len: usize,
}

/// The context of the function, set by the first `load`.
static CONTEXT: OnceLock<Result<crate::Context, String>> = OnceLock::new();

/// Answers one frame from the front for the function `module.handler` (what
/// `kelp_native_call` does).
pub fn call(module: &str, handler: &str, function: &impl Handler, input: &[u8]) -> Frame {
    let answer = catch_unwind(AssertUnwindSafe(|| answer(module, handler, function, input)))
        .unwrap_or_else(|_| failed("the function's library panicked outside the function"));
    let boxed = answer.into_boxed_slice();
    let len = boxed.len();
    Frame { ptr: Box::into_raw(boxed).cast::<u8>(), len }
}

/// Gives back a frame [`call`] returned (what `kelp_native_free` does).
///
/// # Safety
/// `frame` is one [`call`] returned, given back once.
pub unsafe fn free(frame: Frame) {
    // SAFETY: the caller gives back a box `call` made, whole, once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(frame.ptr, frame.len)) });
}

fn answer(module: &str, handler: &str, function: &impl Handler, input: &[u8]) -> Vec<u8> {
    let Some((header, body)) = decode(input) else {
        return failed("a frame from the front could not be read");
    };
    match header.get("type").and_then(Value::as_str) {
        Some("load") => {
            let context = CONTEXT.get_or_init(|| crate::worker::loaded(&header, module, handler));
            match context {
                Ok(_) => frame(&json!({"type": "loaded"}), &[]),
                Err(e) => frame(&crate::worker::load_error(e), &[]),
            }
        }
        Some("invoke") => match CONTEXT.get() {
            Some(Ok(context)) => {
                let (header, body) = crate::worker::invoke(&header, body.to_vec(), context, function, module, handler);
                // What the function printed without a newline yet is in the log before its response.
                let _ = std::io::Write::flush(&mut std::io::stdout());
                frame(&header, &body)
            }
            _ => failed("invoked before the function was loaded"),
        },
        other => failed(&format!("unexpected message {other:?}")),
    }
}

/// A frame's header and body.
fn decode(input: &[u8]) -> Option<(Value, &[u8])> {
    let (len, rest) = input.split_first_chunk::<4>()?;
    let (header, rest) = rest.split_at_checked(u32::from_be_bytes(*len) as usize)?;
    let (len, body) = rest.split_first_chunk::<4>()?;
    let body = body.get(..u32::from_be_bytes(*len) as usize)?;
    Some((serde_json::from_slice(header).ok()?, body))
}

fn frame(header: &Value, body: &[u8]) -> Vec<u8> {
    crate::worker::encode(header, body).unwrap_or_else(|e| failed(&e.to_string()))
}

/// A failed `result` (500) with `text` as its body.
fn failed(text: &str) -> Vec<u8> {
    let (header, body) = crate::worker::failure_result(text);
    crate::worker::encode(&header, &body).unwrap_or_default()
}

/// Exports the function `$module::$handler` of the crate through the C ABI of [`native`](self):
/// what the library Kelp generates for each Rust function holds.
#[macro_export]
macro_rules! export {
    ($module:literal, $handler:literal, $function:path) => {
        /// The ABI version (`kelp::native::ABI`).
        #[unsafe(no_mangle)]
        pub extern "C" fn kelp_native_abi() -> u32 {
            $crate::native::ABI
        }

        /// Answers one frame of `runtimes/PROTOCOL.md`.
        ///
        /// # Safety
        /// `frame` points to `len` readable bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn kelp_native_call(frame: *const u8, len: usize) -> $crate::native::Frame {
            // SAFETY: the front passes a live buffer of `len` bytes.
            let input = unsafe { ::std::slice::from_raw_parts(frame, len) };
            $crate::native::call($module, $handler, &$function, input)
        }

        /// Gives back an answer of `kelp_native_call`.
        ///
        /// # Safety
        /// `frame` is an answer of `kelp_native_call`, given back once.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn kelp_native_free(frame: $crate::native::Frame) {
            // SAFETY: as the caller promises.
            unsafe { $crate::native::free(frame) }
        }
    };
}
