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

/// How long scraping every instance may take in all: an instance that has not answered by then
/// is left out of this exposition rather than waited for.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(2);
/// Instances scraped at the same time, at most.
const SCRAPE_CONCURRENCY: usize = 16;
/// The most bytes read of one instance's `/metrics` (its runtime's three series take a few KiB):
/// an instance answering more is left out.
const MAX_SCRAPE: usize = 1 << 20;

/// The whole exposition (`triggers`: the Kafka and NATS consumers' series).
pub async fn render(platform: &Platform, triggers: &kelp_events::Metrics) -> String {
    let mut out = platform.render_metrics();
    out.push_str(&triggers.render());
    let targets = platform.instances().into_iter().filter(|i| i.ready).filter_map(|instance| {
        let labels = format!(
            "namespace=\"{}\",function=\"{}\",pod=\"{}\"",
            instance.namespace, instance.function, instance.name
        );
        Some((labels, instance.port?))
    });
    scrape_all(targets, SCRAPE_DEADLINE, &mut out).await;
    out
}

/// Scrapes `http://127.0.0.1:<port>/metrics` of every target (labels, port), at most
/// [`SCRAPE_CONCURRENCY`] at a time and all within `deadline`, and appends what answered in time
/// to `out`, relabelled, in the targets' order.
async fn scrape_all(targets: impl Iterator<Item = (String, u16)>, deadline: Duration, out: &mut String) {
    use futures_util::StreamExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let until = tokio::time::Instant::now() + deadline;
    let scrapes = futures_util::stream::iter(targets).map(|(labels, port)| {
        let client = client.clone();
        async move {
            let url = format!("http://127.0.0.1:{port}/metrics");
            let scraped = scrape(&client, &url);
            tokio::time::timeout_at(until, scraped).await.ok().flatten().map(|body| (labels, body))
        }
    });
    let bodies: Vec<_> = scrapes.buffered(SCRAPE_CONCURRENCY).collect().await;
    let mut described = BTreeSet::new();
    for (labels, body) in bodies.into_iter().flatten() {
        relabel(&String::from_utf8_lossy(&body), &labels, &mut described, out);
    }
}

/// The HTTP client of the scrapes.
type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The body of `url` (an instance's `/metrics`) if it is at most [`MAX_SCRAPE`] bytes; the rest of
/// a larger answer is not read.
async fn scrape(client: &Client, url: &str) -> Option<Bytes> {
    let request = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
    let response = client.request(request).await.ok()?;
    match Limited::new(response.into_body(), MAX_SCRAPE).collect().await {
        Ok(body) => Some(body.to_bytes()),
        Err(e) => {
            tracing::warn!(%url, error = %e, "instance metrics not scraped");
            None
        }
    }
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

#[cfg(test)]
mod scrape_tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What happened on the hanging instances: `+port` when a scrape connected, `-port` when the
    /// scraper gave up on it (closed the connection).
    type Journal = Arc<Mutex<Vec<String>>>;

    /// An instance that accepts a scrape and never answers (a real socket).
    async fn hanging(journal: Journal) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                journal.lock().unwrap().push(format!("+{port}"));
                let journal = journal.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                    journal.lock().unwrap().push(format!("-{port}"));
                });
            }
        });
        port
    }

    /// An instance that answers its `/metrics`.
    async fn answering() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf).await;
                    let body = "function_calls_total 7\n";
                    let head =
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                    let _ = conn.write_all(format!("{head}{body}").as_bytes()).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn hanging_instances_are_scraped_together_and_skipped() {
        let journal = Journal::default();
        let mut targets = Vec::new();
        for i in 0..4 {
            targets.push((format!("pod=\"hang{i}\""), hanging(journal.clone()).await));
        }
        targets.push(("pod=\"ok\"".to_owned(), answering().await));
        let mut out = String::new();
        scrape_all(targets.into_iter(), Duration::from_millis(500), &mut out).await;
        assert_eq!(out, "function_calls_total{pod=\"ok\"} 7\n", "only the answering instance's samples");
        // Every hanging instance was connected to before the scraper gave up on the first one:
        // they were waited for together, not one after another.
        let journal = journal.lock().unwrap().clone();
        let first_given_up = journal.iter().position(|e| e.starts_with('-')).unwrap_or(journal.len());
        assert_eq!(journal[..first_given_up].len(), 4, "all four scrapes were under way at once: {journal:?}");
    }
}
