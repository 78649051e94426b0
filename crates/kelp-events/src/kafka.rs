//! The Kafka consumer of one [`Subscription`]: a consumer group (Kubeless's name), offsets
//! stored only once the function answered 2xx or the message is in the dead-letter topic, and
//! committed from there (librdkafka's auto-commit of *stored* offsets, every second and when
//! partitions are revoked or the consumer closes).
//!
//! Each assigned partition has a worker that delivers its messages in order; the policy's
//! `concurrency` bounds how many partitions are delivering at once. A partition whose worker
//! falls [`PAUSE_AT`] messages behind is paused until it is down to [`RESUME_AT`], so a slow or
//! failing function holds back its own partition only. A revoked partition's worker stops at
//! once (even in the middle of retries) and stores nothing more: the partition's new owner
//! starts from the committed offset. Each assignment of a partition, to another consumer or
//! again to this one, gets a new worker, and the partition is resumed then: librdkafka keeps an
//! application's pause across a revocation, so a partition paused by its previous worker would
//! otherwise never be fetched again.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::consumer::{Consumer, Shared, Stop};
use crate::deliver::{Outcome, deliver, until_done};
use crate::event::{Event, Source};
use crate::invoke::Invoke;
use crate::{Error, KafkaSettings, Metrics, Subscription};

/// Messages waiting in a partition's worker at which the partition is paused.
const PAUSE_AT: usize = 1000;
/// ... and at which it is resumed.
const RESUME_AT: usize = 100;
/// Bound on the blocking calls made when a consumer starts (metadata, offsets).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries at starting a new group at the subscription's `since` before falling back to the earliest
/// offsets (duplicates rather than losses).
const SEED_ATTEMPTS: u32 = 20;
/// Headers a dead letter carries besides the original message's.
pub const DEAD_LETTER_REASON: &str = "kelp-dead-letter-reason";

type KafkaConsumer = StreamConsumer<Context>;

/// Starts consuming `subscription` from the brokers of `settings`, calling `invoker`.
pub fn start<I: Invoke>(
    settings: &KafkaSettings,
    subscription: Subscription,
    invoker: Arc<I>,
    metrics: Arc<Metrics>,
) -> Result<Consumer, Error> {
    let shared = Shared::new(subscription, &metrics);
    let group = shared.subscription.group();
    let mut config = settings.client_config();
    config
        .set("group.id", &group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // A trigger may come before its topic: as Kubeless's consumers (Sarama) did, subscribing
        // creates the topic on brokers that allow it (`auto.create.topics.enable`, Kafka's
        // default); elsewhere the status says the topic is unknown until it is created.
        .set("allow.auto.create.topics", "true")
        .set("statistics.interval.ms", "1000");
    let context = Context { shared: shared.clone(), assigned: Mutex::default() };
    let consumer: KafkaConsumer = config.create_with_context(context).map_err(kafka_error)?;
    let dead_letters = DeadLetters { config: settings.client_config(), producer: tokio::sync::OnceCell::new() };
    Ok(Consumer::spawn(shared, metrics, move |shared, stop| {
        run(Arc::new(consumer), dead_letters, shared, invoker, stop)
    }))
}

async fn run<I: Invoke>(
    consumer: Arc<KafkaConsumer>,
    dead_letters: DeadLetters,
    shared: Arc<Shared>,
    invoker: Arc<I>,
    mut stop: Stop,
) {
    let subscription = &shared.subscription;
    if let Some(since) = subscription.since {
        // The group's coordinator may not be ready yet (a new group, a broker starting).
        let seed = || {
            let (seeding, topic) = (consumer.clone(), subscription.topic.clone());
            async move {
                let seeded = tokio::task::spawn_blocking(move || seed_offsets(&seeding, &topic, since)).await;
                seeded.map_err(|e| e.to_string())?.map_err(|e| format!("starting the group at its start time: {e}"))
            }
        };
        for attempt in 1..=SEED_ATTEMPTS {
            match stop.unless_stopped(seed()).await {
                None => return,
                Some(Ok(())) => break,
                Some(Err(e)) if attempt == SEED_ATTEMPTS => shared.state.failed(&e),
                Some(Err(_)) => {
                    if stop.unless_stopped(tokio::time::sleep(Duration::from_millis(500))).await.is_none() {
                        return;
                    }
                }
            }
        }
    }
    // Subscribed once the group's first assignment arrives (see `post_rebalance`).
    if let Err(e) = consumer.subscribe(&[&subscription.topic]) {
        shared.state.failed(&format!("subscribing to {}: {e}", subscription.topic));
        return;
    }
    let partitions = Partitions {
        consumer: consumer.clone(),
        dead_letters,
        shared: shared.clone(),
        invoker,
        permits: Arc::new(Semaphore::new(subscription.policy.concurrency)),
    };
    let partitions = Arc::new(partitions);
    let mut workers: HashMap<i32, Worker> = HashMap::new();
    while let Some(received) = stop.unless_stopped(consumer.recv()).await {
        let message = match received {
            Ok(message) => message.detach(),
            Err(e) => {
                shared.state.failed(&format!("consuming {}: {e}", subscription.topic));
                if stop.unless_stopped(tokio::time::sleep(Duration::from_millis(200))).await.is_none() {
                    break;
                }
                continue;
            }
        };
        // A message means an assignment, also after the brokers were unreachable for a while.
        shared.state.set_subscribed(true);
        shared.counters.consumed.inc();
        if let Some(worker) = current_worker(&mut workers, &partitions, message.partition(), &stop) {
            worker.push(&partitions, message);
        }
    }
    // The workers see the stop signal and end; closing the consumer then commits what they
    // stored and leaves the group (blocking calls).
    for worker in workers.into_values() {
        let _ = worker.task.await;
    }
    drop(partitions);
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
}

/// The worker of `partition`'s current assignment, started when the assignment is new. `None`
/// when the partition is not assigned (its next owner fetches the message again).
fn current_worker<'a, I: Invoke>(
    workers: &'a mut HashMap<i32, Worker>,
    partitions: &Arc<Partitions<I>>,
    partition: i32,
    stop: &Stop,
) -> Option<&'a Worker> {
    if workers.get(&partition).is_none_or(|worker| *worker.revoked.borrow()) {
        let revoked = partitions.consumer.context().assignment(partition)?;
        workers.insert(partition, Worker::start(partitions, partition, revoked, stop));
    }
    workers.get(&partition)
}

/// The producer of dead letters, made when the first one is written (most consumers never
/// write one, and every librdkafka client has threads of its own).
struct DeadLetters {
    config: rdkafka::ClientConfig,
    producer: tokio::sync::OnceCell<FutureProducer>,
}

impl DeadLetters {
    async fn get(&self) -> Result<&FutureProducer, String> {
        self.producer.get_or_try_init(|| async { self.config.create().map_err(|e: KafkaError| e.to_string()) }).await
    }
}

/// What every partition worker of a consumer shares.
struct Partitions<I> {
    consumer: Arc<KafkaConsumer>,
    dead_letters: DeadLetters,
    shared: Arc<Shared>,
    invoker: Arc<I>,
    permits: Arc<Semaphore>,
}

impl<I> Partitions<I> {
    /// Pauses or resumes fetching `partition`.
    fn pause_or_resume(&self, partition: i32, pause: bool) {
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.shared.subscription.topic, partition);
        let result = if pause { self.consumer.pause(&list) } else { self.consumer.resume(&list) };
        if let Err(e) = result {
            tracing::debug!(partition, pause, error = %e, "pausing or resuming a partition");
        }
    }
}

/// The in-order delivery of one assignment of a partition.
struct Worker {
    tx: mpsc::UnboundedSender<OwnedMessage>,
    waiting: Arc<AtomicUsize>,
    paused: Arc<AtomicBool>,
    /// Turns true when the assignment is revoked.
    revoked: watch::Receiver<bool>,
    partition: i32,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Starts delivering the messages of `partition`'s assignment that `revoked` ends.
    fn start<I: Invoke>(
        partitions: &Arc<Partitions<I>>,
        partition: i32,
        revoked: watch::Receiver<bool>,
        stop: &Stop,
    ) -> Worker {
        let (tx, rx) = mpsc::unbounded_channel();
        let (waiting, paused) = (Arc::<AtomicUsize>::default(), Arc::<AtomicBool>::default());
        let task = PartitionTask {
            partitions: partitions.clone(),
            partition,
            revoked: revoked.clone(),
            waiting: waiting.clone(),
            paused: paused.clone(),
        };
        let task = tokio::spawn(task.run(rx, stop.or_revoked(revoked.clone())));
        Worker { tx, waiting, paused, revoked, partition, task }
    }

    /// Queues `message`, pausing the partition when the worker is [`PAUSE_AT`] behind.
    fn push<I>(&self, partitions: &Partitions<I>, message: OwnedMessage) {
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = self.tx.send(message);
        if waiting >= PAUSE_AT && !self.paused.swap(true, Ordering::AcqRel) {
            partitions.pause_or_resume(self.partition, true);
        }
    }
}

/// A [`Worker`]'s task.
struct PartitionTask<I> {
    partitions: Arc<Partitions<I>>,
    partition: i32,
    revoked: watch::Receiver<bool>,
    waiting: Arc<AtomicUsize>,
    paused: Arc<AtomicBool>,
}

impl<I: Invoke> PartitionTask<I> {
    /// Delivers the messages of `rx` in order until `stop` (the consumer's, or the revocation).
    async fn run(self, mut rx: mpsc::UnboundedReceiver<OwnedMessage>, mut stop: Stop) {
        let Partitions { shared, invoker, permits, .. } = &*self.partitions;
        while let Some(Some(message)) = stop.unless_stopped(rx.recv()).await {
            let Some(Ok(_permit)) = stop.unless_stopped(permits.acquire()).await else { return };
            let payload = bytes::Bytes::copy_from_slice(message.payload().unwrap_or_default());
            let event = Event::new(Source::Kafka, message.topic(), payload);
            match deliver(invoker.as_ref(), shared, &event, &mut stop).await {
                Outcome::Delivered => {}
                Outcome::Stopped => return,
                Outcome::Failed(reason) => {
                    if !self.dead_letter(&message, &reason, &mut stop).await {
                        return;
                    }
                    shared.counters.dead_lettered.inc();
                }
            }
            if !self.while_assigned(|| self.store(&message)) {
                return;
            }
            let waiting = self.waiting.fetch_sub(1, Ordering::AcqRel) - 1;
            if waiting <= RESUME_AT && self.paused.swap(false, Ordering::AcqRel) {
                self.while_assigned(|| self.partitions.pause_or_resume(self.partition, false));
            }
        }
    }

    /// Runs `action` if this worker's assignment was not revoked, holding off rebalances
    /// meanwhile; `false` when it was revoked.
    fn while_assigned(&self, action: impl FnOnce()) -> bool {
        self.partitions.consumer.context().while_assigned(&self.revoked, action)
    }

    /// Stores the offset after `message`'s, to be committed.
    fn store(&self, message: &OwnedMessage) {
        let Partitions { consumer, shared, .. } = &*self.partitions;
        let topic = &shared.subscription.topic;
        // librdkafka stores (and later commits) the offset after the one given.
        if let Err(e) = consumer.store_offset(topic, self.partition, message.offset()) {
            shared.state.failed(&format!("storing the offset of {topic}/{}: {e}", self.partition));
        }
    }

    /// Produces `message` to the dead-letter topic with its key, its headers and the reason,
    /// retrying until the broker acknowledges it. `false`: the consumer stopped (or the
    /// partition was revoked) first.
    async fn dead_letter(&self, message: &OwnedMessage, reason: &str, stop: &mut Stop) -> bool {
        let shared = &self.partitions.shared;
        let subscription = &shared.subscription;
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let offset = message.offset().to_string();
        let partition = self.partition.to_string();
        let trigger = format!("{}/{}", subscription.namespace, subscription.trigger);
        for (key, value) in [
            (DEAD_LETTER_REASON, reason),
            ("kelp-source-topic", message.topic()),
            ("kelp-source-partition", partition.as_str()),
            ("kelp-source-offset", offset.as_str()),
            ("kelp-trigger", trigger.as_str()),
            ("kelp-function", subscription.function.as_str()),
        ] {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        let what = format!("writing a dead letter to {}", subscription.policy.dead_letter);
        until_done(shared, &what, stop, || async {
            let mut record = FutureRecord::<[u8], [u8]>::to(&subscription.policy.dead_letter)
                .payload(message.payload().unwrap_or_default())
                .headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            let producer = self.partitions.dead_letters.get().await?;
            producer.send(record, Duration::from_secs(30)).await.map(drop).map_err(|(e, _)| e.to_string())
        })
        .await
    }
}

/// The consumer's callbacks: the partitions assigned, connection errors and the lag from
/// librdkafka's statistics.
struct Context {
    shared: Arc<Shared>,
    /// Each assigned partition with the signal that its assignment was revoked.
    assigned: Mutex<HashMap<i32, watch::Sender<bool>>>,
}

impl Context {
    /// The revocation signal of `partition`'s assignment; `None` when it is not assigned.
    fn assignment(&self, partition: i32) -> Option<watch::Receiver<bool>> {
        self.assigned.lock().unwrap_or_else(PoisonError::into_inner).get(&partition).map(watch::Sender::subscribe)
    }

    /// Runs `action` unless `revoked` is raised. Rebalances wait for it (they take the same
    /// lock), so an offset stored or a partition resumed by `action` belongs to the assignment.
    fn while_assigned(&self, revoked: &watch::Receiver<bool>, action: impl FnOnce()) -> bool {
        let _assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        if *revoked.borrow() {
            return false;
        }
        action();
        true
    }

    /// Records the partitions of `list` as assigned; returns those that were not already.
    fn assign(&self, list: &TopicPartitionList) -> TopicPartitionList {
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        let mut new = TopicPartitionList::new();
        for element in list.elements() {
            if let Entry::Vacant(vacant) = assigned.entry(element.partition()) {
                vacant.insert(watch::channel(false).0);
                new.add_partition(element.topic(), element.partition());
            }
        }
        new
    }

    /// Revokes the partitions of `list` (all of them when `None`): their workers stop.
    fn revoke(&self, list: Option<&TopicPartitionList>) {
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        let revoked: Vec<watch::Sender<bool>> = match list {
            Some(list) => list.elements().iter().filter_map(|e| assigned.remove(&e.partition())).collect(),
            None => assigned.drain().map(|(_, revoked)| revoked).collect(),
        };
        for revoked in revoked {
            revoked.send_replace(true);
        }
    }
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.shared.subscription.topic) else { return };
        let lag: i64 = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0)
            .map(|p| if p.consumer_lag_stored >= 0 { p.consumer_lag_stored } else { p.consumer_lag })
            .filter(|lag| *lag >= 0)
            .fold(0, i64::saturating_add);
        self.shared.counters.lag.set(lag);
        self.shared.state.set_lag_known();
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        ) {
            self.shared.state.set_subscribed(false);
        }
        self.shared.state.failed(&format!("kafka: {reason}"));
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // Before librdkafka starts fetching them: a pause of an earlier assignment of
                // the same partition outlives its revocation (librdkafka resets only its own).
                let new = self.assign(list);
                if new.count() > 0
                    && let Err(e) = consumer.resume(&new)
                {
                    tracing::debug!(error = %e, "resuming newly assigned partitions");
                }
            }
            Rebalance::Revoke(list) => self.revoke(Some(list)),
            // rdkafka then gives up the whole assignment (the eager protocol of the default
            // assignors).
            Rebalance::Error(_) => self.revoke(None),
        }
    }

    /// Subscribed once the group assigned this consumer its partitions, none included (a
    /// group with more members than the topic has partitions).
    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.shared.state.set_subscribed(true);
        }
    }
}

/// Commits, for each partition of `topic` on which the group has no offset yet, the offset of
/// the first message published at or after `since` (the end when there is none), so a new
/// trigger delivers what was published since its creation and nothing older. Partitions that
/// appear later (a topic created afterwards) start at their beginning.
///
/// The ends are read *before* the search: a message published between a search that found
/// nothing and a later read of the end would lie below that end and never be delivered.
fn seed_offsets(consumer: &KafkaConsumer, topic: &str, since: std::time::SystemTime) -> Result<(), KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), START_TIMEOUT)?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()) else {
        return Ok(());
    };
    let mut all = TopicPartitionList::new();
    for partition in found.partitions() {
        all.add_partition(topic, partition.id());
    }
    let committed = consumer.committed_offsets(all, START_TIMEOUT)?;
    let millis = since.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut times = TopicPartitionList::new();
    for element in committed.elements().iter().filter(|e| !matches!(e.offset(), Offset::Offset(_))) {
        times.add_partition_offset(topic, element.partition(), Offset::Offset(millis))?;
    }
    if times.count() == 0 {
        return Ok(());
    }
    let mut ends = HashMap::new();
    for element in times.elements() {
        ends.insert(element.partition(), consumer.fetch_watermarks(topic, element.partition(), START_TIMEOUT)?.1);
    }
    let found = consumer.offsets_for_times(times, START_TIMEOUT)?;
    let mut start = TopicPartitionList::new();
    for element in found.elements() {
        let offset = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => ends.get(&element.partition()).copied().unwrap_or_default(),
        };
        start.add_partition_offset(topic, element.partition(), Offset::Offset(offset))?;
    }
    consumer.commit(&start, CommitMode::Sync)
}

fn kafka_error(e: KafkaError) -> Error {
    Error::Kafka(e.to_string())
}
