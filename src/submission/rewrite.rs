//! Byte-level surgery on an agent's mail: the command block is cut out of
//! the text and HTML bodies, and header fields are replaced, while every
//! other byte (other parts, attachments, boundaries, the client's own
//! headers) stays exactly as the agent's client wrote it.
//!
//! mail-parser reads the structure (part offsets, transfer encodings) and
//! mail-builder writes what is new (header values with their encoded words
//! and folding, quoted-printable and base64 bodies). The message is not
//! rebuilt from its parsed parts: that would re-encode attachments and
//! lose headers mail-builder has no model of, and the customer should get
//! what the agent sent.

use crate::domain::commands::{self, Commands};
use crate::domain::quoting::{split_quoted, words_anywhere};
use crate::domain::sent_copy::submission_digest;
use crate::mime::header::{self, Field as HeaderField, header_end};
use mail_builder::encoders::{Base64Encoder, QuotedPrintableEncoder};
use mail_builder::headers::Header;
use mail_parser::{Encoding, Message, MessageParser, MimeHeaders, PartType};

/// An agent's mail as submission reads it.
#[derive(Debug, Clone)]
pub struct AgentMail {
    /// The command block of the message's first text body.
    pub commands: Commands,
    /// The message with the command lines cut out of its text and HTML bodies.
    pub stripped: Vec<u8>,
    /// Whether anything is left besides quoted text and signature: a reply
    /// of only `#close` above the customer's quoted mail says nothing to
    /// the customer.
    pub says_something: bool,
    /// A mail that says nothing above the quote still holds words of the
    /// agent's below it (an answer written under the quoted mail): they
    /// are kept as a note, never dropped.
    pub words_below_quote: bool,
    /// What the agent submitted, as their client's Sent copy must match
    /// it ([`submission_digest`]).
    pub digest: String,
}

/// What `#kb 42` puts where the command block was: an article's text for
/// the text body and its rendered HTML for the HTML body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Insertion {
    pub text: String,
    pub html: String,
}

/// Reads the commands and removes them. Malformed MIME is not an error:
/// what cannot be parsed is left as it is (and carries no commands).
pub fn read_agent_mail(raw: &[u8]) -> AgentMail {
    read_agent_mail_inserting(raw, None)
}

/// As [`read_agent_mail`], putting `insertion` where the command block was
/// (in the text and the HTML body alike).
pub fn read_agent_mail_inserting(raw: &[u8], insertion: Option<&Insertion>) -> AgentMail {
    // mail-parser has debug assertions that malformed MIME can reach; a
    // panic must not cost the agent's mail.
    let read = std::panic::catch_unwind(|| {
        let message = MessageParser::default().parse(raw)?;
        Some(read_parsed(raw, &message, insertion))
    });
    match read {
        Ok(Some(mail)) => mail,
        _ => AgentMail {
            commands: Commands::default(),
            stripped: raw.to_vec(),
            says_something: !raw.is_empty(),
            words_below_quote: false,
            digest: submission_digest(raw),
        },
    }
}

fn read_parsed(raw: &[u8], message: &Message<'_>, insertion: Option<&Insertion>) -> AgentMail {
    let text = message.body_text(0).unwrap_or_default();
    let commands = Commands::read(&text);
    let remaining = commands::strip_lines(&text, commands.block_lines);
    let (own, _quoted) = split_quoted(remaining);
    let says_something = !own.trim().is_empty()
        || message.attachment_count() > 0
        || insertion.is_some_and(|i| !i.text.trim().is_empty());
    let words_below_quote = !says_something && !words_anywhere(remaining).trim().is_empty();
    if commands.is_empty() {
        return AgentMail {
            commands,
            stripped: raw.to_vec(),
            says_something,
            words_below_quote,
            digest: submission_digest(raw),
        };
    }
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut parts: Vec<u32> = Vec::new();
    parts.extend(message.text_body.first());
    parts.extend(message.html_body.first());
    parts.dedup();
    for id in parts {
        let Some(part) = message.part(id) else {
            continue;
        };
        let is_html = matches!(part.body, PartType::Html(_));
        if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
            continue;
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        let Some(body) = raw.get(start..end) else {
            continue;
        };
        // Text that is not base64 is cut line by line in its encoded form,
        // so the agent's client's encoding of the rest is kept exactly (a
        // quoted-printable soft break inside the block needs decoding).
        let soft_break_in_block = part.encoding == Encoding::QuotedPrintable
            && body
                .split(|&b| b == b'\n')
                .take(block_of(body) + 1)
                .any(|line| line.trim_ascii_end().ends_with(b"="));
        // Inserted text goes into a quoted-printable body encoded, so
        // that body is decoded and encoded again.
        let qp_insert = insertion.is_some() && part.encoding == Encoding::QuotedPrintable;
        if !is_html && part.encoding != Encoding::Base64 && !soft_break_in_block && !qp_insert {
            let mut cut = strip_text_commands(body);
            if let Some(insertion) = insertion {
                cut = insert_text(&cut, &insertion.text);
            }
            if cut != body {
                edits.push((start, end, cut));
            }
            continue;
        }
        let Some(decoded) = decode(body, part.encoding) else {
            continue;
        };
        let mut cut = if is_html {
            strip_html_commands(&decoded)
        } else {
            strip_text_commands(&decoded)
        };
        if let Some(insertion) = insertion {
            cut = if is_html {
                insert_html(&cut, &insertion.html)
            } else {
                insert_text(&cut, &insertion.text)
            };
        }
        if cut == decoded {
            continue;
        }
        let Some(encoded) = encode(&cut, part.encoding, body) else {
            continue;
        };
        edits.push((start, end, encoded));
    }
    edits.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut stripped = raw.to_vec();
    for (start, end, bytes) in edits {
        stripped.splice(start..end, bytes);
    }
    AgentMail {
        commands,
        stripped,
        says_something,
        words_below_quote,
        digest: submission_digest(raw),
    }
}

/// The message with its first text and first HTML body replaced by what
/// `change` makes of them (the decoded text in, the new text out; `true`
/// for HTML), encoded as the part was and every other byte kept. A part
/// in a charset other than UTF-8 or ASCII is not changed: it is an error
/// when the change would put other characters into it.
pub fn rewrite_bodies(
    raw: &[u8],
    mut change: impl FnMut(&str, bool) -> Result<String, Vec<String>>,
) -> Result<Vec<u8>, Vec<String>> {
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw));
    let Ok(Some(message)) = parsed else {
        return Err(vec!["the mail cannot be read as MIME".into()]);
    };
    let mut parts: Vec<u32> = Vec::new();
    parts.extend(message.text_body.first());
    parts.extend(message.html_body.first());
    parts.dedup();
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut errors = Vec::new();
    for id in parts {
        let Some(part) = message.part(id) else {
            continue;
        };
        let is_html = matches!(part.body, PartType::Html(_));
        if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
            continue;
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        let Some(body) = raw.get(start..end) else {
            continue;
        };
        let Some(decoded) = decode(body, part.encoding) else {
            continue;
        };
        let text = String::from_utf8_lossy(&decoded).into_owned();
        let new = match change(&text, is_html) {
            Ok(new) => new,
            Err(problems) => {
                errors.extend(problems);
                continue;
            }
        };
        if new == text {
            continue;
        }
        let charset = part
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .unwrap_or("us-ascii")
            .to_ascii_lowercase();
        // Other charsets keep ASCII: only other characters need UTF-8.
        let unicode = matches!(charset.as_str(), "utf-8" | "utf8");
        if std::str::from_utf8(&decoded).is_err() || (!unicode && !new.is_ascii()) {
            errors.push(format!(
                "the {} part is in charset {charset}: write the mail in UTF-8 to use templates or placeholders",
                if is_html { "HTML" } else { "text" }
            ));
            continue;
        }
        match encode(new.as_bytes(), part.encoding, body) {
            Some(encoded) => edits.push((start, end, encoded)),
            None => errors.push("a body part could not be encoded again".into()),
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        return Err(errors);
    }
    edits.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut out = raw.to_vec();
    for (start, end, bytes) in edits {
        out.splice(start..end, bytes);
    }
    Ok(out)
}

/// A body's bytes in its own charset (all mail charsets keep ASCII, so the
/// command lines are found the same in any of them).
fn decode(body: &[u8], encoding: Encoding) -> Option<Vec<u8>> {
    match encoding {
        Encoding::None => Some(body.to_vec()),
        Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
        }
        Encoding::Base64 => mail_parser::decoders::base64::base64_decode(body),
    }
}

/// Encodes a body again as it was encoded, ending in a line break when the
/// original did (the CRLF before a boundary belongs to the boundary).
fn encode(decoded: &[u8], encoding: Encoding, original: &[u8]) -> Option<Vec<u8>> {
    let mut out = match encoding {
        Encoding::None => return Some(decoded.to_vec()),
        Encoding::QuotedPrintable => QuotedPrintableEncoder::new()
            .preserve_line_breaks()
            .encode(decoded)
            .ok()?,
        Encoding::Base64 => Base64Encoder::new().wrap_lines().encode(decoded).ok()?,
    };
    if original.ends_with(b"\n") && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    Some(out)
}

/// The text body with `text` (an article's) before it, a blank line
/// between, in the body's own line endings.
fn insert_text(body: &[u8], text: &str) -> Vec<u8> {
    let crlf = body.windows(2).any(|w| w == b"\r\n") || !body.contains(&b'\n');
    let newline = if crlf { "\r\n" } else { "\n" };
    let mut out: Vec<u8> = text
        .trim_end()
        .lines()
        .map(|line| format!("{line}{newline}"))
        .collect::<String>()
        .into_bytes();
    out.extend_from_slice(newline.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The HTML body with `fragment` (an article's rendered HTML) at the start
/// of its `<body>` (where the command lines were).
fn insert_html(html: &[u8], fragment: &str) -> Vec<u8> {
    let at = find_ci(html, b"<body")
        .and_then(|at| {
            html[at..]
                .iter()
                .position(|&b| b == b'>')
                .map(|p| at + p + 1)
        })
        .unwrap_or(0);
    let mut out = Vec::with_capacity(html.len() + fragment.len() + 40);
    out.extend_from_slice(&html[..at]);
    out.extend_from_slice(b"<div class=\"postdesk-kb\">");
    out.extend_from_slice(fragment.as_bytes());
    out.extend_from_slice(b"</div>");
    out.extend_from_slice(&html[at..]);
    out
}

/// How many leading lines of a text body the command block spans.
fn block_of(text: &[u8]) -> usize {
    Commands::read(&String::from_utf8_lossy(text)).block_lines
}

/// Removes the leading command lines (and the blank lines around them) of
/// a plain text body.
fn strip_text_commands(text: &[u8]) -> Vec<u8> {
    let block = block_of(text);
    let mut rest = text;
    for _ in 0..block {
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => rest = &rest[end + 1..],
            None => rest = &[],
        }
    }
    rest.to_vec()
}

/// Removes the command lines from the start of an HTML body: the text
/// nodes after `<body>` that are command lines, each with the `<br>` that
/// ends it, up to the first text that is not a command. Elements left
/// empty (`<p></p>`) are kept: they render as nothing.
fn strip_html_commands(html: &[u8]) -> Vec<u8> {
    let body_start = find_ci(html, b"<body")
        .and_then(|at| {
            html[at..]
                .iter()
                .position(|&b| b == b'>')
                .map(|p| at + p + 1)
        })
        .unwrap_or(0);
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut at = body_start;
    let mut after_command = false;
    while at < html.len() {
        if html[at] == b'<' {
            let end = html[at..]
                .iter()
                .position(|&b| b == b'>')
                .map(|p| at + p + 1)
                .unwrap_or(html.len());
            let tag = &html[at..end];
            if after_command && is_line_break(tag) {
                cuts.push((at, end));
                after_command = false;
            }
            at = end;
            continue;
        }
        let end = html[at..]
            .iter()
            .position(|&b| b == b'<')
            .map(|p| at + p)
            .unwrap_or(html.len());
        let text = decode_entities(&String::from_utf8_lossy(&html[at..end]));
        if text.trim().is_empty() {
            at = end;
            continue;
        }
        // A text node may hold several lines (a <pre>, or newlines that
        // the HTML renders as spaces): every line of it must be a command.
        let all_commands = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .all(commands::is_command_line);
        if !all_commands {
            break;
        }
        cuts.push((at, end));
        after_command = true;
        at = end;
    }
    let mut out = html.to_vec();
    for (start, end) in cuts.into_iter().rev() {
        out.drain(start..end);
    }
    out
}

fn is_line_break(tag: &[u8]) -> bool {
    let name: Vec<u8> = tag
        .iter()
        .skip(1)
        .take_while(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
        .collect();
    name == b"br"
}

/// The entities a command line can contain as a mail client writes it.
fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&#160;", " ")
        .replace("&#35;", "#")
        .replace("&#x23;", "#")
        .replace("&amp;", "&")
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// A header field to write in place of the fields of the same name.
#[derive(Debug, Clone)]
pub struct HeaderEdit {
    pub name: &'static str,
    /// The whole field, `Name: value\r\n`; None removes the field.
    pub bytes: Option<Vec<u8>>,
}

impl HeaderEdit {
    pub fn remove(name: &'static str) -> HeaderEdit {
        HeaderEdit { name, bytes: None }
    }

    /// `Name: "Display" <address>`, the name encoded as RFC 2047 needs.
    pub fn address(name: &'static str, display: &str, address: &str) -> HeaderEdit {
        let value = mail_builder::headers::address::Address::new_address(
            Some(display.to_string()),
            address.to_string(),
        );
        HeaderEdit::with(name, &value)
    }

    /// `Name: a, "B" <b@…>, …` (To, Cc); an empty list removes the field.
    pub fn addresses(name: &'static str, list: &[(Option<String>, String)]) -> HeaderEdit {
        if list.is_empty() {
            return HeaderEdit::remove(name);
        }
        let value = mail_builder::headers::address::Address::new_list(
            list.iter()
                .map(|(display, address)| {
                    mail_builder::headers::address::Address::new_address(
                        display.clone(),
                        address.clone(),
                    )
                })
                .collect(),
        );
        HeaderEdit::with(name, &value)
    }

    /// An unstructured field (Subject), encoded and folded as needed.
    pub fn text(name: &'static str, text: &str) -> HeaderEdit {
        HeaderEdit::with(
            name,
            &mail_builder::headers::text::Text::new(text.to_string()),
        )
    }

    /// A field whose value is plain ASCII already (`<id@host>`, `yes`).
    pub fn raw(name: &'static str, value: &str) -> HeaderEdit {
        HeaderEdit {
            name,
            bytes: Some(format!("{name}: {value}\r\n").into_bytes()),
        }
    }

    fn with(name: &'static str, value: &impl Header) -> HeaderEdit {
        let mut bytes = format!("{name}: ").into_bytes();
        let written = bytes.len();
        // Writing into a Vec cannot fail.
        if value.write_header(&mut bytes, written).is_err() {
            bytes.truncate(written);
        }
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        HeaderEdit {
            name,
            bytes: Some(bytes),
        }
    }
}

/// The header fields as the mime module reads them (each with its
/// continuation lines), the same fields IMAP serves. Fields of whitespace
/// only are dropped: such a line can only stand before the first field
/// (anywhere else it continues the field above), carries nothing, and
/// left at the top of the header it reads as a continuation of no field.
fn header_fields(header: &[u8]) -> impl Iterator<Item = HeaderField<'_>> {
    header::fields(header).filter(|field| !field.raw.iter().all(u8::is_ascii_whitespace))
}

/// The message with its header fields replaced: each field in `changes`
/// takes the place of the first field of its name (others of that name
/// go), or is added at the end of the header. The body is not touched.
pub fn rewrite_header(raw: &[u8], changes: &[HeaderEdit]) -> Vec<u8> {
    let body_at = header_end(raw);
    let header = &raw[..body_at];
    let mut out = Vec::with_capacity(raw.len() + 256);
    let mut written = vec![false; changes.len()];
    for field in header_fields(header) {
        match changes.iter().position(|c| field.is(c.name.as_bytes())) {
            Some(i) => {
                if !written[i] {
                    written[i] = true;
                    if let Some(bytes) = &changes[i].bytes {
                        out.extend_from_slice(bytes);
                    }
                }
            }
            None => {
                out.extend_from_slice(field.raw);
                if !field.raw.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    for (change, done) in changes.iter().zip(written) {
        if !done && let Some(bytes) = &change.bytes {
            out.extend_from_slice(bytes);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&raw[body_at..]);
    out
}

/// The text and HTML bodies as a client shows them. This reads with
/// mail-parser, not the mime module: it needs the decoded text (transfer
/// encoding and charset undone), and the mime module only finds parts.
#[cfg(test)]
fn body_texts(raw: &[u8]) -> (String, String) {
    let message = MessageParser::default().parse(raw);
    let text = message
        .as_ref()
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default();
    let html = message
        .as_ref()
        .and_then(|m| m.body_html(0).map(|t| t.into_owned()))
        .unwrap_or_default();
    (text, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message's own header fields of one name, unfolded, for reading.
    pub fn header_value(raw: &[u8], name: &str) -> Option<String> {
        let header = &raw[..header_end(raw)];
        header_fields(header).find_map(|field| {
            field.is(name.as_bytes()).then(|| {
                String::from_utf8_lossy(field.value)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
    }

    const ALTERNATIVE: &str = "From: Alice <alice@desk.test>\r\n\
To: customer@example.com\r\n\
Subject: Re: VPN drops\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=UTF-8; format=flowed\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
#close\r\n\
#tag vpn\r\n\
\r\n\
Hello, please update the client to 5.2 =E2=80=93 that fixes it.\r\n\
\r\n\
On 23.11.26 10:00, Carol wrote:\r\n\
> It drops every 30 minutes.\r\n\
\r\n\
--alt\r\n\
Content-Type: text/html; charset=UTF-8\r\n\
Content-Transfer-Encoding: 7bit\r\n\
\r\n\
<html><head><title>#x</title></head><body>\r\n\
<p>#close<br>\r\n\
#tag vpn<br>\r\n\
</p>\r\n\
<p>Hello, please update the client to 5.2.</p>\r\n\
</body></html>\r\n\
\r\n\
--alt--\r\n\
\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"log.bin\"\r\n\
Content-Disposition: attachment; filename=\"log.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--outer--\r\n";

    #[test]
    fn commands_leave_text_and_html_and_nothing_else_changes() {
        let mail = read_agent_mail(ALTERNATIVE.as_bytes());
        assert_eq!(mail.commands.lines.len(), 2);
        assert!(mail.says_something);
        let stripped = String::from_utf8_lossy(&mail.stripped).into_owned();
        let (text, html) = body_texts(&mail.stripped);
        assert!(
            text.starts_with("Hello, please update the client to 5.2 \u{2013} that fixes it."),
            "{text:?}"
        );
        assert!(!html.contains("#close") && !html.contains("#tag"), "{html}");
        assert!(html.contains("<title>#x</title>"), "{html}");
        assert!(html.contains("<p>Hello, please update"), "{html}");
        // Everything from the attachment on is byte-identical.
        let tail =
            |s: &str| s[s.find("--outer\r\nContent-Type: application").unwrap_or(0)..].to_string();
        assert_eq!(tail(&stripped), tail(ALTERNATIVE));
        assert!(stripped.starts_with("From: Alice <alice@desk.test>\r\n"));
        // The parts still parse as parts.
        let message = MessageParser::default().parse(&mail.stripped);
        assert_eq!(message.map(|m| m.attachment_count()), Some(1));
    }

    #[test]
    fn base64_text_is_decoded_stripped_and_encoded_again() {
        let body = Base64Encoder::new()
            .wrap_lines()
            .encode(b"#pending\r\n\r\nWe need your logs.\r\n")
            .unwrap_or_default();
        let raw = [
            b"From: a@desk.test\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".as_slice(),
            &body,
            b"\r\n",
        ]
        .concat();
        let mail = read_agent_mail(&raw);
        assert_eq!(mail.commands.lines.len(), 1);
        let (text, _) = body_texts(&mail.stripped);
        assert_eq!(text, "We need your logs.\r\n");
    }

    #[test]
    fn only_commands_above_a_quote_say_nothing() {
        let raw = b"From: a@desk.test\r\nSubject: Re: x\r\n\r\n#close\r\n\r\nOn Mon, 2 Mar 2026, Carol wrote:\r\n> thanks, works now\r\n";
        let mail = read_agent_mail(raw);
        assert!(!mail.says_something);
        assert_eq!(
            String::from_utf8_lossy(&mail.stripped),
            "From: a@desk.test\r\nSubject: Re: x\r\n\r\nOn Mon, 2 Mar 2026, Carol wrote:\r\n> thanks, works now\r\n"
        );
        let plain = read_agent_mail(b"Subject: x\r\n\r\nNo commands here.\r\n");
        assert!(plain.commands.is_empty() && plain.says_something);
        assert!(!mail.words_below_quote && !plain.words_below_quote);
        // An answer written below the quote is not "only commands".
        let below = read_agent_mail(
            b"Subject: Re: x\r\n\r\n#close\r\n\r\nOn Mon, Carol wrote:\r\n> broken\r\n\r\nFixed it, restart please.\r\n",
        );
        assert!(!below.says_something && below.words_below_quote);
    }

    #[test]
    fn prose_after_a_hash_is_sent_whole_in_text_and_html() {
        let raw = b"From: a@desk.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n#tag vipHi Heidi, we are looking into your server right now.\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<html><body><p>#tag vipHi Heidi, we are looking into your server right now.</p></body></html>\r\n--b--\r\n";
        let mail = read_agent_mail(raw);
        assert!(mail.commands.is_empty() && mail.says_something);
        assert_eq!(mail.stripped, raw.to_vec());
        // Commands above such a line are cut from both parts; the line stays.
        let raw = String::from_utf8_lossy(raw)
            .replace("<p>#tag vipHi", "<p>#close<br>#tag vipHi")
            .replace("\r\n\r\n#tag vipHi", "\r\n\r\n#close\r\n#tag vipHi");
        let mail = read_agent_mail(raw.as_bytes());
        assert_eq!(mail.commands.lines.len(), 1);
        let (text, html) = body_texts(&mail.stripped);
        assert!(text.starts_with("#tag vipHi Heidi"), "{text:?}");
        assert!(
            html.contains("<p>#tag vipHi Heidi") && !html.contains("#close"),
            "{html}"
        );
    }

    #[test]
    fn odd_headers_pass_through_as_the_mime_scanner_reads_them() {
        // A stray whitespace line before the first field goes; LF line
        // endings, a line without colon and a last field without line
        // ending stay as written (the last one completed with CRLF).
        let raw = b" \r\nFrom: a@desk.test\nNo colon here\nsubject : old\n\tfolded\nX-Last: 1";
        let out = rewrite_header(raw, &[HeaderEdit::raw("Subject", "new")]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "From: a@desk.test\nNo colon here\nSubject: new\r\nX-Last: 1\r\n\r\n"
        );
    }

    #[test]
    fn header_fields_are_replaced_in_place_and_added_at_the_end() {
        let raw = b"From: Alice <alice@desk.test>\r\nSubject: Re: VPN\r\n drops\r\nBcc: boss@desk.test\r\nX-Other: kept\r\n\r\nbody\r\n";
        let out = rewrite_header(
            raw,
            &[
                HeaderEdit::address("From", "Alice via Support", "support@desk.test"),
                HeaderEdit::text("Subject", "[#12] Re: VPN drops – again"),
                HeaderEdit::remove("Bcc"),
                HeaderEdit::raw("Reply-To", "<support+12@desk.test>"),
            ],
        );
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("From: \"Alice via Support\" <support@desk.test>\r\nSubject: "),
            "{out}"
        );
        assert!(!out.contains("Bcc") && !out.contains(" drops\r\n"), "{out}");
        assert!(
            out.ends_with("X-Other: kept\r\nReply-To: <support+12@desk.test>\r\n\r\nbody\r\n"),
            "{out}"
        );
        let parsed = MessageParser::default().parse(out.as_bytes());
        assert_eq!(
            parsed.as_ref().and_then(|m| m.subject()),
            Some("[#12] Re: VPN drops – again")
        );
        assert_eq!(
            header_value(raw, "subject").as_deref(),
            Some("Re: VPN drops")
        );
    }
}
