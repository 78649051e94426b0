//! Structural-schema checks of CRD objects, as the API server does them: unknown fields are
//! reported (for `fieldValidation=Strict|Warn`) and pruned, type errors are reported with their
//! field paths.

use serde_json::{Map, Value};

/// The fields of `metadata` (ObjectMeta).
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// What checking an object against its schema found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SchemaReport {
    /// Paths of fields the schema does not know (now removed from the object).
    pub unknown: Vec<String>,
    /// (path, reason) of values of the wrong type or too long.
    pub invalid: Vec<(String, String)>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `object` (a whole object: `apiVersion`, `kind`, `metadata` are checked here, the rest
/// against `schema`) and prunes unknown fields.
pub(crate) fn check_object(schema: &Value, object: &mut Value) -> SchemaReport {
    let mut report = SchemaReport::default();
    let Some(map) = object.as_object_mut() else {
        report.invalid.push((String::new(), "must be an object".to_owned()));
        return report;
    };
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        let unknown: Vec<String> = meta.keys().filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            meta.remove(&key);
            report.unknown.push(format!("metadata.{key}"));
        }
    }
    let mut root = schema.clone();
    if let Some(props) = root.get_mut("properties").and_then(Value::as_object_mut) {
        for builtin in ["apiVersion", "kind", "metadata"] {
            props.insert(builtin.to_owned(), serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}));
        }
    }
    check(&root, object, "", &mut report);
    report
}

fn check(schema: &Value, value: &mut Value, path: &str, report: &mut SchemaReport) {
    if value.is_null() {
        return;
    }
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if !matches!(type_name(value), "integer" | "string") {
            report.invalid.push((path.to_owned(), format!("must be an integer or a string, not {}", type_name(value))));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let have = type_name(value);
        let ok = have == want || (want == "number" && have == "integer");
        if !ok {
            report.invalid.push((path.to_owned(), format!("must be of type {want}, not {have}")));
            return;
        }
    }
    if let (Some(max), Value::String(s)) = (schema.get("maxLength").and_then(Value::as_u64), &*value)
        && s.len() as u64 > max
    {
        report.invalid.push((path.to_owned(), format!("may not be more than {max} bytes")));
    }
    match value {
        Value::Object(map) => check_map(schema, map, path, preserve, report),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), report);
                }
            }
        }
        _ => {}
    }
}

fn check_map(schema: &Value, map: &mut Map<String, Value>, path: &str, preserve: bool, report: &mut SchemaReport) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if properties.is_none() && additional.is_none() {
        // An object with no declared fields keeps whatever it holds only when told to.
        if !preserve && schema.get("type").is_some() {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                map.remove(&key);
                report.unknown.push(join(path, &key));
            }
        }
        return;
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let child_path = join(path, &key);
        let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
        match child_schema {
            Some(child_schema) => {
                if let Some(child) = map.get_mut(&key) {
                    check(child_schema, child, &child_path, report);
                }
            }
            None if preserve => {}
            None => {
                map.remove(&key);
                report.unknown.push(child_path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::Kinds;

    fn function_schema() -> Value {
        Kinds::new().find("kubeless.io", "v1beta1", "functions").unwrap().schema.clone().unwrap()
    }

    #[test]
    fn unknown_fields_are_reported_and_pruned() {
        let mut f = json!({
            "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "f", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"handler": "h.f", "runtime": "python3.8", "handlr": "x",
                     "deployment": {"anything": {"goes": true}}},
            "extra": 1,
        });
        let report = check_object(&function_schema(), &mut f);
        assert_eq!(report.unknown, ["metadata.bogus", "extra", "spec.handlr"]);
        assert!(report.invalid.is_empty(), "{report:?}");
        assert!(f["spec"].get("handlr").is_none() && f.get("extra").is_none());
        assert_eq!(f["spec"]["deployment"]["anything"]["goes"], true, "preserve-unknown-fields keeps embedded objects");
    }

    #[test]
    fn type_errors_have_paths() {
        let mut f = json!({"spec": {"handler": 5, "timeout": "1", "runtime": "x".repeat(64)}});
        let report = check_object(&function_schema(), &mut f);
        assert_eq!(
            report.invalid,
            [
                ("spec.handler".to_owned(), "must be of type string, not integer".to_owned()),
                ("spec.runtime".to_owned(), "may not be more than 63 bytes".to_owned()),
            ]
        );
    }
}
