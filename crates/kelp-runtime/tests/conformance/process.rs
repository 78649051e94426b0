//! Starting real `kelp-runtime` processes on the conformance functions and watching them.

use crate::http::{Request, Response};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a runtime without dependencies may take to answer `/healthz` with 200.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One language the suite runs against.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// The language's directory under `conformance/functions/` (and its name in the cache).
    pub(crate) name: &'static str,
    /// The `FUNC_RUNTIME` the runtime is started with.
    pub(crate) func_runtime: &'static str,
    /// The code file suffix (`.py`, `.js`).
    pub(crate) suffix: &'static str,
    /// Whether handlers are exported names with an initial capital: Go's `Hello` is the cases'
    /// `hello`.
    pub(crate) capitalized_handlers: bool,
    /// Handler names the language reserves (PHP's `echo` and `die`): the function is named with
    /// a `_` after it (`echo_`), and the runner starts that name.
    pub(crate) reserved_handlers: &'static [&'static str],
    /// Whether every module but `conf` has a directory of its own (`bad/bad.go`): a Go package
    /// is a whole directory, so `bad.go` beside `conf.go` would break `conf`'s build.
    pub(crate) module_dirs: bool,
    /// For a compiled language, what its builds look like; `None` for an interpreted one. Its
    /// functions share one build directory (`KELP_DEPS_DIR` in [`shared_builds`]), and
    /// [`Function::start`] builds them first (`--build`), so that the start's time limits
    /// measure starting, not compiling.
    pub(crate) compiled: Option<Compiled>,
    /// Environment every function of the runtime starts with (before the function's own).
    pub(crate) env: &'static [(&'static str, &'static str)],
}

/// What the checks of a compiled language's builds look for.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// What the build of the `bad` module fails with: one line of the compiler's output holds
    /// both (where, and what).
    pub(crate) bad_error: [&'static str; 2],
}

/// Python 3 (`runtimes/python/kelp_worker.py`).
pub(crate) const PYTHON: Runtime = Runtime {
    name: "python",
    func_runtime: "python3",
    suffix: ".py",
    capitalized_handlers: false,
    reserved_handlers: &[],
    module_dirs: false,
    compiled: None,
    env: &[],
};
/// Node.js (`runtimes/nodejs/kelp_worker.js`).
pub(crate) const NODEJS: Runtime = Runtime {
    name: "nodejs",
    func_runtime: "nodejs20",
    suffix: ".js",
    capitalized_handlers: false,
    reserved_handlers: &[],
    module_dirs: false,
    compiled: None,
    env: &[],
};
/// Go (`runtimes/go/`, built with the function by `crate::compiled::go`).
pub(crate) const GO: Runtime = Runtime {
    name: "go",
    func_runtime: "go1.14",
    suffix: ".go",
    capitalized_handlers: true,
    reserved_handlers: &[],
    module_dirs: true,
    compiled: Some(Compiled { bad_error: ["bad.go:8:9:", "cannot use 42"] }),
    env: &[],
};
/// Java (`runtimes/java/`), a Kubeless runtime ID served by the installed JDK.
pub(crate) const JAVA: Runtime = Runtime {
    name: "java",
    func_runtime: "java11",
    suffix: ".java",
    capitalized_handlers: false,
    reserved_handlers: &[],
    module_dirs: false,
    compiled: Some(Compiled { bad_error: ["bad.java:6:", "error: ';' expected"] }),
    env: &[],
};
/// Go with the function in the front's own process (`KELP_IN_PROCESS=1`, `kelp_runtime::in_process`,
/// its c-shared build): the same functions and builds as [`GO`].
pub(crate) const GO_IN_PROCESS: Runtime = Runtime { env: &[("KELP_IN_PROCESS", "1")], ..GO };

/// Rust with the function in the front's own process: the same functions and builds as [`RUST`].
pub(crate) const RUST_IN_PROCESS: Runtime = Runtime { env: &[("KELP_IN_PROCESS", "1")], ..RUST };

/// Rust (`runtimes/rust/kelp/`, built by `crates/kelp-runtime/src/compiled/rust.rs`). An older
/// or newer toolchain than 1.95 serves `rust1.95` as a substitute.
pub(crate) const RUST: Runtime = Runtime {
    name: "rust",
    func_runtime: "rust1.95",
    suffix: ".rs",
    capitalized_handlers: false,
    reserved_handlers: &[],
    module_dirs: false,
    compiled: Some(Compiled { bad_error: ["bad.rs:5:8:", "error[E0425]: cannot find value `greeting`"] }),
    env: &[],
};

/// Ruby, a plugin runtime (`runtimes/ruby/`): a Kubeless version served by the installed Ruby.
pub(crate) const RUBY: Runtime = Runtime {
    name: "ruby",
    func_runtime: "ruby2.6",
    suffix: ".rb",
    capitalized_handlers: false,
    reserved_handlers: &[],
    module_dirs: false,
    compiled: None,
    env: &[],
};
/// PHP, a plugin runtime (`runtimes/php/`): a Kubeless version served by the installed PHP.
pub(crate) const PHP: Runtime = Runtime {
    name: "php",
    func_runtime: "php7.4",
    suffix: ".php",
    capitalized_handlers: false,
    reserved_handlers: &["echo", "die"],
    module_dirs: false,
    compiled: None,
    env: &[],
};

/// How long a build may take (a first one compiles the standard library or the wrapper's
/// dependencies, on a busy machine).
pub(crate) const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

impl Runtime {
    /// The language's name of the cases' handler `handler`: `Hello` for Go's `hello`, `echo_`
    /// for PHP's `echo`.
    pub(crate) fn handler(&self, handler: &str) -> String {
        let mut chars = handler.chars();
        match (self.capitalized_handlers, chars.next()) {
            (true, Some(first)) => first.to_uppercase().chain(chars).collect(),
            _ if self.reserved_handlers.contains(&handler) => format!("{handler}_"),
            _ => handler.to_owned(),
        }
    }

    /// `conformance/functions/<name>`, or a subdirectory of it.
    pub(crate) fn functions_dir(&self, sub: &str) -> PathBuf {
        conformance_dir().join("functions").join(self.name).join(sub)
    }
}

/// The repository's `runtimes/` directory: the plugin runtimes' directories are in it.
pub(crate) fn runtimes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtimes")
}

/// The repository's `conformance/` directory.
pub(crate) fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
}

/// What a dependency file writes for the absolute path of `functions/<language>/packages`.
const PACKAGES: &str = "{{packages}}";

/// `functions/<language>/<sub>`, or, when one of its files holds [`PACKAGES`], a copy of it
/// (under [`scratch_root`]) with that replaced: a Gemfile's path gems and a composer.json's path
/// repositories, since the registries of gems and Composer packages are unreachable from the
/// test machines, and an install runs in a directory of its own, where a relative path would
/// not lead back to them.
fn with_local_packages(runtime: &Runtime, sub: &str) -> PathBuf {
    let dir = runtime.functions_dir(sub);
    let files: Vec<(std::ffi::OsString, String)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name(), std::fs::read_to_string(e.path()).ok()?)))
        .collect();
    if !files.iter().any(|(_, text)| text.contains(PACKAGES)) {
        return dir;
    }
    let packages = runtime.functions_dir("packages").canonicalize().expect("the functions' packages directory");
    let copy = scratch_root().join("code").join(format!("{}-{sub}", runtime.name));
    std::fs::create_dir_all(&copy).expect("creating the code's copy");
    for (name, text) in files {
        let tmp = copy.join(format!(".{}.{}", name.to_string_lossy(), std::process::id()));
        std::fs::write(&tmp, text.replace(PACKAGES, &packages.to_string_lossy())).expect("writing the code's copy");
        std::fs::rename(&tmp, copy.join(name)).expect("writing the code's copy");
    }
    copy
}

/// Where this suite keeps logs and caches: `<tmp>/kelp-conformance`.
pub(crate) fn scratch_root() -> PathBuf {
    std::env::temp_dir().join("kelp-conformance")
}

/// A dependency cache shared by every run of the suite, so installs happen once per machine.
pub(crate) fn shared_deps_cache() -> PathBuf {
    scratch_root().join("deps-cache")
}

/// The `KELP_DEPS_DIR` of compiled languages unless a test says otherwise: builds, and the
/// toolchains' own caches (downloaded and compiled dependencies), shared by every run of the suite.
pub(crate) fn shared_builds() -> PathBuf {
    shared_deps_cache().join("deps")
}

/// A `kelp-runtime` process to start.
#[derive(Clone, Debug)]
pub(crate) struct Function<'a> {
    runtime: &'a Runtime,
    label: String,
    env: BTreeMap<String, String>,
    code_dir: PathBuf,
    cache_dir: Option<PathBuf>,
    prewarm: bool,
    /// `--install-deps`, `--fetch-deps` or `--build` instead of serving.
    deps_arg: Option<&'static str>,
}

impl<'a> Function<'a> {
    /// The function `module.handler` from the language's functions directory.
    pub(crate) fn new(runtime: &'a Runtime, module: &str, handler: &str) -> Self {
        let mut f = Self::prewarmed(runtime);
        f.prewarm = false;
        f.label = format!("{}-{module}-{handler}", runtime.name);
        if runtime.module_dirs && module != "conf" {
            f.code_dir = runtime.functions_dir(module);
        }
        f.env("MOD_NAME", module).env("FUNC_HANDLER", &runtime.handler(handler))
    }

    /// A `--prewarm` runtime: it knows its language only, and reads the function on stdin.
    pub(crate) fn prewarmed(runtime: &'a Runtime) -> Self {
        Function {
            runtime,
            label: format!("{}-prewarm", runtime.name),
            env: BTreeMap::new(),
            code_dir: runtime.functions_dir(""),
            cache_dir: None,
            prewarm: true,
            deps_arg: None,
        }
    }

    /// Sets an environment variable of the runtime.
    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// Uses `conformance/functions/<language>/<sub>` as `KUBELESS_INSTALL_VOLUME` (a copy of it
    /// when its files name local packages: [`with_local_packages`]).
    pub(crate) fn code_subdir(mut self, sub: &str) -> Self {
        self.code_dir = with_local_packages(self.runtime, sub);
        self
    }

    /// Uses `dir` as `KUBELESS_INSTALL_VOLUME`.
    pub(crate) fn code_dir(mut self, dir: &Path) -> Self {
        self.code_dir = dir.to_owned();
        self
    }

    /// Uses `dir` as `KELP_CACHE_DIR` instead of a fresh directory.
    pub(crate) fn cache_dir(mut self, dir: PathBuf) -> Self {
        self.cache_dir = Some(dir);
        self
    }

    /// Runs `kelp-runtime --install-deps` instead of serving.
    pub(crate) fn install_deps(mut self) -> Self {
        self.deps_arg = Some("--install-deps");
        self
    }

    /// Runs `kelp-runtime --fetch-deps` instead of serving.
    pub(crate) fn fetch_deps(mut self) -> Self {
        self.deps_arg = Some("--fetch-deps");
        self
    }

    /// Runs `kelp-runtime --build` instead of serving.
    pub(crate) fn build_only(mut self) -> Self {
        self.deps_arg = Some("--build");
        self
    }

    /// Starts the process and waits until it listens (or exits). A port taken between choosing
    /// it and the runtime binding it is retried with another port. A compiled language's
    /// function is built first (`--build`, for up to [`BUILD_TIMEOUT`]), so that the time to
    /// listen is the runtime's, not the compiler's; a build that fails fails again, quickly, in
    /// the process started.
    pub(crate) fn start(&self) -> Instance {
        if self.runtime.compiled.is_some() && self.deps_arg.is_none() && !self.prewarm {
            let mut build = Function { label: format!("{}-build", self.label), ..self.clone() }.build_only().spawn();
            if build.wait_exit(BUILD_TIMEOUT).is_none() {
                build.keep_logs();
            }
        }
        let mut attempt = 0;
        loop {
            let mut instance = self.spawn();
            let listening = instance.wait_listening(READY_TIMEOUT);
            attempt += 1;
            if listening || attempt == 3 || !instance.stderr().contains("cannot listen on") {
                return instance;
            }
        }
    }

    /// Starts the process.
    pub(crate) fn spawn(&self) -> Instance {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = scratch_root().join(format!("{}-{n}-{}", std::process::id(), self.label));
        let cache_dir = self.cache_dir.clone().unwrap_or_else(|| dir.join("cache"));
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        let port = free_port();
        let log = |name: &str| std::fs::File::create(dir.join(name)).expect("creating a log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelp-runtime"));
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(kelp_runtime::config::is_instance_setting) {
                cmd.env_remove(name);
            }
        }
        if self.runtime.compiled.is_some() {
            cmd.env("KELP_DEPS_DIR", shared_builds());
        }
        cmd.env("FUNC_RUNTIME", self.runtime.func_runtime)
            // The repository's plugin runtimes (Ruby, PHP), found as any plugin is.
            .env(kelp_runtime::plugin::PATH_VAR, runtimes_dir())
            .env("FUNC_PORT", port.to_string())
            .env("KUBELESS_INSTALL_VOLUME", &self.code_dir)
            .env("KELP_CACHE_DIR", &cache_dir)
            .env("KELP_LOG", "info")
            // One worker unless a test asks for more: CI machines have many cores.
            .env("KELP_WORKERS", "1")
            .env("KELP_SHUTDOWN_TIMEOUT", "5")
            // A panic's message, not its backtrace, belongs in the stderr tail of a failure report.
            .env("RUST_BACKTRACE", "0")
            .envs(self.runtime.env.iter().copied());
        cmd.envs(&self.env)
            .args(self.prewarm.then_some("--prewarm"))
            .args(self.deps_arg)
            .stdin(if self.prewarm { Stdio::piped() } else { Stdio::null() })
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        let child = cmd.spawn().expect("starting kelp-runtime");
        Instance { child, port, dir, cache_dir, label: self.label.clone(), keep: false }
    }
}

/// A free TCP port on the loopback interface.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    listener.local_addr().expect("the listener's address").port()
}

/// Whether the process `pid` holds a socket listening on the TCP port `port` (a listening entry
/// of `/proc/net/tcp` or `tcp6` whose socket inode is among the process's descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let tables = ["/proc/net/tcp", "/proc/net/tcp6"].map(|path| std::fs::read_to_string(path).unwrap_or_default());
    let inodes: Vec<String> = tables
        .iter()
        .flat_map(|table| table.lines().skip(1))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            // State 0A is LISTEN; the inode is the tenth field.
            let listening = u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == "0A";
            listening.then(|| format!("socket:[{}]", fields.get(9).unwrap_or(&"")))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|inode| target.as_os_str() == inode.as_str()))
    })
}

/// A running `kelp-runtime` process. Dropping it stops the process (SIGTERM, then SIGKILL) and
/// removes its logs unless [`Instance::keep_logs`] was called or the test is failing.
#[derive(Debug)]
pub(crate) struct Instance {
    child: Child,
    /// The port it serves on.
    pub(crate) port: u16,
    dir: PathBuf,
    /// Its `KELP_CACHE_DIR`.
    pub(crate) cache_dir: PathBuf,
    label: String,
    keep: bool,
}

impl Instance {
    /// Sends a request.
    pub(crate) fn send(&self, request: &Request) -> io::Result<Response> {
        request.send(self.port)
    }

    /// Sends a request that must get a response; panics with the diagnostics otherwise.
    pub(crate) fn must_send(&self, request: &Request) -> Response {
        self.send(request)
            .unwrap_or_else(|e| panic!("{} {} failed: {e}\n{}", request.method, request.path, self.diagnostics()))
    }

    /// `GET path`, which must get a response.
    pub(crate) fn get(&self, path: &str) -> Response {
        self.must_send(&Request::get(path))
    }

    /// Polls `/healthz` until it answers 200. Fails if the process exits or `timeout` passes.
    pub(crate) fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(format!("kelp-runtime exited ({status}) before it was ready\n{}", self.diagnostics()));
            }
            let last = match Request::get("/healthz").send(self.port) {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => format!("{} {}", r.status, r.text()),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                return Err(format!("/healthz not 200 after {timeout:?} (last: {last})\n{}", self.diagnostics()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Like [`Instance::wait_ready`], panicking on failure.
    pub(crate) fn ready(mut self) -> Self {
        if let Err(e) = self.wait_ready(READY_TIMEOUT) {
            self.keep_logs();
            panic!("{e}");
        }
        self
    }

    /// Waits until this process listens on its port; false if it exited or time ran out.
    fn wait_listening(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                return false;
            }
            // Another test's instance may have been given the same port and bound it first:
            // the port answering is not enough, this process must be the one listening on it.
            if listens_on(self.child.id(), self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The exit status, if the process has ended.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("polling kelp-runtime")
    }

    /// Waits up to `timeout` for the process to end.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process ids of the worker processes (Linux: the runtime's child processes).
    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        let tasks = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        let mut pids: Vec<u32> = std::fs::read_dir(tasks)
            .into_iter()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
            .flat_map(|children| children.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<_>>())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM {} failed", self.child.id());
    }

    /// The process's stdin (only for `--prewarm` instances).
    pub(crate) fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin is piped for --prewarm instances")
    }

    /// What the process wrote on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// Stdout once it holds a line containing `wanted` (the front writes its access log in
    /// batches, at most a few milliseconds after the response); fails after 5 s.
    pub(crate) fn stdout_with(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stdout = self.stdout();
            if stdout.lines().any(|l| l.contains(wanted)) {
                return stdout;
            }
            assert!(Instant::now() < deadline, "no {wanted} line on stdout:\n{stdout}\n{}", self.diagnostics());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the process wrote on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Keeps the log directory after the instance is dropped.
    pub(crate) fn keep_logs(&mut self) {
        self.keep = true;
    }

    /// Where the logs are and how stderr ends, for failure messages.
    pub(crate) fn diagnostics(&self) -> String {
        let stderr = self.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n    ");
        format!(
            "  [{} pid {} port {}] logs in {} (stdout.log, stderr.log); stderr ends:\n    {tail}",
            self.label,
            self.child.id(),
            self.port,
            self.dir.display()
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            if self.wait_exit(Duration::from_secs(8)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if !self.keep && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
