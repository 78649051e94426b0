//! A pool of workers for one function: a fair queue in front, replacement of dead workers behind.
//!
//! Every idle, loaded worker stands for one permit of a FIFO semaphore, so requests are served in
//! arrival order when all workers are busy. The pool keeps `min` workers; when a request has waited
//! [`GROW_AFTER`] it starts another (one at a time), up to `max`, and workers above `min` that stay
//! idle for [`IDLE_RETIRE`] are stopped.

use crate::protocol::Load;
use crate::worker::{Outcome, Spawner, Worker, WorkerError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long a request waits for a busy pool before the pool grows.
pub const GROW_AFTER: Duration = Duration::from_millis(25);
/// How long a worker above the minimum may stay idle before it is stopped.
pub const IDLE_RETIRE: Duration = Duration::from_secs(60);

/// The workers serving one function.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spawner: Spawner,
    load: OnceLock<Load>,
    permits: Semaphore,
    idle: Mutex<Vec<Worker>>,
    /// Started before the function was known; loaded by [`Pool::load`].
    unloaded: Mutex<Vec<Worker>>,
    /// Worker processes running or being started.
    live: AtomicUsize,
    min: usize,
    max: usize,
    closed: AtomicBool,
    /// A worker is being added because requests waited.
    growing: AtomicBool,
    last_exit: Mutex<(Option<Instant>, Duration)>,
}

impl Pool {
    /// Starts `min` workers, which wait for [`Pool::load`]. Fails if the interpreter cannot run.
    pub async fn start(spawner: Spawner, min: usize, max: usize) -> Result<Pool, WorkerError> {
        let inner = Arc::new(Inner {
            spawner,
            load: OnceLock::new(),
            permits: Semaphore::new(0),
            idle: Mutex::new(Vec::new()),
            unloaded: Mutex::new(Vec::new()),
            live: AtomicUsize::new(min),
            min,
            max: max.max(min),
            closed: AtomicBool::new(false),
            growing: AtomicBool::new(false),
            last_exit: Mutex::new((None, Duration::ZERO)),
        });
        let mut spawns = tokio::task::JoinSet::new();
        for _ in 0..min {
            let inner = inner.clone();
            spawns.spawn(async move { Inner::spawn(&inner).await });
        }
        while let Some(worker) = spawns.join_next().await {
            let worker = worker.expect("spawning does not panic")?;
            inner.unloaded.lock().unwrap().push(worker);
        }
        tokio::spawn(retire_idle(Arc::downgrade(&inner)));
        Ok(Pool { inner })
    }

    /// Gives the waiting workers their function. Fails, naming the reason, if it does not load.
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
        while let Some(worker) = loads.join_next().await {
            inner.release(worker.expect("loading does not panic")?);
        }
        Ok(())
    }

    /// Waits for an idle worker, in arrival order.
    pub async fn acquire(&self) -> Lease {
        let inner = &self.inner;
        loop {
            // An idle worker is taken without arming the growth timer (the common case).
            let permit = match inner.permits.try_acquire() {
                Ok(permit) => Ok(permit),
                Err(_) => {
                    let acquire = inner.permits.acquire();
                    tokio::pin!(acquire);
                    tokio::select! {
                        p = &mut acquire => p,
                        () = tokio::time::sleep(GROW_AFTER) => {
                            Inner::grow(inner);
                            acquire.await
                        }
                    }
                }
            };
            permit.expect("the semaphore is never closed").forget();
            let worker = inner.idle.lock().unwrap().pop();
            match worker {
                Some(w) if !w.exited() => return Lease { worker: Some(w), pool: inner.clone() },
                // It died while idle; its exit handler already started a replacement.
                _ => continue,
            }
        }
    }

    /// Stops every idle worker; busy ones stop when their request ends.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.idle.lock().unwrap().clear();
        self.inner.unloaded.lock().unwrap().clear();
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

    /// Returns a worker to the idle set.
    fn release(&self, worker: Worker) {
        if self.closed.load(Ordering::Acquire) || worker.exited() {
            return;
        }
        self.idle.lock().unwrap().push(worker);
        self.permits.add_permits(1);
    }

    /// Starts one more worker, unless one is already being added for growth or the pool is full:
    /// on a busy machine a burst of waiting requests must not start `max` interpreters at once.
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

    /// Starts and loads one more worker; `live` already counts it.
    async fn add_worker(this: Arc<Inner>, delay: Duration) {
        tokio::time::sleep(delay).await;
        let load = this.load.get().expect("workers are added only once the function is loaded");
        let started = match Inner::spawn(&this).await {
            Ok(mut worker) => worker.load(load).await.map(|()| worker),
            Err(e) => Err(e),
        };
        match started {
            Ok(worker) => this.release(worker),
            Err(e) => {
                tracing::error!(error = %e, "could not start a worker");
                // A process that was started is accounted for by its exit handler; otherwise here.
                if matches!(e, WorkerError::Spawn { .. } | WorkerError::Socket { .. }) {
                    Inner::lost(&this);
                }
            }
        }
    }
}

/// Stops workers above the minimum that have been idle too long.
async fn retire_idle(pool: Weak<Inner>) {
    loop {
        tokio::time::sleep(IDLE_RETIRE / 4).await;
        let Some(inner) = pool.upgrade() else { return };
        while inner.live.load(Ordering::Acquire) > inner.min {
            let Ok(permit) = inner.permits.try_acquire() else { break };
            let mut idle = inner.idle.lock().unwrap();
            // The bottom of the stack is the least recently used worker.
            if idle.first().is_some_and(|w| w.last_used.elapsed() >= IDLE_RETIRE) {
                permit.forget();
                drop(idle.remove(0));
            } else {
                break;
            }
        }
    }
}

/// A worker taken from the pool for one request; it goes back when the lease is dropped.
#[derive(Debug)]
pub struct Lease {
    worker: Option<Worker>,
    pool: Arc<Inner>,
}

impl Lease {
    /// Runs one invocation. On any protocol error the worker is discarded (it is dead or confused).
    pub async fn invoke(&mut self, frame: &[u8]) -> Result<Outcome, crate::protocol::ProtocolError> {
        let worker = self.worker.as_mut().expect("a lease holds its worker until dropped");
        let result = worker.invoke(frame).await;
        if result.is_err() {
            self.worker = None;
        }
        result
    }

    /// Kills the worker (it ran past its timeout); the pool starts a replacement.
    pub fn kill(mut self) {
        self.worker = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.release(worker);
        }
    }
}
