//! Frames a language worker sends to the front (`runtimes/PROTOCOL.md`): lengths, JSON header,
//! body, read by `kelp-runtime`'s `protocol::FrameReader` until the input runs out. The worker
//! runs user code, so every byte of it is untrusted.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::{Builder, Runtime};

static RUNTIME: LazyLock<Runtime> =
    LazyLock::new(|| Builder::new_current_thread().build().expect("a current-thread runtime"));

fuzz_target!(|data: &[u8]| {
    RUNTIME.block_on(async {
        let mut frames = kelp_runtime::protocol::FrameReader::new(data);
        // Every frame read consumes at least its two 4-byte lengths, so this ends.
        while frames.next().await.is_ok() {}
    });
});
