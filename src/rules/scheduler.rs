//! The SLA scheduler: sleeps until the earliest `sla_check_at` of any
//! ticket (an indexed MIN, not a scan), then brings those tickets' clocks
//! up to date and fires the escalations whose conditions hold.
//!
//! Everything it needs is in the store, so a restart loses nothing: what
//! fell due while the server was down has a check time in the past and is
//! handled on the first round. Each escalation fires once per breach
//! because its firing row is committed with its effects.

use super::RulesHandle;
use super::condition::{Variables, timestamp};
use super::context::{clock_value, ticket_value};
use super::sla::{self, SlaTicket};
use super::{Escalation, Rules};
use crate::domain::address;
use crate::domain::automation::TicketSnapshot;
use crate::domain::change::TicketChange;
use crate::domain::outgoing::OutgoingMail;
use crate::domain::sla::{ClockSave, Firing, SlaUpdate};
use crate::domain::ticket::queue_display_name;
use crate::net::Shutdown;
use crate::store::{SlaWork, Store, StoreError, Ticket};
use crate::templates::Templates;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Tickets claimed, worked on and committed together.
const BATCH: i64 = 100;

/// Batches worked on at once on PostgreSQL (SQLite has one writer).
const PARALLEL_BATCHES: usize = 4;

/// The longest sleep. Another process's change wakes the scheduler as
/// its own do (on PostgreSQL every node's changes are announced to every
/// node); a check time written by the CLI on SQLite, which announces
/// nothing to the server, is seen at most this late.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The shortest timed sleep: tickets due within the same quarter second
/// are handled in one round (at most 240 timed wake-ups a minute however
/// many tickets there are), and a timed wake-up is at most that late.
const MIN_SLEEP: Duration = Duration::from_millis(250);

/// Rounds run since start (for the benchmark).
pub static ROUNDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts for the benchmark and logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedulerRound {
    pub tickets: usize,
    pub fired: usize,
}

/// What the scheduler works with (its share of the server's handles).
#[derive(Clone)]
pub struct Scheduler {
    pub store: Store,
    pub rules: Arc<RulesHandle>,
    pub templates: Templates,
    pub hostname: String,
    /// For the Message-IDs of escalation notices.
    pub own_ids: crate::domain::message_id::OwnIds,
    /// Notified when rules.toml was reloaded.
    pub reloaded: Arc<Notify>,
}

pub async fn run(app: Scheduler, mut shutdown: Shutdown) {
    let mut changes = app.store.subscribe();
    loop {
        let round_started = tokio::time::Instant::now();
        match run_due(&app, Utc::now()).await {
            // A full batch: there may be more due.
            Ok(round) if round.tickets as i64 >= BATCH => continue,
            Ok(round) => {
                if round.tickets > 0 {
                    tracing::debug!(tickets = round.tickets, fired = round.fired, "sla round");
                }
            }
            Err(err) => tracing::warn!(%err, "sla scheduler: round failed; retrying"),
        }
        // What this round changed announced itself; what others changed
        // meanwhile moved a check time in the store, read just below.
        while changes.try_recv().is_ok() {}
        // Until the next check time, but at least MIN_SLEEP after the
        // last round began (not after now: a check time that comes soon
        // after a round is not put off by a whole MIN_SLEEP).
        let sleep = match app.store.sla_next_check().await {
            Ok(Some(at)) => {
                let until = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                let spacing = MIN_SLEEP.saturating_sub(round_started.elapsed());
                until.max(spacing).min(MAX_SLEEP)
            }
            Ok(None) => MAX_SLEEP,
            Err(err) => {
                tracing::warn!(%err, "sla scheduler: cannot read the next check time");
                MAX_SLEEP
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = app.reloaded.notified() => {}
            // A change may have moved a clock: look again (changes come in
            // bursts; the next round reads them all).
            changed = changes.recv() => {
                if matches!(changed, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = shutdown.stopped() => return,
        }
        if shutdown.is_stopping() {
            return;
        }
    }
}

/// One round: the tickets whose check time has come, a batch at a time
/// (on PostgreSQL several batches at once, each its own claim and
/// transaction: statements there are round trips, and the batches of
/// other nodes' schedulers are passed over, not waited for).
pub async fn run_due(app: &Scheduler, now: DateTime<Utc>) -> Result<SchedulerRound, StoreError> {
    ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A look on the reading side first: a round woken by a change that
    // moved no clock due takes no write transaction (on SQLite, the one
    // writer that ingest needs).
    if app
        .store
        .sla_next_check()
        .await?
        .is_none_or(|next| next > now)
    {
        return Ok(SchedulerRound::default());
    }
    let parallel = match app.store.backend_name() {
        "postgres" => PARALLEL_BATCHES,
        _ => 1,
    };
    let rounds = futures_util::future::join_all((0..parallel).map(|_| run_batch(app, now))).await;
    let mut total = SchedulerRound::default();
    for round in rounds {
        let round = round?;
        total.tickets += round.tickets;
        total.fired += round.fired;
    }
    Ok(total)
}

/// Claims one batch of due tickets and does them in one transaction.
async fn run_batch(app: &Scheduler, now: DateTime<Utc>) -> Result<SchedulerRound, StoreError> {
    let rules = app.rules.current();
    let leads = rules.warning_leads();
    let claim = app.store.sla_claim(now, BATCH).await?;
    let mut round = SchedulerRound::default();
    if claim.due().is_empty() {
        return Ok(round);
    }
    let numbers: Vec<i64> = claim.due().iter().map(|(n, _)| *n).collect();
    // One query for the batch (the claim holds the rows: what is read is
    // what the batch changes), and the queues and agents once.
    let tickets = app.store.tickets_by_number(&numbers).await?;
    let mut names = None;
    let mut work = Vec::with_capacity(numbers.len());
    for (number, check_at) in claim.due() {
        round.tickets += 1;
        let Some(ticket) = tickets.iter().find(|t| t.number == *number) else {
            continue;
        };
        let (reconciled, escalations) = check_ticket(&rules, &leads, ticket, now);
        let save = ClockSave {
            ticket: *number,
            read_check_at: *check_at,
            was_overdue: ticket.sla_overdue,
            update: reconciled,
        };
        let firings = if escalations.is_empty() {
            Vec::new()
        } else {
            if names.is_none() {
                names = Some(Names::read(app, &rules).await?);
            }
            match &names {
                Some(names) => firings(app, names, ticket, &save, &escalations, now),
                None => Vec::new(),
            }
        };
        work.push((save, firings));
    }
    match claim.finish(&app.store, &work).await {
        Ok(fired) => {
            for (ticket, done) in &fired {
                log_fired(*ticket, done);
                round.fired += done.len();
            }
        }
        Err(err) => {
            // One ticket's failure undid the batch: each on its own now,
            // so that the others go through.
            tracing::warn!(%err, tickets = work.len(), "sla batch failed; doing its tickets one by one");
            round.fired = one_by_one(app, work, now).await?;
        }
    }
    Ok(round)
}

/// The batch's tickets each in its own transaction; a ticket whose
/// escalations cannot fire is looked at again in a minute.
async fn one_by_one(
    app: &Scheduler,
    work: Vec<SlaWork>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut fired = 0;
    for (save, firings) in work {
        if firings.is_empty() {
            app.store.save_sla(std::slice::from_ref(&save)).await?;
            continue;
        }
        match app.store.save_sla_and_fire(&save, &firings).await {
            Ok(Some(done)) => {
                log_fired(save.ticket, &done);
                fired += done.len();
            }
            // Changed since it was read: the next round decides afresh.
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(ticket = save.ticket, %err,
                    "escalations not fired; looked at again in a minute");
                let mut save = save;
                save.update.next_check = Some(now + chrono::Duration::minutes(1));
                app.store.save_sla(&[save]).await?;
            }
        }
    }
    Ok(fired)
}

fn log_fired(ticket: i64, fired: &[(String, Vec<String>)]) {
    for (name, done) in fired {
        tracing::info!(ticket, escalation = %name, done = %done.join(", "), "escalation fired");
    }
}

/// The queues and agents escalations name, read once per batch.
struct Names {
    queues: Arc<Vec<crate::store::Queue>>,
    agents: Vec<crate::store::Agent>,
}

impl Names {
    async fn read(app: &Scheduler, rules: &Rules) -> Result<Names, StoreError> {
        let queues = Arc::new(app.store.queues().await?);
        let agents = if rules.escalations.iter().any(|e| e.owner.is_some()) {
            app.store.agents().await?
        } else {
            Vec::new()
        };
        Ok(Names { queues, agents })
    }
}

pub fn sla_ticket(t: &Ticket) -> SlaTicket {
    SlaTicket {
        number: t.number,
        policy: t.sla_policy.clone(),
        status: t.status,
        created_at: t.created_at,
        first_response_at: t.first_response_at,
        customer_waiting_since: t.customer_waiting_since,
        first_response_due: t.first_response_due,
        next_response_due: t.next_response_due,
        resolution_due: t.resolution_due,
        paused_at: t.sla_paused_at,
        resumed_at: t.sla_resumed_at,
        overdue: t.sla_overdue,
    }
}

/// Brings one ticket's clocks up to date and decides which escalations
/// hold (pure: a CEL context is not `Send` and stays out of any await).
fn check_ticket<'r>(
    rules: &'r Rules,
    leads: &[chrono::Duration],
    ticket: &Ticket,
    now: DateTime<Utc>,
) -> (SlaUpdate, Vec<&'r Escalation>) {
    let state = sla_ticket(ticket);
    let policy = ticket.sla_policy.as_deref().and_then(|p| rules.policy(p));
    let reconciled = sla::reconcile(&state, policy, now, leads);
    if ticket.sla_policy.is_none()
        || matches!(ticket.status, crate::domain::ticket::Status::Closed)
        || rules.escalations.is_empty()
    {
        return (reconciled, Vec::new());
    }
    let context =
        escalation_variables(ticket, &state, &reconciled, now).context(&rules.escalation_needs);
    let holding = rules
        .escalations
        .iter()
        .filter(|escalation| match escalation.when.evaluate_in(&context) {
            Ok(holds) => holds,
            Err(err) => {
                tracing::warn!(ticket = ticket.number, escalation = %escalation.name, %err,
                    "escalation skipped: its condition failed");
                false
            }
        })
        .collect();
    (reconciled, holding)
}

pub fn escalation_variables(
    ticket: &Ticket,
    state: &SlaTicket,
    reconciled: &SlaUpdate,
    now: DateTime<Utc>,
) -> Variables {
    let mut v = Variables::default();
    v.set("ticket", ticket_value(&snapshot(ticket), false, now));
    for (name, clock) in reconciled.clocks(state) {
        v.set(name, clock_value(&clock, now));
    }
    v.set("now", timestamp(now));
    v
}

pub fn snapshot(t: &Ticket) -> TicketSnapshot {
    TicketSnapshot {
        number: t.number,
        queue: t.queue.clone(),
        priority: t.priority,
        status: t.status,
        tags: t.tags.clone(),
        customer: t.customer_address.clone(),
        owner: t.owner.clone(),
        sla_policy: t.sla_policy.clone(),
        created_at: Some(t.created_at),
        messages: t.message_count,
        satisfaction: None,
        // Escalations read the ticket's clocks; what its acknowledgement
        // suggested is a rule's concern at ingest.
        suggested_articles: Vec::new(),
    }
}

/// What each escalation that holds does to a ticket (saved and fired
/// with the ticket's clocks, each once per breach, by the store).
fn firings(
    app: &Scheduler,
    names: &Names,
    ticket: &Ticket,
    save: &ClockSave,
    escalations: &[&Escalation],
    now: DateTime<Utc>,
) -> Vec<Firing> {
    let reconciled = &save.update;
    let queues = &names.queues;
    let agents = &names.agents;
    let queue_address = queues
        .iter()
        .find(|q| q.name == ticket.queue)
        .map(|q| q.address.clone())
        .unwrap_or_else(|| format!("support@{}", app.hostname));
    let state = sla_ticket(ticket);
    let mut firings = Vec::with_capacity(escalations.len());
    for escalation in escalations {
        let mut problems = Vec::new();
        // Names are resolved as rules resolve them; one that names nothing
        // is left out (and said), never allowed to undo the whole firing.
        let queue = escalation.queue.as_ref().and_then(|name| {
            let found = queues.iter().find(|q| {
                q.name.eq_ignore_ascii_case(name) || q.address.eq_ignore_ascii_case(name)
            });
            if found.is_none() {
                problems.push(format!("queue '{name}' not set: no such queue"));
            }
            found.map(|q| q.name.clone())
        });
        let owner = escalation.owner.as_ref().and_then(|email| {
            let found = agents.iter().find(|a| a.email.eq_ignore_ascii_case(email));
            if found.is_none() {
                problems.push(format!("owner {email} not set: no such agent"));
            }
            found.map(|a| Some(a.id))
        });
        firings.push(Firing {
            name: escalation.name.clone(),
            breaches: sla::breach_keys(&escalation.when.reads, &state, reconciled),
            change: TicketChange {
                priority: escalation.priority,
                queue,
                owner,
                add_tags: escalation.tags.clone(),
                ..TicketChange::default()
            },
            notices: notices(app, &queue_address, ticket, reconciled, escalation, now),
            problems,
        });
    }
    firings
}

/// The notification mails of an escalation, one per address, from the
/// ticket's queue.
fn notices(
    app: &Scheduler,
    queue_address: &str,
    ticket: &Ticket,
    reconciled: &SlaUpdate,
    escalation: &Escalation,
    now: DateTime<Utc>,
) -> Vec<OutgoingMail> {
    if escalation.notify.is_empty() {
        return Vec::new();
    }
    let queue_address = queue_address.to_string();
    let clocks: Vec<serde_json::Value> = reconciled
        .clocks(&sla_ticket(ticket))
        .iter()
        .filter(|(_, c)| c.running || c.paused)
        .map(|(name, c)| {
            serde_json::json!({
                "name": name.replace('_', " "),
                "due": c.due.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()),
                "breached": c.running && c.due.is_some_and(|d| d <= now),
            })
        })
        .collect();
    let context = serde_json::json!({
        "ticket": {
            "number": ticket.number,
            "subject": ticket.subject,
            "queue": ticket.queue,
            "priority": ticket.priority.to_string(),
            "status": ticket.status.to_string(),
            "owner": ticket.owner,
            "customer": ticket.customer_address,
        },
        "escalation": {"name": escalation.name},
        "late": reconciled.overdue,
        "clocks": clocks,
    });
    let rendered = match app.templates.render(&escalation.template, &context) {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!(escalation = %escalation.name, %err, "escalation notice not built");
            return Vec::new();
        }
    };
    let mut mails = Vec::new();
    for to in &escalation.notify {
        let to = address::normalize(to);
        let message_id = app.own_ids.mint(ticket.number);
        let built = mail_builder::MessageBuilder::new()
            .from((
                format!("{} escalations", queue_display_name(&ticket.queue)),
                queue_address.clone(),
            ))
            .to(to.clone())
            .subject(rendered.subject.clone())
            .message_id(message_id.clone())
            .header(
                "Auto-Submitted",
                mail_builder::headers::raw::Raw::new("auto-generated"),
            )
            .header(
                "X-Postdesk-Ticket",
                mail_builder::headers::raw::Raw::new(ticket.number.to_string()),
            )
            .text_body(rendered.body.clone())
            .write_to_vec();
        match built {
            Ok(mut raw) => {
                if !raw.ends_with(b"\r\n") {
                    raw.extend_from_slice(b"\r\n");
                }
                mails.push(OutgoingMail {
                    message_id,
                    mail_from: queue_address.clone(),
                    rcpt_to: to,
                    sender: queue_address.clone(),
                    from_name: Some(format!("{} escalations", queue_display_name(&ticket.queue))),
                    subject: rendered.subject.clone(),
                    raw,
                });
            }
            Err(err) => tracing::warn!(%err, "escalation notice not built"),
        }
    }
    mails
}
