//! The access log: one Apache-style line per request on stdout, written in batches.
//!
//! A `write` per request was one of the front's five system calls per call. Lines are appended to
//! a buffer instead; the first line into an empty buffer wakes a flusher task, which writes
//! whatever has gathered [`FLUSH_DELAY`] later in one `write`. An idle front therefore wakes for
//! nothing, a busy one writes about a hundred times a second, and a line reaches stdout at most
//! [`FLUSH_DELAY`] after its response (or at once when [`MAX_BUFFER`] bytes are waiting).

use http::{HeaderValue, Response, header};
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a line may wait in the buffer.
pub const FLUSH_DELAY: Duration = Duration::from_millis(10);
/// Buffered bytes that are written at once, without waiting for the flusher.
const MAX_BUFFER: usize = 64 * 1024;

/// Buffered access log lines for stdout.
#[derive(Debug, Default)]
pub struct AccessLog {
    buffer: Mutex<Vec<u8>>,
    /// Woken by the first line into an empty buffer, and by the log's drop.
    pending: Arc<Notify>,
}

impl AccessLog {
    /// An access log whose flusher task runs on the current Tokio runtime for as long as the
    /// log is in use.
    pub fn start() -> Arc<AccessLog> {
        let log = Arc::new(AccessLog::default());
        let (weak, pending) = (Arc::downgrade(&log), log.pending.clone());
        tokio::spawn(async move {
            loop {
                pending.notified().await;
                tokio::time::sleep(FLUSH_DELAY).await;
                match weak.upgrade() {
                    Some(log) => log.flush(),
                    None => return,
                }
            }
        });
        log
    }

    /// Logs one request: `127.0.0.1 - - [06/Jan/2020:18:09:04 +0000] "GET / HTTP/1.1" 200 11 ""
    /// "curl/8.0" 0/1234`, the format Kubeless's Python runtime logged.
    pub fn request<B: hyper::body::Body>(
        &self,
        peer: IpAddr,
        parts: &http::request::Parts,
        response: &Response<B>,
        took: Duration,
    ) {
        let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("");
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"))
            .unwrap_or_default();
        let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_empty = buffer.is_empty();
        let _ = writeln!(
            buffer,
            "{} - - [{stamp}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" {}/{}",
            peer,
            parts.method,
            parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            parts.version,
            response.status().as_u16(),
            response.body().size_hint().exact().unwrap_or(0),
            header(header::REFERER),
            header(header::USER_AGENT),
            took.as_secs(),
            took.as_micros(),
        );
        if buffer.len() >= MAX_BUFFER {
            let full = std::mem::take(&mut *buffer);
            drop(buffer);
            write_out(&full);
        } else if was_empty {
            self.pending.notify_one();
        }
    }

    /// Writes every buffered line to stdout now.
    pub fn flush(&self) {
        let lines = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if !lines.is_empty() {
            write_out(&lines);
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
        // The flusher finds the log gone and ends.
        self.pending.notify_one();
    }
}

fn write_out(lines: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(lines);
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lines_wait_for_the_flusher_or_a_flush() {
        let log = AccessLog::start();
        let parts = http::Request::get("/a?b=1").header("user-agent", "t").body(()).unwrap().into_parts().0;
        let response = Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")));
        let peer = IpAddr::from([127, 0, 0, 1]);
        log.request(peer, &parts, &response, Duration::from_micros(1234));
        log.request(peer, &parts, &response, Duration::from_micros(5));
        let text = String::from_utf8(log.buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("127.0.0.1 - - ["), "{text}");
        assert!(lines[0].ends_with("] \"GET /a?b=1 HTTP/1.1\" 200 2 \"\" \"t\" 0/1234"), "{text}");
        // The flusher empties the buffer once FLUSH_DELAY has passed.
        tokio::time::sleep(FLUSH_DELAY * 2).await;
        assert!(log.buffer.lock().unwrap().is_empty());
        log.request(peer, &parts, &response, Duration::ZERO);
        log.flush();
        assert!(log.buffer.lock().unwrap().is_empty());
    }
}
