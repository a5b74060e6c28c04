//! The knowledge base's articles and their revisions. What a change makes
//! of an article is decided by `domain::knowledge::plan_revision`; this
//! module reads the facts it needs, and writes the revision it planned.

use super::{Result, RowLock, Store, StoreError, dispatch, dispatch_read};
use crate::domain::knowledge::{
    self, ArticleChange, ArticleContent, ArticleRefusal, ArticleState, CategoryScopes,
};
use crate::domain::permission::Actor;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

/// An article as it is now: its newest revision, and its figures.
#[derive(Debug, Clone, Serialize)]
pub struct Article {
    pub id: i64,
    /// The number of the newest revision.
    pub revision: i64,
    #[serde(flatten)]
    pub content: ArticleContent,
    /// The help center's address of it (`/kb/42-printer-on-fire`).
    pub path: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    /// "Did this help?" answers on the help center.
    pub helped_yes: i64,
    pub helped_no: i64,
}

impl Article {
    /// Whether customers may see it (published and public).
    pub fn is_public(&self) -> bool {
        knowledge::is_public(self.content.state, self.content.visibility)
    }
}

/// One revision of an article, as written.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub article: i64,
    pub number: i64,
    pub at: DateTime<Utc>,
    pub author: String,
    /// What it changed ("created", "published", "edited body").
    pub summary: String,
    #[serde(flatten)]
    pub content: ArticleContent,
    /// The HTML part of the mail that wrote it, if a mail did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_html: Option<String>,
}

/// An article's usage figures (`kb report`).
#[derive(Debug, Clone, Serialize)]
pub struct ArticleUsage {
    pub id: i64,
    pub title: String,
    pub state: ArticleState,
    pub visibility: crate::domain::knowledge::Visibility,
    pub revisions: i64,
    /// Acknowledgements that suggested it (one per ticket).
    pub suggested: i64,
    /// Agents' replies that carried it (`#kb 42`).
    pub inserted: i64,
    /// Times the help center showed its page.
    pub views: i64,
    /// Tickets linked to it: it was inserted into, suggested for, or
    /// drafted from them.
    pub tickets: i64,
    pub helped_yes: i64,
    pub helped_no: i64,
}

/// How an article served a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketUsage {
    /// An agent's reply carried its text (`#kb 42`).
    Inserted,
    /// It was drafted from the ticket's conversation (`#kb draft`).
    Drafted,
}

impl TicketUsage {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketUsage::Inserted => "inserted",
            TicketUsage::Drafted => "drafted",
        }
    }
}

/// An article's newest revision as the Knowledge folders need it.
#[derive(Debug, Clone)]
pub struct ViewRevision {
    /// `kb_revisions.id`: the member a Knowledge folder shows.
    pub revision: i64,
    pub article: i64,
    pub state: ArticleState,
    pub visibility: crate::domain::knowledge::Visibility,
    pub category: String,
}

/// Which articles to list.
#[derive(Debug, Clone, Default)]
pub struct ArticleFilter {
    pub state: Option<ArticleState>,
    pub category: Option<String>,
    /// Only what customers may see (published and public).
    pub public_only: bool,
}

/// A change of the knowledge base to write: a new article (`article`
/// None) or the next revision of one.
#[derive(Debug, Clone)]
pub struct ArticleWrite<'a> {
    pub article: Option<i64>,
    /// Who asks, for the permission check (None: the server's administrator).
    pub actor: Option<&'a Actor>,
    /// Which queues' agents write which categories (`App::kb_scopes`).
    pub scopes: &'a CategoryScopes,
    /// Who the revision names as its author.
    pub author: String,
    pub change: ArticleChange,
    /// Go back to this revision's text (filled into `change` here).
    pub revert_to: Option<i64>,
    /// The HTML part of the mail that asked, kept with the revision.
    pub source_html: Option<String>,
    /// Message-IDs that name this article from now on (the mail that wrote
    /// it), so that a reply to them is its next revision.
    pub message_ids: Vec<String>,
    pub now: DateTime<Utc>,
}

const REVISION_COLUMNS: &str = "r.article, r.number, r.at, r.author, r.summary, r.state, \
     r.visibility, r.category, r.title, r.body_text, r.body_html, r.source_html";

const ARTICLE_SELECT: &str = "SELECT a.id, a.created_at, a.created_by, r.number, r.at, r.author, \
     r.state, r.visibility, r.category, r.title, r.body_text, r.body_html, \
     (SELECT COUNT(*) FROM kb_feedback f WHERE f.article = a.id AND f.helped) AS helped_yes, \
     (SELECT COUNT(*) FROM kb_feedback f WHERE f.article = a.id AND NOT f.helped) AS helped_no \
     FROM kb_articles a JOIN kb_revisions r ON r.article = a.id AND r.number = a.latest_revision";

macro_rules! content_from_row {
    ($row:expr) => {
        ArticleContent {
            title: $row.try_get("title")?,
            category: $row.try_get("category")?,
            state: super::parse_column(&$row.try_get::<String, _>("state")?, "article state")?,
            visibility: super::parse_column(
                &$row.try_get::<String, _>("visibility")?,
                "article visibility",
            )?,
            body_text: $row.try_get("body_text")?,
            body_html: $row.try_get("body_html")?,
        }
    };
}

macro_rules! article_from_row {
    ($row:expr) => {{
        let content = content_from_row!($row);
        let id: i64 = $row.try_get("id")?;
        Article {
            id,
            revision: $row.try_get("number")?,
            path: knowledge::article_path(id, &content.title),
            content,
            created_at: $row.try_get("created_at")?,
            created_by: $row.try_get("created_by")?,
            updated_at: $row.try_get("at")?,
            updated_by: $row.try_get("author")?,
            helped_yes: $row.try_get("helped_yes")?,
            helped_no: $row.try_get("helped_no")?,
        }
    }};
}

macro_rules! revision_from_row {
    ($row:expr) => {
        Revision {
            article: $row.try_get("article")?,
            number: $row.try_get("number")?,
            at: $row.try_get("at")?,
            author: $row.try_get("author")?,
            summary: $row.try_get("summary")?,
            content: content_from_row!($row),
            source_html: $row.try_get("source_html")?,
        }
    };
}

impl Store {
    /// The articles, newest change first.
    pub async fn kb_articles(&self, filter: &ArticleFilter) -> Result<Vec<Article>> {
        let mut sql = format!("{ARTICLE_SELECT} WHERE 1 = 1");
        if filter.state.is_some() {
            sql.push_str(" AND r.state = $1");
        }
        if filter.public_only {
            sql.push_str(" AND r.state = 'published' AND r.visibility = 'public'");
        }
        let state = filter.state.map(|s| s.as_str());
        sql.push_str(" ORDER BY r.at DESC, a.id DESC");
        let articles: Vec<Article> = dispatch_read!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            if let Some(state) = state {
                query = query.bind(state);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok(article_from_row!(row)))
                .collect::<Result<Vec<Article>>>()?
        });
        Ok(match &filter.category {
            Some(category) => articles
                .into_iter()
                .filter(|a| a.content.category.eq_ignore_ascii_case(category))
                .collect(),
            None => articles,
        })
    }

    /// One article as it is now.
    pub async fn kb_article(&self, id: i64) -> Result<Option<Article>> {
        let sql = format!("{ARTICLE_SELECT} WHERE a.id = $1");
        dispatch_read!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(article_from_row!(row)),
                None => None,
            })
        })
    }

    /// The article a mail refers to (one of its Message-IDs), if any.
    pub async fn kb_article_of_message(&self, message_ids: &[String]) -> Result<Option<i64>> {
        if message_ids.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT article FROM kb_article_mail WHERE message_id IN ({}) LIMIT 1",
            super::events::placeholders(1, message_ids.len())
        );
        dispatch_read!(self, |pool| {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for id in message_ids {
                query = query.bind(id);
            }
            Ok(query.fetch_optional(pool).await?)
        })
    }

    /// Every revision of an article, oldest first.
    pub async fn kb_revisions(&self, id: i64) -> Result<Vec<Revision>> {
        let sql = format!(
            "SELECT {REVISION_COLUMNS} FROM kb_revisions r WHERE r.article = $1 ORDER BY r.number"
        );
        let revisions: Vec<Revision> = dispatch_read!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| Ok(revision_from_row!(row)))
                .collect::<Result<Vec<Revision>>>()?
        });
        if revisions.is_empty() {
            return Err(StoreError::NotFound(format!("no article {id}")));
        }
        Ok(revisions)
    }

    /// Writes the next revision of an article (or a new article) as
    /// `plan_revision` decides it; returns the revision written.
    pub async fn kb_write(&self, write: &ArticleWrite<'_>) -> Result<Revision> {
        let lock = self.backend.lock(RowLock::Wait);
        let latest_sql = format!(
            "SELECT {REVISION_COLUMNS} FROM kb_articles a \
             JOIN kb_revisions r ON r.article = a.id AND r.number = a.latest_revision \
             WHERE a.id = $1{}",
            lock
        );
        let earlier_sql = format!(
            "SELECT {REVISION_COLUMNS} FROM kb_revisions r WHERE r.article = $1 AND r.number = $2"
        );
        // On PostgreSQL, changes of the knowledge base (rare, made by people)
        // take turns, so that revision ids become visible in their order and
        // the newest id tells a derived index whether it missed one.
        let serialize = match &self.backend {
            super::Backend::Postgres(_) => Some("SELECT pg_advisory_xact_lock(7715015)"),
            super::Backend::Sqlite { .. } => None,
        };
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            if let Some(sql) = serialize {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            let current = match write.article {
                None => None,
                Some(id) => {
                    let row = sqlx::query(sqlx::AssertSqlSafe(latest_sql))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("no article {id}")))?;
                    Some(revision_from_row!(row))
                }
            };
            let mut change = write.change.clone();
            if let (Some(number), Some(id)) = (write.revert_to, write.article) {
                let row = sqlx::query(sqlx::AssertSqlSafe(earlier_sql))
                    .bind(id)
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!("article {id} has no revision {number}"))
                    })?;
                let earlier = revision_from_row!(row);
                change.revert_to = Some((number, earlier.content));
            }
            let planned = knowledge::plan_revision(
                write.actor,
                write.scopes,
                current.as_ref().map(|r| &r.content),
                &change,
                write.now,
            )
            .map_err(refused)?;
            let (article, number) = match &current {
                Some(current) => (current.article, current.number + 1),
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO kb_articles (created_at, created_by, latest_revision)
                         VALUES ($1, $2, 1) RETURNING id",
                    )
                    .bind(planned.at)
                    .bind(&write.author)
                    .fetch_one(&mut *tx)
                    .await?;
                    (id, 1)
                }
            };
            let content = &planned.content;
            sqlx::query(
                "INSERT INTO kb_revisions (article, number, at, author, summary, state,
                     visibility, category, title, body_text, body_html, source_html)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(article)
            .bind(number)
            .bind(planned.at)
            .bind(&write.author)
            .bind(&planned.summary)
            .bind(content.state.as_str())
            .bind(content.visibility.as_str())
            .bind(&content.category)
            .bind(&content.title)
            .bind(&content.body_text)
            .bind(&content.body_html)
            .bind(&write.source_html)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE kb_articles SET latest_revision = $1 WHERE id = $2")
                .bind(number)
                .bind(article)
                .execute(&mut *tx)
                .await?;
            for message_id in &write.message_ids {
                sqlx::query(
                    "INSERT INTO kb_article_mail (message_id, article) VALUES ($1, $2)
                     ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(message_id)
                .bind(article)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            // The Knowledge folders show the change (every node's sessions).
            self.announce(super::Change::External);
            Ok(Revision {
                article,
                number,
                at: planned.at,
                author: write.author.clone(),
                summary: planned.summary,
                content: planned.content,
                source_html: write.source_html.clone(),
            })
        })
    }

    /// Every article's usage figures, by id.
    pub async fn kb_usage(&self) -> Result<Vec<ArticleUsage>> {
        let sql = String::from(
            "SELECT a.id, r.title, r.state, r.visibility, a.latest_revision AS revisions, \
             (SELECT COUNT(*) FROM kb_suggestions s WHERE s.article = a.id) AS suggested, \
             (SELECT COUNT(*) FROM kb_ticket_articles u WHERE u.article = a.id \
                AND u.usage = 'inserted') AS inserted, a.views, \
             (SELECT COUNT(*) FROM (SELECT u.ticket FROM kb_ticket_articles u WHERE u.article = a.id \
                UNION SELECT s.ticket FROM kb_suggestions s WHERE s.article = a.id) linked) AS tickets, \
             (SELECT COUNT(*) FROM kb_feedback f WHERE f.article = a.id AND f.helped) AS helped_yes, \
             (SELECT COUNT(*) FROM kb_feedback f WHERE f.article = a.id AND NOT f.helped) AS helped_no \
             FROM kb_articles a JOIN kb_revisions r ON r.article = a.id AND r.number = a.latest_revision \
             ORDER BY a.id",
        );
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(ArticleUsage {
                        id: row.try_get("id")?,
                        title: row.try_get("title")?,
                        state: super::parse_column(
                            &row.try_get::<String, _>("state")?,
                            "article state",
                        )?,
                        visibility: super::parse_column(
                            &row.try_get::<String, _>("visibility")?,
                            "article visibility",
                        )?,
                        revisions: row.try_get("revisions")?,
                        suggested: row.try_get("suggested")?,
                        inserted: row.try_get("inserted")?,
                        views: row.try_get("views")?,
                        tickets: row.try_get("tickets")?,
                        helped_yes: row.try_get("helped_yes")?,
                        helped_no: row.try_get("helped_no")?,
                    })
                })
                .collect()
        })
    }

    /// Records the articles a new ticket's acknowledgement suggested.
    pub async fn kb_record_suggestions(
        &self,
        ticket: i64,
        articles: &[i64],
        at: DateTime<Utc>,
    ) -> Result<()> {
        if articles.is_empty() {
            return Ok(());
        }
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            for article in articles {
                sqlx::query(
                    "INSERT INTO kb_suggestions (ticket, article, at) VALUES ($1, $2, $3)
                     ON CONFLICT (ticket, article) DO NOTHING",
                )
                .bind(ticket)
                .bind(article)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The articles a ticket's acknowledgement suggested, in order.
    pub async fn kb_suggested_for(&self, ticket: i64) -> Result<Vec<i64>> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT article FROM kb_suggestions WHERE ticket = $1 ORDER BY at, article",
            )
            .bind(ticket)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Every article's newest revision, by ascending revision id (the
    /// Knowledge folders pick theirs).
    pub async fn kb_view_revisions(&self) -> Result<Vec<ViewRevision>> {
        let rows: Vec<(i64, i64, String, String, String)> = dispatch_read!(self, |pool| {
            sqlx::query_as(
                "SELECT r.id, r.article, r.state, r.visibility, r.category FROM kb_articles a
                 JOIN kb_revisions r ON r.article = a.id AND r.number = a.latest_revision
                 ORDER BY r.id",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(revision, article, state, visibility, category)| {
                Ok(ViewRevision {
                    revision,
                    article,
                    state: super::parse_column(&state, "article state")?,
                    visibility: super::parse_column(&visibility, "article visibility")?,
                    category,
                })
            })
            .collect()
    }

    /// The categories of published articles, sorted (a Knowledge folder each).
    pub async fn kb_published_categories(&self) -> Result<Vec<String>> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT DISTINCT r.category FROM kb_articles a
                 JOIN kb_revisions r ON r.article = a.id AND r.number = a.latest_revision
                 WHERE r.state = 'published' ORDER BY r.category",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Of these revisions, those without their mail yet.
    pub async fn kb_revisions_without_mail(&self, revisions: &[i64]) -> Result<Vec<i64>> {
        let mut missing = Vec::new();
        for chunk in revisions.chunks(500) {
            let sql = format!(
                "SELECT id FROM kb_revisions WHERE id IN ({}) AND NOT EXISTS \
                 (SELECT 1 FROM kb_revision_mail m WHERE m.revision = kb_revisions.id) ORDER BY id",
                super::events::placeholders(1, chunk.len())
            );
            let found: Vec<i64> = dispatch_read!(self, |pool| {
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            missing.extend(found);
        }
        Ok(missing)
    }

    /// One revision by its id.
    pub async fn kb_revision_by_id(&self, revision: i64) -> Result<Revision> {
        let sql = format!("SELECT {REVISION_COLUMNS} FROM kb_revisions r WHERE r.id = $1");
        dispatch_read!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(revision)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no revision {revision}")))?;
            Ok(revision_from_row!(row))
        })
    }

    /// Keeps the mail rendered of a revision (once: the first one written
    /// stays, byte-exact), and its Message-ID as the article's, so that a
    /// reply to it is the article's next revision.
    pub async fn kb_store_revision_mail(
        &self,
        revision: i64,
        article: i64,
        message_id: &str,
        raw: &[u8],
        internal_date: DateTime<Utc>,
    ) -> Result<()> {
        let header_len = super::header_len(raw);
        let size = raw.len() as i64;
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO kb_revision_mail (revision, internal_date, size, header_len, raw)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (revision) DO NOTHING",
            )
            .bind(revision)
            .bind(internal_date)
            .bind(size)
            .bind(header_len)
            .bind(raw)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO kb_article_mail (message_id, article) VALUES ($1, $2)
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(message_id)
            .bind(article)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Counts one view of an article's page on the help center.
    pub async fn kb_count_view(&self, id: i64) -> Result<()> {
        dispatch!(self, |pool| {
            sqlx::query("UPDATE kb_articles SET views = views + 1 WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records that an article served a ticket, with the ticket event
    /// `detail` (one transaction).
    pub async fn kb_record_ticket_usage(
        &self,
        ticket: i64,
        article: i64,
        usage: TicketUsage,
        actor: &str,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        super::on_tx!(&mut tx, |conn| {
            sqlx::query(
                "INSERT INTO kb_ticket_articles (ticket, article, usage, actor, at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(ticket)
            .bind(article)
            .bind(usage.as_str())
            .bind(actor)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        });
        tx.insert_events(&[crate::domain::ticket::NewEvent {
            ticket,
            at,
            actor: actor.to_string(),
            kind: crate::domain::ticket::EventKind::Knowledge,
            detail: detail.to_string(),
        }])
        .await?;
        tx.commit().await?;
        self.announce(super::Change::Ticket(ticket));
        Ok(())
    }

    /// The articles that served a ticket, in order: (article, usage).
    pub async fn kb_ticket_usage(&self, ticket: i64) -> Result<Vec<(i64, TicketUsage)>> {
        let rows: Vec<(i64, String)> = dispatch_read!(self, |pool| {
            sqlx::query_as(
                "SELECT article, usage FROM kb_ticket_articles WHERE ticket = $1 ORDER BY id",
            )
            .bind(ticket)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(article, usage)| {
                let usage = if usage == "drafted" {
                    TicketUsage::Drafted
                } else {
                    TicketUsage::Inserted
                };
                (article, usage)
            })
            .collect())
    }

    /// Counts "this solved my problem" from a ticket's acknowledgement for
    /// an article it suggested: once per ticket and article. True when it
    /// is counted now; false when it was before, or the article was not
    /// suggested for the ticket.
    pub async fn kb_record_solved(
        &self,
        ticket: i64,
        article: i64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let counted = dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO kb_feedback (article, at, helped, ticket)
                 SELECT s.article, $3, TRUE, s.ticket FROM kb_suggestions s
                 WHERE s.ticket = $1 AND s.article = $2
                 ON CONFLICT DO NOTHING",
            )
            .bind(ticket)
            .bind(article)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(counted == 1)
    }

    /// The newest revision's id: it grows with every change of the
    /// knowledge base (for indexes derived from it; 0 when empty).
    pub async fn kb_generation(&self) -> Result<i64> {
        dispatch_read!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM kb_revisions")
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    /// Counts a "did this help?" answer, for an article customers may see
    /// only; false (nothing counted) for any other.
    pub async fn kb_record_feedback(
        &self,
        id: i64,
        helped: bool,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let counted = dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO kb_feedback (article, at, helped)
                 SELECT a.id, $2, $3 FROM kb_articles a
                 JOIN kb_revisions r ON r.article = a.id AND r.number = a.latest_revision
                 WHERE a.id = $1 AND r.state = 'published' AND r.visibility = 'public'",
            )
            .bind(id)
            .bind(at)
            .bind(helped)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(counted == 1)
    }
}

fn refused(refusal: ArticleRefusal) -> StoreError {
    match refusal {
        ArticleRefusal::Denied(denied) => StoreError::Denied(denied),
        other => StoreError::Conflict(other.to_string()),
    }
}
