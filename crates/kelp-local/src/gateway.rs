//! The HTTP gateway: finds the function a request is for (an HTTPTrigger [`Route`], or the short
//! URL `/<namespace>/<function>/<rest>`), adds Kubeless's event headers, and forwards it to the
//! least busy ready instance, streaming the response back.

use crate::platform::Shared;
use crate::scaler::Function;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use kelp_api::error_chain;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The `event-namespace` the gateway sets (Kubeless's senders each had one, such as
/// `cli.kubeless.io`).
pub const EVENT_NAMESPACE: &str = "gateway.kelp.dev";

/// The body of a gateway response.
pub type GatewayBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// How often a request whose instance vanished before it was sent is tried on another one.
const CONNECT_ATTEMPTS: usize = 3;

/// An HTTPTrigger's route: requests for `host` (any host when `None`) whose path starts with
/// `path_prefix` (by whole segments) go to `namespace/function`, with their path replaced by
/// `rewrite_target` when set (the query is kept), as nginx's `rewrite-target` does. The longest
/// prefix wins; between equal prefixes, a route with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The Host to match (case-insensitive, without port), or any.
    pub host: Option<String>,
    /// The path prefix, e.g. `/` or `/api/hello`.
    pub path_prefix: String,
    /// The function's namespace.
    pub namespace: String,
    /// The function's name.
    pub function: String,
    /// The whole path the function sees instead of the request's (`None`: the request's).
    pub rewrite_target: Option<String>,
}

/// The gateway service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Gateway { shared }
    }

    /// Serves HTTP/1 on `listener` until `shutdown` completes, then lets open requests finish.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new());
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), self.clone()));
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }

    /// Routes and forwards one request: a matching [`Route`] first (path rewritten if it says
    /// so), then the short URL
    /// `/<namespace>/<function>/<rest>` (forwarded as `/<rest>` with the query).
    pub async fn handle<B>(&self, request: Request<B>) -> Response<GatewayBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let host = request
            .uri()
            .host()
            .or_else(|| request.headers().get(header::HOST).and_then(|h| h.to_str().ok()))
            .map(|h| h.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(h, |(h, _)| h).to_owned());
        let path = request.uri().path().to_owned();
        let routed = self.route(host.as_deref(), &path);
        let (namespace, name, forwarded_path) = match routed {
            Some((ns, name, rewrite_target)) => (ns, name, rewrite_target.unwrap_or(path)),
            None => match short_url(&path) {
                Some((ns, name, rest)) => (ns.to_owned(), name.to_owned(), rest.to_owned()),
                None => {
                    return text(
                        StatusCode::NOT_FOUND,
                        format!("no function for {path}: use /<namespace>/<function>/... or an HTTPTrigger route"),
                    );
                }
            },
        };
        let (mut parts, body) = request.into_parts();
        let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        parts.uri = Uri::try_from(format!("{forwarded_path}{query}")).unwrap_or_else(|_| Uri::from_static("/"));
        self.proxy(&namespace, &name, Request::from_parts(parts, body)).await
    }

    /// Forwards `request` as it is (path and query included) to `namespace/name`. The request
    /// body is read whole first (so that a request whose instance vanished can go to another),
    /// up to the function's own body limit (`REQ_MB_LIMIT`, default 100 MiB): a larger one is
    /// answered 413 as soon as it is known to be larger, without reading the rest. The response
    /// is streamed.
    pub async fn proxy<B>(&self, namespace: &str, name: &str, request: Request<B>) -> Response<GatewayBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(function) = self.shared.function(namespace, name) else {
            return text(StatusCode::NOT_FOUND, format!("function {namespace}/{name} not found"));
        };
        let (mut parts, body) = request.into_parts();
        let limit = function.max_body();
        let too_large = || {
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body larger than {limit} bytes, the body limit of function {namespace}/{name} (REQ_MB_LIMIT)"
                ),
            )
        };
        let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return too_large();
        }
        // Held until the request is forwarded: the body's share of the gateway's buffer budget.
        let budget = &self.shared.body_budget;
        let (body, _reserved) = match buffer(budget, body, limit, self.shared.config.body_idle_timeout).await {
            Ok(buffered) => buffered,
            Err(Unbuffered::TooLarge) => return too_large(),
            Err(Unbuffered::Busy) => {
                let mut busy = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the gateway holds {} MiB of request bodies already, its most; retry",
                        self.shared.config.body_buffer_budget >> 20
                    ),
                );
                busy.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return busy;
            }
            Err(Unbuffered::Stalled(idle)) => {
                let seconds = idle.as_secs_f64();
                return text(StatusCode::REQUEST_TIMEOUT, format!("no more of the request body came in {seconds} s"));
            }
            Err(Unbuffered::Read(e)) => return text(StatusCode::BAD_REQUEST, format!("reading the request body: {e}")),
        };
        strip_hop_by_hop(&mut parts.headers);
        add_event_headers(&mut parts.headers);
        forward(&self.shared, &function, &parts, body).await
    }

    /// The function of the best route for `host` and `path`, and the route's rewrite target.
    fn route(&self, host: Option<&str>, path: &str) -> Option<(String, String, Option<String>)> {
        let routes = self.shared.routes.read().unwrap();
        routes
            .iter()
            .filter(|r| r.host.as_deref().is_none_or(|h| host.is_some_and(|host| host.eq_ignore_ascii_case(h))))
            .filter(|r| prefix_matches(&r.path_prefix, path))
            .max_by_key(|r| (r.path_prefix.trim_end_matches('/').len(), r.host.is_some()))
            .map(|r| (r.namespace.clone(), r.function.clone(), r.rewrite_target.clone()))
    }
}

impl hyper::service::Service<Request<Incoming>> for Gateway {
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let gateway = self.clone();
        Box::pin(async move { Ok(gateway.handle(req).await) })
    }
}

/// Sends the request to a ready instance (starting one if needed); a request that could not
/// reach its instance (it just exited) is tried on another.
async fn forward(
    shared: &Arc<Shared>,
    function: &Function,
    parts: &http::request::Parts,
    body: Bytes,
) -> Response<GatewayBody> {
    let target = format!("function {}/{}", function.namespace, function.name);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    for attempt in 1..=CONNECT_ATTEMPTS {
        let lease = match function.acquire(shared).await {
            Ok(lease) => lease,
            Err(unavailable) => return text(StatusCode::SERVICE_UNAVAILABLE, unavailable.0),
        };
        let Some(base) = lease.base() else { continue };
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = parts.method.clone();
        *req.headers_mut() = parts.headers.clone();
        *req.uri_mut() = match Uri::try_from(format!("{base}{path}")) {
            Ok(uri) => uri,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request path {path:?}: {e}")),
        };
        match shared.client.request(req).await {
            Ok(response) => {
                let (mut parts, incoming) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                // The lease lives as long as the body: the instance counts the request in flight
                // until the response has been streamed.
                let body = incoming.map_frame(move |frame| {
                    let _ = &lease;
                    frame
                });
                return Response::from_parts(parts, body.map_err(Into::into).boxed());
            }
            Err(e) if e.is_connect() && attempt < CONNECT_ATTEMPTS => {
                tracing::debug!(instance = %lease.instance().name, error = %e, "instance unreachable; retrying");
            }
            Err(e) => return text(StatusCode::BAD_GATEWAY, format!("{target}: {}", error_chain(&e))),
        }
    }
    text(StatusCode::BAD_GATEWAY, format!("{target}: no instance could be reached"))
}

/// `/<namespace>/<function>/<rest>` → (namespace, function, `/<rest>`).
fn short_url(path: &str) -> Option<(&str, &str, &str)> {
    let path = path.strip_prefix('/')?;
    let (namespace, rest) = path.split_once('/')?;
    let (function, rest) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!namespace.is_empty() && !function.is_empty()).then_some((namespace, function, rest))
}

/// Whether `path` is `prefix` or under it, by whole segments.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// Sets `event-id`, `event-time`, `event-type` and `event-namespace` unless the caller did:
/// 11 random bytes in base64url, RFC 3339 UTC, the request's Content-Type (or
/// `application/x-www-form-urlencoded` without one, as `kubeless function call` sent) and
/// [`EVENT_NAMESPACE`].
fn add_event_headers(headers: &mut HeaderMap) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/x-www-form-urlencoded"));
    let mut id = [0u8; 11];
    // The kernel's random source does not fail on Linux once booted.
    let _ = getrandom::fill(&mut id);
    let now = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
        .unwrap_or_default();
    let defaults = [
        ("event-id", HeaderValue::from_str(&base64::engine::general_purpose::URL_SAFE.encode(id)).ok()),
        ("event-time", HeaderValue::from_str(&now).ok()),
        ("event-type", Some(content_type)),
        ("event-namespace", Some(HeaderValue::from_static(EVENT_NAMESPACE))),
    ];
    for (name, value) in defaults {
        if let (false, Some(value)) = (headers.contains_key(name), value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Removes the headers that belong to one connection, not to the request.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Why a request body was not buffered.
enum Unbuffered {
    /// Larger than the function's limit.
    TooLarge,
    /// The gateway's budget of buffered bodies is spent.
    Busy,
    /// No more of it came within the idle timeout.
    Stalled(Duration),
    /// Reading it failed.
    Read(String),
}

/// Reads `body` whole, up to `limit` bytes, each piece within `idle` of the one before, taking its
/// size (in KiB, rounded up) from `budget` as it arrives; the permit returned holds that share until
/// it is dropped.
async fn buffer<B>(
    budget: &Arc<tokio::sync::Semaphore>,
    body: B,
    limit: usize,
    idle: Duration,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), Unbuffered>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let (mut length, mut held) = (0usize, None::<tokio::sync::OwnedSemaphorePermit>);
    while let Some(frame) = tokio::time::timeout(idle, body.frame()).await.map_err(|_| Unbuffered::Stalled(idle))? {
        let frame = frame.map_err(|e| Unbuffered::Read(error_chain(e.into().as_ref())))?;
        let Ok(data) = frame.into_data() else { continue };
        length = length.checked_add(data.len()).filter(|l| *l <= limit).ok_or(Unbuffered::TooLarge)?;
        let needed = length.div_ceil(1024).saturating_sub(held.as_ref().map_or(0, |p| p.num_permits()));
        if needed > 0 {
            let permits = u32::try_from(needed).map_err(|_| Unbuffered::Busy)?;
            let more = budget.clone().try_acquire_many_owned(permits).map_err(|_| Unbuffered::Busy)?;
            match &mut held {
                Some(held) => held.merge(more),
                None => held = Some(more),
            }
        }
        chunks.push(data);
    }
    let body = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    };
    Ok((body, held))
}

/// A plain-text response.
fn text(status: StatusCode, body: String) -> Response<GatewayBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_urls() {
        assert_eq!(short_url("/default/hello/a/b"), Some(("default", "hello", "/a/b")));
        assert_eq!(short_url("/default/hello"), Some(("default", "hello", "/")));
        assert_eq!(short_url("/default/hello/"), Some(("default", "hello", "/")));
        assert_eq!(short_url("/default"), None);
        assert_eq!(short_url("//hello"), None);
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
    }
}
