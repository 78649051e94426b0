//! The Serverless Framework (serverless 3.40.0) with its kubeless plugin (serverless-kubeless
//! 0.4.4), as `scripts/serverless` installs them, driving Kelp with the example services of
//! `examples/serverless/` unchanged: against a real `kelp up` (deploy, invoke, logs, info,
//! remove; a schedule and a Kafka event; runtimes Kelp cannot run), and against a real control
//! plane with `kelp install` and `kelp-controller` (deploy, info, remove).
//!
//! The Framework runs with `SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off`, which keep it
//! off the network, and its own HOME. Nothing asserts a timing.

#[path = "up/support.rs"]
// The harness of tests/up.rs, of which these tests use a part.
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kelp_testenv::{ControlPlane, ControllerProcess};
use serde_json::Value;
use support::{DEADLINE, Platform, Run, eventually};

const FUNCTIONS: &str = "/apis/kubeless.io/v1beta1/namespaces/default/functions";

/// A copy of the example service `examples/serverless/<name>` in `dir` (the Framework writes
/// its package into the service's directory), with `edit` applied to its `serverless.yml`.
fn service(name: &str, dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let from = kelp_testkit::repo_root().join("examples/serverless").join(name);
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let file = to.join("serverless.yml");
    std::fs::write(&file, edit(std::fs::read_to_string(&file).unwrap())).unwrap();
    to
}

/// `serverless <args>` in `service`, with `kubeconfig` as `$KUBECONFIG` (the plugin takes its
/// current context), off the network, HOME in `home`. A run still going after 5 minutes is hung
/// (the plugin's deploy polls without end while pods exist but are not ready): `timeout` stops
/// it, exit code 124.
fn sls(service: &Path, kubeconfig: &Path, home: &Path, args: &[&str]) -> Run {
    support::run(
        Command::new("timeout")
            .args(["--kill-after=10", "300"])
            .arg(kelp_testkit::serverless_bin())
            .args(args)
            .current_dir(service)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", home)
            .env("SLS_TELEMETRY_DISABLED", "1")
            .env("SLS_NOTIFICATIONS_MODE", "off"),
        None,
    )
}

/// Everything a run printed (the Framework logs on stderr, `invoke --log` answers on stdout).
fn output(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

/// Asserts that `run` succeeded and printed `needle`.
#[track_caller]
fn ok_with(run: Run, needle: &str) -> Run {
    let text = output(&run);
    assert!(run.code == 0 && text.contains(needle), "exit {}, no {needle:?} in:\n{text}", run.code);
    run
}

/// Asserts that `run` failed and printed `needle`.
#[track_caller]
fn fails_with(run: &Run, needle: &str) {
    let text = output(run);
    assert!(run.code != 0 && text.contains(needle), "exit {}, no {needle:?} in:\n{text}", run.code);
}

/// The condition `kind` of a Function's status.
fn condition<'a>(function: &'a Value, kind: &str) -> Option<&'a Value> {
    function.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind)
}

/// What an example service is expected to do on `kelp up`.
struct Example {
    name: &'static str,
    runtime: &'static str,
    dependencies: &'static str,
    /// What the function prints in its log when invoked with `<b>kelp</b>`.
    printed: &'static str,
    /// The schedule of its `schedule` event, if it has one.
    schedule: Option<&'static str>,
}

/// `sls deploy --verbose`, `invoke`, `logs`, `info` and `remove` of an example on a `kelp up`.
fn example_on_kelp_up(example: &Example) {
    let platform = Platform::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let service = service(example.name, work.path(), |text| text);
    let sls = |args: &[&str]| sls(&service, &platform.kubeconfig, work.path(), args);

    ok_with(sls(&["deploy", "--verbose"]), "Function hello successfully deployed");
    let function = platform.get_json(&format!("{FUNCTIONS}/hello"));
    assert_eq!(function["spec"]["runtime"], example.runtime);
    assert_eq!(function["spec"]["function-content-type"], "base64+zip");
    assert_eq!(function["spec"]["deps"].as_str().map(str::trim), Some(example.dependencies));
    // The interpreter installed here runs the runtime the service names, and says so.
    let interpreter = condition(&function, "RuntimeSubstituted").unwrap_or_else(|| panic!("{function}"));
    let runs_on = format!("runtime {} runs on ", example.runtime);
    assert!(interpreter["message"].as_str().is_some_and(|m| m.starts_with(&runs_on)), "{interpreter}");
    let pods = platform.get_json("/api/v1/namespaces/default/pods?labelSelector=function%3Dhello");
    assert_eq!(pods["items"][0]["status"]["containerStatuses"][0]["ready"], true, "the pod deploy waited for: {pods}");
    if let Some(schedule) = example.schedule {
        let trigger = platform.get_json("/apis/kubeless.io/v1beta1/namespaces/default/cronjobtriggers/hello");
        assert_eq!(
            (trigger["spec"]["function-name"].as_str(), trigger["spec"]["schedule"].as_str()),
            (Some("hello"), Some(schedule))
        );
    }

    // `invoke` prints the answer with --log: GET without data, POST with.
    let invoke = ok_with(sls(&["invoke", "-f", "hello", "--log"]), "Hello, World!");
    assert!(invoke.stdout.contains("Hello, World!"), "{invoke:?}");
    ok_with(sls(&["invoke", "-f", "hello", "--log", "-d", "<b>kelp</b>"]), "Hello, ");
    ok_with(sls(&["invoke", "-f", "hello"]), "Calling function: hello...");
    eventually("sls logs shows the call", DEADLINE, || {
        let logs = sls(&["logs", "-f", "hello"]);
        let text = output(&logs);
        // The access log line follows the response by a few milliseconds (written in batches).
        let logged = text.contains(example.printed) && text.contains(r#""POST / HTTP/1.1" 200"#);
        if logs.code == 0 && logged { Ok(()) } else { Err(text) }
    });
    let info = ok_with(sls(&["info"]), "Service Information \"hello\"");
    for line in [
        "Name:  http-function-port".to_owned(),
        "Handler:  handler.hello".to_owned(),
        format!("Runtime:  {}", example.runtime),
        format!("Dependencies:  {}", example.dependencies),
    ] {
        assert!(output(&info).contains(&line), "no {line:?} in {info:?}");
    }

    ok_with(sls(&["remove", "--verbose"]), "Removing function: hello");
    assert_eq!(platform.api("GET", &format!("{FUNCTIONS}/hello"), &[], "").unwrap().status, 404);
    let triggers = platform.get_json("/apis/kubeless.io/v1beta1/namespaces/default/cronjobtriggers");
    assert_eq!(triggers["items"].as_array().map(Vec::len), Some(0), "{triggers}");
    eventually("the function's pods are gone", DEADLINE, || {
        let pods = platform.get_json("/api/v1/namespaces/default/pods?labelSelector=function%3Dhello");
        if pods["items"].as_array().is_some_and(Vec::is_empty) { Ok(()) } else { Err(pods.to_string()) }
    });
}

#[test]
fn the_python_example_on_kelp_up() {
    example_on_kelp_up(&Example {
        name: "python",
        runtime: "python3.8",
        dependencies: "beautifulsoup4==4.12.3",
        printed: "hello greets 'kelp'",
        schedule: None,
    });
}

#[test]
fn the_nodejs_example_with_a_schedule_on_kelp_up() {
    example_on_kelp_up(&Example {
        name: "nodejs",
        runtime: "nodejs14",
        dependencies: r#"{
  "name": "hello-nodejs",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "lodash": "4.17.21"
  }
}"#,
        printed: r#"hello greets "<b>kelp</b>""#,
        schedule: Some("*/10 * * * *"),
    });
}

#[test]
fn runtimes_kelp_cannot_run_fail_the_deploy_with_a_clear_message() {
    let platform = Platform::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let runtime = |runtime: &'static str| move |text: String| text.replace("runtime: python3.8", runtime);
    // Not in the runtime-images of kubeless-config: the plugin refuses it itself.
    let ruby = service("python", &work.path().join("ruby"), runtime("runtime: ruby2.6"));
    let run = sls(&ruby, &platform.kubeconfig, work.path(), &["deploy", "--verbose"]);
    fails_with(&run, "The runtime ruby2.6 is not supported yet");
    // A Python the plugin lets through, which Kelp refuses when the Function is written.
    let python2 = service("python", &work.path().join("python2"), runtime("runtime: python2.7"));
    let run = sls(&python2, &platform.kubeconfig, work.path(), &["deploy", "--verbose"]);
    fails_with(&run, r#"spec.runtime: Unsupported value: "python2.7": cannot run on Python 3"#);
    let functions = platform.get_json(FUNCTIONS);
    assert_eq!(functions["items"].as_array().map(Vec::len), Some(0), "nothing was stored: {functions}");
}

#[test]
fn a_kafka_event_becomes_a_stored_kafka_trigger_on_kelp_up() {
    let platform = Platform::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let with_kafka = |text: String| text + "    events:\n      - trigger: orders\n";
    let service = service("python", work.path(), with_kafka);
    let sls = |args: &[&str]| sls(&service, &platform.kubeconfig, work.path(), args);
    ok_with(sls(&["deploy", "--verbose"]), "Deploying Kafka trigger: hello-orders");
    let trigger = platform.get_json("/apis/kubeless.io/v1beta1/namespaces/default/kafkatriggers/hello-orders");
    assert_eq!(trigger["spec"]["topic"], "orders");
    assert_eq!(trigger["spec"]["functionSelector"]["matchLabels"]["function"], "hello");
    ok_with(sls(&["remove"]), "Deleting PubSub trigger hello-orders");
    let triggers = platform.get_json("/apis/kubeless.io/v1beta1/namespaces/default/kafkatriggers");
    assert_eq!(triggers["items"].as_array().map(Vec::len), Some(0), "{triggers}");
}

/// `kubectl <args>` against the plane: its stdout, or `None` when it failed.
fn kubectl(plane: &ControlPlane, args: &[&str]) -> Option<String> {
    let out = plane.kubectl().args(args).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn on_a_cluster_deploy_waits_for_the_kelp_made_pods_then_info_and_remove() {
    let plane = ControlPlane::shared();
    let install = support::run(
        Command::new(env!("CARGO_BIN_EXE_kelp"))
            .arg("--kubeconfig")
            .arg(plane.kubeconfig())
            .args(["install", "--wait=false"]),
        None,
    );
    assert_eq!(install.code, 0, "{install:?}");
    let controller = ControllerProcess::start(plane, "sls", &["--leader-elect=false"]);
    let namespace = tokio::runtime::Runtime::new().unwrap().block_on(plane.namespace("sls"));
    let work = tempfile::tempdir().unwrap();
    // The plugin's way to another namespace than `default`: `provider.namespace`.
    let in_namespace = |text: String| {
        text.replace("  runtime: python3.8\n", &format!("  runtime: python3.8\n  namespace: {namespace}\n"))
    };
    let service = service("python", work.path(), in_namespace);
    let sls = |args: &[&str]| sls(&service, plane.kubeconfig(), work.path(), args);

    // The plugin reads kubeless-config (written by kelp install), creates the Function, and waits
    // until the pods of the Deployment Kelp made from it are ready (kwok's pods become ready
    // without running anything).
    let deploy = sls(&["deploy", "--verbose"]);
    let text = output(&deploy);
    let log = controller.log_tail();
    assert!(deploy.code == 0 && text.contains("Function hello successfully deployed"), "{text}\ncontroller:\n{log}");
    let deployment = kubectl(plane, &["get", "deployment", "hello", "-n", &namespace, "-o", "json"]);
    let deployment: Value = serde_json::from_str(&deployment.expect("Kelp made the Deployment")).unwrap();
    assert_eq!(deployment["metadata"]["ownerReferences"][0]["kind"], "Function");
    ok_with(sls(&["info"]), "Handler:  handler.hello");
    // `sls invoke` and `sls logs` need a running function: kwok's pods run nothing, so the
    // service proxy has nothing to reach. They are tested against `kelp up` above, through the
    // same API paths (services, their proxy, pod logs).

    ok_with(sls(&["remove"]), "Removing function: hello");
    eventually("the Function and what Kelp made of it are gone", Duration::from_secs(90), || {
        let left = kubectl(plane, &["get", "functions,deployments,services", "-n", &namespace, "-o", "name"]);
        match left {
            Some(left) if left.trim().is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}
