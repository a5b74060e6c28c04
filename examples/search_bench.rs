//! Search benchmark over an existing data directory (filled by
//! bench/search_bench.sh): query latency by kind of query, and the index
//! lag while mail arrives.
//!
//! ```text
//! cargo run --release --example search_bench -- queries --config DIR/postdesk.toml
//! cargo run --release --example search_bench -- lag --config DIR/postdesk.toml --seconds 60
//! ```
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

fn main() -> Result<()> {
    match Args::parse().mode {
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
