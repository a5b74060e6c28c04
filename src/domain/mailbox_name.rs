//! Mailbox names as IMAP4rev1 clients send them: modified UTF-7 (RFC 3501
//! §5.1.3). Hand-written because the rules are few: printable US-ASCII
//! stands for itself, `&-` is `&`, and `&…-` is UTF-16 in a base64 variant
//! that uses `,` for `/` and no padding. Names are stored in this form (as
//! IMAP4rev1 clients wrote them); an IMAP4rev2 session speaks UTF-8
//! (RFC 9051 §5.1) and is translated with [`encode`] and [`decode`].

/// Why a name is not modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A byte outside printable US-ASCII (8-bit or a control character).
    NotAscii,
    /// `&` without its closing `-`, or a shift sequence that does not
    /// decode to UTF-16 (bad base64, leftover bits, lone surrogates).
    BadShift,
    /// A shift sequence that encodes printable US-ASCII, which must be
    /// written as itself.
    AsciiEncoded,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::NotAscii => "mailbox names are 7-bit: use modified UTF-7 (RFC 3501 5.1.3)",
            Invalid::BadShift => "an &…- sequence that is not modified UTF-7 (RFC 3501 5.1.3)",
            Invalid::AsciiEncoded => {
                "printable ASCII must not be encoded in modified UTF-7 (RFC 3501 5.1.3)"
            }
        })
    }
}

/// Checks that `name` is valid modified UTF-7.
pub fn validate(name: &[u8]) -> Result<(), Invalid> {
    let mut rest = name;
    while let Some((&byte, tail)) = rest.split_first() {
        if !(0x20..=0x7e).contains(&byte) {
            return Err(Invalid::NotAscii);
        }
        if byte != b'&' {
            rest = tail;
            continue;
        }
        let end = tail
            .iter()
            .position(|b| *b == b'-')
            .ok_or(Invalid::BadShift)?;
        let encoded = &tail[..end];
        if !encoded.is_empty() {
            check_shift(encoded)?;
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

/// The UTF-16 units of a shift sequence's modified base64.
fn shift_units(encoded: &[u8]) -> Result<Vec<u16>, Invalid> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut units = Vec::new();
    for &c in encoded {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b',' => 63,
            _ => return Err(Invalid::BadShift),
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 16 {
            count -= 16;
            units.push(((bits >> count) & 0xffff) as u16);
        }
    }
    // Leftover bits are padding: fewer than 6, and zero.
    if count >= 6 || bits & ((1 << count) - 1) != 0 {
        return Err(Invalid::BadShift);
    }
    Ok(units)
}

fn check_shift(encoded: &[u8]) -> Result<(), Invalid> {
    let units = shift_units(encoded)?;
    let mut any = false;
    for decoded in char::decode_utf16(units) {
        let c = decoded.map_err(|_| Invalid::BadShift)?;
        if (' '..='~').contains(&c) {
            return Err(Invalid::AsciiEncoded);
        }
        any = true;
    }
    if any { Ok(()) } else { Err(Invalid::BadShift) }
}

/// The Unicode text of a stored (modified UTF-7) name, as an IMAP4rev2
/// session shows it. None when the name is not valid modified UTF-7 (a
/// name stored before names were checked): it is then shown as stored.
pub fn decode(name: &str) -> Option<String> {
    validate(name.as_bytes()).ok()?;
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let end = tail.find('-')?;
        if end == 0 {
            out.push('&');
        } else {
            let units = shift_units(&tail.as_bytes()[..end]).ok()?;
            for c in char::decode_utf16(units) {
                out.push(c.ok()?);
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Encodes a name (a knowledge-base category) as modified UTF-7, as a
/// mailbox name must be: printable ASCII as itself (`&` as `&-`), every
/// run of other characters as `&`, their UTF-16 in modified base64, `-`.
pub fn encode(name: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let n = chunk.len();
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            // n bytes give n + 1 characters; no padding.
            for i in 0..=n {
                out.push(ALPHABET[((v >> (18 - 6 * i)) & 0x3f) as usize] as char);
            }
        }
        out.push('-');
        run.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_as_modified_utf7() {
        assert_eq!(encode("Printers"), "Printers");
        assert_eq!(encode("Acme & Co"), "Acme &- Co");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("台北"), "&U,BTFw-");
        assert_eq!(encode("日本語"), "&ZeVnLIqe-");
        for name in ["Drucker & Zubehör", "😀 emoji", "a/b"] {
            assert_eq!(validate(encode(name).as_bytes()), Ok(()), "{name}");
        }
    }

    #[test]
    fn stored_names_decode_to_unicode_and_back() {
        assert_eq!(decode("INBOX").as_deref(), Some("INBOX"));
        assert_eq!(decode("Acme &- Co").as_deref(), Some("Acme & Co"));
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(decode("Entwürfe"), None, "not modified UTF-7");
        assert_eq!(decode("&AGE-"), None);
        for name in ["Drucker & Zubehör", "😀 emoji", "Knowledge/Grüße", "a&b"] {
            assert_eq!(decode(&encode(name)).as_deref(), Some(name), "{name}");
        }
    }

    #[test]
    fn the_rfc_examples_and_plain_names_are_valid() {
        assert_eq!(validate(b"INBOX"), Ok(()));
        assert_eq!(validate(b"Customers/Acme & Co"), Err(Invalid::BadShift));
        assert_eq!(validate(b"Customers/Acme &- Co"), Ok(()));
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語".
        assert_eq!(validate(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"), Ok(()));
        assert_eq!(validate(b"Entw&APw-rfe"), Ok(()));
    }

    #[test]
    fn eight_bit_bad_base64_and_encoded_ascii_are_refused() {
        assert_eq!(validate("Entwürfe".as_bytes()), Err(Invalid::NotAscii));
        assert_eq!(validate(b"a\tb"), Err(Invalid::NotAscii));
        assert_eq!(validate(b"&U,BTFw"), Err(Invalid::BadShift), "no closing -");
        assert_eq!(
            validate(b"&U/BTFw-"),
            Err(Invalid::BadShift),
            "/ is not modified base64"
        );
        assert_eq!(
            validate(b"&AGE-"),
            Err(Invalid::AsciiEncoded),
            "'a' encoded"
        );
        assert_eq!(
            validate(b"&2D0-"),
            Err(Invalid::BadShift),
            "a lone surrogate"
        );
        assert_eq!(validate(b"&APx-x&APw"), Err(Invalid::BadShift));
        assert_eq!(validate(b"&A-"), Err(Invalid::BadShift), "leftover bits");
    }
}
