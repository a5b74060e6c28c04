//! The one ticket-change operation, as the store executes it: read the
//! ticket (locked until the commit on PostgreSQL), let [`plan_change`]
//! decide, then write the planned columns, tags and events in the same
//! transaction. Nothing else changes a ticket's status, priority, owner,
//! queue, tags, standing, SLA policy or response times; the SLA scheduler
//! saves the clocks it works out itself ([`Store::save_sla`]).

use super::events::placeholders;
use super::{Change, Result, RowLock, Store, StoreError, Tx, on_tx, parse_column};
use crate::domain::change::{
    ChangeError, ChangeFacts, ChangePlan, ChangeRequest, Column, TicketState, plan_change,
};
use crate::domain::permission::Assignee;
use crate::domain::ticket::{Disposition, Status};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// The column of `tickets` a planned value goes to.
fn column_name(column: &Column) -> &'static str {
    match column {
        Column::Status(_) => "status",
        Column::DoneAt(_) => "done_at",
        Column::SlaPausedAt(_) => "sla_paused_at",
        Column::SlaResumedAt(_) => "sla_resumed_at",
        Column::Priority(_) => "priority",
        Column::QueueId(_) => "queue_id",
        Column::OwnerId(_) => "owner_id",
        Column::Disposition(_) => "disposition",
        Column::DispositionAt(_) => "disposition_at",
        Column::SlaPolicy(_) => "sla_policy",
        Column::FirstResponseDue(_) => "first_response_due",
        Column::NextResponseDue(_) => "next_response_due",
        Column::ResolutionDue(_) => "resolution_due",
        Column::FirstResponseAt(_) => "first_response_at",
        Column::LastResponseAt(_) => "last_response_at",
        Column::CustomerWaitingSince(_) => "customer_waiting_since",
        Column::UpdatedAt(_) => "updated_at",
        Column::SlaCheckAt(_) => "sla_check_at",
        Column::MergedInto(_) => "merged_into",
    }
}

/// Binds a planned value to its `$n`.
fn bind_column<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    column: &Column,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'static str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'static str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match column {
        Column::Status(s) => query.bind(s.as_str()),
        Column::Priority(p) => query.bind(p.as_str()),
        Column::Disposition(d) => query.bind(d.map(Disposition::as_str)),
        Column::QueueId(id) | Column::MergedInto(id) => query.bind(*id),
        Column::OwnerId(id) => query.bind(*id),
        Column::SlaPolicy(policy) => query.bind(policy.clone()),
        Column::DoneAt(at)
        | Column::SlaPausedAt(at)
        | Column::SlaResumedAt(at)
        | Column::DispositionAt(at)
        | Column::FirstResponseDue(at)
        | Column::NextResponseDue(at)
        | Column::ResolutionDue(at)
        | Column::CustomerWaitingSince(at) => query.bind(*at),
        Column::FirstResponseAt(at)
        | Column::LastResponseAt(at)
        | Column::UpdatedAt(at)
        | Column::SlaCheckAt(at) => query.bind(*at),
    }
}

impl Tx {
    /// The ticket as a change decision reads it; its tags only when asked
    /// (most changes touch none, and the filing path is hot).
    pub(crate) async fn ticket_state(
        &mut self,
        number: i64,
        with_tags: bool,
        with_participants: bool,
    ) -> Result<Option<TicketState>> {
        let sql = format!(
            "SELECT t.status, t.priority, q.name AS queue, t.owner_id, t.disposition,
                 t.sla_policy, t.sla_paused_at, t.sla_resumed_at, t.first_response_at,
                 t.customer_waiting_since, t.updated_at, t.merged_into
             FROM tickets t JOIN queues q ON q.id = t.queue_id WHERE t.number = $1{}",
            // Only the ticket's row: the queue's stays free for others.
            self.lock(RowLock::WaitForTicket)
        );
        on_tx!(self, |conn| {
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(number)
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(None);
            };
            let tags: Vec<String> = if with_tags {
                sqlx::query_scalar("SELECT tag FROM ticket_tags WHERE ticket = $1 ORDER BY tag")
                    .bind(number)
                    .fetch_all(&mut *conn)
                    .await?
            } else {
                Vec::new()
            };
            let participants: Vec<String> = if with_participants {
                sqlx::query_scalar(
                    "SELECT address FROM ticket_participants WHERE ticket = $1 ORDER BY address",
                )
                .bind(number)
                .fetch_all(&mut *conn)
                .await?
            } else {
                Vec::new()
            };
            let disposition: Option<String> = row.try_get("disposition")?;
            let policy: Option<String> = row.try_get("sla_policy")?;
            Ok(Some(TicketState {
                number,
                status: parse_column::<Status>(&row.try_get::<String, _>("status")?, "status")?,
                priority: parse_column(&row.try_get::<String, _>("priority")?, "priority")?,
                queue: row.try_get("queue")?,
                owner: row.try_get("owner_id")?,
                disposition: match disposition {
                    Some(d) => Some(parse_column(&d, "disposition")?),
                    None => None,
                },
                tags,
                participants,
                has_sla: policy.is_some(),
                sla_paused_at: row.try_get("sla_paused_at")?,
                sla_resumed_at: row.try_get("sla_resumed_at")?,
                first_response_at: row.try_get("first_response_at")?,
                customer_waiting_since: row.try_get("customer_waiting_since")?,
                updated_at: row.try_get("updated_at")?,
                merged_into: row.try_get("merged_into")?,
            }))
        })
    }

    /// What the names in a request stand for.
    async fn change_facts(&mut self, request: &ChangeRequest) -> Result<ChangeFacts> {
        let owner = match (&request.change.owner, &request.cause) {
            (Some(Some(id)), _) => Some(*id),
            (None, crate::domain::change::Cause::Replied { agent, .. }) => Some(*agent),
            _ => None,
        };
        let queue = request.change.queue.clone();
        on_tx!(self, |conn| {
            let queue_id: Option<i64> = match &queue {
                Some(name) => {
                    sqlx::query_scalar("SELECT id FROM queues WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *conn)
                        .await?
                }
                None => None,
            };
            let owner = match owner {
                Some(id) => {
                    let row = sqlx::query(
                        "SELECT email, role, disabled, removed_at FROM agents WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    match row {
                        Some(row) => {
                            let queues: Vec<String> = sqlx::query_scalar(
                                "SELECT q.name FROM agent_queues aq
                                 JOIN queues q ON q.id = aq.queue_id WHERE aq.agent_id = $1",
                            )
                            .bind(id)
                            .fetch_all(&mut *conn)
                            .await?;
                            let disabled: bool = row.try_get("disabled")?;
                            let removed_at: Option<DateTime<Utc>> = row.try_get("removed_at")?;
                            Some(Assignee {
                                id,
                                email: row.try_get("email")?,
                                role: parse_column(&row.try_get::<String, _>("role")?, "role")?,
                                queues,
                                active: !disabled && removed_at.is_none(),
                            })
                        }
                        None => None,
                    }
                }
                None => None,
            };
            Ok(ChangeFacts { queue_id, owner })
        })
    }

    /// Writes a plan's columns (one UPDATE) and tags; its events are the
    /// caller's to write ([`Tx::change_ticket`] writes them at once).
    async fn execute_columns(&mut self, plan: &ChangePlan) -> Result<()> {
        if !plan.set.is_empty() {
            let assignments: Vec<String> = plan
                .set
                .iter()
                .enumerate()
                .map(|(i, column)| format!("{} = ${}", column_name(column), i + 1))
                .collect();
            let sql = format!(
                "UPDATE tickets SET {} WHERE number = ${}",
                assignments.join(", "),
                plan.set.len() + 1
            );
            on_tx!(self, |conn| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for column in &plan.set {
                    query = bind_column(query, column);
                }
                query.bind(plan.number).execute(&mut *conn).await?;
            });
        }
        if !plan.add_tags.is_empty() {
            let sql = format!(
                "INSERT INTO ticket_tags (ticket, tag) VALUES {} ON CONFLICT DO NOTHING",
                super::events::rows(plan.add_tags.len(), 2)
            );
            on_tx!(self, |conn| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for tag in &plan.add_tags {
                    query = query.bind(plan.number).bind(tag);
                }
                query.execute(&mut *conn).await?;
            });
        }
        for (time, at) in &plan.time_entries {
            on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO time_entries (ticket, agent_id, minutes, at) VALUES ($1, $2, $3, $4)",
                )
                .bind(plan.number)
                .bind(time.agent)
                .bind(i64::from(time.minutes))
                .bind(*at)
                .execute(&mut *conn)
                .await?;
            });
        }
        if !plan.remove_tags.is_empty() {
            let sql = format!(
                "DELETE FROM ticket_tags WHERE ticket = $1 AND tag IN ({})",
                placeholders(2, plan.remove_tags.len())
            );
            on_tx!(self, |conn| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(plan.number);
                for tag in &plan.remove_tags {
                    query = query.bind(tag);
                }
                query.execute(&mut *conn).await?;
            });
        }
        if !plan.add_participants.is_empty() {
            let added: Vec<&String> = plan.add_participants.iter().collect();
            self.insert_participants(plan.number, &added).await?;
        }
        if !plan.remove_participants.is_empty() {
            let sql = format!(
                "DELETE FROM ticket_participants WHERE ticket = $1 AND address IN ({})",
                placeholders(2, plan.remove_participants.len())
            );
            on_tx!(self, |conn| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(plan.number);
                for who in &plan.remove_participants {
                    query = query.bind(who);
                }
                query.execute(&mut *conn).await?;
            });
        }
        Ok(())
    }

    /// The one ticket-change operation inside a transaction the caller
    /// owns: read, decide, write, with its events. Returns the plan.
    pub(crate) async fn change_ticket(
        &mut self,
        number: i64,
        request: &ChangeRequest,
    ) -> Result<ChangePlan> {
        let plan = self.apply_change(number, request).await?;
        self.insert_events(&plan.events).await?;
        Ok(plan)
    }

    /// As [`Tx::change_ticket`], leaving the plan's events to the caller
    /// (the filing writes all of a message's events in one statement, in
    /// the order they happened).
    pub(crate) async fn apply_change(
        &mut self,
        number: i64,
        request: &ChangeRequest,
    ) -> Result<ChangePlan> {
        let change = &request.change;
        let with_tags = !change.add_tags.is_empty() || !change.remove_tags.is_empty();
        let with_participants =
            !change.add_participants.is_empty() || !change.remove_participants.is_empty();
        let Some(current) = self
            .ticket_state(number, with_tags, with_participants)
            .await?
        else {
            return Err(StoreError::NotFound(format!("no ticket #{number}")));
        };
        let facts = self.change_facts(request).await?;
        let plan = plan_change(&current, request, &facts).map_err(|err| match err {
            ChangeError::NoQueue(_) => StoreError::NotFound(err.to_string()),
            ChangeError::Denied(why) => StoreError::Denied(why),
            ChangeError::Merged { .. } => StoreError::Conflict(err.to_string()),
        })?;
        self.execute_columns(&plan).await?;
        Ok(plan)
    }
}

impl Store {
    /// Changes a ticket in its own transaction (IMAP moves and flags, mail
    /// commands, tests). Returns what changed, one phrase each
    /// (empty: nothing).
    pub async fn change_ticket(&self, number: i64, request: &ChangeRequest) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let plan = tx.change_ticket(number, request).await?;
        tx.commit().await?;
        if !plan.set.is_empty() || !plan.events.is_empty() {
            self.announce(Change::Ticket(number));
        }
        Ok(plan.done)
    }
}
