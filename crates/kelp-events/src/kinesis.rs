//! The Kinesis consumer of one [`Subscription`]: the trigger's shard of its stream, read with
//! `GetRecords` from the last checkpoint, each record delivered in order (retried, then
//! dead-lettered as the other triggers' messages are), and the shard position checkpointed once
//! every record of a batch is delivered or dead-lettered — at least once: a consumer that stops
//! or dies before a checkpoint reads again from the previous one, so records may come twice and
//! none is missed.
//!
//! A KinesisTrigger names one shard (`spec.shard`, required, as Kubeless's did): its consumer
//! reads that shard only. Another shard of the same stream is consumed by another trigger.
//!
//! **Checkpoints** are the shard's last delivered sequence number, kept in a ConfigMap of the
//! trigger's namespace, `kelp-kinesis-<trigger>`, one key per function, stream and shard
//! ([`checkpoint_of`]); the host reads and writes it ([`Checkpoints`]): `kelp up` in its store,
//! `kelp-triggers` through the cluster's API, so both backends keep the same object and a
//! checkpoint is as durable as the API's writes. A ConfigMap, not the trigger: writing the
//! trigger per batch would bump its `resourceVersion` under the user's feet (a `kubectl apply` or
//! `kelp trigger kinesis update` would conflict or drop it), and its status is the host's to
//! rewrite. Without a checkpoint, a new consumer starts at the records written since both the
//! trigger and its function existed (`AT_TIMESTAMP`), like a new Kafka group.
//!
//! **Dead letters** go to the Kinesis stream named by `kelp.dev/dead-letter` (default
//! `kelp-dead-letter.<namespace>.<trigger>`, which must exist: `kelp trigger kinesis
//! create-stream`), with the original partition key, as a JSON object: `reason`, `trigger`,
//! `function`, `eventId`, `stream`, `shard`, `sequenceNumber`, `partitionKey` and `data`
//! (base64) — a Kinesis record has no headers to carry them.

mod client;
mod sigv4;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

pub use self::client::{Client, MAX_ANSWER, MAX_RECORD, MAX_RECORDS, Record, Records, Start, parse_records};
use crate::consumer::{Consumer, Shared, Stop};
use crate::deliver::{Outcome, deliver, until_done};
use crate::event::{Event, Source};
use crate::invoke::Invoke;
use crate::{Metrics, Subscription};

/// Records asked for per `GetRecords`, and so at most delivered between two checkpoints.
const BATCH: u32 = 100;
/// The wait before reading again a shard that had nothing new (Kinesis allows 5 reads a
/// second per shard).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// The prefix of a trigger's checkpoint ConfigMap.
pub const CHECKPOINT_PREFIX: &str = "kelp-kinesis-";

/// Why a Kinesis call failed.
#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    /// The endpoint cannot be used.
    #[error("endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint given (or AWS's of the region).
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// Kinesis answered with an error.
    #[error("{action}: {kind} ({status}): {message}")]
    Api {
        /// The action called.
        action: String,
        /// The HTTP status.
        status: u16,
        /// The error's type, e.g. `ResourceNotFoundException`.
        kind: String,
        /// Its message.
        message: String,
    },
    /// The call failed, or its answer cannot be read.
    #[error("{action}: {reason}")]
    Call {
        /// The action called.
        action: String,
        /// Why.
        reason: String,
    },
}

/// AWS credentials, from the Secret a trigger names. Their `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// The Secret keys of a trigger's credentials.
pub const SECRET_KEYS: [&str; 2] = ["aws_access_key_id", "aws_secret_access_key"];

impl Credentials {
    /// The credentials in a Secret's decoded `data`; an error names the missing key.
    pub fn from_secret_data(secret: &str, get: impl Fn(&str) -> Option<String>) -> Result<Credentials, String> {
        let read = |key: &str| {
            get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("Secret {secret} has no {key}"))
        };
        Ok(Credentials { access_key_id: read(SECRET_KEYS[0])?, secret_access_key: read(SECRET_KEYS[1])? })
    }
}

/// What a KinesisTrigger's consumer reads besides the stream (its subscription's topic).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// `spec.endpoint` (else AWS's endpoint of the region).
    pub endpoint: Option<String>,
    /// `spec.aws-region`.
    pub region: String,
    /// `spec.shard`.
    pub shard: String,
    /// From the Secret `spec.secret` names.
    pub credentials: Credentials,
}

/// Where a checkpoint is kept: a key of a ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckpointAt {
    /// The ConfigMap's (and the trigger's) namespace.
    pub namespace: String,
    /// The ConfigMap's name, `kelp-kinesis-<trigger>`.
    pub name: String,
    /// The key: `<function>.<stream>.<shard>`.
    pub key: String,
}

/// Where the checkpoint of `subscription`'s shard is kept.
pub fn checkpoint_of(subscription: &Subscription, shard: &str) -> CheckpointAt {
    CheckpointAt {
        namespace: subscription.namespace.clone(),
        name: format!("{CHECKPOINT_PREFIX}{}", subscription.trigger),
        key: format!("{}.{}.{shard}", subscription.function, subscription.topic),
    }
}

/// A boxed future, as [`Checkpoints`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a host keeps checkpoints: a key of a ConfigMap, read and written. A write returns once
/// it is durable.
pub trait Checkpoints: std::fmt::Debug + Send + Sync + 'static {
    /// The value of the key, `None` when the ConfigMap or the key does not exist.
    fn load<'a>(&'a self, at: &'a CheckpointAt) -> BoxFuture<'a, Result<Option<String>, String>>;
    /// Sets the key (creating the ConfigMap when missing).
    fn save<'a>(&'a self, at: &'a CheckpointAt, value: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// Starts consuming `subscription`'s shard, calling `invoker` and checkpointing in
/// `checkpoints`.
pub fn start<I: Invoke>(
    subscription: Subscription,
    invoker: Arc<I>,
    checkpoints: Arc<dyn Checkpoints>,
    metrics: Arc<Metrics>,
) -> Result<Consumer, KinesisError> {
    let shard = subscription.kinesis.clone().ok_or_else(|| KinesisError::Call {
        action: "start".into(),
        reason: "the subscription has no Kinesis shard".into(),
    })?;
    let client = Client::new(shard.endpoint.as_deref(), &shard.region, shard.credentials.clone())?;
    let shared = Shared::new(subscription, &metrics);
    Ok(Consumer::spawn(shared, metrics, move |shared, stop| async move {
        let reader = Reader { client, shard: shard.shard, shared, checkpoints };
        reader.run(invoker.as_ref(), stop).await;
    }))
}

/// One shard's consumer.
struct Reader {
    client: Client,
    shard: String,
    shared: Arc<Shared>,
    checkpoints: Arc<dyn Checkpoints>,
}

impl Reader {
    /// Reads from the checkpoint, again after each failure, until stopped.
    async fn run<I: Invoke>(&self, invoker: &I, mut stop: Stop) {
        let at = checkpoint_of(&self.shared.subscription, &self.shard);
        let mut retry = 0u32;
        loop {
            match self.read(invoker, &at, &mut stop).await {
                Ok(()) => return,
                Err(error) => {
                    self.shared.state.set_subscribed(false);
                    self.shared.state.failed(&error);
                }
            }
            let wait = self.shared.subscription.policy.backoff(retry);
            if stop.unless_stopped(tokio::time::sleep(wait)).await.is_none() {
                return;
            }
            retry = retry.saturating_add(1);
        }
    }

    /// Reads and delivers from the checkpoint on; `Ok` once stopped, `Err` when a call to
    /// Kinesis or the checkpoint store failed (and the read must start over from the
    /// checkpoint).
    async fn read<I: Invoke>(&self, invoker: &I, at: &CheckpointAt, stop: &mut Stop) -> Result<(), String> {
        let subscription = &self.shared.subscription;
        let stream = &subscription.topic;
        let Some(checkpoint) = stop.unless_stopped(self.checkpoints.load(at)).await else { return Ok(()) };
        let start = match checkpoint.map_err(|e| format!("reading the checkpoint {}/{}: {e}", at.namespace, at.name))? {
            Some(sequence) => Start::After(sequence),
            None => subscription.since.map_or(Start::Oldest, Start::At),
        };
        let iterator = self.client.shard_iterator(stream, &self.shard, &start);
        let Some(iterator) = stop.unless_stopped(iterator).await else { return Ok(()) };
        let mut iterator = iterator.map_err(|e| e.to_string())?;
        self.shared.state.set_subscribed(true);
        loop {
            let Some(batch) = stop.unless_stopped(self.client.get_records(&iterator, BATCH)).await else {
                return Ok(());
            };
            let batch = batch.map_err(|e| e.to_string())?;
            if let Some(behind) = batch.millis_behind_latest {
                self.shared.counters.behind.set(behind);
                self.shared.state.set_lag_known();
            }
            let mut last = None;
            for record in &batch.records {
                self.shared.counters.consumed.inc();
                if !self.deliver(invoker, record, stop).await {
                    return Ok(());
                }
                last = Some(record.sequence_number.as_str());
            }
            if let Some(sequence) = last {
                let save = || async { self.checkpoints.save(at, sequence).await };
                let what = format!("writing the checkpoint {}/{}", at.namespace, at.name);
                if !until_done(&self.shared, &what, stop, save).await {
                    return Ok(());
                }
            }
            match batch.next {
                Some(next) => iterator = next,
                None => {
                    // A closed shard read to its end: nothing more will come.
                    self.shared.state.failed(&format!("shard {} of stream {stream} is closed", self.shard));
                    stop.unless_stopped(std::future::pending::<()>()).await;
                    return Ok(());
                }
            }
            if batch.records.is_empty() && stop.unless_stopped(tokio::time::sleep(IDLE_POLL)).await.is_none() {
                return Ok(());
            }
        }
    }

    /// Delivers one record, or writes it to the dead-letter stream; `false`: stopped first.
    async fn deliver<I: Invoke>(&self, invoker: &I, record: &Record, stop: &mut Stop) -> bool {
        let subscription = &self.shared.subscription;
        let event = Event::new(Source::Kinesis, &subscription.topic, record.data.clone());
        let reason = match deliver(invoker, &self.shared, &event, stop).await {
            Outcome::Delivered => return true,
            Outcome::Stopped => return false,
            Outcome::Failed(reason) => reason,
        };
        let letter = dead_letter(subscription, &self.shard, record, &event, &reason);
        let dead_letter = &subscription.policy.dead_letter;
        let put = || async {
            self.client
                .put_record(dead_letter, &record.partition_key, &letter)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let what = format!("writing a dead letter to stream {dead_letter}");
        if !until_done(&self.shared, &what, stop, put).await {
            return false;
        }
        self.shared.counters.dead_lettered.inc();
        true
    }
}

/// The dead letter of `record`: the reason, where it came from, and the data.
fn dead_letter(subscription: &Subscription, shard: &str, record: &Record, event: &Event, reason: &str) -> Vec<u8> {
    serde_json::json!({
        "reason": reason,
        "trigger": format!("{}/{}", subscription.namespace, subscription.trigger),
        "function": subscription.function,
        "eventId": event.id,
        "stream": subscription.topic,
        "shard": shard,
        "sequenceNumber": record.sequence_number,
        "partitionKey": record.partition_key,
        "data": base64::engine::general_purpose::STANDARD.encode(&record.data),
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_both_keys_and_never_print_the_secret() {
        let data = |key: &str| match key {
            "aws_access_key_id" => Some("AKID".to_owned()),
            "aws_secret_access_key" => Some("s3cr3t".to_owned()),
            _ => None,
        };
        let credentials = Credentials::from_secret_data("aws", data).unwrap();
        assert!(!format!("{credentials:?}").contains("s3cr3t"));
        let missing = Credentials::from_secret_data("aws", |key| data(key).filter(|_| key != "aws_secret_access_key"));
        assert_eq!(missing.unwrap_err(), "Secret aws has no aws_secret_access_key");
    }

    #[test]
    fn a_bad_endpoint_is_refused_with_the_reason() {
        let credentials = Credentials { access_key_id: "a".into(), secret_access_key: "b".into() };
        for endpoint in ["ftp://x", "localhost:4567", "http://x/path", "http://"] {
            let error = Client::new(Some(endpoint), "us-east-1", credentials.clone()).unwrap_err();
            assert!(error.to_string().starts_with(&format!("endpoint {endpoint:?}")), "{error}");
        }
    }
}
