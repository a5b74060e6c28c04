//! `postdesk serve`: starts the server, prints how to reach it, and stops
//! it on Ctrl-C or SIGTERM.

use super::{CliError, CliResult, output, print_line};
use crate::config::{self, Config};
use crate::server::{self, RunningServer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Runs the server until it is asked to stop. Without a configuration
/// file, the defaults are written to DATA_DIR/postdesk.toml first.
pub async fn serve(config: Config, config_file: Option<PathBuf>) -> CliResult<()> {
    let config_file = match config_file {
        Some(path) => path,
        None => write_default_config(&config.data_dir)?,
    };
    let pid_file = config.data_dir.join(server::PID_FILE);
    let running = server::start(config).await?;
    // `postdesk rules reload` finds the server here.
    if let Err(err) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        tracing::warn!(%err, file = %pid_file.display(), "cannot write the pid file");
    }
    warn_if_readable_by_others(&running.app.config, &config_file);
    let welcome = Welcome::gather(&running, &config_file).await?;
    print_line(output::welcome(&welcome))?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

/// Data made before postdesk kept it private (or opened up since): named
/// at every start until it is fixed.
fn warn_if_readable_by_others(config: &Config, config_file: &Path) {
    let data = &config.data_dir;
    let mut paths = vec![
        data.clone(),
        data.join("postdesk.db"),
        data.join("postdesk.db-wal"),
        data.join("postdesk.db-shm"),
        crate::search::SearchIndex::directory(data),
        data.join("tls"),
        data.join("tls").join("key.pem"),
        config_file.to_path_buf(),
    ];
    if let Some(key) = &config.tls.key {
        paths.push(key.clone());
    }
    for path in crate::private_files::readable_by_others(paths.iter().map(PathBuf::as_path)) {
        tracing::warn!(
            path = %path.display(),
            "readable by other users: it holds messages, password hashes or secrets \
             (chmod go-rwx, or chmod 700 for a directory)"
        );
    }
}

/// First start without a file: leave the defaults where the admin will
/// look for them, and use that file from now on.
fn write_default_config(data_dir: &Path) -> CliResult<PathBuf> {
    let path = data_dir.join("postdesk.toml");
    std::fs::create_dir_all(data_dir).map_err(CliError::io(format!(
        "cannot create {}",
        data_dir.display()
    )))?;
    crate::private_files::write_private(&path, config::DEFAULT_FILE.as_bytes())
        .map_err(CliError::io(format!("cannot write {}", path.display())))?;
    Ok(path)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// What `serve` tells the admin once it listens.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    /// The database URL with its password hidden.
    pub database: String,
    pub backend: &'static str,
    pub smtp: SocketAddr,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    /// `/metrics` and `/healthz`, unless turned off.
    pub http: Option<SocketAddr>,
    /// Name and address of each queue.
    pub queues: Vec<(String, String)>,
    /// Host and port of the outbound relay.
    pub relay: Option<(String, u16)>,
    pub rules: Option<RulesSummary>,
    /// Login and password of an administrator this start created.
    pub bootstrap_admin: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct RulesSummary {
    pub file: PathBuf,
    pub rules: usize,
    pub policies: usize,
    pub escalations: usize,
}

impl Welcome {
    pub async fn gather(running: &RunningServer, config_file: &Path) -> CliResult<Welcome> {
        let app = &running.app;
        let rules = app.rules.current();
        Ok(Welcome {
            config_file: config_file.to_path_buf(),
            data_dir: app.config.data_dir.clone(),
            database: config::redact_password(&app.config.database_url()),
            backend: app.store.backend_name(),
            smtp: running.smtp_addr,
            imap: running.imap_addr,
            imaps: running.imaps_addr,
            submission: running.submission_addr,
            submissions: running.submissions_addr,
            http: running.http_addr,
            queues: app
                .store
                .queues()
                .await?
                .into_iter()
                .map(|q| (q.name, q.address))
                .collect(),
            relay: app
                .config
                .outbound
                .relay
                .as_ref()
                .map(|relay| (relay.host.clone(), relay.port)),
            rules: rules.source.as_ref().map(|file| RulesSummary {
                file: file.clone(),
                rules: rules.rules.len(),
                policies: rules.policies.len(),
                escalations: rules.escalations.len(),
            }),
            bootstrap_admin: running.bootstrap_admin.clone(),
        })
    }
}
