//! Kinesis (moto's server mode): records of the trigger's shard delivered in order with
//! Kubeless's headers, checkpoints that a restarted consumer continues from, retries and the
//! dead-letter stream, and one consumer per shard.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kelp_brokers::Kinesis;
use kelp_events::kinesis::{self, BoxFuture, CheckpointAt, Checkpoints, Client, Credentials, Shard, Start};
use kelp_events::{Consumer, Metrics, Source, Subscription};

use crate::support::{Functions, metric, random_text, subscribed, subscription, unique};

const REGION: &str = "us-east-1";

/// Checkpoints in memory, as a host's store would keep them.
#[derive(Debug, Default)]
struct Memory(Mutex<BTreeMap<(String, String, String), String>>);

impl Checkpoints for Memory {
    fn load<'a>(&'a self, at: &'a CheckpointAt) -> BoxFuture<'a, Result<Option<String>, String>> {
        let key = (at.namespace.clone(), at.name.clone(), at.key.clone());
        Box::pin(std::future::ready(Ok(self.0.lock().unwrap().get(&key).cloned())))
    }

    fn save<'a>(&'a self, at: &'a CheckpointAt, value: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let key = (at.namespace.clone(), at.name.clone(), at.key.clone());
        self.0.lock().unwrap().insert(key, value.to_owned());
        Box::pin(std::future::ready(Ok(())))
    }
}

fn credentials() -> Credentials {
    Credentials { access_key_id: "AKIDKELP".into(), secret_access_key: "kelp-secret".into() }
}

fn client(server: &Kinesis) -> Client {
    Client::new(Some(&server.endpoint()), REGION, credentials()).unwrap()
}

/// A new stream of `shards` shards and their ids.
async fn stream(server: &Kinesis, shards: u32) -> (String, Vec<String>) {
    let name = unique("stream");
    let client = client(server);
    client.create_stream(&name, shards).await.unwrap();
    let ids = client.list_shards(&name).await.unwrap();
    assert_eq!(ids.len(), shards as usize);
    (name, ids)
}

/// A subscription of `function` to `shard` of `stream`.
fn shard_subscription(
    server: &Kinesis,
    stream: &str,
    shard: &str,
    function: &str,
    annotations: &[(&str, &str)],
) -> Subscription {
    let mut subscription = subscription(Source::Kinesis, stream, function, annotations);
    subscription.kinesis = Some(Shard {
        endpoint: Some(server.endpoint()),
        region: REGION.into(),
        shard: shard.into(),
        credentials: credentials(),
    });
    subscription
}

fn start(
    subscription: &Subscription,
    functions: &Arc<Functions>,
    checkpoints: &Arc<Memory>,
    metrics: &Arc<Metrics>,
) -> Consumer {
    kinesis::start(subscription.clone(), functions.clone(), checkpoints.clone(), metrics.clone()).unwrap()
}

#[tokio::test]
async fn records_reach_the_function_in_order_and_a_restart_continues_from_the_checkpoint() {
    let server = Kinesis::shared();
    let (stream, shards) = stream(server, 1).await;
    let (functions, metrics, checkpoints) =
        (Functions::ok(), Arc::new(Metrics::default()), Arc::new(Memory::default()));
    let subscription = shard_subscription(server, &stream, &shards[0], "kinesis-python", &[]);
    let consumer = start(&subscription, &functions, &checkpoints, &metrics);
    subscribed(&consumer).await;
    let publisher = client(server);
    let payload = format!(r#"{{"payload":"{}"}}"#, random_text());
    publisher.put_record(&stream, "k", payload.as_bytes()).await.unwrap();
    publisher.put_record(&stream, "k", b"second").await.unwrap();
    let calls = functions.wait_for("two records", |calls| calls.len() == 2).await;
    assert_eq!(calls[0].text(), payload);
    assert_eq!(calls[0].header("event-namespace"), "kinesistriggers.kubeless.io");
    assert_eq!(calls[0].header("event-type"), "application/json");
    assert_eq!(calls[0].header("event-topic"), stream);
    assert!(calls[0].header("event-time").ends_with(" UTC"));
    assert_eq!(calls[0].header("event-id").len(), 16);
    assert!(calls[0].header("user-agent").starts_with("kubeless-kinesis-trigger-controller/"));
    assert_eq!(
        (calls[1].text(), calls[1].header("event-type").as_str()),
        ("second".into(), "application/x-www-form-urlencoded")
    );
    assert_eq!(metric(&metrics, "kelp_trigger_messages_delivered_total", &subscription), 2.0);
    let behind = metric(&metrics, "kelp_trigger_millis_behind_latest", &subscription);
    assert!(behind >= 0.0, "{behind}");
    assert_eq!(consumer.status().millis_behind_latest, Some(behind as i64));
    // The checkpoint is written once the batch is delivered; a new consumer continues after it.
    let at = kinesis::checkpoint_of(&subscription, &shards[0]);
    assert_eq!(at.name, format!("kelp-kinesis-{}", subscription.trigger));
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while checkpoints.load(&at).await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    consumer.stop().await;
    publisher.put_record(&stream, "k", b"third").await.unwrap();
    let again = start(&subscription, &functions, &checkpoints, &metrics);
    let calls = functions.wait_for("the third record", |calls| calls.len() >= 3).await;
    let texts: Vec<String> = calls.iter().map(|c| c.text()).collect();
    assert_eq!(texts, [payload, "second".into(), "third".into()]);
    again.stop().await;
}

#[tokio::test]
async fn a_record_that_always_fails_is_retried_then_written_to_the_dead_letter_stream() {
    let server = Kinesis::shared();
    let (stream, shards) = stream(server, 1).await;
    let (dead, _) = self::stream(server, 1).await;
    let functions = Functions::answering(|call, _| if call.text() == "poison" { 500 } else { 200 });
    let (metrics, checkpoints) = (Arc::new(Metrics::default()), Arc::new(Memory::default()));
    let annotations = [("kelp.dev/retries", "2"), ("kelp.dev/dead-letter", dead.as_str())];
    let subscription = shard_subscription(server, &stream, &shards[0], "fails", &annotations);
    let consumer = start(&subscription, &functions, &checkpoints, &metrics);
    subscribed(&consumer).await;
    let publisher = client(server);
    publisher.put_record(&stream, "pk-1", b"poison").await.unwrap();
    publisher.put_record(&stream, "pk-2", b"fine").await.unwrap();
    let calls = functions.wait_for("three attempts and the next record", |calls| calls.len() == 4).await;
    let texts: Vec<String> = calls.iter().map(|c| c.text()).collect();
    assert_eq!(texts, ["poison", "poison", "poison", "fine"]);
    assert!(calls[..3].iter().all(|c| c.header("event-id") == calls[0].header("event-id")), "one event, retried");
    let iterator = publisher.shard_iterator(&dead, "shardId-000000000000", &Start::Oldest).await.unwrap();
    let letters = publisher.get_records(&iterator, 10).await.unwrap().records;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].partition_key, "pk-1");
    let letter: serde_json::Value = serde_json::from_slice(&letters[0].data).unwrap();
    assert_eq!(letter["data"], "cG9pc29u");
    assert_eq!(letter["function"], "fails");
    assert_eq!(letter["stream"], stream.as_str());
    assert_eq!(letter["eventId"], calls[0].header("event-id").as_str());
    let reason = letter["reason"].as_str().unwrap();
    assert!(reason.contains("500") && reason.contains("after 3 attempts"), "{reason}");
    assert_eq!(metric(&metrics, "kelp_trigger_messages_dead_lettered_total", &subscription), 1.0);
    assert_eq!(metric(&metrics, "kelp_trigger_message_retries_total", &subscription), 2.0);
    consumer.stop().await;
}

#[tokio::test]
async fn each_shard_has_its_own_consumer() {
    let server = Kinesis::shared();
    let (stream, shards) = stream(server, 2).await;
    let (metrics, checkpoints) = (Arc::new(Metrics::default()), Arc::new(Memory::default()));
    let (first, second) = (Functions::ok(), Functions::ok());
    let one = start(&shard_subscription(server, &stream, &shards[0], "f", &[]), &first, &checkpoints, &metrics);
    let two = start(&shard_subscription(server, &stream, &shards[1], "f", &[]), &second, &checkpoints, &metrics);
    subscribed(&one).await;
    subscribed(&two).await;
    let publisher = client(server);
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut n = 0;
    while sent.len() < 2 || n < 20 {
        let text = format!("record-{n}");
        let (shard, _) = publisher.put_record(&stream, &format!("key-{n}"), text.as_bytes()).await.unwrap();
        sent.entry(shard).or_default().push(text);
        n += 1;
        assert!(n < 1000, "every record went to one shard");
    }
    for (functions, shard) in [(&first, &shards[0]), (&second, &shards[1])] {
        let want = &sent[shard];
        let calls = functions.wait_for(shard, |calls| calls.len() >= want.len()).await;
        let got: Vec<String> = calls.iter().map(|c| c.text()).collect();
        assert_eq!(&got, want, "shard {shard}");
    }
    one.stop().await;
    two.stop().await;
}
