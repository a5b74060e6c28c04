//! Agent mail (DESIGN.md §5): what an authenticated agent submits on the
//! submission port becomes a public reply, an internal note, or a new
//! outbound ticket, with its mail commands applied.
//!
//! - A mail naming a ticket (plus-address recipient, In-Reply-To or
//!   References, `[#n]` in the subject) with an outside recipient is a
//!   public reply: From becomes `"Alice via Support" <queue address>`,
//!   Reply-To the ticket's plus-address, the subject gets its `[#n]` tag,
//!   and it is stored and queued to each outside recipient.
//! - The same with no outside recipient who is the ticket's customer or
//!   takes part in it is a forward (a consult): sent the same way, filed
//!   as a forward, and nothing counts as answered.
//! - With only postdesk's own addresses (queues, agents) among its
//!   recipients it is an internal note, threaded under the ticket's
//!   latest message when it names none itself.
//! - An outside recipient and no ticket: a new outbound ticket.
//! - A customer's mail forwarded to a queue's own address (attached or
//!   inline) opens a ticket for that customer (forward-to-create).
//! - A reply that carries only commands above the quoted mail says nothing
//!   to the customer: the commands are applied and nothing is sent. Words
//!   of the agent's below the quote are kept as a note, and the agent is
//!   told.
//!
//! An agent acts only on tickets of queues they work in; anything else is
//! refused before anything is stored or sent.

pub mod knowledge;
mod merge;
pub mod rewrite;
pub mod templates;

use crate::App;
use crate::domain::agent_mail::{self, Addressing, ForwardedHeader};
use crate::domain::change::{ChangeRequest, TicketChange, TimeSpent};
use crate::domain::collision::{self, CollisionMode, Decision, Newer};
use crate::domain::commands::{Command, Commands};
use crate::domain::outgoing::OutgoingMail;
use crate::domain::permission::{self, Actor, Asked, Assignee, Ownership};
use crate::domain::ticket::{EventKind, MessageKind, queue_display_name};
use crate::domain::{address, message_id, subject};
use crate::store::{
    AgentMailRequest, HoldRequest, LoginAgent, Queue, ReplyTarget, StoreError, SystemNote, Ticket,
};
use chrono::{DateTime, Utc};
use mail_parser::{Address, MessageParser, PartType};
use rewrite::{AgentMail, HeaderEdit, read_agent_mail, rewrite_header};
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The mail is refused; the text is the whole SMTP reply line.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of a submitted mail, for the SMTP reply and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub ticket: i64,
    pub outcome: Outcome,
    /// Command errors, reported to the agent in an internal note.
    pub command_errors: Vec<String>,
    /// What the commands changed.
    pub changed: Vec<String>,
    /// `collision = "warn"`: the reply went out though this many newer
    /// messages had arrived (noted in the ticket, the agent told).
    pub collision_warning: Option<usize>,
    /// `#merge`/`#split`: what moved ("#7 merged into #42").
    pub moved: Option<String>,
    /// What `#kb` did (article inserted, draft written), for the reply.
    pub knowledge: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and queued to this many recipients.
    Reply {
        recipients: usize,
        new_ticket: bool,
    },
    /// Sent to this many recipients outside the ticket; the customer was
    /// not answered.
    Forward {
        recipients: usize,
    },
    Note,
    /// A customer's forwarded mail opened the ticket.
    ForwardedToCreate,
    /// Nothing but commands (or nothing) above the quote, and words below
    /// it: those were kept as a note, sent to nobody.
    KeptAsNote,
    /// A reply held back by `#hold` because a command failed: stored as a
    /// note, sent to nobody.
    Held,
    /// The ticket changed after the message the reply answers: held in
    /// the agent's Held folder, sent to nobody, nothing applied.
    CollisionHeld {
        /// How many newer messages the agent had not seen.
        newer: usize,
    },
    /// Only commands: nothing stored, nothing sent.
    CommandsOnly,
    /// The same mail was filed before (the client retried).
    Duplicate,
}

impl Submitted {
    /// The text of the SMTP 250 reply.
    pub fn summary(&self) -> String {
        let t = self.ticket;
        let mut text = match &self.outcome {
            Outcome::Reply {
                recipients,
                new_ticket,
            } => {
                let opened = if *new_ticket { " (new ticket)" } else { "" };
                let plural = if *recipients == 1 { "" } else { "s" };
                format!("Reply to #{t}{opened} queued for {recipients} recipient{plural}")
            }
            Outcome::Forward { recipients } => {
                let plural = if *recipients == 1 { "" } else { "s" };
                format!(
                    "Forward from #{t} queued for {recipients} recipient{plural} (not a reply to the customer)"
                )
            }
            Outcome::Note => format!("Internal note added to #{t}"),
            Outcome::ForwardedToCreate => {
                format!("Ticket #{t} opened for the forwarded customer mail")
            }
            Outcome::KeptAsNote => format!(
                "Nothing sent to the customer of #{t}: your text below the quoted mail is kept as an internal note (write above the quote to send it)"
            ),
            Outcome::Held => format!("Reply held in #{t} as a note: a command failed"),
            Outcome::CollisionHeld { newer } => format!(
                "Reply to #{t} held, not sent: the ticket changed after the message you answer \
                 ({newer} newer message{}); it is in your Held folder, see the notice mail; \
                 write #send at its top to send it anyway",
                if *newer == 1 { "" } else { "s" }
            ),
            Outcome::CommandsOnly => format!("Commands for #{t} read; nothing sent"),
            Outcome::Duplicate => format!("Already filed in #{t}"),
        };
        if let Some(newer) = self.collision_warning {
            text.push_str(&format!(
                "; note: the ticket changed after the message you answer ({newer} newer message{}), see the note in the ticket",
                if newer == 1 { "" } else { "s" }
            ));
        }
        if let Some(moved) = &self.moved {
            text.push_str(&format!("; {moved}"));
        }
        for done in &self.knowledge {
            text.push_str(&format!("; {done}"));
        }
        if !self.command_errors.is_empty() {
            text.push_str(&format!(
                "; {} command error(s), see the note in the ticket",
                self.command_errors.len()
            ));
        }
        text
    }
}

/// The envelope of a submission.
#[derive(Debug, Clone)]
pub struct SubmissionEnvelope {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub remote_addr: Option<SocketAddr>,
}

/// A refused action, as the agent's SMTP reply.
fn denied(why: permission::Denied) -> SubmitError {
    SubmitError::Refused(format!("550 5.7.1 {why}; nothing was sent"))
}

/// May this agent send as this address? Their own, or a queue they work in.
pub fn may_send_as(agent: &LoginAgent, queues: &[Queue], sender: &str) -> bool {
    let sender = address::normalize(sender);
    sender == agent.email.to_lowercase()
        || queues
            .iter()
            .any(|q| q.address == sender && agent.actor().works_in(&q.name))
}

fn refused_sender(sender: &str) -> SubmitError {
    SubmitError::Refused(format!(
        "550 5.7.1 <{sender}> is not yours to send as: use your own address or a queue you work in"
    ))
}

pub async fn submit(
    app: &App,
    agent: &LoginAgent,
    envelope: &SubmissionEnvelope,
    raw: Vec<u8>,
) -> Result<Submitted, SubmitError> {
    let now = Utc::now();
    let queues = app.queues().await?;
    let mut header = read_header(&raw);
    let from = header
        .from
        .clone()
        .unwrap_or_else(|| address::normalize(&envelope.mail_from));
    if !may_send_as(agent, &queues, &from) {
        return Err(refused_sender(&from));
    }
    let mut mail = read_agent_mail(&raw);
    // `#kb 42`: a public article's text where the command was (issue 19).
    let kb = knowledge::read_kb_commands(app, &mail.commands).await?;
    if let Some(insertion) = &kb.insertion {
        mail = rewrite::read_agent_mail_inserting(&raw, Some(insertion));
    }

    // Recipients: postdesk's own addresses (queues and their plus-addresses,
    // agents) are internal; everyone else is outside.
    let agents = app.store.agents().await?;
    let mut plus_tickets = Vec::new();
    let mut outside: Vec<String> = Vec::new();
    let mut queue_recipients: Vec<&Queue> = Vec::new();
    for rcpt in &envelope.rcpt_to {
        let normalized = address::normalize(rcpt);
        let recipient = address::Recipient::parse(&normalized);
        if let Some(queue) = recipient
            .as_ref()
            .and_then(|r| queues.iter().find(|q| q.address == r.base))
        {
            plus_tickets.extend(recipient.as_ref().and_then(|r| r.ticket_number()));
            queue_recipients.push(queue);
        } else if agents.iter().any(|a| a.email.to_lowercase() == normalized) {
            continue;
        } else if !outside.contains(&normalized) {
            outside.push(normalized);
        }
    }

    let actor = agent.actor();
    let (mut ticket, named) = match find_ticket(app, &plus_tickets, &header, now).await? {
        Some((ticket, named)) => (Some(ticket), Some(named)),
        None => (None, None),
    };
    // A customer's mail an agent forwarded to a queue's own address: the
    // customer's ticket (the one their mail is in already, or a new one).
    let mut forwarded = None;
    if ticket.is_none()
        && outside.is_empty()
        && let Some(original) = forwarded_original(&raw)
        && !is_own_address(&original.from, &queues, &agents)
        && let Some(queue) = queue_recipients.first().copied()
    {
        let known = original.message_id.iter().cloned().collect::<Vec<_>>();
        ticket = match app
            .store
            .ticket_by_references(&known, now, reopen_window(app))
            .await?
        {
            Some(number) => holding_ticket(app, number).await?,
            None => None,
        };
        if ticket.is_none() {
            forwarded = Some((original, queue));
        }
    }
    if let Some(ticket) = &ticket {
        permission::may_act_on_ticket(&actor, ticket.number, &ticket.queue).map_err(denied)?;
    }

    // Where the mail goes: the ticket it names, a forwarded customer's new
    // ticket, or a new outbound ticket.
    let (mut target, mut queue) = match (&ticket, &forwarded) {
        (Some(ticket), _) => {
            let queue = queues
                .iter()
                .find(|q| q.name == ticket.queue)
                .ok_or_else(|| StoreError::NotFound(format!("no queue '{}'", ticket.queue)))?;
            (ReplyTarget::Ticket(ticket.number), queue)
        }
        (None, Some((original, queue))) => {
            for queue in &queue_recipients {
                permission::may_use_queue(&actor, &queue.name).map_err(denied)?;
            }
            let title = subject_title(&original.subject.clone().or_else(|| header.subject.clone()));
            let target = ReplyTarget::Forwarded {
                queue_id: queue.id,
                title,
                customer_address: original.from.clone(),
                customer_name: original.from_name.clone(),
                original_id: original.message_id.clone(),
            };
            (target, *queue)
        }
        (None, None) => {
            if outside.is_empty() {
                return Err(SubmitError::Refused(
                    "550 5.7.1 This mail names no ticket and no customer: reply to a ticket's mail, \
                     write to the ticket's plus-address (support+N@…), or put [#N] in the subject"
                        .into(),
                ));
            }
            if !mail.says_something {
                return Err(SubmitError::Refused(
                    "550 5.6.0 Nothing to send: the mail holds only commands and names no ticket"
                        .into(),
                ));
            }
            // Every queue address among the recipients must be one of the
            // agent's: a new ticket is never opened in, nor sent as,
            // another queue.
            for queue in &queue_recipients {
                permission::may_use_queue(&actor, &queue.name).map_err(denied)?;
            }
            let queue = from_queue(&queues, &from)
                .or_else(|| queue_recipients.first().copied())
                .or_else(|| queues.iter().find(|q| agent.queues.contains(&q.name)))
                .ok_or_else(|| {
                    SubmitError::Refused(
                        "550 5.7.1 You work in no queue to open a ticket in".into(),
                    )
                })?;
            let customer = header
                .to
                .iter()
                .find(|a| outside.contains(a))
                .cloned()
                .unwrap_or_else(|| outside[0].clone());
            let target = ReplyTarget::New {
                queue_id: queue.id,
                title: subject_title(&header.subject),
                customer_name: header.names.get(&customer).cloned(),
                customer_address: customer,
            };
            (target, queue)
        }
    };

    // A new outbound ticket is the agent's own from the start; a
    // forwarded customer's is nobody's, as the customer's own mail would be.
    let target_facts = CommandTarget {
        number: ticket.as_ref().map(|t| t.number),
        queue: &queue.name,
        ownership: match &ticket {
            Some(t) => Ownership::of_email(t.owner.as_deref(), &actor),
            None if forwarded.is_some() => Ownership::Nobody,
            None => Ownership::TheActor,
        },
    };
    let (mut change, mut command_errors, redirect) =
        resolve_commands(&mail.commands, &actor, &agents, &queues, target_facts);
    if !kb.errors.is_empty() {
        // Any error leaves the ticket untouched, a `#kb` one too.
        change = TicketChange::default();
        command_errors.extend(kb.errors.iter().cloned());
    }
    // Issue 20: `#merge`/`#split` move the ticket's mail first; this mail
    // and the other commands then go where the conversation is now.
    let mut moved = None;
    // A mail naming a merged ticket reaches the ticket holding its mail;
    // `#merge` there would merge that one, which the agent did not name.
    if let (Some(merge::Redirect::Merge { line, .. }), Some(ticket), Some(named)) =
        (&redirect, &ticket, named)
        && named != ticket.number
    {
        command_errors.push(format!(
            "{line}: ticket #{named} was already merged into #{}",
            ticket.number
        ));
        change = TicketChange::default();
    }
    if let (Some(redirect), Some(source), true) = (&redirect, &ticket, command_errors.is_empty()) {
        let in_reply_to = header.in_reply_to.clone();
        match merge::redirect(
            app,
            agent,
            source.number,
            redirect,
            in_reply_to.as_deref(),
            now,
        )
        .await?
        {
            Ok(done) => {
                let now_in = app.store.ticket(done.ticket).await?;
                queue = queues
                    .iter()
                    .find(|q| q.name == now_in.queue)
                    .ok_or_else(|| StoreError::NotFound(format!("no queue '{}'", now_in.queue)))?;
                target = ReplyTarget::Ticket(now_in.number);
                header.subject = header
                    .subject
                    .as_deref()
                    .map(|s| subject::replace_ticket_tag(s, source.number, now_in.number));
                if matches!(redirect, merge::Redirect::Split { .. }) {
                    // Only the answered message leads here: the older ones
                    // this mail quotes stay with the ticket they are in.
                    header.references = in_reply_to.into_iter().collect();
                }
                moved = Some(done.summary);
                ticket = Some(now_in);
            }
            Err(why) => {
                command_errors.push(why);
                change = TicketChange::default();
            }
        }
    }
    // `#cc add` / `#cc remove` (applied with the other commands): the
    // mail goes to the people added and not to those removed, and its To
    // and Cc say so.
    let mut cc_edits = Vec::new();
    if !change.add_participants.is_empty() || !change.remove_participants.is_empty() {
        for who in &change.add_participants {
            if !outside.contains(who) && !is_own_address(who, &queues, &agents) {
                outside.push(who.clone());
            }
        }
        outside.retain(|o| !change.remove_participants.contains(o));
        cc_edits = cc_header_edits(
            &header,
            &change.add_participants,
            &change.remove_participants,
        );
    }
    // Mail to someone outside the ticket only (not its customer, nobody
    // who takes part) is a forward: it answers nobody.
    let addressing = match &ticket {
        Some(ticket) if !outside.is_empty() => {
            let mut participants = app.store.ticket_participants(ticket.number).await?;
            participants.extend(change.add_participants.iter().cloned());
            agent_mail::addressing(&outside, &ticket.customer_address, &participants)
        }
        _ => Addressing::Reply,
    };
    // Templates and placeholders, for what goes out: a reply that names
    // an unknown template or holds a placeholder that does not fill is
    // held (sent to nobody), whatever `#hold` says.
    let has_templates = !templates::template_names(&mail.commands).is_empty();
    if has_templates {
        mail.says_something = true;
    }
    let mut reply_templates = None;
    let mut template_failed = false;
    if !outside.is_empty() && mail.says_something {
        let context = placeholder_context(agent, queue, &ticket, &target, &forwarded);
        match templates::ReplyTemplates::load(app, &mail.commands, &queue.name, context).await {
            Ok(loaded) => {
                // Tried now with the ticket's number (0 for a new one, whose
                // number is filled in when it is filed): a failure is known
                // before anything is stored.
                let number = ticket.as_ref().map(|t| t.number).unwrap_or_default();
                match loaded.apply(&mail.stripped, number) {
                    Ok(_) => reply_templates = Some(loaded),
                    Err(problems) => {
                        template_failed = true;
                        command_errors.extend(problems);
                    }
                }
            }
            Err(Ok(problems)) => {
                template_failed = true;
                command_errors.extend(problems);
            }
            Err(Err(err)) => return Err(err.into()),
        }
    }
    let held = (mail.commands.hold() || template_failed) && !command_errors.is_empty();
    if held && ticket.is_none() {
        return Err(SubmitError::Refused(format!(
            "550 5.7.1 Held{}: {}",
            if template_failed { "" } else { " (#hold)" },
            command_errors.join("; ")
        )));
    }
    let public = !outside.is_empty() && mail.says_something && !held;
    // Nothing but commands above the quote, and words below it (a reply
    // written under the quoted mail): never sent unasked, never dropped;
    // kept as a note, and the agent is told.
    // To postdesk's own addresses only, such a mail is simply a note.
    let kept_below =
        !mail.says_something && mail.words_below_quote && ticket.is_some() && !outside.is_empty();
    let noted_below = !mail.says_something && mail.words_below_quote && outside.is_empty();
    let kind = if public {
        Some(match addressing {
            Addressing::Reply => MessageKind::Reply,
            Addressing::Forward => MessageKind::Forward,
        })
    } else if mail.says_something || kept_below || noted_below || forwarded.is_some() {
        Some(MessageKind::Note)
    } else {
        None
    };
    // Collision hold: a public reply to a ticket that changed after the
    // message it answers goes back to the agent, unsent (nothing of it is
    // applied either: sending it again applies its commands).
    let verdict = match (&ticket, kind) {
        (Some(t), Some(MessageKind::Reply)) => {
            let mode = app.config.submission.collision;
            let later = match mode {
                CollisionMode::Off => None,
                _ => {
                    app.store
                        .messages_after(t.number, &header.references)
                        .await?
                }
            };
            collision::decide(&collision::Facts {
                mode,
                me: agent.id,
                me_email: &agent.email,
                owner: t.owner.as_deref(),
                // A mail that merged or split the ticket has already
                // rearranged the conversation on purpose (a split moves the
                // customer's later mail along with the one it answers): the
                // agent acted on what changed, so it is not held.
                forced: mail.commands.send() || moved.is_some(),
                later: later.as_deref(),
            })
        }
        _ => Decision::Send { owner_note: None },
    };
    if let (Decision::Hold { newer }, Some(t)) = (&verdict, &ticket) {
        let message_id = header
            .message_id
            .clone()
            .unwrap_or_else(|| app.own_ids.for_submission(&mail.stripped));
        return hold_reply(app, agent, t, queue, &raw, message_id, newer, now).await;
    }
    let (owner_note, warning) = match verdict {
        Decision::Send { owner_note } => (owner_note, None),
        Decision::SendWithWarning { newer, owner_note } => (owner_note, Some(newer)),
        Decision::Hold { .. } => (None, None),
    };
    let history_note = owner_note.map(|note| format!("reply by {}: {note}", agent.email));
    let hold_if_changed = app.config.submission.collision == CollisionMode::Hold
        && !mail.commands.send()
        && moved.is_none();
    // `#cc` on an existing ticket is applied as the mail is filed, before
    // the reply makes its recipients participants (the history should say
    // who added them, by command), and after the locked collision
    // re-check: nothing of a reply held there takes effect.
    let mut participants = None;
    if ticket.is_some()
        && kind.is_some()
        && command_errors.is_empty()
        && (!change.add_participants.is_empty() || !change.remove_participants.is_empty())
    {
        let edits = TicketChange {
            add_participants: std::mem::take(&mut change.add_participants),
            remove_participants: std::mem::take(&mut change.remove_participants),
            ..TicketChange::default()
        };
        participants = Some(ChangeRequest::asked(edits, "mail command", &actor, now));
    }
    let mut changed = Vec::new();
    let (number, outcome) = match (kind, target) {
        (Some(kind), target) => {
            let recipients = if public { outside.as_slice() } else { &[] };
            let reply_to = forwarded
                .as_ref()
                .map(|(original, _)| (original.from_name.clone(), original.from.clone()));
            let filled = if public {
                reply_templates.clone()
            } else {
                None
            };
            let filed = file(
                app,
                agent,
                envelope,
                &header,
                &mail,
                Filing {
                    target,
                    queue,
                    kind,
                    outside: recipients,
                    reply_to,
                    cc_edits: cc_edits.clone(),
                    history_note: history_note.clone(),
                    hold_if_changed: hold_if_changed && kind == MessageKind::Reply,
                    filled,
                    participants,
                },
                now,
            )
            .await;
            // A colleague's reply (or the customer's mail) was filed
            // between the check above and this filing: held all the same.
            let filed = match (filed, &ticket) {
                (Err(SubmitError::Store(StoreError::Collided(newer))), Some(t)) => {
                    let message_id = header
                        .message_id
                        .clone()
                        .unwrap_or_else(|| app.own_ids.for_submission(&mail.stripped));
                    return hold_reply(app, agent, t, queue, &raw, message_id, &newer, now).await;
                }
                (filed, _) => filed?,
            };
            changed.extend(filed.changed.iter().cloned());
            let outcome = if filed.duplicate {
                Outcome::Duplicate
            } else if public && kind == MessageKind::Forward {
                Outcome::Forward {
                    recipients: filed.queued,
                }
            } else if public {
                Outcome::Reply {
                    recipients: filed.queued,
                    new_ticket: filed.created,
                }
            } else if held {
                Outcome::Held
            } else if forwarded.is_some() {
                Outcome::ForwardedToCreate
            } else if kept_below {
                Outcome::KeptAsNote
            } else {
                Outcome::Note
            };
            (filed.ticket, outcome)
        }
        (None, ReplyTarget::Ticket(number)) => (number, Outcome::CommandsOnly),
        (None, ReplyTarget::New { .. } | ReplyTarget::Forwarded { .. }) => {
            return Err(SubmitError::Refused("550 5.6.0 Nothing to send".into()));
        }
    };

    if command_errors.is_empty() && !change.is_empty() {
        let request = ChangeRequest::asked(change, "mail command", &actor, Utc::now());
        match app.store.change_ticket(number, &request).await {
            Ok(done) => changed.extend(done),
            // The ticket changed hands between the check above and now:
            // the mail is filed, the commands are refused like any other.
            Err(StoreError::Denied(why)) => command_errors.push(format!("the commands: {why}")),
            Err(err) => return Err(err.into()),
        }
    }
    // Knowledge base (issue 19): the ticket records the articles its
    // customer was sent, and `#kb draft` writes a draft from it.
    let mut knowledge_done = Vec::new();
    if matches!(outcome, Outcome::Reply { .. }) {
        for (article, title) in &kb.inserted {
            app.store
                .kb_record_ticket_usage(
                    number,
                    *article,
                    crate::store::TicketUsage::Inserted,
                    &agent.email.to_lowercase(),
                    &format!(
                        "article {article} '{title}' inserted into a reply by {} (#kb)",
                        agent.email
                    ),
                    now,
                )
                .await?;
            knowledge_done.push(format!("article {article} inserted"));
        }
    }
    if kb.draft && outcome != Outcome::Duplicate {
        match knowledge::draft_from_ticket(app, agent, number, now).await? {
            Ok(revision) => knowledge_done.push(format!(
                "draft article {} written from #{number} in category '{}' (Knowledge/Drafts)",
                revision.article, revision.content.category
            )),
            Err(why) => command_errors.push(format!("#kb draft: {why}")),
        }
    }
    if !command_errors.is_empty() && outcome != Outcome::Duplicate {
        report_command_errors(app, number, agent, &command_errors, &outcome, now).await?;
    }
    if outcome == Outcome::KeptAsNote {
        report_kept_below(app, number, agent, now).await?;
    }
    let mut warned = None;
    if let Outcome::Reply { .. } = outcome {
        // The agent's reply went out: what they held of this ticket is
        // done with (sent again, or answered anew).
        let released = app.store.release_held(agent.id, number, now).await?;
        if released > 0 {
            tracing::info!(agent = %agent.email, ticket = number, released, "held replies released");
        }
        if let Some(newer) = &warning {
            warn_collision(app, agent, number, queue, newer, now).await?;
            warned = Some(newer.len());
        }
    }
    Ok(Submitted {
        ticket: number,
        outcome,
        command_errors,
        changed,
        collision_warning: warned,
        moved,
        knowledge: knowledge_done,
    })
}

/// Stores (and for a reply, queues) the agent's mail, rewritten for the ticket.
async fn file(
    app: &App,
    agent: &LoginAgent,
    envelope: &SubmissionEnvelope,
    header: &HeaderFacts,
    mail: &AgentMail,
    filing: Filing<'_>,
    now: DateTime<Utc>,
) -> Result<crate::store::AgentMailFiled, SubmitError> {
    let Filing {
        target,
        queue,
        kind,
        outside,
        reply_to,
        cc_edits,
        history_note,
        hold_if_changed,
        filled,
        participants,
    } = filing;
    let display = format!("{} via {}", agent.name, queue_display_name(&queue.name));
    let sent_out = matches!(kind, MessageKind::Reply | MessageKind::Forward);
    let (sender, from_name) = if sent_out {
        (queue.address.clone(), Some(display.clone()))
    } else {
        (agent.email.to_lowercase(), Some(agent.name.clone()))
    };
    // A client that sends no Message-ID gets one of ours; it is fixed
    // before the ticket number is known so that a retry finds the mail.
    let mut message_id = header
        .message_id
        .clone()
        .unwrap_or_else(|| app.own_ids.for_submission(&mail.stripped));
    // A Message-ID that is already another message's (a colleague's reply,
    // a customer's mail) is not borrowed: it would lead that message's
    // replies here. The mail gets one of ours; a client's retry of its
    // own mail keeps its id and is recognized as the same mail.
    let replaced_id = app
        .store
        .message_id_taken(&message_id, agent.id, &sender)
        .await?;
    if replaced_id {
        tracing::warn!(agent = %agent.email, id = %message_id, "a submitted Message-ID is taken: given a fresh one");
        message_id = app.own_ids.fresh_submission();
    }
    let subject_text = header.subject.clone().unwrap_or_default();
    let body = mail.stripped.clone();
    let has_date = header.has_date;
    let has_message_id = header.message_id.is_some() && !replaced_id;
    let queue_address = queue.address.clone();
    let id_for_build = message_id.clone();
    let build = Box::new(move |ticket: i64, threading: Option<&(String, String)>| {
        let tagged = subject::with_ticket_tag(&subject_text, ticket);
        let mut fields = vec![
            HeaderEdit::remove("Bcc"),
            HeaderEdit::remove("Return-Path"),
            HeaderEdit::remove("X-Postdesk-Note"),
            HeaderEdit::raw("X-Postdesk-Ticket", &ticket.to_string()),
        ];
        if sent_out {
            // Answering a note from the view ("Reply" on a forwarded
            // customer's mail) must not tell the customer it was a note.
            let tagged = without_note_marker(&tagged);
            fields.push(HeaderEdit::address("From", &display, &queue_address));
            fields.push(HeaderEdit::remove("Sender"));
            fields.push(HeaderEdit::raw(
                "Reply-To",
                &format!("<{}>", address::plus_address(&queue_address, ticket)),
            ));
            fields.push(HeaderEdit::text("Subject", &tagged));
            fields.extend(cc_edits.iter().cloned());
        } else {
            fields.push(HeaderEdit::text("Subject", &note_subject(&tagged)));
            fields.push(HeaderEdit::raw("X-Postdesk-Note", "yes"));
            if let Some((in_reply_to, references)) = threading {
                fields.push(HeaderEdit::raw("In-Reply-To", in_reply_to));
                fields.push(HeaderEdit::raw("References", references));
            }
            // A forwarded customer's mail: "Reply" in the agent's client
            // answers the customer, in this ticket (the reply names this
            // note's Message-ID).
            match &reply_to {
                Some((Some(name), address)) => {
                    fields.push(HeaderEdit::address("Reply-To", name, address));
                }
                Some((None, address)) => {
                    fields.push(HeaderEdit::raw("Reply-To", &format!("<{address}>")));
                }
                None => {}
            }
        }
        if !has_message_id {
            fields.push(HeaderEdit::raw("Message-ID", &format!("<{id_for_build}>")));
        }
        if !has_date {
            fields.push(HeaderEdit::raw("Date", &now.to_rfc2822()));
        }
        // Templates and placeholders were tried before filing; filled
        // here, where a new ticket's number is known.
        let body = match &filled {
            Some(filled) => filled.apply(&body, ticket).unwrap_or_else(|_| body.clone()),
            None => body.clone(),
        };
        let mut raw = rewrite_header(&body, &fields);
        if !raw.ends_with(b"\r\n") {
            raw.extend_from_slice(b"\r\n");
        }
        raw
    });
    let request = AgentMailRequest {
        target,
        kind,
        agent_id: agent.id,
        actor: agent.email.clone(),
        message_id,
        sender,
        from_name,
        envelope_from: address::normalize(&envelope.mail_from),
        envelope_to: envelope
            .rcpt_to
            .iter()
            .map(|r| address::normalize(r))
            .collect(),
        subject: header.subject.clone().unwrap_or_default(),
        references: header.references.clone(),
        mail_from: queue.address.clone(),
        recipients: outside.to_vec(),
        remote_addr: envelope.remote_addr.map(|a| a.to_string()),
        submitted_digest: mail.digest.clone(),
        history_note,
        hold_if_changed,
        participants,
        now,
        build,
    };
    Ok(app.store.file_agent_mail(&request).await?)
}

/// What [`file`] stores and sends, besides the mail itself.
struct Filing<'a> {
    target: ReplyTarget,
    queue: &'a Queue,
    kind: MessageKind,
    /// Outside recipients of a reply or forward.
    outside: &'a [String],
    reply_to: Option<(Option<String>, String)>,
    /// To and Cc rewritten by `#cc` (sent mail only).
    cc_edits: Vec<HeaderEdit>,
    history_note: Option<String>,
    hold_if_changed: bool,
    /// Templates and placeholders of the reply (`#template`, `{{ … }}`).
    filled: Option<templates::ReplyTemplates>,
    /// `#cc add` / `#cc remove` on an existing ticket.
    participants: Option<ChangeRequest>,
}

/// To and Cc as `#cc` leaves them: the people removed gone from both, the
/// people added at the end of Cc. Nothing when they already say so.
fn cc_header_edits(header: &HeaderFacts, add: &[String], remove: &[String]) -> Vec<HeaderEdit> {
    let keep = |list: &[(Option<String>, String)]| -> Vec<(Option<String>, String)> {
        list.iter()
            .filter(|(_, a)| !remove.contains(a))
            .cloned()
            .collect()
    };
    let to = keep(&header.to_list);
    let mut cc = keep(&header.cc_list);
    for who in add {
        if !to.iter().chain(cc.iter()).any(|(_, a)| a == who) {
            cc.push((None, who.clone()));
        }
    }
    let mut edits = Vec::new();
    if to != header.to_list {
        edits.push(HeaderEdit::addresses("To", &to));
    }
    if cc != header.cc_list {
        edits.push(HeaderEdit::addresses("Cc", &cc));
    }
    edits
}

/// Holds a colliding reply: the agent's mail, as they submitted it, goes
/// to their Held folder, a notice says what changed, the ticket's history
/// says it was held. Stored before the 250; nothing reaches the customer.
#[allow(clippy::too_many_arguments)]
async fn hold_reply(
    app: &App,
    agent: &LoginAgent,
    ticket: &Ticket,
    queue: &Queue,
    raw: &[u8],
    message_id: String,
    newer: &[Newer],
    now: DateTime<Utc>,
) -> Result<Submitted, SubmitError> {
    let body = format!(
        "Your reply to ticket #{n} (\"{subject}\") was NOT sent: the ticket changed after \
         the message you answered.\n\n\
         New since then:\n{what}\n\n\
         Your reply is in your Held folder. Read what is new, then either\n\
         - answer the newest message (your held reply leaves Held once you send), or\n\
         - send the held reply as it is: open it (Thunderbird: \"Edit as New Message\"), \
         write #send on its first line and send it.\n\
         Delete it from Held to discard it.\n",
        n = ticket.number,
        subject = ticket.subject,
        what = collision::describe(newer),
    );
    let notice = notice_mail(
        app,
        agent,
        ticket.number,
        queue,
        &format!(
            "[#{}] Your reply was held: the ticket changed",
            ticket.number
        ),
        &body,
    )?;
    let request = HoldRequest {
        agent_id: agent.id,
        actor: agent.email.clone(),
        ticket: ticket.number,
        message_id,
        raw: raw.to_vec(),
        notice,
        detail: collision::held_detail(&agent.email, newer),
        now,
    };
    let held = app.store.hold_reply(&request).await?;
    if held.again {
        tracing::info!(agent = %agent.email, ticket = ticket.number, "a held reply submitted again: held once");
    }
    Ok(Submitted {
        ticket: ticket.number,
        outcome: Outcome::CollisionHeld { newer: newer.len() },
        command_errors: Vec::new(),
        changed: Vec::new(),
        collision_warning: None,
        moved: None,
        knowledge: Vec::new(),
    })
}

/// `collision = "warn"`: the reply went out; a note in the ticket and a
/// notice to the agent say what they had not seen.
async fn warn_collision(
    app: &App,
    agent: &LoginAgent,
    number: i64,
    queue: &Queue,
    newer: &[Newer],
    now: DateTime<Utc>,
) -> Result<(), SubmitError> {
    let what = collision::describe(newer);
    let body = format!(
        "{} replied to #{number} after the ticket had changed since the message the reply \
         answers; the reply was sent (collision = \"warn\").\n\nNew before it:\n{what}\n",
        agent.email
    );
    let detail = format!(
        "reply of {} sent although the ticket changed after the message it answers: {}",
        agent.email,
        newer
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let note = SystemNote::compose(
        &app.config.hostname,
        number,
        app.own_ids.mint(number),
        "Reply sent after the ticket changed",
        &body,
        detail,
    )
    .map_err(|e| SubmitError::Store(StoreError::Corrupt(e)))?;
    let notice = notice_mail(
        app,
        agent,
        number,
        queue,
        &format!("[#{number}] Your reply was sent, but the ticket had changed"),
        &body,
    )?;
    app.store
        .collision_warning(number, &notice, &note, now)
        .await?;
    Ok(())
}

/// A short mail from the queue to the agent (their own mailbox), marked
/// automatic and with its ticket.
fn notice_mail(
    app: &App,
    agent: &LoginAgent,
    ticket: i64,
    queue: &Queue,
    subject: &str,
    body: &str,
) -> Result<OutgoingMail, SubmitError> {
    let message_id = app.own_ids.mint(ticket);
    let from_name = format!("{} (postdesk)", queue_display_name(&queue.name));
    let to = agent.email.to_lowercase();
    let mut raw = mail_builder::MessageBuilder::new()
        .from((from_name.clone(), queue.address.clone()))
        .to(to.clone())
        .subject(subject.to_string())
        .message_id(message_id.clone())
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .header(
            "X-Postdesk-Ticket",
            mail_builder::headers::raw::Raw::new(ticket.to_string()),
        )
        .text_body(body.to_string())
        .write_to_vec()
        .map_err(|e| SubmitError::Store(StoreError::Corrupt(e.to_string())))?;
    if !raw.ends_with(b"\r\n") {
        raw.extend_from_slice(b"\r\n");
    }
    Ok(OutgoingMail {
        message_id,
        mail_from: queue.address.clone(),
        rcpt_to: to,
        sender: queue.address.clone(),
        from_name: Some(from_name),
        subject: subject.to_string(),
        raw,
    })
}

/// The customer mail an agent forwarded: the first attached message
/// (message/rfc822, "forward as attachment"), else the header block of an
/// inline forward in the text. mail-parser reads the attachment and the
/// decoded text; a panic in it on malformed MIME costs nothing.
fn forwarded_original(raw: &[u8]) -> Option<ForwardedHeader> {
    std::panic::catch_unwind(|| {
        let message = MessageParser::default().parse(raw)?;
        let attached = message.parts.iter().find_map(|part| match &part.body {
            PartType::Message(inner) => Some(inner),
            _ => None,
        });
        if let Some(inner) = attached {
            let from = inner.from().and_then(Address::first)?;
            let addr = address::normalize(from.address.as_deref()?);
            address::split(&addr)?;
            return Some(ForwardedHeader {
                from: addr,
                from_name: from
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
                subject: inner.subject().map(str::to_string),
                message_id: inner
                    .message_id()
                    .map(message_id::normalize)
                    .filter(|id| message_id::is_plausible(id)),
            });
        }
        agent_mail::inline_forward(&message.body_text(0)?)
    })
    .ok()
    .flatten()
}

/// A queue's or an agent's address: postdesk's own, never a customer.
fn is_own_address(addr: &str, queues: &[Queue], agents: &[crate::store::Agent]) -> bool {
    let base = address::Recipient::parse(addr).map(|r| r.base);
    queues
        .iter()
        .any(|q| Some(&q.address) == base.as_ref() || q.address == addr)
        || agents.iter().any(|a| a.email.to_lowercase() == addr)
}

/// Tells the agent, in the ticket, that their words below the quote were
/// kept as a note and not sent.
async fn report_kept_below(
    app: &App,
    ticket: i64,
    agent: &LoginAgent,
    now: DateTime<Utc>,
) -> Result<(), SubmitError> {
    let body = format!(
        "{} sent a mail with nothing above the quoted message but mail commands (if any), \
         so nothing was sent to the customer; the commands were applied. The text written \
         below the quote is kept as the internal note before this one. To send it, write it \
         above the quoted message (below the commands), e.g. with Thunderbird's \
         \"start my reply above the quote\".\n",
        agent.email
    );
    let detail = format!(
        "text of {} below the quote kept as an internal note, not sent",
        agent.email
    );
    let id = app.own_ids.mint(ticket);
    let note = SystemNote::compose(
        &app.config.hostname,
        ticket,
        id,
        "Your text was not sent",
        &body,
        detail,
    )
    .map_err(|e| SubmitError::Store(StoreError::Corrupt(e)))?;
    app.store
        .add_system_note(ticket, now, EventKind::Note, &note)
        .await?;
    Ok(())
}

/// What a reply's placeholders say: its ticket's customer (or the new
/// ticket's), the agent, the queue it is sent as.
fn placeholder_context(
    agent: &LoginAgent,
    queue: &Queue,
    ticket: &Option<Ticket>,
    target: &ReplyTarget,
    forwarded: &Option<(ForwardedHeader, &Queue)>,
) -> crate::domain::templates::PlaceholderContext {
    use crate::domain::templates::{
        PlaceholderContext, PlaceholderPerson, PlaceholderQueue, PlaceholderTicket,
    };
    let (name, address, title) = match (ticket, target) {
        (Some(t), _) => (
            t.customer_name.clone(),
            t.customer_address.clone(),
            t.subject.clone(),
        ),
        (
            None,
            ReplyTarget::New {
                title,
                customer_name,
                customer_address,
                ..
            },
        ) => (
            customer_name.clone(),
            customer_address.clone(),
            title.clone(),
        ),
        (None, _) => match forwarded {
            Some((original, _)) => (
                original.from_name.clone(),
                original.from.clone(),
                original.subject.clone().unwrap_or_default(),
            ),
            None => (None, String::new(), String::new()),
        },
    };
    PlaceholderContext {
        customer: PlaceholderPerson {
            name: name.unwrap_or_else(|| address.clone()),
            address,
        },
        ticket: PlaceholderTicket {
            number: ticket.as_ref().map(|t| t.number).unwrap_or_default(),
            subject: title,
        },
        agent: PlaceholderPerson {
            name: agent.name.clone(),
            address: agent.email.clone(),
        },
        queue: PlaceholderQueue {
            name: queue.name.clone(),
            address: queue.address.clone(),
        },
    }
}

/// `[#12] Re: VPN drops` → `[#12] [note] Re: VPN drops`: a note says so in
/// the subject the agents' clients list.
fn note_subject(tagged: &str) -> String {
    if tagged.contains("[note]") {
        return tagged.to_string();
    }
    match tagged.find(']') {
        Some(end) if tagged.starts_with("[#") => {
            format!("{} [note]{}", &tagged[..=end], &tagged[end + 1..])
        }
        _ => format!("[note] {tagged}"),
    }
}

/// `Re: [#12] [note] Fwd: x` → `Re: [#12] Fwd: x`.
fn without_note_marker(subject: &str) -> String {
    subject
        .replace(" [note] ", " ")
        .replace("[note] ", "")
        .replace(" [note]", "")
}

fn from_queue<'q>(queues: &'q [Queue], from: &str) -> Option<&'q Queue> {
    queues.iter().find(|q| q.address == from)
}

fn subject_title(subject_text: &Option<String>) -> String {
    match subject::clean(subject_text.as_deref().unwrap_or_default()) {
        t if t.is_empty() => "(no subject)".to_string(),
        t => t,
    }
}

/// Finds the ticket a mail names: its plus-address recipient first (the
/// agent chose it), then its threading headers, then a `[#n]` tag; with
/// the number it named (another, when that ticket was merged into it).
async fn find_ticket(
    app: &App,
    plus_tickets: &[i64],
    header: &HeaderFacts,
    now: DateTime<Utc>,
) -> Result<Option<(Ticket, i64)>, StoreError> {
    let mut candidates: Vec<i64> = plus_tickets.to_vec();
    if let Some(by_reference) = app
        .store
        .ticket_by_references(&header.references, now, reopen_window(app))
        .await?
    {
        candidates.push(by_reference);
    }
    candidates.extend(subject::ticket_tags(
        header.subject.as_deref().unwrap_or_default(),
    ));
    for number in candidates {
        if let Some(ticket) = holding_ticket(app, number).await? {
            return Ok(Some((ticket, number)));
        }
    }
    Ok(None)
}

/// `[tickets] reopen_window_days`.
fn reopen_window(app: &App) -> chrono::Duration {
    chrono::Duration::days(i64::from(app.config.tickets.reopen_window_days))
}

/// The ticket holding ticket `number`'s mail: itself, or the one it was
/// merged into. None: no such ticket.
async fn holding_ticket(app: &App, number: i64) -> Result<Option<Ticket>, StoreError> {
    let Some(holder) = app.store.holding_ticket(number).await? else {
        return Ok(None);
    };
    match app.store.ticket(holder).await {
        Ok(ticket) => Ok(Some(ticket)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Turns the parsed commands into one ticket change, checking each
/// against what the agent may do. Any error leaves the ticket untouched.
fn resolve_commands(
    commands: &Commands,
    actor: &Actor,
    agents: &[crate::store::Agent],
    queues: &[Queue],
    target: CommandTarget<'_>,
) -> (TicketChange, Vec<String>, Option<merge::Redirect>) {
    let mut errors = commands.errors();
    let mut change = TicketChange::default();
    let mut redirect: Option<merge::Redirect> = None;
    // The queue the ticket will be in, for checking an assignee.
    let final_queue = commands
        .parsed()
        .filter_map(|(_, c)| match c {
            Command::Queue(name) => queues
                .iter()
                .find(|q| q.name.eq_ignore_ascii_case(name))
                .map(|q| q.name.clone()),
            _ => None,
        })
        .last()
        .unwrap_or_else(|| target.queue.to_string());
    // What the permission check is asked about a new owner. A new ticket
    // has no number yet; it is the agent's own in a queue of theirs, so no
    // refusal can name it.
    let may_own = |new_owner: Option<i64>, assignee: Option<&Assignee>| {
        permission::may_change(
            actor,
            Asked {
                number: target.number.unwrap_or_default(),
                queue: target.queue,
                ownership: target.ownership,
                new_queue: (!final_queue.eq_ignore_ascii_case(target.queue))
                    .then_some(final_queue.as_str()),
                new_owner: Some(new_owner),
                assignee,
            },
        )
    };
    for (line, command) in commands.parsed() {
        let fail = |why: String| format!("line {}: {}: {why}", line.line, line.text);
        match command {
            Command::Status(status) => change.status = Some(*status),
            Command::Priority(priority) => change.priority = Some(*priority),
            Command::Unassign => match may_own(None, None) {
                Ok(()) => change.owner = Some(None),
                Err(why) => errors.push(fail(why.to_string())),
            },
            Command::Hold => {}
            // Team work by mail (issue 20): `#send` is read by the
            // collision check; `#cc` changes who takes part.
            Command::Send => {}
            Command::CcAdd(who) => {
                change.remove_participants.retain(|p| p != who);
                if !change.add_participants.contains(who) {
                    change.add_participants.push(who.clone());
                }
            }
            Command::CcRemove(who) => {
                change.add_participants.retain(|p| p != who);
                if !change.remove_participants.contains(who) {
                    change.remove_participants.push(who.clone());
                }
            }
            // Inserted into the mail by submission (`templates`).
            Command::Template(_) => {}
            // Knowledge base: read by `knowledge::read_kb_commands`.
            Command::KbInsert(_) | Command::KbDraft => {}
            Command::Tag(tags) => {
                for tag in tags {
                    change.remove_tags.retain(|t| t != tag);
                    if !change.add_tags.contains(tag) {
                        change.add_tags.push(tag.clone());
                    }
                }
            }
            Command::Untag(tags) => {
                for tag in tags {
                    change.add_tags.retain(|t| t != tag);
                    if !change.remove_tags.contains(tag) {
                        change.remove_tags.push(tag.clone());
                    }
                }
            }
            Command::Queue(name) => match queues.iter().find(|q| q.name.eq_ignore_ascii_case(name))
            {
                None => {
                    let known: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
                    errors.push(fail(format!(
                        "no queue '{name}' (queues: {})",
                        known.join(", ")
                    )));
                }
                Some(queue) => match permission::may_use_queue(actor, &queue.name) {
                    Ok(()) => change.queue = Some(queue.name.clone()),
                    Err(why) => errors.push(fail(why.to_string())),
                },
            },
            // Issue 20: merge, split and time.
            Command::Merge(_) | Command::Split if target.number.is_none() => errors.push(fail(
                "acts on an existing ticket: reply to one of its messages or write to its plus-address"
                    .into(),
            )),
            Command::Merge(_) | Command::Split if redirect.is_some() => {
                errors.push(fail("one #merge or #split per mail".into()))
            }
            Command::Merge(into) => {
                redirect = Some(merge::Redirect::Merge {
                    into: *into,
                    line: format!("line {}: {}", line.line, line.text),
                })
            }
            Command::Split => {
                redirect = Some(merge::Redirect::Split {
                    line: format!("line {}: {}", line.line, line.text),
                })
            }
            Command::Time(minutes) => {
                let before = change.time.as_ref().map(|t| t.minutes).unwrap_or(0);
                change.time = Some(TimeSpent {
                    agent: actor.id,
                    email: actor.email.clone(),
                    minutes: before.saturating_add(*minutes),
                });
            }
            Command::Assign(who) => match find_agent(agents, actor, who) {
                Err(why) => errors.push(fail(why)),
                Ok(assignee) => match may_own(Some(assignee.id), Some(&assignee.as_assignee())) {
                    Ok(()) => change.owner = Some(Some(assignee.id)),
                    Err(why) => errors.push(fail(why.to_string())),
                },
            },
        }
    }
    if !errors.is_empty() {
        change = TicketChange::default();
        redirect = None;
    }
    (change, errors, redirect)
}

/// The ticket a mail's commands act on, as the permission check sees it.
#[derive(Debug, Clone, Copy)]
struct CommandTarget<'a> {
    /// None: the ticket the mail opens.
    number: Option<i64>,
    queue: &'a str,
    ownership: Ownership,
}

/// An agent by address, by the part before the @, or `me`.
fn find_agent<'a>(
    agents: &'a [crate::store::Agent],
    me: &Actor,
    who: &str,
) -> Result<&'a crate::store::Agent, String> {
    let who = who.to_lowercase();
    if who == "me" {
        return agents
            .iter()
            .find(|a| a.id == me.id)
            .ok_or_else(|| "you are no longer an agent".to_string());
    }
    // A removed agent keeps their row for the history, not their name.
    let agents = agents.iter().filter(|a| a.removed_at.is_none());
    if let Some(agent) = agents.clone().find(|a| a.email.to_lowercase() == who) {
        return Ok(agent);
    }
    let by_local: Vec<&crate::store::Agent> = agents
        .filter(|a| address::split(&a.email.to_lowercase()).is_some_and(|(local, _)| local == who))
        .collect();
    match by_local.as_slice() {
        [agent] => Ok(agent),
        [] => Err(format!("no agent '{who}'")),
        several => Err(format!(
            "'{who}' could be {}: write the whole address",
            several
                .iter()
                .map(|a| a.email.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// Tells the agent, in the ticket, why their commands did nothing.
async fn report_command_errors(
    app: &App,
    ticket: i64,
    agent: &LoginAgent,
    errors: &[String],
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<(), SubmitError> {
    let sent = match outcome {
        Outcome::Reply { .. } => {
            "Your reply was sent to the customer anyway (write #hold to keep a reply back when a command fails)."
        }
        Outcome::Held => {
            "Your reply was held and sent to nobody: it is in the ticket as a note. Fix the commands, templates or placeholders and send it again."
        }
        _ => "",
    };
    let body = format!(
        "{} wrote mail commands, templates or placeholders that did not work; the ticket is unchanged.\n\n{}\n\n{sent}\n",
        agent.email,
        errors.join("\n")
    );
    let detail = format!(
        "mail commands of {} not applied: {}",
        agent.email,
        errors.join("; ")
    );
    let id = app.own_ids.mint(ticket);
    let note = SystemNote::compose(
        &app.config.hostname,
        ticket,
        id,
        "Mail commands not applied",
        &body,
        detail,
    )
    .map_err(|e| SubmitError::Store(StoreError::Corrupt(e)))?;
    app.store
        .add_system_note(ticket, now, EventKind::CommandError, &note)
        .await?;
    Ok(())
}

/// What submission reads from the agent's header.
#[derive(Debug, Default)]
struct HeaderFacts {
    from: Option<String>,
    to: Vec<String>,
    /// Display names by address, for a new ticket's customer.
    names: std::collections::HashMap<String, String>,
    subject: Option<String>,
    message_id: Option<String>,
    /// The message this mail answers (`#split` splits it off).
    in_reply_to: Option<String>,
    has_date: bool,
    /// In-Reply-To, then References from the newest.
    references: Vec<String>,
    /// To and Cc as written (display name, address), for `#cc`.
    to_list: Vec<(Option<String>, String)>,
    cc_list: Vec<(Option<String>, String)>,
}

fn read_header(raw: &[u8]) -> HeaderFacts {
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse_headers(raw));
    let Ok(Some(message)) = parsed else {
        return HeaderFacts::default();
    };
    let mut facts = HeaderFacts {
        from: message
            .from()
            .and_then(Address::first)
            .and_then(|a| a.address.as_deref())
            .map(address::normalize),
        subject: message.subject().map(str::to_string),
        message_id: message
            .message_id()
            .map(message_id::normalize)
            .filter(|id| message_id::is_plausible(id)),
        has_date: message.date().is_some(),
        ..HeaderFacts::default()
    };
    for (is_cc, list) in [(false, message.to()), (true, message.cc())] {
        let Some(list) = list else { continue };
        for addr in list.iter() {
            if let Some(a) = addr.address.as_deref() {
                let a = address::normalize(a);
                let name = addr
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string);
                if let Some(name) = &name {
                    facts.names.insert(a.clone(), name.clone());
                }
                if is_cc {
                    facts.cc_list.push((name, a.clone()));
                } else {
                    facts.to_list.push((name, a.clone()));
                }
                facts.to.push(a);
            }
        }
    }
    for (name, value) in message.headers_raw() {
        if name.eq_ignore_ascii_case("In-Reply-To") {
            let ids = message_id::extract_ids(value);
            if facts.in_reply_to.is_none() {
                facts.in_reply_to = ids.first().cloned();
            }
            facts.references.extend(ids);
        }
    }
    for (name, value) in message.headers_raw() {
        if name.eq_ignore_ascii_case("References") {
            for id in message_id::extract_ids(value).into_iter().rev() {
                if !facts.references.contains(&id) {
                    facts.references.push(id);
                }
            }
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::permission::AgentRole;

    #[test]
    fn notes_are_marked_after_the_ticket_tag() {
        assert_eq!(note_subject("[#12] Re: VPN"), "[#12] [note] Re: VPN");
        assert_eq!(note_subject("Re: VPN"), "[note] Re: VPN");
        assert_eq!(note_subject("[#12] [note] x"), "[#12] [note] x");
        assert_eq!(
            without_note_marker("Re: [#12] [note] Fwd: Printer"),
            "Re: [#12] Fwd: Printer"
        );
        assert_eq!(without_note_marker("[note] x"), "x");
        assert_eq!(without_note_marker("Re: notes [#3]"), "Re: notes [#3]");
    }

    #[test]
    fn agents_are_found_by_address_local_part_or_me() {
        let agent = |id: i64, email: &str| crate::store::Agent {
            id,
            email: email.into(),
            name: email.into(),
            role: AgentRole::Agent,
            queues: vec!["support".into()],
            created_at: Utc::now(),
            disabled: false,
            removed_at: None,
            time_zone: None,
            password_hash: String::new(),
        };
        let agents = vec![
            agent(1, "alice@desk.test"),
            agent(2, "bob@desk.test"),
            agent(3, "bob@other.test"),
        ];
        let me = Actor {
            id: 1,
            email: "alice@desk.test".into(),
            role: AgentRole::Agent,
            queues: vec!["support".into()],
        };
        assert_eq!(find_agent(&agents, &me, "me").map(|a| a.id), Ok(1));
        assert_eq!(find_agent(&agents, &me, "Alice").map(|a| a.id), Ok(1));
        assert_eq!(
            find_agent(&agents, &me, "bob@other.test").map(|a| a.id),
            Ok(3)
        );
        assert!(find_agent(&agents, &me, "bob").is_err_and(|e| e.contains("could be")));
        assert!(find_agent(&agents, &me, "zed").is_err_and(|e| e.contains("no agent 'zed'")));
    }
}
