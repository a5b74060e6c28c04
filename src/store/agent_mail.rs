//! Filing an agent's mail: a public reply (stored, queued to each outside
//! recipient, the response clocks stopped), a forward to someone outside
//! the ticket (stored and queued, no clock stops) or an internal note, in
//! one transaction with its events. A new outbound ticket is opened in the
//! same transaction when the mail names no ticket, and a ticket for a
//! customer whose mail an agent forwarded to the queue.

use super::{Change, Result, Store, Tx, on_tx};
use crate::domain::change::{Cause, ChangeRequest, TicketChange};
use crate::domain::filing::{MAX_REFERENCES, NewMessage};
use crate::domain::threading::{ReferenceLead, TicketFacts, by_reference};
use crate::domain::ticket::{EventKind, MessageKind, NewEvent};
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
    /// A ticket for the customer whose mail an agent forwarded to the
    /// queue's address: opened as the customer's own mail opens one (new,
    /// nobody's, the customer waiting), recorded as the agent's doing.
    /// `original_id`: the forwarded message's Message-ID, which leads the
    /// customer's later replies to it here.
    Forwarded {
        queue_id: i64,
        title: String,
        customer_address: String,
        customer_name: Option<String>,
        original_id: Option<String>,
    },
}

/// Writes the stored bytes once the ticket number is known, and, for a
/// note, the In-Reply-To and References that thread it under the ticket's
/// latest message (None: it keeps its own, or there is nothing to follow).
pub type BuildAgentMail = Box<dyn Fn(i64, Option<&(String, String)>) -> Vec<u8> + Send + Sync>;

pub struct AgentMailRequest {
    pub target: ReplyTarget,
    /// `Reply` or `Forward` (delivered to `recipients`) or `Note`.
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
    /// Outside recipients of a reply or forward.
    pub recipients: Vec<String>,
    pub remote_addr: Option<String>,
    /// [`crate::domain::sent_copy::submission_digest`] of the submitted bytes.
    pub submitted_digest: String,
    /// A line for the ticket's history beside the reply's own (a reply to
    /// a ticket someone else owns says whose it is).
    pub history_note: Option<String>,
    /// A public reply to hold if the ticket changed after the message it
    /// answers (`references`): checked again with the ticket locked, so
    /// that of two replies filed at once the second is held
    /// ([`StoreError::Collided`]).
    pub hold_if_changed: bool,
    /// The mail's `#cc add` / `#cc remove`, applied in the filing's
    /// transaction after the re-check above (a held reply changes nothing)
    /// and before the reply makes its recipients participants.
    pub participants: Option<ChangeRequest>,
    pub now: DateTime<Utc>,
    pub build: BuildAgentMail,
}

/// One person taking part in a ticket: `customer` (the customer and the
/// people on their side, e.g. in their Cc) or `colleague` (an agent).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Participant {
    pub address: String,
    pub side: &'static str,
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
    /// What [`AgentMailRequest::participants`] changed, one phrase each.
    pub changed: Vec<String>,
}

/// Why a ticket opened by an agent's forward gets no acknowledgement.
pub const FORWARDED_NO_ACK: &str = "no acknowledgement: the customer wrote to an agent, not to \
the queue, and the forwarded headers cannot be authenticated; the agent's reply is the first \
mail from the queue they get";

impl Store {
    /// The addresses taking part in a ticket (everyone on its mail), for
    /// telling a reply from a forward.
    pub async fn ticket_participants(&self, ticket: i64) -> Result<Vec<String>> {
        super::dispatch_read!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT address FROM ticket_participants WHERE ticket = $1 ORDER BY address",
            )
            .bind(ticket)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Who takes part in a ticket, each with whether they are one of
    /// postdesk's agents (a colleague) or on the customer's side, for
    /// `ticket show`.
    pub async fn ticket_participant_sides(&self, ticket: i64) -> Result<Vec<Participant>> {
        super::dispatch_read!(self, |pool| {
            let rows: Vec<(String, bool)> = sqlx::query_as(
                "SELECT p.address,
                        EXISTS (SELECT 1 FROM agents a WHERE LOWER(a.email) = p.address) AS colleague
                 FROM ticket_participants p WHERE p.ticket = $1 ORDER BY p.address",
            )
            .bind(ticket)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(address, colleague)| Participant {
                    address,
                    side: if colleague { "colleague" } else { "customer" },
                })
                .collect())
        })
    }

    pub async fn file_agent_mail(&self, request: &AgentMailRequest) -> Result<AgentMailFiled> {
        let mut tx = self.begin().await?;
        let filed = file_agent_mail(&mut tx, request).await?;
        tx.commit().await?;
        self.announce(Change::Ticket(filed.ticket));
        if filed.queued > 0 {
            self.announce(Change::OutboundQueued);
        }
        Ok(filed)
    }

    /// The ticket the first of these Message-IDs (most relevant first)
    /// leads to, as inbound mail is threaded
    /// ([`crate::domain::threading::by_reference`]).
    pub async fn ticket_by_references(
        &self,
        ids: &[String],
        now: DateTime<Utc>,
        reopen_window: chrono::Duration,
    ) -> Result<Option<i64>> {
        let ids: Vec<&str> = ids
            .iter()
            .take(MAX_REFERENCES)
            .map(String::as_str)
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT r.message_id, t.number, t.status, t.done_at, t.merged_into,
                 EXISTS (SELECT 1 FROM messages m
                     WHERE m.message_id = r.message_id AND m.ticket = r.ticket) AS holds
             FROM thread_ids r JOIN tickets t ON t.number = r.ticket
             WHERE r.message_id IN ({})",
            super::events::placeholders(1, ids.len())
        );
        let leads: Vec<ReferenceLead> = super::dispatch_read!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &ids {
                query = query.bind(*id);
            }
            let mut leads = Vec::new();
            for row in query.fetch_all(pool).await? {
                leads.push(ReferenceLead {
                    message_id: row.try_get("message_id")?,
                    ticket: TicketFacts {
                        number: row.try_get("number")?,
                        status: super::parse_column(
                            &row.try_get::<String, _>("status")?,
                            "status",
                        )?,
                        done_at: row.try_get("done_at")?,
                        merged_into: row.try_get("merged_into")?,
                    },
                    holds: row.try_get("holds")?,
                });
            }
            leads
        });
        Ok(by_reference(&ids, &leads, now, reopen_window).map(|t| t.number))
    }
}

/// Files an agent's mail on a transaction the caller owns: the message,
/// the ids that lead to its ticket, for a reply its deliveries and
/// recipients, and the ticket change it makes (the one change operation).
async fn file_agent_mail(tx: &mut Tx, r: &AgentMailRequest) -> Result<AgentMailFiled> {
    if let Some((message, Some(ticket))) = tx.stored_message(&r.message_id, &r.sender).await? {
        return Ok(AgentMailFiled {
            ticket,
            message,
            created: false,
            duplicate: true,
            queued: 0,
            changed: Vec::new(),
        });
    }
    if r.hold_if_changed
        && r.kind == MessageKind::Reply
        && let ReplyTarget::Ticket(number) = &r.target
        && let Some(later) = tx.lock_messages_after(*number, &r.references).await?
    {
        let newer = crate::domain::collision::newer_than_answered(&later, r.agent_id);
        if !newer.is_empty() {
            return Err(super::StoreError::Collided(newer));
        }
    }
    let (ticket, created) = match &r.target {
        ReplyTarget::Ticket(number) => (*number, false),
        ReplyTarget::New {
            queue_id,
            title,
            customer_address,
            customer_name,
        } => {
            let number = tx
                .open_outbound_ticket(
                    *queue_id,
                    title,
                    customer_address,
                    customer_name.as_deref(),
                    r.agent_id,
                    r.now,
                )
                .await?;
            tx.insert_events(&[NewEvent {
                ticket: number,
                at: r.now,
                actor: r.actor.clone(),
                kind: EventKind::Created,
                detail: format!(
                    "outbound ticket opened by {} writing to {customer_address}",
                    r.actor
                ),
            }])
            .await?;
            (number, true)
        }
        ReplyTarget::Forwarded {
            queue_id,
            title,
            customer_address,
            customer_name,
            original_id,
        } => {
            let number = tx
                .open_forwarded_ticket(
                    *queue_id,
                    title,
                    customer_address,
                    customer_name.as_deref(),
                    r.now,
                )
                .await?;
            let customer = customer_address.clone();
            tx.insert_participants(number, &[&customer]).await?;
            if let Some(id) = original_id {
                tx.insert_thread_ids(number, &[id.as_str()]).await?;
            }
            tx.insert_events(&[
                NewEvent {
                    ticket: number,
                    at: r.now,
                    actor: r.actor.clone(),
                    kind: EventKind::Created,
                    detail: format!(
                        "ticket opened by {} forwarding mail from {customer_address}",
                        r.actor
                    ),
                },
                NewEvent {
                    ticket: number,
                    at: r.now,
                    actor: "postdesk".to_string(),
                    kind: EventKind::AutoReplySuppressed,
                    detail: FORWARDED_NO_ACK.to_string(),
                },
            ])
            .await?;
            (number, true)
        }
    };
    let changed = match &r.participants {
        Some(request) => tx.change_ticket(ticket, request).await?.done,
        None => Vec::new(),
    };
    // A note that names no message of the conversation is threaded under
    // the ticket's latest one, as it is at this moment.
    let threading = match (r.kind, r.references.is_empty(), created) {
        (MessageKind::Note, true, false) => tx.note_threading(ticket).await?,
        _ => None,
    };
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
        auth: None,
        raw: (r.build)(ticket, threading.as_ref()),
    };
    let message = tx.insert_message(&m, Some(ticket), r.kind, None).await?;
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE messages SET author_agent_id = $1, submitted_digest = $2 WHERE id = $3",
        )
        .bind(r.agent_id)
        .bind(&r.submitted_digest)
        .bind(message)
        .execute(&mut *conn)
        .await?;
        // What the agent wrote is read, for them: no new-mail badge on
        // their own send (other agents still see it unread).
        sqlx::query(
            "INSERT INTO agent_seen (agent_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(r.agent_id)
        .bind(message)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE agents SET seen_version = seen_version + 1 WHERE id = $1")
            .bind(r.agent_id)
            .execute(&mut *conn)
            .await?;
    });
    let mut ids: Vec<&str> = vec![r.message_id.as_str()];
    ids.extend(r.references.iter().take(MAX_REFERENCES).map(String::as_str));
    ids.dedup();
    tx.insert_thread_ids(ticket, &ids).await?;
    let mut queued = 0;
    let cause = match r.kind {
        MessageKind::Reply => {
            queued = queue_deliveries(tx, r, ticket, message).await?;
            let recipients: Vec<&String> = r.recipients.iter().collect();
            tx.insert_participants(ticket, &recipients).await?;
            Cause::Replied {
                agent: r.agent_id,
                recipients: r.recipients.clone(),
                new_ticket: created,
            }
        }
        // A consulted third party is not made a participant: the next
        // mail to them is a forward again, not an answer to the customer.
        MessageKind::Forward => {
            queued = queue_deliveries(tx, r, ticket, message).await?;
            Cause::Forwarded {
                recipients: r.recipients.clone(),
            }
        }
        _ => Cause::Noted,
    };
    let change = ChangeRequest {
        change: TicketChange::default(),
        cause,
        actor: r.actor.clone(),
        agent: None,
        at: r.now,
    };
    tx.change_ticket(ticket, &change).await?;
    if let Some(note) = &r.history_note {
        tx.insert_events(&[NewEvent {
            ticket,
            at: r.now,
            actor: r.actor.clone(),
            kind: EventKind::Reply,
            detail: note.clone(),
        }])
        .await?;
    }
    Ok(AgentMailFiled {
        ticket,
        message,
        created,
        duplicate: false,
        queued,
        changed,
    })
}

/// Queues the mail to its outside recipients as one delivery (Reply All
/// is one mail with its To and Cc, not a copy per recipient); returns how
/// many recipients.
async fn queue_deliveries(
    tx: &mut Tx,
    r: &AgentMailRequest,
    ticket: i64,
    message: i64,
) -> Result<usize> {
    tx.queue_delivery_to_all(
        ticket,
        message,
        r.kind.as_str(),
        &r.mail_from,
        &r.recipients,
        r.now,
    )
    .await?;
    Ok(r.recipients.len())
}
