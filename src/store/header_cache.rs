//! Message headers kept in memory for the header FETCH every client sends.
//!
//! Why: Thunderbird's first sync of a folder, and every client's answer to
//! an EXISTS in IDLE, is a FETCH of header fields. Read from SQLite, each
//! message is one row handed from the driver's worker thread to the
//! session, a thread wake-up per row: a 10,000-message header FETCH took
//! 130–250 ms against Dovecot's 80–96 ms from its cache file, and with a
//! team in IDLE twenty clients read the same new message's header twenty
//! times (issue 17). Dovecot keeps the fields clients ask for in
//! `dovecot.index.cache`; this is the same idea, in memory.
//!
//! Only what never changes is kept: a customer's or agent's message
//! (`messages.raw`) and an article revision's mail, both written once and
//! never deleted. An agent's own stored messages can be deleted, and on
//! SQLite a deleted row's id can come back, so they are always read.
//!
//! Bounded by [`MAX_BYTES`]; the oldest entries go first (first in, first
//! out: a folder's headers are read together, so the order they came in is
//! a fair guess at the order they stop being wanted, without the
//! bookkeeping of a least-recently-used list on every hit).

use super::{Content, MessageRef};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// Header bytes kept over all messages.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// What an entry costs beside its bytes (key, date, map and queue slots).
const ENTRY_OVERHEAD: usize = 96;

#[derive(Default)]
struct Kept {
    by_message: HashMap<(MessageRef, usize), Content>,
    order: VecDeque<(MessageRef, usize)>,
    bytes: usize,
}

/// Headers read with a given prefix length, by message.
#[derive(Clone, Default)]
pub struct HeaderCache {
    kept: Arc<Mutex<Kept>>,
}

impl HeaderCache {
    /// Whether this message's bytes never change (see the module doc).
    pub fn keeps(reference: &MessageRef) -> bool {
        matches!(reference, MessageRef::Ticket(_) | MessageRef::Article(_))
    }

    /// Moves the kept headers of `refs` (read with `prefix`) into `found`;
    /// returns the references still to be read.
    pub fn take_known(
        &self,
        refs: &[MessageRef],
        prefix: usize,
        found: &mut HashMap<MessageRef, Content>,
    ) -> Vec<MessageRef> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let mut missing = Vec::new();
        for reference in refs {
            match kept.by_message.get(&(*reference, prefix)) {
                Some(content) => {
                    found.insert(*reference, content.clone());
                }
                None => missing.push(*reference),
            }
        }
        missing
    }

    /// Keeps the headers just read with `prefix` of the messages that
    /// never change.
    pub fn keep<'a>(
        &self,
        read: impl IntoIterator<Item = (&'a MessageRef, &'a Content)>,
        prefix: usize,
    ) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        for (reference, content) in read {
            if !Self::keeps(reference) {
                continue;
            }
            let key = (*reference, prefix);
            if kept.by_message.contains_key(&key) {
                continue;
            }
            kept.bytes += content.raw.len() + ENTRY_OVERHEAD;
            kept.by_message.insert(key, content.clone());
            kept.order.push_back(key);
        }
        while kept.bytes > MAX_BYTES {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            if let Some(gone) = kept.by_message.remove(&oldest) {
                kept.bytes -= gone.raw.len() + ENTRY_OVERHEAD;
            }
        }
    }

    /// Bytes kept (headers and the overhead counted for each).
    pub fn bytes(&self) -> usize {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn content(len: usize) -> Content {
        Content {
            raw: vec![b'x'; len],
            size: len * 4,
            internal_date: Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).single().unwrap(),
        }
    }

    #[test]
    fn kept_headers_are_found_and_the_rest_read() {
        let cache = HeaderCache::default();
        let read = [
            (MessageRef::Ticket(1), content(10)),
            (MessageRef::Article(2), content(20)),
            (MessageRef::Stored(3), content(30)),
        ];
        cache.keep(read.iter().map(|(r, c)| (r, c)), 100);
        let mut found = HashMap::new();
        let missing = cache.take_known(
            &[
                MessageRef::Ticket(1),
                MessageRef::Article(2),
                MessageRef::Stored(3),
                MessageRef::Ticket(4),
            ],
            100,
            &mut found,
        );
        // An agent's stored message may be deleted and its id reused: read.
        assert_eq!(missing, vec![MessageRef::Stored(3), MessageRef::Ticket(4)]);
        assert_eq!(found[&MessageRef::Ticket(1)], content(10));
        // Read with another prefix length: not the same bytes.
        let mut other = HashMap::new();
        assert_eq!(
            cache.take_known(&[MessageRef::Ticket(1)], 50, &mut other),
            vec![MessageRef::Ticket(1)]
        );
    }

    #[test]
    fn the_oldest_go_when_the_bound_is_reached() {
        let cache = HeaderCache::default();
        let big = MAX_BYTES / 3;
        for id in 1..=4 {
            let read = [(MessageRef::Ticket(id), content(big))];
            cache.keep(read.iter().map(|(r, c)| (r, c)), 100);
        }
        let mut found = HashMap::new();
        let missing = cache.take_known(
            &(1..=4).map(MessageRef::Ticket).collect::<Vec<_>>(),
            100,
            &mut found,
        );
        assert_eq!(missing, vec![MessageRef::Ticket(1), MessageRef::Ticket(2)]);
        assert!(cache.bytes() <= MAX_BYTES);
    }
}
