//! Paged lists (`limit` and `continue`), as Kubernetes serves them: the `continue` token is
//! opaque to clients and has Kubernetes's own shape, base64url (no padding) of
//! `{"v":"meta.k8s.io/v1","rv":<resourceVersion of the first page>,"start":"<key>\u0000"}`, where
//! the key is `<namespace>/<name>` (`<name>` for cluster-scoped objects) of the last object sent
//! and `rv` is -1 for a token that goes on from the latest state (given with a 410).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kelp_store::{ListCursor, ObjectList, Page};
use serde_json::{Value, json};

use crate::status::ApiError;

/// The version of the token's shape.
const TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// What Kubernetes answers (410 Expired) when the state of a list's first page is gone.
const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. \
     You can start a new list without the continue parameter, or use the continue token in this response to \
     retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - \
     objects that were created, modified, or deleted between the time the first chunk was returned and now may \
     show up in the list.";

/// The page a list request asks for: `limit` (absent or 0: everything) and `continue`. A
/// `continue` token comes with no `resourceVersion` other than `0` (Kubernetes refuses it).
pub(crate) fn requested(
    limit: Option<&str>,
    token: Option<&str>,
    resource_version: Option<&str>,
) -> Result<Page, ApiError> {
    let limit = match limit {
        None => None,
        Some(text) => {
            let n: i64 = text.parse().map_err(|_| ApiError::bad_request(format!("invalid limit: {text:?}")))?;
            usize::try_from(n).ok().filter(|n| *n > 0)
        }
    };
    let cursor = match token {
        None => None,
        Some(_) if resource_version.is_some_and(|rv| rv != "0") => {
            return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
        }
        Some(token) => Some(decode(token)?),
    };
    Ok(Page { limit, cursor })
}

/// The token of `cursor`.
pub(crate) fn encode(cursor: &ListCursor) -> String {
    let (namespace, name) = &cursor.after;
    let key = if namespace.is_empty() { name.clone() } else { format!("{namespace}/{name}") };
    let rv = cursor.resource_version.and_then(|rv| i64::try_from(rv).ok()).unwrap_or(-1);
    let token = json!({"v": TOKEN_VERSION, "rv": rv, "start": format!("{key}\u{0}")});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

/// The cursor of `token`; 400 BadRequest when it is not one of ours.
pub(crate) fn decode(token: &str) -> Result<ListCursor, ApiError> {
    let invalid = |why: &str| ApiError::bad_request(format!("invalid continue token: {why}"));
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| invalid("invalid continue key"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid("invalid continue key"))?;
    if value.get("v").and_then(Value::as_str) != Some(TOKEN_VERSION) {
        return Err(invalid("continue key is not valid: server does not recognize this encoded version"));
    }
    let resource_version = match value.get("rv").and_then(Value::as_i64) {
        Some(-1) => None,
        Some(rv) if rv > 0 => Some(rv.unsigned_abs()),
        _ => {
            return Err(invalid(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            ));
        }
    };
    let start = value.get("start").and_then(Value::as_str).unwrap_or_default();
    let key = start.strip_suffix('\u{0}').unwrap_or(start);
    if key.is_empty() {
        return Err(invalid("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"));
    }
    let after = match key.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => (String::new(), key.to_owned()),
    };
    Ok(ListCursor { resource_version, after })
}

/// A list's `metadata`: `resourceVersion`, and for a page cut short `continue` and
/// `remainingItemCount` (exact here, also with selectors, where Kubernetes leaves it out).
pub(crate) fn list_metadata(list: &ObjectList) -> Value {
    let mut metadata = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(next) = &list.next {
        metadata["continue"] = Value::String(encode(next));
        metadata["remainingItemCount"] = json!(list.remaining);
    }
    metadata
}

/// 410 Expired for a token whose first page's state is gone, with a token that goes on from the
/// latest state after the same key, as Kubernetes answers.
pub(crate) fn expired(cursor: &ListCursor) -> ApiError {
    let mut error = ApiError::gone(INCONSISTENT_CONTINUE);
    let latest = ListCursor { resource_version: None, after: cursor.after.clone() };
    error.status["metadata"]["continue"] = Value::String(encode(&latest));
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_in_the_kubernetes_shape() {
        for cursor in [
            ListCursor { resource_version: Some(42), after: ("default".into(), "hello".into()) },
            ListCursor { resource_version: None, after: (String::new(), "kube-system".into()) },
        ] {
            let token = encode(&cursor);
            assert!(!token.contains('='), "{token}");
            assert_eq!(decode(&token).unwrap(), cursor);
        }
        let shape: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(encode(&ListCursor { resource_version: Some(7), after: ("ns".into(), "f".into()) }))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(shape, json!({"v": "meta.k8s.io/v1", "rv": 7, "start": "ns/f\u{0}"}));
    }

    #[test]
    fn bad_tokens_and_parameters_are_bad_requests() {
        let bad = |token: &str| decode(token).unwrap_err().status["message"].as_str().unwrap().to_owned();
        assert_eq!(bad("%%%"), "invalid continue token: invalid continue key");
        let encoded = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        assert!(bad(&encoded(json!({"v": "x", "rv": 1, "start": "a\u{0}"}))).contains("encoded version"));
        assert!(bad(&encoded(json!({"v": "meta.k8s.io/v1", "rv": 0, "start": "a\u{0}"}))).contains("resourceVersion"));
        assert!(bad(&encoded(json!({"v": "meta.k8s.io/v1", "rv": 3, "start": "\u{0}"}))).contains("start key empty"));
        let token = encode(&ListCursor { resource_version: Some(3), after: ("a".into(), "b".into()) });
        assert_eq!(requested(Some("0"), None, None).unwrap(), Page::default());
        assert_eq!(requested(Some("2"), Some(&token), Some("0")).unwrap().limit, Some(2));
        assert_eq!(requested(Some("x"), None, None).unwrap_err().code, http::StatusCode::BAD_REQUEST);
        let with_rv = requested(None, Some(&token), Some("12")).unwrap_err();
        assert_eq!(with_rv.status["message"], "specifying resource version is not allowed when using continue");
    }

    #[test]
    fn an_expired_token_offers_the_latest_state() {
        let error = expired(&ListCursor { resource_version: Some(3), after: ("a".into(), "b".into()) });
        assert_eq!((error.code.as_u16(), error.status["reason"].as_str()), (410, Some("Expired")));
        let next = decode(error.status["metadata"]["continue"].as_str().unwrap()).unwrap();
        assert_eq!(next, ListCursor { resource_version: None, after: ("a".into(), "b".into()) });
    }
}
