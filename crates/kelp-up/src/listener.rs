//! The one port of `kelp up`, serving TLS and plain HTTP side by side.
//!
//! Each connection's first byte tells them apart: a TLS ClientHello starts with 0x16 (a
//! handshake record), which no HTTP/1 request line does. TLS connections get the whole platform
//! (the API and `/metrics` behind the token, functions open); plain ones get the functions alone,
//! so `curl http://127.0.0.1:8080/default/hello/` keeps working while the API is never reachable
//! without TLS and the token.
//!
//! A peer cannot hold the listener: the first byte and the TLS handshake must come within
//! [`Limits::handshake_timeout`], each request's head within [`Limits::header_read_timeout`]
//! (an idle keep-alive connection is closed after it too), and at most
//! [`Limits::max_connections`] connections are served at once; further ones wait in the kernel's
//! accept queue until one ends.

use std::sync::Arc;
use std::time::Duration;

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a peer may take and how many may be served.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From accept to the end of the TLS handshake (or to the first byte of plain HTTP).
    pub handshake_timeout: Duration,
    /// From the moment a request's head is awaited until it is complete (hyper's
    /// `header_read_timeout`; it also closes idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s for the handshake, 30 s for a request head, 1024 connections.
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// What each kind of connection is served.
#[derive(Clone)]
pub struct Apps {
    /// Connections that completed the TLS handshake.
    pub tls: axum::Router,
    /// Plain HTTP connections.
    pub plain: axum::Router,
}

/// Serves `apps` on `listener` until `stop` completes, then lets open connections finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    apps: Apps,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(stop);
    loop {
        // A slot first: beyond the cap, connections wait in the accept queue, not in memory.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, apps, watcher) = (acceptor.clone(), apps.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Some(stream)) = tokio::time::timeout(limits.handshake_timeout, open(tcp, acceptor)).await else {
                return;
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            match stream {
                Stream::Tls(tls) => {
                    let service = hyper_util::service::TowerToHyperService::new(apps.tls);
                    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    let _ = watcher.watch(conn).await;
                }
                Stream::Plain(tcp) => {
                    let service = hyper_util::service::TowerToHyperService::new(apps.plain);
                    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    graceful.shutdown().await;
}

/// A connection once its kind is known.
enum Stream {
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
    Plain(tokio::net::TcpStream),
}

/// Waits for the first byte, then completes the TLS handshake if it is one; `None` when the
/// peer closed or the handshake failed.
async fn open(tcp: tokio::net::TcpStream, acceptor: tokio_rustls::TlsAcceptor) -> Option<Stream> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await.ok()? == 0 {
        return None;
    }
    if first[0] == TLS_HANDSHAKE {
        Some(Stream::Tls(Box::new(acceptor.accept(tcp).await.ok()?)))
    } else {
        Some(Stream::Plain(tcp))
    }
}
