//! nats-server with JetStream, its store in the broker's directory.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use kelp_testkit::process::free_ports;

use crate::supervised::Supervised;
use crate::{installed, panic_text};

/// A running nats-server with JetStream. See the crate documentation.
#[derive(Debug)]
pub struct Nats {
    server: Supervised,
}

impl Nats {
    /// The server shared by every test of this test binary, started by the first call. When it
    /// cannot start, every call panics with the reason. Tests that stop the server use
    /// [`Nats::start`] instead.
    pub fn shared() -> &'static Nats {
        static SHARED: OnceLock<Result<Nats, String>> = OnceLock::new();
        match SHARED.get_or_init(|| std::panic::catch_unwind(Nats::start).map_err(panic_text)) {
            Ok(nats) => nats,
            Err(reason) => panic!("kelp-brokers: the shared nats-server did not start: {reason}"),
        }
    }

    /// Starts a server of its own, ready when this returns. Dropping it kills the server and
    /// removes its directory.
    pub fn start() -> Nats {
        let dir = Supervised::dir("nats");
        let [port] = free_ports();
        std::fs::write(dir.0.join("port"), port.to_string()).expect("kelp-brokers: writing nats-server's port");
        Nats { server: Supervised::start("nats-server", dir, port, command) }
    }

    /// `nats://127.0.0.1:<port>` (`NATS_URL`).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.server.port())
    }

    /// Kills the server (SIGKILL, as a crash). JetStream keeps what it acknowledged.
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Stalls the server (SIGSTOP), as a broker that hangs: its clients stay connected and get no
    /// answer until [`Nats::resume`].
    pub fn pause(&self) {
        self.server.pause();
    }

    /// Lets a server stalled by [`Nats::pause`] run again (SIGCONT).
    pub fn resume(&self) {
        self.server.resume();
    }

    /// Starts the stopped server again on the same port with the same JetStream store.
    pub fn start_again(&self) {
        self.server.start_again();
    }

    /// The end of the server's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// The server's directory (its JetStream store is `jetstream/` there).
    pub fn dir(&self) -> &Path {
        self.server.path()
    }
}

/// `nats-server -a 127.0.0.1 -p <port> -js -sd <dir>/jetstream`.
fn command(dir: &Path) -> Command {
    let port = std::fs::read_to_string(dir.join("port")).expect("kelp-brokers: reading nats-server's port");
    let mut command = Command::new(&installed().nats_server);
    command.args(["-a", "127.0.0.1", "-p", port.trim(), "-js", "-sd"]).arg(dir.join("jetstream"));
    command
}
