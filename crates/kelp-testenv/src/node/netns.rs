//! The network namespace a real node lives in: made by the tests (`ip netns add`), holding a
//! bridge with the node's address, entered by every component at start (`nsenter --net`: only
//! the network; files and mounts stay the machine's), and by threads of the test process that
//! open sockets there. Nothing is added to the machine's own network namespace.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use nix::sched::CloneFlags;

/// The bridge the pods' veths join; it holds [`NODE_IP`].
pub(crate) const BRIDGE: &str = "kelp0";

/// The node's address: the API server, kubelet, CoreDNS and the egress proxy listen there, and
/// it is the pods' gateway.
pub const NODE_IP: &str = "10.88.0.1";

/// The pods' network (pod addresses from `10.88.1.2` on).
pub(crate) const POD_CIDR: &str = "10.88.0.0/16";

/// A named network namespace, deleted by the node's teardown.
#[derive(Debug)]
pub(crate) struct Netns {
    /// Its name, under `/run/netns`.
    pub(crate) name: String,
    file: File,
}

impl Netns {
    /// Creates the namespace `name` with loopback and [`BRIDGE`] up, and IPv4 forwarding on
    /// (routing between the pods and the node's address happens inside it).
    pub(crate) fn create(name: &str) -> Netns {
        ip(&["netns", "add", name]);
        let netns = Netns { name: name.to_owned(), file: open(name) };
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", BRIDGE, "type", "bridge"],
            &["addr", "add", &format!("{NODE_IP}/16"), "dev", BRIDGE],
            &["link", "set", BRIDGE, "up"],
        ] {
            let mut all = vec!["-n", name];
            all.extend_from_slice(args);
            ip(&all);
        }
        netns
            .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
            .unwrap_or_else(|e| panic!("kelp-testenv: enabling IPv4 forwarding in {name}: {e}"));
        netns
    }

    /// `program` started inside the namespace (`nsenter --net=<namespace> -- program`).
    pub(crate) fn command(&self, program: impl Into<PathBuf>) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net=/run/netns/{}", self.name)).arg("--").arg(program.into());
        command
    }

    /// Runs `f` on a thread of its own that has entered the namespace: sockets `f` opens are
    /// the namespace's, and stay so wherever they are used afterwards.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(&self.file, CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("kelp-testenv: entering the network namespace {}: {e}", self.name));
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A second handle on the namespace, for threads that outlive this borrow.
    pub(crate) fn try_clone(&self) -> Netns {
        Netns { name: self.name.clone(), file: open(&self.name) }
    }
}

fn open(name: &str) -> File {
    let path = format!("/run/netns/{name}");
    File::open(&path).unwrap_or_else(|e| panic!("kelp-testenv: opening {path}: {e}"))
}

/// Runs `ip` with `args`; panics with its output when it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("kelp-testenv: running ip {args:?}: {e} (iproute2 is needed for a real node)"));
    assert!(
        output.status.success(),
        "kelp-testenv: ip {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
