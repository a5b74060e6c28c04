//! Accepting connections, bounded in number: shared by the SMTP and IMAP
//! listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub struct Accepted {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    /// Holds one of the listener's slots until the session ends.
    pub permit: OwnedSemaphorePermit,
}

/// Waits for the next connection that gets a slot. A connection over the
/// limit is sent `refusal` (the protocol's "try later" line) and closed.
/// None once `shutdown` turns true.
pub async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &mut watch::Receiver<bool>,
    protocol: &'static str,
    refusal: &str,
) -> Option<Accepted> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return None,
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

/// Binds a listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::AppError::Io {
            context: format!("cannot listen on {addr}"),
            source,
        })
}
