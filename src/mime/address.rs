//! RFC 5322 address lists (From, To, Cc, …), read leniently and kept as
//! written: display names are the raw words (quoted strings unquoted,
//! encoded words left encoded), local parts and domains are the bytes of
//! the message. Whoever shows a value decodes it; re-encoding a decoded
//! name would lose its charset and differ from what the header says.
//!
//! The leniency follows Dovecot's address parser, because real mail is
//! full of addresses no RFC allows (missing commas, stray brackets, bare
//! local parts) and clients already expect Dovecot's reading of them.

use super::lexer::{skip_comment, skip_quoted, strip_delims, unquote};
use super::slice;

/// One entry of an address list. Groups (`name: a, b;`) are flattened as
/// RFC 3501 and Dovecot flatten them: a start marker, the members, an end
/// marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Mailbox(MailboxAddress),
    /// The start of a group, with its display name.
    GroupStart(Vec<u8>),
    /// The end of the group started last (also added when the `;` is
    /// missing at the end of the list).
    GroupEnd,
}

/// A mailbox as written. Any part may be missing (empty) in malformed
/// input: `postmaster` has no domain, `Some Name` no address at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxAddress {
    /// The display name: the words before `<…>` joined by one space,
    /// quoted strings unquoted; or, for `addr-spec (comment)`, the last
    /// comment (as Dovecot does). None when there is neither.
    pub name: Option<Vec<u8>>,
    /// An obsolete source route (`@relay1,@relay2`), as written.
    pub route: Option<Vec<u8>>,
    /// The local part as written: a quoted local part keeps its quotes, so
    /// that `local_part@domain` is still a valid address.
    pub local_part: Vec<u8>,
    pub domain: Vec<u8>,
}

/// Parses an unfolded (see [`super::header::unfold`]) address list
/// leniently: one address per comma-separated segment, `name:` … `;` as a
/// group, empty segments skipped, an unterminated group closed at the end.
pub fn parse_address_list(value: &[u8]) -> Vec<Address> {
    let mut list = Vec::new();
    let mut segment = Vec::new();
    let mut in_group = false;
    for token in tokenize(value) {
        match token {
            Token::Special(b',') => flush_segment(&mut segment, &mut list),
            Token::Special(b';') => {
                flush_segment(&mut segment, &mut list);
                if in_group {
                    list.push(Address::GroupEnd);
                    in_group = false;
                }
            }
            Token::Special(b':') if !in_group && is_phrase(&segment) => {
                list.push(Address::GroupStart(phrase(&segment)));
                segment.clear();
                in_group = true;
            }
            _ => segment.push(token),
        }
    }
    flush_segment(&mut segment, &mut list);
    if in_group {
        list.push(Address::GroupEnd);
    }
    list
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

/// Bytes of an atom in an address header, leniently: anything but
/// whitespace and the specials that structure an address. `.` is included
/// so that dot-atoms and obs-phrase words like "Q." are single words.
fn is_word_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && !b"()<>[]:;@,\"".contains(&b)
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

fn flush_segment(segment: &mut Vec<Token<'_>>, list: &mut Vec<Address>) {
    list.extend(segment_address(segment).map(Address::Mailbox));
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

/// The mailbox of one comma-separated segment: `phrase <addr-spec>`,
/// `addr-spec (comment)` (the comment becomes the name, as in Dovecot), a
/// lone word (a local part without domain) or several words without `@`
/// (a name without address). `None` for a segment without any word.
fn segment_address(tokens: &[Token<'_>]) -> Option<MailboxAddress> {
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
        return Some(MailboxAddress {
            name,
            ..addr_spec(&tokenize(inner))
        });
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
        return Some(MailboxAddress {
            name: Some(phrase(tokens)),
            ..MailboxAddress::default()
        });
    }
    let comment = tokens
        .iter()
        .rev()
        .find_map(|token| match token {
            Token::Comment(comment) => Some(comment.trim_ascii().to_vec()),
            _ => None,
        })
        .filter(|comment| !comment.is_empty());
    Some(MailboxAddress {
        name: comment,
        ..addr_spec(tokens)
    })
}

/// Splits `[@route,@route:]local@domain` into route, local part and
/// domain, each as written (the name is left empty). The first `@` ends
/// the local part and the domain is one word; anything after it is
/// dropped, as in Dovecot (so that `a@b.example c@d.example`, missing its
/// comma, gives `a@b.example`).
fn addr_spec(tokens: &[Token<'_>]) -> MailboxAddress {
    let colon = tokens.iter().position(|t| *t == Token::Special(b':'));
    let (route, rest) = match colon {
        Some(colon) if tokens.first() == Some(&Token::Special(b'@')) => (
            Some(concat(tokens.get(..colon).unwrap_or_default())),
            tokens.get(colon + 1..).unwrap_or_default(),
        ),
        _ => (None, tokens),
    };
    let (local_part, domain) = match rest.iter().position(|t| *t == Token::Special(b'@')) {
        Some(at) => {
            let after = rest.get(at + 1..).unwrap_or_default();
            let domain = after.iter().find_map(|token| match token {
                Token::Word(word) => Some(word.to_vec()),
                _ => None,
            });
            let local = concat(rest.get(..at).unwrap_or_default());
            (local, domain.unwrap_or_default())
        }
        None => (concat(rest), Vec::new()),
    };
    MailboxAddress {
        name: None,
        route,
        local_part,
        domain,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: Option<&str>, route: Option<&str>, local: &str, domain: &str) -> Address {
        Address::Mailbox(MailboxAddress {
            name: name.map(|n| n.as_bytes().to_vec()),
            route: route.map(|r| r.as_bytes().to_vec()),
            local_part: local.as_bytes().to_vec(),
            domain: domain.as_bytes().to_vec(),
        })
    }

    #[test]
    fn names_and_addresses_as_written() {
        assert_eq!(
            parse_address_list(
                br#""Doe, \"JD\" John" <john.doe@example.org>, jane@example.org (Jane Roe)"#
            ),
            [
                mailbox(Some(r#"Doe, "JD" John"#), None, "john.doe", "example.org"),
                mailbox(Some("Jane Roe"), None, "jane", "example.org"),
            ]
        );
        // Encoded words stay encoded; a quoted local part keeps its quotes.
        assert_eq!(
            parse_address_list(
                br#"=?utf-8?b?QsO2Yg==?= <bob@example.org>, "quoted local"@example.org"#
            ),
            [
                mailbox(Some("=?utf-8?b?QsO2Yg==?="), None, "bob", "example.org"),
                mailbox(None, None, "\"quoted local\"", "example.org"),
            ]
        );
        assert_eq!(
            parse_address_list(b"<@relay.example:carl@example.com>"),
            [mailbox(None, Some("@relay.example"), "carl", "example.com")]
        );
    }

    #[test]
    fn groups_are_flattened() {
        assert_eq!(
            parse_address_list(b"Team: ann@example.org, <bob@example.org>;, carl@example.org"),
            [
                Address::GroupStart(b"Team".to_vec()),
                mailbox(None, None, "ann", "example.org"),
                mailbox(None, None, "bob", "example.org"),
                Address::GroupEnd,
                mailbox(None, None, "carl", "example.org"),
            ]
        );
        assert_eq!(
            parse_address_list(b"undisclosed-recipients:;"),
            [
                Address::GroupStart(b"undisclosed-recipients".to_vec()),
                Address::GroupEnd
            ]
        );
        // An unterminated group is closed at the end.
        assert_eq!(
            parse_address_list(b"g: a@b"),
            [
                Address::GroupStart(b"g".to_vec()),
                mailbox(None, None, "a", "b"),
                Address::GroupEnd
            ]
        );
    }

    #[test]
    fn malformed_lists_are_read_leniently() {
        // A bare local part; a name without address; a missing comma.
        assert_eq!(
            parse_address_list(b"postmaster"),
            [mailbox(None, None, "postmaster", "")]
        );
        assert_eq!(
            parse_address_list(b"Some Name"),
            [mailbox(Some("Some Name"), None, "", "")]
        );
        assert_eq!(
            parse_address_list(b"a@b.example c@d.example"),
            [mailbox(None, None, "a", "b.example")]
        );
        assert_eq!(parse_address_list(b",,, ;"), []);
        assert_eq!(parse_address_list(b""), []);
        // Brackets inside quoted strings and comments do not end an angle address.
        assert_eq!(
            parse_address_list(br#"<"a>b"(c>)@example.org> x"#),
            [mailbox(None, None, "\"a>b\"", "example.org")]
        );
        // Junk never panics.
        for junk in [
            &b"<<<@@@>>> ,,, \"\\"[..],
            b":;:;:; (",
            b"[unterminated",
            b"@",
            b"<",
        ] {
            let _ = parse_address_list(junk);
        }
    }
}
