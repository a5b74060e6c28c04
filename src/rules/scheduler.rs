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
use crate::store::{Store, StoreError, Ticket};
use crate::templates::Templates;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Tickets handled per round before the next query.
const BATCH: i64 = 200;

/// The longest sleep: a check time written by another node (or the CLI)
/// is seen at most this late.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The shortest timed sleep: tickets due within the same second are
/// handled in one round (at most 60 timed wake-ups a minute however many
/// tickets there are), and nothing fires more than a second late.
const MIN_SLEEP: Duration = Duration::from_secs(1);

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
        match run_due(&app, Utc::now()).await {
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
        let sleep = match app.store.sla_next_check().await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(MIN_SLEEP, MAX_SLEEP),
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

/// One round: every ticket whose check time has come.
pub async fn run_due(app: &Scheduler, now: DateTime<Utc>) -> Result<SchedulerRound, StoreError> {
    ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let rules = app.rules.current();
    let leads = rules.warning_leads();
    let due = app.store.sla_due(now, BATCH).await?;
    let numbers: Vec<i64> = due.iter().map(|(n, _)| *n).collect();
    // One query for the batch, one transaction for its saves: a round
    // costs a few statements, not a few per ticket.
    let tickets = app.store.tickets_by_number(&numbers).await?;
    let mut round = SchedulerRound::default();
    let mut saves = Vec::with_capacity(due.len());
    let mut to_fire = Vec::new();
    for (number, check_at) in due {
        round.tickets += 1;
        let Some(ticket) = tickets.iter().find(|t| t.number == number) else {
            continue;
        };
        let (reconciled, escalations) = check_ticket(&rules, &leads, ticket, now);
        let save = ClockSave {
            ticket: number,
            read_check_at: check_at,
            was_overdue: ticket.sla_overdue,
            update: reconciled,
        };
        if escalations.is_empty() {
            saves.push(save);
        } else {
            // Saved with its firings, in one transaction.
            to_fire.push((ticket, save, escalations));
        }
    }
    app.store.save_sla(&saves).await?;
    for (ticket, save, escalations) in to_fire {
        match fire(app, ticket, &save, &escalations, now).await {
            Ok(fired) => round.fired += fired,
            Err(err) => {
                tracing::warn!(ticket = ticket.number, %err,
                    "escalations not fired; looked at again in a minute");
                let mut save = save;
                save.update.next_check = Some(now + chrono::Duration::minutes(1));
                app.store.save_sla(&[save]).await?;
            }
        }
    }
    Ok(round)
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
    }
}

/// Saves a ticket's clocks and fires the escalations that hold, each
/// once per breach, in one transaction; returns how many fired.
async fn fire(
    app: &Scheduler,
    ticket: &Ticket,
    save: &ClockSave,
    escalations: &[&Escalation],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let reconciled = &save.update;
    let queues = app.store.queues().await?;
    let queue_address = queues
        .iter()
        .find(|q| q.name == ticket.queue)
        .map(|q| q.address.clone())
        .unwrap_or_else(|| format!("support@{}", app.hostname));
    let agents = if escalations.iter().any(|e| e.owner.is_some()) {
        app.store.agents().await?
    } else {
        Vec::new()
    };
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
    let Some(fired) = app.store.save_sla_and_fire(save, &firings).await? else {
        // Changed since it was read: the next round decides afresh.
        return Ok(0);
    };
    for (name, done) in &fired {
        tracing::info!(ticket = ticket.number, escalation = %name, done = %done.join(", "), "escalation fired");
    }
    Ok(fired.len())
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
