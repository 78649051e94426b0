//! `kelp topic create|delete|list|publish`: Kafka topics through the admin API of the brokers
//! (`--kafka-brokers`, else `KAFKA_BROKERS`, with Kubeless's TLS and SASL variables), where
//! Kubeless exec'ed `kafka-topics.sh` in its broker pod; and `kelp trigger nats publish`.
//! `--kafka-namespace` (where Kubeless looked for that pod) is accepted and not needed.

use anyhow::Context as _;
use kelp_events::{KafkaSettings, topics};

use crate::output::{emit, info};

/// `kelp topic ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a Kafka topic
    Create(CreateArgs),
    /// Delete a Kafka topic
    Delete(NameArgs),
    /// List the Kafka topics, one per line
    #[command(visible_alias = "ls")]
    List(Brokers),
    /// Publish a message to a Kafka topic
    Publish(PublishArgs),
}

/// Where the brokers are.
#[derive(Debug, clap::Args)]
pub(crate) struct Brokers {
    /// Kafka bootstrap servers, comma-separated
    #[arg(long, value_name = "HOST:PORT,...", env = "KAFKA_BROKERS", default_value = kelp_events::DEFAULT_KAFKA_BROKERS)]
    kafka_brokers: String,
    /// Accepted for Kubeless's scripts; Kelp talks to the brokers, not to a broker pod
    #[arg(long = "kafka-namespace", value_name = "NAMESPACE", default_value = "kubeless")]
    _kafka_namespace: String,
}

impl Brokers {
    fn settings(&self) -> KafkaSettings {
        KafkaSettings::from_env(Some(self.kafka_brokers.clone()), |name| std::env::var(name).ok())
    }
}

/// `topic create`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The topic
    topic: String,
    /// Partitions
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Brokers holding each partition
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    #[command(flatten)]
    brokers: Brokers,
}

/// `topic delete`.
#[derive(Debug, clap::Args)]
pub(crate) struct NameArgs {
    /// The topic
    topic: String,
    #[command(flatten)]
    brokers: Brokers,
}

/// `topic publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// The topic
    #[arg(long, default_value = "kubeless")]
    topic: String,
    /// The message
    #[arg(long)]
    data: String,
    /// The message's key (messages of one key keep their order)
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    brokers: Brokers,
}

/// `trigger nats publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct NatsPublishArgs {
    /// The NATS server, e.g. nats://127.0.0.1:4222
    #[arg(long)]
    url: String,
    /// The subject
    #[arg(long, default_value = "kubeless")]
    topic: String,
    /// The message
    #[arg(long)]
    message: String,
}

/// Runs a `topic` subcommand.
pub(crate) async fn run(command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create(args) => {
            let settings = args.brokers.settings();
            topics::create(&settings, &args.topic, args.partitions, args.replication_factor).await?;
            info(format!("Created topic {}.", args.topic));
            Ok(())
        }
        TopicCommand::Delete(args) => {
            topics::delete(&args.brokers.settings(), &args.topic).await?;
            info(format!("Deleted topic {}.", args.topic));
            Ok(())
        }
        TopicCommand::List(brokers) => {
            let listed = topics::list(&brokers.settings()).await?;
            emit(listed.iter().map(|t| format!("{t}\n")).collect::<String>())
        }
        TopicCommand::Publish(args) => {
            let key = args.key.as_deref().map(str::as_bytes);
            let (partition, offset) =
                topics::publish(&args.brokers.settings(), &args.topic, key, args.data.as_bytes()).await?;
            info(format!("Published to {} (partition {partition}, offset {offset})", args.topic));
            Ok(())
        }
    }
}

/// Publishes one message to a NATS subject (`kelp trigger nats publish`).
pub(crate) async fn nats_publish(args: NatsPublishArgs) -> anyhow::Result<()> {
    let client = async_nats::connect(&args.url).await.with_context(|| format!("connecting to {}", args.url))?;
    client.publish(args.topic.clone(), args.message.into_bytes().into()).await?;
    client.flush().await.with_context(|| format!("publishing to {}", args.topic))?;
    info(format!("Published to {}", args.topic));
    Ok(())
}
