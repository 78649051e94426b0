//! A pool of workers for one function: a fair queue in front, replacement of dead workers behind.
//!
//! A call goes to the loaded worker with the fewest calls in hand; when every worker is busy it
//! waits in a FIFO queue and the next worker to finish takes it. The pool keeps `min` workers;
//! when a call has waited [`GROW_AFTER`] it starts another (one at a time), up to `max`, and
//! workers above `min` that stay idle for [`IDLE_RETIRE`] are stopped.
//!
//! **Pipelining.** When the function's recent calls took the worker less than
//! [`PIPELINE_BELOW`] each, a call that finds every worker busy may be sent to a worker that has
//! exactly one call in hand instead of waiting: the worker reads it as soon as it has answered
//! the first, without going to sleep and being woken (which, on a loaded machine, costs more
//! than a fast function itself). A slow function is never pipelined, so a call is never stuck
//! behind a long one while another worker is free; a large frame is never pipelined, so writing
//! it cannot block on a worker that waits for its own answer to be read.

use crate::protocol::Load;
use crate::worker::{CallError, Conn, Outcome, Spawner, Worker, WorkerError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a call waits for a busy pool before the pool grows.
pub const GROW_AFTER: Duration = Duration::from_millis(25);
/// How long a worker above the minimum may stay idle before it is stopped.
pub const IDLE_RETIRE: Duration = Duration::from_secs(60);
/// By default, calls are pipelined only while the function's recent calls took the worker less
/// than this each (a moving average; `KELP_PIPELINE_BELOW`).
pub const PIPELINE_BELOW: Duration = Duration::from_millis(1);
/// How long the rest of the pool waits, after the first worker has loaded, for the first call
/// to be answered before it starts anyway.
const FILL_AFTER: Duration = Duration::from_secs(1);
/// Calls measured before pipelining may start.
const PIPELINE_AFTER: u32 = 8;
/// The largest frame pipelined: it must fit the socket's buffer while the worker is busy.
const PIPELINE_MAX_FRAME: usize = 16 * 1024;

/// Why a call got no answer from the function.
#[derive(Debug)]
pub enum CallFailure {
    /// The deadline passed, waiting for a worker or for the answer; a worker running the call
    /// was killed.
    Timeout,
    /// The worker died or broke the protocol while it had the call.
    WorkerLost(String),
    /// An in-process call ran past the deadline and was answered 408 (and counted) by the
    /// watchdog on its connection (`crate::in_process`); it has returned since.
    Abandoned,
}

/// The workers serving one function.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spawner: Spawner,
    load: OnceLock<Load>,
    sched: Mutex<Sched>,
    /// Started before the function was known; loaded by [`Pool::load`].
    unloaded: Mutex<Vec<Worker>>,
    /// Worker processes running or being started.
    live: AtomicUsize,
    min: usize,
    max: usize,
    closed: AtomicBool,
    /// A worker is being added because calls waited.
    growing: AtomicBool,
    last_exit: Mutex<(Option<Instant>, Duration)>,
    /// Told when the first call has been answered.
    first_call: tokio::sync::Notify,
}

/// Who serves the next call.
#[derive(Debug, Default)]
struct Sched {
    /// The loaded workers.
    conns: Vec<Arc<Conn>>,
    /// Calls waiting for a worker, oldest first.
    waiters: VecDeque<Waiter>,
    /// Moving average of the time a worker spends on a call, in nanoseconds.
    mean_nanos: f64,
    /// Calls measured (saturating).
    measured: u32,
    /// Pipelining is on while the moving average is below this.
    pipeline_below: Duration,
    /// Calls sent to a worker that had not answered the previous one.
    pipelined: u64,
}

/// A call waiting for a worker: it takes one with fewer than `depth` calls in hand.
#[derive(Debug)]
struct Waiter {
    depth: usize,
    conn: oneshot::Sender<Arc<Conn>>,
}

impl Sched {
    /// How many calls a worker may have in hand for a call of a frame of `len` bytes to be sent
    /// to it.
    fn depth(&self, len: usize) -> usize {
        let fast = self.measured >= PIPELINE_AFTER && self.mean_nanos < self.pipeline_below.as_nanos() as f64;
        if fast && len <= PIPELINE_MAX_FRAME { 2 } else { 1 }
    }

    /// Claims the usable worker with the fewest calls in hand, if it has fewer than `depth`
    /// (of equals, the one used last: its memory is the warmest).
    fn take(&mut self, depth: usize) -> Option<Arc<Conn>> {
        self.conns.retain(|c| c.usable());
        let conn = self
            .conns
            .iter()
            .filter(|c| c.inflight() < depth)
            .min_by_key(|c| (c.inflight(), std::cmp::Reverse(c.last_used())))?;
        if conn.inflight() > 0 {
            self.pipelined += 1;
        }
        conn.claim();
        Some(conn.clone())
    }

    /// Hands workers with room to the waiting calls, oldest first.
    fn dispatch(&mut self) {
        while let Some(waiter) = self.waiters.front() {
            if waiter.conn.is_closed() {
                self.waiters.pop_front();
                continue;
            }
            let Some(conn) = self.take(waiter.depth) else { return };
            let waiter = self.waiters.pop_front().expect("looked at above");
            if let Err(conn) = waiter.conn.send(conn) {
                conn.unclaim();
            }
        }
    }

    /// Records how long a worker spent on one call.
    fn measure(&mut self, spent: Duration) {
        let nanos = spent.as_nanos() as f64;
        self.mean_nanos = if self.measured == 0 { nanos } else { self.mean_nanos + (nanos - self.mean_nanos) / 8.0 };
        self.measured = self.measured.saturating_add(1);
    }
}

/// A worker handed to a waiting call but not yet taken by it goes back if the call gives up.
struct Handoff<'a> {
    conn: oneshot::Receiver<Arc<Conn>>,
    inner: &'a Inner,
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        self.conn.close();
        if let Ok(conn) = self.conn.try_recv() {
            conn.unclaim();
            self.inner.sched.lock().unwrap().dispatch();
        }
    }
}

impl Pool {
    /// Starts the first worker, which waits for [`Pool::load`]; the others up to `min` start with
    /// [`Pool::fill`]. Calls are pipelined while the function's calls take less than
    /// `pipeline_below` on average. Fails if the interpreter cannot run.
    ///
    /// One worker first, so that it starts (and, with [`Pool::load`], serves) without sharing the
    /// machine's cores with its siblings: a JVM starting beside another takes a third longer.
    pub async fn start(
        spawner: Spawner,
        min: usize,
        max: usize,
        pipeline_below: Duration,
    ) -> Result<Pool, WorkerError> {
        let inner = Arc::new(Inner {
            spawner,
            load: OnceLock::new(),
            sched: Mutex::new(Sched { pipeline_below, ..Sched::default() }),
            unloaded: Mutex::new(Vec::new()),
            live: AtomicUsize::new(1),
            min: min.max(1),
            max: max.max(min),
            closed: AtomicBool::new(false),
            growing: AtomicBool::new(false),
            last_exit: Mutex::new((None, Duration::ZERO)),
            first_call: tokio::sync::Notify::new(),
        });
        let first = Inner::spawn(&inner).await?;
        inner.unloaded.lock().unwrap().push(first);
        tokio::spawn(retire_idle(Arc::downgrade(&inner)));
        Ok(Pool { inner })
    }

    /// Starts workers, in the background, until `min` run or are starting: a pre-warmed runtime
    /// fills its pool while it waits for its function, [`Pool::load`] once the first call is
    /// answered.
    pub fn fill(&self) {
        let inner = &self.inner;
        while inner.live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < inner.min).then_some(n + 1)).is_ok()
        {
            tokio::spawn(Inner::add_worker(inner.clone(), Duration::ZERO));
        }
    }

    /// Gives the waiting workers their function, and returns once the first serves it; the
    /// others join as they load, and the pool is filled to its minimum once the first call has
    /// been answered (or after [`FILL_AFTER`]): the first call of a new instance shares the cores
    /// with no interpreter starting. Fails, naming the reason, if the function does not load.
    pub async fn load(&self, load: Load) -> Result<(), WorkerError> {
        let inner = &self.inner;
        inner.load.set(load).map_err(|_| WorkerError::Load("the function is already loaded".into()))?;
        let mut loads = tokio::task::JoinSet::new();
        for mut worker in std::mem::take(&mut *inner.unloaded.lock().unwrap()) {
            let inner = inner.clone();
            loads.spawn(async move {
                let load = inner.load.get().expect("set above");
                worker.load(load).await.map(|()| worker)
            });
        }
        if let Some(first) = loads.join_next().await {
            Inner::serve(inner, first.expect("loading does not panic")?);
        }
        let rest = inner.clone();
        tokio::spawn(async move {
            while let Some(worker) = loads.join_next().await {
                match worker.expect("loading does not panic") {
                    Ok(worker) => Inner::serve(&rest, worker),
                    // Its process is killed; the exit handler replaces it.
                    Err(e) => tracing::error!(error = %e, "a worker could not load the function"),
                }
            }
        });
        let pool = Arc::downgrade(inner);
        tokio::spawn(async move {
            let Some(first_call) = pool.upgrade() else { return };
            let _ = tokio::time::timeout(FILL_AFTER, first_call.first_call.notified()).await;
            drop(first_call);
            if let Some(inner) = pool.upgrade() {
                Pool { inner }.fill();
            }
        });
        Ok(())
    }

    /// Runs one call (an encoded `invoke` frame) on a worker, in arrival order, answering by
    /// `deadline`. A call that a dying worker never started goes to another worker.
    pub async fn call(&self, mut frame: Vec<u8>, deadline: tokio::time::Instant) -> Result<Outcome, CallFailure> {
        loop {
            let Ok(conn) = tokio::time::timeout_at(deadline, self.acquire(frame.len())).await else {
                return Err(CallFailure::Timeout);
            };
            let conn = conn?;
            match tokio::time::timeout_at(deadline, conn.call(frame)).await {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(CallError::NotStarted(again))) => frame = again,
                Ok(Err(CallError::Lost(e))) => return Err(CallFailure::WorkerLost(e.to_string())),
                Err(_) => {
                    conn.kill();
                    return Err(CallFailure::Timeout);
                }
            }
        }
    }

    /// Waits for a worker with room for a call of a `len`-byte frame, in arrival order.
    async fn acquire(&self, len: usize) -> Result<Arc<Conn>, CallFailure> {
        let inner = &self.inner;
        let (tx, rx) = oneshot::channel();
        {
            let mut sched = inner.sched.lock().unwrap();
            let depth = sched.depth(len);
            // Only when nobody waits, so that no call overtakes an older one.
            if sched.waiters.is_empty()
                && let Some(conn) = sched.take(depth)
            {
                return Ok(conn);
            }
            sched.waiters.push_back(Waiter { depth, conn: tx });
        }
        let mut handoff = Handoff { conn: rx, inner };
        let conn = tokio::select! {
            conn = &mut handoff.conn => conn,
            () = tokio::time::sleep(GROW_AFTER) => {
                Inner::grow(inner);
                (&mut handoff.conn).await
            }
        };
        conn.map_err(|_| CallFailure::WorkerLost("the runtime is shutting down".into()))
    }

    /// Stops every idle worker; busy ones stop when their call ends.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let mut sched = self.inner.sched.lock().unwrap();
        sched.conns.clear();
        sched.waiters.clear();
        drop(sched);
        self.inner.unloaded.lock().unwrap().clear();
    }

    /// Calls sent so far to a worker that had not answered the previous one.
    pub fn pipelined(&self) -> u64 {
        self.inner.sched.lock().unwrap().pipelined
    }

    /// Number of worker processes running or starting.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }
}

impl Inner {
    async fn spawn(this: &Arc<Inner>) -> Result<Worker, WorkerError> {
        let weak = Arc::downgrade(this);
        this.spawner
            .spawn(move |status| {
                if let Some(inner) = weak.upgrade() {
                    tracing::warn!(%status, "worker exited");
                    Inner::lost(&inner);
                }
            })
            .await
    }

    /// Puts a loaded worker to work.
    fn serve(this: &Arc<Inner>, worker: Worker) {
        if this.closed.load(Ordering::Acquire) || worker.exited() {
            return;
        }
        let weak = Arc::downgrade(this);
        let conn = worker.serve(move |spent| {
            if let Some(inner) = weak.upgrade() {
                let mut sched = inner.sched.lock().unwrap();
                sched.measure(spent);
                if sched.measured == 1 {
                    inner.first_call.notify_one();
                }
                sched.dispatch();
            }
        });
        let mut sched = this.sched.lock().unwrap();
        sched.conns.push(conn);
        sched.dispatch();
    }

    /// Starts one more worker, unless one is already being added for growth or the pool is full:
    /// on a busy machine a burst of waiting calls must not start `max` interpreters at once.
    fn grow(this: &Arc<Inner>) {
        if this.growing.swap(true, Ordering::AcqRel) {
            return;
        }
        let grown = this.live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < this.max).then_some(n + 1));
        if grown.is_ok() {
            let this = this.clone();
            tokio::spawn(async move {
                Inner::add_worker(this.clone(), Duration::ZERO).await;
                this.growing.store(false, Ordering::Release);
            });
        } else {
            this.growing.store(false, Ordering::Release);
        }
    }

    /// A worker process ended (or never started): account for it and keep the minimum running.
    fn lost(this: &Arc<Inner>) {
        let remaining = this.live.fetch_sub(1, Ordering::AcqRel) - 1;
        if this.closed.load(Ordering::Acquire) || this.load.get().is_none() || remaining >= this.min {
            return;
        }
        let delay = {
            let mut last = this.last_exit.lock().unwrap();
            let now = Instant::now();
            let quick = last.0.is_some_and(|t| now - t < Duration::from_secs(1));
            last.1 = if quick {
                (last.1 * 2).clamp(Duration::from_millis(50), Duration::from_secs(5))
            } else {
                Duration::ZERO
            };
            last.0 = Some(now);
            last.1
        };
        this.live.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(Inner::add_worker(this.clone(), delay));
    }

    /// Starts one more worker and, once the function is known, loads it and puts it to work;
    /// before, it waits among the unloaded for [`Pool::load`]. `live` already counts it.
    async fn add_worker(this: Arc<Inner>, delay: Duration) {
        tokio::time::sleep(delay).await;
        let mut worker = match Inner::spawn(&this).await {
            Ok(worker) => worker,
            Err(e) => {
                tracing::error!(error = %e, "could not start a worker");
                // A process that was started is accounted for by its exit handler; otherwise here.
                if matches!(e, WorkerError::Spawn { .. } | WorkerError::Socket { .. }) {
                    Inner::lost(&this);
                }
                return;
            }
        };
        let load = {
            // Under the lock that `Pool::load` takes the unloaded ones with, after setting `load`:
            // a worker is either seen there or loads itself here.
            let mut unloaded = this.unloaded.lock().unwrap();
            match this.load.get() {
                Some(load) => load,
                None => return unloaded.push(worker),
            }
        };
        match worker.load(load).await {
            Ok(()) => Inner::serve(&this, worker),
            // Its process is killed; the exit handler replaces it.
            Err(e) => tracing::error!(error = %e, "a worker could not load the function"),
        }
    }
}

/// Stops workers above the minimum that have been idle too long.
async fn retire_idle(pool: Weak<Inner>) {
    loop {
        tokio::time::sleep(IDLE_RETIRE / 4).await;
        let Some(inner) = pool.upgrade() else { return };
        let mut sched = inner.sched.lock().unwrap();
        let mut idle = sched.conns.len().saturating_sub(inner.min);
        while idle > 0 {
            // The least recently used idle worker, if it has been idle long enough.
            let oldest = sched
                .conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.inflight() == 0)
                .min_by_key(|(_, c)| c.last_used())
                .filter(|(_, c)| c.last_used().elapsed() >= IDLE_RETIRE)
                .map(|(i, _)| i);
            let Some(i) = oldest else { break };
            drop(sched.conns.swap_remove(i));
            idle -= 1;
        }
    }
}
