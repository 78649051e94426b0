//! CronJobTriggers: each trigger fires on its own 5-field schedule (one schedule per trigger, not
//! per function as Kubeless's `trigger-<function>` CronJob was), calling its function through the
//! engine with the request Kubeless's CronJob made: `Event-Id`, `Event-Time`,
//! `Event-Namespace: cronjobtrigger.kubeless.io`, `Event-Type` and `Content-Type`
//! `application/json`, and the payload as a POST body (a GET when there is none).
//!
//! Ticks missed while the platform was down are not replayed: a trigger fires at its next
//! occurrence after the platform (re)starts, so no tick is ever delivered twice.

use chrono::{DateTime, Utc};
use kelp_local::Platform;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `event-namespace` of cron calls, as Kubeless's CronJob sent it.
pub const EVENT_NAMESPACE: &str = "cronjobtrigger.kubeless.io";

/// The clock schedules are read against: real time, or real time sped up for tests.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: (Instant, DateTime<Utc>),
    speed: f64,
}

impl Clock {
    /// Wall-clock time.
    pub fn real() -> Self {
        Clock::sped_up(1.0)
    }

    /// Time that passes `speed` times faster than real time from now on (60: a minute of
    /// schedule per second), so tests can watch `* * * * *` fire without waiting minutes.
    /// The speed is kept between 1/1000 and 1,000,000 (anything else, NaN included, is 1), so
    /// the clock's arithmetic cannot overflow.
    pub fn sped_up(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 { speed.clamp(1e-3, 1e6) } else { 1.0 };
        Clock { origin: (Instant::now(), Utc::now()), speed }
    }

    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin.0.elapsed().mul_f64(self.speed);
        let elapsed = chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX);
        self.origin.1.checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Real time until the clock shows `at` (saturating: a schedule centuries away waits as
    /// long as a `Duration` can).
    fn until(&self, at: DateTime<Utc>) -> Duration {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        Duration::try_from_secs_f64(wait.as_secs_f64() / self.speed).unwrap_or(Duration::MAX)
    }
}

/// The running schedules, one task per trigger.
#[derive(Debug)]
pub struct Cron {
    platform: Arc<Platform>,
    clock: Clock,
    jobs: HashMap<(String, String), (Value, tokio::task::JoinHandle<()>)>,
}

impl Cron {
    /// No schedules yet.
    pub fn new(platform: Arc<Platform>, clock: Clock) -> Self {
        Cron { platform, clock, jobs: HashMap::new() }
    }

    /// Runs exactly the given CronJobTriggers (objects as stored): starts new ones, restarts
    /// changed ones, stops the others.
    pub fn sync(&mut self, triggers: &[Arc<Value>]) {
        let mut wanted = HashMap::new();
        for t in triggers.iter().filter(|t| t.pointer("/metadata/deletionTimestamp").is_none()) {
            let name = |p: &str| t.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
            wanted.insert(
                (name("/metadata/namespace"), name("/metadata/name")),
                t.get("spec").cloned().unwrap_or_default(),
            );
        }
        self.jobs.retain(|key, (spec, job)| {
            let keep = wanted.get(key) == Some(spec);
            if !keep {
                job.abort();
            }
            keep
        });
        for (key, spec) in wanted {
            if self.jobs.contains_key(&key) {
                continue;
            }
            let Some(schedule) =
                spec.get("schedule").and_then(Value::as_str).and_then(|s| kelp_api::parse_schedule(s).ok())
            else {
                tracing::warn!(trigger = %format!("{}/{}", key.0, key.1), "invalid schedule; not scheduled");
                continue;
            };
            let job = tokio::spawn(run(self.platform.clone(), self.clock, key.clone(), spec.clone(), schedule));
            self.jobs.insert(key, (spec, job));
        }
    }
}

impl Drop for Cron {
    fn drop(&mut self) {
        for (_, job) in self.jobs.values() {
            job.abort();
        }
    }
}

async fn run(
    platform: Arc<Platform>,
    clock: Clock,
    (namespace, name): (String, String),
    spec: Value,
    schedule: croner::Cron,
) {
    let function = spec.get("function-name").and_then(Value::as_str).unwrap_or_default().to_string();
    let payload = spec.get("payload").filter(|p| !p.is_null()).map(Value::to_string);
    let mut after = clock.now();
    loop {
        let Ok(next) = schedule.find_next_occurrence(&after, false) else { return };
        tokio::time::sleep(clock.until(next)).await;
        after = next;
        let request = request(payload.as_deref(), &name);
        let response = platform.proxy(&namespace, &function, request).await;
        tracing::info!(trigger = %format!("{namespace}/{name}"), %function, status = response.status().as_u16(), "cron trigger fired");
    }
}

/// The request Kubeless's CronJob made (`curl -H ... [-d payload]`).
fn request(payload: Option<&str>, trigger: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let now = Utc::now();
    let builder = http::Request::builder()
        .method(if payload.is_some() { http::Method::POST } else { http::Method::GET })
        .uri("/")
        .header("event-id", format!("{trigger}-{}", now.timestamp_nanos_opt().unwrap_or_default()))
        .header("event-time", now.format("%Y-%m-%d %H:%M:%S+00:00").to_string())
        .header("event-namespace", EVENT_NAMESPACE)
        .header("event-type", "application/json")
        .header("content-type", "application/json")
        .header("user-agent", concat!("kelp-cron/", env!("CARGO_PKG_VERSION")));
    let body = payload.map(|p| bytes::Bytes::copy_from_slice(p.as_bytes())).unwrap_or_default();
    builder.body(http_body_util::Full::new(body)).expect("the request parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_kubeless_headers() {
        let r = request(Some(r#"{"a":1}"#), "every-minute");
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(r.headers()["event-namespace"], EVENT_NAMESPACE);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(r.headers()["event-time"].to_str().unwrap().ends_with("+00:00"));
        assert_eq!(request(None, "t").method(), http::Method::GET);
    }

    #[test]
    fn a_sped_up_clock_runs_faster() {
        let clock = Clock::sped_up(60.0);
        let in_a_minute = clock.now() + chrono::Duration::seconds(60);
        let wait = clock.until(in_a_minute);
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900), "{wait:?}");
    }

    #[test]
    fn any_speed_gives_a_clock_that_cannot_overflow() {
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE, 1e300] {
            let clock = Clock::sped_up(speed);
            let far = DateTime::<Utc>::MAX_UTC;
            assert!(clock.until(far) > Duration::ZERO, "{speed}");
            assert!(clock.until(clock.now() + chrono::Duration::seconds(60)) > Duration::ZERO, "{speed}");
        }
    }
}
