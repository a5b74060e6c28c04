//! Shared templates in agents' mail: `#template NAME` at the top of a
//! reply inserts the queue's template of that name where the command was,
//! and `{{ … }}` placeholders in what goes to the customer are filled when
//! it is sent. Also the mail a template is (read from an APPEND to the
//! Templates folder, built for one added on the command line).
//!
//! What fails (no such template, a placeholder that does not evaluate)
//! sends nothing: submission holds the reply as a note and tells the
//! agent why, in the ticket.

use crate::App;
use crate::domain::commands::{Command, Commands};
use crate::domain::templates::{
    self, PlaceholderContext, TemplateBody, fill_placeholders, insert_into_html, insert_into_text,
};
use crate::store::StoreError;
use mail_parser::{MessageParser, PartType};

/// A template as a mail says it: subject, text and HTML (if it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMail {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Reads the mail a template was appended as.
pub fn read_template_mail(raw: &[u8]) -> Option<TemplateMail> {
    std::panic::catch_unwind(|| {
        let message = MessageParser::default().parse(raw)?;
        let html = message
            .html_body
            .first()
            .and_then(|id| message.part(*id))
            .and_then(|part| match &part.body {
                PartType::Html(html) => Some(html.to_string()),
                _ => None,
            });
        Some(TemplateMail {
            subject: message.subject().unwrap_or_default().to_string(),
            text: message
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            html,
        })
    })
    .ok()
    .flatten()
}

/// The mail for a template added without one (the command line).
pub fn build_template_mail(
    subject: &str,
    text: &str,
    author: &str,
    message_id: &str,
) -> Result<Vec<u8>, String> {
    let mut raw = mail_builder::MessageBuilder::new()
        .from(author.to_string())
        .subject(subject.to_string())
        .message_id(message_id.to_string())
        .text_body(text.to_string())
        .write_to_vec()
        .map_err(|e| e.to_string())?;
    if !raw.ends_with(b"\r\n") {
        raw.extend_from_slice(b"\r\n");
    }
    Ok(raw)
}

/// The `#template` names of a mail's command block, in order.
pub fn template_names(commands: &Commands) -> Vec<(usize, String, String)> {
    commands
        .parsed()
        .filter_map(|(line, command)| match command {
            Command::Template(name) => Some((line.line, line.text.clone(), name.clone())),
            _ => None,
        })
        .collect()
}

/// What a reply's templates and placeholders need, read before it is
/// filed: the bodies of its `#template`s and what the placeholders say.
#[derive(Debug, Clone)]
pub struct ReplyTemplates {
    pub inserts: Vec<TemplateBody>,
    pub context: PlaceholderContext,
}

impl ReplyTemplates {
    /// Loads the `#template`s of the queue. Err: every problem, worded
    /// for the agent's note.
    pub async fn load(
        app: &App,
        commands: &Commands,
        queue: &str,
        context: PlaceholderContext,
    ) -> Result<ReplyTemplates, Result<Vec<String>, StoreError>> {
        let mut inserts = Vec::new();
        let mut errors = Vec::new();
        for (line, text, name) in template_names(commands) {
            let name = templates::template_name(&name);
            match app.store.template_named(queue, &name).await.map_err(Err)? {
                Some(template) => inserts.push(TemplateBody::new(
                    &template.body_text,
                    template.body_html.as_deref(),
                )),
                None => {
                    let known: Vec<String> = app
                        .store
                        .templates(Some(&[queue.to_string()]))
                        .await
                        .map_err(Err)?
                        .into_iter()
                        .map(|t| t.name)
                        .collect();
                    let known = if known.is_empty() {
                        "none yet".to_string()
                    } else {
                        known.join(", ")
                    };
                    errors.push(format!(
                        "line {line}: {text}: no template '{name}' in queue '{queue}' (templates: {known})"
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(ReplyTemplates { inserts, context })
        } else {
            Err(Ok(errors))
        }
    }

    /// The mail (commands already cut out) with the templates inserted and
    /// the placeholders filled for `ticket`; unchanged when there is
    /// nothing to do. Err: what did not work, nothing half done.
    pub fn apply(&self, raw: &[u8], ticket: i64) -> Result<Vec<u8>, Vec<String>> {
        let mut context = self.context.clone();
        context.ticket.number = ticket;
        // A body in base64 hides its braces: it is read to know.
        let might_fill = templates::has_placeholders(&String::from_utf8_lossy(raw))
            || raw.windows(6).any(|w| w.eq_ignore_ascii_case(b"base64"));
        if self.inserts.is_empty() && !might_fill {
            return Ok(raw.to_vec());
        }
        super::rewrite::rewrite_bodies(raw, |text, html| {
            let inserted = if html {
                insert_into_html(text, &self.inserts)
            } else {
                insert_into_text(text, &self.inserts)
            };
            fill_placeholders(&inserted, &context, html)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::templates::{
        PlaceholderContext, PlaceholderPerson, PlaceholderQueue, PlaceholderTicket,
    };

    fn templates(inserts: Vec<TemplateBody>) -> ReplyTemplates {
        let person = |name: &str, address: &str| PlaceholderPerson {
            name: name.into(),
            address: address.into(),
        };
        ReplyTemplates {
            inserts,
            context: PlaceholderContext {
                customer: person("Carol", "carol@example.com"),
                ticket: PlaceholderTicket {
                    number: 0,
                    subject: "VPN".into(),
                },
                agent: person("Alice", "alice@desk.test"),
                queue: PlaceholderQueue {
                    name: "support".into(),
                    address: "support@desk.test".into(),
                },
            },
        }
    }

    fn texts(raw: &[u8]) -> (String, String) {
        let message = MessageParser::default().parse(raw).expect("parses");
        (
            message.body_text(0).expect("text").into_owned(),
            message.body_html(0).expect("html").into_owned(),
        )
    }

    #[test]
    fn base64_and_quoted_printable_parts_are_filled_and_encoded_again() {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD
            .encode("Hi {{ customer.name }}, ticket {{ ticket.number }}.\r\n");
        let raw = format!(
            "From: a@desk.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{text}\r\n\
             --b\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             <html><body><p>Hi {{{{ customer.name }}}}</p></body></html>\r\n--b--\r\n"
        );
        let refund = TemplateBody::new("Refunded, {{ agent.name }}.", None);
        let filled = templates(vec![refund])
            .apply(raw.as_bytes(), 42)
            .expect("filled");
        let (text, html) = texts(&filled);
        assert!(
            text.starts_with("Refunded, Alice.\r\n\r\nHi Carol, ticket 42."),
            "{text}"
        );
        assert!(
            html.contains("<body><div>Refunded, Alice.</div><br>"),
            "{html}"
        );
        assert!(html.contains("<p>Hi Carol</p>"), "{html}");
        // The header is as it was.
        assert!(filled.starts_with(b"From: a@desk.test\r\nSubject: x\r\n"));
    }

    #[test]
    fn a_mail_without_placeholders_is_left_byte_for_byte() {
        let raw = b"From: a@desk.test\r\nSubject: x\r\n\r\nJust text, {not} a placeholder.\r\n";
        assert_eq!(templates(Vec::new()).apply(raw, 1), Ok(raw.to_vec()));
    }

    #[test]
    fn a_latin1_part_takes_no_unicode() {
        let raw = b"From: a@desk.test\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n\
            Hi {{ customer.name }}\r\n";
        let mut t = templates(Vec::new());
        assert!(t.apply(raw, 1).is_ok());
        t.context.customer.name = "Zo\u{eb}".into();
        let refused = t.apply(raw, 1);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.iter().any(|p| p.contains("iso-8859-1"))),
            "{refused:?}"
        );
    }
}
