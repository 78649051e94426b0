//! The `kelp` CLI against a cluster: a real control plane (`kelp-testenv`, kwok nodes), Kelp
//! installed with `kelp install`, and `kelp-controller` running with the credentials of the
//! ServiceAccount `kelp install` made (a token from `kubectl create token`), so the test also
//! proves the installed RBAC is enough. kwok pods run no code: `call`, `logs` and `top` need
//! running pods and are tested against `kelp up` (tests/up.rs), on the same code path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kelp_testenv::{ControlPlane, ControllerProcess};
use serde_json::{Value, json};

fn kelp(plane: &ControlPlane, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kelp")).arg("--kubeconfig").arg(plane.kubeconfig()).args(args).output().unwrap()
}

/// Runs `kelp`, asserting success; returns stdout and stderr.
fn ok(plane: &ControlPlane, args: &[&str]) -> String {
    let out = kelp(plane, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kelp {args:?} failed:\n{text}");
    text
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let out = plane.kubectl().args(args).output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 200 ms for up to 90 s.
fn eventually<T>(what: &str, controller: &ControllerProcess, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; controller log:\n{}", controller.log_tail());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A kubeconfig for the plane's API server with `token` as the only credential.
fn token_kubeconfig(plane: &ControlPlane, token: &str, dir: &Path) -> PathBuf {
    let admin: Value = serde_saphyr::from_str(&std::fs::read_to_string(plane.kubeconfig()).unwrap()).unwrap();
    let cluster = admin["clusters"][0]["cluster"].clone();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "plane", "cluster": cluster}],
        "users": [{"name": "kelp-controller", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "plane", "user": "kelp-controller"}}],
        "current-context": "sa",
    });
    let path = dir.join("service-account.kubeconfig");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn the_cli_drives_functions_and_triggers_on_a_cluster_with_the_installed_rbac() {
    let plane = ControlPlane::shared();
    ok(plane, &["install", "--wait=false"]);
    let token = kubectl(plane, &["create", "token", "kelp-controller", "-n", "kubeless", "--duration", "1h"]);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = token_kubeconfig(plane, token.trim(), dir.path());
    // Leader election on, as installed: the Lease lives in the install namespace.
    let controller = ControllerProcess::start_as(plane, &kubeconfig, "installed", &["--config-namespace", "kubeless"]);
    let runtime_rt = tokio::runtime::Runtime::new().unwrap();
    let ns = runtime_rt.block_on(plane.namespace("cli"));
    let hello = kelp_testkit::repo_root().join("examples/python/hello.py");
    let hello = hello.to_str().unwrap();

    let deployed = ok(
        plane,
        &["function", "deploy", "hello", "-n", &ns, "--runtime", "python3.11", "--handler", "hello.handler"]
            .into_iter()
            .chain(["--from-file", hello, "--wait", "--wait-timeout", "90"])
            .collect::<Vec<_>>(),
    );
    assert!(deployed.contains("ready"), "deploy --wait reports readiness:\n{deployed}");
    let listed = ok(plane, &["function", "ls", "-n", &ns]);
    assert!(listed.contains("hello") && listed.contains("1/1 READY"), "READY comes from the status:\n{listed}");
    let described = ok(plane, &["function", "describe", "hello", "-n", &ns]);
    assert!(described.contains("hello.handler") && described.contains("python3.11"), "{described}");

    ok(
        plane,
        &[
            "trigger",
            "http",
            "create",
            "hello-route",
            "-n",
            &ns,
            "--function-name",
            "hello",
            "--hostname",
            "hello.example.test",
            "--path",
            "hello",
        ],
    );
    ok(
        plane,
        &["trigger", "cronjob", "create", "hello-cron", "-n", &ns, "--function", "hello", "--schedule", "*/5 * * * *"],
    );
    ok(plane, &["autoscale", "create", "hello", "-n", &ns, "--min", "1", "--max", "3", "--value", "50"]);
    let children = |kind: &str| kubectl(plane, &["get", kind, "-n", &ns, "-o", "name"]);
    eventually("the Ingress, CronJob and HPA", &controller, || {
        let made = children("ingress").contains("hello-route")
            && children("cronjob").contains("hello-cron")
            && children("hpa").contains("hello");
        made.then_some(())
    });
    let autoscalers = ok(plane, &["autoscale", "list", "-n", &ns]);
    assert!(autoscalers.contains("hello"), "{autoscalers}");

    // An update rolls the pods and the function is ready again.
    let generation =
        || kubectl(plane, &["get", "deployment", "hello", "-n", &ns, "-o", "jsonpath={.metadata.generation}"]);
    let before: i64 = generation().trim().parse().unwrap();
    let echo = kelp_testkit::repo_root().join("examples/python/echo.py");
    ok(
        plane,
        &["function", "update", "hello", "-n", &ns, "--from-file", echo.to_str().unwrap(), "--handler", "echo.handler"],
    );
    eventually("the update to roll the Deployment", &controller, || {
        (generation().trim().parse::<i64>().unwrap() > before).then_some(())
    });
    eventually("the updated function to be ready", &controller, || {
        ok(plane, &["function", "ls", "-n", &ns]).contains("1/1 READY").then_some(())
    });

    ok(plane, &["function", "delete", "hello", "-n", &ns]);
    eventually("the function, its children and its triggers to be gone", &controller, || {
        let gone = children("functions").is_empty()
            && children("deployments").is_empty()
            && children("httptriggers").is_empty()
            && children("cronjobtriggers").is_empty();
        gone.then_some(())
    });
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(!log.contains("forbidden"), "the installed RBAC must allow everything the controller does:\n{log}");
    let holder =
        kubectl(plane, &["get", "lease", "kelp-controller", "-n", "kubeless", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert_eq!(holder, "installed", "the controller leads through the Lease it may write");
}
