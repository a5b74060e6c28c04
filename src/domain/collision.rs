//! Collision hold (issue 20): an agent's public reply is held, not sent,
//! when the ticket changed after the message it answers — a newer message
//! of the customer (or anyone outside writing in), or another agent's
//! public reply. The agent reads what changed and sends again (`#send`, or
//! a reply to the newest message).
//!
//! Pure: the store reads the ticket's messages after the answered one, this
//! decides, the store executes (holds the reply in the agent's Held folder
//! with a notice, or files it with a note).

use super::ticket::MessageKind;
use chrono::{DateTime, Utc};
use std::fmt;

/// `[submission] collision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CollisionMode {
    /// Hold the reply and give it back to the agent.
    #[default]
    Hold,
    /// Send it, note the collision in the ticket and tell the agent.
    Warn,
    /// Send it; no check.
    Off,
}

impl CollisionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CollisionMode::Hold => "hold",
            CollisionMode::Warn => "warn",
            CollisionMode::Off => "off",
        }
    }
}

/// A message of the ticket stored after the one the reply answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaterMessage {
    pub kind: MessageKind,
    /// The From address as stored (the queue address for a reply).
    pub sender: String,
    pub from_name: Option<String>,
    /// The agent who wrote it (replies and notes).
    pub author: Option<i64>,
    /// The author's address, for the notice.
    pub author_email: Option<String>,
    pub subject: String,
    pub at: DateTime<Utc>,
}

/// One change the replying agent has not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newer {
    pub what: NewerKind,
    /// Who wrote it, as the notice names them.
    pub who: String,
    pub subject: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewerKind {
    /// The customer (or another outside participant) wrote again.
    CustomerMessage,
    /// A colleague answered publicly.
    ColleagueReply,
}

impl fmt::Display for Newer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.what {
            NewerKind::CustomerMessage => "new message from",
            NewerKind::ColleagueReply => "reply by",
        };
        write!(
            f,
            "{what} {} at {} UTC: \"{}\"",
            self.who,
            self.at.format("%Y-%m-%d %H:%M:%S"),
            self.subject
        )
    }
}

/// What becomes of a public reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it. `owner_note`: the ticket is someone else's — not a
    /// collision, but the reply's history line says whose it is.
    Send { owner_note: Option<String> },
    /// Send it, and note in the ticket (and tell the agent) what they had
    /// not seen (`collision = "warn"`).
    SendWithWarning {
        newer: Vec<Newer>,
        owner_note: Option<String>,
    },
    /// Hold it: store it in the agent's Held folder and tell them.
    Hold { newer: Vec<Newer> },
}

/// The facts of one reply.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub mode: CollisionMode,
    /// The replying agent, and their address.
    pub me: i64,
    pub me_email: &'a str,
    /// The ticket's owner's address, if anyone owns it.
    pub owner: Option<&'a str>,
    /// The agent wrote `#send`: they read what changed.
    pub forced: bool,
    /// The ticket's messages stored after the one the reply answers, in
    /// order; None when the reply names no message of this ticket (a new
    /// mail to the plus-address, `[#n]` in a fresh mail): nothing to
    /// compare against, so no collision.
    pub later: Option<&'a [LaterMessage]>,
}

/// Decides whether a public reply is sent, sent with a warning, or held.
pub fn decide(facts: &Facts<'_>) -> Decision {
    let owner_note = match facts.owner {
        Some(owner) if !owner.eq_ignore_ascii_case(facts.me_email) => Some(format!(
            "the ticket belongs to {owner}; answered by a colleague"
        )),
        _ => None,
    };
    let newer = match (facts.mode, facts.later) {
        (CollisionMode::Off, _) | (_, None) => Vec::new(),
        (_, Some(later)) => newer_than_answered(later, facts.me),
    };
    if newer.is_empty() {
        return Decision::Send { owner_note };
    }
    match facts.mode {
        CollisionMode::Hold if !facts.forced => Decision::Hold { newer },
        // `#send` after a hold: the agent read it, nothing to warn of.
        CollisionMode::Hold => Decision::Send { owner_note },
        CollisionMode::Warn => Decision::SendWithWarning { newer, owner_note },
        CollisionMode::Off => Decision::Send { owner_note },
    }
}

/// What, after the answered message, the replying agent has not seen: mail
/// from outside (customer, Cc'd people) and colleagues' public replies.
/// Their own replies, notes, forwards and postdesk's own mail are no
/// reason to hold anything.
pub fn newer_than_answered(later: &[LaterMessage], me: i64) -> Vec<Newer> {
    later
        .iter()
        .filter_map(|m| {
            let (what, who) = match m.kind {
                MessageKind::Customer => (
                    NewerKind::CustomerMessage,
                    match &m.from_name {
                        Some(name) => format!("{name} <{}>", m.sender),
                        None => m.sender.clone(),
                    },
                ),
                MessageKind::Reply if m.author.is_some_and(|a| a != me) => (
                    NewerKind::ColleagueReply,
                    m.author_email.clone().unwrap_or_else(|| m.sender.clone()),
                ),
                _ => return None,
            };
            Some(Newer {
                what,
                who,
                subject: m.subject.clone(),
                at: m.at,
            })
        })
        .collect()
}

/// The lines the notice mail and the ticket's history give.
pub fn describe(newer: &[Newer]) -> String {
    newer
        .iter()
        .map(|n| format!("- {n}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The history line of a held reply.
pub fn held_detail(agent: &str, newer: &[Newer]) -> String {
    format!(
        "reply of {agent} held (collision): the ticket changed after the message it answers: {}",
        newer
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, minute, 0).unwrap()
    }

    fn customer(minute: u32) -> LaterMessage {
        LaterMessage {
            kind: MessageKind::Customer,
            sender: "carol@example.com".into(),
            from_name: Some("Carol".into()),
            author: None,
            author_email: None,
            subject: "Re: Printer".into(),
            at: at(minute),
        }
    }

    fn reply(author: i64, minute: u32) -> LaterMessage {
        LaterMessage {
            kind: MessageKind::Reply,
            sender: "support@desk.test".into(),
            from_name: Some("Bob via Support".into()),
            author: Some(author),
            author_email: Some(format!("agent{author}@desk.test")),
            subject: "[#1] Re: Printer".into(),
            at: at(minute),
        }
    }

    fn facts<'a>(mode: CollisionMode, later: Option<&'a [LaterMessage]>) -> Facts<'a> {
        Facts {
            mode,
            me: 1,
            me_email: "alice@desk.test",
            owner: None,
            forced: false,
            later,
        }
    }

    #[test]
    fn nothing_newer_sends() {
        assert_eq!(
            decide(&facts(CollisionMode::Hold, Some(&[]))),
            Decision::Send { owner_note: None }
        );
        // A reply naming no message of the ticket has nothing to compare.
        assert_eq!(
            decide(&facts(CollisionMode::Hold, None)),
            Decision::Send { owner_note: None }
        );
    }

    #[test]
    fn a_newer_customer_message_holds() {
        let later = [customer(5)];
        let Decision::Hold { newer } = decide(&facts(CollisionMode::Hold, Some(&later))) else {
            panic!("not held");
        };
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].what, NewerKind::CustomerMessage);
        assert_eq!(newer[0].who, "Carol <carol@example.com>");
        assert!(
            describe(&newer)
                .contains("new message from Carol <carol@example.com> at 2026-12-03 09:05:00 UTC")
        );
    }

    #[test]
    fn a_colleagues_reply_holds_my_own_does_not() {
        let later = [reply(2, 3)];
        let Decision::Hold { newer } = decide(&facts(CollisionMode::Hold, Some(&later))) else {
            panic!("not held");
        };
        assert_eq!(newer[0].what, NewerKind::ColleagueReply);
        assert_eq!(newer[0].who, "agent2@desk.test");
        let mine = [reply(1, 3)];
        assert_eq!(
            decide(&facts(CollisionMode::Hold, Some(&mine))),
            Decision::Send { owner_note: None }
        );
    }

    #[test]
    fn notes_forwards_and_postdesk_mail_do_not_hold() {
        let mut note = reply(2, 3);
        note.kind = MessageKind::Note;
        let mut forward = reply(2, 4);
        forward.kind = MessageKind::Forward;
        let mut ack = customer(5);
        ack.kind = MessageKind::AutoReply;
        let later = [note, forward, ack];
        assert_eq!(
            decide(&facts(CollisionMode::Hold, Some(&later))),
            Decision::Send { owner_note: None }
        );
    }

    #[test]
    fn send_forces_warn_notes_off_ignores() {
        let later = [customer(5), reply(2, 6)];
        let mut forced = facts(CollisionMode::Hold, Some(&later));
        forced.forced = true;
        assert_eq!(decide(&forced), Decision::Send { owner_note: None });
        match decide(&facts(CollisionMode::Warn, Some(&later))) {
            Decision::SendWithWarning { newer, owner_note } => {
                assert_eq!(newer.len(), 2);
                assert_eq!(owner_note, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&facts(CollisionMode::Off, Some(&later))),
            Decision::Send { owner_note: None }
        );
    }

    #[test]
    fn someone_elses_ticket_is_noted_not_held() {
        let mut f = facts(CollisionMode::Hold, Some(&[]));
        f.owner = Some("bob@desk.test");
        assert_eq!(
            decide(&f),
            Decision::Send {
                owner_note: Some(
                    "the ticket belongs to bob@desk.test; answered by a colleague".into()
                )
            }
        );
        f.owner = Some("Alice@desk.test");
        assert_eq!(decide(&f), Decision::Send { owner_note: None });
        // Held all the same when it also collides.
        let later = [customer(5)];
        f.owner = Some("bob@desk.test");
        f.later = Some(&later);
        assert!(matches!(decide(&f), Decision::Hold { .. }));
    }

    #[test]
    fn the_history_line_names_what_changed() {
        let newer = newer_than_answered(&[customer(5), reply(2, 6)], 1);
        let line = held_detail("alice@desk.test", &newer);
        assert!(
            line.starts_with("reply of alice@desk.test held (collision)"),
            "{line}"
        );
        assert!(
            line.contains("Carol <carol@example.com>")
                && line.contains("reply by agent2@desk.test"),
            "{line}"
        );
    }
}
