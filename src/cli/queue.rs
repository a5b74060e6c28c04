//! `postdesk queue add|list`.

use super::{CliError, CliResult, open_for_writing, open_read_only, output, print_line, print_out};
use crate::config::{self, Config};

/// Adds a queue, or changes the address of an existing one.
pub async fn add(config: Config, name: &str, address: &str) -> CliResult<()> {
    config::validate_queue_name(name).map_err(CliError::Invalid)?;
    let address = config::validate_address(address).map_err(CliError::Invalid)?;
    let app = open_for_writing(config).await?;
    let queue = app.store.upsert_queue(name, &address).await?;
    super::audit::record(
        &app.store,
        "queue add",
        &format!("{} <{}>", queue.name, queue.address),
    )
    .await?;
    print_line(format_args!("queue {} <{}>", queue.name, queue.address))
}

/// Read-only: the queues in the database (not the configured ones: those
/// are created when the server starts or `postdesk migrate` runs).
pub async fn list(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let queues = store.queues().await?;
    print_out(json, &queues, || output::queue_table(&queues))
}
