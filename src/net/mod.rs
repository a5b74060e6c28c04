//! The network layer shared by the SMTP and IMAP listeners: accepting
//! connections (bounded in number), the stream a session talks over, the
//! TLS handshake (implicit or STARTTLS), and the shutdown signal.
//!
//! A low layer: it knows sockets and TLS, no protocol.

mod per_address;
mod shutdown;
mod starttls;

pub use per_address::{AddressPermit, PerAddress};
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
    /// And one of its address's.
    pub address_permit: AddressPermit,
}

/// A listener's connection limits: in all, and per remote address.
pub struct Slots {
    pub all: Arc<Semaphore>,
    pub per_address: Arc<PerAddress>,
}

impl Slots {
    pub fn new(all: usize, per_address: usize) -> Slots {
        Slots {
            all: Arc::new(Semaphore::new(all)),
            per_address: PerAddress::new(per_address),
        }
    }
}

/// Waits for the next connection that gets a slot. A connection over a
/// limit is sent `refusal` (the protocol's "try later" line) and closed.
/// None once the shutdown has begun.
pub async fn accept(
    listener: &TcpListener,
    slots: &Slots,
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
        let permits = (
            slots.all.clone().try_acquire_owned(),
            slots.per_address.try_acquire(peer.ip()),
        );
        match permits {
            (Ok(permit), Some(address_permit)) => {
                return Some(Accepted {
                    socket,
                    peer,
                    permit,
                    address_permit,
                });
            }
            (all, _) => {
                let reason = if all.is_err() {
                    "too many connections"
                } else {
                    "too many connections from this address"
                };
                tracing::warn!(%peer, protocol, reason);
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
