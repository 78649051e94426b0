//! Kafka topics through the admin API against the configured brokers — what `kelp topic`
//! does, where Kubeless exec'ed `kafka-topics.sh` in a broker pod.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{Error, KafkaSettings};

/// How long one admin request or publish may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Creates `topic` with `partitions` partitions, each on `replication` brokers.
pub async fn create(settings: &KafkaSettings, topic: &str, partitions: i32, replication: i32) -> Result<(), Error> {
    let admin = admin(settings)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let results = admin.create_topics([&new], &options()).await.map_err(kafka)?;
    results.into_iter().try_for_each(|r| r.map(drop).map_err(|(topic, code)| Error::Kafka(format!("{topic}: {code}"))))
}

/// Deletes `topic`.
pub async fn delete(settings: &KafkaSettings, topic: &str) -> Result<(), Error> {
    let admin = admin(settings)?;
    let results = admin.delete_topics(&[topic], &options()).await.map_err(kafka)?;
    results.into_iter().try_for_each(|r| r.map(drop).map_err(|(topic, code)| Error::Kafka(format!("{topic}: {code}"))))
}

/// The topics of the cluster, sorted, without Kafka's internal ones (`__consumer_offsets`, ...).
pub async fn list(settings: &KafkaSettings) -> Result<Vec<String>, Error> {
    let admin = admin(settings)?;
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, TIMEOUT))
        .await
        .map_err(|e| Error::Kafka(e.to_string()))?
        .map_err(kafka)?;
    let mut topics: Vec<String> =
        metadata.topics().iter().map(|t| t.name().to_owned()).filter(|t| !t.starts_with("__")).collect();
    topics.sort();
    Ok(topics)
}

/// Publishes `payload` (with `key`, when given) to `topic` and waits for the broker's
/// acknowledgement; returns the partition and offset it was written at.
pub async fn publish(
    settings: &KafkaSettings,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
) -> Result<(i32, i64), Error> {
    let producer: FutureProducer = settings.client_config().create().map_err(kafka)?;
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    let delivery = producer.send(record, TIMEOUT).await.map_err(|(e, _)| kafka(e))?;
    Ok((delivery.partition, delivery.offset))
}

fn admin(settings: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, Error> {
    settings.client_config().create().map_err(kafka)
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT))
}

fn kafka(e: rdkafka::error::KafkaError) -> Error {
    Error::Kafka(e.to_string())
}
