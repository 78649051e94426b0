//! What `kelp install` installs, carried in the binary: Kelp's CRDs (generated from `kelp-api`'s
//! types, which is what `deploy/crds/` holds: a test of `kelp-api` keeps those files equal to
//! them) and the documents of `deploy/kelp.yaml`, embedded at compile time. Pure: the
//! documents are rewritten for the namespace and image chosen, nothing is sent.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};
use kelp_plan::install::{CONFIG_NAME, TRIGGERS_NAME};
use serde_json::Value;

use crate::cmd::manifest::parse_manifest;

/// `deploy/kelp.yaml`: the namespace, the identities and rights of the controller and of
/// `kelp-triggers`, `kubeless-config`, and their two Deployments.
const KELP_YAML: &str = include_str!("../../../deploy/kelp.yaml");

/// Where and what to install.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// The namespace of the namespaced objects (the manifest's own namespace is replaced by it).
    pub(crate) namespace: String,
    /// The image of the controller and of `kelp-triggers`, replacing the manifest's.
    pub(crate) image: Option<String>,
    /// The replicas of `kelp-triggers`, replacing the manifest's.
    pub(crate) trigger_replicas: Option<i32>,
    /// Keys written into `kubeless-config` (over the manifest's).
    pub(crate) config: BTreeMap<String, String>,
}

/// The CRDs, as objects to apply, functions first.
pub(crate) fn crds() -> Vec<Value> {
    kelp_api::crd::crds().iter().map(|crd| serde_json::to_value(crd).expect("a CRD serializes to JSON")).collect()
}

/// The documents of `deploy/kelp.yaml`, rewritten for `options`.
pub(crate) fn kelp_documents(options: &Options) -> anyhow::Result<Vec<Value>> {
    documents("deploy/kelp.yaml", KELP_YAML, options)
}

/// The documents of a manifest, in order, rewritten for `options`:
///
/// - the manifest's namespace (the namespace it creates or puts its objects in; one at most)
///   becomes `options.namespace`: the Namespace object, `metadata.namespace`, and the
///   `namespace` of RBAC binding subjects;
/// - `options.image` replaces the image of the first container of every Deployment (the
///   controller's and `kelp-triggers`', one image; there must be one at least);
/// - `options.trigger_replicas` replaces the `replicas` of the Deployment `kelp-triggers`, and
///   `options.config` is written into the `data` of the ConfigMap `kubeless-config` (each must
///   be in the manifest when asked for).
pub(crate) fn documents(origin: &str, text: &str, options: &Options) -> anyhow::Result<Vec<Value>> {
    let mut documents: Vec<Value> = parse_manifest(origin, text)?.into_iter().map(|(_, value)| value).collect();
    let own = manifest_namespace(origin, &documents)?;
    if let Some(own) = own.filter(|own| *own != options.namespace) {
        for document in &mut documents {
            move_namespace(document, &own, &options.namespace);
        }
    }
    if let Some(image) = &options.image {
        set_images(origin, &mut documents, image)?;
    }
    if let Some(replicas) = options.trigger_replicas {
        set_trigger_replicas(origin, &mut documents, replicas)?;
    }
    if !options.config.is_empty() {
        set_config(origin, &mut documents, &options.config)?;
    }
    Ok(documents)
}

/// Sets the image of the first container of every Deployment of the manifest.
fn set_images(origin: &str, documents: &mut [Value], image: &str) -> anyhow::Result<()> {
    let deployments: Vec<&mut Value> = documents.iter_mut().filter(|d| is_deployment(d)).collect();
    if deployments.is_empty() {
        bail!("{origin} has no Deployment: --image needs the controller's");
    }
    for deployment in deployments {
        let name = deployment.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let container = deployment
            .pointer_mut("/spec/template/spec/containers/0")
            .and_then(Value::as_object_mut)
            .with_context(|| format!("{origin}: the Deployment {name} has no container"))?;
        container.insert("image".to_owned(), Value::String(image.to_owned()));
    }
    Ok(())
}

/// Sets the `replicas` of the Deployment `kelp-triggers`.
fn set_trigger_replicas(origin: &str, documents: &mut [Value], replicas: i32) -> anyhow::Result<()> {
    let spec = named(origin, documents, "Deployment", TRIGGERS_NAME)?["spec"]
        .as_object_mut()
        .with_context(|| format!("{origin}: the Deployment {TRIGGERS_NAME} has no spec"))?;
    spec.insert("replicas".to_owned(), replicas.into());
    Ok(())
}

/// Writes `config` into the `data` of the ConfigMap `kubeless-config`, over its keys.
fn set_config(origin: &str, documents: &mut [Value], config: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let data = &mut named(origin, documents, "ConfigMap", CONFIG_NAME)?["data"];
    if data.is_null() {
        *data = Value::Object(serde_json::Map::new());
    }
    let data = data.as_object_mut().with_context(|| format!("{origin}: the data of {CONFIG_NAME} is not a map"))?;
    data.extend(config.iter().map(|(key, value)| (key.clone(), Value::String(value.clone()))));
    Ok(())
}

/// The manifest's object of `kind` named `name`.
fn named<'a>(origin: &str, documents: &'a mut [Value], kind: &str, name: &str) -> anyhow::Result<&'a mut Value> {
    documents
        .iter_mut()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && d.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        })
        .with_context(|| format!("{origin} has no {kind} {name}"))
}

/// Whether `object` is an `apps/v1` Deployment.
pub(crate) fn is_deployment(object: &Value) -> bool {
    object.get("apiVersion").and_then(Value::as_str) == Some("apps/v1")
        && object.get("kind").and_then(Value::as_str) == Some("Deployment")
}

/// The one namespace a manifest creates or uses, if any.
fn manifest_namespace(origin: &str, documents: &[Value]) -> anyhow::Result<Option<String>> {
    let mut found = BTreeSet::new();
    for document in documents {
        if document.get("kind").and_then(Value::as_str) == Some("Namespace") {
            found.extend(document.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned));
        }
        found.extend(document.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned));
    }
    if found.len() > 1 {
        let names: Vec<String> = found.into_iter().collect();
        bail!("{origin} uses several namespaces ({}): it cannot be moved into one", names.join(", "));
    }
    Ok(found.pop_first())
}

/// Replaces the namespace `from` by `to` wherever `document` names it.
fn move_namespace(document: &mut Value, from: &str, to: &str) {
    let is_namespace = document.get("kind").and_then(Value::as_str) == Some("Namespace");
    let Some(metadata) = document.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let key = if is_namespace { "name" } else { "namespace" };
    if metadata.get(key).and_then(Value::as_str) == Some(from) {
        metadata.insert(key.to_owned(), Value::String(to.to_owned()));
    }
    for subject in document.get_mut("subjects").and_then(Value::as_array_mut).into_iter().flatten() {
        if subject.get("namespace").and_then(Value::as_str) == Some(from) {
            subject["namespace"] = Value::String(to.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: kubeless}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ctl, namespace: kubeless}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ctl}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ctl}
subjects: [{kind: ServiceAccount, name: ctl, namespace: kubeless}, {kind: Group, name: admins}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl, namespace: kubeless}
spec:
  template:
    spec:
      containers: [{name: ctl, image: "kelp/controller:1"}, {name: side, image: "side:1"}]
"#;

    fn options(namespace: &str, image: Option<&str>) -> Options {
        Options { namespace: namespace.to_owned(), image: image.map(str::to_owned), ..Options::default() }
    }

    #[test]
    fn the_default_namespace_and_no_image_change_nothing() {
        let documents = documents("m", MANIFEST, &options("kubeless", None)).unwrap();
        let original: Vec<Value> = parse_manifest("m", MANIFEST).unwrap().into_iter().map(|(_, v)| v).collect();
        assert_eq!(documents, original);
    }

    #[test]
    fn another_namespace_moves_every_reference_to_it() {
        let documents = documents("m", MANIFEST, &options("kelp-system", Some("kelp/controller:2"))).unwrap();
        assert_eq!(documents[0]["metadata"], json!({"name": "kelp-system"}));
        assert_eq!(documents[1]["metadata"]["namespace"], "kelp-system");
        assert_eq!(
            documents[2]["subjects"],
            json!([{"kind": "ServiceAccount", "name": "ctl", "namespace": "kelp-system"}, {"kind": "Group", "name": "admins"}])
        );
        assert!(documents[2]["metadata"].get("namespace").is_none(), "cluster objects stay without one");
        assert_eq!(documents[3]["metadata"]["namespace"], "kelp-system");
        let containers = &documents[3]["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "kelp/controller:2");
        assert_eq!(containers[1]["image"], "side:1", "only the controller's container");
    }

    #[test]
    fn manifests_it_cannot_rewrite_are_refused() {
        let two = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: blue}\n---\n\
                   apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: green}\n";
        let error = documents("two.yaml", two, &options("z", None)).unwrap_err().to_string();
        assert_eq!(error, "two.yaml uses several namespaces (blue, green): it cannot be moved into one");
        let none = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
        let error = documents("none.yaml", none, &options("z", Some("i:1"))).unwrap_err().to_string();
        assert_eq!(error, "none.yaml has no Deployment: --image needs the controller's");
        assert_eq!(documents("none.yaml", none, &options("z", None)).unwrap().len(), 1);
        let replicas = Options { trigger_replicas: Some(2), ..options("z", None) };
        let error = documents("none.yaml", none, &replicas).unwrap_err().to_string();
        assert_eq!(error, "none.yaml has no Deployment kelp-triggers");
        let config =
            Options { config: BTreeMap::from([("nats-url".into(), "nats://n:4222".into())]), ..options("z", None) };
        let error = documents("none.yaml", none, &config).unwrap_err().to_string();
        assert_eq!(error, "none.yaml has no ConfigMap kubeless-config");
    }

    #[test]
    fn the_crds_are_kelps_six_functions_first() {
        let crds = crds();
        let names: Vec<&str> = crds.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names[0], "functions.kubeless.io");
        assert_eq!(names.len(), 6);
        assert!(crds.iter().all(|c| c["kind"] == "CustomResourceDefinition"));
    }

    #[test]
    fn the_embedded_manifest_takes_the_namespace_image_trigger_replicas_and_brokers() {
        let options = Options {
            trigger_replicas: Some(3),
            config: BTreeMap::from([
                ("kafka-brokers".into(), "kafka-0.kafka:9092".into()),
                ("nats-url".into(), "nats://nats.messaging:4222".into()),
            ]),
            ..options("elsewhere", Some("kelp/controller:test"))
        };
        let mut documents = kelp_documents(&options).unwrap();
        assert!(documents.iter().any(|d| d["kind"] == "Namespace" && d["metadata"]["name"] == "elsewhere"));
        let deployments: Vec<&Value> = documents.iter().filter(|d| is_deployment(d)).collect();
        let names: Vec<&str> = deployments.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["kelp-controller", "kelp-triggers"]);
        for deployment in &deployments {
            assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "kelp/controller:test");
        }
        assert_eq!((&deployments[0]["spec"]["replicas"], &deployments[1]["spec"]["replicas"]), (&json!(1), &json!(3)));
        let config = named("m", &mut documents, "ConfigMap", "kubeless-config").unwrap();
        assert_eq!(config["data"]["kafka-brokers"], "kafka-0.kafka:9092");
        assert_eq!(config["data"]["nats-url"], "nats://nats.messaging:4222");
        assert_eq!(config["data"]["functions-namespace"], "", "the other keys are kept");
    }
}
