//! [`Embedded`]: a typed k8s-openapi object inside a Kubeless spec that still round-trips.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A typed Kubernetes object or object part embedded in a Kubeless spec, which serializes back
/// to the JSON shape it was read from.
///
/// Kubeless embeds whole Kubernetes objects in a Function (`deployment` is an apps/v1
/// `Deployment`, `service` a core/v1 `ServiceSpec`). The objects in etcd are not shaped like
/// k8s-openapi's canonical rendering of those types:
///
/// - the kubeless CLI writes `deployment: {spec: {template: {spec: {containers: [...]}}}}` with
///   no `apiVersion`, `kind`, `metadata` or `spec.selector`; k8s-openapi *accepts* the missing
///   required fields (it fills `Default`s) but would *write* `apiVersion: apps/v1`,
///   `kind: Deployment`, `metadata: {}` and `selector: {}` back;
/// - Go clients write `metadata: {creationTimestamp: null}`, `selector: null`, `status: {}`;
/// - an `apiVersion` other than `apps/v1` (e.g. `extensions/v1beta1`) makes k8s-openapi refuse
///   the object outright; and fields unknown to k8s-openapi are dropped.
///
/// `Embedded<T>` therefore deserializes through a `serde_json::Value`: it drops `apiVersion` and
/// `kind` before decoding `T` (the Go side never checked them either), then remembers every
/// place where `T`'s rendering differs from the input. Serializing re-applies those differences
/// wherever the typed value there is still unchanged, so an unmodified object serializes back
/// to exactly its input, and a modified one shows the modification.
///
/// Code reading the object just derefs to `T`. Fields k8s-openapi does not know are invisible
/// to it (but are kept for the round trip).
///
/// Equality compares the typed values only.
#[derive(Clone, Default)]
pub struct Embedded<T> {
    value: T,
    shape: Vec<Difference>,
}

/// One place where the stored JSON differs from `T`'s rendering.
#[derive(Clone, Debug, PartialEq)]
struct Difference {
    path: Vec<Step>,
    /// What `T` renders there (`None`: nothing).
    rendered: Option<Value>,
    /// What the input had there (`None`: nothing).
    stored: Option<Value>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

impl<T> Embedded<T> {
    /// Wraps a value with no stored shape: it serializes as `T` does.
    pub fn new(value: T) -> Self {
        Self { value, shape: Vec::new() }
    }

    /// The typed value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> From<T> for Embedded<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> Deref for Embedded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Embedded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: PartialEq> PartialEq for Embedded<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Embedded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: DeserializeOwned + Serialize> Deserialize<'de> for Embedded<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = Value::deserialize(deserializer)?;
        let mut input = stored.clone();
        if let Value::Object(map) = &mut input {
            map.remove("apiVersion");
            map.remove("kind");
        }
        let value: T = serde_json::from_value(input).map_err(D::Error::custom)?;
        let rendered = serde_json::to_value(&value).map_err(D::Error::custom)?;
        let mut shape = Vec::new();
        diff(&mut Vec::new(), &stored, &rendered, &mut shape);
        Ok(Self { value, shape })
    }
}

impl<T: Serialize> Serialize for Embedded<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serde_json::to_value(&self.value).map_err(S::Error::custom)?;
        for difference in &self.shape {
            difference.reapply(&mut out);
        }
        out.serialize(serializer)
    }
}

impl<T> JsonSchema for Embedded<T> {
    fn schema_name() -> Cow<'static, str> {
        "EmbeddedObject".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        preserve_unknown_object(generator)
    }
}

/// Records where `rendered` (what `T` writes) differs from `stored` (what was read).
fn diff(path: &mut Vec<Step>, stored: &Value, rendered: &Value, out: &mut Vec<Difference>) {
    match (stored, rendered) {
        (Value::Object(s), Value::Object(r)) => {
            for (key, r_value) in r {
                path.push(Step::Key(key.clone()));
                match s.get(key) {
                    Some(s_value) => diff(path, s_value, r_value, out),
                    None => out.push(Difference::at(path, Some(r_value), None)),
                }
                path.pop();
            }
            for (key, s_value) in s.iter().filter(|(key, _)| !r.contains_key(*key)) {
                path.push(Step::Key(key.clone()));
                out.push(Difference::at(path, None, Some(s_value)));
                path.pop();
            }
        }
        (Value::Array(s), Value::Array(r)) if s.len() == r.len() => {
            for (index, (s_item, r_item)) in s.iter().zip(r).enumerate() {
                path.push(Step::Index(index));
                diff(path, s_item, r_item, out);
                path.pop();
            }
        }
        _ if stored != rendered => out.push(Difference::at(path, Some(rendered), Some(stored))),
        _ => {}
    }
}

impl Difference {
    fn at(path: &[Step], rendered: Option<&Value>, stored: Option<&Value>) -> Self {
        Self { path: path.to_vec(), rendered: rendered.cloned(), stored: stored.cloned() }
    }

    /// Puts the stored form back if `out` still holds the rendered form at this path.
    fn reapply(&self, out: &mut Value) {
        let Some((last, parents)) = self.path.split_last() else {
            if Some(&*out) == self.rendered.as_ref() {
                *out = self.stored.clone().unwrap_or(Value::Null);
            }
            return;
        };
        let mut parent = out;
        for step in parents {
            let child = match (step, parent) {
                (Step::Key(key), Value::Object(map)) => map.get_mut(key),
                (Step::Index(index), Value::Array(items)) => items.get_mut(*index),
                _ => None,
            };
            let Some(child) = child else { return };
            parent = child;
        }
        match (last, parent) {
            (Step::Key(key), Value::Object(map)) if map.get(key) == self.rendered.as_ref() => {
                restore(map, key, self.stored.as_ref());
            }
            (Step::Index(index), Value::Array(items)) if items.get(*index) == self.rendered.as_ref() => {
                if let Some(stored) = &self.stored {
                    items[*index] = stored.clone();
                }
            }
            _ => {}
        }
    }
}

fn restore(map: &mut Map<String, Value>, key: &str, stored: Option<&Value>) {
    match stored {
        Some(value) => {
            map.insert(key.to_owned(), value.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

/// Schema of an embedded object the API server stores as-is (Go clients may write `null`):
/// `{type: object, nullable: true, x-kubernetes-preserve-unknown-fields: true}`.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of a field that may hold any JSON value, `null` included:
/// `{nullable: true, x-kubernetes-preserve-unknown-fields: true}` (no type).
pub(crate) fn preserve_unknown_any(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;

    fn round_trip(input: Value) -> (Embedded<Deployment>, Value) {
        let embedded: Embedded<Deployment> = serde_json::from_value(input).unwrap();
        let output = serde_json::to_value(&embedded).unwrap();
        (embedded, output)
    }

    #[test]
    fn keeps_the_kubeless_cli_shape() {
        let input = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "", "imagePullPolicy": "Always", "resources": {}}
        ]}}}});
        let (deployment, output) = round_trip(input.clone());
        assert_eq!(output, input);
        let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.containers[0].image_pull_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn keeps_go_nulls_foreign_api_versions_and_unknown_fields() {
        let input = json!({
            "apiVersion": "extensions/v1beta1",
            "metadata": {"creationTimestamp": null},
            "spec": {"selector": null, "strategy": {}, "someFutureField": [1, 2],
                     "template": {"metadata": {"creationTimestamp": null},
                                  "spec": {"containers": null}}},
            "status": {}
        });
        assert_eq!(round_trip(input.clone()).1, input);
    }

    #[test]
    fn shows_modifications() {
        let input = json!({"spec": {"template": {"spec": {"containers": [{"name": ""}]}}}});
        let (mut deployment, _) = round_trip(input);
        let spec = deployment.spec.as_mut().unwrap();
        spec.replicas = Some(2);
        spec.template.spec.as_mut().unwrap().containers[0].name = "fn".into();
        let output = serde_json::to_value(&deployment).unwrap();
        assert_eq!(output, json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "fn"}]}}}}));
    }

    #[test]
    fn new_values_render_canonically() {
        let output = serde_json::to_value(Embedded::new(Deployment::default())).unwrap();
        assert_eq!(output, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}));
    }
}
