//! Who may act where: the queue boundary and the roles, decided here for
//! every path (submission, mail commands, new outbound tickets, IMAP moves
//! and flags, the command line run as an agent). The one ticket-change
//! operation ([`super::change::plan_change`]) calls [`may_change`] for
//! every change an agent asks, so a path that forgets to check still
//! cannot change another queue's ticket; the paths also call it before
//! they act, to answer in their own words.
//!
//! A refusal names only what the actor may know: a ticket of another queue
//! is "not in your queues", never "in queue X".

use serde::Serialize;

/// What an agent may do besides working their queues' tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentRole {
    /// Works the tickets of their queues: answers, notes, closes, takes an
    /// unowned ticket, hands on their own.
    Agent,
    /// An agent who also reassigns any ticket of their queues and reads
    /// the reports.
    Lead,
    /// Everything, every queue; manages agents, queues and rules.
    Admin,
}

impl AgentRole {
    pub const ALL: [AgentRole; 3] = [AgentRole::Agent, AgentRole::Lead, AgentRole::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentRole::Agent => "agent",
            AgentRole::Lead => "lead",
            AgentRole::Admin => "admin",
        }
    }
}

impl std::fmt::Display for AgentRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AgentRole {
    type Err = String;

    fn from_str(s: &str) -> Result<AgentRole, String> {
        AgentRole::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("no role '{s}' (roles: agent, lead, admin)"))
    }
}

/// Who is acting, as far as permissions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: i64,
    pub email: String,
    pub role: AgentRole,
    /// The queues the actor works in (an admin works in all of them,
    /// whatever this lists).
    pub queues: Vec<String>,
}

impl Actor {
    /// May the actor work on tickets of `queue` (see them, change them,
    /// write in them, open them)?
    pub fn works_in(&self, queue: &str) -> bool {
        self.role == AgentRole::Admin || self.queues.iter().any(|q| q.eq_ignore_ascii_case(queue))
    }

    /// Does the actor see every queue (not only the ones listed)?
    pub fn sees_every_queue(&self) -> bool {
        self.role == AgentRole::Admin
    }
}

/// Who owns a ticket, seen from the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Nobody,
    TheActor,
    /// Another agent.
    Colleague,
}

impl Ownership {
    pub fn of(owner: Option<i64>, actor: &Actor) -> Ownership {
        match owner {
            None => Ownership::Nobody,
            Some(id) if id == actor.id => Ownership::TheActor,
            Some(_) => Ownership::Colleague,
        }
    }

    /// The same, from the owner's address (as tickets are listed).
    pub fn of_email(owner: Option<&str>, actor: &Actor) -> Ownership {
        match owner {
            None => Ownership::Nobody,
            Some(email) if email.eq_ignore_ascii_case(&actor.email) => Ownership::TheActor,
            Some(_) => Ownership::Colleague,
        }
    }
}

/// The agent a change makes owner, as the check needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee {
    pub id: i64,
    pub email: String,
    pub role: AgentRole,
    pub queues: Vec<String>,
    /// Not disabled, not removed: may be given work.
    pub active: bool,
}

impl Assignee {
    fn works_in(&self, queue: &str) -> bool {
        self.role == AgentRole::Admin || self.queues.iter().any(|q| q.eq_ignore_ascii_case(queue))
    }
}

/// What an agent asks of one ticket, as far as permissions go.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub number: i64,
    /// The ticket's queue now.
    pub queue: &'a str,
    pub ownership: Ownership,
    /// The queue it moves to, if it moves.
    pub new_queue: Option<&'a str>,
    /// The owner it gets, if that changes (`Some(None)`: nobody); with the
    /// assignee's facts when it is an agent (None: no such agent).
    pub new_owner: Option<Option<i64>>,
    pub assignee: Option<&'a Assignee>,
}

/// Why an action is refused, worded for the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// A ticket in a queue the actor does not work in: its queue is not
    /// named (that would tell which queue a ticket number belongs to).
    TicketNotYours(i64),
    /// A queue (an address of it) the actor does not work in.
    QueueNotYours(String),
    /// An agent (not a lead) reassigning a colleague's ticket.
    OwnedByColleague(i64),
    /// The new owner does not work in the ticket's queue.
    AssigneeNotInQueue { assignee: String, queue: String },
    /// The new owner is disabled or removed, or no agent at all.
    AssigneeUnavailable(String),
    /// Only a role at least this may do it (`what`: the action).
    NeedsRole { role: AgentRole, what: String },
    /// A knowledge-base category that queues the actor does not work in
    /// use (see `knowledge::may_write_category`).
    CategoryNotYours(String),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::TicketNotYours(number) => write!(f, "ticket #{number} is not in your queues"),
            Denied::QueueNotYours(queue) => write!(f, "you do not work in queue '{queue}'"),
            Denied::OwnedByColleague(number) => write!(
                f,
                "ticket #{number} belongs to a colleague: only its owner, a lead or an admin reassigns it"
            ),
            Denied::AssigneeNotInQueue { assignee, queue } => {
                write!(f, "{assignee} does not work in queue '{queue}'")
            }
            Denied::AssigneeUnavailable(who) => {
                write!(
                    f,
                    "{who} is not an active agent and cannot be given tickets"
                )
            }
            Denied::NeedsRole { role, what } => match role {
                AgentRole::Admin => write!(f, "only an admin may {what}"),
                AgentRole::Lead => write!(f, "only a lead or an admin may {what}"),
                AgentRole::Agent => write!(f, "only an agent may {what}"),
            },
            Denied::CategoryNotYours(category) => write!(
                f,
                "articles of category '{category}' are written by the agents of the queues that \
                 use it, and you work in none of them (a lead or an admin may write it)"
            ),
        }
    }
}

impl std::error::Error for Denied {}

/// May the actor act on a ticket of `queue` at all (see it, write in it)?
pub fn may_act_on_ticket(actor: &Actor, number: i64, queue: &str) -> Result<(), Denied> {
    if actor.works_in(queue) {
        Ok(())
    } else {
        Err(Denied::TicketNotYours(number))
    }
}

/// May the actor open a ticket in (or write as) `queue`?
pub fn may_use_queue(actor: &Actor, queue: &str) -> Result<(), Denied> {
    if actor.works_in(queue) {
        Ok(())
    } else {
        Err(Denied::QueueNotYours(queue.to_string()))
    }
}

/// May the actor make this change? The ticket must be in their queues, a
/// new queue too; an agent takes unowned tickets and hands on their own,
/// a lead or admin reassigns any; the new owner must be an active agent
/// of the queue the ticket ends up in.
pub fn may_change(actor: &Actor, asked: Asked<'_>) -> Result<(), Denied> {
    may_act_on_ticket(actor, asked.number, asked.queue)?;
    if let Some(queue) = asked.new_queue {
        may_use_queue(actor, queue)?;
    }
    let Some(new_owner) = asked.new_owner else {
        return Ok(());
    };
    if asked.ownership == Ownership::Colleague && actor.role == AgentRole::Agent {
        return Err(Denied::OwnedByColleague(asked.number));
    }
    if let Some(id) = new_owner {
        let final_queue = asked.new_queue.unwrap_or(asked.queue);
        match asked.assignee {
            Some(assignee) if assignee.id == id => {
                if !assignee.active {
                    return Err(Denied::AssigneeUnavailable(assignee.email.clone()));
                }
                if !assignee.works_in(final_queue) {
                    return Err(Denied::AssigneeNotInQueue {
                        assignee: assignee.email.clone(),
                        queue: final_queue.to_string(),
                    });
                }
            }
            _ => return Err(Denied::AssigneeUnavailable(format!("agent {id}"))),
        }
    }
    Ok(())
}

/// May the actor manage agents, queues and rules?
pub fn may_administer(actor: &Actor, what: &str) -> Result<(), Denied> {
    needs(actor, AgentRole::Admin, what)
}

/// May the actor read the reports (SLA figures, every agent's numbers)?
pub fn may_read_reports(actor: &Actor) -> Result<(), Denied> {
    needs(actor, AgentRole::Lead, "read the reports")
}

fn needs(actor: &Actor, role: AgentRole, what: &str) -> Result<(), Denied> {
    if actor.role >= role {
        Ok(())
    } else {
        Err(Denied::NeedsRole {
            role,
            what: what.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: i64, role: AgentRole, queues: &[&str]) -> Actor {
        Actor {
            id,
            email: format!("agent{id}@example.com"),
            role,
            queues: queues.iter().map(|q| q.to_string()).collect(),
        }
    }

    fn assignee(id: i64, queues: &[&str], active: bool) -> Assignee {
        Assignee {
            id,
            email: format!("agent{id}@example.com"),
            role: AgentRole::Agent,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            active,
        }
    }

    fn asked(queue: &str, ownership: Ownership) -> Asked<'_> {
        Asked {
            number: 7,
            queue,
            ownership,
            new_queue: None,
            new_owner: None,
            assignee: None,
        }
    }

    #[test]
    fn agents_act_in_their_queues_and_admins_everywhere() {
        let bob = actor(2, AgentRole::Agent, &["billing"]);
        assert_eq!(may_act_on_ticket(&bob, 7, "Billing"), Ok(()));
        let refused = may_act_on_ticket(&bob, 1, "support").unwrap_err();
        assert_eq!(refused.to_string(), "ticket #1 is not in your queues");
        assert!(!refused.to_string().contains("support"));
        assert_eq!(
            may_use_queue(&bob, "support"),
            Err(Denied::QueueNotYours("support".into()))
        );
        let admin = actor(1, AgentRole::Admin, &[]);
        assert_eq!(may_use_queue(&admin, "security"), Ok(()));
        assert_eq!(
            may_change(&bob, asked("support", Ownership::Nobody)),
            Err(Denied::TicketNotYours(7))
        );
        let moving = Asked {
            new_queue: Some("security"),
            ..asked("billing", Ownership::Nobody)
        };
        assert_eq!(
            may_change(&bob, moving),
            Err(Denied::QueueNotYours("security".into()))
        );
    }

    #[test]
    fn agents_take_and_hand_on_but_only_leads_reassign_a_colleagues_ticket() {
        let bob = actor(2, AgentRole::Agent, &["support"]);
        let carol = assignee(3, &["support"], true);
        let bob_as_assignee = assignee(2, &["support"], true);
        // Taking an unowned ticket, handing on one's own, giving it up.
        let take = Asked {
            new_owner: Some(Some(2)),
            assignee: Some(&bob_as_assignee),
            ..asked("support", Ownership::Nobody)
        };
        assert_eq!(may_change(&bob, take), Ok(()));
        let hand_on = Asked {
            new_owner: Some(Some(3)),
            assignee: Some(&carol),
            ..asked("support", Ownership::TheActor)
        };
        assert_eq!(may_change(&bob, hand_on), Ok(()));
        let give_up = Asked {
            new_owner: Some(None),
            ..asked("support", Ownership::TheActor)
        };
        assert_eq!(may_change(&bob, give_up), Ok(()));
        // A colleague's ticket: taking it or releasing it is a lead's call.
        let grab = Asked {
            new_owner: Some(Some(2)),
            assignee: Some(&bob_as_assignee),
            ..asked("support", Ownership::Colleague)
        };
        assert_eq!(may_change(&bob, grab), Err(Denied::OwnedByColleague(7)));
        let release = Asked {
            new_owner: Some(None),
            ..asked("support", Ownership::Colleague)
        };
        assert_eq!(may_change(&bob, release), Err(Denied::OwnedByColleague(7)));
        let lead = actor(4, AgentRole::Lead, &["support"]);
        assert_eq!(may_change(&lead, grab), Ok(()));
        // Closing a colleague's ticket is no reassignment.
        assert_eq!(
            may_change(&bob, asked("support", Ownership::Colleague)),
            Ok(())
        );
    }

    #[test]
    fn the_new_owner_must_be_an_active_agent_of_the_final_queue() {
        let lead = actor(4, AgentRole::Lead, &["support", "billing"]);
        let dave = assignee(5, &["billing"], true);
        let to_dave = Asked {
            new_owner: Some(Some(5)),
            assignee: Some(&dave),
            ..asked("support", Ownership::Nobody)
        };
        assert_eq!(
            may_change(&lead, to_dave),
            Err(Denied::AssigneeNotInQueue {
                assignee: "agent5@example.com".into(),
                queue: "support".into()
            })
        );
        let with_the_ticket = Asked {
            new_queue: Some("billing"),
            ..to_dave
        };
        assert_eq!(may_change(&lead, with_the_ticket), Ok(()));
        let gone = assignee(5, &["support"], false);
        let to_gone = Asked {
            assignee: Some(&gone),
            ..to_dave
        };
        assert_eq!(
            may_change(&lead, to_gone),
            Err(Denied::AssigneeUnavailable("agent5@example.com".into()))
        );
        let nobody = Asked {
            assignee: None,
            ..to_dave
        };
        assert!(may_change(&lead, nobody).is_err());
    }

    #[test]
    fn roles_are_ordered_for_administration_and_reports() {
        let agent = actor(2, AgentRole::Agent, &["support"]);
        let lead = actor(3, AgentRole::Lead, &["support"]);
        let admin = actor(1, AgentRole::Admin, &[]);
        assert!(may_read_reports(&agent).is_err());
        assert_eq!(may_read_reports(&lead), Ok(()));
        assert_eq!(
            may_administer(&lead, "manage agents")
                .unwrap_err()
                .to_string(),
            "only an admin may manage agents"
        );
        assert_eq!(may_administer(&admin, "manage agents"), Ok(()));
        assert_eq!("Lead".parse::<AgentRole>(), Ok(AgentRole::Lead));
        assert!("boss".parse::<AgentRole>().is_err());
    }
}
