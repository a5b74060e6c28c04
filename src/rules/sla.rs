//! SLA clocks: first response, next response and resolution, as due
//! instants that pause while a ticket waits on the customer or is done.
//!
//! The store keeps what happened (first_response_at, customer_waiting_since,
//! status) and the due times; [`reconcile`] brings the due times in line
//! with what happened. It is pure, so the scheduler, `rules test` and the
//! tests share it, and a scheduler that was down catches up by running it.

use super::Policy;
use super::calendar::{BusinessDuration, Calendar};
use super::context::ClockFacts;
pub use crate::domain::sla::SlaUpdate;
use crate::domain::ticket::Status;
use chrono::{DateTime, Duration, Utc};

/// A ticket's clock facts, as stored.
#[derive(Debug, Clone)]
pub struct SlaTicket {
    pub number: i64,
    pub policy: Option<String>,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub customer_waiting_since: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub next_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    /// When it became active again after a pause (recorded with the status
    /// change; None: the scheduler's `now` is used).
    pub resumed_at: Option<DateTime<Utc>>,
    pub overdue: bool,
}

impl SlaUpdate {
    pub fn clocks(&self, t: &SlaTicket) -> [(&'static str, ClockFacts); 3] {
        let paused = self.paused_at.is_some();
        let clock = |due: Option<DateTime<Utc>>, stopped: bool| ClockFacts {
            due,
            running: due.is_some() && !paused && !stopped,
            paused: due.is_some() && paused && !stopped,
        };
        [
            (
                "first_response",
                clock(self.first_response_due, t.first_response_at.is_some()),
            ),
            ("next_response", clock(self.next_response_due, false)),
            ("resolution", clock(self.resolution_due, t.status.is_done())),
        ]
    }
}

/// Initial due times for a ticket given `policy` at `start`.
pub fn initial_dues(
    policy: &Policy,
    start: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let due =
        |target: Option<BusinessDuration>| target.and_then(|t| policy.calendar.deadline(start, t));
    (due(policy.first_response), due(policy.resolution))
}

/// Brings the clocks of `t` up to `now`. `policy` is None when the ticket
/// has no SLA or its policy left the rules file (its clocks then keep the
/// due times they have, measured on the 24x7 calendar when they resume).
/// `leads`: how long before a due time escalations want a look.
pub fn reconcile(
    t: &SlaTicket,
    policy: Option<&Policy>,
    now: DateTime<Utc>,
    leads: &[Duration],
) -> SlaUpdate {
    if t.policy.is_none() {
        // No SLA: no clocks to run, pause or report late.
        return SlaUpdate {
            first_response_due: t.first_response_due,
            next_response_due: t.next_response_due,
            resolution_due: t.resolution_due,
            paused_at: None,
            overdue: false,
            next_check: None,
        };
    }
    let always = Calendar::always();
    let calendar = policy.map_or(&always, |p| p.calendar.as_ref());
    let mut first = t.first_response_due;
    let mut next = t.next_response_due;
    let mut resolution = t.resolution_due;
    let mut paused_at = t.paused_at;

    if t.status.pauses_clocks() {
        paused_at.get_or_insert(now);
    } else if let Some(since) = paused_at.take() {
        // Resume: each clock gets back the business time it had left when
        // it stopped, from the moment the ticket became active; one already
        // late stays late.
        let resumed = t.resumed_at.unwrap_or(now).clamp(since, now.max(since));
        let resume = |due: Option<DateTime<Utc>>| {
            due.map(|d| {
                if d > since {
                    calendar
                        .add_business_time(resumed, calendar.business_between(since, d))
                        .unwrap_or(d)
                } else {
                    d
                }
            })
        };
        if t.first_response_at.is_none() {
            first = resume(first);
        }
        next = resume(next);
        resolution = resume(resolution);
    }

    if let Some(policy) = policy {
        let deadline = |start: DateTime<Utc>, target: Option<BusinessDuration>| {
            target.and_then(|target| policy.calendar.deadline(start, target))
        };
        if first.is_none() && t.first_response_at.is_none() {
            first = deadline(t.created_at, policy.first_response);
        }
        if resolution.is_none() {
            resolution = deadline(t.created_at, policy.resolution);
        }
        // The next-response clock runs from a customer's message after the
        // first answer until the next answer (the first-response clock
        // covers the time before).
        match (t.first_response_at, t.customer_waiting_since) {
            (Some(_), Some(since)) if next.is_none() => {
                next = deadline(since, policy.next_response);
            }
            (_, None) => next = None,
            _ => {}
        }
    }

    let reconciled = SlaUpdate {
        first_response_due: first,
        next_response_due: next,
        resolution_due: resolution,
        paused_at,
        overdue: false,
        next_check: None,
    };
    let clocks = reconciled.clocks(t);
    let running: Vec<DateTime<Utc>> = clocks
        .iter()
        .filter(|(_, c)| c.running)
        .filter_map(|(_, c)| c.due)
        .collect();
    let overdue = running.iter().any(|due| *due <= now);
    let next_check = running
        .iter()
        .flat_map(|due| std::iter::once(*due).chain(leads.iter().map(move |lead| *due - *lead)))
        .filter(|at| *at > now)
        .min();
    SlaUpdate {
        overdue,
        next_check,
        ..reconciled
    }
}

/// The breaches an escalation claims: one per clock cycle its condition
/// reads. The first-response and resolution clocks run once per ticket;
/// the next-response clock once per customer message that started it, and
/// only while it runs. A pause moves a due time but is the same cycle. An
/// escalation fires when any of its breaches is new, so one that reads
/// several clocks fires again only for a new cycle, never for a reply that
/// stops a clock.
pub fn breach_keys(reads: &[&str], t: &SlaTicket, clocks: &SlaUpdate) -> Vec<String> {
    let mut keys = Vec::new();
    if reads.contains(&"first_response") && clocks.first_response_due.is_some() {
        keys.push("first_response".to_string());
    }
    if reads.contains(&"next_response")
        && clocks.next_response_due.is_some()
        && let Some(since) = t.customer_waiting_since
    {
        keys.push(format!(
            "next_response since {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if reads.contains(&"resolution") && clocks.resolution_due.is_some() {
        keys.push("resolution".to_string());
    }
    if keys.is_empty() {
        keys.push("ticket".to_string());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Arc;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // Monday 2026-11-23.
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            name: "standard".into(),
            calendar_name: "24x7".into(),
            calendar: Arc::new(Calendar::always()),
            first_response: Some(BusinessDuration::parse("1h").unwrap()),
            next_response: Some(BusinessDuration::parse("2h").unwrap()),
            resolution: Some(BusinessDuration::parse("8h").unwrap()),
        }
    }

    fn ticket() -> SlaTicket {
        SlaTicket {
            number: 1,
            policy: Some("standard".into()),
            status: Status::New,
            created_at: at(9, 0),
            first_response_at: None,
            customer_waiting_since: Some(at(9, 0)),
            first_response_due: None,
            next_response_due: None,
            resolution_due: None,
            paused_at: None,
            resumed_at: None,
            overdue: false,
        }
    }

    #[test]
    fn a_new_ticket_gets_first_response_and_resolution_clocks() {
        let r = reconcile(
            &ticket(),
            Some(&policy()),
            at(9, 0),
            &[Duration::minutes(30)],
        );
        assert_eq!(r.first_response_due, Some(at(10, 0)));
        assert_eq!(r.resolution_due, Some(at(17, 0)));
        assert_eq!(r.next_response_due, None);
        assert!(!r.overdue);
        // The warning 30 minutes before the first response is due.
        assert_eq!(r.next_check, Some(at(9, 30)));
        let later = reconcile(&ticket(), Some(&policy()), at(10, 0), &[]);
        assert!(later.overdue);
        assert_eq!(later.next_check, Some(at(17, 0)));
    }

    #[test]
    fn the_first_answer_stops_the_first_clock_and_a_customer_starts_the_next() {
        let mut t = ticket();
        let r = reconcile(&t, Some(&policy()), at(9, 0), &[]);
        t.first_response_due = r.first_response_due;
        t.resolution_due = r.resolution_due;
        t.first_response_at = Some(at(9, 20));
        t.customer_waiting_since = None;
        t.status = Status::Open;
        let r = reconcile(&t, Some(&policy()), at(11, 0), &[]);
        assert_eq!(r.next_response_due, None);
        assert!(!r.overdue, "the answer came in time");
        assert_eq!(r.next_check, Some(at(17, 0)));
        // The customer writes at 12:00: the next answer is due at 14:00.
        t.customer_waiting_since = Some(at(12, 0));
        let r = reconcile(&t, Some(&policy()), at(12, 0), &[]);
        assert_eq!(r.next_response_due, Some(at(14, 0)));
        t.next_response_due = r.next_response_due;
        assert!(reconcile(&t, Some(&policy()), at(14, 1), &[]).overdue);
        // The agent answers: the clock stops.
        t.customer_waiting_since = None;
        t.next_response_due = None;
        let r = reconcile(&t, Some(&policy()), at(14, 5), &[]);
        assert_eq!(r.next_response_due, None);
        assert!(!r.overdue);
    }

    #[test]
    fn pending_pauses_the_clocks_and_the_customer_resumes_them() {
        let mut t = ticket();
        let r = reconcile(&t, Some(&policy()), at(9, 0), &[]);
        t.first_response_due = r.first_response_due;
        t.resolution_due = r.resolution_due;
        // Pending at 9:40 (20 minutes of the first response left).
        t.status = Status::Pending;
        let r = reconcile(&t, Some(&policy()), at(9, 40), &[]);
        assert_eq!(r.paused_at, Some(at(9, 40)));
        assert!(!r.overdue);
        assert_eq!(r.next_check, None, "nothing happens while it waits");
        // Long past the old due time, nothing is overdue.
        t.paused_at = r.paused_at;
        assert!(!reconcile(&t, Some(&policy()), at(12, 0), &[]).overdue);
        // The customer writes at 13:00: open again, 20 minutes left.
        t.status = Status::Open;
        let r = reconcile(&t, Some(&policy()), at(13, 0), &[]);
        assert_eq!(r.paused_at, None);
        assert_eq!(r.first_response_due, Some(at(13, 20)));
        // Resolution had 7h20m left.
        assert_eq!(r.resolution_due, Some(at(20, 20)));
        assert_eq!(r.next_check, Some(at(13, 20)));
    }

    #[test]
    fn pauses_count_from_the_recorded_status_changes_not_from_the_scheduler() {
        let mut t = ticket();
        t.first_response_due = Some(at(10, 0));
        t.resolution_due = Some(at(17, 0));
        // Pending at 9:40 and open again at 11:00, both recorded; the
        // scheduler only gets to it at 12:00 (it was down).
        t.paused_at = Some(at(9, 40));
        t.resumed_at = Some(at(11, 0));
        t.status = Status::Open;
        let r = reconcile(&t, Some(&policy()), at(12, 0), &[]);
        assert_eq!(r.first_response_due, Some(at(11, 20)));
        assert!(r.overdue, "late since 11:20");
        assert_eq!(r.resolution_due, Some(at(18, 20)));
    }

    #[test]
    fn resolving_stops_the_resolution_clock_and_reopening_resumes_it() {
        let mut t = ticket();
        t.first_response_at = Some(at(9, 10));
        t.customer_waiting_since = None;
        t.resolution_due = Some(at(17, 0));
        t.status = Status::Resolved;
        let r = reconcile(&t, Some(&policy()), at(16, 0), &[]);
        assert_eq!(r.paused_at, Some(at(16, 0)));
        t.paused_at = r.paused_at;
        // Still not overdue a day later.
        assert!(!reconcile(&t, Some(&policy()), at(23, 0), &[]).overdue);
        t.status = Status::Open;
        t.customer_waiting_since = Some(at(23, 0));
        let r = reconcile(&t, Some(&policy()), at(23, 0), &[]);
        assert_eq!(r.resolution_due, Some(at(23, 0) + Duration::hours(1)));
        assert_eq!(r.next_response_due, Some(at(23, 0) + Duration::hours(2)));
    }

    #[test]
    fn a_clock_late_before_the_pause_stays_late() {
        let mut t = ticket();
        t.first_response_due = Some(at(10, 0));
        t.paused_at = Some(at(11, 0));
        t.status = Status::Open;
        let r = reconcile(&t, Some(&policy()), at(15, 0), &[]);
        assert_eq!(r.first_response_due, Some(at(10, 0)));
        assert!(r.overdue);
    }

    #[test]
    fn tickets_without_a_policy_have_no_clocks() {
        let mut t = ticket();
        t.policy = None;
        let r = reconcile(&t, None, at(12, 0), &[]);
        assert_eq!(r.first_response_due, None);
        assert_eq!(r.next_check, None);
        assert!(!r.overdue);
    }

    #[test]
    fn breach_keys_name_the_clock_cycles_read() {
        let mut t = ticket();
        let r = reconcile(&t, Some(&policy()), at(9, 0), &[]);
        assert_eq!(
            breach_keys(&["first_response", "ticket"], &t, &r),
            ["first_response"]
        );
        // No next-response clock runs before the first answer.
        assert_eq!(
            breach_keys(&["next_response", "resolution"], &t, &r),
            ["resolution"]
        );
        t.first_response_at = Some(at(9, 30));
        t.customer_waiting_since = Some(at(10, 0));
        let r = reconcile(&t, Some(&policy()), at(10, 0), &[]);
        assert_eq!(
            breach_keys(&["next_response", "resolution"], &t, &r),
            ["next_response since 2026-11-23T10:00:00Z", "resolution"]
        );
        assert_eq!(breach_keys(&["ticket"], &t, &r), ["ticket"]);
    }

    #[test]
    fn a_negative_lead_looks_again_after_the_due_time() {
        let r = reconcile(
            &ticket(),
            Some(&policy()),
            at(10, 30),
            &[Duration::hours(-2)],
        );
        // First response was due at 10:00: "late by more than 2h" wants 12:00.
        assert_eq!(r.next_check, Some(at(12, 0)));
    }
}
