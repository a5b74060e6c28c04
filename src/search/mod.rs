//! Full-text search over every ticket's messages, with tantivy.
//!
//! The index is derived from the store and can be rebuilt from it at any
//! time ([`indexer`]): the indexer follows the store's message ids and
//! ticket event ids with two cursors, which it commits with the index
//! itself (tantivy's commit payload), so that after a crash it resumes
//! exactly where the index ends. Each node keeps its own index in its data
//! directory; any number of readers (the IMAP sessions, `postdesk search`)
//! open it beside the one writer.

pub mod articles;
pub mod document;
pub mod indexer;
pub mod query;
pub mod schema;
pub mod similar;
pub mod substring;
pub mod tokenizer;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::directory::{Directory, INDEX_WRITER_LOCK};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    DocAddress, DocId, Index, IndexReader, ReloadPolicy, Score, SegmentOrdinal, SegmentReader,
    TantivyDocument, Term,
};

pub use query::QueryError;
pub use schema::Fields;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the search index at {0} is being written by another process (a running server?)")]
    Locked(PathBuf),
    #[error("invalid query: {0}")]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("search index task failed: {0}")]
    Task(String),
}

/// How far the index has come, committed with it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Progress {
    /// Every message with an id up to this one is indexed.
    pub messages: i64,
    /// Every ticket event up to this id is reflected.
    pub events: i64,
    /// The rebuild request this index state answers (see [`indexer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// Where the message cursor stood beyond `messages`: the highest id
    /// read and the ids skipped below it that may still commit. Saved so
    /// that a restart (or a crash) neither reads again what is indexed nor
    /// waits for ids that will never come (absent in older indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_cursor: Option<SavedCursor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_cursor: Option<SavedCursor>,
}

/// A cursor over ids that may commit out of order, as committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedCursor {
    pub seen: i64,
    pub gaps: Vec<i64>,
}

/// One ticket found by a search: its best-matching message.
#[derive(Debug, Clone, Serialize)]
pub struct TicketHit {
    pub ticket: i64,
    pub score: f32,
    /// `messages.id` of the best-matching message.
    pub message: i64,
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    /// The best fragment of that message, and the byte ranges in it that
    /// matched.
    pub snippet: String,
    pub highlighted: Vec<(usize, usize)>,
}

pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    coverage: RwLock<Arc<Coverage>>,
}

/// Which messages the searchable state of the index holds: every id up to
/// `through`, and above it those up to `seen` that are not `gaps` (ids
/// skipped over that may still commit, on PostgreSQL). Taken from the
/// progress committed with the index, so it never claims a message the
/// searches cannot see yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub through: i64,
    pub seen: i64,
    pub gaps: Vec<i64>,
}

impl Coverage {
    fn of(progress: &Progress) -> Coverage {
        let mut coverage = Coverage {
            through: progress.messages,
            seen: progress.messages,
            gaps: Vec::new(),
        };
        if let Some(cursor) = &progress.message_cursor
            && cursor.seen >= progress.messages
        {
            coverage.seen = cursor.seen;
            coverage.gaps = cursor.gaps.clone();
            coverage.gaps.sort_unstable();
        }
        coverage
    }

    /// Whether message `id` was read into the index (if it is a message
    /// the index keeps at all).
    pub fn holds(&self, id: i64) -> bool {
        id <= self.through || (id <= self.seen && self.gaps.binary_search(&id).is_err())
    }
}

impl SearchIndex {
    /// Where a data directory keeps its index.
    pub fn directory(data_dir: &Path) -> PathBuf {
        data_dir.join(format!("index-v{}", schema::SCHEMA_VERSION))
    }

    /// Removes the index directories an older schema left in `data_dir`
    /// (a binary upgraded in place builds its own index from the store:
    /// the old one would only take space); returns what it removed.
    pub fn remove_older_versions(data_dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(data_dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let older = name
                .to_str()
                .and_then(|name| name.strip_prefix("index-v"))
                .and_then(|version| version.parse::<u32>().ok())
                .is_some_and(|version| version < schema::SCHEMA_VERSION);
            if older && entry.path().is_dir() {
                match std::fs::remove_dir_all(entry.path()) {
                    Ok(()) => removed.push(entry.path()),
                    Err(err) => tracing::warn!(%err, path = %entry.path().display(),
                        "cannot remove an older search index"),
                }
            }
        }
        removed
    }

    /// Opens the index in `dir`, creating an empty one if there is none.
    pub fn open(dir: &Path) -> Result<Arc<SearchIndex>, SearchError> {
        let io = |source| SearchError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let (schema, fields) = schema::build();
        let index = if dir.join("meta.json").exists() {
            Index::open_in_dir(dir)?
        } else {
            match Index::create_in_dir(dir, schema) {
                Ok(index) => index,
                // Another process created it a moment ago.
                Err(tantivy::TantivyError::IndexAlreadyExists) => Index::open_in_dir(dir)?,
                Err(err) => return Err(err.into()),
            }
        };
        schema::register_tokenizers(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let coverage = RwLock::new(Arc::new(Coverage::default()));
        let search = SearchIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            coverage,
        };
        search.set_coverage(Coverage::of(&search.progress()?));
        Ok(Arc::new(search))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn fields(&self) -> Fields {
        self.fields
    }

    /// The progress committed with the index on disk.
    pub fn progress(&self) -> Result<Progress, SearchError> {
        Ok(self
            .index
            .load_metas()?
            .payload
            .and_then(|payload| serde_json::from_str(&payload).ok())
            .unwrap_or_default())
    }

    /// Every message with an id up to this is searchable now.
    pub fn indexed_through(&self) -> i64 {
        self.coverage().through
    }

    /// The messages searchable now: SEARCH reads the others itself
    /// instead of trusting the index.
    pub fn coverage(&self) -> Arc<Coverage> {
        match self.coverage.read() {
            Ok(coverage) => coverage.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_coverage(&self, coverage: Coverage) {
        let coverage = Arc::new(coverage);
        match self.coverage.write() {
            Ok(mut slot) => *slot = coverage,
            Err(poisoned) => *poisoned.into_inner() = coverage,
        }
    }

    /// Whether some process (a running server) holds the write lock.
    pub fn is_written_elsewhere(&self) -> bool {
        self.index
            .directory()
            .acquire_lock(&INDEX_WRITER_LOCK)
            .is_err()
    }

    /// Makes the last commit visible to searches. The progress is read
    /// before the reader moves on: a commit in between leaves the coverage
    /// short of what searches see (more is read by SEARCH), never beyond.
    pub fn reload(&self) -> Result<(), SearchError> {
        let progress = self.progress()?;
        self.reader.reload()?;
        self.set_coverage(Coverage::of(&progress));
        Ok(())
    }

    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Bytes the index takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    pub fn compile(&self, node: &query::Node) -> Box<dyn Query> {
        query::Compiler {
            fields: self.fields,
        }
        .compile(node)
    }

    /// The best `limit` tickets for a query in the language of [`query`],
    /// each with its best message and a snippet of it. Tickets put aside
    /// as spam or trash, and postdesk's own notes, are left out unless
    /// `put_aside` is set. `queues`: only tickets of these queues (an
    /// agent's search); None: every queue.
    pub fn search(
        &self,
        text: &str,
        limit: usize,
        put_aside: bool,
        queues: Option<&[String]>,
    ) -> Result<Vec<TicketHit>, SearchError> {
        let node = query::parse(text)?;
        let mut query = self.compile(&node);
        if let Some(queues) = queues {
            let any_of: Vec<(Occur, Box<dyn Query>)> = queues
                .iter()
                .map(|q| {
                    (
                        Occur::Should,
                        self.keyword_query(self.fields.queue, &q.to_lowercase()),
                    )
                })
                .collect();
            if any_of.is_empty() {
                return Ok(Vec::new());
            }
            query = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Must, Box::new(BooleanQuery::new(any_of))),
            ]));
        }
        if !put_aside {
            query = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (
                    Occur::MustNot,
                    self.keyword_query(self.fields.disposition, "spam"),
                ),
                (
                    Occur::MustNot,
                    self.keyword_query(self.fields.disposition, "trash"),
                ),
                (
                    Occur::MustNot,
                    self.keyword_query(self.fields.kind, "system"),
                ),
            ]));
        }
        self.best_tickets(query.as_ref(), limit)
    }

    pub(crate) fn keyword_query(
        &self,
        field: tantivy::schema::Field,
        value: &str,
    ) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    /// Groups the matches of `query` by ticket, best first.
    fn best_tickets(&self, query: &dyn Query, limit: usize) -> Result<Vec<TicketHit>, SearchError> {
        let searcher = self.reader.searcher();
        let best = searcher.search(query, &BestPerTicket)?;
        let mut ranked: Vec<(u64, Score, DocAddress)> = best
            .into_iter()
            .map(|(ticket, (score, address))| (ticket, score, address))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        ranked.truncate(limit);
        let generator = SnippetGenerator::create(&searcher, query, self.fields.body)?;
        let mut hits = Vec::with_capacity(ranked.len());
        for (ticket, score, address) in ranked {
            let doc: TantivyDocument = searcher.doc(address)?;
            let message = doc
                .get_first(self.fields.message)
                .and_then(|v| v.as_u64())
                .unwrap_or_default();
            let date = doc
                .get_first(self.fields.date)
                .and_then(|v| v.as_datetime())
                .and_then(|d| chrono::DateTime::from_timestamp(d.into_timestamp_secs(), 0));
            let snippet = generator.snippet_from_doc(&doc);
            let (snippet, highlighted) = if snippet.is_empty() {
                // The match was elsewhere (subject, sender…): show how the
                // message begins.
                let body = doc
                    .get_first(self.fields.body)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                (opening(body, 150), Vec::new())
            } else {
                (
                    snippet.fragment().to_string(),
                    merge_ranges(snippet.highlighted().iter().map(|r| (r.start, r.end))),
                )
            };
            hits.push(TicketHit {
                ticket: i64::try_from(ticket).unwrap_or(i64::MAX),
                score,
                message: i64::try_from(message).unwrap_or(i64::MAX),
                date,
                snippet,
                highlighted,
            });
        }
        Ok(hits)
    }

    /// The ids of every message matching `query`.
    pub fn matching_messages(&self, query: &dyn Query) -> Result<Vec<i64>, SearchError> {
        let searcher = self.reader.searcher();
        Ok(searcher.search(query, &MessageIds)?)
    }
}

/// Sorted, with overlapping and touching ranges joined (CJK pairs overlap:
/// "打印" and "印机" highlight "打印机").
fn merge_ranges(ranges: impl Iterator<Item = (usize, usize)>) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = ranges.collect();
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// The first `chars` characters of `text`, whitespace collapsed.
fn opening(text: &str, chars: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if out.chars().count() + word.chars().count() > chars {
            if out.is_empty() {
                out = word.chars().take(chars).collect();
            }
            out.push('…');
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Collects the best-scoring document of each ticket.
struct BestPerTicket;

struct BestPerTicketSegment {
    segment: SegmentOrdinal,
    tickets: Column<u64>,
    best: HashMap<u64, (Score, DocAddress)>,
}

impl Collector for BestPerTicket {
    type Fruit = HashMap<u64, (Score, DocAddress)>;
    type Child = BestPerTicketSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<BestPerTicketSegment> {
        Ok(BestPerTicketSegment {
            segment,
            tickets: reader.fast_fields().u64("ticket")?,
            best: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(
        &self,
        fruits: Vec<HashMap<u64, (Score, DocAddress)>>,
    ) -> tantivy::Result<Self::Fruit> {
        let mut all: HashMap<u64, (Score, DocAddress)> = HashMap::new();
        for fruit in fruits {
            for (ticket, candidate) in fruit {
                let entry = all.entry(ticket).or_insert(candidate);
                if candidate.0 > entry.0 {
                    *entry = candidate;
                }
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for BestPerTicketSegment {
    type Fruit = HashMap<u64, (Score, DocAddress)>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Some(ticket) = self.tickets.first(doc) else {
            return;
        };
        let address = DocAddress::new(self.segment, doc);
        let entry = self.best.entry(ticket).or_insert((score, address));
        if score > entry.0 {
            *entry = (score, address);
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.best
    }
}

/// Collects the `messages.id` of every matching document, unscored.
struct MessageIds;

struct MessageIdsSegment {
    messages: Column<u64>,
    found: Vec<i64>,
}

impl Collector for MessageIds {
    type Fruit = Vec<i64>;
    type Child = MessageIdsSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<MessageIdsSegment> {
        Ok(MessageIdsSegment {
            messages: reader.fast_fields().u64("message")?,
            found: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<i64>>) -> tantivy::Result<Vec<i64>> {
        Ok(fruits.concat())
    }
}

impl SegmentCollector for MessageIdsSegment {
    type Fruit = Vec<i64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(id) = self.messages.first(doc) {
            self.found.push(i64::try_from(id).unwrap_or(i64::MAX));
        }
    }

    fn harvest(self) -> Vec<i64> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn overlapping_highlights_are_joined() {
        assert_eq!(
            super::merge_ranges([(3, 9), (0, 6), (12, 15), (15, 18)].into_iter()),
            [(0, 9), (12, 18)]
        );
    }

    #[test]
    fn openings_stop_at_a_word() {
        assert_eq!(super::opening("one two  three", 9), "one two…");
        assert_eq!(super::opening("short", 150), "short");
        assert_eq!(super::opening("abcdefgh", 3), "abc…");
    }
}
