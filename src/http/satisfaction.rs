//! The satisfaction survey's page. The links in the survey mail
//! (`/satisfaction/TOKEN?rating=good`) open a page with that rating picked
//! and a comment box; the customer's "Send" (a POST) records it. A token
//! rates once: following a link again shows "already rated" with the
//! rating that counts, and a comment can be added once after the rating
//! (it is not replaced). Without a rating in the link the page asks for
//! one. Server-rendered, plain HTML forms, no script.
//!
//! Why a GET records nothing: mail scanners of corporate filters follow
//! every link of a mail before the customer sees it. Recording on GET let
//! the first link a scanner followed ("good") rate the ticket and use up
//! the single-use token, so the customer's own answer was refused.

use crate::App;
use crate::domain::satisfaction::{self, Rating};
use crate::ingest::satisfaction as survey;
use crate::store::{Rated, SurveyState};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::Environment;
use std::sync::{Arc, LazyLock};

/// The longest comment kept (characters).
pub const MAX_COMMENT: usize = 4000;

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    if let Err(err) = env.add_template(
        "page.html",
        include_str!("../../templates/satisfaction/page.html"),
    ) {
        tracing::error!(%err, "satisfaction page template");
    }
    env
});

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/satisfaction/{token}", get(show).post(answer))
}

/// What the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    Unknown,
    Ask,
    /// A link's rating, picked, for the customer to send.
    Confirm,
    Thanks,
    Already,
    Commented,
}

impl PageState {
    fn as_str(self) -> &'static str {
        match self {
            PageState::Unknown => "unknown",
            PageState::Ask => "ask",
            PageState::Confirm => "confirm",
            PageState::Thanks => "thanks",
            PageState::Already => "already",
            PageState::Commented => "commented",
        }
    }
}

/// Renders the page.
pub fn render_page(
    hostname: &str,
    state: PageState,
    token: &str,
    survey: Option<&SurveyState>,
    rating: Option<Rating>,
) -> Result<String, minijinja::Error> {
    let can_comment = matches!(state, PageState::Thanks | PageState::Already)
        && survey.is_some_and(|s| s.comment.is_none());
    ENVIRONMENT
        .get_template("page.html")?
        .render(minijinja::value::Serde(serde_json::json!({
            "state": state.as_str(),
            "hostname": hostname,
            "action": format!("/satisfaction/{token}"),
            "ticket": survey.map(|s| s.ticket),
            "rating": rating.map(|r| r.as_str()),
            "comment": survey.and_then(|s| s.comment.clone()),
            "can_comment": can_comment,
            "max_comment": MAX_COMMENT,
        })))
}

fn page(
    app: &App,
    status: StatusCode,
    state: PageState,
    token: &str,
    survey: Option<&SurveyState>,
    rating: Option<Rating>,
) -> Response {
    match render_page(&app.config.hostname, state, token, survey, rating) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(%err, "satisfaction page");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot show this page\n").into_response()
        }
    }
}

fn failed(what: &str, err: impl std::fmt::Display) -> Response {
    tracing::error!(%err, "satisfaction: {what}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the answer could not be recorded; please try again later\n",
    )
        .into_response()
}

fn form_value(data: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(data)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The survey of a token, or the "not valid" page.
async fn find(app: &App, token: &str) -> Result<SurveyState, Response> {
    let unknown = || {
        page(
            app,
            StatusCode::NOT_FOUND,
            PageState::Unknown,
            token,
            None,
            None,
        )
    };
    if !satisfaction::plausible_token(token) {
        return Err(unknown());
    }
    match app
        .store
        .survey_by_token(&satisfaction::token_hash(token))
        .await
    {
        Ok(Some(survey)) => Ok(survey),
        Ok(None) => Err(unknown()),
        Err(err) => Err(failed("find the survey", err)),
    }
}

/// Records `rating` (once), with the comment sent along, and shows the
/// page that follows.
async fn record(
    app: &App,
    token: &str,
    survey: SurveyState,
    rating: Rating,
    comment: &str,
) -> Response {
    match survey::rate(app, &survey, rating, None, None, chrono::Utc::now()).await {
        Ok(Rated::Recorded { .. }) => {
            let survey = SurveyState {
                rating: Some(rating),
                ..survey
            };
            if comment.is_empty() {
                return page(
                    app,
                    StatusCode::OK,
                    PageState::Thanks,
                    token,
                    Some(&survey),
                    Some(rating),
                );
            }
            add_comment(app, token, survey, rating, comment).await
        }
        Ok(Rated::Already { rating, .. }) => page(
            app,
            StatusCode::OK,
            PageState::Already,
            token,
            Some(&survey),
            Some(rating),
        ),
        Ok(Rated::Unknown) => page(
            app,
            StatusCode::NOT_FOUND,
            PageState::Unknown,
            token,
            None,
            None,
        ),
        Err(err) => failed("record the rating", err),
    }
}

/// Adds the comment (once) to a rated survey.
async fn add_comment(
    app: &App,
    token: &str,
    survey: SurveyState,
    rating: Rating,
    comment: &str,
) -> Response {
    match survey::comment(app, &survey, comment, chrono::Utc::now()).await {
        Ok(true) => {
            let survey = SurveyState {
                comment: Some(comment.to_string()),
                ..survey
            };
            page(
                app,
                StatusCode::OK,
                PageState::Commented,
                token,
                Some(&survey),
                Some(rating),
            )
        }
        Ok(false) => page(
            app,
            StatusCode::OK,
            PageState::Already,
            token,
            Some(&survey),
            Some(rating),
        ),
        Err(err) => failed("record the comment", err),
    }
}

async fn show(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let survey = match find(&app, &token).await {
        Ok(survey) => survey,
        Err(response) => return response,
    };
    let asked = query.and_then(|q| form_value(q.as_bytes(), "rating"));
    match (asked.map(|r| r.parse::<Rating>()), survey.rating) {
        (_, Some(rating)) => page(
            &app,
            StatusCode::OK,
            PageState::Already,
            &token,
            Some(&survey),
            Some(rating),
        ),
        (Some(Ok(rating)), None) => page(
            &app,
            StatusCode::OK,
            PageState::Confirm,
            &token,
            Some(&survey),
            Some(rating),
        ),
        (Some(Err(_)) | None, None) => page(
            &app,
            StatusCode::OK,
            PageState::Ask,
            &token,
            Some(&survey),
            None,
        ),
    }
}

/// The page's forms: a rating (the ask page), or a comment.
async fn answer(State(app): State<Arc<App>>, Path(token): Path<String>, body: Bytes) -> Response {
    let survey = match find(&app, &token).await {
        Ok(survey) => survey,
        Err(response) => return response,
    };
    let comment: String = form_value(&body, "comment")
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_COMMENT)
        .collect();
    if let Some(rating) = form_value(&body, "rating") {
        return match rating.parse::<Rating>() {
            Ok(rating) => record(&app, &token, survey, rating, &comment).await,
            Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
        };
    }
    let Some(rating) = survey.rating else {
        return page(
            &app,
            StatusCode::OK,
            PageState::Ask,
            &token,
            Some(&survey),
            None,
        );
    };
    if comment.is_empty() {
        return page(
            &app,
            StatusCode::OK,
            PageState::Already,
            &token,
            Some(&survey),
            Some(rating),
        );
    }
    add_comment(&app, &token, survey, rating, &comment).await
}
