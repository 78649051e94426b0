//! `kelp-control-plane`: the control plane of [`kelp_testenv::ControlPlane::start`] for shell
//! scripts (the benchmarks). Once it is ready (API server up, kwok Node Ready, CRDs Established)
//! it prints the path of the admin kubeconfig on stdout, one line, and stays up until SIGTERM,
//! SIGINT or SIGHUP, or until its stdin reaches end of file; then it stops every component and
//! removes its directory. Killed outright, the library's watchdog does the same within a second.
//!
//! ```sh
//! coproc PLANE { kelp-control-plane; }
//! read -r KUBECONFIG <&"${PLANE[0]}"    # blocks until ready (a few seconds)
//! ...                                   # kubectl, controllers, ...
//! kill "$PLANE_PID"                     # or close its stdin
//! ```
//!
//! With `--real-node` the control plane has a real node instead of kwok's (root only; see
//! [`ControlPlane::start_node`]).
//!
//! Beside the kubeconfig, `kubeconfig-audited` is the audited user's
//! ([`ControlPlane::audited_kubeconfig`]): every request made with it is a line of
//! `logs/audit.log`, kube-apiserver's audit log.
//!
//! The components' logs are in the directory printed on stderr. The binaries come from
//! `KELP_K8S_BIN_DIR`, else `scripts/k8s-bins`. k8s-openapi's version feature comes from the
//! workspace, like the library's tests: build it together with a binary crate, e.g.
//! `cargo build -p kelp-controller -p kelp-testenv --bin kelp-control-plane`.

use std::io::Write as _;

use kelp_testenv::ControlPlane;
use tokio::io::AsyncReadExt as _;
use tokio::signal::unix::{SignalKind, signal};

fn main() {
    let plane = match std::env::args().nth(1).as_deref() {
        Some("--real-node") => ControlPlane::start_node(),
        Some(other) => panic!("kelp-control-plane: unknown argument {other} (the only one is --real-node)"),
        None => ControlPlane::start(),
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", plane.kubeconfig().display()).expect("writing the kubeconfig path to stdout");
        stdout.flush().expect("flushing stdout");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a tokio runtime");
    let why = runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).expect("handling SIGTERM");
        let mut int = signal(SignalKind::interrupt()).expect("handling SIGINT");
        let mut hup = signal(SignalKind::hangup()).expect("handling SIGHUP");
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 512];
        let eof = async { while stdin.read(&mut buffer).await.is_ok_and(|n| n > 0) {} };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
            () = eof => "end of stdin",
        }
    });
    // The stdin reader may still be blocked in a read: do not wait for it.
    runtime.shutdown_background();
    eprintln!("kelp-control-plane: {why}; stopping");
    drop(plane);
}
