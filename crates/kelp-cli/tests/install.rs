//! `kelp install` and `kelp uninstall`: the real `kelp` binary installs the real
//! `deploy/kelp.yaml` and CRDs into a real control plane (`kelp-testenv`: kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok, whose pods become Ready without running
//! anything), checked with the real kubectl.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kelp_testenv::ControlPlane;
use serde_json::Value;

/// The objects of `deploy/kelp.yaml`.
fn manifest() -> Vec<Value> {
    let path = kelp_testkit::repo_root().join("deploy/kelp.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// The manifest's objects of `kind`.
fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap()
}

/// `kelp --kubeconfig <plane's> <args>`.
fn kelp(plane: &ControlPlane, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kelp")).arg("--kubeconfig").arg(plane.kubeconfig()).args(args).output().unwrap()
}

/// `kelp <args>` with a kubeconfig that does not exist: for what needs no cluster.
fn kelp_offline(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("no-kubeconfig");
    Command::new(env!("CARGO_BIN_EXE_kelp")).arg("--kubeconfig").arg(kubeconfig).args(args).output().unwrap()
}

/// The images of the first container of every Deployment, and of `runtime-images` and
/// `provision-image` in `kubeless-config`, of `objects`.
fn kelp_images(objects: &[Value]) -> (Vec<String>, Vec<String>, String) {
    let text = |value: &Value| value.as_str().unwrap().to_owned();
    let deployments = of_kind(objects, "Deployment");
    let controller =
        deployments.iter().map(|d| text(&d["spec"]["template"]["spec"]["containers"][0]["image"])).collect();
    let config = of_kind(objects, "ConfigMap").into_iter().find(|c| name(c) == "kubeless-config").unwrap();
    let runtimes: Value = serde_json::from_str(config["data"]["runtime-images"].as_str().unwrap()).unwrap();
    let mut runtime_images: Vec<String> = runtimes
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["versions"].as_array().unwrap())
        .flat_map(|v| v["images"].as_array().unwrap())
        .map(|i| text(&i["image"]))
        .collect();
    runtime_images.sort();
    runtime_images.dedup();
    (controller, runtime_images, text(&config["data"]["provision-image"]))
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> Output {
    plane.kubectl().args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn all(output: &Output) -> String {
    format!("{}{}", stdout(output), String::from_utf8_lossy(&output.stderr))
}

/// `Kind.version.group` (or `Kind` for core kinds), which kubectl resolves without ambiguity.
fn resource(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap();
    match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((group, version)) => format!("{kind}.{version}.{group}"),
        None => kind.to_owned(),
    }
}

/// How kubectl (and kelp) name an object: `deployment.apps/kelp-controller`.
fn display(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap().to_lowercase();
    match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((group, _)) => format!("{kind}.{group}/{}", name(object)),
        None => format!("{kind}/{}", name(object)),
    }
}

/// `kubectl get` of the manifest's `object` as installed in `namespace`, as JSON; `None` when it
/// does not exist.
fn get(plane: &ControlPlane, object: &Value, namespace: &str) -> Option<Value> {
    let output = kubectl(plane, &["get", &resource(object), name(object), "-n", namespace, "-o", "json"]);
    if output.status.success() {
        return Some(serde_json::from_slice(&output.stdout).unwrap());
    }
    assert!(all(&output).contains("NotFound"), "{}", all(&output));
    None
}

/// Waits (60 s at most) until the namespace is gone, with everything in it.
fn wait_namespace_gone(plane: &ControlPlane, namespace: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while kubectl(plane, &["get", "namespace", namespace]).status.success() {
        assert!(Instant::now() < deadline, "namespace {namespace} still there after 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether the ServiceAccount `account` of `namespace` may do `request` (`kubectl auth can-i`'s
/// arguments, split at spaces; `NS` stands for `namespace`).
fn can(plane: &ControlPlane, namespace: &str, account: &str, request: &str) -> bool {
    let who = format!("system:serviceaccount:{namespace}:{account}");
    let mut args = vec!["auth", "can-i", "--as", &who];
    args.extend(request.split(' ').map(|arg| if arg == "NS" { namespace } else { arg }));
    let output = kubectl(plane, &args);
    match stdout(&output).trim() {
        "yes" => true,
        answer if answer.starts_with("no") => false,
        _ => panic!("kubectl {args:?}: {}", all(&output)),
    }
}

/// `kelp-triggers` may do what it needs and nothing else: read Functions and the Kafka, NATS and
/// Kinesis triggers, update them (finalizers) and patch their status, read `kubeless-config`,
/// hold its own Lease, get (never list) the Secret a Kinesis trigger names, and get, create and
/// patch the ConfigMaps of Kinesis checkpoints.
fn assert_trigger_consumers_rights(plane: &ControlPlane, namespace: &str) {
    let allowed = [
        "get functions.kubeless.io -A",
        "list functions.kubeless.io -A",
        "watch functions.kubeless.io -A",
        "list kafkatriggers.kubeless.io -A",
        "watch natstriggers.kubeless.io -A",
        "patch kafkatriggers.kubeless.io -A",
        "update natstriggers.kubeless.io -A",
        "patch kafkatriggers.kubeless.io --subresource=status -A",
        "patch natstriggers.kubeless.io --subresource=status -A",
        "get configmaps/kubeless-config -n NS",
        "create leases.coordination.k8s.io -n NS",
        "get leases.coordination.k8s.io/kelp-triggers -n NS",
        "update leases.coordination.k8s.io/kelp-triggers -n NS",
        "watch kinesistriggers.kubeless.io -A",
        "patch kinesistriggers.kubeless.io --subresource=status -A",
        "get secrets -n default",
        "get configmaps/kelp-kinesis-orders -n default",
        "create configmaps -n default",
        "patch configmaps -n default",
    ];
    for request in allowed {
        assert!(can(plane, namespace, "kelp-triggers", request), "kelp-triggers cannot {request}");
    }
    let denied = [
        "list secrets -A",
        "watch secrets -n default",
        "update secrets -n default",
        "delete configmaps -n default",
        "create deployments.apps -n default",
        "get services -n default",
        "list pods -A",
        "create events -n default",
        "update functions.kubeless.io -A",
        "delete kafkatriggers.kubeless.io -A",
        "list httptriggers.kubeless.io -A",
        "update kafkatriggers.kubeless.io --subresource=status -A",
        "list configmaps -n NS",
        "update leases.coordination.k8s.io/kelp-controller -n NS",
        "delete leases.coordination.k8s.io/kelp-triggers -n NS",
    ];
    for request in denied {
        assert!(!can(plane, namespace, "kelp-triggers", request), "kelp-triggers can {request}");
    }
}

#[test]
fn install_creates_everything_again_changes_nothing_and_uninstall_keeps_the_crds() {
    let plane = ControlPlane::shared();
    let objects = manifest();
    let namespace = name(of_kind(&objects, "Namespace")[0]).to_owned();

    let output = kelp(plane, &["install", "--wait=false"]);
    assert!(output.status.success(), "{}", all(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 6 + objects.len(), "one line per CRD and object:\n{}", all(&output));
    for object in &objects {
        let line = format!("{} created", display(object));
        assert!(lines.contains(&line), "no {line:?} in\n{}", all(&output));
        let got = get(plane, object, &namespace)
            .unwrap_or_else(|| panic!("{} {} not created", resource(object), name(object)));
        if object["metadata"].get("namespace").is_some() {
            assert_eq!(got["metadata"]["namespace"], namespace.as_str());
        }
    }

    // kubeless-config keeps Kubeless's JSON runtime-images, which Kubeless's tools parse.
    let config = kubectl(plane, &["get", "configmap", "kubeless-config", "-n", &namespace, "-o", "json"]);
    assert!(config.status.success(), "{}", all(&config));
    let config: Value = serde_json::from_slice(&config.stdout).unwrap();
    let images: Value = serde_json::from_str(config["data"]["runtime-images"].as_str().unwrap()).unwrap();
    assert!(images.is_array(), "runtime-images is not a JSON array: {images}");

    // The controller's rights are spelled out: no wildcard anywhere.
    for role in of_kind(&objects, "ClusterRole").into_iter().chain(of_kind(&objects, "Role")) {
        let installed = get(plane, role, &namespace).unwrap();
        for rule in installed["rules"].as_array().unwrap() {
            for key in ["verbs", "resources", "apiGroups"] {
                let values = rule[key].as_array().map(Vec::as_slice).unwrap_or_default();
                assert!(!values.iter().any(|v| v == "*"), "{} {}: {key} has *: {rule}", role["kind"], name(role));
            }
        }
    }

    assert_trigger_consumers_rights(plane, &namespace);

    // --kafka-brokers writes its key into kubeless-config; an install without it removes it.
    let brokers = |plane: &ControlPlane| {
        let config = kubectl(plane, &["get", "configmap", "kubeless-config", "-n", &namespace, "-o", "json"]);
        let config: Value = serde_json::from_slice(&config.stdout).unwrap();
        config["data"].get("kafka-brokers").cloned()
    };
    let output = kelp(plane, &["install", "--wait=false", "--kafka-brokers", "kafka-0.kafka:9092"]);
    assert!(output.status.success(), "{}", all(&output));
    assert!(stdout(&output).contains("configmap/kubeless-config configured"), "{}", all(&output));
    assert_eq!(brokers(plane), Some("kafka-0.kafka:9092".into()));
    let output = kelp(plane, &["install", "--wait=false"]);
    assert!(output.status.success(), "{}", all(&output));
    assert_eq!(brokers(plane), None);

    // --image-registry names every Kelp image there (both Deployments roll); an install without
    // it rewrites what the install wrote: Kelp's own names again, as deploy/kelp.yaml has them.
    let installed_images = |plane: &ControlPlane| {
        let output = kubectl(plane, &["get", "deployments.apps,configmaps", "-n", &namespace, "-o", "json"]);
        assert!(output.status.success(), "{}", all(&output));
        let list: Value = serde_json::from_slice(&output.stdout).unwrap();
        kelp_images(list["items"].as_array().unwrap())
    };
    let output = kelp(plane, &["install", "--wait=false", "--image-registry", "localhost:5000/kelp"]);
    assert!(output.status.success(), "{}", all(&output));
    for changed in ["configmap/kubeless-config", "deployment.apps/kelp-controller", "deployment.apps/kelp-triggers"] {
        assert!(stdout(&output).contains(&format!("{changed} configured")), "{}", all(&output));
    }
    let (controller, runtimes, provision) = installed_images(plane);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(controller, vec![format!("localhost:5000/kelp/controller:{version}"); 2]);
    assert!(runtimes.iter().all(|image| image.starts_with("localhost:5000/kelp/runtime-")), "{runtimes:?}");
    assert_eq!(provision, format!("localhost:5000/kelp/provision:{version}"));
    let output = kelp(plane, &["install", "--wait=false"]);
    assert!(output.status.success(), "{}", all(&output));
    assert_eq!(installed_images(plane), kelp_images(&objects));

    // Again: nothing changes, and it says so.
    let again = kelp(plane, &["install", "--wait=false"]);
    assert!(again.status.success(), "{}", all(&again));
    let lines = stdout(&again);
    assert!(lines.lines().all(|l| l.ends_with(" unchanged")), "{}", all(&again));

    // Uninstall: the manifest's objects go, the CRDs stay.
    let output = kelp(plane, &["uninstall"]);
    assert!(output.status.success(), "{}", all(&output));
    assert!(all(&output).contains("are kept"), "{}", all(&output));
    assert_eq!(stdout(&output).lines().count(), objects.len(), "one line per object:\n{}", all(&output));
    wait_namespace_gone(plane, &namespace);
    for object in &objects {
        assert!(get(plane, object, &namespace).is_none(), "{} {} left behind", resource(object), name(object));
    }
    let crds = kubectl(plane, &["get", "crd", "functions.kubeless.io"]);
    assert!(crds.status.success(), "{}", all(&crds));

    // Uninstalling what is not there is not an error.
    let output = kelp(plane, &["uninstall"]);
    assert!(output.status.success(), "{}", all(&output));
    assert_eq!(stdout(&output), "");
}

#[test]
fn dry_run_prints_every_object_for_the_namespace_and_changes_nothing() {
    let plane = ControlPlane::shared();
    let objects = manifest();
    let yaml = kelp(
        plane,
        &["install", "-n", "dry-run-only", "--image", "example.invalid/kelp:dry", "--dryrun", "-o", "yaml"]
            .into_iter()
            .chain(["--trigger-replicas", "3", "--kafka-brokers", "kafka-0.kafka:9092,kafka-1.kafka:9092"])
            .chain(["--nats-url", "nats://nats.messaging:4222"])
            .collect::<Vec<_>>(),
    );
    assert!(yaml.status.success(), "{}", all(&yaml));
    let printed: Vec<Value> = serde_saphyr::from_multiple(&stdout(&yaml)).unwrap();
    assert_eq!(printed.len(), 6 + objects.len());
    assert!(printed.iter().any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "dry-run-only"));
    let deployments = of_kind(&printed, "Deployment");
    assert_eq!(deployments.iter().map(|d| name(d)).collect::<Vec<_>>(), ["kelp-controller", "kelp-triggers"]);
    for deployment in &deployments {
        assert_eq!(deployment["metadata"]["namespace"], "dry-run-only");
        assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "example.invalid/kelp:dry");
    }
    assert_eq!((&deployments[0]["spec"]["replicas"], &deployments[1]["spec"]["replicas"]), (&1.into(), &3.into()));
    let config = &of_kind(&printed, "ConfigMap")[0]["data"];
    assert_eq!(config["kafka-brokers"], "kafka-0.kafka:9092,kafka-1.kafka:9092");
    assert_eq!(config["nats-url"], "nats://nats.messaging:4222");
    for binding in of_kind(&printed, "RoleBinding").into_iter().chain(of_kind(&printed, "ClusterRoleBinding")) {
        assert_eq!(binding["subjects"][0]["namespace"], "dry-run-only", "{}", name(binding));
    }

    let json = kelp(plane, &["install", "-n", "dry-run-only", "--dryrun", "-o", "json"]);
    assert!(json.status.success(), "{}", all(&json));
    let list: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 6 + objects.len());

    let namespace = kubectl(plane, &["get", "namespace", "dry-run-only"]);
    assert!(!namespace.status.success() && all(&namespace).contains("NotFound"), "{}", all(&namespace));
}

#[test]
fn dry_run_with_an_image_registry_names_every_kelp_image_there_and_a_malformed_one_is_refused() {
    let version = env!("CARGO_PKG_VERSION");
    let image = |name: &str| format!("localhost:5000/kelp/{name}:{version}");
    let output = kelp_offline(&["install", "--dryrun", "-o", "yaml", "--image-registry", "localhost:5000/kelp"]);
    assert!(output.status.success(), "{}", all(&output));
    let printed: Vec<Value> = serde_saphyr::from_multiple(&stdout(&output)).unwrap();
    let (controller, runtimes, provision) = kelp_images(&printed);
    assert_eq!(controller, [image("controller"), image("controller")]);
    let names = ["runtime-go", "runtime-java", "runtime-nodejs", "runtime-python", "runtime-rust"];
    assert_eq!(runtimes, names.map(image));
    assert_eq!(provision, image("provision"));
    assert!(!stdout(&output).contains(" kelp/"), "no image left in the default registry");

    // --image still names the controller's, over the registry's.
    let args = ["install", "--dryrun", "-o", "json", "--image-registry", "localhost:5000/kelp"];
    let output = kelp_offline(&[&args[..], &["--image", "example.invalid/own/controller:dev"]].concat());
    assert!(output.status.success(), "{}", all(&output));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (controller, runtimes, provision) = kelp_images(list["items"].as_array().unwrap());
    assert_eq!(controller, ["example.invalid/own/controller:dev", "example.invalid/own/controller:dev"]);
    assert_eq!((runtimes.len(), provision), (names.len(), image("provision")));

    // Without the flag: Kelp's own names, as deploy/kelp.yaml has them.
    let output = kelp_offline(&["install", "--dryrun", "-o", "yaml"]);
    let printed: Vec<Value> = serde_saphyr::from_multiple(&stdout(&output)).unwrap();
    assert_eq!(kelp_images(&printed), kelp_images(&manifest()));
    assert_eq!(kelp_images(&printed).2, format!("kelp/provision:{version}"));

    for (registry, reason) in [
        ("", "is empty"),
        ("localhost:5000/kelp/", "ends with '/'; give it without, e.g. localhost:5000/kelp"),
        ("localhost:5000/Kelp", "has upper-case letters"),
        ("local host/kelp", "contains ' '; white space"),
        ("localhost:5000/kelp:dev", "\"kelp:dev\" ends with what would be a tag"),
    ] {
        let output = kelp_offline(&["install", "--dryrun", "--image-registry", registry]);
        assert!(!output.status.success(), "{registry:?} was taken");
        let error = all(&output);
        let said = format!("invalid value '{registry}' for '--image-registry <REGISTRY>': {reason}");
        assert!(error.contains(&said), "{registry:?}: {error}");
        assert_eq!(stdout(&output), "", "nothing printed for {registry:?}");
    }
}

#[test]
fn install_waits_for_the_controller_uninstall_crds_removes_them_and_install_brings_them_back() {
    let plane = ControlPlane::start();
    let output = kelp(&plane, &["install", "-n", "kelp-system", "--image", "example.invalid/kelp-controller:test"]);
    assert!(output.status.success(), "{}", all(&output));
    let manifest = manifest();
    for deployment in of_kind(&manifest, "Deployment") {
        let ready = format!("deployment kelp-system/{} is ready", name(deployment));
        assert!(all(&output).contains(&ready), "{}", all(&output));
    }
    let deployment = of_kind(&manifest, "Deployment")[0].clone();
    let installed = get(&plane, &deployment, "kelp-system").unwrap();
    assert!(installed["status"]["readyReplicas"].as_i64().unwrap() >= 1, "{installed}");
    assert_eq!(installed["spec"]["template"]["spec"]["containers"][0]["image"], "example.invalid/kelp-controller:test");

    let output = kelp(&plane, &["uninstall", "-n", "kelp-system", "--crds"]);
    assert!(output.status.success(), "{}", all(&output));
    assert!(all(&output).contains("The CRDs are deleted"), "{}", all(&output));
    let crds = kubectl(&plane, &["get", "crd", "-o", "name"]);
    assert!(crds.status.success(), "{}", all(&crds));
    assert!(!stdout(&crds).contains("kubeless.io"), "{}", stdout(&crds));
    wait_namespace_gone(&plane, "kelp-system");

    // On a cluster without them, the CRDs are created and served before the rest is applied.
    let output = kelp(&plane, &["install", "--wait=false"]);
    assert!(output.status.success(), "{}", all(&output));
    let created = "customresourcedefinition.apiextensions.k8s.io/functions.kubeless.io created";
    assert_eq!(stdout(&output).lines().next(), Some(created), "{}", all(&output));
    let functions = kubectl(&plane, &["get", "functions", "--all-namespaces"]);
    assert!(functions.status.success(), "{}", all(&functions));
}
