//! The header block of a message or MIME part (RFC 5322 §2.2): where it
//! ends, its fields as written, and their values unfolded.
//!
//! Fields are kept byte-exact (folding and line endings as the sender wrote
//! them), because IMAP serves them that way (`BODY[HEADER.FIELDS]`) and
//! submission rewrites some of them while passing the others through.
//! Both LF and CRLF line endings are accepted: stored mail has either.

use super::slice;

/// Offset just after the empty line that ends the header at the start of
/// `raw` (`raw.len()` when there is none, as in Dovecot: then everything is
/// header). This is the one split of header and body that every layer
/// uses: the stored `header_len`, IMAP's `RFC822.HEADER` / `BODY[HEADER]` /
/// `BODY[TEXT]`, and submission's header rewrite.
pub fn header_end(raw: &[u8]) -> usize {
    terminated_header_len(raw).unwrap_or(raw.len())
}

/// The header's length including the empty line ("\n" or "\r\n") that
/// ends it, when `bytes` hold that line; None when they end first (a
/// message without body, or a read that stopped too early, which IMAP
/// uses to tell that a stored prefix was too short).
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
pub(super) fn blank_line_len(rest: &[u8]) -> Option<usize> {
    match rest {
        [b'\n', ..] => Some(1),
        [b'\r', b'\n', ..] => Some(2),
        _ => None,
    }
}

/// Offset just after the line starting at `pos` (after its LF, or the end).
pub(super) fn line_end(bytes: &[u8], pos: usize) -> usize {
    bytes
        .get(pos..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |lf| pos + lf + 1)
}

/// One header field as written in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name before the colon, without surrounding whitespace; empty for
    /// a line without colon, which Dovecot keeps as a nameless field (it
    /// then shows in HEADER.FIELDS.NOT, and never matches a name).
    pub name: &'a [u8],
    /// The whole field: first line, folded continuation lines, line ending
    /// (none for a last field cut off at the end of the input).
    pub raw: &'a [u8],
    /// Everything after the colon, still folded, without the final line ending.
    pub value: &'a [u8],
}

impl<'a> Field<'a> {
    /// Splits a raw field whose first line is `first_len` bytes long. The
    /// colon is looked for in the first line only: a colon on a
    /// continuation line does not make a name out of a line without one.
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

    /// Whether the field has this name (names are case-insensitive).
    pub fn is(&self, name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Iterator over the fields of a header block; stops at the empty line
/// that ends it. A line starting with whitespace continues the field
/// before it; one at the very start of the block is a field of its own.
#[derive(Clone, Debug)]
pub struct HeaderFields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderFields<'a> {
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

/// The fields of the header block at the start of `header` (which may
/// run on into the body: iteration stops at the empty line).
pub fn fields(header: &[u8]) -> HeaderFields<'_> {
    HeaderFields { rest: header }
}

/// The (still folded) values of every field called `name`, in order.
pub fn field_values<'a>(header: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields(header)
        .filter(move |field| field.is(name))
        .map(|field| field.value)
}

/// Unfolds a raw value (RFC 5322 §2.2.3: the line breaks go, the whitespace
/// after them stays) and trims it. NUL, which RFC 5322 does not allow in a
/// header, becomes 0x80 as in Dovecot's parser, so that no value handed
/// on carries it (an IMAP string cannot) and every reader of the value
/// (tokenizers included) sees the same byte.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut unfolded: Vec<u8> = value
        .iter()
        .filter(|&&b| b != b'\r' && b != b'\n')
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    let trimmed = unfolded.trim_ascii();
    if trimmed.len() != unfolded.len() {
        let start = unfolded.len() - unfolded.trim_ascii_start().len();
        let len = trimmed.len();
        unfolded.copy_within(start..start + len, 0);
        unfolded.truncate(len);
    }
    unfolded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_ends_at_the_first_empty_line() {
        assert_eq!(header_end(b""), 0);
        assert_eq!(header_end(b"A: 1\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: 1\n\nbody\n\nmore"), 6);
        // An empty header: the body starts right after the empty line.
        assert_eq!(header_end(b"\r\njust text"), 2);
        // No empty line: all header.
        assert_eq!(header_end(b"A: 1\r\nB: 2"), 10);
        assert_eq!(terminated_header_len(b"A: 1\r\nB: 2"), None);
        assert_eq!(terminated_header_len(b"A: 1\r\n\r\n"), Some(8));
        // A line of whitespace is not empty (it continues a field).
        assert_eq!(header_end(b"A: 1\r\n \r\nB: 2\r\n\r\n"), 17);
        // A bare CR is not a line ending.
        assert_eq!(header_end(b"A: 1\r\r\n\r\n"), 9);
    }

    #[test]
    fn fields_keep_their_bytes() {
        let header = b"Subject: a\r\n folded\r\nfrom : x@example.org\nNo colon\r\n: nameless\r\n\r\nBody: no";
        let fields: Vec<Field<'_>> = fields(header).collect();
        let names: Vec<&[u8]> = fields.iter().map(|f| f.name).collect();
        assert_eq!(names, [&b"Subject"[..], b"from", b"", b""]);
        assert_eq!(fields[0].raw, b"Subject: a\r\n folded\r\n");
        assert_eq!(fields[0].value, b" a\r\n folded");
        assert_eq!(fields[1].value, b" x@example.org");
        assert!(fields[1].is(b"FROM"));
        assert_eq!(fields[2].value, b"No colon");
        assert_eq!(fields[3].value, b" nameless");

        // A colon on a continuation line does not name a field.
        let field = super::fields(b"X\r\n y: z\r\n").next();
        assert_eq!(field.map(|f| f.name), Some(&b""[..]));
        // A leading continuation line is a field of its own; the last
        // field may lack its line ending.
        let raws: Vec<&[u8]> = super::fields(b" lead\r\nA: 1\r\nB: 2")
            .map(|f| f.raw)
            .collect();
        assert_eq!(raws, [&b" lead\r\n"[..], b"A: 1\r\n", b"B: 2"]);
    }

    #[test]
    fn values_of_one_name_in_order() {
        let header = b"To: a\r\nCc: b\r\nTO: c\r\n\r\nTo: body";
        let values: Vec<&[u8]> = field_values(header, b"to").collect();
        assert_eq!(values, [&b" a"[..], b" c"]);
    }

    #[test]
    fn unfolding_keeps_whitespace_and_drops_line_breaks() {
        assert_eq!(
            unfold(b" a long\r\n\tfolded  value \r\n "),
            b"a long\tfolded  value"
        );
        assert_eq!(unfold(b"lf\n only"), b"lf only");
        assert_eq!(unfold(b"nul\x00byte"), b"nul\x80byte");
        assert_eq!(unfold(b" \r\n "), b"");
        assert_eq!(unfold(b""), b"");
    }
}
