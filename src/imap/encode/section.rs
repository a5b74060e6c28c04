//! `BODY[section]` (RFC 3501 §6.4.5): which bytes of the message a section
//! names. Everything but HEADER.FIELDS is a slice of the raw message, so
//! what a client gets is byte for byte what the customer sent.

use crate::mime::header::{fields, header_end};
use crate::mime::tree::{Part, PartKind};
use std::borrow::Cow;
use std::ops::Range;

/// What of a part `BODY[<part>.<kind>]` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// No text specifier: the whole message for the empty part path, else
    /// the part's body (for a message/rfc822 part, the whole encapsulated
    /// message).
    Full,
    /// HEADER: the header of the message, or of the message encapsulated in
    /// a message/rfc822 part, with the empty line that ends it.
    Header,
    /// HEADER.FIELDS (names): the matching fields as written (folding
    /// included, names compared case-insensitively), then an empty line.
    HeaderFields(Vec<Vec<u8>>),
    /// HEADER.FIELDS.NOT (names): the other fields, then an empty line.
    HeaderFieldsNot(Vec<Vec<u8>>),
    /// TEXT: the body after that header.
    Text,
    /// MIME: the MIME header of the part, with its empty line. Only with a
    /// part number.
    Mime,
}

/// The bytes of `BODY[<part>.<kind>]`. Part numbers are resolved by
/// [`Part::resolve`]. `None` when the part does not exist or the kind does
/// not apply to it (HEADER/TEXT of a part that is not message/rfc822, MIME
/// without part number): the caller answers NIL or an empty string
/// (Dovecot sends an empty string). The partial `<origin.length>` is the
/// caller's to apply.
pub fn section_bytes<'a>(raw: &'a [u8], part: &[u32], kind: SectionKind) -> Option<Cow<'a, [u8]>> {
    if part.is_empty() {
        // The whole message needs no MIME tree: its header ends where
        // every layer says it does.
        let split = header_end(raw);
        return message_section(raw, 0..split, split..raw.len(), &kind);
    }
    let tree = Part::parse(raw);
    let node = tree.resolve(part)?;
    match (&kind, &node.kind) {
        (SectionKind::Full, _) => Some(Cow::Borrowed(node.body_bytes(raw))),
        (SectionKind::Mime, _) => Some(Cow::Borrowed(node.header_bytes(raw))),
        (_, PartKind::Message(inner)) => {
            message_section(raw, inner.header(), inner.body.clone(), &kind)
        }
        _ => None,
    }
}

/// A section of a message with the given header and body ranges.
fn message_section<'a>(
    raw: &'a [u8],
    header: Range<usize>,
    body: Range<usize>,
    kind: &SectionKind,
) -> Option<Cow<'a, [u8]>> {
    let slice = |range: Range<usize>| raw.get(range).unwrap_or_default();
    let bytes = match kind {
        SectionKind::Full => Cow::Borrowed(slice(header.start..body.end)),
        SectionKind::Header => Cow::Borrowed(slice(header)),
        SectionKind::HeaderFields(names) => Cow::Owned(select_fields(slice(header), names, true)),
        SectionKind::HeaderFieldsNot(names) => {
            Cow::Owned(select_fields(slice(header), names, false))
        }
        SectionKind::Text => Cow::Borrowed(slice(body)),
        SectionKind::Mime => return None,
    };
    Some(bytes)
}

/// The fields whose name is (`wanted`) or is not (`!wanted`) in `names`,
/// byte-exact, then the empty line "\r\n" (alone when nothing matches). A
/// field cut off without line ending (header at end of input) gets a CRLF
/// so the result stays a well-formed header block.
fn select_fields(header: &[u8], names: &[Vec<u8>], wanted: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields(header) {
        if names.iter().any(|name| field.is(name)) == wanted {
            out.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}
