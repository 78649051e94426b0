//! One broker process: started in its own process group in a directory of its own, watched by a
//! watchdog, ready once its port accepts connections, stoppable and startable again.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kelp_testkit::process::{Proc, Watchdog};

/// How long a broker may take to accept connections (a JVM on a busy 2-core machine is slow).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A broker process and what it needs to be started again.
#[derive(Debug)]
pub(crate) struct Supervised {
    name: &'static str,
    dir: PathBuf,
    port: u16,
    command: fn(&Path) -> Command,
    proc: Mutex<Option<Proc>>,
    watchdog: Mutex<Watchdog>,
}

impl Supervised {
    /// A temporary directory (`kelp-<name>-*`) under the watchdog's care, for `prepare` to fill
    /// before [`Supervised::start`].
    pub(crate) fn dir(name: &str) -> (PathBuf, Watchdog) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kelp-{name}-"))
            .tempdir()
            .expect("kelp-brokers: creating a temporary directory")
            .keep();
        let watchdog = Watchdog::start(std::process::id(), &dir);
        (dir, watchdog)
    }

    /// Starts `command(dir)` as `name` and waits until `port` accepts connections.
    pub(crate) fn start(
        name: &'static str,
        (dir, watchdog): (PathBuf, Watchdog),
        port: u16,
        command: fn(&Path) -> Command,
    ) -> Supervised {
        let broker = Supervised { name, dir, port, command, proc: Mutex::new(None), watchdog: Mutex::new(watchdog) };
        broker.start_again();
        broker
    }

    /// The broker's directory (configuration, data, `<name>.log`).
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The port clients connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills the broker's process group (SIGKILL, as a crash); a stopped broker stays stopped.
    pub(crate) fn stop(&self) {
        if let Some(mut proc) = self.proc().take() {
            proc.kill();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered.
    pub(crate) fn pause(&self) {
        if let Some(proc) = self.proc().as_ref() {
            proc.pause();
        }
    }

    /// Lets a broker frozen by [`Supervised::pause`] run again (SIGCONT).
    pub(crate) fn resume(&self) {
        if let Some(proc) = self.proc().as_ref() {
            proc.resume();
        }
    }

    /// Starts the broker (again: same port, same directory) unless it runs, and waits until it
    /// accepts connections. Panics with the end of its log when it exits or takes too long.
    pub(crate) fn start_again(&self) {
        let began = Instant::now();
        {
            let mut proc = self.proc();
            if proc.is_none() {
                let started = Proc::spawn(self.name, (self.command)(&self.dir), &self.dir);
                self.watchdog().record([started.id()]);
                *proc = Some(started);
            }
        }
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.proc().as_mut().and_then(Proc::exited) {
                panic!("kelp-brokers: {} exited ({status})\n{}", self.name, self.log_tail());
            }
            assert!(
                began.elapsed() < READY_TIMEOUT,
                "kelp-brokers: {} did not accept connections on port {} within {} s\n{}",
                self.name,
                self.port,
                READY_TIMEOUT.as_secs(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "kelp-brokers: {} on 127.0.0.1:{} after {:.1} s (log: {})",
            self.name,
            self.port,
            began.elapsed().as_secs_f64(),
            self.log().display()
        );
    }

    /// The broker's output file.
    pub(crate) fn log(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    /// The end of the broker's output, for panic messages.
    pub(crate) fn log_tail(&self) -> String {
        kelp_testkit::process::log_tail(&self.log(), 60)
    }

    fn proc(&self) -> MutexGuard<'_, Option<Proc>> {
        self.proc.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn watchdog(&self) -> MutexGuard<'_, Watchdog> {
        self.watchdog.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.watchdog().stop();
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
