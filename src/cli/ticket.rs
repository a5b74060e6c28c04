//! `postdesk ticket list|show|export`: read-only.

use super::{CliError, CliResult, open_read_only, output, print_out};
use crate::config::Config;
use crate::store::{Event, MessageRecord, Store, StoreError, Ticket, TicketFilter};
use serde::Serialize;
use std::io::Write;

pub async fn list(config: &Config, filter: TicketFilter, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
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
}

impl TicketView {
    pub async fn load(store: &Store, number: i64) -> CliResult<TicketView, StoreError> {
        Ok(TicketView {
            ticket: store.ticket(number).await?,
            messages: store.ticket_messages(number).await?,
            events: store.ticket_events(number).await?,
        })
    }
}

pub async fn show(config: &Config, number: i64, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let view = TicketView::load(&store, number).await?;
    print_out(json, &view, || output::ticket_view(&view))
}

/// Writes a ticket's messages to standard output as an mboxrd file, one
/// message at a time.
pub async fn export(config: &Config, number: i64) -> CliResult<()> {
    let store = open_read_only(config).await?;
    store.ticket(number).await?;
    let mut out = std::io::stdout().lock();
    for message in store.ticket_messages(number).await? {
        let raw = store.raw_message(message.id).await?;
        let entry = output::mbox_entry(&message.envelope_from, message.received_at, &raw);
        out.write_all(&entry).map_err(CliError::io("export"))?;
    }
    out.flush().map_err(CliError::io("export"))
}
