//! PATCH requests: the first byte picks the patch type (merge, JSON, strategic merge, apply),
//! the rest is the body, applied to a stored Function as the API server applies it; the patched
//! object is then admitted.
#![no_main]

use std::sync::{Arc, LazyLock};

use kelp_apiserver::Kind;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

static KINDS: LazyLock<Vec<Arc<Kind>>> = LazyLock::new(kelp_fuzz::writable_kinds);

const TYPES: [&str; 4] = [
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else { return };
    let mut object = json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
        "metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello"}, "resourceVersion": "3"},
        "spec": {"handler": "hello.world", "runtime": "python3.8", "function": "def world(e, c): return 'hi'",
                 "deps": "", "timeout": "180", "function-content-type": "text"}
    });
    if kelp_apiserver::fuzzing::patch(TYPES[usize::from(choice) % TYPES.len()], &mut object, body).is_ok() {
        kelp_fuzz::admit_any(&KINDS, &object);
    }
});
