//! One SMTP session as a state machine (RFC 5321 §4.1, RFC 3030 CHUNKING,
//! RFC 2920 PIPELINING, RFC 3207 STARTTLS), for incoming mail or for agents'
//! submissions (RFC 6409 with RFC 4954 AUTH PLAIN and LOGIN).
//!
//! Command lines are framed here (to enforce our line length and to discard
//! an over-long line cleanly) and parsed by smtp-proto; DATA is un-stuffed by
//! smtp-proto's receiver. Replies are collected and flushed when the client
//! has nothing more buffered, which is what PIPELINING asks for.

use super::listener::SmtpLimits;
use crate::App;
use crate::ingest::{self, Envelope, Mode};
use crate::net::{self, Shutdown, Stream};
use crate::store::LoginAgent;
use crate::submission::{self, SubmissionEnvelope, SubmitError};
use crate::telemetry;
use base64::Engine;
use chrono::Utc;
use smtp_proto::request::receiver::{BdatReceiver, DataReceiver};
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, Error as ParseError, MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, Request,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

/// After this many errors in one session the client is sent away. Only
/// the client's mistakes count: refused recipients, a full disk or a failed
/// commit are answers, not errors (a message to 200 addresses must not end
/// its session).
const MAX_ERRORS: u32 = 20;
/// RFC 3463 4.3.1: the mail system is full. The sender retries later.
const INSUFFICIENT_STORAGE: &str = "452 4.3.1 Insufficient system storage, try again later";
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SmtpSessionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("client timed out")]
    Timeout,
}

/// Which port a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Mail for the queues, from anyone (port 25).
    Inbound,
    /// Agents' mail, after AUTH (port 587/465).
    Submission,
}

/// Where a SASL exchange stands: the next client line answers this.
#[derive(Debug, Clone)]
enum Sasl {
    /// PLAIN without an initial response: the whole response comes next.
    Plain,
    LoginUser,
    LoginPassword(String),
}

enum Phase {
    Command,
    /// The client's answer to a `334` AUTH challenge.
    Auth(Sasl),
    /// The rest of an over-long command line is being skipped.
    DiscardLine,
    Data(DataReceiver),
    Bdat(BdatReceiver),
    /// A BDAT chunk that cannot be accepted: its bytes are read and dropped.
    BdatDiscard(BdatReceiver),
}

#[derive(Default)]
struct Transaction {
    mail_from: String,
    /// MAIL FROM said SMTPUTF8: addresses may be UTF-8 (RFC 6531).
    smtputf8: bool,
    rcpt_to: Vec<String>,
    body: Vec<u8>,
    too_big: bool,
    used_bdat: bool,
}

enum Next {
    Continue,
    Close,
    StartTls,
}

pub struct SmtpSession {
    app: Arc<App>,
    role: Role,
    /// The agent logged in on a submission session.
    agent: Option<LoginAgent>,
    peer: SocketAddr,
    stream: Box<dyn Stream>,
    tls: Option<TlsAcceptor>,
    limits: Arc<SmtpLimits>,
    is_tls: bool,
    helo: Option<String>,
    tx: Option<Transaction>,
    phase: Phase,
    input: Vec<u8>,
    output: Vec<u8>,
    errors: u32,
    shutdown: Shutdown,
    /// When the command line or DATA/BDAT transfer under way must be
    /// complete: a client trickling bytes cannot hold a session forever.
    deadline: Option<Instant>,
}

impl SmtpSession {
    /// At the `shutdown` a transfer under way is finished, an idle client
    /// is told 421 4.3.2.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        app: Arc<App>,
        role: Role,
        peer: SocketAddr,
        stream: Box<dyn Stream>,
        is_tls: bool,
        tls: Option<TlsAcceptor>,
        limits: Arc<SmtpLimits>,
        shutdown: Shutdown,
    ) -> SmtpSession {
        SmtpSession {
            shutdown,
            app,
            role,
            agent: None,
            peer,
            stream,
            tls,
            limits,
            is_tls,
            helo: None,
            tx: None,
            phase: Phase::Command,
            input: Vec::with_capacity(READ_CHUNK),
            output: Vec::with_capacity(1024),
            errors: 0,
            deadline: None,
        }
    }

    fn hostname(&self) -> &str {
        &self.app.config.hostname
    }

    pub async fn run(mut self) -> Result<(), SmtpSessionError> {
        let greeting = format!("220 {} ESMTP postdesk ready\r\n", self.hostname());
        self.output.extend_from_slice(greeting.as_bytes());
        loop {
            match self.step().await? {
                Next::Continue => {}
                Next::Close => {
                    self.flush().await?;
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
                Next::StartTls => {
                    self.flush().await?;
                    // Anything pipelined after STARTTLS was sent in clear
                    // text and must not be acted on (RFC 3207 §4.2).
                    self.input.clear();
                    let Some(acceptor) = &self.tls else {
                        return Ok(());
                    };
                    let limit = self.limits.command_timeout;
                    match net::start_tls(&mut self.stream, acceptor, limit).await {
                        Ok(()) => {}
                        Err(net::HandshakeError::Failed(err)) => {
                            tracing::debug!(peer = %self.peer, %err, "TLS handshake failed");
                            return Ok(());
                        }
                        Err(net::HandshakeError::Timeout) => return Err(SmtpSessionError::Timeout),
                    }
                    self.is_tls = true;
                    self.helo = None;
                    self.tx = None;
                    self.agent = None;
                }
            }
        }
    }

    /// Processes what is buffered, then reads more. `process` returns
    /// `Continue` only when it cannot go on without more input: nothing is
    /// buffered, or only the start of a command line is (a line split across
    /// reads, which must not be processed again and again without reading).
    async fn step(&mut self) -> Result<Next, SmtpSessionError> {
        match self.process().await? {
            Next::Continue => {}
            other => return Ok(other),
        }
        self.flush().await?;
        let (limit, idle) = match self.phase {
            Phase::Command => (self.limits.command_timeout, self.input.is_empty()),
            Phase::DiscardLine | Phase::Auth(_) => (self.limits.command_timeout, false),
            _ => (self.limits.data_timeout, false),
        };
        let now = Instant::now();
        let deadline = if idle {
            // Waiting for a new command: the whole timeout, every time.
            self.deadline = None;
            now + limit
        } else {
            *self.deadline.get_or_insert(now + limit)
        };
        let mut chunk = [0u8; READ_CHUNK];
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut chunk)) => read,
            _ = self.shutdown.stopped(), if idle => {
                let line = format!("421 4.3.2 {} Service shutting down, try again later\r\n", self.hostname());
                self.output.extend_from_slice(line.as_bytes());
                return Ok(Next::Close);
            }
        };
        match read {
            Err(_) => {
                let line = format!(
                    "421 4.4.2 {} Timeout, closing connection\r\n",
                    self.hostname()
                );
                self.output.extend_from_slice(line.as_bytes());
                Ok(Next::Close)
            }
            Ok(Ok(0)) => Ok(Next::Close),
            Ok(Ok(n)) => {
                self.input.extend_from_slice(&chunk[..n]);
                Ok(Next::Continue)
            }
            Ok(Err(err)) => Err(err.into()),
        }
    }

    async fn process(&mut self) -> Result<Next, SmtpSessionError> {
        while !self.input.is_empty() {
            if self.too_many_errors() {
                return Ok(Next::Close);
            }
            let discard = matches!(self.phase, Phase::BdatDiscard(_));
            match &mut self.phase {
                Phase::Command | Phase::Auth(_) => {
                    let Some(line) = self.take_line() else {
                        return Ok(Next::Continue);
                    };
                    let Some(line) = line else {
                        continue;
                    };
                    if let Phase::Auth(step) = std::mem::replace(&mut self.phase, Phase::Command) {
                        self.sasl_answer(step, &line).await;
                        continue;
                    }
                    match self.command(&line).await {
                        Next::Continue => {}
                        other => return Ok(other),
                    }
                }
                Phase::DiscardLine => match self.input.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.input.drain(..=end);
                        self.phase = Phase::Command;
                        self.deadline = None;
                    }
                    None => self.input.clear(),
                },
                Phase::Data(receiver) => {
                    let Some(tx) = self.tx.as_mut() else {
                        self.phase = Phase::Command;
                        continue;
                    };
                    let mut bytes = self.input.iter();
                    let done = receiver.ingest(&mut bytes, &mut tx.body);
                    let consumed = self.input.len() - bytes.len();
                    self.input.drain(..consumed);
                    if tx.body.len() > self.limits.max_message_size {
                        tx.too_big = true;
                        tx.body.clear();
                    }
                    if done {
                        self.phase = Phase::Command;
                        self.deadline = None;
                        self.finish_message().await;
                    }
                }
                Phase::Bdat(receiver) | Phase::BdatDiscard(receiver) => {
                    let mut scratch = Vec::new();
                    let body = match (&mut self.tx, discard) {
                        (Some(tx), false) => &mut tx.body,
                        _ => &mut scratch,
                    };
                    let mut bytes = self.input.iter();
                    let done = receiver.ingest(&mut bytes, body);
                    let is_last = receiver.is_last;
                    let consumed = self.input.len() - bytes.len();
                    self.input.drain(..consumed);
                    if let Some(tx) = self.tx.as_mut()
                        && tx.body.len() > self.limits.max_message_size
                    {
                        tx.too_big = true;
                        tx.body.clear();
                    }
                    if done {
                        self.phase = Phase::Command;
                        self.deadline = None;
                        if discard {
                            self.reply_error("503 5.5.1 BDAT without a valid MAIL and RCPT");
                        } else {
                            self.chunk_done(is_last).await;
                        }
                    }
                }
            }
        }
        if self.too_many_errors() {
            return Ok(Next::Close);
        }
        Ok(Next::Continue)
    }

    /// The next line of a command or of an AUTH exchange. None: it is not
    /// complete yet. Some(None): it was too long, which has been answered
    /// (and the rest of it will be skipped).
    fn take_line(&mut self) -> Option<Option<Vec<u8>>> {
        let too_long = match self.phase {
            Phase::Auth(_) => "500 5.5.6 Authentication exchange line too long",
            _ => "500 5.5.2 Line too long",
        };
        let Some(end) = self.input.iter().position(|&b| b == b'\n') else {
            if self.input.len() > self.limits.max_line_length {
                self.input.clear();
                self.phase = Phase::DiscardLine;
                self.reply_error(too_long);
            }
            return None;
        };
        let line: Vec<u8> = self.input.drain(..=end).collect();
        self.deadline = None;
        if line.len() > self.limits.max_line_length {
            self.phase = Phase::Command;
            self.reply_error(too_long);
            return Some(None);
        }
        Some(Some(line))
    }

    /// After [`MAX_ERRORS`] errors the client is told goodbye (421).
    fn too_many_errors(&mut self) -> bool {
        if self.errors < MAX_ERRORS {
            return false;
        }
        let line = format!(
            "421 4.7.0 {} Too many errors, closing connection",
            self.hostname()
        );
        self.reply(&line);
        true
    }

    async fn command(&mut self, line: &[u8]) -> Next {
        // An agent disabled (or given a new password) since AUTH: the
        // session ends at its next command.
        if let Some(agent) = &self.agent
            && !self.app.session_is_current(agent.id, agent.epoch)
        {
            let line = format!(
                "421 4.7.0 {} This session was ended by an administrator",
                self.hostname()
            );
            self.reply(&line);
            return Next::Close;
        }
        let request = Request::parse(&mut line.iter());
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                let reply = match err {
                    ParseError::UnknownCommand => "500 5.5.1 Command unrecognized".to_string(),
                    ParseError::InvalidSenderAddress => {
                        "501 5.1.7 Bad sender address syntax".to_string()
                    }
                    ParseError::InvalidRecipientAddress => {
                        "501 5.1.3 Bad recipient address syntax".to_string()
                    }
                    ParseError::SyntaxError { syntax } => format!("501 5.5.4 Syntax: {syntax}"),
                    ParseError::InvalidParameter { param } => {
                        format!("501 5.5.4 Invalid parameter {param}")
                    }
                    ParseError::UnsupportedParameter { param } => {
                        format!("555 5.5.4 Unsupported parameter {param}")
                    }
                    ParseError::ResponseTooLong => "500 5.5.2 Line too long".to_string(),
                    ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
                        "500 5.5.2 Syntax error".to_string()
                    }
                };
                self.reply_error(&reply);
                return Next::Continue;
            }
        };
        match request {
            Request::Ehlo { host } => {
                self.helo = Some(host.to_string());
                self.tx = None;
                let mut lines = vec![format!("{} Hello {host} [{}]", self.hostname(), self.peer.ip())];
                lines.push("PIPELINING".into());
                lines.push(format!("SIZE {}", self.limits.max_message_size));
                lines.push("8BITMIME".into());
                lines.push("SMTPUTF8".into());
                lines.push("ENHANCEDSTATUSCODES".into());
                lines.push("CHUNKING".into());
                if self.tls.is_some() && !self.is_tls {
                    lines.push("STARTTLS".into());
                }
                if self.role == Role::Submission && self.auth_allowed() && self.agent.is_none() {
                    lines.push("AUTH PLAIN LOGIN".into());
                }
                let last = lines.len() - 1;
                for (i, line) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    self.output.extend_from_slice(format!("250{sep}{line}\r\n").as_bytes());
                }
            }
            Request::Helo { host } => {
                self.helo = Some(host.to_string());
                self.tx = None;
                let line = format!("250 {} Hello {host}", self.hostname());
                self.reply(&line);
            }
            Request::Lhlo { .. } => self.reply_error("500 5.5.1 This is not an LMTP server"),
            Request::Mail { from } => {
                let (app, agent) = (self.app.clone(), self.agent.clone());
                let refusal =
                    submission_sender_refusal(&app, self.role, agent.as_ref(), &from.address).await;
                if self.helo.is_none() {
                    self.reply_error("503 5.5.1 Say EHLO first");
                } else if self.tx.is_some() {
                    self.reply_error("503 5.5.1 Nested MAIL command");
                } else if from.size > self.limits.max_message_size {
                    self.refused("too_big");
                    self.reply_error("552 5.3.4 Message size exceeds fixed maximum message size");
                } else if from.flags & MAIL_BODY_BINARYMIME != 0 {
                    self.reply_error("555 5.5.4 BODY=BINARYMIME is not supported");
                } else if !from.address.is_ascii() && from.flags & MAIL_SMTPUTF8 == 0 {
                    self.reply_error("553 5.6.7 Non-ASCII address without SMTPUTF8");
                } else if let Some(refusal) = refusal {
                    self.refused("sender_not_allowed");
                    self.reply_error(&refusal);
                } else if let Err(refusal) = self.app.disk.admit() {
                    // Not the client's fault: not counted as an error.
                    tracing::warn!(peer = %self.peer, %refusal, "mail refused: storage");
                    self.refused("storage");
                    self.reply(INSUFFICIENT_STORAGE);
                } else {
                    self.tx = Some(Transaction {
                        mail_from: from.address.to_string(),
                        smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
                        ..Transaction::default()
                    });
                    self.reply("250 2.1.0 Sender OK");
                }
            }
            Request::Rcpt { to } => self.rcpt(&to.address).await,
            Request::Data => match &self.tx {
                None => self.reply_error("503 5.5.1 MAIL first"),
                Some(tx) if tx.rcpt_to.is_empty() => self.reply_error("554 5.5.1 No valid recipients"),
                Some(tx) if tx.used_bdat => self.reply_error("503 5.5.1 DATA after BDAT"),
                Some(_) => {
                    let mut receiver = DataReceiver::new();
                    // smtp-proto only recognizes a leading "." after a CRLF it
                    // has seen: prime it so a body starting with "." (or an
                    // empty body) is un-stuffed and terminated correctly.
                    let mut primer = Vec::new();
                    receiver.ingest(&mut b"\r\n".iter(), &mut primer);
                    self.phase = Phase::Data(receiver);
                    self.reply("354 Start mail input; end with <CRLF>.<CRLF>");
                }
            },
            Request::Bdat { .. } if bdat_size(line).is_none() => {
                // smtp-proto saturates (and wraps) a size too large for a
                // number: reading that many bytes would swallow every later
                // command. Refused, and the transaction with it.
                self.tx = None;
                self.reply_error("501 5.5.4 BDAT chunk size is not a number this server can read");
            }
            Request::Bdat { chunk_size, is_last } => {
                let valid = self.tx.as_ref().is_some_and(|tx| !tx.rcpt_to.is_empty());
                let receiver = BdatReceiver::new(chunk_size, is_last);
                if !valid {
                    if chunk_size == 0 {
                        self.reply_error("503 5.5.1 BDAT without a valid MAIL and RCPT");
                    } else {
                        self.phase = Phase::BdatDiscard(receiver);
                    }
                } else {
                    if let Some(tx) = self.tx.as_mut() {
                        tx.used_bdat = true;
                    }
                    if chunk_size == 0 {
                        self.chunk_done(is_last).await;
                    } else {
                        self.phase = Phase::Bdat(receiver);
                    }
                }
            }
            Request::Rset => {
                self.tx = None;
                self.reply("250 2.0.0 Reset OK");
            }
            Request::Noop { .. } => self.reply("250 2.0.0 OK"),
            Request::Quit => {
                let line = format!("221 2.0.0 {} Bye", self.hostname());
                self.reply(&line);
                return Next::Close;
            }
            Request::Vrfy { .. } => {
                self.reply("252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery")
            }
            Request::Expn { .. } => self.reply_error("502 5.5.1 EXPN not available"),
            Request::Help { .. } => self.reply(
                "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS",
            ),
            Request::StartTls => {
                if self.is_tls {
                    self.reply_error("503 5.5.1 TLS already active");
                } else if self.tls.is_none() {
                    self.reply_error("454 4.7.0 TLS not available");
                } else {
                    self.reply("220 2.0.0 Ready to start TLS");
                    return Next::StartTls;
                }
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response).await,
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.reply_error("502 5.5.1 Command not implemented")
            }
        }
        Next::Continue
    }

    async fn rcpt(&mut self, address: &str) {
        let Some(tx) = &self.tx else {
            self.reply_error("503 5.5.1 MAIL first");
            return;
        };
        if !address.is_ascii() && !tx.smtputf8 {
            self.reply_error("553 5.6.7 Non-ASCII address without SMTPUTF8");
            return;
        }
        // Refusals of a recipient are not the client's errors (RFC 5321
        // §4.5.3.1.10: the client sends the message to those accepted and
        // tries the others later).
        if tx.rcpt_to.len() >= self.limits.max_recipients {
            self.refused("too_many_recipients");
            self.reply("452 4.5.3 Too many recipients");
            return;
        }
        if self.role == Role::Submission {
            // An agent may write to anyone: submission decides per mail
            // what is a customer and what is postdesk's own.
            if let Some(tx) = self.tx.as_mut() {
                tx.rcpt_to.push(address.to_string());
            }
            self.reply("250 2.1.5 Recipient OK");
            return;
        }
        // The knowledge base takes articles from agents only, who write
        // on the submission port: from outside nothing is created.
        if crate::domain::address::normalize(address) == self.app.config.knowledge_address() {
            self.refused("knowledge_address");
            self.reply(&format!(
                "550 5.7.1 <{address}>: the knowledge base takes mail from agents only, \
                 on the submission port"
            ));
            return;
        }
        match self.app.queue_for(address).await {
            Ok(Some(_)) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpt_to.push(address.to_string());
                }
                self.reply("250 2.1.5 Recipient OK");
            }
            Ok(None) => {
                self.refused("unknown_recipient");
                self.reply(&format!("550 5.1.1 <{address}>: no such mailbox here"));
            }
            Err(err) => {
                tracing::error!(%err, "recipient lookup");
                self.refused("lookup_failure");
                self.reply("451 4.3.0 Temporary lookup failure, try again later");
            }
        }
    }

    async fn chunk_done(&mut self, is_last: bool) {
        if !is_last && self.tx.as_ref().is_some_and(|tx| tx.too_big) {
            // RFC 3030 §2: the chunk that goes over is refused, and with it
            // the transaction; the client sends no further chunks.
            self.tx = None;
            self.refused("too_big");
            self.reply_error("552 5.3.4 Message size exceeds fixed maximum message size");
            return;
        }
        if !is_last {
            let size = self.tx.as_ref().map(|tx| tx.body.len()).unwrap_or(0);
            self.reply(&format!("250 2.0.0 {size} octets received"));
            return;
        }
        self.finish_message().await;
    }

    /// Commits the message; only then says 250.
    async fn finish_message(&mut self) {
        let Some(tx) = self.tx.take() else {
            self.reply_error("503 5.5.1 No transaction");
            return;
        };
        if tx.too_big {
            self.refused("too_big");
            self.reply_error("552 5.3.4 Message size exceeds fixed maximum message size");
            return;
        }
        if self.role == Role::Submission {
            self.finish_submission(tx).await;
            return;
        }
        let envelope = Envelope {
            mail_from: tx.mail_from,
            rcpt_to: tx.rcpt_to,
            helo: self.helo.clone(),
            remote_addr: Some(self.peer),
            received_at: Utc::now(),
        };
        let started = std::time::Instant::now();
        match ingest::ingest(&self.app, &envelope, tx.body, Mode::Live).await {
            Ok(report) => {
                metrics::histogram!(telemetry::INGEST_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                telemetry::accepted(self.listener());
                let line = match (report.ticket, report.duplicate) {
                    (Some(ticket), false) => {
                        format!("250 2.0.0 Message accepted as ticket #{ticket}")
                    }
                    (Some(ticket), true) => {
                        format!("250 2.0.0 Message already stored in ticket #{ticket}")
                    }
                    (None, _) => "250 2.0.0 Message accepted".to_string(),
                };
                tracing::info!(peer = %self.peer, ticket = ?report.ticket, duplicate = report.duplicate, "message accepted");
                self.reply(&line);
            }
            Err(err) => {
                tracing::error!(peer = %self.peer, %err, "message not committed");
                let full = match &err {
                    ingest::IngestError::Store(err) => err.is_storage_full(),
                    ingest::IngestError::NoQueue => false,
                };
                self.store_failed(full);
            }
        }
    }

    /// AUTH is offered over TLS, or in clear text from loopback when the
    /// configuration allows it (RFC 4954 §4: never a password in the clear).
    fn auth_allowed(&self) -> bool {
        self.is_tls
            || (self.app.config.submission.plaintext_auth_on_loopback
                && self.peer.ip().is_loopback())
    }

    async fn auth(&mut self, mechanism: u64, initial_response: &str) {
        if self.role != Role::Submission {
            self.reply_error("503 5.5.1 AUTH is for the submission port, not for incoming mail");
        } else if self.agent.is_some() {
            self.reply_error("503 5.5.1 Already authenticated");
        } else if self.tx.is_some() {
            self.reply_error("503 5.5.1 AUTH is not allowed during a mail transaction");
        } else if !self.auth_allowed() {
            self.reply_error("538 5.7.11 Encryption required: use STARTTLS first");
        } else if mechanism == AUTH_PLAIN {
            if initial_response.is_empty() {
                self.phase = Phase::Auth(Sasl::Plain);
                self.reply("334 ");
            } else {
                self.sasl_answer(Sasl::Plain, initial_response.as_bytes())
                    .await;
            }
        } else if mechanism == AUTH_LOGIN {
            if initial_response.is_empty() {
                self.phase = Phase::Auth(Sasl::LoginUser);
                self.reply("334 VXNlcm5hbWU6");
            } else {
                self.sasl_answer(Sasl::LoginUser, initial_response.as_bytes())
                    .await;
            }
        } else {
            self.reply_error("504 5.5.4 Unrecognized authentication type: use PLAIN or LOGIN");
        }
    }

    /// One client answer in a SASL exchange.
    async fn sasl_answer(&mut self, step: Sasl, line: &[u8]) {
        let line = line.trim_ascii();
        if line == b"*" {
            self.reply_error("501 5.0.0 Authentication cancelled");
            return;
        }
        // "=" is an empty initial response (RFC 4954 §4).
        let decoded = if line == b"=" {
            Ok(Vec::new())
        } else {
            base64::engine::general_purpose::STANDARD.decode(line)
        };
        let Ok(decoded) = decoded else {
            self.reply_error("501 5.5.2 Cannot decode the response (base64 expected)");
            return;
        };
        match step {
            Sasl::Plain => {
                // authzid NUL authcid NUL password (RFC 4616).
                let mut parts = decoded.split(|b| *b == 0);
                let (Some(authzid), Some(user), Some(password), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    self.reply_error("501 5.5.2 Malformed PLAIN response");
                    return;
                };
                if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(user) {
                    self.reply_error("535 5.7.8 Acting as another user is not allowed");
                    return;
                }
                let user = String::from_utf8_lossy(user).into_owned();
                let password = String::from_utf8_lossy(password).into_owned();
                self.log_in(&user, &password).await;
            }
            Sasl::LoginUser => {
                self.phase = Phase::Auth(Sasl::LoginPassword(
                    String::from_utf8_lossy(&decoded).into_owned(),
                ));
                self.reply("334 UGFzc3dvcmQ6");
            }
            Sasl::LoginPassword(user) => {
                let password = String::from_utf8_lossy(&decoded).into_owned();
                self.log_in(&user, &password).await;
            }
        }
    }

    async fn log_in(&mut self, user: &str, password: &str) {
        match self
            .app
            .authenticate(user, password, self.peer.ip(), "submission")
            .await
        {
            Ok(Some(agent)) => {
                tracing::info!(peer = %self.peer, agent = %agent.email, "submission: logged in");
                self.agent = Some(agent);
                self.reply("235 2.7.0 Authentication successful");
            }
            Ok(None) => {
                tracing::info!(peer = %self.peer, user, "submission: login failed");
                self.reply_error("535 5.7.8 Authentication credentials invalid");
            }
            Err(err) => {
                tracing::error!(%err, "submission: login lookup");
                self.reply_error("454 4.7.0 Temporary authentication failure");
            }
        }
    }

    /// Files an agent's mail; only then says 250.
    async fn finish_submission(&mut self, tx: Transaction) {
        let Some(agent) = self.agent.clone() else {
            self.reply_error("530 5.7.0 Authentication required");
            return;
        };
        let envelope = SubmissionEnvelope {
            mail_from: tx.mail_from,
            rcpt_to: tx.rcpt_to,
            remote_addr: Some(self.peer),
        };
        if submission::knowledge::addressed(&self.app, &envelope.rcpt_to) {
            self.finish_article(&agent, &envelope, &tx.body).await;
            return;
        }
        match submission::submit(&self.app, &agent, &envelope, tx.body).await {
            Ok(submitted) => {
                tracing::info!(peer = %self.peer, agent = %agent.email, ticket = submitted.ticket,
                    outcome = ?submitted.outcome, changed = ?submitted.changed, "agent mail filed");
                telemetry::accepted(self.listener());
                let line = format!("250 2.0.0 {}", submitted.summary());
                self.reply(&line);
            }
            Err(SubmitError::Refused(line)) => {
                tracing::info!(peer = %self.peer, agent = %agent.email, %line, "agent mail refused");
                self.refused("submission_refused");
                self.reply_error(&line);
            }
            Err(SubmitError::Store(err)) => {
                tracing::error!(peer = %self.peer, %err, "agent mail not committed");
                self.store_failed(err.is_storage_full());
            }
        }
    }

    /// Writes an agent's mail to the knowledge address as an article
    /// revision; only then says 250.
    async fn finish_article(
        &mut self,
        agent: &LoginAgent,
        envelope: &SubmissionEnvelope,
        raw: &[u8],
    ) {
        match submission::knowledge::submit_article(&self.app, agent, envelope, raw).await {
            Ok(line) => {
                tracing::info!(peer = %self.peer, agent = %agent.email, %line, "article mail written");
                telemetry::accepted(self.listener());
                self.reply(&line);
            }
            Err(SubmitError::Refused(line)) => {
                tracing::info!(peer = %self.peer, agent = %agent.email, %line, "article mail refused");
                self.refused("submission_refused");
                self.reply_error(&line);
            }
            Err(SubmitError::Store(err)) => {
                tracing::error!(peer = %self.peer, %err, "article mail not committed");
                self.store_failed(err.is_storage_full());
            }
        }
    }

    /// The message was not committed: the sender keeps it and retries. A
    /// full disk also holds back new mail for a moment (see `crate::disk`).
    fn store_failed(&mut self, storage_full: bool) {
        self.refused(if storage_full {
            "storage"
        } else {
            "not_stored"
        });
        if storage_full {
            self.app.disk.write_failed();
            self.reply(INSUFFICIENT_STORAGE);
        } else {
            self.reply("451 4.3.0 Message not stored, try again later");
        }
    }

    /// The listener's name in the metrics.
    fn listener(&self) -> &'static str {
        match self.role {
            Role::Inbound => "inbound",
            Role::Submission => "submission",
        }
    }

    /// Counts a refused message or recipient under `reason`.
    fn refused(&self, reason: &'static str) {
        telemetry::refused(self.listener(), reason);
    }

    fn reply(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    fn reply_error(&mut self, line: &str) {
        self.errors += 1;
        self.reply(line);
    }

    async fn flush(&mut self) -> Result<(), SmtpSessionError> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.stream.flush().await?;
            self.output.clear();
        }
        Ok(())
    }
}

/// The chunk size of a BDAT line, when it is a number that fits (RFC 3030:
/// `chunk-size = 1*DIGIT`).
fn bdat_size(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    let size = text.split_ascii_whitespace().nth(1)?;
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    size.parse().ok()
}

/// Why a submission's MAIL FROM is refused, if it is (None on the
/// inbound port, where anyone may send).
async fn submission_sender_refusal(
    app: &App,
    role: Role,
    agent: Option<&LoginAgent>,
    from: &str,
) -> Option<String> {
    if role != Role::Submission {
        return None;
    }
    let Some(agent) = agent else {
        return Some("530 5.7.0 Authentication required".into());
    };
    if from.is_empty() {
        return Some("550 5.7.1 Agents' mail needs a sender address".into());
    }
    match app.queues().await {
        Ok(queues) if submission::may_send_as(agent, &queues, from) => None,
        Ok(_) => Some(format!(
            "550 5.7.1 <{from}> is not yours to send as: use your own address or a queue you work in"
        )),
        Err(err) => {
            tracing::error!(%err, "queue lookup");
            Some("451 4.3.0 Temporary lookup failure, try again later".into())
        }
    }
}
