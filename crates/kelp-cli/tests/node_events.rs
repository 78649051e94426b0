//! Events on a real node (`kelp-testenv`'s `shared_node`), after `kelp install` there: a
//! KafkaTrigger consumed by `kelp-triggers` in its pod, from a Kafka broker the test runs on the
//! machine and forwards to the node's address, calling a Python function in its pod; an
//! autoscaler (`kelp autoscale`, a HorizontalPodAutoscaler on CPU) scaling a loaded function out,
//! from the resource metrics of the node's metrics-server; an HTTPTrigger (`--gateway traefik`)
//! served by Traefik, an Ingress controller run in the node's network namespace, called from a
//! pod with the trigger's host name.
//!
//! With `KELP_REAL_NODE=0` the same scenarios run on kwok's node, whose pods run no code: the
//! objects are checked, the deliveries are not (no broker is started there).

#[path = "common/node.rs"]
mod node;

use std::sync::OnceLock;
use std::time::Duration;

use kelp_brokers::Kafka;
use kelp_testenv::ControlPlane;

use crate::node::{
    POD_TIMEOUT, deploy, eventually, install, json, kelp, kubectl, namespace, ok, run_in_pod, stand_in_controller,
    start_python_pod,
};

/// The control plane, installed once per test binary; with a real node, `kelp-triggers` is told
/// the Kafka broker's address as the pods reach it.
fn plane() -> &'static ControlPlane {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let plane = ControlPlane::shared_node();
    INSTALLED.get_or_init(|| match kafka(plane) {
        Some(kafka) => {
            let (_, brokers) = kafka.forwarded().expect("the broker's forwarded listener");
            install(plane, &["--kafka-brokers", brokers]);
        }
        None => install(plane, &[]),
    });
    plane
}

/// With a real node, a Kafka broker on the machine whose second listener is forwarded to the
/// node's address (and advertised there, so that `kelp-triggers` in its pod is sent back to the
/// forward); `None` on kwok.
fn kafka(plane: &ControlPlane) -> Option<&'static Kafka> {
    static KAFKA: OnceLock<Option<Kafka>> = OnceLock::new();
    KAFKA
        .get_or_init(|| {
            plane.has_real_node().then(|| {
                Kafka::start_forwarded(|port| plane.forward_to_pods(port).expect("a real node forwards ports"))
            })
        })
        .as_ref()
}

#[test]
fn a_kafka_trigger_in_kelp_triggers_calls_its_function_with_each_message() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "kafka");
    let namespace = namespace(plane, "kafka");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consume.py");
    // A message that is not JSON is bytes in Kubeless's Python runtime.
    let code =
        "def consume(event, context):\n    print('consumed', event['data'].decode(), flush=True)\n    return 'ok'\n";
    std::fs::write(&file, code).unwrap();
    deploy(plane, &namespace, "consumer", &file, "consume.consume", "python3.11", &[]);
    let topic = format!("{namespace}-orders");
    let selector = "function=consumer";
    let brokers = kafka(plane).map(Kafka::bootstrap);
    if let Some(brokers) = &brokers {
        ok(plane, &["topic", "create", &topic, "--kafka-brokers", brokers]);
    }
    ok(
        plane,
        &[
            "trigger",
            "kafka",
            "create",
            "orders",
            "-n",
            &namespace,
            "--trigger-topic",
            &topic,
            "--function-selector",
            selector,
        ],
    );
    let trigger = json(plane, &["-n", &namespace, "get", "kafkatriggers.kubeless.io", "orders"]);
    assert_eq!(trigger["spec"]["topic"], topic.as_str(), "{trigger}");
    assert_eq!(trigger["spec"]["functionSelector"]["matchLabels"]["function"], "consumer", "{trigger}");
    let Some(brokers) = brokers else {
        return;
    };
    // kelp-triggers subscribes a moment after the trigger exists, from the newest offset:
    // messages are published until one reaches the function.
    let logs = |plane: &ControlPlane| {
        let out = kelp(plane, &["function", "logs", "consumer", "-n", &namespace]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let publish = |n: u32| {
        let message = format!("order-{n}");
        ok(plane, &["topic", "publish", "--topic", &topic, "--data", &message, "--kafka-brokers", &brokers]);
    };
    let mut sent = 0;
    eventually(plane, "a message in the function's log", POD_TIMEOUT, || {
        sent += 1;
        publish(sent);
        std::thread::sleep(Duration::from_secs(2));
        logs(plane).contains("consumed order-").then_some(())
    });
    // Once subscribed, each message reaches the function once.
    let next = [sent + 1, sent + 2];
    next.into_iter().for_each(publish);
    let last = format!("consumed order-{}\n", next[1]);
    let text = eventually(plane, "the last message in the function's log", Duration::from_secs(60), || {
        let text = logs(plane);
        text.contains(&last).then_some(text)
    });
    for n in next {
        assert_eq!(text.matches(&format!("consumed order-{n}\n")).count(), 1, "order-{n}:\n{text}");
    }
}

#[test]
fn an_autoscaler_scales_a_loaded_function_out_on_cpu() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "autoscale");
    let namespace = namespace(plane, "autoscale");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("burn.py");
    // Each call spins a core for 200 ms.
    let code = "import time\n\ndef burn(event, context):\n    end, n = time.time() + 0.2, 0\n    while time.time() < end:\n        n += 1\n    return str(n)\n";
    std::fs::write(&file, code).unwrap();
    // A CPU request: the autoscaler's utilization is relative to it.
    deploy(plane, &namespace, "burner", &file, "burn.burn", "python3.11", &["--cpu", "100m"]);
    ok(
        plane,
        &[
            "autoscale",
            "create",
            "burner",
            "-n",
            &namespace,
            "--min",
            "1",
            "--max",
            "3",
            "--metric",
            "cpu",
            "--value",
            "10",
        ],
    );
    // The CLI writes the Function's spec; the controller creates the HorizontalPodAutoscaler.
    let hpa = eventually(plane, "the controller to create the autoscaler", POD_TIMEOUT, || {
        let out = plane.kubectl().args(["-n", &namespace, "get", "hpa", "burner", "-o", "json"]).output().unwrap();
        out.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    });
    assert_eq!(hpa["spec"]["minReplicas"], 1, "{hpa}");
    assert_eq!(hpa["spec"]["maxReplicas"], 3, "{hpa}");
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu", "{hpa}");
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 10, "{hpa}");
    if !plane.has_real_node() {
        return;
    }
    // metrics-server has scraped the function's pod.
    let top = eventually(plane, "kubectl top to show the function's pod", POD_TIMEOUT, || {
        let out = plane.kubectl().args(["-n", &namespace, "top", "pods", "-l", "function=burner"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains("burner-")).then_some(text)
    });
    assert!(top.contains("CPU"), "{top}");
    // A client pod calls the function without pause (until it is deleted).
    let url = format!("http://burner.{namespace}.svc.cluster.local:8080/");
    let script = format!(
        "import time, urllib.request as u\n\
         while True:\n\
         \x20   try:\n\
         \x20       u.urlopen({url:?}, timeout=20).read()\n\
         \x20   except OSError as e:\n\
         \x20       print(e, flush=True); time.sleep(0.5)\n"
    );
    start_python_pod(plane, &namespace, "load", &script);
    let hpa = eventually(plane, "the autoscaler to scale the function out", POD_TIMEOUT, || {
        let hpa = json(plane, &["-n", &namespace, "get", "hpa", "burner"]);
        (hpa["status"]["desiredReplicas"].as_i64().unwrap_or(0) > 1).then_some(hpa)
    });
    let deployment = eventually(plane, "the function's Deployment to follow", POD_TIMEOUT, || {
        let deployment = json(plane, &["-n", &namespace, "get", "deployment", "burner"]);
        (deployment["spec"]["replicas"].as_i64().unwrap_or(0) > 1).then_some(deployment)
    });
    assert!(deployment["spec"]["replicas"].as_i64() <= Some(3), "{deployment}\n{hpa}");
    kubectl(plane, &["-n", &namespace, "delete", "pod", "load", "--wait=false"]);
}

/// Traefik's RBAC (what its Kubernetes Ingress provider reads and writes) and the IngressClass
/// it serves.
const TRAEFIK_OBJECTS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kelp-test-traefik}
rules:
- apiGroups: [""]
  resources: [services, secrets, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
"#;

/// A process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Traefik in the node's namespace with its Kubernetes Ingress provider, as the
/// ServiceAccount `traefik` of `namespace` (a token of `kubectl create token`), its `web`
/// entrypoint on the node's address; returns the process and that address.
fn start_traefik(plane: &ControlPlane, namespace: &str, dir: &std::path::Path) -> (Killed, String) {
    let applied = plane.kubectl().args(["apply", "-f", "-"]).stdin(std::process::Stdio::piped()).spawn();
    let mut applied = applied.unwrap();
    std::io::Write::write_all(&mut applied.stdin.take().unwrap(), TRAEFIK_OBJECTS.as_bytes()).unwrap();
    assert!(applied.wait().unwrap().success());
    kubectl(plane, &["-n", namespace, "create", "serviceaccount", "traefik"]);
    let subject = format!("{namespace}:traefik");
    kubectl(
        plane,
        &["create", "clusterrolebinding", namespace, "--clusterrole=kelp-test-traefik", "--serviceaccount", &subject],
    );
    let token = kubectl(plane, &["-n", namespace, "create", "token", "traefik"]);
    let server = kubectl(plane, &["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    let ca = kubectl(
        plane,
        &["config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"],
    );
    let ca = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, ca.trim()).unwrap();
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca).unwrap();
    let bin = match std::env::var_os("KELP_K8S_BIN_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => kelp_testkit::k8s_bin_dir(&["traefik"]),
    }
    .join("traefik");
    let [port] = kelp_testkit::process::free_ports();
    let address = format!("{}:{port}", kelp_testenv::NODE_IP);
    let log = std::fs::File::create(dir.join("traefik.log")).unwrap();
    let child = plane
        .node_command(bin)
        .expect("a real node")
        .args([
            format!("--entrypoints.web.address={address}"),
            "--providers.kubernetesingress=true".to_owned(),
            format!("--providers.kubernetesingress.endpoint={}", server.trim()),
            format!("--providers.kubernetesingress.token={}", token.trim()),
            format!("--providers.kubernetesingress.certauthfilepath={}", ca_file.display()),
            "--log.level=INFO".to_owned(),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    (Killed(child), address)
}

#[test]
fn an_http_trigger_through_traefik_calls_its_function() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "ingress");
    let namespace = namespace(plane, "ingress");
    let hello = kelp_testkit::repo_root().join("examples/python/hello.py");
    deploy(plane, &namespace, "greeter", &hello, "hello.hello", "python3.11", &[]);
    let host = "greeter.kelp.test";
    ok(
        plane,
        &[
            "trigger",
            "http",
            "create",
            "greet",
            "-n",
            &namespace,
            "--function-name",
            "greeter",
            "--gateway",
            "traefik",
            "--hostname",
            host,
        ],
    );
    let ingress = eventually(plane, "the trigger's Ingress", Duration::from_secs(60), || {
        let out = plane.kubectl().args(["-n", &namespace, "get", "ingress", "greet", "-o", "json"]).output().unwrap();
        out.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    });
    assert_eq!(ingress["spec"]["ingressClassName"], "traefik", "{ingress}");
    assert_eq!(ingress["spec"]["rules"][0]["host"], host, "{ingress}");
    if !plane.has_real_node() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_traefik, address) = start_traefik(plane, &namespace, dir.path());
    // Retried: Traefik routes the Ingress a moment after it has read it.
    let script = format!(
        "import time, urllib.request as u\n\
         for attempt in range(120):\n\
         \x20   try:\n\
         \x20       r = u.urlopen(u.Request('http://{address}/', headers={{'Host': {host:?}}}), timeout=20)\n\
         \x20       print(r.status, r.read().decode()); break\n\
         \x20   except OSError as e:\n\
         \x20       print('attempt', attempt, e); time.sleep(0.5)\n"
    );
    let log = run_in_pod(plane, &namespace, "client", &script);
    let traefik_log = std::fs::read_to_string(dir.path().join("traefik.log")).unwrap_or_default();
    assert!(log.contains("200 hello world"), "through Traefik: {log}\n--- traefik ---\n{traefik_log}");
}
