//! `kelp trigger http|cronjob|kafka|nats|kinesis create|update`: flags → triggers (as the kubeless CLI
//! built them) or merge patches of what the flags given change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kelp_api::{GATEWAYS, check_schedule};
use serde_json::{Value, json};

use super::{API_VERSION, BuildError, merge_patch_to};

/// The flags of `trigger http create|update`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HttpTriggerFlags {
    /// `--function-name`.
    pub(crate) function_name: Option<String>,
    /// `--path` (a leading `/` is dropped: the Ingress path is `"/" + path`).
    pub(crate) path: Option<String>,
    /// `--hostname`.
    pub(crate) hostname: Option<String>,
    /// `--enableTLSAcme`.
    pub(crate) tls_acme: Option<bool>,
    /// `--gateway`.
    pub(crate) gateway: Option<String>,
    /// `--basic-auth-secret`.
    pub(crate) basic_auth_secret: Option<String>,
    /// `--tls-secret`.
    pub(crate) tls_secret: Option<String>,
    /// `--cors-enable`.
    pub(crate) cors_enable: Option<bool>,
}

fn check_gateway(gateway: &str) -> Result<(), BuildError> {
    if GATEWAYS.contains(&gateway) {
        Ok(())
    } else {
        Err(BuildError::Flag(format!("Unsupported gateway {gateway} (use one of {})", GATEWAYS.join(", "))))
    }
}

fn trim_path(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

/// The HTTPTrigger of `trigger http create <name>`: label `created-by: kubeless`, every spec
/// key written; `--gateway` defaults to nginx, and with nginx and no `--hostname` the host is
/// `default_hostname` (`<function>.<API server address>.nip.io`, computed by the caller).
pub(crate) fn new_http_trigger(
    name: &str,
    namespace: &str,
    flags: &HttpTriggerFlags,
    default_hostname: Option<String>,
) -> Result<Value, BuildError> {
    let function = flags.function_name.as_deref().unwrap_or_default();
    let gateway = flags.gateway.as_deref().unwrap_or("nginx");
    check_gateway(gateway)?;
    let tls_acme = flags.tls_acme.unwrap_or(false);
    let tls_secret = flags.tls_secret.as_deref().unwrap_or_default();
    if tls_acme && !tls_secret.is_empty() {
        return Err(BuildError::Flag("Cannot specify both --enableTLSAcme and --tls-secret".to_owned()));
    }
    let hostname = match &flags.hostname {
        Some(host) if !host.is_empty() => host.clone(),
        _ if gateway == "nginx" => default_hostname.unwrap_or_default(),
        _ => String::new(),
    };
    if hostname.is_empty() {
        return Err(BuildError::Flag(format!("The --hostname flag is required with --gateway {gateway}")));
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "HTTPTrigger",
        "metadata": {"name": name, "namespace": namespace, "labels": {"created-by": "kubeless"}},
        "spec": {
            "function-name": function,
            "host-name": hostname,
            "tls": tls_acme,
            "tls-secret": tls_secret,
            "path": trim_path(flags.path.as_deref().unwrap_or_default()),
            "basic-auth-secret": flags.basic_auth_secret.as_deref().unwrap_or_default(),
            "gateway": gateway,
            "cors-enable": flags.cors_enable.unwrap_or(false),
        },
    }))
}

/// The merge patch of `trigger http update <name>`: the keys of the flags given.
pub(crate) fn http_trigger_patch(current: &Value, flags: &HttpTriggerFlags) -> Result<Value, BuildError> {
    if let Some(gateway) = &flags.gateway {
        check_gateway(gateway)?;
    }
    let mut spec = serde_json::Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            spec.insert(key.to_owned(), value);
        }
    };
    set("function-name", flags.function_name.as_ref().map(|v| json!(v)));
    set("host-name", flags.hostname.as_ref().map(|v| json!(v)));
    set("tls", flags.tls_acme.map(|v| json!(v)));
    set("tls-secret", flags.tls_secret.as_ref().map(|v| json!(v)));
    set("path", flags.path.as_deref().map(|v| json!(trim_path(v))));
    set("basic-auth-secret", flags.basic_auth_secret.as_ref().map(|v| json!(v)));
    set("gateway", flags.gateway.as_ref().map(|v| json!(v)));
    set("cors-enable", flags.cors_enable.map(|v| json!(v)));
    if spec.is_empty() {
        return Err(BuildError::Flag("nothing to update: give at least one flag to change".to_owned()));
    }
    let acme = spec.get("tls").or_else(|| current.pointer("/spec/tls")).and_then(Value::as_bool).unwrap_or(false);
    let secret = spec.get("tls-secret").or_else(|| current.pointer("/spec/tls-secret")).and_then(Value::as_str);
    if acme && secret.is_some_and(|s| !s.is_empty()) {
        return Err(BuildError::Flag("Cannot specify both --enableTLSAcme and --tls-secret".to_owned()));
    }
    Ok(with_resource_version(current, json!({"spec": spec})))
}

/// The flags of `trigger cronjob create|update`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CronTriggerFlags {
    /// `--function`.
    pub(crate) function: Option<String>,
    /// `--schedule`.
    pub(crate) schedule: Option<String>,
    /// `-p/--payload` or `-f/--payload-from-file`, parsed.
    pub(crate) payload: Option<Value>,
}

/// Parses `-p/--payload` or the content of `-f/--payload-from-file` (only one may be given).
pub(crate) fn parse_payload(payload: Option<&str>, file: Option<(&str, &[u8])>) -> Result<Option<Value>, BuildError> {
    match (payload, file) {
        (Some(_), Some(_)) => {
            Err(BuildError::Flag("only one of --payload and --payload-from-file can be given".to_owned()))
        }
        (Some(text), None) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| BuildError::Flag(format!("--payload is not valid JSON: {e}"))),
        (None, Some((name, bytes))) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| BuildError::Flag(format!("--payload-from-file {name}: not valid JSON: {e}"))),
        (None, None) => Ok(None),
    }
}

fn checked_schedule(schedule: &str) -> Result<&str, BuildError> {
    check_schedule(schedule).map_err(|reason| BuildError::Flag(format!("Invalid value for --schedule: {reason}")))?;
    Ok(schedule)
}

/// The CronJobTrigger of `trigger cronjob create <name>`: label `created-by: kubeless`,
/// `function-name`, `schedule`, and `payload` only when one is given (the kubeless CLI stored
/// `{}` when none was, which turned the call into a POST of `{}`).
pub(crate) fn new_cron_trigger(name: &str, namespace: &str, flags: &CronTriggerFlags) -> Result<Value, BuildError> {
    let schedule = checked_schedule(flags.schedule.as_deref().unwrap_or_default())?;
    let mut trigger = json!({
        "apiVersion": API_VERSION,
        "kind": "CronJobTrigger",
        "metadata": {"name": name, "namespace": namespace, "labels": {"created-by": "kubeless"}},
        "spec": {"function-name": flags.function.as_deref().unwrap_or_default(), "schedule": schedule},
    });
    if let Some(payload) = &flags.payload {
        trigger["spec"]["payload"] = payload.clone();
    }
    Ok(trigger)
}

/// The CronJobTrigger `function deploy --schedule` creates: named after the function, labels
/// `created-by: kubeless` and `function: <name>`, no payload (the job calls with GET).
pub(crate) fn function_cron_trigger(function: &str, namespace: &str, schedule: &str) -> Result<Value, BuildError> {
    let schedule = checked_schedule(schedule)?;
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "CronJobTrigger",
        "metadata": {
            "name": function,
            "namespace": namespace,
            "labels": {"created-by": "kubeless", "function": function},
        },
        "spec": {"function-name": function, "schedule": schedule},
    }))
}

/// The merge patch of `trigger cronjob update <name>`.
pub(crate) fn cron_trigger_patch(current: &Value, flags: &CronTriggerFlags) -> Result<Value, BuildError> {
    let mut spec = serde_json::Map::new();
    if let Some(function) = &flags.function {
        spec.insert("function-name".into(), json!(function));
    }
    if let Some(schedule) = &flags.schedule {
        spec.insert("schedule".into(), json!(checked_schedule(schedule)?));
    }
    if let Some(payload) = &flags.payload {
        // A merge patch cannot set a value to JSON null: `null` there means "no payload".
        let current_payload = current.pointer("/spec/payload").unwrap_or(&Value::Null);
        spec.insert("payload".into(), merge_patch_to(current_payload, payload));
    }
    if spec.is_empty() {
        return Err(BuildError::Flag("nothing to update: give at least one flag to change".to_owned()));
    }
    Ok(with_resource_version(current, json!({"spec": spec})))
}

/// The two topic-trigger kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TopicKind {
    /// `KafkaTrigger`.
    Kafka,
    /// `NATSTrigger`.
    Nats,
}

impl TopicKind {
    /// The kind's name.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Kafka => "KafkaTrigger",
            Self::Nats => "NATSTrigger",
        }
    }

    /// How messages name it (`Kafka trigger x created ...`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Kafka => "Kafka",
            Self::Nats => "NATS",
        }
    }
}

/// The KafkaTrigger / NATSTrigger of `trigger kafka|nats create <name>`.
pub(crate) fn new_topic_trigger(
    kind: TopicKind,
    name: &str,
    namespace: &str,
    topic: &str,
    selector: &LabelSelector,
) -> Result<Value, BuildError> {
    if topic.is_empty() {
        return Err(BuildError::Flag("--trigger-topic must not be empty".to_owned()));
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": kind.kind(),
        "metadata": {"name": name, "namespace": namespace, "labels": {"created-by": "kubeless"}},
        "spec": {"topic": topic, "functionSelector": selector},
    }))
}

/// The merge patch of `trigger kafka|nats update <name>`: a new topic and/or a selector that
/// replaces the old one.
pub(crate) fn topic_trigger_patch(
    current: &Value,
    topic: Option<&str>,
    selector: Option<&LabelSelector>,
) -> Result<Value, BuildError> {
    let mut spec = serde_json::Map::new();
    if let Some(topic) = topic {
        spec.insert("topic".into(), json!(topic));
    }
    if let Some(selector) = selector {
        let old = current.pointer("/spec/functionSelector").cloned().unwrap_or(json!({}));
        let new = serde_json::to_value(selector).unwrap_or_default();
        spec.insert("functionSelector".into(), merge_patch_to(&old, &new));
    }
    if spec.is_empty() {
        return Err(BuildError::Flag("nothing to update: give --trigger-topic or --function-selector".to_owned()));
    }
    Ok(with_resource_version(current, json!({"spec": spec})))
}

/// The flags of `trigger kinesis create|update`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KinesisTriggerFlags {
    /// `--stream`.
    pub(crate) stream: Option<String>,
    /// `--aws-region`.
    pub(crate) aws_region: Option<String>,
    /// `--shard-id`.
    pub(crate) shard_id: Option<String>,
    /// `--function-name`.
    pub(crate) function_name: Option<String>,
    /// `--secret`.
    pub(crate) secret: Option<String>,
    /// `--endpoint`.
    pub(crate) endpoint: Option<String>,
}

impl KinesisTriggerFlags {
    /// The spec keys of the flags given.
    fn spec(&self) -> Result<serde_json::Map<String, Value>, BuildError> {
        if let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.is_empty()) {
            let uri: http::Uri =
                endpoint.parse().map_err(|e| BuildError::Flag(format!("--endpoint {endpoint:?}: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(BuildError::Flag(format!("--endpoint {endpoint:?}: must be an http:// or https:// URL")));
            }
        }
        let mut spec = serde_json::Map::new();
        for (key, value) in [
            ("function-name", &self.function_name),
            ("aws-region", &self.aws_region),
            ("secret", &self.secret),
            ("stream", &self.stream),
            ("shard", &self.shard_id),
            ("endpoint", &self.endpoint),
        ] {
            if let Some(value) = value {
                spec.insert(key.to_owned(), json!(value));
            }
        }
        Ok(spec)
    }
}

/// The KinesisTrigger of `trigger kinesis create <name>`: label `created-by: kubeless`, every
/// spec key the kubeless CLI wrote (`endpoint` only when given).
pub(crate) fn new_kinesis_trigger(
    name: &str,
    namespace: &str,
    flags: &KinesisTriggerFlags,
) -> Result<Value, BuildError> {
    let mut spec = flags.spec()?;
    if spec.get("endpoint").and_then(Value::as_str) == Some("") {
        spec.remove("endpoint");
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "KinesisTrigger",
        "metadata": {"name": name, "namespace": namespace, "labels": {"created-by": "kubeless"}},
        "spec": spec,
    }))
}

/// The merge patch of `trigger kinesis update <name>`: the keys of the flags given.
pub(crate) fn kinesis_trigger_patch(current: &Value, flags: &KinesisTriggerFlags) -> Result<Value, BuildError> {
    let spec = flags.spec()?;
    if spec.is_empty() {
        return Err(BuildError::Flag("nothing to update: give at least one flag to change".to_owned()));
    }
    Ok(with_resource_version(current, json!({"spec": spec})))
}

/// Adds `current`'s `metadata.resourceVersion` to a patch (optimistic concurrency).
pub(crate) fn with_resource_version(current: &Value, mut patch: Value) -> Value {
    if let Some(version) = current.pointer("/metadata/resourceVersion") {
        patch["metadata"]["resourceVersion"] = version.clone();
    }
    patch
}

#[cfg(test)]
mod tests {
    use kelp_api::{CronJobTrigger, HTTPTrigger, KafkaTrigger, NATSTrigger};

    use super::super::kv::parse_label_selector;
    use super::super::to_object;
    use super::*;

    #[test]
    fn kinesis_trigger_has_the_kubeless_keys_and_updates_only_what_is_given() {
        let flags = KinesisTriggerFlags {
            stream: Some("orders".into()),
            aws_region: Some("us-west-2".into()),
            shard_id: Some("shardId-000000000000".into()),
            function_name: Some("hello".into()),
            secret: Some("aws".into()),
            endpoint: Some("http://localhost:4567".into()),
        };
        let built = new_kinesis_trigger("k", "default", &flags).unwrap();
        assert_eq!(
            built["spec"],
            json!({"function-name": "hello", "aws-region": "us-west-2", "secret": "aws", "stream": "orders",
                   "shard": "shardId-000000000000", "endpoint": "http://localhost:4567"})
        );
        assert_eq!(built["metadata"]["labels"], json!({"created-by": "kubeless"}));
        to_object::<kelp_api::KinesisTrigger>("KinesisTrigger", &built).unwrap();
        let current = json!({"metadata": {"resourceVersion": "7"}});
        let patch =
            kinesis_trigger_patch(&current, &KinesisTriggerFlags { shard_id: Some("s1".into()), ..Default::default() });
        assert_eq!(patch.unwrap(), json!({"spec": {"shard": "s1"}, "metadata": {"resourceVersion": "7"}}));
        assert!(kinesis_trigger_patch(&current, &KinesisTriggerFlags::default()).is_err());
        let bad = KinesisTriggerFlags { endpoint: Some("localhost:4567".into()), ..flags };
        assert!(new_kinesis_trigger("k", "default", &bad).unwrap_err().to_string().contains("--endpoint"));
    }

    #[test]
    fn http_trigger_has_every_kubeless_key() {
        let flags = HttpTriggerFlags {
            function_name: Some("hello".into()),
            path: Some("/api/hello".into()),
            basic_auth_secret: Some("hello-htpasswd".into()),
            tls_secret: Some("hello-tls-cert".into()),
            cors_enable: Some(true),
            ..HttpTriggerFlags::default()
        };
        let built =
            new_http_trigger("hello-ingress", "default", &flags, Some("hello.192.168.99.100.nip.io".into())).unwrap();
        let mut fixture: Value =
            serde_saphyr::from_str(include_str!("../../../kelp-api/tests/fixtures/httptrigger-all-keys.yaml")).unwrap();
        fixture["metadata"].as_object_mut().unwrap().remove("annotations");
        assert_eq!(built, fixture);
        to_object::<HTTPTrigger>("HTTPTrigger", &built).unwrap();
    }

    #[test]
    fn http_trigger_hostnames_gateways_and_tls() {
        let flags = |f: HttpTriggerFlags| HttpTriggerFlags { function_name: Some("f".into()), ..f };
        let built =
            new_http_trigger("t", "d", &flags(HttpTriggerFlags::default()), Some("f.127.0.0.1.nip.io".into())).unwrap();
        assert_eq!(built["spec"]["host-name"], "f.127.0.0.1.nip.io");
        assert_eq!(built["spec"]["gateway"], "nginx");
        let traefik = HttpTriggerFlags { gateway: Some("traefik".into()), ..HttpTriggerFlags::default() };
        assert!(
            new_http_trigger("t", "d", &flags(traefik.clone()), Some("x".into()))
                .unwrap_err()
                .to_string()
                .contains("--hostname")
        );
        let traefik = HttpTriggerFlags { hostname: Some("f.example.com".into()), ..traefik };
        assert_eq!(new_http_trigger("t", "d", &flags(traefik), None).unwrap()["spec"]["gateway"], "traefik");
        let bad = HttpTriggerFlags { gateway: Some("envoy".into()), ..HttpTriggerFlags::default() };
        assert!(
            new_http_trigger("t", "d", &flags(bad), None)
                .unwrap_err()
                .to_string()
                .contains("Unsupported gateway envoy")
        );
        let both =
            HttpTriggerFlags { tls_acme: Some(true), tls_secret: Some("s".into()), ..HttpTriggerFlags::default() };
        assert!(
            new_http_trigger("t", "d", &flags(both), Some("h".into()))
                .unwrap_err()
                .to_string()
                .contains("Cannot specify both")
        );
        let acme = HttpTriggerFlags { tls_acme: Some(true), ..HttpTriggerFlags::default() };
        assert_eq!(new_http_trigger("t", "d", &flags(acme), Some("h".into())).unwrap()["spec"]["tls"], true);
    }

    #[test]
    fn http_trigger_update_patches_given_flags() {
        let current = new_http_trigger(
            "t",
            "d",
            &HttpTriggerFlags {
                function_name: Some("f".into()),
                tls_secret: Some("s".into()),
                ..HttpTriggerFlags::default()
            },
            Some("h".into()),
        )
        .unwrap();
        let patch = http_trigger_patch(
            &current,
            &HttpTriggerFlags { path: Some("/v2".into()), gateway: Some("kong".into()), ..HttpTriggerFlags::default() },
        )
        .unwrap();
        assert_eq!(patch, json!({"spec": {"path": "v2", "gateway": "kong"}}));
        assert!(
            http_trigger_patch(&current, &HttpTriggerFlags { tls_acme: Some(true), ..HttpTriggerFlags::default() })
                .is_err()
        );
        assert!(http_trigger_patch(&current, &HttpTriggerFlags::default()).is_err());
    }

    #[test]
    fn cron_trigger_payloads() {
        let flags =
            CronTriggerFlags { function: Some("hello".into()), schedule: Some("*/5 * * * *".into()), payload: None };
        let built = new_cron_trigger("every5", "default", &flags).unwrap();
        assert_eq!(
            built,
            json!({
                "apiVersion": "kubeless.io/v1beta1",
                "kind": "CronJobTrigger",
                "metadata": {"name": "every5", "namespace": "default", "labels": {"created-by": "kubeless"}},
                "spec": {"function-name": "hello", "schedule": "*/5 * * * *"},
            })
        );
        let typed: CronJobTrigger = to_object("CronJobTrigger", &built).unwrap();
        assert_eq!(typed.spec.payload, None, "no payload: the job calls with GET");

        let payload = parse_payload(Some(r#"{"it-s": "alive"}"#), None).unwrap();
        let built = new_cron_trigger("p", "default", &CronTriggerFlags { payload, ..flags.clone() }).unwrap();
        assert_eq!(built["spec"]["payload"], json!({"it-s": "alive"}));
        let from_file = parse_payload(None, Some(("p.json", b"[1, 2]"))).unwrap();
        assert_eq!(from_file, Some(json!([1, 2])));
        assert_eq!(parse_payload(Some("\"text\""), None).unwrap(), Some(json!("text")));
        assert!(parse_payload(Some("{}"), Some(("p.json", b"{}"))).unwrap_err().to_string().contains("only one"));
        assert!(parse_payload(Some("{oops"), None).unwrap_err().to_string().contains("--payload is not valid JSON"));
        assert!(parse_payload(None, Some(("p.json", b"nope"))).unwrap_err().to_string().contains("p.json"));

        let bad = CronTriggerFlags { schedule: Some("every minute".into()), ..flags.clone() };
        assert!(new_cron_trigger("x", "d", &bad).unwrap_err().to_string().contains("Invalid value for --schedule"));

        let from_deploy = function_cron_trigger("hello", "default", "@hourly").unwrap();
        assert_eq!(from_deploy["metadata"]["labels"], json!({"created-by": "kubeless", "function": "hello"}));
        assert_eq!(from_deploy["spec"], json!({"function-name": "hello", "schedule": "@hourly"}));

        let mut current = built.clone();
        current["metadata"]["resourceVersion"] = json!("7");
        let patch = cron_trigger_patch(
            &current,
            &CronTriggerFlags { payload: Some(json!({"other": 1})), schedule: Some("@daily".into()), function: None },
        )
        .unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {"resourceVersion": "7"}, "spec": {"schedule": "@daily", "payload": {"it-s": null, "other": 1}}})
        );
    }

    #[test]
    fn topic_triggers_store_a_selector() {
        let selector = parse_label_selector("created-by=kubeless,function=hello").unwrap();
        let kafka = new_topic_trigger(TopicKind::Kafka, "orders", "default", "orders", &selector).unwrap();
        assert_eq!(
            kafka,
            json!({
                "apiVersion": "kubeless.io/v1beta1",
                "kind": "KafkaTrigger",
                "metadata": {"name": "orders", "namespace": "default", "labels": {"created-by": "kubeless"}},
                "spec": {"topic": "orders", "functionSelector": {"matchLabels": {"created-by": "kubeless", "function": "hello"}}},
            })
        );
        to_object::<KafkaTrigger>("KafkaTrigger", &kafka).unwrap();
        let nats = new_topic_trigger(TopicKind::Nats, "n", "default", "subject", &selector).unwrap();
        to_object::<NATSTrigger>("NATSTrigger", &nats).unwrap();
        let other = parse_label_selector("app in (a,b)").unwrap();
        let patch = topic_trigger_patch(&kafka, None, Some(&other)).unwrap();
        assert_eq!(
            patch["spec"]["functionSelector"],
            json!({"matchLabels": null, "matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]})
        );
        assert!(topic_trigger_patch(&kafka, None, None).is_err());
    }
}
