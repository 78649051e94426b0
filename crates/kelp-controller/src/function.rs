//! Reconciling a Function: its ConfigMap, Deployment, Service and autoscaler, then its status.

use crate::Result;
use crate::apply::{apply, remove};
use crate::context::Context;
use crate::status::{Readiness, deployment_readiness, ready_condition, step_failure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kelp_api::{CronJobTrigger, Function, HTTPTrigger, READY_CONDITION};
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The kind, as metrics and logs name it.
pub const KIND: &str = "Function";

/// How often a Function is looked at again anyway (its pods and Deployment trigger a look
/// whenever they change).
const RESYNC: Duration = Duration::from_secs(300);

/// Why the function's pods do not start, when a build or install step failed in one
/// ([`step_failure`]), from the cache of the functions' pods.
fn step_failure_of(function: &Function, ctx: &Context) -> Option<Readiness> {
    let namespace = function.namespace().unwrap_or_default();
    let name = function.name_any();
    let pods: Vec<Pod> = ctx
        .stores
        .pods
        .state()
        .iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && p.labels().get(kelp_plan::FUNCTION_LABEL) == Some(&name)
        })
        .map(|p| p.as_ref().clone())
        .collect();
    step_failure(&pods)
}

/// Reconciles one Function (the `Controller`'s reconciler). No finalizer is added: the children
/// and the triggers have owner references, so the garbage collector deletes them with it. A
/// Function being deleted that carries Kubeless's finalizer (Kubeless, or an older Kelp, put it
/// there) has its triggers deleted, then the finalizer taken off.
pub async fn reconcile(function: Arc<Function>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    ctx.stores.ready().await;
    let api: Api<Function> = Api::namespaced(ctx.client.clone(), &function.namespace().unwrap_or_default());
    if function.meta().deletion_timestamp.is_some() {
        crate::finalizer::release(&api, function.as_ref(), kelp_plan::FUNCTION_FINALIZER, cleanup(&function, &ctx))
            .await?;
        return Ok(Action::await_change());
    }
    apply_function(&function, &ctx, &api).await
}

/// Applies the children, then writes the status, also when applying failed. The status is
/// written only when it differs from the Function's (so once per change of readiness, reason
/// or ready pods), and a Warning Event only when the failure is new to the status.
async fn apply_function(function: &Function, ctx: &Context, api: &Api<Function>) -> Result<Action> {
    let outcome = apply_children(function, ctx).await;
    let mut readiness = match &outcome {
        // Applied, and not in the cache yet.
        Ok(deployment) => deployment.as_ref().map_or_else(Readiness::rolling_out, deployment_readiness),
        Err(e) => Readiness::failed(e.reason(), e.to_string()),
    };
    if outcome.as_ref().is_ok_and(Option::is_some) && !readiness.ready {
        // A pod's build or install failing does not show in the Deployment's status.
        if let Some(failed) = step_failure_of(function, ctx) {
            readiness = Readiness { ready_replicas: readiness.ready_replicas, ..failed };
        }
    }
    let previous = function.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let new_failure = !readiness.ready
        && !previous
            .iter()
            .any(|c| c.type_ == READY_CONDITION && c.reason == readiness.reason && c.message == readiness.message);
    let generation = function.meta().generation;
    let condition = ready_condition(generation, readiness.ready, &readiness.reason, &readiness.message, previous);
    let status = json!({
        "conditions": [condition],
        "observedGeneration": generation,
        "readyReplicas": readiness.ready_replicas,
    });
    let current = function.status.as_ref().and_then(|s| serde_json::to_value(s).ok());
    let key = (KIND, function.namespace().unwrap_or_default(), function.name_any());
    let version = ctx.write_status(&key, api, function, current, status).await?;
    let failed_step = matches!(readiness.reason.as_str(), "BuildFailed" | "InstallFailed");
    if new_failure && (failed_step || outcome.is_err()) {
        ctx.warn(function, &readiness.reason, "Reconcile", readiness.message.clone()).await;
    }
    match outcome {
        Ok(_) => {
            ctx.mark_reconciled(key, version);
            Ok(Action::requeue(RESYNC))
        }
        Err(e) => Err(e),
    }
}

/// Plans and applies the children; returns the Deployment as last seen.
async fn apply_children(function: &Function, ctx: &Context) -> Result<Option<Deployment>> {
    let children = kelp_plan::function_children(function, &ctx.config())?;
    let stores = &ctx.stores;
    let known = &stores.known;
    let namespace = function.namespace().unwrap_or_default();
    let name = function.name_any();
    let hpa = async {
        match &children.hpa {
            Some(hpa) => apply(ctx, &known.hpas, hpa).await.map(drop),
            None => remove(ctx, &known.hpas, &namespace, &name).await,
        }
    };
    let (_, _, deployment, ()) = tokio::try_join!(
        apply(ctx, &known.config_maps, &children.config_map),
        apply(ctx, &known.services, &children.service),
        apply(ctx, &known.deployments, &children.deployment),
        hpa,
    )?;
    Ok(deployment
        .or_else(|| stores.deployments.get(&ObjectRef::new(&name).within(&namespace)).map(|d| d.as_ref().clone())))
}

/// On the deletion of a Function with Kubeless's finalizer: removes the function's triggers, as
/// Kubeless's trigger controllers did (also those that have no owner reference to it yet). The
/// children go with their owner (owner references, the cluster's garbage collector).
async fn cleanup(function: &Function, ctx: &Context) -> Result<()> {
    let namespace = function.namespace().unwrap_or_default();
    let name = function.name_any();
    let http: Api<HTTPTrigger> = Api::namespaced(ctx.client.clone(), &namespace);
    for trigger in http.list(&Default::default()).await? {
        if trigger.spec.function_name.as_deref() == Some(name.as_str()) {
            delete_ignoring_absent(&http, &trigger.name_any()).await?;
        }
    }
    let cron: Api<CronJobTrigger> = Api::namespaced(ctx.client.clone(), &namespace);
    for trigger in cron.list(&Default::default()).await? {
        if trigger.spec.function_name.as_deref() == Some(name.as_str()) {
            delete_ignoring_absent(&cron, &trigger.name_any()).await?;
        }
    }
    Ok(())
}

async fn delete_ignoring_absent<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
