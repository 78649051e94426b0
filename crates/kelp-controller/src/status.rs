//! The `status` the controller writes: a `Ready` condition with a reason when not ready,
//! `observedGeneration`, and for Functions `readyReplicas`, read from the Deployment.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kelp_api::READY_CONDITION;
use kelp_plan::run::Step;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The field manager of status writes (apart from the children's, so neither takes the other's
/// fields).
const STATUS_MANAGER: &str = "kelp-controller-status";

/// Whether a function's pods serve, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// All desired pods run the current template and are ready.
    pub ready: bool,
    /// PascalCase reason.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// Ready pods.
    pub ready_replicas: i32,
}

impl Readiness {
    /// Not ready: the Deployment rolls out a change (or was just applied, and not seen yet).
    pub fn rolling_out() -> Self {
        Self::failed("RollingOut", ROLLING_OUT.into())
    }

    /// Not ready for `reason`.
    pub fn failed(reason: &str, message: String) -> Self {
        Self { ready: false, reason: reason.into(), message, ready_replicas: 0 }
    }
}

/// The message of [`deployment_readiness`]'s `RollingOut`: one sentence for the whole rollout,
/// so that its progress (pods created, scheduled, starting) is not a change of the Function's
/// status to write; the Deployment has the counts.
const ROLLING_OUT: &str = "the Deployment is rolling out the change";

/// How ready `deployment` is, as its own status says: `RollingOut` from a change until the
/// Deployment completes it (its `Progressing` condition `NewReplicaSetAvailable`), then
/// `PodsReady`, or `PodsNotReady` when ready pods are missing after the rollout (a pod that
/// crashed); the `Progressing` condition's reason when the rollout stalled.
pub fn deployment_readiness(deployment: &Deployment) -> Readiness {
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let seen = status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let progressing = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing");
    let stalled = progressing
        .filter(|c| c.status == "False")
        .map(|c| (c.reason.clone().unwrap_or_else(|| "ProgressDeadlineExceeded".into()), c.message.clone()));
    let completed = progressing.is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    let pods = format!("{ready} of {desired} pod(s) ready");
    let (ok, reason, message) = if !seen {
        return Readiness { ready_replicas: ready, ..Readiness::rolling_out() };
    } else if let Some((reason, message)) = stalled {
        (false, reason, message.unwrap_or(pods))
    } else if desired == 0 {
        (true, "ScaledToZero".into(), "the function has 0 replicas".into())
    } else if updated >= desired && total <= updated && ready >= desired {
        (true, "PodsReady".into(), pods)
    } else if completed && updated >= desired && total <= updated {
        (false, "PodsNotReady".into(), pods)
    } else {
        (false, "RollingOut".into(), ROLLING_OUT.to_string())
    };
    Readiness { ready: ok, reason, message, ready_replicas: ready }
}

/// Why `pods` (a function's) do not start, when one of Kelp's steps failed in one of them: the
/// init container `build` or `install` ended with an error (it is restarted, so the failure may be
/// its last state), as `BuildFailed` or `InstallFailed` with its termination message (the tool's
/// first error lines, which the kubelet takes from its log's end). Pods being deleted are
/// ignored.
pub fn step_failure(pods: &[Pod]) -> Option<Readiness> {
    for step in [Step::Build, Step::Install] {
        let failed = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .flat_map(|p| p.status.iter().flat_map(|s| s.init_container_statuses.iter().flatten()))
            .filter(|c| c.name == step.name())
            .flat_map(|c| {
                let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                c.state.as_ref().and_then(|s| s.terminated.as_ref()).into_iter().chain(last)
            })
            .find(|t| t.exit_code != 0);
        if let Some(terminated) = failed {
            let message = terminated.message.clone().unwrap_or_default();
            // The end of `kelp-runtime`'s log: its error, which it prefixes with its name.
            let message = match message.trim() {
                "" => format!("the {} init container exited with status {}", step.name(), terminated.exit_code),
                text => text.rsplit_once("kelp-runtime: ").map_or(text, |(_, error)| error).to_owned(),
            };
            return Some(Readiness::failed(step.failed_reason(), message));
        }
    }
    None
}

/// The `Ready` condition for `generation`, keeping `previous`'s transition time when the status
/// did not change.
pub fn ready_condition(
    generation: Option<i64>,
    ready: bool,
    reason: &str,
    message: &str,
    previous: &[Condition],
) -> Condition {
    let status = if ready { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == READY_CONDITION && c.status == status)
        .map_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()), |c| c.last_transition_time.clone());
    Condition {
        type_: READY_CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// `status` without its conditions' `lastTransitionTime`.
fn without_times(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
            condition.remove("lastTransitionTime");
        }
    }
    status
}

/// A status written: the resourceVersion of the object it was computed from, and the status.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The object's resourceVersion before the write.
    pub over: Option<String>,
    /// The status written.
    pub status: Value,
}

/// Writes `status` (a JSON object) to `object` with server-side apply, unless it equals what is
/// there already, or `last` (the status this process last wrote to it) is `status` written over
/// this very version of the object (the cache has not seen the write yet). Returns the
/// resourceVersion afterwards and what was written.
pub async fn write<K>(
    api: &Api<K>,
    object: &K,
    current: Option<Value>,
    status: Value,
    last: Option<Written>,
) -> kube::Result<(Option<String>, Option<Written>)>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    // Computed from the same object as the last write, a condition's lastTransitionTime may
    // differ (now, again): it does not make another status.
    let pending = last
        .as_ref()
        .is_some_and(|w| w.over == object.resource_version() && without_times(&w.status) == without_times(&status));
    if current.as_ref() == Some(&status) || pending {
        return Ok((object.resource_version(), last));
    }
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(STATUS_MANAGER).force();
    let stored = api.patch_status(&object.name_any(), &params, &Patch::Apply(&body)).await?;
    Ok((stored.resource_version(), Some(Written { over: object.resource_version(), status })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    fn deployment(replicas: i32, generation: i64, status: DeploymentStatus) -> Deployment {
        let mut d = Deployment {
            spec: Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() }),
            status: Some(status),
            ..Default::default()
        };
        d.metadata.generation = Some(generation);
        d
    }

    fn status(observed: i64, replicas: i32, updated: i32, ready: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            ..Default::default()
        }
    }

    /// `status` with the Deployment's `Progressing` condition, `reason` (True).
    fn progressing(mut status: DeploymentStatus, reason: &str) -> DeploymentStatus {
        status.conditions = Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            ..Default::default()
        }]);
        status
    }

    /// A pod whose init container `name` ended (now, or before its restart) with `exit_code`.
    fn pod_with_init(name: &str, exit_code: i32, message: &str, last: bool) -> Pod {
        let terminated = json!({"terminated": {"exitCode": exit_code, "message": message}});
        let status = if last {
            json!({"name": name, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": terminated})
        } else {
            json!({"name": name, "state": terminated})
        };
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"initContainerStatuses": [status]}}))
            .unwrap()
    }

    #[test]
    fn a_failed_step_in_a_pod_is_the_reason() {
        let built = pod_with_init("build", 0, "built go function", false);
        assert_eq!(step_failure(std::slice::from_ref(&built)), None);
        let failed = pod_with_init("build", 1, "kelp-runtime: build failed:\nhandler.go:4:2: undefined: fmt", true);
        let r = step_failure(&[built, failed]).unwrap();
        assert_eq!(
            (r.ready, r.reason.as_str(), r.message.as_str()),
            (false, "BuildFailed", "build failed:\nhandler.go:4:2: undefined: fmt")
        );
        let install = step_failure(&[pod_with_init("install", 1, "", false)]).unwrap();
        assert_eq!(install.reason, "InstallFailed");
        assert_eq!(install.message, "the install init container exited with status 1");
        assert_eq!(step_failure(&[pod_with_init("prepare", 1, "x", false)]), None);
    }

    #[test]
    fn readiness_follows_the_rollout() {
        let r = deployment_readiness(&deployment(2, 3, status(2, 2, 2, 2)));
        assert_eq!((r.ready, r.reason.as_str()), (false, "RollingOut"), "a generation not observed yet");
        let r = deployment_readiness(&deployment(2, 3, status(3, 3, 2, 2)));
        assert_eq!((r.ready, r.reason.as_str()), (false, "RollingOut"), "an old pod still running");
        let r = deployment_readiness(&deployment(2, 3, progressing(status(3, 2, 2, 1), "ReplicaSetUpdated")));
        assert_eq!((r.ready, r.reason.as_str(), r.ready_replicas), (false, "RollingOut", 1), "pods still starting");
        let first = deployment_readiness(&deployment(2, 3, status(2, 2, 2, 2)));
        assert_eq!(r.message, first.message, "the rollout's progress does not change the message");
        let r = deployment_readiness(&deployment(2, 3, progressing(status(3, 2, 2, 1), "NewReplicaSetAvailable")));
        assert_eq!((r.ready, r.reason.as_str(), r.ready_replicas), (false, "PodsNotReady", 1), "a pod lost after");
        let r = deployment_readiness(&deployment(2, 3, status(3, 2, 2, 2)));
        assert_eq!((r.ready, r.reason.as_str(), r.message.as_str()), (true, "PodsReady", "2 of 2 pod(s) ready"));
        let r = deployment_readiness(&deployment(0, 1, status(1, 0, 0, 0)));
        assert_eq!((r.ready, r.reason.as_str()), (true, "ScaledToZero"));
    }

    #[test]
    fn a_stalled_rollout_says_why() {
        let mut s = status(1, 1, 1, 0);
        s.conditions = Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"f-1\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        let r = deployment_readiness(&deployment(1, 1, s));
        assert_eq!((r.ready, r.reason.as_str()), (false, "ProgressDeadlineExceeded"));
        assert!(r.message.contains("timed out"));
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let first = ready_condition(Some(1), false, "RollingOut", "0 of 1", &[]);
        let again = ready_condition(Some(2), false, "PodsNotReady", "0 of 1", std::slice::from_ref(&first));
        assert_eq!(again.last_transition_time, first.last_transition_time);
        assert_eq!(again.observed_generation, Some(2));
        let flipped = ready_condition(Some(2), true, "PodsReady", "1 of 1", std::slice::from_ref(&again));
        assert_eq!(flipped.status, "True");
    }
}
