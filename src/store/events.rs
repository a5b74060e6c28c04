//! The event log of tickets: every change writes its events in the same
//! transaction as the change, through [`Events`] and [`insert_events!`].

use chrono::{DateTime, Utc};

/// Events of one change, written with one statement before its commit.
#[derive(Default)]
pub(crate) struct Events(pub(crate) Vec<(i64, DateTime<Utc>, String, &'static str, String)>);

impl Events {
    pub(crate) fn add(
        &mut self,
        ticket: i64,
        at: DateTime<Utc>,
        actor: &str,
        kind: &'static str,
        detail: String,
    ) {
        self.0.push((ticket, at, actor.to_string(), kind, detail));
    }
}

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

/// Writes the collected events on `$conn` (one statement for all).
macro_rules! insert_events {
    ($tx:ident, $events:expr) => {{
        if !$events.0.is_empty() {
            let sql = format!(
                "INSERT INTO ticket_events (ticket, at, actor, kind, detail) VALUES {}",
                $crate::store::events::rows($events.0.len(), 5)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (ticket, at, actor, kind, detail) in &$events.0 {
                query = query
                    .bind(*ticket)
                    .bind(*at)
                    .bind(actor)
                    .bind(*kind)
                    .bind(detail);
            }
            query.execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use insert_events;
