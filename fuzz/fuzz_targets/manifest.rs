//! Manifests as `kelp apply -f` reads them: JSON (one object or an array) when the text starts
//! with `{` or `[`, else YAML documents (serde-saphyr), each object then admitted as the API
//! server admits it. `kelp-cli` is a binary, so this target calls the same two parsers with the
//! same choice as its `parse_manifest`; and the API server's YAML request body.
#![no_main]

use std::sync::{Arc, LazyLock};

use kelp_apiserver::Kind;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static KINDS: LazyLock<Vec<Arc<Kind>>> = LazyLock::new(kelp_fuzz::writable_kinds);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = kelp_apiserver::fuzzing::request_body("application/yaml", data);
    let trimmed = text.trim_start();
    let documents = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items,
            Ok(value) => vec![value],
            Err(_) => return,
        }
    } else {
        match serde_saphyr::from_multiple::<Value>(text) {
            Ok(documents) => documents,
            Err(_) => return,
        }
    };
    for document in documents.iter().take(16) {
        match document.get("items").and_then(Value::as_array) {
            Some(items) if document.get("kind").and_then(Value::as_str) == Some("List") => {
                items.iter().take(16).for_each(|item| kelp_fuzz::admit_any(&KINDS, item));
            }
            _ => kelp_fuzz::admit_any(&KINDS, document),
        }
    }
});
