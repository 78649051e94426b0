//! KafkaTriggers and NATSTriggers on the real `kelp up`, with real brokers (`kelp-brokers`) and
//! real Python functions: Kubeless's Kafka test (a random payload reaches the function with the
//! event fields), a function failing three times then succeeding, deleting a trigger, the
//! trigger's status and metrics, and a NATS wildcard subject.

use crate::support::{DEADLINE, Platform, eventually};
use kelp_brokers::{Kafka, Nats};
use kelp_events::{KafkaSettings, topics};
use serde_json::Value;
use std::time::Duration;

/// Prints what Kubeless's tests grep for, one JSON line per call.
pub(crate) const PUBSUB: &str = r#"import json

def handler(event, context):
    request = event['extensions']['request']
    print('EVENT ' + json.dumps({
        'data': event['data'] if isinstance(event['data'], (dict, str)) else event['data'].decode(),
        'event-id': event['event-id'],
        'event-time': event['event-time'],
        'event-type': event['event-type'],
        'event-namespace': event['event-namespace'],
        'event-topic': request.get_header('event-topic'),
        'user-agent': request.get_header('user-agent'),
    }), flush=True)
    return 'ok'
"#;

/// Fails the first three calls (counted in the file `$COUNTER`), then succeeds.
const FLAKY: &str = r#"import os

def handler(event, context):
    path = os.environ['COUNTER']
    with open(path, 'a') as f:
        f.write('x')
    calls = os.path.getsize(path)
    print('CALL', calls, flush=True)
    if calls <= 3:
        raise Exception('failure %d' % calls)
    return 'ok'
"#;

fn kafka_platform(kafka: &Kafka) -> Platform {
    Platform::start(&["--kafka-brokers", &kafka.bootstrap(), "--backoff-interval", "200ms"])
}

fn settings(kafka: &Kafka) -> KafkaSettings {
    KafkaSettings::from_env(Some(kafka.bootstrap()), |_| None)
}

/// A topic (or subject) name no other test uses.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Creates `topic` (one partition) before its trigger, as Kubeless's tests do.
fn create_topic(kafka: &Kafka, topic: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(topics::create(&settings(kafka), topic, 1, 1)).unwrap();
}

fn publish(kafka: &Kafka, topic: &str, payload: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(topics::publish(&settings(kafka), topic, None, payload.as_bytes())).unwrap();
}

/// The trigger as stored, once `ready(status)` holds.
pub(crate) fn trigger_status(platform: &Platform, kind: &str, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("{kind} {name}'s status"), DEADLINE, || {
        let out = platform.kubectl(&["get", kind, name, "-o", "json"]).ok().stdout;
        let trigger: Value = serde_json::from_str(&out).unwrap();
        if ready(&trigger["status"]) { Ok(trigger) } else { Err(trigger["status"].to_string()) }
    })
}

pub(crate) fn is_ready(status: &Value) -> bool {
    status["conditions"][0]["status"] == "True"
}

/// The `EVENT` lines the function printed, parsed.
pub(crate) fn events(platform: &Platform, function: &str) -> Vec<Value> {
    platform
        .logs(function)
        .lines()
        .filter_map(|l| l.split_once("EVENT ").map(|(_, json)| serde_json::from_str(json).unwrap()))
        .collect()
}

pub(crate) fn metric(platform: &Platform, name: &str, trigger: &str) -> Option<f64> {
    let text = platform.api("GET", "/metrics", &[], "").unwrap().body;
    let wanted = format!("trigger=\"{trigger}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&wanted))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn kafka_trigger_delivers_a_random_payload_with_kubeless_event_fields_to_every_matching_function() {
    let kafka = Kafka::shared();
    let platform = kafka_platform(kafka);
    // No `topic create`: the trigger's consumer creates the topic (the broker allows it).
    let topic = unique("s3-python");
    for name in ["pubsub-a", "pubsub-b"] {
        platform.deploy(
            name,
            "python3.8",
            &format!("{name}.py"),
            PUBSUB,
            &format!("{name}.handler"),
            &["--label", &format!("topic={topic}")],
        );
    }
    platform.deploy("bystander", "python3.8", "bystander.py", PUBSUB, "bystander.handler", &[]);
    let selector = format!("created-by=kubeless,topic={topic}");
    platform
        .kelp(&["trigger", "kafka", "create", "s3", "--trigger-topic", &topic, "--function-selector", &selector])
        .ok();
    let trigger = trigger_status(&platform, "kafkatrigger", "s3", is_ready);
    assert_eq!(trigger["status"]["functions"], serde_json::json!(["pubsub-a", "pubsub-b"]));

    let random =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let payload = format!(r#"{{"payload":"{random}"}}"#);
    // Kubeless's command as its tests type it: the brokers are those `kelp up` was given (the
    // `kafka-brokers` key of its kubeless-config).
    platform.kelp(&["topic", "publish", "--topic", &topic, "--data", &payload]).ok();
    for function in ["pubsub-a", "pubsub-b"] {
        let event = eventually(&format!("{function} logs the payload"), DEADLINE, || {
            events(&platform, function)
                .into_iter()
                .find(|e| e["data"]["payload"] == random.as_str())
                .ok_or_else(|| platform.logs(function))
        });
        assert_eq!(event["event-namespace"], "kafkatriggers.kubeless.io");
        assert_eq!(event["event-type"], "application/json");
        assert_eq!(event["event-topic"], topic.as_str());
        assert!(event["event-time"].as_str().unwrap().ends_with("UTC"), "{event}");
        assert_eq!(event["event-id"].as_str().unwrap().len(), 16);
        assert!(event["user-agent"].as_str().unwrap().starts_with("kubeless-kafka-trigger-controller/"));
    }
    assert!(events(&platform, "bystander").is_empty());
    // librdkafka's statistics (every second) give the lag: nothing left once both delivered.
    let trigger = trigger_status(&platform, "kafkatrigger", "s3", |s| s["lag"] == 0);
    assert_eq!(trigger["status"]["conditions"][0]["reason"], "Subscribed", "{trigger}");
    eventually("the delivered counter", DEADLINE, || {
        match metric(&platform, "kelp_trigger_messages_delivered_total", "s3") {
            Some(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let listed = platform.kelp(&["trigger", "kafka", "list"]).ok().stdout;
    assert!(listed.contains(&topic), "{listed}");
}

#[test]
fn topic_commands_go_through_the_kafka_admin_api() {
    let kafka = Kafka::shared();
    let platform = kafka_platform(kafka);
    let brokers = kafka.bootstrap();
    let (one, two) = (unique("topic1"), unique("topic2"));
    for topic in [&one, &two] {
        let created = platform.kelp(&["topic", "create", topic, "--kafka-brokers", &brokers, "--partitions", "2"]).ok();
        assert!(created.stderr.contains(&format!("Created topic {topic}.")), "{created:?}");
    }
    // Without --kafka-brokers: those of the context's kubeless-config, which kelp up set.
    let listed = platform.kelp(&["topic", "list"]).ok().stdout;
    assert!(listed.lines().any(|l| l == one) && listed.lines().any(|l| l == two), "{listed}");
    assert!(!listed.lines().any(|l| l.starts_with("__")), "internal topics are not listed: {listed}");
    platform.kelp(&["topic", "delete", &one, "--kafka-brokers", &brokers, "--kafka-namespace", "kubeless"]).ok();
    eventually("the deleted topic gone from the list", DEADLINE, || {
        let listed = platform.kelp(&["topic", "ls"]).ok().stdout;
        if listed.lines().any(|l| l == one) { Err(listed) } else { Ok(()) }
    });
    let failed = platform.kelp(&["topic", "create", &two, "--kafka-brokers", &brokers]);
    assert!(failed.code == 1 && failed.stderr.contains("already exists"), "{failed:?}");
}

#[test]
fn kafka_trigger_retries_a_failing_function_until_it_succeeds_and_counts_the_retries() {
    let kafka = Kafka::shared();
    let platform = kafka_platform(kafka);
    let topic = unique("flaky");
    create_topic(kafka, &topic);
    let counter = platform.write("counter", "");
    let env = format!("COUNTER={counter}");
    platform.deploy("flaky", "python3.8", "flaky.py", FLAKY, "flaky.handler", &["--env", &env]);
    platform
        .kelp(&[
            "trigger",
            "kafka",
            "create",
            "retry",
            "--trigger-topic",
            &topic,
            "--function-selector",
            "function=flaky",
        ])
        .ok();
    trigger_status(&platform, "kafkatrigger", "retry", is_ready);
    publish(kafka, &topic, "hello");
    eventually("delivered after three failures", DEADLINE, || {
        match (
            metric(&platform, "kelp_trigger_messages_delivered_total", "retry"),
            metric(&platform, "kelp_trigger_message_retries_total", "retry"),
        ) {
            (Some(delivered), Some(retries)) if delivered >= 1.0 => Ok(retries),
            other => Err(format!("{other:?}: {}", platform.logs("flaky"))),
        }
    });
    assert_eq!(metric(&platform, "kelp_trigger_message_retries_total", "retry"), Some(3.0));
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "xxxx", "one call and three retries");
    let trigger = trigger_status(&platform, "kafkatrigger", "retry", |s| s.get("lastError").is_some());
    assert!(trigger["status"]["lastError"].as_str().unwrap().contains("500"), "{trigger}");
}

#[test]
fn deleting_a_kafka_trigger_stops_consumption() {
    let kafka = Kafka::shared();
    let platform = kafka_platform(kafka);
    let topic = unique("stop");
    create_topic(kafka, &topic);
    platform.deploy("listener", "python3.8", "listener.py", PUBSUB, "listener.handler", &[]);
    platform
        .kelp(&[
            "trigger",
            "kafka",
            "create",
            "t",
            "--trigger-topic",
            &topic,
            "--function-selector",
            "function=listener",
        ])
        .ok();
    trigger_status(&platform, "kafkatrigger", "t", is_ready);
    publish(kafka, &topic, "first");
    eventually("the first message", DEADLINE, || {
        if events(&platform, "listener").iter().any(|e| e["data"] == "first") {
            Ok(())
        } else {
            Err(platform.logs("listener"))
        }
    });
    platform.kelp(&["trigger", "kafka", "delete", "t"]).ok();
    eventually("the trigger's series gone from /metrics", DEADLINE, || {
        match metric(&platform, "kelp_trigger_messages_consumed_total", "t") {
            None => Ok(()),
            Some(n) => Err(n.to_string()),
        }
    });
    publish(kafka, &topic, "after delete");
    // Nothing consumes the topic any more: give a consumer that wrongly survived time to show.
    std::thread::sleep(Duration::from_secs(3));
    let seen: Vec<Value> = events(&platform, "listener");
    assert!(!seen.iter().any(|e| e["data"] == "after delete"), "{seen:?}");
}

#[test]
fn nats_trigger_delivers_messages_of_a_wildcard_subject() {
    let nats = Nats::shared();
    let platform = Platform::start(&["--nats-url", &nats.url()]);
    let prefix = unique("nats-topic-test");
    platform.deploy("nats-python", "python3.8", "natspy.py", PUBSUB, "natspy.handler", &[]);
    let subject = format!("{prefix}.*");
    platform
        .kelp(&[
            "trigger",
            "nats",
            "create",
            "n",
            "--trigger-topic",
            &subject,
            "--function-selector",
            "function=nats-python",
        ])
        .ok();
    trigger_status(&platform, "natstrigger", "n", is_ready);
    let published = format!("{prefix}.eu");
    let url = nats.url();
    let message = r#"{"payload":"nats"}"#;
    platform.kelp(&["trigger", "nats", "publish", "--url", &url, "--topic", &published, "--message", message]).ok();
    let event = eventually("the NATS message", DEADLINE, || {
        events(&platform, "nats-python").into_iter().next().ok_or_else(|| platform.logs("nats-python"))
    });
    assert_eq!(event["data"]["payload"], "nats");
    assert_eq!(event["event-namespace"], "natstriggers.kubeless.io");
    assert_eq!(event["event-topic"], format!("{prefix}.eu"));
}

/// Appends each message to the file `$SINK`, one line per call.
const SINK: &str = r#"import os

def handler(event, context):
    data = event['data']
    with open(os.environ['SINK'], 'a') as f:
        f.write((data.decode() if isinstance(data, bytes) else str(data)) + '\n')
    return 'ok'
"#;

#[test]
fn sigkill_of_kelp_up_in_a_stream_of_10000_messages_loses_none_after_a_restart() {
    const MESSAGES: usize = 10_000;
    let kafka = Kafka::shared();
    let mut platform = kafka_platform(kafka);
    let topic = unique("stream");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(topics::create(&settings(kafka), &topic, 2, 1)).unwrap();
    let sink = platform.write("sink", "");
    platform.deploy("sink", "python3.8", "sink.py", SINK, "sink.handler", &["--env", &format!("SINK={sink}")]);
    platform
        .kelp(&[
            "trigger",
            "kafka",
            "create",
            "stream",
            "--trigger-topic",
            &topic,
            "--function-selector",
            "function=sink",
        ])
        .ok();
    trigger_status(&platform, "kafkatrigger", "stream", is_ready);

    let producer: rdkafka::producer::FutureProducer = settings(kafka).client_config().create().unwrap();
    runtime.block_on(async {
        let sends: Vec<_> = (0..MESSAGES)
            .map(|n| {
                let (key, payload) = (format!("k{}", n % 97), format!("m{n}"));
                let record = rdkafka::producer::FutureRecord::to(&topic).key(&key).payload(&payload);
                producer.send_result(record).map_err(|(e, _)| e).unwrap()
            })
            .collect();
        for send in sends {
            send.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
    let lines = || std::fs::read_to_string(&sink).unwrap().lines().map(str::to_owned).collect::<Vec<_>>();
    let before_kill = eventually("the stream half-way through", Duration::from_secs(300), || {
        let seen = lines().len();
        if seen >= MESSAGES / 5 { Ok(seen) } else { Err(format!("{seen} delivered")) }
    });
    platform.sigkill();
    let at_kill = lines().len();
    assert!(at_kill < MESSAGES, "the whole stream was delivered before the kill: choose a longer one");
    platform.restart();
    let delivered = eventually("every message delivered after the restart", Duration::from_secs(600), || {
        let all = lines();
        let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
        if distinct.len() == MESSAGES {
            Ok(all.len())
        } else {
            Err(format!("{} of {MESSAGES} distinct", distinct.len()))
        }
    });
    let duplicates = delivered - MESSAGES;
    eprintln!(
        "{MESSAGES} messages, SIGKILL after {before_kill}..{at_kill} deliveries: every message delivered, \
         {duplicates} delivered twice (at least once)"
    );
    let unexpected: Vec<String> = lines().into_iter().filter(|l| !l.starts_with('m')).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}
