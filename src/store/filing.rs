//! Filing an inbound message in one transaction: gather the facts (SQL),
//! let `domain` decide (bounce target, threading, the change to a joined
//! ticket, the rules, the acknowledgement, thread ids and participants),
//! execute. When it commits, the message is safe and SMTP
//! may say 250.
//!
//! On SQLite, messages arriving together share one transaction and one
//! fsync (group commit, [`sqlite_writer`]); on PostgreSQL each has its own.

use super::membership::MembershipWrite;
use super::{Backend, Change, Result, Store, StoreError, Tx, on_tx, parse_column};
use crate::domain::automation::TicketSnapshot;
use crate::domain::change::Opening;
use crate::domain::filing::{
    self, Acknowledgement, FileOutcome, InboundKind, InboundRequest, MAX_REFERENCES,
};
use crate::domain::threading::{self, Candidates, Placement, TicketFacts};
use crate::domain::ticket::{EventKind, MessageKind, NewEvent, Priority, Status};
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

/// A new ticket's row: how it opens is the domain's [`Opening`].
struct NewTicket<'a> {
    queue_id: i64,
    subject: &'a str,
    customer_address: &'a str,
    customer_name: Option<&'a str>,
    opening: Opening,
    linked: Option<i64>,
    at: DateTime<Utc>,
}

impl Tx {
    /// Threading facts of a ticket: number, status, done time.
    async fn ticket_facts(&mut self, number: i64) -> Result<Option<TicketFacts>> {
        on_tx!(self, |conn| {
            let row = sqlx::query(
                "SELECT number, status, done_at, merged_into FROM tickets WHERE number = $1",
            )
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(match row {
                Some(row) => Some(TicketFacts {
                    number: row.try_get("number")?,
                    status: parse_column(&row.try_get::<String, _>("status")?, "status")?,
                    done_at: row.try_get("done_at")?,
                    merged_into: row.try_get("merged_into")?,
                }),
                None => None,
            })
        })
    }

    /// The ticket the first of `ids` that leads anywhere leads to (threading
    /// rule 1), most relevant id first; [`threading::by_reference`] picks
    /// among the tickets one id leads to.
    async fn ticket_by_reference(
        &mut self,
        ids: &[&String],
        now: DateTime<Utc>,
        reopen_window: Duration,
    ) -> Result<Option<TicketFacts>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT r.message_id, t.number, t.status, t.done_at, t.merged_into,
                 EXISTS (SELECT 1 FROM messages m
                     WHERE m.message_id = r.message_id AND m.ticket = r.ticket) AS holds
             FROM thread_ids r JOIN tickets t ON t.number = r.ticket
             WHERE r.message_id IN ({})",
            super::events::placeholders(1, ids.len())
        );
        let leads: Vec<threading::ReferenceLead> = on_tx!(self, |conn| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(*id);
            }
            let mut leads = Vec::new();
            for row in query.fetch_all(&mut *conn).await? {
                leads.push(threading::ReferenceLead {
                    message_id: row.try_get("message_id")?,
                    ticket: TicketFacts {
                        number: row.try_get("number")?,
                        status: parse_column(&row.try_get::<String, _>("status")?, "status")?,
                        done_at: row.try_get("done_at")?,
                        merged_into: row.try_get("merged_into")?,
                    },
                    holds: row.try_get("holds")?,
                });
            }
            leads
        });
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        Ok(threading::by_reference(&ids, &leads, now, reopen_window))
    }

    /// The facts of the ticket holding a ticket's mail: the same facts
    /// unless it was merged into another.
    async fn holding_facts(&mut self, facts: TicketFacts) -> Result<Option<TicketFacts>> {
        if facts.merged_into.is_none() {
            return Ok(Some(facts));
        }
        match self.holding_ticket(facts.number).await? {
            Some(holder) => self.ticket_facts(holder).await,
            None => Ok(None),
        }
    }

    /// Whether the address is an agent's (a colleague, not a customer).
    async fn is_agent_address(&mut self, address: &str) -> Result<bool> {
        on_tx!(self, |conn| {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM agents WHERE LOWER(email) = $1 LIMIT 1")
                    .bind(address.to_lowercase())
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(found.is_some())
        })
    }

    async fn is_participant(&mut self, ticket: i64, address: &str) -> Result<bool> {
        on_tx!(self, |conn| {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT ticket FROM ticket_participants WHERE ticket = $1 AND address = $2",
            )
            .bind(ticket)
            .bind(address)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(found.is_some())
        })
    }

    /// The ticket of the first of these Message-IDs stored in a ticket.
    async fn ticket_of_messages(&mut self, ids: &[&String]) -> Result<Option<i64>> {
        for id in ids {
            let ticket: Option<i64> = on_tx!(self, |conn| {
                sqlx::query_scalar::<_, Option<i64>>(
                    "SELECT ticket FROM messages WHERE message_id = $1 AND ticket IS NOT NULL
                     ORDER BY id LIMIT 1",
                )
                .bind(*id)
                .fetch_optional(&mut *conn)
                .await?
                .flatten()
            });
            if ticket.is_some() {
                return Ok(ticket);
            }
        }
        Ok(None)
    }

    /// What the rules read of a ticket.
    pub(super) async fn ticket_snapshot(&mut self, number: i64) -> Result<Option<TicketSnapshot>> {
        on_tx!(self, |conn| {
            let row = sqlx::query(
                "SELECT t.number, q.name AS queue, t.priority, t.status, t.customer_address,
                     a.email AS owner, t.sla_policy, t.created_at,
                     (SELECT COUNT(*) FROM messages m WHERE m.ticket = t.number) AS messages,
                     (SELECT s.rating FROM satisfaction_surveys s WHERE s.ticket = t.number) AS satisfaction
                 FROM tickets t JOIN queues q ON q.id = t.queue_id
                 LEFT JOIN agents a ON a.id = t.owner_id WHERE t.number = $1",
            )
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let tags: Vec<String> =
                sqlx::query_scalar("SELECT tag FROM ticket_tags WHERE ticket = $1 ORDER BY tag")
                    .bind(number)
                    .fetch_all(&mut *conn)
                    .await?;
            let suggested_articles: Vec<i64> = sqlx::query_scalar(
                "SELECT article FROM kb_suggestions WHERE ticket = $1 ORDER BY at, article",
            )
            .bind(number)
            .fetch_all(&mut *conn)
            .await?;
            Ok(Some(TicketSnapshot {
                number: row.try_get("number")?,
                queue: row.try_get("queue")?,
                priority: parse_column::<Priority>(
                    &row.try_get::<String, _>("priority")?,
                    "priority",
                )?,
                status: parse_column::<Status>(&row.try_get::<String, _>("status")?, "status")?,
                tags,
                customer: row.try_get("customer_address")?,
                owner: row.try_get("owner")?,
                sla_policy: row.try_get("sla_policy")?,
                created_at: row.try_get("created_at")?,
                messages: row.try_get("messages")?,
                satisfaction: row.try_get("satisfaction")?,
                suggested_articles,
            }))
        })
    }

    /// The id of the agent with this address.
    pub(crate) async fn agent_id(&mut self, email: &str) -> Result<Option<i64>> {
        on_tx!(self, |conn| {
            Ok(
                sqlx::query_scalar("SELECT id FROM agents WHERE lower(email) = lower($1)")
                    .bind(email)
                    .fetch_optional(&mut *conn)
                    .await?,
            )
        })
    }

    /// Acknowledgements counted against the caps since `since`: to `to`,
    /// and altogether. Takes the caps' lock row first (held until the
    /// filing commits), so that on PostgreSQL another node's filing waits
    /// here and then counts this one's claim: two nodes cannot both take
    /// the last acknowledgement of the hour. (SQLite has one writer.)
    pub(super) async fn lock_and_count_acks(
        &mut self,
        to: &str,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64)> {
        let scope = ack_scope(to);
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO ack_lock (name, claims) VALUES ('acknowledgements', 1)
                 ON CONFLICT (name) DO UPDATE SET claims = ack_lock.claims + 1",
            )
            .execute(&mut *conn)
            .await?;
            let to_recent: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM ack_sent WHERE scope = $1 AND at > $2")
                    .bind(&scope)
                    .bind(since)
                    .fetch_one(&mut *conn)
                    .await?;
            let all_recent: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM ack_sent WHERE scope = 'all' AND at > $1")
                    .bind(since)
                    .fetch_one(&mut *conn)
                    .await?;
            Ok((to_recent, all_recent))
        })
    }

    /// Counts an acknowledgement to `to` against the caps, and forgets
    /// claims older than `since` (they count no more).
    pub(super) async fn claim_ack(
        &mut self,
        to: &str,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<()> {
        let scope = ack_scope(to);
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM ack_sent WHERE scope IN ($1, 'all') AND at <= $2")
                .bind(&scope)
                .bind(since)
                .execute(&mut *conn)
                .await?;
            sqlx::query("INSERT INTO ack_sent (scope, at) VALUES ($1, $2), ('all', $2)")
                .bind(&scope)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }

    /// Opens a ticket; returns its number.
    async fn insert_ticket(&mut self, t: &NewTicket<'_>) -> Result<i64> {
        on_tx!(self, |conn| {
            Ok(sqlx::query_scalar(
                "INSERT INTO tickets (queue_id, subject, customer_address, customer_name, status,
                     priority, owner_id, linked_ticket, created_at, updated_at, customer_waiting_since)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING number",
            )
            .bind(t.queue_id)
            .bind(t.subject)
            .bind(t.customer_address)
            .bind(t.customer_name)
            .bind(t.opening.status.as_str())
            .bind(t.opening.priority.as_str())
            .bind(t.opening.owner)
            .bind(t.linked)
            .bind(t.at)
            .bind(t.opening.customer_waiting_since)
            .fetch_one(&mut *conn)
            .await?)
        })
    }

    /// Opens the ticket an agent's mail starts (an outbound ticket).
    pub(crate) async fn open_outbound_ticket(
        &mut self,
        queue_id: i64,
        title: &str,
        customer_address: &str,
        customer_name: Option<&str>,
        agent: i64,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        self.insert_ticket(&NewTicket {
            queue_id,
            subject: title,
            customer_address,
            customer_name,
            opening: Opening::by_agent(agent),
            linked: None,
            at,
        })
        .await
    }
}

impl Tx {
    /// Opens the ticket of a customer's mail an agent forwarded to the
    /// queue: as the customer's own mail would open it.
    pub(crate) async fn open_forwarded_ticket(
        &mut self,
        queue_id: i64,
        title: &str,
        customer_address: &str,
        customer_name: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        self.insert_ticket(&NewTicket {
            queue_id,
            subject: title,
            customer_address,
            customer_name,
            opening: Opening::by_customer(at),
            linked: None,
            at,
        })
        .await
    }

    /// Opens the ticket a split moves a customer's mail into: as that
    /// mail would have opened one (new, nobody's, the customer waiting
    /// since it arrived), linked to the ticket it came from.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open_split_ticket(
        &mut self,
        queue_id: i64,
        title: &str,
        customer_address: &str,
        customer_name: Option<&str>,
        linked: i64,
        waiting_since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        self.insert_ticket(&NewTicket {
            queue_id,
            subject: title,
            customer_address,
            customer_name,
            opening: Opening::by_customer(waiting_since),
            linked: Some(linked),
            at,
        })
        .await
    }
}

/// The caps' name for acknowledgements to one address.
fn ack_scope(to: &str) -> String {
    format!("to:{}", to.to_lowercase())
}

/// Files one message on a transaction the caller owns (and commits).
pub(crate) async fn file(tx: &mut Tx, request: &InboundRequest) -> Result<FileOutcome> {
    let m = &request.message;
    if let Some((message, ticket)) = tx.stored_message(&m.message_id, &m.sender).await? {
        return Ok(FileOutcome::Duplicate { message, ticket });
    }

    // Bounces go to the ticket of the message they bounce, or nowhere.
    if let InboundKind::Bounce { bounced, failures } = &request.kind {
        let ids: Vec<&String> = bounced
            .iter()
            .chain(m.references.iter())
            .take(MAX_REFERENCES)
            .collect();
        let found = tx.ticket_of_messages(&ids).await?;
        return match filing::place_bounce(request, failures, found) {
            Err(reason) => {
                let id = tx
                    .insert_message(m, None, MessageKind::Unfiled, Some(&reason))
                    .await?;
                Ok(FileOutcome::Unfiled {
                    message: id,
                    reason,
                })
            }
            Ok((ticket, change)) => {
                let id = tx
                    .insert_message(m, Some(ticket), MessageKind::Bounce, None)
                    .await?;
                tx.change_ticket(ticket, &change).await?;
                Ok(FileOutcome::Filed {
                    message: id,
                    ticket,
                    created: false,
                    reopened: false,
                    linked: None,
                    auto_reply: Err("message is a delivery report".into()),
                })
            }
        };
    }

    // Threading: gather the candidates of each rule, then decide. The same
    // Message-ID from the same sender returned above as a duplicate; from
    // anyone else it is a borrowed id, which threads nothing.
    let own_id_is_taken = m.has_message_id && tx.message_id_stored(&m.message_id).await?;
    if own_id_is_taken {
        tracing::info!(message_id = %m.message_id, sender = %m.sender,
            "a stored message of another sender has this Message-ID: not threaded by it");
    }
    // A ticket merged into another leads on to it: its mail, participants
    // and Message-IDs are there now.
    let mut candidates = Candidates {
        by_reference: tx
            .ticket_by_reference(
                &m.lookup_ids(own_id_is_taken),
                request.now,
                request.reopen_window,
            )
            .await?,
        ..Candidates::default()
    };
    if let Some(found) = candidates.by_reference.take() {
        candidates.by_reference = tx.holding_facts(found).await?;
    }
    for number in &request.plus_tickets {
        if let Some(facts) = tx.ticket_facts(*number).await? {
            candidates.by_plus_address = tx.holding_facts(facts).await?;
            break;
        }
    }
    for number in &request.subject_tags {
        if let Some(facts) = tx.ticket_facts(*number).await?
            && let Some(facts) = tx.holding_facts(facts).await?
        {
            let participant = tx.is_participant(facts.number, &m.sender).await?;
            candidates.by_subject_tag = Some((facts, participant));
            break;
        }
    }
    let placement = threading::place(&candidates, request.now, request.reopen_window);

    let mut events: Vec<NewEvent> = Vec::new();
    let (ticket, created, reopened, linked) = match placement {
        Placement::Join { ticket, reopen, .. } => {
            // Only a plus-address join is checked (one query, then).
            let took_part = match placement {
                Placement::Join {
                    rule: threading::JoinRule::PlusAddress,
                    ..
                } => tx.is_participant(ticket, &m.sender).await?,
                _ => true,
            };
            events.extend(filing::stranger_join_event(request, &placement, took_part));
            // A colleague (an agent writing from their mailbox, e.g. in
            // Cc) joins the conversation but is not a customer waiting.
            let colleague = matches!(request.kind, InboundKind::Customer)
                && tx.is_agent_address(&m.sender).await?;
            if let Some(change) = filing::join_change(request, &placement, colleague) {
                events.extend(tx.apply_change(ticket, &change).await?.events);
            }
            (ticket, false, reopen, None)
        }
        Placement::New { linked } => {
            if let Some(reason) = filing::refuses_new_ticket(&request.kind) {
                let id = tx
                    .insert_message(m, None, MessageKind::Unfiled, Some(&reason))
                    .await?;
                return Ok(FileOutcome::Unfiled {
                    message: id,
                    reason,
                });
            }
            let number = tx
                .insert_ticket(&NewTicket {
                    queue_id: request.queue_id,
                    subject: &request.title,
                    customer_address: &request.customer_address,
                    customer_name: request.customer_name.as_deref(),
                    opening: Opening::by_customer(request.now),
                    linked: linked.map(|(n, _)| n),
                    at: request.now,
                })
                .await?;
            events.extend(filing::opening_events(request, number, linked));
            (number, true, false, linked.map(|(n, _)| n))
        }
    };

    let effects = match (&request.rules, &request.kind) {
        (Some(hook), InboundKind::Customer) => {
            let snapshot = if created {
                None
            } else {
                tx.ticket_snapshot(ticket).await?
            };
            let effects = hook(snapshot.as_ref());
            let owner = match &effects.owner {
                Some(email) => Some(tx.agent_id(email).await?),
                None => None,
            };
            if let Some(change) = filing::rules_change(&effects, owner, request.now) {
                events.extend(tx.apply_change(ticket, &change).await?.events);
            }
            Some(effects)
        }
        _ => None,
    };
    let message = tx
        .insert_message(m, Some(ticket), MessageKind::Customer, None)
        .await?;
    events.extend(filing::flagged_event(request, ticket));

    let mut ack_id = None;
    let auto_reply = match filing::acknowledgement(ticket, created, request, effects.as_ref()) {
        Acknowledgement::Skip { reason, recorded } => {
            if recorded {
                events.push(filing::postdesk_event(
                    ticket,
                    request.now,
                    EventKind::AutoReplySuppressed,
                    reason.clone(),
                ));
            }
            Err(reason)
        }
        Acknowledgement::Send(context) => {
            // Some(plan) is what made the decision Send.
            let built = match &request.auto_reply {
                Some(plan) => (plan.build)(&context).map(|mail| (plan, mail)),
                None => Err("auto-reply not requested".to_string()),
            };
            match built {
                Ok((plan, mail)) => {
                    // Counted last, when the acknowledgement is ready: the
                    // caps' lock is held from here to the commit only.
                    let since = request.now - Duration::hours(1);
                    let (to_recent, all_recent) = tx.lock_and_count_acks(&plan.to, since).await?;
                    match filing::ack_cap(&plan.to, to_recent, all_recent, plan.caps) {
                        Some(reason) => {
                            tracing::info!(ticket, to = %plan.to, %reason, "no acknowledgement");
                            events.push(filing::postdesk_event(
                                ticket,
                                request.now,
                                EventKind::AutoReplySuppressed,
                                reason.clone(),
                            ));
                            Err(reason)
                        }
                        None => {
                            tx.claim_ack(&plan.to, request.now, since).await?;
                            let id = tx.queue_outgoing(ticket, &mail, "ack", request.now).await?;
                            ack_id = Some(mail.message_id.clone());
                            events.push(filing::postdesk_event(
                                ticket,
                                request.now,
                                EventKind::AutoReply,
                                format!("acknowledgement queued to {}", mail.rcpt_to),
                            ));
                            Ok(id)
                        }
                    }
                }
                Err(problem) => {
                    events.push(filing::postdesk_event(
                        ticket,
                        request.now,
                        EventKind::AutoReplyFailed,
                        format!("acknowledgement not built: {problem}"),
                    ));
                    Err(problem)
                }
            }
        }
    };

    let thread_ids = filing::thread_ids(m, ack_id.as_deref());
    let thread_ids: Vec<&str> = thread_ids.iter().map(String::as_str).collect();
    tx.insert_thread_ids(ticket, &thread_ids).await?;
    tx.insert_participants(ticket, &filing::participants(m, &request.customer_address))
        .await?;
    tx.insert_events(&events).await?;
    Ok(FileOutcome::Filed {
        message,
        ticket,
        created,
        reopened,
        linked,
        auto_reply,
    })
}

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
            Backend::Sqlite { .. } => self
                .on_writer(|reply| Work::File {
                    request: Box::new(request),
                    reply,
                })
                .await
                .unwrap_or_else(|| {
                    Err(StoreError::Unavailable(
                        "the SQLite writer is not running".into(),
                    ))
                }),
            Backend::Postgres(_) => match self.file_alone(&request).await {
                // Another node stored the same message (Message-ID and
                // sender) a moment ago: filing again finds it.
                Err(err) if err.is_unique_violation() => self.file_alone(&request).await,
                other => other,
            },
        }
    }

    async fn file_alone(&self, request: &InboundRequest) -> Result<FileOutcome> {
        let mut tx = self.begin().await?;
        let outcome = file(&mut tx, request).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Work waiting for the SQLite writer, and where its result goes.
pub(crate) struct WriteJob {
    work: Work,
    /// When it was queued: its wait for the writer is counted in
    /// [`crate::telemetry::DB_ACQUIRE_SECONDS`] like other writes'.
    queued_at: std::time::Instant,
}

/// What the SQLite writer does for a job.
pub(crate) enum Work {
    /// Files a message (threading, ticket, events).
    File {
        /// Boxed: a request is most of a kilobyte, the other jobs are small.
        request: Box<InboundRequest>,
        reply: oneshot::Sender<Result<FileOutcome>>,
    },
    /// Brings mailboxes' members in line with their views; answers, per
    /// write, whether its mailbox changed. A team's mailboxes each take
    /// such a write for every change of a ticket they show: 20 agents on
    /// one queue made 20 transactions of their own per message, and the
    /// messages waited behind them (issue 17). Queued here they share the
    /// filing's transactions and commits, and the writes of one batch are
    /// done together.
    Membership {
        writes: Vec<MembershipWrite>,
        reply: oneshot::Sender<Result<Vec<bool>>>,
    },
    /// Records that a session of the mailbox holds `\Recent` for the UIDs
    /// up to `uid`; answers the UID up to which another already did.
    ClaimRecent {
        mailbox_id: i64,
        uid: u32,
        reply: oneshot::Sender<Result<u32>>,
    },
}

impl WriteJob {
    pub(crate) fn new(work: Work) -> WriteJob {
        WriteJob {
            work,
            queued_at: std::time::Instant::now(),
        }
    }

    /// Sends the result to whoever waits for it (who may have gone).
    fn answer(self, result: Result<Done>) {
        match self.work {
            Work::File { reply, .. } => {
                let _ = reply.send(result.and_then(Done::filed));
            }
            Work::Membership { reply, .. } => {
                let _ = reply.send(result.and_then(Done::membership));
            }
            Work::ClaimRecent { reply, .. } => {
                let _ = reply.send(result.and_then(Done::claimed));
            }
        }
    }
}

/// What a job did.
enum Done {
    Filed(FileOutcome),
    Membership(Vec<bool>),
    Claimed(u32),
}

/// [`WriteJob::run`] answers each kind of work with its own kind of result;
/// anything else is a bug, reported as an error rather than a panic.
fn mixed_up() -> StoreError {
    StoreError::Unavailable("the SQLite writer mixed up its jobs".into())
}

impl Done {
    fn filed(self) -> Result<FileOutcome> {
        match self {
            Done::Filed(outcome) => Ok(outcome),
            _ => Err(mixed_up()),
        }
    }

    fn membership(self) -> Result<Vec<bool>> {
        match self {
            Done::Membership(changed) => Ok(changed),
            _ => Err(mixed_up()),
        }
    }

    fn claimed(self) -> Result<u32> {
        match self {
            Done::Claimed(previous) => Ok(previous),
            _ => Err(mixed_up()),
        }
    }
}

impl Store {
    /// Has the SQLite writer do `work` (made with the reply sender) in its
    /// next transaction and waits for the result; `None` when there is no
    /// such writer (PostgreSQL), where the caller runs its own transaction.
    pub(super) async fn on_writer<T>(
        &self,
        work: impl FnOnce(oneshot::Sender<Result<T>>) -> Work,
    ) -> Option<Result<T>> {
        let writer = self.filer.as_ref()?;
        let stopped = || StoreError::Unavailable("the SQLite writer stopped".into());
        let (reply, answer) = oneshot::channel();
        if writer.send(WriteJob::new(work(reply))).await.is_err() {
            return Some(Err(stopped()));
        }
        Some(answer.await.unwrap_or_else(|_| Err(stopped())))
    }
}

/// Jobs done in one SQLite transaction at most.
const MAX_BATCH: usize = 64;

/// What the group-commit writer did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions that did more than one job and committed.
    pub shared_commits: u64,
    /// The most jobs one committed transaction did.
    pub largest_batch: usize,
    /// Jobs done again on their own after their batch failed.
    pub refiled: u64,
}

/// Group commit for SQLite: does every job waiting when the writer gets to
/// them (messages to file, mailboxes to bring in line) in one transaction,
/// one fsync for all, and answers each only after the commit. SQLite has
/// one writer anyway; batching spares a commit per job. If anything in a
/// batch fails, the batch is rolled back and each job is done again on its
/// own, so one bad message costs no other its acceptance.
pub(crate) async fn sqlite_writer(
    pool: sqlx::SqlitePool,
    mut jobs: mpsc::Receiver<WriteJob>,
    stats: std::sync::Arc<std::sync::Mutex<WriterStats>>,
) {
    let record = |update: &dyn Fn(&mut WriterStats)| {
        if let Ok(mut stats) = stats.lock() {
            update(&mut stats);
        }
    };
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            match run_batch(&pool, &batch).await {
                Ok(outcomes) => {
                    let size = batch.len();
                    record(&|s| {
                        s.shared_commits += 1;
                        s.largest_batch = s.largest_batch.max(size);
                    });
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        job.answer(Ok(outcome));
                    }
                    continue;
                }
                Err(err) => {
                    let size = batch.len() as u64;
                    record(&|s| s.refiled += size);
                    tracing::debug!(%err, size, "batch rolled back; one job at a time")
                }
            }
        }
        for job in batch {
            let outcome = run_batch(&pool, std::slice::from_ref(&job))
                .await
                .and_then(|outcomes| {
                    outcomes.into_iter().next().ok_or_else(|| {
                        StoreError::Unavailable("the writer did not do a job".into())
                    })
                });
            if outcome.is_ok() {
                record(&|s| s.largest_batch = s.largest_batch.max(1));
            }
            job.answer(outcome);
        }
    }
}

async fn run_batch(pool: &sqlx::SqlitePool, jobs: &[WriteJob]) -> Result<Vec<Done>> {
    let mut tx = Tx::Sqlite(pool.begin().await?);
    for job in jobs {
        metrics::histogram!(crate::telemetry::DB_ACQUIRE_SECONDS, "pool" => "write")
            .record(job.queued_at.elapsed().as_secs_f64());
    }
    // Mailbox writes and `\Recent` claims are done together, after the
    // filings (see `Tx::write_memberships`, `Tx::claim_recent`: a few
    // statements for all of them, not a few each). Filings neither read
    // nor write members or claims, and a write and a claim touch different
    // columns, so the order changes nothing any of them sees.
    let mut filed = Vec::new();
    let mut writes: Vec<&MembershipWrite> = Vec::new();
    let mut claims = Vec::new();
    for job in jobs {
        match &job.work {
            Work::File { request, .. } => filed.push(file(&mut tx, request).await?),
            Work::Membership { writes: own, .. } => writes.extend(own),
            Work::ClaimRecent {
                mailbox_id, uid, ..
            } => claims.push((*mailbox_id, *uid)),
        }
    }
    let mut filed = filed.into_iter();
    let mut written = tx.write_memberships(&writes).await?.into_iter();
    let mut claimed = tx.claim_recent(&claims).await?.into_iter();
    tx.commit().await?;
    jobs.iter()
        .map(|job| {
            match &job.work {
                Work::File { .. } => filed.next().map(Done::Filed),
                Work::Membership { writes: own, .. } => {
                    Some(Done::Membership(written.by_ref().take(own.len()).collect()))
                }
                Work::ClaimRecent { .. } => claimed.next().map(Done::Claimed),
            }
            .ok_or_else(mixed_up)
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::filing::NewMessage;
    use std::sync::{Arc, Mutex};

    fn request(n: usize, subject: &str, queue_id: i64) -> InboundRequest {
        let now = Utc::now();
        let sender = format!("customer{n}@example.com");
        InboundRequest {
            message: NewMessage {
                message_id: format!("m{n}.{subject}@example.com"),
                has_message_id: true,
                sender: sender.clone(),
                from_name: None,
                envelope_from: sender.clone(),
                envelope_to: vec!["support@desk.test".into()],
                subject: subject.to_string(),
                sent_at: now,
                received_at: now,
                problems: Vec::new(),
                remote_addr: None,
                references: Vec::new(),
                participants: vec![sender.clone()],
                auth: None,
                raw: format!("Subject: {subject}\r\n\r\nhello\r\n").into_bytes(),
            },
            kind: InboundKind::Customer,
            queue_id,
            plus_tickets: Vec::new(),
            subject_tags: Vec::new(),
            title: subject.to_string(),
            customer_address: sender,
            customer_name: None,
            now,
            reopen_window: Duration::days(30),
            auto_reply: None,
            auto_reply_withheld: None,
            actor: "test".into(),
            rules: None,
        }
    }

    /// Queues `subjects` for a writer that is not running yet, then runs it
    /// until it has answered them all: everything waits when it starts, so
    /// what it batches is not left to timing.
    pub(crate) async fn file_all(
        store: &Store,
        queue_id: i64,
        subjects: &[&str],
    ) -> (Vec<Result<FileOutcome>>, WriterStats) {
        let mut jobs = Vec::new();
        let mut answers = Vec::new();
        for (n, subject) in subjects.iter().enumerate() {
            let (reply, answer) = oneshot::channel();
            jobs.push(WriteJob::new(Work::File {
                request: Box::new(request(n, subject, queue_id)),
                reply,
            }));
            answers.push(answer);
        }
        let stats = run_writer(store, jobs).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(
                answer
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer".into()))),
            );
        }
        (outcomes, stats)
    }

    /// A fresh SQLite store (in the returned directory) with a queue.
    pub(crate) async fn store_with_queue() -> (tempfile::TempDir, Store, crate::store::Queue) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/desk.db", dir.path().display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let queue = store
            .upsert_queue("support", "support@desk.test")
            .await
            .expect("queue");
        (dir, store, queue)
    }

    /// Adds an agent (`{name}@desk.test`) of `queue` with these folders:
    /// its id and its mailboxes.
    pub(crate) async fn agent_with_folders(
        store: &Store,
        name: &str,
        queue: &crate::store::Queue,
        folders: &[String],
    ) -> (i64, Vec<crate::store::Mailbox>) {
        let agent = store
            .add_agent(
                &format!("{name}@desk.test"),
                name,
                "unused",
                crate::domain::permission::AgentRole::Agent,
                std::slice::from_ref(queue),
            )
            .await
            .expect("agent");
        store
            .imap_ensure_mailboxes(agent, folders, true)
            .await
            .expect("mailboxes");
        (agent, store.imap_mailboxes(agent).await.expect("mailboxes"))
    }

    /// The id of an agent's Queues/support, as [`agent_with_folders`]
    /// made it.
    async fn support_folder(store: &Store, name: &str, queue: &crate::store::Queue) -> i64 {
        let (_, mailboxes) =
            agent_with_folders(store, name, queue, &["Queues/support".to_string()]).await;
        mailboxes
            .into_iter()
            .find(|m| m.name == "Queues/support")
            .expect("the queue's folder")
            .id
    }

    /// Makes filing a message with the subject "fail-me" fail.
    async fn fail_me(store: &Store) {
        store
            .execute_unchecked(
                "CREATE TRIGGER fail_me BEFORE INSERT ON messages \
                 WHEN NEW.subject = 'fail-me' \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .await
            .expect("trigger");
    }

    /// Runs a writer over `jobs`, all queued before it starts.
    async fn run_writer(store: &Store, jobs: Vec<WriteJob>) -> WriterStats {
        let Backend::Sqlite { write, .. } = &store.backend else {
            panic!("an SQLite store");
        };
        let (sender, queue) = mpsc::channel(jobs.len());
        for job in jobs {
            assert!(sender.send(job).await.is_ok(), "queued");
        }
        drop(sender);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        sqlite_writer(write.clone(), queue, Arc::clone(&stats)).await;
        *stats.lock().expect("stats")
    }

    /// A message filing, a mailbox write and a `\Recent` claim, queued
    /// together: the filing's reply, the write's and the claim's.
    async fn mailbox_jobs(
        store: &Store,
        queue_id: i64,
        subject: &str,
        mailbox: i64,
        wanted: Vec<(i64, String)>,
        recent: u32,
    ) -> (
        WriterStats,
        Result<FileOutcome>,
        Result<Vec<bool>>,
        Result<u32>,
    ) {
        let (filed, filing) = oneshot::channel();
        let (written, writing) = oneshot::channel();
        let (claimed, claiming) = oneshot::channel();
        let jobs = vec![
            WriteJob::new(Work::File {
                request: Box::new(request(0, subject, queue_id)),
                reply: filed,
            }),
            WriteJob::new(Work::Membership {
                writes: vec![MembershipWrite::everything(mailbox, wanted)],
                reply: written,
            }),
            WriteJob::new(Work::ClaimRecent {
                mailbox_id: mailbox,
                uid: recent,
                reply: claimed,
            }),
        ];
        let stats = run_writer(store, jobs).await;
        let gone = || StoreError::Unavailable("no answer".into());
        (
            stats,
            filing.await.unwrap_or_else(|_| Err(gone())),
            writing.await.unwrap_or_else(|_| Err(gone())),
            claiming.await.unwrap_or_else(|_| Err(gone())),
        )
    }

    /// A team's mailboxes are written for every ticket change: on SQLite
    /// those writes and `\Recent` claims wait for the one writer like
    /// messages do, so they share the messages' transactions (20 agents on
    /// one queue made 20 transactions of their own per message, and the
    /// messages waited behind them). One failing message costs them
    /// nothing either.
    #[tokio::test]
    async fn mailbox_writes_share_the_filing_commit_and_outlive_a_failing_message() {
        let (_dir, store, queue) = store_with_queue().await;
        let mailbox = support_folder(&store, "alice", &queue).await;
        let (outcomes, _) = file_all(&store, queue.id, &["first"]).await;
        let Ok(FileOutcome::Filed { message, .. }) = outcomes[0] else {
            panic!("{outcomes:?}");
        };

        let (stats, filed, written, claimed) = mailbox_jobs(
            &store,
            queue.id,
            "second",
            mailbox,
            vec![(message, String::new())],
            1,
        )
        .await;
        assert_eq!(
            stats,
            WriterStats {
                shared_commits: 1,
                largest_batch: 3,
                refiled: 0
            }
        );
        assert!(matches!(filed, Ok(FileOutcome::Filed { .. })), "{filed:?}");
        assert_eq!(written.ok(), Some(vec![true]));
        assert_eq!(claimed.ok(), Some(0));
        let members = store.imap_members(mailbox).await.expect("members");
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].uid, 1);

        fail_me(&store).await;
        let (stats, filed, written, claimed) = mailbox_jobs(
            &store,
            queue.id,
            "fail-me",
            mailbox,
            vec![(message, "\\Flagged".to_string())],
            2,
        )
        .await;
        assert_eq!(stats.refiled, 3, "{stats:?}");
        assert!(filed.is_err(), "{filed:?}");
        assert_eq!(written.ok(), Some(vec![true]));
        assert_eq!(claimed.ok(), Some(1));
        let members = store.imap_members(mailbox).await.expect("members");
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].flags, "\\Flagged");
        store.close().await;
    }

    /// Everything a mailbox write leaves behind: its members (UID, message,
    /// flags, MODSEQ), UIDNEXT, HIGHESTMODSEQ and the UIDs that left.
    async fn mailbox_state(
        store: &Store,
        mailbox: i64,
    ) -> (Vec<(u32, String, String, u64)>, u32, u64, Option<Vec<u32>>) {
        let members = store
            .imap_members(mailbox)
            .await
            .expect("members")
            .into_iter()
            .map(|m| (m.uid, format!("{:?}", m.message), m.flags, m.modseq))
            .collect();
        let row = store.imap_mailbox(mailbox).await.expect("mailbox");
        let gone = store
            .imap_vanished_since(mailbox, 0)
            .await
            .expect("vanished");
        (members, row.uidnext, row.highestmodseq, gone)
    }

    /// Several mailboxes' writes in one batch are done together, one
    /// statement per step for all (issue 17: a team's 20 mailboxes cost the
    /// writer 80 statements a message); they must leave each mailbox as
    /// the same writes done one at a time would, a mailbox written twice
    /// included.
    #[tokio::test]
    async fn mailbox_writes_done_together_leave_what_one_at_a_time_leaves() {
        let (_dir, store, queue) = store_with_queue().await;
        let mut mailboxes = Vec::new();
        for name in ["alice", "bob", "carol", "dave"] {
            mailboxes.push(support_folder(&store, name, &queue).await);
        }
        let (outcomes, _) = file_all(&store, queue.id, &["one", "two", "three"]).await;
        let filed: Vec<(i64, i64)> = outcomes
            .iter()
            .map(|o| match o {
                Ok(FileOutcome::Filed {
                    message, ticket, ..
                }) => (*message, *ticket),
                other => panic!("{other:?}"),
            })
            .collect();
        let [(m1, t1), (m2, _), (m3, t3)] = filed[..] else {
            panic!("{filed:?}");
        };
        let flagged = || "\\Flagged".to_string();
        // The writes of a pair of mailboxes (the first, the second).
        let writes = |first: i64, second: i64| {
            vec![
                MembershipWrite::everything(first, vec![(m1, String::new()), (m2, String::new())]),
                MembershipWrite::everything(second, vec![(m1, flagged()), (m3, String::new())]),
                MembershipWrite::everything(first, vec![(m2, flagged()), (m3, String::new())]),
                MembershipWrite::of_tickets(second, Vec::new(), vec![t1]),
                MembershipWrite::of_tickets(second, vec![(m3, flagged())], vec![t3]),
            ]
        };
        let jobs = |writes: Vec<MembershipWrite>| {
            let mut answers = Vec::new();
            let mut jobs = Vec::new();
            for write in writes {
                let (reply, answer) = oneshot::channel();
                jobs.push(WriteJob::new(Work::Membership {
                    writes: vec![write],
                    reply,
                }));
                answers.push(answer);
            }
            (jobs, answers)
        };

        let (together, answers) = jobs(writes(mailboxes[0], mailboxes[1]));
        let stats = run_writer(&store, together).await;
        assert_eq!(stats.largest_batch, 5, "{stats:?}");
        assert_eq!(stats.refiled, 0, "{stats:?}");
        let mut changed_together = Vec::new();
        for answer in answers {
            changed_together.extend(answer.await.expect("answered").expect("written"));
        }
        let mut changed_alone = Vec::new();
        for write in writes(mailboxes[2], mailboxes[3]) {
            let (job, answers) = jobs(vec![write]);
            run_writer(&store, job).await;
            for answer in answers {
                changed_alone.extend(answer.await.expect("answered").expect("written"));
            }
        }
        assert_eq!(changed_together, changed_alone);
        assert_eq!(changed_together, vec![true; 5]);
        for (together, alone) in [(mailboxes[0], mailboxes[2]), (mailboxes[1], mailboxes[3])] {
            assert_eq!(
                mailbox_state(&store, together).await,
                mailbox_state(&store, alone).await
            );
        }
        // The first mailbox: m1 left (UID 1), m3 came in with UID 3.
        let (members, uidnext, _, gone) = mailbox_state(&store, mailboxes[0]).await;
        let uids: Vec<u32> = members.iter().map(|m| m.0).collect();
        assert_eq!((uids, uidnext, gone), (vec![2, 3], 4, Some(vec![1])));
        store.close().await;
    }

    /// `\Recent` claims of one batch are one read and one write for all
    /// their mailboxes; each answers what the claims before it left, as
    /// one at a time would, and a mailbox that is gone answers 0.
    #[tokio::test]
    async fn recent_claims_done_together_count_in_turn() {
        let (_dir, store, queue) = store_with_queue().await;
        let names = ["Queues/support".to_string(), "Unassigned".to_string()];
        let (_, mailboxes) = agent_with_folders(&store, "alice", &queue, &names).await;
        let ids: Vec<i64> = mailboxes.iter().map(|m| m.id).collect();
        let [first, second] = ids[..] else {
            panic!("{ids:?}");
        };
        let claims = [
            (first, 5),
            (second, 3),
            (first, 4),
            (first, 9),
            (999_999, 2),
        ];
        let mut answers = Vec::new();
        let mut jobs = Vec::new();
        for (mailbox_id, uid) in claims {
            let (reply, answer) = oneshot::channel();
            jobs.push(WriteJob::new(Work::ClaimRecent {
                mailbox_id,
                uid,
                reply,
            }));
            answers.push(answer);
        }
        let stats = run_writer(&store, jobs).await;
        assert_eq!((stats.largest_batch, stats.refiled), (5, 0), "{stats:?}");
        let mut previous = Vec::new();
        for answer in answers {
            previous.push(answer.await.expect("answered").expect("claimed"));
        }
        assert_eq!(previous, vec![0, 0, 5, 5, 0]);
        let recent: Vec<u32> = [first, second]
            .into_iter()
            .map(|id| store.imap_mailbox(id))
            .collect::<futures_util::future::JoinAll<_>>()
            .await
            .into_iter()
            .map(|m| m.expect("mailbox").recent_uid)
            .collect();
        assert_eq!(recent, vec![9, 3]);
        store.close().await;
    }

    #[tokio::test]
    async fn waiting_messages_share_one_commit_and_a_failing_one_is_refiled_alone() {
        let (_dir, store, queue) = store_with_queue().await;

        let (outcomes, stats) = file_all(&store, queue.id, &["a", "b", "c", "d"]).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(FileOutcome::Filed { created: true, .. }))),
            "{outcomes:?}"
        );
        assert_eq!(
            stats,
            WriterStats {
                shared_commits: 1,
                largest_batch: 4,
                refiled: 0
            }
        );

        fail_me(&store).await;
        let (outcomes, stats) = file_all(&store, queue.id, &["e", "fail-me", "f"]).await;
        assert!(
            matches!(outcomes[0], Ok(FileOutcome::Filed { .. })),
            "{outcomes:?}"
        );
        assert!(outcomes[1].is_err(), "{outcomes:?}");
        assert!(
            matches!(outcomes[2], Ok(FileOutcome::Filed { .. })),
            "{outcomes:?}"
        );
        // The batch of three rolled back; each was filed again on its own.
        assert_eq!(
            stats,
            WriterStats {
                shared_commits: 0,
                largest_batch: 1,
                refiled: 3
            }
        );
        let (messages, tickets) = store.counts().await.expect("counts");
        assert_eq!((messages, tickets), (6, 6));
        store.close().await;
    }
}
