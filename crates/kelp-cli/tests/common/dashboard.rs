//! What the dashboard tests share (through `#[path]`): a running `kelp dashboard`, its login, and
//! headless Chromium driven by a playwright-core script (`tests/dashboard/*.cjs`).

#![allow(dead_code)] // Each test binary uses some of these.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `kelp dashboard` and its login URL; stopped when dropped.
pub(crate) struct Dashboard {
    child: Child,
    /// The loopback port it serves on.
    pub(crate) port: u16,
    /// The login URL it printed.
    pub(crate) login: String,
}

impl Dashboard {
    /// `kelp --kubeconfig <kubeconfig> <extra> dashboard` on a free port.
    pub(crate) fn start_with(kubeconfig: &Path, extra: &[&str]) -> Dashboard {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kelp"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(extra)
            .args(["dashboard", "--listen", "127.0.0.1:0"])
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kelp dashboard");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        // Keep reading its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let login = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no login URL in: {line}"))
            .to_owned();
        let port = login.split(':').nth(2).and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok()).unwrap();
        Dashboard { child, port, login }
    }

    /// Signs in: the `Cookie` header value the login sets.
    pub(crate) fn sign_in(&self) -> String {
        sign_in(self.port, &self.login)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens the login URL `login` (served on `port`): the `Cookie` header value it sets.
pub(crate) fn sign_in(port: u16, login: &str) -> String {
    let path = &login[login.find("/ui/").unwrap()..];
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut head = String::new();
    stream.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie =
        head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).unwrap_or_else(|| panic!("no cookie set: {head}"));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_owned()
}

/// The `chromium` on PATH (Debian's package, which scripts/setup installs), or `KELP_CHROMIUM`.
pub(crate) fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("KELP_CHROMIUM") {
        return PathBuf::from(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .expect("no chromium on PATH: run scripts/setup (it installs Debian's chromium)")
}

/// The directory of playwright-core and axe-core (`scripts/browser`, or `KELP_BROWSER_TOOLS`).
pub(crate) fn browser_tools() -> PathBuf {
    if let Some(dir) = std::env::var_os("KELP_BROWSER_TOOLS") {
        return PathBuf::from(dir);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/browser");
    let out = Command::new(&script).stdin(Stdio::null()).output().expect("running scripts/browser");
    assert!(out.status.success(), "scripts/browser failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs the browser script `tests/dashboard/<script>` with node, the browser tools, Chromium and
/// `env`; asserts it ended saying "every step passed". Returns its output.
pub(crate) fn run_browser_script<K: AsRef<OsStr>, V: AsRef<OsStr>>(script: &str, env: &[(K, V)]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard").join(script);
    let mut command = Command::new("node");
    command
        .arg(&script)
        .env("KELP_BROWSER_TOOLS", browser_tools())
        .env("KELP_CHROMIUM", chromium())
        .env("KELP_SCRATCH", scratch.path())
        .env("HOME", scratch.path())
        .env_remove("KUBECONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("running node");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "the browser test {} failed:\n{text}", script.display());
    assert!(text.contains("every step passed"), "{text}");
    text
}
