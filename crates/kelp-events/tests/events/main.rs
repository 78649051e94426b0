//! The delivery engine against real brokers (`kelp-brokers`: Kafka 4.1.1 in KRaft mode,
//! nats-server with JetStream), with functions that are in-process [`kelp_events::Invoke`]
//! implementations recording every call — the host's side of the trait, not a stand-in for a
//! broker. `kelp up`'s tests (crates/kelp-up) call real Python functions.

mod kafka;
mod kinesis;
mod nats;
mod support;
