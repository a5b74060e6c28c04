//! The selected mailbox as one session knows it: the message sequence the
//! client was told about, and the diff that turns a newer membership into
//! EXPUNGE, EXISTS and FETCH FLAGS responses.

use super::response;
use crate::domain::views::Folder;
use crate::store::{Mailbox, Member, MessageRef};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// How a session wants changes reported (what it enabled).
#[derive(Debug, Clone, Copy)]
pub struct Updates {
    /// MODSEQ with every FETCH FLAGS (CONDSTORE).
    pub condstore: bool,
    /// `VANISHED` UID sets instead of EXPUNGE (QRESYNC).
    pub qresync: bool,
    /// \Recent and `RECENT` (IMAP4rev1; IMAP4rev2 has neither).
    pub recent: bool,
}

/// Sorted, merged inclusive ranges of single UIDs sorted ascending.
fn merge_ranges(uids: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(uids.len());
    for (a, b) in uids {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

#[derive(Debug, Clone)]
pub struct Message {
    pub uid: u32,
    pub message: MessageRef,
    pub flags: String,
    pub modseq: u64,
}

impl From<Member> for Message {
    fn from(m: Member) -> Message {
        Message {
            uid: m.uid,
            message: m.message,
            flags: m.flags,
            modseq: m.modseq,
        }
    }
}

pub struct Selected {
    pub mailbox: Mailbox,
    pub folder: Folder,
    pub read_only: bool,
    /// Sequence number n is `messages[n - 1]`.
    pub messages: Vec<Message>,
    /// `\Deleted` on a view lives in the session only: no IMAP action
    /// destroys customer mail, and views are changed by moving.
    pub deleted: HashSet<u32>,
    /// UIDs of a view this session copied into another folder: a client
    /// without MOVE marks them `\Deleted` and expunges them next, which
    /// finishes its move (it does not delete the ticket).
    pub copied_out: HashSet<u32>,
    /// The sync marker the view was last reconciled against.
    pub marker: String,
    /// UIDs that are \Recent in this session.
    pub recent: HashSet<u32>,
    /// Keywords announced in FLAGS: a client may reject one it was not told of.
    pub keywords: BTreeSet<String>,
    /// When the session last read the mailbox's members (in full or by
    /// MODSEQ).
    pub refreshed_at: Instant,
    /// When the view was last reconciled in full for this session.
    pub reconciled_in_full_at: Instant,
    /// While expunges are held back (during FETCH, STORE, SEARCH): the
    /// HIGHESTMODSEQ up to which the client heard everything. MODSEQs it
    /// is shown meanwhile may be higher, so it is told this one at the end
    /// of the command (RFC 7162 §3.2.10, erratum 1810 of RFC 5162): a
    /// client that resynchronizes from it then hears of the expunges.
    pub held_back_at: Option<u64>,
    /// For a ticket view: the count of announced changes as of which the
    /// session last brought it up to date. A ticket view changes only by
    /// announced changes (and, for what was never announced or ages out of
    /// the Closed view, by the full reconcile every few minutes, which
    /// reads regardless), so a refresh that finds the same count has
    /// nothing to read: a command in a quiet moment costs no read.
    pub current_as_of: Option<u64>,
}

fn keywords_of(flags: &str) -> impl Iterator<Item = &str> {
    flags
        .split(' ')
        .filter(|f| !f.is_empty() && !f.starts_with('\\'))
}

/// A sequence set names no message: answered with BAD for sequence numbers
/// (RFC 3501 §6.4.8 allows ignoring missing UIDs only).
#[derive(Debug)]
pub struct BadSequence;

impl Selected {
    pub fn new(mailbox: Mailbox, folder: Folder, read_only: bool, members: Vec<Member>) -> Self {
        let keywords = members
            .iter()
            .flat_map(|m| keywords_of(&m.flags))
            .map(String::from)
            .collect();
        Selected {
            recent: HashSet::new(),
            keywords,
            mailbox,
            folder,
            read_only,
            messages: members.into_iter().map(Message::from).collect(),
            deleted: HashSet::new(),
            copied_out: HashSet::new(),
            marker: String::new(),
            refreshed_at: Instant::now(),
            reconciled_in_full_at: Instant::now(),
            held_back_at: None,
            current_as_of: None,
        }
    }

    /// Whether the members changed since the MODSEQ this session knows can
    /// be read instead of all of them: it knows one (not while expunges
    /// are held back), and the UIDs that left since are still remembered.
    pub fn knows_changes_since(&self) -> bool {
        let kept = Duration::from_secs(crate::store::EXPUNGED_KEPT_SECONDS.unsigned_abs() / 2);
        self.mailbox.highestmodseq > 0 && self.refreshed_at.elapsed() < kept
    }

    /// The mailbox's members as they are now, from what this session knows
    /// and what changed since: `changed` members (new or reflagged) and
    /// the UIDs that left. What [`Selected::apply_changes`] must agree
    /// with, in tests.
    #[cfg(test)]
    pub fn members_after(&mut self, changed: Vec<Member>, gone: &[u32]) -> Vec<Member> {
        self.refreshed_at = Instant::now();
        let gone: HashSet<u32> = gone.iter().copied().collect();
        let mut changed: std::collections::BTreeMap<u32, Member> =
            changed.into_iter().map(|m| (m.uid, m)).collect();
        let mut members: Vec<Member> = self
            .messages
            .iter()
            .filter(|m| !gone.contains(&m.uid))
            .map(|m| {
                changed.remove(&m.uid).unwrap_or_else(|| Member {
                    uid: m.uid,
                    message: m.message,
                    flags: m.flags.clone(),
                    modseq: m.modseq,
                })
            })
            .collect();
        members.extend(changed.into_values().filter(|m| !gone.contains(&m.uid)));
        members.sort_by_key(|m| m.uid);
        members
    }

    /// As [`Selected::apply`] with [`Selected::members_after`], at the
    /// cost of the changes instead of the mailbox: `changed` members (new
    /// or reflagged, by ascending UID) and the UIDs that left. The same
    /// responses in the same order.
    ///
    /// With a team in IDLE every session refreshes for every change:
    /// rebuilding and diffing the whole membership each time (a
    /// 40,000-message view, 20 sessions, 50 changes a second) kept more
    /// than a core busy copying flags (issue 17).
    pub fn apply_changes(
        &mut self,
        mailbox: Mailbox,
        (changed, gone): (Vec<Member>, Vec<u32>),
        recent_above: u32,
        allow_expunge: bool,
        updates: Updates,
        out: &mut Vec<u8>,
    ) -> HashSet<u32> {
        self.refreshed_at = Instant::now();
        let gone: BTreeSet<u32> = gone.iter().copied().collect();
        let mut changed: Vec<Member> = changed
            .into_iter()
            .filter(|m| !gone.contains(&m.uid))
            .collect();
        changed.sort_by_key(|m| m.uid);
        changed.dedup_by_key(|m| m.uid);
        let before = self.keywords.len();
        for member in &changed {
            for keyword in keywords_of(&member.flags) {
                if !self.keywords.contains(keyword) {
                    self.keywords.insert(keyword.to_string());
                }
            }
        }
        if self.keywords.len() != before {
            self.write_flags_list(out);
        }
        let index_of =
            |messages: &[Message], uid: u32| messages.binary_search_by_key(&uid, |m| m.uid).ok();
        if allow_expunge {
            let indexes: Vec<usize> = gone
                .iter()
                .rev()
                .filter_map(|uid| index_of(&self.messages, *uid))
                .collect();
            self.expunge(indexes, updates, out);
        }
        let pending_expunge = gone
            .iter()
            .any(|uid| index_of(&self.messages, *uid).is_some());
        let mut reported = HashSet::new();
        let mut added = Vec::new();
        let last = self.max_uid();
        for member in changed {
            match index_of(&self.messages, member.uid) {
                Some(index) => {
                    let known = &mut self.messages[index];
                    if known.flags != member.flags {
                        known.flags = member.flags;
                        known.modseq = member.modseq;
                        self.write_flags_update(out, index, updates.condstore);
                        reported.insert(member.uid);
                    } else {
                        known.modseq = member.modseq;
                    }
                }
                None if member.uid > last => added.push(member),
                None => {}
            }
        }
        self.finish(mailbox, added, recent_above, pending_expunge, updates, out);
        reported
    }

    /// Removes the messages at `indexes` (highest first, so that each
    /// EXPUNGE's number is still valid when the client reads it) and tells
    /// the client: EXPUNGE per message, or with QRESYNC their UIDs once in
    /// VANISHED (RFC 7162 §3.2.10).
    fn expunge(&mut self, indexes: Vec<usize>, updates: Updates, out: &mut Vec<u8>) {
        let mut vanished = Vec::new();
        for index in indexes {
            if !updates.qresync {
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", index + 1).as_bytes());
            }
            let gone = self.messages.remove(index);
            self.deleted.remove(&gone.uid);
            self.recent.remove(&gone.uid);
            vanished.push((gone.uid, gone.uid));
        }
        if updates.qresync && !vanished.is_empty() {
            vanished.reverse();
            let uids = super::qresync::write_ranges(&merge_ranges(vanished));
            out.extend_from_slice(format!("* VANISHED {uids}\r\n").as_bytes());
        }
    }

    /// The end of a refresh: new messages appended and announced (EXISTS,
    /// and RECENT for an IMAP4rev1 session), and the mailbox's state taken
    /// unless expunges are held back, in which case the old state is kept
    /// so that the next refresh looks again.
    fn finish(
        &mut self,
        mailbox: Mailbox,
        added: Vec<Member>,
        recent_above: u32,
        pending_expunge: bool,
        updates: Updates,
        out: &mut Vec<u8>,
    ) {
        if !added.is_empty() {
            if updates.recent {
                self.recent.extend(
                    added
                        .iter()
                        .map(|m| m.uid)
                        .filter(|uid| *uid > recent_above),
                );
            }
            self.messages.extend(added.into_iter().map(Message::from));
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.messages.len()).as_bytes());
            if updates.recent {
                out.extend_from_slice(format!("* {} RECENT\r\n", self.recent.len()).as_bytes());
            }
        }
        if pending_expunge {
            if self.held_back_at.is_none() {
                self.held_back_at = Some(self.mailbox.highestmodseq);
            }
            self.mailbox.uidnext = mailbox.uidnext;
            self.mailbox.highestmodseq = 0;
        } else {
            self.held_back_at = None;
            self.mailbox = mailbox;
        }
    }

    pub fn max_uid(&self) -> u32 {
        self.messages.last().map(|m| m.uid).unwrap_or(0)
    }

    /// Indexes into `messages` named by a sequence set, ascending, without
    /// duplicates.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, BadSequence> {
        let count = self.messages.len() as u32;
        let largest = if uid { self.max_uid() } else { count };
        let value = |v: &SeqOrUid| match v {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk => largest,
        };
        let mut ranges: Vec<(u32, u32)> = Vec::with_capacity(set.0.as_ref().len());
        for seq in set.0.as_ref() {
            let (a, b) = match seq {
                Sequence::Single(v) => (value(v), value(v)),
                Sequence::Range(a, b) => {
                    let (a, b) = (value(a), value(b));
                    (a.min(b), a.max(b))
                }
            };
            ranges.push((a, b));
        }
        ranges.sort_unstable();
        let ranges = merge_ranges(ranges);
        let mut picked = Vec::new();
        if uid {
            // `messages` ascend by UID: each range is one slice of it, found
            // by binary search (a client in IDLE fetches `n:*` of a view of
            // tens of thousands after every EXISTS).
            for (a, b) in ranges {
                let start = self.messages.partition_point(|m| m.uid < a);
                let end = self.messages.partition_point(|m| m.uid <= b);
                picked.extend(start..end);
            }
        } else {
            if ranges.iter().any(|(a, b)| *a == 0 || *b > count) {
                return Err(BadSequence);
            }
            for (a, b) in ranges {
                picked.extend((a - 1) as usize..b as usize);
            }
        }
        Ok(picked)
    }

    /// Session-only flags of a message: \Recent, and a view's `\Deleted`.
    pub fn extra_flags(&self, index: usize) -> &'static [&'static str] {
        let uid = self.messages[index].uid;
        let deleted = self.folder.is_view() && self.deleted.contains(&uid);
        match (self.recent.contains(&uid), deleted) {
            (true, true) => &["\\Recent", "\\Deleted"],
            (true, false) => &["\\Recent"],
            (false, true) => &["\\Deleted"],
            (false, false) => &[],
        }
    }

    /// Every flag a message shows, stored and session-only.
    pub fn has_flag(&self, index: usize, flag: &str) -> bool {
        self.messages[index]
            .flags
            .split(' ')
            .chain(self.extra_flags(index).iter().copied())
            .any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// Writes `* n FETCH (FLAGS (…) UID u [MODSEQ (m)])`.
    pub fn write_flags_update(&self, out: &mut Vec<u8>, index: usize, condstore: bool) {
        let m = &self.messages[index];
        out.extend_from_slice(format!("* {} FETCH (UID {} FLAGS ", index + 1, m.uid).as_bytes());
        response::write_flags(out, &m.flags, self.extra_flags(index));
        if condstore {
            out.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
        }
        out.extend_from_slice(b")\r\n");
    }

    /// `* FLAGS (…)` with every keyword in use, and PERMANENTFLAGS.
    pub fn write_flags_list(&self, out: &mut Vec<u8>) {
        let mut list = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for keyword in &self.keywords {
            list.push(' ');
            list.push_str(keyword);
        }
        out.extend_from_slice(format!("* FLAGS ({list})\r\n").as_bytes());
        // In a view the keywords are permanent too: tags on the ticket, a
        // client's own ones per agent.
        let permanent = if self.read_only {
            String::new()
        } else if self.folder.is_view() {
            let mut permanent = String::from("\\Seen \\Flagged");
            for keyword in &self.keywords {
                permanent.push(' ');
                permanent.push_str(keyword);
            }
            permanent.push_str(" \\*");
            permanent
        } else {
            "\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*".to_string()
        };
        out.extend_from_slice(
            format!("* OK [PERMANENTFLAGS ({permanent})] Flags permitted\r\n").as_bytes(),
        );
    }

    /// Takes in the mailbox's current membership and writes what the client
    /// must hear: EXPUNGE for members that left (only if `allow_expunge`:
    /// RFC 3501 §7.4.1 forbids them during FETCH, STORE and SEARCH), EXISTS
    /// for new ones, FETCH FLAGS for changed flags. Returns the UIDs whose
    /// flags were reported.
    pub fn apply(
        &mut self,
        mailbox: Mailbox,
        members: Vec<Member>,
        recent_above: u32,
        allow_expunge: bool,
        updates: Updates,
        out: &mut Vec<u8>,
    ) -> HashSet<u32> {
        let condstore = updates.condstore;
        let before = self.keywords.len();
        for member in &members {
            for keyword in keywords_of(&member.flags) {
                if !self.keywords.contains(keyword) {
                    self.keywords.insert(keyword.to_string());
                }
            }
        }
        if self.keywords.len() != before {
            self.write_flags_list(out);
        }
        let mut current: HashMap<u32, Member> = members.into_iter().map(|m| (m.uid, m)).collect();
        let mut reported = HashSet::new();
        let mut pending_expunge = false;
        if allow_expunge {
            let indexes: Vec<usize> = (0..self.messages.len())
                .rev()
                .filter(|index| !current.contains_key(&self.messages[*index].uid))
                .collect();
            self.expunge(indexes, updates, out);
        }
        for index in 0..self.messages.len() {
            let uid = self.messages[index].uid;
            match current.remove(&uid) {
                Some(member) => {
                    let known = &mut self.messages[index];
                    if known.flags != member.flags {
                        known.flags = member.flags;
                        known.modseq = member.modseq;
                        self.write_flags_update(out, index, condstore);
                        reported.insert(uid);
                    } else {
                        known.modseq = member.modseq;
                    }
                }
                None => pending_expunge = true,
            }
        }
        let last = self.max_uid();
        let mut added: Vec<Member> = current.into_values().filter(|m| m.uid > last).collect();
        added.sort_by_key(|m| m.uid);
        self.finish(mailbox, added, recent_above, pending_expunge, updates, out);
        reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn mailbox() -> Mailbox {
        Mailbox {
            id: 1,
            agent_id: 1,
            name: "INBOX".into(),
            uidvalidity: 7,
            uidnext: 10,
            highestmodseq: 3,
            subscribed: true,
            recent_uid: 0,
        }
    }

    fn member(uid: u32, flags: &str) -> Member {
        Member {
            uid,
            message: MessageRef::Ticket(i64::from(uid) * 10),
            flags: flags.into(),
            modseq: 1,
        }
    }

    fn set(text: &str) -> SequenceSet {
        let mut seqs = Vec::new();
        for part in text.split(',') {
            let value = |v: &str| {
                if v == "*" {
                    SeqOrUid::Asterisk
                } else {
                    SeqOrUid::Value(
                        NonZeroU32::new(v.parse().unwrap_or(1)).unwrap_or(NonZeroU32::MIN),
                    )
                }
            };
            seqs.push(match part.split_once(':') {
                Some((a, b)) => Sequence::Range(value(a), value(b)),
                None => Sequence::Single(value(part)),
            });
        }
        SequenceSet(seqs.try_into().unwrap_or_else(|_| panic!("empty set")))
    }

    /// A plain IMAP4rev1 session's: EXPUNGE, FLAGS without MODSEQ, \Recent.
    fn rev1() -> Updates {
        Updates {
            condstore: false,
            qresync: false,
            recent: true,
        }
    }

    fn selected(uids: &[u32]) -> Selected {
        Selected::new(
            mailbox(),
            Folder::Inbox,
            false,
            uids.iter().map(|u| member(*u, "")).collect(),
        )
    }

    #[test]
    fn sequence_numbers_and_uids_resolve() {
        let s = selected(&[3, 5, 9]);
        assert_eq!(s.resolve(&set("1:*"), false).ok(), Some(vec![0, 1, 2]));
        assert_eq!(s.resolve(&set("2"), false).ok(), Some(vec![1]));
        assert!(s.resolve(&set("4"), false).is_err());
        assert_eq!(s.resolve(&set("4:9"), true).ok(), Some(vec![1, 2]));
        assert_eq!(s.resolve(&set("*"), true).ok(), Some(vec![2]));
        assert_eq!(s.resolve(&set("100:*"), true).ok(), Some(vec![2]));
        assert_eq!(s.resolve(&set("10:20"), true).ok(), Some(vec![]));
        assert_eq!(s.resolve(&set("3,1,3"), false).ok(), Some(vec![0, 2]));
    }

    proptest::proptest! {
        /// Ranges found by binary search pick what checking every message
        /// against every range picks.
        #[test]
        fn resolving_equals_checking_each_message(
            uids in proptest::collection::btree_set(1u32..60, 0..25),
            parts in proptest::collection::vec((1u32..70, 0u32..70, proptest::bool::ANY), 1..5),
        ) {
            let uids: Vec<u32> = uids.into_iter().collect();
            let s = selected(&uids);
            let text = parts
                .iter()
                .map(|(a, b, star)| match (star, b) {
                    (true, _) => format!("{a}:*"),
                    (false, 0) => a.to_string(),
                    (false, b) => format!("{a}:{b}"),
                })
                .collect::<Vec<_>>()
                .join(",");
            let wanted = |uid_mode: bool| -> Option<Vec<usize>> {
                let largest = if uid_mode { s.max_uid() } else { uids.len() as u32 };
                let ranges: Vec<(u32, u32)> = parts
                    .iter()
                    .map(|(a, b, star)| {
                        let b = if *star { largest } else if *b == 0 { *a } else { *b };
                        ((*a).min(b), (*a).max(b))
                    })
                    .collect();
                let inside = |n: u32| ranges.iter().any(|(a, b)| (*a..=*b).contains(&n));
                if uid_mode {
                    Some((0..uids.len()).filter(|i| inside(uids[*i])).collect())
                } else if ranges.iter().any(|(_, b)| *b > largest) {
                    None
                } else {
                    Some((0..uids.len()).filter(|i| inside(*i as u32 + 1)).collect())
                }
            };
            proptest::prop_assert_eq!(s.resolve(&set(&text), true).ok(), wanted(true), "{}", text);
            proptest::prop_assert_eq!(s.resolve(&set(&text), false).ok(), wanted(false), "{}", text);
        }
    }

    #[test]
    fn updates_become_expunge_exists_and_fetch() {
        let mut s = selected(&[3, 5, 9]);
        let mut out = Vec::new();
        let members = vec![member(3, "\\Seen"), member(9, ""), member(11, "")];
        let reported = s.apply(mailbox(), members, u32::MAX, true, rev1(), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* 2 EXPUNGE\r\n* 1 FETCH (UID 3 FLAGS (\\Seen))\r\n* 3 EXISTS\r\n* 0 RECENT\r\n"
        );
        assert_eq!(reported.len(), 1);
        assert_eq!(
            s.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![3, 9, 11]
        );
    }

    #[test]
    fn qresync_hears_vanished_uids() {
        let mut s = selected(&[3, 5, 6, 9]);
        let mut out = Vec::new();
        let updates = Updates {
            condstore: true,
            qresync: true,
            recent: true,
        };
        s.apply(
            mailbox(),
            vec![member(3, ""), member(11, "")],
            0,
            true,
            updates,
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* VANISHED 5:6,9\r\n* 2 EXISTS\r\n* 1 RECENT\r\n"
        );
    }

    /// Applying only the changes says and leaves what applying the whole
    /// membership did, in every mode.
    #[test]
    fn applying_changes_equals_applying_the_membership() {
        let cases: Vec<(Vec<Member>, Vec<u32>)> = vec![
            (
                vec![member(3, "\\Seen"), member(11, ""), member(12, "$urgent")],
                vec![5],
            ),
            (vec![member(11, "")], vec![]),
            (vec![member(9, "\\Flagged")], vec![3, 5, 9]),
            (vec![], vec![5, 6]),
            (vec![member(5, "x"), member(13, "")], vec![5]),
        ];
        for (changed, gone) in cases {
            for allow_expunge in [true, false] {
                for (qresync, recent) in [(true, false), (false, true), (false, false)] {
                    let updates = Updates {
                        condstore: qresync,
                        qresync,
                        recent,
                    };
                    let mut whole = selected(&[3, 5, 9]);
                    let mut delta = selected(&[3, 5, 9]);
                    let members = whole.members_after(changed.clone(), &gone);
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    let ra = whole.apply(mailbox(), members, 4, allow_expunge, updates, &mut a);
                    let rb = delta.apply_changes(
                        mailbox(),
                        (changed.clone(), gone.clone()),
                        4,
                        allow_expunge,
                        updates,
                        &mut b,
                    );
                    let case = format!("{changed:?} {gone:?} {allow_expunge} {qresync} {recent}");
                    assert_eq!(
                        String::from_utf8_lossy(&a),
                        String::from_utf8_lossy(&b),
                        "{case}"
                    );
                    assert_eq!(ra, rb, "{case}");
                    let uids = |s: &Selected| {
                        s.messages
                            .iter()
                            .map(|m| (m.uid, m.flags.clone(), m.modseq))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(uids(&whole), uids(&delta), "{case}");
                    assert_eq!(whole.recent, delta.recent, "{case}");
                    assert_eq!(whole.keywords, delta.keywords, "{case}");
                    assert_eq!(whole.held_back_at, delta.held_back_at, "{case}");
                    assert_eq!(whole.mailbox, delta.mailbox, "{case}");
                }
            }
        }
    }

    #[test]
    fn imap4rev2_hears_no_recent() {
        let mut s = selected(&[3]);
        let mut out = Vec::new();
        let updates = Updates {
            recent: false,
            ..rev1()
        };
        s.apply(
            mailbox(),
            vec![member(3, ""), member(4, "")],
            0,
            true,
            updates,
            &mut out,
        );
        assert_eq!(String::from_utf8_lossy(&out), "* 2 EXISTS\r\n");
        assert!(s.recent.is_empty());
        assert!(s.extra_flags(1).is_empty());
    }

    #[test]
    fn expunges_wait_when_not_allowed() {
        let mut s = selected(&[3, 5]);
        let mut out = Vec::new();
        s.apply(mailbox(), vec![member(3, "")], 0, false, rev1(), &mut out);
        assert!(out.is_empty());
        assert_eq!(s.messages.len(), 2);
        assert_eq!(s.mailbox.highestmodseq, 0, "the next refresh looks again");
        assert_eq!(s.held_back_at, Some(3), "the client knows all up to 3");
        s.apply(mailbox(), vec![member(3, "")], 0, true, rev1(), &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "* 2 EXPUNGE\r\n");
        assert_eq!(s.held_back_at, None);
    }
}
