//! One IMAP connection: framing, the state machine of RFC 3501 §3, login,
//! STARTTLS, IDLE, and the untagged updates that keep the client's view of
//! the selected mailbox current.

use super::ImapLimits;
use super::extended;
use super::framing::Framer;
use super::searchres::Substituted;
use super::selected::Selected;
use super::slots::{AgentSlot, AgentSlots};
use crate::App;
use crate::domain::keywords::KeywordMap;
use crate::domain::permission::AgentRole;
use crate::domain::views::Folder;
use crate::net::{self, Shutdown, Stream};
use crate::store::{Change, LoginAgent, StoreError, Viewer};
use base64::Engine;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::FragmentInfo;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum ImapSessionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
}

/// How a command ends for the connection.
pub enum Flow {
    Continue,
    Close,
    StartTls,
}

/// Bytes read from a client at a time.
const READ_CHUNK: usize = 4096;

/// A tagged reply for the end of a command.
pub struct Reply {
    pub status: &'static str,
    pub text: String,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply {
            status: "OK",
            text: text.into(),
        }
    }
    pub fn no(text: impl Into<String>) -> Reply {
        Reply {
            status: "NO",
            text: text.into(),
        }
    }
    pub fn bad(text: impl Into<String>) -> Reply {
        Reply {
            status: "BAD",
            text: text.into(),
        }
    }
}

/// A store failure becomes a NO that says what went wrong, and the session goes on.
impl From<StoreError> for Reply {
    fn from(err: StoreError) -> Reply {
        tracing::warn!(%err, "imap: store error");
        match err {
            StoreError::NotFound(what) => Reply::no(format!("[NONEXISTENT] {what}")),
            StoreError::Denied(why) => Reply::no(format!("[NOPERM] {why}")),
            // A full disk is a storage outage, not a missing folder: the
            // client should try again later.
            other if other.is_storage_full() => {
                Reply::no("[UNAVAILABLE] The server's storage is full; try again later")
            }
            other => Reply::no(format!("[SERVERBUG] {other}")),
        }
    }
}

/// The agent logged in on a connection. Holds one of the agent's
/// connection slots for as long as the session keeps it.
pub struct LoggedIn {
    pub agent: LoginAgent,
    _slot: AgentSlot,
}

impl LoggedIn {
    /// Who is looking, as the views' queries need it.
    pub fn viewer(&self, keywords: &Arc<KeywordMap>) -> Viewer {
        Viewer {
            agent_id: self.agent.id,
            sees_every_queue: self.agent.role == AgentRole::Admin,
            keywords: keywords.clone(),
        }
    }

    /// What a mailbox name means to this agent.
    pub fn folder_of(&self, name: &str) -> Folder {
        Folder::parse(name, &self.agent.queues)
    }
}

/// Where a connection stands (RFC 3501 §3), after Stalwart's session
/// state: a selected mailbox comes with the agent who selected it. There is
/// no logout state: the session ends with the LOGOUT command.
pub enum State {
    NotAuthenticated,
    Authenticated {
        login: LoggedIn,
    },
    Selected {
        login: LoggedIn,
        mailbox: Box<Selected>,
    },
}

impl State {
    fn login(&self) -> Option<&LoggedIn> {
        match self {
            State::NotAuthenticated => None,
            State::Authenticated { login } | State::Selected { login, .. } => Some(login),
        }
    }

    fn is_logged_in(&self) -> bool {
        self.login().is_some()
    }

    /// The agent and the selected mailbox of a logged-in session; None
    /// before login.
    fn into_logged_in(self) -> Option<(LoggedIn, Option<Box<Selected>>)> {
        match self {
            State::NotAuthenticated => None,
            State::Authenticated { login } => Some((login, None)),
            State::Selected { login, mailbox } => Some((login, Some(mailbox))),
        }
    }

    /// The state of a logged-in session, with `mailbox` selected or none.
    fn logged_in(login: LoggedIn, mailbox: Option<Box<Selected>>) -> State {
        match mailbox {
            Some(mailbox) => State::Selected { login, mailbox },
            None => State::Authenticated { login },
        }
    }
}

/// One connection. Its [`State`] is not kept here but handed from command
/// to command (see [`ImapSession::serve`]), so that a command answers from the
/// agent and mailbox its state has, never from a default.
pub struct ImapSession {
    pub app: Arc<App>,
    pub peer: SocketAddr,
    stream: Box<dyn Stream>,
    tls: Option<TlsAcceptor>,
    is_tls: bool,
    pub limits: Arc<ImapLimits>,
    agent_slots: Arc<AgentSlots>,
    shutdown: Shutdown,
    framer: Framer,
    /// This command's share of the listener's literal budget.
    literal_budget: Vec<OwnedSemaphorePermit>,
    /// Everything before login must be done by then (`login_timeout`).
    login_deadline: tokio::time::Instant,
    /// One of the few slots for connections not logged in, given back at
    /// login.
    stranger: Option<OwnedSemaphorePermit>,
    /// The logged-in agent and the session epoch they logged in at: the
    /// session ends when the agent's epoch moves (disabled, new password).
    session: Option<(i64, i64)>,
    epochs: tokio::sync::watch::Receiver<Arc<crate::SessionEpochs>>,
    pub out: Vec<u8>,
    pub condstore: bool,
    /// QRESYNC enabled (RFC 7162 §3.2.3): expunges are reported as
    /// VANISHED, and SELECT and UID FETCH may ask what vanished.
    pub qresync: bool,
    /// RETURN options of the SEARCH being run (ESEARCH, RFC 4731).
    pub search_return: Option<extended::SearchReturn>,
    /// IMAP4rev2 enabled (RFC 9051): SEARCH answers ESEARCH, no \Recent
    /// and no RECENT, mailbox names in UTF-8. An IMAP4rev1 client sees
    /// none of it.
    pub rev2: bool,
    /// The search result variable of SEARCHRES (RFC 5182), as UIDs in
    /// ascending order: what `$` names.
    pub saved: Vec<u32>,
    changes: broadcast::Receiver<Change>,
    /// Changes announced since the selected view was last refreshed.
    heard: Heard,
}

/// What a session has heard changed: the tickets, or that it cannot tell
/// (a change without tickets, a lost announcement), when the view is
/// brought up to date in full.
#[derive(Debug, Default)]
struct Heard {
    tickets: BTreeSet<i64>,
    everything: bool,
    /// Every change up to this count of announcements
    /// ([`crate::store::Store::announced`]) is in here.
    upto: u64,
}

impl Heard {
    /// Takes in one announced change; false when there was none.
    fn hear(&mut self, change: Result<Change, broadcast::error::TryRecvError>, agent: i64) -> bool {
        match change {
            Ok(Change::Ticket(number)) => {
                self.tickets.insert(number);
                self.cap();
            }
            // Our own \Seen flags changed somewhere: which messages is not
            // said.
            Ok(Change::Seen(id)) if id == agent => self.everything = true,
            Ok(Change::Seen(_) | Change::OutboundQueued) => {}
            Ok(Change::External) | Err(broadcast::error::TryRecvError::Lagged(_)) => {
                self.everything = true;
            }
            Err(_) => return false,
        }
        true
    }

    /// Adds what was heard since.
    fn take_in(&mut self, later: Heard) {
        self.everything |= later.everything;
        self.tickets.extend(later.tickets);
        self.cap();
        self.upto = self.upto.max(later.upto);
    }

    /// Beyond [`MAX_SCOPED_TICKETS`] (or once everything changed), the
    /// whole view is reconciled rather than ticket by ticket.
    fn cap(&mut self) {
        if self.everything || self.tickets.len() > MAX_SCOPED_TICKETS {
            self.tickets.clear();
            self.everything = true;
        }
    }
}

/// How often a selected view is reconciled in full even when every change
/// was announced with its tickets.
const FULL_RECONCILE_EVERY: Duration = Duration::from_secs(300);

/// More changed tickets than this in one refresh: the whole view is
/// reconciled instead (one query then beats a long list of numbers).
const MAX_SCOPED_TICKETS: usize = 500;

/// Longest wait for more change notices before refreshing (debounce).
const SETTLE: Duration = Duration::from_millis(30);

impl ImapSession {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        app: Arc<App>,
        peer: SocketAddr,
        stream: Box<dyn Stream>,
        tls: Option<TlsAcceptor>,
        is_tls: bool,
        limits: Arc<ImapLimits>,
        agent_slots: Arc<AgentSlots>,
        stranger: OwnedSemaphorePermit,
        shutdown: Shutdown,
    ) -> ImapSession {
        let changes = app.store.subscribe();
        let epochs = app.sessions.subscribe();
        ImapSession {
            session: None,
            epochs,
            app,
            peer,
            stream,
            tls,
            is_tls,
            framer: framer(&limits),
            literal_budget: Vec::new(),
            login_deadline: tokio::time::Instant::now() + limits.login_timeout,
            stranger: Some(stranger),
            limits,
            agent_slots,
            shutdown,
            out: Vec::with_capacity(1024),
            condstore: false,
            qresync: false,
            search_return: None,
            rev2: false,
            saved: Vec::new(),
            changes,
            heard: Heard::default(),
        }
    }

    fn auth_allowed(&self) -> bool {
        self.is_tls || (self.limits.plaintext_auth_on_loopback && super::is_loopback(&self.peer))
    }

    pub fn capabilities(&self, logged_in: bool) -> String {
        let mut caps: Vec<String> = [
            "IMAP4rev1",
            "IMAP4rev2",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "IDLE",
        ]
        .map(String::from)
        .to_vec();
        if !logged_in {
            if !self.is_tls && self.tls.is_some() {
                caps.push("STARTTLS".into());
            }
            if self.auth_allowed() {
                caps.push("AUTH=PLAIN".into());
            } else {
                caps.push("LOGINDISABLED".into());
            }
        } else {
            caps.extend(
                [
                    "NAMESPACE",
                    "UIDPLUS",
                    "MOVE",
                    "SPECIAL-USE",
                    "CHILDREN",
                    "CONDSTORE",
                    "QRESYNC",
                    "UNSELECT",
                    "ESEARCH",
                    "SEARCHRES",
                    "LIST-EXTENDED",
                    "LIST-STATUS",
                    "STATUS=SIZE",
                    "BINARY",
                    // Outlook 2013/2016 find the special folders by XLIST
                    // only.
                    "XLIST",
                ]
                .map(String::from),
            );
            // RFC 7889: the largest message APPEND takes, in every mailbox
            // (a larger literal is refused before it is sent).
            caps.push(format!("APPENDLIMIT={}", self.limits.max_literal_size));
        }
        caps.join(" ")
    }

    pub async fn run(mut self) -> Result<(), ImapSessionError> {
        let greeting = format!(
            "* OK [CAPABILITY {}] postdesk ready\r\n",
            self.capabilities(false)
        );
        self.stream.write_all(greeting.as_bytes()).await?;
        self.serve().await
    }

    /// Runs commands until the connection ends. The state lives here, so
    /// however the session ends (LOGOUT, an error, a panic, the task being
    /// dropped) the agent's connection slot goes with it.
    async fn serve(&mut self) -> Result<(), ImapSessionError> {
        let mut state = State::NotAuthenticated;
        loop {
            let Some(message) = self.next_message(state.is_logged_in()).await? else {
                return Ok(());
            };
            if self.session_ended().await? {
                return Ok(());
            }
            let flow;
            (state, flow) = self.handle(state, message).await;
            // Answered: its literals' memory is free again.
            self.literal_budget.clear();
            if let Some(login) = state.login() {
                // Logged in: a stranger's slot is free again.
                self.stranger = None;
                self.session = Some((login.agent.id, login.agent.epoch));
            }
            self.flush().await?;
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
                Flow::StartTls => self.start_tls().await?,
            }
        }
    }

    pub async fn flush(&mut self) -> Result<(), ImapSessionError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(4096);
            }
        }
        Ok(())
    }

    /// Writes out what is buffered when it grows large (long FETCH responses).
    pub async fn flush_if_large(&mut self) -> Result<(), ImapSessionError> {
        if self.out.len() >= 256 * 1024 {
            self.flush().await?;
        }
        Ok(())
    }

    /// Reads until a whole command (line plus literals) is framed. Sends the
    /// continuation request a synchronizing literal needs, and refuses one
    /// that is too large before the client sends it. None: the client left
    /// or was sent away.
    ///
    /// Deadlines are per command, not per read: before login everything
    /// must be done by the login deadline; after login a client may wait
    /// `idle_timeout` between commands, and a command has `command_timeout`
    /// from its first byte (plus time for its literals' size). A line
    /// longer than `max_line_length` ends the connection having buffered
    /// no more than that: the stream cannot be resynchronized.
    async fn next_message(&mut self, logged_in: bool) -> Result<Option<Vec<u8>>, ImapSessionError> {
        // Small on purpose: the buffer is part of every connection's state
        // while it waits, and a thousand idle clients wait here at once.
        let mut buffer = [0u8; READ_CHUNK];
        let mut command_deadline = None;
        let max_literal = if logged_in {
            self.limits.max_literal_size
        } else {
            self.limits.max_line_length
        };
        loop {
            while let Some(fragment) = self.framer.next() {
                if let FragmentInfo::Line {
                    announcement: Some(literal),
                    ..
                } = fragment
                {
                    let length = literal.length as usize;
                    let deadline = tokio::time::Instant::now()
                        + self.limits.command_timeout
                        + literal_transfer_time(length);
                    // Waiting for a share of the budget gets the command's
                    // time, not the transfer's.
                    let wait_until = tokio::time::Instant::now() + self.limits.command_timeout;
                    let refusal = if length > max_literal {
                        Some(format!("[TOOBIG] Literal larger than {max_literal} bytes"))
                    } else if !self.reserve_literal(length, wait_until).await {
                        Some("[LIMIT] The server is receiving too much at once; try again".into())
                    } else {
                        None
                    };
                    match (literal.mode, refusal) {
                        (LiteralMode::Sync, None) => {
                            self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                            self.flush().await?;
                        }
                        (LiteralMode::Sync, Some(refusal)) => {
                            let tag = self.current_tag();
                            self.out
                                .extend_from_slice(format!("{tag} NO {refusal}\r\n").as_bytes());
                            self.flush().await?;
                            self.framer.skip_message();
                            self.literal_budget.clear();
                            continue;
                        }
                        // Its data comes anyway: read and dropped (the
                        // framer keeps no more than its limit of it).
                        (LiteralMode::NonSync, Some(_)) => self.framer.poison_message(),
                        (LiteralMode::NonSync, None) => {}
                    }
                    if logged_in {
                        command_deadline = Some(deadline);
                    }
                }
                if self.framer.is_message_complete() {
                    let refused = self.framer.is_refused();
                    let message = self.framer.take_message();
                    if refused {
                        self.literal_budget.clear();
                        let tag = self.current_tag_of(&message);
                        self.out.extend_from_slice(
                            format!("{tag} NO [TOOBIG] Command or literal too large\r\n")
                                .as_bytes(),
                        );
                        self.flush().await?;
                        continue;
                    }
                    return Ok(Some(message));
                }
            }
            let line_too_long = self
                .framer
                .line_so_far()
                .is_some_and(|length| length > self.limits.max_line_length);
            let too_much_before_login = !logged_in
                && self.framer.message_bytes().len() > max_command_before_login(&self.limits);
            if line_too_long || too_much_before_login {
                let tag = self.current_tag();
                self.out.extend_from_slice(
                    format!(
                        "{tag} BAD [TOOBIG] Command line longer than {} bytes\r\n\
                         * BYE [TOOBIG] Command line too long\r\n",
                        self.limits.max_line_length
                    )
                    .as_bytes(),
                );
                self.flush().await?;
                return Ok(None);
            }
            if self.shutdown.is_stopping() {
                self.out
                    .extend_from_slice(b"* BYE [UNAVAILABLE] Server shutting down\r\n");
                self.flush().await?;
                return Ok(None);
            }
            let now = tokio::time::Instant::now();
            let deadline = if !logged_in {
                self.login_deadline
            } else if self.framer.pending() == 0 {
                now + self.limits.idle_timeout
            } else {
                *command_deadline.get_or_insert(now + self.limits.command_timeout)
            };
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)) => read,
                _ = self.shutdown.stopped() => continue,
                _ = self.epochs.changed(), if self.session.is_some() => {
                    if self.session_ended().await? {
                        return Ok(None);
                    }
                    continue;
                }
            };
            let n = match read {
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(n)) => n,
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => {
                    let why = match (logged_in, self.framer.pending()) {
                        (false, _) => "* BYE Login time is up\r\n",
                        (true, 0) => "* BYE Autologout; idle for too long\r\n",
                        (true, _) => "* BYE Command not completed in time\r\n",
                    };
                    self.out.extend_from_slice(why.as_bytes());
                    self.flush().await?;
                    return Err(ImapSessionError::Timeout);
                }
            };
            self.framer.push(&buffer[..n]);
        }
    }

    /// Whether an administrator ended this agent's sessions (disabled
    /// them, set a new password); if so the client is told and the session
    /// ends.
    async fn session_ended(&mut self) -> Result<bool, ImapSessionError> {
        let Some((agent, epoch)) = self.session else {
            return Ok(false);
        };
        if self.app.session_is_current(agent, epoch) {
            return Ok(false);
        }
        tracing::info!(peer = %self.peer, agent, "imap: session ended by an administrator");
        self.out.extend_from_slice(
            b"* BYE [UNAVAILABLE] This session was ended by an administrator\r\n",
        );
        self.flush().await?;
        Ok(true)
    }

    /// Takes a share of the listener's budget for literal data in memory
    /// (all connections together) for a literal of `length` bytes, waiting
    /// until `deadline` at most. Small literals (a password, a search
    /// string) need none. Held until the command has been answered.
    async fn reserve_literal(&mut self, length: usize, deadline: tokio::time::Instant) -> bool {
        if length <= SMALL_LITERAL {
            return true;
        }
        let kib = u32::try_from(length.div_ceil(1024)).unwrap_or(u32::MAX);
        let budget = Arc::clone(&self.limits.literal_budget);
        match tokio::time::timeout_at(deadline, budget.acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => {
                self.literal_budget.push(permit);
                true
            }
            _ => false,
        }
    }

    /// Answers one framed command; returns the state it leaves.
    async fn handle(&mut self, state: State, message: Vec<u8>) -> (State, Flow) {
        // imap-codec reads every command except the extended forms of
        // `extended`, which exist only after login and are tried only when
        // the codec cannot read a command. A SEARCH with RETURN options goes
        // back to the codec without them.
        let logged_in = state.is_logged_in();
        // IMAP4rev2 quoted strings may hold UTF-8, which the codec reads
        // in literals only.
        let message = if self.rev2 {
            super::rev2::quoted_utf8_as_literals(&message).unwrap_or(message)
        } else {
            message
        };
        // `$` (SEARCHRES) is written out as the messages it names.
        let substituted = if logged_in && message.contains(&b'$') {
            let selected = match &state {
                State::Selected { mailbox, .. } => Some(&**mailbox),
                _ => None,
            };
            super::searchres::substitute(&message, selected, &self.saved)
        } else {
            Substituted::Unchanged
        };
        let message = match substituted {
            Substituted::Unchanged => message,
            Substituted::Rewritten(rewritten) => rewritten,
            Substituted::Empty(name) => {
                return self.answer_empty_saved(state, &message, name).await;
            }
        };
        let without_return;
        let mut decoded = CommandCodec::default().decode(&message);
        if logged_in && !matches!(decoded, Ok((b"", _))) {
            match extended::split_search_return(&message) {
                Some(Ok((rest, wanted))) => {
                    without_return = rest;
                    self.search_return = Some(wanted);
                    decoded = CommandCodec::default().decode(&without_return);
                }
                Some(Err(why)) => {
                    let tag = self.current_tag();
                    self.out
                        .extend_from_slice(format!("{tag} BAD {why}\r\n").as_bytes());
                    return (state, Flow::Continue);
                }
                None => {}
            }
        }
        let (state, tag, name, reply, flow) = match decoded {
            Ok((b"", command)) => {
                let tag = command.tag.as_ref().to_string();
                let name = command.body.name();
                // RFC 9051 §6.4.4: an IMAP4rev2 SEARCH answers with
                // ESEARCH, as if RETURN () had been asked.
                if self.rev2
                    && self.search_return.is_none()
                    && matches!(command.body, CommandBody::Search { .. })
                {
                    self.search_return = Some(extended::SearchReturn {
                        tag: tag.clone(),
                        all: true,
                        ..Default::default()
                    });
                }
                tracing::trace!(peer = %self.peer, %tag, name, "imap command");
                let (state, reply, flow) = self.dispatch(state, command).await;
                (state, tag, name, reply, flow)
            }
            _ => match (state.login(), extended::parse_list(&message)) {
                (Some(login), Some(Ok((tag, list)))) => {
                    tracing::trace!(peer = %self.peer, %tag, "imap extended LIST");
                    let reply = Box::pin(self.list_extended(login, &list, false)).await;
                    (state, tag, "LIST", reply, Flow::Continue)
                }
                (Some(_), Some(Err(why))) => {
                    let tag = self.current_tag();
                    (state, tag, "LIST", Reply::bad(why), Flow::Continue)
                }
                (None, Some(_)) => {
                    let tag = self.current_tag();
                    (
                        state,
                        tag,
                        "LIST",
                        Reply::bad("Log in first"),
                        Flow::Continue,
                    )
                }
                (Some(login), None) => match extended::parse_status(&message) {
                    Some(Ok((tag, name, items))) => {
                        let name = String::from_utf8_lossy(&name);
                        let name = super::rev2::stored_name(self.rev2, &name);
                        let reply = Box::pin(self.status_of(login, &name, &items)).await;
                        (state, tag, "STATUS", reply, Flow::Continue)
                    }
                    Some(Err(why)) => {
                        let tag = self.current_tag();
                        (state, tag, "STATUS", Reply::bad(why), Flow::Continue)
                    }
                    None => {
                        self.refuse_unparsed(&message);
                        return (state, Flow::Continue);
                    }
                },
                _ => {
                    self.refuse_unparsed(&message);
                    return (state, Flow::Continue);
                }
            },
        };
        self.search_return = None;
        self.finish(state, tag, name, reply, flow).await
    }

    /// A command whose `$` names no message (or that came with no mailbox
    /// selected): there is nothing to fetch, store, copy or expunge.
    async fn answer_empty_saved(
        &mut self,
        state: State,
        message: &[u8],
        name: &'static str,
    ) -> (State, Flow) {
        let tag = self.current_tag_of(message);
        let reply = if matches!(state, State::Selected { .. }) {
            Reply::ok(format!("{name} completed (no messages)"))
        } else {
            Reply::bad("Select a mailbox first")
        };
        self.finish(state, tag, name, reply, Flow::Continue).await
    }

    /// Ends a command: the pending changes, then the tagged reply.
    async fn finish(
        &mut self,
        mut state: State,
        tag: String,
        name: &str,
        reply: Reply,
        flow: Flow,
    ) -> (State, Flow) {
        // Pending changes are announced before the tagged reply (RFC 3501
        // §7): after commands that allow EXPUNGE, and EXISTS/FLAGS otherwise.
        // Not after SELECT/EXAMINE, which just read the mailbox: a change
        // slipped in since would follow the QRESYNC answer (VANISHED
        // (EARLIER), FETCH) inside the same command, where a client takes
        // the EXISTS it was given as the count; the next command tells it.
        if let State::Selected { login, mailbox } = &mut state
            && !matches!(flow, Flow::Close)
            && !matches!(name, "SELECT" | "EXAMINE")
        {
            let allow_expunge =
                !matches!(name, "FETCH" | "STORE" | "SEARCH") || matches!(reply.status, "BAD");
            if let Err(err) = self.refresh(login, mailbox, allow_expunge).await {
                tracing::warn!(%err, "imap refresh");
            }
            // Expunges held back: MODSEQs shown may be past them, so the
            // client is told where it really stands, last (RFC 7162
            // §3.2.10), lest a later QRESYNC from there miss them.
            if let (true, Some(known)) = (self.condstore, mailbox.held_back_at) {
                self.out.extend_from_slice(
                    format!("* OK [HIGHESTMODSEQ {known}] Expunges pending\r\n").as_bytes(),
                );
            }
        }
        self.out
            .extend_from_slice(format!("{tag} {} {}\r\n", reply.status, reply.text).as_bytes());
        (state, flow)
    }

    /// Answers a command nobody could parse: BAD, naming the command when
    /// it is one postdesk serves.
    fn refuse_unparsed(&mut self, message: &[u8]) {
        self.search_return = None;
        let tag = self.current_tag();
        let what = describe_parse_failure(message);
        self.out
            .extend_from_slice(format!("{tag} BAD {what}\r\n").as_bytes());
    }

    /// The tag of the command being framed (or just framed), for replies to
    /// commands that cannot be parsed; `*` when it has none.
    fn current_tag(&self) -> String {
        self.framer
            .decode_tag()
            .map(|t| t.as_ref().to_string())
            .unwrap_or_else(|| "*".into())
    }

    /// The tag of a framed command (the framer may have moved on).
    fn current_tag_of(&self, message: &[u8]) -> String {
        let end = message
            .iter()
            .position(|b| *b == b' ' || *b == b'\r' || *b == b'\n')
            .unwrap_or(message.len());
        match std::str::from_utf8(&message[..end]) {
            Ok(tag) if !tag.is_empty() => tag.to_string(),
            _ => "*".into(),
        }
    }

    /// Answers a parsed command in the state the session is in; returns
    /// the state the command leaves.
    async fn dispatch(&mut self, state: State, command: Command<'_>) -> (State, Reply, Flow) {
        let body = command.body;
        // Commands imap-codec reads but postdesk does not serve (nor
        // advertise): unknown here, whatever the state.
        if !is_served(&body) {
            return (state, Reply::bad("Unknown command"), Flow::Continue);
        }
        // Commands of every state (RFC 3501 §6.1).
        let reply = match body {
            CommandBody::Capability => {
                let caps = self.capabilities(state.is_logged_in());
                self.out
                    .extend_from_slice(format!("* CAPABILITY {caps}\r\n").as_bytes());
                Reply::ok("CAPABILITY completed")
            }
            CommandBody::Noop => Reply::ok("NOOP completed"),
            CommandBody::Logout => {
                self.out.extend_from_slice(b"* BYE Logging out\r\n");
                return (state, Reply::ok("LOGOUT completed"), Flow::Close);
            }
            CommandBody::Id { .. } => {
                self.out.extend_from_slice(
                    format!(
                        "* ID (\"name\" \"postdesk\" \"version\" \"{}\")\r\n",
                        env!("CARGO_PKG_VERSION")
                    )
                    .as_bytes(),
                );
                Reply::ok("ID completed")
            }
            // IDLE waits for as long as the client likes: it runs in a small
            // future of its own. The other commands' larger state is boxed,
            // so it is allocated while they run, not while a session idles
            // (issue 17: 10,000 connections in IDLE).
            body => {
                return match state.into_logged_in() {
                    None => Box::pin(self.not_authenticated(body)).await,
                    Some((login, mut selected)) if matches!(body, CommandBody::Idle) => {
                        let (reply, flow) = self.idle(&login, selected.as_deref_mut()).await;
                        (State::logged_in(login, selected), reply, flow)
                    }
                    Some((login, selected)) => {
                        Box::pin(self.logged_in(login, selected, body)).await
                    }
                };
            }
        };
        (state, reply, Flow::Continue)
    }

    /// Commands before login (RFC 3501 §6.2).
    async fn not_authenticated(&mut self, body: CommandBody<'_>) -> (State, Reply, Flow) {
        let attempt = match body {
            CommandBody::StartTLS => {
                let reply = if self.is_tls {
                    Reply::bad("TLS is already active")
                } else if self.tls.is_none() {
                    Reply::no("TLS is not available")
                } else {
                    return (
                        State::NotAuthenticated,
                        Reply::ok("Begin TLS negotiation now"),
                        Flow::StartTls,
                    );
                };
                Err(reply)
            }
            CommandBody::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.login(&user, &pass).await
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => match mechanism {
                // Refused before the client is asked for its credentials.
                AuthMechanism::Plain if !self.auth_allowed() => Err(privacy_required()),
                AuthMechanism::Plain => {
                    let response = match initial_response {
                        Some(ir) => Some(ir.declassify().to_vec()),
                        None => self.sasl_continuation().await,
                    };
                    match response {
                        None => Err(Reply::bad("AUTHENTICATE cancelled")),
                        Some(data) => self.authenticate_plain(&data).await,
                    }
                }
                _ => Err(Reply::no("Unsupported authentication mechanism; use PLAIN")),
            },
            _ => Err(Reply::bad("Log in first")),
        };
        match attempt {
            Ok(login) => {
                let reply = Reply::ok(format!(
                    "[CAPABILITY {}] Logged in",
                    self.capabilities(true)
                ));
                (State::Authenticated { login }, reply, Flow::Continue)
            }
            Err(reply) => (State::NotAuthenticated, reply, Flow::Continue),
        }
    }

    /// Commands after login (RFC 3501 §6.3), and with a mailbox selected
    /// (§6.4).
    async fn logged_in(
        &mut self,
        login: LoggedIn,
        mut selected: Option<Box<Selected>>,
        body: CommandBody<'_>,
    ) -> (State, Reply, Flow) {
        let reply = match body {
            CommandBody::StartTLS
            | CommandBody::Login { .. }
            | CommandBody::Authenticate { .. } => Reply::bad("Already authenticated"),
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for cap in capabilities.as_ref() {
                    if matches!(cap, CapabilityEnable::CondStore) {
                        self.condstore = true;
                        enabled.push("CONDSTORE");
                    } else if cap.to_string().eq_ignore_ascii_case("QRESYNC") {
                        // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
                        if let Some(mailbox) = selected.as_deref() {
                            self.enable_condstore(mailbox);
                        }
                        self.condstore = true;
                        self.qresync = true;
                        enabled.push("QRESYNC");
                    } else if cap.to_string().eq_ignore_ascii_case("IMAP4rev2") {
                        self.rev2 = true;
                        // RFC 9051 has no \Recent: a mailbox selected
                        // before (which RFC 5161 asks clients not to do)
                        // shows none from now on.
                        if let Some(mailbox) = selected.as_deref_mut() {
                            mailbox.recent.clear();
                        }
                        enabled.push("IMAP4rev2");
                    }
                }
                self.out
                    .extend_from_slice(format!("* ENABLED {}\r\n", enabled.join(" ")).as_bytes());
                Reply::ok("ENABLE completed")
            }
            CommandBody::Namespace => {
                self.out
                    .extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Reply::ok("NAMESPACE completed")
            }
            CommandBody::Select {
                mailbox,
                parameters,
            } => {
                // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1);
                // what follows is about the new one (RFC 7162 §3.2.11).
                // `$` starts empty in every mailbox (RFC 5182 §2.1).
                self.saved.clear();
                if selected.take().is_some() {
                    self.out
                        .extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
                }
                match self.select(&login, &mailbox, &parameters, false).await {
                    Ok((mailbox, reply)) => {
                        selected = Some(Box::new(mailbox));
                        reply
                    }
                    Err(reply) => reply,
                }
            }
            CommandBody::Examine {
                mailbox,
                parameters,
            } => {
                self.saved.clear();
                if selected.take().is_some() {
                    self.out
                        .extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
                }
                match self.select(&login, &mailbox, &parameters, true).await {
                    Ok((mailbox, reply)) => {
                        selected = Some(Box::new(mailbox));
                        reply
                    }
                    Err(reply) => reply,
                }
            }
            CommandBody::Create { mailbox } => self.create(&login, &mailbox).await,
            CommandBody::Delete { mailbox } => self.delete(&login, &mut selected, &mailbox).await,
            CommandBody::Rename { from, to } => {
                self.rename(&login, selected.as_deref_mut(), &from, &to)
                    .await
            }
            CommandBody::Subscribe { mailbox } => self.subscribe(&login, &mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&login, &mailbox, false).await,
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => {
                self.list(&login, &reference, &mailbox_wildcard, false)
                    .await
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(&login, &reference, &mailbox_wildcard, true).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(&login, &mailbox, &item_names).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                self.append(&login, &mailbox, &flags, date.as_ref(), &message)
                    .await
            }
            body => match selected.as_deref_mut() {
                None => Reply::bad("Select a mailbox first"),
                Some(mailbox) => match body {
                    CommandBody::Check => Reply::ok("CHECK completed"),
                    CommandBody::Close => match self.close(&login, mailbox, true).await {
                        Ok(()) => {
                            selected = None;
                            self.saved.clear();
                            Reply::ok("CLOSE completed")
                        }
                        Err(reply) => reply,
                    },
                    CommandBody::Unselect => match self.close(&login, mailbox, false).await {
                        Ok(()) => {
                            selected = None;
                            self.saved.clear();
                            Reply::ok("UNSELECT completed")
                        }
                        Err(reply) => reply,
                    },
                    CommandBody::Expunge => self.expunge(&login, mailbox, None).await,
                    CommandBody::ExpungeUid { sequence_set } => {
                        self.expunge(&login, mailbox, Some(&sequence_set)).await
                    }
                    CommandBody::Search {
                        charset,
                        criteria,
                        uid,
                    } => {
                        self.search(mailbox, charset.as_ref(), criteria.as_ref(), uid)
                            .await
                    }
                    CommandBody::Fetch {
                        sequence_set,
                        macro_or_item_names,
                        uid,
                        modifiers,
                    } => {
                        self.fetch(
                            &login,
                            mailbox,
                            &sequence_set,
                            &macro_or_item_names,
                            uid,
                            &modifiers,
                        )
                        .await
                    }
                    CommandBody::Store {
                        sequence_set,
                        kind,
                        response,
                        flags,
                        uid,
                        modifiers,
                    } => {
                        self.store_flags(
                            &login,
                            mailbox,
                            &sequence_set,
                            &kind,
                            &response,
                            &flags,
                            uid,
                            &modifiers,
                        )
                        .await
                    }
                    CommandBody::Copy {
                        sequence_set,
                        mailbox: target,
                        uid,
                    } => {
                        self.copy_or_move(&login, mailbox, &sequence_set, &target, uid, false)
                            .await
                    }
                    CommandBody::Move {
                        sequence_set,
                        mailbox: target,
                        uid,
                    } => {
                        self.copy_or_move(&login, mailbox, &sequence_set, &target, uid, true)
                            .await
                    }
                    other => Reply::bad(format!("{} is not supported", other.name())),
                },
            },
        };
        (State::logged_in(login, selected), reply, Flow::Continue)
    }

    /// Reads the client's answer to an empty continuation request (SASL):
    /// one base64 line, or `*` to cancel. None: cancelled or undecodable.
    async fn sasl_continuation(&mut self) -> Option<Vec<u8>> {
        self.out.extend_from_slice(b"+ \r\n");
        self.flush().await.ok()?;
        let line = self.next_message(false).await.ok()??;
        let line = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))?;
        if line == b"*" {
            return None;
        }
        base64::engine::general_purpose::STANDARD.decode(line).ok()
    }

    async fn authenticate_plain(&mut self, data: &[u8]) -> Result<LoggedIn, Reply> {
        // authzid NUL authcid NUL password (RFC 4616).
        let mut parts = data.split(|b| *b == 0);
        let (Some(authzid), Some(user), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Reply::bad("Malformed PLAIN response"));
        };
        let user = String::from_utf8_lossy(user).into_owned();
        if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(user.as_bytes()) {
            return Err(Reply::no(
                "[AUTHORIZATIONFAILED] Acting as another user is not allowed",
            ));
        }
        let pass = String::from_utf8_lossy(pass).into_owned();
        self.login(&user, &pass).await
    }

    /// Checks the credentials and takes one of the agent's connection slots.
    async fn login(&mut self, user: &str, pass: &str) -> Result<LoggedIn, Reply> {
        if !self.auth_allowed() {
            return Err(privacy_required());
        }
        let agent = match self
            .app
            .authenticate(user, pass, self.peer.ip(), "imap")
            .await
        {
            Ok(agent) => agent,
            Err(err) => return Err(Reply::no(format!("[UNAVAILABLE] {err}"))),
        };
        let Some(agent) = agent else {
            tracing::info!(peer = %self.peer, user, "imap: login failed");
            return Err(Reply::no("[AUTHENTICATIONFAILED] Invalid credentials"));
        };
        let Some(slot) = self
            .agent_slots
            .take(agent.id, self.limits.max_connections_per_agent)
        else {
            return Err(Reply::no("[LIMIT] Too many connections for this account"));
        };
        tracing::info!(peer = %self.peer, agent = %agent.email, "imap: logged in");
        Ok(LoggedIn { agent, _slot: slot })
    }

    async fn start_tls(&mut self) -> Result<(), ImapSessionError> {
        // Anything pipelined after STARTTLS came in clear text (RFC 3501 §6.2.1).
        self.framer.reset();
        let Some(acceptor) = &self.tls else {
            return Ok(());
        };
        let left = self
            .login_deadline
            .saturating_duration_since(tokio::time::Instant::now());
        match net::start_tls(&mut self.stream, acceptor, left).await {
            Ok(()) => {}
            Err(net::HandshakeError::Failed(err)) => {
                tracing::debug!(peer = %self.peer, %err, "TLS handshake failed");
                return Err(ImapSessionError::Io(err));
            }
            Err(net::HandshakeError::Timeout) => return Err(ImapSessionError::Timeout),
        }
        self.is_tls = true;
        Ok(())
    }

    /// Every change announced so far, taken from the channel.
    fn take_heard(&mut self, agent: i64) -> Heard {
        let heard = &mut self.heard;
        let upto = self
            .app
            .store
            .take_announced(&mut self.changes, |change| heard.hear(change, agent));
        Heard {
            upto,
            ..std::mem::take(&mut self.heard)
        }
    }

    /// A CONDSTORE-enabling command (RFC 7162 §3.1: FETCH MODSEQ or
    /// CHANGEDSINCE, SEARCH MODSEQ, STORE UNCHANGEDSINCE) turns CONDSTORE on
    /// for the rest of the session; the first one tells the client the
    /// selected mailbox's HIGHESTMODSEQ, so it learns where it stands.
    pub fn enable_condstore(&mut self, selected: &Selected) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        // While an expunge is held back the mailbox's own value is cleared
        // (the next refresh reads it again): the client knows at least the
        // MODSEQs of the messages it was shown.
        let known = selected
            .messages
            .iter()
            .map(|m| m.modseq)
            .max()
            .unwrap_or(0);
        let highest = match selected.held_back_at {
            Some(known) => known,
            None => selected.mailbox.highestmodseq.max(known),
        };
        self.out
            .extend_from_slice(format!("* OK [HIGHESTMODSEQ {highest}] Highest\r\n").as_bytes());
    }

    /// How this session reports changes, by what it enabled.
    pub fn updates(&self) -> super::selected::Updates {
        super::selected::Updates {
            condstore: self.condstore,
            qresync: self.qresync,
            recent: !self.rev2,
        }
    }

    /// Forgets what was heard (a view being selected is reconciled anew).
    pub fn forget_heard_changes(&mut self) {
        while self.changes.try_recv().is_ok() {}
        self.heard = Heard::default();
    }

    /// Brings the selected view up to date with what changed, then tells
    /// the client what is new (see [`Selected::apply`]).
    ///
    /// The cost follows the changes, not the view: the tickets announced
    /// since the last refresh are reconciled (a full reconcile only when
    /// a change did not say which tickets), and the session reads the
    /// members changed since the MODSEQ it knows and the UIDs that left.
    pub async fn refresh(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        allow_expunge: bool,
    ) -> Result<(), StoreError> {
        // Boxed: its state (the store's reads and reconciles) exists while
        // it runs, not in the state of an IDLE that waits between refreshes.
        Box::pin(self.refresh_now(login, selected, allow_expunge)).await
    }

    async fn refresh_now(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        allow_expunge: bool,
    ) -> Result<(), StoreError> {
        let is_ticket_view = selected.folder.is_ticket_view();
        let has_nothing_to_read = is_ticket_view
            && selected.current_as_of == Some(self.app.store.announced())
            // Expunges held back during FETCH, STORE or SEARCH are due now.
            && (selected.held_back_at.is_none() || !allow_expunge)
            && selected.reconciled_in_full_at.elapsed() < FULL_RECONCILE_EVERY;
        if is_ticket_view {
            let gauges = &self.app.gauges;
            let counter = if has_nothing_to_read {
                &gauges.imap_refreshes_current
            } else {
                &gauges.imap_refreshes_read
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if has_nothing_to_read {
            return Ok(());
        }
        selected.current_as_of = None;
        let upto = self.read_changes(login, selected, allow_expunge).await?;
        if is_ticket_view {
            selected.current_as_of = upto;
        }
        Ok(())
    }

    /// Brings the selected mailbox up to date from the store. Returns the
    /// count of announced changes it covers, None when the mailbox is gone.
    async fn read_changes(
        &mut self,
        login: &LoggedIn,
        selected: &mut Selected,
        allow_expunge: bool,
    ) -> Result<Option<u64>, StoreError> {
        let mut heard = self.take_heard(login.agent.id);
        // The sessions showing a view take turns. One that finds every
        // change it heard covered by another's reconcile reads the result
        // below; one that reconciles first takes what was announced while
        // it waited, and covers everything until its turn, so that the
        // sessions that waited behind it find nothing left (each used to
        // reconcile the few changes more it had heard than the one before
        // it, in turn: issue 17's 100 sessions at 1,000 msg/s went round
        // once in two seconds).
        let mut synced = if selected.folder.is_ticket_view() {
            Some(self.app.store.view_sync(selected.mailbox.id).await)
        } else {
            None
        };
        let due_in_full = selected.reconciled_in_full_at.elapsed() >= FULL_RECONCILE_EVERY;
        if synced
            .as_ref()
            .is_some_and(|synced| due_in_full || **synced < heard.upto)
        {
            let later = self.take_heard(login.agent.id);
            heard.take_in(later);
        }
        let upto = heard.upto;
        if selected.folder.is_knowledge() {
            // Articles: their own marker (the newest revision); a change
            // of the knowledge base is announced as "everything".
            let marker = self.view_marker(login, &selected.folder).await?;
            if marker != selected.marker {
                let known = selected.marker.clone();
                self.reconcile(login, selected.mailbox.id, &selected.folder, false, &known)
                    .await?;
                selected.reconciled_in_full_at = std::time::Instant::now();
            }
            selected.marker = marker;
        } else if let Some(synced) = synced.as_mut() {
            // `due_in_full`: a change committed but never announced (a node
            // that died between its commit and its NOTIFY) is caught up
            // within this. A view changes by the tickets announced (or
            // everything, when which is not said); other announcements
            // (another agent's \Seen, outbound mail) leave it as it is.
            if due_in_full || **synced < upto {
                if due_in_full || heard.everything {
                    self.reconcile(
                        login,
                        selected.mailbox.id,
                        &selected.folder,
                        due_in_full,
                        "",
                    )
                    .await?;
                    selected.reconciled_in_full_at = std::time::Instant::now();
                } else if !heard.tickets.is_empty() {
                    let tickets: Vec<i64> = heard.tickets.into_iter().collect();
                    self.reconcile_tickets(login, selected.mailbox.id, &selected.folder, &tickets)
                        .await?;
                }
                **synced = (**synced).max(upto);
            }
        }
        drop(synced);
        let store = &self.app.store;
        let mailbox = match store.imap_mailbox(selected.mailbox.id).await {
            Ok(mailbox) => mailbox,
            Err(StoreError::NotFound(_)) => {
                // Deleted under us (another session): nothing more to show.
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        if mailbox.highestmodseq == selected.mailbox.highestmodseq
            && mailbox.uidnext == selected.mailbox.uidnext
        {
            return Ok(Some(upto));
        }
        // The changes since the MODSEQ the session knows, when it knows
        // one; else the whole membership.
        let (delta, members) = if selected.knows_changes_since() {
            let (changed, gone) = store
                .imap_changes_since(mailbox.id, selected.mailbox.highestmodseq)
                .await?;
            (Some((changed, gone)), Vec::new())
        } else {
            selected.refreshed_at = std::time::Instant::now();
            (None, store.imap_members_now(&mailbox).await?)
        };
        let newest = match &delta {
            Some((changed, gone)) => changed
                .iter()
                .map(|m| m.uid)
                .filter(|uid| !gone.contains(uid))
                .max()
                .unwrap_or(0),
            None => members.last().map(|m| m.uid).unwrap_or(0),
        };
        // Another session of the agent may have claimed the new messages'
        // \Recent already: then nothing is written.
        // An IMAP4rev2 session has no \Recent (RFC 9051): it claims none,
        // and leaves them to the IMAP4rev1 sessions.
        let recent_above = if self.rev2
            || selected.read_only
            || newest <= selected.max_uid()
            || newest <= mailbox.recent_uid
        {
            mailbox.recent_uid
        } else {
            store.imap_claim_recent(mailbox.id, newest).await?
        };
        let updates = self.updates();
        match delta {
            Some(changes) => selected.apply_changes(
                mailbox,
                changes,
                recent_above,
                allow_expunge,
                updates,
                &mut self.out,
            ),
            None => selected.apply(
                mailbox,
                members,
                recent_above,
                allow_expunge,
                updates,
                &mut self.out,
            ),
        };
        Ok(Some(upto))
    }

    /// IDLE (RFC 2177): reports changes as they happen until DONE.
    async fn idle(
        &mut self,
        login: &LoggedIn,
        mut selected: Option<&mut Selected>,
    ) -> (Reply, Flow) {
        self.out.extend_from_slice(b"+ idling\r\n");
        let _idling = crate::telemetry::Held::new(self.app.gauges.clone(), |g| &g.imap_idle);
        if let Some(selected) = selected.as_deref_mut()
            && let Err(err) = self.refresh(login, selected, true).await
        {
            tracing::warn!(%err, "imap refresh");
        }
        if self.flush().await.is_err() {
            return (Reply::bad("connection lost"), Flow::Close);
        }
        let deadline = tokio::time::Instant::now() + self.limits.idle_timeout;
        let mut buffer = [0u8; 64];
        loop {
            // Framing is line based here: the only valid input is DONE.
            while let Some(fragment) = self.framer.next() {
                if self.framer.is_message_complete() {
                    let line = self.framer.fragment_bytes(fragment).to_vec();
                    self.framer.end_of_message();
                    let word = line.trim_ascii();
                    if word.eq_ignore_ascii_case(b"DONE") {
                        return (Reply::ok("IDLE terminated"), Flow::Continue);
                    }
                    return (Reply::bad("Expected DONE"), Flow::Continue);
                }
            }
            if self.shutdown.is_stopping() {
                self.out
                    .extend_from_slice(b"* BYE [UNAVAILABLE] Server shutting down\r\n");
                let _ = self.flush().await;
                return (Reply::ok("IDLE terminated"), Flow::Close);
            }
            tokio::select! {
                read = self.stream.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return (Reply::bad("connection lost"), Flow::Close),
                    Ok(n) => {
                        self.framer.push(&buffer[..n]);
                        if self.framer.pending() > self.limits.max_line_length {
                            return (Reply::bad("Expected DONE"), Flow::Close);
                        }
                    }
                },
                change = self.changes.recv() => {
                    let change = match change {
                        Ok(change) => Ok(change),
                        Err(broadcast::error::RecvError::Closed) => {
                            return (Reply::ok("IDLE terminated"), Flow::Close);
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            Err(broadcast::error::TryRecvError::Lagged(n))
                        }
                    };
                    self.heard.hear(change, login.agent.id);
                    // Let a burst of changes settle, then report them once
                    // (the refresh takes in the rest of the burst).
                    tokio::time::sleep(SETTLE).await;
                    if let Some(selected) = selected.as_deref_mut()
                        && let Err(err) = self.refresh(login, selected, true).await
                    {
                        tracing::warn!(%err, "imap refresh");
                    }
                    if self.flush().await.is_err() {
                        return (Reply::bad("connection lost"), Flow::Close);
                    }
                }
                _ = self.epochs.changed(), if self.session.is_some() => {
                    if matches!(self.session_ended().await, Ok(true) | Err(_)) {
                        return (Reply::ok("IDLE terminated"), Flow::Close);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.out.extend_from_slice(b"* BYE Autologout; idle for too long\r\n");
                    let _ = self.flush().await;
                    return (Reply::ok("IDLE terminated"), Flow::Close);
                }
                _ = self.shutdown.stopped() => {}
            }
        }
    }
}

fn privacy_required() -> Reply {
    Reply::no("[PRIVACYREQUIRED] Use STARTTLS (or port 993) before logging in")
}

/// The framer for a session: a command may carry an APPEND's literal
/// (before login, [`ImapSession::next_message`] allows much less).
fn framer(limits: &ImapLimits) -> Framer {
    Framer::new(
        limits
            .max_literal_size
            .saturating_add(limits.max_line_length),
    )
}

/// Literals up to this size take nothing from the literal budget.
const SMALL_LITERAL: usize = 64 * 1024;

/// The most a command may hold before login: LOGIN with two literals.
fn max_command_before_login(limits: &ImapLimits) -> usize {
    limits.max_line_length.saturating_mul(3)
}

/// Slowest transfer a literal is given time for, in bytes per second
/// (on top of `command_timeout`).
const SLOWEST_LITERAL_RATE: usize = 32 * 1024;

fn literal_transfer_time(length: usize) -> Duration {
    Duration::from_secs(u64::try_from(length / SLOWEST_LITERAL_RATE).unwrap_or(u64::MAX))
}

/// Whether postdesk answers a command imap-codec reads. The others are
/// not advertised and are answered `BAD Unknown command`.
fn is_served(body: &CommandBody<'_>) -> bool {
    !matches!(
        body,
        CommandBody::Compress { .. }
            | CommandBody::GetQuota { .. }
            | CommandBody::GetQuotaRoot { .. }
            | CommandBody::SetQuota { .. }
            | CommandBody::Sort { .. }
            | CommandBody::Thread { .. }
    )
}

/// The commands postdesk answers (with `UID` the ones it prefixes), by
/// name: a command line imap-codec cannot parse is a syntax error in one of
/// these, or an unknown command.
const SERVED_COMMANDS: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "XLIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "IDLE",
    "ENABLE",
    "NAMESPACE",
    "ID",
];

/// A BAD reply's text for a command imap-codec could not parse: the
/// command name when it is one postdesk answers, so the client knows which
/// one, else `Unknown command`.
fn describe_parse_failure(message: &[u8]) -> String {
    let line_end = message
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(message.len());
    let line = String::from_utf8_lossy(&message[..line_end]);
    let mut words = line.split(' ');
    let _tag = words.next();
    let mut name = match words.next() {
        Some(name) if !name.is_empty() => name.to_ascii_uppercase(),
        _ => return "Missing command".to_string(),
    };
    if name == "UID" {
        match words.next() {
            Some(next) if !next.is_empty() => name = format!("UID {}", next.to_ascii_uppercase()),
            _ => return "Syntax error in UID".to_string(),
        }
    }
    let known = SERVED_COMMANDS.contains(&name.as_str())
        || name.strip_prefix("UID ").is_some_and(|rest| {
            ["FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"].contains(&rest)
        });
    if !known {
        return "Unknown command".to_string();
    }
    if line.ends_with(' ') {
        format!("Syntax error in {name}: trailing space")
    } else {
        format!("Syntax error in {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_failures_name_the_command() {
        assert_eq!(
            describe_parse_failure(b"a1 FETCH 1 (FLAGS\r\n"),
            "Syntax error in FETCH"
        );
        assert_eq!(
            describe_parse_failure(b"a1 uid fetch 1 (FLAGS\r\n"),
            "Syntax error in UID FETCH"
        );
        assert_eq!(
            describe_parse_failure(b"a1 FROBNICATE\r\n"),
            "Unknown command"
        );
        assert_eq!(
            describe_parse_failure(b"a1 UID FROB 1\r\n"),
            "Unknown command"
        );
        assert_eq!(
            describe_parse_failure(b"a1 NOOP \r\n"),
            "Syntax error in NOOP: trailing space"
        );
        assert_eq!(describe_parse_failure(b"a1\r\n"), "Missing command");
    }
}
