//! The framed protocol between the front and its language workers (`runtimes/PROTOCOL.md`).
//!
//! A frame is a big-endian `u32` length, a JSON header, a big-endian `u32` length and a raw body.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest header a worker may send; anything bigger is a protocol violation, not a response.
const MAX_HEADER: u32 = 16 * 1024 * 1024;

/// Largest body a frame holds (its length is a `u32`): the request body limit cannot exceed it.
pub const MAX_BODY: usize = u32::MAX as usize;

/// How much buffer a frame reader adds at a time: a worker that announces a huge body gets memory
/// as the bytes arrive, not all at once for a length it may never send.
const READ_CHUNK: usize = 64 * 1024;

/// What the front tells a worker to load.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Directory holding the function's code (Kubeless's `/kubeless`).
    pub code_dir: PathBuf,
    /// `MOD_NAME`: the module (file without suffix) to load.
    pub module: String,
    /// `FUNC_HANDLER`: the function in that module.
    pub handler: String,
    /// Directories of installed dependencies, added to the module search path.
    pub paths: Vec<PathBuf>,
    /// Environment variables the worker sets before loading the code.
    pub env: Map<String, Value>,
    /// The handler's second argument.
    pub context: Value,
}

/// A message from a worker.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker has connected and waits for `load`.
    Hello {
        /// The worker's process id.
        pid: u32,
        /// The interpreter's version.
        #[serde(default)]
        version: String,
    },
    /// The function is loaded.
    Loaded,
    /// The function could not be loaded; the worker exits.
    LoadError {
        /// What went wrong, naming module and handler.
        message: String,
    },
    /// The outcome of one invocation.
    Result {
        /// HTTP status code.
        status: u16,
        /// Response headers as `[name, value]` pairs.
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// Whether the function raised.
        #[serde(default)]
        failed: bool,
    },
}

/// A protocol-level failure talking to a worker.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket failed or reached end-of-file: the worker is gone.
    #[error("worker connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The worker sent something that is not a protocol frame.
    #[error("worker sent an invalid frame: {0}")]
    Invalid(String),
    /// A header or body to send does not fit a frame (its length is a `u32`).
    #[error("a frame {part} of {len} bytes is larger than the protocol allows (4 GiB)")]
    TooLarge {
        /// `header` or `body`.
        part: &'static str,
        /// Its length.
        len: usize,
    },
}

/// Encodes one frame into a single buffer, so it goes out in one write.
pub fn encode<H: Serialize>(header: &H, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let header = serde_json::to_vec(header).expect("protocol headers always serialize");
    let header_len = frame_len("header", header.len())?;
    let body_len = frame_len("body", body.len())?;
    let mut frame = Vec::with_capacity(8 + header.len() + body.len());
    frame.extend_from_slice(&header_len.to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&body_len.to_be_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// Encodes the `invoke` frame of one request: its header written by [`crate::event::write_invoke`],
/// then `body`, into a single buffer.
pub fn invoke(parts: &http::request::Parts, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut frame = Vec::with_capacity(512 + body.len());
    frame.extend_from_slice(&[0; 4]);
    crate::event::write_invoke(&mut frame, parts);
    let header_len = frame_len("header", frame.len() - 4)?;
    frame[..4].copy_from_slice(&header_len.to_be_bytes());
    frame.extend_from_slice(&frame_len("body", body.len())?.to_be_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

fn frame_len(part: &'static str, len: usize) -> Result<u32, ProtocolError> {
    u32::try_from(len).map_err(|_| ProtocolError::TooLarge { part, len })
}

/// Writes one frame.
pub async fn write_frame<W, H>(w: &mut W, header: &H, body: &[u8]) -> Result<(), ProtocolError>
where
    W: AsyncWrite + Unpin,
    H: Serialize,
{
    w.write_all(&encode(header, body)?).await?;
    Ok(())
}

/// Reads frames from a worker's stream.
///
/// Cancel-safe: every byte read stays in the reader's buffer until its frame is complete, so
/// `next` can be raced against other events (the connection task waits for a frame and for calls
/// to send at once). The buffer grows as bytes arrive, never to a length the worker only claims.
#[derive(Debug)]
pub struct FrameReader<R> {
    stream: R,
    buffer: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `stream`.
    pub fn new(stream: R) -> Self {
        FrameReader { stream, buffer: BytesMut::with_capacity(READ_CHUNK) }
    }

    /// The next frame. End-of-file, also inside a frame, is [`ProtocolError::Io`].
    pub async fn next(&mut self) -> Result<(FromWorker, Bytes), ProtocolError> {
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(frame);
            }
            if self.buffer.capacity() - self.buffer.len() < READ_CHUNK / 4 {
                self.buffer.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// Takes one complete frame off the buffer, if there is one.
    fn parse(&mut self) -> Result<Option<(FromWorker, Bytes)>, ProtocolError> {
        take_frame(&mut self.buffer)
    }
}

/// Takes one complete frame off the front of `buffer`, if it holds one.
pub fn take_frame(buffer: &mut BytesMut) -> Result<Option<(FromWorker, Bytes)>, ProtocolError> {
    let Some(header_len) = be_u32(buffer, 0) else { return Ok(None) };
    if header_len > MAX_HEADER {
        return Err(ProtocolError::Invalid(format!("header of {header_len} bytes")));
    }
    // Both lengths are u32 and the header at most MAX_HEADER: no sum overflows a usize.
    let body_at = 4 + header_len as usize + 4;
    let Some(body_len) = be_u32(buffer, body_at - 4) else { return Ok(None) };
    let end = body_at + body_len as usize;
    if buffer.len() < end {
        return Ok(None);
    }
    let mut frame = buffer.split_to(end).freeze();
    let body = frame.split_off(body_at);
    let message = serde_json::from_slice(&frame[4..body_at - 4]).map_err(|e| ProtocolError::Invalid(e.to_string()))?;
    Ok(Some((message, body)))
}

/// The big-endian `u32` at `at`, if the buffer holds it.
fn be_u32(buffer: &[u8], at: usize) -> Option<u32> {
    let bytes = buffer.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_result_frame_decodes() {
        let frame =
            encode(&serde_json::json!({"type": "result", "status": 201, "headers": [["x-a", "b"]]}), b"hi").unwrap();
        let (msg, body) = FrameReader::new(frame.as_slice()).next().await.unwrap();
        match msg {
            FromWorker::Result { status, headers, failed } => {
                assert_eq!((status, failed), (201, false));
                assert_eq!(headers, vec![("x-a".to_string(), "b".to_string())]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(&body[..], b"hi");
    }

    /// Found by the `worker_frame` fuzz target: a frame announcing a 4 GiB body made the front
    /// allocate 4 GiB before reading a byte of it. The test runs itself again in a child process
    /// whose address space is limited to 1 GiB (`ulimit -v`), where that allocation aborted.
    #[test]
    fn a_claimed_length_is_not_allocated_before_the_bytes_arrive() {
        if std::env::var_os("KELP_PROTOCOL_TEST_CHILD").is_some() {
            let mut frame = encode(&serde_json::json!({"type": "loaded"}), b"").unwrap();
            frame.truncate(frame.len() - 4);
            frame.extend_from_slice(&u32::MAX.to_be_bytes());
            frame.extend_from_slice(b"abc");
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let err = runtime.block_on(FrameReader::new(frame.as_slice()).next()).unwrap_err();
            assert!(matches!(&err, ProtocolError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof), "{err}");
            return;
        }
        let status = std::process::Command::new("sh")
            .args(["-c", "ulimit -v 1048576 && exec \"$0\" --exact --test-threads=1 \"$1\""])
            .arg(std::env::current_exe().unwrap())
            .arg("protocol::tests::a_claimed_length_is_not_allocated_before_the_bytes_arrive")
            .env("KELP_PROTOCOL_TEST_CHILD", "1")
            .status()
            .unwrap();
        assert!(status.success(), "the child reading the frame failed: {status}");
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_io_error() {
        let frame = encode(&serde_json::json!({"type": "loaded"}), b"").unwrap();
        let err = FrameReader::new(&frame[..5]).next().await.unwrap_err();
        assert!(matches!(err, ProtocolError::Io(_)), "{err}");
    }

    #[tokio::test]
    async fn a_body_shorter_than_announced_is_an_io_error_not_a_huge_buffer() {
        // A worker announcing a 4 GiB body, then hanging up after two bytes.
        let mut frame = encode(&serde_json::json!({"type": "result", "status": 200}), b"").unwrap();
        frame.truncate(frame.len() - 4);
        frame.extend_from_slice(&u32::MAX.to_be_bytes());
        frame.extend_from_slice(b"hi");
        let err = FrameReader::new(frame.as_slice()).next().await.unwrap_err();
        assert!(matches!(err, ProtocolError::Io(ref e) if e.kind() == std::io::ErrorKind::UnexpectedEof), "{err}");
    }

    #[test]
    fn a_body_too_large_for_a_frame_is_an_error() {
        // `encode` checks both lengths with `frame_len` before copying anything; a 4 GiB slice
        // to encode would cost a unit test 4 GiB of memory.
        let err = frame_len("body", MAX_BODY + 1).unwrap_err();
        assert_eq!(err.to_string(), "a frame body of 4294967296 bytes is larger than the protocol allows (4 GiB)");
    }
}
