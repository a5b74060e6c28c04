//! The message data of FETCH responses (RFC 3501 §7.4.2): strings,
//! ENVELOPE, BODY/BODYSTRUCTURE and `BODY[section]`.
//!
//! Each item is built in two steps: [`crate::mime`] parses the raw message
//! (header fields, addresses, Content-Type, the MIME tree), the parse
//! becomes typed IMAP values ([`envelope::ImapEnvelope`],
//! [`body_structure::Body`]), and those are encoded here.
//!
//! The encoders are our own rather than imap-codec's (whose types parse
//! our commands): the output must stay byte-identical to what clients have
//! been served (Dovecot's choices: a literal for any value over 1,024 bytes
//! or with 8-bit bytes, NUL sent as 0x80, a one-language list written as a
//! list), which imap-codec's string types and encoder decide differently,
//! and building its validated `Cow` types for every value of every message
//! would slow the first sync of a large folder. imap-codec checks our output
//! instead: tests/corpus.rs and the `mime_render` fuzz target decode it
//! with its response parser.

pub mod body_structure;
pub mod envelope;
pub mod section;
pub mod string;
#[cfg(test)]
mod tests;

pub use section::{SectionKind, UnknownCte, binary_bytes, encode_binary_parts, section_bytes};
pub use string::{write_literal, write_string};

use crate::mime::header::header_end;

/// Appends the ENVELOPE of the message's top-level header.
pub fn write_envelope(out: &mut Vec<u8>, raw: &[u8]) {
    let header = raw.get(..header_end(raw)).unwrap_or_default();
    envelope::ImapEnvelope::of_header(header).write(out);
}

/// Appends the BODYSTRUCTURE of the message (with extension data) when
/// `extensible`, else its BODY (the same without extension data).
pub fn write_bodystructure(out: &mut Vec<u8>, raw: &[u8], extensible: bool) {
    body_structure::Body::of_message(raw).write(out, extensible);
}
