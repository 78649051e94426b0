//! Kafka 4.1.1 in KRaft mode: one JVM that is both broker and controller, formatted with a
//! random cluster id, replication factors 1, no initial rebalance delay.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use kelp_testkit::process::free_ports;

use crate::supervised::Supervised;
use crate::{installed, panic_text};

/// A running Kafka broker. See the crate documentation.
#[derive(Debug)]
pub struct Kafka {
    broker: Supervised,
    /// The second listener of [`Kafka::start_forwarded`]: its port and advertised address.
    forwarded: Option<(u16, String)>,
}

impl Kafka {
    /// The broker shared by every test of this test binary, started by the first call (the
    /// others wait for it). When it cannot start, every call panics with the reason. Tests that
    /// stop the broker use [`Kafka::start`] instead.
    pub fn shared() -> &'static Kafka {
        static SHARED: OnceLock<Result<Kafka, String>> = OnceLock::new();
        match SHARED.get_or_init(|| std::panic::catch_unwind(Kafka::start).map_err(panic_text)) {
            Ok(kafka) => kafka,
            Err(reason) => panic!("kelp-brokers: the shared Kafka did not start: {reason}"),
        }
    }

    /// Formats a new cluster in a temporary directory and starts its broker, ready (accepting
    /// connections) when this returns. Dropping it kills the broker and removes the directory.
    pub fn start() -> Kafka {
        Kafka::start_with(None)
    }

    /// Like [`Kafka::start`], with a second listener on `127.0.0.1:<forwarded port>` that
    /// advertises `advertise(<forwarded port>)` (`"10.88.0.1:<port>"`, say): for clients that
    /// reach the broker through a forward of that port (the pods of `kelp-testenv`'s real node)
    /// and must then be sent back to the forward, not to the machine's loopback.
    pub fn start_forwarded(advertise: impl FnOnce(u16) -> String) -> Kafka {
        Kafka::start_with(Some(Box::new(advertise)))
    }

    fn start_with(advertise: Option<Box<dyn FnOnce(u16) -> String + '_>>) -> Kafka {
        let (dir, watchdog) = Supervised::dir("kafka");
        let [port, controller_port, forwarded_port] = free_ports();
        let forwarded = advertise.map(|advertise| (forwarded_port, advertise(forwarded_port)));
        let properties = server_properties(&dir, port, controller_port, forwarded.as_ref());
        std::fs::write(dir.join("server.properties"), properties)
            .and_then(|()| std::fs::write(dir.join("log4j2.properties"), LOG4J2))
            .unwrap_or_else(|e| panic!("kelp-brokers: writing Kafka's configuration into {}: {e}", dir.display()));
        format(&dir);
        Kafka { broker: Supervised::start("kafka", (dir, watchdog), port, command), forwarded }
    }

    /// The second listener's port and advertised address, for a broker started with
    /// [`Kafka::start_forwarded`] (the port is the one to forward; the address is the bootstrap
    /// servers of the clients beyond the forward).
    pub fn forwarded(&self) -> Option<(u16, &str)> {
        self.forwarded.as_ref().map(|(port, address)| (*port, address.as_str()))
    }

    /// `127.0.0.1:<port>`: the bootstrap servers (`KAFKA_BROKERS`).
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.broker.port())
    }

    /// Kills the broker (SIGKILL, as a crash). What it acknowledged is on disk.
    pub fn stop(&self) {
        self.broker.stop();
    }

    /// Starts the stopped broker again on the same port with the same data, and waits until it
    /// accepts connections.
    pub fn start_again(&self) {
        self.broker.start_again();
    }

    /// The end of the broker's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        self.broker.log_tail()
    }
}

/// Logs at INFO to stdout (the broker's log file), without the per-request noise.
const LOG4J2: &str = "status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = warn
";

/// A combined broker and controller on loopback, sized for tests: one partition per topic and
/// for the offsets topic, replication factor 1 everywhere, topics created on first use; with
/// `forwarded`, a second listener (`FORWARDED`) on that port advertising that address.
fn server_properties(dir: &Path, port: u16, controller_port: u16, forwarded: Option<&(u16, String)>) -> String {
    let data = dir.join("data");
    let (listener, advertised, protocol) = match forwarded {
        Some((port, address)) => {
            (format!(",FORWARDED://127.0.0.1:{port}"), format!(",FORWARDED://{address}"), ",FORWARDED:PLAINTEXT")
        }
        None => (String::new(), String::new(), ""),
    };
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{advertised}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT{protocol}
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
",
        data = data.display()
    )
}

/// The JVM options of the broker unless `KELP_KAFKA_JVM_OPTS` (space-separated) replaces them:
/// a small heap and a fast-starting JIT, right for tests (a benchmark wants the full JIT).
const JVM_OPTS: &str = "-Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1";

/// `java` with [`JVM_OPTS`], the jars on the class path.
fn java(dir: &Path) -> Command {
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| Path::new(&home).join("bin/java"))
        .filter(|java| java.is_file())
        .map_or_else(|| "java".into(), std::path::PathBuf::into_os_string);
    let mut command = Command::new(java);
    command
        .current_dir(dir)
        .args(std::env::var("KELP_KAFKA_JVM_OPTS").as_deref().unwrap_or(JVM_OPTS).split_whitespace())
        .arg("-Djava.awt.headless=true")
        .arg(format!("-Dlog4j2.configurationFile={}", dir.join("log4j2.properties").display()))
        .arg("-cp")
        .arg(installed().kafka_lib.join("*"));
    command
}

/// The broker's command line.
fn command(dir: &Path) -> Command {
    let mut command = java(dir);
    command.arg("kafka.Kafka").arg(dir.join("server.properties"));
    command
}

/// `kafka-storage.sh format --standalone` with a random cluster id (16 random bytes in
/// base64url without padding, Kafka's `Uuid` text form).
fn format(dir: &Path) {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("kelp-brokers: the operating system's random source");
    let cluster_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
    let out = java(dir)
        .args(["kafka.tools.StorageTool", "format", "--standalone", &format!("--cluster-id={cluster_id}"), "-c"])
        .arg(dir.join("server.properties"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("kelp-brokers: cannot run java (install Java 17+, or set JAVA_HOME): {e}"));
    assert!(
        out.status.success(),
        "kelp-brokers: formatting Kafka's storage failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
