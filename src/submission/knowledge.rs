//! Mail to the knowledge address (`[knowledge] address`, default
//! `kb@HOSTNAME`) from an agent on the submission port: a new mail is a
//! new draft (title: the subject; body: the text; the HTML part kept with
//! the revision), a reply to an article's mail is its next revision, and
//! `#publish`, `#archive`, `#draft`, `#internal`, `#public`,
//! `#category NAME` at the top set its state. What the agent may do is
//! decided in `domain::knowledge`; a refusal writes nothing.

use super::{SubmissionEnvelope, SubmitError, read_header};
use crate::App;
use crate::domain::address;
use crate::domain::knowledge::{ArticleChange, ArticleCommands};
use crate::domain::quoting;
use crate::store::{ArticleWrite, LoginAgent, StoreError};
use mail_parser::{MessageParser, PartType};

/// Whether a mail's recipients include the knowledge address.
pub fn addressed(app: &App, rcpt_to: &[String]) -> bool {
    let knowledge = app.config.knowledge_address();
    rcpt_to.iter().any(|r| address::normalize(r) == knowledge)
}

/// Writes the article revision an agent's mail asks for; returns the
/// SMTP reply line.
pub async fn submit_article(
    app: &App,
    agent: &LoginAgent,
    envelope: &SubmissionEnvelope,
    raw: &[u8],
) -> Result<String, SubmitError> {
    let knowledge = app.config.knowledge_address();
    let others: Vec<String> = envelope
        .rcpt_to
        .iter()
        .map(|r| address::normalize(r))
        .filter(|r| *r != knowledge)
        .collect();
    if !others.is_empty() {
        return Err(SubmitError::Refused(format!(
            "550 5.7.1 Mail to the knowledge base <{knowledge}> goes to it alone \
             (also addressed: {}); nothing was written",
            others.join(", ")
        )));
    }
    let header = read_header(raw);
    let from = header
        .from
        .clone()
        .unwrap_or_else(|| address::normalize(&envelope.mail_from));
    if from != agent.email.to_lowercase() {
        return Err(SubmitError::Refused(format!(
            "550 5.7.1 <{from}> is not you: write to the knowledge base from your own address"
        )));
    }
    // The client sent the same mail again (a retry after a lost reply).
    if let Some(id) = &header.message_id
        && let Some(article) = app
            .store
            .kb_article_of_message(std::slice::from_ref(id))
            .await?
    {
        return Ok(format!("250 2.0.0 Already written as article {article}"));
    }
    let (text, html) = bodies(raw);
    let commands = ArticleCommands::read(&text)
        .map_err(|why| SubmitError::Refused(format!("550 5.5.4 {why}; nothing was written")))?;
    let article = app.store.kb_article_of_message(&header.references).await?;
    // A reply's quoted text and signature are not the article's.
    let own = match article {
        Some(_) => quoting::split_quoted(&commands.rest).0,
        None => commands.rest.clone(),
    };
    let body = own.trim().to_string();
    let change = ArticleChange {
        title: match article {
            Some(_) => None,
            None => Some(header.subject.clone().unwrap_or_default()),
        },
        category: commands.category,
        visibility: commands.visibility,
        state: commands.state,
        body_text: (article.is_none() || !body.is_empty()).then(|| format!("{body}\n")),
        revert_to: None,
    };
    let actor = agent.actor();
    let write = ArticleWrite {
        article,
        actor: Some(&actor),
        author: agent.email.to_lowercase(),
        change,
        revert_to: None,
        source_html: html,
        message_ids: header.message_id.into_iter().collect(),
        now: chrono::Utc::now(),
    };
    match app.store.kb_write(&write).await {
        Ok(revision) => Ok(format!(
            "250 2.0.0 Article {} revision {} written: {} ({}, {}, {})",
            revision.article,
            revision.number,
            revision.summary,
            revision.content.category,
            revision.content.state,
            revision.content.visibility
        )),
        Err(StoreError::Denied(why)) => Err(SubmitError::Refused(format!(
            "550 5.7.1 {why}; nothing was written"
        ))),
        Err(StoreError::Conflict(why)) => Err(SubmitError::Refused(format!(
            "550 5.6.0 {why}; nothing was written"
        ))),
        Err(err) => Err(err.into()),
    }
}

/// The mail's text (from its HTML when it has no text part) and its HTML
/// part as sent, if it has one.
fn bodies(raw: &[u8]) -> (String, Option<String>) {
    // mail-parser has debug assertions that malformed MIME can reach.
    let parsed = std::panic::catch_unwind(|| {
        let message = MessageParser::default().parse(raw)?;
        let text = message
            .body_text(0)
            .map(|t| t.replace("\r\n", "\n"))
            .unwrap_or_default();
        let html = message
            .html_body
            .first()
            .and_then(|id| message.part(*id))
            .and_then(|part| match &part.body {
                PartType::Html(html) => Some(html.to_string()),
                _ => None,
            });
        Some((text, html))
    });
    match parsed {
        Ok(Some(bodies)) => bodies,
        _ => (String::new(), None),
    }
}
