//! The Prometheus metrics of the Kubeless runtime contract, by HTTP method:
//! `function_calls_total`, `function_failures_total` and the `function_duration_seconds` histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Histogram bounds, in seconds: those of the Python client Kubeless's runtimes used.
const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Counters for one `method` label value.
#[derive(Debug, Default)]
struct Series {
    calls: AtomicU64,
    failures: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
}

/// The function's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    series: RwLock<BTreeMap<String, Arc<Series>>>,
}

impl Metrics {
    /// Records one call.
    pub fn observe(&self, method: &str, duration: Duration, failed: bool) {
        let series = self.series.read().unwrap().get(method).cloned();
        let series =
            series.unwrap_or_else(|| self.series.write().unwrap().entry(method.to_string()).or_default().clone());
        series.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            series.failures.fetch_add(1, Ordering::Relaxed);
        }
        let secs = duration.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            series.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        series.sum_nanos.fetch_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4), with the pool's count of pipelined calls
    /// (`crate::pool`) as `kelp_pipelined_calls_total`.
    pub fn render(&self, pipelined: u64) -> String {
        let series = self.series.read().unwrap();
        let mut out = String::new();
        out.push_str("# HELP function_duration_seconds Duration of user function in seconds\n");
        out.push_str("# TYPE function_duration_seconds histogram\n");
        for (method, s) in series.iter() {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "function_duration_seconds_bucket{{le=\"{bound}\",method=\"{method}\"}} {cumulative}"
                );
            }
            let calls = s.calls.load(Ordering::Relaxed);
            let sum = s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "function_duration_seconds_bucket{{le=\"+Inf\",method=\"{method}\"}} {calls}");
            let _ = writeln!(out, "function_duration_seconds_count{{method=\"{method}\"}} {calls}");
            let _ = writeln!(out, "function_duration_seconds_sum{{method=\"{method}\"}} {sum}");
        }
        for (name, help, value) in [
            (
                "function_calls_total",
                "Number of calls to user function",
                (|s: &Series| s.calls.load(Ordering::Relaxed)) as fn(&Series) -> u64,
            ),
            ("function_failures_total", "Number of exceptions in user function", |s: &Series| {
                s.failures.load(Ordering::Relaxed)
            }),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (method, s) in series.iter() {
                let _ = writeln!(out, "{name}{{method=\"{method}\"}} {}", value(s));
            }
        }
        let _ = writeln!(
            out,
            "# HELP kelp_pipelined_calls_total Calls sent to a busy worker ahead of its answer\n\
             # TYPE kelp_pipelined_calls_total counter\nkelp_pipelined_calls_total {pipelined}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_kubeless_series() {
        let m = Metrics::default();
        m.observe("GET", Duration::from_millis(3), false);
        m.observe("GET", Duration::from_millis(30), true);
        m.observe("POST", Duration::from_secs(20), false);
        let text = m.render(7);
        for line in [
            "function_calls_total{method=\"GET\"} 2",
            "function_failures_total{method=\"GET\"} 1",
            "function_failures_total{method=\"POST\"} 0",
            "function_duration_seconds_bucket{le=\"0.005\",method=\"GET\"} 1",
            "function_duration_seconds_bucket{le=\"0.05\",method=\"GET\"} 2",
            "function_duration_seconds_bucket{le=\"10\",method=\"POST\"} 0",
            "function_duration_seconds_bucket{le=\"+Inf\",method=\"POST\"} 1",
            "function_duration_seconds_count{method=\"GET\"} 2",
            "# TYPE function_calls_total counter",
            "kelp_pipelined_calls_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
