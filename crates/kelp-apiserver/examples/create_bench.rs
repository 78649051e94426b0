//! A quick measurement of create throughput and latency over HTTP (loopback, HTTP/1.1,
//! keep-alive) against the API server and its fsync'd store, server and clients in one process:
//!
//! ```sh
//! cargo run --release -p kelp-apiserver --example create_bench [-- <creates per phase>]
//! ```
//!
//! Phase 1: one client, sequential creates. Phase 2: 8 concurrent clients. Prints creates/s and
//! the latency percentiles of each phase.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn create(client: &HttpClient, base: &str, name: &str) -> Duration {
    let body = format!(
        r#"{{"apiVersion":"kubeless.io/v1beta1","kind":"Function","metadata":{{"name":"{name}","labels":{{"bench":"yes"}}}},"spec":{{"handler":"hello.handler","runtime":"python3.8","function":"def handler(event, context):\n    return 'hi'\n","timeout":"180"}}}}"#
    );
    let request = hyper::Request::post(format!("{base}/apis/kubeless.io/v1beta1/namespaces/default/functions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let started = Instant::now();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await.unwrap();
    assert_eq!(status, 201, "create {name}");
    started.elapsed()
}

fn report(phase: &str, total: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{phase}: {} creates in {:.2?} = {:.0} creates/s; latency p50 {:.3?} p90 {:.3?} p99 {:.3?}",
        latencies.len(),
        total,
        latencies.len() as f64 / total.as_secs_f64(),
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(4000);
    let dir = tempfile::tempdir().unwrap();
    let store = kelp_apiserver::open_store(dir.path().join("kelp.redb")).await.unwrap();
    let app = kelp_apiserver::router(kelp_apiserver::ApiServerConfig::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Warm-up.
    for i in 0..50 {
        create(&client, &base, &format!("warm-{i}")).await;
    }

    let started = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        latencies.push(create(&client, &base, &format!("seq-{i}")).await);
    }
    report("1 client  ", started.elapsed(), latencies);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n / 8);
            for i in 0..n / 8 {
                latencies.push(create(&client, &base, &format!("par-{c}-{i}")).await);
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    report("8 clients ", started.elapsed(), latencies);
}
