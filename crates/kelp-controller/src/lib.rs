//! The Kelp controller: runs in a Kubernetes cluster and reconciles the `kubeless.io/v1beta1`
//! objects into native Kubernetes objects, where Kubeless users expect them.
//!
//! - A Function becomes a ConfigMap, a Deployment, a Service and optionally a
//!   HorizontalPodAutoscaler, all named after it ([`function`]).
//! - An HTTPTrigger becomes an Ingress, a CronJobTrigger a CronJob ([`triggers`]).
//! - KafkaTriggers and NATSTriggers are served by the second binary, `kelp-triggers`
//!   ([`events`]): consumers that call the functions' Services.
//!
//! What each object looks like is decided by the pure planner in `kelp-plan`; this crate is the
//! thin loop around it: watch, plan, check for conflicts, server-side apply, write the status,
//! publish Events on failures. Children carry owner references, and so do triggers (to their
//! function), so the cluster's garbage collector deletes them with their owner; the controller
//! adds no finalizer, and takes Kubeless's off the objects that carry one ([`finalizer`]).

pub mod apply;
pub mod backoff;
pub mod context;
pub mod events;
pub mod finalizer;
pub mod function;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod server;
pub mod settings;
pub mod status;
pub mod triggers;

/// Logs to stderr, filtered by `KELP_LOG` (`info` by default), as both binaries do.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KELP_LOG").unwrap_or_else(|_| "info,kube_runtime=warn".into()),
        )
        .init();
}

/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "kelp-controller";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {}", api_message(.0))]
    Kube(#[from] kube::Error),
    /// The object cannot be turned into its children (unknown runtime, bad template, ...).
    #[error("{0}")]
    Plan(#[from] kelp_plan::PlanError),
    /// An object the controller would create exists and was not made by Kelp or Kubeless.
    #[error(
        "found a conflicting {kind} {namespace}/{name} that Kelp did not create (no `created-by: kubeless` label); \
         rename the function or delete that object"
    )]
    Conflict {
        /// The child's kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A trigger names a function that does not exist.
    #[error("function {namespace}/{name} not found")]
    FunctionNotFound {
        /// The trigger's namespace.
        namespace: String,
        /// The function it names.
        name: String,
    },
}

impl Error {
    /// A short PascalCase reason: the status condition's `reason`, the Event's reason and the
    /// `reason` label of the error metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "ApiError",
            Error::Plan(_) => "InvalidSpec",
            Error::Conflict { .. } => "Conflict",
            Error::FunctionNotFound { .. } => "FunctionNotFound",
        }
    }
}

/// What the API server said (its `Status` message alone), or the client error.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
