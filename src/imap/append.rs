//! APPEND (RFC 3501 §6.3.11, RFC 4315 APPENDUID).
//!
//! Only the agent's own folders take new messages: a view holds tickets,
//! and tickets are opened by mail, not by uploading it. A copy appended to
//! Sent that postdesk already recorded as a reply (same Message-ID) is
//! linked to that reply instead of being stored twice.

use super::session::{ImapSession, LoggedIn, Reply};
use crate::domain::sent_copy::submission_digest;
use crate::domain::views::Folder;
use crate::store::{MessageRef, StorageItem, join_flags};
use chrono::{DateTime, Utc};
use imap_codec::imap_types::datetime::DateTime as ImapDateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;

impl ImapSession {
    pub async fn append(
        &mut self,
        login: &LoggedIn,
        target: &ImapMailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&ImapDateTime>,
        message: &LiteralOrLiteral8<'_>,
    ) -> Reply {
        let name = self.name_from_client(target);
        if let Err(refusal) = self.app.disk.admit() {
            return Reply::no(format!("[UNAVAILABLE] Not stored: {refusal}"));
        }
        let (mailbox, folder) = match self.find_mailbox(login, &name).await {
            Ok(found) => found,
            Err(reply) if reply.text.starts_with("[NONEXISTENT]") => {
                let name = super::rev2::wire_name(self.rev2, &name);
                return Reply::no(format!("[TRYCREATE] No mailbox named {name}"));
            }
            Err(reply) => return reply,
        };
        if folder.is_knowledge() {
            return Reply::no(format!(
                "[CANNOT] {name} is read-only: write an article by mail to {}, \
                 or reply to an article's message for its next revision",
                self.app.config.knowledge_address()
            ));
        }
        if folder.is_view() {
            return Reply::no(format!(
                "[CANNOT] {name} is a ticket view; append to Drafts, Sent or a folder of your own"
            ));
        }
        let encoded;
        let raw: &[u8] = match message {
            LiteralOrLiteral8::Literal(literal) => literal.data(),
            LiteralOrLiteral8::Literal8(literal) => {
                encoded = super::encode::encode_binary_parts(literal.data.as_ref());
                &encoded
            }
        };
        if raw.is_empty() {
            return Reply::no("[CANNOT] Empty message");
        }
        let stored_flags: Vec<String> = flags.iter().map(ToString::to_string).collect();
        let flags = join_flags(stored_flags.iter().map(String::as_str));
        let internal_date: Option<DateTime<Utc>> = date.map(|d| d.as_ref().with_timezone(&Utc));
        if folder == Folder::Templates {
            return self
                .append_template(login, &mailbox, raw, flags, internal_date)
                .await;
        }
        let mut item = StorageItem::New {
            raw: raw.to_vec(),
            internal_date,
        };
        if folder == Folder::Sent
            && let Some(id) = message_id_of(raw)
        {
            match self
                .app
                .store
                .reply_by_message_id(&id, login.agent.id, &submission_digest(raw))
                .await
            {
                Ok(Some(reply)) => item = StorageItem::Existing(MessageRef::Ticket(reply)),
                Ok(None) => {}
                Err(err) => return err.into(),
            }
        }
        match self
            .app
            .store
            .imap_add_to_storage(mailbox.id, login.agent.id, vec![(item, flags)])
            .await
        {
            Ok(uids) => match uids.first() {
                Some(uid) => Reply::ok(format!(
                    "[APPENDUID {} {uid}] APPEND completed",
                    mailbox.uidvalidity
                )),
                // Stored, but under no UID the store told of: APPENDUID
                // may be left out (RFC 4315 §3), a made-up UID may not.
                None => Reply::ok("APPEND completed"),
            },
            Err(err) => err.into(),
        }
    }
}

/// The Message-ID of a message, as the store keeps it (without brackets).
fn message_id_of(raw: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse_headers(raw)?;
    parsed.message_id().map(str::to_string)
}
