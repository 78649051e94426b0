//! `kelp autoscale create`: the `spec.horizontalPodAutoscaler` the kubeless CLI wrote (an
//! autoscaling/v2beta1 HorizontalPodAutoscaler, kept as such by `kelp-api`).

use std::collections::BTreeMap;
use std::fmt;

use kelp_api::HpaTemplate;
use serde_json::{Value, json};

use super::{BuildError, check_quantity};

/// The metric an autoscaler follows (`--metric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Metric {
    /// Average CPU utilisation of the function's pods, in percent of the request.
    Cpu,
    /// Calls per second to the function's Service (custom metric `function_calls`).
    Qps,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Qps => "qps",
        })
    }
}

/// The autoscaler for `function`: named after it, with its labels, scaling its Deployment
/// between `min` and `max` replicas; `cpu` targets `targetAverageUtilization: <value>`, `qps`
/// an Object metric `function_calls` on the function's Service with `targetValue: <value>`.
///
/// `scaleTargetRef.apiVersion` is `apps/v1` (the kubeless CLI wrote `apps/v1beta1`, which
/// Kubernetes no longer serves).
pub(crate) fn hpa(
    function: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    metric: Metric,
    min: i32,
    max: i32,
    value: &str,
) -> Result<Value, BuildError> {
    if min <= 0 {
        return Err(BuildError::Flag("--min can't be negative or zero".to_owned()));
    }
    if max < min {
        return Err(BuildError::Flag("--max must be greater than or equal to --min".to_owned()));
    }
    let metric = match metric {
        Metric::Cpu => {
            let percent: i32 = value.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                BuildError::Flag(format!("--value {value:?}: with --metric cpu it is a percentage, e.g. 70"))
            })?;
            json!({"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": percent}})
        }
        Metric::Qps => {
            check_quantity(value)
                .map_err(|reason| BuildError::Flag(format!("--value: with --metric qps, {reason}")))?;
            json!({"type": "Object", "object": {
                "metricName": "function_calls",
                "target": {"kind": "Service", "name": function},
                "targetValue": value,
            }})
        }
    };
    Ok(json!({
        "apiVersion": "autoscaling/v2beta1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": function, "namespace": namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": function},
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [metric],
        },
    }))
}

/// One row of `kelp autoscale list`: target, min, max, metric and value of a stored autoscaler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HpaSummary {
    /// `spec.scaleTargetRef.name`.
    pub(crate) target: String,
    /// `spec.minReplicas`.
    pub(crate) min: String,
    /// `spec.maxReplicas`.
    pub(crate) max: String,
    /// `cpu`, `function_calls`, ... (the first metric).
    pub(crate) metric: String,
    /// Its target value.
    pub(crate) value: String,
}

/// Summarises a stored autoscaler, in the v2beta1 shape the CLI writes or the v2 one.
pub(crate) fn summarise(hpa: &HpaTemplate) -> HpaSummary {
    let v = &hpa.0;
    let text = |pointer: &str| match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let mut summary = HpaSummary {
        target: text("/spec/scaleTargetRef/name"),
        min: text("/spec/minReplicas"),
        max: text("/spec/maxReplicas"),
        ..HpaSummary::default()
    };
    if let Some(metric) = v.pointer("/spec/metrics/0") {
        let first = |pointers: &[&str]| pointers.iter().map(|p| text_of(metric.pointer(p))).find(|s| !s.is_empty());
        summary.metric = first(&[
            "/resource/name",
            "/object/metricName",
            "/object/metric/name",
            "/pods/metricName",
            "/pods/metric/name",
            "/external/metricName",
            "/external/metric/name",
        ])
        .unwrap_or_default();
        summary.value = first(&[
            "/resource/targetAverageUtilization",
            "/resource/target/averageUtilization",
            "/object/targetValue",
            "/object/target/value",
            "/object/target/averageValue",
            "/pods/targetAverageValue",
            "/pods/target/averageValue",
            "/external/targetValue",
            "/external/target/value",
        ])
        .unwrap_or_default();
    } else if let Some(cpu) = v.pointer("/spec/targetCPUUtilizationPercentage") {
        summary.metric = "cpu".to_owned();
        summary.value = text_of(Some(cpu));
    }
    summary
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("created-by".into(), "kubeless".into()), ("function".into(), "hpa-fn".into())])
    }

    #[test]
    fn cpu_autoscaler_is_the_kubeless_v2beta1_shape() {
        let built = hpa("hpa-fn", "default", &labels(), Metric::Cpu, 1, 5, "70").unwrap();
        let fixture: Value =
            serde_saphyr::from_str(include_str!("../../../kelp-api/tests/fixtures/function-hpa-v2beta1.yaml")).unwrap();
        let mut expected = fixture["spec"]["horizontalPodAutoscaler"].clone();
        expected.as_object_mut().unwrap().remove("status");
        expected["spec"]["scaleTargetRef"]["apiVersion"] = json!("apps/v1");
        assert_eq!(built, expected);
        let template = HpaTemplate(built);
        assert!(template.is_configured());
        let v2 = template.to_v2().unwrap();
        assert_eq!(v2.spec.as_ref().unwrap().max_replicas, 5);
        assert_eq!(
            summarise(&template),
            HpaSummary {
                target: "hpa-fn".into(),
                min: "1".into(),
                max: "5".into(),
                metric: "cpu".into(),
                value: "70".into()
            }
        );
    }

    #[test]
    fn qps_autoscaler_targets_the_service_metric() {
        let built = hpa("hello", "ns", &labels(), Metric::Qps, 2, 10, "500m").unwrap();
        assert_eq!(
            built["spec"]["metrics"],
            json!([{"type": "Object", "object": {
                "metricName": "function_calls",
                "target": {"kind": "Service", "name": "hello"},
                "targetValue": "500m",
            }}])
        );
        let template = HpaTemplate(built);
        template.to_v2().unwrap();
        let summary = summarise(&template);
        assert_eq!((summary.metric.as_str(), summary.value.as_str()), ("function_calls", "500m"));
    }

    #[test]
    fn bounds_and_values_are_checked() {
        let err = |min, max, metric, value| hpa("f", "d", &labels(), metric, min, max, value).unwrap_err().to_string();
        assert!(err(0, 1, Metric::Cpu, "70").contains("--min"));
        assert!(err(3, 2, Metric::Cpu, "70").contains("--max"));
        assert!(err(1, 2, Metric::Cpu, "high").contains("percentage"));
        assert!(err(1, 2, Metric::Qps, "fast").contains("quantity"));
    }
}
