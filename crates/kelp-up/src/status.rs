//! A Function's `status` from what the engine reports: the `Ready` condition, `readyReplicas`
//! and `observedGeneration`, and the `RuntimeSubstituted` condition saying which interpreter
//! runs it.

use crate::runtimes::{RUNTIME_SUBSTITUTED_CONDITION, RuntimeFit};
use kelp_local::{FunctionRunStatus, StepReport};
use serde_json::{Value, json};

/// The status of a Function whose generation is `generation`: from the engine's report, or from
/// `error` when the Function could not be handed to the engine (bad environment, code that
/// cannot be materialised, ...), with the interpreter that runs its runtime when it has one.
pub fn function_status(
    generation: i64,
    run: Option<&FunctionRunStatus>,
    error: Option<&str>,
    runtime: Option<&RuntimeFit>,
) -> Value {
    let (ready, reason, message, ready_replicas) = match (error, run) {
        (Some(e), _) => (false, "DeployFailed".to_string(), e.to_string(), 0),
        (None, None) => (false, "Pending".to_string(), "waiting for the platform".to_string(), 0),
        (None, Some(r)) if r.ready && r.ready_instances > 0 => {
            (true, "InstancesReady".into(), format!("{} instance(s) ready", r.ready_instances), r.ready_instances)
        }
        (None, Some(r)) if r.ready => {
            (true, "ScaledToZero".into(), "no instance running; the next request starts one".into(), 0)
        }
        (None, Some(r)) => (
            false,
            r.reason.clone().unwrap_or_else(|| "Starting".into()),
            r.message.clone().unwrap_or_else(|| format!("{} of {} instance(s) ready", r.ready_instances, r.instances)),
            r.ready_instances,
        ),
    };
    let mut conditions = vec![json!({
        "type": kelp_api::READY_CONDITION,
        "status": if ready { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    })];
    if let Some(fit) = runtime {
        conditions.push(json!({
            "type": RUNTIME_SUBSTITUTED_CONDITION,
            "status": if fit.substituted { "True" } else { "False" },
            "reason": if fit.substituted { "OtherVersionInstalled" } else { "VersionInstalled" },
            "message": fit.message,
            "observedGeneration": generation,
        }));
    }
    json!({"observedGeneration": generation, "readyReplicas": ready_replicas, "conditions": conditions})
}

/// The Event saying how a step (install, build) of a Function ended: `Built`, `Installed` or,
/// Warnings, `BuildFailed`, `InstallFailed`, at `now`, as `kubectl describe` and `kubectl get
/// events` show it.
pub fn step_event(function: &Value, report: &StepReport, now: std::time::SystemTime) -> Value {
    let meta = |k: &str| function.pointer(&format!("/metadata/{k}")).cloned().unwrap_or(Value::Null);
    let at = crate::workloads::rfc3339(now);
    let nanos = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let (type_, reason) = match report.succeeded {
        true => ("Normal", report.step.done_reason()),
        false => ("Warning", report.step.failed_reason()),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{}.{nanos:x}", meta("name").as_str().unwrap_or_default()), "namespace": meta("namespace")},
        "involvedObject": {
            "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "name": meta("name"), "namespace": meta("namespace"), "uid": meta("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": report.message,
        "source": {"component": "kelp-up"},
        "reportingComponent": "kelp-up",
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_api::merge_transition_times;

    fn run(ready: bool, ready_instances: usize) -> FunctionRunStatus {
        FunctionRunStatus {
            revision: "r".into(),
            ready_instances,
            instances: 1,
            ready,
            reason: (!ready).then(|| "OOMKilled".into()),
            message: (!ready).then(|| "memory limit exceeded".into()),
            step: None,
        }
    }

    #[test]
    fn ready_scaled_to_zero_and_failing() {
        let s = function_status(3, Some(&run(true, 1)), None, None);
        assert_eq!((s["readyReplicas"].as_u64(), s["observedGeneration"].as_i64()), (Some(1), Some(3)));
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(function_status(3, Some(&run(true, 0)), None, None)["conditions"][0]["reason"], "ScaledToZero");
        let failing = function_status(3, Some(&run(false, 0)), None, None);
        assert_eq!(failing["conditions"][0]["reason"], "OOMKilled");
        assert_eq!(failing["conditions"][0]["message"], "memory limit exceeded");
        let bad = function_status(1, None, Some("env T: secret default/x not found"), None);
        assert_eq!(bad["conditions"][0]["status"], "False");
        assert_eq!(bad["conditions"][0]["message"], "env T: secret default/x not found");
    }

    #[test]
    fn a_build_is_an_event_on_its_function() {
        let function = json!({"metadata": {"name": "hello", "namespace": "team", "uid": "u1"}});
        let failed = StepReport {
            revision: "r1".into(),
            step: kelp_plan::run::Step::Build,
            succeeded: false,
            message: "hello.go:3: undefined: x".into(),
        };
        let event = step_event(&function, &failed, std::time::UNIX_EPOCH + std::time::Duration::from_secs(1));
        assert_eq!((event["type"].as_str(), event["reason"].as_str()), (Some("Warning"), Some("BuildFailed")));
        assert_eq!(
            event["involvedObject"],
            json!({"apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "name": "hello", "namespace": "team", "uid": "u1"})
        );
        assert_eq!(event["metadata"], json!({"name": "hello.3b9aca00", "namespace": "team"}));
        assert_eq!(event["message"], "hello.go:3: undefined: x");
        let built = StepReport { succeeded: true, message: "built go function hello.Foo from key k".into(), ..failed };
        assert_eq!(step_event(&function, &built, std::time::UNIX_EPOCH)["reason"], "Built");
    }

    #[test]
    fn the_interpreter_is_a_condition() {
        let fit = RuntimeFit { substituted: true, message: "runtime python3.8 runs on Python 3.11.7 (python3)".into() };
        let s = function_status(2, Some(&run(true, 1)), None, Some(&fit));
        let runtime = &s["conditions"][1];
        assert_eq!((runtime["type"].as_str(), runtime["status"].as_str()), (Some("RuntimeSubstituted"), Some("True")));
        assert_eq!(runtime["message"], fit.message);
        let exact = RuntimeFit { substituted: false, ..fit };
        assert_eq!(function_status(2, None, None, Some(&exact))["conditions"][1]["status"], "False");
    }

    #[test]
    fn transition_times_move_only_on_change() {
        let first = merge_transition_times(None, function_status(1, Some(&run(true, 1)), None, None), "t1").unwrap();
        assert_eq!(first["conditions"][0]["lastTransitionTime"], "t1");
        assert!(
            merge_transition_times(Some(&first), function_status(1, Some(&run(true, 1)), None, None), "t2").is_none()
        );
        let later =
            merge_transition_times(Some(&first), function_status(1, Some(&run(true, 2)), None, None), "t3").unwrap();
        assert_eq!(later["conditions"][0]["lastTransitionTime"], "t1");
        let down =
            merge_transition_times(Some(&later), function_status(1, Some(&run(false, 0)), None, None), "t4").unwrap();
        assert_eq!(down["conditions"][0]["lastTransitionTime"], "t4");
    }
}
