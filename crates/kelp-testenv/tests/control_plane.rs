//! The control plane does what the controller's tests rely on: a Ready node, Deployments whose
//! pods become Ready (kwok), garbage collection, the CRDs' validation, and an API server that can
//! be restarted without losing objects.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kelp_testenv::ControlPlane;
use kube::Api;
use kube::api::ListParams;

/// Runs kubectl against `plane` with `stdin` as its input.
fn kubectl(plane: &ControlPlane, args: &[&str], stdin: &str) -> Output {
    let mut child = plane
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Polls `probe` every 200 ms until it returns `Some`, for at most `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {} s", timeout.as_secs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_node_is_ready_and_start_up_is_measured() {
    let plane = ControlPlane::shared();
    println!("kelp-testenv start-up: {:.1} s", plane.startup_time().as_secs_f64());
    let output = plane
        .kubectl()
        .args(["get", "node", "kwok-node-0", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "True");
    for log in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"] {
        assert!(plane.log_dir().join(format!("{log}.log")).is_file(), "no {log}.log in {}", plane.log_dir().display());
    }
}

#[tokio::test]
async fn a_deployment_gets_ready_pods_and_its_pods_are_collected_with_it() {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("deploy").await;
    let manifest = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example.invalid/web:1}]
";
    let output = kubectl(plane, &["apply", "-n", &namespace, "-f", "-"], manifest);
    assert!(output.status.success(), "{}", text(&output));

    let client = plane.client().await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    eventually("2 ready replicas", Duration::from_secs(60), || async {
        let deployment = deployments.get("web").await.ok()?;
        (deployment.status?.ready_replicas? == 2).then_some(())
    })
    .await;
    let pods = Api::<Pod>::namespaced(client, &namespace);
    let listed = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    for pod in &listed.items {
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("kwok-node-0"));
        assert!(status.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("10.0.")), "{status:?}");
    }

    let output = kubectl(plane, &["delete", "-n", &namespace, "deployment", "web"], "");
    assert!(output.status.success(), "{}", text(&output));
    eventually("the pods garbage-collected", Duration::from_secs(60), || async {
        pods.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_api_server_refuses_a_bad_function_naming_the_field() {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("bad-fn").await;
    let manifest = "apiVersion: kubeless.io/v1beta1
kind: Function
metadata: {name: broken}
spec:
  handler: nodot
  runtime: py
  function: 'def f(event, context): return 1'
";
    let output = kubectl(plane, &["apply", "-n", &namespace, "-f", "-"], manifest);
    assert!(!output.status.success(), "accepted: {}", text(&output));
    assert!(text(&output).contains("spec.handler"), "{}", text(&output));
    // The CRD's own rules bound the timeout and keep the module a file name, as Kelp's API does.
    let function = |name: &str, handler: &str, timeout: &str| {
        format!(
            "apiVersion: kubeless.io/v1beta1\nkind: Function\nmetadata: {{name: {name}}}\nspec:\n  handler: {handler}\n  \
             runtime: python3.8\n  function: 'def f(event, context): return 1'\n  timeout: '{timeout}'\n"
        )
    };
    for (manifest, field, message) in [
        (function("huge", "h.f", "18446744073709551615"), "spec.timeout", "at most 604800 seconds"),
        (function("week", "h.f", "604801"), "spec.timeout", "at most 604800 seconds"),
        (function("path", "/etc/cron.d/x.f", "60"), "spec.handler", "names the code file"),
    ] {
        let output = kubectl(plane, &["apply", "-n", &namespace, "-f", "-"], &manifest);
        assert!(!output.status.success(), "accepted: {manifest}\n{}", text(&output));
        assert!(text(&output).contains(field) && text(&output).contains(message), "{manifest}\n{}", text(&output));
    }
    let output = kubectl(plane, &["get", "-n", &namespace, "functions", "-o", "name"], "");
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "", "nothing was stored");
    for manifest in [function("ok", "hello-world_2.f", "0604800"), function("short", "h.f", "")] {
        let output = kubectl(plane, &["apply", "-n", &namespace, "-f", "-"], &manifest);
        assert!(output.status.success(), "refused: {manifest}\n{}", text(&output));
    }
}

#[tokio::test]
async fn a_restarted_api_server_keeps_its_objects_and_a_dropped_plane_leaves_nothing() {
    let plane = ControlPlane::start();
    let namespace = plane.namespace("restart").await;
    let output = kubectl(&plane, &["create", "configmap", "kept", "-n", &namespace, "--from-literal=answer=42"], "");
    assert!(output.status.success(), "{}", text(&output));

    let began = Instant::now();
    plane.restart_apiserver();
    println!("kube-apiserver restart: {:.1} s", began.elapsed().as_secs_f64());

    let client = plane.client().await;
    let kept = Api::<ConfigMap>::namespaced(client, &namespace).get("kept").await.unwrap();
    assert_eq!(kept.data.unwrap()["answer"], "42");
    // The rest of the control plane reconnects: a new Deployment still gets its pod.
    let manifest = "apiVersion: apps/v1
kind: Deployment
metadata: {name: after}
spec:
  replicas: 1
  selector: {matchLabels: {app: after}}
  template:
    metadata: {labels: {app: after}}
    spec:
      containers: [{name: after, image: example.invalid/after:1}]
";
    let output = kubectl(&plane, &["apply", "-n", &namespace, "-f", "-"], manifest);
    assert!(output.status.success(), "{}", text(&output));
    let deployments = Api::<Deployment>::namespaced(plane.client().await, &namespace);
    eventually("1 ready replica after the restart", Duration::from_secs(60), || async {
        (deployments.get("after").await.ok()?.status?.ready_replicas? == 1).then_some(())
    })
    .await;

    let dir = plane.kubeconfig().parent().unwrap().to_owned();
    let server = server_address(&plane);
    drop(plane);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(TcpStream::connect(&server).is_err(), "the API server at {server} still answers");
}

/// `127.0.0.1:<port>` of the API server, from the kubeconfig.
fn server_address(plane: &ControlPlane) -> String {
    let kubeconfig = std::fs::read_to_string(plane.kubeconfig()).unwrap();
    let server = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: https://")).unwrap();
    server.to_owned()
}

/// The shared control plane is a static, never dropped: the watchdog must end it with the test
/// process. This runs one test of this binary in a child process and checks what it leaves.
#[test]
fn the_shared_plane_ends_with_the_test_process() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args(["--exact", "the_node_is_ready_and_start_up_is_measured", "--nocapture"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}{stderr}", String::from_utf8_lossy(&output.stdout));
    let line = stderr.lines().find(|l| l.starts_with("kelp-testenv: control plane at ")).expect("the start-up line");
    let server = line.split("https://").nth(1).unwrap().split(' ').next().unwrap().to_owned();
    let logs = line.split("(logs: ").nth(1).unwrap().trim_end_matches(')');
    let dir = Path::new(logs).parent().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() || TcpStream::connect(&server).is_ok() {
        assert!(Instant::now() < deadline, "{server} still answers or {} is still there after 10 s", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}
