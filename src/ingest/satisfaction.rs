//! The satisfaction survey at work: a worker that sends "How did we do?"
//! to the customers of resolved tickets (once per ticket), and the
//! answers, from the survey page (`http`) or a reply with the word, each
//! recorded once, noted in the ticket and handed to the rules that read
//! `ticket.satisfaction`.
//!
//! The worker follows the tickets rather than the change operation: a
//! ticket becomes due when its status is resolved or closed (whoever did
//! it: a mail command, an IMAP move, the CLI), and the survey is sent
//! from the store's state, so a crash or a restart sends none twice and
//! misses none within `[satisfaction] window_hours`. The unique survey
//! per ticket keeps several nodes from both sending it.

use super::read_facts;
use crate::App;
use crate::domain::change::ChangeRequest;
use crate::domain::change::TicketChange;
use crate::domain::filing::{self, AckCaps};
use crate::domain::loops;
use crate::domain::outgoing::OutgoingMail;
use crate::domain::satisfaction::{self, Rating, SurveyFacts};
use crate::domain::ticket::{EventKind, Status, queue_team_name};
use crate::domain::{address, message_id};
use crate::net::Shutdown;
use crate::store::{
    Rated, StoreError, SurveyCandidate, SurveyOutcome, SurveyState, SurveyWrite, SystemNote,
};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How often the worker looks without being told of a change (the CLI's
/// changes on SQLite are not announced to the server).
const LOOK_EVERY: Duration = Duration::from_secs(30);
/// Resolved tickets handled per look.
const BATCH: i64 = 200;

/// Sends the surveys that are due until the shutdown.
pub async fn run(app: Arc<App>, mut shutdown: Shutdown) {
    let mut changes = app.store.subscribe();
    loop {
        if !app.config.satisfaction.queues.is_empty() {
            match send_due(&app, Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(surveys = n, "satisfaction surveys decided"),
                Err(err) => tracing::warn!(%err, "satisfaction surveys"),
            }
        }
        tokio::select! {
            _ = shutdown.stopped() => return,
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            changed = changes.recv() => {
                if matches!(changed, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                // A burst of changes is one look.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while changes.try_recv().is_ok() {}
            }
        }
    }
}

/// Decides the surveys of every ticket resolved within the window that
/// has none yet; returns how many were decided (sent or skipped).
pub async fn send_due(app: &App, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let config = &app.config.satisfaction;
    let since = now - chrono::Duration::hours(i64::from(config.window_hours));
    let candidates = app.store.survey_candidates(since, BATCH).await?;
    let mut decided = 0;
    for candidate in candidates.iter().filter(|c| config.asks(&c.queue)) {
        let outcome = survey_one(app, candidate, now).await?;
        if outcome != SurveyOutcome::AlreadyDecided {
            decided += 1;
        }
    }
    Ok(decided)
}

async fn survey_one(
    app: &App,
    c: &SurveyCandidate,
    now: DateTime<Utc>,
) -> Result<SurveyOutcome, StoreError> {
    let loop_reason = match app.store.first_customer_message(c.ticket).await? {
        Some((raw, envelope_from)) => first_message_loop_reason(&raw, &envelope_from),
        None => None,
    };
    let refusal = satisfaction::survey_refusal(&SurveyFacts {
        status: c.status,
        disposition: c.disposition,
        customer_address: &c.customer_address,
        loop_reason,
        merged_into: c.merged_into,
    });
    let token = satisfaction::new_token();
    let send = match refusal {
        Some(reason) => Err(reason),
        None => survey_mail(app, c, &token).map(|mail| {
            let caps = AckCaps {
                per_recipient: app.config.autoreply.ack_per_recipient_per_hour,
                global: app.config.autoreply.ack_global_per_hour,
            };
            (mail, caps)
        }),
    };
    let outcome = app
        .store
        .queue_survey(&SurveyWrite {
            ticket: c.ticket,
            queue_id: c.queue_id,
            agent_id: c.owner_id,
            token_hash: satisfaction::token_hash(&token),
            send,
            now,
        })
        .await?;
    tracing::debug!(ticket = c.ticket, ?outcome, "satisfaction survey");
    Ok(outcome)
}

/// Why the acknowledgement rules would not have answered the customer's
/// first message (the same reasons keep the survey from them).
fn first_message_loop_reason(raw: &[u8], envelope_from: &str) -> Option<&'static str> {
    let header_end = crate::mime::header::header_end(raw);
    let mut problems = Vec::new();
    let (facts, _) = read_facts(&raw[..header_end], &mut problems, None);
    let sender = facts.from.clone().unwrap_or_default();
    let reply_to = facts.reply_to.clone().unwrap_or(sender);
    loops::suppression_reason(&loops::AutoReplyFacts {
        envelope_from,
        reply_to_address: &reply_to,
        auto_submitted: facts.auto_submitted.as_deref(),
        precedence: facts.precedence.as_deref(),
        has_list_id: facts.has_list_id,
        has_list_unsubscribe: facts.has_list_unsubscribe,
        x_auto_response_suppress: facts.x_auto_response_suppress.as_deref(),
        has_vendor_autoreply_header: facts.has_vendor_autoreply_header,
        is_report: facts.is_report,
        is_own_message: false,
    })
}

/// The survey's link for one answer.
pub fn survey_link(base: &str, token: &str, rating: Option<Rating>) -> String {
    match rating {
        Some(rating) => format!("{base}/satisfaction/{token}?rating={rating}"),
        None => format!("{base}/satisfaction/{token}"),
    }
}

/// The survey mail (templates/satisfaction.txt), threaded as postdesk's
/// own mail of the ticket, so that a reply joins the ticket.
fn survey_mail(app: &App, c: &SurveyCandidate, token: &str) -> Result<OutgoingMail, String> {
    let base = app.config.satisfaction_url();
    let mut customer = serde_json::json!({"address": &c.customer_address});
    if let Some(name) = &c.customer_name {
        customer["name"] = serde_json::json!(name);
    }
    let rendered = app
        .templates
        .render(
            "satisfaction.txt",
            serde_json::json!({
                "ticket": {"number": c.ticket},
                "customer": customer,
                "queue": {"name": &c.queue, "address": &c.queue_address},
                "links": {
                    "good": survey_link(&base, token, Some(Rating::Good)),
                    "okay": survey_link(&base, token, Some(Rating::Okay)),
                    "bad": survey_link(&base, token, Some(Rating::Bad)),
                    "page": survey_link(&base, token, None),
                },
            }),
        )
        .map_err(|e| e.to_string())?;
    let message_id = app.own_ids.mint(c.ticket);
    let display = queue_team_name(&c.queue);
    let raw_header = |text: &str| mail_builder::headers::raw::Raw::new(text.to_string());
    let to = match &c.customer_name {
        Some(name) => (name.clone(), c.customer_address.clone()).into(),
        None => mail_builder::headers::address::Address::from(c.customer_address.clone()),
    };
    let mut raw = mail_builder::MessageBuilder::new()
        .from((display.clone(), c.queue_address.clone()))
        .to(to)
        .reply_to(address::plus_address(&c.queue_address, c.ticket))
        .subject(rendered.subject.clone())
        .message_id(message_id.clone())
        .header("Auto-Submitted", raw_header("auto-generated"))
        .header("X-Auto-Response-Suppress", raw_header("All"))
        .header("X-Postdesk-Ticket", raw_header(&c.ticket.to_string()))
        .text_body(rendered.body)
        .write_to_vec()
        .map_err(|e| e.to_string())?;
    if !raw.ends_with(b"\r\n") {
        raw.extend_from_slice(b"\r\n");
    }
    Ok(OutgoingMail {
        message_id,
        mail_from: c.queue_address.clone(),
        rcpt_to: c.customer_address.clone(),
        sender: c.queue_address.clone(),
        from_name: Some(display),
        subject: rendered.subject,
        raw,
    })
}

/// A customer's answer by mail: the survey it replies to (by postdesk's
/// own Message-IDs in its threading headers) and the word on its first
/// line. Read before the message is filed, from its bytes.
#[derive(Debug, Clone)]
pub struct MailAnswer {
    pub ids: Vec<String>,
    pub rating: Rating,
    pub comment: String,
}

pub(super) fn mail_answer(app: &App, raw: &[u8]) -> Option<MailAnswer> {
    if app.config.satisfaction.queues.is_empty() {
        return None;
    }
    // A parser panic on malformed MIME costs only the rating.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let message = mail_parser::MessageParser::default().parse(raw)?;
        let mut ids = Vec::new();
        for (name, value) in message.headers_raw() {
            if name.eq_ignore_ascii_case("In-Reply-To") || name.eq_ignore_ascii_case("References") {
                ids.extend(message_id::extract_ids(value));
            }
        }
        ids.retain(|id| app.own_ids.is_own(id));
        if ids.is_empty() {
            return None;
        }
        let text = message.body_text(0)?;
        let (rating, comment) = satisfaction::rating_of_reply(&text)?;
        Some(MailAnswer {
            ids,
            rating,
            comment,
        })
    }))
    .ok()
    .flatten()
}

/// Records an answer by mail that was filed in `ticket` (`reopened`: the
/// filing reopened it, which an answer does not mean: it goes back).
pub(super) async fn record_mail_answer(
    app: &App,
    ticket: i64,
    answer: &MailAnswer,
    raw: &[u8],
    reopened: bool,
) -> Result<(), StoreError> {
    let Some(survey) = app.store.survey_by_message_ids(&answer.ids).await? else {
        return Ok(());
    };
    if survey.ticket != ticket {
        return Ok(());
    }
    if reopened {
        let change = TicketChange {
            status: Some(Status::Resolved),
            ..TicketChange::default()
        };
        app.store
            .change_ticket(
                ticket,
                &ChangeRequest::administrative(
                    change,
                    "a satisfaction answer, not a new question",
                    "postdesk",
                    Utc::now(),
                ),
            )
            .await?;
    }
    let comment = Some(answer.comment.as_str()).filter(|c| !c.is_empty());
    rate(app, &survey, answer.rating, comment, Some(raw), Utc::now()).await?;
    Ok(())
}

/// Records a rating (and a comment with it), once per survey: a note in
/// the ticket, then the rules that read `ticket.satisfaction`.
pub async fn rate(
    app: &App,
    survey: &SurveyState,
    rating: Rating,
    comment: Option<&str>,
    answer: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<Rated, StoreError> {
    let rated = app.store.rate_survey(survey.id, rating, now).await?;
    let Rated::Recorded { ticket } = rated else {
        return Ok(rated);
    };
    let mut body = format!("The customer rated the support of ticket #{ticket}: {rating}.\n");
    if let Some(comment) = comment
        && app.store.comment_survey(survey.id, comment).await?
    {
        body.push_str(&format!("\nTheir comment:\n\n{comment}\n"));
    }
    note(
        app,
        ticket,
        &format!("Satisfaction: {rating}"),
        &body,
        format!("customer rated {rating}"),
        now,
    )
    .await?;
    run_rating_rules(app, ticket, answer, now).await?;
    Ok(rated)
}

/// Adds the comment of a rated survey (once), as a note in the ticket.
pub async fn comment(
    app: &App,
    survey: &SurveyState,
    comment: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(rating) = survey.rating else {
        return Ok(false);
    };
    if !app.store.comment_survey(survey.id, comment).await? {
        return Ok(false);
    }
    let body = format!(
        "The customer who rated ticket #{} {rating} commented:\n\n{comment}\n",
        survey.ticket
    );
    note(
        app,
        survey.ticket,
        &format!("Satisfaction comment ({rating})"),
        &body,
        format!("customer commented on their rating ({rating})"),
        now,
    )
    .await?;
    Ok(true)
}

async fn note(
    app: &App,
    ticket: i64,
    subject: &str,
    body: &str,
    detail: String,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = app.own_ids.mint(ticket);
    let note = SystemNote::compose(&app.config.hostname, ticket, id, subject, body, detail)
        .map_err(StoreError::Corrupt)?;
    app.store
        .add_system_note(ticket, now, EventKind::Note, &note)
        .await?;
    Ok(())
}

/// The rules whose condition reads `ticket.satisfaction`, over the ticket
/// now rated (with the answer's mail, or none for a link), applied
/// through the one ticket-change operation.
async fn run_rating_rules(
    app: &App,
    ticket: i64,
    answer: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rules = app.rules.current();
    if !rules.rules.iter().any(|r| r.on_rating) {
        return Ok(());
    }
    let Some(snapshot) = app.store.ticket_snapshot(ticket).await? else {
        return Ok(());
    };
    let queues = app.queues().await?;
    let reached = queues
        .iter()
        .find(|q| q.name == snapshot.queue)
        .map(|q| q.address.clone())
        .unwrap_or_default();
    let variables = crate::rules::context::message_variables(answer.unwrap_or_default(), &reached);
    let evaluation = rules.evaluate_rating(&variables, &snapshot, now);
    let effects = crate::rules::effects(&rules, &evaluation, &queues, Some(&snapshot), now);
    let owner = match &effects.owner {
        Some(email) => Some(
            app.store
                .agents()
                .await?
                .into_iter()
                .find(|a| a.email.eq_ignore_ascii_case(email) && a.removed_at.is_none())
                .map(|a| a.id),
        ),
        None => None,
    };
    if let Some(change) = filing::rules_change(&effects, owner, now) {
        app.store.change_ticket(ticket, &change).await?;
    }
    Ok(())
}
