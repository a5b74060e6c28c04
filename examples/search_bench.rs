//! Search benchmark over an existing data directory (filled by
//! bench/search_bench.sh): query latency by kind of query, and the index
//! lag while mail arrives.
//!
//! ```text
//! cargo run --release --example search_bench -- queries --config DIR/postdesk.toml
//! cargo run --release --example search_bench -- lag --config DIR/postdesk.toml --seconds 60
//! cargo run --release --example search_bench -- substrings --config DIR/postdesk.toml \
//!     --imap 127.0.0.1:2143 --user agent@x --password secret --folder Unassigned
//! ```
//!
//! `substrings` times IMAP SEARCH's substring keys (what a client's
//! "search on server" sends) with needles cut from stored messages: the
//! index's part alone, and, with `--imap`, whole `UID SEARCH` commands of a
//! logged-in session on a server running over the same data.
//!
//! Query words are taken from the indexed messages themselves (seeded, so
//! every run asks the same), in four kinds: one word, a two-word phrase
//! that occurs, three words anywhere in a message, and one word filtered
//! by status and date. Each query runs as `postdesk search` runs it: the
//! ten best tickets with their snippets.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use postdesk::config::Config;
use postdesk::search::SearchIndex;
use postdesk::search::substring::ImapKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tantivy::schema::Value;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Query latency, p50/p99 per kind of query.
    Queries {
        #[arg(long)]
        config: PathBuf,
        /// Queries of each kind.
        #[arg(long, default_value_t = 300)]
        queries: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// IMAP SEARCH substring keys, p50/p99 per kind: the index's part,
    /// and whole commands over IMAP with `--imap`.
    Substrings {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        imap: Option<std::net::SocketAddr>,
        #[arg(long, default_value = "")]
        user: String,
        #[arg(long, default_value = "")]
        password: String,
        #[arg(long, default_value = "Unassigned")]
        folder: String,
    },
    /// Samples the index lag every 100 ms until it has been zero for three
    /// seconds after the first mail arrived (or `--seconds` passed).
    Lag {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 300)]
        seconds: u64,
    },
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Query texts of each kind, drawn from stored documents.
fn draw_queries(
    index: &SearchIndex,
    n: usize,
    seed: u64,
) -> Result<Vec<(&'static str, Vec<String>)>> {
    let reader = tantivy::Index::open_in_dir(index.dir())?.reader()?;
    let searcher = reader.searcher();
    let body = index.fields().body;
    let mut rng = StdRng::seed_from_u64(seed);
    let segments = searcher.segment_readers();
    let mut single = Vec::new();
    let mut phrase = Vec::new();
    let mut three = Vec::new();
    let mut filtered = Vec::new();
    while single.len() < n {
        let segment = rng.random_range(0..segments.len());
        let max = segments[segment].max_doc();
        if max == 0 {
            continue;
        }
        let address = tantivy::DocAddress::new(segment as u32, rng.random_range(0..max));
        let doc: tantivy::TantivyDocument = searcher.doc(address)?;
        let text = doc
            .get_first(body)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let words = words_of(text);
        if words.len() < 10 {
            continue;
        }
        let at = rng.random_range(0..words.len() - 2);
        if words[at].len() < 4 || words[at + 1].len() < 3 {
            continue;
        }
        single.push(words[at].clone());
        phrase.push(format!("\"{} {}\"", words[at], words[at + 1]));
        let mut picks: Vec<&String> = (0..3)
            .map(|_| &words[rng.random_range(0..words.len())])
            .collect();
        picks.dedup();
        three.push(
            picks
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        // The corpus's dates run from 2023-11-14 to 2023-12-27.
        filtered.push(format!(
            "{} status:new queue:support after:2023-12-06",
            words[at]
        ));
    }
    Ok(vec![
        ("single word", single),
        ("two-word phrase", phrase),
        ("three words", three),
        ("word + status + queue + date", filtered),
    ])
}

fn queries(config: PathBuf, n: usize, seed: u64) -> Result<()> {
    let config = Config::load(&config)?;
    let index = SearchIndex::open(&SearchIndex::directory(&config.data_dir))?;
    println!(
        "index: {} documents, {:.1} MiB",
        index.documents(),
        index.size_on_disk() as f64 / (1024.0 * 1024.0)
    );
    let mut kinds = draw_queries(&index, n, seed)?;
    kinds.push((
        "rare word (10 per 10,000)",
        vec!["zanzibarquux".to_string(); n.min(50)],
    ));
    kinds.push((
        "common word (half of all)",
        vec!["invoice".to_string(); n.min(50)],
    ));
    for (kind, texts) in kinds {
        // One untimed pass warms the page cache and the term dictionaries.
        for text in texts.iter().take(20) {
            index.search(text, 10, false, None)?;
        }
        let mut millis = Vec::with_capacity(texts.len());
        let mut empty = 0;
        for text in &texts {
            let started = Instant::now();
            let hits = index.search(text, 10, false, None)?;
            millis.push(started.elapsed().as_secs_f64() * 1000.0);
            empty += usize::from(hits.is_empty());
        }
        millis.sort_by(f64::total_cmp);
        println!(
            "{kind:<28} n={:<4} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (no hits: {empty})",
            millis.len(),
            percentile(&millis, 50.0),
            percentile(&millis, 99.0),
            millis.last().copied().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}

async fn lag(config: PathBuf, seconds: u64) -> Result<()> {
    let config = Config::load(&config)?;
    let index = SearchIndex::open(&SearchIndex::directory(&config.data_dir))?;
    let store = postdesk::store::Store::connect(&config.database_url())
        .await
        .context("store")?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut max_messages = 0;
    let mut first_id = None;
    let mut quiet_since: Option<Instant> = None;
    while started.elapsed() < Duration::from_secs(seconds) {
        let (behind, waiting) = postdesk::search::indexer::lag(&index, &store).await?;
        let newest = store.newest_message().await?.map(|(id, _)| id).unwrap_or(0);
        let first = *first_id.get_or_insert(newest);
        if newest > first {
            samples.push(
                waiting
                    .map(|d| d.num_milliseconds() as f64 / 1000.0)
                    .unwrap_or(0.0),
            );
            max_messages = max_messages.max(behind);
            if behind == 0 {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(3) {
                    break;
                }
            } else {
                quiet_since = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "index lag over {} samples (every 100 ms while mail arrived): p50 {:.2} s  p99 {:.2} s  max {:.2} s; at most {max_messages} messages behind",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}

/// Needles of each kind of substring search, cut from stored messages.
fn draw_needles(
    index: &SearchIndex,
    n: usize,
    seed: u64,
) -> Result<Vec<(&'static str, ImapKey, Vec<String>)>> {
    let reader = tantivy::Index::open_in_dir(index.dir())?.reader()?;
    let searcher = reader.searcher();
    let fields = index.fields();
    let mut rng = StdRng::seed_from_u64(seed);
    let segments = searcher.segment_readers();
    let (mut prefix, mut infix, mut words, mut subject, mut from, mut text) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    while prefix.len() < n {
        let segment = rng.random_range(0..segments.len());
        let max = segments[segment].max_doc();
        if max == 0 {
            continue;
        }
        let address = tantivy::DocAddress::new(segment as u32, rng.random_range(0..max));
        let doc: tantivy::TantivyDocument = searcher.doc(address)?;
        let get = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let body_words: Vec<String> = words_of(&get(fields.body))
            .into_iter()
            .filter(|w| w.chars().count() >= 6 && w.is_ascii())
            .collect();
        let subject_text = get(fields.subject);
        let from_text = get(fields.from);
        if body_words.len() < 3 || subject_text.len() < 12 || !subject_text.is_ascii() {
            continue;
        }
        let word = &body_words[rng.random_range(0..body_words.len())];
        prefix.push(word[..4].to_string());
        infix.push(word[1..5].to_string());
        let at = rng.random_range(0..body_words.len() - 1);
        words.push(format!("{} {}", body_words[at], &body_words[at + 1][..3]));
        let start = rng.random_range(0..subject_text.len() - 8);
        subject.push(subject_text[start..start + 8].to_string());
        from.push(match from_text.split_once('@') {
            Some((_, domain)) => format!("@{}", domain.chars().take(6).collect::<String>()),
            None => from_text.chars().take(5).collect(),
        });
        text.push(word[2..6].to_string());
    }
    Ok(vec![
        ("BODY word prefix (4)", ImapKey::Body, prefix),
        ("BODY inside a word (4)", ImapKey::Body, infix),
        ("BODY word + partial", ImapKey::Body, words),
        ("TEXT inside a word (4)", ImapKey::Text, text),
        ("SUBJECT substring (8)", ImapKey::Subject, subject),
        ("FROM @domain", ImapKey::From, from),
    ])
}

fn key_name(key: ImapKey) -> &'static str {
    match key {
        ImapKey::Subject => "SUBJECT",
        ImapKey::From => "FROM",
        ImapKey::To => "TO",
        ImapKey::Cc => "CC",
        ImapKey::Body => "BODY",
        ImapKey::Text => "TEXT",
    }
}

/// A bare IMAP session: one command at a time, answers read to the tag.
struct Imap {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    tag: u32,
}

impl Imap {
    async fn connect(addr: std::net::SocketAddr) -> Result<Imap> {
        use tokio::io::AsyncBufReadExt;
        let mut imap = Imap {
            stream: tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await?),
            tag: 0,
        };
        let mut greeting = String::new();
        imap.stream.read_line(&mut greeting).await?;
        Ok(imap)
    }

    /// Sends a command; returns the untagged lines and the tagged status.
    async fn cmd(&mut self, command: &str) -> Result<(Vec<String>, String)> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.stream
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                anyhow::bail!("the server closed the connection");
            }
            if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                return Ok((lines, status.trim_end().to_string()));
            }
            lines.push(line);
        }
    }
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn report(kind: &str, mut millis: Vec<f64>, hits: usize) {
    millis.sort_by(f64::total_cmp);
    println!(
        "{kind:<28} n={:<4} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (mean hits {})",
        millis.len(),
        percentile(&millis, 50.0),
        percentile(&millis, 99.0),
        millis.last().copied().unwrap_or(f64::NAN),
        hits / millis.len().max(1),
    );
}

#[allow(clippy::too_many_arguments)]
async fn substrings(
    config: PathBuf,
    n: usize,
    seed: u64,
    imap: Option<std::net::SocketAddr>,
    user: String,
    password: String,
    folder: String,
) -> Result<()> {
    let config = Config::load(&config)?;
    let index = SearchIndex::open(&SearchIndex::directory(&config.data_dir))?;
    println!(
        "index: {} documents, {:.1} MiB",
        index.documents(),
        index.size_on_disk() as f64 / (1024.0 * 1024.0)
    );
    let kinds = draw_needles(&index, n, seed)?;
    println!("-- the index's part (query and matching message ids)");
    for (kind, key, needles) in &kinds {
        let mut millis = Vec::with_capacity(needles.len());
        let mut hits = 0;
        for (i, needle) in needles.iter().enumerate() {
            let started = Instant::now();
            let query = index
                .substring_query(*key, needle)
                .context("a needle the index answers")?;
            let found = index.matching_messages(query.as_ref())?;
            // The first few warm the page cache.
            if i >= 5 {
                millis.push(started.elapsed().as_secs_f64() * 1000.0);
                hits += found.len();
            }
        }
        report(kind, millis, hits);
    }
    let Some(addr) = imap else {
        return Ok(());
    };
    let mut session = Imap::connect(addr).await?;
    let (_, status) = session
        .cmd(&format!("LOGIN {} {}", quoted(&user), quoted(&password)))
        .await?;
    anyhow::ensure!(status.starts_with("OK"), "LOGIN: {status}");
    let (lines, status) = session.cmd(&format!("SELECT {}", quoted(&folder))).await?;
    anyhow::ensure!(status.starts_with("OK"), "SELECT: {status}");
    let exists = lines
        .iter()
        .find_map(|l| {
            l.strip_suffix(" EXISTS\r\n")?
                .strip_prefix("* ")?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    println!("-- whole UID SEARCH commands over IMAP on {folder} ({exists} messages)");
    for (kind, key, needles) in &kinds {
        let mut millis = Vec::with_capacity(needles.len());
        let mut hits = 0;
        for (i, needle) in needles.iter().enumerate() {
            let command = format!("UID SEARCH {} {}", key_name(*key), quoted(needle));
            let started = Instant::now();
            let (lines, status) = session.cmd(&command).await?;
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(status.starts_with("OK"), "{command}: {status}");
            if i >= 5 {
                millis.push(elapsed);
                hits += lines
                    .iter()
                    .filter_map(|l| l.strip_prefix("* SEARCH"))
                    .map(|l| l.split_whitespace().count())
                    .sum::<usize>();
            }
        }
        report(kind, millis, hits);
    }
    Ok(())
}

fn main() -> Result<()> {
    match Args::parse().mode {
        Mode::Substrings {
            config,
            queries: n,
            seed,
            imap,
            user,
            password,
            folder,
        } => tokio::runtime::Runtime::new()?
            .block_on(substrings(config, n, seed, imap, user, password, folder)),
        Mode::Queries {
            config,
            queries: n,
            seed,
        } => queries(config, n, seed),
        Mode::Lag { config, seconds } => {
            tokio::runtime::Runtime::new()?.block_on(lag(config, seconds))
        }
    }
}
