//! What a consumer is asked to do ([`Subscription`]), the handle its host keeps ([`Consumer`]),
//! and what the consumer's task and its host share: its state, its series and the stop signal.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::Metrics;
use crate::event::Source;
use crate::metrics::Counters;
use crate::policy::Policy;

/// How long [`Consumer::stop`] waits for the consumer to finish (leave its group, commit).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One function called for each message of one trigger's topic or subject.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// Kafka, NATS or Kinesis.
    pub source: Source,
    /// The trigger's (and the function's) namespace.
    pub namespace: String,
    /// The trigger's name.
    pub trigger: String,
    /// The function's name.
    pub function: String,
    /// The topic (Kafka), subject (NATS, wildcards allowed) or stream (Kinesis).
    pub topic: String,
    /// Kinesis: the shard, where, and the credentials.
    pub kinesis: Option<crate::kinesis::Shard>,
    /// Retries, dead letter, concurrency, durability.
    pub policy: Policy,
    /// Where a new consumer group starts: the messages published since (`kelp up` gives the
    /// time both the trigger and the function existed). A group with committed offsets continues
    /// from them.
    pub since: Option<SystemTime>,
}

impl Subscription {
    /// Kubeless's name of the consumer group (Kafka) and queue group (NATS):
    /// `<namespace>_<trigger>_<function>_<topic>`. Kelp keeps it, so the offsets a Kubeless
    /// trigger committed carry over, and replicas of a consumer share the work.
    pub fn group(&self) -> String {
        group_name(&self.namespace, &self.trigger, &self.function, &self.topic)
    }
}

/// Kubeless's consumer and queue group name: `<namespace>_<trigger>_<function>_<topic>`.
pub(crate) fn group_name(namespace: &str, trigger: &str, function: &str, topic: &str) -> String {
    format!("{namespace}_{trigger}_{function}_{topic}")
}

/// What a consumer reports, for its trigger's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStatus {
    /// Connected to the broker and subscribed. Kafka: once the consumer group assigned this
    /// consumer its partitions, none included (a group with more members than the topic has
    /// partitions); not while the topic does not exist yet.
    pub subscribed: bool,
    /// The latest error (a failed call, the broker unreachable, a dead letter not written),
    /// until the consumer is subscribed again after losing its subscription: an error of the
    /// outage does not outlive it.
    pub last_error: Option<String>,
    /// Kafka: messages in the assigned partitions not yet delivered (`None` until known).
    pub lag: Option<i64>,
    /// Kinesis: how far behind the shard's latest record the last read one is, in
    /// milliseconds (`None` until known).
    pub millis_behind_latest: Option<i64>,
}

/// A running consumer. Dropping it without [`Consumer::stop`] also stops it, abruptly.
#[derive(Debug)]
pub struct Consumer {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Consumer {
    /// Runs `task` (given the shared state and the stop signal) as the consumer of `shared`.
    pub(crate) fn spawn<F, Fut>(shared: Arc<Shared>, metrics: Arc<Metrics>, task: F) -> Consumer
    where
        F: FnOnce(Arc<Shared>, Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(task(shared.clone(), Stop { stopped, revoked: None }));
        Consumer { shared, stop, task: Some(task), metrics }
    }

    /// What it is subscribed to.
    pub fn subscription(&self) -> &Subscription {
        &self.shared.subscription
    }

    /// Its current state.
    pub fn status(&self) -> ConsumerStatus {
        let state = &self.shared.state;
        let lag = self.shared.counters.lag.get();
        let source = self.shared.subscription.source;
        ConsumerStatus {
            subscribed: state.subscribed.load(Ordering::Relaxed),
            last_error: state.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            lag: (source == crate::Source::Kafka && lag >= 0 && state.lag_known()).then_some(lag),
            millis_behind_latest: (source == crate::Source::Kinesis && state.lag_known())
                .then(|| self.shared.counters.behind.get()),
        }
    }

    /// Stops consuming: a call in progress is abandoned (its message is not committed or
    /// acknowledged, so it is delivered again later), delivered offsets are committed, the
    /// consumer leaves its group, and its series are removed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err()
        {
            tracing::warn!(group = %self.shared.subscription.group(), "consumer did not stop in time");
            task.abort();
        }
        self.metrics.forget(&self.shared.subscription);
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What a consumer's task and its handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) subscription: Subscription,
    pub(crate) counters: Counters,
    pub(crate) state: State,
}

impl Shared {
    pub(crate) fn new(subscription: Subscription, metrics: &Metrics) -> Arc<Shared> {
        let counters = metrics.counters(&subscription);
        Arc::new(Shared { subscription, counters, state: State::default() })
    }
}

/// A consumer's connection state and latest error.
#[derive(Debug, Default)]
pub(crate) struct State {
    subscribed: AtomicBool,
    lag_known: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl State {
    /// Records an error (logged once per distinct text).
    pub(crate) fn failed(&self, error: &str) {
        let mut last = self.last_error.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() != Some(error) {
            tracing::warn!(%error, "event consumer");
            *last = Some(error.to_owned());
        }
    }

    /// Whether the consumer is connected and subscribed. Subscribing (again) forgets the error of
    /// the time it was not.
    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        if !self.subscribed.swap(subscribed, Ordering::Relaxed) && subscribed {
            *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// The lag gauge holds a measured value.
    pub(crate) fn set_lag_known(&self) {
        self.lag_known.store(true, Ordering::Relaxed);
    }

    fn lag_known(&self) -> bool {
        self.lag_known.load(Ordering::Relaxed)
    }
}

/// The stop signal, as the consumer's task sees it; a Kafka partition's worker also stops when
/// its partition is revoked.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    stopped: watch::Receiver<bool>,
    revoked: Option<watch::Receiver<bool>>,
}

impl Stop {
    /// This signal, raised as well when `revoked` turns true.
    pub(crate) fn or_revoked(&self, revoked: watch::Receiver<bool>) -> Stop {
        Stop { stopped: self.stopped.clone(), revoked: Some(revoked) }
    }

    /// Whether the consumer (or the worker) is to stop.
    pub(crate) fn is_stopped(&self) -> bool {
        *self.stopped.borrow() || self.revoked.as_ref().is_some_and(|revoked| *revoked.borrow())
    }

    /// `future`'s output, or `None` when the consumer (or the worker) is stopped first.
    pub(crate) async fn unless_stopped<F: Future>(&mut self, future: F) -> Option<F::Output> {
        if self.is_stopped() {
            return None;
        }
        let Stop { stopped, revoked } = self;
        let revoked = async {
            match revoked {
                Some(revoked) => drop(revoked.wait_for(|revoked| *revoked).await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            output = future => Some(output),
            _ = stopped.wait_for(|stopped| *stopped) => None,
            () = revoked => None,
        }
    }
}
