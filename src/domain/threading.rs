//! Which ticket an inbound message belongs to (DESIGN.md §3).
//!
//! The store gathers the facts (which tickets the message's references,
//! plus-address and subject tag point at); [`place`] decides. Keeping the
//! decision pure makes every rule testable without a database, and keeps
//! the order of the rules in one place.

use super::ticket::Status;
use chrono::{DateTime, Duration, Utc};

/// What the store knows about a ticket a message may belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub number: i64,
    pub status: Status,
    /// When the ticket was last resolved or closed, if it is done.
    pub done_at: Option<DateTime<Utc>>,
    /// The ticket it was merged into: the store follows this to the
    /// ticket holding the mail before asking [`place`].
    pub merged_into: Option<i64>,
}

/// The candidates found for one message, one per rule.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Rule 1: the ticket of a Message-ID named in In-Reply-To/References.
    pub by_reference: Option<TicketFacts>,
    /// Rule 2: the ticket named by a plus-address recipient.
    pub by_plus_address: Option<TicketFacts>,
    /// Rule 3: the ticket of a `[#n]` subject tag, and whether the sender
    /// is one of its participants.
    pub by_subject_tag: Option<(TicketFacts, bool)>,
}

/// Which rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRule {
    Reference,
    PlusAddress,
    SubjectTag,
}

impl JoinRule {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinRule::Reference => "references",
            JoinRule::PlusAddress => "plus-address",
            JoinRule::SubjectTag => "subject tag",
        }
    }
}

/// Why a message opens a new ticket that is linked to an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkReason {
    /// A sender who is not a participant quoted the ticket's tag.
    StrangerQuotedTag,
    /// The ticket was done for longer than the reopen window.
    ReopenWindowPassed,
}

impl LinkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkReason::StrangerQuotedTag => "sender is not a participant of the tagged ticket",
            LinkReason::ReopenWindowPassed => "the ticket was closed longer than the reopen window",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The message joins this ticket; `reopen` when it was done and the
    /// message arrived inside the reopen window.
    Join {
        ticket: i64,
        rule: JoinRule,
        reopen: bool,
    },
    /// The message opens a new ticket, linked to an older one when it
    /// referred to it but could not join it.
    New { linked: Option<(i64, LinkReason)> },
}

/// A ticket one of a message's referenced Message-IDs leads to (threading
/// rule 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceLead {
    pub message_id: String,
    pub ticket: TicketFacts,
    /// The ticket holds the message with this id itself (not only a mail
    /// that named it in its References).
    pub holds: bool,
}

/// The ticket a message's references lead to: the most relevant id (`ids`
/// in order: In-Reply-To first) that leads anywhere. When it leads to
/// several tickets (a later mail named it, and was filed elsewhere), the
/// ticket holding that message wins: after a split, the customer's replies
/// in the new ticket's thread name the old conversation's ids too, and a
/// reply to the old conversation belongs there. A holder done for longer
/// than the reopen window is passed over for the newest ticket (its
/// follow-ups went to a newer, linked one).
pub fn by_reference(
    ids: &[&str],
    leads: &[ReferenceLead],
    now: DateTime<Utc>,
    reopen_window: Duration,
) -> Option<TicketFacts> {
    let expired = |t: &TicketFacts| {
        t.status.is_done() && t.done_at.is_some_and(|done| now - done > reopen_window)
    };
    ids.iter().find_map(|id| {
        let mut found: Vec<&ReferenceLead> = leads.iter().filter(|l| l.message_id == *id).collect();
        found.sort_by_key(|l| {
            (
                std::cmp::Reverse(l.holds && !expired(&l.ticket)),
                std::cmp::Reverse(l.ticket.number),
            )
        });
        found.first().map(|l| l.ticket.clone())
    })
}

/// Applies the rules of DESIGN.md §3 in order.
pub fn place(candidates: &Candidates, now: DateTime<Utc>, reopen_window: Duration) -> Placement {
    let joined = candidates
        .by_reference
        .as_ref()
        .map(|t| (t, JoinRule::Reference))
        .or_else(|| {
            candidates
                .by_plus_address
                .as_ref()
                .map(|t| (t, JoinRule::PlusAddress))
        });
    let joined = match joined {
        Some(found) => Some(found),
        None => match &candidates.by_subject_tag {
            Some((ticket, true)) => Some((ticket, JoinRule::SubjectTag)),
            Some((ticket, false)) => {
                return Placement::New {
                    linked: Some((ticket.number, LinkReason::StrangerQuotedTag)),
                };
            }
            None => None,
        },
    };
    let Some((ticket, rule)) = joined else {
        return Placement::New { linked: None };
    };
    if !ticket.status.is_done() {
        return Placement::Join {
            ticket: ticket.number,
            rule,
            reopen: false,
        };
    }
    // A done ticket without a recorded time is treated as just done: the
    // customer's answer belongs to it.
    let done_at = ticket.done_at.unwrap_or(now);
    if now - done_at <= reopen_window {
        Placement::Join {
            ticket: ticket.number,
            rule,
            reopen: true,
        }
    } else {
        Placement::New {
            linked: Some((ticket.number, LinkReason::ReopenWindowPassed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn open(number: i64) -> TicketFacts {
        TicketFacts {
            number,
            status: Status::Open,
            done_at: None,
            merged_into: None,
        }
    }

    fn closed(number: i64, days_ago: i64) -> TicketFacts {
        TicketFacts {
            number,
            status: Status::Closed,
            done_at: Some(now() - Duration::days(days_ago)),
            merged_into: None,
        }
    }

    const WINDOW: i64 = 30;

    fn decide(c: Candidates) -> Placement {
        place(&c, now(), Duration::days(WINDOW))
    }

    #[test]
    fn nothing_known_opens_a_new_ticket() {
        assert_eq!(
            decide(Candidates::default()),
            Placement::New { linked: None }
        );
    }

    #[test]
    fn references_win_over_every_other_rule() {
        let c = Candidates {
            by_reference: Some(open(1)),
            by_plus_address: Some(open(2)),
            by_subject_tag: Some((open(3), true)),
        };
        assert_eq!(
            decide(c),
            Placement::Join {
                ticket: 1,
                rule: JoinRule::Reference,
                reopen: false
            }
        );
    }

    #[test]
    fn plus_address_joins_when_references_are_missing() {
        let c = Candidates {
            by_plus_address: Some(open(2)),
            by_subject_tag: Some((open(3), true)),
            ..Default::default()
        };
        assert_eq!(
            decide(c),
            Placement::Join {
                ticket: 2,
                rule: JoinRule::PlusAddress,
                reopen: false
            }
        );
    }

    #[test]
    fn a_participant_quoting_the_tag_joins() {
        let c = Candidates {
            by_subject_tag: Some((open(3), true)),
            ..Default::default()
        };
        assert_eq!(
            decide(c),
            Placement::Join {
                ticket: 3,
                rule: JoinRule::SubjectTag,
                reopen: false
            }
        );
    }

    #[test]
    fn a_stranger_quoting_the_tag_opens_a_linked_ticket() {
        let c = Candidates {
            by_subject_tag: Some((open(3), false)),
            ..Default::default()
        };
        assert_eq!(
            decide(c),
            Placement::New {
                linked: Some((3, LinkReason::StrangerQuotedTag))
            }
        );
    }

    #[test]
    fn a_reply_inside_the_window_reopens() {
        for rule_candidates in [
            Candidates {
                by_reference: Some(closed(4, WINDOW - 1)),
                ..Default::default()
            },
            Candidates {
                by_plus_address: Some(closed(4, 1)),
                ..Default::default()
            },
            Candidates {
                by_subject_tag: Some((closed(4, 0), true)),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                decide(rule_candidates),
                Placement::Join {
                    ticket: 4,
                    reopen: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_reply_after_the_window_opens_a_linked_ticket() {
        let c = Candidates {
            by_reference: Some(closed(5, WINDOW + 1)),
            ..Default::default()
        };
        assert_eq!(
            decide(c),
            Placement::New {
                linked: Some((5, LinkReason::ReopenWindowPassed))
            }
        );
    }

    #[test]
    fn the_window_edge_still_reopens() {
        let c = Candidates {
            by_reference: Some(closed(6, WINDOW)),
            ..Default::default()
        };
        assert!(matches!(decide(c), Placement::Join { reopen: true, .. }));
    }

    #[test]
    fn pending_tickets_are_joined_without_reopen() {
        let c = Candidates {
            by_reference: Some(TicketFacts {
                number: 7,
                status: Status::Pending,
                done_at: None,
                merged_into: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            decide(c),
            Placement::Join {
                ticket: 7,
                rule: JoinRule::Reference,
                reopen: false
            }
        );
    }

    fn lead(id: &str, ticket: TicketFacts, holds: bool) -> ReferenceLead {
        ReferenceLead {
            message_id: id.into(),
            ticket,
            holds,
        }
    }

    #[test]
    fn a_reference_leads_to_the_ticket_holding_the_message() {
        let window = Duration::days(WINDOW);
        // r1 is in #1; the split-off #2 holds a mail naming it.
        let leads = [lead("r1", open(1), true), lead("r1", open(2), false)];
        assert_eq!(
            by_reference(&["r1"], &leads, now(), window).map(|t| t.number),
            Some(1)
        );
        // Without a holder, the newest ticket.
        let leads = [lead("x", open(1), false), lead("x", open(2), false)];
        assert_eq!(
            by_reference(&["x"], &leads, now(), window).map(|t| t.number),
            Some(2)
        );
        // A holder closed beyond the window: its linked follow-up wins.
        let leads = [
            lead("w2", closed(1, WINDOW + 1), true),
            lead("w2", open(2), false),
        ];
        assert_eq!(
            by_reference(&["w2"], &leads, now(), window).map(|t| t.number),
            Some(2)
        );
        // The most relevant id that leads anywhere decides.
        let leads = [lead("b", open(1), true), lead("c", open(3), true)];
        assert_eq!(
            by_reference(&["a", "c", "b"], &leads, now(), window).map(|t| t.number),
            Some(3)
        );
        assert_eq!(by_reference(&["a"], &leads, now(), window), None);
    }
}
