//! Reading tickets, their messages and their history.

use super::{Result, Store, StoreError, dispatch_read, parse_column};
use crate::domain::sender_auth::{AuthSource, AuthVerdict, DmarcPolicy, SenderAuth};
use crate::domain::ticket::{Disposition, EventKind, MessageKind, Priority, Status};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize)]
pub struct Ticket {
    pub number: i64,
    pub queue: String,
    pub subject: String,
    pub customer_address: String,
    pub customer_name: Option<String>,
    pub status: Status,
    /// In Junk (`spam`) or Trash (`trash`), beside the status it keeps for
    /// a restore; None: neither.
    pub disposition: Option<Disposition>,
    /// Since when it is there.
    pub disposition_at: Option<DateTime<Utc>>,
    pub priority: Priority,
    pub owner: Option<String>,
    pub linked_ticket: Option<i64>,
    /// The ticket its mail was merged into (it is closed, an empty shell).
    pub merged_into: Option<i64>,
    pub tags: Vec<String>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    /// The first public reply of an agent (stops the first-response clock).
    pub first_response_at: Option<DateTime<Utc>>,
    /// The latest public reply.
    pub last_response_at: Option<DateTime<Utc>>,
    /// Since when the customer has been waiting for an answer (the
    /// next-response clock); None once an agent has answered.
    pub customer_waiting_since: Option<DateTime<Utc>>,
    /// The SLA policy (rules.toml) and its clocks' due times.
    pub sla_policy: Option<String>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub next_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    /// Since when the clocks stand still (pending, or done).
    pub sla_paused_at: Option<DateTime<Utc>>,
    /// When it became active again (until the scheduler has moved the
    /// clocks on).
    pub sla_resumed_at: Option<DateTime<Utc>>,
    /// A running clock is past its due time.
    pub sla_overdue: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageRecord {
    pub id: i64,
    pub ticket: Option<i64>,
    pub kind: MessageKind,
    pub message_id: String,
    pub has_message_id: bool,
    pub sender: String,
    pub from_name: Option<String>,
    pub envelope_from: String,
    pub envelope_to: String,
    pub subject: String,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub size: i64,
    pub problems: Option<String>,
    /// SPF, DKIM and DMARC as checked at arrival; None: not checked.
    pub auth: Option<SenderAuth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: EventKind,
    pub detail: String,
    /// The ticket this line was written on, when a merge moved it here.
    pub merged_from: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Vec<Status>,
    pub queue: Option<String>,
    /// Only tickets with a running SLA clock past its due time.
    pub overdue: bool,
    pub limit: Option<i64>,
    /// Only tickets of these queues (an agent's view); None: every queue.
    pub within: Option<Vec<String>>,
}

const TICKET_COLUMNS: &str =
    "t.number, q.name AS queue, t.subject, t.customer_address, t.customer_name,
    t.status, t.disposition, t.disposition_at, t.priority, a.email AS owner, t.linked_ticket, t.merged_into, t.created_at, t.updated_at, t.done_at,
    t.first_response_at, t.last_response_at, t.customer_waiting_since,
    t.sla_policy, t.first_response_due, t.next_response_due, t.resolution_due, t.sla_paused_at,
    t.sla_resumed_at, t.sla_overdue,
    (SELECT COUNT(*) FROM messages m WHERE m.ticket = t.number) AS message_count
    FROM tickets t JOIN queues q ON q.id = t.queue_id LEFT JOIN agents a ON a.id = t.owner_id";

macro_rules! ticket_from_row {
    ($row:expr) => {{
        let row = $row;
        Ticket {
            number: row.try_get("number")?,
            queue: row.try_get("queue")?,
            subject: row.try_get("subject")?,
            customer_address: row.try_get("customer_address")?,
            customer_name: row.try_get("customer_name")?,
            status: parse_column(&row.try_get::<String, _>("status")?, "status")?,
            disposition: match row.try_get::<Option<String>, _>("disposition")? {
                Some(d) => Some(parse_column(&d, "disposition")?),
                None => None,
            },
            disposition_at: row.try_get("disposition_at")?,
            priority: parse_column(&row.try_get::<String, _>("priority")?, "priority")?,
            owner: row.try_get("owner")?,
            linked_ticket: row.try_get("linked_ticket")?,
            merged_into: row.try_get("merged_into")?,
            tags: Vec::new(),
            message_count: row.try_get("message_count")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            done_at: row.try_get("done_at")?,
            first_response_at: row.try_get("first_response_at")?,
            last_response_at: row.try_get("last_response_at")?,
            customer_waiting_since: row.try_get("customer_waiting_since")?,
            sla_policy: row.try_get("sla_policy")?,
            first_response_due: row.try_get("first_response_due")?,
            next_response_due: row.try_get("next_response_due")?,
            resolution_due: row.try_get("resolution_due")?,
            sla_paused_at: row.try_get("sla_paused_at")?,
            sla_resumed_at: row.try_get("sla_resumed_at")?,
            sla_overdue: row.try_get("sla_overdue")?,
        }
    }};
}

macro_rules! message_from_row {
    ($row:expr) => {{
        let row = $row;
        MessageRecord {
            id: row.try_get("id")?,
            ticket: row.try_get("ticket")?,
            kind: parse_column(&row.try_get::<String, _>("kind")?, "message kind")?,
            message_id: row.try_get("message_id")?,
            has_message_id: row.try_get("has_message_id")?,
            sender: row.try_get("sender")?,
            from_name: row.try_get("from_name")?,
            envelope_from: row.try_get("envelope_from")?,
            envelope_to: row.try_get("envelope_to")?,
            subject: row.try_get("subject")?,
            sent_at: row.try_get("sent_at")?,
            received_at: row.try_get("received_at")?,
            size: row.try_get("size")?,
            problems: row.try_get("problems")?,
            auth: auth_from_columns(
                row.try_get("auth_source")?,
                [
                    row.try_get("auth_spf")?,
                    row.try_get("auth_dkim")?,
                    row.try_get("auth_dmarc")?,
                ],
                row.try_get("auth_policy")?,
                row.try_get("auth_domain")?,
            ),
        }
    }};
}

/// A message's stored verdicts (written by `insert_message` from the same
/// names, so a value it does not know reads as `none`).
fn auth_from_columns(
    source: Option<String>,
    [spf, dkim, dmarc]: [Option<String>; 3],
    policy: Option<String>,
    domain: Option<String>,
) -> Option<SenderAuth> {
    let verdict = |text: Option<String>| {
        text.and_then(|t| AuthVerdict::parse(&t))
            .unwrap_or_default()
    };
    Some(SenderAuth {
        source: AuthSource::parse(source.as_deref()?)?,
        spf: verdict(spf),
        dkim: verdict(dkim),
        dmarc: verdict(dmarc),
        policy: policy.and_then(|p| DmarcPolicy::parse(&p)),
        domain,
    })
}

const MESSAGE_COLUMNS: &str =
    "id, ticket, kind, message_id, has_message_id, sender, from_name, envelope_from,
    envelope_to, subject, sent_at, received_at, size, problems, auth_spf, auth_dkim, auth_dmarc,
    auth_policy, auth_domain, auth_source";

impl Store {
    pub async fn tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        // Statuses and queue names are bound, never spliced: only the shape
        // of the WHERE clause varies.
        let mut sql = format!("SELECT {TICKET_COLUMNS} WHERE 1 = 1");
        let mut n = 0;
        if !filter.status.is_empty() {
            let placeholders: Vec<String> = filter
                .status
                .iter()
                .map(|_| {
                    n += 1;
                    format!("${n}")
                })
                .collect();
            sql.push_str(&format!(" AND t.status IN ({})", placeholders.join(", ")));
        }
        if filter.queue.is_some() {
            n += 1;
            sql.push_str(&format!(" AND (q.name = ${n} OR q.address = ${n})"));
        }
        if let Some(within) = &filter.within {
            if within.is_empty() {
                return Ok(Vec::new());
            }
            let first = n + 1;
            n += within.len();
            sql.push_str(&format!(
                " AND q.name IN ({})",
                super::events::placeholders(first, within.len())
            ));
        }
        if filter.overdue {
            sql.push_str(" AND t.sla_overdue");
        }
        sql.push_str(" ORDER BY t.number");
        if filter.limit.is_some() {
            n += 1;
            sql.push_str(&format!(" LIMIT ${n}"));
        }
        let mut tickets = dispatch_read!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for status in &filter.status {
                query = query.bind(status.as_str());
            }
            if let Some(queue) = &filter.queue {
                query = query.bind(queue.clone());
            }
            for queue in filter.within.iter().flatten() {
                query = query.bind(queue.clone());
            }
            if let Some(limit) = filter.limit {
                query = query.bind(limit);
            }
            let rows = query.fetch_all(pool).await?;
            let mut tickets = Vec::with_capacity(rows.len());
            for row in &rows {
                tickets.push(ticket_from_row!(row));
            }
            tickets
        });
        self.fill_tags(&mut tickets).await?;
        Ok(tickets)
    }

    /// The listed tickets (those that exist), in number order.
    pub async fn tickets_by_number(&self, numbers: &[i64]) -> Result<Vec<Ticket>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {TICKET_COLUMNS} WHERE t.number IN ({}) ORDER BY t.number",
            super::events::placeholders(1, numbers.len())
        );
        let mut tickets = dispatch_read!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for number in numbers {
                query = query.bind(*number);
            }
            let rows = query.fetch_all(pool).await?;
            let mut tickets = Vec::with_capacity(rows.len());
            for row in &rows {
                tickets.push(ticket_from_row!(row));
            }
            tickets
        });
        self.fill_tags(&mut tickets).await?;
        Ok(tickets)
    }

    pub async fn ticket(&self, number: i64) -> Result<Ticket> {
        let sql = format!("SELECT {TICKET_COLUMNS} WHERE t.number = $1");
        let ticket = dispatch_read!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(number)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => ticket_from_row!(&row),
                None => return Err(StoreError::NotFound(format!("no ticket #{number}"))),
            }
        });
        let mut tickets = [ticket];
        self.fill_tags(&mut tickets).await?;
        let [ticket] = tickets;
        Ok(ticket)
    }

    /// Reads the tags of the listed tickets (one query over their number range).
    async fn fill_tags(&self, tickets: &mut [Ticket]) -> Result<()> {
        let (Some(low), Some(high)) = (
            tickets.iter().map(|t| t.number).min(),
            tickets.iter().map(|t| t.number).max(),
        ) else {
            return Ok(());
        };
        let pairs: Vec<(i64, String)> = dispatch_read!(self, |pool| {
            sqlx::query_as(
                "SELECT ticket, tag FROM ticket_tags WHERE ticket BETWEEN $1 AND $2 ORDER BY tag",
            )
            .bind(low)
            .bind(high)
            .fetch_all(pool)
            .await?
        });
        let mut by_ticket: std::collections::HashMap<i64, Vec<String>> =
            std::collections::HashMap::new();
        for (ticket, tag) in pairs {
            by_ticket.entry(ticket).or_default().push(tag);
        }
        for ticket in tickets.iter_mut() {
            ticket.tags = by_ticket.remove(&ticket.number).unwrap_or_default();
        }
        Ok(())
    }

    /// The messages of a ticket, oldest first.
    pub async fn ticket_messages(&self, number: i64) -> Result<Vec<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE ticket = $1 ORDER BY sent_at, id"
        );
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(number)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(message_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Messages stored in no ticket (unmatched bounces, loops of our own
    /// mail); not postdesk's own mail about no ticket (the report mails).
    pub async fn unfiled_messages(&self) -> Result<Vec<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE ticket IS NULL AND kind = 'unfiled' ORDER BY id"
        );
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(message_from_row!(row));
            }
            Ok(out)
        })
    }

    /// The stored bytes of a message, exactly as received.
    pub async fn raw_message(&self, id: i64) -> Result<Vec<u8>> {
        dispatch_read!(self, |pool| {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT raw FROM messages WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no message {id}")))
        })
    }

    pub async fn ticket_events(&self, number: i64) -> Result<Vec<Event>> {
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT at, actor, kind, detail, merged_from FROM ticket_events WHERE ticket = $1 ORDER BY id",
            )
            .bind(number)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(Event {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    kind: parse_column(&row.try_get::<String, _>("kind")?, "event kind")?,
                    detail: row.try_get("detail")?,
                    merged_from: row.try_get("merged_from")?,
                });
            }
            Ok(out)
        })
    }

    /// Counts of stored messages and tickets, for tools and tests.
    pub async fn counts(&self) -> Result<(i64, i64)> {
        dispatch_read!(self, |pool| {
            let messages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
                .fetch_one(pool)
                .await?;
            let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
                .fetch_one(pool)
                .await?;
            Ok((messages, tickets))
        })
    }
}
