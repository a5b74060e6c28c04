//! QRESYNC (RFC 7162 §3.2): quick resynchronization. A client that knew
//! a mailbox at some MODSEQ is told, on SELECT or UID FETCH, which UIDs it
//! may know vanished since (`VANISHED (EARLIER)`) and which messages
//! changed (FETCH with FLAGS and MODSEQ); once QRESYNC is enabled,
//! expunges are announced as `VANISHED` UID sets instead of EXPUNGE.
//!
//! The answer comes from the mailbox's record of expunged UIDs
//! (`imap_expunged`). When that record no longer reaches back to the
//! client's MODSEQ, every UID the client may know that is not in the
//! mailbox any more is reported: RFC 7162 §3.2.5.2 allows UIDs expunged
//! earlier in the list, and a client that asks for them learns nothing
//! wrong from it. seq-match-data only helps a server without such a
//! record narrow its answer, so it is accepted and not needed.

use super::selected::Selected;
use super::session::{ImapSession, Reply};
use crate::store::StoreError;
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// Inclusive UID ranges named by a set, `*` standing for `largest`;
/// sorted and merged.
pub fn uid_ranges(set: &SequenceSet, largest: u32) -> Vec<(u32, u32)> {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut ranges: Vec<(u32, u32)> = set
        .0
        .as_ref()
        .iter()
        .map(|seq| match seq {
            Sequence::Single(v) => (value(v), value(v)),
            Sequence::Range(a, b) => {
                let (a, b) = (value(a), value(b));
                (a.min(b), a.max(b))
            }
        })
        .collect();
    merge(&mut ranges);
    ranges
}

fn merge(ranges: &mut Vec<(u32, u32)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for &(a, b) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *ranges = merged;
}

/// The UIDs within `known` (sorted, merged ranges) that vanished: those of
/// `log` (the UIDs that left since the client's MODSEQ) when the record
/// reaches back that far, else every UID below `uidnext` that is not
/// `present` (sorted ascending). A present UID is never reported.
pub fn vanished(
    known: &[(u32, u32)],
    log: Option<&[u32]>,
    present: &[u32],
    uidnext: u32,
) -> Vec<(u32, u32)> {
    let below = uidnext.saturating_sub(1);
    let mut out: Vec<(u32, u32)> = Vec::new();
    match log {
        Some(log) => {
            for &uid in log {
                let wanted = known.iter().any(|(a, b)| (*a..=*b).contains(&uid));
                if wanted && present.binary_search(&uid).is_err() {
                    out.push((uid, uid));
                }
            }
            merge(&mut out);
        }
        None => {
            // The complement of `present` in each known range, walking both
            // in order: cost by the number of messages, not of UIDs.
            for &(a, b) in known {
                let b = b.min(below);
                if a > b {
                    continue;
                }
                let mut next = a;
                let start = present.partition_point(|uid| *uid < a);
                for &uid in &present[start..] {
                    if uid > b {
                        break;
                    }
                    if uid > next {
                        out.push((next, uid - 1));
                    }
                    next = uid.saturating_add(1);
                }
                if next <= b && next >= a {
                    out.push((next, b));
                }
            }
            merge(&mut out);
        }
    }
    out
}

/// `1:3,7,9:12`.
pub fn write_ranges(ranges: &[(u32, u32)]) -> String {
    let mut text = String::new();
    for (i, (a, b)) in ranges.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        if a == b {
            text.push_str(&a.to_string());
        } else {
            text.push_str(&format!("{a}:{b}"));
        }
    }
    text
}

/// What a client asked for with `SELECT box (QRESYNC (…))`.
pub struct Resync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

impl Resync {
    /// The QRESYNC parameter of a SELECT, if any.
    pub fn of(parameters: &[SelectParameter]) -> Option<Resync> {
        parameters.iter().find_map(|p| match p {
            SelectParameter::QResync {
                uid_validity,
                mod_sequence_value,
                known_uids,
                ..
            } => Some(Resync {
                uidvalidity: uid_validity.get(),
                modseq: mod_sequence_value.get(),
                known_uids: known_uids.clone(),
            }),
            SelectParameter::CondStore => None,
        })
    }
}

impl ImapSession {
    /// Writes `* VANISHED (EARLIER) …` for the UIDs of `known` (all UIDs
    /// when None) that left `selected` after `modseq`; nothing when none did.
    pub async fn write_vanished_earlier(
        &mut self,
        selected: &Selected,
        modseq: u64,
        known: Option<&SequenceSet>,
    ) -> Result<(), StoreError> {
        let largest = selected
            .mailbox
            .uidnext
            .saturating_sub(1)
            .max(selected.max_uid());
        let known = match known {
            Some(set) => uid_ranges(set, largest),
            None => vec![(1, largest)],
        };
        let uidnext = largest.saturating_add(1);
        let log = self
            .app
            .store
            .imap_vanished_since(selected.mailbox.id, modseq)
            .await?;
        let present: Vec<u32> = selected.messages.iter().map(|m| m.uid).collect();
        let gone = vanished(&known, log.as_deref(), &present, uidnext);
        if !gone.is_empty() {
            self.out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", write_ranges(&gone)).as_bytes(),
            );
        }
        Ok(())
    }

    /// The rest of a `SELECT (QRESYNC …)` answer, after the usual one:
    /// what vanished, then FETCH FLAGS MODSEQ of every message changed
    /// since the client's MODSEQ. Nothing when the UIDVALIDITY differs
    /// (the client must forget the mailbox).
    pub async fn resync(&mut self, selected: &Selected, resync: &Resync) -> Result<(), Reply> {
        if resync.uidvalidity != selected.mailbox.uidvalidity {
            return Ok(());
        }
        self.write_vanished_earlier(selected, resync.modseq, resync.known_uids.as_ref())
            .await?;
        for index in 0..selected.messages.len() {
            if selected.messages[index].modseq > resync.modseq {
                selected.write_flags_update(&mut self.out, index, true);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_answers_within_the_known_uids() {
        let known = [(1, 10), (20, 30)];
        let log = [3, 4, 5, 12, 25, 40];
        assert_eq!(
            vanished(&known, Some(&log), &[1, 2, 6], 50),
            vec![(3, 5), (25, 25)]
        );
        assert_eq!(write_ranges(&[(3, 5), (25, 25)]), "3:5,25");
    }

    #[test]
    fn without_the_log_every_missing_uid_is_reported() {
        assert_eq!(
            vanished(&[(1, 100)], None, &[2, 3, 7], 9),
            vec![(1, 1), (4, 6), (8, 8)]
        );
        assert_eq!(vanished(&[(2, 3)], None, &[2, 3, 7], 9), vec![]);
        assert_eq!(vanished(&[(1, 4_000_000_000)], None, &[], 4), vec![(1, 3)]);
    }

    #[test]
    fn a_present_uid_never_vanishes() {
        assert_eq!(vanished(&[(1, 9)], Some(&[4, 5]), &[5], 10), vec![(4, 4)]);
    }
}
