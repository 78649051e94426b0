//! Never runs: its Cargo.toml names a crate that does not exist.

pub fn check(_event: kelp::Event, _context: kelp::Context) -> kelp::Result<&'static str> {
    Ok("unreachable")
}
