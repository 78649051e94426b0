//! Each invalid case is reported at the exact field path.

use kelp_api::{
    CronJobTrigger, Function, HTTPTrigger, KafkaTrigger, KinesisTrigger, NATSTrigger, Validate, ValidationErrorKind,
    ValidationErrors,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn function(spec: Value) -> Value {
    json!({"apiVersion": "kubeless.io/v1beta1", "kind": "Function",
           "metadata": {"name": "hello", "namespace": "default"}, "spec": spec})
}

fn valid_function() -> Value {
    function(json!({"handler": "test.foo", "runtime": "python3.8", "function": "code",
                    "function-content-type": "text", "timeout": "180"}))
}

fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = object.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    if value.is_null() {
        parent.remove(key);
    } else {
        parent.insert(key.to_owned(), value);
    }
    object
}

fn errors<K: DeserializeOwned + Validate>(object: Value) -> ValidationErrors {
    let object: K = serde_json::from_value(object).unwrap();
    object.validate().expect_err("expected validation errors")
}

/// Asserts that validating `object` reports exactly `fields`, in order.
fn assert_fields<K: DeserializeOwned + Validate>(object: Value, fields: &[&str]) {
    let errors = errors::<K>(object);
    let found: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(found, fields, "{errors}");
}

fn assert_function_fields(pointer: &str, value: Value, fields: &[&str]) {
    assert_fields::<Function>(with(valid_function(), pointer, value), fields);
}

#[test]
fn valid_function_passes() {
    let function: Function = serde_json::from_value(valid_function()).unwrap();
    function.validate().unwrap();
}

#[test]
fn handler_without_dot() {
    assert_function_fields("/spec/handler", json!("testfoo"), &["spec.handler"]);
}

#[test]
fn handler_with_two_dots() {
    let errors = errors::<Function>(with(valid_function(), "/spec/handler", json!("a.b.c")));
    assert_eq!(errors.to_string(), "spec.handler: must be \"<module>.<function>\" (exactly one dot)");
}

#[test]
fn handler_with_empty_part() {
    assert_function_fields("/spec/handler", json!(".foo"), &["spec.handler"]);
}

#[test]
fn handler_missing_without_custom_image() {
    let errors = errors::<Function>(with(valid_function(), "/spec/handler", Value::Null));
    assert_eq!(errors.errors()[0].field, "spec.handler");
    assert_eq!(errors.errors()[0].kind, ValidationErrorKind::Required);
}

#[test]
fn handler_and_runtime_may_be_empty_with_a_custom_image() {
    let object = function(json!({"handler": "", "runtime": "", "deployment": {"spec": {"template":
        {"spec": {"containers": [{"name": "", "image": "example.com/fn:1"}]}}}}}));
    let function: Function = serde_json::from_value(object).unwrap();
    function.validate().unwrap();
}

#[test]
fn runtime_without_version() {
    assert_function_fields("/spec/runtime", json!("python"), &["spec.runtime"]);
}

#[test]
fn runtime_missing() {
    assert_function_fields("/spec/runtime", json!(""), &["spec.runtime"]);
}

#[test]
fn unknown_content_type() {
    assert_function_fields("/spec/function-content-type", json!("zip+base64"), &["spec.function-content-type"]);
}

#[test]
fn url_content_type_needs_a_url() {
    let object = with(valid_function(), "/spec/function-content-type", json!("url+zip"));
    assert_fields::<Function>(object, &["spec.function"]);
}

#[test]
fn checksum_with_other_algorithm() {
    assert_function_fields("/spec/checksum", json!("md5:abc"), &["spec.checksum"]);
}

#[test]
fn checksum_with_uppercase_hex() {
    let checksum = format!("sha256:{}", "AB".repeat(32));
    assert_function_fields("/spec/checksum", json!(checksum), &["spec.checksum"]);
}

#[test]
fn timeout_zero() {
    assert_function_fields("/spec/timeout", json!("0"), &["spec.timeout"]);
}

#[test]
fn timeout_not_a_number() {
    assert_function_fields("/spec/timeout", json!("3m"), &["spec.timeout"]);
}

#[test]
fn timeout_longer_than_a_week() {
    for huge in ["18446744073709551615", "99999999999999999999", "604801"] {
        let errors = errors::<Function>(with(valid_function(), "/spec/timeout", json!(huge)));
        assert_eq!(errors.to_string(), "spec.timeout: must be at most 604800 seconds (one week)", "{huge}");
    }
    let week = with(valid_function(), "/spec/timeout", json!("604800"));
    serde_json::from_value::<Function>(week).unwrap().validate().unwrap();
}

#[test]
fn handler_module_outside_the_code_directory() {
    for module in ["/abs/path/x", "sub/x", "x\\y", "x\0y", "x y"] {
        let errors = errors::<Function>(with(valid_function(), "/spec/handler", json!(format!("{module}.hello"))));
        assert_eq!(
            errors.to_string(),
            "spec.handler: the module part (before the dot) names the code file: it must be at most 240 letters, \
             digits, '-' or '_'",
            "{module:?}"
        );
    }
    assert_function_fields("/spec/handler", json!("../x.hello"), &["spec.handler"]);
    for module in ["hello-world", "hello_world", "io_ino_Handler", "v2"] {
        let ok = with(valid_function(), "/spec/handler", json!(format!("{module}.hello")));
        serde_json::from_value::<Function>(ok).unwrap().validate().unwrap();
    }
}

#[test]
fn autoscaler_metric_without_target() {
    let hpa = json!({"metadata": {"name": "hello"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "hello"}, "maxReplicas": 2,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                               "metricName": "x"}}]}});
    assert_function_fields("/spec/horizontalPodAutoscaler", hpa, &["spec.horizontalPodAutoscaler"]);
}

#[test]
fn function_name_not_a_dns_label() {
    assert_function_fields("/metadata/name", json!("Hello_World"), &["metadata.name"]);
}

#[test]
fn function_name_starting_with_a_digit() {
    // Fine for a Deployment, not for the Service of the same name.
    assert_function_fields("/metadata/name", json!("1hello"), &["metadata.name"]);
}

#[test]
fn name_missing() {
    assert_function_fields("/metadata/name", Value::Null, &["metadata.name"]);
}

#[test]
fn every_problem_is_reported() {
    let object = function(json!({"handler": "x", "runtime": "?", "function-content-type": "gz",
                                 "checksum": "x", "timeout": "-1"}));
    let errors = errors::<Function>(with(object, "/metadata/name", json!("UPPER")));
    let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.handler",
            "spec.runtime",
            "spec.function-content-type",
            "spec.checksum",
            "spec.timeout"
        ]
    );
    assert_eq!(errors.to_string().lines().count(), 6);
}

fn http_trigger(spec: Value) -> Value {
    json!({"apiVersion": "kubeless.io/v1beta1", "kind": "HTTPTrigger",
           "metadata": {"name": "hello"}, "spec": spec})
}

#[test]
fn http_trigger_without_function_name() {
    assert_fields::<HTTPTrigger>(http_trigger(json!({"gateway": "nginx"})), &["spec.function-name"]);
}

#[test]
fn http_trigger_function_name_not_dns() {
    let object = http_trigger(json!({"function-name": "Hello World"}));
    assert_fields::<HTTPTrigger>(object, &["spec.function-name"]);
}

#[test]
fn http_trigger_unknown_gateway() {
    let object = http_trigger(json!({"function-name": "hello", "gateway": "istio"}));
    assert_fields::<HTTPTrigger>(object, &["spec.gateway"]);
}

#[test]
fn http_trigger_tls_and_tls_secret() {
    let object = http_trigger(json!({"function-name": "hello", "tls": true, "tls-secret": "s"}));
    assert_fields::<HTTPTrigger>(object, &["spec.tls-secret"]);
}

#[test]
fn http_trigger_basic_auth_with_kong() {
    let object = http_trigger(json!({"function-name": "hello", "gateway": "kong", "basic-auth-secret": "auth"}));
    let errors = errors::<HTTPTrigger>(object);
    assert_eq!(
        errors.to_string(),
        "spec.basic-auth-secret: Setting basic authentication with Kong is not yet supported"
    );
}

#[test]
fn http_trigger_path_with_leading_slash() {
    let object = http_trigger(json!({"function-name": "hello", "path": "/hello"}));
    assert_fields::<HTTPTrigger>(object, &["spec.path"]);
}

#[test]
fn http_trigger_bad_host_name() {
    let object = http_trigger(json!({"function-name": "hello", "host-name": "bad host"}));
    assert_fields::<HTTPTrigger>(object, &["spec.host-name"]);
}

#[test]
fn http_trigger_wildcard_host_is_fine() {
    let object = http_trigger(json!({"function-name": "hello", "host-name": "*.example.com"}));
    serde_json::from_value::<HTTPTrigger>(object).unwrap().validate().unwrap();
}

#[test]
fn trigger_name_not_a_subdomain() {
    let object = with(http_trigger(json!({"function-name": "f"})), "/metadata/name", json!("A"));
    assert_fields::<HTTPTrigger>(object, &["metadata.name"]);
}

fn cron_trigger(schedule: &str) -> Value {
    json!({"apiVersion": "kubeless.io/v1beta1", "kind": "CronJobTrigger",
           "metadata": {"name": "tick"}, "spec": {"function-name": "hello", "schedule": schedule}})
}

#[test]
fn cron_trigger_six_fields_rejected() {
    assert_fields::<CronJobTrigger>(cron_trigger("0 */5 * * * *"), &["spec.schedule"]);
}

#[test]
fn cron_trigger_garbage_schedule() {
    assert_fields::<CronJobTrigger>(cron_trigger("every minute"), &["spec.schedule"]);
}

#[test]
fn cron_trigger_out_of_range_schedule() {
    assert_fields::<CronJobTrigger>(cron_trigger("61 * * * *"), &["spec.schedule"]);
}

#[test]
fn cron_trigger_empty_schedule() {
    assert_fields::<CronJobTrigger>(cron_trigger(""), &["spec.schedule"]);
}

#[test]
fn cron_trigger_without_function_name() {
    let object = with(cron_trigger("* * * * *"), "/spec/function-name", Value::Null);
    assert_fields::<CronJobTrigger>(object, &["spec.function-name"]);
}

fn topic_trigger(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "kubeless.io/v1beta1", "kind": kind,
           "metadata": {"name": "events"}, "spec": spec})
}

#[test]
fn kafka_trigger_without_topic() {
    let object = topic_trigger("KafkaTrigger", json!({"functionSelector": {}}));
    assert_fields::<KafkaTrigger>(object, &["spec.topic"]);
}

#[test]
fn kafka_trigger_bad_operator() {
    let object = topic_trigger(
        "KafkaTrigger",
        json!({"topic": "t", "functionSelector":
        {"matchExpressions": [{"key": "function", "operator": "Equals", "values": ["f"]}]}}),
    );
    assert_fields::<KafkaTrigger>(object, &["spec.functionSelector.matchExpressions[0].operator"]);
}

#[test]
fn nats_trigger_in_without_values() {
    let object = topic_trigger(
        "NATSTrigger",
        json!({"topic": "t", "functionSelector":
        {"matchExpressions": [{"key": "a", "operator": "Exists"},
                              {"key": "function", "operator": "In"}]}}),
    );
    assert_fields::<NATSTrigger>(object, &["spec.functionSelector.matchExpressions[1].values"]);
}

#[test]
fn nats_trigger_empty_topic() {
    let object = topic_trigger("NATSTrigger", json!({"topic": ""}));
    assert_fields::<NATSTrigger>(object, &["spec.topic"]);
}

#[test]
fn kinesis_trigger_missing_everything() {
    let object = topic_trigger("KinesisTrigger", json!({"endpoint": "http://localhost:4568"}));
    assert_fields::<KinesisTrigger>(
        object,
        &["spec.function-name", "spec.aws-region", "spec.secret", "spec.stream", "spec.shard"],
    );
}

#[test]
fn status_carries_every_cause() {
    let errors = errors::<Function>(with(valid_function(), "/spec/timeout", json!("x")));
    let status = errors.to_status("kubeless.io", "Function", "hello");
    let status = serde_json::to_value(status).unwrap();
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["details"]["causes"],
        json!([{"field": "spec.timeout", "reason": "FieldValueInvalid",
                "message": "must be empty or a positive integer number of seconds"}])
    );
}
