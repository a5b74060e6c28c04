//! Keeps the index up with the store.
//!
//! Two cursors: message ids (new messages become documents) and ticket
//! event ids (every change of a ticket writes an event in the same
//! transaction, so an event means "index this ticket's messages again").
//! Both are committed with the index as its payload, so the index says
//! itself how far it got: a server that stopped in the middle resumes
//! there, and `postdesk search` can tell how far behind the index is.
//!
//! Ingest never waits for the index: the indexer reads what the store has
//! committed, in batches, and commits the index at most every
//! `commit_interval`. On PostgreSQL, ids are handed out before their
//! transactions commit, so a smaller id can appear after a larger one: the
//! ids skipped over are kept as gaps and asked for again until they appear
//! or `GAP_WAIT` has passed (a rolled-back transaction leaves a gap for
//! ever). The committed cursor stays below the oldest open gap.

use super::document::MessageText;
use super::substring;
use super::{Fields, Progress, SavedCursor, SearchError, SearchIndex};
use crate::config::Config;
use crate::domain::ticket::EventKind;
use crate::net::Shutdown;
use crate::store::{IndexableMessage, IndexableTicket, Store};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tantivy::{IndexWriter, TantivyDocument, TantivyError, Term};

/// Messages read from the store per round.
const MESSAGE_BATCH: i64 = 500;
/// Ticket events read per round.
const EVENT_BATCH: i64 = 2000;
/// Memory for the writer's in-progress segments (tantivy needs at least
/// 15 MB per indexing thread).
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// How long a skipped id is waited for.
const GAP_WAIT: Duration = Duration::from_secs(30);
/// Gaps tracked at most; a larger jump (a sequence reset) is not a gap.
const MAX_GAPS: i64 = 1000;
/// How often the store is looked at without a change announced: on
/// SQLite for the CLI's changes; on PostgreSQL, where every process
/// announces its changes to every node, only while ids skipped over are
/// waited for (or a rebuild was asked for).
const POLL: Duration = Duration::from_secs(2);
/// The file `postdesk reindex` leaves in the index directory for a
/// running server.
pub(crate) const REBUILD_REQUEST: &str = "rebuild.request";
/// New tickets older than this get no "similar tickets" note (an import of
/// old mail, a rebuild of the index).
const SIMILAR_WINDOW_MINUTES: i64 = 60;

/// One cursor over ids that may commit out of order.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    seen: i64,
    gaps: BTreeMap<i64, Instant>,
}

impl Cursor {
    fn new(through: i64) -> Cursor {
        Cursor {
            seen: through,
            gaps: BTreeMap::new(),
        }
    }

    /// The cursor as committed: its gaps are waited for again from `now`
    /// (a transaction in flight at a crash commits within moments, or
    /// never), the ids it had read are not read again.
    fn restore(durable: i64, saved: Option<&SavedCursor>, now: Instant) -> Cursor {
        let mut cursor = Cursor::new(durable);
        if let Some(saved) = saved
            && saved.seen >= durable
        {
            cursor.seen = saved.seen;
            for gap in saved.gaps.iter().filter(|gap| **gap > durable) {
                cursor.gaps.insert(*gap, now);
            }
        }
        cursor
    }

    fn saved(&self) -> SavedCursor {
        SavedCursor {
            seen: self.seen,
            gaps: self.gaps(),
        }
    }

    /// Ids skipped over that may still appear.
    fn gaps(&self) -> Vec<i64> {
        self.gaps.keys().copied().collect()
    }

    /// Records ids read (in ascending order).
    fn saw(&mut self, ids: impl IntoIterator<Item = i64>, now: Instant) {
        for id in ids {
            self.gaps.remove(&id);
            if id > self.seen {
                if id - self.seen - 1 <= MAX_GAPS {
                    for gap in self.seen + 1..id {
                        self.gaps.insert(gap, now);
                    }
                }
                self.seen = id;
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        self.gaps
            .retain(|_, since| now.duration_since(*since) < GAP_WAIT);
    }

    /// Every id up to this one has been read.
    fn durable(&self) -> i64 {
        self.gaps
            .keys()
            .next()
            .map(|gap| gap - 1)
            .unwrap_or(self.seen)
    }
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy)]
pub struct IndexRound {
    /// Rows read from the store (0: caught up).
    pub read: usize,
    /// Documents written.
    pub indexed: usize,
}

/// The one writer of an index.
pub struct Indexer {
    index: Arc<SearchIndex>,
    writer: Arc<Mutex<IndexWriter>>,
    messages: Cursor,
    events: Cursor,
    generation: Option<String>,
    dirty: bool,
    /// The positions (messages, events) the last commit saved.
    committed: (i64, i64),
    /// Tickets opened since the last commit: they get a similar-tickets
    /// note once their first message is searchable.
    created: Vec<(i64, DateTime<Utc>)>,
}

/// Segments under this many documents count as one size when the merge
/// policy groups segments of like size.
///
/// tantivy's default is 10,000: mail arriving steadily is committed every
/// `commit_interval` in segments of a few dozen messages, all "one size",
/// so every eighth commit merged them with the segment the last merge
/// made, rewriting up to 10,000 messages every few seconds. At 50 msg/s
/// with a team in IDLE those merges took 41 % of the server's CPU (issue
/// 17). Below 500, small segments merge with small ones and each message
/// is rewritten a few times on its way up the levels; a query meets at
/// most about eight more segments.
const MERGE_MIN_LAYER_DOCS: u32 = 500;

fn merge_policy() -> tantivy::indexer::LogMergePolicy {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_min_layer_size(MERGE_MIN_LAYER_DOCS);
    policy
}

impl Indexer {
    /// Takes the index's write lock; [`SearchError::Locked`] when another
    /// process holds it.
    pub fn new(index: Arc<SearchIndex>) -> Result<Indexer, SearchError> {
        let writer = match index.index.writer(WRITER_MEMORY) {
            Ok(writer) => writer,
            Err(TantivyError::LockFailure(..)) => {
                return Err(SearchError::Locked(index.dir.clone()));
            }
            Err(err) => return Err(err.into()),
        };
        writer.set_merge_policy(Box::new(merge_policy()));
        let progress = index.progress()?;
        let now = Instant::now();
        Ok(Indexer {
            writer: Arc::new(Mutex::new(writer)),
            messages: Cursor::restore(progress.messages, progress.message_cursor.as_ref(), now),
            events: Cursor::restore(progress.events, progress.event_cursor.as_ref(), now),
            committed: (progress.messages, progress.events),
            generation: progress.generation,
            dirty: false,
            created: Vec::new(),
            index,
        })
    }

    /// The message id the index has read up to.
    pub fn position(&self) -> i64 {
        self.messages.durable()
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether ids skipped over are still waited for (they may commit
    /// without anyone announcing it again).
    fn has_gaps(&self) -> bool {
        !self.messages.gaps.is_empty() || !self.events.gaps.is_empty()
    }

    fn rebuild_requested(&self) -> bool {
        self.index.dir.join(REBUILD_REQUEST).exists()
    }

    fn with_writer<T>(
        writer: &Mutex<IndexWriter>,
        f: impl FnOnce(&mut IndexWriter) -> tantivy::Result<T>,
    ) -> Result<T, SearchError> {
        let mut guard = writer
            .lock()
            .map_err(|_| SearchError::Task("index writer lock poisoned".into()))?;
        Ok(f(&mut guard)?)
    }

    /// Reads one batch of new messages and ticket changes and writes their
    /// documents (not yet committed).
    pub async fn round(&mut self, store: &Store) -> Result<IndexRound, SearchError> {
        let messages = store
            .indexable_messages(self.messages.seen, &self.messages.gaps(), MESSAGE_BATCH)
            .await?;
        let changes = store
            .ticket_changes(self.events.seen, &self.events.gaps(), EVENT_BATCH)
            .await?;
        let read = messages.len() + changes.len();
        if read == 0 {
            return Ok(IndexRound::default());
        }
        // A message read now gets its ticket's current state; only the
        // messages indexed in earlier rounds need indexing again when their
        // ticket changes, and only for changes of what the index holds.
        let refresh: BTreeSet<i64> = changes
            .iter()
            .filter(|c| c.kind.changes_indexed_fields())
            .map(|c| c.ticket)
            .collect();
        for change in &changes {
            if change.kind == EventKind::Created {
                self.created.push((change.ticket, change.at));
            }
        }
        let message_ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
        let event_ids: Vec<i64> = changes.iter().map(|c| c.event).collect();
        let fresh: Vec<IndexableMessage> = messages
            .into_iter()
            .filter(IndexableMessage::indexed)
            .collect();
        let refresh: Vec<i64> = refresh.into_iter().collect();
        let again: Vec<IndexableMessage> = if refresh.is_empty() {
            Vec::new()
        } else {
            let in_batch: BTreeSet<i64> = message_ids.iter().copied().collect();
            store
                .indexable_messages_of(&refresh, self.messages.seen)
                .await?
                .into_iter()
                .filter(|m| m.indexed() && !in_batch.contains(&m.id))
                .collect()
        };
        let numbers: Vec<i64> = fresh
            .iter()
            .chain(again.iter())
            .filter_map(|m| m.ticket)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tickets = store.indexable_tickets(&numbers).await?;
        let fields = self.index.fields;
        let writer = self.writer.clone();
        let indexed = tokio::task::spawn_blocking(move || {
            Self::with_writer(&writer, |writer| {
                for number in &refresh {
                    writer.delete_term(Term::from_field_u64(fields.ticket, id_u64(*number)));
                }
                for message in &fresh {
                    writer.delete_term(Term::from_field_u64(fields.message, id_u64(message.id)));
                }
                let mut indexed = 0;
                for message in fresh.iter().chain(again.iter()) {
                    let ticket = message.ticket.and_then(|t| tickets.get(&t));
                    writer.add_document(document(&fields, message, ticket))?;
                    indexed += 1;
                }
                Ok(indexed)
            })
        })
        .await
        .map_err(|err| SearchError::Task(err.to_string()))??;
        let now = Instant::now();
        self.messages.saw(message_ids, now);
        self.events.saw(event_ids, now);
        self.dirty = true;
        Ok(IndexRound { read, indexed })
    }

    /// Makes everything written so far durable and searchable, with the
    /// cursors.
    pub async fn commit(&mut self) -> Result<(), SearchError> {
        let now = Instant::now();
        self.messages.expire(now);
        self.events.expire(now);
        let progress = Progress {
            messages: self.messages.durable(),
            events: self.events.durable(),
            generation: self.generation.clone(),
            message_cursor: Some(self.messages.saved()),
            event_cursor: Some(self.events.saved()),
        };
        let positions = (progress.messages, progress.events);
        let payload =
            serde_json::to_string(&progress).map_err(|err| SearchError::Task(err.to_string()))?;
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            Self::with_writer(&writer, |writer| {
                let mut prepared = writer.prepare_commit()?;
                prepared.set_payload(&payload);
                prepared.commit()
            })
        })
        .await
        .map_err(|err| SearchError::Task(err.to_string()))??;
        self.index.reload()?;
        self.dirty = false;
        self.committed = positions;
        Ok(())
    }

    /// Whether skipped ids gave up waiting since the last commit, so that
    /// the position moved without a document written: it is committed
    /// too, or a restart would wait for those ids again.
    pub fn position_moved(&mut self) -> bool {
        let now = Instant::now();
        self.messages.expire(now);
        self.events.expire(now);
        (self.messages.durable(), self.events.durable()) != self.committed
    }

    /// Reads and indexes until the index has everything the store has,
    /// committing as it goes; `progress` hears the message cursor after
    /// each round.
    pub async fn catch_up(
        &mut self,
        store: &Store,
        mut progress: impl FnMut(i64),
    ) -> Result<usize, SearchError> {
        let mut indexed = 0;
        let mut last_commit = Instant::now();
        loop {
            let round = self.round(store).await?;
            indexed += round.indexed;
            progress(self.messages.seen);
            if round.read == 0 {
                break;
            }
            if last_commit.elapsed() > Duration::from_secs(5) {
                self.commit().await?;
                last_commit = Instant::now();
            }
        }
        if self.dirty {
            self.commit().await?;
        }
        Ok(indexed)
    }

    /// Empties the index and starts again from the first message; the new
    /// state is committed at once under `generation`, so that whoever asked
    /// can tell the rebuild has begun.
    pub async fn restart(&mut self, generation: Option<String>) -> Result<(), SearchError> {
        Self::with_writer(&self.writer, |writer| {
            writer.delete_all_documents().map(|_| ())
        })?;
        self.messages = Cursor::new(0);
        self.events = Cursor::new(0);
        self.generation = generation;
        self.created.clear();
        self.dirty = true;
        self.commit().await
    }

    /// A rebuild asked for by `postdesk reindex` while this process holds
    /// the index: restarts and returns true.
    pub async fn take_rebuild_request(&mut self) -> Result<bool, SearchError> {
        let path = self.index.dir.join(REBUILD_REQUEST);
        let Ok(token) = std::fs::read_to_string(&path) else {
            return Ok(false);
        };
        tracing::info!("rebuilding the search index as requested");
        self.restart(Some(token.trim().to_string())).await?;
        let _ = std::fs::remove_file(&path);
        Ok(true)
    }

    /// Tickets opened recently whose messages are now committed.
    fn take_created(&mut self) -> Vec<i64> {
        let since = Utc::now() - chrono::Duration::minutes(SIMILAR_WINDOW_MINUTES);
        let mut created: Vec<i64> = self
            .created
            .drain(..)
            .filter(|(_, at)| *at > since)
            .map(|(ticket, _)| ticket)
            .collect();
        created.dedup();
        created
    }
}

/// Asks the process that holds the index to rebuild it; returns the token
/// that its [`Progress::generation`] shows once the rebuild has begun.
pub fn request_rebuild(dir: &Path) -> Result<String, SearchError> {
    let token = format!("{:016x}", rand::random::<u64>());
    std::fs::write(dir.join(REBUILD_REQUEST), &token).map_err(|source| SearchError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(token)
}

fn id_u64(id: i64) -> u64 {
    u64::try_from(id).unwrap_or_default()
}

/// The document of one message, with its ticket's state.
fn document(
    fields: &Fields,
    message: &IndexableMessage,
    ticket: Option<&IndexableTicket>,
) -> TantivyDocument {
    let text = MessageText::parse(&message.raw);
    let mut doc = TantivyDocument::default();
    doc.add_u64(fields.message, id_u64(message.id));
    if let Some(number) = message.ticket {
        doc.add_u64(fields.ticket, id_u64(number));
    }
    doc.add_text(
        fields.kind,
        if message.is_system_note() {
            "system"
        } else {
            message.kind.as_str()
        },
    );
    if let Some(ticket) = ticket {
        doc.add_text(fields.queue, &ticket.queue);
        doc.add_text(fields.status, ticket.status.as_str());
        doc.add_text(fields.priority, ticket.priority.as_str());
        for tag in &ticket.tags {
            doc.add_text(fields.tag, tag);
        }
        if let Some(disposition) = ticket.disposition {
            doc.add_text(fields.disposition, disposition.as_str());
        }
        doc.add_text(fields.customer, &ticket.customer_address);
        if let Some(name) = &ticket.customer_name {
            doc.add_text(fields.customer, name);
        }
    }
    // What the store read from the header when the parser found nothing.
    let subject = if text.subject.is_empty() {
        &message.subject
    } else {
        &text.subject
    };
    doc.add_text(fields.subject, subject);
    doc.add_pre_tokenized_text(fields.subject_suffixes, substring::value_suffixes(subject));
    let from = if text.from.is_empty() {
        match &message.from_name {
            Some(name) => format!("{name} <{}>", message.sender),
            None => message.sender.clone(),
        }
    } else {
        text.from.clone()
    };
    doc.add_pre_tokenized_text(fields.from_suffixes, substring::value_suffixes(&from));
    doc.add_text(fields.from, from);
    doc.add_text(fields.to, &text.to);
    doc.add_pre_tokenized_text(fields.to_suffixes, substring::value_suffixes(&text.to));
    doc.add_text(fields.cc, &text.cc);
    doc.add_pre_tokenized_text(fields.cc_suffixes, substring::value_suffixes(&text.cc));
    doc.add_text(fields.body, &text.body);
    doc.add_text(fields.quoted, &text.quoted);
    for name in &text.attachments {
        doc.add_text(fields.attachment, name);
    }
    doc.add_pre_tokenized_text(
        fields.word_suffixes,
        substring::word_suffixes(
            [text.body.as_str(), text.quoted.as_str()]
                .into_iter()
                .chain(text.attachments.iter().map(String::as_str)),
        ),
    );
    doc.add_date(
        fields.date,
        tantivy::DateTime::from_timestamp_secs(message.received_at.timestamp()),
    );
    doc
}

/// Takes the index's write lock, waiting while another process (an
/// offline `postdesk reindex`) holds it; meanwhile that process's commits
/// are made visible to this one's searches.
async fn acquire(index: &Arc<SearchIndex>, shutdown: &mut Shutdown) -> Option<Indexer> {
    let mut warned = false;
    loop {
        match Indexer::new(index.clone()) {
            Ok(indexer) => return Some(indexer),
            Err(err) => {
                if !warned {
                    tracing::warn!(%err, "search index: waiting for its write lock");
                    warned = true;
                }
                if let Err(err) = index.reload() {
                    tracing::debug!(%err, "search index reload");
                }
            }
        }
        tokio::select! {
            _ = shutdown.stopped() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        if shutdown.is_stopping() {
            return None;
        }
    }
}

/// A second's pause after a failure (cut short by the shutdown).
async fn pause(shutdown: &mut Shutdown) {
    tokio::select! {
        _ = shutdown.stopped() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

/// A new writer after the old one failed: tantivy's writer is dead for
/// good after an I/O error (a full disk), and what it held uncommitted is
/// lost with it. The new one starts from the position the index last
/// committed, so those messages are read from the store again.
async fn reopen(
    indexer: Indexer,
    index: &Arc<SearchIndex>,
    shutdown: &mut Shutdown,
) -> Option<Indexer> {
    drop(indexer);
    let fresh = acquire(index, shutdown).await?;
    // The failed commits left segment files nothing refers to: on a full
    // disk they hold the very space the index needs to catch up.
    let collected = Indexer::with_writer(&fresh.writer, |writer| {
        writer.garbage_collect_files().wait()
    });
    if let Err(err) = collected {
        tracing::warn!(%err, "search index garbage collection");
    }
    tracing::info!(position = fresh.position(), "search index writer reopened");
    Some(fresh)
}

/// Runs the indexer until `shutdown`: follows the store, commits at most
/// every `commit_interval`, and writes the similar-tickets notes of new
/// tickets once they are searchable.
pub async fn run(
    store: Store,
    config: Arc<Config>,
    index: Arc<SearchIndex>,
    mut shutdown: Shutdown,
) {
    let Some(mut indexer) = acquire(&index, &mut shutdown).await else {
        return;
    };
    // Similar-ticket notes are written beside the indexing, so that a
    // burst of new tickets does not hold up making mail searchable.
    let (notes, note_queue) = tokio::sync::mpsc::channel(SIMILAR_BACKLOG);
    let note_writer = tokio::spawn(write_similar_notes(
        store.clone(),
        config.clone(),
        index.clone(),
        note_queue,
    ));
    let mut changes = store.subscribe();
    let interval = Duration::from_millis(config.search.commit_interval_ms);
    let mut last_commit = Instant::now();
    let start = indexer.position();
    let mut caught_up = false;
    loop {
        if shutdown.is_stopping() {
            break;
        }
        if let Err(err) = indexer.take_rebuild_request().await {
            tracing::warn!(%err, "search index rebuild");
        }
        let round = match indexer.round(&store).await {
            Ok(round) => round,
            Err(err) => {
                tracing::warn!(%err, "search indexer");
                pause(&mut shutdown).await;
                if !matches!(err, SearchError::Store(_)) {
                    let Some(fresh) = reopen(indexer, &index, &mut shutdown).await else {
                        return;
                    };
                    indexer = fresh;
                }
                continue;
            }
        };
        let since_commit = last_commit.elapsed();
        if indexer.is_dirty() && (since_commit >= interval || round.read == 0) {
            if round.read == 0 && since_commit < interval {
                // Let more changes gather into this commit.
                tokio::select! {
                    _ = shutdown.stopped() => {}
                    _ = tokio::time::sleep(interval - since_commit) => {}
                }
                continue;
            }
            match indexer.commit().await {
                Ok(()) => {
                    last_commit = Instant::now();
                    // Written here, between rounds, not by the note task
                    // beside: measured (bench/search_after_burst.sh
                    // --resolved), the task wrote the notes of a 10,000
                    // message burst four times as fast, and their writes
                    // and similarity searches kept IMAP SEARCH above 20 ms
                    // for half a minute after it; here they pace
                    // themselves to the indexing and the index still
                    // catches up within seconds.
                    for ticket in indexer.take_created() {
                        if let Err(err) =
                            super::similar::add_note(&store, &config, indexer.index.clone(), ticket)
                                .await
                        {
                            tracing::warn!(%err, ticket, "similar tickets note");
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, "search index commit");
                    pause(&mut shutdown).await;
                    let Some(fresh) = reopen(indexer, &index, &mut shutdown).await else {
                        return;
                    };
                    indexer = fresh;
                    continue;
                }
            }
        }
        if round.read > 0 {
            continue;
        }
        if !indexer.is_dirty()
            && indexer.position_moved()
            && let Err(err) = indexer.commit().await
        {
            tracing::warn!(%err, "search index commit");
        }
        if !caught_up {
            caught_up = true;
            if indexer.position() > start {
                tracing::info!(
                    from = start,
                    to = indexer.position(),
                    "search index caught up"
                );
            }
        }
        let polls = !store.announces_every_change();
        loop {
            tokio::select! {
                _ = shutdown.stopped() => break,
                _ = changes.recv() => break,
                _ = tokio::time::sleep(POLL) => {
                    if polls || indexer.has_gaps() || indexer.rebuild_requested() {
                        break;
                    }
                }
            }
        }
    }
    if indexer.is_dirty()
        && let Err(err) = indexer.commit().await
    {
        tracing::warn!(%err, "search index commit at shutdown");
    }
    drop(notes);
    let _ = note_writer.await;
}

/// New tickets waiting for their similar-tickets note, at most.
const SIMILAR_BACKLOG: usize = 10_000;

async fn write_similar_notes(
    store: Store,
    config: Arc<Config>,
    index: Arc<SearchIndex>,
    mut tickets: tokio::sync::mpsc::Receiver<i64>,
) {
    while let Some(ticket) = tickets.recv().await {
        if let Err(err) = super::similar::add_note(&store, &config, index.clone(), ticket).await {
            tracing::warn!(%err, ticket, "similar tickets note");
        }
    }
}

/// The index lag: messages stored but not yet searchable, and how long the
/// oldest of them has waited.
pub async fn lag(
    index: &SearchIndex,
    store: &Store,
) -> Result<(i64, Option<chrono::Duration>), SearchError> {
    let progress = index.progress()?;
    let cursor = Cursor::restore(
        progress.messages,
        progress.message_cursor.as_ref(),
        Instant::now(),
    );
    let (count, oldest) = store
        .unindexed_messages(cursor.seen, &cursor.gaps())
        .await?;
    Ok((count, oldest.map(|at| Utc::now() - at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_cursor_reads_nothing_again_and_waits_for_its_gaps_a_moment() {
        let start = Instant::now();
        let mut cursor = Cursor::new(10);
        cursor.saw([11, 14, 15], start);
        let saved = cursor.saved();
        assert_eq!(
            saved,
            SavedCursor {
                seen: 15,
                gaps: vec![12, 13]
            }
        );
        // After a crash: the committed position is 11.
        let later = start + Duration::from_secs(3600);
        let mut restored = Cursor::restore(11, Some(&saved), later);
        assert_eq!(restored.seen, 15, "14 and 15 are not read again");
        assert_eq!(restored.gaps(), [12, 13]);
        assert_eq!(restored.durable(), 11);
        restored.saw([13], later);
        restored.expire(later + GAP_WAIT);
        assert_eq!(restored.durable(), 15, "12 never came");
        // An index from before cursors were saved starts at its position.
        assert_eq!(Cursor::restore(11, None, later).seen, 11);
    }

    #[test]
    fn a_cursor_waits_for_skipped_ids_then_gives_up() {
        let start = Instant::now();
        let mut cursor = Cursor::new(10);
        cursor.saw([11, 14], start);
        assert_eq!(cursor.gaps(), [12, 13]);
        assert_eq!(cursor.durable(), 11);
        cursor.saw([12], start);
        assert_eq!(cursor.durable(), 12);
        cursor.expire(start + GAP_WAIT);
        assert!(cursor.gaps().is_empty());
        assert_eq!(cursor.durable(), 14);
    }

    #[test]
    fn a_jump_of_a_sequence_is_not_a_gap() {
        let mut cursor = Cursor::new(0);
        cursor.saw([MAX_GAPS + 5], Instant::now());
        assert!(cursor.gaps().is_empty());
        assert_eq!(cursor.durable(), MAX_GAPS + 5);
    }
}
