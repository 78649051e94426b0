//! The `Workloads` extension point, with a fake supervisor: pods and services listed, watched
//! and filtered by the API server, logs streamed, the service proxy forwarding requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kelp_apiserver::{ApiServerConfig, BoxFuture, BoxStream, LogOptions, WorkloadError, WorkloadEvent, Workloads};
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::broadcast;

struct Fake {
    pods: Mutex<Vec<Pod>>,
    events: broadcast::Sender<WorkloadEvent<Pod>>,
}

fn pod(name: &str, rv: u64) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv.to_string(),
                     "labels": {"function": name}, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": name, "image": "kelp-runtime"}]},
        "status": {"phase": "Running"},
    }))
    .unwrap()
}

impl Workloads for Fake {
    fn list_pods<'a>(&'a self, _namespace: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Pod>, WorkloadError>> {
        // Every namespace's pods: the API server filters.
        Box::pin(async move { Ok(self.pods.lock().unwrap().clone()) })
    }

    fn list_services<'a>(&'a self, _namespace: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Service>, WorkloadError>> {
        let service = serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "default", "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": "127.0.0.1", "ports": [{"port": 8080, "protocol": "TCP"}]},
        }))
        .unwrap();
        Box::pin(async move { Ok(vec![service]) })
    }

    fn watch_pods(&self) -> BoxStream<WorkloadEvent<Pod>> {
        let rx = self.events.subscribe();
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }

    fn pod_logs<'a>(
        &'a self,
        _namespace: &'a str,
        pod: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<BoxStream<Result<Bytes, std::io::Error>>, WorkloadError>> {
        Box::pin(async move {
            if pod != "hello" {
                return Err(WorkloadError::NotFound(format!("pods \"{pod}\" not found")));
            }
            let lines = ["one\n", "two\n", "three\n"];
            let skip = options.tail_lines.map_or(0, |n| lines.len().saturating_sub(n as usize));
            let stream = futures_util::stream::iter(lines.into_iter().skip(skip).map(|l| Ok(Bytes::from(l))));
            Ok(Box::pin(stream) as BoxStream<_>)
        })
    }

    fn proxy<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
        port: Option<&'a str>,
        request: http::Request<Body>,
    ) -> BoxFuture<'a, Result<http::Response<Body>, WorkloadError>> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.map_err(|e| WorkloadError::Internal(e.to_string()))?.to_bytes();
            let echo = format!(
                "{} {} {namespace}/{service}:{} auth={} {}",
                parts.method,
                parts.uri,
                port.unwrap_or("-"),
                parts.headers.contains_key("authorization"),
                String::from_utf8_lossy(&body)
            );
            Ok(http::Response::builder().status(202).body(Body::from(echo)).unwrap())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_services_logs_and_proxy_come_from_the_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let store = kelp_apiserver::open_store(dir.path().join("kelp.redb")).await.unwrap();
    let (events, _) = broadcast::channel(16);
    let fake = Arc::new(Fake { pods: Mutex::new(vec![pod("hello", 1), pod("other", 2)]), events });
    let config = ApiServerConfig::new(store).with_workloads(fake.clone()).with_token(Some("t".into()));
    let app = kelp_apiserver::router(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.default_namespace = "default".into();
    config.auth_info.token = Some("t".to_owned().into());
    let client = kube::Client::try_from(config).unwrap();

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let listed = pods.list(&ListParams::default().labels("function=hello")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(pods.get("other").await.unwrap().status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(
        Api::<Pod>::namespaced(client.clone(), "kubeless").list(&ListParams::default()).await.unwrap().items.len(),
        0
    );
    let services: Api<Service> = Api::default_namespaced(client.clone());
    assert_eq!(services.get("hello").await.unwrap().spec.unwrap().cluster_ip.as_deref(), Some("127.0.0.1"));

    let logs = pods.logs("hello", &LogParams { tail_lines: Some(2), ..LogParams::default() }).await.unwrap();
    assert_eq!(logs, "two\nthree\n");
    let missing = pods.logs("nope", &LogParams::default()).await.unwrap_err();
    assert!(matches!(missing, kube::Error::Api(s) if s.code == 404));

    let mut stream = Box::pin(watcher(pods.clone(), watcher::Config::default()).touched_objects());
    let mut names = Vec::new();
    for _ in 0..2 {
        let p = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        names.push(p.metadata.name.unwrap());
    }
    names.sort();
    assert_eq!(names, ["hello", "other"]);
    let mut third = pod("third", 3);
    fake.pods.lock().unwrap().push(third.clone());
    third.metadata.resource_version = Some("3".into());
    // Sent until the watcher's watch is open (it subscribes when the watch starts).
    let sender = fake.events.clone();
    let publisher = tokio::spawn(async move {
        loop {
            let _ = sender.send(WorkloadEvent::Added(third.clone()));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let seen = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
    assert_eq!(seen.metadata.name.as_deref(), Some("third"));
    publisher.abort();

    // The proxy: any method, path and query forwarded, the API token stripped.
    let request = http::Request::post("/api/v1/namespaces/default/services/hello:http/proxy/greet/x?lang=fr")
        .body(kube::client::Body::from(b"hi".to_vec()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 202);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), "POST /greet/x?lang=fr default/hello:http auth=false hi");
    // Percent-encoded segments (the Python client sends `name:port` as `name%3Aport`) address what
    // they decode to, as in kube-apiserver; the proxied rest of the path is forwarded as sent.
    let request = http::Request::get("/api/v1/namespaces/def%61ult/services/hello%3A8080/proxy/a%20b/")
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 202);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), "GET /a%20b/ default/hello:8080 auth=false ");
    let request =
        http::Request::get("/api/v1/namespaces/default/pods/hell%6F").body(kube::client::Body::empty()).unwrap();
    assert_eq!(client.send(request).await.unwrap().status(), 200);
}
