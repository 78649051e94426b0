//! The trigger kinds: `HTTPTrigger`, `CronJobTrigger`, `KafkaTrigger`, `NATSTrigger` and
//! `KinesisTrigger`.
//!
//! As for Functions, every spec field is optional (Kubeless objects may omit any) and absent
//! fields are not written back.

use std::collections::BTreeMap;

use croner::parser::{CronParser, Seconds, Year};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::status::{TopicTriggerStatus, TriggerStatus};
use crate::validation::{
    NameRule, Validate, ValidationErrors, check_dns1123_subdomain, collect_metadata_errors, collect_reference_errors,
    collect_required,
};

/// The ingress gateways an HTTPTrigger may name (empty means nginx).
pub const GATEWAYS: [&str; 3] = ["nginx", "traefik", "kong"];

/// Exposes a function through an Ingress named after the trigger.
// clippy reads the repeated `printcolumn(type_ = ...)` keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeless.io",
    version = "v1beta1",
    kind = "HTTPTrigger",
    plural = "httptriggers",
    singular = "httptrigger",
    namespaced,
    status = "TriggerStatus",
    derive = "PartialEq",
    doc = "An HTTP trigger (kubeless.io/v1beta1): an Ingress to a function, served by Kelp.",
    printcolumn(name = "Function", type_ = "string", json_path = ".spec.function-name"),
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host-name"),
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.path", priority = 1),
    printcolumn(name = "Gateway", type_ = "string", json_path = ".spec.gateway", priority = 1),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct HTTPTriggerSpec {
    /// The function to route to.
    #[serde(rename = "function-name", default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    /// The Ingress rule's host.
    #[serde(rename = "host-name", default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// TLS through ACME (adds `kubernetes.io/tls-acme`, secret `<trigger>-tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// An existing TLS Secret for the host.
    #[serde(rename = "tls-secret", default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
    /// The path, without the leading `/` (the Ingress path is `"/" + path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A Secret with an htpasswd `auth` key for basic authentication.
    #[serde(rename = "basic-auth-secret", default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_secret: Option<String>,
    /// `nginx` (also when empty), `traefik` or `kong`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Enable CORS on the Ingress.
    #[serde(rename = "cors-enable", default, skip_serializing_if = "Option::is_none")]
    pub cors_enable: Option<bool>,
}

impl Validate for HTTPTriggerSpec {
    fn collect_errors(&self, errors: &mut ValidationErrors) {
        collect_reference_errors("spec.function-name", self.function_name.as_deref(), errors);
        let host = self.host_name.as_deref().unwrap_or_default();
        if !host.is_empty()
            && let Err(reason) = check_dns1123_subdomain(host.strip_prefix("*.").unwrap_or(host))
        {
            errors.invalid("spec.host-name", reason);
        }
        if self.path.as_deref().is_some_and(|path| path.starts_with('/')) {
            errors.invalid("spec.path", "must not start with '/' (the Ingress path is \"/\" + path)");
        }
        let gateway = self.gateway.as_deref().unwrap_or_default();
        if !(gateway.is_empty() || GATEWAYS.contains(&gateway)) {
            errors.not_supported("spec.gateway", "must be one of nginx, traefik, kong (or empty)");
        }
        let tls_secret = self.tls_secret.as_deref().unwrap_or_default();
        let basic_auth = self.basic_auth_secret.as_deref().unwrap_or_default();
        for (field, secret) in [("spec.tls-secret", tls_secret), ("spec.basic-auth-secret", basic_auth)] {
            if !secret.is_empty()
                && let Err(reason) = check_dns1123_subdomain(secret)
            {
                errors.invalid(field, reason);
            }
        }
        if self.tls == Some(true) && !tls_secret.is_empty() {
            errors.not_supported("spec.tls-secret", "must not be set together with spec.tls");
        }
        if gateway == "kong" && !basic_auth.is_empty() {
            errors
                .not_supported("spec.basic-auth-secret", "Setting basic authentication with Kong is not yet supported");
        }
    }
}

/// Calls a function on a 5-field cron schedule (a CronJob `trigger-<function>`).
// clippy reads the repeated `printcolumn(type_ = ...)` keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeless.io",
    version = "v1beta1",
    kind = "CronJobTrigger",
    plural = "cronjobtriggers",
    singular = "cronjobtrigger",
    namespaced,
    status = "TriggerStatus",
    derive = "PartialEq",
    doc = "A cron trigger (kubeless.io/v1beta1): calls a function on a schedule, served by Kelp.",
    printcolumn(name = "Function", type_ = "string", json_path = ".spec.function-name"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct CronJobTriggerSpec {
    /// A standard 5-field cron schedule (or an `@hourly`-style alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The function to call.
    #[serde(rename = "function-name", default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    /// Any JSON, sent as the request body. A stored `null` (what Go writes for "no payload")
    /// is kept as `Some(Value::Null)`, an absent key as `None`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schemars(
        schema_with = "crate::embedded::preserve_unknown_any",
        description = "Any JSON, sent as the request body."
    )]
    pub payload: Option<Value>,
}

/// Deserializes a present field (even `null`) as `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Checks a cron schedule the way CronJobs take it: exactly 5 fields (Vixie cron; no seconds,
/// no years), or an `@yearly`/`@monthly`/`@weekly`/`@daily`/`@hourly` alias.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    parse_schedule(schedule).map(drop)
}

/// Parses a 5-field cron schedule (or an `@hourly`-style alias) as a CronJob reads it.
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    parser.parse(schedule).map_err(|e| format!("must be a 5-field cron schedule: {e}"))
}

impl Validate for CronJobTriggerSpec {
    fn collect_errors(&self, errors: &mut ValidationErrors) {
        match self.schedule.as_deref().unwrap_or_default() {
            "" => errors.required("spec.schedule", "must not be empty"),
            schedule => {
                if let Err(reason) = check_schedule(schedule) {
                    errors.invalid("spec.schedule", reason);
                }
            }
        }
        collect_reference_errors("spec.function-name", self.function_name.as_deref(), errors);
    }
}

/// Defines a message-queue trigger kind: a topic plus a selector over Functions.
macro_rules! topic_trigger {
    ($(#[$meta:meta])* $spec:ident, $kind:tt, $plural:tt, $singular:tt, $doc:tt) => {
        $(#[$meta])*
        // clippy reads the repeated `printcolumn(type_ = ...)` keys as duplicated attributes.
        #[allow(clippy::duplicated_attributes)]
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "kubeless.io",
            version = "v1beta1",
            kind = $kind,
            plural = $plural,
            singular = $singular,
            namespaced,
            status = "TopicTriggerStatus",
            derive = "PartialEq",
            doc = $doc,
            printcolumn(name = "Topic", type_ = "string", json_path = ".spec.topic"),
            printcolumn(
                name = "Ready",
                type_ = "string",
                json_path = ".status.conditions[?(@.type==\"Ready\")].status"
            ),
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        pub struct $spec {
            /// The topic (Kafka) or subject (NATS) to consume.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub topic: Option<String>,
            /// The Functions (in the trigger's namespace) to call for each message.
            #[serde(rename = "functionSelector", default, skip_serializing_if = "Option::is_none")]
            pub function_selector: Option<LabelSelector>,
        }

        impl Validate for $spec {
            fn collect_errors(&self, errors: &mut ValidationErrors) {
                collect_required("spec.topic", self.topic.as_deref(), errors);
                if let Some(selector) = &self.function_selector {
                    collect_selector_errors("spec.functionSelector", selector, errors);
                }
            }
        }
    };
}

topic_trigger!(
    /// Calls the Functions matching a selector for each message on a Kafka topic.
    KafkaTriggerSpec, "KafkaTrigger", "kafkatriggers", "kafkatrigger",
    "A Kafka trigger (kubeless.io/v1beta1): calls the selected functions per message, served by Kelp."
);
topic_trigger!(
    /// Calls the Functions matching a selector for each message on a NATS subject.
    NATSTriggerSpec, "NATSTrigger", "natstriggers", "natstrigger",
    "A NATS trigger (kubeless.io/v1beta1): calls the selected functions per message, served by Kelp."
);

/// A label selector as a label query (`k=v,k2 in (a,b),k3,!k4`), the form `kubectl -l`, the
/// `kelp` CLI's `--function-selector` and its tables use.
pub fn label_query(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> =
        selector.match_labels.iter().flatten().map(|(key, value)| format!("{key}={value}")).collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.as_deref().unwrap_or_default().join(",");
        parts.push(match expression.operator.as_str() {
            "In" => format!("{} in ({values})", expression.key),
            "NotIn" => format!("{} notin ({values})", expression.key),
            "Exists" => expression.key.clone(),
            "DoesNotExist" => format!("!{}", expression.key),
            other => format!("{} {other} ({values})", expression.key),
        });
    }
    parts.join(",")
}

/// Whether an object with `labels` is selected by `selector`, as Kubernetes reads it: every
/// `matchLabels` pair and every `matchExpressions` requirement must hold; an empty selector
/// selects everything. An unknown operator selects nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs_hold = selector.match_labels.iter().flatten().all(|(key, value)| labels.get(key) == Some(value));
    pairs_hold
        && selector.match_expressions.iter().flatten().all(|expression| {
            let value = labels.get(&expression.key);
            let values = expression.values.as_deref().unwrap_or_default();
            match expression.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Checks `matchExpressions` (operators and their values) of a label selector.
fn collect_selector_errors(field: &str, selector: &LabelSelector, errors: &mut ValidationErrors) {
    for (i, expression) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        if expression.key.is_empty() {
            errors.required(format!("{at}.key"), "must not be empty");
        }
        let has_values = expression.values.as_ref().is_some_and(|v| !v.is_empty());
        match expression.operator.as_str() {
            "In" | "NotIn" if !has_values => {
                errors.required(format!("{at}.values"), "must be specified for In and NotIn");
            }
            "Exists" | "DoesNotExist" if has_values => {
                errors.invalid(format!("{at}.values"), "must be empty for Exists and DoesNotExist");
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errors.not_supported(format!("{at}.operator"), "must be one of In, NotIn, Exists, DoesNotExist"),
        }
    }
}

/// Calls a function for each record of an AWS Kinesis stream shard.
// clippy reads the repeated `printcolumn(type_ = ...)` keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeless.io",
    version = "v1beta1",
    kind = "KinesisTrigger",
    plural = "kinesistriggers",
    singular = "kinesistrigger",
    namespaced,
    status = "TopicTriggerStatus",
    derive = "PartialEq",
    doc = "A Kinesis trigger (kubeless.io/v1beta1): calls a function per stream record, served by Kelp.",
    printcolumn(name = "Function", type_ = "string", json_path = ".spec.function-name"),
    printcolumn(name = "Stream", type_ = "string", json_path = ".spec.stream"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.aws-region", priority = 1),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct KinesisTriggerSpec {
    /// The function to call.
    #[serde(rename = "function-name", default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    /// The AWS region of the stream.
    #[serde(rename = "aws-region", default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// A Secret with keys `aws_access_key_id` and `aws_secret_access_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The stream name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The shard ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// A custom Kinesis endpoint URL (e.g. a local emulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl Validate for KinesisTriggerSpec {
    fn collect_errors(&self, errors: &mut ValidationErrors) {
        collect_reference_errors("spec.function-name", self.function_name.as_deref(), errors);
        collect_required("spec.aws-region", self.aws_region.as_deref(), errors);
        collect_reference_errors("spec.secret", self.secret.as_deref(), errors);
        collect_required("spec.stream", self.stream.as_deref(), errors);
        collect_required("spec.shard", self.shard.as_deref(), errors);
    }
}

/// Implements [`Validate`] for trigger roots: `metadata.name` (an RFC 1123 subdomain) plus the
/// spec.
macro_rules! validate_trigger_objects {
    ($($kind:ty),*) => {$(
        impl Validate for $kind {
            /// Checks `metadata.name` (an RFC 1123 subdomain) and the spec.
            fn collect_errors(&self, errors: &mut ValidationErrors) {
                collect_metadata_errors(&self.metadata, NameRule::Dns1123Subdomain, errors);
                self.spec.collect_errors(errors);
            }
        }
    )*};
}

validate_trigger_objects!(HTTPTrigger, CronJobTrigger, KafkaTrigger, NATSTrigger, KinesisTrigger);

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn selectors_match_as_kubernetes_reads_them() {
        let labels: BTreeMap<String, String> =
            [("created-by", "kubeless"), ("topic", "s3-python")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
        let expression = |operator: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "topic".into(),
                operator: operator.into(),
                values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
            ..Default::default()
        };
        let pairs = |key: &str, value: &str| LabelSelector {
            match_labels: Some([(key.to_owned(), value.to_owned())].into()),
            ..Default::default()
        };
        assert!(selector_matches(&LabelSelector::default(), &labels), "empty selects everything");
        assert!(selector_matches(&pairs("topic", "s3-python"), &labels));
        assert!(!selector_matches(&pairs("topic", "other"), &labels));
        assert!(selector_matches(&expression("In", &["a", "s3-python"]), &labels));
        assert!(!selector_matches(&expression("NotIn", &["s3-python"]), &labels));
        assert!(selector_matches(&expression("NotIn", &["a"]), &BTreeMap::new()), "NotIn holds for an absent label");
        assert!(selector_matches(&expression("Exists", &[]), &labels));
        assert!(!selector_matches(&expression("DoesNotExist", &[]), &labels));
        assert!(!selector_matches(&expression("Near", &["x"]), &labels));
    }
}
