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

/// A ticket as the report reads it (see [`Store::read_as_json`]).
type TicketRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// A value a report read binds to `$1`, `$2`, ….
enum Bind {
    At(DateTime<Utc>),
    Number(i64),
}

/// A message as the report reads it: ticket, kind, received.
type MessageRow = (i64, String, DateTime<Utc>);

/// How many ticket numbers one read covers: the JSON of a read stays a few
/// tens of megabytes however large the period (a read scans the
/// messages table once, so not smaller).
const TICKETS_PER_READ: i64 = 100_000;

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
        let (first_ticket, last_ticket): (i64, i64) = dispatch_read!(self, |pool| {
            sqlx::query_as("SELECT COALESCE(MIN(number), 0), COALESCE(MAX(number), 0) FROM tickets")
                .fetch_one(pool)
                .await?
        });
        let mut tickets = Vec::new();
        let mut messages = Vec::new();
        let mut low = first_ticket;
        while low <= last_ticket {
            let high = low.saturating_add(TICKETS_PER_READ);
            let binds = [
                Bind::At(from),
                Bind::At(to),
                Bind::Number(low),
                Bind::Number(high),
            ];
            let ticket_rows = format!(
                "FROM tickets t JOIN queues q ON q.id = t.queue_id
                     LEFT JOIN agents a ON a.id = t.owner_id
                 WHERE {TICKETS_IN_PERIOD} AND t.number >= $3 AND t.number < $4"
            );
            // Only what the next-response clock runs between: customers'
            // messages and replies from the first answer on.
            let message_rows = format!(
                "FROM messages m JOIN tickets t ON t.number = m.ticket
                 WHERE m.kind IN ('customer', 'reply') AND t.first_response_at IS NOT NULL
                     AND m.received_at >= t.first_response_at AND {TICKETS_IN_PERIOD}
                     AND t.number >= $3 AND t.number < $4"
            );
            // Two connections at once: each read is mostly the database
            // formatting its JSON, on a core of its own.
            let (ticket_rows, message_rows): (Vec<TicketRow>, Vec<MessageRow>) =
                tokio::try_join!(
                    self.read_as_json(
                        "t.number, q.name, a.email, t.sla_policy, t.created_at, t.status,
                             t.done_at, t.first_response_at, t.first_response_due, t.resolution_due",
                        &ticket_rows,
                        &binds,
                    ),
                    self.read_as_json("m.ticket, m.kind, m.received_at", &message_rows, &binds),
                )?;
            for (
                number,
                queue,
                owner,
                policy,
                created_at,
                status,
                done_at,
                first_response_at,
                first_response_due,
                resolution_due,
            ) in ticket_rows
            {
                let status: Status = super::parse_column(&status, "status")?;
                tickets.push(ReportTicket {
                    number,
                    queue,
                    owner,
                    policy,
                    created_at,
                    done_at: done_at.filter(|_| status.is_done()),
                    first_response_at,
                    first_response_due,
                    resolution_due,
                });
            }
            messages.extend(
                message_rows
                    .into_iter()
                    .map(|(ticket, kind, at)| ReportMessage {
                        ticket,
                        customer: kind == MessageKind::Customer.as_str(),
                        at,
                    }),
            );
            low = high;
        }
        // By time within a ticket (imported mail can be older than what
        // was stored before it); the database hands them over unordered.
        messages.sort_by_key(|m: &ReportMessage| (m.ticket, m.at));
        let period = [Bind::At(from), Bind::At(to)];
        // A reopen that moved with a merge (`merged_from`) reopened the
        // merged ticket, not the target: the target's own history counts.
        let reopens: Vec<(i64, DateTime<Utc>)> = self
            .read_as_json(
                "ticket, at",
                "FROM ticket_events
                 WHERE kind = 'reopened' AND merged_from IS NULL AND at >= $1 AND at < $2",
                &period,
            )
            .await?;
        let time_spent = self
            .read_as_json::<(String, String, i64, DateTime<Utc>)>(
                "q.name, a.email, e.minutes, e.at",
                "FROM time_entries e
                     JOIN tickets t ON t.number = e.ticket JOIN queues q ON q.id = t.queue_id
                     JOIN agents a ON a.id = e.agent_id
                 WHERE e.at >= $1 AND e.at < $2",
                &period,
            )
            .await?
            .into_iter()
            .map(|(queue, agent, minutes, at)| TimeRecorded {
                queue,
                agent,
                minutes,
                at,
            })
            .collect();
        let surveys = self
            .read_as_json::<(String, Option<String>, String, DateTime<Utc>)>(
                "q.name, a.email, s.rating, s.rated_at",
                "FROM satisfaction_surveys s
                     JOIN queues q ON q.id = s.queue_id LEFT JOIN agents a ON a.id = s.agent_id
                 WHERE s.rating IS NOT NULL AND s.rated_at >= $1 AND s.rated_at < $2",
                &period,
            )
            .await?
            .into_iter()
            .map(|(queue, agent, rating, at)| SurveyAnswer {
                queue,
                agent,
                rating,
                at,
            })
            .collect();
        dispatch_read!(self, |pool| {
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

    /// The rows of `SELECT {columns} {rest}` as one JSON array, folded by
    /// the database and parsed here, `rest` binding `$1`, `$2`, … to `binds`.
    ///
    /// Why: the report reads a few hundred thousand rows, and row by row
    /// the driver's cost per row was most of the report's time (SQLite
    /// hands each row from its worker thread to ours: 2.6 s to read
    /// 100,000 tickets and 190,000 messages that SQLite itself selects in
    /// 0.15 s). One value per read costs the database little and parses at
    /// memory speed. Timestamps arrive as RFC 3339 text on both backends.
    async fn read_as_json<T: serde::de::DeserializeOwned>(
        &self,
        columns: &str,
        rest: &str,
        binds: &[Bind],
    ) -> Result<Vec<T>> {
        // The same fold in each backend's spelling.
        let sql = match &self.backend {
            super::Backend::Sqlite { .. } => {
                format!("SELECT json_group_array(json_array({columns})) {rest}")
            }
            super::Backend::Postgres(_) => format!(
                "SELECT COALESCE(json_agg(json_build_array({columns})), '[]'::json)::text {rest}"
            ),
        };
        let json: String = dispatch_read!(self, |pool| {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for bind in binds {
                query = match bind {
                    Bind::At(at) => query.bind(*at),
                    Bind::Number(n) => query.bind(*n),
                };
            }
            query.fetch_one(pool).await?
        });
        serde_json::from_str(&json)
            .map_err(|e| super::StoreError::Corrupt(format!("report rows: {e}")))
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
