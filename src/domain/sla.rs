//! What the SLA engine (rules/) hands the store to execute: the clocks a
//! ticket starts with, clocks brought up to date, and escalations to fire.
//! Plain data, so that the store never needs to know the rules engine.

use super::change::TicketChange;
use super::outgoing::OutgoingMail;
use chrono::{DateTime, Utc};

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
