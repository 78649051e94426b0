//! The controller's Prometheus metrics: reconciles, their durations and errors per kind, and
//! how many objects wait for a reconcile (the queue depth).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Instant;

/// Labels of the per-kind series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `Function`, `HTTPTrigger`, `CronJobTrigger`.
    pub kind: String,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The reconciled kind.
    pub kind: String,
    /// [`crate::Error::reason`].
    pub reason: String,
}

/// Every series, registered in one registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<KindLabels, Histogram>,
    queue: Family<KindLabels, Gauge>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kelp_controller");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
        });
        let queue = Family::<KindLabels, Gauge>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles run, per kind", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, per kind and reason", errors.clone());
        registry.register("reconcile_duration_seconds", "Time one reconcile took, per kind", durations.clone());
        registry.register(
            "queue_depth",
            "Objects whose latest change has not been reconciled yet, per kind",
            queue.clone(),
        );
        registry.register("leader", "1 while this replica is the active one", leader.clone());
        Self { registry, reconciles, errors, durations, queue, leader }
    }
}

impl Metrics {
    /// Starts timing a reconcile of `kind`; the returned guard records it when dropped.
    pub fn reconcile(&self, kind: &'static str) -> ReconcileTimer<'_> {
        self.reconciles.get_or_create(&KindLabels { kind: kind.into() }).inc();
        ReconcileTimer { metrics: self, kind, start: Instant::now() }
    }

    /// Counts a failed reconcile.
    pub fn error(&self, kind: &'static str, reason: &str) {
        self.errors.get_or_create(&ErrorLabels { kind: kind.into(), reason: reason.into() }).inc();
    }

    /// Sets the queue depth of `kind`.
    pub fn set_queue_depth(&self, kind: &'static str, depth: usize) {
        self.queue.get_or_create(&KindLabels { kind: kind.into() }).set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        let labels = KindLabels { kind: self.kind.into() };
        self.metrics.durations.get_or_create(&labels).observe(self.start.elapsed().as_secs_f64());
    }
}
