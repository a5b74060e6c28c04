//! The members of recently selected mailboxes, kept in memory as of a
//! MODSEQ, so that SELECT reads what changed since instead of every member.
//!
//! Why: a client's first sync of a 10,000-message view began with a SELECT
//! that read all 10,000 members (30–70 ms through the driver, row by row)
//! against Dovecot's 0.7 ms from its index file (issue 17). Thunderbird
//! selects every folder it checks, again and again, and each of its five
//! connections does; the members change little between those SELECTs.
//!
//! A snapshot is only ever a starting point: the changes since its MODSEQ
//! (members written with a higher MODSEQ, UIDs expunged with a higher
//! MODSEQ) are read and applied. Applying them is idempotent (a member
//! replaces the one with its UID, a gone UID is removed whether or not it
//! is there), so a snapshot that already holds some later changes, read
//! between the mailbox's row and its members, is still right after the
//! next delta. A member's MODSEQ is assigned under the mailbox row's lock,
//! so no change with a MODSEQ at or below the one read commits later.
//!
//! Memory is bounded by [`MAX_MEMBERS`] over all snapshots; the least
//! recently used go first.

use super::{Mailbox, Member};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Members kept over all snapshots (about 100 bytes each): the views a
/// team has open, not every folder of every agent.
pub const MAX_MEMBERS: usize = 400_000;

/// A snapshot older than this is read again in full: the expunged UIDs a
/// delta needs are kept for [`super::EXPUNGED_KEPT_SECONDS`], and a view
/// nobody selected for that long has no claim on memory.
const MAX_AGE: Duration = Duration::from_secs(3600);

/// One mailbox's members as of `modseq`.
#[derive(Clone)]
pub struct Snapshot {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub members: Arc<Vec<Member>>,
    taken: Instant,
}

impl Snapshot {
    pub fn new(mailbox: &Mailbox, members: Vec<Member>) -> Snapshot {
        Snapshot {
            uidvalidity: mailbox.uidvalidity,
            modseq: mailbox.highestmodseq,
            members: Arc::new(members),
            taken: Instant::now(),
        }
    }

    /// Whether the changes since this snapshot can bring it to `mailbox`:
    /// the same mailbox incarnation, not ahead of it, and recent enough.
    /// A mailbox at MODSEQ 0 has never counted its changes: never.
    pub fn usable_for(&self, mailbox: &Mailbox) -> bool {
        mailbox.highestmodseq > 0
            && self.uidvalidity == mailbox.uidvalidity
            && self.modseq <= mailbox.highestmodseq
            && self.taken.elapsed() < MAX_AGE
    }
}

/// The members after `changed` (new or reflagged) and `gone` (expunged
/// UIDs) are applied to `members`, sorted by UID.
pub fn apply(members: &[Member], changed: Vec<Member>, gone: &[u32]) -> Vec<Member> {
    let gone: HashSet<u32> = gone.iter().copied().collect();
    let mut changed: BTreeMap<u32, Member> = changed
        .into_iter()
        .filter(|m| !gone.contains(&m.uid))
        .map(|m| (m.uid, m))
        .collect();
    let mut out = Vec::with_capacity(members.len() + changed.len());
    for member in members {
        if gone.contains(&member.uid) {
            continue;
        }
        match changed.remove(&member.uid) {
            Some(newer) => out.push(newer),
            None => out.push(member.clone()),
        }
    }
    // The rest are new; UIDs only grow, but a member re-read after the
    // snapshot may sit anywhere: keep the order by UID.
    let appended = !changed.is_empty();
    out.extend(changed.into_values());
    if appended {
        out.sort_by_key(|m| m.uid);
    }
    out
}

#[derive(Default)]
struct Kept {
    by_mailbox: HashMap<i64, (Snapshot, u64)>,
    members: usize,
    clock: u64,
}

/// The snapshots of one process (see the module doc).
#[derive(Clone, Default)]
pub struct MemberSnapshots {
    kept: Arc<Mutex<Kept>>,
}

impl MemberSnapshots {
    /// The snapshot of a mailbox, if one is kept.
    pub fn get(&self, mailbox_id: i64) -> Option<Snapshot> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.clock += 1;
        let clock = kept.clock;
        let (snapshot, used) = kept.by_mailbox.get_mut(&mailbox_id)?;
        *used = clock;
        Some(snapshot.clone())
    }

    /// Keeps `snapshot` for its mailbox unless a newer one is kept, then
    /// drops the least recently used until the bound holds.
    pub fn put(&self, mailbox_id: i64, snapshot: Snapshot) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let size = snapshot.members.len();
        if size > MAX_MEMBERS {
            return;
        }
        kept.clock += 1;
        let clock = kept.clock;
        if let Some((old, _)) = kept.by_mailbox.get(&mailbox_id) {
            if old.uidvalidity == snapshot.uidvalidity && old.modseq > snapshot.modseq {
                return;
            }
            let old_size = old.members.len();
            kept.members -= old_size;
        }
        kept.by_mailbox.insert(mailbox_id, (snapshot, clock));
        kept.members += size;
        while kept.members > MAX_MEMBERS {
            let Some(oldest) = kept
                .by_mailbox
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some((gone, _)) = kept.by_mailbox.remove(&oldest) {
                kept.members -= gone.members.len();
            }
        }
    }

    /// Members kept over all snapshots.
    pub fn members_kept(&self) -> usize {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .members
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageRef;

    fn member(uid: u32, flags: &str, modseq: u64) -> Member {
        Member {
            uid,
            message: MessageRef::Ticket(i64::from(uid) * 10),
            flags: flags.to_string(),
            modseq,
        }
    }

    fn mailbox(id: i64, modseq: u64) -> Mailbox {
        Mailbox {
            id,
            agent_id: 1,
            name: "Unassigned".into(),
            uidvalidity: 7,
            uidnext: 100,
            highestmodseq: modseq,
            subscribed: true,
            recent_uid: 0,
        }
    }

    fn uids(members: &[Member]) -> Vec<u32> {
        members.iter().map(|m| m.uid).collect()
    }

    #[test]
    fn a_delta_adds_reflags_and_removes() {
        let before = vec![member(1, "", 1), member(2, "", 2), member(3, "", 3)];
        let after = apply(
            &before,
            vec![member(2, "\\Seen", 5), member(4, "", 6)],
            &[1],
        );
        assert_eq!(uids(&after), vec![2, 3, 4]);
        assert_eq!(after[0].flags, "\\Seen");
        assert_eq!(after[0].modseq, 5);
    }

    #[test]
    fn applying_a_delta_twice_changes_nothing_more() {
        // A snapshot read between the mailbox row and its members may hold
        // later changes already; the next delta repeats them.
        let before = vec![member(1, "", 1), member(3, "", 3)];
        let changed = vec![member(2, "", 4), member(3, "\\Flagged", 5)];
        let once = apply(&before, changed.clone(), &[1]);
        let twice = apply(&once, changed, &[1]);
        assert_eq!(uids(&twice), vec![2, 3]);
        assert_eq!(twice[1].flags, "\\Flagged");
    }

    #[test]
    fn a_member_changed_and_gone_is_gone() {
        let after = apply(&[member(1, "", 1)], vec![member(1, "\\Seen", 2)], &[1]);
        assert!(after.is_empty());
    }

    #[test]
    fn a_snapshot_of_another_incarnation_or_ahead_is_not_used() {
        let snapshot = Snapshot::new(&mailbox(1, 10), vec![member(1, "", 1)]);
        assert!(snapshot.usable_for(&mailbox(1, 10)));
        assert!(snapshot.usable_for(&mailbox(1, 12)));
        assert!(!snapshot.usable_for(&mailbox(1, 9)));
        let uncounted = Snapshot::new(&mailbox(1, 0), vec![]);
        assert!(!uncounted.usable_for(&mailbox(1, 0)));
        let mut recreated = mailbox(1, 12);
        recreated.uidvalidity = 8;
        assert!(!snapshot.usable_for(&recreated));
    }

    #[test]
    fn the_least_recently_used_go_when_the_bound_is_reached() {
        let snapshots = MemberSnapshots::default();
        let big = |n: usize| (0..n as u32).map(|u| member(u + 1, "", 1)).collect();
        snapshots.put(1, Snapshot::new(&mailbox(1, 1), big(MAX_MEMBERS / 2)));
        snapshots.put(2, Snapshot::new(&mailbox(2, 1), big(MAX_MEMBERS / 2)));
        // Mailbox 1 was used since: mailbox 2 goes.
        assert!(snapshots.get(1).is_some());
        snapshots.put(3, Snapshot::new(&mailbox(3, 1), big(10)));
        assert!(snapshots.get(1).is_some());
        assert!(snapshots.get(2).is_none());
        assert!(snapshots.get(3).is_some());
        assert_eq!(snapshots.members_kept(), MAX_MEMBERS / 2 + 10);
    }

    #[test]
    fn an_older_snapshot_does_not_replace_a_newer_one() {
        let snapshots = MemberSnapshots::default();
        snapshots.put(1, Snapshot::new(&mailbox(1, 5), vec![member(1, "", 5)]));
        snapshots.put(1, Snapshot::new(&mailbox(1, 3), vec![]));
        assert_eq!(snapshots.get(1).map(|s| s.modseq), Some(5));
        assert_eq!(snapshots.members_kept(), 1);
    }
}
