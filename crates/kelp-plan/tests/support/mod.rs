//! What the focused tests share: objects from JSON, with a name, namespace and uid.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A `kubeless.io/v1beta1` object of `kind` named `name` in namespace `ns` (uid `uid-<name>`)
/// with `spec`, and the labels `labels` when it is not `null`.
pub(crate) fn object<T: DeserializeOwned>(kind: &str, name: &str, labels: Value, spec: Value) -> T {
    let mut metadata = json!({"name": name, "namespace": "ns", "uid": format!("uid-{name}")});
    if !labels.is_null() {
        metadata["labels"] = labels;
    }
    serde_json::from_value(
        json!({"apiVersion": "kubeless.io/v1beta1", "kind": kind, "metadata": metadata, "spec": spec}),
    )
    .unwrap()
}

/// A Python function `fn` of text code, with `extra` merged into its spec.
pub(crate) fn function(extra: Value) -> kelp_api::Function {
    let mut spec =
        json!({"handler": "hello.world", "runtime": "python3.8", "function": "def world(e, c): return 'hi'"});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    object("Function", "fn", Value::Null, spec)
}
