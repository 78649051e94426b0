//! The API of a Kelp Rust function.
//!
//! A function is a Rust file `<module>.rs` holding a handler `pub fn <handler>(event: Event,
//! context: Context) -> Result<R, E>`, where `R` is what it answers (anything that converts into
//! a [`Response`]: `String`, `&str`, `Vec<u8>`, a JSON [`Value`], `()`, an `Option` of those, a
//! [`Body`] or a [`Response`] with its own status and headers) and `E` is any error that can be
//! displayed (an `Err` is answered with status 500 and its text). [`Error`] takes any standard
//! error through `?`.
//!
//! ```ignore
//! use kelp::{Context, Event, Response};
//!
//! pub fn hello(event: Event, context: Context) -> kelp::Result<Response> {
//!     let name = event.extensions.request.query.get("name").unwrap_or("world");
//!     Ok(Response::new(format!("hello {name} from {}", context.function_name))
//!         .with_status(200)
//!         .with_header("x-greeting", "yes"))
//! }
//! ```
//!
//! Kelp builds the function with this crate twice over: a generated `main` that calls [`run`]
//! (the worker process speaking `runtimes/PROTOCOL.md` to the `kelp-runtime` front, one request
//! at a time), and a library that [`export!`] makes loadable into the front itself
//! (`KELP_IN_PROCESS=1`, [`native`]). A handler that panics is answered with status 500 and the
//! panic's message; the worker (or the front) lives on.

use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;

pub mod native;
mod worker;

pub use serde_json;
pub use serde_json::{Value, json};
pub use worker::run;

/// What a function is called with: the request body and the Kubeless event fields.
#[derive(Clone, Debug)]
pub struct Event {
    /// The request body.
    pub data: Data,
    /// The `event-id` request header, if any.
    pub event_id: Option<String>,
    /// The `event-type` request header, if any.
    pub event_type: Option<String>,
    /// The `event-time` request header, if any.
    pub event_time: Option<String>,
    /// The `event-namespace` request header, if any.
    pub event_namespace: Option<String>,
    /// What Kelp adds to the Kubeless event: the HTTP request.
    pub extensions: Extensions,
}

/// The request body of an [`Event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// The body of a request whose `Content-Type` is `application/json`, decoded (an empty body
    /// is `Value::Null`). A body that is not JSON is answered with status 400 before the function
    /// is called.
    Json(Value),
    /// Any other body, as sent.
    Raw(Vec<u8>),
}

impl Data {
    /// The raw body as UTF-8 text; an error when it is not UTF-8, or was decoded as JSON.
    pub fn text(&self) -> Result<&str> {
        match self {
            Data::Raw(bytes) => {
                std::str::from_utf8(bytes).map_err(|e| Error::msg(format!("the request body is not UTF-8 text: {e}")))
            }
            Data::Json(_) => Err(Error::msg("the request body is JSON (Content-Type application/json): use json()")),
        }
    }

    /// The raw body's bytes; `None` when it was decoded as JSON.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Data::Raw(bytes) => Some(bytes),
            Data::Json(_) => None,
        }
    }

    /// The body as `T`: the decoded JSON, or the raw body parsed as JSON whatever its
    /// `Content-Type`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let decoded = match self {
            Data::Json(value) => T::deserialize(value),
            Data::Raw(bytes) => serde_json::from_slice(bytes),
        };
        decoded.map_err(|e| Error::msg(format!("the request body is not the JSON expected: {e}")))
    }

    /// Whether the body was decoded as JSON.
    pub fn is_json(&self) -> bool {
        matches!(self, Data::Json(_))
    }
}

/// What Kelp adds to the Kubeless event.
#[derive(Clone, Debug)]
pub struct Extensions {
    /// The HTTP request that called the function.
    pub request: Request,
}

/// The HTTP request that called the function.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The path and, when there is one, `?` and the query, as sent.
    pub url: String,
    /// The query parameters, decoded.
    pub query: Query,
    /// The headers, by lower-case name.
    pub headers: BTreeMap<String, String>,
}

impl Request {
    /// The header `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// The decoded query parameters of a request, by name, each with its values in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(pub BTreeMap<String, Vec<String>>);

impl Query {
    /// The first value of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|values| values.first()).map(String::as_str)
    }

    /// Every value of the parameter `name` (`?x=1&x=2`), in order.
    pub fn get_all(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// The parameters and their values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(name, values)| (name.as_str(), values.as_slice()))
    }
}

/// The function's context, as Kubeless gives it.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The function's name (`FUNC_HANDLER`).
    pub function_name: String,
    /// How long a call may take, in seconds (`FUNC_TIMEOUT`); the runtime stops a call past it.
    pub timeout: f64,
    /// The runtime, `rust1.95`.
    pub runtime: String,
    /// The memory limit (`FUNC_MEMORY_LIMIT`), as given: `128Mi`, `0` when none.
    pub memory_limit: String,
}

/// The body of a [`Response`].
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// No body, and no `content-type` added.
    Empty,
    /// UTF-8 text: `content-type: text/plain; charset=utf-8` unless the function sets its own.
    Text(String),
    /// Bytes: `content-type: application/octet-stream` unless the function sets its own.
    Bytes(Vec<u8>),
    /// JSON: `content-type: application/json` unless the function sets its own.
    Json(Value),
}

/// What a function answers: a status, headers and a [`Body`]. A handler may also return
/// anything that converts into one (a plain body answers 200 with no headers of its own).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The HTTP status, 100 to 999.
    pub status: u16,
    /// Headers, in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl Response {
    /// A 200 response with `body` and no headers of its own.
    pub fn new(body: impl Into<Body>) -> Response {
        Response { status: 200, headers: Vec::new(), body: body.into() }
    }

    /// The response with the status `status`.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// The response with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Conversions of plain bodies into [`Body`] and [`Response`].
macro_rules! bodies {
    ($($ty:ty => |$v:ident| $body:expr),* $(,)?) => {
        $(
            impl From<$ty> for Body {
                fn from($v: $ty) -> Body {
                    $body
                }
            }
            impl From<$ty> for Response {
                fn from(v: $ty) -> Response {
                    Response::new(v)
                }
            }
        )*
    };
}

bodies! {
    String => |v| Body::Text(v),
    &str => |v| Body::Text(v.to_owned()),
    Vec<u8> => |v| Body::Bytes(v),
    &[u8] => |v| Body::Bytes(v.to_vec()),
    Value => |v| Body::Json(v),
    () => |_v| Body::Empty,
}

impl From<Body> for Response {
    fn from(body: Body) -> Response {
        Response::new(body)
    }
}

/// `None` answers an empty body, as `()` does.
impl<T: Into<Response>> From<Option<T>> for Response {
    fn from(value: Option<T>) -> Response {
        value.map_or_else(|| Response::new(Body::Empty), Into::into)
    }
}

/// An error a function returns: its text is the body of the 500 response. Any standard error
/// converts into one (so `?` works on them), and [`Error::msg`] makes one from a message.
pub struct Error {
    message: String,
}

impl Error {
    /// An error with the text `message`.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error { message: message.to_string() }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Error {
        Error::msg(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?})", self.message)
    }
}

/// A `Result` whose error is Kelp's [`Error`] unless told otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A function Kelp can call: `fn(Event, Context) -> Result<R, E>` with `R: Into<Response>` and
/// `E: Display`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Kelp handler",
    label = "expected `fn(kelp::Event, kelp::Context) -> Result<R, E>`",
    note = "a Kelp handler is `pub fn name(event: kelp::Event, context: kelp::Context) -> Result<R, E>` where R is \
            String, &str, Vec<u8>, kelp::Value, (), Option<_>, kelp::Body or kelp::Response, and E implements \
            Display (kelp::Error takes any std::error::Error through `?`)"
)]
pub trait Handler {
    /// Calls the function: its response, or the text of its error.
    fn call(&self, event: Event, context: Context) -> std::result::Result<Response, String>;
}

impl<F, R, E> Handler for F
where
    F: Fn(Event, Context) -> std::result::Result<R, E>,
    R: Into<Response>,
    E: fmt::Display,
{
    fn call(&self, event: Event, context: Context) -> std::result::Result<Response, String> {
        self(event, context).map(Into::into).map_err(|e| e.to_string())
    }
}
