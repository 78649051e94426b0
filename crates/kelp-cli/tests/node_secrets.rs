//! Install-time Secrets on a real node (`kelp-testenv`'s `shared_node`, Kelp's images from
//! `scripts/images save`): with the `installation` phase of `runtime-images` given a Secret (a
//! private package index's credentials), a Python function with requirements still installs
//! them and answers, the Secret mounted only in the `fetch` init container, which runs no
//! package code, and never in `install`, where the packages' install scripts run.
//!
//! With `KELP_REAL_NODE=0` (kwok's node, whose pods run nothing) the planned pod is checked and
//! the call is not.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kelp_testenv::{ControlPlane, ControllerProcess, EGRESS_PROXY};
use serde_json::Value;

/// The Secret the installation phase names.
const SECRET: &str = "pip-index";

fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let out = plane.kubectl().args(args).output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_kelp(plane: &ControlPlane, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kelp")).arg("--kubeconfig").arg(plane.kubeconfig()).args(args).output().unwrap()
}

/// Runs `kelp`, asserting success; returns its stdout.
fn kelp(plane: &ControlPlane, args: &[&str]) -> String {
    let out = run_kelp(plane, args);
    let pods = plane.kubectl().args(["get", "pods", "-A", "-o", "wide"]).output().unwrap();
    assert!(
        out.status.success(),
        "kelp {args:?}:\n{}{}\n--- pods ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&pods.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `installation` phase of `kubeless-config` gets `secrets: [SECRET]`, and the dependency
/// cache moves under the plane's directory.
fn give_the_installation_phase_a_secret(plane: &ControlPlane) {
    let config: Value =
        serde_json::from_str(&kubectl(plane, &["-n", "kubeless", "get", "configmap", "kubeless-config", "-o", "json"]))
            .unwrap();
    let mut runtimes: Value = serde_json::from_str(config["data"]["runtime-images"].as_str().unwrap()).unwrap();
    for version in runtimes.as_array_mut().unwrap().iter_mut().flat_map(|r| r["versions"].as_array_mut().unwrap()) {
        for image in version["images"].as_array_mut().unwrap().iter_mut().filter(|i| i["phase"] == "installation") {
            image["secrets"] = serde_json::json!([{"name": SECRET}]);
        }
    }
    let cache = plane.node_path("dependency-cache").display().to_string();
    let data = serde_json::json!({"runtime-images": runtimes.to_string(), "dependency-cache-path": cache});
    let patch = serde_json::json!({"data": data}).to_string();
    kubectl(plane, &["-n", "kubeless", "patch", "configmap", "kubeless-config", "--type=merge", "-p", &patch]);
}

#[test]
fn installation_secrets_never_reach_the_install_container() {
    let plane = ControlPlane::shared_node();
    kelp(plane, &["install", "--wait-timeout", "240"]);
    give_the_installation_phase_a_secret(plane);
    // On kwok a controller process stands in for the installed one, which runs nothing there; it
    // reads the patched configuration at its start. On a real node, the installed controller
    // plans the Function only once it has seen the change.
    let _controller = (!plane.has_real_node()).then(|| ControllerProcess::start(plane, "secrets", &[]));
    if plane.has_real_node() {
        let seen = || {
            let logs = plane.kubectl().args(["-n", "kubeless", "logs", "deployment/kelp-controller"]).output();
            logs.is_ok_and(|l| String::from_utf8_lossy(&l.stdout).contains("configuration changed"))
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen() {
            assert!(Instant::now() < deadline, "the controller did not see the configuration change");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let namespace = tokio::runtime::Runtime::new().unwrap().block_on(plane.namespace("secrets"));
    kubectl(plane, &["-n", &namespace, "create", "secret", "generic", SECRET, "--from-literal=token=s3cret"]);

    let example = kelp_testkit::repo_root().join("examples/python/withdeps");
    let (code, requirements) = (example.join("titles.py"), example.join("requirements.txt"));
    let (code, requirements) = (code.display().to_string(), requirements.display().to_string());
    // The node's pods reach the package registries only through the test's proxy.
    let proxy = format!("https_proxy={EGRESS_PROXY}");
    let mut deploy = vec!["function", "deploy", "titles", "-n", &namespace, "--runtime", "python3.11"];
    deploy.extend(["--from-file", &code, "--handler", "titles.title", "--dependencies", &requirements]);
    // Kubeless's default pull policy is Always; the node has Kelp's images and no registry.
    deploy.extend(["--env", &proxy, "--image-pull-policy", "IfNotPresent", "--wait", "--wait-timeout", "240"]);
    let began = Instant::now();
    kelp(plane, &deploy);
    eprintln!("node_secrets: deployed to Ready in {:.1} s", began.elapsed().as_secs_f64());

    let pods = kubectl(plane, &["-n", &namespace, "get", "pods", "-l", "function=titles", "-o", "json"]);
    let pods: Value = serde_json::from_str(&pods).unwrap();
    let init = &pods["items"][0]["spec"]["initContainers"];
    let names: Vec<&str> = init.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prepare", "cache-owner", "fetch", "install"], "{init}");
    let mounts = |name: &str| -> Vec<&str> {
        let container = init.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
        container["volumeMounts"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect()
    };
    assert!(mounts("fetch").contains(&SECRET), "fetch: {:?}", mounts("fetch"));
    assert!(!mounts("install").contains(&SECRET), "install mounts the Secret: {:?}", mounts("install"));
    if !plane.has_real_node() {
        return;
    }
    let pod = pods["items"][0]["metadata"]["name"].as_str().unwrap();
    let fetched = kubectl(plane, &["-n", &namespace, "logs", pod, "-c", "fetch"]);
    assert!(fetched.contains("dependencies fetched"), "fetch: {fetched}");
    let installed = kubectl(plane, &["-n", &namespace, "logs", pod, "-c", "install"]);
    assert!(installed.contains("dependencies installed"), "install: {installed}");
    // A Ready pod may still be joining its Service's endpoints for a moment.
    let data = "<html><title>From PyPI</title></html>";
    let call = ["function", "call", "titles", "-n", &namespace, "--data", data];
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let out = run_kelp(plane, &call);
        if out.status.success() || Instant::now() > deadline {
            break String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(answer.trim(), "From PyPI", "the function with its dependencies answers");
}
