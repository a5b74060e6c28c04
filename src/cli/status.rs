//! `postdesk status`: what an administrator checks first. Whether a server
//! runs and where it listens, the queues, the outbound backlog, the search
//! index's lag, the free space against the floor below which new mail is
//! refused, and the database's size. Read-only.

use super::{CliResult, open_read_only, output, print_out};
use crate::config::Config;
use crate::disk::DiskGuard;
use crate::server::PID_FILE;
use crate::store::OutboundStatus;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    /// The pid of the running server (from its pid file), if it is alive.
    pub server_pid: Option<u32>,
    pub backend: &'static str,
    pub listeners: Vec<(String, String)>,
    /// Name and address of each queue.
    pub queues: Vec<(String, String)>,
    /// Deliveries per outbound status (queued, sending, failed, …).
    pub outbound: BTreeMap<String, usize>,
    /// Messages not yet searchable (None: no index yet).
    pub index_lag: Option<i64>,
    pub disk_free_bytes: Option<u64>,
    pub disk_floor_bytes: u64,
    /// Why new mail is refused now, if it is.
    pub refusing_mail: Option<String>,
    pub database_bytes: i64,
}

pub async fn status(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let mut outbound = BTreeMap::new();
    for item in store.outbound(None).await? {
        if matches!(item.status, OutboundStatus::Sent) {
            continue;
        }
        *outbound.entry(item.status.to_string()).or_insert(0) += 1;
    }
    let index_lag = match super::search::index_status(&config.data_dir, &store).await {
        Ok(index) => Some(index.lag_messages),
        Err(err) => {
            tracing::debug!(%err, "no index status");
            None
        }
    };
    let disk = DiskGuard::new(&config.data_dir, config.storage.min_free_mb).status();
    let status = ServerStatus {
        server_pid: running_server(config),
        backend: store.backend_name(),
        listeners: vec![
            ("smtp".into(), config.smtp.listen.to_string()),
            ("submission".into(), config.submission.listen.to_string()),
            (
                "submissions".into(),
                config.submission.tls_listen.to_string(),
            ),
            ("imap".into(), config.imap.listen.to_string()),
            ("imaps".into(), config.imap.tls_listen.to_string()),
            (
                "http".into(),
                config
                    .http
                    .listen
                    .map_or_else(|| "off".to_string(), |a| a.to_string()),
            ),
        ],
        queues: store
            .queues()
            .await?
            .into_iter()
            .map(|q| (q.name, q.address))
            .collect(),
        outbound,
        index_lag,
        disk_free_bytes: disk.available,
        disk_floor_bytes: disk.floor,
        refusing_mail: disk.refusal.map(|r| r.to_string()),
        database_bytes: store.database_size().await?,
    };
    store.close().await;
    print_out(json, &status, || output::status(&status))
}

/// The pid in the server's pid file, when that process is alive.
fn running_server(config: &Config) -> Option<u32> {
    let text = std::fs::read_to_string(config.data_dir.join(PID_FILE)).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}
