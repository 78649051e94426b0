//! Plugin runtimes (`kelp_runtime::plugin`) on real `kelp-runtime` processes: a bad one stops
//! the runtime with status 1 and an error saying what is wrong, within a bounded time, never a
//! hang or a panic; without `FUNC_RUNTIME` a plugin is found by its code file.

use crate::process::{Function, RUBY, Runtime};
use std::path::Path;
use std::time::Duration;

/// The plugin `badplug` in a fresh directory of plugins: `kelp` holds the description's `kelp`
/// object, and `worker` the worker script `w.py` (run by Python, the interpreter every test
/// machine has).
fn plugins(kelp: &str, worker: &str) -> tempfile::TempDir {
    std::fs::create_dir_all(crate::process::scratch_root()).unwrap();
    let root = tempfile::tempdir_in(crate::process::scratch_root()).unwrap();
    let dir = root.path().join("badplug");
    std::fs::create_dir(&dir).unwrap();
    let description = format!(
        r#"{{"ID": "badplug", "depName": "deps.txt", "fileNameSuffix": ".rb",
            "versions": [{{"name": "badplug1", "version": "1"}}], "kelp": {kelp}}}"#
    );
    std::fs::write(dir.join("runtime.json"), description).unwrap();
    std::fs::write(dir.join("w.py"), worker).unwrap();
    root
}

/// A plugin's `kelp` object running `w.py` with `interpreter`, ready within `ready` seconds.
fn kelp(interpreter: &str, ready: u32) -> String {
    format!(
        r#"{{"title": "Bad", "worker": "w.py", "interpreter": "{interpreter}", "interpreterEnv": "KELP_BADPLUG",
            "install": ["true"], "depPaths": ["."], "readyTimeoutSeconds": {ready}}}"#
    )
}

/// The runtime `badplug1` (the Ruby functions' directory: the workers never get to load it).
const BADPLUG: Runtime = Runtime { func_runtime: "badplug1", ..RUBY };

/// Starts the function `conf.hello` of `BADPLUG` with the plugins of `root`, and checks that it
/// exits 1 (waiting at most `limit` and 20 s more) with every one of `wanted` in its stderr.
fn fails_with(root: &Path, limit: Duration, wanted: &[&str]) {
    let mut runtime =
        Function::new(&BADPLUG, "conf", "hello").env(kelp_runtime::plugin::PATH_VAR, &root.to_string_lossy()).spawn();
    let status = runtime.wait_exit(limit + Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", runtime.diagnostics());
    let stderr = runtime.stderr();
    for wanted in wanted {
        assert!(stderr.contains(wanted), "stderr does not say {wanted:?}\n{}", runtime.diagnostics());
    }
    assert!(!stderr.contains("panicked"), "{}", runtime.diagnostics());
}

/// A description with a bad field stops the runtime, naming the file, the field and the reason.
pub(crate) fn bad_description() {
    let root = plugins(&kelp("python3", 3).replace(r#""depPaths": ["."]"#, r#""depPaths": ["/etc"]"#), "");
    fails_with(
        root.path(),
        Duration::ZERO,
        &["runtime.json: field kelp.depPaths: \"/etc\" is not a path inside the install directory"],
    );
}

/// An interpreter that is not installed: the error names it and the variable that would.
pub(crate) fn missing_interpreter() {
    let root = plugins(&kelp("kelp-no-such-interpreter", 3), "");
    fails_with(
        root.path(),
        Duration::ZERO,
        &["cannot start the badplug worker with `kelp-no-such-interpreter`", "set KELP_BADPLUG"],
    );
}

/// A worker that never connects, and one that connects but never says hello: each is given the
/// plugin's `readyTimeoutSeconds` (3 s), then killed, and the runtime says so.
pub(crate) fn worker_never_ready() {
    let root = plugins(&kelp("python3", 3), "import time\ntime.sleep(600)\n");
    fails_with(root.path(), Duration::from_secs(3), &["the badplug worker did not connect and say hello within 3 s"]);
    let connects = "import os, socket, time\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.connect(os.environ['KELP_WORKER_SOCKET'])\n\
        time.sleep(600)\n";
    let root = plugins(&kelp("python3", 3), connects);
    fails_with(root.path(), Duration::from_secs(3), &["the badplug worker did not connect and say hello within 3 s"]);
}

/// A worker that answers its connection with bytes that are not a frame.
pub(crate) fn worker_breaks_the_protocol() {
    let garbage = "import os, socket, time\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.connect(os.environ['KELP_WORKER_SOCKET'])\n\
        s.sendall(b'\\x00\\x00\\x00\\x05hello\\x00\\x00\\x00\\x00')\n\
        time.sleep(600)\n";
    // Time enough for Python to start on a busy machine: the runtime stops at the garbage.
    let root = plugins(&kelp("python3", 60), garbage);
    fails_with(root.path(), Duration::ZERO, &["worker sent an invalid frame"]);
}

/// Without `FUNC_RUNTIME`, the language is the one whose code file exists: a plugin's too
/// (`conf.rb`, Ruby's).
pub(crate) fn found_by_its_code_file() {
    let ruby = Function::new(&RUBY, "conf", "hello").env("FUNC_RUNTIME", "").start().ready();
    assert_eq!(ruby.get("/").text(), "hello world", "{}", ruby.diagnostics());
}
