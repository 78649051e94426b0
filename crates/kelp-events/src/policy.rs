//! How a trigger delivers, from its annotations (each with a default) and `BACKOFF_INTERVAL`.
//!
//! | Annotation | Default | Meaning |
//! |---|---|---|
//! | `kelp.dev/retries` | `5` | retries after a failed call before the message is dead-lettered; at most 1000 |
//! | `kelp.dev/dead-letter` | Kafka and Kinesis: `kelp-dead-letter.<namespace>.<trigger>`; NATS: `kelp.dead-letter.<namespace>.<trigger>` | the topic (Kafka), subject (NATS) or stream (Kinesis) a message goes to when every retry failed |
//! | `kelp.dev/concurrency` | Kafka `8`, NATS and Kinesis `1` | Kafka: partitions delivered at once (order is kept within each); NATS core: messages delivered at once (above 1 their order is not kept); Kinesis: unused (a shard's records are delivered in order); at most 1024 |
//! | `kelp.dev/durable` | `false` | NATS: `true` consumes through JetStream with explicit acks |
//!
//! Retry `n` (from 0) waits `100 ms × 2ⁿ`, at most `BACKOFF_INTERVAL` (default 10 s).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Error;
use crate::event::Source;

/// Annotation: retries after the first failed call.
pub const RETRIES: &str = "kelp.dev/retries";
/// Annotation: the dead-letter topic or subject.
pub const DEAD_LETTER: &str = "kelp.dev/dead-letter";
/// Annotation: Kafka partitions, or NATS core messages, delivered at once.
pub const CONCURRENCY: &str = "kelp.dev/concurrency";
/// Annotation: NATS through JetStream.
pub const DURABLE: &str = "kelp.dev/durable";

/// Default of [`RETRIES`].
pub const DEFAULT_RETRIES: u32 = 5;
/// The most [`RETRIES`]: with the default backoff interval, about three hours of one message
/// holding up its partition or subject before it is dead-lettered.
pub(crate) const MAX_RETRIES: u32 = 1000;
/// Default of [`CONCURRENCY`] for Kafka (NATS: 1, in order, as Kubeless delivered).
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The largest [`CONCURRENCY`]: calls in flight per trigger, so one trigger cannot open
/// connections (and spawn tasks) without bound.
pub(crate) const MAX_CONCURRENCY: usize = 1024;
/// The first retry's wait.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest wait between retries when `BACKOFF_INTERVAL` is not set.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(10);

/// How one trigger delivers its messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Retries after the first failed call.
    pub retries: u32,
    /// The first retry's wait; each next one doubles it.
    pub backoff_base: Duration,
    /// The longest wait between retries (`BACKOFF_INTERVAL`).
    pub backoff_cap: Duration,
    /// Where a message goes when every call failed.
    pub dead_letter: String,
    /// Kafka partitions, or NATS core messages, delivered at once.
    pub concurrency: usize,
    /// NATS: consume through JetStream (a durable consumer, explicit acks).
    pub durable: bool,
}

impl Policy {
    /// The policy of the trigger `namespace/name` with these `annotations`; an annotation whose
    /// value cannot be read is an error (reported in the trigger's status), not ignored.
    pub fn from_annotations(
        source: Source,
        namespace: &str,
        name: &str,
        annotations: &BTreeMap<String, String>,
        backoff_cap: Duration,
    ) -> Result<Policy, Error> {
        let get = |key: &str| annotations.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let invalid = |key: &'static str, reason: &str| Error::Annotation { key, reason: reason.to_owned() };
        let retries = match get(RETRIES) {
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| *n <= MAX_RETRIES)
                .ok_or_else(|| invalid(RETRIES, "must be a whole number of retries, at most 1000"))?,
            None => DEFAULT_RETRIES,
        };
        let concurrency = match get(CONCURRENCY) {
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
                .ok_or_else(|| invalid(CONCURRENCY, "must be from 1 to 1024"))?,
            None => match source {
                Source::Kafka => DEFAULT_CONCURRENCY,
                Source::Nats | Source::Kinesis => 1,
            },
        };
        let durable = match get(DURABLE) {
            Some(v) => v.parse().map_err(|_| invalid(DURABLE, "must be true or false"))?,
            None => false,
        };
        let dead_letter = match get(DEAD_LETTER) {
            Some(v) => v.to_owned(),
            None => match source {
                Source::Kafka | Source::Kinesis => format!("kelp-dead-letter.{namespace}.{name}"),
                Source::Nats => format!("kelp.dead-letter.{namespace}.{name}"),
            },
        };
        Ok(Policy { retries, backoff_base: BACKOFF_BASE, backoff_cap, dead_letter, concurrency, durable })
    }

    /// The wait before retry `retry` (from 0): exponential, capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        self.backoff_base.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX)).min(self.backoff_cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_and_annotations() {
        let cap = Duration::from_secs(1);
        let kafka = Policy::from_annotations(Source::Kafka, "default", "orders", &annotations(&[]), cap).unwrap();
        assert_eq!(
            (kafka.retries, kafka.concurrency, kafka.durable, kafka.dead_letter.as_str()),
            (DEFAULT_RETRIES, DEFAULT_CONCURRENCY, false, "kelp-dead-letter.default.orders")
        );
        let nats = Policy::from_annotations(Source::Nats, "ns", "t", &annotations(&[]), cap).unwrap();
        assert_eq!((nats.dead_letter.as_str(), nats.concurrency), ("kelp.dead-letter.ns.t", 1));
        let given = annotations(&[(RETRIES, "0"), (CONCURRENCY, "2"), (DURABLE, "true"), (DEAD_LETTER, "dlq")]);
        let set = Policy::from_annotations(Source::Nats, "ns", "t", &given, cap).unwrap();
        assert_eq!((set.retries, set.concurrency, set.durable, set.dead_letter.as_str()), (0, 2, true, "dlq"));
        // A semaphore of more than `usize::MAX >> 3` permits panics: the bound keeps far from it.
        for (key, value) in [
            (RETRIES, "-1"),
            (RETRIES, "1001"),
            (CONCURRENCY, "0"),
            (CONCURRENCY, "1025"),
            (CONCURRENCY, "18446744073709551615"),
            (DURABLE, "yes"),
        ] {
            let error = Policy::from_annotations(Source::Kafka, "n", "t", &annotations(&[(key, value)]), cap);
            assert!(error.unwrap_err().to_string().contains(key), "{key}={value}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy =
            Policy::from_annotations(Source::Kafka, "n", "t", &BTreeMap::new(), Duration::from_millis(500)).unwrap();
        let waits: Vec<u128> = (0..5).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(100), Duration::from_millis(500));
    }
}
