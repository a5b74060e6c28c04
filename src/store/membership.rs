//! A mailbox's members written: the difference between what a view
//! should hold and what the mailbox holds, under a new MODSEQ, for several
//! mailboxes at once (see [`Tx::write_memberships`]), and the `\Recent`
//! claims of sessions.

use super::events::{placeholders, rows};
use super::filing::Work;
use super::imap::{EXPUNGED_KEPT_SECONDS, to_u32};
use super::{Result, Store, StoreError, Tx, on_tx};
use crate::domain::views::{MembershipChange, membership_change};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// Deletes `count` members of a mailbox (`$1`) by UID (`$2`…).
pub(super) fn delete_members_sql(count: usize) -> String {
    format!(
        "DELETE FROM imap_members WHERE mailbox_id = $1 AND uid IN ({})",
        placeholders(2, count)
    )
}

/// Remembers `count` UIDs that left a mailbox, each bound as (mailbox,
/// UID, MODSEQ, time), for sessions that refresh by MODSEQ; a UID is never
/// used twice, so remembering it again is a no-op.
pub(super) fn remember_expunged_sql(count: usize) -> String {
    format!(
        "INSERT INTO imap_expunged (mailbox_id, uid, modseq, expunged_at) VALUES {}
         ON CONFLICT DO NOTHING",
        rows(count, 4)
    )
}

/// What a view's members show: tickets' messages (`message_id`) or
/// articles' revisions (`revision_id`, the Knowledge folders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shown {
    Messages,
    Revisions,
}

impl Shown {
    fn column(self) -> &'static str {
        match self {
            Shown::Messages => "message_id",
            Shown::Revisions => "revision_id",
        }
    }
}

/// The members of `mailboxes` mailboxes (`$1`…), each row (mailbox, UID,
/// message or revision, flags), or only those showing messages of
/// `tickets` tickets (bound after the mailboxes; one placeholder bound to
/// 0 when there are none): see [`bind_members_query`].
pub(super) fn members_sql(mailboxes: usize, tickets: Option<usize>, shown: Shown) -> String {
    let within = placeholders(1, mailboxes);
    match tickets {
        None => format!(
            "SELECT mailbox_id, uid, {}, flags FROM imap_members WHERE mailbox_id IN ({within})",
            shown.column()
        ),
        // Found through the tickets' messages (imap_members_message),
        // not by reading every member of the mailboxes: SQLite took the
        // mailbox's index, and each reconcile of a few tickets read the
        // whole view (the unary + keeps it off that index).
        Some(tickets) => format!(
            "SELECT mailbox_id, uid, message_id, flags FROM imap_members
             WHERE +mailbox_id IN ({within})
             AND message_id IN (SELECT id FROM messages WHERE ticket IN ({}))",
            placeholders(1 + mailboxes, tickets.max(1))
        ),
    }
}

/// A row of [`members_sql`]: mailbox, UID, message or revision (None: a
/// message the agent stored), flags.
pub(super) type MemberRow = (i64, i64, Option<i64>, String);

/// Members as a mailbox write compares them with what the mailbox should
/// hold: (UID, message, flags) by mailbox.
pub(super) type MembersByMailbox = HashMap<i64, Vec<(i64, Option<i64>, String)>>;

/// Adds rows of [`members_sql`] to their mailboxes.
pub(super) fn add_by_mailbox(members: &mut MembersByMailbox, rows: Vec<MemberRow>) {
    for (mailbox, uid, message, flags) in rows {
        members
            .entry(mailbox)
            .or_default()
            .push((uid, message, flags));
    }
}

/// Binds what [`members_sql`] asks for.
pub(super) fn bind_members_query<'q, DB, O>(
    mut query: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>,
    mailboxes: &[i64],
    tickets: Option<&[i64]>,
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for mailbox in mailboxes {
        query = query.bind(*mailbox);
    }
    if let Some(tickets) = tickets {
        if tickets.is_empty() {
            query = query.bind(0_i64);
        }
        for ticket in tickets {
            query = query.bind(*ticket);
        }
    }
    query
}

/// A mailbox write as planned from the mailbox row: its new sync marker,
/// the UIDNEXT and MODSEQ it starts from, and what changes.
struct MailboxPlan {
    mailbox_id: i64,
    marker: Option<String>,
    uidnext: i64,
    /// The MODSEQ of this write's changes.
    modseq: i64,
    change: Option<MembershipChange>,
}

impl MailboxPlan {
    fn changed(&self) -> bool {
        self.change
            .as_ref()
            .is_some_and(|change| !change.is_empty())
    }
}

/// A mailbox to bring in line with its view: what
/// [`Tx::write_memberships`] writes.
pub(crate) struct MembershipWrite {
    mailbox_id: i64,
    /// What it should hold, by ascending id, with the flags to show.
    wanted: Vec<(i64, String)>,
    /// Only the members showing messages of these tickets, when given.
    tickets: Option<Vec<i64>>,
    /// The sync marker to record (a full reconcile's).
    marker: Option<String>,
    /// Write even when the mailbox was last brought in line at `marker`.
    force: bool,
    shown: Shown,
}

impl MembershipWrite {
    /// A write of the members showing messages of `tickets`, as a
    /// reconcile of those tickets makes.
    pub(crate) fn of_tickets(
        mailbox_id: i64,
        wanted: Vec<(i64, String)>,
        tickets: Vec<i64>,
    ) -> MembershipWrite {
        MembershipWrite {
            mailbox_id,
            wanted,
            tickets: Some(tickets),
            marker: None,
            force: true,
            shown: Shown::Messages,
        }
    }

    /// A full write of a mailbox's members, as a full reconcile makes.
    #[cfg(test)]
    pub(crate) fn everything(mailbox_id: i64, wanted: Vec<(i64, String)>) -> MembershipWrite {
        MembershipWrite {
            mailbox_id,
            wanted,
            tickets: None,
            marker: None,
            force: true,
            shown: Shown::Messages,
        }
    }
}

impl Tx {
    /// Records, for each (mailbox, UID), that a session of the mailbox
    /// holds `\Recent` for the UIDs up to that one; answers, for each, the
    /// UID up to which another session already did (claims of one mailbox
    /// count in turn). One read and one write for all: each new message is
    /// claimed in every mailbox of a team that shows it.
    pub(super) async fn claim_recent(&mut self, claims: &[(i64, u32)]) -> Result<Vec<u32>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut mailboxes: Vec<i64> = claims.iter().map(|(mailbox, _)| *mailbox).collect();
        mailboxes.sort_unstable();
        mailboxes.dedup();
        let lock = self.lock(super::RowLock::Wait);
        let sql = format!(
            "SELECT id, recent_uid FROM imap_mailboxes WHERE id IN ({}) ORDER BY id{lock}",
            placeholders(1, mailboxes.len())
        );
        let held: Vec<(i64, i64)> = on_tx!(self, |tx| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for mailbox in &mailboxes {
                query = query.bind(*mailbox);
            }
            query.fetch_all(&mut *tx).await?
        });
        // A mailbox deleted meanwhile has no claims to keep: 0, as if none.
        let mut recent: HashMap<i64, i64> = held.into_iter().collect();
        let mut previous = Vec::with_capacity(claims.len());
        let mut raised: Vec<(i64, i64)> = Vec::new();
        for (mailbox, uid) in claims {
            let Some(before) = recent.get_mut(mailbox) else {
                previous.push(0);
                continue;
            };
            previous.push(to_u32(*before)?);
            let uid = i64::from(*uid);
            if uid > *before {
                *before = uid;
                raised.retain(|(raised, _)| raised != mailbox);
                raised.push((*mailbox, uid));
            }
        }
        if !raised.is_empty() {
            let sql = format!(
                "WITH claimed (id, uid) AS (VALUES {})
                 UPDATE imap_mailboxes SET recent_uid = claimed.uid
                 FROM claimed WHERE imap_mailboxes.id = claimed.id",
                rows(raised.len(), 2)
            );
            on_tx!(self, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (mailbox, uid) in &raised {
                    query = query.bind(*mailbox).bind(*uid);
                }
                query.execute(&mut *tx).await?;
            });
        }
        Ok(previous)
    }

    /// Makes each mailbox hold its `wanted` (for the messages of its
    /// `tickets` only, when given): holds the mailbox rows, reads the
    /// members they replace, writes the differences under a new MODSEQ per
    /// mailbox and records the UIDs that left (for sessions that refresh by
    /// MODSEQ). Returns, per write, whether its mailbox changed.
    ///
    /// Holding the rows, reading the members, inserting the new ones and
    /// recording the mailboxes are each one statement for all the
    /// mailboxes, not one per mailbox: a team of 20 agents has 20 mailboxes
    /// showing a queue, and a new message in it was 80 statements on
    /// SQLite's one writer, each handed to the driver's thread and back
    /// while the filing of mail waited (issue 17). Members that leave or
    /// change their flags (rarer than new mail) are written per mailbox. A mailbox written twice is written in turn, the
    /// second write diffed against the first.
    pub(super) async fn write_memberships(
        &mut self,
        writes: &[&MembershipWrite],
    ) -> Result<Vec<bool>> {
        let mut changed = vec![false; writes.len()];
        let mut pending: Vec<usize> = (0..writes.len()).collect();
        while !pending.is_empty() {
            let mut mailboxes = HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) = pending
                .into_iter()
                .partition(|&i| mailboxes.insert(writes[i].mailbox_id));
            let distinct: Vec<&MembershipWrite> = round.iter().map(|&i| writes[i]).collect();
            let done = self.write_distinct_mailboxes(&distinct).await?;
            for (i, mailbox_changed) in round.into_iter().zip(done) {
                changed[i] = mailbox_changed;
            }
            pending = later;
        }
        Ok(changed)
    }

    /// [`Tx::write_memberships`] for writes to different mailboxes.
    async fn write_distinct_mailboxes(&mut self, writes: &[&MembershipWrite]) -> Result<Vec<bool>> {
        let now = Utc::now();
        let mailboxes = self.hold_mailboxes(writes).await?;
        let mut plans: Vec<Option<MailboxPlan>> = Vec::with_capacity(writes.len());
        for write in writes {
            let Some((synced, uidnext, modseq)) = mailboxes.get(&write.mailbox_id) else {
                return Err(StoreError::NotFound(format!(
                    "mailbox {} no longer exists",
                    write.mailbox_id
                )));
            };
            if !write.force && synced.is_some() && *synced == write.marker {
                plans.push(None);
                continue;
            }
            plans.push(Some(MailboxPlan {
                mailbox_id: write.mailbox_id,
                marker: write.marker.clone().or_else(|| synced.clone()),
                uidnext: *uidnext,
                modseq: modseq + 1,
                change: None,
            }));
        }

        // What each mailbox holds now, one read per kind of write (the
        // same tickets, the same kind of member).
        let mut current = self.current_members(writes, &plans).await?;
        for (write, plan) in writes.iter().zip(plans.iter_mut()) {
            if let Some(plan) = plan {
                let members = current.remove(&write.mailbox_id).unwrap_or_default();
                plan.change = Some(membership_change(
                    write.wanted.clone(),
                    members,
                    plan.uidnext,
                ));
            }
        }
        let planned = || plans.iter().flatten();

        for plan in planned() {
            let Some(change) = &plan.change else { continue };
            self.forget_members(plan.mailbox_id, &change.gone, plan.modseq, now)
                .await?;
        }
        for shown in [Shown::Messages, Shown::Revisions] {
            let added: Vec<(i64, i64, i64, &str, i64)> = writes
                .iter()
                .zip(plans.iter())
                .filter(|(write, _)| write.shown == shown)
                .filter_map(|(_, plan)| plan.as_ref())
                .flat_map(|plan| {
                    plan.change.iter().flat_map(move |change| {
                        change.added.iter().map(move |(uid, message, flags)| {
                            (plan.mailbox_id, *uid, *message, flags.as_str(), plan.modseq)
                        })
                    })
                })
                .collect();
            self.insert_members(shown, &added).await?;
        }
        for plan in planned() {
            let Some(change) = &plan.change else { continue };
            for (uid, flags) in &change.reflagged {
                on_tx!(self, |tx| {
                    sqlx::query("UPDATE imap_members SET flags = $1, modseq = $2 WHERE mailbox_id = $3 AND uid = $4")
                        .bind(flags)
                        .bind(plan.modseq)
                        .bind(plan.mailbox_id)
                        .bind(*uid)
                        .execute(&mut *tx)
                        .await?;
                });
            }
        }
        for (write, plan) in writes.iter().zip(plans.iter()) {
            if plan.is_some() && write.tickets.is_none() {
                self.forget_old_tombstones(write.mailbox_id, now).await?;
            }
        }
        self.record_mailboxes(planned(), now).await?;
        Ok(plans
            .iter()
            .map(|plan| plan.as_ref().is_some_and(MailboxPlan::changed))
            .collect())
    }

    /// Reads and holds the rows of the mailboxes written (in id order, so
    /// that two transactions holding some of the same never wait on each
    /// other): sync marker, UIDNEXT and HIGHESTMODSEQ by id.
    async fn hold_mailboxes(
        &mut self,
        writes: &[&MembershipWrite],
    ) -> Result<HashMap<i64, (Option<String>, i64, i64)>> {
        let lock = self.lock(super::RowLock::Wait);
        let sql = format!(
            "SELECT id, synced_marker, uidnext, highestmodseq FROM imap_mailboxes
             WHERE id IN ({}) ORDER BY id{lock}",
            placeholders(1, writes.len())
        );
        let rows: Vec<(i64, Option<String>, i64, i64)> = on_tx!(self, |tx| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for write in writes {
                query = query.bind(write.mailbox_id);
            }
            query.fetch_all(&mut *tx).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, synced, uidnext, modseq)| (id, (synced, uidnext, modseq)))
            .collect())
    }

    /// The members that the planned writes replace, by mailbox: one read
    /// for all the mailboxes written with the same tickets and kind.
    async fn current_members(
        &mut self,
        writes: &[&MembershipWrite],
        plans: &[Option<MailboxPlan>],
    ) -> Result<MembersByMailbox> {
        // The mailboxes read together: with these tickets, of this kind.
        struct Read<'a> {
            tickets: Option<&'a [i64]>,
            shown: Shown,
            mailboxes: Vec<i64>,
        }
        let mut reads: Vec<Read> = Vec::new();
        for (write, plan) in writes.iter().zip(plans) {
            if plan.is_none() {
                continue;
            }
            let tickets = write.tickets.as_deref();
            match reads
                .iter_mut()
                .find(|read| read.tickets == tickets && read.shown == write.shown)
            {
                Some(read) => read.mailboxes.push(write.mailbox_id),
                None => reads.push(Read {
                    tickets,
                    shown: write.shown,
                    mailboxes: vec![write.mailbox_id],
                }),
            }
        }
        let mut members = MembersByMailbox::new();
        for read in reads {
            let sql = members_sql(
                read.mailboxes.len(),
                read.tickets.map(<[i64]>::len),
                read.shown,
            );
            let rows: Vec<MemberRow> = on_tx!(self, |tx| {
                let query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                bind_members_query(query, &read.mailboxes, read.tickets)
                    .fetch_all(&mut *tx)
                    .await?
            });
            add_by_mailbox(&mut members, rows);
        }
        Ok(members)
    }

    /// Removes these UIDs from a mailbox and remembers them as gone at
    /// `modseq`.
    async fn forget_members(
        &mut self,
        mailbox_id: i64,
        gone: &[i64],
        modseq: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for chunk in gone.chunks(500) {
            let delete = delete_members_sql(chunk.len());
            let remember = remember_expunged_sql(chunk.len());
            on_tx!(self, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(delete)).bind(mailbox_id);
                for uid in chunk {
                    query = query.bind(*uid);
                }
                query.execute(&mut *tx).await?;
                let mut query = sqlx::query(sqlx::AssertSqlSafe(remember));
                for uid in chunk {
                    query = query.bind(mailbox_id).bind(*uid).bind(modseq).bind(now);
                }
                query.execute(&mut *tx).await?;
            });
        }
        Ok(())
    }

    /// Inserts new members, each (mailbox, UID, message or revision, flags,
    /// MODSEQ), in statements of 200 rows.
    async fn insert_members(
        &mut self,
        shown: Shown,
        added: &[(i64, i64, i64, &str, i64)],
    ) -> Result<()> {
        let column = shown.column();
        for chunk in added.chunks(200) {
            let sql = format!(
                "INSERT INTO imap_members (mailbox_id, uid, {column}, flags, modseq) VALUES {}",
                rows(chunk.len(), 5)
            );
            on_tx!(self, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (mailbox, uid, message, flags, modseq) in chunk {
                    query = query
                        .bind(*mailbox)
                        .bind(*uid)
                        .bind(*message)
                        .bind(*flags)
                        .bind(*modseq);
                }
                query.execute(&mut *tx).await?;
            });
        }
        Ok(())
    }

    /// Drops a mailbox's tombstones older than any session that could
    /// still ask for them (sessions older than this refresh in full). A
    /// QRESYNC client may be older: the MODSEQ up to which the record is
    /// now incomplete is kept for it.
    async fn forget_old_tombstones(&mut self, mailbox_id: i64, now: DateTime<Utc>) -> Result<()> {
        let cutoff = now - chrono::Duration::seconds(EXPUNGED_KEPT_SECONDS);
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE imap_mailboxes SET expunged_known_after =
                     (SELECT MAX(modseq) FROM imap_expunged WHERE mailbox_id = $1 AND expunged_at < $2)
                 WHERE id = $1 AND expunged_known_after <
                     (SELECT MAX(modseq) FROM imap_expunged WHERE mailbox_id = $1 AND expunged_at < $2)",
            )
            .bind(mailbox_id)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM imap_expunged WHERE mailbox_id = $1 AND expunged_at < $2")
                .bind(mailbox_id)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Records each written mailbox's sync marker, UIDNEXT and (when its
    /// members changed) new HIGHESTMODSEQ, in one statement.
    async fn record_mailboxes<'a>(
        &mut self,
        plans: impl Iterator<Item = &'a MailboxPlan>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let plans: Vec<&MailboxPlan> = plans.collect();
        if plans.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "WITH written (id, marker, uidnext, changed, modseq) AS (VALUES {})
             UPDATE imap_mailboxes SET synced_marker = written.marker, synced_at = $1,
                 uidnext = written.uidnext,
                 highestmodseq = CASE WHEN written.changed THEN written.modseq
                     ELSE imap_mailboxes.highestmodseq END
             FROM written WHERE imap_mailboxes.id = written.id",
            (0..plans.len())
                .map(|row| format!("({})", placeholders(2 + row * 5, 5)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_tx!(self, |tx| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for plan in &plans {
                let uidnext = plan.change.as_ref().map_or(plan.uidnext, |c| c.uidnext);
                query = query
                    .bind(plan.mailbox_id)
                    .bind(&plan.marker)
                    .bind(uidnext)
                    .bind(plan.changed())
                    .bind(plan.modseq);
            }
            query.execute(&mut *tx).await?;
        });
        Ok(())
    }
}

impl Store {
    /// Makes a mailbox hold `wanted` (for the messages of `tickets` only,
    /// when given); see [`Store::write_memberships`].
    pub(super) async fn write_membership(
        &self,
        mailbox_id: i64,
        wanted: Vec<(i64, String)>,
        tickets: Option<&[i64]>,
        marker: Option<&str>,
        force: bool,
        shown: Shown,
    ) -> Result<bool> {
        let write = MembershipWrite {
            mailbox_id,
            wanted,
            tickets: tickets.map(<[i64]>::to_vec),
            marker: marker.map(str::to_string),
            force,
            shown,
        };
        let changed = self.write_memberships(vec![write]).await?;
        changed
            .first()
            .copied()
            .ok_or_else(|| StoreError::Unavailable("a mailbox write went unanswered".into()))
    }

    /// Does these mailbox writes in one transaction: on SQLite the
    /// writer's, shared with the filing of mail and other mailboxes' writes
    /// (see [`super::filing::Work::Membership`]). Answers, per write,
    /// whether its mailbox changed.
    pub(super) async fn write_memberships(
        &self,
        writes: Vec<MembershipWrite>,
    ) -> Result<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        if self.filer.is_some() {
            return self
                .on_writer(|reply| Work::Membership { writes, reply })
                .await
                .unwrap_or_else(|| Err(StoreError::Unavailable("no SQLite writer".into())));
        }
        let mut tx = self.begin().await?;
        let changed = tx
            .write_memberships(&writes.iter().collect::<Vec<_>>())
            .await?;
        tx.commit().await?;
        Ok(changed)
    }
}
