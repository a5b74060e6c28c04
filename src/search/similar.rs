//! "Possibly related" notes: when a ticket opens, its first message is
//! compared with the resolved and closed tickets of its queue, and up to
//! `similar_max` of them are named in an internal note on it, so that the
//! agent who picks it up starts from how the last one was solved.
//!
//! The query is built here rather than with tantivy's MoreLikeThisQuery,
//! which panics (an idf assertion) once the index holds deleted documents
//! (every ticket change leaves some until segments merge). Like it, it
//! takes the new message's most distinctive words (frequency × idf, words
//! no other document has left out) as weighted optional terms.
//!
//! Scores of such a query are sums of term weights and mean
//! nothing on their own; a candidate is kept when it scores at least
//! `similar_min_score` times what the new ticket's own message scores
//! against the same query (the best any document can do).

use super::document::MessageText;
use super::tokenizer::{is_cjk, similarity_analyzer};
use super::{SearchError, SearchIndex};
use crate::config::Config;
use crate::domain::ticket::{EventKind, MessageKind};
use crate::store::{Store, SystemNote};
use std::collections::HashMap;
use std::sync::Arc;
use tantivy::Term;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;

impl SearchIndex {
    /// Tickets of `queue` that are resolved or closed and read like
    /// `subject` and `body`, best first with their scores, other than
    /// `ticket` itself.
    pub fn similar_tickets(
        &self,
        ticket: i64,
        queue: &str,
        subject: &str,
        body: &str,
        max: usize,
        min_score: f32,
    ) -> Result<Vec<(i64, f32)>, SearchError> {
        let f = self.fields;
        let terms = self.distinctive_terms(&[(f.subject, subject), (f.body, body)])?;
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let like = || -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                terms
                    .iter()
                    .map(|(term, weight)| {
                        let query: Box<dyn Query> = Box::new(BoostQuery::new(
                            Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                            *weight,
                        ));
                        (Occur::Should, query)
                    })
                    .collect(),
            ))
        };
        let this_ticket = || -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_u64(f.ticket, u64::try_from(ticket).unwrap_or_default()),
                IndexRecordOption::Basic,
            ))
        };
        let own = BooleanQuery::new(vec![(Occur::Must, like()), (Occur::Must, this_ticket())]);
        let Some(reference) = self.top_tickets(&own, 1)?.first().map(|h| h.1) else {
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
            (
                Occur::Must,
                self.keyword_query(f.queue, &queue.to_lowercase()),
            ),
            (Occur::MustNot, this_ticket()),
            (Occur::MustNot, self.keyword_query(f.disposition, "spam")),
            (Occur::MustNot, self.keyword_query(f.disposition, "trash")),
            (Occur::MustNot, self.keyword_query(f.kind, "system")),
        ]);
        let mut hits = self.top_tickets(&candidates, max)?;
        hits.retain(|hit| hit.1 >= reference * min_score);
        Ok(hits)
    }

    /// The best `max` tickets among the best-scoring messages: the few
    /// top documents are enough here, and collecting them is far cheaper
    /// than grouping every match (a similarity query matches most of the
    /// index through its common words).
    fn top_tickets(&self, query: &dyn Query, max: usize) -> Result<Vec<(i64, f32)>, SearchError> {
        let searcher = self.reader.searcher();
        let top = searcher.search(query, &TopDocs::with_limit(max * 10).order_by_score())?;
        let mut tickets: Vec<(i64, f32)> = Vec::with_capacity(max);
        for (score, address) in top {
            let column = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64("ticket")?;
            let Some(ticket) = column.first(address.doc_id) else {
                continue;
            };
            let ticket = i64::try_from(ticket).unwrap_or(i64::MAX);
            if !tickets.iter().any(|(t, _)| *t == ticket) {
                tickets.push((ticket, score));
                if tickets.len() == max {
                    break;
                }
            }
        }
        Ok(tickets)
    }

    /// The words of `texts` that say most about them: the most frequent
    /// ones weighted by rarity, at most [`QUERY_TERMS`].
    fn distinctive_terms(&self, texts: &[(Field, &str)]) -> Result<Vec<(Term, f32)>, SearchError> {
        let searcher = self.reader.searcher();
        let documents = searcher.num_docs().max(1);
        let mut frequencies: HashMap<Term, usize> = HashMap::new();
        let mut analyzer = similarity_analyzer();
        for (field, text) in texts {
            let mut stream = analyzer.token_stream(text);
            while let Some(token) = stream.next() {
                let word = &token.text;
                if word.chars().count() >= 3 || word.chars().any(is_cjk) {
                    *frequencies
                        .entry(Term::from_field_text(*field, word))
                        .or_default() += 1;
                }
            }
        }
        let mut weighted = Vec::with_capacity(frequencies.len());
        for (term, frequency) in frequencies {
            // Deleted documents still count in doc_freq until a merge.
            let doc_freq = searcher.doc_freq(&term)?.min(documents);
            // Only the new message has it: it cannot relate to anything.
            if doc_freq < 2 {
                continue;
            }
            let idf = (1.0 + (documents - doc_freq) as f32 / (doc_freq as f32 + 0.5)).ln();
            weighted.push((term, frequency as f32 * idf));
        }
        weighted.sort_by(|a, b| b.1.total_cmp(&a.1));
        weighted.truncate(QUERY_TERMS);
        Ok(weighted)
    }
}

/// Words a similarity query is made of at most.
const QUERY_TERMS: usize = 30;

/// Adds the note to a new ticket when similar tickets exist; true when a
/// note was added.
pub async fn add_note(
    store: &Store,
    config: &Config,
    index: Arc<SearchIndex>,
    ticket: i64,
) -> Result<bool, SearchError> {
    let hostname = &config.hostname;
    let config = &config.search;
    if !config.similar || config.similar_max == 0 {
        return Ok(false);
    }
    let current = store.ticket(ticket).await?;
    let messages = store.indexable_messages_of(&[ticket], i64::MAX).await?;
    let Some(first) = messages.iter().find(|m| m.kind == MessageKind::Customer) else {
        return Ok(false);
    };
    let text = MessageText::parse(&first.raw);
    let subject = if text.subject.is_empty() {
        first.subject.clone()
    } else {
        text.subject
    };
    let (queue, max, min_score) = (
        current.queue.clone(),
        config.similar_max,
        config.similar_min_score,
    );
    // CPU work, and tantivy code that may panic on what it finds: off the
    // runtime, where a panic ends only this task.
    let hits = tokio::task::spawn_blocking(move || {
        index.similar_tickets(ticket, &queue, &subject, &text.body, max, min_score)
    })
    .await
    .map_err(|err| SearchError::Task(err.to_string()))??;
    if hits.is_empty() {
        return Ok(false);
    }
    let mut lines = Vec::with_capacity(hits.len());
    for (number, _) in &hits {
        let other = store.ticket(*number).await?;
        let when = other.done_at.unwrap_or(other.updated_at).format("%Y-%m-%d");
        lines.push(format!(
            "Possibly related: #{} {} — {} {when}",
            other.number, other.subject, other.status
        ));
    }
    let note = compose(hostname, ticket, &lines)?;
    Ok(store
        .add_system_note(ticket, chrono::Utc::now(), EventKind::SimilarTickets, &note)
        .await?)
}

fn compose(hostname: &str, ticket: i64, lines: &[String]) -> Result<SystemNote, SearchError> {
    // One note per ticket: the same id every time, so the store keeps one.
    let message_id = format!("similar.{ticket}@{}", hostname.to_lowercase());
    let body = format!(
        "{}\n\nFound by postdesk's search in the resolved and closed tickets of this queue.\n",
        lines.join("\n")
    );
    SystemNote::compose(
        hostname,
        ticket,
        message_id,
        "Possibly related tickets",
        &body,
        lines.join("; "),
    )
    .map_err(|err| SearchError::Task(format!("cannot compose the note: {err}")))
}
