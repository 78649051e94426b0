//! Downloading `url` code, as the `prepare` step's `curl -L` did: plain HTTP with the built-in
//! client, HTTPS through the machine's `curl` (no TLS stack is compiled in).

use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// How long a download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// The most bytes `url` code may have (256 MiB; AWS Lambda takes 50 MiB zipped): a larger
/// download stops there and fails, naming this limit.
pub(crate) const MAX_DOWNLOAD: usize = 256 << 20;
/// Bytes of curl's error output kept for the message.
const MAX_CURL_ERROR: u64 = 4 << 10;

/// Why a download stopped at [`MAX_DOWNLOAD`].
fn too_large(uri: &dyn std::fmt::Display) -> String {
    format!("{uri}: larger than {MAX_DOWNLOAD} bytes ({} MiB), the most Kelp downloads", MAX_DOWNLOAD >> 20)
}

/// The bytes at `url`; the error says what failed.
pub(crate) async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    tokio::time::timeout(DOWNLOAD_TIMEOUT, fetch_following(url))
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {}s", DOWNLOAD_TIMEOUT.as_secs())))
}

async fn fetch_following(url: &str) -> Result<Vec<u8>, String> {
    let client = crate::http_client();
    let mut uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    for _ in 0..=MAX_REDIRECTS {
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return curl(&uri.to_string()).await,
            _ => return Err(format!("{uri}: only http:// and https:// URLs can be downloaded")),
        }
        let req = http::Request::get(uri.clone()).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let res = client.request(req).await.map_err(|e| format!("{uri}: {e}"))?;
        let status = res.status();
        if status.is_redirection() {
            let location = res.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
            uri = redirect_target(&uri, location.ok_or_else(|| format!("{uri}: {status} without a Location"))?)?;
            continue;
        }
        if status != StatusCode::OK {
            return Err(format!("{uri}: HTTP {status}"));
        }
        let declared = res.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_DOWNLOAD as u64) {
            return Err(too_large(&uri));
        }
        return match Limited::new(res.into_body(), MAX_DOWNLOAD).collect().await {
            Ok(body) => Ok(body.to_bytes().to_vec()),
            Err(e) if e.is::<LengthLimitError>() => Err(too_large(&uri)),
            Err(e) => Err(format!("{uri}: reading the body: {e}")),
        };
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Where a `Location` header leads from `from`: an absolute URL, or a path on the same server.
fn redirect_target(from: &Uri, location: &str) -> Result<Uri, String> {
    let target = if location.starts_with('/') {
        format!("{}://{}{location}", from.scheme_str().unwrap_or("http"), from.authority().map_or("", |a| a.as_str()))
    } else {
        location.to_owned()
    };
    target.parse().map_err(|e| format!("bad redirect Location {location:?}: {e}"))
}

/// Downloads with `curl -fsSL`, which brings its own TLS; at most [`MAX_DOWNLOAD`] bytes are
/// read from it (curl is killed beyond).
async fn curl(url: &str) -> Result<Vec<u8>, String> {
    let mut child = tokio::process::Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--max-redirs",
            "10",
            "--proto-redir",
            "=http,https",
            "--max-filesize",
            &MAX_DOWNLOAD.to_string(),
        ])
        .arg("--")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("https downloads need curl, which could not run: {e}"))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("curl's output could not be read".into());
    };
    let mut body = Vec::new();
    let mut error = Vec::new();
    let out = async {
        let read = stdout.take(MAX_DOWNLOAD as u64 + 1).read_to_end(&mut body).await;
        if body.len() > MAX_DOWNLOAD {
            // Stopped reading: curl would wait on a full pipe (and so would its stderr) forever.
            let _ = child.start_kill();
        }
        read
    };
    let mut stderr = stderr.take(MAX_CURL_ERROR);
    let (read, _) = tokio::join!(out, stderr.read_to_end(&mut error));
    if body.len() > MAX_DOWNLOAD {
        let _ = child.wait().await;
        return Err(too_large(&url));
    }
    read.map_err(|e| format!("reading from curl: {e}"))?;
    let status = child.wait().await.map_err(|e| format!("waiting for curl: {e}"))?;
    match status.code() {
        Some(0) => Ok(body),
        // CURLE_FILESIZE_EXCEEDED: the server announced a larger file.
        Some(63) => Err(too_large(&url)),
        _ => Err(format!("curl: {}", String::from_utf8_lossy(&error).trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// A hostile server: `/declared` announces one byte more than [`MAX_DOWNLOAD`] (and sends
    /// them), `/endless` sends a chunked body that never ends.
    async fn hostile_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let declared = String::from_utf8_lossy(&request[..n]).contains("GET /declared ");
                    let (head, chunk) = if declared {
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", MAX_DOWNLOAD + 1);
                        (head, vec![0u8; 1 << 20])
                    } else {
                        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_owned();
                        (head, format!("100000\r\n{}\r\n", "0".repeat(1 << 20)).into_bytes())
                    };
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    while socket.write_all(&chunk).await.is_ok() {}
                });
            }
        });
        base
    }

    #[tokio::test]
    async fn downloads_stop_at_the_limit_with_the_client_and_with_curl() {
        let base = hostile_server().await;
        let limit = format!("larger than {MAX_DOWNLOAD} bytes");
        for path in ["/declared", "/endless"] {
            let url = format!("{base}{path}");
            let err = fetch(&url).await.unwrap_err();
            assert!(err.contains(&limit), "{path}: {err}");
            // A generous bound on a liveness check: without the limit curl's output never ends.
            let err =
                tokio::time::timeout(Duration::from_secs(120), curl(&url)).await.expect("curl stopped").unwrap_err();
            assert!(err.contains(&limit), "curl {path}: {err}");
        }
    }
}
