//! The extension point for what the supervisor of `kelp up` owns: Pods and Services (read-only
//! through the API), pod logs and the service proxy.

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use bytes::Bytes;
use futures_util::Stream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};

/// A boxed, sendable future (what [`Workloads`] methods return, so the trait stays
/// object-safe without `async_trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed, sendable stream that owns everything it needs.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// Why a [`Workloads`] call failed; each maps to a Kubernetes `Status`.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The pod, container or service does not exist (404 NotFound). The message is the whole
    /// Status message, e.g. `pods "hello-7d4b9" not found`.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served as asked (400 BadRequest), e.g. a `container` that is not
    /// in the pod.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing can serve it right now (503 ServiceUnavailable), e.g. a service with no running
    /// instance: `no endpoints available for service "hello"`.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500 InternalError).
    #[error("{0}")]
    Internal(String),
}

/// A change to a Pod or Service, for watches.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadEvent<T> {
    /// The object appeared.
    Added(T),
    /// The object changed.
    Modified(T),
    /// The object went away (its last state).
    Deleted(T),
}

/// The query parameters of `GET /api/v1/namespaces/{ns}/pods/{pod}/log`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `container`: which container (absent: the pod's only or first one).
    pub container: Option<String>,
    /// `follow`: keep the stream open and send new lines as they are written.
    pub follow: bool,
    /// `tailLines`: start with only the last N lines.
    pub tail_lines: Option<i64>,
    /// `previous`: the log of the previous (crashed) instance of the container.
    pub previous: bool,
    /// `timestamps`: prefix each line with an RFC 3339 timestamp.
    pub timestamps: bool,
    /// `sinceSeconds`: only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// `limitBytes`: stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// What the process supervisor of `kelp up` exposes through the Kubernetes API.
///
/// The API server serves, from an implementation of this trait:
///
/// | Path | Calls |
/// |---|---|
/// | `GET /api/v1/pods`, `GET /api/v1/namespaces/{ns}/pods` (list, `?watch=1`) | [`Workloads::list_pods`], [`Workloads::watch_pods`] |
/// | `GET /api/v1/namespaces/{ns}/pods/{name}` | [`Workloads::list_pods`] (filtered by name) |
/// | `GET /api/v1/services`, `GET /api/v1/namespaces/{ns}/services[/{name}]` (and watch) | [`Workloads::list_services`], [`Workloads::watch_services`] |
/// | `GET /api/v1/namespaces/{ns}/pods/{pod}/log` | [`Workloads::pod_logs`] |
/// | any method on `/api/v1/namespaces/{ns}/services/{svc}[:{port}]/proxy/{rest}` | [`Workloads::proxy`] |
///
/// Pods and Services are read-only: every write to them gets 405 MethodNotAllowed before the
/// trait is involved. The API server does the Kubernetes parts itself: label and field
/// selectors, `resourceVersion` of lists, the initial `ADDED` events of a watch, Table output
/// for `kubectl get`, Status errors. So an implementation only reports its own state:
///
/// - Return complete objects: `metadata.name`, `metadata.namespace`,
///   `metadata.creationTimestamp`, labels (so `-l function=hello` works), `status.phase`, and
///   `metadata.resourceVersion` as a decimal counter that grows with every change (any
///   counter, e.g. one shared by all pods and services). `apiVersion`/`kind` are filled in by
///   k8s-openapi's serialization.
/// - `watch_*` returns every change from the moment it is called (no initial snapshot); the
///   API server calls it *before* listing, so nothing falls between the list and the watch. A
///   watch resumed with `?resourceVersion=N` gets the listed objects whose resourceVersion is
///   above N as `ADDED`, then the changes; deletions made while no watch was open are not
///   replayed (clients re-list on reconnect anyway). The stream may end at any time; the
///   client reconnects.
/// - `pod_logs` returns the bytes of the log (lines ending in `\n`), honouring
///   [`LogOptions`]; with `follow`, the stream stays open until the instance exits or the
///   client goes away (the stream is then dropped).
/// - `proxy` receives the client's request with its URI rewritten to `/{rest}?{query}` (the
///   part after `/proxy`), method, headers and body untouched, and returns the instance's
///   response as is. `port` is the `:{port}` suffix of the service segment, a port name or
///   number, if the client gave one.
///
/// Implementations must be cheap to call concurrently (`&self`, `Send + Sync`).
/// Every method has a default that shows nothing running; [`NoWorkloads`] uses them all.
pub trait Workloads: Send + Sync + 'static {
    /// The pods in `namespace`, or in every namespace when `None`. Default: none.
    fn list_pods<'a>(&'a self, _namespace: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Pod>, WorkloadError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The services in `namespace`, or in every namespace when `None`. Default: none.
    fn list_services<'a>(&'a self, _namespace: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Service>, WorkloadError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The deployments in `namespace`, or in every namespace when `None`. Default: none.
    fn list_deployments<'a>(
        &'a self,
        _namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Deployment>, WorkloadError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Every deployment change from now on, in every namespace. Default: never any.
    fn watch_deployments(&self) -> BoxStream<WorkloadEvent<Deployment>> {
        Box::pin(futures_util::stream::pending())
    }

    /// Every pod change from now on, in every namespace. Default: never any.
    fn watch_pods(&self) -> BoxStream<WorkloadEvent<Pod>> {
        Box::pin(futures_util::stream::pending())
    }

    /// Every service change from now on, in every namespace. Default: never any.
    fn watch_services(&self) -> BoxStream<WorkloadEvent<Service>> {
        Box::pin(futures_util::stream::pending())
    }

    /// The log of a pod's container. Default: the pod does not exist.
    fn pod_logs<'a>(
        &'a self,
        _namespace: &'a str,
        pod: &'a str,
        _options: LogOptions,
    ) -> BoxFuture<'a, Result<BoxStream<Result<Bytes, std::io::Error>>, WorkloadError>> {
        Box::pin(async move { Err(WorkloadError::NotFound(format!("pods \"{pod}\" not found"))) })
    }

    /// Forwards `request` to the service `service` in `namespace` (on `port`, if given) and
    /// returns its response. Default: 503, no endpoints.
    fn proxy<'a>(
        &'a self,
        _namespace: &'a str,
        service: &'a str,
        _port: Option<&'a str>,
        _request: http::Request<Body>,
    ) -> BoxFuture<'a, Result<http::Response<Body>, WorkloadError>> {
        Box::pin(
            async move { Err(WorkloadError::Unavailable(format!("no endpoints available for service \"{service}\""))) },
        )
    }
}

/// The [`Workloads`] with nothing running: no pods, no services, no logs; the proxy answers
/// 503 ServiceUnavailable (every default of the trait).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWorkloads;

impl Workloads for NoWorkloads {}
