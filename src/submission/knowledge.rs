//! Mail to the knowledge address (`[knowledge] address`, default
//! `kb@HOSTNAME`) from an agent on the submission port: a new mail is a
//! new draft (title: the subject; body: the text; the HTML part kept with
//! the revision), a reply to an article's mail is its next revision, and
//! `#publish`, `#archive`, `#draft`, `#internal`, `#public`,
//! `#category NAME` at the top set its state. What the agent may do is
//! decided in `domain::knowledge`; a refusal writes nothing.

use super::rewrite::Insertion;
use super::{SubmissionEnvelope, SubmitError, read_header};
use crate::App;
use crate::domain::address;
use crate::domain::commands::{Command, Commands};
use crate::domain::knowledge::{
    self, ArticleChange, ArticleCommands, ArticleState, ConversationPart, PrivateDetails,
    Visibility, draft_from_conversation,
};
use crate::domain::quoting;
use crate::domain::ticket::MessageKind;
use crate::store::{Article, ArticleWrite, LoginAgent, Revision, StoreError, TicketUsage};
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
        scopes: &app.kb_scopes,
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

/// What the `#kb` lines at the top of an agent's mail to a ticket ask
/// (issue 19): articles to insert, a draft to write, and why a line
/// cannot be done.
#[derive(Debug, Clone, Default)]
pub struct KbAsked {
    /// The inserted articles' text and HTML, where the command block was.
    pub insertion: Option<Insertion>,
    /// The articles inserted (id, title), in order.
    pub inserted: Vec<(i64, String)>,
    /// `#kb draft`.
    pub draft: bool,
    /// "line N: #kb 42: why", as command errors read.
    pub errors: Vec<String>,
}

/// Why an article may not go to a customer, in a few words.
fn not_public(article: &Article) -> &'static str {
    match (article.content.state, article.content.visibility) {
        (ArticleState::Draft, _) => "a draft",
        (ArticleState::Archived, _) => "archived",
        (ArticleState::Published, Visibility::Internal) => "internal",
        (ArticleState::Published, Visibility::Public) => "public",
    }
}

/// Reads the `#kb` commands: `#kb 42` inserts article 42 when customers
/// may read it (published and public), and is refused otherwise; no
/// other article's text is ever put into the mail.
pub async fn read_kb_commands(app: &App, commands: &Commands) -> Result<KbAsked, StoreError> {
    let mut asked = KbAsked::default();
    let mut text = String::new();
    let mut html = String::new();
    for (line, command) in commands.parsed() {
        let fail = |why: String| format!("line {}: {}: {why}", line.line, line.text);
        match command {
            Command::KbDraft => asked.draft = true,
            Command::KbInsert(id) => match app.store.kb_article(*id).await? {
                None => asked.errors.push(fail(format!("there is no article {id}"))),
                Some(article) if !article.is_public() => asked.errors.push(fail(format!(
                    "article {id} is {}: only published public articles go to customers \
                     (its text was not inserted)",
                    not_public(&article)
                ))),
                Some(article) => {
                    if !text.is_empty() {
                        text.push_str("\n\n");
                    }
                    text.push_str(article.content.body_text.trim_end());
                    html.push_str(&article.content.body_html);
                    asked
                        .inserted
                        .push((article.id, article.content.title.clone()));
                }
            },
            _ => {}
        }
    }
    if !asked.inserted.is_empty() {
        asked.insertion = Some(Insertion { text, html });
    }
    Ok(asked)
}

/// Writes a draft article from a ticket's conversation (`#kb draft`): its
/// customer's mail and the agents' public replies, without the customer's
/// details (see `domain::knowledge::draft_from_conversation`), in the
/// ticket queue's first knowledge category (else the category named like
/// the queue; see `CategoryScopes::draft_category`), linked to the ticket.
/// Returns the revision, or why there is none (for the agent's note).
pub async fn draft_from_ticket(
    app: &App,
    agent: &LoginAgent,
    ticket: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<Revision, String>, StoreError> {
    let facts = app.store.ticket(ticket).await?;
    let mut parts = Vec::new();
    let mut names: Vec<String> = facts.customer_name.iter().cloned().collect();
    names.extend(knowledge::name_in_address(&facts.customer_address));
    names.push(agent.name.clone());
    for message in app.store.ticket_messages(ticket).await? {
        let from_customer = match message.kind {
            MessageKind::Customer => true,
            MessageKind::Reply => false,
            _ => continue,
        };
        if from_customer {
            names.extend(knowledge::name_in_address(&message.sender));
        }
        if let Some(name) = &message.from_name {
            // "Alice via Support": the agent's own name.
            let name = name.split(" via ").next().unwrap_or(name);
            names.push(name.to_string());
        }
        let raw = app.store.raw_message(message.id).await?;
        let (text, _) = bodies(&raw);
        parts.push(ConversationPart {
            from_customer,
            text,
        });
    }
    if parts.is_empty() {
        return Ok(Err("the ticket has no conversation to draft from".into()));
    }
    let body = draft_from_conversation(&parts, &PrivateDetails { names });
    let title = match facts.subject.trim() {
        "" => format!("From ticket #{ticket}"),
        subject => subject.to_string(),
    };
    let actor = agent.actor();
    let write = ArticleWrite {
        article: None,
        actor: Some(&actor),
        scopes: &app.kb_scopes,
        author: agent.email.to_lowercase(),
        change: ArticleChange {
            title: Some(title),
            category: Some(app.kb_scopes.draft_category(&facts.queue)),
            body_text: Some(body),
            ..ArticleChange::default()
        },
        revert_to: None,
        source_html: None,
        message_ids: Vec::new(),
        now,
    };
    let revision = match app.store.kb_write(&write).await {
        Ok(revision) => revision,
        Err(StoreError::Denied(why)) => return Ok(Err(why.to_string())),
        Err(StoreError::Conflict(why)) => return Ok(Err(why)),
        Err(err) => return Err(err),
    };
    app.store
        .kb_record_ticket_usage(
            ticket,
            revision.article,
            TicketUsage::Drafted,
            &agent.email.to_lowercase(),
            &format!(
                "draft article {} '{}' written from the ticket by {} in category '{}' (#kb draft)",
                revision.article, revision.content.title, agent.email, revision.content.category
            ),
            now,
        )
        .await?;
    Ok(Ok(revision))
}
