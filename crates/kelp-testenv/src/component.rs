//! The control plane's components and their command lines (the flag set of
//! `engineering-notes.md`, "Part B, verified"), over one directory: certificates, kubeconfig,
//! etcd's data, logs, and with a real node its files too.

use std::path::PathBuf;
use std::process::Command;

use crate::node::{NODE_IP, NodeLayout};
use crate::pki::{self, PkiFiles};
use kelp_testkit::process::free_ports;

/// kwok's stage file, beside the binaries (`scripts/k8s-bins kwok` writes it).
pub(crate) const KWOK_STAGES: &str = "kwok-stages.yaml";

/// The Service ClusterIP range: a /16, so that thousands of Services fit.
const SERVICE_CIDR: &str = "10.96.0.0/16";

/// The range kwok gives pod IPs from (outside the Service range).
const POD_CIDR: &str = "10.0.0.0/16";

/// The API server's audit policy: every request of [`pki::AUDITED_USER`], once, when answered
/// (metadata only: verb, object, user agent, status code); nothing of anyone else.
fn audit_policy_text() -> String {
    format!(
        "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
  users: [{}]
- level: None
",
        pki::AUDITED_USER
    )
}

/// One process of the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Component {
    /// The store.
    Etcd,
    /// The API.
    ApiServer,
    /// Deployments → ReplicaSets → Pods, garbage collection, ServiceAccounts, ...
    ControllerManager,
    /// Binds pods to the Node.
    Scheduler,
    /// Plays the kubelet of the fake Node: pods become Running and Ready.
    Kwok,
}

impl Component {
    /// The binary's name, also the log's.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Kwok => "kwok",
        }
    }
}

/// The files and ports of one control plane.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The temporary directory holding everything below.
    pub(crate) dir: PathBuf,
    /// Where the binaries are.
    pub(crate) bin_dir: PathBuf,
    /// The components' logs.
    pub(crate) log_dir: PathBuf,
    /// The admin kubeconfig.
    pub(crate) kubeconfig: PathBuf,
    /// The kubeconfig of the audited user, whose every request the audit log records.
    pub(crate) audited_kubeconfig: PathBuf,
    /// The API server's audit log (JSON lines).
    pub(crate) audit_log: PathBuf,
    pki: PkiFiles,
    etcd_port: u16,
    etcd_peer_port: u16,
    pub(crate) apiserver_port: u16,
    /// The real node, when there is one: then every component runs in its network namespace.
    pub(crate) node: Option<NodeLayout>,
}

impl Layout {
    /// Picks free ports, and writes the certificates and the kubeconfig into `dir`; with
    /// `real_node`, also creates the node's namespace and writes its files.
    pub(crate) fn new(dir: PathBuf, bin_dir: PathBuf, real_node: bool) -> Layout {
        let log_dir = dir.join("logs");
        std::fs::create_dir_all(&log_dir).unwrap_or_else(|e| panic!("kelp-testenv: {}: {e}", log_dir.display()));
        let (pki, admin, audited) =
            pki::write(&dir.join("pki")).unwrap_or_else(|e| panic!("kelp-testenv: certificates: {e}"));
        let [etcd_port, etcd_peer_port, apiserver_port] = free_ports();
        let kubeconfig = dir.join("kubeconfig");
        let audited_kubeconfig = dir.join("kubeconfig-audited");
        let audit_log = log_dir.join("audit.log");
        let node = real_node.then(|| NodeLayout::create(&dir, &kubeconfig));
        let layout = Layout {
            dir,
            bin_dir,
            log_dir,
            kubeconfig,
            audited_kubeconfig,
            audit_log,
            pki,
            etcd_port,
            etcd_peer_port,
            apiserver_port,
            node,
        };
        let write = |path: &PathBuf, text: String| {
            std::fs::write(path, text).unwrap_or_else(|e| panic!("kelp-testenv: {}: {e}", path.display()));
        };
        write(&layout.kubeconfig, pki::kubeconfig(&layout.server(), &admin));
        write(&layout.audited_kubeconfig, pki::kubeconfig(&layout.server(), &audited));
        write(&layout.audit_policy(), audit_policy_text());
        layout
    }

    /// The API server's URL.
    pub(crate) fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// Where [`audit_policy_text`] is written.
    fn audit_policy(&self) -> PathBuf {
        self.dir.join("audit-policy.yaml")
    }

    /// The command line of `component`.
    pub(crate) fn command(&self, component: Component) -> Command {
        let program = self.bin_dir.join(component.name());
        let mut command = match &self.node {
            Some(node) => node.netns.command(program),
            None => Command::new(program),
        };
        // With a real node the API server listens on the namespace's every address, and
        // advertises the node's, which the `kubernetes` Service's endpoints then carry.
        let (bind, advertise, reconciler) = match self.node {
            Some(_) => ("0.0.0.0", NODE_IP, "lease"),
            None => ("127.0.0.1", "127.0.0.1", "none"),
        };
        let path = |p: &PathBuf| p.display().to_string();
        let kubeconfig = format!("--kubeconfig={}", path(&self.kubeconfig));
        let etcd = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer = format!("http://127.0.0.1:{}", self.etcd_peer_port);
        match component {
            Component::Etcd => command.args([
                "--name=kelp-testenv".to_owned(),
                format!("--data-dir={}", path(&self.dir.join("etcd"))),
                format!("--listen-client-urls={etcd}"),
                format!("--advertise-client-urls={etcd}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster=kelp-testenv={peer}"),
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ]),
            Component::ApiServer => command.args([
                format!("--etcd-servers={etcd}"),
                format!("--cert-dir={}", path(&self.dir.join("pki"))),
                format!("--tls-cert-file={}", path(&self.pki.serving_cert)),
                format!("--tls-private-key-file={}", path(&self.pki.serving_key)),
                format!("--client-ca-file={}", path(&self.pki.ca_cert)),
                format!("--secure-port={}", self.apiserver_port),
                format!("--bind-address={bind}"),
                format!("--advertise-address={advertise}"),
                format!("--endpoint-reconciler-type={reconciler}"),
                // The Node's name resolves nowhere: logs and the proxy go to its InternalIP.
                "--kubelet-preferred-address-types=InternalIP".to_owned(),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                "--allow-privileged=true".to_owned(),
                "--authorization-mode=RBAC".to_owned(),
                format!("--service-account-issuer={}", self.server()),
                format!("--service-account-key-file={}", path(&self.pki.sa_pub)),
                format!("--service-account-signing-key-file={}", path(&self.pki.sa_key)),
                // Aggregation (metrics-server on a real node): the API server proxies to
                // aggregated API servers with the front proxy's client certificate, straight
                // to their endpoints' addresses (no ClusterIP routing needed).
                format!("--requestheader-client-ca-file={}", path(&self.pki.front_proxy_ca)),
                format!("--proxy-client-cert-file={}", path(&self.pki.proxy_client_cert)),
                format!("--proxy-client-key-file={}", path(&self.pki.proxy_client_key)),
                format!("--requestheader-allowed-names={}", pki::FRONT_PROXY_CLIENT),
                "--requestheader-username-headers=X-Remote-User".to_owned(),
                "--requestheader-group-headers=X-Remote-Group".to_owned(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_owned(),
                "--enable-aggregator-routing=true".to_owned(),
                format!("--audit-policy-file={}", path(&self.audit_policy())),
                format!("--audit-log-path={}", path(&self.audit_log)),
            ]),
            Component::ControllerManager => command.args([
                kubeconfig,
                "--leader-elect=false".to_owned(),
                "--controllers=*,-nodeipam".to_owned(),
                "--use-service-account-credentials=false".to_owned(),
                format!("--root-ca-file={}", path(&self.pki.ca_cert)),
                format!("--service-account-private-key-file={}", path(&self.pki.sa_key)),
                "--kube-api-qps=500".to_owned(),
                "--kube-api-burst=1000".to_owned(),
                "--bind-address=127.0.0.1".to_owned(),
                "--secure-port=0".to_owned(),
            ]),
            Component::Scheduler => command.args([
                kubeconfig,
                "--leader-elect=false".to_owned(),
                "--bind-address=127.0.0.1".to_owned(),
                "--secure-port=0".to_owned(),
            ]),
            Component::Kwok => command.args([
                kubeconfig,
                format!("--config={}", path(&self.bin_dir.join(KWOK_STAGES))),
                "--manage-all-nodes=false".to_owned(),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".to_owned(),
                "--manage-nodes-with-label-selector=".to_owned(),
                "--manage-single-node=".to_owned(),
                format!("--cidr={POD_CIDR}"),
                "--node-ip=10.0.0.1".to_owned(),
                "--node-lease-duration-seconds=40".to_owned(),
            ]),
        };
        command
    }
}
