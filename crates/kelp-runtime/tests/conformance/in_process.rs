//! `KELP_IN_PROCESS=1` (`kelp_runtime::in_process`): a Rust or Go function runs in the front's
//! own process, on the front's threads, with the same answers as in a worker (the data cases run
//! on it too), and what it gives up for that: a call past its timeout is answered 408 and left to
//! its thread, and a function that exits takes the front with it.

use crate::http::Request;
use crate::process::{Function, Runtime};
use std::time::Duration;

/// Calls are answered with no worker process at all, by the front's own threads.
pub(crate) fn runs_in_the_front(rt: &Runtime) {
    let hello = Function::new(rt, "conf", "hello").env("KELP_WORKERS", "2").start().ready();
    for _ in 0..3 {
        let r = hello.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "hello world"), "{}", hello.diagnostics());
    }
    assert_eq!(hello.worker_pids(), Vec::<u32>::new(), "no worker process\n{}", hello.diagnostics());
    let metrics = hello.get("/metrics").text();
    assert!(metrics.contains("function_calls_total{method=\"GET\"} 3"), "{metrics}");
}

/// A call past `FUNC_TIMEOUT` is answered 408 within the timeout (by the watchdog, on the call's
/// connection) and counted as a failed call at once, though it still runs, and the next calls are
/// served by the front's other threads while that one runs on.
pub(crate) fn timeout(rt: &Runtime) {
    crate::behaviour::spin_gets_408s(rt);
    let slow = Function::new(rt, "conf", "slow").env("FUNC_TIMEOUT", "1").start().ready();
    assert_eq!(slow.get("/?s=30").status, 408, "{}", slow.diagnostics());
    let metrics = slow.get("/metrics").text();
    for counted in ["function_calls_total{method=\"GET\"} 1", "function_failures_total{method=\"GET\"} 1"] {
        assert!(metrics.lines().any(|l| l == counted), "no {counted:?} in /metrics:\n{metrics}");
    }
    let r = slow.get("/?s=0");
    assert_eq!((r.status, r.text().as_str()), (200, "slept"), "after the timeout\n{}", slow.diagnostics());
}

/// Past `kelp_runtime::in_process::MAX_ABANDONED` calls still running after their timeout, the front
/// exits (status 70) so that its instance is restarted without them.
pub(crate) fn abandoned_calls_end_the_front(rt: &Runtime) {
    let mut spin = Function::new(rt, "conf", "spin").env("FUNC_TIMEOUT", "0.2").start().ready();
    for _ in 0..kelp_runtime::in_process::MAX_ABANDONED {
        assert_eq!(spin.get("/").status, 408, "{}", spin.diagnostics());
    }
    assert!(spin.exit_status().is_none(), "the front exited early\n{}", spin.diagnostics());
    let _ = spin.send(&Request::get("/"));
    let status = spin.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(70), "{}", spin.diagnostics());
    assert!(spin.stderr().contains("still running past their timeout"), "{}", spin.diagnostics());
}

/// A function that exits the process exits the front, with its status (an instance restarts it).
pub(crate) fn exit_ends_the_front(rt: &Runtime) {
    let mut die = Function::new(rt, "conf", "die").env("FUNC_TIMEOUT", "10").start().ready();
    let answer = die.send(&Request::get("/"));
    assert!(answer.is_err(), "an answer from a front that exited: {answer:?}");
    let status = die.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{}", die.diagnostics());
}

/// A language whose build holds no library refuses `KELP_IN_PROCESS=1` at start-up, saying so.
pub(crate) fn refused(rt: &Runtime) {
    let mut hello = Function::new(rt, "conf", "hello").env("KELP_IN_PROCESS", "1").spawn();
    let status = hello.wait_exit(Duration::from_secs(60));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", hello.diagnostics());
    let stderr = hello.stderr();
    assert!(
        stderr.contains("KELP_IN_PROCESS=1") && stderr.contains("worker processes only"),
        "{}",
        hello.diagnostics()
    );
}

/// With one call at a time (`KELP_MAX_WORKERS=1`), a call waiting for its turn behind one that
/// runs past its timeout starts when the hung call is answered 408 and left to its thread.
pub(crate) fn queued_call_outlives_an_abandoned_one(rt: &Runtime) {
    let f = Function::new(rt, "conf", "slow")
        .env("FUNC_TIMEOUT", "1")
        .env("KELP_WORKERS", "1")
        .env("KELP_MAX_WORKERS", "1")
        .start()
        .ready();
    let (hung, queued) = std::thread::scope(|s| {
        let hung = s.spawn(|| f.get("/?s=30"));
        std::thread::sleep(Duration::from_millis(150));
        let queued = s.spawn(|| {
            let started = std::time::Instant::now();
            (f.get("/?s=0"), started.elapsed())
        });
        (hung.join().expect("the hung call's thread"), queued.join().expect("the queued call's thread"))
    });
    assert_eq!(hung.status, 408, "the call past its timeout: {hung:?}\n{}", f.diagnostics());
    let (queued, took) = queued;
    assert_eq!(
        (queued.status, queued.text().as_str()),
        (200, "slept"),
        "the call queued behind it\n{}",
        f.diagnostics()
    );
    // It waited for the hung call's turn (answered 1 s after it started), and no longer.
    assert!(
        took > Duration::from_millis(500) && took < Duration::from_secs(5),
        "the queued call took {took:?}\n{}",
        f.diagnostics()
    );
}

/// While every call's turn is taken, the front still answers `/healthz` and `/metrics` at once:
/// it has threads beyond those the calls run on.
pub(crate) fn health_while_calls_run(rt: &Runtime) {
    let f = Function::new(rt, "conf", "slow").env("KELP_WORKERS", "1").env("KELP_MAX_WORKERS", "1").start().ready();
    std::thread::scope(|s| {
        let slow = s.spawn(|| f.get("/?s=2"));
        std::thread::sleep(Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert_eq!(f.get("/healthz").status, 200, "{}", f.diagnostics());
        assert_eq!(f.get("/metrics").status, 200, "{}", f.diagnostics());
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "/healthz and /metrics took {took:?} beside a call\n{}",
            f.diagnostics()
        );
        let slow = slow.join().expect("the slow call's thread");
        assert_eq!((slow.status, slow.text().as_str()), (200, "slept"), "{}", f.diagnostics());
    });
}

/// A call past its timeout on the Unix socket (`KELP_UNIX_LISTEN`, how `kelp up`'s gateway
/// reaches an instance) is answered 408 there too, and the connection closed.
pub(crate) fn timeout_on_the_unix_socket(rt: &Runtime) {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("http.sock");
    let slow = Function::new(rt, "conf", "slow")
        .env("FUNC_TIMEOUT", "1")
        .env("KELP_UNIX_LISTEN", path.to_str().unwrap())
        .start()
        .ready();
    let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connecting to the socket");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"GET /?s=30 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("the answer, then the end of the connection");
    assert!(response.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{response}\n{}", slow.diagnostics());
    assert!(response.ends_with("\r\n\r\nRequest timeout exceeded"), "{response}");
    assert_eq!(slow.get("/?s=0").text(), "slept", "{}", slow.diagnostics());
}
