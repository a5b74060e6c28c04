//! The IMAP view (DESIGN.md §4): agents' mail clients see tickets as folders.
//!
//! imap-codec parses commands (its `Fragmentizer` frames lines and literals
//! before parsing, so a malformed command never desynchronizes the stream);
//! responses are written by hand in `response`, because most of their
//! bytes are message data served byte-exact.
//!
//! One file per group of commands, after Stalwart's layout: `session`
//! runs a connection, the others answer commands.

mod append;
mod copy_move;
pub(crate) mod encode;
mod extended;
mod fetch;
mod framing;
mod knowledge;
mod mailboxes;
mod qresync;
mod response;
mod rev2;
mod search;
mod searchres;
mod selected;
mod session;
mod slots;
mod store_flags;
mod templates;

pub use slots::AgentSlots;

use crate::App;
use crate::config::ImapConfig;
use crate::domain::keywords::KeywordMap;
use crate::net::{self, Shutdown, Stream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Protocol limits (from `[imap]`).
#[derive(Debug, Clone)]
pub struct ImapLimits {
    pub max_connections: usize,
    pub max_connections_per_agent: usize,
    pub max_line_length: usize,
    pub max_literal_size: usize,
    pub idle_timeout: Duration,
    /// From connecting to being logged in, all of it: a stranger who
    /// trickles bytes cannot keep a connection longer than this.
    pub login_timeout: Duration,
    /// For one command of a logged-in client, from its first byte.
    pub command_timeout: Duration,
    pub max_connections_per_address: usize,
    pub max_unauthenticated: usize,
    pub plaintext_auth_on_loopback: bool,
    pub closed_window: chrono::Duration,
    /// What keywords mean (`[imap] labels`).
    pub keywords: Arc<KeywordMap>,
    /// Literal data (APPEND) all connections may hold in memory at once,
    /// in KiB: a command with a large literal waits for its share (or is
    /// refused with `NO [LIMIT]` when its deadline passes first).
    pub literal_budget: Arc<Semaphore>,
}

impl ImapLimits {
    pub fn from_config(config: &ImapConfig) -> ImapLimits {
        ImapLimits {
            max_connections: config.max_connections.max(1),
            max_connections_per_agent: config.max_connections_per_agent.max(1),
            max_line_length: config.max_line_length.max(1024),
            max_literal_size: config.max_literal_size,
            idle_timeout: Duration::from_secs(config.idle_timeout.max(60)),
            login_timeout: Duration::from_secs(config.login_timeout.max(1)),
            command_timeout: Duration::from_secs(config.command_timeout.max(1)),
            max_connections_per_address: config.max_connections_per_address.max(1),
            max_unauthenticated: config.max_unauthenticated.max(1),
            literal_budget: Arc::new(Semaphore::new(literal_budget_kib(config.max_literal_size))),
            plaintext_auth_on_loopback: config.plaintext_auth_on_loopback,
            closed_window: chrono::Duration::days(i64::from(config.closed_days)),
            keywords: Arc::new(KeywordMap::new(config.labels.clone())),
        }
    }
}

/// Two of the largest literals at a time, and at least 64 MiB: a handful
/// of agents appending large messages at once get through, a crowd waits.
fn literal_budget_kib(max_literal_size: usize) -> usize {
    (max_literal_size.saturating_mul(2) / 1024).clamp(64 * 1024, Semaphore::MAX_PERMITS)
}

/// Serves one listener until the shutdown. `implicit_tls`: the connection
/// starts with the TLS handshake (port 993 style).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: TlsAcceptor,
    implicit_tls: bool,
    limits: Arc<ImapLimits>,
    agent_slots: Arc<AgentSlots>,
    mut shutdown: Shutdown,
) {
    let connections = net::Slots::new(limits.max_connections, limits.max_connections_per_address);
    let strangers = Arc::new(Semaphore::new(limits.max_unauthenticated));
    let refusal = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
    while let Some(net::Accepted {
        mut socket,
        peer,
        permit,
        address_permit,
    }) = net::accept(&listener, &connections, &mut shutdown, "imap", refusal).await
    {
        // Until it logs in, a connection also holds one of the few slots
        // for strangers, so that they can never take the agents' slots.
        let Ok(stranger) = strangers.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "imap: too many connections not logged in");
            tokio::spawn(async move {
                let _ = socket.write_all(refusal.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        let agent_slots = agent_slots.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            // Dropped however the task ends, which frees the slots.
            let _permits = (permit, address_permit);
            let _session = crate::telemetry::Held::new(app.gauges.clone(), |g| &g.imap_sessions);
            let stream: Box<dyn Stream> = if implicit_tls {
                match net::accept_tls(&tls, socket, limits.login_timeout).await {
                    Ok(stream) => stream,
                    Err(net::HandshakeError::Failed(err)) => {
                        tracing::debug!(%peer, %err, "imaps handshake failed");
                        return;
                    }
                    Err(net::HandshakeError::Timeout) => return,
                }
            } else {
                Box::new(socket)
            };
            let session = session::ImapSession::new(
                app,
                peer,
                stream,
                Some(tls),
                implicit_tls,
                limits,
                agent_slots,
                stranger,
                stopping,
            );
            if let Err(err) = session.run().await {
                tracing::debug!(%peer, %err, "imap session ended");
            }
        });
    }
}

/// Watches an SQLite store for changes made outside this process (the
/// CLI) and announces them, so IDLE sessions hear of every change within
/// a second without each polling the database. Only other processes'
/// commits count ([`crate::store::Store::external_commits`]): this
/// process announced its own as it made them, ticket by ticket. (On
/// PostgreSQL every process announces its changes to every node: see
/// `store::notify`.)
pub async fn watch_external_changes(app: Arc<App>, mut shutdown: Shutdown) {
    // Counted from the start: a change made in the first second is
    // heard too.
    let mut last = match app.store.external_commits().await {
        Ok(None) => return,
        Ok(version) => version,
        Err(err) => {
            tracing::warn!(%err, "imap change watch");
            None
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.stopped() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        match app.store.external_commits().await {
            Ok(Some(version)) => {
                if last.is_some_and(|last| last != version) {
                    app.store.announce_external();
                }
                last = Some(version);
            }
            Ok(None) => return,
            Err(err) => tracing::warn!(%err, "imap change watch"),
        }
    }
}

/// Whether a peer may log in without TLS when `plaintext_auth_on_loopback`.
pub fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().is_loopback()
}
