//! What the fuzz targets share: an allocator that turns one oversized allocation into a finding,
//! and the API server's admission of an object of any kind.
//!
//! libFuzzer's `-malloc_limit_mb` needs a sanitizer's allocator hooks, and these targets are
//! built without a sanitizer (Kelp forbids `unsafe` code, and sanitizers need a nightly
//! compiler), so [`Bounded`] enforces the same rule: a single allocation above
//! [`MAX_ALLOCATION`] aborts the run with a message, and libFuzzer saves the input as a crash.
//! A parser that sizes a buffer from a length it read (rather than from the bytes it got) is
//! found this way even when the operating system would hand out the memory lazily.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::Arc;

use kelp_apiserver::{Backend, Kind, Kinds};
use serde_json::Value;

/// The largest single allocation a parser may make while handling one fuzz input.
pub const MAX_ALLOCATION: usize = 256 << 20;

/// The system allocator, aborting on any allocation larger than [`MAX_ALLOCATION`].
pub struct Bounded;

fn check(layout: Layout) {
    if layout.size() > MAX_ALLOCATION {
        // No allocation here: write a fixed message, then abort (libFuzzer reports the signal
        // and saves the input).
        let _ = std::io::stderr().write_all(b"kelp-fuzz: an allocation above MAX_ALLOCATION (256 MiB)\n");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator after a size check that
// never allocates, so `Bounded` upholds exactly `System`'s contract.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(Layout::from_size_align(new_size, layout.align()).unwrap_or(layout));
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// The kinds the API server stores (and so accepts in a create or an apply).
pub fn writable_kinds() -> Vec<Arc<Kind>> {
    Kinds::new().all().iter().filter(|k| k.backend == Backend::Store).cloned().collect()
}

/// Admits `object` as a create in `default` would: as the kind it names when the server serves
/// that kind, else as each writable kind in turn (so a mutated `kind` still reaches every
/// validator). Nothing is asserted but that admission answers.
pub fn admit_any(kinds: &[Arc<Kind>], object: &Value) {
    let named = object.get("kind").and_then(Value::as_str);
    let mut matching = kinds.iter().filter(|k| Some(k.kind.as_str()) == named).peekable();
    if matching.peek().is_some() {
        matching.for_each(|kind| admit(kind, object));
    } else {
        kinds.iter().for_each(|kind| admit(kind, object));
    }
}

fn admit(kind: &Kind, object: &Value) {
    if let Ok(stored) = kelp_apiserver::fuzzing::admit(kind, "default", object.clone()) {
        // What was admitted is admitted again unchanged: admission is idempotent.
        let again = kelp_apiserver::fuzzing::admit(kind, "default", stored.clone());
        assert!(again.is_ok(), "{}: an admitted object is refused when sent again: {stored}", kind.kind);
    }
}
