//! SEARCH and UID SEARCH with every RFC 3501 key (and CONDSTORE MODSEQ).
//!
//! TEXT, BODY, SUBJECT, FROM, TO and CC are answered from the search index
//! for the ticket messages it holds: the index gives the ids of every
//! matching message, and the mailbox's own membership (which already
//! reflects the agent's queues) is tested against them. They match as
//! substrings, as RFC 3501 §6.4.4 asks and as a client's "search on
//! server" expects (`invo` finds "invoice"; see `search::substring` for
//! how the index does that, and where it is a phrase rather than a
//! substring across words). Messages the index does not hold yet (newer
//! than its last commit: the small tail of a burst) and the agent's own
//! stored mail (Sent, Drafts) are read and matched as case-insensitive
//! substrings, as are BCC, HEADER and keys the index cannot answer.

use super::extended;
use super::selected::Selected;
use super::session::{ImapSession, Reply};
use crate::search::SearchIndex;
use crate::search::substring::ImapKey;
use crate::store::{Content, MessageRef};
use chrono::{DateTime, NaiveDate, Utc};
use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use mail_parser::{Address, HeaderValue, Message, MessageParser};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const BATCH: usize = 200;

/// What a message offers to the keys of a search.
struct Candidate<'a> {
    seq: u32,
    uid: u32,
    modseq: u64,
    flags: Vec<&'a str>,
    /// None when the message's bytes were not read (no key needs them) or
    /// are gone (expunged by another session).
    internal_date: Option<DateTime<Utc>>,
    raw: &'a [u8],
    parsed: Option<Message<'a>>,
    /// The message's id when the search index has it.
    indexed: Option<i64>,
}

/// A key's identity within one SEARCH command (the command outlives the
/// evaluation, so its address is stable).
fn key_id(key: &SearchKey<'_>) -> usize {
    key as *const SearchKey<'_> as usize
}

/// The index key and needle of a text key the index may answer.
fn index_query(key: &SearchKey<'_>) -> Option<(ImapKey, String)> {
    let (kind, text) = match key {
        SearchKey::Text(s) => (ImapKey::Text, s),
        SearchKey::Body(s) => (ImapKey::Body, s),
        SearchKey::Subject(s) => (ImapKey::Subject, s),
        SearchKey::From(s) => (ImapKey::From, s),
        SearchKey::To(s) => (ImapKey::To, s),
        SearchKey::Cc(s) => (ImapKey::Cc, s),
        _ => return None,
    };
    Some((kind, String::from_utf8_lossy(text.as_ref()).into_owned()))
}

/// Every key of a search, depth first.
fn walk<'k, 'a>(key: &'k SearchKey<'a>, out: &mut Vec<&'k SearchKey<'a>>) {
    out.push(key);
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().for_each(|k| walk(k, out)),
        SearchKey::Not(k) => walk(k, out),
        SearchKey::Or(a, b) => {
            walk(a, out);
            walk(b, out);
        }
        _ => {}
    }
}

/// The index queries of a search's keys, by key.
fn index_queries(criteria: &[SearchKey<'_>]) -> Vec<(usize, (ImapKey, String))> {
    let mut keys = Vec::new();
    for key in criteria {
        walk(key, &mut keys);
    }
    keys.into_iter()
        .filter_map(|key| Some((key_id(key), index_query(key)?)))
        .collect()
}

/// The ids of the indexed messages matching each query the index can
/// answer.
async fn index_answers(
    index: Arc<SearchIndex>,
    queries: Vec<(usize, (ImapKey, String))>,
) -> Result<HashMap<usize, HashSet<i64>>, crate::search::SearchError> {
    tokio::task::spawn_blocking(move || {
        let mut answers = HashMap::new();
        for (key, (kind, needle)) in queries {
            if let Some(query) = index.substring_query(kind, &needle) {
                let ids = index.matching_messages(query.as_ref())?;
                answers.insert(key, ids.into_iter().collect());
            }
        }
        Ok(answers)
    })
    .await
    .map_err(|err| crate::search::SearchError::Task(err.to_string()))?
}

/// Whether a key needs the message's bytes when the index answers what
/// it can.
fn needs_scan(key: &SearchKey<'_>, answers: &HashMap<usize, HashSet<i64>>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(|k| needs_scan(k, answers)),
        SearchKey::Not(k) => needs_scan(k, answers),
        SearchKey::Or(a, b) => needs_scan(a, answers) || needs_scan(b, answers),
        key if answers.contains_key(&key_id(key)) => false,
        key => needs_content(key),
    }
}

fn needs_content(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_content),
        SearchKey::Not(key) => needs_content(key),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(_, _)
        | SearchKey::Larger(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Smaller(_)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_)
        | SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_) => true,
        _ => false,
    }
}

fn uses_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(uses_modseq),
        SearchKey::Not(key) => uses_modseq(key),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::ModSequence { .. } => true,
        _ => false,
    }
}

/// Case-insensitive substring, as RFC 3501 asks ("case-insensitive ...
/// substring"); Unicode lowercasing covers non-ASCII text.
fn contains(haystack: &str, needle: &str) -> bool {
    needle.is_empty() || haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn address_text(value: &HeaderValue<'_>) -> String {
    let mut text = String::new();
    let mut push = |name: Option<&str>, address: Option<&str>| {
        if let Some(name) = name {
            text.push_str(name);
            text.push(' ');
        }
        if let Some(address) = address {
            text.push('<');
            text.push_str(address);
            text.push_str("> ");
        }
    };
    if let HeaderValue::Address(address) = value {
        match address {
            Address::List(list) => {
                for a in list {
                    push(a.name.as_deref(), a.address.as_deref());
                }
            }
            Address::Group(groups) => {
                for g in groups {
                    for a in &g.addresses {
                        push(a.name.as_deref(), a.address.as_deref());
                    }
                }
            }
        }
    }
    text
}

/// A header's text as searched: the raw value and its decoded form.
fn header_text(message: &Message<'_>, raw: &[u8], name: &str) -> String {
    let mut text = String::new();
    for header in message.headers() {
        if !header.name().eq_ignore_ascii_case(name) {
            continue;
        }
        let start = header.offset_start() as usize;
        let end = (header.offset_end() as usize).min(raw.len());
        if start < end {
            text.push_str(&String::from_utf8_lossy(&raw[start..end]));
            text.push(' ');
        }
        match header.value() {
            HeaderValue::Text(t) => text.push_str(t),
            HeaderValue::TextList(list) => text.push_str(&list.join(" ")),
            value @ HeaderValue::Address(_) => text.push_str(&address_text(value)),
            _ => {}
        }
        text.push(' ');
    }
    text
}

/// The decoded text of every text part (HTML as converted by mail-parser).
fn body_text(message: &Message<'_>) -> String {
    let mut text = String::new();
    for i in 0..message.text_body.len() {
        if let Some(part) = message.body_text(i) {
            text.push_str(&part);
            text.push('\n');
        }
    }
    for i in 0..message.html_body.len() {
        if let Some(part) = message.body_html(i) {
            text.push_str(&part);
            text.push('\n');
        }
    }
    text
}

fn sent_date(message: &Message<'_>) -> Option<NaiveDate> {
    let date = message.date()?;
    NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
}

fn in_set(set: &SequenceSet, value: u32, largest: u32) -> bool {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    let v = |x: &SeqOrUid| match x {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(x) => v(x) == value,
        Sequence::Range(a, b) => {
            let (a, b) = (v(a), v(b));
            (a.min(b)..=a.max(b)).contains(&value)
        }
    })
}

struct Context {
    count: u32,
    max_uid: u32,
    answers: HashMap<usize, HashSet<i64>>,
}

fn matches(key: &SearchKey<'_>, c: &Candidate<'_>, ctx: &Context) -> bool {
    if let Some(id) = c.indexed
        && let Some(found) = ctx.answers.get(&key_id(key))
    {
        return found.contains(&id);
    }
    let flag = |name: &str| c.flags.iter().any(|f| f.eq_ignore_ascii_case(name));
    let string = |s: &imap_codec::imap_types::core::AString<'_>| {
        String::from_utf8_lossy(s.as_ref()).into_owned()
    };
    let header = |name: &str, needle: &str| {
        c.parsed
            .as_ref()
            .is_some_and(|m| contains(&header_text(m, c.raw, name), needle))
    };
    let internal_day = c.internal_date.map(|date| date.date_naive());
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, c, ctx)),
        SearchKey::Or(a, b) => matches(a, c, ctx) || matches(b, c, ctx),
        SearchKey::Not(k) => !matches(k, c, ctx),
        SearchKey::SequenceSet(set) => in_set(set, c.seq, ctx.count),
        SearchKey::Uid(set) => in_set(set, c.uid, ctx.max_uid),
        SearchKey::All => true,
        SearchKey::Answered => flag("\\Answered"),
        SearchKey::Unanswered => !flag("\\Answered"),
        SearchKey::Deleted => flag("\\Deleted"),
        SearchKey::Undeleted => !flag("\\Deleted"),
        SearchKey::Draft => flag("\\Draft"),
        SearchKey::Undraft => !flag("\\Draft"),
        SearchKey::Flagged => flag("\\Flagged"),
        SearchKey::Unflagged => !flag("\\Flagged"),
        SearchKey::Seen => flag("\\Seen"),
        SearchKey::Unseen => !flag("\\Seen"),
        SearchKey::Recent => flag("\\Recent"),
        SearchKey::New => flag("\\Recent") && !flag("\\Seen"),
        SearchKey::Old => !flag("\\Recent"),
        SearchKey::Keyword(k) => flag(k.as_ref()),
        SearchKey::Unkeyword(k) => !flag(k.as_ref()),
        SearchKey::Larger(n) => c.raw.len() > *n as usize,
        SearchKey::Smaller(n) => c.raw.len() < *n as usize,
        SearchKey::Before(date) => internal_day.is_some_and(|day| day < *date.as_ref()),
        SearchKey::On(date) => internal_day.is_some_and(|day| day == *date.as_ref()),
        SearchKey::Since(date) => internal_day.is_some_and(|day| day >= *date.as_ref()),
        SearchKey::SentBefore(date) => c
            .parsed
            .as_ref()
            .and_then(sent_date)
            .is_some_and(|s| s < *date.as_ref()),
        SearchKey::SentOn(date) => c
            .parsed
            .as_ref()
            .and_then(sent_date)
            .is_some_and(|s| s == *date.as_ref()),
        SearchKey::SentSince(date) => c
            .parsed
            .as_ref()
            .and_then(sent_date)
            .is_some_and(|s| s >= *date.as_ref()),
        SearchKey::From(s) => header("From", &string(s)),
        SearchKey::To(s) => header("To", &string(s)),
        SearchKey::Cc(s) => header("Cc", &string(s)),
        SearchKey::Bcc(s) => header("Bcc", &string(s)),
        SearchKey::Subject(s) => header("Subject", &string(s)),
        SearchKey::Header(name, value) => {
            let name = string(name);
            let value = string(value);
            c.parsed.as_ref().is_some_and(|m| {
                m.headers()
                    .iter()
                    .any(|h| h.name().eq_ignore_ascii_case(&name))
                    && contains(&header_text(m, c.raw, &name), &value)
            })
        }
        SearchKey::Body(s) => body_contains(c, &string(s)),
        SearchKey::Text(s) => {
            let needle = string(s);
            let header_end = crate::mime::header::header_end(c.raw);
            contains(&String::from_utf8_lossy(&c.raw[..header_end]), &needle)
                || c.parsed.as_ref().is_some_and(|m| {
                    m.headers()
                        .iter()
                        .any(|h| contains(&header_text(m, c.raw, h.name()), &needle))
                })
                || body_contains(c, &needle)
        }
        SearchKey::ModSequence { modseq, .. } => c.modseq >= *modseq,
    }
}

fn body_contains(c: &Candidate<'_>, needle: &str) -> bool {
    c.parsed
        .as_ref()
        .is_some_and(|m| contains(&body_text(m), needle))
}

impl ImapSession {
    pub async fn search(
        &mut self,
        selected: &Selected,
        charset: Option<&Charset<'_>>,
        criteria: &[SearchKey<'_>],
        uid: bool,
    ) -> Reply {
        // A SEARCH that saves and fails with NO leaves `$` empty (RFC 5182
        // §2.1); its own `$` was written out before it ran.
        if self.search_return.as_ref().is_some_and(|w| w.save) {
            self.saved.clear();
        }
        if let Some(charset) = charset {
            let name = charset.as_ref().to_ascii_uppercase();
            if name != "UTF-8" && name != "US-ASCII" {
                return Reply::no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
            }
        }
        let with_modseq = criteria.iter().any(uses_modseq);
        if with_modseq {
            self.enable_condstore(selected);
        }
        let queries = index_queries(criteria);
        // The coverage is taken before the search: the searcher may be
        // newer by then, never older.
        let (answers, coverage) = match self.app.search.get() {
            Some(index) if !queries.is_empty() => {
                let coverage = index.coverage();
                match index_answers(index.clone(), queries).await {
                    Ok(answers) => (answers, Some(coverage)),
                    Err(err) => {
                        tracing::warn!(%err, "IMAP SEARCH: index unavailable, reading messages");
                        (HashMap::new(), None)
                    }
                }
            }
            _ => (HashMap::new(), None),
        };
        // Without the index, every text key reads the messages; with it,
        // only what the index cannot answer (and messages it lacks).
        let scan_all = criteria.iter().any(|k| needs_scan(k, &answers));
        let scan_unindexed = criteria.iter().any(needs_content);
        let coverage = coverage.filter(|_| !answers.is_empty());
        let indexed_id = |message: &MessageRef| match (message, &coverage) {
            (MessageRef::Ticket(id), Some(coverage)) if coverage.holds(*id) => Some(*id),
            _ => None,
        };
        let ctx = Context {
            count: selected.messages.len() as u32,
            max_uid: selected.max_uid(),
            answers,
        };
        let mut hits: Vec<(u32, u64)> = Vec::new();
        let mut hit_uids: Vec<u32> = Vec::new();
        let all: Vec<usize> = (0..selected.messages.len()).collect();
        let reads =
            |message: &MessageRef| scan_all || (scan_unindexed && indexed_id(message).is_none());
        for batch in all.chunks(BATCH) {
            let refs: Vec<MessageRef> = batch
                .iter()
                .map(|i| selected.messages[*i].message)
                .filter(|m| reads(m))
                .collect();
            let contents: HashMap<MessageRef, Content> = if refs.is_empty() {
                HashMap::new()
            } else {
                match self.app.store.imap_contents(&refs, None).await {
                    Ok(contents) => contents,
                    Err(err) => return err.into(),
                }
            };
            for &index in batch {
                let message = &selected.messages[index];
                let content = contents.get(&message.message);
                let raw = content.map(|c| c.raw.as_slice()).unwrap_or(&[]);
                let mut flags: Vec<&str> =
                    message.flags.split(' ').filter(|f| !f.is_empty()).collect();
                flags.extend(selected.extra_flags(index));
                let candidate = Candidate {
                    seq: index as u32 + 1,
                    uid: message.uid,
                    modseq: message.modseq,
                    flags,
                    internal_date: content.map(|c| c.internal_date),
                    raw,
                    parsed: if content.is_some() {
                        MessageParser::default().parse(raw)
                    } else {
                        None
                    },
                    indexed: indexed_id(&message.message),
                };
                if criteria.iter().all(|k| matches(k, &candidate, &ctx)) {
                    hit_uids.push(message.uid);
                    hits.push((
                        if uid { message.uid } else { candidate.seq },
                        message.modseq,
                    ));
                }
            }
        }
        if let Some(wanted) = self.search_return.take() {
            if wanted.save {
                // Messages are in UID order, so the first and last hits
                // are MIN and MAX.
                self.saved = match (wanted.saves_only_ends(), hit_uids.first()) {
                    (true, Some(first)) => {
                        let mut ends = Vec::new();
                        if wanted.min {
                            ends.push(*first);
                        }
                        if wanted.max {
                            ends.extend(hit_uids.last());
                        }
                        ends.dedup();
                        ends
                    }
                    _ => hit_uids,
                };
            }
            if wanted.returns_data() {
                extended::write_esearch(&mut self.out, &wanted, uid, &hits, with_modseq);
            }
            return Reply::ok("SEARCH completed");
        }
        let highest = with_modseq
            .then(|| hits.iter().map(|(_, m)| *m).max())
            .flatten();
        let mut line = String::from("* SEARCH");
        for (n, _) in &hits {
            line.push(' ');
            line.push_str(&n.to_string());
        }
        if let Some(highest) = highest {
            line.push_str(&format!(" (MODSEQ {highest})"));
        }
        line.push_str("\r\n");
        self.out.extend_from_slice(line.as_bytes());
        Reply::ok("SEARCH completed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matching_is_case_insensitive_substring() {
        assert!(contains("VPN Connection Reset", "connection reset"));
        assert!(contains("Grüße aus München", "MÜNCHEN"));
        assert!(!contains("billing", "invoice"));
        assert!(contains("anything", ""));
    }
}
