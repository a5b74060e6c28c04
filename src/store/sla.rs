//! SLA clocks and escalations in the store: which tickets the scheduler
//! must look at, saving what it worked out, and firing an escalation
//! exactly once (the firing row, the ticket change, the notices and the
//! event commit together, or none of them).

use super::{Change, Result, RowLock, Store, Tx, dispatch, dispatch_read, on_tx, parse_column};
use crate::domain::change::{Cause, ChangeRequest};
use crate::domain::sla::{ClockSave, Firing, SlaFacts, SlaReportRow, SlaUpdate, report};
use crate::domain::ticket::Status;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Saves a ticket's clocks if its check time is still the one read
/// ($8): the compare-and-set that keeps a concurrent change (or another
/// node's scheduler) from being overwritten.
const SAVE_CLOCKS: &str = "UPDATE tickets SET first_response_due = $1, next_response_due = $2,
        resolution_due = $3, sla_paused_at = $4, sla_overdue = $5, sla_check_at = $6,
        sla_breached = (sla_breached OR $5),
        sla_resumed_at = CASE WHEN $4 IS NULL THEN NULL ELSE sla_resumed_at END
    WHERE number = $7 AND sla_check_at = $8";

impl Tx {
    /// Saves a ticket's clocks with the compare-and-set of [`SAVE_CLOCKS`];
    /// false when the ticket changed since it was read.
    async fn save_clocks(&mut self, save: &ClockSave) -> Result<bool> {
        let update: &SlaUpdate = &save.update;
        on_tx!(self, |conn| {
            let saved = sqlx::query(SAVE_CLOCKS)
                .bind(update.first_response_due)
                .bind(update.next_response_due)
                .bind(update.resolution_due)
                .bind(update.paused_at)
                .bind(update.overdue)
                .bind(update.next_check)
                .bind(save.ticket)
                .bind(save.read_check_at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(saved > 0)
        })
    }

    /// Claims an escalation's breaches for a ticket; true when any was new
    /// (the escalation fires).
    async fn claim_breaches(
        &mut self,
        ticket: i64,
        firing: &Firing,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut claimed = 0;
        for breach in &firing.breaches {
            claimed += on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO sla_escalations (ticket, escalation, breach, fired_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(ticket)
                .bind(&firing.name)
                .bind(breach)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected()
            });
        }
        Ok(claimed > 0)
    }
}

/// What firing a ticket's escalations did.
struct Fired {
    /// Each escalation that fired, with what it did.
    fired: Vec<(String, Vec<String>)>,
    /// Whether notices were queued.
    notified: bool,
}

impl Tx {
    /// Saves a ticket's clocks and fires its escalations (see
    /// [`Store::save_sla_and_fire`]); None when the ticket changed since
    /// it was read.
    async fn save_and_fire(
        &mut self,
        save: &ClockSave,
        firings: &[Firing],
        now: DateTime<Utc>,
    ) -> Result<Option<Fired>> {
        let number = save.ticket;
        if !self.save_clocks(save).await? {
            return Ok(None);
        }
        let mut fired = Vec::new();
        let mut notified = false;
        for firing in firings {
            if !self.claim_breaches(number, firing, now).await? {
                continue;
            }
            for notice in &firing.notices {
                self.queue_outgoing(number, notice, "escalation", now)
                    .await?;
                notified = true;
            }
            let request = ChangeRequest {
                change: firing.change.clone(),
                cause: Cause::Escalation {
                    name: firing.name.clone(),
                    breaches: firing.breaches.clone(),
                    notified: firing.notices.iter().map(|n| n.rcpt_to.clone()).collect(),
                    problems: firing.problems.clone(),
                },
                actor: format!("escalation '{}'", firing.name),
                agent: None,
                at: now,
            };
            let plan = self.change_ticket(number, &request).await?;
            fired.push((firing.name.clone(), plan.done));
        }
        Ok(Some(Fired { fired, notified }))
    }
}

/// Tickets the scheduler claimed, and the transaction that holds them.
pub struct SlaClaim {
    tx: Tx,
    due: Vec<(i64, DateTime<Utc>)>,
}

/// A ticket's clocks to save, with the escalations that fire with them
/// (none: only the clocks).
pub type SlaWork = (ClockSave, Vec<Firing>);

impl SlaClaim {
    /// The claimed tickets and the check time each was read with.
    pub fn due(&self) -> &[(i64, DateTime<Utc>)] {
        &self.due
    }

    /// Saves the work on every claimed ticket and fires its escalations,
    /// in the claim's one transaction: a burst costs one commit per
    /// batch, not one per ticket. Any failure undoes the whole batch (the
    /// caller then does it ticket by ticket). Returns what fired, by ticket.
    pub async fn finish(
        mut self,
        store: &Store,
        work: &[SlaWork],
    ) -> Result<Vec<(i64, Vec<(String, Vec<String>)>)>> {
        let now = Utc::now();
        let mut done = Vec::new();
        for (save, firings) in work {
            let outcome = if firings.is_empty() {
                self.tx.save_clocks(save).await?.then_some(Fired {
                    fired: Vec::new(),
                    notified: false,
                })
            } else {
                self.tx.save_and_fire(save, firings, now).await?
            };
            if let Some(outcome) = outcome {
                done.push((save, outcome));
            }
        }
        self.tx.commit().await?;
        let mut fired = Vec::new();
        for (save, outcome) in done {
            store.announce_fired(save, &outcome);
            if !outcome.fired.is_empty() {
                fired.push((save.ticket, outcome.fired));
            }
        }
        Ok(fired)
    }
}

impl Store {
    /// Tickets whose clocks need a look at `now`, oldest first, with the
    /// check time they were read with (for [`Store::save_sla`]).
    pub async fn sla_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>)>> {
        Ok(dispatch_read!(self, |pool| {
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
        Ok(dispatch_read!(self, |pool| {
            // The condition lets SQLite answer from the partial index
            // tickets_sla_check instead of reading every ticket (the
            // scheduler asks after each burst of changes).
            sqlx::query_scalar(
                "SELECT MIN(sla_check_at) FROM tickets WHERE sla_check_at IS NOT NULL",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// Saves the scheduler's work on a batch of tickets in one
    /// transaction. A ticket that changed since it was read (its check
    /// time moved) is left alone and looked at again instead.
    pub async fn save_sla(&self, saves: &[ClockSave]) -> Result<()> {
        if saves.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let mut changed = Vec::new();
        for save in saves {
            if tx.save_clocks(save).await? && save.was_overdue != save.update.overdue {
                changed.push(save.ticket);
            }
        }
        tx.commit().await?;
        // The Overdue and Urgent folders of IMAP clients change.
        for number in changed {
            self.announce(Change::Ticket(number));
        }
        Ok(())
    }

    /// Asks the scheduler to look at every ticket with clocks (new rules
    /// may warn earlier or later).
    pub async fn sla_recheck_all(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(dispatch!(self, |pool| {
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
        save: &ClockSave,
        firings: &[Firing],
    ) -> Result<Option<Vec<(String, Vec<String>)>>> {
        let mut tx = self.begin().await?;
        let outcome = tx.save_and_fire(save, firings, Utc::now()).await?;
        tx.commit().await?;
        let Some(outcome) = outcome else {
            return Ok(None);
        };
        self.announce_fired(save, &outcome);
        Ok(Some(outcome.fired))
    }

    fn announce_fired(&self, save: &ClockSave, outcome: &Fired) {
        if !outcome.fired.is_empty() || save.was_overdue != save.update.overdue {
            self.announce(Change::Ticket(save.ticket));
        }
        if outcome.notified {
            self.announce(Change::OutboundQueued);
        }
    }

    /// Claims up to `limit` tickets whose clocks need a look at `now`,
    /// oldest first, for the scheduler to work on in one transaction
    /// ([`SlaClaim::finish`]). On PostgreSQL the rows stay locked until
    /// then and rows another scheduler holds are passed over, so the
    /// schedulers of several nodes (and several rounds of one) share a
    /// burst without doing any ticket twice; on SQLite the transaction
    /// holds the one writer.
    pub async fn sla_claim(&self, now: DateTime<Utc>, limit: i64) -> Result<SlaClaim> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT number, sla_check_at FROM tickets WHERE sla_check_at <= $1
             ORDER BY sla_check_at, number LIMIT $2{}",
            tx.lock(RowLock::SkipLocked)
        );
        let due = on_tx!(&mut tx, |conn| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(SlaClaim { tx, due })
    }

    /// How often each escalation fired for a ticket (tests, `ticket show`).
    pub async fn escalations_fired(&self, number: i64) -> Result<Vec<(String, String)>> {
        Ok(dispatch_read!(self, |pool| {
            sqlx::query_as(
                "SELECT escalation, breach FROM sla_escalations WHERE ticket = $1 ORDER BY fired_at",
            )
            .bind(number)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every escalation firing: the ticket and when it fired (benchmarks).
    pub async fn escalation_firings(&self) -> Result<Vec<(i64, DateTime<Utc>)>> {
        Ok(dispatch_read!(self, |pool| {
            sqlx::query_as("SELECT ticket, fired_at FROM sla_escalations ORDER BY fired_at")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Per queue: tickets, those with an SLA, breaches, and the answered
    /// tickets' first-response times (see [`crate::domain::sla::report`]).
    pub async fn sla_report(&self) -> Result<Vec<SlaReportRow>> {
        let rows = dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT q.name AS queue, t.sla_policy, t.created_at, t.status, t.first_response_at,
                     t.first_response_due, t.resolution_due, t.done_at, t.sla_overdue, t.sla_breached
                 FROM tickets t JOIN queues q ON q.id = t.queue_id ORDER BY q.name, t.number",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(SlaFacts {
                    queue: row.try_get("queue")?,
                    policy: row.try_get("sla_policy")?,
                    created_at: row.try_get("created_at")?,
                    status: parse_column::<Status>(&row.try_get::<String, _>("status")?, "status")?,
                    first_response_at: row.try_get("first_response_at")?,
                    first_response_due: row.try_get("first_response_due")?,
                    resolution_due: row.try_get("resolution_due")?,
                    done_at: row.try_get("done_at")?,
                    overdue: row.try_get("sla_overdue")?,
                    breached: row.try_get("sla_breached")?,
                });
            }
            out
        });
        Ok(report(rows))
    }
}
