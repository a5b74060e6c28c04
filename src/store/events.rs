//! The event log of tickets: every change writes its events in the same
//! transaction as the change ([`Tx::insert_events`]).

use super::{Result, Tx, on_tx};
use crate::domain::ticket::NewEvent;

/// `$first, $first+1, …` for `count` parameters.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2), ($3, $4), …`: `count` rows of `width` parameters.
pub(crate) fn rows(count: usize, width: usize) -> String {
    (0..count)
        .map(|row| format!("({})", placeholders(1 + row * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Tx {
    /// Writes events (one statement for all).
    pub(crate) async fn insert_events(&mut self, events: &[NewEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO ticket_events (ticket, at, actor, kind, detail) VALUES {}",
            rows(events.len(), 5)
        );
        on_tx!(self, |conn| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for event in events {
                query = query
                    .bind(event.ticket)
                    .bind(event.at)
                    .bind(&event.actor)
                    .bind(event.kind.as_str())
                    .bind(&event.detail);
            }
            query.execute(&mut *conn).await?;
        });
        Ok(())
    }
}
