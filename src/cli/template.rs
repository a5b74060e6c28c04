//! `postdesk template …`: the shared templates (canned replies) per queue,
//! the same ones agents see in their Templates folder and insert with
//! `#template NAME`. Run as an agent (`--as`), a command sees and changes
//! only the templates of their queues; an agent removes only their own
//! (a lead those of their queues, an admin any).

use super::{CliError, CliResult, Operator, open_for_writing, open_read_only, print_out};
use crate::config::Config;
use crate::domain::templates::{self, template_name};
use crate::store::{NewTemplate, Store, StoreError, Template};
use crate::submission::templates::build_template_mail;
use std::io::Read;

/// The queues the operator sees (None: every queue).
fn visible_queues(operator: &Operator) -> Option<Vec<String>> {
    operator
        .agent
        .as_ref()
        .filter(|a| !a.sees_every_queue())
        .map(|a| a.queues.clone())
}

/// `template list [--queue Q]`.
pub async fn list(
    config: &Config,
    operator: &Operator,
    queue: Option<String>,
    json: bool,
) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let visible = visible_queues(operator);
    let mut found = store.templates(visible.as_deref()).await?;
    if let Some(queue) = &queue {
        found.retain(|t| t.queue.eq_ignore_ascii_case(queue));
    }
    print_out(json, &found, || {
        if found.is_empty() {
            return "no templates\n".into();
        }
        let mut text = format!(
            "{:>4}  {:<12}  {:<24}  {:<16}  {}\n",
            "ID", "QUEUE", "NAME", "CREATED", "AUTHOR"
        );
        for t in &found {
            text.push_str(&format!(
                "{:>4}  {:<12}  {:<24}  {:<16}  {}\n",
                t.id,
                t.queue,
                t.name,
                t.created_at.format("%Y-%m-%d %H:%M"),
                t.author
            ));
        }
        text
    })
}

/// The template a command names: its id, or its name (in `queue`, or in
/// the one queue that has it).
async fn find(
    store: &Store,
    operator: &Operator,
    which: &str,
    queue: Option<&str>,
) -> CliResult<Template> {
    let visible = visible_queues(operator);
    let all = store.templates(visible.as_deref()).await?;
    if let Ok(id) = which.trim().trim_start_matches('#').parse::<i64>()
        && let Some(found) = all.iter().find(|t| t.id == id)
    {
        return Ok(found.clone());
    }
    let name = template_name(which);
    let mut matching: Vec<&Template> = all
        .iter()
        .filter(|t| t.name == name)
        .filter(|t| queue.is_none_or(|q| t.queue.eq_ignore_ascii_case(q)))
        .collect();
    match matching.len() {
        0 => Err(CliError::Store(StoreError::NotFound(format!(
            "no template '{name}'{}",
            queue
                .map(|q| format!(" in queue '{q}'"))
                .unwrap_or_default()
        )))),
        1 => Ok(matching.remove(0).clone()),
        _ => Err(CliError::Invalid(format!(
            "template '{name}' is in queues {}: say which with --queue",
            matching
                .iter()
                .map(|t| t.queue.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `template show NAME|ID [--queue Q]`.
pub async fn show(
    config: &Config,
    operator: &Operator,
    which: &str,
    queue: Option<String>,
    json: bool,
) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let template = find(&store, operator, which, queue.as_deref()).await?;
    print_out(json, &template, || {
        let mut text = format!(
            "template {} '{}' in queue {}\nsubject: {}\nby {} on {}\n\n",
            template.id,
            template.name,
            template.queue,
            template.subject,
            template.author,
            template.created_at.format("%Y-%m-%d %H:%M"),
        );
        text.push_str(&template.body_text);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    })
}

/// `template add --name N --queue Q < body`.
pub async fn add(
    config: Config,
    operator: &Operator,
    name: &str,
    queue: &str,
    json: bool,
) -> CliResult<()> {
    let normalized = template_name(name);
    if let Some(problem) = templates::name_problem(&normalized) {
        return Err(CliError::Invalid(problem));
    }
    let mut body = String::new();
    std::io::stdin()
        .read_to_string(&mut body)
        .map_err(CliError::io("read the template's body from standard input"))?;
    if body.trim().is_empty() {
        return Err(CliError::Invalid(
            "the template is empty: give its text on standard input".into(),
        ));
    }
    let app = open_for_writing(config).await?;
    let found = app.store.queue_by_name(queue).await?;
    if let Some(agent) = &operator.agent {
        templates::may_add(agent, &found.name)?;
    }
    let (author, author_id) = match &operator.agent {
        Some(agent) => (agent.email.clone(), Some(agent.id)),
        None => (super::audit::operator(), None),
    };
    let raw = build_template_mail(name.trim(), &body, &author, &app.own_ids.fresh_submission())
        .map_err(CliError::Failed)?;
    let id = app
        .store
        .add_template(&NewTemplate {
            name: normalized.clone(),
            queue_id: found.id,
            subject: name.trim().to_string(),
            body_text: body,
            body_html: None,
            raw,
            author,
            author_id,
            now: chrono::Utc::now(),
            replaces: None,
        })
        .await
        .map_err(|err| match err {
            StoreError::Conflict(why) => {
                CliError::Invalid(format!("{why}: remove it first (template remove)"))
            }
            other => other.into(),
        })?;
    let added = app
        .store
        .template(id)
        .await?
        .ok_or_else(|| CliError::Failed(format!("template {id} vanished")))?;
    print_out(json, &added, || {
        format!(
            "template {} '{}' added to queue {}\n",
            added.id, added.name, added.queue
        )
    })
}

/// `template remove NAME|ID [--queue Q]`.
pub async fn remove(
    config: Config,
    operator: &Operator,
    which: &str,
    queue: Option<String>,
) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let template = find(&app.store, operator, which, queue.as_deref()).await?;
    if let Some(agent) = &operator.agent {
        templates::may_remove(
            agent,
            &template.name,
            &template.queue,
            template.author_id,
            &template.author,
        )
        .map_err(CliError::Invalid)?;
    }
    app.store.remove_template(template.id).await?;
    super::print_line(format_args!(
        "template {} '{}' removed from queue {}",
        template.id, template.name, template.queue
    ))
}
