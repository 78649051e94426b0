//! `kelp-triggers`: KafkaTriggers, NATSTriggers and KinesisTriggers on a cluster, as Kubeless's
//! separate kafka-, nats- and kinesis-trigger-controller did, but delivering at least once.
//!
//! Every replica watches the triggers and Functions and runs `kelp-events`' [`Triggers`]: a
//! Kafka consumer group or NATS queue group per trigger and matching function, named as
//! Kubeless named them, so replicas share the partitions and messages and nothing is consumed
//! twice in the normal case. Functions are called at their Services ([`invoke`]). The replica
//! holding the `kelp-triggers` Lease also writes the triggers' status (from its own consumers)
//! and keeps Kubeless's finalizers (`kubeless.io/kafkatrigger`, `kubeless.io/natstrigger`):
//! it adds them, and takes them off a trigger being deleted once its consumers stopped.
//! KinesisTriggers are consumed by the leader only ([`kinesis`]: a shard has no group to share).
//!
//! Why a Deployment of its own rather than more work for the controller: consumers scale out
//! with replicas while the controller stays one leader, the broker credentials are mounted into
//! these pods only, and a stuck broker client cannot stall the reconciliation of Functions.

pub mod invoke;
mod kinesis;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{StreamExt, future};
use k8s_openapi::api::core::v1::ConfigMap;
use kelp_api::{Function, KafkaTrigger, KinesisTrigger, NATSTrigger, TopicTriggerStatus};
use kelp_events::{KafkaSettings, Target, TopicTrigger, Triggers};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use self::invoke::ServiceInvoker;
use self::kinesis::{ApiCheckpoints, SecretCredentials};
use self::settings::TriggerSettings;
use crate::run::{cacheable_watch, load_config, scoped};
use crate::server;

/// How often status is refreshed without a change to any object (consumers connect, lag moves).
const STATUS_PERIOD: Duration = Duration::from_secs(2);
/// How often the leader measures a Kafka trigger's lag from its groups' committed offsets.
const LAG_PERIOD: Duration = Duration::from_secs(10);
/// How long measuring one group's lag may take.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `kelp-triggers` until SIGTERM/SIGINT.
pub async fn run(settings: TriggerSettings) -> anyhow::Result<()> {
    let client = Client::try_default().await.context("connecting to the Kubernetes API (kubeconfig or in-cluster)")?;
    let cluster = &settings.cluster;
    let config_api: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster.config_namespace);
    let config = load_config(&config_api, &cluster.config_name).await?;
    let scope = cluster.scope(&config);
    let brokers = settings.brokers(&config);
    tracing::info!(
        kafka = %brokers.kafka.brokers,
        nats = %brokers.nats_url,
        namespace = if scope.is_empty() { "(all)" } else { scope.as_str() },
        "consuming for triggers"
    );

    let invoker = Arc::new(ServiceInvoker::new(&settings.function_url));
    let kafka_settings = brokers.kafka.clone();
    let mut triggers =
        Triggers::new(brokers, invoker.clone()).with_checkpoints(Arc::new(ApiCheckpoints(client.clone())));
    let metrics = triggers.metrics();
    let listen = cluster.listen;
    let server = tokio::spawn(server::serve(listen, move || format!("{}# EOF\n", metrics.render())));
    let lock = cluster.lease(&client, &settings.lease_name).map(Arc::new);
    let leading = match &lock {
        Some(lock) => lock.clone().spawn_election(),
        None => watch::channel(true).1,
    };

    let changed = Arc::new(Notify::new());
    let (kafka, kafka_watch) = cache::<KafkaTrigger>(&client, &scope, &changed);
    let (nats, nats_watch) = cache::<NATSTrigger>(&client, &scope, &changed);
    let (kinesis, kinesis_watch) = cache::<KinesisTrigger>(&client, &scope, &changed);
    let (functions, function_watch) = cache::<Function>(&client, &scope, &changed);
    let watches = future::join4(kafka_watch, nats_watch, kinesis_watch, function_watch);
    let lags = Lags { kafka: kafka_settings, measured: Mutex::default() };
    let credentials = SecretCredentials::new(client.clone());
    let host = Host { client, kafka, nats, kinesis, functions, invoker, lags, credentials };
    let rounds = async {
        // The first round sees every object: no consumer is stopped for a function not yet listed.
        let (kafka, nats, functions) = (&host.kafka, &host.nats, &host.functions);
        let ready = future::join4(
            kafka.wait_until_ready(),
            nats.wait_until_ready(),
            host.kinesis.wait_until_ready(),
            functions.wait_until_ready(),
        );
        let _ = ready.await;
        loop {
            host.round(&mut triggers, *leading.borrow()).await;
            let _ = tokio::time::timeout(STATUS_PERIOD, changed.notified()).await;
        }
    };

    let outcome = tokio::select! {
        () = rounds => Ok(()),
        _ = watches => Err(anyhow::anyhow!("a watch ended unexpectedly")),
        () = stop_signal() => Ok(()),
        served = server => Err(match served {
            Ok(Err(e)) => anyhow::anyhow!("cannot serve on {listen}: {e}"),
            _ => anyhow::anyhow!("the metrics server stopped"),
        }),
    };
    // Delivered offsets are committed and the groups left, so other replicas take over at once.
    triggers.stop_all().await;
    if let Some(lock) = &lock
        && let Err(e) = lock.release().await
    {
        tracing::warn!(error = %e, "could not release the Lease");
    }
    outcome
}

/// The caches a round reads, and where functions are called.
struct Host {
    client: Client,
    kafka: Store<KafkaTrigger>,
    nats: Store<NATSTrigger>,
    kinesis: Store<KinesisTrigger>,
    functions: Store<Function>,
    invoker: Arc<ServiceInvoker>,
    lags: Lags,
    credentials: SecretCredentials,
}

impl Host {
    /// Runs the consumers the live objects call for; as the leader, writes the triggers' status
    /// and finalizers.
    async fn round(&self, triggers: &mut Triggers<ServiceInvoker>, leading: bool) {
        let functions: Vec<Arc<Function>> = self.functions.state().into_iter().filter(|f| is_live(&**f)).collect();
        self.invoker.set_functions(functions.iter().map(|f| &**f));
        let targets: Vec<Target> = functions.iter().map(|f| Target::from(&f.metadata)).collect();
        let (kafka, nats) = (self.kafka.state(), self.nats.state());
        let live_kafka: Vec<&Arc<KafkaTrigger>> = kafka.iter().filter(|t| is_live(&***t)).collect();
        let live_nats: Vec<&Arc<NATSTrigger>> = nats.iter().filter(|t| is_live(&***t)).collect();
        let mut topic_triggers: Vec<TopicTrigger> = live_kafka.iter().map(|t| TopicTrigger::from(&***t)).collect();
        topic_triggers.extend(live_nats.iter().map(|t| TopicTrigger::from(&***t)));
        // Only the leader consumes Kinesis shards.
        let kinesis = if leading { self.kinesis.state() } else { Vec::new() };
        let live_kinesis: Vec<&Arc<KinesisTrigger>> = kinesis.iter().filter(|t| is_live(&***t)).collect();
        for trigger in &live_kinesis {
            let namespace = trigger.metadata.namespace.as_deref().unwrap_or_default();
            let secret = trigger.spec.secret.as_deref().unwrap_or_default();
            let credentials = self.credentials.get(namespace, secret).await;
            topic_triggers.push(TopicTrigger::kinesis(trigger, credentials));
        }
        let statuses = triggers.sync(&topic_triggers, &targets).await;
        if !leading {
            return;
        }
        let (statuses, kinesis_statuses) = statuses.split_at(live_kafka.len() + live_nats.len());
        let (kafka_statuses, nats_statuses) = statuses.split_at(live_kafka.len());
        let mut kafka_statuses = kafka_statuses.to_vec();
        self.lags.fill_all(&topic_triggers[..live_kafka.len()], &mut kafka_statuses).await;
        let (kafka_finalizer, nats_finalizer) = (kelp_plan::KAFKA_TRIGGER_FINALIZER, kelp_plan::NATS_TRIGGER_FINALIZER);
        self.lead(&kafka, Some(kafka_finalizer), &live_kafka, &kafka_statuses, |t| t.status.as_ref()).await;
        self.lead(&nats, Some(nats_finalizer), &live_nats, nats_statuses, |t| t.status.as_ref()).await;
        self.lead(&kinesis, None, &live_kinesis, kinesis_statuses, |t| t.status.as_ref()).await;
    }

    /// The leader's part for one kind: status and finalizer (when the kind has one) of each live
    /// trigger, and the finalizer off each trigger being deleted (its consumers stopped in this
    /// round).
    async fn lead<K>(
        &self,
        all: &[Arc<K>],
        finalizer: Option<&str>,
        live: &[&Arc<K>],
        statuses: &[Value],
        status_of: impl Fn(&K) -> Option<&TopicTriggerStatus>,
    ) where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        for (trigger, status) in live.iter().zip(statuses) {
            let api: Api<K> = Api::namespaced(self.client.clone(), &trigger.namespace().unwrap_or_default());
            let current = status_of(trigger).and_then(|s| serde_json::to_value(s).ok());
            if let Err(e) = write_status(&api, &trigger.name_any(), current, status.clone()).await {
                tracing::warn!(trigger = %trigger.name_any(), error = %e, "writing the trigger's status");
            }
            let Some(finalizer) = finalizer else { continue };
            if !trigger.finalizers().iter().any(|f| f == finalizer) {
                let mut finalizers = trigger.finalizers().to_vec();
                finalizers.push(finalizer.to_owned());
                set_finalizers(&api, &***trigger, finalizers).await;
            }
        }
        let Some(finalizer) = finalizer else { return };
        for trigger in all.iter().filter(|t| !is_live(&***t) && t.finalizers().iter().any(|f| f == finalizer)) {
            let api: Api<K> = Api::namespaced(self.client.clone(), &trigger.namespace().unwrap_or_default());
            let kept = trigger.finalizers().iter().filter(|f| *f != finalizer).cloned().collect();
            set_finalizers(&api, &**trigger, kept).await;
        }
    }
}

/// The lag of Kafka triggers, measured from their groups' committed offsets: replicas share the
/// partitions, so no one replica's consumers know the whole lag.
struct Lags {
    kafka: KafkaSettings,
    measured: Mutex<HashMap<(String, String), (Instant, i64)>>,
}

impl Lags {
    /// [`Lags::fill`] for each of these live Kafka triggers and their statuses; the
    /// measurements of triggers that are gone are forgotten.
    async fn fill_all(&self, triggers: &[TopicTrigger], statuses: &mut [Value]) {
        self.lock()
            .retain(|(namespace, name), _| triggers.iter().any(|t| (&t.namespace, &t.name) == (namespace, name)));
        for (trigger, status) in triggers.iter().zip(statuses) {
            self.fill(trigger, status).await;
        }
    }

    /// Puts the trigger's lag (summed over its functions' groups, measured at most every
    /// [`LAG_PERIOD`]) into `status`, in place of the local consumers' part of it. A trigger
    /// that is not subscribed keeps what its consumers say; a failed measurement is retried
    /// in the next round.
    async fn fill(&self, trigger: &TopicTrigger, status: &mut Value) {
        if status.pointer("/conditions/0/status") != Some(&json!("True")) {
            return;
        }
        let key = (trigger.namespace.clone(), trigger.name.clone());
        let fresh = self.lock().get(&key).filter(|(at, _)| at.elapsed() < LAG_PERIOD).map(|(_, lag)| *lag);
        let lag = match fresh {
            Some(lag) => lag,
            None => match self.measure(trigger, status).await {
                Ok(lag) => {
                    self.lock().insert(key, (Instant::now(), lag));
                    lag
                }
                Err(e) => {
                    tracing::debug!(trigger = %trigger.name, error = %e, "measuring the lag");
                    return;
                }
            },
        };
        status["lag"] = json!(lag);
    }

    async fn measure(&self, trigger: &TopicTrigger, status: &Value) -> Result<i64, kelp_events::Error> {
        let topic = trigger.topic.as_deref().unwrap_or_default();
        let mut lag = 0;
        for function in status["functions"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            lag += kelp_events::topics::group_lag(&self.kafka, &trigger.group(function), topic, LAG_TIMEOUT).await?;
        }
        Ok(lag)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Instant, i64)>> {
        self.measured.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether an object is not being deleted.
fn is_live<K: Resource>(object: &K) -> bool {
    object.meta().deletion_timestamp.is_none()
}

/// Writes `status` to the trigger `name` when it differs from its `current` one, keeping
/// transition times.
async fn write_status<K>(api: &Api<K>, name: &str, current: Option<Value>, status: Value) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let Some(status) = kelp_api::merge_transition_times(current.as_ref(), status, &now) else { return Ok(()) };
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    Ok(())
}

/// Sets the trigger's finalizers, if it did not change meanwhile (its resourceVersion); a
/// conflict is left to the next round.
async fn set_finalizers<K>(api: &Api<K>, trigger: &K, finalizers: Vec<String>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": trigger.resource_version()}});
    match api.patch(&trigger.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
        Err(e) => tracing::warn!(trigger = %trigger.name_any(), error = %e, "updating the trigger's finalizers"),
    }
}

/// A cache of `K` in `scope`, and the watch that fills it and pokes `changed`.
fn cache<K>(
    client: &Client,
    scope: &str,
    changed: &Arc<Notify>,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    let watch = cacheable_watch(scoped::<K>(client, scope), watcher::Config::default().any_semantic())
        .reflect(writer)
        .for_each(move |event| {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying"),
            }
            future::ready(())
        });
    (reader, watch)
}

/// Completes on SIGTERM or SIGINT.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { term.as_mut()?.recv().await } => {}
    }
}
