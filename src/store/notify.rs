//! Changes heard across nodes (PostgreSQL): every change a process
//! announces is also sent with `NOTIFY` on one channel, and each server
//! listens there and announces what other processes did as if it had done
//! it itself (`Change::Ticket(n)` stays `Change::Ticket(n)`), so that IDLE
//! sessions, the search indexer, the SLA scheduler and the outbound worker
//! of every node react within moments without polling.
//!
//! Sending: [`Store::announce`] runs after the commit of the change, and
//! hands the change to one task per process that sends it right away,
//! together with whatever else was announced meanwhile (a burst of ingest
//! becomes a few notifications with many ticket numbers, not one per
//! message). NOTIFY after the commit rather than inside each transaction:
//! PostgreSQL serializes the commits of notifying transactions on one
//! lock, which would cap ingest across all nodes, and the batching would
//! be lost. What that costs: a process that dies between its commit and
//! the NOTIFY a few milliseconds later leaves the other nodes' IDLE
//! clients unaware of that change until the next one (every view is
//! re-read against the store on every wake-up, so nothing is lost for
//! good).
//!
//! Receiving: [`Store::change_listener`] holds one connection in `LISTEN`.
//! When it is lost, it reconnects (backing off up to a few seconds) and
//! then announces `Change::External`, on which every session re-reads its
//! view: what was notified while the connection was down is caught up.
//!
//! The payload: `v1 NODE [T1,2,3] [S4,5] [O] [X]`: the sending process
//! (a process ignores its own), the tickets that changed, the agents whose
//! \Seen set changed, outbound mail queued, and something else changed.
//! A batch larger than one notification may carry (8000 bytes) is split.

use super::{Backend, Change, Result, Store};
use sqlx::postgres::{PgListener, PgPool};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The one channel every node notifies and listens on.
pub const CHANNEL: &str = "postdesk_changes";

/// Bytes of one payload at most (PostgreSQL refuses 8000 and more).
const MAX_PAYLOAD: usize = 7900;

/// Changes waiting for the sender at most; beyond that they are folded
/// into one `External` (the receivers then re-read everything).
const QUEUE: usize = 4096;

/// The longest wait between attempts to get the listening connection back.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum Outgoing {
    Change(Change),
    /// Answered once everything queued before it was sent.
    Flush(oneshot::Sender<()>),
}

/// The sending half: a queue to the task that sends NOTIFY.
#[derive(Clone)]
pub(crate) struct Notifier {
    queue: mpsc::Sender<Outgoing>,
    overflow: Arc<AtomicBool>,
}

impl Notifier {
    pub(crate) fn start(pool: PgPool, node: u64) -> Notifier {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        tokio::spawn(send_notifications(
            pool,
            node,
            receiver,
            Arc::clone(&overflow),
        ));
        Notifier { queue, overflow }
    }

    pub(crate) fn push(&self, change: Change) {
        if self.queue.try_send(Outgoing::Change(change)).is_err() {
            // Full (the database is slow or away): the receivers will be
            // told that something changed, not what.
            self.overflow.store(true, Ordering::Relaxed);
        }
    }

    /// Waits (a few seconds at most) until what was announced so far has
    /// been sent: a command line process is about to exit.
    pub(crate) async fn flush(&self) {
        let (done, sent) = oneshot::channel();
        if self.queue.send(Outgoing::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), sent).await;
        }
    }
}

/// What one batch of announcements says, coalesced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub tickets: BTreeSet<i64>,
    pub seen: BTreeSet<i64>,
    pub outbound: bool,
    pub external: bool,
}

impl Batch {
    fn add(&mut self, change: Change) {
        match change {
            Change::Ticket(n) => {
                self.tickets.insert(n);
            }
            Change::Seen(agent) => {
                self.seen.insert(agent);
            }
            Change::OutboundQueued => self.outbound = true,
            Change::External => self.external = true,
        }
    }

    fn is_empty(&self) -> bool {
        *self == Batch::default()
    }

    /// The changes to announce for it.
    fn changes(self) -> Vec<Change> {
        let mut out: Vec<Change> = self.tickets.into_iter().map(Change::Ticket).collect();
        out.extend(self.seen.into_iter().map(Change::Seen));
        if self.outbound {
            out.push(Change::OutboundQueued);
        }
        if self.external {
            out.push(Change::External);
        }
        out
    }

    /// The payloads that carry it, each under [`MAX_PAYLOAD`] bytes.
    pub(crate) fn payloads(&self, node: u64) -> Vec<String> {
        let head = format!("v1 {node:x}");
        let mut flags = String::new();
        if self.outbound {
            flags.push_str(" O");
        }
        if self.external {
            flags.push_str(" X");
        }
        let mut out = Vec::new();
        let mut current = format!("{head}{flags}");
        // Which list the current payload is in ('T' or 'S'), if any.
        let mut open: Option<char> = None;
        let items = self
            .tickets
            .iter()
            .map(|n| ('T', *n))
            .chain(self.seen.iter().map(|a| ('S', *a)));
        for (kind, value) in items {
            // At most 21 bytes for a number and 3 for its separators.
            if current.len() + 24 > MAX_PAYLOAD {
                out.push(std::mem::replace(&mut current, head.clone()));
                open = None;
            }
            if open == Some(kind) {
                let _ = write!(current, ",{value}");
            } else {
                let _ = write!(current, " {kind}{value}");
                open = Some(kind);
            }
        }
        out.push(current);
        out
    }
}

/// Reads a payload: None when it is not one (another program on the
/// channel, a future format) or it came from `own` node.
pub(crate) fn parse_payload(payload: &str, own: u64) -> Option<Batch> {
    let mut words = payload.split(' ');
    if words.next()? != "v1" {
        return None;
    }
    let node = u64::from_str_radix(words.next()?, 16).ok()?;
    if node == own {
        return None;
    }
    let mut batch = Batch::default();
    for word in words {
        let (kind, rest) = word.split_at_checked(1)?;
        match kind {
            "O" => batch.outbound = true,
            "X" => batch.external = true,
            "T" | "S" => {
                for number in rest.split(',') {
                    let number = number.parse().ok()?;
                    if kind == "T" {
                        batch.tickets.insert(number);
                    } else {
                        batch.seen.insert(number);
                    }
                }
            }
            _ => return None,
        }
    }
    Some(batch)
}

/// The sender task: takes what is queued, coalesces it, sends it.
async fn send_notifications(
    pool: PgPool,
    node: u64,
    mut queue: mpsc::Receiver<Outgoing>,
    overflow: Arc<AtomicBool>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = Batch::default();
        let mut flushes = Vec::new();
        let mut take = |item: Outgoing| match item {
            Outgoing::Change(change) => batch.add(change),
            Outgoing::Flush(done) => flushes.push(done),
        };
        take(first);
        // Whatever else was announced while the last batch was being
        // sent goes into this one.
        while let Ok(item) = queue.try_recv() {
            take(item);
        }
        if overflow.swap(false, Ordering::Relaxed) {
            batch.external = true;
        }
        if !batch.is_empty() {
            for payload in batch.payloads(node) {
                let sent = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(&payload)
                    .execute(&pool)
                    .await;
                if let Err(err) = sent {
                    if pool.is_closed() {
                        break;
                    }
                    // The other nodes learn of it with the next change
                    // that gets through.
                    tracing::warn!(%err, "changes not notified to the other nodes");
                    overflow.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// A connection in `LISTEN` on [`CHANNEL`] (see the module doc).
pub struct ChangeListener {
    store: Store,
    pool: PgPool,
    listener: Option<PgListener>,
}

impl Store {
    /// Starts listening for other processes' changes; None on SQLite
    /// (one process writes; the CLI's changes are watched for otherwise).
    /// Returns once the LISTEN is in place, so that a server that has
    /// started hears every change committed after that.
    pub async fn change_listener(&self) -> Result<Option<ChangeListener>> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(None);
        };
        let listener = listen(pool).await?;
        Ok(Some(ChangeListener {
            store: self.clone(),
            pool: pool.clone(),
            listener: Some(listener),
        }))
    }
}

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnecting is done (and announced) here, not inside sqlx.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

impl ChangeListener {
    /// Announces other processes' changes until the store is closed.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.pool.is_closed() {
                return;
            }
            let Some(listener) = self.listener.as_mut() else {
                tokio::time::sleep(backoff).await;
                match listen(&self.pool).await {
                    Ok(listener) => {
                        tracing::info!("listening for other nodes' changes again");
                        self.listener = Some(listener);
                        backoff = Duration::from_millis(100);
                        // What was notified while nobody listened is not
                        // known: every session re-reads its view.
                        self.store.announce_local(Change::External);
                    }
                    Err(err) => {
                        if !self.pool.is_closed() {
                            tracing::warn!(%err, "cannot listen for other nodes' changes; retrying");
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            };
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(batch) = parse_payload(notification.payload(), self.store.node) {
                        for change in batch.changes() {
                            self.store.announce_local(change);
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!("the connection listening for other nodes' changes was lost");
                    self.listener = None;
                }
                Err(err) => {
                    if self.pool.is_closed() {
                        return;
                    }
                    tracing::warn!(%err, "the connection listening for other nodes' changes failed");
                    self.listener = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_survives_the_payload_and_ones_own_are_ignored() {
        let mut batch = Batch::default();
        for change in [
            Change::Ticket(7),
            Change::Seen(3),
            Change::Ticket(2),
            Change::Ticket(7),
            Change::OutboundQueued,
        ] {
            batch.add(change);
        }
        let payloads = batch.payloads(0xabc);
        assert_eq!(payloads, vec!["v1 abc O T2,7 S3".to_string()]);
        assert_eq!(parse_payload(&payloads[0], 1), Some(batch.clone()));
        assert_eq!(parse_payload(&payloads[0], 0xabc), None);
        assert_eq!(
            batch.changes(),
            vec![
                Change::Ticket(2),
                Change::Ticket(7),
                Change::Seen(3),
                Change::OutboundQueued
            ]
        );
        assert_eq!(parse_payload("hello", 1), None);
        assert_eq!(parse_payload("v1 abc T1,x", 1), None);
    }

    #[test]
    fn a_large_batch_is_split_under_the_limit_and_loses_nothing() {
        let mut batch = Batch::default();
        for n in 0..5000 {
            batch.add(Change::Ticket(i64::MAX - n));
        }
        for agent in 0..100 {
            batch.add(Change::Seen(agent));
        }
        batch.add(Change::External);
        let payloads = batch.payloads(u64::MAX);
        assert!(payloads.len() > 1);
        let mut back = Batch::default();
        for payload in &payloads {
            assert!(payload.len() < MAX_PAYLOAD, "{}", payload.len());
            let part = parse_payload(payload, 1).expect("parses");
            back.tickets.extend(part.tickets);
            back.seen.extend(part.seen);
            back.outbound |= part.outbound;
            back.external |= part.external;
        }
        assert_eq!(back, batch);
    }
}
