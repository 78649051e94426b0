//! The real kubectl against the API server.
//!
//! kubectl comes from `KELP_KUBECTL` (a path) or `scripts/k8s-bins kubectl` (which builds it once
//! into a cache and prints its directory); without one these tests fail.
//!
//! The servers here have no token: kubectl (client-go's clientcmd) never sends credentials to an
//! `http://` server (`IsConfigTransportTLS`), so token authentication with kubectl needs TLS.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::{Server, fixture};

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    /// kubectl for `server`.
    fn new(server: &Server) -> Self {
        Self {
            binary: kelp_testkit::kubectl_bin(),
            kubeconfig: server.kubeconfig(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"))
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().await.unwrap();
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(run.ok, "kubectl {args:?} failed:\n{}{}", run.stdout, run.stderr);
        run.stdout
    }

    /// Runs and expects failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(!run.ok, "kubectl {args:?} should have failed:\n{}", run.stdout);
        run.stderr
    }

    /// Writes `content` to a file in the temporary home and returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_string_lossy().into_owned()
    }
}

fn manifest(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: kubeless.io/v1beta1\nkind: Function\nmetadata:\n  name: {name}\n  labels:\n    foo: bar\n\
         spec:\n  handler: handler.hello\n  runtime: nodejs14\n  function: \"module.exports = {{}}\"\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_replaces_and_deletes_functions() {
    let server = Server::start(None).await;
    let k = Kubectl::new(&server);
    assert!(k.ok(&["version"]).await.contains("Server Version: v1.37.2-kelp"));
    let resources = k.ok(&["api-resources"]).await;
    assert!(resources.contains("functions") && resources.contains("kubeless.io/v1beta1"), "{resources}");

    let hello = fixture("function-minimal-text.yaml");
    let hello = hello.to_str().unwrap();
    assert_eq!(k.ok(&["apply", "-f", hello]).await.trim(), "function.kubeless.io/hello created");
    let second = k.file("second.yaml", &manifest("second", ""));
    assert_eq!(k.ok(&["apply", "-f", &second]).await.trim(), "function.kubeless.io/second created");

    let table = k.ok(&["get", "functions"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "RUNTIME", "AGE"], "{table}");
    assert!(table.lines().any(|l| l.starts_with("hello") && l.contains("python3.8")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("second") && l.contains("nodejs14")), "{table}");
    let wide = k.ok(&["get", "functions", "-o", "wide"]).await;
    assert!(wide.contains("HANDLER") && wide.contains("test.foo"), "{wide}");

    let yaml = k.ok(&["get", "function", "hello", "-o", "yaml"]).await;
    for expected in ["kind: Function", "handler: test.foo", "resourceVersion:", "uid:", "generation: 1"] {
        assert!(yaml.contains(expected), "{expected} missing from:\n{yaml}");
    }
    let selected = k.ok(&["get", "functions", "-l", "foo=bar", "-o", "name"]).await;
    assert_eq!(selected.trim(), "function.kubeless.io/second");
    let in_set = k.ok(&["get", "functions", "-l", "function in (hello,other)", "-o", "name"]).await;
    assert_eq!(in_set.trim(), "function.kubeless.io/hello");

    // Apply again with a change; then a replace from the stale copy is refused.
    let stale = k.file("stale.yaml", &yaml.replace("timeout: \"180\"", "timeout: \"5\""));
    let changed = std::fs::read_to_string(fixture("function-minimal-text.yaml"))
        .unwrap()
        .replace("timeout: \"180\"", "timeout: \"60\"");
    let changed = k.file("changed.yaml", &changed);
    assert_eq!(k.ok(&["apply", "-f", &changed]).await.trim(), "function.kubeless.io/hello configured");
    assert!(k.ok(&["get", "function", "hello", "-o", "yaml"]).await.contains("generation: 2"));
    let conflict = k.fails(&["replace", "-f", &stale]).await;
    assert!(conflict.contains("Conflict") && conflict.contains("the object has been modified"), "{conflict}");

    // Invalid objects are refused with the field named.
    let invalid = k.file("invalid.yaml", &manifest("invalid", "").replace("handler.hello", "nodot"));
    let refused = k.fails(&["apply", "-f", &invalid]).await;
    assert!(refused.contains("spec.handler") && refused.contains("invalid"), "{refused}");
    let unknown = k.file("unknown.yaml", &manifest("unknown", "  handlr: x.y\n"));
    let refused = k.fails(&["apply", "-f", &unknown]).await;
    assert!(refused.contains("unknown field \"spec.handlr\""), "{refused}");
    let refused = k.fails(&["apply", "-n", "nope", "-f", &second]).await;
    assert!(refused.contains("namespaces \"nope\" not found"), "{refused}");

    assert_eq!(
        k.ok(&["delete", "function", "hello"]).await.trim(),
        "function.kubeless.io \"hello\" deleted from default namespace"
    );
    let gone = k.fails(&["get", "function", "hello"]).await;
    assert!(gone.contains("functions.kubeless.io \"hello\" not found"), "{gone}");
    assert!(k.run(&["get", "pods"]).await.stderr.contains("No resources found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_sees_a_change() {
    let server = Server::start(None).await;
    let k = Kubectl::new(&server);
    let file = k.file("w.yaml", &manifest("watched", ""));
    k.ok(&["apply", "-f", &file]).await;

    let mut child = k.command(&["get", "functions", "--watch"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line =
        async || tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(next_line().await.starts_with("NAME"));
    let row = next_line().await;
    assert!(row.starts_with("watched") && row.contains("nodejs14"), "{row}");

    k.ok(&["patch", "function", "watched", "--type", "merge", "-p", r#"{"spec":{"runtime":"python3.9"}}"#]).await;
    let changed = next_line().await;
    assert!(changed.starts_with("watched") && changed.contains("python3.9"), "{changed}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_namespaces_secrets_and_configmaps() {
    let server = Server::start(None).await;
    let k = Kubectl::new(&server);
    // These kubectl commands send protobuf bodies.
    assert_eq!(k.ok(&["create", "namespace", "team-a"]).await.trim(), "namespace/team-a created");
    let namespaces = k.ok(&["get", "namespaces"]).await;
    assert!(namespaces.lines().any(|l| l.starts_with("team-a") && l.contains("Active")), "{namespaces}");
    assert!(namespaces.contains("kubeless") && namespaces.contains("default"));
    assert_eq!(
        k.ok(&["create", "secret", "generic", "creds", "--from-literal=token=abc", "-n", "team-a"]).await.trim(),
        "secret/creds created"
    );
    assert_eq!(k.ok(&["get", "secret", "creds", "-n", "team-a", "-o", "jsonpath={.data.token}"]).await, "YWJj");
    assert_eq!(
        k.ok(&["create", "configmap", "cfg", "--from-literal=k=v", "-n", "team-a"]).await.trim(),
        "configmap/cfg created"
    );
    let secrets = k.ok(&["get", "secrets", "-n", "team-a"]).await;
    assert!(secrets.lines().any(|l| l.starts_with("creds") && l.contains("Opaque")), "{secrets}");
    let file = k.file("f.yaml", &manifest("in-team", ""));
    k.ok(&["apply", "-n", "team-a", "-f", &file]).await;

    assert_eq!(k.ok(&["delete", "namespace", "team-a"]).await.trim(), "namespace \"team-a\" deleted");
    assert!(
        k.run(&["get", "secrets,configmaps,functions", "-n", "team-a"]).await.stderr.contains("No resources found")
    );
}

/// `kubectl get --chunk-size` pages through the list (`limit` and `continue` requests) and
/// shows every object once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_in_chunks() {
    let server = Server::start(None).await;
    let k = Kubectl::new(&server);
    let mut files = Vec::new();
    for name in ["f1", "f2", "f3", "f4", "f5"] {
        files.push(k.file(&format!("{name}.yaml"), &manifest(name, "")));
    }
    for file in &files {
        k.ok(&["apply", "-f", file]).await;
    }
    let run = k.run(&["get", "functions", "--chunk-size=2", "-v=6"]).await;
    assert!(run.ok, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(rows, ["f1", "f2", "f3", "f4", "f5"], "{}", run.stdout);
    assert_eq!(run.stdout.matches("NAME").count(), 1, "one header: {}", run.stdout);
    let requests: Vec<&str> = run.stderr.lines().filter(|l| l.contains("/functions?")).collect();
    assert_eq!(requests.len(), 3, "three pages of at most 2: {requests:#?}");
    assert!(requests.iter().all(|r| r.contains("limit=2")), "{requests:#?}");
    assert_eq!(requests.iter().filter(|r| r.contains("continue=")).count(), 2, "{requests:#?}");

    let named = k.ok(&["get", "functions", "-l", "foo=bar", "--chunk-size=1", "-o", "name"]).await;
    assert_eq!(named.lines().count(), 5, "{named}");
}
