//! Discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]`) and the
//! OpenAPI v3 documents kubectl reads to decide on field validation and patch types.

use serde_json::{Map, Value, json};

use crate::kinds::{Backend, Kind, Kinds};

/// The Kubernetes version the API server reports (`/version`).
pub const KUBERNETES_VERSION: (&str, &str, &str) = ("1", "37", "v1.37.2-kelp");

/// `os/arch` in Go's spelling.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// `/version`: a `version.Info`.
pub(crate) fn version() -> Value {
    let (major, minor, git_version) = KUBERNETES_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": minor,
        "gitVersion": git_version,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": concat!("kelp-apiserver ", env!("CARGO_PKG_VERSION")),
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `/api`: `APIVersions`.
pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn verbs(kind: &Kind) -> Vec<&'static str> {
    if kind.writable() {
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    } else {
        vec!["get", "list", "watch"]
    }
}

/// The `APIResource` entries of one kind (the kind and its subresources).
fn api_resources(kind: &Kind) -> Vec<Value> {
    let mut main = json!({
        "name": kind.plural,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": verbs(kind),
    });
    if !kind.short_names.is_empty() {
        main["shortNames"] = json!(kind.short_names);
    }
    if !kind.categories.is_empty() {
        main["categories"] = json!(kind.categories);
    }
    let mut out = vec![main];
    if kind.status_subresource {
        out.push(json!({
            "name": format!("{}/status", kind.plural), "singularName": "", "namespaced": kind.namespaced,
            "kind": kind.kind, "verbs": ["get", "patch", "update"],
        }));
    }
    match kind.backend {
        Backend::Pods => out.push(json!({
            "name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"],
        })),
        Backend::Services => out.push(json!({
            "name": "services/proxy", "singularName": "", "namespaced": true, "kind": "ServiceProxyOptions",
            "verbs": ["create", "delete", "get", "patch", "update"],
        })),
        Backend::Store | Backend::Deployments | Backend::Definitions | Backend::Autoscalers => {}
    }
    out
}

/// `/api/v1` or `/apis/{group}/{version}`: an `APIResourceList`.
pub(crate) fn resource_list(kinds: &Kinds, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = kinds.in_group_version(group, version).flat_map(|k| api_resources(k)).collect();
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({
        "name": group,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
        "versions": versions,
    })
}

/// `/apis`: an `APIGroupList`.
pub(crate) fn group_list(kinds: &Kinds) -> Value {
    let groups: Vec<Value> = kinds.groups().iter().map(|(g, v)| api_group(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`: an `APIGroup`.
pub(crate) fn group(kinds: &Kinds, name: &str) -> Value {
    let versions = kinds.groups().into_iter().find(|(g, _)| g == name).map(|(_, v)| v).unwrap_or_default();
    let mut g = api_group(name, &versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

/// The OpenAPI v3 path keys (`api/v1`, `apis/kubeless.io/v1beta1`) of every group version.
fn group_version_paths(kinds: &Kinds) -> Vec<(String, String, String)> {
    let mut out = vec![("api/v1".to_owned(), String::new(), "v1".to_owned())];
    for (group, versions) in kinds.groups() {
        for v in versions {
            out.push((format!("apis/{group}/{v}"), group.clone(), v));
        }
    }
    out
}

/// A short stable hash of a document, for the `?hash=` of `/openapi/v3`.
fn hash(value: &Value) -> String {
    // FNV-1a over the serialized document: stable across runs for the same document.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: where each group version's document is.
pub(crate) fn openapi_v3_root(kinds: &Kinds) -> Value {
    let mut paths = Map::new();
    for (key, group, version) in group_version_paths(kinds) {
        let doc = openapi_v3_document(kinds, &group, &version);
        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&doc))}));
    }
    json!({"paths": paths})
}

/// The schema name of a kind in `components.schemas`: `io.kubeless.v1beta1.Function`,
/// `io.k8s.api.core.v1.Secret`.
fn schema_name(kind: &Kind) -> String {
    if kind.group.is_empty() {
        format!("io.k8s.api.core.v1.{}", kind.kind)
    } else {
        let reversed: Vec<&str> = kind.group.split('.').rev().collect();
        format!("{}.{}.{}", reversed.join("."), kind.version, kind.kind)
    }
}

fn parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(kind: &Kind, action: &str, schema_ref: &str, patch: bool) -> Value {
    let gvk = json!({"group": kind.group, "version": kind.version, "kind": kind.kind});
    let mut op = json!({
        "operationId": format!("{action}{}", kind.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [
            parameter("dryRun", "When present, indicates that modifications should not be persisted."),
            parameter("fieldManager", "The name of the actor making these changes."),
            parameter("fieldValidation", "How to handle unknown or duplicate fields: Ignore, Warn or Strict."),
        ],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
    });
    let content_types: &[&str] = if patch {
        // No strategic merge patch for these kinds: kubectl apply then sends a JSON merge patch.
        &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
    } else {
        &["application/json", "application/yaml"]
    };
    let content: Map<String, Value> =
        content_types.iter().map(|c| ((*c).to_owned(), json!({"schema": {"$ref": schema_ref}}))).collect();
    op["requestBody"] = json!({"content": content, "required": true});
    op
}

/// The OpenAPI v3 document of one group version: the write operations of every writable kind
/// (with `fieldValidation`, which tells kubectl the server validates fields itself) and the
/// kinds' schemas (the CRD schemas from `kelp-api`; core kinds get an open object).
pub(crate) fn openapi_v3_document(kinds: &Kinds, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for kind in kinds.in_group_version(group, version) {
        let name = schema_name(kind);
        let schema_ref = format!("#/components/schemas/{name}");
        let mut schema = kind
            .schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), json!({"type": "string"}));
            props.insert("kind".into(), json!({"type": "string"}));
            props.insert("metadata".into(), json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        }
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": kind.group, "version": kind.version, "kind": kind.kind}]);
        schemas.insert(name, schema);
        if !kind.writable() {
            continue;
        }
        let collection = kind.collection_path(Some("{namespace}"));
        let item = format!("{collection}/{{name}}");
        paths.insert(collection, json!({"post": operation(kind, "post", &schema_ref, false)}));
        paths.insert(
            item.clone(),
            json!({
                "put": operation(kind, "put", &schema_ref, false),
                "patch": operation(kind, "patch", &schema_ref, true),
            }),
        );
        if kind.status_subresource {
            paths.insert(
                format!("{item}/status"),
                json!({
                    "put": operation(kind, "put", &schema_ref, false),
                    "patch": operation(kind, "patch", &schema_ref, true),
                }),
            );
        }
    }
    let (_, _, git_version) = KUBERNETES_VERSION;
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": git_version},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// The group and version of an OpenAPI v3 path key (`api/v1` → `("", "v1")`).
pub(crate) fn parse_openapi_key(kinds: &Kinds, key: &str) -> Option<(String, String)> {
    group_version_paths(kinds).into_iter().find(|(k, _, _)| k == key).map(|(_, g, v)| (g, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists() {
        let kinds = Kinds::new();
        let list = resource_list(&kinds, "kubeless.io", "v1beta1");
        let names: Vec<&str> =
            list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(
            names.contains(&"functions") && names.contains(&"functions/status") && names.contains(&"kinesistriggers")
        );
        let functions = &list["resources"][0];
        assert_eq!(functions["kind"], "Function");
        assert_eq!(functions["singularName"], "function");
        assert_eq!(functions["namespaced"], true);
        assert_eq!(functions["shortNames"], json!(["fn"]));
        let core = resource_list(&kinds, "", "v1");
        assert_eq!(core["groupVersion"], "v1");
        let pods = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["verbs"], json!(["get", "list", "watch"]));
        assert_eq!(group_list(&kinds)["groups"][0]["preferredVersion"]["groupVersion"], "kubeless.io/v1beta1");
    }

    #[test]
    fn openapi_documents() {
        let kinds = Kinds::new();
        let root = openapi_v3_root(&kinds);
        let url = root["paths"]["apis/kubeless.io/v1beta1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/kubeless.io/v1beta1?hash="));
        let doc = openapi_v3_document(&kinds, "kubeless.io", "v1beta1");
        let patch = &doc["paths"]["/apis/kubeless.io/v1beta1/namespaces/{namespace}/functions/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Function");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_none());
        let schema = &doc["components"]["schemas"]["io.kubeless.v1beta1.Function"];
        assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], "Function");
        assert!(schema["properties"]["spec"]["properties"].get("handler").is_some());
        assert_eq!(parse_openapi_key(&kinds, "api/v1"), Some((String::new(), "v1".to_owned())));
        assert_eq!(parse_openapi_key(&kinds, "apis/batch/v1"), None);
    }
}
