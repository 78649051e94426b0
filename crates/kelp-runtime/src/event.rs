//! What a function sees of an HTTP request: the Kubeless event keys and `extensions.request`.

use http::request::Parts;
use serde_json::{Map, Value, json};

/// The headers Kubeless copies into the event, under the same names.
const EVENT_HEADERS: [&str; 4] = ["event-id", "event-type", "event-time", "event-namespace"];

/// The event keys read from headers (without `data` and `extensions`).
pub fn event(parts: &Parts) -> Value {
    let mut event = Map::with_capacity(EVENT_HEADERS.len());
    for name in EVENT_HEADERS {
        let value = parts.headers.get(name).and_then(|v| v.to_str().ok()).map_or(Value::Null, |v| v.into());
        event.insert(name.to_string(), value);
    }
    Value::Object(event)
}

/// `extensions.request`: method, path, url, query (repeated names become lists) and headers
/// (lower-case names; repeated headers joined with `, `).
pub fn request(parts: &Parts) -> Value {
    let mut headers = Map::with_capacity(parts.headers.keys_len());
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), value.into_owned().into());
            }
        }
    }
    let mut query = Map::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::Array(list)) => list.push(v.into_owned().into()),
            Some(first) => *first = Value::Array(vec![first.take(), v.into_owned().into()]),
            None => {
                query.insert(k.into_owned(), v.into_owned().into());
            }
        }
    }
    let url = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "url": url,
        "query": query,
        "headers": headers,
    })
}

/// Whether the body is JSON for the function: the media type is `application/json`
/// (parameters such as `charset` aside).
pub fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::request::Builder) -> Parts {
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn request_keys_follow_the_contract() {
        let p = parts(
            http::Request::post("/a/b?x=1&y=2&x=3&e=%20s")
                .header("X-Thing", "1")
                .header("x-thing", "2")
                .header("event-id", "abc"),
        );
        assert_eq!(
            request(&p),
            json!({"method": "POST", "path": "/a/b", "url": "/a/b?x=1&y=2&x=3&e=%20s",
                   "query": {"x": ["1", "3"], "y": "2", "e": " s"},
                   "headers": {"x-thing": "1, 2", "event-id": "abc"}})
        );
        assert_eq!(
            event(&p),
            json!({"event-id": "abc", "event-type": null, "event-time": null, "event-namespace": null})
        );
    }

    #[test]
    fn json_is_recognised_by_media_type() {
        let ct = |v: &str| is_json(&parts(http::Request::post("/").header("content-type", v)));
        assert!(ct("application/json"));
        assert!(ct("application/json; charset=utf-8"));
        assert!(!ct("application/x-www-form-urlencoded"));
        assert!(!ct("text/plain"));
        assert!(!is_json(&parts(http::Request::post("/"))));
    }
}
