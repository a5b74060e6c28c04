//! The weekly report mail: at `[reports] weekly` (in the report
//! calendar's time zone) every active lead and admin gets the last seven
//! days' report of their queues, with the three charts as inline PNG
//! images and a signed link to the report page.
//!
//! Once per period however many nodes run: the period's row in
//! `report_mailings` is claimed in the transaction that queues the mails
//! (`Store::queue_report_mail`), as escalations claim their breaches. A
//! node that was down at the hour sends it when it comes back, within
//! [`CATCH_UP`]; later, that week's mail is skipped.

use super::charts::{self, Chart};
use super::{LinkKey, ReportError, ReportRequest};
use crate::App;
use crate::domain::outgoing::OutgoingMail;
use crate::domain::permission::AgentRole;
use crate::domain::report::{self, Report, format_hours};
use crate::net::Shutdown;
use chrono::{DateTime, Duration, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use serde_json::json;
use std::sync::Arc;

/// How late a period's mail may still go out (a node down at the hour).
pub const CATCH_UP: Duration = Duration::hours(12);

/// How long the link in the mail opens the report page.
pub const LINK_VALID: Duration = Duration::days(14);

/// The longest sleep between looks at the schedule.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// What a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// No mail configured, or none due at `now`.
    NotDue,
    /// This period's mail was queued before (here or on another node).
    AlreadySent(String),
    /// Queued now: the period and the recipients.
    Queued(String, Vec<String>),
}

/// Queues the report mail of the period due at `now`, if one is due and
/// was not sent yet.
pub async fn run_due(app: &App, now: DateTime<Utc>) -> Result<Sent, ReportError> {
    let Some(schedule) = app.config.reports.weekly else {
        return Ok(Sent::NotDue);
    };
    let rules = app.rules.current();
    let tz = super::report_calendar(&app.config, &rules)?.time_zone();
    let Some((at, from, to)) = report::last_weekly(schedule.weekday, schedule.time, tz, now) else {
        return Ok(Sent::NotDue);
    };
    if now - at > CATCH_UP {
        return Ok(Sent::NotDue);
    }
    let period = format!("weekly {}", at.to_rfc3339());
    if app
        .store
        .report_mailings()
        .await?
        .iter()
        .any(|(p, _, _)| *p == period)
    {
        return Ok(Sent::AlreadySent(period));
    }
    let key = LinkKey::load(&app.store).await?;
    let queues = app.queues().await?;
    let Some(sender) = queues.first().map(|q| q.address.clone()) else {
        return Ok(Sent::NotDue);
    };
    let local = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
    let request = ReportRequest {
        from: Some(local(from)),
        // The last day of the period (the day before the mail's).
        to: Some(local(to) - Duration::days(1)),
        by: None,
        queue: None,
        agent: None,
    };
    let mut mails = Vec::new();
    let mut recipients = Vec::new();
    for agent in app.store.agents().await? {
        if !agent.is_active() || agent.role == AgentRole::Agent {
            continue;
        }
        let actor = crate::domain::permission::Actor {
            id: agent.id,
            email: agent.email.clone(),
            role: agent.role,
            queues: agent.queues.clone(),
        };
        let report = super::build(
            &app.store,
            &app.config,
            rules.clone(),
            Some(&actor),
            &request,
            now,
        )
        .await?;
        let link = format!(
            "{}/reports?{}",
            app.config.reports_url(),
            key.link_query(agent.id, now + LINK_VALID)
        );
        let message_id = app.own_ids.mint(0);
        let subject = format!(
            "Weekly report {} to {}",
            local(from),
            local(to) - Duration::days(1)
        );
        let raw = compose(
            &report,
            &sender,
            &agent.email,
            &message_id,
            &subject,
            &link,
            now,
        )?;
        mails.push(OutgoingMail {
            message_id,
            mail_from: sender.clone(),
            rcpt_to: agent.email.clone(),
            sender: sender.clone(),
            from_name: Some("postdesk reports".into()),
            subject,
            raw,
        });
        recipients.push(agent.email);
    }
    if app.store.queue_report_mail(&period, &mails, now).await? {
        tracing::info!(%period, recipients = recipients.len(), "weekly report mail queued");
        Ok(Sent::Queued(period, recipients))
    } else {
        Ok(Sent::AlreadySent(period))
    }
}

/// The mail: a text part, an HTML part with the figures and the charts
/// (inline PNG images, `cid:` references), and the link.
fn compose(
    report: &Report,
    from: &str,
    to: &str,
    message_id: &str,
    subject: &str,
    link: &str,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, ReportError> {
    let t = &report.total;
    let lines = [
        ("Tickets created", t.created.to_string()),
        ("Tickets resolved", t.resolved.to_string()),
        ("Reopened", t.reopened.to_string()),
        ("Backlog (open at the end)", t.backlog.to_string()),
        (
            "First response, median / p90",
            format!(
                "{} / {}",
                format_hours(t.first_response.median_hours),
                format_hours(t.first_response.p90_hours)
            ),
        ),
        (
            "Next response, median / p90",
            format!(
                "{} / {}",
                format_hours(t.next_response.median_hours),
                format_hours(t.next_response.p90_hours)
            ),
        ),
        (
            "Resolution, median / p90",
            format!(
                "{} / {}",
                format_hours(t.resolution.median_hours),
                format_hours(t.resolution.p90_hours)
            ),
        ),
        (
            "First-response SLA met",
            percent(t.sla_first_response.percent),
        ),
        (
            "Next-response SLA met",
            percent(t.sla_next_response.percent),
        ),
        ("Resolution SLA met", percent(t.sla_resolution.percent)),
        (
            "Satisfaction (good/okay/bad)",
            format!(
                "{}/{}/{} ({} good)",
                t.satisfaction.good,
                t.satisfaction.okay,
                t.satisfaction.bad,
                percent(t.satisfaction.percent_good)
            ),
        ),
        ("Time spent", format!("{} min", t.time_spent_minutes)),
    ];
    let mut text = format!("{subject} (business hours)\n\n");
    for (label, value) in &lines {
        text.push_str(&format!("{label:<32} {value}\n"));
    }
    text.push_str(&format!("\nThe whole report: {link}\n"));
    let html = render_html(subject, &lines, report, link)?;
    // text | (html + the images it shows): what a mail client expects of
    // a page with pictures (RFC 2387).
    let mut related = vec![MimePart::new("text/html", html)];
    for chart in Chart::ALL {
        related.push(
            MimePart::new("image/png", charts::png(report, chart)?)
                .inline()
                .cid(chart.file_name()),
        );
    }
    let body = MimePart::new(
        "multipart/alternative",
        vec![
            MimePart::new("text/plain", text),
            MimePart::new("multipart/related", related),
        ],
    );
    let builder = MessageBuilder::new()
        .from(("postdesk reports", from))
        .to(to)
        .subject(subject)
        .message_id(message_id)
        .date(now.timestamp())
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .body(body);
    builder
        .write_to_vec()
        .map_err(|err| ReportError::Mail(err.to_string()))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1}%"))
}

fn render_html(
    subject: &str,
    lines: &[(&str, String)],
    report: &Report,
    link: &str,
) -> Result<String, ReportError> {
    const TEMPLATE: &str = include_str!("../../templates/reports/mail.html");
    let mut env = minijinja::Environment::new();
    env.add_template("mail.html", TEMPLATE)
        .map_err(|err| ReportError::Mail(err.to_string()))?;
    let charts: Vec<_> = Chart::ALL
        .iter()
        .map(|c| json!({"title": c.title(), "cid": c.file_name()}))
        .collect();
    let articles: Vec<_> = report.articles.iter().take(5).collect();
    env.get_template("mail.html")
        .and_then(|t| {
            t.render(minijinja::value::Serde(json!({
                "subject": subject,
                "lines": lines,
                "charts": charts,
                "articles": articles,
                "link": link,
            })))
        })
        .map_err(|err| ReportError::Mail(err.to_string()))
}

/// Looks at the schedule every minute (and at the instant itself) and
/// queues each period's mail once.
pub async fn run(app: Arc<App>, mut shutdown: Shutdown) {
    if app.config.reports.weekly.is_none() {
        return;
    }
    loop {
        match run_due(&app, Utc::now()).await {
            Ok(Sent::Queued(period, to)) => {
                tracing::debug!(%period, recipients = to.len(), "report mail");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "weekly report mail not sent; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(MAX_SLEEP) => {}
            _ = shutdown.stopped() => return,
        }
    }
}
