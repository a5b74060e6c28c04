//! What the SLA engine (rules/) hands the store to execute: the clocks a
//! ticket starts with, clocks brought up to date, and escalations to fire.
//! Plain data, so that the store never needs to know the rules engine.

use super::change::TicketChange;
use super::outgoing::OutgoingMail;
use super::ticket::Status;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A ticket's SLA policy and the due times it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaStart {
    pub policy: String,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
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

/// The scheduler's work on one ticket, to be saved: the check time the
/// ticket was read with (the save is a compare-and-set on it), whether it
/// was overdue then, and its clocks now.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockSave {
    pub ticket: i64,
    pub read_check_at: DateTime<Utc>,
    pub was_overdue: bool,
    pub update: SlaUpdate,
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

/// What the SLA report reads of one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaFacts {
    pub queue: String,
    pub policy: Option<String>,
    pub created_at: DateTime<Utc>,
    pub status: Status,
    pub first_response_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
    /// A running clock is past due now.
    pub overdue: bool,
    /// The scheduler marked it overdue at some point.
    pub breached: bool,
}

/// One line of `postdesk sla report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The report per queue, from tickets in queue order. A ticket missed a
/// due time when the scheduler marked it overdue (now or before), or when
/// it was answered or resolved after the due time (also when the scheduler
/// never saw it late).
pub fn report(tickets: Vec<SlaFacts>) -> Vec<SlaReportRow> {
    let mut report: Vec<SlaReportRow> = Vec::new();
    for t in tickets {
        let row = match report.last_mut() {
            Some(row) if row.queue == t.queue => row,
            _ => {
                report.push(SlaReportRow {
                    queue: t.queue.clone(),
                    tickets: 0,
                    with_sla: 0,
                    breached: 0,
                    overdue_now: 0,
                    first_responses: Vec::new(),
                });
                let Some(row) = report.last_mut() else {
                    continue;
                };
                row
            }
        };
        row.tickets += 1;
        row.with_sla += i64::from(t.policy.is_some());
        row.overdue_now += i64::from(t.overdue);
        let late = |due: Option<DateTime<Utc>>, at: Option<DateTime<Utc>>| matches!((due, at), (Some(due), Some(at)) if at > due);
        let resolved_at = t.done_at.filter(|_| t.status.is_done());
        if t.breached
            || t.overdue
            || late(t.first_response_due, t.first_response_at)
            || late(t.resolution_due, resolved_at)
        {
            row.breached += 1;
        }
        if let Some(answered) = t.first_response_at {
            row.first_responses.push((t.created_at, answered, t.policy));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn late_answers_and_marks_count_as_breaches_per_queue() {
        let start = Utc
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .unwrap_or_default();
        let ticket = |queue: &str| SlaFacts {
            queue: queue.into(),
            policy: Some("standard".into()),
            created_at: start,
            status: Status::Open,
            first_response_at: None,
            first_response_due: Some(start + Duration::hours(8)),
            resolution_due: None,
            done_at: None,
            overdue: false,
            breached: false,
        };
        let on_time = SlaFacts {
            first_response_at: Some(start + Duration::hours(1)),
            ..ticket("billing")
        };
        let answered_late = SlaFacts {
            first_response_at: Some(start + Duration::hours(9)),
            ..ticket("billing")
        };
        let marked = SlaFacts {
            breached: true,
            ..ticket("support")
        };
        let no_sla = SlaFacts {
            policy: None,
            ..ticket("support")
        };
        let rows = report(vec![on_time, answered_late, marked, no_sla]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].queue.as_str(), rows[0].tickets, rows[0].breached),
            ("billing", 2, 1)
        );
        assert_eq!(rows[0].first_responses.len(), 2);
        assert_eq!(
            (rows[1].tickets, rows[1].with_sla, rows[1].breached),
            (2, 1, 1)
        );
    }
}
