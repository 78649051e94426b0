//! `continue` tokens of paged lists (and `limit`): the first line is `limit`, the rest the
//! token. A token that decodes encodes back to one that decodes to the same cursor.
#![no_main]

use kelp_store::Page;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (limit, token) = text.split_once('\n').unwrap_or(("", text));
    let limit = Some(limit).filter(|l| !l.is_empty());
    if let Ok(Page { cursor: Some(cursor), .. }) = kelp_apiserver::fuzzing::page(limit, Some(token), None) {
        let again = kelp_apiserver::fuzzing::continue_token(&cursor);
        let decoded = kelp_apiserver::fuzzing::page(None, Some(&again), Some("0"));
        assert_eq!(decoded.ok().and_then(|p| p.cursor).as_ref(), Some(&cursor), "{token:?} re-encoded as {again:?}");
    }
});
