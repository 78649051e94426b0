//! Instance logs: a process's stdout and stderr, line by line, into `<instance>.log`, rotated to
//! `<instance>.log.1` at a size limit; and reading them back (`tail`, `follow`) for the Pod-log API.

use bytes::Bytes;
use futures_util::Stream;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::watch;

/// Bytes of a log, as they are written. Ends at the end of the log (without `follow`) or when
/// the instance is gone (with `follow`).
pub type LogStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Output kept in memory while a pre-warmed process has no instance (and so no log file) yet.
const BUFFER_LIMIT: usize = 256 << 10;
/// The longest line of output written as one, in bytes (Docker and the CRI split log lines at
/// 16 KiB too); a longer one is split into pieces of this size.
pub(crate) const MAX_LINE: usize = 16 << 10;
/// What ends each piece of a line split at [`MAX_LINE`]: the line goes on in the next one.
pub(crate) const CONTINUED: &[u8] = b" [line continues]\n";
/// Last lines of output kept to explain why a process exited.
const RECENT_LINES: usize = 40;
/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Where one process's output goes.
#[derive(Debug)]
pub(crate) struct LogSink {
    state: Mutex<SinkState>,
    max_bytes: u64,
    /// Lines written so far from the process's stderr.
    stderr_lines: watch::Sender<u64>,
}

#[derive(Debug)]
struct SinkState {
    target: Target,
    recent: VecDeque<String>,
}

#[derive(Debug)]
enum Target {
    Memory(Vec<u8>),
    File { path: PathBuf, file: std::fs::File, size: u64 },
}

impl LogSink {
    /// A sink that keeps output in memory until [`LogSink::attach`]; files rotate at `max_bytes`.
    pub(crate) fn new(max_bytes: u64) -> Arc<LogSink> {
        Arc::new(LogSink {
            state: Mutex::new(SinkState { target: Target::Memory(Vec::new()), recent: VecDeque::new() }),
            max_bytes,
            stderr_lines: watch::Sender::new(0),
        })
    }

    /// Changes whenever a line from the process's stderr is written: where the runtime logs
    /// (its access log, which probes add to, is on stdout).
    pub(crate) fn stderr_lines(&self) -> watch::Receiver<u64> {
        self.stderr_lines.subscribe()
    }

    /// From now on appends to the log file `path`, starting with what was kept in memory.
    pub(crate) fn attach(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let mut state = self.state.lock().unwrap();
        let buffered = match std::mem::replace(&mut state.target, Target::File { path: path.to_owned(), file, size }) {
            Target::Memory(buffered) => buffered,
            Target::File { .. } => Vec::new(),
        };
        self.write_to(&mut state.target, &buffered);
        Ok(())
    }

    /// Writes one line (with its newline), from stderr or stdout.
    fn write_line(&self, line: &[u8], stderr: bool) {
        let mut state = self.state.lock().unwrap();
        if state.recent.len() == RECENT_LINES {
            state.recent.pop_front();
        }
        state.recent.push_back(String::from_utf8_lossy(line).trim_end().to_owned());
        self.write_to(&mut state.target, line);
        drop(state);
        if stderr {
            self.stderr_lines.send_modify(|n| *n += 1);
        }
    }

    fn write_to(&self, target: &mut Target, bytes: &[u8]) {
        match target {
            Target::Memory(buffer) => {
                if buffer.len() + bytes.len() <= BUFFER_LIMIT {
                    buffer.extend_from_slice(bytes);
                }
            }
            Target::File { path, file, size } => {
                if *size > 0 && *size + bytes.len() as u64 > self.max_bytes {
                    let rotated = std::fs::rename(&*path, rotated(path))
                        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&*path));
                    match rotated {
                        Ok(new) => (*file, *size) = (new, 0),
                        Err(e) => tracing::warn!(log = %path.display(), error = %e, "cannot rotate the log"),
                    }
                }
                if file.write_all(bytes).is_ok() {
                    *size += bytes.len() as u64;
                }
            }
        }
    }

    /// The last lines written, oldest first.
    pub(crate) fn recent(&self) -> Vec<String> {
        self.state.lock().unwrap().recent.iter().cloned().collect()
    }
}

/// The previous log of `path`: `<path>.1`.
fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Copies `reader` (the process's stderr, or stdout) into `sink` line by line until end of file.
/// A line longer than [`MAX_LINE`] bytes is split: each piece but the last ends with
/// [`CONTINUED`], so a function printing a gigabyte without a newline costs [`MAX_LINE`] bytes of
/// memory, not a gigabyte.
pub(crate) fn pump(reader: impl AsyncRead + Unpin + Send + 'static, sink: Arc<LogSink>, stderr: bool) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::with_capacity(MAX_LINE + CONTINUED.len());
        loop {
            line.clear();
            match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !line.ends_with(b"\n") {
                        line.extend_from_slice(if n == MAX_LINE { CONTINUED } else { b"\n" });
                    }
                    sink.write_line(&line, stderr);
                }
            }
        }
    });
}

/// Reads the log at `path` (with its rotated predecessor): everything, or the last `tail` lines;
/// then, with `follow`, what is appended until `done` turns true.
pub(crate) async fn read(
    path: PathBuf,
    tail: Option<usize>,
    follow: bool,
    done: watch::Receiver<bool>,
) -> io::Result<LogStream> {
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut content = tokio::fs::read(rotated(&path)).await.unwrap_or_default();
    if let Some(f) = &mut file {
        f.read_to_end(&mut content).await?;
    }
    if let Some(n) = tail {
        content = last_lines(content, n);
    }
    let first = futures_util::stream::iter((!content.is_empty()).then(|| Ok(Bytes::from(content))));
    if !follow {
        return Ok(Box::pin(first));
    }
    let state = Follow { path, file, done, finished: false };
    let rest =
        futures_util::stream::unfold(state, |mut state| async move { state.next().await.map(|chunk| (chunk, state)) });
    Ok(Box::pin(futures_util::StreamExt::chain(first, rest)))
}

/// The last `n` lines of `content`.
fn last_lines(content: Vec<u8>, n: usize) -> Vec<u8> {
    let body = content.strip_suffix(b"\n").unwrap_or(&content);
    let start = if n == 0 {
        content.len()
    } else {
        body.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').nth(n - 1).map_or(0, |(i, _)| i + 1)
    };
    content[start..].to_vec()
}

/// A followed log: an open handle (which keeps reading the same file across a rename), reopened at
/// the path when the log rotates.
struct Follow {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    done: watch::Receiver<bool>,
    finished: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if let Some(file) = &mut self.file {
                let mut chunk = Vec::new();
                if let Err(e) = file.read_to_end(&mut chunk).await {
                    return Some(Err(e));
                }
                if !chunk.is_empty() {
                    return Some(Ok(Bytes::from(chunk)));
                }
            }
            if self.rotated().await {
                self.file = tokio::fs::File::open(&self.path).await.ok();
                continue;
            }
            if self.finished {
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = self.done.wait_for(|done| *done) => self.finished = true,
            }
        }
    }

    /// Whether the file at the path is not the one being read.
    async fn rotated(&self) -> bool {
        let Ok(at_path) = tokio::fs::metadata(&self.path).await else { return false };
        match &self.file {
            None => true,
            Some(file) => file.metadata().await.is_ok_and(|m| m.ino() != at_path.ino() || m.dev() != at_path.dev()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logs_rotate_keeping_one_old_file_and_tails_span_both() {
        let dir = std::env::temp_dir().join(format!("kelp-local-logs-{}", std::process::id()));
        let path = dir.join("fn-abc-1.log");
        let sink = LogSink::new(64);
        sink.write_line(b"before the file\n", false);
        sink.attach(&path).unwrap();
        for i in 0..20 {
            sink.write_line(format!("line {i:02}\n").as_bytes(), false);
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 64);
        assert!(rotated(&path).is_file());
        let (_done, rx) = watch::channel(false);
        let mut stream = read(path.clone(), Some(10), false, rx).await.unwrap();
        let tail = futures_util::StreamExt::next(&mut stream).await.unwrap().unwrap();
        let expected: String = (10..20).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&tail), expected);
        assert_eq!(sink.recent().last().map(String::as_str), Some("line 19"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A real process printing 1 MiB without a newline, then a short line: the log holds pieces
    /// of at most `MAX_LINE` bytes (plus the marker) that add up to the whole output.
    #[tokio::test]
    async fn long_lines_are_split_so_a_line_never_grows_without_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fn-long-1.log");
        let sink = LogSink::new(64 << 20);
        sink.attach(&path).unwrap();
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo after"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = sink.stderr_lines();
        pump(stdout, sink.clone(), true);
        assert!(child.wait().await.unwrap().success());
        lines.wait_for(|_| sink.recent().last().is_some_and(|l| l == "after")).await.unwrap();
        let log = std::fs::read(&path).unwrap();
        let pieces: Vec<&[u8]> = log.split_inclusive(|b| *b == b'\n').collect();
        assert!(pieces.iter().all(|p| p.len() <= MAX_LINE + CONTINUED.len()), "a line longer than MAX_LINE");
        let whole: Vec<u8> = pieces.iter().flat_map(|p| p.strip_suffix(CONTINUED).unwrap_or(p)).copied().collect();
        assert_eq!(whole.len(), 1048576 + "\nafter\n".len());
        assert!(whole.starts_with(b"xxxx") && whole.ends_with(b"x\nafter\n"));
        assert_eq!(sink.recent().last().map(String::as_str), Some("after"));
    }

    #[test]
    fn tails() {
        assert_eq!(last_lines(b"a\nb\nc\n".to_vec(), 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc".to_vec(), 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n".to_vec(), 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\n".to_vec(), 0), b"");
    }
}
