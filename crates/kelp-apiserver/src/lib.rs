//! The Kubernetes REST API of `kelp up`: Kelp's `kubeless.io/v1beta1` kinds, plus the core
//! `v1` namespaces, secrets and configmaps, served from a [`kelp_store::Store`] at the URLs,
//! in the JSON and with the semantics of a kube-apiserver that has Kelp's CRDs installed; and
//! read-only pods and services, pod logs and the service proxy from a [`Workloads`]
//! implementation (the supervisor's).
//!
//! `kubectl` (discovery, OpenAPI v3 for field validation, Table output for `get`, watch, apply,
//! replace, patch, delete) and kube-rs clients work against it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = kelp_apiserver::open_store("/var/lib/kelp/objects.redb").await?;
//! let app = kelp_apiserver::router(kelp_apiserver::ApiServerConfig::new(store).with_token(Some("s3cret".into())));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6443").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! **Tokens need TLS for kubectl.** kubectl (client-go's clientcmd) sends no credentials at all
//! to an `http://` server, so a server with a token is usable from kubectl only behind HTTPS
//! (kube-rs does send the token over plain HTTP). [`router`] is transport-agnostic: serve it
//! over TLS wherever a token is required.
//!
//! Modules: `kinds` (what is served, from `kelp-api`), `paths` (URL parsing), `server` (the
//! verbs), `schema` (unknown fields and types against the CRD schemas), `patch`, `table`
//! (`kubectl get` output), `discovery` (discovery and OpenAPI), `status` (errors),
//! `workloads` (the supervisor's extension point), `admission` (the embedding server's checks).

mod admission;
mod discovery;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod kinds;
mod pages;
mod patch;
mod paths;
mod protobuf;
mod schema;
mod server;
mod status;
mod table;
mod workloads;

use std::path::Path;
use std::sync::Arc;

pub use admission::Admission;
pub use discovery::KUBERNETES_VERSION;
use kelp_store::{Store, StoreConfig, StoreError};
pub use kinds::{Backend, CellFn, CellSource, Column, Kind, Kinds, Validator};
pub use server::{ApiServerConfig, MAX_BODY, bearer_token_matches, router, same_token};
pub use status::ApiError;
pub use workloads::{BoxFuture, BoxStream, LogOptions, NoWorkloads, WorkloadError, WorkloadEvent, Workloads};

/// The namespaces that exist from the start (and cannot be deleted: `default`).
pub const INITIAL_NAMESPACES: [&str; 2] = ["default", "kubeless"];

/// The [`StoreConfig`] for the kinds served: every kind with a status subresource declared.
pub fn store_config() -> StoreConfig {
    Kinds::new()
        .all()
        .iter()
        .filter(|k| k.status_subresource && k.writable())
        .fold(StoreConfig::default(), |config, k| config.status_subresource(k.store_key()))
}

/// Opens the store at `path` with [`store_config`] and creates the [`INITIAL_NAMESPACES`] that
/// are missing.
pub async fn open_store(path: impl AsRef<Path>) -> Result<Store, StoreError> {
    let store = Store::open(path, store_config())?;
    bootstrap(&store).await?;
    Ok(store)
}

/// Creates the [`INITIAL_NAMESPACES`] that are missing (idempotent).
pub async fn bootstrap(store: &Store) -> Result<(), StoreError> {
    for name in INITIAL_NAMESPACES {
        let namespace = server::new_namespace(name);
        match store.create("/namespaces", namespace).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The default [`Workloads`]: nothing running.
pub fn no_workloads() -> Arc<dyn Workloads> {
    Arc::new(NoWorkloads)
}
