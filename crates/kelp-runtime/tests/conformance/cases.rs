//! The data-driven cases of `conformance/cases/*.json` (format: `conformance/README.md`).
//!
//! Cases that need the same function and environment share one `kelp-runtime` process (a process
//! serves one handler); each group's cases run in file-name order. Every failing case is
//! reported, not only the first.

use crate::http::{Request, Response};
use crate::process::{Function, READY_TIMEOUT, Runtime, conformance_dir};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// How many case groups (processes) of one runtime run at once.
const PARALLEL_PROCESSES: usize = 4;

/// One case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    module: String,
    handler: String,
    /// Free text for readers (for instance: a known bug this case catches).
    #[serde(default, rename = "note")]
    _note: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Runtimes the case applies to (all when empty).
    #[serde(default)]
    only: Vec<String>,
    /// Runs in a process of its own (for counters such as `/metrics`).
    #[serde(default)]
    fresh_process: bool,
    /// Requests sent first, whose responses are not checked.
    #[serde(default)]
    setup: Vec<RequestSpec>,
    request: RequestSpec,
    expect: Value,
    /// Per runtime: keys that replace those of `expect`.
    #[serde(default)]
    expect_by_runtime: BTreeMap<String, Value>,
}

/// The request of a case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    #[serde(default = "default_method")]
    method: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    body_base64: Option<String>,
    body_json: Option<Value>,
    body_repeat: Option<Repeat>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_path() -> String {
    "/".into()
}

/// A body of `count` copies of one ASCII character.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repeat {
    byte: char,
    count: usize,
}

/// What the response must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    body: Option<String>,
    body_base64: Option<String>,
    body_json: Option<Value>,
    #[serde(default)]
    body_contains: Vec<String>,
    /// Header name → value; `null` means the header must be absent.
    #[serde(default)]
    headers: BTreeMap<String, Option<String>>,
    /// A JSON subset of the `echo` function's output.
    saw: Option<Value>,
}

impl RequestSpec {
    fn to_request(&self) -> Result<Request, String> {
        let mut request = Request::new(&self.method, &self.path);
        request.headers = self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        request.body = match (&self.body, &self.body_base64, &self.body_json, &self.body_repeat) {
            (None, None, None, None) => Vec::new(),
            (Some(text), None, None, None) => text.as_bytes().to_vec(),
            (None, Some(b64), None, None) => base64::decode(b64)?,
            (None, None, Some(json), None) => json.to_string().into_bytes(),
            (None, None, None, Some(Repeat { byte, count })) if byte.is_ascii() => vec![*byte as u8; *count],
            _ => return Err("give at most one of body, body_base64, body_json, body_repeat (an ASCII byte)".into()),
        };
        Ok(request)
    }
}

impl Case {
    /// The expectation for `runtime`: `expect` with the runtime's overrides applied.
    fn expect_for(&self, runtime: &Runtime) -> Result<Expect, String> {
        let mut expect = self.expect.clone();
        if let (Some(Value::Object(overrides)), Value::Object(base)) =
            (self.expect_by_runtime.get(runtime.name), &mut expect)
        {
            base.extend(overrides.clone());
        }
        serde_json::from_value(expect).map_err(|e| format!("invalid expect: {e}"))
    }

    /// Processes are shared by cases with the same key.
    fn group_key(&self) -> (String, String, Vec<(String, String)>, Option<String>) {
        let env = self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        (self.module.clone(), self.handler.clone(), env, self.fresh_process.then(|| self.name.clone()))
    }

    /// Sends the setup requests and the request; returns what does not match.
    fn run(&self, runtime: &Runtime, port: u16) -> Result<(), String> {
        let expect = self.expect_for(runtime)?;
        for setup in &self.setup {
            let request = setup.to_request()?;
            request.send(port).map_err(|e| format!("setup request {} {} failed: {e}", request.method, request.path))?;
        }
        let response = self.request.to_request()?.send(port).map_err(|e| format!("request failed: {e}"))?;
        let problems = check(&expect, &response);
        if problems.is_empty() {
            return Ok(());
        }
        let mut report = problems.join("\n");
        let _ = write!(
            report,
            "\ngot: {} {:?}\n     body: {}",
            response.status,
            response.headers,
            excerpt(&response.text())
        );
        Err(report)
    }
}

/// Every mismatch between `expect` and `response`.
fn check(expect: &Expect, response: &Response) -> Vec<String> {
    let mut problems = Vec::new();
    if response.status != expect.status {
        problems.push(format!("status: expected {}, got {}", expect.status, response.status));
    }
    for (name, want) in &expect.headers {
        let got = response.header(name);
        if got != want.as_deref() {
            problems.push(format!("header {name}: expected {want:?}, got {got:?}"));
        }
    }
    if let Some(body) = &expect.body
        && response.body != body.as_bytes()
    {
        problems.push(format!("body: expected {}, got {}", excerpt(body), excerpt(&response.text())));
    }
    if let Some(b64) = &expect.body_base64 {
        let got = base64::encode(&response.body);
        if &got != b64 {
            problems.push(format!("body (base64): expected {b64}, got {}", excerpt(&got)));
        }
    }
    for needle in &expect.body_contains {
        if !response.text().contains(needle.as_str()) {
            problems.push(format!("body: does not contain {needle:?}"));
        }
    }
    let json = || serde_json::from_slice::<Value>(&response.body).map_err(|e| format!("body is not JSON ({e})"));
    for (what, want, exact) in [("body_json", &expect.body_json, true), ("saw", &expect.saw, false)] {
        let Some(want) = want else { continue };
        match json() {
            Ok(got) => {
                if let Err(e) = compare(want, &got, "$", exact) {
                    problems.push(format!("{what}: {e}"));
                }
            }
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    problems
}

/// Compares JSON values, numbers by value (`180` equals `180.0`). Unless `exact`, objects in
/// `want` need only be a subset of those in `got`.
fn compare(want: &Value, got: &Value, path: &str, exact: bool) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            if exact && let Some(extra) = g.keys().find(|k| !w.contains_key(*k)) {
                return Err(format!("at {path}: unexpected key {extra:?}"));
            }
            w.iter().try_for_each(|(k, wv)| match g.get(k) {
                Some(gv) => compare(wv, gv, &format!("{path}.{k}"), exact),
                None => Err(format!("at {path}: missing key {k:?} (expected {wv})")),
            })
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            w.iter().zip(g).enumerate().try_for_each(|(i, (wv, gv))| compare(wv, gv, &format!("{path}[{i}]"), exact))
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => Ok(()),
        (w, g) if w == g => Ok(()),
        (w, g) => Err(format!("at {path}: expected {}, got {}", excerpt(&w.to_string()), excerpt(&g.to_string()))),
    }
}

/// At most 300 characters of `text`.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

/// Reads every case file that applies to `runtime`, in file-name order, with `{{runtime}}`
/// replaced by the runtime's `FUNC_RUNTIME`.
fn load(runtime: &Runtime) -> Vec<Case> {
    let dir = conformance_dir().join("cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("listing the cases").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| parse(file, runtime).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        .filter(|case| case.only.is_empty() || case.only.iter().any(|r| r == runtime.name))
        .collect()
}

fn parse(file: &Path, runtime: &Runtime) -> Result<Case, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let case: Case =
        serde_json::from_str(&text.replace("{{runtime}}", runtime.func_runtime)).map_err(|e| e.to_string())?;
    if file.file_stem().is_none_or(|stem| *stem != *case.name) {
        return Err(format!("the case's name {:?} is not its file name", case.name));
    }
    case.request.to_request()?;
    case.expect_for(runtime)?;
    Ok(case)
}

/// Runs every case for `runtime` and panics listing all failures.
pub(crate) fn run_all(runtime: &Runtime) {
    let started = Instant::now();
    let cases = load(runtime);
    assert!(!cases.is_empty(), "no cases in {}", conformance_dir().join("cases").display());
    let mut groups: BTreeMap<_, Vec<&Case>> = BTreeMap::new();
    for case in &cases {
        groups.entry(case.group_key()).or_default().push(case);
    }
    let groups: Vec<&Vec<&Case>> = groups.values().collect();
    let next = AtomicUsize::new(0);
    let failures: Vec<String> = std::thread::scope(|s| {
        let runners: Vec<_> = (0..PARALLEL_PROCESSES.min(groups.len()))
            .map(|_| {
                s.spawn(|| {
                    std::iter::from_fn(|| groups.get(next.fetch_add(1, Ordering::Relaxed)))
                        .flat_map(|group| run_group(runtime, group))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        runners.into_iter().flat_map(|r| r.join().expect("a case runner panicked")).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed for {}:\n\n{}\n",
        failures.len(),
        cases.len(),
        runtime.name,
        failures.join("\n\n")
    );
    eprintln!(
        "{}: {} cases passed in {:.1?} ({} processes)",
        runtime.name,
        cases.len(),
        started.elapsed(),
        groups.len()
    );
}

/// Runs cases that share one process; returns a report per failing case.
fn run_group(runtime: &Runtime, group: &[&Case]) -> Vec<String> {
    let first = group[0];
    let mut function = Function::new(runtime, &first.module, &first.handler);
    for (name, value) in &first.env {
        function = function.env(name, value);
    }
    let mut instance = function.start();
    let title = |case: &Case| {
        format!(
            "[{}] {} ({} {} → {}.{})",
            runtime.name, case.name, case.request.method, case.request.path, case.module, case.handler
        )
    };
    if let Err(e) = instance.wait_ready(READY_TIMEOUT) {
        instance.keep_logs();
        return group.iter().map(|case| format!("{}\nthe runtime did not start: {e}", title(case))).collect();
    }
    let mut failures: Vec<String> = group
        .iter()
        .filter_map(|case| case.run(runtime, instance.port).err().map(|e| format!("{}\n{}", title(case), indent(&e))))
        .collect();
    if let Some(last) = failures.last_mut() {
        instance.keep_logs();
        let _ = write!(last, "\n{}", instance.diagnostics());
    }
    failures
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// Standard base64 (with padding), for binary bodies in case files.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Encodes `bytes`.
    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                let c = if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' };
                out.push(c);
            }
        }
        out
    }

    /// Decodes `text`, which must be padded standard base64.
    pub(super) fn decode(text: &str) -> Result<Vec<u8>, String> {
        let invalid = || format!("invalid base64 {text:?}");
        if !text.len().is_multiple_of(4) {
            return Err(invalid());
        }
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        for chunk in text.as_bytes().chunks(4) {
            let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
            let mut n = 0u32;
            for (i, c) in chunk[..4 - pad].iter().enumerate() {
                let v = ALPHABET.iter().position(|a| a == c).ok_or_else(invalid)?;
                n |= (v as u32) << (18 - 6 * i);
            }
            out.extend(n.to_be_bytes()[1..4 - pad].iter());
        }
        Ok(out)
    }

    #[test]
    fn round_trips() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\x00\x80A"] {
            assert_eq!(decode(&encode(bytes)).unwrap(), bytes);
        }
        assert_eq!(encode(b"\xff\xfe\x00\x80A"), "//4AgEE=");
    }
}
