//! Go only: Kubeless's own Go examples unchanged, what a Go function sees beyond the shared
//! cases, and its build: modules from the module proxy, compile errors, the build cache (no
//! compiler on a second start) and the build's time limit.

use crate::http::Request;
use crate::process::{BUILD_TIMEOUT, Function, GO, scratch_root};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh directory under the suite's scratch root.
fn scratch() -> tempfile::TempDir {
    std::fs::create_dir_all(scratch_root()).expect("creating the scratch root");
    tempfile::tempdir_in(scratch_root()).expect("creating a scratch directory")
}

/// A code directory holding `files`.
fn code(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = scratch();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("writing a code file");
    }
    dir
}

/// Kubeless's `helloget.go`, as a Kubeless user has it.
const HELLOGET: &str = r#"package kubeless

import (
	"github.com/kubeless/kubeless/pkg/functions"
)

// Foo sample function
func Foo(event functions.Event, context functions.Context) (string, error) {
	return "Hello world!", nil
}
"#;

/// Kubeless's `hellowithdata.go`.
const HELLOWITHDATA: &str = r#"package kubeless

import (
	"fmt"

	"github.com/kubeless/kubeless/pkg/functions"
)

// Handler sample function with data
func Handler(event functions.Event, context functions.Context) (string, error) {
	fmt.Println(event)
	return event.Data, nil
}
"#;

/// Kubeless's `hellowithdeps.go`, and its `go.mod`.
const HELLOWITHDEPS: &str = r#"package kubeless

import (
	"github.com/kubeless/kubeless/pkg/functions"
	"github.com/sirupsen/logrus"
)

// Hello sample function with dependencies
func Hello(event functions.Event, context functions.Context) (string, error) {
	logrus.Info(event.Data)
	return "Hello world!", nil
}
"#;
const HELLOWITHDEPS_MOD: &str = "module function\n\ngo 1.14\n\nrequire (\n\tgithub.com/sirupsen/logrus v1.6.0\n)\n";

/// A POST of `body` as text.
fn post(body: &str) -> Request {
    let mut request = Request::new("POST", "/");
    request.headers.push(("Content-Type".into(), "text/plain".into()));
    request.body = body.as_bytes().to_vec();
    request
}

/// Kubeless's three Go examples run unchanged: without a go.mod, with an empty one (both made
/// `module function`, as Kubeless's build did), and with logrus from the module proxy (its
/// go.mod has no go.sum beside it), whose log line lands on stderr.
#[test]
fn kubeless_examples_unchanged() {
    let helloget = code(&[("helloget.go", HELLOGET)]);
    let hello = Function::new(&GO, "helloget", "Foo").code_dir(helloget.path()).start().ready();
    let r = hello.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello world!"), "{}", hello.diagnostics());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let withdata = code(&[("hellowithdata.go", HELLOWITHDATA), ("go.mod", "")]);
    let data = Function::new(&GO, "hellowithdata", "Handler").code_dir(withdata.path()).start().ready();
    let r = data.must_send(&post("some data ✓"));
    assert_eq!((r.status, r.text().as_str()), (200, "some data ✓"), "{}", data.diagnostics());

    let withdeps = code(&[("hellowithdeps.go", HELLOWITHDEPS), ("go.mod", HELLOWITHDEPS_MOD)]);
    let deps = Function::new(&GO, "hellowithdeps", "Hello").code_dir(withdeps.path()).start().ready();
    let r = deps.must_send(&post("logged by logrus"));
    assert_eq!((r.status, r.text().as_str()), (200, "Hello world!"), "{}", deps.diagnostics());
    let wanted = "level=info msg=\"logged by logrus\"";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !deps.stderr().contains(wanted) {
        assert!(std::time::Instant::now() < deadline, "no {wanted} on stderr\n{}", deps.diagnostics());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A returned error answers 500 `Error: <err>` (Kubeless's Go proxy); a panic answers 500 too,
/// and the worker goes on serving.
#[test]
fn errors_and_panics_are_500() {
    let boom = Function::new(&GO, "conf", "boom").start().ready();
    let r = boom.get("/");
    assert_eq!((r.status, r.text().as_str()), (500, "Error: kaboom"), "{}", boom.diagnostics());

    let panics = Function::new(&GO, "conf", "panics").env("KELP_MAX_WORKERS", "1").start().ready();
    let workers = panics.worker_pids();
    for attempt in 1..=2 {
        let r = panics.get("/");
        assert_eq!(
            (r.status, r.text().as_str()),
            (500, "Error: panic: oops"),
            "attempt {attempt}\n{}",
            panics.diagnostics()
        );
    }
    assert_eq!(panics.worker_pids(), workers, "the worker was replaced after a panic");
    assert!(panics.stderr().contains("panic: oops"), "the panic is logged\n{}", panics.diagnostics());
}

/// Extensions.Request is the request as net/http's server makes it (Host, body reader,
/// length), and Extensions.Context has the function's deadline.
#[test]
fn the_request_and_context_of_a_go_function() {
    let f = Function::new(&GO, "conf", "request").start().ready();
    let r = f.must_send(&post("body ✓"));
    assert_eq!(r.status, 200, "{}", f.diagnostics());
    let seen: serde_json::Value = serde_json::from_slice(&r.body).expect("the function returns JSON");
    assert_eq!(
        seen,
        serde_json::json!({"host": format!("127.0.0.1:{}", f.port), "body": "body ✓", "content_length": 8, "deadline": true, "proto": "HTTP/1.1"})
    );
}

/// Runs `kelp-runtime --build` of `function` and returns its exit code and stderr.
fn build(function: Function<'_>, limit: Duration) -> (Option<i32>, String) {
    let mut build = function.build_only().spawn();
    let status = build.wait_exit(limit);
    (status.and_then(|s| s.code()), build.stderr())
}

/// A function using a module from the module proxy builds and runs (its go.sum is made, the
/// checksum database consulted) without a usable HOME (a pod's may be read-only or absent):
/// the toolchain writes only into the build's own caches.
#[test]
fn modules_from_the_module_proxy() {
    let scratch = scratch();
    let not_a_dir = scratch.path().join("not-a-directory");
    std::fs::write(&not_a_dir, "").unwrap();
    // Code never built before, so that this start builds it.
    let nonce = format!("// {:?} {}\n", std::time::SystemTime::now(), std::process::id());
    let source = include_str!("../../../../conformance/functions/go/withdeps/withdeps.go");
    let go_mod = include_str!("../../../../conformance/functions/go/withdeps/go.mod");
    let dir = code(&[("withdeps.go", &format!("{source}{nonce}")), ("go.mod", go_mod)]);
    let home = not_a_dir.join("home");
    let f = Function::new(&GO, "withdeps", "check").code_dir(dir.path()).env("HOME", &home.to_string_lossy());
    let f = f.start().ready();
    let r = f.must_send(&post("proxy"));
    assert_eq!((r.status, r.text().as_str()), (200, "deps ok"), "{}", f.diagnostics());
}

/// A module that does not exist fails the build, naming it; code that does not compile fails
/// it with the compiler's first error lines (file:line), and so does a handler of another
/// signature; a handler that is not an exported Go identifier is refused before any code is
/// generated.
#[test]
fn failed_builds_exit_1_with_the_compilers_lines() {
    let (status, stderr) = build(Function::new(&GO, "faildeps", "check").code_subdir("faildeps"), BUILD_TIMEOUT);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("kelp-no-such-package-0000"), "{stderr}");

    let (status, stderr) = build(Function::new(&GO, "bad", "hello"), BUILD_TIMEOUT);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("build of go function bad.Hello failed"), "{stderr}");
    assert!(stderr.contains("bad.go:8:") && stderr.contains("cannot use 42"), "{stderr}");

    let wrong =
        code(&[("wrong.go", "package kubeless\n\n// Foo has another signature.\nfunc Foo() string { return \"\" }\n")]);
    let (status, stderr) = build(Function::new(&GO, "wrong", "Foo").code_dir(wrong.path()), BUILD_TIMEOUT);
    assert_eq!(status, Some(1), "{stderr}");
    let wanted = "cannot use kubeless.Foo (value of type func() string) as func(functions.Event, functions.Context) (string, error) value";
    assert!(stderr.contains(wanted), "{stderr}");

    let (status, stderr) = build(Function::new(&GO, "conf", "hello").env("FUNC_HANDLER", "hello"), BUILD_TIMEOUT);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("FUNC_HANDLER=\"hello\" is not an exported Go identifier"), "{stderr}");
}

/// `KELP_GO`: a script that logs its arguments to `log` and runs the real `go`.
fn logging_go(dir: &Path, log: &Path) -> PathBuf {
    let script = dir.join("go");
    let go = std::env::var("KELP_GO").unwrap_or_else(|_| "go".into());
    std::fs::write(&script, format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{go}' \"$@\"\n", log.display()))
        .expect("writing the go script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("making it executable");
    script
}

/// A second start of the same content finds the build and runs no toolchain at all: not to
/// compile, nor for its version (part of the key), remembered for the same program file.
#[test]
fn a_second_start_runs_no_compiler() {
    let scratch = scratch();
    let log = scratch.path().join("go.log");
    let go = logging_go(scratch.path(), &log);
    // Code never built before (the build cache is the suite's shared one).
    let nonce = format!("// {:?} {}\n", std::time::SystemTime::now(), std::process::id());
    let dir = code(&[("helloget.go", &format!("{HELLOGET}{nonce}"))]);
    let function = || Function::new(&GO, "helloget", "Foo").code_dir(dir.path()).env("KELP_GO", &go.to_string_lossy());
    let first = function().start().ready();
    assert_eq!(first.get("/").text(), "Hello world!");
    let ran = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ran.lines().any(|l| l.starts_with("build ")), "the first start built: {ran:?}");
    drop(first);

    std::fs::remove_file(&log).unwrap();
    let second = function().start().ready();
    assert_eq!(second.get("/").text(), "Hello world!");
    let ran = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ran.is_empty(), "the second start ran go for: {ran:?}");
}

/// The processes whose working directory is under `dir`.
fn working_in(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries
        .filter_map(|e| std::fs::read_link(e.path().join("cwd")).ok().map(|cwd| (e.file_name(), cwd)))
        .filter(|(_, cwd)| cwd.starts_with(dir))
        .map(|(pid, cwd)| format!("{} in {}", pid.to_string_lossy(), cwd.display()))
        .collect()
}

/// A build that hangs (a module proxy that accepts and never answers) is killed at
/// `KELP_BUILD_TIMEOUT`, with its processes, and leaves no build behind.
#[test]
fn a_hung_build_is_killed_at_its_time_limit() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    std::thread::spawn(move || proxy.incoming().collect::<Vec<_>>());
    let scratch = scratch();
    let deps = scratch.path().join("deps");
    let go_mod = "module function\n\ngo 1.14\n\nrequire github.com/kelp-conformance/kelp-hung-module-0000 v0.0.1\n";
    let dir = code(&[
        ("faildeps.go", include_str!("../../../../conformance/functions/go/faildeps/faildeps.go")),
        ("go.mod", go_mod),
    ]);
    let function = Function::new(&GO, "faildeps", "check")
        .code_dir(dir.path())
        .env("KELP_DEPS_DIR", &deps.to_string_lossy())
        .env("KELP_BUILD_TIMEOUT", "3")
        .env("GOPROXY", &format!("http://127.0.0.1:{port}"))
        .env("GOSUMDB", "off");
    let started = std::time::Instant::now();
    let (status, stderr) = build(function, Duration::from_secs(60));
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("timed out after 3 s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "the build ended after {:?}", started.elapsed());
    // SIGKILL takes a moment to end a process.
    let mut left = working_in(&deps);
    for _ in 0..200 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = working_in(&deps);
    }
    assert_eq!(left, Vec::<String>::new(), "the toolchain's processes were killed");
    let builds: Vec<_> = std::fs::read_dir(deps.join("go"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("build-") && !name.ends_with(".lock"))
        .collect();
    assert!(builds.is_empty(), "no build directory is left: {builds:?}");
}
