//! The durable outbound queue: rows are claimed for a short lease that the
//! worker renews while it delivers, then marked sent, retried later, or
//! failed. A node that dies mid-delivery leaves a lease that expires within
//! seconds: a row it had only claimed is claimed again; a row it had begun
//! to hand to the relay (`handing-over`) is not sent again blindly (see
//! [`Store::interrupted_handovers`]).

use super::{
    Change, Result, RowLock, Store, StoreError, dispatch, dispatch_read, on_tx, parse_column,
};
use crate::domain::change::{Cause, ChangeRequest, TicketChange};
pub use crate::domain::delivery::OutboundStatus;
use crate::domain::filing::DELIVERY_FAILED_TAG;
use crate::domain::ticket::{EventKind, NewEvent};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

/// The internal note that tells agents a delivery failed for good.
pub type FailureNote = super::search::SystemNote;

#[derive(Debug, Clone, Serialize)]
pub struct OutboundItem {
    pub id: i64,
    pub ticket: Option<i64>,
    pub message: Option<i64>,
    pub purpose: String,
    pub mail_from: String,
    pub rcpt_to: String,
    /// The other recipients of the same mail (a reply to everyone on the
    /// ticket), delivered in one SMTP transaction with `rcpt_to`.
    pub also_to: Vec<String>,
    pub status: OutboundStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

macro_rules! item_from_row {
    ($row:expr) => {{
        let row = $row;
        OutboundItem {
            id: row.try_get("id")?,
            ticket: row.try_get("ticket")?,
            message: row.try_get("message")?,
            purpose: row.try_get("purpose")?,
            mail_from: row.try_get("mail_from")?,
            rcpt_to: row.try_get("rcpt_to")?,
            also_to: row
                .try_get::<String, _>("also_to")?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            status: parse_column(&row.try_get::<String, _>("status")?, "outbound status")?,
            attempts: i64::from(row.try_get::<i32, _>("attempts")?),
            next_attempt_at: row.try_get("next_attempt_at")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
        }
    }};
}

const ITEM_COLUMNS: &str = "id, ticket, message, purpose, mail_from, rcpt_to, also_to, status, attempts, next_attempt_at, last_error, created_at";

impl OutboundItem {
    /// Every recipient of the delivery, `rcpt_to` first.
    pub fn recipients(&self) -> Vec<&str> {
        std::iter::once(self.rcpt_to.as_str())
            .chain(self.also_to.iter().map(String::as_str))
            .collect()
    }
}

impl Store {
    pub async fn outbound(&self, status: Option<OutboundStatus>) -> Result<Vec<OutboundItem>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM outbound WHERE ($1 IS NULL OR status = $1) ORDER BY id"
        );
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(status.map(|s| s.as_str()))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(item_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Claims up to `limit` due deliveries for `lease`; expired leases of a
    /// crashed worker are due again. PostgreSQL skips rows another node holds.
    pub async fn claim_outbound(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<(OutboundItem, Vec<u8>)>> {
        let until = now + lease;
        let select = format!(
            "SELECT {ITEM_COLUMNS} FROM outbound
             WHERE (status = 'queued' AND next_attempt_at <= $1)
                OR (status = 'sending' AND claimed_until <= $1)
             ORDER BY next_attempt_at LIMIT $2{}",
            self.backend.lock(RowLock::SkipLocked)
        );
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(select))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut item = item_from_row!(row);
                sqlx::query("UPDATE outbound SET status = 'sending', claimed_until = $1, updated_at = $2 WHERE id = $3")
                    .bind(until)
                    .bind(now)
                    .bind(item.id)
                    .execute(&mut *tx)
                    .await?;
                item.status = OutboundStatus::Sending;
                let raw: Vec<u8> = match item.message {
                    Some(message) => {
                        sqlx::query_scalar("SELECT raw FROM messages WHERE id = $1")
                            .bind(message)
                            .fetch_one(&mut *tx)
                            .await?
                    }
                    None => Vec::new(),
                };
                claimed.push((item, raw));
            }
            tx.commit().await?;
            Ok(claimed)
        })
    }

    pub async fn outbound_sent(&self, id: i64, now: DateTime<Utc>, reply: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let ticket: Option<i64> = on_tx!(&mut tx, |conn| {
            sqlx::query_scalar(
                "UPDATE outbound SET status = 'sent', attempts = attempts + 1, claimed_until = NULL,
                     last_error = NULL, updated_at = $1 WHERE id = $2 RETURNING ticket",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten()
        });
        if let Some(ticket) = ticket {
            tx.insert_events(&[NewEvent {
                ticket,
                at: now,
                actor: "postdesk".to_string(),
                kind: EventKind::Delivered,
                detail: format!("outbound #{id} delivered: {reply}"),
            }])
            .await?;
        }
        tx.commit().await
    }

    pub async fn outbound_retry_later(
        &self,
        id: i64,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE outbound SET status = 'queued', attempts = attempts + 1, claimed_until = NULL,
                     next_attempt_at = $1, last_error = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(next)
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Gives up on a delivery and records the failure on its ticket: the
    /// change (tag and event) and the internal note (composed by the
    /// caller) in one transaction with the status change.
    pub async fn outbound_failed(
        &self,
        id: i64,
        now: DateTime<Utc>,
        error: &str,
        note: Option<&FailureNote>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let ticket: Option<Option<i64>> = on_tx!(&mut tx, |conn| {
            sqlx::query_scalar(
                "UPDATE outbound SET status = 'failed', attempts = attempts + 1, claimed_until = NULL,
                     last_error = $1, updated_at = $2 WHERE id = $3 RETURNING ticket",
            )
            .bind(error)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        });
        let Some(ticket) = ticket else {
            return Err(StoreError::NotFound(format!("no outbound #{id}")));
        };
        let noted = match (ticket, note) {
            (Some(ticket), Some(note)) => {
                let change = ChangeRequest {
                    change: TicketChange {
                        add_tags: vec![DELIVERY_FAILED_TAG.to_string()],
                        ..TicketChange::default()
                    },
                    cause: Cause::DeliveryFailed {
                        detail: note.detail.clone(),
                    },
                    actor: "postdesk".to_string(),
                    agent: None,
                    at: now,
                };
                tx.change_ticket(ticket, &change).await?;
                tx.insert_system_note(
                    ticket,
                    &note.message_id,
                    &note.sender,
                    &note.subject,
                    &note.raw,
                    now,
                )
                .await?;
                Some(ticket)
            }
            _ => None,
        };
        tx.commit().await?;
        if let Some(ticket) = noted {
            self.announce(Change::Ticket(ticket));
        }
        Ok(())
    }

    /// Queues a delivery again, due now with a fresh attempt count (failed,
    /// cancelled, or queued and waiting for its next try). Returns it.
    pub async fn outbound_retry(
        &self,
        id: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<OutboundItem> {
        let item = self
            .outbound_set_status(id, actor, now, OutboundStatus::Queued)
            .await?;
        self.announce(Change::OutboundQueued);
        Ok(item)
    }

    /// Stops a delivery that has not gone out (queued or failed).
    pub async fn outbound_cancel(
        &self,
        id: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<OutboundItem> {
        self.outbound_set_status(id, actor, now, OutboundStatus::Cancelled)
            .await
    }

    async fn outbound_set_status(
        &self,
        id: i64,
        actor: &str,
        now: DateTime<Utc>,
        status: OutboundStatus,
    ) -> Result<OutboundItem> {
        let select = format!("SELECT {ITEM_COLUMNS} FROM outbound WHERE id = $1");
        let mut tx = self.begin().await?;
        let item: Option<OutboundItem> = on_tx!(&mut tx, |conn| {
            match sqlx::query(sqlx::AssertSqlSafe(select))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(row) => Some(item_from_row!(&row)),
                None => None,
            }
        });
        let Some(mut item) = item else {
            return Err(StoreError::NotFound(format!("no outbound #{id}")));
        };
        if let Err(why) = item.status.may_become(status) {
            return Err(StoreError::Conflict(format!(
                "outbound #{id} is {}: {why}",
                item.status
            )));
        }
        on_tx!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE outbound SET status = $1, attempts = CASE WHEN $1 = 'queued' THEN 0 ELSE attempts END,
                     next_attempt_at = CASE WHEN $1 = 'queued' THEN $2 ELSE next_attempt_at END,
                     created_at = CASE WHEN $1 = 'queued' THEN $2 ELSE created_at END,
                     claimed_until = NULL, updated_at = $2 WHERE id = $3",
            )
            .bind(status.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        });
        if let Some(ticket) = item.ticket {
            let what = match status {
                OutboundStatus::Queued => "queued again",
                _ => "cancelled",
            };
            tx.insert_events(&[NewEvent {
                ticket,
                at: now,
                actor: actor.to_string(),
                kind: EventKind::Outbound,
                detail: format!("outbound #{id} to {} {what} by {actor}", item.rcpt_to),
            }])
            .await?;
        }
        tx.commit().await?;
        item.status = status;
        Ok(item)
    }

    /// Due now or at the earliest later time, for the worker's sleep.
    pub async fn next_outbound_due(&self) -> Result<Option<DateTime<Utc>>> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT MIN(CASE WHEN status = 'queued' THEN next_attempt_at ELSE claimed_until END)
                 FROM outbound WHERE status IN ('queued', 'sending', 'handing-over')",
            )
            .fetch_one(pool)
            .await?)
        })
    }

    /// Keeps this worker's claims while it is still delivering them.
    pub async fn renew_outbound_claims(&self, ids: &[i64], until: DateTime<Utc>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE outbound SET claimed_until = $1
             WHERE status IN ('sending', 'handing-over') AND id IN ({})",
            super::events::placeholders(2, ids.len())
        );
        dispatch!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(until);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(pool).await?;
            Ok(())
        })
    }

    /// Recorded before the message goes to the relay: from here on a crash
    /// leaves the delivery's fate unknown.
    pub async fn outbound_handing_over(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE outbound SET status = 'handing-over', updated_at = $1
                 WHERE id = $2 AND status = 'sending'",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Deliveries whose worker died while handing them to the relay (the
    /// lease ran out in `handing-over`). The relay may have accepted them:
    /// sending again could deliver the same message twice, so the caller
    /// marks them failed with a note instead, for a person to retry. They
    /// are taken (their lease renewed) so that one worker handles each.
    pub async fn interrupted_handovers(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<OutboundItem>> {
        let select = format!(
            "SELECT {ITEM_COLUMNS} FROM outbound
             WHERE status = 'handing-over' AND claimed_until <= $1
             ORDER BY id LIMIT 100{}",
            self.backend.lock(RowLock::SkipLocked)
        );
        let until = now + lease;
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(select))
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            let mut taken = Vec::with_capacity(rows.len());
            for row in &rows {
                let item = item_from_row!(row);
                sqlx::query("UPDATE outbound SET claimed_until = $1 WHERE id = $2")
                    .bind(until)
                    .bind(item.id)
                    .execute(&mut *tx)
                    .await?;
                taken.push(item);
            }
            tx.commit().await?;
            Ok(taken)
        })
    }
}
