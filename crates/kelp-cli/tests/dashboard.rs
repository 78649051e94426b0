//! The web dashboard end to end: a real `kelp up`, a real `kelp dashboard` in front of it, and
//! (in `browser_drives_every_action`) headless Chromium driven by playwright-core through every
//! action a user takes (`dashboard/browser.cjs`), with the axe-core check on each page.

#[path = "common/dashboard.rs"]
mod dashboard;
#[allow(dead_code)] // The harness of `up.rs`; these tests use part of it.
#[path = "up/support.rs"]
mod support;

use std::io::Write as _;
use std::process::Stdio;

use dashboard::{Dashboard, run_browser_script, sign_in};
use kelp_brokers::{Kafka, Nats};
use serde_json::{Value, json};
use support::{DEADLINE, Platform, eventually, request};

/// The browser never gets an open API: a request needs the session cookie of this start's login
/// token, a Host naming the listener, and for a write the listener's own Origin.
#[test]
fn the_api_needs_the_login_cookie_the_host_and_the_origin() {
    let platform = Platform::start(&[]);
    let dashboard = Dashboard::start_with(&platform.kubeconfig, &[]);
    let port = dashboard.port;
    let host = format!("127.0.0.1:{port}");
    let functions = "/apis/kubeless.io/v1beta1/namespaces/default/functions";

    // The page itself is served, carried in the binary, with a policy allowing nothing from elsewhere.
    let page = request(port, "GET", "/ui/", &[], "").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<script type="module" src="app.js">"#), "{}", page.body);

    let unsigned = request(port, "GET", functions, &[], "").unwrap();
    assert_eq!(unsigned.status, 401, "{}", unsigned.body);
    let wrong = request(port, "GET", "/ui/login?token=0123", &[], "").unwrap();
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    let cookie = dashboard.sign_in();
    let listed = request(port, "GET", functions, &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains(r#""kind":"FunctionList""#), "{}", listed.body);

    // DNS rebinding: another name for this address is refused, cookie or not.
    let rebound = request(port, "GET", functions, &[("Cookie", &cookie), ("Host", "evil.example:80")], "").unwrap();
    assert_eq!(rebound.status, 403, "{}", rebound.body);

    // A write without the listener's Origin (another site's form or script) is refused.
    let body = r#"{"apiVersion":"kubeless.io/v1beta1","kind":"Function","metadata":{"name":"x"},"spec":{}}"#;
    for origin in [None, Some("http://evil.example")] {
        let mut headers = vec![("Cookie", cookie.as_str()), ("Content-Type", "application/json")];
        headers.extend(origin.map(|o| ("Origin", o)));
        let refused = request(port, "POST", functions, &headers, body).unwrap();
        assert_eq!(refused.status, 403, "{origin:?}: {}", refused.body);
    }
    // With it, the API server answers (here its own 422: the spec has no handler).
    let origin = format!("http://{host}");
    let headers = [("Cookie", cookie.as_str()), ("Content-Type", "application/json"), ("Origin", origin.as_str())];
    let invalid = request(port, "POST", functions, &headers, body).unwrap();
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    assert!(invalid.body.contains(r#""field":"spec.handler""#), "{}", invalid.body);

    // Nothing else of kelp up is reachable through the dashboard.
    assert_eq!(request(port, "GET", "/default/hello/", &[("Cookie", &cookie)], "").unwrap().status, 404);
}

/// Every action of the dashboard in headless Chromium: list, create with a field error shown next
/// to the field, call, a live log line, edit (a new generation), the list following a watch,
/// cron, HTTP, NATS and Kafka triggers (on real brokers: the NATS and Kafka ones shown Ready once
/// subscribed, a Kafka message reaching the function, its lag shown), an environment variable
/// from a Secret shown without its value, delete, and the axe-core check of each page
/// (`dashboard/browser.cjs`).
#[test]
fn browser_drives_every_action() {
    let kafka = Kafka::shared();
    let nats = Nats::shared();
    let platform = Platform::start(&["--kafka-brokers", &kafka.bootstrap(), "--nats-url", &nats.url()]);
    let dashboard = Dashboard::start_with(&platform.kubeconfig, &[]);
    let kubeconfig = platform.kubeconfig.display().to_string();
    run_browser_script(
        "browser.cjs",
        &[
            ("KELP_DASHBOARD_URL", dashboard.login.as_str()),
            ("KELP_BIN", env!("CARGO_BIN_EXE_kelp")),
            ("KELP_KUBECONFIG", kubeconfig.as_str()),
            ("KELP_RUNTIME", "python3.11"),
            ("KELP_KAFKA_BROKERS", kafka.bootstrap().as_str()),
        ],
    );
}

/// On a cluster the page acts with the user's own credentials and RBAC: a user who may only read
/// Functions in one namespace lists them through the dashboard, and the API server (not the
/// dashboard) refuses them a write and a Secret.
#[test]
fn on_a_cluster_the_users_rbac_decides() {
    let plane = kelp_testenv::ControlPlane::shared();
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        let mut command = plane.kubectl();
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ns = format!("dashboard-{}", std::process::id());
    kubectl(&["create", "namespace", &ns], None);
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": ns},
         "rules": [{"apiGroups": ["kubeless.io"], "resources": ["functions"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]},
        {"apiVersion": "kubeless.io/v1beta1", "kind": "Function", "metadata": {"name": "listed", "namespace": ns},
         "spec": {"runtime": "python3.11", "handler": "h.f", "function": "def f(e, c):\n    return 1\n",
                  "function-content-type": "text", "deps": "", "timeout": "180"}},
    ]});
    kubectl(&["apply", "-f", "-"], Some(&objects.to_string()));
    let token = kubectl(&["create", "token", "reader", "-n", &ns, "--duration", "1h"], None);
    let admin: Value = serde_saphyr::from_str(&std::fs::read_to_string(plane.kubeconfig()).unwrap()).unwrap();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "plane", "cluster": admin["clusters"][0]["cluster"].clone()}],
        "users": [{"name": "reader", "user": {"token": token.trim()}}],
        "contexts": [{"name": "reader", "context": {"cluster": "plane", "user": "reader", "namespace": ns}}],
        "current-context": "reader",
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("reader.kubeconfig");
    std::fs::write(&kubeconfig, config.to_string()).unwrap();

    let dashboard = Dashboard::start_with(&kubeconfig, &[]);
    let port = dashboard.port;
    let cookie = dashboard.sign_in();
    // The page starts in the context's namespace.
    let page = request(port, "GET", "/ui/", &[], "").unwrap();
    assert!(page.body.contains(&format!(r#"<meta name="kelp-namespace" content="{ns}">"#)), "{}", page.body);

    let functions = format!("/apis/kubeless.io/v1beta1/namespaces/{ns}/functions");
    let listed = request(port, "GET", &format!("{functions}?limit=1"), &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains(r#""name":"listed""#), "{}", listed.body);

    let origin = format!("http://127.0.0.1:{port}");
    let write = [("Cookie", cookie.as_str()), ("Content-Type", "application/json"), ("Origin", origin.as_str())];
    let body = r#"{"apiVersion":"kubeless.io/v1beta1","kind":"Function","metadata":{"name":"x"},"spec":{}}"#;
    let refused = request(port, "POST", &functions, &write, body).unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("system:serviceaccount:") && refused.body.contains("cannot create"),
        "{}",
        refused.body
    );
    let secrets =
        request(port, "GET", &format!("/api/v1/namespaces/{ns}/secrets"), &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(secrets.status, 403, "{}", secrets.body);
}

/// The page reads the log of an instance that ended (replaced by a new generation) by its pod's
/// name, as `previous` logs are read on a cluster: kelp up keeps the last ended instances' logs
/// of each function and serves them.
#[test]
fn an_ended_instances_log_stays_readable_by_its_pod_name() {
    let platform = Platform::start(&[]);
    let code = |version: &str| {
        format!("def hello(event, context):\n    print('{version}-saw', flush=True)\n    return '{version}'\n")
    };
    platform.deploy("ended", "python3.11", "ended.py", &code("v1"), "ended.hello", &[]);
    platform.call_until("ended", |body| body == "v1");
    let pods = "/api/v1/namespaces/default/pods?labelSelector=function%3Dended";
    let names = |list: &Value| -> Vec<String> {
        list["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_owned()).collect()
    };
    let first = names(&platform.get_json(pods)).pop().expect("a pod of the first generation");

    let v2 = platform.write("ended-v2.py", &code("v2"));
    platform.kelp(&["function", "update", "ended", "--from-file", &v2]).ok();
    platform.call_until("ended", |body| body == "v2");
    eventually("the first generation's instance ended", DEADLINE, || {
        let now = names(&platform.get_json(pods));
        if now.contains(&first) { Err(format!("{now:?}")) } else { Ok(()) }
    });
    let log = platform.api("GET", &format!("/api/v1/namespaces/default/pods/{first}/log"), &[], "").unwrap();
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(log.body.contains("v1-saw"), "{}", log.body);
    // A follow of an ended instance's log ends at once with what it holds.
    let followed =
        platform.api("GET", &format!("/api/v1/namespaces/default/pods/{first}/log?follow=true"), &[], "").unwrap();
    assert!(followed.body.contains("v1-saw"), "{}", followed.body);
}

/// `kelp up --dashboard ADDR` serves the dashboard itself once the platform is ready, and says
/// where at start-up.
/// The login URL `kelp up` printed for its dashboard, once it has.
fn printed_login(platform: &Platform) -> String {
    eventually("kelp up prints the dashboard's login URL", DEADLINE, || {
        let text = platform.stderr_text();
        text.lines()
            .find(|l| l.starts_with("kelp up: the dashboard of context kelp-local"))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
            .map(str::to_owned)
            .ok_or(text)
    })
}

/// `kelp up` serves the dashboard without being asked, and `/ui/` on its own port leads there
/// (the login URL too, token and all); `--no-dashboard` serves none, and says so.
#[test]
fn kelp_up_serves_the_dashboard_by_default_and_its_ui_path_leads_there() {
    let platform = Platform::start(&[]);
    let login = printed_login(&platform);
    let port: u16 = login.split(':').nth(2).and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok()).unwrap();
    let said = platform.stderr_text();
    assert!(said.contains(&format!("the web dashboard at http://127.0.0.1:{}/ui/", platform.port)), "{said}");
    let path = &login[login.find("/ui/").unwrap()..];
    for (asked, led_to) in [("/ui/", "/ui/".to_owned()), ("/ui", "/ui".to_owned()), (path, path.to_owned())] {
        let answer = request(platform.port, "GET", asked, &[], "").unwrap();
        assert_eq!(answer.status, 303, "{asked}: {}", answer.body);
        let location = answer.header("location").unwrap_or_default();
        assert_eq!(location, format!("http://127.0.0.1:{port}{led_to}"), "{asked}");
    }
    // Followed, the login signs in on the dashboard's listener, which then lists functions.
    let cookie = sign_in(port, &login);
    let functions = "/apis/kubeless.io/v1beta1/namespaces/default/functions";
    let listed = request(port, "GET", functions, &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(listed.status, 200, "{}", listed.body);

    let without = Platform::start(&["--no-dashboard"]);
    let answer = request(without.port, "GET", "/ui/", &[], "").unwrap();
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(answer.body.contains("kelp dashboard"), "{}", answer.body);
    assert!(without.stderr_text().contains("no web dashboard in this start"), "{}", without.stderr_text());
}

#[test]
fn kelp_up_serves_the_dashboard_with_its_flag() {
    let platform = Platform::start(&["--dashboard", "127.0.0.1:0"]);
    let login = printed_login(&platform);
    let port: u16 = login.split(':').nth(2).and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok()).unwrap();
    let cookie = sign_in(port, &login);
    let functions = "/apis/kubeless.io/v1beta1/namespaces/default/functions";
    let listed = request(port, "GET", functions, &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains(r#""kind":"FunctionList""#), "{}", listed.body);

    // Loopback only, and only with the kelp-local context.
    platform.kelp(&["dashboard", "--listen", "0.0.0.0:0"]).fails_with("loopback address only");
    let data = platform.write("elsewhere", "");
    platform
        .kelp(&["up", "--no-kubeconfig", "--dashboard", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .fails_with("--no-kubeconfig");
}
