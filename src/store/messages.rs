//! Writing messages and what leads to them: the message rows, the
//! Message-IDs that thread to a ticket, its participants, and queued
//! deliveries. Statements only; what to write was decided before.

use super::events::rows;
use super::{Result, Tx, on_tx};
use crate::domain::agent_mail::note_threading;
use crate::domain::filing::NewMessage;
use crate::domain::outgoing::OutgoingMail;
use crate::domain::ticket::MessageKind;
use chrono::{DateTime, Utc};
use sqlx::Row;

impl Tx {
    /// The message stored before with this Message-ID and sender, and its
    /// ticket: one email never makes two tickets.
    pub(crate) async fn stored_message(
        &mut self,
        message_id: &str,
        sender: &str,
    ) -> Result<Option<(i64, Option<i64>)>> {
        on_tx!(self, |conn| {
            let row = sqlx::query(
                "SELECT id, ticket FROM messages WHERE message_id = $1 AND sender = $2",
            )
            .bind(message_id)
            .bind(sender)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(match row {
                Some(row) => Some((row.try_get("id")?, row.try_get("ticket")?)),
                None => None,
            })
        })
    }

    /// Whether any stored message has this Message-ID.
    pub(crate) async fn message_id_stored(&mut self, message_id: &str) -> Result<bool> {
        on_tx!(self, |conn| {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM messages WHERE message_id = $1 LIMIT 1")
                    .bind(message_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(found.is_some())
        })
    }

    /// Inserts a message row; returns its id. `problem` is added to the
    /// message's own problems.
    pub(crate) async fn insert_message(
        &mut self,
        m: &NewMessage,
        ticket: Option<i64>,
        kind: MessageKind,
        problem: Option<&str>,
    ) -> Result<i64> {
        let mut problems: Vec<&str> = m.problems.iter().map(String::as_str).collect();
        problems.extend(problem);
        let problems = (!problems.is_empty()).then(|| problems.join("; "));
        let header_len = super::header_len(&m.raw);
        let auth = m.auth.as_ref();
        on_tx!(self, |conn| {
            Ok(sqlx::query_scalar(
                "INSERT INTO messages (ticket, kind, message_id, has_message_id, sender, from_name,
                     envelope_from, envelope_to, subject, sent_at, received_at, size, problems,
                     remote_addr, raw, header_len, auth_spf, auth_dkim, auth_dmarc, auth_policy,
                     auth_domain, auth_source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20, $21, $22)
                 RETURNING id",
            )
            .bind(ticket)
            .bind(kind.as_str())
            .bind(&m.message_id)
            .bind(m.has_message_id)
            .bind(&m.sender)
            .bind(&m.from_name)
            .bind(&m.envelope_from)
            .bind(m.envelope_to.join(", "))
            .bind(&m.subject)
            .bind(m.sent_at)
            .bind(m.received_at)
            .bind(i64::try_from(m.raw.len()).unwrap_or(i64::MAX))
            .bind(&problems)
            .bind(&m.remote_addr)
            .bind(&m.raw[..])
            .bind(header_len)
            .bind(auth.map(|a| a.spf.as_str()))
            .bind(auth.map(|a| a.dkim.as_str()))
            .bind(auth.map(|a| a.dmarc.as_str()))
            .bind(auth.and_then(|a| a.policy).map(|p| p.as_str()))
            .bind(auth.and_then(|a| a.domain.as_deref()))
            .bind(auth.map(|a| a.source.as_str()))
            .fetch_one(&mut *conn)
            .await?)
        })
    }

    /// The Message-IDs a note written now is threaded under: the ticket's
    /// first and latest messages that carry an id of their own and are in
    /// the agents' view (not acknowledgements), as In-Reply-To and
    /// References values ([`note_threading`]).
    pub(crate) async fn note_threading(&mut self, ticket: i64) -> Result<Option<(String, String)>> {
        let (first, latest): (Option<String>, Option<String>) = on_tx!(self, |conn| {
            let first = sqlx::query_scalar(
                "SELECT message_id FROM messages WHERE ticket = $1 AND has_message_id
                 AND kind NOT IN ('auto_reply', 'unfiled') ORDER BY id LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(&mut *conn)
            .await?;
            let latest = sqlx::query_scalar(
                "SELECT message_id FROM messages WHERE ticket = $1 AND has_message_id
                 AND kind NOT IN ('auto_reply', 'unfiled') ORDER BY id DESC LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(&mut *conn)
            .await?;
            (first, latest)
        });
        Ok(note_threading(first.as_deref(), latest.as_deref()))
    }

    /// Inserts a note postdesk wrote (a delivery failure, similar tickets,
    /// command errors) unless a message with its Message-ID is there
    /// already. True when it was inserted. The note is threaded under the
    /// ticket's latest message as it is stored: its bytes are final here.
    pub(crate) async fn insert_system_note(
        &mut self,
        ticket: i64,
        message_id: &str,
        sender: &str,
        subject: &str,
        raw: &[u8],
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut threaded = Vec::new();
        if let Some((in_reply_to, references)) = self.note_threading(ticket).await? {
            threaded.extend_from_slice(format!("In-Reply-To: {in_reply_to}\r\n").as_bytes());
            threaded.extend_from_slice(format!("References: {references}\r\n").as_bytes());
        }
        threaded.extend_from_slice(raw);
        let raw = &threaded[..];
        let header_len = super::header_len(raw);
        on_tx!(self, |conn| {
            let inserted = sqlx::query(
                "INSERT INTO messages (ticket, kind, message_id, has_message_id, sender, envelope_from,
                     envelope_to, subject, sent_at, received_at, size, raw, header_len)
                 VALUES ($1, $2, $3, TRUE, $4, '', '', $5, $6, $6, $7, $8, $9)
                 ON CONFLICT DO NOTHING",
            )
            .bind(ticket)
            .bind(MessageKind::Note.as_str())
            .bind(message_id)
            .bind(sender)
            .bind(subject)
            .bind(at)
            .bind(i64::try_from(raw.len()).unwrap_or(i64::MAX))
            .bind(raw)
            .bind(header_len)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(inserted == 1)
        })
    }

    /// Records that these Message-IDs lead to `ticket` (an id already
    /// leading elsewhere keeps doing so too).
    pub(crate) async fn insert_thread_ids(&mut self, ticket: i64, ids: &[&str]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO thread_ids (message_id, ticket) VALUES {} ON CONFLICT DO NOTHING",
            rows(ids.len(), 2)
        );
        on_tx!(self, |conn| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(*id).bind(ticket);
            }
            query.execute(&mut *conn).await?;
        });
        Ok(())
    }

    pub(crate) async fn insert_participants(
        &mut self,
        ticket: i64,
        addresses: &[&String],
    ) -> Result<()> {
        if addresses.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO ticket_participants (ticket, address) VALUES {} ON CONFLICT DO NOTHING",
            rows(addresses.len(), 2)
        );
        on_tx!(self, |conn| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for address in addresses {
                query = query.bind(ticket).bind(*address);
            }
            query.execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Queues delivery of a stored message to one recipient; returns the
    /// delivery's id.
    pub(crate) async fn queue_delivery(
        &mut self,
        ticket: i64,
        message: i64,
        purpose: &str,
        mail_from: &str,
        rcpt_to: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        on_tx!(self, |conn| {
            Ok(sqlx::query_scalar(
                "INSERT INTO outbound (ticket, message, purpose, mail_from, rcpt_to, status, attempts,
                     next_attempt_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6, $6) RETURNING id",
            )
            .bind(ticket)
            .bind(message)
            .bind(purpose)
            .bind(mail_from)
            .bind(rcpt_to)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?)
        })
    }

    /// Queues one delivery of a stored message to several recipients at
    /// once (one SMTP transaction: everybody gets the same mail and sees
    /// the To and Cc it has); returns the delivery's id.
    pub(crate) async fn queue_delivery_to_all(
        &mut self,
        ticket: i64,
        message: i64,
        purpose: &str,
        mail_from: &str,
        recipients: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let Some((first, others)) = recipients.split_first() else {
            return Ok(None);
        };
        let also_to = others.join("\n");
        on_tx!(self, |conn| {
            Ok(Some(sqlx::query_scalar(
                "INSERT INTO outbound (ticket, message, purpose, mail_from, rcpt_to, also_to, status,
                     attempts, next_attempt_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $7, $7) RETURNING id",
            )
            .bind(ticket)
            .bind(message)
            .bind(purpose)
            .bind(mail_from)
            .bind(first)
            .bind(also_to)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?))
        })
    }

    /// Stores mail postdesk writes by itself in its ticket, lets its
    /// Message-ID lead there, and queues its delivery; returns the
    /// delivery's id.
    pub(crate) async fn queue_outgoing(
        &mut self,
        ticket: i64,
        mail: &OutgoingMail,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let stored = NewMessage {
            message_id: mail.message_id.clone(),
            has_message_id: true,
            sender: mail.sender.clone(),
            from_name: mail.from_name.clone(),
            envelope_from: mail.mail_from.clone(),
            envelope_to: vec![mail.rcpt_to.clone()],
            subject: mail.subject.clone(),
            sent_at: now,
            received_at: now,
            problems: Vec::new(),
            remote_addr: None,
            references: Vec::new(),
            participants: Vec::new(),
            auth: None,
            raw: mail.raw.clone(),
        };
        let message = self
            .insert_message(&stored, Some(ticket), MessageKind::AutoReply, None)
            .await?;
        self.insert_thread_ids(ticket, &[mail.message_id.as_str()])
            .await?;
        self.queue_delivery(
            ticket,
            message,
            purpose,
            &mail.mail_from,
            &mail.rcpt_to,
            now,
        )
        .await
    }
}
