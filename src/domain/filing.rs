//! Filing an inbound message: the request ingest builds, and every decision
//! the filing makes, as pure functions of facts the store read in the
//! filing transaction. The store runs "gather facts → decide (here) →
//! execute"; threading itself is [`threading::place`](super::threading::place).

use super::automation::{RuleEffects, RuleHook};
use super::change::{Cause, ChangeRequest, TicketChange};
use super::outgoing::OutgoingMail;
use super::sender_auth::SenderAuth;
use super::threading::{JoinRule, LinkReason, Placement};
use super::ticket::{EventKind, NewEvent};
use chrono::{DateTime, Duration, Utc};

/// How many of a message's references are looked up; long mailing-list
/// chains are searched from their newest end.
pub const MAX_REFERENCES: usize = 64;

/// The tag a ticket gets when mail of it could not be delivered.
pub const DELIVERY_FAILED_TAG: &str = "delivery-failed";

/// A parsed message, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Normalized id (no brackets); synthetic when the message had none.
    pub message_id: String,
    pub has_message_id: bool,
    /// Normalized address of the author (From, else the envelope sender).
    pub sender: String,
    pub from_name: Option<String>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub subject: String,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// What is wrong with the message, if anything; it is stored regardless.
    pub problems: Vec<String>,
    pub remote_addr: Option<String>,
    /// Every Message-ID this message refers to, most relevant first
    /// (In-Reply-To, then References from the newest).
    pub references: Vec<String>,
    /// Addresses on the message other than our own (From, Reply-To, To, Cc).
    pub participants: Vec<String>,
    /// SPF, DKIM and DMARC as checked at arrival (None: not checked).
    pub auth: Option<SenderAuth>,
    pub raw: Vec<u8>,
}

impl NewMessage {
    /// `Name <address>`, or the address.
    pub fn display_sender(&self) -> String {
        match &self.from_name {
            Some(name) if !name.is_empty() => format!("{name} <{}>", self.sender),
            _ => self.sender.clone(),
        }
    }

    /// The ids the threading lookup tries, most relevant first: the
    /// references, then the message's own id (a ticket's message named this
    /// one: its reply arrived first). The own id only when no stored
    /// message carries it already (`own_id_is_taken`): a Message-ID is its
    /// author's, and mail from someone else reusing a ticket's message id
    /// must not enter that ticket by it.
    pub fn lookup_ids(&self, own_id_is_taken: bool) -> Vec<&String> {
        let mut ids: Vec<&String> = self.references.iter().take(MAX_REFERENCES).collect();
        if self.has_message_id && !own_id_is_taken {
            ids.push(&self.message_id);
        }
        ids
    }
}

#[derive(Debug, Clone)]
pub enum InboundKind {
    /// Mail from a customer or other outside participant.
    Customer,
    /// A delivery status report naming these Message-IDs as bounced, and
    /// the recipients it reports as failed ("address: status (diagnostic)").
    Bounce {
        bounced: Vec<String>,
        failures: Vec<String>,
    },
    /// Mail carrying one of our own Message-IDs: it may join a ticket, but
    /// never opens one (that would be a loop).
    OwnMail,
}

/// The facts an acknowledgement is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckContext {
    pub ticket: i64,
    /// The template to build it from ("ack.txt" unless a rule chose one).
    pub template: String,
    pub queue_name: String,
    pub queue_address: String,
}

/// Builds the acknowledgement once the ticket number is known.
pub type BuildAck =
    Box<dyn Fn(&AckContext) -> std::result::Result<OutgoingMail, String> + Send + Sync>;

pub struct AutoReplyPlan {
    /// Where the acknowledgement would go.
    pub to: String,
    /// The queue it answers for (from the queue cache: no lookup inside
    /// the filing transaction).
    pub queue_name: String,
    pub queue_address: String,
    pub caps: AckCaps,
    pub build: BuildAck,
}

pub struct InboundRequest {
    pub message: NewMessage,
    pub kind: InboundKind,
    /// Queue of a new ticket.
    pub queue_id: i64,
    /// Tickets named by plus-address recipients, in RCPT order.
    pub plus_tickets: Vec<i64>,
    /// Tickets named by `[#n]` subject tags.
    pub subject_tags: Vec<i64>,
    pub title: String,
    pub customer_address: String,
    pub customer_name: Option<String>,
    /// "Now" for the reopen window: the arrival time (or, on import, the
    /// message's own date).
    pub now: DateTime<Utc>,
    pub reopen_window: Duration,
    /// An acknowledgement to send if this opens a new ticket.
    pub auto_reply: Option<AutoReplyPlan>,
    /// Why ingest planned none though it would have (authentication):
    /// written to the history of a ticket the message opens.
    pub auto_reply_withheld: Option<String>,
    /// Who files it, for the event log ("smtp", "import").
    pub actor: String,
    /// The rules to run on a customer's message (None: no rules).
    pub rules: Option<RuleHook>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// The same message (Message-ID and sender) was stored before.
    Duplicate { message: i64, ticket: Option<i64> },
    Filed {
        message: i64,
        ticket: i64,
        created: bool,
        reopened: bool,
        linked: Option<i64>,
        /// The queued acknowledgement, or why none was sent.
        auto_reply: Result<i64, String>,
    },
    /// Stored but in no ticket (an unmatched bounce, our own mail looping).
    Unfiled { message: i64, reason: String },
}

impl FileOutcome {
    pub fn ticket(&self) -> Option<i64> {
        match self {
            FileOutcome::Duplicate { ticket, .. } => *ticket,
            FileOutcome::Filed { ticket, .. } => Some(*ticket),
            FileOutcome::Unfiled { .. } => None,
        }
    }
}

/// Where a delivery report goes: the ticket of the message it bounces,
/// with a change that records it (and tags the ticket when it reports a
/// failure); or nowhere (stored unfiled, with the reason).
pub fn place_bounce(
    request: &InboundRequest,
    failures: &[String],
    bounced_ticket: Option<i64>,
) -> Result<(i64, ChangeRequest), String> {
    let Some(ticket) = bounced_ticket else {
        return Err("delivery report for a message postdesk does not know".to_string());
    };
    let m = &request.message;
    let mut detail = format!(
        "delivery status report from {} (message {})",
        m.display_sender(),
        m.message_id
    );
    let mut change = TicketChange::default();
    if !failures.is_empty() {
        detail.push_str(&format!(": delivery failed for {}", failures.join("; ")));
        change.add_tags.push(DELIVERY_FAILED_TAG.to_string());
    }
    Ok((
        ticket,
        ChangeRequest {
            change,
            cause: Cause::DeliveryReport { detail },
            actor: request.actor.clone(),
            agent: None,
            at: m.received_at,
        },
    ))
}

/// Why a message that would open a ticket is stored in none.
pub fn refuses_new_ticket(kind: &InboundKind) -> Option<String> {
    matches!(kind, InboundKind::OwnMail)
        .then(|| "postdesk's own mail does not open tickets".to_string())
}

/// The change a message makes to the ticket it joins.
/// `colleague`: the sender is one of postdesk's agents (a colleague in Cc
/// answering from their own mailbox): the message joins, but no customer
/// waits for it, so the next-response clock does not start.
pub fn join_change(
    request: &InboundRequest,
    placement: &Placement,
    colleague: bool,
) -> Option<ChangeRequest> {
    let Placement::Join { rule, reopen, .. } = placement else {
        return None;
    };
    Some(ChangeRequest {
        change: TicketChange::default(),
        cause: Cause::CustomerWrote {
            rule: *rule,
            reopen: *reopen,
            // A customer writing starts the next-response clock (unless it
            // runs already); our own mail coming back does not.
            waits: matches!(request.kind, InboundKind::Customer) && !colleague,
        },
        actor: request.actor.clone(),
        agent: None,
        at: request.message.received_at,
    })
}

/// A message that joined by the ticket's plus-address from an address not
/// yet taking part: marked in the history, so agents see who entered.
pub fn stranger_join_event(
    request: &InboundRequest,
    placement: &Placement,
    sender_took_part: bool,
) -> Option<NewEvent> {
    let Placement::Join {
        ticket,
        rule: JoinRule::PlusAddress,
        ..
    } = placement
    else {
        return None;
    };
    if sender_took_part || !matches!(request.kind, InboundKind::Customer) {
        return None;
    }
    Some(NewEvent {
        ticket: *ticket,
        at: request.now,
        actor: request.actor.clone(),
        kind: EventKind::Joined,
        detail: format!(
            "joined by plus-address from a new participant: {}",
            request.message.sender
        ),
    })
}

/// The history of a ticket a message opens (and of the ticket it is
/// linked to).
pub fn opening_events(
    request: &InboundRequest,
    number: i64,
    linked: Option<(i64, LinkReason)>,
) -> Vec<NewEvent> {
    let event = |ticket: i64, kind: EventKind, detail: String| NewEvent {
        ticket,
        at: request.now,
        actor: request.actor.clone(),
        kind,
        detail,
    };
    let mut events = vec![event(
        number,
        EventKind::Created,
        format!(
            "ticket opened by mail from {}",
            request.message.display_sender()
        ),
    )];
    if let Some((other, reason)) = linked {
        events.push(event(
            number,
            EventKind::Linked,
            format!("linked to #{other}: {}", reason.as_str()),
        ));
        events.push(event(
            other,
            EventKind::Linked,
            format!(
                "follow-up #{number} opened: {}",
                match reason {
                    LinkReason::StrangerQuotedTag => "a non-participant quoted this ticket's tag",
                    LinkReason::ReopenWindowPassed => "the customer wrote after the reopen window",
                }
            ),
        ));
    }
    events
}

/// What the rules decided, as a change: the owner's address resolved by
/// the store (`owner`: the agent's id, None when no such agent). Returns
/// None when the rules change nothing and say nothing.
pub fn rules_change(
    effects: &RuleEffects,
    owner: Option<Option<i64>>,
    at: DateTime<Utc>,
) -> Option<ChangeRequest> {
    let mut lines = Vec::new();
    if let (Some(email), Some(None)) = (&effects.owner, owner) {
        lines.push(format!("owner {email} not set: no such agent"));
    }
    lines.extend(effects.events.iter().cloned());
    let change = TicketChange {
        priority: effects.priority,
        status: effects.status,
        queue: effects.queue.as_ref().map(|q| q.name.clone()),
        owner: owner.flatten().map(Some),
        add_tags: effects.add_tags.clone(),
        remove_tags: effects.remove_tags.clone(),
        sla: effects.sla.clone(),
        ..TicketChange::default()
    };
    (!change.is_empty() || !lines.is_empty()).then(|| ChangeRequest {
        change,
        cause: Cause::Rules { lines },
        actor: "rules".to_string(),
        agent: None,
        at,
    })
}

/// Whether a new ticket is acknowledged, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledgement {
    /// Build it from this template, for this queue.
    Send(AckContext),
    /// None is sent, for this reason; `recorded`: the ticket's history says
    /// so (a rate limit an agent should know of).
    Skip { reason: String, recorded: bool },
}

/// Decides the acknowledgement of a message filed in `ticket` (before
/// the hourly caps, [`ack_cap`], which the store counts only for an
/// acknowledgement that would go out).
pub fn acknowledgement(
    ticket: i64,
    created: bool,
    request: &InboundRequest,
    effects: Option<&RuleEffects>,
) -> Acknowledgement {
    let skip = |reason: &str| Acknowledgement::Skip {
        reason: reason.to_string(),
        recorded: false,
    };
    let template = match effects.and_then(|e| e.auto_reply.clone()) {
        Some(choice) => choice,
        None => Some("ack.txt".to_string()),
    };
    let plan = match (created, &request.auto_reply, &request.auto_reply_withheld) {
        (false, _, _) => return skip("not a new ticket"),
        // Agents should see why a new customer heard nothing.
        (true, None, Some(reason)) => {
            return Acknowledgement::Skip {
                reason: format!("no acknowledgement: {reason}"),
                recorded: true,
            };
        }
        (true, None, None) => return skip("auto-reply not requested"),
        (true, Some(plan), _) => plan,
    };
    let Some(template) = template else {
        return skip("a rule turned the acknowledgement off");
    };
    let (queue_name, queue_address) = match effects.and_then(|e| e.queue.as_ref()) {
        Some(queue) => (queue.name.clone(), queue.address.clone()),
        None => (plan.queue_name.clone(), plan.queue_address.clone()),
    };
    Acknowledgement::Send(AckContext {
        ticket,
        template,
        queue_name,
        queue_address,
    })
}

/// The hourly limits on acknowledgements, shared by all nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckCaps {
    /// To one address: a loop with another auto-responder, or a forger
    /// aiming acknowledgements at one victim, stops here.
    pub per_recipient: u32,
    /// Altogether: many forged senders cannot make postdesk a mail cannon.
    pub global: u32,
}

/// Why an acknowledgement to `to` is not sent, given how many went to
/// `to` and altogether in the last hour (counted under a lock, so that
/// several nodes together keep the limits); None: it may go.
pub fn ack_cap(to: &str, to_recent: i64, all_recent: i64, caps: AckCaps) -> Option<String> {
    if to_recent >= i64::from(caps.per_recipient) {
        Some(format!(
            "rate limit: {to_recent} automatic answers to {to} in the last hour"
        ))
    } else if all_recent >= i64::from(caps.global) {
        Some(format!(
            "global rate limit: {all_recent} acknowledgements in the last hour"
        ))
    } else {
        None
    }
}

/// An event postdesk itself records (acknowledgements).
pub fn postdesk_event(ticket: i64, at: DateTime<Utc>, kind: EventKind, detail: String) -> NewEvent {
    NewEvent {
        ticket,
        at,
        actor: "postdesk".to_string(),
        kind,
        detail,
    }
}

/// The Message-IDs that lead to the ticket from now on: the message's
/// own, its references (a reference already known for another ticket
/// keeps leading there; this ticket learns it too), and its
/// acknowledgement's.
pub fn thread_ids(message: &NewMessage, acknowledgement: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(2 + message.references.len());
    ids.push(message.message_id.clone());
    ids.extend(message.references.iter().take(MAX_REFERENCES).cloned());
    ids.extend(acknowledgement.map(str::to_string));
    ids.dedup();
    ids
}

/// The ticket's participants after this message: everyone on it, and its
/// customer.
pub fn participants<'a>(message: &'a NewMessage, customer: &'a String) -> Vec<&'a String> {
    let mut participants: Vec<&String> = message.participants.iter().collect();
    if !participants.contains(&customer) {
        participants.push(customer);
    }
    participants
}

/// The event of a message stored with problems.
pub fn flagged_event(request: &InboundRequest, ticket: i64) -> Option<NewEvent> {
    let m = &request.message;
    (!m.problems.is_empty()).then(|| NewEvent {
        ticket,
        at: m.received_at,
        actor: request.actor.clone(),
        kind: EventKind::Flagged,
        detail: format!(
            "message {} stored as received, flagged: {}",
            m.message_id,
            m.problems.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_stop_at_either_cap() {
        let caps = AckCaps {
            per_recipient: 3,
            global: 10,
        };
        assert_eq!(ack_cap("a@x.test", 2, 9, caps), None);
        assert!(ack_cap("a@x.test", 3, 0, caps).is_some_and(|r| r.contains("to a@x.test")));
        assert!(ack_cap("a@x.test", 0, 10, caps).is_some_and(|r| r.starts_with("global")));
        let none = AckCaps {
            per_recipient: 0,
            global: 0,
        };
        assert!(ack_cap("a@x.test", 0, 0, none).is_some());
    }
}
