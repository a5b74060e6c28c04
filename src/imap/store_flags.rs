//! STORE and UID STORE (RFC 3501 §6.4.6, RFC 7162 UNCHANGEDSINCE).
//!
//! In a view, flags are ticket state: `\Seen` is per agent, `\Flagged` is
//! the ticket's urgency, keywords are its tags or the agent's own marks
//! (see `domain::keywords`: `Junk` may mark the ticket spam), `\Deleted`
//! lives in the session until EXPUNGE. In the agent's own folders flags are
//! simply stored.

use super::selected::Selected;
use super::session::{ImapSession, LoggedIn, Reply};
use crate::domain::change::{ChangeRequest, TicketChange};
use crate::domain::keywords::{Keyword, junk_marks_spam};
use crate::domain::ticket::{Disposition, Priority};
use crate::store::{FlagOp, MessageRef};
use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;
use std::collections::{BTreeMap, BTreeSet};

fn flag_op(kind: &StoreType, flags: &[String]) -> FlagOp {
    match kind {
        StoreType::Replace => FlagOp::Replace(flags.to_vec()),
        StoreType::Add => FlagOp::Add(flags.to_vec()),
        StoreType::Remove => FlagOp::Remove(flags.to_vec()),
    }
}

impl ImapSession {
    #[allow(clippy::too_many_arguments)]
    pub async fn store_flags(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        set: &SequenceSet,
        kind: &StoreType,
        response: &StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) -> Reply {
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(v)| *v)
            .next();
        if unchanged_since.is_some() {
            self.enable_condstore(selected);
        }
        let flags: Vec<String> = flags.iter().map(ToString::to_string).collect();
        if flags.iter().any(|f| f.eq_ignore_ascii_case("\\Recent")) {
            return Reply::bad("\\Recent cannot be stored");
        }
        if selected.folder.is_knowledge() {
            return Reply::no(
                "[READ-ONLY] Knowledge folders are read-only: articles are changed by mail \
                 (reply to an article's message)",
            );
        }
        if selected.read_only {
            return Reply::no("[READ-ONLY] Mailbox is read-only");
        }
        let Ok(indexes) = selected.resolve(set, uid) else {
            return Reply::bad("Invalid message sequence number");
        };
        let mut modified = Vec::new();
        let mut targets = Vec::new();
        for index in indexes {
            let message = &selected.messages[index];
            match unchanged_since {
                Some(since) if message.modseq > since => modified.push(message.uid),
                _ => targets.push(index),
            }
        }
        let result = if selected.folder.is_view() {
            self.store_in_view(login, selected, &targets, kind, &flags)
                .await
        } else {
            self.store_in_storage(selected, &targets, kind, &flags)
                .await
        };
        if let Err(reply) = result {
            return reply;
        }
        // Changes land in the view's membership; report them (and, unless
        // .SILENT, every targeted message even if nothing changed).
        let reported = match self.refresh_reporting(login, selected).await {
            Ok(reported) => reported,
            Err(err) => return err.into(),
        };
        if matches!(response, StoreResponse::Answer) {
            let condstore = self.condstore;
            for index in targets {
                if index < selected.messages.len()
                    && !reported.contains(&selected.messages[index].uid)
                {
                    selected.write_flags_update(&mut self.out, index, condstore);
                }
            }
        }
        if modified.is_empty() {
            Reply::ok("STORE completed")
        } else {
            Reply::ok(format!(
                "[MODIFIED {}] Conditional STORE failed for some messages",
                super::response::uid_set(&modified)
            ))
        }
    }

    /// Refresh without expunges (STORE may not announce them), returning the
    /// UIDs whose flags were reported.
    async fn refresh_reporting(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
    ) -> Result<BTreeSet<u32>, crate::store::StoreError> {
        let before: BTreeMap<u32, String> = selected
            .messages
            .iter()
            .map(|m| (m.uid, m.flags.clone()))
            .collect();
        self.refresh(login, selected, false).await?;
        let after = selected
            .messages
            .iter()
            .filter(|m| before.get(&m.uid) != Some(&m.flags))
            .map(|m| m.uid)
            .collect();
        Ok(after)
    }

    async fn store_in_storage(
        &mut self,
        selected: &Selected,
        targets: &[usize],
        kind: &StoreType,
        flags: &[String],
    ) -> Result<(), Reply> {
        let uids: Vec<u32> = targets.iter().map(|i| selected.messages[*i].uid).collect();
        if uids.is_empty() {
            return Ok(());
        }
        self.app
            .store
            .imap_update_flags(selected.mailbox.id, &uids, &flag_op(kind, flags))
            .await
            .map_err(Reply::from)?;
        Ok(())
    }

    async fn store_in_view(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        targets: &[usize],
        kind: &StoreType,
        flags: &[String],
    ) -> Result<(), Reply> {
        let agent = &login.agent;
        let keywords = self.limits.keywords.clone();
        let mut seen = Vec::new();
        let mut unseen = Vec::new();
        let mut own_added: Vec<(i64, String)> = Vec::new();
        let mut own_removed: Vec<(i64, String)> = Vec::new();
        // Per ticket: the change its messages' new flags ask for.
        let mut changes: BTreeMap<i64, TicketChange> = BTreeMap::new();
        let mut messages: Vec<i64> = Vec::new();
        for &index in targets {
            if let MessageRef::Ticket(id) = selected.messages[index].message {
                messages.push(id);
            }
        }
        let store = &self.app.store;
        let tickets = store
            .message_tickets(&messages)
            .await
            .map_err(Reply::from)?;
        // (message, read by this agent once the flags are stored).
        let mut junk_marked: Vec<(i64, bool)> = Vec::new();
        // The flags each message was asked to have: the session's view of
        // them from now on, so the STORE's answer tells them even for a
        // message whose ticket the change takes out of this view (a Junk
        // mark that makes it spam), which the refresh does not reload.
        let mut asked_flags: Vec<(usize, String)> = Vec::new();
        // The junk button on a message the client's filter marked already
        // stores Junk again: no change of flags, but the agent's word.
        let asks_junk = !matches!(kind, StoreType::Remove)
            && flags
                .iter()
                .any(|f| matches!(keywords.classify(f), Keyword::Junk(_)));
        let mut not_junk_marked: Vec<i64> = Vec::new();
        for &index in targets {
            let message = &selected.messages[index];
            let MessageRef::Ticket(id) = message.message else {
                continue;
            };
            let mut current = message.flags.clone();
            if selected.deleted.contains(&message.uid) {
                current.push_str(" \\Deleted");
            }
            let next = flag_op(kind, flags).apply(&current);
            asked_flags.push((
                index,
                next.split(' ')
                    .filter(|f| !f.is_empty() && !f.eq_ignore_ascii_case("\\Deleted"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
            let had = |f: &str| current.split(' ').any(|x| x.eq_ignore_ascii_case(f));
            let has = |f: &str| next.split(' ').any(|x| x.eq_ignore_ascii_case(f));
            match (had("\\Seen"), has("\\Seen")) {
                (false, true) => seen.push(id),
                (true, false) => unseen.push(id),
                _ => {}
            }
            if has("\\Deleted") {
                selected.deleted.insert(message.uid);
            } else {
                selected.deleted.remove(&message.uid);
            }
            // Keywords: the client's own bookkeeping stays the agent's;
            // tags go to the ticket.
            let asked = keywords.changes(&current, &next);
            own_added.extend(asked.add_own.iter().map(|k| (id, k.clone())));
            own_removed.extend(asked.remove_own.iter().map(|k| (id, k.clone())));
            if asked.junk_set || asks_junk {
                junk_marked.push((id, has("\\Seen")));
            }
            if asked.not_junk_set {
                not_junk_marked.push(id);
            }
            let Some(ticket) = tickets.get(&id) else {
                continue;
            };
            let change = changes.entry(*ticket).or_default();
            match (had("\\Flagged"), has("\\Flagged")) {
                (false, true) => change.priority = Some(Priority::Urgent),
                (true, false) => change.priority = Some(Priority::Normal),
                _ => {}
            }
            for tag in asked.add_tags {
                if !change.add_tags.contains(&tag) {
                    change.add_tags.push(tag);
                }
            }
            for tag in asked.remove_tags {
                if !change.remove_tags.contains(&tag) {
                    change.remove_tags.push(tag);
                }
            }
        }
        // Junk marks the ticket spam only where it cannot be a classifier's
        // noise about real work; NotJunk restores a spam ticket.
        let mut junk_causes: BTreeMap<i64, &'static str> = BTreeMap::new();
        if !junk_marked.is_empty() || !not_junk_marked.is_empty() {
            let mut asked: Vec<i64> = junk_marked.iter().map(|(id, _)| *id).collect();
            asked.extend(&not_junk_marked);
            let facts = store.junk_facts(&asked).await.map_err(Reply::from)?;
            for (id, read) in &junk_marked {
                if let (Some((facts, spam)), Some(ticket)) = (facts.get(id), tickets.get(id))
                    && !spam
                    && junk_marks_spam(facts, *read)
                {
                    changes.entry(*ticket).or_default().disposition = Some(Some(Disposition::Spam));
                    junk_causes.insert(*ticket, "marked as junk over IMAP");
                }
            }
            for id in &not_junk_marked {
                if let (Some((_, true)), Some(ticket)) = (facts.get(id), tickets.get(id)) {
                    changes.entry(*ticket).or_default().disposition = Some(None);
                    junk_causes.insert(*ticket, "marked as not junk over IMAP");
                }
            }
        }
        store
            .imap_set_seen(agent.id, &seen, true)
            .await
            .map_err(Reply::from)?;
        store
            .imap_set_seen(agent.id, &unseen, false)
            .await
            .map_err(Reply::from)?;
        store
            .imap_set_own_keywords(agent.id, &own_added, &own_removed)
            .await
            .map_err(Reply::from)?;
        for (ticket, change) in changes {
            if change.is_empty() {
                continue;
            }
            let cause = junk_causes
                .get(&ticket)
                .copied()
                .unwrap_or("flags changed over IMAP");
            store
                .change_ticket(
                    ticket,
                    &ChangeRequest::asked(change, cause, &agent.actor(), chrono::Utc::now()),
                )
                .await
                .map_err(Reply::from)?;
        }
        // All stored: the session's flags are the asked ones.
        for (index, flags) in asked_flags {
            selected.messages[index].flags = flags;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kinds_follow_rfc_3501() {
        let flags = vec!["\\Seen".to_string(), "Billing".to_string()];
        assert_eq!(
            flag_op(&StoreType::Add, &flags).apply("\\Flagged"),
            "Billing \\Flagged \\Seen"
        );
        assert_eq!(
            flag_op(&StoreType::Remove, &flags).apply("\\Flagged billing"),
            "\\Flagged"
        );
        assert_eq!(
            flag_op(&StoreType::Replace, &flags).apply("\\Flagged"),
            "Billing \\Seen"
        );
        assert_eq!(
            flag_op(&StoreType::Add, &["\\seen".to_string()]).apply("\\Seen"),
            "\\Seen"
        );
    }
}
