//! SLA clocks and escalations in the store: which tickets the scheduler
//! must look at, saving what it worked out, and firing an escalation
//! exactly once (the firing row, the ticket change, the notices and the
//! event commit together, or none of them).

use super::events::{Events, insert_events};
use super::imap::apply_ticket_change;
use super::inbound::{OutgoingMail, queue_outgoing};
use super::{Change, Result, Store, StoreError, dispatch, dispatch_read, parse_column};
use crate::domain::ticket::{MessageKind, Priority, Status};
use crate::domain::views::TicketChange;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

/// Saves a ticket's clocks if its check time is still the one read
/// ($8): the compare-and-set that keeps a concurrent change (or another
/// node's scheduler) from being overwritten.
const SAVE_CLOCKS: &str = "UPDATE tickets SET first_response_due = $1, next_response_due = $2,
        resolution_due = $3, sla_paused_at = $4, sla_overdue = $5, sla_check_at = $6,
        sla_breached = (sla_breached OR $5),
        sla_resumed_at = CASE WHEN $4 IS NULL THEN NULL ELSE sla_resumed_at END
    WHERE number = $7 AND sla_check_at = $8";

/// The [`SAVE_CLOCKS`] statement with its parameters.
fn save_clocks<'q, DB: sqlx::Database>(
    update: &SlaUpdate,
    number: i64,
    read_check_at: DateTime<Utc>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(SAVE_CLOCKS)
        .bind(update.first_response_due)
        .bind(update.next_response_due)
        .bind(update.resolution_due)
        .bind(update.paused_at)
        .bind(update.overdue)
        .bind(update.next_check)
        .bind(number)
        .bind(read_check_at)
}

/// One escalation to fire: the breaches it claims (it fires if any is
/// new), what it changes, the notices it sends, and what it could not do.
#[derive(Debug, Clone)]
pub struct Firing {
    pub name: String,
    pub breaches: Vec<String>,
    pub change: TicketChange,
    pub notices: Vec<OutgoingMail>,
    pub problems: Vec<String>,
}

/// A ticket's clocks brought up to date (`rules::sla::reconcile`), and
/// when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaUpdate {
    pub first_response_due: Option<DateTime<Utc>>,
    pub next_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    /// A running clock is past due.
    pub overdue: bool,
    /// The next instant something can change without any mail arriving: a
    /// due time, or a warning lead before one. None: nothing will.
    pub next_check: Option<DateTime<Utc>>,
}

/// One line of `postdesk sla report`.
#[derive(Debug, Clone, Serialize)]
pub struct SlaReportRow {
    pub queue: String,
    pub tickets: i64,
    /// Tickets with an SLA policy.
    pub with_sla: i64,
    /// Tickets that missed a due time: overdue now or before, or answered
    /// or resolved late.
    pub breached: i64,
    pub overdue_now: i64,
    /// (created_at, first_response_at, policy) of answered tickets, for
    /// the median in business hours (computed by the caller, who has the
    /// calendars).
    #[serde(skip)]
    pub first_responses: Vec<(DateTime<Utc>, DateTime<Utc>, Option<String>)>,
}

impl Store {
    /// Tickets whose clocks need a look at `now`, oldest first, with the
    /// check time they were read with (for [`Store::save_sla`]).
    pub async fn sla_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>)>> {
        Ok(dispatch_read!(self, pool => {
            sqlx::query_as(
                "SELECT number, sla_check_at FROM tickets WHERE sla_check_at <= $1
                 ORDER BY sla_check_at, number LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// When the scheduler must wake next (None: no clock anywhere).
    pub async fn sla_next_check(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(dispatch_read!(self, pool => {
            sqlx::query_scalar("SELECT MIN(sla_check_at) FROM tickets")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Saves the scheduler's work on a batch of tickets in one
    /// transaction: (ticket, the check time it was read with, whether it was
    /// overdue, the update). A ticket that changed since it was read (its
    /// check time moved) is left alone and looked at again instead.
    pub async fn save_sla(&self, saves: &[(i64, DateTime<Utc>, bool, SlaUpdate)]) -> Result<()> {
        if saves.is_empty() {
            return Ok(());
        }
        let changed: Vec<i64> = dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut changed = Vec::new();
            for (number, read_check_at, was_overdue, update) in saves {
                let saved = save_clocks(update, *number, *read_check_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if saved > 0 && *was_overdue != update.overdue {
                    changed.push(*number);
                }
            }
            tx.commit().await?;
            changed
        });
        // The Overdue and Urgent folders of IMAP clients change.
        for number in changed {
            self.announce(Change::Ticket(number));
        }
        Ok(())
    }

    /// Asks the scheduler to look at every ticket with clocks (new rules
    /// may warn earlier or later).
    pub async fn sla_recheck_all(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(dispatch!(self, pool => {
            sqlx::query("UPDATE tickets SET sla_check_at = $1 WHERE sla_policy IS NOT NULL AND status <> 'closed'")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Saves a ticket's clocks and fires its escalations in one
    /// transaction, each at most once per breach: an escalation whose
    /// breaches all fired before (here, before a restart, or on another
    /// node) does nothing. If the ticket changed since it was read (its
    /// check time moved) nothing is saved or fired and the result is None
    /// (the next round decides afresh); otherwise it is what each fired
    /// escalation did.
    pub async fn save_sla_and_fire(
        &self,
        save: &(i64, DateTime<Utc>, bool, SlaUpdate),
        firings: &[Firing],
    ) -> Result<Option<Vec<(String, Vec<String>)>>> {
        let (number, read_check_at, was_overdue, update) = save;
        let number = *number;
        let now = Utc::now();
        let fired: Option<Vec<(String, Vec<String>)>> = dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let saved = save_clocks(update, number, *read_check_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if saved == 0 {
                None
            } else {
                let mut fired = Vec::new();
                let mut events = Events::default();
                for firing in firings {
                    let mut claimed = 0;
                    for breach in &firing.breaches {
                        claimed += sqlx::query(
                            "INSERT INTO sla_escalations (ticket, escalation, breach, fired_at)
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(number)
                        .bind(&firing.name)
                        .bind(breach)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    if claimed == 0 {
                        continue;
                    }
                    let mut done = apply_ticket_change!(tx, number, &firing.change, now);
                    for notice in &firing.notices {
                        queue_outgoing!(tx, number, notice, "escalation", now);
                        done.push(format!("notified {}", notice.rcpt_to));
                    }
                    done.extend(firing.problems.iter().cloned());
                    let breach = firing.breaches.join(", ");
                    let detail = if done.is_empty() {
                        format!("fired ({breach}): nothing left to change")
                    } else {
                        format!("fired ({breach}): {}", done.join(", "))
                    };
                    events.add(number, now, &format!("escalation '{}'", firing.name), "escalated", detail);
                    fired.push((firing.name.clone(), done));
                }
                if !fired.is_empty() {
                    // What fired may move the clocks: look again.
                    sqlx::query("UPDATE tickets SET updated_at = $1, sla_check_at = $1 WHERE number = $2")
                        .bind(now)
                        .bind(number)
                        .execute(&mut *tx)
                        .await?;
                    insert_events!(tx, events);
                }
                tx.commit().await?;
                Some(fired)
            }
        });
        if let Some(fired) = &fired {
            if !fired.is_empty() || *was_overdue != update.overdue {
                self.announce(Change::Ticket(number));
            }
            if fired.iter().any(|(name, _)| {
                firings
                    .iter()
                    .any(|f| f.name == *name && !f.notices.is_empty())
            }) {
                self.announce(Change::OutboundQueued);
            }
        }
        Ok(fired)
    }

    /// How often each escalation fired for a ticket (tests, `ticket show`).
    pub async fn escalations_fired(&self, number: i64) -> Result<Vec<(String, String)>> {
        Ok(dispatch_read!(self, pool => {
            sqlx::query_as(
                "SELECT escalation, breach FROM sla_escalations WHERE ticket = $1 ORDER BY fired_at",
            )
            .bind(number)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Per queue: tickets, those with an SLA, breaches, and the answered
    /// tickets' first-response times.
    pub async fn sla_report(&self) -> Result<Vec<SlaReportRow>> {
        let rows = dispatch_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT q.name AS queue, t.sla_policy, t.created_at, t.status, t.first_response_at,
                     t.first_response_due, t.resolution_due, t.done_at, t.sla_overdue, t.sla_breached
                 FROM tickets t JOIN queues q ON q.id = t.queue_id ORDER BY q.name, t.number",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((
                    row.try_get::<String, _>("queue")?,
                    row.try_get::<Option<String>, _>("sla_policy")?,
                    row.try_get::<DateTime<Utc>, _>("created_at")?,
                    parse_column::<Status>(&row.try_get::<String, _>("status")?, "status")?,
                    row.try_get::<Option<DateTime<Utc>>, _>("first_response_at")?,
                    [
                        row.try_get::<Option<DateTime<Utc>>, _>("first_response_due")?,
                        row.try_get::<Option<DateTime<Utc>>, _>("resolution_due")?,
                    ],
                    row.try_get::<Option<DateTime<Utc>>, _>("done_at")?,
                    row.try_get::<bool, _>("sla_overdue")?,
                    row.try_get::<bool, _>("sla_breached")?,
                ));
            }
            out
        });
        let mut report: Vec<SlaReportRow> = Vec::new();
        for (queue, policy, created, status, first_response_at, dues, done_at, overdue, breached) in
            rows
        {
            if report.last().is_none_or(|r| r.queue != queue) {
                report.push(SlaReportRow {
                    queue: queue.clone(),
                    tickets: 0,
                    with_sla: 0,
                    breached: 0,
                    overdue_now: 0,
                    first_responses: Vec::new(),
                });
            }
            let Some(row) = report.last_mut() else {
                return Err(StoreError::Corrupt("report row vanished".into()));
            };
            row.tickets += 1;
            row.with_sla += i64::from(policy.is_some());
            row.overdue_now += i64::from(overdue);
            // Late: marked overdue by the scheduler at some point, or
            // answered or resolved after the due time (also when the
            // scheduler never saw it late).
            let late = |due: Option<DateTime<Utc>>, at: Option<DateTime<Utc>>| matches!((due, at), (Some(due), Some(at)) if at > due);
            let [first_due, resolution_due] = dues;
            let resolved_at = done_at.filter(|_| status.is_done());
            if breached
                || overdue
                || late(first_due, first_response_at)
                || late(resolution_due, resolved_at)
            {
                row.breached += 1;
            }
            if let Some(answered) = first_response_at {
                row.first_responses.push((created, answered, policy));
            }
        }
        Ok(report)
    }
}
