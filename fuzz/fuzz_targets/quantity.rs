//! Kubernetes quantities: a Function's memory limit (`FUNC_MEMORY_LIMIT`, the container's
//! `resources.limits.memory`), as `kelp up`'s memory watchdog reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = kelp_local::parse_quantity(text);
});
