//! `postdesk import`: historical mail from an mbox file or a Maildir, through
//! the same pipeline as SMTP (no acknowledgements, original dates kept,
//! idempotent by Message-ID). A message that cannot be read or stored is
//! reported and skipped; the import goes on.

use crate::App;
use crate::ingest::{self, Envelope, Mode};
use crate::store::Queue;
use chrono::Utc;
use serde::Serialize;
use std::io::BufReader;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mbox,
    Maildir,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportSummary {
    /// Messages read from the source.
    pub read: usize,
    /// Newly stored.
    pub stored: usize,
    /// Already in the store (same Message-ID and sender).
    pub duplicates: usize,
    /// New tickets opened.
    pub tickets_created: usize,
    /// Stored with problems (malformed, no Message-ID…).
    pub flagged: usize,
    /// Position (1-based) and reason of each message that was skipped.
    pub skipped: Vec<(usize, String)>,
}

/// How far an import has come, for a progress display: `done` of `total`
/// `unit`s (bytes of an mbox file, files of a Maildir).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    pub done: u64,
    pub total: u64,
    pub unit: &'static str,
}

/// Imports every message of `path` into `queue`; `progress` hears how far
/// it has come, first with nothing done, then after each message.
pub async fn import(
    app: &App,
    format: Format,
    path: &Path,
    queue: &Queue,
    mut progress: impl FnMut(ImportProgress),
) -> Result<ImportSummary, ImportError> {
    let open_error = |source| ImportError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut summary = ImportSummary::default();
    match format {
        Format::Mbox => {
            let file = std::fs::File::open(path).map_err(open_error)?;
            let mut at = ImportProgress {
                done: 0,
                total: file.metadata().map(|m| m.len()).unwrap_or(0),
                unit: "bytes",
            };
            progress(at);
            let messages = mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(file));
            for (index, message) in messages.enumerate() {
                match message {
                    Ok(message) => {
                        let from = message.from().to_string();
                        let contents = message.unwrap_contents();
                        at.done += contents.len() as u64;
                        one(app, queue, &from, contents, index + 1, &mut summary).await;
                        progress(at);
                    }
                    Err(err) => {
                        summary.read += 1;
                        summary
                            .skipped
                            .push((index + 1, format!("unreadable: {err}")));
                    }
                }
            }
        }
        Format::Maildir => {
            let mut entries: Vec<(u64, PathBuf)> = Vec::new();
            let messages =
                mail_parser::mailbox::maildir::MessageIterator::new(path).map_err(open_error)?;
            let mut unreadable = Vec::new();
            for message in messages {
                match message {
                    Ok(message) => {
                        entries.push((message.internal_date(), message.path().to_path_buf()))
                    }
                    Err(err) => unreadable.push(err.to_string()),
                }
            }
            // Oldest first, so that threads build in the order they happened.
            entries.sort();
            let mut at = ImportProgress {
                done: 0,
                total: entries.len() as u64,
                unit: "messages",
            };
            progress(at);
            for (index, (_, file)) in entries.iter().enumerate() {
                match std::fs::read(file) {
                    Ok(contents) => one(app, queue, "", contents, index + 1, &mut summary).await,
                    Err(err) => {
                        summary.read += 1;
                        summary
                            .skipped
                            .push((index + 1, format!("{}: {err}", file.display())));
                    }
                }
                at.done += 1;
                progress(at);
            }
            for err in unreadable {
                summary.read += 1;
                summary.skipped.push((0, format!("unreadable: {err}")));
            }
        }
    }
    Ok(summary)
}

async fn one(
    app: &App,
    queue: &Queue,
    envelope_from: &str,
    contents: Vec<u8>,
    position: usize,
    summary: &mut ImportSummary,
) {
    summary.read += 1;
    let envelope = Envelope {
        mail_from: envelope_from.to_string(),
        rcpt_to: vec![queue.address.clone()],
        helo: None,
        remote_addr: None,
        received_at: Utc::now(),
    };
    let mode = Mode::Import {
        queue: queue.clone(),
    };
    match ingest::ingest(app, &envelope, contents, mode).await {
        Ok(report) if report.duplicate => summary.duplicates += 1,
        Ok(report) => {
            summary.stored += 1;
            summary.tickets_created += usize::from(report.created);
            summary.flagged += usize::from(!report.problems.is_empty());
        }
        Err(err) => {
            tracing::warn!(position, %err, "import: message skipped");
            summary.skipped.push((position, err.to_string()));
        }
    }
}
