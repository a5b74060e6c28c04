//! SMTP: the inbound listener customers' mail arrives on (RFC 5321 with
//! PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING and
//! STARTTLS), and the submission listeners agents send through (the same
//! session with AUTH, RFC 6409).

mod listener;
mod session;

pub use listener::{Limits, serve};
pub use session::{Role, Session};

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection, plain or TLS, behind one type so that STARTTLS can swap it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
