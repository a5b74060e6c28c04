//! FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 7162 CHANGEDSINCE).
//!
//! Message data is sliced from the stored bytes; nothing is re-encoded, so
//! what the client gets is what the customer sent.

use super::encode::{self, SectionKind};
use super::response;
use super::selected::Selected;
use super::session::{ImapSession, LoggedIn, Reply};
use crate::mime::header;
use crate::store::{Content, FlagOp, MessageRef, StoreError, join_flags};
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section as ImapSection,
};
use imap_codec::imap_types::sequence::SequenceSet;
use std::collections::HashMap;

/// Messages whose bytes are read from the store at once.
const BATCH: usize = 200;

/// Bytes read per message when a FETCH needs only the header (the first
/// sync of every client) and the header's length was not recorded (mail
/// stored before it was): enough for nearly every real header; a longer
/// one is read again whole.
const HEADER_PREFIX: usize = 16 * 1024;

fn part_numbers(part: &Option<Part>) -> Vec<u32> {
    part.as_ref()
        .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
        .unwrap_or_default()
}

fn part_prefix(part: &[u32]) -> String {
    part.iter().map(|n| format!("{n}.")).collect()
}

/// A requested section: its name in the response, its part path, and which
/// bytes it selects.
type Section = (String, Vec<u32>, SectionKind);

/// The section as the response names it (`1.2.HEADER.FIELDS (FROM TO)`),
/// and which bytes it selects.
fn describe_section(section: &Option<ImapSection<'_>>) -> Section {
    let fields = |names: &[imap_codec::imap_types::core::AString<'_>]| -> (String, Vec<Vec<u8>>) {
        let mut list = Vec::new();
        let mut raw = Vec::new();
        for name in names {
            let mut out = Vec::new();
            response::write_astring(&mut out, name.as_ref());
            list.push(String::from_utf8_lossy(&out).into_owned());
            raw.push(name.as_ref().to_vec());
        }
        (list.join(" "), raw)
    };
    match section {
        None => (String::new(), Vec::new(), SectionKind::Full),
        Some(ImapSection::Part(part)) => {
            let numbers: Vec<u32> = part.0.as_ref().iter().map(|n| n.get()).collect();
            let name = numbers
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".");
            (name, numbers, SectionKind::Full)
        }
        Some(ImapSection::Header(part)) => {
            let numbers = part_numbers(part);
            (
                format!("{}HEADER", part_prefix(&numbers)),
                numbers,
                SectionKind::Header,
            )
        }
        Some(ImapSection::HeaderFields(part, names)) => {
            let numbers = part_numbers(part);
            let (list, raw) = fields(names.as_ref());
            (
                format!("{}HEADER.FIELDS ({list})", part_prefix(&numbers)),
                numbers,
                SectionKind::HeaderFields(raw),
            )
        }
        Some(ImapSection::HeaderFieldsNot(part, names)) => {
            let numbers = part_numbers(part);
            let (list, raw) = fields(names.as_ref());
            (
                format!("{}HEADER.FIELDS.NOT ({list})", part_prefix(&numbers)),
                numbers,
                SectionKind::HeaderFieldsNot(raw),
            )
        }
        Some(ImapSection::Text(part)) => {
            let numbers = part_numbers(part);
            (
                format!("{}TEXT", part_prefix(&numbers)),
                numbers,
                SectionKind::Text,
            )
        }
        Some(ImapSection::Mime(part)) => {
            let numbers: Vec<u32> = part.0.as_ref().iter().map(|n| n.get()).collect();
            (
                format!("{}MIME", part_prefix(&numbers)),
                numbers,
                SectionKind::Mime,
            )
        }
    }
}

fn needs_content(item: &MessageDataItemName<'_>) -> bool {
    !matches!(
        item,
        MessageDataItemName::Uid | MessageDataItemName::Flags | MessageDataItemName::ModSeq
    )
}

/// Whether the item is answered from the message's header (and size)
/// alone, so the body need not be read.
fn header_only(item: &MessageDataItemName<'_>, section: &Option<Section>) -> bool {
    match item {
        MessageDataItemName::BodyExt { .. } => section.as_ref().is_some_and(|(_, part, kind)| {
            part.is_empty()
                && matches!(
                    kind,
                    SectionKind::Header
                        | SectionKind::HeaderFields(_)
                        | SectionKind::HeaderFieldsNot(_)
                )
        }),
        MessageDataItemName::Uid
        | MessageDataItemName::Flags
        | MessageDataItemName::ModSeq
        | MessageDataItemName::InternalDate
        | MessageDataItemName::Rfc822Size
        | MessageDataItemName::Envelope
        | MessageDataItemName::Rfc822Header => true,
        _ => false,
    }
}

/// Items that set `\Seen` when fetched (RFC 3501: BODY[...] without PEEK,
/// RFC822, RFC822.TEXT).
fn sets_seen(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Binary { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

impl ImapSession {
    pub async fn fetch(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        set: &SequenceSet,
        items: &MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) -> Reply {
        let mut items: Vec<MessageDataItemName<'_>> = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                let mut list = vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                ];
                if matches!(m, Macro::All | Macro::Full) {
                    list.push(MessageDataItemName::Envelope);
                }
                if matches!(m, Macro::Full) {
                    list.push(MessageDataItemName::Body);
                }
                list
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(list) => list.clone(),
        };
        let mut changed_since = None;
        let mut vanished_asked = false;
        for modifier in modifiers {
            match modifier {
                FetchModifier::ChangedSince(value) => changed_since = Some(value.get()),
                FetchModifier::Vanished => vanished_asked = true,
            }
        }
        // RFC 7162 §3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE,
        // once QRESYNC is enabled.
        if vanished_asked && !(uid && self.qresync && changed_since.is_some()) {
            return Reply::bad("VANISHED needs ENABLE QRESYNC, UID FETCH and CHANGEDSINCE");
        }
        if changed_since.is_some() && !items.contains(&MessageDataItemName::ModSeq) {
            items.push(MessageDataItemName::ModSeq);
        }
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let Ok(mut indexes) = selected.resolve(set, uid) else {
            return Reply::bad("Invalid message sequence number");
        };
        if items.contains(&MessageDataItemName::ModSeq) {
            self.enable_condstore(selected);
        }
        if let Some(since) = changed_since {
            if vanished_asked
                && let Err(err) = self
                    .write_vanished_earlier(selected, since, Some(set))
                    .await
            {
                return err.into();
            }
            indexes.retain(|i| selected.messages[*i].modseq > since);
        }
        if indexes.is_empty() {
            return Reply::ok("FETCH completed");
        }
        if let Err(reply) = self
            .mark_seen_by_fetch(login, selected, &indexes, &items)
            .await
        {
            return reply;
        }
        let with_content = items.iter().any(needs_content);
        let mut flags_requested = items.contains(&MessageDataItemName::Flags);
        if !flags_requested && items.iter().any(sets_seen) {
            // A changed \Seen is reported with the data that changed it.
            flags_requested = true;
            items.push(MessageDataItemName::Flags);
        }
        let condstore = self.condstore;
        if condstore && flags_requested && !items.contains(&MessageDataItemName::ModSeq) {
            items.push(MessageDataItemName::ModSeq);
        }
        // Section names and paths are the same for every message: work them
        // out once, not once per message of a 10,000-message sync.
        let sections: Vec<Option<Section>> = items
            .iter()
            .map(|item| match item {
                MessageDataItemName::BodyExt { section, .. } => Some(describe_section(section)),
                _ => None,
            })
            .collect();
        let prefix = items
            .iter()
            .zip(&sections)
            .all(|(item, section)| header_only(item, section))
            .then_some(HEADER_PREFIX);
        let mut vanished = false;
        let mut unknown_cte = false;
        for batch in indexes.chunks(BATCH) {
            let contents = if with_content {
                let refs: Vec<MessageRef> = batch
                    .iter()
                    .map(|i| selected.messages[*i].message)
                    .collect();
                match self.contents(&refs, prefix).await {
                    Ok(contents) => contents,
                    Err(err) => return err.into(),
                }
            } else {
                HashMap::new()
            };
            for &index in batch {
                vanished |= !self.write_fetch(
                    selected,
                    index,
                    &items,
                    &sections,
                    &contents,
                    &mut unknown_cte,
                );
            }
            if self.flush_if_large().await.is_err() {
                return Reply::no("connection lost");
            }
        }
        if unknown_cte {
            return Reply::no("[UNKNOWN-CTE] A part's Content-Transfer-Encoding cannot be decoded");
        }
        if vanished {
            // RFC 5530 and RFC 9051 §7.1: the data of messages another
            // session expunged is left out, and the client is told why
            // (as Dovecot answers); nothing is made up for them.
            return Reply::ok("[EXPUNGEISSUED] Some of the requested messages no longer exist");
        }
        Reply::ok("FETCH completed")
    }

    /// The messages' bytes, or with `prefix` their headers at least: a
    /// header that runs past the prefix is read again whole.
    async fn contents(
        &self,
        refs: &[MessageRef],
        prefix: Option<usize>,
    ) -> Result<HashMap<MessageRef, Content>, StoreError> {
        let mut contents = self.app.store.imap_contents(refs, prefix).await?;
        let truncated: Vec<MessageRef> = contents
            .iter()
            .filter(|(_, c)| {
                c.raw.len() < c.size && header::terminated_header_len(&c.raw).is_none()
            })
            .map(|(r, _)| *r)
            .collect();
        if !truncated.is_empty() {
            contents.extend(self.app.store.imap_contents(&truncated, None).await?);
        }
        Ok(contents)
    }

    /// Writes one message's FETCH response. False, writing nothing, when
    /// an item needs the message's bytes and the store no longer has them
    /// (another session expunged the message since this one last looked).
    fn write_fetch(
        &mut self,
        selected: &Selected,
        index: usize,
        items: &[MessageDataItemName<'_>],
        sections: &[Option<Section>],
        contents: &HashMap<MessageRef, Content>,
        unknown_cte: &mut bool,
    ) -> bool {
        let message = &selected.messages[index];
        let content = contents.get(&message.message);
        if content.is_none() && items.iter().any(needs_content) {
            return false;
        }
        let out = &mut self.out;
        out.extend_from_slice(format!("* {} FETCH (", index + 1).as_bytes());
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                out.push(b' ');
            }
            match (item, content) {
                (MessageDataItemName::Uid, _) => {
                    out.extend_from_slice(format!("UID {}", message.uid).as_bytes())
                }
                (MessageDataItemName::Flags, _) => {
                    out.extend_from_slice(b"FLAGS ");
                    response::write_flags(out, &message.flags, selected.extra_flags(index));
                }
                (MessageDataItemName::ModSeq, _) => {
                    out.extend_from_slice(format!("MODSEQ ({})", message.modseq).as_bytes())
                }
                // Checked on entry: every other item has the message's bytes.
                (_, None) => {}
                (MessageDataItemName::InternalDate, Some(content)) => {
                    out.extend_from_slice(b"INTERNALDATE ");
                    response::write_internal_date(out, content.internal_date);
                }
                (MessageDataItemName::Rfc822Size, Some(content)) => {
                    out.extend_from_slice(format!("RFC822.SIZE {}", content.size).as_bytes())
                }
                (MessageDataItemName::Envelope, Some(content)) => {
                    out.extend_from_slice(b"ENVELOPE ");
                    encode::write_envelope(out, &content.raw);
                }
                (MessageDataItemName::BodyStructure, Some(content)) => {
                    out.extend_from_slice(b"BODYSTRUCTURE ");
                    encode::write_bodystructure(out, &content.raw, true);
                }
                (MessageDataItemName::Body, Some(content)) => {
                    out.extend_from_slice(b"BODY ");
                    encode::write_bodystructure(out, &content.raw, false);
                }
                (MessageDataItemName::Rfc822, Some(content)) => {
                    out.extend_from_slice(b"RFC822 ");
                    encode::write_literal(out, &content.raw);
                }
                (MessageDataItemName::Rfc822Header, Some(content)) => {
                    let raw = content.raw.as_slice();
                    out.extend_from_slice(b"RFC822.HEADER ");
                    encode::write_literal(out, &raw[..header::header_end(raw)]);
                }
                (MessageDataItemName::Rfc822Text, Some(content)) => {
                    let raw = content.raw.as_slice();
                    out.extend_from_slice(b"RFC822.TEXT ");
                    encode::write_literal(out, &raw[header::header_end(raw)..]);
                }
                (MessageDataItemName::BodyExt { partial, .. }, Some(content)) => {
                    let Some(Some((name, part, kind))) = sections.get(n) else {
                        continue;
                    };
                    out.extend_from_slice(format!("BODY[{name}]").as_bytes());
                    let data = encode::section_bytes(&content.raw, part, kind.clone());
                    match (data, partial) {
                        (None, _) => out.extend_from_slice(b" NIL"),
                        (Some(data), None) => {
                            out.push(b' ');
                            encode::write_literal(out, &data);
                        }
                        (Some(data), Some((origin, length))) => {
                            let start = (*origin as usize).min(data.len());
                            let end = start.saturating_add(length.get() as usize).min(data.len());
                            out.extend_from_slice(format!("<{origin}> ").as_bytes());
                            encode::write_literal(out, &data[start..end]);
                        }
                    }
                }
                (
                    MessageDataItemName::Binary {
                        section, partial, ..
                    },
                    Some(content),
                ) => {
                    let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
                    let name = path
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(".");
                    out.extend_from_slice(format!("BINARY[{name}]").as_bytes());
                    let data = match encode::binary_bytes(&content.raw, &path) {
                        Some(Ok(data)) => data,
                        Some(Err(encode::UnknownCte)) => {
                            *unknown_cte = true;
                            out.extend_from_slice(b" NIL");
                            continue;
                        }
                        None => {
                            out.extend_from_slice(b" NIL");
                            continue;
                        }
                    };
                    let data: &[u8] = match partial {
                        None => {
                            out.push(b' ');
                            &data
                        }
                        Some((origin, length)) => {
                            let start = (*origin as usize).min(data.len());
                            let end = start.saturating_add(length.get() as usize).min(data.len());
                            out.extend_from_slice(format!("<{origin}> ").as_bytes());
                            &data[start..end]
                        }
                    };
                    // Decoded data may hold NUL: then a literal8 (RFC 3516
                    // §4.1), which carries it as it is.
                    if data.contains(&0) {
                        out.push(b'~');
                        out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
                        out.extend_from_slice(data);
                    } else {
                        encode::write_literal(out, data);
                    }
                }
                (MessageDataItemName::BinarySize { section }, Some(content)) => {
                    let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
                    let name = path
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(".");
                    match encode::binary_bytes(&content.raw, &path) {
                        Some(Ok(data)) => out.extend_from_slice(
                            format!("BINARY.SIZE[{name}] {}", data.len()).as_bytes(),
                        ),
                        Some(Err(encode::UnknownCte)) => {
                            *unknown_cte = true;
                            out.extend_from_slice(format!("BINARY.SIZE[{name}] 0").as_bytes());
                        }
                        None => out.extend_from_slice(format!("BINARY.SIZE[{name}] 0").as_bytes()),
                    }
                }
            }
        }
        out.extend_from_slice(b")\r\n");
        true
    }

    /// Sets `\Seen` on messages fetched with BODY[...] (not PEEK).
    async fn mark_seen_by_fetch(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        indexes: &[usize],
        items: &[MessageDataItemName<'_>],
    ) -> Result<(), Reply> {
        if selected.read_only || !items.iter().any(sets_seen) {
            return Ok(());
        }
        let unseen: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|i| {
                !selected.messages[*i]
                    .flags
                    .split(' ')
                    .any(|f| f == "\\Seen")
            })
            .collect();
        if unseen.is_empty() {
            return Ok(());
        }
        for i in &unseen {
            let flags = &mut selected.messages[*i].flags;
            *flags = join_flags(flags.split(' ').chain(["\\Seen"]));
        }
        let store = &self.app.store;
        if selected.folder.is_view() {
            let ids: Vec<i64> = unseen
                .iter()
                .filter_map(|i| match selected.messages[*i].message {
                    MessageRef::Ticket(id) => Some(id),
                    MessageRef::Stored(_) | MessageRef::Article(_) => None,
                })
                .collect();
            store
                .imap_set_seen(login.agent.id, &ids, true)
                .await
                .map_err(Reply::from)?;
        } else {
            let uids: Vec<u32> = unseen.iter().map(|i| selected.messages[*i].uid).collect();
            let seen = FlagOp::Add(vec!["\\Seen".to_string()]);
            let modseq = store
                .imap_update_flags(selected.mailbox.id, &uids, &seen)
                .await
                .map_err(Reply::from)?;
            for i in &unseen {
                selected.messages[*i].modseq = modseq;
            }
        }
        Ok(())
    }
}
