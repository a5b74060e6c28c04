//! Rules engine benchmark.
//!
//! ```text
//! cargo run --release --example rules_bench -- rules [--rules 200] [--corpus DIR] [--runs 5]
//! cargo run --release --example rules_bench -- scheduler [--tickets 100000] [--seconds 60]
//! cargo run --example rules_bench -- burst [--tickets 2000] [--nodes 2] [--postgres URL]
//! ```
//!
//! `rules`: what 200 rules add to each message: the time to build the
//! message's CEL variables (parsing included) and to run every rule, per
//! message of the corpus (../shared/corpus/mime), median and p99 of each
//! run, and the median over runs.
//!
//! `scheduler`: a fresh SQLite store with N open tickets on a 24x7 SLA
//! whose first-response due times are spread over the next 8 hours, and
//! two escalations (a warning 30 minutes before, and the breach). First
//! the catch-up (every ticket needs a first look, as after downtime), then
//! the real scheduler task for `--seconds`: wake-ups per minute, tickets
//! handled, CPU time and resident memory.
//!
//! `burst`: N tickets whose first response falls due at the same instant
//! (a few seconds after the start), an escalation on the breach, and the
//! real scheduler task of one or more nodes (on PostgreSQL, `--nodes 2`
//! runs two schedulers on one database, as two servers would): how late
//! each escalation fired after its due time (p50, p99, max) and whether
//! each fired exactly once.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use postdesk::App;
use postdesk::config::Config;
use postdesk::domain::automation::TicketSnapshot;
use postdesk::rules::{Rules, condition::Variables, context::message_variables};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Rules {
        #[arg(long, default_value_t = 200)]
        rules: usize,
        #[arg(long, default_value = "../shared/corpus/mime")]
        corpus: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only rules of one kind (0–7), to see what each costs.
        #[arg(long)]
        kind: Option<usize>,
    },
    Scheduler {
        #[arg(long, default_value_t = 100_000)]
        tickets: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    Burst {
        #[arg(long, default_value_t = 2000)]
        tickets: usize,
        /// Schedulers on one database (more than one needs --postgres).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// A PostgreSQL server: a fresh database is made on it (and dropped).
        #[arg(long)]
        postgres: Option<String>,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.mode {
        Mode::Rules {
            rules,
            corpus,
            runs,
            kind,
        } => rules_bench(rules, &corpus, runs, kind),
        Mode::Scheduler { tickets, seconds } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(scheduler_bench(tickets, seconds))
        }
        Mode::Burst {
            tickets,
            nodes,
            postgres,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(burst_bench(tickets, nodes, postgres))
        }
    }
}

/// `n` rules of the kinds a support team writes: regular expressions on
/// the subject, domains, body words, recipients, headers, attachments.
fn generated_rules(n: usize, only: Option<usize>) -> String {
    let words = [
        "outage", "down", "invoice", "refund", "password", "login", "vpn", "printer", "crash",
        "urgent", "cancel", "upgrade", "license", "backup", "error", "timeout", "billing",
        "security", "phishing", "delivery",
    ];
    let mut text = String::from("[sla.fast]\nfirst_response = \"1h\"\n\n");
    for i in 0..n {
        let w = words[i % words.len()];
        let when = match only.unwrap_or(i % 8) {
            0 => format!(r#"subject.matches("(?i)\\b{w}{i}\\b")"#),
            1 => format!(r#"from.domain in ["{w}{i}.example", "customer{i}.example"]"#),
            2 => format!(r#"body.contains("{w} {i}")"#),
            3 => format!(r#"to.local == "{w}{i}""#),
            4 => format!(r#"subject.lowerAscii().contains("{w}-{i}") && ticket.new"#),
            5 => format!(r#"headers["x-{w}"] == "{i}""#),
            6 => format!(r#"attachments.exists(a, a.name.endsWith(".{w}{i}"))"#),
            _ => format!(r#"from.address.startsWith("{w}{i}@") || auth.dmarc == "fail{i}""#),
        };
        text.push_str(&format!(
            "[[rule]]\nname = \"rule {i}\"\nwhen = '{when}'\ntags = [\"{w}\"]\n\n"
        ));
    }
    text
}

fn rules_bench(count: usize, corpus: &Path, runs: usize, kind: Option<usize>) -> Result<()> {
    let rules = Rules::parse(&generated_rules(count, kind), Path::new("generated.toml"))?;
    let mut messages = Vec::new();
    for entry in std::fs::read_dir(corpus).with_context(|| format!("{}", corpus.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            messages.push(std::fs::read(&path)?);
        }
    }
    anyhow::ensure!(
        !messages.is_empty(),
        "no .eml files in {}",
        corpus.display()
    );
    let ticket = TicketSnapshot {
        queue: "support".into(),
        priority: postdesk::domain::ticket::Priority::Normal,
        status: postdesk::domain::ticket::Status::New,
        ..TicketSnapshot::default()
    };
    let now = chrono::Utc::now();
    println!(
        "{} rules over {} corpus messages, {runs} runs",
        rules.rules.len(),
        messages.len()
    );
    let mut build_medians = Vec::new();
    let mut eval_medians = Vec::new();
    let mut eval_p99s = Vec::new();
    let mut matched = 0;
    for run in 0..runs {
        let mut build = Vec::new();
        let mut eval = Vec::new();
        // Each message several times, so a run is long enough to time.
        for _ in 0..5 {
            for raw in &messages {
                let started = Instant::now();
                let variables: Variables = message_variables(raw, "support@desk.test");
                build.push(started.elapsed());
                let started = Instant::now();
                let evaluation = rules.evaluate(&variables, &ticket, true, now);
                eval.push(started.elapsed());
                matched += evaluation.matched.len();
            }
        }
        let (b50, _) = percentiles(&mut build);
        let (e50, e99) = percentiles(&mut eval);
        println!(
            "run {}: variables p50 {:.1} µs; {} rules p50 {:.1} µs, p99 {:.1} µs per message",
            run + 1,
            micros(b50),
            rules.rules.len(),
            micros(e50),
            micros(e99)
        );
        build_medians.push(b50);
        eval_medians.push(e50);
        eval_p99s.push(e99);
    }
    println!(
        "median of runs: variables {:.1} µs, rules {:.1} µs (p99 {:.1} µs) per message; {} matches",
        micros(median(&mut build_medians)),
        micros(median(&mut eval_medians)),
        micros(median(&mut eval_p99s)),
        matched
    );
    Ok(())
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

const SCHEDULER_RULES: &str = r#"
[sla.standard]
first_response = "8h"
resolution = "2d"

[[escalation]]
name = "Warn"
when = "first_response.remaining < duration('30m')"
tags = ["warned"]

[[escalation]]
name = "Late"
when = "first_response.breached"
priority = "urgent"
"#;

/// Resident memory that is the process's own (heap, stacks: RssAnon, not
/// the SQLite file pages it maps) and CPU time (user + system).
fn usage() -> (u64, Duration) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (11 and 12 after the comm).
    let cpu = Duration::from_millis((ticks(11) + ticks(12)) * 10);
    (rss_kb, cpu)
}

async fn scheduler_bench(tickets: usize, seconds: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("rules.toml"), SCHEDULER_RULES)?;
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        rules: Some(dir.path().join("rules.toml")),
        ..Config::default()
    };
    let app = App::open(config).await?;
    let queue = app
        .queues()
        .await?
        .first()
        .map(|q| q.id)
        .context("no queue")?;
    let now = chrono::Utc::now();
    // Created over the last 8 hours: first responses fall due over the
    // next 8 hours (uniformly, about every 0.3 s for 100,000).
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {tickets})
         INSERT INTO tickets (queue_id, subject, customer_address, status, priority, created_at,
             updated_at, customer_waiting_since, sla_policy, sla_check_at)
         SELECT {queue}, 'ticket ' || i, 'c' || i || '@example.com', 'open', 'normal',
             strftime('%Y-%m-%dT%H:%M:%f+00:00', '{start}', '+' || (i * 28800.0 / {tickets}) || ' seconds'),
             '{now}', '{now}', 'standard', '{now}' FROM n",
        start = (now - chrono::Duration::hours(8)).format("%Y-%m-%d %H:%M:%S"),
        now = now.to_rfc3339(),
    );
    let started = Instant::now();
    app.store.execute_unchecked(&sql).await?;
    println!(
        "{tickets} open tickets inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (rss_before, cpu_before) = usage();
    let started = Instant::now();
    let mut handled = 0;
    loop {
        let round =
            postdesk::rules::scheduler::run_due(&app.scheduler(), chrono::Utc::now()).await?;
        handled += round.tickets;
        if round.tickets == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    let (rss_after, cpu_after) = usage();
    println!(
        "catch-up: {handled} tickets in {:.1} s ({:.0} tickets/s), CPU {:.1} s, anonymous RSS {} → {} MiB",
        elapsed.as_secs_f64(),
        handled as f64 / elapsed.as_secs_f64(),
        (cpu_after - cpu_before).as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024
    );

    let shutdown = postdesk::net::ShutdownTrigger::new();
    let rounds_before =
        postdesk::rules::scheduler::ROUNDS.load(std::sync::atomic::Ordering::Relaxed);
    let (_, cpu_before) = usage();
    let task = tokio::spawn(postdesk::rules::scheduler::run(
        app.scheduler(),
        shutdown.subscribe(),
    ));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    shutdown.trigger();
    let _ = task.await;
    let rounds = postdesk::rules::scheduler::ROUNDS.load(std::sync::atomic::Ordering::Relaxed)
        - rounds_before;
    let (rss, cpu_after) = usage();
    let late = app
        .store
        .tickets(&postdesk::store::TicketFilter {
            overdue: true,
            ..Default::default()
        })
        .await?
        .len();
    println!(
        "steady state for {seconds} s: {rounds} wake-ups ({:.1}/min), CPU {:.2} s ({:.2}% of one core), anonymous RSS {} MiB, {late} tickets overdue",
        rounds as f64 * 60.0 / seconds as f64,
        (cpu_after - cpu_before).as_secs_f64(),
        (cpu_after - cpu_before).as_secs_f64() * 100.0 / seconds as f64,
        rss / 1024,
    );
    app.store.close().await;
    Ok(())
}

const BURST_RULES: &str = r#"
[sla.burst]
first_response = "1h"

[[escalation]]
name = "Late"
when = "first_response.breached"
priority = "urgent"
tags = ["late"]
"#;

async fn burst_bench(tickets: usize, nodes: usize, postgres: Option<String>) -> Result<()> {
    use sqlx::Connection;
    anyhow::ensure!(
        nodes == 1 || postgres.is_some(),
        "several nodes need --postgres"
    );
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("rules.toml"), BURST_RULES)?;
    let database_url = match &postgres {
        Some(base) => {
            let name = format!("postdesk_bench_{:016x}", rand::random::<u64>());
            let mut admin = sqlx::PgConnection::connect(base).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
            let mut url = url::Url::parse(base)?;
            url.set_path(&format!("/{name}"));
            Some((url.to_string(), name))
        }
        None => None,
    };
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        rules: Some(dir.path().join("rules.toml")),
        database_url: database_url.as_ref().map(|(url, _)| url.clone()),
        ..Config::default()
    };
    let mut apps = Vec::new();
    for _ in 0..nodes {
        apps.push(App::open(config.clone()).await?);
    }
    let app = apps[0].clone();
    let queue = app
        .queues()
        .await?
        .first()
        .map(|q| q.id)
        .context("no queue")?;
    // Due a few seconds from now, all at once: created an hour earlier on
    // a one-hour first-response clock.
    let now = chrono::Utc::now();
    let due = now + chrono::Duration::seconds(5);
    let created = (due - chrono::Duration::hours(1)).to_rfc3339();
    let sql = match app.store.backend_name() {
        "postgres" => format!(
            "INSERT INTO tickets (queue_id, subject, customer_address, status, priority, created_at,
                 updated_at, customer_waiting_since, sla_policy, sla_check_at)
             SELECT {queue}, 'ticket ' || i, 'c' || i || '@example.com', 'open', 'normal',
                 '{created}', '{now}', '{created}', 'burst', '{now}'
             FROM generate_series(1, {tickets}) AS i",
            now = now.to_rfc3339(),
        ),
        _ => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {tickets})
             INSERT INTO tickets (queue_id, subject, customer_address, status, priority, created_at,
                 updated_at, customer_waiting_since, sla_policy, sla_check_at)
             SELECT {queue}, 'ticket ' || i, 'c' || i || '@example.com', 'open', 'normal',
                 '{created}', '{now}', '{created}', 'burst', '{now}' FROM n",
            now = now.to_rfc3339(),
        ),
    };
    app.store.execute_unchecked(&sql).await?;
    let shutdown = postdesk::net::ShutdownTrigger::new();
    let tasks: Vec<_> = apps
        .iter()
        .map(|app| {
            tokio::spawn(postdesk::rules::scheduler::run(
                app.scheduler(),
                shutdown.subscribe(),
            ))
        })
        .collect();
    // Wait until every ticket's escalation fired (or a minute passed).
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_secs(5);
    let mut fired = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fired = fired_times(&app).await?;
        if fired.len() >= tickets {
            break;
        }
    }
    let all_done = chrono::Utc::now();
    shutdown.trigger();
    for task in tasks {
        let _ = task.await;
    }
    let mut late: Vec<Duration> = fired
        .iter()
        .map(|(_, at)| (*at - due).to_std().unwrap_or(Duration::ZERO))
        .collect();
    let mut per_ticket = std::collections::HashMap::new();
    for (ticket, _) in &fired {
        *per_ticket.entry(*ticket).or_insert(0) += 1;
    }
    let twice = per_ticket.values().filter(|n| **n > 1).count();
    late.sort();
    let at = |q: f64| {
        late.get(((late.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{tickets} tickets due at once, {nodes} node(s) on {}: {} escalations fired ({} tickets, {twice} more than once); \
         lateness p50 {:.2} s, p99 {:.2} s, max {:.2} s; all seen fired {:.2} s after the due time",
        app.store.backend_name(),
        fired.len(),
        per_ticket.len(),
        at(0.5).as_secs_f64(),
        at(0.99).as_secs_f64(),
        late.last().copied().unwrap_or_default().as_secs_f64(),
        (all_done - due).num_milliseconds() as f64 / 1000.0,
    );
    for app in &apps {
        app.store.close().await;
    }
    if let (Some(base), Some((_, name))) = (&postgres, &database_url) {
        let mut admin = sqlx::PgConnection::connect(base).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    Ok(())
}

/// Every escalation fired so far: the ticket and when it fired.
async fn fired_times(app: &App) -> Result<Vec<(i64, chrono::DateTime<chrono::Utc>)>> {
    Ok(app.store.escalation_firings().await?)
}
