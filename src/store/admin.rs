//! Queues and agents.

use super::{Change, Result, Store, StoreError, dispatch, dispatch_read, on_tx};
use crate::domain::change::{ChangeRequest, TicketChange};
use crate::domain::permission::{AgentRole, Assignee};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Queue {
    pub id: i64,
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: AgentRole,
    pub queues: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Refused at login until enabled again.
    pub disabled: bool,
    /// Removed: kept for the history, never active again.
    pub removed_at: Option<DateTime<Utc>>,
    /// The IANA time zone they work in (None: the report calendar's).
    pub time_zone: Option<String>,
    #[serde(skip)]
    pub password_hash: String,
}

impl Agent {
    /// May be given tickets: neither disabled nor removed.
    pub fn is_active(&self) -> bool {
        !self.disabled && self.removed_at.is_none()
    }

    /// The agent as a new owner, for the permission check.
    pub fn as_assignee(&self) -> Assignee {
        Assignee {
            id: self.id,
            email: self.email.clone(),
            role: self.role,
            queues: self.queues.clone(),
            active: self.is_active(),
        }
    }
}

/// What `agent set` changes; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub role: Option<AgentRole>,
    /// Replaces the agent's queues.
    pub queues: Option<Vec<Queue>>,
    /// An IANA time zone; `Some(None)`: the report calendar's again.
    pub time_zone: Option<Option<String>>,
}

impl Store {
    /// Creates a queue, or updates the address of the queue with this name.
    pub async fn upsert_queue(&self, name: &str, address: &str) -> Result<Queue> {
        let now = Utc::now();
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let taken: Option<String> =
                sqlx::query_scalar("SELECT name FROM queues WHERE address = $1 AND name <> $2")
                    .bind(address)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(other) = taken {
                return Err(StoreError::Conflict(format!(
                    "address {address} already belongs to queue '{other}'"
                )));
            }
            let row = sqlx::query(
                "INSERT INTO queues (name, address, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET address = excluded.address
                 RETURNING id, name, address",
            )
            .bind(name)
            .bind(address)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Queue {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                address: row.try_get("address")?,
            })
        })
    }

    pub async fn queues(&self) -> Result<Vec<Queue>> {
        dispatch_read!(self, |pool| {
            let rows = sqlx::query("SELECT id, name, address FROM queues ORDER BY name")
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Queue {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        address: row.try_get("address")?,
                    })
                })
                .collect()
        })
    }

    pub async fn queue_by_name(&self, name: &str) -> Result<Queue> {
        self.queues()
            .await?
            .into_iter()
            .find(|q| q.name.eq_ignore_ascii_case(name) || q.address.eq_ignore_ascii_case(name))
            .ok_or_else(|| StoreError::NotFound(format!("no queue named '{name}'")))
    }

    pub async fn add_agent(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        role: AgentRole,
        queues: &[Queue],
    ) -> Result<i64> {
        let now = Utc::now();
        // An async block, so that `?` inside ends here and the error can be
        // told apart below.
        let result: Result<i64> = async {
            dispatch!(self, |pool| {
                let mut tx = pool.begin().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO agents (email, name, password_hash, role, created_at)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(email)
                .bind(name)
                .bind(password_hash)
                .bind(role.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                for queue in queues {
                    sqlx::query("INSERT INTO agent_queues (agent_id, queue_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(queue.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(id)
            })
        }
        .await;
        result.map_err(|err| {
            if err.is_unique_violation() {
                StoreError::Conflict(format!(
                    "an agent {email} already exists (a removed agent's address stays theirs, \
                     so that the history keeps its name)"
                ))
            } else {
                err
            }
        })
    }

    pub async fn set_agent_password(&self, email: &str, password_hash: &str) -> Result<()> {
        let changed = dispatch!(self, |pool| {
            // A new password ends the agent's open sessions.
            sqlx::query(
                "UPDATE agents SET password_hash = $1, sessions_epoch = sessions_epoch + 1
                 WHERE email = $2",
            )
            .bind(password_hash)
            .bind(email)
            .execute(pool)
            .await?
            .rows_affected()
        });
        agent_changed(changed, email)
    }

    pub async fn agents(&self) -> Result<Vec<Agent>> {
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, email, name, password_hash, role, created_at, disabled, removed_at,
                     time_zone
                 FROM agents ORDER BY email",
            )
            .fetch_all(pool)
            .await?;
            let memberships = sqlx::query(
                "SELECT aq.agent_id, q.name FROM agent_queues aq JOIN queues q ON q.id = aq.queue_id
                 ORDER BY q.name",
            )
            .fetch_all(pool)
            .await?;
            let mut agents = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                let mut queues = Vec::new();
                for m in &memberships {
                    if m.try_get::<i64, _>("agent_id")? == id {
                        queues.push(m.try_get("name")?);
                    }
                }
                agents.push(Agent {
                    id,
                    email: row.try_get("email")?,
                    name: row.try_get("name")?,
                    role: super::parse_column(&row.try_get::<String, _>("role")?, "role")?,
                    queues,
                    created_at: row.try_get("created_at")?,
                    disabled: row.try_get("disabled")?,
                    removed_at: row.try_get("removed_at")?,
                    time_zone: row.try_get("time_zone")?,
                    password_hash: row.try_get("password_hash")?,
                });
            }
            Ok(agents)
        })
    }

    pub async fn agent_count(&self) -> Result<i64> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM agents")
                .fetch_one(pool)
                .await?)
        })
    }
}

impl Store {
    /// The database's size on disk, in bytes (SQLite: its pages, the WAL
    /// not counted; PostgreSQL: `pg_database_size`).
    pub async fn database_size(&self) -> Result<i64> {
        match &self.backend {
            super::Backend::Sqlite { read, .. } => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(read)
                    .await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(read)
                    .await?;
                Ok(pages.saturating_mul(size))
            }
            super::Backend::Postgres(pool) => Ok(sqlx::query_scalar(
                "SELECT pg_database_size(current_database())",
            )
            .fetch_one(pool)
            .await?),
        }
    }

    /// A server-wide secret by name, made (32 random bytes, hex) the first
    /// time any node asks; every node then reads the same one.
    pub async fn secret(&self, name: &str) -> Result<String> {
        let fresh: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(&fresh)
            .execute(pool)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    /// Disables (or enables again) an agent: a disabled agent cannot log
    /// in, and their open sessions end (the epoch moves).
    pub async fn set_agent_disabled(&self, email: &str, disabled: bool) -> Result<()> {
        let changed = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE agents SET disabled = $1, sessions_epoch = sessions_epoch + 1
                 WHERE LOWER(email) = LOWER($2)",
            )
            .bind(disabled)
            .bind(email)
            .execute(pool)
            .await?
            .rows_affected()
        });
        agent_changed(changed, email)
    }

    /// Changes an agent's name, role, queues or time zone. A new role or new queues
    /// end the agent's open sessions (the epoch moves), so that every
    /// session works with what the agent may do now; a client logs in
    /// again at once.
    pub async fn update_agent(&self, email: &str, update: &AgentUpdate) -> Result<()> {
        let ends_sessions = update.role.is_some() || update.queues.is_some();
        let mut tx = self.begin().await?;
        let id: Option<i64> = on_tx!(&mut tx, |conn| {
            sqlx::query_scalar(
                "SELECT id FROM agents WHERE LOWER(email) = LOWER($1) AND removed_at IS NULL",
            )
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?
        });
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!("no agent {email}")));
        };
        let role = update.role.map(AgentRole::as_str);
        on_tx!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE agents SET name = COALESCE($1, name), role = COALESCE($2, role),
                 sessions_epoch = sessions_epoch + $3 WHERE id = $4",
            )
            .bind(update.name.as_deref())
            .bind(role)
            .bind(i64::from(ends_sessions))
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if let Some(zone) = &update.time_zone {
                sqlx::query("UPDATE agents SET time_zone = $1 WHERE id = $2")
                    .bind(zone.as_deref())
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(queues) = &update.queues {
                sqlx::query("DELETE FROM agent_queues WHERE agent_id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                for queue in queues {
                    sqlx::query("INSERT INTO agent_queues (agent_id, queue_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(queue.id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        });
        tx.commit().await?;
        self.announce(Change::External);
        Ok(())
    }

    /// Removes an agent: they can never log in again, their open sessions
    /// end, they leave their queues and their open tickets go back to
    /// Unassigned (each a ticket change by `who`, in the history). The row
    /// stays, so that what they wrote and did keeps their name. Returns the
    /// tickets handed back.
    pub async fn remove_agent(&self, email: &str, who: &str) -> Result<Vec<i64>> {
        let now = Utc::now();
        let mut tx = self.begin().await?;
        let id: Option<i64> = on_tx!(&mut tx, |conn| {
            sqlx::query_scalar(
                "SELECT id FROM agents WHERE LOWER(email) = LOWER($1) AND removed_at IS NULL",
            )
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?
        });
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!("no agent {email}")));
        };
        let owned: Vec<i64> = on_tx!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE agents SET removed_at = $1, disabled = TRUE,
                 sessions_epoch = sessions_epoch + 1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM agent_queues WHERE agent_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            sqlx::query_scalar(
                "SELECT number FROM tickets WHERE owner_id = $1
                 AND status NOT IN ('resolved', 'closed') ORDER BY number",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
        });
        let give_back = TicketChange {
            owner: Some(None),
            ..TicketChange::default()
        };
        for number in &owned {
            let request =
                ChangeRequest::administrative(give_back.clone(), "agent removed", who, now);
            tx.change_ticket(*number, &request).await?;
        }
        tx.commit().await?;
        for number in &owned {
            self.announce(Change::Ticket(*number));
        }
        self.announce(Change::External);
        Ok(owned)
    }

    /// Every agent's session epoch: what a running session compares with
    /// the epoch it logged in at.
    pub async fn session_epochs(&self) -> Result<std::collections::HashMap<i64, i64>> {
        dispatch_read!(self, |pool| {
            let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, sessions_epoch FROM agents")
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().collect())
        })
    }
}

/// One administrative change, as `postdesk audit` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who: the system user who ran the command (and the agent of `--as`),
    /// or the server that loaded a rules file.
    pub actor: String,
    /// What was done: `agent add`, `agent disable`, `queue add`, …
    pub action: String,
    /// What it was done to (an agent's address, a queue).
    pub target: String,
    /// The command line, passwords never in it.
    pub command: String,
}

impl Store {
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, target, command) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.command)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The audit log, oldest first.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        dispatch_read!(self, |pool| {
            let rows: Vec<(
                chrono::DateTime<chrono::Utc>,
                String,
                String,
                String,
                String,
            )> = sqlx::query_as(
                "SELECT at, actor, action, target, command FROM audit_log ORDER BY id",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(at, actor, action, target, command)| AuditEntry {
                    at,
                    actor,
                    action,
                    target,
                    command,
                })
                .collect())
        })
    }
}

/// An UPDATE of one agent by address: none changed means no such agent.
fn agent_changed(changed: u64, email: &str) -> Result<()> {
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no agent {email}")));
    }
    Ok(())
}

impl Store {
    /// Whether the writer answers: a write into the database itself, rolled
    /// back (`/healthz`). A read-only, full-locked or unreachable database
    /// fails here.
    pub async fn check_writable(&self) -> Result<()> {
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ('health-check', '')
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .execute(&mut *tx)
            .await?;
            tx.rollback().await?;
            Ok(())
        })
    }

    /// Deliveries waiting or under way (the outbound queue's depth), and
    /// those given up on.
    pub async fn outbound_depth(&self) -> Result<(i64, i64)> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN status IN ('queued', 'sending', 'handing-over') THEN 1 ELSE 0 END), 0),
                        COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0)
                 FROM outbound",
            )
            .fetch_one(pool)
            .await?)
        })
    }
}
