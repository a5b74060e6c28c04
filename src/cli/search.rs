//! `postdesk search` and `postdesk reindex`: both read the database and
//! never write it (they open it read-only); the search index is theirs.
//!
//! Both work with and without a running server. The server holds the
//! index's write lock and keeps it current; a command then only reads
//! (search) or asks the server to rebuild and follows its progress
//! (reindex). Without a server the command takes the lock itself.

use super::{CliResult, Operator, open_read_only, output, print_out, progress_bar};
use crate::config::Config;
use crate::domain::ticket::Status;
use crate::search::indexer::{self, Indexer};
use crate::search::{SearchError, SearchIndex, TicketHit};
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `postdesk search QUERY`: the best tickets first.
/// Run `--as` an agent, only their queues' tickets are found.
pub async fn search(
    config: &Config,
    operator: &Operator,
    query: &str,
    limit: usize,
    put_aside: bool,
    json: bool,
) -> CliResult<()> {
    let store = open_read_only(config).await?;
    // `kind:article`: the knowledge base's articles (issue 19).
    if let Some(words) = article_query(query) {
        let scopes = config.knowledge_scopes();
        let found = find_articles(&store, &words, limit, operator.agent.as_ref(), &scopes).await?;
        return print_out(json, &found, || output::article_results(&found));
    }
    let scope = Scope {
        limit,
        put_aside,
        queues: operator.queues().map(<[String]>::to_vec),
    };
    let found = find(&config.data_dir, &store, query, scope, !json).await?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    print_out(json, &found, || output::search_results(&found, terminal))
}

/// The words of a `kind:article` query, or None for a search of tickets.
pub fn article_query(query: &str) -> Option<String> {
    let mut article = false;
    let words: Vec<&str> = query
        .split_whitespace()
        .filter(|w| {
            let is = w.eq_ignore_ascii_case("kind:article");
            article |= is;
            !is
        })
        .collect();
    article.then(|| words.join(" "))
}

/// One article found by `kind:article`.
#[derive(Debug, Clone, Serialize)]
pub struct FoundArticle {
    /// Always "article" (a ticket's hit has none): tells the two apart.
    pub kind: &'static str,
    pub article: i64,
    pub title: String,
    pub category: String,
    pub state: crate::domain::knowledge::ArticleState,
    pub visibility: crate::domain::knowledge::Visibility,
    /// The help center's address (served when published and public).
    pub path: String,
    pub snippet: String,
}

/// The articles (any state: agents search drafts and internal ones too)
/// with every word in their title or text, those with all in the title
/// first, then the newest; archived ones last. Run as an agent (`actor`),
/// only the drafts they may edit, as in their `Knowledge/Drafts`.
pub async fn find_articles(
    store: &Store,
    words: &str,
    limit: usize,
    actor: Option<&crate::domain::permission::Actor>,
    scopes: &crate::domain::knowledge::CategoryScopes,
) -> CliResult<Vec<FoundArticle>> {
    use crate::domain::knowledge::{
        ArticleState, article_matches, article_snippet, may_write_category,
    };
    let articles = store.kb_articles(&Default::default()).await?;
    let mut found: Vec<(bool, bool, FoundArticle)> = articles
        .into_iter()
        .filter(|a| {
            a.content.state != ArticleState::Draft
                || may_write_category(actor, scopes, &a.content.category).is_ok()
        })
        .filter_map(|a| {
            let in_title = if words.trim().is_empty() {
                true
            } else {
                article_matches(&a.content.title, &a.content.body_text, words)?
            };
            Some((
                a.content.state == ArticleState::Archived,
                !in_title,
                FoundArticle {
                    kind: "article",
                    article: a.id,
                    snippet: article_snippet(&a.content.body_text, words),
                    title: a.content.title,
                    category: a.content.category,
                    state: a.content.state,
                    visibility: a.content.visibility,
                    path: a.path,
                },
            ))
        })
        .collect();
    // Stable: within each group, the newest change first (the store's order).
    found.sort_by_key(|(archived, not_in_title, _)| (*archived, *not_in_title));
    Ok(found.into_iter().take(limit).map(|(_, _, f)| f).collect())
}

/// `postdesk search --status`: the index's size and lag.
pub async fn status(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let status = index_status(&config.data_dir, &store).await?;
    print_out(json, &status, || output::index_status(&status))
}

/// `postdesk reindex`: rebuilds the index from the database.
pub async fn reindex(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let rebuilt = rebuild(&config.data_dir, &store, !json).await?;
    print_out(json, &rebuilt, || output::rebuilt(&rebuilt))
}

/// One ticket found, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub ticket: i64,
    pub subject: String,
    pub status: Status,
    pub queue: String,
    pub customer: String,
    /// When the best-matching message arrived.
    pub date: Option<DateTime<Utc>>,
    pub score: f32,
    pub message: i64,
    pub snippet: String,
    /// Byte ranges of `snippet` that matched.
    pub highlighted: Vec<(usize, usize)>,
}

/// How current the index is.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStatus {
    pub directory: String,
    pub documents: u64,
    pub bytes: u64,
    /// Messages up to this id are searchable.
    pub indexed_through: i64,
    pub newest_message: i64,
    /// Messages stored but not yet searchable.
    pub lag_messages: i64,
    /// How long the oldest of them has been waiting.
    pub lag_seconds: Option<f64>,
    /// Whether a running server keeps the index current.
    pub kept_by_server: bool,
}

fn open(data_dir: &Path) -> CliResult<Arc<SearchIndex>, SearchError> {
    SearchIndex::open(&SearchIndex::directory(data_dir))
}

/// Searches; without a server, first brings the index up to date
/// (`progress` shows a bar when that is a long way).
/// Which tickets a search may return, and how many.
#[derive(Debug, Clone)]
pub struct Scope {
    pub limit: usize,
    /// Include spam, trash and postdesk's own notes.
    pub put_aside: bool,
    /// Only these queues' tickets; None: every queue.
    pub queues: Option<Vec<String>>,
}

pub async fn find(
    data_dir: &Path,
    store: &Store,
    query: &str,
    scope: Scope,
    progress: bool,
) -> CliResult<Vec<Found>, SearchError> {
    // Parse first: a typo is reported before any work.
    crate::search::query::parse(query)?;
    let index = open(data_dir)?;
    match Indexer::new(index.clone()) {
        Ok(mut indexer) => {
            catch_up(store, &mut indexer, progress).await?;
        }
        Err(SearchError::Locked(_)) => {}
        Err(err) => return Err(err),
    }
    let hits = {
        let index = index.clone();
        let query = query.to_string();
        tokio::task::spawn_blocking(move || {
            index.search(
                &query,
                scope.limit,
                scope.put_aside,
                scope.queues.as_deref(),
            )
        })
        .await
        .map_err(|err| SearchError::Task(err.to_string()))??
    };
    let mut found = Vec::with_capacity(hits.len());
    for TicketHit {
        ticket,
        score,
        message,
        date,
        snippet,
        highlighted,
    } in hits
    {
        let Ok(t) = store.ticket(ticket).await else {
            continue;
        };
        found.push(Found {
            ticket,
            subject: t.subject,
            status: t.status,
            queue: t.queue,
            customer: match t.customer_name {
                Some(name) if !name.is_empty() => format!("{name} <{}>", t.customer_address),
                _ => t.customer_address,
            },
            date,
            score,
            message,
            snippet,
            highlighted,
        });
    }
    Ok(found)
}

async fn catch_up(
    store: &Store,
    indexer: &mut Indexer,
    show: bool,
) -> CliResult<usize, SearchError> {
    let newest = newest_message(store).await?;
    let start = indexer.position();
    let bar = progress_bar(
        show && newest - start > 2000,
        bar_len(newest - start),
        "messages",
    );
    let indexed = indexer
        .catch_up(store, |at| bar.set_position(bar_len(at - start)))
        .await?;
    bar.finish_and_clear();
    Ok(indexed)
}

fn bar_len(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// The id of the newest stored message (0: none).
async fn newest_message(store: &Store) -> CliResult<i64, SearchError> {
    Ok(store.newest_message().await?.map(|(id, _)| id).unwrap_or(0))
}

/// What `postdesk reindex` did.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuilt {
    pub messages: i64,
    pub documents: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Whether the running server did the work.
    pub by_server: bool,
}

/// How long a running server may take to notice a rebuild request (it
/// looks every couple of seconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Rebuilds the index from the store.
pub async fn rebuild(
    data_dir: &Path,
    store: &Store,
    show: bool,
) -> CliResult<Rebuilt, SearchError> {
    let started = Instant::now();
    let index = open(data_dir)?;
    let newest = newest_message(store).await?;
    let bar = progress_bar(show, bar_len(newest), "messages");
    let by_server = match Indexer::new(index.clone()) {
        Ok(mut indexer) => {
            indexer.restart(None).await?;
            indexer
                .catch_up(store, |at| bar.set_position(bar_len(at.min(newest))))
                .await?;
            false
        }
        Err(SearchError::Locked(dir)) => {
            let token = indexer::request_rebuild(&dir)?;
            bar.set_message("waiting for the server");
            let asked = Instant::now();
            loop {
                let progress = index.progress()?;
                if progress.generation.as_deref() == Some(token.as_str()) {
                    bar.set_position(bar_len(progress.messages.min(newest)));
                    if progress.messages >= newest {
                        break;
                    }
                } else if asked.elapsed() > REQUEST_TIMEOUT {
                    bar.abandon();
                    let _ = std::fs::remove_file(dir.join(indexer::REBUILD_REQUEST));
                    return Err(SearchError::Task(format!(
                        "the search index in {} is locked, and no server answered the rebuild \
                         request within {}s: is another `postdesk reindex` running? If no \
                         postdesk process uses this data directory, remove {}/.tantivy-writer.lock",
                        dir.display(),
                        REQUEST_TIMEOUT.as_secs(),
                        dir.display()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            true
        }
        Err(err) => return Err(err),
    };
    bar.finish_and_clear();
    index.reload()?;
    Ok(Rebuilt {
        messages: newest,
        documents: index.documents(),
        bytes: index.size_on_disk(),
        seconds: started.elapsed().as_secs_f64(),
        by_server,
    })
}

/// The index's size and lag.
pub async fn index_status(data_dir: &Path, store: &Store) -> CliResult<IndexStatus, SearchError> {
    let index = open(data_dir)?;
    let kept_by_server = index.is_written_elsewhere();
    let (lag_messages, waiting) = indexer::lag(&index, store).await?;
    Ok(IndexStatus {
        directory: index.dir().display().to_string(),
        documents: index.documents(),
        bytes: index.size_on_disk(),
        indexed_through: index.progress()?.messages,
        newest_message: newest_message(store).await?,
        lag_messages,
        lag_seconds: waiting.map(|d| d.num_milliseconds() as f64 / 1000.0),
        kept_by_server,
    })
}
