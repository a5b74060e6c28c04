//! The report page (`/reports`) for leads and admins: the figures of
//! `postdesk report` with filters, the charts as inline SVG, and a CSV
//! download. Sign-in with postdesk credentials (the same throttled check
//! as IMAP and submission) sets a signed session cookie; the signed link
//! in the weekly report mail does the same for the agent it names. An
//! agent who is not a lead or admin gets 403.

use crate::App;
use crate::domain::permission::{AgentRole, may_read_reports};
use crate::domain::report::{GroupBy, Report, ReportRow, format_hours, to_csv};
use crate::reports::charts::{self, Chart};
use crate::reports::{LinkKey, ReportError, ReportRequest};
use crate::store::LoginAgent;
use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{Duration, Utc};
use minijinja::Environment;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

const COOKIE: &str = "postdesk_report";
/// How long a sign-in lasts.
const SESSION: Duration = Duration::hours(12);
/// The largest sign-in form taken.
const MAX_FORM: usize = 16 * 1024;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/reports/layout.html"),
    ),
    (
        "login.html",
        include_str!("../../templates/reports/login.html"),
    ),
    (
        "forbidden.html",
        include_str!("../../templates/reports/forbidden.html"),
    ),
    (
        "report.html",
        include_str!("../../templates/reports/report.html"),
    ),
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(%err, template = name, "report page template");
        }
    }
    env
});

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/reports", get(page))
        .route("/reports/csv", get(csv))
        .route("/reports/login", get(login_form).post(login))
        .route("/reports/logout", get(logout))
}

fn render(status: StatusCode, template: &str, context: serde_json::Value) -> Response {
    match ENVIRONMENT
        .get_template(template)
        .and_then(|t| t.render(minijinja::value::Serde(context)))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(%err, template, "report page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the page\n",
            )
                .into_response()
        }
    }
}

fn forbidden(reason: &str) -> Response {
    render(
        StatusCode::FORBIDDEN,
        "forbidden.html",
        json!({ "reason": reason }),
    )
}

fn failed(err: impl std::fmt::Display) -> Response {
    tracing::error!(%err, "report page");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the report cannot be made now\n",
    )
        .into_response()
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn session_cookie(value: &str) -> String {
    format!(
        "{COOKIE}={value}; Path=/reports; HttpOnly; SameSite=Lax; Max-Age={}",
        SESSION.num_seconds()
    )
}

/// An agent by id, as a login reads them (role, queues, session epoch);
/// None when they cannot log in any more.
async fn agent_by_id(app: &App, id: i64) -> Result<Option<LoginAgent>, crate::store::StoreError> {
    let Some(agent) = app.store.agents().await?.into_iter().find(|a| a.id == id) else {
        return Ok(None);
    };
    app.store.login_agent(&agent.email).await
}

/// Who is signed in: the cookie's agent, if the cookie holds and their
/// sessions did not end since (new password, disabled).
async fn viewer(app: &App, headers: &HeaderMap) -> Result<Option<LoginAgent>, Response> {
    let key = LinkKey::load(&app.store).await.map_err(failed)?;
    let Some((id, epoch)) = cookie(headers, COOKIE).and_then(|v| key.check_session(&v, Utc::now()))
    else {
        return Ok(None);
    };
    match agent_by_id(app, id).await {
        Ok(Some(agent)) if agent.epoch == epoch => Ok(Some(agent)),
        Ok(_) => Ok(None),
        Err(err) => Err(failed(err)),
    }
}

/// The signed-in lead or admin, or the response to send instead: the
/// sign-in page, or 403 for an agent.
async fn authorized(app: &App, headers: &HeaderMap) -> Result<LoginAgent, Response> {
    match viewer(app, headers).await? {
        None => Err(Redirect::to("/reports/login").into_response()),
        Some(agent) => match may_read_reports(&agent.actor()) {
            Ok(()) => Ok(agent),
            Err(denied) => Err(forbidden(&denied.to_string())),
        },
    }
}

/// The report a page's query asks for.
fn request_of(query: &HashMap<String, String>) -> Result<ReportRequest, ReportError> {
    let text = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let by = match text("by") {
        Some(by) => by.parse::<GroupBy>().map_err(ReportError::Invalid)?,
        None => GroupBy::Day,
    };
    Ok(ReportRequest {
        from: text("from")
            .map(|d| ReportRequest::parse_day(d, "from"))
            .transpose()?,
        to: text("to")
            .map(|d| ReportRequest::parse_day(d, "to"))
            .transpose()?,
        by: Some(by),
        queue: text("queue").map(str::to_string),
        agent: text("agent").map(str::to_string),
        time_zone: None,
    })
}

/// The last 28 days when the page names no period.
fn with_default_period(mut request: ReportRequest, app: &App) -> ReportRequest {
    if request.from.is_none() && request.to.is_none() {
        let tz = crate::reports::time_zone(&app.config, &app.rules.current());
        let today = Utc::now().with_timezone(&tz).date_naive();
        request.from = Some(today - Duration::days(27));
    }
    request
}

async fn page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query_map(query.as_deref());
    // A signed link from the report mail: sign its agent in.
    if let (Some(agent), Some(expires), Some(sig)) =
        (query.get("agent"), query.get("expires"), query.get("sig"))
    {
        let key = match LinkKey::load(&app.store).await {
            Ok(key) => key,
            Err(err) => return failed(err),
        };
        let checked = match (agent.parse::<i64>(), expires.parse::<i64>()) {
            (Ok(agent), Ok(expires)) => key.check_link(agent, expires, sig, Utc::now()),
            _ => None,
        };
        let Some(id) = checked else {
            return forbidden("This link is not valid (any more): sign in instead.");
        };
        return match agent_by_id(&app, id).await {
            Ok(Some(agent)) => (
                [(
                    header::SET_COOKIE,
                    session_cookie(&key.session(agent.id, agent.epoch, Utc::now() + SESSION)),
                )],
                Redirect::to("/reports"),
            )
                .into_response(),
            Ok(None) => forbidden("This link's agent cannot sign in any more."),
            Err(err) => failed(err),
        };
    }
    let agent = match authorized(&app, &headers).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let actor = agent.actor();
    let (request, error) = match request_of(&query) {
        Ok(request) => (with_default_period(request, &app), None),
        Err(err) => (
            with_default_period(
                ReportRequest {
                    by: Some(GroupBy::Day),
                    ..ReportRequest::default()
                },
                &app,
            ),
            Some(err.to_string()),
        ),
    };
    let built = crate::reports::build(
        &app.store,
        &app.config,
        app.rules.current(),
        Some(&actor),
        &request,
        Utc::now(),
    )
    .await;
    let (report, error) = match built {
        Ok(report) => (report, error),
        Err(ReportError::Invalid(message)) => {
            // Show the page with the problem, and the default report.
            let fallback = with_default_period(
                ReportRequest {
                    by: Some(GroupBy::Day),
                    ..ReportRequest::default()
                },
                &app,
            );
            match crate::reports::build(
                &app.store,
                &app.config,
                app.rules.current(),
                Some(&actor),
                &fallback,
                Utc::now(),
            )
            .await
            {
                Ok(report) => (report, Some(message)),
                Err(err) => return failed(err),
            }
        }
        Err(ReportError::Denied(denied)) => return forbidden(&denied.to_string()),
        Err(err) => return failed(err),
    };
    let queues: Vec<String> = match actor.role {
        AgentRole::Admin => match app.queues().await {
            Ok(queues) => queues.iter().map(|q| q.name.clone()).collect(),
            Err(err) => return failed(err),
        },
        _ => actor.queues.clone(),
    };
    let mut charts_svg = Vec::new();
    for chart in Chart::ALL {
        match charts::svg(&report, chart) {
            Ok(svg) => {
                charts_svg.push(json!({"title": chart.title(), "svg": strip_xml_declaration(&svg)}))
            }
            Err(err) => return failed(err),
        }
    }
    let filters = json!({
        "from": request.from.map(|d| d.to_string()).unwrap_or_default(),
        "to": request.to.map(|d| d.to_string()).unwrap_or_default(),
        "queue": request.queue.clone().unwrap_or_default(),
        "agent": request.agent.clone().unwrap_or_default(),
        "by": request.by.unwrap_or(GroupBy::Day).to_string(),
    });
    let csv_query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            [
                ("from", request.from.map(|d| d.to_string())),
                ("to", request.to.map(|d| d.to_string())),
                ("queue", request.queue.clone()),
                ("agent", request.agent.clone()),
                ("by", request.by.map(|b| b.to_string())),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v))),
        )
        .finish();
    let rows: Vec<serde_json::Value> = report
        .rows
        .iter()
        .map(|r| row_view(r, false))
        .chain(std::iter::once(row_view(&report.total, true)))
        .collect();
    render(
        StatusCode::OK,
        "report.html",
        json!({
            "viewer": agent.email,
            "period": period_text(&report),
            "filters": filters,
            "queues": queues,
            "csv_link": format!("/reports/csv?{csv_query}"),
            "error": error,
            "summary": summary(&report),
            "charts": charts_svg,
            "rows": rows,
            "articles": report.articles,
        }),
    )
}

/// An SVG document's `<?xml …?>` line does not belong inside HTML.
fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    }
}

fn period_text(report: &Report) -> String {
    let tz: chrono_tz::Tz = report.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let day = |at: chrono::DateTime<Utc>| at.with_timezone(&tz).date_naive();
    let last = day(report.to - Duration::seconds(1));
    match report.from {
        Some(from) => format!("{} to {last} ({})", day(from), report.time_zone),
        None => format!("up to {last} ({})", report.time_zone),
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1}%"))
}

fn summary(report: &Report) -> Vec<(String, String)> {
    let t = &report.total;
    let time = |s: &crate::domain::report::TimeStat| {
        format!(
            "{} / {} ({} measured)",
            format_hours(s.median_hours),
            format_hours(s.p90_hours),
            s.count
        )
    };
    vec![
        ("Tickets created".into(), t.created.to_string()),
        ("Tickets resolved".into(), t.resolved.to_string()),
        ("Reopened".into(), t.reopened.to_string()),
        ("Backlog".into(), t.backlog.to_string()),
        (
            "First response, median / p90".into(),
            time(&t.first_response),
        ),
        ("Next response, median / p90".into(), time(&t.next_response)),
        ("Resolution, median / p90".into(), time(&t.resolution)),
        (
            "First-response SLA met".into(),
            percent(t.sla_first_response.percent),
        ),
        (
            "Next-response SLA met".into(),
            percent(t.sla_next_response.percent),
        ),
        (
            "Resolution SLA met".into(),
            percent(t.sla_resolution.percent),
        ),
        (
            "Satisfaction good / okay / bad".into(),
            format!(
                "{} / {} / {} ({} good)",
                t.satisfaction.good,
                t.satisfaction.okay,
                t.satisfaction.bad,
                percent(t.satisfaction.percent_good)
            ),
        ),
        ("Time spent".into(), format!("{} min", t.time_spent_minutes)),
    ]
}

fn row_view(r: &ReportRow, total: bool) -> serde_json::Value {
    let pair = |s: &crate::domain::report::TimeStat| {
        format!(
            "{} / {}",
            format_hours(s.median_hours),
            format_hours(s.p90_hours)
        )
    };
    json!({
        "total": total,
        "key": r.key,
        "created": r.created,
        "resolved": r.resolved,
        "reopened": r.reopened,
        "backlog": r.backlog,
        "first": pair(&r.first_response),
        "next": pair(&r.next_response),
        "resolution": pair(&r.resolution),
        "sla": format!(
            "{} / {} / {}",
            percent(r.sla_first_response.percent),
            percent(r.sla_next_response.percent),
            percent(r.sla_resolution.percent)
        ),
        "satisfaction": format!("{} / {} / {}", r.satisfaction.good, r.satisfaction.okay, r.satisfaction.bad),
        "time": format!("{} min", r.time_spent_minutes),
    })
}

async fn csv(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let agent = match authorized(&app, &headers).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let request = match request_of(&query_map(query.as_deref())) {
        Ok(request) => with_default_period(request, &app),
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    match crate::reports::build(
        &app.store,
        &app.config,
        app.rules.current(),
        Some(&agent.actor()),
        &request,
        Utc::now(),
    )
    .await
    {
        Ok(report) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"postdesk-report.csv\"",
                ),
            ],
            to_csv(&report),
        )
            .into_response(),
        Err(ReportError::Invalid(message)) => {
            (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
        }
        Err(ReportError::Denied(denied)) => forbidden(&denied.to_string()),
        Err(err) => failed(err),
    }
}

async fn login_form() -> Response {
    render(StatusCode::OK, "login.html", json!({}))
}

async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/reports; HttpOnly; SameSite=Lax; Max-Age=0"),
        )],
        Redirect::to("/reports/login"),
    )
        .into_response()
}

async fn login(State(app): State<Arc<App>>, request: Request) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let body = match axum::body::to_bytes(request.into_body(), MAX_FORM).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "form too large\n").into_response(),
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (Some(email), Some(password)) = (form.get("email"), form.get("password")) else {
        return render(
            StatusCode::BAD_REQUEST,
            "login.html",
            json!({"error": "Give your address and password."}),
        );
    };
    let agent = match app.authenticate(email.trim(), password, ip, "http").await {
        Ok(Some(agent)) => agent,
        Ok(None) => {
            return render(
                StatusCode::UNAUTHORIZED,
                "login.html",
                json!({"error": "Wrong address or password."}),
            );
        }
        Err(err) => return failed(err),
    };
    if let Err(denied) = may_read_reports(&agent.actor()) {
        return forbidden(&denied.to_string());
    }
    let key = match LinkKey::load(&app.store).await {
        Ok(key) => key,
        Err(err) => return failed(err),
    };
    (
        [(
            header::SET_COOKIE,
            session_cookie(&key.session(agent.id, agent.epoch, Utc::now() + SESSION)),
        )],
        Redirect::to("/reports"),
    )
        .into_response()
}
