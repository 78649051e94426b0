//! `meta.k8s.io/v1` Table output for `kubectl get`, with the kinds' printer columns.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::kinds::{CellSource, Kind};

/// What rows carry in `object` (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub(crate) fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or_default() {
            "" | "Metadata" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            "None" => Ok(Self::None),
            other => Err(format!("unrecognized includeObject value: {other:?}")),
        }
    }
}

/// One step of a JSONPath.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.key=="value")]`
    Filter(Vec<String>, String),
}

fn parse_path(path: &str) -> Vec<Step> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_owned()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            let inner = r[..end].trim();
            if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                if let Some((key, value)) = filter.split_once("==") {
                    let key: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
                    let value = value.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
                    steps.push(Step::Filter(key, value));
                }
            } else {
                let name = inner.trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Field(name.to_owned()));
            }
            rest = &r[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    steps
}

/// Evaluates the subset of JSONPath printer columns use: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.type=="Ready")].status`. Returns every match.
pub(crate) fn json_path<'a>(object: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![object];
    for step in parse_path(path) {
        let mut next = Vec::new();
        for v in current {
            match &step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(i) => next.extend(v.get(*i)),
                Step::All => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter());
                    }
                }
                Step::Filter(key, want) => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter().filter(|item| {
                            let found = key.iter().try_fold(*item, |o, k| o.get(k.as_str()));
                            match found {
                                Some(Value::String(s)) => s == want,
                                Some(other) => serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other),
                                None => false,
                            }
                        }));
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// Kubernetes's `duration.HumanDuration` of the time since `timestamp`.
pub(crate) fn age(timestamp: &str, now: OffsetDateTime) -> String {
    let Ok(then) = OffsetDateTime::parse(timestamp, &Rfc3339) else { return "<invalid>".to_owned() };
    human_duration((now - then).whole_seconds())
}

/// Kubernetes's `duration.HumanDuration`.
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

fn cell(type_: &str, value: Option<&Value>, now: OffsetDateTime) -> Value {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Value::Null };
    match type_ {
        "string" => match value {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        },
        "integer" => value
            .as_i64()
            .map(Value::from)
            .or_else(|| value.as_f64().map(|f| Value::from(f as i64)))
            .unwrap_or(Value::Null),
        "number" => value.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => value.as_bool().map(Value::Bool).unwrap_or(Value::Null),
        "date" => value.as_str().map(|s| Value::String(age(s, now))).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The column definitions: `Name`, then the kind's columns.
pub(crate) fn column_definitions(kind: &Kind) -> Value {
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating resources, although some \
                        resources may allow a client to request the generation of an appropriate name automatically. \
                        Name is primarily intended for creation idempotence and configuration definition. Cannot be \
                        updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    })];
    for c in &kind.columns {
        defs.push(json!({
            "name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority,
        }));
    }
    Value::Array(defs)
}

/// One row for `object`.
pub(crate) fn row(kind: &Kind, object: &Value, include: IncludeObject, now: OffsetDateTime) -> Value {
    let mut cells = vec![object.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
    for c in &kind.columns {
        let value = match &c.source {
            CellSource::JsonPath(path) => cell(&c.type_, json_path(object, path).first().copied(), now),
            CellSource::Computed(f) => f(object),
        };
        cells.push(value);
    }
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = object.clone(),
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
    }
    row
}

/// A Table of `objects` with `metadata` (the list's); `headers` false leaves out the column definitions (watch events after
/// the first).
pub(crate) fn table<'a>(
    kind: &Kind,
    objects: impl IntoIterator<Item = &'a Value>,
    metadata: Value,
    include: IncludeObject,
    headers: bool,
) -> Value {
    let now = OffsetDateTime::now_utc();
    let rows: Vec<Value> = objects.into_iter().map(|o| row(kind, o, include, now)).collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "rows": rows});
    t["columnDefinitions"] = if headers { column_definitions(kind) } else { Value::Null };
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kinds;

    #[test]
    fn json_paths() {
        let o = json!({
            "spec": {"runtime": "python3.8", "function-name": "f", "list": [{"a": 1}, {"a": 2}]},
            "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]},
        });
        assert_eq!(json_path(&o, ".spec.runtime"), [&json!("python3.8")]);
        assert_eq!(json_path(&o, ".spec.function-name"), [&json!("f")]);
        assert_eq!(json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"), [&json!("True")]);
        assert_eq!(json_path(&o, ".spec.list[1].a"), [&json!(2)]);
        assert_eq!(json_path(&o, ".spec.list[*].a"), [&json!(1), &json!(2)]);
        assert_eq!(json_path(&o, "{.spec['runtime']}"), [&json!("python3.8")]);
        assert!(json_path(&o, ".spec.missing.deeper").is_empty());
    }

    #[test]
    fn human_durations() {
        for (secs, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (47 * 3600, "47h"),
            (50 * 3600, "2d2h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn function_rows() {
        let kinds = Kinds::new();
        let kind = kinds.find("kubeless.io", "v1beta1", "functions").unwrap();
        let f = json!({
            "metadata": {"name": "hello", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"runtime": "python3.8", "handler": "h.f"},
        });
        let now = OffsetDateTime::parse("2026-01-01T00:05:00Z", &Rfc3339).unwrap();
        let r = row(kind, &f, IncludeObject::Metadata, now);
        assert_eq!(r["cells"], json!(["hello", null, "python3.8", "h.f", null, "5m"]));
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        let t = table(kind, [&f], json!({"resourceVersion": "7"}), IncludeObject::None, true);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][5]["name"], "Age");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert!(t["rows"][0].get("object").is_none());
        assert!(table(kind, [&f], json!({}), IncludeObject::None, false)["columnDefinitions"].is_null());
    }
}
