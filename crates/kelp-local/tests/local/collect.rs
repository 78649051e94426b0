//! Collection: code and dependency directories no live function uses, and temporaries that
//! crashed processes left behind, are removed; what live functions use stays.

use crate::support::{SERIAL, config, deployment, eventually, spec};
use kelp_local::{Platform, Scaling};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A process ID that no process has any more.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Creates the directory `dir` holding `file` with `content`.
fn dir_with(dir: &Path, file: &str, content: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(file), content).unwrap();
}

#[tokio::test]
async fn unused_directories_and_crash_left_temporaries_are_collected() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (code, deps) = (data.join("code"), data.join("cache/deps/python"));
    let dead = dead_pid();
    let temporaries: Vec<PathBuf> = vec![
        code.join(format!(".tmp-abc-{dead}-0")),
        deps.join(format!("abc.tmp-{dead}")),
        data.join(format!("cache/workers/abc/.kelp_worker.py.{dead}")),
        std::env::temp_dir().join(format!("kelp-runtime-{dead}")),
    ];
    for temporary in &temporaries {
        dir_with(temporary, "half-written", "x");
    }
    let unused_code = code.join("0".repeat(64));
    dir_with(&unused_code, "hello.py", "def hello(event, context):\n    return 'old'\n");
    let unused_deps = deps.join("1".repeat(64));
    dir_with(&unused_deps, "requirements.txt", "unused==1\n");
    let live_deps = deps.join("2".repeat(64));
    dir_with(&live_deps, "requirements.txt", "live==1\n");

    let mut config = config(data, 0);
    config.collect_grace = Duration::ZERO;
    let platform = Platform::new(config).unwrap();
    eventually("the temporaries are removed at start", Duration::from_secs(10), || {
        temporaries.iter().all(|t| !t.exists())
    })
    .await;
    assert!(unused_code.exists() && unused_deps.exists(), "at start, only temporaries are collected");

    let live = spec(json!({"runtime": "python3", "handler": "hello.hello", "deps": "live==1\n",
        "function": "def hello(event, context):\n    return 'new'\n"}));
    platform.deploy(deployment("live", live, Scaling::default())).await.unwrap();
    let removed = platform.collect().await;
    assert!(!unused_code.exists() && !unused_deps.exists(), "unused directories are removed: {removed:?}");
    assert!(live_deps.exists(), "the live function's dependencies stay");
    let code_dirs: Vec<PathBuf> = std::fs::read_dir(&code).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(code_dirs.len(), 1, "the live function's code stays: {code_dirs:?}");

    assert!(platform.remove("default", "live").await);
    platform.collect().await;
    assert!(!live_deps.exists() && !code_dirs[0].exists(), "a removed function's directories are collected");
    platform.shutdown().await;
}
