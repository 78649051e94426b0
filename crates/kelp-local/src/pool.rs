//! Pre-warmed `kelp-runtime --prewarm` processes, per language: started with `FUNC_RUNTIME`
//! and a port, their interpreters up, waiting on stdin for a function. An instance takes one and
//! the pool starts a replacement in the background.

use crate::process::{Launcher, Mode, Process};
use http::StatusCode;
use kelp_runtime::language::{LANGUAGES, Language};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First wait after a pre-warmed process of a language failed to start; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The pools of every language.
#[derive(Debug)]
pub(crate) struct Pool {
    launcher: Arc<Launcher>,
    per_language: usize,
    state: Mutex<HashMap<&'static str, LanguagePool>>,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct LanguagePool {
    /// Listening (their `/healthz` answers 503), waiting for a function.
    warm: Vec<Process>,
    /// Being started.
    starting: usize,
    /// Consecutive failures to start one.
    failures: u32,
}

impl Pool {
    /// Starts `per_language` processes for every language.
    pub(crate) fn start(launcher: Arc<Launcher>, per_language: usize) -> Arc<Pool> {
        let pool = Arc::new(Pool { launcher, per_language, state: Mutex::default(), closed: AtomicBool::new(false) });
        for language in LANGUAGES {
            pool.refill(language);
        }
        pool
    }

    /// A warm process of `language`, if there is one. The caller starts its replacement
    /// ([`Pool::refill`]) when the process is no longer busy starting.
    pub(crate) fn take(self: &Arc<Self>, language: &'static Language) -> Option<Process> {
        let taken = {
            let mut state = self.state.lock().unwrap();
            let warm = &mut state.entry(language.name).or_default().warm;
            let mut found = None;
            while let Some(mut p) = warm.pop() {
                if !p.has_exited() {
                    found = Some(p);
                    break;
                }
            }
            found
        };
        if taken.is_none() {
            self.refill(language);
        }
        taken
    }

    /// Warm processes of `language`.
    pub(crate) fn warm(&self, language: &Language) -> usize {
        self.state.lock().unwrap().get(language.name).map_or(0, |p| p.warm.len())
    }

    /// Starts processes until `language` has `per_language` warm or starting; none for a
    /// compiled language, whose worker is its function's build (`kelp-runtime --prewarm` refuses it).
    pub(crate) fn refill(self: &Arc<Self>, language: &'static Language) {
        if language.build.is_some() {
            return;
        }
        let mut state = self.state.lock().unwrap();
        let entry = state.entry(language.name).or_default();
        while !self.closed.load(Ordering::Acquire) && entry.warm.len() + entry.starting < self.per_language {
            entry.starting += 1;
            let backoff =
                (entry.failures > 0).then(|| MIN_BACKOFF.saturating_mul(1 << entry.failures.min(6)).min(MAX_BACKOFF));
            tokio::spawn(self.clone().warm_up(language, backoff));
        }
    }

    /// Starts one process and adds it to the pool once it listens.
    async fn warm_up(self: Arc<Self>, language: &'static Language, backoff: Option<Duration>) {
        if let Some(delay) = backoff {
            tokio::time::sleep(delay).await;
        }
        let env = [("FUNC_RUNTIME".to_owned(), language.runtime_ids[0].to_owned())];
        let started = match self.launcher.spawn(Mode::Prewarm, &env, &[], 0) {
            Ok(mut process) => match process.wait_for_health(StatusCode::SERVICE_UNAVAILABLE).await {
                Ok(()) => Ok(process),
                Err(status) => Err(format!("{status}: {}", process.sink().recent().join("\n"))),
            },
            Err(e) => Err(e.to_string()),
        };
        let retry = {
            let mut state = self.state.lock().unwrap();
            let entry = state.entry(language.name).or_default();
            entry.starting -= 1;
            match started {
                Ok(process) if !self.closed.load(Ordering::Acquire) => {
                    entry.failures = 0;
                    entry.warm.push(process);
                    false
                }
                Ok(_) => false,
                Err(e) => {
                    entry.failures += 1;
                    if entry.failures == 1 {
                        tracing::warn!(language = language.name, error = %e, "a pre-warmed runtime failed to start");
                    }
                    true
                }
            }
        };
        if retry {
            self.refill(language);
        }
    }

    /// Stops every warm process and starts no more.
    pub(crate) async fn close(&self, grace: Duration) {
        self.closed.store(true, Ordering::Release);
        let warm: Vec<Process> = self.state.lock().unwrap().values_mut().flat_map(|p| p.warm.drain(..)).collect();
        futures_util::future::join_all(warm.into_iter().map(|p| p.stop(grace))).await;
    }
}
