//! The two backends side by side: the same scenario, driven by the same `kelp` commands, against
//! `kelp up` and against a cluster with Kelp installed (`kelp-testenv`, kwok's node: pods become
//! Ready but run nothing), and what a client can observe of each object at each step compared.
//! README, "The two backends", lists what differs by design.

#[allow(dead_code)] // The harness of up.rs; this test uses part of it.
#[path = "up/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kelp_testenv::{ControlPlane, ControllerProcess};
use serde_json::{Value, json};

/// One backend: how to run `kelp` and `kubectl` against it, in which namespace.
struct Backend<'a> {
    name: &'static str,
    kubeconfig: &'a Path,
    namespace: String,
}

impl Backend<'_> {
    fn command(&self, program: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new(program)
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(self.kubeconfig)
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), if out.status.success() { text } else { String::from_utf8_lossy(&out.stderr).into() })
    }

    #[track_caller]
    fn kelp(&self, args: &[&str]) -> String {
        let (ok, text) = self.command(Path::new(env!("CARGO_BIN_EXE_kelp")), args);
        assert!(ok, "{}: kelp {args:?}: {text}", self.name);
        text
    }

    /// The cells of `kelp <args>`'s table, the namespace's name as `NS`.
    #[track_caller]
    fn table(&self, args: &[&str]) -> Value {
        json!(cells(&self.kelp(args).replace(&self.namespace, "NS")))
    }

    /// The object as JSON, or `Value::Null` when there is none.
    fn get(&self, what: &str) -> Value {
        let (ok, text) = self.command(&support::kubectl_bin(), &["get", what, "-o", "json"]);
        if ok { serde_json::from_str(&text).unwrap() } else { Value::Null }
    }

    /// Polls `check` until it gives a value (90 s at most).
    #[track_caller]
    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "{}: timed out waiting for {what}", self.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The cells of a table, line by line.
fn cells(table: &str) -> Vec<String> {
    table.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

/// What a client sees of an object's owners: kind, name, controller.
fn owners(object: &Value) -> Value {
    let refs = object.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default();
    refs.iter().map(|r| json!([r["kind"], r["name"], r["controller"]])).collect()
}

/// The labels of `object` among `keys`.
fn labels(object: &Value, keys: &[&str]) -> Value {
    keys.iter()
        .map(|k| (k.to_string(), object["metadata"]["labels"][k].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The scenario on one backend; what it observed, step by step.
fn scenario(backend: &Backend<'_>) -> Vec<(&'static str, Value)> {
    let hello = kelp_testkit::repo_root().join("examples/python/hello.py");
    let mut seen = Vec::new();
    let deploy = ["function", "deploy", "par", "--runtime", "python3.11", "--handler", "hello.hello"];
    backend
        .kelp(&[&deploy[..], &["--from-file", hello.to_str().unwrap(), "--label", "team=a", "--env", "X=1"]].concat());
    backend.eventually("par ready", || backend.kelp(&["function", "ls", "par"]).contains("1/1 READY").then_some(()));
    backend.kelp(&["trigger", "http", "create", "par-http", "--function-name", "par", "--hostname", "par.test"]);
    backend.kelp(&["trigger", "cronjob", "create", "par-cron", "--function", "par", "--schedule", "@daily"]);
    let kafka = ["trigger", "kafka", "create", "par-kafka", "--trigger-topic", "t", "--function-selector", "team=a"];
    backend.kelp(&kafka);
    backend.eventually("the triggers owned by par", || {
        let owned = |t: &str| owners(&backend.get(t)).as_array().is_some_and(|o| !o.is_empty());
        (owned("httptrigger/par-http") && owned("cronjobtrigger/par-cron")).then_some(())
    });

    let function = backend.get("function/par");
    let ready = |f: &Value| {
        let conditions = f.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        conditions.iter().find(|c| c["type"] == "Ready").map(|c| c["status"].clone()).unwrap_or_default()
    };
    seen.push(("function spec", function["spec"].clone()));
    seen.push(("function labels", function["metadata"]["labels"].clone()));
    seen.push(("function ready", ready(&function)));
    let service = backend.get("service/par");
    seen.push(("service ports", service["spec"]["ports"].clone()));
    seen.push(("service selector", service["spec"]["selector"].clone()));
    seen.push(("service labels", labels(&service, &["function", "created-by", "team"])));
    seen.push(("service owners", owners(&service)));
    let deployment = backend.get("deployment/par");
    seen.push(("deployment selector", deployment["spec"]["selector"].clone()));
    seen.push(("deployment labels", labels(&deployment, &["function", "created-by", "team"])));
    seen.push(("deployment owners", owners(&deployment)));
    seen.push(("deployment ready", deployment["status"]["readyReplicas"].clone()));
    for trigger in ["httptrigger/par-http", "cronjobtrigger/par-cron", "kafkatrigger/par-kafka"] {
        let object = backend.get(trigger);
        seen.push(("trigger spec", object["spec"].clone()));
        seen.push(("trigger owners", owners(&object)));
    }
    for kind in ["http", "cronjob", "kafka"] {
        seen.push(("trigger list", backend.table(&["trigger", kind, "list"])));
    }
    seen.push(("function ls", backend.table(&["function", "ls", "par"])));

    backend.kelp(&["function", "update", "par", "--env", "Y=2"]);
    let updated = backend.eventually("the update observed and ready", || {
        let f = backend.get("function/par");
        let observed = f.pointer("/status/observedGeneration") == f.pointer("/metadata/generation");
        (observed && ready(&f) == "True").then_some(f)
    });
    seen.push(("updated spec", updated["spec"].clone()));
    seen.push(("updated generation", updated["metadata"]["generation"].clone()));

    backend.kelp(&["function", "delete", "par"]);
    backend.eventually("par and what it owns gone", || {
        let gone = |what: &str| backend.get(what).is_null();
        (gone("function/par") && gone("service/par") && gone("deployment/par") && gone("httptrigger/par-http"))
            .then_some(())
    });
    seen.push((
        "after delete",
        json!([backend.get("cronjobtrigger/par-cron").is_null(), backend.get("kafkatrigger/par-kafka").is_null(),]),
    ));
    seen
}

#[test]
fn the_same_scenario_gives_the_same_observations_on_kelp_up_and_a_cluster() {
    let plane = ControlPlane::shared();
    let installed = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(["install", "--wait=false"])
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    let _controller = ControllerProcess::start(plane, "parity", &["--config-namespace", "kubeless"]);
    let namespace = tokio::runtime::Runtime::new().unwrap().block_on(plane.namespace("parity"));
    let cluster = Backend { name: "cluster", kubeconfig: plane.kubeconfig(), namespace };
    let platform = support::Platform::start(&[]);
    let local = Backend { name: "kelp up", kubeconfig: &platform.kubeconfig, namespace: "default".into() };

    let on_cluster = scenario(&cluster);
    let on_kelp_up = scenario(&local);
    let differences: Vec<String> = on_cluster
        .iter()
        .zip(&on_kelp_up)
        .filter(|(c, u)| c != u)
        .map(|((step, c), (_, u))| format!("{step}:\n  cluster: {c}\n  kelp up: {u}"))
        .collect();
    assert!(differences.is_empty(), "the backends differ:\n{}", differences.join("\n"));
}
