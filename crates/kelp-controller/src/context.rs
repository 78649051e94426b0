//! What every reconcile shares: the client, the configuration, caches of the children, metrics
//! and the Event recorder.

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kelp_api::Function;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The label every child carries (Kubeless's), which the child caches select on.
pub const CHILD_SELECTOR: &str = "created-by=kubeless";

/// Caches of the objects the controller made (label [`CHILD_SELECTOR`]), kept by watches.
#[derive(Clone)]
pub struct Stores {
    /// Functions (all the controller watches).
    pub functions: Store<Function>,
    /// Functions' ConfigMaps.
    pub config_maps: Store<ConfigMap>,
    /// Functions' Deployments (with their status).
    pub deployments: Store<Deployment>,
    /// Functions' Services.
    pub services: Store<Service>,
    /// Functions' autoscalers.
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// HTTPTriggers' Ingresses.
    pub ingresses: Store<Ingress>,
    /// CronJobTriggers' CronJobs.
    pub cron_jobs: Store<CronJob>,
}

/// One object, named by kind, namespace and name.
pub type ObjectKey = (&'static str, String, String);

/// What the controller last applied to one child: the desired object's hash and the child's
/// `generation` (or `resourceVersion`) right after. While both still hold, applying again would
/// change nothing, so the request is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Hash of the desired object.
    pub desired: u64,
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
    /// The failures of each failing object, which space its retries.
    pub backoff: Backoff,
    /// The last step failure (a pod's build or install) reported as an Event, per Function.
    pub step_failures: Mutex<HashMap<(String, String), String>>,
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
            step_failures: Mutex::default(),
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

    /// Records `message` as the step failure of the Function `key` (namespace, name): `true`
    /// when it is new, so that an Event is published once per failure, not at every look.
    pub fn note_step_failure(&self, key: (String, String), message: &str) -> bool {
        let mut seen = self.step_failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.insert(key, message.to_owned()).as_deref() != Some(message)
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
        self.reconciled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&(
            kind,
            namespace.into(),
            name.into(),
        ));
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
