//! Writing responses: the small pieces of IMAP syntax (RFC 3501 §9) that
//! every command needs. Strings go through [`encode::write_string`], which
//! picks a quoted string or a literal, so nothing a message contains can
//! break the syntax.

use super::encode;
use chrono::{DateTime, Utc};

/// An atom when the value is one (RFC 3501 ATOM-CHAR), else a string.
pub fn write_astring(out: &mut Vec<u8>, value: &[u8]) {
    let atom = !value.is_empty()
        && !value.eq_ignore_ascii_case(b"NIL")
        && value.iter().all(|&b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        });
    if atom {
        out.extend_from_slice(value);
    } else {
        encode::write_string(out, value);
    }
}

/// `(\Seen \Flagged tag)` from stored flags, with session-only extras.
pub fn write_flags(out: &mut Vec<u8>, stored: &str, extra: &[&str]) {
    out.push(b'(');
    let mut first = true;
    for flag in stored
        .split(' ')
        .filter(|f| !f.is_empty())
        .chain(extra.iter().copied())
    {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(flag.as_bytes());
    }
    out.push(b')');
}

/// RFC 3501 date-time: `"23-Nov-2026 09:05:00 +0000"`.
pub fn write_internal_date(out: &mut Vec<u8>, at: DateTime<Utc>) {
    out.extend_from_slice(
        at.format("\"%d-%b-%Y %H:%M:%S +0000\"")
            .to_string()
            .as_bytes(),
    );
}

/// A sequence set of UIDs in compact form (`1:3,7`), for COPYUID and APPENDUID.
pub fn uid_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn astrings_are_atoms_only_when_safe() {
        let mut out = Vec::new();
        write_astring(&mut out, b"INBOX");
        out.push(b' ');
        write_astring(&mut out, b"Queues/Billing support");
        out.push(b' ');
        write_astring(&mut out, b"nil");
        assert_eq!(out, b"INBOX \"Queues/Billing support\" \"nil\"");
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn flags_join_stored_and_session_flags() {
        let mut out = Vec::new();
        write_flags(&mut out, "\\Seen vpn", &["\\Deleted"]);
        assert_eq!(out, b"(\\Seen vpn \\Deleted)");
        let mut out = Vec::new();
        write_flags(&mut out, "", &[]);
        assert_eq!(out, b"()");
    }
}
