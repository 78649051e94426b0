//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several replicas only
//! one reconciles. Optimistic concurrency (the Lease's resourceVersion) makes two replicas
//! unable to take the same Lease at once. A leader that cannot renew before its Lease expires
//! stops, as client-go's leader election does: the Deployment restarts it as a candidate.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One replica's handle on the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaseLock {
    /// The Lease `name` in `api`'s namespace, held as `identity` for `duration` per renewal.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self { api, name: name.into(), identity: identity.into(), duration }
    }

    /// How often to try to take or renew the Lease.
    pub fn retry_period(&self) -> Duration {
        self.duration / 3
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
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(self.identity.as_str());
        let expired = spec.renew_time.as_ref().is_none_or(|renewed| {
            let lasted = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(seconds)));
            renewed.0 + lasted < now
        });
        if !(mine || holder.is_none() || expired) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
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

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, lease = %self.name, "cannot read or take the leader Lease"),
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews the Lease until a renewal has failed for a whole Lease duration; then returns
    /// (leadership is lost).
    pub async fn keep(&self) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry_period()).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, lease = %self.name, "cannot renew the leader Lease"),
            }
            if last.elapsed() >= self.duration {
                return;
            }
        }
    }

    /// Competes for the Lease in the background, for as long as the process runs: the
    /// receiver reads `true` while this replica holds it. For processes whose every replica
    /// works and only the leader does some of it (`kelp-triggers`).
    pub fn spawn_election(self: Arc<Self>) -> watch::Receiver<bool> {
        let (leading, receiver) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                self.acquire().await;
                tracing::info!(lease = %self.name, "leading");
                leading.send_replace(true);
                self.keep().await;
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
