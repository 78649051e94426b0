//! Reconciling triggers: an HTTPTrigger becomes an Ingress to its function's Service, a
//! CronJobTrigger a CronJob that calls its function. Both share one loop: finalizer, plan, apply,
//! status.

use crate::apply::apply;
use crate::context::Context;
use crate::status::ready_condition;
use crate::{Error, Result};
use kelp_api::{CronJobTrigger, Function, HTTPTrigger, TriggerStatus};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
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
        let service = ctx
            .stores
            .services
            .get(&ObjectRef::new(trigger.function_name()).within(&namespace))
            .ok_or_else(|| not_found(trigger.as_ref()))?;
        let config = ctx.config();
        let ingress = kelp_plan::http_trigger_ingress(&trigger, &service, &config)?;
        let refused = kelp_plan::refused_ingress_annotations(&trigger, &config);
        if !refused.is_empty() {
            let note = format!(
                "not copied onto the Ingress: {} (only allowed annotations are; the kubeless-config key \
                 ingress-annotations extends the list)",
                refused.join(", ")
            );
            ctx.warn(trigger.as_ref(), "AnnotationRefused", "Reconcile", note).await;
        }
        apply(&ctx, &ctx.stores.ingresses, &ingress).await.map(drop)
    })
    .await
}

/// Reconciles a CronJobTrigger: a CronJob calling its function on the schedule.
pub async fn reconcile_cron(trigger: Arc<CronJobTrigger>, ctx: Arc<Context>) -> Result<Action> {
    reconcile(trigger, ctx, |trigger, ctx| async move {
        let namespace = trigger.namespace().unwrap_or_default();
        let function: Arc<Function> = ctx
            .stores
            .functions
            .get(&ObjectRef::new(trigger.function_name()).within(&namespace))
            .ok_or_else(|| not_found(trigger.as_ref()))?;
        let cron_job = kelp_plan::cronjob_trigger_cronjob(&trigger, &function, &ctx.config())?;
        apply(&ctx, &ctx.stores.cron_jobs, &cron_job).await.map(drop)
    })
    .await
}

fn not_found<T: Trigger>(trigger: &T) -> Error {
    Error::FunctionNotFound { namespace: trigger.namespace().unwrap_or_default(), name: trigger.function_name().into() }
}

/// The shared loop: under the finalizer, `make` plans and applies the trigger's object; the
/// outcome becomes the status. Nothing to clean up on deletion: the object goes with its owner.
async fn reconcile<T, F, Fut>(trigger: Arc<T>, ctx: Arc<Context>, make: F) -> Result<Action>
where
    T: Trigger,
    F: FnOnce(Arc<T>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let kind = crate::apply::kind_name::<T>();
    let _timer = ctx.metrics.reconcile(kind);
    let namespace = trigger.namespace().unwrap_or_default();
    let api: Api<T> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, T::FINALIZER, trigger, |event| async {
        match event {
            Event::Apply(trigger) => {
                let outcome = make(trigger.clone(), ctx.clone()).await;
                let (ready, reason, message) = match &outcome {
                    Ok(()) => (true, T::APPLIED.to_string(), format!("{} is applied", applied_object(kind))),
                    Err(e) => (false, e.reason().to_string(), e.to_string()),
                };
                let previous = trigger.status().map(|s| s.conditions.as_slice()).unwrap_or_default();
                let generation = trigger.meta().generation;
                let condition = ready_condition(generation, ready, &reason, &message, previous);
                let status = json!({"conditions": [condition], "observedGeneration": generation});
                let current = trigger.status().and_then(|s| serde_json::to_value(s).ok());
                let version = crate::status::write(&api, trigger.as_ref(), current, status).await?;
                match outcome {
                    Ok(()) => {
                        ctx.mark_reconciled((kind, namespace.clone(), trigger.name_any()), version);
                        Ok(Action::requeue(RESYNC))
                    }
                    Err(e) => {
                        ctx.warn(trigger.as_ref(), e.reason(), "Reconcile", e.to_string()).await;
                        Err(e)
                    }
                }
            }
            Event::Cleanup(trigger) => {
                ctx.forget(kind, &namespace, &trigger.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// What a trigger kind makes, for the status message.
fn applied_object(kind: &str) -> &'static str {
    if kind == "HTTPTrigger" { "the Ingress" } else { "the CronJob" }
}
