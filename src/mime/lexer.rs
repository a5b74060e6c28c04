//! The lexical pieces RFC 5322 addresses and RFC 2045 MIME fields share:
//! quoted strings, (nested) comments and their delimiters. Each scanner
//! returns an offset that never passes the end of the input, and treats an
//! unterminated construct as running to the end (real mail has them).

/// Offset after the quoted string starting at `pos` (its closing quote, or
/// the end when unterminated).
pub(super) fn skip_quoted(s: &[u8], pos: usize) -> usize {
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
pub(super) fn skip_comment(s: &[u8], pos: usize) -> usize {
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

/// `token` without its opening and closing delimiter (either may be
/// missing in unterminated input).
pub(super) fn strip_delims(token: &[u8], open: u8, close: u8) -> &[u8] {
    let inner = token.strip_prefix(&[open]).unwrap_or(token);
    inner.strip_suffix(&[close]).unwrap_or(inner)
}

/// The content of a quoted string: quotes removed, quoted-pairs resolved.
pub(super) fn unquote(quoted: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_and_comments_end_where_they_close() {
        assert_eq!(skip_quoted(br#""a\"b" c"#, 0), 6);
        assert_eq!(skip_quoted(br#""unterminated"#, 0), 13);
        assert_eq!(skip_quoted(br#""ends in \"#, 0), 10);
        assert_eq!(skip_comment(b"(a (nested) b) c", 0), 14);
        assert_eq!(skip_comment(b"(a \\) b) c", 0), 8);
        assert_eq!(skip_comment(b"(((", 0), 3);
    }

    #[test]
    fn unquoting_resolves_quoted_pairs() {
        assert_eq!(unquote(br#""say \"hi\" \\o/""#), br#"say "hi" \o/"#);
        assert_eq!(unquote(br#""unterminated"#), b"unterminated");
        assert_eq!(unquote(b"\"\""), b"");
        assert_eq!(strip_delims(b"<a@b>", b'<', b'>'), b"a@b");
        assert_eq!(strip_delims(b"<a@b", b'<', b'>'), b"a@b");
    }
}
