//! The engine's instances and functions as the API shows them: read-only Pods (one per
//! instance, labelled `function: <name>`), Services (one per Function, port
//! `http-function-port`) and Deployments (one per Function, counting its instances, which is
//! what `kubeless function ls` reads its STATUS from), pod logs, and the service proxy.

use bytes::Bytes;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kelp_apiserver::{BoxFuture, BoxStream, LogOptions, WorkloadError, WorkloadEvent, Workloads};
use kelp_local::{InstanceInfo, Phase, Platform};
use kelp_store::{Selector, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often watches of pods and services look for changes.
const WATCH_PERIOD: Duration = Duration::from_millis(250);

/// [`Workloads`] over the engine (pods, logs, proxy) and the store (services of Functions).
#[derive(Debug, Clone)]
pub struct Engine {
    platform: Arc<Platform>,
    store: Store,
}

impl Engine {
    /// Shows `platform`'s instances and `store`'s Functions.
    pub fn new(platform: Arc<Platform>, store: Store) -> Self {
        Engine { platform, store }
    }

    fn pods(&self, namespace: Option<&str>) -> Vec<Pod> {
        let mut infos = self.platform.instances();
        infos.retain(|i| namespace.is_none_or(|ns| ns == i.namespace));
        infos.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        infos.iter().map(pod).collect()
    }

    fn services(&self, namespace: Option<&str>) -> Vec<Service> {
        let functions = self.store.list("kubeless.io/functions", namespace, &Selector::everything());
        functions.items.iter().filter_map(|f| service(f)).collect()
    }

    fn deployments(&self, namespace: Option<&str>) -> Vec<Deployment> {
        let instances = self.platform.instances();
        let functions = self.store.list("kubeless.io/functions", namespace, &Selector::everything());
        functions
            .items
            .iter()
            .filter_map(|f| {
                let (ns, name) = (f.pointer("/metadata/namespace")?.as_str()?, f.pointer("/metadata/name")?.as_str()?);
                let mine = instances.iter().filter(|i| i.namespace == ns && i.function == name);
                let (all, ready) = mine.fold((0, 0), |(all, ready), i| (all + 1, ready + i32::from(i.ready)));
                deployment(f, all, ready)
            })
            .collect()
    }
}

impl Workloads for Engine {
    fn list_pods<'a>(&'a self, namespace: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Pod>, WorkloadError>> {
        Box::pin(async move { Ok(self.pods(namespace)) })
    }

    fn list_services<'a>(&'a self, namespace: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Service>, WorkloadError>> {
        Box::pin(async move { Ok(self.services(namespace)) })
    }

    fn list_deployments<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Deployment>, WorkloadError>> {
        Box::pin(async move { Ok(self.deployments(namespace)) })
    }

    fn watch_deployments(&self) -> BoxStream<WorkloadEvent<Deployment>> {
        let engine = self.clone();
        changes(move || engine.deployments(None), |d: &Deployment| key(&d.metadata))
    }

    fn watch_pods(&self) -> BoxStream<WorkloadEvent<Pod>> {
        let engine = self.clone();
        changes(move || engine.pods(None), |p: &Pod| key(&p.metadata))
    }

    fn watch_services(&self) -> BoxStream<WorkloadEvent<Service>> {
        let engine = self.clone();
        changes(move || engine.services(None), |s: &Service| key(&s.metadata))
    }

    fn pod_logs<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<BoxStream<Result<Bytes, std::io::Error>>, WorkloadError>> {
        Box::pin(async move {
            let tail = options.tail_lines.and_then(|n| usize::try_from(n).ok());
            match self.platform.logs(namespace, pod, tail, options.follow).await {
                Ok(stream) => Ok(Box::pin(stream) as BoxStream<_>),
                Err(_) => Err(WorkloadError::NotFound(format!("pods \"{pod}\" not found"))),
            }
        })
    }

    fn proxy<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
        _port: Option<&'a str>,
        request: http::Request<axum::body::Body>,
    ) -> BoxFuture<'a, Result<http::Response<axum::body::Body>, WorkloadError>> {
        Box::pin(async move {
            if self.store.get("kubeless.io/functions", namespace, service).is_err() {
                return Err(WorkloadError::NotFound(format!("services \"{service}\" not found")));
            }
            let response = self.platform.proxy(namespace, service, request).await;
            Ok(response.map(axum::body::Body::new))
        })
    }
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// Polls `list` and turns the differences between two looks into watch events.
fn changes<T, L, K>(list: L, key: K) -> BoxStream<WorkloadEvent<T>>
where
    T: PartialEq + Clone + Send + 'static,
    L: Fn() -> Vec<T> + Send + 'static,
    K: Fn(&T) -> (String, String) + Send + 'static,
{
    let seen: BTreeMap<(String, String), T> = list().into_iter().map(|t| (key(&t), t)).collect();
    let stream = futures_util::stream::unfold((seen, list, key), |(mut seen, list, key)| async move {
        loop {
            tokio::time::sleep(WATCH_PERIOD).await;
            let now: BTreeMap<(String, String), T> = list().into_iter().map(|t| (key(&t), t)).collect();
            let mut events = Vec::new();
            for (k, old) in &seen {
                if !now.contains_key(k) {
                    events.push(WorkloadEvent::Deleted(old.clone()));
                }
            }
            for (k, new) in &now {
                match seen.get(k) {
                    None => events.push(WorkloadEvent::Added(new.clone())),
                    Some(old) if old != new => events.push(WorkloadEvent::Modified(new.clone())),
                    Some(_) => {}
                }
            }
            seen = now;
            if !events.is_empty() {
                return Some((futures_util::stream::iter(events), (seen, list, key)));
            }
        }
    });
    Box::pin(stream.flatten())
}

/// A Kubernetes timestamp: RFC 3339, UTC, whole seconds.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from(t).format(format).unwrap_or_default()
}

/// An instance as a Pod: labels `function`, `created-by`; one container named after the function.
fn pod(i: &InstanceInfo) -> Pod {
    let phase = match i.phase {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Failed => "Failed",
    };
    let ready = if i.ready { "True" } else { "False" };
    let state = match (i.phase, i.started_at) {
        (Phase::Running, Some(started)) => json!({"running": {"startedAt": rfc3339(started)}}),
        _ => {
            json!({"waiting": {"reason": if i.phase == Phase::Failed { "CrashLoopBackOff" } else { "ContainerCreating" }}})
        }
    };
    let last_state = i.last_termination.as_ref().map_or(json!({}), |t| {
        json!({"terminated": {"reason": t.reason, "message": t.message, "exitCode": t.exit_code.unwrap_or(-1),
            "signal": t.signal, "finishedAt": rfc3339(t.finished_at)}})
    });
    let value = json!({
        "metadata": {
            "name": i.name, "namespace": i.namespace, "creationTimestamp": rfc3339(i.created_at),
            "labels": {"function": i.function, "created-by": "kubeless", "kelp.dev/revision": i.revision},
        },
        "spec": {"containers": [{"name": i.function, "image": "kelp-runtime",
            "ports": i.port.map(|p| vec![json!({"containerPort": p, "protocol": "TCP"})]).unwrap_or_default()}]},
        "status": {
            "phase": phase, "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
            "startTime": rfc3339(i.created_at),
            "conditions": [{"type": "Ready", "status": ready}, {"type": "ContainersReady", "status": ready}],
            "containerStatuses": [{"name": i.function, "ready": i.ready, "restartCount": i.restarts,
                "image": "kelp-runtime", "imageID": "", "started": i.phase == Phase::Running,
                "state": state, "lastState": last_state}],
        },
    });
    serde_json::from_value(value).expect("the pod shape is fixed")
}

/// A Function's Service: its `spec.service` (default: port `http-function-port` 8080), selector
/// `function: <name>`, and the Function's labels.
fn service(function: &Value) -> Option<Service> {
    let meta = function.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let mut spec = function.pointer("/spec/service").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    if spec.get("ports").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec["ports"] = json!([{"name": "http-function-port", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]);
    }
    if spec.get("selector").is_none() {
        spec["selector"] = json!({"function": name, "created-by": "kubeless"});
    }
    spec["type"] = spec.get("type").cloned().unwrap_or_else(|| json!("ClusterIP"));
    let mut labels = meta.get("labels").cloned().unwrap_or_else(|| json!({}));
    labels["function"] = json!(name);
    labels["created-by"] = json!("kubeless");
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or_default();
    let value = json!({
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
            "creationTimestamp": meta.get("creationTimestamp"),
            // Kubernetes stopped filling it in 1.20; `kubeless function call -d` builds its URL
            // from it.
            "selfLink": format!("/api/v1/namespaces/{namespace}/services/{name}"),
            "ownerReferences": owned_by(meta)},
        "spec": spec,
    });
    serde_json::from_value(value).ok()
}

/// The owner reference of a Function's Service and Deployment (the controller's, as on a cluster).
fn owned_by(function_meta: &Value) -> Value {
    json!([{"apiVersion": "kubeless.io/v1beta1", "kind": "Function", "name": function_meta.get("name"),
        "uid": function_meta.get("uid"), "controller": true, "blockOwnerDeletion": true}])
}

/// A Function's Deployment: its labels, selector `function: <name>`, and as many replicas as the
/// engine runs instances of it (`ready` of them ready; none while it is scaled to zero).
fn deployment(function: &Value, replicas: i32, ready: i32) -> Option<Deployment> {
    let meta = function.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let mut labels = meta.get("labels").cloned().unwrap_or_else(|| json!({}));
    labels["function"] = json!(name);
    labels["created-by"] = json!("kubeless");
    let selector = json!({"function": name, "created-by": "kubeless"});
    let value = json!({
        "metadata": {"name": name, "namespace": meta.get("namespace"), "labels": labels,
            "creationTimestamp": meta.get("creationTimestamp"), "ownerReferences": owned_by(meta)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector},
                "spec": {"containers": [{"name": name, "image": "kelp-runtime"}]}}},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
            "updatedReplicas": replicas, "observedGeneration": meta.get("generation")},
    });
    serde_json::from_value(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_default_to_the_kubeless_port() {
        let f = json!({"metadata": {"name": "hello", "namespace": "default", "uid": "u", "labels": {"a": "b"}}, "spec": {}});
        let s = serde_json::to_value(service(&f).unwrap()).unwrap();
        assert_eq!(s["spec"]["ports"][0]["name"], "http-function-port");
        assert_eq!(s["spec"]["ports"][0]["port"], 8080);
        assert_eq!(s["spec"]["selector"]["function"], "hello");
        assert_eq!(s["metadata"]["labels"]["a"], "b");
        assert_eq!(s["metadata"]["selfLink"], "/api/v1/namespaces/default/services/hello");
        let d = serde_json::to_value(deployment(&f, 2, 1).unwrap()).unwrap();
        assert_eq!((d["status"]["replicas"].as_i64(), d["status"]["readyReplicas"].as_i64()), (Some(2), Some(1)));
        assert_eq!(d["spec"]["selector"]["matchLabels"]["function"], "hello");
        assert_eq!(d["metadata"]["ownerReferences"][0]["uid"], "u");
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)), "1970-01-01T00:00:01Z");
    }
}
