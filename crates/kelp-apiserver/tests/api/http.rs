//! Protocol details over plain HTTP: authentication, discovery, OpenAPI, Table output, watch
//! resumption and `410`, read-only workloads, unsupported media types.

use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::Server;

struct Reply {
    code: u16,
    content_type: String,
    /// The `Warning` headers.
    warnings: Vec<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn call(client: &kube::Client, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut request = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(kube::client::Body::from(body.as_bytes().to_vec())).unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let warnings = response.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply { code, content_type, warnings, body: String::from_utf8_lossy(&bytes).into_owned() }
}

async fn get(client: &kube::Client, path: &str) -> Reply {
    call(client, "GET", path, &[], "").await
}

/// One HTTP/1.1 request on its own connection; the whole response as text.
async fn raw(server: &Server, request_line: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

const FUNCTIONS: &str = "/apis/kubeless.io/v1beta1/namespaces/default/functions";

fn function(name: &str) -> String {
    json!({"apiVersion": "kubeless.io/v1beta1", "kind": "Function", "metadata": {"name": name},
           "spec": {"handler": "m.f", "runtime": "python3.8"}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured() {
    let server = Server::start(Some("s3cret")).await;
    let anonymous = Server::start(None).await;
    // A client of the first server without its token.
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).unwrap().replace("    token: s3cret\n", "    {}\n");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let without = kube::Client::try_from(config).unwrap();
    let reply = get(&without, "/apis/kubeless.io/v1beta1/functions").await;
    assert_eq!(reply.code, 401);
    assert_eq!(reply.json()["reason"], "Unauthorized");
    assert_eq!(reply.json()["kind"], "Status");
    let wrong = call(&without, "GET", "/version", &[("authorization", "Bearer nope")], "").await;
    assert_eq!(wrong.code, 401);
    assert_eq!(get(&server.client().await, "/version").await.code, 200);
    assert_eq!(get(&anonymous.client().await, "/version").await.code, 200, "no token configured: open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_openapi() {
    let server = Server::start(None).await;
    let client = server.client().await;
    let version = get(&client, "/version").await.json();
    assert_eq!(version["gitVersion"], "v1.37.2-kelp");
    assert_eq!(get(&client, "/api").await.json()["versions"], json!(["v1"]));
    let groups = get(&client, "/apis").await.json();
    assert_eq!(groups["groups"][0]["name"], "kubeless.io");
    let group = get(&client, "/apis/kubeless.io").await.json();
    assert_eq!(group["kind"], "APIGroup");
    let resources = get(&client, "/apis/kubeless.io/v1beta1").await.json();
    let names: Vec<&str> =
        resources["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "functions",
            "functions/status",
            "httptriggers",
            "httptriggers/status",
            "cronjobtriggers",
            "cronjobtriggers/status",
            "kafkatriggers",
            "kafkatriggers/status",
            "natstriggers",
            "natstriggers/status",
            "kinesistriggers",
            "kinesistriggers/status"
        ]
    );
    let core = get(&client, "/api/v1").await.json();
    assert!(core["resources"].as_array().unwrap().iter().any(|r| r["name"] == "pods/log"));
    let root = get(&client, "/openapi/v3").await.json();
    let url = root["paths"]["apis/kubeless.io/v1beta1"]["serverRelativeURL"].as_str().unwrap().to_owned();
    let doc = get(&client, &url).await.json();
    assert!(doc["components"]["schemas"]["io.kubeless.v1beta1.Function"].is_object());
    assert_eq!(get(&client, "/openapi/v2").await.code, 404);
    let missing = get(&client, "/apis/kubeless.io/v1beta1/nothings").await;
    assert_eq!((missing.code, missing.json()["reason"].as_str()), (404, Some("NotFound")));
    // A group version not served at all gets the plain answer of kube-apiserver's mux, which
    // clients such as the Serverless Framework's kubeless plugin read as "not found".
    for path in ["/apis/extensions/v1beta1/namespaces/default/ingresses/x", "/apis/kubeless.io/v1", "/apis/batch"] {
        let unserved = get(&client, path).await;
        assert_eq!((unserved.code, unserved.body.as_str()), (404, "404 page not found\n"), "{path}");
        assert_eq!(unserved.content_type, "text/plain; charset=utf-8", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_for_kubectl_get() {
    let server = Server::start(None).await;
    let client = server.client().await;
    assert_eq!(
        call(&client, "POST", FUNCTIONS, &[("content-type", "application/json")], &function("hello")).await.code,
        201
    );
    let accept = [(
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    )];
    let table = call(&client, "GET", FUNCTIONS, &accept, "").await.json();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Name", "Ready", "Runtime", "Handler", "Replicas", "Age"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(
        (&cells[0], &cells[1], &cells[2], &cells[3]),
        (&json!("hello"), &json!(null), &json!("python3.8"), &json!("m.f"))
    );
    assert!(cells[5].as_str().unwrap().ends_with('s'));
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let one = call(&client, "GET", &format!("{FUNCTIONS}/hello"), &accept, "").await.json();
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    let plain = get(&client, FUNCTIONS).await;
    assert!(plain.content_type.starts_with("application/json"));
    let list = plain.json();
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("FunctionList"), Some("kubeless.io/v1beta1"))
    );
    assert_eq!(list["items"][0]["kind"], "Function");
    assert!(list["metadata"]["resourceVersion"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_start_from_state_or_resume() {
    let server = Server::start(None).await;
    let client = server.client().await;
    let json_ct = [("content-type", "application/json")];
    let first = call(&client, "POST", FUNCTIONS, &json_ct, &function("a")).await.json();
    let rv = first["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    call(&client, "POST", FUNCTIONS, &json_ct, &function("b")).await;
    // Resumed from a's resourceVersion: b's creation only; the watch ends after timeoutSeconds.
    let events = get(&client, &format!("{FUNCTIONS}?watch=1&resourceVersion={rv}&timeoutSeconds=1")).await;
    let lines: Vec<Value> = events.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{}", events.body);
    assert_eq!(
        (lines[0]["type"].as_str(), lines[0]["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    // Without a resourceVersion: the current objects as ADDED.
    let all = get(&client, &format!("{FUNCTIONS}?watch=true&timeoutSeconds=1")).await;
    assert_eq!(all.body.lines().count(), 2);
    // With sendInitialEvents: the initial-events-end bookmark after them.
    let initial = get(&client, &format!("{FUNCTIONS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")).await;
    let last: Value = serde_json::from_str(initial.body.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "BOOKMARK");
    assert_eq!(last["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_resource_version_is_410() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kelp.redb");
    {
        let store = kelp_apiserver::open_store(&path).await.unwrap();
        store
            .create("kubeless.io/functions", json!({"metadata": {"name": "x", "namespace": "default"}, "spec": {}}))
            .await
            .unwrap();
    }
    // Reopened: nothing before now can be resumed.
    let store = kelp_apiserver::open_store(&path).await.unwrap();
    let app = kelp_apiserver::router(kelp_apiserver::ApiServerConfig::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let reply = get(&client, &format!("{FUNCTIONS}?watch=1&resourceVersion=1")).await;
    assert_eq!(reply.code, 200);
    let event: Value = serde_json::from_str(reply.body.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(event["object"]["message"].as_str().unwrap().starts_with("too old resource version: 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_are_read_only_and_errors_are_statuses() {
    let server = Server::start(None).await;
    let client = server.client().await;
    let pods = get(&client, "/api/v1/namespaces/default/pods").await.json();
    assert_eq!((pods["kind"].as_str(), pods["items"].as_array().map(Vec::len)), (Some("PodList"), Some(0)));
    assert_eq!(get(&client, "/api/v1/pods").await.code, 200);
    let pod = get(&client, "/api/v1/namespaces/default/pods/p").await;
    assert_eq!((pod.code, pod.json()["message"].as_str()), (404, Some("pods \"p\" not found")));
    let write =
        call(&client, "POST", "/api/v1/namespaces/default/pods", &[("content-type", "application/json")], "{}").await;
    assert_eq!((write.code, write.json()["reason"].as_str()), (405, Some("MethodNotAllowed")));
    assert_eq!(call(&client, "DELETE", "/api/v1/namespaces/default/services/s", &[], "").await.code, 405);
    assert_eq!(get(&client, "/api/v1/namespaces/default/pods/p/log?follow=true").await.code, 404);
    // (kube-rs retries 503s, so this one goes over a raw connection.)
    let proxied = raw(&server, "POST /api/v1/namespaces/default/services/hello:8080/proxy/x?y=1", "hi").await;
    assert!(proxied.starts_with("HTTP/1.1 503"), "{proxied}");
    assert!(proxied.contains(r#""reason":"ServiceUnavailable""#), "{proxied}");
    let services = get(&client, "/api/v1/namespaces/default/services?watch=1&timeoutSeconds=1").await;
    assert_eq!((services.code, services.body.as_str()), (200, ""));

    call(&client, "POST", FUNCTIONS, &[("content-type", "application/json")], &function("f")).await;
    let unsupported = call(&client, "PATCH", &format!("{FUNCTIONS}/f"), &[("content-type", "text/plain")], "{}").await;
    assert_eq!((unsupported.code, unsupported.json()["reason"].as_str()), (415, Some("UnsupportedMediaType")));
    let apply_without_manager =
        call(&client, "PATCH", &format!("{FUNCTIONS}/f"), &[("content-type", "application/apply-patch+yaml")], "{}")
            .await;
    assert_eq!(apply_without_manager.code, 400);
    let yaml_apply = call(
        &client,
        "PATCH",
        &format!("{FUNCTIONS}/y?fieldManager=test"),
        &[("content-type", "application/apply-patch+yaml")],
        "apiVersion: kubeless.io/v1beta1\nkind: Function\nmetadata:\n  name: y\nspec:\n  handler: a.b\n  runtime: go1.14\n",
    )
    .await;
    assert_eq!(yaml_apply.code, 201, "{}", yaml_apply.body);
    let bad_json = call(&client, "POST", FUNCTIONS, &[("content-type", "application/json")], "{").await;
    assert_eq!((bad_json.code, bad_json.json()["reason"].as_str()), (400, Some("BadRequest")));
    let strict = call(
        &client,
        "POST",
        &format!("{FUNCTIONS}?fieldValidation=Strict"),
        &[("content-type", "application/json")],
        &json!({"metadata": {"name": "s"}, "spec": {"handler": "a.b", "runtime": "go1.14", "nope": 1}}).to_string(),
    )
    .await;
    assert_eq!(strict.code, 400);
    assert!(strict.json()["message"].as_str().unwrap().contains("unknown field \"spec.nope\""));
    let warned = call(
        &client,
        "POST",
        FUNCTIONS,
        &[("content-type", "application/json")],
        &json!({"metadata": {"name": "w"}, "spec": {"handler": "a.b", "runtime": "go1.14", "nope": 1}}).to_string(),
    )
    .await;
    assert_eq!(warned.code, 201);
    assert!(warned.json()["spec"].get("nope").is_none(), "unknown fields are pruned");
    let generated = call(
        &client,
        "POST",
        FUNCTIONS,
        &[("content-type", "application/json")],
        &json!({"metadata": {"generateName": "gen-"}, "spec": {"handler": "a.b", "runtime": "go1.14"}}).to_string(),
    )
    .await
    .json();
    assert!(generated["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
}

/// Refuses Functions whose runtime is `cobol1`, and warns about every other Function.
struct NoCobol;

impl kelp_apiserver::Admission for NoCobol {
    fn admit(&self, kind: &kelp_apiserver::Kind, object: &Value) -> Result<Vec<String>, kelp_api::ValidationErrors> {
        if kind.kind != "Function" {
            return Ok(Vec::new());
        }
        match object.pointer("/spec/runtime").and_then(Value::as_str) {
            Some("cobol1") => {
                let mut errors = kelp_api::ValidationErrors::default();
                errors.not_supported("spec.runtime", "\"cobol1\": no COBOL here");
                Err(errors)
            }
            runtime => Ok(vec![format!("{} runs elsewhere", runtime.unwrap_or_default())]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_or_warns() {
    let server = Server::start_with(None, |config| config.with_admission(std::sync::Arc::new(NoCobol))).await;
    let client = server.client().await;
    let json = [("content-type", "application/json")];
    let created = call(&client, "POST", FUNCTIONS, &json, &function("hello")).await;
    assert_eq!(
        (created.code, created.warnings.as_slice()),
        (201, [r#"299 - "python3.8 runs elsewhere""#.to_owned()].as_slice())
    );

    let cobol = function("old").replace("python3.8", "cobol1");
    let refused = call(&client, "POST", FUNCTIONS, &json, &cobol).await;
    assert_eq!(refused.code, 422, "{}", refused.body);
    assert_eq!(
        refused.json()["message"],
        r#"Function.kubeless.io "old" is invalid: spec.runtime: Unsupported value: "cobol1": no COBOL here"#
    );
    let merge = [("content-type", "application/merge-patch+json")];
    let patch =
        call(&client, "PATCH", &format!("{FUNCTIONS}/hello"), &merge, r#"{"spec": {"runtime": "cobol1"}}"#).await;
    assert_eq!(patch.code, 422, "{}", patch.body);
    // Status writes are not the admission's business.
    let status = r#"{"status": {"observedGeneration": 1}}"#;
    let written = call(&client, "PATCH", &format!("{FUNCTIONS}/hello/status"), &merge, status).await;
    assert_eq!((written.code, written.warnings.len()), (200, 0), "{}", written.body);
    // Other kinds pass untouched.
    let config_map = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}"#;
    let other = call(&client, "POST", "/api/v1/namespaces/default/configmaps", &json, config_map).await;
    assert_eq!((other.code, other.warnings.len()), (201, 0), "{}", other.body);
}
