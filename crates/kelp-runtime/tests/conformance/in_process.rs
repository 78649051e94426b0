//! `KELP_IN_PROCESS=1` (`kelp_runtime::native`): a Rust or Go function runs in the front's own
//! process, with the same answers as in a worker (the data cases run on it too), and what it
//! gives up for that: a call past its timeout is answered 408 and left to its thread, and a
//! function that exits takes the front with it.

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

/// A call past `FUNC_TIMEOUT` is answered 408 within the timeout, and the next calls are served
/// by a new thread while the old one spins on.
pub(crate) fn timeout(rt: &Runtime) {
    crate::behaviour::spin_gets_408s(rt);
    let slow = Function::new(rt, "conf", "slow").env("FUNC_TIMEOUT", "1").start().ready();
    assert_eq!(slow.get("/?s=30").status, 408, "{}", slow.diagnostics());
    let r = slow.get("/?s=0");
    assert_eq!((r.status, r.text().as_str()), (200, "slept"), "after the timeout\n{}", slow.diagnostics());
}

/// Past `kelp_runtime::native::MAX_ABANDONED` calls still running after their timeout, the front
/// exits (status 70) so that its instance is restarted without them.
pub(crate) fn abandoned_calls_end_the_front(rt: &Runtime) {
    let mut spin = Function::new(rt, "conf", "spin").env("FUNC_TIMEOUT", "0.2").start().ready();
    for _ in 0..kelp_runtime::native::MAX_ABANDONED {
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

/// A call pipelined behind one that runs past its timeout never started: it is handed back when
/// the hung call is abandoned and served by the thread that replaces it, while the hung call
/// gets 408.
pub(crate) fn pipelined_call_outlives_an_abandoned_one(rt: &Runtime) {
    let slow = Function::new(rt, "conf", "slow").env("FUNC_TIMEOUT", "1");
    let f = crate::behaviour::pipelining_one_worker(slow, "/?s=0", "slept");
    let before = crate::behaviour::pipelined(&f);
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
    assert!(took < Duration::from_secs(5), "the queued call waited {took:?}\n{}", f.diagnostics());
    assert_eq!(crate::behaviour::pipelined(&f), before + 1, "the second call was not pipelined\n{}", f.diagnostics());
}
