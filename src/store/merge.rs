//! Merging and splitting tickets as the store executes them: read both
//! tickets (locked until the commit on PostgreSQL), let
//! [`crate::domain::merge`] decide, move the rows, and change both
//! tickets through the one ticket change ([`Tx::change_ticket`]), which
//! writes the events on both, all in one transaction. The IMAP views and
//! the search index follow from the events (both name the tickets), as for
//! any other change; the moved rows keep their ids, so a message keeps
//! its `\Seen` and keywords and only changes folders where the tickets'
//! views differ.

use super::{Change, Result, RowLock, Store, StoreError, Tx, dispatch_read, on_tx, parse_column};
use crate::domain::change::{Cause, ChangeRequest, TicketChange};
use crate::domain::merge::{
    self, MailItem, MergeError, MergeTicket, Moved, SplitError, follow_merges,
};
use crate::domain::permission::Actor;
use crate::domain::subject;
use crate::domain::ticket::{Disposition, MessageKind, Status};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

/// How far `merged into` pointers are followed (see [`follow_merges`]).
const MAX_MERGE_HOPS: usize = 16;

/// The ticket and where it was merged into, and so on along the chain
/// ($1: the ticket), at most [`MAX_MERGE_HOPS`] steps.
const MERGE_CHAIN: &str = "WITH RECURSIVE chain(number, merged_into, depth) AS (
        SELECT number, merged_into, 0 FROM tickets WHERE number = $1
        UNION ALL
        SELECT t.number, t.merged_into, c.depth + 1 FROM tickets t
        JOIN chain c ON t.number = c.merged_into WHERE c.depth < 16
    ) SELECT number, merged_into FROM chain";

/// The ticket holding `number`'s mail now, from the rows of [`MERGE_CHAIN`]
/// (None: no such ticket).
fn holder(number: i64, chain: &[(i64, Option<i64>)]) -> Option<i64> {
    if chain.is_empty() {
        return None;
    }
    let next: HashMap<i64, i64> = chain
        .iter()
        .filter_map(|(n, into)| into.map(|into| (*n, into)))
        .collect();
    Some(follow_merges(number, MAX_MERGE_HOPS, |n| {
        next.get(&n).copied()
    }))
}

/// A merge asked for.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub source: i64,
    pub into: i64,
    /// Who, for the history.
    pub actor: String,
    /// The agent asking (their queues apply); None: the administrator.
    pub agent: Option<Actor>,
    pub at: DateTime<Utc>,
    /// `[tickets] reopen_window_days`: a target closed longer ago is refused.
    pub reopen_window: Duration,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeDone {
    pub source: i64,
    pub target: i64,
    pub messages: usize,
    pub participants: usize,
    pub events: usize,
    pub time_entries: usize,
    /// The tags the target took over.
    pub tags: Vec<String>,
    /// The target was done and opened again.
    pub reopened: bool,
}

/// A split asked for: `message` (a row id of `source`'s messages) and its
/// sender's later mail go to a new ticket.
#[derive(Debug, Clone)]
pub struct SplitRequest {
    pub source: i64,
    pub message: i64,
    pub actor: String,
    pub agent: Option<Actor>,
    pub at: DateTime<Utc>,
}

/// What a split did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitDone {
    pub source: i64,
    /// The new ticket, linked to the source.
    pub ticket: i64,
    /// The messages it took (row ids).
    pub messages: Vec<i64>,
    pub customer: String,
}

/// A refused merge as the store reports it: a ticket outside the agent's
/// queues as [`StoreError::Denied`], a missing one as not found, the rest
/// as a conflict, each with the domain's wording.
fn merge_refused(err: MergeError) -> StoreError {
    match err {
        MergeError::Denied(why) => StoreError::Denied(why),
        MergeError::NoSuchTicket(_) => StoreError::NotFound(err.to_string()),
        other => StoreError::Conflict(other.to_string()),
    }
}

fn split_refused(err: SplitError) -> StoreError {
    match err {
        SplitError::Denied(why) => StoreError::Denied(why),
        SplitError::NotInTicket { .. } => StoreError::NotFound(err.to_string()),
        other => StoreError::Conflict(other.to_string()),
    }
}

impl Tx {
    /// The ticket holding `number`'s mail now (itself unless merged).
    pub(crate) async fn holding_ticket(&mut self, number: i64) -> Result<Option<i64>> {
        let chain: Vec<(i64, Option<i64>)> = on_tx!(self, |conn| {
            sqlx::query_as(MERGE_CHAIN)
                .bind(number)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(holder(number, &chain))
    }

    /// What a merge or split reads of a ticket, locked until the commit.
    async fn merge_ticket(&mut self, number: i64) -> Result<Option<MergeTicket>> {
        let sql = format!(
            "SELECT t.status, t.done_at, t.merged_into, t.disposition, q.name AS queue
             FROM tickets t JOIN queues q ON q.id = t.queue_id WHERE t.number = $1{}",
            self.lock(RowLock::WaitForTicket)
        );
        on_tx!(self, |conn| {
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(number)
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(None);
            };
            let disposition: Option<String> = row.try_get("disposition")?;
            Ok(Some(MergeTicket {
                number,
                queue: row.try_get("queue")?,
                status: parse_column::<Status>(&row.try_get::<String, _>("status")?, "status")?,
                done_at: row.try_get("done_at")?,
                merged_into: row.try_get("merged_into")?,
                disposition: match disposition {
                    Some(d) => Some(parse_column::<Disposition>(&d, "disposition")?),
                    None => None,
                },
            }))
        })
    }

    async fn ticket_tags(&mut self, number: i64) -> Result<Vec<String>> {
        on_tx!(self, |conn| {
            Ok(
                sqlx::query_scalar("SELECT tag FROM ticket_tags WHERE ticket = $1 ORDER BY tag")
                    .bind(number)
                    .fetch_all(&mut *conn)
                    .await?,
            )
        })
    }

    /// Moves every row of ticket `from` that belongs to its conversation
    /// into ticket `to`: messages, the Message-IDs that lead to it,
    /// participants, history (marked with where it was written), time
    /// entries and deliveries.
    async fn move_ticket_rows(&mut self, from: i64, to: i64) -> Result<Moved> {
        on_tx!(self, |conn| {
            let messages = sqlx::query("UPDATE messages SET ticket = $1 WHERE ticket = $2")
                .bind(to)
                .bind(from)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            // The WHERE keeps SQLite from reading ON CONFLICT as a join's ON.
            sqlx::query(
                "INSERT INTO thread_ids (message_id, ticket)
                 SELECT message_id, $1 FROM thread_ids WHERE ticket = $2
                 ON CONFLICT DO NOTHING",
            )
            .bind(to)
            .bind(from)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM thread_ids WHERE ticket = $1")
                .bind(from)
                .execute(&mut *conn)
                .await?;
            let participants = sqlx::query(
                "INSERT INTO ticket_participants (ticket, address)
                 SELECT $1, address FROM ticket_participants WHERE ticket = $2
                 ON CONFLICT DO NOTHING",
            )
            .bind(to)
            .bind(from)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM ticket_participants WHERE ticket = $1")
                .bind(from)
                .execute(&mut *conn)
                .await?;
            let events = sqlx::query(
                "UPDATE ticket_events SET ticket = $1, merged_from = COALESCE(merged_from, $2)
                 WHERE ticket = $2",
            )
            .bind(to)
            .bind(from)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            let time_entries = sqlx::query("UPDATE time_entries SET ticket = $1 WHERE ticket = $2")
                .bind(to)
                .bind(from)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            // A delivery still under way notes its outcome where its
            // message is now.
            sqlx::query("UPDATE outbound SET ticket = $1 WHERE ticket = $2")
                .bind(to)
                .bind(from)
                .execute(&mut *conn)
                .await?;
            let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            Ok(Moved {
                messages: count(messages),
                participants: count(participants),
                events: count(events),
                time_entries: count(time_entries),
            })
        })
    }

    /// A ticket's mail in stored order, as a split reads it.
    async fn mail_items(&mut self, number: i64) -> Result<Vec<MailItem>> {
        on_tx!(self, |conn| {
            let rows =
                sqlx::query("SELECT id, kind, sender FROM messages WHERE ticket = $1 ORDER BY id")
                    .bind(number)
                    .fetch_all(&mut *conn)
                    .await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                items.push(MailItem {
                    id: row.try_get("id")?,
                    kind: parse_column::<MessageKind>(
                        &row.try_get::<String, _>("kind")?,
                        "message kind",
                    )?,
                    sender: row.try_get("sender")?,
                });
            }
            Ok(items)
        })
    }

    /// The merge, on a transaction the caller owns.
    async fn merge_tickets(&mut self, r: &MergeRequest) -> Result<MergeDone> {
        // Both rows are locked in the order of their numbers, so that two
        // merges of the same pair the other way round cannot deadlock.
        let (first, second) = if r.source < r.into {
            (r.source, r.into)
        } else {
            (r.into, r.source)
        };
        let a = self.merge_ticket(first).await?;
        let b = self.merge_ticket(second).await?;
        let (source, target) = if r.source < r.into { (a, b) } else { (b, a) };
        let Some(source) = source else {
            return Err(StoreError::NotFound(format!("no ticket #{}", r.source)));
        };
        let decision = merge::check_merge(
            r.agent.as_ref(),
            &source,
            r.into,
            target.as_ref(),
            r.at,
            r.reopen_window,
        )
        .map_err(merge_refused)?;
        let tags = self.ticket_tags(r.source).await?;
        let moved = self.move_ticket_rows(r.source, r.into).await?;
        // The merged ticket's own line is written after its history moved,
        // so it stays there: "merged into #42".
        let closing = ChangeRequest {
            change: TicketChange {
                merged_into: Some(r.into),
                remove_tags: tags.clone(),
                ..TicketChange::default()
            },
            cause: Cause::Merged {
                into: r.into,
                moved: moved.clone(),
            },
            actor: r.actor.clone(),
            agent: r.agent.clone(),
            at: r.at,
        };
        self.change_ticket(r.source, &closing).await?;
        let taking = ChangeRequest {
            change: TicketChange {
                add_tags: tags.clone(),
                reopen: decision.reopen_target,
                ..TicketChange::default()
            },
            cause: Cause::MergedFrom {
                from: r.source,
                moved: moved.clone(),
            },
            actor: r.actor.clone(),
            agent: r.agent.clone(),
            at: r.at,
        };
        let plan = self.change_ticket(r.into, &taking).await?;
        Ok(MergeDone {
            source: r.source,
            target: r.into,
            messages: moved.messages,
            participants: moved.participants,
            events: moved.events,
            time_entries: moved.time_entries,
            reopened: plan.status().is_some(),
            tags: plan.add_tags,
        })
    }

    /// The split, on a transaction the caller owns.
    async fn split_ticket(&mut self, r: &SplitRequest) -> Result<SplitDone> {
        let Some(source) = self.merge_ticket(r.source).await? else {
            return Err(StoreError::NotFound(format!("no ticket #{}", r.source)));
        };
        let mail = self.mail_items(r.source).await?;
        let plan = merge::plan_split(r.agent.as_ref(), &source, &mail, r.message)
            .map_err(split_refused)?;
        let (queue_id, subject_text, from_name, received_at): (
            i64,
            String,
            Option<String>,
            DateTime<Utc>,
        ) = on_tx!(self, |conn| {
            let row = sqlx::query(
                "SELECT t.queue_id, m.subject, m.from_name, m.received_at
                 FROM messages m JOIN tickets t ON t.number = m.ticket WHERE m.id = $1",
            )
            .bind(r.message)
            .fetch_one(&mut *conn)
            .await?;
            (
                row.try_get("queue_id")?,
                row.try_get("subject")?,
                row.try_get("from_name")?,
                row.try_get("received_at")?,
            )
        });
        let title = match subject::clean(&subject_text) {
            t if t.is_empty() => "(no subject)".to_string(),
            t => t,
        };
        let number = self
            .open_split_ticket(
                queue_id,
                &title,
                &plan.customer,
                from_name.as_deref(),
                r.source,
                received_at,
                r.at,
            )
            .await?;
        let placeholders = super::events::placeholders(2, plan.messages.len());
        let ids: Vec<String> = on_tx!(self, |conn| {
            let sql = format!("UPDATE messages SET ticket = $1 WHERE id IN ({placeholders})");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(number);
            for id in &plan.messages {
                query = query.bind(*id);
            }
            query.execute(&mut *conn).await?;
            let sql = format!(
                "SELECT message_id FROM messages WHERE has_message_id AND id IN ({})",
                super::events::placeholders(1, plan.messages.len())
            );
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for id in &plan.messages {
                query = query.bind(*id);
            }
            query.fetch_all(&mut *conn).await?
        });
        // Replies to the moved messages lead to the new ticket, not back.
        if !ids.is_empty() {
            on_tx!(self, |conn| {
                let sql = format!(
                    "DELETE FROM thread_ids WHERE ticket = $1 AND message_id IN ({})",
                    super::events::placeholders(2, ids.len())
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(r.source);
                for id in &ids {
                    query = query.bind(id);
                }
                query.execute(&mut *conn).await?;
            });
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            self.insert_thread_ids(number, &refs).await?;
        }
        self.insert_participants(number, &[&plan.customer]).await?;
        let split = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::Split {
                new_ticket: number,
                messages: plan.messages.len(),
                customer: plan.customer.clone(),
            },
            actor: r.actor.clone(),
            agent: r.agent.clone(),
            at: r.at,
        };
        self.change_ticket(r.source, &split).await?;
        let opened = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::SplitFrom {
                from: r.source,
                messages: plan.messages.len(),
                customer: plan.customer.clone(),
            },
            actor: r.actor.clone(),
            agent: r.agent.clone(),
            at: r.at,
        };
        self.change_ticket(number, &opened).await?;
        Ok(SplitDone {
            source: r.source,
            ticket: number,
            messages: plan.messages,
            customer: plan.customer,
        })
    }
}

impl Store {
    /// Merges a ticket into another (see the module doc). Refusals carry
    /// the domain's words ([`MergeError`]).
    pub async fn merge_tickets(&self, request: &MergeRequest) -> Result<MergeDone> {
        let mut tx = self.begin().await?;
        let done = tx.merge_tickets(request).await?;
        tx.commit().await?;
        self.announce(Change::Ticket(done.source));
        self.announce(Change::Ticket(done.target));
        Ok(done)
    }

    /// Splits a customer's mail off into a new linked ticket.
    pub async fn split_ticket(&self, request: &SplitRequest) -> Result<SplitDone> {
        let mut tx = self.begin().await?;
        let done = tx.split_ticket(request).await?;
        tx.commit().await?;
        self.announce(Change::Ticket(done.source));
        self.announce(Change::Ticket(done.ticket));
        Ok(done)
    }

    /// The ticket holding `number`'s mail now: itself, or the ticket it
    /// was merged into (followed along later merges). None: no such ticket.
    pub async fn holding_ticket(&self, number: i64) -> Result<Option<i64>> {
        let chain: Vec<(i64, Option<i64>)> = dispatch_read!(self, |pool| {
            sqlx::query_as(MERGE_CHAIN)
                .bind(number)
                .fetch_all(pool)
                .await?
        });
        Ok(holder(number, &chain))
    }

    /// The row id of the message with this Message-ID in a ticket, if any.
    pub async fn message_in_ticket(&self, ticket: i64, message_id: &str) -> Result<Option<i64>> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT id FROM messages WHERE ticket = $1 AND message_id = $2 ORDER BY id LIMIT 1",
            )
            .bind(ticket)
            .bind(message_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Time spent on a ticket per agent (address, minutes), most first.
    pub async fn time_spent(&self, ticket: i64) -> Result<Vec<(String, i64)>> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT a.email, CAST(SUM(e.minutes) AS BIGINT) AS minutes
                 FROM time_entries e JOIN agents a ON a.id = e.agent_id
                 WHERE e.ticket = $1 GROUP BY a.email ORDER BY minutes DESC, a.email",
            )
            .bind(ticket)
            .fetch_all(pool)
            .await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_found_along_the_chain_read() {
        assert_eq!(holder(5, &[]), None);
        assert_eq!(holder(5, &[(5, None)]), Some(5));
        assert_eq!(holder(5, &[(5, Some(7)), (7, Some(9)), (9, None)]), Some(9));
    }
}
