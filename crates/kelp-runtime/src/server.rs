//! The HTTP front: `/healthz`, `/metrics`, and every other request handed to a worker, or to the
//! function in the front's own process.

use crate::access_log::AccessLog;
use crate::in_process::{InProcess, Spare, SpareSocket, Watched};
use crate::metrics::Metrics;
use crate::pool::{CallFailure, Pool};
use crate::protocol::{self, Load};
use crate::worker::WorkerError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UnixListener};

/// Shared state of the front.
#[derive(Debug)]
pub struct App {
    backend: Backend,
    metrics: Arc<Metrics>,
    /// Whether to log requests before the function is loaded (never `/healthz`, answered 503).
    access_log: bool,
    /// Where requests are logged.
    log: Arc<AccessLog>,
    /// The function's settings, set once it is loaded.
    function: OnceLock<Settings>,
}

/// What the front needs to know of the loaded function.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A call running longer is answered 408 and its worker replaced.
    pub timeout: Duration,
    /// Largest request body, in bytes; larger is answered 413.
    pub max_body: usize,
    /// Whether every request is logged on stdout.
    pub access_log: bool,
}

/// What runs the function's calls.
#[derive(Debug)]
pub enum Backend {
    /// Worker processes.
    Workers(Pool),
    /// The function's library, in this process (`KELP_IN_PROCESS=1`).
    InProcess(Arc<InProcess>),
}

impl Backend {
    /// Loads the function: into every worker, or into the library.
    pub async fn load(&self, load: Load) -> Result<(), WorkerError> {
        match self {
            Backend::Workers(pool) => pool.load(load).await,
            Backend::InProcess(f) => {
                crate::worker::loaded(f.send(&protocol::encode(&crate::worker::load_header(&load), b"")?)?)
            }
        }
    }

    /// Workers running (for an in-process function, none).
    pub fn live(&self) -> usize {
        match self {
            Backend::Workers(pool) => pool.live(),
            Backend::InProcess(_) => 0,
        }
    }

    /// Stops the workers.
    pub fn close(&self) {
        if let Backend::Workers(pool) = self {
            pool.close();
        }
    }

    fn pipelined(&self) -> u64 {
        match self {
            Backend::Workers(pool) => pool.pipelined(),
            Backend::InProcess(_) => 0,
        }
    }
}

impl App {
    /// A front over `backend`, answering 503 until [`App::loaded`] is called. Runs on a Tokio
    /// runtime (the access log's flusher is a task).
    pub fn new(backend: Backend, access_log: bool) -> Self {
        let metrics = Arc::new(Metrics::default());
        if let Backend::InProcess(f) = &backend {
            let metrics = metrics.clone();
            f.on_timeout(move |method, took| metrics.observe(method.as_str(), took, true));
        }
        App { backend, metrics, access_log, log: AccessLog::start(), function: OnceLock::new() }
    }

    /// Marks the function loaded: requests now reach it, with these settings.
    pub fn loaded(&self, settings: Settings) {
        let _ = self.function.set(settings);
    }

    /// What runs the calls.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// A listening socket the front serves HTTP on.
pub trait Listen: Send + 'static {
    /// One accepted connection.
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The next connection, and the address its requests are logged from.
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, IpAddr)>> + Send;
    /// A second handle on a connection's socket (for [`Spare`]).
    fn spare(io: &Self::Io) -> std::io::Result<SpareSocket>;
}

impl Listen for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, IpAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer.ip()))
    }
    fn spare(io: &Self::Io) -> std::io::Result<SpareSocket> {
        Ok(SpareSocket::Tcp(std::os::fd::AsFd::as_fd(io).try_clone_to_owned()?.into()))
    }
}

/// Its peers are processes of this machine: logged as the loopback address.
impl Listen for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, IpAddr)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, IpAddr::from([127, 0, 0, 1])))
    }
    fn spare(io: &Self::Io) -> std::io::Result<SpareSocket> {
        Ok(SpareSocket::Unix(std::os::fd::AsFd::as_fd(io).try_clone_to_owned()?.into()))
    }
}

/// Serves HTTP on `listener` until `shutdown` completes, then lets in-flight requests finish for
/// up to `grace`.
pub async fn serve<L: Listen>(listener: L, app: Arc<App>, shutdown: impl Future<Output = ()>, grace: Duration) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // An in-process call past its timeout is answered on a second handle of its socket.
        let spare = match &app.backend {
            Backend::InProcess(_) => match L::spare(&stream) {
                Ok(socket) => Some(socket),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot duplicate a connection's socket; closing it");
                    continue;
                }
            },
            Backend::Workers(_) => None,
        };
        let stream = Watched::new(stream);
        let spare = spare.map(|socket| Spare::new(socket, &stream));
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| handle(app.clone(), req, peer, spare.clone()));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "in-flight requests still running at the end of the shutdown grace period");
    }
    app.log.flush();
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: IpAddr,
    spare: Option<Arc<Spare>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let response = match (&parts.method, parts.uri.path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => match app.function.get() {
            Some(_) => text(StatusCode::OK, "OK"),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "function not loaded yet"),
        },
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(Full::new(Bytes::from(app.metrics.render(app.backend.pipelined()))));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            r
        }
        _ => call(&app, &parts, body, started, spare.as_ref()).await,
    };
    let logged = match app.function.get() {
        Some(settings) => settings.access_log,
        // Readiness probes while the function is not loaded yet (pre-warmed, or installing its
        // dependencies) come from the platform, many a second: logged, they would bury the
        // function's own output.
        None => app.access_log && parts.uri.path() != "/healthz",
    };
    if logged {
        app.log.request(peer, &parts, &response, started.elapsed());
    }
    Ok(response)
}

/// Hands the request to a worker, or calls the in-process function, within the function's
/// timeout.
async fn call(
    app: &Arc<App>,
    parts: &http::request::Parts,
    body: Incoming,
    started: Instant,
    spare: Option<&Arc<Spare>>,
) -> Response<Full<Bytes>> {
    let Some(&Settings { timeout, max_body, .. }) = app.function.get() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "function not loaded yet");
    };
    let too_large = || text(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body larger than {max_body} bytes"));
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return too_large();
    }
    let body = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("reading the request body: {e}")),
    };
    let Ok(frame) = protocol::invoke(parts, &body) else {
        return too_large();
    };
    let deadline = tokio::time::Instant::from_std(started) + timeout;
    let outcome = match &app.backend {
        Backend::Workers(pool) => {
            // The call runs in its own task, so a client that hangs up does not cut a worker off
            // mid-request.
            let pool = pool.clone();
            let task = tokio::spawn(async move { pool.call(frame, deadline).await });
            task.await.unwrap_or_else(|e| Err(CallFailure::WorkerLost(e.to_string())))
        }
        Backend::InProcess(f) => f.call(&frame, (&parts.method, started), deadline, spare).await,
    };
    let failed = outcome.as_ref().map_or(true, |o| o.failed);
    if !matches!(outcome, Err(CallFailure::Abandoned)) {
        // (An abandoned call was counted when the watchdog answered it.)
        app.metrics.observe(parts.method.as_str(), started.elapsed(), failed);
    }
    match outcome {
        Ok(o) => {
            let mut r = Response::new(Full::new(o.body));
            *r.status_mut() = StatusCode::from_u16(o.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in o.headers {
                match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
                    // The front frames the response itself; a function cannot override that.
                    (Ok(n), Ok(_)) if FRAMING_HEADERS.contains(&n) => {}
                    (Ok(n), Ok(v)) => {
                        r.headers_mut().append(n, v);
                    }
                    _ => tracing::warn!(header = name, "the function set an invalid response header; dropped"),
                }
            }
            r
        }
        Err(CallFailure::Timeout | CallFailure::Abandoned) => {
            tracing::warn!(path = parts.uri.path(), ?timeout, "request timeout exceeded");
            text(StatusCode::REQUEST_TIMEOUT, "Request timeout exceeded")
        }
        Err(CallFailure::WorkerLost(e)) => {
            tracing::error!(error = %e, "the worker died while handling a request; it is being replaced");
            text(StatusCode::BAD_GATEWAY, "the function's worker exited while handling the request")
        }
    }
}

/// Headers that describe the connection or the body's framing, which only the front may set.
const FRAMING_HEADERS: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}
