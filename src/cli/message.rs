//! `postdesk message unfiled|raw`: read-only.

use super::{CliResult, open_read_only, output, print_out, write_stdout};
use crate::config::Config;

pub async fn unfiled(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let messages = store.unfiled_messages().await?;
    print_out(json, &messages, || output::message_table(&messages))
}

/// Writes a stored message's bytes, exactly as received.
pub async fn raw(config: &Config, id: i64) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let raw = store.raw_message(id).await?;
    write_stdout(&raw)
}
