//! The chaos test of `kelp up`: healthy Python and Node functions under steady load (kept-alive
//! and fresh connections) while, at the same time, instances of other functions are killed with
//! SIGKILL, functions crash and hang, the data directory's disk fills up and is freed, the NATS
//! broker behind a NATSTrigger stalls, hostile clients send slow and huge requests to the gateway
//! and the API, and writers create and update ConfigMaps through the API. Then `kelp up` itself is
//! killed with SIGKILL and started again on the same data directory.
//!
//! It asserts that the healthy functions failed no request, that the store took writes again
//! once the disk had room, that the trigger delivered again after the stall, that every write the
//! API acknowledged is there after the restart, and that the platform answers. It prints its
//! figures as a Markdown table (`scripts/chaos` runs it and prints only the table). Nothing asserts
//! a timing: the schedule only decides when each fault starts.
//!
//! The disk is a 64 MiB tmpfs mounted on the data directory (so filling it fills nothing else);
//! where `mount` is refused (not root), that part is skipped and the table says why.

#[allow(dead_code)] // The harness of `up.rs`; this test uses part of it.
#[path = "up/support.rs"]
mod support;

use kelp_brokers::Nats;
use kelp_testkit::disk::{SmallDisk, fill};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, ErrorKind, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{DEADLINE, Platform, poll};

/// How long the faults and the load last.
const WINDOW: Duration = Duration::from_secs(30);
/// When the disk fills up, and for how long it stays full.
const FILL_AT: Duration = Duration::from_secs(5);
const FILL_FOR: Duration = Duration::from_secs(6);
/// When the broker stalls, and for how long.
const STALL_AT: Duration = Duration::from_secs(14);
const STALL_FOR: Duration = Duration::from_secs(5);
/// The size of the data directory's file system.
const DISK_MIB: u64 = 64;
/// Time between two kills of a victim's process.
const KILL_EVERY: Duration = Duration::from_millis(1200);
/// Connections sending their request head one byte at a time, per kind (gateway path, API path,
/// TLS handshake); and connections opened that send nothing.
const SLOW_CONNECTIONS: usize = 40;
const IDLE_CONNECTIONS: usize = 60;
/// What a huge request sends at most before it gives up (its announced length is far larger).
const HUGE_SENT: usize = 32 << 20;
/// Bytes of each ConfigMap written, so that writes need new room on the disk.
const WRITE_BYTES: usize = 2048;

/// The functions that must keep answering, with what they answer.
const HEALTHY: [(&str, &str); 2] = [("healthy-py", "healthy-py"), ("healthy-js", "healthy-js")];
/// Functions whose instances are killed.
const VICTIMS: [&str; 2] = ["victim-py", "victim-js"];

/// A Python function answering `answer`.
fn python(answer: &str) -> String {
    format!("def handler(event, context):\n    return '{answer}'\n")
}

/// A Node function answering `answer`.
fn node(answer: &str) -> String {
    format!("module.exports = {{ handler: (event, context) => '{answer}' }};\n")
}

/// Exits its worker process at every call.
const CRASHER: &str = "import os\n\ndef handler(event, context):\n    os._exit(3)\n";
/// Never returns (its calls time out after the function's 2 s).
const HANGER: &str = "import time\n\ndef handler(event, context):\n    while True:\n        time.sleep(0.05)\n";
/// Prints each message of the NATSTrigger, to find it in the function's log.
const LISTENER: &str = "def handler(event, context):\n    data = event['data']\n    \
                        print('GOT', data.decode() if isinstance(data, bytes) else data, flush=True)\n    return 'ok'\n";

#[test]
fn healthy_functions_keep_answering_and_no_acknowledged_write_is_lost_under_chaos() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("chaos: seed {seed}");
    let disk = SmallDisk::mount(DISK_MIB, "kelp-chaos-data-");
    if let Err(reason) = &disk {
        eprintln!("chaos: the disk-full part is skipped: {reason}");
    }
    let nats = Nats::start();
    let data_dir = disk.as_ref().ok().map(|d| d.path().to_owned());
    let mut platform = Platform::start_with(&["--nats-url", &nats.url()], &[], data_dir);
    deploy(&platform);
    let subject = format!("chaos.{}", std::process::id());
    platform
        .kelp(&[
            "trigger",
            "nats",
            "create",
            "chaos",
            "--trigger-topic",
            &subject,
            "--function-selector",
            "function=listener",
        ])
        .ok();
    let delivered = |what: &str| {
        poll(DEADLINE, || {
            platform.kelp(&[
                "trigger",
                "nats",
                "publish",
                "--url",
                &nats.url(),
                "--topic",
                &subject,
                "--message",
                what,
            ]);
            let logs = platform.logs("listener");
            if logs.contains(&format!("GOT {what}")) { Ok(()) } else { Err(logs) }
        })
    };
    delivered("before-the-stall").expect("the NATSTrigger delivers before the chaos");

    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let api = platform.api_client();
    let port = platform.port;
    let mut disk_report = String::new();
    let mut freed_at = None;
    let (healthy, writes) = std::thread::scope(|s| {
        // Should this thread panic, the others stop (the scope waits for them).
        let _stop = StopOnDrop(&stop);
        let healthy: Vec<_> = HEALTHY
            .iter()
            .flat_map(|(name, answer)| [(*name, *answer, true), (*name, *answer, false)])
            .map(|(name, answer, keep_alive)| {
                let (counts, stop) = (&counts, &stop);
                s.spawn(move || load(port, name, keep_alive, stop, counts, Some(answer)))
            })
            .collect();
        for name in VICTIMS.iter().chain(&["crasher", "hanger"]) {
            let (counts, stop) = (&counts, &stop);
            s.spawn(move || load(port, name, true, stop, counts, None));
        }
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let (api, stop) = (api.clone(), &stop);
                s.spawn(move || write(&api, writer, started, stop))
            })
            .collect();
        {
            let (platform, counts, stop) = (&platform, &counts, &stop);
            s.spawn(move || kill_victims(platform, &mut Rng(seed), stop, counts));
            s.spawn(move || slowloris(port, stop, counts));
            s.spawn(move || huge_requests(port, stop, counts));
        }

        // The schedule of the faults that happen once.
        let at = |when: Duration| std::thread::sleep(when.saturating_sub(started.elapsed()));
        at(FILL_AT);
        match &disk {
            Ok(disk) => {
                eprintln!("chaos: filling the disk at {:.1} s", started.elapsed().as_secs_f64());
                let filled = fill_for(disk, FILL_FOR);
                eprintln!("chaos: freed the disk at {:.1} s", started.elapsed().as_secs_f64());
                freed_at = Some(started.elapsed());
                disk_report = format!("full for {} s ({DISK_MIB} MiB tmpfs; {filled})", FILL_FOR.as_secs());
            }
            Err(reason) => disk_report = format!("skipped: {reason}"),
        }
        at(STALL_AT);
        eprintln!("chaos: stalling nats-server at {:.1} s", started.elapsed().as_secs_f64());
        nats.pause();
        std::thread::sleep(STALL_FOR);
        nats.resume();
        eprintln!("chaos: nats-server runs again at {:.1} s", started.elapsed().as_secs_f64());
        at(WINDOW);
        stop.store(true, Ordering::Release);
        let healthy: Vec<Load> = healthy.into_iter().map(|h| h.join().unwrap()).collect();
        let writes: Vec<Writes> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        (healthy, writes)
    });
    eprintln!("chaos: the window of faults ended after {:.1} s", started.elapsed().as_secs_f64());
    let after_stall = delivered("after-the-stall");

    // The writes acknowledged, the last value of each object, and whether the store took writes
    // again once the disk had room.
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut acked_count = 0;
    let mut refused = 0;
    let mut last_ack_started = Duration::ZERO;
    for w in &writes {
        acked_count += w.acked.len();
        refused += w.refused;
        for (name, value, at) in &w.acked {
            acked.insert(name.clone(), *value);
            last_ack_started = last_ack_started.max(*at);
        }
    }
    let recovered = freed_at.is_none_or(|freed| last_ack_started > freed);

    let peak = peak_memory(platform.process().pid);
    platform.sigkill();
    platform.restart();
    let api = platform.api_client();
    let stored = poll(DEADLINE, || {
        let reply = api.request("GET", "/api/v1/namespaces/default/configmaps", &[], "").map_err(|e| e.to_string())?;
        let list: Value = serde_json::from_str(&reply.body).map_err(|e| format!("{} {e}", reply.status))?;
        let items = list["items"].as_array().ok_or_else(|| format!("{} {}", reply.status, reply.body))?;
        Ok(items
            .iter()
            .filter_map(|o| {
                let name = o.pointer("/metadata/name")?.as_str()?.to_owned();
                Some((name, o.pointer("/data/value")?.as_str()?.parse::<u64>().ok()?))
            })
            .collect::<BTreeMap<String, u64>>())
    })
    .unwrap_or_else(|last| panic!("the API does not list ConfigMaps after the restart: {last}"));
    let lost: Vec<String> = acked
        .iter()
        .filter(|(name, value)| stored.get(*name).is_none_or(|v| v < value))
        .map(|(name, value)| format!("{name}={value} (stored: {:?})", stored.get(name)))
        .collect();
    let answers: Vec<Result<(), String>> = HEALTHY
        .iter()
        .map(|(name, answer)| {
            poll(DEADLINE, || {
                let reply = support::get(platform.port, &format!("/default/{name}/")).map_err(|e| e.to_string())?;
                if reply.status == 200 && reply.body == *answer { Ok(()) } else { Err(format!("{reply:?}")) }
            })
            .map_err(|last| format!("{name} after the restart: {last}"))
        })
        .collect();

    let sent: usize = healthy.iter().map(|h| h.sent).sum();
    let failures: Vec<&String> = healthy.iter().flat_map(|h| &h.failures).collect();
    let slowest = healthy.iter().map(|h| h.slowest).max().unwrap_or_default();
    let figures = [
        ("Requests to healthy functions (Python, Node; kept-alive and fresh connections)", sent.to_string()),
        ("Failed requests to healthy functions", failures.len().to_string()),
        ("Slowest request to a healthy function", format!("{:.1} s", slowest.as_secs_f64())),
        (
            "Requests to killed, crashing and hanging functions",
            counts.other_requests.load(Ordering::Relaxed).to_string(),
        ),
        (
            "Victims' processes killed with SIGKILL: instances / their workers",
            format!(
                "{} / {}",
                counts.killed_instances.load(Ordering::Relaxed),
                counts.killed_workers.load(Ordering::Relaxed)
            ),
        ),
        (
            "Hostile connections opened (slow heads, idle, huge bodies)",
            counts.hostile.load(Ordering::Relaxed).to_string(),
        ),
        ("API writes acknowledged", acked_count.to_string()),
        ("API writes not acknowledged (refused, mostly while the disk was full)", refused.to_string()),
        ("Acknowledged writes lost after SIGKILL of `kelp up`", lost.len().to_string()),
        ("Disk of the data directory", disk_report.clone()),
        ("Broker stalled (SIGSTOP of nats-server)", format!("{} s", STALL_FOR.as_secs())),
        ("Peak memory of `kelp up` (VmHWM, its instances apart)", peak),
    ];
    let mut table = String::from("| Chaos test of `kelp up` (`scripts/chaos`) | |\n|---|---|\n");
    for (what, value) in &figures {
        table.push_str(&format!("| {what} | {value} |\n"));
    }
    eprintln!("---- chaos figures ----\n{table}---- end of chaos figures ----");
    eprintln!("chaos: huge requests were answered {:?}", counts.huge_answers.lock().unwrap());

    let mut problems = Vec::new();
    if !failures.is_empty() {
        let first: Vec<_> = failures.iter().take(10).collect();
        problems
            .push(format!("{} of {sent} requests to healthy functions failed; the first: {first:#?}", failures.len()));
    }
    if !recovered {
        problems.push(format!(
            "no write was acknowledged once the disk had room again (freed after {:.1} s; the last acknowledged \
             write started after {:.1} s)",
            freed_at.unwrap_or_default().as_secs_f64(),
            last_ack_started.as_secs_f64()
        ));
    }
    if let Err(logs) = after_stall {
        problems.push(format!("the NATSTrigger did not deliver after the broker's stall; the function's log:\n{logs}"));
    }
    if !lost.is_empty() {
        problems.push(format!("{} of {} acknowledged objects lost: {:?}", lost.len(), acked.len(), lost));
    }
    problems.extend(answers.into_iter().filter_map(Result::err));
    assert!(problems.is_empty(), "chaos (seed {seed}):\n{}", problems.join("\n"));
}

/// The peak resident memory of the process `pid`, as `/proc` says it.
fn peak_memory(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok());
    kib.map_or_else(|| "unknown".to_owned(), |kib| format!("{} MiB", kib >> 10))
}

/// Deploys every function of the test and waits until each answers once.
fn deploy(platform: &Platform) {
    let functions = [
        ("healthy-py", "python3.8", python("healthy-py"), vec![]),
        ("healthy-js", "nodejs20", node("healthy-js"), vec![]),
        ("victim-py", "python3.8", python("victim-py"), vec![]),
        ("victim-js", "nodejs20", node("victim-js"), vec![]),
        ("crasher", "python3.8", CRASHER.to_owned(), vec![]),
        ("hanger", "python3.8", HANGER.to_owned(), vec!["--timeout", "2"]),
        ("listener", "python3.8", LISTENER.to_owned(), vec![]),
    ];
    for (name, runtime, code, extra) in &functions {
        let file = if runtime.starts_with("node") { format!("{name}.js") } else { format!("{name}.py") };
        platform.deploy(name, runtime, &file, code, &format!("{name}.handler"), extra);
    }
    for name in ["healthy-py", "healthy-js", "victim-py", "victim-js", "listener"] {
        platform.call_until(name, |_| true);
    }
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the threads count.
#[derive(Default)]
struct Counts {
    /// Requests to the functions that are not healthy.
    other_requests: AtomicU64,
    /// Victims' `kelp-runtime` processes (instances) killed.
    killed_instances: AtomicU64,
    /// Victims' language workers killed.
    killed_workers: AtomicU64,
    /// Connections the hostile clients opened.
    hostile: AtomicU64,
    /// How the huge requests were answered: `<target> <framing>: <status or error>` → times.
    huge_answers: Mutex<BTreeMap<String, usize>>,
}

/// What one client of a healthy function saw.
struct Load {
    sent: usize,
    /// The longest a request took.
    slowest: Duration,
    /// Each failed request: when, and what came back.
    failures: Vec<String>,
}

/// Calls `/default/<name>/` until `stop`; with `expected`, any other answer is a failure.
fn load(port: u16, name: &str, keep_alive: bool, stop: &AtomicBool, counts: &Counts, expected: Option<&str>) -> Load {
    let started = Instant::now();
    let path = format!("/default/{name}/");
    let mut client = Client { port, keep_alive, conn: None };
    let mut result = Load { sent: 0, slowest: Duration::ZERO, failures: Vec::new() };
    while !stop.load(Ordering::Acquire) {
        let sent_at = Instant::now();
        let answer = client.get(&path);
        result.slowest = result.slowest.max(sent_at.elapsed());
        let Some(expected) = expected else {
            counts.other_requests.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        result.sent += 1;
        match answer {
            Ok((200, body)) if body == expected => {}
            other => result.failures.push(format!(
                "{:.1} s, {name} ({}): {other:?}",
                started.elapsed().as_secs_f64(),
                if keep_alive { "kept-alive" } else { "fresh connection" }
            )),
        }
    }
    result
}

/// A minimal HTTP/1.1 client: GET requests on one kept-alive connection, or a fresh one each.
struct Client {
    port: u16,
    keep_alive: bool,
    conn: Option<BufReader<TcpStream>>,
}

/// Why a request failed, and whether it failed before any byte of an answer.
struct Failed {
    before_answer: bool,
    error: String,
}

impl Client {
    /// One GET: the status and body. A kept-alive connection the server closed before answering
    /// is replaced by a fresh one once, as HTTP clients do.
    fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let reused = self.conn.is_some();
        match self.exchange(path) {
            Err(failed) if reused && failed.before_answer => self.exchange(path).map_err(|f| f.error),
            answer => answer.map_err(|f| f.error),
        }
    }

    fn exchange(&mut self, path: &str) -> Result<(u16, String), Failed> {
        let early = |error: std::io::Error| Failed { before_answer: true, error: error.to_string() };
        let late = |error: String| Failed { before_answer: false, error };
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => BufReader::new(connect(self.port).map_err(early)?),
        };
        let close = if self.keep_alive { "" } else { "Connection: close\r\n" };
        let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{close}\r\n", self.port);
        conn.get_mut().write_all(head.as_bytes()).map_err(early)?;
        let mut line = String::new();
        if conn.read_line(&mut line).map_err(early)? == 0 {
            return Err(Failed { before_answer: true, error: "closed before an answer".to_owned() });
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| late(format!("status {line:?}")))?;
        let (mut length, mut chunked, mut server_closes) = (None, false, !self.keep_alive);
        loop {
            line.clear();
            conn.read_line(&mut line).map_err(|e| late(e.to_string()))?;
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((&header, ""));
            match (name.trim(), value.trim()) {
                ("content-length", v) => length = v.parse::<usize>().ok(),
                ("transfer-encoding", v) => chunked = v.contains("chunked"),
                ("connection", "close") => server_closes = true,
                _ => {}
            }
        }
        let body = match (chunked, length) {
            (true, _) => read_chunked(&mut conn),
            (false, Some(length)) => {
                let mut body = vec![0; length];
                conn.read_exact(&mut body).map(|()| body)
            }
            (false, None) => {
                server_closes = true;
                let mut body = Vec::new();
                conn.read_to_end(&mut body).map(|_| body)
            }
        };
        let body = body.map_err(|e| late(format!("{status}, then {e}")))?;
        if !server_closes {
            self.conn = Some(conn);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A chunked body.
fn read_chunked(conn: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        conn.read_line(&mut size)?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
        let mut chunk = vec![0; size + 2];
        conn.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// A connection to the platform, giving up reading after a minute.
fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// The writes of one writer: each acknowledged one (object, value, when it was sent), and how
/// many were refused.
struct Writes {
    acked: Vec<(String, u64, Duration)>,
    refused: usize,
}

/// Creates ConfigMaps `chaos-<writer>-<n>` and updates them (each update a larger `value`)
/// through the API until `stop`, keeping what the API acknowledged with a 2xx.
fn write(api: &support::Api, writer: usize, started: Instant, stop: &AtomicBool) -> Writes {
    let mut writes = Writes { acked: Vec::new(), refused: 0 };
    let filler = "x".repeat(WRITE_BYTES);
    let mut created: Vec<(String, u64)> = Vec::new();
    for step in 0u64.. {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let at = started.elapsed();
        // Two creates for one update.
        let (answer, name, value) = if step % 3 == 2 && !created.is_empty() {
            let index = usize::try_from(step).unwrap() % created.len();
            let (name, value) = (created[index].0.clone(), step);
            let path = format!("/api/v1/namespaces/default/configmaps/{name}");
            let patch = json!({"data": {"value": value.to_string(), "filler": filler}}).to_string();
            let headers = [("Content-Type", "application/merge-patch+json")];
            (api.request("PATCH", &path, &headers, &patch), name, value)
        } else {
            let name = format!("chaos-{writer}-{step}");
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                                "data": {"value": step.to_string(), "filler": filler}});
            let headers = [("Content-Type", "application/json")];
            let path = "/api/v1/namespaces/default/configmaps";
            (api.request("POST", path, &headers, &object.to_string()), name, step)
        };
        match answer {
            Ok(reply) if (200..300).contains(&reply.status) => {
                if let Some(entry) = created.iter_mut().find(|(n, _)| *n == name) {
                    entry.1 = value;
                } else {
                    created.push((name.clone(), value));
                }
                writes.acked.push((name, value, at));
            }
            _ => writes.refused += 1,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writes
}

/// Every `KILL_EVERY`, SIGKILLs a random process of a random victim: the `kelp-runtime` of one of
/// its Pods (found through the API's Pod list and the Pod's port) or one of its workers.
fn kill_victims(platform: &Platform, rng: &mut Rng, stop: &AtomicBool, counts: &Counts) {
    let api = platform.api_client();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(KILL_EVERY);
        let victim = VICTIMS[rng.below(VICTIMS.len())];
        let path = format!("/api/v1/namespaces/default/pods?labelSelector=function%3D{victim}");
        let Ok(reply) = api.request("GET", &path, &[], "") else { continue };
        let pods: Value = serde_json::from_str(&reply.body).unwrap_or_default();
        let ports: Vec<u16> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pod| pod.pointer("/metadata/labels/function").and_then(Value::as_str) == Some(victim))
            .filter_map(|pod| pod.pointer("/spec/containers/0/ports/0/containerPort")?.as_u64())
            .filter_map(|port| u16::try_from(port).ok())
            .collect();
        if ports.is_empty() {
            continue;
        }
        let Some(runtime) = platform.runtime_on_port(ports[rng.below(ports.len())]) else { continue };
        let mut processes = vec![runtime];
        processes.extend(runtime.descendants());
        let chosen = rng.below(processes.len());
        processes[chosen].signal(Signal::SIGKILL);
        let killed = if chosen == 0 { &counts.killed_instances } else { &counts.killed_workers };
        killed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hostile connections held open until `stop`: request heads sent one byte at a time (to a
/// function's path, to the API's, and a TLS handshake), and connections that send nothing. A
/// connection the platform closes is opened again.
fn slowloris(port: u16, stop: &AtomicBool, counts: &Counts) {
    // A TLS record of a ClientHello announcing 512 bytes, which never come.
    const TLS: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let heads: [&[u8]; 3] = [
        b"GET /default/healthy-py/ HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        TLS,
    ];
    let open = || {
        counts.hostile.fetch_add(1, Ordering::Relaxed);
        connect(port).and_then(|c| c.set_nonblocking(true).map(|()| c)).ok()
    };
    let mut slow: Vec<(usize, usize, Option<TcpStream>)> =
        (0..SLOW_CONNECTIONS * heads.len()).map(|i| (i % heads.len(), 0, open())).collect();
    let mut idle: Vec<Option<TcpStream>> = (0..IDLE_CONNECTIONS).map(|_| open()).collect();
    while !stop.load(Ordering::Acquire) {
        for (kind, sent, conn) in &mut slow {
            let head = heads[*kind];
            // After the head, header lines that never end the request.
            let byte = head.get(*sent).copied().unwrap_or_else(|| b"X-Slow: 1\r\n"[(*sent - head.len()) % 11]);
            if conn.as_mut().is_none_or(|c| c.write_all(&[byte]).is_err()) {
                (*sent, *conn) = (0, open());
            } else {
                *sent += 1;
            }
        }
        for conn in &mut idle {
            // Whatever the platform says (a 408, say), the connection stays until it is closed.
            let closed = conn.as_mut().is_none_or(|c| match c.read(&mut [0; 512]) {
                Ok(n) => n == 0,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            });
            if closed {
                *conn = open();
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Until `stop`: requests with a body far above any limit, to a function and to the API, one
/// announcing a length of 1 TiB and one with a chunked body that never ends; each sends at most
/// `HUGE_SENT` bytes, or until the platform answers or closes.
fn huge_requests(port: u16, stop: &AtomicBool, counts: &Counts) {
    let targets = [("function", "/default/healthy-js/"), ("API", "/api/v1/namespaces/default/configmaps")];
    let block = vec![b'x'; 64 << 10];
    let chunk: Vec<u8> = [format!("{:x}\r\n", block.len()).as_bytes(), &block, b"\r\n"].concat();
    while !stop.load(Ordering::Acquire) {
        for (target, path) in targets {
            for chunked in [false, true] {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                counts.hostile.fetch_add(1, Ordering::Relaxed);
                let framing = if chunked { "Transfer-Encoding: chunked" } else { "Content-Length: 1099511627776" };
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
                );
                let mut sent = 0;
                let answer = connect(port).and_then(|mut conn| {
                    conn.write_all(head.as_bytes())?;
                    let piece = if chunked { &chunk } else { &block };
                    while sent < HUGE_SENT && !stop.load(Ordering::Acquire) && conn.write_all(piece).is_ok() {
                        sent += piece.len();
                    }
                    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
                    let mut answer = [0; 64];
                    let n = conn.read(&mut answer)?;
                    let status = String::from_utf8_lossy(&answer[..n]);
                    Ok(status.split_whitespace().nth(1).unwrap_or("closed").to_owned())
                });
                let answer = answer.unwrap_or_else(|e| match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => "no answer".to_owned(),
                    kind => format!("{kind:?}"),
                });
                let framing = if chunked { "chunked" } else { "1 TiB" };
                let key = format!("{target} {framing}: {answer} after {} MiB sent", sent >> 20);
                *counts.huge_answers.lock().unwrap().entry(key).or_default() += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Fills the data directory's disk and keeps it full for `duration` (taking what the platform
/// frees), then frees it; says how much it took.
fn fill_for(disk: &SmallDisk, duration: Duration) -> String {
    let path = disk.path().join("chaos-filler");
    let began = Instant::now();
    let mut taken = 0;
    let mut error = None;
    while began.elapsed() < duration {
        match fill(&path) {
            Ok(n) => taken += n,
            Err(e) => error = Some(e.to_string()),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(&path);
    match error {
        Some(e) => format!("filling failed: {e}"),
        None => format!("{} MiB taken", taken >> 20),
    }
}

/// xorshift64*: random enough to choose victims, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}
