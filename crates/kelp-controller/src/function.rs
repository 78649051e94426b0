//! Reconciling a Function: its ConfigMap, Deployment, Service and autoscaler, then its status.

use crate::apply::{apply, remove};
use crate::context::Context;
use crate::status::{Readiness, deployment_readiness, ready_condition, step_failure};
use crate::{Error, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kelp_api::{CronJobTrigger, Function, HTTPTrigger};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The kind, as metrics and logs name it.
pub const KIND: &str = "Function";

/// How often a Function that is fine is looked at again anyway.
const RESYNC: Duration = Duration::from_secs(300);
/// How often a Function that is not ready is looked at again (its pods' steps may have failed).
const NOT_READY_RESYNC: Duration = Duration::from_secs(5);

/// Why the function's pods do not start, when a build or install step failed in one
/// ([`step_failure`]); `None` when they could not be listed (the status says what the
/// Deployment says).
async fn step_failure_of(function: &Function, ctx: &Context) -> Option<Readiness> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &function.namespace().unwrap_or_default());
    let selector = format!("{}={}", kelp_plan::FUNCTION_LABEL, function.name_any());
    match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => step_failure(&list.items),
        Err(e) => {
            tracing::debug!(error = %e, "listing a function's pods");
            None
        }
    }
}

/// Reconciles one Function (the `Controller`'s reconciler).
pub async fn reconcile(function: Arc<Function>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let api: Api<Function> = Api::namespaced(ctx.client.clone(), &function.namespace().unwrap_or_default());
    finalizer(&api, kelp_plan::FUNCTION_FINALIZER, function, |event| async {
        match event {
            Event::Apply(function) => apply_function(&function, &ctx, &api).await,
            Event::Cleanup(function) => cleanup(&function, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Applies the children, then writes the status, also when applying failed.
async fn apply_function(function: &Function, ctx: &Context, api: &Api<Function>) -> Result<Action> {
    let outcome = apply_children(function, ctx).await;
    let mut readiness = match &outcome {
        Ok(deployment) => deployment.as_ref().map_or_else(
            || Readiness::failed("Pending", "the Deployment is not created yet".into()),
            deployment_readiness,
        ),
        Err(e) => Readiness::failed(e.reason(), e.to_string()),
    };
    if outcome.as_ref().is_ok_and(Option::is_some) && !readiness.ready {
        // A pod's build or install failing does not show in the Deployment's status.
        if let Some(failed) = step_failure_of(function, ctx).await {
            let key = (function.namespace().unwrap_or_default(), function.name_any());
            if ctx.note_step_failure(key, &failed.message) {
                ctx.warn(function, &failed.reason, "Reconcile", failed.message.clone()).await;
            }
            readiness = Readiness { ready_replicas: readiness.ready_replicas, ..failed };
        }
    }
    let previous = function.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = function.meta().generation;
    let condition = ready_condition(generation, readiness.ready, &readiness.reason, &readiness.message, previous);
    let status = json!({
        "conditions": [condition],
        "observedGeneration": generation,
        "readyReplicas": readiness.ready_replicas,
    });
    let current = function.status.as_ref().and_then(|s| serde_json::to_value(s).ok());
    let version = crate::status::write(api, function, current, status).await?;
    let key = (KIND, function.namespace().unwrap_or_default(), function.name_any());
    match outcome {
        // Not ready yet: look again soon, as what a pod does (a step failing) triggers nothing.
        Ok(_) if !readiness.ready => {
            ctx.mark_reconciled(key, version);
            Ok(Action::requeue(NOT_READY_RESYNC))
        }
        Ok(_) => {
            ctx.mark_reconciled(key, version);
            Ok(Action::requeue(RESYNC))
        }
        Err(e) => {
            ctx.warn(function, e.reason(), "Reconcile", e.to_string()).await;
            Err(e)
        }
    }
}

/// Plans and applies the children; returns the Deployment as last seen.
async fn apply_children(function: &Function, ctx: &Context) -> Result<Option<Deployment>> {
    let children = kelp_plan::function_children(function, &ctx.config())?;
    let stores = &ctx.stores;
    let namespace = function.namespace().unwrap_or_default();
    let name = function.name_any();
    let hpa = async {
        match &children.hpa {
            Some(hpa) => apply(ctx, &stores.hpas, hpa).await.map(drop),
            None => remove(ctx, &stores.hpas, &namespace, &name).await,
        }
    };
    let (_, _, deployment, ()) = tokio::try_join!(
        apply(ctx, &stores.config_maps, &children.config_map),
        apply(ctx, &stores.services, &children.service),
        apply(ctx, &stores.deployments, &children.deployment),
        hpa,
    )?;
    Ok(deployment
        .or_else(|| stores.deployments.get(&ObjectRef::new(&name).within(&namespace)).map(|d| d.as_ref().clone())))
}

/// On deletion: removes the function's triggers, as Kubeless's trigger controllers did. The
/// children go with their owner (owner references, the cluster's garbage collector).
async fn cleanup(function: &Function, ctx: &Context) -> Result<Action> {
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
    ctx.forget(KIND, &namespace, &name);
    Ok(Action::await_change())
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
