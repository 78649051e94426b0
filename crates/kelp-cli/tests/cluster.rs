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

/// `kubeless <args>` (the original CLI v1.0.8, unchanged) with the plane's kubeconfig.
fn kubeless(plane: &ControlPlane, args: &[&str]) -> Output {
    Command::new(kelp_testkit::kubeless_bin())
        .env("KUBECONFIG", plane.kubeconfig())
        .env_remove("KUBELESS_NAMESPACE")
        .env_remove("KUBELESS_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

/// [`kubeless`], asserting success; returns stdout and stderr.
fn kubeless_ok(plane: &ControlPlane, args: &[&str]) -> (String, String) {
    let out = kubeless(plane, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubeless {args:?} failed:\n{stdout}{stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

/// The kubeless CLI v1.0.8 on a cluster with Kelp installed, beside `hello` (deployed by `kelp`,
/// ready): what works, and the two reads a current Kubernetes cannot answer (README, "The
/// original kubeless CLI"). kwok's pods run nothing: `call`, `logs` and `top` are driven against
/// `kelp up` (tests/up.rs, `the_kubeless_cli_drives_kelp_up`).
fn kubeless_on_the_cluster(plane: &ControlPlane, ns: &str, controller: &ControllerProcess) {
    // get-server-config reads the Function CRD through apiextensions.k8s.io/v1beta1, gone since
    // Kubernetes 1.22.
    let config = kubeless(plane, &["get-server-config"]);
    let said = String::from_utf8_lossy(&config.stderr);
    assert!(!config.status.success() && said.contains("the server could not find the requested resource"), "{said}");
    let listed = kubeless_ok(plane, &["function", "ls", "hello", "-n", ns]).0;
    assert_eq!(listed, ok(plane, &["function", "ls", "hello", "-n", ns]), "the same table, byte for byte");
    let described = kubeless_ok(plane, &["function", "describe", "hello", "-n", ns]).0;
    assert!(described.contains("echo.handler") && described.contains("python3.11"), "{described}");

    let echo = kelp_testkit::repo_root().join("examples/python/echo.py");
    let echo = echo.to_str().unwrap();
    let deploy = ["function", "deploy", "echo", "-n", ns, "-r", "python3.11", "--handler", "echo.handler", "-f", echo];
    let (_, said) = kubeless_ok(plane, &deploy);
    assert!(said.contains("Runtime check is disabled") && said.contains("Function echo submitted"), "{said}");
    eventually("kubeless function ls to show echo ready", controller, || {
        kubeless_ok(plane, &["function", "ls", "echo", "-n", ns]).0.contains("1/1 READY").then_some(())
    });
    // update reads that CRD too, and unlike deploy stops when it cannot.
    let update = kubeless(plane, &["function", "update", "echo", "-n", ns, "--memory", "64Mi"]);
    let said = String::from_utf8_lossy(&update.stderr);
    assert!(!update.status.success() && said.contains("Error while fetching config location"), "{said}");

    let creates: [&[&str]; 4] = [
        &["trigger", "http", "create", "echo-route", "--function-name", "echo", "--hostname", "echo.test"],
        &["trigger", "cronjob", "create", "echo-cron", "--function", "echo", "--schedule", "*/5 * * * *"],
        &["trigger", "kafka", "create", "echo-kafka", "--trigger-topic", "t", "--function-selector", "function=echo"],
        &["trigger", "nats", "create", "echo-nats", "--trigger-topic", "t", "--function-selector", "function=echo"],
    ];
    for create in creates {
        kubeless_ok(plane, &[create, &["-n", ns]].concat());
        let kind = create[1];
        let list = kubeless_ok(plane, &["trigger", kind, "list", "-n", ns]).0;
        assert_eq!(list, ok(plane, &["trigger", kind, "list", "-n", ns]), "trigger {kind} list, byte for byte");
        assert!(list.contains(create[3]), "{list}");
    }
    let children = |kind: &str| kubectl(plane, &["get", kind, "-n", ns, "-o", "name"]);
    eventually("the Ingress and CronJob of kubeless's triggers", controller, || {
        (children("ingress").contains("echo-route") && children("cronjob").contains("echo-cron")).then_some(())
    });

    kubeless_ok(plane, &["autoscale", "create", "echo", "-n", ns, "--min", "1", "--max", "2", "--value", "70"]);
    eventually("the HPA of kubeless's autoscale rule", controller, || {
        children("hpa").contains("horizontalpodautoscaler.autoscaling/echo").then_some(())
    });
    // autoscaling/v2beta1, gone since Kubernetes 1.25.
    let listed = kubeless(plane, &["autoscale", "list", "-n", ns]);
    assert!(String::from_utf8_lossy(&listed.stderr).contains("could not find the requested resource"));
    kubeless_ok(plane, &["autoscale", "delete", "echo", "-n", ns]);
    eventually("the HPA to go with the rule", controller, || {
        (!children("hpa").contains("horizontalpodautoscaler.autoscaling/echo")).then_some(())
    });

    for name in ["echo-route", "echo-cron", "echo-kafka", "echo-nats"] {
        let kind = name.trim_start_matches("echo-").replace("route", "http").replace("cron", "cronjob");
        kubeless_ok(plane, &["trigger", &kind, "delete", name, "-n", ns]);
    }
    // `call -d` posts to the Service's selfLink, which Kubernetes stopped filling in 1.20: the path
    // it builds is no API path at all (whatever the pods run).
    let post = kubeless(plane, &["function", "call", "echo", "-n", ns, "-d", "x"]);
    let said = String::from_utf8_lossy(&post.stderr);
    assert!(!post.status.success() && said.contains("the server could not find the requested resource"), "{said}");
    kubeless_ok(plane, &["function", "delete", "echo", "-n", ns]);
    eventually("echo and its children to be gone", controller, || {
        (!children("deployments").contains("echo") && !children("ingress").contains("echo")).then_some(())
    });
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

    kubeless_on_the_cluster(plane, &ns, &controller);

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
