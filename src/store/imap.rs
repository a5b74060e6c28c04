//! The IMAP view's storage: per-agent mailboxes with materialized
//! membership (DESIGN.md §4).
//!
//! A view's membership is not a query run on each FETCH: UIDs must ascend
//! strictly and never be reused, and a ticket that leaves a view and comes
//! back must come back under new UIDs. So each mailbox keeps its members
//! with their own UIDs, and [`Store::imap_reconcile`] brings them in line
//! with the tickets: members whose ticket left the view are removed, messages
//! that entered get the next UIDs, members whose flags changed get a new
//! MODSEQ. Reconciling is skipped when nothing that could matter changed
//! since the last time (the sync marker).

use super::events::placeholders;
use super::filing::Work;
use super::membership::{Shown, delete_members_sql, remember_expunged_sql};
use super::{Change, Result, Store, StoreError, dispatch, dispatch_read, on_tx, parse_column};
use crate::domain::keywords::{JunkFacts, KeywordMap};
use crate::domain::permission::{Actor, AgentRole, Assignee};
use crate::domain::ticket::{Priority, Status};
pub use crate::domain::views::{FlagOp, join_flags};
use crate::domain::views::{OwnerFilter, ViewFilter, derived_flags};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// How long the UIDs that left a mailbox are remembered for sessions that
/// refresh by MODSEQ ([`Store::imap_changes_since`]); a session that last
/// refreshed longer ago than half of it reads the whole mailbox instead.
pub const EXPUNGED_KEPT_SECONDS: i64 = 24 * 3600;

/// One mailbox of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: i64,
    pub agent_id: i64,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub subscribed: bool,
    /// Messages above this UID are still \Recent (RFC 3501 §2.3.2).
    pub recent_uid: u32,
}

/// What a mailbox member shows: one of a ticket's messages, or a message
/// the agent stored (draft, sent copy, personal filing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageRef {
    Ticket(i64),
    Stored(i64),
    /// A knowledge-base article's revision (`kb_revisions.id`), as the
    /// mail rendered of it (issue 19).
    Article(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub uid: u32,
    pub message: MessageRef,
    /// Space-separated IMAP flags and keywords.
    pub flags: String,
    pub modseq: u64,
}

/// A mailbox's message counts, for STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxCounts {
    pub messages: u32,
    pub unseen: u32,
    /// Above the mailbox's `recent_uid`: \Recent for the next IMAP4rev1
    /// session to select it.
    pub recent: u32,
    /// With a stored `\Deleted` (STATUS DELETED, RFC 9051).
    pub deleted: u32,
}

/// A message's bytes and IMAP metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The message, or only its first bytes when a prefix was asked for.
    pub raw: Vec<u8>,
    /// Size of the whole message.
    pub size: usize,
    pub internal_date: DateTime<Utc>,
}

/// Who is looking: views are scoped to the queues an agent may see.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub agent_id: i64,
    /// An admin: every queue, whatever they are a member of.
    pub sees_every_queue: bool,
    /// How tags show as keywords (Thunderbird's `$labelN`).
    pub keywords: std::sync::Arc<KeywordMap>,
}

/// An agent as IMAP and submission log them in.
#[derive(Debug, Clone)]
pub struct LoginAgent {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: AgentRole,
    pub password_hash: String,
    /// The queues this agent may see (all of them for an admin).
    pub queues: Vec<String>,
    /// The agent's session epoch at login: when it moves (disabled, new
    /// password), the session ends.
    pub epoch: i64,
}

impl LoginAgent {
    /// The agent as the permission checks see them.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.id,
            email: self.email.clone(),
            role: self.role,
            queues: self.queues.clone(),
        }
    }

    /// The agent as the new owner of a ticket they take (logged in, so
    /// active).
    pub fn as_assignee(&self) -> Assignee {
        Assignee {
            id: self.id,
            email: self.email.clone(),
            role: self.role,
            queues: self.queues.clone(),
            active: true,
        }
    }
}

const MAILBOX_COLUMNS: &str = "id, agent_id, name, uidvalidity, uidnext, highestmodseq, subscribed, recent_uid FROM imap_mailboxes";

macro_rules! mailbox_from_row {
    ($row:expr) => {{
        let row = $row;
        Mailbox {
            id: row.try_get("id")?,
            agent_id: row.try_get("agent_id")?,
            name: row.try_get("name")?,
            uidvalidity: to_u32(row.try_get("uidvalidity")?)?,
            uidnext: to_u32(row.try_get("uidnext")?)?,
            highestmodseq: to_u64(row.try_get("highestmodseq")?)?,
            subscribed: row.try_get("subscribed")?,
            recent_uid: to_u32(row.try_get("recent_uid")?)?,
        }
    }};
}

macro_rules! member_from_row {
    ($row:expr) => {{
        let row = $row;
        let message: Option<i64> = row.try_get("message_id")?;
        let stored: Option<i64> = row.try_get("stored_id")?;
        let revision: Option<i64> = row.try_get("revision_id")?;
        Member {
            uid: to_u32(row.try_get("uid")?)?,
            message: match (message, stored, revision) {
                (Some(id), _, _) => MessageRef::Ticket(id),
                (None, Some(id), _) => MessageRef::Stored(id),
                (None, None, Some(id)) => MessageRef::Article(id),
                (None, None, None) => {
                    return Err(StoreError::Corrupt("member without a message".into()));
                }
            },
            flags: row.try_get("flags")?,
            modseq: to_u64(row.try_get("modseq")?)?,
        }
    }};
}

pub(super) fn to_u32(value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{value} is not a 32-bit UID")))
}

fn to_u64(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative MODSEQ {value}")))
}

/// What a view's condition names: the agent, whether they see every
/// queue, the queue ('' for any) and the start of the Closed window, each
/// a parameter or a column.
pub(super) struct ViewTerms {
    pub(super) agent: &'static str,
    pub(super) sees_every_queue: &'static str,
    pub(super) queue: &'static str,
    pub(super) closed_since: &'static str,
}

impl ViewTerms {
    /// One viewer's view: $1 agent id, $2 is admin, $3 queue name, $4 the
    /// start of the Closed window.
    pub(super) const ONE_VIEWER: ViewTerms = ViewTerms {
        agent: "$1",
        sees_every_queue: "$2",
        queue: "$3",
        closed_since: "$4",
    };
}

/// The WHERE clause of a view over `messages m JOIN tickets t JOIN queues q`
/// (see [`ViewTerms`]). Enum values are inlined: they are our own
/// constants, never input.
pub(super) fn view_condition(filter: &ViewFilter, terms: &ViewTerms) -> String {
    let ViewTerms {
        agent,
        sees_every_queue: every,
        queue,
        closed_since: since,
    } = terms;
    let mut clauses = vec![
        format!(
            "({every} OR t.queue_id IN (SELECT queue_id FROM agent_queues WHERE agent_id = {agent}))"
        ),
        format!("({queue} = '' OR q.name = {queue})"),
    ];
    if filter.overdue {
        clauses.push("t.sla_overdue".into());
    }
    if !filter.statuses.is_empty() {
        let list: Vec<String> = filter
            .statuses
            .iter()
            .map(|s: &Status| format!("'{}'", s.as_str()))
            .collect();
        clauses.push(format!("t.status IN ({})", list.join(", ")));
    }
    if !filter.priorities.is_empty() {
        let list: Vec<String> = filter
            .priorities
            .iter()
            .map(|p: &Priority| format!("'{}'", p.as_str()))
            .collect();
        if filter.or_overdue {
            clauses.push(format!(
                "(t.priority IN ({}) OR t.sla_overdue)",
                list.join(", ")
            ));
        } else {
            clauses.push(format!("t.priority IN ({})", list.join(", ")));
        }
    }
    match filter.owner {
        OwnerFilter::Anyone => {}
        OwnerFilter::Me => clauses.push(format!("t.owner_id = {agent}")),
        OwnerFilter::Nobody => clauses.push("t.owner_id IS NULL".into()),
    }
    match filter.disposition {
        None => clauses.push("t.disposition IS NULL".into()),
        Some(d) => clauses.push(format!("t.disposition = '{}'", d.as_str())),
    }
    if filter.recently_done {
        clauses.push(format!("t.done_at >= {since}"));
    } else {
        // Always true: it only names the parameter, which every view binds,
        // so that PostgreSQL learns its type.
        clauses.push(format!(
            "(t.done_at IS NULL OR t.done_at >= {since} OR {since} IS NOT NULL)"
        ));
    }
    clauses.join(" AND ")
}

/// The three reads of what a view should hold: its messages (with seen
/// and answered), its tickets' tags and the agent's own keywords. `$1` the
/// agent, `$2` whether it sees every queue, `$3` the queue ('' for all),
/// `$4` the oldest done time shown. A reconcile of some tickets reads
/// with [`super::view_batch`]'s queries instead, for several mailboxes.
fn view_queries(filter: &ViewFilter) -> [String; 3] {
    let condition = view_condition(filter, &ViewTerms::ONE_VIEWER);
    let columns = wanted_columns("$1");
    [
        format!(
            "SELECT {columns}
             FROM tickets t JOIN messages m ON m.ticket = t.number JOIN queues q ON q.id = t.queue_id
             WHERE m.kind <> 'auto_reply' AND {condition} ORDER BY m.id"
        ),
        format!(
            "SELECT tt.ticket, tt.tag FROM tickets t JOIN ticket_tags tt ON tt.ticket = t.number
             JOIN queues q ON q.id = t.queue_id WHERE {condition}"
        ),
        format!(
            "SELECT k.message_id, k.keyword FROM agent_keywords k
             JOIN messages m ON m.id = k.message_id
             JOIN tickets t ON t.number = m.ticket JOIN queues q ON q.id = t.queue_id
             WHERE k.agent_id = $1 AND m.kind <> 'auto_reply' AND {condition}"
        ),
    ]
}

/// What is read of a message `m` of ticket `t` that a view should hold,
/// as a [`WantedRow`]: `agent` names the agent whose `\Seen` it shows.
pub(super) fn wanted_columns(agent: &str) -> String {
    format!(
        "m.id, m.ticket, t.priority,
         EXISTS (SELECT 1 FROM agent_seen s WHERE s.agent_id = {agent} AND s.message_id = m.id) AS seen,
         (m.kind = 'customer' AND EXISTS (SELECT 1 FROM messages r
             WHERE r.ticket = m.ticket AND r.kind = 'reply' AND r.id > m.id)) AS answered"
    )
}

/// A message a view should hold, as read: id, ticket, priority, seen by
/// the agent, answered.
pub(super) type WantedRow = (i64, i64, String, bool, bool);

/// Values by key, in the order read.
pub(super) fn grouped(rows: Vec<(i64, String)>) -> HashMap<i64, Vec<String>> {
    let mut groups: HashMap<i64, Vec<String>> = HashMap::new();
    for (key, value) in rows {
        groups.entry(key).or_default().push(value);
    }
    groups
}

/// The messages a view should hold with the flags each shows to `viewer`:
/// `tags` by ticket, the agent's own keywords `own` by message.
pub(super) fn wanted_with_flags(
    viewer: &Viewer,
    rows: Vec<WantedRow>,
    tags: &HashMap<i64, Vec<String>>,
    own: &HashMap<i64, Vec<String>>,
) -> Result<Vec<(i64, String)>> {
    let mut wanted = Vec::with_capacity(rows.len());
    for (id, ticket, priority, seen, answered) in rows {
        let priority: Priority = parse_column(&priority, "priority")?;
        let shown = viewer
            .keywords
            .shown(tags.get(&ticket).map(Vec::as_slice).unwrap_or(&[]));
        let flags = derived_flags(
            seen,
            answered,
            priority == Priority::Urgent,
            &shown,
            own.get(&id).map(Vec::as_slice).unwrap_or(&[]),
        );
        wanted.push((id, flags));
    }
    Ok(wanted)
}

/// Deletes the stored messages of a mailbox's agent that no mailbox holds
/// any more ($1: the mailbox, which must still exist).
const DELETE_ORPHANS: &str = "DELETE FROM agent_messages
    WHERE agent_id = (SELECT agent_id FROM imap_mailboxes WHERE id = $1)
    AND NOT EXISTS (SELECT 1 FROM imap_members m WHERE m.stored_id = agent_messages.id)";

impl Store {
    /// The agent with this address, for LOGIN (case-insensitive).
    pub async fn login_agent(&self, email: &str) -> Result<Option<LoginAgent>> {
        dispatch_read!(self, |pool| {
            let row = sqlx::query(
                "SELECT id, email, name, role, password_hash, sessions_epoch FROM agents
                 WHERE LOWER(email) = LOWER($1) AND NOT disabled AND removed_at IS NULL",
            )
            .bind(email)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let id: i64 = row.try_get("id")?;
            let role: AgentRole = parse_column(&row.try_get::<String, _>("role")?, "role")?;
            let queues: Vec<String> = if role == AgentRole::Admin {
                sqlx::query_scalar("SELECT name FROM queues ORDER BY name")
                    .fetch_all(pool)
                    .await?
            } else {
                sqlx::query_scalar(
                    "SELECT q.name FROM agent_queues aq JOIN queues q ON q.id = aq.queue_id
                     WHERE aq.agent_id = $1 ORDER BY q.name",
                )
                .bind(id)
                .fetch_all(pool)
                .await?
            };
            Ok(Some(LoginAgent {
                id,
                email: row.try_get("email")?,
                name: row.try_get("name")?,
                role,
                password_hash: row.try_get("password_hash")?,
                queues,
                epoch: row.try_get("sessions_epoch")?,
            }))
        })
    }

    pub async fn imap_mailboxes(&self, agent_id: i64) -> Result<Vec<Mailbox>> {
        dispatch_read!(self, |pool| {
            let sql = format!("SELECT {MAILBOX_COLUMNS} WHERE agent_id = $1 ORDER BY name");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(agent_id)
                .fetch_all(pool)
                .await?;
            let mut boxes = Vec::with_capacity(rows.len());
            for row in &rows {
                boxes.push(mailbox_from_row!(row));
            }
            Ok(boxes)
        })
    }

    /// The mailbox as it is now. Reads use the read pool: a committed
    /// reconcile is visible to them, and every command of every session
    /// reads here, which must not queue behind SQLite's one writer.
    pub async fn imap_mailbox(&self, id: i64) -> Result<Mailbox> {
        dispatch_read!(self, |pool| {
            let sql = format!("SELECT {MAILBOX_COLUMNS} WHERE id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(mailbox_from_row!(row)),
                None => Err(StoreError::NotFound(format!(
                    "mailbox {id} no longer exists"
                ))),
            }
        })
    }

    /// Creates the mailboxes in `names` that the agent does not have yet
    /// (`subscribed` as given). Each gets a UIDVALIDITY above any the agent
    /// ever had, so a mailbox deleted and made again never repeats one.
    pub async fn imap_ensure_mailboxes(
        &self,
        agent_id: i64,
        names: &[String],
        subscribed: bool,
    ) -> Result<()> {
        let now = Utc::now();
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let existing: Vec<String> =
                sqlx::query_scalar("SELECT name FROM imap_mailboxes WHERE agent_id = $1")
                    .bind(agent_id)
                    .fetch_all(&mut *tx)
                    .await?;
            let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(n)).collect();
            if missing.is_empty() {
                return Ok(());
            }
            let last: i64 = sqlx::query_scalar("SELECT last_uidvalidity FROM agents WHERE id = $1")
                .bind(agent_id)
                .fetch_one(&mut *tx)
                .await?;
            // Seconds since 2020 keep values small and rising across databases.
            let mut validity = last.max(now.timestamp() - 1_577_836_800);
            for name in missing {
                validity += 1;
                // A subscription kept from a deleted mailbox of this name
                // is the new mailbox's.
                let kept = sqlx::query(
                    "DELETE FROM imap_kept_subscriptions WHERE agent_id = $1 AND name = $2",
                )
                .bind(agent_id)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                sqlx::query(
                    "INSERT INTO imap_mailboxes (agent_id, name, uidvalidity, subscribed, created_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id, name) DO NOTHING",
                )
                .bind(agent_id)
                .bind(name)
                .bind(validity)
                .bind(subscribed || kept)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE agents SET last_uidvalidity = $1 WHERE id = $2")
                .bind(validity)
                .bind(agent_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes a storage mailbox with its members; stored messages no other
    /// mailbox holds go with it (a held reply among them is discarded, in
    /// its ticket's history). Its subscription stays, kept by name.
    pub async fn imap_delete_mailbox(&self, id: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.lock_held_tickets(id).await?;
        let select = format!(
            "SELECT id FROM imap_mailboxes WHERE id = $1{}",
            tx.lock(super::RowLock::Wait)
        );
        on_tx!(&mut tx, |conn| {
            // The mailbox before its members, as in every writer.
            sqlx::query(sqlx::AssertSqlSafe(select))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            // The subscription outlives the mailbox (RFC 3501 §6.3.6).
            sqlx::query(
                "INSERT INTO imap_kept_subscriptions (agent_id, name)
                 SELECT agent_id, name FROM imap_mailboxes WHERE id = $1 AND subscribed
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM imap_members WHERE mailbox_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        });
        let discarded = tx.discard_orphaned_held(id, Utc::now()).await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query(DELETE_ORPHANS)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM imap_mailboxes WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        });
        tx.commit().await?;
        for ticket in discarded {
            self.announce(Change::Ticket(ticket));
        }
        Ok(())
    }

    /// Renames a storage mailbox (and the ones under it). UIDs and
    /// UIDVALIDITY stay: the messages are the same.
    pub async fn imap_rename_mailboxes(&self, renames: &[(i64, String)]) -> Result<()> {
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (id, name) in renames {
                sqlx::query("UPDATE imap_mailboxes SET name = $1 WHERE id = $2")
                    .bind(name)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Subscribed names that have no mailbox (a subscribed mailbox was
    /// deleted), sorted.
    pub async fn imap_kept_subscriptions(&self, agent_id: i64) -> Result<Vec<String>> {
        dispatch_read!(self, |pool| {
            let names = sqlx::query_scalar(
                "SELECT name FROM imap_kept_subscriptions WHERE agent_id = $1 ORDER BY name",
            )
            .bind(agent_id)
            .fetch_all(pool)
            .await?;
            Ok(names)
        })
    }

    /// Drops a subscription kept for a name without a mailbox
    /// (UNSUBSCRIBE); false when there was none.
    pub async fn imap_forget_subscription(&self, agent_id: i64, name: &str) -> Result<bool> {
        dispatch!(self, |pool| {
            let done = sqlx::query(
                "DELETE FROM imap_kept_subscriptions WHERE agent_id = $1 AND name = $2",
            )
            .bind(agent_id)
            .bind(name)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    pub async fn imap_subscribe(&self, id: i64, subscribed: bool) -> Result<()> {
        dispatch!(self, |pool| {
            sqlx::query("UPDATE imap_mailboxes SET subscribed = $1 WHERE id = $2")
                .bind(subscribed)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Changes whenever something a view shows may have changed: a new
    /// message, a ticket event (every domain operation writes one), or the
    /// agent's \Seen set. Three index lookups.
    pub async fn imap_sync_marker(&self, agent_id: i64) -> Result<String> {
        dispatch_read!(self, |pool| {
            let row = sqlx::query(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages) AS m,
                        (SELECT COALESCE(MAX(id), 0) FROM ticket_events) AS e,
                        (SELECT seen_version FROM agents WHERE id = $1) AS s,
                        (SELECT sessions_epoch FROM agents WHERE id = $1) AS p",
            )
            .bind(agent_id)
            .fetch_one(pool)
            .await?;
            let m: i64 = row.try_get("m")?;
            let e: i64 = row.try_get("e")?;
            let s: Option<i64> = row.try_get("s")?;
            // The session epoch moves with the agent's role and queues:
            // every view is then worked out anew for what they may see.
            let p: Option<i64> = row.try_get("p")?;
            Ok(format!("{m}.{e}.{}.p{}", s.unwrap_or(0), p.unwrap_or(0)))
        })
    }

    /// A number that moves when another process (the command line)
    /// committed to the SQLite database, and only then; None on
    /// PostgreSQL, where every node announces its changes (see
    /// [`super::notify`]).
    ///
    /// SQLite's `data_version` of a connection counts commits made by
    /// every other connection. Read on the writer, the one connection
    /// through which this process writes, it leaves out this process's
    /// own changes, which were announced already: a marker of the data
    /// (the newest message and event) moved with them too, and read every
    /// second under steady mail it made every IDLE session bring its view
    /// up to date in full once a second, as if each change came from
    /// elsewhere (issue 17: 20 sessions on a 10,000-message view read
    /// 200,000 rows a second and held ingest to ~40 msg/s).
    pub async fn external_commits(&self) -> Result<Option<i64>> {
        match &self.backend {
            super::Backend::Sqlite { write, .. } => {
                let mut conn = write.acquire().await?;
                let version: i64 = sqlx::query_scalar("PRAGMA data_version")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(Some(version))
            }
            super::Backend::Postgres(_) => Ok(None),
        }
    }

    pub fn announce_external(&self) {
        self.announce(Change::External);
    }

    /// Brings a view's membership in line with the tickets (see the module
    /// doc). Skipped when `marker` equals the one the mailbox was last
    /// reconciled against, unless `force` (COPY and MOVE, right after
    /// changing the tickets). Returns whether anything changed.
    ///
    /// What the view should hold is read on the read pool (on SQLite the
    /// writer only writes); the members are read in the writing
    /// transaction, which holds the mailbox row, so that the diff is made
    /// against what it replaces.
    pub async fn imap_reconcile(
        &self,
        mailbox_id: i64,
        viewer: &Viewer,
        filter: &ViewFilter,
        closed_since: DateTime<Utc>,
        marker: &str,
        force: bool,
    ) -> Result<bool> {
        if !force && self.imap_synced_marker(mailbox_id).await?.as_deref() == Some(marker) {
            return Ok(false);
        }
        let wanted = self.view_wanted(viewer, filter, closed_since).await?;
        self.write_membership(
            mailbox_id,
            wanted,
            None,
            Some(marker),
            force,
            Shown::Messages,
        )
        .await
    }

    /// Brings a Knowledge folder in line with the articles: `wanted` are
    /// the revisions (`kb_revisions.id`) it should show with their flags,
    /// by ascending id. A new revision of an article is a new member (a
    /// new UID) and the old one leaves. Skipped when `marker` (the
    /// knowledge base's newest revision) is the one it was last brought
    /// in line with, unless `force`.
    pub async fn imap_reconcile_articles(
        &self,
        mailbox_id: i64,
        wanted: Vec<(i64, String)>,
        marker: &str,
        force: bool,
    ) -> Result<bool> {
        if !force && self.imap_synced_marker(mailbox_id).await?.as_deref() == Some(marker) {
            return Ok(false);
        }
        self.write_membership(
            mailbox_id,
            wanted,
            None,
            Some(marker),
            force,
            Shown::Revisions,
        )
        .await
    }

    /// As [`Store::imap_reconcile`] for the messages of these tickets only:
    /// what a change of a few tickets costs a session, whatever the size
    /// of the view. The mailbox's sync marker is left as it is: it says
    /// what a full reconcile saw, and a reconcile of some tickets cannot
    /// vouch for the others.
    ///
    /// Reconciles asked for while others run are done together, for all
    /// their mailboxes at once (see [`super::view_batch`]), each for every
    /// ticket any of them asked for.
    pub async fn imap_reconcile_tickets(
        &self,
        mailbox_id: i64,
        viewer: &Viewer,
        filter: &ViewFilter,
        closed_since: DateTime<Utc>,
        tickets: &[i64],
    ) -> Result<bool> {
        if tickets.is_empty() {
            return Ok(false);
        }
        self.view_batches
            .reconcile(
                self,
                super::view_batch::TicketsReconcile {
                    mailbox_id,
                    viewer: viewer.clone(),
                    filter: filter.clone(),
                    closed_since,
                    tickets: tickets.to_vec(),
                },
            )
            .await
    }

    async fn imap_synced_marker(&self, mailbox_id: i64) -> Result<Option<String>> {
        dispatch_read!(self, |pool| {
            let marker: Option<Option<String>> =
                sqlx::query_scalar("SELECT synced_marker FROM imap_mailboxes WHERE id = $1")
                    .bind(mailbox_id)
                    .fetch_optional(pool)
                    .await?;
            Ok(marker.flatten())
        })
    }

    /// The messages a view should hold, each with the flags it should
    /// show, by ascending message id.
    async fn view_wanted(
        &self,
        viewer: &Viewer,
        filter: &ViewFilter,
        closed_since: DateTime<Utc>,
    ) -> Result<Vec<(i64, String)>> {
        let [wanted_sql, tags_sql, own_sql] = view_queries(filter);
        let queue = filter.queue.clone().unwrap_or_default();
        let (wanted_rows, tag_rows, own_rows) = dispatch_read!(self, |pool| {
            let sql = wanted_sql;
            let query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(viewer.agent_id)
                .bind(viewer.sees_every_queue)
                .bind(&queue)
                .bind(closed_since);
            let mut wanted = Vec::new();
            for row in query.fetch_all(pool).await? {
                let priority: String = row.try_get("priority")?;
                wanted.push((
                    row.try_get::<i64, _>("id")?,
                    row.try_get::<i64, _>("ticket")?,
                    priority,
                    row.try_get::<bool, _>("seen")?,
                    row.try_get::<bool, _>("answered")?,
                ));
            }
            let sql = tags_sql;
            let query = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql))
                .bind(viewer.agent_id)
                .bind(viewer.sees_every_queue)
                .bind(&queue)
                .bind(closed_since);
            let tags = query.fetch_all(pool).await?;
            // The agent's own keywords on these messages.
            let sql = own_sql;
            let query = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql))
                .bind(viewer.agent_id)
                .bind(viewer.sees_every_queue)
                .bind(&queue)
                .bind(closed_since);
            (wanted, tags, query.fetch_all(pool).await?)
        });
        let tags = grouped(tag_rows);
        let own = grouped(own_rows);
        wanted_with_flags(viewer, wanted_rows, &tags, &own)
    }

    /// What changed in a mailbox after `modseq`: the members added or
    /// reflagged since (by ascending UID) and the UIDs that left. A session
    /// that knows the mailbox at `modseq` refreshes with this, at the cost
    /// of the changes, not of the mailbox. Read the mailbox row before
    /// calling, so that nothing up to its MODSEQ is missed.
    pub async fn imap_changes_since(
        &self,
        mailbox_id: i64,
        modseq: u64,
    ) -> Result<(Vec<Member>, Vec<u32>)> {
        let since = i64::try_from(modseq).unwrap_or(i64::MAX);
        // One statement for both (members' flags are never NULL): each
        // statement is a round trip to the driver's worker thread, and
        // every session in IDLE runs this on every change it hears.
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT uid, message_id, stored_id, revision_id, flags, modseq FROM imap_members
                 WHERE mailbox_id = $1 AND modseq > $2
                 UNION ALL
                 SELECT uid, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
                        CAST(NULL AS TEXT), modseq FROM imap_expunged
                 WHERE mailbox_id = $1 AND modseq > $2
                 ORDER BY uid",
            )
            .bind(mailbox_id)
            .bind(since)
            .fetch_all(pool)
            .await?;
            let mut members = Vec::with_capacity(rows.len());
            let mut gone = Vec::new();
            for row in &rows {
                let flags: Option<String> = row.try_get("flags")?;
                if flags.is_some() {
                    members.push(member_from_row!(row));
                } else {
                    gone.push(to_u32(row.try_get("uid")?)?);
                }
            }
            Ok((members, gone))
        })
    }

    /// The UIDs that left a mailbox after `modseq` (QRESYNC's VANISHED
    /// (EARLIER)), or None when the record of them no longer reaches back
    /// that far (tombstones are trimmed after a day): then the caller must
    /// assume any UID it cannot see vanished.
    pub async fn imap_vanished_since(
        &self,
        mailbox_id: i64,
        modseq: u64,
    ) -> Result<Option<Vec<u32>>> {
        let since = i64::try_from(modseq).unwrap_or(i64::MAX);
        dispatch_read!(self, |pool| {
            let known_after: Option<i64> =
                sqlx::query_scalar("SELECT expunged_known_after FROM imap_mailboxes WHERE id = $1")
                    .bind(mailbox_id)
                    .fetch_optional(pool)
                    .await?;
            let Some(known_after) = known_after else {
                return Err(StoreError::NotFound(format!(
                    "mailbox {mailbox_id} no longer exists"
                )));
            };
            if since < known_after {
                return Ok(None);
            }
            let gone: Vec<i64> = sqlx::query_scalar(
                "SELECT uid FROM imap_expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
            )
            .bind(mailbox_id)
            .bind(since)
            .fetch_all(pool)
            .await?;
            let gone = gone.into_iter().map(to_u32).collect::<Result<Vec<u32>>>()?;
            Ok(Some(gone))
        })
    }

    /// Every member of a mailbox, by ascending UID.
    pub async fn imap_members(&self, mailbox_id: i64) -> Result<Vec<Member>> {
        dispatch_read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT uid, message_id, stored_id, revision_id, flags, modseq FROM imap_members
                 WHERE mailbox_id = $1 ORDER BY uid",
            )
            .bind(mailbox_id)
            .fetch_all(pool)
            .await?;
            let mut members = Vec::with_capacity(rows.len());
            for row in &rows {
                members.push(member_from_row!(row));
            }
            Ok(members)
        })
    }

    /// The members of `mailbox`, at least as new as its row just read:
    /// the snapshot kept from an earlier SELECT brought forward by the
    /// changes since, or all of them read once (see
    /// [`super::member_snapshots`]). SELECT of a large quiet view then
    /// costs the changes since it was last selected, not the view.
    pub async fn imap_members_now(&self, mailbox: &Mailbox) -> Result<Vec<Member>> {
        let kept = self
            .member_snapshots
            .get(mailbox.id)
            .filter(|snapshot| snapshot.usable_for(mailbox));
        let members = match kept {
            // Nothing changed since: the snapshot as it is.
            Some(snapshot) if snapshot.modseq == mailbox.highestmodseq => {
                return Ok(snapshot.members.as_ref().clone());
            }
            Some(snapshot) => {
                let (changed, gone) = self.imap_changes_since(mailbox.id, snapshot.modseq).await?;
                super::member_snapshots::apply(&snapshot.members, changed, &gone)
            }
            None => self.imap_members(mailbox.id).await?,
        };
        self.member_snapshots.put(
            mailbox.id,
            super::member_snapshots::Snapshot::new(mailbox, members.clone()),
        );
        Ok(members)
    }

    /// Makes the messages up to `uid` no longer recent for later sessions;
    /// returns the UID above which they are recent for this one.
    ///
    /// The sessions of this process claim in turn, and the claim is written
    /// only by the first for each new UID; the others are answered from
    /// memory. Every session on a mailbox that hears of a new message read
    /// the mailbox's old `recent_uid` and so tried to claim (issue 17: 100
    /// IDLE sessions on one view made up to 100 write transactions on
    /// SQLite's one writer per message, queued with the filing of mail).
    /// What is kept is never ahead of the database: it is set from what
    /// the write returned, and another process's claim is read by the
    /// write of the next new UID.
    pub async fn imap_claim_recent(&self, mailbox_id: i64, uid: u32) -> Result<u32> {
        let mut claimed = self.recent_claims.lock(mailbox_id).await;
        if *claimed >= uid {
            return Ok(*claimed);
        }
        let previous = self.imap_claim_recent_in_store(mailbox_id, uid).await?;
        *claimed = previous.max(uid);
        Ok(previous)
    }

    async fn imap_claim_recent_in_store(&self, mailbox_id: i64, uid: u32) -> Result<u32> {
        // On SQLite in the writer's next transaction, beside the filing of
        // mail: every mailbox of a team claims each new message once.
        if let Some(claimed) = self
            .on_writer(|reply| Work::ClaimRecent {
                mailbox_id,
                uid,
                reply,
            })
            .await
        {
            return claimed;
        }
        let mut tx = self.begin().await?;
        let previous = tx.claim_recent(&[(mailbox_id, uid)]).await?;
        tx.commit().await?;
        previous
            .first()
            .copied()
            .ok_or_else(|| StoreError::Unavailable("a \\Recent claim went unanswered".into()))
    }

    /// Message counts for STATUS.
    pub async fn imap_counts(&self, mailbox_id: i64) -> Result<MailboxCounts> {
        dispatch_read!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS total,
                        COALESCE(SUM(CASE WHEN flags LIKE '%\\Seen%' THEN 0 ELSE 1 END), 0) AS unseen,
                        COALESCE(SUM(CASE WHEN m.uid > b.recent_uid THEN 1 ELSE 0 END), 0) AS recent,
                        COALESCE(SUM(CASE WHEN flags LIKE '%\\Deleted%' THEN 1 ELSE 0 END), 0) AS deleted
                 FROM imap_members m JOIN imap_mailboxes b ON b.id = m.mailbox_id WHERE m.mailbox_id = $1",
            )
            .bind(mailbox_id)
            .fetch_one(pool)
            .await?;
            let count = |column: &str| -> Result<u32> { to_u32(row.try_get::<i64, _>(column)?) };
            Ok(MailboxCounts {
                messages: count("total")?,
                unseen: count("unseen")?,
                recent: count("recent")?,
                deleted: count("deleted")?,
            })
        })
    }

    /// The size of a mailbox in octets (STATUS SIZE, RFC 8438): the sum of
    /// its messages' sizes, as FETCH RFC822.SIZE reports them.
    pub async fn imap_size(&self, mailbox_id: i64) -> Result<u64> {
        dispatch_read!(self, |pool| {
            let size: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(COALESCE(msg.size, own.size)), 0) AS BIGINT)
                 FROM imap_members m
                 LEFT JOIN messages msg ON msg.id = m.message_id
                 LEFT JOIN agent_messages own ON own.id = m.stored_id
                 WHERE m.mailbox_id = $1",
            )
            .bind(mailbox_id)
            .fetch_one(pool)
            .await?;
            Ok(u64::try_from(size).unwrap_or_default())
        })
    }

    /// The bytes, sizes and dates of messages, by reference; with `prefix`,
    /// only each header (or, where its length was not recorded, up to
    /// `prefix` leading bytes): a header sync need not read bodies and
    /// attachments.
    pub async fn imap_contents(
        &self,
        refs: &[MessageRef],
        prefix: Option<usize>,
    ) -> Result<HashMap<MessageRef, Content>> {
        // The header as stored, or a prefix for mail from before
        // `header_len` was recorded.
        let raw = match prefix {
            Some(len) => {
                format!("substr(raw, 1, CAST(COALESCE(header_len, {len}) AS INTEGER)) AS raw")
            }
            None => "raw".to_string(),
        };
        let mut contents = HashMap::with_capacity(refs.len());
        // Headers of messages that never change come from memory when
        // they were read before (see [`super::header_cache`]).
        let to_read = match prefix {
            Some(len) => self.header_cache.take_known(refs, len, &mut contents),
            None => refs.to_vec(),
        };
        let refs = to_read.as_slice();
        let tickets: Vec<i64> = refs
            .iter()
            .filter_map(|r| match r {
                MessageRef::Ticket(id) => Some(*id),
                _ => None,
            })
            .collect();
        let stored: Vec<i64> = refs
            .iter()
            .filter_map(|r| match r {
                MessageRef::Stored(id) => Some(*id),
                _ => None,
            })
            .collect();
        let revisions: Vec<i64> = refs
            .iter()
            .filter_map(|r| match r {
                MessageRef::Article(id) => Some(*id),
                _ => None,
            })
            .collect();
        type Reference = fn(i64) -> MessageRef;
        let sources = [
            (
                tickets.as_slice(),
                format!("SELECT id, received_at AS internal_date, size, {raw} FROM messages"),
                MessageRef::Ticket as Reference,
            ),
            (
                stored.as_slice(),
                format!("SELECT id, internal_date, size, {raw} FROM agent_messages"),
                MessageRef::Stored,
            ),
            (
                revisions.as_slice(),
                format!(
                    "SELECT id, internal_date, size, {raw} FROM \
                     (SELECT revision AS id, internal_date, size, header_len, raw FROM kb_revision_mail) r"
                ),
                MessageRef::Article,
            ),
        ];
        dispatch_read!(self, |pool| {
            for (ids, select, reference) in sources {
                for chunk in ids.chunks(500) {
                    let sql = format!("{select} WHERE id IN ({})", placeholders(1, chunk.len()));
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    for row in query.fetch_all(pool).await? {
                        let size: i64 = row.try_get("size")?;
                        contents.insert(
                            reference(row.try_get("id")?),
                            Content {
                                raw: row.try_get("raw")?,
                                size: usize::try_from(size).unwrap_or_default(),
                                internal_date: row.try_get("internal_date")?,
                            },
                        );
                    }
                }
            }
        });
        if let Some(len) = prefix {
            let read = refs.iter().filter_map(|r| contents.get_key_value(r));
            self.header_cache.keep(read, len);
        }
        Ok(contents)
    }

    /// The ticket of each of these messages.
    pub async fn message_tickets(&self, ids: &[i64]) -> Result<HashMap<i64, i64>> {
        let mut tickets = HashMap::new();
        dispatch_read!(self, |pool| {
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT id, ticket FROM messages WHERE ticket IS NOT NULL AND id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut query = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(*id);
                }
                tickets.extend(query.fetch_all(pool).await?);
            }
        });
        Ok(tickets)
    }

    /// The stored reply, forward or note with this Message-ID that `author` wrote
    /// and whose submitted bytes had this digest, for the Sent copy an
    /// agent's client appends after submitting through postdesk: it links
    /// to their own mail only, never to a colleague's (which would show its
    /// text to whoever knows its id), and only to the mail it copies.
    pub async fn reply_by_message_id(
        &self,
        message_id: &str,
        author: i64,
        digest: &str,
    ) -> Result<Option<i64>> {
        dispatch_read!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT id FROM messages WHERE message_id = $1 AND kind IN ('reply', 'forward', 'note')
                 AND author_agent_id = $2 AND submitted_digest = $3 ORDER BY id LIMIT 1",
            )
            .bind(message_id)
            .bind(author)
            .bind(digest)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Whether a Message-ID is taken by a message other than this agent's
    /// own earlier submission of it (`sender`: a client's retry).
    pub async fn message_id_taken(
        &self,
        message_id: &str,
        author: i64,
        sender: &str,
    ) -> Result<bool> {
        dispatch_read!(self, |pool| {
            let other: Option<i64> = sqlx::query_scalar(
                // `IS NOT NULL`: with a NULL author (a customer's mail) the
                // test must be false, not NULL, or NOT would drop the row.
                "SELECT id FROM messages WHERE message_id = $1
                 AND NOT (sender = $2 AND author_agent_id IS NOT NULL AND author_agent_id = $3)
                 LIMIT 1",
            )
            .bind(message_id)
            .bind(sender)
            .bind(author)
            .fetch_optional(pool)
            .await?;
            Ok(other.is_some())
        })
    }

    /// Adds messages to a storage mailbox: existing messages are linked,
    /// new ones are stored first. Returns the new UIDs in order.
    pub async fn imap_add_to_storage(
        &self,
        mailbox_id: i64,
        agent_id: i64,
        items: Vec<(StorageItem, String)>,
    ) -> Result<Vec<u32>> {
        let now = Utc::now();
        // Locked until the commit: two APPENDs must not take one UID, and
        // the mailbox comes before its members, as in every writer.
        let select = format!(
            "SELECT uidnext, highestmodseq FROM imap_mailboxes WHERE id = $1{}",
            self.backend.lock(super::RowLock::Wait)
        );
        let uids = dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(select))
                .bind(mailbox_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!(
                    "mailbox {mailbox_id} no longer exists"
                )));
            };
            let mut uidnext: i64 = row.try_get("uidnext")?;
            let modseq: i64 = row.try_get::<i64, _>("highestmodseq")? + 1;
            let mut uids = Vec::with_capacity(items.len());
            for (item, flags) in items {
                let (message, stored, revision) = match item {
                    StorageItem::Existing(MessageRef::Ticket(id)) => (Some(id), None, None),
                    StorageItem::Existing(MessageRef::Stored(id)) => (None, Some(id), None),
                    // An article copied out of Knowledge into a folder of one's own.
                    StorageItem::Existing(MessageRef::Article(id)) => (None, None, Some(id)),
                    StorageItem::New { raw, internal_date } => {
                        let (size, header_len) = (raw.len() as i64, super::header_len(&raw));
                        // Bound by value: a large APPEND is not copied again.
                        let id: i64 = sqlx::query_scalar(
                            "INSERT INTO agent_messages (agent_id, internal_date, size, raw, header_len)
                             VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        )
                        .bind(agent_id)
                        .bind(internal_date.unwrap_or(now))
                        .bind(size)
                        .bind(raw)
                        .bind(header_len)
                        .fetch_one(&mut *tx)
                        .await?;
                        (None, Some(id), None)
                    }
                };
                sqlx::query(
                    "INSERT INTO imap_members (mailbox_id, uid, message_id, stored_id, revision_id, flags, modseq)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(mailbox_id)
                .bind(uidnext)
                .bind(message)
                .bind(stored)
                .bind(revision)
                .bind(flags)
                .bind(modseq)
                .execute(&mut *tx)
                .await?;
                uids.push(to_u32(uidnext)?);
                uidnext += 1;
            }
            sqlx::query("UPDATE imap_mailboxes SET uidnext = $1, highestmodseq = $2 WHERE id = $3")
                .bind(uidnext)
                .bind(modseq)
                .bind(mailbox_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            uids
        });
        Ok(uids)
    }

    /// Removes members of a storage mailbox; stored messages that no
    /// mailbox holds any more are deleted (a held reply among them is
    /// discarded, in its ticket's history).
    pub async fn imap_expunge(&self, mailbox_id: i64, uids: &[u32]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.lock_held_tickets(mailbox_id).await?;
        on_tx!(&mut tx, |conn| {
            // The mailbox row first, as every writer of its members takes
            // it (a reconcile locks it before deleting members): one lock
            // order, no deadlock between an EXPUNGE and a session's sync.
            let modseq: i64 = sqlx::query_scalar(
                "UPDATE imap_mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1
                 RETURNING highestmodseq",
            )
            .bind(mailbox_id)
            .fetch_one(&mut *conn)
            .await?;
            let now = Utc::now();
            for chunk in uids.chunks(500) {
                let sql = delete_members_sql(chunk.len());
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(mailbox_id);
                for uid in chunk {
                    query = query.bind(i64::from(*uid));
                }
                query.execute(&mut *conn).await?;
                let sql = remember_expunged_sql(chunk.len());
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for uid in chunk {
                    query = query
                        .bind(mailbox_id)
                        .bind(i64::from(*uid))
                        .bind(modseq)
                        .bind(now);
                }
                query.execute(&mut *conn).await?;
            }
        });
        let discarded = tx.discard_orphaned_held(mailbox_id, Utc::now()).await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query(DELETE_ORPHANS)
                .bind(mailbox_id)
                .execute(&mut *conn)
                .await?;
        });
        tx.commit().await?;
        for ticket in discarded {
            self.announce(Change::Ticket(ticket));
        }
        Ok(())
    }

    /// STORE in a storage mailbox: reads each member's flags and applies
    /// `op` in one transaction, so two sessions changing different flags of
    /// one message do not undo each other. Returns the new MODSEQ.
    pub async fn imap_update_flags(
        &self,
        mailbox_id: i64,
        uids: &[u32],
        op: &FlagOp,
    ) -> Result<u64> {
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let modseq: i64 = sqlx::query_scalar(
                "UPDATE imap_mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq",
            )
            .bind(mailbox_id)
            .fetch_one(&mut *tx)
            .await?;
            for uid in uids {
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT flags FROM imap_members WHERE mailbox_id = $1 AND uid = $2",
                )
                .bind(mailbox_id)
                .bind(i64::from(*uid))
                .fetch_optional(&mut *tx)
                .await?;
                let Some(current) = current else { continue };
                let next = op.apply(&current);
                if next != current {
                    sqlx::query("UPDATE imap_members SET flags = $1, modseq = $2 WHERE mailbox_id = $3 AND uid = $4")
                        .bind(&next)
                        .bind(modseq)
                        .bind(mailbox_id)
                        .bind(i64::from(*uid))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            to_u64(modseq)
        })
    }

    /// Adds and removes one agent's own keywords on ticket messages
    /// (message id, keyword): a client's bookkeeping, shown in that
    /// agent's views only.
    pub async fn imap_set_own_keywords(
        &self,
        agent_id: i64,
        add: &[(i64, String)],
        remove: &[(i64, String)],
    ) -> Result<()> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (message, keyword) in add {
                sqlx::query(
                    "INSERT INTO agent_keywords (agent_id, message_id, keyword) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(agent_id)
                .bind(*message)
                .bind(keyword)
                .execute(&mut *tx)
                .await?;
            }
            for (message, keyword) in remove {
                sqlx::query(
                    "DELETE FROM agent_keywords WHERE agent_id = $1 AND message_id = $2
                     AND LOWER(keyword) = LOWER($3)",
                )
                .bind(agent_id)
                .bind(*message)
                .bind(keyword)
                .execute(&mut *tx)
                .await?;
            }
            // The views show them: the agent's sync marker moves.
            sqlx::query("UPDATE agents SET seen_version = seen_version + 1 WHERE id = $1")
                .bind(agent_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.announce(Change::Seen(agent_id));
        Ok(())
    }

    /// What decides whether a Junk mark on these messages speaks for their
    /// ticket ([`crate::domain::keywords::junk_marks_spam`]), and whether
    /// their ticket is spam now; by message id.
    pub async fn junk_facts(&self, messages: &[i64]) -> Result<HashMap<i64, (JunkFacts, bool)>> {
        if messages.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT m.id, m.kind,
                NOT EXISTS (SELECT 1 FROM messages e WHERE e.ticket = m.ticket AND e.id < m.id
                    AND e.kind <> 'auto_reply') AS opened,
                EXISTS (SELECT 1 FROM messages a WHERE a.ticket = m.ticket
                    AND a.kind IN ('reply', 'note')) AS agents_wrote,
                (EXISTS (SELECT 1 FROM tickets o WHERE o.customer_address = t.customer_address
                    AND o.number < t.number AND (o.disposition IS NULL OR o.disposition <> 'spam'))
                 OR EXISTS (SELECT 1 FROM agents g WHERE LOWER(g.email) = LOWER(m.sender))) AS known,
                (t.disposition IS NOT NULL AND t.disposition = 'spam') AS spam
             FROM messages m JOIN tickets t ON t.number = m.ticket
             WHERE m.id IN ({})",
            placeholders(1, messages.len())
        );
        Ok(dispatch_read!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in messages {
                query = query.bind(*id);
            }
            let mut facts = HashMap::new();
            for row in query.fetch_all(pool).await? {
                let kind: String = row.try_get("kind")?;
                facts.insert(
                    row.try_get::<i64, _>("id")?,
                    (
                        JunkFacts {
                            kind: parse_column(&kind, "kind")?,
                            opened_ticket: row.try_get("opened")?,
                            agents_wrote: row.try_get("agents_wrote")?,
                            sender_known: row.try_get("known")?,
                        },
                        row.try_get::<bool, _>("spam")?,
                    ),
                );
            }
            facts
        }))
    }

    /// The ticket tags in use in the queues this viewer sees (the most
    /// used first, at most `limit`): announced in FLAGS so that clients
    /// offer them.
    pub async fn imap_known_tags(&self, viewer: &Viewer, limit: i64) -> Result<Vec<String>> {
        Ok(dispatch_read!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT tt.tag FROM ticket_tags tt JOIN tickets t ON t.number = tt.ticket
                 WHERE $2 OR t.queue_id IN (SELECT queue_id FROM agent_queues WHERE agent_id = $1)
                 GROUP BY tt.tag ORDER BY COUNT(*) DESC, tt.tag LIMIT $3",
            )
            .bind(viewer.agent_id)
            .bind(viewer.sees_every_queue)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Marks ticket messages seen or unseen for one agent.
    pub async fn imap_set_seen(&self, agent_id: i64, messages: &[i64], seen: bool) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            for message in messages {
                let sql = if seen {
                    "INSERT INTO agent_seen (agent_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                } else {
                    "DELETE FROM agent_seen WHERE agent_id = $1 AND message_id = $2"
                };
                sqlx::query(sql)
                    .bind(agent_id)
                    .bind(*message)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE agents SET seen_version = seen_version + 1 WHERE id = $1")
                .bind(agent_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.announce(Change::Seen(agent_id));
        Ok(())
    }
}

/// What goes into a storage mailbox.
#[derive(Debug, Clone)]
pub enum StorageItem {
    Existing(MessageRef),
    New {
        raw: Vec<u8>,
        internal_date: Option<DateTime<Utc>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_always_scoped_to_visible_queues() {
        for folder in crate::domain::views::Folder::standard(&["support".into()]) {
            if let Some(filter) = folder.filter() {
                let sql = view_condition(&filter, &ViewTerms::ONE_VIEWER);
                assert!(sql.contains("agent_queues"), "{folder:?}: {sql}");
                assert!(sql.contains("disposition"), "{folder:?}: {sql}");
            }
        }
    }
}
