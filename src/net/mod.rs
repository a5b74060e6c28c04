//! The network layer shared by the SMTP and IMAP listeners: accepting
//! connections (bounded in number), the stream a session talks over, the
//! TLS handshake (implicit or STARTTLS), and the shutdown signal.
//!
//! A low layer: it knows sockets and TLS, no protocol.

mod shutdown;
mod starttls;

pub use shutdown::{Shutdown, ShutdownTrigger};
pub use starttls::{HandshakeError, accept_tls, start_tls};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection, plain or TLS, behind one type so that STARTTLS can swap it.
/// Sync so that a session's `&self` methods can be awaited on any thread.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

pub struct Accepted {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    /// Holds one of the listener's slots until the session ends.
    pub permit: OwnedSemaphorePermit,
}

/// Waits for the next connection that gets a slot. A connection over the
/// limit is sent `refusal` (the protocol's "try later" line) and closed.
/// None once the shutdown has begun.
pub async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &mut Shutdown,
    protocol: &'static str,
    refusal: &str,
) -> Option<Accepted> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.stopped() => return None,
            accepted = listener.accept() => accepted,
        };
        let (mut socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(%err, protocol, "accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                return Some(Accepted {
                    socket,
                    peer,
                    permit,
                });
            }
            Err(_) => {
                tracing::warn!(%peer, protocol, "too many connections");
                let line = refusal.to_string();
                tokio::spawn(async move {
                    let _ = socket.write_all(line.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        }
    }
}

/// A listener that could not be opened, and where.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds a listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}
