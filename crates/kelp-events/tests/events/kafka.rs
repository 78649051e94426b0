//! Kafka: delivery with Kubeless's event fields, retries, dead letters, order per partition,
//! consumer groups and their rebalances, stopping, and a broker restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kelp_brokers::Kafka;
use kelp_events::{Consumer, KafkaSettings, Metrics, Source, Subscription, kafka, topics};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::support::{Functions, metric, random_text, subscribed, subscription, unique};

fn settings(kafka: &Kafka) -> KafkaSettings {
    KafkaSettings::from_env(Some(kafka.bootstrap()), |_| None)
}

fn start(kafka: &Kafka, subscription: &Subscription, functions: &Arc<Functions>, metrics: &Arc<Metrics>) -> Consumer {
    kafka::start(&settings(kafka), subscription.clone(), functions.clone(), metrics.clone()).unwrap()
}

async fn topic(kafka: &Kafka, partitions: i32) -> String {
    let name = unique("topic");
    topics::create(&settings(kafka), &name, partitions, 1).await.unwrap();
    name
}

async fn publish(kafka: &Kafka, topic: &str, key: Option<&str>, payload: &str) {
    topics::publish(&settings(kafka), topic, key.map(str::as_bytes), payload.as_bytes()).await.unwrap();
}

/// Publishes `m0`, `m1`, ... up to `count` at once through one producer.
async fn publish_many(kafka: &Kafka, topic: &str, count: usize) {
    let producer: FutureProducer = settings(kafka).client_config().create().unwrap();
    let payloads: Vec<String> = (0..count).map(|n| format!("m{n}")).collect();
    let sends = payloads.iter().map(|payload| {
        producer.send(FutureRecord::<[u8], [u8]>::to(topic).payload(payload.as_bytes()), Duration::from_secs(30))
    });
    for sent in futures_util::future::join_all(sends).await {
        sent.unwrap();
    }
}

/// A plain member of consumer group `group` subscribed to `topic`, kept in the group by a task
/// that polls it (it takes part in rebalances only while polled).
struct Member {
    consumer: Arc<StreamConsumer>,
    polling: Option<tokio::task::JoinHandle<()>>,
}

impl Member {
    /// Joins `group` and waits until the group assigned this member its partitions of `topic`.
    async fn join(kafka: &Kafka, group: &str, topic: &str) -> Member {
        let consumer: StreamConsumer = settings(kafka).client_config().set("group.id", group).create().unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut member = Member { consumer: Arc::new(consumer), polling: None };
        member.poll();
        let deadline = std::time::Instant::now() + crate::support::PATIENCE;
        while member.consumer.assignment().unwrap().count() == 0 {
            assert!(std::time::Instant::now() < deadline, "{group}: nothing assigned to the member");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        member
    }

    /// Polls the member (serving its rebalances) until [`Member::stop_polling`].
    fn poll(&mut self) {
        let consumer = self.consumer.clone();
        self.polling = Some(tokio::spawn(async move {
            loop {
                let _ = consumer.recv().await;
            }
        }));
    }

    /// Stops polling: a rebalance of the group then waits for this member.
    async fn stop_polling(&mut self) {
        if let Some(polling) = self.polling.take() {
            polling.abort();
            let _ = polling.await;
        }
    }

    /// Leaves the group.
    async fn leave(mut self) {
        self.stop_polling().await;
        let consumer = self.consumer;
        tokio::task::spawn_blocking(move || drop(consumer)).await.unwrap();
    }
}

#[tokio::test]
async fn a_published_message_reaches_the_function_with_kubeless_event_fields() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 1).await;
    let (functions, metrics) = (Functions::ok(), Arc::new(Metrics::default()));
    let subscription = subscription(Source::Kafka, &topic, "pubsub-python", &[]);
    let consumer = start(kafka, &subscription, &functions, &metrics);
    // Published before the consumer joined its group: the group starts at the trigger's creation.
    let payload = format!(r#"{{"payload":"{}"}}"#, random_text());
    publish(kafka, &topic, None, &payload).await;
    let calls = functions.wait_for("the message", |calls| !calls.is_empty()).await;
    let call = &calls[0];
    assert_eq!(call.text(), payload);
    assert_eq!(call.function, "pubsub-python");
    assert_eq!(call.header("event-namespace"), "kafkatriggers.kubeless.io");
    assert_eq!(call.header("event-topic"), topic);
    assert_eq!(call.header("event-type"), "application/json");
    assert_eq!(call.header("content-type"), "application/json");
    assert!(call.header("event-time").ends_with(" +0000 UTC"), "{}", call.header("event-time"));
    assert_eq!(call.header("event-id").len(), 16);
    assert!(call.header("user-agent").starts_with("kubeless-kafka-trigger-controller/"));
    publish(kafka, &topic, None, "plain text").await;
    let calls = functions.wait_for("the second message", |calls| calls.len() == 2).await;
    assert_eq!(calls[1].header("event-type"), "application/x-www-form-urlencoded");
    assert!(consumer.status().subscribed, "{:?}", consumer.status());
    assert_eq!(metric(&metrics, "kelp_trigger_messages_delivered_total", &subscription), 2.0);
    consumer.stop().await;
}

#[tokio::test]
async fn a_function_failing_three_times_then_succeeding_gets_the_message_and_the_retries_are_counted() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 1).await;
    let functions = Functions::answering(|_, before| if before.len() < 3 { 500 } else { 200 });
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Kafka, &topic, "flaky", &[]);
    let consumer = start(kafka, &subscription, &functions, &metrics);
    publish(kafka, &topic, None, "hello").await;
    let calls = functions.wait_for("four calls", |calls| calls.len() == 4).await;
    let ids: BTreeSet<String> = calls.iter().map(|c| c.header("event-id")).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same event-id: {ids:?}");
    let delivered = || metric(&metrics, "kelp_trigger_messages_delivered_total", &subscription);
    while delivered() < 1.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&metrics, "kelp_trigger_message_retries_total", &subscription), 3.0);
    assert_eq!(metric(&metrics, "kelp_trigger_messages_dead_lettered_total", &subscription), 0.0);
    assert!(consumer.status().last_error.unwrap().contains("500"));
    consumer.stop().await;
}

#[tokio::test]
async fn a_message_that_always_fails_lands_in_the_dead_letter_topic_with_the_reason() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 1).await;
    let functions = Functions::answering(|call, _| if call.text() == "poison" { 500 } else { 200 });
    let metrics = Arc::new(Metrics::default());
    let dead_letter = unique("dead-letter");
    let subscription = subscription(
        Source::Kafka,
        &topic,
        "strict",
        &[(kelp_events::RETRIES, "2"), (kelp_events::DEAD_LETTER, &dead_letter)],
    );
    let consumer = start(kafka, &subscription, &functions, &metrics);
    publish(kafka, &topic, Some("k1"), "poison").await;
    publish(kafka, &topic, None, "fine").await;
    let calls = functions
        .wait_for("the good message after the bad one", |calls| calls.iter().any(|c| c.text() == "fine"))
        .await;
    assert_eq!(calls.iter().filter(|c| c.text() == "poison").count(), 3, "one call and two retries");

    let reader: StreamConsumer = settings(kafka)
        .client_config()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&[&dead_letter]).unwrap();
    let letter = tokio::time::timeout(crate::support::PATIENCE, reader.recv()).await.unwrap().unwrap();
    assert_eq!(letter.payload(), Some(&b"poison"[..]));
    assert_eq!(letter.key(), Some(&b"k1"[..]));
    let headers: BTreeMap<String, String> = letter
        .headers()
        .unwrap()
        .iter()
        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
        .collect();
    let reason = &headers[kafka::DEAD_LETTER_REASON];
    assert!(reason.contains("function strict answered 500") && reason.contains("after 3 attempts"), "{reason}");
    assert_eq!(headers["kelp-source-topic"], topic);
    assert_eq!(headers["kelp-function"], "strict");
    assert_eq!(metric(&metrics, "kelp_trigger_messages_dead_lettered_total", &subscription), 1.0);
    assert_eq!(metric(&metrics, "kelp_trigger_message_retries_total", &subscription), 2.0);
    consumer.stop().await;
}

#[tokio::test]
async fn order_is_kept_per_key_over_two_partitions_while_some_calls_fail() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 2).await;
    // Every fifth message fails once: a retry must not let the next message of its key pass it.
    let functions = Functions::answering(|call, before| {
        let n: u32 = call.text().split(':').nth(1).unwrap().parse().unwrap();
        if n.is_multiple_of(5) && !before.iter().any(|c| c.body == call.body) { 503 } else { 200 }
    });
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Kafka, &topic, "ordered", &[(kelp_events::CONCURRENCY, "2")]);
    let consumer = start(kafka, &subscription, &functions, &metrics);
    let keys = ["apple", "banana", "cherry", "damson"];
    let per_key = 50;
    let settings = settings(kafka);
    for n in 0..per_key {
        for key in keys {
            topics::publish(&settings, &topic, Some(key.as_bytes()), format!("{key}:{n}").as_bytes()).await.unwrap();
        }
    }
    let total = keys.len() * per_key;
    let calls = functions
        .wait_for("every message delivered", |calls| {
            calls.iter().map(|c| c.text()).collect::<BTreeSet<_>>().len() == total
        })
        .await;
    let mut partitions = BTreeSet::new();
    for key in keys {
        let delivered: Vec<u32> = calls
            .iter()
            .map(|c| c.text())
            .filter(|t| t.starts_with(&format!("{key}:")))
            .map(|t| t.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        let mut deduplicated = delivered.clone();
        deduplicated.dedup();
        assert_eq!(deduplicated, (0..per_key as u32).collect::<Vec<_>>(), "key {key}: {delivered:?}");
        let (partition, _) = topics::publish(&settings, &topic, Some(key.as_bytes()), b"probe").await.unwrap();
        partitions.insert(partition);
    }
    assert_eq!(partitions.len(), 2, "the keys spread over both partitions");
    consumer.stop().await;
}

#[tokio::test]
async fn two_consumers_of_one_group_split_the_partitions_and_each_message_is_delivered_once() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 2).await;
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Kafka, &topic, "shared", &[]);
    let (first, second) = (Functions::ok(), Functions::ok());
    let one = start(kafka, &subscription, &first, &metrics);
    // The second joins once the first holds both partitions and delivers: a rebalance in the
    // middle of the stream, which gives one partition to each (or one back to the first).
    let mut two = None;
    let settings = settings(kafka);
    let mut n = 0;
    while first.calls().is_empty() || second.calls().is_empty() {
        if two.is_none() && !first.calls().is_empty() {
            two = Some(start(kafka, &subscription, &second, &metrics));
        }
        topics::publish(&settings, &topic, Some(format!("k{n}").as_bytes()), format!("m{n}").as_bytes()).await.unwrap();
        n += 1;
        assert!(n < 5000, "one consumer got every message");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = || first.calls().into_iter().chain(second.calls()).map(|c| c.text()).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while all().iter().collect::<BTreeSet<_>>().len() < n {
        let delivered = all();
        let missing: Vec<String> = (0..n).map(|m| format!("m{m}")).filter(|m| !delivered.contains(m)).collect();
        assert!(std::time::Instant::now() < deadline, "{n} messages published, never delivered: {missing:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A rebalance commits what was delivered before the partitions move: no duplicates either.
    assert_eq!(all().len(), n, "{:?}", all());
    one.stop().await;
    two.unwrap().stop().await;
}

#[tokio::test]
async fn a_partition_paused_for_back_pressure_is_fetched_again_when_a_rebalance_gives_it_back_to_its_consumer() {
    let kafka = Kafka::shared();
    let (topic, other) = (topic(kafka, 1).await, topic(kafka, 1).await);
    // The function fails until the gate opens: the worker retries the first message while the
    // others pile up behind it until the partition is paused (1,000 waiting, kafka::PAUSE_AT).
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let functions = Functions::answering(move |_, _| if gate.load(Ordering::Relaxed) { 200 } else { 503 });
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Kafka, &topic, "backlog", &[(kelp_events::RETRIES, "1000")]);
    let consumer = start(kafka, &subscription, &functions, &metrics);
    subscribed(&consumer).await;
    let count = 1200;
    publish_many(kafka, &topic, count).await;
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while metric(&metrics, "kelp_trigger_messages_consumed_total", &subscription) < 1000.0 {
        assert!(std::time::Instant::now() < deadline, "the backlog never reached the pause");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A member joining the group for another topic: every partition is revoked and the topic's
    // one is assigned again to the same consumer.
    let member = Member::join(kafka, &subscription.group(), &other).await;
    open.store(true, Ordering::Relaxed);
    let calls = functions
        .wait_for("every message after the rebalance", |calls| {
            calls.iter().map(|c| c.text()).collect::<BTreeSet<_>>().len() == count
        })
        .await;
    assert!(calls.iter().any(|c| c.text() == format!("m{}", count - 1)));
    member.leave().await;
    consumer.stop().await;
}

#[tokio::test]
async fn a_consumer_is_subscribed_once_its_group_assigned_it_partitions_and_not_before() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 1).await;
    let metrics = Arc::new(Metrics::default());
    // No start time: a new group's start offsets cannot be committed while the member is in it.
    let subscription = Subscription { since: None, ..subscription(Source::Kafka, &topic, "joining", &[]) };
    // A member that holds the partition and stops polling: the group's rebalance for the
    // consumer joining waits for it.
    let mut member = Member::join(kafka, &subscription.group(), &topic).await;
    member.stop_polling().await;
    let functions = Functions::ok();
    let consumer = start(kafka, &subscription, &functions, &metrics);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!consumer.status().subscribed, "subscribed while its group was still rebalancing");
    member.leave().await;
    subscribed(&consumer).await;
    publish(kafka, &topic, None, "after joining").await;
    functions.wait_for("the message", |calls| !calls.is_empty()).await;
    consumer.stop().await;
}

#[tokio::test]
async fn every_member_of_a_group_larger_than_its_topic_is_subscribed_even_with_no_partition() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 1).await;
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Kafka, &topic, "crowded", &[]);
    let functions = Functions::ok();
    // Three consumers for one partition: two of them are assigned nothing, an empty assignment.
    let consumers: Vec<Consumer> = (0..3).map(|_| start(kafka, &subscription, &functions, &metrics)).collect();
    for consumer in &consumers {
        subscribed(consumer).await;
    }
    publish(kafka, &topic, None, "one").await;
    functions.wait_for("the message", |calls| !calls.is_empty()).await;
    for consumer in consumers {
        consumer.stop().await;
    }
    assert_eq!(functions.calls().len(), 1);
}

#[tokio::test]
async fn a_stopped_consumer_consumes_nothing_and_its_group_resumes_where_it_stopped() {
    let kafka = Kafka::shared();
    let topic = topic(kafka, 1).await;
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Kafka, &topic, "stoppable", &[]);
    let functions = Functions::ok();
    let consumer = start(kafka, &subscription, &functions, &metrics);
    publish(kafka, &topic, None, "before").await;
    functions.wait_for("the first message", |calls| calls.len() == 1).await;
    consumer.stop().await;
    publish(kafka, &topic, None, "while stopped").await;
    // Nothing consumes it now; a consumer of the same group started later gets it, and only it.
    let later = Functions::ok();
    let consumer = start(kafka, &subscription, &later, &metrics);
    let calls = later.wait_for("the message published while stopped", |calls| !calls.is_empty()).await;
    assert_eq!(calls[0].text(), "while stopped");
    assert_eq!(functions.calls().len(), 1);
    consumer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_resumes_by_itself_after_the_broker_is_stopped_and_started_again() {
    let kafka = Kafka::start();
    let topic = topic(&kafka, 1).await;
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Kafka, &topic, "resilient", &[]);
    let functions = Functions::ok();
    let consumer = start(&kafka, &subscription, &functions, &metrics);
    publish(&kafka, &topic, None, "before").await;
    functions.wait_for("the first message", |calls| calls.len() == 1).await;
    tokio::task::block_in_place(|| kafka.stop());
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while consumer.status().subscribed {
        assert!(std::time::Instant::now() < deadline, "the consumer did not notice the broker is gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(consumer.status().last_error.is_some());
    tokio::task::block_in_place(|| kafka.start_again());
    publish(&kafka, &topic, None, "after").await;
    functions.wait_for("the message after the restart", |calls| calls.iter().any(|c| c.text() == "after")).await;
    subscribed(&consumer).await;
    assert_eq!(consumer.status().last_error, None, "the outage's error does not outlive it");
    consumer.stop().await;
}
