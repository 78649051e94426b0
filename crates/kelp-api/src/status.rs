//! The `status` subresource Kelp adds to every kind (Kubeless had none, issue #482).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The condition type every kind reports: `True` when the object is fully serving.
pub const READY_CONDITION: &str = "Ready";

/// Status of a Function, written by the controller with server-side apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    /// Latest observations (at least `Ready`), one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready pods of the function's Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}

/// Status of a trigger (HTTP, cron, Kinesis; Kafka and NATS triggers have these fields and more).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// Latest observations (at least `Ready`), one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Status of a Kafka, NATS or Kinesis trigger: the trigger status plus what its consumers report.
///
/// The `Ready` condition is `True` (reason `Subscribed`) when a consumer runs for every matched
/// function and each is connected to the broker; `False` with the reason otherwise (`NoFunctions`,
/// `NotSubscribed`, `InvalidTrigger`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicTriggerStatus {
    /// Latest observations (at least `Ready`), one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The names of the Functions the `functionSelector` (Kinesis: `function-name`) matches, each
    /// called for every message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// The latest error a consumer met (a failed call, the broker unreachable, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Kafka: messages published to the topic and not yet delivered, summed over the functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Kinesis: how far behind the shard's latest record the last one read is, in milliseconds
    /// (Kinesis's `MillisBehindLatest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millis_behind_latest: Option<i64>,
}

/// Read access to a status's conditions.
pub trait Conditions {
    /// All conditions.
    fn conditions(&self) -> &[Condition];

    /// The condition of type `type_`, if any.
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }

    /// Whether the [`READY_CONDITION`] is `True`.
    fn is_ready(&self) -> bool {
        self.condition(READY_CONDITION).is_some_and(|c| c.status == "True")
    }
}

impl Conditions for FunctionStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl Conditions for TopicTriggerStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl Conditions for TriggerStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// `new` with each condition's `lastTransitionTime` taken from `old` when the condition's status
/// did not change, and set to `now` (RFC 3339) when it did. Returns `None` when nothing changed
/// at all. The hosts that write statuses as JSON (`kelp up`, the trigger consumers) share it.
pub fn merge_transition_times(old: Option<&Value>, mut new: Value, now: &str) -> Option<Value> {
    let old_conditions = old.and_then(|o| o.get("conditions")).and_then(Value::as_array);
    for condition in new["conditions"].as_array_mut().into_iter().flatten() {
        let previous = old_conditions.and_then(|cs| cs.iter().find(|c| c["type"] == condition["type"]));
        let time = match previous {
            Some(p) if p["status"] == condition["status"] => p["lastTransitionTime"].clone(),
            _ => json!(now),
        };
        condition["lastTransitionTime"] = time;
    }
    (old != Some(&new)).then_some(new)
}
