//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2): the mime module's tree and
//! Content-* fields become a typed [`Body`], which is then encoded, with
//! extension data for BODYSTRUCTURE and without for BODY.
//!
//! Where RFC 3501 leaves room the values follow Dovecot: types and
//! parameters as written in the message, `"text" "plain" ("charset"
//! "us-ascii")` for parts without Content-Type, `"7bit"` as the default
//! transfer encoding. The sizes are those of the bytes `BODY[part]` serves
//! (both come from the same [`Part`] offsets).

use super::envelope::ImapEnvelope;
use super::string::{write_nstring, write_number_prefix, write_string};
use crate::mime::content_type::{ContentDisposition, ContentFields, Param};
use crate::mime::tree::{Part, PartKind};
use std::borrow::Cow;

/// A `body`, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `body-type-basic` or `body-type-text`.
    Single(SinglePart),
    /// `body-type-msg`: message/rfc822.
    Message(MessagePart),
    /// `body-type-mpart`.
    Multipart(Multipart),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinglePart {
    pub media_type: Cow<'static, [u8]>,
    pub subtype: Cow<'static, [u8]>,
    pub fields: BodyFields,
    /// `body-fld-lines`, for text parts only.
    pub lines: Option<usize>,
    pub extension: SinglePartExtension,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePart {
    pub fields: BodyFields,
    /// The envelope of the encapsulated message.
    pub envelope: ImapEnvelope,
    /// The structure of the encapsulated message.
    pub body: Box<Body>,
    /// Lines of the whole part body (the encapsulated message).
    pub lines: usize,
    pub extension: SinglePartExtension,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    /// Never empty: the syntax needs at least one part, so a multipart
    /// without any gets an empty text/plain one, as in Dovecot.
    pub parts: Vec<Body>,
    pub subtype: Cow<'static, [u8]>,
    pub extension: MultipartExtension,
}

/// `body-fields`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyFields {
    pub params: Vec<Param>,
    /// Whether `charset=us-ascii` follows the parameters: text parts always
    /// carry a charset, us-ascii when the message has none (RFC 2045 §5.2).
    pub implied_charset: bool,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub encoding: Cow<'static, [u8]>,
    pub octets: usize,
}

/// `body-ext-1part`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinglePartExtension {
    pub md5: Option<Vec<u8>>,
    pub common: CommonExtension,
}

/// `body-ext-mpart`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MultipartExtension {
    pub params: Vec<Param>,
    pub common: CommonExtension,
}

/// Disposition, language and location: the extension data single parts
/// and multiparts share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommonExtension {
    pub disposition: Option<ContentDisposition>,
    pub language: Vec<Vec<u8>>,
    pub location: Option<Vec<u8>>,
}

/// The default transfer encoding (RFC 2045 §6.1).
const SEVEN_BIT: &[u8] = b"7bit";

/// Type and subtype of a leaf that claims to be multipart or
/// message/rfc822 (only past the nesting limit, or cut short by a
/// delimiter) or is a digest child without Content-Type: as in Dovecot,
/// opaque, because clients would otherwise expect the multipart or message
/// fields.
const OPAQUE: (&[u8], &[u8]) = (b"application", b"octet-stream");

impl Body {
    /// The structure of a whole message.
    pub fn of_message(raw: &[u8]) -> Body {
        Body::of_part(raw, &Part::parse(raw), true)
    }

    /// The structure of `part` of `raw`. `message_level` is set for the top
    /// of a message (the whole message, or one encapsulated in
    /// message/rfc822), where the Content-* fields only count when the
    /// header declares MIME.
    fn of_part(raw: &[u8], part: &Part, message_level: bool) -> Body {
        let header = part.header_bytes(raw);
        let content = if message_level {
            ContentFields::of_message(header)
        } else {
            ContentFields::of_part(header)
        };
        let ContentFields {
            content_type,
            encoding,
            id,
            description,
            md5,
            disposition,
            language,
            location,
        } = content;
        let common = CommonExtension {
            disposition,
            language,
            location,
        };
        let fields = |params: Vec<Param>, implied_charset: bool| BodyFields {
            params,
            implied_charset,
            id,
            description,
            encoding: encoding.map_or(Cow::Borrowed(SEVEN_BIT), Cow::Owned),
            octets: part.body_bytes(raw).len(),
        };
        match &part.kind {
            PartKind::Multipart(children) => {
                let mut parts: Vec<Body> = children
                    .iter()
                    .map(|child| Body::of_part(raw, child, false))
                    .collect();
                if parts.is_empty() {
                    parts.push(Body::Single(SinglePart::empty_text()));
                }
                let (subtype, params) = match content_type {
                    Some(content_type) if content_type.is_multipart() => {
                        (Cow::Owned(content_type.subtype), content_type.params)
                    }
                    _ => (Cow::Borrowed(&b"mixed"[..]), Vec::new()),
                };
                Body::Multipart(Multipart {
                    parts,
                    subtype,
                    extension: MultipartExtension { params, common },
                })
            }
            PartKind::Message(inner) => {
                let params = content_type.map(|ct| ct.params).unwrap_or_default();
                Body::Message(MessagePart {
                    fields: fields(params, false),
                    envelope: ImapEnvelope::of_header(inner.header_bytes(raw)),
                    body: Box::new(Body::of_part(raw, inner, true)),
                    lines: line_count(part.body_bytes(raw)),
                    extension: SinglePartExtension { md5, common },
                })
            }
            PartKind::Leaf => {
                let (media_type, subtype, text, params) = match content_type {
                    Some(ct) if ct.is_multipart() || ct.is_message_rfc822() => (
                        Cow::Borrowed(OPAQUE.0),
                        Cow::Borrowed(OPAQUE.1),
                        false,
                        ct.params,
                    ),
                    Some(ct) => {
                        let text = ct.is_text();
                        (
                            Cow::Owned(ct.main_type),
                            Cow::Owned(ct.subtype),
                            text,
                            ct.params,
                        )
                    }
                    None if part.in_digest => (
                        Cow::Borrowed(OPAQUE.0),
                        Cow::Borrowed(OPAQUE.1),
                        false,
                        Vec::new(),
                    ),
                    None => (
                        Cow::Borrowed(&b"text"[..]),
                        Cow::Borrowed(&b"plain"[..]),
                        true,
                        Vec::new(),
                    ),
                };
                let implied_charset = text
                    && !params
                        .iter()
                        .any(|param| param.name.eq_ignore_ascii_case(b"charset"));
                Body::Single(SinglePart {
                    media_type,
                    subtype,
                    fields: fields(params, implied_charset),
                    lines: text.then(|| line_count(part.body_bytes(raw))),
                    extension: SinglePartExtension { md5, common },
                })
            }
        }
    }

    /// Appends the parenthesized `body`, with extension data when
    /// `extensible` (BODYSTRUCTURE), without for BODY.
    pub fn write(&self, out: &mut Vec<u8>, extensible: bool) {
        out.push(b'(');
        match self {
            Body::Multipart(multipart) => {
                // The parts follow each other without a space (RFC 3501
                // `1*body`).
                for part in &multipart.parts {
                    part.write(out, extensible);
                }
                out.push(b' ');
                write_string(out, &multipart.subtype);
                if extensible {
                    out.push(b' ');
                    write_params(out, &multipart.extension.params, false);
                    multipart.extension.common.write(out);
                }
            }
            Body::Message(message) => {
                out.extend_from_slice(b"\"message\" \"rfc822\" ");
                message.fields.write(out);
                out.push(b' ');
                message.envelope.write(out);
                out.push(b' ');
                message.body.write(out, extensible);
                write_number_prefix(out, b" ", message.lines, b"");
                if extensible {
                    message.extension.write(out);
                }
            }
            Body::Single(single) => {
                write_string(out, &single.media_type);
                out.push(b' ');
                write_string(out, &single.subtype);
                out.push(b' ');
                single.fields.write(out);
                if let Some(lines) = single.lines {
                    write_number_prefix(out, b" ", lines, b"");
                }
                if extensible {
                    single.extension.write(out);
                }
            }
        }
        out.push(b')');
    }
}

impl SinglePart {
    /// The empty text/plain part that stands in for the missing parts of
    /// a multipart.
    fn empty_text() -> SinglePart {
        SinglePart {
            media_type: Cow::Borrowed(b"text"),
            subtype: Cow::Borrowed(b"plain"),
            fields: BodyFields {
                params: Vec::new(),
                implied_charset: true,
                id: None,
                description: None,
                encoding: Cow::Borrowed(SEVEN_BIT),
                octets: 0,
            },
            lines: Some(0),
            extension: SinglePartExtension::default(),
        }
    }
}

impl BodyFields {
    /// `body-fields`: parameters, id, description, encoding, octets.
    fn write(&self, out: &mut Vec<u8>) {
        write_params(out, &self.params, self.implied_charset);
        out.push(b' ');
        write_nstring(out, self.id.as_deref());
        out.push(b' ');
        write_nstring(out, self.description.as_deref());
        out.push(b' ');
        write_string(out, &self.encoding);
        write_number_prefix(out, b" ", self.octets, b"");
    }
}

impl SinglePartExtension {
    /// md5, then the fields common with multiparts, each after a space.
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b' ');
        write_nstring(out, self.md5.as_deref());
        self.common.write(out);
    }
}

impl CommonExtension {
    /// Disposition, language and location, each preceded by a space. A
    /// language list is always a parenthesized list (Dovecot's form).
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b' ');
        match &self.disposition {
            Some(disposition) => {
                out.push(b'(');
                write_string(out, &disposition.kind);
                out.push(b' ');
                write_params(out, &disposition.params, false);
                out.push(b')');
            }
            None => out.extend_from_slice(b"NIL"),
        }
        out.push(b' ');
        if self.language.is_empty() {
            out.extend_from_slice(b"NIL");
        } else {
            out.push(b'(');
            for (i, language) in self.language.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_string(out, language);
            }
            out.push(b')');
        }
        out.push(b' ');
        write_nstring(out, self.location.as_deref());
    }
}

/// `body-fld-param`, NIL when empty, with `"charset" "us-ascii"` after the
/// given parameters when `implied_charset`.
fn write_params(out: &mut Vec<u8>, params: &[Param], implied_charset: bool) {
    if params.is_empty() && !implied_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, param) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_string(out, &param.name);
        out.push(b' ');
        write_string(out, &param.value);
    }
    if implied_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

/// The number of lines of `bytes` as BODYSTRUCTURE reports them: the number
/// of LF bytes (a last line without line ending is not counted, as in
/// Dovecot; inside a multipart the line ending before a boundary belongs to
/// the boundary, so a part's last line usually has none).
pub fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_line_feeds() {
        assert_eq!(line_count(b""), 0);
        assert_eq!(line_count(b"no newline"), 0);
        assert_eq!(line_count(b"a\r\nb\nc"), 2);
        assert_eq!(line_count(b"a\r\n\r\n"), 2);
    }
}
