//! The global Deployment template of `kubeless-config` (key `deployment`): strict parsing, and
//! the merge into a function's own template.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Map, Value};

use crate::error::PlanError;

const KEY: &str = "deployment";

/// Parses the config's Deployment template (YAML or JSON) strictly: a duplicated key or a field
/// an apps/v1 Deployment does not have is an error naming it. `apiVersion` and `kind` are not
/// checked, as Kubeless did not.
pub(crate) fn parse_template(text: &str) -> Result<Deployment, PlanError> {
    let mut input: Value = serde_saphyr::from_str(text).map_err(|e| PlanError::config(KEY, e))?;
    let Some(map) = input.as_object_mut() else {
        return Err(PlanError::config(KEY, "must be a Deployment object"));
    };
    map.remove("apiVersion");
    map.remove("kind");
    let deployment: Deployment =
        serde_json::from_value(input.clone()).map_err(|e| PlanError::config(KEY, format!("not a Deployment: {e}")))?;
    let rendered = serde_json::to_value(&deployment).map_err(|e| PlanError::config(KEY, e))?;
    let mut unknown = Vec::new();
    unknown_fields(&input, &rendered, String::new(), &mut unknown);
    if !unknown.is_empty() {
        return Err(PlanError::config(KEY, format!("unknown fields of a Deployment: {}", unknown.join(", "))));
    }
    Ok(deployment)
}

/// Collects the paths of `input` that `rendered` (the typed value's rendering) lost.
fn unknown_fields(input: &Value, rendered: &Value, path: String, unknown: &mut Vec<String>) {
    match (input, rendered) {
        (Value::Object(input), Value::Object(rendered)) => {
            for (key, value) in input {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match rendered.get(key) {
                    Some(rendered) => unknown_fields(value, rendered, at, unknown),
                    None if value.is_null() => {}
                    None => unknown.push(at),
                }
            }
        }
        (Value::Array(input), Value::Array(rendered)) => {
            for (i, (value, rendered)) in input.iter().zip(rendered).enumerate() {
                unknown_fields(value, rendered, format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

/// Merges the config's template into the function's: the function's fields win; fields it
/// leaves empty come from the config. Containers and init containers are merged by position,
/// and inside them the config's list entries are appended unless the function's list already
/// has an entry with the same key (`name`, `mountPath`, `containerPort`, else the whole entry).
pub(crate) fn merge_template(function: &Deployment, config: &Deployment) -> Result<Deployment, PlanError> {
    let mut merged = serde_json::to_value(function).map_err(|e| PlanError::invalid("spec.deployment", e))?;
    let config = serde_json::to_value(config).map_err(|e| PlanError::config(KEY, e))?;
    merge(&mut merged, &config, Place::Other);
    serde_json::from_value(merged).map_err(|e| PlanError::config(KEY, format!("merged with spec.deployment: {e}")))
}

/// Where in the Deployment a value is, which decides how lists merge.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// A list of containers: merged entry by entry.
    Containers,
    /// Inside a container: lists get the config's entries appended.
    Container,
    /// Elsewhere: a non-empty list of the function wins.
    Other,
}

fn merge(function: &mut Value, config: &Value, place: Place) {
    if is_empty(function) {
        *function = config.clone();
        return;
    }
    match (function, config) {
        (Value::Object(function), Value::Object(config)) => merge_objects(function, config, place),
        (Value::Array(function), Value::Array(config)) => match place {
            Place::Containers => {
                for (i, config) in config.iter().enumerate() {
                    match function.get_mut(i) {
                        Some(container) => merge(container, config, Place::Container),
                        None => function.push(config.clone()),
                    }
                }
            }
            Place::Container => {
                for entry in config {
                    if !function.iter().any(|e| identity(e) == identity(entry)) {
                        function.push(entry.clone());
                    }
                }
            }
            Place::Other => {}
        },
        _ => {}
    }
}

fn merge_objects(function: &mut Map<String, Value>, config: &Map<String, Value>, place: Place) {
    for (key, config) in config {
        let place = match key.as_str() {
            "containers" | "initContainers" => Place::Containers,
            _ if place == Place::Container => Place::Container,
            _ => Place::Other,
        };
        merge(function.entry(key.clone()).or_insert(Value::Null), config, place);
    }
}

/// Whether a value is what Go's mergo treats as empty: absent, an empty string, list or object.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// What identifies a list entry inside a container.
fn identity(entry: &Value) -> &Value {
    ["name", "mountPath", "containerPort"].iter().find_map(|key| entry.get(key)).unwrap_or(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_function_wins_and_fills_from_the_config() {
        let config = parse_template(
            "metadata:\n  annotations: {team: fns}\nspec:\n  replicas: 2\n  template:\n    spec:\n      nodeSelector: {disk: ssd}\n      containers:\n      - env:\n        - {name: A, value: config}\n        - {name: B, value: config}\n        resources: {limits: {memory: 256Mi}}\n",
        )
        .unwrap();
        let function = deployment(json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "", "env": [{"name": "A", "value": "function"}], "resources": {"limits": {"memory": "128Mi"}}}
        ]}}}}));
        let merged = serde_json::to_value(merge_template(&function, &config).unwrap()).unwrap();
        assert_eq!(merged["spec"]["replicas"], 1);
        assert_eq!(merged["metadata"]["annotations"], json!({"team": "fns"}));
        assert_eq!(merged["spec"]["template"]["spec"]["nodeSelector"], json!({"disk": "ssd"}));
        let container = &merged["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["env"], json!([{"name": "A", "value": "function"}, {"name": "B", "value": "config"}]));
        assert_eq!(container["resources"], json!({"limits": {"memory": "128Mi"}}));
    }

    #[test]
    fn json_and_any_api_version_parse() {
        let parsed =
            parse_template(r#"{"apiVersion": "extensions/v1beta1", "kind": "Deployment", "spec": {"replicas": 3}}"#);
        assert_eq!(parsed.unwrap().spec.unwrap().replicas, Some(3));
    }

    #[test]
    fn parsing_is_strict() {
        for (text, expected) in [
            ("spec:\n  replicas: 1\n  replicas: 2\n", "duplicate"),
            ("spec:\n  replica: 2\n", "unknown fields of a Deployment: spec.replica"),
            (
                "spec: {template: {spec: {containers: [{name: a, imagePullPolicyy: Always}]}}}",
                "spec.template.spec.containers[0].imagePullPolicyy",
            ),
            ("spec: {replicas: many}", "not a Deployment"),
            ("[1, 2]", "must be a Deployment object"),
        ] {
            let err = parse_template(text).unwrap_err().to_string();
            assert!(err.starts_with("kubeless-config key \"deployment\""), "{err}");
            assert!(err.to_lowercase().contains(&expected.to_lowercase()), "{text:?}: {err}");
        }
    }
}
