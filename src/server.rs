//! `postdesk serve`: opens the store, starts the listeners and workers, and
//! stops them on request.

use crate::config::Config;
use crate::domain::permission::AgentRole;
use crate::net::{Shutdown, ShutdownTrigger};
use crate::search::{SearchIndex, indexer};
use crate::{App, AppError, imap, outbound, passwords, smtp, tls};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The file in the data directory that holds a running server's process id.
pub const PID_FILE: &str = "postdesk.pid";

/// A started server: where it listens, and how to stop it.
pub struct RunningServer {
    pub app: Arc<App>,
    pub smtp_addr: SocketAddr,
    /// IMAP with STARTTLS, and IMAP over implicit TLS.
    pub imap_addr: SocketAddr,
    pub imaps_addr: SocketAddr,
    /// SMTP submission with STARTTLS, and over implicit TLS.
    pub submission_addr: SocketAddr,
    pub submissions_addr: SocketAddr,
    /// The operations listener (`/metrics`, `/healthz`), unless turned off.
    pub http_addr: Option<SocketAddr>,
    /// Credentials of the bootstrap admin when this start created it.
    pub bootstrap_admin: Option<(String, String)>,
    shutdown: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, stops the workers, and closes the store.
    pub async fn shutdown(self) {
        self.shutdown.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
        self.app.store.close().await;
    }
}

/// Starts postdesk. Listener addresses with port 0 get an ephemeral port
/// (see the returned addresses), which is how the tests run it.
pub async fn start(config: Config) -> Result<RunningServer, AppError> {
    tls::install_crypto_provider();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| AppError::Io {
        context: format!("cannot create data directory {}", config.data_dir.display()),
        source,
    })?;
    let tls_config = tls::server_config(&config)?;
    let dkim = crate::dkim::Dkim::load(&config.outbound)?.map(Arc::new);
    // A server does not start on a rules file with mistakes (a CLI
    // command still runs, without rules).
    let rules = crate::rules::RulesHandle::load(config.rules_path())?;
    let app = App::open_with_rules(config, rules).await?;
    let bootstrap_admin = bootstrap_admin(&app).await?;

    let shutdown = ShutdownTrigger::new();
    let listener = bind(app.config.smtp.listen).await?;
    let smtp_addr = listener.local_addr().map_err(|source| AppError::Io {
        context: "smtp listener".into(),
        source,
    })?;
    let limits = smtp::SmtpLimits::from_config(&app.config.smtp);
    let imap_listener = bind(app.config.imap.listen).await?;
    let imaps_listener = bind(app.config.imap.tls_listen).await?;
    let local = |l: &TcpListener, what: &str| {
        l.local_addr().map_err(|source| AppError::Io {
            context: format!("{what} listener"),
            source,
        })
    };
    let imap_addr = local(&imap_listener, "imap")?;
    let imaps_addr = local(&imaps_listener, "imaps")?;
    let submission_listener = bind(app.config.submission.listen).await?;
    let submissions_listener = bind(app.config.submission.tls_listen).await?;
    let submission_addr = local(&submission_listener, "submission")?;
    let submissions_addr = local(&submissions_listener, "submission (TLS)")?;
    let http_listener = match app.config.http.listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let http_addr = match &http_listener {
        Some(l) => Some(local(l, "http")?),
        None => None,
    };
    // The recorder is in place before the first message is counted.
    let _ = crate::telemetry::handle();
    let acceptor = TlsAcceptor::from(tls_config);
    let imap_limits = Arc::new(imap::ImapLimits::from_config(&app.config.imap));
    let imap_agent_slots = Arc::new(imap::AgentSlots::default());
    let index = open_search_index(&app.config.data_dir)?;
    for old in SearchIndex::remove_older_versions(&app.config.data_dir) {
        tracing::info!(path = %old.display(),
            "removed the search index of an older version: the index is rebuilt from the store \
             (until it has caught up, IMAP SEARCH reads the messages it lacks)");
    }
    let _ = app.search.set(index.clone());
    let mut tasks = vec![
        tokio::spawn(imap::serve(
            app.clone(),
            imap_listener,
            acceptor.clone(),
            false,
            imap_limits.clone(),
            imap_agent_slots.clone(),
            shutdown.subscribe(),
        )),
        tokio::spawn(imap::serve(
            app.clone(),
            imaps_listener,
            acceptor.clone(),
            true,
            imap_limits,
            imap_agent_slots,
            shutdown.subscribe(),
        )),
        tokio::spawn(watch_sessions(app.clone(), shutdown.subscribe())),
        tokio::spawn(outbound::run(app.clone(), dkim, shutdown.subscribe())),
    ];
    // Other processes' changes: on PostgreSQL every node hears them from
    // the database (LISTEN, in place before the server counts as
    // started); on SQLite the command line's are looked for.
    match app.store.change_listener().await? {
        Some(listener) => {
            let mut stopping = shutdown.subscribe();
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = listener.run() => {}
                    _ = stopping.stopped() => {}
                }
            }));
        }
        None => tasks.push(tokio::spawn(imap::watch_external_changes(
            app.clone(),
            shutdown.subscribe(),
        ))),
    }
    // Customers' mail, and agents' with STARTTLS and over implicit TLS.
    for (role, listener, implicit_tls) in [
        (smtp::Role::Inbound, listener, false),
        (smtp::Role::Submission, submission_listener, false),
        (smtp::Role::Submission, submissions_listener, true),
    ] {
        tasks.push(tokio::spawn(smtp::serve(
            app.clone(),
            role,
            listener,
            Some(acceptor.clone()),
            implicit_tls,
            limits.clone(),
            shutdown.subscribe(),
        )));
    }
    tasks.push(tokio::spawn(crate::rules::scheduler::run(
        app.scheduler(),
        shutdown.subscribe(),
    )));
    // The weekly report mail (returns at once when none is configured).
    tasks.push(tokio::spawn(crate::reports::mail::run(
        app.clone(),
        shutdown.subscribe(),
    )));
    tasks.push(tokio::spawn(reload_on_sighup(
        app.clone(),
        shutdown.subscribe(),
    )));
    tasks.push(tokio::spawn(indexer::run(
        app.store.clone(),
        app.config.clone(),
        index,
        shutdown.subscribe(),
    )));
    tasks.push(tokio::spawn(crate::ingest::satisfaction::run(
        app.clone(),
        shutdown.subscribe(),
    )));
    tasks.push(tokio::spawn(crate::http::refresh_gauges(
        app.clone(),
        shutdown.subscribe(),
    )));
    // Last, so that `/healthz` answers only once every listener is up.
    if let Some(listener) = http_listener {
        tasks.push(tokio::spawn(crate::http::serve(
            app.clone(),
            listener,
            shutdown.subscribe(),
        )));
    }
    Ok(RunningServer {
        app,
        smtp_addr,
        imap_addr,
        imaps_addr,
        submission_addr,
        submissions_addr,
        http_addr,
        bootstrap_admin,
        shutdown,
        tasks,
    })
}

/// SIGHUP reloads rules.toml (as `postdesk rules reload` asks).
async fn reload_on_sighup(app: Arc<App>, mut shutdown: Shutdown) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; rules reload needs a restart");
            return;
        };
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    // The outcome is logged inside.
                    let _ = app.reload_rules().await;
                }
                _ = shutdown.stopped() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (app, shutdown.stopped().await);
    }
}

/// Opens a listener; the error names the address.
async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    crate::net::bind(addr).await.map_err(|err| AppError::Io {
        context: format!("cannot listen on {}", err.addr),
        source: err.source,
    })
}

/// Opens the search index; one that cannot be read (a disk that filled
/// up, a crash inside tantivy) is moved aside and rebuilt from the store,
/// which holds everything the index is made of.
fn open_search_index(data_dir: &std::path::Path) -> Result<Arc<SearchIndex>, AppError> {
    let dir = SearchIndex::directory(data_dir);
    match SearchIndex::open(&dir) {
        Ok(index) => Ok(index),
        Err(err) => {
            let aside = dir.with_extension(format!("broken-{}", chrono::Utc::now().timestamp()));
            tracing::error!(%err, aside = %aside.display(),
                "the search index cannot be read: moving it aside and rebuilding it from the store");
            std::fs::rename(&dir, &aside).map_err(|source| AppError::Io {
                context: format!("cannot move {} aside", dir.display()),
                source,
            })?;
            Ok(SearchIndex::open(&dir)?)
        }
    }
}

/// On a store without agents, creates `admin@HOSTNAME` with a generated
/// password (returned once, to be printed).
async fn bootstrap_admin(app: &App) -> Result<Option<(String, String)>, AppError> {
    if app.store.agent_count().await? > 0 {
        return Ok(None);
    }
    let email = format!("admin@{}", app.config.hostname.to_lowercase());
    let password = passwords::generate();
    let hash = passwords::hash(&password).map_err(|e| AppError::Io {
        context: "bootstrap admin".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let queues = app.store.queues().await?;
    match app
        .store
        .add_agent(&email, "Administrator", &hash, AgentRole::Admin, &queues)
        .await
    {
        Ok(_) => Ok(Some((email, password))),
        // Another node created it first.
        Err(crate::store::StoreError::Conflict(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Keeps the agents' session epochs current (every second, from the
/// store, so changes made by the CLI or on another node arrive too).
async fn watch_sessions(app: Arc<App>, mut shutdown: Shutdown) {
    loop {
        if let Err(err) = app.refresh_sessions().await {
            tracing::warn!(%err, "agent sessions watch");
        }
        tokio::select! {
            _ = shutdown.stopped() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
