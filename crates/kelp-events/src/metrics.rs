//! Per-trigger Prometheus series, labelled `kind` (`kafka`, `nats`, `kinesis`), `namespace`,
//! `trigger` and `function`: messages consumed, delivered, retried and dead-lettered, the consumer
//! lag (Kafka: messages in the assigned partitions not yet delivered) and how far behind the
//! shard's latest record a Kinesis consumer reads (`MillisBehindLatest`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::Subscription;

/// The labels of every series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    kind: String,
    namespace: String,
    trigger: String,
    function: String,
}

/// Every consumer's series, in one registry (prefix `kelp_trigger`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    consumed: Family<TriggerLabels, Counter>,
    delivered: Family<TriggerLabels, Counter>,
    retried: Family<TriggerLabels, Counter>,
    dead_lettered: Family<TriggerLabels, Counter>,
    lag: Family<TriggerLabels, Gauge>,
    behind: Family<TriggerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kelp_trigger");
        let metrics = Metrics {
            consumed: Family::default(),
            delivered: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            lag: Family::default(),
            behind: Family::default(),
            registry: Registry::default(),
        };
        registry.register("messages_consumed", "Messages received from the broker", metrics.consumed.clone());
        registry.register(
            "messages_delivered",
            "Messages a function answered with a 2xx status",
            metrics.delivered.clone(),
        );
        registry.register("message_retries", "Calls retried after a failed one", metrics.retried.clone());
        registry.register(
            "messages_dead_lettered",
            "Messages sent to the dead-letter topic or subject after every retry failed",
            metrics.dead_lettered.clone(),
        );
        registry.register("consumer_lag", "Messages published but not yet delivered (Kafka)", metrics.lag.clone());
        registry.register(
            "millis_behind_latest",
            "How far the records read are behind the shard's latest, in milliseconds (Kinesis)",
            metrics.behind.clone(),
        );
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// The Prometheus text of every series (without OpenMetrics' `# EOF`, so it can be joined
    /// to other text).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }

    /// The series of one consumer, created at zero (`millis_behind_latest` for Kinesis only).
    pub(crate) fn counters(&self, subscription: &Subscription) -> Counters {
        let labels = labels(subscription);
        let behind = match subscription.source {
            crate::Source::Kinesis => self.behind.get_or_create(&labels).clone(),
            crate::Source::Kafka | crate::Source::Nats => Gauge::default(),
        };
        Counters {
            consumed: self.consumed.get_or_create(&labels).clone(),
            delivered: self.delivered.get_or_create(&labels).clone(),
            retried: self.retried.get_or_create(&labels).clone(),
            dead_lettered: self.dead_lettered.get_or_create(&labels).clone(),
            lag: self.lag.get_or_create(&labels).clone(),
            behind,
        }
    }

    /// Removes one consumer's series (its trigger or function is gone).
    pub(crate) fn forget(&self, subscription: &Subscription) {
        let labels = labels(subscription);
        for family in [&self.consumed, &self.delivered, &self.retried, &self.dead_lettered] {
            family.remove(&labels);
        }
        self.lag.remove(&labels);
        self.behind.remove(&labels);
    }
}

fn labels(subscription: &Subscription) -> TriggerLabels {
    TriggerLabels {
        kind: subscription.source.label().to_owned(),
        namespace: subscription.namespace.clone(),
        trigger: subscription.trigger.clone(),
        function: subscription.function.clone(),
    }
}

/// One consumer's handles on its series.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) consumed: Counter,
    pub(crate) delivered: Counter,
    pub(crate) retried: Counter,
    pub(crate) dead_lettered: Counter,
    pub(crate) lag: Gauge,
    pub(crate) behind: Gauge,
}
