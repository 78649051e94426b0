//! The controller process: serve health and metrics, win the leader election, read the
//! configuration, start the caches and the three controllers (Function, HTTPTrigger,
//! CronJobTrigger), and reconcile until stopped.

use crate::backoff::Policy;
use crate::context::{CHILD_SELECTOR, Context, Known, Stores};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::{Error, function, server, triggers};
use anyhow::Context as _;
use futures_util::{FutureExt, Stream, StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceSpec};
use kelp_api::{CronJobTrigger, Function, HTTPTrigger};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

/// A future that drives one watch.
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the controller until SIGTERM/SIGINT, or until it loses the leader Lease.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let client = Client::try_default().await.context("connecting to the Kubernetes API (kubeconfig or in-cluster)")?;
    let metrics = Arc::new(Metrics::default());
    let cluster = &settings.cluster;
    let listen = cluster.listen;
    let rendered = metrics.clone();
    let server = tokio::spawn(server::serve(listen, move || rendered.render()));

    let lock = cluster.lease(&client, &settings.lease_name).map(Arc::new);
    // Renewing starts as soon as the Lease is taken, in its own task: a slow start-up must not
    // delay it past the renew deadline.
    let mut renewing = None;
    if let Some(lock) = &lock {
        tracing::info!(lease = %settings.lease_name, "waiting to lead");
        let acquired = lock.acquire().await;
        tracing::info!("leading");
        let lock = lock.clone();
        renewing = Some(tokio::spawn(async move { lock.keep(acquired).await }));
    }
    metrics.set_leader(true);

    let config_api: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster.config_namespace);
    let config = load_config(&config_api, &cluster.config_name).await?;
    let scope = cluster.scope(&config);
    tracing::info!(namespace = if scope.is_empty() { "(all)" } else { scope.as_str() }, "watching functions");

    let mut drivers: Vec<Driver> = Vec::new();
    // Objects deleted are forgotten (what was applied to their children, their backoff); set
    // once the context exists.
    let forget: Arc<OnceLock<Weak<Context>>> = Arc::default();
    let (config_maps, config_map_events) = known_cache(&client, &scope, &forget, &mut drivers);
    let (known_deployments, _) = known_cache(&client, &scope, &forget, &mut drivers);
    let (known_services, service_events) = known_cache(&client, &scope, &forget, &mut drivers);
    let (hpas, hpa_events) = known_cache(&client, &scope, &forget, &mut drivers);
    let (ingresses, ingress_events) = known_cache(&client, &scope, &forget, &mut drivers);
    let (cron_jobs, cron_job_events) = known_cache(&client, &scope, &forget, &mut drivers);
    let (deployments, deployment_events) = child_cache(&client, &scope, &mut drivers, reduce_deployment);
    let (services, _) = child_cache(&client, &scope, &mut drivers, reduce_service);
    let (pods, pod_events) = child_cache(&client, &scope, &mut drivers, reduce_pod);

    let watch = watcher::Config::default().any_semantic();
    let controller_config = ControllerConfig::default().concurrency(settings.concurrency).debounce(RECONCILE_DEBOUNCE);
    let functions = owner_controller::<Function>(&client, &scope, &watch, &forget, controller_config.clone());
    let http = owner_controller::<HTTPTrigger>(&client, &scope, &watch, &forget, controller_config.clone());
    let cron = owner_controller::<CronJobTrigger>(&client, &scope, &watch, &forget, controller_config);
    let known =
        Known { config_maps, deployments: known_deployments, services: known_services, hpas, ingresses, cron_jobs };
    let stores = Stores { functions: functions.store(), deployments, services, pods, known };
    let ctx = Arc::new(Context::new(client.clone(), config, stores, metrics.clone()));
    let _ = forget.set(Arc::downgrade(&ctx));

    let (reload, _) = broadcast::channel(4);
    drivers.push(Box::pin(watch_config(config_api, cluster.config_name.clone(), ctx.clone(), reload.clone())));
    drivers.push(Box::pin(report_queue_depth(ctx.clone(), http.store(), cron.store())));

    let functions = functions
        .owns_shared_stream(config_map_events)
        .owns_shared_stream(deployment_events)
        .owns_shared_stream(service_events)
        .owns_shared_stream(hpa_events)
        .watches_shared_stream(pod_events, |pod| {
            let function = pod.labels().get(kelp_plan::FUNCTION_LABEL)?;
            Some(ObjectRef::new(function).within(&pod.namespace()?))
        })
        .reconcile_all_on(reloads(&reload))
        .shutdown_on_signal()
        .run(function::reconcile, error_policy::<Function>, ctx.clone())
        .for_each(|_| future::ready(()));
    let http = http
        .owns_shared_stream(ingress_events)
        .reconcile_all_on(reloads(&reload))
        .shutdown_on_signal()
        .run(triggers::reconcile_http, error_policy::<HTTPTrigger>, ctx.clone())
        .for_each(|_| future::ready(()));
    let cron = cron
        .owns_shared_stream(cron_job_events)
        .reconcile_all_on(reloads(&reload))
        .shutdown_on_signal()
        .run(triggers::reconcile_cron, error_policy::<CronJobTrigger>, ctx.clone())
        .for_each(|_| future::ready(()));
    let controllers = future::join3(functions, http, cron).map(drop);
    let background = future::join_all(drivers).map(drop);
    let leadership = async {
        match renewing.as_mut() {
            Some(renewing) => drop(renewing.await),
            None => future::pending().await,
        }
    };

    let outcome = tokio::select! {
        () = controllers => Ok(()),
        () = background => Err(anyhow::anyhow!("a watch ended unexpectedly")),
        () = leadership => Err(anyhow::anyhow!("lost the leader Lease {}", settings.lease_name)),
        served = server => Err(match served {
            Ok(Err(e)) => anyhow::anyhow!("cannot serve on {listen}: {e}"),
            _ => anyhow::anyhow!("the metrics server stopped"),
        }),
    };
    metrics.set_leader(false);
    // No renewal after the release (it would take the Lease again).
    if let Some(renewing) = &renewing {
        renewing.abort();
    }
    if let Some(lock) = &lock
        && outcome.is_ok()
        && let Err(e) = lock.release().await
    {
        tracing::warn!(error = %e, "could not release the leader Lease");
    }
    outcome
}

/// An API for `K` in `scope` (empty: all namespaces).
pub(crate) fn scoped<K>(client: &Client, scope: &str) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    if scope.is_empty() { Api::all(client.clone()) } else { Api::namespaced(client.clone(), scope) }
}

/// How long a reconcile waits for more changes of its object: a Function's children change
/// several times in a row as they start (created, scheduled, ready), and one look after the
/// burst sees what the several would.
const RECONCILE_DEBOUNCE: Duration = Duration::from_millis(100);

/// The controller of `K` (Functions, or a trigger kind) over a watch of its own: a deleted
/// object is forgotten by the context in `forget` (without a finalizer, the reconciler never
/// sees it again).
fn owner_controller<K>(
    client: &Client,
    scope: &str,
    watch: &watcher::Config,
    forget: &Arc<OnceLock<Weak<Context>>>,
    config: ControllerConfig,
) -> Controller<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let forget = forget.clone();
    let changes = cacheable_watch(scoped::<K>(client, scope), watch.clone())
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(object)) = event
                && let Some(ctx) = forget.get().and_then(Weak::upgrade)
            {
                let kind = crate::apply::kind_name::<K>();
                ctx.forget(kind, &object.namespace().unwrap_or_default(), &object.name_any());
            }
        })
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(changes, reader).with_config(config)
}

/// A cache of the objects of kind `K` the controller made (label [`CHILD_SELECTOR`]), each
/// passed through `reduce` (to drop what is never read), the stream of their changes for a
/// controller to subscribe to, and its watch pushed onto `drivers`.
fn child_cache<K>(
    client: &Client,
    scope: &str,
    drivers: &mut Vec<Driver>,
    reduce: fn(&mut K),
) -> (Store<K>, impl Stream<Item = Arc<K>> + Send + 'static)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store_shared(1024);
    let events = writer.subscribe().expect("a shared store has subscribers");
    let watch =
        cacheable_watch(scoped::<K>(client, scope), watcher::Config::default().labels(CHILD_SELECTOR).any_semantic())
            .modify(reduce);
    drivers.push(drive(watch.reflect_shared(writer), K::kind(&()).into_owned()));
    (reader, events)
}

/// A cache of the metadata of every object of kind `K` ([`Known`]), labelled or not, the stream
/// of their changes, and its watch pushed onto `drivers`. What was applied to an object the
/// watch sees deleted (or to every object, when it lists them again) is forgotten by the context
/// in `forget`.
fn known_cache<K>(
    client: &Client,
    scope: &str,
    forget: &Arc<OnceLock<Weak<Context>>>,
    drivers: &mut Vec<Driver>,
) -> (Store<PartialObjectMeta<K>>, impl Stream<Item = Arc<PartialObjectMeta<K>>> + Send + 'static)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store_shared(1024);
    let events = writer.subscribe().expect("a shared store has subscribers");
    let api = scoped::<PartialObjectMeta<K>>(client, scope);
    let forget = forget.clone();
    let watch = cacheable_watch(api, watcher::Config::default().any_semantic())
        .modify(|object| {
            // Often the largest part of the metadata, and never read.
            if let Some(annotations) = object.metadata.annotations.as_mut() {
                annotations.remove(LAST_APPLIED);
            }
        })
        .inspect(move |event| {
            let Some(ctx) = forget.get().and_then(Weak::upgrade) else { return };
            let kind = crate::apply::kind_name::<K>();
            match event {
                Ok(watcher::Event::Delete(object)) => crate::apply::forget_child(
                    &ctx,
                    kind,
                    &object.namespace().unwrap_or_default(),
                    Some(&object.name_any()),
                ),
                Ok(watcher::Event::Init) => crate::apply::forget_child(&ctx, kind, "", None),
                _ => {}
            }
        });
    drivers.push(drive(watch.reflect_shared(writer), format!("{} metadata", K::kind(&()))));
    (reader, events)
}

/// `kubectl apply`'s copy of the object, in its annotations.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drives `watch`, logging its failures (it retries with backoff).
fn drive<T>(watch: impl Stream<Item = watcher::Result<T>> + Send + 'static, what: String) -> Driver {
    Box::pin(watch.for_each(move |event| {
        if let Err(e) = event {
            tracing::warn!(error = %e, kind = %what, "watch failed; retrying");
        }
        future::ready(())
    }))
}

/// What of a function's Deployment the controller reads: its generation, desired replicas and
/// status (its readiness), and its owner (whose reconcile its changes start); the pod template,
/// the largest part, is dropped from the cache (the metadata cache's digest says what was
/// applied).
fn reduce_deployment(deployment: &mut Deployment) {
    deployment.metadata.annotations = None;
    if let Some(spec) = deployment.spec.as_mut() {
        *spec = DeploymentSpec { replicas: spec.replicas, ..Default::default() };
    }
}

/// What of a function's Service the controller reads: its name and ports (an HTTPTrigger's
/// Ingress names them).
fn reduce_service(service: &mut Service) {
    service.metadata.annotations = None;
    service.status = None;
    if let Some(spec) = service.spec.as_mut() {
        *spec = ServiceSpec { ports: spec.ports.take(), ..Default::default() };
    }
}

/// What of a function's pod the controller reads: its labels and its init containers' states
/// (a build or install that failed); the rest is dropped from the cache.
fn reduce_pod(pod: &mut Pod) {
    pod.metadata.annotations = None;
    pod.spec = None;
    if let Some(status) = pod.status.as_mut() {
        *status = k8s_openapi::api::core::v1::PodStatus {
            init_container_statuses: status.init_container_statuses.take(),
            ..Default::default()
        };
    }
}

/// The watch of `api` that every cache of the cluster binaries is filled from: retried with
/// backoff, and without `managedFields` (field ownership is the API server's business; without
/// it a cached object takes about half the memory).
pub(crate) fn cacheable_watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    watcher(api, config).default_backoff().modify(|object| object.meta_mut().managed_fields = None)
}

/// Reads the configuration ConfigMap; Kelp's defaults when there is none.
pub(crate) async fn load_config(api: &Api<ConfigMap>, name: &str) -> anyhow::Result<kelp_plan::Config> {
    let data = match api.get_opt(name).await.with_context(|| format!("reading the ConfigMap {name}"))? {
        Some(config_map) => config_map.data.unwrap_or_default(),
        None => {
            tracing::warn!(config = name, "no configuration ConfigMap; using Kelp's defaults");
            kelp_plan::Config::default_data()
        }
    };
    kelp_plan::Config::from_data(&data).with_context(|| format!("the ConfigMap {name} is not a valid configuration"))
}

/// Watches the configuration and applies each valid change (every object is then reconciled
/// again, through `reload`); an invalid change is reported and the previous configuration kept.
async fn watch_config(api: Api<ConfigMap>, name: String, ctx: Arc<Context>, reload: broadcast::Sender<()>) {
    let selector = format!("metadata.name={name}");
    let mut changes =
        std::pin::pin!(watcher(api, watcher::Config::default().fields(&selector)).default_backoff().applied_objects());
    let mut seen = None;
    while let Some(change) = changes.next().await {
        let Ok(config_map) = change else { continue };
        let data = config_map.data.clone().unwrap_or_default();
        if seen.as_ref() == Some(&data) {
            continue;
        }
        match kelp_plan::Config::from_data(&data) {
            Ok(config) => {
                if seen.is_some() {
                    tracing::info!(config = %name, "configuration changed; reconciling everything");
                    ctx.set_config(config);
                    let _ = reload.send(());
                }
                seen = Some(data);
            }
            Err(e) => {
                tracing::error!(config = %name, error = %e, "invalid configuration; keeping the previous one");
                ctx.warn(&config_map, "InvalidConfiguration", "Reload", e.to_string()).await;
            }
        }
    }
}

/// A stream of configuration reloads.
fn reloads(reload: &broadcast::Sender<()>) -> impl Stream<Item = ()> + Send + 'static {
    futures_util::stream::unfold(reload.subscribe(), |mut receiver| async move {
        match receiver.recv().await {
            Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), receiver)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// Publishes the queue depth of each kind once a second.
async fn report_queue_depth(ctx: Arc<Context>, http: Store<HTTPTrigger>, cron: Store<CronJobTrigger>) {
    fn keys<K>(store: &Store<K>) -> Vec<(String, String, String)>
    where
        K: Resource + Clone,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        store
            .state()
            .iter()
            .map(|o| (o.namespace().unwrap_or_default(), o.name_any(), o.resource_version().unwrap_or_default()))
            .collect()
    }
    loop {
        for (kind, current) in [
            (function::KIND, keys(&ctx.stores.functions)),
            ("HTTPTrigger", keys(&http)),
            ("CronJobTrigger", keys(&cron)),
        ] {
            let depth = ctx.pending(kind, current.iter().map(|(ns, n, rv)| (ns.clone(), n.clone(), rv.as_str())));
            ctx.metrics.set_queue_depth(kind, depth);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// After a failed reconcile: count it and try again later, backing off per object (see
/// [`backoff`](crate::backoff)): sooner and capped lower when waiting for another object, slower
/// for a conflict or a spec only a person can fix.
fn error_policy<K: Resource<DynamicType = ()>>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let kind = crate::apply::kind_name::<K>();
    ctx.metrics.error(kind, error.reason());
    let name = object.meta().name.clone().unwrap_or_default();
    let policy = match error {
        Error::Conflict { .. } | Error::Plan(_) => {
            Policy { base: Duration::from_secs(10), cap: Duration::from_secs(600) }
        }
        Error::FunctionNotFound { .. } => Policy { base: Duration::from_secs(1), cap: Duration::from_secs(30) },
        _ => Policy { base: Duration::from_secs(1), cap: Duration::from_secs(300) },
    };
    let key = (kind, object.meta().namespace.clone().unwrap_or_default(), name);
    let delay = ctx.backoff.failed(key.clone(), policy);
    tracing::warn!(kind, name = %key.2, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
