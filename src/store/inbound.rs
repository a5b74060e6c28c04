//! Filing an inbound message: duplicate check, threading lookups, ticket
//! placement, the message row, participants, events and the acknowledgement
//! in one transaction. When it commits, the message is safe and SMTP may
//! say 250.

use super::events::{Events, insert_events, placeholders, rows};
use super::imap::apply_ticket_change;
use super::{Backend, Change, Result, Store, StoreError, parse_column};
use crate::domain::threading::{self, Candidates, LinkReason, Placement, TicketFacts};
use crate::domain::ticket::{MessageKind, Priority, Status};
use crate::domain::views::TicketChange;
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

/// Inserts the message row; evaluates to its id.
macro_rules! insert_message {
    ($tx:ident, $m:expr, $ticket:expr, $kind:expr, $problem:expr) => {{
        let mut problems: Vec<String> = $m.problems.clone();
        if let Some(extra) = $problem {
            problems.push(extra.to_string());
        }
        let problems = (!problems.is_empty()).then(|| problems.join("; "));
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (ticket, kind, message_id, has_message_id, sender, from_name,
                 envelope_from, envelope_to, subject, sent_at, received_at, size, problems,
                 remote_addr, raw, header_len)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             RETURNING id",
        )
        .bind($ticket)
        .bind($kind.as_str())
        .bind(&$m.message_id)
        .bind($m.has_message_id)
        .bind(&$m.sender)
        .bind(&$m.from_name)
        .bind(&$m.envelope_from)
        .bind($m.envelope_to.join(", "))
        .bind(&$m.subject)
        .bind($m.sent_at)
        .bind($m.received_at)
        .bind(i64::try_from($m.raw.len()).unwrap_or(i64::MAX))
        .bind(problems)
        .bind(&$m.remote_addr)
        .bind(&$m.raw[..])
        .bind($crate::store::header_len(&$m.raw))
        .fetch_one(&mut *$tx)
        .await?;
        id
    }};
}
pub(crate) use insert_message;

macro_rules! touch_ticket {
    ($tx:ident, $ticket:expr, $at:expr) => {{
        sqlx::query("UPDATE tickets SET updated_at = $1 WHERE number = $2 AND updated_at < $1")
            .bind($at)
            .bind($ticket)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Stores an outgoing message in its ticket and queues its delivery;
/// evaluates to the outbound id.
macro_rules! queue_outgoing {
    ($tx:ident, $ticket:expr, $mail:expr, $purpose:expr, $now:expr) => {{
        let mail: &OutgoingMail = &$mail;
        let message: i64 = sqlx::query_scalar(
            "INSERT INTO messages (ticket, kind, message_id, has_message_id, sender, from_name,
                 envelope_from, envelope_to, subject, sent_at, received_at, size, raw, header_len)
             VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12) RETURNING id",
        )
        .bind($ticket)
        .bind(MessageKind::AutoReply.as_str())
        .bind(&mail.message_id)
        .bind(&mail.sender)
        .bind(&mail.from_name)
        .bind(&mail.mail_from)
        .bind(&mail.rcpt_to)
        .bind(&mail.subject)
        .bind($now)
        .bind(i64::try_from(mail.raw.len()).unwrap_or(i64::MAX))
        .bind(&mail.raw[..])
        .bind($crate::store::header_len(&mail.raw))
        .fetch_one(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO thread_ids (message_id, ticket) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&mail.message_id)
        .bind($ticket)
        .execute(&mut *$tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbound (ticket, message, purpose, mail_from, rcpt_to, status, attempts,
                 next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6, $6) RETURNING id",
        )
        .bind($ticket)
        .bind(message)
        .bind($purpose)
        .bind(&mail.mail_from)
        .bind(&mail.rcpt_to)
        .bind($now)
        .fetch_one(&mut *$tx)
        .await?;
        id
    }};
}
pub(crate) use queue_outgoing;

/// Reads what the rules know of ticket `$number`; evaluates to
/// `Option<TicketSnapshot>`.
macro_rules! snapshot_ticket {
    ($conn:ident, $number:expr) => {{
        let row = sqlx::query(
            "SELECT t.number, q.name AS queue, t.priority, t.status, t.customer_address,
                 a.email AS owner, t.sla_policy, t.created_at,
                 (SELECT COUNT(*) FROM messages m WHERE m.ticket = t.number) AS messages
             FROM tickets t JOIN queues q ON q.id = t.queue_id
             LEFT JOIN agents a ON a.id = t.owner_id WHERE t.number = $1",
        )
        .bind($number)
        .fetch_optional(&mut *$conn)
        .await?;
        match row {
            None => None,
            Some(row) => {
                let tags: Vec<String> = sqlx::query_scalar(
                    "SELECT tag FROM ticket_tags WHERE ticket = $1 ORDER BY tag",
                )
                .bind($number)
                .fetch_all(&mut *$conn)
                .await?;
                Some(TicketSnapshot {
                    number: row.try_get("number")?,
                    queue: row.try_get("queue")?,
                    priority: row.try_get("priority")?,
                    status: row.try_get("status")?,
                    tags,
                    customer: row.try_get("customer_address")?,
                    owner: row.try_get("owner")?,
                    sla_policy: row.try_get("sla_policy")?,
                    created_at: row.try_get("created_at")?,
                    messages: row.try_get("messages")?,
                })
            }
        }
    }};
}

/// Applies what the rules decided to ticket `$ticket` through the one
/// ticket operation ([`apply_ticket_change!`]), with an event per action.
macro_rules! apply_rule_effects {
    ($conn:ident, $ticket:expr, $effects:expr, $now:expr, $events:ident) => {{
        let effects: &RuleEffects = &$effects;
        let owner = match &effects.owner {
            None => None,
            Some(email) => {
                let id: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM agents WHERE lower(email) = lower($1)")
                        .bind(email)
                        .fetch_optional(&mut *$conn)
                        .await?;
                if id.is_none() {
                    $events.add(
                        $ticket,
                        $now,
                        "rules",
                        "applied",
                        format!("owner {email} not set: no such agent"),
                    );
                }
                id.map(Some)
            }
        };
        let change = TicketChange {
            priority: effects.priority,
            queue: effects.queue.as_ref().map(|(_, name, _)| name.clone()),
            owner,
            add_tags: effects.add_tags.clone(),
            remove_tags: effects.remove_tags.clone(),
            ..TicketChange::default()
        };
        apply_ticket_change!($conn, $ticket, change, $now);
        if let Some(sla) = &effects.sla {
            sqlx::query(
                "UPDATE tickets SET sla_policy = $1, first_response_due = $2, resolution_due = $3,
                     next_response_due = NULL, sla_check_at = $4 WHERE number = $5",
            )
            .bind(&sla.policy)
            .bind(sla.first_response_due)
            .bind(sla.resolution_due)
            .bind($now)
            .bind($ticket)
            .execute(&mut *$conn)
            .await?;
        }
        for line in &effects.events {
            $events.add($ticket, $now, "rules", "applied", line.clone());
        }
    }};
}

/// A parsed message, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Normalized id (no brackets); synthetic when the message had none.
    pub message_id: String,
    pub has_message_id: bool,
    /// Normalized address of the author (From, else the envelope sender).
    pub sender: String,
    pub from_name: Option<String>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub subject: String,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// What is wrong with the message, if anything; it is stored regardless.
    pub problems: Vec<String>,
    pub remote_addr: Option<String>,
    /// Every Message-ID this message refers to, most relevant first
    /// (In-Reply-To, then References from the newest).
    pub references: Vec<String>,
    /// Addresses on the message other than our own (From, To, Cc).
    pub participants: Vec<String>,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum InboundKind {
    /// Mail from a customer or other outside participant.
    Customer,
    /// A delivery status report naming these Message-IDs as bounced, and
    /// the recipients it reports as failed ("address: status (diagnostic)").
    Bounce {
        bounced: Vec<String>,
        failures: Vec<String>,
    },
    /// Mail carrying one of our own Message-IDs: it may join a ticket, but
    /// never opens one (that would be a loop).
    OwnMail,
}

/// An outgoing message to queue with the filing (built once the ticket
/// number is known).
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub message_id: String,
    pub mail_from: String,
    pub rcpt_to: String,
    pub sender: String,
    pub from_name: Option<String>,
    pub subject: String,
    pub raw: Vec<u8>,
}

/// The facts an acknowledgement is built from.
#[derive(Debug, Clone)]
pub struct AckContext {
    pub ticket: i64,
    /// The template to build it from ("ack.txt" unless a rule chose one).
    pub template: String,
    pub queue_name: String,
    pub queue_address: String,
}

/// Builds the acknowledgement once the ticket number is known.
pub type BuildAck =
    Box<dyn Fn(&AckContext) -> std::result::Result<OutgoingMail, String> + Send + Sync>;

pub struct AutoReplyPlan {
    /// Where the acknowledgement would go.
    pub to: String,
    /// The queue it answers for (from the queue cache: no lookup inside
    /// the filing transaction).
    pub queue_name: String,
    pub queue_address: String,
    pub max_per_hour: u32,
    pub build: BuildAck,
}

/// What the rules read of the ticket a message joins.
#[derive(Debug, Clone, Default)]
pub struct TicketSnapshot {
    pub number: i64,
    pub queue: String,
    pub priority: String,
    pub status: String,
    pub tags: Vec<String>,
    pub customer: String,
    pub owner: Option<String>,
    pub sla_policy: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub messages: i64,
}

/// A ticket's SLA policy and the due times it starts with.
#[derive(Debug, Clone)]
pub struct SlaStart {
    pub policy: String,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
}

/// What the rules decided, applied in the filing transaction; each line of
/// `events` becomes a ticket event.
#[derive(Debug, Clone, Default)]
pub struct RuleEffects {
    pub priority: Option<Priority>,
    /// (id, name, address) of the queue to move the ticket to.
    pub queue: Option<(i64, String, String)>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    /// An agent's address.
    pub owner: Option<String>,
    pub sla: Option<SlaStart>,
    /// Some(None): no acknowledgement; Some(Some(t)): from template t.
    pub auto_reply: Option<Option<String>>,
    pub events: Vec<String>,
}

/// Runs the rules once the ticket is known: None for a ticket this message
/// opens, the joined ticket's snapshot otherwise.
pub type RuleHook = Box<dyn Fn(Option<&TicketSnapshot>) -> RuleEffects + Send + Sync>;

pub struct InboundRequest {
    pub message: NewMessage,
    pub kind: InboundKind,
    /// Queue of a new ticket.
    pub queue_id: i64,
    /// Tickets named by plus-address recipients, in RCPT order.
    pub plus_tickets: Vec<i64>,
    /// Tickets named by `[#n]` subject tags.
    pub subject_tags: Vec<i64>,
    pub title: String,
    pub customer_address: String,
    pub customer_name: Option<String>,
    /// "Now" for the reopen window: the arrival time (or, on import, the
    /// message's own date).
    pub now: DateTime<Utc>,
    pub reopen_window: Duration,
    /// An acknowledgement to send if this opens a new ticket.
    pub auto_reply: Option<AutoReplyPlan>,
    /// Who files it, for the event log ("smtp", "import").
    pub actor: String,
    /// The rules to run on a customer's message (None: no rules).
    pub rules: Option<RuleHook>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// The same message (Message-ID and sender) was stored before.
    Duplicate { message: i64, ticket: Option<i64> },
    Filed {
        message: i64,
        ticket: i64,
        created: bool,
        reopened: bool,
        linked: Option<i64>,
        /// The queued acknowledgement, or why none was sent.
        auto_reply: Result<i64, String>,
    },
    /// Stored but in no ticket (an unmatched bounce, our own mail looping).
    Unfiled { message: i64, reason: String },
}

impl FileOutcome {
    pub fn ticket(&self) -> Option<i64> {
        match self {
            FileOutcome::Duplicate { ticket, .. } => *ticket,
            FileOutcome::Filed { ticket, .. } => Some(*ticket),
            FileOutcome::Unfiled { .. } => None,
        }
    }
}

/// How many of a message's references are looked up; long mailing-list
/// chains are searched from their newest end.
const MAX_REFERENCES: usize = 64;

/// The filing itself, on a connection inside a transaction the caller
/// owns (and commits). Written once, compiled for each backend.
macro_rules! define_filer {
    ($name:ident, $connection:ty) => {
        async fn $name(conn: &mut $connection, request: &InboundRequest) -> Result<FileOutcome> {
        let InboundRequest {
            message: m,
            kind,
            queue_id,
            plus_tickets,
            subject_tags,
            title,
            customer_address,
            customer_name,
            now,
            reopen_window,
            auto_reply,
            actor,
            rules,
        } = request;
        let (queue_id, now, reopen_window) = (*queue_id, *now, *reopen_window);
        // Ids looked up for rule 1: the references, then the message's own
        // id (a ticket's message named this one: its reply arrived first).
        let mut lookup: Vec<&String> = m.references.iter().take(MAX_REFERENCES).collect();
        if m.has_message_id {
            lookup.push(&m.message_id);
        }
        let lookup_sql = format!(
            "SELECT r.message_id, t.number, t.status, t.done_at FROM thread_ids r
             JOIN tickets t ON t.number = r.ticket WHERE r.message_id IN ({})
             ORDER BY t.number DESC",
            placeholders(1, lookup.len())
        );
        let mut events = Events::default();
        {

            // One email never makes two tickets.
            let existing = sqlx::query("SELECT id, ticket FROM messages WHERE message_id = $1 AND sender = $2")
                .bind(&m.message_id)
                .bind(&m.sender)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = existing {
                return Ok(FileOutcome::Duplicate {
                    message: row.try_get("id")?,
                    ticket: row.try_get("ticket")?,
                });
            }

            macro_rules! facts_from_row {
                ($row:expr) => {
                    TicketFacts {
                        number: $row.try_get("number")?,
                        status: parse_column::<Status>(&$row.try_get::<String, _>("status")?, "status")?,
                        done_at: $row.try_get("done_at")?,
                    }
                };
            }
            macro_rules! ticket_facts {
                ($number:expr) => {{
                    let row = sqlx::query("SELECT number, status, done_at FROM tickets WHERE number = $1")
                        .bind($number)
                        .fetch_optional(&mut *conn)
                        .await?;
                    match row {
                        Some(row) => Some(facts_from_row!(row)),
                        None => None,
                    }
                }};
            }

            // Bounces go to the ticket of the message they bounce, or nowhere.
            if let InboundKind::Bounce { bounced, failures } = kind {
                let mut ticket = None;
                for id in bounced.iter().chain(m.references.iter()).take(MAX_REFERENCES) {
                    ticket = sqlx::query_scalar::<_, Option<i64>>(
                        "SELECT ticket FROM messages WHERE message_id = $1 AND ticket IS NOT NULL ORDER BY id LIMIT 1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .flatten();
                    if ticket.is_some() {
                        break;
                    }
                }
                let Some(ticket) = ticket else {
                    let reason = "delivery report for a message postdesk does not know".to_string();
                    let id = insert_message!(conn, m, None::<i64>, MessageKind::Unfiled, Some(&reason));
                    return Ok(FileOutcome::Unfiled { message: id, reason });
                };
                let id = insert_message!(conn, m, Some(ticket), MessageKind::Bounce, None::<&String>);
                let mut detail = format!("delivery status report from {} (message {})", display_sender(&m), m.message_id);
                if !failures.is_empty() {
                    detail.push_str(&format!(": delivery failed for {}", failures.join("; ")));
                    sqlx::query("INSERT INTO ticket_tags (ticket, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(ticket)
                        .bind(super::DELIVERY_FAILED_TAG)
                        .execute(&mut *conn)
                        .await?;
                }
                events.add(ticket, m.received_at, &actor, "delivery-report", detail);
                touch_ticket!(conn, ticket, m.received_at);
                insert_events!(conn, events);
                return Ok(FileOutcome::Filed {
                    message: id,
                    ticket,
                    created: false,
                    reopened: false,
                    linked: None,
                    auto_reply: Err("message is a delivery report".into()),
                });
            }

            // Threading: gather the candidates of each rule, then decide.
            let mut candidates = Candidates::default();
            if !lookup.is_empty() {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(lookup_sql));
                for id in &lookup {
                    query = query.bind(*id);
                }
                let rows = query.fetch_all(&mut *conn).await?;
                // The most relevant id wins (newest ticket first among equals).
                'ids: for id in &lookup {
                    for row in &rows {
                        if row.try_get::<String, _>("message_id")? == **id {
                            candidates.by_reference = Some(facts_from_row!(row));
                            break 'ids;
                        }
                    }
                }
            }
            for number in plus_tickets {
                if let Some(facts) = ticket_facts!(*number) {
                    candidates.by_plus_address = Some(facts);
                    break;
                }
            }
            for number in subject_tags {
                if let Some(facts) = ticket_facts!(*number) {
                    let participant: Option<i64> = sqlx::query_scalar(
                        "SELECT ticket FROM ticket_participants WHERE ticket = $1 AND address = $2",
                    )
                    .bind(*number)
                    .bind(&m.sender)
                    .fetch_optional(&mut *conn)
                    .await?;
                    candidates.by_subject_tag = Some((facts, participant.is_some()));
                    break;
                }
            }
            let placement = threading::place(&candidates, now, reopen_window);
            let joined_status = [&candidates.by_reference, &candidates.by_plus_address]
                .into_iter()
                .flatten()
                .chain(candidates.by_subject_tag.iter().map(|(facts, _)| facts))
                .map(|facts| (facts.number, facts.status))
                .collect::<Vec<_>>();

            let (ticket, created, reopened, linked) = match placement {
                Placement::Join { ticket, rule, reopen } => {
                    let current = joined_status
                        .iter()
                        .find(|(number, _)| *number == ticket)
                        .map(|(_, status)| *status)
                        .unwrap_or(Status::Open);
                    let next = current.after_customer_message();
                    sqlx::query(concat!(
                        "UPDATE tickets SET status = $1,
                             done_at = CASE WHEN $1 = status THEN done_at ELSE NULL END,
                             updated_at = CASE WHEN updated_at < $2 THEN $2 ELSE updated_at END,
                             customer_waiting_since = CASE WHEN $4 THEN COALESCE(customer_waiting_since, $2)
                                 ELSE customer_waiting_since END,
                             sla_check_at = CASE WHEN sla_policy IS NULL THEN sla_check_at ELSE $2 END, ",
                        $crate::store::sla_pause_columns!("$1", "$2"),
                        " WHERE number = $3"
                    ))
                    .bind(next.as_str())
                    .bind(m.received_at)
                    .bind(ticket)
                    // A customer writing starts the next-response clock
                    // (unless it runs already); our own mail coming back does not.
                    .bind(matches!(kind, InboundKind::Customer))
                    .execute(&mut *conn)
                    .await?;
                    if next != current {
                        let what = if reopen { "reopened" } else { "status" };
                        events.add(ticket, m.received_at, &actor, what,
                            format!("{current} → {next}: customer wrote ({})", rule.as_str()));
                    }
                    (ticket, false, reopen, None)
                }
                Placement::New { linked } => {
                    if matches!(kind, InboundKind::OwnMail) {
                        let reason = "postdesk's own mail does not open tickets".to_string();
                        let id = insert_message!(conn, m, None::<i64>, MessageKind::Unfiled, Some(&reason));
                            return Ok(FileOutcome::Unfiled { message: id, reason });
                    }
                    let number: i64 = sqlx::query_scalar(
                        "INSERT INTO tickets (queue_id, subject, customer_address, customer_name, status,
                             priority, linked_ticket, created_at, updated_at, customer_waiting_since)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8) RETURNING number",
                    )
                    .bind(queue_id)
                    .bind(&title)
                    .bind(&customer_address)
                    .bind(&customer_name)
                    .bind(Status::New.as_str())
                    .bind(Priority::Normal.as_str())
                    .bind(linked.map(|(n, _)| n))
                    .bind(now)
                    .fetch_one(&mut *conn)
                    .await?;
                    events.add(number, now, &actor, "created",
                        format!("ticket opened by mail from {}", display_sender(&m)));
                    if let Some((other, reason)) = linked {
                        events.add(number, now, &actor, "linked",
                            format!("linked to #{other}: {}", reason.as_str()));
                        events.add(other, now, &actor, "linked",
                            format!("follow-up #{number} opened: {}", match reason {
                                LinkReason::StrangerQuotedTag => "a non-participant quoted this ticket's tag",
                                LinkReason::ReopenWindowPassed => "the customer wrote after the reopen window",
                            }));
                    }
                    (number, true, false, linked.map(|(n, _)| n))
                }
            };

            let effects = match (rules, kind) {
                (Some(hook), InboundKind::Customer) => {
                    let snapshot = if created {
                        None
                    } else {
                        snapshot_ticket!(conn, ticket)
                    };
                    let effects = hook(snapshot.as_ref());
                    apply_rule_effects!(conn, ticket, effects, now, events);
                    Some(effects)
                }
                _ => None,
            };
            let message = insert_message!(conn, m, Some(ticket), MessageKind::Customer, None::<&String>);
            if !m.problems.is_empty() {
                events.add(ticket, m.received_at, &actor, "flagged",
                    format!("message {} stored as received, flagged: {}", m.message_id, m.problems.join("; ")));
            }

            let mut thread_ids: Vec<String> = Vec::with_capacity(2 + m.references.len());
            thread_ids.push(m.message_id.clone());
            thread_ids.extend(m.references.iter().take(MAX_REFERENCES).cloned());

            let ack_template = match effects.as_ref().and_then(|e| e.auto_reply.clone()) {
                Some(choice) => choice,
                None => Some("ack.txt".to_string()),
            };
            let auto_reply = match (created, auto_reply) {
                (false, _) => Err("not a new ticket".to_string()),
                (true, None) => Err("auto-reply not requested".to_string()),
                (true, Some(_)) if ack_template.is_none() => {
                    Err("a rule turned the acknowledgement off".to_string())
                }
                (true, Some(plan)) => {
                    let since = now - Duration::hours(1);
                    let recent: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM outbound WHERE rcpt_to = $1 AND purpose = 'ack' AND created_at > $2",
                    )
                    .bind(&plan.to)
                    .bind(since)
                    .fetch_one(&mut *conn)
                    .await?;
                    if recent >= i64::from(plan.max_per_hour) {
                        let reason = format!(
                            "rate limit: {recent} automatic answers to {} in the last hour", plan.to
                        );
                        events.add(ticket, now, "postdesk", "auto-reply-suppressed", reason.clone());
                        Err(reason)
                    } else {
                        let (queue_name, queue_address) = match effects.as_ref().and_then(|e| e.queue.as_ref()) {
                            Some((_, name, address)) => (name.clone(), address.clone()),
                            None => (plan.queue_name.clone(), plan.queue_address.clone()),
                        };
                        let context = AckContext {
                            ticket,
                            template: ack_template.clone().unwrap_or_default(),
                            queue_name,
                            queue_address,
                        };
                        match (plan.build)(&context) {
                            Ok(mail) => {
                                let id = queue_outgoing!(conn, ticket, mail, "ack", now);
                                thread_ids.push(mail.message_id.clone());
                                events.add(ticket, now, "postdesk", "auto-reply",
                                    format!("acknowledgement queued to {}", mail.rcpt_to));
                                Ok(id)
                            }
                            Err(problem) => {
                                events.add(ticket, now, "postdesk", "auto-reply-failed",
                                    format!("acknowledgement not built: {problem}"));
                                Err(problem)
                            }
                        }
                    }
                }
            };

            // A reference already known for another ticket keeps leading
            // there; this ticket learns it too.
            thread_ids.dedup();
            let sql = format!(
                "INSERT INTO thread_ids (message_id, ticket) VALUES {} ON CONFLICT DO NOTHING",
                rows(thread_ids.len(), 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &thread_ids {
                query = query.bind(id).bind(ticket);
            }
            query.execute(&mut *conn).await?;

            let mut participants: Vec<&String> = m.participants.iter().collect();
            if !participants.contains(&&customer_address) {
                participants.push(&customer_address);
            }
            let sql = format!(
                "INSERT INTO ticket_participants (ticket, address) VALUES {} ON CONFLICT DO NOTHING",
                rows(participants.len(), 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for address in participants {
                query = query.bind(ticket).bind(address);
            }
            query.execute(&mut *conn).await?;

            insert_events!(conn, events);
            Ok(FileOutcome::Filed { message, ticket, created, reopened, linked, auto_reply })
        }
        }
    };
}

define_filer!(file_on_sqlite, sqlx::SqliteConnection);
define_filer!(file_on_postgres, sqlx::PgConnection);

impl Store {
    pub async fn file_inbound(&self, request: InboundRequest) -> Result<FileOutcome> {
        let result = self.file_inbound_once(request).await;
        if let Ok(outcome) = &result {
            if let Some(ticket) = outcome.ticket() {
                self.announce(Change::Ticket(ticket));
            }
            if let FileOutcome::Filed {
                auto_reply: Ok(_), ..
            } = outcome
            {
                self.announce(Change::OutboundQueued);
            }
        }
        result
    }

    async fn file_inbound_once(&self, request: InboundRequest) -> Result<FileOutcome> {
        match &self.backend {
            Backend::Sqlite { .. } => {
                let filer = self.filer.as_ref().ok_or_else(|| {
                    StoreError::Unavailable("the SQLite writer is not running".into())
                })?;
                let (reply, answer) = oneshot::channel();
                filer
                    .send(FileJob { request, reply })
                    .await
                    .map_err(|_| StoreError::Unavailable("the SQLite writer stopped".into()))?;
                answer
                    .await
                    .map_err(|_| StoreError::Unavailable("the SQLite writer stopped".into()))?
            }
            Backend::Postgres(pool) => match file_postgres(pool, &request).await {
                // Another node stored the same message (Message-ID and
                // sender) a moment ago: filing again finds it.
                Err(err) if err.is_unique_violation() => file_postgres(pool, &request).await,
                other => other,
            },
        }
    }
}

async fn file_postgres(pool: &sqlx::PgPool, request: &InboundRequest) -> Result<FileOutcome> {
    let mut tx = pool.begin().await?;
    let outcome = file_on_postgres(&mut tx, request).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// A message waiting for the SQLite writer, and where its verdict goes.
pub(crate) struct FileJob {
    request: InboundRequest,
    reply: oneshot::Sender<Result<FileOutcome>>,
}

/// Messages filed in one SQLite transaction at most.
const MAX_BATCH: usize = 64;

/// Group commit for SQLite: files every message waiting when the writer
/// gets to them in one transaction, one fsync for all, and answers each
/// only after the commit. SQLite has one writer anyway; batching spares a
/// commit per message. If anything in a batch fails, the batch is rolled
/// back and each message is filed again on its own, so one bad message
/// costs no other its acceptance.
pub(crate) async fn sqlite_writer(pool: SqlitePool, mut jobs: mpsc::Receiver<FileJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            match file_batch(&pool, &batch).await {
                Ok(outcomes) => {
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = job.reply.send(Ok(outcome));
                    }
                    continue;
                }
                Err(err) => {
                    tracing::debug!(%err, size = batch.len(), "batch rolled back; filing one by one")
                }
            }
        }
        for job in batch {
            let outcome = file_batch(&pool, std::slice::from_ref(&job))
                .await
                .map(|mut outcomes| outcomes.remove(0));
            let _ = job.reply.send(outcome);
        }
    }
}

async fn file_batch(pool: &SqlitePool, jobs: &[FileJob]) -> Result<Vec<FileOutcome>> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(file_on_sqlite(&mut tx, &job.request).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

fn display_sender(m: &NewMessage) -> String {
    match &m.from_name {
        Some(name) if !name.is_empty() => format!("{name} <{}>", m.sender),
        _ => m.sender.clone(),
    }
}
