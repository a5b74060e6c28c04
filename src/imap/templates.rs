//! The Templates folder: the team's shared templates of the agent's
//! queues. Each agent's folder is storage of their own holding a copy of
//! each template (so FETCH, flags and UIDs work as in Drafts), brought in
//! line with the templates table when it is opened (SELECT, EXAMINE,
//! STATUS): new templates come in, removed ones leave. APPEND adds a
//! template (its name is its subject); `\Deleted` and EXPUNGE remove one
//! (its author, a lead of its queue or an admin).

use super::session::{ImapSession, LoggedIn, Reply};
use crate::domain::address;
use crate::domain::templates::{self as rules, template_name};
use crate::store::{Mailbox, NewTemplate, Queue, StoreError};
use crate::submission::templates::read_template_mail;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

impl ImapSession {
    /// Brings an agent's Templates folder in line with the templates of
    /// their queues.
    pub async fn sync_templates(
        &self,
        login: &LoggedIn,
        mailbox_id: i64,
    ) -> Result<(), StoreError> {
        let store = &self.app.store;
        let agent = &login.agent;
        let visible = if agent.actor().sees_every_queue() {
            store.templates(None).await?
        } else {
            store.templates(Some(&agent.queues)).await?
        };
        let copies = store.template_copies(mailbox_id).await?;
        let visible_ids: HashSet<i64> = visible.iter().map(|t| t.id).collect();
        let gone: Vec<u32> = copies
            .iter()
            .filter(|(_, template)| !visible_ids.contains(template))
            .map(|(uid, _)| *uid)
            .collect();
        store.imap_expunge(mailbox_id, &gone).await?;
        let present: HashSet<i64> = copies.iter().map(|(_, t)| *t).collect();
        for template in visible.iter().filter(|t| !present.contains(&t.id)) {
            store
                .add_template_copy(mailbox_id, agent.id, template.id, None, "\\Seen".into())
                .await?;
        }
        Ok(())
    }

    /// APPEND to Templates: a new template of the queue the mail names
    /// (a queue address in From or To), else of the agent's first queue.
    /// A template of the same name there is replaced (by its author, a
    /// lead or an admin), as a client saves an edited template.
    pub async fn append_template(
        &self,
        login: &LoggedIn,
        mailbox: &Mailbox,
        raw: &[u8],
        flags: String,
        internal_date: Option<DateTime<Utc>>,
    ) -> Reply {
        let agent = &login.agent;
        let actor = agent.actor();
        let Some(mail) = read_template_mail(raw) else {
            return Reply::no("[CANNOT] The template cannot be read as a mail");
        };
        let name = template_name(&mail.subject);
        if let Some(problem) = rules::name_problem(&name) {
            return Reply::no(format!("[CANNOT] {problem}"));
        }
        let queues = match self.app.queues().await {
            Ok(queues) => queues,
            Err(err) => return err.into(),
        };
        let Some(queue) = template_queue(raw, &queues, &actor) else {
            return Reply::no("[NOPERM] You work in no queue to add a template to");
        };
        if let Err(why) = rules::may_add(&actor, &queue.name) {
            return Reply::no(format!("[NOPERM] {why}"));
        }
        let store = &self.app.store;
        let existing = match store.template_named(&queue.name, &name).await {
            Ok(existing) => existing,
            Err(err) => return err.into(),
        };
        if let Some(old) = &existing
            && let Err(why) =
                rules::may_remove(&actor, &old.name, &old.queue, old.author_id, &old.author)
        {
            return Reply::no(format!("[NOPERM] {why}"));
        }
        let template = NewTemplate {
            name: name.clone(),
            queue_id: queue.id,
            subject: mail.subject.trim().to_string(),
            body_text: mail.text,
            body_html: mail.html,
            raw: raw.to_vec(),
            author: agent.email.clone(),
            author_id: Some(agent.id),
            now: internal_date.unwrap_or_else(Utc::now),
            replaces: existing.map(|t| t.id),
        };
        let id = match store.add_template(&template).await {
            Ok(id) => id,
            Err(err @ StoreError::Conflict(_)) => {
                return Reply::no(format!("[ALREADYEXISTS] {err}"));
            }
            Err(err) => return err.into(),
        };
        tracing::info!(agent = %agent.email, template = %name, queue = %queue.name, "template added over IMAP");
        match store
            .add_template_copy(mailbox.id, agent.id, id, Some(raw.to_vec()), flags)
            .await
        {
            Ok(Some(uid)) => Reply::ok(format!(
                "[APPENDUID {} {uid}] Template '{name}' added to queue {}",
                mailbox.uidvalidity, queue.name
            )),
            Ok(None) => Reply::ok(format!("Template '{name}' added to queue {}", queue.name)),
            Err(err) => err.into(),
        }
    }

    /// EXPUNGE in Templates: the templates of these UIDs, if the agent
    /// may remove every one of them (all or none). Returns the refusal.
    pub async fn remove_templates(
        &self,
        login: &LoggedIn,
        mailbox_id: i64,
        uids: &[u32],
    ) -> Result<(), Reply> {
        let store = &self.app.store;
        let copies = store
            .template_copies(mailbox_id)
            .await
            .map_err(Reply::from)?;
        let actor = login.agent.actor();
        let mut doomed = Vec::new();
        for (uid, template) in copies.iter().filter(|(uid, _)| uids.contains(uid)) {
            let Some(found) = store.template(*template).await.map_err(Reply::from)? else {
                continue;
            };
            rules::may_remove(
                &actor,
                &found.name,
                &found.queue,
                found.author_id,
                &found.author,
            )
            .map_err(|why| Reply::no(format!("[NOPERM] {why}; nothing was removed")))?;
            doomed.push((*uid, found));
        }
        for (_, template) in &doomed {
            store
                .remove_template(template.id)
                .await
                .map_err(Reply::from)?;
            tracing::info!(agent = %login.agent.email, template = %template.name, queue = %template.queue, "template removed over IMAP");
        }
        Ok(())
    }
}

/// The queue a template mail is for: the first of the agent's queues whose
/// address (or a plus-address of it) is in its From, To or Cc; else the
/// agent's first queue.
fn template_queue<'q>(
    raw: &[u8],
    queues: &'q [Queue],
    actor: &crate::domain::permission::Actor,
) -> Option<&'q Queue> {
    let mine: Vec<&Queue> = queues.iter().filter(|q| actor.works_in(&q.name)).collect();
    let named = std::panic::catch_unwind(|| {
        let message = mail_parser::MessageParser::default().parse_headers(raw)?;
        let mut addresses = Vec::new();
        for list in [message.from(), message.to(), message.cc()]
            .into_iter()
            .flatten()
        {
            for addr in list.iter() {
                if let Some(a) = addr.address.as_deref() {
                    let normalized = address::normalize(a);
                    addresses.push(
                        address::Recipient::parse(&normalized)
                            .map(|r| r.base)
                            .unwrap_or(normalized),
                    );
                }
            }
        }
        Some(addresses)
    })
    .ok()
    .flatten()
    .unwrap_or_default();
    mine.iter()
        .find(|q| named.contains(&q.address))
        .copied()
        .or_else(|| {
            actor
                .queues
                .iter()
                .find_map(|name| mine.iter().find(|q| &q.name == name).copied())
        })
        .or_else(|| mine.first().copied())
}
