//! Function and trigger objects (and the core Namespace, Secret and ConfigMap) as a create sends
//! them: JSON, checked by the API server's admission (structural schema, defaults, `kelp-api`
//! validation with its format, content-type, schedule and selector parsers).
#![no_main]

use std::sync::{Arc, LazyLock};

use kelp_apiserver::Kind;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static KINDS: LazyLock<Vec<Arc<Kind>>> = LazyLock::new(kelp_fuzz::writable_kinds);

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = serde_json::from_slice::<Value>(data) {
        kelp_fuzz::admit_any(&KINDS, &object);
    }
});
