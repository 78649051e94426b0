//! Checks of compiled languages: the build of a function (`kelp-runtime --build`, or the build a
//! serving runtime runs first) reports compile errors, runs once per content, and brings the
//! dependencies of the dependency file.

use crate::process::{BUILD_TIMEOUT, Compiled, Function, READY_TIMEOUT, Runtime, scratch_root, shared_builds};
use kelp_runtime::language::Language;
use std::time::Duration;

/// The build facts of a compiled runtime.
fn compiled(rt: &Runtime) -> &Compiled {
    rt.compiled.as_ref().unwrap_or_else(|| panic!("{} is not a compiled language", rt.name))
}

/// `kelp-runtime --build` of code that does not compile exits 1 with the compiler's first error
/// lines: where (file and line) and what.
pub(crate) fn build_failure(rt: &Runtime) {
    let [place, error] = compiled(rt).bad_error;
    let mut bad = Function::new(rt, "bad", "hello").build_only().spawn();
    let status = bad.wait_exit(BUILD_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", bad.diagnostics());
    let stderr = bad.stderr();
    assert!(
        stderr.lines().any(|line| line.contains(place) && line.contains(error)),
        "no line with {place:?} and {error:?} on stderr\n{}",
        bad.diagnostics()
    );
    assert!(!stderr.contains("panicked"), "{}", bad.diagnostics());
}

/// A scratch directory with, in `code/`, a copy of the files of `functions/<language>/<sub>`
/// whose module `module` no build has seen (a comment of its own at the end), and a script
/// standing for the toolchain: it logs its arguments into `toolchain.log`, then runs `then` (a
/// shell command; `$real` is the real toolchain).
struct NewCode {
    scratch: tempfile::TempDir,
    /// The toolchain's variable (`KELP_CARGO`) and its arguments that ask for its version.
    variable: &'static str,
    version: String,
}

impl NewCode {
    fn new(rt: &Runtime, sub: &str, module: &str, then: &str) -> NewCode {
        let lang = Language::for_runtime(rt.func_runtime).expect("a language of the runtime");
        let (variable, default) = lang.interpreter;
        std::fs::create_dir_all(scratch_root()).unwrap();
        let scratch = tempfile::tempdir_in(scratch_root()).unwrap();
        let code = scratch.path().join("code");
        std::fs::create_dir(&code).unwrap();
        for entry in std::fs::read_dir(rt.functions_dir(sub)).unwrap().flatten().filter(|e| e.path().is_file()) {
            std::fs::copy(entry.path(), code.join(entry.file_name())).unwrap();
        }
        let file = code.join(format!("{module}{}", rt.suffix));
        let nonce = format!("{:?}-{}", std::time::SystemTime::now(), std::process::id());
        let source = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{source}\n// {nonce}\n")).unwrap();
        let real = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
        let log = scratch.path().join("toolchain.log");
        let script = format!("#!/bin/sh\nreal='{real}'\necho \"$*\" >> '{}'\n{then}\n", log.display());
        let toolchain = scratch.path().join("toolchain");
        std::fs::write(&toolchain, script).unwrap();
        std::fs::set_permissions(&toolchain, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        NewCode { scratch, variable, version: lang.version_args.join(" ") }
    }

    /// The function `module.handler` of the new code, built with the logging toolchain.
    fn function<'a>(&self, rt: &'a Runtime, module: &str, handler: &str) -> Function<'a> {
        let toolchain = self.scratch.path().join("toolchain");
        Function::new(rt, module, handler)
            .code_dir(&self.scratch.path().join("code"))
            .env(self.variable, &toolchain.to_string_lossy())
    }

    /// What the toolchain was run for, but its version.
    fn runs(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.scratch.path().join("toolchain.log")).unwrap_or_default();
        log.lines().filter(|line| *line != self.version).map(str::to_owned).collect()
    }
}

/// A serving runtime builds code it has not seen and serves it; a second start of the same
/// content starts no compiler: the toolchain (its environment variable pointing at a script that
/// logs its arguments) is asked its version, and nothing else.
pub(crate) fn build_once(rt: &Runtime) {
    let code = NewCode::new(rt, "", "conf", "exec \"$real\" \"$@\"");
    let function = code.function(rt, "conf", "hello");
    let variable = code.variable;
    let builds = || code.runs();

    let mut first = function.spawn();
    first.wait_ready(BUILD_TIMEOUT).unwrap_or_else(|e| panic!("first start: {e}"));
    assert_eq!(first.get("/").text(), "hello world", "{}", first.diagnostics());
    assert!(!builds().is_empty(), "the first start of new code ran no build\n{}", first.diagnostics());
    assert!(first.stderr().contains("built"), "{}", first.diagnostics());
    let built = builds();
    drop(first);

    let mut second = function.spawn();
    second.wait_ready(READY_TIMEOUT).unwrap_or_else(|e| panic!("second start: {e}"));
    assert_eq!(second.get("/").text(), "hello world", "{}", second.diagnostics());
    assert_eq!(builds(), built, "the second start of the same code ran {variable} again\n{}", second.diagnostics());
    assert!(second.stderr().contains("found in the cache the build of"), "{}", second.diagnostics());
    forget_build(rt, &second.stderr());
}

/// Removes the build (and its lock file) whose key `stderr` names, `key=<key>` or `key <key>`:
/// the build of code made for one test is never used again, and the suite keeps only its
/// toolchain cache.
fn forget_build(rt: &Runtime, stderr: &str) {
    let key = stderr
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|word| word.len() == 64)
        .unwrap_or_else(|| panic!("no build key in\n{stderr}"));
    let build = shared_builds().join(rt.name).join(format!("build-{key}"));
    let _ = std::fs::remove_dir_all(&build);
    let _ = std::fs::remove_file(build.with_extension("lock"));
}

/// A build that runs past `KELP_BUILD_TIMEOUT` is killed with its process group (the toolchain
/// here answers its version, then hangs), and the runtime exits 1 saying so.
pub(crate) fn build_timeout(rt: &Runtime) {
    let code = NewCode::new(rt, "", "conf", "[ \"$*\" = --version ] && exec \"$real\" \"$@\"\nexec sleep 600");
    let mut slow = code.function(rt, "conf", "hello").env("KELP_BUILD_TIMEOUT", "2").spawn();
    let status = slow.wait_exit(Duration::from_secs(60));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", slow.diagnostics());
    assert!(slow.stderr().contains("timed out after 2 s"), "{}", slow.diagnostics());
    assert!(!code.runs().is_empty(), "the toolchain never ran a build\n{}", slow.diagnostics());
    forget_build(rt, &slow.stderr());
    let sleeping = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .filter(|cmdline| cmdline == b"sleep\x00600\x00")
        .count();
    assert_eq!(sleeping, 0, "the hanging build's process was left running");
}

/// A function with a dependency in its dependency file builds (fetching it) and uses it.
pub(crate) fn build_dependencies(rt: &Runtime) {
    let mut withdeps = Function::new(rt, "withdeps", "check").code_subdir("withdeps").start();
    withdeps.wait_ready(READY_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let r = withdeps.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "deps ok"), "{}", withdeps.diagnostics());
}

/// A dependency file with its lock (`withdeps/`, whose lock locks everything, the language's own
/// wrapper's dependencies too) builds without the network once the toolchain's cache has what it
/// locks: the lock is what the build uses, and nothing is resolved anew.
pub(crate) fn build_offline_with_lock(rt: &Runtime) {
    let run = "exec \"$real\" \"$@\"";
    let online = NewCode::new(rt, "withdeps", "withdeps", run);
    let mut fill = online.function(rt, "withdeps", "check").build_only().spawn();
    let status = fill.wait_exit(BUILD_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "the online build\n{}", fill.diagnostics());
    forget_build(rt, &fill.stderr());

    let offline = NewCode::new(rt, "withdeps", "withdeps", run);
    let closed = "http://127.0.0.1:9";
    let mut function = offline.function(rt, "withdeps", "check");
    for proxy in ["https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"] {
        function = function.env(proxy, closed);
    }
    let mut serving = function.spawn();
    serving.wait_ready(BUILD_TIMEOUT).unwrap_or_else(|e| panic!("the offline build: {e}"));
    assert_eq!(serving.get("/").text(), "deps ok", "{}", serving.diagnostics());
    assert!(!offline.runs().is_empty(), "no build ran\n{}", serving.diagnostics());
    forget_build(rt, &serving.stderr());
}

/// Rust: a handler that panics is answered 500 with the panic's message (`failed`, so counted
/// as a failure), the panic is in the function's log, and the same worker serves on.
pub(crate) fn panic_survives(rt: &Runtime) {
    let panics = Function::new(rt, "conf", "panics").start().ready();
    let workers = panics.worker_pids();
    for attempt in 1..=2 {
        let r = panics.get("/");
        assert_eq!(
            (r.status, r.text().as_str(), r.header("content-type")),
            (500, "kaboom from a panic", Some("text/plain; charset=utf-8")),
            "attempt {attempt}\n{}",
            panics.diagnostics()
        );
    }
    assert_eq!(panics.worker_pids(), workers, "the worker was replaced after a panic\n{}", panics.diagnostics());
    let metrics = panics.get("/metrics").text();
    assert!(metrics.contains("function_failures_total{method=\"GET\"} 2"), "{metrics}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !panics.stderr().contains("kaboom from a panic") {
        assert!(std::time::Instant::now() < deadline, "the panic is not in the log\n{}", panics.diagnostics());
        std::thread::sleep(Duration::from_millis(20));
    }
}
