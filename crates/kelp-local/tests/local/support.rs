//! Helpers: the runtime binary, platform configurations, function specs, a gateway on a free
//! port, an HTTP client.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use kelp_api::FunctionSpec;
use kelp_local::{FunctionDeployment, Platform, PlatformConfig, Scaling};
use std::path::Path;
use std::time::{Duration, Instant};

/// End-to-end tests run one at a time: they start many processes on a small machine and some
/// watch scaling, which a neighbour's load would disturb.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) use kelp_testkit::runtime_bin;

/// A configuration for tests: one worker per instance, short grace, pool of `prewarm`.
pub(crate) fn config(data_dir: &Path, prewarm: usize) -> PlatformConfig {
    let mut config = PlatformConfig::new(data_dir, runtime_bin());
    config.prewarm_per_language = prewarm;
    config.workers_per_instance = 1;
    config.stop_grace = Duration::from_secs(3);
    config.start_timeout = Duration::from_secs(60);
    config
}

/// A spec from JSON.
pub(crate) fn spec(value: serde_json::Value) -> FunctionSpec {
    serde_json::from_value(value).expect("a valid FunctionSpec")
}

/// A `text` function `handler` in `runtime` with `code`.
pub(crate) fn text_spec(runtime: &str, handler: &str, code: &str) -> FunctionSpec {
    spec(serde_json::json!({"runtime": runtime, "handler": handler, "function": code, "function-content-type": "text"}))
}

/// A deployment in namespace `default`, with the steps Kelp's default `runtime-images` give it
/// (as `kelp up` deploys it).
pub(crate) fn deployment(name: &str, spec: FunctionSpec, scaling: Scaling) -> FunctionDeployment {
    let function = kelp_api::Function::new(name, spec.clone());
    let steps = kelp_plan::run::steps(&function, &kelp_plan::Config::default()).expect("a valid spec");
    FunctionDeployment {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        spec,
        env: Vec::new(),
        volumes: Vec::new(),
        scaling,
        start_now: false,
        steps,
    }
}

/// Scaling with `min` and `max` and the idle timeout.
pub(crate) fn scaling(min: usize, max: usize, idle_timeout: Duration) -> Scaling {
    Scaling { min, max, idle_timeout }
}

/// A gateway serving on a free port until dropped.
pub(crate) struct Served {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `platform`'s gateway on a free loopback port.
pub(crate) async fn serve(platform: &Platform) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(platform.gateway().serve(listener, async move {
        let _ = stopped.await;
    }));
    Served { base, _stop: stop }
}

/// A response: status, headers, body as text.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
}

/// Sends a request with `headers` and `body`.
pub(crate) async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.expect("request sent");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body read").to_bytes();
    Reply { status, body: String::from_utf8_lossy(&body).into_owned() }
}

/// `GET url`.
pub(crate) async fn get(url: &str) -> Reply {
    send("GET", url, &[], "").await
}

/// Polls `check` until it is true, panicking with `what` after `timeout`.
pub(crate) async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the sample `name{labels}` in Prometheus text, if present.
pub(crate) fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
