//! IMAP FETCH rendering (RFC 3501 §7.4.2) straight from a raw RFC 5322
//! message: strings, ENVELOPE, BODY/BODYSTRUCTURE and `BODY[section]`.
//!
//! * Everything a client receives as message content is a slice of the raw
//!   input, byte for byte; nothing is decoded and re-encoded. Header values
//!   in ENVELOPE and BODYSTRUCTURE are the raw values too (unfolded): IMAP
//!   clients decode RFC 2047 encoded words themselves.
//! * The MIME structure follows Dovecot's message parser, and where RFC 3501
//!   leaves room the output follows Dovecot as well: types and parameters as
//!   written in the message, `"text" "plain" ("charset" "us-ascii")` for
//!   parts without Content-Type, `"7bit"` as the default transfer encoding,
//!   the same part numbering. Clients have long been tested against Dovecot,
//!   and one consistent model keeps BODYSTRUCTURE sizes equal to the bytes
//!   `BODY[part]` serves.
//! * The parsing is done here, by small scanners over the raw bytes, rather
//!   than with mail-parser: mail-parser decodes (values, bodies), and its
//!   part offsets differ from Dovecot's in ways that break that equality
//!   (see [`Walker`]).
//! * Malformed input never panics and never loops: every offset is clamped
//!   to the input, nesting deeper than [`MAX_DEPTH`] is rendered as opaque
//!   leaves, and at most [`MAX_PARTS`] parts are looked for.

use std::borrow::Cow;
use std::ops::Range;

/// Longest value sent as a quoted string; anything longer goes as a literal
/// so that response lines stay reasonably short.
const MAX_QUOTED_LEN: usize = 1024;

/// Deepest nesting (multipart or message/rfc822 levels) rendered as
/// structure. Deeper parts become opaque leaves; this bounds the recursion
/// on hostile input (Dovecot's limit, also 100).
const MAX_DEPTH: usize = 100;

/// Most MIME parts looked for in one message (Dovecot's limit): past it,
/// delimiter lines are no longer recognized and the rest of the message is
/// body of the part at hand. Bounds time and memory on hostile input.
const MAX_PARTS: usize = 10_000;

/// Boundaries are compared on at most this many bytes (Dovecot's limit;
/// RFC 2046 allows 70), which bounds the work per line.
const MAX_BOUNDARY_LEN: usize = 80;

/// Host name of an address without domain. A NIL host would turn the
/// address into group syntax for the client (RFC 3501 §7.4.2), so a
/// placeholder is sent instead, the same one Dovecot uses.
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

/// Mailbox name of an address without local part (see [`MISSING_DOMAIN`]).
const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

/// Appends an IMAP `string`: quoted when every byte is printable 7-bit ASCII
/// and the value is at most [`MAX_QUOTED_LEN`] bytes, a synchronizing literal
/// otherwise (8-bit bytes, CR, LF and NUL cannot appear in a quoted string).
pub fn write_string(out: &mut Vec<u8>, value: &[u8]) {
    let quotable = value.len() <= MAX_QUOTED_LEN && value.iter().all(|b| (0x20..=0x7e).contains(b));
    if !quotable {
        write_literal(out, value);
        return;
    }
    out.push(b'"');
    for &byte in value {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

/// Appends an IMAP `nstring`: `NIL` for `None`, else [`write_string`].
pub fn write_nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => write_string(out, value),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends a synchronizing literal `{N}\r\n` followed by the bytes, the form
/// used for message content whatever it contains. A literal cannot carry NUL
/// (RFC 3501 `CHAR8`), so NUL bytes go as 0x80, as Dovecot sends them; the
/// length, and so every size and partial offset, stays the same.
pub fn write_literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    if value.contains(&0) {
        out.extend(value.iter().map(|&b| if b == 0 { 0x80 } else { b }));
    } else {
        out.extend_from_slice(value);
    }
}

/// The number of lines of `bytes` as BODYSTRUCTURE reports them: the number
/// of LF bytes (a last line without line ending is not counted, as in
/// Dovecot; inside a multipart the line ending before a boundary belongs to
/// the boundary, so a part's last line usually has none).
pub fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

// ---------------------------------------------------------------------------
// Raw header access
// ---------------------------------------------------------------------------

/// Offset just after the empty line that ends the top-level header
/// (`raw.len()` when there is none): the split for RFC822.HEADER and
/// RFC822.TEXT, and the same split BODY[HEADER], BODY[TEXT] and the
/// BODYSTRUCTURE use.
pub fn header_end(raw: &[u8]) -> usize {
    header_len(raw)
}

/// Length of the header block at the start of `bytes` including the empty
/// line ("\n" or "\r\n") that ends it; `bytes.len()` without such a line.
fn header_len(bytes: &[u8]) -> usize {
    terminated_header_len(bytes).unwrap_or(bytes.len())
}

/// The header's length when `bytes` hold the empty line that ends it; None
/// when they end first (a message without body, or a truncated read).
pub fn terminated_header_len(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while let Some(rest) = bytes.get(pos..).filter(|rest| !rest.is_empty()) {
        if let Some(blank) = blank_line_len(rest) {
            return Some(pos + blank);
        }
        pos = line_end(bytes, pos);
    }
    None
}

/// Length of the empty line `rest` starts with, if it starts with one.
fn blank_line_len(rest: &[u8]) -> Option<usize> {
    match rest {
        [b'\n', ..] => Some(1),
        [b'\r', b'\n', ..] => Some(2),
        _ => None,
    }
}

/// Offset just after the line starting at `pos` (after its LF, or the end).
fn line_end(bytes: &[u8], pos: usize) -> usize {
    bytes
        .get(pos..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |lf| pos + lf + 1)
}

/// `bytes[range]`, or empty when the range does not fit (it always should:
/// every offset in this module comes from scanning `bytes`; this keeps a
/// mistake from ever turning into a panic).
fn slice(bytes: &[u8], range: Range<usize>) -> &[u8] {
    bytes.get(range).unwrap_or_default()
}

/// One header field as written in the message.
struct Field<'a> {
    /// The name before the colon, without surrounding whitespace; empty for
    /// a line without colon, which Dovecot keeps as a nameless field (it
    /// then shows in HEADER.FIELDS.NOT, and never matches a name).
    name: &'a [u8],
    /// The whole field: first line, folded continuation lines, line ending.
    raw: &'a [u8],
    /// Everything after the colon, still folded, without the final line ending.
    value: &'a [u8],
}

impl<'a> Field<'a> {
    /// Splits a raw field whose first line is `first_len` bytes long.
    fn parse(raw: &'a [u8], first_len: usize) -> Self {
        let colon = slice(raw, 0..first_len).iter().position(|&b| b == b':');
        let (name, value) = match colon {
            Some(colon) => (
                slice(raw, 0..colon).trim_ascii(),
                slice(raw, colon + 1..raw.len()),
            ),
            None => (&b""[..], raw),
        };
        let value = value.strip_suffix(b"\n").unwrap_or(value);
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        Field { name, raw, value }
    }
}

/// Iterator over the fields of a header block; stops at the empty line.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let rest = self.rest;
        if rest.is_empty() || blank_line_len(rest).is_some() {
            return None;
        }
        let first_len = line_end(rest, 0);
        let mut end = first_len;
        while matches!(rest.get(end), Some(b' ' | b'\t')) {
            end = line_end(rest, end);
        }
        let (raw, tail) = rest.split_at(end.min(rest.len()));
        self.rest = tail;
        Some(Field::parse(raw, first_len))
    }
}

fn fields(header: &[u8]) -> Fields<'_> {
    Fields { rest: header }
}

/// The (still folded) values of every field called `name`, in order.
fn field_values<'a>(header: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields(header)
        .filter(move |field| field.name.eq_ignore_ascii_case(name))
        .map(|field| field.value)
}

/// Unfolds a raw value (RFC 5322 §2.2.3: the line breaks go, the whitespace
/// after them stays) and trims it. NUL cannot be sent in an IMAP string, so
/// it becomes 0x80 as in Dovecot (the value then goes as a literal).
fn unfold(value: &[u8]) -> Vec<u8> {
    let unfolded: Vec<u8> = value
        .iter()
        .filter(|&&b| b != b'\r' && b != b'\n')
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    unfolded.trim_ascii().to_vec()
}

// ---------------------------------------------------------------------------
// RFC 5322 lexical tokens (addresses) and RFC 2045 tokens (MIME fields)
// ---------------------------------------------------------------------------

/// Offset after the quoted string starting at `pos` (its closing quote, or
/// the end when unterminated).
fn skip_quoted(s: &[u8], pos: usize) -> usize {
    let mut i = pos + 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// Offset after the (possibly nested) comment starting at `pos`.
fn skip_comment(s: &[u8], pos: usize) -> usize {
    let mut depth = 0usize;
    let mut i = pos;
    while let Some(&b) = s.get(i) {
        match b {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    s.len()
}

/// Offset after the angle address starting at `pos` (quoted strings and
/// comments inside may contain `>`).
fn skip_angle(s: &[u8], pos: usize) -> usize {
    let mut i = pos + 1;
    while let Some(&b) = s.get(i) {
        i = match b {
            b'"' => skip_quoted(s, i),
            b'(' => skip_comment(s, i),
            b'>' => return i + 1,
            _ => i + 1,
        };
    }
    s.len()
}

/// Offset after the domain literal `[...]` starting at `pos`.
fn skip_domain_literal(s: &[u8], pos: usize) -> usize {
    slice(s, pos..s.len())
        .iter()
        .position(|&b| b == b']')
        .map_or(s.len(), |close| pos + close + 1)
}

/// `token` without its opening and closing delimiter (either may be
/// missing in unterminated input).
fn strip_delims(token: &[u8], open: u8, close: u8) -> &[u8] {
    let inner = token.strip_prefix(&[open]).unwrap_or(token);
    inner.strip_suffix(&[close]).unwrap_or(inner)
}

/// The content of a quoted string: quotes removed, quoted-pairs resolved.
fn unquote(quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(quoted.len());
    let mut escaped = false;
    for &b in strip_delims(quoted, b'"', b'"') {
        if !escaped && b == b'\\' {
            escaped = true;
        } else {
            out.push(b);
            escaped = false;
        }
    }
    out
}

/// Bytes of an atom in an address header, leniently: anything but
/// whitespace and the specials that structure an address. `.` is included
/// so that dot-atoms and obs-phrase words like "Q." are single words.
fn is_word_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && !b"()<>[]:;@,\"".contains(&b)
}

/// A lexical token of an address header, borrowing the unfolded value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Token<'a> {
    /// An atom, dot-atom or domain literal, as written.
    Word(&'a [u8]),
    /// A quoted string as written (with quotes and escapes).
    Quoted(&'a [u8]),
    /// The inside of a comment.
    Comment(&'a [u8]),
    /// The inside of an angle address `<...>`.
    Angle(&'a [u8]),
    /// One of `, ; : @`.
    Special(u8),
}

fn tokenize(s: &[u8]) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(&b) = s.get(pos) {
        let start = pos;
        match b {
            b'"' => {
                pos = skip_quoted(s, pos);
                tokens.push(Token::Quoted(slice(s, start..pos)));
            }
            b'(' => {
                pos = skip_comment(s, pos);
                tokens.push(Token::Comment(strip_delims(
                    slice(s, start..pos),
                    b'(',
                    b')',
                )));
            }
            b'<' => {
                pos = skip_angle(s, pos);
                tokens.push(Token::Angle(strip_delims(slice(s, start..pos), b'<', b'>')));
            }
            b'[' => {
                pos = skip_domain_literal(s, pos);
                tokens.push(Token::Word(slice(s, start..pos)));
            }
            b',' | b';' | b':' | b'@' => {
                pos += 1;
                tokens.push(Token::Special(b));
            }
            _ if is_word_byte(b) => {
                while s.get(pos).is_some_and(|&c| is_word_byte(c)) {
                    pos += 1;
                }
                tokens.push(Token::Word(slice(s, start..pos)));
            }
            // Whitespace, and stray `)`, `>` or `]`.
            _ => pos += 1,
        }
    }
    tokens
}

/// RFC 2045 token bytes (for types, subtypes, parameter names, encodings).
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
            params.push((name.to_vec(), self.value()));
        }
    }
}

// ---------------------------------------------------------------------------
// ENVELOPE
// ---------------------------------------------------------------------------

/// Appends the parenthesized RFC 3501 ENVELOPE of the message's top-level
/// header: `(date subject from sender reply-to to cc bcc in-reply-to
/// message-id)`.
pub fn write_envelope(out: &mut Vec<u8>, raw: &[u8]) {
    write_envelope_of(out, slice(raw, 0..header_end(raw)));
}

/// The ENVELOPE of a header block. Values are raw and unfolded (clients
/// decode RFC 2047 themselves). As in Dovecot, a repeated text field gives
/// its last value, repeated address fields are merged as if they were one
/// comma-separated list, and sender and reply-to default to from.
fn write_envelope_of(out: &mut Vec<u8>, header: &[u8]) {
    let text = |name: &[u8]| field_values(header, name).last().map(unfold);
    let subject = text(b"Subject").map(|subject| for_humans(&subject));
    let addresses = |name: &[u8]| -> Vec<Address> {
        field_values(header, name)
            .flat_map(|value| parse_address_list(&unfold(value)))
            .collect()
    };
    let from = addresses(b"From");
    let sender = addresses(b"Sender");
    let reply_to = addresses(b"Reply-To");

    out.push(b'(');
    write_nstring(out, text(b"Date").as_deref());
    out.push(b' ');
    write_nstring(out, subject.as_deref());
    for list in [
        &from,
        if sender.is_empty() { &from } else { &sender },
        if reply_to.is_empty() {
            &from
        } else {
            &reply_to
        },
        &addresses(b"To"),
        &addresses(b"Cc"),
        &addresses(b"Bcc"),
    ] {
        out.push(b' ');
        write_addresses(out, list);
    }
    out.push(b' ');
    write_nstring(out, text(b"In-Reply-To").as_deref());
    out.push(b' ');
    write_nstring(out, text(b"Message-ID").as_deref());
    out.push(b')');
}

/// A text meant for display (subject, personal name), as Dovecot sends it:
/// tabs and line breaks become spaces, runs of spaces one space, trimmed.
fn for_humans(value: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(value.len());
    for &byte in value {
        let byte = if matches!(byte, b'\t' | b'\r' | b'\n') {
            b' '
        } else {
            byte
        };
        if byte != b' ' || out.last().is_some_and(|&last| last != b' ') {
            out.push(byte);
        }
    }
    if out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

/// One RFC 3501 address structure `(name adl mailbox host)`. Group syntax
/// uses the same structure: the start of group "g" is `(NIL NIL "g" NIL)`,
/// its end `(NIL NIL NIL NIL)` (the default).
///
/// The personal name is kept as the raw bytes of the display name (quoted
/// strings unquoted, words joined by one space), with encoded words left
/// encoded: re-encoding mail-parser's decoded name would lose the original
/// charset and differ byte-wise from what the client sees in BODY[HEADER].
/// The mailbox is the local part exactly as written (a quoted local part
/// keeps its quotes, so `mailbox@host` is still a valid address).
#[derive(Debug, Default, PartialEq)]
struct Address {
    name: Option<Vec<u8>>,
    adl: Option<Vec<u8>>,
    mailbox: Option<Vec<u8>>,
    host: Option<Vec<u8>>,
}

impl Address {
    /// A real (non-group) address; missing parts get placeholders because
    /// a NIL host would read as group syntax.
    fn mailbox(
        name: Option<Vec<u8>>,
        adl: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Vec<u8>,
    ) -> Self {
        let or = |value: Vec<u8>, missing: &[u8]| {
            if value.is_empty() {
                missing.to_vec()
            } else {
                value
            }
        };
        Address {
            name: name
                .map(|name| for_humans(&name))
                .filter(|name| !name.is_empty()),
            adl,
            mailbox: Some(or(mailbox, MISSING_MAILBOX)),
            host: Some(or(host, MISSING_DOMAIN)),
        }
    }

    fn group_start(name: Vec<u8>) -> Self {
        Address {
            mailbox: Some(name),
            ..Address::default()
        }
    }
}

fn write_addresses(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for address in list {
        out.push(b'(');
        write_nstring(out, address.name.as_deref());
        out.push(b' ');
        write_nstring(out, address.adl.as_deref());
        out.push(b' ');
        write_nstring(out, address.mailbox.as_deref());
        out.push(b' ');
        write_nstring(out, address.host.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// Parses an unfolded RFC 5322 address-list leniently: one address per
/// comma-separated segment, `name:` ... `;` as a group, empty segments
/// skipped, an unterminated group closed at the end.
fn parse_address_list(value: &[u8]) -> Vec<Address> {
    let mut list = Vec::new();
    let mut segment = Vec::new();
    let mut in_group = false;
    for token in tokenize(value) {
        match token {
            Token::Special(b',') => flush_segment(&mut segment, &mut list),
            Token::Special(b';') => {
                flush_segment(&mut segment, &mut list);
                if in_group {
                    list.push(Address::default());
                    in_group = false;
                }
            }
            Token::Special(b':') if !in_group && is_phrase(&segment) => {
                list.push(Address::group_start(phrase(&segment)));
                segment.clear();
                in_group = true;
            }
            _ => segment.push(token),
        }
    }
    flush_segment(&mut segment, &mut list);
    if in_group {
        list.push(Address::default());
    }
    list
}

fn flush_segment(segment: &mut Vec<Token<'_>>, list: &mut Vec<Address>) {
    list.extend(segment_address(segment));
    segment.clear();
}

/// Whether the tokens are a non-empty display name (a group name).
fn is_phrase(tokens: &[Token<'_>]) -> bool {
    tokens
        .iter()
        .any(|t| matches!(t, Token::Word(_) | Token::Quoted(_)))
        && tokens
            .iter()
            .all(|t| matches!(t, Token::Word(_) | Token::Quoted(_) | Token::Comment(_)))
}

/// The words of a display name joined by single spaces, quoted strings
/// unquoted; comments and stray specials are dropped.
fn phrase(tokens: &[Token<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for token in tokens {
        let word = match token {
            Token::Word(word) => word.to_vec(),
            Token::Quoted(quoted) => unquote(quoted),
            _ => continue,
        };
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(&word);
    }
    out
}

/// The address of one comma-separated segment: `phrase <addr-spec>`,
/// `addr-spec (comment)` (the comment becomes the name, as in Dovecot), a
/// lone word (a local part without domain) or several words without `@`
/// (a name without address). `None` for a segment without any word.
fn segment_address(tokens: &[Token<'_>]) -> Option<Address> {
    let angle = tokens
        .iter()
        .enumerate()
        .find_map(|(i, token)| match token {
            Token::Angle(inner) => Some((i, *inner)),
            _ => None,
        });
    if let Some((i, inner)) = angle {
        let name =
            Some(phrase(tokens.get(..i).unwrap_or_default())).filter(|name| !name.is_empty());
        let (adl, mailbox, host) = addr_spec(&tokenize(inner));
        return Some(Address::mailbox(name, adl, mailbox, host));
    }
    let words = tokens
        .iter()
        .filter(|t| matches!(t, Token::Word(_) | Token::Quoted(_)))
        .count();
    let has_at = tokens.contains(&Token::Special(b'@'));
    if words == 0 {
        return None;
    }
    if words > 1 && !has_at {
        return Some(Address::mailbox(
            Some(phrase(tokens)),
            None,
            Vec::new(),
            Vec::new(),
        ));
    }
    let comment = tokens
        .iter()
        .rev()
        .find_map(|token| match token {
            Token::Comment(comment) => Some(comment.trim_ascii().to_vec()),
            _ => None,
        })
        .filter(|comment| !comment.is_empty());
    let (adl, mailbox, host) = addr_spec(tokens);
    Some(Address::mailbox(comment, adl, mailbox, host))
}

/// Splits `[@route,@route:]local@domain` into (adl, local part, domain),
/// each as written. The first `@` ends the local part and the domain is one
/// word; anything after it is dropped, as in Dovecot (so that
/// `a@b.example c@d.example`, missing its comma, gives `a@b.example`).
fn addr_spec(tokens: &[Token<'_>]) -> (Option<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let colon = tokens.iter().position(|t| *t == Token::Special(b':'));
    let (adl, rest) = match colon {
        Some(colon) if tokens.first() == Some(&Token::Special(b'@')) => (
            Some(concat(tokens.get(..colon).unwrap_or_default())),
            tokens.get(colon + 1..).unwrap_or_default(),
        ),
        _ => (None, tokens),
    };
    match rest.iter().position(|t| *t == Token::Special(b'@')) {
        Some(at) => {
            let after = rest.get(at + 1..).unwrap_or_default();
            let domain = after.iter().find_map(|token| match token {
                Token::Word(word) => Some(word.to_vec()),
                _ => None,
            });
            let local = concat(rest.get(..at).unwrap_or_default());
            (adl, local, domain.unwrap_or_default())
        }
        None => (adl, concat(rest), Vec::new()),
    }
}

/// Tokens as written, without whitespace and comments.
fn concat(tokens: &[Token<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for token in tokens {
        match token {
            Token::Word(bytes) | Token::Quoted(bytes) => out.extend_from_slice(bytes),
            Token::Special(byte) => out.push(*byte),
            Token::Comment(_) | Token::Angle(_) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// MIME header fields
// ---------------------------------------------------------------------------

/// A parameter `(name, value)`, value unquoted.
type Param = (Vec<u8>, Vec<u8>);

/// A parsed Content-Type, type and subtype as written.
struct ContentType {
    main: Vec<u8>,
    sub: Vec<u8>,
    params: Vec<Param>,
}

impl ContentType {
    /// `None` when there is not even a type token (treated as absent).
    /// A type without `/subtype` gets an empty subtype, as in Dovecot.
    fn parse(value: &[u8]) -> Option<Self> {
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
            main: main.to_vec(),
            sub: sub.to_vec(),
            params: cursor.params(),
        })
    }

    fn is_multipart(&self) -> bool {
        self.main.eq_ignore_ascii_case(b"multipart")
    }

    fn is_message_rfc822(&self) -> bool {
        self.main.eq_ignore_ascii_case(b"message") && self.sub.eq_ignore_ascii_case(b"rfc822")
    }

    fn is_digest(&self) -> bool {
        self.is_multipart() && self.sub.eq_ignore_ascii_case(b"digest")
    }

    /// The `boundary` parameter, cut to [`MAX_BOUNDARY_LEN`]; `None` when
    /// missing or empty (an empty boundary would match every `--` line).
    fn boundary(&self) -> Option<Vec<u8>> {
        let (_, value) = self
            .params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(b"boundary"))?;
        let boundary = value.get(..MAX_BOUNDARY_LEN).unwrap_or(value);
        (!boundary.is_empty()).then(|| boundary.to_vec())
    }
}

/// A parsed Content-Disposition.
struct Disposition {
    kind: Vec<u8>,
    params: Vec<Param>,
}

impl Disposition {
    fn parse(value: &[u8]) -> Option<Self> {
        let mut cursor = Cursor::new(value);
        cursor.skip_cfws();
        let kind = cursor.token();
        if kind.is_empty() {
            return None;
        }
        Some(Disposition {
            kind: kind.to_vec(),
            params: cursor.params(),
        })
    }
}

/// The Content-* fields of one MIME header (the first of each counts, as
/// in Dovecot), parsed for BODY/BODYSTRUCTURE.
#[derive(Default)]
struct MimeHeader {
    content_type: Option<ContentType>,
    /// Content-Transfer-Encoding, when it is a single token.
    encoding: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    description: Option<Vec<u8>>,
    md5: Option<Vec<u8>>,
    disposition: Option<Disposition>,
    language: Vec<Vec<u8>>,
    location: Option<Vec<u8>>,
}

impl MimeHeader {
    fn parse(header: &[u8]) -> Self {
        let mut mime = MimeHeader::default();
        for field in fields(header) {
            let name = field.name.to_ascii_lowercase();
            let Some(name) = name.strip_prefix(b"content-") else {
                continue;
            };
            let value = unfold(field.value);
            match name {
                b"type" => set_once(&mut mime.content_type, || ContentType::parse(&value)),
                b"transfer-encoding" => set_once(&mut mime.encoding, || single_token(&value)),
                b"id" => set_once(&mut mime.id, || Some(value)),
                b"description" => set_once(&mut mime.description, || Some(value)),
                b"md5" => set_once(&mut mime.md5, || Some(value)),
                b"disposition" => set_once(&mut mime.disposition, || Disposition::parse(&value)),
                b"location" => set_once(&mut mime.location, || Some(value)),
                b"language" if mime.language.is_empty() => mime.language = languages(&value),
                _ => {}
            }
        }
        mime
    }
}

fn set_once<T>(slot: &mut Option<T>, value: impl FnOnce() -> Option<T>) {
    if slot.is_none() {
        *slot = value();
    }
}

/// Whether a message header declares MIME (MIME-Version, or Content-Type
/// alone as Dovecot accepts by default).
fn declares_mime(header: &[u8]) -> bool {
    fields(header).any(|field| {
        field.name.eq_ignore_ascii_case(b"MIME-Version")
            || field.name.eq_ignore_ascii_case(b"Content-Type")
    })
}

/// The Content-Type of a header block: the first field that parses, the
/// same one [`MimeHeader`] reports (all the MIME tree needs).
fn content_type_of(header: &[u8]) -> Option<ContentType> {
    field_values(header, b"Content-Type").find_map(|value| ContentType::parse(&unfold(value)))
}

/// A value that must be one token (Content-Transfer-Encoding); anything
/// else ("8 bit") is ignored, so the default "7bit" is reported as Dovecot
/// does.
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

// ---------------------------------------------------------------------------
// MIME tree
// ---------------------------------------------------------------------------

/// One MIME part (or a whole message): `start..body.start` is its header
/// (the MIME header, or the message header for a message) including the
/// empty line ending it, `body` its body, both offsets into the raw bytes.
struct Node {
    start: usize,
    body: Range<usize>,
    /// A child of multipart/digest, whose default type is message/rfc822.
    in_digest: bool,
    kind: Kind,
}

enum Kind {
    Leaf,
    /// A multipart. Without children when none could be found (no boundary
    /// parameter, or no boundary line in the body).
    Multipart(Vec<Node>),
    /// A message/rfc822 part and the encapsulated message in its body.
    Message(Box<Node>),
}

impl Node {
    fn header(&self) -> Range<usize> {
        self.start..self.body.start
    }
}

/// The MIME tree of a whole message.
fn parse_tree(raw: &[u8]) -> Node {
    Walker {
        raw,
        boundaries: Vec::new(),
        parts: 0,
    }
    .part(0, false, 0)
    .0
}

/// A boundary line found while scanning.
#[derive(Clone, Copy)]
struct Delimiter {
    /// Index in [`Walker::boundaries`] of the multipart it belongs to.
    level: usize,
    /// Offset after the line (after its LF).
    next: usize,
    /// A close delimiter `--boundary--`.
    close: bool,
}

/// Splits a message into MIME parts the way Dovecot's message parser does
/// (so that BODYSTRUCTURE, sizes and part numbers agree with what clients
/// know from Dovecot):
///
/// * a delimiter is a line starting with `--` and one of the boundaries of
///   the enclosing multiparts; only a prefix has to match (the longest
///   matching boundary wins, the innermost among equals), and a delimiter of
///   an outer multipart also ends the inner parts (and even a header);
/// * the line ending before a delimiter belongs to the delimiter, not to
///   the part's body;
/// * message/rfc822 is parsed as a message whatever its transfer encoding.
///
/// mail-parser is not used here: its part offsets differ from Dovecot's
/// (nested message/rfc822 sizes off by the final line ending, boundaries
/// recognized in mid-line, a whitespace-only first line taken as the end of
/// the header), which would make BODYSTRUCTURE sizes disagree with the bytes
/// BODY[part] serves.
struct Walker<'a> {
    raw: &'a [u8],
    /// Boundaries of the enclosing multiparts, innermost last.
    boundaries: Vec<Vec<u8>>,
    /// Parts found so far (see [`MAX_PARTS`]).
    parts: usize,
}

impl Walker<'_> {
    /// Parses the part starting at `start`. Returns it, the offset where it
    /// ends for its parent (usually its body's end) and the delimiter that
    /// ended it (`None` at the end of input).
    fn part(
        &mut self,
        start: usize,
        in_digest: bool,
        depth: usize,
    ) -> (Node, usize, Option<Delimiter>) {
        self.parts += 1;
        let (body_start, cut) = self.header(start, depth);
        let content_type = content_type_of(slice(self.raw, start..body_start));
        let is_message = match &content_type {
            Some(content_type) => content_type.is_message_rfc822(),
            None => in_digest,
        };
        let multipart = content_type
            .as_ref()
            .filter(|content_type| content_type.is_multipart());
        let node = |end: usize, kind| Node {
            start,
            body: body_start..end,
            in_digest,
            kind,
        };

        if let Some((end, delimiter)) = cut {
            let kind = if depth >= MAX_DEPTH {
                Kind::Leaf
            } else if is_message {
                Kind::Message(Box::new(Node {
                    start: body_start,
                    body: body_start..body_start,
                    in_digest: false,
                    kind: Kind::Leaf,
                }))
            } else if multipart.is_some() {
                Kind::Multipart(Vec::new())
            } else {
                Kind::Leaf
            };
            return (node(body_start, kind), end, Some(delimiter));
        }
        if depth >= MAX_DEPTH {
            let (end, stop) = self.body(body_start);
            return (node(end, Kind::Leaf), end, stop);
        }
        if is_message {
            let (inner, end, stop) = self.part(body_start, false, depth + 1);
            return (node(end, Kind::Message(Box::new(inner))), end, stop);
        }
        if let Some(multipart) = multipart {
            let (children, end, stop) = match multipart.boundary() {
                Some(boundary) => self.children(body_start, boundary, multipart.is_digest(), depth),
                None => {
                    let (end, stop) = self.body(body_start);
                    (Vec::new(), end, stop)
                }
            };
            return (node(end, Kind::Multipart(children)), end, stop);
        }
        let (end, stop) = self.body(body_start);
        (node(end, Kind::Leaf), end, stop)
    }

    /// The children of a multipart whose body starts at `body_start`: the
    /// preamble is skipped, each delimiter of this multipart starts a child,
    /// its close delimiter starts the epilogue, which runs to a delimiter of
    /// an outer multipart or the end. Returns the children, the end of the
    /// multipart's body and the delimiter that ended it.
    fn children(
        &mut self,
        body_start: usize,
        boundary: Vec<u8>,
        digest: bool,
        depth: usize,
    ) -> (Vec<Node>, usize, Option<Delimiter>) {
        let level = self.boundaries.len();
        self.boundaries.push(boundary);
        let mut children = Vec::new();
        let (mut end, mut stop) = self.body(body_start);
        while let Some(delimiter) = stop.filter(|delimiter| delimiter.level == level) {
            if delimiter.close {
                self.boundaries.truncate(level);
                (end, stop) = self.body(delimiter.next);
                break;
            }
            let child;
            (child, end, stop) = self.part(delimiter.next, digest, depth + 1);
            children.push(child);
        }
        self.boundaries.truncate(level);
        (children, end, stop)
    }

    /// Scans a header block from `start` to its empty line; returns where
    /// the body starts. A delimiter ends the header early and leaves the
    /// part without body; then also returns where the part ends for its
    /// parent and the delimiter. As in Dovecot, the line break before the
    /// delimiter is not part of the header but of the parent's body, and an
    /// empty line directly followed by a delimiter counts as that line
    /// break, not as the end of the header, unless the delimiter is the
    /// part's own (a multipart whose body starts with its first delimiter).
    fn header(&mut self, start: usize, depth: usize) -> (usize, Option<(usize, Delimiter)>) {
        let mut pos = start;
        while let Some(rest) = self.raw.get(pos..).filter(|rest| !rest.is_empty()) {
            if let Some(delimiter) = self.delimiter_at(pos) {
                return (self.line_break_before(pos, start), Some((pos, delimiter)));
            }
            if let Some(blank) = blank_line_len(rest) {
                let after = pos + blank;
                return match self.outer_delimiter_at(after, slice(self.raw, start..after), depth) {
                    Some(delimiter) => (pos, Some((after, delimiter))),
                    None => (after, None),
                };
            }
            pos = line_end(self.raw, pos);
        }
        (self.raw.len().max(start), None)
    }

    /// The delimiter at `pos` unless it belongs to the multipart whose
    /// complete `header` precedes it (its boundary competes with the outer
    /// ones, as the longest match wins).
    fn outer_delimiter_at(&mut self, pos: usize, header: &[u8], depth: usize) -> Option<Delimiter> {
        let level = self.boundaries.len();
        let own = content_type_of(header)
            .filter(|content_type| content_type.is_multipart() && depth < MAX_DEPTH)
            .and_then(|content_type| content_type.boundary());
        self.boundaries.extend(own);
        let delimiter = self
            .delimiter_at(pos)
            .filter(|delimiter| delimiter.level < level);
        self.boundaries.truncate(level);
        delimiter
    }

    /// Scans a body from `from` to the next delimiter line; returns where
    /// the body ends (before the line break preceding the delimiter, which
    /// belongs to the delimiter) and the delimiter, or the end of input.
    fn body(&self, from: usize) -> (usize, Option<Delimiter>) {
        let mut pos = from;
        while pos < self.raw.len() {
            if let Some(delimiter) = self.delimiter_at(pos) {
                return (self.line_break_before(pos, from), Some(delimiter));
            }
            pos = line_end(self.raw, pos);
        }
        (self.raw.len().max(from), None)
    }

    /// `pos` moved back over the LF or CRLF just before it, not below
    /// `floor`.
    fn line_break_before(&self, pos: usize, floor: usize) -> usize {
        let before = |at: usize, byte: u8| at > floor && self.raw.get(at - 1) == Some(&byte);
        if !before(pos, b'\n') {
            return pos;
        }
        if before(pos - 1, b'\r') {
            pos - 2
        } else {
            pos - 1
        }
    }

    /// The delimiter on the line starting at `pos`, if it is one.
    fn delimiter_at(&self, pos: usize) -> Option<Delimiter> {
        if self.parts >= MAX_PARTS {
            return None;
        }
        let next = line_end(self.raw, pos);
        let line = slice(self.raw, pos..next);
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let text = line.strip_prefix(b"--")?;
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let (level, len) = self.matching_boundary(text)?;
        let close = text.get(len..len + 2) == Some(b"--");
        Some(Delimiter { level, next, close })
    }

    /// The longest boundary `text` starts with (the innermost one among
    /// equally long ones), as (level, length).
    fn matching_boundary(&self, text: &[u8]) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for (level, boundary) in self.boundaries.iter().enumerate().rev() {
            if text.starts_with(boundary) && best.is_none_or(|(_, len)| len < boundary.len()) {
                best = Some((level, boundary.len()));
            }
        }
        best
    }
}

// ---------------------------------------------------------------------------
// BODY / BODYSTRUCTURE
// ---------------------------------------------------------------------------

/// Appends the parenthesized BODYSTRUCTURE of the message (with extension
/// data) when `extensible`, else its BODY (the same without extension data).
pub fn write_bodystructure(out: &mut Vec<u8>, raw: &[u8], extensible: bool) {
    write_body(out, raw, &parse_tree(raw), extensible, true);
}

/// Appends one `body`. `message_level` is set for the top of a message (the
/// whole message, or one encapsulated in message/rfc822): there, as in
/// Dovecot, the Content-* fields only count when the header declares MIME
/// (has MIME-Version or Content-Type); inside a multipart they always do.
fn write_body(out: &mut Vec<u8>, raw: &[u8], node: &Node, extensible: bool, message_level: bool) {
    let header = slice(raw, node.header());
    let mime = if message_level && !declares_mime(header) {
        MimeHeader::default()
    } else {
        MimeHeader::parse(header)
    };
    out.push(b'(');
    match &node.kind {
        Kind::Multipart(children) => write_multipart(out, raw, children, &mime, extensible),
        Kind::Message(inner) => write_message(out, raw, node, inner, &mime, extensible),
        Kind::Leaf => write_leaf(out, raw, node, &mime, extensible),
    }
    out.push(b')');
}

/// `body-type-mpart`: the children (no space between them), the subtype and
/// as extension data the parameters, disposition, language and location.
/// The syntax needs at least one child: a multipart without any gets an
/// empty text/plain one, as in Dovecot.
fn write_multipart(
    out: &mut Vec<u8>,
    raw: &[u8],
    children: &[Node],
    mime: &MimeHeader,
    extensible: bool,
) {
    for child in children {
        write_body(out, raw, child, extensible, false);
    }
    if children.is_empty() {
        out.extend_from_slice(
            b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0",
        );
        if extensible {
            out.extend_from_slice(b" NIL NIL NIL NIL");
        }
        out.push(b')');
    }
    let content_type = mime
        .content_type
        .as_ref()
        .filter(|content_type| content_type.is_multipart());
    out.push(b' ');
    write_string(
        out,
        content_type.map_or(&b"mixed"[..], |content_type| &content_type.sub),
    );
    if extensible {
        out.push(b' ');
        write_params(
            out,
            content_type.map_or(&[][..], |content_type| &content_type.params),
            false,
        );
        write_common_extension(out, mime);
    }
}

/// `body-type-msg`: the basic fields, then the envelope and body structure
/// of the encapsulated message and the line count of the whole body.
fn write_message(
    out: &mut Vec<u8>,
    raw: &[u8],
    node: &Node,
    inner: &Node,
    mime: &MimeHeader,
    extensible: bool,
) {
    out.extend_from_slice(b"\"message\" \"rfc822\" ");
    let body = slice(raw, node.body.clone());
    write_body_fields(out, mime, false, body.len());
    out.push(b' ');
    write_envelope_of(out, slice(raw, inner.header()));
    out.push(b' ');
    write_body(out, raw, inner, extensible, true);
    out.extend_from_slice(format!(" {}", line_count(body)).as_bytes());
    if extensible {
        write_single_extension(out, mime);
    }
}

/// `body-type-basic` or `body-type-text` (which adds the line count).
fn write_leaf(out: &mut Vec<u8>, raw: &[u8], node: &Node, mime: &MimeHeader, extensible: bool) {
    let (main, sub, text) = leaf_type(mime.content_type.as_ref(), node.in_digest);
    write_string(out, main);
    out.push(b' ');
    write_string(out, sub);
    out.push(b' ');
    let body = slice(raw, node.body.clone());
    write_body_fields(out, mime, text, body.len());
    if text {
        out.extend_from_slice(format!(" {}", line_count(body)).as_bytes());
    }
    if extensible {
        write_single_extension(out, mime);
    }
}

/// Type, subtype and whether a leaf is text. Without Content-Type it is
/// text/plain. A leaf claiming multipart or message/rfc822 (only past the
/// nesting limit) is written as application/octet-stream, as in Dovecot:
/// clients would otherwise expect the multipart or message fields.
fn leaf_type(content_type: Option<&ContentType>, in_digest: bool) -> (&[u8], &[u8], bool) {
    const OPAQUE: (&[u8], &[u8], bool) = (b"application", b"octet-stream", false);
    match content_type {
        Some(ct) if ct.is_multipart() || ct.is_message_rfc822() => OPAQUE,
        Some(ct) => (&ct.main, &ct.sub, ct.main.eq_ignore_ascii_case(b"text")),
        None if in_digest => OPAQUE,
        None => (b"text", b"plain", true),
    }
}

/// `body-fields`: parameters, id, description, encoding, octets.
fn write_body_fields(out: &mut Vec<u8>, mime: &MimeHeader, text: bool, octets: usize) {
    let params = mime
        .content_type
        .as_ref()
        .map_or(&[][..], |content_type| &content_type.params);
    write_params(out, params, text);
    out.push(b' ');
    write_nstring(out, mime.id.as_deref());
    out.push(b' ');
    write_nstring(out, mime.description.as_deref());
    out.push(b' ');
    write_string(out, mime.encoding.as_deref().unwrap_or(b"7bit"));
    out.extend_from_slice(format!(" {octets}").as_bytes());
}

/// `body-fld-param`; text parts always carry a charset (us-ascii when the
/// message has none, RFC 2045 §5.2), appended after the given parameters.
fn write_params(out: &mut Vec<u8>, params: &[Param], text: bool) {
    let add_charset = text
        && !params
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(b"charset"));
    if params.is_empty() && !add_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_string(out, name);
        out.push(b' ');
        write_string(out, value);
    }
    if add_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

/// `body-ext-1part`: md5, then the fields common with multiparts.
fn write_single_extension(out: &mut Vec<u8>, mime: &MimeHeader) {
    out.push(b' ');
    write_nstring(out, mime.md5.as_deref());
    write_common_extension(out, mime);
}

/// Disposition, language and location, each preceded by a space.
fn write_common_extension(out: &mut Vec<u8>, mime: &MimeHeader) {
    out.push(b' ');
    match &mime.disposition {
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
    if mime.language.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, language) in mime.language.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            write_string(out, language);
        }
        out.push(b')');
    }
    out.push(b' ');
    write_nstring(out, mime.location.as_deref());
}

// ---------------------------------------------------------------------------
// BODY[section]
// ---------------------------------------------------------------------------

/// What of a part `BODY[<part>.<kind>]` asks for (RFC 3501 §6.4.5).
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

/// The bytes of `BODY[<part>.<kind>]`, sliced from `raw` except for the
/// HEADER.FIELDS kinds. Part numbers follow RFC 3501 §6.4.5: part 1 of a
/// non-multipart message is its body, the parts of a multipart are numbered
/// from 1, and the parts of a message/rfc822 part are numbered within the
/// encapsulated message (2.1 is the first child when its body is
/// multipart, its body otherwise). `None` when the part does not exist or
/// the kind does not apply to it (HEADER/TEXT of a part that is not
/// message/rfc822, MIME without part number): the caller answers NIL or an
/// empty string (Dovecot sends an empty string). The partial
/// `<origin.length>` is the caller's to apply.
pub fn section_bytes<'a>(raw: &'a [u8], part: &[u32], kind: SectionKind) -> Option<Cow<'a, [u8]>> {
    if part.is_empty() {
        let split = header_end(raw);
        return message_section(raw, 0..split, split..raw.len(), &kind);
    }
    let tree = parse_tree(raw);
    let node = resolve(&tree, part)?;
    match (&kind, &node.kind) {
        (SectionKind::Full, _) => Some(Cow::Borrowed(slice(raw, node.body.clone()))),
        (SectionKind::Mime, _) => Some(Cow::Borrowed(slice(raw, node.header()))),
        (_, Kind::Message(inner)) => {
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
    let bytes = match kind {
        SectionKind::Full => Cow::Borrowed(slice(raw, header.start..body.end)),
        SectionKind::Header => Cow::Borrowed(slice(raw, header)),
        SectionKind::HeaderFields(names) => {
            Cow::Owned(select_fields(slice(raw, header), names, true))
        }
        SectionKind::HeaderFieldsNot(names) => {
            Cow::Owned(select_fields(slice(raw, header), names, false))
        }
        SectionKind::Text => Cow::Borrowed(slice(raw, body)),
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
        if names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(field.name))
            == wanted
        {
            out.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The node a non-empty part path names, found as Dovecot does: a number
/// picks a child of a multipart; any other part only has part 1, itself
/// (which is how part 1 of a single-part message is its body); a
/// message/rfc822 part followed by more numbers is entered, so the next
/// number applies to the encapsulated message. As in Dovecot a leaf also
/// answers to one trailing `.1` (`BODY[2.1]` of a leaf part 2 is part 2).
fn resolve<'t>(root: &'t Node, path: &[u32]) -> Option<&'t Node> {
    let mut node = root;
    for (i, &number) in path.iter().enumerate() {
        let more = i + 1 < path.len();
        node = match &node.kind {
            Kind::Multipart(children) => child(children, number)?,
            _ if number != 1 => return None,
            Kind::Leaf if more => return None,
            _ => node,
        };
        if let (true, Kind::Message(inner)) = (more, &node.kind) {
            node = inner;
        }
    }
    (!path.is_empty()).then_some(node)
}

fn child(children: &[Node], number: u32) -> Option<&Node> {
    let index = usize::try_from(number).ok()?.checked_sub(1)?;
    children.get(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    // -- A strict reader of the IMAP values this module writes ---------------

    /// An IMAP value as a client parses it.
    #[derive(Debug, Clone, PartialEq)]
    enum Value {
        Nil,
        Num(u64),
        Str(Vec<u8>),
        List(Vec<Value>),
    }

    impl Value {
        fn list(&self) -> &[Value] {
            match self {
                Value::List(items) => items,
                other => panic!("expected a list, got {other:?}"),
            }
        }

        fn num(&self) -> u64 {
            match self {
                Value::Num(n) => *n,
                other => panic!("expected a number, got {other:?}"),
            }
        }

        fn text(&self) -> String {
            match self {
                Value::Str(s) => String::from_utf8_lossy(s).to_ascii_lowercase(),
                other => panic!("expected a string, got {other:?}"),
            }
        }
    }

    /// Parses exactly one value covering all of `bytes`, panicking on any
    /// syntax error (RFC 3501: single spaces between list items, except
    /// that lists may follow each other directly as in `body-type-mpart`
    /// and address lists; quoted strings only with `\"` and `\\` escapes;
    /// literals with their exact length).
    fn parse(bytes: &[u8]) -> Value {
        let mut reader = Reader { s: bytes, pos: 0 };
        let value = reader.value();
        assert_eq!(reader.pos, bytes.len(), "trailing bytes after value");
        value
    }

    struct Reader<'a> {
        s: &'a [u8],
        pos: usize,
    }

    impl Reader<'_> {
        fn next(&mut self) -> u8 {
            let byte = self.s[self.pos];
            self.pos += 1;
            byte
        }

        fn value(&mut self) -> Value {
            match self.s[self.pos] {
                b'(' => self.list(),
                b'"' => self.quoted(),
                b'{' => self.literal(),
                b'N' => {
                    assert_eq!(&self.s[self.pos..self.pos + 3], b"NIL");
                    self.pos += 3;
                    Value::Nil
                }
                b'0'..=b'9' => {
                    let start = self.pos;
                    while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                        self.pos += 1;
                    }
                    let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap();
                    Value::Num(digits.parse().unwrap())
                }
                other => panic!("unexpected byte {other:#x} at {}", self.pos),
            }
        }

        fn list(&mut self) -> Value {
            assert_eq!(self.next(), b'(');
            let mut items: Vec<Value> = Vec::new();
            loop {
                if self.s[self.pos] == b')' {
                    self.pos += 1;
                    return Value::List(items);
                }
                if let Some(last) = items.last() {
                    let adjacent_lists = matches!(last, Value::List(_)) && self.s[self.pos] == b'(';
                    if !adjacent_lists {
                        assert_eq!(self.next(), b' ', "missing space at {}", self.pos);
                    }
                }
                items.push(self.value());
            }
        }

        fn quoted(&mut self) -> Value {
            assert_eq!(self.next(), b'"');
            let mut out = Vec::new();
            loop {
                match self.next() {
                    b'"' => return Value::Str(out),
                    b'\\' => {
                        let escaped = self.next();
                        assert!(escaped == b'"' || escaped == b'\\');
                        out.push(escaped);
                    }
                    byte => {
                        assert!((0x20..0x7f).contains(&byte), "bad quoted byte {byte:#x}");
                        out.push(byte);
                    }
                }
            }
        }

        fn literal(&mut self) -> Value {
            assert_eq!(self.next(), b'{');
            let start = self.pos;
            while self.s[self.pos] != b'}' {
                self.pos += 1;
            }
            let len: usize = std::str::from_utf8(&self.s[start..self.pos])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(&self.s[self.pos..self.pos + 3], b"}\r\n");
            self.pos += 3;
            let bytes = self.s[self.pos..self.pos + len].to_vec();
            assert!(!bytes.contains(&0), "NUL in a literal");
            self.pos += len;
            Value::Str(bytes)
        }
    }

    /// Parenthesis balance outside quoted strings and literals: never
    /// negative, zero at the end.
    fn balanced(bytes: &[u8]) -> bool {
        let (mut depth, mut i) = (0i64, 0usize);
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
                    while bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'{' => {
                    let close = i + bytes[i..].iter().position(|&b| b == b'}').unwrap();
                    let len: usize = std::str::from_utf8(&bytes[i + 1..close])
                        .unwrap()
                        .parse()
                        .unwrap();
                    i = close + 2 + len;
                }
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return false;
            }
            i += 1;
        }
        depth == 0
    }

    // -- Helpers ---------------------------------------------------------------

    fn structure_bytes(raw: &[u8], extensible: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_bodystructure(&mut out, raw, extensible);
        out
    }

    fn structure(raw: &[u8], extensible: bool) -> String {
        String::from_utf8(structure_bytes(raw, extensible)).unwrap()
    }

    fn envelope(raw: &[u8]) -> String {
        let mut out = Vec::new();
        write_envelope(&mut out, raw);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn section(raw: &[u8], part: &[u32], kind: SectionKind) -> Option<Vec<u8>> {
        section_bytes(raw, part, kind).map(Cow::into_owned)
    }

    fn names(names: &[&str]) -> Vec<Vec<u8>> {
        names.iter().map(|name| name.as_bytes().to_vec()).collect()
    }

    /// One single part of a BODY/BODYSTRUCTURE, found by walking the parsed
    /// structure with RFC 3501 part numbers.
    struct Part {
        path: Vec<u32>,
        octets: u64,
        /// For text and message/rfc822 parts.
        lines: Option<u64>,
        message: bool,
    }

    /// The parts of a message whose body structure is `body`, numbered
    /// below `prefix`: the children of a multipart, else the body as part 1.
    fn message_parts(body: &Value, prefix: &[u32], out: &mut Vec<Part>) {
        let items = body.list();
        if matches!(items[0], Value::List(_)) {
            for (i, child) in items
                .iter()
                .take_while(|v| matches!(v, Value::List(_)))
                .enumerate()
            {
                collect_parts(child, &[prefix, &[i as u32 + 1]].concat(), out);
            }
        } else {
            collect_parts(body, &[prefix, &[1]].concat(), out);
        }
    }

    fn collect_parts(body: &Value, path: &[u32], out: &mut Vec<Part>) {
        let items = body.list();
        if matches!(items[0], Value::List(_)) {
            for (i, child) in items
                .iter()
                .take_while(|v| matches!(v, Value::List(_)))
                .enumerate()
            {
                collect_parts(child, &[path, &[i as u32 + 1]].concat(), out);
            }
            return;
        }
        let (kind, subtype) = (items[0].text(), items[1].text());
        let message = kind == "message" && subtype == "rfc822";
        let lines = if kind == "text" {
            Some(items[7].num())
        } else if message {
            Some(items[9].num())
        } else {
            None
        };
        out.push(Part {
            path: path.to_vec(),
            octets: items[6].num(),
            lines,
            message,
        });
        if message {
            assert_eq!(items[7].list().len(), 10, "envelope");
            message_parts(&items[8], path, out);
        }
    }

    fn parts_of(raw: &[u8], extensible: bool) -> Vec<Part> {
        let mut parts = Vec::new();
        message_parts(&parse(&structure_bytes(raw, extensible)), &[], &mut parts);
        parts
    }

    fn check_envelope_syntax(raw: &[u8]) {
        let mut out = Vec::new();
        write_envelope(&mut out, raw);
        let value = parse(&out);
        let fields = value.list();
        assert_eq!(fields.len(), 10);
        for addresses in &fields[2..8] {
            if let Value::List(list) = addresses {
                assert!(!list.is_empty());
                for address in list {
                    assert_eq!(address.list().len(), 4);
                }
            } else {
                assert_eq!(*addresses, Value::Nil);
            }
        }
    }

    /// All the consistency checks one message must pass.
    fn check_message(name: &str, raw: &[u8]) {
        assert_eq!(
            section(raw, &[], SectionKind::Full).as_deref(),
            Some(raw),
            "{name}: BODY[]"
        );
        let header = section(raw, &[], SectionKind::Header).unwrap();
        let text = section(raw, &[], SectionKind::Text).unwrap();
        assert_eq!(
            [header.as_slice(), &text].concat(),
            raw,
            "{name}: HEADER + TEXT"
        );
        assert_eq!(header.len(), header_end(raw), "{name}: header_end");
        assert_eq!(section(raw, &[], SectionKind::Mime), None);

        for extensible in [true, false] {
            let out = structure_bytes(raw, extensible);
            assert!(
                balanced(&out),
                "{name}: unbalanced {}",
                String::from_utf8_lossy(&out)
            );
        }
        let parts = parts_of(raw, true);
        let plain: Vec<(Vec<u32>, u64)> = parts_of(raw, false)
            .into_iter()
            .map(|p| (p.path, p.octets))
            .collect();
        let extended: Vec<(Vec<u32>, u64)> =
            parts.iter().map(|p| (p.path.clone(), p.octets)).collect();
        assert_eq!(plain, extended, "{name}: BODY and BODYSTRUCTURE disagree");

        for part in &parts {
            let body = section(raw, &part.path, SectionKind::Full).unwrap_or_default();
            assert_eq!(
                body.len() as u64,
                part.octets,
                "{name}: octets of {:?}",
                part.path
            );
            if let Some(lines) = part.lines {
                assert_eq!(
                    line_count(&body) as u64,
                    lines,
                    "{name}: lines of {:?}",
                    part.path
                );
            }
            if part.message {
                // HEADER and TEXT frame the part's body; between them at
                // most the line break that Dovecot gives to a delimiter
                // right after an empty line.
                let header = section(raw, &part.path, SectionKind::Header).unwrap();
                let text = section(raw, &part.path, SectionKind::Text).unwrap();
                assert!(
                    body.starts_with(&header) && body.ends_with(&text),
                    "{name}: {:?}",
                    part.path
                );
                let between = body.len().checked_sub(header.len() + text.len());
                let between = between.map(|len| &body[header.len()..header.len() + len]);
                assert!(
                    matches!(between, Some(b"" | b"\n" | b"\r\n")),
                    "{name}: {:?}",
                    part.path
                );
            } else {
                assert_eq!(section(raw, &part.path, SectionKind::Header), None);
            }
        }
        check_envelope_syntax(raw);
    }

    fn corpus_dir() -> PathBuf {
        let dir = std::env::var_os("POSTDESK_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"))
            });
        assert!(
            dir.join("MANIFEST.md").exists(),
            "corpus missing at {}",
            dir.display()
        );
        dir.join("mime")
    }

    fn corpus() -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        files.sort();
        assert!(
            files.len() >= 190,
            "expected the whole corpus, found {}",
            files.len()
        );
        files
            .into_iter()
            .map(|path| {
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&path).unwrap(),
                )
            })
            .collect()
    }

    fn corpus_file(name: &str) -> Vec<u8> {
        std::fs::read(corpus_dir().join(name)).unwrap()
    }

    fn crlf(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    // -- Strings -------------------------------------------------------------------

    #[test]
    fn strings_are_quoted_or_literal() {
        let written = |value: &[u8]| {
            let mut out = Vec::new();
            write_string(&mut out, value);
            out
        };
        assert_eq!(written(b"plain text"), b"\"plain text\"");
        assert_eq!(written(br#"say "hi" \o/"#), br#""say \"hi\" \\o/""#);
        assert_eq!(written(b""), b"\"\"");
        assert_eq!(written("caf\u{e9}".as_bytes()), b"{5}\r\ncaf\xc3\xa9");
        assert_eq!(written(b"a\r\nb"), b"{4}\r\na\r\nb");
        assert_eq!(written(b"tab\there"), b"{8}\r\ntab\there");
        let long = vec![b'x'; 1025];
        assert!(written(&long).starts_with(b"{1025}\r\n"));
        assert_eq!(written(&long[..1024])[0], b'"');

        let mut out = Vec::new();
        write_nstring(&mut out, None);
        out.push(b' ');
        write_nstring(&mut out, Some(b"x"));
        assert_eq!(out, b"NIL \"x\"");

        let mut out = Vec::new();
        write_literal(&mut out, b"ok");
        write_literal(&mut out, b"a\0b");
        assert_eq!(out, b"{2}\r\nok{3}\r\na\x80b");
    }

    #[test]
    fn lines_are_line_feeds() {
        assert_eq!(line_count(b""), 0);
        assert_eq!(line_count(b"no newline"), 0);
        assert_eq!(line_count(b"a\r\nb\nc"), 2);
        assert_eq!(line_count(b"a\r\n\r\n"), 2);
    }

    // -- BODY / BODYSTRUCTURE ---------------------------------------------------------

    #[test]
    fn plain_message_structure() {
        let raw = crlf("From: a@example.org\nSubject: hi\n\nhello\nworld\n");
        assert_eq!(
            structure(&raw, true),
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2 NIL NIL NIL NIL)"#
        );
        assert_eq!(
            structure(&raw, false),
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2)"#
        );

        // Types and values as written; charset appended only when missing.
        let raw = crlf(
            "Mime-Version: 1.0\nContent-Type: TEXT/Plain; format=flowed\n\
             Content-Transfer-Encoding: 8bit\nContent-Language: en\n\nbody",
        );
        assert_eq!(
            structure(&raw, true),
            r#"("TEXT" "Plain" ("format" "flowed" "charset" "us-ascii") NIL NIL "8bit" 4 0 NIL NIL ("en") NIL)"#
        );
    }

    /// The expected strings are what Dovecot 2.3.19 answers for the same
    /// message (the escaped name it sends as a literal, same value).
    #[test]
    fn multipart_with_encapsulated_message_structure() {
        let raw = nested_message();
        assert_eq!(
            structure(&raw, true),
            concat!(
                r#"(("text" "plain" ("charset" "utf-8") "<note@example.org>" "Cover note" "7bit" 26 0 NIL NIL NIL NIL)"#,
                r#"("message" "rfc822" NIL NIL NIL "7bit" 381 ("Mon, 2 Jun 2025 09:00:00 +0000" "report" "#,
                r#"(("Carol, C." NIL "carol" "example.com")) (("Carol, C." NIL "carol" "example.com")) "#,
                r#"(("Carol, C." NIL "carol" "example.com")) NIL NIL NIL NIL NIL) "#,
                r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 1 NIL NIL NIL NIL)"#,
                r#"("text" "html" ("charset" "us-ascii") NIL NIL "quoted-printable" 21 0 NIL NIL ("en" "de") NIL) "#,
                r#""alternative" ("boundary" "inner") NIL NIL NIL) 18 NIL ("inline" ("filename" "report.eml")) NIL NIL)"#,
                r#"("application" "pdf" ("name" "a \"b\".pdf") NIL NIL "base64" 12 "Q2hlY2sgSW50ZWdyaXR5IQ==" NIL NIL "#,
                r#""http://example.org/a.pdf") "mixed" ("boundary" "outer") NIL NIL NIL)"#,
            )
        );
        assert_eq!(
            structure(&raw, false),
            concat!(
                r#"(("text" "plain" ("charset" "utf-8") "<note@example.org>" "Cover note" "7bit" 26 0)"#,
                r#"("message" "rfc822" NIL NIL NIL "7bit" 381 ("Mon, 2 Jun 2025 09:00:00 +0000" "report" "#,
                r#"(("Carol, C." NIL "carol" "example.com")) (("Carol, C." NIL "carol" "example.com")) "#,
                r#"(("Carol, C." NIL "carol" "example.com")) NIL NIL NIL NIL NIL) "#,
                r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 1)"#,
                r#"("text" "html" ("charset" "us-ascii") NIL NIL "quoted-printable" 21 0) "alternative") 18)"#,
                r#"("application" "pdf" ("name" "a \"b\".pdf") NIL NIL "base64" 12) "mixed")"#,
            )
        );
        check_message("nested", &raw);
    }

    fn nested_message() -> Vec<u8> {
        crlf(concat!(
            "From: Alice Example <alice@example.org>\n",
            "To: Bob <bob@example.net>\n",
            "Subject: Fwd: report\n",
            "Date: Tue, 3 Jun 2025 10:00:00 +0200\n",
            "Message-ID: <outer@example.org>\n",
            "MIME-Version: 1.0\n",
            "Content-Type: multipart/mixed; boundary=\"outer\"\n",
            "\n",
            "This is a multi-part message in MIME format.\n",
            "--outer\n",
            "Content-Type: text/plain; charset=utf-8\n",
            "Content-ID: <note@example.org>\n",
            "Content-Description: Cover note\n",
            "\n",
            "See the forwarded message.\n",
            "--outer\n",
            "Content-Type: message/rfc822\n",
            "Content-Disposition: inline; filename=\"report.eml\"\n",
            "\n",
            "From: \"Carol, C.\" <carol@example.com>\n",
            "Subject: report\n",
            "Date: Mon, 2 Jun 2025 09:00:00 +0000\n",
            "MIME-Version: 1.0\n",
            "Content-Type: multipart/alternative; boundary=inner\n",
            "\n",
            "--inner\n",
            "Content-Type: text/plain\n",
            "\n",
            "Numbers\ngo up.\n",
            "--inner\n",
            "Content-Type: text/html; charset=us-ascii\n",
            "Content-Transfer-Encoding: quoted-printable\n",
            "Content-Language: en, de\n",
            "\n",
            "<p>Numbers go up.</p>\n",
            "--inner--\n",
            "--outer\n",
            "Content-Type: application/pdf; name=\"a \\\"b\\\".pdf\"\n",
            "Content-Transfer-Encoding: base64\n",
            "Content-Location: http://example.org/a.pdf\n",
            "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n",
            "\n",
            "JVBERi0xLjQK\n",
            "--outer--\n",
            "epilogue\n",
        ))
    }

    #[test]
    fn multipart_without_parts_gets_an_empty_child() {
        let raw = crlf("Content-Type: multipart/mixed; boundary=\"foo\"\n\n");
        assert_eq!(
            structure(&raw, true),
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "foo") NIL NIL NIL)"#
        );
        let raw = crlf("Content-Type: multipart/mixed\n\n--x\n\nnot a part\n");
        assert_eq!(
            structure(&raw, false),
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")"#
        );
        assert_eq!(section(&raw, &[1], SectionKind::Full), None);
    }

    #[test]
    fn mime_fields_of_a_message_need_mime() {
        // Without MIME-Version or Content-Type, Content-* fields of a
        // message do not count (Dovecot); inside a multipart they do.
        let raw = crlf("Content-Transfer-Encoding: base64\nContent-ID: <x>\n\nbody\n");
        assert_eq!(
            structure(&raw, false),
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)"#
        );
        let raw =
            crlf("MIME-Version: 1.0\nContent-Transfer-Encoding: base64\nContent-ID: <x>\n\nbody\n");
        assert_eq!(
            structure(&raw, false),
            r#"("text" "plain" ("charset" "us-ascii") "<x>" NIL "base64" 6 1)"#
        );
        // A transfer encoding that is not one token is ignored.
        let raw = crlf("MIME-Version: 1.0\nContent-Transfer-Encoding: 8 bit\n\nbody\n");
        assert_eq!(
            structure(&raw, false),
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)"#
        );
    }

    #[test]
    fn digest_parts_default_to_message_rfc822() {
        let raw = corpus_file("mailparser-dovecot-thirdparty-007.eml");
        let parts = parts_of(&raw, true);
        let messages: Vec<&[u32]> = parts
            .iter()
            .filter(|p| p.message)
            .map(|p| p.path.as_slice())
            .collect();
        assert_eq!(messages, [&[1][..], &[2], &[3]]);
        // Part 3 encapsulates a multipart: 3.1 and 3.2 are its children.
        let body = section(&raw, &[3, 2], SectionKind::Full).unwrap();
        assert_eq!(body, b"Foobar");
        check_message("digest", &raw);
    }

    #[test]
    fn message_rfc822_is_parsed_whatever_its_encoding() {
        let raw = crlf(concat!(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\n",
            "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n",
            "U3ViamVjdDogaGkKCmJvZHkK\n--b--\n",
        ));
        let parts = parts_of(&raw, true);
        assert!(parts[0].message);
        check_message("base64 message", &raw);
    }

    #[test]
    fn nesting_is_limited() {
        let depth = MAX_DEPTH + 50;
        let mut raw = Vec::new();
        for level in 0..depth {
            raw.extend_from_slice(
                format!(
                    "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
                )
                .as_bytes(),
            );
        }
        raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\ndeep\r\n");
        for level in (0..depth).rev() {
            raw.extend_from_slice(format!("--b{level}--\r\n").as_bytes());
        }
        let out = structure(&raw, true);
        assert!(out.contains(r#""application" "octet-stream""#));
        assert!(!out.contains("deep"));
        check_message("deep multipart", &raw);

        let mut raw = Vec::new();
        for _ in 0..depth {
            raw.extend_from_slice(b"Subject: again\r\nContent-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: last\r\n\r\nbody\r\n");
        check_message("deep message/rfc822", &raw);
    }

    #[test]
    fn part_count_is_limited() {
        let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for _ in 0..MAX_PARTS + 100 {
            raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        raw.extend_from_slice(b"--b--\r\n");
        let parts = parts_of(&raw, false);
        assert_eq!(parts.len(), MAX_PARTS - 1);
        // Past the limit the rest is body of the last part.
        let last = parts.last().unwrap();
        assert!(last.octets > 100);
        let body = section(&raw, &last.path, SectionKind::Full).unwrap();
        assert_eq!(body.len() as u64, last.octets);
        assert!(body.ends_with(b"--b--\r\n"));
    }

    #[test]
    fn delimiters_follow_dovecot() {
        // The line break before a delimiter belongs to it; an empty line
        // right before a delimiter is that line break, not the end of the
        // header (Dovecot 2.3 answers the same).
        let raw = crlf(concat!(
            "Content-Type: multipart/mixed; boundary=\"b\"\n\n",
            "--b\nContent-Type: text/plain\n\n--b\nX-A: 1\n\nbody\n--b\n",
            "Content-Type: message/rfc822\n\nSubject: x\n\n--b--\n",
        ));
        assert_eq!(
            section(&raw, &[1], SectionKind::Mime).unwrap(),
            b"Content-Type: text/plain\r\n"
        );
        assert_eq!(section(&raw, &[1], SectionKind::Full).unwrap(), b"");
        assert_eq!(section(&raw, &[2], SectionKind::Full).unwrap(), b"body");
        assert_eq!(
            section(&raw, &[2], SectionKind::Mime).unwrap(),
            b"X-A: 1\r\n\r\n"
        );
        assert_eq!(
            section(&raw, &[3], SectionKind::Full).unwrap(),
            b"Subject: x\r\n\r\n"
        );
        assert_eq!(
            section(&raw, &[3], SectionKind::Header).unwrap(),
            b"Subject: x\r\n"
        );
        check_message("delimiters", &raw);

        // Delimiters are recognized at line starts only, by prefix, the
        // longest boundary winning; an outer delimiter closes inner parts.
        let raw = crlf(concat!(
            "Content-Type: multipart/mixed; boundary=a\n\n",
            "--a\nContent-Type: multipart/mixed; boundary=ab\n\n",
            "--ab\n\ninner text --ab not here\n",
            "--a\n\nsecond\n--a--\n",
        ));
        assert_eq!(
            section(&raw, &[1, 1], SectionKind::Full).unwrap(),
            b"inner text --ab not here"
        );
        assert_eq!(section(&raw, &[2], SectionKind::Full).unwrap(), b"second");
        check_message("prefix boundaries", &raw);
    }

    // -- Sections ------------------------------------------------------------------------

    #[test]
    fn part_numbers() {
        let raw = nested_message();
        let full = |part: &[u32]| {
            section(&raw, part, SectionKind::Full).map(|b| String::from_utf8(b).unwrap())
        };
        let of =
            |part: &[u32], kind| section(&raw, part, kind).map(|b| String::from_utf8(b).unwrap());
        assert_eq!(full(&[1]).unwrap(), "See the forwarded message.");
        assert_eq!(full(&[2, 1]).unwrap(), "Numbers\r\ngo up.");
        assert_eq!(full(&[2, 2]).unwrap(), "<p>Numbers go up.</p>");
        assert_eq!(full(&[3]).unwrap(), "JVBERi0xLjQK");
        assert!(full(&[2]).unwrap().starts_with("From: \"Carol, C.\""));
        assert!(full(&[2]).unwrap().ends_with("--inner--\r\n"));
        assert_eq!(
            of(&[2], SectionKind::Header).unwrap(),
            "From: \"Carol, C.\" <carol@example.com>\r\nSubject: report\r\nDate: Mon, 2 Jun 2025 09:00:00 +0000\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        );
        assert!(
            of(&[2], SectionKind::Text)
                .unwrap()
                .starts_with("--inner\r\n")
        );
        assert_eq!(
            of(&[2], SectionKind::Mime).unwrap(),
            "Content-Type: message/rfc822\r\nContent-Disposition: inline; filename=\"report.eml\"\r\n\r\n"
        );
        assert_eq!(
            of(&[2, 1], SectionKind::Mime).unwrap(),
            "Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            of(&[2], SectionKind::HeaderFields(names(&["subject"]))).unwrap(),
            "Subject: report\r\n\r\n"
        );
        // Parts that do not exist, and kinds that do not apply.
        for part in [&[0][..], &[4], &[1, 2], &[2, 3], &[2, 1, 2], &[3, 1, 1]] {
            assert_eq!(full(part), None, "{part:?}");
        }
        assert_eq!(of(&[1], SectionKind::Header), None);
        assert_eq!(of(&[1], SectionKind::Text), None);
        assert_eq!(of(&[3], SectionKind::HeaderFields(names(&["to"]))), None);
        // As in Dovecot, a leaf also answers to a trailing ".1".
        assert_eq!(full(&[1, 1]), full(&[1]));
        assert_eq!(full(&[2, 1, 1]), full(&[2, 1]));
    }

    #[test]
    fn single_part_numbering() {
        let raw = crlf("Subject: one\n\nonly body\n");
        assert_eq!(
            section(&raw, &[1], SectionKind::Full).unwrap(),
            b"only body\r\n"
        );
        assert_eq!(
            section(&raw, &[1], SectionKind::Mime).unwrap(),
            b"Subject: one\r\n\r\n"
        );
        assert_eq!(section(&raw, &[2], SectionKind::Full), None);

        // A top-level message/rfc822: part 1 is the encapsulated message,
        // 1.1 its body.
        let raw = crlf("Content-Type: message/rfc822\n\nSubject: inner\n\ninner body\n");
        assert_eq!(
            section(&raw, &[1], SectionKind::Full).unwrap(),
            b"Subject: inner\r\n\r\ninner body\r\n"
        );
        assert_eq!(
            section(&raw, &[1], SectionKind::Header).unwrap(),
            b"Subject: inner\r\n\r\n"
        );
        assert_eq!(
            section(&raw, &[1, 1], SectionKind::Full).unwrap(),
            b"inner body\r\n"
        );
        check_message("top-level message/rfc822", &raw);
    }

    #[test]
    fn encapsulated_message_numbering_in_the_corpus() {
        // message/rfc822 (part 2) holding alternative(html, alternative(
        // alternative(plain, plain), plain)).
        let raw = corpus_file("mailparser-dovecot-thirdparty-008.eml");
        let full = |part: &[u32]| section(&raw, part, SectionKind::Full).unwrap();
        assert_eq!(full(&[2, 1]), b"<p>Hello world</p>\n");
        assert_eq!(full(&[2, 2, 1, 1]), b"sub3 text");
        assert_eq!(full(&[2, 2, 1, 2]), b"sub3 text2");
        assert_eq!(full(&[2, 2, 2]), b"sub2 text2");
        assert_eq!(section(&raw, &[2, 2, 3], SectionKind::Full), None);
        assert_eq!(full(&[3]), b"Another part");
        let header = section(&raw, &[2], SectionKind::Header).unwrap();
        assert!(header.starts_with(b"From: sub@domain.org"));
        check_message("thirdparty-008", &raw);
    }

    #[test]
    fn header_fields_are_byte_exact() {
        let raw = crlf(concat!(
            "Received: from a by b;\n Tue, 3 Jun 2025 10:00:00 +0200\n",
            "Subject: a long\n\tfolded subject\n",
            "X-Other: 1\n",
            "from: x@example.org\n",
            "\nbody\n",
        ));
        let fields = |kind| section(&raw, &[], kind).unwrap();
        assert_eq!(
            fields(SectionKind::HeaderFields(names(&["SUBJECT", "FROM"]))),
            b"Subject: a long\r\n\tfolded subject\r\nfrom: x@example.org\r\n\r\n"
        );
        assert_eq!(
            fields(SectionKind::HeaderFieldsNot(names(&["subject", "from"]))),
            b"Received: from a by b;\r\n Tue, 3 Jun 2025 10:00:00 +0200\r\nX-Other: 1\r\n\r\n"
        );
        assert_eq!(
            fields(SectionKind::HeaderFields(names(&["X-None"]))),
            b"\r\n"
        );

        // Line endings are kept as written; a last field without line
        // ending is completed.
        let raw = b"Subject: lf\n only\nTo: t@example.org".to_vec();
        assert_eq!(
            section(
                &raw,
                &[],
                SectionKind::HeaderFields(names(&["subject", "to"]))
            )
            .unwrap(),
            b"Subject: lf\n only\nTo: t@example.org\r\n\r\n"
        );
        // A line without colon is a nameless field: only in .NOT.
        let raw = crlf("From mbox line\nSubject: s\n\n");
        assert_eq!(
            section(&raw, &[], SectionKind::HeaderFieldsNot(names(&["subject"]))).unwrap(),
            b"From mbox line\r\n\r\n"
        );
    }

    #[test]
    fn corpus_folded_subject_and_from() {
        // LF line endings and a Subject folded over three lines.
        let raw = corpus_file("cpython-msg_27.eml");
        let digits = "12345678911234567892123456789312345678941234567895123456789612345678971234567898\
                      112345678911234567892123456789112345678911234567892123456789";
        assert_eq!(
            String::from_utf8(
                section(
                    &raw,
                    &[],
                    SectionKind::HeaderFields(names(&["SUBJECT", "FROM"]))
                )
                .unwrap()
            )
            .unwrap(),
            format!(
                "Subject: bug demonstration\n\t{digits}\n\tmore text\nFrom: aperson@dom.ain (Anne P. Erson)\n\r\n"
            )
        );
        // The envelope has it unfolded (and the comment as the name).
        assert!(envelope(&raw).starts_with(&format!(
            "(\"Tue, 4 Jun 2002 21:46:59 -0400\" \"bug demonstration {digits} more text\" \
             ((\"Anne P. Erson\" NIL \"aperson\" \"dom.ain\"))"
        )));
    }

    // -- ENVELOPE ------------------------------------------------------------------------

    /// Dovecot 2.3 gives the same (it sends a few of these strings as literals).
    #[test]
    fn envelope_fields() {
        let raw = crlf(concat!(
            "Date: Tue, 3 Jun 2025 10:00:00 +0200\n",
            "Subject: =?utf-8?q?R=C3=A9sum=C3=A9?=\n\tsecond  line\n",
            "From: \"Doe, \\\"JD\\\" John\" <john.doe@example.org>\n",
            "From: jane@example.org (Jane Roe)\n",
            "To: undisclosed-recipients:;\n",
            "Cc: Team: ann@example.org, =?utf-8?b?QsO2Yg==?= <bob@example.org>;, <@relay.example:carl@example.com>\n",
            "Bcc: postmaster\n",
            "In-Reply-To: <parent@example.org>\n",
            "Message-ID: <child@example.org>\n",
            "\nbody\n",
        ));
        let from = r#"(("Doe, \"JD\" John" NIL "john.doe" "example.org")("Jane Roe" NIL "jane" "example.org"))"#;
        assert_eq!(
            envelope(&raw),
            [
                r#"("Tue, 3 Jun 2025 10:00:00 +0200" "=?utf-8?q?R=C3=A9sum=C3=A9?= second line" "#,
                &[from, from, from].join(" "),
                r#" ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))"#,
                r#" ((NIL NIL "Team" NIL)(NIL NIL "ann" "example.org")("=?utf-8?b?QsO2Yg==?=" NIL "bob" "example.org")"#,
                r#"(NIL NIL NIL NIL)(NIL "@relay.example" "carl" "example.com"))"#,
                r#" ((NIL NIL "postmaster" "MISSING_DOMAIN")) "<parent@example.org>" "<child@example.org>")"#,
            ]
            .concat()
        );
    }

    #[test]
    fn envelope_defaults_and_raw_values() {
        let raw = crlf(concat!(
            "From: Alice <alice@example.org>\n",
            "Sender: Bob <bob@example.org>\n",
            "Subject: caf\u{e9}\n",
            "To: a@example.org b@example.org, \"quoted local\"@example.org\n",
            "\n",
        ));
        assert_eq!(
            envelope(&raw),
            concat!(
                "(NIL {5}\r\ncaf\u{e9} ((\"Alice\" NIL \"alice\" \"example.org\")) ",
                "((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ",
                "((NIL NIL \"a\" \"example.org\")(NIL NIL \"\\\"quoted local\\\"\" \"example.org\")) NIL NIL NIL NIL)"
            )
        );
        assert_eq!(envelope(b""), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        assert_eq!(
            envelope(b"\x00\xff garbage"),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }

    // -- Malformed input ---------------------------------------------------------------

    #[test]
    fn unparseable_input_gets_a_valid_structure() {
        let empty = r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)"#;
        assert_eq!(structure(b"", true), empty);
        assert_eq!(header_end(b""), 0);
        // No empty line: all header, as in Dovecot.
        let garbage = b"\x00\x01binary\xff\xfe garbage without line breaks";
        assert_eq!(structure(garbage, true), empty);
        assert_eq!(header_end(garbage), garbage.len());
        // An empty header: everything is text.
        let raw = b"\r\njust text\r\n";
        assert_eq!(
            structure(raw, true),
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 1 NIL NIL NIL NIL)"#
        );
        assert_eq!(
            section(raw, &[1], SectionKind::Full).unwrap(),
            b"just text\r\n"
        );

        let samples: [&[u8]; 12] = [
            b"",
            b"\n",
            b"\r\n\r\n",
            b"--",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
            b"Content-Type: multipart/mixed; boundary=\"unterminated\r\n\r\n--unterminated\r\n",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n--b--",
            b"Content-Type: message/rfc822\r\n\r\n",
            b"Content-Type: (((\r\nFrom: <<<@@@>>> ,,, \"\\\r\nTo: :;:;:; (\r\n\r\n",
            b"From: =?utf-8?b?AAAA?= <\x00@\xff>\r\nSubject: \x00\r\n\r\n",
            b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n--d\r\n--d--\r\n",
        ];
        for (i, raw) in samples.iter().enumerate() {
            check_message(&format!("sample {i}"), raw);
        }
    }

    /// Pseudo-random bytes biased towards MIME syntax, and every prefix of
    /// small corpus messages: nothing panics, every structure parses.
    #[test]
    fn malformed_input_never_panics() {
        let alphabet: &[&[u8]] = &[
            b"\r\n",
            b"\n",
            b"--b",
            b"--b--",
            b"--",
            b"Content-Type: multipart/mixed; boundary=b\r\n",
            b"Content-Type: message/rfc822\r\n",
            b"Content-Type: multipart/digest; boundary=\"b\"\r\n",
            b"From: ",
            b"<a@b>",
            b"\"",
            b"(",
            b")",
            b":",
            b";",
            b",",
            b" ",
            b"\t",
            b"x",
            b"\x00",
            b"\xff",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = next() % 60;
            let raw: Vec<u8> = (0..len)
                .flat_map(|_| alphabet[(next() % alphabet.len() as u64) as usize].to_vec())
                .collect();
            check_message("random", &raw);
        }
        for (name, raw) in corpus().iter().filter(|(_, raw)| raw.len() < 8192) {
            for cut in (0..raw.len()).step_by(raw.len() / 16 + 1) {
                check_message(name, &raw[..cut]);
            }
        }
    }

    // -- The corpus ----------------------------------------------------------------------

    #[test]
    fn every_corpus_message_is_consistent() {
        let mut total_parts = 0;
        for (name, raw) in corpus() {
            check_message(&name, &raw);
            total_parts += parts_of(&raw, true).len();
        }
        assert!(
            total_parts > 450,
            "only {total_parts} parts: MIME parsing is broken"
        );
    }
}
