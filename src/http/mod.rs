//! The HTTP listener: operations endpoints (`GET /metrics`, `GET /healthz`)
//! the knowledge base's help center (`/kb`, [`help_center`]) and the
//! team report page (`/reports`, [`reports`]).
//!
//! axum (`default-features = false`, only `http1` and `tokio`) rather than
//! hyper directly: it builds cleanly on the existing tokio with hyper 1
//! underneath, adds only tower's small crates, and gives the routing and
//! graceful shutdown the help-center pages will need; hyper alone would
//! mean hand-written routing and connection draining.
//!
//! A protocol layer: it reads `App` and the store, nothing calls it but
//! the server.

pub mod help_center;
pub mod reports;
pub mod satisfaction;

use crate::App;
use crate::net::Shutdown;
use crate::telemetry;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;

/// How often the gauges that need a query are refreshed.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// How long `/healthz` waits for the store's writer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The routes, over one server's `App`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(help_center::routes())
        .merge(reports::routes())
        .merge(satisfaction::routes())
        .with_state(app)
}

/// Serves until the shutdown (requests under way finish).
pub async fn serve(app: Arc<App>, listener: TcpListener, mut shutdown: Shutdown) {
    // The client's address reaches the report page's sign-in (failed
    // logins are counted per address, as IMAP's are).
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(async move { shutdown.stopped().await })
        .await;
    if let Err(err) = served {
        tracing::error!(%err, "http listener");
    }
}

/// Refreshes the gauges that need a query (queue depth, index lag,
/// scheduler lag) every few seconds, so that a scrape reads no database.
pub async fn refresh_gauges(app: Arc<App>, mut shutdown: Shutdown) {
    loop {
        refresh_once(&app).await;
        tokio::select! {
            _ = shutdown.stopped() => return,
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
        }
    }
}

async fn refresh_once(app: &App) {
    let gauges = &app.gauges;
    match app.store.outbound_depth().await {
        Ok((depth, failed)) => {
            gauges.outbound_depth.store(depth, Ordering::Relaxed);
            gauges.outbound_failed.store(failed, Ordering::Relaxed);
        }
        Err(err) => tracing::debug!(%err, "metrics: outbound depth"),
    }
    if let Some(index) = app.search.get() {
        match crate::search::indexer::lag(index, &app.store).await {
            Ok((lag, _)) => gauges.index_lag.store(lag, Ordering::Relaxed),
            Err(err) => tracing::debug!(%err, "metrics: index lag"),
        }
    }
    match app.store.sla_next_check().await {
        Ok(next) => {
            let late = next
                .map(|at| (chrono::Utc::now() - at).num_seconds().max(0))
                .unwrap_or(0);
            gauges.scheduler_lag_seconds.store(late, Ordering::Relaxed);
        }
        Err(err) => tracing::debug!(%err, "metrics: scheduler lag"),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    // One server per process in production; several in the tests, which
    // share the recorder: set this server's gauges and render as one step.
    static RENDER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = RENDER.lock().await;
    let handle = telemetry::handle();
    let gauges = &app.gauges;
    let read = |gauge: &std::sync::atomic::AtomicI64| gauge.load(Ordering::Relaxed) as f64;
    metrics::gauge!(telemetry::IMAP_SESSIONS).set(read(&gauges.imap_sessions));
    metrics::gauge!(telemetry::IMAP_IDLE).set(read(&gauges.imap_idle));
    metrics::gauge!(telemetry::OUTBOUND_QUEUE_DEPTH).set(read(&gauges.outbound_depth));
    metrics::gauge!(telemetry::OUTBOUND_FAILED).set(read(&gauges.outbound_failed));
    metrics::gauge!(telemetry::INDEX_LAG).set(read(&gauges.index_lag));
    metrics::gauge!(telemetry::SCHEDULER_LAG).set(read(&gauges.scheduler_lag_seconds));
    let count = |counter: &std::sync::atomic::AtomicI64| counter.load(Ordering::Relaxed) as u64;
    metrics::counter!(telemetry::IMAP_REFRESHES, "result" => "read")
        .absolute(count(&gauges.imap_refreshes_read));
    metrics::counter!(telemetry::IMAP_REFRESHES, "result" => "current")
        .absolute(count(&gauges.imap_refreshes_current));
    let usage = app.store.pool_usage();
    for pool in &usage.pools {
        let name = pool.pool;
        metrics::gauge!(telemetry::DB_CONNECTIONS, "pool" => name, "state" => "busy")
            .set(pool.busy as f64);
        metrics::gauge!(telemetry::DB_CONNECTIONS, "pool" => name, "state" => "idle")
            .set(pool.idle as f64);
        metrics::gauge!(telemetry::DB_CONNECTIONS, "pool" => name, "state" => "max")
            .set(f64::from(pool.max));
    }
    metrics::gauge!(telemetry::DB_FILING_QUEUE).set(usage.filing_queue as f64);
    let (members, header_bytes) = app.store.read_cache_usage();
    metrics::gauge!(telemetry::IMAP_SNAPSHOT_MEMBERS).set(members as f64);
    metrics::gauge!(telemetry::IMAP_HEADER_CACHE_BYTES).set(header_bytes as f64);
    if let Some(free) = app.disk.status().available {
        metrics::gauge!(telemetry::DISK_FREE).set(free as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// 200 "ok" when the store takes a write and new mail is admitted; 503
/// with the reason otherwise. The listeners are bound before this one
/// starts and stop only with it.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    if let Err(refusal) = app.disk.admit() {
        return unavailable(format!("not ready: {refusal}"));
    }
    match tokio::time::timeout(HEALTH_TIMEOUT, app.store.check_writable()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(err)) => unavailable(format!("not ready: store: {err}")),
        Err(_) => unavailable("not ready: store does not answer".into()),
    }
}

fn unavailable(reason: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
}
