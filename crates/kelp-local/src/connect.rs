//! The connector of the platform's HTTP client: TCP for `http://` URIs, and a Unix socket for
//! `unix://<hex of the socket's path>/<path>` ones, which is how the gateway reaches an instance
//! (a loopback TCP connection costs both ends the kernel's whole TCP path for every request).

use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::{TcpStream, UnixStream};

/// The URI scheme of requests sent over a Unix socket.
const UNIX_SCHEME: &str = "unix";

/// The base URI (scheme and authority, no path) of requests to the Unix socket at `socket`.
pub(crate) fn unix_base(socket: &Path) -> String {
    format!("{UNIX_SCHEME}://{}", kelp_runtime::deps::hex(socket.as_os_str().as_encoded_bytes()))
}

/// The socket path a `unix://` URI's host names.
fn socket_of(uri: &http::Uri) -> io::Result<PathBuf> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: not a unix:// URI of Kelp's"));
    let hex = uri.host().ok_or_else(invalid)?.as_bytes();
    if hex.len() % 2 != 0 {
        return Err(invalid());
    }
    let bytes = hex
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    Ok(PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes)))
}

/// Connects `http://` URIs over TCP and `unix://` ones over their Unix socket.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
}

impl Connector {
    /// A connector with the TCP settings of the platform's client (no delay).
    pub(crate) fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Connector { http }
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.http.poll_ready(cx).map_err(io::Error::other)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        if uri.scheme_str() == Some(UNIX_SCHEME) {
            Box::pin(async move { Ok(Stream::Unix(TokioIo::new(UnixStream::connect(socket_of(&uri)?).await?))) })
        } else {
            let connecting = self.http.call(uri);
            Box::pin(async move { Ok(Stream::Tcp(connecting.await.map_err(io::Error::other)?)) })
        }
    }
}

/// A connection of the platform's client.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Over TCP.
    Tcp(TokioIo<TcpStream>),
    /// Over a Unix socket.
    Unix(TokioIo<UnixStream>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Tcp(tcp) => tcp.connected(),
            Stream::Unix(_) => Connected::new(),
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[test]
    fn socket_paths_round_trip_through_the_uri() {
        let path = Path::new("/tmp/kelp run/1/.kelp-http.sock");
        let uri: http::Uri = format!("{}/a?b=1", unix_base(path)).parse().unwrap();
        assert_eq!(socket_of(&uri).unwrap(), path);
        assert_eq!(uri.path_and_query().unwrap().as_str(), "/a?b=1");
        assert!(socket_of(&"unix://zz/".parse().unwrap()).is_err());
    }

    /// A request to a `unix://` URI reaches an HTTP server on that socket, through the same
    /// client the gateway uses.
    #[tokio::test]
    async fn the_client_talks_http_over_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("http.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let text = format!("{} {}", req.method(), req.uri());
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(bytes::Bytes::from(text))))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        let client = crate::http_client();
        let uri: http::Uri = format!("{}/hello?x=1", unix_base(&path)).parse().unwrap();
        let mut request = http::Request::new(Full::new(bytes::Bytes::new()));
        *request.uri_mut() = uri;
        let response = client.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"GET /hello?x=1");
    }
}
