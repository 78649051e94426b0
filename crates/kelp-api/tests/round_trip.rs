//! Every Kubeless manifest shape deserializes, validates, and serializes back unchanged.

use std::fs;
use std::path::Path;

use kelp_api::{
    Archive, CronJobTrigger, Encoding, Function, HTTPTrigger, KafkaTrigger, KinesisTrigger, NATSTrigger, Validate,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Reads a fixture, checks that it round-trips as JSON and validates, and returns it typed.
fn round_trip<K: DeserializeOwned + Serialize + Validate>(fixture: &str) -> K {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
    let yaml = fs::read_to_string(&path).unwrap();
    let stored: Value = serde_saphyr::from_str(&yaml).unwrap();
    let typed: K =
        serde_json::from_value(stored.clone()).unwrap_or_else(|e| panic!("{fixture} does not deserialize: {e}"));
    let written = serde_json::to_value(&typed).unwrap();
    assert_eq!(written, stored, "{fixture} does not round-trip");
    if let Err(errors) = typed.validate() {
        panic!("{fixture} does not validate:\n{errors}");
    }
    typed
}

#[test]
fn minimal_cli_function_with_text_content() {
    let function: Function = round_trip("function-minimal-text.yaml");
    let spec = &function.spec;
    let handler = spec.parsed_handler().unwrap();
    assert_eq!((handler.module, handler.function), ("test", "foo"));
    assert_eq!(spec.parsed_content_type().unwrap().encoding, Encoding::Text);
    assert_eq!(spec.timeout_seconds().unwrap(), 180);
    assert!(spec.checksum_sha256().unwrap().is_some());
    let pod = spec.deployment.as_ref().unwrap().spec.as_ref().unwrap().template.spec.clone();
    let container = &pod.unwrap().containers[0];
    assert_eq!(container.env.as_ref().unwrap()[0].value.as_deref(), Some("bar"));
    let service = spec.service.as_ref().unwrap();
    assert_eq!(service.ports.as_ref().unwrap()[0].name.as_deref(), Some("http-function-port"));
    assert!(function.status.is_none());
}

#[test]
fn base64_zip_with_checksum_and_deps() {
    let function: Function = round_trip("function-base64-zip.yaml");
    let content_type = function.spec.parsed_content_type().unwrap();
    assert_eq!((content_type.encoding, content_type.archive), (Encoding::Base64, Archive::Zip));
    assert!(!content_type.deps);
}

#[test]
fn url_zip_deps() {
    let function: Function = round_trip("function-url-zip-deps.yaml");
    let content_type = function.spec.parsed_content_type().unwrap();
    assert_eq!(content_type.to_string(), "url+zip+deps");
    assert!(content_type.deps && content_type.is_archive());
    assert_eq!(function.spec.timeout_seconds().unwrap(), 60);
}

#[test]
fn deployment_overrides() {
    let function: Function = round_trip("function-deployment-overrides.yaml");
    let deployment = function.spec.deployment.as_ref().unwrap();
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.node_selector.as_ref().unwrap()["disktype"], "ssd");
    assert_eq!(pod.tolerations.as_ref().unwrap()[0].effect.as_deref(), Some("NoSchedule"));
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_user, Some(2000));
    let env = &pod.containers[0].env.as_ref().unwrap()[0];
    let secret = env.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((secret.name.as_str(), secret.key.as_str()), ("api", "token"));
    let limits = pod.containers[0].resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["memory"].0, "128Mi");
}

#[test]
fn service_with_custom_port_and_custom_image() {
    let function: Function = round_trip("function-custom-service.yaml");
    assert_eq!(function.spec.custom_image(), Some("registry.example.com/team/custom-fn:1.0"));
    let port = &function.spec.service.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 80);
    assert_eq!(port.target_port, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9000)));
}

#[test]
fn horizontal_pod_autoscaler_v2beta1_converts_to_v2() {
    let function: Function = round_trip("function-hpa-v2beta1.yaml");
    let template = function.spec.horizontal_pod_autoscaler.as_ref().unwrap();
    assert!(template.is_configured());
    let hpa = serde_json::to_value(template.to_v2().unwrap()).unwrap();
    assert_eq!(
        hpa,
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hpa-fn", "namespace": "default",
                         "labels": {"created-by": "kubeless", "function": "hpa-fn"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hpa-fn"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70}}}]
            }
        })
    );
}

#[test]
fn go_client_shape_with_nulls_and_zero_values() {
    let function: Function = round_trip("function-go-client.yaml");
    assert!(!function.spec.horizontal_pod_autoscaler.as_ref().unwrap().is_configured());
    assert_eq!(function.spec.checksum_sha256().unwrap(), None);
    assert_eq!(function.metadata.finalizers.as_deref(), Some(&["kubeless.io/function".into()][..]));
}

#[test]
fn http_trigger_with_every_key() {
    let trigger: HTTPTrigger = round_trip("httptrigger-all-keys.yaml");
    assert_eq!(trigger.spec.function_name.as_deref(), Some("hello"));
    assert_eq!(trigger.spec.cors_enable, Some(true));
    assert_eq!(trigger.spec.tls, Some(false));
}

#[test]
fn cron_trigger_with_object_payload() {
    let trigger: CronJobTrigger = round_trip("cronjobtrigger-object-payload.yaml");
    assert_eq!(trigger.spec.payload.unwrap()["nested"]["count"], 3);
}

#[test]
fn cron_trigger_without_payload() {
    let trigger: CronJobTrigger = round_trip("cronjobtrigger-no-payload.yaml");
    assert_eq!(trigger.spec.payload, None);
}

#[test]
fn cron_trigger_with_null_payload() {
    let trigger: CronJobTrigger = round_trip("cronjobtrigger-null-payload.yaml");
    assert_eq!(trigger.spec.payload, Some(Value::Null));
}

#[test]
fn kafka_trigger_with_match_labels_and_expressions() {
    let trigger: KafkaTrigger = round_trip("kafkatrigger-selector.yaml");
    let selector = trigger.spec.function_selector.unwrap();
    assert_eq!(selector.match_labels.unwrap()["topic"], "orders");
    assert_eq!(selector.match_expressions.unwrap()[1].operator, "DoesNotExist");
}

#[test]
fn nats_trigger_with_match_labels_and_expressions() {
    let trigger: NATSTrigger = round_trip("natstrigger-selector.yaml");
    assert_eq!(trigger.spec.topic.as_deref(), Some("events.>"));
}

#[test]
fn kinesis_trigger() {
    let trigger: KinesisTrigger = round_trip("kinesistrigger.yaml");
    assert_eq!(trigger.spec.shard.as_deref(), Some("shardId-000000000000"));
}

#[test]
fn v2_and_v1_autoscaler_shapes_are_accepted() {
    let template = kelp_api::HpaTemplate(json!({
        "apiVersion": "autoscaling/v2",
        "metadata": {"name": "f"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "f"},
                 "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "memory",
                     "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]}
    }));
    let v2 = serde_json::to_value(template.to_v2().unwrap()).unwrap();
    assert_eq!(v2["spec"]["metrics"], template.0["spec"]["metrics"]);

    let v1 = kelp_api::HpaTemplate(json!({
        "metadata": {"name": "f"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "f"}, "maxReplicas": 3,
                 "targetCPUUtilizationPercentage": 50}
    }));
    let v2 = serde_json::to_value(v1.to_v2().unwrap()).unwrap();
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
}

#[test]
fn v2beta1_qps_object_metric_converts() {
    // `kubeless autoscale create f --metric qps --value 2k`.
    let template = kelp_api::HpaTemplate(json!({
        "metadata": {"name": "f"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1beta1", "kind": "Deployment",
                                    "name": "f"},
                 "maxReplicas": 3,
                 "metrics": [{"type": "Object", "object": {"metricName": "function_calls",
                     "target": {"kind": "Service", "name": "f"}, "targetValue": "2k"}}]}
    }));
    let v2 = serde_json::to_value(template.to_v2().unwrap()).unwrap();
    assert_eq!(
        v2["spec"]["metrics"][0],
        json!({"type": "Object", "object": {
            "describedObject": {"kind": "Service", "name": "f"},
            "metric": {"name": "function_calls"},
            "target": {"type": "Value", "value": "2k"}}})
    );
}
