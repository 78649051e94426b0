//! `labelSelector` and `fieldSelector` query parameters (`kelp-store`): the first line is the
//! label selector, the second the field selector, the rest an object to match them against. A
//! label selector that parses prints as one that parses to the same selector.
#![no_main]

use kelp_store::{FieldSelector, LabelSelector, Selector};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\n');
    let (labels, fields, rest) = (parts.next().unwrap_or_default(), parts.next(), parts.next());
    let object = rest.and_then(|r| serde_json::from_str::<Value>(r).ok()).unwrap_or_else(|| {
        json!({"metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello", "tier": "web"}},
               "spec": {"runtime": "python3.8"}, "status": {"phase": "Running"}})
    });
    if let Ok(selector) = LabelSelector::parse(labels) {
        let printed = selector.to_string();
        assert_eq!(LabelSelector::parse(&printed).as_ref(), Ok(&selector), "{labels:?} printed as {printed:?}");
        selector.matches_labels(object.pointer("/metadata/labels").and_then(Value::as_object));
    }
    if let Ok(selector) = FieldSelector::parse(fields.unwrap_or(labels)) {
        selector.matches(&object);
        let _ = selector.required_value("metadata.name");
    }
    if let Ok(selector) = Selector::parse(Some(labels), fields) {
        selector.matches(&object);
    }
});
