//! End-to-end tests of `kelp up`: the real `kelp` binary runs the platform (`kelp up` on a free
//! loopback port, its own data directory and kubeconfig, the real `kelp-runtime`), and the tests
//! drive it the way a user does: the `kelp` CLI, real kubectl, and plain HTTP to the functions.
//!
//! Every test starts its own platform (see `up/support.rs`); nothing asserts a timing, eventual
//! conditions are polled with generous deadlines and report what they last saw.

#[path = "up/compiled.rs"]
mod compiled;
#[path = "up/events.rs"]
mod events;
#[path = "up/kinesis.rs"]
mod kinesis;
#[path = "up/plugins.rs"]
mod plugins;
#[path = "up/support.rs"]
mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{DEADLINE, Platform, Proc, eventually, get, request};

/// The processes serving `name` now: the `kelp-runtime` of each of its Pods (found by the Pod's
/// port) and everything below it (the language workers).
fn function_processes(platform: &Platform, name: &str) -> Vec<Proc> {
    let pods = platform.get_json(&format!("/api/v1/namespaces/default/pods?labelSelector=function%3D{name}"));
    let mut found = Vec::new();
    for pod in pods["items"].as_array().unwrap() {
        let Some(port) = pod.pointer("/spec/containers/0/ports/0/containerPort").and_then(Value::as_u64) else {
            continue;
        };
        if let Some(runtime) = platform.runtime_on_port(u16::try_from(port).unwrap()) {
            found.push(runtime);
            found.extend(runtime.descendants());
        }
    }
    found
}

/// Names of the objects of a list answer.
fn names(list: &Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Whether `kelp function ls` lists `name`.
fn listed(platform: &Platform, name: &str) -> bool {
    let out = platform.kelp(&["function", "ls"]).ok().stdout;
    out.lines().any(|l| l.split_whitespace().next() == Some(name))
}

// ---------------------------------------------------------------------------------------------
// 1. The CLI lifecycle.

const PY_V1: &str = r#"
def hello(event, context):
    data = event["data"]
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    print("py-saw", data, event["event-namespace"], flush=True)
    return {"version": 1, "data": data, "namespace": event["event-namespace"]}
"#;

const JS_V1: &str = r#"
module.exports = {
  hello: (event, context) => {
    console.log('js-saw', JSON.stringify(event.data), event['event-namespace']);
    return { version: 1, data: event.data, namespace: event['event-namespace'] };
  },
};
"#;

/// deploy, ls, call (GET and POST), logs, update, delete: through the CLI only.
fn cli_lifecycle(runtime: &str, file: &str, v1: &str, printed: &str) {
    let platform = Platform::start(&[]);
    let name = "lifecycle";
    let handler = format!("{}.hello", file.split('.').next().unwrap());
    platform.deploy(name, runtime, file, v1, &handler, &[]);
    assert!(listed(&platform, name), "function ls shows {name}");

    let call = |data: Option<&str>| -> Value {
        let mut args = vec!["function", "call", name];
        if let Some(d) = data {
            args.extend(["-d", d]);
        }
        let body = eventually(&format!("kelp function call {name} succeeds"), DEADLINE, || {
            let run = platform.kelp(&args);
            if run.code == 0 { Ok(run.stdout) } else { Err(format!("{run:?}")) }
        });
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("the answer is JSON: {e}: {body:?}"))
    };
    let got = call(None);
    assert_eq!(got["version"], 1, "{got}");
    assert_eq!(got["namespace"], "cli.kubeless.io", "{got}");
    let got = call(Some(r#"{"it-s":"alive"}"#));
    assert_eq!(got["data"], json!({"it-s": "alive"}), "{got}");
    assert_eq!(got["namespace"], "cli.kubeless.io", "{got}");

    // The platform's /metrics carries the function's own series, labelled by function.
    let metrics = platform.api("GET", "/metrics", &[], "").unwrap().body;
    let wanted = format!("function_calls_total{{namespace=\"default\",function=\"{name}\",pod=\"");
    let calls = metrics.lines().find(|l| l.starts_with(&wanted) && l.contains("method=\"POST\""));
    assert!(calls.is_some_and(|l| l.ends_with(" 1")), "no POST count of 1 for {name} in:\n{metrics}");

    let logs = eventually("the logs show the call", DEADLINE, || {
        let logs = platform.logs(name);
        let ok = logs.contains(printed) && logs.contains(r#""POST / HTTP/1.1" 200"#);
        if ok { Ok(logs) } else { Err(logs) }
    });
    assert!(logs.contains("cli.kubeless.io"), "{logs}");
    let v1_processes = function_processes(&platform, name);
    assert!(!v1_processes.is_empty(), "a process serves {name}");

    // `"version": 1` in Python, `version: 1` in JavaScript.
    let v2_code = v1.replace(r#""version": 1"#, r#""version": 2"#).replace("version: 1", "version: 2");
    let v2 = platform.write(&format!("v2-{file}"), &v2_code);
    platform.kelp(&["function", "update", name, "--from-file", &v2]).ok();
    eventually("the call answers version 2", DEADLINE, || {
        let run = platform.kelp(&["function", "call", name]);
        let got: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        if got["version"] == 2 { Ok(()) } else { Err(format!("{run:?}")) }
    });
    eventually("the first version's processes have stopped", DEADLINE, || {
        let left: Vec<_> = v1_processes.iter().filter(|p| p.alive()).map(Proc::cmdline).collect();
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    });

    let v2_processes = function_processes(&platform, name);
    assert!(!v2_processes.is_empty(), "a process serves {name}");
    platform.kelp(&["function", "delete", name]).ok();
    assert!(!listed(&platform, name), "function ls no longer shows {name}");
    eventually("no process of the function remains", DEADLINE, || {
        let left: Vec<_> = v2_processes.iter().filter(|p| p.alive()).map(Proc::cmdline).collect();
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    });
    let pods = platform.get_json("/api/v1/namespaces/default/pods?labelSelector=function%3Dlifecycle");
    assert!(names(&pods).is_empty(), "{pods}");
    platform.kelp(&["function", "call", name]).fails_with("not found");
}

#[test]
fn cli_lifecycle_python() {
    cli_lifecycle("python3.8", "hello.py", PY_V1, "py-saw {'it-s': 'alive'} cli.kubeless.io");
}

#[test]
fn cli_lifecycle_node() {
    cli_lifecycle("nodejs20", "handler.js", JS_V1, r#"js-saw {"it-s":"alive"} cli.kubeless.io"#);
}

// ---------------------------------------------------------------------------------------------
// 2. kubectl.

fn node_manifest(name: &str, labels: &str, handler: &str, code: &str) -> String {
    let code: String = code.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: kubeless.io/v1beta1\nkind: Function\nmetadata:\n  name: {name}\n  labels: {labels}\n\
         spec:\n  runtime: nodejs20\n  handler: {handler}\n  function-content-type: text\n  function: |\n{code}"
    )
}

#[test]
fn kubectl_apply_get_watch_replace_delete() {
    let platform = Platform::start(&[]);
    let manifest = node_manifest(
        "kube",
        "{team: blue}",
        "handler.hello",
        "module.exports = { hello: (event, context) => 'node v1' };",
    );
    let file = platform.write("kube.yaml", &manifest);
    let applied = platform.kubectl(&["apply", "-f", &file]).ok();
    assert!(applied.stdout.contains("function.kubeless.io/kube created"), "{applied:?}");

    let table = platform.kubectl(&["get", "functions"]).ok().stdout;
    assert!(table.lines().any(|l| l.starts_with("kube ")), "{table}");
    let object = eventually("the Function is Ready", DEADLINE, || {
        let yaml = platform.kubectl(&["get", "fn", "kube", "-o", "yaml"]).ok().stdout;
        let object: Value = serde_saphyr::from_str(&yaml).map_err(|e| format!("{e}: {yaml}"))?;
        let ready = object
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if ready { Ok(object) } else { Err(yaml) }
    });
    assert_eq!(object["metadata"]["labels"]["team"], "blue");
    let blue = platform.kubectl(&["get", "functions", "-l", "team=blue", "-o", "name"]).ok().stdout;
    assert_eq!(blue.trim(), "function.kubeless.io/kube");
    let red = platform.kubectl(&["get", "functions", "-l", "team=red", "-o", "name"]).ok();
    assert_eq!(red.stdout.trim(), "", "{red:?}");
    platform.call_until("kube", |body| body == "node v1");

    // A copy of the object as it is now, to replace it with once it has changed.
    let stale = platform.kubectl(&["get", "fn", "kube", "-o", "yaml"]).ok().stdout;
    let stale = platform.write("stale.yaml", &stale);

    let mut watch = platform
        .kubectl_command(&[
            "get",
            "functions",
            "--watch",
            "-o",
            "custom-columns=NAME:.metadata.name,GEN:.metadata.generation",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for_line = |wanted: &[&str]| {
        let start = Instant::now();
        loop {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                let words: Vec<&str> = line.split_whitespace().collect();
                seen.push(line.clone());
                if words == wanted {
                    return;
                }
            }
            assert!(start.elapsed() < DEADLINE, "the watch did not print {wanted:?}; it printed {seen:?}");
        }
    };
    wait_for_line(&["kube", "1"]);
    let v2 = platform.write("v2.js", "module.exports = { hello: (event, context) => 'node v2' };\n");
    platform.kelp(&["function", "update", "kube", "--from-file", &v2]).ok();
    wait_for_line(&["kube", "2"]);
    watch.kill().unwrap();
    watch.wait().unwrap();
    reader.join().unwrap();

    let refused = platform.kubectl(&["replace", "-f", &stale]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("Conflict") && refused.stderr.contains("modified"), "{refused:?}");
    platform.call_until("kube", |body| body == "node v2");
    let generation = platform.kubectl(&["get", "fn", "kube", "-o", "jsonpath={.metadata.generation}"]).ok().stdout;
    assert_eq!(generation, "2", "the stale replace changed nothing");

    let deleted = platform.kubectl(&["delete", "-f", &file]).ok();
    assert!(deleted.stdout.contains("deleted"), "{deleted:?}");
    let gone = platform.kubectl(&["get", "fn", "kube"]);
    assert!(gone.code != 0 && gone.stderr.contains("NotFound"), "{gone:?}");
    eventually("the short URL no longer answers", DEADLINE, || match get(platform.port, "/default/kube/") {
        Ok(r) if r.status == 404 => Ok(()),
        other => Err(format!("{other:?}")),
    });
}

// ---------------------------------------------------------------------------------------------
// 3. An update fails no request.

#[test]
fn update_fails_no_request() {
    let platform = Platform::start(&[]);
    let code = "def hello(event, context):\n    return 'v1'\n";
    platform.deploy("swap", "python3.8", "swap.py", code, "swap.hello", &[]);
    platform.call_until("swap", |body| body == "v1");

    let stop = Arc::new(AtomicBool::new(false));
    let port = platform.port;
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut replies = Vec::new();
            while !stop.load(Ordering::Acquire) {
                replies.push(match get(port, "/default/swap/") {
                    Ok(r) => (r.status, r.body),
                    Err(e) => (0, e.to_string()),
                });
            }
            replies
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let v2 = platform.write("swap-v2.py", "def hello(event, context):\n    return 'v2'\n");
    platform.kelp(&["function", "update", "swap", "--from-file", &v2]).ok();
    platform.call_until("swap", |body| body == "v2");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    let replies = client.join().unwrap();
    let failed: Vec<_> = replies.iter().filter(|(status, _)| *status != 200).collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), replies.len());
    let bodies: Vec<&str> = replies.iter().map(|(_, b)| b.as_str()).collect();
    let first_v2 = bodies.iter().position(|b| *b == "v2").expect("the client saw the new code");
    assert!(bodies[..first_v2].iter().all(|b| *b == "v1"), "{bodies:?}");
    assert!(bodies[first_v2..].iter().all(|b| *b == "v2"), "no old answer after a new one: {bodies:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. Dependencies.

#[test]
fn dependencies_install_once_for_two_functions() {
    let platform = Platform::start(&[]);
    let requirements = platform.write("requirements.txt", "six==1.16.0\n");
    for name in ["deps-a", "deps-b"] {
        let code = format!("import six\n\ndef hello(event, context):\n    return '{name} six ' + six.__version__\n");
        platform.deploy(
            name,
            "python3.8",
            &format!("{name}.py"),
            &code,
            &format!("{name}.hello"),
            &["--dependencies", &requirements],
        );
    }
    // Both first calls at once: the second instance waits for the first one's install.
    std::thread::scope(|s| {
        for name in ["deps-a", "deps-b"] {
            let platform = &platform;
            s.spawn(move || platform.call_until(name, |body| body == format!("{name} six 1.16.0")));
        }
    });
    let installs = platform.data_dir.join("platform/cache/deps/python");
    let dirs: Vec<String> = std::fs::read_dir(&installs)
        .unwrap_or_else(|e| panic!("{}: {e}", installs.display()))
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.len(), 1, "one install for both functions: {dirs:?}");
    let installed: Vec<bool> = ["deps-a", "deps-b"]
        .iter()
        .map(|name| {
            let logs = eventually(&format!("{name} has a ready instance with a log"), DEADLINE, || {
                let logs = platform.logs(name);
                if logs.contains("function loaded") { Ok(logs) } else { Err(logs) }
            });
            logs.contains("dependencies installed")
        })
        .collect();
    assert_eq!(installed.iter().filter(|i| **i).count(), 1, "exactly one instance installed: {installed:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. HTTP triggers.

#[test]
fn http_trigger_routes_host_and_path() {
    let platform = Platform::start(&[]);
    let code = "def hello(event, context):\n    return 'greetings from ' + event['extensions']['request'].path\n";
    platform.deploy("greeter", "python3.8", "greeter.py", code, "greeter.hello", &[]);
    platform
        .kelp(&[
            "trigger",
            "http",
            "create",
            "t",
            "--function-name",
            "greeter",
            "--hostname",
            "example.test",
            "--path",
            "greet",
        ])
        .ok();
    // traefik has no rewrite: the function sees the request's path.
    let traefik = ["--gateway", "traefik", "--hostname", "kept.test", "--path", "keep"];
    platform.kelp(&[&["trigger", "http", "create", "kept", "--function-name", "greeter"][..], &traefik].concat()).ok();
    let host = [("Host", "example.test")];
    let answer = |path: &str, headers: &[(&str, &str)]| {
        eventually(&format!("{path} answers"), DEADLINE, || match request(platform.port, "GET", path, headers, "") {
            Ok(r) if r.status == 200 => Ok(r.body),
            other => Err(format!("{other:?}")),
        })
    };
    // nginx (the default) rewrites the path to `/`, as Kubeless's Ingress did on a cluster.
    assert_eq!(answer("/greet", &host), "greetings from /");
    assert_eq!(answer("/greet/deeper?x=1", &host), "greetings from /");
    assert_eq!(answer("/keep/x", &[("Host", "kept.test")]), "greetings from /keep/x");
    let other_host = request(platform.port, "GET", "/greet", &[("Host", "elsewhere.test")], "").unwrap();
    assert_eq!(other_host.status, 404, "another host is not routed: {other_host:?}");

    platform.kelp(&["trigger", "http", "delete", "t"]).ok();
    eventually("the route is gone", DEADLINE, || match request(platform.port, "GET", "/greet", &host, "") {
        Ok(r) if r.status == 404 => Ok(()),
        other => Err(format!("{other:?}")),
    });

    // As on a cluster, the HTTP and cron triggers of a Function are its owned objects, and go
    // with it; a Kafka trigger (a selector, not an owner) stays.
    let cron = ["trigger", "cronjob", "create", "nightly", "--function", "greeter", "--schedule", "@daily"];
    platform.kelp(&cron).ok();
    let topic = ["trigger", "kafka", "create", "k", "--trigger-topic", "t", "--function-selector", "function=greeter"];
    platform.kelp(&topic).ok();
    let uid = platform.kubectl(&["get", "function", "greeter", "-o", "jsonpath={.metadata.uid}"]).ok().stdout;
    for kind in ["httptrigger/kept", "cronjobtrigger/nightly"] {
        eventually(&format!("{kind} is owned by its function"), DEADLINE, || {
            let owner = platform.kubectl(&["get", kind, "-o", "jsonpath={.metadata.ownerReferences[0].uid}"]).ok();
            if owner.stdout == uid { Ok(()) } else { Err(owner.stdout) }
        });
    }
    platform.kelp(&["function", "delete", "greeter"]).ok();
    eventually("the function's triggers are deleted with it", DEADLINE, || {
        let left = platform.kubectl(&["get", "httptriggers,cronjobtriggers", "-o", "name"]).ok().stdout;
        if left.is_empty() { Ok(()) } else { Err(left) }
    });
    let kafka = platform.kubectl(&["get", "kafkatriggers", "-o", "name"]).ok().stdout;
    assert_eq!(kafka.trim(), "kafkatrigger.kubeless.io/k");
}

// ---------------------------------------------------------------------------------------------
// 5b. Secrets as files (`--secrets`; Kubeless's `get-python-secrets`).

/// A Secret volume is a file under `KELP_VOLUMES_DIR`, written again for a restarted instance; a
/// missing Secret is named in the function's status until it exists; the value is in no log.
#[test]
fn secrets_are_files_under_the_volumes_dir() {
    let platform = Platform::start(&[]);
    platform.kubectl(&["create", "secret", "generic", "test-secret", "--from-literal=key=MY_KEY"]).ok();
    // A POST removes the file and kills the instance's runtime: the restarted instance has it again.
    let code = "import os, signal\n\
                def handler(event, context):\n    \
                    path = os.environ['KELP_VOLUMES_DIR'] + '/test-secret/key'\n    \
                    value = open(path).read()\n    \
                    if event['extensions']['request'].method == 'POST':\n        \
                        os.remove(path)\n        \
                        os.kill(os.getppid(), signal.SIGKILL)\n    \
                    return value\n";
    platform.deploy(
        "get-python-secrets",
        "python3.8",
        "secrets.py",
        code,
        "secrets.handler",
        &["--secrets", "test-secret"],
    );
    assert_eq!(platform.call_until("get-python-secrets", |_| true), "MY_KEY");
    let called = platform.kelp(&["function", "call", "get-python-secrets"]).ok();
    assert_eq!(called.stdout.trim(), "MY_KEY");
    let crashed = request(platform.port, "POST", "/default/get-python-secrets/", &[], "x").unwrap();
    assert_ne!(crashed.status, 200, "the instance's runtime was killed: {crashed:?}");
    assert_eq!(platform.call_until("get-python-secrets", |_| true), "MY_KEY", "written again after the restart");

    let late = code.replace("test-secret", "absent");
    platform.deploy("no-secret", "python3.8", "late.py", &late, "late.handler", &["--secrets", "absent"]);
    let message = "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}";
    let said = eventually("the status names the missing Secret", DEADLINE, || {
        let now = platform.kubectl(&["get", "fn", "no-secret", "-o", message]).ok().stdout;
        if now.is_empty() { Err(now) } else { Ok(now) }
    });
    assert_eq!(said, "volume absent-vol: secret default/absent not found");
    platform.kubectl(&["create", "secret", "generic", "absent", "--from-literal=key=LATE_KEY"]).ok();
    assert_eq!(platform.call_until("no-secret", |_| true), "LATE_KEY");

    let logs = platform.stderr_text() + &platform.logs("get-python-secrets") + &platform.logs("no-secret");
    assert!(!logs.contains("MY_KEY") && !logs.contains("LATE_KEY"), "a secret value in the logs:\n{logs}");
}

// ---------------------------------------------------------------------------------------------
// 6. Cron triggers (60 times faster than real time: `* * * * *` fires every second).

#[test]
fn cron_trigger_fires_and_stops_when_deleted() {
    let platform = Platform::start(&["--cron-speed", "60"]);
    let code = "def tick(event, context):\n    print('cron-event', event['event-namespace'], event['data'], flush=True)\n    return 'ok'\n";
    platform.deploy("ticker", "python3.8", "ticker.py", code, "ticker.tick", &[]);
    platform
        .kelp(&[
            "trigger",
            "cronjob",
            "create",
            "c",
            "--function",
            "ticker",
            "--schedule",
            "* * * * *",
            "-p",
            r#"{"tick":1}"#,
        ])
        .ok();
    let line = "cron-event cronjobtrigger.kubeless.io {'tick': 1}";
    eventually("the function's log shows a cron call", DEADLINE, || {
        let logs = platform.logs("ticker");
        if logs.contains(line) && logs.contains(r#""POST / HTTP/1.1" 200"#) { Ok(()) } else { Err(logs) }
    });

    platform.kelp(&["trigger", "cronjob", "delete", "c"]).ok();
    // A call already on its way may still land: count once things have settled.
    std::thread::sleep(Duration::from_millis(1500));
    let before = platform.logs("ticker").matches(line).count();
    std::thread::sleep(Duration::from_secs(4));
    let logs = platform.logs("ticker");
    assert_eq!(
        logs.matches(line).count(),
        before,
        "no tick after the trigger was deleted (4 scheduled minutes): {logs}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Scale to zero and back.

#[test]
fn scales_to_zero_and_back() {
    let platform = Platform::start(&[]);
    let manifest = "apiVersion: kubeless.io/v1beta1\nkind: Function\nmetadata:\n  name: napper\n  \
                    annotations:\n    kelp.dev/idle-timeout: \"2s\"\nspec:\n  runtime: python3.8\n  handler: napper.hello\n  \
                    function-content-type: text\n  function: |\n    def hello(event, context):\n        return 'awake'\n";
    let file = platform.write("napper.yaml", manifest);
    platform.kubectl(&["apply", "-f", &file]).ok();
    platform.call_until("napper", |body| body == "awake");
    // Right after a call (the API directly: kubectl may take longer to start than the idle timeout).
    let api_pods = || names(&platform.get_json("/api/v1/namespaces/default/pods?labelSelector=function%3Dnapper"));
    assert_eq!(api_pods().len(), 1, "an instance runs after the call");
    let pods = || platform.kubectl(&["get", "pods", "-l", "function=napper", "-o", "name"]).ok().stdout;
    eventually("the function has scaled to zero", DEADLINE, || {
        let now = pods();
        if now.trim().is_empty() { Ok(()) } else { Err(now) }
    });
    let reason = "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}";
    eventually("the status says ScaledToZero", DEADLINE, || {
        let now = platform.kubectl(&["get", "fn", "napper", "-o", reason]).ok().stdout;
        if now == "ScaledToZero" { Ok(()) } else { Err(now) }
    });
    let again = get(platform.port, "/default/napper/").unwrap();
    assert_eq!((again.status, again.body.as_str()), (200, "awake"), "the next call starts an instance");
    assert_eq!(api_pods().len(), 1, "an instance runs again");
}

// ---------------------------------------------------------------------------------------------
// 8. Durability.

#[test]
fn sigkill_during_a_burst_of_writes_loses_no_acknowledged_object() {
    let mut platform = Platform::start(&[]);
    let code = "def hello(event, context):\n    return 'still here'\n";
    platform.deploy("survivor", "python3.8", "survivor.py", code, "survivor.hello", &[]);
    platform.call_until("survivor", |body| body == "still here");

    let acked: Arc<Mutex<Vec<(&str, String)>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let api = platform.api_client();
    let writers: Vec<_> = [("configmaps", "/api/v1/namespaces/default/configmaps"), (
        "functions",
        "/apis/kubeless.io/v1beta1/namespaces/default/functions",
    )]
    .into_iter()
    .map(|(resource, path)| {
        let (acked, unexpected, api) = (acked.clone(), unexpected.clone(), api.clone());
        std::thread::spawn(move || {
            for i in 0.. {
                let name = format!("burst-{i}");
                let object = if resource == "configmaps" {
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}})
                } else {
                    json!({"apiVersion": "kubeless.io/v1beta1", "kind": "Function", "metadata": {"name": name},
                           "spec": {"runtime": "python3.8", "handler": "burst.hello", "function-content-type": "text",
                                    "function": "def hello(event, context):\n    return 'burst'\n"}})
                };
                let headers = [("Content-Type", "application/json")];
                match api.request("POST", path, &headers, &object.to_string()) {
                    Ok(r) if r.status == 201 => acked.lock().unwrap().push((resource, name)),
                    Ok(r) => unexpected.lock().unwrap().push(format!("{resource} {name}: {} {}", r.status, r.body)),
                    // The platform is gone.
                    Err(_) => return,
                }
            }
        })
    })
    .collect();
    eventually("some writes are acknowledged", DEADLINE, || {
        let n = acked.lock().unwrap().len();
        if n >= 150 { Ok(()) } else { Err(format!("{n} acknowledged")) }
    });
    platform.sigkill();
    for writer in writers {
        writer.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(unexpected.lock().unwrap().is_empty(), "answers other than 201: {:?}", unexpected.lock().unwrap());

    eprintln!("{} writes acknowledged before the SIGKILL", acked.len());
    platform.restart();
    let configmaps = names(&platform.get_json("/api/v1/namespaces/default/configmaps"));
    let functions = names(&platform.get_json("/apis/kubeless.io/v1beta1/namespaces/default/functions"));
    let lost: Vec<_> = acked
        .iter()
        .filter(|(resource, name)| !(if *resource == "configmaps" { &configmaps } else { &functions }).contains(name))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost after the restart: {lost:?} (of {} acknowledged)", acked.len());
    assert!(functions.contains("survivor"), "{functions:?}");
    platform.call_until("survivor", |body| body == "still here");
    let listed = platform.kelp(&["function", "ls", "survivor"]).ok().stdout;
    assert!(listed.contains("survivor"), "{listed}");
}

#[test]
fn sigkill_of_the_platform_leaves_no_function_running() {
    let mut platform = Platform::start(&[]);
    let code = "def hello(event, context):\n    return 'hi'\n";
    platform.deploy("orphan", "python3.8", "orphan.py", code, "orphan.hello", &[]);
    platform.call_until("orphan", |body| body == "hi");
    let processes = function_processes(&platform, "orphan");
    assert!(!processes.is_empty(), "a process serves the function");
    platform.sigkill();
    // Instances run in their own process groups; `KELP_EXIT_WITH_PARENT` makes each one shut
    // down when the platform that started it is gone.
    eventually("the function's processes end with the platform", Duration::from_secs(10), || {
        let left: Vec<_> = processes.iter().filter(|p| p.alive()).map(|p| (p.pid, p.cmdline())).collect();
        if left.is_empty() { Ok(()) } else { Err(format!("still running: {left:?}")) }
    });
}

// ---------------------------------------------------------------------------------------------
// 9. Misbehaving functions.

#[test]
fn crashing_hanging_and_memory_hogging_functions_do_not_fail_a_healthy_one() {
    let platform = Platform::start(&[]);
    platform.deploy(
        "healthy",
        "python3.8",
        "healthy.py",
        "def ok(event, context):\n    return 'healthy'\n",
        "healthy.ok",
        &[],
    );
    platform.deploy(
        "crasher",
        "python3.8",
        "crasher.py",
        "import os\n\ndef boom(event, context):\n    os._exit(3)\n",
        "crasher.boom",
        &[],
    );
    let hang = "import time\n\ndef hang(event, context):\n    while True:\n        time.sleep(0.05)\n";
    platform.deploy("hanger", "python3.8", "hanger.py", hang, "hanger.hang", &["--timeout", "2"]);
    let hog = "import time\n\ndef hog(event, context):\n    chunks = []\n    for _ in range(30):\n        \
               chunks.append(b'x' * (10 << 20))\n        time.sleep(0.02)\n    return 'kept %d MiB' % (len(chunks) * 10)\n";
    platform.deploy("hog", "python3.8", "hog.py", hog, "hog.hog", &["--memory", "64Mi"]);
    platform.call_until("healthy", |body| body == "healthy");

    let stop = Arc::new(AtomicBool::new(false));
    let port = platform.port;
    let hammer = |name: &'static str| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Acquire) {
                statuses.push(get(port, &format!("/default/{name}/")).map_or(0, |r| r.status));
            }
            (name, statuses)
        })
    };
    let bad: Vec<_> = ["crasher", "crasher", "hanger", "hanger", "hog", "hog"].into_iter().map(hammer).collect();
    let healthy = hammer("healthy");
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Release);
    let (_, statuses) = healthy.join().unwrap();
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| *s == 200), "the healthy function's answers: {statuses:?}");
    let mut failures = std::collections::BTreeMap::<&str, Vec<u16>>::new();
    for thread in bad {
        let (name, statuses) = thread.join().unwrap();
        failures.entry(name).or_default().extend(statuses);
    }
    eprintln!("healthy: {} calls; misbehaving: {failures:?}", statuses.len());
    for (name, statuses) in &failures {
        assert!(statuses.iter().any(|s| *s != 200), "{name} misbehaved: {statuses:?}");
        assert!(!statuses.contains(&0), "{name}: every request got an answer: {statuses:?}");
    }
    assert!(failures["hanger"].contains(&408), "the hanging call timed out: {:?}", failures["hanger"]);
    let hog_pods = platform.get_json("/api/v1/namespaces/default/pods?labelSelector=function%3Dhog");
    let reasons: Vec<&str> = hog_pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.pointer("/status/containerStatuses/0/lastState/terminated/reason").and_then(Value::as_str))
        .collect();
    assert!(reasons.contains(&"OOMKilled"), "the hog was stopped for its memory: {hog_pods}");
    let after = get(platform.port, "/default/healthy/").unwrap();
    assert_eq!((after.status, after.body.as_str()), (200, "healthy"));
}

// ---------------------------------------------------------------------------------------------
// 10. Bad input.

#[test]
fn bad_manifests_and_bad_cli_input_change_nothing() {
    let platform = Platform::start(&[]);
    let good = platform.write("good.py", "def hello(event, context):\n    return 'good'\n");
    platform
        .kelp(&[
            "function",
            "deploy",
            "good",
            "--runtime",
            "python3.8",
            "--from-file",
            &good,
            "--handler",
            "good.hello",
        ])
        .ok();
    let functions = || platform.kubectl(&["get", "functions", "-o", "name"]).ok().stdout;
    let before = functions();
    assert_eq!(before.trim(), "function.kubeless.io/good");
    let code_dirs = || std::fs::read_dir(platform.data_dir.join("platform/code")).map_or(0, Iterator::count);
    platform.call_until("good", |body| body == "good");
    let code_before = code_dirs();

    let bad = node_manifest("badfn", "{a: b}", "nodots", "module.exports = { x: () => 'x' };");
    let bad = platform.write("bad.yaml", &bad);
    let kubectl = platform.kubectl(&["apply", "-f", &bad]);
    assert_ne!(kubectl.code, 0, "{kubectl:?}");
    assert!(kubectl.stderr.contains("spec.handler"), "kubectl's error names the field: {kubectl:?}");
    platform.kelp(&["apply", "-f", &bad]).fails_with("spec.handler");

    platform
        .kelp(&["function", "deploy", "x", "--runtime", "cobol9", "--from-file", &good, "--handler", "good.hello"])
        .fails_with("cobol9");
    platform
        .kelp(&[
            "function",
            "deploy",
            "y",
            "--runtime",
            "python3.8",
            "--from-file",
            "/no/such/file.py",
            "--handler",
            "a.b",
        ])
        .fails_with("/no/such/file.py");
    platform
        .kelp(&["function", "deploy", "z", "--runtime", "python3.8", "--from-file", &good, "--handler", "nodots"])
        .fails_with("handler");
    platform.kelp(&["function", "update", "nosuch", "--from-file", &good]).fails_with("not found");
    platform.kelp(&["function", "deploy", "w", "--bogus"]).fails_with("--bogus");
    let not_a_dir = platform.write("not-a-dir", "a file");
    let up = platform
        .kelp(&["up", "--no-kubeconfig", "--listen", "127.0.0.1:0", "--data-dir", &format!("{not_a_dir}/data")])
        .fails_with("data directory");
    assert_eq!(up.stderr.lines().count(), 1, "{up:?}");

    assert_eq!(functions(), before, "nothing new");
    assert!(!listed(&platform, "badfn") && !listed(&platform, "x") && !listed(&platform, "z"));
    assert_eq!(code_dirs(), code_before, "no code was materialised");
    let still = get(platform.port, "/default/good/").unwrap();
    assert_eq!((still.status, still.body.as_str()), (200, "good"));
}

#[test]
fn a_huge_timeout_or_a_module_path_is_refused_with_its_field() {
    let platform = Platform::start(&[]);
    let code = "module.exports = { hello: () => 'x' };";
    let huge = node_manifest("huge", "{}", "handler.hello", code) + "  timeout: \"18446744073709551615\"\n";
    let huge = platform.write("huge.yaml", &huge);
    let kubectl = platform.kubectl(&["apply", "-f", &huge]);
    assert_ne!(kubectl.code, 0, "{kubectl:?}");
    assert!(
        kubectl.stderr.contains("spec.timeout") && kubectl.stderr.contains("at most 604800 seconds"),
        "the API names the field and the bound: {kubectl:?}"
    );
    // An absolute path with no dot but the handler's own (the data directory's may have some).
    let escape = std::env::temp_dir().join(format!("kelp-escaped-{}", std::process::id()));
    assert!(!escape.display().to_string().contains('.'), "{}", escape.display());
    let path = node_manifest("path", "{}", &format!("{}.hello", escape.display()), code);
    let path = platform.write("path.yaml", &path);
    let kubectl = platform.kubectl(&["apply", "-f", &path]);
    assert_ne!(kubectl.code, 0, "{kubectl:?}");
    assert!(kubectl.stderr.contains("spec.handler"), "the API names the field: {kubectl:?}");
    let source = platform.write("x.js", code);
    platform
        .kelp(&[
            "function",
            "deploy",
            "t",
            "--runtime",
            "nodejs20",
            "--from-file",
            &source,
            "--handler",
            "x.hello",
            "--timeout",
            "18446744073709551615",
        ])
        .fails_with("spec.timeout");
    assert!(!listed(&platform, "huge") && !listed(&platform, "path") && !listed(&platform, "t"));
    assert!(!escape.with_extension("js").exists(), "no code was written outside the code directory");
}

#[test]
fn errors_give_their_cause_once() {
    let platform = Platform::start(&[]);
    let run = platform
        .kelp(&[
            "function",
            "deploy",
            "y",
            "--runtime",
            "python3.8",
            "--from-file",
            "/no/such/file.py",
            "--handler",
            "a.b",
        ])
        .fails_with("cannot read /no/such/file.py: No such file or directory");
    // The cause is said once, although `main` prints the whole error chain.
    let missing_file = run;

    // A second `kelp up` on the port the first one holds.
    let listen = format!("127.0.0.1:{}", platform.port);
    let other = platform.write("other-data", "");
    let run = platform
        .kelp(&["up", "--no-kubeconfig", "--prewarm", "0", "--listen", &listen, "--data-dir", &format!("{other}.d")])
        .fails_with(&format!("cannot listen on {listen}: Address already in use"));
    let port_taken = run;
    assert_eq!(
        (
            missing_file.stderr.matches("No such file or directory").count(),
            port_taken.stderr.matches("Address already in use").count()
        ),
        (1, 1),
        "{missing_file:?}\n{port_taken:?}"
    );
}

/// On loopback too, the API and `/metrics` want TLS and the kubeconfig's token (any local user
/// could otherwise run code as the platform's user and read every Secret); function URLs stay
/// open, over plain HTTP and over TLS, with no token.
#[test]
fn the_api_wants_tls_and_the_token_and_function_urls_do_not() {
    let platform = Platform::start(&["--prewarm", "0"]);
    let config = std::fs::read_to_string(&platform.kubeconfig).unwrap();
    assert!(config.contains(&format!("https://127.0.0.1:{}", platform.port)), "{config}");
    platform.deploy(
        "open",
        "python3.8",
        "open.py",
        "def hello(event, context):\n    return 'open'\n",
        "open.hello",
        &[],
    );
    // kubectl and the CLI (kube-rs) go through the context.
    assert!(platform.kubectl(&["get", "functions"]).ok().stdout.contains("open"));
    let api = platform.api_client();
    let anonymous = api.without_token();
    let wrong = |path: &str| api.request("GET", path, &[("Authorization", "Bearer not-the-token")], "").unwrap();
    for path in ["/api/v1/namespaces/default/secrets", "/version", "/metrics"] {
        assert_eq!(api.request("GET", path, &[], "").unwrap().status, 200, "{path} with the token");
        assert_eq!(anonymous.request("GET", path, &[], "").unwrap().status, 401, "{path} without a token");
        assert_eq!(wrong(path).status, 401, "{path} with a wrong token");
        // Over plain HTTP, refused whatever the token, with the way to the API.
        let plain =
            request(platform.port, "GET", path, &[("Authorization", &format!("Bearer {}", api.token()))], "").unwrap();
        assert_eq!(plain.status, 403, "{path} over plain HTTP: {}", plain.body);
        assert!(plain.body.contains(&format!("https://127.0.0.1:{}", platform.port)), "{}", plain.body);
    }
    // The function's URL needs nothing, over plain HTTP or TLS.
    assert_eq!(platform.call_until("open", |body| body == "open"), "open");
    let over_tls = anonymous.request("GET", "/default/open/", &[], "").unwrap();
    assert_eq!((over_tls.status, over_tls.body.as_str()), (200, "open"));
}

/// What `kelp up` keeps on disk is its user's alone (the store holds Secrets, the kubeconfig the
/// token), and an instance gets a minimal environment, not the platform's (a broker's password).
#[test]
fn data_is_private_and_instances_get_no_platform_secret() {
    use std::os::unix::fs::PermissionsExt;
    let platform = Platform::start_with_env(&["--prewarm", "0"], &[("KAFKA_PASSWORD", "hunter2")]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&platform.data_dir), 0o700);
    assert_eq!(mode(&platform.data_dir.join("objects.redb")), 0o600);
    assert_eq!(mode(&platform.kubeconfig), 0o600);
    assert_eq!(platform.process().env("KAFKA_PASSWORD").as_deref(), Some("hunter2"));
    platform.deploy(
        "plain",
        "python3.8",
        "plain.py",
        "def hello(event, context):\n    return 'plain'\n",
        "plain.hello",
        &[],
    );
    platform.call_until("plain", |body| body == "plain");
    let processes = function_processes(&platform, "plain");
    let mut checked = 0;
    for p in processes {
        // A process that ended since it was listed (a worker replaced, a step done) has no
        // environment left to read, nor anything to leak.
        if std::fs::read(format!("/proc/{}/environ", p.pid)).is_err() {
            continue;
        }
        assert_eq!(p.env("KAFKA_PASSWORD"), None, "{}", p.cmdline());
        assert!(p.env("PATH").is_some(), "{}", p.cmdline());
        checked += 1;
    }
    assert!(checked > 0, "no process of function plain was left to look at");
}

/// `scripts/up` with its port taken by another server that answers `/version`: it stops with
/// kelp up's own error rather than taking that server for its platform.
#[test]
fn scripts_up_fails_with_kelp_ups_error_when_the_port_is_taken() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in squatter.incoming().flatten() {
            let mut head = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut head);
            let answer =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kelp = std::path::Path::new(env!("CARGO_BIN_EXE_kelp"));
    let out = support::run(
        std::process::Command::new(kelp_testkit::repo_root().join("scripts/up"))
            .env("KELP_BIN_DIR", kelp.parent().unwrap())
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .env("KELP_DATA_DIR", dir.path().join("data"))
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG"),
        None,
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("up: kelp up exited before it was ready"), "{out:?}");
    assert!(out.stderr.contains("Address already in use"), "kelp up's own error: {out:?}");
    assert!(!out.stderr.contains("kubeconfig") && !out.stderr.contains("deploy"), "{out:?}");
}

/// Off loopback, `kelp up` serves HTTPS and the API wants the token that the kubeconfig context
/// carries (with the authority that signed the certificate): kubectl and the CLI work through the
/// context, a request without the token is refused.
#[test]
fn off_loopback_serves_https_and_requires_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let port = support::free_port();
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kelp"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["up", "--prewarm", "0", "--listen", &format!("0.0.0.0:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--runtime-bin")
        .arg(support::runtime_bin())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let _stop = support::KillOnDrop(child.id());
    let kubectl = |args: &[&str]| {
        std::process::Command::new(support::kubectl_bin())
            .env("HOME", dir.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap()
    };
    support::eventually("kubectl reaches the platform over TLS", support::DEADLINE, || {
        let out = kubectl(&["get", "namespaces"]);
        out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    });
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains(&format!("https://127.0.0.1:{port}")) && config.contains("token:"), "{config}");
    let created = kubectl(&["create", "namespace", "secured"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_kelp"))
        .env("HOME", dir.path())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["function", "ls"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    // Without the token: 401, even with the certificate accepted.
    let anonymous = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &format!("https://127.0.0.1:{port}/api/v1/namespaces")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");
    let _ = child.kill();
    let _ = child.wait();
}

/// The manifests in `examples/manifests/` apply as they are, and every example answers: the
/// README's examples work.
#[test]
fn the_example_manifests_run() {
    let platform = Platform::start(&["--cron-speed", "60"]);
    let manifests = kelp_testkit::repo_root().join("examples/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&manifests).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in &files {
        platform.kelp(&["apply", "-f", file.to_str().unwrap()]).ok();
    }
    let reply = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        eventually(&format!("{method} {path} answers 200"), Duration::from_secs(120), || {
            match request(platform.port, method, path, headers, body) {
                Ok(r) if r.status == 200 => Ok(r.body),
                other => Err(format!("{other:?}")),
            }
        })
    };
    assert_eq!(reply("GET", "/default/hello/", &[], ""), "hello world");
    let echoed: Value = serde_json::from_str(&reply("GET", "/echo?x=1", &[("Host", "echo.example.test")], "")).unwrap();
    assert_eq!((echoed["method"].as_str(), echoed["query"]["x"].as_str()), (Some("GET"), Some("1")), "{echoed}");
    assert_eq!(echoed["path"], "/", "the nginx route rewrites the path: {echoed}");
    let html = "<html><head><title>Kelp</title></head></html>";
    assert_eq!(reply("POST", "/default/titles/", &[("Content-Type", "text/html")], html), "Kelp");
    let dated: Value =
        serde_json::from_str(&reply("POST", "/default/dates/", &[("Content-Type", "application/json")], "{\"a\":1}"))
            .unwrap();
    assert!(dated["a"] == 1 && dated["date"].as_str().is_some_and(|d| d.ends_with("GMT")), "{dated}");
    // The cron trigger calls hello with its payload (a POST), seen in hello's access log.
    eventually("the cron trigger calls hello", DEADLINE, || {
        let logs = platform.logs("hello");
        logs.contains("\"POST / HTTP/1.1\" 200").then_some(()).ok_or(logs)
    });
}

// ---------------------------------------------------------------------------------------------
// The original kubeless CLI v1.0.8, unchanged.

/// The kubeless CLI v1.0.8 drives `kelp up` through a function's whole life and every trigger
/// kind, and prints what `kelp` prints where scripts parse it (the list tables, `-o json`).
#[test]
fn the_kubeless_cli_drives_kelp_up() {
    let platform = Platform::start(&[]);
    let kubeless = |args: &[&str]| {
        let run = platform.kubeless(args);
        assert_eq!(run.code, 0, "kubeless {args:?}: {run:?}");
        assert!(!run.stderr.contains("level=warning"), "kubeless {args:?} warned: {}", run.stderr);
        run
    };
    let config = kubeless(&["get-server-config"]).stderr;
    assert!(config.contains("Supported Runtimes are: python3, python3.6,"), "{config}");
    let v1 = platform.write("hello.py", "def hello(event, context):\n    return event['data']\n");
    let deployed = kubeless(&["function", "deploy", "hello", "-r", "python3.8", "--handler", "hello.hello", "-f", &v1]);
    assert!(deployed.stderr.contains("Function hello submitted for deployment"), "{deployed:?}");
    let listed = eventually("kubeless function ls shows hello ready", DEADLINE, || {
        let out = kubeless(&["function", "ls", "hello"]).stdout;
        if out.contains("1/1 READY") { Ok(out) } else { Err(out) }
    });
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "NAMESPACE", "HANDLER", "RUNTIME", "DEPENDENCIES", "STATUS"]);
    // Byte for byte: the same cells, padded and separated by tabs as kubeless's tables are.
    // (kelp's STATUS comes from the Function's status, written a moment after the instance is ready.)
    eventually("kelp function ls prints the same table", DEADLINE, || {
        let kelp = platform.kelp(&["function", "ls", "hello"]).ok().stdout;
        if kelp == listed { Ok(()) } else { Err(format!("{kelp:?} vs {listed:?}")) }
    });
    let as_json: Value = serde_json::from_str(&kubeless(&["function", "ls", "--out", "json"]).stdout).unwrap();
    let kelp_json: Value =
        serde_json::from_str(&platform.kelp(&["function", "ls", "--out", "json"]).ok().stdout).unwrap();
    assert_eq!(as_json[0]["spec"], kelp_json[0]["spec"], "the same Function either way");
    let described = kubeless(&["function", "describe", "hello"]).stdout;
    assert!(described.contains("Handler:     \thello.hello"), "{described}");

    // (kubeless prints the answer and a newline.)
    assert_eq!(kubeless(&["function", "call", "hello"]).stdout, "\n");
    assert_eq!(kubeless(&["function", "call", "hello", "-d", r#"{"a":1}"#]).stdout, "{\"a\":1}\n");
    assert_eq!(kubeless(&["function", "call", "hello", "-d", "plain"]).stdout, "plain\n");
    let logs = kubeless(&["function", "logs", "hello"]).stdout;
    assert!(logs.contains(r#""POST / HTTP/1.1" 200"#), "{logs}");
    let top = kubeless(&["function", "top", "--function", "hello", "-o", "json"]).stdout;
    let top: Value = serde_json::from_str(&top).unwrap();
    let posts = top.as_array().unwrap().iter().find(|m| m["method"] == "POST").cloned().unwrap_or_default();
    assert_eq!(posts["total_calls"], 2, "{top}");
    let kelp_top = platform.kelp(&["function", "top", "--function", "hello", "--out", "json"]).ok().stdout;
    let kelp_top: Value = serde_json::from_str(&kelp_top).unwrap();
    let shape = |v: &Value| -> Vec<(String, Value, Vec<String>)> {
        let rows = v.as_array().unwrap().iter();
        let mut rows: Vec<_> = rows
            .map(|m| {
                (m["method"].to_string(), m["total_calls"].clone(), m.as_object().unwrap().keys().cloned().collect())
            })
            .collect();
        // kubeless lists the methods in Go's map order, which changes from run to run.
        rows.sort_by(|a: &(String, Value, Vec<String>), b| a.0.cmp(&b.0));
        rows
    };
    assert_eq!(shape(&top), shape(&kelp_top), "function top -o json");
    // The same lines, byte for byte, in any order (kubeless's rows come in map order).
    let sorted_lines = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[1..].sort();
        lines
    };
    let top_table = kubeless(&["function", "top", "--function", "hello"]).stdout;
    let kelp_table = platform.kelp(&["function", "top", "--function", "hello"]).ok().stdout;
    assert_eq!(sorted_lines(&kelp_table), sorted_lines(&top_table), "function top");
    let kelp_described = platform.kelp(&["function", "describe", "hello"]).ok().stdout;
    // kelp adds a Status row (and a Message row when the Ready condition has one).
    let kelp_rows: Vec<&str> = kelp_described.lines().take(8).collect();
    assert_eq!(described.lines().collect::<Vec<_>>(), kelp_rows, "function describe");

    let v2 = platform.write("hello2.py", "def hello(event, context):\n    return 'v2'\n");
    kubeless(&["function", "update", "hello", "-f", &v2]);
    eventually("the update serves", DEADLINE, || {
        let out = platform.kubeless(&["function", "call", "hello"]).stdout;
        if out == "v2\n" { Ok(()) } else { Err(out) }
    });

    let creates: [&[&str]; 4] = [
        &["trigger", "http", "create", "h", "--function-name", "hello", "--path", "p", "--hostname", "h.test"],
        &["trigger", "cronjob", "create", "c", "--function", "hello", "--schedule", "*/5 * * * *"],
        &["trigger", "kafka", "create", "k", "--trigger-topic", "t", "--function-selector", "function=hello"],
        &["trigger", "nats", "create", "n", "--trigger-topic", "t", "--function-selector", "function=hello"],
    ];
    for create in creates {
        kubeless(create);
        let kind = create[1];
        let list = kubeless(&["trigger", kind, "list"]).stdout;
        assert_eq!(platform.kelp(&["trigger", kind, "list"]).ok().stdout, list, "trigger {kind} list");
        assert!(list.lines().nth(1).is_some_and(|l| l.starts_with(create[3])), "{list}");
    }
    eventually("the HTTP trigger routes", DEADLINE, || {
        match request(platform.port, "GET", "/p", &[("Host", "h.test")], "") {
            Ok(r) if r.body == "v2" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    kubeless(&["autoscale", "create", "hello", "--min", "1", "--max", "3", "--value", "50"]);
    let scaler = platform.kubectl(&[
        "get",
        "function",
        "hello",
        "-o",
        "jsonpath={.spec.horizontalPodAutoscaler.spec.maxReplicas}",
    ]);
    assert_eq!(scaler.ok().stdout, "3");
    // kubeless lists autoscaling/v2beta1 HPAs (created-by=kubeless), which kelp up serves from the
    // Functions' rules.
    let listed = kubeless(&["autoscale", "list"]).stdout;
    assert_eq!(platform.kelp(&["autoscale", "list"]).ok().stdout, listed, "autoscale list");
    let table = |out: &str| out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
    assert_eq!(table(&listed).get(1).map(String::as_str), Some("hello default hello 1 3 cpu 50"), "{listed}");
    let as_json: Value = serde_json::from_str(&kubeless(&["autoscale", "list", "-o", "json"]).stdout).unwrap();
    let kelp_json = platform.kelp(&["autoscale", "list", "-o", "json"]).ok().stdout;
    assert_eq!(as_json["spec"], serde_json::from_str::<Value>(&kelp_json).unwrap()["spec"], "autoscale list -o json");
    kubeless(&["autoscale", "delete", "hello"]);

    for (kind, name) in [("http", "h"), ("cronjob", "c"), ("kafka", "k"), ("nats", "n")] {
        kubeless(&["trigger", kind, "delete", name]);
    }
    kubeless(&["function", "delete", "hello"]);
    let left =
        platform.kubectl(&["get", "functions,httptriggers,cronjobtriggers,kafkatriggers,natstriggers", "-o", "name"]);
    assert_eq!(left.ok().stdout, "");
    assert_eq!(kubeless(&["function", "ls"]).stdout.lines().count(), 1, "only the header");
}

// ---------------------------------------------------------------------------------------------
// The official Python kubernetes client.

/// `up/python_client.py` with the official Python kubernetes client (pinned, `scripts/python-client`):
/// CRUD of a ConfigMap, 409 (an existing name, a stale resourceVersion), 422 with causes naming
/// the fields, a watch from a list's resourceVersion, a Function's pod, its log and the service
/// proxy (the client percent-encodes `name:port` in the path).
#[test]
fn the_python_kubernetes_client_drives_kelp_up() {
    let platform = Platform::start(&[]);
    let script = kelp_testkit::repo_root().join("crates/kelp-cli/tests/up/python_client.py");
    let run = support::run(
        std::process::Command::new(kelp_testkit::python_client_bin()).arg(script).arg(&platform.kubeconfig),
        None,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let steps: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(steps, ["crud", "409", "422 spec.handler,spec.timeout", "watch", "pods", "proxy", "logs", "done"]);
}
