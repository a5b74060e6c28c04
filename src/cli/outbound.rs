//! `postdesk outbound list|retry|cancel`.

use super::{CliResult, open_for_writing, open_read_only, output, print_line, print_out};
use crate::config::Config;
use crate::store::OutboundStatus;

/// Read-only.
pub async fn list(config: &Config, status: Option<OutboundStatus>, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let items = store.outbound(status).await?;
    print_out(json, &items, || {
        output::outbound_table(&items, config.outbound.relay.is_some())
    })
}

pub async fn retry(config: Config, ids: &[i64]) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    for &id in ids {
        let item = app
            .store
            .outbound_retry(id, "cli", chrono::Utc::now())
            .await?;
        print_line(format_args!(
            "outbound #{id} to {} queued again",
            item.rcpt_to
        ))?;
    }
    if app.config.outbound.relay.is_none() {
        print_line("(no [outbound] relay is configured: it waits for one)")?;
    }
    Ok(())
}

pub async fn cancel(config: Config, ids: &[i64]) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    for &id in ids {
        let item = app
            .store
            .outbound_cancel(id, "cli", chrono::Utc::now())
            .await?;
        print_line(format_args!("outbound #{id} to {} cancelled", item.rcpt_to))?;
    }
    Ok(())
}
