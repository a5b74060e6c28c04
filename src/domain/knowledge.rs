//! The knowledge base: articles, their states and revisions, who may do
//! what with them, their stable URLs, and the Markdown they are written in.
//!
//! Every change of an article is a new, immutable revision holding the
//! whole article (title, category, state, visibility, body); the newest
//! revision is the article. [`plan_revision`] decides, from the article as
//! it is, the change asked and who asks, what the next revision holds or
//! why there is none; the store writes it.
//!
//! Who may do what: an agent writes drafts (new articles, and edits of an
//! article while it is a draft) in the categories they may write
//! ([`may_write_category`]: those of their queues, and the shared ones no
//! queue claims); a lead or an admin writes every category, and publishes,
//! archives, reverts, and edits an article that is published or archived.
//! Only a published public article ever reaches a customer ([`is_public`]).

use super::permission::{Actor, AgentRole, Denied};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where an article is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArticleState {
    /// Being written: seen by agents only.
    Draft,
    /// In force: agents see it, and customers when it is public.
    Published,
    /// Withdrawn: kept with its history, shown to nobody outside.
    Archived,
}

impl ArticleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ArticleState::Draft => "draft",
            ArticleState::Published => "published",
            ArticleState::Archived => "archived",
        }
    }
}

impl std::fmt::Display for ArticleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for ArticleState {
    type Err = String;

    fn from_str(s: &str) -> Result<ArticleState, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "draft" => Ok(ArticleState::Draft),
            "published" => Ok(ArticleState::Published),
            "archived" => Ok(ArticleState::Archived),
            _ => Err(format!(
                "no article state '{s}' (states: draft, published, archived)"
            )),
        }
    }
}

/// Who may read an article once it is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Agents only.
    Internal,
    /// Customers too: the help center, suggestions, replies.
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }
}

impl std::fmt::Display for Visibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Visibility {
    type Err = String;

    fn from_str(s: &str) -> Result<Visibility, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "internal" => Ok(Visibility::Internal),
            "public" => Ok(Visibility::Public),
            _ => Err(format!(
                "no visibility '{s}' (visibilities: internal, public)"
            )),
        }
    }
}

/// An article as one revision holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArticleContent {
    pub title: String,
    pub category: String,
    pub state: ArticleState,
    pub visibility: Visibility,
    /// What the author wrote (Markdown or plain text).
    pub body_text: String,
    /// The body as HTML, rendered from `body_text` ([`render_markdown`]):
    /// what the help center shows.
    pub body_html: String,
}

/// Whether an article in this state may reach a customer: published and
/// public, nothing else (drafts, internal and archived articles never).
pub fn is_public(state: ArticleState, visibility: Visibility) -> bool {
    state == ArticleState::Published && visibility == Visibility::Public
}

/// What an author asks of an article; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArticleChange {
    pub title: Option<String>,
    pub category: Option<String>,
    pub body_text: Option<String>,
    pub visibility: Option<Visibility>,
    pub state: Option<ArticleState>,
    /// Bring back the title, category and body of this earlier revision
    /// (as a new revision; the state and visibility stay).
    pub revert_to: Option<(i64, ArticleContent)>,
}

impl ArticleChange {
    /// Whether the change touches anything at all.
    pub fn is_empty(&self) -> bool {
        *self == ArticleChange::default()
    }
}

/// The next revision of an article: its content and a one-line account of
/// what changed (the history's "what").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRevision {
    pub content: ArticleContent,
    pub summary: String,
    pub at: DateTime<Utc>,
}

/// Why no revision is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArticleRefusal {
    #[error("{0}")]
    Denied(Denied),
    #[error("{0}")]
    Invalid(String),
    #[error("nothing to change: the article is already like that")]
    Unchanged,
}

/// Longest title kept (a subject line's worth).
pub const MAX_TITLE: usize = 200;

/// Which categories the agents of which queues write: the
/// `knowledge_categories` of each `[[queue]]`. A category some queues list
/// is theirs; a category no queue lists is shared (every agent writes it),
/// so a knowledge base without the key works as before it existed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryScopes {
    /// (queue, its categories in the configured order).
    queues: Vec<(String, Vec<String>)>,
}

impl CategoryScopes {
    pub fn new(queues: impl IntoIterator<Item = (String, Vec<String>)>) -> CategoryScopes {
        CategoryScopes {
            queues: queues
                .into_iter()
                .filter(|(_, categories)| !categories.is_empty())
                .collect(),
        }
    }

    /// The queues whose agents write `category` (none: a shared category).
    pub fn queues_using(&self, category: &str) -> Vec<&str> {
        self.queues
            .iter()
            .filter(|(_, categories)| categories.iter().any(|c| same_category(c, category)))
            .map(|(queue, _)| queue.as_str())
            .collect()
    }

    /// The category of a draft written from a ticket of `queue` (`#kb
    /// draft`): the queue's first configured category, else the queue's
    /// own name.
    pub fn draft_category(&self, queue: &str) -> String {
        self.queues
            .iter()
            .find(|(q, _)| q.eq_ignore_ascii_case(queue))
            .and_then(|(_, categories)| categories.first())
            .cloned()
            .unwrap_or_else(|| queue.to_string())
    }

    /// The configured categories the actor may not write, lower case,
    /// sorted: what their view of the drafts depends on besides the
    /// articles themselves.
    pub fn denied_to(&self, actor: &Actor) -> Vec<String> {
        let mut denied: Vec<String> = self
            .queues
            .iter()
            .flat_map(|(_, categories)| categories)
            .filter(|c| may_write_category(Some(actor), self, c).is_err())
            .map(|c| c.to_lowercase())
            .collect();
        denied.sort();
        denied.dedup();
        denied
    }
}

/// Category names compare as the help center and `kb list` compare them:
/// in any case.
fn same_category(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// May the actor write articles of `category` (new drafts in it, edits of
/// its articles, moving an article into or out of it)? A lead, an admin
/// and the server's administrator (`actor` None) write every category; an
/// agent a shared one, or one a queue they work in uses.
pub fn may_write_category(
    actor: Option<&Actor>,
    scopes: &CategoryScopes,
    category: &str,
) -> Result<(), Denied> {
    let Some(actor) = actor else {
        return Ok(());
    };
    if actor.role >= AgentRole::Lead {
        return Ok(());
    }
    let queues = scopes.queues_using(category);
    if queues.is_empty() || queues.iter().any(|q| actor.works_in(q)) {
        Ok(())
    } else {
        Err(Denied::CategoryNotYours(category.to_string()))
    }
}

/// Decides the next revision of an article (`current`: None for a new
/// one), or why there is none. `actor` None: the server's administrator
/// (the command line without `--as`). An agent must be allowed the
/// article's category before and after the change.
pub fn plan_revision(
    actor: Option<&Actor>,
    scopes: &CategoryScopes,
    current: Option<&ArticleContent>,
    change: &ArticleChange,
    now: DateTime<Utc>,
) -> Result<PlannedRevision, ArticleRefusal> {
    let role = actor.map_or(AgentRole::Admin, |a| a.role);
    let content = match current {
        None => new_article(change)?,
        Some(current) => changed_article(current, change)?,
    };
    for category in current
        .map(|c| c.category.as_str())
        .into_iter()
        .chain([content.category.as_str()])
    {
        may_write_category(actor, scopes, category).map_err(ArticleRefusal::Denied)?;
    }
    if let Some(current) = current
        && *current == content
    {
        return Err(ArticleRefusal::Unchanged);
    }
    if role < AgentRole::Lead {
        check_agent(current, &content, change)?;
    }
    Ok(PlannedRevision {
        summary: summary(current, &content, change),
        content,
        at: now,
    })
}

fn new_article(change: &ArticleChange) -> Result<ArticleContent, ArticleRefusal> {
    if change.revert_to.is_some() {
        return Err(ArticleRefusal::Invalid(
            "a new article has no revision to go back to".into(),
        ));
    }
    let body_text = change.body_text.clone().unwrap_or_default();
    Ok(ArticleContent {
        title: valid_title(change.title.as_deref().unwrap_or(""))?,
        category: valid_category(change.category.as_deref().unwrap_or("General"))?,
        state: change.state.unwrap_or(ArticleState::Draft),
        visibility: change.visibility.unwrap_or(Visibility::Internal),
        body_html: render_markdown(&body_text),
        body_text,
    })
}

fn changed_article(
    current: &ArticleContent,
    change: &ArticleChange,
) -> Result<ArticleContent, ArticleRefusal> {
    let mut next = current.clone();
    if let Some((_, earlier)) = &change.revert_to {
        next.title = earlier.title.clone();
        next.category = earlier.category.clone();
        next.body_text = earlier.body_text.clone();
        next.body_html = earlier.body_html.clone();
    }
    if let Some(title) = &change.title {
        next.title = valid_title(title)?;
    }
    if let Some(category) = &change.category {
        next.category = valid_category(category)?;
    }
    if let Some(body) = &change.body_text {
        next.body_html = render_markdown(body);
        next.body_text = body.clone();
    }
    if let Some(visibility) = change.visibility {
        next.visibility = visibility;
    }
    if let Some(state) = change.state {
        next.state = state;
    }
    Ok(next)
}

/// An agent (not a lead) writes drafts: a new article stays a draft, an
/// existing one must be a draft and stay one, and going back to an earlier
/// revision is a lead's decision.
fn check_agent(
    current: Option<&ArticleContent>,
    next: &ArticleContent,
    change: &ArticleChange,
) -> Result<(), ArticleRefusal> {
    let denied = |what: &str| {
        Err(ArticleRefusal::Denied(Denied::NeedsRole {
            role: AgentRole::Lead,
            what: what.to_string(),
        }))
    };
    if next.state != ArticleState::Draft {
        return denied(match next.state {
            ArticleState::Archived => "archive articles",
            _ => "publish articles",
        });
    }
    if current.is_some_and(|c| c.state != ArticleState::Draft) {
        return denied("change a published or archived article");
    }
    if change.revert_to.is_some() {
        return denied("revert articles");
    }
    Ok(())
}

/// What a revision changed, in a few words ("created", "published",
/// "edited title, body").
fn summary(
    current: Option<&ArticleContent>,
    next: &ArticleContent,
    change: &ArticleChange,
) -> String {
    let Some(current) = current else {
        return "created".into();
    };
    let mut parts = Vec::new();
    if let Some((number, _)) = &change.revert_to {
        parts.push(format!("reverted to revision {number}"));
    }
    if current.state != next.state {
        parts.push(next.state.as_str().to_string());
    }
    if current.visibility != next.visibility {
        parts.push(format!("made {}", next.visibility));
    }
    if change.revert_to.is_none() {
        let edited: Vec<&str> = [
            ("title", current.title != next.title),
            ("category", current.category != next.category),
            ("body", current.body_text != next.body_text),
        ]
        .into_iter()
        .filter_map(|(what, changed)| changed.then_some(what))
        .collect();
        if !edited.is_empty() {
            parts.push(format!("edited {}", edited.join(", ")));
        }
    }
    parts.join("; ")
}

fn valid_title(title: &str) -> Result<String, ArticleRefusal> {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err(ArticleRefusal::Invalid("an article needs a title".into()));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ArticleRefusal::Invalid(format!(
            "a title has at most {MAX_TITLE} characters"
        )));
    }
    Ok(title)
}

fn valid_category(category: &str) -> Result<String, ArticleRefusal> {
    category_name(category).map_err(ArticleRefusal::Invalid)
}

/// A category is a short name ("Printers"): one line, no slash (it names
/// an IMAP folder `Knowledge/<category>` too); blanks are collapsed.
pub fn category_name(category: &str) -> Result<String, String> {
    let category = category.split_whitespace().collect::<Vec<_>>().join(" ");
    if category.is_empty() {
        return Err("an article needs a category".into());
    }
    if category.chars().count() > 60 || category.contains(['/', '\\']) {
        return Err(format!(
            "'{category}' is not a category name (at most 60 characters, no slashes)"
        ));
    }
    Ok(category)
}

/// The readable part of an article's URL: `printer-on-fire` for "Printer
/// on fire!". ASCII letters and digits, words joined by `-`, at most about
/// 60 characters cut at a word; "article" when nothing is left. The URL
/// `/kb/42-printer-on-fire` is found by its number alone, so a new title
/// does not break old links.
pub fn slug(title: &str) -> String {
    const MAX: usize = 60;
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in title.chars() {
        let c = fold_accent(c);
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            // "don't" reads better as "dont" than as "don-t".
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut slug = String::new();
    for word in words {
        if !slug.is_empty() && slug.len() + 1 + word.len() > MAX {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word[..word.len().min(MAX)]);
    }
    if slug.is_empty() {
        "article".into()
    } else {
        slug
    }
}

/// The plain letter of a common accented Latin letter (é → e), so that
/// "Café printer" becomes `cafe-printer`.
fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
        'Ç' => 'C',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'Ñ' => 'N',
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'O',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        'Ý' => 'Y',
        other => other,
    }
}

/// An article's path in the help center: `/kb/42-printer-on-fire`.
pub fn article_path(id: i64, title: &str) -> String {
    format!("/kb/{id}-{}", slug(title))
}

/// The article number of a path segment `42-printer-on-fire` (or `42`);
/// the words after the number do not matter.
pub fn article_id_of_segment(segment: &str) -> Option<i64> {
    let digits: &str = segment
        .split_once('-')
        .map_or(segment, |(number, _)| number);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|id| *id > 0)
}

/// Renders an article's Markdown (plain text is Markdown too) as HTML for
/// the help center. Authors are agents, readers are anyone: raw HTML in
/// the text is shown as text, not passed through, and links and images
/// only keep web, mail and relative addresses (no `javascript:`).
pub fn render_markdown(text: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: "".into(),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// A link target that cannot run script: http(s), mailto, or a relative
/// address (no scheme before the first `/`, `?` or `#`).
fn safe_url(url: &str) -> bool {
    let url = url.trim();
    let before_path = url.split(['/', '?', '#']).next().unwrap_or("");
    match before_path.split_once(':') {
        None => true,
        Some((scheme, _)) => ["http", "https", "mailto"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme)),
    }
}

/// The commands at the top of a mail to the knowledge address: `#publish`,
/// `#archive`, `#draft`, `#internal`, `#public`, `#category Printers`.
/// Only the leading block counts (blank lines and command lines up to the
/// first other line). A Markdown heading (`# Title`, with a space) is
/// text, not a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArticleCommands {
    pub state: Option<ArticleState>,
    pub visibility: Option<Visibility>,
    pub category: Option<String>,
    /// The text after the command block.
    pub rest: String,
}

/// Every article command, for error messages.
pub const ARTICLE_COMMANDS: &str = "#publish, #archive, #draft, #internal, #public, #category NAME";

impl ArticleCommands {
    /// Reads the command block of a mail's text; an unknown `#word` there
    /// is an error naming it (nothing is written from such a mail).
    pub fn read(text: &str) -> Result<ArticleCommands, String> {
        let mut commands = ArticleCommands::default();
        let mut rest_from = None;
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim();
            let is_command = trimmed.starts_with('#')
                && trimmed[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            if !trimmed.is_empty() && !is_command {
                rest_from = Some(offset);
                break;
            }
            offset += line.len();
            if trimmed.is_empty() {
                continue;
            }
            let (word, argument) = trimmed[1..]
                .split_once(char::is_whitespace)
                .map_or((&trimmed[1..], ""), |(w, a)| (w, a.trim()));
            match word.to_ascii_lowercase().as_str() {
                "publish" => commands.state = Some(ArticleState::Published),
                "archive" => commands.state = Some(ArticleState::Archived),
                "draft" => commands.state = Some(ArticleState::Draft),
                "internal" => commands.visibility = Some(Visibility::Internal),
                "public" => commands.visibility = Some(Visibility::Public),
                "category" if !argument.is_empty() => {
                    commands.category = Some(argument.to_string())
                }
                "category" => return Err("#category needs a name: #category Printers".into()),
                _ => {
                    return Err(format!(
                        "unknown command '{trimmed}' (article commands: {ARTICLE_COMMANDS})"
                    ));
                }
            }
        }
        commands.rest = match rest_from {
            Some(start) => text[start..].to_string(),
            None => String::new(),
        };
        Ok(commands)
    }
}

/// Whether an article matches a search: every word of `query` (any case)
/// in its title or text. Some(true) when all are in the title (those
/// come first); None when it does not match, or the query has no word.
pub fn article_matches(title: &str, body: &str, query: &str) -> Option<bool> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return None;
    }
    let title = title.to_lowercase();
    let body = body.to_lowercase();
    words
        .iter()
        .all(|w| title.contains(w.as_str()) || body.contains(w.as_str()))
        .then(|| words.iter().all(|w| title.contains(w.as_str())))
}

/// A few lines of an article's text around the first word of `query`
/// that it holds (its beginning when none is in the text), one line.
pub fn article_snippet(body: &str, query: &str) -> String {
    const AROUND: usize = 60;
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = flat.to_lowercase();
    let at = query
        .split_whitespace()
        .filter_map(|w| lower.find(&w.to_lowercase()))
        .min()
        .unwrap_or(0);
    let mut start = at.saturating_sub(AROUND);
    while !flat.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 2 * AROUND).min(flat.len());
    while !flat.is_char_boundary(end) {
        end += 1;
    }
    let mut snippet = flat[start..end].to_string();
    if start > 0 {
        snippet.insert(0, '…');
    }
    if end < flat.len() {
        snippet.push('…');
    }
    snippet
}

/// Signs the "this solved my problem" links of an acknowledgement: each
/// names a ticket and an article it suggested, with an HMAC of both under
/// the server's secret, so that a guessed or altered link (another
/// ticket's number) resolves nothing.
#[derive(Clone)]
pub struct SolvedLinks {
    key: ring::hmac::Key,
}

/// Bytes of the HMAC-SHA256 in a token (96 bits, 24 hex digits: no guess
/// finds one, and the link stays short enough for a mail's line).
const SOLVED_TOKEN_BYTES: usize = 12;

impl SolvedLinks {
    pub fn new(secret: &[u8]) -> SolvedLinks {
        SolvedLinks {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    /// The token of a ticket and article.
    pub fn token(&self, ticket: i64, article: i64) -> String {
        let tag = ring::hmac::sign(
            &self.key,
            format!("kb-solved:{ticket}:{article}").as_bytes(),
        );
        tag.as_ref()[..SOLVED_TOKEN_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `token` is the one of this ticket and article (compared in
    /// constant time).
    pub fn verify(&self, ticket: i64, article: i64, token: &str) -> bool {
        let expected = self.token(ticket, article);
        expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }

    /// The help center's path of the link: `/kb/solved/1042/42/<token>`.
    pub fn path(&self, ticket: i64, article: i64) -> String {
        format!(
            "/kb/solved/{ticket}/{article}/{}",
            self.token(ticket, article)
        )
    }
}

/// One message of a ticket's conversation, for [`draft_from_conversation`]:
/// who wrote it (the customer, or an agent's public reply) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPart {
    pub from_customer: bool,
    pub text: String,
}

/// What must not go into an article drafted from a ticket: the customer's
/// addresses and names (and the agents' names, who sign their replies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateDetails {
    pub names: Vec<String>,
}

/// The person's name a mail address may carry in its local part
/// (`carol.customer@…` → "carol customer"), to leave out of a draft as the
/// customer's name is; None for a role address (`info@`, `support@`) or a
/// local part that is no name (digits).
pub fn name_in_address(address: &str) -> Option<String> {
    const ROLES: [&str; 16] = [
        "info", "support", "admin", "office", "contact", "sales", "billing", "help", "service",
        "team", "mail", "noreply", "hello", "it", "accounts", "helpdesk",
    ];
    let local = address.split('@').next()?.split('+').next()?;
    let words: Vec<&str> = local
        .split(['.', '_', '-'])
        .filter(|w| w.chars().count() >= 2)
        .collect();
    let is_name = !words.is_empty()
        && words.iter().all(|w| w.chars().all(char::is_alphabetic))
        && !words
            .iter()
            .any(|w| ROLES.contains(&w.to_lowercase().as_str()));
    is_name.then(|| words.join(" "))
}

/// The body of a draft article made from a ticket's conversation (`#kb
/// draft`): what the customer asked ("Problem") and what the agents
/// answered ("Solution"), each message's own words only. Quoted text,
/// signatures, greetings and sign-offs are left out, mail addresses
/// become `[address]` and the names in `private` `[name]`: the article
/// may be published for everyone to read, the ticket is one customer's.
pub fn draft_from_conversation(parts: &[ConversationPart], private: &PrivateDetails) -> String {
    let mut problem = Vec::new();
    let mut solution = Vec::new();
    for part in parts {
        let own = super::quoting::split_quoted(&part.text).0;
        let cleaned = scrub(&without_salutations(&own), private);
        if cleaned.trim().is_empty() {
            continue;
        }
        if part.from_customer {
            problem.push(cleaned.trim().to_string());
        } else {
            solution.push(cleaned.trim().to_string());
        }
    }
    let section = |texts: &[String]| {
        if texts.is_empty() {
            "(to be written)".to_string()
        } else {
            texts.join("\n\n")
        }
    };
    format!(
        "## Problem\n\n{}\n\n## Solution\n\n{}\n",
        section(&problem),
        section(&solution)
    )
}

/// A text without its greeting line ("Hi Carol,") and without everything
/// from its sign-off on ("Thanks,", "Best regards", "Cheers"): where a
/// signature without the `-- ` line begins.
fn without_salutations(text: &str) -> String {
    const GREETINGS: [&str; 7] = [
        "hi",
        "hello",
        "hey",
        "dear",
        "good morning",
        "good afternoon",
        "hallo",
    ];
    const SIGN_OFFS: [&str; 10] = [
        "thanks",
        "thank you",
        "best wishes",
        "best regards",
        "kind regards",
        "regards",
        "cheers",
        "sincerely",
        "greetings",
        "many thanks",
    ];
    let mut out = String::with_capacity(text.len());
    let mut first_words = true;
    for line in text.lines() {
        let trimmed = line.trim();
        let bare = trimmed
            .trim_end_matches([',', '!', '.', ':'])
            .to_lowercase();
        if first_words && !trimmed.is_empty() {
            first_words = false;
            let greeting = GREETINGS
                .iter()
                .any(|g| bare == *g || bare.starts_with(&format!("{g} ")))
                && trimmed.len() < 60;
            if greeting {
                continue;
            }
        }
        // "Thanks," alone, or "Best regards," / "Many thanks again,"
        // (a line of its own ending in a comma); "Thanks for writing."
        // is a sentence.
        let sign_off = SIGN_OFFS
            .iter()
            .any(|s| bare == *s || (trimmed.ends_with(',') && bare.starts_with(&format!("{s} "))));
        if sign_off {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Mail addresses become `[address]`, the private names `[name]` (whole
/// words, any case; each part of a name of two letters or more).
fn scrub(text: &str, private: &PrivateDetails) -> String {
    let mut words: Vec<String> = private
        .names
        .iter()
        .flat_map(|n| n.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut token = String::new();
        for c in line.chars() {
            if c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | ',' | ';' | '"') {
                out.push_str(&scrub_token(&token, &words));
                token.clear();
                out.push(c);
            } else {
                token.push(c);
            }
        }
        out.push_str(&scrub_token(&token, &words));
    }
    out
}

fn scrub_token(token: &str, names: &[String]) -> String {
    if token.is_empty() {
        return String::new();
    }
    // An address, also as `mailto:` or with trailing punctuation.
    if let Some(at) = token.find('@')
        && at > 0
        && token[at + 1..].contains('.')
    {
        return "[address]".to_string();
    }
    // A name, perhaps with punctuation after it ("Carol.", "Carol's").
    let word: String = token.chars().take_while(|c| c.is_alphanumeric()).collect();
    if !word.is_empty() && names.contains(&word.to_lowercase()) {
        return format!("[name]{}", &token[word.len()..]);
    }
    token.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_visibility_fill_their_table_columns() {
        // The CLI's tables pad these with `{:<9}`: a Display that ignored
        // the width ran the columns together ("draft public").
        assert_eq!(format!("{:<9}|", ArticleState::Draft), "draft    |");
        assert_eq!(format!("{:<8}|", Visibility::Public), "public  |");
    }

    fn agent(role: AgentRole) -> Actor {
        Actor {
            id: 7,
            email: "bob@desk.test".into(),
            role,
            queues: vec!["support".into()],
        }
    }

    /// No queue claims a category: every agent writes every one.
    fn shared() -> CategoryScopes {
        CategoryScopes::default()
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T10:00:00Z".parse().expect("time")
    }

    fn draft() -> ArticleContent {
        plan_revision(
            None,
            &shared(),
            None,
            &ArticleChange {
                title: Some("Printer on fire".into()),
                category: Some("Printers".into()),
                body_text: Some("Pull the **plug**.".into()),
                ..ArticleChange::default()
            },
            now(),
        )
        .expect("created")
        .content
    }

    #[test]
    fn a_new_article_is_an_internal_draft_with_rendered_html() {
        let article = draft();
        assert_eq!(article.state, ArticleState::Draft);
        assert_eq!(article.visibility, Visibility::Internal);
        assert_eq!(
            article.body_html,
            "<p>Pull the <strong>plug</strong>.</p>\n"
        );
        assert!(!is_public(article.state, article.visibility));
    }

    #[test]
    fn agents_write_drafts_and_leads_publish() {
        let article = draft();
        let publish = ArticleChange {
            state: Some(ArticleState::Published),
            ..ArticleChange::default()
        };
        let refused = plan_revision(
            Some(&agent(AgentRole::Agent)),
            &shared(),
            Some(&article),
            &publish,
            now(),
        );
        assert!(
            matches!(&refused, Err(ArticleRefusal::Denied(d)) if d.to_string() == "only a lead or an admin may publish articles"),
            "{refused:?}"
        );
        let published = plan_revision(
            Some(&agent(AgentRole::Lead)),
            &shared(),
            Some(&article),
            &publish,
            now(),
        )
        .expect("a lead publishes");
        assert_eq!(published.summary, "published");
        // An agent edits a draft, but not a published article.
        let edit = ArticleChange {
            body_text: Some("Call the fire brigade.".into()),
            ..ArticleChange::default()
        };
        let edited = plan_revision(
            Some(&agent(AgentRole::Agent)),
            &shared(),
            Some(&article),
            &edit,
            now(),
        )
        .expect("an agent edits a draft");
        assert_eq!(edited.summary, "edited body");
        assert!(matches!(
            plan_revision(
                Some(&agent(AgentRole::Agent)),
                &shared(),
                Some(&published.content),
                &edit,
                now()
            ),
            Err(ArticleRefusal::Denied(_))
        ));
        // An agent may not create a published article either.
        let created_published = ArticleChange {
            title: Some("T".into()),
            state: Some(ArticleState::Published),
            ..ArticleChange::default()
        };
        assert!(matches!(
            plan_revision(
                Some(&agent(AgentRole::Agent)),
                &shared(),
                None,
                &created_published,
                now()
            ),
            Err(ArticleRefusal::Denied(_))
        ));
    }

    fn scopes() -> CategoryScopes {
        CategoryScopes::new([
            (
                "support".to_string(),
                vec!["Printers".to_string(), "Network".to_string()],
            ),
            ("billing".to_string(), vec!["Invoices".to_string()]),
            ("sales".to_string(), vec![]),
        ])
    }

    fn in_queues(role: AgentRole, queues: &[&str]) -> Actor {
        Actor {
            queues: queues.iter().map(|q| q.to_string()).collect(),
            ..agent(role)
        }
    }

    #[test]
    fn a_category_a_queue_uses_is_written_by_that_queues_agents_only() {
        let scopes = scopes();
        let bob = in_queues(AgentRole::Agent, &["support"]);
        let bill = in_queues(AgentRole::Agent, &["billing"]);
        assert_eq!(may_write_category(Some(&bob), &scopes, "Printers"), Ok(()));
        assert_eq!(may_write_category(Some(&bob), &scopes, "network"), Ok(()));
        let refused = may_write_category(Some(&bill), &scopes, "printers").unwrap_err();
        assert_eq!(refused, Denied::CategoryNotYours("printers".into()));
        assert!(refused.to_string().contains("'printers'"), "{refused}");
        // A category no queue lists is shared.
        assert_eq!(may_write_category(Some(&bill), &scopes, "General"), Ok(()));
        // Leads, admins and the administrator write every category.
        let lead = in_queues(AgentRole::Lead, &["billing"]);
        assert_eq!(may_write_category(Some(&lead), &scopes, "Printers"), Ok(()));
        let admin = in_queues(AgentRole::Admin, &[]);
        assert_eq!(
            may_write_category(Some(&admin), &scopes, "Printers"),
            Ok(())
        );
        assert_eq!(may_write_category(None, &scopes, "Printers"), Ok(()));
        // An agent of both queues writes both.
        let both = in_queues(AgentRole::Agent, &["Billing", "support"]);
        assert_eq!(may_write_category(Some(&both), &scopes, "Invoices"), Ok(()));
        assert_eq!(scopes.denied_to(&both), Vec::<String>::new());
        assert_eq!(scopes.denied_to(&bill), ["network", "printers"]);
        assert_eq!(scopes.denied_to(&lead), Vec::<String>::new());
    }

    #[test]
    fn every_revision_checks_the_old_and_the_new_category() {
        let scopes = scopes();
        let bob = in_queues(AgentRole::Agent, &["support"]);
        let bill = in_queues(AgentRole::Agent, &["billing"]);
        let new_in = |category: &str| ArticleChange {
            title: Some("Paper jam".into()),
            category: Some(category.into()),
            ..ArticleChange::default()
        };
        let printers = plan_revision(Some(&bob), &scopes, None, &new_in("Printers"), now())
            .expect("bob writes in his queue's category")
            .content;
        assert_eq!(
            plan_revision(Some(&bill), &scopes, None, &new_in("Printers"), now()),
            Err(ArticleRefusal::Denied(Denied::CategoryNotYours(
                "Printers".into()
            )))
        );
        // No category named: "General", shared.
        let general = plan_revision(
            Some(&bill),
            &scopes,
            None,
            &ArticleChange {
                title: Some("Paper jam".into()),
                ..ArticleChange::default()
            },
            now(),
        )
        .expect("a shared category")
        .content;
        // Editing another queue's article, moving one out of it or into it.
        let edit = ArticleChange {
            body_text: Some("Open tray 2.".into()),
            ..ArticleChange::default()
        };
        assert!(matches!(
            plan_revision(Some(&bill), &scopes, Some(&printers), &edit, now()),
            Err(ArticleRefusal::Denied(Denied::CategoryNotYours(_)))
        ));
        let to_general = ArticleChange {
            category: Some("General".into()),
            ..ArticleChange::default()
        };
        assert!(matches!(
            plan_revision(Some(&bill), &scopes, Some(&printers), &to_general, now()),
            Err(ArticleRefusal::Denied(Denied::CategoryNotYours(c))) if c == "Printers"
        ));
        let to_printers = ArticleChange {
            category: Some("Printers".into()),
            ..ArticleChange::default()
        };
        assert!(matches!(
            plan_revision(Some(&bill), &scopes, Some(&general), &to_printers, now()),
            Err(ArticleRefusal::Denied(Denied::CategoryNotYours(c))) if c == "Printers"
        ));
        assert!(plan_revision(Some(&bob), &scopes, Some(&general), &to_printers, now()).is_ok());
        let lead = in_queues(AgentRole::Lead, &["billing"]);
        assert!(plan_revision(Some(&lead), &scopes, Some(&printers), &edit, now()).is_ok());
    }

    #[test]
    fn a_draft_from_a_ticket_goes_to_its_queues_first_category() {
        let scopes = scopes();
        assert_eq!(scopes.draft_category("Support"), "Printers");
        assert_eq!(scopes.draft_category("sales"), "sales");
        assert_eq!(scopes.draft_category("unknown"), "unknown");
        assert_eq!(scopes.queues_using("INVOICES"), ["billing"]);
        assert!(scopes.queues_using("sales").is_empty());
    }

    #[test]
    fn a_change_that_changes_nothing_is_no_revision() {
        let article = draft();
        let same = ArticleChange {
            title: Some("  Printer   on fire ".into()),
            ..ArticleChange::default()
        };
        assert_eq!(
            plan_revision(None, &shared(), Some(&article), &same, now()),
            Err(ArticleRefusal::Unchanged)
        );
    }

    #[test]
    fn revert_brings_back_the_text_and_keeps_the_state() {
        let first = draft();
        let mut second = first.clone();
        second.title = "Printer smokes".into();
        second.body_text = "Open a window.".into();
        second.body_html = render_markdown(&second.body_text);
        second.state = ArticleState::Published;
        let revert = ArticleChange {
            revert_to: Some((1, first.clone())),
            ..ArticleChange::default()
        };
        let planned =
            plan_revision(None, &shared(), Some(&second), &revert, now()).expect("reverted");
        assert_eq!(planned.content.title, first.title);
        assert_eq!(planned.content.body_text, first.body_text);
        assert_eq!(planned.content.state, ArticleState::Published);
        assert_eq!(planned.summary, "reverted to revision 1");
        assert!(matches!(
            plan_revision(
                Some(&agent(AgentRole::Agent)),
                &shared(),
                Some(&first),
                &revert,
                now()
            ),
            Err(ArticleRefusal::Denied(_)) | Err(ArticleRefusal::Unchanged)
        ));
    }

    #[test]
    fn titles_and_categories_are_checked() {
        let no_title = ArticleChange::default();
        assert!(matches!(
            plan_revision(None, &shared(), None, &no_title, now()),
            Err(ArticleRefusal::Invalid(_))
        ));
        let bad_category = ArticleChange {
            title: Some("T".into()),
            category: Some("a/b".into()),
            ..ArticleChange::default()
        };
        assert!(matches!(
            plan_revision(None, &shared(), None, &bad_category, now()),
            Err(ArticleRefusal::Invalid(_))
        ));
    }

    #[test]
    fn slugs_are_stable_readable_urls() {
        assert_eq!(slug("Printer on fire!"), "printer-on-fire");
        assert_eq!(slug("Café: don't panic"), "cafe-dont-panic");
        assert_eq!(slug("???"), "article");
        assert_eq!(
            article_path(42, "Printer on fire"),
            "/kb/42-printer-on-fire"
        );
        let long = slug(&"word ".repeat(40));
        assert!(long.len() <= 60 && !long.ends_with('-'), "{long}");
        assert_eq!(article_id_of_segment("42-printer-on-fire"), Some(42));
        assert_eq!(article_id_of_segment("42"), Some(42));
        assert_eq!(article_id_of_segment("x42"), None);
        assert_eq!(article_id_of_segment("0-zero"), None);
        assert_eq!(article_id_of_segment("-1"), None);
    }

    #[test]
    fn mail_commands_lead_the_text() {
        let read =
            ArticleCommands::read("#publish\n#category  Printers \n\n# Intro\nText #public\n")
                .expect("commands");
        assert_eq!(read.state, Some(ArticleState::Published));
        assert_eq!(read.category.as_deref(), Some("Printers"));
        assert_eq!(read.visibility, None);
        assert_eq!(read.rest, "# Intro\nText #public\n");
        let none = ArticleCommands::read("Plain text\n#public\n").expect("text");
        assert_eq!(
            none,
            ArticleCommands {
                rest: "Plain text\n#public\n".into(),
                ..ArticleCommands::default()
            }
        );
        assert!(ArticleCommands::read("#publsh\nText").is_err_and(|e| e.contains("#publsh")));
        assert!(ArticleCommands::read("#category\n").is_err());
        let only = ArticleCommands::read("#internal\r\n#archive\r\n").expect("commands");
        assert_eq!(
            (only.visibility, only.state, only.rest.as_str()),
            (Some(Visibility::Internal), Some(ArticleState::Archived), "")
        );
    }

    #[test]
    fn markdown_cannot_carry_script() {
        let html = render_markdown(
            "<script>alert(1)</script>\n\n[click](javascript:alert(1)) [ok](https://example.org/a) [rel](/kb/2-x)",
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://example.org/a\""), "{html}");
        assert!(html.contains("href=\"/kb/2-x\""), "{html}");
    }

    #[test]
    fn names_in_addresses_are_found_and_roles_are_not() {
        assert_eq!(
            name_in_address("carol.customer@example.com").as_deref(),
            Some("carol customer")
        );
        assert_eq!(name_in_address("dave@example.com").as_deref(), Some("dave"));
        assert_eq!(name_in_address("info@example.com"), None);
        assert_eq!(
            name_in_address("j.smith+tickets@example.com").as_deref(),
            Some("smith")
        );
        assert_eq!(name_in_address("4711@example.com"), None);
    }

    #[test]
    fn a_draft_from_a_ticket_leaves_the_customer_out() {
        let parts = vec![
            ConversationPart {
                from_customer: true,
                text: "Hi there,\n\nMy printer shows error E42 since Monday. Carol Customer here, \
                       reach me at carol@example.com.\n\nThanks,\nCarol\nACME Corp, +1 555 0100\n"
                    .into(),
            },
            ConversationPart {
                from_customer: false,
                text: "Hello Carol,\n\nTurn it off, remove the toner and turn it on again.\n\n\
                       Best regards,\nBob\n\nOn Mon, Carol wrote:\n> My printer shows error E42\n"
                    .into(),
            },
        ];
        let private = PrivateDetails {
            names: vec!["Carol Customer".into(), "Bob Agent".into()],
        };
        let body = draft_from_conversation(&parts, &private);
        assert!(body.contains("## Problem"), "{body}");
        assert!(body.contains("error E42 since Monday"), "{body}");
        assert!(body.contains("remove the toner"), "{body}");
        for private in [
            "carol",
            "Carol",
            "example.com",
            "555 0100",
            "Bob",
            "Hi there",
            "wrote:",
        ] {
            assert!(!body.contains(private), "{private} in {body}");
        }
        assert!(body.contains("[name] [name] here"), "{body}");
        assert!(body.contains("[address]"), "{body}");
    }

    #[test]
    fn solved_links_are_bound_to_their_ticket_and_article() {
        let links = SolvedLinks::new(b"secret");
        let token = links.token(1042, 42);
        assert_eq!(token.len(), 24);
        assert!(links.verify(1042, 42, &token));
        assert!(!links.verify(1043, 42, &token), "another ticket");
        assert!(!links.verify(1042, 43, &token), "another article");
        assert!(!links.verify(1042, 42, &token[..23]));
        assert!(!SolvedLinks::new(b"other").verify(1042, 42, &token));
        assert_eq!(links.path(1042, 42), format!("/kb/solved/1042/42/{token}"));
    }

    #[test]
    fn articles_match_every_word_in_title_or_text() {
        assert_eq!(
            article_matches("Printer on fire", "Pull the plug.", "printer PLUG"),
            Some(false)
        );
        assert_eq!(
            article_matches("Printer on fire", "Pull the plug.", "fire printer"),
            Some(true)
        );
        assert_eq!(
            article_matches("Printer on fire", "Pull the plug.", "printer vpn"),
            None
        );
        assert_eq!(
            article_matches("Printer on fire", "Pull the plug.", "  "),
            None
        );
        let snippet = article_snippet(
            &format!(
                "{} Pull the plug now. {}",
                "a ".repeat(100),
                "b ".repeat(100)
            ),
            "plug",
        );
        assert!(snippet.contains("Pull the plug now"), "{snippet}");
        assert!(
            snippet.starts_with('…') && snippet.ends_with('…'),
            "{snippet}"
        );
    }
}
