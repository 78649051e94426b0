//! KinesisTriggers on a cluster: the AWS credentials of the Secret each trigger names (read
//! through the API, kept for [`CREDENTIALS_TTL`]) and the consumers' checkpoints in the
//! ConfigMap `kelp-kinesis-<trigger>` of the trigger's namespace ([`ApiCheckpoints`]), the same
//! object `kelp up` keeps in its store.
//!
//! A Kinesis shard has no consumer groups to share it: only the replica holding the
//! `kelp-triggers` Lease consumes KinesisTriggers. A new leader starts from the checkpoint, so a
//! handover delivers again at most the batch in flight.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kelp_events::kinesis::{BoxFuture, CheckpointAt, Checkpoints, Credentials};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// How long a Secret's credentials are used before it is read again.
const CREDENTIALS_TTL: Duration = Duration::from_secs(30);
/// Attempts at a checkpoint write that meets a concurrent creation of its ConfigMap.
const CHECKPOINT_ATTEMPTS: usize = 3;

/// What a Secret (namespace, name) held when it was read, and when.
type Read = HashMap<(String, String), (Instant, Result<Credentials, String>)>;

/// The credentials of Secrets, read at most every [`CREDENTIALS_TTL`].
pub(crate) struct SecretCredentials {
    client: Client,
    read: Mutex<Read>,
}

impl SecretCredentials {
    pub(crate) fn new(client: Client) -> Self {
        SecretCredentials { client, read: Mutex::default() }
    }

    /// The credentials in the Secret `namespace/name`, or why there are none.
    pub(crate) async fn get(&self, namespace: &str, name: &str) -> Result<Credentials, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some((at, read)) = self.lock().get(&key)
            && at.elapsed() < CREDENTIALS_TTL
        {
            return read.clone();
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let read = match api.get_opt(name).await {
            Ok(Some(secret)) => Credentials::from_secret_data(name, |key| {
                let data = secret.data.as_ref()?.get(key)?;
                String::from_utf8(data.0.clone()).ok()
            }),
            Ok(None) => Err(format!("Secret {name} not found in namespace {namespace}")),
            Err(e) => Err(format!("reading Secret {name}: {e}")),
        };
        self.lock().insert(key, (Instant::now(), read.clone()));
        read
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Read> {
        self.read.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Checkpoints in ConfigMaps, through the API (a merge patch of the key, or a create).
pub(crate) struct ApiCheckpoints(pub(crate) Client);

impl std::fmt::Debug for ApiCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiCheckpoints")
    }
}

impl ApiCheckpoints {
    async fn write(&self, at: &CheckpointAt, value: &str) -> Result<(), String> {
        let api: Api<ConfigMap> = Api::namespaced(self.0.clone(), &at.namespace);
        let patch = json!({"data": {at.key.as_str(): value}});
        for _ in 0..CHECKPOINT_ATTEMPTS {
            match api.patch(&at.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e.to_string()),
            }
            let config_map: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": at.name, "namespace": at.namespace},
                "data": {at.key.as_str(): value},
            }))
            .map_err(|e| e.to_string())?;
            match api.create(&PostParams::default(), &config_map).await {
                Ok(_) => return Ok(()),
                // Created meanwhile: patch it.
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("ConfigMap {}/{} kept changing", at.namespace, at.name))
    }
}

impl Checkpoints for ApiCheckpoints {
    fn load<'a>(&'a self, at: &'a CheckpointAt) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let api: Api<ConfigMap> = Api::namespaced(self.0.clone(), &at.namespace);
            let config_map = api.get_opt(&at.name).await.map_err(|e| e.to_string())?;
            Ok(config_map.and_then(|c| c.data?.get(&at.key).cloned()))
        })
    }

    fn save<'a>(&'a self, at: &'a CheckpointAt, value: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.write(at, value))
    }
}
