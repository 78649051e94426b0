//! The platform's `/metrics`: the engine's own series, the Kafka and NATS consumers' series
//! (`kelp_trigger_*`, per trigger and function), then every running instance's function
//! metrics (`function_calls_total`, `function_failures_total`, `function_duration_seconds`), with
//! `namespace`, `function` and `pod` labels added — what Prometheus's relabelling added for
//! Kubeless's pods, so `sum(rate(function_calls_total[5m])) by (function)` works unchanged.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use kelp_local::Platform;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// How long one instance may take to answer its `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most bytes read of one instance's `/metrics` (its runtime's three series take a few KiB):
/// an instance answering more is left out.
const MAX_SCRAPE: usize = 1 << 20;

/// The HTTP client of the scrapes.
type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The whole exposition (`triggers`: the Kafka and NATS consumers' series).
pub async fn render(platform: &Platform, triggers: &kelp_events::Metrics) -> String {
    let mut out = platform.render_metrics();
    out.push_str(&triggers.render());
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut described = BTreeSet::new();
    for instance in platform.instances().into_iter().filter(|i| i.ready) {
        let Some(port) = instance.port else { continue };
        let Some(body) = scrape(&client, &format!("http://127.0.0.1:{port}/metrics")).await else { continue };
        let labels = format!(
            "namespace=\"{}\",function=\"{}\",pod=\"{}\"",
            instance.namespace, instance.function, instance.name
        );
        relabel(&String::from_utf8_lossy(&body), &labels, &mut described, &mut out);
    }
    out
}

/// The body of `url` (an instance's `/metrics`), if it answers within [`SCRAPE_TIMEOUT`] with at
/// most [`MAX_SCRAPE`] bytes; the rest of a larger answer is not read.
async fn scrape(client: &Client, url: &str) -> Option<Bytes> {
    let request = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
    let scraped = async {
        let response = client.request(request).await.ok()?;
        match Limited::new(response.into_body(), MAX_SCRAPE).collect().await {
            Ok(body) => Some(body.to_bytes()),
            Err(e) => {
                tracing::warn!(%url, error = %e, "instance metrics not scraped");
                None
            }
        }
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, scraped).await.ok().flatten()
}

/// Appends `text`'s samples to `out` with `labels` added; `# HELP`/`# TYPE` lines are written
/// once per metric (`described` remembers which).
fn relabel(text: &str, labels: &str, described: &mut BTreeSet<String>, out: &mut String) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            if described.insert(rest.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" ")) {
                let _ = writeln!(out, "{line}");
            }
            continue;
        }
        let _ = match line.find('{') {
            Some(open) if line[open..].starts_with("{}") => {
                writeln!(out, "{}{{{labels}}}{}", &line[..open], &line[open + 2..])
            }
            Some(open) => writeln!(out, "{}{{{labels},{}", &line[..open], &line[open + 1..]),
            None => match line.split_once(' ') {
                Some((name, value)) => writeln!(out, "{name}{{{labels}}} {value}"),
                None => Ok(()),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A hostile instance answering 64 MiB of `/metrics`: left out, not buffered whole.
    #[tokio::test]
    async fn an_instance_answering_too_much_is_left_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let small = String::from_utf8_lossy(&request).contains("GET /small ");
                    let length = if small { 7 } else { 64 << 20 };
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    if small {
                        let _ = socket.write_all(b"up 1\n\n\n").await;
                        return;
                    }
                    let chunk = vec![b'#'; 1 << 20];
                    for _ in 0..64 {
                        if socket.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        assert_eq!(scrape(&client, &format!("http://{address}/small")).await.as_deref(), Some(&b"up 1\n\n\n"[..]));
        assert_eq!(scrape(&client, &format!("http://{address}/metrics")).await, None);
    }

    #[test]
    fn adds_labels_and_describes_once() {
        let text = "# HELP function_calls_total Number of calls\n# TYPE function_calls_total counter\n\
                    function_calls_total{method=\"GET\"} 3\nup 1\n";
        let (mut described, mut out) = (BTreeSet::new(), String::new());
        relabel(text, "function=\"a\"", &mut described, &mut out);
        relabel(text, "function=\"b\"", &mut described, &mut out);
        assert_eq!(
            out,
            "# HELP function_calls_total Number of calls\n# TYPE function_calls_total counter\n\
             function_calls_total{function=\"a\",method=\"GET\"} 3\nup{function=\"a\"} 1\n\
             function_calls_total{function=\"b\",method=\"GET\"} 3\nup{function=\"b\"} 1\n"
        );
    }
}
