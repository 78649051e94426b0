//! CronJobTrigger → batch/v1 CronJob.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kelp_api::{CronJobTrigger, Function};
use serde_json::Value;

use crate::config::Config;
use crate::error::PlanError;
use crate::meta::{self, Labels};
use crate::shell;

/// The `event-namespace` of the calls, as Kubeless sent it.
const EVENT_NAMESPACE: &str = "cronjobtrigger.kubeless.io";

/// Plans the CronJob of a CronJobTrigger, given its function and the `kubeless-config`.
///
/// One CronJob per trigger, named after the trigger and controlled by it. (Kubeless named it
/// `trigger-<function>`, so two triggers of one function overwrote each other's schedule, and
/// its ownerReference had the kind `Trigger`.) Labels and annotations: the trigger's and the
/// function's, plus `created-by: kubeless`, on the CronJob and its Jobs (not on their pods,
/// which the function's Service and Deployment would then select).
///
/// Each Job runs until the function's timeout (`activeDeadlineSeconds`), keeps 3 successful and
/// 1 failed Jobs, and runs `curl` in the provision image (container `trigger`, restart policy
/// `Never`, requests 10m/16Mi, limits 100m/64Mi) against
/// `http://<function>.<namespace>.svc:<port>` with Kubeless's `Event-Id` (the pod's UID),
/// `Event-Time`, `Event-Namespace: cronjobtrigger.kubeless.io`, `Event-Type` and `Content-Type`
/// headers, and the JSON payload as the body (a POST) when the trigger has one (a GET
/// otherwise). The service name is not qualified with `cluster.local`, so clusters with another
/// domain work too.
pub fn cronjob_trigger_cronjob(
    trigger: &CronJobTrigger,
    function: &Function,
    config: &Config,
) -> Result<CronJob, PlanError> {
    let schedule = trigger.spec.schedule.clone().filter(|s| !s.is_empty());
    let schedule = schedule.ok_or_else(|| PlanError::invalid("spec.schedule", "must not be empty"))?;
    let timeout = function.spec.timeout_seconds().map_err(|e| PlanError::invalid("function spec.timeout", e))?;
    let url = crate::function_url(crate::FUNCTION_URL, function);

    let mut labels = trigger.metadata.labels.clone().unwrap_or_default();
    labels.extend(meta::function_labels(function));
    let mut annotations = meta::inherited_annotations(&function.metadata);
    annotations.extend(meta::inherited_annotations(&trigger.metadata));
    let child_meta = |labels: Labels| ObjectMeta {
        labels: Some(labels),
        annotations: meta::non_empty(annotations.clone()),
        ..ObjectMeta::default()
    };
    let pod = PodSpec {
        containers: vec![Container {
            name: "trigger".into(),
            image: Some(config.provision_image.clone()),
            command: Some(vec!["/bin/sh".into(), "-c".into()]),
            args: Some(vec![curl_command(&url, trigger.spec.payload.as_ref())]),
            env: Some(vec![EnvVar {
                name: "POD_UID".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector { field_path: "metadata.uid".into(), ..Default::default() }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            }]),
            resources: Some(ResourceRequirements {
                requests: Some(quantities("10m", "16Mi")),
                limits: Some(quantities("100m", "64Mi")),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        }],
        restart_policy: Some("Never".into()),
        image_pull_secrets: (!config.image_pull_secrets.is_empty()).then(|| config.image_pull_secrets.clone()),
        ..PodSpec::default()
    };
    Ok(CronJob {
        metadata: ObjectMeta {
            name: trigger.metadata.name.clone(),
            namespace: trigger.metadata.namespace.clone(),
            owner_references: Some(vec![meta::owner_reference("CronJobTrigger", &trigger.metadata)?]),
            ..child_meta(labels.clone())
        },
        spec: Some(CronJobSpec {
            schedule,
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            job_template: JobTemplateSpec {
                metadata: Some(child_meta(labels)),
                spec: Some(JobSpec {
                    active_deadline_seconds: Some(i64::try_from(timeout).unwrap_or(i64::MAX)),
                    template: PodTemplateSpec { metadata: None, spec: Some(pod) },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        status: None,
    })
}

/// Kubeless's `curl` call. `$(POD_UID)` is expanded by the kubelet, `$(date ...)` by the shell
/// (in a form busybox's `date` also knows); the URL and payload are quoted for both.
fn curl_command(url: &str, payload: Option<&Value>) -> String {
    let headers = [
        "Event-Id: $(POD_UID)".to_owned(),
        "Event-Time: $(date -u '+%Y-%m-%d %H:%M:%S+00:00')".to_owned(),
        format!("Event-Namespace: {EVENT_NAMESPACE}"),
        "Event-Type: application/json".to_owned(),
        "Content-Type: application/json".to_owned(),
    ];
    let mut command = String::from("curl -Lv");
    for header in headers {
        command.push_str(&format!(" -H \"{header}\""));
    }
    command.push(' ');
    command.push_str(&shell::escape_kubelet(&shell::quote(url)));
    if let Some(payload) = payload.filter(|p| !p.is_null()) {
        command.push_str(" -d ");
        command.push_str(&shell::escape_kubelet(&shell::quote(&payload.to_string())));
    }
    command
}

/// `{cpu, memory}` quantities.
fn quantities(cpu: &str, memory: &str) -> std::collections::BTreeMap<String, Quantity> {
    [("cpu", cpu), ("memory", memory)].into_iter().map(|(k, v)| (k.to_owned(), Quantity(v.to_owned()))).collect()
}
