//! The one way a ticket changes.
//!
//! Every change of a ticket's status, priority, owner, queue, tags, Junk
//! and Trash standing, SLA policy and response clocks (IMAP moves and
//! flags, mail commands, rules at ingest, escalations, a customer's reply,
//! an agent's reply, delivery reports) is a [`ChangeRequest`]: what
//! to change ([`TicketChange`]) and why ([`Cause`]). [`plan_change`] decides,
//! from the ticket as it is ([`TicketState`], read in the transaction that
//! applies the plan), which columns take which values and which events the
//! history records. The store only executes the [`ChangePlan`].
//!
//! Keeping the decision here means the drift of several writers (one
//! forgetting the SLA pause bookkeeping, another its own UPDATE) cannot
//! happen, and every rule is unit-tested without a database.

use super::merge::Moved;
use super::permission::{self, Actor, Asked, Assignee, Denied, Ownership};
use super::sla::SlaStart;
use super::threading;
use super::ticket::{Disposition, EventKind, NewEvent, Priority, Status};
use super::time_spent::format_minutes;
use chrono::{DateTime, Utc};

/// A change asked of one ticket. `None` (or an empty list) leaves a field
/// alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketChange {
    pub status: Option<Status>,
    /// Pending, resolved and closed tickets become open (the views of open
    /// tickets: moving a message there means "work on this again").
    pub reopen: bool,
    pub priority: Option<Priority>,
    /// A queue by name.
    pub queue: Option<String>,
    /// An agent by id; `Some(None)`: nobody owns it.
    pub owner: Option<Option<i64>>,
    /// `Some(None)`: restore from Junk or Trash.
    pub disposition: Option<Option<Disposition>>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    /// An SLA policy and the due times its clocks start with (rules).
    pub sla: Option<SlaStart>,
    /// People who take part in the ticket (`#cc add`, `#cc remove`), by
    /// normalized address.
    pub add_participants: Vec<String>,
    pub remove_participants: Vec<String>,
    /// The ticket's mail moved into this one (a merge): it is closed and
    /// points there from now on.
    pub merged_into: Option<i64>,
    /// Time an agent spent on the ticket (`#time 15m`).
    pub time: Option<TimeSpent>,
}

/// Time an agent records on a ticket: one row of `time_entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSpent {
    pub agent: i64,
    /// The agent's address, for the history.
    pub email: String,
    pub minutes: u32,
}

impl TicketChange {
    pub fn is_empty(&self) -> bool {
        *self == TicketChange::default()
    }
}

/// Why a ticket changes: decides the side effects that belong to the
/// occasion (clocks, the last-update time) and how the history tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// An agent or administrator asked (IMAP move or flags, mail command):
    /// one `changed` event "{why}: {what changed}", when anything did.
    Asked(String),
    /// A customer's message joined the ticket (threaded by `rule`): a
    /// pending or done ticket is open again. `waits`: the message starts
    /// the next-response clock (a customer's; not our own mail coming back).
    CustomerWrote {
        rule: threading::JoinRule,
        reopen: bool,
        waits: bool,
    },
    /// An agent's public reply: the response clocks stop, a new ticket is
    /// being worked on, an unowned one belongs to whoever answered.
    Replied {
        agent: i64,
        recipients: Vec<String>,
        /// The reply opened the ticket (an outbound ticket).
        new_ticket: bool,
    },
    /// An agent's forward of the ticket's mail to someone outside it (a
    /// consult): recorded, but no clock stops and nothing else changes.
    Forwarded { recipients: Vec<String> },
    /// An agent's internal note.
    Noted,
    /// A delivery status report about the ticket's mail arrived; `detail`
    /// is the history line (the change tags the ticket when it reports a
    /// failure).
    DeliveryReport { detail: String },
    /// postdesk gave up delivering the ticket's mail.
    DeliveryFailed { detail: String },
    /// rules.toml at ingest; `lines` are the rules' own account of what
    /// they did (one event each).
    Rules { lines: Vec<String> },
    /// An escalation fired for these breaches; `notified` are the addresses
    /// its notices are queued to, `problems` what it could not do.
    Escalation {
        name: String,
        breaches: Vec<String>,
        notified: Vec<String>,
        problems: Vec<String>,
    },
    /// This ticket was merged into `into`: its mail and history moved
    /// there (the change sets `merged_into`).
    Merged { into: i64, moved: Moved },
    /// Ticket `from` was merged into this one.
    MergedFrom { from: i64, moved: Moved },
    /// A customer's mail was split off this ticket into `new_ticket`.
    Split {
        new_ticket: i64,
        messages: usize,
        customer: String,
    },
    /// This ticket was opened by splitting mail off ticket `from`.
    SplitFrom {
        from: i64,
        messages: usize,
        customer: String,
    },
    /// An agent discarded a reply of theirs held by the collision check
    /// (deleted it from their Held folder): it will never be sent.
    HeldDiscarded,
}

/// A change with its cause, who made it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub change: TicketChange,
    pub cause: Cause,
    /// Who made it, for the history ("alice@example.com", "smtp", "rules").
    pub actor: String,
    /// The agent whose request this is: [`plan_change`] refuses what
    /// [`permission::may_change`] does not allow them. None: postdesk
    /// itself (rules, escalations, mail arriving) or an administrator at
    /// the server's command line.
    pub agent: Option<Actor>,
    pub at: DateTime<Utc>,
}

impl ChangeRequest {
    /// A change an agent asked for (IMAP move or flags, mail command, the
    /// command line run as the agent): checked against their permissions.
    pub fn asked(
        change: TicketChange,
        why: impl Into<String>,
        agent: &Actor,
        at: DateTime<Utc>,
    ) -> ChangeRequest {
        ChangeRequest {
            change,
            cause: Cause::Asked(why.into()),
            actor: agent.email.clone(),
            agent: Some(agent.clone()),
            at,
        }
    }

    /// A change the server's administrator makes (`postdesk agent remove`
    /// handing the agent's tickets back): no agent's permissions apply.
    pub fn administrative(
        change: TicketChange,
        why: impl Into<String>,
        who: impl Into<String>,
        at: DateTime<Utc>,
    ) -> ChangeRequest {
        ChangeRequest {
            change,
            cause: Cause::Asked(why.into()),
            actor: who.into(),
            agent: None,
            at,
        }
    }
}

/// What the decision reads of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketState {
    pub number: i64,
    pub status: Status,
    pub priority: Priority,
    pub queue: String,
    pub owner: Option<i64>,
    pub disposition: Option<Disposition>,
    pub tags: Vec<String>,
    /// Who takes part in it; read only when the change edits them.
    pub participants: Vec<String>,
    /// The ticket runs SLA clocks (has a policy).
    pub has_sla: bool,
    pub sla_paused_at: Option<DateTime<Utc>>,
    pub sla_resumed_at: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub customer_waiting_since: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The ticket it was merged into, if it was.
    pub merged_into: Option<i64>,
}

/// Facts a change needs besides the ticket: what the names it uses stand
/// for (read by the store before deciding).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFacts {
    /// The id of the queue the change names, if it exists.
    pub queue_id: Option<i64>,
    /// The agent the change makes owner (for the history and the
    /// permission check; None when there is no such agent).
    pub owner: Option<Assignee>,
}

/// One column of `tickets` and the value the plan gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Status(Status),
    DoneAt(Option<DateTime<Utc>>),
    SlaPausedAt(Option<DateTime<Utc>>),
    SlaResumedAt(Option<DateTime<Utc>>),
    Priority(Priority),
    QueueId(i64),
    OwnerId(Option<i64>),
    Disposition(Option<Disposition>),
    DispositionAt(Option<DateTime<Utc>>),
    SlaPolicy(String),
    FirstResponseDue(Option<DateTime<Utc>>),
    NextResponseDue(Option<DateTime<Utc>>),
    ResolutionDue(Option<DateTime<Utc>>),
    FirstResponseAt(DateTime<Utc>),
    LastResponseAt(DateTime<Utc>),
    CustomerWaitingSince(Option<DateTime<Utc>>),
    UpdatedAt(DateTime<Utc>),
    SlaCheckAt(DateTime<Utc>),
    MergedInto(i64),
}

/// What the store does to one ticket, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangePlan {
    pub number: i64,
    /// Columns to set, each at most once.
    pub set: Vec<Column>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub add_participants: Vec<String>,
    pub remove_participants: Vec<String>,
    pub events: Vec<NewEvent>,
    /// Time entries to record, with when.
    pub time_entries: Vec<(TimeSpent, DateTime<Utc>)>,
    /// What changed, one phrase each ("status open → closed"); empty when
    /// the request changed nothing the history would name.
    pub done: Vec<String>,
}

impl ChangePlan {
    fn set(&mut self, column: Column) {
        let same_column = |c: &Column| std::mem::discriminant(c) == std::mem::discriminant(&column);
        self.set.retain(|c| !same_column(c));
        self.set.push(column);
    }

    /// The status the plan gives the ticket, if it changes it.
    pub fn status(&self) -> Option<Status> {
        self.set.iter().find_map(|c| match c {
            Column::Status(s) => Some(*s),
            _ => None,
        })
    }
}

/// How a ticket opens: its first status, priority and owner, and whether
/// the customer waits for an answer from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub status: Status,
    pub priority: Priority,
    pub owner: Option<i64>,
    pub customer_waiting_since: Option<DateTime<Utc>>,
}

impl Opening {
    /// A customer's message opens a ticket: new, nobody's, and the
    /// customer waits from now on.
    pub fn by_customer(at: DateTime<Utc>) -> Opening {
        Opening {
            status: Status::New,
            priority: Priority::Normal,
            owner: None,
            customer_waiting_since: Some(at),
        }
    }

    /// An agent writing to a customer first: the ticket waits for the
    /// customer (pending) and belongs to the agent.
    pub fn by_agent(agent: i64) -> Opening {
        Opening {
            status: Status::Pending,
            priority: Priority::Normal,
            owner: Some(agent),
            customer_waiting_since: None,
        }
    }
}

/// Why a change cannot be made at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("no queue '{0}'")]
    NoQueue(String),
    /// The agent asking may not make this change.
    #[error("{0}")]
    Denied(Denied),
    /// The ticket was merged into another: work goes on there.
    #[error("ticket #{number} was merged into #{into}: work on #{into}")]
    Merged { number: i64, into: i64 },
}

/// Decides what a request does to a ticket as it is now.
pub fn plan_change(
    current: &TicketState,
    request: &ChangeRequest,
    facts: &ChangeFacts,
) -> Result<ChangePlan, ChangeError> {
    let now = request.at;
    let change = &request.change;
    if let Some(agent) = &request.agent {
        let asked = Asked {
            number: current.number,
            queue: &current.queue,
            ownership: Ownership::of(current.owner, agent),
            new_queue: change.queue.as_deref().filter(|q| *q != current.queue),
            new_owner: change.owner.filter(|o| *o != current.owner),
            assignee: facts.owner.as_ref(),
        };
        permission::may_change(agent, asked).map_err(ChangeError::Denied)?;
    }
    // A merged ticket is an empty shell that points on: what an agent or
    // the administrator asks of it, and mail filed into it (threaded
    // there just before the merge committed, on PostgreSQL), belong to
    // the ticket holding its mail. Refused mail is not lost: its sender is
    // told to try again, and the retry threads to that ticket.
    let belongs_elsewhere = matches!(
        request.cause,
        Cause::Asked(_)
            | Cause::CustomerWrote { .. }
            | Cause::Replied { .. }
            | Cause::Forwarded { .. }
            | Cause::Noted
    );
    if let (Some(into), true) = (current.merged_into, belongs_elsewhere) {
        return Err(ChangeError::Merged {
            number: current.number,
            into,
        });
    }
    let mut plan = ChangePlan {
        number: current.number,
        ..ChangePlan::default()
    };

    // What the occasion itself asks, besides the requested fields.
    let mut status = change.status;
    let mut owner = change.owner;
    if let Some(into) = change.merged_into
        && current.merged_into != Some(into)
    {
        plan.set(Column::MergedInto(into));
        plan.done.push(format!("merged into #{into}"));
        // Its mail is elsewhere now: nothing is left to work on here.
        status = Some(Status::Closed);
    }
    match &request.cause {
        Cause::CustomerWrote { .. } if status.is_none() => {
            status = Some(current.status.after_customer_message());
        }
        Cause::Replied { agent, .. } => {
            if current.status == Status::New && status.is_none() {
                status = Some(Status::Open);
            }
            if current.owner.is_none() && owner.is_none() {
                owner = Some(Some(*agent));
            }
        }
        _ => {}
    }

    let next_status = match status {
        Some(s) => s,
        None if change.reopen && !matches!(current.status, Status::New | Status::Open) => {
            Status::Open
        }
        None => current.status,
    };
    if next_status != current.status {
        plan.set(Column::Status(next_status));
        plan.set(Column::DoneAt(next_status.is_done().then_some(now)));
        // The SLA clocks stand still while the ticket waits on the
        // customer or is done, and go on when it is active again; the
        // scheduler measures from these instants, whenever it gets there.
        if next_status.pauses_clocks() {
            plan.set(Column::SlaPausedAt(Some(
                current.sla_paused_at.unwrap_or(now),
            )));
            plan.set(Column::SlaResumedAt(None));
        } else {
            let resumed = current
                .sla_paused_at
                .map(|_| current.sla_resumed_at.unwrap_or(now));
            plan.set(Column::SlaResumedAt(resumed));
        }
        plan.done
            .push(format!("status {} → {next_status}", current.status));
    }
    if let Some(p) = change.priority
        && p != current.priority
    {
        plan.set(Column::Priority(p));
        plan.done
            .push(format!("priority {} → {p}", current.priority));
    }
    if let Some(q) = &change.queue
        && *q != current.queue
    {
        let id = facts
            .queue_id
            .ok_or_else(|| ChangeError::NoQueue(q.clone()))?;
        plan.set(Column::QueueId(id));
        plan.done.push(format!("queue {} → {q}", current.queue));
    }
    if let Some(o) = owner
        && o != current.owner
    {
        plan.set(Column::OwnerId(o));
        let name = match (o, &facts.owner) {
            (None, _) => "nobody".to_string(),
            (Some(_), Some(owner)) => owner.email.clone(),
            (Some(id), None) => format!("agent {id}"),
        };
        plan.done.push(format!("owner → {name}"));
    }
    if let Some(d) = change.disposition
        && d != current.disposition
    {
        plan.set(Column::Disposition(d));
        plan.set(Column::DispositionAt(d.map(|_| now)));
        plan.done.push(match (current.disposition, d) {
            (_, Some(next)) => format!("marked {}", next.as_str()),
            (Some(old), None) => format!("restored from {}", old.as_str()),
            (None, None) => String::new(),
        });
    }
    let (tags, people) = (&current.tags, &current.participants);
    set_edits(
        &change.add_tags,
        tags,
        true,
        &mut plan.add_tags,
        &mut plan.done,
        "tag",
    );
    set_edits(
        &change.remove_tags,
        tags,
        false,
        &mut plan.remove_tags,
        &mut plan.done,
        "tag",
    );
    let (add, remove) = (&change.add_participants, &change.remove_participants);
    set_edits(
        add,
        people,
        true,
        &mut plan.add_participants,
        &mut plan.done,
        "participant",
    );
    set_edits(
        remove,
        people,
        false,
        &mut plan.remove_participants,
        &mut plan.done,
        "participant",
    );
    if let Some(time) = &change.time {
        plan.time_entries.push((time.clone(), now));
        plan.done.push(format!(
            "time +{} ({})",
            format_minutes(time.minutes),
            time.email
        ));
    }
    let mut has_sla = current.has_sla;
    if let Some(sla) = &change.sla {
        plan.set(Column::SlaPolicy(sla.policy.clone()));
        plan.set(Column::FirstResponseDue(sla.first_response_due));
        plan.set(Column::ResolutionDue(sla.resolution_due));
        plan.set(Column::NextResponseDue(None));
        has_sla = true;
    }
    // Any change may move a clock or make an escalation hold.
    let recheck = (has_sla && !plan.done.is_empty()) || change.sla.is_some();
    if recheck {
        plan.set(Column::SlaCheckAt(now));
    }

    // The occasion: its clocks, its last-update time and its history.
    // Mail dated before the last update does not move it back.
    let touch = |plan: &mut ChangePlan| {
        if now > current.updated_at {
            plan.set(Column::UpdatedAt(now));
        }
    };
    let event = |kind: EventKind, detail: String| NewEvent {
        ticket: current.number,
        at: now,
        actor: request.actor.clone(),
        kind,
        detail,
    };
    match &request.cause {
        Cause::Asked(why) => {
            if !plan.done.is_empty() {
                plan.set(Column::UpdatedAt(now));
                let detail = format!("{why}: {}", plan.done.join(", "));
                // Taking a resolved or closed ticket back into work is a
                // reopen whoever does it (agent, rule, command line): the
                // report counts reopens by this kind.
                let kind = if current.status.is_done() && !next_status.is_done() {
                    EventKind::Reopened
                } else {
                    EventKind::Changed
                };
                plan.events.push(event(kind, detail));
            }
        }
        Cause::CustomerWrote {
            rule,
            reopen,
            waits,
        } => {
            touch(&mut plan);
            if *waits {
                plan.set(Column::CustomerWaitingSince(Some(
                    current.customer_waiting_since.unwrap_or(now),
                )));
            }
            if current.has_sla {
                plan.set(Column::SlaCheckAt(now));
            }
            if next_status != current.status {
                let kind = if *reopen {
                    EventKind::Reopened
                } else {
                    EventKind::Status
                };
                let detail = format!(
                    "{} → {next_status}: customer wrote ({})",
                    current.status,
                    rule.as_str()
                );
                plan.events.push(event(kind, detail));
            }
        }
        Cause::Replied {
            recipients,
            new_ticket,
            ..
        } => {
            plan.set(Column::FirstResponseAt(
                current.first_response_at.unwrap_or(now),
            ));
            plan.set(Column::LastResponseAt(now));
            plan.set(Column::CustomerWaitingSince(None));
            plan.set(Column::NextResponseDue(None));
            if has_sla {
                plan.set(Column::SlaCheckAt(now));
            }
            touch(&mut plan);
            let mut detail = format!(
                "public reply by {} to {}",
                request.actor,
                recipients.join(", ")
            );
            if current.status == Status::New && next_status == Status::Open {
                detail.push_str("; status new → open");
            }
            if current.owner.is_none() && !new_ticket {
                detail.push_str(&format!("; owner → {}", request.actor));
            }
            plan.events.push(event(EventKind::Reply, detail));
        }
        Cause::Forwarded { recipients } => {
            touch(&mut plan);
            let detail = format!(
                "forwarded by {} to {} (not an answer to the customer)",
                request.actor,
                recipients.join(", ")
            );
            plan.events.push(event(EventKind::Forwarded, detail));
        }
        Cause::Noted => {
            touch(&mut plan);
            let detail = format!("internal note by {}", request.actor);
            plan.events.push(event(EventKind::Note, detail));
        }
        Cause::DeliveryReport { detail } => {
            touch(&mut plan);
            plan.events
                .push(event(EventKind::DeliveryReport, detail.clone()));
        }
        Cause::DeliveryFailed { detail } => {
            plan.events
                .push(event(EventKind::DeliveryFailed, detail.clone()));
        }
        Cause::Rules { lines } => {
            for line in lines {
                plan.events.push(event(EventKind::Applied, line.clone()));
            }
        }
        Cause::Escalation {
            name: _,
            breaches,
            notified,
            problems,
        } => {
            plan.done
                .extend(notified.iter().map(|to| format!("notified {to}")));
            plan.done.extend(problems.iter().cloned());
            let breach = breaches.join(", ");
            let detail = if plan.done.is_empty() {
                format!("fired ({breach}): nothing left to change")
            } else {
                format!("fired ({breach}): {}", plan.done.join(", "))
            };
            plan.events.push(event(EventKind::Escalated, detail));
            // What fired may move the clocks: look again.
            plan.set(Column::UpdatedAt(now));
            plan.set(Column::SlaCheckAt(now));
        }
        Cause::Merged { into, moved } => {
            let rest: Vec<&str> = plan
                .done
                .iter()
                .map(String::as_str)
                .filter(|d| !d.starts_with("merged into"))
                .collect();
            let mut detail = format!(
                "merged into #{into} by {}: {} moved to #{into}",
                request.actor,
                moved.phrase()
            );
            if !rest.is_empty() {
                detail.push_str(&format!("; {}", rest.join(", ")));
            }
            plan.events.push(event(EventKind::Merged, detail));
            plan.set(Column::UpdatedAt(now));
        }
        Cause::MergedFrom { from, moved } => {
            let mut detail = format!(
                "#{from} merged into this ticket by {}: {} moved here",
                request.actor,
                moved.phrase()
            );
            if !plan.done.is_empty() {
                detail.push_str(&format!("; {}", plan.done.join(", ")));
            }
            plan.events.push(event(EventKind::Merged, detail));
            plan.set(Column::UpdatedAt(now));
            if has_sla {
                plan.set(Column::SlaCheckAt(now));
            }
        }
        Cause::Split {
            new_ticket,
            messages,
            customer,
        } => {
            let plural = if *messages == 1 { "" } else { "s" };
            let detail = format!(
                "split by {}: {messages} message{plural} of {customer} moved to new ticket #{new_ticket}",
                request.actor
            );
            plan.events.push(event(EventKind::Split, detail));
            plan.set(Column::UpdatedAt(now));
        }
        Cause::SplitFrom {
            from,
            messages,
            customer,
        } => {
            let plural = if *messages == 1 { "" } else { "s" };
            let detail = format!(
                "opened by {} splitting #{from}: {messages} message{plural} of {customer} moved here",
                request.actor
            );
            plan.events.push(event(EventKind::Split, detail));
        }
        Cause::HeldDiscarded => {
            let detail = format!("held reply discarded by {}", request.actor);
            plan.events.push(event(EventKind::Collision, detail));
        }
    }
    Ok(plan)
}

/// Adds to `planned` what of `requested` changes the set `current` (an
/// addition it lacks, a removal it has), once each, and says so in `done`
/// as "tag +x" / "participant -y".
fn set_edits(
    requested: &[String],
    current: &[String],
    adding: bool,
    planned: &mut Vec<String>,
    done: &mut Vec<String>,
    what: &str,
) {
    let sign = if adding { '+' } else { '-' };
    for item in requested {
        if current.contains(item) != adding && !planned.contains(item) {
            planned.push(item.clone());
            done.push(format!("{what} {sign}{item}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::permission::AgentRole;
    use chrono::{Duration, TimeZone};

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, hour, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn ticket(status: Status) -> TicketState {
        TicketState {
            number: 7,
            status,
            priority: Priority::Normal,
            queue: "support".into(),
            owner: None,
            disposition: None,
            tags: vec!["vpn".into()],
            participants: Vec::new(),
            has_sla: true,
            sla_paused_at: None,
            sla_resumed_at: None,
            first_response_at: None,
            customer_waiting_since: None,
            updated_at: at(8),
            merged_into: None,
        }
    }

    fn alice(role: AgentRole) -> Actor {
        Actor {
            id: 1,
            email: "alice@desk.test".into(),
            role,
            queues: vec!["support".into()],
        }
    }

    fn assignee(id: i64, email: &str, queues: &[&str]) -> Assignee {
        Assignee {
            id,
            email: email.into(),
            role: AgentRole::Agent,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            active: true,
        }
    }

    fn asked(change: TicketChange) -> ChangeRequest {
        ChangeRequest::asked(
            change,
            "moved to Closed over IMAP",
            &alice(AgentRole::Admin),
            at(10),
        )
    }

    fn plan(current: &TicketState, request: &ChangeRequest) -> ChangePlan {
        plan_change(current, request, &ChangeFacts::default()).unwrap_or_default()
    }

    #[test]
    fn closing_records_done_time_pauses_clocks_and_writes_one_event() {
        let closed = plan(
            &ticket(Status::Open),
            &asked(TicketChange {
                status: Some(Status::Closed),
                ..TicketChange::default()
            }),
        );
        assert_eq!(closed.status(), Some(Status::Closed));
        assert!(closed.set.contains(&Column::DoneAt(Some(at(10)))));
        assert!(closed.set.contains(&Column::SlaPausedAt(Some(at(10)))));
        assert!(closed.set.contains(&Column::SlaResumedAt(None)));
        assert!(closed.set.contains(&Column::SlaCheckAt(at(10))));
        assert!(closed.set.contains(&Column::UpdatedAt(at(10))));
        assert_eq!(closed.done, vec!["status open → closed".to_string()]);
        assert_eq!(closed.events.len(), 1);
        assert_eq!(closed.events[0].kind, EventKind::Changed);
        assert_eq!(
            closed.events[0].detail,
            "moved to Closed over IMAP: status open → closed"
        );
    }

    #[test]
    fn an_agent_taking_a_done_ticket_back_reopens_it() {
        for done in [Status::Resolved, Status::Closed] {
            let reopened = plan(
                &ticket(done),
                &asked(TicketChange {
                    status: Some(Status::Open),
                    ..TicketChange::default()
                }),
            );
            assert_eq!(reopened.events.len(), 1);
            assert_eq!(reopened.events[0].kind, EventKind::Reopened, "{done}");
        }
        // Between two done states, or within work, it is a change.
        let closed = plan(
            &ticket(Status::Resolved),
            &asked(TicketChange {
                status: Some(Status::Closed),
                ..TicketChange::default()
            }),
        );
        assert_eq!(closed.events[0].kind, EventKind::Changed);
    }

    #[test]
    fn a_pause_keeps_its_first_instant_and_a_resume_records_when() {
        let mut pending = ticket(Status::Pending);
        pending.sla_paused_at = Some(at(9));
        let again = plan(
            &pending,
            &asked(TicketChange {
                status: Some(Status::Closed),
                ..TicketChange::default()
            }),
        );
        assert!(again.set.contains(&Column::SlaPausedAt(Some(at(9)))));
        let resumed = plan(
            &pending,
            &asked(TicketChange {
                reopen: true,
                ..TicketChange::default()
            }),
        );
        assert_eq!(resumed.status(), Some(Status::Open));
        assert!(resumed.set.contains(&Column::SlaResumedAt(Some(at(10)))));
        assert!(resumed.set.contains(&Column::DoneAt(None)));
        // A ticket that never paused has nothing to resume.
        let fresh = plan(
            &ticket(Status::New),
            &asked(TicketChange {
                status: Some(Status::Open),
                ..TicketChange::default()
            }),
        );
        assert!(fresh.set.contains(&Column::SlaResumedAt(None)));
    }

    #[test]
    fn nothing_to_change_writes_nothing() {
        let same = plan(
            &ticket(Status::Open),
            &asked(TicketChange {
                status: Some(Status::Open),
                priority: Some(Priority::Normal),
                add_tags: vec!["vpn".into()],
                remove_tags: vec!["absent".into()],
                reopen: true,
                ..TicketChange::default()
            }),
        );
        assert_eq!(same.set, Vec::new());
        assert!(same.events.is_empty() && same.done.is_empty());
    }

    #[test]
    fn fields_are_phrased_in_one_order() {
        let mut current = ticket(Status::Open);
        current.has_sla = false;
        let request = asked(TicketChange {
            priority: Some(Priority::Urgent),
            queue: Some("billing".into()),
            owner: Some(Some(3)),
            disposition: Some(Some(Disposition::Spam)),
            add_tags: vec!["vip".into(), "vip".into()],
            remove_tags: vec!["vpn".into()],
            ..TicketChange::default()
        });
        let facts = ChangeFacts {
            queue_id: Some(2),
            owner: Some(assignee(3, "bob@desk.test", &["billing"])),
        };
        let planned = plan_change(&current, &request, &facts).unwrap_or_default();
        assert_eq!(
            planned.done,
            vec![
                "priority normal → urgent",
                "queue support → billing",
                "owner → bob@desk.test",
                "marked spam",
                "tag +vip",
                "tag -vpn"
            ]
        );
        assert!(planned.set.contains(&Column::QueueId(2)));
        assert!(planned.set.contains(&Column::DispositionAt(Some(at(10)))));
        assert!(
            !planned
                .set
                .iter()
                .any(|c| matches!(c, Column::SlaCheckAt(_))),
            "no clocks, nothing to look at"
        );
        assert_eq!(planned.add_tags, vec!["vip".to_string()]);
    }

    #[test]
    fn participants_are_added_and_removed_once() {
        let mut current = ticket(Status::Open);
        current.participants = vec!["carol@example.com".into(), "dave@example.com".into()];
        let request = asked(TicketChange {
            add_participants: vec!["erin@example.com".into(), "carol@example.com".into()],
            remove_participants: vec!["dave@example.com".into(), "zed@example.com".into()],
            ..TicketChange::default()
        });
        let planned = plan_change(&current, &request, &ChangeFacts::default()).unwrap_or_default();
        assert_eq!(
            planned.add_participants,
            vec!["erin@example.com".to_string()]
        );
        assert_eq!(
            planned.remove_participants,
            vec!["dave@example.com".to_string()]
        );
        assert_eq!(
            planned.done,
            vec![
                "participant +erin@example.com",
                "participant -dave@example.com"
            ]
        );
        assert_eq!(
            planned.events.len(),
            1,
            "one changed event: {:?}",
            planned.events
        );
    }

    #[test]
    fn an_unknown_queue_refuses_the_whole_change() {
        let request = asked(TicketChange {
            queue: Some("nowhere".into()),
            status: Some(Status::Closed),
            ..TicketChange::default()
        });
        assert_eq!(
            plan_change(&ticket(Status::Open), &request, &ChangeFacts::default()),
            Err(ChangeError::NoQueue("nowhere".into()))
        );
    }

    #[test]
    fn a_customer_writing_reopens_and_starts_the_wait() {
        let mut closed = ticket(Status::Closed);
        closed.sla_paused_at = Some(at(9));
        let request = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::CustomerWrote {
                rule: threading::JoinRule::Reference,
                reopen: true,
                waits: true,
            },
            actor: "smtp".into(),
            agent: None,
            at: at(10),
        };
        let reopened = plan(&closed, &request);
        assert_eq!(reopened.status(), Some(Status::Open));
        assert!(reopened.set.contains(&Column::DoneAt(None)));
        assert!(reopened.set.contains(&Column::SlaResumedAt(Some(at(10)))));
        assert!(
            reopened
                .set
                .contains(&Column::CustomerWaitingSince(Some(at(10))))
        );
        assert!(reopened.set.contains(&Column::UpdatedAt(at(10))));
        assert_eq!(reopened.events[0].kind, EventKind::Reopened);
        assert_eq!(
            reopened.events[0].detail,
            "closed → open: customer wrote (references)"
        );
        // A new ticket stays new; an earlier wait is kept; a message dated
        // before the last update does not move it back.
        let mut new = ticket(Status::New);
        new.customer_waiting_since = Some(at(7));
        new.updated_at = at(11);
        let joined = plan(&new, &request);
        assert_eq!(joined.status(), None);
        assert!(joined.events.is_empty());
        assert!(
            joined
                .set
                .contains(&Column::CustomerWaitingSince(Some(at(7))))
        );
        assert!(!joined.set.iter().any(|c| matches!(c, Column::UpdatedAt(_))));
        assert!(joined.set.contains(&Column::SlaCheckAt(at(10))));
    }

    #[test]
    fn a_reply_stops_the_clocks_opens_and_takes_the_ticket() {
        let request = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::Replied {
                agent: 4,
                recipients: vec!["carol@example.com".into()],
                new_ticket: false,
            },
            actor: "alice@desk.test".into(),
            agent: None,
            at: at(10),
        };
        let mut current = ticket(Status::New);
        current.customer_waiting_since = Some(at(9));
        let replied = plan_change(
            &current,
            &request,
            &ChangeFacts {
                owner: Some(assignee(4, "alice@desk.test", &["support"])),
                ..ChangeFacts::default()
            },
        )
        .unwrap_or_default();
        assert_eq!(replied.status(), Some(Status::Open));
        assert!(replied.set.contains(&Column::OwnerId(Some(4))));
        assert!(replied.set.contains(&Column::FirstResponseAt(at(10))));
        assert!(replied.set.contains(&Column::CustomerWaitingSince(None)));
        assert!(replied.set.contains(&Column::NextResponseDue(None)));
        assert_eq!(
            replied.events[0].detail,
            "public reply by alice@desk.test to carol@example.com; status new → open; owner → alice@desk.test"
        );
        // A second reply keeps the first response time and the owner.
        let mut answered = ticket(Status::Open);
        answered.first_response_at = Some(at(9));
        answered.owner = Some(5);
        let again = plan(&answered, &request);
        assert!(again.set.contains(&Column::FirstResponseAt(at(9))));
        assert!(!again.set.iter().any(|c| matches!(c, Column::OwnerId(_))));
        assert_eq!(
            again.events[0].detail,
            "public reply by alice@desk.test to carol@example.com"
        );
    }

    #[test]
    fn a_forward_stops_no_clock_and_neither_opens_nor_takes_the_ticket() {
        let request = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::Forwarded {
                recipients: vec!["accountant@firm.test".into()],
            },
            actor: "alice@desk.test".into(),
            agent: None,
            at: at(10),
        };
        let mut current = ticket(Status::New);
        current.customer_waiting_since = Some(at(9));
        let forwarded = plan(&current, &request);
        assert_eq!(forwarded.status(), None);
        assert_eq!(forwarded.set, vec![Column::UpdatedAt(at(10))]);
        assert_eq!(
            forwarded.events[0].detail,
            "forwarded by alice@desk.test to accountant@firm.test (not an answer to the customer)"
        );
        assert_eq!(forwarded.events[0].kind, EventKind::Forwarded);
    }

    #[test]
    fn an_escalation_reports_what_it_did_and_looks_again() {
        let request = ChangeRequest {
            change: TicketChange {
                priority: Some(Priority::Urgent),
                ..TicketChange::default()
            },
            cause: Cause::Escalation {
                name: "late".into(),
                breaches: vec!["first_response".into()],
                notified: vec!["lead@desk.test".into()],
                problems: vec!["owner x not set: no such agent".into()],
            },
            actor: "escalation 'late'".into(),
            agent: None,
            at: at(10),
        };
        let fired = plan(&ticket(Status::Open), &request);
        assert_eq!(
            fired.events[0].detail,
            "fired (first_response): priority normal → urgent, notified lead@desk.test, owner x not set: no such agent"
        );
        assert!(fired.set.contains(&Column::SlaCheckAt(at(10))));
        let mut urgent = ticket(Status::Open);
        urgent.priority = Priority::Urgent;
        let nothing = plan(
            &urgent,
            &ChangeRequest {
                cause: Cause::Escalation {
                    name: "late".into(),
                    breaches: vec!["first_response".into()],
                    notified: vec![],
                    problems: vec![],
                },
                ..request
            },
        );
        assert_eq!(
            nothing.events[0].detail,
            "fired (first_response): nothing left to change"
        );
    }

    #[test]
    fn rules_write_their_own_lines_and_start_the_sla() {
        let request = ChangeRequest {
            change: TicketChange {
                priority: Some(Priority::High),
                sla: Some(SlaStart {
                    policy: "standard".into(),
                    first_response_due: Some(at(12)),
                    resolution_due: Some(at(12) + Duration::days(2)),
                }),
                ..TicketChange::default()
            },
            cause: Cause::Rules {
                lines: vec!["rule 'vip': priority high".into()],
            },
            actor: "rules".into(),
            agent: None,
            at: at(10),
        };
        let mut current = ticket(Status::New);
        current.has_sla = false;
        let applied = plan(&current, &request);
        assert!(applied.set.contains(&Column::SlaPolicy("standard".into())));
        assert!(applied.set.contains(&Column::SlaCheckAt(at(10))));
        assert_eq!(applied.events.len(), 1);
        assert_eq!(applied.events[0].kind, EventKind::Applied);
        assert!(
            !applied
                .set
                .iter()
                .any(|c| matches!(c, Column::UpdatedAt(_)))
        );
    }

    #[test]
    fn a_delivery_report_tags_once_and_is_always_recorded() {
        let request = ChangeRequest {
            change: TicketChange {
                add_tags: vec!["delivery-failed".into()],
                ..TicketChange::default()
            },
            cause: Cause::DeliveryReport {
                detail: "delivery status report".into(),
            },
            actor: "smtp".into(),
            agent: None,
            at: at(10),
        };
        let mut tagged = ticket(Status::Open);
        tagged.tags.push("delivery-failed".into());
        let again = plan(&tagged, &request);
        assert!(again.add_tags.is_empty());
        assert_eq!(again.events.len(), 1);
        assert_eq!(again.events[0].kind, EventKind::DeliveryReport);
    }

    #[test]
    fn an_agents_request_is_checked_before_anything_is_planned() {
        let current = TicketState {
            owner: Some(9),
            ..ticket(Status::Open)
        };
        let grab = TicketChange {
            owner: Some(Some(1)),
            ..TicketChange::default()
        };
        let facts = ChangeFacts {
            owner: Some(assignee(1, "alice@desk.test", &["support"])),
            ..ChangeFacts::default()
        };
        let by = |role| ChangeRequest::asked(grab.clone(), "moved to INBOX", &alice(role), at(10));
        assert_eq!(
            plan_change(&current, &by(AgentRole::Agent), &facts),
            Err(ChangeError::Denied(Denied::OwnedByColleague(
                current.number
            )))
        );
        assert!(plan_change(&current, &by(AgentRole::Lead), &facts).is_ok());
        let elsewhere = TicketState {
            queue: "security".into(),
            ..current.clone()
        };
        let close = ChangeRequest::asked(
            TicketChange {
                status: Some(Status::Closed),
                ..TicketChange::default()
            },
            "moved to Closed",
            &alice(AgentRole::Lead),
            at(10),
        );
        assert_eq!(
            plan_change(&elsewhere, &close, &facts),
            Err(ChangeError::Denied(Denied::TicketNotYours(current.number)))
        );
        // postdesk's own changes (rules, escalations) are not an agent's.
        let rules = ChangeRequest {
            agent: None,
            ..close
        };
        assert!(plan_change(&elsewhere, &rules, &facts).is_ok());
    }

    #[test]
    fn a_merge_closes_the_source_points_it_on_and_tells_both_histories() {
        let moved = Moved {
            messages: 3,
            participants: 1,
            events: 4,
            time_entries: 0,
        };
        let closing = ChangeRequest {
            change: TicketChange {
                merged_into: Some(42),
                remove_tags: vec!["vpn".into()],
                ..TicketChange::default()
            },
            cause: Cause::Merged {
                into: 42,
                moved: moved.clone(),
            },
            actor: "alice@desk.test".into(),
            agent: Some(alice(AgentRole::Agent)),
            at: at(10),
        };
        let planned = plan(&ticket(Status::Open), &closing);
        assert!(planned.set.contains(&Column::MergedInto(42)));
        assert_eq!(planned.status(), Some(Status::Closed));
        assert!(planned.set.contains(&Column::DoneAt(Some(at(10)))));
        assert_eq!(planned.remove_tags, vec!["vpn".to_string()]);
        assert_eq!(planned.events.len(), 1);
        assert_eq!(planned.events[0].kind, EventKind::Merged);
        assert_eq!(
            planned.events[0].detail,
            "merged into #42 by alice@desk.test: 3 messages, 1 new participant, 4 history lines moved to #42; status open → closed, tag -vpn"
        );
        let taking = ChangeRequest {
            change: TicketChange {
                add_tags: vec!["vpn".into()],
                reopen: true,
                ..TicketChange::default()
            },
            cause: Cause::MergedFrom { from: 7, moved },
            actor: "alice@desk.test".into(),
            agent: Some(alice(AgentRole::Agent)),
            at: at(10),
        };
        let mut done = ticket(Status::Resolved);
        done.number = 42;
        done.tags.clear();
        done.first_response_at = Some(at(9));
        let planned = plan(&done, &taking);
        assert_eq!(planned.status(), Some(Status::Open));
        assert_eq!(planned.add_tags, vec!["vpn".to_string()]);
        // The target's clocks are its own: no response time moves.
        assert!(
            !planned
                .set
                .iter()
                .any(|c| matches!(c, Column::FirstResponseAt(_) | Column::FirstResponseDue(_)))
        );
        assert_eq!(
            planned.events[0].detail,
            "#7 merged into this ticket by alice@desk.test: 3 messages, 1 new participant, 4 history lines moved here; status resolved → open, tag +vpn"
        );
    }

    #[test]
    fn a_merged_ticket_refuses_what_is_asked_of_it() {
        let mut merged = ticket(Status::Closed);
        merged.merged_into = Some(42);
        let reopen = asked(TicketChange {
            status: Some(Status::Open),
            ..TicketChange::default()
        });
        let refused = plan_change(&merged, &reopen, &ChangeFacts::default());
        assert_eq!(
            refused,
            Err(ChangeError::Merged {
                number: 7,
                into: 42
            })
        );
        assert_eq!(
            refused.err().map(|e| e.to_string()).unwrap_or_default(),
            "ticket #7 was merged into #42: work on #42"
        );
        // A delivery report about its old mail is still recorded.
        let report = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::DeliveryFailed {
                detail: "gave up".into(),
            },
            actor: "postdesk".into(),
            agent: None,
            at: at(10),
        };
        assert!(plan_change(&merged, &report, &ChangeFacts::default()).is_ok());
        // Mail threaded there in a race with the merge is refused (and
        // retried by its sender), never filed in the empty shell.
        let wrote = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::CustomerWrote {
                rule: threading::JoinRule::Reference,
                reopen: true,
                waits: true,
            },
            actor: "smtp".into(),
            agent: None,
            at: at(10),
        };
        assert!(matches!(
            plan_change(&merged, &wrote, &ChangeFacts::default()),
            Err(ChangeError::Merged { .. })
        ));
    }

    #[test]
    fn time_is_recorded_for_the_agent_with_the_other_commands() {
        let request = asked(TicketChange {
            status: Some(Status::Closed),
            time: Some(TimeSpent {
                agent: 1,
                email: "alice@desk.test".into(),
                minutes: 90,
            }),
            ..TicketChange::default()
        });
        let planned = plan(&ticket(Status::Open), &request);
        assert_eq!(
            planned.time_entries,
            vec![(
                TimeSpent {
                    agent: 1,
                    email: "alice@desk.test".into(),
                    minutes: 90
                },
                at(10)
            )]
        );
        assert_eq!(
            planned.events[0].detail,
            "moved to Closed over IMAP: status open → closed, time +1h30m (alice@desk.test)"
        );
        // Time alone is a change too: it writes its event.
        let only_time = plan(
            &ticket(Status::Open),
            &asked(TicketChange {
                time: Some(TimeSpent {
                    agent: 1,
                    email: "alice@desk.test".into(),
                    minutes: 15,
                }),
                ..TicketChange::default()
            }),
        );
        assert_eq!(only_time.events.len(), 1);
        assert!(
            only_time.events[0]
                .detail
                .ends_with("time +15m (alice@desk.test)")
        );
        assert!(only_time.set.contains(&Column::UpdatedAt(at(10))));
    }

    #[test]
    fn a_split_is_told_on_both_tickets() {
        let split = ChangeRequest {
            change: TicketChange::default(),
            cause: Cause::Split {
                new_ticket: 9,
                messages: 2,
                customer: "carol@example.com".into(),
            },
            actor: "alice@desk.test".into(),
            agent: Some(alice(AgentRole::Agent)),
            at: at(10),
        };
        let planned = plan(&ticket(Status::Open), &split);
        assert_eq!(planned.events[0].kind, EventKind::Split);
        assert_eq!(
            planned.events[0].detail,
            "split by alice@desk.test: 2 messages of carol@example.com moved to new ticket #9"
        );
        let opened = ChangeRequest {
            cause: Cause::SplitFrom {
                from: 7,
                messages: 1,
                customer: "carol@example.com".into(),
            },
            ..split
        };
        let planned = plan(&ticket(Status::New), &opened);
        assert_eq!(
            planned.events[0].detail,
            "opened by alice@desk.test splitting #7: 1 message of carol@example.com moved here"
        );
    }
}
