//! Conformance functions for the Rust runtime (module `conf`).
//!
//! Parallel to ../python/conf.py: same handlers, same behaviour, as far as Rust says it (there is
//! no `asyncfn`: a Rust handler is a plain function). See conformance/README.md.

use kelp::{Body, Context, Data, Event, Response, Value, json};
use std::time::Duration;

pub fn hello(_event: Event, _context: Context) -> kelp::Result<&'static str> {
    Ok("hello world")
}

/// The event without `extensions`, as JSON, plus the request and the context.
pub fn echo(event: Event, context: Context) -> kelp::Result<Value> {
    let request = &event.extensions.request;
    let (data, data_length, encoding) = match &event.data {
        Data::Json(value) => (value.clone(), Value::Null, None),
        Data::Raw(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (json!(text), json!(bytes.len()), None),
            Err(_) => (json!(base64(bytes)), json!(bytes.len()), Some("base64")),
        },
    };
    let query: kelp::serde_json::Map<String, Value> = request
        .query
        .iter()
        .map(|(name, values)| (name.to_owned(), if values.len() == 1 { json!(values[0]) } else { json!(values) }))
        .collect();
    let mut out = json!({
        "data": data,
        "data_length": data_length,
        "event-id": event.event_id,
        "event-type": event.event_type,
        "event-time": event.event_time,
        "event-namespace": event.event_namespace,
        "request": {
            "method": request.method,
            "path": request.path,
            "url": request.url,
            "query": query,
            "headers": request.headers,
        },
        "x_custom_header": request.header("X-Custom-Header"),
        "context": {
            "function-name": context.function_name,
            "timeout": context.timeout,
            "runtime": context.runtime,
            "memory-limit": context.memory_limit,
        },
    });
    if let Some(encoding) = encoding {
        out["data_encoding"] = json!(encoding);
    }
    Ok(out)
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

pub fn returns(event: Event, _context: Context) -> kelp::Result<Body> {
    let t = event.extensions.request.query.get("t").unwrap_or_default();
    Ok(match t {
        "str" => "a string".into(),
        "bytes" => b"\x00\x01bytes\xff".to_vec().into(),
        "dict" => json!({"a": 1, "b": [true, null, "x"]}).into(),
        "list" => json!([1, "two", null]).into(),
        "none" => ().into(),
        "number" => json!(42).into(),
        "bool" => json!(true).into(),
        "empty" => "".into(),
        "false" => json!(false).into(),
        "zero" => json!(0).into(),
        "float" => json!(1.5).into(),
        "unicode" => "h\u{e9}llo \u{2713}".into(),
        other => return Err(kelp::Error::msg(format!("unknown t={other:?}"))),
    })
}

pub fn status(_event: Event, _context: Context) -> kelp::Result<Response> {
    Ok(Response::new("created").with_status(201).with_header("x-kelp", "yes"))
}

/// Sets a Content-Length that disagrees with the body: the runtime must frame the body itself.
pub fn framing(_event: Event, _context: Context) -> kelp::Result<Response> {
    Ok(Response::new("hello world").with_header("content-length", "5"))
}

pub fn boom(_event: Event, _context: Context) -> kelp::Result<String> {
    Err(kelp::Error::msg("kaboom"))
}

/// Panics (Rust's other way to fail): answered 500 with the message, and the worker lives on.
pub fn panics(_event: Event, _context: Context) -> kelp::Result<String> {
    panic!("kaboom from a panic")
}

pub fn slow(event: Event, _context: Context) -> kelp::Result<&'static str> {
    let seconds: f64 = event.extensions.request.query.get("s").unwrap_or("0").parse()?;
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Ok("slept")
}

pub fn spin(_event: Event, _context: Context) -> kelp::Result<()> {
    loop {
        std::hint::spin_loop();
    }
}

pub fn die(_event: Event, _context: Context) -> kelp::Result<()> {
    std::process::exit(3)
}

pub fn env(event: Event, _context: Context) -> kelp::Result<Option<String>> {
    let name = event.extensions.request.query.get("name").unwrap_or_default();
    Ok(std::env::var(name).ok())
}
