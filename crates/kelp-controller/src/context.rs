//! What every reconcile shares: the client, the configuration, caches of the children, metrics
//! and the Event recorder.

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kelp_api::Function;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The label every child carries (Kubeless's), which the child caches select on.
pub const CHILD_SELECTOR: &str = "created-by=kubeless";

/// Caches kept by watches: the Functions, the children whose content the controller reads
/// (label [`CHILD_SELECTOR`]), and the metadata of every object of each child kind ([`Known`]).
#[derive(Clone)]
pub struct Stores {
    /// Functions (all the controller watches).
    pub functions: Store<Function>,
    /// Functions' Deployments (with their status).
    pub deployments: Store<Deployment>,
    /// Functions' Services (their ports, for Ingresses).
    pub services: Store<Service>,
    /// Functions' pods, reduced to their init containers' statuses (a step that failed).
    pub pods: Store<Pod>,
    /// What exists of each child kind.
    pub known: Known,
}

/// The metadata of every object of each kind the controller makes, labelled or not: whether a
/// child exists, whether Kelp may adopt it ([`kelp_plan::adoptable`]) and what was applied to
/// it, known without a request.
#[derive(Clone)]
pub struct Known {
    /// ConfigMaps.
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    /// Deployments.
    pub deployments: Store<PartialObjectMeta<Deployment>>,
    /// Services.
    pub services: Store<PartialObjectMeta<Service>>,
    /// Autoscalers.
    pub hpas: Store<PartialObjectMeta<HorizontalPodAutoscaler>>,
    /// Ingresses.
    pub ingresses: Store<PartialObjectMeta<Ingress>>,
    /// CronJobs.
    pub cron_jobs: Store<PartialObjectMeta<CronJob>>,
}

impl Stores {
    /// Waits until every cache has had its first complete list, so that an object missing from
    /// one does not exist (a reconcile must not start before: it would apply every child again
    /// after a restart, or take over an object it has not seen yet).
    pub async fn ready(&self) {
        let known = &self.known;
        // A writer dropped means the process is stopping; the reconcile's requests fail then.
        let _ = tokio::join!(
            self.functions.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.pods.wait_until_ready(),
            known.config_maps.wait_until_ready(),
            known.deployments.wait_until_ready(),
            known.services.wait_until_ready(),
            known.hpas.wait_until_ready(),
            known.ingresses.wait_until_ready(),
            known.cron_jobs.wait_until_ready(),
        );
    }
}

/// One object, named by kind, namespace and name.
pub type ObjectKey = (&'static str, String, String);

/// What the controller last applied to one child: the desired object's digest and the child's
/// `generation` (or `resourceVersion`) right after. While both still hold, applying again would
/// change nothing, so the request is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Digest of the desired object (as in the child's [`crate::apply::APPLIED_ANNOTATION`]).
    pub desired: String,
    /// The child's generation, or resourceVersion when it has none, after the apply.
    pub observed: String,
}

/// Shared by every reconcile.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The parsed `kubeless-config`; replaced when the ConfigMap changes.
    pub config: RwLock<Arc<kelp_plan::Config>>,
    /// Caches of the watched objects.
    pub stores: Stores,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// What was last applied, per child.
    pub applied: Mutex<HashMap<ObjectKey, Applied>>,
    /// The resourceVersion each object had when last reconciled successfully.
    pub reconciled: Mutex<HashMap<ObjectKey, String>>,
    /// The status last written to each object, until the cache shows it (so that a reconcile
    /// on the version before does not write it again).
    pub written: Mutex<HashMap<ObjectKey, crate::status::Written>>,
    /// The failures of each failing object, which space its retries.
    pub backoff: Backoff,
}

impl Context {
    /// A context over `client` and `stores` with configuration `config`.
    pub fn new(client: Client, config: kelp_plan::Config, stores: Stores, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter { controller: crate::FIELD_MANAGER.into(), instance: None };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config: RwLock::new(Arc::new(config)),
            stores,
            metrics,
            applied: Mutex::default(),
            reconciled: Mutex::default(),
            written: Mutex::default(),
            backoff: Backoff::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<kelp_plan::Config> {
        self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the configuration and forgets what was applied, so every child is applied
    /// again under the new one.
    pub fn set_config(&self, config: kelp_plan::Config) {
        *self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        self.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Records that `key` was reconciled at `resource_version` (successfully: its backoff is
    /// reset).
    pub fn mark_reconciled(&self, key: ObjectKey, resource_version: Option<String>) {
        self.backoff.reset(&key);
        let mut reconciled = self.reconciled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match resource_version {
            Some(rv) => reconciled.insert(key, rv),
            None => reconciled.remove(&key),
        };
    }

    /// Forgets what was recorded about `kind` `namespace/name` and about the children of that
    /// name (when the object is deleted).
    pub fn forget(&self, kind: &'static str, namespace: &str, name: &str) {
        let same = |ns: &String, n: &String| ns == namespace && n == name;
        self.backoff.reset(&(kind, namespace.into(), name.into()));
        let key = (kind, namespace.to_owned(), name.to_owned());
        self.reconciled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
        self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
        self.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|(_, ns, n), _| !same(ns, n));
    }

    /// Objects of `kind` among `current` (key and resourceVersion) whose resourceVersion was
    /// not reconciled yet.
    pub fn pending<'a>(&self, kind: &'static str, current: impl Iterator<Item = (String, String, &'a str)>) -> usize {
        let reconciled = self.reconciled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        current
            .filter(|(ns, name, rv)| reconciled.get(&(kind, ns.clone(), name.clone())).map(String::as_str) != Some(*rv))
            .count()
    }

    /// Writes `status` to `object` (see [`crate::status::write`]), remembering it under `key`.
    pub async fn write_status<K>(
        &self,
        key: &ObjectKey,
        api: &kube::Api<K>,
        object: &K,
        current: Option<serde_json::Value>,
        status: serde_json::Value,
    ) -> kube::Result<Option<String>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let last = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned();
        let (version, written) = crate::status::write(api, object, current, status, last).await?;
        let mut memory = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match written {
            Some(written) => memory.insert(key.clone(), written),
            None => memory.remove(key),
        };
        Ok(version)
    }

    /// Publishes a Warning Event about `object`; failures to publish are only logged.
    pub async fn warn<K: kube::Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }
}
