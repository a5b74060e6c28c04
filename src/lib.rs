//! postdesk: an email-native helpdesk server.
//!
//! Mail comes in over SMTP ([`smtp`]) and goes through one pipeline
//! ([`ingest`]) into the [`store`], where it becomes a ticket or the next
//! message of one. The [`domain`] holds the rules (threading, loop
//! protection) as pure functions; [`outbound`] delivers what postdesk sends.

pub mod cli;
pub mod config;
pub mod disk;
pub mod dkim;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod imap;
pub mod import;
pub mod ingest;
pub mod mime;
pub mod net;
pub mod outbound;
pub mod passwords;
pub mod private_files;
pub mod reports;
pub mod rules;
pub mod search;
pub mod server;
pub mod smtp;
pub mod store;
pub mod submission;
pub mod telemetry;
pub mod templates;
pub mod tls;
pub mod verify;

use config::Config;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{Queue, Store};
use tokio::sync::RwLock;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Search(#[from] search::SearchError),
    #[error(transparent)]
    Dkim(#[from] dkim::DkimError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// The shared handles of a running postdesk (or of one CLI command).
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub templates: templates::Templates,
    /// The search index, once a server opened it (IMAP SEARCH reads it).
    pub search: std::sync::OnceLock<Arc<search::SearchIndex>>,
    /// The knowledge-base articles an acknowledgement may suggest.
    pub articles: search::articles::ArticleIndex,
    /// Signs and checks the acknowledgement's "this solved my problem" links.
    pub kb_links: domain::knowledge::SolvedLinks,
    /// Which queues' agents write which knowledge-base categories (from
    /// the configured queues; every write of an article is checked with it).
    pub kb_scopes: domain::knowledge::CategoryScopes,
    /// Whether there is room for new mail (the low-disk guard).
    pub disk: disk::DiskGuard,
    /// Mints and recognizes postdesk's own Message-IDs.
    pub own_ids: domain::message_id::OwnIds,
    /// Every agent's session epoch, as last read from the store (a server refreshes it every second, so that a
    /// disabled agent's sessions end within seconds, on every node).
    pub sessions: tokio::sync::watch::Sender<Arc<SessionEpochs>>,
    /// Failed logins, shared by IMAP and submission.
    pub logins: passwords::LoginThrottle,
    /// SPF, DKIM and DMARC of inbound mail (or a trusted relay's verdicts).
    pub sender_auth: verify::SenderVerifier,
    /// The rules in force (reloaded on SIGHUP).
    pub rules: Arc<rules::RulesHandle>,
    /// Wakes the SLA scheduler after a reload.
    pub rules_reloaded: Arc<tokio::sync::Notify>,
    /// This server's gauges for `/metrics` (sessions, queue depth, lags).
    pub gauges: Arc<telemetry::Gauges>,
    queues: RwLock<(Instant, Arc<Vec<Queue>>)>,
}

/// Agent id → session epoch (moved by disabling and by a new password).
pub type SessionEpochs = std::collections::HashMap<i64, i64>;

/// How long the queue list is trusted before it is read again (so that a
/// `postdesk queue add` reaches a running server without a restart).
const QUEUE_CACHE: Duration = Duration::from_secs(5);

impl App {
    /// Connects to the store, migrates it, and creates or updates the
    /// configured queues (or the default `support@HOSTNAME` on a fresh store).
    pub async fn open(config: Config) -> Result<Arc<App>, AppError> {
        let rules = rules::RulesHandle::open(config.rules_path());
        App::open_with_rules(config, rules).await
    }

    /// As [`App::open`], with rules already loaded (a server loads them
    /// strictly, before anything else).
    pub async fn open_with_rules(
        config: Config,
        rules: rules::RulesHandle,
    ) -> Result<Arc<App>, AppError> {
        let store = Store::connect(&config.database_url()).await?;
        store.migrate().await?;
        let existing = store.queues().await?;
        if !config.queues.is_empty() || existing.is_empty() {
            for queue in config.queues_or_default() {
                store.upsert_queue(&queue.name, &queue.address).await?;
            }
        }
        let templates = templates::Templates::load(config.autoreply.templates_dir.as_deref())?;
        let queues = store.queues().await?;
        let disk = disk::DiskGuard::new(&config.data_dir, config.storage.min_free_mb);
        let secret = store.secret("message-id-key").await?;
        let own_ids =
            domain::message_id::OwnIds::new(&config.message_id_domain(), secret.as_bytes());
        let kb_links =
            domain::knowledge::SolvedLinks::new(store.secret("kb-solved-key").await?.as_bytes());
        let (sessions, _) = tokio::sync::watch::channel(Arc::new(SessionEpochs::new()));
        let sender_auth = verify::SenderVerifier::new(&config);
        let kb_scopes = config.knowledge_scopes();
        Ok(Arc::new(App {
            disk,
            own_ids,
            sessions,
            config: Arc::new(config),
            store,
            templates,
            search: std::sync::OnceLock::new(),
            articles: search::articles::ArticleIndex::default(),
            kb_links,
            kb_scopes,
            logins: passwords::LoginThrottle::default(),
            sender_auth,
            rules: Arc::new(rules),
            rules_reloaded: Arc::new(tokio::sync::Notify::new()),
            gauges: Arc::default(),
            queues: RwLock::new((Instant::now(), Arc::new(queues))),
        }))
    }

    /// Reads rules.toml again. A file with mistakes is refused (and
    /// logged) and the rules in force stay; new rules make the scheduler
    /// look at every ticket with clocks.
    pub async fn reload_rules(&self) -> Result<Arc<rules::Rules>, AppError> {
        match self.rules.reload() {
            Ok(rules) => {
                tracing::info!(
                    rules = rules.rules.len(),
                    escalations = rules.escalations.len(),
                    slas = rules.policies.len(),
                    "rules reloaded"
                );
                self.store.sla_recheck_all(chrono::Utc::now()).await?;
                self.rules_reloaded.notify_waiters();
                self.audit_rules_loaded().await;
                Ok(rules)
            }
            Err(err) => {
                tracing::error!(%err, "rules not reloaded; the rules in force stay");
                Err(err.into())
            }
        }
    }

    /// Records in the audit log which rules file (by digest) this node now
    /// runs, whoever sent the signal.
    async fn audit_rules_loaded(&self) {
        let Some(path) = self.config.rules_path() else {
            return;
        };
        let target = match rules::RulesHandle::file_digest(&path) {
            Ok(digest) => format!("{} sha256 {digest}", path.display()),
            Err(err) => format!("{} ({err})", path.display()),
        };
        let entry = store::AuditEntry {
            at: chrono::Utc::now(),
            actor: format!("server on {} (SIGHUP)", self.config.hostname),
            action: "rules loaded".to_string(),
            target,
            command: String::new(),
        };
        if let Err(err) = self.store.record_audit(&entry).await {
            tracing::warn!(%err, "the rules reload is not in the audit log");
        }
    }

    /// What the SLA scheduler works with: its share of the handles.
    pub fn scheduler(&self) -> rules::scheduler::Scheduler {
        rules::scheduler::Scheduler {
            store: self.store.clone(),
            rules: Arc::clone(&self.rules),
            templates: self.templates.clone(),
            hostname: self.config.hostname.clone(),
            own_ids: self.own_ids.clone(),
            reloaded: Arc::clone(&self.rules_reloaded),
        }
    }

    /// The queues, re-read from the store when the cached list is stale.
    pub async fn queues(&self) -> Result<Arc<Vec<Queue>>, store::StoreError> {
        {
            let cached = self.queues.read().await;
            if cached.0.elapsed() < QUEUE_CACHE {
                return Ok(cached.1.clone());
            }
        }
        self.refresh_queues().await
    }

    pub async fn refresh_queues(&self) -> Result<Arc<Vec<Queue>>, store::StoreError> {
        let fresh = Arc::new(self.store.queues().await?);
        *self.queues.write().await = (Instant::now(), fresh.clone());
        Ok(fresh)
    }

    /// Checks an agent's login (IMAP and submission alike), slowed down by
    /// earlier failures as [`domain::login`] decides: a pair (address, IP)
    /// that failed waits before its password is checked, a failure is
    /// answered late, and one IP has only a few attempts checked at once.
    /// Unknown users are checked against a dummy hash, so they take as long
    /// as known ones. A failure is logged as one line for fail2ban:
    /// `authentication failed: user=… ip=… service=…`. None: no such agent
    /// or a wrong password.
    pub async fn authenticate(
        &self,
        user: &str,
        password: &str,
        ip: std::net::IpAddr,
        service: &str,
    ) -> Result<Option<store::LoginAgent>, store::StoreError> {
        let _slot = self.logins.attempt(ip).await;
        let before = domain::login::delay_before_check(self.logins.failures(user, ip));
        if !before.is_zero() {
            tokio::time::sleep(before).await;
        }
        let agent = self.store.login_agent(user).await?;
        let verifier = passwords::Verifier::global();
        let verified = match &agent {
            Some(agent) => verifier.verify(password, &agent.password_hash).await,
            None => {
                if let Some(dummy) = passwords::dummy_hash() {
                    verifier.verify(password, dummy).await;
                }
                false
            }
        };
        if verified {
            self.logins.login_succeeded(user, ip);
            return Ok(agent);
        }
        self.logins.login_failed(user, ip);
        tracing::warn!(
            target: "postdesk::auth",
            "authentication failed: user={} ip={ip} service={service}",
            user.escape_debug()
        );
        let after = domain::login::delay_after_failure(self.logins.failures(user, ip));
        if !after.is_zero() {
            tokio::time::sleep(after).await;
        }
        Ok(None)
    }

    /// Whether a session an agent opened at `epoch` may go on: not when
    /// the agent was disabled or got a new password since (both move the
    /// epoch past the session's). A reading older than the login (an agent
    /// added or enabled a moment ago) does not end it.
    pub fn session_is_current(&self, agent: i64, epoch: i64) -> bool {
        match self.sessions.borrow().get(&agent) {
            Some(now) => *now <= epoch,
            None => true,
        }
    }

    /// Reads the agents' session epochs again; tells the sessions when
    /// something changed.
    pub async fn refresh_sessions(&self) -> Result<(), store::StoreError> {
        let fresh = self.store.session_epochs().await?;
        self.sessions.send_if_modified(|current| {
            if **current == fresh {
                return false;
            }
            *current = Arc::new(fresh);
            true
        });
        Ok(())
    }

    /// The queue an address (or its plus-address) belongs to.
    pub async fn queue_for(&self, address: &str) -> Result<Option<Queue>, store::StoreError> {
        let Some(recipient) = domain::address::Recipient::parse(address) else {
            return Ok(None);
        };
        let find = |queues: &[Queue]| queues.iter().find(|q| q.address == recipient.base).cloned();
        if let Some(queue) = find(&self.queues().await?) {
            return Ok(Some(queue));
        }
        // Unknown: perhaps a queue was added since the cache was filled.
        Ok(find(&self.refresh_queues().await?))
    }
}
