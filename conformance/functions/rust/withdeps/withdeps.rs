//! Uses a dependency from Cargo.toml (hex 0.4.3, from crates.io).

pub fn check(_event: kelp::Event, _context: kelp::Context) -> kelp::Result<String> {
    Ok(if hex::encode("ok") == "6f6b" { "deps ok".into() } else { "unexpected hex".into() })
}
