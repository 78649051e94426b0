//! `kelp-triggers` on the test control plane, with real brokers (Kafka 4.1.1 in KRaft mode,
//! nats-server and a Kinesis, moto's server mode, from `kelp-brokers`) and real functions.
//!
//! kwok's pods run no code, so the functions here are real `kelp-runtime` processes that the
//! test starts on loopback: each Function object's Service port (`spec.service.ports[0].port`)
//! is the port its `kelp-runtime` listens on, and `kelp-triggers` runs with
//! `--function-url http://127.0.0.1:{port}` in place of the Service's DNS name a cluster resolves.
//! No `kelp-controller` runs: `kelp-triggers` needs only the kubeless.io objects.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ControllerProcess, eventually};
use kelp_api::{Conditions, Function, KafkaTrigger, KinesisTrigger, NATSTrigger};
use kelp_brokers::{Kafka, Kinesis, Nats};
use kelp_testenv::ControlPlane;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

/// How long deliveries and status changes may take.
const PATIENCE: Duration = Duration::from_secs(90);

/// A Python function that appends each event's data to the file `$SINK`, one line each.
const SINK: &str = r#"import os

def handler(event, context):
    data = event['data']
    line = data.decode() if isinstance(data, bytes) else str(data)
    with open(os.environ['SINK'], 'a') as f:
        f.write(event['event-namespace'] + ' ' + line + '\n')
    return 'ok'
"#;

/// A `kelp-runtime` serving [`SINK`] on a free loopback port, killed when dropped.
struct SinkFunction {
    child: Child,
    port: u16,
    sink: PathBuf,
}

impl SinkFunction {
    fn start(dir: &Path) -> SinkFunction {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("sink.py"), SINK).unwrap();
        let sink = dir.join("received.txt");
        let [port] = kelp_testkit::process::free_ports::<1>();
        let log = std::fs::File::create(dir.join("runtime.log")).unwrap();
        let child = Command::new(kelp_testkit::runtime_bin())
            .env("FUNC_RUNTIME", "python3")
            .env("MOD_NAME", "sink")
            .env("FUNC_HANDLER", "handler")
            .env("FUNC_PORT", port.to_string())
            .env("KUBELESS_INSTALL_VOLUME", dir)
            .env("KELP_CACHE_DIR", dir.join("cache"))
            .env("SINK", &sink)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting kelp-runtime");
        let function = SinkFunction { child, port, sink };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return function;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "kelp-runtime did not listen on {port}: {}",
            kelp_testkit::process::log_tail(&dir.join("runtime.log"), 30)
        );
    }

    /// The lines received so far.
    fn received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.sink).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

impl Drop for SinkFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Function object of `sink`: labelled `topic: orders`, its Service on the sink's port.
fn function_object(name: &str, sink: &SinkFunction) -> Function {
    serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1",
        "kind": "Function",
        "metadata": {"name": name, "labels": {"created-by": "kubeless", "function": name, "topic": "orders"}},
        "spec": {
            "runtime": "python3.11",
            "handler": "sink.handler",
            "function": SINK,
            "function-content-type": "text",
            "deps": "",
            "timeout": "30",
            "service": {"ports": [{"name": "http-function-port", "port": sink.port, "targetPort": sink.port}]},
        },
    }))
    .unwrap()
}

/// Two `kelp-triggers` replicas watching `namespace`, sharing one Lease.
fn replicas(plane: &ControlPlane, namespace: &str) -> Vec<ControllerProcess> {
    let (kafka, nats) = (Kafka::shared(), Nats::shared());
    let bootstrap = kafka.bootstrap();
    let nats_url = nats.url();
    let args = [
        "--kafka-brokers",
        bootstrap.as_str(),
        "--nats-url",
        nats_url.as_str(),
        "--function-url",
        "http://127.0.0.1:{port}",
        "--functions-namespace",
        namespace,
        "--config-namespace",
        namespace,
        "--backoff-interval",
        "500ms",
    ];
    ["one", "two"]
        .iter()
        .map(|id| ControllerProcess::start_triggers(plane, &format!("{namespace}-{id}"), &args))
        .collect()
}

/// The sum of one series over the replicas' `/metrics`, and the value of each.
fn delivered_by_each(replicas: &[ControllerProcess]) -> Vec<f64> {
    replicas.iter().map(|r| r.metric("kelp_trigger_messages_delivered_total").unwrap_or(0.0)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_a_kafka_group_survive_a_kill_and_the_leader_keeps_status_and_finalizers() {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("events").await;
    let client = plane.client().await;
    let sink = SinkFunction::start(&plane.log_dir().join(format!("sink-{namespace}")));
    let functions: Api<Function> = Api::namespaced(client.clone(), &namespace);
    functions.create(&PostParams::default(), &function_object("sink", &sink)).await.unwrap();
    let replicas = replicas(plane, &namespace);

    // Kafka: a topic of two partitions, a trigger selecting the function by label.
    let kafka = Kafka::shared();
    let settings = kelp_events::KafkaSettings::from_env(Some(kafka.bootstrap()), |_| None);
    let topic = format!("orders-{namespace}");
    kelp_events::topics::create(&settings, &topic, 2, 1).await.unwrap();
    let kafka_triggers: Api<KafkaTrigger> = Api::namespaced(client.clone(), &namespace);
    let trigger: KafkaTrigger = serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1",
        "kind": "KafkaTrigger",
        "metadata": {"name": "orders"},
        "spec": {"topic": topic, "functionSelector": {"matchLabels": {"topic": "orders"}}},
    }))
    .unwrap();
    kafka_triggers.create(&PostParams::default(), &trigger).await.unwrap();
    let ready = eventually("the KafkaTrigger to be Ready with its finalizer", PATIENCE, || async {
        let trigger = kafka_triggers.get("orders").await.ok()?;
        let status = trigger.status.clone()?;
        (status.is_ready() && trigger.finalizers().iter().any(|f| f == "kubeless.io/kafkatrigger")).then_some(status)
    })
    .await;
    assert_eq!(ready.functions, ["sink"]);

    // Messages with keys over both partitions, in batches until both replicas delivered some:
    // the group split the partitions between them.
    let producer: FutureProducer = settings.client_config().create().unwrap();
    let mut published = Vec::new();
    let split = eventually("both replicas to deliver Kafka messages", PATIENCE, || {
        let batch: Vec<String> = (published.len()..published.len() + 20).map(|n| format!("kafka-{n}")).collect();
        published.extend(batch.iter().cloned());
        let (producer, topic, replicas) = (&producer, &topic, &replicas);
        async move {
            for payload in &batch {
                let record = FutureRecord::to(topic).key(payload.as_str()).payload(payload.as_str());
                producer.send(record, Duration::from_secs(10)).await.expect("publishing");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let each = delivered_by_each(replicas);
            each.iter().all(|n| *n > 0.0).then_some(each)
        }
    })
    .await;
    let received = eventually("every Kafka message delivered", PATIENCE, || async {
        let lines = sink.received();
        published.iter().all(|p| lines.contains(&format!("kafkatriggers.kubeless.io {p}"))).then_some(lines)
    })
    .await;
    let duplicates = received.len() - published.len();
    eprintln!("kafka: {} published, delivered by replica {split:?}, {duplicates} duplicate(s)", published.len());

    // The status's lag is the group's, whichever replica consumes which partition.
    eventually("the trigger's lag to be 0 once everything is delivered", PATIENCE, || async {
        (kafka_triggers.get("orders").await.ok()?.status?.lag == Some(0)).then_some(())
    })
    .await;

    // One replica killed (SIGKILL): the group gives its partition to the other, which delivers
    // what follows; the Lease, whoever held it, ends with the survivor.
    let mut replicas = replicas;
    drop(replicas.remove(0));
    let after_kill: Vec<String> = (0..20).map(|n| format!("after-kill-{n}")).collect();
    for payload in &after_kill {
        producer.send(FutureRecord::to(&topic).key(payload).payload(payload), Duration::from_secs(10)).await.unwrap();
    }
    eventually("the survivor to deliver what was published after the kill", PATIENCE, || async {
        let lines = sink.received();
        after_kill.iter().all(|p| lines.contains(&format!("kafkatriggers.kubeless.io {p}"))).then_some(())
    })
    .await;

    // NATS: a wildcard subject; the queue group delivers each message once.
    let nats_triggers: Api<NATSTrigger> = Api::namespaced(client.clone(), &namespace);
    let subject = format!("orders.{namespace}");
    let trigger: NATSTrigger = serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1",
        "kind": "NATSTrigger",
        "metadata": {"name": "orders-nats"},
        "spec": {"topic": format!("{subject}.*"), "functionSelector": {"matchLabels": {"topic": "orders"}}},
    }))
    .unwrap();
    nats_triggers.create(&PostParams::default(), &trigger).await.unwrap();
    eventually("the NATSTrigger to be Ready", PATIENCE, || async {
        nats_triggers.get("orders-nats").await.ok()?.status.filter(Conditions::is_ready)
    })
    .await;
    let nats = async_nats::connect(Nats::shared().url()).await.unwrap();
    for n in 0..50 {
        nats.publish(format!("{subject}.eu"), format!("nats-{n}").into()).await.unwrap();
    }
    nats.flush().await.unwrap();
    let nats_lines = |lines: &[String]| lines.iter().filter(|l| l.starts_with("natstriggers.kubeless.io ")).count();
    eventually("the 50 NATS messages delivered", PATIENCE, || async {
        (nats_lines(&sink.received()) >= 50).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(nats_lines(&sink.received()), 50, "a queue group delivers each message to one replica");

    // Deleting the trigger: the leader (the survivor by now) takes its finalizer off once
    // consumption stopped.
    kafka_triggers.delete("orders", &DeleteParams::default()).await.unwrap();
    eventually("the KafkaTrigger to be deleted", PATIENCE, || async {
        matches!(kafka_triggers.get_opt("orders").await, Ok(None)).then_some(())
    })
    .await;
    let before = sink.received().len();
    for n in 0..10 {
        let payload = format!("after-{n}");
        producer.send(FutureRecord::to(&topic).key(&payload).payload(&payload), Duration::from_secs(10)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.received().len(), before, "nothing is consumed for a deleted trigger");
    drop(replicas);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_consumes_a_kinesis_shard_with_the_secret_s_credentials_and_checkpoints_in_a_config_map() {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("kinesis").await;
    let client = plane.client().await;
    let sink = SinkFunction::start(&plane.log_dir().join(format!("sink-{namespace}")));
    let functions: Api<Function> = Api::namespaced(client.clone(), &namespace);
    functions.create(&PostParams::default(), &function_object("sink", &sink)).await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &namespace);
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "aws"},
        "stringData": {"aws_access_key_id": "AKIDKELP", "aws_secret_access_key": "kelp-secret"},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let replicas = replicas(plane, &namespace);

    let kinesis = Kinesis::shared();
    let credentials =
        kelp_events::kinesis::Credentials { access_key_id: "AKIDKELP".into(), secret_access_key: "kelp-secret".into() };
    let stream = format!("orders-{namespace}");
    let aws = kelp_events::kinesis::Client::new(Some(&kinesis.endpoint()), "us-east-1", credentials).unwrap();
    aws.create_stream(&stream, 1).await.unwrap();
    let triggers: Api<KinesisTrigger> = Api::namespaced(client.clone(), &namespace);
    let trigger: KinesisTrigger = serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1",
        "kind": "KinesisTrigger",
        "metadata": {"name": "orders"},
        "spec": {"function-name": "sink", "aws-region": "us-east-1", "secret": "aws", "stream": stream,
                 "shard": "shardId-000000000000", "endpoint": kinesis.endpoint()},
    }))
    .unwrap();
    triggers.create(&PostParams::default(), &trigger).await.unwrap();
    let ready = eventually("the KinesisTrigger to be Ready", PATIENCE, || async {
        triggers.get("orders").await.ok()?.status.filter(Conditions::is_ready)
    })
    .await;
    assert_eq!(ready.functions, ["sink"]);
    for n in 0..20 {
        aws.put_record(&stream, "k", format!("record-{n}").as_bytes()).await.unwrap();
    }
    let kinesis_lines = |lines: &[String]| -> Vec<String> {
        lines.iter().filter_map(|l| l.strip_prefix("kinesistriggers.kubeless.io ")).map(str::to_owned).collect()
    };
    let want: Vec<String> = (0..20).map(|n| format!("record-{n}")).collect();
    eventually("the 20 records delivered in order", PATIENCE, || async {
        (kinesis_lines(&sink.received()) == want).then_some(())
    })
    .await;
    let delivered = delivered_by_each(&replicas);
    assert!(delivered.contains(&0.0), "one replica, the leader, consumes the shard: {delivered:?}");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let key = format!("sink.{stream}.shardId-000000000000");
    eventually("the checkpoint in kelp-kinesis-orders", PATIENCE, || async {
        config_maps.get("kelp-kinesis-orders").await.ok()?.data?.get(&key).cloned()
    })
    .await;
    eventually("millisBehindLatest in the status", PATIENCE, || async {
        triggers.get("orders").await.ok()?.status?.millis_behind_latest
    })
    .await;
    drop(replicas);
}
