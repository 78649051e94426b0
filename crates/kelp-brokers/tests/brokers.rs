//! The brokers start, accept connections, and come back after a crash on the same port.

use std::net::TcpStream;

use kelp_brokers::{Kafka, Nats};

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
