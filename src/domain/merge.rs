//! Merging a ticket into another and splitting a customer's later mail
//! off into a new ticket (`#merge 42`, `#split`, `postdesk ticket merge`
//! and `ticket split`): whether it may be done, and what moves.
//!
//! A merge moves the ticket's messages, participants, tags, history and
//! time into the other ticket, whose clocks (SLA deadlines, first
//! response, the customer's wait) stay as they are: it was there first, or
//! was chosen to go on. The merged ticket stays as an empty shell, closed
//! and pointing at the other ("merged into #42"), so mail that still names
//! it (its `[#n]` tag, its plus-address) is led on. Mail is only ever
//! moved, never copied or dropped.
//!
//! A split takes a customer message that started another matter and the
//! same sender's later messages into a new ticket, linked to the old one.
//!
//! The store reads the facts, asks here, then executes; the columns of
//! both tickets change through the one ticket change
//! ([`super::change::plan_change`]).

use super::address;
use super::permission::{self, Actor, Denied};
use super::ticket::{Disposition, MessageKind, Status};
use chrono::{DateTime, Duration, Utc};

/// What a merge or split reads of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTicket {
    pub number: i64,
    pub queue: String,
    pub status: Status,
    /// When it was last resolved or closed, if it is done.
    pub done_at: Option<DateTime<Utc>>,
    /// The ticket it was merged into, if it was.
    pub merged_into: Option<i64>,
    pub disposition: Option<Disposition>,
}

/// Why a merge cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("ticket #{0} cannot be merged into itself")]
    IntoItself(i64),
    #[error("there is no ticket #{0} to merge into")]
    NoSuchTicket(i64),
    #[error("ticket #{number} was already merged into #{into}")]
    AlreadyMerged { number: i64, into: i64 },
    #[error("ticket #{number} was itself merged into #{into}: merge into #{into} instead")]
    TargetMerged { number: i64, into: i64 },
    #[error(
        "ticket #{number} was closed longer ago than the reopen window: replies to it open new tickets, so mail merged into it would be lost from view"
    )]
    TargetExpired { number: i64 },
    #[error("ticket #{number} is in {folder}: restore it first, or merge the other way round")]
    TargetDisposed { number: i64, folder: &'static str },
    #[error("{0}")]
    Denied(Denied),
}

fn folder(disposition: Disposition) -> &'static str {
    match disposition {
        Disposition::Spam => "Junk",
        Disposition::Trash => "Trash",
    }
}

/// What a merge does besides moving the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeDecision {
    /// The target is done while the merged ticket is still being worked
    /// on: it opens again, so the work that moves into it is not hidden
    /// in Closed. Its clocks stay its own.
    pub reopen_target: bool,
}

/// May `source` be merged into ticket `into` (`target`: None when there is
/// no such ticket), by `actor` (None: the server's administrator)?
///
/// The checks run in an order that tells an agent nothing about a ticket
/// outside their queues: after "not in your queues", nothing about its
/// state is said.
pub fn check_merge(
    actor: Option<&Actor>,
    source: &MergeTicket,
    into: i64,
    target: Option<&MergeTicket>,
    now: DateTime<Utc>,
    reopen_window: Duration,
) -> Result<MergeDecision, MergeError> {
    if source.number == into {
        return Err(MergeError::IntoItself(into));
    }
    if let Some(actor) = actor {
        permission::may_act_on_ticket(actor, source.number, &source.queue)
            .map_err(MergeError::Denied)?;
    }
    let target = target.ok_or(MergeError::NoSuchTicket(into))?;
    if let Some(actor) = actor {
        permission::may_act_on_ticket(actor, target.number, &target.queue)
            .map_err(MergeError::Denied)?;
    }
    if let Some(merged) = source.merged_into {
        return Err(MergeError::AlreadyMerged {
            number: source.number,
            into: merged,
        });
    }
    if let Some(merged) = target.merged_into {
        return Err(MergeError::TargetMerged {
            number: target.number,
            into: merged,
        });
    }
    if let Some(disposition) = target.disposition {
        return Err(MergeError::TargetDisposed {
            number: target.number,
            folder: folder(disposition),
        });
    }
    if target.status.is_done() {
        // Done without a recorded time: treated as just done, as threading
        // does (domain::threading::place).
        let done_at = target.done_at.unwrap_or(now);
        if now - done_at > reopen_window {
            return Err(MergeError::TargetExpired {
                number: target.number,
            });
        }
    }
    Ok(MergeDecision {
        reopen_target: target.status.is_done() && !source.status.is_done(),
    })
}

/// What moved in a merge, for the history of both tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub messages: usize,
    /// Participants the target did not have yet.
    pub participants: usize,
    /// Lines of the merged ticket's history.
    pub events: usize,
    /// Time entries (`#time`).
    pub time_entries: usize,
}

impl Moved {
    /// "3 messages, 1 new participant, 5 history lines, 1 time entry".
    pub fn phrase(&self) -> String {
        let count = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let mut parts = vec![count(self.messages, "message", "messages")];
        if self.participants > 0 {
            parts.push(count(
                self.participants,
                "new participant",
                "new participants",
            ));
        }
        if self.events > 0 {
            parts.push(count(self.events, "history line", "history lines"));
        }
        if self.time_entries > 0 {
            parts.push(count(self.time_entries, "time entry", "time entries"));
        }
        parts.join(", ")
    }
}

/// One of a ticket's messages, as a split reads it (in the order they
/// were stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailItem {
    /// The message's row id.
    pub id: i64,
    pub kind: MessageKind,
    pub sender: String,
}

/// Why a split cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("message {message} is not in ticket #{ticket}")]
    NotInTicket { message: i64, ticket: i64 },
    #[error(
        "message {0} is not a customer's: reply to the customer's message that starts the other matter"
    )]
    NotFromCustomer(i64),
    #[error(
        "message {message} is the first of ticket #{ticket}: there is nothing before it to keep, so nothing to split off"
    )]
    FirstMessage { message: i64, ticket: i64 },
    #[error("ticket #{number} was merged into #{into}: split #{into} instead")]
    Merged { number: i64, into: i64 },
    #[error("{0}")]
    Denied(Denied),
}

/// What a split moves into the new ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPlan {
    /// The chosen message and its sender's later ones, by ascending id.
    pub messages: Vec<i64>,
    /// The sender: the new ticket's customer.
    pub customer: String,
}

/// Which messages of `ticket` (its mail, in stored order) a split at
/// `chosen` takes: the chosen customer message and the later messages of
/// the same sender. Agents' replies and notes, and other people's mail,
/// stay where they are.
pub fn plan_split(
    actor: Option<&Actor>,
    ticket: &MergeTicket,
    mail: &[MailItem],
    chosen: i64,
) -> Result<SplitPlan, SplitError> {
    if let Some(actor) = actor {
        permission::may_act_on_ticket(actor, ticket.number, &ticket.queue)
            .map_err(SplitError::Denied)?;
    }
    if let Some(into) = ticket.merged_into {
        return Err(SplitError::Merged {
            number: ticket.number,
            into,
        });
    }
    let Some(position) = mail.iter().position(|m| m.id == chosen) else {
        return Err(SplitError::NotInTicket {
            message: chosen,
            ticket: ticket.number,
        });
    };
    let first = &mail[position];
    if first.kind != MessageKind::Customer {
        return Err(SplitError::NotFromCustomer(chosen));
    }
    // What postdesk wrote by itself is not part of the conversation.
    let opened_it = mail
        .iter()
        .find(|m| m.kind != MessageKind::AutoReply)
        .is_some_and(|m| m.id == chosen);
    if opened_it {
        return Err(SplitError::FirstMessage {
            message: chosen,
            ticket: ticket.number,
        });
    }
    let customer = address::normalize(&first.sender);
    let messages = mail[position..]
        .iter()
        .filter(|m| m.kind == MessageKind::Customer && address::normalize(&m.sender) == customer)
        .map(|m| m.id)
        .collect();
    Ok(SplitPlan { messages, customer })
}

/// Follows `merged into` pointers from `number` to the ticket that holds
/// its mail now (`next`: the ticket a ticket was merged into, if it was).
/// A merge is refused into a merged ticket, so a chain grows only when a
/// target is merged on later; it is followed at most `limit` steps (a
/// chain that long, or a loop, cannot come from merges: the last ticket
/// reached is taken).
pub fn follow_merges(number: i64, limit: usize, mut next: impl FnMut(i64) -> Option<i64>) -> i64 {
    let mut current = number;
    for _ in 0..limit {
        match next(current) {
            Some(into) if into != current => current = into,
            _ => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::permission::AgentRole;

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
            + Duration::hours(hour)
    }

    fn ticket(number: i64, queue: &str, status: Status) -> MergeTicket {
        MergeTicket {
            number,
            queue: queue.into(),
            status,
            done_at: status.is_done().then(|| at(0)),
            merged_into: None,
            disposition: None,
        }
    }

    fn agent(queues: &[&str]) -> Actor {
        Actor {
            id: 1,
            email: "alice@desk.test".into(),
            role: AgentRole::Agent,
            queues: queues.iter().map(|q| q.to_string()).collect(),
        }
    }

    const WINDOW: i64 = 30;

    fn check(
        actor: Option<&Actor>,
        source: &MergeTicket,
        into: i64,
        target: Option<&MergeTicket>,
    ) -> Result<MergeDecision, MergeError> {
        check_merge(actor, source, into, target, at(24), Duration::days(WINDOW))
    }

    #[test]
    fn a_merge_within_the_agents_queues_is_allowed() {
        let alice = agent(&["support", "billing"]);
        let source = ticket(7, "support", Status::Open);
        let target = ticket(42, "billing", Status::Open);
        assert_eq!(
            check(Some(&alice), &source, 42, Some(&target)),
            Ok(MergeDecision {
                reopen_target: false
            })
        );
        // The administrator at the command line is not an agent.
        assert!(check(None, &source, 42, Some(&target)).is_ok());
    }

    #[test]
    fn into_itself_or_a_missing_ticket_is_refused() {
        let source = ticket(7, "support", Status::Open);
        assert_eq!(
            check(None, &source, 7, Some(&source)),
            Err(MergeError::IntoItself(7))
        );
        assert_eq!(
            check(None, &source, 99, None),
            Err(MergeError::NoSuchTicket(99))
        );
        assert_eq!(
            MergeError::IntoItself(7).to_string(),
            "ticket #7 cannot be merged into itself"
        );
    }

    #[test]
    fn across_a_queue_the_agent_does_not_work_in_is_refused_without_telling_more() {
        let alice = agent(&["support"]);
        let source = ticket(7, "support", Status::Open);
        let mut elsewhere = ticket(42, "security", Status::Open);
        elsewhere.merged_into = Some(50);
        let refused = check(Some(&alice), &source, 42, Some(&elsewhere));
        assert_eq!(refused, Err(MergeError::Denied(Denied::TicketNotYours(42))));
        assert_eq!(
            refused.err().map(|e| e.to_string()).unwrap_or_default(),
            "ticket #42 is not in your queues"
        );
        // Nor may a ticket of another queue be merged into one of hers.
        let theirs = ticket(8, "security", Status::Open);
        let mine = ticket(42, "support", Status::Open);
        assert_eq!(
            check(Some(&alice), &theirs, 42, Some(&mine)),
            Err(MergeError::Denied(Denied::TicketNotYours(8)))
        );
    }

    #[test]
    fn merged_tickets_are_neither_merged_again_nor_merged_into() {
        let mut source = ticket(7, "support", Status::Closed);
        source.merged_into = Some(40);
        let target = ticket(42, "support", Status::Open);
        assert_eq!(
            check(None, &source, 42, Some(&target)),
            Err(MergeError::AlreadyMerged {
                number: 7,
                into: 40
            })
        );
        let source = ticket(7, "support", Status::Open);
        let mut merged = ticket(42, "support", Status::Closed);
        merged.merged_into = Some(43);
        let refused = check(None, &source, 42, Some(&merged));
        assert_eq!(
            refused,
            Err(MergeError::TargetMerged {
                number: 42,
                into: 43
            })
        );
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("merge into #43 instead"))
        );
    }

    #[test]
    fn a_target_closed_beyond_the_window_or_in_trash_is_refused() {
        let source = ticket(7, "support", Status::Open);
        let mut old = ticket(42, "support", Status::Closed);
        old.done_at = Some(at(24) - Duration::days(WINDOW + 1));
        assert_eq!(
            check(None, &source, 42, Some(&old)),
            Err(MergeError::TargetExpired { number: 42 })
        );
        let mut trash = ticket(42, "support", Status::Open);
        trash.disposition = Some(Disposition::Trash);
        let refused = check(None, &source, 42, Some(&trash));
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("is in Trash: restore it first"))
        );
    }

    #[test]
    fn a_done_target_reopens_for_open_work_only() {
        let recent = ticket(42, "support", Status::Resolved);
        assert_eq!(
            check(None, &ticket(7, "support", Status::Open), 42, Some(&recent)),
            Ok(MergeDecision {
                reopen_target: true
            })
        );
        assert_eq!(
            check(
                None,
                &ticket(7, "support", Status::Closed),
                42,
                Some(&recent)
            ),
            Ok(MergeDecision {
                reopen_target: false
            })
        );
    }

    fn mail() -> Vec<MailItem> {
        let item = |id, kind, sender: &str| MailItem {
            id,
            kind,
            sender: sender.into(),
        };
        vec![
            item(1, MessageKind::Customer, "carol@example.com"),
            item(2, MessageKind::AutoReply, "support@desk.test"),
            item(3, MessageKind::Reply, "support@desk.test"),
            item(4, MessageKind::Customer, "Carol@Example.com"),
            item(5, MessageKind::Customer, "dave@example.com"),
            item(6, MessageKind::Note, "alice@desk.test"),
            item(7, MessageKind::Customer, "carol@example.com"),
        ]
    }

    #[test]
    fn a_split_takes_the_message_and_its_senders_later_ones() {
        let source = ticket(9, "support", Status::Open);
        let plan = plan_split(Some(&agent(&["support"])), &source, &mail(), 4);
        assert_eq!(
            plan,
            Ok(SplitPlan {
                messages: vec![4, 7],
                customer: "carol@example.com".into()
            })
        );
        let dave = plan_split(None, &source, &mail(), 5);
        assert_eq!(dave.map(|p| p.messages), Ok(vec![5]));
    }

    #[test]
    fn a_split_needs_a_later_customer_message_of_the_ticket() {
        let source = ticket(9, "support", Status::Open);
        assert_eq!(
            plan_split(None, &source, &mail(), 1),
            Err(SplitError::FirstMessage {
                message: 1,
                ticket: 9
            })
        );
        assert_eq!(
            plan_split(None, &source, &mail(), 3),
            Err(SplitError::NotFromCustomer(3))
        );
        assert_eq!(
            plan_split(None, &source, &mail(), 70),
            Err(SplitError::NotInTicket {
                message: 70,
                ticket: 9
            })
        );
        assert_eq!(
            plan_split(Some(&agent(&["billing"])), &source, &mail(), 4),
            Err(SplitError::Denied(Denied::TicketNotYours(9)))
        );
        let mut merged = source.clone();
        merged.merged_into = Some(12);
        assert_eq!(
            plan_split(None, &merged, &mail(), 4),
            Err(SplitError::Merged {
                number: 9,
                into: 12
            })
        );
    }

    #[test]
    fn merges_are_followed_to_the_ticket_holding_the_mail() {
        let next = |n: i64| match n {
            1 => Some(2),
            2 => Some(3),
            _ => None,
        };
        assert_eq!(follow_merges(1, 8, next), 3);
        assert_eq!(follow_merges(3, 8, next), 3);
        assert_eq!(follow_merges(1, 1, next), 2);
        // A loop cannot come from merges; it ends anyway.
        let looping = |n: i64| Some(if n == 1 { 2 } else { 1 });
        let end = follow_merges(1, 5, looping);
        assert!(end == 1 || end == 2);
    }

    #[test]
    fn what_moved_is_phrased_for_the_history() {
        let moved = Moved {
            messages: 3,
            participants: 1,
            events: 5,
            time_entries: 0,
        };
        assert_eq!(
            moved.phrase(),
            "3 messages, 1 new participant, 5 history lines"
        );
        assert_eq!(
            Moved {
                messages: 1,
                ..Moved::default()
            }
            .phrase(),
            "1 message"
        );
    }
}
