//! One language worker: a process spawned in its own process group, connected over a Unix
//! socket. (With `KELP_IN_PROCESS=1` there are no workers: [`crate::in_process`].)

use crate::language::Language;
use crate::protocol::{self, FrameReader, FromWorker, Load, ProtocolError};
use bytes::Bytes;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

/// Why a worker could not be started or loaded.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The interpreter could not be executed.
    #[error("cannot start the {language} worker with `{interpreter}` (set {env} to the interpreter's path): {cause}")]
    Spawn {
        /// Language name.
        language: &'static str,
        /// The interpreter command.
        interpreter: String,
        /// The variable that names the interpreter.
        env: &'static str,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The worker process ended before it was ready.
    #[error("the {language} worker exited before it was ready ({status}); its output above says why")]
    Exited {
        /// Language name.
        language: &'static str,
        /// Its exit status.
        status: ExitStatus,
    },
    /// The worker did not connect and say `hello` in time (its language's `ready_timeout`).
    #[error("the {language} worker did not connect and say hello within {} s", limit.as_secs_f64())]
    NotReady {
        /// Language name.
        language: &'static str,
        /// The time limit.
        limit: Duration,
    },
    /// The function could not be loaded.
    #[error("function failed to load: {0}")]
    Load(String),
    /// The conversation with the worker failed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The function's library could not be loaded into the front (`KELP_IN_PROCESS=1`).
    #[error("KELP_IN_PROCESS=1: {0}")]
    InProcess(String),
    /// Setting up the socket failed.
    #[error("worker socket {path}: {cause}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
}

/// Starts workers of one language.
#[derive(Debug)]
pub struct Spawner {
    lang: &'static Language,
    interpreter: String,
    /// The worker script, or for a compiled language the build directory.
    script: PathBuf,
    /// Whether `script` is a build (`crate::build`) rather than a script.
    built: bool,
    socket_dir: PathBuf,
    next_id: AtomicU64,
}

impl Spawner {
    /// Prepares to start workers of `lang`, writing its script into `cache_dir` once and using a
    /// private directory for the sockets.
    pub fn new(lang: &'static Language, cache_dir: &std::path::Path) -> std::io::Result<Self> {
        let (file, source) = lang.worker;
        let digest = crate::deps::hex(&<sha2::Sha256 as sha2::Digest>::digest(source.as_bytes()));
        let dir = cache_dir.join("workers").join(&digest[..16]);
        let script = dir.join(file);
        if std::fs::read_to_string(&script).ok().as_deref() != Some(source) {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{file}.{}", std::process::id()));
            std::fs::write(&tmp, source)?;
            std::fs::rename(&tmp, &script)?;
        }
        Self::starting(lang, script, false)
    }

    /// Prepares to start workers of the compiled language `lang` from the build in `dir`
    /// (`crate::build::ensure`).
    pub fn built(lang: &'static Language, dir: &std::path::Path) -> std::io::Result<Self> {
        Self::starting(lang, dir.to_owned(), true)
    }

    fn starting(lang: &'static Language, script: PathBuf, built: bool) -> std::io::Result<Self> {
        let socket_dir = std::env::temp_dir().join(format!("kelp-runtime-{}", std::process::id()));
        std::fs::create_dir_all(&socket_dir)?;
        std::fs::set_permissions(&socket_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let interpreter = lang.interpreter();
        Ok(Spawner { lang, interpreter, script, built, socket_dir, next_id: AtomicU64::new(1) })
    }

    /// The command of one worker, without its socket.
    fn command(&self) -> tokio::process::Command {
        match (&self.lang.build, self.built) {
            (Some(build), true) => (build.worker)(&self.script),
            _ => {
                let mut cmd = tokio::process::Command::new(&self.interpreter);
                cmd.args(self.lang.interpreter_args).arg(&self.script);
                cmd
            }
        }
    }

    /// The language this spawner starts.
    pub fn language(&self) -> &'static Language {
        self.lang
    }

    /// Starts a worker and waits for its `hello`, for at most its language's `ready_timeout`
    /// (then the worker is killed). `on_exit` runs when the process ends.
    pub async fn spawn(&self, on_exit: impl FnOnce(ExitStatus) + Send + 'static) -> Result<Worker, WorkerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = self.socket_dir.join(format!("w{id}.sock"));
        let socket_err = |cause| WorkerError::Socket { path: path.clone(), cause };
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(socket_err)?;
        let mut child =
            self.command().env("KELP_WORKER_SOCKET", &path).stdin(Stdio::null()).process_group(0).spawn().map_err(
                |cause| WorkerError::Spawn {
                    language: self.lang.name,
                    interpreter: self.interpreter.clone(),
                    env: self.lang.interpreter.0,
                    cause,
                },
            )?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let deadline = tokio::time::Instant::now() + self.lang.ready_timeout;
        let not_ready = || WorkerError::NotReady { language: self.lang.name, limit: self.lang.ready_timeout };
        let stream = tokio::select! {
            accepted = listener.accept() => accepted.map(|(s, _)| s).map_err(|e| ProtocolError::Io(e).into()),
            status = child.wait() => Err(match status {
                Ok(status) => WorkerError::Exited { language: self.lang.name, status },
                Err(e) => ProtocolError::Io(e).into(),
            }),
            () = tokio::time::sleep_until(deadline) => Err(not_ready()),
        };
        let _ = std::fs::remove_file(&path);
        let exited = Arc::new(AtomicBool::new(false));
        let flag = exited.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            flag.store(true, Ordering::Release);
            on_exit(status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(-1)));
        });
        let (read, write) = stream.inspect_err(|_| crate::group::kill_child_group(pid))?.into_split();
        let process = Process { pid, exited };
        let mut reader = FrameReader::new(read);
        let hello = tokio::time::timeout_at(deadline, reader.next());
        match hello.await.map_err(|_| not_ready())?? {
            (FromWorker::Hello { .. }, _) => Ok(Worker { process, reader, writer: write }),
            (other, _) => Err(ProtocolError::Invalid(format!("expected hello, got {other:?}")).into()),
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}

/// A worker's process. Dropping it kills the process's group.
#[derive(Debug)]
struct Process {
    pid: i32,
    exited: Arc<AtomicBool>,
}

impl Process {
    fn exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.exited() {
            // Everything it started that stayed in its group goes with it.
            crate::group::kill_child_group(self.pid);
        }
    }
}

/// A started worker, before it serves calls ([`Worker::serve`]). Dropping it kills its process
/// group.
#[derive(Debug)]
pub struct Worker {
    process: Process,
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// What a worker answered for one invocation.
#[derive(Debug)]
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// Headers the function set or the worker added.
    pub headers: Vec<(String, String)>,
    /// Whether the function raised.
    pub failed: bool,
    /// The response body.
    pub body: Bytes,
}

impl Worker {
    /// Sends `load` and waits for the answer.
    pub async fn load(&mut self, load: &Load) -> Result<(), WorkerError> {
        protocol::write_frame(&mut self.writer, &load_header(load), b"").await?;
        loaded(self.reader.next().await?)
    }

    /// Whether the process has ended.
    pub fn exited(&self) -> bool {
        self.process.exited()
    }

    /// Starts serving calls: a task of its own writes the calls sent to the returned [`Conn`] and
    /// reads their results, in order. `done` runs after each result with how long the worker
    /// spent on that call (from when it could start it to its result).
    pub fn serve(self, done: impl Fn(Duration) + Send + 'static) -> Arc<Conn> {
        let (calls, queue) = mpsc::unbounded_channel();
        let state = Arc::new(ConnState {
            inflight: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        });
        let Worker { process, reader, writer } = self;
        let pid = process.pid;
        let exited = process.exited.clone();
        tokio::spawn(connection(reader, writer, queue, state.clone(), done, move || {
            if !exited.load(Ordering::Acquire) {
                crate::group::kill_child_group(pid);
            }
        }));
        Arc::new(Conn { process, calls, state })
    }
}

/// The header of `load`'s frame.
pub(crate) fn load_header(load: &Load) -> serde_json::Value {
    serde_json::json!({ "type": "load", "code_dir": load.code_dir, "module": load.module,
        "handler": load.handler, "paths": load.paths, "env": load.env, "context": load.context })
}

/// The function loaded, or why not, from the answer to `load`.
pub(crate) fn loaded(answer: (FromWorker, Bytes)) -> Result<(), WorkerError> {
    match answer {
        (FromWorker::Loaded, _) => Ok(()),
        (FromWorker::LoadError { message }, _) => Err(WorkerError::Load(message)),
        (other, _) => Err(ProtocolError::Invalid(format!("expected loaded, got {other:?}")).into()),
    }
}

/// One call sent to a worker's connection.
#[derive(Debug)]
struct Call {
    /// The encoded `invoke` frame.
    frame: Vec<u8>,
    /// Where its result goes.
    reply: oneshot::Sender<Result<Outcome, CallError>>,
}

/// Why a call got no result from its worker.
#[derive(Debug)]
pub enum CallError {
    /// The worker ended, or broke the protocol, while the call may have been running.
    Lost(ProtocolError),
    /// The worker ended before it started this call (it was queued behind the one that ended it):
    /// the call can go to another worker. Holds the call's frame.
    NotStarted(Vec<u8>),
}

/// A loaded worker serving calls. Its calls run one at a time, in the order they were sent; a
/// call may be sent before the previous one's result has come (pipelined), which spares the
/// worker a sleep and a wake-up between them. Dropping the last handle kills the process group.
#[derive(Debug)]
pub struct Conn {
    process: Process,
    calls: mpsc::UnboundedSender<Call>,
    state: Arc<ConnState>,
}

/// What a connection's task and its handles share.
#[derive(Debug)]
struct ConnState {
    /// Calls sent whose result has not been read.
    inflight: AtomicUsize,
    /// The connection failed (the worker broke the protocol, or its stream ended).
    broken: AtomicBool,
    /// When the worker last finished a call (or was started).
    last_used: Mutex<Instant>,
}

impl ConnState {
    /// A call's answer came at `now`.
    fn answered(&self, now: Instant) {
        *self.last_used.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Conn {
    /// Sends one encoded `invoke` frame and waits for its result.
    pub async fn call(&self, frame: Vec<u8>) -> Result<Outcome, CallError> {
        let (reply, result) = oneshot::channel();
        if let Err(mpsc::error::SendError(call)) = self.calls.send(Call { frame, reply }) {
            return Err(CallError::NotStarted(call.frame));
        }
        result.await.unwrap_or_else(|_| {
            Err(CallError::Lost(ProtocolError::Invalid("the worker's connection ended without an answer".into())))
        })
    }

    /// Calls sent whose result has not been read.
    pub fn inflight(&self) -> usize {
        self.state.inflight.load(Ordering::Acquire)
    }

    /// Counts one more call about to be sent.
    pub fn claim(&self) {
        self.state.inflight.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back a [`Conn::claim`] whose call was never sent.
    pub fn unclaim(&self) {
        self.state.inflight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the worker can take calls: its process runs and its connection works.
    pub fn usable(&self) -> bool {
        !self.process.exited() && !self.state.broken.load(Ordering::Acquire)
    }

    /// When the worker last finished a call (or was started).
    pub fn last_used(&self) -> Instant {
        *self.state.last_used.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Kills the worker's process group (a call ran past its timeout); its calls end with
    /// [`CallError`]s.
    pub fn kill(&self) {
        if !self.process.exited() {
            crate::group::kill_child_group(self.process.pid);
        }
    }
}

/// The task serving one worker's connection: sends calls as they come, reads results in order.
async fn connection(
    mut reader: FrameReader<OwnedReadHalf>,
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Call>,
    state: Arc<ConnState>,
    done: impl Fn(Duration),
    kill: impl FnOnce(),
) {
    // Calls written, with when the worker could start each; results come back in this order.
    let mut pending: VecDeque<(Call, Instant)> = VecDeque::new();
    let mut last_result = Instant::now();
    let failure = loop {
        tokio::select! {
            frame = reader.next(), if !pending.is_empty() => match frame.and_then(outcome) {
                Ok(outcome) => {
                    let (call, sent) = pending.pop_front().expect("a result is read only for a pending call");
                    let now = Instant::now();
                    let spent = now.saturating_duration_since(sent.max(last_result));
                    last_result = now;
                    state.answered(now);
                    let _ = call.reply.send(Ok(outcome));
                    done(spent);
                }
                Err(e) => break e,
            },
            call = queue.recv() => match call {
                Some(call) => {
                    // Calls are written only when they fit the socket's buffer unread (the pool
                    // pipelines small frames only), so this cannot wait on a worker that is
                    // itself waiting for its result to be read.
                    let written = writer.write_all(&call.frame).await;
                    pending.push_back((call, Instant::now()));
                    if let Err(e) = written {
                        break e.into();
                    }
                }
                // Every handle is gone: the process is being killed.
                None => return,
            },
        }
    };
    state.broken.store(true, Ordering::Release);
    kill();
    // The first pending call may have been running; a worker starts a call only after the
    // previous result, so the others never started.
    let mut pending = pending.into_iter().map(|(call, _)| call);
    if let Some(head) = pending.next() {
        let _ = head.reply.send(Err(CallError::Lost(failure)));
    }
    for call in pending {
        let _ = call.reply.send(Err(CallError::NotStarted(call.frame)));
    }
    // Calls still queued were never written.
    hand_back(queue);
}

/// What a worker's answer to a call says: its result, or that it broke the protocol.
pub(crate) fn outcome((answer, body): (FromWorker, Bytes)) -> Result<Outcome, ProtocolError> {
    match answer {
        FromWorker::Result { status, headers, failed } => Ok(Outcome { status, headers, failed, body }),
        other => Err(ProtocolError::Invalid(format!("expected result, got {other:?}"))),
    }
}

/// Answers every call of `queue` as never started (they go to another worker), and closes it.
fn hand_back(mut queue: mpsc::UnboundedReceiver<Call>) {
    queue.close();
    while let Ok(call) = queue.try_recv() {
        let _ = call.reply.send(Err(CallError::NotStarted(call.frame)));
    }
}
