//! The store: the source of truth, on SQLite (embedded default) or PostgreSQL.
//!
//! One API over both backends. Each statement is written once and compiled
//! for each pool type (`dispatch!`, `on_tx!`); SQL is kept to the
//! common dialect (`$n` parameters work on both) so the two cannot drift.
//! The store only stores: what a change or a filing does is decided in
//! `domain` from facts the store read, and the store executes that plan.
//!
//! Why not sqlx's `Any` driver: it maps every value to a small common set
//! of types (no `DateTime<Utc>` on both backends, integers and booleans
//! that SQLite and PostgreSQL encode differently), needs each query's
//! dialect spelled out anyway (`FOR UPDATE`, `SKIP LOCKED`), and decodes
//! through an extra layer on every row of a header sync. One body compiled
//! per backend keeps native types and native speed.
//!
//! SQLite allows one writer at a time; instead of letting concurrent
//! transactions fight over the lock (and fail with SQLITE_BUSY when a read
//! transaction tries to upgrade), writes go through a pool of exactly one
//! connection, which queues them fairly, while reads use a separate pool.

mod admin;
mod agent_mail;
mod collision;
mod events;
mod filing;
mod header_cache;
mod imap;
mod knowledge;
mod member_snapshots;
mod membership;
mod merge;
mod messages;
mod notify;
mod outbound;
mod read_only;
mod report;
mod satisfaction;
mod search;
mod sla;
mod templates;
mod ticket_change;
mod tickets;
mod timed_reads;
mod view_batch;

pub use admin::{Agent, AgentUpdate, AuditEntry, Queue};
pub use agent_mail::{AgentMailFiled, AgentMailRequest, BuildAgentMail, Participant, ReplyTarget};
pub use collision::{HeldReply, HoldRequest};
pub use filing::WriterStats;
pub use imap::{
    Content, EXPUNGED_KEPT_SECONDS, FlagOp, LoginAgent, Mailbox, MailboxCounts, Member, MessageRef,
    StorageItem, Viewer, join_flags,
};
pub use knowledge::{
    Article, ArticleFilter, ArticleUsage, ArticleWrite, Revision, TicketUsage, ViewRevision,
};
pub use merge::{MergeDone, MergeRequest, SplitDone, SplitRequest};
pub use notify::ChangeListener;
pub use outbound::{FailureNote, OutboundItem, OutboundStatus};
pub use satisfaction::{Rated, SurveyCandidate, SurveyOutcome, SurveyState, SurveyWrite};
pub use search::{IndexableMessage, IndexableTicket, LoggedEvent, SystemNote};
pub use sla::{SlaClaim, SlaWork};
pub use templates::{NewTemplate, Template};
pub use tickets::{Event, MessageRecord, Ticket, TicketFilter};

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An agent asked for what their role or queues do not allow.
    #[error("{0}")]
    Denied(crate::domain::permission::Denied),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A reply to hold: the ticket changed after the message it answers
    /// (found while filing it, with the ticket locked).
    #[error("the ticket changed after the message the reply answers")]
    Collided(Vec<crate::domain::collision::Newer>),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database's schema is missing or does not match this postdesk
    /// (from [`Store::connect_read_only`], which does not migrate).
    #[error("database {url} {problem}")]
    Schema { url: String, problem: String },
}

impl StoreError {
    /// True when the database refused a row because it already exists.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            _ => false,
        }
    }

    /// True when the write failed for want of space: SQLite's
    /// SQLITE_FULL, PostgreSQL's class 53 (disk full, insufficient
    /// resources), or ENOSPC from the file system. The server then answers
    /// "insufficient storage" (452 4.3.1) instead of a generic failure.
    pub fn is_storage_full(&self) -> bool {
        const ENOSPC: i32 = 28;
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => match db.code().as_deref() {
                // SQLite: SQLITE_FULL (13), and its extended codes.
                Some(code) if code.parse::<i32>().is_ok_and(|c| c & 0xff == 13) => true,
                // PostgreSQL SQLSTATE 53000 insufficient_resources, 53100 disk_full.
                Some("53000" | "53100") => true,
                _ => false,
            },
            StoreError::Database(sqlx::Error::Io(err)) => err.raw_os_error() == Some(ENOSPC),
            StoreError::CreateDir { source, .. } => source.raw_os_error() == Some(ENOSPC),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What changed, for the parts of the server that react to changes (the
/// outbound worker, IMAP IDLE, the search indexer, the SLA scheduler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Ticket(i64),
    OutboundQueued,
    /// Something changed that this process did not do (CLI, another node).
    External,
    /// An agent's \Seen set changed.
    Seen(i64),
}

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite { write: SqlitePool, read: SqlitePool },
    Postgres(PgPool),
}

#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    changes: broadcast::Sender<Change>,
    /// This process among the nodes of one database (random per start): its
    /// own notifications come back to it and are ignored.
    node: u64,
    /// Sends announced changes to the other nodes (PostgreSQL).
    notifier: Option<notify::Notifier>,
    /// The SQLite group-commit writer's queue (see [`filing::sqlite_writer`]):
    /// messages to file and mailboxes to bring in line.
    filer: Option<tokio::sync::mpsc::Sender<filing::WriteJob>>,
    /// What that writer did (batches formed, messages refiled).
    writer_stats: std::sync::Arc<std::sync::Mutex<WriterStats>>,
    /// Which changes the views were brought up to date with (see
    /// [`ViewSyncs`]).
    pub(crate) view_syncs: ViewSyncs,
    /// Recently selected mailboxes' members (see [`member_snapshots`]).
    member_snapshots: member_snapshots::MemberSnapshots,
    /// Headers of messages that never change (see [`header_cache`]).
    header_cache: header_cache::HeaderCache,
    /// Per mailbox, the UID up to which this process's sessions claimed
    /// `\Recent` (see [`Store::imap_claim_recent`]).
    recent_claims: MailboxLocks<u32>,
    /// Reconciles of some tickets waiting to be done together (see
    /// [`view_batch`]).
    view_batches: view_batch::ViewBatches,
}

/// How far each mailbox's members were brought up to date, counted in
/// announcements ([`Store::announced`]), so that the sessions showing one
/// mailbox reconcile it once per change, not once each.
///
/// Every session hears every change and used to reconcile its view for
/// it: 20 sessions on one view made 20 reconciles, each a write
/// transaction on SQLite's one writer (issue 17: ~2 membership writes
/// per message filed, and the filing queue waited behind them). A
/// session now reconciles under its mailbox's lock, and skips when
/// another session already covered every change it heard.
#[derive(Clone, Default)]
pub(crate) struct ViewSyncs {
    /// Changes announced so far; counted with each send, under
    /// `announcing`.
    announced: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Held while a change is sent and counted, and while a session takes
    /// its changes and reads the count: what it took is then exactly the
    /// changes counted, none sent and not yet counted (see
    /// [`Store::take_announced`]).
    announcing: std::sync::Arc<std::sync::Mutex<()>>,
    mailboxes: MailboxLocks<u64>,
}

/// One value per IMAP mailbox that the sessions showing it take turns on
/// (an async lock each, made on first use; one entry per mailbox that
/// was selected since the start, a few bytes each).
#[derive(Clone, Default)]
pub(crate) struct MailboxLocks<T> {
    locks: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<i64, std::sync::Arc<tokio::sync::Mutex<T>>>>,
    >,
}

impl<T: Default> MailboxLocks<T> {
    pub(crate) async fn lock(&self, mailbox_id: i64) -> tokio::sync::OwnedMutexGuard<T> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::sync::Arc::clone(locks.entry(mailbox_id).or_default())
        };
        lock.lock_owned().await
    }
}

/// Runs `$body` with `$pool` bound to the writing pool of either backend.
///
/// The body is compiled once per backend: sqlx's connection and row types
/// differ per database, and generic code over `sqlx::Database` needs a
/// bound for every type bound and decoded (see the module doc). Written as
/// `dispatch!(store, |pool| { … })` so that rustfmt formats the body. The
/// body only runs statements; decisions are made before, in `domain`.
macro_rules! dispatch {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { write: $pool, .. } => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the reading pool of either backend,
/// as a [`TimedReads`]: each statement takes a connection of its own, as
/// from the pool itself, and the wait for it is counted.
macro_rules! dispatch_read {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { read, .. } => {
                let $pool = $crate::store::TimedReads(read);
                $body
            }
            $crate::store::Backend::Postgres(pool) => {
                let $pool = $crate::store::TimedReads(pool);
                $body
            }
        }
    };
}

/// Runs `$body` with `$conn` bound to the connection of an open
/// transaction ([`Tx`]), compiled once per backend like [`dispatch!`].
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $conn: &mut sqlx::PgConnection = &mut *tx;
                $body
            }
        }
    };
}
pub(crate) use timed_reads::TimedReads;
pub(crate) use {dispatch, dispatch_read, on_tx};

/// An open transaction on either backend. Operations that read facts,
/// let the domain decide and then write (filing a message, changing a
/// ticket) are plain async functions over a `Tx`; each statement they run
/// is one method compiled per backend with [`on_tx!`].
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// The clause a SELECT ends with to lock what it reads until the commit
    /// (see [`RowLock`]).
    pub(crate) fn lock(&self, lock: RowLock) -> &'static str {
        match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => lock.postgres_clause(),
        }
    }
}

/// How a read inside a write transaction locks its rows. SQLite needs no
/// clause: its one writer's transaction excludes every other writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    /// Wait for another transaction holding the rows.
    Wait,
    /// Wait for the ticket's row only, in a join with other tables, as the
    /// UPDATE that follows would: `NO KEY` leaves the key-share locks that
    /// inserting its events and messages takes compatible (a plain FOR
    /// UPDATE would make those wait, and deadlock against them).
    WaitForTicket,
    /// Pass over rows another node holds (a job queue: several nodes claim
    /// deliveries side by side).
    SkipLocked,
}

impl RowLock {
    fn postgres_clause(self) -> &'static str {
        match self {
            RowLock::Wait => " FOR UPDATE",
            RowLock::WaitForTicket => " FOR NO KEY UPDATE OF t",
            RowLock::SkipLocked => " FOR UPDATE SKIP LOCKED",
        }
    }
}

impl Backend {
    pub(crate) fn lock(&self, lock: RowLock) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "",
            Backend::Postgres(_) => lock.postgres_clause(),
        }
    }
}

/// SQLite read connections: one per core (2 to 8). Each is a thread of
/// the driver that every statement is handed to and back from, and the
/// reads run from the mapped file on the CPU: more of them than cores only
/// switch between threads (issue 17, 100 IDLE clients at 1,000 msg/s
/// offered on 2 cores: 4 readers took 473 and 532 msg/s, 2 took 583 and
/// 601 with a lower accept p99).
fn sqlite_readers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    u32::try_from(cores.clamp(2, 8)).unwrap_or(2)
}

/// Bytes of an SQLite database mapped into memory (address space, not
/// resident memory: the kernel pages it in and out like its file cache).
const MMAP_SIZE: u64 = 1 << 30;

// Migrations are compiled into the binary so that a copied binary can
// create its database anywhere (sqlx's `migrate!` macro would pull in the
// query macros, which compile every driver a second time).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        "imap",
        include_str!("../../migrations/sqlite/0002_imap.sql"),
    ),
    (
        3,
        "header_len",
        include_str!("../../migrations/sqlite/0003_header_len.sql"),
    ),
    (
        4,
        "responses",
        include_str!("../../migrations/sqlite/0004_responses.sql"),
    ),
    (
        5,
        "sla",
        include_str!("../../migrations/sqlite/0005_sla.sql"),
    ),
    (
        6,
        "authorship",
        include_str!("../../migrations/sqlite/0006_authorship.sql"),
    ),
    (
        7,
        "settings",
        include_str!("../../migrations/sqlite/0007_settings.sql"),
    ),
    (
        8,
        "offboarding",
        include_str!("../../migrations/sqlite/0008_offboarding.sql"),
    ),
    (
        9,
        "audit",
        include_str!("../../migrations/sqlite/0009_audit.sql"),
    ),
    (
        10,
        "roles",
        include_str!("../../migrations/sqlite/0010_roles.sql"),
    ),
    (
        11,
        "inbound_auth",
        include_str!("../../migrations/sqlite/0011_inbound_auth.sql"),
    ),
    (
        12,
        "view_changes",
        include_str!("../../migrations/sqlite/0012_view_changes.sql"),
    ),
    (
        13,
        "agent_keywords",
        include_str!("../../migrations/sqlite/0013_agent_keywords.sql"),
    ),
    (
        15,
        "knowledge",
        include_str!("../../migrations/sqlite/0015_knowledge.sql"),
    ),
    (
        17,
        "kept_subscriptions",
        include_str!("../../migrations/sqlite/0017_kept_subscriptions.sql"),
    ),
    (
        18,
        "team",
        include_str!("../../migrations/sqlite/0018_team.sql"),
    ),
    (
        19,
        "collisions",
        include_str!("../../migrations/sqlite/0019_collisions.sql"),
    ),
    (
        20,
        "merge",
        include_str!("../../migrations/sqlite/0020_merge.sql"),
    ),
    (
        21,
        "templates",
        include_str!("../../migrations/sqlite/0021_templates.sql"),
    ),
    (
        22,
        "reports",
        include_str!("../../migrations/sqlite/0022_reports.sql"),
    ),
    (
        23,
        "kb_tickets",
        include_str!("../../migrations/sqlite/0023_kb_tickets.sql"),
    ),
    (
        24,
        "qresync",
        include_str!("../../migrations/sqlite/0024_qresync.sql"),
    ),
    (
        27,
        "agent_time_zone",
        include_str!("../../migrations/sqlite/0027_agent_time_zone.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        "imap",
        include_str!("../../migrations/postgres/0002_imap.sql"),
    ),
    (
        3,
        "header_len",
        include_str!("../../migrations/postgres/0003_header_len.sql"),
    ),
    (
        4,
        "responses",
        include_str!("../../migrations/postgres/0004_responses.sql"),
    ),
    (
        5,
        "sla",
        include_str!("../../migrations/postgres/0005_sla.sql"),
    ),
    (
        6,
        "authorship",
        include_str!("../../migrations/postgres/0006_authorship.sql"),
    ),
    (
        7,
        "settings",
        include_str!("../../migrations/postgres/0007_settings.sql"),
    ),
    (
        8,
        "offboarding",
        include_str!("../../migrations/postgres/0008_offboarding.sql"),
    ),
    (
        9,
        "audit",
        include_str!("../../migrations/postgres/0009_audit.sql"),
    ),
    (
        10,
        "roles",
        include_str!("../../migrations/postgres/0010_roles.sql"),
    ),
    (
        11,
        "inbound_auth",
        include_str!("../../migrations/postgres/0011_inbound_auth.sql"),
    ),
    (
        12,
        "view_changes",
        include_str!("../../migrations/postgres/0012_view_changes.sql"),
    ),
    (
        13,
        "agent_keywords",
        include_str!("../../migrations/postgres/0013_agent_keywords.sql"),
    ),
    (
        15,
        "knowledge",
        include_str!("../../migrations/postgres/0015_knowledge.sql"),
    ),
    (
        17,
        "kept_subscriptions",
        include_str!("../../migrations/postgres/0017_kept_subscriptions.sql"),
    ),
    (
        18,
        "team",
        include_str!("../../migrations/postgres/0018_team.sql"),
    ),
    (
        19,
        "collisions",
        include_str!("../../migrations/postgres/0019_collisions.sql"),
    ),
    (
        20,
        "merge",
        include_str!("../../migrations/postgres/0020_merge.sql"),
    ),
    (
        21,
        "templates",
        include_str!("../../migrations/postgres/0021_templates.sql"),
    ),
    (
        22,
        "reports",
        include_str!("../../migrations/postgres/0022_reports.sql"),
    ),
    (
        23,
        "kb_tickets",
        include_str!("../../migrations/postgres/0023_kb_tickets.sql"),
    ),
    (
        24,
        "qresync",
        include_str!("../../migrations/postgres/0024_qresync.sql"),
    ),
    (
        27,
        "agent_time_zone",
        include_str!("../../migrations/postgres/0027_agent_time_zone.sql"),
    ),
];

/// The `header_len` stored with a message: where IMAP splits its header
/// from its body, so that a header-only FETCH reads no more than that.
pub(crate) fn header_len(raw: &[u8]) -> i64 {
    i64::try_from(crate::mime::header::header_end(raw)).unwrap_or(i64::MAX)
}

/// Whether the SQLite writer connection may be handed out: it must be
/// outside any transaction, in sqlx's bookkeeping and in SQLite's.
///
/// After SQLITE_FULL (and I/O errors) the two disagree: a failed COMMIT or
/// ROLLBACK left sqlx's transaction depth above zero, so every later
/// `begin()` became a SAVEPOINT inside a transaction that was never
/// committed, and the writer kept answering "committed" while nothing
/// reached the disk (issue 15: 4,662 acknowledged messages lost; the
/// disk-full test reproduces it). A connection that fails this check is
/// closed and the pool opens a fresh one, so the next transaction starts
/// from what is really on disk.
async fn writer_is_clean(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<bool> {
    use sqlx::Connection;
    // Queued behind the rollback a dropped transaction left, so what
    // follows sees the connection after it.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("discarding the SQLite writer connection: a transaction is still open");
        return Ok(false);
    }
    // SQLite's own view: BEGIN fails inside a transaction. Plain statements,
    // not sqlx's transaction API, so its depth counter is not touched.
    if let Err(err) = sqlx::raw_sql("BEGIN; ROLLBACK").execute(&mut *conn).await {
        tracing::warn!(%err, "discarding the SQLite writer connection");
        return Ok(false);
    }
    Ok(true)
}

fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect(),
    )
}

impl Store {
    /// Opens (and for SQLite creates) the database. Does not migrate.
    pub async fn connect(url: &str) -> Result<Store> {
        let backend = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk before SMTP says 250.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                // Reads map the database instead of copying it page by page
                // through read(2): a client's first sync reads every header
                // of a folder, and the copies were most of its time.
                .pragma("mmap_size", MMAP_SIZE.to_string());
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(60))
                .before_acquire(|conn, _| Box::pin(writer_is_clean(conn)))
                .connect_with(options.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(sqlite_readers())
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options.read_only(true))
                .await?;
            Backend::Sqlite { write, read }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let (changes, _) = broadcast::channel(1024);
        let writer_stats = std::sync::Arc::default();
        let filer = match &backend {
            Backend::Sqlite { write, .. } => {
                let (jobs, queue) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(filing::sqlite_writer(
                    write.clone(),
                    queue,
                    std::sync::Arc::clone(&writer_stats),
                ));
                Some(jobs)
            }
            Backend::Postgres(_) => None,
        };
        let node = rand::random();
        let notifier = match &backend {
            Backend::Postgres(pool) => Some(notify::Notifier::start(pool.clone(), node)),
            Backend::Sqlite { .. } => None,
        };
        Ok(Store {
            backend,
            changes,
            node,
            notifier,
            filer,
            writer_stats,
            view_syncs: ViewSyncs::default(),
            member_snapshots: member_snapshots::MemberSnapshots::default(),
            header_cache: header_cache::HeaderCache::default(),
            recent_claims: MailboxLocks::default(),
            view_batches: view_batch::ViewBatches::default(),
        })
    }

    /// Brings the schema up to date; safe to run on every start and from
    /// several nodes at once (sqlx takes an advisory lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite { write, .. } => migrator(SQLITE_MIGRATIONS).run(write).await?,
            Backend::Postgres(pool) => migrator(POSTGRES_MIGRATIONS).run(pool).await?,
        }
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Opens a transaction on the writing pool. The wait is counted
    /// ([`crate::telemetry::DB_ACQUIRE_SECONDS`]): on SQLite every write
    /// queues for the one writer here, so a slow writer shows as waits.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        let started = std::time::Instant::now();
        let tx = match &self.backend {
            Backend::Sqlite { write, .. } => Tx::Sqlite(write.begin().await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        };
        metrics::histogram!(crate::telemetry::DB_ACQUIRE_SECONDS, "pool" => "write")
            .record(started.elapsed().as_secs_f64());
        Ok(tx)
    }

    /// What the read-side memory holds: members of recently selected
    /// mailboxes, and bytes of cached headers (see [`member_snapshots`],
    /// [`header_cache`]).
    pub fn read_cache_usage(&self) -> (usize, usize) {
        (
            self.member_snapshots.members_kept(),
            self.header_cache.bytes(),
        )
    }

    /// The connections of each pool now, for `/metrics`: busy, idle and
    /// the most the pool opens; and the messages queued for SQLite's
    /// group-commit writer.
    pub fn pool_usage(&self) -> PoolUsage {
        let of = |name, size: u32, idle: usize, max: u32| PoolConnections {
            pool: name,
            busy: (size as usize).saturating_sub(idle),
            idle,
            max,
        };
        let pools = match &self.backend {
            Backend::Sqlite { write, read } => vec![
                of(
                    "write",
                    write.size(),
                    write.num_idle(),
                    write.options().get_max_connections(),
                ),
                of(
                    "read",
                    read.size(),
                    read.num_idle(),
                    read.options().get_max_connections(),
                ),
            ],
            Backend::Postgres(pool) => vec![of(
                "postgres",
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )],
        };
        let filing_queue = self
            .filer
            .as_ref()
            .map(|jobs| jobs.max_capacity() - jobs.capacity())
            .unwrap_or(0);
        PoolUsage {
            pools,
            filing_queue,
        }
    }

    /// What the SQLite group-commit writer did so far (all zero on
    /// PostgreSQL, where each message commits on its own).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer_stats
            .lock()
            .map(|stats| *stats)
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Tells this process's workers and sessions of a committed change, and
    /// on PostgreSQL the other nodes too (see [`notify`]).
    pub(crate) fn announce(&self, change: Change) {
        if let Some(notifier) = &self.notifier {
            notifier.push(change.clone());
        }
        self.announce_local(change);
    }

    /// Whether every change made by any process reaches [`Store::subscribe`]
    /// (PostgreSQL: through NOTIFY, once [`Store::change_listener`] runs).
    /// On SQLite a command line process's changes are not announced to
    /// the server, which must look for them.
    pub fn announces_every_change(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Tells only this process (of another node's change).
    pub(crate) fn announce_local(&self, change: Change) {
        let _counted_as_sent = self
            .view_syncs
            .announcing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Nobody listening (a CLI command) is fine.
        let _ = self.changes.send(change);
        self.view_syncs
            .announced
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Takes every change waiting in `changes` (a channel of
    /// [`Store::subscribe`]), handing each to `hear` until it returns
    /// false (the channel is empty), and returns the count of changes
    /// announced: exactly the ones taken now and before.
    ///
    /// Exactly, not at least: a session that took a change sent but not
    /// yet counted, and reported the count, let the sessions of its view
    /// take that change as reconciled when it was not (issue 17: a new
    /// message missing from every session's view until the next full
    /// reconcile).
    pub fn take_announced(
        &self,
        changes: &mut broadcast::Receiver<Change>,
        mut hear: impl FnMut(Result<Change, broadcast::error::TryRecvError>) -> bool,
    ) -> u64 {
        let _none_under_way = self
            .view_syncs
            .announcing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while hear(changes.try_recv()) {}
        self.announced()
    }

    /// How many changes were announced in this process so far (see
    /// [`ViewSyncs`]).
    pub fn announced(&self) -> u64 {
        self.view_syncs
            .announced
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Holds a mailbox for reconciling, with the count of announcements
    /// its members were last brought up to date with: a session that
    /// heard no more than that has nothing to reconcile, and one that
    /// reconciles sets it to what it heard.
    pub async fn view_sync(&self, mailbox_id: i64) -> tokio::sync::OwnedMutexGuard<u64> {
        self.view_syncs.mailboxes.lock(mailbox_id).await
    }

    /// Waits until the changes announced so far were sent to the other
    /// nodes (a command line process before it exits).
    pub async fn flush_announcements(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.flush().await;
        }
    }

    /// Runs one statement of test or maintenance SQL on the writing pool
    /// (used by tests to install a failing trigger; not for production paths).
    pub async fn execute_unchecked(&self, sql: &str) -> Result<()> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        dispatch!(self, |pool| {
            sqlx::raw_sql(sql).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        self.flush_announcements().await;
        match &self.backend {
            Backend::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// One pool's connections (see [`Store::pool_usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConnections {
    pub pool: &'static str,
    pub busy: usize,
    pub idle: usize,
    pub max: u32,
}

/// The database pools' state now (see [`Store::pool_usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    pub pools: Vec<PoolConnections>,
    /// Messages waiting for SQLite's group-commit writer (0 on PostgreSQL).
    pub filing_queue: usize,
}

pub(crate) fn parse_column<T: FromStr>(value: &str, what: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} '{value}'")))
}
