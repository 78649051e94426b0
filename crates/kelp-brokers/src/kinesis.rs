//! Kinesis: moto's server mode (`moto_server`), which speaks the Kinesis JSON 1.1 API
//! (`X-Amz-Target: Kinesis_20131202.*`) on one port and keeps its streams in memory.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use kelp_testkit::process::free_ports;

use crate::supervised::Supervised;
use crate::{installed, panic_text};

/// A running Kinesis (moto). See the crate documentation. Its streams live in its memory: a
/// stopped server forgets them. It accepts any credentials and does not check signatures.
#[derive(Debug)]
pub struct Kinesis {
    server: Supervised,
}

impl Kinesis {
    /// The server shared by every test of this test binary, started by the first call. When it
    /// cannot start, every call panics with the reason.
    pub fn shared() -> &'static Kinesis {
        static SHARED: OnceLock<Result<Kinesis, String>> = OnceLock::new();
        match SHARED.get_or_init(|| std::panic::catch_unwind(Kinesis::start).map_err(panic_text)) {
            Ok(kinesis) => kinesis,
            Err(reason) => panic!("kelp-brokers: the shared Kinesis did not start: {reason}"),
        }
    }

    /// Starts a server of its own, ready when this returns. Dropping it kills the server.
    pub fn start() -> Kinesis {
        let dir = Supervised::dir("kinesis");
        let [port] = free_ports();
        std::fs::write(dir.0.join("port"), port.to_string()).expect("kelp-brokers: writing moto's port");
        Kinesis { server: Supervised::start("moto", dir, port, command) }
    }

    /// `http://127.0.0.1:<port>`, a KinesisTrigger's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// The end of the server's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }
}

/// `moto_server -H 127.0.0.1 -p <port>`.
fn command(dir: &Path) -> Command {
    let port = std::fs::read_to_string(dir.join("port")).expect("kelp-brokers: reading moto's port");
    let mut command = Command::new(&installed().moto_server);
    command.args(["-H", "127.0.0.1", "-p", port.trim()]);
    command
}
