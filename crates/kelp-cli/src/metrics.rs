//! `kelp function top`: the three Kubeless metrics of a function's `/metrics`, per `method`.

use std::collections::BTreeMap;

use serde::Serialize;

/// One row of `kelp function top`, with the JSON/YAML keys of `kubeless function top`, each left
/// out when empty or zero (Go's `omitempty`), and numbers written as Go writes a `float64`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Metric {
    /// The function.
    #[serde(rename = "function", skip_serializing_if = "String::is_empty")]
    pub(crate) function_name: String,
    /// Its namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) namespace: String,
    /// The `method` label.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) method: String,
    /// Why there are no figures (`Function does not expose metrics`, ...), else empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) message: String,
    /// `function_calls_total`.
    #[serde(skip_serializing_if = "is_zero", serialize_with = "go_float")]
    pub(crate) total_calls: f64,
    /// `function_failures_total`.
    #[serde(skip_serializing_if = "is_zero", serialize_with = "go_float")]
    pub(crate) total_failures: f64,
    /// `function_duration_seconds_sum`.
    #[serde(skip_serializing_if = "is_zero", serialize_with = "go_float")]
    pub(crate) total_duration_seconds: f64,
    /// `function_duration_seconds_sum / function_duration_seconds_count`.
    #[serde(skip_serializing_if = "is_zero", serialize_with = "go_float")]
    pub(crate) avg_duration_seconds: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// A number as Go's `encoding/json` writes a `float64`: a whole number without a fraction (`2`,
/// not `2.0`).
fn go_float<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    // Whole numbers below 2^53 are exact as integers.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() < EXACT {
        #[allow(clippy::cast_possible_truncation)] // whole and within ±2^53: exact.
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// What `top` says when the text has no series with a `method` label.
pub(crate) const NO_METRICS: &str = "Function does not expose metrics";
/// What `top` says when `/metrics` cannot be read.
pub(crate) const UNREACHABLE: &str = "Unable to get function metrics";

#[derive(Default)]
struct Sums {
    calls: f64,
    failures: f64,
    duration_sum: f64,
    duration_count: f64,
}

/// The rows of one function from its Prometheus text: one per `method`, sorted; one row with
/// [`NO_METRICS`] when no series carries a `method` label.
pub(crate) fn function_metrics(function: &str, namespace: &str, text: &str) -> Vec<Metric> {
    let mut methods: BTreeMap<String, Sums> = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let Some((name, labels, value)) = parse_sample(line) else { continue };
        let Some(method) = labels.get("method") else { continue };
        let sums = methods.entry(method.clone()).or_default();
        match name {
            "function_calls_total" => sums.calls += value,
            "function_failures_total" => sums.failures += value,
            "function_duration_seconds_sum" => sums.duration_sum += value,
            "function_duration_seconds_count" => sums.duration_count += value,
            _ => {}
        }
    }
    let base = Metric { function_name: function.to_owned(), namespace: namespace.to_owned(), ..Metric::default() };
    if methods.is_empty() {
        return vec![Metric { message: NO_METRICS.to_owned(), ..base }];
    }
    methods
        .into_iter()
        .map(|(method, sums)| Metric {
            method,
            total_calls: sums.calls,
            total_failures: sums.failures,
            total_duration_seconds: sums.duration_sum,
            avg_duration_seconds: if sums.duration_count > 0.0 { sums.duration_sum / sums.duration_count } else { 0.0 },
            ..base.clone()
        })
        .collect()
}

/// Splits `name{a="b",c="d"} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let (name, rest) = match line.find(['{', ' ', '\t']) {
        Some(at) => line.split_at(at),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(inner) = rest.strip_prefix('{') {
        let end = label_block_end(inner)?;
        parse_labels(&inner[..end], &mut labels)?;
        &inner[end + 1..]
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

/// The index of the `}` that closes a label block (quotes and escapes skipped).
fn label_block_end(inner: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_labels(block: &str, labels: &mut BTreeMap<String, String>) -> Option<()> {
    let mut rest = block.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        rest = after[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP function_duration_seconds Duration of user function in seconds
# TYPE function_duration_seconds histogram
function_duration_seconds_bucket{method="GET",le="0.005"} 3
function_duration_seconds_bucket{method="GET",le="+Inf"} 4
function_duration_seconds_sum{method="GET"} 0.5
function_duration_seconds_count{method="GET"} 4
function_duration_seconds_sum{method="POST"} 2
function_duration_seconds_count{method="POST"} 1
# HELP function_calls_total Number of calls to user function
# TYPE function_calls_total counter
function_calls_total{method="GET"} 4
function_calls_total{method="POST"} 1
# HELP function_failures_total Number of exceptions in user function
# TYPE function_failures_total counter
function_failures_total{method="POST"} 1
process_cpu_seconds_total 12.5
"#;

    #[test]
    fn aggregates_per_method() {
        let rows = function_metrics("hello", "default", TEXT);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            Metric {
                function_name: "hello".into(),
                namespace: "default".into(),
                method: "GET".into(),
                message: String::new(),
                total_calls: 4.0,
                total_failures: 0.0,
                total_duration_seconds: 0.5,
                avg_duration_seconds: 0.125,
            }
        );
        assert_eq!((rows[1].method.as_str(), rows[1].total_failures, rows[1].avg_duration_seconds), ("POST", 1.0, 2.0));
        // As kubeless v1.0.8 prints it: no empty `message`, whole numbers without a fraction.
        assert_eq!(
            serde_json::to_string(&rows[0]).unwrap(),
            r#"{"function":"hello","namespace":"default","method":"GET","total_calls":4,"total_duration_seconds":0.5,"avg_duration_seconds":0.125}"#
        );
    }

    #[test]
    fn functions_without_method_series_say_so() {
        let rows = function_metrics("f", "ns", "# nothing\nprocess_open_fds 7\n");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].message, NO_METRICS);
    }

    #[test]
    fn samples_with_escapes_and_timestamps() {
        let (name, labels, value) = parse_sample(r#"x{a="q\"}",b="2"} 1.5 1700000000"#).unwrap();
        assert_eq!((name, value), ("x", 1.5));
        assert_eq!(labels["a"], "q\"}");
        assert_eq!(labels["b"], "2");
        assert_eq!(parse_sample("y 3").unwrap().2, 3.0);
        assert!(parse_sample("garbage").is_none());
    }
}
