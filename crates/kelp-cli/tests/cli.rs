//! End-to-end tests: the real `kelp` binary against a real Kelp API server
//! (`kelp_apiserver::router` over a temporary store, on 127.0.0.1:0, behind a bearer token),
//! through a kubeconfig written for it, exactly as a user runs it.
//!
//! Pods, logs and the service proxy come from a fake supervisor ([`FakeWorkloads`]): a ready
//! instance of `hello` (which echoes the request and serves `/metrics`), an instance of
//! `sleepy` that is not ready, `slow` answers 408 and `broken` 500.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use kelp_apiserver::{ApiServerConfig, BoxFuture, BoxStream, LogOptions, WorkloadError, Workloads};
use serde_json::{Value, json};

#[path = "common/run.rs"]
mod common_run;

use common_run::{Run, run};

const TOKEN: &str = "kelp-test-token";

/// A running API server with its store, a kubeconfig for it and a scratch directory.
struct Server {
    runtime: tokio::runtime::Runtime,
    url: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

fn kubeconfig_text(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: kelp\n\
         clusters:\n- name: kelp\n  cluster:\n    server: {url}\n\
         contexts:\n- name: kelp\n  context:\n    cluster: kelp\n    user: kelp\n\
         - name: other\n  context:\n    cluster: kelp\n    user: kelp\n    namespace: team\n\
         users:\n- name: kelp\n  user:\n    token: {token}\n"
    )
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store_path = dir.path().join("objects.redb");
        let url = runtime.block_on(async move {
            let store = kelp_apiserver::open_store(&store_path).await.unwrap();
            let config =
                ApiServerConfig::new(store).with_workloads(Arc::new(FakeWorkloads)).with_token(Some(TOKEN.to_owned()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, kelp_apiserver::router(config)).await.unwrap() });
            format!("http://{address}")
        });
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(&url, TOKEN)).unwrap();
        Self { runtime, url, dir, kubeconfig }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// `kelp --kubeconfig <ours> <args>`.
    fn kelp(&self, args: &[&str]) -> Run {
        self.kelp_in(args, None)
    }

    fn kelp_in(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = bare_kelp(self.dir.path());
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run(&mut command, stdin)
    }

    /// A kube client for checks and for playing the controller (writing status).
    fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        self.runtime.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
            kube::Client::try_from(config).unwrap()
        })
    }

    /// An object as JSON (`kelp get KIND NAME -o json`), or `None`.
    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        let run = self.kelp(&["get", kind, name, "-o", "json"]);
        if run.code != 0 {
            assert!(run.stderr.contains("not found"), "{run:?}");
            return None;
        }
        Some(serde_json::from_str(&run.stdout).unwrap())
    }

    /// Marks a Function ready, as a controller would.
    fn set_ready(&self, name: &str, ready: bool, reason: &str) {
        let client = self.client();
        self.runtime.block_on(async {
            let api: kube::Api<kelp_api::Function> = kube::Api::namespaced(client, "default");
            let status = json!({"status": {
                "readyReplicas": if ready { 1 } else { 0 },
                "conditions": [{
                    "type": "Ready",
                    "status": if ready { "True" } else { "False" },
                    "reason": reason,
                    "message": "",
                    "lastTransitionTime": "2024-01-01T00:00:00Z",
                }],
            }});
            api.patch_status(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&status))
                .await
                .unwrap();
        });
    }

    /// Deploys a small Python function.
    fn deploy(&self, name: &str, extra: &[&str]) -> Run {
        let code = self.write(&format!("{name}.py"), "def foo(event, context):\n    return event['data']\n");
        let code = code.to_str().unwrap().to_owned();
        let mut args = vec!["function", "deploy", name, "--runtime", "python3.8", "--handler", &format!("{name}.foo")]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        args.extend(["--from-file".to_owned(), code]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kelp(&args)
    }
}

/// A kubeless table's cells, line by line: split at its tabs, each without its padding.
fn cells(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|line| line.split('\t').map(|cell| cell.trim_end().to_owned()).collect()).collect()
}

/// `kelp` with a clean environment: no kubeconfig of the machine's, HOME in `home`.
fn bare_kelp(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kelp"));
    command
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBELESS_NAMESPACE")
        .env_remove("KUBELESS_CONFIG");
    command
}

// ---------------------------------------------------------------------------------------------
// The fake supervisor
// ---------------------------------------------------------------------------------------------

struct FakeWorkloads;

fn pod(name: &str, function: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": "1",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"function": function, "created-by": "kubeless"},
        },
        "spec": {"containers": [{"name": function}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": function, "ready": ready, "restartCount": 0, "image": "kelp-runtime", "imageID": ""}
        ]},
    }))
    .unwrap()
}

const METRICS: &str = "# TYPE function_calls_total counter\n\
function_calls_total{method=\"GET\"} 3\n\
function_calls_total{method=\"POST\"} 1\n\
function_failures_total{method=\"POST\"} 1\n\
function_duration_seconds_sum{method=\"GET\"} 0.3\n\
function_duration_seconds_count{method=\"GET\"} 3\n";

fn response(status: u16, content_type: &str, body: impl Into<Body>) -> http::Response<Body> {
    http::Response::builder().status(status).header("content-type", content_type).body(body.into()).unwrap()
}

impl Workloads for FakeWorkloads {
    fn list_pods<'a>(&'a self, namespace: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Pod>, WorkloadError>> {
        Box::pin(async move {
            if namespace.is_some_and(|ns| ns != "default") {
                return Ok(Vec::new());
            }
            Ok(vec![pod("sleepy-5c8f", "sleepy", false), pod("hello-7d4b9", "hello", true)])
        })
    }

    fn pod_logs<'a>(
        &'a self,
        _namespace: &'a str,
        pod: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<BoxStream<Result<Bytes, std::io::Error>>, WorkloadError>> {
        Box::pin(async move {
            if pod != "hello-7d4b9" {
                return Err(WorkloadError::NotFound(format!("pods \"{pod}\" not found")));
            }
            if options.container.as_deref() != Some("hello") {
                return Err(WorkloadError::BadRequest("container hello expected".into()));
            }
            let lines = vec![Ok(Bytes::from_static(b"first line\n")), Ok(Bytes::from_static(b"second line\n"))];
            let stream: BoxStream<Result<Bytes, std::io::Error>> = Box::pin(futures_util::stream::iter(lines));
            Ok(stream)
        })
    }

    fn proxy<'a>(
        &'a self,
        _namespace: &'a str,
        service: &'a str,
        port: Option<&'a str>,
        request: http::Request<Body>,
    ) -> BoxFuture<'a, Result<http::Response<Body>, WorkloadError>> {
        Box::pin(async move {
            match service {
                "hello" if request.uri().path() == "/metrics" => Ok(response(200, "text/plain", METRICS)),
                "hello" => {
                    let (parts, body) = request.into_parts();
                    let body = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
                    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let echo = json!({
                        "method": parts.method.as_str(),
                        "path": parts.uri.path(),
                        "port": port,
                        "authorization": header("authorization"),
                        "event-id": header("event-id"),
                        "event-time": header("event-time"),
                        "event-namespace": header("event-namespace"),
                        "event-type": header("event-type"),
                        "content-type": header("content-type"),
                        "body": String::from_utf8_lossy(&body),
                    });
                    Ok(response(200, "application/json", echo.to_string()))
                }
                "slow" => Ok(response(408, "text/plain", "Timeout")),
                "broken" => Ok(response(500, "text/plain", "Traceback: boom")),
                other => Err(WorkloadError::Unavailable(format!("no endpoints available for service \"{other}\""))),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn function_deploy_list_describe_update_delete() {
    let server = Server::start();
    let deployed = server
        .deploy("hello", &["-l", "tier=web,team:core", "-e", "GREETING=hi", "--memory", "128Mi", "--timeout", "60"])
        .ok();
    assert_eq!(deployed.stdout, "");
    assert_eq!(
        deployed.stderr,
        "Deploying function...\nFunction hello submitted for deployment\n\
         Check the deployment status executing 'kelp function ls hello'\n"
    );

    let stored = server.get("fn", "hello").unwrap();
    assert_eq!(
        stored["metadata"]["labels"],
        json!({"created-by": "kubeless", "function": "hello", "team": "core", "tier": "web"})
    );
    assert_eq!(stored["spec"]["function-content-type"], "text");
    assert_eq!(stored["spec"]["timeout"], "60");
    assert_eq!(stored["spec"]["service"]["ports"][0]["name"], "http-function-port");
    assert!(stored["spec"]["checksum"].as_str().unwrap().starts_with("sha256:"));

    let list = server.kelp(&["function", "ls"]).ok();
    assert_eq!(
        list.stdout,
        "NAME \tNAMESPACE\tHANDLER  \tRUNTIME  \tDEPENDENCIES\tSTATUS       \nhello\tdefault  \thello.foo\tpython3.8\t            \t0/1 NOT READY\n"
    );
    server.set_ready("hello", true, "Ready");
    let list = server.kelp(&["function", "list", "hello"]).ok();
    assert!(list.stdout.contains("1/1 READY"), "{list:?}");
    let wide = server.kelp(&["function", "ls", "-o", "wide"]).ok();
    let wide = cells(&wide.stdout);
    assert_eq!(wide[0][..8], ["NAME", "NAMESPACE", "HANDLER", "RUNTIME", "DEPENDENCIES", "STATUS", "MEMORY", "ENV"]);
    assert_eq!(wide[1][6..8], ["128Mi", "GREETING = hi"], "{wide:?}");
    let as_json: Value = serde_json::from_str(&server.kelp(&["function", "ls", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(as_json.as_array().unwrap().len(), 1);
    let as_yaml = server.kelp(&["function", "ls", "-o", "yaml"]).ok();
    assert!(as_yaml.stdout.contains("handler: hello.foo"), "{as_yaml:?}");

    let described = server.kelp(&["function", "describe", "hello"]).ok();
    let described = cells(&described.stdout);
    assert_eq!(described[..3], [["Name:", "hello"], ["Namespace:", "default"], ["Handler:", "hello.foo"]]);
    assert!(described.contains(&vec!["Envvar:".to_owned(), r#"[{"name":"GREETING","value":"hi"}]"#.to_owned()]));
    assert!(described.contains(&vec!["Memory:".to_owned(), "128Mi".to_owned()]));
    assert!(described.contains(&vec!["Status:".to_owned(), "1/1 READY".to_owned()]), "{described:?}");

    // update: only what the flags say.
    let before = server.get("fn", "hello").unwrap();
    server.kelp(&["function", "update", "hello", "-e", "EXTRA=1", "-l", "stage=beta"]).ok();
    let after = server.get("fn", "hello").unwrap();
    let container = |v: &Value| v["spec"]["deployment"]["spec"]["template"]["spec"]["containers"][0].clone();
    assert_eq!(container(&after)["env"], json!([{"name": "GREETING", "value": "hi"}, {"name": "EXTRA", "value": "1"}]));
    assert_eq!(after["metadata"]["labels"]["stage"], "beta");
    assert_eq!(after["metadata"]["labels"]["tier"], "web");
    for unchanged in
        ["handler", "runtime", "function", "checksum", "function-content-type", "timeout", "deps", "service"]
    {
        assert_eq!(after["spec"][unchanged], before["spec"][unchanged], "spec.{unchanged} changed");
    }
    assert_eq!(container(&after)["resources"], container(&before)["resources"]);
    assert_eq!(container(&after)["imagePullPolicy"], "Always");

    let code = server.write("v2.py", "def foo(event, context):\n    return 'v2'\n");
    let updated =
        server.kelp(&["function", "update", "hello", "-f", code.to_str().unwrap(), "--handler", "v2.foo"]).ok();
    assert!(
        updated.stderr.starts_with("Redeploying function...\nFunction hello submitted for deployment\n"),
        "{updated:?}"
    );
    let after_code = server.get("fn", "hello").unwrap();
    assert_eq!(after_code["spec"]["function"], "def foo(event, context):\n    return 'v2'\n");
    assert_eq!(after_code["spec"]["handler"], "v2.foo");
    assert_eq!(after_code["spec"]["timeout"], "60", "not reset to 180");

    server.kelp(&["function", "update", "hello"]).fails_with("nothing to update");
    server
        .kelp(&["function", "update", "nope", "--timeout", "5"])
        .fails_with("function \"nope\" not found in namespace \"default\"");

    let deleted = server.kelp(&["function", "delete", "hello"]).ok();
    assert_eq!(deleted.stderr, "Function hello deleted from namespace default\n");
    assert_eq!(
        server.kelp(&["function", "ls"]).ok().stdout,
        "NAME\tNAMESPACE\tHANDLER\tRUNTIME\tDEPENDENCIES\tSTATUS\n"
    );
    server.kelp(&["function", "delete", "hello"]).fails_with("function \"hello\" not found");
}

#[test]
fn deploy_variants_dry_run_schedule_archive_and_wait() {
    let server = Server::start();
    // --dryrun sends nothing and prints the object.
    let code = server.write("hello.py", "def foo(event, context):\n    return event[\"data\"]\n");
    let dry = server
        .kelp(&[
            "function",
            "deploy",
            "hello",
            "-r",
            "python3.8",
            "--handler",
            "test.foo",
            "-f",
            code.to_str().unwrap(),
            "-e",
            "FOO=bar",
            "--dryrun",
            "-o",
            "json",
        ])
        .ok();
    let printed: Value = serde_json::from_str(&dry.stdout).unwrap();
    let fixture: Value =
        serde_saphyr::from_str(include_str!("../../kelp-api/tests/fixtures/function-minimal-text.yaml")).unwrap();
    assert_eq!(printed, fixture, "what the kubeless CLI stored");
    assert!(server.get("fn", "hello").is_none());
    let yaml = server.kelp(&["function", "deploy", "hello", "--runtime-image", "me/fn:1", "--dryrun"]).ok();
    assert!(yaml.stdout.contains("image: me/fn:1"), "{yaml:?}");

    // --schedule also creates a CronJobTrigger named after the function.
    server.deploy("ticker", &["--schedule", "*/5 * * * *"]).ok();
    let trigger = server.get("cronjobtriggers", "ticker").unwrap();
    assert_eq!(trigger["spec"], json!({"function-name": "ticker", "schedule": "*/5 * * * *"}));
    assert_eq!(trigger["metadata"]["labels"], json!({"created-by": "kubeless", "function": "ticker"}));
    // A bad schedule changes nothing.
    server.deploy("bad-cron", &["--schedule", "every minute"]).fails_with("Invalid value for --schedule");
    assert!(server.get("fn", "bad-cron").is_none());

    // Archives are base64 with their archive type; dependencies are stored.
    let zip = server.path("func.zip");
    std::fs::write(&zip, b"PK\x03\x04fake zip archive bytes").unwrap();
    let deps = server.write("requirements.txt", "requests==2.25.1\n");
    server
        .kelp(&[
            "function",
            "deploy",
            "zipped",
            "-r",
            "python3.8",
            "--handler",
            "h.foo",
            "-f",
            zip.to_str().unwrap(),
            "-d",
            deps.to_str().unwrap(),
        ])
        .ok();
    let zipped = server.get("fn", "zipped").unwrap();
    assert_eq!(zipped["spec"]["function-content-type"], "base64+zip");
    assert_eq!(zipped["spec"]["function"], "UEsDBGZha2UgemlwIGFyY2hpdmUgYnl0ZXM=");
    assert_eq!(zipped["spec"]["deps"], "requests==2.25.1\n");
    let list = server.kelp(&["function", "ls", "zipped"]).ok();
    assert!(list.stdout.contains("requests==2.25.1"), "{list:?}");

    // Code and dependencies from URLs: the Function keeps the URL, the checksum is of the
    // downloaded bytes, the dependencies are stored.
    let files = server.runtime.block_on(async {
        let app = axum::Router::new()
            .route("/src/hello.py", axum::routing::get(|| async { "def foo(event, context):\n    return 'web'\n" }))
            .route("/src/requirements.txt", axum::routing::get(|| async { "requests==2.31.0\n" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}/src")
    });
    let (code_url, deps_url) = (format!("{files}/hello.py"), format!("{files}/requirements.txt"));
    server
        .kelp(&[
            "function",
            "deploy",
            "web",
            "-r",
            "python3.8",
            "--handler",
            "hello.foo",
            "-f",
            &code_url,
            "-d",
            &deps_url,
        ])
        .ok();
    let web = server.get("fn", "web").unwrap();
    assert_eq!(web["spec"]["function"], code_url.as_str());
    assert_eq!(web["spec"]["function-content-type"], "url");
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
        "def foo(event, context):\n    return 'web'\n",
    ));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(web["spec"]["checksum"], format!("sha256:{hex}"));
    assert_eq!(web["spec"]["deps"], "requests==2.31.0\n");
    server
        .kelp(&[
            "function",
            "deploy",
            "gone",
            "-r",
            "python3.8",
            "--handler",
            "h.foo",
            "-f",
            &format!("{files}/missing.py"),
        ])
        .fails_with(&format!("cannot download {files}/missing.py: the server answered 404 Not Found"));

    // Deploying again is an error naming the function.
    server.deploy("zipped", &[]).fails_with("function \"zipped\" already exists in namespace \"default\"");

    // --wait returns once a controller reports Ready.
    let code = server.write("w.py", "def foo(event, context):\n    return 1\n");
    let mut waiting = bare_kelp(server.dir.path());
    waiting
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args([
            "function",
            "deploy",
            "waited",
            "-r",
            "python3.8",
            "--handler",
            "w.foo",
            "-f",
            code.to_str().unwrap(),
            "--wait",
            "--wait-timeout",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = waiting.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.get("fn", "waited").is_none() {
        assert!(std::time::Instant::now() < deadline, "the function never appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.set_ready("waited", false, "Installing");
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.set_ready("waited", true, "Ready");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.ends_with("Function waited is ready\n"), "{stderr}");
    assert!(!stderr.contains('\r'), "no spinner when stderr is not a terminal: {stderr:?}");

    let timed_out = server.deploy("never", &["--wait", "--wait-timeout", "1"]);
    timed_out.fails_with("function never is not ready after 1s (no status reported yet");
}

#[test]
fn bad_flags_and_values_are_one_line_and_change_nothing() {
    let server = Server::start();
    server.kelp(&["function", "deploy", "x", "--bogus"]).fails_alone_with("unexpected argument '--bogus'");
    server.deploy("bad-handler", &[]).ok();
    server
        .kelp(&[
            "function",
            "deploy",
            "y",
            "-r",
            "python3.8",
            "--handler",
            "nodot",
            "-f",
            server.path("bad-handler.py").to_str().unwrap(),
        ])
        .fails_alone_with("invalid Function \"y\": spec.handler: must be \"<module>.<function>\" (exactly one dot)");
    server
        .deploy("z", &["--image-pull-policy", "Sometimes"])
        .fails_alone_with("--image-pull-policy must be one of IfNotPresent, Always, Never");
    server.deploy("z", &["--port", "0"]).fails_alone_with("Invalid port number 0");
    server.deploy("z", &["--memory", "lots"]).fails_alone_with("--memory");
    let code = server.path("bad-handler.py");
    let code = code.to_str().unwrap();
    server
        .kelp(&["function", "deploy", "z", "--runtime", "cobol1", "--handler", "z.f", "-f", code])
        .fails_alone_with("Invalid runtime: cobol1");
    server.deploy("Z_Z", &[]).fails_alone_with("metadata.name");
    server
        .kelp(&["function", "deploy", "z", "-r", "python3.8", "--handler", "z.f", "-f", "/no/such/file.py"])
        .fails_alone_with("cannot read /no/such/file.py");
    server
        .kelp(&["function", "deploy", "z", "--handler", "z.f"])
        .fails_alone_with("Either `--runtime` or `--runtime-image`");
    server.kelp(&["function", "update", "bad-handler", "--timeout", "soon"]).fails_alone_with("spec.timeout");
    let names: Vec<String> =
        serde_json::from_str::<Vec<Value>>(&server.kelp(&["function", "ls", "-o", "json"]).ok().stdout)
            .unwrap()
            .iter()
            .map(|f| f["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(names, vec!["bad-handler"]);
    assert_eq!(server.get("fn", "bad-handler").unwrap()["spec"]["timeout"], "180");
}

#[test]
fn http_cronjob_kafka_and_nats_triggers() {
    let server = Server::start();
    server
        .kelp(&["trigger", "http", "create", "hello-ingress", "--function-name", "hello"])
        .fails_with("Unable to find Function hello in namespace default");
    server.deploy("hello", &[]).ok();

    let created = server
        .kelp(&[
            "trigger",
            "http",
            "create",
            "hello-ingress",
            "--function-name",
            "hello",
            "--path",
            "/api",
            "--cors-enable",
        ])
        .ok();
    assert_eq!(created.stderr, "HTTP trigger hello-ingress created in namespace default successfully!\n");
    let trigger = server.get("httptriggers", "hello-ingress").unwrap();
    assert_eq!(trigger["spec"]["host-name"], "hello.127.0.0.1.nip.io");
    assert_eq!(trigger["spec"]["path"], "api");
    assert_eq!(trigger["spec"]["gateway"], "nginx");
    assert_eq!(trigger["spec"]["cors-enable"], true);
    assert_eq!(trigger["metadata"]["labels"], json!({"created-by": "kubeless"}));
    server
        .kelp(&["trigger", "http", "create", "t2", "--function-name", "hello", "--gateway", "traefik"])
        .fails_with("The --hostname flag is required");
    server
        .kelp(&["trigger", "http", "create", "t2", "--function-name", "hello", "--enableTLSAcme", "--tls-secret", "s"])
        .fails_with("Cannot specify both --enableTLSAcme and --tls-secret");
    server.kelp(&["trigger", "http", "update", "hello-ingress", "--hostname", "hello.example.com"]).ok();
    let trigger = server.get("httptriggers", "hello-ingress").unwrap();
    assert_eq!(trigger["spec"]["host-name"], "hello.example.com");
    assert_eq!(trigger["spec"]["path"], "api", "kept");
    assert_eq!(
        server.kelp(&["trigger", "http", "ls"]).ok().stdout,
        "NAME         \tNAMESPACE\tFUNCTION NAME\nhello-ingress\tdefault  \thello        \n"
    );
    server.kelp(&["trigger", "http", "delete", "hello-ingress"]).ok();
    assert!(server.get("httptriggers", "hello-ingress").is_none());

    // Cron job triggers.
    server
        .kelp(&[
            "trigger",
            "cronjob",
            "create",
            "tick",
            "--function",
            "hello",
            "--schedule",
            "@hourly",
            "-p",
            "{\"it-s\": \"alive\"}",
        ])
        .ok();
    assert_eq!(server.get("cronjobtriggers", "tick").unwrap()["spec"]["payload"], json!({"it-s": "alive"}));
    let payload = server.write("payload.json", "[1, 2, 3]");
    server
        .kelp(&[
            "trigger",
            "cronjob",
            "create",
            "tock",
            "--function",
            "hello",
            "--schedule",
            "0 * * * *",
            "-f",
            payload.to_str().unwrap(),
        ])
        .ok();
    server
        .kelp(&["trigger", "cronjob", "create", "bad", "--function", "hello", "--schedule", "61 * * * *"])
        .fails_with("Invalid value for --schedule");
    server
        .kelp(&[
            "trigger",
            "cronjob",
            "create",
            "both",
            "--function",
            "hello",
            "--schedule",
            "@daily",
            "-p",
            "{}",
            "-f",
            payload.to_str().unwrap(),
        ])
        .fails_with("only one of --payload and --payload-from-file");
    server.kelp(&["trigger", "cronjob", "update", "tick", "--schedule", "@daily"]).ok();
    let tick = server.get("cronjobtriggers", "tick").unwrap();
    assert_eq!(tick["spec"]["schedule"], "@daily");
    assert_eq!(tick["spec"]["payload"], json!({"it-s": "alive"}), "kept");
    assert_eq!(
        server.kelp(&["trigger", "cronjob", "list"]).ok().stdout,
        "NAME\tNAMESPACE\tSCHEDULE \tFUNCTION NAME\ntick\tdefault  \t@daily   \thello        \ntock\tdefault  \t0 * * * *\thello        \n"
    );
    server.kelp(&["trigger", "cronjob", "delete", "tock"]).ok();
    server.kelp(&["trigger", "cronjob", "delete", "tock"]).fails_with("cronjob trigger \"tock\" not found");

    // Kafka and NATS triggers are stored with their selector.
    let kafka = server
        .kelp(&[
            "trigger",
            "kafka",
            "create",
            "orders",
            "--trigger-topic",
            "orders",
            "--function-selector",
            "created-by=kubeless,function=hello",
        ])
        .ok();
    assert_eq!(kafka.stderr, "Kafka trigger orders created in namespace default successfully!\n");
    assert_eq!(
        server.get("kafkatriggers", "orders").unwrap()["spec"],
        json!({"topic": "orders", "functionSelector": {"matchLabels": {"created-by": "kubeless", "function": "hello"}}})
    );
    assert_eq!(
        server.kelp(&["trigger", "kafka", "ls"]).ok().stdout,
        "NAME  \tNAMESPACE\tTOPIC \tFUNCTION SELECTOR                 \norders\tdefault  \torders\tcreated-by=kubeless,function=hello\n"
    );
    server.kelp(&["trigger", "kafka", "update", "orders", "--function-selector", "tier in (web,api)"]).ok();
    assert_eq!(
        server.get("kafkatriggers", "orders").unwrap()["spec"]["functionSelector"],
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]})
    );
    server
        .kelp(&[
            "trigger",
            "nats",
            "create",
            "events",
            "--trigger-topic",
            "events",
            "--function-selector",
            "function=hello",
        ])
        .ok();
    assert_eq!(
        cells(&server.kelp(&["trigger", "nats", "list"]).ok().stdout)[1],
        ["events", "default", "events", "function=hello"]
    );
    server.kelp(&["trigger", "nats", "delete", "events"]).ok();
    server
        .kelp(&["trigger", "kafka", "create", "x", "--trigger-topic", "t", "--function-selector", "bad key=1"])
        .fails_with("--function-selector");
}

#[test]
fn autoscale_create_list_delete() {
    let server = Server::start();
    server.kelp(&["autoscale", "create", "hello", "--value", "70"]).fails_with("function \"hello\" not found");
    server.deploy("hello", &[]).ok();
    let created = server
        .kelp(&["autoscale", "create", "hello", "--min", "1", "--max", "5", "--metric", "cpu", "--value", "70"])
        .ok();
    assert_eq!(
        created.stderr,
        "Adding autoscaling rule to the function...\nAutoscaling rule for hello submitted for deployment\n"
    );
    let hpa = server.get("fn", "hello").unwrap()["spec"]["horizontalPodAutoscaler"].clone();
    assert_eq!(hpa["apiVersion"], "autoscaling/v2beta1");
    assert_eq!(
        hpa["spec"]["metrics"][0],
        json!({"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}})
    );
    assert_eq!(hpa["metadata"]["labels"], json!({"created-by": "kubeless", "function": "hello"}));
    assert_eq!(
        server.kelp(&["autoscale", "ls"]).ok().stdout,
        "NAME \tNAMESPACE\tTARGET\tMIN\tMAX\tMETRIC\tVALUE\nhello\tdefault  \thello \t1  \t5  \tcpu   \t70   \n"
    );
    server.kelp(&["autoscale", "create", "hello", "--max", "3", "--metric", "qps", "--value", "100"]).ok();
    assert_eq!(
        cells(&server.kelp(&["autoscale", "list"]).ok().stdout)[1],
        ["hello", "default", "hello", "1", "3", "function_calls", "100"]
    );
    let yaml = server.kelp(&["autoscale", "list", "-o", "yaml"]).ok();
    assert!(yaml.stdout.contains("metricName: function_calls"), "{yaml:?}");
    assert!(!yaml.stdout.contains("targetAverageUtilization"), "the old metric is replaced: {yaml:?}");
    server
        .kelp(&["autoscale", "create", "hello", "--min", "0", "--value", "1"])
        .fails_with("--min can't be negative or zero");
    server.kelp(&["autoscale", "delete", "hello"]).ok();
    assert!(server.get("fn", "hello").unwrap()["spec"].get("horizontalPodAutoscaler").is_none());
    server.kelp(&["autoscale", "delete", "hello"]).fails_with("Not found an autoscale definition for hello");
}

const MANIFEST: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: kubeless.io/v1beta1
kind: Function
metadata:
  name: cart
  namespace: shop
  labels: {created-by: kubeless, function: cart}
spec:
  handler: cart.handler
  runtime: nodejs14
  function: "module.exports = { handler: () => 'cart' }"
  function-content-type: text
  deps: '{"dependencies": {"lodash": "4.17.21"}}'
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  currency: EUR
---
apiVersion: kubeless.io/v1beta1
kind: HTTPTrigger
metadata:
  name: cart
  namespace: shop
spec:
  function-name: cart
  host-name: cart.example.com
  gateway: nginx
"#;

#[test]
fn apply_get_and_delete_manifests() {
    let server = Server::start();
    let file = server.write("shop.yaml", MANIFEST);
    let file = file.to_str().unwrap();
    let applied = server.kelp(&["apply", "-f", file]).ok();
    assert_eq!(
        applied.stdout,
        "namespace/shop created\nfunction.kubeless.io/cart created\nconfigmap/settings created\nhttptrigger.kubeless.io/cart created\n"
    );
    let again = server.kelp(&["apply", "-f", file]).ok();
    assert_eq!(
        again.stdout,
        "namespace/shop unchanged\nfunction.kubeless.io/cart unchanged\nconfigmap/settings unchanged\nhttptrigger.kubeless.io/cart unchanged\n"
    );
    let changed = server.kelp_in(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {currency: USD}\n"),
    );
    assert_eq!(changed.ok().stdout, "configmap/settings configured\n");

    let list = server.kelp(&["get", "functions", "-n", "shop"]).ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines[0], "NAME   READY    RUNTIME    AGE");
    assert!(lines[1].starts_with("cart   <none>   nodejs14   "), "{list:?}");
    let ls = server.kelp(&["function", "ls", "-n", "shop"]).ok();
    assert_eq!(
        cells(&ls.stdout)[1],
        ["cart", "shop", "cart.handler", "nodejs14", "lodash: 4.17.21", "0/1 NOT READY"],
        "{ls:?}"
    );
    let one: Value =
        serde_json::from_str(&server.kelp(&["get", "fn", "cart", "-n", "shop", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(one["spec"]["runtime"], "nodejs14");
    let yaml = server.kelp(&["--namespace", "shop", "get", "httptriggers", "-o", "yaml"]).ok();
    assert!(yaml.stdout.starts_with("apiVersion: v1\nitems:\n"), "{yaml:?}");
    assert!(yaml.stdout.contains("host-name: cart.example.com"));
    let other_context = server.kelp(&["--context", "other", "get", "cm", "settings", "-o", "json"]);
    other_context.fails_with("configmap \"settings\" not found in namespace \"team\"");
    server.kelp(&["get", "pods"]).fails_with("unknown kind \"pods\"");
    let empty = server.kelp(&["get", "kinesistriggers"]).ok();
    assert_eq!((empty.stdout.as_str(), empty.stderr.as_str()), ("", "No resources found in default namespace.\n"));

    let deleted = server.kelp(&["delete", "-f", file]).ok();
    assert_eq!(
        deleted.stdout,
        "httptrigger.kubeless.io \"cart\" deleted\nconfigmap \"settings\" deleted\nfunction.kubeless.io \"cart\" deleted\nnamespace \"shop\" deleted\n"
    );
    let again = server.kelp(&["delete", "-f", file, "--ignore-not-found"]);
    assert_eq!((again.code, again.stdout.as_str()), (0, ""), "{again:?}");
    let missing = server.kelp(&["delete", "-f", file]);
    assert_eq!(missing.code, 1, "{missing:?}");
    let lines: Vec<&str> = missing.stderr.lines().collect();
    assert_eq!(lines.len(), 4, "one line per missing object: {missing:?}");
    assert!(lines.iter().all(|l| l.starts_with("kelp: error: ") && l.contains("not found")), "{missing:?}");
}

#[test]
fn bad_manifests_are_refused_before_anything_is_sent() {
    let server = Server::start();
    let bad = server.write(
        "bad.yaml",
        "apiVersion: kubeless.io/v1beta1\nkind: Function\nmetadata: {name: good}\nspec: {handler: a.b, runtime: python3.8}\n---\n\
         apiVersion: kubeless.io/v1beta1\nkind: Function\nmetadata: {name: broken}\nspec: {handler: nodot, runtime: python3.8}\n",
    );
    server.kelp(&["apply", "-f", bad.to_str().unwrap()]).fails_alone_with(
        "bad.yaml (document 2): invalid Function \"broken\": spec.handler: must be \"<module>.<function>\"",
    );
    assert!(server.get("fn", "good").is_none(), "nothing was created");
    let unknown = server.write("deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
    server
        .kelp(&["apply", "-f", unknown.to_str().unwrap()])
        .fails_alone_with("kind Deployment of apps/v1 is not one Kelp handles");
    let broken_yaml = server.write("broken.yaml", "kind: [unterminated\n");
    server.kelp(&["apply", "-f", broken_yaml.to_str().unwrap()]).fails_alone_with("broken.yaml: not valid YAML");
    server
        .kelp_in(
            &["apply", "-n", "elsewhere", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n"),
        )
        .fails_alone_with("pass -n shop");
    server.kelp(&["apply", "-f", "/no/such.yaml"]).fails_alone_with("cannot read /no/such.yaml");
    assert_eq!(server.kelp(&["get", "fn"]).ok().stdout, "");
}

#[test]
fn call_logs_and_top_go_through_the_api_server() {
    let server = Server::start();
    for name in ["hello", "sleepy", "slow", "broken", "idle"] {
        server.deploy(name, &[]).ok();
    }

    let get = server.kelp(&["function", "call", "hello"]).ok();
    let echo: Value = serde_json::from_str(get.stdout.trim_end()).unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/");
    assert_eq!(echo["port"], "http-function-port");
    assert_eq!(echo["authorization"], Value::Null, "the API server's token does not reach the function");
    assert_eq!(echo["event-namespace"], "cli.kubeless.io");
    assert_eq!(echo["event-id"].as_str().unwrap().len(), 16);
    assert!(echo["event-time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(echo["event-type"], Value::Null);

    let post = server.kelp(&["function", "call", "hello", "-d", "{\"it-s\": \"alive\"}"]).ok();
    let echo: Value = serde_json::from_str(post.stdout.trim_end()).unwrap();
    assert_eq!((echo["method"].as_str(), echo["body"].as_str()), (Some("POST"), Some("{\"it-s\": \"alive\"}")));
    assert_eq!(echo["content-type"], "application/json");
    assert_eq!(echo["event-type"], "application/json");
    let text = server.kelp(&["function", "call", "hello", "--data", "hello world"]).ok();
    let echo: Value = serde_json::from_str(text.stdout.trim_end()).unwrap();
    assert_eq!(echo["content-type"], "application/x-www-form-urlencoded");

    server.kelp(&["function", "call", "slow"]).fails_with("Request timeout exceeded");
    let broken = server.kelp(&["function", "call", "broken"]);
    assert_eq!(broken.code, 1);
    assert_eq!(broken.stderr, "Traceback: boom\nkelp: error: function broken answered 500 Internal Server Error\n");
    server
        .kelp(&["function", "call", "idle"])
        .fails_with("cannot call function idle: no endpoints available for service \"idle\" (503)");
    server.kelp(&["function", "call", "ghost"]).fails_with("function \"ghost\" not found in namespace \"default\"");

    let logs = server.kelp(&["function", "logs", "hello"]).ok();
    assert_eq!(logs.stdout, "first line\nsecond line\n");
    assert_eq!(server.kelp(&["function", "logs", "hello", "-f"]).ok().stdout, "first line\nsecond line\n");
    server.kelp(&["function", "logs", "sleepy"]).fails_with("No function pod is running: there is no pod ready");
    server.kelp(&["function", "logs", "idle"]).fails_with("No function pod is running: there is no pod ready");
    server.kelp(&["function", "logs", "ghost"]).fails_with("function \"ghost\" not found");

    let top = server.kelp(&["function", "top"]).ok();
    let rows = cells(&top.stdout);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "NAMESPACE",
            "METHOD",
            "TOTAL_CALLS",
            "TOTAL_FAILURES",
            "TOTAL_DURATION_SECONDS",
            "AVG_DURATION_SECONDS",
            "MESSAGE"
        ]
    );
    assert!(rows.iter().any(|r| r[..6] == ["hello", "default", "GET", "3", "0", "0.3"]), "{top:?}");
    assert!(rows.iter().any(|r| r[..5] == ["hello", "default", "POST", "1", "1"]), "{top:?}");
    assert!(rows.iter().any(|r| r[0] == "slow" && r[7] == "Unable to get function metrics"), "{top:?}");
    let one: Value =
        serde_json::from_str(&server.kelp(&["function", "top", "-f", "hello", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(one[0]["function"], "hello");
    assert_eq!(one[0]["total_calls"], 3.0);
}

#[test]
fn kubeconfig_context_and_connection_errors() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();

    // No kubeconfig at all.
    let mut command = bare_kelp(home.path());
    command.args(["function", "ls"]);
    run(&mut command, None)
        .fails_with("no kubeconfig found: pass --kubeconfig FILE, set $KUBECONFIG, or create ~/.kube/config");

    // $KUBECONFIG, then ~/.kube/config, are used like kubectl.
    let mut command = bare_kelp(home.path());
    command.env("KUBECONFIG", &server.kubeconfig).args(["function", "ls"]);
    run(&mut command, None).ok();
    std::fs::create_dir(home.path().join(".kube")).unwrap();
    std::fs::copy(&server.kubeconfig, home.path().join(".kube/config")).unwrap();
    let mut command = bare_kelp(home.path());
    command.args(["function", "ls"]);
    run(&mut command, None).ok();

    // --context picks another context and its namespace.
    server.kelp(&["--context", "nope", "function", "ls"]).fails_with("context \"nope\" not found in kubeconfig");
    server.kelp(&["--context", "other", "function", "deploy", "x", "--runtime-image", "me/x:1"]).fails_with("team");

    // A server that is not there, and a wrong token.
    let down = server.write("down", &kubeconfig_text("http://127.0.0.1:9", TOKEN));
    let mut command = bare_kelp(server.dir.path());
    command.arg("--kubeconfig").arg(&down).args(["function", "ls"]);
    run(&mut command, None)
        .fails_with("cannot connect to the API server at http://127.0.0.1:9 (context \"kelp\"): connection refused");
    let wrong = server.write("wrong", &kubeconfig_text(&server.url, "not-the-token"));
    let mut command = bare_kelp(server.dir.path());
    command.arg("--kubeconfig").arg(&wrong).args(["function", "ls"]);
    run(&mut command, None).fails_with("refused the credentials");
}

#[test]
fn server_config_version_and_completion() {
    let server = Server::start();
    let config = server.kelp(&["get-server-config"]).ok();
    assert!(config.stderr.starts_with("Current Server Config:\nWhere they come from:\n"), "{config:?}");
    assert!(config.stderr.contains("  python: built into Kelp"), "{config:?}");
    assert!(config.stdout.starts_with("Supported Runtimes are: "), "{config:?}");

    let kubeless_config = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeless-config", "namespace": "kubeless"},
        "data": {"runtime-images": "[{\"ID\": \"python\", \"versions\": [{\"name\": \"python38\", \"version\": \"3.8\"}]}, {\"ID\": \"nodejs\", \"versions\": [{\"name\": \"node14\", \"version\": \"14\"}]}]"}}"#;
    server.kelp_in(&["apply", "-f", "-"], Some(kubeless_config)).ok();
    assert_eq!(server.kelp(&["get-server-config"]).ok().stdout, "Supported Runtimes are: python3.8, nodejs14\n");
    let code = server.write("old.py", "def foo(event, context):\n    return 1\n");
    server
        .kelp(&[
            "function",
            "deploy",
            "old",
            "--runtime",
            "python3.6",
            "--handler",
            "old.foo",
            "-f",
            code.to_str().unwrap(),
        ])
        .fails_with("Invalid runtime: python3.6. Supported runtimes are: python3.8, nodejs14");
    server.deploy("new", &[]).ok();

    assert_eq!(server.kelp(&["version"]).ok().stdout, format!("Kelp version: {}\n", env!("CARGO_PKG_VERSION")));
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = server.kelp(&["completion", shell]).ok();
        assert!(script.stdout.contains("kelp"), "{shell}");
    }
    let help = server.kelp(&["function", "deploy", "--help"]).ok();
    for flag in
        ["--runtime", "--from-file", "--servicePort", "--image-pull-policy", "--node-selectors", "--dryrun", "--wait"]
    {
        assert!(help.stdout.contains(flag), "{flag} in {help:?}");
    }
}

/// A controller writing a Function's status (here every 2 ms) does not fail a concurrent
/// `function update`: the CLI sends its change again over the newer version.
#[test]
fn update_retries_over_concurrent_status_writes() {
    let server = Server::start();
    assert_eq!(server.deploy("busy", &[]).code, 0);
    let client = server.client();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let api: kube::Api<kelp_api::Function> = kube::Api::namespaced(client.clone(), "default");
        server.runtime.spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let status = json!({"status": {"readyReplicas": n % 2}});
                let _ = api
                    .patch_status("busy", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&status))
                    .await;
            }
            n
        })
    };
    for i in 0..10 {
        let run = server.kelp(&["function", "update", "busy", "--env", &format!("ROUND={i}")]);
        assert_eq!(run.code, 0, "update {i} while the status changes: {run:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = server.runtime.block_on(writer).unwrap();
    assert!(writes > 10, "the status was written concurrently ({writes} writes)");
    let function = server.get("function", "busy").unwrap();
    let env = &function["spec"]["deployment"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env.to_string().contains("ROUND") && env.to_string().contains("\"9\""), "the last update won: {env}");
}

// ---------------------------------------------------------------------------------------------
// Every spelling of every Kubeless flag
// ---------------------------------------------------------------------------------------------

/// One flag of a kubeless command, as its `--help` lists it.
#[derive(Debug)]
struct KubelessFlag {
    short: Option<char>,
    long: String,
    /// pflag's type name (`string`, `int32`, `stringSlice`, ...); `None` for a bool.
    kind: Option<String>,
}

/// The aliases, whether it takes a name, and the flags of `kubeless <path>`, read from the real
/// kubeless CLI's `--help` (cobra's layout).
fn kubeless_help(path: &[&str]) -> (Vec<String>, bool, Vec<KubelessFlag>) {
    let out = Command::new(kelp_testkit::kubeless_bin()).args(path).arg("--help").env("HOME", "/nonexistent").output();
    let text = String::from_utf8(out.unwrap().stdout).unwrap();
    let mut aliases = Vec::new();
    let mut section = "";
    let mut takes_name = false;
    let mut flags = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let line = line.trim();
        match section {
            "Usage" => takes_name |= line.contains('<'),
            "Aliases" => aliases = line.split(", ").skip(1).map(str::to_owned).collect(),
            "Flags" => {
                let spelling = line.split("  ").next().unwrap();
                let (short, rest) = match spelling.strip_prefix('-').filter(|s| !s.starts_with('-')) {
                    Some(s) => (s.chars().next(), s.split_once(", ").unwrap().1),
                    None => (None, spelling),
                };
                let mut words = rest.trim_start_matches("--").split(' ');
                let long = words.next().unwrap().to_owned();
                if long != "help" {
                    flags.push(KubelessFlag { short, long, kind: words.next().map(str::to_owned) });
                }
            }
            _ => {}
        }
    }
    assert!(text.contains("Usage:"), "kubeless {path:?} --help printed no usage: {text}");
    (aliases, takes_name, flags)
}

/// A value `kelp` must accept for the flag (what a Kubeless user would write).
fn a_value(flag: &KubelessFlag) -> &'static str {
    match (flag.long.as_str(), flag.kind.as_deref()) {
        ("out" | "output", _) => "json",
        ("metric", _) => "qps",
        ("gateway", _) => "traefik",
        ("image-pull-policy", _) => "IfNotPresent",
        ("label" | "env" | "node-selectors", _) => "a=b,c:d",
        ("function-selector", _) => "a=b",
        (_, Some("int32" | "int64")) => "2",
        _ => "x",
    }
}

/// `kelp` accepts every command, alias and flag spelling (short, long, `--flag=value`, and a
/// bool's `--flag`, `--flag=false` and pflag's `--flag=t`) of the original kubeless CLI, checked
/// against that CLI's own `--help` (its KinesisTrigger commands aside). `--help` last makes kelp
/// parse the whole line, refusing any flag or value it does not know, without running anything.
#[test]
fn every_kubeless_flag_spelling_is_accepted() {
    let home = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["function", "deploy"],
        &["function", "update"],
        &["function", "delete"],
        &["function", "list"],
        &["function", "describe"],
        &["function", "call"],
        &["function", "logs"],
        &["function", "top"],
        &["trigger", "http", "create"],
        &["trigger", "http", "update"],
        &["trigger", "http", "delete"],
        &["trigger", "http", "list"],
        &["trigger", "cronjob", "create"],
        &["trigger", "cronjob", "update"],
        &["trigger", "cronjob", "delete"],
        &["trigger", "cronjob", "list"],
        &["trigger", "kafka", "create"],
        &["trigger", "kafka", "update"],
        &["trigger", "kafka", "delete"],
        &["trigger", "kafka", "list"],
        &["trigger", "nats", "create"],
        &["trigger", "nats", "update"],
        &["trigger", "nats", "delete"],
        &["trigger", "nats", "list"],
        &["trigger", "nats", "publish"],
        &["topic", "create"],
        &["topic", "delete"],
        &["topic", "list"],
        &["topic", "publish"],
        &["autoscale", "create"],
        &["autoscale", "list"],
        &["autoscale", "delete"],
        &["get-server-config"],
        &["version"],
    ];
    let mut refused = Vec::new();
    let mut tried = 0;
    for path in commands {
        let (aliases, takes_name, flags) = kubeless_help(path);
        let parent = &path[..path.len() - 1];
        // `function describe` declares `ls` too, which cobra resolves to `list`: not a spelling.
        let aliases: Vec<String> =
            aliases.into_iter().filter(|a| !(path.ends_with(&["describe"]) && a == "ls")).collect();
        let mut spellings: Vec<Vec<String>> = Vec::new();
        for alias in &aliases {
            spellings.push(vec![alias.clone()]);
        }
        for flag in &flags {
            let mut forms = Vec::new();
            match &flag.kind {
                None => {
                    for value in ["", "=true", "=false", "=t", "=0"] {
                        forms.push(vec![format!("--{}{value}", flag.long)]);
                    }
                    if let Some(short) = flag.short {
                        forms.push(vec![format!("-{short}")]);
                    }
                }
                Some(_) => {
                    let value = a_value(flag);
                    forms.push(vec![format!("--{}", flag.long), value.to_owned()]);
                    forms.push(vec![format!("--{}={value}", flag.long)]);
                    if let Some(short) = flag.short {
                        forms.push(vec![format!("-{short}"), value.to_owned()]);
                        forms.push(vec![format!("-{short}{value}")]);
                    }
                }
            }
            spellings.extend(forms.into_iter().map(|form| [vec![path.last().unwrap().to_string()], form].concat()));
        }
        for spelling in spellings {
            let mut args: Vec<String> = parent.iter().map(|s| s.to_string()).collect();
            // An alias replaces the command's name; a flag follows it.
            let (command, rest) = spelling.split_first().unwrap();
            args.push(command.clone());
            if takes_name {
                args.push("x".into());
            }
            args.extend(rest.iter().cloned());
            args.push("--help".into());
            tried += 1;
            let run = run(bare_kelp(home.path()).args(&args), None);
            if run.code != 0 || !run.stdout.contains("Usage:") {
                refused.push(format!("kelp {}: {}", args.join(" "), run.stderr.trim()));
            }
        }
    }
    assert!(refused.is_empty(), "{} of {tried} spellings refused:\n{}", refused.len(), refused.join("\n"));
    assert!(tried > 300, "only {tried} spellings tried");
}
