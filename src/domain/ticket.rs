//! Tickets: status and priority and the transitions a customer message causes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a ticket stands. `Pending` means "waiting on the customer".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
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

/// What a stored message is to its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Mail from a customer (or any outside participant).
    Customer,
    /// A public answer of an agent.
    Reply,
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
            MessageKind::Note => "note",
            MessageKind::AutoReply => "auto_reply",
            MessageKind::Bounce => "bounce",
            MessageKind::Unfiled => "unfiled",
        }
    }

    pub fn parse(s: &str) -> Option<MessageKind> {
        [
            MessageKind::Customer,
            MessageKind::Reply,
            MessageKind::Note,
            MessageKind::AutoReply,
            MessageKind::Bounce,
            MessageKind::Unfiled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn message_kinds_round_trip() {
        for kind in [
            MessageKind::Customer,
            MessageKind::Bounce,
            MessageKind::Unfiled,
        ] {
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MessageKind::parse("nope"), None);
    }
}
