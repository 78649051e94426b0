//! The event-trigger benchmark that `bench/events.sh` runs: a private Kafka, nats-server and
//! Kinesis (moto; `kelp-brokers`), a `kelp up` (the `kelp` binary given) calling a Python hello
//! function (`bench/functions/events.py`) for every message of a KafkaTrigger, a NATSTrigger and a
//! KinesisTrigger, and the same brokers measured alone. Prints one Markdown table on stdout,
//! progress on stderr.
//!
//! `cargo run --release -p kelp-events --example bench -- <kelp binary> <work dir>`; knobs in the
//! environment: `MESSAGES` (per throughput run, default 20000), `PARTITIONS` (default 8),
//! `RATE_SECONDS` (seconds at 1,000 msg/s, default 10), `KINESIS_RECORDS` (default 2000).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use kelp_brokers::{Kafka, Kinesis, Nats};
use kelp_events::kinesis::{Client, Credentials, Start};
use kelp_events::{KafkaSettings, topics};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};

const SIZE: usize = 1024;
/// Messages sent at 1,000 msg/s before those whose latency counts (the first second).
const WARMUP: usize = 1000;
/// `kelp.dev/concurrency` of the NATS trigger (its default, 1, delivers in order).
const NATS_CONCURRENCY: usize = 8;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn log(text: &str) {
    eprintln!("[bench] {text}");
}

/// A 1 KiB message starting with the time it is made, in nanoseconds since the epoch.
fn message() -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let mut message = format!("{now:019}").into_bytes();
    message.resize(SIZE, b'x');
    message
}

/// `kelp up` and what it needs.
struct Platform {
    kelp: PathBuf,
    kubeconfig: PathBuf,
    child: Child,
}

impl Platform {
    fn start(kelp: &Path, work: &Path, kafka: &Kafka, nats: &Nats) -> Platform {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let kubeconfig = work.join("kubeconfig");
        let child = Command::new(kelp)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(work.join("data"))
            .args(["--kafka-brokers", &kafka.bootstrap(), "--nats-url", &nats.url()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("kelp-up.log")).unwrap())
            .spawn()
            .expect("starting kelp up");
        let platform = Platform { kelp: kelp.to_owned(), kubeconfig, child };
        // The API is behind TLS and the kubeconfig's token: the CLI goes through the context.
        platform.wait("kelp up", || platform.kelp_output(&["get", "namespaces"]).is_some());
        platform
    }

    fn kelp(&self, args: &[&str]) {
        let out = Command::new(&self.kelp).arg("--kubeconfig").arg(&self.kubeconfig).args(args).output().unwrap();
        assert!(out.status.success(), "kelp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// What `kelp <args>` prints, if it succeeds.
    fn kelp_output(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(&self.kelp).arg("--kubeconfig").arg(&self.kubeconfig).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn wait(&self, what: &str, ready: impl Fn() -> bool) {
        let began = Instant::now();
        while !ready() {
            assert!(began.elapsed() < Duration::from_secs(120), "{what} not ready in 120 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a trigger of `kind` (`kafka`, `nats`) and waits until it is subscribed.
    /// Creates a trigger of `kind` (`kafka`, `nats`) with the annotation `kelp.dev/concurrency:
    /// <concurrency>` (`kelp apply -f`) and waits until it is subscribed.
    fn trigger(&self, work: &Path, kind: &str, name: &str, topic: &str, concurrency: usize) {
        let manifest = work.join(format!("{kind}-trigger.yaml"));
        let kind_name = if kind == "kafka" { "KafkaTrigger" } else { "NATSTrigger" };
        let yaml = format!(
            "apiVersion: kubeless.io/v1beta1\nkind: {kind_name}\nmetadata:\n  name: {name}\n  namespace: default\n  \
             annotations:\n    kelp.dev/concurrency: \"{concurrency}\"\nspec:\n  topic: {topic}\n  functionSelector:\n    \
             matchLabels:\n      function: hello\n"
        );
        std::fs::write(&manifest, yaml).unwrap();
        self.kelp(&["apply", "-f", manifest.to_str().unwrap()]);
        let kinds = format!("{kind}triggers");
        self.wait(&format!("trigger {name}"), || {
            self.kelp_output(&["get", &kinds, name, "-o", "json"])
                .is_some_and(|body| body.replace(' ', "").contains(r#""reason":"Subscribed""#))
        });
    }
}

impl Platform {
    /// Creates the Secret `aws` and a KinesisTrigger of `shard` of the stream `bench` at
    /// `endpoint` calling `hello`, and waits until it is subscribed.
    fn kinesis_trigger(&self, work: &Path, endpoint: &str, shard: &str) {
        let manifest = work.join("aws-secret.yaml");
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\n  namespace: default\nstringData:\n  \
                    aws_access_key_id: AKIDBENCH\n  aws_secret_access_key: bench\n";
        std::fs::write(&manifest, yaml).unwrap();
        self.kelp(&["apply", "-f", manifest.to_str().unwrap()]);
        let create = ["trigger", "kinesis", "create", "bench", "--stream", "bench", "--aws-region", "us-east-1"];
        let rest = ["--shard-id", shard, "--function-name", "hello", "--secret", "aws", "--endpoint", endpoint];
        self.kelp(&[&create[..], &rest[..]].concat());
        self.wait("trigger bench (Kinesis)", || {
            self.kelp_output(&["get", "kinesistriggers", "bench", "-o", "json"])
                .is_some_and(|body| body.replace(' ', "").contains(r#""reason":"Subscribed""#))
        });
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// Milliseconds since the time at the start of `message` (see [`message`]).
fn latency_ms(message: &[u8]) -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let sent: u128 = std::str::from_utf8(&message[..19]).unwrap().parse().unwrap();
    (now - sent) as f64 / 1e6
}

/// The latencies (ms) the function noted so far.
fn sink(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| l.parse::<f64>().ok()).map(|ns| ns / 1e6).collect()
}

/// Waits until the function noted `count` messages; the time it took since `since`.
fn delivered(path: &Path, count: usize, since: Instant) -> Duration {
    loop {
        if sink(path).len() >= count {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(600), "{} of {count} delivered", sink(path).len());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Publishes one message with `publish`, `rate` per second for `seconds`, after [`WARMUP`] more.
async fn at_rate<F, Fut>(rate: u64, seconds: u64, mut publish: F) -> usize
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = (rate * seconds) as usize + WARMUP;
    for _ in 0..total {
        tick.tick().await;
        publish(message()).await;
    }
    total
}

struct Row {
    name: String,
    result: String,
    ceiling: String,
    ratio: String,
    target: String,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let kelp = PathBuf::from(args.next().expect("usage: bench <kelp binary> <work dir>"));
    let work = PathBuf::from(args.next().expect("usage: bench <kelp binary> <work dir>"));
    let (messages, partitions, seconds) =
        (env_or("MESSAGES", 20_000), env_or("PARTITIONS", 8), env_or("RATE_SECONDS", 10) as u64);
    log("starting Kafka and nats-server");
    let (kafka, nats) = tokio::task::block_in_place(|| (Kafka::start(), Nats::start()));
    let settings = KafkaSettings::from_env(Some(kafka.bootstrap()), |_| None);
    let partitions_i32 = i32::try_from(partitions).unwrap();
    for topic in ["bench", "bench-rate", "ceiling"] {
        topics::create(&settings, topic, partitions_i32, 1).await.unwrap();
    }
    // No lingering: a message is sent as soon as it is published (the latency rows).
    let producer: FutureProducer = settings.client_config().set("linger.ms", "0").create().unwrap();
    let nats_client = async_nats::connect(nats.url()).await.unwrap();
    let mut rows = Vec::new();

    log("ceilings: the brokers alone, a bare client publishing and consuming");
    let kafka_ceiling = {
        // Partitions assigned directly: no group to join, the broker's own rate.
        let consumer: BaseConsumer = settings.client_config().set("group.id", "ceiling").create().unwrap();
        let mut assignment = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions_i32 {
            assignment.add_partition_offset("ceiling", partition, rdkafka::Offset::Beginning).unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let began = Instant::now();
        let sends: Vec<_> = (0..messages)
            .map(|_| {
                let payload = message();
                producer
                    .send_result(FutureRecord::<(), _>::to("ceiling").payload(&payload))
                    .map_err(|(e, _)| e)
                    .unwrap()
            })
            .collect();
        let received = tokio::task::spawn_blocking(move || {
            let mut received = 0;
            while received < messages {
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                    received += 1;
                }
            }
        });
        for send in sends {
            send.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
        received.await.unwrap();
        messages as f64 / began.elapsed().as_secs_f64()
    };
    let nats_ceiling = {
        let mut subscriber = nats_client.subscribe("ceiling").await.unwrap();
        nats_client.flush().await.unwrap();
        let began = Instant::now();
        let receive = tokio::spawn(async move {
            for _ in 0..messages {
                subscriber.next().await.unwrap();
            }
        });
        for _ in 0..messages {
            nats_client.publish("ceiling", message().into()).await.unwrap();
        }
        nats_client.flush().await.unwrap();
        receive.await.unwrap();
        messages as f64 / began.elapsed().as_secs_f64()
    };

    log("ceilings: publish → bare consumer at 1,000 msg/s");
    let kafka_latency = {
        topics::create(&settings, "ceiling-rate", partitions_i32, 1).await.unwrap();
        let consumer: BaseConsumer = settings.client_config().set("group.id", "ceiling-rate").create().unwrap();
        let mut assignment = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions_i32 {
            assignment.add_partition_offset("ceiling-rate", partition, rdkafka::Offset::Beginning).unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let total = (1000 * seconds) as usize + WARMUP;
        let received = tokio::task::spawn_blocking(move || {
            let mut latencies = Vec::with_capacity(total);
            while latencies.len() < total {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                    latencies.push(latency_ms(rdkafka::Message::payload(&message).unwrap_or_default()));
                }
            }
            latencies
        });
        at_rate(1000, seconds, |payload| {
            let producer = &producer;
            async move {
                let record = FutureRecord::<(), _>::to("ceiling-rate").payload(&payload);
                producer.send(record, Duration::from_secs(30)).await.unwrap();
            }
        })
        .await;
        received.await.unwrap().split_off(WARMUP)
    };
    let nats_latency = {
        let mut subscriber = nats_client.subscribe("ceiling-rate").await.unwrap();
        nats_client.flush().await.unwrap();
        let total = (1000 * seconds) as usize + WARMUP;
        let received = tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            while latencies.len() < total {
                latencies.push(latency_ms(&subscriber.next().await.unwrap().payload));
            }
            latencies
        });
        at_rate(1000, seconds, |payload| {
            let client = &nats_client;
            async move {
                client.publish("ceiling-rate", payload.into()).await.unwrap();
            }
        })
        .await;
        nats_client.flush().await.unwrap();
        received.await.unwrap().split_off(WARMUP)
    };

    log("starting kelp up and the Python hello function");
    let platform = tokio::task::block_in_place(|| Platform::start(&kelp, &work, &kafka, &nats));
    let sink_path = work.join("sink");
    let function = kelp_testkit::repo_root().join("bench/functions/events.py");
    let env = format!("SINK={}", sink_path.display());
    tokio::task::block_in_place(|| {
        let file = function.to_str().unwrap();
        let deploy = ["function", "deploy", "hello", "--runtime", "python3", "--from-file", file];
        platform.kelp(&[&deploy[..], &["--handler", "events.hello", "--env", &env]].concat());
        platform.trigger(&work, "kafka", "bench", "bench", kelp_events::DEFAULT_CONCURRENCY);
        platform.trigger(&work, "nats", "bench", "bench", NATS_CONCURRENCY);
    });

    for (label, ceiling, mut ceiling_latency, target_rate, target_p99) in
        [("Kafka", kafka_ceiling, kafka_latency, 5_000.0, 20.0), ("NATS", nats_ceiling, nats_latency, 10_000.0, 5.0)]
    {
        let publish = |payload: Vec<u8>| {
            let (producer, client) = (&producer, &nats_client);
            async move {
                if label == "Kafka" {
                    producer
                        .send(FutureRecord::<(), _>::to("bench").payload(&payload), Duration::from_secs(30))
                        .await
                        .unwrap();
                } else {
                    client.publish("bench", payload.into()).await.unwrap();
                }
            }
        };
        log(&format!("{label}: {messages} messages as fast as they are published"));
        std::fs::write(&sink_path, "").unwrap();
        let began = Instant::now();
        if label == "Kafka" {
            let sends: Vec<_> = (0..messages)
                .map(|_| {
                    let payload = message();
                    producer
                        .send_result(FutureRecord::<(), _>::to("bench").payload(&payload))
                        .map_err(|(e, _)| e)
                        .unwrap()
                })
                .collect();
            for send in sends {
                send.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        } else {
            for _ in 0..messages {
                publish(message()).await;
            }
            nats_client.flush().await.unwrap();
        }
        let took = tokio::task::block_in_place(|| delivered(&sink_path, messages, began));
        let rate = messages as f64 / took.as_secs_f64();
        rows.push(Row {
            name: if label == "Kafka" {
                format!(
                    "Kafka → Python hello, {messages} × 1 KiB, at least once ({partitions} partitions, concurrency {})",
                    kelp_events::DEFAULT_CONCURRENCY
                )
            } else {
                format!("NATS → Python hello, {messages} × 1 KiB (`kelp.dev/concurrency: \"{NATS_CONCURRENCY}\"`)")
            },
            result: format!("{} msg/s", thousands(rate)),
            ceiling: format!("{} msg/s", thousands(ceiling)),
            ratio: format!("{:.2}", rate / ceiling),
            target: format!("≥ {} msg/s: {}", thousands(target_rate), verdict(rate >= target_rate)),
        });

        log(&format!("{label}: 1,000 msg/s for {seconds} s"));
        std::fs::write(&sink_path, "").unwrap();
        let sent = at_rate(1000, seconds, publish).await;
        nats_client.flush().await.unwrap();
        tokio::task::block_in_place(|| delivered(&sink_path, sent, Instant::now()));
        let mut latencies = sink(&sink_path).split_off(WARMUP);
        latencies.sort_by(f64::total_cmp);
        ceiling_latency.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        let (c50, c99) = (percentile(&ceiling_latency, 0.5), percentile(&ceiling_latency, 0.99));
        rows.push(Row {
            name: format!("{label} → Python hello, publish → function at 1,000 msg/s"),
            result: format!("p50 {p50:.2} ms · p99 {p99:.2} ms"),
            ceiling: format!("p50 {c50:.2} ms · p99 {c99:.2} ms"),
            ratio: format!("{:.2} · {:.2}", p50 / c50, p99 / c99),
            target: format!("p99 ≤ {target_p99} ms: {}", verdict(p99 <= target_p99)),
        });
    }

    let records = env_or("KINESIS_RECORDS", 2000);
    log(&format!("Kinesis: {records} records put one after another, then read (moto alone)"));
    let kinesis = tokio::task::block_in_place(Kinesis::start);
    let credentials = Credentials { access_key_id: "AKIDBENCH".into(), secret_access_key: "bench".into() };
    let aws = Client::new(Some(&kinesis.endpoint()), "us-east-1", credentials).unwrap();
    let shard = "shardId-000000000000";
    for stream in ["ceiling", "bench"] {
        aws.create_stream(stream, 1).await.unwrap();
    }
    let kinesis_ceiling = {
        let began = Instant::now();
        for _ in 0..records {
            aws.put_record("ceiling", "k", &message()).await.unwrap();
        }
        let mut iterator = aws.shard_iterator("ceiling", shard, &Start::Oldest).await.unwrap();
        let mut read = 0;
        while read < records {
            let batch = aws.get_records(&iterator, kelp_events::kinesis::MAX_RECORDS).await.unwrap();
            read += batch.records.len();
            iterator = batch.next.unwrap();
        }
        records as f64 / began.elapsed().as_secs_f64()
    };
    log(&format!("Kinesis: {records} records through a KinesisTrigger"));
    let endpoint = kinesis.endpoint();
    tokio::task::block_in_place(|| platform.kinesis_trigger(&work, &endpoint, shard));
    std::fs::write(&sink_path, "").unwrap();
    let began = Instant::now();
    for _ in 0..records {
        aws.put_record("bench", "k", &message()).await.unwrap();
    }
    let took = tokio::task::block_in_place(|| delivered(&sink_path, records, began));
    let rate = records as f64 / took.as_secs_f64();
    rows.push(Row {
        name: format!("Kinesis (moto) → Python hello, {records} × 1 KiB put one by one, at least once (one shard)"),
        result: format!("{} records/s", thousands(rate)),
        ceiling: format!("{} records/s (put → get)", thousands(kinesis_ceiling)),
        ratio: format!("{:.2}", rate / kinesis_ceiling),
        target: "—".into(),
    });
    drop(platform);

    println!("| Benchmark | Result | Ceiling: the broker alone | Ratio | Target |");
    println!("|---|--:|--:|--:|---|");
    for row in &rows {
        println!("| {} | {} | {} | {} | {} |", row.name, row.result, row.ceiling, row.ratio, row.target);
    }
    println!();
    println!(
        "Method: a private Kafka 4.1.1 (KRaft, one broker, {partitions} partitions) and nats-server \
         and moto's Kinesis (kelp-brokers), `kelp up` with a KafkaTrigger, a NATSTrigger and a \
         KinesisTrigger calling one Python hello \
         function (bench/functions/events.py, which notes publish → call time per message); \
         throughput: {messages} messages of 1 KiB published as fast as the client goes, timed from the \
         first publish to the last call; latency: {seconds} s at 1,000 msg/s after a second of \
         warm-up, percentiles of every message. Ceiling: the same measures with a bare client (an rdkafka consumer with its \
         partitions assigned / an async-nats subscriber) in place of kelp up and the function, in the \
         same run; ratio: kelp's figure over the ceiling's. Kinesis: {records} records put one after \
         another to a one-shard stream, timed from the first put to the last call; its ceiling is \
         the same puts followed by GetRecords until all are read, on moto alone."
    );
}

/// `12,345`.
fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}
