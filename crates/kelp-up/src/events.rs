//! KafkaTriggers, NATSTriggers and KinesisTriggers on `kelp up`: `kelp-events`' [`Triggers`] in
//! this process, fed from the store's live objects (a KinesisTrigger's credentials from the
//! Secret it names), calling functions through the engine's gateway, and keeping Kinesis
//! checkpoints in the store ([`StoreCheckpoints`]: the ConfigMap `kelp-kinesis-<trigger>`, as on
//! a cluster), each written durably before the consumer goes on.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kelp_events::kinesis::{BoxFuture, CheckpointAt, Checkpoints, Credentials};
use kelp_events::{Answer, Brokers, Invoke, Metrics, Target, TopicTrigger, Triggers};
use kelp_local::Platform;
use kelp_store::{Store, StoreError};
use serde_json::{Value, json};

/// The running consumers.
#[derive(Debug)]
pub struct EventTriggers {
    triggers: Triggers<PlatformInvoker>,
    store: Store,
}

/// A trigger's status to write: the store resource, the object as read, the new status.
pub type StatusUpdate = (&'static str, Arc<Value>, Value);

const KAFKA_TRIGGERS: &str = "kubeless.io/kafkatriggers";
const NATS_TRIGGERS: &str = "kubeless.io/natstriggers";
const KINESIS_TRIGGERS: &str = "kubeless.io/kinesistriggers";
const SECRETS: &str = "/secrets";
const CONFIG_MAPS: &str = "/configmaps";
/// Attempts at a checkpoint write that meets a concurrent change of its ConfigMap.
const CHECKPOINT_ATTEMPTS: usize = 5;

impl EventTriggers {
    /// No consumers yet.
    pub fn new(brokers: Brokers, platform: Arc<Platform>, store: Store) -> Self {
        let triggers = Triggers::new(brokers, Arc::new(PlatformInvoker(platform)))
            .with_checkpoints(Arc::new(StoreCheckpoints(store.clone())));
        EventTriggers { triggers, store }
    }

    /// The consumers' series, for `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.triggers.metrics()
    }

    /// Runs exactly the consumers that these live triggers and Functions call for, and returns
    /// every trigger's status. An object the store holds always reads as its kind; one that
    /// would not is left out.
    pub async fn sync(
        &mut self,
        kafka: &[Arc<Value>],
        nats: &[Arc<Value>],
        kinesis: &[Arc<Value>],
        functions: &[Arc<Value>],
    ) -> Vec<StatusUpdate> {
        let mut objects = Vec::new();
        let mut triggers = Vec::new();
        for object in kafka {
            if let Some(trigger) = read::<kelp_api::KafkaTrigger>(object) {
                objects.push((KAFKA_TRIGGERS, object.clone()));
                triggers.push(TopicTrigger::from(&trigger));
            }
        }
        for object in nats {
            if let Some(trigger) = read::<kelp_api::NATSTrigger>(object) {
                objects.push((NATS_TRIGGERS, object.clone()));
                triggers.push(TopicTrigger::from(&trigger));
            }
        }
        for object in kinesis {
            if let Some(trigger) = read::<kelp_api::KinesisTrigger>(object) {
                objects.push((KINESIS_TRIGGERS, object.clone()));
                let credentials = self.credentials(&trigger);
                triggers.push(TopicTrigger::kinesis(&trigger, credentials));
            }
        }
        if triggers.is_empty() && self.triggers.is_idle() {
            return Vec::new();
        }
        let targets: Vec<Target> = functions
            .iter()
            .filter_map(|f| read::<ObjectMeta>(f.get("metadata")?))
            .map(|metadata| Target::from(&metadata))
            .collect();
        let statuses = self.triggers.sync(&triggers, &targets).await;
        objects.into_iter().zip(statuses).map(|((resource, object), status)| (resource, object, status)).collect()
    }

    /// Stops every consumer (committing what each delivered).
    pub async fn stop_all(&mut self) {
        self.triggers.stop_all().await;
    }

    /// The AWS credentials in the Secret a KinesisTrigger names, or why there are none.
    fn credentials(&self, trigger: &kelp_api::KinesisTrigger) -> Result<Credentials, String> {
        let namespace = trigger.metadata.namespace.as_deref().unwrap_or_default();
        let name = trigger.spec.secret.as_deref().unwrap_or_default();
        let secret = self.store.get(SECRETS, namespace, name).map_err(|e| match e {
            StoreError::NotFound { .. } => format!("Secret {name} not found in namespace {namespace}"),
            other => format!("reading Secret {name}: {other}"),
        })?;
        Credentials::from_secret_data(name, |key| secret_value(&secret, key))
    }
}

/// The decoded value of `key` in a Secret (`data`, base64, or `stringData`).
fn secret_value(secret: &Value, key: &str) -> Option<String> {
    if let Some(text) = secret.pointer("/stringData").and_then(|d| d.get(key)).and_then(Value::as_str) {
        return Some(text.to_owned());
    }
    let encoded = secret.pointer("/data").and_then(|d| d.get(key)).and_then(Value::as_str)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

/// Kinesis checkpoints in the store: a key of a ConfigMap, created when missing, each write
/// answered once committed.
#[derive(Debug)]
struct StoreCheckpoints(Store);

impl StoreCheckpoints {
    async fn write(&self, at: &CheckpointAt, value: &str) -> Result<(), String> {
        for _ in 0..CHECKPOINT_ATTEMPTS {
            let written = match self.0.get(CONFIG_MAPS, &at.namespace, &at.name) {
                Err(StoreError::NotFound { .. }) => {
                    let config_map = json!({
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": at.name, "namespace": at.namespace},
                        "data": {at.key.as_str(): value},
                    });
                    self.0.create(CONFIG_MAPS, config_map).await.map(drop)
                }
                Err(e) => return Err(e.to_string()),
                Ok(current) => {
                    let mut updated = (*current).clone();
                    if !updated.get("data").is_some_and(Value::is_object) {
                        updated["data"] = json!({});
                    }
                    updated["data"][at.key.as_str()] = json!(value);
                    self.0.update(CONFIG_MAPS, updated).await.map(drop)
                }
            };
            match written {
                Ok(()) => return Ok(()),
                // Someone else changed (or created) it meanwhile: read it again.
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("ConfigMap {}/{} kept changing", at.namespace, at.name))
    }
}

impl Checkpoints for StoreCheckpoints {
    fn load<'a>(&'a self, at: &'a CheckpointAt) -> BoxFuture<'a, Result<Option<String>, String>> {
        let value = match self.0.get(CONFIG_MAPS, &at.namespace, &at.name) {
            Ok(config_map) => {
                Ok(config_map.pointer("/data").and_then(|d| d.get(&at.key)).and_then(Value::as_str).map(str::to_owned))
            }
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        Box::pin(std::future::ready(value))
    }

    fn save<'a>(&'a self, at: &'a CheckpointAt, value: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.write(at, value))
    }
}

/// `object` as a `T`.
fn read<T: serde::de::DeserializeOwned>(object: &Value) -> Option<T> {
    serde_json::from_value(object.clone()).ok()
}

/// Calls functions through the engine, as the gateway's short URLs do.
#[derive(Debug)]
pub struct PlatformInvoker(Arc<Platform>);

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
            Answer::read(status, response.into_body().into_data_stream()).await
        }
    }
}
