//! Compiled languages on the real `kelp up`: a Go function built once per content beside the
//! platform (the build step of `kelp_plan::run`), what the status, the Events and the logs say
//! about its build, a second Function of the same content that starts no compiler, a failed
//! build that leaves the previous version serving, and a hung build killed at its time limit.
//! The Go toolchain is the machine's (`go` on `PATH`); Go's standard library is compiled into the
//! platform's toolchain cache on the first build, which takes tens of seconds on a cold machine.

use crate::support::{DEADLINE, Platform, eventually, get};
use serde_json::Value;
use std::time::Duration;

/// A Go function with Kubeless's signature (`hello.Foo`), answering `text`.
fn go_hello(text: &str) -> String {
    format!(
        "package kubeless\n\nimport \"github.com/kubeless/kubeless/pkg/functions\"\n\n\
         // Foo answers a greeting.\nfunc Foo(event functions.Event, context functions.Context) (string, error) {{\n\
         \treturn \"{text}\", nil\n}}\n"
    )
}

/// Go code that does not compile: line 6 uses a name that does not exist.
const GO_BROKEN: &str = "package kubeless\n\nimport \"github.com/kubeless/kubeless/pkg/functions\"\n\n\
    func Foo(event functions.Event, context functions.Context) (string, error) {\n\treturn greeting, nil\n}\n";

/// A directory holding `go`, a script that appends its arguments to `<dir>/calls` and runs the
/// machine's Go: which toolchain commands a build ran.
fn logging_go(dir: &std::path::Path) -> std::path::PathBuf {
    let real = std::process::Command::new("sh").args(["-c", "command -v go"]).output().unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_owned();
    assert!(!real.is_empty(), "the tests need Go on PATH (scripts/setup installs it)");
    let script = dir.join("go");
    let calls = dir.join("calls");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n", calls.display()))
        .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// The toolchain commands run so far other than `go version` (the key's toolchain version).
fn compiler_runs(dir: &std::path::Path) -> Vec<String> {
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
    calls.lines().filter(|l| *l != "version").map(str::to_owned).collect()
}

/// The `Ready` condition of the Function `name`.
fn ready_condition(platform: &Platform, name: &str) -> Value {
    let function = platform.get_json(&format!("/apis/kubeless.io/v1beta1/namespaces/default/functions/{name}"));
    let conditions = function.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    conditions.into_iter().find(|c| c["type"] == "Ready").unwrap_or(Value::Null)
}

/// The Events of the Function `name`: (reason, message).
fn events_of(platform: &Platform, name: &str) -> Vec<(String, String)> {
    let events = platform.get_json("/api/v1/namespaces/default/events");
    let items = events["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|e| e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(name))
        .map(|e| {
            (e["reason"].as_str().unwrap_or_default().to_owned(), e["message"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn a_go_function_is_built_once_and_a_failed_build_keeps_the_previous_version_serving() {
    let tools = tempfile::tempdir().unwrap();
    let go = logging_go(tools.path());
    let platform = Platform::start_with_env(&[], &[("KELP_GO", go.to_str().unwrap())]);
    platform.deploy("hello-go", "go1.14", "hello.go", &go_hello("Hello world!"), "hello.Foo", &[]);
    let body = platform.call_until("hello-go", |b| b == "Hello world!");
    assert_eq!(body, "Hello world!");

    // What was built, from which key, how long it took: in an Event and in the function's log.
    let built = eventually("an Event says what was built", DEADLINE, || {
        let events = events_of(&platform, "hello-go");
        events.iter().find(|(reason, _)| reason == "Built").map(|(_, m)| m.clone()).ok_or(format!("{events:?}"))
    });
    assert!(built.starts_with("built go function hello.Foo from key "), "{built}");
    let key = built.split_whitespace().nth(6).unwrap().to_owned();
    assert_eq!(key.len(), 64, "the key is a SHA-256: {built}");
    let logs = platform.logs("hello-go");
    assert!(logs.contains(&key) && logs.contains("built go function hello.Foo"), "the log names the build:\n{logs}");
    assert!(!compiler_runs(tools.path()).is_empty(), "the first deploy ran the Go toolchain");

    // The same content in a second Function: the build is found, no compiler runs.
    let before = compiler_runs(tools.path());
    platform.deploy("hello-go-again", "go1.14", "hello.go", &go_hello("Hello world!"), "hello.Foo", &[]);
    platform.call_until("hello-go-again", |b| b == "Hello world!");
    let found = eventually("an Event says the build was found", DEADLINE, || {
        let events = events_of(&platform, "hello-go-again");
        events.iter().find(|(reason, _)| reason == "Built").map(|(_, m)| m.clone()).ok_or(format!("{events:?}"))
    });
    assert!(found.starts_with("found in the cache the build of go function hello.Foo from key "), "{found}");
    assert!(found.contains(&key), "the same key: {found}");
    assert_eq!(compiler_runs(tools.path()), before, "a second deploy of the same content started a compiler");

    // A new version that does not compile: BuildFailed with the compiler's line, the old one serves.
    let broken = platform.write("broken.go", GO_BROKEN);
    platform.kelp(&["function", "update", "hello-go", "--from-file", &broken]).ok();
    let condition = eventually("the Function is BuildFailed", DEADLINE, || {
        let c = ready_condition(&platform, "hello-go");
        if c["reason"] == "BuildFailed" { Ok(c) } else { Err(c.to_string()) }
    });
    assert_eq!(condition["status"], "False");
    let message = condition["message"].as_str().unwrap();
    assert!(message.contains("hello.go:6:") && message.contains("undefined: greeting"), "{message}");
    let warning = eventually("a BuildFailed Event", DEADLINE, || {
        let events = events_of(&platform, "hello-go");
        events.iter().find(|(reason, _)| reason == "BuildFailed").map(|(_, m)| m.clone()).ok_or(format!("{events:?}"))
    });
    assert!(warning.contains("undefined: greeting"), "{warning}");
    for _ in 0..5 {
        let reply = get(platform.port, "/default/hello-go/").unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "Hello world!"), "the previous version serves");
    }

    // `deploy --wait` of code that does not compile says why, at once.
    let run = platform.kelp(&[
        "function",
        "deploy",
        "broken-go",
        "--runtime",
        "go1.14",
        "--from-file",
        &broken,
        "--handler",
        "broken.Foo",
        "--wait",
        "--wait-timeout",
        "600",
    ]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("BuildFailed") && run.stderr.contains("broken.go:6:"), "{run:?}");
}

#[test]
fn a_hung_build_is_killed_at_its_time_limit() {
    // A module proxy that accepts connections and never answers.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    std::thread::spawn(move || proxy.incoming().collect::<Vec<_>>());
    let env = [("KELP_BUILD_TIMEOUT", "3"), ("GOPROXY", proxy_url.as_str())];
    let platform = Platform::start_with_env(&[], &env);
    let go_mod = platform.write("go.mod", "module function\n\ngo 1.14\n\nrequire example.com/kelp/never v1.0.0\n");
    let code = go_hello("never").replace(
        "import \"github.com/kubeless/kubeless/pkg/functions\"",
        "import (\n\t\"github.com/kubeless/kubeless/pkg/functions\"\n\t_ \"example.com/kelp/never\"\n)",
    );
    platform.deploy("hung-go", "go1.14", "hung.go", &code, "hung.Foo", &["--dependencies", &go_mod]);
    let condition = eventually("the Function is BuildFailed", DEADLINE, || {
        let c = ready_condition(&platform, "hung-go");
        if c["reason"] == "BuildFailed" { Ok(c) } else { Err(c.to_string()) }
    });
    let message = condition["message"].as_str().unwrap();
    assert!(message.contains("timed out after 3 s"), "{message}");
    // Nothing of the build is left running: no `kelp-runtime --build`, no `go`.
    eventually("the build's processes are gone", Duration::from_secs(10), || {
        let left: Vec<String> = platform
            .process()
            .descendants()
            .iter()
            .map(|p| p.cmdline())
            .filter(|c| c.contains("--build") || c.split_whitespace().next().is_some_and(|p| p.ends_with("go")))
            .collect();
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    });
}

#[test]
fn kubeless_java_and_kelp_rust_functions_run_on_kelp_up() {
    let platform = Platform::start(&[]);
    let examples = kelp_testkit::repo_root().join("examples");
    let java = examples.join("java/HelloGet.java").display().to_string();
    let rust = examples.join("rust/hello.rs").display().to_string();
    // The same Rust function again, in its front's own process (`KELP_IN_PROCESS=1`).
    for (name, runtime, file, handler, env) in [
        ("get-java", "java11", &java, "Foo.foo", None),
        ("hello-rust", "rust1.95", &rust, "hello.hello", None),
        ("hello-rust-in-process", "rust1.95", &rust, "hello.hello", Some("KELP_IN_PROCESS=1")),
    ] {
        let mut args =
            vec!["function", "deploy", name, "--runtime", runtime, "--from-file", file, "--handler", handler];
        if let Some(env) = env {
            args.extend(["--env", env]);
        }
        let run = platform.kelp(&[&args[..], &["--wait", "--wait-timeout", "600"]].concat());
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(platform.call_until("get-java", |b| !b.is_empty()), "Hello world!");
    for name in ["hello-rust", "hello-rust-in-process"] {
        let body = platform.call_until(name, |b| !b.is_empty());
        let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
        assert_eq!(answer["hello"], "world", "{name}: {answer}");
    }
    // Each says what was built.
    for (name, language, handler) in [("get-java", "java", "Foo.foo"), ("hello-rust", "rust", "hello.hello")] {
        let events = events_of(&platform, name);
        let wanted = format!("{language} function {handler} from key ");
        assert!(events.iter().any(|(reason, m)| reason == "Built" && m.contains(&wanted)), "{name}: {events:?}");
    }
}
