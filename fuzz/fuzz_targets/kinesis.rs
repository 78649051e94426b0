//! Kinesis `GetRecords` answers, as `kelp_events::kinesis::Client` reads them from the endpoint
//! a KinesisTrigger names (`kelp_events::kinesis::parse_records`): any bytes give records or an
//! error, never a panic, and the records kept are within the bounds.
#![no_main]

use kelp_events::kinesis::{MAX_RECORD, parse_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, body)) = data.split_first() else { return };
    if let Ok(records) = parse_records(body, u32::from(limit)) {
        assert!(records.records.len() <= usize::from(limit.max(1)));
        assert!(records.records.iter().all(|r| r.data.len() <= MAX_RECORD && !r.sequence_number.is_empty()));
    }
});
