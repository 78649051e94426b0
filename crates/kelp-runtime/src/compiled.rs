//! The compiled languages: each module is one [`Language`](crate::language::Language) whose
//! `build` turns the function's code and Kelp's wrapper (under `runtimes/<language>/`) into a
//! worker program speaking `runtimes/PROTOCOL.md` (`crate::build`).

pub mod go;
pub mod java;
pub mod rust;
