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

/// The Content-Transfer-Encoding of a part is not one BINARY can undo
/// (RFC 3516 §4.3: `NO [UNKNOWN-CTE]`).
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownCte;

/// The bytes of `BINARY[<part>]` (RFC 3516): the part's body with its
/// Content-Transfer-Encoding undone (base64, quoted-printable; 7bit, 8bit
/// and binary are as they are). The empty path is the whole message; a
/// multipart or message/rfc822 part is its body as it is (only leaves are
/// encoded). `None` when the part does not exist.
pub fn binary_bytes<'a>(raw: &'a [u8], part: &[u32]) -> Option<Result<Cow<'a, [u8]>, UnknownCte>> {
    use crate::mime::content_type::ContentFields;
    if part.is_empty() {
        return Some(Ok(Cow::Borrowed(raw)));
    }
    let tree = Part::parse(raw);
    let node = tree.resolve(part)?;
    let body = node.body_bytes(raw);
    if !matches!(node.kind, PartKind::Leaf) {
        return Some(Ok(Cow::Borrowed(body)));
    }
    let encoding = ContentFields::of_part(node.header_bytes(raw))
        .encoding
        .map(|e| e.to_ascii_lowercase());
    let decoded = match encoding.as_deref() {
        None | Some(b"7bit" | b"8bit" | b"binary") => Cow::Borrowed(body),
        Some(b"base64") => match mail_parser::decoders::base64::base64_decode(body) {
            Some(bytes) => Cow::Owned(bytes),
            None => return Some(Err(UnknownCte)),
        },
        Some(b"quoted-printable") => {
            match mail_parser::decoders::quoted_printable::quoted_printable_decode(body) {
                Some(bytes) => Cow::Owned(bytes),
                None => return Some(Err(UnknownCte)),
            }
        }
        Some(_) => return Some(Err(UnknownCte)),
    };
    Some(Ok(decoded))
}

/// A message APPENDed as a literal8 (RFC 3516 §4.4) with its binary parts
/// (Content-Transfer-Encoding: binary) re-encoded as base64, so that the
/// stored message is one every client and relay can carry; BINARY[] gives
/// the original bytes back.
pub fn encode_binary_parts(raw: &[u8]) -> Vec<u8> {
    use crate::mime::content_type::ContentFields;
    use crate::mime::header::fields;
    use base64::Engine;
    fn leaves<'p>(part: &'p Part, out: &mut Vec<&'p Part>) {
        match &part.kind {
            PartKind::Leaf => out.push(part),
            PartKind::Multipart(children) => children.iter().for_each(|c| leaves(c, out)),
            PartKind::Message(inner) => leaves(inner, out),
        }
    }
    let tree = Part::parse(raw);
    let mut parts = Vec::new();
    leaves(&tree, &mut parts);
    // (range of raw, replacement), in order and disjoint: a leaf's header
    // field, then its body.
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    for part in parts {
        let header = part.header_bytes(raw);
        let binary = ContentFields::of_part(header)
            .encoding
            .is_some_and(|e| e.eq_ignore_ascii_case(b"binary"));
        if !binary {
            continue;
        }
        let Some(field) = fields(header).find(|f| f.is(b"content-transfer-encoding")) else {
            continue;
        };
        let start = field.raw.as_ptr() as usize - raw.as_ptr() as usize;
        edits.push((
            start..start + field.raw.len(),
            b"Content-Transfer-Encoding: base64\r\n".to_vec(),
        ));
        let encoded = base64::engine::general_purpose::STANDARD.encode(part.body_bytes(raw));
        let mut body = Vec::with_capacity(encoded.len() * 78 / 76 + 2);
        for line in encoded.as_bytes().chunks(76) {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
        edits.push((part.body.clone(), body));
    }
    let mut out = Vec::with_capacity(raw.len() * 4 / 3);
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at || range.end > raw.len() {
            continue;
        }
        out.extend_from_slice(&raw[at..range.start]);
        out.extend_from_slice(&replacement);
        at = range.end;
    }
    out.extend_from_slice(&raw[at..]);
    out
}
