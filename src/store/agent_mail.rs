//! Filing an agent's mail: a public reply (stored, queued to each outside
//! recipient, the response clocks stopped) or an internal note, in one
//! transaction with its events. A new outbound ticket is opened in the same
//! transaction when the mail names no ticket.

use super::events::{Events, insert_events};
use super::inbound::{NewMessage, insert_message};
use super::{Change, Result, Store, dispatch};
use crate::domain::ticket::{MessageKind, Priority, Status};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Where agent mail goes.
#[derive(Debug, Clone)]
pub enum ReplyTarget {
    Ticket(i64),
    /// A ticket opened by the agent writing to a customer first. It waits
    /// for the customer (pending) and belongs to the agent.
    New {
        queue_id: i64,
        title: String,
        customer_address: String,
        customer_name: Option<String>,
    },
}

/// Writes the stored bytes once the ticket number is known.
pub type BuildAgentMail = Box<dyn Fn(i64) -> Vec<u8> + Send + Sync>;

pub struct AgentMailRequest {
    pub target: ReplyTarget,
    /// `Reply` (delivered to `recipients`) or `Note`.
    pub kind: MessageKind,
    pub agent_id: i64,
    /// The agent's address, for the event log.
    pub actor: String,
    pub message_id: String,
    /// The From address as stored: the queue for a reply, the agent for a note.
    pub sender: String,
    pub from_name: Option<String>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub subject: String,
    /// In-Reply-To and References: they lead to this ticket from now on.
    pub references: Vec<String>,
    /// The envelope sender of the deliveries (the queue address).
    pub mail_from: String,
    /// Outside recipients of a reply.
    pub recipients: Vec<String>,
    pub remote_addr: Option<String>,
    pub now: DateTime<Utc>,
    pub build: BuildAgentMail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMailFiled {
    pub ticket: i64,
    pub message: i64,
    pub created: bool,
    /// The same mail (Message-ID and sender) was filed before: a client
    /// retrying after a lost reply. Nothing was queued again.
    pub duplicate: bool,
    /// Deliveries queued.
    pub queued: usize,
}

impl Store {
    pub async fn file_agent_mail(&self, request: &AgentMailRequest) -> Result<AgentMailFiled> {
        let r = request;
        let filed: AgentMailFiled = dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let existing = sqlx::query("SELECT id, ticket FROM messages WHERE message_id = $1 AND sender = $2")
                .bind(&r.message_id)
                .bind(&r.sender)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing
                && let Some(ticket) = row.try_get::<Option<i64>, _>("ticket")?
            {
                return Ok(AgentMailFiled {
                    ticket,
                    message: row.try_get("id")?,
                    created: false,
                    duplicate: true,
                    queued: 0,
                });
            }
            let mut events = Events::default();
            let (ticket, created) = match &r.target {
                ReplyTarget::Ticket(number) => (*number, false),
                ReplyTarget::New { queue_id, title, customer_address, customer_name } => {
                    let number: i64 = sqlx::query_scalar(
                        "INSERT INTO tickets (queue_id, subject, customer_address, customer_name, status,
                             priority, owner_id, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING number",
                    )
                    .bind(queue_id)
                    .bind(title)
                    .bind(customer_address)
                    .bind(customer_name)
                    .bind(Status::Pending.as_str())
                    .bind(Priority::Normal.as_str())
                    .bind(r.agent_id)
                    .bind(r.now)
                    .fetch_one(&mut *tx)
                    .await?;
                    events.add(number, r.now, &r.actor, "created",
                        format!("outbound ticket opened by {} writing to {customer_address}", r.actor));
                    (number, true)
                }
            };
            let raw = (r.build)(ticket);
            let m = NewMessage {
                message_id: r.message_id.clone(),
                has_message_id: true,
                sender: r.sender.clone(),
                from_name: r.from_name.clone(),
                envelope_from: r.envelope_from.clone(),
                envelope_to: r.envelope_to.clone(),
                subject: r.subject.clone(),
                sent_at: r.now,
                received_at: r.now,
                problems: Vec::new(),
                remote_addr: r.remote_addr.clone(),
                references: Vec::new(),
                participants: Vec::new(),
                raw,
            };
            let message = insert_message!(tx, m, Some(ticket), r.kind, None::<&String>);
            let mut ids: Vec<&String> = vec![&r.message_id];
            ids.extend(r.references.iter().take(64));
            for id in ids {
                sqlx::query("INSERT INTO thread_ids (message_id, ticket) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(ticket)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut queued = 0;
            if r.kind == MessageKind::Reply {
                for recipient in &r.recipients {
                    sqlx::query(
                        "INSERT INTO outbound (ticket, message, purpose, mail_from, rcpt_to, status, attempts,
                             next_attempt_at, created_at, updated_at)
                         VALUES ($1, $2, 'reply', $3, $4, 'queued', 0, $5, $5, $5)",
                    )
                    .bind(ticket)
                    .bind(message)
                    .bind(&r.mail_from)
                    .bind(recipient)
                    .bind(r.now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("INSERT INTO ticket_participants (ticket, address) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(ticket)
                        .bind(recipient)
                        .execute(&mut *tx)
                        .await?;
                    queued += 1;
                }
                // The answer stops the first-response clock (once) and the
                // next-response clock; a new ticket is now being worked on,
                // and an unowned one belongs to whoever answered.
                let before = sqlx::query("SELECT status, owner_id FROM tickets WHERE number = $1")
                    .bind(ticket)
                    .fetch_one(&mut *tx)
                    .await?;
                let status: String = before.try_get("status")?;
                let owner: Option<i64> = before.try_get("owner_id")?;
                sqlx::query(
                    "UPDATE tickets SET first_response_at = COALESCE(first_response_at, $1),
                         last_response_at = $1, customer_waiting_since = NULL,
                         next_response_due = NULL,
                         sla_check_at = CASE WHEN sla_policy IS NULL THEN sla_check_at ELSE $1 END,
                         status = CASE WHEN status = 'new' THEN 'open' ELSE status END,
                         owner_id = COALESCE(owner_id, $2),
                         updated_at = CASE WHEN updated_at < $1 THEN $1 ELSE updated_at END
                     WHERE number = $3",
                )
                .bind(r.now)
                .bind(r.agent_id)
                .bind(ticket)
                .execute(&mut *tx)
                .await?;
                let mut detail = format!("public reply by {} to {}", r.actor, r.recipients.join(", "));
                if status == Status::New.as_str() {
                    detail.push_str("; status new → open");
                }
                if owner.is_none() && !created {
                    detail.push_str(&format!("; owner → {}", r.actor));
                }
                events.add(ticket, r.now, &r.actor, "reply", detail);
            } else {
                sqlx::query("UPDATE tickets SET updated_at = $1 WHERE number = $2 AND updated_at < $1")
                    .bind(r.now)
                    .bind(ticket)
                    .execute(&mut *tx)
                    .await?;
                events.add(ticket, r.now, &r.actor, "note", format!("internal note by {}", r.actor));
            }
            insert_events!(tx, events);
            tx.commit().await?;
            AgentMailFiled { ticket, message, created, duplicate: false, queued }
        });
        self.announce(Change::Ticket(filed.ticket));
        if filed.queued > 0 {
            self.announce(Change::OutboundQueued);
        }
        Ok(filed)
    }

    /// The ticket the first of these Message-IDs (most relevant first)
    /// leads to.
    pub async fn ticket_by_references(&self, ids: &[String]) -> Result<Option<i64>> {
        super::dispatch_read!(self, pool => {
            for id in ids.iter().take(64) {
                let ticket: Option<i64> = sqlx::query_scalar(
                    "SELECT ticket FROM thread_ids WHERE message_id = $1 ORDER BY ticket DESC LIMIT 1",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?;
                if ticket.is_some() {
                    return Ok(ticket);
                }
            }
            Ok(None)
        })
    }
}
