//! The ENVELOPE of a message (RFC 3501 §7.4.2): read from the header by
//! the mime module into an [`ImapEnvelope`], then encoded.
//!
//! Values are the raw header values, unfolded: clients decode RFC 2047
//! encoded words themselves, and a name re-encoded from a decoded one would
//! differ byte-wise from what the client sees in `BODY[HEADER]`. Where RFC
//! 3501 leaves room the values follow Dovecot (see each item).

use super::string::write_nstring;
use crate::mime::address::{self, parse_address_list};
use crate::mime::header::{fields, unfold};

/// Host name of an address without domain. A NIL host would turn the
/// address into group syntax for the client (RFC 3501 §7.4.2), so a
/// placeholder is sent instead, the same one Dovecot uses.
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

/// Mailbox name of an address without local part (see [`MISSING_DOMAIN`]).
const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";

/// The envelope of one header block. As in Dovecot, a repeated text field
/// gives its last value and repeated address fields are merged as if they
/// were one comma-separated list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImapEnvelope {
    pub date: Option<Vec<u8>>,
    /// For display (see [`for_humans`]).
    pub subject: Option<Vec<u8>>,
    pub from: Vec<ImapAddress>,
    /// As the header says; [`ImapEnvelope::sender`] applies the default.
    pub sender: Vec<ImapAddress>,
    /// As the header says; [`ImapEnvelope::reply_to`] applies the default.
    pub reply_to: Vec<ImapAddress>,
    pub to: Vec<ImapAddress>,
    pub cc: Vec<ImapAddress>,
    pub bcc: Vec<ImapAddress>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

/// One RFC 3501 address structure `(name adl mailbox host)`. Group syntax
/// uses the same structure: the start of group "g" is `(NIL NIL "g" NIL)`,
/// its end `(NIL NIL NIL NIL)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImapAddress {
    pub name: Option<Vec<u8>>,
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

impl From<address::Address> for ImapAddress {
    /// A real (non-group) address gets placeholders for missing parts,
    /// because a NIL host would read as group syntax; its name is shown
    /// as Dovecot shows it ([`for_humans`]).
    fn from(parsed: address::Address) -> Self {
        let or = |value: Vec<u8>, missing: &[u8]| {
            if value.is_empty() {
                missing.to_vec()
            } else {
                value
            }
        };
        match parsed {
            address::Address::Mailbox(mailbox) => ImapAddress {
                name: mailbox
                    .name
                    .map(|name| for_humans(&name))
                    .filter(|name| !name.is_empty()),
                adl: mailbox.route,
                mailbox: Some(or(mailbox.local_part, MISSING_MAILBOX)),
                host: Some(or(mailbox.domain, MISSING_DOMAIN)),
            },
            address::Address::GroupStart(name) => ImapAddress {
                mailbox: Some(name),
                ..ImapAddress::default()
            },
            address::Address::GroupEnd => ImapAddress::default(),
        }
    }
}

impl ImapEnvelope {
    /// Reads the envelope of a header block in one pass over its fields.
    pub fn of_header(header: &[u8]) -> ImapEnvelope {
        let mut envelope = ImapEnvelope::default();
        let (mut date, mut subject, mut in_reply_to, mut message_id) = (None, None, None, None);
        for field in fields(header) {
            let list = if field.is(b"From") {
                &mut envelope.from
            } else if field.is(b"Sender") {
                &mut envelope.sender
            } else if field.is(b"Reply-To") {
                &mut envelope.reply_to
            } else if field.is(b"To") {
                &mut envelope.to
            } else if field.is(b"Cc") {
                &mut envelope.cc
            } else if field.is(b"Bcc") {
                &mut envelope.bcc
            } else {
                if field.is(b"Date") {
                    date = Some(field.value);
                } else if field.is(b"Subject") {
                    subject = Some(field.value);
                } else if field.is(b"In-Reply-To") {
                    in_reply_to = Some(field.value);
                } else if field.is(b"Message-ID") {
                    message_id = Some(field.value);
                }
                continue;
            };
            list.extend(
                parse_address_list(&unfold(field.value))
                    .into_iter()
                    .map(ImapAddress::from),
            );
        }
        envelope.date = date.map(unfold);
        envelope.subject = subject.map(|subject| for_humans(&unfold(subject)));
        envelope.in_reply_to = in_reply_to.map(unfold);
        envelope.message_id = message_id.map(unfold);
        envelope
    }

    /// Sender, defaulting to From (RFC 3501 §7.4.2).
    pub fn sender(&self) -> &[ImapAddress] {
        if self.sender.is_empty() {
            &self.from
        } else {
            &self.sender
        }
    }

    /// Reply-To, defaulting to From (RFC 3501 §7.4.2).
    pub fn reply_to(&self) -> &[ImapAddress] {
        if self.reply_to.is_empty() {
            &self.from
        } else {
            &self.reply_to
        }
    }

    /// Appends `(date subject from sender reply-to to cc bcc in-reply-to
    /// message-id)`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'(');
        write_nstring(out, self.date.as_deref());
        out.push(b' ');
        write_nstring(out, self.subject.as_deref());
        for list in [
            &self.from[..],
            self.sender(),
            self.reply_to(),
            &self.to,
            &self.cc,
            &self.bcc,
        ] {
            out.push(b' ');
            write_addresses(out, list);
        }
        out.push(b' ');
        write_nstring(out, self.in_reply_to.as_deref());
        out.push(b' ');
        write_nstring(out, self.message_id.as_deref());
        out.push(b')');
    }
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

/// An address list, or NIL for an empty one (RFC 3501 has no empty list).
fn write_addresses(out: &mut Vec<u8>, list: &[ImapAddress]) {
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

#[cfg(test)]
mod tests {
    use super::super::tests::crlf;
    use super::super::write_envelope;
    use super::*;

    fn envelope(raw: &[u8]) -> String {
        let mut out = Vec::new();
        write_envelope(&mut out, raw);
        String::from_utf8_lossy(&out).into_owned()
    }

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

    #[test]
    fn typed_values_before_encoding() {
        let envelope = ImapEnvelope::of_header(&crlf(concat!(
            "Subject: first\n",
            "Subject:  last\n\t one \n",
            "From: x@y (Only  a\tcomment)\n",
            "Reply-To: Some Name\n",
            "To: <>\n",
            "\n",
        )));
        assert_eq!(envelope.subject.as_deref(), Some(&b"last one"[..]));
        assert_eq!(
            envelope.from,
            [ImapAddress {
                name: Some(b"Only a comment".to_vec()),
                adl: None,
                mailbox: Some(b"x".to_vec()),
                host: Some(b"y".to_vec()),
            }]
        );
        assert_eq!(
            envelope.to,
            [ImapAddress {
                name: None,
                adl: None,
                mailbox: Some(MISSING_MAILBOX.to_vec()),
                host: Some(MISSING_DOMAIN.to_vec()),
            }]
        );
        assert_eq!(envelope.sender(), envelope.from.as_slice());
        assert_eq!(
            envelope.reply_to().first().and_then(|a| a.name.as_deref()),
            Some(&b"Some Name"[..])
        );
    }
}
