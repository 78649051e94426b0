//! One instance of a function: a `kelp-runtime` process (pre-warmed or started cold), supervised:
//! health-checked until ready, restarted with exponential back-off when it exits, killed and
//! restarted when its process tree exceeds the memory limit, drained and stopped on request.

use crate::memory;
use crate::platform::Shared;
use crate::process::{Mode, Process};
use crate::volumes::Volume;
use http::StatusCode;
use kelp_runtime::language::Language;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// First restart delay; doubles per consecutive failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that stayed up this long resets the back-off.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a pre-warmed process taken by an instance waits at most for its first request before
/// the pool starts its replacement.
const REFILL_AFTER: Duration = Duration::from_millis(100);
/// Added to the function's timeout for how long a stopping instance may drain.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// What starting a process of one function needs (the same for all of a revision's instances).
/// Its [`std::fmt::Debug`] shows the names of `env`, not the values.
#[derive(Clone)]
pub(crate) struct Launch {
    /// The function's language.
    pub(crate) language: &'static Language,
    /// The function's environment followed by Kubeless's contract (`FUNC_HANDLER`, `MOD_NAME`,
    /// `FUNC_TIMEOUT`, `FUNC_RUNTIME`, `FUNC_MEMORY_LIMIT`, `KUBELESS_INSTALL_VOLUME`).
    pub(crate) env: Vec<(String, String)>,
    /// `FUNC_MEMORY_LIMIT` in bytes; 0 for none.
    pub(crate) memory_limit: u64,
    /// `FUNC_TIMEOUT`.
    pub(crate) timeout: Duration,
    /// The largest request body the function accepts, in bytes, as its runtime reads it from
    /// `env` (`FUNC_MEMFILE_MAX` or `REQ_MB_LIMIT`, default 100 MiB): the gateway buffers no more.
    pub(crate) max_body: usize,
    /// The Secret and ConfigMap volumes, written for every process.
    pub(crate) volumes: Vec<Volume>,
    /// The materialised code (`KUBELESS_INSTALL_VOLUME`).
    pub(crate) code_dir: PathBuf,
    /// What the revision's steps said (the dependencies installed, what was built, from which
    /// key, in how long): the first lines of every instance's log, as a pod's init containers'
    /// logs come before its own.
    pub(crate) preface: Vec<String>,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("language", &self.language.name)
            .field("env", &crate::EnvNames(&self.env))
            .field("memory_limit", &self.memory_limit)
            .field("timeout", &self.timeout)
            .field("volumes", &self.volumes)
            .finish()
    }
}

/// The phase of an instance, as a Pod's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Starting: not healthy yet.
    Pending,
    /// Its process is up (see [`InstanceInfo::ready`]).
    Running,
    /// Its last process failed; it waits to be restarted.
    Failed,
}

/// How an instance's process ended, as a container's `lastState.terminated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// `OOMKilled` (memory limit exceeded), `Error` (failed) or `Completed` (exited 0).
    pub reason: String,
    /// What happened, e.g. the runtime's last error or the memory used.
    pub message: String,
    /// The exit code, when the process exited rather than being killed.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// When it ended.
    pub finished_at: SystemTime,
}

/// A snapshot of one instance, for the read-only Pods of the API layer.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    /// The function's namespace.
    pub namespace: String,
    /// The function's name.
    pub function: String,
    /// `<function>-<revision>-<n>`.
    pub name: String,
    /// The revision: a short hash of the function's spec and environment.
    pub revision: String,
    /// The phase.
    pub phase: Phase,
    /// Whether it receives requests (healthy and not stopping).
    pub ready: bool,
    /// How many times its process was restarted.
    pub restarts: u32,
    /// When the instance was created.
    pub created_at: SystemTime,
    /// When its current process became healthy.
    pub started_at: Option<SystemTime>,
    /// How its previous process ended.
    pub last_termination: Option<Termination>,
    /// Its current process.
    pub pid: Option<u32>,
    /// Its current process's loopback port.
    pub port: Option<u16>,
    /// Whether its current process came from the pre-warmed pool.
    pub pooled: bool,
    /// Requests it is serving.
    pub in_flight: usize,
    /// Its log file.
    pub log_path: PathBuf,
}

/// A supervised instance.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) namespace: String,
    pub(crate) function: String,
    pub(crate) name: String,
    pub(crate) revision: String,
    pub(crate) log_path: PathBuf,
    launch: Arc<Launch>,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    stop: watch::Sender<bool>,
    done: watch::Sender<bool>,
    /// The function's event counter, bumped when an instance becomes ready or fails.
    events: watch::Sender<u64>,
    /// Requests served (leases dropped).
    served: watch::Sender<u64>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    ready: bool,
    stopping: bool,
    restarts: u32,
    created_at: SystemTime,
    started_at: Option<SystemTime>,
    last_termination: Option<Termination>,
    failed_at: Option<Instant>,
    pid: Option<u32>,
    port: Option<u16>,
    /// Where the gateway sends requests (`crate::process::Process::base`).
    base: Option<Arc<str>>,
    pooled: bool,
    last_used: Instant,
}

/// A request's hold on an instance: counted in flight until dropped.
#[derive(Debug)]
pub(crate) struct Lease(Arc<Instance>);

impl Lease {
    /// The base URI of the instance's current process (scheme and authority).
    pub(crate) fn base(&self) -> Option<Arc<str>> {
        self.0.state.lock().unwrap().base.clone()
    }

    /// The instance.
    pub(crate) fn instance(&self) -> &Arc<Instance> {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap();
        state.last_used = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        drop(state);
        self.0.served.send_modify(|n| *n += 1);
    }
}

impl Instance {
    /// Creates the instance and starts supervising it.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        namespace: &str,
        function: &str,
        revision: &str,
        index: usize,
        launch: Arc<Launch>,
        events: watch::Sender<u64>,
    ) -> Arc<Instance> {
        let name = format!("{function}-{revision}-{index}");
        let log_path = shared.config.data_dir.join("logs").join(namespace).join(format!("{name}.log"));
        let instance = Arc::new(Instance {
            namespace: namespace.to_owned(),
            function: function.to_owned(),
            name,
            revision: revision.to_owned(),
            log_path,
            launch,
            state: Mutex::new(State {
                phase: Phase::Pending,
                ready: false,
                stopping: false,
                restarts: 0,
                created_at: SystemTime::now(),
                started_at: None,
                last_termination: None,
                failed_at: None,
                pid: None,
                port: None,
                base: None,
                pooled: false,
                last_used: Instant::now(),
            }),
            in_flight: AtomicUsize::new(0),
            served: watch::Sender::new(0),
            stop: watch::Sender::new(false),
            done: watch::Sender::new(false),
            events,
        });
        tokio::spawn(supervise(shared.clone(), instance.clone()));
        instance
    }

    /// A lease, if the instance is ready and not stopping.
    pub(crate) fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let state = self.state.lock().unwrap();
        (state.ready && !state.stopping).then(|| {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            Lease(self.clone())
        })
    }

    /// Requests it has served.
    pub(crate) fn served(&self) -> u64 {
        *self.served.borrow()
    }

    /// Requests being served.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether it can take requests.
    pub(crate) fn is_ready(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.ready && !state.stopping
    }

    /// Whether it has not been asked to stop.
    pub(crate) fn is_live(&self) -> bool {
        !self.state.lock().unwrap().stopping
    }

    /// Whether it is starting its first process.
    pub(crate) fn is_starting(&self) -> bool {
        let state = self.state.lock().unwrap();
        !state.stopping && state.phase == Phase::Pending
    }

    /// How long it has served no request.
    pub(crate) fn idle_for(&self) -> Duration {
        let state = self.state.lock().unwrap();
        if self.in_flight() > 0 { Duration::ZERO } else { state.last_used.elapsed() }
    }

    /// Its last failure, if it happened after `since`.
    pub(crate) fn failure_since(&self, since: Instant) -> Option<Termination> {
        let state = self.state.lock().unwrap();
        state.failed_at.filter(|at| *at >= since).and(state.last_termination.clone())
    }

    /// Its last failure, while it is not ready.
    pub(crate) fn current_failure(&self) -> Option<Termination> {
        let state = self.state.lock().unwrap();
        if state.ready { None } else { state.last_termination.clone() }
    }

    /// Stops taking requests; the supervisor drains in-flight ones, then stops the process.
    pub(crate) fn request_stop(&self) {
        {
            let mut state = self.state.lock().unwrap();
            state.stopping = true;
            state.ready = false;
        }
        self.stop.send_replace(true);
    }

    /// Whether the supervisor has finished (the process is gone).
    pub(crate) fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Turns true when the supervisor has finished.
    pub(crate) fn done(&self) -> watch::Receiver<bool> {
        self.done.subscribe()
    }

    /// A snapshot for the API layer.
    pub(crate) fn info(&self) -> InstanceInfo {
        let state = self.state.lock().unwrap();
        InstanceInfo {
            namespace: self.namespace.clone(),
            function: self.function.clone(),
            name: self.name.clone(),
            revision: self.revision.clone(),
            phase: state.phase,
            ready: state.ready && !state.stopping,
            restarts: state.restarts,
            created_at: state.created_at,
            started_at: state.started_at,
            last_termination: state.last_termination.clone(),
            pid: state.pid,
            port: state.port,
            pooled: state.pooled,
            in_flight: self.in_flight(),
            log_path: self.log_path.clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
        self.events.send_modify(|n| *n += 1);
    }
}

/// How a process's run ended.
enum Ended {
    Exited(ExitStatus),
    OutOfMemory(u64),
    Stopped,
}

/// Runs processes for `instance` until it is asked to stop.
async fn supervise(shared: Arc<Shared>, instance: Arc<Instance>) {
    let mut stop = instance.stop.subscribe();
    let requested = Instant::now();
    let mut first = true;
    let mut backoff = MIN_BACKOFF;
    while !*stop.borrow() {
        let (mut process, pooled) = match start(&shared, &instance).await {
            Ok(started) => started,
            Err(e) => {
                let message = format!("cannot start {}: {e}", shared.config.runtime_bin.display());
                instance.update(|s| fail(s, termination("Error", message, None)));
                if sleep_or_stop(&mut stop, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let pid = process.pid();
        instance.update(|s| {
            s.phase = Phase::Pending;
            s.pid = u32::try_from(pid).ok();
            s.port = Some(process.port());
            s.base = Some(process.base().into());
            s.pooled = pooled;
        });
        let limit = instance.launch.memory_limit;
        let out_of_memory = process.memory_exceeded(limit);
        let healthy = tokio::select! {
            r = process.wait_for_health(StatusCode::OK) => r.map_err(Ended::Exited),
            used = out_of_memory => Err(Ended::OutOfMemory(used)),
            _ = stop.wait_for(|s| *s) => Err(Ended::Stopped),
        };
        if pooled {
            refill_after_first_request(&shared, &instance, healthy.is_ok());
        }
        let ran = Instant::now();
        let ended = match healthy {
            Err(ended) => ended,
            Ok(()) => {
                if first {
                    shared.metrics.cold_start(&instance.namespace, &instance.function, pooled, requested.elapsed());
                    first = false;
                }
                instance.update(|s| {
                    s.phase = Phase::Running;
                    s.ready = !s.stopping;
                    s.started_at = Some(SystemTime::now());
                });
                let out_of_memory = process.memory_exceeded(limit);
                tokio::select! {
                    status = process.wait() => Ended::Exited(status),
                    used = out_of_memory => Ended::OutOfMemory(used),
                    _ = stop.wait_for(|s| *s) => Ended::Stopped,
                }
            }
        };
        let termination = match ended {
            Ended::Stopped => {
                drain(&instance, &shared).await;
                process.stop(shared.config.stop_grace).await;
                break;
            }
            Ended::OutOfMemory(used) => {
                process.kill();
                let status = process.wait().await;
                oom_termination(status, used, limit)
            }
            // The kernel's OOM kill in its cgroup may have taken the runtime itself.
            Ended::Exited(status) => match process.oom_killed() {
                Some(used) => {
                    process.kill();
                    oom_termination(status, used, limit)
                }
                None => exit_termination(status, &process.sink().recent()),
            },
        };
        drop(process);
        tracing::warn!(instance = %instance.name, reason = %termination.reason, message = %termination.message, "instance exited; restarting");
        if ran.elapsed() >= STABLE_AFTER {
            backoff = MIN_BACKOFF;
        }
        instance.update(|s| {
            fail(s, termination);
            s.restarts += 1;
        });
        if sleep_or_stop(&mut stop, backoff).await {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    instance.update(|s| s.ready = false);
    instance.done.send_replace(true);
}

/// A process for `instance`: a pre-warmed one handed the function, else a new one.
async fn start(shared: &Arc<Shared>, instance: &Instance) -> std::io::Result<(Process, bool)> {
    let launch = &instance.launch;
    if !launch.preface.is_empty() {
        if let Some(dir) = instance.log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&instance.log_path)?;
        std::io::Write::write_all(&mut log, format!("{}\n", launch.preface.join("\n")).as_bytes())?;
    }
    while let Some(mut process) = shared.pool.take(launch.language) {
        process.sink().attach(&instance.log_path)?;
        match process.hand_off(&launch.env, &launch.volumes, launch.memory_limit).await {
            Ok(()) => return Ok((process, true)),
            Err(e) => {
                tracing::debug!(error = %e, "a pre-warmed runtime could not take its function; trying another");
                shared.pool.refill(launch.language);
            }
        }
    }
    let process = shared.launcher.spawn(Mode::Direct, &launch.env, &launch.volumes, launch.memory_limit)?;
    process.sink().attach(&instance.log_path)?;
    Ok((process, false))
}

/// Starts the replacement of the pre-warmed process `instance` took once that process has served
/// its first request (at most [`REFILL_AFTER`] after it is `healthy`; at once if it is not):
/// starting an interpreter while it loads its function and serves would slow both.
fn refill_after_first_request(shared: &Arc<Shared>, instance: &Instance, healthy: bool) {
    let pool = shared.pool.clone();
    let language = instance.launch.language;
    let mut served = instance.served.subscribe();
    tokio::spawn(async move {
        if healthy {
            let _ = tokio::time::timeout(REFILL_AFTER, served.changed()).await;
        }
        pool.refill(language);
    });
}

/// Waits until the stopping instance serves no request, at most the function's timeout (and a
/// margin); at shutdown it does not wait (the runtime drains on SIGTERM itself).
async fn drain(instance: &Instance, shared: &Shared) {
    // Checked: a deadline past the clock's range is no deadline.
    let deadline = Instant::now().checked_add(instance.launch.timeout.saturating_add(DRAIN_MARGIN));
    while instance.in_flight() > 0 && deadline.is_none_or(|d| Instant::now() < d) && !shared.is_closing() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sleeps `delay`; true if the instance was asked to stop meanwhile.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::time::timeout(delay, stop.wait_for(|s| *s)).await.is_ok()
}

fn fail(state: &mut State, termination: Termination) {
    state.phase = Phase::Failed;
    state.ready = false;
    state.pid = None;
    state.port = None;
    state.base = None;
    state.started_at = None;
    state.failed_at = Some(Instant::now());
    state.last_termination = Some(termination);
}

fn termination(reason: &str, message: String, exit_code: Option<i32>) -> Termination {
    Termination { reason: reason.to_owned(), message, exit_code, signal: None, finished_at: SystemTime::now() }
}

/// The termination of an instance killed for using `used` bytes of its `limit`.
fn oom_termination(status: ExitStatus, used: u64, limit: u64) -> Termination {
    let message = format!(
        "memory limit exceeded: the instance's processes used {} of its {} limit",
        memory::mib(used.max(limit)),
        memory::mib(limit)
    );
    Termination {
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        ..termination("OOMKilled", message, None)
    }
}

/// The termination of a process that exited by itself; the message is the runtime's fatal error
/// (its last `kelp-runtime: ...` line and what follows), with dependency installs named as such.
fn exit_termination(status: ExitStatus, recent: &[String]) -> Termination {
    use std::os::unix::process::ExitStatusExt;
    let fatal = recent.iter().rposition(|l| l.starts_with("kelp-runtime: ")).map(|i| {
        let text = recent[i..].join("\n");
        let text = text.trim_start_matches("kelp-runtime: ");
        if text.starts_with("installing ") && text.contains("dependencies") {
            format!("dependency install failed: {text}")
        } else {
            text.to_owned()
        }
    });
    let message = fatal.unwrap_or_else(|| format!("the runtime exited ({status})"));
    let reason = if status.success() { "Completed" } else { "Error" };
    Termination { signal: status.signal(), ..termination(reason, message, status.code()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn the_runtime_fatal_error_explains_an_exit() {
        let lines = [
            "pip output".to_owned(),
            "kelp-runtime: installing python dependencies from requirements.txt failed (exit status: 1):".to_owned(),
            "ERROR: No matching distribution found for nope".to_owned(),
        ];
        let t = exit_termination(ExitStatus::from_raw(1 << 8), &lines);
        assert_eq!((t.reason.as_str(), t.exit_code), ("Error", Some(1)));
        assert!(t.message.starts_with("dependency install failed: installing python"), "{}", t.message);
        assert!(t.message.ends_with("found for nope"), "{}", t.message);
        let timed_out = ["kelp-runtime: dependency install timed out after 600 s: installing python dependencies \
                          from requirements.txt (KELP_INSTALL_TIMEOUT)"
            .to_owned()];
        let t = exit_termination(ExitStatus::from_raw(1 << 8), &timed_out);
        assert!(t.message.starts_with("dependency install timed out after 600 s: "), "{}", t.message);
        let t = exit_termination(ExitStatus::from_raw(9), &[]);
        assert_eq!((t.signal, t.message.contains("signal")), (Some(9), true), "{}", t.message);
    }
}
