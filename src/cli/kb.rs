//! `postdesk kb …`: the knowledge base from the command line. Every change
//! is a revision with its author (the agent of `--as`, else the system
//! user running the command) and time; what an agent may do is decided in
//! `domain::knowledge` (agents write drafts in their queues' categories and
//! the shared ones, leads and admins publish).

use super::{
    CliError, CliResult, Operator, open_for_writing, open_read_only, print_line, print_out,
};
use crate::config::Config;
use crate::domain::knowledge::{ArticleChange, ArticleState, Visibility};
use crate::http::help_center;
use crate::store::{Article, ArticleFilter, ArticleWrite, Revision, Store, StoreError};
use std::io::Read;
use std::path::Path;

/// `kb list`: every article (or those in one state or category).
pub async fn list(config: &Config, filter: ArticleFilter, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let articles = store.kb_articles(&filter).await?;
    print_out(json, &articles, || article_table(&articles))
}

/// `kb show ID [--revision N]`.
pub async fn show(config: &Config, id: i64, revision: Option<i64>, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    match revision {
        None => {
            let article = load(&store, id).await?;
            print_out(json, &article, || {
                let mut text = format!(
                    "article {} (revision {}): {}\n{} · {} · {} · {}\nupdated {} by {}\nhelped: {} yes, {} no\n\n",
                    article.id,
                    article.revision,
                    article.content.title,
                    article.content.category,
                    article.content.state,
                    article.content.visibility,
                    article.path,
                    article.updated_at.format("%Y-%m-%d %H:%M"),
                    article.updated_by,
                    article.helped_yes,
                    article.helped_no,
                );
                text.push_str(&article.content.body_text);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text
            })
        }
        Some(number) => {
            let revision = store
                .kb_revisions(id)
                .await?
                .into_iter()
                .find(|r| r.number == number)
                .ok_or_else(|| {
                    CliError::Invalid(format!("article {id} has no revision {number}"))
                })?;
            print_out(json, &revision, || {
                let mut text = format!(
                    "article {} revision {}: {}\n{} · {} · {}\n{} by {}: {}\n\n",
                    revision.article,
                    revision.number,
                    revision.content.title,
                    revision.content.category,
                    revision.content.state,
                    revision.content.visibility,
                    revision.at.format("%Y-%m-%d %H:%M"),
                    revision.author,
                    revision.summary,
                );
                text.push_str(&revision.content.body_text);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text
            })
        }
    }
}

/// `kb report`: per article, its revisions, how often acknowledgements
/// suggested it and replies inserted it (`#kb 42`), how many tickets it is
/// linked to, and the "did this help?" answers (help center and the
/// acknowledgement's "this solved my problem" link).
pub async fn report(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let usage = store.kb_usage().await?;
    print_out(json, &usage, || {
        let mut text = format!(
            "{:>4}  {:<9} {:<8}  {:>9}  {:>6}  {:>9}  {:>8}  {:>7}  {:>6}  {:>6}  {}\n",
            "ID",
            "STATE",
            "VISIBLE",
            "REVISIONS",
            "VIEWS",
            "SUGGESTED",
            "INSERTED",
            "TICKETS",
            "YES",
            "NO",
            "TITLE"
        );
        for u in &usage {
            text.push_str(&format!(
                "{:>4}  {:<9} {:<8}  {:>9}  {:>6}  {:>9}  {:>8}  {:>7}  {:>6}  {:>6}  {}\n",
                u.id,
                u.state,
                u.visibility,
                u.revisions,
                u.views,
                u.suggested,
                u.inserted,
                u.tickets,
                u.helped_yes,
                u.helped_no,
                u.title
            ));
        }
        text
    })
}

/// `kb history ID`: every revision, oldest first.
pub async fn history(config: &Config, id: i64, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let revisions = store.kb_revisions(id).await?;
    print_out(json, &revisions, || {
        let mut text = String::new();
        for r in &revisions {
            text.push_str(&format!(
                "{:>3}  {}  {:<28}  {:<9} {:<8}  {}\n",
                r.number,
                r.at.format("%Y-%m-%d %H:%M"),
                r.author,
                r.content.state,
                r.content.visibility,
                r.summary
            ));
        }
        text
    })
}

/// What `kb add` and `kb edit` were given.
#[derive(Debug, Clone, Default)]
pub struct ArticleInput {
    pub title: Option<String>,
    pub category: Option<String>,
    pub visibility: Option<Visibility>,
    /// Read the body (Markdown or text) from standard input.
    pub body_from_stdin: bool,
}

/// `kb add --title T --category C [--public] < body.md`: a new draft.
pub async fn add(
    config: Config,
    operator: &Operator,
    input: ArticleInput,
    json: bool,
) -> CliResult<()> {
    let change = ArticleChange {
        title: input.title,
        category: input.category,
        visibility: input.visibility,
        body_text: Some(read_body()?),
        ..ArticleChange::default()
    };
    write(config, operator, None, change, None, json).await
}

/// `kb edit ID [--title T] [--category C] [--public|--internal] [--stdin]`.
pub async fn edit(
    config: Config,
    operator: &Operator,
    id: i64,
    input: ArticleInput,
    json: bool,
) -> CliResult<()> {
    let change = ArticleChange {
        title: input.title,
        category: input.category,
        visibility: input.visibility,
        body_text: if input.body_from_stdin {
            Some(read_body()?)
        } else {
            None
        },
        ..ArticleChange::default()
    };
    if change.is_empty() {
        return Err(CliError::Invalid(
            "nothing to edit: give --title, --category, --public, --internal or --stdin".into(),
        ));
    }
    write(config, operator, Some(id), change, None, json).await
}

/// `kb publish ID`, `kb archive ID` (and back to a draft).
pub async fn set_state(
    config: Config,
    operator: &Operator,
    id: i64,
    state: ArticleState,
    json: bool,
) -> CliResult<()> {
    let change = ArticleChange {
        state: Some(state),
        ..ArticleChange::default()
    };
    write(config, operator, Some(id), change, None, json).await
}

/// `kb revert ID REVISION`: the text of an earlier revision, as a new one.
pub async fn revert(
    config: Config,
    operator: &Operator,
    id: i64,
    revision: i64,
    json: bool,
) -> CliResult<()> {
    write(
        config,
        operator,
        Some(id),
        ArticleChange::default(),
        Some(revision),
        json,
    )
    .await
}

async fn write(
    config: Config,
    operator: &Operator,
    article: Option<i64>,
    change: ArticleChange,
    revert_to: Option<i64>,
    json: bool,
) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let author = match &operator.agent {
        Some(agent) => agent.email.clone(),
        None => super::audit::operator(),
    };
    let written = app
        .store
        .kb_write(&ArticleWrite {
            article,
            actor: operator.agent.as_ref(),
            scopes: &app.kb_scopes,
            author,
            change,
            revert_to,
            source_html: None,
            message_ids: Vec::new(),
            now: chrono::Utc::now(),
        })
        .await?;
    print_out(json, &written, || revision_line(&written))
}

fn revision_line(r: &Revision) -> String {
    format!(
        "article {} revision {}: {} ({}, {}, {}) — {}\n",
        r.article,
        r.number,
        r.content.title,
        r.content.category,
        r.content.state,
        r.content.visibility,
        r.summary
    )
}

/// `kb export --html DIR`: the help center as static files (what the HTTP
/// listener serves under /kb, without the search and the feedback form),
/// published public articles only.
pub async fn export(config: &Config, dir: &Path) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let articles = store
        .kb_articles(&ArticleFilter {
            public_only: true,
            ..ArticleFilter::default()
        })
        .await?;
    let pages = help_center::static_pages(&articles)
        .map_err(|err| CliError::Failed(format!("cannot render the help center: {err}")))?;
    for (path, html) in &pages {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(CliError::io(format!("create {}", parent.display())))?;
        }
        std::fs::write(&file, html).map_err(CliError::io(format!("write {}", file.display())))?;
    }
    print_line(format_args!(
        "{} pages ({} articles) written to {}",
        pages.len(),
        articles.len(),
        dir.display()
    ))
}

async fn load(store: &Store, id: i64) -> CliResult<Article> {
    store
        .kb_article(id)
        .await?
        .ok_or_else(|| CliError::Store(StoreError::NotFound(format!("no article {id}"))))
}

fn read_body() -> CliResult<String> {
    let mut body = String::new();
    std::io::stdin()
        .read_to_string(&mut body)
        .map_err(CliError::io("read the article's body from standard input"))?;
    Ok(body)
}

fn article_table(articles: &[Article]) -> String {
    if articles.is_empty() {
        return "no articles\n".into();
    }
    let mut text = format!(
        "{:>4}  {:<9} {:<8}  {:<16}  {:<16}  {}\n",
        "ID", "STATE", "VISIBLE", "CATEGORY", "UPDATED", "TITLE"
    );
    for a in articles {
        text.push_str(&format!(
            "{:>4}  {:<9} {:<8}  {:<16}  {:<16}  {}\n",
            a.id,
            a.content.state,
            a.content.visibility,
            a.content.category,
            a.updated_at.format("%Y-%m-%d %H:%M"),
            a.content.title
        ));
    }
    text
}
