//! What the controller's cluster tests share: polling and kubectl helpers.

#![allow(dead_code, unreachable_pub)]

pub use kelp_testenv::{ControlPlane, ControllerProcess};
use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Polls `check` until it gives `Some`, for at most `timeout`; panics with `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs kubectl against `plane` with `stdin` as input; returns (success, stdout, stderr).
pub fn kubectl(plane: &ControlPlane, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut command = plane.kubectl();
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("running kubectl");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The documents of a YAML file as JSON, without `metadata.namespace` (tests pick their own).
pub fn manifest(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("a YAML manifest");
    for doc in &mut docs {
        if let Some(meta) = doc.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
            meta.remove("namespace");
        }
    }
    docs
}
