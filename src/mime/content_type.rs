//! The MIME fields of a part's header (RFC 2045, 2183, 3066/3282, 2557):
//! Content-Type with its parameters, Content-Disposition, and the other
//! Content-* fields, read leniently and kept as written.
//!
//! Types, subtypes and parameter names keep their case, and values are
//! only unquoted: IMAP reports them as the message wrote them, as Dovecot
//! does. RFC 2231 parameters (`name*=utf-8''%E2%82%AC`, continuations
//! `name*0*=`, `name*1=`) are read as ordinary parameters under their
//! written names and left encoded; a client that shows a file name
//! decodes them itself, as BODYSTRUCTURE gives them to it that way.

use super::header::{field_values, fields, unfold};
use super::lexer::{skip_comment, skip_quoted, unquote};
use super::slice;

/// Boundaries are compared on at most this many bytes (Dovecot's limit;
/// RFC 2046 allows 70), which bounds the work per line of a body.
pub const MAX_BOUNDARY_LEN: usize = 80;

/// A parameter `name=value`, name as written, value unquoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// A parsed Content-Type, type and subtype as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentType {
    pub main_type: Vec<u8>,
    /// Empty for a type written without `/subtype` (as in Dovecot).
    pub subtype: Vec<u8>,
    pub params: Vec<Param>,
}

impl ContentType {
    /// Parses an unfolded value; `None` when there is not even a type
    /// token (which counts as no Content-Type at all).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let mut cursor = Cursor::new(value);
        cursor.skip_cfws();
        let main = cursor.token();
        if main.is_empty() {
            return None;
        }
        cursor.skip_cfws();
        let sub = if cursor.eat(b'/') {
            cursor.skip_cfws();
            cursor.token()
        } else {
            b""
        };
        Some(ContentType {
            main_type: main.to_vec(),
            subtype: sub.to_vec(),
            params: cursor.params(),
        })
    }

    pub fn is_multipart(&self) -> bool {
        self.main_type.eq_ignore_ascii_case(b"multipart")
    }

    pub fn is_message_rfc822(&self) -> bool {
        self.main_type.eq_ignore_ascii_case(b"message")
            && self.subtype.eq_ignore_ascii_case(b"rfc822")
    }

    pub fn is_digest(&self) -> bool {
        self.is_multipart() && self.subtype.eq_ignore_ascii_case(b"digest")
    }

    pub fn is_text(&self) -> bool {
        self.main_type.eq_ignore_ascii_case(b"text")
    }

    /// The `boundary` parameter, cut to [`MAX_BOUNDARY_LEN`]; `None` when
    /// missing or empty (an empty boundary would match every `--` line).
    /// Only the parameter written as `boundary` counts, not an RFC 2231
    /// `boundary*0` (Dovecot does not join those either).
    pub fn boundary(&self) -> Option<&[u8]> {
        let param = self
            .params
            .iter()
            .find(|param| param.name.eq_ignore_ascii_case(b"boundary"))?;
        let boundary = param.value.get(..MAX_BOUNDARY_LEN).unwrap_or(&param.value);
        (!boundary.is_empty()).then_some(boundary)
    }
}

/// A parsed Content-Disposition (`inline`, `attachment`, … as written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentDisposition {
    pub kind: Vec<u8>,
    pub params: Vec<Param>,
}

impl ContentDisposition {
    /// Parses an unfolded value; `None` without a disposition token.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let mut cursor = Cursor::new(value);
        cursor.skip_cfws();
        let kind = cursor.token();
        if kind.is_empty() {
            return None;
        }
        Some(ContentDisposition {
            kind: kind.to_vec(),
            params: cursor.params(),
        })
    }
}

/// The Content-* fields of one header block, parsed (values unfolded).
/// The first field of each name counts, as in Dovecot; a field that does
/// not parse counts as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentFields {
    pub content_type: Option<ContentType>,
    /// Content-Transfer-Encoding, when it is a single token: anything else
    /// ("8 bit") is ignored, so that the default (7bit) applies, as in
    /// Dovecot.
    pub encoding: Option<Vec<u8>>,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
    pub disposition: Option<ContentDisposition>,
    /// The language tags of Content-Language.
    pub language: Vec<Vec<u8>>,
    pub location: Option<Vec<u8>>,
}

impl ContentFields {
    /// The fields of a MIME part's header (inside a multipart), where they
    /// always count.
    pub fn of_part(header: &[u8]) -> Self {
        let mut content = ContentFields::default();
        for field in fields(header) {
            let Some(name) = strip_prefix_ignore_case(field.name, b"content-") else {
                continue;
            };
            let is = |suffix: &[u8]| name.eq_ignore_ascii_case(suffix);
            let value = || unfold(field.value);
            if is(b"type") {
                set_once(&mut content.content_type, || ContentType::parse(&value()));
            } else if is(b"transfer-encoding") {
                set_once(&mut content.encoding, || single_token(&value()));
            } else if is(b"id") {
                set_once(&mut content.id, || Some(value()));
            } else if is(b"description") {
                set_once(&mut content.description, || Some(value()));
            } else if is(b"md5") {
                set_once(&mut content.md5, || Some(value()));
            } else if is(b"disposition") {
                set_once(&mut content.disposition, || {
                    ContentDisposition::parse(&value())
                });
            } else if is(b"location") {
                set_once(&mut content.location, || Some(value()));
            } else if is(b"language") && content.language.is_empty() {
                content.language = languages(&value());
            }
        }
        content
    }

    /// The fields of a message's header (the top level, or a message
    /// encapsulated in message/rfc822): there, as in Dovecot, they only
    /// count when the header declares MIME ([`declares_mime`]).
    pub fn of_message(header: &[u8]) -> Self {
        if declares_mime(header) {
            ContentFields::of_part(header)
        } else {
            ContentFields::default()
        }
    }
}

/// `name` without `prefix`, compared case-insensitively.
fn strip_prefix_ignore_case<'a>(name: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = name.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

fn set_once<T>(slot: &mut Option<T>, value: impl FnOnce() -> Option<T>) {
    if slot.is_none() {
        *slot = value();
    }
}

/// Whether a message header declares MIME: MIME-Version, or Content-Type
/// alone, which Dovecot accepts by default (much mail omits MIME-Version).
pub fn declares_mime(header: &[u8]) -> bool {
    fields(header).any(|field| field.is(b"MIME-Version") || field.is(b"Content-Type"))
}

/// The Content-Type of a header block: the first field that parses, the
/// same one [`ContentFields`] reports (all the MIME tree needs).
pub fn content_type_of(header: &[u8]) -> Option<ContentType> {
    field_values(header, b"Content-Type").find_map(|value| ContentType::parse(&unfold(value)))
}

/// A value that must be one token (Content-Transfer-Encoding).
fn single_token(value: &[u8]) -> Option<Vec<u8>> {
    let mut cursor = Cursor::new(value);
    cursor.skip_cfws();
    let token = cursor.token();
    cursor.skip_cfws();
    (!token.is_empty() && cursor.at_end()).then(|| token.to_vec())
}

/// Content-Language: a comma-separated list of language tags.
fn languages(value: &[u8]) -> Vec<Vec<u8>> {
    value
        .split(|&b| b == b',')
        .filter_map(|item| {
            let mut cursor = Cursor::new(item);
            cursor.skip_cfws();
            let tag = cursor.token();
            (!tag.is_empty()).then(|| tag.to_vec())
        })
        .collect()
}

/// RFC 2045 token bytes (for types, subtypes, parameter names, encodings).
/// `*`, `'` and `%` are token bytes, so RFC 2231 names (`filename*0*`)
/// are tokens too.
fn is_mime_token_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// Bytes of an unquoted parameter value, leniently: real mail carries
/// unquoted values with `=`, `/` or `?` (e.g. `boundary=----=_Part_1`).
fn is_param_value_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && !b";\"(".contains(&b)
}

/// A cursor over an unfolded MIME header value (Content-Type and friends).
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Skips whitespace and comments.
    fn skip_cfws(&mut self) {
        loop {
            match self.peek() {
                Some(b) if b.is_ascii_whitespace() => self.pos += 1,
                Some(b'(') => self.pos = skip_comment(self.s, self.pos),
                _ => return,
            }
        }
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        slice(self.s, start..self.pos)
    }

    fn token(&mut self) -> &'a [u8] {
        self.take_while(is_mime_token_byte)
    }

    /// A parameter value: a quoted string (unquoted) or a lenient token.
    fn value(&mut self) -> Vec<u8> {
        if self.peek() == Some(b'"') {
            let start = self.pos;
            self.pos = skip_quoted(self.s, self.pos);
            unquote(slice(self.s, start..self.pos))
        } else {
            self.take_while(is_param_value_byte).to_vec()
        }
    }

    /// Moves to the next `;` outside quoted strings and comments (junk
    /// between parameters is skipped, not fatal).
    fn skip_to_semicolon(&mut self) {
        while let Some(b) = self.peek() {
            self.pos = match b {
                b';' => return,
                b'"' => skip_quoted(self.s, self.pos),
                b'(' => skip_comment(self.s, self.pos),
                _ => self.pos + 1,
            };
        }
    }

    /// `*(";" name "=" value)`, as written: names keep their case and RFC
    /// 2231 sections (`name*0*=...`) stay separate parameters. Leniently, a
    /// missing `;` is tolerated (`multipart/mixed boundary="b"` is common
    /// enough in real mail) and junk up to the next `;` is skipped.
    fn params(&mut self) -> Vec<Param> {
        let mut params = Vec::new();
        loop {
            self.skip_cfws();
            match self.peek() {
                None => return params,
                Some(b';') => {
                    self.pos += 1;
                    self.skip_cfws();
                }
                Some(_) => {}
            }
            let name = self.token();
            self.skip_cfws();
            if name.is_empty() || !self.eat(b'=') {
                self.skip_to_semicolon();
                continue;
            }
            self.skip_cfws();
            let value = self.value();
            params.push(Param {
                name: name.to_vec(),
                value,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<Param> {
        list.iter()
            .map(|(name, value)| Param {
                name: name.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn types_and_parameters_as_written() {
        let parsed = ContentType::parse(br#"TEXT/Plain; Charset="utf-8" (comment); format=flowed"#);
        assert_eq!(
            parsed,
            Some(ContentType {
                main_type: b"TEXT".to_vec(),
                subtype: b"Plain".to_vec(),
                params: params(&[("Charset", "utf-8"), ("format", "flowed")]),
            })
        );
        let parsed = parsed.unwrap_or_else(|| unreachable!());
        assert!(parsed.is_text() && !parsed.is_multipart());
        // No subtype; no type at all.
        let bare = ContentType::parse(b"text");
        assert_eq!(bare.map(|ct| ct.subtype), Some(Vec::new()));
        assert_eq!(ContentType::parse(b" ; charset=x"), None);
    }

    #[test]
    fn parameters_are_read_leniently() {
        // Missing `;`, unquoted `=` in a value, junk between parameters,
        // an escaped quote.
        let parsed = ContentType::parse(
            br#"multipart/mixed boundary=----=_Part_1; junk; name="a \"b\".pdf"; =x; last=1"#,
        );
        assert_eq!(
            parsed.map(|ct| ct.params),
            Some(params(&[
                ("boundary", "----=_Part_1"),
                ("name", r#"a "b".pdf"#),
                ("last", "1")
            ]))
        );
    }

    #[test]
    fn rfc_2231_parameters_keep_their_written_names() {
        let parsed = ContentDisposition::parse(
            b"attachment; filename*0*=iso-8859-1''%E4rger; filename*1=.txt; name*=utf-8''x",
        );
        assert_eq!(
            parsed,
            Some(ContentDisposition {
                kind: b"attachment".to_vec(),
                params: params(&[
                    ("filename*0*", "iso-8859-1''%E4rger"),
                    ("filename*1", ".txt"),
                    ("name*", "utf-8''x"),
                ]),
            })
        );
    }

    #[test]
    fn boundaries() {
        let boundary = |value: &[u8]| {
            ContentType::parse(value).and_then(|ct| ct.boundary().map(<[u8]>::to_vec))
        };
        assert_eq!(
            boundary(b"multipart/mixed; BOUNDARY=\"a b\""),
            Some(b"a b".to_vec())
        );
        assert_eq!(boundary(b"multipart/mixed; boundary=\"\""), None);
        assert_eq!(boundary(b"multipart/mixed; boundary*0=x"), None);
        let long = [b"multipart/mixed; boundary=".as_slice(), &[b'x'; 100]].concat();
        assert_eq!(boundary(&long).map(|b| b.len()), Some(MAX_BOUNDARY_LEN));
        assert!(
            ContentType::parse(b"Multipart/Digest; boundary=d").is_some_and(|ct| ct.is_digest())
        );
        assert!(ContentType::parse(b"message/RFC822").is_some_and(|ct| ct.is_message_rfc822()));
    }

    #[test]
    fn content_fields_first_of_each_counts() {
        let header = b"Content-Type: text/html; charset=us-ascii\r\n\
Content-Type: text/plain\r\n\
content-transfer-encoding: Quoted-Printable\r\n\
Content-ID: <x@y>\r\n\
Content-Description: a\r\n  folded description\r\n\
Content-MD5: Q2hlY2s=\r\n\
Content-Disposition: inline; filename=\"r.eml\"\r\n\
Content-Language: en, (comment) de,,\r\n\
Content-Location: http://example.org/a\r\n\
Content-Language: fr\r\n\r\n";
        let content = ContentFields::of_part(header);
        assert_eq!(
            content.content_type.map(|ct| ct.subtype),
            Some(b"html".to_vec())
        );
        assert_eq!(content.encoding.as_deref(), Some(&b"Quoted-Printable"[..]));
        assert_eq!(content.id.as_deref(), Some(&b"<x@y>"[..]));
        assert_eq!(
            content.description.as_deref(),
            Some(&b"a  folded description"[..])
        );
        assert_eq!(content.md5.as_deref(), Some(&b"Q2hlY2s="[..]));
        assert_eq!(
            content.disposition.map(|d| (d.kind, d.params)),
            Some((b"inline".to_vec(), params(&[("filename", "r.eml")])))
        );
        assert_eq!(content.language, [b"en".to_vec(), b"de".to_vec()]);
        assert_eq!(
            content.location.as_deref(),
            Some(&b"http://example.org/a"[..])
        );
    }

    #[test]
    fn content_fields_of_a_message_need_mime() {
        let header = b"Content-Transfer-Encoding: base64\r\n\r\n";
        assert_eq!(ContentFields::of_message(header), ContentFields::default());
        assert_eq!(
            ContentFields::of_part(header).encoding.as_deref(),
            Some(&b"base64"[..])
        );
        let header = b"Mime-Version: 1.0\r\nContent-Transfer-Encoding: 8 bit\r\n\r\n";
        assert!(declares_mime(header));
        assert_eq!(ContentFields::of_message(header).encoding, None);
        // A Content-Type that does not parse does not hide a later one.
        assert_eq!(
            content_type_of(b"Content-Type: ;\r\nContent-Type: text/x\r\n\r\n")
                .map(|ct| ct.subtype),
            Some(b"x".to_vec())
        );
    }
}
