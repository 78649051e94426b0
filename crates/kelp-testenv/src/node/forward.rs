//! The ways across the namespace's border, all run by the test process: the API server's port
//! on the machine's loopback (so kubeconfigs, kubectl and the tests' clients work as with the
//! kwok control plane), an HTTP `CONNECT` proxy on the node's address through which pods reach
//! the package registries (the namespace has no route out, by design), and on demand a port of
//! the machine's loopback on the node's address (a broker the test runs, for pods).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use super::netns::Netns;

/// The largest request head the proxy reads.
const MAX_HEAD: u64 = 8 * 1024;

/// How long the proxy waits to connect to a registry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `127.0.0.1:port` of the machine by connecting to `127.0.0.1:port` inside `netns`, in
/// background threads, for the life of the process.
pub(crate) fn api_port(netns: Netns, port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("kelp-testenv: binding 127.0.0.1:{port} for the API server: {e}"));
    accept_forever(listener, move |client| {
        if let Ok(server) = netns.run(|| TcpStream::connect(("127.0.0.1", port))) {
            splice(client, server);
        }
    });
}

/// Serves `address` inside `netns` (`10.88.0.1:port`) by connecting to `127.0.0.1:port` of the
/// machine, in background threads, for the life of the process.
pub(crate) fn machine_port(netns: &Netns, address: &str, port: u16) {
    let listener = netns
        .run(|| TcpListener::bind(address))
        .unwrap_or_else(|e| panic!("kelp-testenv: binding {address} for the machine's port {port}: {e}"));
    accept_forever(listener, move |client| {
        if let Ok(server) = TcpStream::connect(("127.0.0.1", port)) {
            splice(client, server);
        }
    });
}

/// Serves an HTTP `CONNECT` proxy on `address` inside `netns` (`10.88.0.1:3128`, say), which
/// connects from the machine's own network: the pods' way to the package registries.
pub(crate) fn egress_proxy(netns: &Netns, address: &str) {
    let listener = netns
        .run(|| TcpListener::bind(address))
        .unwrap_or_else(|e| panic!("kelp-testenv: binding the egress proxy on {address}: {e}"));
    accept_forever(listener, |client| {
        std::thread::spawn(move || connect(client));
    });
}

/// Hands every connection `listener` accepts to `handle`, on a background thread, for the life
/// of the process.
fn accept_forever(listener: TcpListener, handle: impl Fn(TcpStream) + Send + 'static) {
    std::thread::spawn(move || listener.incoming().flatten().for_each(handle));
}

/// One proxied connection: `CONNECT host:port HTTP/1.1`, headers, then bytes both ways.
fn connect(mut client: TcpStream) {
    let mut reader = BufReader::new(client.try_clone().expect("a TCP stream clone")).take(MAX_HEAD);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let target = match request.split_whitespace().collect::<Vec<_>>()[..] {
        ["CONNECT", target, _version] => target.to_owned(),
        _ => {
            let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
            return;
        }
    };
    let server = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.find_map(|a| TcpStream::connect_timeout(&a, CONNECT_TIMEOUT).ok()));
    match server {
        Some(server) if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_ok() => {
            // Bytes the client sent after its head are still in the reader's buffer.
            let early = reader.into_inner().buffer().to_vec();
            let mut upstream = server;
            if upstream.write_all(&early).is_ok() {
                splice(client, upstream);
            }
        }
        _ => {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        }
    }
}

/// Copies bytes both ways between `a` and `b` on two threads until each side has ended.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pipe(a, b2));
    std::thread::spawn(move || pipe(b, a2));
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
