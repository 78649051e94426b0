//! What a host does with KafkaTriggers, NATSTriggers and KinesisTriggers, on either backend: a
//! [`Consumer`] for every trigger and every Function in its namespace that its `functionSelector`
//! matches (an absent or empty selector matches them all, as Kubeless's did), or for a
//! KinesisTrigger the one its `function-name` names. [`Triggers::sync`] starts the
//! consumers of new triggers and functions, restarts those whose trigger's topic or annotations
//! changed, stops (committing what they delivered) those whose trigger or function went, and
//! returns each trigger's status: which functions it calls, whether every consumer is
//! subscribed, the latest error and, for Kafka, the lag (for Kinesis, the milliseconds behind).
//!
//! `kelp up` runs it in-process and calls its functions directly; the cluster's `kelp-triggers`
//! runs it in each replica and calls the functions' Services.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kelp_api::{KafkaTrigger, KinesisTrigger, NATSTrigger};
use serde_json::{Value, json};

use crate::kinesis::{Checkpoints, Credentials, Shard};
use crate::{Consumer, ConsumerStatus, Invoke, KafkaSettings, Metrics, Policy, Source, Subscription};

/// Where the brokers are, and the retry cap: what every consumer of a host shares.
#[derive(Clone, Debug)]
pub struct Brokers {
    /// The Kafka cluster (`KAFKA_BROKERS` and its TLS/SASL variables).
    pub kafka: KafkaSettings,
    /// The NATS server (`NATS_URL`).
    pub nats_url: String,
    /// The longest wait between retries (`BACKOFF_INTERVAL`).
    pub backoff_cap: Duration,
}

impl Default for Brokers {
    /// Kubeless's defaults (brokers that exist on a Kubeless cluster only).
    fn default() -> Self {
        Brokers {
            kafka: KafkaSettings::from_env(None, |_| None),
            nats_url: crate::DEFAULT_NATS_URL.to_owned(),
            backoff_cap: crate::DEFAULT_BACKOFF_CAP,
        }
    }
}

/// A KafkaTrigger, NATSTrigger or KinesisTrigger, as far as consuming is concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicTrigger {
    /// Kafka, NATS or Kinesis.
    pub source: Source,
    /// Its namespace (that of the functions it may call).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `metadata.generation`, reported back as `observedGeneration`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`.
    pub created: Option<SystemTime>,
    /// `metadata.annotations`: the delivery [`Policy`].
    pub annotations: BTreeMap<String, String>,
    /// `spec.topic` (Kinesis: `spec.stream`).
    pub topic: Option<String>,
    /// `spec.functionSelector`.
    pub function_selector: Option<LabelSelector>,
    /// Kinesis: `spec.function-name`, the one function called.
    pub function_name: Option<String>,
    /// Kinesis: the shard and credentials, or why they cannot be had (a missing Secret).
    pub kinesis: Option<Result<Shard, String>>,
}

impl TopicTrigger {
    /// The trigger of `source` with this metadata, topic and selector.
    fn from_parts(
        source: Source,
        metadata: &ObjectMeta,
        topic: Option<String>,
        function_selector: Option<LabelSelector>,
    ) -> TopicTrigger {
        TopicTrigger {
            source,
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            generation: metadata.generation,
            created: created(metadata),
            annotations: metadata.annotations.clone().unwrap_or_default(),
            topic,
            function_selector,
            function_name: None,
            kinesis: None,
        }
    }

    /// A KinesisTrigger, with the `credentials` read from the Secret its `spec.secret` names.
    pub fn kinesis(trigger: &KinesisTrigger, credentials: Result<Credentials, String>) -> TopicTrigger {
        let spec = &trigger.spec;
        let shard = credentials.map(|credentials| Shard {
            endpoint: spec.endpoint.clone().filter(|e| !e.trim().is_empty()),
            region: spec.aws_region.clone().unwrap_or_default(),
            shard: spec.shard.clone().unwrap_or_default(),
            credentials,
        });
        TopicTrigger {
            function_name: Some(spec.function_name.clone().unwrap_or_default()),
            kinesis: Some(shard),
            ..TopicTrigger::from_parts(Source::Kinesis, &trigger.metadata, spec.stream.clone(), None)
        }
    }

    /// The consumer group (Kafka) or queue group (NATS) through which `function` is called
    /// ([`Subscription::group`]).
    pub fn group(&self, function: &str) -> String {
        crate::consumer::group_name(&self.namespace, &self.name, function, self.topic.as_deref().unwrap_or_default())
    }
}

impl From<&KafkaTrigger> for TopicTrigger {
    fn from(trigger: &KafkaTrigger) -> Self {
        let spec = trigger.spec.clone();
        TopicTrigger::from_parts(Source::Kafka, &trigger.metadata, spec.topic, spec.function_selector)
    }
}

impl From<&NATSTrigger> for TopicTrigger {
    fn from(trigger: &NATSTrigger) -> Self {
        let spec = trigger.spec.clone();
        TopicTrigger::from_parts(Source::Nats, &trigger.metadata, spec.topic, spec.function_selector)
    }
}

/// A Function a trigger may call: only its metadata matters here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels, which triggers select on.
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`.
    pub created: Option<SystemTime>,
}

impl From<&ObjectMeta> for Target {
    fn from(metadata: &ObjectMeta) -> Self {
        Target {
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            labels: metadata.labels.clone().unwrap_or_default(),
            created: created(metadata),
        }
    }
}

/// The running consumers of a host.
#[derive(Debug)]
pub struct Triggers<I> {
    brokers: Brokers,
    invoker: Arc<I>,
    metrics: Arc<Metrics>,
    consumers: HashMap<Subscription, Consumer>,
    checkpoints: Option<Arc<dyn Checkpoints>>,
}

impl<I: Invoke> Triggers<I> {
    /// No consumers yet; the consumers it starts call functions through `invoker`.
    pub fn new(brokers: Brokers, invoker: Arc<I>) -> Self {
        Triggers { brokers, invoker, metrics: Arc::default(), consumers: HashMap::new(), checkpoints: None }
    }

    /// These triggers, keeping Kinesis checkpoints in `checkpoints` (without, a KinesisTrigger
    /// is not consumed and its status says why).
    pub fn with_checkpoints(self, checkpoints: Arc<dyn Checkpoints>) -> Self {
        Triggers { checkpoints: Some(checkpoints), ..self }
    }

    /// The consumers' series, for `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Whether no consumer runs: a host with no triggers then need not call [`Triggers::sync`].
    pub fn is_idle(&self) -> bool {
        self.consumers.is_empty()
    }

    /// Runs exactly the consumers that these live triggers and functions call for, and returns
    /// each trigger's status (in the order of `triggers`) as its `status` object, without
    /// `lastTransitionTime`s (see `kelp_api::merge_transition_times`).
    pub async fn sync(&mut self, triggers: &[TopicTrigger], functions: &[Target]) -> Vec<Value> {
        let plans: Vec<_> = triggers.iter().map(|t| plan(t, functions, self.brokers.backoff_cap)).collect();
        let wanted: HashSet<&Subscription> = plans.iter().filter_map(|p| p.as_ref().ok()).flatten().collect();
        let stale: Vec<Subscription> = self.consumers.keys().filter(|s| !wanted.contains(s)).cloned().collect();
        for subscription in stale {
            if let Some(consumer) = self.consumers.remove(&subscription) {
                consumer.stop().await;
            }
        }
        let mut statuses = Vec::new();
        for (trigger, plan) in triggers.iter().zip(plans) {
            let status = match plan {
                Err(reason) => failed_status("InvalidTrigger", &reason, Vec::new()),
                Ok(subscriptions) => self.run(subscriptions, trigger.function_name.as_deref()),
            };
            statuses.push(with_generation(status, trigger.generation));
        }
        statuses
    }

    /// Stops every consumer (committing what each delivered).
    pub async fn stop_all(&mut self) {
        for (_, consumer) in self.consumers.drain() {
            consumer.stop().await;
        }
    }

    /// Starts the consumers of one trigger's subscriptions that are not running; their status.
    /// `function_name`: the one function a KinesisTrigger names.
    fn run(&mut self, subscriptions: Vec<Subscription>, function_name: Option<&str>) -> Value {
        let functions: Vec<String> = subscriptions.iter().map(|s| s.function.clone()).collect();
        if subscriptions.is_empty() {
            let message = match function_name {
                Some(name) => format!("Function {name} not found in the namespace"),
                None => "no Function in the namespace matches the functionSelector".to_owned(),
            };
            return failed_status("NoFunctions", &message, functions);
        }
        let mut statuses = Vec::new();
        for subscription in subscriptions {
            if !self.consumers.contains_key(&subscription) {
                match self.start(subscription.clone()) {
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

    fn start(&self, subscription: Subscription) -> Result<Consumer, crate::Error> {
        let (invoker, metrics) = (self.invoker.clone(), self.metrics.clone());
        match subscription.source {
            Source::Kafka => crate::kafka::start(&self.brokers.kafka, subscription, invoker, metrics),
            Source::Nats => Ok(crate::nats::start(&self.brokers.nats_url, subscription, invoker, metrics)),
            Source::Kinesis => {
                let checkpoints = self.checkpoints.clone().ok_or_else(|| crate::Error::Setting {
                    name: "checkpoints",
                    reason: "this host keeps no Kinesis checkpoints".into(),
                })?;
                crate::kinesis::start(subscription, invoker, checkpoints, metrics)
                    .map_err(|e| crate::Error::Setting { name: "spec.endpoint", reason: e.to_string() })
            }
        }
    }
}

/// The subscriptions of one trigger: one per matching function.
fn plan(trigger: &TopicTrigger, functions: &[Target], backoff_cap: Duration) -> Result<Vec<Subscription>, String> {
    let topic = trigger.topic.clone().unwrap_or_default();
    if topic.is_empty() {
        let field = if trigger.source == Source::Kinesis { "spec.stream" } else { "spec.topic" };
        return Err(format!("{field} is empty"));
    }
    let kinesis = match &trigger.kinesis {
        Some(Err(reason)) => return Err(reason.clone()),
        Some(Ok(shard)) if shard.shard.is_empty() => return Err("spec.shard is empty".into()),
        Some(Ok(shard)) => Some(shard.clone()),
        None => None,
    };
    let (namespace, name) = (&trigger.namespace, &trigger.name);
    let policy = Policy::from_annotations(trigger.source, namespace, name, &trigger.annotations, backoff_cap)
        .map_err(|e| e.to_string())?;
    let selector = trigger.function_selector.clone().unwrap_or_default();
    let mut matched: Vec<&Target> = functions
        .iter()
        .filter(|f| &f.namespace == namespace)
        .filter(|f| match &trigger.function_name {
            Some(name) => &f.name == name,
            None => kelp_api::selector_matches(&selector, &f.labels),
        })
        .collect();
    matched.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(matched
        .into_iter()
        .map(|function| Subscription {
            source: trigger.source,
            namespace: namespace.clone(),
            trigger: name.clone(),
            function: function.name.clone(),
            topic: topic.clone(),
            kinesis: kinesis.clone(),
            policy: policy.clone(),
            // A new group delivers what was published once both the trigger and the function
            // existed.
            since: trigger.created.max(function.created),
        })
        .collect())
}

/// An object's `metadata.creationTimestamp`.
fn created(metadata: &ObjectMeta) -> Option<SystemTime> {
    let time = metadata.creation_timestamp.as_ref()?;
    let since_epoch = Duration::try_from(time.0.duration_since(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)).ok()?;
    Some(SystemTime::UNIX_EPOCH + since_epoch)
}

/// The status of a trigger whose consumers report `statuses`.
fn topic_status(statuses: &[ConsumerStatus], functions: Vec<String>) -> Value {
    let subscribed = statuses.iter().all(|s| s.subscribed);
    let last_error = statuses.iter().find_map(|s| s.last_error.clone());
    let lags: Vec<i64> = statuses.iter().filter_map(|s| s.lag).collect();
    let lag = (!lags.is_empty()).then(|| lags.iter().sum::<i64>());
    let behind = statuses.iter().filter_map(|s| s.millis_behind_latest).max();
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
    if let Some(behind) = behind {
        value["millisBehindLatest"] = json!(behind);
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
fn with_generation(mut status: Value, generation: Option<i64>) -> Value {
    let generation = generation.unwrap_or(1);
    status["observedGeneration"] = json!(generation);
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        condition["observedGeneration"] = json!(generation);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, labels: &[(&str, &str)]) -> Target {
        Target {
            namespace: "default".into(),
            name: name.into(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            created: None,
        }
    }

    #[test]
    fn a_trigger_calls_the_functions_its_selector_matches_in_its_namespace() {
        let selector = LabelSelector {
            match_labels: Some([("topic".to_owned(), "s3-python".to_owned())].into()),
            ..Default::default()
        };
        let trigger = TopicTrigger {
            source: Source::Kafka,
            namespace: "default".into(),
            name: "s3".into(),
            topic: Some("s3-python".into()),
            generation: Some(1),
            created: None,
            annotations: BTreeMap::new(),
            function_selector: Some(selector),
            function_name: None,
            kinesis: None,
        };
        let elsewhere = Target { namespace: "other".into(), ..function("c", &[("topic", "s3-python")]) };
        let functions = [function("b", &[("topic", "s3-python")]), function("a", &[("topic", "s3-python")]), elsewhere];
        let planned = plan(&trigger, &functions, Duration::from_secs(1)).unwrap();
        let names: Vec<&str> = planned.iter().map(|s| s.function.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(planned[0].group(), "default_s3_a_s3-python");
        let everything = TopicTrigger { function_selector: None, ..trigger.clone() };
        assert_eq!(plan(&everything, &[function("x", &[])], Duration::from_secs(1)).unwrap().len(), 1);
        let no_topic = TopicTrigger { topic: None, ..trigger };
        assert_eq!(plan(&no_topic, &functions, Duration::from_secs(1)).unwrap_err(), "spec.topic is empty");
    }

    /// Calls nothing: for syncs that start no consumer.
    struct Nobody;

    impl Invoke for Nobody {
        fn invoke(
            &self,
            _: &str,
            _: &str,
            _: http::Request<bytes::Bytes>,
        ) -> impl Future<Output = Result<crate::Answer, String>> + Send {
            std::future::ready(Err("no function".to_owned()))
        }
    }

    #[tokio::test]
    async fn a_kinesis_trigger_calls_the_function_it_names_and_says_what_it_lacks() {
        let spec = |function: &str, shard: &str| {
            serde_json::from_value::<KinesisTrigger>(json!({
                "apiVersion": "kubeless.io/v1beta1", "kind": "KinesisTrigger",
                "metadata": {"name": "k", "namespace": "default"},
                "spec": {"function-name": function, "aws-region": "us-east-1", "secret": "aws",
                         "stream": "s", "shard": shard},
            }))
            .unwrap()
        };
        let credentials = || Ok(Credentials { access_key_id: "a".into(), secret_access_key: "b".into() });
        let named = TopicTrigger::kinesis(&spec("b", "shardId-0"), credentials());
        let planned = plan(&named, &[function("a", &[]), function("b", &[])], Duration::from_secs(1)).unwrap();
        assert_eq!(planned.iter().map(|s| s.function.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(planned[0].kinesis.as_ref().unwrap().shard, "shardId-0");
        let mut triggers = Triggers::new(Brokers::default(), Arc::new(Nobody));
        let missing = TopicTrigger::kinesis(&spec("gone", "shardId-0"), credentials());
        let no_secret = TopicTrigger::kinesis(&spec("b", "shardId-0"), Err("Secret aws not found".into()));
        let statuses = triggers.sync(&[missing, no_secret], &[function("b", &[])]).await;
        assert_eq!(statuses[0]["conditions"][0]["reason"], "NoFunctions");
        assert_eq!(statuses[0]["lastError"], "Function gone not found in the namespace");
        assert_eq!(statuses[1]["conditions"][0]["reason"], "InvalidTrigger");
        assert_eq!(statuses[1]["lastError"], "Secret aws not found");
        assert!(triggers.is_idle());
    }

    #[test]
    fn a_trigger_is_ready_when_every_consumer_is_subscribed() {
        let ok = ConsumerStatus { subscribed: true, last_error: None, lag: Some(3), millis_behind_latest: None };
        let ready =
            topic_status(&[ok.clone(), ConsumerStatus { lag: Some(4), ..ok.clone() }], vec!["a".into(), "b".into()]);
        assert_eq!(ready["conditions"][0]["status"], "True");
        assert_eq!(ready["lag"], 7);
        assert_eq!(ready["functions"], json!(["a", "b"]));
        let down = ConsumerStatus {
            subscribed: false,
            last_error: Some("kafka: all brokers down".into()),
            lag: None,
            millis_behind_latest: None,
        };
        let not_ready = topic_status(&[ok, down], vec!["a".into(), "b".into()]);
        assert_eq!(not_ready["conditions"][0]["reason"], "NotSubscribed");
        assert_eq!(not_ready["lastError"], "kafka: all brokers down");
        let none = with_generation(failed_status("NoFunctions", "none", Vec::new()), Some(2));
        assert_eq!((none["observedGeneration"].as_i64(), none.get("functions")), (Some(2), None));
        assert_eq!(none["conditions"][0]["observedGeneration"], 2);
    }
}
