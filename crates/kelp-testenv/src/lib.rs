//! A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok, started on 127.0.0.1 (free ports) from the binaries
//! `scripts/k8s-bins` builds, with one fake kwok Node (pods scheduled there become Running and
//! Ready without running anything) and Kelp's CRDs (`deploy/crds/`) installed.
//!
//! Or, with [`ControlPlane::shared_node`], the same control plane with a real node instead of
//! kwok's: containerd, a kubelet, kube-proxy, CoreDNS and metrics-server whose pods run Kelp's
//! images, all in a network namespace of the test's own (see the `node` module; it needs root).
//!
//! ```no_run
//! # async fn example() {
//! use kelp_testenv::ControlPlane;
//!
//! let plane = ControlPlane::shared(); // started once per test binary
//! let namespace = plane.namespace("deploy").await; // a fresh namespace per test
//! let client = plane.client().await;
//! let status = plane.kubectl().args(["get", "nodes"]).status().unwrap();
//! assert!(status.success());
//! # drop((namespace, client));
//! # }
//! ```
//!
//! The binaries come from `KELP_K8S_BIN_DIR`, else from `scripts/k8s-bins` (which builds them
//! once; the first build takes minutes). Without them every test using this crate panics with
//! the script's output: nothing is skipped.
//!
//! Each component runs in its own process group, its output in `<log_dir>/<name>.log`. A
//! watchdog kills them all and removes the directory once the test process is gone (the shared
//! control plane is a static, never dropped); a private one ([`ControlPlane::start`]) is also
//! cleaned up when dropped.

mod cluster;
mod component;
mod controller;
mod node;
mod pki;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub use crate::controller::ControllerProcess;
pub use crate::node::{EGRESS_PROXY, NODE_IP, ON_DEMAND_IMAGES};

use crate::component::{Component, Layout};
use crate::node::{NODE_NAME, NodeComponent};
use kelp_testkit::process::{self, Proc, Watchdog};

/// The tools `scripts/k8s-bins` must provide.
const TOOLS: [&str; 5] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok"];

/// What a real node adds to [`TOOLS`].
const NODE_TOOLS: [&str; 4] = ["kubelet", "kube-proxy", "coredns", "metrics-server"];

/// One request of the audited user ([`ControlPlane::audited_kubeconfig`]), from the API server's
/// audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditedRequest {
    /// The verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    pub verb: String,
    /// The resource (`functions`, `deployments`, ...); empty for a path without one.
    pub resource: String,
    /// The subresource (`status`, ...), if any.
    pub subresource: Option<String>,
    /// The namespace, if any.
    pub namespace: Option<String>,
    /// The object's name, if the request named one.
    pub name: Option<String>,
    /// The HTTP status code of the answer.
    pub code: u16,
    /// The client's `User-Agent`.
    pub user_agent: String,
}

impl AuditedRequest {
    /// One line of the audit log (an `audit.k8s.io/v1` `Event`), `None` when it is not one.
    fn parse(line: &str) -> Option<AuditedRequest> {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        let text = |pointer: &str| event.pointer(pointer).and_then(serde_json::Value::as_str).map(str::to_owned);
        Some(AuditedRequest {
            verb: text("/verb")?,
            resource: text("/objectRef/resource").unwrap_or_default(),
            subresource: text("/objectRef/subresource"),
            namespace: text("/objectRef/namespace"),
            name: text("/objectRef/name"),
            code: event
                .pointer("/responseStatus/code")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
                .try_into()
                .ok()?,
            user_agent: text("/userAgent").unwrap_or_default(),
        })
    }

    /// `resource[/subresource] verb`, as a table names it.
    pub fn kind(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub} {}", self.resource, self.verb),
            None => format!("{} {}", self.resource, self.verb),
        }
    }
}

/// A running control plane. See the crate documentation.
#[derive(Debug)]
pub struct ControlPlane {
    layout: Layout,
    procs: Mutex<Vec<Proc>>,
    watchdog: Mutex<Watchdog>,
    startup: Duration,
}

impl ControlPlane {
    /// The control plane shared by every test of this test binary, started by the first call
    /// (the others wait for it). When it cannot start, every call panics with the reason.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| std::panic::catch_unwind(ControlPlane::start).map_err(panic_text));
        match started {
            Ok(plane) => plane,
            Err(reason) => panic!("kelp-testenv: the shared control plane did not start: {reason}"),
        }
    }

    /// The control plane with a real node shared by every test of this test binary, started
    /// by the first call; with `KELP_REAL_NODE=0`, the kwok one of [`ControlPlane::shared`]
    /// instead (for machines where a node cannot run: no root, say). A node that cannot start
    /// makes every call panic with the reason: it is never replaced by kwok silently.
    pub fn shared_node() -> &'static ControlPlane {
        if std::env::var_os("KELP_REAL_NODE").is_some_and(|v| v == "0") {
            return ControlPlane::shared();
        }
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| std::panic::catch_unwind(ControlPlane::start_node).map_err(panic_text));
        match started {
            Ok(plane) => plane,
            Err(reason) => panic!("kelp-testenv: the shared control plane with a real node did not start: {reason}"),
        }
    }

    /// Starts a private control plane (for tests that restart or break it), ready when this
    /// returns: the API server answers `/readyz`, the kwok Node is Ready and the CRDs are
    /// Established. Dropping it kills its processes and removes its directory.
    pub fn start() -> ControlPlane {
        ControlPlane::start_with(false)
    }

    /// Starts a private control plane with a real node, ready when this returns: as
    /// [`ControlPlane::start`], with the node Ready and Kelp's images (the archives of
    /// `KELP_NODE_IMAGES`, else of `scripts/images save`) in its containerd.
    pub fn start_node() -> ControlPlane {
        ControlPlane::start_with(true)
    }

    /// Imports the image archives `<name>.tar` of the node's image directory (`KELP_NODE_IMAGES`,
    /// else `scripts/images save`'s) into its containerd: those of
    /// [`ON_DEMAND_IMAGES`], which a real node does not import at its start. Nothing on
    /// kwok's node, which runs no image.
    pub fn import_node_images(&self, names: &[&str]) {
        let Some(node) = self.layout.node.as_ref() else { return };
        let began = Instant::now();
        let imported = node.import_images(&images_dir(), Some(names));
        eprintln!("kelp-testenv: imported {imported:?} in {:.1} s", began.elapsed().as_secs_f64());
    }

    /// A path under this control plane's directory (removed with it) for `name`: with a real
    /// node, a node directory for `hostPath` volumes (the node's files are the machine's).
    pub fn node_path(&self, name: &str) -> PathBuf {
        self.layout.dir.join("node").join(name)
    }

    /// With a real node, makes `127.0.0.1:port` of the machine (a server the test runs there: a
    /// broker, say) reachable from its pods, and returns the address they use,
    /// `10.88.0.1:<port>` (the node's address; connections are forwarded by the test process for
    /// its life). `None` on kwok, whose pods connect nowhere.
    pub fn forward_to_pods(&self, port: u16) -> Option<String> {
        self.layout.node.as_ref().map(|node| node::forward_machine_port(&node.netns, port))
    }

    /// With a real node, `program` as a command that runs inside the node's network namespace
    /// (`nsenter --net=...`): it can listen on the node's address [`NODE_IP`], where pods reach
    /// it, and reach the API server at the kubeconfig's address. The caller owns the process
    /// (and stops it). `None` on kwok.
    pub fn node_command(&self, program: impl Into<PathBuf>) -> Option<Command> {
        self.layout.node.as_ref().map(|node| node.netns.command(program))
    }

    /// Whether pods run code here (a real node), or only look as if (kwok).
    pub fn has_real_node(&self) -> bool {
        self.layout.node.is_some()
    }

    fn start_with(real_node: bool) -> ControlPlane {
        let began = Instant::now();
        let bin_dir = bin_dir(real_node);
        let dir = tempfile::Builder::new()
            .prefix("kelp-testenv-")
            .tempdir()
            .expect("kelp-testenv: creating a temporary directory")
            .keep();
        let watchdog = Watchdog::start(std::process::id(), &dir);
        let images = real_node.then(images_dir);
        let layout = Layout::new(dir, bin_dir, real_node);
        let mut plane = ControlPlane {
            layout,
            procs: Mutex::new(Vec::new()),
            watchdog: Mutex::new(watchdog),
            startup: Duration::ZERO,
        };
        if let Some(node) = &plane.layout.node {
            node::open_borders(&node.netns, plane.layout.apiserver_port);
        }
        plane.spawn(&[Component::Etcd, Component::ApiServer]);
        block_on(plane.wait_apiserver_ready());
        match images {
            Some(images) => {
                plane.spawn(&[Component::ControllerManager, Component::Scheduler]);
                plane.start_node_components(&images);
            }
            None => plane.spawn(&[Component::ControllerManager, Component::Scheduler, Component::Kwok]),
        }
        block_on(plane.install());
        plane.startup = began.elapsed();
        eprintln!(
            "kelp-testenv: control plane at {} ready in {:.1} s (logs: {})",
            plane.layout.server(),
            plane.startup.as_secs_f64(),
            plane.log_dir().display()
        );
        plane
    }

    /// How long [`ControlPlane::start`] took, from finding the binaries to the CRDs Established.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The admin kubeconfig (one context, `kelp-testenv`, user in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.layout.kubeconfig
    }

    /// A kubeconfig like [`ControlPlane::kubeconfig`]'s (also in `system:masters`) for another
    /// user, whose every request the API server's audit log records: a process started with it
    /// has its requests listed by [`ControlPlane::audited_requests`]. The file is
    /// `kubeconfig-audited` beside the admin's, and the log `audit.log` in [`ControlPlane::log_dir`]
    /// (for scripts).
    pub fn audited_kubeconfig(&self) -> &Path {
        &self.layout.audited_kubeconfig
    }

    /// Every request made with [`ControlPlane::audited_kubeconfig`] so far, in the order the API
    /// server answered them (its audit log; a request appears once answered, a watch once it
    /// ended).
    pub fn audited_requests(&self) -> Vec<AuditedRequest> {
        let text = std::fs::read_to_string(&self.layout.audit_log).unwrap_or_default();
        text.lines().filter_map(AuditedRequest::parse).collect()
    }

    /// Where each component's output is: `etcd.log`, `kube-apiserver.log`,
    /// `kube-controller-manager.log`, `kube-scheduler.log`, `kwok.log`.
    pub fn log_dir(&self) -> &Path {
        &self.layout.log_dir
    }

    /// A client for the admin, made for the calling runtime.
    pub async fn client(&self) -> kube::Client {
        cluster::client(self.kubeconfig()).await
    }

    /// The real kubectl with `--kubeconfig` set to this control plane's.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(kelp_testkit::kubectl_bin());
        command.arg("--kubeconfig").arg(self.kubeconfig());
        command
    }

    /// Creates a namespace named `<prefix>-<n>` (`prefix`: lower-case letters, digits and
    /// dashes), unique in this process, and waits until its `default` ServiceAccount exists (so
    /// pods can be created in it at once). Returns its name.
    pub async fn namespace(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        cluster::create_namespace(&self.client().await, &name).await;
        name
    }

    /// Kills the API server (SIGKILL, as a crash) and starts it again on the same port with the
    /// same etcd, then waits until it is ready: objects survive, clients reconnect. Blocks the
    /// calling thread for a few seconds; from an async test whose tasks must run meanwhile, call
    /// it through `tokio::task::spawn_blocking`.
    pub fn restart_apiserver(&self) {
        {
            let mut procs = self.procs();
            let apiserver = procs
                .iter_mut()
                .find(|p| p.name == Component::ApiServer.name())
                .expect("kelp-testenv: the API server is one of the processes");
            apiserver.kill();
            *apiserver =
                Proc::spawn(Component::ApiServer.name(), self.layout.command(Component::ApiServer), self.log_dir());
            self.watchdog().record(procs.iter().map(Proc::id));
        }
        block_on(self.wait_apiserver_ready());
    }

    fn spawn(&self, components: &[Component]) {
        for component in components {
            self.spawn_one(component.name(), self.layout.command(*component));
        }
    }

    /// Starts `command` as the component `name` and has the watchdog know its group.
    fn spawn_one(&self, name: &'static str, command: Command) {
        let mut procs = self.procs();
        procs.push(Proc::spawn(name, command, self.log_dir()));
        self.watchdog().record(procs.iter().map(Proc::id));
    }

    /// Starts containerd, imports the images of `images`, then starts CoreDNS, kube-proxy and
    /// the kubelet.
    fn start_node_components(&self, images: &Path) {
        let node = self.layout.node.as_ref().expect("a real node's layout");
        for component in NodeComponent::ALL {
            self.spawn_one(component.name(), node.command(component, &self.layout.bin_dir, &self.layout.kubeconfig));
            if component == NodeComponent::Containerd {
                let socket = node.containerd_socket();
                let deadline = Instant::now() + Duration::from_secs(30);
                while !socket.exists() {
                    self.check_alive();
                    assert!(Instant::now() < deadline, "kelp-testenv: containerd made no socket in 30 s");
                    std::thread::sleep(Duration::from_millis(50));
                }
                let began = Instant::now();
                let names = node.import_images(images, None);
                eprintln!("kelp-testenv: imported {} images in {:.1} s", names.len(), began.elapsed().as_secs_f64());
            }
        }
    }

    fn procs(&self) -> MutexGuard<'_, Vec<Proc>> {
        self.procs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn watchdog(&self) -> MutexGuard<'_, Watchdog> {
        self.watchdog.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Panics, with the end of its log, when a component has exited.
    fn check_alive(&self) {
        for proc in self.procs().iter_mut() {
            if let Some(status) = proc.exited() {
                panic!("kelp-testenv: {} exited ({status})\n{}", proc.name, proc.log_tail());
            }
        }
    }

    /// The end of `component`'s log, for panic messages.
    fn log_tail(&self, component: Component) -> String {
        process::log_tail(&self.log_dir().join(format!("{}.log", component.name())), 40)
    }

    /// Polls `probe` every 100 ms until it gives `Ok(())`, checking that every component is still
    /// running; after `timeout`, panics with the last answer and `blame`'s log.
    async fn wait_until<F, Fut>(&self, what: &str, blame: Component, timeout: Duration, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive();
            let last = match probe().await {
                Ok(()) => return,
                Err(last) => last,
            };
            if Instant::now() > deadline {
                panic!(
                    "kelp-testenv: {what} not within {} s (last: {last})\n{}",
                    timeout.as_secs(),
                    self.log_tail(blame)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_apiserver_ready(&self) {
        let client = self.client().await;
        let probe = || cluster::readyz(&client);
        self.wait_until("kube-apiserver /readyz", Component::ApiServer, Duration::from_secs(120), probe).await;
    }

    /// Creates the kwok Node (the real one registers itself) and applies the CRDs, then waits
    /// for both.
    async fn install(&self) {
        let client = self.client().await;
        let (name, blame) = match self.layout.node {
            Some(_) => (NODE_NAME, Component::ApiServer),
            None => {
                cluster::create_node(&client).await;
                (cluster::KWOK_NODE, Component::Kwok)
            }
        };
        let crds = cluster::apply_crds(&client).await;
        let node = || cluster::node_ready(&client, name);
        self.wait_until(&format!("the Node {name} Ready"), blame, Duration::from_secs(120), node).await;
        let established = || cluster::crds_established(&client, &crds);
        self.wait_until("the CRDs Established", Component::ApiServer, Duration::from_secs(60), established).await;
        if self.layout.node.is_some() {
            cluster::register_metrics_api(&client, node::NODE_IP, node::METRICS_SERVER_PORT).await;
            let available = || cluster::metrics_api_available(&client);
            self.wait_until("the metrics API Available", Component::ApiServer, Duration::from_secs(120), available)
                .await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.watchdog().stop();
        for proc in self.procs().iter_mut() {
            proc.kill();
        }
        let teardown = self.layout.dir.join("teardown");
        if teardown.exists() {
            let _ = Command::new(&teardown).status();
        }
        let _ = std::fs::remove_dir_all(&self.layout.dir);
    }
}

/// `KELP_K8S_BIN_DIR`, else what `scripts/k8s-bins` builds; checked to hold every tool (a real
/// node's too, with `real_node`) and kwok's stages.
fn bin_dir(real_node: bool) -> PathBuf {
    let node_tools: &[&str] = if real_node { &NODE_TOOLS } else { &[] };
    let tools: Vec<&str> = TOOLS.iter().chain(node_tools).copied().collect();
    let dir = match std::env::var_os("KELP_K8S_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => kelp_testkit::k8s_bin_dir(&tools),
    };
    let mut wanted: Vec<String> = tools.iter().map(|t| (*t).to_owned()).collect();
    wanted.push(component::KWOK_STAGES.to_owned());
    let missing: Vec<&String> = wanted.iter().filter(|f| !dir.join(f).is_file()).collect();
    assert!(
        missing.is_empty(),
        "kelp-testenv: {} lacks {missing:?} (KELP_K8S_BIN_DIR, or run scripts/k8s-bins {})",
        dir.display(),
        tools.join(" ")
    );
    dir
}

/// The directory of image archives a real node imports: `KELP_NODE_IMAGES`, else what
/// `scripts/images save` writes (building the images first when needed).
fn images_dir() -> PathBuf {
    match std::env::var_os("KELP_NODE_IMAGES") {
        Some(dir) => PathBuf::from(dir),
        None => kelp_testkit::images_dir(),
    }
}

/// Runs `future` to completion on a runtime of its own, in a thread of its own: the start-up
/// code is synchronous and may be called from inside a test's runtime. Panics pass through.
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("kelp-testenv: building a tokio runtime");
            runtime.block_on(future)
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
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
