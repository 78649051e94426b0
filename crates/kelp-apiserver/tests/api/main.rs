//! The API server driven by real clients: kube-rs (`kube_rs`), the real kubectl (`kubectl`) and
//! raw HTTP requests for the protocol details (`http`).

mod http;
mod kube_rs;
mod kubectl;
mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kelp_apiserver::ApiServerConfig;
use kelp_store::Store;
use tokio::sync::oneshot;

/// An API server on 127.0.0.1:<free port> over a store in a temporary directory.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The token it requires, if any.
    pub token: Option<String>,
    /// Its store.
    pub store: Store,
    /// Its data directory (and where the kubeconfig is written).
    pub dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl Server {
    /// Starts a server, requiring `token` when given.
    pub async fn start(token: Option<&str>) -> Self {
        Self::start_with(token, |config| config).await
    }

    /// Starts a server, requiring `token` when given, with what `configure` adds.
    pub async fn start_with(token: Option<&str>, configure: impl FnOnce(ApiServerConfig) -> ApiServerConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = kelp_apiserver::open_store(dir.path().join("kelp.redb")).await.unwrap();
        let config = configure(ApiServerConfig::new(store.clone()).with_token(token.map(str::to_owned)));
        let app = kelp_apiserver::router(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self { addr, token: token.map(str::to_owned), store, dir, _stop: stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (context `kelp-local`, namespace `default`).
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        let user = match &self.token {
            Some(token) => format!("    token: {token}\n"),
            None => "    {}\n".to_owned(),
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kelp-local\n  cluster:\n    server: {url}\n\
             contexts:\n- name: kelp-local\n  context:\n    cluster: kelp-local\n    user: kelp-local\n    namespace: default\n\
             current-context: kelp-local\nusers:\n- name: kelp-local\n  user:\n{user}",
            url = self.url()
        );
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// A kube-rs client configured from [`Server::kubeconfig`].
    pub async fn client(&self) -> kube::Client {
        let text = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

/// `crates/kelp-api/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kelp-api/tests/fixtures").join(name)
}

/// A fixture parsed as `T`.
pub fn load<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_saphyr::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}
