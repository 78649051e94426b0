//! The platform end to end: real `kelp-runtime` processes behind the gateway.

use crate::support::{SERIAL, config, deployment, eventually, get, sample, scaling, send, serve, spec, text_spec};
use futures_util::StreamExt;
use http::StatusCode;
use kelp_local::{EVENT_NAMESPACE, Phase, Platform, Route};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

const HELLO_PY: &str = "def hello(event, context):\n    return 'hello from python'\n";
const HELLO_JS: &str = "module.exports = { hello: (event, context) => 'hello from node' };\n";

fn platform(prewarm: usize) -> (Platform, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Platform::new(config(dir.path(), prewarm)).unwrap(), dir)
}

fn python(handler: &str, code: &str) -> kelp_api::FunctionSpec {
    text_spec("python3", handler, code)
}

/// Whether a process exists (and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// `pid` and all its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while let Some(&parent) = tree.get(i) {
        // Children are listed per thread that started them.
        let tasks = std::fs::read_dir(format!("/proc/{parent}/task")).into_iter().flatten().flatten();
        for task in tasks {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            tree.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    tree
}

#[tokio::test]
async fn python_and_node_functions_answer_through_the_gateway() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    platform.deploy(deployment("hello-py", python("hello.hello", HELLO_PY), Default::default())).await.unwrap();
    platform
        .deploy(deployment("hello-js", text_spec("nodejs20", "handler.hello", HELLO_JS), Default::default()))
        .await
        .unwrap();

    let py = get(&format!("{}/default/hello-py/", served.base)).await;
    assert_eq!((py.status, py.body.as_str()), (StatusCode::OK, "hello from python"));
    let js = get(&format!("{}/default/hello-js/some/path?x=1", served.base)).await;
    assert_eq!((js.status, js.body.as_str()), (StatusCode::OK, "hello from node"));

    let missing = get(&format!("{}/default/nope/", served.base)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("default/nope"), "{}", missing.body);
    assert_eq!(get(&format!("{}/", served.base)).await.status, StatusCode::NOT_FOUND);

    let status = platform.status("default", "hello-py").unwrap();
    assert!(status.ready && status.ready_instances == 1, "{status:?}");
    platform.shutdown().await;
}

const ECHO_PY: &str = r#"
def echo(event, context):
    request = event["extensions"]["request"]
    return {
        "event-id": event["event-id"], "event-time": event["event-time"],
        "event-type": event["event-type"], "event-namespace": event["event-namespace"],
        "path": request["path"], "url": request["url"], "method": request["method"],
        "host": request["headers"].get("host"),
        "data": event["data"].decode() if isinstance(event["data"], bytes) else event["data"],
    }
"#;

#[tokio::test]
async fn the_gateway_sets_event_headers_and_follows_routes() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    platform.deploy(deployment("echo", python("echo.echo", ECHO_PY), Default::default())).await.unwrap();

    let reply = get(&format!("{}/default/echo/a/b?q=1", served.base)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let event: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(event["event-namespace"], EVENT_NAMESPACE);
    assert_eq!(event["event-type"], "application/x-www-form-urlencoded");
    assert_eq!(event["event-id"].as_str().unwrap().len(), 16, "11 random bytes in base64url: {event}");
    let time = event["event-time"].as_str().unwrap();
    assert!(time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "RFC 3339 UTC: {time}");
    assert_eq!((event["path"].as_str(), event["url"].as_str()), (Some("/a/b"), Some("/a/b?q=1")));

    let reply = send(
        "POST",
        &format!("{}/default/echo/", served.base),
        &[("content-type", "application/json"), ("event-id", "mine"), ("event-namespace", "cli.kubeless.io")],
        r#"{"it-s": "alive"}"#,
    )
    .await;
    let event: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(event["event-id"], "mine", "the caller's headers are kept");
    assert_eq!(event["event-namespace"], "cli.kubeless.io");
    assert_eq!(event["event-type"], "application/json");
    assert_eq!(event["data"], json!({"it-s": "alive"}));
    assert_eq!(event["method"], "POST");

    let route = |host: Option<&str>, prefix: &str, function: &str, rewrite_target: Option<&str>| Route {
        host: host.map(str::to_owned),
        path_prefix: prefix.into(),
        namespace: "default".into(),
        function: function.into(),
        rewrite_target: rewrite_target.map(str::to_owned),
    };
    platform.set_routes(vec![
        route(None, "/api", "echo", None),
        route(Some("fn.example.com"), "/api/deeper", "nope", None),
        route(Some("rewritten.example.com"), "/api", "echo", Some("/")),
    ]);
    let routed = get(&format!("{}/api/x", served.base)).await;
    let event: Value = serde_json::from_str(&routed.body).unwrap();
    assert_eq!(event["path"], "/api/x", "routes without a rewrite target forward the whole path");
    let rewritten =
        send("GET", &format!("{}/api/x/y?q=1", served.base), &[("host", "rewritten.example.com")], "").await;
    let event: Value = serde_json::from_str(&rewritten.body).unwrap();
    assert_eq!((event["path"].as_str(), event["url"].as_str()), (Some("/"), Some("/?q=1")), "rewritten, query kept");
    let other_host = send("GET", &format!("{}/api/deeper/y", served.base), &[("host", "other.example.com")], "").await;
    assert_eq!(other_host.status, StatusCode::OK, "the host-specific route does not match another host");
    let longest = send("GET", &format!("{}/api/deeper/y", served.base), &[("host", "FN.example.com:80")], "").await;
    assert_eq!(longest.status, StatusCode::NOT_FOUND, "the longest prefix (for its host) wins: {}", longest.body);

    let proxied = platform
        .proxy(
            "default",
            "echo",
            http::Request::get("/via/proxy").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap(),
        )
        .await;
    assert_eq!(proxied.status(), StatusCode::OK);
    platform.shutdown().await;
}

#[tokio::test]
async fn an_update_switches_traffic_without_failing_a_request() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    let v = |n: u32| python("v.v", &format!("def v(event, context):\n    return 'v{n}'\n"));
    let scale = scaling(1, 3, MINUTE);
    platform.deploy(deployment("rolling", v(1), scale)).await.unwrap();
    assert_eq!(get(&format!("{}/default/rolling/", served.base)).await.body, "v1");

    let url = format!("{}/default/rolling/", served.base);
    let (failures, saw_v2, stop) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (url, failures, saw_v2, stop) = (url.clone(), failures.clone(), saw_v2.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut sent = 0;
            while !stop.load(Ordering::Acquire) {
                let reply = send("GET", &url, &[], "").await;
                sent += 1;
                match (reply.status, reply.body.as_str()) {
                    (StatusCode::OK, "v2") => saw_v2.store(true, Ordering::Release),
                    (StatusCode::OK, "v1") => {}
                    other => {
                        eprintln!("failed request during the update: {other:?}");
                        failures.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    platform.deploy(deployment("rolling", v(2), scale)).await.unwrap();
    eventually("the new code answers", MINUTE, || saw_v2.load(Ordering::Acquire)).await;
    eventually("the old instances are stopped", MINUTE, || {
        let instances = platform.instances();
        !instances.is_empty() && instances.iter().all(|i| i.revision == instances[0].revision)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let mut sent = 0;
    for c in clients {
        sent += c.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Acquire), 0, "of {sent} requests");
    assert_eq!(get(&url).await.body, "v2");

    let names = || platform.instances().into_iter().map(|i| i.name).collect::<Vec<_>>();
    let before = names();
    platform.deploy(deployment("rolling", v(2), scale)).await.unwrap();
    assert_eq!(names(), before, "deploying the same spec again changes nothing");
    platform.shutdown().await;
}

#[tokio::test]
async fn idle_functions_scale_to_zero_and_the_next_call_cold_starts() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    platform
        .deploy(deployment("sleepy", python("hello.hello", HELLO_PY), scaling(0, 2, Duration::from_secs(1))))
        .await
        .unwrap();
    assert!(platform.instances().is_empty(), "min 0 starts nothing before a request");
    let url = format!("{}/default/sleepy/", served.base);
    assert_eq!(get(&url).await.body, "hello from python");
    assert_eq!(platform.instances().len(), 1);
    let log = platform.instances()[0].log_path.clone();
    eventually("scaled to zero", MINUTE, || platform.instances().is_empty()).await;
    assert!(log.is_file(), "the log of the instance that scaled in is kept: {}", log.display());
    let status = platform.status("default", "sleepy").unwrap();
    assert!(status.ready && status.instances == 0 && status.reason.is_none(), "{status:?}");

    let reply = get(&url).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "hello from python"));
    let metrics = platform.render_metrics();
    let count =
        sample(&metrics, r#"kelp_cold_start_seconds_count{namespace="default",function="sleepy",pooled="false"}"#);
    assert_eq!(count, Some(2.0), "{metrics}");
    assert!(platform.remove("default", "sleepy").await);
    assert!(!log.exists(), "the logs go with the function");
    platform.shutdown().await;
}

#[tokio::test]
async fn start_now_starts_new_code_before_any_request() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let mut wanted = deployment("eager", python("hello.hello", HELLO_PY), scaling(0, 2, Duration::from_secs(1)));
    wanted.start_now = true;
    platform.deploy(wanted.clone()).await.unwrap();
    eventually("an instance is ready without a request", MINUTE, || platform.instances().iter().any(|i| i.ready)).await;
    eventually("the idle instance scaled to zero", MINUTE, || platform.instances().is_empty()).await;
    platform.deploy(wanted).await.unwrap();
    assert!(platform.instances().is_empty(), "deploying the same code again starts nothing");
    platform.shutdown().await;
}

#[tokio::test]
async fn start_now_starts_at_most_eager_starts_unused_instances_over_all_functions() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 0);
    config.eager_starts = 1;
    let platform = Platform::new(config).unwrap();
    for name in ["first", "second"] {
        let mut wanted = deployment(name, python("hello.hello", HELLO_PY), scaling(0, 2, MINUTE));
        wanted.start_now = true;
        platform.deploy(wanted).await.unwrap();
    }
    eventually("the first function's eager instance is ready", MINUTE, || platform.instances().iter().any(|i| i.ready))
        .await;
    let functions: Vec<String> = platform.instances().iter().map(|i| i.function.clone()).collect();
    assert_eq!(functions, ["first"], "the second waits for its first request");
    let served = serve(&platform).await;
    assert_eq!(get(&format!("{}/default/second/", served.base)).await.status, 200);
    platform.shutdown().await;
}

#[tokio::test]
async fn concurrent_slow_requests_scale_out_up_to_max() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    let slow = "import time\ndef slow(event, context):\n    time.sleep(1.5)\n    return 'done'\n";
    platform.deploy(deployment("slow", python("slow.slow", slow), scaling(0, 3, MINUTE))).await.unwrap();
    let url = format!("{}/default/slow/", served.base);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { get(&url).await.status }
            })
        })
        .collect();
    let mut most = 0;
    let start = Instant::now();
    while calls.iter().any(|c| !c.is_finished()) && start.elapsed() < MINUTE {
        most = most.max(platform.instances().iter().filter(|i| i.function == "slow").count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), StatusCode::OK);
    }
    assert!(most > 1, "one instance served everything");
    assert!(most <= 3, "{most} instances, above max");
    platform.shutdown().await;
}

#[tokio::test]
async fn misbehaving_functions_do_not_disturb_a_healthy_neighbour() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    let base = served.base.clone();
    let crash = "import os\ndef crash(event, context):\n    os._exit(3)\n";
    let hang = "import time\ndef hang(event, context):\n    time.sleep(3600)\n";
    let hog = "import time\ndef hog(event, context):\n    chunks = []\n    while True:\n        chunks.append(b'x' * (4 << 20))\n        time.sleep(0.02)\n";
    let mut hang_spec = python("hang.hang", hang);
    hang_spec.timeout = Some("2".into());
    let hog_spec = spec(json!({"runtime": "python3", "handler": "hog.hog", "function": hog,
        "deployment": {"spec": {"template": {"spec": {"containers": [{"name": "hog", "resources": {"limits": {"memory": "64Mi"}}}]}}}}}));
    let always = scaling(1, 1, MINUTE);
    for (name, spec) in [
        ("healthy", python("hello.hello", HELLO_PY)),
        ("crash", python("crash.crash", crash)),
        ("hang", hang_spec),
        ("hog", hog_spec),
    ] {
        platform.deploy(deployment(name, spec, always)).await.unwrap();
    }
    assert_eq!(get(&format!("{base}/default/healthy/")).await.status, StatusCode::OK);

    let trouble = ["crash", "hang", "hog"].map(|name| {
        tokio::spawn({
            let url = format!("{base}/default/{name}/");
            async move { get(&url).await.status }
        })
    });
    let mut healthy = 0;
    let start = Instant::now();
    while trouble.iter().any(|t| !t.is_finished()) || start.elapsed() < Duration::from_secs(3) {
        let reply = get(&format!("{base}/default/healthy/")).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "hello from python"));
        healthy += 1;
        assert!(start.elapsed() < MINUTE, "the misbehaving calls did not end");
    }
    let [crash, hang, hog] = trouble;
    assert_eq!(crash.await.unwrap(), StatusCode::BAD_GATEWAY, "a worker exiting in the handler");
    assert_eq!(hang.await.unwrap(), StatusCode::REQUEST_TIMEOUT, "a handler past FUNC_TIMEOUT");
    assert!(hog.await.unwrap().is_server_error(), "the memory hog's request fails");
    eventually("the hog's kill is recorded", MINUTE, || {
        platform.instances().iter().any(|i| {
            i.function == "hog"
                && i.restarts >= 1
                && i.last_termination
                    .as_ref()
                    .is_some_and(|t| t.reason == "OOMKilled" && t.message.contains("memory limit exceeded"))
        })
    })
    .await;
    eventually("the hog is back", MINUTE, || platform.instances().iter().any(|i| i.function == "hog" && i.ready)).await;
    eprintln!("{healthy} healthy requests served while the others misbehaved");
    platform.shutdown().await;
}

/// A function that daemonises a child (fork, `setsid`, fork again: the child leaves the
/// instance's process tree and group), which runs `then` (Python statements); it answers the
/// child's PID.
fn daemonising(then: &str) -> String {
    format!(
        "import os\n\
         def spawn(event, context):\n    \
             r, w = os.pipe()\n    \
             if os.fork() == 0:\n        \
                 os.setsid()\n        \
                 if os.fork() == 0:\n            \
                     os.write(w, str(os.getpid()).encode())\n            \
                     {then}\n        \
                 os._exit(0)\n    \
             os.close(w)\n    \
             os.wait()\n    \
             return os.read(r, 32).decode()\n"
    )
}

/// Whether the instances of `function` run in cgroups of the platform's (`kelp-<pid>/`); tests
/// that need them print why they are skipped when not (no cgroup can be created here).
fn in_cgroups(platform: &Platform, function: &str) -> bool {
    let pids: Vec<u32> = platform.instances().iter().filter(|i| i.function == function).filter_map(|i| i.pid).collect();
    let contained = !pids.is_empty()
        && pids.iter().all(|pid| {
            let own = format!("/kelp-{}/", std::process::id());
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(&own))
        });
    if !contained {
        println!("skipped: instances are not in cgroups here (no cgroup can be created), only in process groups");
    }
    contained
}

/// Kills a test's stray process when dropped, if it is still the one the test started.
struct Stray(u32, &'static str);

impl Drop for Stray {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if alive(self.0) && String::from_utf8_lossy(&cmdline).contains(self.1) {
            let _ = std::process::Command::new("kill").args(["-9", &self.0.to_string()]).status();
        }
    }
}

#[tokio::test]
async fn a_daemonised_child_is_killed_with_its_function() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    let code = daemonising("os.execvp('sleep', ['sleep', '300'])");
    platform.deploy(deployment("daemon", python("daemon.spawn", &code), scaling(1, 1, MINUTE))).await.unwrap();
    let reply = get(&format!("{}/default/daemon/", served.base)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let sleeper: u32 = reply.body.trim().parse().unwrap();
    let is_sleep = || std::fs::read(format!("/proc/{sleeper}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"));
    eventually("the child runs sleep", MINUTE, is_sleep).await;
    let _stray = Stray(sleeper, "sleep");
    if !in_cgroups(&platform, "daemon") {
        return;
    }
    let tree: Vec<u32> = platform.instances().iter().filter_map(|i| i.pid).flat_map(process_tree).collect();
    assert!(alive(sleeper) && !tree.contains(&sleeper), "the sleeper runs outside the instance's process tree");
    assert!(platform.remove("default", "daemon").await);
    eventually("the daemonised sleeper is gone", Duration::from_secs(10), || !alive(sleeper)).await;
    platform.shutdown().await;
}

#[tokio::test]
async fn a_daemonised_child_counts_against_the_memory_limit() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    // The child takes up to 256 MiB, 4 MiB at a time, then sleeps: bounded, should nothing stop it.
    let hog = "import time\n            chunks = [b'x' * (4 << 20) for _ in range(64) if time.sleep(0.01) is None]\n            time.sleep(300)";
    let code = daemonising(hog);
    let spec = spec(json!({"runtime": "python3", "handler": "hog.spawn", "function": code,
        "deployment": {"spec": {"template": {"spec": {"containers": [{"name": "hog", "resources": {"limits": {"memory": "64Mi"}}}]}}}}}));
    platform.deploy(deployment("hog", spec, scaling(1, 1, MINUTE))).await.unwrap();
    let reply = get(&format!("{}/default/hog/", served.base)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let child: u32 = reply.body.trim().parse().unwrap();
    let _stray = Stray(child, "python");
    if !in_cgroups(&platform, "hog") {
        return;
    }
    eventually("the instance is OOMKilled for its daemonised child's memory", MINUTE, || {
        platform.instances().iter().any(|i| {
            i.function == "hog"
                && i.last_termination
                    .as_ref()
                    .is_some_and(|t| t.reason == "OOMKilled" && t.message.contains("memory limit exceeded"))
        })
    })
    .await;
    eventually("the child is gone", Duration::from_secs(10), || !alive(child)).await;
    platform.shutdown().await;
}

#[tokio::test]
async fn a_function_that_cannot_start_gets_503_with_the_reason() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    platform.deploy(deployment("broken", python("hello.missing", HELLO_PY), Default::default())).await.unwrap();
    let reply = get(&format!("{}/default/broken/", served.base)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.contains("default/broken") && reply.body.contains("missing"), "{}", reply.body);
    let status = platform.status("default", "broken").unwrap();
    assert!(!status.ready && status.message.as_deref().is_some_and(|m| m.contains("missing")), "{status:?}");
    let failed = platform.instances().into_iter().find(|i| i.function == "broken").unwrap();
    assert_eq!(failed.phase, Phase::Failed);
    platform.shutdown().await;
}

#[tokio::test]
async fn instance_logs_hold_the_function_output() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    let code =
        "def say(event, context):\n    print('said:', event['extensions']['request']['path'])\n    return 'ok'\n";
    platform.deploy(deployment("talker", python("say.say", code), scaling(1, 1, MINUTE))).await.unwrap();
    get(&format!("{}/default/talker/first", served.base)).await;
    let name = platform.instances()[0].name.clone();
    assert!(name.starts_with("talker-") && name.ends_with("-1"), "{name}");

    let read_all = |tail, follow| platform.logs("default", &name, tail, follow);
    let all = String::from_utf8(collect(read_all(None, false).await.unwrap()).await).unwrap();
    assert!(all.contains("said: /first"), "{all}");
    let last = String::from_utf8(collect(read_all(Some(1), false).await.unwrap()).await).unwrap();
    assert_eq!(last.lines().count(), 1, "{last:?}");

    let mut follow = read_all(Some(0), true).await.unwrap();
    get(&format!("{}/default/talker/second", served.base)).await;
    let mut seen = String::new();
    while !seen.contains("said: /second") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), follow.next()).await.expect("followed output");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    assert!(platform.logs("default", "nope-1", None, false).await.is_err());
    platform.remove("default", "talker").await;
    let rest = tokio::time::timeout(Duration::from_secs(10), collect(follow)).await;
    assert!(rest.is_ok(), "following ends when the instance is gone");
    platform.shutdown().await;
}

async fn collect(mut stream: kelp_local::LogStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn remove_and_shutdown_leave_no_process_behind() {
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(1);
    let served = serve(&platform).await;
    platform.deploy(deployment("gone", python("hello.hello", HELLO_PY), scaling(2, 2, MINUTE))).await.unwrap();
    platform.deploy(deployment("kept", python("hello.hello", HELLO_PY), scaling(1, 1, MINUTE))).await.unwrap();
    assert_eq!(get(&format!("{}/default/gone/", served.base)).await.status, StatusCode::OK);
    eventually("two instances ready", MINUTE, || {
        platform.instances().iter().filter(|i| i.function == "gone" && i.ready).count() == 2
    })
    .await;
    let pids: Vec<u32> = platform
        .instances()
        .iter()
        .filter(|i| i.function == "gone")
        .flat_map(|i| process_tree(i.pid.unwrap()))
        .collect();
    assert!(pids.len() >= 4, "fronts and workers: {pids:?}");
    assert!(platform.remove("default", "gone").await);
    assert!(!platform.remove("default", "gone").await);
    eventually("the removed function's processes are gone", Duration::from_secs(10), || {
        !pids.iter().any(|&p| alive(p))
    })
    .await;
    assert_eq!(get(&format!("{}/default/gone/", served.base)).await.status, StatusCode::NOT_FOUND);
    assert!(platform.instances().iter().all(|i| i.function == "kept"));

    let kept: Vec<u32> = platform.instances().iter().filter_map(|i| i.pid).flat_map(process_tree).collect();
    assert!(!kept.is_empty());
    platform.shutdown().await;
    eventually("every process is gone after shutdown", Duration::from_secs(10), || !kept.iter().any(|&p| alive(p)))
        .await;
}

/// Time to the first answer of a new function with `min: 0`, and whether a pooled process served it.
async fn first_call(platform: &Platform, base: &str, name: &str) -> (Duration, bool) {
    platform.deploy(deployment(name, python("hello.hello", HELLO_PY), Default::default())).await.unwrap();
    let start = Instant::now();
    let reply = get(&format!("{base}/default/{name}/")).await;
    let took = start.elapsed();
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "hello from python"));
    let metrics = platform.render_metrics();
    let pooled = sample(
        &metrics,
        &format!(r#"kelp_cold_start_seconds_count{{namespace="default",function="{name}",pooled="true"}}"#),
    );
    (took, pooled == Some(1.0))
}

#[tokio::test]
async fn the_pool_serves_a_new_function_first_call() {
    let _serial = SERIAL.lock().await;
    let (pooled, _dir) = platform(1);
    let served = serve(&pooled).await;
    let warm = || sample(&pooled.render_metrics(), r#"kelp_prewarmed_processes{language="python"}"#) == Some(1.0);
    eventually("a warm python runtime", MINUTE, warm).await;
    let (with_pool, used_pool) = first_call(&pooled, &served.base, "pooled").await;
    assert!(used_pool, "{}", pooled.render_metrics());
    assert!(pooled.instances().iter().any(|i| i.function == "pooled" && i.pooled));
    eventually("the pool is refilled", MINUTE, warm).await;
    // An instance that gets no request (kept by `min`) does not hold the refill back.
    let kept = deployment("kept", python("hello.hello", HELLO_PY), scaling(1, 1, Duration::ZERO));
    pooled.deploy(kept).await.unwrap();
    eventually("the kept instance is ready", MINUTE, || {
        pooled.instances().iter().any(|i| i.function == "kept" && i.ready && i.pooled)
    })
    .await;
    eventually("the pool is refilled without a request", MINUTE, warm).await;
    pooled.shutdown().await;

    let (cold, _dir) = platform(0);
    let served = serve(&cold).await;
    let (without_pool, used_pool) = first_call(&cold, &served.base, "cold").await;
    assert!(!used_pool);
    cold.shutdown().await;
    println!(
        "first call of a new Python function: {:.1} ms with the pre-warmed pool, {:.1} ms without",
        with_pool.as_secs_f64() * 1e3,
        without_pool.as_secs_f64() * 1e3
    );
}

/// Secret and ConfigMap volumes are files under `KELP_VOLUMES_DIR`, whether the instance was
/// started cold or handed to a pre-warmed runtime, and a change of their content is a new
/// revision.
#[tokio::test]
async fn volumes_are_files_under_the_volumes_dir() {
    let _serial = SERIAL.lock().await;
    let code = "import os\n\
                def read(event, context):\n    \
                    path = os.environ['KELP_VOLUMES_DIR'] + '/s1/key'\n    \
                    return open(path).read() + ' ' + oct(os.stat(path).st_mode & 0o777)\n";
    let secret = |value: &str| kelp_local::Volume {
        mount_path: "/s1".into(),
        secret: true,
        files: vec![("key".into(), value.as_bytes().to_vec())],
    };
    for prewarm in [0, 1] {
        let (platform, _dir) = platform(prewarm);
        let served = serve(&platform).await;
        if prewarm > 0 {
            eventually("a warm python runtime", MINUTE, || {
                sample(&platform.render_metrics(), "kelp_prewarmed_processes{language=\"python\"}") == Some(1.0)
            })
            .await;
        }
        let mut d = deployment("reader", python("reader.read", code), Default::default());
        d.volumes = vec![secret("MY_KEY")];
        platform.deploy(d.clone()).await.unwrap();
        let reply = get(&format!("{}/default/reader/", served.base)).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "MY_KEY 0o400"), "prewarm {prewarm}");
        assert_eq!(platform.instances()[0].pooled, prewarm > 0);

        d.volumes = vec![secret("NEW_KEY")];
        platform.deploy(d).await.unwrap();
        let start = Instant::now();
        let body = loop {
            let body = get(&format!("{}/default/reader/", served.base)).await.body;
            if body.starts_with("NEW_KEY") || start.elapsed() > MINUTE {
                break body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(body, "NEW_KEY 0o400", "a new secret value rolls the function over");
        platform.shutdown().await;
    }
}

/// Reads one HTTP/1.1 response (its head, then a `content-length` body) from `stream`.
async fn read_response(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await.expect("a response");
        assert!(n > 0, "the connection closed without a response: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await.expect("the body");
        assert!(n > 0, "the body was cut short");
        data.extend_from_slice(&buf[..n]);
    }
    (head, String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned())
}

/// The response on `stream`, within a generous bound on a liveness check: without a limit the
/// gateway waits for the body's end forever.
async fn answer(mut stream: impl tokio::io::AsyncRead + Unpin) -> (String, String) {
    tokio::time::timeout(MINUTE, read_response(&mut stream)).await.expect("the gateway answered before the body ended")
}

/// A hostile client: a body declared larger than the function's `REQ_MB_LIMIT`, and an endless
/// chunked one, are answered 413 while the client is still sending, and no instance is started.
#[tokio::test]
async fn the_gateway_answers_413_to_bodies_over_the_function_limit_without_reading_them() {
    use tokio::io::AsyncWriteExt;
    let _serial = SERIAL.lock().await;
    let (platform, _dir) = platform(0);
    let served = serve(&platform).await;
    let mut small = deployment("small", python("hello.hello", HELLO_PY), Default::default());
    small.env = vec![("REQ_MB_LIMIT".into(), "1".into())];
    platform.deploy(small).await.unwrap();
    let address = served.base.strip_prefix("http://").unwrap().to_owned();

    platform.set_routes(vec![Route {
        host: Some("small.example.test".into()),
        path_prefix: "/".into(),
        namespace: "default".into(),
        function: "small".into(),
        rewrite_target: None,
    }]);
    // By the short URL and by an HTTPTrigger route.
    for (path, host) in [("/default/small/", "kelp"), ("/upload", "small.example.test")] {
        let mut declared = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 1048577\r\n\r\n");
        declared.write_all(head.as_bytes()).await.unwrap();
        let (head, body) = answer(declared).await;
        assert!(head.starts_with("HTTP/1.1 413"), "{path}: {head}");
        let named = ["1048576 bytes", "default/small", "REQ_MB_LIMIT"];
        assert!(named.iter().all(|n| body.contains(n)), "{path}: {body}");
    }

    let endless = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (reader, mut writer) = endless.into_split();
    let sender = tokio::spawn(async move {
        let _ = writer
            .write_all(b"POST /default/small/ HTTP/1.1\r\nhost: kelp\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        while writer.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let (head, body) = answer(reader).await;
    sender.abort();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(body.contains("1048576 bytes"), "{body}");
    assert!(platform.instances().is_empty(), "no instance is started for a refused request");
    platform.shutdown().await;
}

/// Many large uploads at once: the gateway holds at most `body_buffer_budget` bytes of request
/// bodies over all requests. While a slow client holds most of it, another request that would pass
/// it is answered 503 with `Retry-After`; once that client is gone, the same request goes through.
#[tokio::test]
async fn buffered_request_bodies_share_one_budget() {
    use tokio::io::AsyncWriteExt;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 0);
    config.body_buffer_budget = 64 << 10;
    let platform = Platform::new(config).unwrap();
    let served = serve(&platform).await;
    platform.deploy(deployment("buf", python("hello.hello", HELLO_PY), Default::default())).await.unwrap();
    let address = served.base.strip_prefix("http://").unwrap().to_owned();
    let upload = |size: usize| {
        let address = address.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            let head = format!("POST /default/buf/ HTTP/1.1\r\nhost: kelp\r\ncontent-length: {size}\r\n\r\n");
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&vec![b'x'; size]).await.unwrap();
            answer(stream).await
        }
    };

    // A slow client: 50 KiB of a 100,000-byte body sent, the rest never.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"POST /default/buf/ HTTP/1.1\r\nhost: kelp\r\ncontent-length: 100000\r\n\r\n").await.unwrap();
    slow.write_all(&[b'x'; 50 << 10]).await.unwrap();
    let deadline = tokio::time::Instant::now() + MINUTE;
    let (head, body) = loop {
        let (head, body) = upload(32 << 10).await;
        if head.starts_with("HTTP/1.1 503") || tokio::time::Instant::now() > deadline {
            break (head, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    assert!(body.contains("request bodies"), "{body}");

    drop(slow);
    let deadline = tokio::time::Instant::now() + MINUTE;
    let head = loop {
        let (head, _) = upload(32 << 10).await;
        if head.starts_with("HTTP/1.1 200") || tokio::time::Instant::now() > deadline {
            break head;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(head.starts_with("HTTP/1.1 200"), "once the slow client is gone: {head}");
    platform.shutdown().await;
}

/// A slowloris body: a client that stops sending in the middle of its body is answered 408 once no
/// more came within `body_idle_timeout`, rather than holding its connection (and its share of the
/// buffer budget) for as long as it likes.
#[tokio::test]
async fn a_body_that_stops_coming_is_answered_408() {
    use tokio::io::AsyncWriteExt;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 0);
    config.body_idle_timeout = Duration::from_millis(300);
    let platform = Platform::new(config).unwrap();
    let served = serve(&platform).await;
    platform.deploy(deployment("stall", python("hello.hello", HELLO_PY), Default::default())).await.unwrap();
    let address = served.base.strip_prefix("http://").unwrap().to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"POST /default/stall/ HTTP/1.1\r\nhost: kelp\r\ncontent-length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let (head, body) = answer(&mut stalled).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(body.contains("request body"), "{body}");
    assert!(platform.instances().is_empty(), "no instance is started for it");
    platform.shutdown().await;
}
