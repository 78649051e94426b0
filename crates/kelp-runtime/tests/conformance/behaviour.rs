//! Conformance checks that are about the process rather than one request's data: timeouts,
//! worker death, concurrency, pipelining, SIGTERM, pre-warming, dependencies, load failures, the access log.
//! Each takes the runtime it runs against; `conformance.rs` instantiates them per language.

pub(crate) use crate::build::{
    build_dependencies, build_failure, build_offline_with_lock, build_once, build_timeout, panic_survives,
};
use crate::http::Request;
use crate::process::{Function, Instance, Runtime, shared_deps_cache};
use std::io::Write;
use std::time::{Duration, Instant};

/// How long an install from PyPI / npm may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `f` on `n` threads at once and returns the results in order.
fn concurrently<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..n).map(|i| s.spawn(move || f(i))).collect();
        handles.into_iter().map(|h| h.join().expect("a request thread panicked")).collect()
    })
}

/// The data cases of `conformance/cases/`.
pub(crate) fn cases(rt: &Runtime) {
    crate::cases::run_all(rt);
}

/// A function that hangs (a busy loop, or a sleep) past `FUNC_TIMEOUT` gets 408, its worker is
/// replaced, and other requests are served meanwhile and afterwards.
pub(crate) fn timeout(rt: &Runtime) {
    spin_gets_408s(rt);

    // Two workers: one hangs, the other serves meanwhile (no need to wait for the pool to grow,
    // which takes long on a loaded machine).
    let slow = Function::new(rt, "conf", "slow").env("FUNC_TIMEOUT", "1").env("KELP_WORKERS", "2").start().ready();
    // The first worker serves at once; the second starts after it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = loop {
        let pids = slow.worker_pids();
        if pids.len() >= 2 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(before.len(), 2, "worker processes of a KELP_WORKERS=2 runtime: {before:?}");
    let results = concurrently(4, |i| {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(100 + 50 * i as u64));
        }
        let started = Instant::now();
        (slow.get(if i == 0 { "/?s=30" } else { "/?s=0" }), started.elapsed())
    });
    let (hung, took) = &results[0];
    assert_eq!(hung.status, 408, "slow?s=30 with FUNC_TIMEOUT=1: {hung:?}\n{}", slow.diagnostics());
    assert!(*took < Duration::from_secs(5), "the 408 came after {took:?}");
    for (r, took) in &results[1..] {
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "slept"),
            "slow?s=0 while another request hangs ({took:?})\n{}",
            slow.diagnostics()
        );
    }
    // The hung worker was killed and a new one started in its place (the pool may also have grown).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = slow.worker_pids();
        if now.len() >= 2 && before.iter().any(|pid| !now.contains(pid)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers before the timeout {before:?}, now {now:?}\n{}",
            slow.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let results = concurrently(2, |_| slow.get("/?s=0.2"));
    for r in results {
        assert_eq!((r.status, r.text().as_str()), (200, "slept"), "after the timeout\n{}", slow.diagnostics());
    }
}

/// `conf.spin` (a busy loop) with `FUNC_TIMEOUT=1` is answered 408 twice, each after about a
/// second, and the runtime stays healthy.
pub(crate) fn spin_gets_408s(rt: &Runtime) {
    let spin = Function::new(rt, "conf", "spin").env("FUNC_TIMEOUT", "1").start().ready();
    for attempt in 1..=2 {
        let started = Instant::now();
        let r = spin.get("/");
        let took = started.elapsed();
        assert_eq!(r.status, 408, "spin attempt {attempt}: {r:?}\n{}", spin.diagnostics());
        assert!(r.text().to_lowercase().contains("timeout"), "408 body {:?} does not mention the timeout", r.text());
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "spin attempt {attempt}: 408 after {took:?}"
        );
    }
    assert_eq!(spin.get("/healthz").status, 200);
}

/// A worker that exits mid-request gives 502; the runtime keeps serving and replaces it.
pub(crate) fn worker_death(rt: &Runtime) {
    let mut die =
        Function::new(rt, "conf", "die").env("KELP_MAX_WORKERS", "1").env("FUNC_TIMEOUT", "10").start().ready();
    for attempt in 1..=2 {
        // The second attempt needs the replacement of the worker the first one killed.
        let r = die.get("/");
        assert_eq!(r.status, 502, "die attempt {attempt}: {r:?}\n{}", die.diagnostics());
        assert_eq!(die.get("/healthz").status, 200);
        assert!(die.exit_status().is_none(), "kelp-runtime exited after a worker died\n{}", die.diagnostics());
    }
}

/// Requests overlap: six one-second calls on a pool of two take far less than six seconds.
pub(crate) fn concurrency(rt: &Runtime) {
    let slow = Function::new(rt, "conf", "slow").env("KELP_WORKERS", "2").start().ready();
    let started = Instant::now();
    let results = concurrently(6, |_| slow.get("/?s=1"));
    let took = started.elapsed();
    for r in &results {
        assert_eq!((r.status, r.text().as_str()), (200, "slept"), "{r:?}\n{}", slow.diagnostics());
    }
    assert!(took < Duration::from_secs(6), "6 concurrent slow?s=1 took {took:?}: they did not overlap");
}

/// With every worker busy, calls are pipelined (sent to a worker before it has answered the
/// previous one) and each still gets its own answer: the worker reads them back to back.
pub(crate) fn pipelining(rt: &Runtime) {
    let echo = Function::new(rt, "conf", "echo")
        .env("KELP_WORKERS", "2")
        .env("KELP_MAX_WORKERS", "2")
        // Pipelining whatever the machine's load makes the calls' times.
        .env("KELP_PIPELINE_BELOW", "1000")
        .start()
        .ready();
    let answers = concurrently(8, |t| {
        (0..40)
            .map(|i| {
                let n = format!("{t}-{i}");
                let r = echo.get(&format!("/?n={n}"));
                let echoed: serde_json::Value = serde_json::from_slice(&r.body)
                    .unwrap_or_else(|e| panic!("call {n}: {e}: {r:?}\n{}", echo.diagnostics()));
                (n, echoed["request"]["query"]["n"].as_str().map(str::to_owned))
            })
            .collect::<Vec<_>>()
    });
    for (sent, got) in answers.into_iter().flatten() {
        assert_eq!(Some(sent.as_str()), got.as_deref(), "a call got another call's answer\n{}", echo.diagnostics());
    }
    assert!(pipelined(&echo) > 0, "8 clients on 2 workers pipelined nothing\n{}", echo.diagnostics());
}

/// `kelp_pipelined_calls_total` from `/metrics`.
fn pipelined(function: &Instance) -> u64 {
    let metrics = function.get("/metrics").text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("kelp_pipelined_calls_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no kelp_pipelined_calls_total in /metrics:\n{metrics}"))
}

/// A call pipelined behind one that kills its worker was never started: it goes to the
/// replacement worker and gets its answer, while the killing call gets 502.
pub(crate) fn pipelined_call_outlives_a_dying_worker(rt: &Runtime) {
    let f = Function::new(rt, "conf", "sleepdie")
        .env("KELP_WORKERS", "1")
        .env("KELP_MAX_WORKERS", "1")
        .env("KELP_PIPELINE_BELOW", "1000")
        .start()
        .ready();
    // Pipelining starts once a few calls have been measured.
    for _ in 0..10 {
        assert_eq!(f.get("/").text(), "alive", "{}", f.diagnostics());
    }
    let before = pipelined(&f);
    let (dying, queued) = std::thread::scope(|s| {
        let dying = s.spawn(|| f.get("/?s=0.5&die"));
        std::thread::sleep(Duration::from_millis(150));
        let queued = s.spawn(|| f.get("/"));
        (dying.join().expect("the dying call's thread"), queued.join().expect("the queued call's thread"))
    });
    assert_eq!(dying.status, 502, "the call that killed its worker: {dying:?}\n{}", f.diagnostics());
    assert_eq!(
        (queued.status, queued.text().as_str()),
        (200, "alive"),
        "the call queued behind it\n{}",
        f.diagnostics()
    );
    assert_eq!(pipelined(&f), before + 1, "the second call was not pipelined\n{}", f.diagnostics());
}

/// `KELP_UNIX_LISTEN`: the front also serves HTTP on a Unix socket only its user can open (how
/// `kelp up`'s gateway reaches an instance), the same answers as on its port.
pub(crate) fn unix_socket(rt: &Runtime) {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("http.sock");
    let hello = Function::new(rt, "conf", "hello").env("KELP_UNIX_LISTEN", path.to_str().unwrap()).start().ready();
    let mode = std::fs::metadata(&path).expect("the socket exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket's mode\n{}", hello.diagnostics());
    let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connecting to the socket");
    stream.write_all(b"GET /?via=unix HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}\n{}", hello.diagnostics());
    assert!(response.ends_with("\r\n\r\nhello world"), "{response}");
    assert_eq!(hello.get("/").text(), "hello world", "the port still answers");
    hello.stdout_with("127.0.0.1 - - [");
    hello.stdout_with("\"GET /?via=unix HTTP/1.1\" 200 11");
}

/// SIGTERM lets the in-flight request finish, then the process exits with status 0.
pub(crate) fn sigterm_drain(rt: &Runtime) {
    let mut slow = Function::new(rt, "conf", "slow").start().ready();
    let response = std::thread::scope(|s| {
        let call = s.spawn(|| slow.send(&Request::get("/?s=1")));
        std::thread::sleep(Duration::from_millis(200));
        slow.terminate();
        call.join().expect("the request thread panicked")
    });
    let response = response.unwrap_or_else(|e| panic!("in-flight request during SIGTERM: {e}\n{}", slow.diagnostics()));
    assert_eq!((response.status, response.text().as_str()), (200, "slept"), "{}", slow.diagnostics());
    let status = slow.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.code() == Some(0)), "exit after SIGTERM: {status:?}\n{}", slow.diagnostics());
}

/// `--prewarm`: not ready until the function arrives on stdin, then serves it with its env.
pub(crate) fn prewarm(rt: &Runtime) {
    let mut warm = Function::prewarmed(rt).start();
    let r = warm.get("/healthz");
    assert_eq!(r.status, 503, "/healthz before the hand-off: {r:?}\n{}", warm.diagnostics());
    assert_eq!(warm.get("/").status, 503, "a call before the hand-off");
    let mut stdin = warm.stdin();
    stdin
        .write_all(b"{\"FUNC_HANDLER\":\"env\",\"MOD_NAME\":\"conf\",\"GREETING\":\"hi\"}\n")
        .expect("writing the hand-off");
    let mut warm = warm.ready();
    let r = warm.get("/?name=GREETING");
    assert_eq!((r.status, r.text().as_str()), (200, "hi"), "the hand-off's env var\n{}", warm.diagnostics());
    drop(stdin);
    assert!(warm.exit_status().is_none(), "closing stdin after the hand-off stopped the runtime");
    // The 200 line comes after the 503 one: once it is there, everything before it is too.
    let stdout = warm.stdout_with("\"GET /?name=GREETING HTTP/1.1\" 200");
    assert!(stdout.contains("\"GET / HTTP/1.1\" 503"), "a call before the hand-off is logged:\n{stdout}");
    assert!(!stdout.contains("\"GET /healthz HTTP/1.1\" 503"), "probes before the hand-off are not:\n{stdout}");
}

/// The function's settings in the pre-warm hand-off apply as if they had been in the
/// environment: context values, and the request body limit.
pub(crate) fn prewarm_settings(rt: &Runtime) {
    let mut warm = Function::prewarmed(rt).start();
    let echo = rt.handler("echo");
    let handoff = format!(
        "{{\"FUNC_HANDLER\":\"{echo}\",\"MOD_NAME\":\"conf\",\"FUNC_TIMEOUT\":\"2\",\"FUNC_MEMORY_LIMIT\":\"256Mi\",\"REQ_MB_LIMIT\":\"1\"}}\n"
    );
    warm.stdin().write_all(handoff.as_bytes()).expect("writing the hand-off");
    let warm = warm.ready();
    let echoed: serde_json::Value = serde_json::from_slice(&warm.get("/").body).expect("echo returns JSON");
    let context = &echoed["context"];
    assert_eq!(
        (
            context["function-name"].as_str(),
            context["timeout"].as_f64(),
            context["memory-limit"].as_str(),
            context["runtime"].as_str()
        ),
        (Some(echo.as_str()), Some(2.0), Some("256Mi"), Some(rt.func_runtime)),
        "context after the hand-off: {context}"
    );
    let mut big = Request::new("POST", "/");
    big.body = vec![b'a'; 2 << 20];
    let r = warm.must_send(&big);
    assert_eq!(r.status, 413, "a 2 MiB body with REQ_MB_LIMIT=1 in the hand-off");
}

/// SIGTERM stops a pre-warmed runtime that is still waiting for its function.
pub(crate) fn prewarm_sigterm(rt: &Runtime) {
    let mut warm = Function::prewarmed(rt).start();
    let _stdin = warm.stdin();
    assert_eq!(warm.get("/healthz").status, 503);
    warm.terminate();
    let status = warm.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "exit after SIGTERM while waiting for the hand-off: {status:?}\n{}",
        warm.diagnostics()
    );
}

/// Dependencies are installed once into `<cache>/deps/<language>/<sha256>` and reused.
pub(crate) fn dependencies(rt: &Runtime) {
    let function = Function::new(rt, "withdeps", "check").code_subdir("withdeps").cache_dir(shared_deps_cache());
    let mut first = function.start();
    first.wait_ready(INSTALL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let r = first.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "deps ok"), "{}", first.diagnostics());
    let deps = first.cache_dir.join("deps").join(rt.name);
    let installed: Vec<String> = std::fs::read_dir(&deps)
        .unwrap_or_else(|e| panic!("{}: {e}", deps.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    assert!(!installed.is_empty(), "no deps/{}/<sha256> directory in {}", rt.name, first.cache_dir.display());

    let mut second = function.start();
    second.wait_ready(crate::process::READY_TIMEOUT).unwrap_or_else(|e| panic!("second start with a warm cache: {e}"));
    assert_eq!(second.get("/").text(), "deps ok");
    assert!(
        !second.stderr().contains("dependencies installed"),
        "the second start reinstalled its dependencies\n{}",
        second.diagnostics()
    );
}

/// A dependency that cannot be installed stops the runtime with status 1, naming it.
pub(crate) fn failing_install(rt: &Runtime) {
    let mut broken = Function::new(rt, "faildeps", "check").code_subdir("faildeps").start();
    let status = broken.wait_exit(INSTALL_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", broken.diagnostics());
    assert!(
        broken.stderr().contains("kelp-no-such-package-0000"),
        "stderr does not name the package\n{}",
        broken.diagnostics()
    );
}

/// `--install-deps` installs into `KELP_DEPS_DIR` and exits 0, and a runtime given the same
/// directory (and a cache of its own) finds the install and does not repeat it: what a
/// Kubernetes `install` init container and the function's container do. A failing install exits
/// 1, naming the package.
pub(crate) fn install_deps(rt: &Runtime) {
    let deps_dir = shared_deps_cache().join("deps");
    let function = |module: &str| {
        Function::new(rt, module, "check").code_subdir(module).env("KELP_DEPS_DIR", &deps_dir.to_string_lossy())
    };
    let mut install = function("withdeps").install_deps().spawn();
    let status = install.wait_exit(INSTALL_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status\n{}", install.diagnostics());

    let mut serving = function("withdeps").start();
    serving.wait_ready(crate::process::READY_TIMEOUT).unwrap_or_else(|e| panic!("after --install-deps: {e}"));
    assert_eq!(serving.get("/").text(), "deps ok");
    assert!(
        !serving.stderr().contains("dependencies installed"),
        "the runtime reinstalled what --install-deps installed\n{}",
        serving.diagnostics()
    );

    let mut broken = function("faildeps").install_deps().spawn();
    let status = broken.wait_exit(INSTALL_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", broken.diagnostics());
    assert!(broken.stderr().contains("kelp-no-such-package-0000"), "{}", broken.diagnostics());
}

/// With install-time credentials a cluster splits the install: `--fetch-deps` downloads into
/// `KELP_DEPS_STAGE` (running no package code) and installs nothing; `--install-deps` with the
/// same stage then installs offline (any network use fails: the proxy and the package index are
/// a closed port), and the function loads what it installed.
pub(crate) fn staged_install(rt: &Runtime) {
    std::fs::create_dir_all(crate::process::scratch_root()).unwrap();
    let scratch = tempfile::tempdir_in(crate::process::scratch_root()).unwrap();
    let (deps_dir, stage) = (scratch.path().join("deps"), scratch.path().join("stage"));
    let function = || {
        Function::new(rt, "withdeps", "check")
            .code_subdir("withdeps")
            .env("KELP_DEPS_DIR", &deps_dir.to_string_lossy())
            .env("KELP_DEPS_STAGE", &stage.to_string_lossy())
    };
    let mut fetch = function().fetch_deps().spawn();
    let status = fetch.wait_exit(INSTALL_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "--fetch-deps exit status\n{}", fetch.diagnostics());
    let installs = std::fs::read_dir(deps_dir.join(rt.name)).into_iter().flatten().flatten().count();
    assert_eq!(installs, 0, "--fetch-deps installed something into {}", deps_dir.display());
    assert!(std::fs::read_dir(&stage).is_ok_and(|d| d.count() > 1), "nothing was fetched into the stage");

    let closed = "http://127.0.0.1:9";
    let offline = || {
        function()
            .env("https_proxy", closed)
            .env("http_proxy", closed)
            .env("HTTPS_PROXY", closed)
            .env("HTTP_PROXY", closed)
            .env("PIP_INDEX_URL", &format!("{closed}/simple"))
            .env("npm_config_registry", &format!("{closed}/"))
    };
    let mut install = offline().install_deps().spawn();
    let status = install.wait_exit(INSTALL_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "offline --install-deps\n{}", install.diagnostics());
    assert!(install.stderr().contains("dependencies installed"), "{}", install.diagnostics());

    let mut serving = offline().start();
    serving.wait_ready(crate::process::READY_TIMEOUT).unwrap_or_else(|e| panic!("after the staged install: {e}"));
    assert_eq!(serving.get("/").text(), "deps ok");
    assert!(!serving.stderr().contains("dependencies installed"), "reinstalled\n{}", serving.diagnostics());

    let mut again = function().fetch_deps().spawn();
    let status = again.wait_exit(INSTALL_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", again.diagnostics());
    assert!(again.stderr().contains("nothing to fetch"), "fetched an installed file again\n{}", again.diagnostics());
}

/// A module that fails to load stops the runtime with status 1, naming the module.
pub(crate) fn load_failure(rt: &Runtime) {
    let mut bad = Function::new(rt, "bad", "hello").start();
    let status = bad.wait_exit(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", bad.diagnostics());
    let file = format!("bad{}", rt.suffix);
    assert!(bad.stderr().contains(&file), "stderr does not mention {file}\n{}", bad.diagnostics());
}

/// Settings the runtime cannot represent (an infinite or huge timeout, a body limit no frame
/// holds, a module that is a path) stop it at start-up with status 1 and the variable named,
/// never a panic (status 101) or a clock overflow at the first request.
pub(crate) fn unrepresentable_settings(rt: &Runtime) {
    let cases = [
        ("FUNC_TIMEOUT", "inf", "a positive number of seconds, at most 604800"),
        ("FUNC_TIMEOUT", "1e300", "a positive number of seconds, at most 604800"),
        ("FUNC_TIMEOUT", "18446744073709551615", "a positive number of seconds, at most 604800"),
        ("KELP_SHUTDOWN_TIMEOUT", "NaN", "a number of seconds"),
        ("REQ_MB_LIMIT", "17592186044416", "a size in MiB"),
        ("MOD_NAME", "../../etc/hello", "a module name"),
    ];
    for (name, value, reason) in cases {
        let mut bad = Function::new(rt, "conf", "hello").env(name, value).spawn();
        let status = bad.wait_exit(Duration::from_secs(30));
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{name}={value}: exit status\n{}", bad.diagnostics());
        let stderr = bad.stderr();
        assert!(stderr.contains(&format!("{name}={value:?}: {reason}")), "{name}={value}\n{}", bad.diagnostics());
        assert!(!stderr.contains("panicked"), "{name}={value}\n{}", bad.diagnostics());
    }
}

/// Each request is logged on stdout in the Apache format Kubeless's tests grep for.
pub(crate) fn access_log(rt: &Runtime) {
    let hello = Function::new(rt, "conf", "hello").start().ready();
    assert_eq!(hello.get("/").text(), "hello world");
    hello.stdout_with("\"GET / HTTP/1.1\" 200 11 \"\"");
}
