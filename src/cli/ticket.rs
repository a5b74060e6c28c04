//! `postdesk ticket list|show|export` (read-only), `ticket set` (the
//! one ticket-change operation, as the operator: `--as AGENT` applies the
//! agent's permissions) and `ticket merge|split` (mail moved between
//! tickets, the same operations as `#merge` and `#split`).

use super::{
    CliError, CliResult, Operator, open_for_writing, open_read_only, output, print_line, print_out,
};
use crate::config::Config;
use crate::domain::change::{ChangeRequest, TicketChange};
use crate::store::{
    Event, MergeRequest, MessageRecord, Participant, SplitRequest, Store, StoreError, Ticket,
    TicketFilter,
};
use serde::Serialize;
use std::io::Write;

pub async fn list(
    config: &Config,
    operator: &Operator,
    mut filter: TicketFilter,
    json: bool,
) -> CliResult<()> {
    let store = open_read_only(config).await?;
    filter.within = operator.queues().map(<[String]>::to_vec);
    let tickets = store.tickets(&filter).await?;
    print_out(json, &tickets, || output::ticket_table(&tickets))
}

/// A ticket with everything `ticket show` prints.
#[derive(Debug, Serialize)]
pub struct TicketView {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub messages: Vec<MessageRecord>,
    pub events: Vec<Event>,
    /// Everyone taking part (customer side and colleagues).
    pub participants: Vec<Participant>,
    /// Replies held by a collision, not sent yet: (agent, why).
    pub held_replies: Vec<HeldView>,
    /// Minutes spent on the ticket (`#time`), in all.
    pub time_spent_minutes: i64,
    /// The same per agent, most first.
    #[serde(rename = "time_spent")]
    pub time: Vec<AgentTime>,
}

#[derive(Debug, Serialize)]
pub struct HeldView {
    pub agent: String,
    pub reason: String,
}

/// One agent's time on a ticket.
#[derive(Debug, Serialize)]
pub struct AgentTime {
    pub agent: String,
    pub minutes: i64,
}

impl TicketView {
    pub async fn load(store: &Store, number: i64) -> CliResult<TicketView, StoreError> {
        let time: Vec<AgentTime> = store
            .time_spent(number)
            .await?
            .into_iter()
            .map(|(agent, minutes)| AgentTime { agent, minutes })
            .collect();
        Ok(TicketView {
            ticket: store.ticket(number).await?,
            messages: store.ticket_messages(number).await?,
            events: store.ticket_events(number).await?,
            participants: store.ticket_participant_sides(number).await?,
            held_replies: store
                .held_replies(number)
                .await?
                .into_iter()
                .map(|(_, agent, reason)| HeldView { agent, reason })
                .collect(),
            time_spent_minutes: time.iter().map(|t| t.minutes).sum(),
            time,
        })
    }
}

pub async fn show(config: &Config, operator: &Operator, number: i64, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    operator.see_ticket(number, &store.ticket(number).await?.queue)?;
    let view = TicketView::load(&store, number).await?;
    print_out(json, &view, || output::ticket_view(&view))
}

/// Writes a ticket's messages to standard output as an mboxrd file, one
/// message at a time.
pub async fn export(config: &Config, operator: &Operator, number: i64) -> CliResult<()> {
    let store = open_read_only(config).await?;
    operator.see_ticket(number, &store.ticket(number).await?.queue)?;
    let mut out = std::io::stdout().lock();
    for message in store.ticket_messages(number).await? {
        let raw = store.raw_message(message.id).await?;
        let entry = output::mbox_entry(&message.envelope_from, message.received_at, &raw);
        out.write_all(&entry).map_err(CliError::io("export"))?;
    }
    out.flush().map_err(CliError::io("export"))
}

/// What `ticket set` asks: a [`TicketChange`] whose owner is still an
/// address (`nobody` for none).
pub struct TicketEdit {
    pub change: TicketChange,
    pub owner: Option<String>,
}

/// `postdesk ticket set NUMBER …`: changes a ticket as the mail commands
/// and IMAP moves do, recorded in its history with the operator's name.
pub async fn set(
    config: Config,
    operator: &Operator,
    number: i64,
    edit: TicketEdit,
) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let mut change = edit.change;
    if let Some(owner) = edit.owner {
        change.owner = Some(if owner.eq_ignore_ascii_case("nobody") {
            None
        } else {
            let wanted = crate::domain::address::normalize(&owner);
            let agents = app.store.agents().await?;
            let agent = agents
                .iter()
                .find(|a| a.email.eq_ignore_ascii_case(&wanted) && a.removed_at.is_none())
                .ok_or_else(|| CliError::Invalid(format!("no agent {wanted}")))?;
            Some(agent.id)
        });
    }
    if let Some(queue) = &change.queue {
        change.queue = Some(app.store.queue_by_name(queue).await?.name);
    }
    if change.is_empty() {
        return Err(CliError::Invalid(
            "nothing to change: give --status, --priority, --owner, --queue, --tag or --untag"
                .into(),
        ));
    }
    let now = chrono::Utc::now();
    let request = match &operator.agent {
        Some(agent) => {
            // The ticket's queue is not named to an agent outside it.
            let ticket = app.store.ticket(number).await?;
            operator.see_ticket(number, &ticket.queue)?;
            ChangeRequest::asked(change, "postdesk ticket set", agent, now)
        }
        None => ChangeRequest::administrative(
            change,
            "postdesk ticket set",
            super::audit::operator(),
            now,
        ),
    };
    let done = app
        .store
        .change_ticket(number, &request)
        .await
        .map_err(|err| match err {
            StoreError::Denied(why) => CliError::Denied(why),
            other => other.into(),
        })?;
    if done.is_empty() {
        print_line(format_args!("ticket #{number}: nothing changed"))
    } else {
        print_line(format_args!("ticket #{number}: {}", done.join(", ")))
    }
}

/// A refusal of the store as the command line reports it (an agent's
/// permission as such).
fn refused(err: StoreError) -> CliError {
    match err {
        StoreError::Denied(why) => CliError::Denied(why),
        StoreError::Conflict(why) => CliError::Invalid(why),
        other => other.into(),
    }
}

/// `postdesk ticket merge N --into M`: ticket N's messages, participants,
/// tags and history move into M (as `#merge M` in a mail on N).
pub async fn merge(
    config: Config,
    operator: &Operator,
    number: i64,
    into: i64,
    json: bool,
) -> CliResult<()> {
    let reopen_window = chrono::Duration::days(i64::from(config.tickets.reopen_window_days));
    let app = open_for_writing(config).await?;
    let request = MergeRequest {
        source: number,
        into,
        actor: match &operator.agent {
            Some(agent) => agent.email.clone(),
            None => super::audit::operator(),
        },
        agent: operator.agent.clone(),
        at: chrono::Utc::now(),
        reopen_window,
    };
    let done = app.store.merge_tickets(&request).await.map_err(refused)?;
    print_out(json, &done, || output::merged(&done))
}

/// What `--message` names: a message's number (the ID column of `ticket
/// show`), or its Message-ID.
#[derive(Debug, Clone)]
pub enum MessageChoice {
    Row(i64),
    MessageId(String),
}

impl std::str::FromStr for MessageChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<MessageChoice, String> {
        let s = s.trim();
        if let Ok(id) = s.parse::<i64>() {
            return Ok(MessageChoice::Row(id));
        }
        let id = crate::domain::message_id::normalize(s);
        if id.contains('@') {
            Ok(MessageChoice::MessageId(id))
        } else {
            Err(format!(
                "'{s}' is neither a message number (the ID column of `ticket show`) nor a Message-ID"
            ))
        }
    }
}

/// `postdesk ticket split N --message ID`: that customer message and its
/// sender's later ones move into a new ticket linked to N (as `#split` in
/// a reply to it).
pub async fn split(
    config: Config,
    operator: &Operator,
    number: i64,
    message: MessageChoice,
    json: bool,
) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let message = match message {
        MessageChoice::Row(id) => id,
        MessageChoice::MessageId(id) => app
            .store
            .message_in_ticket(number, &id)
            .await?
            .ok_or_else(|| CliError::Invalid(format!("no message <{id}> in ticket #{number}")))?,
    };
    let request = SplitRequest {
        source: number,
        message,
        actor: match &operator.agent {
            Some(agent) => agent.email.clone(),
            None => super::audit::operator(),
        },
        agent: operator.agent.clone(),
        at: chrono::Utc::now(),
    };
    let done = app.store.split_ticket(&request).await.map_err(refused)?;
    print_out(json, &done, || output::split(&done))
}
