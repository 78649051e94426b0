//! NATS: wildcard subjects, queue groups, dead-letter subjects, and JetStream with explicit acks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use kelp_brokers::Nats;
use kelp_events::{Consumer, Metrics, Source, Subscription, nats};

use crate::support::{Functions, PATIENCE, metric, random_text, subscribed, subscription, unique};

fn start(nats: &Nats, subscription: &Subscription, functions: &Arc<Functions>, metrics: &Arc<Metrics>) -> Consumer {
    nats::start(&nats.url(), subscription.clone(), functions.clone(), metrics.clone())
}

async fn client(nats: &Nats) -> async_nats::Client {
    async_nats::connect(nats.url()).await.unwrap()
}

#[tokio::test]
async fn wildcard_subjects_deliver_with_the_subject_published_to() {
    let server = Nats::shared();
    let prefix = unique("orders");
    let (functions, metrics) = (Functions::ok(), Arc::new(Metrics::default()));
    let subscription = subscription(Source::Nats, &format!("{prefix}.*"), "nats-python", &[]);
    let consumer = start(server, &subscription, &functions, &metrics);
    subscribed(&consumer).await;
    let publisher = client(server).await;
    let payload = format!(r#"{{"payload":"{}"}}"#, random_text());
    publisher.publish(format!("{prefix}.eu"), payload.clone().into()).await.unwrap();
    publisher.publish(format!("{prefix}.eu.paris"), "too deep for *".into()).await.unwrap();
    publisher.publish(format!("{prefix}.us"), "second".into()).await.unwrap();
    publisher.flush().await.unwrap();
    let calls = functions.wait_for("two messages", |calls| calls.len() == 2).await;
    assert_eq!(calls[0].text(), payload);
    assert_eq!(calls[0].header("event-topic"), format!("{prefix}.eu"));
    assert_eq!(calls[0].header("event-namespace"), "natstriggers.kubeless.io");
    assert_eq!(calls[0].header("event-type"), "application/json");
    assert!(calls[0].header("event-time").ends_with(" UTC"));
    assert_eq!(calls[1].header("event-topic"), format!("{prefix}.us"));
    assert_eq!(metric(&metrics, "kelp_trigger_messages_delivered_total", &subscription), 2.0);
    consumer.stop().await;
}

#[tokio::test]
async fn consumers_of_one_queue_group_share_the_messages() {
    let server = Nats::shared();
    let subject = unique("jobs");
    let metrics = Arc::new(Metrics::default());
    let subscription = subscription(Source::Nats, &subject, "worker", &[]);
    let (first, second) = (Functions::ok(), Functions::ok());
    let one = start(server, &subscription, &first, &metrics);
    let two = start(server, &subscription, &second, &metrics);
    subscribed(&one).await;
    subscribed(&two).await;
    let publisher = client(server).await;
    let mut n = 0;
    while first.calls().is_empty() || second.calls().is_empty() {
        publisher.publish(subject.clone(), format!("m{n}").into()).await.unwrap();
        publisher.flush().await.unwrap();
        n += 1;
        assert!(n < 5000, "one consumer got every message");
    }
    let all = || first.calls().into_iter().chain(second.calls()).map(|c| c.text()).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + PATIENCE;
    while all().len() < n {
        assert!(std::time::Instant::now() < deadline, "{} of {n} delivered", all().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = all();
    assert_eq!(delivered.iter().collect::<BTreeSet<_>>().len(), n, "each message once: {delivered:?}");
    assert_eq!(delivered.len(), n, "each message once: {delivered:?}");
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn a_message_that_always_fails_is_published_to_the_dead_letter_subject_with_the_reason() {
    let server = Nats::shared();
    let subject = unique("payments");
    let metrics = Arc::new(Metrics::default());
    let functions = Functions::answering(|_, _| 500);
    let subscription = subscription(Source::Nats, &subject, "broken", &[(kelp_events::RETRIES, "1")]);
    let watcher = client(server).await;
    let mut letters = watcher.subscribe(subscription.policy.dead_letter.clone()).await.unwrap();
    watcher.flush().await.unwrap();
    let consumer = start(server, &subscription, &functions, &metrics);
    subscribed(&consumer).await;
    let publisher = client(server).await;
    publisher.publish(subject.clone(), "poison".into()).await.unwrap();
    publisher.flush().await.unwrap();
    let letter = tokio::time::timeout(PATIENCE, letters.next()).await.unwrap().unwrap();
    assert_eq!(&letter.payload[..], b"poison");
    let headers = letter.headers.unwrap();
    let reason = headers.get(nats::DEAD_LETTER_REASON).unwrap().as_str();
    assert!(reason.contains("function broken answered 500") && reason.contains("after 2 attempts"), "{reason}");
    assert_eq!(headers.get("Kelp-Source-Subject").unwrap().as_str(), subject);
    assert_eq!(functions.calls().len(), 2);
    assert_eq!(metric(&metrics, "kelp_trigger_messages_dead_lettered_total", &subscription), 1.0);
    consumer.stop().await;
}

#[tokio::test]
async fn a_durable_trigger_consumes_through_jetstream_with_explicit_acks() {
    let server = Nats::shared();
    let subject = unique("events");
    let publisher = client(server).await;
    let jetstream = async_nats::jetstream::new(publisher.clone());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: subject.clone(),
            subjects: vec![format!("{subject}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut subscription =
        subscription(Source::Nats, &format!("{subject}.>"), "durable", &[(kelp_events::DURABLE, "true")]);
    subscription.since = Some(SystemTime::now() - Duration::from_secs(60));
    // Published before any consumer exists: JetStream keeps it for the trigger.
    jetstream.publish(format!("{subject}.early"), "early".into()).await.unwrap().await.unwrap();
    let functions = Functions::answering(|call, before| {
        if call.text() == "flaky" && !before.iter().any(|c| c.body == call.body) { 500 } else { 200 }
    });
    let metrics = Arc::new(Metrics::default());
    let consumer = start(server, &subscription, &functions, &metrics);
    jetstream.publish(format!("{subject}.a.b"), "flaky".into()).await.unwrap().await.unwrap();
    let calls = functions.wait_for("three calls", |calls| calls.len() == 3).await;
    let texts: Vec<String> = calls.iter().map(|c| c.text()).collect();
    assert_eq!(texts, ["early", "flaky", "flaky"]);
    assert_eq!(calls[1].header("event-topic"), format!("{subject}.a.b"));
    // Acknowledged: a new consumer of the same durable gets nothing again, only what is new.
    consumer.stop().await;
    let later = Functions::ok();
    let consumer = start(server, &subscription, &later, &metrics);
    jetstream.publish(format!("{subject}.late"), "late".into()).await.unwrap().await.unwrap();
    let calls = later.wait_for("the new message", |calls| !calls.is_empty()).await;
    assert_eq!(calls.iter().map(|c| c.text()).collect::<Vec<_>>(), ["late"]);
    consumer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_resumes_by_itself_after_the_server_is_stopped_and_started_again() {
    let server = Nats::start();
    let metrics = Arc::new(Metrics::default());
    let subject = unique("resilient");
    let setup = client(&server).await;
    let jetstream = async_nats::jetstream::new(setup.clone());
    let stream = async_nats::jetstream::stream::Config {
        name: subject.clone(),
        subjects: vec![format!("{subject}.durable")],
        ..Default::default()
    };
    jetstream.create_stream(stream).await.unwrap();
    let core = subscription(Source::Nats, &format!("{subject}.core"), "core", &[]);
    let durable =
        subscription(Source::Nats, &format!("{subject}.durable"), "durable", &[(kelp_events::DURABLE, "true")]);
    let functions = Functions::ok();
    let consumers = [start(&server, &core, &functions, &metrics), start(&server, &durable, &functions, &metrics)];
    for consumer in &consumers {
        subscribed(consumer).await;
    }
    publish_both(setup, &subject, "before").await;
    functions.wait_for("both before the restart", |calls| calls.len() == 2).await;

    tokio::task::block_in_place(|| server.stop());
    let deadline = std::time::Instant::now() + PATIENCE;
    while consumers.iter().any(|c| c.status().subscribed) {
        assert!(std::time::Instant::now() < deadline, "the consumers did not notice the server is gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| server.start_again());
    for consumer in &consumers {
        subscribed(consumer).await;
    }
    publish_both(client(&server).await, &subject, "after").await;
    let calls = functions
        .wait_for("both after the restart", |calls| calls.iter().filter(|c| c.text() == "after").count() == 2)
        .await;
    let functions_called: BTreeSet<String> =
        calls.iter().filter(|c| c.text() == "after").map(|c| c.function.clone()).collect();
    assert_eq!(functions_called, BTreeSet::from(["core".to_owned(), "durable".to_owned()]));
    for consumer in consumers {
        consumer.stop().await;
    }
}

/// Publishes `text` to `<subject>.core` and, through JetStream, to `<subject>.durable`.
async fn publish_both(client: async_nats::Client, subject: &str, text: &'static str) {
    client.publish(format!("{subject}.core"), text.into()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client.clone());
    jetstream.publish(format!("{subject}.durable"), text.into()).await.unwrap().await.unwrap();
    client.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_made_while_the_server_is_down_subscribes_and_delivers_once_it_is_up() {
    let server = Nats::start();
    tokio::task::block_in_place(|| server.stop());
    let metrics = Arc::new(Metrics::default());
    let subject = unique("late");
    let functions = Functions::ok();
    let consumer = start(&server, &subscription(Source::Nats, &subject, "patient", &[]), &functions, &metrics);
    // Nothing listens: the consumer must not claim to be subscribed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!consumer.status().subscribed, "{:?}", consumer.status());
    tokio::task::block_in_place(|| server.start_again());
    subscribed(&consumer).await;
    let publisher = client(&server).await;
    publisher.publish(subject.clone(), "hello".into()).await.unwrap();
    publisher.flush().await.unwrap();
    let calls = functions.wait_for("the message", |calls| !calls.is_empty()).await;
    assert_eq!(calls[0].text(), "hello");
    consumer.stop().await;
}
