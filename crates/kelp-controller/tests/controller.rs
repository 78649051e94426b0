//! The controller against a real control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok fake nodes: `kelp-testenv`). Each test has its own namespace and its
//! own `kelp-controller` process watching only that namespace. kwok makes pods Running and Ready
//! without running them, so these tests check the objects and the status, not calls (calls are
//! tested against `kelp up`, where functions really run).

mod common;

use common::{ControllerProcess, eventually, kubectl, manifest};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kelp_api::{Conditions, Function, HTTPTrigger};
use kelp_testenv::ControlPlane;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::time::Duration;

/// How long a function may take to become Ready on kwok nodes.
const READY: Duration = Duration::from_secs(90);

/// A namespace and a controller watching it.
async fn setup(prefix: &str) -> (&'static ControlPlane, Client, String, ControllerProcess) {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace(prefix).await;
    let controller =
        ControllerProcess::start(plane, prefix, &["--leader-elect=false", "--functions-namespace", &namespace]);
    (plane, plane.client().await, namespace, controller)
}

fn python_function(name: &str, code: &str) -> Value {
    json!({
        "apiVersion": "kubeless.io/v1beta1",
        "kind": "Function",
        "metadata": {"name": name, "labels": {"created-by": "kubeless", "function": name}},
        "spec": {
            "runtime": "python3.11",
            "handler": "hello.handler",
            "function": code,
            "function-content-type": "text",
            "deps": "",
            "timeout": "180",
        },
    })
}

fn apply(plane: &ControlPlane, namespace: &str, doc: &Value) {
    let (ok, _, err) = kubectl(plane, &["apply", "-n", namespace, "-f", "-"], Some(&doc.to_string()));
    assert!(ok, "kubectl apply failed: {err}");
}

/// Waits until the Function's Ready condition is True for its current generation.
async fn ready(api: &Api<Function>, name: &str, controller: &ControllerProcess) -> Function {
    let what = format!("function {name} to become Ready");
    let result = tokio::time::timeout(READY, async {
        loop {
            if let Ok(f) = api.get(name).await {
                let status = f.status.clone().unwrap_or_default();
                if status.is_ready() && status.observed_generation == f.metadata.generation {
                    return f;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    result.unwrap_or_else(|_| {
        let status = futures_util::FutureExt::now_or_never(api.get(name)).and_then(Result::ok).and_then(|f| f.status);
        panic!("timed out waiting for {what}; status {status:?}\ncontroller log:\n{}", controller.log_tail())
    })
}

#[tokio::test]
async fn every_example_manifest_reconciles_to_ready() {
    let (plane, client, ns, controller) = setup("examples").await;
    let dir = kelp_testkit::repo_root().join("examples/manifests");
    let mut functions = Vec::new();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        docs.extend(manifest(&entry.unwrap().path()));
    }
    // Functions first: a trigger waits for its function.
    docs.sort_by_key(|d| d["kind"] != "Function");
    for doc in &docs {
        apply(plane, &ns, doc);
        if doc["kind"] == "Function" {
            functions.push(doc["metadata"]["name"].as_str().unwrap().to_string());
        }
    }
    assert!(functions.len() >= 4, "the examples hold several functions: {functions:?}");
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    for name in &functions {
        let function = ready(&fns, name, &controller).await;
        let uid = function.uid().unwrap();
        let deployment: Deployment = Api::namespaced(client.clone(), &ns).get(name).await.unwrap();
        let owner = &deployment.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Function", uid.as_str(), Some(true)));
        assert_eq!(deployment.labels().get("created-by").map(String::as_str), Some("kubeless"));
        assert_eq!(deployment.labels().get("function"), Some(name));
        let spec = deployment.spec.unwrap();
        let selector = spec.selector.match_labels.unwrap();
        assert_eq!(selector.get("function"), Some(name));
        let pod = spec.template.spec.unwrap();
        let container = &pod.containers[0];
        let env: Vec<&str> = container.env.iter().flatten().map(|e| e.name.as_str()).collect();
        for var in ["FUNC_HANDLER", "MOD_NAME", "FUNC_TIMEOUT", "FUNC_RUNTIME", "FUNC_MEMORY_LIMIT", "FUNC_PORT"] {
            assert!(env.contains(&var), "{name}: {var} missing from {env:?}");
        }
        let init: Vec<&str> = pod.init_containers.iter().flatten().map(|c| c.name.as_str()).collect();
        assert_eq!(init.first(), Some(&"prepare"), "{name}: init containers {init:?}");
        let service: Service = Api::namespaced(client.clone(), &ns).get(name).await.unwrap();
        let port = &service.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.name.as_deref(), Some("http-function-port"));
        let config_map: ConfigMap = Api::namespaced(client.clone(), &ns).get(name).await.unwrap();
        assert!(config_map.data.unwrap().contains_key("handler"), "{name}: the ConfigMap has the handler");
        assert_eq!(function.status.unwrap().ready_replicas, Some(1));
    }
    let with_deps: Vec<&String> = functions
        .iter()
        .filter(|f| {
            docs.iter().any(|d| {
                d["metadata"]["name"] == f.as_str() && d["spec"]["deps"].as_str().is_some_and(|s| !s.is_empty())
            })
        })
        .collect();
    for name in with_deps {
        let deployment: Deployment = Api::namespaced(client.clone(), &ns).get(name).await.unwrap();
        let init: Vec<String> = deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .init_containers
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        // Installed by `install`, or for a compiled language part of its `build`.
        let steps = ["install", "build"].map(String::from);
        assert!(init.iter().any(|c| steps.contains(c)), "{name} has dependencies: {init:?}");
    }
    for doc in docs.iter().filter(|d| d["kind"] == "HTTPTrigger") {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
        let ingress =
            eventually("the trigger's Ingress", READY, || async { ingresses.get_opt(name).await.ok().flatten() }).await;
        let backend =
            ingress.spec.unwrap().rules.unwrap()[0].http.clone().unwrap().paths[0].backend.service.clone().unwrap();
        assert_eq!(Some(&backend.name), doc["spec"]["function-name"].as_str().map(String::from).as_ref());
    }
    for doc in docs.iter().filter(|d| d["kind"] == "CronJobTrigger") {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &ns);
        let cron_job =
            eventually("the trigger's CronJob", READY, || async { cron_jobs.get_opt(name).await.ok().flatten() }).await;
        assert_eq!(cron_job.spec.unwrap().schedule, doc["spec"]["schedule"].as_str().unwrap());
    }
}

/// The Deployment's generation and pod template.
async fn template(client: &Client, ns: &str, name: &str) -> (i64, Value) {
    let d: Deployment = Api::namespaced(client.clone(), ns).get(name).await.unwrap();
    (d.metadata.generation.unwrap(), serde_json::to_value(d.spec.unwrap().template).unwrap())
}

#[tokio::test]
async fn every_spec_change_rolls_the_pods() {
    let (plane, client, ns, controller) = setup("rolls").await;
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    apply(plane, &ns, &python_function("roll", "def handler(event, context):\n    return 'v1'\n"));
    ready(&fns, "roll", &controller).await;
    let (mut generation, mut pods) = template(&client, &ns, "roll").await;
    let changes = [
        (
            "the code, without a checksum",
            json!({"spec": {"function": "def handler(event, context):\n    return 'v2'\n"}}),
        ),
        ("the runtime alone", json!({"spec": {"runtime": "python3.12"}})),
        ("a label", json!({"metadata": {"labels": {"tier": "gold"}}})),
        ("the timeout", json!({"spec": {"timeout": "30"}})),
    ];
    for (what, patch) in changes {
        fns.patch("roll", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        // A label does not bump the Function's generation, so wait for the Deployment instead.
        let (now_generation, now_pods) =
            eventually(&format!("changing {what} to roll the Deployment"), READY, || async {
                let (g, t) = template(&client, &ns, "roll").await;
                (g > generation).then_some((g, t))
            })
            .await;
        let function = ready(&fns, "roll", &controller).await;
        assert_ne!(now_pods, pods, "changing {what} must change the pod template");
        assert_eq!(function.status.unwrap().observed_generation, function.metadata.generation);
        (generation, pods) = (now_generation, now_pods);
    }
    // Nothing changed: no new rollout.
    fns.patch("roll", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"annotations": {"note": "x"}}})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, _) = template(&client, &ns, "roll").await;
    assert!(after <= generation + 1, "an annotation may change the template once, never repeatedly");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(template(&client, &ns, "roll").await.0, after, "a reconciled function is not rolled again");
}

#[tokio::test]
async fn deleting_a_function_takes_its_children_and_triggers() {
    let (plane, client, ns, controller) = setup("cascade").await;
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    apply(plane, &ns, &python_function("gone", "def handler(event, context):\n    return 'x'\n"));
    let trigger = json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "HTTPTrigger",
        "metadata": {"name": "gone-route"},
        "spec": {"function-name": "gone", "host-name": "gone.example.com", "path": "gone", "gateway": "nginx"},
    });
    apply(plane, &ns, &trigger);
    let cron = json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "CronJobTrigger",
        "metadata": {"name": "gone-cron"},
        "spec": {"function-name": "gone", "schedule": "*/5 * * * *", "payload": {"a": 1}},
    });
    apply(plane, &ns, &cron);
    ready(&fns, "gone", &controller).await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    eventually("the Ingress", READY, || async { ingresses.get_opt("gone-route").await.ok().flatten() }).await;
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &ns);
    eventually("the CronJob", READY, || async { cron_jobs.get_opt("gone-cron").await.ok().flatten() }).await;

    fns.delete("gone", &DeleteParams::foreground()).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let triggers: Api<HTTPTrigger> = Api::namespaced(client.clone(), &ns);
    eventually("every child and trigger to be gone", READY, || async {
        let gone = fns.get_opt("gone").await.ok()?.is_none()
            && deployments.get_opt("gone").await.ok()?.is_none()
            && services.get_opt("gone").await.ok()?.is_none()
            && config_maps.get_opt("gone").await.ok()?.is_none()
            && triggers.get_opt("gone-route").await.ok()?.is_none()
            && ingresses.get_opt("gone-route").await.ok()?.is_none()
            && cron_jobs.get_opt("gone-cron").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
}

#[tokio::test]
async fn objects_kubeless_created_are_adopted_and_delete_cleanly() {
    let plane = ControlPlane::shared();
    let ns = plane.namespace("adopt").await;
    let client = plane.client().await;
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    // What Kubeless left in etcd: the Function with its finalizer, children with Kubeless's
    // labels and owner reference (no `controller` field).
    let mut doc = python_function("legacy", "def handler(event, context):\n    return 'old'\n");
    doc["metadata"]["finalizers"] = json!(["kubeless.io/function"]);
    let function: Function = serde_json::from_value(doc).unwrap();
    let function = fns.create(&PostParams::default(), &function).await.unwrap();
    let owner = json!([{"apiVersion": "kubeless.io/v1beta1", "kind": "Function", "name": "legacy", "uid": function.uid().unwrap()}]);
    let labels = json!({"created-by": "kubeless", "function": "legacy"});
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "legacy", "labels": labels, "ownerReferences": owner},
        "data": {"handler": "hello.handler", "hello.py": "old"},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns).create(&PostParams::default(), &cm).await.unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "legacy", "labels": labels, "ownerReferences": owner},
        "spec": {"ports": [{"name": "http-function-port", "port": 8080, "targetPort": 8080}], "selector": labels},
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns).create(&PostParams::default(), &svc).await.unwrap();

    let controller = ControllerProcess::start(plane, "adopt", &["--leader-elect=false", "--functions-namespace", &ns]);
    ready(&fns, "legacy", &controller).await;
    let cm: ConfigMap = Api::namespaced(client.clone(), &ns).get("legacy").await.unwrap();
    assert_ne!(
        cm.data.unwrap().get("hello.py").map(String::as_str),
        Some("old"),
        "the adopted ConfigMap is Kelp's now"
    );

    fns.delete("legacy", &DeleteParams::default()).await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    eventually("the adopted function and its Service to be gone", READY, || async {
        (fns.get_opt("legacy").await.ok()?.is_none() && services.get_opt("legacy").await.ok()?.is_none()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_object_kelp_did_not_create_is_a_conflict_not_overwritten() {
    let (plane, client, ns, controller) = setup("conflict").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mine: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "clash"}, "data": {"owner": "someone else"}})).unwrap();
    cms.create(&PostParams::default(), &mine).await.unwrap();
    apply(plane, &ns, &python_function("clash", "def handler(event, context):\n    return 1\n"));
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    let condition = eventually("a Conflict condition", READY, || async {
        let status = fns.get("clash").await.ok()?.status?;
        status.condition("Ready").filter(|c| c.reason == "Conflict").cloned()
    })
    .await;
    assert_eq!(condition.status, "False");
    assert!(condition.message.contains("ConfigMap") && condition.message.contains("clash"), "{}", condition.message);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually("a Warning Event", READY, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Conflict") && e.type_.as_deref() == Some("Warning"))
    })
    .await;
    let kept = cms.get("clash").await.unwrap();
    assert_eq!(kept.data.as_ref().unwrap().get("owner").map(String::as_str), Some("someone else"));
    assert!(kept.owner_references().is_empty());
    drop(controller);
}

#[tokio::test]
async fn the_api_server_refuses_bad_functions_with_the_field_name() {
    let plane = ControlPlane::shared();
    let ns = plane.namespace("invalid").await;
    let cases = [
        ("spec.handler", json!({"handler": "nodot", "runtime": "python3.11", "function": "x"})),
        ("spec.runtime", json!({"handler": "a.b", "runtime": "py!", "function": "x"})),
        ("spec.checksum", json!({"handler": "a.b", "runtime": "python3.11", "function": "x", "checksum": "md5:1"})),
        (
            "spec.function-content-type",
            json!({"handler": "a.b", "runtime": "python3.11", "function": "x", "function-content-type": "gzip"}),
        ),
    ];
    for (field, spec) in cases {
        let doc =
            json!({"apiVersion": "kubeless.io/v1beta1", "kind": "Function", "metadata": {"name": "bad"}, "spec": spec});
        let (ok, _, err) = kubectl(plane, &["apply", "-n", &ns, "-f", "-"], Some(&doc.to_string()));
        assert!(!ok, "{field}: a bad Function must be refused");
        assert!(err.contains(field), "{field}: the error names the field: {err}");
    }
    let (_, out, _) = kubectl(plane, &["get", "functions", "-n", &ns, "-o", "name"], None);
    assert!(out.trim().is_empty(), "nothing was stored: {out}");
}

#[tokio::test]
async fn an_autoscaler_comes_and_goes_with_the_spec() {
    let (plane, client, ns, controller) = setup("hpa").await;
    let mut doc = python_function("scaled", "def handler(event, context):\n    return 1\n");
    doc["spec"]["horizontalPodAutoscaler"] = json!({
        "apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "scaled"},
        "spec": {
            "minReplicas": 1, "maxReplicas": 3,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}}],
        },
    });
    apply(plane, &ns, &doc);
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    ready(&fns, "scaled", &controller).await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    let hpa = eventually("the HPA", READY, || async { hpas.get_opt("scaled").await.ok().flatten() }).await;
    let spec = hpa.spec.unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas, spec.scale_target_ref.name.as_str()), (Some(1), 3, "scaled"));
    fns.patch("scaled", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"horizontalPodAutoscaler": null}})))
        .await
        .unwrap();
    eventually("the HPA to be removed", READY, || async { hpas.get_opt("scaled").await.ok()?.is_none().then_some(()) })
        .await;
}

#[tokio::test]
async fn metrics_count_reconciles() {
    let (plane, client, ns, controller) = setup("metrics").await;
    apply(plane, &ns, &python_function("counted", "def handler(event, context):\n    return 1\n"));
    ready(&Api::namespaced(client, &ns), "counted", &controller).await;
    let reconciles = controller.metric("kelp_controller_reconciles_total{kind=\"Function\"}").unwrap_or(0.0);
    assert!(reconciles >= 1.0, "reconciles counted:\n{}", controller.get("/metrics").unwrap_or_default());
    let body = controller.get("/metrics").unwrap();
    for series in
        ["kelp_controller_reconcile_duration_seconds_bucket", "kelp_controller_queue_depth", "kelp_controller_leader"]
    {
        assert!(body.contains(series), "{series} missing:\n{body}");
    }
}

/// Where `planned` is not contained in `live` (every key it has, with the same value; lists
/// element by element), as JSON paths.
fn not_contained(live: &Value, planned: &Value, path: &str, out: &mut Vec<String>) {
    match (live, planned) {
        (Value::Object(live), Value::Object(planned)) => {
            for (key, value) in planned {
                match live.get(key) {
                    Some(l) => not_contained(l, value, &format!("{path}.{key}"), out),
                    // The API server drops nulls and empty maps and lists.
                    None if value.is_null() || value == &json!({}) || value == &json!([]) => {}
                    None => out.push(format!("{path}.{key}: missing")),
                }
            }
        }
        (Value::Array(live), Value::Array(planned)) if live.len() == planned.len() => {
            for (i, (l, p)) in live.iter().zip(planned).enumerate() {
                not_contained(l, p, &format!("{path}[{i}]"), out);
            }
        }
        (live, planned) if live != planned => out.push(format!("{path}: {live} != planned {planned}")),
        _ => {}
    }
}

/// The fixture's object as a user would apply it: metadata reduced to what a client sends.
fn as_applied(mut doc: Value) -> Value {
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|key, _| matches!(key.as_str(), "name" | "labels" | "annotations" | "finalizers"));
    }
    doc
}

#[tokio::test]
async fn every_kubeless_manifest_shape_reconciles_and_matches_the_plan() {
    let (plane, client, ns, controller) = setup("shapes").await;
    let dir = kelp_testkit::repo_root().join("crates/kelp-api/tests/fixtures");
    let mut docs: Vec<Value> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        docs.extend(manifest(&entry.unwrap().path()).into_iter().map(as_applied));
    }
    docs.sort_by_key(|d| d["kind"] != "Function");
    // What the overrides' pods ask of the cluster (`function-deployment-overrides.yaml`, a Go
    // function since Kelp runs Go): their ServiceAccount, and a node labelled `disktype: ssd`.
    let (ok, _, err) = kubectl(plane, &["create", "serviceaccount", "fn-runner", "-n", &ns], None);
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl(plane, &["label", "nodes", "--all", "disktype=ssd", "--overwrite"], None);
    assert!(ok, "{err}");
    for doc in &docs {
        apply(plane, &ns, doc);
    }
    let config = kelp_plan::Config::default();
    let runtimes = config.runtimes();
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    for doc in docs.iter().filter(|d| d["kind"] == "Function") {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let runtime = doc["spec"]["runtime"].as_str().unwrap_or_default();
        let known = runtime.is_empty() || runtimes.iter().any(|r| r == runtime);
        if !known {
            let condition = eventually(&format!("{name}: a status naming runtime {runtime}"), READY, || async {
                let f = fns.get(name).await.ok()?;
                let status = f.status?;
                (status.observed_generation == f.metadata.generation).then_some(())?;
                status.condition("Ready").cloned()
            })
            .await;
            assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "InvalidSpec"), "{name}");
            assert!(condition.message.contains(runtime), "{name}: {}", condition.message);
            continue;
        }
        let function = ready(&fns, name, &controller).await;
        let planned = kelp_plan::function_children(&function, &config).unwrap();
        let mut differences = Vec::new();
        let live = |kind: &str| {
            let (ok, out, err) = kubectl(plane, &["get", kind, name, "-n", &ns, "-o", "json"], None);
            assert!(ok, "{name}: {kind}: {err}");
            serde_json::from_str::<Value>(&out).unwrap()
        };
        not_contained(
            &live("configmap"),
            &serde_json::to_value(&planned.config_map).unwrap(),
            "configmap",
            &mut differences,
        );
        not_contained(&live("service"), &serde_json::to_value(&planned.service).unwrap(), "service", &mut differences);
        not_contained(
            &live("deployment"),
            &serde_json::to_value(&planned.deployment).unwrap(),
            "deployment",
            &mut differences,
        );
        if let Some(hpa) = &planned.hpa {
            not_contained(&live("hpa"), &serde_json::to_value(hpa).unwrap(), "hpa", &mut differences);
        }
        assert!(differences.is_empty(), "{name}: the live objects differ from the plan:\n{}", differences.join("\n"));
    }
    for doc in docs.iter().filter(|d| matches!(d["kind"].as_str(), Some("HTTPTrigger" | "CronJobTrigger"))) {
        let (kind, name) = (doc["kind"].as_str().unwrap(), doc["metadata"]["name"].as_str().unwrap());
        let resource = if kind == "HTTPTrigger" { "httptriggers" } else { "cronjobtriggers" };
        eventually(&format!("{kind} {name} to be Ready"), READY, || async {
            let (_, out, _) = kubectl(plane, &["get", resource, name, "-n", &ns, "-o", "json"], None);
            let object: Value = serde_json::from_str(&out).ok()?;
            let conditions = object["status"]["conditions"].as_array()?;
            conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True").then_some(())
        })
        .await;
    }
    for kind in ["kafkatriggers", "natstriggers", "kinesistriggers"] {
        let (ok, out, _) = kubectl(plane, &["get", kind, "-n", &ns, "-o", "name"], None);
        assert!(ok && !out.trim().is_empty(), "{kind} are stored");
    }
}

#[tokio::test]
async fn a_cron_trigger_makes_jobs_on_its_schedule() {
    let (plane, client, ns, controller) = setup("cronjobs").await;
    apply(plane, &ns, &python_function("ticked", "def handler(event, context):\n    return 1\n"));
    let cron = json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "CronJobTrigger",
        "metadata": {"name": "every-minute"},
        "spec": {"function-name": "ticked", "schedule": "* * * * *", "payload": {"n": 1}},
    });
    apply(plane, &ns, &cron);
    ready(&Api::namespaced(client.clone(), &ns), "ticked", &controller).await;
    // kube-controller-manager's CronJob controller makes a Job within the minute; kwok completes
    // its pod (the curl inside does not run on a fake node).
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &ns);
    let job = eventually("a Job of the CronJob", Duration::from_secs(80), || async {
        let list = jobs.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|j| j.owner_references().iter().any(|o| o.kind == "CronJob" && o.name == "every-minute"))
    })
    .await;
    let pod = job.spec.unwrap().template.spec.unwrap();
    let command = pod.containers[0].args.clone().unwrap_or_default().join(" ")
        + &pod.containers[0].command.clone().unwrap_or_default().join(" ");
    assert!(command.contains("Event-Namespace: cronjobtrigger.kubeless.io"), "the Job calls the function: {command}");
    assert!(command.contains("ticked."), "the Job calls the function's Service: {command}");
}

#[tokio::test]
async fn the_configuration_names_the_watched_namespace() {
    let plane = ControlPlane::shared();
    let config_ns = plane.namespace("config").await;
    let watched = plane.namespace("watched").await;
    let other = plane.namespace("other").await;
    let client = plane.client().await;
    let mut data = kelp_plan::Config::default_data();
    data.insert("functions-namespace".into(), watched.clone());
    let config: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "kubeless-config"}, "data": data})).unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &config_ns).create(&PostParams::default(), &config).await.unwrap();
    let controller =
        ControllerProcess::start(plane, "configured", &["--leader-elect=false", "--config-namespace", &config_ns]);
    apply(plane, &watched, &python_function("seen", "def handler(event, context):\n    return 1\n"));
    apply(plane, &other, &python_function("unseen", "def handler(event, context):\n    return 1\n"));
    ready(&Api::namespaced(client.clone(), &watched), "seen", &controller).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unseen: Function = Api::namespaced(client.clone(), &other).get("unseen").await.unwrap();
    assert!(
        unseen.status.is_none() && unseen.finalizers().is_empty(),
        "a Function outside functions-namespace is left alone"
    );
}

/// The requests the controller made in `namespace` (from the API server's audit log, which
/// records every request of the controller started with the audited kubeconfig), watches aside
/// (they are logged when they end), once no more come: the log is read until it has not grown
/// for 3 s.
async fn requests_made(plane: &ControlPlane, namespace: &str) -> Vec<kelp_testenv::AuditedRequest> {
    let made = || {
        plane
            .audited_requests()
            .into_iter()
            .filter(|r| r.namespace.as_deref() == Some(namespace) && r.verb != "watch")
            .collect::<Vec<_>>()
    };
    let mut last = made();
    let mut unchanged = 0;
    while unchanged < 30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = made();
        unchanged = if now.len() == last.len() { unchanged + 1 } else { 0 };
        last = now;
    }
    last
}

#[tokio::test]
async fn a_function_costs_at_most_five_requests_and_a_restarted_controller_writes_nothing() {
    let plane = ControlPlane::shared();
    let ns = plane.namespace("requests").await;
    let client = plane.client().await;
    let args = ["--leader-elect=false", "--functions-namespace", ns.as_str()];
    let controller = ControllerProcess::start_as(plane, plane.audited_kubeconfig(), "requests", &args);
    let fns: Api<Function> = Api::namespaced(client.clone(), &ns);
    // The caches' first lists, one per kind and not per Function.
    let started = requests_made(plane, &ns).await.len();
    apply(plane, &ns, &python_function("counted", "def handler(event, context):\n    return 1\n"));
    ready(&fns, "counted", &controller).await;
    let made = requests_made(plane, &ns).await.split_off(started);
    let kinds: Vec<String> = made.iter().map(|r| format!("{} {}", r.kind(), r.code)).collect();
    eprintln!("requests from creation to Ready: {kinds:?}");
    assert!(made.len() <= 5, "from creation to Ready, at most 5 requests; made {}: {kinds:?}", made.len());
    assert!(
        !made.iter().any(|r| r.verb == "get" || r.resource == "events"),
        "no read before an apply, no Event without a failure: {kinds:?}"
    );

    // A new controller (a restart, a new leader) finds the Function and its children as it
    // would leave them: it writes nothing.
    drop(controller);
    let restarted = ControllerProcess::start_as(plane, plane.audited_kubeconfig(), "requests-again", &args);
    eventually("the restarted controller to reconcile the Function", READY, || async {
        restarted.metric("kelp_controller_reconciles_total{kind=\"Function\"}").filter(|n| *n >= 1.0)
    })
    .await;
    let after = requests_made(plane, &ns).await;
    let again: Vec<String> = after[started + made.len()..]
        .iter()
        // The new caches' first lists.
        .filter(|r| r.verb != "list")
        .map(|r| format!("{} {}", r.kind(), r.code))
        .collect();
    assert!(again.is_empty(), "a restarted controller wrote or read again: {again:?}");

    // Deleting it costs nothing more: no finalizer to take off, the children go with their owner.
    fns.delete("counted", &DeleteParams::default()).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually("the Function and its Deployment to be gone", READY, || async {
        (fns.get_opt("counted").await.ok()?.is_none() && deployments.get_opt("counted").await.ok()?.is_none())
            .then_some(())
    })
    .await;
    let all = requests_made(plane, &ns).await;
    let extra: Vec<String> = all[after.len()..].iter().map(|r| format!("{} {}", r.kind(), r.code)).collect();
    assert!(extra.is_empty(), "deleting the Function made the controller call: {extra:?}");
}
