//! `spec.horizontalPodAutoscaler`: kept verbatim, converted to autoscaling/v2 on demand.
//!
//! Kubeless stores a whole autoscaling/v2beta1 `HorizontalPodAutoscaler` there (the kubeless
//! CLI's `autoscale create`), a version k8s-openapi no longer has and Kubernetes no longer
//! serves. [`HpaTemplate`] keeps the JSON exactly as stored and [`HpaTemplate::to_v2`] produces
//! the autoscaling/v2 object a controller should apply.

use std::borrow::Cow;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The stored `horizontalPodAutoscaler` JSON (v2beta1 from Kubeless, v2 or v1 from newer
/// writers), unchanged.
///
/// Go clients always write this field, mostly as an empty object
/// (`{metadata: {creationTimestamp: null}, spec: {scaleTargetRef: {kind: "", name: ""},
/// maxReplicas: 0}, status: {...}}`); use [`HpaTemplate::is_configured`] to tell a real one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HpaTemplate(pub Value);

/// Why an [`HpaTemplate`] cannot become an autoscaling/v2 object.
#[derive(Debug, thiserror::Error)]
pub enum HpaConversionError {
    /// The stored value is not a JSON object.
    #[error("must be an object")]
    NotAnObject,
    /// A `spec.metrics` entry cannot be converted.
    #[error("spec.metrics[{index}]: {reason}")]
    Metric {
        /// Position in `spec.metrics`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The converted value is not a valid autoscaling/v2 object.
    #[error("not a valid autoscaling/v2 HorizontalPodAutoscaler: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The metric sources of a `MetricSpec`, by their JSON key.
const METRIC_SOURCES: [&str; 5] = ["resource", "containerResource", "pods", "object", "external"];
/// Keys that only a v2beta1 metric source has.
const V2BETA1_KEYS: [&str; 4] = ["metricName", "targetAverageUtilization", "targetAverageValue", "targetValue"];
/// Deployment API versions Kubeless wrote into `scaleTargetRef` that Kubernetes removed.
const LEGACY_DEPLOYMENT_VERSIONS: [&str; 3] = ["apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"];

impl HpaTemplate {
    /// Whether this is a real autoscaler: Kubeless applies it only when `metadata.name` and
    /// `spec.scaleTargetRef.name` are both non-empty.
    pub fn is_configured(&self) -> bool {
        let non_empty = |pointer| self.0.pointer(pointer).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        non_empty("/metadata/name") && non_empty("/spec/scaleTargetRef/name")
    }

    /// Converts to an autoscaling/v2 `HorizontalPodAutoscaler` (`apiVersion`/`kind` set to
    /// autoscaling/v2; `status` dropped, since this is a template).
    ///
    /// Accepts v2beta1, v2 and v1 shapes:
    /// - v2beta1 metric sources: `targetAverageUtilization` → `target: {type: Utilization,
    ///   averageUtilization}`; `targetAverageValue` → `target: {type: AverageValue,
    ///   averageValue}`; `targetValue` → `target: {type: Value, value}`; `metricName`
    ///   (+ `selector`, or `metricSelector` for External) → `metric: {name, selector}`; the
    ///   Object source's `target` reference → `describedObject`;
    /// - v2 metric sources (with `target`) pass through unchanged;
    /// - v1 `spec.targetCPUUtilizationPercentage` (without `metrics`) → a CPU Utilization metric.
    ///
    /// A `scaleTargetRef` to a Deployment in `apps/v1beta1`, `apps/v1beta2` or
    /// `extensions/v1beta1` (the kubeless CLI writes `apps/v1beta1`) is pointed at `apps/v1`.
    pub fn to_v2(&self) -> Result<HorizontalPodAutoscaler, HpaConversionError> {
        let mut hpa = self.0.as_object().cloned().ok_or(HpaConversionError::NotAnObject)?;
        hpa.remove("status");
        hpa.remove("apiVersion");
        hpa.remove("kind");
        if let Some(spec) = hpa.get_mut("spec").and_then(Value::as_object_mut) {
            convert_spec(spec)?;
        }
        Ok(serde_json::from_value(Value::Object(hpa))?)
    }
}

fn convert_spec(spec: &mut Map<String, Value>) -> Result<(), HpaConversionError> {
    if let Some(target) = spec.get_mut("scaleTargetRef").and_then(Value::as_object_mut)
        && target.get("kind").and_then(Value::as_str) == Some("Deployment")
        && target.get("apiVersion").and_then(Value::as_str).is_some_and(|v| LEGACY_DEPLOYMENT_VERSIONS.contains(&v))
    {
        target.insert("apiVersion".into(), "apps/v1".into());
    }
    if let Some(percent) = spec.remove("targetCPUUtilizationPercentage")
        && !spec.contains_key("metrics")
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": percent}}}]),
        );
    }
    if let Some(metrics) = spec.get_mut("metrics").and_then(Value::as_array_mut) {
        for (index, metric) in metrics.iter_mut().enumerate() {
            convert_metric(metric).map_err(|reason| HpaConversionError::Metric { index, reason: reason.into() })?;
        }
    }
    Ok(())
}

/// Rewrites one v2beta1 `MetricSpec` in place; v2 ones are left alone.
fn convert_metric(metric: &mut Value) -> Result<(), &'static str> {
    let metric = metric.as_object_mut().ok_or("must be an object")?;
    for source_key in METRIC_SOURCES {
        let Some(source) = metric.get_mut(source_key).and_then(Value::as_object_mut) else {
            continue;
        };
        if !V2BETA1_KEYS.iter().any(|key| source.contains_key(*key)) {
            continue;
        }
        if source_key == "object"
            && let Some(described) = source.remove("target")
        {
            source.insert("describedObject".into(), described);
        }
        let selector_key = if source_key == "external" { "metricSelector" } else { "selector" };
        let selector = source.remove(selector_key);
        if let Some(name) = source.remove("metricName") {
            let mut identifier = Map::new();
            identifier.insert("name".into(), name);
            if let Some(selector) = selector {
                identifier.insert("selector".into(), selector);
            }
            source.insert("metric".into(), Value::Object(identifier));
        }
        let target = if let Some(utilization) = source.remove("targetAverageUtilization") {
            json!({"type": "Utilization", "averageUtilization": utilization})
        } else if let Some(value) = source.remove("targetAverageValue").or_else(|| source.remove("averageValue")) {
            json!({"type": "AverageValue", "averageValue": value})
        } else if let Some(value) = source.remove("targetValue") {
            json!({"type": "Value", "value": value})
        } else {
            return Err("has no targetAverageUtilization, targetAverageValue or targetValue");
        };
        source.insert("target".into(), target);
    }
    Ok(())
}

impl JsonSchema for HpaTemplate {
    fn schema_name() -> Cow<'static, str> {
        "HorizontalPodAutoscalerTemplate".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        crate::embedded::preserve_unknown_object(generator)
    }
}
