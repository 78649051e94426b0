//! The harness of `up.rs`: a real `kelp up` process on a free loopback port with its own data
//! directory and kubeconfig, the `kelp` CLI and kubectl aimed at it, a small blocking HTTP client
//! (plain HTTP for function URLs; TLS with the kubeconfig's authority and token for the API),
//! polling with deadlines, and a look at the platform's processes through `/proc`.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long eventual conditions (a function ready, a route installed...) are waited for. The
/// machine may be small and busy: generous, never asserted as a timing.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) use kelp_testkit::{kubectl_bin, runtime_bin};

#[path = "../common/run.rs"]
mod common_run;
pub(crate) use common_run::{Run, run};

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A process as `/proc` shows it, with its start time so that a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proc {
    pub(crate) pid: i32,
    start: u64,
}

/// `(ppid, state, start time)` of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(i32, char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3, ppid 4, starttime 22 (1-based, of the whole line).
    Some((fields.get(1)?.parse().ok()?, fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

impl Proc {
    fn of(pid: i32) -> Option<Proc> {
        stat(pid).map(|(_, _, start)| Proc { pid, start })
    }

    /// Whether it still runs (a zombie does not: it is only waiting to be reaped).
    pub(crate) fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(_, state, start)| start == self.start && state != 'Z')
    }

    /// Its command line, arguments joined by spaces.
    pub(crate) fn cmdline(&self) -> String {
        let raw = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_owned()
    }

    /// The value of `name` in its initial environment.
    pub(crate) fn env(&self, name: &str) -> Option<String> {
        let raw = std::fs::read(format!("/proc/{}/environ", self.pid)).ok()?;
        raw.split(|b| *b == 0).find_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            entry.strip_prefix(name)?.strip_prefix('=').map(str::to_owned)
        })
    }

    /// Every live process below it (children, grandchildren...).
    pub(crate) fn descendants(&self) -> Vec<Proc> {
        let table: Vec<(i32, i32, u64)> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                stat(pid).filter(|(_, state, _)| *state != 'Z').map(|(ppid, _, start)| (pid, ppid, start))
            })
            .collect();
        let mut found = Vec::new();
        let mut parents = vec![self.pid];
        while let Some(parent) = parents.pop() {
            for (pid, ppid, start) in &table {
                if *ppid == parent {
                    found.push(Proc { pid: *pid, start: *start });
                    parents.push(*pid);
                }
            }
        }
        found
    }

    /// Sends `signal` if it is still the same process.
    pub(crate) fn signal(&self, signal: Signal) {
        if self.alive() {
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }
}

/// A running `kelp up`, its scratch directory, data directory and kubeconfig. Dropping it stops
/// the platform (SIGTERM, then SIGKILL) and every process it started.
pub(crate) struct Platform {
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    /// `--data-dir`.
    pub(crate) data_dir: PathBuf,
    /// The kubeconfig `kelp up` wrote the `kelp-local` context into.
    pub(crate) kubeconfig: PathBuf,
    /// The API of this run, with the authority and token of the kubeconfig.
    credentials: Option<Api>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    proc: Option<Proc>,
    stderr: PathBuf,
    starts: usize,
    /// Processes of earlier runs (left behind by a SIGKILL), stopped when this is dropped.
    leftovers: Vec<Proc>,
}

impl Platform {
    /// `kelp up` with the usual flags and `extra` ones, started and answering `/version`.
    pub(crate) fn start(extra: &[&str]) -> Platform {
        Platform::start_with(extra, &[], None)
    }

    /// [`Platform::start`] with the variables `env` added to the platform's environment.
    pub(crate) fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Platform {
        Platform::start_with(extra, env, None)
    }

    /// `kelp up` with `extra` flags, `env` added to its environment, and its data directory at
    /// `data_dir` (one the caller prepared, such as a small file system of its own; else in the
    /// scratch directory).
    pub(crate) fn start_with(extra: &[&str], env: &[(&str, &str)], data_dir: Option<PathBuf>) -> Platform {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        let kubeconfig = dir.path().join("kubeconfig");
        let mut platform = Platform {
            stderr: PathBuf::new(),
            dir,
            port: 0,
            data_dir,
            kubeconfig,
            credentials: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            child: None,
            proc: None,
            starts: 0,
            leftovers: Vec::new(),
        };
        platform.launch();
        platform
    }

    /// Starts the process (again) on the same data directory, on a new free port.
    fn launch(&mut self) {
        for _ in 0..3 {
            self.starts += 1;
            self.port = free_port();
            self.stderr = self.dir.path().join(format!("kelp-up-{}.stderr", self.starts));
            let stderr = std::fs::File::create(&self.stderr).unwrap();
            let mut command = Command::new(env!("CARGO_BIN_EXE_kelp"));
            command
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("up")
                .arg("--listen")
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--data-dir")
                .arg(&self.data_dir)
                .arg("--runtime-bin")
                .arg(runtime_bin())
                .args(&self.extra)
                .env("KELP_LOG", "warn,kelp_up=info")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .env_remove("KUBECONFIG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr);
            let child = command.spawn().expect("starting kelp up");
            self.proc = Proc::of(i32::try_from(child.id()).unwrap());
            self.child = Some(child);
            let start = Instant::now();
            loop {
                if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                    let log = self.stderr_text();
                    self.child = None;
                    // Another process took the port between our look and kelp's bind: try another.
                    if log.contains("cannot listen") {
                        break;
                    }
                    panic!("kelp up exited ({status}) before answering:\n{log}");
                }
                // The kubeconfig names this run's port once the listener is bound.
                self.credentials = Api::read(&self.kubeconfig, self.port);
                if self.credentials.is_some() && self.api("GET", "/version", &[], "").is_ok_and(|r| r.status == 200) {
                    return;
                }
                assert!(start.elapsed() < DEADLINE, "kelp up did not answer /version:\n{}", self.stderr_text());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("kelp up could not find a free port:\n{}", self.stderr_text());
    }

    /// A request to the API (or `/metrics`) of this run: TLS with the kubeconfig's authority and
    /// the bearer token.
    pub(crate) fn api(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<Reply> {
        self.api_client().request(method, path, headers, body)
    }

    /// A client of this run's API, for another thread.
    pub(crate) fn api_client(&self) -> Api {
        self.credentials.clone().expect("the platform is running")
    }

    /// `GET path` of the API as JSON.
    pub(crate) fn get_json(&self, path: &str) -> Value {
        let reply = self.api("GET", path, &[], "").unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", reply.body))
    }

    /// What the platform wrote on stderr (this run).
    pub(crate) fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The platform's process.
    pub(crate) fn process(&self) -> Proc {
        self.proc.expect("the platform is running")
    }

    /// A file in the scratch directory, written with `content`.
    pub(crate) fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `kelp --kubeconfig <ours> <args>`, with HOME in the scratch directory.
    pub(crate) fn kelp(&self, args: &[&str]) -> Run {
        run(
            Command::new(env!("CARGO_BIN_EXE_kelp"))
                .env("HOME", self.dir.path())
                .env_remove("KUBECONFIG")
                .env_remove("KUBELESS_NAMESPACE")
                .env_remove("KUBELESS_CONFIG")
                .env_remove("KAFKA_BROKERS")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args),
            None,
        )
    }

    /// The original kubeless CLI v1.0.8 (`kubeless <args>`), aimed at this platform the only way
    /// it can be: `KUBECONFIG`, with HOME in the scratch directory.
    pub(crate) fn kubeless(&self, args: &[&str]) -> Run {
        run(
            Command::new(kelp_testkit::kubeless_bin())
                .env("HOME", self.dir.path())
                .env("KUBECONFIG", &self.kubeconfig)
                .env_remove("KUBELESS_NAMESPACE")
                .env_remove("KUBELESS_CONFIG")
                .args(args),
            None,
        )
    }

    /// `kubectl --kubeconfig <ours> <args>`.
    pub(crate) fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_bin());
        command
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args);
        command
    }

    /// Runs `kubectl --kubeconfig <ours> <args>`.
    pub(crate) fn kubectl(&self, args: &[&str]) -> Run {
        run(&mut self.kubectl_command(args), None)
    }

    /// Deploys a text function with the CLI, from the file `file` holding `code`.
    pub(crate) fn deploy(&self, name: &str, runtime: &str, file: &str, code: &str, handler: &str, extra: &[&str]) {
        let path = self.write(file, code);
        let mut args =
            vec!["function", "deploy", name, "--runtime", runtime, "--from-file", &path, "--handler", handler];
        args.extend_from_slice(extra);
        self.kelp(&args).ok();
    }

    /// Calls `/<namespace>/<function>/` until it answers 200 and `check` accepts the body.
    #[track_caller]
    pub(crate) fn call_until(&self, name: &str, check: impl Fn(&str) -> bool) -> String {
        let path = format!("/default/{name}/");
        eventually(&format!("GET {path} answers 200 as expected"), DEADLINE, || match get(self.port, &path) {
            Ok(r) if r.status == 200 && check(&r.body) => Ok(r.body),
            Ok(r) => Err(format!("{} {}", r.status, r.body)),
            Err(e) => Err(e.to_string()),
        })
    }

    /// The log of the function's ready instance (`kelp function logs`), or "" when none is ready.
    pub(crate) fn logs(&self, name: &str) -> String {
        self.kelp(&["function", "logs", name]).stdout
    }

    /// The function processes (`kelp-runtime` children of the platform) by the port they serve.
    pub(crate) fn runtime_on_port(&self, port: u16) -> Option<Proc> {
        let wanted = port.to_string();
        self.process().descendants().into_iter().find(|p| p.env("FUNC_PORT").as_deref() == Some(wanted.as_str()))
    }

    /// SIGKILLs the platform (no clean-up of any kind) and returns what it had started.
    pub(crate) fn sigkill(&mut self) -> Vec<Proc> {
        let below = self.process().descendants();
        let mut child = self.child.take().expect("the platform is running");
        child.kill().unwrap();
        child.wait().unwrap();
        self.proc = None;
        self.leftovers.extend(below.iter().copied());
        below
    }

    /// Starts the platform again on the same data directory (after [`Platform::sigkill`]).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "the platform is still running");
        self.launch();
    }

    fn stop(&mut self) {
        if let (Some(mut child), Some(proc)) = (self.child.take(), self.proc.take()) {
            let below = proc.descendants();
            proc.signal(Signal::SIGTERM);
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            self.leftovers.extend(below);
        }
        for p in &self.leftovers {
            p.signal(Signal::SIGKILL);
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let log = self.stderr_text();
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- kelp up stderr ({}) ----\n{log}\n---- end ----", self.stderr.display());
        }
    }
}

/// The API of one run of `kelp up`: its port, and its authority and token from the kubeconfig.
#[derive(Clone)]
pub(crate) struct Api {
    port: u16,
    tls: std::sync::Arc<rustls::ClientConfig>,
    token: String,
}

impl Api {
    /// The `kelp-local` context's authority and token, once its server is `https://127.0.0.1:<port>`.
    fn read(kubeconfig: &std::path::Path, port: u16) -> Option<Api> {
        use base64::Engine as _;
        use rustls::pki_types::pem::PemObject as _;
        let config: Value = serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig).ok()?).ok()?;
        let named = |list: &str| config[list].as_array()?.iter().find(|e| e["name"] == "kelp-local").cloned();
        let cluster = named("clusters")?;
        if cluster["cluster"]["server"] != format!("https://127.0.0.1:{port}") {
            return None;
        }
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster["cluster"]["certificate-authority-data"].as_str()?)
            .ok()?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(&ca).ok()?).ok()?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let token = named("users")?["user"]["token"].as_str()?.to_owned();
        Some(Api { port, tls: std::sync::Arc::new(tls), token })
    }

    /// The same API, without the token (to see it refused).
    pub(crate) fn without_token(&self) -> Api {
        Api { token: String::new(), ..self.clone() }
    }

    /// The bearer token.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// One request on a fresh TLS connection, with `Authorization: Bearer <token>` (when there is
    /// a token) unless `headers` carry an `Authorization` of their own.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<Reply> {
        let server = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = rustls::ClientConnection::new(self.tls.clone(), server).map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(tls, connect(self.port)?);
        let authorization = format!("Bearer {}", self.token);
        let mut all = headers.to_vec();
        if !self.token.is_empty() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            all.push(("Authorization", authorization.as_str()));
        }
        exchange(&mut stream, self.port, method, path, &all, body)
    }
}

/// An HTTP response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
    /// The status line and headers.
    #[allow(dead_code)] // Read by some of the test binaries that share this harness.
    head: String,
}

impl Reply {
    /// The value of the header `name` (the first, if repeated).
    #[allow(dead_code)] // Used by some of the test binaries that share this harness.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection (`Connection: close`), with
/// `headers` (a `Host` among them replaces the default one).
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Reply> {
    exchange(&mut connect(port)?, port, method, path, headers, body)
}

/// A connection to 127.0.0.1:`port` that gives up reading after two minutes.
fn connect(port: u16) -> std::io::Result<TcpStream> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    Ok(stream)
}

/// Sends one request on `stream` and reads the whole response.
fn exchange(
    stream: &mut (impl std::io::Read + std::io::Write),
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Reply> {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Connection: close\r\nContent-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        // A TLS peer that closes without `close_notify`: what came is the whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        read => _ = read?,
    }
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {raw:?}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        payload = dechunk(&payload).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Reply { status, body: String::from_utf8_lossy(&payload).into_owned(), head })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `GET path`.
pub(crate) fn get(port: u16, path: &str) -> std::io::Result<Reply> {
    request(port, "GET", path, &[], "")
}

/// Polls `check` every 100 ms until it returns `Ok`, panicking with what it last said after
/// `timeout`.
#[track_caller]
pub(crate) fn eventually<T>(what: &str, timeout: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    poll(timeout, check)
        .unwrap_or_else(|last| panic!("timed out after {timeout:?} waiting until {what}; last seen: {last}"))
}

/// Polls `check` every 100 ms until it returns `Ok`, or returns what it last said after `timeout`.
pub(crate) fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(last) if start.elapsed() >= timeout => return Err(last),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills a process when dropped, so a failing test leaves nothing running (instances of a
/// `kelp up` exit with it).
pub(crate) struct KillOnDrop(pub(crate) u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
