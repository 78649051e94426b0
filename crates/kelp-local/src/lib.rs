//! The single-machine Kelp platform behind `kelp up`: it takes desired Kubeless Functions and runs
//! them as `kelp-runtime` processes, with no container engine and no cluster.
//!
//! - [`materialise`] turns a [`kelp_api::FunctionSpec`] into a code directory the way Kubeless's
//!   `prepare` init container did (text, base64 or URL; single file, zip or compressed tar;
//!   bundled or separate dependency file; checksum), content-addressed under
//!   `<data>/code/<sha256>` and shared by every instance.
//! - [`Platform`] runs *instances*: one `kelp-runtime` process each, on a free loopback port, in
//!   its own cgroup (on Linux, where the platform may create one; else its own process group) and
//!   working directory, with Kubeless's environment contract, its output in a rotated
//!   per-instance log, restarted with back-off, killed (and restarted) when it exceeds
//!   `FUNC_MEMORY_LIMIT` (the cgroup's memory limit, else its process tree's resident memory).
//!   New instances come from a pool of pre-warmed `kelp-runtime --prewarm` processes per
//!   language. Functions scale between `min` and `max`
//!   instances on in-flight requests, to zero after an idle period, and roll over to new code
//!   without failing a request; a deployment with `start_now` starts an instance of new code at
//!   once rather than on its first request.
//! - [`Gateway`] forwards HTTP requests to a function's instances (short URL
//!   `/<namespace>/<function>/...`, HTTPTrigger [`Route`]s, or [`Platform::proxy`]), adding
//!   Kubeless's event headers.
//! - [`Platform::instances`], [`Platform::status`], [`Platform::logs`] and
//!   [`Platform::render_metrics`] are what the API layer shows as Pods, Function status, Pod logs
//!   and `/metrics`.
//!
//! Everything lives under [`PlatformConfig::data_dir`]: `code/` (materialised code), `cache/`
//! (`KELP_CACHE_DIR` of every instance: worker scripts and installed dependencies), `logs/<ns>/`
//! (`<instance>.log` and the rotated `<instance>.log.1`) and `run/<n>/` (each process's working
//! directory, removed when it exits, with the function's Secret and ConfigMap [`Volume`]s as files
//! in `run/<n>/volumes/`, named to the function by [`VOLUMES_DIR_VAR`]). What no live function
//! uses any more, and what crashed processes left behind, is removed ([`Platform::collect`]).

mod archive;
mod cgroup;
mod collect;
mod connect;
mod download;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gateway;
mod instance;
mod logs;
mod materialise;
mod memory;
mod metrics;
mod platform;
mod pool;
mod process;
mod procs;
mod scaler;
mod volumes;

pub use gateway::{EVENT_NAMESPACE, Gateway, GatewayBody, Route};
pub use instance::{InstanceInfo, Phase, Termination};
pub use logs::LogStream;
pub use materialise::{MaterialiseError, MaterialiseErrorKind, materialise};
pub use memory::{QuantityError, parse_quantity};
pub use platform::{FunctionDeployment, Platform, PlatformConfig, Scaling};
pub use scaler::{FunctionRunStatus, StepReport};
pub use volumes::{VOLUMES_DIR_VAR, Volume};

/// The HTTP client used for health probes, forwarding and downloads.
pub(crate) type HttpClient = hyper_util::client::legacy::Client<connect::Connector, http_body_util::Full<bytes::Bytes>>;

/// A new [`HttpClient`].
pub(crate) fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connect::Connector::new())
}

/// An environment shown by its names alone: its values may be resolved Secrets, which no
/// `Debug` output (a log line, a panic message) may carry.
pub(crate) struct EnvNames<'a>(pub(crate) &'a [(String, String)]);

impl std::fmt::Debug for EnvNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

/// Why the platform refused or could not do something.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The function's code could not be materialised.
    #[error(transparent)]
    Materialise(#[from] MaterialiseError),
    /// The function cannot run on this platform as specified.
    #[error("function {function}: {reason}")]
    Invalid {
        /// `<namespace>/<name>`.
        function: String,
        /// What is wrong.
        reason: String,
    },
    /// No running instance has this name.
    #[error("no instance {instance} in namespace {namespace}")]
    NoSuchInstance {
        /// The namespace looked in.
        namespace: String,
        /// The instance name asked for.
        instance: String,
    },
    /// A file or directory of the platform could not be used.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        cause: std::io::Error,
    },
}
