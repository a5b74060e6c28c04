//! The IMAP view (DESIGN.md §4): agents' mail clients see tickets as folders.
//!
//! imap-codec parses commands (its `Fragmentizer` frames lines and literals
//! before parsing, so a malformed command never desynchronizes the stream);
//! responses are written by hand in [`response`], because most of their
//! bytes are message data served byte-exact.
//!
//! One file per group of commands, after Stalwart's layout: [`session`]
//! runs a connection, the others answer commands.

mod append;
mod copy_move;
pub(crate) mod encode;
mod extended;
mod fetch;
mod mailboxes;
mod response;
mod search;
mod selected;
mod session;
mod store_flags;

use crate::App;
use crate::config::ImapConfig;
use crate::smtp::Stream;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// Protocol limits (from `[imap]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_agent: usize,
    pub max_line_length: usize,
    pub max_literal_size: usize,
    pub idle_timeout: Duration,
    /// Before login, a client gets less patience than the RFC's 30 minutes.
    pub login_timeout: Duration,
    pub plaintext_auth_on_loopback: bool,
    pub closed_window: chrono::Duration,
}

impl Limits {
    pub fn from_config(config: &ImapConfig) -> Limits {
        Limits {
            max_connections: config.max_connections.max(1),
            max_connections_per_agent: config.max_connections_per_agent.max(1),
            max_line_length: config.max_line_length.max(1024),
            max_literal_size: config.max_literal_size,
            idle_timeout: Duration::from_secs(config.idle_timeout.max(60)),
            login_timeout: Duration::from_secs(120),
            plaintext_auth_on_loopback: config.plaintext_auth_on_loopback,
            closed_window: chrono::Duration::days(i64::from(config.closed_days)),
        }
    }
}

/// State shared by every session of a server: connections per agent.
#[derive(Default)]
pub struct Shared {
    per_agent: Mutex<HashMap<i64, usize>>,
}

impl Shared {
    /// Counts a session of the agent; false when the agent has `max` already.
    pub fn enter(&self, agent: i64, max: usize) -> bool {
        let Ok(mut map) = self.per_agent.lock() else {
            return false;
        };
        let count = map.entry(agent).or_insert(0);
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    pub fn leave(&self, agent: i64) {
        if let Ok(mut map) = self.per_agent.lock()
            && let Some(count) = map.get_mut(&agent)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&agent);
            }
        }
    }
}

/// Serves one listener until `shutdown`. `implicit_tls`: the connection
/// starts with the TLS handshake (port 993 style).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: TlsAcceptor,
    implicit_tls: bool,
    limits: Arc<Limits>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusal = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
    while let Some(crate::net::Accepted {
        socket,
        peer,
        permit,
    }) = crate::net::accept(&listener, &slots, &mut shutdown, "imap", refusal).await
    {
        let app = app.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        let shared = shared.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            let stream: Box<dyn Stream + Sync> = if implicit_tls {
                match tokio::time::timeout(limits.login_timeout, tls.accept(socket)).await {
                    Ok(Ok(stream)) => Box::new(stream),
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, %err, "imaps handshake failed");
                        return;
                    }
                    Err(_) => return,
                }
            } else {
                Box::new(socket)
            };
            let session = session::Session::new(
                app,
                peer,
                stream,
                Some(tls),
                implicit_tls,
                limits,
                shared,
                stopping,
            );
            if let Err(err) = session.run().await {
                tracing::debug!(%peer, %err, "imap session ended");
            }
            drop(permit);
        });
    }
}

/// Watches the store for changes made outside this process (the CLI,
/// other nodes on PostgreSQL) and announces them, so IDLE sessions hear of
/// every change within a second without each polling the database.
pub async fn watch_external_changes(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        match app.store.imap_global_marker().await {
            Ok(marker) => {
                if !last.is_empty() && marker != last {
                    app.store.announce_external();
                }
                last = marker;
            }
            Err(err) => tracing::warn!(%err, "imap change watch"),
        }
    }
}

/// Whether a peer may log in without TLS when `plaintext_auth_on_loopback`.
pub fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().is_loopback()
}
