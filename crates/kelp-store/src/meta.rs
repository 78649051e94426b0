//! Reading and writing `metadata` fields of JSON objects.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time as Kubernetes writes timestamps: RFC 3339, whole seconds, UTC
/// (`2026-11-26T19:07:36Z`).
pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    now.format(&Rfc3339).unwrap_or_default()
}

/// The `metadata.resourceVersion` of an object as a number (`None` when absent or empty, or not
/// a number).
pub fn resource_version_of(object: &Value) -> Option<u64> {
    str_field(object, "resourceVersion").and_then(|rv| rv.parse().ok())
}

/// `metadata.<field>` as a string, if it is one.
pub(crate) fn str_field<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// `metadata.<field>` as a non-empty string.
pub(crate) fn non_empty<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    str_field(object, field).filter(|s| !s.is_empty())
}

/// The object's `metadata` map, created if missing. `None` when the object is not a JSON object.
pub(crate) fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// Whether `metadata.finalizers` is a non-empty list.
pub(crate) fn has_finalizers(object: &Value) -> bool {
    object.get("metadata").and_then(|m| m.get("finalizers")).and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(object: &Value) -> bool {
    non_empty(object, "deletionTimestamp").is_some()
}

/// `metadata.generation` (0 when absent).
pub(crate) fn generation(object: &Value) -> i64 {
    object.get("metadata").and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether anything outside `metadata`, `status`, `apiVersion` and `kind` differs: what bumps
/// `metadata.generation`.
pub(crate) fn spec_changed(old: &Value, new: &Value) -> bool {
    const IGNORED: [&str; 4] = ["metadata", "status", "apiVersion", "kind"];
    let empty = Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let differs = |a: &Map<String, Value>, b: &Map<String, Value>| {
        a.iter().filter(|(k, _)| !IGNORED.contains(&k.as_str())).any(|(k, v)| b.get(k) != Some(v))
    };
    differs(old, new) || differs(new, old)
}

/// Sets `metadata.resourceVersion`.
pub(crate) fn set_resource_version(object: &mut Value, rv: u64) {
    if let Some(meta) = metadata_mut(object) {
        meta.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
    }
}

/// Compares two objects ignoring `metadata.resourceVersion` (and `metadata.managedFields`).
pub(crate) fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z'), "{now}");
        assert_eq!(now.len(), "2026-11-26T19:07:36Z".len(), "{now}");
    }

    #[test]
    fn spec_change_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"s": 1}});
        let b = json!({"metadata": {"labels": {"a": "c"}}, "spec": {"x": 1}, "status": {"s": 2}});
        assert!(!spec_changed(&a, &b));
        let c = json!({"metadata": {}, "spec": {"x": 2}});
        assert!(spec_changed(&a, &c));
        let d = json!({"metadata": {}, "spec": {"x": 1}, "data": {}});
        assert!(spec_changed(&a, &d));
    }
}
