//! The local controller: keeps the engine running what the store says. Whenever the store
//! changes (and every few seconds, for what the engine changes on its own) it deploys every
//! Function, removes deleted ones, writes each Function's `status`, routes HTTPTriggers,
//! schedules CronJobTriggers, runs the consumers of Kafka, NATS and Kinesis triggers (and writes
//! their status), makes HTTP and cron triggers owned objects of their Function and deletes
//! those whose Function is gone (`owners`, as the cluster's controller and garbage collector
//! do), and takes Kubeless's finalizers off objects being deleted — the platform owns nothing
//! outside itself that they would protect.

use crate::cron::Cron;
use crate::desired;
use crate::events::EventTriggers;
use crate::runtimes::{Interpreters, RuntimeFit, runtime_of};
use kelp_api::Function;
use kelp_local::{Platform, Route};
use kelp_store::{Selector, Store, StoreError};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const FUNCTIONS: &str = "kubeless.io/functions";
const HTTP_TRIGGERS: &str = "kubeless.io/httptriggers";
const CRON_TRIGGERS: &str = "kubeless.io/cronjobtriggers";
const KAFKA_TRIGGERS: &str = "kubeless.io/kafkatriggers";
const NATS_TRIGGERS: &str = "kubeless.io/natstriggers";
const KINESIS_TRIGGERS: &str = "kubeless.io/kinesistriggers";
/// The namespace and name of Kubeless's configuration.
const KUBELESS_CONFIG: (&str, &str) = ("kubeless", "kubeless-config");
/// Core Events: how a Function's steps (install, build) ended.
const EVENTS: &str = "/events";
/// The finalizers Kubeless's controllers put on objects; objects carrying them must still delete.
const KUBELESS_FINALIZERS: [&str; 5] = [
    "kubeless.io/function",
    "kubeless.io/httptrigger",
    "kubeless.io/cronjobtrigger",
    "kubeless.io/kafkatrigger",
    "kubeless.io/natstrigger",
];
/// How often the store is checked for changes (a read of one number): a Function created is
/// deployed within this much of its acknowledgement.
const POLL: Duration = Duration::from_millis(5);
/// How often everything is looked at even when the store did not change.
const RESYNC: Duration = Duration::from_secs(1);

/// The controller's state between rounds.
#[derive(Debug)]
pub struct Reconciler {
    store: Store,
    platform: Arc<Platform>,
    cron: Cron,
    /// The interpreters that run Functions' runtimes.
    interpreters: Interpreters,
    /// Kafka and NATS consumers of the triggers.
    events: EventTriggers,
    /// Functions handed to the engine, with the error of their last deployment if any.
    deployed: BTreeMap<(String, String), Option<String>>,
    /// The parsed `kubeless-config` and the resourceVersion it was parsed at.
    config: Option<(Option<Value>, Arc<kelp_plan::Config>)>,
    /// The step outcome last reported as an Event, per Function: (revision, step, succeeded).
    steps_reported: BTreeMap<(String, String), (String, kelp_plan::run::Step, bool)>,
}

impl Reconciler {
    /// A controller of `platform` from `store`, running runtimes on `interpreters` and event
    /// triggers' consumers in `events`.
    pub fn new(
        store: Store,
        platform: Arc<Platform>,
        cron: Cron,
        interpreters: Interpreters,
        events: EventTriggers,
    ) -> Self {
        Reconciler {
            store,
            platform,
            cron,
            interpreters,
            events,
            deployed: BTreeMap::new(),
            steps_reported: BTreeMap::new(),
            config: None,
        }
    }

    /// Runs rounds until `stop` completes, then stops the event consumers (committing what they
    /// delivered).
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut seen = None;
        let mut last_round = tokio::time::Instant::now();
        loop {
            let version = self.store.resource_version();
            if seen != Some(version) || last_round.elapsed() >= RESYNC {
                seen = Some(version);
                last_round = tokio::time::Instant::now();
                self.round().await;
            }
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(POLL) => {}
            }
        }
        self.events.stop_all().await;
    }

    /// One pass over everything.
    pub async fn round(&mut self) {
        let functions = self.store.list(FUNCTIONS, None, &Selector::everything()).items;
        let config = self.kubeless_config();
        let mut live = BTreeSet::new();
        for object in &functions {
            let key = key_of(object);
            if object.pointer("/metadata/deletionTimestamp").is_some() {
                self.release(FUNCTIONS, object).await;
                continue;
            }
            live.insert(key.clone());
            // The API refuses runtimes that cannot run here; one stored before its interpreter
            // went away is not deployed.
            let runtime = runtime_of(object);
            let (error, fit) = match runtime.map(|r| self.interpreters.check(r)).transpose() {
                Ok(fit) => (self.deploy(object, &config).await.err(), fit),
                Err(refused) => (Some(format!("runtime {:?} {refused}", runtime.unwrap_or_default())), None),
            };
            if let Some(e) = &error
                && self.deployed.get(&key) != Some(&Some(e.clone()))
            {
                tracing::warn!(function = %format!("{}/{}", key.0, key.1), error = %e, "cannot run function");
            }
            self.write_status(object, error.as_deref(), fit.as_ref()).await;
            self.deployed.insert(key, error);
        }
        let gone: Vec<_> = self.deployed.keys().filter(|k| !live.contains(*k)).cloned().collect();
        for (namespace, name) in gone {
            self.platform.remove(&namespace, &name).await;
            self.deployed.remove(&(namespace, name));
        }
        crate::owners::sync(&self.store, &functions).await;
        self.route_http_triggers().await;
        let cron = self.live_objects(CRON_TRIGGERS).await;
        self.cron.sync(&cron);
        let live_functions: Vec<Arc<Value>> =
            functions.into_iter().filter(|f| f.pointer("/metadata/deletionTimestamp").is_none()).collect();
        let (kafka, nats) = (self.live_objects(KAFKA_TRIGGERS).await, self.live_objects(NATS_TRIGGERS).await);
        let kinesis = self.live_objects(KINESIS_TRIGGERS).await;
        for (resource, trigger, status) in self.events.sync(&kafka, &nats, &kinesis, &live_functions).await {
            self.put_status(resource, &trigger, status).await;
        }
    }

    /// The `kubeless-config` of this platform (the runtimes' phases decide a Function's steps);
    /// Kelp's defaults when it is missing or cannot be read (the API validates it on writes).
    /// Parsed again only when the stored object changed (its resourceVersion), not every round.
    fn kubeless_config(&mut self) -> Arc<kelp_plan::Config> {
        let stored = self.store.get("/configmaps", KUBELESS_CONFIG.0, KUBELESS_CONFIG.1).ok();
        let version = stored.as_ref().and_then(|o| o.pointer("/metadata/resourceVersion")).cloned();
        if let Some((seen, config)) = &self.config
            && *seen == version
        {
            return config.clone();
        }
        let data = stored.and_then(|o| serde_json::from_value(o.get("data")?.clone()).ok());
        let config = Arc::new(data.and_then(|d| kelp_plan::Config::from_data(&d).ok()).unwrap_or_default());
        self.config = Some((version, config.clone()));
        config
    }

    async fn deploy(&self, object: &Value, config: &kelp_plan::Config) -> Result<(), String> {
        let function: Function =
            serde_json::from_value(object.clone()).map_err(|e| format!("unreadable Function: {e}"))?;
        let deployment = desired::deployment(&function, &self.store, config).map_err(|e| e.to_string())?;
        self.platform.deploy(deployment).await.map_err(|e| e.to_string())
    }

    /// Writes the Function's status when it changed, and an Event for a step (install, build)
    /// that ended.
    async fn write_status(&mut self, object: &Value, error: Option<&str>, runtime: Option<&RuntimeFit>) {
        let (namespace, name) = key_of(object);
        let generation = object.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let run = self.platform.status(&namespace, &name);
        let status = crate::status::function_status(generation, run.as_ref(), error, runtime);
        self.put_status(FUNCTIONS, object, status).await;
        if let Some(report) = run.and_then(|r| r.step) {
            let outcome = (report.revision.clone(), report.step, report.succeeded);
            if self.steps_reported.get(&(namespace.clone(), name.clone())) != Some(&outcome) {
                let event = crate::status::step_event(object, &report, std::time::SystemTime::now());
                if let Err(e) = self.store.create(EVENTS, event).await {
                    tracing::warn!(error = %e, "writing a step's Event");
                }
                self.steps_reported.insert((namespace, name), outcome);
            }
        }
    }

    /// Writes `status` into the object of `resource` when it changed (conditions keep their
    /// `lastTransitionTime` while their status does not change).
    async fn put_status(&self, resource: &str, object: &Value, status: Value) {
        let now = crate::workloads::rfc3339(std::time::SystemTime::now());
        if let Some(status) = kelp_api::merge_transition_times(object.get("status"), status, &now) {
            let mut updated = object.clone();
            updated["status"] = status;
            // A conflict means the object changed meanwhile; the next round writes again.
            if let Err(e) = self.store.update_status(resource, updated).await
                && !matches!(e, StoreError::Conflict { .. } | StoreError::NotFound { .. })
            {
                tracing::warn!(error = %e, resource, "writing status");
            }
        }
    }

    /// HTTPTriggers become the gateway's host/path routes, with the path rewrite of the Ingress
    /// Kubeless would make ([`rewrite_target`]).
    async fn route_http_triggers(&self) {
        let routes = self
            .live_objects(HTTP_TRIGGERS)
            .await
            .iter()
            .filter_map(|t| {
                let spec = t.get("spec")?;
                let text = |k: &str| spec.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
                Some(Route {
                    host: text("host-name"),
                    path_prefix: format!("/{}", text("path").unwrap_or_default().trim_start_matches('/')),
                    namespace: key_of(t).0,
                    function: text("function-name")?,
                    rewrite_target: rewrite_target(t),
                })
            })
            .collect();
        self.platform.set_routes(routes);
    }

    /// The objects of `resource` that are not being deleted; those being deleted are released.
    async fn live_objects(&self, resource: &str) -> Vec<Arc<Value>> {
        let mut live = Vec::new();
        for object in self.store.list(resource, None, &Selector::everything()).items {
            if object.pointer("/metadata/deletionTimestamp").is_some() {
                self.release(resource, &object).await;
            } else {
                live.push(object);
            }
        }
        live
    }

    /// Takes Kubeless's finalizers off an object being deleted, so the deletion completes.
    async fn release(&self, resource: &str, object: &Value) {
        let Some(finalizers) = object.pointer("/metadata/finalizers").and_then(Value::as_array) else { return };
        let kept: Vec<Value> = finalizers
            .iter()
            .filter(|f| !f.as_str().is_some_and(|f| KUBELESS_FINALIZERS.contains(&f)))
            .cloned()
            .collect();
        if kept.len() == finalizers.len() {
            return;
        }
        let mut updated = object.clone();
        updated["metadata"]["finalizers"] = Value::Array(kept);
        if let Err(e) = self.store.update(resource, updated).await
            && !matches!(e, StoreError::Conflict { .. } | StoreError::NotFound { .. })
        {
            tracing::warn!(error = %e, "removing finalizers");
        }
    }
}

/// The annotation with which nginx replaces the path of a request before passing it on.
const NGINX_REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";

/// What the Ingress of an HTTPTrigger does to the path on a cluster: for the nginx gateway (the
/// default) Kubeless annotates it `rewrite-target: /` unless the trigger's own annotations say
/// otherwise, and nginx then replaces the whole path (`/<path>/x` reaches the function as `/`);
/// traefik and kong get no such annotation and pass the path as it is.
fn rewrite_target(trigger: &Value) -> Option<String> {
    let gateway = trigger.pointer("/spec/gateway").and_then(Value::as_str).unwrap_or_default();
    if !matches!(gateway, "" | "nginx") {
        return None;
    }
    let annotation = trigger.pointer("/metadata/annotations").and_then(|a| a.get(NGINX_REWRITE_TARGET));
    match annotation.and_then(Value::as_str) {
        Some(target) => Some(target.to_string()).filter(|t| !t.is_empty()),
        None => Some("/".to_string()),
    }
}

fn key_of(object: &Value) -> (String, String) {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    (text("/metadata/namespace"), text("/metadata/name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nginx_rewrites_the_path_as_kubeless_annotates_it() {
        let trigger = |gateway: &str, annotations: Value| json!({"metadata": {"annotations": annotations}, "spec": {"gateway": gateway, "function-name": "f"}});
        assert_eq!(rewrite_target(&trigger("nginx", json!({}))).as_deref(), Some("/"));
        assert_eq!(rewrite_target(&trigger("", json!(null))).as_deref(), Some("/"));
        let own = json!({NGINX_REWRITE_TARGET: "/v2"});
        assert_eq!(rewrite_target(&trigger("nginx", own)).as_deref(), Some("/v2"));
        assert_eq!(rewrite_target(&trigger("nginx", json!({NGINX_REWRITE_TARGET: ""}))), None);
        assert_eq!(rewrite_target(&trigger("traefik", json!({}))), None);
        assert_eq!(rewrite_target(&trigger("kong", json!({NGINX_REWRITE_TARGET: "/"}))), None);
    }
}
