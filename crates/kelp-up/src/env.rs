//! A function's environment, resolved as a kubelet would: literal values, `valueFrom`
//! (`secretKeyRef`, `configMapKeyRef`, `fieldRef`) and `envFrom` Secrets and ConfigMaps, read from
//! the same API the Function lives in.

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar};
use serde_json::Value;

/// Reads a Secret or ConfigMap: `(resource, namespace, name)` → the object, if it exists.
pub trait Lookup {
    /// The object `name` of `resource` (`"/secrets"` or `"/configmaps"`) in `namespace`.
    fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value>;
}

impl Lookup for kelp_store::Store {
    fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        kelp_store::Store::get(self, resource, namespace, name).ok().map(|o| (*o).clone())
    }
}

/// Why the environment cannot be built; the function is not started until it can.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("env {var}: {reason}")]
pub struct EnvError {
    /// The variable (or `envFrom` source) concerned.
    pub var: String,
    /// What is missing.
    pub reason: String,
}

/// The container's environment in order: `envFrom` first, then `env` (which wins), as Kubernetes
/// does. `namespace` and `name` answer `fieldRef`s to `metadata.namespace` / `metadata.name`.
pub fn resolve(
    container: &Container,
    namespace: &str,
    name: &str,
    lookup: &dyn Lookup,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| match env.iter_mut().find(|(name, _)| *name == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for source in container.env_from.iter().flatten() {
        for (k, v) in env_from(source, namespace, lookup)? {
            set(k, v);
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(v) = value(var, namespace, name, lookup)? {
            set(var.name.clone(), v);
        }
    }
    Ok(env)
}

fn value(var: &EnvVar, namespace: &str, name: &str, lookup: &dyn Lookup) -> Result<Option<String>, EnvError> {
    let err = |reason: String| EnvError { var: var.name.clone(), reason };
    let Some(from) = &var.value_from else { return Ok(Some(var.value.clone().unwrap_or_default())) };
    if let Some(r) = &from.secret_key_ref {
        return keyed(lookup, "/secrets", namespace, &r.name, &r.key, r.optional.unwrap_or(false)).map_err(err);
    }
    if let Some(r) = &from.config_map_key_ref {
        return keyed(lookup, "/configmaps", namespace, &r.name, &r.key, r.optional.unwrap_or(false)).map_err(err);
    }
    if let Some(r) = &from.field_ref {
        return match r.field_path.as_str() {
            "metadata.namespace" => Ok(Some(namespace.to_string())),
            "metadata.name" => Ok(Some(name.to_string())),
            other => Err(err(format!("fieldRef {other} is not available on this platform"))),
        };
    }
    Err(err("valueFrom names no source this platform supports (secretKeyRef, configMapKeyRef, fieldRef)".into()))
}

fn keyed(
    lookup: &dyn Lookup,
    resource: &str,
    namespace: &str,
    object: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, String> {
    let Some(data) = lookup.get(resource, namespace, object).map(|o| data(resource, &o)) else {
        return if optional { Ok(None) } else { Err(format!("{} not found", named(resource, namespace, object))) };
    };
    match data.into_iter().find(|(k, _)| k == key) {
        Some((_, v)) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
        None if optional => Ok(None),
        None => Err(format!("{} has no key {key:?}", named(resource, namespace, object))),
    }
}

fn env_from(source: &EnvFromSource, namespace: &str, lookup: &dyn Lookup) -> Result<Vec<(String, String)>, EnvError> {
    let (resource, object, optional) = match (&source.secret_ref, &source.config_map_ref) {
        (Some(s), _) => ("/secrets", &s.name, s.optional.unwrap_or(false)),
        (None, Some(c)) => ("/configmaps", &c.name, c.optional.unwrap_or(false)),
        (None, None) => return Ok(Vec::new()),
    };
    let prefix = source.prefix.as_deref().unwrap_or("");
    match lookup.get(resource, namespace, object) {
        Some(o) => Ok(data(resource, &o)
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned()))
            .collect()),
        None if optional => Ok(Vec::new()),
        None => Err(EnvError { var: format!("envFrom {object}"), reason: format!("{namespace}/{object} not found") }),
    }
}

/// `secret <namespace>/<name>` (or `configmap ...`) for `resource` `"/secrets"` or `"/configmaps"`.
pub(crate) fn named(resource: &str, namespace: &str, name: &str) -> String {
    let kind = &resource[1..resource.len() - 1];
    format!("{kind} {namespace}/{name}")
}

/// The data of a Secret (`data` base64-decoded, then `stringData`) or ConfigMap (`data`; its
/// `binaryData` is for volumes only, as with a kubelet), by key.
pub(crate) fn data(resource: &str, object: &Value) -> Vec<(String, Vec<u8>)> {
    let secret = resource == "/secrets";
    let sources: &[(&str, bool)] = if secret { &[("data", true), ("stringData", false)] } else { &[("data", false)] };
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (field, encoded) in sources {
        for (k, v) in object.get(*field).and_then(Value::as_object).into_iter().flatten() {
            out.retain(|(name, _)| name != k);
            out.push((k.clone(), bytes(v, *encoded)));
        }
    }
    out
}

/// The bytes of a data value: base64-decoded when `encoded`.
pub(crate) fn bytes(value: &Value, encoded: bool) -> Vec<u8> {
    let text = value.as_str().unwrap_or_default();
    if encoded { base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default() } else { text.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Objects(HashMap<(&'static str, &'static str), Value>);

    impl Lookup for Objects {
        fn get(&self, resource: &str, _namespace: &str, name: &str) -> Option<Value> {
            self.0.iter().find(|((r, n), _)| *r == resource && *n == name).map(|(_, v)| v.clone())
        }
    }

    fn objects() -> Objects {
        Objects(HashMap::from([
            (("/secrets", "creds"), json!({"data": {"token": "czNjcjN0", "user": "YWRh"}})),
            (("/configmaps", "settings"), json!({"data": {"MODE": "fast", "LEVEL": "3"}})),
        ]))
    }

    fn container(mut value: Value) -> Container {
        value["name"] = json!("f");
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn literal_secret_configmap_and_field_values() {
        let c = container(json!({"env": [
            {"name": "A", "value": "1"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": true}}},
        ]}));
        let env = resolve(&c, "team", "hello", &objects()).unwrap();
        let want = [("A", "1"), ("TOKEN", "s3cr3t"), ("MODE", "fast"), ("NS", "team")];
        assert_eq!(env, want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec());
    }

    #[test]
    fn env_from_with_prefix_and_env_wins() {
        let c = container(json!({
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
            "env": [{"name": "user", "value": "override"}],
        }));
        let env = resolve(&c, "default", "f", &objects()).unwrap();
        assert!(env.contains(&("CFG_MODE".into(), "fast".into())), "{env:?}");
        assert!(env.contains(&("token".into(), "s3cr3t".into())), "{env:?}");
        assert!(env.contains(&("user".into(), "override".into())), "{env:?}");
    }

    #[test]
    fn missing_sources_name_the_variable() {
        let c = container(
            json!({"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nokey"}}}]}),
        );
        let err = resolve(&c, "default", "f", &objects()).unwrap_err();
        assert_eq!(err.to_string(), "env T: secret default/creds has no key \"nokey\"");
        let c = container(json!({"envFrom": [{"secretRef": {"name": "absent"}}]}));
        assert!(resolve(&c, "default", "f", &objects()).unwrap_err().to_string().contains("absent"));
    }
}
