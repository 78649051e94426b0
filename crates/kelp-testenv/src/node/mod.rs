//! A real node beside the control plane: containerd and runc, the CNI `bridge` plugin, a
//! kubelet, kube-proxy, CoreDNS and metrics-server, whose pods run code. Everything, the control plane
//! included, runs in a network namespace of the test's own ([`netns`]); the machine's own
//! network, iptables and routes are left alone, and its cgroups are only added to (one
//! `kelp-<namespace>` directory per hierarchy, removed at the end). The images the pods run are
//! imported into containerd from archives (`scripts/images save`), never pulled.
//!
//! Facts this relies on, checked on the project's machine (see ARCHITECTURE.md): the kubelet of
//! Kubernetes 1.37 still runs on cgroup v1 when its configuration says `failCgroupV1: false`;
//! containerd must not lower a container's `oom_score_adj` (the machine withholds
//! `CAP_SYS_RESOURCE`), hence `restrict_oom_score_adj`.

mod config;
mod forward;
mod netns;
mod stale;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use self::netns::NODE_IP;
pub(crate) use self::netns::Netns;

/// The Node's name.
pub(crate) const NODE_NAME: &str = "kelp-node";

/// Where pods reach the package registries: an HTTP `CONNECT` proxy run by the test process (a
/// pod's `https_proxy`).
pub const EGRESS_PROXY: &str = "http://10.88.0.1:3128";

/// Where metrics-server serves, on [`NODE_IP`] (the `v1beta1.metrics.k8s.io` APIService's
/// endpoint).
pub(crate) const METRICS_SERVER_PORT: u16 = 4443;

/// The images a node imports only when a test asks for them
/// ([`ControlPlane::import_node_images`](crate::ControlPlane::import_node_images)): the compiled
/// languages' runtimes, whose toolchains make them the largest, which few tests use.
pub const ON_DEMAND_IMAGES: &[&str] = &["runtime-go", "runtime-java", "runtime-rust"];
/// The pods' sandbox image (`images/pause`), imported with the others.
const PAUSE_IMAGE: &str = concat!("docker.io/kelp/pause:", env!("CARGO_PKG_VERSION"));

/// The node's directories, inside the control plane's.
#[derive(Debug)]
pub(crate) struct NodeLayout {
    /// The network namespace everything runs in.
    pub(crate) netns: Netns,
    /// `<plane>/node`: containerd's, the kubelet's and CoreDNS's files.
    dir: PathBuf,
    /// The cgroup (relative to each hierarchy's root) holding every pod.
    cgroup_root: String,
}

impl NodeLayout {
    /// Creates the namespace and the node's directory and cgroups, and writes the components'
    /// configuration and the teardown script (`<plane>/teardown`, which the watchdog also runs).
    pub(crate) fn create(plane_dir: &Path, kubeconfig: &Path) -> NodeLayout {
        stale::sweep(Path::new("/run/netns"), &std::env::temp_dir());
        let name = format!(
            "kelp-{}-{}",
            std::process::id(),
            plane_dir.file_name().map_or("x".into(), |n| n.to_string_lossy())
        );
        let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        let dir = plane_dir.join("node");
        let layout = NodeLayout { netns: Netns::create(&name), dir, cgroup_root: name };
        config::write(&layout.dir, &layout.cgroup_root, kubeconfig, &cni_bin_dir()).unwrap_or_else(|e| {
            panic!("kelp-testenv: writing the node's configuration in {}: {e}", layout.dir.display())
        });
        config::write_teardown(plane_dir, &layout.netns.name, &layout.cgroup_root)
            .unwrap_or_else(|e| panic!("kelp-testenv: writing {}/teardown: {e}", plane_dir.display()));
        for hierarchy in cgroup_hierarchies() {
            let _ = std::fs::create_dir(hierarchy.join(&layout.cgroup_root));
        }
        layout
    }

    /// containerd's socket.
    pub(crate) fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The command line of a node component, inside the namespace.
    pub(crate) fn command(&self, component: NodeComponent, bin_dir: &Path, kubeconfig: &Path) -> Command {
        let path = |p: &Path| p.display().to_string();
        let mut command = match component {
            NodeComponent::Containerd => self.netns.command("containerd"),
            other => self.netns.command(bin_dir.join(other.name())),
        };
        match component {
            NodeComponent::Containerd => command.arg(format!("--config={}", path(&self.dir.join("containerd.toml")))),
            NodeComponent::Kubelet => command.args([
                format!("--config={}", path(&self.dir.join("kubelet.yaml"))),
                format!("--kubeconfig={}", path(kubeconfig)),
                format!("--root-dir={}", path(&self.dir.join("kubelet"))),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-ip={NODE_IP}"),
            ]),
            NodeComponent::KubeProxy => command.args([
                format!("--kubeconfig={}", path(kubeconfig)),
                format!("--hostname-override={NODE_NAME}"),
                "--proxy-mode=iptables".to_owned(),
                // Replies from a Service's pod to a client pod on the same bridge would bypass
                // the node's conntrack without br_netfilter: masquerade makes them come back.
                "--masquerade-all".to_owned(),
                format!("--cluster-cidr={}", netns::POD_CIDR),
                // 0: leave the machine-wide conntrack settings as they are.
                "--conntrack-max-per-core=0".to_owned(),
                "--conntrack-tcp-timeout-established=0".to_owned(),
                "--conntrack-tcp-timeout-close-wait=0".to_owned(),
                "--healthz-bind-address=127.0.0.1:10256".to_owned(),
                "--metrics-bind-address=127.0.0.1:10249".to_owned(),
                "--nodeport-addresses=primary".to_owned(),
            ]),
            NodeComponent::CoreDns => command.args(["-conf".to_owned(), path(&self.dir.join("Corefile"))]),
            // The admin's kubeconfig for everything (reading Nodes and the front proxy's
            // authority, delegated authentication and authorization); the kubelet's serving
            // certificate is self-signed, hence --kubelet-insecure-tls.
            NodeComponent::MetricsServer => command.args([
                format!("--kubeconfig={}", path(kubeconfig)),
                format!("--authentication-kubeconfig={}", path(kubeconfig)),
                format!("--authorization-kubeconfig={}", path(kubeconfig)),
                format!("--bind-address={NODE_IP}"),
                format!("--secure-port={METRICS_SERVER_PORT}"),
                format!("--cert-dir={}", path(&self.dir.join("metrics-server"))),
                "--kubelet-insecure-tls".to_owned(),
                "--kubelet-preferred-address-types=InternalIP".to_owned(),
                "--metric-resolution=15s".to_owned(),
            ]),
        };
        command
    }

    /// Imports the `*.tar` image archives of `dir` into containerd (`ctr images import`): every
    /// one but those of [`ON_DEMAND_IMAGES`], or with `only`, those named `<name>.tar`.
    pub(crate) fn import_images(&self, dir: &Path, only: Option<&[&str]>) -> Vec<String> {
        let wanted = |p: &Path| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            match only {
                Some(names) => names.contains(&stem),
                None => !ON_DEMAND_IMAGES.contains(&stem),
            }
        };
        let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("kelp-testenv: the image archives in {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "tar") && wanted(p))
            .collect();
        archives.sort();
        assert!(
            !archives.is_empty() && only.is_none_or(|names| names.len() == archives.len()),
            "kelp-testenv: not every image archive (*.tar{}) is in {} (scripts/images save)",
            only.map(|n| format!(": {n:?}")).unwrap_or_default(),
            dir.display()
        );
        let mut names = Vec::new();
        for archive in &archives {
            let output = Command::new("ctr")
                .arg(format!("--address={}", self.containerd_socket().display()))
                .args(["--namespace=k8s.io", "images", "import", "--no-unpack=false"])
                .arg(archive)
                .output()
                .unwrap_or_else(|e| panic!("kelp-testenv: running ctr (containerd's client): {e}"));
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "kelp-testenv: ctr images import {} failed: {text}{}",
                archive.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            names.extend(
                text.lines()
                    .filter_map(|l| l.strip_prefix("unpacking "))
                    .map(|l| l.split(' ').next().unwrap_or(l).to_owned()),
            );
        }
        assert!(
            only.is_some() || names.iter().any(|n| n == PAUSE_IMAGE),
            "kelp-testenv: {} has no {PAUSE_IMAGE} (the pods' sandbox image; scripts/images builds it), only {names:?}",
            dir.display()
        );
        names
    }
}

/// The node's processes, in the order they start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeComponent {
    /// The container runtime (CRI), with runc.
    Containerd,
    /// Runs the pods bound to the Node.
    Kubelet,
    /// Services' ClusterIPs, as iptables rules in the namespace.
    KubeProxy,
    /// Cluster DNS on the node's address.
    CoreDns,
    /// The resource metrics API (`metrics.k8s.io`, for HorizontalPodAutoscalers and
    /// `kubectl top`), from the kubelet's `/metrics/resource`.
    MetricsServer,
}

impl NodeComponent {
    /// Every one, in start order.
    pub(crate) const ALL: [NodeComponent; 5] = [
        NodeComponent::Containerd,
        NodeComponent::CoreDns,
        NodeComponent::KubeProxy,
        NodeComponent::Kubelet,
        NodeComponent::MetricsServer,
    ];

    /// The binary's name, also the log's.
    pub(crate) fn name(self) -> &'static str {
        match self {
            NodeComponent::Containerd => "containerd",
            NodeComponent::Kubelet => "kubelet",
            NodeComponent::KubeProxy => "kube-proxy",
            NodeComponent::CoreDns => "coredns",
            NodeComponent::MetricsServer => "metrics-server",
        }
    }
}

/// Where the CNI plugins are: `KELP_CNI_BIN_DIR`, else Debian's `containernetworking-plugins`.
fn cni_bin_dir() -> PathBuf {
    std::env::var_os("KELP_CNI_BIN_DIR").map_or_else(|| PathBuf::from("/usr/lib/cni"), PathBuf::from)
}

/// The mounted cgroup hierarchies (v1 controllers, and the unified one beside them).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|entries| {
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("cgroup.procs").exists()).collect()
        })
        .unwrap_or_default()
}

/// Makes `127.0.0.1:port` of the machine reachable inside `netns` at `10.88.0.1:port`; returns
/// that address.
pub(crate) fn forward_machine_port(netns: &Netns, port: u16) -> String {
    let address = format!("{NODE_IP}:{port}");
    forward::machine_port(netns, &address, port);
    address
}

/// Starts the border crossings of the namespace: the API server's port on the machine's
/// loopback, and the pods' egress proxy.
pub(crate) fn open_borders(netns: &Netns, api_port: u16) {
    forward::api_port(netns.try_clone(), api_port);
    let address = EGRESS_PROXY.strip_prefix("http://").expect("EGRESS_PROXY is an http:// URL");
    forward::egress_proxy(netns, address);
}
