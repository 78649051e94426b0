//! The brokers start, accept connections, and come back after a crash on the same port.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use kelp_brokers::{Kafka, Kinesis, Nats};

fn accepts(address: &str) -> bool {
    TcpStream::connect(address).is_ok()
}

#[test]
fn kafka_starts_stops_and_starts_again() {
    let kafka = Kafka::start();
    assert!(accepts(&kafka.bootstrap()), "{}", kafka.log_tail());
    kafka.stop();
    assert!(!accepts(&kafka.bootstrap()));
    kafka.start_again();
    assert!(accepts(&kafka.bootstrap()), "{}", kafka.log_tail());
}

#[test]
fn nats_starts_with_jetstream_and_starts_again() {
    let nats = Nats::shared();
    let address = nats.url().trim_start_matches("nats://").to_owned();
    assert!(accepts(&address), "{}", nats.log_tail());
    let private = Nats::start();
    private.stop();
    private.start_again();
    let log = std::fs::read_to_string(private.dir().join("nats-server.log")).unwrap();
    assert_eq!(log.matches("Starting JetStream").count(), 2, "{log}");
    assert!(private.dir().join("jetstream").is_dir());
}

#[test]
fn kinesis_answers_the_json_api() {
    let kinesis = Kinesis::shared();
    let address = kinesis.endpoint().trim_start_matches("http://").to_owned();
    let call = |action: &str, body: &str| {
        let mut stream = TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {address}\r\nX-Amz-Target: Kinesis_20131202.{action}\r\n\
             Content-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=AKID/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let created = call("CreateStream", r#"{"StreamName":"brokers-test","ShardCount":2}"#);
    assert!(created.starts_with("HTTP/1.1 200"), "{created}\n{}", kinesis.log_tail());
    let shards = call("ListShards", r#"{"StreamName":"brokers-test"}"#);
    assert_eq!(shards.matches("\"ShardId\"").count(), 2, "{shards}");
}
