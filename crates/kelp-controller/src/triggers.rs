//! Reconciling triggers: an HTTPTrigger becomes an Ingress to its function's Service, a
//! CronJobTrigger a CronJob that calls its function. Both share one loop: owner reference to the
//! function, plan, apply, status.

use crate::apply::apply;
use crate::context::Context;
use crate::status::ready_condition;
use crate::{Error, FIELD_MANAGER, Result};
use kelp_api::{CronJobTrigger, Function, HTTPTrigger, READY_CONDITION, TriggerStatus};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often a trigger that is fine is looked at again anyway.
const RESYNC: Duration = Duration::from_secs(300);

/// A trigger kind the controller reconciles.
pub trait Trigger:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Its finalizer (Kubeless's name).
    const FINALIZER: &'static str;
    /// What its Ready condition's reason is when its object is applied.
    const APPLIED: &'static str;
    /// The trigger's status.
    fn status(&self) -> Option<&TriggerStatus>;
    /// The function it names.
    fn function_name(&self) -> &str;
}

impl Trigger for HTTPTrigger {
    const FINALIZER: &'static str = kelp_plan::HTTP_TRIGGER_FINALIZER;
    const APPLIED: &'static str = "IngressApplied";
    fn status(&self) -> Option<&TriggerStatus> {
        self.status.as_ref()
    }
    fn function_name(&self) -> &str {
        self.spec.function_name.as_deref().unwrap_or_default()
    }
}

impl Trigger for CronJobTrigger {
    const FINALIZER: &'static str = kelp_plan::CRONJOB_TRIGGER_FINALIZER;
    const APPLIED: &'static str = "CronJobApplied";
    fn status(&self) -> Option<&TriggerStatus> {
        self.status.as_ref()
    }
    fn function_name(&self) -> &str {
        self.spec.function_name.as_deref().unwrap_or_default()
    }
}

/// Reconciles an HTTPTrigger: an Ingress to its function's Service.
pub async fn reconcile_http(trigger: Arc<HTTPTrigger>, ctx: Arc<Context>) -> Result<Action> {
    reconcile(trigger, ctx, |trigger, ctx| async move {
        let namespace = trigger.namespace().unwrap_or_default();
        own(&ctx, trigger.as_ref(), function_of(&ctx, trigger.as_ref())?.as_ref()).await?;
        let service = ctx
            .stores
            .services
            .get(&ObjectRef::new(trigger.function_name()).within(&namespace))
            .ok_or_else(|| not_found(trigger.as_ref()))?;
        let config = ctx.config();
        let ingress = kelp_plan::http_trigger_ingress(&trigger, &service, &config)?;
        let refused = kelp_plan::refused_ingress_annotations(&trigger, &config);
        // Once per generation: the status of the generation before says it was seen.
        let seen = trigger.status().and_then(|s| s.observed_generation) == trigger.meta().generation;
        if !refused.is_empty() && !seen {
            let note = format!(
                "not copied onto the Ingress: {} (only allowed annotations are; the kubeless-config key \
                 ingress-annotations extends the list)",
                refused.join(", ")
            );
            ctx.warn(trigger.as_ref(), "AnnotationRefused", "Reconcile", note).await;
        }
        apply(&ctx, &ctx.stores.known.ingresses, &ingress).await.map(drop)
    })
    .await
}

/// Reconciles a CronJobTrigger: a CronJob calling its function on the schedule.
pub async fn reconcile_cron(trigger: Arc<CronJobTrigger>, ctx: Arc<Context>) -> Result<Action> {
    reconcile(trigger, ctx, |trigger, ctx| async move {
        let function = function_of(&ctx, trigger.as_ref())?;
        own(&ctx, trigger.as_ref(), &function).await?;
        let cron_job = kelp_plan::cronjob_trigger_cronjob(&trigger, &function, &ctx.config())?;
        apply(&ctx, &ctx.stores.known.cron_jobs, &cron_job).await.map(drop)
    })
    .await
}

/// The Function `trigger` names, from the cache.
fn function_of<T: Trigger>(ctx: &Context, trigger: &T) -> Result<Arc<Function>> {
    let namespace = trigger.namespace().unwrap_or_default();
    ctx.stores
        .functions
        .get(&ObjectRef::new(trigger.function_name()).within(&namespace))
        .ok_or_else(|| not_found(trigger))
}

/// Makes `function` an owner of `trigger` (not its controller), unless it is already, so that
/// the garbage collector deletes the trigger with its function (as Kubeless's trigger
/// controllers did) without a finalizer on the Function. Server-side apply of the reference
/// alone: a trigger renamed to another function gets the new owner in place of the old one.
async fn own<T: Trigger>(ctx: &Context, trigger: &T, function: &Function) -> Result<()> {
    let uid = function.uid().unwrap_or_default();
    if trigger.owner_references().iter().any(|r| r.uid == uid) {
        return Ok(());
    }
    let body = json!({
        "apiVersion": T::api_version(&()),
        "kind": T::kind(&()),
        "metadata": {
            "name": trigger.name_any(),
            "ownerReferences": [{
                "apiVersion": Function::api_version(&()),
                "kind": Function::kind(&()),
                "name": function.name_any(),
                "uid": uid,
            }],
        },
    });
    let api: Api<T> = Api::namespaced(ctx.client.clone(), &trigger.namespace().unwrap_or_default());
    api.patch(&trigger.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

fn not_found<T: Trigger>(trigger: &T) -> Error {
    Error::FunctionNotFound { namespace: trigger.namespace().unwrap_or_default(), name: trigger.function_name().into() }
}

/// The shared loop: `make` plans and applies the trigger's object; the outcome becomes the
/// status (written when it changed), and a failure new to the status a Warning Event. Nothing to
/// clean up on deletion: the object goes with its owner; Kubeless's finalizer, when the trigger
/// has one, is taken off.
async fn reconcile<T, F, Fut>(trigger: Arc<T>, ctx: Arc<Context>, make: F) -> Result<Action>
where
    T: Trigger,
    F: FnOnce(Arc<T>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let kind = crate::apply::kind_name::<T>();
    let _timer = ctx.metrics.reconcile(kind);
    ctx.stores.ready().await;
    let namespace = trigger.namespace().unwrap_or_default();
    let api: Api<T> = Api::namespaced(ctx.client.clone(), &namespace);
    if trigger.meta().deletion_timestamp.is_some() {
        crate::finalizer::release(&api, trigger.as_ref(), T::FINALIZER, async { Ok(()) }).await?;
        return Ok(Action::await_change());
    }
    let outcome = make(trigger.clone(), ctx.clone()).await;
    let (ready, reason, message) = match &outcome {
        Ok(()) => (true, T::APPLIED.to_string(), format!("{} is applied", applied_object(kind))),
        Err(e) => (false, e.reason().to_string(), e.to_string()),
    };
    let previous = trigger.status().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let new_failure =
        !ready && !previous.iter().any(|c| c.type_ == READY_CONDITION && c.reason == reason && c.message == message);
    let generation = trigger.meta().generation;
    let condition = ready_condition(generation, ready, &reason, &message, previous);
    let status = json!({"conditions": [condition], "observedGeneration": generation});
    let current = trigger.status().and_then(|s| serde_json::to_value(s).ok());
    let key = (kind, namespace, trigger.name_any());
    let version = ctx.write_status(&key, &api, trigger.as_ref(), current, status).await?;
    match outcome {
        Ok(()) => {
            ctx.mark_reconciled(key, version);
            Ok(Action::requeue(RESYNC))
        }
        Err(e) => {
            if new_failure {
                ctx.warn(trigger.as_ref(), e.reason(), "Reconcile", e.to_string()).await;
            }
            Err(e)
        }
    }
}

/// What a trigger kind makes, for the status message.
fn applied_object(kind: &str) -> &'static str {
    if kind == "HTTPTrigger" { "the Ingress" } else { "the CronJob" }
}
