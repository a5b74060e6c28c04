//! Connections per agent (`max_connections_per_agent`): a logged-in
//! session holds an [`AgentSlot`], and gives it back by dropping it, on
//! every way a session can end (LOGOUT, an error, a panic, the shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The sessions of each agent, shared by every IMAP listener of a server.
#[derive(Debug, Default)]
pub struct AgentSlots {
    per_agent: Mutex<HashMap<i64, usize>>,
}

/// One of an agent's connection slots, taken until dropped.
#[derive(Debug)]
pub struct AgentSlot {
    slots: Arc<AgentSlots>,
    agent: i64,
}

impl AgentSlots {
    /// A slot for a session of `agent`; None when the agent has `max`
    /// sessions already.
    pub fn take(self: &Arc<Self>, agent: i64, max: usize) -> Option<AgentSlot> {
        let mut map = self.lock();
        let count = map.entry(agent).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AgentSlot {
            slots: self.clone(),
            agent,
        })
    }

    #[cfg(test)]
    fn count(&self, agent: i64) -> usize {
        self.lock().get(&agent).copied().unwrap_or(0)
    }

    /// The counts stay consistent whatever panicked while holding the lock
    /// (each change is one map operation), so a poisoned lock is used as is
    /// rather than refusing every login from then on.
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, usize>> {
        self.per_agent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for AgentSlot {
    fn drop(&mut self) {
        let mut map = self.slots.lock();
        if let Some(count) = map.get_mut(&self.agent) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.agent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_agent_and_given_back_on_drop() {
        let slots = Arc::new(AgentSlots::default());
        let first = slots.take(1, 2);
        let second = slots.take(1, 2);
        assert!(first.is_some() && second.is_some());
        assert!(slots.take(1, 2).is_none(), "a third session is refused");
        assert!(slots.take(2, 2).is_some(), "other agents are not affected");
        assert_eq!(slots.count(1), 2);
        drop(first);
        assert_eq!(slots.count(1), 1);
        let third = slots.take(1, 2);
        assert!(third.is_some(), "a freed slot can be taken again");
        drop((second, third));
        assert_eq!(slots.count(1), 0);
        assert!(
            slots.lock().is_empty(),
            "agents without sessions leave no entry"
        );
    }

    #[test]
    fn a_panicking_session_gives_its_slot_back() {
        let slots = Arc::new(AgentSlots::default());
        let held = slots.clone();
        let session = std::thread::spawn(move || {
            let _slot = held.take(7, 1);
            panic!("session failed");
        });
        assert!(session.join().is_err());
        assert_eq!(slots.count(7), 0);
        assert!(slots.take(7, 1).is_some());
    }

    #[tokio::test]
    async fn an_aborted_session_task_gives_its_slot_back() {
        let slots = Arc::new(AgentSlots::default());
        let slot = slots.take(3, 1);
        assert!(slot.is_some());
        let task = tokio::spawn(async move {
            let _slot = slot;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        assert_eq!(slots.count(3), 1);
        task.abort();
        assert!(task.await.is_err_and(|err| err.is_cancelled()));
        assert_eq!(slots.count(3), 0);
    }
}
