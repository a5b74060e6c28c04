//! Who may act where: the queue boundary, decided once for every path
//! (submission, mail commands, new outbound tickets; IMAP views are scoped
//! by the same queues). A refusal names only what the actor may know: a
//! ticket of another queue is "not in your queues", never "in queue X".

/// Who is acting, as far as permissions go.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub is_admin: bool,
    /// The queues the actor works in.
    pub queues: &'a [String],
}

impl Actor<'_> {
    /// May the actor work on tickets of `queue` (see them, change them,
    /// write in them, open them)?
    pub fn works_in(&self, queue: &str) -> bool {
        self.is_admin || self.queues.iter().any(|q| q.eq_ignore_ascii_case(queue))
    }
}

/// Why an action is refused, worded for the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// A ticket in a queue the actor does not work in: its queue is not
    /// named (that would tell which queue a ticket number belongs to).
    TicketNotYours(i64),
    /// A queue (an address of it) the actor does not work in.
    QueueNotYours(String),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::TicketNotYours(number) => write!(f, "ticket #{number} is not in your queues"),
            Denied::QueueNotYours(queue) => write!(f, "you do not work in queue '{queue}'"),
        }
    }
}

/// May the actor act on a ticket of `queue`?
pub fn may_act_on_ticket(actor: Actor<'_>, number: i64, queue: &str) -> Result<(), Denied> {
    if actor.works_in(queue) {
        Ok(())
    } else {
        Err(Denied::TicketNotYours(number))
    }
}

/// May the actor open a ticket in (or write as) `queue`?
pub fn may_use_queue(actor: Actor<'_>, queue: &str) -> Result<(), Denied> {
    if actor.works_in(queue) {
        Ok(())
    } else {
        Err(Denied::QueueNotYours(queue.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_act_in_their_queues_and_admins_everywhere() {
        let billing = ["billing".to_string()];
        let bob = Actor {
            is_admin: false,
            queues: &billing,
        };
        assert_eq!(may_act_on_ticket(bob, 7, "Billing"), Ok(()));
        let refused = may_act_on_ticket(bob, 1, "support").unwrap_err();
        assert_eq!(refused.to_string(), "ticket #1 is not in your queues");
        assert!(!refused.to_string().contains("support"));
        assert_eq!(
            may_use_queue(bob, "support"),
            Err(Denied::QueueNotYours("support".into()))
        );
        let admin = Actor {
            is_admin: true,
            queues: &[],
        };
        assert_eq!(may_use_queue(admin, "security"), Ok(()));
    }
}
