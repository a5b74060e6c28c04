//! The rules engine's input and output at ingest: what the rules read of
//! the ticket a message joins, and what they decided. Defined here so that
//! the store can apply the decision without knowing the engine.

use super::sla::SlaStart;
use super::ticket::{Priority, Status};
use chrono::{DateTime, Utc};

/// What the rules read of a ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketSnapshot {
    pub number: i64,
    pub queue: String,
    pub priority: Priority,
    pub status: Status,
    pub tags: Vec<String>,
    pub customer: String,
    /// The owner's address.
    pub owner: Option<String>,
    pub sla_policy: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub messages: i64,
    /// The customer's answer to the satisfaction survey ("good", "okay",
    /// "bad"), if any.
    pub satisfaction: Option<String>,
    /// The knowledge-base articles the ticket's acknowledgement suggested
    /// (issue 19), by id.
    pub suggested_articles: Vec<i64>,
}

/// A queue the rules named, as found in the queue list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueChoice {
    pub id: i64,
    pub name: String,
    pub address: String,
}

/// What the rules decided for one message; each line of `events` becomes
/// a ticket event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleEffects {
    pub priority: Option<Priority>,
    /// A status a rule set (`status = "resolved"`).
    pub status: Option<Status>,
    pub queue: Option<QueueChoice>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    /// An agent's address.
    pub owner: Option<String>,
    pub sla: Option<SlaStart>,
    /// Some(None): no acknowledgement; Some(Some(t)): from template t.
    pub auto_reply: Option<Option<String>>,
    pub events: Vec<String>,
}

/// Runs the rules once the ticket is known: None for a ticket the message
/// opens, the joined ticket's snapshot otherwise. Pure: the message's
/// variables are bound when the hook is made.
pub type RuleHook = Box<dyn Fn(Option<&TicketSnapshot>) -> RuleEffects + Send + Sync>;
