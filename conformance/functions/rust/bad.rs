//! A module that does not compile (a name that is not defined), for the build and load failure
//! checks.

pub fn hello(_event: kelp::Event, _context: kelp::Context) -> kelp::Result<String> {
    Ok(greeting)
}
