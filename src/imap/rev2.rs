//! What changes for a session that sent `ENABLE IMAP4rev2` (RFC 9051):
//! mailbox names are UTF-8 on the wire (§5.1), quoted strings may hold
//! UTF-8. Names stay stored as IMAP4rev1 clients write them (modified
//! UTF-7), so both kinds of session share one set of mailboxes; this module
//! translates at the edge.

use super::encode;
use crate::domain::mailbox_name;
use std::borrow::Cow;

/// A stored mailbox name as this session shows it: UTF-8 for IMAP4rev2,
/// as stored (modified UTF-7) otherwise.
pub fn wire_name(rev2: bool, stored: &str) -> Cow<'_, str> {
    if !rev2 {
        return Cow::Borrowed(stored);
    }
    match mailbox_name::decode(stored) {
        Some(decoded) if decoded != stored => Cow::Owned(decoded),
        _ => Cow::Borrowed(stored),
    }
}

/// A mailbox name from the client as it is stored: an IMAP4rev2 client's
/// UTF-8 name in modified UTF-7 (where `&` stands for itself).
pub fn stored_name(rev2: bool, wire: &str) -> String {
    if rev2 {
        mailbox_name::encode(wire)
    } else {
        wire.to_string()
    }
}

/// Why an IMAP4rev2 client may not create a name: RFC 9051 §5.1 asks for
/// Net-Unicode (RFC 5198): UTF-8, no control characters, NFC.
pub fn check_new_name(raw: &[u8]) -> Result<&str, &'static str> {
    let name = std::str::from_utf8(raw).map_err(|_| "mailbox names are UTF-8 (RFC 9051 5.1)")?;
    if name.chars().any(char::is_control) {
        return Err("a mailbox name has no control characters (RFC 5198)");
    }
    if !unicode_normalization::is_nfc(name) {
        return Err("a mailbox name is in Unicode Normalization Form C (RFC 5198)");
    }
    Ok(name)
}

/// Writes a stored mailbox name as this session shows it, always as a
/// string (quoted, or a literal), as Dovecot does, so clients never have to
/// guess about atoms. For IMAP4rev2 a quoted string may carry UTF-8
/// (RFC 9051 `QUOTED-CHAR`), so a name is quoted unless it holds what no
/// quoted string can.
pub fn write_mailbox(out: &mut Vec<u8>, rev2: bool, stored: &str) {
    let name = wire_name(rev2, stored);
    let quotable =
        rev2 && !name.is_ascii() && name.len() <= 1024 && !name.chars().any(|c| c.is_control());
    if !quotable {
        encode::write_string(out, name.as_bytes());
        return;
    }
    out.push(b'"');
    for &byte in name.as_bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

/// The end of the literal announced at `pos` (`{n}` or `{n+}`, CRLF, n
/// bytes), if one is.
fn literal_end(message: &[u8], pos: usize) -> Option<usize> {
    let close = pos + message.get(pos..)?.iter().position(|b| *b == b'}')?;
    let spec = std::str::from_utf8(&message[pos + 1..close]).ok()?;
    let length: usize = spec.trim_end_matches(['+', '-']).parse().ok()?;
    let start = match message.get(close + 1..close + 3) {
        Some(b"\r\n") => close + 3,
        _ if message.get(close + 1) == Some(&b'\n') => close + 2,
        _ => return None,
    };
    let end = start.checked_add(length)?;
    (end <= message.len()).then_some(end)
}

/// An IMAP4rev2 command with UTF-8 in quoted strings, rewritten with those
/// strings as literals: the parser (imap-codec) reads IMAP4rev1 syntax,
/// whose quoted strings are 7-bit, and a literal may carry any text. None
/// when there is nothing to rewrite. Literals are passed over untouched.
pub fn quoted_utf8_as_literals(message: &[u8]) -> Option<Vec<u8>> {
    if message.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut changed = false;
    let mut pos = 0;
    while pos < message.len() {
        match message[pos] {
            b'{' => {
                if let Some(end) = literal_end(message, pos) {
                    out.extend_from_slice(&message[pos..end]);
                    pos = end;
                    continue;
                }
            }
            b'"' => {
                let mut value = Vec::new();
                let mut at = pos + 1;
                let closed = loop {
                    match message.get(at) {
                        None | Some(b'\r' | b'\n') => break None,
                        Some(b'"') => break Some(at + 1),
                        Some(b'\\') => {
                            let Some(&escaped) = message.get(at + 1) else {
                                break None;
                            };
                            value.push(escaped);
                            at += 2;
                        }
                        Some(&byte) => {
                            value.push(byte);
                            at += 1;
                        }
                    }
                };
                if let Some(end) = closed {
                    if value.is_ascii() {
                        out.extend_from_slice(&message[pos..end]);
                    } else {
                        out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
                        out.extend_from_slice(&value);
                        changed = true;
                    }
                    pos = end;
                    continue;
                }
            }
            _ => {}
        }
        out.push(message[pos]);
        pos += 1;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_utf8_for_rev2_only() {
        assert_eq!(wire_name(false, "Entw&APw-rfe"), "Entw&APw-rfe");
        assert_eq!(wire_name(true, "Entw&APw-rfe"), "Entwürfe");
        assert_eq!(wire_name(true, "Acme &- Co"), "Acme & Co");
        assert_eq!(stored_name(true, "Acme & Co"), "Acme &- Co");
        assert_eq!(stored_name(true, "Entwürfe"), "Entw&APw-rfe");
        assert_eq!(stored_name(false, "Entw&APw-rfe"), "Entw&APw-rfe");
        let mut out = Vec::new();
        write_mailbox(&mut out, true, "Knowledge/Gr&APwA3w-e");
        assert_eq!(String::from_utf8_lossy(&out), "\"Knowledge/Grüße\"");
        out.clear();
        write_mailbox(&mut out, false, "Knowledge/Gr&APwA3w-e");
        assert_eq!(String::from_utf8_lossy(&out), "\"Knowledge/Gr&APwA3w-e\"");
    }

    #[test]
    fn new_names_must_be_net_unicode() {
        assert_eq!(check_new_name("Grüße".as_bytes()), Ok("Grüße"));
        assert!(check_new_name(b"a\xffb").is_err());
        assert!(check_new_name("a\u{7}b".as_bytes()).is_err());
        // "u" and a combining diaeresis: NFC is "ü".
        assert!(check_new_name("Gru\u{308}ße".as_bytes()).is_err());
    }

    #[test]
    fn utf8_quoted_strings_become_literals() {
        assert_eq!(quoted_utf8_as_literals(b"a SELECT \"INBOX\"\r\n"), None);
        let rewritten = quoted_utf8_as_literals("a SELECT \"Grüße \\\"x\\\"\"\r\n".as_bytes());
        assert_eq!(
            rewritten.as_deref(),
            Some("a SELECT {11}\r\nGrüße \"x\"\r\n".as_bytes())
        );
        // A literal's bytes are left alone, even a quote in them.
        let message = "a APPEND \"Entwürfe\" {4}\r\n\"ü\"\r\n".as_bytes();
        assert_eq!(
            quoted_utf8_as_literals(message).as_deref(),
            Some("a APPEND {9}\r\nEntwürfe {4}\r\n\"ü\"\r\n".as_bytes())
        );
    }
}
