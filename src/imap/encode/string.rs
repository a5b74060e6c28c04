//! IMAP strings (RFC 3501 §4.3): every value a response carries, whatever
//! its bytes, goes out as a quoted string or a literal chosen here, so
//! nothing a message contains can break the syntax.

use std::io::Write;

/// Longest value sent as a quoted string; anything longer goes as a literal
/// so that response lines stay reasonably short.
const MAX_QUOTED_LEN: usize = 1024;

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
    write_number_prefix(out, b"{", value.len(), b"}\r\n");
    if value.contains(&0) {
        out.extend(value.iter().map(|&b| if b == 0 { 0x80 } else { b }));
    } else {
        out.extend_from_slice(value);
    }
}

/// Appends `before`, the decimal number and `after` without a temporary
/// string (this runs for every part of every message of a first sync).
pub(super) fn write_number_prefix(out: &mut Vec<u8>, before: &[u8], number: usize, after: &[u8]) {
    out.extend_from_slice(before);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{number}");
    out.extend_from_slice(after);
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
