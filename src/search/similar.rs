//! "Possibly related" notes: when a ticket opens, its first message is
//! compared with the resolved and closed tickets of its queue, and up to
//! `similar_max` of them are named in an internal note on it, so that the
//! agent who picks it up starts from how the last one was solved.
//!
//! Scores of a more-like-this query are sums of term weights and mean
//! nothing on their own; a candidate is kept when it scores at least
//! `similar_min_score` times what the new ticket's own message scores
//! against the same query (the best any document can do).

use super::document::MessageText;
use super::{SearchError, SearchIndex, TicketHit};
use crate::App;
use crate::domain::ticket::MessageKind;
use crate::store::SystemNote;
use tantivy::query::{BooleanQuery, MoreLikeThisQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, OwnedValue};
use tantivy::Term;

impl SearchIndex {
    /// Tickets of `queue` that are resolved or closed and read like
    /// `subject` and `body`, best first, other than `ticket` itself.
    pub fn similar_tickets(
        &self,
        ticket: i64,
        queue: &str,
        subject: &str,
        body: &str,
        max: usize,
        min_score: f32,
    ) -> Result<Vec<TicketHit>, SearchError> {
        let f = self.fields;
        let like = || -> Box<dyn Query> {
            Box::new(
                MoreLikeThisQuery::builder()
                    .with_min_doc_frequency(2)
                    .with_min_term_frequency(1)
                    .with_min_word_length(3)
                    .with_max_query_terms(30)
                    .with_document_fields(vec![
                        (f.subject, vec![OwnedValue::Str(subject.to_string())]),
                        (f.body, vec![OwnedValue::Str(body.to_string())]),
                    ]),
            )
        };
        let this_ticket = || -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_u64(f.ticket, u64::try_from(ticket).unwrap_or_default()),
                IndexRecordOption::Basic,
            ))
        };
        let own = BooleanQuery::new(vec![(Occur::Must, like()), (Occur::Must, this_ticket())]);
        let Some(reference) = self.best_tickets(&own, 1, None)?.first().map(|h| h.score) else {
            // Its message is not indexed (yet): nothing to compare with.
            return Ok(Vec::new());
        };
        let done = BooleanQuery::new(vec![
            (Occur::Should, self.keyword_query(f.status, "resolved")),
            (Occur::Should, self.keyword_query(f.status, "closed")),
        ]);
        let candidates = BooleanQuery::new(vec![
            (Occur::Must, like()),
            (Occur::Must, Box::new(done)),
            (Occur::Must, self.keyword_query(f.queue, &queue.to_lowercase())),
            (Occur::MustNot, this_ticket()),
            (Occur::MustNot, self.keyword_query(f.disposition, "spam")),
            (Occur::MustNot, self.keyword_query(f.disposition, "trash")),
        ]);
        let mut hits = self.best_tickets(&candidates, max, None)?;
        hits.retain(|hit| hit.score >= reference * min_score);
        Ok(hits)
    }
}

/// Adds the note to a new ticket when similar tickets exist; true when a
/// note was added.
pub async fn add_note(app: &App, index: &SearchIndex, ticket: i64) -> Result<bool, SearchError> {
    let config = &app.config.search;
    if !config.similar || config.similar_max == 0 {
        return Ok(false);
    }
    let current = app.store.ticket(ticket).await?;
    let messages = app.store.indexable_messages_of(&[ticket]).await?;
    let Some(first) = messages
        .iter()
        .find(|m| m.kind == MessageKind::Customer.as_str())
    else {
        return Ok(false);
    };
    let text = MessageText::parse(&first.raw);
    let subject = if text.subject.is_empty() {
        first.subject.clone()
    } else {
        text.subject
    };
    let hits = index.similar_tickets(
        ticket,
        &current.queue,
        &subject,
        &text.body,
        config.similar_max,
        config.similar_min_score,
    )?;
    if hits.is_empty() {
        return Ok(false);
    }
    let mut lines = Vec::with_capacity(hits.len());
    for hit in &hits {
        let other = app.store.ticket(hit.ticket).await?;
        let when = other
            .done_at
            .unwrap_or(other.updated_at)
            .format("%Y-%m-%d");
        lines.push(format!(
            "Possibly related: #{} {} — {} {when}",
            other.number, other.subject, other.status
        ));
    }
    let note = compose(&app.config.hostname, ticket, &lines)?;
    Ok(app
        .store
        .add_system_note(ticket, chrono::Utc::now(), "similar-tickets", &note)
        .await?)
}

fn compose(hostname: &str, ticket: i64, lines: &[String]) -> Result<SystemNote, SearchError> {
    let hostname = hostname.to_lowercase();
    let sender = format!("postdesk@{hostname}");
    // One note per ticket: the same id every time, so the store keeps one.
    let message_id = format!("similar.{ticket}@{hostname}");
    let subject = "Possibly related tickets".to_string();
    let body = format!(
        "{}\n\nFound by postdesk's search in the resolved and closed tickets of this queue.\n",
        lines.join("\n")
    );
    let raw_header = |text: &str| mail_builder::headers::raw::Raw::new(text.to_string());
    let raw = mail_builder::MessageBuilder::new()
        .from(("postdesk".to_string(), sender.clone()))
        .subject(format!("[#{ticket}] {subject}"))
        .message_id(message_id.clone())
        .header("X-Postdesk-Note", raw_header("yes"))
        .header("Auto-Submitted", raw_header("auto-generated"))
        .text_body(body)
        .write_to_vec()
        .map_err(|err| SearchError::Task(format!("cannot compose the note: {err}")))?;
    Ok(SystemNote {
        detail: lines.join("; "),
        message_id,
        sender,
        subject,
        raw,
    })
}
