//! `kelp up`: Kelp on one machine, with nothing else installed.
//!
//! One listener serves both the Kubernetes API for Kelp's kinds (`kelp-apiserver` over
//! `kelp-store`, with the engine's instances shown as Pods and Services by [`workloads`]) and
//! the functions themselves (the `kelp-local` gateway: short URLs `/<namespace>/<function>/...`
//! and HTTPTrigger routes). The local controller ([`reconcile`]) keeps the engine running what
//! the store holds and writes each Function's status; [`cron`] fires CronJobTriggers; [`events`]
//! consumes Kafka topics and NATS subjects for KafkaTriggers and NATSTriggers; and
//! [`kubeconfig`] adds the `kelp-local` context so kubectl, kube-rs and the `kelp` CLI reach it,
//! over TLS ([`tls`]) with its token; [`listener`] serves function URLs over plain HTTP as well.

pub mod cron;
pub mod desired;
pub mod env;
pub mod events;
pub mod kubeconfig;
pub mod listener;
pub mod metrics;
mod owners;
pub mod reconcile;
pub mod runtimes;
pub mod status;
pub mod tls;
pub mod volumes;
pub mod workloads;

use axum::body::Body;
use axum::response::IntoResponse;
use kelp_local::{Platform, PlatformConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tower_service::Service as _;

/// How long open connections (watches, log follows) may take to finish after Ctrl-C.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// How to run the platform.
#[derive(Debug, Clone)]
pub struct UpConfig {
    /// Where the API and the gateway listen.
    pub listen: SocketAddr,
    /// Where objects, code, dependencies and logs are kept.
    pub data_dir: PathBuf,
    /// The kubeconfig to add the `kelp-local` context to; `None`: do not touch any.
    pub kubeconfig: Option<PathBuf>,
    /// The `kelp-runtime` binary.
    pub runtime_bin: PathBuf,
    /// Pre-warmed runtimes kept per language.
    pub prewarm_per_language: usize,
    /// The clock schedules are read against ([`cron::Clock::real`] but in tests).
    pub cron_clock: cron::Clock,
    /// The Kafka and NATS brokers of KafkaTriggers and NATSTriggers.
    pub events: kelp_events::Brokers,
    /// Timeouts and the connection cap of the listener.
    pub limits: listener::Limits,
    /// The loopback address of the web dashboard served beside the platform (by the `kelp`
    /// CLI): `/ui/` on the listener leads there. `None`: no dashboard.
    pub dashboard: Option<SocketAddr>,
}

/// Why the platform could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The data directory or the store could not be opened.
    #[error("opening the data directory {path}: {reason}")]
    Data {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The engine could not start.
    #[error(transparent)]
    Platform(#[from] kelp_local::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The kubeconfig could not be written.
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    /// The certificate could not be made.
    #[error("setting up TLS: {0}")]
    Tls(String),
}

/// The `runtime-images` JSON list `stored` with the runtimes of Kelp's `defaults` whose IDs it
/// lacks appended (languages this Kelp added since the list was written, such as Go, Java and
/// Rust), or `None` when it has them all or is not a JSON list (a user's, kept as it is).
fn with_new_runtimes(stored: &Value, defaults: &Value) -> Option<String> {
    let mut list: Vec<Value> = serde_json::from_str(stored.as_str()?).ok()?;
    let defaults: Vec<Value> = serde_json::from_str(defaults.as_str()?).ok()?;
    let id = |r: &Value| r.get("ID").or_else(|| r.get("id")).and_then(Value::as_str).map(str::to_owned);
    let known: Vec<String> = list.iter().filter_map(id).collect();
    let new: Vec<Value> = defaults.into_iter().filter(|r| id(r).is_some_and(|i| !known.contains(&i))).collect();
    if new.is_empty() {
        return None;
    }
    list.extend(new);
    serde_json::to_string_pretty(&list).ok()
}

/// The `runtime-images` JSON list `defaults` with the entry of every plugin runtime
/// (`kelp_runtime::plugin`: its `runtime.json` without its `kelp` object, and its directory under
/// `kelpPlugin`, which `kelp get-server-config` shows) whose ID it lacks.
fn with_plugins(defaults: &Value) -> Value {
    let Some(mut list) = defaults.as_str().and_then(|d| serde_json::from_str::<Vec<Value>>(d).ok()) else {
        return defaults.clone();
    };
    for plugin in runtimes::plugin_languages() {
        let Some(dir) = plugin.plugin else { continue };
        let known = list.iter().any(|r| r.get("ID").and_then(Value::as_str) == Some(plugin.name));
        if let (false, Ok(plugin)) = (known, kelp_runtime::plugin::load(dir)) {
            let mut entry = plugin.entry.clone();
            entry.insert(kelp_runtime::plugin::ORIGIN_KEY.to_owned(), Value::from(dir.display().to_string()));
            list.push(Value::Object(entry));
        }
    }
    serde_json::to_string_pretty(&list).map_or_else(|_| defaults.clone(), Value::from)
}

/// Creates the `kubeless-config` ConfigMap in `kubeless` when it is missing: the one `kelp
/// install` writes on a cluster (Kelp's runtimes under Kubeless's IDs and versions, and
/// Kubeless's other keys), for the clients that read it: the runtime check of `kelp function
/// deploy`, `kelp get-server-config`, the Serverless Framework's kubeless plugin. One that exists
/// (edited by the user, say) is kept, but for `kafka-brokers` and `nats-url`, which are set to the
/// brokers this platform uses, as on a cluster (`kelp topic` finds the brokers there), and for the
/// runtimes of languages (built in, or plugins) its `runtime-images` lacks, which are added.
async fn serve_kubeless_config(
    store: &kelp_store::Store,
    brokers: &kelp_events::Brokers,
) -> Result<(), kelp_store::StoreError> {
    let objects = kelp_plan::install::install_objects(&kelp_plan::install::InstallOptions::default());
    let config_map =
        objects.into_iter().find(|o| o["kind"] == "ConfigMap").expect("kelp install writes kubeless-config");
    let (namespace, name) = (config_map["metadata"]["namespace"].clone(), config_map["metadata"]["name"].clone());
    match store.create("/configmaps", config_map.clone()).await {
        Ok(_) | Err(kelp_store::StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    let stored = store.get("/configmaps", namespace.as_str().unwrap_or_default(), name.as_str().unwrap_or_default())?;
    let mut updated = Value::clone(&stored);
    let defaults = with_plugins(&config_map["data"]["runtime-images"]);
    if let Some(runtimes) = with_new_runtimes(&updated["data"]["runtime-images"], &defaults) {
        updated["data"]["runtime-images"] = Value::from(runtimes);
    }
    updated["data"][kelp_plan::KAFKA_BROKERS_KEY] = Value::from(brokers.kafka.brokers.clone());
    updated["data"][kelp_plan::NATS_URL_KEY] = Value::from(brokers.nats_url.clone());
    if updated != *stored {
        store.update("/configmaps", updated).await?;
    }
    Ok(())
}

/// Creates `dir` (and its missing parents) owner-only (0700), or makes an existing one so: it
/// holds the store (Secrets among the objects), code and logs. The mode it had when it was open
/// to others, if it was.
fn private_dir(dir: &std::path::Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(Some(mode))
}

/// Paths the Kubernetes API serves; everything else goes to the gateway.
fn is_api_path(path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    under("/api") || under("/apis") || under("/openapi") || path == "/version"
}

/// Whether `path` is the dashboard's, `/ui` or under it.
fn is_dashboard_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The answer to a request for the dashboard's `path_and_query` on the platform's listener: a
/// redirect to the same path on the dashboard's own loopback listener (its login URL included),
/// or why there is none.
fn dashboard_redirect(dashboard: Option<SocketAddr>, path_and_query: &str) -> axum::response::Response {
    let Some(dashboard) = dashboard else {
        return kelp_apiserver::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NotFound",
            "this kelp up serves no dashboard (--no-dashboard or --no-kubeconfig): run `kelp dashboard`".to_owned(),
            None,
        )
        .into_response();
    };
    let location = format!("http://{dashboard}{path_and_query}");
    (axum::http::StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, location)]).into_response()
}

/// Runs the platform until `shutdown` completes, then stops every instance.
pub async fn run(config: UpConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), UpError> {
    let data = |reason: String| UpError::Data { path: config.data_dir.clone(), reason };
    if let Some(mode) = private_dir(&config.data_dir).map_err(|e| data(e.to_string()))? {
        eprintln!(
            "kelp up: the data directory {} was open to other users (mode {mode:o}): made it owner-only (700)",
            config.data_dir.display()
        );
    }
    let store =
        kelp_apiserver::open_store(config.data_dir.join("objects.redb")).await.map_err(|e| data(e.to_string()))?;
    serve_kubeless_config(&store, &config.events).await.map_err(|e| data(e.to_string()))?;
    let mut platform_config = PlatformConfig::new(config.data_dir.join("platform"), &config.runtime_bin);
    platform_config.prewarm_per_language = config.prewarm_per_language;
    let platform = Arc::new(Platform::new(platform_config)?);
    let socket = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|cause| UpError::Listen { addr: config.listen, cause })?;
    let addr = socket.local_addr().map_err(|cause| UpError::Listen { addr: config.listen, cause })?;

    // Every listener, loopback included, serves the API over TLS with a new authority and
    // token each start: any local user could otherwise run code as this user and read Secrets.
    let tls = tls::Tls::new(addr.ip()).map_err(|e| UpError::Tls(e.to_string()))?;
    let token = Arc::new(tls::new_token());
    let engine = Arc::new(workloads::Engine::new(platform.clone(), store.clone()));
    let interpreters = runtimes::Interpreters::find().await;
    let api = kelp_apiserver::router(
        kelp_apiserver::ApiServerConfig::new(store.clone())
            .with_workloads(engine)
            .with_token(Some(token.as_str().to_owned()))
            .with_admission(Arc::new(runtimes::RuntimeAdmission(interpreters.clone()))),
    );
    let gateway = platform.gateway();
    let event_triggers = events::EventTriggers::new(config.events.clone(), platform.clone(), store.clone());
    let (metrics_platform, trigger_metrics) = (platform.clone(), event_triggers.metrics());
    let metrics_token = token.clone();
    let functions = gateway.clone();
    let dashboard = config.dashboard;
    let secure = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move |headers: axum::http::HeaderMap| async move {
                if !kelp_apiserver::bearer_token_matches(&headers, &metrics_token) {
                    return kelp_apiserver::ApiError::unauthorized().into_response();
                }
                metrics::render(&metrics_platform, &trigger_metrics).await.into_response()
            }),
        )
        .fallback(move |request: axum::extract::Request| {
            let (mut api, gateway) = (api.clone(), gateway.clone());
            async move {
                if is_api_path(request.uri().path()) {
                    api.call(request).await.into_response()
                } else if is_dashboard_path(request.uri().path()) {
                    dashboard_redirect(dashboard, request.uri().path_and_query().map_or("/ui/", |p| p.as_str()))
                } else {
                    gateway.handle(request).await.map(Body::new).into_response()
                }
            }
        });
    let local = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let server = format!("https://{local}");
    let refusal = format!(
        "the Kubernetes API and /metrics of kelp up are served over HTTPS with a token only: use the server, \
         authority and token of the kubeconfig's {} context ({server})",
        kubeconfig::CONTEXT
    );
    let plain = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (gateway, refusal) = (functions.clone(), refusal.clone());
        async move {
            let path = request.uri().path();
            if is_api_path(path) || path == "/metrics" {
                kelp_apiserver::ApiError::new(axum::http::StatusCode::FORBIDDEN, "Forbidden", refusal, None)
                    .into_response()
            } else if is_dashboard_path(path) {
                dashboard_redirect(dashboard, request.uri().path_and_query().map_or("/ui/", |p| p.as_str()))
            } else {
                gateway.handle(request).await.map(Body::new).into_response()
            }
        }
    });

    let controller = reconcile::Reconciler::new(
        store.clone(),
        platform.clone(),
        cron::Cron::new(platform.clone(), config.cron_clock),
        interpreters.clone(),
        event_triggers,
    );
    let (stop_controller, controller_stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller.run(async move {
        let _ = controller_stopped.await;
    }));
    eprintln!("kelp up: listening on {addr}: the Kubernetes API at {server} (TLS and the kubeconfig's token)");
    eprintln!(
        "kelp up: functions answer at http://{local}/<namespace>/<function>/ (and over https) ; data in {}",
        config.data_dir.display()
    );
    let found: Vec<String> =
        interpreters.found().iter().map(|i| format!("{} functions on {}", i.language.name, i.describe())).collect();
    eprintln!(
        "kelp up: runs {}",
        if found.is_empty() { "no functions: no interpreter found".into() } else { found.join(", ") }
    );
    if let Some(path) = &config.kubeconfig {
        let written = kubeconfig::write(path, &server, Some(&token), Some(&tls.ca_pem))?;
        let switched = written
            .previous_context
            .map(|p| format!(" (it was {p}; `kubectl config use-context {p}` switches back)"))
            .unwrap_or_default();
        eprintln!(
            "kelp up: context {} written to {} and made current{switched}",
            kubeconfig::CONTEXT,
            written.path.display()
        );
    }
    match config.dashboard {
        Some(dashboard) => eprintln!(
            "kelp up: the web dashboard at http://{local}/ui/ (served on {dashboard} with the {} context's \
             credentials; its login URL follows once the platform is ready)",
            kubeconfig::CONTEXT
        ),
        None => eprintln!(
            "kelp up: no web dashboard in this start: `kelp dashboard` in another terminal serves it on loopback with \
             the {} context's credentials and prints the URL to open",
            kubeconfig::CONTEXT
        ),
    }
    // The line `scripts/up` waits for: this process, not another on the port, is serving.
    eprintln!(
        "kelp up: ready (pid {}); try `kelp function deploy hello --runtime python3 --from-file hello.py --handler hello.hello`; Ctrl-C stops",
        std::process::id()
    );
    // Watches stay open for many minutes: after the signal, connections get a few seconds.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let stop_serving = stopped(stopping.clone());
    let apps = listener::Apps { tls: secure, plain };
    let serve = listener::serve(socket, tls.acceptor.clone(), apps, config.limits, stop_serving);
    tokio::select! {
        () = serve => {},
        () = async { stopped(stopping).await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {},
    };
    let _ = stop_controller.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE * 4, controller).await.is_err() {
        tracing::warn!("the controller did not stop in time");
    }
    eprintln!("kelp up: stopping functions");
    platform.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stored_runtime_list_gets_the_languages_it_lacks() {
        let stored = serde_json::json!(r#"[{"ID": "python", "versions": [{"version": "3.8"}]}]"#);
        let defaults = serde_json::json!(r#"[{"ID": "python", "versions": []}, {"ID": "go", "versions": []}]"#);
        let merged: serde_json::Value =
            serde_json::from_str(&super::with_new_runtimes(&stored, &defaults).unwrap()).unwrap();
        assert_eq!(merged[0]["versions"][0]["version"], "3.8", "the stored python entry is kept");
        assert_eq!(merged[1]["ID"], "go");
        assert_eq!(merged.as_array().unwrap().len(), 2);
        assert_eq!(super::with_new_runtimes(&defaults, &defaults), None);
        assert_eq!(super::with_new_runtimes(&serde_json::json!("- yaml"), &defaults), None);
    }

    use super::*;

    #[test]
    fn the_data_directory_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/kelp");
        assert_eq!(private_dir(&data).unwrap(), None);
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(private_dir(&data).unwrap(), Some(0o755));
        assert_eq!(mode(&data), 0o700);
    }

    #[test]
    fn api_paths_and_function_paths() {
        for p in ["/api", "/api/v1/namespaces", "/apis/kubeless.io/v1beta1", "/version", "/openapi/v3"] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/default/hello", "/apix", "/default/api"] {
            assert!(!is_api_path(p), "{p}");
        }
    }
}
