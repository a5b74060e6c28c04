//! Collision hold (issue 20): what a reply's check reads (the ticket's
//! messages after the one it answers), holding a reply (the agent's copy in
//! their Held folder, the held row, the notice and the history line, in one
//! transaction, before the SMTP 250), and releasing held replies once the
//! agent's reply to the ticket went out. The decision is
//! [`crate::domain::collision::decide`].

use super::{Change, Result, RowLock, Store, StoreError, Tx, on_tx, parse_column};
use crate::domain::change::{Cause, ChangeRequest, TicketChange};
use crate::domain::collision::LaterMessage;
use crate::domain::outgoing::OutgoingMail;
use crate::domain::ticket::{EventKind, MessageKind, NewEvent};
use crate::domain::views::Folder;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A reply to hold: the bytes the agent submitted (their Held copy), the
/// notice mail to them, and the history line.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub agent_id: i64,
    pub actor: String,
    pub ticket: i64,
    /// The submitted Message-ID (a retry of the same mail is held once).
    pub message_id: String,
    pub raw: Vec<u8>,
    pub notice: OutgoingMail,
    pub detail: String,
    pub now: DateTime<Utc>,
}

/// What [`Store::hold_reply`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReply {
    pub id: i64,
    /// The same mail was held before (the client retried): nothing new
    /// was stored or sent.
    pub again: bool,
    /// The copy's UID in the agent's Held folder.
    pub uid: u32,
}

/// The first of a reply's answered ids (In-Reply-To, then References,
/// newest first) that is a message of the ticket.
const ANSWERED_SQL: &str =
    "SELECT id FROM messages WHERE ticket = $1 AND message_id = $2 ORDER BY id LIMIT 1";
/// The ticket's messages after that one, with their authors.
const LATER_SQL: &str = "SELECT m.kind, m.sender, m.from_name, m.author_agent_id,
        a.email AS author_email, m.subject, m.received_at
    FROM messages m LEFT JOIN agents a ON a.id = m.author_agent_id
    WHERE m.ticket = $1 AND m.id > $2 ORDER BY m.id";

macro_rules! later_from_row {
    ($row:expr) => {{
        let row = $row;
        LaterMessage {
            kind: parse_column::<MessageKind>(&row.try_get::<String, _>("kind")?, "message kind")?,
            sender: row.try_get("sender")?,
            from_name: row.try_get("from_name")?,
            author: row.try_get("author_agent_id")?,
            author_email: row.try_get("author_email")?,
            subject: row.try_get("subject")?,
            at: row.try_get("received_at")?,
        }
    }};
}

impl Tx {
    /// [`Store::messages_after`] inside a transaction, with the ticket's
    /// row locked until the commit first: a colleague's reply filed at the
    /// same moment is either seen here or waits for this one.
    pub(crate) async fn lock_messages_after(
        &mut self,
        ticket: i64,
        answered: &[String],
    ) -> Result<Option<Vec<LaterMessage>>> {
        let lock = format!(
            "SELECT number FROM tickets WHERE number = $1{}",
            self.lock(RowLock::Wait)
        );
        on_tx!(self, |conn| {
            sqlx::query(sqlx::AssertSqlSafe(lock))
                .bind(ticket)
                .fetch_optional(&mut *conn)
                .await?;
            let mut found: Option<i64> = None;
            for id in answered.iter().take(crate::domain::filing::MAX_REFERENCES) {
                found = sqlx::query_scalar(ANSWERED_SQL)
                    .bind(ticket)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if found.is_some() {
                    break;
                }
            }
            let Some(after) = found else {
                return Ok(None);
            };
            let rows = sqlx::query(LATER_SQL)
                .bind(ticket)
                .bind(after)
                .fetch_all(&mut *conn)
                .await?;
            let mut later = Vec::with_capacity(rows.len());
            for row in &rows {
                later.push(later_from_row!(row));
            }
            Ok(Some(later))
        })
    }
}

impl Store {
    /// The ticket's messages after the first of `answered` (In-Reply-To,
    /// then References, newest first) that is in the ticket; None when none
    /// of them is.
    pub async fn messages_after(
        &self,
        ticket: i64,
        answered: &[String],
    ) -> Result<Option<Vec<LaterMessage>>> {
        super::dispatch_read!(self, |pool| {
            let mut found: Option<i64> = None;
            for id in answered.iter().take(crate::domain::filing::MAX_REFERENCES) {
                found = sqlx::query_scalar(ANSWERED_SQL)
                    .bind(ticket)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                if found.is_some() {
                    break;
                }
            }
            let Some(after) = found else {
                return Ok(None);
            };
            let rows = sqlx::query(LATER_SQL)
                .bind(ticket)
                .bind(after)
                .fetch_all(pool)
                .await?;
            let mut later = Vec::with_capacity(rows.len());
            for row in &rows {
                later.push(later_from_row!(row));
            }
            Ok(Some(later))
        })
    }

    /// Holds a reply: the agent's copy in their Held folder (created when
    /// missing), the held row, the notice queued to the agent and the
    /// ticket's history line, in one transaction. Nothing reaches the
    /// customer.
    pub async fn hold_reply(&self, r: &HoldRequest) -> Result<HeldReply> {
        let held_name = Folder::Held.name();
        self.imap_ensure_mailboxes(r.agent_id, std::slice::from_ref(&held_name), true)
            .await?;
        let mut tx = self.begin().await?;
        let held = hold_on_tx(&mut tx, r, &held_name).await?;
        tx.commit().await?;
        self.announce(Change::Ticket(r.ticket));
        self.announce(Change::OutboundQueued);
        // The agent's sessions look at their folders again (the Held
        // folder is theirs alone).
        self.announce(Change::Seen(r.agent_id));
        Ok(held)
    }

    /// Queues a notice to an agent (stored in the ticket as postdesk's own
    /// mail) and, when given, leaves a note in the ticket: `collision =
    /// "warn"`.
    pub async fn collision_warning(
        &self,
        ticket: i64,
        notice: &OutgoingMail,
        note: &super::SystemNote,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.queue_outgoing(ticket, notice, "collision", now).await?;
        tx.insert_system_note(
            ticket,
            &note.message_id,
            &note.sender,
            &note.subject,
            &note.raw,
            now,
        )
        .await?;
        tx.insert_events(&[NewEvent {
            ticket,
            at: now,
            actor: "postdesk".into(),
            kind: EventKind::Collision,
            detail: note.detail.clone(),
        }])
        .await?;
        tx.commit().await?;
        self.announce(Change::Ticket(ticket));
        self.announce(Change::OutboundQueued);
        Ok(())
    }

    /// The agent's reply to the ticket went out: their held replies of
    /// this ticket are done and leave the Held folder. Returns how many.
    pub async fn release_held(
        &self,
        agent_id: i64,
        ticket: i64,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let held_name = Folder::Held.name();
        let (mailbox, uids) = super::dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(
                "SELECT h.id, mb.id AS mailbox, im.uid FROM held_replies h
                 LEFT JOIN imap_members im ON im.stored_id = h.stored_id
                 LEFT JOIN imap_mailboxes mb ON mb.id = im.mailbox_id AND mb.name = $3
                 WHERE h.agent_id = $1 AND h.ticket = $2 AND h.released_at IS NULL",
            )
            .bind(agent_id)
            .bind(ticket)
            .bind(&held_name)
            .fetch_all(&mut *tx)
            .await?;
            let mut mailbox = None;
            let mut uids = Vec::new();
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                sqlx::query("UPDATE held_replies SET released_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if let (Some(m), Some(uid)) = (
                    row.try_get::<Option<i64>, _>("mailbox")?,
                    row.try_get::<Option<i64>, _>("uid")?,
                ) {
                    mailbox = Some(m);
                    uids.push(
                        u32::try_from(uid)
                            .map_err(|_| StoreError::Corrupt(format!("uid {uid} out of range")))?,
                    );
                }
            }
            tx.commit().await?;
            (mailbox, uids)
        });
        let count = uids.len();
        if let Some(mailbox) = mailbox {
            self.imap_expunge(mailbox, &uids).await?;
            self.announce(Change::Seen(agent_id));
        }
        Ok(count)
    }

    /// The replies an agent holds (not sent, not discarded), for `ticket
    /// show` and tests: (held id, ticket, reason).
    pub async fn held_replies(&self, ticket: i64) -> Result<Vec<(i64, String, String)>> {
        super::dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT h.id, a.email, h.reason FROM held_replies h JOIN agents a ON a.id = h.agent_id
                 WHERE h.ticket = $1 AND h.released_at IS NULL AND h.stored_id IS NOT NULL
                 ORDER BY h.id",
            )
            .bind(ticket)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((
                    row.try_get("id")?,
                    row.try_get("email")?,
                    row.try_get("reason")?,
                ));
            }
            Ok(out)
        })
    }
}

impl Tx {
    /// Locks the tickets of the replies held in `mailbox` (its agent's,
    /// not yet sent) before the mailbox is: removing members may discard
    /// one ([`Tx::discard_orphaned_held`]), which changes its ticket, and
    /// taking the ticket's row first means no ticket change that writes to
    /// this agent's mailboxes can wait for us while we wait for it.
    pub(crate) async fn lock_held_tickets(&mut self, mailbox: i64) -> Result<()> {
        let lock = format!(
            "SELECT t.number FROM tickets t WHERE t.number = $1{}",
            self.lock(RowLock::WaitForTicket)
        );
        on_tx!(self, |conn| {
            let tickets: Vec<i64> = sqlx::query_scalar(
                "SELECT DISTINCT h.ticket FROM held_replies h
                     JOIN imap_members m ON m.stored_id = h.stored_id
                 WHERE h.agent_id = (SELECT agent_id FROM imap_mailboxes WHERE id = $1)
                     AND h.released_at IS NULL AND m.mailbox_id = $1
                 ORDER BY h.ticket",
            )
            .bind(mailbox)
            .fetch_all(&mut *conn)
            .await?;
            for ticket in tickets {
                sqlx::query(sqlx::AssertSqlSafe(lock.clone()))
                    .bind(ticket)
                    .fetch_optional(&mut *conn)
                    .await?;
            }
        });
        Ok(())
    }

    /// The held replies of `mailbox`'s agent whose stored copy no mailbox
    /// holds any more (called after members were removed, before the
    /// orphans are deleted): each is discarded, with its ticket's history
    /// line through the one ticket-change operation. Returns the tickets.
    pub(crate) async fn discard_orphaned_held(
        &mut self,
        mailbox: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let discarded: Vec<(i64, String)> = on_tx!(self, |conn| {
            sqlx::query_as(
                "SELECT h.ticket, a.email FROM held_replies h JOIN agents a ON a.id = h.agent_id
                 WHERE h.agent_id = (SELECT agent_id FROM imap_mailboxes WHERE id = $1)
                     AND h.released_at IS NULL AND h.stored_id IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM imap_members m WHERE m.stored_id = h.stored_id)
                 ORDER BY h.id",
            )
            .bind(mailbox)
            .fetch_all(&mut *conn)
            .await?
        });
        let mut tickets = Vec::with_capacity(discarded.len());
        for (ticket, agent) in discarded {
            let request = ChangeRequest {
                change: TicketChange::default(),
                cause: Cause::HeldDiscarded,
                actor: agent,
                // Their own copy: whatever they may do to the ticket now.
                agent: None,
                at: now,
            };
            self.change_ticket(ticket, &request).await?;
            tickets.push(ticket);
        }
        Ok(tickets)
    }
}

async fn hold_on_tx(tx: &mut Tx, r: &HoldRequest, held_name: &str) -> Result<HeldReply> {
    // The mailbox row first, as every writer of its members takes it.
    let select = format!(
        "SELECT id, uidnext, highestmodseq FROM imap_mailboxes WHERE agent_id = $1 AND name = $2{}",
        tx.lock(RowLock::Wait)
    );
    let header_len = super::header_len(&r.raw);
    let size = r.raw.len() as i64;
    let before = on_tx!(&mut *tx, |conn| {
        sqlx::query(
            "SELECT h.id, im.uid FROM held_replies h
             JOIN imap_members im ON im.stored_id = h.stored_id
             WHERE h.agent_id = $1 AND h.ticket = $2 AND h.message_id = $3
               AND h.released_at IS NULL
             ORDER BY h.id LIMIT 1",
        )
        .bind(r.agent_id)
        .bind(r.ticket)
        .bind(&r.message_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| -> Result<(i64, i64)> { Ok((row.try_get("id")?, row.try_get("uid")?)) })
        .transpose()?
    });
    if let Some((id, uid)) = before {
        return Ok(HeldReply {
            id,
            again: true,
            uid: u32::try_from(uid).map_err(|_| StoreError::Corrupt(format!("uid {uid}")))?,
        });
    }
    let (id, uid) = on_tx!(&mut *tx, |conn| {
        let row = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(r.agent_id)
            .bind(held_name)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!(
                "no {held_name} folder for agent {}",
                r.agent_id
            )));
        };
        let mailbox: i64 = row.try_get("id")?;
        let uid: i64 = row.try_get("uidnext")?;
        let modseq: i64 = row.try_get::<i64, _>("highestmodseq")? + 1;
        let stored: i64 = sqlx::query_scalar(
            "INSERT INTO agent_messages (agent_id, internal_date, size, raw, header_len)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(r.agent_id)
        .bind(r.now)
        .bind(size)
        .bind(&r.raw)
        .bind(header_len)
        .fetch_one(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO imap_members (mailbox_id, uid, message_id, stored_id, flags, modseq)
             VALUES ($1, $2, NULL, $3, '', $4)",
        )
        .bind(mailbox)
        .bind(uid)
        .bind(stored)
        .bind(modseq)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE imap_mailboxes SET uidnext = $1, highestmodseq = $2 WHERE id = $3")
            .bind(uid + 1)
            .bind(modseq)
            .bind(mailbox)
            .execute(&mut *conn)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO held_replies (agent_id, ticket, message_id, stored_id, reason, held_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(r.agent_id)
        .bind(r.ticket)
        .bind(&r.message_id)
        .bind(stored)
        .bind(&r.detail)
        .bind(r.now)
        .fetch_one(&mut *conn)
        .await?;
        (id, uid)
    });
    tx.queue_outgoing(r.ticket, &r.notice, "collision", r.now)
        .await?;
    tx.insert_events(&[NewEvent {
        ticket: r.ticket,
        at: r.now,
        actor: r.actor.clone(),
        kind: EventKind::Collision,
        detail: r.detail.clone(),
    }])
    .await?;
    Ok(HeldReply {
        id,
        again: false,
        uid: u32::try_from(uid).map_err(|_| StoreError::Corrupt(format!("uid {uid}")))?,
    })
}
