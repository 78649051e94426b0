//! `kelp topic create|delete|list|publish`: Kafka topics through the admin API of the brokers,
//! where Kubeless exec'ed `kafka-topics.sh` in its broker pod; and `kelp trigger nats publish`.
//! The brokers are `--kafka-brokers`, else `KAFKA_BROKERS`, else the `kafka-brokers` key of the
//! current context's `kubeless-config` (which `kelp up` sets to its own brokers, and `kelp
//! install --kafka-brokers` on a cluster), else Kubeless's `kafka.kubeless:9092`; with Kubeless's
//! TLS and SASL variables. `--kafka-namespace` (where Kubeless looked for that pod) is accepted
//! and not needed.

use std::time::Duration;

use anyhow::Context as _;
use kelp_events::{KafkaSettings, topics};

use crate::cmd::server_config::config_value;
use crate::output::{emit, info};
use crate::target::{GlobalArgs, connect};

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
    /// Kafka bootstrap servers, comma-separated [default: the kafka-brokers of the context's
    /// kubeless-config, else kafka.kubeless:9092]
    #[arg(long, value_name = "HOST:PORT,...", env = "KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Accepted for Kubeless's scripts; Kelp talks to the brokers, not to a broker pod
    #[arg(long = "kafka-namespace", value_name = "NAMESPACE", default_value = "kubeless")]
    _kafka_namespace: String,
}

/// How long looking up the brokers in the context's `kubeless-config` may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl Brokers {
    async fn settings(&self, global: &GlobalArgs) -> KafkaSettings {
        let brokers = match self.kafka_brokers.clone().filter(|b| !b.is_empty()) {
            Some(brokers) => brokers,
            None => configured_brokers(global).await.unwrap_or_else(|| kelp_events::DEFAULT_KAFKA_BROKERS.to_owned()),
        };
        KafkaSettings::from_env(Some(brokers), |name| std::env::var(name).ok())
    }
}

/// The `kafka-brokers` of the current context's `kubeless-config`, if it can be read.
async fn configured_brokers(global: &GlobalArgs) -> Option<String> {
    let lookup = async {
        let target = connect(global).await.ok()?;
        config_value(&target, kelp_plan::KAFKA_BROKERS_KEY).await
    };
    tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await.ok().flatten()
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
pub(crate) async fn run(global: &GlobalArgs, command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create(args) => {
            let settings = args.brokers.settings(global).await;
            topics::create(&settings, &args.topic, args.partitions, args.replication_factor).await?;
            info(format!("Created topic {}.", args.topic));
            Ok(())
        }
        TopicCommand::Delete(args) => {
            topics::delete(&args.brokers.settings(global).await, &args.topic).await?;
            info(format!("Deleted topic {}.", args.topic));
            Ok(())
        }
        TopicCommand::List(brokers) => {
            let listed = topics::list(&brokers.settings(global).await).await?;
            emit(listed.iter().map(|t| format!("{t}\n")).collect::<String>())
        }
        TopicCommand::Publish(args) => {
            let key = args.key.as_deref().map(str::as_bytes);
            let (partition, offset) =
                topics::publish(&args.brokers.settings(global).await, &args.topic, key, args.data.as_bytes()).await?;
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
