//! The text of a message as the index reads it.
//!
//! A reply repeats the message it answers below its own words. Indexing
//! the quote at full weight would make every message of a long thread
//! match the first message's words as strongly as the first message
//! itself, and snippets would show the same quoted paragraph again and
//! again. So a body is split into what the author wrote (`body`) and what
//! they quoted or signed (`quoted`: `>` lines, everything below "On … wrote:"
//! or "-----Original Message-----", and the signature below "-- "). The
//! quoted part stays searchable at a fifth of the weight: the conversation
//! may have started outside postdesk, and then the quote is the only copy.

use crate::domain::quoting::split_quoted;
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct MessageText {
    pub subject: String,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub body: String,
    pub quoted: String,
    pub attachments: Vec<String>,
}

impl MessageText {
    pub fn parse(raw: &[u8]) -> MessageText {
        let Some(message) = MessageParser::default().parse(raw) else {
            // Not even a header: index the bytes as text, so nothing stored
            // is unfindable.
            return MessageText {
                body: String::from_utf8_lossy(raw).into_owned(),
                ..MessageText::default()
            };
        };
        let (body, quoted) = split_quoted(&body_text(&message));
        MessageText {
            subject: message.subject().unwrap_or_default().to_string(),
            from: addresses(message.header("From")),
            to: addresses(message.header("To")),
            cc: addresses(message.header("Cc")),
            body,
            quoted,
            attachments: message
                .attachments()
                .filter_map(|part| part.attachment_name().map(str::to_string))
                .collect(),
        }
    }
}

/// The decoded text of the message's text parts; an HTML-only message is
/// converted to text (mail-parser lists HTML in `text_body` when there is
/// no plain alternative, and converts it).
fn body_text(message: &Message<'_>) -> String {
    let mut text = String::new();
    for i in 0..message.text_body.len() {
        if let Some(part) = message.body_text(i) {
            text.push_str(&part);
            text.push('\n');
        }
    }
    text
}

fn addresses(value: Option<&HeaderValue<'_>>) -> String {
    let mut text = String::new();
    // As a header shows them ("Name <address>, address"): IMAP SEARCH
    // FROM/TO/CC match substrings of this text; the word fields see the
    // same words either way.
    let mut push = |name: Option<&str>, address: Option<&str>| {
        let shown = match (name, address) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (Some(part), None) | (None, Some(part)) => part.to_string(),
            (None, None) => return,
        };
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&shown);
    };
    match value {
        Some(HeaderValue::Address(Address::List(list))) => {
            for a in list {
                push(a.name.as_deref(), a.address.as_deref());
            }
        }
        Some(HeaderValue::Address(Address::Group(groups))) => {
            for group in groups {
                push(group.name.as_deref(), None);
                for a in &group.addresses {
                    push(a.name.as_deref(), a.address.as_deref());
                }
            }
        }
        Some(HeaderValue::Text(t)) => push(Some(t), None),
        _ => {}
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_read_into_fields() {
        let raw = b"From: =?UTF-8?Q?J=C3=BCrgen?= <jurgen@example.test>\r\n\
To: support@desk.test, Bob <bob@example.test>\r\n\
Cc: carol@example.test\r\n\
Subject: =?UTF-8?B?RHJ1Y2tlciBrYXB1dHQ=?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>The <b>spooler</b> hangs</p>\r\n\
--b\r\n\
Content-Type: application/pdf; name=\"log.pdf\"\r\n\
Content-Disposition: attachment; filename=\"log.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0=\r\n\
--b--\r\n";
        let text = MessageText::parse(raw);
        assert_eq!(text.subject, "Drucker kaputt");
        assert_eq!(text.from, "Jürgen <jurgen@example.test>");
        assert_eq!(text.to, "support@desk.test, Bob <bob@example.test>");
        assert_eq!(text.cc, "carol@example.test");
        assert!(text.body.contains("The spooler hangs"), "{:?}", text.body);
        assert_eq!(text.attachments, ["log.pdf"]);
    }
}
