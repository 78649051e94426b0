//! The pure part of the CLI: command-line flags → Kubernetes objects and merge patches.
//!
//! Nothing here does I/O: files and URLs are read by the commands and handed in as bytes, the
//! current object of an `update` is handed in as JSON. Every builder returns plain JSON shaped
//! exactly as the kubeless CLI wrote it (same keys, same defaults), and [`to_object`] turns it
//! into the `kelp-api` type and runs its [`Validate`] before anything is sent.

pub(crate) mod autoscale;
pub(crate) mod content;
pub(crate) mod function;
pub(crate) mod kv;
pub(crate) mod trigger;

use kelp_api::{Validate, ValidationErrors};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The API version of every Kelp kind.
pub(crate) const API_VERSION: &str = "kubeless.io/v1beta1";

/// Why flags cannot become an object.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// A flag value is malformed or flags contradict each other; the message names the flag.
    #[error("{0}")]
    Flag(String),
    /// The object built is not valid; every problem with its field path.
    #[error("invalid {kind} {name:?}: {}", one_line(.errors))]
    Invalid {
        /// The kind, e.g. `Function`.
        kind: String,
        /// `metadata.name`.
        name: String,
        /// Every problem.
        errors: ValidationErrors,
    },
    /// The JSON does not decode into the kind's type (a field of the wrong type).
    #[error("invalid {kind} {name:?}: {cause}")]
    Decode {
        /// The kind, e.g. `Function`.
        kind: String,
        /// `metadata.name`.
        name: String,
        /// What serde said.
        cause: serde_json::Error,
    },
}

/// `field: reason; field: reason` on one line.
pub(crate) fn one_line(errors: &ValidationErrors) -> String {
    errors.errors().iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Decodes `value` as `T` and validates it.
pub(crate) fn to_object<T: DeserializeOwned + Validate>(kind: &str, value: &Value) -> Result<T, BuildError> {
    let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let object: T = serde_json::from_value(value.clone()).map_err(|cause| BuildError::Decode {
        kind: kind.to_owned(),
        name: name.clone(),
        cause,
    })?;
    object.validate().map_err(|errors| BuildError::Invalid { kind: kind.to_owned(), name, errors })?;
    Ok(object)
}

/// The JSON merge patch (RFC 7386) that turns `current` into `target`: changed values,
/// `null` for removed keys, nothing for equal ones (objects recurse; anything else is replaced).
pub(crate) fn merge_patch_to(current: &Value, target: &Value) -> Value {
    match (current, target) {
        (Value::Object(current), Value::Object(target)) => {
            let mut patch = Map::new();
            for (key, value) in target {
                match current.get(key) {
                    Some(old) if old == value => {}
                    Some(old) if old.is_object() && value.is_object() => {
                        patch.insert(key.clone(), merge_patch_to(old, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in current.keys().filter(|key| !target.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => target.clone(),
    }
}

/// Checks a Kubernetes resource quantity (`128Mi`, `0.5`, `500m`, `1e3`), as `resource.ParseQuantity`.
pub(crate) fn check_quantity(value: &str) -> Result<(), String> {
    let invalid = || format!("{value:?} is not a Kubernetes quantity (e.g. 128Mi, 1Gi, 500m, 0.5)");
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let number_end = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let digits = number.replace('.', "");
    if digits.is_empty() || number.matches('.').count() > 1 {
        return Err(invalid());
    }
    let exponent = |s: &str| {
        let s = s.strip_prefix(['+', '-']).unwrap_or(s);
        !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
    };
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => Ok(()),
        s if s.strip_prefix(['e', 'E']).is_some_and(exponent) => Ok(()),
        _ => Err(invalid()),
    }
}

/// Checks a non-negative quantity given to a flag such as `--memory`.
pub(crate) fn check_resource_flag(flag: &str, value: &str) -> Result<(), BuildError> {
    check_quantity(value).map_err(|reason| BuildError::Flag(format!("{flag}: {reason}")))?;
    if value.starts_with('-') {
        return Err(BuildError::Flag(format!("{flag}: {value:?} must not be negative")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patches_turn_one_value_into_another() {
        let current = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1], "f": "same"});
        let target = json!({"a": 1, "b": {"c": 5}, "e": [2], "f": "same", "g": true});
        let patch = merge_patch_to(&current, &target);
        assert_eq!(patch, json!({"b": {"c": 5, "d": null}, "e": [2], "g": true}));
        let mut merged = current.clone();
        json_patch::merge(&mut merged, &patch);
        assert_eq!(merged, target);
    }

    #[test]
    fn quantities() {
        for ok in ["128Mi", "1Gi", "500m", "0.5", "1", "1e3", "1E-2", "100M", ".5", "2k"] {
            assert!(check_quantity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Mi", "12XB", "1.2.3", "1e", "abc", "1 Gi", "128mi"] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
        assert!(check_resource_flag("--memory", "-1Gi").is_err());
    }
}
