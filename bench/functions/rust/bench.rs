//! Benchmark functions for bench/compiled.sh (Kelp's Rust signature).

use kelp::{Context, Data, Event, Value};

pub fn hello(_event: Event, _context: Context) -> kelp::Result<&'static str> {
    Ok("hello world")
}

/// For a JSON POST the data is the decoded value, re-serialized as JSON, as the Python and
/// Node.js echo functions do.
pub fn echo(event: Event, _context: Context) -> kelp::Result<Value> {
    match event.data {
        Data::Json(value) => Ok(value),
        Data::Raw(_) => Err(kelp::Error::msg("send JSON")),
    }
}
