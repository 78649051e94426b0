//! In-process functions (`KELP_IN_PROCESS=1`): the function's library ([`crate::native`]) is
//! called inline, on the front thread that read the request, with no worker process and no
//! hand-off to another thread. A call costs a function call: no socket write or read, and no
//! thread woken to run it or to take its answer (the two wake-ups were most of what a call of a
//! small function cost: README.md, "Compiled languages").
//!
//! At most `KELP_MAX_WORKERS` calls run at once ([`InProcess::new`]'s `max_calls`, the workers a
//! worker-process front would have); a call waits its turn, within its deadline. The front has
//! threads beyond those ([`threads`]), so that `/healthz`, `/metrics` and the reading of
//! requests go on while every call runs; a call that blocks its thread for longer than 5 ms
//! makes the watchdog wake another (Tokio would not: see `Watchdog::nudge`).
//!
//! What the function gives up for that: its own process. A panic is still answered 500, but a
//! function that exits or aborts takes the front with it (the instance restarts, as a pod's
//! container does). A call past its timeout cannot be stopped: a watchdog thread answers it 408
//! on its connection itself ([`Spare`]) and closes that connection, gives its turn to the next
//! call, and leaves the call to its thread. After [`MAX_ABANDONED`] such calls still running, the
//! front exits so that the instance is restarted with none.

use crate::language::Language;
use crate::native::Library;
use crate::pool::CallFailure;
use crate::protocol::ProtocolError;
use crate::worker::{Outcome, WorkerError, outcome};
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;

/// Calls left running past their timeout, in the whole process, beyond which the front exits.
pub const MAX_ABANDONED: usize = 4;

/// Calls still running that timed out.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// What a hung call is answered, written by the watchdog on its connection.
const TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: 24\r\nconnection: close\r\n\r\nRequest timeout exceeded";

/// The front's threads for an in-process function of at most `max_calls` calls at once, beside
/// `io_threads` for the rest: a thread for each call, and one for each call that may be left to
/// its thread before the front exits.
pub fn threads(io_threads: usize, max_calls: usize) -> usize {
    io_threads.saturating_add(max_calls).saturating_add(MAX_ABANDONED)
}

/// Loads the library of `lang`'s build in `build_dir` (none for a language that is not
/// compiled) into this process. Fails when the language builds no library, or it cannot be loaded.
pub fn library(lang: &Language, build_dir: Option<&Path>) -> Result<Library, WorkerError> {
    let file = lang.build.as_ref().and_then(|build| build.library);
    let (Some(file), Some(dir)) = (file, build_dir) else {
        return Err(WorkerError::InProcess(format!(
            "{} functions run in worker processes only (in process: Rust and Go)",
            lang.title
        )));
    };
    let path = dir.join(file);
    if !path.exists() {
        let log = std::fs::read_to_string(dir.join(format!("{file}.log"))).unwrap_or_default();
        let said: Vec<&str> = log.lines().take(5).collect();
        return Err(WorkerError::InProcess(format!(
            "the build in {} has no {file}: building it failed (a Go library needs a C compiler where the function \
             is built){}{}",
            dir.display(),
            if said.is_empty() { "" } else { ":\n" },
            said.join("\n")
        )));
    }
    Library::open(&path).map_err(WorkerError::InProcess)
}

/// A function loaded into the front, and the calls running in it.
#[derive(Debug)]
pub struct InProcess {
    library: Library,
    /// One for each call that may start.
    turns: Arc<Semaphore>,
    watchdog: Arc<Watchdog>,
}

impl InProcess {
    /// Calls `library`, at most `max_calls` at once; starts the watchdog thread. Runs on the
    /// front's Tokio runtime.
    pub fn new(library: Library, max_calls: usize) -> std::io::Result<Arc<Self>> {
        let turns = Arc::new(Semaphore::new(max_calls.max(1)));
        let watchdog = Arc::new(Watchdog {
            running: Mutex::default(),
            wake: Condvar::new(),
            turns: turns.clone(),
            runtime: tokio::runtime::Handle::current(),
            on_timeout: OnceLock::new(),
        });
        let watching = watchdog.clone();
        std::thread::Builder::new().name("kelp-watchdog".into()).spawn(move || watching.run())?;
        Ok(Arc::new(InProcess { library, turns, watchdog }))
    }

    /// Sends a frame (the `load`) outside any call's turn, and returns the answer.
    pub fn send(&self, frame: &[u8]) -> Result<(crate::protocol::FromWorker, bytes::Bytes), ProtocolError> {
        self.library.call(frame)
    }

    /// Runs `f` for each call the watchdog answers 408, with the request's method and how long
    /// it had run (for the metrics; a call left to its thread may never return). Set once.
    pub fn on_timeout(&self, f: impl Fn(&http::Method, Duration) + Send + Sync + 'static) {
        let _ = self.watchdog.on_timeout.set(Box::new(f));
    }

    /// Runs one call (an encoded `invoke` frame of a `method` request that came at `started`) on
    /// this thread once its turn comes, answering by `deadline`. Past the deadline the watchdog
    /// answers 408 on `conn` (when there is one) and this returns [`CallFailure::Abandoned`]
    /// whenever the function returns.
    pub async fn call(
        &self,
        frame: &[u8],
        request: (&http::Method, Instant),
        deadline: tokio::time::Instant,
        conn: Option<&Arc<Spare>>,
    ) -> Result<Outcome, CallFailure> {
        let turn = match tokio::time::timeout_at(deadline, self.turns.acquire()).await {
            Ok(Ok(turn)) => turn,
            Ok(Err(_)) => return Err(CallFailure::WorkerLost("the runtime is shutting down".into())),
            Err(_) => return Err(CallFailure::Timeout),
        };
        let (method, started) = request;
        let id = self.watchdog.start(deadline.into_std(), conn.cloned(), (method.clone(), started));
        let answer = self.library.call(frame);
        if self.watchdog.finish(id) {
            drop(turn);
            answer.and_then(outcome).map_err(|e| CallFailure::WorkerLost(e.to_string()))
        } else {
            // The watchdog answered it and gave its turn to the next call.
            turn.forget();
            ABANDONED.fetch_sub(1, Ordering::AcqRel);
            Err(CallFailure::Abandoned)
        }
    }
}

/// A duplicate of an accepted connection's socket, through which the watchdog answers a hung
/// call, with whether the front's HTTP server holds bytes for it that the socket did not take.
#[derive(Debug)]
pub struct Spare {
    socket: SpareSocket,
    unflushed: Arc<AtomicBool>,
}

/// The duplicated socket.
#[derive(Debug)]
pub enum SpareSocket {
    /// A TCP connection.
    Tcp(std::net::TcpStream),
    /// A Unix socket connection.
    Unix(std::os::unix::net::UnixStream),
}

impl Spare {
    /// The spare of the connection `stream`, whose socket `socket` duplicates.
    pub fn new<Io>(socket: SpareSocket, stream: &Watched<Io>) -> Arc<Spare> {
        Arc::new(Spare { socket, unflushed: stream.unflushed.clone() })
    }

    /// Answers the call running on the connection 408 (unless bytes of an earlier answer are
    /// still waiting, which it would cut into) and closes the connection.
    fn time_out(&self) {
        let answer = !self.unflushed.load(Ordering::Acquire);
        let closed = match &self.socket {
            SpareSocket::Tcp(s) => answer_and_close(s, answer, std::net::TcpStream::shutdown),
            SpareSocket::Unix(s) => answer_and_close(s, answer, std::os::unix::net::UnixStream::shutdown),
        };
        if let Err(e) = closed {
            tracing::debug!(error = %e, "closing the connection of a timed-out call");
        }
    }
}

/// Writes the 408 on `socket` (when `answer`), then shuts it down both ways with `shutdown`.
fn answer_and_close<S>(
    mut socket: &S,
    answer: bool,
    shutdown: fn(&S, std::net::Shutdown) -> std::io::Result<()>,
) -> std::io::Result<()>
where
    for<'a> &'a S: Write,
{
    if answer {
        let _ = socket.write(TIMEOUT_RESPONSE);
    }
    shutdown(socket, std::net::Shutdown::Both)
}

/// A connection's stream that records whether its last write was refused (the server then holds
/// the bytes).
#[derive(Debug)]
pub struct Watched<Io> {
    io: Io,
    unflushed: Arc<AtomicBool>,
}

impl<Io> Watched<Io> {
    /// Watches the writes to `io`.
    pub fn new(io: Io) -> Self {
        Watched { io, unflushed: Arc::new(AtomicBool::new(false)) }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<Io> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<Io> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.unflushed.store(written.is_pending(), Ordering::Release);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.unflushed.store(written.is_pending(), Ordering::Release);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Watches the running calls from a thread of its own (the front's threads may all be in calls):
/// answers those past their deadline, and nudges the runtime for those running longer than
/// [`STALL`]. It sleeps until the next of those moments, and while no call runs until one starts.
struct Watchdog {
    running: Mutex<Running>,
    wake: Condvar,
    turns: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
    on_timeout: OnceLock<TimeoutHook>,
}

/// What runs for each call answered 408 by the watchdog: its method, and how long it had run.
type TimeoutHook = Box<dyn Fn(&http::Method, Duration) + Send + Sync>;

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").field("running", &self.running).field("turns", &self.turns).finish_non_exhaustive()
    }
}

/// The calls running.
#[derive(Debug, Default)]
struct Running {
    next_id: u64,
    calls: Vec<RunningCall>,
    /// When the watchdog wakes next; `None` while it waits for a call to start.
    next_wake: Option<Instant>,
}

/// One running call.
#[derive(Debug)]
struct RunningCall {
    id: u64,
    started: Instant,
    deadline: Instant,
    conn: Option<Arc<Spare>>,
    /// The request's method, and when it came.
    request: (http::Method, Instant),
    /// The runtime was nudged for it.
    nudged: bool,
}

impl RunningCall {
    /// When the watchdog must next look at it.
    fn next_look(&self) -> Instant {
        if self.nudged { self.deadline } else { self.deadline.min(self.started + STALL) }
    }
}

/// A call running longer than this makes the watchdog nudge the runtime (see [`Watchdog::nudge`]).
const STALL: std::time::Duration = std::time::Duration::from_millis(5);

impl Watchdog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A call starts; returns its id for [`Watchdog::finish`].
    fn start(&self, deadline: Instant, conn: Option<Arc<Spare>>, request: (http::Method, Instant)) -> u64 {
        let mut running = self.lock();
        let id = running.next_id;
        running.next_id = id.wrapping_add(1);
        let call = RunningCall { id, started: Instant::now(), deadline, conn, request, nudged: false };
        // Woken only when this call needs a look before the watchdog's next one: under load, the
        // calls before it have already set an earlier wake.
        if running.next_wake.is_none_or(|next| call.next_look() < next) {
            running.next_wake = Some(call.next_look());
            self.wake.notify_one();
        }
        running.calls.push(call);
        id
    }

    /// The call `id` returned: whether it was still its own (not timed out and answered by the
    /// watchdog).
    fn finish(&self, id: u64) -> bool {
        let mut running = self.lock();
        match running.calls.iter().position(|c| c.id == id) {
            Some(i) => {
                running.calls.swap_remove(i);
                true
            }
            None => false,
        }
    }

    fn run(&self) {
        let mut running = self.lock();
        loop {
            let now = Instant::now();
            for call in running.calls.extract_if(.., |c| c.deadline <= now) {
                self.abandon(call);
            }
            let mut stalled = false;
            for call in running.calls.iter_mut().filter(|c| !c.nudged && c.started + STALL <= now) {
                call.nudged = true;
                stalled = true;
            }
            if stalled {
                self.nudge();
            }
            running.next_wake = running.calls.iter().map(RunningCall::next_look).min();
            running = match running.next_wake {
                Some(next) => self.wake.wait_timeout(running, next - now).unwrap_or_else(|e| e.into_inner()).0,
                None => self.wake.wait_while(running, |r| r.next_wake.is_none()).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Wakes a thread of the runtime. A call blocks the thread it runs on, and the runtime
    /// wakes no other to watch the sockets and timers (which the blocked thread may have been
    /// the one to do): the woken thread runs an empty task, then does.
    fn nudge(&self) {
        drop(self.runtime.spawn(async {}));
    }

    /// Answers a call past its deadline and leaves it to its thread; past [`MAX_ABANDONED`] of
    /// them still running, exits the process. Runs with the calls locked, so that the call's
    /// own thread, should it return now, finds it answered only once the answer is written.
    fn abandon(&self, call: RunningCall) {
        if let Some(conn) = &call.conn {
            conn.time_out();
        }
        if let Some(on_timeout) = self.on_timeout.get() {
            let (method, started) = &call.request;
            on_timeout(method, started.elapsed());
        }
        self.turns.add_permits(1);
        let abandoned = ABANDONED.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::warn!(
            abandoned,
            "request timeout exceeded; answered 408 and the call left to its thread (KELP_IN_PROCESS=1)"
        );
        if abandoned > MAX_ABANDONED {
            tracing::error!(
                abandoned,
                "calls of the in-process function are still running past their timeout; exiting so that the \
                 instance restarts without them (KELP_IN_PROCESS=1)"
            );
            std::process::exit(70);
        }
    }
}
