//! Accepts SMTP connections, bounded in number, and runs a session on each.

use super::session::{Role, SmtpSession};
use crate::App;
use crate::net::{self, Shutdown, Stream};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Protocol limits of a listener (from `[smtp]`).
#[derive(Debug, Clone)]
pub struct SmtpLimits {
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub max_line_length: usize,
}

impl SmtpLimits {
    pub fn from_config(config: &crate::config::SmtpConfig) -> SmtpLimits {
        SmtpLimits {
            max_message_size: config.max_message_size,
            max_recipients: config.max_recipients,
            max_connections: config.max_connections,
            max_connections_per_address: config.max_connections_per_address,
            command_timeout: Duration::from_secs(config.command_timeout),
            data_timeout: Duration::from_secs(config.data_timeout),
            max_line_length: config.max_line_length.max(512),
        }
    }
}

/// Serves until the shutdown. `implicit_tls`: every connection
/// starts with the TLS handshake (the port 465 convention).
pub async fn serve(
    app: Arc<App>,
    role: Role,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    implicit_tls: bool,
    limits: SmtpLimits,
    mut shutdown: Shutdown,
) {
    let slots = net::Slots::new(limits.max_connections, limits.max_connections_per_address);
    let limits = Arc::new(limits);
    let refusal = format!(
        "421 4.7.0 {} Too many connections, try again later\r\n",
        app.config.hostname
    );
    while let Some(net::Accepted {
        socket,
        peer,
        permit,
        address_permit,
    }) = net::accept(&listener, &slots, &mut shutdown, "smtp", &refusal).await
    {
        let app = app.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            // Dropped however the task ends, which frees the slot.
            let _permits = (permit, address_permit);
            let stream: Box<dyn Stream> = match (&tls, implicit_tls) {
                (Some(acceptor), true) => {
                    match net::accept_tls(acceptor, socket, limits.command_timeout).await {
                        Ok(secured) => secured,
                        Err(net::HandshakeError::Failed(err)) => {
                            tracing::debug!(%peer, %err, "TLS handshake failed");
                            return;
                        }
                        Err(net::HandshakeError::Timeout) => return,
                    }
                }
                _ => Box::new(socket),
            };
            let tls = if implicit_tls { None } else { tls };
            let session =
                SmtpSession::new(app, role, peer, stream, implicit_tls, tls, limits, stopping);
            if let Err(err) = session.run().await {
                tracing::debug!(%peer, %err, "smtp session ended");
            }
        });
    }
    drop(listener);
    // Let transfers under way finish (idle sessions say 421 and leave), for
    // at most the data timeout; then the runtime ends what is left, which
    // was not acknowledged and will be retried by its sender.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(limits.data_timeout, slots.all.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!("smtp: sessions still running at shutdown were cut off");
    }
}
