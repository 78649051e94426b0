//! The string-typed Function spec fields (`kelp-api`'s format parsers): handler, runtime,
//! content type, checksum, timeout, and the DNS name rules. What parses prints back the same.
#![no_main]

use kelp_api::{ContentType, Handler, RuntimeName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(handler) = Handler::parse(text) {
        assert_eq!(handler.to_string(), text);
    }
    if let Ok(runtime) = RuntimeName::parse(text) {
        assert_eq!(runtime.to_string(), text);
    }
    if let Ok(content_type) = ContentType::parse(text) {
        assert_eq!(ContentType::parse(&content_type.to_string()), Ok(content_type));
    }
    let _ = kelp_api::parse_checksum(text);
    if let Ok(seconds) = kelp_api::parse_timeout(text) {
        assert!(seconds > 0);
    }
    let _ = kelp_api::check_dns1123_subdomain(text);
    let _ = kelp_api::check_dns1035_label(text);
});
