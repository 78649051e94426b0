//! A Rust function: handler hello.hello, runtime rust1.95. It greets whoever ?name= names, and
//! answers JSON with what it was sent.

use kelp::{Context, Data, Event, Response, json};

pub fn hello(event: Event, context: Context) -> kelp::Result<Response> {
    let name = event.extensions.request.query.get("name").unwrap_or("world");
    let got = match &event.data {
        Data::Json(value) => value.clone(),
        Data::Raw(bytes) => json!(String::from_utf8_lossy(bytes)),
    };
    Ok(Response::new(json!({"hello": name, "got": got})).with_header("x-function", context.function_name))
}
