//! The help center: the knowledge base's published public articles as
//! server-rendered pages under `/kb` (minijinja templates in
//! templates/kb/, compiled in; plain HTML forms, no script). Drafts,
//! internal and archived articles are never served: every page is built
//! from the published public articles only, and an article's page answers
//! 404 for any other.
//!
//! URLs are stable: `/kb/42-printer-on-fire` is found by its number, and a
//! link with an older title's words is redirected to the current one.

use crate::App;
use crate::domain::knowledge;
use crate::store::{Article, ArticleFilter};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/kb/layout.html"),
    ),
    ("index.html", include_str!("../../templates/kb/index.html")),
    (
        "category.html",
        include_str!("../../templates/kb/category.html"),
    ),
    (
        "article.html",
        include_str!("../../templates/kb/article.html"),
    ),
    (
        "search.html",
        include_str!("../../templates/kb/search.html"),
    ),
    (
        "not_found.html",
        include_str!("../../templates/kb/not_found.html"),
    ),
    (
        "solved.html",
        include_str!("../../templates/kb/solved.html"),
    ),
];

/// The compiled templates (auto-escaping, as their names end in .html).
/// A template that does not compile is logged and its pages fail (the
/// tests render each one).
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(%err, template = name, "help center template");
        }
    }
    env
});

/// The help center's routes (merged into the HTTP listener's router).
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/kb", get(index))
        .route("/kb/", get(index))
        .route("/kb/search", get(search_page))
        .route("/kb/category/{slug}", get(category_page))
        .route("/kb/{segment}", get(article_page))
        .route("/kb/{segment}/feedback", post(feedback))
        .route(
            "/kb/solved/{ticket}/{article}/{token}",
            get(solved_page).post(solved),
        )
}

/// What every page knows besides its own content.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub hostname: String,
    /// A static copy (`kb export --html`): no search box, no feedback form.
    pub static_copy: bool,
}

/// An article as the templates read it.
#[derive(Debug, Clone, Serialize)]
struct ArticlePage<'a> {
    id: i64,
    title: &'a str,
    category: &'a str,
    path: &'a str,
    body_html: &'a str,
    updated: String,
}

impl<'a> ArticlePage<'a> {
    fn of(article: &'a Article) -> ArticlePage<'a> {
        ArticlePage {
            id: article.id,
            title: &article.content.title,
            category: &article.content.category,
            path: &article.path,
            body_html: &article.content.body_html,
            updated: article.updated_at.format("%Y-%m-%d").to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Category<'a> {
    name: &'a str,
    path: String,
    articles: Vec<ArticlePage<'a>>,
}

/// The path of a category's page.
pub fn category_path(name: &str) -> String {
    format!("/kb/category/{}", knowledge::slug(name))
}

/// Customers' articles by category (categories by name, articles by title).
fn categories(articles: &[Article]) -> Vec<Category<'_>> {
    let mut public: Vec<&Article> = articles.iter().filter(|a| a.is_public()).collect();
    public.sort_by(|a, b| {
        (
            a.content.category.to_lowercase(),
            a.content.title.to_lowercase(),
        )
            .cmp(&(
                b.content.category.to_lowercase(),
                b.content.title.to_lowercase(),
            ))
    });
    let mut categories: Vec<Category<'_>> = Vec::new();
    for article in public {
        match categories.last_mut() {
            Some(last) if last.name.eq_ignore_ascii_case(&article.content.category) => {
                last.articles.push(ArticlePage::of(article));
            }
            _ => categories.push(Category {
                name: &article.content.category,
                path: category_path(&article.content.category),
                articles: vec![ArticlePage::of(article)],
            }),
        }
    }
    categories
}

fn render(name: &str, context: serde_json::Value) -> Result<String, minijinja::Error> {
    ENVIRONMENT
        .get_template(name)?
        .render(minijinja::value::Serde(context))
}

/// The front page: every category with its articles.
pub fn render_index(site: &Site, articles: &[Article]) -> Result<String, minijinja::Error> {
    render(
        "index.html",
        serde_json::json!({ "static_copy": site.static_copy, "hostname": &site.hostname, "categories": categories(articles) }),
    )
}

/// One category's page; None when no customer's article has it.
pub fn render_category(
    site: &Site,
    articles: &[Article],
    slug: &str,
) -> Result<Option<String>, minijinja::Error> {
    let all = categories(articles);
    let Some(category) = all.iter().find(|c| knowledge::slug(c.name) == slug) else {
        return Ok(None);
    };
    render(
        "category.html",
        serde_json::json!({ "static_copy": site.static_copy, "hostname": &site.hostname, "category": category }),
    )
    .map(Some)
}

/// One article's page (the caller has checked that it is public).
pub fn render_article(
    site: &Site,
    article: &Article,
    thanks: bool,
) -> Result<String, minijinja::Error> {
    render(
        "article.html",
        serde_json::json!({ "static_copy": site.static_copy, "hostname": &site.hostname, "article": ArticlePage::of(article), "category_path": category_path(&article.content.category), "thanks": thanks }),
    )
}

/// The search page with the articles that match `query`.
pub fn render_search(
    site: &Site,
    articles: &[Article],
    query: &str,
) -> Result<String, minijinja::Error> {
    let results: Vec<ArticlePage<'_>> = search(articles, query)
        .into_iter()
        .map(ArticlePage::of)
        .collect();
    render(
        "search.html",
        serde_json::json!({ "static_copy": site.static_copy, "hostname": &site.hostname, "query": query, "results": results }),
    )
}

fn render_not_found(site: &Site) -> Result<String, minijinja::Error> {
    render(
        "not_found.html",
        serde_json::json!({ "static_copy": site.static_copy, "hostname": &site.hostname }),
    )
}

/// The public articles with every word of `query` in their title or
/// text (any case), those with all words in the title first.
pub fn search<'a>(articles: &'a [Article], query: &str) -> Vec<&'a Article> {
    let words: Vec<String> = query
        .split_whitespace()
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<(bool, &Article)> = articles
        .iter()
        .filter(|a| a.is_public())
        .filter_map(|a| {
            let title = a.content.title.to_lowercase();
            let text = a.content.body_text.to_lowercase();
            let all = words
                .iter()
                .all(|w| title.contains(w.as_str()) || text.contains(w.as_str()));
            all.then(|| (words.iter().all(|w| title.contains(w.as_str())), a))
        })
        .collect();
    found.sort_by_key(|(in_title, _)| !*in_title);
    found.into_iter().map(|(_, a)| a).collect()
}

/// The help center as files (`kb export --html`): `kb/index.html`,
/// `kb/<id>-<slug>/index.html` per article and
/// `kb/category/<slug>/index.html` per category, so that a web server
/// serving the directory answers the same URLs as postdesk.
pub fn static_pages(articles: &[Article]) -> Result<Vec<(PathBuf, String)>, minijinja::Error> {
    let site = Site {
        hostname: String::new(),
        static_copy: true,
    };
    let mut pages = vec![(
        PathBuf::from("kb/index.html"),
        render_index(&site, articles)?,
    )];
    for category in categories(articles) {
        let slug = knowledge::slug(category.name);
        if let Some(html) = render_category(&site, articles, &slug)? {
            pages.push((
                PathBuf::from(format!("kb/category/{slug}/index.html")),
                html,
            ));
        }
    }
    for article in articles.iter().filter(|a| a.is_public()) {
        let path = article.path.trim_start_matches('/');
        pages.push((
            PathBuf::from(format!("{path}/index.html")),
            render_article(&site, article, false)?,
        ));
    }
    Ok(pages)
}

fn site(app: &App) -> Site {
    Site {
        hostname: app.config.hostname.clone(),
        static_copy: false,
    }
}

async fn public_articles(app: &App) -> Result<Vec<Article>, Response> {
    app.store
        .kb_articles(&ArticleFilter {
            public_only: true,
            ..ArticleFilter::default()
        })
        .await
        .map_err(|err| {
            tracing::error!(%err, "help center: articles");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the articles\n",
            )
                .into_response()
        })
}

fn page(rendered: Result<String, minijinja::Error>) -> Response {
    match rendered {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(%err, "help center: template");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot show this page\n").into_response()
        }
    }
}

fn not_found(app: &App) -> Response {
    let mut response = page(render_not_found(&site(app)));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// The value of `name` in a query string or form body.
fn form_value(data: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(data)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn index(State(app): State<Arc<App>>) -> Response {
    match public_articles(&app).await {
        Ok(articles) => page(render_index(&site(&app), &articles)),
        Err(response) => response,
    }
}

async fn category_page(State(app): State<Arc<App>>, Path(slug): Path<String>) -> Response {
    let articles = match public_articles(&app).await {
        Ok(articles) => articles,
        Err(response) => return response,
    };
    match render_category(&site(&app), &articles, &slug) {
        Ok(Some(html)) => Html(html).into_response(),
        Ok(None) => not_found(&app),
        Err(err) => page(Err(err)),
    }
}

async fn search_page(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let query = query
        .and_then(|q| form_value(q.as_bytes(), "q"))
        .unwrap_or_default();
    match public_articles(&app).await {
        Ok(articles) => page(render_search(&site(&app), &articles, query.trim())),
        Err(response) => response,
    }
}

/// The article of a path segment if customers may see it.
async fn public_article(app: &App, segment: &str) -> Result<Option<Article>, Response> {
    let Some(id) = knowledge::article_id_of_segment(segment) else {
        return Ok(None);
    };
    match app.store.kb_article(id).await {
        Ok(article) => Ok(article.filter(Article::is_public)),
        Err(err) => {
            tracing::error!(%err, "help center: article");
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the article\n",
            )
                .into_response())
        }
    }
}

async fn article_page(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let article = match public_article(&app, &segment).await {
        Ok(Some(article)) => article,
        Ok(None) => return not_found(&app),
        Err(response) => return response,
    };
    // Old words in the link (the title changed): the current address.
    if format!("/kb/{segment}") != article.path {
        return Redirect::permanent(&article.path).into_response();
    }
    let thanks = query.is_some_and(|q| form_value(q.as_bytes(), "thanks").is_some());
    // Counted for `kb report`; a failure to count costs the reader nothing.
    if !thanks && let Err(err) = app.store.kb_count_view(article.id).await {
        tracing::warn!(%err, article = article.id, "help center: view not counted");
    }
    page(render_article(&site(&app), &article, thanks))
}

/// "Did this help?": counts the answer, then shows the article again with
/// a thank-you (POST, then redirect, so that a reload does not count twice).
async fn feedback(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    let article = match public_article(&app, &segment).await {
        Ok(Some(article)) => article,
        Ok(None) => return not_found(&app),
        Err(response) => return response,
    };
    let helped = match form_value(&body, "helped").as_deref() {
        Some("yes") => true,
        Some("no") => false,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "helped must be yes or no\n",
            )
                .into_response();
        }
    };
    if let Err(err) = app
        .store
        .kb_record_feedback(article.id, helped, chrono::Utc::now())
        .await
    {
        tracing::error!(%err, "help center: feedback");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot count the answer\n",
        )
            .into_response();
    }
    Redirect::to(&format!("{}?thanks=1", article.path)).into_response()
}

/// The ticket and article of a "this solved my problem" link whose token
/// is theirs; None for anything else (a guessed or altered link).
fn solved_link(app: &App, ticket: &str, article: &str, token: &str) -> Option<(i64, i64)> {
    let ticket: i64 = ticket.parse().ok().filter(|n| *n > 0)?;
    let article: i64 = article.parse().ok().filter(|n| *n > 0)?;
    app.kb_links
        .verify(ticket, article, token)
        .then_some((ticket, article))
}

fn render_solved(app: &App, ticket: i64, article: i64, state: &str) -> Response {
    page(render(
        "solved.html",
        serde_json::json!({
            "static_copy": false,
            "hostname": &app.config.hostname,
            "ticket": ticket,
            "state": state,
            "path": app.kb_links.path(ticket, article),
        }),
    ))
}

fn server_error(what: &str, err: impl std::fmt::Display) -> Response {
    tracing::error!(%err, "help center: {what}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("cannot {what} now; please try again later\n"),
    )
        .into_response()
}

/// Whether the ticket is done (resolved or closed) already.
async fn ticket_done(app: &App, ticket: i64) -> Result<Option<bool>, Response> {
    use crate::domain::ticket::Status;
    match app.store.ticket(ticket).await {
        Ok(t) => Ok(Some(matches!(t.status, Status::Resolved | Status::Closed))),
        Err(crate::store::StoreError::NotFound(_)) => Ok(None),
        Err(err) => Err(server_error("read the request", err)),
    }
}

/// The acknowledgement's "this solved my problem" link: a page that asks
/// to confirm with a button (a POST). A GET changes nothing, because mail
/// scanners and link previews follow every link of a mail.
async fn solved_page(
    State(app): State<Arc<App>>,
    Path((ticket, article, token)): Path<(String, String, String)>,
) -> Response {
    let Some((ticket, article)) = solved_link(&app, &ticket, &article, &token) else {
        return not_found(&app);
    };
    match ticket_done(&app, ticket).await {
        Ok(Some(true)) => render_solved(&app, ticket, article, "already"),
        Ok(Some(false)) => render_solved(&app, ticket, article, "confirm"),
        Ok(None) => not_found(&app),
        Err(response) => response,
    }
}

/// Confirmed: counts "helped yes" for the article (once per ticket) and
/// resolves the ticket through the one ticket-change operation. A second
/// use changes nothing.
async fn solved(
    State(app): State<Arc<App>>,
    Path((ticket, article, token)): Path<(String, String, String)>,
) -> Response {
    use crate::domain::change::{ChangeRequest, TicketChange};
    use crate::domain::ticket::Status;
    let Some((ticket, article)) = solved_link(&app, &ticket, &article, &token) else {
        return not_found(&app);
    };
    let done = match ticket_done(&app, ticket).await {
        Ok(Some(done)) => done,
        Ok(None) => return not_found(&app),
        Err(response) => return response,
    };
    let now = chrono::Utc::now();
    let counted = match app.store.kb_record_solved(ticket, article, now).await {
        Ok(counted) => counted,
        Err(err) => return server_error("note your answer", err),
    };
    if !counted || done {
        return render_solved(&app, ticket, article, "already");
    }
    let request = ChangeRequest::administrative(
        TicketChange {
            status: Some(Status::Resolved),
            ..TicketChange::default()
        },
        format!("the customer said article {article} solved the problem (help center link)"),
        "customer",
        now,
    );
    match app.store.change_ticket(ticket, &request).await {
        Ok(_) => render_solved(&app, ticket, article, "done"),
        Err(err) => server_error("resolve the request", err),
    }
}
