//! The memory cap of an instance: `FUNC_MEMORY_LIMIT` (a Kubernetes quantity such as `128Mi`),
//! enforced by the kernel in the instance's cgroup where it has one (this module notices the OOM
//! kill), else by a watchdog that sums the resident memory of the instance's processes (its
//! cgroup's members, else its process tree).

use crate::cgroup::Cgroup;
use crate::procs::{Table, rss_bytes};
use std::sync::Arc;
use std::time::Duration;

/// How often an instance's memory is measured.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// A memory limit that is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a memory quantity (such as 128Mi, 1Gi, 500M or 1e9)")]
pub struct QuantityError(pub String);

/// Parses a Kubernetes quantity into bytes, rounding up: `128Mi`, `1.5Gi`, `500M`, `64k`,
/// `1e9`, `100m` (milli-bytes, as Kubernetes allows). `0` or the empty string mean no limit (0).
///
/// ```
/// assert_eq!(kelp_local::parse_quantity("128Mi").unwrap(), 128 << 20);
/// assert_eq!(kelp_local::parse_quantity("1.5Gi").unwrap(), 3 << 29);
/// assert_eq!(kelp_local::parse_quantity("500M").unwrap(), 500_000_000);
/// assert_eq!(kelp_local::parse_quantity("2e3").unwrap(), 2000);
/// assert!(kelp_local::parse_quantity("12 parsecs").is_err());
/// ```
pub fn parse_quantity(value: &str) -> Result<u64, QuantityError> {
    let err = || QuantityError(value.to_owned());
    let s = value.trim();
    if s.is_empty() {
        return Ok(0);
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| err())?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 2f64.powi(10),
        "Mi" => 2f64.powi(20),
        "Gi" => 2f64.powi(30),
        "Ti" => 2f64.powi(40),
        "Pi" => 2f64.powi(50),
        "Ei" => 2f64.powi(60),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().map_err(|_| err())?),
        _ => return Err(err()),
    };
    let bytes = (number * factor).ceil();
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// The processes whose resident memory the watchdog sums: an instance's.
#[derive(Debug, Clone)]
pub(crate) enum Members {
    /// The process tree of this PID.
    Tree(i32),
    /// The members of this cgroup (which has no memory controller).
    Cgroup(Arc<Cgroup>),
}

impl Members {
    /// Their resident memory, in bytes.
    pub(crate) fn rss(&self) -> u64 {
        let pids = match self {
            Members::Tree(root) => Table::shared().tree(*root),
            Members::Cgroup(cgroup) => cgroup.members(),
        };
        pids.into_iter().map(rss_bytes).sum()
    }
}

/// Completes with the memory in use once `members` use more than `limit` bytes; never completes
/// when `limit` is 0.
pub(crate) async fn exceeded(members: Members, limit: u64) -> u64 {
    if limit == 0 {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let members = members.clone();
        let used = tokio::task::spawn_blocking(move || members.rss()).await.unwrap_or(0);
        if used > limit {
            return used;
        }
    }
}

/// Completes with the most memory `cgroup` used once the kernel has killed one of its processes
/// for going over its memory limit.
pub(crate) async fn oom_killed(cgroup: &Cgroup) -> u64 {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(peak) = cgroup.oom_killed() {
            return peak;
        }
    }
}

/// `bytes` in MiB for messages.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (q, bytes) in
            [("0", 0), ("", 0), ("64Mi", 64 << 20), ("1k", 1000), ("1Ki", 1024), ("100m", 1), ("1E", 10u64.pow(18))]
        {
            assert_eq!(parse_quantity(q), Ok(bytes), "{q}");
        }
        for bad in ["Mi", "1Zi", "-1", "1.2.3", "1e"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }
}
