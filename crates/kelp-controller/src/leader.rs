//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several replicas only
//! one reconciles. Optimistic concurrency (the Lease's resourceVersion) makes two replicas
//! unable to take the same Lease at once. The timing follows client-go's leader election, and
//! never compares one machine's clock with another's:
//!
//! - a candidate judges expiry by its own monotonic clock: the Lease is another replica's until
//!   its lease duration has passed since the candidate last *saw the record change* (whatever
//!   `renewTime` says, which another node's clock wrote);
//! - the leader stops leading when it has not renewed within the renew deadline (two thirds of
//!   the lease duration, as client-go's 10 s of 15 s), counted from the start of its last
//!   successful renewal, so it has stopped before any candidate may take over. Each attempt is
//!   bounded by the time left, so a request that hangs cannot keep it leading.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// One replica's handle on the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The Lease record as last read, and when (this replica's clock).
    observed: Mutex<Observer>,
}

impl LeaseLock {
    /// The Lease `name` in `api`'s namespace, held as `identity` for `duration` per renewal.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            duration,
            observed: Mutex::new(Observer::new(identity, duration)),
        }
    }

    /// How often to try to take or renew the Lease (client-go: 2 s of 15 s).
    pub fn retry_period(&self) -> Duration {
        self.duration * 2 / 15
    }

    /// How long the leader may go without a successful renewal before it stops leading.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Takes the Lease if it is free or expired, renews it if held: `true` when this replica
    /// holds it afterwards. Losing a race to another replica is `false`, not an error.
    pub async fn try_acquire_or_renew(&self) -> kube::Result<bool> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(now, seconds, Some(MicroTime(now)), 0)),
            };
            return lost_race(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let held = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .held_by_other(&spec, Instant::now());
        if held {
            return Ok(false);
        }
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(i32::from(!mine));
        let acquired = if mine { spec.acquire_time.clone() } else { Some(MicroTime(now)) };
        let renewed =
            Lease { metadata: lease.metadata.clone(), spec: Some(self.spec(now, seconds, acquired, transitions)) };
        lost_race(self.api.replace(&self.name, &PostParams::default(), &renewed).await)
    }

    /// Gives the Lease up (on a clean shutdown), so another replica need not wait for it to
    /// expire.
    pub async fn release(&self) -> kube::Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api.replace(&self.name, &PostParams::default(), &lease).await.map(drop)
    }

    /// Waits until this replica holds the Lease; returns when the successful attempt started
    /// (what [`keep`](Self::keep) counts the renew deadline from).
    pub async fn acquire(&self) -> Instant {
        loop {
            let started = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(true) => return started,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, lease = %self.name, "cannot read or take the leader Lease"),
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews the Lease taken at `acquired` (see [`acquire`](Self::acquire)) until another
    /// replica holds it or no renewal succeeded within the renew deadline; then returns
    /// (leadership is lost: stop leading at once).
    pub async fn keep(&self, acquired: Instant) {
        keep_renewing(acquired, self.retry_period(), self.renew_deadline(), || async {
            let renewed = self.try_acquire_or_renew().await;
            if let Err(e) = &renewed {
                tracing::warn!(error = %e, lease = %self.name, "cannot renew the leader Lease");
            }
            renewed.ok()
        })
        .await;
    }

    /// Competes for the Lease in the background, for as long as the process runs: the
    /// receiver reads `true` while this replica holds it. For processes whose every replica
    /// works and only the leader does some of it (`kelp-triggers`).
    pub fn spawn_election(self: Arc<Self>) -> watch::Receiver<bool> {
        let (leading, receiver) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let acquired = self.acquire().await;
                tracing::info!(lease = %self.name, "leading");
                leading.send_replace(true);
                self.keep(acquired).await;
                tracing::warn!(lease = %self.name, "lost the Lease");
                leading.send_replace(false);
            }
        });
        receiver
    }

    fn spec(&self, now: Timestamp, seconds: i32, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: acquired,
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }
}

/// `Ok(true)` for a write that went through, `Ok(false)` when another replica wrote first.
fn lost_race(result: kube::Result<Lease>) -> kube::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The leader's renew loop: every `retry` an attempt (`renew`: `Some(true)` renewed,
/// `Some(false)` another replica holds the Lease, `None` failed), each bounded by the time left
/// before `deadline` has passed since the start of the last successful one (first: `acquired`).
/// Returns when leadership is lost.
async fn keep_renewing<F, Fut>(acquired: Instant, retry: Duration, deadline: Duration, mut renew: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<bool>>,
{
    let mut renewal = Renewal { last: acquired, deadline };
    loop {
        tokio::time::sleep(retry).await;
        let started = Instant::now();
        let Some(left) = renewal.time_left(started) else { return };
        match tokio::time::timeout(left, renew()).await {
            Ok(Some(true)) => renewal.last = started,
            Ok(Some(false)) => return,
            Ok(None) => {}
            Err(_) => tracing::warn!("renewing the leader Lease took past the renew deadline"),
        }
        if renewal.time_left(Instant::now()).is_none() {
            return;
        }
    }
}

/// When the leader last renewed, and how long it may lead without renewing.
#[derive(Clone, Copy, Debug)]
struct Renewal {
    last: Instant,
    deadline: Duration,
}

impl Renewal {
    /// How long the leader may still lead at `now`; `None` once the deadline has passed.
    fn time_left(&self, now: Instant) -> Option<Duration> {
        let end = self.last.checked_add(self.deadline)?;
        Some(end.saturating_duration_since(now)).filter(|left| !left.is_zero())
    }
}

/// A candidate's view of the Lease: the record as last read and when it last changed, by this
/// replica's monotonic clock (client-go's `observedRecord` and `observedTime`).
#[derive(Debug)]
struct Observer {
    identity: String,
    /// The lease duration assumed when the record names none.
    duration: Duration,
    record: Option<LeaseSpec>,
    changed: Option<Instant>,
}

impl Observer {
    fn new(identity: &str, duration: Duration) -> Self {
        Self { identity: identity.into(), duration, record: None, changed: None }
    }

    /// Records `record`, read at `now`, and says whether another replica holds it: it names a
    /// holder other than this replica, and its lease duration has not passed since the record
    /// was first seen as it is.
    fn held_by_other(&mut self, record: &LeaseSpec, now: Instant) -> bool {
        if self.record.as_ref() != Some(record) {
            self.record = Some(record.clone());
            self.changed = Some(now);
        }
        let holder = record.holder_identity.as_deref().filter(|h| !h.is_empty());
        if holder.is_none_or(|h| h == self.identity) {
            return false;
        }
        // The duration comes from another replica: a negative or zero one is ours.
        let lasts = record
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(self.duration, Duration::from_secs);
        let changed = self.changed.unwrap_or(now);
        // A duration too long to add to the clock never ends.
        changed.checked_add(lasts).is_none_or(|expires| now < expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    const LEASE: Duration = Duration::from_secs(15);

    fn record(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        }
    }

    /// The fake clock: instants after a start.
    fn at(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn a_record_written_by_a_clock_behind_is_held_for_a_whole_lease_after_it_is_seen() {
        let start = Instant::now();
        let mut observer = Observer::new("b", LEASE);
        // The leader's clock is an hour behind: by the record's timestamp it expired long ago.
        let skewed = record("a", Timestamp::now() - SignedDuration::from_hours(1));
        assert!(observer.held_by_other(&skewed, at(start, 0)));
        assert!(observer.held_by_other(&skewed, at(start, 14)));
        assert!(!observer.held_by_other(&skewed, at(start, 15)), "expired a lease after it stopped changing");
    }

    #[test]
    fn a_record_written_by_a_clock_ahead_expires_a_lease_after_it_stops_changing() {
        let start = Instant::now();
        let mut observer = Observer::new("b", LEASE);
        let ahead = record("a", Timestamp::now() + SignedDuration::from_hours(1));
        assert!(observer.held_by_other(&ahead, at(start, 0)));
        assert!(!observer.held_by_other(&ahead, at(start, 16)), "a dead leader's Lease never expires");
    }

    #[test]
    fn every_change_of_the_record_restarts_the_lease() {
        let start = Instant::now();
        let mut observer = Observer::new("b", LEASE);
        let now = Timestamp::now();
        assert!(observer.held_by_other(&record("a", now), at(start, 0)));
        let renewed = record("a", now + SignedDuration::from_secs(2));
        assert!(observer.held_by_other(&renewed, at(start, 10)));
        assert!(observer.held_by_other(&renewed, at(start, 24)));
        assert!(!observer.held_by_other(&renewed, at(start, 25)));
    }

    #[test]
    fn a_free_or_own_lease_is_not_held_and_a_bad_duration_is_ours() {
        let start = Instant::now();
        let mut observer = Observer::new("b", LEASE);
        assert!(!observer.held_by_other(&LeaseSpec::default(), start));
        assert!(!observer.held_by_other(&record("b", Timestamp::now()), start));
        let mut negative = record("a", Timestamp::now());
        negative.lease_duration_seconds = Some(-5);
        assert!(observer.held_by_other(&negative, at(start, 1)));
        assert!(observer.held_by_other(&negative, at(start, 14)));
        assert!(!observer.held_by_other(&negative, at(start, 16)));
        let mut endless = record("a", Timestamp::now());
        endless.lease_duration_seconds = Some(i32::MAX);
        assert!(observer.held_by_other(&endless, at(start, 1_000_000)));
    }

    #[test]
    fn the_leader_stops_at_the_renew_deadline_not_at_the_end_of_the_lease() {
        let start = Instant::now();
        let renewal = Renewal { last: start, deadline: LEASE * 2 / 3 };
        assert_eq!(renewal.time_left(at(start, 4)), Some(Duration::from_secs(6)));
        assert_eq!(renewal.time_left(at(start, 10)), None);
        assert_eq!(renewal.time_left(at(start, 12)), None, "still leading after the renew deadline");
    }

    /// A renewal that never answers does not keep the leader leading: the loop ends (the outer
    /// timeout only guards the test against a hang; it asserts no timing).
    #[tokio::test]
    async fn a_hanging_renewal_ends_leadership() {
        let kept = keep_renewing(Instant::now(), Duration::from_millis(10), Duration::from_millis(50), || {
            std::future::pending::<Option<bool>>()
        });
        tokio::time::timeout(Duration::from_secs(30), kept).await.expect("a hanging renewal keeps the leader leading");
    }

    /// Failing renewals end leadership; another holder ends it at once.
    #[tokio::test]
    async fn failed_renewals_or_another_holder_end_leadership() {
        let mut attempts = 0;
        let kept = keep_renewing(Instant::now(), Duration::from_millis(10), Duration::from_millis(50), || {
            attempts += 1;
            async { None }
        });
        tokio::time::timeout(Duration::from_secs(30), kept).await.expect("failed renewals keep the leader leading");
        assert!(attempts >= 1);
        let mut attempts = 0;
        keep_renewing(Instant::now(), Duration::from_millis(1), Duration::from_secs(3600), || {
            attempts += 1;
            async { Some(false) }
        })
        .await;
        assert_eq!(attempts, 1, "another holder must end leadership at once");
    }
}
