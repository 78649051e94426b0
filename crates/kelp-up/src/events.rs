//! KafkaTriggers and NATSTriggers on `kelp up`: a `kelp-events` consumer, in this process, for
//! every trigger and every Function in its namespace that its `functionSelector` matches (an
//! absent or empty selector matches them all, as Kubeless's did), calling the function through
//! the engine's gateway. A consumer starts when its trigger or function appears, restarts when
//! the trigger's topic or annotations change, and stops (committing what it delivered) when
//! either goes. Each trigger's status says which functions it calls, whether every consumer is
//! subscribed, the latest error and, for Kafka, the lag.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use kelp_events::{Answer, Consumer, ConsumerStatus, Invoke, KafkaSettings, Metrics, Policy, Source, Subscription};
use kelp_local::Platform;
use serde_json::{Value, json};

/// Where the brokers are.
#[derive(Clone, Debug)]
pub struct EventConfig {
    /// The Kafka cluster (`--kafka-brokers`, `KAFKA_BROKERS` and its TLS/SASL variables).
    pub kafka: KafkaSettings,
    /// The NATS server (`--nats-url`, `NATS_URL`).
    pub nats_url: String,
    /// The longest wait between retries (`BACKOFF_INTERVAL`).
    pub backoff_cap: Duration,
}

impl Default for EventConfig {
    /// Kubeless's defaults (brokers that exist on a Kubeless cluster only).
    fn default() -> Self {
        EventConfig {
            kafka: KafkaSettings::from_env(None, |_| None),
            nats_url: kelp_events::DEFAULT_NATS_URL.to_owned(),
            backoff_cap: kelp_events::DEFAULT_BACKOFF_CAP,
        }
    }
}

/// The running consumers.
#[derive(Debug)]
pub struct EventTriggers {
    config: EventConfig,
    invoker: Arc<PlatformInvoker>,
    metrics: Arc<Metrics>,
    consumers: HashMap<Subscription, Consumer>,
}

/// A trigger's status to write: the store resource, the object as read, the new status.
pub type StatusUpdate = (&'static str, Arc<Value>, Value);

impl EventTriggers {
    /// No consumers yet.
    pub fn new(config: EventConfig, platform: Arc<Platform>) -> Self {
        EventTriggers {
            config,
            invoker: Arc::new(PlatformInvoker(platform)),
            metrics: Arc::default(),
            consumers: HashMap::new(),
        }
    }

    /// The consumers' series, for `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs exactly the consumers that these live triggers and Functions call for, and returns
    /// every trigger's status.
    pub async fn sync(
        &mut self,
        kafka: &[Arc<Value>],
        nats: &[Arc<Value>],
        functions: &[Arc<Value>],
    ) -> Vec<StatusUpdate> {
        let mut plans = Vec::new();
        for (resource, source, triggers) in
            [(KAFKA_TRIGGERS, Source::Kafka, kafka), (NATS_TRIGGERS, Source::Nats, nats)]
        {
            for trigger in triggers {
                plans.push((resource, trigger.clone(), self.plan(source, trigger, functions)));
            }
        }
        let wanted: Vec<&Subscription> = plans.iter().filter_map(|(_, _, p)| p.as_ref().ok()).flatten().collect();
        let stale: Vec<Subscription> = self.consumers.keys().filter(|s| !wanted.contains(s)).cloned().collect();
        for subscription in stale {
            if let Some(consumer) = self.consumers.remove(&subscription) {
                consumer.stop().await;
            }
        }
        let mut updates = Vec::new();
        for (resource, trigger, plan) in plans {
            let status = match plan {
                Err(reason) => failed_status("InvalidTrigger", &reason, Vec::new()),
                Ok(subscriptions) => self.run(subscriptions),
            };
            let status = with_generation(status, &trigger);
            updates.push((resource, trigger, status));
        }
        updates
    }

    /// Stops every consumer (committing what each delivered).
    pub async fn stop_all(&mut self) {
        for (_, consumer) in self.consumers.drain() {
            consumer.stop().await;
        }
    }

    /// The subscriptions of one trigger: one per matching function.
    fn plan(&self, source: Source, trigger: &Value, functions: &[Arc<Value>]) -> Result<Vec<Subscription>, String> {
        let text = |pointer: &str| trigger.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (namespace, name, topic) = (text("/metadata/namespace"), text("/metadata/name"), text("/spec/topic"));
        if topic.is_empty() {
            return Err("spec.topic is empty".into());
        }
        let annotations: BTreeMap<String, String> = trigger
            .pointer("/metadata/annotations")
            .cloned()
            .and_then(|a| serde_json::from_value(a).ok())
            .unwrap_or_default();
        let policy = Policy::from_annotations(source, &namespace, &name, &annotations, self.config.backoff_cap)
            .map_err(|e| e.to_string())?;
        let selector = function_selector(trigger)?;
        let trigger_created = created(trigger);
        let mut matched: Vec<(String, Option<SystemTime>)> = functions
            .iter()
            .filter(|f| f.pointer("/metadata/namespace").and_then(Value::as_str) == Some(&namespace))
            .filter(|f| selector.matches_labels(f.pointer("/metadata/labels").and_then(Value::as_object)))
            .filter_map(|f| Some((f.pointer("/metadata/name").and_then(Value::as_str)?.to_owned(), created(f))))
            .collect();
        matched.sort();
        Ok(matched
            .into_iter()
            .map(|(function, function_created)| Subscription {
                source,
                namespace: namespace.clone(),
                trigger: name.clone(),
                function,
                topic: topic.clone(),
                policy: policy.clone(),
                // A new group delivers what was published once both the trigger and the
                // function existed.
                since: trigger_created.max(function_created),
            })
            .collect())
    }

    /// Starts the consumers of one trigger's subscriptions that are not running; their status.
    fn run(&mut self, subscriptions: Vec<Subscription>) -> Value {
        let functions: Vec<String> = subscriptions.iter().map(|s| s.function.clone()).collect();
        if subscriptions.is_empty() {
            return failed_status(
                "NoFunctions",
                "no Function in the namespace matches the functionSelector",
                functions,
            );
        }
        let mut statuses = Vec::new();
        for subscription in subscriptions {
            if !self.consumers.contains_key(&subscription) {
                let started = match subscription.source {
                    Source::Kafka => kelp_events::kafka::start(
                        &self.config.kafka,
                        subscription.clone(),
                        self.invoker.clone(),
                        self.metrics.clone(),
                    ),
                    Source::Nats => Ok(kelp_events::nats::start(
                        &self.config.nats_url,
                        subscription.clone(),
                        self.invoker.clone(),
                        self.metrics.clone(),
                    )),
                };
                match started {
                    Ok(consumer) => {
                        self.consumers.insert(subscription.clone(), consumer);
                    }
                    Err(e) => return failed_status("NotSubscribed", &e.to_string(), functions),
                }
            }
            statuses.push(self.consumers[&subscription].status());
        }
        topic_status(&statuses, functions)
    }
}

const KAFKA_TRIGGERS: &str = "kubeless.io/kafkatriggers";
const NATS_TRIGGERS: &str = "kubeless.io/natstriggers";

/// An object's `metadata.creationTimestamp`.
fn created(object: &Value) -> Option<SystemTime> {
    let text = object.pointer("/metadata/creationTimestamp").and_then(Value::as_str)?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(SystemTime::from)
}

/// The trigger's `functionSelector` as a label selector (absent: everything).
fn function_selector(trigger: &Value) -> Result<kelp_store::LabelSelector, String> {
    let query = match trigger.pointer("/spec/functionSelector").filter(|s| !s.is_null()) {
        Some(selector) => {
            let selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
                serde_json::from_value(selector.clone()).map_err(|e| format!("spec.functionSelector: {e}"))?;
            kelp_api::label_query(&selector)
        }
        None => String::new(),
    };
    kelp_store::LabelSelector::parse(&query).map_err(|e| format!("spec.functionSelector: {}", e.0))
}

/// The status of a trigger whose consumers report `statuses`.
fn topic_status(statuses: &[ConsumerStatus], functions: Vec<String>) -> Value {
    let subscribed = statuses.iter().all(|s| s.subscribed);
    let last_error = statuses.iter().find_map(|s| s.last_error.clone());
    let lags: Vec<i64> = statuses.iter().filter_map(|s| s.lag).collect();
    let lag = (!lags.is_empty()).then(|| lags.iter().sum::<i64>());
    let (status, reason, message) = if subscribed {
        ("True", "Subscribed", format!("consuming for {} function(s)", functions.len()))
    } else {
        ("False", "NotSubscribed", last_error.clone().unwrap_or_else(|| "connecting to the broker".into()))
    };
    let mut value = json!({
        "conditions": [{"type": kelp_api::READY_CONDITION, "status": status, "reason": reason, "message": message}],
        "functions": functions,
    });
    if let Some(error) = last_error {
        value["lastError"] = json!(error);
    }
    if let Some(lag) = lag {
        value["lag"] = json!(lag);
    }
    value
}

fn failed_status(reason: &str, message: &str, functions: Vec<String>) -> Value {
    let mut value = json!({
        "conditions": [{"type": kelp_api::READY_CONDITION, "status": "False", "reason": reason, "message": message}],
        "lastError": message,
    });
    if !functions.is_empty() {
        value["functions"] = json!(functions);
    }
    value
}

/// `status` with the trigger's generation as `observedGeneration` (also on its conditions).
fn with_generation(mut status: Value, trigger: &Value) -> Value {
    let generation = trigger.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    status["observedGeneration"] = json!(generation);
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        condition["observedGeneration"] = json!(generation);
    }
    status
}

/// Calls functions through the engine, as the gateway's short URLs do.
#[derive(Debug)]
struct PlatformInvoker(Arc<Platform>);

impl Invoke for PlatformInvoker {
    fn invoke(
        &self,
        namespace: &str,
        function: &str,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = Result<Answer, String>> + Send {
        let (platform, namespace, function) = (self.0.clone(), namespace.to_owned(), function.to_owned());
        async move {
            let response = platform.proxy(&namespace, &function, request.map(Full::new)).await;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Answer { status, body })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Value {
        json!({"metadata": {"labels": pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>()}})
    }

    #[test]
    fn selectors_match_as_kubeless_s() {
        let matches = |trigger: Value, function: Value| {
            function_selector(&trigger)
                .unwrap()
                .matches_labels(function.pointer("/metadata/labels").and_then(Value::as_object))
        };
        let selector = |s: Value| json!({"spec": {"functionSelector": s}});
        let python = labels(&[("created-by", "kubeless"), ("topic", "s3-python")]);
        assert!(matches(selector(json!({"matchLabels": {"topic": "s3-python"}})), python.clone()));
        assert!(!matches(selector(json!({"matchLabels": {"topic": "other"}})), python.clone()));
        let expression =
            json!({"matchExpressions": [{"key": "topic", "operator": "In", "values": ["a", "s3-python"]}]});
        assert!(matches(selector(expression), python.clone()));
        assert!(matches(json!({"spec": {}}), python.clone()), "no selector: every function");
        assert!(matches(selector(json!({})), python));
    }

    #[test]
    fn a_trigger_is_ready_when_every_consumer_is_subscribed() {
        let ok = ConsumerStatus { subscribed: true, last_error: None, lag: Some(3) };
        let ready =
            topic_status(&[ok.clone(), ConsumerStatus { lag: Some(4), ..ok.clone() }], vec!["a".into(), "b".into()]);
        assert_eq!(ready["conditions"][0]["status"], "True");
        assert_eq!(ready["lag"], 7);
        assert_eq!(ready["functions"], json!(["a", "b"]));
        let down = ConsumerStatus { subscribed: false, last_error: Some("kafka: all brokers down".into()), lag: None };
        let not_ready = topic_status(&[ok, down], vec!["a".into(), "b".into()]);
        assert_eq!(not_ready["conditions"][0]["reason"], "NotSubscribed");
        assert_eq!(not_ready["lastError"], "kafka: all brokers down");
        let none =
            with_generation(failed_status("NoFunctions", "none", Vec::new()), &json!({"metadata": {"generation": 2}}));
        assert_eq!((none["observedGeneration"].as_i64(), none.get("functions")), (Some(2), None));
    }
}
