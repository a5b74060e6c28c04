//! The weekly report mail: at `[reports] weekly` every active lead and
//! admin gets the last seven days' report of their queues, with the three
//! charts as inline PNG images and a signed link to the report page. The
//! hour and the days are those of their own time zone (`agent set
//! --time-zone`), else of the report calendar.
//!
//! Once per period and zone however many nodes run: the period's row in
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
use crate::store::Agent;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How late a period's mail may still go out (a node down at the hour).
pub const CATCH_UP: Duration = Duration::hours(12);

/// How long the link in the mail opens the report page.
pub const LINK_VALID: Duration = Duration::days(14);

/// The longest sleep between looks at the schedule.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// What a round did for the leads and admins of one time zone whose mail
/// was due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// This period's mail was queued before (here or on another node).
    AlreadySent(String),
    /// Queued now: the period and the recipients.
    Queued(String, Vec<String>),
}

/// The key a period's mail is claimed under: the instant it is due, and
/// the zone when it is not the report calendar's (mail claimed before
/// leads had zones keeps its key).
fn period_key(at: DateTime<Utc>, tz: Tz, report_tz: Tz) -> String {
    if tz == report_tz {
        format!("weekly {}", at.to_rfc3339())
    } else {
        format!("weekly {} {}", at.to_rfc3339(), tz.name())
    }
}

/// Queues the report mail of each lead and admin whose weekly hour (in
/// their own time zone, else the report calendar's) came within
/// [`CATCH_UP`] before `now`, unless it was sent for that period: one
/// entry per zone that was due (none: nothing due).
pub async fn run_due(app: &App, now: DateTime<Utc>) -> Result<Vec<Sent>, ReportError> {
    let Some(schedule) = app.config.reports.weekly else {
        return Ok(Vec::new());
    };
    let rules = app.rules.current();
    let report_tz = super::report_calendar(&app.config, &rules)?.time_zone();
    let mut zones: BTreeMap<&'static str, (Tz, Vec<Agent>)> = BTreeMap::new();
    for agent in app.store.agents().await? {
        if !agent.is_active() || agent.role == AgentRole::Agent {
            continue;
        }
        let tz = match agent.time_zone.as_deref().map(str::parse::<Tz>) {
            None => report_tz,
            Some(Ok(tz)) => tz,
            Some(Err(_)) => {
                tracing::warn!(agent = %agent.email, zone = ?agent.time_zone, "unknown time zone: the report calendar's is used");
                report_tz
            }
        };
        zones
            .entry(tz.name())
            .or_insert_with(|| (tz, Vec::new()))
            .1
            .push(agent);
    }
    let mut sent = Vec::new();
    let mut claimed: Option<Vec<String>> = None;
    for (tz, agents) in zones.into_values() {
        let Some((at, from, to)) = report::last_weekly(schedule.weekday, schedule.time, tz, now)
        else {
            continue;
        };
        if now - at > CATCH_UP {
            continue;
        }
        let period = period_key(at, tz, report_tz);
        if claimed.is_none() {
            let mailings = app.store.report_mailings().await?;
            claimed = Some(mailings.into_iter().map(|(p, _, _)| p).collect());
        }
        if claimed.as_ref().is_some_and(|c| c.contains(&period)) {
            sent.push(Sent::AlreadySent(period));
            continue;
        }
        // No queue yet: no sender, nothing to report.
        sent.extend(queue_zone(app, &rules, tz, &agents, &period, (from, to), now).await?);
    }
    Ok(sent)
}

/// The mails of one zone's leads and admins for the seven local days
/// `from..to`, queued under `period` unless another node did first (None:
/// there is no queue to send them from).
async fn queue_zone(
    app: &App,
    rules: &Arc<crate::rules::Rules>,
    tz: Tz,
    agents: &[Agent],
    period: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<Option<Sent>, ReportError> {
    let key = LinkKey::load(&app.store).await?;
    let queues = app.queues().await?;
    let Some(sender) = queues.first().map(|q| q.address.clone()) else {
        return Ok(None);
    };
    let local = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
    let request = ReportRequest {
        from: Some(local(from)),
        // The last day of the period (the day before the mail's).
        to: Some(local(to) - Duration::days(1)),
        by: None,
        queue: None,
        agent: None,
        time_zone: Some(tz),
    };
    let mut mails = Vec::new();
    let mut recipients = Vec::new();
    for agent in agents {
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
        recipients.push(agent.email.clone());
    }
    if app.store.queue_report_mail(period, &mails, now).await? {
        tracing::info!(%period, recipients = recipients.len(), "weekly report mail queued");
        Ok(Some(Sent::Queued(period.to_string(), recipients)))
    } else {
        Ok(Some(Sent::AlreadySent(period.to_string())))
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
            Ok(rounds) => {
                for round in rounds {
                    if let Sent::Queued(period, to) = round {
                        tracing::debug!(%period, recipients = to.len(), "report mail");
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "weekly report mail not sent; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(MAX_SLEEP) => {}
            _ = shutdown.stopped() => return,
        }
    }
}
