//! Arbitrary bytes through the MIME tree and the IMAP FETCH encoders,
//! their output read back by imap-codec's response parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    postdesk::fuzzing::mime_render(data);
});
