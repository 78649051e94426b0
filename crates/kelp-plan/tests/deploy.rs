//! The install manifests: `deploy/kelp.yaml` and the generated parts of the Helm chart in
//! `deploy/helm/kelp/` must match what `kelp_plan::install` (and `kelp_api::crd`) generate;
//! `KELP_UPDATE_DEPLOY=1 cargo test -p kelp-plan --test deploy` rewrites them. The chart's
//! hand-written templates must declare the same objects.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use kelp_plan::images::{DEFAULT_IMAGE_REGISTRY, ImageRegistry};
use kelp_plan::install::{
    CONTROLLER_NAME, DEPLOY_FILE, InstallOptions, TRIGGERS_NAME, install_objects, render_yaml, yaml,
};
use kelp_plan::{Config, DEFAULT_DEPENDENCY_CACHE_PATH};
use serde_json::{Value, json};

const CHART: &str = "deploy/helm/kelp";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn objects() -> Vec<Value> {
    install_objects(&InstallOptions::default())
}

fn object<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The first container of the Deployment `name`.
fn container<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    &named(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
}

/// Every generated file: path from the repository root → content.
fn generated() -> Vec<(String, String)> {
    let objects = objects();
    let comment =
        "# Generated from crates/kelp-plan; KELP_UPDATE_DEPLOY=1 cargo test -p kelp-plan --test deploy regenerates.\n";
    let mut files = vec![
        (DEPLOY_FILE.to_owned(), render_yaml(&objects)),
        (format!("{CHART}/files/runtime-images.json"), Config::default_data()["runtime-images"].clone() + "\n"),
    ];
    // The roles, which the chart's templates copy: `clusterrole.yaml`, `triggers-role.yaml`, ...
    for (name, prefix) in [(CONTROLLER_NAME, ""), (TRIGGERS_NAME, "triggers-")] {
        let mut role = named(&objects, "Role", name).clone();
        role["metadata"].as_object_mut().unwrap().remove("namespace");
        let cluster_role = named(&objects, "ClusterRole", name).clone();
        files.push((
            format!("{CHART}/templates/{prefix}clusterrole.yaml"),
            format!("{comment}{}", yaml(&[cluster_role])),
        ));
        files.push((format!("{CHART}/templates/{prefix}role.yaml"), format!("{comment}{}", yaml(&[role]))));
    }
    for crd in kelp_api::crd::render_all() {
        let copy = format!(
            "# A copy of {}/{}, which KELP_UPDATE_DEPLOY=1 refreshes.\n",
            kelp_api::crd::CRD_DIR,
            crd.file_name
        );
        files.push((format!("{CHART}/crds/{}", crd.file_name), copy + &crd.yaml));
    }
    files
}

#[test]
fn deploy_is_up_to_date() {
    let update = std::env::var_os("KELP_UPDATE_DEPLOY").is_some_and(|v| v == "1");
    let files = generated();
    let mut stale = Vec::new();
    for (path, content) in &files {
        let full = repo().join(path);
        if fs::read_to_string(&full).ok().as_deref() == Some(content.as_str()) {
            continue;
        }
        if update {
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(&full, content).unwrap();
        } else {
            stale.push(path.clone());
        }
    }
    let crd_dir = repo().join(CHART).join("crds");
    for entry in fs::read_dir(&crd_dir).unwrap() {
        let path = format!("{CHART}/crds/{}", entry.unwrap().file_name().to_string_lossy());
        if !files.iter().any(|(p, _)| *p == path) {
            if update {
                fs::remove_file(repo().join(&path)).unwrap();
            } else {
                stale.push(format!("{path} (no longer generated)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}\nregenerate with: KELP_UPDATE_DEPLOY=1 cargo test -p kelp-plan --test deploy"
    );
}

/// `(kind, name)` of every object a chart template declares: its top-level `kind:` and the
/// `name:` of its `metadata:`.
fn chart_objects() -> BTreeSet<(String, String)> {
    let mut declared = BTreeSet::new();
    for entry in fs::read_dir(repo().join(CHART).join("templates")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for document in text.split("\n---\n") {
            let kind = document.lines().find_map(|l| l.strip_prefix("kind: "));
            let mut in_metadata = false;
            let mut name = None;
            for line in document.lines() {
                if !line.starts_with(' ') {
                    in_metadata = line == "metadata:";
                } else if in_metadata && name.is_none() {
                    name = line.strip_prefix("  name: ");
                }
            }
            let (kind, name) = (kind.unwrap(), name.unwrap_or_else(|| panic!("{}: no metadata.name", path.display())));
            declared.insert((kind.trim().to_owned(), name.trim().to_owned()));
        }
    }
    declared
}

#[test]
fn the_chart_declares_the_objects_of_deploy_kelp_yaml() {
    let expected: BTreeSet<(String, String)> = objects()
        .iter()
        // Helm creates the release namespace itself (`--create-namespace`).
        .filter(|o| o["kind"] != "Namespace")
        .map(|o| (o["kind"].as_str().unwrap().to_owned(), o["metadata"]["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(chart_objects(), expected);
}

#[test]
fn the_chart_defaults_are_the_install_defaults() {
    let read = |file: &str| -> Value {
        serde_saphyr::from_str(&fs::read_to_string(repo().join(CHART).join(file)).unwrap()).unwrap()
    };
    let (chart, values) = (read("Chart.yaml"), read("values.yaml"));
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    let options = InstallOptions::default();
    assert_eq!(values["image"]["registry"], DEFAULT_IMAGE_REGISTRY);
    assert_eq!(values["image"]["repository"], "", "<registry>/controller, as without kelp install --image");
    assert_eq!(values["replicas"], options.replicas);
    assert_eq!(values["triggers"]["replicas"], options.trigger_replicas);
    assert_eq!(values["triggers"]["kafkaBrokers"], "", "absent by default: kelp-triggers' defaults apply");
    assert_eq!(values["triggers"]["natsUrl"], "");
    assert_eq!(values["functionsNamespace"], options.functions_namespace);
    assert_eq!(values["provisionImage"], "", "<registry>/provision, as kelp install writes it");
    assert_eq!(values["dependencyCachePath"], DEFAULT_DEPENDENCY_CACHE_PATH);
    let config_map = fs::read_to_string(repo().join(CHART).join("templates/configmap.yaml")).unwrap();
    for key in Config::default_data().keys() {
        assert!(config_map.contains(&format!("\n  {key}: ")), "the chart's ConfigMap lacks {key}");
    }
    let objects = objects();
    assert_eq!(values["resources"], container(&objects, CONTROLLER_NAME)["resources"]);
    assert_eq!(values["triggers"]["resources"], container(&objects, TRIGGERS_NAME)["resources"]);
}

#[test]
fn no_role_has_a_wildcard() {
    let objects = objects();
    for role in objects.iter().filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role") {
        for rule in role["rules"].as_array().unwrap() {
            for key in ["apiGroups", "resources", "verbs"] {
                assert!(rule[key].as_array().unwrap().iter().all(|v| !v.as_str().unwrap().contains('*')), "{rule}");
            }
        }
    }
}

#[test]
fn the_controller_gets_least_privilege() {
    let objects = objects();
    let rules = named(&objects, "ClusterRole", CONTROLLER_NAME)["rules"].as_array().unwrap().clone();
    let verbs = |group: &str, resource: &str| -> BTreeSet<String> {
        let matches = |r: &&Value| {
            r["apiGroups"] == json!([group]) && r["resources"].as_array().unwrap().contains(&json!(resource))
        };
        rules
            .iter()
            .filter(matches)
            .flat_map(|r| r["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()))
            .collect()
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let manage = set(&["get", "list", "watch", "create", "update", "patch", "delete"]);
    for kind in ["functions", "httptriggers", "cronjobtriggers", "kafkatriggers", "natstriggers"] {
        // A deleted Function deletes its HTTP and cron triggers; nothing else is ever deleted.
        let mut expected = set(&["get", "list", "watch", "update", "patch"]);
        if matches!(kind, "httptriggers" | "cronjobtriggers") {
            expected.insert("delete".into());
        }
        assert_eq!(verbs("kubeless.io", kind), expected, "{kind}");
        for sub in ["status", "finalizers"] {
            assert_eq!(verbs("kubeless.io", &format!("{kind}/{sub}")), set(&["update", "patch"]), "{kind}/{sub}");
        }
    }
    for (group, resource) in [
        ("", "configmaps"),
        ("", "services"),
        ("apps", "deployments"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("networking.k8s.io", "ingresses"),
        ("batch", "cronjobs"),
    ] {
        assert_eq!(verbs(group, resource), manage, "{resource}");
    }
    assert_eq!(verbs("", "pods"), set(&["get", "list", "watch"]));
    assert_eq!(verbs("", "secrets"), set(&[]));
    for group in ["", "events.k8s.io"] {
        assert_eq!(verbs(group, "events"), set(&["create", "patch"]));
    }
    let role = named(&objects, "Role", CONTROLLER_NAME);
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}])
    );
    assert_eq!(named(&objects, "RoleBinding", CONTROLLER_NAME)["metadata"]["namespace"], "kubeless");
}

#[test]
fn the_trigger_consumers_get_least_privilege() {
    let objects = objects();
    assert_eq!(
        named(&objects, "ClusterRole", TRIGGERS_NAME)["rules"],
        json!([
            {"apiGroups": ["kubeless.io"], "resources": ["functions", "kafkatriggers", "natstriggers", "kinesistriggers"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["kubeless.io"], "resources": ["kafkatriggers", "natstriggers", "kinesistriggers"], "verbs": ["update", "patch"]},
            {"apiGroups": ["kubeless.io"], "resources": ["kafkatriggers/status", "natstriggers/status", "kinesistriggers/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]},
        ])
    );
    assert_eq!(
        named(&objects, "Role", TRIGGERS_NAME)["rules"],
        json!([
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeless-config"], "verbs": ["get"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["kelp-triggers"], "verbs": ["get", "update"]},
        ])
    );
    let subject = json!([{"kind": "ServiceAccount", "name": "kelp-triggers", "namespace": "kubeless"}]);
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let binding = named(&objects, kind, TRIGGERS_NAME);
        assert_eq!(binding["subjects"], subject, "{kind}");
        assert_eq!(binding["roleRef"]["name"], TRIGGERS_NAME, "{kind}");
    }
    assert_eq!(named(&objects, "ServiceAccount", TRIGGERS_NAME)["metadata"]["namespace"], "kubeless");
}

#[test]
fn the_trigger_consumers_run_the_controller_image_locked_down_with_optional_broker_secrets() {
    let options = InstallOptions { trigger_replicas: 3, ..InstallOptions::default() };
    let objects = install_objects(&options);
    let deployment = named(&objects, "Deployment", TRIGGERS_NAME);
    assert_eq!(deployment["metadata"]["labels"], json!({"kubeless": "triggers"}));
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], json!({"kubeless": "triggers"}));
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(named(&objects, "Deployment", CONTROLLER_NAME)["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], TRIGGERS_NAME);
    let (triggers, controller) = (container(&objects, TRIGGERS_NAME), container(&objects, CONTROLLER_NAME));
    assert_eq!(triggers["image"], controller["image"]);
    assert_eq!(triggers["command"], json!(["kelp-triggers"]));
    assert_eq!(triggers["args"], json!(["--leader-elect=true", "--config-namespace=$(KUBELESS_NAMESPACE)"]));
    assert!(controller.get("command").is_none() && controller.get("args").is_none(), "the image's entrypoint");
    for key in ["securityContext", "resources", "ports", "livenessProbe", "readinessProbe"] {
        assert_eq!(triggers[key], controller[key], "{key}");
    }
    let env = triggers["env"].as_array().unwrap();
    let field =
        |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone());
    assert_eq!(field("KUBELESS_NAMESPACE"), Some(json!("metadata.namespace")), "what $(KUBELESS_NAMESPACE) expands to");
    assert_eq!(field("POD_NAME"), Some(json!("metadata.name")));
    assert!(env.contains(&json!({"name": "KELP_LISTEN", "value": "0.0.0.0:8080"})));
    assert!(env.iter().all(|e| !e["name"].as_str().unwrap().starts_with("KAFKA_")), "credentials come from the Secret");
    assert_eq!(triggers["envFrom"], json!([{"secretRef": {"name": "kelp-triggers-brokers", "optional": true}}]));
    assert_eq!(
        triggers["volumeMounts"],
        json!([{"name": "kafka-tls", "mountPath": "/etc/kelp/kafka-tls", "readOnly": true}])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "kafka-tls", "secret": {"secretName": "kelp-triggers-tls", "optional": true}}])
    );
}

#[test]
fn the_controller_runs_locked_down_with_kubeless_labels_and_config() {
    let objects = objects();
    let deployment = named(&objects, "Deployment", CONTROLLER_NAME);
    assert_eq!(deployment["metadata"]["labels"], json!({"kubeless": "controller"}));
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "kelp-controller");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], format!("kelp/controller:{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
    assert_eq!(container["env"][1], json!({"name": "KUBELESS_CONFIG", "value": "kubeless-config"}));
    let security = &container["securityContext"];
    assert_eq!((&security["runAsNonRoot"], &security["readOnlyRootFilesystem"]), (&json!(true), &json!(true)));
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    let config = object(&objects, "ConfigMap");
    let data: std::collections::BTreeMap<String, String> = serde_json::from_value(config["data"].clone()).unwrap();
    assert_eq!(Config::from_data(&data).unwrap(), Config::default());
}

/// Every string of `value` that names one of Kelp's images (`image` fields, and the images of
/// `runtime-images`, `provision-image`), with where it is.
fn images(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let at = format!("{at}/{key}");
                match (key.as_str(), item) {
                    ("image" | "provision-image", Value::String(image)) => found.push((at, image.clone())),
                    ("runtime-images", Value::String(json)) => images(&serde_json::from_str(json).unwrap(), &at, found),
                    _ => images(item, &at, found),
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, item)| images(item, &format!("{at}/{i}"), found)),
        _ => {}
    }
}

#[test]
fn the_image_registry_names_every_kelp_image_and_image_still_wins_for_the_controller() {
    let version = env!("CARGO_PKG_VERSION");
    let registry = ImageRegistry::parse("localhost:5000/kelp").unwrap();
    let options = InstallOptions { image_registry: registry.clone(), ..InstallOptions::default() };
    let mut found = Vec::new();
    images(&Value::Array(install_objects(&options)), "", &mut found);
    let names: BTreeSet<&str> = found.iter().map(|(_, image)| image.as_str()).collect();
    let runtimes = ["runtime-python", "runtime-nodejs", "runtime-go", "runtime-java", "runtime-rust"];
    let expected: BTreeSet<String> = ["controller", "provision"]
        .iter()
        .chain(&runtimes)
        .map(|name| format!("localhost:5000/kelp/{name}:{version}"))
        .collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect(), "{found:#?}");
    // 2 Deployments, 32 runtime versions with 2 phases each, provision-image.
    assert_eq!(found.len(), 2 + 32 * 2 + 1);

    let default = install_objects(&InstallOptions::default());
    let mut found = Vec::new();
    images(&Value::Array(default.clone()), "", &mut found);
    assert!(found.iter().all(|(_, image)| image.starts_with("kelp/") && image.ends_with(&format!(":{version}"))));
    assert_eq!(container(&default, CONTROLLER_NAME)["image"], format!("kelp/controller:{version}"));

    let image = Some("example.invalid/own/controller:dev".to_owned());
    let objects = install_objects(&InstallOptions { image, ..options });
    for name in [CONTROLLER_NAME, TRIGGERS_NAME] {
        assert_eq!(container(&objects, name)["image"], "example.invalid/own/controller:dev");
    }
    let data = &object(&objects, "ConfigMap")["data"];
    assert_eq!(data["provision-image"], format!("localhost:5000/kelp/provision:{version}"));
    assert!(data["runtime-images"].as_str().unwrap().contains(&registry.runtime("nodejs")));
}

#[test]
fn functions_and_cronjobs_planned_with_the_installed_config_run_only_images_of_the_registry() {
    let version = env!("CARGO_PKG_VERSION");
    let options = InstallOptions {
        image_registry: ImageRegistry::parse("registry.example.com/team/kelp").unwrap(),
        ..InstallOptions::default()
    };
    let objects = install_objects(&options);
    let data: std::collections::BTreeMap<String, String> =
        serde_json::from_value(object(&objects, "ConfigMap")["data"].clone()).unwrap();
    let config = Config::from_data(&data).unwrap();
    let function: kelp_api::Function = serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
        "metadata": {"name": "hello", "namespace": "default", "uid": "uid-hello"},
        "spec": {"handler": "handler.hello", "runtime": "nodejs20", "function": "module.exports = {}",
                 "deps": "{\"dependencies\": {}}"},
    }))
    .unwrap();
    let trigger: kelp_api::CronJobTrigger = serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "CronJobTrigger",
        "metadata": {"name": "hello", "namespace": "default", "uid": "uid-trigger"},
        "spec": {"function-name": "hello", "schedule": "* * * * *"},
    }))
    .unwrap();
    let deployment =
        serde_json::to_value(kelp_plan::function_children(&function, &config).unwrap().deployment).unwrap();
    let cronjob =
        serde_json::to_value(kelp_plan::cronjob_trigger_cronjob(&trigger, &function, &config).unwrap()).unwrap();
    let mut found = Vec::new();
    images(&deployment, "deployment", &mut found);
    images(&cronjob, "cronjob", &mut found);
    let names: BTreeSet<&str> = found.iter().map(|(_, image)| image.as_str()).collect();
    let expected = [
        format!("registry.example.com/team/kelp/provision:{version}"),
        format!("registry.example.com/team/kelp/runtime-nodejs:{version}"),
    ];
    assert_eq!(names, expected.iter().map(String::as_str).collect(), "{found:#?}");
    let init: Vec<&str> = deployment["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["image"] == expected[0])
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(init.contains(&"prepare") && init.contains(&"cache-owner"), "{init:?}");
}

/// A file of the chart.
fn chart_file(path: &str) -> String {
    fs::read_to_string(repo().join(CHART).join(path)).unwrap()
}

/// Registries as `kelp install --image-registry` takes or refuses them.
const REGISTRIES: [&str; 27] = [
    "kelp",
    "localhost",
    "localhost:5000",
    "localhost:5000/kelp",
    "127.0.0.1:5000/kelp",
    "registry.example.com/team/kelp",
    "registry-1.example.com:443/a.b/c_d/e__f/g--h",
    "my_team/kelp",
    "",
    "localhost:5000/kelp/",
    "localhost:5000/Kelp",
    "Registry.example.com/kelp",
    "local host/kelp",
    "kelp\n",
    "localhost:5000/kelp:dev",
    "kelp:dev",
    "localhost:5000/kelp@sha256:00",
    "[::1]:5000/kelp",
    "/kelp",
    "registry.example.com//kelp",
    "-registry.example.com/kelp",
    "registry..example/kelp",
    "my_team.example.com/kelp",
    "team/-kelp",
    "team/ke...lp",
    "team/ke___lp",
    "team/ké",
];

#[test]
fn the_chart_refuses_the_registries_kelp_install_refuses() {
    // The chart's check is a regular expression (Go's syntax, which the regex crate shares) and
    // a length; the port's range (1 to 65535) is checked by kelp install only.
    let helpers = chart_file("templates/_helpers.tpl");
    let pattern = helpers.split("regexMatch `").nth(1).and_then(|rest| rest.split('`').next()).unwrap();
    let regex = regex::Regex::new(pattern).unwrap();
    assert!(helpers.contains("(gt (len $registry) 200)"), "the chart bounds the length as kelp install does");
    let long = "a".repeat(201);
    for registry in REGISTRIES.iter().copied().chain([long.as_str(), &long[1..]]) {
        let chart_takes = regex.is_match(registry) && registry.len() <= 200;
        assert_eq!(chart_takes, ImageRegistry::parse(registry).is_ok(), "{registry:?}");
    }
    assert!(helpers.contains("fail (printf \"image.registry %q: "), "the error names the value");
}

#[test]
fn the_chart_names_the_images_of_image_registry_as_kelp_install_does() {
    // The chart's templates, applied by hand for one registry (the same string operations).
    let registry = "localhost:5000/kelp";
    let version = env!("CARGO_PKG_VERSION");
    let options =
        InstallOptions { image_registry: ImageRegistry::parse(registry).unwrap(), ..InstallOptions::default() };
    let objects = install_objects(&options);
    let data = &object(&objects, "ConfigMap")["data"];

    let config_map = chart_file("templates/configmap.yaml");
    assert!(
        config_map.contains(
            r#"{{ .Files.Get "files/runtime-images.json" | replace `"image": "kelp/` (printf `"image": "%s/` (include "kelp.registry" .)) | indent 4 }}"#
        ),
        "{config_map}"
    );
    let runtime_images =
        chart_file("files/runtime-images.json").replace(r#""image": "kelp/"#, &format!(r#""image": "{registry}/"#));
    assert_eq!(runtime_images, format!("{}\n", data["runtime-images"].as_str().unwrap()));

    let provision = r#"provision-image: {{ .Values.provisionImage | default (printf "%s/provision:%s" (include "kelp.registry" .) .Chart.AppVersion) | quote }}"#;
    assert!(config_map.contains(provision), "{config_map}");
    assert_eq!(data["provision-image"], format!("{registry}/provision:{version}"));

    let helpers = chart_file("templates/_helpers.tpl");
    let image = r#"image: "{{ .Values.image.repository | default (printf "%s/controller" (include "kelp.registry" .)) }}:{{ .Values.image.tag | default .Chart.AppVersion }}""#;
    assert!(helpers.contains(image), "{helpers}");
    for name in [CONTROLLER_NAME, TRIGGERS_NAME] {
        assert_eq!(container(&objects, name)["image"], format!("{registry}/controller:{version}"));
        let template =
            chart_file(&format!("templates/{}deployment.yaml", if name == TRIGGERS_NAME { "triggers-" } else { "" }));
        assert!(template.contains(r#"{{- include "kelp.image" . | nindent 8 }}"#), "{name}");
    }
}
