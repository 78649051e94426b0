//! KinesisTriggers on the real `kelp up`, with a real Kinesis (moto's server mode, from
//! `kelp-brokers`) and real Python functions, driven by `kelp trigger kinesis`: a record reaches
//! the function with Kubeless's event fields, retries then the dead-letter stream, and a SIGKILL
//! of `kelp up` while two shards are being consumed, after which every record still arrives (at
//! least once: duplicates allowed, none missing).

use crate::events::{PUBSUB, events, is_ready, metric, trigger_status, unique};
use crate::support::{DEADLINE, Platform, eventually};
use kelp_brokers::Kinesis;
use kelp_events::kinesis::{Client, Credentials, Start};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const REGION: &str = "us-east-1";

/// Appends each record's data as a line to `$RECORDS`; fails the records saying `poison`.
const RECORDER: &str = r#"import os

def handler(event, context):
    data = event['data'] if isinstance(event['data'], str) else event['data'].decode()
    if data == 'poison':
        raise Exception('poisoned')
    with open(os.environ['RECORDS'], 'a') as f:
        f.write(data + '\n')
    return 'ok'
"#;

/// A platform whose retries wait at most 200 ms, with the Secret `aws`.
fn platform() -> Platform {
    let platform = Platform::start(&["--backoff-interval", "200ms"]);
    platform
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "aws",
            "--from-literal=aws_access_key_id=AKIDKELP",
            "--from-literal=aws_secret_access_key=kelp-secret",
        ])
        .ok();
    platform
}

fn client(kinesis: &Kinesis) -> Client {
    let credentials = Credentials { access_key_id: "AKIDKELP".into(), secret_access_key: "kelp-secret".into() };
    Client::new(Some(&kinesis.endpoint()), REGION, credentials).unwrap()
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// `kelp trigger kinesis create-stream`.
fn create_stream(platform: &Platform, kinesis: &Kinesis, stream: &str, shards: u32) {
    let endpoint = kinesis.endpoint();
    let shards = shards.to_string();
    platform
        .kelp(&[
            "trigger",
            "kinesis",
            "create-stream",
            "--stream-name",
            stream,
            "--aws-region",
            REGION,
            "--shard-count",
            &shards,
            "--secret",
            "aws",
            "--endpoint",
            &endpoint,
        ])
        .ok();
}

/// `kelp trigger kinesis create <name>` of `shard` for `function`.
fn create_trigger(platform: &Platform, kinesis: &Kinesis, name: &str, stream: &str, shard: &str, function: &str) {
    let endpoint = kinesis.endpoint();
    platform
        .kelp(&[
            "trigger",
            "kinesis",
            "create",
            name,
            "--stream",
            stream,
            "--aws-region",
            REGION,
            "--shard-id",
            shard,
            "--function-name",
            function,
            "--secret",
            "aws",
            "--endpoint",
            &endpoint,
        ])
        .ok();
}

#[test]
fn kinesis_trigger_delivers_records_with_kubeless_event_fields_and_the_cli_manages_it() {
    let kinesis = Kinesis::shared();
    let platform = platform();
    let stream = unique("orders");
    platform
        .kelp(&["trigger", "kinesis", "create", "orders", "--stream", &stream, "--secret", "aws"])
        .fails_with(r#"required flag(s) "aws-region", "shard-id", "function-name" not set"#);
    let dry = platform
        .kelp(&[
            "trigger",
            "kinesis",
            "create",
            "orders",
            "--stream",
            &stream,
            "--aws-region",
            REGION,
            "--shard-id",
            "s0",
            "--function-name",
            "f",
            "--secret",
            "aws",
            "--dryrun",
            "-o",
            "json",
        ])
        .ok()
        .stdout;
    let dry: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["spec"]["shard"], "s0");
    assert_eq!(dry["metadata"]["labels"]["created-by"], "kubeless");
    create_stream(&platform, kinesis, &stream, 1);
    platform.deploy("kinesis-python", "python3.8", "kinesis-python.py", PUBSUB, "kinesis-python.handler", &[]);
    create_trigger(&platform, kinesis, "orders", &stream, "shardId-000000000000", "kinesis-python");
    let trigger = trigger_status(&platform, "kinesistrigger", "orders", is_ready);
    assert_eq!(trigger["status"]["functions"], serde_json::json!(["kinesis-python"]));
    let listed = platform.kelp(&["trigger", "kinesis", "list"]).ok().stdout;
    let row: Vec<&str> = listed.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row, ["orders", "default", REGION, stream.as_str(), "shardId-000000000000", "kinesis-python"]);
    assert!(listed.starts_with("NAME"), "{listed}");

    let payload = format!(r#"{{"payload":"{}"}}"#, unique("p"));
    let endpoint = kinesis.endpoint();
    platform
        .kelp(&[
            "trigger",
            "kinesis",
            "publish",
            "--stream",
            &stream,
            "--aws-region",
            REGION,
            "--partition-key",
            "k",
            "--records",
            &payload,
            "--records",
            "second",
            "--secret",
            "aws",
            "--endpoint",
            &endpoint,
        ])
        .ok();
    let seen = eventually("both records reach the function", DEADLINE, || {
        let seen = events(&platform, "kinesis-python");
        if seen.len() >= 2 { Ok(seen) } else { Err(platform.logs("kinesis-python")) }
    });
    let data: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(seen[0]["data"], data);
    assert_eq!(seen[0]["event-namespace"], "kinesistriggers.kubeless.io");
    assert_eq!(seen[0]["event-type"], "application/json");
    assert_eq!(seen[0]["event-topic"], stream.as_str());
    assert!(seen[0]["event-time"].as_str().unwrap().ends_with(" UTC"), "{}", seen[0]);
    assert!(seen[0]["user-agent"].as_str().unwrap().starts_with("kubeless-kinesis-trigger-controller/"));
    assert_eq!(seen[1]["data"], "second");
    let trigger = trigger_status(&platform, "kinesistrigger", "orders", |s| s.get("millisBehindLatest").is_some());
    assert!(trigger["status"]["millisBehindLatest"].as_i64().unwrap() >= 0, "{trigger}");
    assert_eq!(metric(&platform, "kelp_trigger_messages_delivered_total", "orders"), Some(2.0));
    // The checkpoint is in the store, where a cluster keeps it too.
    let checkpoint = platform.kubectl(&["get", "configmap", "kelp-kinesis-orders", "-o", "json"]).ok().stdout;
    let checkpoint: Value = serde_json::from_str(&checkpoint).unwrap();
    let key = format!("kinesis-python.{stream}.shardId-000000000000");
    assert!(checkpoint["data"][&key].as_str().is_some_and(|s| !s.is_empty()), "{checkpoint}");

    platform.kelp(&["trigger", "kinesis", "update", "orders", "--shard-id", "shardId-000000000001"]).ok();
    let updated = trigger_status(&platform, "kinesistrigger", "orders", |s| s["observedGeneration"] == 2);
    assert_eq!(updated["spec"]["shard"], "shardId-000000000001");
    assert_eq!(updated["spec"]["stream"], stream.as_str());
    assert!(!is_ready(&updated["status"]), "no such shard: {}", updated["status"]);
    platform.kelp(&["trigger", "kinesis", "delete", "orders"]).ok();
    let after = platform.kelp(&["trigger", "kinesis", "list"]).ok().stdout;
    assert_eq!(after.lines().count(), 1, "{after}");
}

#[test]
fn kinesis_trigger_retries_then_writes_the_record_to_the_dead_letter_stream() {
    let kinesis = Kinesis::shared();
    let platform = platform();
    let (stream, dead) = (unique("payments"), unique("dead"));
    create_stream(&platform, kinesis, &stream, 1);
    // The kubeless CLI's usage line names the stream as an argument too.
    let endpoint = kinesis.endpoint();
    let positional = ["trigger", "kinesis", "create-stream", &dead, "--aws-region", REGION, "--secret", "aws"];
    platform.kelp(&[&positional[..], &["--endpoint", &endpoint]].concat()).ok();
    let records = platform.write("records", "");
    let env = format!("RECORDS={records}");
    platform.deploy("recorder", "python3.8", "recorder.py", RECORDER, "recorder.handler", &["--env", &env]);
    create_trigger(&platform, kinesis, "pay", &stream, "shardId-000000000000", "recorder");
    let retries = "kelp.dev/retries=2".to_owned();
    let dead_letter = format!("kelp.dev/dead-letter={dead}");
    platform.kubectl(&["annotate", "kinesistrigger", "pay", &retries, &dead_letter]).ok();
    trigger_status(&platform, "kinesistrigger", "pay", is_ready);
    let client = client(kinesis);
    block_on(async {
        client.put_record(&stream, "pk-poison", b"poison").await.unwrap();
        client.put_record(&stream, "pk-fine", b"fine").await.unwrap();
    });
    eventually("the record after the poisoned one", DEADLINE, || {
        let text = std::fs::read_to_string(&records).unwrap();
        if text == "fine\n" { Ok(()) } else { Err(text) }
    });
    assert_eq!(metric(&platform, "kelp_trigger_message_retries_total", "pay"), Some(2.0));
    assert_eq!(metric(&platform, "kelp_trigger_messages_dead_lettered_total", "pay"), Some(1.0));
    let letters = block_on(async {
        let iterator = client.shard_iterator(&dead, "shardId-000000000000", &Start::Oldest).await.unwrap();
        client.get_records(&iterator, 10).await.unwrap().records
    });
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].partition_key, "pk-poison");
    let letter: Value = serde_json::from_slice(&letters[0].data).unwrap();
    assert_eq!((letter["data"].as_str(), letter["trigger"].as_str()), (Some("cG9pc29u"), Some("default/pay")));
    assert!(letter["reason"].as_str().unwrap().contains("after 3 attempts"), "{letter}");
    let trigger = trigger_status(&platform, "kinesistrigger", "pay", |s| s.get("lastError").is_some());
    assert!(trigger["status"]["lastError"].as_str().unwrap().contains("500"), "{trigger}");
}

#[test]
fn sigkill_of_kelp_up_while_two_shards_are_consumed_loses_no_record() {
    let kinesis = Kinesis::shared();
    let mut platform = platform();
    let stream = unique("clicks");
    create_stream(&platform, kinesis, &stream, 2);
    let records = platform.write("records", "");
    let env = format!("RECORDS={records}");
    platform.deploy("recorder", "python3.8", "recorder.py", RECORDER, "recorder.handler", &["--env", &env]);
    create_trigger(&platform, kinesis, "clicks-0", &stream, "shardId-000000000000", "recorder");
    create_trigger(&platform, kinesis, "clicks-1", &stream, "shardId-000000000001", "recorder");
    trigger_status(&platform, "kinesistrigger", "clicks-0", is_ready);
    trigger_status(&platform, "kinesistrigger", "clicks-1", is_ready);
    let client = client(kinesis);
    let delivered =
        || -> BTreeSet<String> { std::fs::read_to_string(&records).unwrap().lines().map(str::to_owned).collect() };
    let mut sent = Vec::new();
    let mut shards = BTreeSet::new();
    let put = |n: usize, shards: &mut BTreeSet<String>| {
        let text = format!("record-{n}");
        let (shard, _) = block_on(client.put_record(&stream, &format!("key-{n}"), text.as_bytes())).unwrap();
        shards.insert(shard);
        text
    };
    for n in 0..60 {
        sent.push(put(n, &mut shards));
    }
    eventually("some records delivered before the SIGKILL", DEADLINE, || {
        let n = delivered().len();
        if n >= 5 { Ok(()) } else { Err(format!("{n} delivered")) }
    });
    platform.sigkill();
    let before = delivered().len();
    for n in 60..100 {
        sent.push(put(n, &mut shards));
    }
    assert_eq!(shards.len(), 2, "the records went to both shards");
    platform.restart();
    let all: BTreeSet<String> = sent.iter().cloned().collect();
    eventually("every record delivered after the restart", Duration::from_secs(90), || {
        let seen = delivered();
        let missing: Vec<&String> = all.difference(&seen).collect();
        if missing.is_empty() { Ok(()) } else { Err(format!("{} missing: {missing:?}", missing.len())) }
    });
    let lines = std::fs::read_to_string(&records).unwrap().lines().count();
    eprintln!("{before} of {} delivered before the SIGKILL; {lines} deliveries in all", sent.len());
}
