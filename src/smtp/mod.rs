//! SMTP: the inbound listener customers' mail arrives on (RFC 5321 with
//! PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING and
//! STARTTLS), and the submission listeners agents send through (the same
//! session with AUTH, RFC 6409).

mod listener;
mod session;

pub use listener::{SmtpLimits, serve};
pub use session::{Role, SmtpSession};
