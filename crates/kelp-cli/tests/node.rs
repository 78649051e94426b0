//! The cluster half for real: `kelp install` on a control plane with a real node
//! (`kelp-testenv`'s `shared_node`: containerd, kubelet, kube-proxy and CoreDNS in a network
//! namespace of the test's own), the controller and `kelp-triggers` running in pods with their
//! ServiceAccounts, then Kubeless-style functions in Python and Node.js built into Kelp's own
//! images (`scripts/images`): deployed, called through the API server's service proxy and from
//! another pod through the Service's DNS name, logged, updated, deleted; dependencies installed
//! by the `install` init container; a CronJobTrigger's Job calling its function.
//!
//! Compiled languages (Go, Java, Rust) built by their pods: `node/compiled.rs`; Ruby and PHP
//! added through `runtime-images` alone: `node/plugins.rs`; the dashboard on the cluster, in a
//! browser: `node/dashboard.rs`.
//!
//! With `KELP_REAL_NODE=0` the same scenarios run on kwok's node, whose pods run no code: every
//! step about objects is checked, the steps that need code running (calls, logs) are not.

#[path = "node/compiled.rs"]
mod compiled;
#[path = "common/dashboard.rs"]
mod dashboard;
#[path = "node/dashboard.rs"]
mod dashboard_on_the_node;
#[path = "common/node.rs"]
mod node;
#[path = "node/plugins.rs"]
mod plugins;

use std::sync::Once;
use std::time::Duration;

use kelp_testenv::{ControlPlane, EGRESS_PROXY};
use serde_json::Value;

use crate::node::{
    POD_TIMEOUT, call, deploy, eventually, install, json, kelp, kubectl, namespace, ok, run_in_pod, running_pods,
    stand_in_controller,
};

fn plane() -> &'static ControlPlane {
    let plane = ControlPlane::shared_node();
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| install(plane, &[]));
    plane
}

#[test]
fn install_runs_the_controller_and_kelp_triggers_in_pods_with_their_service_accounts() {
    let plane = plane();
    for (deployment, account) in [("kelp-controller", "kelp-controller"), ("kelp-triggers", "kelp-triggers")] {
        let object = json(plane, &["-n", "kubeless", "get", "deployment", deployment]);
        assert_eq!(object["status"]["readyReplicas"], 1, "{deployment}: {object}");
        assert_eq!(object["spec"]["template"]["spec"]["serviceAccountName"], account);
        let labels = object["spec"]["selector"]["matchLabels"].as_object().unwrap();
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap())).collect();
        let pods = json(plane, &["-n", "kubeless", "get", "pods", "-l", &selector.join(",")]);
        let pod = &pods["items"][0];
        assert_eq!(pod["status"]["phase"], "Running", "{deployment}: {pod}");
        if plane.has_real_node() {
            // A real process answered its probes and wrote its log.
            let log = kubectl(plane, &["-n", "kubeless", "logs", pod["metadata"]["name"].as_str().unwrap()]);
            assert!(!log.is_empty(), "{deployment} logged nothing");
        }
    }
}

#[test]
fn python_and_node_functions_deploy_call_log_update_and_delete() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "lifecycle");
    let namespace = namespace(plane, "lifecycle");
    let examples = kelp_testkit::repo_root().join("examples");
    for (name, runtime, file) in [
        ("hello-py", "python3.11", examples.join("python/hello.py")),
        ("hello-js", "nodejs20", examples.join("nodejs/hello.js")),
    ] {
        deploy(plane, &namespace, name, &file, "hello.hello", runtime, &[]);
        let first = running_pods(plane, &namespace, name);
        assert_eq!(first.len(), 1, "{name}: {first:?}");
        if !plane.has_real_node() {
            continue;
        }
        // Through the API server's service proxy, as `kelp function call` does.
        assert_eq!(call(plane, &namespace, name, &[]).trim(), "hello world");
        let echoed = call(plane, &namespace, name, &["--data", r#"{"it-s":"alive"}"#]);
        let echoed: Value = serde_json::from_str(&echoed).unwrap_or_else(|e| panic!("{name}: {e}: {echoed}"));
        assert_eq!(echoed["you-sent"], serde_json::json!({"it-s": "alive"}), "{name}");
        // Kubeless's context names the handler's function.
        assert_eq!(echoed["function"], "hello", "{name}");
        // From another pod, through the Service's DNS name (CoreDNS, kube-proxy).
        let url = format!("http://{name}.{namespace}.svc.cluster.local:8080/");
        // Retried for a while: kube-proxy programs a new Service's rules a moment after it exists.
        let script = format!(
            "import time, urllib.request as u\n\
             for attempt in range(60):\n\
             \x20   try:\n\
             \x20       r = u.urlopen(u.Request({url:?}, data=b'from-a-pod', headers={{'Content-Type': 'text/plain'}}), timeout=20)\n\
             \x20       print(r.status, r.read().decode()); break\n\
             \x20   except OSError as e:\n\
             \x20       print('attempt', attempt, e); time.sleep(0.5)\n"
        );
        let log = run_in_pod(plane, &namespace, &format!("client-{name}"), &script);
        assert!(log.contains("200") && log.contains("from-a-pod"), "{name} from a pod: {log}");
        // Logs: the pod's, as the runtime wrote them at start.
        let logs = ok(plane, &["function", "logs", name, "-n", &namespace]);
        assert!(logs.contains("hello.hello"), "{name} logs:\n{logs}");
    }
    if plane.has_real_node() {
        // An update rolls the pod: the new code answers.
        let dir = tempfile::tempdir().unwrap();
        let updated = dir.path().join("hello.py");
        let code = "def hello(event, context):\n    print('called again', flush=True)\n    return 'hello again'\n";
        std::fs::write(&updated, code).unwrap();
        let before = running_pods(plane, &namespace, "hello-py");
        ok(plane, &["function", "update", "hello-py", "-n", &namespace, "--from-file", &updated.display().to_string()]);
        eventually(plane, "the updated function to answer", POD_TIMEOUT, || {
            let out = kelp(plane, &["function", "call", "hello-py", "-n", &namespace]);
            (String::from_utf8_lossy(&out.stdout).trim() == "hello again").then_some(())
        });
        let after = running_pods(plane, &namespace, "hello-py");
        assert!(after.iter().all(|p| !before.contains(p)), "the pod was not replaced: {before:?} → {after:?}");
        let logs = eventually(plane, "the new pod's log of the call", Duration::from_secs(30), || {
            let out = kelp(plane, &["function", "logs", "hello-py", "-n", &namespace]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("called again").then_some(text)
        });
        assert!(logs.contains("called again"));
    }
    for name in ["hello-py", "hello-js"] {
        ok(plane, &["function", "delete", name, "-n", &namespace]);
        eventually(plane, &format!("{name}'s pods to go"), POD_TIMEOUT, || {
            running_pods(plane, &namespace, name).is_empty().then_some(())
        });
        let deployments = json(plane, &["-n", &namespace, "get", "deployments", "-l", &format!("function={name}")]);
        assert_eq!(deployments["items"].as_array().unwrap().len(), 0, "{name}: {deployments}");
    }
}

#[test]
fn dependencies_are_installed_by_the_install_init_container() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "deps");
    let namespace = namespace(plane, "deps");
    let examples = kelp_testkit::repo_root().join("examples");
    // The node's pods reach the package registries only through the test's proxy.
    let proxy = format!("https_proxy={EGRESS_PROXY}");
    let python = examples.join("python/withdeps");
    let requirements = python.join("requirements.txt").display().to_string();
    deploy(
        plane,
        &namespace,
        "titles",
        &python.join("titles.py"),
        "titles.title",
        "python3.11",
        &["--dependencies", &requirements, "--env", &proxy],
    );
    let node = examples.join("nodejs/withdeps");
    let package = node.join("package.json").display().to_string();
    deploy(
        plane,
        &namespace,
        "dates",
        &node.join("dates.js"),
        "dates.handler",
        "nodejs20",
        &["--dependencies", &package, "--env", &proxy],
    );
    if !plane.has_real_node() {
        return;
    }
    let title = call(plane, &namespace, "titles", &["--data", "<html><title>From PyPI</title></html>"]);
    assert_eq!(title.trim(), "From PyPI");
    let dated = call(plane, &namespace, "dates", &["--data", r#"{"a":1}"#]);
    let dated: Value = serde_json::from_str(&dated).unwrap_or_else(|e| panic!("{e}: {dated}"));
    assert_eq!(dated["a"], 1, "{dated}");
    assert!(dated["date"].as_str().is_some_and(|d| d.ends_with("GMT")), "{dated}");
}

#[test]
fn a_cronjob_triggers_job_calls_its_function() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "cron");
    let namespace = namespace(plane, "cron");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tick.py");
    std::fs::write(
        &file,
        "def tick(event, context):\n    print('ticked by', event['event-namespace'], flush=True)\n    return 'ok'\n",
    )
    .unwrap();
    deploy(plane, &namespace, "ticked", &file, "tick.tick", "python3.11", &[]);
    ok(
        plane,
        &[
            "trigger",
            "cronjob",
            "create",
            "every-minute",
            "-n",
            &namespace,
            "--function",
            "ticked",
            "--schedule",
            "* * * * *",
        ],
    );
    let cronjob = eventually(plane, "the trigger's CronJob", Duration::from_secs(60), || {
        let out =
            plane.kubectl().args(["-n", &namespace, "get", "cronjob", "every-minute", "-o", "json"]).output().unwrap();
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(cronjob["spec"]["schedule"], "* * * * *");
    // The CronJob's own Job template, run now rather than at the next minute.
    kubectl(plane, &["-n", &namespace, "create", "job", "tick-now", "--from=cronjob/every-minute"]);
    let job = eventually(plane, "the Job to end", POD_TIMEOUT, || {
        let job = json(plane, &["-n", &namespace, "get", "job", "tick-now"]);
        let done =
            job["status"]["succeeded"].as_i64().unwrap_or(0) > 0 || job["status"]["failed"].as_i64().unwrap_or(0) > 0;
        done.then_some(job)
    });
    if plane.has_real_node() {
        assert_eq!(job["status"]["succeeded"], 1, "{job}");
        let logs = eventually(plane, "the function's log of the Job's call", Duration::from_secs(30), || {
            let out = kelp(plane, &["function", "logs", "ticked", "-n", &namespace]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("ticked by").then_some(text)
        });
        assert!(logs.contains("ticked by cronjobtrigger.kubeless.io"), "{logs}");
    }
}
