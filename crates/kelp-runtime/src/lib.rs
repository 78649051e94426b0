//! The Kelp function runtime.
//!
//! `kelp-runtime` is a drop-in for Kubeless's runtime images: it reads the Kubeless environment
//! contract ([`config`]), serves `/healthz`, `/metrics` and the function on `FUNC_PORT`
//! ([`server`]), and calls `handler(event, context)` in language workers ([`worker`], [`pool`])
//! that speak the protocol in `runtimes/PROTOCOL.md` ([`protocol`]), or in the front's own process
//! ([`in_process`], [`native`]). Languages are built in
//! ([`language`]) or plugins ([`plugin`]); their dependencies are installed once per content ([`deps`]). Process groups of children are
//! killed only once verified ([`group`]).

pub mod access_log;
pub mod build;
pub mod compiled;
pub mod config;
pub mod deps;
pub mod event;
pub mod group;
pub mod in_process;
pub mod language;
pub mod metrics;
pub mod native;
pub mod plugin;
pub mod pool;
pub mod protocol;
pub mod server;
pub mod worker;
