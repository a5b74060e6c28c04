//! Opening an existing database only to look at it (the CLI's read-only
//! commands): nothing is created or migrated, and every connection refuses
//! writes, so `postdesk ticket list` cannot change the database it shows.

use super::{
    Backend, POSTGRES_MIGRATIONS, Result, SQLITE_MIGRATIONS, Store, StoreError, dispatch_read,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::broadcast;

/// What to tell someone whose database is not ready for this postdesk.
const MIGRATE_HINT: &str = "run `postdesk migrate` or start the server";

impl Store {
    /// Opens an existing database whose schema is up to date, for reading:
    /// no file or table is created, no migration runs, and writes fail. A
    /// missing, empty or outdated database is a [`StoreError::Schema`].
    pub async fn connect_read_only(url: &str) -> Result<Store> {
        let not_initialized = || StoreError::Schema {
            url: crate::config::redact_password(url),
            problem: format!("is not initialized: {MIGRATE_HINT}"),
        };
        let backend = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            // SQLite would report a missing file as "unable to open database
            // file"; say what to do instead.
            if path != ":memory:" && !std::path::Path::new(path).exists() {
                return Err(not_initialized());
            }
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(false)
                .read_only(true)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                .pragma("mmap_size", super::MMAP_SIZE.to_string());
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options)
                .await?;
            Backend::Sqlite {
                write: pool.clone(),
                read: pool,
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options =
                PgConnectOptions::from_str(url)?.options([("default_transaction_read_only", "on")]);
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let (changes, _) = broadcast::channel(16);
        let store = Store {
            backend,
            changes,
            node: rand::random(),
            // Nothing to tell other nodes: nothing is written.
            notifier: None,
            // No writer task: nothing is filed through a read-only store.
            filer: None,
            writer_stats: std::sync::Arc::default(),
            view_syncs: super::ViewSyncs::default(),
            member_snapshots: Default::default(),
            header_cache: Default::default(),
            recent_claims: Default::default(),
            view_batches: Default::default(),
        };
        match store.schema_problem().await {
            Ok(None) => Ok(store),
            Ok(Some(problem)) => {
                store.close().await;
                Err(StoreError::Schema {
                    url: crate::config::redact_password(url),
                    problem,
                })
            }
            Err(err) => {
                store.close().await;
                Err(err)
            }
        }
    }

    /// Why the schema does not match the migrations compiled in, if it does not.
    async fn schema_problem(&self) -> Result<Option<String>> {
        let (has_table, known) = match &self.backend {
            Backend::Sqlite { read, .. } => (
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master \
                     WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(read)
                .await?,
                SQLITE_MIGRATIONS,
            ),
            Backend::Postgres(pool) => (
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                )
                .fetch_one(pool)
                .await?,
                POSTGRES_MIGRATIONS,
            ),
        };
        if has_table == 0 {
            return Ok(Some(format!("is not initialized: {MIGRATE_HINT}")));
        }
        let applied: Vec<i64> = dispatch_read!(self, |pool| {
            sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(pool)
            .await?
        });
        let needed = known
            .iter()
            .map(|(version, ..)| *version)
            .max()
            .unwrap_or(0);
        let found = applied.iter().copied().max().unwrap_or(0);
        if applied.is_empty() {
            return Ok(Some(format!("is not initialized: {MIGRATE_HINT}")));
        }
        if let Some(newer) = applied
            .iter()
            .find(|v| !known.iter().any(|(k, ..)| k == *v))
        {
            return Ok(Some(format!(
                "has schema version {newer}, which this postdesk (up to version {needed}) \
                 does not know: use the postdesk that migrated it"
            )));
        }
        if known.iter().any(|(version, ..)| !applied.contains(version)) {
            return Ok(Some(format!(
                "has schema version {found}, and this postdesk needs version {needed}: \
                 {MIGRATE_HINT}"
            )));
        }
        Ok(None)
    }
}
