//! A tiny HTTP/1.1 client over `std::net::TcpStream`: one request per connection
//! (`Connection: close`), bodies framed by `Content-Length`, which the runtime always sends.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// How long a request may take before the client gives up (longer than any test's timeout).
const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// An HTTP request to send.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// `GET`, `POST`, ...
    pub(crate) method: String,
    /// Path and query, such as `/a?b=c`.
    pub(crate) path: String,
    /// Extra headers, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// The body; sent with a `Content-Length` when not empty.
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// A request without headers or body.
    pub(crate) fn new(method: &str, path: &str) -> Self {
        Request { method: method.to_string(), path: path.to_string(), headers: Vec::new(), body: Vec::new() }
    }

    /// A `GET` of `path`.
    pub(crate) fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// Sends the request to `127.0.0.1:port` and reads the whole response.
    ///
    /// The request is written from a second thread while this one reads, so a response sent
    /// before the body is consumed (413) is read even if the server stops reading.
    pub(crate) fn send(&self, port: u16) -> io::Result<Response> {
        let stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(5))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        let mut head =
            format!("{} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut writer = stream.try_clone()?;
        std::thread::scope(|s| {
            s.spawn(move || {
                // Errors here (the server answered early and closed) show up in the response read.
                let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&self.body));
            });
            let response = read_response(&stream, self.method == "HEAD");
            // Unblocks the writer if the server neither reads nor closes.
            let _ = stream.shutdown(Shutdown::Both);
            response
        })
    }
}

/// A response as received.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// Headers in order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn read_response(stream: &TcpStream, head_request: bool) -> io::Result<Response> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection without a response",
        ));
    }
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut response = Response { status, headers, body: Vec::new() };
    let no_body = head_request || status < 200 || status == 204 || status == 304;
    match response.header("content-length").map(str::parse::<usize>) {
        _ if no_body => {}
        Some(Ok(len)) => {
            response.body.resize(len, 0);
            reader.read_exact(&mut response.body)?;
        }
        Some(Err(e)) => return Err(invalid(format!("bad content-length: {e}"))),
        None => {
            reader.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}
