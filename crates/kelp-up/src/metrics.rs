//! The platform's `/metrics`: the engine's own series, the Kafka and NATS consumers' series
//! (`kelp_trigger_*`, per trigger and function), then every running instance's function
//! metrics (`function_calls_total`, `function_failures_total`, `function_duration_seconds`), with
//! `namespace`, `function` and `pod` labels added — what Prometheus's relabelling added for
//! Kubeless's pods, so `sum(rate(function_calls_total[5m])) by (function)` works unchanged.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kelp_local::Platform;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// How long one instance may take to answer its `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// The whole exposition (`triggers`: the Kafka and NATS consumers' series).
pub async fn render(platform: &Platform, triggers: &kelp_events::Metrics) -> String {
    let mut out = platform.render_metrics();
    out.push_str(&triggers.render());
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut described = BTreeSet::new();
    for instance in platform.instances().into_iter().filter(|i| i.ready) {
        let Some(port) = instance.port else { continue };
        let Ok(request) = http::Request::get(format!("http://127.0.0.1:{port}/metrics")).body(Full::new(Bytes::new()))
        else {
            continue;
        };
        let scraped = async {
            let response = client.request(request).await.ok()?;
            response.into_body().collect().await.ok().map(|b| b.to_bytes())
        };
        let Ok(Some(body)) = tokio::time::timeout(SCRAPE_TIMEOUT, scraped).await else { continue };
        let labels = format!(
            "namespace=\"{}\",function=\"{}\",pod=\"{}\"",
            instance.namespace, instance.function, instance.name
        );
        relabel(&String::from_utf8_lossy(&body), &labels, &mut described, &mut out);
    }
    out
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
