//! What the server counts for `/metrics`: the metric names, the process's
//! Prometheus recorder (the `metrics` facade; rendered by the HTTP listener,
//! never with the exporter's own listener), and the gauges of one server
//! that are set at scrape time.
//!
//! A low layer: protocols and workers record here, the HTTP layer reads.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

/// Messages accepted (250 after DATA/BDAT), by listener (`inbound`, `submission`).
pub const MESSAGES_ACCEPTED: &str = "postdesk_messages_accepted_total";
/// Messages or recipients refused, by listener and reason.
pub const MESSAGES_REFUSED: &str = "postdesk_messages_refused_total";
/// From the end of DATA to the 250 (the commit), seconds.
pub const INGEST_SECONDS: &str = "postdesk_ingest_duration_seconds";
/// Outbound deliveries queued or under way.
pub const OUTBOUND_QUEUE_DEPTH: &str = "postdesk_outbound_queue_depth";
/// Outbound deliveries given up on (stored as failed), now.
pub const OUTBOUND_FAILED: &str = "postdesk_outbound_failed";
/// Outbound attempts that failed, by kind (`temporary`, `permanent`).
pub const OUTBOUND_FAILURES: &str = "postdesk_outbound_delivery_failures_total";
pub const IMAP_SESSIONS: &str = "postdesk_imap_sessions";
pub const IMAP_IDLE: &str = "postdesk_imap_sessions_idle";
/// Messages not yet in the search index.
pub const INDEX_LAG: &str = "postdesk_search_index_lag_messages";
/// How far the SLA scheduler's next check is overdue, seconds.
pub const SCHEDULER_LAG: &str = "postdesk_sla_scheduler_lag_seconds";
/// Free space on the data directory's file system, bytes.
pub const DISK_FREE: &str = "postdesk_disk_free_bytes";
/// How long taking a database connection waited, seconds, by what it was
/// for: `write` (a transaction: SQLite's single writer or the PostgreSQL
/// pool; on SQLite every write queues here, so this is the writer's queue
/// time) or `read` (SQLite's read connections, or the PostgreSQL pool).
pub const DB_ACQUIRE_SECONDS: &str = "postdesk_db_acquire_duration_seconds";
/// Connections of a database pool, by pool and state (`busy`, `idle`, `max`).
pub const DB_CONNECTIONS: &str = "postdesk_db_pool_connections";
/// Mailbox members kept in memory for SELECT (recently selected views).
pub const IMAP_SNAPSHOT_MEMBERS: &str = "postdesk_imap_snapshot_members";
/// Bytes of message headers kept in memory for header FETCH.
pub const IMAP_HEADER_CACHE_BYTES: &str = "postdesk_imap_header_cache_bytes";
/// Refreshes of a selected ticket view (after each command, and on each
/// change heard in IDLE), by `result`: `read` the store, or `current`
/// (nothing was announced since the last, so nothing was read).
pub const IMAP_REFRESHES: &str = "postdesk_imap_view_refreshes_total";
/// Mailboxes brought up to date for the tickets their sessions heard of.
pub const IMAP_RECONCILES: &str = "postdesk_imap_ticket_reconciles_total";
/// Rounds of those reconciles: the mailboxes of one round of one kind of
/// view are read and written together (a team's mailboxes, one read for
/// all), so reconciles per round tell how much was shared.
pub const IMAP_RECONCILE_ROUNDS: &str = "postdesk_imap_ticket_reconcile_rounds_total";
/// Messages waiting for SQLite's group-commit writer.
pub const DB_FILING_QUEUE: &str = "postdesk_db_filing_queue";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed on first use. One per process: the
/// `metrics` macros write to a global; a second server in one process (the
/// tests) shares the counters, while [`Gauges`] stay per server.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder
            .set_buckets_for_metric(Matcher::Full(INGEST_SECONDS.into()), LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(DB_ACQUIRE_SECONDS.into()),
                    LATENCY_BUCKETS,
                )
            }) {
            Ok(builder) => builder,
            // Only an empty bucket list fails.
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(err) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%err, "another metrics recorder is installed: /metrics stays empty");
        }
        handle
    })
}

/// One server's gauges that are counted in place (sessions) or refreshed
/// by its metrics task (queries), and written to the recorder on a scrape.
#[derive(Debug, Default)]
pub struct Gauges {
    pub imap_sessions: AtomicI64,
    pub imap_idle: AtomicI64,
    pub outbound_depth: AtomicI64,
    pub outbound_failed: AtomicI64,
    pub index_lag: AtomicI64,
    pub scheduler_lag_seconds: AtomicI64,
    /// Counters of [`IMAP_REFRESHES`].
    pub imap_refreshes_read: AtomicI64,
    pub imap_refreshes_current: AtomicI64,
}

/// Counts one in a gauge of [`Gauges`] while it lives.
pub struct Held {
    gauges: Arc<Gauges>,
    pick: fn(&Gauges) -> &AtomicI64,
}

impl Held {
    pub fn new(gauges: Arc<Gauges>, pick: fn(&Gauges) -> &AtomicI64) -> Held {
        pick(&gauges).fetch_add(1, Ordering::Relaxed);
        Held { gauges, pick }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        (self.pick)(&self.gauges).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a message or recipient refused by a listener.
pub fn refused(listener: &'static str, reason: &'static str) {
    metrics::counter!(MESSAGES_REFUSED, "listener" => listener, "reason" => reason).increment(1);
}

pub fn accepted(listener: &'static str) {
    metrics::counter!(MESSAGES_ACCEPTED, "listener" => listener).increment(1);
}
