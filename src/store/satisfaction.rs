//! The satisfaction surveys (table `satisfaction_surveys`, migrations 0018
//! and 0021): which resolved tickets still wait for one, the survey's
//! mail queued with the acknowledgements' hourly caps, and the answers.
//! Whether a ticket gets one is decided in `domain::satisfaction`.

use super::{Change, Result, Store, Tx, dispatch, dispatch_read, on_tx, parse_column};
use crate::domain::automation::TicketSnapshot;
use crate::domain::filing::{self, AckCaps};
use crate::domain::outgoing::OutgoingMail;
use crate::domain::satisfaction::Rating;
use crate::domain::ticket::{Disposition, EventKind, Status};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

/// A resolved ticket no survey was decided for yet.
#[derive(Debug, Clone)]
pub struct SurveyCandidate {
    pub ticket: i64,
    pub queue_id: i64,
    pub queue: String,
    pub queue_address: String,
    pub customer_address: String,
    pub customer_name: Option<String>,
    pub status: Status,
    pub disposition: Option<Disposition>,
    pub owner_id: Option<i64>,
    pub merged_into: Option<i64>,
}

/// A survey to record: sent (the mail, within the caps) or skipped.
#[derive(Debug, Clone)]
pub struct SurveyWrite {
    pub ticket: i64,
    pub queue_id: i64,
    pub agent_id: Option<i64>,
    pub token_hash: String,
    /// Ok: the mail and the caps it counts against; Err: why none is sent.
    pub send: std::result::Result<(OutgoingMail, AckCaps), String>,
    pub now: DateTime<Utc>,
}

/// What became of a survey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurveyOutcome {
    Queued,
    /// None sent, for this reason (recorded on the ticket).
    Skipped(String),
    /// The ticket has had its survey already (another node, or before).
    AlreadyDecided,
}

/// A survey as its link page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SurveyState {
    pub id: i64,
    pub ticket: i64,
    pub rating: Option<Rating>,
    pub comment: Option<String>,
}

/// What a rating did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rated {
    /// Recorded now.
    Recorded { ticket: i64 },
    /// The survey was answered before (with this rating).
    Already { ticket: i64, rating: Rating },
    /// No such survey (or one never sent).
    Unknown,
}

fn rating_of(value: Option<String>) -> Result<Option<Rating>> {
    value
        .map(|v| parse_column::<Rating>(&v, "satisfaction rating"))
        .transpose()
}

impl Tx {
    async fn insert_survey(
        &mut self,
        s: &SurveyWrite,
        message_id: Option<&str>,
        skipped: Option<&str>,
    ) -> Result<Option<i64>> {
        on_tx!(self, |conn| {
            Ok(sqlx::query_scalar(
                "INSERT INTO satisfaction_surveys
                     (ticket, queue_id, agent_id, token_hash, sent_at, message_id, skipped)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (ticket) DO NOTHING RETURNING id",
            )
            .bind(s.ticket)
            .bind(s.queue_id)
            .bind(s.agent_id)
            .bind(&s.token_hash)
            .bind(s.now)
            .bind(message_id)
            .bind(skipped)
            .fetch_optional(&mut *conn)
            .await?)
        })
    }

    async fn skip_survey(&mut self, id: i64, reason: &str) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE satisfaction_surveys SET skipped = $1, message_id = NULL WHERE id = $2",
            )
            .bind(reason)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }
}

impl Store {
    /// What the rules read of a ticket now.
    pub async fn ticket_snapshot(&self, number: i64) -> Result<Option<TicketSnapshot>> {
        let mut tx = self.begin().await?;
        let snapshot = tx.ticket_snapshot(number).await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    /// Tickets of these queues (all: None) done since `since`, not in
    /// Junk or Trash, without a survey decided, oldest first.
    pub async fn survey_candidates(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<SurveyCandidate>> {
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT t.number, t.queue_id, q.name AS queue, q.address AS queue_address,
                     t.customer_address, t.customer_name, t.status, t.disposition, t.owner_id,
                     t.merged_into
                 FROM tickets t JOIN queues q ON q.id = t.queue_id
                 WHERE t.status IN ('resolved', 'closed') AND t.done_at >= $1
                 AND NOT EXISTS (SELECT 1 FROM satisfaction_surveys s WHERE s.ticket = t.number)
                 ORDER BY t.done_at LIMIT $2",
            )
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut found = Vec::with_capacity(rows.len());
            for row in &rows {
                let disposition: Option<String> = row.try_get("disposition")?;
                found.push(SurveyCandidate {
                    ticket: row.try_get("number")?,
                    queue_id: row.try_get("queue_id")?,
                    queue: row.try_get("queue")?,
                    queue_address: row.try_get("queue_address")?,
                    customer_address: row.try_get("customer_address")?,
                    customer_name: row.try_get("customer_name")?,
                    status: parse_column(&row.try_get::<String, _>("status")?, "status")?,
                    disposition: disposition
                        .map(|d| parse_column::<Disposition>(&d, "disposition"))
                        .transpose()?,
                    owner_id: row.try_get("owner_id")?,
                    merged_into: row.try_get("merged_into")?,
                });
            }
            Ok(found)
        })
    }

    /// The first customer message of a ticket: its bytes and envelope sender.
    pub async fn first_customer_message(&self, ticket: i64) -> Result<Option<(Vec<u8>, String)>> {
        dispatch_read!(self, |pool| {
            let row = sqlx::query(
                "SELECT raw, envelope_from FROM messages WHERE ticket = $1 AND kind = 'customer'
                 ORDER BY id LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some((row.try_get("raw")?, row.try_get("envelope_from")?)),
                None => None,
            })
        })
    }

    /// Records a ticket's survey and queues its mail within the hourly
    /// caps of the acknowledgements (counted with them, under their lock),
    /// with its event, in one transaction. Once per ticket.
    pub async fn queue_survey(&self, s: &SurveyWrite) -> Result<SurveyOutcome> {
        let mut tx = self.begin().await?;
        let (message_id, skipped) = match &s.send {
            Ok((mail, _)) => (Some(mail.message_id.as_str()), None),
            Err(reason) => (None, Some(reason.as_str())),
        };
        let Some(id) = tx.insert_survey(s, message_id, skipped).await? else {
            return Ok(SurveyOutcome::AlreadyDecided);
        };
        let event = |kind, detail: String| filing::postdesk_event(s.ticket, s.now, kind, detail);
        let outcome = match &s.send {
            Err(reason) => {
                tx.insert_events(&[event(
                    EventKind::AutoReplySuppressed,
                    format!("no satisfaction survey: {reason}"),
                )])
                .await?;
                SurveyOutcome::Skipped(reason.clone())
            }
            Ok((mail, caps)) => {
                let since = s.now - Duration::hours(1);
                let (to_recent, all_recent) = tx.lock_and_count_acks(&mail.rcpt_to, since).await?;
                match filing::ack_cap(&mail.rcpt_to, to_recent, all_recent, *caps) {
                    Some(reason) => {
                        tx.skip_survey(id, &reason).await?;
                        tx.insert_events(&[event(
                            EventKind::AutoReplySuppressed,
                            format!("no satisfaction survey: {reason}"),
                        )])
                        .await?;
                        SurveyOutcome::Skipped(reason)
                    }
                    None => {
                        tx.claim_ack(&mail.rcpt_to, s.now, since).await?;
                        tx.queue_outgoing(s.ticket, mail, "satisfaction", s.now)
                            .await?;
                        tx.insert_events(&[event(
                            EventKind::AutoReply,
                            format!("satisfaction survey queued to {}", mail.rcpt_to),
                        )])
                        .await?;
                        SurveyOutcome::Queued
                    }
                }
            }
        };
        tx.commit().await?;
        self.announce(Change::Ticket(s.ticket));
        if outcome == SurveyOutcome::Queued {
            self.announce(Change::OutboundQueued);
        }
        Ok(outcome)
    }

    /// The survey of a token's hash (sent ones only).
    pub async fn survey_by_token(&self, token_hash: &str) -> Result<Option<SurveyState>> {
        dispatch_read!(self, |pool| {
            let row = sqlx::query(
                "SELECT id, ticket, rating, comment FROM satisfaction_surveys
                 WHERE token_hash = $1 AND skipped IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(SurveyState {
                    id: row.try_get("id")?,
                    ticket: row.try_get("ticket")?,
                    rating: rating_of(row.try_get("rating")?)?,
                    comment: row.try_get("comment")?,
                }),
                None => None,
            })
        })
    }

    /// The survey a reply names by its threading headers (sent ones only).
    pub async fn survey_by_message_ids(&self, ids: &[String]) -> Result<Option<SurveyState>> {
        for id in ids {
            let found = dispatch_read!(self, |pool| {
                let row = sqlx::query(
                    "SELECT id, ticket, rating, comment FROM satisfaction_surveys
                     WHERE message_id = $1 AND skipped IS NULL",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?;
                match row {
                    Some(row) => Some(SurveyState {
                        id: row.try_get("id")?,
                        ticket: row.try_get("ticket")?,
                        rating: rating_of(row.try_get("rating")?)?,
                        comment: row.try_get("comment")?,
                    }),
                    None => None,
                }
            });
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Records a survey's rating, once: a second answer changes nothing.
    pub async fn rate_survey(&self, id: i64, rating: Rating, now: DateTime<Utc>) -> Result<Rated> {
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(
                "SELECT ticket, rating FROM satisfaction_surveys WHERE id = $1 AND skipped IS NULL",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(Rated::Unknown);
            };
            let ticket: i64 = row.try_get("ticket")?;
            let updated = sqlx::query(
                "UPDATE satisfaction_surveys SET rating = $1, rated_at = $2
                 WHERE id = $3 AND rating IS NULL",
            )
            .bind(rating.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                let before: Option<String> =
                    sqlx::query_scalar("SELECT rating FROM satisfaction_surveys WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                let before = rating_of(before)?.unwrap_or(rating);
                return Ok(Rated::Already {
                    ticket,
                    rating: before,
                });
            }
            tx.commit().await?;
            Ok(Rated::Recorded { ticket })
        })
    }

    /// Adds the comment to a rated survey, once. False: it has one, or no
    /// rating yet.
    pub async fn comment_survey(&self, id: i64, comment: &str) -> Result<bool> {
        dispatch!(self, |pool| {
            let done = sqlx::query(
                "UPDATE satisfaction_surveys SET comment = $1
                 WHERE id = $2 AND rating IS NOT NULL AND comment IS NULL AND skipped IS NULL",
            )
            .bind(comment)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Ratings per queue and per agent (the agent the ticket was with when
    /// its survey went out): (queue, agent address or "", rating, count).
    pub async fn satisfaction_counts(&self) -> Result<Vec<(String, String, Rating, i64)>> {
        let rows = dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT q.name AS queue, COALESCE(a.email, '') AS agent, s.rating, COUNT(*) AS n
                 FROM satisfaction_surveys s JOIN queues q ON q.id = s.queue_id
                 LEFT JOIN agents a ON a.id = s.agent_id
                 WHERE s.rating IS NOT NULL
                 GROUP BY q.name, COALESCE(a.email, ''), s.rating ORDER BY 1, 2, 3",
            )
            .fetch_all(pool)
            .await?;
            let mut counts = Vec::with_capacity(rows.len());
            for row in &rows {
                let rating: String = row.try_get("rating")?;
                counts.push((
                    row.try_get("queue")?,
                    row.try_get("agent")?,
                    parse_column::<Rating>(&rating, "satisfaction rating")?,
                    row.try_get("n")?,
                ));
            }
            counts
        });
        Ok(rows)
    }
}
