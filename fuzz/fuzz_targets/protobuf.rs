//! Request bodies in the Kubernetes protobuf encoding (`k8s\0` + `runtime.Unknown`), which
//! kubectl sends for Namespaces, Secrets, ConfigMaps and DeleteOptions; decoded by the API
//! server, then admitted when they decode.
#![no_main]

use std::sync::{Arc, LazyLock};

use kelp_apiserver::Kind;
use libfuzzer_sys::fuzz_target;

static KINDS: LazyLock<Vec<Arc<Kind>>> = LazyLock::new(kelp_fuzz::writable_kinds);

fuzz_target!(|data: &[u8]| {
    let decoded = kelp_apiserver::fuzzing::protobuf(data);
    let through_body = kelp_apiserver::fuzzing::request_body("application/vnd.kubernetes.protobuf", data);
    assert_eq!(decoded.is_ok(), through_body.is_ok());
    if let Ok(object) = decoded {
        kelp_fuzz::admit_any(&KINDS, &object);
    }
});
