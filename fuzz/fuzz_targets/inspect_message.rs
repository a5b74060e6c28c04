//! Arbitrary bytes through every parser a stored message goes through.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    postdesk::fuzzing::inspect_message(data);
});
