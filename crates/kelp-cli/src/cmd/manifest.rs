//! `kelp apply -f`, `kelp delete -f` and `kelp get`: manifests in, objects out, as kubectl
//! does for Kelp's kinds and the core Namespace, Secret and ConfigMap.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use serde_json::Value;

use super::{api, create_json, delete_object, describe, get_json, not_found, patch_json};
use crate::kinds::{self, KindInfo, json_path, printer_columns};
use crate::output::{Format, emit, info, render};
use crate::table::Table;
use crate::target::{GlobalArgs, Target, connect};

/// `kelp apply`.
#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// Manifest files (YAML, several documents allowed, or JSON); `-` reads stdin
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<String>,
}

/// `kelp delete`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    /// Manifest files naming the objects to delete; `-` reads stdin
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<String>,
    /// Objects that do not exist are not an error
    #[arg(long = "ignore-not-found")]
    ignore_not_found: bool,
}

/// `-o` of `kelp get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GetFormat {
    /// Indented JSON
    Json,
    /// YAML
    Yaml,
    /// A table with every column
    Wide,
}

/// `kelp get`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// The kind: functions (function, fn), httptriggers, cronjobtriggers, kafkatriggers, natstriggers, kinesistriggers, ...
    kind: String,
    /// Only this object
    name: Option<String>,
    /// Output format: json, yaml or wide (default: a table)
    #[arg(short = 'o', long, value_enum)]
    output: Option<GetFormat>,
}

/// One object of a manifest.
#[derive(Clone, Debug)]
pub(crate) struct Document {
    /// Where it came from: `file.yaml (document 2)`.
    pub(crate) origin: String,
    /// Its kind.
    pub(crate) kind: &'static KindInfo,
    /// Its name.
    pub(crate) name: String,
    /// Its namespace (empty for cluster kinds).
    pub(crate) namespace: String,
    /// The object, with `metadata.namespace` filled in.
    pub(crate) object: Value,
}

/// Splits a manifest into objects: JSON (one object, or a `List`), or YAML documents
/// (`kind: List` expanded too). Empty documents are skipped.
pub(crate) fn parse_manifest(origin: &str, text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(text).with_context(|| format!("{origin}: not valid JSON"))? {
            Value::Array(items) => items,
            value => vec![value],
        }
    } else {
        serde_saphyr::from_multiple::<Value>(text)
            .map_err(|e| anyhow!("{origin}: not valid YAML: {}", one_line(&e.to_string())))?
    };
    let mut documents = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let place = format!("{origin} (document {})", i + 1);
        match value {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                for (j, item) in map.get("items").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    documents.push((format!("{place}, item {}", j + 1), item.clone()));
                }
            }
            Value::Object(_) => documents.push((place, value)),
            _ => bail!("{place}: not an object"),
        }
    }
    Ok(documents)
}

fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Checks one manifest object: a kind Kelp handles, a name, the namespace (`-n` must agree with
/// the object's, as with kubectl), then the kind's validation.
pub(crate) fn check_document(
    origin: &str,
    mut object: Value,
    namespace: &str,
    namespace_explicit: bool,
) -> anyhow::Result<Document> {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
    let kind_name = object.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    if api_version.is_empty() || kind_name.is_empty() {
        bail!("{origin}: apiVersion and kind are required");
    }
    let Some(kind) = kinds::by_type(&api_version, &kind_name) else {
        let served: Vec<String> = kinds::KINDS.iter().map(|k| format!("{} ({})", k.kind, k.api_version())).collect();
        bail!("{origin}: kind {kind_name} of {api_version} is not one Kelp handles: {}", served.join(", "));
    };
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() {
        bail!("{origin}: {kind_name} has no metadata.name");
    }
    let mut object_namespace = String::new();
    if kind.namespaced {
        let own = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !own.is_empty() && namespace_explicit && own != namespace {
            bail!(
                "{origin}: the namespace of {kind_name} {name:?} is {own:?}, not {namespace:?} as given with -n: \
                 pass -n {own} or remove metadata.namespace"
            );
        }
        object_namespace = if own.is_empty() { namespace.to_owned() } else { own };
        object["metadata"]["namespace"] = Value::String(object_namespace.clone());
    }
    kind.validate(&object).map_err(|e| anyhow!("{origin}: {e}"))?;
    Ok(Document { origin: origin.to_owned(), kind, name, namespace: object_namespace, object })
}

/// Reads and checks every file: nothing is sent unless every object is valid.
async fn read_documents(files: &[String], target: &Target) -> anyhow::Result<Vec<Document>> {
    let mut documents = Vec::new();
    for file in files {
        let (origin, text) = if file == "-" {
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut text)
                .await
                .context("reading stdin")?;
            ("<stdin>".to_owned(), text)
        } else {
            let bytes = crate::fetch::read_source(file).await?;
            let text = String::from_utf8(bytes).map_err(|_| anyhow!("{file}: not UTF-8 text"))?;
            (Path::new(file).display().to_string(), text)
        };
        for (place, object) in parse_manifest(&origin, &text)? {
            documents.push(check_document(&place, object, &target.namespace, target.namespace_explicit)?);
        }
    }
    if documents.is_empty() {
        bail!("no objects in {}", files.join(", "));
    }
    Ok(documents)
}

/// `kelp apply -f`.
pub(crate) async fn apply(global: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let documents = read_documents(&args.files, &target).await?;
    for document in documents {
        let display = format!("{}/{}", document.kind.display(), document.name);
        match get_json(&target, document.kind, &document.namespace, &document.name).await? {
            None => {
                create_json(&target, document.kind, &document.namespace, &document.object)
                    .await
                    .with_context(|| document.origin.clone())?;
                emit(format!("{display} created\n"))?;
            }
            Some(current) => {
                let mut patch = document.object.clone();
                if let Some(metadata) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("resourceVersion");
                    metadata.remove("uid");
                    metadata.remove("creationTimestamp");
                }
                let mut merged = current.clone();
                json_patch::merge(&mut merged, &patch);
                if merged == current {
                    emit(format!("{display} unchanged\n"))?;
                    continue;
                }
                patch_json(&target, document.kind, &document.namespace, &document.name, &current, &patch)
                    .await
                    .with_context(|| document.origin.clone())?;
                emit(format!("{display} configured\n"))?;
            }
        }
    }
    Ok(())
}

/// `kelp delete -f`: in reverse order, so objects go before the namespaces holding them (as a
/// file that creates a namespace first lists it first).
pub(crate) async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let documents = read_documents(&args.files, &target).await?;
    let mut last_error: Option<anyhow::Error> = None;
    for document in documents.into_iter().rev() {
        if delete_object(&target, document.kind, &document.namespace, &document.name).await? {
            emit(format!("{} {:?} deleted\n", document.kind.display(), document.name))?;
        } else if !args.ignore_not_found {
            if let Some(previous) = last_error.take() {
                info(format!("kelp: error: {previous}"));
            }
            last_error = Some(not_found(document.kind, &document.namespace, &document.name));
        }
    }
    match last_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// kubectl's short age: `45s`, `3m`, `5h`, `12d`, `2y`.
pub(crate) fn age(created: Timestamp, now: Timestamp) -> String {
    let seconds = (now.as_second() - created.as_second()).max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86400);
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 && seconds % 60 != 0 {
        format!("{minutes}m{}s", seconds % 60)
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 && minutes % 60 != 0 {
        format!("{hours}h{}m", minutes % 60)
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 && hours % 24 != 0 {
        format!("{days}d{}h", hours % 24)
    } else if days < 365 * 2 {
        format!("{days}d")
    } else {
        format!("{}y", days / 365)
    }
}

/// The table of `kelp get`: NAME and the kind's printer columns (`wide`: all of them).
pub(crate) fn get_table(kind: &KindInfo, objects: &[Value], wide: bool, now: Timestamp) -> Table {
    let columns: Vec<_> = printer_columns(kind).into_iter().filter(|c| wide || c.priority == 0).collect();
    let mut header = vec!["NAME".to_owned()];
    header.extend(columns.iter().map(|c| c.name.clone()));
    let mut table = Table::new(&header);
    for object in objects {
        let mut row = vec![object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned()];
        for column in &columns {
            let value = json_path(object, &column.json_path);
            row.push(match (value, column.type_.as_str()) {
                (Some(Value::String(s)), "date") => {
                    s.parse::<Timestamp>().map(|t| age(t, now)).unwrap_or_else(|_| s.clone())
                }
                (Some(Value::String(s)), _) => s.clone(),
                (Some(Value::Null) | None, _) => "<none>".to_owned(),
                (Some(other), _) => other.to_string(),
            });
        }
        table.row(row);
    }
    table
}

/// `kelp get`.
pub(crate) async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let Some(kind) = kinds::by_name(&args.kind) else {
        bail!("unknown kind {:?}: use one of {}", args.kind, kinds::known_names());
    };
    let target = connect(global).await?;
    let objects: Vec<Value> = match &args.name {
        Some(name) => vec![
            get_json(&target, kind, &target.namespace, name)
                .await?
                .ok_or_else(|| not_found(kind, &target.namespace, name))?,
        ],
        None => api(&target, kind, &target.namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| describe(e, &target))?
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect(),
    };
    let structured = |format: Format| -> anyhow::Result<String> {
        if args.name.is_some() {
            render(format, &objects[0])
        } else {
            render(format, &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}))
        }
    };
    match args.output {
        Some(GetFormat::Json) => emit(structured(Format::Json)?),
        Some(GetFormat::Yaml) => emit(structured(Format::Yaml)?),
        Some(GetFormat::Wide) => emit(get_table(kind, &objects, true, Timestamp::now()).render()),
        None if objects.is_empty() => {
            info(format!("No resources found in {} namespace.", target.namespace));
            Ok(())
        }
        None => emit(get_table(kind, &objects, false, Timestamp::now()).render()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MULTI: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: fns
---
apiVersion: kubeless.io/v1beta1
kind: Function
metadata:
  name: hello
spec:
  handler: hello.foo
  runtime: python3.8
  function: "def foo(event, context):\n    return 'hi'\n"
---
# only a comment
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data: {a: "1"}
- apiVersion: kubeless.io/v1beta1
  kind: CronJobTrigger
  metadata: {name: tick, namespace: other}
  spec: {function-name: hello, schedule: "@hourly"}
"#;

    #[test]
    fn manifests_split_into_documents() {
        let documents = parse_manifest("m.yaml", MULTI).unwrap();
        let origins: Vec<_> = documents.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(
            origins,
            vec![
                "m.yaml (document 1)",
                "m.yaml (document 2)",
                "m.yaml (document 3), item 1",
                "m.yaml (document 3), item 2"
            ]
        );
        let checked: Vec<Document> =
            documents.into_iter().map(|(o, v)| check_document(&o, v, "default", false).unwrap()).collect();
        assert_eq!(checked[0].namespace, "", "namespaces are cluster-scoped");
        assert_eq!(checked[1].object["metadata"]["namespace"], "default");
        assert_eq!(checked[3].namespace, "other");

        let json =
            parse_manifest("f.json", r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}"#).unwrap();
        assert_eq!(json.len(), 1);
        assert!(
            parse_manifest("bad.yaml", "a: [unclosed").unwrap_err().to_string().starts_with("bad.yaml: not valid YAML")
        );
        assert!(parse_manifest("s.yaml", "just a string").unwrap_err().to_string().contains("not an object"));
    }

    #[test]
    fn documents_are_checked_with_their_field_paths() {
        let check = |value: Value| check_document("m.yaml (document 1)", value, "default", true);
        let error = check(json!({"apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "hello"}, "spec": {"handler": "nodot", "runtime": "python3.8"}}))
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "m.yaml (document 1): invalid Function \"hello\": spec.handler: must be \"<module>.<function>\" (exactly one dot)"
        );
        let error = check(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("kind Deployment of apps/v1 is not one Kelp handles"), "{error}");
        assert!(
            check(json!({"kind": "Function"})).unwrap_err().to_string().contains("apiVersion and kind are required")
        );
        assert!(
            check(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}))
                .unwrap_err()
                .to_string()
                .contains("metadata.name")
        );
        let error =
            check(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}))
                .unwrap_err()
                .to_string();
        assert!(error.contains("pass -n x"), "{error}");
        let error = check(json!({"apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "f"}, "spec": {"timeout": 180}}))
        .unwrap_err()
        .to_string();
        assert!(error.contains("invalid Function \"f\""), "{error}");
    }

    #[test]
    fn ages_like_kubectl() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let at = |seconds: i64| age(t0, Timestamp::from_second(t0.as_second() + seconds).unwrap());
        assert_eq!(at(5), "5s");
        assert_eq!(at(119), "119s");
        assert_eq!(at(150), "2m30s");
        assert_eq!(at(600), "10m");
        assert_eq!(at(3 * 3600 + 120), "3h2m");
        assert_eq!(at(10 * 3600), "10h");
        assert_eq!(at(3 * 86400 + 3600), "3d1h");
        assert_eq!(at(30 * 86400), "30d");
        assert_eq!(at(800 * 86400), "2y");
    }

    #[test]
    fn get_tables_use_the_printer_columns() {
        let now: Timestamp = "2024-01-01T01:00:00Z".parse().unwrap();
        let functions = vec![json!({
            "metadata": {"name": "hello", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"runtime": "python3.8", "handler": "h.f"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "readyReplicas": 1}
        })];
        let kind = kinds::by_name("fn").unwrap();
        assert_eq!(
            get_table(kind, &functions, false, now).render(),
            "NAME    READY   RUNTIME     AGE\nhello   True    python3.8   60m\n"
        );
        assert_eq!(
            get_table(kind, &functions, true, now).render(),
            "NAME    READY   RUNTIME     HANDLER   REPLICAS   AGE\nhello   True    python3.8   h.f       1          60m\n"
        );
        let secrets = vec![json!({"metadata": {"name": "s"}})];
        assert_eq!(
            get_table(kinds::by_name("secret").unwrap(), &secrets, false, now).render(),
            "NAME   AGE\ns      <none>\n"
        );
    }
}
