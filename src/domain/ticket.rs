//! Tickets: status, priority, Junk/Trash standing, message and event
//! kinds, and the transitions a customer message causes. Every one is an
//! enum from the store to the protocols; the text forms are for columns,
//! the CLI and IMAP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a ticket stands. `Pending` means "waiting on the customer".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    New,
    Open,
    Pending,
    Resolved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::Open,
        Status::Pending,
        Status::Resolved,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Resolved and closed tickets are "done": a customer writing again
    /// reopens them (inside the reopen window) or opens a linked ticket.
    pub fn is_done(self) -> bool {
        matches!(self, Status::Resolved | Status::Closed)
    }

    /// While a ticket waits on the customer or is done, its SLA clocks
    /// stand still.
    pub fn pauses_clocks(self) -> bool {
        matches!(self, Status::Pending | Status::Resolved | Status::Closed)
    }

    /// The status a ticket takes when its customer writes again (and the
    /// ticket is not done, or is reopened).
    pub fn after_customer_message(self) -> Status {
        match self {
            Status::New => Status::New,
            Status::Open | Status::Pending | Status::Resolved | Status::Closed => Status::Open,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} '{value}' (expected one of: {expected})")]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Status {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseEnumError {
                kind: "status",
                value: s.to_string(),
                expected: "new, open, pending, resolved, closed",
            })
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseEnumError {
                kind: "priority",
                value: s.to_string(),
                expected: "low, normal, high, urgent",
            })
    }
}

/// A queue's name as customers read it: "support" → "Support".
pub fn queue_display_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The name postdesk's own mail to customers comes from: "Billing support"
/// for the billing queue, but "Support" (not "Support support") for a
/// queue whose name says it already.
pub fn queue_team_name(name: &str) -> String {
    let shown = queue_display_name(name);
    if name.to_lowercase().contains("support") {
        shown
    } else {
        format!("{shown} support")
    }
}

/// What a stored message is to its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Mail from a customer (or any outside participant).
    Customer,
    /// A public answer of an agent.
    Reply,
    /// An agent's mail about the ticket to someone who is not its customer
    /// nor takes part in it (a consult): sent, but it answers nobody.
    Forward,
    /// An internal note, never sent to the customer.
    Note,
    /// Mail postdesk wrote by itself (acknowledgements, notices).
    AutoReply,
    /// A delivery status report about mail of this ticket.
    Bounce,
    /// Inbound mail kept but not filed into any ticket (an unmatched
    /// bounce, a loop of our own mail): stored, never dropped.
    Unfiled,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Customer => "customer",
            MessageKind::Reply => "reply",
            MessageKind::Forward => "forward",
            MessageKind::Note => "note",
            MessageKind::AutoReply => "auto_reply",
            MessageKind::Bounce => "bounce",
            MessageKind::Unfiled => "unfiled",
        }
    }

    pub const ALL: [MessageKind; 7] = [
        MessageKind::Customer,
        MessageKind::Reply,
        MessageKind::Forward,
        MessageKind::Note,
        MessageKind::AutoReply,
        MessageKind::Bounce,
        MessageKind::Unfiled,
    ];

    pub fn parse(s: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageKind {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageKind::parse(s).ok_or_else(|| ParseEnumError {
            kind: "message kind",
            value: s.to_string(),
            expected: "customer, reply, forward, note, auto_reply, bounce, unfiled",
        })
    }
}

/// `kind == "customer"` reads as the column does.
impl PartialEq<&str> for MessageKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Junk and Trash: kept beside the status so that restoring a ticket gives
/// back the status it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    Spam,
    Trash,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Spam => "spam",
            Disposition::Trash => "trash",
        }
    }
}

impl FromStr for Disposition {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Disposition::Spam, Disposition::Trash]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "disposition",
                value: s.to_string(),
                expected: "spam, trash",
            })
    }
}

/// What a line of a ticket's history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The ticket was opened (by mail, or by an agent writing first).
    Created,
    /// It was linked to an older ticket, or a follow-up was linked to it.
    Linked,
    /// A customer's message reopened it.
    Reopened,
    /// A customer's message changed its status.
    Status,
    /// An agent or administrator changed it.
    Changed,
    /// A message was stored with problems.
    Flagged,
    /// A delivery status report about its mail arrived.
    DeliveryReport,
    /// An acknowledgement was queued, suppressed, or could not be built.
    AutoReply,
    AutoReplySuppressed,
    AutoReplyFailed,
    /// rules.toml acted at ingest.
    Applied,
    /// An escalation fired.
    Escalated,
    /// An agent's public reply.
    Reply,
    /// An agent's mail about the ticket to someone outside it (a consult).
    Forwarded,
    /// An agent's internal note.
    Note,
    /// Mail of the ticket was delivered, or given up on.
    Delivered,
    DeliveryFailed,
    /// An administrator retried or cancelled a delivery.
    Outbound,
    /// An agent's mail commands were refused.
    CommandError,
    /// The "possibly related tickets" note.
    SimilarTickets,
    /// Someone not yet taking part wrote to the ticket's plus-address and
    /// joined it: agents see who entered.
    Joined,
    /// An agent's reply was held, or sent with a warning, because the
    /// ticket changed after the message it answers (issue 20).
    Collision,
    /// The ticket was merged into another, or another into it.
    Merged,
    /// A customer's mail was split off into a new ticket (on both).
    Split,
    /// A knowledge-base article went into a reply (`#kb 42`) or came out
    /// of the ticket (`#kb draft`), or its "this solved my problem" link
    /// was followed.
    Knowledge,
}

impl EventKind {
    pub const ALL: [EventKind; 25] = [
        EventKind::Created,
        EventKind::Linked,
        EventKind::Reopened,
        EventKind::Status,
        EventKind::Changed,
        EventKind::Flagged,
        EventKind::DeliveryReport,
        EventKind::AutoReply,
        EventKind::AutoReplySuppressed,
        EventKind::AutoReplyFailed,
        EventKind::Applied,
        EventKind::Escalated,
        EventKind::Reply,
        EventKind::Forwarded,
        EventKind::Note,
        EventKind::Delivered,
        EventKind::DeliveryFailed,
        EventKind::Outbound,
        EventKind::CommandError,
        EventKind::SimilarTickets,
        EventKind::Joined,
        EventKind::Collision,
        EventKind::Merged,
        EventKind::Split,
        EventKind::Knowledge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Linked => "linked",
            EventKind::Reopened => "reopened",
            EventKind::Status => "status",
            EventKind::Changed => "changed",
            EventKind::Flagged => "flagged",
            EventKind::DeliveryReport => "delivery-report",
            EventKind::AutoReply => "auto-reply",
            EventKind::AutoReplySuppressed => "auto-reply-suppressed",
            EventKind::AutoReplyFailed => "auto-reply-failed",
            EventKind::Applied => "applied",
            EventKind::Escalated => "escalated",
            EventKind::Reply => "reply",
            EventKind::Forwarded => "forwarded",
            EventKind::Note => "note",
            EventKind::Delivered => "delivered",
            EventKind::DeliveryFailed => "delivery-failed",
            EventKind::Outbound => "outbound",
            EventKind::CommandError => "command-error",
            EventKind::SimilarTickets => "similar-tickets",
            EventKind::Joined => "joined",
            EventKind::Collision => "collision",
            EventKind::Merged => "merged",
            EventKind::Split => "split",
            EventKind::Knowledge => "knowledge",
        }
    }

    /// Whether an event of this kind may change what the search index
    /// holds of a ticket (status, queue, priority, tags, standing,
    /// customer). The match is exhaustive: a new kind must say.
    pub fn changes_indexed_fields(self) -> bool {
        match self {
            // A ticket's first message is indexed with the state it opened with.
            EventKind::Created
            | EventKind::AutoReply
            | EventKind::AutoReplySuppressed
            | EventKind::AutoReplyFailed
            | EventKind::Delivered
            | EventKind::Flagged
            | EventKind::Note
            | EventKind::Forwarded
            | EventKind::CommandError
            | EventKind::Outbound
            | EventKind::Linked
            | EventKind::SimilarTickets
            | EventKind::Joined
            | EventKind::Collision
            | EventKind::Knowledge => false,
            // A reply sets status and owner; delivery reports and failures
            // may tag the ticket.
            EventKind::Reopened
            | EventKind::Status
            | EventKind::Changed
            | EventKind::DeliveryReport
            | EventKind::Applied
            | EventKind::Escalated
            | EventKind::Reply
            | EventKind::DeliveryFailed => true,
            // Mail moved between tickets: its documents name another
            // ticket now (on both sides).
            EventKind::Merged | EventKind::Split => true,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "event kind",
                value: s.to_string(),
                expected: "created, linked, reopened, status, changed, …",
            })
    }
}

/// `kind == "reopened"` reads as the column does.
impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A line to add to a ticket's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub ticket: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: EventKind,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_mail_comes_from_the_queues_team() {
        assert_eq!(queue_team_name("billing"), "Billing support");
        assert_eq!(queue_team_name("support"), "Support");
        assert_eq!(queue_team_name("it-support"), "It-support");
    }

    #[test]
    fn status_round_trips_and_rejects_unknown() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().ok(), Some(status));
        }
        assert_eq!("OPEN".parse::<Status>().ok(), Some(Status::Open));
        let err = "later".parse::<Status>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown status 'later' (expected one of: new, open, pending, resolved, closed)")
        );
    }

    #[test]
    fn a_customer_writing_moves_pending_and_done_tickets_to_open() {
        assert_eq!(Status::New.after_customer_message(), Status::New);
        assert_eq!(Status::Pending.after_customer_message(), Status::Open);
        assert_eq!(Status::Closed.after_customer_message(), Status::Open);
        assert!(Status::Resolved.is_done() && Status::Closed.is_done());
        assert!(!Status::Pending.is_done());
    }

    #[test]
    fn event_kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().ok(), Some(kind));
        }
        assert!("nope".parse::<EventKind>().is_err());
        assert!(EventKind::Changed == "changed");
    }

    #[test]
    fn message_kinds_round_trip() {
        for kind in MessageKind::ALL {
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MessageKind::parse("nope"), None);
    }
}
