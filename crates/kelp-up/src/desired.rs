//! What the engine should run for a Function: its spec, its resolved environment and its scaling.

use crate::env::{self, EnvError, Lookup};
use crate::volumes::{self, VolumeError};
use kelp_api::Function;
use kelp_local::{FunctionDeployment, Scaling};
use std::time::Duration;

/// Annotation on a Function: how long an idle function keeps its instances before scaling to
/// zero (`90s`, `5m`, `1h`, plain seconds; `0` never scales to zero; at most
/// [`MAX_IDLE_TIMEOUT`]). Default [`DEFAULT_IDLE_TIMEOUT`].
pub const IDLE_TIMEOUT_ANNOTATION: &str = "kelp.dev/idle-timeout";
/// How long an idle function keeps its instances when no annotation says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest idle timeout: a week (`0` says "never" already).
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Instances at most when no autoscaler says otherwise.
pub const DEFAULT_MAX_INSTANCES: usize = 4;
/// Instances of one function at most on this one machine, whatever the autoscaler says (an
/// autoscaler written for a cluster may ask for hundreds, each a process here).
pub const MAX_INSTANCES: usize = 64;

/// Why a Function cannot be handed to the engine yet.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// Its environment names a Secret, ConfigMap or key that does not exist.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A Secret or ConfigMap volume names an object or key that does not exist.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// An annotation or the autoscaler has a value that cannot be used.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field path.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// The deployment of `function`, reading Secrets and ConfigMaps through `lookup`. A generation
/// the status has not observed yet (a Function just created or changed) starts an instance at
/// once, as a Deployment would on a cluster: the code is loaded and its dependencies installed
/// now, and clients that wait for a ready Pod (the Serverless Framework) find one. A Function
/// deployed again unchanged (as at every start of `kelp up`) starts nothing before a request.
///
/// What runs before it serves (install, build) comes from `config`, the `kubeless-config` of
/// this platform, as on a cluster ([`kelp_plan::run::steps`]).
pub fn deployment(
    function: &Function,
    lookup: &dyn Lookup,
    config: &kelp_plan::Config,
) -> Result<FunctionDeployment, DesiredError> {
    let namespace = function.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = function.metadata.name.clone().unwrap_or_default();
    let pod = function.spec.deployment.as_ref().and_then(|d| d.spec.as_ref()).and_then(|s| s.template.spec.as_ref());
    let (env, volumes) = match pod.and_then(|p| Some((p, p.containers.first()?))) {
        Some((pod, container)) => {
            (env::resolve(container, &namespace, &name, lookup)?, volumes::resolve(pod, container, &namespace, lookup)?)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(FunctionDeployment {
        uid: function.metadata.uid.clone().unwrap_or_default(),
        spec: function.spec.clone(),
        env,
        volumes,
        scaling: scaling(function)?,
        start_now: function.status.as_ref().and_then(|s| s.observed_generation) != function.metadata.generation,
        steps: kelp_plan::run::steps(function, config)
            .map_err(|e| DesiredError::Invalid { field: "spec".into(), reason: e.to_string() })?,
        namespace,
        name,
    })
}

/// Instances between the autoscaler's `minReplicas`/`maxReplicas` (Kubeless's `autoscale create
/// --min --max`), else between the Deployment template's `replicas` (default 0: scale to zero)
/// and [`DEFAULT_MAX_INSTANCES`].
fn scaling(function: &Function) -> Result<Scaling, DesiredError> {
    let invalid = |field: &str, reason: String| DesiredError::Invalid { field: field.into(), reason };
    let idle_timeout = match function.metadata.annotations.as_ref().and_then(|a| a.get(IDLE_TIMEOUT_ANNOTATION)) {
        Some(v) => parse_duration(v).filter(|d| *d <= MAX_IDLE_TIMEOUT).ok_or_else(|| {
            invalid(
                &format!("metadata.annotations[{IDLE_TIMEOUT_ANNOTATION}]"),
                format!("{v:?} is not a duration such as 90s, 5m or 1h, at most a week"),
            )
        })?,
        None => DEFAULT_IDLE_TIMEOUT,
    };
    let hpa = function.spec.horizontal_pod_autoscaler.as_ref().filter(|h| h.is_configured());
    let (min, max) = match hpa {
        Some(hpa) => {
            let spec = hpa
                .to_v2()
                .map_err(|e| invalid("spec.horizontalPodAutoscaler", e.to_string()))?
                .spec
                .ok_or_else(|| invalid("spec.horizontalPodAutoscaler.spec", "is missing".into()))?;
            (spec.min_replicas.unwrap_or(1), spec.max_replicas)
        }
        None => {
            let replicas = function.spec.deployment.as_ref().and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas);
            let min = replicas.unwrap_or(0);
            (min, min.max(DEFAULT_MAX_INSTANCES as i32))
        }
    };
    let count = |v: i32| usize::try_from(v).unwrap_or(0).min(MAX_INSTANCES);
    Ok(Scaling { min: count(min), max: count(max).max(count(min)).max(1), idle_timeout })
}

/// A Go duration (`90s`, `5m`, `1h30m`, `250ms`: Kelp's one duration parser,
/// [`kelp_events::parse_go_duration`]) or plain seconds (`90`, `1.5`).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Duration::try_from_secs_f64(text.parse().ok()?).ok();
    }
    kelp_events::parse_go_duration(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    struct Nothing;
    impl Lookup for Nothing {
        fn get(&self, _: &str, _: &str, _: &str) -> Option<Value> {
            None
        }
    }

    fn function(extra: Value) -> Function {
        let mut f = json!({
            "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "hello", "namespace": "team", "uid": "u1"},
            "spec": {"handler": "hello.foo", "runtime": "python3.8", "function": "def foo(e, c): return 'hi'",
                     "deployment": {"spec": {"template": {"spec": {"containers": [{"name": "", "env": [{"name": "A", "value": "1"}]}]}}}}},
        });
        json_patch::merge(&mut f, &extra);
        serde_json::from_value(f).unwrap()
    }

    #[test]
    fn defaults_scale_to_zero_with_the_container_env() {
        let d = deployment(&function(json!({})), &Nothing, &kelp_plan::Config::default()).unwrap();
        assert_eq!((d.namespace.as_str(), d.name.as_str(), d.uid.as_str()), ("team", "hello", "u1"));
        assert_eq!(d.env, vec![("A".to_string(), "1".to_string())]);
        assert_eq!((d.scaling.min, d.scaling.max, d.scaling.idle_timeout), (0, 4, DEFAULT_IDLE_TIMEOUT));
    }

    #[test]
    fn only_a_generation_not_yet_observed_starts_now() {
        let new = function(json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 1}}));
        assert!(deployment(&new, &Nothing, &kelp_plan::Config::default()).unwrap().start_now);
        let seen = function(json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2}}));
        assert!(!deployment(&seen, &Nothing, &kelp_plan::Config::default()).unwrap().start_now);
    }

    /// The fields of a Function with Kubeless's autoscaler of `min` to `max` replicas.
    fn with_autoscaler(min: i64, max: i64) -> Value {
        json!({"spec": {"horizontalPodAutoscaler": {
            "apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hello", "namespace": "team"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1beta1", "kind": "Deployment", "name": "hello"},
                     "minReplicas": min, "maxReplicas": max,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}}]}}}})
    }

    #[test]
    fn autoscaler_and_annotation_set_the_bounds() {
        let mut f = with_autoscaler(2, 5);
        f["metadata"] = json!({"annotations": {IDLE_TIMEOUT_ANNOTATION: "90s"}});
        let d = deployment(&function(f), &Nothing, &kelp_plan::Config::default()).unwrap();
        assert_eq!((d.scaling.min, d.scaling.max, d.scaling.idle_timeout), (2, 5, Duration::from_secs(90)));
    }

    #[test]
    fn a_bad_annotation_names_the_field() {
        for bad in ["soon", "18446744073709549568", "169h"] {
            let f = function(json!({"metadata": {"annotations": {IDLE_TIMEOUT_ANNOTATION: bad}}}));
            let err = deployment(&f, &Nothing, &kelp_plan::Config::default()).unwrap_err().to_string();
            assert!(err.starts_with("metadata.annotations[kelp.dev/idle-timeout]"), "{err}");
        }
        let week = function(json!({"metadata": {"annotations": {IDLE_TIMEOUT_ANNOTATION: "168h"}}}));
        assert_eq!(
            deployment(&week, &Nothing, &kelp_plan::Config::default()).unwrap().scaling.idle_timeout,
            MAX_IDLE_TIMEOUT
        );
    }

    #[test]
    fn an_autoscaler_for_a_cluster_is_capped_on_one_machine() {
        let d = deployment(&function(with_autoscaler(2147483647, 2147483647)), &Nothing, &kelp_plan::Config::default())
            .unwrap();
        assert_eq!((d.scaling.min, d.scaling.max), (MAX_INSTANCES, MAX_INSTANCES));
    }

    /// One Secret, `creds`, whose key `token` is `hunter2-secret`.
    struct Creds;
    impl Lookup for Creds {
        fn get(&self, resource: &str, _: &str, name: &str) -> Option<Value> {
            (resource == "/secrets" && name == "creds").then(|| json!({"data": {"token": "aHVudGVyMi1zZWNyZXQ="}}))
        }
    }

    #[test]
    fn debug_shows_no_resolved_secret() {
        let env = json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]);
        let f = function(
            json!({"spec": {"deployment": {"spec": {"template": {"spec": {"containers": [{"name": "", "env": env}]}}}}}}),
        );
        let d = deployment(&f, &Creds, &kelp_plan::Config::default()).unwrap();
        assert_eq!(d.env, vec![("TOKEN".to_string(), "hunter2-secret".to_string())]);
        let shown = format!("{d:?}");
        assert!(shown.contains("TOKEN") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 90 "), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("99999999999999999999999h"), None);
        assert_eq!(parse_duration(""), None);
    }
}
