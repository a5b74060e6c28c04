//! The IMAP folder model (DESIGN.md §4): which folders an agent sees, which
//! tickets each view holds, and what moving a message into a view does to
//! its ticket.
//!
//! Pure: the store turns a [`ViewFilter`] into SQL and a move becomes a
//! [`TicketChange`] (see `change`); the IMAP session only maps names to
//! [`Folder`]s.

use super::change::TicketChange;
use super::ticket::{Disposition, Priority, Status};
use std::collections::{BTreeSet, HashMap};

/// The hierarchy delimiter of every mailbox name.
pub const DELIMITER: char = '/';
pub const QUEUES: &str = "Queues";
/// Thunderbird's name for the templates folder (RFC 6154 has no special
/// use for it; clients find it by this name).
pub const TEMPLATES: &str = "Templates";
/// The knowledge base's folders (issue 19): `Knowledge` (every published
/// article), `Knowledge/<category>`, `Knowledge/Drafts`.
pub const KNOWLEDGE: &str = "Knowledge";
const KNOWLEDGE_DRAFTS: &str = "Drafts";

/// A mailbox as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Folder {
    /// Open tickets I own.
    Inbox,
    /// Open tickets of my queues that nobody owns.
    Unassigned,
    /// All open tickets of my queues (the parent of the per-queue folders).
    Queues,
    /// All open tickets of one queue.
    Queue(String),
    /// Open tickets with priority high or urgent, and overdue ones.
    Urgent,
    /// Open tickets with a breached SLA clock.
    Overdue,
    /// Pending tickets: waiting on the customer.
    Waiting,
    /// Resolved and closed tickets (recent ones).
    Closed,
    /// Tickets marked as spam.
    Junk,
    /// Softly deleted tickets.
    Trash,
    /// The agent's own storage: sent copies, drafts, personal folders.
    Sent,
    Drafts,
    /// The agent's replies held by a collision (issue 20): real storage,
    /// written by postdesk; deleting one there discards it.
    Held,
    /// The team's shared templates of my queues (stored as copies in a
    /// storage folder of mine, kept in line with the templates table).
    Templates,
    Personal(String),
    // Knowledge base (issue 19): read-only views of articles, one message
    // per article (its newest revision).
    /// Every published article.
    Knowledge,
    /// The published articles of one category; the name as the folder
    /// shows it (modified UTF-7, [`super::mailbox_name::encode`]).
    KnowledgeCategory(String),
    /// Draft articles (agents edit them by replying).
    KnowledgeDrafts,
}

impl Folder {
    pub fn name(&self) -> String {
        match self {
            Folder::Inbox => "INBOX".into(),
            Folder::Unassigned => "Unassigned".into(),
            Folder::Queues => QUEUES.into(),
            Folder::Queue(queue) => format!("{QUEUES}{DELIMITER}{queue}"),
            Folder::Urgent => "Urgent".into(),
            Folder::Overdue => "Overdue".into(),
            Folder::Waiting => "Waiting".into(),
            Folder::Closed => "Closed".into(),
            Folder::Junk => "Junk".into(),
            Folder::Trash => "Trash".into(),
            Folder::Sent => "Sent".into(),
            Folder::Drafts => "Drafts".into(),
            Folder::Held => "Held".into(),
            Folder::Templates => TEMPLATES.into(),
            Folder::Personal(name) => name.clone(),
            Folder::Knowledge => KNOWLEDGE.into(),
            Folder::KnowledgeCategory(name) => format!("{KNOWLEDGE}{DELIMITER}{name}"),
            Folder::KnowledgeDrafts => format!("{KNOWLEDGE}{DELIMITER}{KNOWLEDGE_DRAFTS}"),
        }
    }

    /// Reads a mailbox name. `queues` are the queues the agent may see: a
    /// `Queues/x` name for another queue is not a view (and cannot be created).
    pub fn parse(name: &str, queues: &[String]) -> Folder {
        if name.eq_ignore_ascii_case("INBOX") {
            return Folder::Inbox;
        }
        if let Some(queue) = name
            .strip_prefix(QUEUES)
            .and_then(|rest| rest.strip_prefix(DELIMITER))
            && let Some(known) = queues.iter().find(|q| q.as_str() == queue)
        {
            return Folder::Queue(known.clone());
        }
        if let Some(folder) = Self::alias(name) {
            return folder;
        }
        if let Some(category) = name
            .strip_prefix(KNOWLEDGE)
            .and_then(|rest| rest.strip_prefix(DELIMITER))
            .filter(|c| !c.is_empty() && !c.contains(DELIMITER))
        {
            return if category == KNOWLEDGE_DRAFTS {
                Folder::KnowledgeDrafts
            } else {
                Folder::KnowledgeCategory(category.to_string())
            };
        }
        Self::fixed()
            .into_iter()
            .find(|folder| folder.name() == name)
            .unwrap_or_else(|| Folder::Personal(name.to_string()))
    }

    /// The names Outlook gives the special folders when it finds none
    /// (it creates and uses them by name): they are the special folders,
    /// never personal folders that would swallow what a move there means.
    pub fn alias(name: &str) -> Option<Folder> {
        const ALIASES: [(&str, Folder); 4] = [
            ("Sent Items", Folder::Sent),
            ("Deleted Items", Folder::Trash),
            ("Junk Email", Folder::Junk),
            ("Junk E-mail", Folder::Junk),
        ];
        ALIASES
            .into_iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
            .map(|(_, folder)| folder)
    }

    /// The folders every agent has, besides one per visible queue.
    pub fn fixed() -> Vec<Folder> {
        vec![
            Folder::Inbox,
            Folder::Unassigned,
            Folder::Queues,
            Folder::Urgent,
            Folder::Overdue,
            Folder::Waiting,
            Folder::Closed,
            Folder::Sent,
            Folder::Drafts,
            Folder::Held,
            Folder::Templates,
            Folder::Junk,
            Folder::Trash,
            Folder::Knowledge,
            Folder::KnowledgeDrafts,
        ]
    }

    /// Every folder of an agent who may see `queues`, personal ones aside.
    pub fn standard(queues: &[String]) -> Vec<Folder> {
        let mut folders = Self::fixed();
        folders.extend(queues.iter().cloned().map(Folder::Queue));
        folders
    }

    /// The special-use attribute (RFC 6154) of the folders that have one.
    /// Closed is the archive: a client's Archive button moves a message
    /// there, which closes its ticket like any move into Closed.
    pub fn special_use(&self) -> Option<&'static str> {
        match self {
            Folder::Sent => Some("\\Sent"),
            Folder::Drafts => Some("\\Drafts"),
            Folder::Junk => Some("\\Junk"),
            Folder::Trash => Some("\\Trash"),
            Folder::Closed => Some("\\Archive"),
            _ => None,
        }
    }

    /// Whether LIST marks the folder `\\Noinferiors` (no folder can be
    /// made under it): the archive, so that Thunderbird archives into it
    /// directly instead of into yearly subfolders it would try to create.
    pub fn has_no_inferiors(&self) -> bool {
        matches!(self, Folder::Closed)
    }

    /// The attribute Gmail's XLIST gives the folder (as Outlook 2013/2016
    /// read it): the special-use one, with XLIST's own names for INBOX and
    /// Junk.
    pub fn xlist_attribute(&self) -> Option<&'static str> {
        match self {
            Folder::Inbox => Some("\\Inbox"),
            Folder::Junk => Some("\\Spam"),
            other => other.special_use(),
        }
    }

    /// Views hold tickets' messages; the others hold the agent's own copies.
    pub fn is_view(&self) -> bool {
        !self.is_storage()
    }

    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            Folder::Sent | Folder::Drafts | Folder::Held | Folder::Templates | Folder::Personal(_)
        )
    }

    /// A view of tickets: changed only by the changes of its tickets
    /// (which are announced), and reconciled with them.
    pub fn is_ticket_view(&self) -> bool {
        self.is_view() && !self.is_knowledge()
    }

    /// A view of knowledge-base articles: always read-only.
    pub fn is_knowledge(&self) -> bool {
        matches!(
            self,
            Folder::Knowledge | Folder::KnowledgeCategory(_) | Folder::KnowledgeDrafts
        )
    }

    /// Whether this knowledge folder shows an article in this state and
    /// category (the category as a folder name, encoded).
    pub fn holds_article(&self, state: super::knowledge::ArticleState, category: &str) -> bool {
        use super::knowledge::ArticleState;
        match self {
            Folder::Knowledge => state == ArticleState::Published,
            Folder::KnowledgeCategory(name) => {
                state == ArticleState::Published && super::mailbox_name::encode(category) == *name
            }
            Folder::KnowledgeDrafts => state == ArticleState::Draft,
            _ => false,
        }
    }

    /// A name agents may not use for their own folders: every view's name
    /// and everything under `Queues/`, in any case (a personal
    /// `queues/support` would pass for the view in a client's list).
    pub fn is_reserved(name: &str) -> bool {
        let top = name.split(DELIMITER).next().unwrap_or(name);
        top.eq_ignore_ascii_case(QUEUES)
            || top.eq_ignore_ascii_case(KNOWLEDGE)
            || Self::alias(name).is_some()
            || Self::fixed()
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Which tickets the view holds; None for storage folders.
    pub fn filter(&self) -> Option<ViewFilter> {
        let open = ViewFilter {
            statuses: &[Status::New, Status::Open],
            ..ViewFilter::default()
        };
        Some(match self {
            Folder::Inbox => ViewFilter {
                owner: OwnerFilter::Me,
                ..open
            },
            Folder::Unassigned => ViewFilter {
                owner: OwnerFilter::Nobody,
                ..open
            },
            Folder::Queues => open,
            Folder::Queue(queue) => ViewFilter {
                queue: Some(queue.clone()),
                ..open
            },
            // High and urgent priority, and whatever is late.
            Folder::Urgent => ViewFilter {
                priorities: &[Priority::High, Priority::Urgent],
                or_overdue: true,
                ..open
            },
            // A running SLA clock past its due time (the scheduler sets
            // and clears the mark, so the folder changes without mail).
            Folder::Overdue => ViewFilter {
                overdue: true,
                ..open
            },
            Folder::Waiting => ViewFilter {
                statuses: &[Status::Pending],
                ..ViewFilter::default()
            },
            Folder::Closed => ViewFilter {
                statuses: &[Status::Resolved, Status::Closed],
                recently_done: true,
                ..ViewFilter::default()
            },
            Folder::Junk => ViewFilter {
                disposition: Some(Disposition::Spam),
                ..ViewFilter::default()
            },
            Folder::Trash => ViewFilter {
                disposition: Some(Disposition::Trash),
                ..ViewFilter::default()
            },
            Folder::Sent
            | Folder::Drafts
            | Folder::Held
            | Folder::Templates
            | Folder::Personal(_) => return None,
            // Articles, not tickets: see `holds_article`.
            Folder::Knowledge | Folder::KnowledgeCategory(_) | Folder::KnowledgeDrafts => {
                return None;
            }
        })
    }

    /// What moving (or copying) a ticket's message into this view does to
    /// the ticket. `Err` explains why it is refused.
    pub fn move_into(&self, me: i64) -> Result<TicketChange, &'static str> {
        let reopen = TicketChange {
            reopen: true,
            disposition: Some(None),
            ..TicketChange::default()
        };
        Ok(match self {
            Folder::Inbox => TicketChange {
                owner: Some(Some(me)),
                ..reopen
            },
            Folder::Unassigned => TicketChange {
                owner: Some(None),
                ..reopen
            },
            Folder::Queues => reopen,
            Folder::Queue(queue) => TicketChange {
                queue: Some(queue.clone()),
                ..reopen
            },
            Folder::Urgent => TicketChange {
                priority: Some(Priority::Urgent),
                ..reopen
            },
            Folder::Overdue => {
                return Err("Overdue is computed from SLA clocks; a ticket cannot be put there");
            }
            Folder::Waiting => TicketChange {
                status: Some(Status::Pending),
                disposition: Some(None),
                ..TicketChange::default()
            },
            Folder::Closed => TicketChange {
                status: Some(Status::Closed),
                disposition: Some(None),
                ..TicketChange::default()
            },
            Folder::Junk => TicketChange {
                disposition: Some(Some(Disposition::Spam)),
                ..TicketChange::default()
            },
            Folder::Trash => TicketChange {
                disposition: Some(Some(Disposition::Trash)),
                ..TicketChange::default()
            },
            Folder::Sent
            | Folder::Drafts
            | Folder::Held
            | Folder::Templates
            | Folder::Personal(_) => {
                return Err("not a view");
            }
            Folder::Knowledge | Folder::KnowledgeCategory(_) | Folder::KnowledgeDrafts => {
                return Err(
                    "Knowledge folders are read-only: mail the knowledge address to write or \
                     change an article (a reply to an article is its next revision)",
                );
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnerFilter {
    #[default]
    Anyone,
    Me,
    Nobody,
}

/// Which tickets a view holds (always within the agent's visible queues).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewFilter {
    /// Empty: any status.
    pub statuses: &'static [Status],
    /// Empty: any priority.
    pub priorities: &'static [Priority],
    pub owner: OwnerFilter,
    pub queue: Option<String>,
    /// None: tickets without a disposition only.
    pub disposition: Option<Disposition>,
    /// Only tickets done within the Closed window.
    pub recently_done: bool,
    /// Only overdue tickets (a running SLA clock past due).
    pub overdue: bool,
    /// `priorities`, or overdue whatever the priority.
    pub or_overdue: bool,
}

/// Flags as stored: sorted byte-wise, without duplicates, space-separated
/// (the same flags always give the same string).
pub fn join_flags<'a>(flags: impl IntoIterator<Item = &'a str>) -> String {
    let set: BTreeSet<&str> = flags.into_iter().filter(|f| !f.is_empty()).collect();
    set.into_iter().collect::<Vec<_>>().join(" ")
}

/// A view member's flags for one agent, derived from the ticket: `\Seen`
/// per agent, `\Answered` when an agent replied after it, `\Flagged` ⇔
/// urgent, keywords ⇔ the ticket's tags (as `keywords` shows them) and
/// the agent's `own` keywords (a client's bookkeeping, per agent).
pub fn derived_flags(
    seen: bool,
    answered: bool,
    urgent: bool,
    tags: &[String],
    own: &[String],
) -> String {
    let mut flags: Vec<&str> = Vec::with_capacity(3 + tags.len() + own.len());
    if seen {
        flags.push("\\Seen");
    }
    if answered {
        flags.push("\\Answered");
    }
    if urgent {
        flags.push("\\Flagged");
    }
    flags.extend(tags.iter().map(String::as_str));
    flags.extend(own.iter().map(String::as_str));
    join_flags(flags)
}

/// A STORE: replace the flags, add to them, or remove from them.
#[derive(Debug, Clone)]
pub enum FlagOp {
    Replace(Vec<String>),
    Add(Vec<String>),
    Remove(Vec<String>),
}

impl FlagOp {
    /// The new flag set. Keywords compare case-insensitively (RFC 3501 §2.3.2).
    pub fn apply(&self, current: &str) -> String {
        let has = |list: &[String], f: &str| list.iter().any(|x| x.eq_ignore_ascii_case(f));
        let current: Vec<String> = current
            .split(' ')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect();
        let next: Vec<String> = match self {
            FlagOp::Replace(flags) => flags.clone(),
            FlagOp::Add(flags) => {
                let mut next = current.clone();
                next.extend(flags.iter().filter(|f| !has(&current, f)).cloned());
                next
            }
            FlagOp::Remove(flags) => current.into_iter().filter(|f| !has(flags, f)).collect(),
        };
        join_flags(next.iter().map(String::as_str))
    }
}

/// How a view's materialized membership changes to show what it should
/// (see `store::imap`): UIDs ascend and are never reused, so a message that
/// left and came back gets a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// UIDs of members to remove (their ticket left the view, or they
    /// were not a ticket's message).
    pub gone: Vec<i64>,
    /// (uid, message, flags) of messages that entered, in message order.
    pub added: Vec<(i64, i64, String)>,
    /// (uid, flags) of members whose flags changed.
    pub reflagged: Vec<(i64, String)>,
    /// The mailbox's next UID afterwards.
    pub uidnext: i64,
}

impl MembershipChange {
    /// Nothing to write: no member leaves, enters or changes its flags.
    pub fn is_empty(&self) -> bool {
        self.gone.is_empty() && self.added.is_empty() && self.reflagged.is_empty()
    }
}

/// Compares what a view should hold, `wanted` (message, flags) in message
/// order, with what it holds, `current` (uid, message or None for a stored
/// message, flags); new members get UIDs from `uidnext` on.
pub fn membership_change(
    wanted: Vec<(i64, String)>,
    current: Vec<(i64, Option<i64>, String)>,
    mut uidnext: i64,
) -> MembershipChange {
    let mut present: HashMap<i64, (i64, String)> = HashMap::with_capacity(current.len());
    let mut gone: Vec<i64> = Vec::new();
    for (uid, message, flags) in current {
        match message {
            Some(message) => {
                present.insert(message, (uid, flags));
            }
            None => gone.push(uid),
        }
    }
    let mut added = Vec::new();
    let mut reflagged = Vec::new();
    for (message, flags) in wanted {
        match present.remove(&message) {
            Some((uid, old)) => {
                if old != flags {
                    reflagged.push((uid, flags));
                }
            }
            None => {
                added.push((uidnext, message, flags));
                uidnext += 1;
            }
        }
    }
    gone.extend(present.into_values().map(|(uid, _)| uid));
    MembershipChange {
        gone,
        added,
        reflagged,
        uidnext,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> Vec<String> {
        vec!["support".into(), "billing".into()]
    }

    #[test]
    fn names_round_trip() {
        for folder in Folder::standard(&queues()) {
            assert_eq!(Folder::parse(&folder.name(), &queues()), folder);
        }
        assert_eq!(Folder::parse("inbox", &queues()), Folder::Inbox);
        assert_eq!(
            Folder::parse("Queues/other", &queues()),
            Folder::Personal("Queues/other".into())
        );
        assert_eq!(
            Folder::parse("Projects/2026", &queues()),
            Folder::Personal("Projects/2026".into())
        );
    }

    #[test]
    fn closed_is_the_archive_and_xlist_names_inbox_and_spam() {
        assert_eq!(Folder::Closed.special_use(), Some("\\Archive"));
        assert_eq!(Folder::Closed.xlist_attribute(), Some("\\Archive"));
        assert_eq!(Folder::Inbox.special_use(), None);
        assert_eq!(Folder::Inbox.xlist_attribute(), Some("\\Inbox"));
        assert_eq!(Folder::Junk.xlist_attribute(), Some("\\Spam"));
        assert_eq!(Folder::Sent.xlist_attribute(), Some("\\Sent"));
        assert_eq!(Folder::Urgent.xlist_attribute(), None);
        assert!(Folder::Closed.has_no_inferiors());
        assert!(!Folder::Queues.has_no_inferiors());
    }

    #[test]
    fn reserved_names_cover_every_view() {
        for folder in Folder::standard(&queues()) {
            assert!(Folder::is_reserved(&folder.name()), "{folder:?}");
        }
        assert!(Folder::is_reserved("Queues/anything"));
        assert!(Folder::is_reserved("queues/support"));
        assert!(Folder::is_reserved("QUEUES"));
        assert!(Folder::is_reserved("inbox"));
        // Outlook's names for the special folders are those folders.
        assert!(Folder::is_reserved("Deleted Items"));
        assert_eq!(Folder::parse("Deleted Items", &[]), Folder::Trash);
        assert_eq!(Folder::parse("sent items", &[]), Folder::Sent);
        assert_eq!(Folder::parse("Junk Email", &[]), Folder::Junk);
        assert_eq!(
            Folder::parse("Deleted Items/old", &[]),
            Folder::Personal("Deleted Items/old".into())
        );
        assert!(Folder::is_reserved("unassigned"));
        assert!(!Folder::is_reserved("Projects"));
        assert!(!Folder::is_reserved("Queuesx"));
    }

    #[test]
    fn moves_change_the_ticket_as_the_folder_says() {
        let closed = Folder::Closed.move_into(7).unwrap_or_default();
        assert_eq!(closed.status, Some(Status::Closed));
        assert_eq!(closed.disposition, Some(None));
        let inbox = Folder::Inbox.move_into(7).unwrap_or_default();
        assert_eq!(inbox.owner, Some(Some(7)));
        assert!(inbox.reopen);
        let trash = Folder::Trash.move_into(7).unwrap_or_default();
        assert_eq!(trash.disposition, Some(Some(Disposition::Trash)));
        assert_eq!(trash.status, None);
        assert!(Folder::Overdue.move_into(7).is_err());
        assert!(Folder::Personal("x".into()).move_into(7).is_err());
    }

    #[test]
    fn flags_are_stored_sorted_and_unique() {
        assert_eq!(
            join_flags(["\\Seen", "billing", "\\Flagged", "billing"]),
            "\\Flagged \\Seen billing"
        );
        assert_eq!(derived_flags(false, false, false, &[], &[]), "");
        assert_eq!(
            derived_flags(true, true, true, &["vpn".into()], &["Old".into()]),
            "Old \\Answered \\Flagged \\Seen vpn"
        );
    }

    #[test]
    fn membership_keeps_uids_renumbers_newcomers_and_drops_leavers() {
        let current = vec![
            (1, Some(10), "\\Seen".to_string()),
            (2, Some(11), String::new()),
            (3, None, String::new()),
            (4, Some(12), String::new()),
        ];
        let wanted = vec![
            (10, "\\Seen".to_string()),
            (11, "\\Flagged".to_string()),
            (13, String::new()),
            (14, "vpn".to_string()),
        ];
        let mut change = membership_change(wanted, current, 5);
        change.gone.sort_unstable();
        assert_eq!(change.gone, vec![3, 4]);
        assert_eq!(change.reflagged, vec![(2, "\\Flagged".to_string())]);
        assert_eq!(
            change.added,
            vec![(5, 13, String::new()), (6, 14, "vpn".to_string())]
        );
        assert_eq!(change.uidnext, 7);
        // Nothing to do leaves the UIDs where they were.
        let same = membership_change(
            vec![(10, String::new())],
            vec![(1, Some(10), String::new())],
            2,
        );
        assert_eq!(
            same,
            MembershipChange {
                uidnext: 2,
                ..MembershipChange::default()
            }
        );
    }

    #[test]
    fn knowledge_folders_are_read_only_views_of_articles() {
        use crate::domain::knowledge::ArticleState;
        assert_eq!(Folder::parse("Knowledge", &[]), Folder::Knowledge);
        assert_eq!(
            Folder::parse("Knowledge/Drafts", &[]),
            Folder::KnowledgeDrafts
        );
        assert_eq!(
            Folder::parse("Knowledge/Printers", &[]),
            Folder::KnowledgeCategory("Printers".into())
        );
        assert!(Folder::is_reserved("knowledge/anything"));
        assert!(Folder::Knowledge.move_into(1).is_err());
        assert!(Folder::KnowledgeDrafts.is_knowledge() && Folder::Knowledge.is_view());
        let printers = Folder::KnowledgeCategory("Printers".into());
        assert!(printers.holds_article(ArticleState::Published, "Printers"));
        assert!(!printers.holds_article(ArticleState::Draft, "Printers"));
        assert!(!printers.holds_article(ArticleState::Published, "Network"));
        assert!(Folder::KnowledgeDrafts.holds_article(ArticleState::Draft, "Printers"));
        assert!(!Folder::Knowledge.holds_article(ArticleState::Archived, "Printers"));
        let accented = Folder::KnowledgeCategory("Drucker &- Zubeh&APY-r".into());
        assert!(accented.holds_article(ArticleState::Published, "Drucker & Zubehör"));
    }

    #[test]
    fn storage_folders_have_no_filter() {
        assert!(Folder::Sent.filter().is_none());
        assert!(Folder::Personal("x".into()).filter().is_none());
        assert!(Folder::Waiting.filter().is_some());
    }
}
