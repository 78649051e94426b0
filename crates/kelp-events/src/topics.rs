//! Kafka topics through the admin API against the configured brokers — what `kelp topic`
//! does, where Kubeless exec'ed `kafka-topics.sh` in a broker pod.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

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

/// The messages of `topic` that the consumer group `group` has not committed, over all its
/// partitions: what the group's members together still have to deliver, whichever member
/// (replica) owns which partition. A partition the group never committed counts from its
/// earliest offset.
pub async fn group_lag(settings: &KafkaSettings, group: &str, topic: &str, timeout: Duration) -> Result<i64, Error> {
    let mut config = settings.client_config();
    // Not subscribed, it never joins the group: it only reads the group's committed offsets.
    config.set("group.id", group).set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().map_err(kafka)?;
    let topic = topic.to_owned();
    let lag = tokio::task::spawn_blocking(move || -> Result<i64, rdkafka::error::KafkaError> {
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let partitions: Vec<i32> =
            metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let mut list = TopicPartitionList::new();
        for partition in &partitions {
            list.add_partition(&topic, *partition);
        }
        let committed = consumer.committed_offsets(list, timeout)?;
        let mut lag = 0i64;
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
            let committed = match committed.find_partition(&topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => Some(offset),
                _ => None,
            };
            lag = lag.saturating_add(partition_lag(low, high, committed));
        }
        Ok(lag)
    });
    lag.await.map_err(|e| Error::Kafka(e.to_string()))?.map_err(kafka)
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

/// The messages of one partition between `committed` (else the earliest offset, `low`) and the
/// end (`high`); never negative, and saturating whatever watermarks a broker reports.
fn partition_lag(low: i64, high: i64, committed: Option<i64>) -> i64 {
    let done = committed.map_or(low, |offset| offset.max(low));
    high.saturating_sub(done).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_counted_from_the_committed_offset_and_saturates() {
        assert_eq!(partition_lag(0, 10, Some(4)), 6);
        assert_eq!(partition_lag(5, 10, None), 5);
        assert_eq!(partition_lag(5, 10, Some(2)), 5);
        assert_eq!(partition_lag(0, 3, Some(9)), 0);
        // A broker reporting absurd watermarks: no overflow.
        assert_eq!(partition_lag(i64::MIN, i64::MAX, None), i64::MAX);
    }
}
