//! What the search index is derived from: messages by id and ticket
//! changes by event id, read in id order so that the indexer can keep one
//! cursor for each (see `search::indexer`).

use super::events::placeholders;
use super::{Result, Store, dispatch_read, parse_column};
use crate::domain::ticket::{Disposition, EventKind, MessageKind, NewEvent, Priority, Status};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// A message as the index sees it. `raw` is empty for messages the index
/// leaves out (see [`IndexableMessage::indexed`]): the cursor still passes
/// over their ids.
#[derive(Debug, Clone)]
pub struct IndexableMessage {
    pub id: i64,
    pub ticket: Option<i64>,
    pub kind: MessageKind,
    pub sender: String,
    pub from_name: Option<String>,
    pub subject: String,
    pub received_at: DateTime<Utc>,
    pub raw: Vec<u8>,
}

impl IndexableMessage {
    /// Mail in a ticket, other than postdesk's automatic answers (the same
    /// acknowledgement on every ticket would only add noise; the IMAP
    /// folders leave them out too).
    pub fn indexed(&self) -> bool {
        self.ticket.is_some() && !matches!(self.kind, MessageKind::AutoReply | MessageKind::Unfiled)
    }

    /// A note postdesk wrote itself (delivery failure, similar tickets):
    /// indexed as kind `system`, which searches leave out unless asked
    /// (a "possibly related" note would make every new ticket match the
    /// old ones it names).
    pub fn is_system_note(&self) -> bool {
        self.kind == MessageKind::Note && self.sender.starts_with("postdesk@")
    }
}

/// A ticket's fields that every one of its indexed messages carries.
#[derive(Debug, Clone)]
pub struct IndexableTicket {
    pub number: i64,
    pub queue: String,
    pub status: Status,
    pub priority: Priority,
    /// Junk or Trash, when the ticket was put aside.
    pub disposition: Option<Disposition>,
    pub customer_address: String,
    pub customer_name: Option<String>,
    pub tags: Vec<String>,
}

/// An event of the ticket log, as the index follows it.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub event: i64,
    pub ticket: i64,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
}

/// A note postdesk adds to a ticket by itself (delivery failures, similar
/// tickets): stored as an internal note, never sent.
#[derive(Debug, Clone)]
pub struct SystemNote {
    /// What happened, also written as the ticket event.
    pub detail: String,
    pub message_id: String,
    pub sender: String,
    pub subject: String,
    pub raw: Vec<u8>,
}

impl SystemNote {
    /// Writes the note as a message from `postdesk@HOSTNAME`, marked as a
    /// note (`X-Postdesk-Note`) and as automatic mail.
    pub fn compose(
        hostname: &str,
        ticket: i64,
        message_id: String,
        subject: &str,
        body: &str,
        detail: String,
    ) -> std::result::Result<SystemNote, String> {
        let sender = format!("postdesk@{}", hostname.to_lowercase());
        let raw_header = |text: &str| mail_builder::headers::raw::Raw::new(text.to_string());
        let raw = mail_builder::MessageBuilder::new()
            .from(("postdesk".to_string(), sender.clone()))
            .subject(format!("[#{ticket}] {subject}"))
            .message_id(message_id.clone())
            .header("X-Postdesk-Note", raw_header("yes"))
            .header("Auto-Submitted", raw_header("auto-generated"))
            .text_body(body.to_string())
            .write_to_vec()
            .map_err(|err| err.to_string())?;
        Ok(SystemNote {
            detail,
            message_id,
            sender,
            subject: subject.to_string(),
            raw,
        })
    }
}

const INDEXABLE_COLUMNS: &str = "id, ticket, kind, sender, from_name, subject, received_at,
    CASE WHEN ticket IS NULL OR kind IN ('auto_reply', 'unfiled') THEN NULL ELSE raw END AS raw";

/// `select` for the rows of an id cursor: ids above `$1` or among `gaps`
/// ids from `$3` on, in id order, at most `$2`.
fn after_cursor(select: &str, gaps: usize) -> String {
    let mut sql = format!("{select} WHERE id > $1");
    if gaps > 0 {
        sql.push_str(&format!(" OR id IN ({})", placeholders(3, gaps)));
    }
    sql.push_str(" ORDER BY id LIMIT $2");
    sql
}

macro_rules! indexable_from_row {
    ($row:expr) => {{
        let row = $row;
        IndexableMessage {
            id: row.try_get("id")?,
            ticket: row.try_get("ticket")?,
            kind: parse_column(&row.try_get::<String, _>("kind")?, "message kind")?,
            sender: row.try_get("sender")?,
            from_name: row.try_get("from_name")?,
            subject: row.try_get("subject")?,
            received_at: row.try_get("received_at")?,
            raw: row
                .try_get::<Option<Vec<u8>>, _>("raw")?
                .unwrap_or_default(),
        }
    }};
}

impl Store {
    /// Messages with an id above `after` or in `also` (ids the indexer saw
    /// missing before: a transaction that had not committed yet), by id.
    pub async fn indexable_messages(
        &self,
        after: i64,
        also: &[i64],
        limit: i64,
    ) -> Result<Vec<IndexableMessage>> {
        let sql = after_cursor(
            &format!("SELECT {INDEXABLE_COLUMNS} FROM messages"),
            also.len(),
        );
        dispatch_read!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(limit);
            for id in also {
                query = query.bind(*id);
            }
            let rows = query.fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(indexable_from_row!(row));
            }
            Ok(out)
        })
    }

    /// The messages of these tickets with an id up to `up_to`, for indexing
    /// them again after their ticket changed.
    pub async fn indexable_messages_of(
        &self,
        tickets: &[i64],
        up_to: i64,
    ) -> Result<Vec<IndexableMessage>> {
        let mut out = Vec::new();
        for chunk in tickets.chunks(500) {
            let sql = format!(
                "SELECT {INDEXABLE_COLUMNS} FROM messages WHERE id <= $1 AND ticket IN ({}) ORDER BY id",
                placeholders(2, chunk.len())
            );
            dispatch_read!(self, |pool| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(up_to);
                for number in chunk {
                    query = query.bind(*number);
                }
                for row in &query.fetch_all(pool).await? {
                    out.push(indexable_from_row!(row));
                }
            });
        }
        Ok(out)
    }

    /// Ticket events with an id above `after` (or in `also`), by id: the
    /// changes the index has to follow.
    pub async fn ticket_changes(
        &self,
        after: i64,
        also: &[i64],
        limit: i64,
    ) -> Result<Vec<LoggedEvent>> {
        let sql = after_cursor("SELECT id, ticket, kind, at FROM ticket_events", also.len());
        dispatch_read!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(limit);
            for id in also {
                query = query.bind(*id);
            }
            let rows = query.fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(LoggedEvent {
                    event: row.try_get("id")?,
                    ticket: row.try_get("ticket")?,
                    kind: parse_column(&row.try_get::<String, _>("kind")?, "event kind")?,
                    at: row.try_get("at")?,
                });
            }
            Ok(out)
        })
    }

    /// The indexed fields of these tickets.
    pub async fn indexable_tickets(
        &self,
        numbers: &[i64],
    ) -> Result<HashMap<i64, IndexableTicket>> {
        let mut out = HashMap::with_capacity(numbers.len());
        for chunk in numbers.chunks(500) {
            let list = placeholders(1, chunk.len());
            let sql = format!(
                "SELECT t.number, q.name AS queue, t.status, t.priority, t.disposition,
                     t.customer_address, t.customer_name
                 FROM tickets t JOIN queues q ON q.id = t.queue_id WHERE t.number IN ({list})"
            );
            let tags_sql = format!("SELECT ticket, tag FROM ticket_tags WHERE ticket IN ({list})");
            dispatch_read!(self, |pool| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                let mut tags_query =
                    sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(tags_sql));
                for number in chunk {
                    query = query.bind(*number);
                    tags_query = tags_query.bind(*number);
                }
                for row in &query.fetch_all(pool).await? {
                    let ticket = IndexableTicket {
                        number: row.try_get("number")?,
                        queue: row.try_get("queue")?,
                        status: parse_column(&row.try_get::<String, _>("status")?, "status")?,
                        priority: parse_column(&row.try_get::<String, _>("priority")?, "priority")?,
                        disposition: match row.try_get::<Option<String>, _>("disposition")? {
                            Some(d) => Some(parse_column(&d, "disposition")?),
                            None => None,
                        },
                        customer_address: row.try_get("customer_address")?,
                        customer_name: row.try_get("customer_name")?,
                        tags: Vec::new(),
                    };
                    out.insert(ticket.number, ticket);
                }
                for (ticket, tag) in tags_query.fetch_all(pool).await? {
                    if let Some(t) = out.get_mut(&ticket) {
                        t.tags.push(tag);
                    }
                }
            });
        }
        Ok(out)
    }

    /// The highest message id and when that message arrived: how far the
    /// index has to go.
    pub async fn newest_message(&self) -> Result<Option<(i64, DateTime<Utc>)>> {
        dispatch_read!(self, |pool| {
            Ok(
                sqlx::query_as("SELECT id, received_at FROM messages ORDER BY id DESC LIMIT 1")
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Messages the index has not read: above `after`, or among the
    /// `gaps` below it. How many, and when the oldest of them arrived (the
    /// index lag).
    pub async fn unindexed_messages(
        &self,
        after: i64,
        gaps: &[i64],
    ) -> Result<(i64, Option<DateTime<Utc>>)> {
        let mut condition = "id > $1".to_string();
        if !gaps.is_empty() {
            condition.push_str(&format!(" OR id IN ({})", placeholders(2, gaps.len())));
        }
        let count_sql = format!("SELECT COUNT(*) FROM messages WHERE {condition}");
        let oldest_sql =
            format!("SELECT received_at FROM messages WHERE {condition} ORDER BY id LIMIT 1");
        dispatch_read!(self, |pool| {
            let mut count = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)).bind(after);
            let mut oldest = sqlx::query_scalar(sqlx::AssertSqlSafe(oldest_sql)).bind(after);
            for id in gaps {
                count = count.bind(*id);
                oldest = oldest.bind(*id);
            }
            Ok((
                count.fetch_one(pool).await?,
                oldest.fetch_optional(pool).await?,
            ))
        })
    }

    /// Adds a system note to a ticket, with its event, unless a note with
    /// the same Message-ID is there already (so a note added again after a
    /// crash is added once). True when it was added.
    pub async fn add_system_note(
        &self,
        ticket: i64,
        now: DateTime<Utc>,
        event_kind: EventKind,
        note: &SystemNote,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let added = tx
            .insert_system_note(
                ticket,
                &note.message_id,
                &note.sender,
                &note.subject,
                &note.raw,
                now,
            )
            .await?;
        if added {
            tx.insert_events(&[NewEvent {
                ticket,
                at: now,
                actor: "postdesk".to_string(),
                kind: event_kind,
                detail: note.detail.clone(),
            }])
            .await?;
        }
        tx.commit().await?;
        if added {
            self.announce(super::Change::Ticket(ticket));
        }
        Ok(added)
    }
}
