//! The tests of `kelp-local`: the materialiser on every content type, and the platform end to end
//! with real `kelp-runtime` processes (Python 3 and Node.js), free ports and temporary
//! directories.
//!
//! The runtime binary is `target/<profile>/kelp-runtime` next to this test binary, built with
//! `cargo build -p kelp-runtime` when it is missing or older than the runtime's sources;
//! `KELP_RUNTIME_BIN` names another one (see `support::runtime_bin`).

mod collect;
mod materialise;
mod platform;
mod private;
mod support;
