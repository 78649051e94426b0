//! `kelp trigger http|cronjob|kafka|nats|kinesis create|update|delete|list`, `nats publish`, and
//! `kinesis publish|create-stream` (through `kelp-events`' Kinesis client, with the credentials of
//! the Secret named by `--secret`).

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use kube::api::ListParams;
use serde_json::Value;

use super::{DryRunArgs, create_json, delete_object, describe, get_json, kind, not_found, patch_json, require_json};
use crate::build::kv::parse_label_selector;
use crate::build::to_object;
use crate::build::trigger::{
    CronTriggerFlags, HttpTriggerFlags, KinesisTriggerFlags, TopicKind, cron_trigger_patch, http_trigger_patch,
    kinesis_trigger_patch, new_cron_trigger, new_http_trigger, new_kinesis_trigger, new_topic_trigger, parse_payload,
    topic_trigger_patch,
};
use crate::fetch::read_source;
use crate::kinds::KindInfo;
use crate::output::{Format, emit, info, render};
use crate::table::{Table, kubeless};
use crate::target::{GlobalArgs, Target, connect, namespace_only};

/// `kelp trigger ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TriggerCommand {
    /// HTTP triggers: an Ingress to a function
    #[command(subcommand)]
    Http(HttpCommand),
    /// Cron job triggers: call a function on a schedule
    #[command(subcommand)]
    Cronjob(CronCommand),
    /// Kafka triggers: call the selected functions for each message of a topic
    #[command(subcommand)]
    Kafka(TopicCommand),
    /// NATS triggers: call the selected functions for each message of a subject
    #[command(subcommand)]
    Nats(NatsCommand),
    /// Kinesis triggers: call a function for each record of a stream's shard
    #[command(subcommand)]
    Kinesis(KinesisCommand),
}

/// `trigger kinesis ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KinesisCommand {
    /// Create a Kinesis trigger
    Create(KinesisCreateArgs),
    /// Update a Kinesis trigger: only what the flags given change
    Update(KinesisUpdateArgs),
    /// Delete a Kinesis trigger
    Delete(TriggerName),
    /// List Kinesis triggers
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Put records into a Kinesis stream
    Publish(KinesisPublishArgs),
    /// Create a Kinesis stream
    CreateStream(KinesisStreamArgs),
}

/// The flags of `trigger kinesis create` (all but `--endpoint` required, as the kubeless CLI's)
/// and `update` (all optional).
#[derive(Debug, clap::Args)]
pub(crate) struct KinesisFlags {
    /// Name of the AWS Kinesis stream
    #[arg(long, value_name = "STREAM")]
    stream: Option<String>,
    /// AWS region in which the stream is
    #[arg(long = "aws-region", value_name = "REGION")]
    aws_region: Option<String>,
    /// Shard ID of the stream
    #[arg(long = "shard-id", value_name = "SHARD")]
    shard_id: Option<String>,
    /// The function to call for each record
    #[arg(long = "function-name", value_name = "FUNCTION")]
    function_name: Option<String>,
    /// Secret with the keys aws_access_key_id and aws_secret_access_key
    #[arg(long, value_name = "SECRET")]
    secret: Option<String>,
    /// Use this URL instead of AWS's endpoint of the region
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    #[command(flatten)]
    dry_run: DryRunArgs,
}

impl KinesisFlags {
    fn flags(&self) -> KinesisTriggerFlags {
        KinesisTriggerFlags {
            stream: self.stream.clone(),
            aws_region: self.aws_region.clone(),
            shard_id: self.shard_id.clone(),
            function_name: self.function_name.clone(),
            secret: self.secret.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
}

/// `trigger kinesis create`.
#[derive(Debug, clap::Args)]
pub(crate) struct KinesisCreateArgs {
    /// The trigger's name
    name: String,
    #[command(flatten)]
    flags: KinesisFlags,
}

/// `trigger kinesis update`.
#[derive(Debug, clap::Args)]
pub(crate) struct KinesisUpdateArgs {
    /// The trigger's name
    name: String,
    #[command(flatten)]
    flags: KinesisFlags,
}

/// Where `trigger kinesis publish|create-stream` reach Kinesis.
#[derive(Debug, clap::Args)]
pub(crate) struct KinesisAccess {
    /// AWS region of the stream
    #[arg(long = "aws-region", value_name = "REGION")]
    aws_region: String,
    /// Secret with the keys aws_access_key_id and aws_secret_access_key
    #[arg(long, value_name = "SECRET")]
    secret: String,
    /// Use this URL instead of AWS's endpoint of the region
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
}

/// `trigger kinesis publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct KinesisPublishArgs {
    /// Name of the stream
    #[arg(long, value_name = "STREAM")]
    stream: String,
    /// Partition key of the records
    #[arg(long = "partition-key", value_name = "KEY")]
    partition_key: String,
    /// A record to put (repeat for more)
    #[arg(long, value_name = "RECORD", required = true)]
    records: Vec<String>,
    #[command(flatten)]
    access: KinesisAccess,
}

/// `trigger kinesis create-stream`.
#[derive(Debug, clap::Args)]
pub(crate) struct KinesisStreamArgs {
    /// The stream's name, when --stream-name is not given (the kubeless CLI's usage line shows
    /// one, which it ignored)
    name: Option<String>,
    /// Name of the stream
    #[arg(long = "stream-name", value_name = "STREAM")]
    stream_name: Option<String>,
    /// The number of shards
    #[arg(long = "shard-count", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    shard_count: u32,
    #[command(flatten)]
    access: KinesisAccess,
}

/// `trigger nats ...`: the Kafka trigger commands, plus `publish`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum NatsCommand {
    #[command(flatten)]
    Trigger(TopicCommand),
    /// Publish a message to a NATS subject
    Publish(crate::cmd::topic::NatsPublishArgs),
}

/// `trigger http ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum HttpCommand {
    /// Create an HTTP trigger
    Create(HttpCreateArgs),
    /// Update an HTTP trigger: only what the flags given change
    Update(HttpUpdateArgs),
    /// Delete an HTTP trigger
    Delete(TriggerName),
    /// List HTTP triggers
    #[command(visible_alias = "ls")]
    List(ListArgs),
}

/// The flags `trigger http create` and `update` share.
#[derive(Debug, clap::Args)]
pub(crate) struct HttpFlags {
    /// Ingress path for the function (without the leading /)
    #[arg(long)]
    path: Option<String>,
    /// Host name of the Ingress rule (nginx default: <function>.<API server address>.nip.io)
    #[arg(long)]
    hostname: Option<String>,
    /// TLS through ACME (kube-lego / cert-manager annotations)
    #[arg(long = "enableTLSAcme", alias = "enable-tls-acme", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cmd::pflag_bool, value_name = "BOOL")]
    enable_tls_acme: Option<bool>,
    /// An existing TLS Secret for the host
    #[arg(long = "tls-secret", value_name = "SECRET")]
    tls_secret: Option<String>,
    /// A Secret with an htpasswd `auth` key for basic authentication
    #[arg(long = "basic-auth-secret", value_name = "SECRET")]
    basic_auth_secret: Option<String>,
    /// Enable CORS on the Ingress
    #[arg(long = "cors-enable", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cmd::pflag_bool, value_name = "BOOL")]
    cors_enable: Option<bool>,
    #[command(flatten)]
    dry_run: DryRunArgs,
}

/// `trigger http create`.
#[derive(Debug, clap::Args)]
pub(crate) struct HttpCreateArgs {
    /// The trigger's name
    name: String,
    /// The function to expose
    #[arg(long = "function-name", value_name = "FUNCTION")]
    function_name: String,
    /// Ingress gateway: nginx, traefik or kong
    #[arg(long, default_value = "nginx")]
    gateway: String,
    #[command(flatten)]
    flags: HttpFlags,
}

/// `trigger http update`.
#[derive(Debug, clap::Args)]
pub(crate) struct HttpUpdateArgs {
    /// The trigger's name
    name: String,
    /// The function to expose
    #[arg(long = "function-name", value_name = "FUNCTION")]
    function_name: Option<String>,
    /// Ingress gateway: nginx, traefik or kong
    #[arg(long)]
    gateway: Option<String>,
    #[command(flatten)]
    flags: HttpFlags,
}

/// A command taking a trigger name.
#[derive(Debug, clap::Args)]
pub(crate) struct TriggerName {
    /// The trigger's name
    name: String,
}

/// `trigger ... list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Output format: json or yaml (default: a table)
    #[arg(short = 'o', long = "out", visible_alias = "output", value_enum)]
    output: Option<Format>,
}

/// `trigger cronjob ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CronCommand {
    /// Create a cron job trigger
    Create(CronCreateArgs),
    /// Update a cron job trigger: only what the flags given change
    Update(CronUpdateArgs),
    /// Delete a cron job trigger
    Delete(TriggerName),
    /// List cron job triggers
    #[command(visible_alias = "ls")]
    List(ListArgs),
}

/// Payload flags of `trigger cronjob create|update`.
#[derive(Debug, clap::Args)]
pub(crate) struct PayloadArgs {
    /// JSON to send as the request body
    #[arg(short = 'p', long, value_name = "JSON")]
    payload: Option<String>,
    /// A file with the JSON to send as the request body
    #[arg(short = 'f', long = "payload-from-file", value_name = "FILE")]
    payload_from_file: Option<String>,
}

impl PayloadArgs {
    async fn load(&self) -> anyhow::Result<Option<Value>> {
        let file = match &self.payload_from_file {
            Some(path) => Some((path.as_str(), read_source(path).await?)),
            None => None,
        };
        Ok(parse_payload(self.payload.as_deref(), file.as_ref().map(|(p, b)| (*p, b.as_slice())))?)
    }
}

/// `trigger cronjob create`.
#[derive(Debug, clap::Args)]
pub(crate) struct CronCreateArgs {
    /// The trigger's name
    name: String,
    /// The function to call
    #[arg(long, value_name = "FUNCTION")]
    function: String,
    /// A 5-field cron schedule, e.g. "*/5 * * * *", or @hourly, @daily, ...
    #[arg(long)]
    schedule: String,
    #[command(flatten)]
    payload: PayloadArgs,
    #[command(flatten)]
    dry_run: DryRunArgs,
}

/// `trigger cronjob update`.
#[derive(Debug, clap::Args)]
pub(crate) struct CronUpdateArgs {
    /// The trigger's name
    name: String,
    /// The function to call
    #[arg(long, value_name = "FUNCTION")]
    function: Option<String>,
    /// A 5-field cron schedule
    #[arg(long)]
    schedule: Option<String>,
    #[command(flatten)]
    payload: PayloadArgs,
    #[command(flatten)]
    dry_run: DryRunArgs,
}

/// `trigger kafka|nats ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a trigger
    Create(TopicCreateArgs),
    /// Update a trigger: only what the flags given change
    Update(TopicUpdateArgs),
    /// Delete a trigger
    Delete(TriggerName),
    /// List triggers
    #[command(visible_alias = "ls")]
    List(ListArgs),
}

/// `trigger kafka|nats create`.
#[derive(Debug, clap::Args)]
pub(crate) struct TopicCreateArgs {
    /// The trigger's name
    name: String,
    /// The topic (Kafka) or subject (NATS) to consume
    #[arg(long = "trigger-topic", value_name = "TOPIC")]
    trigger_topic: String,
    /// The functions to call, as a label query, e.g. created-by=kubeless,function=hello
    #[arg(long = "function-selector", value_name = "QUERY")]
    function_selector: String,
    #[command(flatten)]
    dry_run: DryRunArgs,
}

/// `trigger kafka|nats update`.
#[derive(Debug, clap::Args)]
pub(crate) struct TopicUpdateArgs {
    /// The trigger's name
    name: String,
    /// The topic (Kafka) or subject (NATS) to consume
    #[arg(long = "trigger-topic", value_name = "TOPIC")]
    trigger_topic: Option<String>,
    /// The functions to call, as a label query
    #[arg(long = "function-selector", value_name = "QUERY")]
    function_selector: Option<String>,
    #[command(flatten)]
    dry_run: DryRunArgs,
}

/// Runs a `trigger` subcommand.
pub(crate) async fn run(global: &GlobalArgs, command: TriggerCommand) -> anyhow::Result<()> {
    match command {
        TriggerCommand::Http(HttpCommand::Create(args)) => http_create(global, args).await,
        TriggerCommand::Http(HttpCommand::Update(args)) => http_update(global, args).await,
        TriggerCommand::Http(HttpCommand::Delete(args)) => delete(global, kind("HTTPTrigger"), "HTTP", args).await,
        TriggerCommand::Http(HttpCommand::List(args)) => list(global, kind("HTTPTrigger"), args).await,
        TriggerCommand::Cronjob(CronCommand::Create(args)) => cron_create(global, args).await,
        TriggerCommand::Cronjob(CronCommand::Update(args)) => cron_update(global, args).await,
        TriggerCommand::Cronjob(CronCommand::Delete(args)) => {
            delete(global, kind("CronJobTrigger"), "Cronjob", args).await
        }
        TriggerCommand::Cronjob(CronCommand::List(args)) => list(global, kind("CronJobTrigger"), args).await,
        TriggerCommand::Kafka(command) => topic(global, TopicKind::Kafka, command).await,
        TriggerCommand::Nats(NatsCommand::Trigger(command)) => topic(global, TopicKind::Nats, command).await,
        TriggerCommand::Nats(NatsCommand::Publish(args)) => crate::cmd::topic::nats_publish(args).await,
        TriggerCommand::Kinesis(command) => kinesis(global, command).await,
    }
}

async fn kinesis(global: &GlobalArgs, command: KinesisCommand) -> anyhow::Result<()> {
    let trigger_kind = kind("KinesisTrigger");
    match command {
        KinesisCommand::Create(args) => {
            let flags = args.flags.flags();
            // The kubeless CLI's (cobra's) words for them.
            let missing: Vec<String> = [
                ("stream", &flags.stream),
                ("aws-region", &flags.aws_region),
                ("shard-id", &flags.shard_id),
                ("function-name", &flags.function_name),
                ("secret", &flags.secret),
            ]
            .into_iter()
            .filter(|(_, value)| value.as_deref().is_none_or(str::is_empty))
            .map(|(flag, _)| format!("\"{flag}\""))
            .collect();
            if !missing.is_empty() {
                return Err(anyhow!("required flag(s) {} not set", missing.join(", ")));
            }
            if args.flags.dry_run.dryrun {
                let namespace = namespace_only(global)?.namespace;
                let trigger = new_kinesis_trigger(&args.name, &namespace, &flags)?;
                trigger_kind.validate(&trigger)?;
                return emit(render(args.flags.dry_run.output, &trigger)?);
            }
            let target = connect(global).await?;
            let trigger = new_kinesis_trigger(&args.name, &target.namespace, &flags)?;
            trigger_kind.validate(&trigger)?;
            require_function(&target, flags.function_name.as_deref().unwrap_or_default()).await?;
            aws_credentials(&target, flags.secret.as_deref().unwrap_or_default()).await?;
            create_json(&target, trigger_kind, &target.namespace, &trigger).await.with_context(|| {
                format!("Failed to create Kinesis trigger object {} in namespace {}", args.name, target.namespace)
            })?;
            info(format!("Kinesis trigger {} created in namespace {} successfully!", args.name, target.namespace));
            Ok(())
        }
        KinesisCommand::Update(args) => {
            let flags = args.flags.flags();
            let target = connect(global).await?;
            let current = require_json(&target, trigger_kind, &target.namespace, &args.name).await?;
            if let Some(function) = &flags.function_name {
                require_function(&target, function).await?;
            }
            let patch = kinesis_trigger_patch(&current, &flags)?;
            let dry_run = args.flags.dry_run;
            apply_patch::<kelp_api::KinesisTrigger>(&target, trigger_kind, &args.name, &current, &patch, dry_run)
                .await?;
            if !dry_run.dryrun {
                info(format!("Kinesis trigger {} updated in namespace {} successfully!", args.name, target.namespace));
            }
            Ok(())
        }
        KinesisCommand::Delete(args) => delete(global, trigger_kind, "Kinesis", args).await,
        KinesisCommand::List(args) => list(global, trigger_kind, args).await,
        KinesisCommand::Publish(args) => {
            let client = kinesis_client(global, &args.access).await?;
            for record in &args.records {
                client
                    .put_record(&args.stream, &args.partition_key, record.as_bytes())
                    .await
                    .with_context(|| format!("Failed to put a record in the stream {}", args.stream))?;
            }
            info(format!("Published {} record(s) to stream {}", args.records.len(), args.stream));
            Ok(())
        }
        KinesisCommand::CreateStream(args) => {
            let stream = args
                .stream_name
                .clone()
                .or(args.name.clone())
                .ok_or_else(|| anyhow!(r#"required flag(s) "stream-name" not set"#))?;
            let client = kinesis_client(global, &args.access).await?;
            client.create_stream(&stream, args.shard_count).await.context("Failed to create Kinesis stream")?;
            info(format!("Kinesis stream {stream} created with {} shard(s)", args.shard_count));
            Ok(())
        }
    }
}

/// The AWS credentials of the Secret `name` in the target's namespace.
async fn aws_credentials(target: &Target, name: &str) -> anyhow::Result<kelp_events::kinesis::Credentials> {
    let secret = get_json(target, kind("Secret"), &target.namespace, name)
        .await?
        .ok_or_else(|| anyhow!("Secret {name} not found in namespace {}", target.namespace))?;
    let value = |key: &str| {
        let encoded = secret.pointer("/data").and_then(|d| d.get(key)).and_then(Value::as_str)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        String::from_utf8(bytes).ok()
    };
    kelp_events::kinesis::Credentials::from_secret_data(name, value).map_err(|e| anyhow!(e))
}

/// A Kinesis client with the credentials of `--secret`.
async fn kinesis_client(global: &GlobalArgs, access: &KinesisAccess) -> anyhow::Result<kelp_events::kinesis::Client> {
    let target = connect(global).await?;
    let credentials = aws_credentials(&target, &access.secret).await?;
    Ok(kelp_events::kinesis::Client::new(access.endpoint.as_deref(), &access.aws_region, credentials)?)
}

/// Checks that the function a trigger names exists.
async fn require_function(target: &Target, function: &str) -> anyhow::Result<()> {
    require_json(target, kind("Function"), &target.namespace, function)
        .await
        .map(drop)
        .map_err(|e| anyhow!("Unable to find Function {function} in namespace {}: {e:#}", target.namespace))
}

/// `<function>.<IP of the API server>.nip.io`, for nginx triggers without `--hostname`.
async fn default_hostname(server: &str, function: &str) -> Option<String> {
    let uri: http::Uri = server.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let address = if host.parse::<std::net::IpAddr>().is_ok() {
        host
    } else {
        let resolved = match tokio::net::lookup_host((host.as_str(), 0)).await {
            Ok(mut addresses) => addresses.find(|a| a.is_ipv4()).map(|a| a.ip().to_string()),
            Err(_) => None,
        };
        resolved.unwrap_or(host)
    };
    Some(format!("{function}.{address}.nip.io"))
}

async fn http_create(global: &GlobalArgs, args: HttpCreateArgs) -> anyhow::Result<()> {
    let flags = HttpTriggerFlags {
        function_name: Some(args.function_name.clone()),
        path: args.flags.path.clone(),
        hostname: args.flags.hostname.clone(),
        tls_acme: args.flags.enable_tls_acme,
        gateway: Some(args.gateway.clone()),
        basic_auth_secret: args.flags.basic_auth_secret.clone(),
        tls_secret: args.flags.tls_secret.clone(),
        cors_enable: args.flags.cors_enable,
    };
    let needs_host = flags.hostname.as_deref().unwrap_or_default().is_empty() && args.gateway == "nginx";
    if args.flags.dry_run.dryrun {
        let offline = namespace_only(global)?;
        let host = match (&offline.server, needs_host) {
            (Some(server), true) => default_hostname(server, &args.function_name).await,
            _ => None,
        };
        let trigger = new_http_trigger(&args.name, &offline.namespace, &flags, host)?;
        to_object::<kelp_api::HTTPTrigger>("HTTPTrigger", &trigger)?;
        return emit(render(args.flags.dry_run.output, &trigger)?);
    }
    let target = connect(global).await?;
    require_function(&target, &args.function_name).await?;
    let host = if needs_host { default_hostname(&target.server, &args.function_name).await } else { None };
    let trigger = new_http_trigger(&args.name, &target.namespace, &flags, host)?;
    to_object::<kelp_api::HTTPTrigger>("HTTPTrigger", &trigger)?;
    create_json(&target, kind("HTTPTrigger"), &target.namespace, &trigger)
        .await
        .with_context(|| format!("Failed to deploy HTTP trigger {} in namespace {}", args.name, target.namespace))?;
    info(format!("HTTP trigger {} created in namespace {} successfully!", args.name, target.namespace));
    Ok(())
}

async fn http_update(global: &GlobalArgs, args: HttpUpdateArgs) -> anyhow::Result<()> {
    let flags = HttpTriggerFlags {
        function_name: args.function_name.clone(),
        path: args.flags.path.clone(),
        hostname: args.flags.hostname.clone(),
        tls_acme: args.flags.enable_tls_acme,
        gateway: args.gateway.clone(),
        basic_auth_secret: args.flags.basic_auth_secret.clone(),
        tls_secret: args.flags.tls_secret.clone(),
        cors_enable: args.flags.cors_enable,
    };
    let target = connect(global).await?;
    let trigger_kind = kind("HTTPTrigger");
    let current = require_json(&target, trigger_kind, &target.namespace, &args.name).await?;
    if let Some(function) = &args.function_name {
        require_function(&target, function).await?;
    }
    let patch = http_trigger_patch(&current, &flags)?;
    apply_patch::<kelp_api::HTTPTrigger>(&target, trigger_kind, &args.name, &current, &patch, args.flags.dry_run)
        .await?;
    if !args.flags.dry_run.dryrun {
        info(format!("HTTP trigger {} updated in namespace {} successfully!", args.name, target.namespace));
    }
    Ok(())
}

/// Validates `current` + `patch`, then prints it (`--dryrun`) or sends the patch.
async fn apply_patch<T: serde::de::DeserializeOwned + kelp_api::Validate>(
    target: &Target,
    kind: &KindInfo,
    name: &str,
    current: &Value,
    patch: &Value,
    dry_run: DryRunArgs,
) -> anyhow::Result<()> {
    let mut merged = current.clone();
    json_patch::merge(&mut merged, patch);
    to_object::<T>(kind.kind, &merged)?;
    if dry_run.dryrun {
        return emit(render(dry_run.output, &merged)?);
    }
    patch_json(target, kind, &target.namespace, name, current, patch).await.map(drop)
}

async fn cron_create(global: &GlobalArgs, args: CronCreateArgs) -> anyhow::Result<()> {
    let flags = CronTriggerFlags {
        function: Some(args.function.clone()),
        schedule: Some(args.schedule.clone()),
        payload: args.payload.load().await?,
    };
    if args.dry_run.dryrun {
        let namespace = namespace_only(global)?.namespace;
        let trigger = new_cron_trigger(&args.name, &namespace, &flags)?;
        to_object::<kelp_api::CronJobTrigger>("CronJobTrigger", &trigger)?;
        return emit(render(args.dry_run.output, &trigger)?);
    }
    let target = connect(global).await?;
    let trigger = new_cron_trigger(&args.name, &target.namespace, &flags)?;
    to_object::<kelp_api::CronJobTrigger>("CronJobTrigger", &trigger)?;
    require_function(&target, &args.function).await?;
    create_json(&target, kind("CronJobTrigger"), &target.namespace, &trigger).await.with_context(|| {
        format!("Failed to create cronjob trigger object {} in namespace {}", args.name, target.namespace)
    })?;
    info(format!("Cronjob trigger {} created in namespace {} successfully!", args.name, target.namespace));
    Ok(())
}

async fn cron_update(global: &GlobalArgs, args: CronUpdateArgs) -> anyhow::Result<()> {
    let flags = CronTriggerFlags {
        function: args.function.clone(),
        schedule: args.schedule.clone(),
        payload: args.payload.load().await?,
    };
    let target = connect(global).await?;
    let trigger_kind = kind("CronJobTrigger");
    let current = require_json(&target, trigger_kind, &target.namespace, &args.name).await?;
    if let Some(function) = &args.function {
        require_function(&target, function).await?;
    }
    let patch = cron_trigger_patch(&current, &flags)?;
    apply_patch::<kelp_api::CronJobTrigger>(&target, trigger_kind, &args.name, &current, &patch, args.dry_run).await?;
    if !args.dry_run.dryrun {
        info(format!("Cronjob trigger {} updated in namespace {} successfully!", args.name, target.namespace));
    }
    Ok(())
}

async fn topic(global: &GlobalArgs, topic_kind: TopicKind, command: TopicCommand) -> anyhow::Result<()> {
    let trigger_kind = kind(topic_kind.kind());
    let label = topic_kind.label();
    match command {
        TopicCommand::Create(args) => {
            let selector = parse_label_selector(&args.function_selector)?;
            if args.dry_run.dryrun {
                let namespace = namespace_only(global)?.namespace;
                let trigger = new_topic_trigger(topic_kind, &args.name, &namespace, &args.trigger_topic, &selector)?;
                trigger_kind.validate(&trigger)?;
                return emit(render(args.dry_run.output, &trigger)?);
            }
            let target = connect(global).await?;
            let trigger = new_topic_trigger(topic_kind, &args.name, &target.namespace, &args.trigger_topic, &selector)?;
            trigger_kind.validate(&trigger)?;
            create_json(&target, trigger_kind, &target.namespace, &trigger).await?;
            info(format!("{label} trigger {} created in namespace {} successfully!", args.name, target.namespace));
            Ok(())
        }
        TopicCommand::Update(args) => {
            let selector = args.function_selector.as_deref().map(parse_label_selector).transpose()?;
            let target = connect(global).await?;
            let current = require_json(&target, trigger_kind, &target.namespace, &args.name).await?;
            let patch = topic_trigger_patch(&current, args.trigger_topic.as_deref(), selector.as_ref())?;
            let mut merged = current.clone();
            json_patch::merge(&mut merged, &patch);
            trigger_kind.validate(&merged)?;
            if args.dry_run.dryrun {
                return emit(render(args.dry_run.output, &merged)?);
            }
            patch_json(&target, trigger_kind, &target.namespace, &args.name, &current, &patch).await?;
            info(format!("{label} trigger {} updated in namespace {} successfully!", args.name, target.namespace));
            Ok(())
        }
        TopicCommand::Delete(args) => delete(global, trigger_kind, label, args).await,
        TopicCommand::List(args) => list(global, trigger_kind, args).await,
    }
}

async fn delete(global: &GlobalArgs, trigger_kind: &KindInfo, label: &str, args: TriggerName) -> anyhow::Result<()> {
    let target = connect(global).await?;
    if !delete_object(&target, trigger_kind, &target.namespace, &args.name).await? {
        return Err(not_found(trigger_kind, &target.namespace, &args.name));
    }
    info(format!("{label} trigger {} deleted from namespace {}", args.name, target.namespace));
    Ok(())
}

/// The table of `trigger <kind> list`, with the kubeless CLI's columns.
pub(crate) fn list_table(trigger_kind: &KindInfo, triggers: &[Value]) -> Table {
    let text = |t: &Value, pointer: &str| t.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut table = match trigger_kind.kind {
        "HTTPTrigger" => Table::kubeless(&["NAME", "NAMESPACE", "FUNCTION NAME"], kubeless::LIST_WIDTH),
        "CronJobTrigger" => Table::kubeless(&["NAME", "NAMESPACE", "SCHEDULE", "FUNCTION NAME"], kubeless::LIST_WIDTH),
        "KinesisTrigger" => {
            Table::kubeless(&["NAME", "NAMESPACE", "REGION", "STREAM", "SHARD", "FUNCTION NAME"], kubeless::LIST_WIDTH)
        }
        _ => Table::kubeless(&["NAME", "NAMESPACE", "TOPIC", "FUNCTION SELECTOR"], kubeless::LIST_WIDTH),
    };
    for trigger in triggers {
        let (name, namespace) = (text(trigger, "/metadata/name"), text(trigger, "/metadata/namespace"));
        match trigger_kind.kind {
            "HTTPTrigger" => table.row([name, namespace, text(trigger, "/spec/function-name")]),
            "CronJobTrigger" => {
                table.row([name, namespace, text(trigger, "/spec/schedule"), text(trigger, "/spec/function-name")])
            }
            "KinesisTrigger" => table.row([
                name,
                namespace,
                text(trigger, "/spec/aws-region"),
                text(trigger, "/spec/stream"),
                text(trigger, "/spec/shard"),
                text(trigger, "/spec/function-name"),
            ]),
            _ => {
                let selector = trigger
                    .pointer("/spec/functionSelector")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                    .map(|s| kelp_api::label_query(&s))
                    .unwrap_or_default();
                table.row([name, namespace, text(trigger, "/spec/topic"), selector])
            }
        };
    }
    table
}

async fn list(global: &GlobalArgs, trigger_kind: &KindInfo, args: ListArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let list = super::api(&target, trigger_kind, &target.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| describe(e, &target))?;
    let triggers: Vec<Value> = list.items.into_iter().map(|o| serde_json::to_value(o).unwrap_or_default()).collect();
    match args.output {
        Some(format) => emit(render(format, &triggers)?),
        None => emit(list_table(trigger_kind, &triggers).render()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn trigger_tables_have_the_kubeless_columns() {
        let http = vec![
            json!({"metadata": {"name": "hello-ingress", "namespace": "default"}, "spec": {"function-name": "hello"}}),
        ];
        assert_eq!(
            list_table(kind("HTTPTrigger"), &http).render(),
            concat!("NAME         \tNAMESPACE\tFUNCTION NAME\n", "hello-ingress\tdefault  \thello        \n")
        );
        let cron = vec![
            json!({"metadata": {"name": "every5", "namespace": "ns"}, "spec": {"function-name": "hello", "schedule": "*/5 * * * *"}}),
        ];
        assert_eq!(
            list_table(kind("CronJobTrigger"), &cron).render(),
            concat!(
                "NAME  \tNAMESPACE\tSCHEDULE   \tFUNCTION NAME\n",
                "every5\tns       \t*/5 * * * *\thello        \n"
            )
        );
        let kafka = vec![json!({"metadata": {"name": "orders", "namespace": "default"},
            "spec": {"topic": "orders", "functionSelector": {"matchLabels": {"function": "hello"}}}})];
        assert_eq!(
            list_table(kind("KafkaTrigger"), &kafka).render(),
            concat!("NAME  \tNAMESPACE\tTOPIC \tFUNCTION SELECTOR\n", "orders\tdefault  \torders\tfunction=hello   \n")
        );
        let kinesis = vec![json!({"metadata": {"name": "clicks", "namespace": "default"},
            "spec": {"aws-region": "us-west-2", "stream": "clickstream", "shard": "shardId-000000000000",
                     "function-name": "hello", "secret": "aws"}})];
        assert_eq!(
            list_table(kind("KinesisTrigger"), &kinesis).render(),
            concat!(
                "NAME  \tNAMESPACE\tREGION   \tSTREAM     \tSHARD               \tFUNCTION NAME\n",
                "clicks\tdefault  \tus-west-2\tclickstream\tshardId-000000000000\thello        \n"
            )
        );
    }

    #[tokio::test]
    async fn nip_io_host_names() {
        assert_eq!(default_hostname("http://127.0.0.1:6443", "hello").await.as_deref(), Some("hello.127.0.0.1.nip.io"));
        assert_eq!(default_hostname("https://10.0.0.5", "f").await.as_deref(), Some("f.10.0.0.5.nip.io"));
        assert_eq!(default_hostname("http://localhost:1", "f").await.as_deref(), Some("f.127.0.0.1.nip.io"));
    }
}
