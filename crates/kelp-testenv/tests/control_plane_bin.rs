//! `kelp-control-plane`, the binary the benchmarks start: prints a working kubeconfig once the
//! control plane is ready, and tears everything down on SIGTERM or at the end of its stdin.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the binary and returns it with the kubeconfig path it printed.
fn start() -> (Child, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kelp-control-plane"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting kelp-control-plane");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("reading its stdout");
    let kubeconfig = PathBuf::from(line.trim());
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap_or_else(|e| panic!("kelp-control-plane printed {line:?}, not a readable kubeconfig: {e}"));
    assert!(text.contains("current-context: kelp-testenv"), "{text}");
    (child, kubeconfig)
}

/// Waits (60 s at most) for the process to exit and its directory to be gone.
fn assert_stops(mut child: Child, kubeconfig: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "kelp-control-plane did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(!kubeconfig.parent().unwrap().exists(), "its directory {} is still there", kubeconfig.display());
}

#[test]
fn the_kubeconfig_works_and_sigterm_stops_everything() {
    let (child, kubeconfig) = start();
    let nodes = Command::new(kelp_testkit::kubectl_bin())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "nodes", "-o", "name"])
        .output()
        .expect("running kubectl");
    assert!(nodes.status.success(), "{}", String::from_utf8_lossy(&nodes.stderr));
    assert_eq!(String::from_utf8_lossy(&nodes.stdout).trim(), "node/kwok-node-0");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_stops(child, &kubeconfig);
}

#[test]
fn the_end_of_stdin_stops_everything() {
    let (mut child, kubeconfig) = start();
    drop(child.stdin.take());
    assert_stops(child, &kubeconfig);
}
