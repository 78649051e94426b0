//! Downloading `url` code, as the `prepare` step's `curl -L` did: plain HTTP with the built-in
//! client, HTTPS through the machine's `curl` (no TLS stack is compiled in).

use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use std::time::Duration;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// How long a download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

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
        let body = res.into_body().collect().await.map_err(|e| format!("{uri}: reading the body: {e}"))?;
        return Ok(body.to_bytes().to_vec());
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

/// Downloads with `curl -fsSL`, which brings its own TLS.
async fn curl(url: &str) -> Result<Vec<u8>, String> {
    let out = tokio::process::Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--max-redirs",
            "10",
            "--proto-redir",
            "=http,https",
        ])
        .arg("--")
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("https downloads need curl, which could not run: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!("curl: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}
