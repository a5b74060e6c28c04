//! What the team report reads (the rows of [`ReportData`]; the figures
//! are computed in `domain::report`), and the weekly report mail, queued
//! once per period however many nodes try.

use super::{Change, Result, Store, dispatch_read, on_tx};
use crate::domain::filing::NewMessage;
use crate::domain::outgoing::OutgoingMail;
use crate::domain::report::{
    ArticleUse, ReportData, ReportMessage, ReportTicket, SurveyAnswer, TimeRecorded,
};
use crate::domain::ticket::{MessageKind, Status};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::Row;

/// The tickets a period's figures can come from: created before its end,
/// and not resolved before its start (an older ticket resolved since, or
/// still open, can be answered, resolved or late in it). Junk and Trash
/// are not the team's work. A ticket merged into another is no ticket of
/// its own any more: its mail is the target's (measured on the target's
/// clocks), and closing it by the merge resolved nothing.
const TICKETS_IN_PERIOD: &str = "t.disposition IS NULL AND t.merged_into IS NULL
    AND t.created_at < $2
    AND (t.done_at IS NULL OR t.done_at >= $1 OR t.status NOT IN ('resolved', 'closed'))";

impl Store {
    /// The rows of the report for `[from, to)` (None: since the start).
    pub async fn report_data(
        &self,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    ) -> Result<ReportData> {
        let from = from.unwrap_or_else(|| Utc.timestamp_opt(0, 0).single().unwrap_or_default());
        let tickets_sql = format!(
            "SELECT t.number, q.name AS queue, a.email AS owner, t.sla_policy, t.created_at,
                 t.status, t.done_at, t.first_response_at, t.first_response_due, t.resolution_due
             FROM tickets t JOIN queues q ON q.id = t.queue_id
                 LEFT JOIN agents a ON a.id = t.owner_id
             WHERE {TICKETS_IN_PERIOD}"
        );
        // Only what the next-response clock runs between: customers'
        // messages and replies from the first answer on.
        let messages_sql = format!(
            "SELECT m.ticket, m.kind, m.received_at FROM messages m
                 JOIN tickets t ON t.number = m.ticket
             WHERE m.kind IN ('customer', 'reply') AND t.first_response_at IS NOT NULL
                 AND m.received_at >= t.first_response_at AND {TICKETS_IN_PERIOD}
             ORDER BY m.ticket, m.id"
        );
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(tickets_sql))
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?;
            let mut tickets = Vec::with_capacity(rows.len());
            for row in &rows {
                let status: Status =
                    super::parse_column(&row.try_get::<String, _>("status")?, "status")?;
                let done_at: Option<DateTime<Utc>> = row.try_get("done_at")?;
                tickets.push(ReportTicket {
                    number: row.try_get("number")?,
                    queue: row.try_get("queue")?,
                    owner: row.try_get("owner")?,
                    policy: row.try_get("sla_policy")?,
                    created_at: row.try_get("created_at")?,
                    done_at: done_at.filter(|_| status.is_done()),
                    first_response_at: row.try_get("first_response_at")?,
                    first_response_due: row.try_get("first_response_due")?,
                    resolution_due: row.try_get("resolution_due")?,
                });
            }
            drop(rows);
            let rows = sqlx::query(sqlx::AssertSqlSafe(messages_sql))
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?;
            let mut messages = Vec::with_capacity(rows.len());
            for row in &rows {
                messages.push(ReportMessage {
                    ticket: row.try_get("ticket")?,
                    customer: row.try_get::<String, _>("kind")? == MessageKind::Customer.as_str(),
                    at: row.try_get("received_at")?,
                });
            }
            drop(rows);
            // In the order of the index (no sort in the database); by
            // time within a ticket here (imported mail can be older than
            // what was stored before it).
            messages.sort_by_key(|m: &ReportMessage| (m.ticket, m.at));
            // A reopen that moved with a merge (`merged_from`) reopened the
            // merged ticket, not the target: the target's own history counts.
            let reopens: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
                "SELECT ticket, at FROM ticket_events
                 WHERE kind = 'reopened' AND merged_from IS NULL AND at >= $1 AND at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            let time_spent = sqlx::query_as::<_, (String, String, i64, DateTime<Utc>)>(
                "SELECT q.name, a.email, e.minutes, e.at FROM time_entries e
                     JOIN tickets t ON t.number = e.ticket JOIN queues q ON q.id = t.queue_id
                     JOIN agents a ON a.id = e.agent_id
                 WHERE e.at >= $1 AND e.at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|(queue, agent, minutes, at)| TimeRecorded {
                queue,
                agent,
                minutes,
                at,
            })
            .collect();
            let surveys = sqlx::query_as::<_, (String, Option<String>, String, DateTime<Utc>)>(
                "SELECT q.name, a.email, s.rating, s.rated_at FROM satisfaction_surveys s
                     JOIN queues q ON q.id = s.queue_id LEFT JOIN agents a ON a.id = s.agent_id
                 WHERE s.rating IS NOT NULL AND s.rated_at >= $1 AND s.rated_at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|(queue, agent, rating, at)| SurveyAnswer {
                queue,
                agent,
                rating,
                at,
            })
            .collect();
            let articles = sqlx::query_as::<_, (i64, String, i64, i64, i64)>(
                "SELECT a.id, r.title,
                     (SELECT COUNT(*) FROM kb_suggestions s
                      WHERE s.article = a.id AND s.at >= $1 AND s.at < $2),
                     (SELECT COUNT(*) FROM kb_feedback f
                      WHERE f.article = a.id AND f.helped AND f.at >= $1 AND f.at < $2),
                     (SELECT COUNT(*) FROM kb_feedback f
                      WHERE f.article = a.id AND NOT f.helped AND f.at >= $1 AND f.at < $2)
                 FROM kb_articles a
                     JOIN kb_revisions r ON r.article = a.id AND r.number = a.latest_revision
                 ORDER BY a.id",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            .into_iter()
            .filter(|(_, _, suggested, yes, no)| suggested + yes + no > 0)
            .map(
                |(article, title, suggested, helped_yes, helped_no)| ArticleUse {
                    article,
                    title,
                    suggested,
                    helped_yes,
                    helped_no,
                },
            )
            .collect();
            Ok(ReportData {
                tickets,
                messages,
                reopens,
                time_spent,
                surveys,
                articles,
            })
        })
    }

    /// Queues the report mails of a period, unless they were queued before
    /// (here, before a restart, or by another node): the period's row and
    /// the mails commit together. True when this call queued them.
    pub async fn queue_report_mail(
        &self,
        period: &str,
        mails: &[OutgoingMail],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let claimed = on_tx!(&mut tx, |conn| {
            sqlx::query(
                "INSERT INTO report_mailings (period, sent_at, recipients) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(period)
            .bind(now)
            .bind(i64::try_from(mails.len()).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        if claimed == 0 {
            return Ok(false);
        }
        for mail in mails {
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
            // In no ticket: the report is about all of them.
            let message = tx
                .insert_message(&stored, None, MessageKind::AutoReply, None)
                .await?;
            on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO outbound (ticket, message, purpose, mail_from, rcpt_to, status,
                         attempts, next_attempt_at, created_at, updated_at)
                     VALUES (NULL, $1, 'report', $2, $3, 'queued', 0, $4, $4, $4)",
                )
                .bind(message)
                .bind(&mail.mail_from)
                .bind(&mail.rcpt_to)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            });
        }
        tx.commit().await?;
        self.announce(Change::OutboundQueued);
        Ok(true)
    }

    /// The periods whose report mail was queued, newest first, with when
    /// and to how many (`postdesk status`, tests).
    pub async fn report_mailings(&self) -> Result<Vec<(String, DateTime<Utc>, i64)>> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT period, sent_at, recipients FROM report_mailings ORDER BY sent_at DESC",
            )
            .fetch_all(pool)
            .await?)
        })
    }
}
