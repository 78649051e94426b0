//! CronJobTrigger schedules (`spec.schedule`): parsed as validation parses them, then the next
//! occurrences found as `kelp up`'s cron loop finds them, from a fixed instant.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(schedule) = kelp_api::parse_schedule(text) else { return };
    assert!(kelp_api::check_schedule(text).is_ok());
    let mut after: DateTime<Utc> = DateTime::from_timestamp(1_780_000_000, 0).expect("a valid instant");
    for _ in 0..3 {
        let Ok(next) = schedule.find_next_occurrence(&after, false) else { return };
        assert!(next > after, "{text:?}: the next occurrence after {after} is {next}");
        after = next;
    }
});
