//! Telling every listener, session and worker that the server is stopping.
//!
//! One [`ShutdownTrigger`] per server; every task holds a [`Shutdown`]
//! (cloned freely). After mini-redis's `Shutdown`, over a watch channel so
//! that a task that subscribes late still sees a shutdown that already
//! happened.

use tokio::sync::watch;

/// Starts the shutdown of everything subscribed to it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// A task's view of the shutdown: asks whether it has begun, or waits for
/// it. A dropped [`ShutdownTrigger`] counts as a shutdown: nobody is left
/// who could stop the task otherwise.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    pub fn new() -> ShutdownTrigger {
        ShutdownTrigger {
            sender: watch::Sender::new(false),
        }
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }

    /// Begins the shutdown (again is harmless).
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Default for ShutdownTrigger {
    fn default() -> ShutdownTrigger {
        ShutdownTrigger::new()
    }
}

impl Shutdown {
    /// Whether the shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.receiver.borrow() || self.receiver.has_changed().is_err()
    }

    /// Resolves once the shutdown has begun (at once if it has). Cancel
    /// safe: meant for a branch of `tokio::select!`.
    pub async fn stopped(&mut self) {
        // Err: the trigger is gone, which counts as a shutdown.
        let _ = self.receiver.wait_for(|stopping| *stopping).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn resolves(shutdown: &mut Shutdown) -> bool {
        tokio::time::timeout(Duration::from_millis(50), shutdown.stopped())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn waits_until_triggered() {
        let trigger = ShutdownTrigger::new();
        let mut shutdown = trigger.subscribe();
        assert!(!shutdown.is_stopping());
        assert!(!resolves(&mut shutdown).await);
        trigger.trigger();
        assert!(shutdown.is_stopping());
        assert!(resolves(&mut shutdown).await);
        // Still stopping when asked again.
        assert!(resolves(&mut shutdown).await);
        assert!(shutdown.is_stopping());
    }

    #[tokio::test]
    async fn wakes_a_waiting_task() {
        let trigger = ShutdownTrigger::new();
        let mut shutdown = trigger.subscribe();
        let waiter = tokio::spawn(async move { shutdown.stopped().await });
        tokio::task::yield_now().await;
        trigger.trigger();
        let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(woke, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn late_subscribers_and_clones_see_a_past_shutdown() {
        let trigger = ShutdownTrigger::new();
        let early = trigger.subscribe();
        trigger.trigger();
        let mut late = trigger.subscribe();
        let mut clone = early.clone();
        assert!(late.is_stopping());
        assert!(resolves(&mut late).await);
        assert!(clone.is_stopping());
        assert!(resolves(&mut clone).await);
    }

    #[tokio::test]
    async fn a_dropped_trigger_is_a_shutdown() {
        let trigger = ShutdownTrigger::new();
        let mut shutdown = trigger.subscribe();
        drop(trigger);
        assert!(shutdown.is_stopping());
        assert!(resolves(&mut shutdown).await);
    }
}
