//! Report benchmark: the dataset behind `bench/report_bench.sh`.
//!
//! ```text
//! cargo run --release --example report_bench -- fill --config FILE [--tickets 100000]
//! cargo run --release --example report_bench -- time --config FILE [--runs 5]
//! ```
//!
//! `fill`: into the configured (fresh) database, N tickets over 13 weeks
//! in three queues and ten agents, with what a report reads: per ticket a
//! customer message and, for most, an answer; half of them a follow-up
//! and its answer; 70% resolved; a reopen event for 5%; `#time` entries
//! for 30% and satisfaction answers for 40% of the resolved ones; and the
//! events a ticket's life writes (created, replies, status). Written with
//! multi-row INSERTs: a benchmark of the report, not of ingest.
//!
//! `time`: the report as `postdesk report` computes it (the rows read,
//! business hours on the office calendar, percentiles), with no grouping,
//! by day and by agent: each run's time and the median.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, TimeZone, Utc};
use clap::{Parser, Subcommand};
use postdesk::App;
use postdesk::config::Config;
use postdesk::domain::report::GroupBy;
use postdesk::reports::{self, ReportRequest};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Fill {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        tickets: usize,
    },
    Time {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

/// A small deterministic generator (the same dataset every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn ts(at: DateTime<Utc>) -> String {
    // As sqlx writes them on SQLite (and PostgreSQL reads them).
    format!("'{}'", at.format("%Y-%m-%dT%H:%M:%S+00:00"))
}

/// Rows for one INSERT … VALUES, run when the caller flushes (tickets
/// first: the other rows refer to them).
struct Batch<'a> {
    app: &'a App,
    head: String,
    rows: Vec<String>,
}

impl<'a> Batch<'a> {
    fn new(app: &'a App, head: &str) -> Batch<'a> {
        Batch {
            app,
            head: head.to_string(),
            rows: Vec::new(),
        }
    }

    async fn push(&mut self, row: String) -> Result<()> {
        self.rows.push(row);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let sql = format!("{} VALUES {}", self.head, self.rows.join(", "));
        self.app.store.execute_unchecked(&sql).await?;
        self.rows.clear();
        Ok(())
    }
}

async fn fill(config: Config, tickets: usize) -> Result<()> {
    let app = App::open(config).await?;
    let (existing, _) = app.store.counts().await?;
    anyhow::ensure!(existing == 0, "the database already has tickets");
    let queues = app.store.queues().await?;
    anyhow::ensure!(queues.len() >= 3, "configure three queues");
    let hash = postdesk::passwords::hash("bench-password")?;
    let mut agents = Vec::new();
    for n in 0..10 {
        let queue = &queues[n % 3];
        let role = if n == 0 {
            postdesk::domain::permission::AgentRole::Lead
        } else {
            postdesk::domain::permission::AgentRole::Agent
        };
        let email = format!("agent{n}@desk.bench");
        let id = app
            .store
            .add_agent(&email, &email, &hash, role, std::slice::from_ref(queue))
            .await?;
        agents.push(id);
    }
    let start = Utc
        .with_ymd_and_hms(2026, 8, 31, 6, 0, 0)
        .single()
        .context("start")?;
    let span = Duration::weeks(13).num_seconds();
    let mut rng = Lcg(42);
    let mut t = Batch::new(
        &app,
        "INSERT INTO tickets (queue_id, subject, customer_address, status, priority, owner_id, \
         created_at, updated_at, done_at, first_response_at, sla_policy, first_response_due, resolution_due)",
    );
    let mut m = Batch::new(
        &app,
        "INSERT INTO messages (ticket, kind, message_id, has_message_id, sender, envelope_from, \
         envelope_to, subject, sent_at, received_at, size, raw)",
    );
    let mut e = Batch::new(
        &app,
        "INSERT INTO ticket_events (ticket, at, actor, kind, detail)",
    );
    let mut te = Batch::new(
        &app,
        "INSERT INTO time_entries (ticket, agent_id, minutes, at)",
    );
    let mut s = Batch::new(
        &app,
        "INSERT INTO satisfaction_surveys (ticket, queue_id, agent_id, token_hash, sent_at, rating, rated_at)",
    );
    let began = Instant::now();
    for i in 0..tickets {
        let number = i as i64 + 1;
        let created = start + Duration::seconds(span * i as i64 / tickets as i64);
        let queue = &queues[rng.below(3) as usize];
        let owner = (rng.below(10) < 9).then(|| agents[rng.below(10) as usize]);
        let answered = rng.below(100) < 95;
        let first = created + Duration::minutes(rng.below(48 * 60) as i64);
        let resolved = answered && rng.below(100) < 70;
        let done = first + Duration::minutes(30 + rng.below(72 * 60) as i64);
        let status = if resolved { "resolved" } else { "open" };
        let customer = format!("customer{}@example.org", rng.below(20_000));
        let null = || "NULL".to_string();
        t.push(format!(
            "({}, 'Ticket {number}', '{customer}', '{status}', 'normal', {}, {}, {}, {}, {}, 'standard', {}, {})",
            queue.id,
            owner.map_or_else(null, |o| o.to_string()),
            ts(created),
            ts(if resolved { done } else { first }),
            if resolved { ts(done) } else { null() },
            if answered { ts(first) } else { null() },
            ts(created + Duration::hours(4)),
            ts(created + Duration::hours(48)),
        ))
        .await?;
        let message = |n: u32, kind: &str, at: DateTime<Utc>, who: &str| {
            format!(
                "({number}, '{kind}', 'm{number}.{n}@bench', TRUE, '{who}', '{who}', '{}', 'Ticket {number}', {}, {}, 0, '')",
                queue.address,
                ts(at),
                ts(at)
            )
        };
        let event = |at: DateTime<Utc>, kind: &str, detail: &str| {
            format!("({number}, {}, 'bench', '{kind}', '{detail}')", ts(at))
        };
        m.push(message(0, "customer", created, &customer)).await?;
        e.push(event(created, "created", "new ticket")).await?;
        if answered {
            m.push(message(1, "reply", first, &queue.address)).await?;
            e.push(event(first, "reply", "public reply")).await?;
            if rng.below(2) == 0 {
                let again = first + Duration::minutes(60 + rng.below(600) as i64);
                let answer = again + Duration::minutes(30 + rng.below(360) as i64);
                m.push(message(2, "customer", again, &customer)).await?;
                m.push(message(3, "reply", answer, &queue.address)).await?;
                e.push(event(answer, "reply", "public reply")).await?;
            }
        }
        if resolved {
            e.push(event(done, "changed", "status open → resolved"))
                .await?;
            if rng.below(20) == 0 {
                e.push(event(
                    done + Duration::hours(2),
                    "reopened",
                    "resolved → open: customer wrote",
                ))
                .await?;
            }
            if let Some(agent) = owner {
                if rng.below(10) < 3 {
                    te.push(format!(
                        "({number}, {agent}, {}, {})",
                        5 + rng.below(60),
                        ts(done)
                    ))
                    .await?;
                }
                if rng.below(10) < 4 {
                    let rating = ["good", "good", "okay", "bad"][rng.below(4) as usize];
                    s.push(format!(
                        "({number}, {}, {agent}, 'token-{number}', {}, '{rating}', {})",
                        queue.id,
                        ts(done),
                        ts(done + Duration::hours(3))
                    ))
                    .await?;
                }
            }
        }
        if t.rows.len() >= 500 {
            for batch in [&mut t, &mut m, &mut e, &mut te, &mut s] {
                batch.flush().await?;
            }
        }
        if i % 20_000 == 19_999 {
            eprintln!("{} tickets, {:.1} s", i + 1, began.elapsed().as_secs_f64());
        }
    }
    for batch in [&mut t, &mut m, &mut e, &mut te, &mut s] {
        batch.flush().await?;
    }
    // PostgreSQL gathers statistics for the planner; SQLite too (ANALYZE).
    app.store.execute_unchecked("ANALYZE").await?;
    eprintln!(
        "filled {tickets} tickets in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    app.store.close().await;
    Ok(())
}

async fn time(config: Config, runs: usize) -> Result<()> {
    let store = postdesk::store::Store::connect_read_only(&config.database_url()).await?;
    let rules = postdesk::rules::RulesHandle::load(config.rules_path())?.current();
    let now = Utc::now();
    // The reading alone (the rest of a run is the computation).
    let mut reads = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        let data = store.report_data(None, now).await?;
        reads.push(began.elapsed().as_secs_f64() * 1000.0);
        drop(data);
    }
    reads.sort_by(|a, b| a.total_cmp(b));
    println!("reading the rows: median {:.0} ms", reads[reads.len() / 2]);
    for by in [None, Some(GroupBy::Day), Some(GroupBy::Agent)] {
        let request = ReportRequest {
            by,
            ..ReportRequest::default()
        };
        let mut times = Vec::new();
        let mut created = 0;
        for _ in 0..runs {
            let began = Instant::now();
            let report =
                reports::build(&store, &config, rules.clone(), None, &request, now).await?;
            times.push(began.elapsed().as_secs_f64() * 1000.0);
            created = report.total.created;
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "report {:<6} over {created} tickets: median {:.0} ms (runs: {})",
            by.map_or("total".to_string(), |b| b.to_string()),
            times[times.len() / 2],
            times
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    match args.mode {
        Mode::Fill { config, tickets } => fill(Config::load(&config)?, tickets).await,
        Mode::Time { config, runs } => time(Config::load(&config)?, runs).await,
    }
}
