//! Shared templates (canned replies) per queue, and their copies in the
//! agents' Templates folders. What a name is and how a reply uses a
//! template is decided in `domain::templates`.

use super::{MessageRef, Result, StorageItem, Store, StoreError, dispatch, dispatch_read};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

/// A template as it is stored.
#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub id: i64,
    pub name: String,
    pub queue: String,
    pub subject: String,
    pub body_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_html: Option<String>,
    pub author: String,
    #[serde(skip)]
    pub author_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A template to store.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub name: String,
    pub queue_id: i64,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// The mail it is (shown in the Templates folder).
    pub raw: Vec<u8>,
    pub author: String,
    pub author_id: Option<i64>,
    pub now: DateTime<Utc>,
    /// A template of the same name in the queue is replaced (its id goes).
    pub replaces: Option<i64>,
}

const TEMPLATE_SELECT: &str = "SELECT t.id, t.name, q.name AS queue, t.subject, t.body_text, \
     t.body_html, t.author, t.author_id, t.created_at FROM templates t JOIN queues q ON q.id = t.queue_id";

macro_rules! template_from_row {
    ($row:expr) => {
        Template {
            id: $row.try_get("id")?,
            name: $row.try_get("name")?,
            queue: $row.try_get("queue")?,
            subject: $row.try_get("subject")?,
            body_text: $row.try_get("body_text")?,
            body_html: $row.try_get("body_html")?,
            author: $row.try_get("author")?,
            author_id: $row.try_get("author_id")?,
            created_at: $row.try_get("created_at")?,
        }
    };
}

impl Store {
    /// The templates of these queues (every queue: None), by queue and name.
    pub async fn templates(&self, queues: Option<&[String]>) -> Result<Vec<Template>> {
        let sql = format!("{TEMPLATE_SELECT} ORDER BY q.name, t.name");
        let all: Vec<Template> = dispatch_read!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| Ok(template_from_row!(row)))
                .collect::<Result<Vec<Template>>>()?
        });
        Ok(match queues {
            None => all,
            Some(queues) => all
                .into_iter()
                .filter(|t| queues.iter().any(|q| q.eq_ignore_ascii_case(&t.queue)))
                .collect(),
        })
    }

    /// One template by id.
    pub async fn template(&self, id: i64) -> Result<Option<Template>> {
        let sql = format!("{TEMPLATE_SELECT} WHERE t.id = $1");
        dispatch_read!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(template_from_row!(row)),
                None => None,
            })
        })
    }

    /// The template of a queue with this (normalised) name.
    pub async fn template_named(&self, queue: &str, name: &str) -> Result<Option<Template>> {
        let sql = format!("{TEMPLATE_SELECT} WHERE q.name = $1 AND t.name = $2");
        dispatch_read!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(queue)
                .bind(name)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(template_from_row!(row)),
                None => None,
            })
        })
    }

    /// Stores a template (replacing the one it names in `replaces`, in
    /// the same transaction). A name taken in the queue is a conflict.
    pub async fn add_template(&self, t: &NewTemplate) -> Result<i64> {
        // In a block of its own: a refusal of the database is read below.
        let result: Result<i64> = async {
            dispatch!(self, |pool| {
                let mut tx = pool.begin().await?;
                if let Some(old) = t.replaces {
                    sqlx::query("DELETE FROM templates WHERE id = $1")
                        .bind(old)
                        .execute(&mut *tx)
                        .await?;
                }
                let id: i64 = sqlx::query_scalar(
                "INSERT INTO templates (name, queue_id, subject, body_text, body_html, raw, author,
                     author_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&t.name)
            .bind(t.queue_id)
            .bind(&t.subject)
            .bind(&t.body_text)
            .bind(&t.body_html)
            .bind(&t.raw)
            .bind(&t.author)
            .bind(t.author_id)
            .bind(t.now)
            .fetch_one(&mut *tx)
            .await?;
                tx.commit().await?;
                Ok(id)
            })
        }
        .await;
        match result {
            Err(err) if err.is_unique_violation() => Err(StoreError::Conflict(format!(
                "a template named '{}' exists in this queue already",
                t.name
            ))),
            other => other,
        }
    }

    /// Removes a template. Its copies leave the agents' Templates folders
    /// when those are next opened. False: there was none.
    pub async fn remove_template(&self, id: i64) -> Result<bool> {
        dispatch!(self, |pool| {
            let done = sqlx::query("DELETE FROM templates WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The template copies in a mailbox: (UID, template id).
    pub async fn template_copies(&self, mailbox_id: i64) -> Result<Vec<(u32, i64)>> {
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT m.uid, c.template_id FROM imap_members m
                 JOIN template_copies c ON c.stored_id = m.stored_id
                 WHERE m.mailbox_id = $1 ORDER BY m.uid",
            )
            .bind(mailbox_id)
            .fetch_all(pool)
            .await?;
            let mut copies = Vec::with_capacity(rows.len());
            for row in &rows {
                let uid: i64 = row.try_get("uid")?;
                let uid =
                    u32::try_from(uid).map_err(|_| StoreError::Corrupt(format!("UID {uid}")))?;
                copies.push((uid, row.try_get("template_id")?));
            }
            Ok(copies)
        })
    }

    /// Puts a copy of a template into an agent's Templates mailbox (read,
    /// as a template is no news); returns its UID.
    pub async fn add_template_copy(
        &self,
        mailbox_id: i64,
        agent_id: i64,
        template_id: i64,
        raw: Option<Vec<u8>>,
        flags: String,
    ) -> Result<Option<u32>> {
        let (raw, created_at) = dispatch_read!(self, |pool| {
            let row = sqlx::query("SELECT raw, created_at FROM templates WHERE id = $1")
                .bind(template_id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => {
                    let stored: Vec<u8> = row.try_get("raw")?;
                    let at: DateTime<Utc> = row.try_get("created_at")?;
                    (raw.unwrap_or(stored), at)
                }
                None => return Ok(None),
            }
        });
        let uids = self
            .imap_add_to_storage(
                mailbox_id,
                agent_id,
                vec![(
                    StorageItem::New {
                        raw,
                        internal_date: Some(created_at),
                    },
                    flags,
                )],
            )
            .await?;
        let Some(uid) = uids.first().copied() else {
            return Ok(None);
        };
        let stored = self
            .imap_members(mailbox_id)
            .await?
            .into_iter()
            .find(|m| m.uid == uid)
            .and_then(|m| match m.message {
                MessageRef::Stored(id) => Some(id),
                MessageRef::Ticket(_) | MessageRef::Article(_) => None,
            });
        if let Some(stored) = stored {
            dispatch!(self, |pool| {
                sqlx::query(
                    "INSERT INTO template_copies (stored_id, template_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                )
                .bind(stored)
                .bind(template_id)
                .execute(pool)
                .await?;
            });
        }
        Ok(Some(uid))
    }
}
