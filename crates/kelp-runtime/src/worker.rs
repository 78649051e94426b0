//! One language worker process: spawned in its own process group, connected over a Unix socket.

use crate::language::Language;
use crate::protocol::{self, FromWorker, Load, ProtocolError};
use bytes::Bytes;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

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
        let mut worker = Worker {
            pid,
            reader: BufReader::with_capacity(64 * 1024, read),
            writer: write,
            exited,
            last_used: Instant::now(),
        };
        let hello = tokio::time::timeout_at(deadline, protocol::read_frame(&mut worker.reader));
        match hello.await.map_err(|_| not_ready())?? {
            (FromWorker::Hello { .. }, _) => Ok(worker),
            (other, _) => Err(ProtocolError::Invalid(format!("expected hello, got {other:?}")).into()),
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}

/// A running worker. Dropping it kills its process group.
#[derive(Debug)]
pub struct Worker {
    pid: i32,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    exited: Arc<AtomicBool>,
    /// When the worker last finished a request (or was started).
    pub last_used: Instant,
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
        let header = serde_json::json!({ "type": "load", "code_dir": load.code_dir, "module": load.module,
            "handler": load.handler, "paths": load.paths, "env": load.env, "context": load.context });
        protocol::write_frame(&mut self.writer, &header, b"").await?;
        match protocol::read_frame(&mut self.reader).await? {
            (FromWorker::Loaded, _) => Ok(()),
            (FromWorker::LoadError { message }, _) => Err(WorkerError::Load(message)),
            (other, _) => Err(ProtocolError::Invalid(format!("expected loaded, got {other:?}")).into()),
        }
    }

    /// Sends one encoded `invoke` frame and reads the result.
    pub async fn invoke(&mut self, frame: &[u8]) -> Result<Outcome, ProtocolError> {
        self.writer.write_all(frame).await?;
        let outcome = match protocol::read_frame(&mut self.reader).await? {
            (FromWorker::Result { status, headers, failed }, body) => {
                Outcome { status, headers, failed, body: body.into() }
            }
            (other, _) => return Err(ProtocolError::Invalid(format!("expected result, got {other:?}"))),
        };
        self.last_used = Instant::now();
        Ok(outcome)
    }

    /// Whether the process has ended.
    pub fn exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.exited() {
            // Everything it started that stayed in its group goes with it.
            crate::group::kill_child_group(self.pid);
        }
    }
}
