//! Starting `kelp-runtime` processes, probing them, handing a pre-warmed one its function, and
//! stopping them together with the workers they started: by killing their cgroup where one could
//! be created ([`Cgroup`]), else by process group.

use crate::HttpClient;
use crate::cgroup::Cgroup;
use crate::logs::{LogSink, pump};
use crate::memory;
use crate::procs::{Groups, Table, kill_tree, signal_groups};
use crate::volumes::{self, Volume};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use nix::sys::signal::Signal;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

/// How long one health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts `kelp-runtime` processes with what every instance shares.
#[derive(Debug)]
pub(crate) struct Launcher {
    runtime_bin: PathBuf,
    run_dir: PathBuf,
    /// The host settings of the inherited environment (`is_host_setting`) plus `KELP_CACHE_DIR`, `KELP_WORKERS`, `KELP_MAX_WORKERS`,
    /// `KELP_SHUTDOWN_TIMEOUT` and `KELP_EXIT_WITH_PARENT`.
    base_env: Vec<(String, String)>,
    log_max_bytes: u64,
    next_id: AtomicU64,
    client: HttpClient,
}

/// How a process learns its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// From its environment.
    Direct,
    /// `--prewarm`: later, from one JSON line on stdin.
    Prewarm,
}

impl Launcher {
    /// A launcher of `runtime_bin`; processes get working directories under `run_dir`.
    pub(crate) fn new(
        runtime_bin: PathBuf,
        run_dir: PathBuf,
        cache_dir: &Path,
        workers: usize,
        grace: Duration,
        log_max_bytes: u64,
        client: HttpClient,
    ) -> Launcher {
        let mut base_env: Vec<(String, String)> =
            std::env::vars().filter(|(k, _)| kelp_runtime::config::is_host_setting(k)).collect();
        base_env.extend([
            ("KELP_CACHE_DIR".to_owned(), cache_dir.display().to_string()),
            ("KELP_WORKERS".to_owned(), workers.to_string()),
            ("KELP_MAX_WORKERS".to_owned(), workers.to_string()),
            ("KELP_SHUTDOWN_TIMEOUT".to_owned(), grace.as_secs_f64().to_string()),
            // An instance must not outlive the platform, even one killed with SIGKILL.
            ("KELP_EXIT_WITH_PARENT".to_owned(), "1".to_owned()),
        ]);
        Launcher { runtime_bin, run_dir, base_env, log_max_bytes, next_id: AtomicU64::new(1), client }
    }

    /// Starts a process with `env` (after the shared environment) on a free loopback port, in its
    /// own cgroup (limited to `memory_limit` bytes, 0 for none) where one can be created, its own
    /// process group and working directory (with `volumes` written there first), its output
    /// going to a fresh [`LogSink`].
    pub(crate) fn spawn(
        &self,
        mode: Mode,
        env: &[(String, String)],
        volumes: &[Volume],
        memory_limit: u64,
    ) -> io::Result<Process> {
        let port = free_port()?;
        let workdir = self.run_dir.join(self.next_id.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::create_dir_all(&workdir)?;
        let volumes_var = volumes::write(&workdir.join("volumes"), volumes).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&workdir);
        })?;
        // The gateway's way in; TCP when the path is too long for a socket address.
        let socket = Some(workdir.join(SOCKET_FILE)).filter(|p| p.as_os_str().len() < MAX_SOCKET_PATH);
        let mut cmd = Command::new(&self.runtime_bin);
        if let Some(socket) = &socket {
            cmd.env("KELP_UNIX_LISTEN", socket);
        }
        let cgroup = Cgroup::create(memory_limit).map(Arc::new);
        for dir in cgroup.iter().flat_map(|c| c.dirs()) {
            cmd.arg("--cgroup").arg(dir);
        }
        if mode == Mode::Prewarm {
            cmd.arg("--prewarm");
        }
        cmd.env_clear()
            .envs(self.base_env.iter().cloned())
            .envs(env.iter().cloned())
            .envs(volumes_var)
            .env("FUNC_PORT", port.to_string())
            .env("KELP_LISTEN", "127.0.0.1")
            .current_dir(&workdir)
            .stdin(if mode == Mode::Prewarm { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&workdir);
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let sink = LogSink::new(self.log_max_bytes);
        if let Some(out) = child.stdout.take() {
            pump(out, sink.clone(), false);
        }
        if let Some(err) = child.stderr.take() {
            pump(err, sink.clone(), true);
        }
        let stdin = child.stdin.take();
        Ok(Process {
            child,
            pid,
            port,
            socket,
            stdin,
            sink,
            workdir,
            client: self.client.clone(),
            exited: None,
            cgroup,
        })
    }
}

/// How long a step (`kelp-runtime --build`, `--install-deps`) may run past its own time limit
/// (`KELP_BUILD_TIMEOUT`, `KELP_INSTALL_TIMEOUT`, which it enforces on the tool it runs) before
/// the platform kills it.
const STEP_GRACE: Duration = Duration::from_secs(30);

impl Launcher {
    /// Runs `kelp-runtime <args>` (a step: `--build`, `--install-deps`) for the function `env`
    /// describes, beside the platform: its own process group and working directory, killed past
    /// `limit` plus [`STEP_GRACE`]. What it said when it succeeds; its error (the tool's first
    /// error lines) when it fails.
    pub(crate) async fn step(
        &self,
        args: &[&str],
        env: &[(String, String)],
        limit: Duration,
    ) -> Result<StepOutput, String> {
        let workdir = self.run_dir.join(format!("step-{}", self.next_id.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&workdir).map_err(|e| format!("creating {}: {e}", workdir.display()))?;
        let mut cmd = Command::new(&self.runtime_bin);
        cmd.args(args)
            .env_clear()
            .envs(self.base_env.iter().cloned())
            .envs(env.iter().cloned())
            .env("KELP_LOG", "info")
            .current_dir(&workdir);
        let out = kelp_runtime::deps::run_bounded(cmd, limit.saturating_add(STEP_GRACE)).await;
        let _ = std::fs::remove_dir_all(&workdir);
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim_end().to_owned();
        match out {
            Ok(Some(out)) if out.status.success() => {
                let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
                let mut lines: Vec<String> = stderr.lines().map(str::to_owned).collect();
                lines.drain(..lines.len().saturating_sub(STEP_LOG_LINES));
                let summary = stdout.lines().last().or(lines.last().map(String::as_str)).unwrap_or_default().to_owned();
                Ok(StepOutput { summary, lines })
            }
            Ok(Some(out)) => {
                // Its error is the last thing it says: `kelp-runtime: <error>`, over lines.
                let message = text(&out.stderr);
                let start = message.rfind("\nkelp-runtime: ").map_or(0, |i| i + 1);
                let error = &message[start..];
                Err(error.strip_prefix("kelp-runtime: ").unwrap_or(error).to_owned())
            }
            Ok(None) => {
                let limit = limit.saturating_add(STEP_GRACE).as_secs();
                Err(format!("{} did not end within {limit} s and was killed", args.join(" ")))
            }
            Err(e) => Err(format!("cannot start {} {}: {e}", self.runtime_bin.display(), args.join(" "))),
        }
    }
}

/// What a step that succeeded said.
#[derive(Debug)]
pub(crate) struct StepOutput {
    /// One line: what it did (what was built, from which key, how long it took).
    pub(crate) summary: String,
    /// Its log's last lines (at most [`STEP_LOG_LINES`]).
    pub(crate) lines: Vec<String>,
}

/// The lines of a step's log an instance's log begins with, at most.
const STEP_LOG_LINES: usize = 50;

/// The instance's Unix socket, in its working directory.
const SOCKET_FILE: &str = ".kelp-http.sock";
/// The longest socket path a `sockaddr_un` holds (108 bytes with the final NUL), with margin.
const MAX_SOCKET_PATH: usize = 100;

/// A port that was free a moment ago.
fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A running `kelp-runtime`. Dropping it kills its process tree.
#[derive(Debug)]
pub(crate) struct Process {
    child: Child,
    pid: i32,
    port: u16,
    /// The Unix socket it also serves HTTP on, for the gateway.
    socket: Option<PathBuf>,
    stdin: Option<ChildStdin>,
    sink: Arc<LogSink>,
    workdir: PathBuf,
    client: HttpClient,
    exited: Option<ExitStatus>,
    /// Its cgroup, when it has one (else it is contained by process group only).
    cgroup: Option<Arc<Cgroup>>,
}

impl Process {
    /// Its process ID (and process group ID).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Its loopback port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The base URI the gateway sends its requests to: its Unix socket, else its port.
    pub(crate) fn base(&self) -> String {
        match &self.socket {
            Some(socket) => crate::connect::unix_base(socket),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Where its output goes.
    pub(crate) fn sink(&self) -> &Arc<LogSink> {
        &self.sink
    }

    /// Hands a pre-warmed process its function: its cgroup limited to `memory_limit` bytes (0 for
    /// none), its `volumes` written to its directory, then one JSON object of environment variables.
    pub(crate) async fn hand_off(
        &mut self,
        env: &[(String, String)],
        volumes: &[Volume],
        memory_limit: u64,
    ) -> io::Result<()> {
        if let Some(cgroup) = &self.cgroup {
            cgroup.limit_memory(memory_limit)?;
        }
        let volumes_var = volumes::write(&self.workdir.join("volumes"), volumes)?;
        let map: serde_json::Map<String, serde_json::Value> =
            env.iter().chain(&volumes_var).map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        let mut line = serde_json::to_vec(&map)?;
        line.push(b'\n');
        let mut stdin =
            self.stdin.take().ok_or_else(|| io::Error::other("the process was already handed a function"))?;
        stdin.write_all(&line).await?;
        stdin.flush().await
    }

    /// Whether the process has exited (reaping it if so).
    pub(crate) fn has_exited(&mut self) -> bool {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited.is_some()
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let status = self.child.wait().await.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(-1));
        self.exited = Some(status);
        status
    }

    /// `GET /healthz`: its status, or `None` when nothing answers.
    pub(crate) async fn probe(&self) -> Option<StatusCode> {
        let req = http::Request::get(format!("http://127.0.0.1:{}/healthz", self.port)).body(Full::new(Bytes::new()));
        let res = tokio::time::timeout(PROBE_TIMEOUT, self.client.request(req.ok()?)).await.ok()?.ok()?;
        Some(res.status())
    }

    /// Polls `/healthz` until it answers `want`; `Err` with the exit status if the process exits first.
    /// The runtime logs on stderr when it has loaded the function (`KELP_LOG` at `info`, the
    /// default), so a line there is probed at once; otherwise the probes are 1 ms apart at first
    /// (a ready runtime answers within a millisecond or two of its hand-off, but the timer's
    /// granularity makes that 2), backing off to 50 ms for a slow start (dependency installs).
    pub(crate) async fn wait_for_health(&mut self, want: StatusCode) -> Result<(), ExitStatus> {
        let mut delay = Duration::from_millis(1);
        let mut logged = self.sink.stderr_lines();
        loop {
            if self.has_exited() {
                return Err(self.wait().await);
            }
            if self.probe().await == Some(want) {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = logged.changed() => {}
            }
            delay = (delay + delay / 4).min(Duration::from_millis(50));
        }
    }

    /// Completes with the memory used once the process's instance went over `limit` bytes (never
    /// when `limit` is 0): the kernel's OOM kill in its cgroup where it has one with a memory
    /// limit, else a watchdog over the resident memory of its cgroup's members or, without a
    /// cgroup, of its process tree.
    pub(crate) fn memory_exceeded(&self, limit: u64) -> impl Future<Output = u64> + Send + 'static {
        let cgroup = self.cgroup.clone();
        let pid = self.pid;
        async move {
            match cgroup {
                Some(cgroup) if limit > 0 && cgroup.limits_memory() => memory::oom_killed(&cgroup).await,
                Some(cgroup) => memory::exceeded(memory::Members::Cgroup(cgroup), limit).await,
                None => memory::exceeded(memory::Members::Tree(pid), limit).await,
            }
        }
    }

    /// When the kernel OOM-killed a process of its cgroup: the most memory the instance used.
    pub(crate) fn oom_killed(&self) -> Option<u64> {
        self.cgroup.as_ref()?.oom_killed()
    }

    /// SIGTERM, then up to `grace` for the runtime to finish in-flight requests and stop its
    /// workers, then SIGKILL to whatever of the instance is left.
    pub(crate) async fn stop(mut self, grace: Duration) {
        let groups = if self.cgroup.is_none() { Table::read().tree_groups(self.pid) } else { Groups::new() };
        if !self.has_exited() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGTERM);
            if tokio::time::timeout(grace, self.wait()).await.is_err() {
                self.kill();
            }
        }
        // Workers still running after their front exited (busy in a handler) are stopped too.
        match &self.cgroup {
            Some(cgroup) => cgroup.kill(),
            None => signal_groups(&groups, Signal::SIGKILL),
        }
        self.wait().await;
    }

    /// Kills the whole instance at once: its cgroup, else its process tree (which must not have
    /// been reaped yet).
    pub(crate) fn kill(&mut self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        } else if !self.has_exited() {
            kill_tree(self.pid);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // In its cgroup, even what outlived the runtime (a daemonised child) is killed.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}
