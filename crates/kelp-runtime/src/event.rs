//! What a function sees of an HTTP request: the Kubeless event keys and `extensions.request`.

use http::request::Parts;
use std::borrow::Cow;
use std::collections::HashMap;

/// The headers Kubeless copies into the event, under the same names.
const EVENT_HEADERS: [&str; 4] = ["event-id", "event-type", "event-time", "event-namespace"];

/// Writes the JSON header of an `invoke` frame for this request into `out` (see
/// `runtimes/PROTOCOL.md`): `type`, `event` (the Kubeless event keys read from headers, without
/// `data` and `extensions`), `request` (`extensions.request`: method, path, url, query with
/// repeated names as lists, and headers with lower-case names, repeated ones joined with `, `)
/// and `data` (`"json"` when the body is to be JSON-decoded, `"raw"` otherwise).
///
/// Written straight from the request rather than built as a `serde_json::Value` first: this
/// runs for every call, and the intermediate maps cost more than the writing.
pub fn write_invoke(out: &mut Vec<u8>, parts: &Parts) {
    out.extend_from_slice(br#"{"type":"invoke","event":{"#);
    for (i, name) in EVENT_HEADERS.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        match parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(value) => string(out, value),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(br#"},"request":{"method":"#);
    string(out, parts.method.as_str());
    out.extend_from_slice(br#","path":"#);
    string(out, parts.uri.path());
    out.extend_from_slice(br#","url":"#);
    string(out, parts.uri.path_and_query().map_or("/", |pq| pq.as_str()));
    out.extend_from_slice(br#","query":"#);
    query(out, parts.uri.query().unwrap_or(""));
    out.extend_from_slice(br#","headers":{"#);
    for (i, name) in parts.headers.keys().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name.as_str());
        out.push(b':');
        let mut values = parts.headers.get_all(name).iter();
        let first = values.next().map_or(Cow::Borrowed(""), |v| String::from_utf8_lossy(v.as_bytes()));
        match values.next() {
            None => string(out, &first),
            Some(second) => {
                let mut joined = first.into_owned();
                for value in std::iter::once(second).chain(values) {
                    joined.push_str(", ");
                    joined.push_str(&String::from_utf8_lossy(value.as_bytes()));
                }
                string(out, &joined);
            }
        }
    }
    out.extend_from_slice(br#"}},"data":"#);
    string(out, if is_json(parts) { "json" } else { "raw" });
    out.push(b'}');
}

/// The query string as a JSON object: a name given once maps to its value, a repeated one to
/// the list of its values, in order of first appearance.
fn query(out: &mut Vec<u8>, query: &str) {
    let mut names: Vec<(Cow<'_, str>, Vec<Cow<'_, str>>)> = Vec::new();
    // Found by name in a map, not by a scan: a query of many distinct names must not cost
    // quadratic time.
    let mut index: HashMap<Cow<'_, str>, usize> = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match index.get(&name) {
            Some(&i) => names[i].1.push(value),
            None => {
                index.insert(name.clone(), names.len());
                names.push((name, vec![value]));
            }
        }
    }
    out.push(b'{');
    for (i, (name, values)) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        match values.as_slice() {
            [one] => string(out, one),
            many => {
                out.push(b'[');
                for (j, value) in many.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    string(out, value);
                }
                out.push(b']');
            }
        }
    }
    out.push(b'}');
}

/// A JSON string literal.
fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
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
    use serde_json::{Value, json};

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
        let mut header = Vec::new();
        write_invoke(&mut header, &p);
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(
            header,
            json!({"type": "invoke",
                   "event": {"event-id": "abc", "event-type": null, "event-time": null, "event-namespace": null},
                   "request": {"method": "POST", "path": "/a/b", "url": "/a/b?x=1&y=2&x=3&e=%20s",
                               "query": {"x": ["1", "3"], "y": "2", "e": " s"},
                               "headers": {"x-thing": "1, 2", "event-id": "abc"}},
                   "data": "raw"})
        );
    }

    #[test]
    fn strings_are_escaped_and_json_bodies_marked() {
        let p = parts(
            http::Request::put("/q?%22a%22=%5C&n=%0A")
                .header("content-type", "application/json")
                .header("x-quote", "say \"hi\""),
        );
        let mut header = Vec::new();
        write_invoke(&mut header, &p);
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["request"]["query"], json!({"\"a\"": "\\", "n": "\n"}));
        assert_eq!(header["request"]["headers"]["x-quote"], "say \"hi\"");
        assert_eq!(header["data"], "json");
        assert_eq!(header["request"]["method"], "PUT");
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
