//! Kelp's event delivery engine: Kafka and NATS consumers that call functions **at least
//! once**, where Kubeless's trigger controllers delivered at most once.
//!
//! A host (`kelp up`, or the cluster's `kelp-triggers`) keeps a [`Triggers`]: from the live
//! KafkaTriggers, NATSTriggers and Functions it runs one [`Consumer`] per trigger and matching
//! function — a [`Subscription`] — calling functions through the host's [`Invoke`], and gives
//! back each trigger's status.
//! Each message becomes an [`Event`]: a `POST /` with Kubeless's event headers and the message as
//! body. A call answered 2xx delivers it; any other answer or a failed call is retried with
//! exponential backoff ([`Policy`]); when the retries are spent the message goes to the
//! trigger's dead-letter topic or subject with the reason in a header, and only then is it
//! committed (Kafka) or acknowledged (JetStream). Nothing is dropped silently. Each consumer
//! reports a [`ConsumerStatus`] for its trigger's status and updates per-trigger [`Metrics`].
//!
//! * [`kafka`]: a consumer group per subscription, Kubeless's group name
//!   ([`Subscription::group`]), offsets committed only once delivered, order kept per partition,
//!   partitions delivered concurrently up to the policy's `concurrency`.
//! * [`nats`]: queue subscriptions (wildcards welcome) with Kubeless's queue group name, or with
//!   `kelp.dev/durable: "true"` a durable JetStream consumer with explicit acks.
//!
//! **Why rdkafka.** Consumer groups (join, rebalance, heartbeats), stored and committed
//! offsets, TLS and SASL are what a Kafka client for this must do well, and only librdkafka
//! (through `rdkafka`) does all of them in Rust today: `rskafka` has no consumer groups, the
//! `kafka` crate speaks protocol versions Kafka 4 no longer accepts, and the pure-Rust newcomers
//! lack rebalancing. The cost is a C library built from source (bundled by `rdkafka-sys`, linked
//! statically with the system's OpenSSL and zlib): about a minute and a half of a cold build on
//! two cores, paid once. NATS uses `async-nats`, the official client.
//!
//! Broker settings come from Kubeless's environment names ([`KafkaSettings::from_env`],
//! [`nats_url`], [`parse_go_duration`] for `BACKOFF_INTERVAL`).

mod consumer;
mod deliver;
mod event;
mod invoke;
pub mod kafka;
pub mod kinesis;
mod metrics;
pub mod nats;
mod policy;
mod settings;
pub mod topics;
mod triggers;

pub use crate::consumer::{Consumer, ConsumerStatus, Subscription};
pub use crate::event::{Event, Source};
pub use crate::invoke::{ANSWER_KEPT, Answer, Invoke};
pub use crate::metrics::Metrics;
pub use crate::policy::{
    BACKOFF_BASE, CONCURRENCY, DEAD_LETTER, DEFAULT_BACKOFF_CAP, DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DURABLE, Policy,
    RETRIES,
};
pub use crate::settings::{
    DEFAULT_KAFKA_BROKERS, DEFAULT_NATS_URL, KafkaSettings, KafkaTls, nats_url, parse_go_duration,
};
pub use crate::triggers::{Brokers, Target, TopicTrigger, Triggers};

/// Why a consumer could not start, or a setting could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting from the environment is not valid.
    #[error("{name}: {reason}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A trigger annotation is not valid.
    #[error("annotation {key}: {reason}")]
    Annotation {
        /// The annotation.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// librdkafka refused the configuration.
    #[error("kafka: {0}")]
    Kafka(String),
}
