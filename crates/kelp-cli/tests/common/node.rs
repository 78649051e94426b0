//! What the node tests share (through `#[path]`): `kelp install` on `kelp-testenv`'s
//! `shared_node` control plane, running `kelp` and kubectl with its kubeconfig, waiting, deploying
//! a function and calling it, running a client in a pod, and what a failing step shows.

#![allow(dead_code)] // Each test binary uses some of these.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kelp_testenv::{ControlPlane, ControllerProcess};
use serde_json::Value;

/// How long a pod may take to start (images present, dependencies to install).
pub(crate) const POD_TIMEOUT: Duration = Duration::from_secs(240);

/// On kwok, whose pods run nothing, the installed controller does not run: a `kelp-controller`
/// process for the calling test stands in for it (the leader of them reconciles). On a real node,
/// `None`: the controller runs in its pod.
pub(crate) fn stand_in_controller(plane: &ControlPlane, test: &str) -> Option<ControllerProcess> {
    (!plane.has_real_node()).then(|| ControllerProcess::start(plane, test, &[]))
}

/// A fresh namespace `<prefix>-<n>` for the calling test (see `ControlPlane::namespace`).
pub(crate) fn namespace(plane: &ControlPlane, prefix: &str) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(plane.namespace(prefix))
}

/// `kelp install` with `extra` arguments, waiting for both Deployments; then the dependency
/// cache moved under the plane's directory (the default is a directory of the machine).
pub(crate) fn install(plane: &ControlPlane, extra: &[&str]) {
    let began = Instant::now();
    let mut args = vec!["install", "--wait-timeout", "240"];
    args.extend_from_slice(extra);
    ok(plane, &args);
    eprintln!("node: kelp install to both Deployments Ready in {:.1} s", began.elapsed().as_secs_f64());
    let cache = plane.node_path("dependency-cache");
    let patch = serde_json::json!({"data": {"dependency-cache-path": cache.display().to_string()}}).to_string();
    kubectl(plane, &["-n", "kubeless", "patch", "configmap", "kubeless-config", "--type=merge", "-p", &patch]);
}

pub(crate) fn kelp(plane: &ControlPlane, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kelp")).arg("--kubeconfig").arg(plane.kubeconfig()).args(args).output().unwrap()
}

/// Runs `kelp`, asserting success; returns stdout and stderr.
pub(crate) fn ok(plane: &ControlPlane, args: &[&str]) -> String {
    let out = kelp(plane, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kelp {args:?} failed:\n{text}\n{}", diagnosis(plane));
    text
}

pub(crate) fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let out = plane.kubectl().args(args).output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn json(plane: &ControlPlane, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(plane, &all)).unwrap()
}

/// What a failing step shows: every pod, the events, and the end of the kubelet's log.
pub(crate) fn diagnosis(plane: &ControlPlane) -> String {
    let out = |args: &[&str]| {
        let o = plane.kubectl().args(args).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    format!(
        "--- pods ---\n{}--- events ---\n{}{}",
        out(&["get", "pods", "-A", "-o", "wide"]),
        out(&["get", "events", "-A", "--sort-by=.lastTimestamp"]),
        kelp_testkit::process::log_tail(&plane.log_dir().join("kubelet.log"), 30)
    )
}

/// Polls `check` every 250 ms until it gives `Some`, for `timeout` at most.
pub(crate) fn eventually<T>(
    plane: &ControlPlane,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out ({} s) waiting for {what}\n{}",
            timeout.as_secs(),
            diagnosis(plane)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The names of the Running pods of function `name` in `namespace`.
pub(crate) fn running_pods(plane: &ControlPlane, namespace: &str, name: &str) -> Vec<String> {
    let pods = json(plane, &["-n", namespace, "get", "pods", "-l", &format!("function={name}")]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `kelp function call`, until it answers (a pod that is Ready may still be joining its
/// Service's endpoints for a moment).
pub(crate) fn call(plane: &ControlPlane, namespace: &str, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["function", "call", name, "-n", namespace];
    args.extend_from_slice(extra);
    eventually(plane, &format!("a call of {namespace}/{name} to answer"), Duration::from_secs(60), || {
        let out = kelp(plane, &args);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
}

/// Starts `script` with `python3` in the pod `pod` of the Python runtime image (a client inside
/// the cluster), and returns at once.
pub(crate) fn start_python_pod(plane: &ControlPlane, namespace: &str, pod: &str, script: &str) {
    let image = concat!("kelp/runtime-python:", env!("CARGO_PKG_VERSION"));
    kubectl(
        plane,
        &[
            "-n",
            namespace,
            "run",
            pod,
            "--image",
            image,
            "--image-pull-policy=IfNotPresent",
            "--restart=Never",
            "--command",
            "--",
            "python3",
            "-c",
            script,
        ],
    );
}

/// Runs `script` as [`start_python_pod`] does, waits until the pod has ended, and returns its log.
pub(crate) fn run_in_pod(plane: &ControlPlane, namespace: &str, pod: &str, script: &str) -> String {
    start_python_pod(plane, namespace, pod, script);
    let phase = eventually(plane, &format!("pod {pod} to end"), POD_TIMEOUT, || {
        let pod = json(plane, &["-n", namespace, "get", "pod", pod]);
        let phase = pod["status"]["phase"].as_str().unwrap_or_default().to_owned();
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    });
    let log = kubectl(plane, &["-n", namespace, "logs", pod]);
    assert_eq!(phase, "Succeeded", "pod {pod}: {log}");
    log
}

pub(crate) fn deploy(
    plane: &ControlPlane,
    namespace: &str,
    name: &str,
    file: &Path,
    handler: &str,
    runtime: &str,
    extra: &[&str],
) {
    let file = file.display().to_string();
    let mut args = vec![
        "function",
        "deploy",
        name,
        "-n",
        namespace,
        "--runtime",
        runtime,
        "--from-file",
        &file,
        "--handler",
        handler,
    ];
    args.extend_from_slice(extra);
    // Kubeless's default is Always; the node has Kelp's images and no registry to ask.
    args.extend(["--image-pull-policy", "IfNotPresent", "--wait", "--wait-timeout", "240"]);
    let began = Instant::now();
    ok(plane, &args);
    eprintln!("node: {namespace}/{name} ({runtime}) deployed to Ready in {:.1} s", began.elapsed().as_secs_f64());
}
