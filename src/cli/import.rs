//! `postdesk import mbox|maildir`: historical mail through the ingest
//! pipeline, with a progress bar.

use super::{CliResult, open_for_writing, output, print_out, progress_bar};
use crate::config::Config;
use crate::import::{self, Format};
use std::path::Path;

/// Imports into `queue` (name or address); `json`: a summary for scripts,
/// and no progress bar.
pub async fn import(
    config: Config,
    format: Format,
    path: &Path,
    queue: &str,
    json: bool,
) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let queue = app.store.queue_by_name(queue).await?;
    let mut bar = None;
    let summary = import::import(&app, format, path, &queue, |at| {
        let bar = bar.get_or_insert_with(|| progress_bar(!json, at.total, at.unit));
        bar.set_position(at.done);
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_out(json, &summary, || output::import_summary(&summary))
}
