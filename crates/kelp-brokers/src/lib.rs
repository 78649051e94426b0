//! Real message brokers for tests, as `kelp-testenv` is a real control plane: a Kafka 4.1.1
//! broker in KRaft mode (one process, broker and controller), a nats-server with JetStream and a
//! Kinesis (moto's server mode), each on 127.0.0.1 with free ports and a temporary directory.
//!
//! ```no_run
//! use kelp_brokers::{Kafka, Kinesis, Nats};
//!
//! let kafka = Kafka::shared(); // started once per test binary
//! let brokers = kafka.bootstrap(); // "127.0.0.1:<port>", for KAFKA_BROKERS
//! let nats = Nats::shared();
//! let url = nats.url(); // "nats://127.0.0.1:<port>", for NATS_URL
//! let endpoint = Kinesis::shared().endpoint(); // "http://127.0.0.1:<port>", a trigger's endpoint
//!
//! let private = Kafka::start(); // one of its own, for a test that stops it
//! private.stop();
//! private.start_again(); // same port, same data: topics and committed offsets survive
//! # drop((brokers, url, endpoint));
//! ```
//!
//! The Kafka jars come from `KELP_KAFKA_LIB`, nats-server from `KELP_NATS_SERVER` and moto from
//! `KELP_MOTO_SERVER`, else from
//! `scripts/brokers`, which fetches them once into a cache (`scripts/test` runs it first). Java
//! is `$JAVA_HOME/bin/java`, else `java`, with a small heap and a fast-starting JIT unless
//! `KELP_KAFKA_JVM_OPTS` says otherwise. Without them every test using this crate panics with
//! the reason: nothing is skipped.
//!
//! Each broker runs in its own process group, its output in `<dir>/<name>.log`. A watchdog kills
//! it and removes its directory once the test process is gone (the shared brokers are statics,
//! never dropped); a private one is also cleaned up when dropped.

mod kafka;
mod kinesis;
mod nats;
mod supervised;

pub use crate::kafka::Kafka;
pub use crate::kinesis::Kinesis;
pub use crate::nats::Nats;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where the brokers are: what `scripts/brokers` prints, or the environment's overrides.
#[derive(Debug)]
struct Installed {
    kafka_lib: PathBuf,
    nats_server: PathBuf,
    moto_server: PathBuf,
}

/// `KELP_KAFKA_LIB`, `KELP_NATS_SERVER` and `KELP_MOTO_SERVER`, each else from `scripts/brokers`
/// (run at most once).
fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let from_env = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let (kafka_lib, nats_server) = (from_env("KELP_KAFKA_LIB"), from_env("KELP_NATS_SERVER"));
        let moto_server = from_env("KELP_MOTO_SERVER");
        let missing = kafka_lib.is_none() || nats_server.is_none() || moto_server.is_none();
        let fetched = if missing { run_script() } else { Vec::new() };
        let pick = |given: Option<PathBuf>, name: &str| {
            given
                .or_else(|| fetched.iter().find(|(k, _)| k == name).map(|(_, v)| PathBuf::from(v)))
                .unwrap_or_else(|| panic!("kelp-brokers: scripts/brokers printed no {name}"))
        };
        let installed = Installed {
            kafka_lib: pick(kafka_lib, "KELP_KAFKA_LIB"),
            nats_server: pick(nats_server, "KELP_NATS_SERVER"),
            moto_server: pick(moto_server, "KELP_MOTO_SERVER"),
        };
        assert!(installed.kafka_lib.is_dir(), "kelp-brokers: no Kafka jars in {}", installed.kafka_lib.display());
        assert!(installed.nats_server.is_file(), "kelp-brokers: no nats-server at {}", installed.nats_server.display());
        assert!(installed.moto_server.is_file(), "kelp-brokers: no moto_server at {}", installed.moto_server.display());
        installed
    })
}

/// Runs `scripts/brokers` and returns the `NAME=value` lines it printed.
fn run_script() -> Vec<(String, String)> {
    let script = kelp_testkit::repo_root().join("scripts/brokers");
    let out = Command::new(&script).stdin(Stdio::null()).output().expect("kelp-brokers: running scripts/brokers");
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// The message of a caught panic.
fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => {
            panic.downcast_ref::<&str>().map_or_else(|| "(a panic without a message)".to_owned(), |t| (*t).to_owned())
        }
    }
}
