//! The kinds the API server serves: Kelp's `kubeless.io/v1beta1` kinds (everything about them
//! taken from `kelp-api`: names, scope, status subresource, printer columns, schema, validation)
//! and the few core `v1` kinds `kelp up` needs.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kelp_api::{
    CronJobTrigger, Function, HTTPTrigger, KafkaTrigger, KinesisTrigger, NATSTrigger, Validate, ValidationErrors,
    check_dns1123_subdomain,
};
use kube::CustomResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Checks an object of a kind beyond its schema (a `kelp_api::Validate` implementation).
pub type Validator = fn(&Value) -> Result<(), ValidationErrors>;

/// Computes a table cell from an object (for core kinds whose columns are not JSON paths).
pub type CellFn = fn(&Value) -> Value;

/// Where the objects of a kind live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// In the store, readable and writable.
    Store,
    /// Pods, from [`crate::Workloads`]; read-only.
    Pods,
    /// Services, from [`crate::Workloads`]; read-only.
    Services,
    /// Deployments (`apps/v1`, one per Function), from [`crate::Workloads`]; read-only.
    Deployments,
    /// The CustomResourceDefinitions of Kelp's kinds (`apiextensions.k8s.io`), from
    /// [`Kinds::definitions`]; read-only.
    Definitions,
    /// `autoscaling/v2beta1` HorizontalPodAutoscalers: each stored Function's
    /// `spec.horizontalPodAutoscaler` (which is one, as Kubeless kept it); read-only.
    Autoscalers,
}

/// How a table cell is computed.
#[derive(Clone, Debug)]
pub enum CellSource {
    /// A CRD printer-column JSONPath, e.g. `.spec.runtime`.
    JsonPath(String),
    /// A function of the object.
    Computed(CellFn),
}

/// One column of `kubectl get` (after the `Name` column every table has).
#[derive(Clone, Debug)]
pub struct Column {
    /// Header, e.g. `Runtime`.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// OpenAPI format (usually empty).
    pub format: String,
    /// Description.
    pub description: String,
    /// 0: shown by default; more: only with `-o wide`.
    pub priority: i32,
    /// How the cell is computed.
    pub source: CellSource,
}

/// A kind served by the API server.
#[derive(Clone, Debug)]
pub struct Kind {
    /// API group (`""` for core).
    pub group: String,
    /// API version, e.g. `v1beta1`.
    pub version: String,
    /// Kind, e.g. `Function`.
    pub kind: String,
    /// Plural resource name, e.g. `functions`.
    pub plural: String,
    /// Singular resource name, e.g. `function`.
    pub singular: String,
    /// Short names for kubectl (`ns`, `cm`, ...).
    pub short_names: Vec<String>,
    /// Categories for kubectl (`all`, ...).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether `/status` is a subresource.
    pub status_subresource: bool,
    /// The `openAPIV3Schema` of the CRD (Kelp kinds only): used for strict field validation,
    /// pruning of unknown fields and the OpenAPI documents.
    pub schema: Option<Value>,
    /// Table columns after `Name`.
    pub columns: Vec<Column>,
    /// Semantic validation.
    pub validator: Option<Validator>,
    /// Where objects live.
    pub backend: Backend,
}

impl Kind {
    /// `kubeless.io/v1beta1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The store's resource key: `kubeless.io/functions`, `/namespaces`.
    pub fn store_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// The qualified resource of Kubernetes messages: `functions.kubeless.io`, `secrets`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// The qualified kind of Kubernetes messages: `Function.kubeless.io`, `Secret`.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }

    /// Whether objects can be written through the API.
    pub fn writable(&self) -> bool {
        self.backend == Backend::Store
    }

    /// The URL path of the collection (`namespace` ignored for cluster-scoped kinds).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() { "/api/v1".to_owned() } else { format!("/apis/{}", self.api_version()) };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{root}/namespaces/{ns}/{}", self.plural),
            None => format!("{root}/{}", self.plural),
        }
    }
}

/// Every kind the API server serves.
#[derive(Clone, Debug)]
pub struct Kinds {
    all: Vec<Arc<Kind>>,
    /// The CRDs of Kelp's kinds, as `apiextensions.k8s.io/v1` objects.
    crds: Vec<Value>,
}

/// The group of CustomResourceDefinitions.
const APIEXTENSIONS: &str = "apiextensions.k8s.io";

/// A `v1` CRD as `apiextensions.k8s.io/v1beta1` shows it (what clients of Kubernetes before 1.22,
/// such as the kubeless CLI, read): one `version`, the versions without their schemas.
fn crd_v1beta1(crd: &Value) -> Value {
    let spec = &crd["spec"];
    let versions: Vec<Value> = spec["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| serde_json::json!({"name": v["name"], "served": v["served"], "storage": v["storage"]}))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "apiVersion": format!("{APIEXTENSIONS}/v1beta1"),
        "kind": "CustomResourceDefinition",
        "metadata": crd["metadata"],
        "spec": {
            "group": spec["group"], "names": spec["names"], "scope": spec["scope"],
            "version": versions.first().map(|v| v["name"].clone()).unwrap_or_default(),
            "versions": versions,
        },
    })
}

fn validate_as<K: DeserializeOwned + Validate>(object: &Value) -> Result<(), ValidationErrors> {
    match serde_json::from_value::<K>(object.clone()) {
        Ok(typed) => typed.validate(),
        Err(e) => {
            let mut errors = ValidationErrors::default();
            errors.invalid("", e.to_string());
            Err(errors)
        }
    }
}

fn age_column() -> Column {
    Column {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created."
            .into(),
        priority: 0,
        source: CellSource::JsonPath(".metadata.creationTimestamp".into()),
    }
}

fn column(name: &str, type_: &str, priority: i32, source: CellSource) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority,
        source,
    }
}

/// A Kelp kind, entirely from its `kelp-api` type.
fn kelp_kind<K: CustomResourceExt + DeserializeOwned + Validate>() -> Kind {
    from_crd(&K::crd(), Some(validate_as::<K>))
}

fn from_crd(crd: &CustomResourceDefinition, validator: Option<Validator>) -> Kind {
    let spec = &crd.spec;
    let version = spec.versions.iter().find(|v| v.storage).or(spec.versions.first());
    let mut columns: Vec<Column> = version
        .and_then(|v| v.additional_printer_columns.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| Column {
            name: c.name,
            type_: c.type_,
            format: c.format.unwrap_or_default(),
            description: c.description.unwrap_or_default(),
            priority: c.priority.unwrap_or(0),
            source: CellSource::JsonPath(c.json_path),
        })
        .collect();
    if columns.is_empty() {
        columns.push(age_column());
    }
    let schema = version
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok());
    Kind {
        group: spec.group.clone(),
        version: version.map(|v| v.name.clone()).unwrap_or_default(),
        kind: spec.names.kind.clone(),
        plural: spec.names.plural.clone(),
        singular: spec.names.singular.clone().unwrap_or_else(|| spec.names.kind.to_lowercase()),
        short_names: spec.names.short_names.clone().unwrap_or_default(),
        categories: spec.names.categories.clone().unwrap_or_default(),
        namespaced: spec.scope == "Namespaced",
        status_subresource: version.and_then(|v| v.subresources.as_ref()).is_some_and(|s| s.status.is_some()),
        schema,
        columns,
        validator,
        backend: Backend::Store,
    }
}

fn count_of(field: &'static str) -> CellFn {
    match field {
        "data" => |o| {
            let n = |k: &str| o.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
            Value::from(n("data") + n("binaryData"))
        },
        _ => |_| Value::from(0),
    }
}

fn pod_ready(o: &Value) -> Value {
    let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
    let total = o.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == Value::Bool(true)).count());
    Value::String(format!("{ready}/{total}"))
}

fn pod_restarts(o: &Value) -> Value {
    let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
    Value::from(statuses.map_or(0, |s| s.iter().filter_map(|c| c["restartCount"].as_i64()).sum::<i64>()))
}

fn deployment_ready(o: &Value) -> Value {
    let count = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    Value::String(format!("{}/{}", count("/status/readyReplicas"), count("/spec/replicas")))
}

fn service_ports(o: &Value) -> Value {
    let ports = o.pointer("/spec/ports").and_then(Value::as_array);
    let text: Vec<String> = ports
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let port = p["port"].as_i64().unwrap_or_default();
                    let protocol = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(node) => format!("{port}:{node}/{protocol}"),
                        None => format!("{port}/{protocol}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Value::String(if text.is_empty() { "<none>".into() } else { text.join(",") })
}

fn service_external_ip(o: &Value) -> Value {
    let ips: Vec<&str> = o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Value::String(if ips.is_empty() { "<none>".into() } else { ips.join(",") })
}

fn validate_namespace(object: &Value) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    match object.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => {
            // Kubernetes: a DNS-1123 label (a subdomain without dots).
            if let Err(reason) = check_dns1123_subdomain(name).and_then(|()| {
                if name.contains('.') {
                    Err("a lowercase RFC 1123 label must not contain dots".to_owned())
                } else {
                    Ok(())
                }
            }) {
                errors.invalid("metadata.name", reason);
            }
        }
        _ => errors.required("metadata.name", "name or generateName is required"),
    }
    errors.into_result()
}

fn validate_data_object(object: &Value, secret: bool) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let generate = object.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() && generate.is_empty() {
        errors.required("metadata.name", "name or generateName is required");
    } else if !name.is_empty()
        && let Err(reason) = check_dns1123_subdomain(name)
    {
        errors.invalid("metadata.name", reason);
    }
    for field in ["data", "binaryData", "stringData"] {
        match object.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let path = format!("{field}[{key}]");
                    let valid_key = !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if !valid_key {
                        errors.invalid(
                            path.clone(),
                            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                        );
                    }
                    match value.as_str() {
                        None => errors.invalid(path, "must be a string"),
                        Some(v) if secret && field != "stringData" && !is_base64(v) => {
                            errors.invalid(path, "illegal base64 data")
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(_) => errors.invalid(field, "must be an object of strings"),
        }
    }
    errors.into_result()
}

/// Whether `s` is standard base64 with padding (what Kubernetes accepts in `Secret.data`).
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn core_kind(
    kind: &str,
    plural: &str,
    short: &[&str],
    namespaced: bool,
    backend: Backend,
    columns: Vec<Column>,
) -> Kind {
    let mut columns = columns;
    columns.push(age_column());
    Kind {
        group: String::new(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: short.iter().map(|s| (*s).to_owned()).collect(),
        categories: if matches!(backend, Backend::Store) { Vec::new() } else { vec!["all".into()] },
        namespaced,
        status_subresource: false,
        schema: None,
        columns,
        validator: None,
        backend,
    }
}

impl Kinds {
    /// Kelp's six kinds (from `kelp-api`) and the core kinds: namespaces, secrets, configmaps,
    /// events (stored) and pods, services (from [`crate::Workloads`]).
    pub fn new() -> Self {
        let kelp = [
            kelp_kind::<Function>(),
            kelp_kind::<HTTPTrigger>(),
            kelp_kind::<CronJobTrigger>(),
            kelp_kind::<KafkaTrigger>(),
            kelp_kind::<NATSTrigger>(),
            kelp_kind::<KinesisTrigger>(),
        ];
        let path = |p: &str| CellSource::JsonPath(p.to_owned());
        let mut namespaces = core_kind(
            "Namespace",
            "namespaces",
            &["ns"],
            false,
            Backend::Store,
            vec![column("Status", "string", 0, path(".status.phase"))],
        );
        namespaces.validator = Some(validate_namespace);
        let mut secrets = core_kind(
            "Secret",
            "secrets",
            &[],
            true,
            Backend::Store,
            vec![
                column("Type", "string", 0, path(".type")),
                column("Data", "string", 0, CellSource::Computed(count_of("data"))),
            ],
        );
        secrets.validator = Some(|o| validate_data_object(o, true));
        let mut configmaps = core_kind(
            "ConfigMap",
            "configmaps",
            &["cm"],
            true,
            Backend::Store,
            vec![column("Data", "string", 0, CellSource::Computed(count_of("data")))],
        );
        configmaps.validator = Some(|o| validate_data_object(o, false));
        let pods = core_kind(
            "Pod",
            "pods",
            &["po"],
            true,
            Backend::Pods,
            vec![
                column("Ready", "string", 0, CellSource::Computed(pod_ready)),
                column("Status", "string", 0, path(".status.phase")),
                column("Restarts", "string", 0, CellSource::Computed(pod_restarts)),
                column("IP", "string", 1, path(".status.podIP")),
            ],
        );
        let services = core_kind(
            "Service",
            "services",
            &["svc"],
            true,
            Backend::Services,
            vec![
                column("Type", "string", 0, path(".spec.type")),
                column("Cluster-IP", "string", 0, path(".spec.clusterIP")),
                column("External-IP", "string", 0, CellSource::Computed(service_external_ip)),
                column("Port(s)", "string", 0, CellSource::Computed(service_ports)),
                column("Selector", "string", 1, path(".spec.selector")),
            ],
        );
        // What happened to objects (a Function's build): written by `kelp up`, read by `kubectl
        // get events` and `kubectl describe`.
        let events = core_kind(
            "Event",
            "events",
            &["ev"],
            true,
            Backend::Store,
            vec![
                column("Type", "string", 0, path(".type")),
                column("Reason", "string", 0, path(".reason")),
                column("Object", "string", 0, path(".involvedObject.name")),
                column("Message", "string", 0, path(".message")),
            ],
        );
        let mut deployments = core_kind(
            "Deployment",
            "deployments",
            &["deploy"],
            true,
            Backend::Deployments,
            vec![
                column("Ready", "string", 0, CellSource::Computed(deployment_ready)),
                column("Up-to-date", "string", 0, path(".status.updatedReplicas")),
                column("Available", "string", 0, path(".status.availableReplicas")),
            ],
        );
        deployments.group = "apps".into();
        let mut autoscalers = core_kind(
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            &["hpa"],
            true,
            Backend::Autoscalers,
            vec![
                column("Reference", "string", 0, path(".spec.scaleTargetRef.name")),
                column("MinPods", "string", 0, path(".spec.minReplicas")),
                column("MaxPods", "string", 0, path(".spec.maxReplicas")),
            ],
        );
        autoscalers.group = "autoscaling".into();
        autoscalers.version = "v2beta1".into();
        let definitions = ["v1", "v1beta1"].map(|version| {
            let mut kind = core_kind(
                "CustomResourceDefinition",
                "customresourcedefinitions",
                &["crd", "crds"],
                false,
                Backend::Definitions,
                vec![],
            );
            kind.group = APIEXTENSIONS.into();
            kind.version = version.into();
            kind.categories = Vec::new();
            kind
        });
        let crds = kelp_api::crd::crds().iter().filter_map(|crd| serde_json::to_value(crd).ok()).collect();
        let all = kelp
            .into_iter()
            .chain([namespaces, secrets, configmaps, events, pods, services, deployments, autoscalers])
            .chain(definitions)
            .map(Arc::new)
            .collect();
        Self { all, crds }
    }

    /// The CustomResourceDefinitions of Kelp's kinds, as `apiextensions.k8s.io/<version>`
    /// (`v1`, or `v1beta1` for clients that predate Kubernetes 1.22) shows them.
    pub fn definitions(&self, version: &str) -> Vec<Value> {
        match version {
            "v1beta1" => self.crds.iter().map(crd_v1beta1).collect(),
            _ => self.crds.clone(),
        }
    }

    /// Every kind.
    pub fn all(&self) -> &[Arc<Kind>] {
        &self.all
    }

    /// The kind served at `group`/`version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<Kind>> {
        self.all.iter().find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// The API groups other than core, each with its versions (in order of appearance).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for kind in self.all.iter().filter(|k| !k.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == kind.group) {
                Some((_, versions)) if !versions.contains(&kind.version) => versions.push(kind.version.clone()),
                Some(_) => {}
                None => groups.push((kind.group.clone(), vec![kind.version.clone()])),
            }
        }
        groups
    }

    /// The kinds of one group version.
    pub fn in_group_version<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a Arc<Kind>> {
        self.all.iter().filter(move |k| k.group == group && k.version == version)
    }

    /// The store resource keys of every namespaced, stored kind (what deleting a namespace
    /// deletes).
    pub fn namespaced_store_keys(&self) -> Vec<String> {
        self.all.iter().filter(|k| k.namespaced && k.writable()).map(|k| k.store_key()).collect()
    }
}

impl Default for Kinds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kelp_kinds_come_from_kelp_api() {
        let kinds = Kinds::new();
        let crds = kelp_api::crd::crds();
        let kelp: Vec<_> = kinds.all().iter().filter(|k| k.group == kelp_api::GROUP).collect();
        assert_eq!(kelp.len(), crds.len(), "every CRD of kelp-api is served, and nothing else in its group");
        for crd in &crds {
            let kind = kinds.find(&crd.spec.group, kelp_api::VERSION, &crd.spec.names.plural).expect("served");
            assert_eq!(kind.kind, crd.spec.names.kind);
            assert!(kind.namespaced && kind.status_subresource && kind.schema.is_some() && kind.validator.is_some());
        }
        let function = kinds.find("kubeless.io", "v1beta1", "functions").unwrap();
        assert_eq!(function.store_key(), "kubeless.io/functions");
        assert_eq!(function.group_resource(), "functions.kubeless.io");
        assert_eq!(function.api_version(), "kubeless.io/v1beta1");
        let names: Vec<_> = function.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Ready", "Runtime", "Handler", "Replicas", "Age"]);
        assert_eq!(function.collection_path(Some("ns")), "/apis/kubeless.io/v1beta1/namespaces/ns/functions");
        let ns = kinds.find("", "v1", "namespaces").unwrap();
        assert_eq!((ns.store_key().as_str(), ns.namespaced), ("/namespaces", false));
        assert_eq!(ns.collection_path(Some("x")), "/api/v1/namespaces");
        assert!(!kinds.find("", "v1", "pods").unwrap().writable());
        let groups = [
            ("kubeless.io".to_owned(), vec!["v1beta1".to_owned()]),
            ("apps".to_owned(), vec!["v1".to_owned()]),
            ("autoscaling".to_owned(), vec!["v2beta1".to_owned()]),
            ("apiextensions.k8s.io".to_owned(), vec!["v1".to_owned(), "v1beta1".to_owned()]),
        ];
        assert_eq!(kinds.groups(), groups);
        let crds = kinds.definitions("v1beta1");
        assert_eq!(crds.len(), 6);
        assert_eq!(crds[0]["metadata"]["name"], "functions.kubeless.io");
        assert_eq!(
            (crds[0]["spec"]["version"].as_str(), crds[0]["spec"]["scope"].as_str()),
            (Some("v1beta1"), Some("Namespaced"))
        );
        assert_eq!(kinds.definitions("v1")[0]["apiVersion"], "apiextensions.k8s.io/v1");
    }

    #[test]
    fn base64_check() {
        assert!(is_base64("") && is_base64("eA==") && is_base64("aGVsbG8=") && is_base64("aGVs"));
        assert!(!is_base64("eA=") && !is_base64("e===") && !is_base64("a b=") && !is_base64("eA=a"));
    }

    #[test]
    fn core_validation() {
        let kinds = Kinds::new();
        let secret = kinds.find("", "v1", "secrets").unwrap();
        let v = secret.validator.unwrap();
        assert!(v(&serde_json::json!({"metadata": {"name": "s"}, "data": {"a.b": "eA=="}})).is_ok());
        assert!(v(&serde_json::json!({"metadata": {"name": "s"}, "data": {"a": "not base64"}})).is_err());
        let errors = v(&serde_json::json!({"metadata": {"name": "S"}, "data": {"a b": 1}})).unwrap_err();
        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "data[a b]", "data[a b]"]);
        let ns = kinds.find("", "v1", "namespaces").unwrap().validator.unwrap();
        assert!(ns(&serde_json::json!({"metadata": {"name": "a.b"}})).is_err());
    }
}
