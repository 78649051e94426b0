//! Durations: `BACKOFF_INTERVAL` and `--backoff-interval` (`kelp_events::parse_go_duration`),
//! and a Function's `kelp.dev/idle-timeout` annotation as `kelp up` reads it.
#![no_main]

use std::sync::LazyLock;

use kelp_api::Function;
use kelp_up::env::Lookup;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// No Secrets or ConfigMaps: the Function below names none.
struct Nothing;

impl Lookup for Nothing {
    fn get(&self, _: &str, _: &str, _: &str) -> Option<Value> {
        None
    }
}

/// Kelp's default `kubeless-config`, parsed once.
static CONFIG: LazyLock<kelp_plan::Config> = LazyLock::new(kelp_plan::Config::default);

static FUNCTION: LazyLock<Function> = LazyLock::new(|| {
    serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
        "metadata": {"name": "hello", "namespace": "default", "uid": "u1", "annotations": {}},
        "spec": {"handler": "hello.world", "runtime": "python3.8", "function": "def world(e, c): return 'hi'"}
    }))
    .expect("a valid Function")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = kelp_events::parse_go_duration(text);
    let mut function = FUNCTION.clone();
    function
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(kelp_up::desired::IDLE_TIMEOUT_ANNOTATION.to_owned(), text.to_owned());
    let _ = kelp_up::desired::deployment(&function, &Nothing, &CONFIG);
});
