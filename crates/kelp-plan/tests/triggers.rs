//! What triggers become: Ingresses per gateway and CronJobs whose command really runs.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kelp_api::{CronJobTrigger, HTTPTrigger};
use kelp_plan::{
    Config, PlanError, cronjob_trigger_cronjob, function_children, http_trigger_ingress, refused_ingress_annotations,
};
use serde_json::{Value, json};
use support::{function, object};

fn service(spec: Value) -> Service {
    function_children(&function(json!({"service": spec})), &Config::default()).unwrap().service
}

fn ingress(spec: Value) -> Result<Ingress, PlanError> {
    let trigger: HTTPTrigger = object("HTTPTrigger", "route", json!({"app": "web"}), spec);
    http_trigger_ingress(&trigger, &service(json!({})), &Config::default())
}

fn annotations(ingress: &Ingress) -> BTreeMap<String, String> {
    ingress.metadata.annotations.clone().unwrap_or_default()
}

#[test]
fn each_gateway_gets_its_class_and_annotations() {
    let spec = |gateway: &str| {
        json!({"function-name": "fn", "host-name": "fn.example.test", "gateway": gateway,
        "cors-enable": true, "basic-auth-secret": "htpasswd"})
    };
    for (gateway, class, prefix) in [
        ("", "nginx", "nginx.ingress.kubernetes.io/"),
        ("nginx", "nginx", "nginx.ingress.kubernetes.io/"),
        ("traefik", "traefik", "ingress.kubernetes.io/"),
    ] {
        let ingress = ingress(spec(gateway)).unwrap();
        assert_eq!(ingress.spec.as_ref().unwrap().ingress_class_name.as_deref(), Some(class), "{gateway}");
        let annotations = annotations(&ingress);
        for (key, value) in [("enable-cors", "true"), ("auth-type", "basic"), ("auth-secret", "htpasswd")] {
            assert_eq!(annotations.get(&format!("{prefix}{key}")).map(String::as_str), Some(value), "{gateway} {key}");
        }
        assert_eq!(annotations.contains_key("nginx.ingress.kubernetes.io/rewrite-target"), class == "nginx");
    }
    let kong = ingress(json!({"function-name": "fn", "gateway": "kong", "cors-enable": true})).unwrap();
    assert_eq!(kong.spec.as_ref().unwrap().ingress_class_name.as_deref(), Some("kong"));
    assert_eq!(annotations(&kong)["ingress.kubernetes.io/enable-cors"], "true");
    let err = ingress(spec("kong")).unwrap_err();
    assert_eq!(err.to_string(), "spec.basic-auth-secret: Setting basic authentication with Kong is not yet supported");
    assert!(matches!(ingress(spec("istio")), Err(PlanError::Invalid { field, .. }) if field == "spec.gateway"));
}

#[test]
fn the_rule_routes_the_path_prefix_to_the_service_port() {
    let ingress = ingress(json!({"function-name": "fn", "host-name": "fn.example.test", "path": "api/v1"})).unwrap();
    let rule = &ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("fn.example.test"));
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!((path.path.as_deref(), path.path_type.as_str()), (Some("/api/v1"), "Prefix"));
    let backend = path.backend.service.as_ref().unwrap();
    assert_eq!(backend.name, "fn");
    // By number: the API server refuses port names over 15 characters in a backend.
    assert_eq!(backend.port.as_ref().unwrap().number, Some(8080));
    let labels = ingress.metadata.labels.as_ref().unwrap();
    assert_eq!((labels["app"].as_str(), labels["created-by"].as_str()), ("web", "kubeless"));
    let owner = &ingress.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("HTTPTrigger", "uid-route", Some(true)));

    // The Service's port, not the targetPort.
    let trigger: HTTPTrigger = object("HTTPTrigger", "route", Value::Null, json!({"function-name": "fn"}));
    let unnamed = service(json!({"ports": [{"port": 80, "targetPort": 8080}]}));
    let ingress = http_trigger_ingress(&trigger, &unnamed, &Config::default()).unwrap();
    let rule = &ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    assert_eq!(rule.host, None);
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!(path.path.as_deref(), Some("/"));
    assert_eq!(path.backend.service.as_ref().unwrap().port.as_ref().unwrap().number, Some(80));
}

#[test]
fn tls_comes_from_a_secret_or_from_acme_but_not_both() {
    let tls = |ingress: &Ingress| {
        let tls = &ingress.spec.as_ref().unwrap().tls.as_ref().unwrap()[0];
        (tls.secret_name.clone().unwrap(), tls.hosts.clone().unwrap())
    };
    let host = "fn.example.test";
    let secret = ingress(json!({"function-name": "fn", "host-name": host, "tls-secret": "cert"})).unwrap();
    assert_eq!(tls(&secret), ("cert".to_owned(), vec![host.to_owned()]));
    let acme = ingress(json!({"function-name": "fn", "host-name": host, "tls": true})).unwrap();
    assert_eq!(tls(&acme), ("route-tls".to_owned(), vec![host.to_owned()]));
    assert_eq!(annotations(&acme)["kubernetes.io/tls-acme"], "true");
    let both = ingress(json!({"function-name": "fn", "tls": true, "tls-secret": "cert"}));
    assert!(matches!(both, Err(PlanError::Invalid { field, .. }) if field == "spec.tls-secret"));
}

#[test]
fn the_triggers_annotations_win_and_an_old_class_annotation_replaces_the_class_name() {
    let mut trigger: HTTPTrigger = object("HTTPTrigger", "route", Value::Null, json!({"function-name": "fn"}));
    trigger.metadata.annotations = Some(BTreeMap::from([
        ("kubernetes.io/ingress.class".to_owned(), "internal".to_owned()),
        ("nginx.ingress.kubernetes.io/rewrite-target".to_owned(), "/$1".to_owned()),
        ("kubectl.kubernetes.io/last-applied-configuration".to_owned(), "{}".to_owned()),
    ]));
    let ingress = http_trigger_ingress(&trigger, &service(json!({})), &Config::default()).unwrap();
    assert_eq!(ingress.spec.unwrap().ingress_class_name, None);
    let annotations = ingress.metadata.annotations.unwrap();
    assert_eq!(annotations["kubernetes.io/ingress.class"], "internal");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/rewrite-target"], "/$1");
    assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
}

/// Annotations that inject configuration into the shared ingress controller (nginx's snippets)
/// are not copied onto the Ingress, and are named (by field path) for the Warning; an operator
/// may allow more in `kubeless-config`.
#[test]
fn only_allowed_annotations_reach_the_ingress() {
    let mut trigger: HTTPTrigger = object("HTTPTrigger", "route", Value::Null, json!({"function-name": "fn"}));
    let snippet = "nginx.ingress.kubernetes.io/configuration-snippet";
    trigger.metadata.annotations = Some(BTreeMap::from([
        (snippet.to_owned(), "location /admin { proxy_pass http://kube-apiserver; }".to_owned()),
        ("nginx.ingress.kubernetes.io/server-snippet".to_owned(), "listen 9999;".to_owned()),
        ("nginx.ingress.kubernetes.io/auth-snippet".to_owned(), "return 200;".to_owned()),
        ("example.com/team".to_owned(), "web".to_owned()),
        ("nginx.ingress.kubernetes.io/proxy-body-size".to_owned(), "8m".to_owned()),
        ("cert-manager.io/cluster-issuer".to_owned(), "letsencrypt".to_owned()),
    ]));
    let config = Config::default();
    let ingress = http_trigger_ingress(&trigger, &service(json!({})), &config).unwrap();
    let keys: Vec<String> = annotations(&ingress).into_keys().collect();
    assert_eq!(
        keys,
        [
            "cert-manager.io/cluster-issuer",
            "nginx.ingress.kubernetes.io/proxy-body-size",
            "nginx.ingress.kubernetes.io/rewrite-target"
        ]
    );
    assert_eq!(
        refused_ingress_annotations(&trigger, &config),
        [
            "metadata.annotations[example.com/team]",
            "metadata.annotations[nginx.ingress.kubernetes.io/auth-snippet]",
            "metadata.annotations[nginx.ingress.kubernetes.io/configuration-snippet]",
            "metadata.annotations[nginx.ingress.kubernetes.io/server-snippet]",
        ]
    );

    let mut data = Config::default_data();
    data.insert("ingress-annotations".into(), "example.com/*".into());
    let extended = Config::from_data(&data).unwrap();
    let ingress = http_trigger_ingress(&trigger, &service(json!({})), &extended).unwrap();
    assert_eq!(annotations(&ingress)["example.com/team"], "web");
    assert!(!annotations(&ingress).contains_key(snippet));
    assert_eq!(refused_ingress_annotations(&trigger, &extended).len(), 3);
}

fn cronjob(name: &str, spec: Value) -> CronJob {
    let trigger: CronJobTrigger = object("CronJobTrigger", name, json!({"schedule": "daily"}), spec);
    let function = function(json!({"timeout": "42", "service": {"ports": [{"name": "http", "port": 9000}]}}));
    cronjob_trigger_cronjob(&trigger, &function, &Config::default()).unwrap()
}

/// Runs the CronJob's container command as the kubelet and `sh` would, with a `curl` that prints
/// its arguments one per line.
fn run_command(cronjob: &CronJob) -> Vec<String> {
    let pod = cronjob.spec.as_ref().unwrap().job_template.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.command.as_ref().unwrap(), &["/bin/sh", "-c"]);
    assert_eq!(
        container.env.as_ref().unwrap()[0].value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path,
        "metadata.uid"
    );
    let script = kubelet_expand(&container.args.as_ref().unwrap()[0], "the-pod-uid");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("curl() {{ for arg in \"$@\"; do printf '%s\\n' \"$arg\"; done; }}; {script}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The kubelet's expansion of `$(POD_UID)` and `$$` in a container's arguments.
fn kubelet_expand(text: &str, pod_uid: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("$(POD_UID)") {
            out.push_str(pod_uid);
            rest = after;
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out + rest
}

#[test]
fn the_cron_command_sends_kubeless_headers_and_the_payload_verbatim() {
    let payload = json!({"quote": "it's", "expansion": "$(POD_UID) $HOME `id` $(id)", "n": [1, 2]});
    let args =
        run_command(&cronjob("tick", json!({"function-name": "fn", "schedule": "* * * * *", "payload": payload})));
    let n = args.len();
    assert_eq!((args[n - 3].as_str(), args[n - 2].as_str()), ("http://fn.ns.svc:9000", "-d"), "{args:?}");
    assert_eq!(serde_json::from_str::<Value>(&args[n - 1]).unwrap(), payload);
    for header in
        ["Event-Id: the-pod-uid", "Event-Namespace: cronjobtrigger.kubeless.io", "Content-Type: application/json"]
    {
        assert!(args.iter().any(|a| a == header), "no {header:?} in {args:?}");
    }
    let time = args.iter().find_map(|a| a.strip_prefix("Event-Time: ")).unwrap();
    assert!(time.len() == 25 && time.ends_with("+00:00") && time.as_bytes()[10] == b' ', "{time:?}");

    for no_payload in [
        json!({"function-name": "fn", "schedule": "@daily"}),
        json!({"function-name": "fn", "schedule": "@daily", "payload": null}),
    ] {
        let args = run_command(&cronjob("tick", no_payload));
        assert_eq!(args.last().map(String::as_str), Some("http://fn.ns.svc:9000"), "a GET has no body");
    }
}

#[test]
fn each_trigger_gets_its_own_cronjob() {
    let spec = json!({"function-name": "fn", "schedule": "*/5 * * * *"});
    let (a, b) = (cronjob("a", spec.clone()), cronjob("b", spec));
    assert_eq!((a.metadata.name.as_deref(), b.metadata.name.as_deref()), (Some("a"), Some("b")));
    let owner = &a.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("CronJobTrigger", "a", "uid-a"));
    let labels = a.metadata.labels.as_ref().unwrap();
    assert_eq!(
        (labels["function"].as_str(), labels["created-by"].as_str(), labels["schedule"].as_str()),
        ("fn", "kubeless", "daily")
    );
    let spec = a.spec.unwrap();
    assert_eq!(spec.schedule, "*/5 * * * *");
    assert_eq!((spec.successful_jobs_history_limit, spec.failed_jobs_history_limit), (Some(3), Some(1)));
    let job = spec.job_template.spec.unwrap();
    assert_eq!(job.active_deadline_seconds, Some(42));
    // The Job's pods must not carry the function's labels: its Service would route to them.
    assert!(job.template.metadata.is_none());
    let pod = job.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.containers[0].name, "trigger");
}
