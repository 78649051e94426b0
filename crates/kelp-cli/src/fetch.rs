//! Reading `--from-file` / `--dependencies` / `-f` arguments: a local file, or an `http(s)://`
//! URL downloaded with a small HTTP client (hyper over rustls, following redirects).

use crate::cmd::error_chain;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

use crate::build::content::is_url;

/// Why a file or URL could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// A local file.
    #[error("cannot read {path}: {cause}")]
    File {
        /// The path.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A URL that answered with an error or could not be reached.
    #[error("cannot download {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The most redirects followed.
const MAX_REDIRECTS: usize = 10;
/// How long a download may take.
const TIMEOUT: Duration = Duration::from_secs(120);
/// The most bytes downloaded (32 MiB: the API server's largest request, which the Function
/// carrying the downloaded code must fit in).
const MAX_DOWNLOAD: usize = 32 << 20;

/// Why a download stopped at [`MAX_DOWNLOAD`].
fn too_large() -> String {
    format!("larger than {} MiB, more than a Function can carry (use a `url` function instead)", MAX_DOWNLOAD >> 20)
}

/// The bytes of a local file or of an `http(s)://` URL.
pub(crate) async fn read_source(source: &str) -> Result<Vec<u8>, FetchError> {
    if is_url(source) {
        download(source).await
    } else {
        tokio::fs::read(source)
            .await
            .map_err(|source_error| FetchError::File { path: source.to_owned(), cause: source_error })
    }
}

/// Downloads `url` (GET, redirects followed, 2xx required).
pub(crate) async fn download(url: &str) -> Result<Vec<u8>, FetchError> {
    let fail = |reason: String| FetchError::Url { url: url.to_owned(), reason };
    let work = async {
        if url.starts_with("https://") {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| fail(format!("no TLS root certificates: {e}")))?
                .https_or_http()
                .enable_http1()
                .build();
            get(Client::builder(TokioExecutor::new()).build(connector), url).await.map_err(fail)
        } else {
            get(Client::builder(TokioExecutor::new()).build(HttpConnector::new()), url).await.map_err(fail)
        }
    };
    tokio::time::timeout(TIMEOUT, work).await.map_err(|_| fail(format!("no answer within {}s", TIMEOUT.as_secs())))?
}

async fn get<C>(client: Client<C, Empty<Bytes>>, url: &str) -> Result<Vec<u8>, String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let mut current: http::Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    for _ in 0..=MAX_REDIRECTS {
        let request = http::Request::get(current.clone())
            .header(http::header::USER_AGENT, concat!("kelp/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response.headers().get(http::header::LOCATION).and_then(|l| l.to_str().ok())
        {
            current = resolve_location(&current, location)?;
            if current.scheme_str() == Some("https") && url.starts_with("http://") {
                // A redirect to https needs the TLS client.
                return Box::pin(download(&current.to_string())).await.map_err(|e| e.to_string());
            }
            continue;
        }
        if !status.is_success() {
            return Err(format!("the server answered {status}"));
        }
        let declared =
            response.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_DOWNLOAD as u64) {
            return Err(too_large());
        }
        return match Limited::new(response.into_body(), MAX_DOWNLOAD).collect().await {
            Ok(body) => Ok(body.to_bytes().to_vec()),
            Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
            Err(e) => Err(e.to_string()),
        };
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Resolves a `Location` header against the URL that sent it.
fn resolve_location(base: &http::Uri, location: &str) -> Result<http::Uri, String> {
    if location.contains("://") {
        return location.parse().map_err(|e| format!("bad redirect {location:?}: {e}"));
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map(|(dir, _)| dir).unwrap_or_default();
        format!("{dir}/{location}")
    };
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path.to_owned(), format!("?{query}")),
        None => (path, String::new()),
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let path = format!("/{}", segments.join("/"));
    format!("{scheme}://{authority}{path}{query}").parse().map_err(|e| format!("bad redirect {location:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A tiny HTTP/1.1 server answering each request path from a table.
    async fn serve(routes: Vec<(&'static str, &'static str)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let routes = routes.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buffer[..n]);
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let response = routes
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, r)| (*r).to_owned())
                        .unwrap_or_else(|| "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_owned());
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn downloads_follow_redirects_and_report_errors() {
        let base = serve(vec![
            ("/code.py", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"),
            // Declares more than a Function can carry (and sends less: it must not be waited for).
            ("/huge", "HTTP/1.1 200 OK\r\ncontent-length: 33554433\r\nconnection: close\r\n\r\nhello"),
            ("/old", "HTTP/1.1 302 Found\r\nlocation: /code.py\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
            (
                "/dir/rel",
                "HTTP/1.1 301 Moved\r\nlocation: ../code.py\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            ),
        ])
        .await;
        assert_eq!(download(&format!("{base}/code.py")).await.unwrap(), b"hello");
        assert_eq!(download(&format!("{base}/old")).await.unwrap(), b"hello");
        assert_eq!(download(&format!("{base}/dir/rel")).await.unwrap(), b"hello");
        let error = download(&format!("{base}/missing")).await.unwrap_err().to_string();
        assert_eq!(error, format!("cannot download {base}/missing: the server answered 404 Not Found"));
        let error = download(&format!("{base}/huge")).await.unwrap_err().to_string();
        assert_eq!(error, format!("cannot download {base}/huge: {}", too_large()));
        let error = read_source("/definitely/not/here.py").await.unwrap_err().to_string();
        assert!(error.starts_with("cannot read /definitely/not/here.py: "), "{error}");
    }

    #[test]
    fn relative_redirects() {
        let base: http::Uri = "http://h:1/a/b/c".parse().unwrap();
        assert_eq!(resolve_location(&base, "/x").unwrap(), "http://h:1/x");
        assert_eq!(resolve_location(&base, "d").unwrap(), "http://h:1/a/b/d");
        assert_eq!(resolve_location(&base, "https://o/p").unwrap(), "https://o/p");
        assert_eq!(resolve_location(&base, "../d?x=1").unwrap(), "http://h:1/a/d?x=1");
        assert_eq!(resolve_location(&base, "./e").unwrap(), "http://h:1/a/b/e");
    }
}
