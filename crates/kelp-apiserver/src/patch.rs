//! Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
//! patch (treated as a merge patch, as for custom resources) and server-side apply (minimal: a
//! merge of the applied configuration, no managedFields).

use std::io;

use json_patch::PatchOperation;
use serde_json::Value;

/// The most JSON that the `copy` operations of one JSON patch may add to an object, in bytes (the
/// request body limit): each copy can double the object, so a patch of a few kilobytes could
/// otherwise build one of any size in the server's memory.
const MAX_COPIED: usize = 32 * 1024 * 1024;

/// The patch types of the `Content-Type` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (and `+json`, `+cbor` is refused)
    Apply,
}

impl PatchType {
    /// From a `Content-Type` value (parameters ignored).
    pub(crate) fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Removes strategic-merge-patch directives (`$patch`, `$setElementOrder/...`,
/// `$retainKeys`, `$deleteFromPrimitiveList/...`), which have no meaning in a merge patch.
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Applies `patch` (the request body, already parsed) of type `kind` to `target`.
pub(crate) fn apply(kind: PatchType, target: &mut Value, patch: &Value) -> Result<(), String> {
    match kind {
        PatchType::Merge | PatchType::Apply => {
            if !patch.is_object() {
                return Err("the patch must be a JSON object".to_owned());
            }
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err("the patch must be a JSON object".to_owned());
            }
            let mut patch = patch.clone();
            strip_directives(&mut patch);
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchType::Json => {
            let operations: json_patch::Patch =
                serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
            // One operation at a time, so the copies are counted as the object grows; `target`
            // is the server's copy of the object, dropped on an error.
            let mut budget = MAX_COPIED;
            for (i, operation) in operations.iter().enumerate() {
                if let PatchOperation::Copy(copy) = operation {
                    let copied = target.pointer(copy.from.as_str()).map_or(0, |v| json_size(v, budget));
                    budget = budget.checked_sub(copied).ok_or_else(|| {
                        format!("operation '/{i}': the copies of this JSON patch add more than {MAX_COPIED} bytes")
                    })?;
                }
                json_patch::patch(target, std::slice::from_ref(operation))
                    .map_err(|e| format!("operation '/{i}' failed at path '{}': {}", e.path, e.kind))?;
            }
            Ok(())
        }
    }
}

/// The length of `value` as JSON, counted up to `limit` bytes: a longer value counts as more
/// than `limit`, without being written out whole.
fn json_size(value: &Value, limit: usize) -> usize {
    struct Count {
        bytes: usize,
        limit: usize,
    }
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes = self.bytes.saturating_add(buf.len());
            if self.bytes > self.limit { Err(io::ErrorKind::FileTooLarge.into()) } else { Ok(buf.len()) }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count { bytes: 0, limit };
    // An error only says the limit was passed, which `bytes` already shows.
    let _ = serde_json::to_writer(&mut count, value);
    count.bytes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(PatchType::from_content_type("application/merge-patch+json"), Some(PatchType::Merge));
        assert_eq!(PatchType::from_content_type("application/json-patch+json; charset=utf-8"), Some(PatchType::Json));
        assert_eq!(PatchType::from_content_type("application/strategic-merge-patch+json"), Some(PatchType::Strategic));
        assert_eq!(PatchType::from_content_type("application/apply-patch+yaml"), Some(PatchType::Apply));
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn merge_patch() {
        let mut o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2], "y": "keep"}});
        apply(PatchType::Merge, &mut o, &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"x": [3]}}))
            .unwrap();
        assert_eq!(o, json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"x": [3], "y": "keep"}}));
        assert!(apply(PatchType::Merge, &mut o, &json!([1])).is_err());
    }

    #[test]
    fn strategic_merge_patch_as_merge() {
        let mut o = json!({"data": {"a": "1"}, "metadata": {"finalizers": ["x"]}});
        let patch = json!({"$setElementOrder/finalizers": ["y"], "data": {"b": "2", "$patch": "merge"}});
        apply(PatchType::Strategic, &mut o, &patch).unwrap();
        assert_eq!(o, json!({"data": {"a": "1", "b": "2"}, "metadata": {"finalizers": ["x"]}}));
    }

    #[test]
    fn json_patch() {
        let mut o = json!({"spec": {"runtime": "python3.8"}, "metadata": {"labels": {}}});
        let ops = json!([
            {"op": "replace", "path": "/spec/runtime", "value": "nodejs14"},
            {"op": "add", "path": "/metadata/labels/a", "value": "b"},
        ]);
        apply(PatchType::Json, &mut o, &ops).unwrap();
        assert_eq!(o, json!({"spec": {"runtime": "nodejs14"}, "metadata": {"labels": {"a": "b"}}}));
        let failing = json!([{"op": "test", "path": "/spec/runtime", "value": "other"}]);
        assert!(apply(PatchType::Json, &mut o, &failing).is_err());
        assert!(apply(PatchType::Json, &mut o, &json!({"op": "add"})).is_err());
        let error = apply(PatchType::Json, &mut o, &json!([{"op": "remove", "path": "/spec/x"}])).unwrap_err();
        assert_eq!(error, "operation '/0' failed at path '/spec/x': path is invalid");
    }

    /// Each `copy` of an object into itself doubles it: 20 such operations (a patch of about
    /// 1.2 KiB) would build over 60 MiB of JSON from this one (and 40 of them, 2^40 times it); the
    /// copies are bounded.
    #[test]
    fn json_patch_copies_are_bounded() {
        let mut o = json!({"spec": {"a": "0123456789012345678901234567890123456789"}});
        let doubling: Vec<Value> =
            (0..20).map(|i| json!({"op": "copy", "from": "/spec", "path": format!("/spec/c{i}")})).collect();
        let error = apply(PatchType::Json, &mut o, &Value::Array(doubling)).unwrap_err();
        assert!(error.contains("more than 33554432 bytes"), "{error}");
        // Copies within the bound still apply.
        let mut o = json!({"spec": {"a": "b"}});
        let two = json!([{"op": "copy", "from": "/spec", "path": "/x"}, {"op": "copy", "from": "/x", "path": "/y"}]);
        apply(PatchType::Json, &mut o, &two).unwrap();
        assert_eq!(o, json!({"spec": {"a": "b"}, "x": {"a": "b"}, "y": {"a": "b"}}));
    }
}
