//! The platform's own Prometheus metrics: cold starts per function.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the cold-start histogram, in seconds.
const BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Counts and durations of cold starts (an instance requested until its first `/healthz` 200),
/// by namespace, function and whether a pre-warmed process was used.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    cold_starts: Mutex<BTreeMap<(String, String, bool), Histogram>>,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Records one cold start.
    pub(crate) fn cold_start(&self, namespace: &str, function: &str, pooled: bool, took: Duration) {
        let mut all = self.cold_starts.lock().unwrap();
        let h = all.entry((namespace.to_owned(), function.to_owned(), pooled)).or_default();
        let secs = took.as_secs_f64();
        for (bucket, le) in h.buckets.iter_mut().zip(BUCKETS) {
            if secs <= le {
                *bucket += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Appends the Prometheus text of `kelp_cold_start_seconds`.
    pub(crate) fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP kelp_cold_start_seconds Time from an instance being requested to its first healthy /healthz.\n",
        );
        out.push_str("# TYPE kelp_cold_start_seconds histogram\n");
        for ((ns, name, pooled), h) in self.cold_starts.lock().unwrap().iter() {
            let labels = format!("namespace=\"{}\",function=\"{}\",pooled=\"{pooled}\"", escape(ns), escape(name));
            for (count, le) in h.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(out, "kelp_cold_start_seconds_bucket{{{labels},le=\"{le}\"}} {count}");
            }
            let _ = writeln!(out, "kelp_cold_start_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "kelp_cold_start_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "kelp_cold_start_seconds_count{{{labels}}} {}", h.count);
        }
    }
}

/// A Prometheus label value, escaped.
pub(crate) fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
