//! What an IMAP keyword on a ticket's message means.
//!
//! Ticket tags are what a person chose as a tag (`#tag vip`, a tag set in
//! the mail client). Mail clients also keep their own bookkeeping in
//! keywords (Thunderbird's `Junk`/`NonJunk` from its classifier,
//! `$Forwarded`, neomutt's `Old`, Apple Mail's `$MailFlagBit0-2`): those
//! are one agent's marks on one message, kept per agent like `\Seen`, never
//! on the ticket, where they would reach every agent's view.
//!
//! `Junk`/`$Junk` and `NonJunk`/`$NotJunk` are both: the agent's own mark,
//! and a request to mark the ticket spam or restore it. Whether a Junk mark
//! may mark the ticket spam is [`junk_marks_spam`]: a client's classifier
//! sets it on its own, so it counts only where it cannot be classifier
//! noise about real work.

use super::commands::is_valid_tag;
use super::ticket::MessageKind;
use std::collections::BTreeSet;

/// Thunderbird's five default tags, stored as `$label1`…`$label5`
/// (Important, Work, Personal, To Do, Later).
pub const LABEL_COUNT: usize = 5;
pub const DEFAULT_LABEL_TAGS: [&str; LABEL_COUNT] =
    ["important", "work", "personal", "todo", "later"];

/// Keywords that are a client's bookkeeping, whatever their spelling's
/// case: Thunderbird, neomutt, Apple Mail, and RFC 5788's registry.
const BOOKKEEPING: &[&str] = &[
    "Junk",
    "NonJunk",
    "NotJunk",
    "Old",
    "Forwarded",
    "Redirected",
    "MDNSent",
    "Phishing",
];

/// What one keyword is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword {
    /// A ticket tag (lower-case).
    Tag(String),
    /// The agent's own mark on the message.
    Personal(String),
    /// The agent's own mark that also asks to mark the ticket spam.
    Junk(String),
    /// The agent's own mark that also asks to restore a spam ticket.
    NotJunk(String),
}

/// How keywords map to tags: Thunderbird's `$labelN` stand for the
/// configured tag names, both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordMap {
    /// The tag `$label{i+1}` stands for.
    labels: Vec<String>,
}

impl Default for KeywordMap {
    fn default() -> Self {
        KeywordMap::new(DEFAULT_LABEL_TAGS.iter().map(|t| t.to_string()).collect())
    }
}

impl KeywordMap {
    /// `labels[i]` is the tag of `$label{i+1}` (at most five; names that
    /// are not valid tags are skipped).
    pub fn new(labels: Vec<String>) -> KeywordMap {
        KeywordMap {
            labels: labels
                .into_iter()
                .take(LABEL_COUNT)
                .map(|l| l.to_lowercase())
                .collect(),
        }
    }

    fn label_tag(&self, keyword: &str) -> Option<&str> {
        let lower = keyword.to_ascii_lowercase();
        let n: usize = lower.strip_prefix("$label")?.parse().ok()?;
        self.labels
            .get(n.checked_sub(1)?)
            .map(String::as_str)
            .filter(|t| is_valid_tag(t))
    }

    /// The `$labelN` keyword that shows this tag, if any.
    pub fn label_of(&self, tag: &str) -> Option<String> {
        self.labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(tag) && is_valid_tag(l))
            .map(|i| format!("$label{}", i + 1))
    }

    /// The keywords to announce in FLAGS besides the tags in use: the
    /// labels, so that a client may set them.
    pub fn labels(&self) -> Vec<String> {
        (0..self.labels.len())
            .filter(|i| is_valid_tag(&self.labels[*i]))
            .map(|i| format!("$label{}", i + 1))
            .collect()
    }

    pub fn classify(&self, keyword: &str) -> Keyword {
        if let Some(tag) = self.label_tag(keyword) {
            return Keyword::Tag(tag.to_string());
        }
        let bare = keyword.strip_prefix('$').unwrap_or(keyword);
        if bare.eq_ignore_ascii_case("Junk") {
            return Keyword::Junk(keyword.to_string());
        }
        if bare.eq_ignore_ascii_case("NonJunk") || bare.eq_ignore_ascii_case("NotJunk") {
            return Keyword::NotJunk(keyword.to_string());
        }
        // Every `$` keyword is a client's (RFC 5788 reserves the prefix for
        // registered and vendor keywords): `$MailFlagBit0`, `$Submitted`,
        // `$HasAttachment`, `$Forwarded`, `$MDNSent`, `$Phishing`…
        if keyword.starts_with('$')
            || BOOKKEEPING.iter().any(|b| b.eq_ignore_ascii_case(keyword))
            || !is_valid_tag(&keyword.to_lowercase())
        {
            return Keyword::Personal(keyword.to_string());
        }
        Keyword::Tag(keyword.to_lowercase())
    }

    /// The keywords a ticket's tags show as: each tag, and its `$labelN`
    /// where it has one (Thunderbird shows its Important tag for
    /// `important`).
    pub fn shown<'a>(&self, tags: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut shown = Vec::new();
        for tag in tags {
            shown.push(tag.clone());
            if let Some(label) = self.label_of(tag) {
                shown.push(label);
            }
        }
        shown
    }

    /// What a STORE that turns the flags `before` into `after` asks: tags
    /// to add and remove, the agent's own keywords to add and remove, and
    /// whether Junk or NotJunk was newly set. Read keyword by keyword: a
    /// tag goes when any of its spellings (`important`, `$label1`) was
    /// taken away, and comes when one was put on.
    pub fn changes(&self, before: &str, after: &str) -> KeywordChanges {
        let keywords = |flags: &str| -> Vec<String> {
            flags
                .split(' ')
                .filter(|f| !f.is_empty() && !f.starts_with('\\'))
                .map(String::from)
                .collect()
        };
        let before = keywords(before);
        let after = keywords(after);
        let has = |list: &[String], k: &str| list.iter().any(|x| x.eq_ignore_ascii_case(k));
        let is_junk = |k: &String| matches!(self.classify(k), Keyword::Junk(_));
        let is_not_junk = |k: &String| matches!(self.classify(k), Keyword::NotJunk(_));
        let mut changes = KeywordChanges {
            junk_set: after.iter().any(is_junk) && !before.iter().any(is_junk),
            not_junk_set: after.iter().any(is_not_junk) && !before.iter().any(is_not_junk),
            ..KeywordChanges::default()
        };
        let mut add_tags = BTreeSet::new();
        let mut remove_tags = BTreeSet::new();
        for keyword in after.iter().filter(|k| !has(&before, k)) {
            match self.classify(keyword) {
                Keyword::Tag(tag) => {
                    add_tags.insert(tag);
                }
                Keyword::Personal(k) | Keyword::Junk(k) | Keyword::NotJunk(k) => {
                    changes.add_own.push(k)
                }
            }
        }
        for keyword in before.iter().filter(|k| !has(&after, k)) {
            match self.classify(keyword) {
                Keyword::Tag(tag) => {
                    if !add_tags.contains(&tag) {
                        remove_tags.insert(tag);
                    }
                }
                Keyword::Personal(k) | Keyword::Junk(k) | Keyword::NotJunk(k) => {
                    changes.remove_own.push(k)
                }
            }
        }
        changes.add_tags = add_tags.into_iter().collect();
        changes.remove_tags = remove_tags.into_iter().collect();
        changes
    }
}

/// See [`KeywordMap::changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeywordChanges {
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub add_own: Vec<String>,
    pub remove_own: Vec<String>,
    pub junk_set: bool,
    pub not_junk_set: bool,
}

/// What decides whether a Junk mark on a message is the agent's word
/// about the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JunkFacts {
    pub kind: MessageKind,
    /// The message opened its ticket (the ticket's first message).
    pub opened_ticket: bool,
    /// An agent wrote in the ticket (a reply or a note): someone worked on it.
    pub agents_wrote: bool,
    /// The sender wrote to us before: an earlier ticket of theirs that is
    /// not spam, or they are one of our agents.
    pub sender_known: bool,
}

/// A Junk mark marks the ticket spam only on the message that opened the
/// ticket, from a sender with no history, in a ticket nobody worked on,
/// and only when the agent who marks it has read it (`read_by_marker`, the
/// message `\Seen` for them once the mark is stored).
///
/// Anything else is a client's classifier talking. Thunderbird's marks an
/// agent's own reply or a regular customer's mail as readily as spam, and
/// it and Apple Mail's junk filters mark new mail as it arrives, unread
/// (Thunderbird fetches it with BODY.PEEK, then stores `Junk`). A person
/// presses the junk button on a message they are looking at, which the
/// client has marked read. Such a mark stays the agent's own keyword. An
/// agent who means it moves the message to Junk, which always counts.
pub fn junk_marks_spam(facts: &JunkFacts, read_by_marker: bool) -> bool {
    read_by_marker
        && facts.kind == MessageKind::Customer
        && facts.opened_ticket
        && !facts.agents_wrote
        && !facts.sender_known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_bookkeeping_is_personal_and_tags_are_tags() {
        let map = KeywordMap::default();
        for keyword in [
            "Old",
            "$Forwarded",
            "$MDNSent",
            "$Phishing",
            "$MailFlagBit0",
            "$MailFlagBit1",
            "$MailFlagBit2",
            "$SubmitPending",
            "$Submitted",
            "$HasAttachment",
            "$HasNoAttachment",
            "$Anything",
            "forwarded",
        ] {
            assert_eq!(
                map.classify(keyword),
                Keyword::Personal(keyword.to_string()),
                "{keyword}"
            );
        }
        assert_eq!(map.classify("Junk"), Keyword::Junk("Junk".into()));
        assert_eq!(map.classify("$Junk"), Keyword::Junk("$Junk".into()));
        assert_eq!(map.classify("NonJunk"), Keyword::NotJunk("NonJunk".into()));
        assert_eq!(
            map.classify("$NotJunk"),
            Keyword::NotJunk("$NotJunk".into())
        );
        assert_eq!(map.classify("VIP"), Keyword::Tag("vip".into()));
        assert_eq!(map.classify("billing"), Keyword::Tag("billing".into()));
    }

    #[test]
    fn labels_map_to_configured_tags_both_ways() {
        let map = KeywordMap::default();
        assert_eq!(map.classify("$label1"), Keyword::Tag("important".into()));
        assert_eq!(map.classify("$Label5"), Keyword::Tag("later".into()));
        assert_eq!(map.classify("$label6"), Keyword::Personal("$label6".into()));
        assert_eq!(
            map.shown(&["important".to_string(), "vip".to_string()]),
            vec!["important", "$label1", "vip"]
        );
        let custom = KeywordMap::new(vec!["urgent-ish".into(), "Billing".into()]);
        assert_eq!(custom.classify("$label2"), Keyword::Tag("billing".into()));
        assert_eq!(
            custom.classify("$label3"),
            Keyword::Personal("$label3".into())
        );
        assert_eq!(custom.labels(), vec!["$label1", "$label2"]);
    }

    #[test]
    fn a_store_splits_into_tags_own_marks_and_junk() {
        let map = KeywordMap::default();
        // Thunderbird's junk button: +FLAGS (Junk), then -FLAGS (NonJunk).
        let c = map.changes("\\Seen NonJunk vip", "\\Seen Junk NonJunk vip");
        assert!(c.junk_set && !c.not_junk_set);
        assert_eq!(c.add_own, vec!["Junk"]);
        assert!(c.add_tags.is_empty() && c.remove_tags.is_empty());
        let c = map.changes("Junk NonJunk vip", "Junk vip");
        assert!(!c.junk_set);
        assert_eq!(c.remove_own, vec!["NonJunk"]);
        // A label and its tag are one tag: taking either spelling away
        // (Thunderbird removes only `$label1`) removes it.
        let c = map.changes("$label1 important", "important");
        assert_eq!(c.remove_tags, vec!["important"]);
        let c = map.changes("$label1 important", "$label1");
        assert_eq!(c.remove_tags, vec!["important"]);
        let c = map.changes("important", "$label1 important");
        assert!(c.remove_tags.is_empty() && c.add_own.is_empty());
        let c = map.changes("", "$label2 Old");
        assert_eq!(c.add_tags, vec!["work"]);
        assert_eq!(c.add_own, vec!["Old"]);
    }

    #[test]
    fn only_a_first_message_from_a_stranger_in_an_untouched_ticket_is_spam() {
        let stranger = JunkFacts {
            kind: MessageKind::Customer,
            opened_ticket: true,
            agents_wrote: false,
            sender_known: false,
        };
        assert!(junk_marks_spam(&stranger, true));
        // A filter's mark on mail nobody has read yet.
        assert!(!junk_marks_spam(&stranger, false));
        for noise in [
            JunkFacts {
                kind: MessageKind::Reply,
                ..stranger.clone()
            },
            JunkFacts {
                kind: MessageKind::Note,
                ..stranger.clone()
            },
            JunkFacts {
                opened_ticket: false,
                ..stranger.clone()
            },
            JunkFacts {
                agents_wrote: true,
                ..stranger.clone()
            },
            JunkFacts {
                sender_known: true,
                ..stranger.clone()
            },
        ] {
            assert!(!junk_marks_spam(&noise, true), "{noise:?}");
        }
    }
}
