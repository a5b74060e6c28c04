//! Reconciles of some tickets, done for several mailboxes at once.
//!
//! Every session hears every change of a ticket, and one session per
//! mailbox reconciles its mailbox for the tickets it heard (see
//! [`super::ViewSyncs`]). But a team's agents each have mailboxes of their
//! own: with 20 agents on one queue, each change was 20 reconciles, each
//! four reads and a write of its own (issue 17). Reconciles asked for while
//! others are being done wait, and are then done together: for the
//! mailboxes of one kind of view, one read of the tickets' messages for all
//! the agents (as rows of a VALUES list), one of the tags, one of the
//! agents' own keywords, one of the members, and the writes in one
//! transaction. Each mailbox is reconciled for every ticket any of them
//! asked for: a reconcile brings its tickets' messages in line with the
//! tickets, so doing more tickets than heard is only more up to date.
//!
//! No task waits for work: the first reconcile asked for while none is
//! being done starts a task that does what waits, and ends when nothing
//! does.

use super::imap::{
    ViewTerms, Viewer, WantedRow, grouped, view_condition, wanted_columns, wanted_with_flags,
};
use super::membership::{
    MemberRow, MembersByMailbox, MembershipWrite, Shown, add_by_mailbox, bind_members_query,
    members_sql,
};
use super::{Result, Store, StoreError, dispatch_read};
use crate::domain::views::{ViewFilter, membership_change};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// At most this many tickets are reconciled in one go (a session
/// reconciles at most 500; beyond, the whole view).
const MAX_TICKETS_TOGETHER: usize = 500;

/// At most this many mailboxes are reconciled in one go.
const MAX_MAILBOXES_TOGETHER: usize = 64;

/// A reconcile of the messages of some tickets in one mailbox.
pub(crate) struct TicketsReconcile {
    pub(crate) mailbox_id: i64,
    pub(crate) viewer: Viewer,
    pub(crate) filter: ViewFilter,
    /// The start of the Closed window.
    pub(crate) closed_since: DateTime<Utc>,
    pub(crate) tickets: Vec<i64>,
}

/// A reconcile waiting to be done, and who waits for its answer.
struct Waiting {
    reconcile: TicketsReconcile,
    reply: oneshot::Sender<Result<bool>>,
}

/// The reconciles waiting to be done together (one per [`Store`] and its
/// clones).
#[derive(Clone, Default)]
pub(crate) struct ViewBatches {
    queue: Arc<Mutex<Queue>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A task is doing the waiting reconciles, and will take these.
    running: bool,
    /// Rounds taken from the queue, and the most reconciles one held.
    #[cfg(test)]
    rounds: (u64, usize),
}

impl ViewBatches {
    /// Rounds taken so far, and the most reconciles one held.
    #[cfg(test)]
    fn rounds(&self) -> (u64, usize) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rounds
    }

    /// Does `reconcile` with whatever else waits; answers whether the
    /// mailbox changed.
    pub(crate) async fn reconcile(
        &self,
        store: &Store,
        reconcile: TicketsReconcile,
    ) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push(Waiting { reconcile, reply });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            let running = Running {
                queue: Arc::clone(&self.queue),
                finished: false,
            };
            tokio::spawn(running.work(store.clone()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the reconcile of a view stopped".into(),
            ))
        })
    }
}

/// The one task doing the waiting reconciles. Dropped before it found the
/// queue empty (it panicked), it lets the next reconcile start another,
/// and the ones it held or that waited learn that theirs stopped.
struct Running {
    queue: Arc<Mutex<Queue>>,
    /// It found the queue empty and said so under the queue's lock.
    finished: bool,
}

impl Running {
    async fn work(mut self, store: Store) {
        loop {
            let waiting = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.running = false;
                    self.finished = true;
                    return;
                }
                #[cfg(test)]
                {
                    queue.rounds.0 += 1;
                    queue.rounds.1 = queue.rounds.1.max(queue.waiting.len());
                }
                std::mem::take(&mut queue.waiting)
            };
            for group in groups(waiting) {
                store.reconcile_group(group).await;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.running = false;
            // Nobody may be left to start another task for these: their
            // sessions hear that theirs stopped (and reconcile in full later).
            queue.waiting.clear();
        }
    }
}

/// The waiting reconciles in groups done together: of one kind of view,
/// at most [`MAX_MAILBOXES_TOGETHER`] mailboxes and, together,
/// [`MAX_TICKETS_TOGETHER`] tickets (a reconcile of more is done alone).
fn groups(waiting: Vec<Waiting>) -> Vec<Vec<Waiting>> {
    let mut groups: Vec<(BTreeSet<i64>, Vec<Waiting>)> = Vec::new();
    for one in waiting {
        let fits = groups.iter_mut().find(|(tickets, group)| {
            group[0].reconcile.filter == one.reconcile.filter
                && group.len() < MAX_MAILBOXES_TOGETHER
                && tickets
                    .union(&one.reconcile.tickets.iter().copied().collect())
                    .count()
                    <= MAX_TICKETS_TOGETHER
        });
        match fits {
            Some((tickets, group)) => {
                tickets.extend(one.reconcile.tickets.iter().copied());
                group.push(one);
            }
            None => groups.push((one.reconcile.tickets.iter().copied().collect(), vec![one])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

impl Store {
    /// Does a group of reconciles together and answers each. When that
    /// fails (a mailbox deleted meanwhile, say), each is done again alone,
    /// so that one costs the others nothing.
    async fn reconcile_group(&self, group: Vec<Waiting>) {
        metrics::counter!(crate::telemetry::IMAP_RECONCILE_ROUNDS).increment(1);
        metrics::counter!(crate::telemetry::IMAP_RECONCILES).increment(group.len() as u64);
        let reconciles: Vec<&TicketsReconcile> = group.iter().map(|w| &w.reconcile).collect();
        match self.reconcile_together(&reconciles).await {
            Ok(changed) => {
                for (waiting, changed) in group.into_iter().zip(changed) {
                    let _ = waiting.reply.send(Ok(changed));
                }
            }
            Err(err) if group.len() == 1 => {
                if let Some(waiting) = group.into_iter().next() {
                    let _ = waiting.reply.send(Err(err));
                }
            }
            Err(err) => {
                tracing::debug!(%err, size = group.len(), "reconciles done together failed; one at a time");
                for waiting in group {
                    let alone = self
                        .reconcile_together(&[&waiting.reconcile])
                        .await
                        .and_then(|changed| {
                            changed.first().copied().ok_or_else(|| {
                                StoreError::Unavailable("a reconcile went unanswered".into())
                            })
                        });
                    let _ = waiting.reply.send(alone);
                }
            }
        }
    }

    /// Reconciles these mailboxes (all of one kind of view) for every
    /// ticket any of them names; answers, per mailbox, whether it changed.
    async fn reconcile_together(&self, reconciles: &[&TicketsReconcile]) -> Result<Vec<bool>> {
        let Some(first) = reconciles.first() else {
            return Ok(Vec::new());
        };
        let filter = &first.filter;
        let tickets: Vec<i64> = reconciles
            .iter()
            .flat_map(|r| r.tickets.iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut viewers: Vec<(i64, bool)> = reconciles
            .iter()
            .map(|r| (r.viewer.agent_id, r.viewer.sees_every_queue))
            .collect();
        viewers.sort_unstable();
        viewers.dedup_by_key(|(agent, _)| *agent);
        let mailboxes: Vec<i64> = reconciles.iter().map(|r| r.mailbox_id).collect();
        // Asked for within moments of each other: the latest start of the
        // Closed window is the one closest to now.
        let closed_since = reconciles
            .iter()
            .map(|r| r.closed_since)
            .max()
            .unwrap_or(first.closed_since);
        let queue = filter.queue.clone().unwrap_or_default();
        let [wanted_sql, tags_sql, own_sql] =
            together_queries(filter, viewers.len(), tickets.len());
        let members_sql = members_sql(mailboxes.len(), Some(tickets.len()), Shown::Messages);

        let (wanted_rows, tag_rows, own_rows, member_rows) = dispatch_read!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(wanted_sql))
                .bind(&queue)
                .bind(closed_since);
            for (agent, sees_every_queue) in &viewers {
                query = query.bind(*agent).bind(*sees_every_queue);
            }
            for ticket in &tickets {
                query = query.bind(*ticket);
            }
            let wanted: Vec<(i64, i64, i64, String, bool, bool)> = query.fetch_all(pool).await?;

            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(tags_sql));
            for ticket in &tickets {
                query = query.bind(*ticket);
            }
            let tags: Vec<(i64, String)> = query.fetch_all(pool).await?;

            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(own_sql));
            for (agent, _) in &viewers {
                query = query.bind(*agent);
            }
            for ticket in &tickets {
                query = query.bind(*ticket);
            }
            let own: Vec<(i64, i64, String)> = query.fetch_all(pool).await?;

            let query = sqlx::query_as(sqlx::AssertSqlSafe(members_sql));
            let members: Vec<MemberRow> = bind_members_query(query, &mailboxes, Some(&tickets))
                .fetch_all(pool)
                .await?;
            (wanted, tags, own, members)
        });

        let tags = grouped(tag_rows);
        let mut wanted_by_agent: HashMap<i64, Vec<WantedRow>> = HashMap::new();
        for (agent, id, ticket, priority, seen, answered) in wanted_rows {
            wanted_by_agent
                .entry(agent)
                .or_default()
                .push((id, ticket, priority, seen, answered));
        }
        // The agents' own keywords, by agent and then by message.
        let mut own_by_agent: HashMap<i64, HashMap<i64, Vec<String>>> = HashMap::new();
        for (agent, message, keyword) in own_rows {
            own_by_agent
                .entry(agent)
                .or_default()
                .entry(message)
                .or_default()
                .push(keyword);
        }
        let no_keywords = HashMap::new();
        let mut members_by_mailbox = MembersByMailbox::new();
        add_by_mailbox(&mut members_by_mailbox, member_rows);

        // What each mailbox should hold; the ones that hold it already
        // (another session of the agent was first) are not written.
        let mut writes = Vec::new();
        let mut written = Vec::with_capacity(reconciles.len());
        for reconcile in reconciles {
            let agent = reconcile.viewer.agent_id;
            let rows = wanted_by_agent.get(&agent).cloned().unwrap_or_default();
            let own = own_by_agent.get(&agent).unwrap_or(&no_keywords);
            let wanted = wanted_with_flags(&reconcile.viewer, rows, &tags, own)?;
            let current = members_by_mailbox
                .remove(&reconcile.mailbox_id)
                .unwrap_or_default();
            let preview = membership_change(wanted.clone(), current, 0);
            if preview.is_empty() {
                written.push(false);
                continue;
            }
            written.push(true);
            writes.push(MembershipWrite::of_tickets(
                reconcile.mailbox_id,
                wanted,
                tickets.clone(),
            ));
        }
        let mut changed = self.write_memberships(writes).await?.into_iter();
        written
            .into_iter()
            .map(|is_written| match is_written {
                true => changed.next().ok_or_else(|| {
                    StoreError::Unavailable("a mailbox write went unanswered".into())
                }),
                false => Ok(false),
            })
            .collect()
    }
}

/// The three reads of what several agents' views of one kind should hold
/// of some tickets: the messages (agent, then a
/// [`WantedRow`]), the tickets' tags, and the agents' own keywords on the
/// tickets' messages (agent, message, keyword).
///
/// The messages read binds `$1` the queue ('' for all) and `$2` the start of
/// the Closed window, then each viewer's agent and whether they see every
/// queue, then the tickets; the tags read binds the tickets; the keywords
/// read the agents, then the tickets. The tickets come first, each looked
/// up by its number (CROSS JOIN fixes SQLite's join order: given the
/// numbers among the view's conditions it took the status index and read
/// every open ticket, 3 ms a reconcile); then each viewer.
fn together_queries(filter: &ViewFilter, viewers: usize, tickets: usize) -> [String; 3] {
    let condition = view_condition(
        filter,
        &ViewTerms {
            agent: "viewers.agent",
            sees_every_queue: "viewers.everything",
            queue: "$1",
            closed_since: "$2",
        },
    );
    let columns = wanted_columns("viewers.agent");
    let viewer_rows = (0..viewers)
        .map(|n| format!("(${}, ${})", 3 + 2 * n, 4 + 2 * n))
        .collect::<Vec<_>>()
        .join(", ");
    let scope = |first: usize| {
        (first..first + tickets)
            .map(|n| format!("(${n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let numbers = |first: usize| {
        (first..first + tickets)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let agents = (1..=viewers)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!(
            "WITH viewers(agent, everything) AS (VALUES {viewer_rows}),
                  scope(number) AS (VALUES {})
             SELECT viewers.agent, {columns}
             FROM scope CROSS JOIN tickets t CROSS JOIN viewers
                 JOIN messages m ON m.ticket = t.number JOIN queues q ON q.id = t.queue_id
             WHERE t.number = scope.number AND m.kind <> 'auto_reply' AND {condition}
             ORDER BY viewers.agent, m.id",
            scope(3 + 2 * viewers)
        ),
        format!(
            "WITH scope(number) AS (VALUES {})
             SELECT tt.ticket, tt.tag FROM scope CROSS JOIN ticket_tags tt
             WHERE tt.ticket = scope.number",
            scope(1)
        ),
        format!(
            "SELECT k.agent_id, k.message_id, k.keyword FROM agent_keywords k
             WHERE k.agent_id IN ({agents})
             AND k.message_id IN (SELECT id FROM messages WHERE ticket IN ({}))",
            numbers(1 + viewers)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    /// The reads for several viewers name each viewer's own columns, never
    /// the parameters of a one-viewer read (there, `$1` is the queue: a
    /// Mine view compared the owner with it, and showed nothing).
    #[test]
    fn several_viewers_are_named_by_their_columns() {
        for folder in crate::domain::views::Folder::standard(&["support".into()]) {
            let Some(filter) = folder.filter() else {
                continue;
            };
            let [wanted, _, _] = together_queries(&filter, 2, 1);
            let condition = &wanted[wanted.find("WHERE").expect("a condition")..];
            for term in condition.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '_')) {
                if let Some(parameter) = term.strip_prefix('$') {
                    assert!(["1", "2"].contains(&parameter), "{folder:?}: {condition}");
                }
            }
            assert!(
                condition.contains("viewers.agent"),
                "{folder:?}: {condition}"
            );
            if matches!(folder, crate::domain::views::Folder::Inbox) {
                assert!(
                    condition.contains("t.owner_id = viewers.agent"),
                    "{condition}"
                );
            }
        }
    }

    /// The mailboxes of a team, reconciled in one round, each end as a full
    /// reconcile of its own would leave it; an agent who is not in the
    /// queue sees none of it.
    #[tokio::test]
    async fn a_team_reconciled_together_holds_what_each_would_alone() {
        let (_dir, store, queue) = crate::store::filing::tests::store_with_queue().await;
        let other = store
            .upsert_queue("billing", "billing@desk.test")
            .await
            .expect("queue");
        let mut views = Vec::new();
        for (name, queues) in [
            ("a1", &queue),
            ("a2", &queue),
            ("a3", &queue),
            ("a4", &queue),
            ("outsider", &other),
        ] {
            let folders: Vec<String> = crate::domain::views::Folder::standard(&["support".into()])
                .iter()
                .map(crate::domain::views::Folder::name)
                .collect();
            let (agent, mailboxes) =
                crate::store::filing::tests::agent_with_folders(&store, name, queues, &folders)
                    .await;
            for mailbox in mailboxes {
                let folder =
                    crate::domain::views::Folder::parse(&mailbox.name, &["support".into()]);
                if let Some(filter) = folder.filter() {
                    let viewer = Viewer {
                        agent_id: agent,
                        sees_every_queue: false,
                        keywords: Arc::default(),
                    };
                    views.push((mailbox.id, viewer, filter, name));
                }
            }
        }
        let (outcomes, _) =
            crate::store::filing::tests::file_all(&store, queue.id, &["one", "two", "three"]).await;
        let tickets: Vec<i64> = outcomes
            .iter()
            .map(|o| o.as_ref().ok().and_then(|o| o.ticket()).expect("filed"))
            .collect();
        // a1 owns the first: it shows in a1's INBOX alone.
        let a1 = views[0].1.agent_id;
        let owned = crate::domain::change::TicketChange {
            owner: Some(Some(a1)),
            ..Default::default()
        };
        store
            .change_ticket(
                tickets[0],
                &crate::domain::change::ChangeRequest::administrative(
                    owned,
                    "a test",
                    "admin",
                    Utc::now(),
                ),
            )
            .await
            .expect("assigned");

        let since = Utc::now() - chrono::Duration::days(7);
        let changed =
            futures_util::future::join_all(views.iter().map(|(mailbox, viewer, filter, _)| {
                store.imap_reconcile_tickets(*mailbox, viewer, filter, since, &tickets)
            }))
            .await;
        let (rounds, largest) = store.view_batches.rounds();
        assert_eq!(largest, views.len(), "one round took them all");
        assert_eq!(rounds, 1);

        let (mut support, mut inboxes) = (0, 0);
        for ((mailbox, viewer, filter, name), changed) in views.iter().zip(changed) {
            let changed = changed.expect("reconciled");
            let members = store.imap_members(*mailbox).await.expect("members");
            if *name == "outsider" {
                assert!(members.is_empty() && !changed, "{name}: {members:?}");
            }
            if *name != "outsider" && filter.queue.as_deref() == Some("support") {
                assert_eq!(members.len(), 3, "{name}");
                assert!(changed);
                support += 1;
            }
            if filter.owner == crate::domain::views::OwnerFilter::Me {
                let expected = if *name == "a1" { 1 } else { 0 };
                assert_eq!(members.len(), expected, "{name}'s INBOX: {members:?}");
                inboxes += 1;
            }
            // A full reconcile finds nothing left to do.
            let again = store
                .imap_reconcile(*mailbox, viewer, filter, since, "full", true)
                .await
                .expect("full reconcile");
            assert!(!again, "{name}, mailbox {mailbox}: {members:?}");
        }
        assert_eq!((support, inboxes), (4, 5));
        store.close().await;
    }

    /// However many agents' mailboxes are reconciled together, each of the
    /// tickets is looked up by its number: SQLite's planner took the status
    /// index for the views of open tickets and read them all, 3 ms for each
    /// mailbox and change (issue 17, a team of 20 agents on one queue).
    #[tokio::test]
    async fn a_reconcile_of_some_tickets_reads_only_those_tickets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/desk.db", dir.path().display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let crate::store::Backend::Sqlite { read, .. } = &store.backend else {
            panic!("an SQLite store");
        };
        for folder in crate::domain::views::Folder::standard(&["support".into()]) {
            let Some(filter) = folder.filter() else {
                continue;
            };
            for viewers in [1, 20] {
                let [wanted, _, _] = together_queries(&filter, viewers, 3);
                let plan: Vec<String> =
                    sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {wanted}")))
                        .fetch_all(read)
                        .await
                        .expect("plan")
                        .iter()
                        .map(|row| row.try_get::<String, _>("detail").expect("detail"))
                        .collect();
                let tickets: Vec<&String> = plan
                    .iter()
                    .filter(|step| step.starts_with("SEARCH t ") || step.starts_with("SCAN t"))
                    .collect();
                assert!(
                    !tickets.is_empty()
                        && tickets
                            .iter()
                            .all(|step| step.starts_with("SEARCH t USING INTEGER PRIMARY KEY")),
                    "{folder:?}: {plan:#?}"
                );
            }
        }
        store.close().await;
    }
}
