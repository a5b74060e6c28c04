//! Knowledge-base suggestion cost: what finding the articles for a new
//! ticket's acknowledgement adds to its ingest, with many published
//! public articles.
//!
//! ```text
//! cargo run --release --example kb_bench -- --articles 10000 --messages 500
//! cargo run --release --example kb_bench -- --database postgres://… --articles 10000
//! ```
//!
//! Fills a fresh database (a temporary SQLite file, or the PostgreSQL
//! database named) with generated articles, published and public, then
//! asks for suggestions for generated customer messages as ingest does
//! (`ArticleIndex::suggest`: the store's change count, then the query),
//! and reports the first call (which builds the index) and the median and
//! p99 of the others. The words are seeded, so every run asks the same.

use anyhow::{Context, Result};
use clap::Parser;
use postdesk::domain::knowledge::{ArticleChange, ArticleState, Visibility};
use postdesk::search::articles::ArticleIndex;
use postdesk::store::{ArticleWrite, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Published public articles to create.
    #[arg(long, default_value_t = 10_000)]
    articles: usize,
    /// Customer messages to ask suggestions for.
    #[arg(long, default_value_t = 500)]
    messages: usize,
    /// A PostgreSQL database to fill (default: a temporary SQLite file).
    #[arg(long)]
    database: Option<String>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Words for titles, texts and messages: `VOCABULARY` made-up words,
/// drawn with a Zipf-like skew (a few common, most rare), as in real text.
const VOCABULARY: usize = 5000;

fn word(rng: &mut StdRng) -> String {
    // Rank r is drawn with weight about 1/r: exp of a uniform log-rank.
    let rank = (rng.random::<f64>() * (VOCABULARY as f64).ln()).exp() as usize;
    let mut n = rank.min(VOCABULARY - 1);
    let syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa"];
    let mut text = String::new();
    loop {
        text.push_str(syllables[n % syllables.len()]);
        n /= syllables.len();
        if n == 0 {
            break;
        }
    }
    text
}

fn sentence(rng: &mut StdRng, words: usize) -> String {
    (0..words).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted
        .get(rank.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir().context("temporary directory")?;
    let url = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/kb.db", dir.path().display()));
    let store = Store::connect(&url).await.context("connect")?;
    store.migrate().await.context("migrate")?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let started = Instant::now();
    for _ in 0..args.articles {
        let words = rng.random_range(2..5);
        let title = sentence(&mut rng, words);
        let body = sentence(&mut rng, 80);
        store
            .kb_write(&ArticleWrite {
                article: None,
                actor: None,
                scopes: &Default::default(),
                author: "bench".into(),
                change: ArticleChange {
                    title: Some(title),
                    category: Some("Bench".into()),
                    body_text: Some(body),
                    visibility: Some(Visibility::Public),
                    state: Some(ArticleState::Published),
                    ..ArticleChange::default()
                },
                revert_to: None,
                source_html: None,
                message_ids: Vec::new(),
                now: chrono::Utc::now(),
            })
            .await
            .context("write an article")?;
    }
    println!(
        "{} articles written in {:.1} s",
        args.articles,
        started.elapsed().as_secs_f64()
    );
    let index = ArticleIndex::default();
    let mut first = None;
    let mut times = Vec::with_capacity(args.messages);
    let mut suggested = 0;
    for _ in 0..=args.messages {
        let subject = sentence(&mut rng, 4);
        let body = format!("Hello, {}. Thanks, Ann", sentence(&mut rng, 60));
        let started = Instant::now();
        let found = index.suggest(&store, &subject, &body, 3).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if first.is_none() {
            first = Some(ms);
        } else {
            times.push(ms);
            suggested += found.len();
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "first call (builds the index): {:.1} ms; then per message: p50 {:.2} ms, p99 {:.2} ms; {:.2} articles suggested per message",
        first.unwrap_or(f64::NAN),
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        suggested as f64 / times.len().max(1) as f64
    );
    store.close().await;
    Ok(())
}
