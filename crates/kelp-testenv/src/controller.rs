//! A `kelp-controller` or `kelp-triggers` process against a [`ControlPlane`], for the tests of
//! the cluster binaries and of the CLI against a cluster.

use crate::ControlPlane;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `kelp-controller` or `kelp-triggers`, killed (SIGKILL) when dropped.
pub struct ControllerProcess {
    child: Child,
    /// Where its `/metrics` and `/healthz` are served.
    pub address: String,
    /// Its log file.
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts the controller against `plane` (as its administrator) with extra arguments, and
    /// waits for `/healthz`.
    pub fn start(plane: &ControlPlane, identity: &str, args: &[&str]) -> Self {
        Self::start_as(plane, plane.kubeconfig(), identity, args)
    }

    /// Like [`ControllerProcess::start`], with the credentials of `kubeconfig` (e.g. a service
    /// account's token, to check the controller's RBAC).
    pub fn start_as(plane: &ControlPlane, kubeconfig: &Path, identity: &str, args: &[&str]) -> Self {
        Self::start_bin(&kelp_testkit::controller_bin(), plane, kubeconfig, identity, args)
    }

    /// Starts `kelp-triggers` (the Kafka and NATS consumers) against `plane` with extra arguments
    /// (the brokers, say), and waits for `/healthz`.
    pub fn start_triggers(plane: &ControlPlane, identity: &str, args: &[&str]) -> Self {
        Self::start_bin(&kelp_testkit::triggers_bin(), plane, plane.kubeconfig(), identity, args)
    }

    fn start_bin(bin: &Path, plane: &ControlPlane, kubeconfig: &Path, identity: &str, args: &[&str]) -> Self {
        let port = free_port();
        let name = bin.file_name().map_or("kelp".into(), |n| n.to_string_lossy());
        let log = plane.log_dir().join(format!("{name}-{identity}-{port}.log"));
        let file = std::fs::File::create(&log).expect("creating the process's log");
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--identity", identity, "--lease-seconds", "4"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KELP_LOG", "info,kelp_controller=debug,kelp_events=debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let process = Self { child, address: format!("127.0.0.1:{port}"), log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while process.get("/healthz").is_none() {
            assert!(Instant::now() < deadline, "{name} did not serve /healthz:\n{}", process.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }

    /// GETs `path` from the process's HTTP server.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.address).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.starts_with("HTTP/1.1 200").then(|| response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))?
    }

    /// The value of the metric line starting with `prefix`, if any.
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let body = self.get("/metrics")?;
        body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log ({}):\n{}", self.log.display(), self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port").local_addr().expect("its address").port()
}
