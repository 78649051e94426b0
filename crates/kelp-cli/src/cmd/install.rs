//! `kelp install` and `kelp uninstall`: Kelp's CRDs and `deploy/kelp.yaml` (both carried in
//! the binary, see `bundle`) applied to, or deleted from, the cluster of the kubeconfig context:
//! the controller, and `kelp-triggers`, the consumers of KafkaTriggers and NATSTriggers.

use std::time::{Duration, Instant};

use anyhow::bail;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kelp_plan::images::ImageRegistry;
use kelp_plan::install::InstallOptions;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use super::{DryRunArgs, Spinner, describe};
use crate::bundle::{self, is_deployment};
use crate::dynamic::Resources;
use crate::output::{Format, emit, info, render};
use crate::target::{GlobalArgs, Target, connect};

/// The field manager of what `kelp install` applies.
const MANAGER: &str = "kelp-install";

/// The namespace when `-n` is not given (Kubeless's).
const DEFAULT_NAMESPACE: &str = "kubeless";

/// How often waiting looks again.
const POLL: Duration = Duration::from_millis(500);

/// `kelp install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// The image of the controller and of kelp-triggers (default: <REGISTRY>/controller of this
    /// release)
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// Where Kelp's images live, e.g. localhost:5000/kelp (default: kelp): the controller's
    /// <REGISTRY>/controller, the runtimes' <REGISTRY>/runtime-python and
    /// <REGISTRY>/runtime-nodejs and the provision image <REGISTRY>/provision, all tagged with
    /// this release's version (so REGISTRY has no tag). As --kafka-brokers, give it again when
    /// installing again: an install without it goes back to kelp/...
    #[arg(long = "image-registry", value_name = "REGISTRY")]
    image_registry: Option<ImageRegistry>,
    /// The Kafka brokers of KafkaTriggers, written into kubeless-config (default: Kubeless's
    /// kafka.kubeless:9092); credentials go into the Secret kelp-triggers-brokers instead. Give
    /// it again when installing again: an install without it removes the key it wrote
    #[arg(long = "kafka-brokers", value_name = "HOST:PORT[,HOST:PORT...]")]
    kafka_brokers: Option<String>,
    /// The NATS server of NATSTriggers, written into kubeless-config (default: Kubeless's
    /// nats://nats.nats-io.svc.cluster.local:4222); as --kafka-brokers, give it again when
    /// installing again
    #[arg(long = "nats-url", value_name = "URL")]
    nats_url: Option<String>,
    /// Replicas of kelp-triggers, which share the Kafka partitions and NATS messages of every
    /// trigger [default: 1]
    #[arg(long = "trigger-replicas", value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    trigger_replicas: Option<i32>,
    #[command(flatten)]
    dry_run: DryRunArgs,
    /// Wait until the controller and kelp-triggers are ready; --wait=false returns once the
    /// objects are applied
    #[arg(long, num_args = 0..=1, require_equals = true, default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    wait: bool,
    /// Seconds --wait waits
    #[arg(long = "wait-timeout", default_value_t = 300, value_name = "SECONDS")]
    wait_timeout: u64,
}

/// `kelp uninstall`.
#[derive(Debug, clap::Args)]
pub(crate) struct UninstallArgs {
    /// Delete the CRDs too, and with them every Function and trigger in every namespace
    #[arg(long)]
    crds: bool,
}

/// The namespace to install into: `-n`, else `kubeless` (never the context's namespace).
fn namespace(global: &GlobalArgs) -> String {
    global.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// What `kelp install` installs: the manifest for `-n`, with the flags' images, trigger replicas
/// and `kubeless-config` keys.
fn install_options(global: &GlobalArgs, args: &InstallArgs) -> InstallOptions {
    let defaults = InstallOptions::default();
    InstallOptions {
        namespace: namespace(global),
        image_registry: args.image_registry.clone().unwrap_or(defaults.image_registry),
        image: args.image.clone(),
        trigger_replicas: args.trigger_replicas.unwrap_or(defaults.trigger_replicas),
        kafka_brokers: args.kafka_brokers.clone(),
        nats_url: args.nats_url.clone(),
        ..defaults
    }
}

/// `kelp install`.
pub(crate) async fn install(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<()> {
    let options = install_options(global, &args);
    let crds = bundle::crds();
    let documents = bundle::kelp_documents(&options);
    if args.dry_run.dryrun {
        return emit(dry_run(args.dry_run.output, crds.into_iter().chain(documents))?);
    }
    let target = connect(global).await?;
    info(format!(
        "Installing Kelp into namespace {} of {} (context {})",
        options.namespace, target.server, target.context
    ));
    let mut resources = Resources::new(&target);
    let names = apply_all(&mut resources, &crds, &options.namespace).await?;
    wait_established(&target, &names).await?;
    apply_all(&mut resources, &documents, &options.namespace).await?;
    if args.wait {
        for deployment in documents.iter().filter(|d| is_deployment(d)) {
            let name = deployment.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            wait_ready(&target, &options.namespace, name, Duration::from_secs(args.wait_timeout)).await?;
        }
    }
    info(format!("Kelp is installed in namespace {}", options.namespace));
    Ok(())
}

/// The objects as `kubectl apply -f` takes them: YAML documents, or a JSON `List`.
fn dry_run(format: Format, objects: impl Iterator<Item = Value>) -> anyhow::Result<String> {
    match format {
        Format::Json => render(
            format,
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects.collect::<Vec<_>>()}),
        ),
        Format::Yaml => {
            let mut text = String::new();
            for object in objects {
                text.push_str("---\n");
                text.push_str(&render(format, &object)?);
            }
            Ok(text)
        }
    }
}

/// Applies `objects` in order, one line each; returns their names.
async fn apply_all(resources: &mut Resources<'_>, objects: &[Value], namespace: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for object in objects {
        let Some(located) = resources.locate(object, namespace).await? else {
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
            let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            bail!("the API server does not serve {kind} of {api_version}");
        };
        let outcome = resources.apply(&located, object, MANAGER).await?;
        emit(format!("{} {}\n", located.display, outcome.as_str()))?;
        names.push(object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned());
    }
    Ok(names)
}

/// Waits (60 s at most) until every CRD named is Established, so that its kind is served.
async fn wait_established(target: &Target, names: &[String]) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(target.client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        loop {
            let crd = api.get(name).await.map_err(|e| describe(e, target))?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
                break;
            }
            if Instant::now() > deadline {
                bail!("the CRD {name} is not Established after 60 s");
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

/// Waits until the Deployment has rolled out: its current generation observed and every replica
/// updated and ready (`kubectl rollout status`). A spinner shows on a terminal.
async fn wait_ready(target: &Target, namespace: &str, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(target.client.clone(), namespace);
    let spinner = Spinner::start(format!("Waiting for deployment {namespace}/{name} to be ready..."));
    let deadline = Instant::now() + timeout;
    let result = async {
        loop {
            let deployment = api.get(name).await.map_err(|e| describe(e, target))?;
            if let Some(ready) = rolled_out(&deployment) {
                return Ok(ready);
            }
            if Instant::now() > deadline {
                let why = not_ready_detail(target, namespace, &deployment).await;
                bail!("deployment {namespace}/{name} is not ready after {} s{why}", timeout.as_secs());
            }
            tokio::time::sleep(POLL).await;
        }
    }
    .await;
    spinner.stop().await;
    let ready = result?;
    info(format!("deployment {namespace}/{name} is ready ({ready}/{ready})"));
    Ok(())
}

/// `Some(ready replicas)` once the Deployment has rolled out.
fn rolled_out(deployment: &Deployment) -> Option<i32> {
    let status = deployment.status.as_ref()?;
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let observed = status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0) == wanted;
    let ready = status.ready_replicas.unwrap_or(0) == wanted && status.replicas.unwrap_or(0) == wanted;
    (observed && updated && ready).then_some(wanted)
}

/// Why a Deployment is not ready: its conditions' messages and its pods' waiting reasons.
async fn not_ready_detail(target: &Target, namespace: &str, deployment: &Deployment) -> String {
    let mut reasons = Vec::new();
    for condition in deployment.status.iter().flat_map(|s| s.conditions.iter().flatten()) {
        if condition.status != "True" {
            reasons.push(format!("{}: {}", condition.type_, condition.message.clone().unwrap_or_default()));
        }
    }
    let selector = deployment.spec.as_ref().and_then(|s| s.selector.match_labels.as_ref());
    let labels: Vec<String> = selector.iter().flat_map(|m| m.iter()).map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), namespace);
    if let Ok(list) = pods.list(&ListParams::default().labels(&labels.join(","))).await {
        for pod in list.items {
            let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
            for waiting in statuses.into_iter().filter_map(|c| c.state.and_then(|s| s.waiting)) {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let reason = waiting.reason.unwrap_or_default();
                reasons.push(
                    format!("pod {pod_name}: {reason} {}", waiting.message.unwrap_or_default()).trim_end().to_owned(),
                );
            }
        }
    }
    if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join("; ")) }
}

/// `kelp uninstall`: the objects of `deploy/kelp.yaml` (both Deployments and their identities
/// included) in reverse order; with `--crds`, first the CRDs, waiting until they are gone (their
/// objects' finalizers are the controller's and `kelp-triggers`' to release, so both must still
/// run meanwhile). The optional broker Secrets are the user's: they go with the namespace.
pub(crate) async fn uninstall(global: &GlobalArgs, args: UninstallArgs) -> anyhow::Result<()> {
    let options = InstallOptions { namespace: namespace(global), ..InstallOptions::default() };
    let objects = bundle::kelp_documents(&options);
    let crds = bundle::crds();
    let names: Vec<String> =
        crds.iter().filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str)).map(str::to_owned).collect();
    let target = connect(global).await?;
    let mut resources = Resources::new(&target);
    if args.crds {
        delete_all(&mut resources, &crds, &options.namespace).await?;
        wait_gone(&target, &names, Duration::from_secs(120)).await?;
    }
    delete_all(&mut resources, &objects, &options.namespace).await?;
    if args.crds {
        info("The CRDs are deleted, and with them every Function and trigger.");
    } else {
        info(format!(
            "The CRDs ({}) are kept, and with them every Function and trigger: `kelp uninstall --crds` deletes them too.",
            names.join(", ")
        ));
    }
    Ok(())
}

/// Deletes `objects` in reverse order, one line for each that existed.
async fn delete_all(resources: &mut Resources<'_>, objects: &[Value], namespace: &str) -> anyhow::Result<()> {
    for object in objects.iter().rev() {
        let Some(located) = resources.locate(object, namespace).await? else {
            continue;
        };
        if resources.delete(&located).await? {
            emit(format!("{} deleted\n", located.display))?;
        }
    }
    Ok(())
}

/// Waits until none of the CRDs named exists any more. A spinner shows on a terminal.
async fn wait_gone(target: &Target, names: &[String], timeout: Duration) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(target.client.clone());
    let spinner = Spinner::start("Waiting for the CRDs and their objects to be deleted...".to_owned());
    let deadline = Instant::now() + timeout;
    let result = async {
        for name in names {
            while api.get_opt(name).await.map_err(|e| describe(e, target))?.is_some() {
                if Instant::now() > deadline {
                    bail!(
                        "the CRD {name} is still being deleted after {} s: some of its objects keep a finalizer, \
                         which only a running controller releases; nothing else was deleted",
                        timeout.as_secs()
                    );
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }
    .await;
    spinner.stop().await;
    result
}
