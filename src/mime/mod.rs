//! Reading the structure of a raw RFC 5322 / MIME message byte-exact: the
//! header block and its fields, address lists, Content-Type and its
//! parameters, and the tree of MIME parts with their offsets.
//!
//! Layer 1, right above `domain`: the store (where a header ends),
//! submission (which header fields to replace) and IMAP (ENVELOPE,
//! BODYSTRUCTURE, `BODY[section]`) all read messages through this module,
//! so that they agree on where a header ends and where a part begins.
//!
//! * Nothing is decoded: every value is a slice of the raw input or built
//!   from one (unfolded, quoted strings unquoted). Decoding bodies and
//!   encoded words is mail-parser's job (ingest, search); here the point is
//!   offsets that are exactly the bytes a client is served.
//! * The structure follows Dovecot's message parser (part boundaries,
//!   which line ending belongs to a delimiter, defaults): mail clients have
//!   long been tested against Dovecot, and its model keeps part sizes equal
//!   to the bytes of the part (see [`tree`]).
//! * Malformed input never panics and never loops: every offset is clamped
//!   to the input, and nesting depth and part count are bounded
//!   ([`tree::MAX_DEPTH`], [`tree::MAX_PARTS`]).

pub mod address;
pub mod content_type;
pub mod header;
mod lexer;
pub mod tree;

use std::ops::Range;

/// `bytes[range]`, or empty when the range does not fit (it always should:
/// every offset in this module comes from scanning `bytes`; this keeps a
/// mistake from ever turning into a panic).
fn slice(bytes: &[u8], range: Range<usize>) -> &[u8] {
    bytes.get(range).unwrap_or_default()
}
