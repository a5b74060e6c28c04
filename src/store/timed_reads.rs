//! The reading pool with its waits counted.
//!
//! `/metrics` shows how long a read waited for a connection
//! ([`crate::telemetry::DB_ACQUIRE_SECONDS`], `pool="read"`): on SQLite
//! the read connections are one per core, and a team's refreshes and
//! header FETCHes queue for them when the machine is busy; on PostgreSQL
//! reads and writes share one pool, and the label tells which waited.
//!
//! sqlx's pool has no hook for the time an `acquire` waited, so reads go
//! through this executor: each statement takes its connection as the pool
//! would (the same `acquire`, given back when the statement is done), with
//! the wait timed around it. Taking one connection for all the statements
//! of a read instead changed how the views are kept (issue 17, 20 agents
//! with 100 IDLE clients: reconciles came sooner and so three times as
//! often, 10 % more CPU at 200 msg/s, 9 % fewer messages taken at 1,000/s).

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, TryStreamExt, future::BoxFuture};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Either, Execute, Executor, Pool, SqlStr};

/// The reading pool of a backend; see the module doc.
#[derive(Debug)]
pub(crate) struct TimedReads<'p, DB: Database>(pub(crate) &'p Pool<DB>);

// Copy and Clone by hand: derived ones would ask `DB: Copy`.
impl<DB: Database> Clone for TimedReads<'_, DB> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<DB: Database> Copy for TimedReads<'_, DB> {}

/// A connection of `pool`, the wait for it recorded.
async fn acquire<DB: Database>(pool: &Pool<DB>) -> Result<PoolConnection<DB>, sqlx::Error> {
    let started = std::time::Instant::now();
    let connection = pool.acquire().await?;
    metrics::histogram!(crate::telemetry::DB_ACQUIRE_SECONDS, "pool" => "read")
        .record(started.elapsed().as_secs_f64());
    Ok(connection)
}

// The same as sqlx's `impl Executor for &Pool`, with the acquire timed.
// (sqlx's `describe`, for its query macros, exists only with its "offline"
// feature, which postdesk does not turn on: the macros are not used.)
impl<'p, DB: Database> Executor<'p> for TimedReads<'p, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        // The rows are gathered before they are handed on: the stream
        // cannot both own the connection and borrow it. No read of the
        // store streams (they all collect their rows), so this keeps no
        // more in memory than they do.
        let pool = self.0;
        async move {
            let mut connection = acquire(pool).await?;
            let results: Vec<_> = connection.fetch_many(query).try_collect().await?;
            Ok::<_, sqlx::Error>(futures_util::stream::iter(results.into_iter().map(Ok)))
        }
        .into_stream()
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.0;
        async move { acquire(pool).await?.fetch_optional(query).await }.boxed()
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.0;
        async move { acquire(pool).await?.prepare_with(sql, parameters).await }.boxed()
    }
}
