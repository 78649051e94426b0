//! The kinds `kelp apply`, `kelp delete -f` and `kelp get` handle: Kelp's six kinds and the core
//! Namespace, Secret and ConfigMap.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kelp_api::{CronJobTrigger, Function, HTTPTrigger, KafkaTrigger, KinesisTrigger, NATSTrigger};
use kube::discovery::ApiResource;
use serde_json::Value;

use crate::build::{BuildError, to_object};

/// One kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KindInfo {
    /// `Function`, `Secret`, ...
    pub(crate) kind: &'static str,
    /// API group (`""` for core).
    pub(crate) group: &'static str,
    /// API version.
    pub(crate) version: &'static str,
    /// Resource name (`functions`).
    pub(crate) plural: &'static str,
    /// Singular name (`function`).
    pub(crate) singular: &'static str,
    /// Short names accepted by `kelp get`.
    pub(crate) short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub(crate) namespaced: bool,
}

/// Every kind handled, in the order `apply` creates them when it sorts nothing: as given.
pub(crate) const KINDS: [KindInfo; 9] = [
    kelp_kind("Function", "functions", "function", &["fn", "fns"]),
    kelp_kind("HTTPTrigger", "httptriggers", "httptrigger", &[]),
    kelp_kind("CronJobTrigger", "cronjobtriggers", "cronjobtrigger", &[]),
    kelp_kind("KafkaTrigger", "kafkatriggers", "kafkatrigger", &[]),
    kelp_kind("NATSTrigger", "natstriggers", "natstrigger", &[]),
    kelp_kind("KinesisTrigger", "kinesistriggers", "kinesistrigger", &[]),
    KindInfo {
        kind: "Namespace",
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        namespaced: false,
    },
    KindInfo {
        kind: "Secret",
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        kind: "ConfigMap",
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        namespaced: true,
    },
];

const fn kelp_kind(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
) -> KindInfo {
    KindInfo {
        kind,
        group: kelp_api::GROUP,
        version: kelp_api::VERSION,
        plural,
        singular,
        short_names,
        namespaced: true,
    }
}

impl KindInfo {
    /// `group/version`, or `version` for core.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }

    /// For kube's dynamic API.
    pub(crate) fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.to_owned(),
            version: self.version.to_owned(),
            api_version: self.api_version(),
            kind: self.kind.to_owned(),
            plural: self.plural.to_owned(),
        }
    }

    /// How kubectl names objects of the kind in messages: `function.kubeless.io`, `secret`.
    pub(crate) fn display(&self) -> String {
        if self.group.is_empty() { self.singular.to_owned() } else { format!("{}.{}", self.singular, self.group) }
    }

    /// Decodes and validates an object of this kind.
    pub(crate) fn validate(&self, object: &Value) -> Result<(), BuildError> {
        match self.kind {
            "Function" => to_object::<Function>(self.kind, object).map(drop),
            "HTTPTrigger" => to_object::<HTTPTrigger>(self.kind, object).map(drop),
            "CronJobTrigger" => to_object::<CronJobTrigger>(self.kind, object).map(drop),
            "KafkaTrigger" => to_object::<KafkaTrigger>(self.kind, object).map(drop),
            "NATSTrigger" => to_object::<NATSTrigger>(self.kind, object).map(drop),
            "KinesisTrigger" => to_object::<KinesisTrigger>(self.kind, object).map(drop),
            "Namespace" => decode::<Namespace>(self.kind, object),
            "Secret" => decode::<Secret>(self.kind, object),
            _ => decode::<ConfigMap>(self.kind, object),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(kind: &str, object: &Value) -> Result<(), BuildError> {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    serde_json::from_value::<T>(object.clone()).map(drop).map_err(|cause| BuildError::Decode {
        kind: kind.to_owned(),
        name,
        cause,
    })
}

/// The kind of a manifest document (`apiVersion` and `kind`).
pub(crate) fn by_type(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind && k.api_version() == api_version)
}

/// The kind `kelp get <name>` means: plural, singular, short name, kind or `plural.group`,
/// case-insensitive.
pub(crate) fn by_name(name: &str) -> Option<&'static KindInfo> {
    let name = name.to_ascii_lowercase();
    KINDS.iter().find(|k| {
        k.plural == name
            || k.singular == name
            || k.short_names.contains(&name.as_str())
            || k.kind.to_ascii_lowercase() == name
            || (!k.group.is_empty()
                && (format!("{}.{}", k.plural, k.group) == name || format!("{}.{}", k.singular, k.group) == name))
    })
}

/// The names `kelp get` accepts, for error messages.
pub(crate) fn known_names() -> String {
    KINDS
        .iter()
        .map(|k| {
            let mut aliases = vec![k.singular];
            aliases.extend(k.short_names);
            format!("{} ({})", k.plural, aliases.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A column of `kelp get`'s table: from the CRD's `additionalPrinterColumns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PrinterColumn {
    /// Header (upper-cased).
    pub(crate) name: String,
    /// `string`, `integer`, `date`, ...
    pub(crate) type_: String,
    /// The JSONPath of the value.
    pub(crate) json_path: String,
    /// 0: always shown; more: only with `-o wide`.
    pub(crate) priority: i32,
}

/// The printer columns of a Kelp kind (none for core kinds: their table is NAME and AGE).
pub(crate) fn printer_columns(kind: &KindInfo) -> Vec<PrinterColumn> {
    let crds = kelp_api::crd::crds();
    let Some(crd) = crds.iter().find(|crd| crd.spec.names.kind == kind.kind) else {
        return vec![PrinterColumn {
            name: "AGE".to_owned(),
            type_: "date".to_owned(),
            json_path: ".metadata.creationTimestamp".to_owned(),
            priority: 0,
        }];
    };
    crd.spec
        .versions
        .iter()
        .flat_map(|v| v.additional_printer_columns.iter().flatten())
        .map(|c| PrinterColumn {
            name: c.name.to_uppercase(),
            type_: c.type_.clone(),
            json_path: c.json_path.clone(),
            priority: c.priority.unwrap_or(0),
        })
        .collect()
}

/// Evaluates the JSONPaths printer columns use: `.a.b`, `.a[0].b` and
/// `.a[?(@.key=="value")].b`.
pub(crate) fn json_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    let mut rest = path.strip_prefix('.').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            rest = after[end + 1..].strip_prefix('.').unwrap_or(&after[end + 1..]);
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (key, wanted) = filter.split_once("==")?;
                let wanted = wanted.trim().trim_matches(['"', '\'']);
                current = current
                    .as_array()?
                    .iter()
                    .find(|item| item.get(key.trim()).and_then(Value::as_str) == Some(wanted))?;
            } else {
                current = current.get(inner.parse::<usize>().ok()?)?;
            }
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        current = current.get(&rest[..end])?;
        rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kinds_by_name_and_type() {
        for name in ["functions", "function", "fn", "Function", "functions.kubeless.io"] {
            assert_eq!(by_name(name).unwrap().kind, "Function", "{name}");
        }
        assert_eq!(by_name("httptriggers").unwrap().kind, "HTTPTrigger");
        assert_eq!(by_name("cm").unwrap().kind, "ConfigMap");
        assert!(by_name("pods").is_none());
        assert_eq!(by_type("kubeless.io/v1beta1", "NATSTrigger").unwrap().plural, "natstriggers");
        assert_eq!(by_type("v1", "Secret").unwrap().display(), "secret");
        assert!(by_type("kubeless.io/v1", "Function").is_none());
        assert_eq!(by_type("kubeless.io/v1beta1", "Function").unwrap().display(), "function.kubeless.io");
        assert!(known_names().starts_with("functions (function, fn, fns), httptriggers (httptrigger)"));
    }

    #[test]
    fn printer_columns_come_from_the_crds() {
        let columns = printer_columns(by_name("fn").unwrap());
        let names: Vec<_> = columns.iter().map(|c| (c.name.as_str(), c.priority)).collect();
        assert_eq!(names, vec![("READY", 0), ("RUNTIME", 0), ("HANDLER", 1), ("REPLICAS", 1), ("AGE", 0)]);
        assert_eq!(printer_columns(by_name("secrets").unwrap())[0].name, "AGE");
    }

    #[test]
    fn json_paths() {
        let object = json!({"spec": {"runtime": "python3.8", "ports": [{"port": 80}]},
            "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(json_path(&object, ".spec.runtime"), Some(&json!("python3.8")));
        assert_eq!(json_path(&object, ".spec.ports[0].port"), Some(&json!(80)));
        assert_eq!(json_path(&object, ".status.conditions[?(@.type==\"Ready\")].status"), Some(&json!("True")));
        assert_eq!(json_path(&object, ".status.conditions[?(@.type==\"Gone\")].status"), None);
        assert_eq!(json_path(&object, ".spec.missing"), None);
    }
}
