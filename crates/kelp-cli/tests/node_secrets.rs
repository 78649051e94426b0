//! Install-time Secrets on a real node (`kelp-testenv`'s `shared_node`, Kelp's images from
//! `scripts/images save`): with the `installation` phase of `runtime-images` given a Secret (a
//! private package index's credentials), a Python function with requirements still installs
//! them and answers, the Secret mounted only in the `fetch` init container, which runs no
//! package code, and never in `install`, where the packages' install scripts run.
//!
//! With `KELP_REAL_NODE=0` (kwok's node, whose pods run nothing) the planned pod is checked and
//! the call is not.

#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use kelp_testenv::{ControlPlane, EGRESS_PROXY};
use serde_json::Value;

use crate::node::{call, deploy, eventually, install, json, kubectl, namespace, stand_in_controller};

/// The Secret the installation phase names.
const SECRET: &str = "pip-index";

/// Every `installation` phase of `kubeless-config` gets `secrets: [SECRET]`.
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
    let data = serde_json::json!({"runtime-images": runtimes.to_string()});
    let patch = serde_json::json!({"data": data}).to_string();
    kubectl(plane, &["-n", "kubeless", "patch", "configmap", "kubeless-config", "--type=merge", "-p", &patch]);
}

#[test]
fn installation_secrets_never_reach_the_install_container() {
    let plane = ControlPlane::shared_node();
    install(plane, &[]);
    give_the_installation_phase_a_secret(plane);
    // On kwok a controller process stands in for the installed one, which runs nothing there; it
    // reads the patched configuration at its start. On a real node, the installed controller
    // plans the Function only once it has seen the change.
    let _controller = stand_in_controller(plane, "secrets");
    if plane.has_real_node() {
        eventually(plane, "the controller to see the configuration change", Duration::from_secs(60), || {
            let logs = plane.kubectl().args(["-n", "kubeless", "logs", "deployment/kelp-controller"]).output();
            logs.is_ok_and(|l| String::from_utf8_lossy(&l.stdout).contains("configuration changed")).then_some(())
        });
    }
    let namespace = namespace(plane, "secrets");
    kubectl(plane, &["-n", &namespace, "create", "secret", "generic", SECRET, "--from-literal=token=s3cret"]);

    let example = kelp_testkit::repo_root().join("examples/python/withdeps");
    let requirements = example.join("requirements.txt").display().to_string();
    // The node's pods reach the package registries only through the test's proxy.
    let proxy = format!("https_proxy={EGRESS_PROXY}");
    let extra = ["--dependencies", &requirements, "--env", &proxy];
    deploy(plane, &namespace, "titles", &example.join("titles.py"), "titles.title", "python3.11", &extra);

    let pods = json(plane, &["-n", &namespace, "get", "pods", "-l", "function=titles"]);
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
    let answer = call(plane, &namespace, "titles", &["--data", "<html><title>From PyPI</title></html>"]);
    assert_eq!(answer.trim(), "From PyPI", "the function with its dependencies answers");
}
