//! When to retry a failed reconcile: per object, exponential backoff with jitter and a cap,
//! reset by a success (as kube-runtime's examples' `error_policy` with a backoff per object).
//! A fixed delay retried every broken object of a cluster at the same pace forever, and in step.

use crate::context::ObjectKey;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The delays of one kind of failure: the first retry after about `base`, doubling up to `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The delay of the first retry (before jitter).
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Policy {
    /// The delay before retry number `failures` (1 for the first) with `jitter` in `[0, 1)`:
    /// `min(cap, base × 2^(failures − 1))`, of which the second half is scaled by `jitter`, so
    /// retries of objects that failed together spread out, and none waits longer than `cap`.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(31);
        let full = self.base.checked_mul(1 << exponent).map_or(self.cap, |d| d.min(self.cap));
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
        full / 2 + (full / 2).mul_f64(jitter)
    }
}

/// The consecutive failures of every object that is failing.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<ObjectKey, u32>>,
    draws: AtomicU64,
}

impl Backoff {
    /// Counts a failure of `key` and returns how long to wait before retrying it.
    pub fn failed(&self, key: ObjectKey, policy: Policy) -> Duration {
        let failures = {
            let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = failures.entry(key).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        policy.delay(failures, self.jitter())
    }

    /// Forgets the failures of `key` (it succeeded, or is gone).
    pub fn reset(&self, key: &ObjectKey) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }

    /// A number in `[0, 1)`, different at each call: the standard library's randomly keyed
    /// hash of a counter (jitter needs no better randomness).
    fn jitter(&self) -> f64 {
        let draw = self.draws.fetch_add(1, Ordering::Relaxed);
        let bits = std::collections::hash_map::RandomState::new().hash_one(draw) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { base: Duration::from_secs(1), cap: Duration::from_secs(300) };

    fn key(name: &str) -> ObjectKey {
        ("Function", "ns".into(), name.into())
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let full: Vec<u64> = (1..=12).map(|n| POLICY.delay(n, 1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(POLICY.delay(u32::MAX, 1.0), POLICY.cap, "no overflow after many failures");
        let huge = Policy { base: Duration::MAX, cap: Duration::from_secs(60) };
        assert_eq!(huge.delay(3, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_spreads_the_second_half_only() {
        assert_eq!(POLICY.delay(4, 0.0), Duration::from_secs(4));
        assert_eq!(POLICY.delay(4, 0.5), Duration::from_secs(6));
        assert_eq!(POLICY.delay(4, f64::NAN), Duration::from_secs(4));
        assert_eq!(POLICY.delay(4, 7.0), Duration::from_secs(8));
    }

    #[test]
    fn failures_count_per_object_and_a_success_resets_them() {
        let backoff = Backoff::default();
        let delays: Vec<Duration> = (0..5).map(|_| backoff.failed(key("a"), POLICY)).collect();
        for (n, delay) in delays.iter().enumerate() {
            let full = POLICY.delay(n as u32 + 1, 1.0);
            assert!(
                *delay >= full / 2 && *delay <= full,
                "retry {}: {delay:?} not in [{:?}, {full:?}]",
                n + 1,
                full / 2
            );
        }
        assert!(backoff.failed(key("b"), POLICY) <= Duration::from_secs(1), "another object starts afresh");
        backoff.reset(&key("a"));
        assert!(backoff.failed(key("a"), POLICY) <= Duration::from_secs(1), "a success resets the backoff");
    }

    #[test]
    fn jitter_differs_between_draws() {
        let backoff = Backoff::default();
        let draws: std::collections::HashSet<u64> = (0..16).map(|_| backoff.jitter().to_bits()).collect();
        assert!(draws.len() > 1, "{draws:?}");
        assert!(draws.iter().all(|bits| (0.0..1.0).contains(&f64::from_bits(*bits))));
    }
}
