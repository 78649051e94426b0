//! The worker: connects to `KELP_WORKER_SOCKET` and speaks `runtimes/PROTOCOL.md` (hello ->
//! load -> loaded | load_error -> (invoke -> result)* -> exit 0 at end-of-file), calling the one
//! handler it was built for. Nothing of the protocol goes to stdout or stderr: those are the
//! function's log.

use crate::{Body, Context, Data, Event, Extensions, Handler, Query, Request, Response};
use serde_json::{Map, Value, json};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};

const CT_TEXT: &str = "text/plain; charset=utf-8";
const CT_BINARY: &str = "application/octet-stream";
const CT_JSON: &str = "application/json";

/// Runs the worker of the function `module.handler`, `function`, until the front closes the
/// socket. Called by the `main` Kelp generates for each function; never returns.
pub fn run(module: &str, handler: &str, function: impl Handler) -> ! {
    let Some(path) = std::env::var_os("KELP_WORKER_SOCKET") else {
        eprintln!("kelp worker: KELP_WORKER_SOCKET is not set (the worker is started by kelp-runtime)");
        exit(2)
    };
    let stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("kelp worker: cannot connect to {}: {e}", path.to_string_lossy());
            exit(2)
        }
    };
    let mut worker = Worker { reader: BufReader::with_capacity(64 * 1024, &stream), writer: &stream };
    let code = match worker.serve(module, handler, &function) {
        Ok(code) => code,
        // The front went away (it stops workers by closing the socket, or by killing them).
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => 0,
        Err(e) => {
            eprintln!("kelp worker: {e}");
            1
        }
    };
    exit(code)
}

/// Flushes the function's output and exits with `code`.
fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

struct Worker<'a> {
    reader: BufReader<&'a UnixStream>,
    writer: &'a UnixStream,
}

impl Worker<'_> {
    /// Serves until end-of-file (`Ok(0)`) or a load error (`Ok(1)`); an I/O error (the front went
    /// away) ends it too.
    fn serve(&mut self, module: &str, handler: &str, function: &impl Handler) -> std::io::Result<i32> {
        let version = format!("kelp-rust {}", env!("CARGO_PKG_VERSION"));
        self.send(&json!({"type": "hello", "pid": std::process::id(), "version": version}), &[])?;
        let Some((load, _)) = self.read()? else { return Ok(0) };
        let context = match loaded(&load, module, handler) {
            Ok(context) => context,
            Err(message) => {
                eprintln!("kelp worker: {message}");
                self.send(&load_error(&message), &[])?;
                return Ok(1);
            }
        };
        self.send(&json!({"type": "loaded"}), &[])?;
        while let Some((message, body)) = self.read()? {
            if message.get("type").and_then(Value::as_str) != Some("invoke") {
                eprintln!("kelp worker: ignoring an unexpected {:?} message", message.get("type"));
                continue;
            }
            let (header, body) = invoke(&message, body, &context, function, module, handler);
            // What the function printed without a newline yet is in the log before its response.
            let _ = std::io::stdout().flush();
            self.send(&header, &body)?;
        }
        Ok(0)
    }

    /// One frame, or `None` at end-of-file.
    fn read(&mut self) -> std::io::Result<Option<(Value, Vec<u8>)>> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            other => other?,
        }
        let mut header = vec![0; u32::from_be_bytes(len) as usize];
        self.reader.read_exact(&mut header)?;
        self.reader.read_exact(&mut len)?;
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        self.reader.read_exact(&mut body)?;
        let header = serde_json::from_slice(&header).map_err(|e| {
            std::io::Error::new(ErrorKind::InvalidData, format!("a frame from the front is not JSON: {e}"))
        })?;
        Ok(Some((header, body)))
    }

    fn send(&mut self, header: &Value, body: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(&encode(header, body)?)
    }
}

/// One frame: the header's length and JSON, the body's length and bytes.
pub(crate) fn encode(header: &Value, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let header = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    let too_long = |what| std::io::Error::new(ErrorKind::InvalidData, format!("the {what} is over 4 GiB"));
    let (header_len, body_len) = (
        u32::try_from(header.len()).map_err(|_| too_long("header"))?,
        u32::try_from(body.len()).map_err(|_| too_long("body"))?,
    );
    let mut frame = Vec::with_capacity(8 + header.len() + body.len());
    frame.extend_from_slice(&header_len.to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&body_len.to_be_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// The context of a `load` for `module.handler`, after setting its environment (the variables
/// whose value differs from the process's); the message of a `load_error` when the load is not
/// one for this worker.
pub(crate) fn loaded(load: &Value, module: &str, handler: &str) -> Result<Context, String> {
    if load.get("type").and_then(Value::as_str) != Some("load") {
        return Err(format!("expected a \"load\" message, got {:?}", load.get("type")));
    }
    let wanted = (text(load, "module"), text(load, "handler"));
    if wanted != (Some(module.to_owned()), Some(handler.to_owned())) {
        return Err(format!(
            "cannot load handler {:?} from module {:?}: this worker was built for {module}.{handler}",
            wanted.1.unwrap_or_default(),
            wanted.0.unwrap_or_default()
        ));
    }
    for (name, value) in load.get("env").and_then(Value::as_object).into_iter().flatten() {
        let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        if std::env::var_os(name).is_some_and(|current| current == *value) {
            // Already so: an in-process function's front was started with the function's
            // environment, and its other threads may be reading it.
            continue;
        }
        // SAFETY: a worker has one thread, and the function's code has not run yet; in process
        // (`crate::native`), the front set none of the function's variables that differ.
        unsafe { std::env::set_var(name, value) };
    }
    let context = load.get("context").unwrap_or(&Value::Null);
    Ok(Context {
        function_name: text(context, "function-name").unwrap_or_default(),
        timeout: context.get("timeout").and_then(Value::as_f64).unwrap_or_default(),
        runtime: text(context, "runtime").unwrap_or_default(),
        memory_limit: text(context, "memory-limit").unwrap_or_default(),
    })
}

/// The string `key` of a JSON object.
fn text(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The result (header and body) of one `invoke`.
pub(crate) fn invoke(
    message: &Value,
    body: Vec<u8>,
    context: &Context,
    function: &impl Handler,
    module: &str,
    handler: &str,
) -> (Value, Vec<u8>) {
    let data = if message.get("data").and_then(Value::as_str) == Some("json") {
        if body.is_empty() {
            Data::Json(Value::Null)
        } else {
            match serde_json::from_slice(&body) {
                Ok(value) => Data::Json(value),
                Err(e) => return result(400, vec![content_type(CT_TEXT)], false, format!("invalid JSON body: {e}")),
            }
        }
    } else {
        Data::Raw(body)
    };
    let event = message.get("event").unwrap_or(&Value::Null);
    let event = Event {
        data,
        event_id: text(event, "event-id"),
        event_type: text(event, "event-type"),
        event_time: text(event, "event-time"),
        event_namespace: text(event, "event-namespace"),
        extensions: Extensions { request: request(message.get("request").unwrap_or(&Value::Null)) },
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| function.call(event, context.clone())));
    let failure = match outcome {
        Ok(Ok(response)) => match response_result(response) {
            Ok(result) => return result,
            Err(problem) => {
                eprintln!("kelp worker: {module}.{handler}: {problem}");
                problem
            }
        },
        Ok(Err(error)) => {
            eprintln!("{module}.{handler} failed: {error}");
            error
        }
        // The panic hook has printed the message and where it happened.
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the function panicked".to_owned()),
    };
    failure_result(failure)
}

/// The failed result (500, the text as its body) of a call that could not answer.
pub(crate) fn failure_result(text: impl Into<Vec<u8>>) -> (Value, Vec<u8>) {
    result(500, vec![content_type(CT_TEXT)], true, text)
}

/// The `load_error` header saying `message`.
pub(crate) fn load_error(message: &str) -> Value {
    json!({"type": "load_error", "message": message})
}

/// `extensions.request` from the `request` of an `invoke`.
fn request(request: &Value) -> Request {
    let mut query = Query::default();
    for (name, values) in request.get("query").and_then(Value::as_object).into_iter().flatten() {
        let values = match values {
            Value::Array(values) => values.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            value => value.as_str().map(str::to_owned).into_iter().collect(),
        };
        query.0.insert(name.clone(), values);
    }
    let headers = request.get("headers").and_then(Value::as_object).map(Map::iter).into_iter().flatten();
    Request {
        method: text(request, "method").unwrap_or_default(),
        path: text(request, "path").unwrap_or_default(),
        url: text(request, "url").unwrap_or_default(),
        query,
        headers: headers.filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_owned()))).collect(),
    }
}

fn content_type(value: &str) -> Value {
    json!(["content-type", value])
}

fn result(status: u16, headers: Vec<Value>, failed: bool, body: impl Into<Vec<u8>>) -> (Value, Vec<u8>) {
    (json!({"type": "result", "status": status, "headers": headers, "failed": failed}), body.into())
}

/// The result of a response the function returned, or why it cannot be sent.
fn response_result(response: Response) -> Result<(Value, Vec<u8>), String> {
    if !(100..=999).contains(&response.status) {
        return Err(format!("invalid response status {}: expected 100 to 999", response.status));
    }
    let mut headers = Vec::with_capacity(response.headers.len() + 1);
    let mut typed = false;
    for (name, value) in response.headers {
        if name.is_empty() || name.contains(['\r', '\n', '\0', ':', '\t', ' ']) {
            return Err(format!("invalid response header name {name:?}"));
        }
        if value.contains(['\r', '\n', '\0']) {
            return Err(format!("invalid value for response header {name:?}: {value:?}"));
        }
        typed |= name.eq_ignore_ascii_case("content-type");
        headers.push(json!([name, value]));
    }
    let (body, default_type) = match response.body {
        Body::Empty => (Vec::new(), None),
        Body::Text(text) => (text.into_bytes(), Some(CT_TEXT)),
        Body::Bytes(bytes) => (bytes, Some(CT_BINARY)),
        Body::Json(value) => (value.to_string().into_bytes(), Some(CT_JSON)),
    };
    if let (Some(ct), false) = (default_type, typed) {
        headers.push(content_type(ct));
    }
    Ok(result(response.status, headers, false, body))
}
