//! Processes a test starts and must not outlive it (a control plane, a message broker): each in
//! its own process group, its output appended to a log file; a watchdog that kills them once the
//! test process is gone; free loopback ports.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// One running process.
#[derive(Debug)]
pub struct Proc {
    /// `etcd`, `kube-apiserver`, `kafka`, ...
    pub name: &'static str,
    /// The process, leader of its own process group.
    child: Child,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `command` as `name` in a new process group, stdin closed, stdout and stderr
    /// appended to `<log_dir>/<name>.log` (a restart keeps the earlier output).
    pub fn spawn(name: &'static str, mut command: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("kelp-testkit: cannot open {}: {e}", log.display()));
        let clone = |f: &File| f.try_clone().unwrap_or_else(|e| panic!("kelp-testkit: {}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(clone(&file))
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("kelp-testkit: cannot start {name} ({:?}): {e}", command.get_program()));
        Proc { name, child, log }
    }

    /// The process (and group) id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(description)` when the process has ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }

    /// Kills the whole process group and reaps the leader.
    pub fn kill(&mut self) {
        kill_group(self.id());
        let _ = self.child.wait();
    }

    /// The end of its log, for panic messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 40)
    }

    /// Freezes the whole process group (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn pause(&self) {
        signal_group(self.id(), Signal::SIGSTOP);
    }

    /// Lets a group frozen by [`Proc::pause`] run again (SIGCONT).
    pub fn resume(&self) {
        signal_group(self.id(), Signal::SIGCONT);
    }
}

/// Sends `signal` to the process group `id` (gone already is fine).
fn signal_group(id: u32, signal: Signal) {
    if let Ok(id) = i32::try_from(id) {
        let _ = killpg(Pid::from_raw(id), signal);
    }
}

/// SIGKILL to the process group `id` (gone already is fine).
pub fn kill_group(id: u32) {
    signal_group(id, Signal::SIGKILL);
}

/// The last `lines` lines of a log file, or why there are none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            format!("--- last {} lines of {} ---\n{tail}\n---", lines.min(all.len()), path.display())
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// `N` distinct free TCP ports on 127.0.0.1: bound to port 0 together, then released.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind("127.0.0.1:0").expect("kelp-testkit: binding 127.0.0.1:0")).collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("a bound listener's address").port())
}

/// What the watchdog runs: wait for the process `$1` to end, then kill every process group
/// listed in `$2/pids`, run `$2/teardown` when there is one (what a real node leaves outside
/// its groups: containers, mounts, cgroups, a network namespace) and remove `$2`.
/// (`kill -KILL -<group>`: dash's `kill` takes no `--`.)
const WATCHDOG: &str = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
for group in $(cat "$2/pids" 2>/dev/null); do kill -KILL "-$group" 2>/dev/null; done
[ -x "$2/teardown" ] && "$2/teardown"
rm -rf "$2""#;

/// A `sh` loop, in its own process group, that outlives the test process by at most a second:
/// statics are never dropped, so this is what ends a shared control plane's or broker's children
/// (and removes its directory) when the test binary exits, panics or is killed.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    dir: PathBuf,
}

impl Watchdog {
    /// Starts watching the process `watched` (the test process) on behalf of the groups that
    /// [`Watchdog::record`] lists in `dir`.
    pub fn start(watched: u32, dir: &Path) -> Watchdog {
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("kelp-testkit-watchdog")
            .arg(watched.to_string())
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("kelp-testkit: starting the watchdog (sh)");
        Watchdog { child, dir: dir.to_owned() }
    }

    /// Replaces the list of process groups to kill with `ids`.
    pub fn record(&self, ids: impl IntoIterator<Item = u32>) {
        let text: String = ids.into_iter().map(|id| format!("{id}\n")).collect();
        let tmp = self.dir.join("pids.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("pids")))
            .unwrap_or_else(|e| panic!("kelp-testkit: writing {}: {e}", tmp.display()));
    }

    /// Stops watching (the owner cleans up itself).
    pub fn stop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>();
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn a_child_runs_in_its_own_group_and_logs_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; sleep 30 & wait"]);
        let mut proc = Proc::spawn("demo", command, dir.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&proc.log).unwrap().contains("err") {
            assert!(Instant::now() < deadline, "no output in {}", proc.log.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(proc.log_tail().contains("out\nerr\n"), "{}", proc.log_tail());
        assert_eq!(nix::unistd::getpgid(Some(Pid::from_raw(proc.id() as i32))).unwrap().as_raw(), proc.id() as i32);
        assert!(proc.exited().is_none());
        proc.kill();
        assert!(proc.exited().is_some());
    }

    #[test]
    fn the_watchdog_kills_the_recorded_groups_and_removes_the_directory_when_the_watched_process_ends() {
        let dir = tempfile::tempdir().unwrap().keep();
        let mut watched = Command::new("sleep").arg("1").spawn().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 60 & wait"]);
        let mut victim = Proc::spawn("victim", command, &dir);
        let watchdog = Watchdog::start(watched.id(), &dir);
        watchdog.record([victim.id()]);
        watched.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while victim.exited().is_none() || dir.exists() {
            assert!(Instant::now() < deadline, "the watchdog did nothing within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
