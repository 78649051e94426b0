//! `kelp function deploy|update|delete|list|describe|call|logs|top`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use futures_util::AsyncReadExt as _;
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kelp_api::{Conditions as _, Function, READY_CONDITION};
use kube::Api;
use kube::api::{ListParams, LogParams};
use kube::runtime::wait::await_condition;
use serde_json::Value;

use super::{Spinner, create_json, describe, kind, not_found, patch_json, require_json};
use crate::build::content::{Code, is_url};
use crate::build::function::{FunctionFlags, PORT_NAME, new_function, patched_function, update_patch};
use crate::build::trigger::function_cron_trigger;
use crate::build::{kv, to_object};
use crate::cmd::server_config::check_runtime;
use crate::fetch::read_source;
use crate::metrics::{self, Metric};
use crate::output::{Format, emit, info, render};
use crate::table::{Table, kubeless};
use crate::target::{GlobalArgs, Target, connect, namespace_only};

/// `kelp function ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FunctionCommand {
    /// Deploy a function
    Deploy(DeployArgs),
    /// Update a function: only what the flags given change
    Update(UpdateArgs),
    /// Delete a function
    Delete(NameArgs),
    /// List functions
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show a function
    Describe(DescribeArgs),
    /// Call a function through the API server's service proxy
    Call(CallArgs),
    /// Print the logs of a function's running instance
    Logs(LogsArgs),
    /// Show the calls, failures and durations of functions
    #[command(visible_alias = "stats")]
    Top(TopArgs),
}

/// The flags `deploy` and `update` share.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct FunctionFlagArgs {
    /// Runtime, e.g. python3.8 or nodejs14
    #[arg(short = 'r', long)]
    runtime: Option<String>,
    /// Handler: <module>.<function>
    #[arg(long)]
    handler: Option<String>,
    /// The code: a file or an http(s) URL (.zip and .tar.gz/.tgz/... archives are unpacked)
    #[arg(short = 'f', long = "from-file", value_name = "FILE|URL")]
    from_file: Option<String>,
    /// Labels, key=value or key:value, comma-separated and repeatable
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Environment variables, key=value or key:value, comma-separated and repeatable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Secrets to mount at /<secret>, comma-separated and repeatable
    #[arg(long, value_name = "SECRET")]
    secrets: Vec<String>,
    /// Node selectors, key=value or key:value, comma-separated and repeatable
    #[arg(long = "node-selectors", value_name = "KEY=VALUE")]
    node_selectors: Vec<String>,
    /// Service account of the function's pods
    #[arg(long = "service-account", value_name = "NAME")]
    service_account: Option<String>,
    /// Dependency file (requirements.txt, package.json, ...): a file or an http(s) URL
    #[arg(short = 'd', long = "dependencies", value_name = "FILE|URL")]
    dependencies: Option<String>,
    /// Memory request and limit, e.g. 128Mi
    #[arg(long)]
    memory: Option<String>,
    /// CPU request and limit, e.g. 250m
    #[arg(long)]
    cpu: Option<String>,
    /// A custom runtime image
    #[arg(long = "runtime-image", value_name = "IMAGE")]
    runtime_image: Option<String>,
    /// Image pull policy: IfNotPresent, Always or Never [deploy default: Always]
    #[arg(long = "image-pull-policy", value_name = "POLICY")]
    image_pull_policy: Option<String>,
    /// Seconds a call may take [deploy default: 180]
    #[arg(long)]
    timeout: Option<String>,
    /// Headless Service (no cluster IP); --headless=false undoes it
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cmd::pflag_bool, value_name = "BOOL")]
    headless: Option<bool>,
    /// Port the function listens on (and Service port) [deploy default: 8080]
    #[arg(long)]
    port: Option<i32>,
    /// Service port, when it differs from --port
    #[arg(long = "servicePort", alias = "service-port", value_name = "PORT")]
    service_port: Option<i32>,
    #[command(flatten)]
    dry_run: DryRunArgsOpt,
}

/// `--dryrun` / `-o` inside [`FunctionFlagArgs`].
#[derive(Debug, Default, clap::Args)]
struct DryRunArgsOpt {
    /// Print the Function instead of sending it
    #[arg(long, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cmd::pflag_bool, value_name = "BOOL")]
    dryrun: bool,
    /// Output format of --dryrun: json or yaml
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

impl FunctionFlagArgs {
    /// Reads files and URLs and parses the list flags.
    async fn load(&self) -> anyhow::Result<FunctionFlags> {
        let code = match &self.from_file {
            Some(source) => {
                let bytes = read_source(source).await?;
                Some(if is_url(source) { Code::from_url(source, &bytes) } else { Code::from_file(source, &bytes) })
            }
            None => None,
        };
        let deps = match &self.dependencies {
            Some(source) => {
                let bytes = read_source(source).await?;
                Some(String::from_utf8(bytes).map_err(|_| anyhow!("the dependency file {source} is not UTF-8 text"))?)
            }
            None => None,
        };
        Ok(FunctionFlags {
            handler: self.handler.clone(),
            runtime: self.runtime.clone(),
            code,
            deps,
            labels: kv::parse_labels(&self.labels)?,
            env: kv::parse_pairs("--env", &self.env)?,
            secrets: kv::parse_items(&self.secrets)?,
            node_selectors: kv::parse_pairs("--node-selectors", &self.node_selectors)?.into_iter().collect(),
            service_account: self.service_account.clone(),
            memory: self.memory.clone(),
            cpu: self.cpu.clone(),
            runtime_image: self.runtime_image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            timeout: self.timeout.clone(),
            headless: self.headless,
            port: self.port,
            service_port: self.service_port,
        })
    }
}

/// `function deploy`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {
    /// The function's name
    name: String,
    #[command(flatten)]
    flags: FunctionFlagArgs,
    /// Also call the function on this cron schedule (creates a CronJobTrigger named after it)
    #[arg(long)]
    schedule: Option<String>,
    /// Wait until the function is ready
    #[arg(long)]
    wait: bool,
    /// Seconds --wait waits
    #[arg(long = "wait-timeout", default_value_t = 300, value_name = "SECONDS")]
    wait_timeout: u64,
}

/// `function update`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    /// The function's name
    name: String,
    #[command(flatten)]
    flags: FunctionFlagArgs,
}

/// A command taking only a function name.
#[derive(Debug, clap::Args)]
pub(crate) struct NameArgs {
    /// The function's name
    name: String,
}

/// `-o` of `function list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ListFormat {
    /// Indented JSON (an array of Functions)
    Json,
    /// YAML (a list of Functions)
    Yaml,
    /// A table with more columns
    Wide,
}

/// `function list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only these functions
    names: Vec<String>,
    /// Output format: json, yaml or wide (default: a table)
    #[arg(short = 'o', long = "out", visible_alias = "output", value_enum)]
    output: Option<ListFormat>,
}

/// `function describe`.
#[derive(Debug, clap::Args)]
pub(crate) struct DescribeArgs {
    /// The function's name
    name: String,
    /// Output format: json or yaml (default: a summary)
    #[arg(short = 'o', long = "out", visible_alias = "output", value_enum)]
    output: Option<Format>,
}

/// `function call`.
#[derive(Debug, clap::Args)]
pub(crate) struct CallArgs {
    /// The function's name
    name: String,
    /// Data to send (a POST); without it, a GET
    #[arg(short = 'd', long)]
    data: Option<String>,
}

/// `function logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// The function's name
    name: String,
    /// Keep printing new lines
    #[arg(short = 'f', long, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cmd::pflag_bool, value_name = "BOOL")]
    follow: bool,
}

/// `function top`.
#[derive(Debug, clap::Args)]
pub(crate) struct TopArgs {
    /// Only this function
    #[arg(short = 'f', long)]
    function: Option<String>,
    /// Output format: json or yaml (default: a table)
    #[arg(short = 'o', long = "out", visible_alias = "output", value_enum)]
    output: Option<Format>,
}

/// Runs a `function` subcommand.
pub(crate) async fn run(global: &GlobalArgs, command: FunctionCommand) -> anyhow::Result<()> {
    match command {
        FunctionCommand::Deploy(args) => deploy(global, args).await,
        FunctionCommand::Update(args) => update(global, args).await,
        FunctionCommand::Delete(args) => delete(global, args).await,
        FunctionCommand::List(args) => list(global, args).await,
        FunctionCommand::Describe(args) => describe_function(global, args).await,
        FunctionCommand::Call(args) => call(global, args).await,
        FunctionCommand::Logs(args) => logs(global, args).await,
        FunctionCommand::Top(args) => top(global, args).await,
    }
}

fn ls_hint(name: &str, target: &Target) -> String {
    if target.namespace_explicit {
        format!("Check the deployment status executing 'kelp function ls {name} -n {}'", target.namespace)
    } else {
        format!("Check the deployment status executing 'kelp function ls {name}'")
    }
}

fn dry_run_output(args: &FunctionFlagArgs) -> Option<Format> {
    args.dry_run.dryrun.then(|| args.dry_run.output.unwrap_or(Format::Yaml))
}

async fn deploy(global: &GlobalArgs, args: DeployArgs) -> anyhow::Result<()> {
    let flags = args.flags.load().await?;
    if let Some(format) = dry_run_output(&args.flags) {
        let namespace = namespace_only(global)?.namespace;
        if let Some(runtime) = &flags.runtime {
            check_runtime(None, runtime).await?;
        }
        let object = new_function(&args.name, &namespace, &flags)?;
        to_object::<Function>("Function", &object)?;
        if let Some(schedule) = &args.schedule {
            function_cron_trigger(&args.name, &namespace, schedule)?;
        }
        return emit(render(format, &object)?);
    }
    let target = connect(global).await?;
    let namespace = target.namespace.clone();
    if let Some(runtime) = &flags.runtime {
        check_runtime(Some(&target), runtime).await?;
    }
    let object = new_function(&args.name, &namespace, &flags)?;
    to_object::<Function>("Function", &object)?;
    let cron = args.schedule.as_deref().map(|s| function_cron_trigger(&args.name, &namespace, s)).transpose()?;
    if let Some(cron) = &cron {
        to_object::<kelp_api::CronJobTrigger>("CronJobTrigger", cron)?;
    }
    info("Deploying function...");
    create_json(&target, kind("Function"), &namespace, &object)
        .await
        .with_context(|| format!("Failed to deploy {}", args.name))?;
    info(format!("Function {} submitted for deployment", args.name));
    info(ls_hint(&args.name, &target));
    if let Some(cron) = &cron {
        create_json(&target, kind("CronJobTrigger"), &namespace, cron)
            .await
            .with_context(|| format!("Failed to deploy cron job trigger {}", args.name))?;
        info(format!("Cronjob trigger {} created in namespace {namespace} successfully!", args.name));
    }
    if args.wait {
        wait_ready(&target, &args.name, Duration::from_secs(args.wait_timeout)).await?;
    }
    Ok(())
}

async fn update(global: &GlobalArgs, args: UpdateArgs) -> anyhow::Result<()> {
    let flags = args.flags.load().await?;
    let target = connect(global).await?;
    let namespace = target.namespace.clone();
    let current = require_json(&target, kind("Function"), &namespace, &args.name).await?;
    if let Some(runtime) = &flags.runtime {
        check_runtime(Some(&target), runtime).await?;
    }
    let patch = update_patch(&current, &flags)?;
    let function = patched_function(&current, &patch)?;
    if let Some(format) = dry_run_output(&args.flags) {
        return emit(render(format, &function)?);
    }
    info("Redeploying function...");
    patch_json(&target, kind("Function"), &namespace, &args.name, &current, &patch).await?;
    info(format!("Function {} submitted for deployment", args.name));
    info(ls_hint(&args.name, &target));
    Ok(())
}

async fn delete(global: &GlobalArgs, args: NameArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    if !super::delete_object(&target, kind("Function"), &target.namespace, &args.name).await? {
        return Err(not_found(kind("Function"), &target.namespace, &args.name));
    }
    info(format!("Function {} deleted from namespace {}", args.name, target.namespace));
    Ok(())
}

/// The reason of a Function's `Ready` condition when its code did not build (a compiled
/// language's compiler error, whose first lines are the condition's message).
const BUILD_FAILED: &str = "BuildFailed";

/// Waits until the Function's Ready condition is True, or False because its build failed.
async fn wait_ready(target: &Target, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let api: Api<Function> = Api::namespaced(target.client.clone(), &target.namespace);
    let spinner = Spinner::start(format!("Waiting for function {name} to be ready..."));
    let ready = |f: Option<&Function>| f.and_then(|f| f.status.as_ref()).is_some_and(|s| s.is_ready());
    // A build that failed for the current spec will not become ready: say why at once.
    let build_failed = |f: &Function| {
        let condition = f.status.as_ref().and_then(|s| s.condition(READY_CONDITION));
        condition.is_some_and(|c| c.reason == BUILD_FAILED && c.observed_generation == f.metadata.generation)
    };
    let settled = move |f: Option<&Function>| ready(f) || f.is_some_and(build_failed);
    let result = tokio::time::timeout(timeout, await_condition(api.clone(), name, settled)).await;
    spinner.stop().await;
    match result {
        Ok(Ok(Some(function))) if build_failed(&function) => {
            bail!("function {name} is not ready{}", condition_detail(&function))
        }
        Ok(Ok(Some(_))) => {
            info(format!("Function {name} is ready"));
            Ok(())
        }
        Ok(Ok(None)) => bail!("function {name} was deleted while waiting for it to be ready"),
        Ok(Err(e)) => bail!("waiting for function {name} to be ready: {}", super::error_chain(&e)),
        Err(_) => {
            let detail = match api.get_opt(name).await {
                Ok(Some(function)) => condition_detail(&function),
                _ => String::new(),
            };
            bail!("function {name} is not ready after {}s{detail}", timeout.as_secs())
        }
    }
}

/// `: <reason>: <message>` of a not-ready Function, or nothing.
fn condition_detail(function: &Function) -> String {
    let Some(condition) = function.status.as_ref().and_then(|s| s.condition(READY_CONDITION)) else {
        return " (no status reported yet: is a controller or `kelp up` running?)".to_owned();
    };
    let mut detail = String::new();
    for part in [condition.reason.as_str(), condition.message.as_str()] {
        if !part.is_empty() {
            detail.push_str(": ");
            detail.push_str(part);
        }
    }
    detail
}

/// The STATUS column: `1/1 READY`, `0/1 NOT READY (<reason>)`.
pub(crate) fn status_text(function: &Function) -> String {
    let status = function.status.as_ref();
    let ready_replicas = status.and_then(|s| s.ready_replicas).unwrap_or(0).max(0);
    match status.and_then(|s| s.condition(READY_CONDITION)) {
        Some(condition) if condition.status == "True" => format!("{ready_replicas}/{ready_replicas} READY"),
        Some(condition) if !condition.reason.is_empty() => {
            format!("{ready_replicas}/{} NOT READY ({})", ready_replicas.max(1), condition.reason)
        }
        _ => format!("{ready_replicas}/{} NOT READY", ready_replicas.max(1)),
    }
}

/// The DEPENDENCIES column: the dependency file, or `pkg: version` lines of a package.json's
/// dependencies for Node.js runtimes.
pub(crate) fn dependencies_text(deps: &str, runtime: &str) -> String {
    if deps.is_empty() || !runtime.contains("nodejs") {
        return deps.to_owned();
    }
    match serde_json::from_str::<Value>(deps) {
        Ok(package) => package
            .get("dependencies")
            .and_then(Value::as_object)
            .map(|deps| {
                deps.iter()
                    .map(|(name, version)| format!("{name}: {}", version.as_str().unwrap_or(&version.to_string())))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
        Err(_) => deps.to_owned(),
    }
}

fn container(function: &Function) -> Option<&k8s_openapi::api::core::v1::Container> {
    function.spec.deployment.as_deref()?.spec.as_ref()?.template.spec.as_ref()?.containers.first()
}

fn memory_text(function: &Function) -> String {
    container(function)
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("memory"))
        .map(|q| q.0.clone())
        .unwrap_or_default()
}

/// The rows of `function list` (`wide`: with MEMORY, ENV, LABEL and SCHEDULE).
pub(crate) fn list_table(functions: &[Function], wide: bool, schedules: &BTreeMap<String, Vec<String>>) -> Table {
    let mut header = vec!["NAME", "NAMESPACE", "HANDLER", "RUNTIME", "DEPENDENCIES", "STATUS"];
    if wide {
        header.extend(["MEMORY", "ENV", "LABEL", "SCHEDULE"]);
    }
    let mut table = Table::kubeless(&header, kubeless::LIST_WIDTH);
    for function in functions {
        let name = function.metadata.name.clone().unwrap_or_default();
        let runtime = function.spec.runtime.clone().unwrap_or_default();
        let mut row = vec![
            name.clone(),
            function.metadata.namespace.clone().unwrap_or_default(),
            function.spec.handler.clone().unwrap_or_default(),
            runtime.clone(),
            dependencies_text(function.spec.deps.as_deref().unwrap_or_default(), &runtime),
            status_text(function),
        ];
        if wide {
            let env = container(function)
                .and_then(|c| c.env.as_ref())
                .map(|env| {
                    env.iter()
                        .map(|e| format!("{} = {}\n", e.name, e.value.as_deref().unwrap_or("")))
                        .collect::<String>()
                })
                .unwrap_or_default();
            let labels =
                function.metadata.labels.iter().flatten().map(|(k, v)| format!("{k} : {v}\n")).collect::<String>();
            let schedule = schedules.get(&name).map(|s| s.join("\n")).unwrap_or_default();
            row.extend([memory_text(function), env, labels, schedule]);
        }
        table.row(row);
    }
    table
}

async fn list(global: &GlobalArgs, args: ListArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let api: Api<Function> = Api::namespaced(target.client.clone(), &target.namespace);
    let functions = if args.names.is_empty() {
        api.list(&ListParams::default()).await.map_err(|e| describe(e, &target))?.items
    } else {
        let mut functions = Vec::new();
        for name in &args.names {
            match api.get_opt(name).await.map_err(|e| describe(e, &target))? {
                Some(function) => functions.push(function),
                None => return Err(not_found(kind("Function"), &target.namespace, name)),
            }
        }
        functions
    };
    match args.output {
        Some(ListFormat::Json) => emit(render(Format::Json, &functions)?),
        Some(ListFormat::Yaml) => emit(render(Format::Yaml, &functions)?),
        Some(ListFormat::Wide) => {
            let schedules = cron_schedules(&target).await;
            emit(list_table(&functions, true, &schedules).render())
        }
        None => emit(list_table(&functions, false, &BTreeMap::new()).render()),
    }
}

/// The schedules of the CronJobTriggers in the namespace, by function (empty when they cannot
/// be listed).
async fn cron_schedules(target: &Target) -> BTreeMap<String, Vec<String>> {
    let api: Api<kelp_api::CronJobTrigger> = Api::namespaced(target.client.clone(), &target.namespace);
    let mut schedules: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(list) = api.list(&ListParams::default()).await {
        for trigger in list.items {
            if let (Some(function), Some(schedule)) = (trigger.spec.function_name, trigger.spec.schedule) {
                schedules.entry(function).or_default().push(schedule);
            }
        }
    }
    schedules
}

/// The summary of `function describe`.
pub(crate) fn describe_table(function: &Function) -> anyhow::Result<Table> {
    let labels = serde_json::to_string(&function.metadata.labels.clone().unwrap_or_default())?;
    // As kubeless prints them: for a Function with a container, its env as JSON (`null` when it
    // has none) and its memory request (`0` when none); nothing without a container.
    let (env, memory) = match container(function) {
        Some(c) => {
            let memory = memory_text(function);
            (serde_json::to_string(&c.env)?, if memory.is_empty() { "0".to_owned() } else { memory })
        }
        None => (String::new(), String::new()),
    };
    let name = function.metadata.name.as_deref().unwrap_or_default();
    let mut table = Table::kubeless(&["Name:", name], kubeless::DESCRIBE_WIDTH);
    table
        .row(["Namespace:", function.metadata.namespace.as_deref().unwrap_or_default()])
        .row(["Handler:", function.spec.handler.as_deref().unwrap_or_default()])
        .row(["Runtime:", function.spec.runtime.as_deref().unwrap_or_default()])
        .row(["Label:", labels.as_str()])
        .row(["Envvar:", env.as_str()])
        .row(["Memory:".to_owned(), memory])
        .row(["Dependencies:", function.spec.deps.as_deref().unwrap_or_default()])
        .row(["Status:".to_owned(), status_text(function)]);
    let message = function.status.as_ref().and_then(|s| s.condition(READY_CONDITION)).map(|c| c.message.clone());
    if let Some(message) = message.filter(|m| !m.is_empty()) {
        table.row(["Message:".to_owned(), message]);
    }
    Ok(table)
}

async fn describe_function(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let value = require_json(&target, kind("Function"), &target.namespace, &args.name).await?;
    let function: Function = serde_json::from_value(value.clone()).context("the stored Function does not decode")?;
    match args.output {
        Some(format) => emit(render(format, &function)?),
        None => emit(describe_table(&function)?.render()),
    }
}

/// The path of a function's Service through the API server's service proxy.
pub(crate) fn proxy_path(namespace: &str, name: &str, function: &Value, rest: &str) -> String {
    let port = function.pointer("/spec/service/ports/0");
    let port = port
        .and_then(|p| p.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned))
        .or_else(|| port.and_then(|p| p.get("port")).and_then(Value::as_i64).map(|p| p.to_string()))
        .unwrap_or_else(|| PORT_NAME.to_owned());
    format!("/api/v1/namespaces/{namespace}/services/{name}:{port}/proxy/{rest}")
}

/// The request `function call` sends: GET without data, POST with it; the event headers of the
/// kubeless CLI (`event-id`: 11 random bytes in base64url, `event-time`: RFC 3339 UTC,
/// `event-namespace: cli.kubeless.io`, and with data `event-type` and `Content-Type`:
/// `application/json` when the data is a JSON object, else `application/x-www-form-urlencoded`).
pub(crate) fn call_request(path: &str, data: Option<&str>, now: Timestamp, random: [u8; 11]) -> http::Request<Vec<u8>> {
    let event_id = base64::engine::general_purpose::URL_SAFE.encode(random);
    let event_time = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let builder = http::Request::builder()
        .uri(path)
        .header("event-id", event_id)
        .header("event-time", event_time)
        .header("event-namespace", "cli.kubeless.io");
    let request = match data {
        Some(data) => {
            let is_object = serde_json::from_str::<Value>(data).is_ok_and(|v| v.is_object());
            let content_type = if is_object { "application/json" } else { "application/x-www-form-urlencoded" };
            builder
                .method(http::Method::POST)
                .header("event-type", content_type)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(data.as_bytes().to_vec())
        }
        None => builder.method(http::Method::GET).body(Vec::new()),
    };
    request.unwrap_or_default()
}

/// The message of a Kubernetes `Status` body, if the body is one.
fn status_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    (value.get("kind")? == "Status").then(|| value.get("message").and_then(Value::as_str).unwrap_or("").to_owned())
}

/// The most bytes of a function's answer `function call` reads (and prints): far more than a
/// terminal shows, far less than would exhaust memory.
const MAX_ANSWER: usize = 256 << 20;

async fn call(global: &GlobalArgs, args: CallArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let function = require_json(&target, kind("Function"), &target.namespace, &args.name).await?;
    let path = proxy_path(&target.namespace, &args.name, &function, "");
    let mut random = [0u8; 11];
    getrandom::fill(&mut random).map_err(|e| anyhow!("no randomness for the event id: {e}"))?;
    let request = call_request(&path, args.data.as_deref(), Timestamp::now(), random);
    let response = target.client.send(request.map(kube::client::Body::from)).await.map_err(|e| describe(e, &target))?;
    let status = response.status();
    let body = match http_body_util::Limited::new(response.into_body(), MAX_ANSWER).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            bail!(
                "the answer of function {} is larger than {} MiB, the most `function call` prints",
                args.name,
                MAX_ANSWER >> 20
            )
        }
        Err(e) => bail!("reading the answer: {e}"),
    };
    if status == http::StatusCode::REQUEST_TIMEOUT {
        bail!("Request timeout exceeded");
    }
    if !status.is_success() {
        if let Some(message) = status_message(&body) {
            bail!("cannot call function {}: {message} ({})", args.name, status.as_u16());
        }
        if !body.is_empty() {
            eprintln!("{}", String::from_utf8_lossy(&body).trim_end());
        }
        bail!("function {} answered {status}", args.name);
    }
    let mut out = body.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    emit(out)
}

/// The first pod whose containers are all ready.
pub(crate) fn ready_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter().find(|pod| {
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
        statuses.is_some_and(|s| !s.is_empty() && s.iter().all(|c| c.ready))
    })
}

async fn logs(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<()> {
    let mut target = connect(global).await?;
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("function={}", args.name)))
        .await
        .map_err(|e| describe(e, &target))?;
    let Some(pod) = ready_pod(&list.items) else {
        if list.items.is_empty() {
            require_json(&target, kind("Function"), &target.namespace, &args.name).await?;
        }
        bail!("No function pod is running: there is no pod ready");
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let has_container = pod.spec.as_ref().is_some_and(|spec| spec.containers.iter().any(|c| c.name == args.name));
    let params =
        LogParams { follow: args.follow, container: has_container.then(|| args.name.clone()), ..LogParams::default() };
    if args.follow {
        // A followed log may stay quiet for longer than any read timeout.
        let mut config = target.config.clone();
        config.read_timeout = None;
        target.client = kube::Client::try_from(config)?;
    }
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let mut stream = pods.log_stream(&pod_name, &params).await.map_err(|e| describe(e, &target))?;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buffer).await.context("reading the log")?;
        if n == 0 {
            return Ok(());
        }
        emit(&buffer[..n])?;
    }
}

async fn top(global: &GlobalArgs, args: TopArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let functions: Vec<Value> = match &args.function {
        Some(name) => vec![require_json(&target, kind("Function"), &target.namespace, name).await?],
        None => {
            let api = super::api(&target, kind("Function"), &target.namespace);
            let list = api.list(&ListParams::default()).await.map_err(|e| describe(e, &target))?;
            list.items.into_iter().map(|o| serde_json::to_value(o).unwrap_or_default()).collect()
        }
    };
    let fetches = functions.iter().map(|function| {
        let target = &target;
        async move {
            let name = function.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let path = proxy_path(&target.namespace, &name, function, "metrics");
            let request = http::Request::get(path).body(Vec::new()).unwrap_or_default();
            let text = tokio::time::timeout(Duration::from_secs(5), target.client.request_text(request)).await;
            match text {
                Ok(Ok(text)) => metrics::function_metrics(&name, &target.namespace, &text),
                _ => vec![Metric {
                    function_name: name,
                    namespace: target.namespace.clone(),
                    message: metrics::UNREACHABLE.to_owned(),
                    ..Metric::default()
                }],
            }
        }
    });
    let mut rows: Vec<Metric> = futures_util::future::join_all(fetches).await.into_iter().flatten().collect();
    rows.sort_by(|a, b| a.function_name.cmp(&b.function_name).then_with(|| a.method.cmp(&b.method)));
    match args.output {
        Some(format) => emit(render(format, &rows)?),
        None => emit(top_table(&rows).render()),
    }
}

/// The table of `function top`.
pub(crate) fn top_table(rows: &[Metric]) -> Table {
    let mut table = Table::kubeless(
        &[
            "NAME",
            "NAMESPACE",
            "METHOD",
            "TOTAL_CALLS",
            "TOTAL_FAILURES",
            "TOTAL_DURATION_SECONDS",
            "AVG_DURATION_SECONDS",
            "MESSAGE",
        ],
        kubeless::LIST_WIDTH,
    );
    for row in rows {
        if row.message.is_empty() {
            table.row([
                row.function_name.clone(),
                row.namespace.clone(),
                row.method.clone(),
                kubeless::number(row.total_calls),
                kubeless::number(row.total_failures),
                kubeless::number(row.total_duration_seconds),
                kubeless::number(row.avg_duration_seconds),
                String::new(),
            ]);
        } else {
            table.row([
                row.function_name.clone(),
                row.namespace.clone(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                row.message.clone(),
            ]);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use kelp_api::FunctionStatus;
    use serde_json::json;

    use super::*;
    use crate::build::function::FunctionFlags;

    fn function(name: &str, status: Option<FunctionStatus>) -> Function {
        let flags = FunctionFlags {
            handler: Some("h.f".into()),
            runtime: Some("python3.8".into()),
            code: Some(Code::from_file("h.py", b"x")),
            ..FunctionFlags::default()
        };
        let mut f: Function = serde_json::from_value(new_function(name, "default", &flags).unwrap()).unwrap();
        f.status = status;
        f
    }

    fn condition(status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    #[test]
    fn status_column() {
        assert_eq!(status_text(&function("a", None)), "0/1 NOT READY");
        let ready = FunctionStatus {
            conditions: vec![condition("True", "Ready", "")],
            ready_replicas: Some(1),
            ..Default::default()
        };
        assert_eq!(status_text(&function("a", Some(ready))), "1/1 READY");
        let failing = FunctionStatus {
            conditions: vec![condition("False", "DependencyInstallFailed", "pip failed")],
            ready_replicas: Some(0),
            ..Default::default()
        };
        let f = function("a", Some(failing));
        assert_eq!(status_text(&f), "0/1 NOT READY (DependencyInstallFailed)");
        assert_eq!(condition_detail(&f), ": DependencyInstallFailed: pip failed");
        assert!(condition_detail(&function("a", None)).contains("no status"));
    }

    #[test]
    fn list_tables_are_aligned_and_wide_adds_columns() {
        let mut node = function("node-fn", None);
        node.spec.runtime = Some("nodejs14".into());
        node.spec.deps = Some(r#"{"dependencies": {"lodash": "4.17.21", "express": "^4"}}"#.into());
        let ready = FunctionStatus {
            conditions: vec![condition("True", "", "")],
            ready_replicas: Some(2),
            ..Default::default()
        };
        let functions = vec![function("hello", Some(ready)), node];
        assert_eq!(
            list_table(&functions, false, &BTreeMap::new()).render(),
            concat!(
                "NAME   \tNAMESPACE\tHANDLER\tRUNTIME  \tDEPENDENCIES   \tSTATUS       \n",
                "hello  \tdefault  \th.f    \tpython3.8\t               \t2/2 READY    \n",
                "node-fn\tdefault  \th.f    \tnodejs14 \texpress: ^4    \t0/1 NOT READY\n",
                "       \t         \t       \t         \tlodash: 4.17.21\t             \n"
            )
        );
        let schedules = BTreeMap::from([("hello".to_owned(), vec!["@hourly".to_owned()])]);
        let wide = list_table(&functions[..1], true, &schedules).render();
        // As kubeless prints ENV and LABEL: one entry per line, each ending in a newline.
        assert_eq!(
            wide,
            concat!(
                "NAME \tNAMESPACE\tHANDLER\tRUNTIME  \tDEPENDENCIES\tSTATUS   \tMEMORY\tENV\tLABEL                \tSCHEDULE\n",
                "hello\tdefault  \th.f    \tpython3.8\t            \t2/2 READY\t      \t   \tcreated-by : kubeless\t@hourly \n",
                "     \t         \t       \t         \t            \t         \t      \t   \tfunction : hello     \t        \n",
                "     \t         \t       \t         \t            \t         \t      \t   \t                     \t        \n",
            )
        );
    }

    #[test]
    fn describe_rows() {
        let text = describe_table(&function("hello", None)).unwrap().render();
        assert_eq!(
            text,
            concat!(
                "Name:        \thello                                       \n",
                "Namespace:   \tdefault                                     \n",
                "Handler:     \th.f                                         \n",
                "Runtime:     \tpython3.8                                   \n",
                "Label:       \t{\"created-by\":\"kubeless\",\"function\":\"hello\"}\n",
                "Envvar:      \tnull                                        \n",
                "Memory:      \t0                                           \n",
                "Dependencies:\t                                            \n",
                "Status:      \t0/1 NOT READY                               \n",
            )
        );
    }

    #[test]
    fn call_requests_carry_the_kubeless_event_headers() {
        let now: Timestamp = "2024-03-01T12:34:56.789Z".parse().unwrap();
        let get = call_request("/p/", None, now, [0xfb; 11]);
        assert_eq!(get.method(), http::Method::GET);
        assert_eq!(get.headers()["event-id"], "-_v7-_v7-_v7-_s=", "11 bytes, base64url with padding");
        assert_eq!(get.headers()["event-time"], "2024-03-01T12:34:56Z");
        assert_eq!(get.headers()["event-namespace"], "cli.kubeless.io");
        assert!(get.headers().get("event-type").is_none() && get.headers().get("content-type").is_none());

        let post = call_request("/p/", Some(r#"{"it-s": "alive"}"#), now, [1; 11]);
        assert_eq!(post.method(), http::Method::POST);
        assert_eq!(post.headers()["content-type"], "application/json");
        assert_eq!(post.headers()["event-type"], "application/json");
        assert_eq!(post.body(), br#"{"it-s": "alive"}"#);
        for not_object in ["[1, 2]", "\"text\"", "hello world", "42"] {
            let post = call_request("/p/", Some(not_object), now, [1; 11]);
            assert_eq!(post.headers()["content-type"], "application/x-www-form-urlencoded", "{not_object}");
        }
    }

    #[test]
    fn proxy_paths_use_the_service_port_name() {
        let f = json!({"spec": {"service": {"ports": [{"name": "http-function-port", "port": 8080}]}}});
        assert_eq!(proxy_path("ns", "hello", &f, ""), "/api/v1/namespaces/ns/services/hello:http-function-port/proxy/");
        let unnamed = json!({"spec": {"service": {"ports": [{"port": 9090}]}}});
        assert_eq!(proxy_path("ns", "h", &unnamed, "metrics"), "/api/v1/namespaces/ns/services/h:9090/proxy/metrics");
        assert_eq!(proxy_path("ns", "h", &json!({}), ""), "/api/v1/namespaces/ns/services/h:http-function-port/proxy/");
    }

    #[test]
    fn top_table_rows() {
        let rows = vec![
            Metric {
                function_name: "a".into(),
                namespace: "d".into(),
                method: "GET".into(),
                total_calls: 4.0,
                total_duration_seconds: 0.5,
                avg_duration_seconds: 0.125,
                ..Metric::default()
            },
            Metric {
                function_name: "b".into(),
                namespace: "d".into(),
                message: metrics::UNREACHABLE.into(),
                ..Metric::default()
            },
        ];
        assert_eq!(
            top_table(&rows).render(),
            concat!(
                "NAME\tNAMESPACE\tMETHOD\tTOTAL_CALLS\tTOTAL_FAILURES\tTOTAL_DURATION_SECONDS\tAVG_DURATION_SECONDS\tMESSAGE                       \n",
                "a   \td        \tGET   \t4          \t0             \t0.5                   \t0.125               \t                              \n",
                "b   \td        \t      \t           \t              \t                      \t                    \tUnable to get function metrics\n"
            )
        );
    }

    #[test]
    fn ready_pods() {
        let pod = |name: &str, ready: &[bool]| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"containerStatuses": ready.iter().map(|r| json!({
                    "name": "c", "ready": r, "restartCount": 0, "image": "i", "imageID": ""
                })).collect::<Vec<_>>()}
            }))
            .unwrap()
        };
        let pods = vec![pod("starting", &[true, false]), pod("none", &[]), pod("ok", &[true])];
        assert_eq!(ready_pod(&pods).and_then(|p| p.metadata.name.as_deref()), Some("ok"));
        assert!(ready_pod(&pods[..2]).is_none());
    }

    #[test]
    fn node_dependencies() {
        assert_eq!(dependencies_text("requests\n", "python3.8"), "requests\n");
        assert_eq!(dependencies_text(r#"{"dependencies": {"b": "1", "a": "2"}}"#, "nodejs14"), "a: 2\nb: 1");
        assert_eq!(dependencies_text("not json", "nodejs14"), "not json");
        assert_eq!(dependencies_text(r#"{"name": "x"}"#, "nodejs14"), "");
    }
}
