//! The listener of `kelp up` against real sockets: TLS and plain HTTP on one port, and hostile
//! peers (silent, slow, too many) that must not hold it. Nothing asserts a timing: the limits are
//! short here, and each test waits for the outcome with a generous deadline.

use kelp_up::listener::{Apps, Limits, serve};
use kelp_up::tls::Tls;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits for what must happen.
const DEADLINE: Duration = Duration::from_secs(30);

/// A listener on a free port answering "tls" or "plain", with `limits`; stops when dropped.
struct Server {
    addr: SocketAddr,
    ca_pem: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _runtime: tokio::runtime::Runtime,
}

fn server(limits: Limits) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tls = Tls::new(Ipv4Addr::LOCALHOST.into()).unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = |text: &'static str| axum::Router::new().fallback(move || async move { text });
    let apps = Apps { tls: answer("tls"), plain: answer("plain") };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(serve(listener, tls.acceptor.clone(), apps, limits, async move {
        let _ = stopped.await;
    }));
    Server { addr, ca_pem: tls.ca_pem, _stop: stop, _runtime: runtime }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// The body of the answer to `GET /` on `stream`.
fn get(stream: &mut (impl Read + Write)) -> String {
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        read => _ = read.unwrap(),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

/// Whether the server closed `stream` (end of file or reset) before the deadline.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn limits() -> Limits {
    Limits {
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        max_connections: 16,
    }
}

#[test]
fn tls_and_plain_http_share_the_port() {
    let server = server(limits());
    assert_eq!(get(&mut connect(server.addr)), "plain");
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(server.ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    assert_eq!(get(&mut rustls::StreamOwned::new(tls, connect(server.addr))), "tls");
}

/// A peer that connects and says nothing, or starts a TLS handshake and stops, is closed.
#[test]
fn a_silent_peer_is_closed() {
    let server = server(limits());
    let mut silent = connect(server.addr);
    assert!(closed_by_server(&mut silent));
    let mut stalled = connect(server.addr);
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    assert!(closed_by_server(&mut stalled));
}

/// A peer sending its request head a byte at a time is closed before it is done.
#[test]
fn a_slow_request_head_is_closed() {
    let server = server(limits());
    let mut slow = connect(server.addr);
    let head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n", "a".repeat(200));
    let started = Instant::now();
    let mut sent_all = true;
    for byte in head.as_bytes() {
        if slow.write_all(&[*byte]).is_err() {
            sent_all = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > DEADLINE {
            break;
        }
    }
    assert!(!sent_all, "the connection stayed open for the whole slow head");
}

/// Beyond the cap, a connection waits until one ends, then is served.
#[test]
fn connections_beyond_the_cap_wait_for_a_slot() {
    let server = server(Limits { handshake_timeout: DEADLINE * 2, max_connections: 1, ..limits() });
    let holder = connect(server.addr);
    // The holder's byte-less connection takes the only slot: the next one is not served...
    let mut waiting = connect(server.addr);
    waiting.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    waiting.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut first = [0u8; 1];
    let early = waiting.read(&mut first);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "served beyond the cap: {early:?}"
    );
    // ...until the holder goes.
    drop(holder);
    waiting.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut raw = Vec::new();
    waiting.read_to_end(&mut raw).unwrap();
    assert!(String::from_utf8_lossy(&raw).ends_with("plain"), "{}", String::from_utf8_lossy(&raw));
}
