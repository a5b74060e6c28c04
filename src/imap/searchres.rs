//! SEARCHRES (RFC 5182, part of IMAP4rev2): `SEARCH RETURN (SAVE)` keeps
//! its result in the session, and `$` names it wherever a sequence set
//! goes: FETCH, STORE, COPY, MOVE, UID EXPUNGE and their UID forms, and
//! SEARCH keys (`$` and `UID $`).
//!
//! The result is kept as UIDs, so a message expunged since drops out of it
//! and `$` means the same messages in UID and sequence-number commands.
//! imap-codec reads no `$`: a command using it is handed to the codec with
//! the saved messages written out in its place.

use super::extended::{Token, next_token, sequence_set};
use super::selected::Selected;

/// A command as the codec should read it.
#[derive(Debug, PartialEq, Eq)]
pub enum Substituted {
    /// No `$` where a sequence set goes.
    Unchanged,
    /// `$` written out as the saved messages.
    Rewritten(Vec<u8>),
    /// A FETCH, STORE, COPY, MOVE or UID EXPUNGE (named) whose `$` names
    /// no message, or one sent with no mailbox selected: nothing to do
    /// (and no sequence set to write, as none may be empty).
    Empty(&'static str),
}

/// What takes the place of a `$`.
#[derive(Debug, Clone, Copy)]
enum Replacement {
    /// The saved messages' sequence numbers (a sequence set).
    Numbers,
    /// `UID $` as a search key: their UIDs.
    UidKey,
    /// Their UIDs (the sequence set of a UID command).
    Uids,
}

/// `message` with `$` replaced by the messages of `saved` (UIDs, ascending)
/// still in `selected`.
pub fn substitute(message: &[u8], selected: Option<&Selected>, saved: &[u32]) -> Substituted {
    let Some((Token::Atom(_), pos)) = next_token(message, 0) else {
        return Substituted::Unchanged;
    };
    let Some((mut word, mut pos)) = next_token(message, pos) else {
        return Substituted::Unchanged;
    };
    let uid = word.is_atom("UID");
    if uid {
        let Some(next) = next_token(message, pos) else {
            return Substituted::Unchanged;
        };
        (word, pos) = next;
    }
    let Some(command) = ["FETCH", "STORE", "COPY", "MOVE", "EXPUNGE", "SEARCH"]
        .into_iter()
        .find(|c| word.is_atom(c))
    else {
        return Substituted::Unchanged;
    };
    let mut edits: Vec<(usize, usize, Replacement)> = Vec::new();
    if command == "SEARCH" {
        let mut walk = Walk {
            input: message,
            edits: Vec::new(),
        };
        if walk.keys(pos, false).is_none() {
            // Malformed: the codec says so.
            return Substituted::Unchanged;
        }
        edits = walk.edits;
    } else if command != "EXPUNGE" || uid {
        let start = skip_spaces(message, pos);
        if let Some((set, end)) = next_token(message, start)
            && set.is_atom("$")
        {
            let kind = if uid {
                Replacement::Uids
            } else {
                Replacement::Numbers
            };
            edits.push((start, end, kind));
        }
    }
    if edits.is_empty() {
        return Substituted::Unchanged;
    }
    let Some(selected) = selected else {
        return Substituted::Empty(command);
    };
    let mut uids = Vec::new();
    let mut numbers = Vec::new();
    for (index, m) in selected.messages.iter().enumerate() {
        if saved.binary_search(&m.uid).is_ok() {
            uids.push(m.uid);
            numbers.push(index as u32 + 1);
        }
    }
    if uids.is_empty() && command != "SEARCH" {
        return Substituted::Empty(command);
    }
    let mut out = Vec::with_capacity(message.len() + 32);
    let mut copied = 0;
    for (start, end, kind) in edits {
        out.extend_from_slice(&message[copied..start]);
        let text = match (kind, uids.is_empty()) {
            // A key that matches nothing, for a SEARCH.
            (Replacement::Numbers | Replacement::UidKey, true) => "NOT ALL".to_string(),
            (Replacement::Numbers, false) => sequence_set(&numbers),
            (Replacement::UidKey, false) => format!("UID {}", sequence_set(&uids)),
            (Replacement::Uids, _) => sequence_set(&uids),
        };
        out.extend_from_slice(text.as_bytes());
        copied = end;
    }
    out.extend_from_slice(&message[copied..]);
    Substituted::Rewritten(out)
}

fn skip_spaces(input: &[u8], mut pos: usize) -> usize {
    while input.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

/// Walks SEARCH arguments and notes where `$` stands for a sequence set
/// (and not for a string: `SUBJECT $` searches for a dollar sign).
struct Walk<'a> {
    input: &'a [u8],
    edits: Vec<(usize, usize, Replacement)>,
}

impl Walk<'_> {
    /// The keys from `pos` to the end of the line (or of the parenthesized
    /// list, `nested`); returns where they end. None when malformed.
    fn keys(&mut self, mut pos: usize, nested: bool) -> Option<usize> {
        loop {
            pos = skip_spaces(self.input, pos);
            match self.input.get(pos) {
                None | Some(b'\r' | b'\n') => return (!nested).then_some(pos),
                Some(b')') => return nested.then_some(pos + 1),
                Some(b'(') => pos = self.keys(pos + 1, true)?,
                Some(_) => {
                    let start = pos;
                    let (token, end) = next_token(self.input, pos)?;
                    pos = end;
                    let Token::Atom(word) = &token else {
                        continue;
                    };
                    if word == b"$" {
                        self.edits.push((start, end, Replacement::Numbers));
                        continue;
                    }
                    let arguments = match word.to_ascii_uppercase().as_slice() {
                        b"UID" => {
                            let (set, after) = next_token(self.input, pos)?;
                            if set.is_atom("$") {
                                self.edits.push((start, after, Replacement::UidKey));
                            }
                            pos = after;
                            continue;
                        }
                        b"HEADER" => 2,
                        // RFC 7162: MODSEQ [entry-name entry-type] value.
                        b"MODSEQ" => match next_token(self.input, pos) {
                            Some((Token::String(_), _)) => 3,
                            _ => 1,
                        },
                        b"BCC" | b"BODY" | b"CC" | b"FROM" | b"SUBJECT" | b"TEXT" | b"TO"
                        | b"KEYWORD" | b"UNKEYWORD" | b"BEFORE" | b"ON" | b"SINCE"
                        | b"SENTBEFORE" | b"SENTON" | b"SENTSINCE" | b"LARGER" | b"SMALLER"
                        | b"YOUNGER" | b"OLDER" | b"CHARSET" | b"RETURN" => 1,
                        _ => 0,
                    };
                    for _ in 0..arguments {
                        pos = next_token(self.input, pos)?.1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::views::Folder;
    use crate::store::{Mailbox, Member, MessageRef};

    fn selected(uids: &[u32]) -> Selected {
        let mailbox = Mailbox {
            id: 1,
            agent_id: 1,
            name: "Projects".into(),
            uidvalidity: 1,
            uidnext: 100,
            highestmodseq: 1,
            subscribed: true,
            recent_uid: 0,
        };
        let members = uids
            .iter()
            .map(|uid| Member {
                uid: *uid,
                message: MessageRef::Ticket(i64::from(*uid)),
                flags: String::new(),
                modseq: 1,
            })
            .collect();
        Selected::new(mailbox, Folder::Personal("Projects".into()), false, members)
    }

    fn rewritten(message: &str, s: &Selected, saved: &[u32]) -> String {
        match substitute(message.as_bytes(), Some(s), saved) {
            Substituted::Rewritten(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            other => panic!("{message}: {other:?}"),
        }
    }

    #[test]
    fn dollar_becomes_the_saved_messages() {
        let s = selected(&[3, 5, 6, 9]);
        // UIDs 5, 6, 9 are messages 2:4; UID 7 is gone.
        let saved = [5, 6, 7, 9];
        assert_eq!(
            rewritten("a FETCH $ (FLAGS)\r\n", &s, &saved),
            "a FETCH 2:4 (FLAGS)\r\n"
        );
        assert_eq!(
            rewritten("a UID STORE $ +FLAGS (\\Seen)\r\n", &s, &saved),
            "a UID STORE 5:6,9 +FLAGS (\\Seen)\r\n"
        );
        assert_eq!(
            rewritten("a uid move $ Archive\r\n", &s, &saved),
            "a uid move 5:6,9 Archive\r\n"
        );
        assert_eq!(
            rewritten("a UID EXPUNGE $\r\n", &s, &saved),
            "a UID EXPUNGE 5:6,9\r\n"
        );
        assert_eq!(
            rewritten("a SEARCH RETURN (SAVE) (OR $ SEEN) UID $\r\n", &s, &saved),
            "a SEARCH RETURN (SAVE) (OR 2:4 SEEN) UID 5:6,9\r\n"
        );
        // An empty result in a SEARCH matches nothing.
        assert_eq!(
            rewritten("a UID SEARCH NOT $ UID $\r\n", &s, &[]),
            "a UID SEARCH NOT NOT ALL NOT ALL\r\n"
        );
    }

    #[test]
    fn a_dollar_that_is_a_string_stays() {
        let s = selected(&[3]);
        for message in [
            "a SEARCH SUBJECT $\r\n",
            "a SEARCH HEADER X-Price $\r\n",
            "a SEARCH KEYWORD $ FROM \"$\"\r\n",
            "a FETCH 1 (FLAGS)\r\n",
            "a EXPUNGE\r\n",
            "a COPY 1 $\r\n",
            "a SEARCH {1}\r\n$\r\n",
        ] {
            assert_eq!(
                substitute(message.as_bytes(), Some(&s), &[3]),
                Substituted::Unchanged,
                "{message}"
            );
        }
    }

    #[test]
    fn nothing_saved_leaves_nothing_to_do() {
        let s = selected(&[3, 5]);
        assert_eq!(
            substitute(b"a FETCH $ FLAGS\r\n", Some(&s), &[4]),
            Substituted::Empty("FETCH")
        );
        assert_eq!(
            substitute(b"a UID COPY $ Archive\r\n", None, &[3]),
            Substituted::Empty("COPY")
        );
    }
}
