//! KafkaTriggers and NATSTriggers on `kelp up`: `kelp-events`' [`Triggers`] in this process,
//! fed from the store's live objects, calling functions through the engine's gateway.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kelp_events::{Answer, Brokers, Invoke, Metrics, Target, TopicTrigger, Triggers};
use kelp_local::Platform;
use serde_json::Value;

/// The running consumers.
#[derive(Debug)]
pub struct EventTriggers(Triggers<PlatformInvoker>);

/// A trigger's status to write: the store resource, the object as read, the new status.
pub type StatusUpdate = (&'static str, Arc<Value>, Value);

const KAFKA_TRIGGERS: &str = "kubeless.io/kafkatriggers";
const NATS_TRIGGERS: &str = "kubeless.io/natstriggers";

impl EventTriggers {
    /// No consumers yet.
    pub fn new(brokers: Brokers, platform: Arc<Platform>) -> Self {
        EventTriggers(Triggers::new(brokers, Arc::new(PlatformInvoker(platform))))
    }

    /// The consumers' series, for `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.0.metrics()
    }

    /// Runs exactly the consumers that these live triggers and Functions call for, and returns
    /// every trigger's status. An object the store holds always reads as its kind; one that
    /// would not is left out.
    pub async fn sync(
        &mut self,
        kafka: &[Arc<Value>],
        nats: &[Arc<Value>],
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
        if triggers.is_empty() && self.0.is_idle() {
            return Vec::new();
        }
        let targets: Vec<Target> = functions
            .iter()
            .filter_map(|f| read::<ObjectMeta>(f.get("metadata")?))
            .map(|metadata| Target::from(&metadata))
            .collect();
        let statuses = self.0.sync(&triggers, &targets).await;
        objects.into_iter().zip(statuses).map(|((resource, object), status)| (resource, object, status)).collect()
    }

    /// Stops every consumer (committing what each delivered).
    pub async fn stop_all(&mut self) {
        self.0.stop_all().await;
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
