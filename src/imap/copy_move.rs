//! COPY, MOVE and their UID forms (RFC 3501 §6.4.7, RFC 6851, RFC 4315).
//!
//! Into a view, a message carries its ticket: the view says what the ticket
//! becomes ([`Folder::move_into`](crate::domain::views::Folder::move_into)),
//! applied through the domain operation.
//! Into the agent's own folders, a message is copied and no ticket changes.

use super::response::uid_set;
use super::selected::Selected;
use super::session::{ImapSession, LoggedIn, Reply};
use crate::domain::change::{ChangeRequest, TicketChange};
use crate::domain::permission::{self, Asked, Ownership};
use crate::domain::views::Folder;
use crate::store::{Member, MessageRef, StorageItem, StoreError};
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::sequence::SequenceSet;
use std::collections::BTreeSet;

impl ImapSession {
    pub async fn copy_or_move(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        set: &SequenceSet,
        target: &ImapMailbox<'_>,
        uid: bool,
        moving: bool,
    ) -> Reply {
        let verb = if moving { "MOVE" } else { "COPY" };
        let target_name = self.name_from_client(target);
        let (target, folder) = match self.find_mailbox(login, &target_name).await {
            Ok(found) => found,
            Err(_) => {
                let name = super::rev2::wire_name(self.rev2, &target_name);
                return Reply::no(format!("[TRYCREATE] No mailbox named {name}"));
            }
        };
        let agent = &login.agent;
        if moving && selected.folder.is_knowledge() {
            return Reply::no(
                "[READ-ONLY] Knowledge folders are read-only: COPY an article to keep a copy",
            );
        }
        if moving && selected.read_only {
            return Reply::no("[READ-ONLY] Mailbox is read-only");
        }
        let Ok(indexes) = selected.resolve(set, uid) else {
            return Reply::bad("Invalid message sequence number");
        };
        if indexes.is_empty() {
            return Reply::ok(format!("{verb} completed (no messages)"));
        }
        let sources: Vec<(u32, MessageRef, String)> = indexes
            .iter()
            .map(|i| {
                let m = &selected.messages[*i];
                (m.uid, m.message, m.flags.clone())
            })
            .collect();
        let source_id = selected.mailbox.id;
        let source_is_view = selected.folder.is_view();
        let same_mailbox = source_id == target.id;
        let dest_uids: Vec<u32>;
        // The tickets a MOVE into a view changed: the source is brought up
        // to date for them only.
        let mut moved_tickets: Option<Vec<i64>> = None;

        // The Delete key in a client that moves to Trash: the templates
        // go (author, lead or admin), nothing lands in Trash.
        if selected.folder == Folder::Templates && folder == Folder::Trash && moving {
            let uids: Vec<u32> = indexes.iter().map(|i| selected.messages[*i].uid).collect();
            let source = selected.mailbox.id;
            if let Err(refused) = self.remove_templates(login, source, &uids).await {
                return refused;
            }
            return match self.app.store.imap_expunge(source, &uids).await {
                Ok(()) => Reply::ok(format!("{verb} completed; template(s) removed")),
                Err(err) => err.into(),
            };
        }
        // The same key in Held discards the held reply (written in its
        // ticket's history): a message of one's own has no place in the
        // Trash view, which shows tickets.
        if selected.folder == Folder::Held && folder == Folder::Trash && moving {
            let uids: Vec<u32> = indexes.iter().map(|i| selected.messages[*i].uid).collect();
            return match self
                .app
                .store
                .imap_expunge(selected.mailbox.id, &uids)
                .await
            {
                Ok(()) => Reply::ok(format!("{verb} completed; held reply(s) discarded")),
                Err(err) => err.into(),
            };
        }
        // A template is added by APPEND (its name is its subject, its
        // author the agent), not by copying a message there.
        if folder == Folder::Templates && !same_mailbox {
            return Reply::no(
                "[CANNOT] Templates holds the team's templates: save a message as a template (APPEND) to add one",
            );
        }
        if folder.is_view() {
            if same_mailbox {
                return Reply::no("[CANNOT] The message is already in this view");
            }
            let change = match folder.move_into(agent.id) {
                Ok(change) => change,
                Err(why) => return Reply::no(format!("[CANNOT] {why}")),
            };
            let ids: Vec<i64> = sources
                .iter()
                .filter_map(|(_, r, _)| match r {
                    MessageRef::Ticket(id) => Some(*id),
                    MessageRef::Stored(_) | MessageRef::Article(_) => None,
                })
                .collect();
            if ids.len() != sources.len() {
                return Reply::no(
                    "[CANNOT] Only tickets' messages go into views; this is a message of your own",
                );
            }
            let tickets = match self.tickets_to_change(login, &ids, &change).await {
                Ok(tickets) => tickets,
                Err(reply) => return reply,
            };
            let cause = format!("moved to {} over IMAP", folder.name());
            let actor = agent.actor();
            for ticket in &tickets {
                if let Err(err) = self
                    .app
                    .store
                    .change_ticket(
                        *ticket,
                        &ChangeRequest::asked(change.clone(), &cause, &actor, chrono::Utc::now()),
                    )
                    .await
                {
                    return err.into();
                }
            }
            // The target shows the ticket now: its UIDs for these messages.
            let moved: Vec<i64> = tickets.iter().copied().collect();
            let members = match async {
                self.reconcile_tickets(login, target.id, &folder, &moved)
                    .await?;
                self.app.store.imap_members(target.id).await
            }
            .await
            {
                Ok(members) => members,
                Err(err) => return err.into(),
            };
            dest_uids = map_uids(&sources, &members);
            moved_tickets = Some(moved);
        } else {
            let items: Vec<(StorageItem, String)> = sources
                .iter()
                .map(|(_, r, flags)| (StorageItem::Existing(*r), flags.clone()))
                .collect();
            dest_uids = match self
                .app
                .store
                .imap_add_to_storage(target.id, agent.id, items)
                .await
            {
                Ok(uids) => uids,
                Err(err) => return err.into(),
            };
        }

        let source_uids: Vec<u32> = sources.iter().map(|(uid, _, _)| *uid).collect();
        if source_is_view {
            selected.copied_out.extend(source_uids.iter().copied());
        }
        // Out of a view into a folder of one's own, a move is a copy: the
        // ticket has not changed, so the view keeps its message under the
        // UID the client knows (README: "copies the message; no ticket
        // changes"), instead of an EXPUNGE and the same message again
        // under a new UID.
        let into_own_folder = source_is_view && folder.is_storage();
        let moving = moving && !into_own_folder;
        if moving {
            // MOVE takes the messages out of the source even where their
            // ticket still belongs there (Queues/x → Urgent): they come back
            // under new UIDs at the next reconcile, as IMAP requires.
            if let Err(err) = self.app.store.imap_expunge(source_id, &source_uids).await {
                return err.into();
            }
            if source_is_view {
                let reconciled = match &moved_tickets {
                    Some(tickets) => {
                        self.reconcile_tickets(login, source_id, &selected.folder, tickets)
                            .await
                    }
                    None => self
                        .reconcile(login, source_id, &selected.folder, true, "")
                        .await
                        .map(|_| ()),
                };
                if let Err(err) = reconciled {
                    return err.into();
                }
            }
        }
        let code = if dest_uids.len() == source_uids.len() {
            format!(
                "[COPYUID {} {} {}] ",
                target.uidvalidity,
                uid_set(&source_uids),
                uid_set(&dest_uids)
            )
        } else {
            String::new()
        };
        if verb == "MOVE" {
            // RFC 6851: COPYUID comes in an untagged OK before the expunges.
            if !code.is_empty() {
                self.out
                    .extend_from_slice(format!("* OK {}Moved\r\n", code).as_bytes());
            }
            if moving {
                Reply::ok("MOVE completed")
            } else {
                Reply::ok("MOVE completed; copied: the view keeps the ticket's message")
            }
        } else {
            Reply::ok(format!("{code}COPY completed"))
        }
    }

    /// The tickets of these messages, all of which the agent may make this
    /// change to: checked before any is changed, so that a MOVE of several
    /// tickets does all or nothing. (The change itself is checked again
    /// where it is planned.)
    pub(super) async fn tickets_to_change(
        &self,
        login: &LoggedIn,
        messages: &[i64],
        change: &TicketChange,
    ) -> Result<BTreeSet<i64>, Reply> {
        let actor = login.agent.actor();
        let tickets = self
            .app
            .store
            .message_tickets(messages)
            .await
            .map_err(Reply::from)?;
        let mut numbers = BTreeSet::new();
        for id in messages {
            let Some(ticket) = tickets.get(id) else {
                return Err(Reply::no("[CANNOT] The message belongs to no ticket"));
            };
            numbers.insert(*ticket);
        }
        // Taking a ticket makes the agent its owner: they are the assignee.
        let me = login.agent.as_assignee();
        for number in &numbers {
            let ticket = self
                .app
                .store
                .ticket(*number)
                .await
                .map_err(|e: StoreError| Reply::from(e))?;
            let ownership = Ownership::of_email(ticket.owner.as_deref(), &actor);
            let new_owner = change.owner.filter(|owner| match owner {
                None => ownership != Ownership::Nobody,
                Some(id) => *id != actor.id || ownership != Ownership::TheActor,
            });
            let asked = Asked {
                number: *number,
                queue: &ticket.queue,
                ownership,
                new_queue: change
                    .queue
                    .as_deref()
                    .filter(|q| !q.eq_ignore_ascii_case(&ticket.queue)),
                new_owner,
                assignee: Some(&me),
            };
            permission::may_change(&actor, asked)
                .map_err(|why| Reply::no(format!("[NOPERM] {why}")))?;
        }
        Ok(numbers)
    }
}

/// The target UIDs of the source messages, in source order (for COPYUID).
fn map_uids(sources: &[(u32, MessageRef, String)], members: &[Member]) -> Vec<u32> {
    sources
        .iter()
        .filter_map(|(_, r, _)| {
            members
                .iter()
                .rev()
                .find(|m| m.message == *r)
                .map(|m| m.uid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::views::Folder;

    #[test]
    fn copyuid_maps_source_messages_to_their_target_uids() {
        let members = vec![
            Member {
                uid: 4,
                message: MessageRef::Ticket(10),
                flags: String::new(),
                modseq: 1,
            },
            Member {
                uid: 5,
                message: MessageRef::Ticket(11),
                flags: String::new(),
                modseq: 1,
            },
        ];
        let sources = vec![
            (1, MessageRef::Ticket(11), String::new()),
            (2, MessageRef::Ticket(10), String::new()),
        ];
        assert_eq!(map_uids(&sources, &members), vec![5, 4]);
        let missing = vec![(1, MessageRef::Ticket(99), String::new())];
        assert!(map_uids(&missing, &members).is_empty());
    }

    #[test]
    fn views_refuse_what_they_cannot_hold() {
        assert!(Folder::Overdue.move_into(1).is_err());
    }
}
