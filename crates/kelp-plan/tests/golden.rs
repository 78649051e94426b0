//! Golden tests: every Kubeless-shaped object of `crates/kelp-api/tests/fixtures/` and every
//! example of `examples/manifests/` planned, and the result compared with the committed YAML of
//! `crates/kelp-plan/tests/golden/<source>-<file>.yaml` (an `error:` document when planning
//! fails). `KELP_UPDATE_GOLDEN=1 cargo test -p kelp-plan --test golden` rewrites them.
//!
//! Objects without a `metadata.uid` get `uid-<name>`, as the API server would give them one.
//! Triggers are planned against the Function of their `function-name` in the same source (a
//! minimal one when there is none). The configuration is Kelp's default plus a Kubeless-style
//! Go runtime (compilation phase, phase environment and Secrets, image pull secrets), so the
//! shapes of Kubeless's own runtime images are covered too. `installation-secrets-*.yaml` plans
//! an example with dependencies once more, its installation phase given a Secret (the `fetch`
//! and `install` split). `plugin-runtime-*.yaml` plans `tests/plugin-runtimes/` with a runtime
//! added through a `runtime-images` entry alone (Ruby, its runtime image only).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use kelp_api::{CronJobTrigger, Function, HTTPTrigger};
use kelp_plan::{Config, cronjob_trigger_cronjob, function_children, http_trigger_ingress};
use serde_json::Value;

/// A runtime as Kubeless's `runtime-images` described its Go runtime.
const GO_RUNTIME: &str = r#"{
  "ID": "go", "depName": "go.mod", "fileNameSuffix": ".go",
  "versions": [{
    "name": "go1.14", "version": "1.14", "imagePullSecrets": [{"imageSecret": "kubeless-images"}],
    "images": [
      {"phase": "compilation", "image": "kubeless/go-init:1.14", "command": "/compile-function.sh",
       "env": {"GOCACHE": "$(KUBELESS_INSTALL_VOLUME)/.cache"}, "secrets": [{"name": "go-proxy-credentials"}]},
      {"phase": "runtime", "image": "kubeless/go:1.14", "env": {"GOPATH": "$(KUBELESS_INSTALL_VOLUME)"}}
    ]
  }]
}"#;

/// A plugin runtime added on a cluster through `runtime-images` alone: its ID, version and
/// runtime image (Kelp's Ruby image: `kelp-runtime` and `runtimes/ruby`, images/ruby/Dockerfile).
const RUBY_RUNTIME: &str = r#"{
  "ID": "ruby", "depName": "Gemfile", "fileNameSuffix": ".rb",
  "versions": [{"name": "ruby26", "version": "2.6", "images": [{"phase": "runtime", "image": "kelp/runtime-ruby:0.1.0"}]}]
}"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config() -> Config {
    let mut data = Config::default_data();
    let mut runtimes: Vec<Value> = serde_json::from_str(&data["runtime-images"]).unwrap();
    // First, so that `go1.14` is Kubeless's runtime rather than Kelp's.
    runtimes.insert(0, serde_json::from_str(GO_RUNTIME).unwrap());
    data.insert("runtime-images".into(), serde_json::to_string(&runtimes).unwrap());
    Config::from_data(&data).unwrap()
}

/// Kelp's default configuration, every `installation` phase given the Secret `pip-index`.
fn installation_secrets_config() -> Config {
    let mut data = Config::default_data();
    let mut runtimes: Vec<Value> = serde_json::from_str(&data["runtime-images"]).unwrap();
    for version in runtimes.iter_mut().flat_map(|r| r["versions"].as_array_mut().unwrap()) {
        for image in version["images"].as_array_mut().unwrap().iter_mut().filter(|i| i["phase"] == "installation") {
            image["secrets"] = serde_json::json!([{"name": "pip-index"}]);
        }
    }
    data.insert("runtime-images".into(), serde_json::to_string(&runtimes).unwrap());
    Config::from_data(&data).unwrap()
}

/// Kelp's default configuration with [`RUBY_RUNTIME`] added.
fn plugin_runtime_config() -> Config {
    let mut data = Config::default_data();
    let mut runtimes: Vec<Value> = serde_json::from_str(&data["runtime-images"]).unwrap();
    runtimes.push(serde_json::from_str(RUBY_RUNTIME).unwrap());
    data.insert("runtime-images".into(), serde_json::to_string(&runtimes).unwrap());
    Config::from_data(&data).unwrap()
}

/// The objects of one YAML file, with a uid each.
fn read_objects(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    let mut objects: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    for object in &mut objects {
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let metadata = object["metadata"].as_object_mut().unwrap();
        metadata.entry("uid").or_insert_with(|| format!("uid-{name}").into());
    }
    objects
}

/// Plans one object: its children, ingress or CronJob, or the error.
fn plan(object: &Value, functions: &[Function], config: &Config) -> Vec<Value> {
    let function_of = |name: &str, namespace: &str| {
        functions
            .iter()
            .find(|f| f.metadata.name.as_deref() == Some(name) && f.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .unwrap_or_else(|| {
                serde_json::from_value(serde_json::json!({
                    "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
                    "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
                    "spec": {"handler": "handler.main", "runtime": "python3.8", "function": "def main(e, c): pass"},
                }))
                .unwrap()
            })
    };
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
    let result = match object["kind"].as_str().unwrap() {
        "Function" => {
            let function: Function = serde_json::from_value(object.clone()).unwrap();
            function_children(&function, config).map(|children| {
                let mut objects =
                    vec![to_value(&children.config_map), to_value(&children.deployment), to_value(&children.service)];
                objects.extend(children.hpa.as_ref().map(to_value));
                objects
            })
        }
        "HTTPTrigger" => {
            let trigger: HTTPTrigger = serde_json::from_value(object.clone()).unwrap();
            let function = function_of(trigger.spec.function_name.as_deref().unwrap(), namespace);
            let service = function_children(&function, config).unwrap().service;
            http_trigger_ingress(&trigger, &service, config).map(|ingress| vec![to_value(&ingress)])
        }
        "CronJobTrigger" => {
            let trigger: CronJobTrigger = serde_json::from_value(object.clone()).unwrap();
            let function = function_of(trigger.spec.function_name.as_deref().unwrap(), namespace);
            cronjob_trigger_cronjob(&trigger, &function, config).map(|cronjob| vec![to_value(&cronjob)])
        }
        _ => return Vec::new(),
    };
    result.unwrap_or_else(|e| vec![serde_json::json!({"error": e.to_string()})])
}

fn to_value(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).unwrap()
}

/// Every golden file: name → (planned objects, content).
fn render_all() -> BTreeMap<String, (Vec<Value>, String)> {
    let (config, secrets_config, plugin_config) = (config(), installation_secrets_config(), plugin_runtime_config());
    // Kelp's own runtimes: the examples run on what `kelp install` configures.
    let kelp_config = Config::default();
    let examples = repo().join("examples/manifests");
    let sources = [
        ("kubeless", repo().join("crates/kelp-api/tests/fixtures"), &config, None),
        ("example", examples.clone(), &kelp_config, None),
        ("installation-secrets", examples, &secrets_config, Some("titles-python-deps.yaml")),
        ("plugin-runtime", repo().join("crates/kelp-plan/tests/plugin-runtimes"), &plugin_config, None),
    ];
    let mut files = BTreeMap::new();
    for (source, dir, config, only) in sources {
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
        paths.retain(|p| only.is_none_or(|only| p.ends_with(only)));
        paths.sort();
        let objects: Vec<(PathBuf, Vec<Value>)> = paths.into_iter().map(|p| (p.clone(), read_objects(&p))).collect();
        let functions: Vec<Function> = objects
            .iter()
            .flat_map(|(_, objects)| objects)
            .filter(|o| o["kind"] == "Function")
            .map(|o| serde_json::from_value(o.clone()).unwrap())
            .collect();
        for (path, objects) in &objects {
            let planned: Vec<Value> = objects.iter().flat_map(|o| plan(o, &functions, config)).collect();
            if planned.is_empty() {
                continue;
            }
            let name = format!("{source}-{}", path.file_name().unwrap().to_string_lossy());
            let header = format!(
                "# Planned from {} by crates/kelp-plan/tests/golden.rs; KELP_UPDATE_GOLDEN=1 regenerates.\n",
                path.strip_prefix(repo()).unwrap().display()
            );
            let content = header + &kelp_plan::install::yaml(&planned);
            files.insert(name, (planned, content));
        }
    }
    files
}

#[test]
fn planned_objects_match_the_golden_files() {
    let dir = golden_dir();
    let update = std::env::var_os("KELP_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let files = render_all();
    let mut stale = Vec::new();
    for (name, (_, content)) in &files {
        let path = dir.join(name);
        if fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            continue;
        }
        if update {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, content).unwrap();
        } else {
            stale.push(name.clone());
        }
    }
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !files.contains_key(&name) {
            if update {
                fs::remove_file(dir.join(&name)).unwrap();
            } else {
                stale.push(format!("{name} (no longer planned)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "planned objects differ from tests/golden: {stale:?}\n\
         look at the difference with: KELP_UPDATE_GOLDEN=1 cargo test -p kelp-plan --test golden && git diff"
    );
}

#[test]
fn golden_files_read_back_as_the_planned_objects() {
    for (name, (planned, content)) in render_all() {
        let read: Vec<Value> = serde_saphyr::from_multiple(&content).unwrap();
        assert_eq!(read, planned, "{name}");
    }
}
