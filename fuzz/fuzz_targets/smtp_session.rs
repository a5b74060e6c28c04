//! Arbitrary client bytes against a real SMTP session and store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static HARNESS: OnceLock<postdesk::fuzzing::SmtpHarness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    HARNESS.get_or_init(postdesk::fuzzing::SmtpHarness::new).run(data);
});
