//! Mailbox commands: SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE, LIST, LSUB,
//! STATUS, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE.

use super::extended::{ListExtended, StatusItem};
use super::rev2;
use super::selected::Selected;
use super::session::{ImapSession, LoggedIn, Reply};
use crate::domain::change::ChangeRequest;
use crate::domain::views::{DELIMITER, Folder};
use crate::store::{Mailbox, MessageRef, StoreError};
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as ImapMailbox};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::StatusDataItemName;
use std::collections::BTreeSet;

/// At most this many ticket tags are announced in a view's FLAGS (the
/// most used first).
const ANNOUNCED_TAGS: i64 = 200;

/// A mailbox name as the client sent it (INBOX normalized).
pub fn mailbox_name(mailbox: &ImapMailbox<'_>) -> String {
    match mailbox {
        ImapMailbox::Inbox => "INBOX".to_string(),
        ImapMailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

/// A name a client wants to create must be modified UTF-7 (RFC 3501
/// §5.1.3): anything else would be shown garbled by every other client.
/// An IMAP4rev2 client's is Net-Unicode (RFC 9051 §5.1), stored as the
/// modified UTF-7 an IMAP4rev1 client would have sent.
fn new_name(mailbox: &ImapMailbox<'_>, rev2: bool) -> Result<String, Reply> {
    let invalid = |why: &dyn std::fmt::Display| Reply::bad(format!("Invalid mailbox name: {why}"));
    match mailbox {
        ImapMailbox::Inbox => Ok("INBOX".to_string()),
        ImapMailbox::Other(other) if rev2 => rev2::check_new_name(other.as_ref())
            .map(|name| rev2::stored_name(true, name))
            .map_err(|why| invalid(&why)),
        ImapMailbox::Other(other) => crate::domain::mailbox_name::validate(other.as_ref())
            .map(|()| mailbox_name(mailbox))
            .map_err(|why| invalid(&why)),
    }
}

/// The attributes LIST shows for a mailbox (without \Subscribed): its
/// children, and its special use (or XLIST's name for it).
fn list_attributes(folder: &Folder, name: &str, names: &[&str], xlist: bool) -> Vec<&'static str> {
    let prefix = format!("{name}{DELIMITER}");
    let children = names.iter().any(|n| n.starts_with(&prefix));
    let mut attributes = vec![if children {
        "\\HasChildren"
    } else if folder.has_no_inferiors() {
        // Implies \HasNoChildren (RFC 5258 §4).
        "\\Noinferiors"
    } else {
        "\\HasNoChildren"
    }];
    let special = if xlist {
        folder.xlist_attribute()
    } else {
        folder.special_use()
    };
    attributes.extend(special);
    attributes
}

/// RFC 3501 §6.3.8 wildcards: `*` matches anything, `%` anything but the
/// hierarchy delimiter.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|i| *i == 0 || name[i - 1] != DELIMITER as u8)
            .any(|i| wildcard_match(rest, &name[i..])),
        Some((c, rest)) => name
            .split_first()
            .is_some_and(|(n, name_rest)| n == c && wildcard_match(rest, name_rest)),
    }
}

/// The order LIST shows: INBOX and the views first, then the agent's own.
fn list_order(folder: &Folder) -> (u8, String) {
    let rank = match folder {
        Folder::Inbox => 0,
        Folder::Unassigned => 1,
        Folder::Queues => 2,
        Folder::Queue(_) => 3,
        Folder::Urgent => 4,
        Folder::Overdue => 5,
        Folder::Waiting => 6,
        Folder::Closed => 7,
        Folder::Sent => 8,
        Folder::Drafts => 9,
        Folder::Templates => 10,
        Folder::Held => 11,
        Folder::Junk => 12,
        Folder::Trash => 13,
        Folder::Knowledge => 14,
        Folder::KnowledgeCategory(_) => 15,
        Folder::KnowledgeDrafts => 16,
        Folder::Personal(_) => 17,
    };
    (rank, folder.name())
}

impl ImapSession {
    /// The stored name of a mailbox the client names (UTF-8 from an
    /// IMAP4rev2 client, modified UTF-7 from an IMAP4rev1 one).
    pub fn name_from_client(&self, mailbox: &ImapMailbox<'_>) -> String {
        rev2::stored_name(self.rev2, &mailbox_name(mailbox))
    }

    /// The agent's mailboxes, creating the standard ones on first use.
    pub async fn mailboxes(&self, login: &LoggedIn) -> Result<Vec<Mailbox>, StoreError> {
        let agent = &login.agent;
        let mut names: Vec<String> = Folder::standard(&agent.queues)
            .iter()
            .map(Folder::name)
            .collect();
        // One folder per category of published articles (issue 19).
        let categories = self.knowledge_folder_names().await?;
        names.extend(categories.iter().cloned());
        let mut boxes = self.app.store.imap_mailboxes(agent.id).await?;
        if names.iter().any(|n| !boxes.iter().any(|b| &b.name == n)) {
            self.app
                .store
                .imap_ensure_mailboxes(agent.id, &names, true)
                .await?;
            boxes = self.app.store.imap_mailboxes(agent.id).await?;
        }
        // A queue the agent lost access to keeps its row but is no view of
        // theirs any more: hide it.
        boxes.retain(|b| {
            !(b.name
                .starts_with(&format!("{}{DELIMITER}", crate::domain::views::QUEUES))
                && matches!(login.folder_of(&b.name), Folder::Personal(_)))
        });
        // Likewise a category no published article has any more.
        boxes.retain(|b| {
            !matches!(login.folder_of(&b.name), Folder::KnowledgeCategory(_))
                || categories.contains(&b.name)
        });
        Ok(boxes)
    }

    /// The mailbox with this name, or `NO [NONEXISTENT]`.
    pub async fn find_mailbox(
        &self,
        login: &LoggedIn,
        name: &str,
    ) -> Result<(Mailbox, Folder), Reply> {
        let folder = login.folder_of(name);
        let canonical = folder.name();
        let boxes = self.mailboxes(login).await.map_err(Reply::from)?;
        boxes
            .into_iter()
            .find(|b| b.name == canonical)
            .map(|b| (b, folder))
            .ok_or_else(|| {
                let name = rev2::wire_name(self.rev2, name);
                Reply::no(format!("[NONEXISTENT] No mailbox named {name}"))
            })
    }

    /// Brings a view up to date before it is shown, unless the sync marker
    /// still equals `known`. Returns the marker it is now current with.
    ///
    /// SELECT on a large quiet folder therefore reads no tickets.
    pub async fn reconcile(
        &self,
        login: &LoggedIn,
        mailbox_id: i64,
        folder: &Folder,
        force: bool,
        known: &str,
    ) -> Result<String, StoreError> {
        // Templates shows the team's templates of the agent's queues.
        if *folder == Folder::Templates {
            self.sync_templates(login, mailbox_id).await?;
            return Ok(String::new());
        }
        if folder.is_knowledge() {
            return self
                .reconcile_knowledge(login, mailbox_id, folder, force, known)
                .await;
        }
        // The agent's own folders hold what was put there: nothing to bring
        // up to date.
        let Some(filter) = folder.filter() else {
            return Ok(String::new());
        };
        let marker = self.view_marker(login, folder).await?;
        if force || marker != known {
            let since = chrono::Utc::now() - self.limits.closed_window;
            self.app
                .store
                .imap_reconcile(
                    mailbox_id,
                    &login.viewer(&self.limits.keywords),
                    &filter,
                    since,
                    &marker,
                    force,
                )
                .await?;
        }
        Ok(marker)
    }

    /// Brings the messages of these tickets in a view up to date, at the
    /// cost of those tickets.
    pub async fn reconcile_tickets(
        &self,
        login: &LoggedIn,
        mailbox_id: i64,
        folder: &Folder,
        tickets: &[i64],
    ) -> Result<(), StoreError> {
        let Some(filter) = folder.filter() else {
            return Ok(());
        };
        let since = chrono::Utc::now() - self.limits.closed_window;
        self.app
            .store
            .imap_reconcile_tickets(
                mailbox_id,
                &login.viewer(&self.limits.keywords),
                &filter,
                since,
                tickets,
            )
            .await?;
        Ok(())
    }

    /// What a view's content depends on, as one string: when it is the one
    /// a view was last brought up to date with, nothing changed. The Closed
    /// view also changes with time (tickets age out of its window), so its
    /// marker carries the hour: a quiet Closed folder is re-checked once an
    /// hour, and every other view only when something happened.
    pub async fn view_marker(
        &self,
        login: &LoggedIn,
        folder: &Folder,
    ) -> Result<String, StoreError> {
        if folder.is_knowledge() {
            return self.knowledge_marker(login, folder).await;
        }
        let mut marker = self.app.store.imap_sync_marker(login.agent.id).await?;
        if matches!(folder, Folder::Closed) {
            let hour = chrono::Utc::now().timestamp() / 3600;
            marker.push_str(&format!(".h{hour}"));
        }
        Ok(marker)
    }

    /// SELECT and EXAMINE: the mailbox now selected, and the reply.
    pub async fn select(
        &mut self,
        login: &LoggedIn,
        name: &ImapMailbox<'_>,
        parameters: &[SelectParameter],
        read_only: bool,
    ) -> Result<(Selected, Reply), Reply> {
        if parameters
            .iter()
            .any(|p| matches!(p, SelectParameter::CondStore))
        {
            self.condstore = true;
        }
        let resync = super::qresync::Resync::of(parameters);
        if resync.is_some() && !self.qresync {
            // RFC 7162 §3.2.5: a tagged BAD unless QRESYNC was enabled.
            return Err(Reply::bad("QRESYNC parameter without ENABLE QRESYNC"));
        }
        let name = self.name_from_client(name);
        let (mailbox, folder) = self.find_mailbox(login, &name).await?;
        // Articles are written by mail, never changed here: a Knowledge
        // folder is always read-only (RFC 3501 `[READ-ONLY]`).
        let read_only = read_only || folder.is_knowledge();
        // What was heard before is taken in by this reconcile (it reads the
        // marker after): the selected view starts with a clean slate.
        self.forget_heard_changes();
        let marker = self
            .reconcile(login, mailbox.id, &folder, false, "")
            .await?;
        let store = &self.app.store;
        let mailbox = store.imap_mailbox(mailbox.id).await?;
        let members = store.imap_members_now(&mailbox).await?;
        let first_unseen = members
            .iter()
            .position(|m| !m.flags.split(' ').any(|f| f == "\\Seen"));
        let count = members.len();
        let (validity, uidnext, modseq) =
            (mailbox.uidvalidity, mailbox.uidnext, mailbox.highestmodseq);
        let newest = members.last().map(|m| m.uid).unwrap_or(0);
        // IMAP4rev2 has no \Recent: such a session claims none.
        // Nothing to claim when another session claimed these already: no
        // write on SELECT of a quiet mailbox.
        let recent_above = if read_only || self.rev2 || newest <= mailbox.recent_uid {
            mailbox.recent_uid
        } else {
            self.app.store.imap_claim_recent(mailbox.id, newest).await?
        };
        // RFC 9051 §6.3.2: an IMAP4rev2 SELECT tells the mailbox's LIST
        // line, with its attributes.
        let list_line = if self.rev2 {
            let boxes = self.mailboxes(login).await?;
            let names: Vec<&str> = boxes.iter().map(|b| b.name.as_str()).collect();
            let attributes = list_attributes(&folder, &mailbox.name, &names, false);
            let mut line = format!("* LIST ({}) \"/\" ", attributes.join(" ")).into_bytes();
            rev2::write_mailbox(&mut line, true, &mailbox.name);
            line.extend_from_slice(b"\r\n");
            line
        } else {
            Vec::new()
        };
        let mut selected = Selected::new(mailbox, folder, read_only, members);
        if selected.folder.is_knowledge() {
            // The keyword internal articles carry.
            selected
                .keywords
                .extend([super::knowledge::INTERNAL_KEYWORD.to_string()]);
        } else if selected.folder.is_view() {
            // The ticket tags in use and Thunderbird's labels are announced
            // whether or not a message here carries them, so that a client
            // offers them (and shows `#tag vip` as the keyword `vip`).
            let known = store
                .imap_known_tags(&login.viewer(&self.limits.keywords), ANNOUNCED_TAGS)
                .await?;
            selected.keywords.extend(known);
            selected.keywords.extend(self.limits.keywords.labels());
        }
        selected.marker = marker;
        if !self.rev2 {
            selected.recent = selected
                .messages
                .iter()
                .map(|m| m.uid)
                .filter(|uid| *uid > recent_above)
                .collect();
        }
        let recent = selected.recent.len();
        let out = &mut self.out;
        selected.write_flags_list(out);
        out.extend_from_slice(format!("* {count} EXISTS\r\n").as_bytes());
        // IMAP4rev2 has no RECENT, and its SELECT no UNSEEN code (RFC 9051
        // §6.3.2): its clients search for what they have not seen.
        if !self.rev2 {
            out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
            if let Some(index) = first_unseen {
                out.extend_from_slice(
                    format!("* OK [UNSEEN {}] First unseen\r\n", index + 1).as_bytes(),
                );
            }
        }
        out.extend_from_slice(&list_line);
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n* OK [HIGHESTMODSEQ {}] Highest\r\n",
                validity, uidnext, modseq
            )
            .as_bytes(),
        );
        if let Some(resync) = resync {
            self.resync(&selected, &resync).await?;
        }
        let reply = if read_only {
            Reply::ok("[READ-ONLY] EXAMINE completed")
        } else {
            Reply::ok("[READ-WRITE] SELECT completed")
        };
        Ok((selected, reply))
    }

    /// CLOSE expunges silently (in a view: the tickets of `\Deleted`
    /// messages go to Trash, as with EXPUNGE); UNSELECT does not.
    /// Ok: the mailbox may be left; Err: it stays selected.
    pub async fn close(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        expunge: bool,
    ) -> Result<(), Reply> {
        if !expunge || selected.read_only {
            return Ok(());
        }
        let doomed: Vec<usize> = (0..selected.messages.len())
            .filter(|i| selected.has_flag(*i, "\\Deleted"))
            .collect();
        if selected.folder.is_view() {
            self.trash_deleted(login, selected, &doomed).await?;
            return Ok(());
        }
        let uids: Vec<u32> = doomed.iter().map(|i| selected.messages[*i].uid).collect();
        if selected.folder == Folder::Templates {
            self.remove_templates(login, selected.mailbox.id, &uids)
                .await?;
        }
        self.app
            .store
            .imap_expunge(selected.mailbox.id, &uids)
            .await?;
        Ok(())
    }

    pub async fn expunge(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        only: Option<&SequenceSet>,
    ) -> Reply {
        if selected.read_only {
            return Reply::no("[READ-ONLY] Mailbox is read-only");
        }
        let allowed = match only {
            Some(set) => match selected.resolve(set, true) {
                Ok(indexes) => Some(indexes),
                Err(_) => return Reply::bad("Invalid UID set"),
            },
            None => None,
        };
        let doomed: Vec<usize> = (0..selected.messages.len())
            .filter(|i| allowed.as_ref().is_none_or(|a| a.contains(i)))
            .filter(|i| selected.has_flag(*i, "\\Deleted"))
            .collect();
        if selected.folder.is_view() {
            return match self.trash_deleted(login, selected, &doomed).await {
                Ok(0) => Reply::ok("EXPUNGE completed"),
                Ok(n) => Reply::ok(format!(
                    "EXPUNGE completed; {n} ticket(s) moved to Trash (restorable: move a message out of Trash)"
                )),
                Err(reply) => reply,
            };
        }
        let uids: Vec<u32> = doomed.iter().map(|i| selected.messages[*i].uid).collect();
        // Deleting a template's copy removes the template, for everyone.
        if selected.folder == Folder::Templates
            && let Err(refused) = self
                .remove_templates(login, selected.mailbox.id, &uids)
                .await
        {
            return refused;
        }
        match self
            .app
            .store
            .imap_expunge(selected.mailbox.id, &uids)
            .await
        {
            Ok(()) => Reply::ok("EXPUNGE completed"),
            Err(err) => err.into(),
        }
    }

    /// `\Deleted` and EXPUNGE in a view mean what the Delete key means
    /// (Outlook deletes that way): the messages' tickets go to Trash,
    /// restorable, all of them or none. Messages this session copied into
    /// another folder are left alone: deleting them finishes a client's
    /// move without MOVE. In Trash nothing more happens: no IMAP action
    /// destroys customer mail. Returns how many tickets went to Trash.
    async fn trash_deleted(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        doomed: &[usize],
    ) -> Result<usize, Reply> {
        let mut messages = Vec::new();
        for i in doomed {
            let message = &selected.messages[*i];
            selected.deleted.remove(&message.uid);
            if selected.copied_out.contains(&message.uid) {
                continue;
            }
            if let MessageRef::Ticket(id) = message.message {
                messages.push(id);
            }
        }
        if messages.is_empty() || matches!(selected.folder, Folder::Trash) {
            return Ok(0);
        }
        let change = Folder::Trash
            .move_into(login.agent.id)
            .map_err(|why| Reply::no(format!("[CANNOT] {why}")))?;
        let tickets = self.tickets_to_change(login, &messages, &change).await?;
        let actor = login.agent.actor();
        for ticket in &tickets {
            self.app
                .store
                .change_ticket(
                    *ticket,
                    &ChangeRequest::asked(
                        change.clone(),
                        "deleted over IMAP (\\Deleted and EXPUNGE)",
                        &actor,
                        chrono::Utc::now(),
                    ),
                )
                .await
                .map_err(Reply::from)?;
        }
        Ok(tickets.len())
    }

    pub async fn list(
        &mut self,
        login: &LoggedIn,
        reference: &ImapMailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Reply {
        let reference = match reference {
            ImapMailbox::Inbox => "INBOX".to_string(),
            ImapMailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
        };
        let pattern: Vec<u8> = match pattern {
            ListMailbox::Token(token) => token.as_ref().to_vec(),
            ListMailbox::String(string) => string.as_ref().to_vec(),
        };
        let list = ListExtended {
            reference,
            patterns: vec![pattern],
            ..Default::default()
        };
        self.list_extended(login, &list, lsub).await
    }

    /// LIST in all its forms (RFC 3501, RFC 5258 selection and return
    /// options, RFC 5819 STATUS), and LSUB (`lsub`: subscribed mailboxes and
    /// the unsubscribed parents of subscribed ones, as RFC 3501 §6.3.9 has
    /// it, without the extended attributes).
    pub async fn list_extended(
        &mut self,
        login: &LoggedIn,
        list: &ListExtended,
        lsub: bool,
    ) -> Reply {
        let command = match (lsub, list.xlist) {
            (true, _) => "LSUB",
            (false, true) => "XLIST",
            (false, false) => "LIST",
        };
        let asks_recent = list.return_status.as_ref().is_some_and(|items| {
            items
                .iter()
                .any(|i| matches!(i, StatusItem::Codec(StatusDataItemName::Recent)))
        });
        if self.rev2 && asks_recent {
            return Reply::bad("IMAP4rev2 has no RECENT (RFC 9051): ask for other items");
        }
        if list.patterns.iter().all(Vec::is_empty) && !lsub {
            self.out
                .extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return Reply::ok("LIST completed");
        }
        let patterns: Vec<Vec<u8>> = list
            .patterns
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| [list.reference.as_bytes(), p].concat())
            .collect();
        // Patterns are matched against names as the client sees them
        // (UTF-8 for IMAP4rev2), so a wildcard stands for characters, not
        // for pieces of modified UTF-7.
        let rev2 = self.rev2;
        let matches = |name: &str, inbox: bool| {
            let shown = rev2::wire_name(rev2, name);
            patterns.iter().any(|full| {
                if inbox {
                    wildcard_match(&full.to_ascii_uppercase(), b"INBOX")
                } else {
                    wildcard_match(full, shown.as_bytes())
                }
            })
        };
        let boxes = match self.mailboxes(login).await {
            Ok(boxes) => boxes,
            Err(err) => return err.into(),
        };
        let mut folders: Vec<(Folder, &Mailbox)> = boxes
            .iter()
            .map(|b| (login.folder_of(&b.name), b))
            .collect();
        folders.sort_by_key(|(f, _)| list_order(f));
        let names: Vec<&str> = boxes.iter().map(|b| b.name.as_str()).collect();
        let extended = !lsub;
        let by_subscription = lsub || list.only_subscribed;
        // Subscriptions left by deleted mailboxes (RFC 3501 §6.3.6): shown
        // where subscriptions are listed, as not existing.
        let kept: Vec<String> = if by_subscription {
            match self.app.store.imap_kept_subscriptions(login.agent.id).await {
                Ok(kept) => kept
                    .into_iter()
                    .filter(|n| !names.contains(&n.as_str()))
                    .collect(),
                Err(err) => return err.into(),
            }
        } else {
            Vec::new()
        };
        let subscribed: Vec<&str> = boxes
            .iter()
            .filter(|b| b.subscribed)
            .map(|b| b.name.as_str())
            .chain(kept.iter().map(String::as_str))
            .collect();
        // RFC 5258 §3.5: CHILDINFO tells of subscribed children the
        // patterns do not list themselves (a client that asked for the
        // child too learns of it from its own line).
        let has_subscribed_child = |name: &str| {
            let prefix = format!("{name}{DELIMITER}");
            subscribed
                .iter()
                .any(|n| n.starts_with(&prefix) && !matches(n, false))
        };
        let mut listed: BTreeSet<String> = BTreeSet::new();
        let mut statuses: Vec<String> = Vec::new();
        for (folder, mailbox) in &folders {
            let name = &mailbox.name;
            if !matches(name, folder == &Folder::Inbox) {
                continue;
            }
            if list.only_special_use && folder.special_use().is_none() {
                continue;
            }
            // RFC 5258 §3.5: with RECURSIVEMATCH an unsubscribed mailbox
            // with subscribed children is listed, saying why.
            let childinfo = list.recursive_match && has_subscribed_child(name);
            if by_subscription && !mailbox.subscribed && !childinfo {
                continue;
            }
            let mut attributes = list_attributes(folder, name, &names, list.xlist);
            if extended && list.return_subscribed && mailbox.subscribed {
                attributes.push("\\Subscribed");
            }
            self.out.extend_from_slice(
                format!("* {command} ({}) \"/\" ", attributes.join(" ")).as_bytes(),
            );
            rev2::write_mailbox(&mut self.out, rev2, name);
            if childinfo {
                self.out
                    .extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            self.out.extend_from_slice(b"\r\n");
            listed.insert(name.clone());
            if list.return_status.is_some() && (!list.only_subscribed || mailbox.subscribed) {
                statuses.push(name.clone());
            }
        }
        for name in &kept {
            if !matches(name, false) || list.only_special_use {
                continue;
            }
            let prefix = format!("{name}{DELIMITER}");
            let children = names.iter().any(|n| n.starts_with(&prefix));
            let attributes = match (lsub, children) {
                (true, _) => "",
                (false, true) => "\\NonExistent \\Subscribed \\HasChildren",
                (false, false) => "\\NonExistent \\Subscribed",
            };
            self.out
                .extend_from_slice(format!("* {command} ({attributes}) \"/\" ").as_bytes());
            rev2::write_mailbox(&mut self.out, rev2, name);
            self.out.extend_from_slice(b"\r\n");
            listed.insert(name.clone());
        }
        // Parents that are only a path (a/b exists, a does not) match `%`;
        // for LSUB, so do unsubscribed parents of subscribed mailboxes
        // (RFC 3501 §6.3.9). With the SUBSCRIBED selection such a parent is
        // listed only for RECURSIVEMATCH, as \NonExistent (RFC 5258 §3.5).
        if !list.only_subscribed || list.recursive_match {
            let candidates = if by_subscription { &subscribed } else { &names };
            let exists = |parent: &str| {
                if lsub {
                    subscribed.contains(&parent)
                } else {
                    names.contains(&parent)
                }
            };
            for name in candidates {
                let mut parent = String::new();
                for (i, part) in name.split(DELIMITER).enumerate() {
                    if i > 0 {
                        parent.push(DELIMITER);
                    }
                    parent.push_str(part);
                    if parent.len() == name.len()
                        || exists(parent.as_str())
                        || listed.contains(&parent)
                        || !matches(&parent, false)
                        || (list.only_subscribed && !has_subscribed_child(&parent))
                    {
                        continue;
                    }
                    let (attributes, childinfo) = if list.only_subscribed {
                        (
                            "\\NonExistent \\HasChildren",
                            " (\"CHILDINFO\" (\"SUBSCRIBED\"))",
                        )
                    } else {
                        ("\\Noselect \\HasChildren", "")
                    };
                    self.out
                        .extend_from_slice(format!("* {command} ({attributes}) \"/\" ").as_bytes());
                    rev2::write_mailbox(&mut self.out, rev2, &parent);
                    self.out.extend_from_slice(childinfo.as_bytes());
                    self.out.extend_from_slice(b"\r\n");
                    listed.insert(parent.clone());
                }
            }
        }
        // RFC 5819: a STATUS for each selectable mailbox listed; one that
        // cannot be read is left out, the LIST still succeeds.
        if let Some(items) = &list.return_status {
            for name in statuses {
                let reply = self.status_of(login, &name, items).await;
                if reply.status != "OK" {
                    tracing::debug!(mailbox = %name, reason = %reply.text, "LIST-STATUS skipped");
                }
            }
        }
        Reply::ok(format!("{command} completed"))
    }

    pub async fn status(
        &mut self,
        login: &LoggedIn,
        name: &ImapMailbox<'_>,
        items: &[StatusDataItemName],
    ) -> Reply {
        let items: Vec<StatusItem> = items.iter().cloned().map(StatusItem::Codec).collect();
        let name = self.name_from_client(name);
        self.status_of(login, &name, &items).await
    }

    /// STATUS of the mailbox with this name, with any items including
    /// APPENDLIMIT (RFC 7889).
    pub async fn status_of(&mut self, login: &LoggedIn, name: &str, items: &[StatusItem]) -> Reply {
        if self.rev2
            && items
                .iter()
                .any(|i| matches!(i, StatusItem::Codec(StatusDataItemName::Recent)))
        {
            return Reply::bad("IMAP4rev2 has no RECENT (RFC 9051): ask for other items");
        }
        let (mailbox, folder) = match self.find_mailbox(login, name).await {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let result = async {
            self.reconcile(login, mailbox.id, &folder, false, "")
                .await?;
            let mailbox = self.app.store.imap_mailbox(mailbox.id).await?;
            let counts = self.app.store.imap_counts(mailbox.id).await?;
            Ok::<_, StoreError>((mailbox, counts))
        }
        .await;
        let (mailbox, counts) = match result {
            Ok(found) => found,
            Err(err) => return err.into(),
        };
        let mut parts = Vec::new();
        for item in items {
            let item = match item {
                StatusItem::Codec(item) => item,
                StatusItem::AppendLimit => {
                    // The same limit for every mailbox: APPEND's literal
                    // limit.
                    parts.push(format!("APPENDLIMIT {}", self.limits.max_literal_size));
                    continue;
                }
                StatusItem::Size => {
                    // RFC 8438: the sum of the RFC822.SIZEs FETCH reports.
                    match self.app.store.imap_size(mailbox.id).await {
                        Ok(size) => parts.push(format!("SIZE {size}")),
                        Err(err) => return err.into(),
                    }
                    continue;
                }
            };
            match item {
                StatusDataItemName::Messages => parts.push(format!("MESSAGES {}", counts.messages)),
                StatusDataItemName::Recent => parts.push(format!("RECENT {}", counts.recent)),
                StatusDataItemName::UidNext => parts.push(format!("UIDNEXT {}", mailbox.uidnext)),
                StatusDataItemName::UidValidity => {
                    parts.push(format!("UIDVALIDITY {}", mailbox.uidvalidity))
                }
                StatusDataItemName::Unseen => parts.push(format!("UNSEEN {}", counts.unseen)),
                StatusDataItemName::HighestModSeq => {
                    parts.push(format!("HIGHESTMODSEQ {}", mailbox.highestmodseq))
                }
                // RFC 9051 §6.3.11: the messages with \Deleted. In a view
                // \Deleted lives in the session that set it (see
                // `Selected::deleted`): none are stored.
                StatusDataItemName::Deleted => parts.push(format!("DELETED {}", counts.deleted)),
                StatusDataItemName::DeletedStorage => {
                    return Reply::bad("STATUS DELETED-STORAGE is not supported");
                }
            }
        }
        self.out.extend_from_slice(b"* STATUS ");
        rev2::write_mailbox(&mut self.out, self.rev2, &mailbox.name);
        self.out
            .extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Reply::ok("STATUS completed")
    }

    pub async fn create(&mut self, login: &LoggedIn, name: &ImapMailbox<'_>) -> Reply {
        let name = match new_name(name, self.rev2) {
            Ok(name) => name,
            Err(why) => return why,
        };
        let name = name.trim_end_matches(DELIMITER).to_string();
        if name.is_empty() || name.split(DELIMITER).any(str::is_empty) {
            return Reply::bad("Invalid mailbox name");
        }
        if let Some(special) = Folder::alias(&name) {
            return Reply::no(format!(
                "[ALREADYEXISTS] {name} exists: it is {} here",
                special.name()
            ));
        }
        if Folder::is_reserved(&name)
            || Folder::is_reserved(name.split(DELIMITER).next().unwrap_or(""))
        {
            return match self.find_mailbox(login, &name).await {
                Ok(_) => Reply::no(format!(
                    "[ALREADYEXISTS] {name} exists (it is a ticket view)"
                )),
                Err(_) => Reply::no(format!("[CANNOT] {name} is reserved for ticket views")),
            };
        }
        let boxes = match self.mailboxes(login).await {
            Ok(boxes) => boxes,
            Err(err) => return err.into(),
        };
        if boxes.iter().any(|b| b.name == name) {
            return Reply::no(format!("[ALREADYEXISTS] {name} already exists"));
        }
        // Parents are created too (RFC 3501 §6.3.3).
        let mut names = Vec::new();
        let mut path = String::new();
        for part in name.split(DELIMITER) {
            if !path.is_empty() {
                path.push(DELIMITER);
            }
            path.push_str(part);
            if !boxes.iter().any(|b| b.name == path) {
                names.push(path.clone());
            }
        }
        match self
            .app
            .store
            .imap_ensure_mailboxes(login.agent.id, &names, false)
            .await
        {
            Ok(()) => Reply::ok("CREATE completed"),
            Err(err) => err.into(),
        }
    }

    /// DELETE; the mailbox is no longer selected if it was.
    pub async fn delete(
        &mut self,
        login: &LoggedIn,
        selected: &mut Option<Box<Selected>>,
        name: &ImapMailbox<'_>,
    ) -> Reply {
        let name = self.name_from_client(name);
        let (mailbox, folder) = match self.find_mailbox(login, &name).await {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        if !matches!(folder, Folder::Personal(_)) {
            return Reply::no(format!(
                "[CANNOT] {name} is a ticket view or a standard folder"
            ));
        }
        if selected
            .as_ref()
            .is_some_and(|s| s.mailbox.id == mailbox.id)
        {
            *selected = None;
        }
        match self.app.store.imap_delete_mailbox(mailbox.id).await {
            Ok(()) => Reply::ok("DELETE completed"),
            Err(err) => err.into(),
        }
    }

    /// RENAME; a selected mailbox among those renamed takes its new name.
    pub async fn rename(
        &mut self,
        login: &LoggedIn,
        selected: Option<&mut Selected>,
        from: &ImapMailbox<'_>,
        to: &ImapMailbox<'_>,
    ) -> Reply {
        let to = match new_name(to, self.rev2) {
            Ok(to) => to.trim_end_matches(DELIMITER).to_string(),
            Err(why) => return why,
        };
        let from = self.name_from_client(from);
        let (mailbox, folder) = match self.find_mailbox(login, &from).await {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        if !matches!(folder, Folder::Personal(_)) {
            return Reply::no(format!(
                "[CANNOT] {from} is a ticket view or a standard folder"
            ));
        }
        if to.is_empty()
            || Folder::is_reserved(&to)
            || Folder::is_reserved(to.split(DELIMITER).next().unwrap_or(""))
        {
            return Reply::no(format!("[CANNOT] {to} is reserved for ticket views"));
        }
        let boxes = match self.mailboxes(login).await {
            Ok(boxes) => boxes,
            Err(err) => return err.into(),
        };
        if boxes.iter().any(|b| b.name == to) {
            return Reply::no(format!("[ALREADYEXISTS] {to} already exists"));
        }
        let prefix = format!("{}{DELIMITER}", mailbox.name);
        let mut renames = vec![(mailbox.id, to.clone())];
        for b in &boxes {
            if let Some(rest) = b.name.strip_prefix(&prefix) {
                renames.push((b.id, format!("{to}{DELIMITER}{rest}")));
            }
        }
        // The new name's parents exist afterwards, as CREATE would make them.
        let mut parents = Vec::new();
        let mut path = String::new();
        let parts: Vec<&str> = to.split(DELIMITER).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !path.is_empty() {
                path.push(DELIMITER);
            }
            path.push_str(part);
            if !boxes.iter().any(|b| b.name == path) {
                parents.push(path.clone());
            }
        }
        let result = async {
            self.app.store.imap_rename_mailboxes(&renames).await?;
            self.app
                .store
                .imap_ensure_mailboxes(login.agent.id, &parents, false)
                .await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if let Some(selected) = selected
            && let Some((_, name)) = renames.iter().find(|(id, _)| *id == selected.mailbox.id)
        {
            selected.mailbox.name = name.clone();
            selected.folder = Folder::Personal(name.clone());
        }
        match result {
            Ok(()) => {
                // IMAP4rev2: the new name's LIST line with the name it had
                // (the OLDNAME of RFC 9051 §6.3.6, which asks for it when
                // a name was normalized; none is here, as names not in NFC
                // are refused, but go-imap tells it after every RENAME, and
                // so the client hears the name it will see in LIST).
                if self.rev2 {
                    let children = if renames.len() > 1 {
                        "\\HasChildren"
                    } else {
                        "\\HasNoChildren"
                    };
                    let out = &mut self.out;
                    out.extend_from_slice(format!("* LIST ({children}) \"/\" ").as_bytes());
                    rev2::write_mailbox(out, true, &to);
                    out.extend_from_slice(b" (\"OLDNAME\" (");
                    rev2::write_mailbox(out, true, &mailbox.name);
                    out.extend_from_slice(b"))\r\n");
                }
                Reply::ok("RENAME completed")
            }
            Err(err) => err.into(),
        }
    }

    pub async fn subscribe(
        &mut self,
        login: &LoggedIn,
        name: &ImapMailbox<'_>,
        subscribed: bool,
    ) -> Reply {
        let name = self.name_from_client(name);
        let (mailbox, _) = match self.find_mailbox(login, &name).await {
            Ok(found) => found,
            Err(_) if !subscribed => {
                // Unsubscribing a name that no longer exists drops the
                // subscription its mailbox left (or there was none).
                return match self
                    .app
                    .store
                    .imap_forget_subscription(login.agent.id, &name)
                    .await
                {
                    Ok(_) => Reply::ok("UNSUBSCRIBE completed"),
                    Err(err) => err.into(),
                };
            }
            Err(reply) => return reply,
        };
        match self.app.store.imap_subscribe(mailbox.id, subscribed).await {
            Ok(()) => Reply::ok(if subscribed {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            }),
            Err(err) => err.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_rfc_3501() {
        assert!(wildcard_match(b"*", b"Queues/billing"));
        assert!(wildcard_match(b"%", b"Queues"));
        assert!(!wildcard_match(b"%", b"Queues/billing"));
        assert!(wildcard_match(b"Queues/%", b"Queues/billing"));
        assert!(wildcard_match(b"Q*g", b"Queues/billing"));
        assert!(!wildcard_match(b"Queues/%", b"Queues/billing/x"));
        assert!(wildcard_match(b"INBOX", b"INBOX"));
        assert!(!wildcard_match(b"INBOX", b"INBOXes"));
    }
}
