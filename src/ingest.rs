//! The one ingest pipeline, shared by SMTP, `postdesk import` and the tests:
//! parse → classify → thread → commit (→ acknowledge).
//!
//! Nothing here drops mail. A message mail-parser cannot make sense of is
//! stored byte-exact with its problems listed; only a failing store refuses
//! a message, and then the caller tells the sender to try again.

use crate::App;
use crate::domain::automation::{RuleHook, TicketSnapshot};
use crate::domain::filing::{
    AckCaps, AckContext, AutoReplyPlan, FileOutcome, InboundKind, InboundRequest, NewMessage,
};
use crate::domain::outgoing::OutgoingMail;
use crate::domain::sender_auth::{self, AckTreatment, SenderAuth};
use crate::domain::ticket::{Priority, Status, queue_team_name};
use crate::domain::{address, loops, message_id, subject};
use crate::rules::condition::Variables;
use crate::store::{Queue, StoreError};
use chrono::{DateTime, Duration, TimeZone, Utc};
use mail_parser::{Address, HeaderName, Message, MessageParser, MimeHeaders};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

pub mod satisfaction;

/// The SMTP envelope of a message (or what import makes up for one).
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `MAIL FROM`; empty for the null return path.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The client's EHLO/HELO name (SPF's HELO identity).
    pub helo: Option<String>,
    pub remote_addr: Option<SocketAddr>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum Mode {
    /// Mail arriving now: may be acknowledged.
    Live,
    /// Historical mail: into this queue, never acknowledged, dated by its
    /// own Date header.
    Import { queue: Queue },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no queue to file the message in")]
    NoQueue,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to a message, for the SMTP reply, the import report and logs.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub message: i64,
    pub ticket: Option<i64>,
    pub created: bool,
    pub duplicate: bool,
    pub problems: Vec<String>,
    /// Why no acknowledgement was sent, when none was.
    pub auto_reply: Option<String>,
}

pub async fn ingest(
    app: &App,
    envelope: &Envelope,
    raw: Vec<u8>,
    mode: Mode,
) -> Result<IngestReport, IngestError> {
    let queues = app.queues().await?;
    // Who sent it, for mail arriving now over SMTP (imports have no client
    // to check). Before anything is stored: the verdicts go with the message.
    let auth = match (&mode, envelope.remote_addr) {
        (Mode::Live, Some(addr)) => {
            let client = crate::verify::SmtpClient {
                ip: addr.ip(),
                helo: envelope.helo.as_deref(),
                mail_from: &envelope.mail_from,
            };
            app.sender_auth.check(&client, &raw).await
        }
        _ => None,
    };
    let suggestions = match mode {
        Mode::Live if app.config.autoreply.enabled => suggestions(app, &raw).await,
        _ => Vec::new(),
    };
    let suggested: Vec<i64> = suggestions.iter().map(|a| a.id).collect();
    // A reply to a satisfaction survey with its word ("good") on the first
    // line: kept (rare, small) to record the rating once it is filed.
    let survey_answer = match mode {
        Mode::Live => satisfaction::mail_answer(app, &raw).map(|answer| (answer, raw.clone())),
        Mode::Import { .. } => None,
    };
    let (request, problems) = prepare(app, &queues, envelope, raw, &mode, auth, suggestions)?;
    let outcome = app.store.file_inbound(request).await?;
    if let (
        Some((answer, raw)),
        FileOutcome::Filed {
            ticket, reopened, ..
        },
    ) = (&survey_answer, &outcome)
        && let Err(err) =
            satisfaction::record_mail_answer(app, *ticket, answer, raw, *reopened).await
    {
        // Filed all the same: the answer is in the ticket for a person.
        tracing::warn!(%err, ticket, "satisfaction answer not recorded");
    }
    // The ticket keeps which articles its acknowledgement suggested (after
    // the commit: losing this note in a crash costs no mail).
    if let FileOutcome::Filed {
        ticket,
        created: true,
        auto_reply: Ok(_),
        ..
    } = &outcome
        && !suggested.is_empty()
        && let Err(err) = app
            .store
            .kb_record_suggestions(*ticket, &suggested, Utc::now())
            .await
    {
        tracing::warn!(%err, ticket, "suggested articles not recorded");
    }
    let report = match outcome {
        FileOutcome::Duplicate { message, ticket } => IngestReport {
            message,
            ticket,
            created: false,
            duplicate: true,
            problems,
            auto_reply: Some("duplicate delivery".into()),
        },
        FileOutcome::Filed {
            message,
            ticket,
            created,
            auto_reply,
            ..
        } => IngestReport {
            message,
            ticket: Some(ticket),
            created,
            duplicate: false,
            problems,
            auto_reply: auto_reply.err(),
        },
        FileOutcome::Unfiled { message, reason } => IngestReport {
            message,
            ticket: None,
            created: false,
            duplicate: false,
            problems,
            auto_reply: Some(reason),
        },
    };
    tracing::debug!(?report, "ingested");
    Ok(report)
}

/// The knowledge-base articles (published, public) an acknowledgement of
/// this message suggests: none when nothing is close, or on an error
/// (logged; the message is filed all the same).
async fn suggestions(app: &App, raw: &[u8]) -> Vec<crate::store::Article> {
    /// How much of the message is compared.
    const TEXT_LIMIT: usize = 8192;
    let parsed = std::panic::catch_unwind(|| {
        let message = mail_parser::MessageParser::default().parse(raw)?;
        let subject = message.subject().unwrap_or_default().to_string();
        let mut text = message.body_text(0).unwrap_or_default().to_string();
        if text.len() > TEXT_LIMIT {
            let cut = (0..=TEXT_LIMIT)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.truncate(cut);
        }
        Some((subject, text))
    });
    let Ok(Some((subject, text))) = parsed else {
        return Vec::new();
    };
    let (own, _) = crate::domain::quoting::split_quoted(&text);
    let max = app.config.knowledge.suggestions;
    match app.articles.suggest(&app.store, &subject, &own, max).await {
        Ok(articles) => articles,
        Err(err) => {
            tracing::warn!(%err, "article suggestions");
            Vec::new()
        }
    }
}

/// Parses and classifies a message into a filing request (pure but for the
/// queue list it is given).
fn prepare(
    app: &App,
    queues: &Arc<Vec<Queue>>,
    envelope: &Envelope,
    raw: Vec<u8>,
    mode: &Mode,
    auth: Option<SenderAuth>,
    suggestions: Vec<crate::store::Article>,
) -> Result<(InboundRequest, Vec<String>), IngestError> {
    let config = &app.config;
    let mut problems = Vec::new();

    let is_queue_address = |addr: &str| {
        address::Recipient::parse(addr).is_some_and(|r| queues.iter().any(|q| q.address == r.base))
    };

    // Queue: the first queue address among the recipients.
    let recipients: Vec<address::Recipient> = envelope
        .rcpt_to
        .iter()
        .filter_map(|r| address::Recipient::parse(r))
        .collect();
    let queue = match mode {
        Mode::Import { queue } => Some(queue.clone()),
        Mode::Live => recipients
            .iter()
            .find_map(|r| queues.iter().find(|q| q.address == r.base))
            .or_else(|| queues.first())
            .cloned(),
    }
    .ok_or(IngestError::NoQueue)?;
    // One parse for the pipeline's facts and the rules' variables (rules
    // and SLA clocks are for mail arriving now, not historical mail).
    let rules = app.rules.current();
    let rules_run =
        matches!(mode, Mode::Live) && !(rules.rules.is_empty() && rules.default_sla.is_none());
    let (facts, mut variables) = read_facts(
        &raw,
        &mut problems,
        rules_run.then_some(queue.address.as_str()),
    );
    if let Some(variables) = variables.as_mut() {
        variables.set("auth", crate::rules::context::auth_value(auth.as_ref()));
    }
    let plus_tickets: Vec<i64> = recipients
        .iter()
        .filter(|r| queues.iter().any(|q| q.address == r.base))
        .filter_map(address::Recipient::ticket_number)
        .collect();

    let envelope_from = address::normalize(&envelope.mail_from);
    let sender = facts
        .from
        .clone()
        .filter(|a| address::split(a).is_some())
        .or_else(|| (!envelope_from.is_empty()).then(|| envelope_from.clone()))
        .unwrap_or_else(|| "unknown@invalid".to_string());
    if facts.from.is_none() {
        problems.push("no From address".into());
    }

    let (message_id, has_message_id) = match &facts.message_id {
        Some(id) => (id.clone(), true),
        None => {
            problems.push("no Message-ID".into());
            // A content hash: a client retrying the same bytes is still one message.
            (message_id::synthetic(&raw), false)
        }
    };
    let received_at = envelope.received_at;
    let sent_at = match facts.date {
        Some(date) => date,
        None => {
            problems.push(if facts.has_date_header {
                "unreadable Date (arrival time used)".into()
            } else {
                "no Date (arrival time used)".into()
            });
            received_at
        }
    };
    let (received_at, now) = match mode {
        Mode::Live => (received_at, received_at),
        Mode::Import { .. } => (sent_at, sent_at),
    };

    let is_own = has_message_id && app.own_ids.is_own(&message_id);
    let kind = if facts.is_report || (envelope_from.is_empty() && address::is_robot_sender(&sender))
    {
        let bounced = bounced_message_ids(&raw)
            .into_iter()
            .filter(|id| *id != message_id)
            .collect();
        InboundKind::Bounce {
            bounced,
            failures: delivery_failures(&raw),
        }
    } else if is_own {
        InboundKind::OwnMail
    } else {
        InboundKind::Customer
    };

    // Everyone on the mail takes part, except postdesk's own addresses (the
    // queues, the knowledge base). Agents in Cc stay: they are colleagues
    // on the ticket (their mail joins it without starting the customer's
    // clock, and a reply never goes to them by mail).
    let kb_address = config.knowledge_address();
    let participants: Vec<String> = facts
        .addresses
        .iter()
        .filter(|a| !is_queue_address(a) && **a != kb_address && address::split(a).is_some())
        .cloned()
        .collect();

    let subject_text = facts.subject.clone().unwrap_or_default();
    let title = match subject::clean(&subject_text) {
        t if t.is_empty() => "(no subject)".to_string(),
        t => t,
    };

    let reply_to = facts.reply_to.clone().unwrap_or_else(|| sender.clone());
    let mut auto_reply_withheld = None;
    let auto_reply = match mode {
        Mode::Live if config.autoreply.enabled => {
            let reason = loops::suppression_reason(&loops::AutoReplyFacts {
                envelope_from: &envelope_from,
                reply_to_address: &reply_to,
                auto_submitted: facts.auto_submitted.as_deref(),
                precedence: facts.precedence.as_deref(),
                has_list_id: facts.has_list_id,
                has_list_unsubscribe: facts.has_list_unsubscribe,
                x_auto_response_suppress: facts.x_auto_response_suppress.as_deref(),
                has_vendor_autoreply_header: facts.has_vendor_autoreply_header,
                is_report: matches!(kind, InboundKind::Bounce { .. }),
                is_own_message: is_own,
            });
            let treatment = sender_auth::ack_treatment(auth.as_ref(), reply_to == sender);
            match (reason, treatment) {
                (Some(reason), _) => {
                    tracing::debug!(%message_id, reason, "no acknowledgement");
                    None
                }
                (None, AckTreatment::Withhold(reason)) => {
                    tracing::info!(%message_id, %sender, reason, "no acknowledgement");
                    auto_reply_withheld = Some(reason);
                    None
                }
                (None, treatment) => {
                    // Unauthenticated mail may come from anyone: its
                    // acknowledgement repeats nothing the sender wrote.
                    let full = treatment == AckTreatment::Full;
                    Some(ack_plan(
                        app,
                        &queue,
                        Answered {
                            to: reply_to.clone(),
                            to_name: facts.from_name.clone().filter(|_| full),
                            message_id: has_message_id.then(|| message_id.clone()),
                            references: facts.references.clone(),
                            title: full.then(|| title.clone()),
                            articles: suggestions
                                .iter()
                                .map(|a| SuggestedArticle {
                                    id: a.id,
                                    title: a.content.title.clone(),
                                    url: format!("{}{}", config.help_center_url(), a.path),
                                })
                                .collect(),
                        },
                    ))
                }
            }
        }
        _ => None,
    };

    // Historical mail (import) is filed as it was; rules and SLA clocks
    // are for mail arriving now.
    let rules = match (variables, &kind) {
        (Some(variables), InboundKind::Customer) => Some(rule_hook(
            rules,
            variables,
            queues.clone(),
            &queue,
            &sender,
            now,
        )),
        _ => None,
    };

    let mut references = facts.in_reply_to.clone();
    for id in facts.references.iter().rev() {
        if !references.contains(id) {
            references.push(id.clone());
        }
    }
    references.retain(|id| *id != message_id);

    let request = InboundRequest {
        message: NewMessage {
            message_id,
            has_message_id,
            sender: sender.clone(),
            from_name: facts.from_name.clone(),
            envelope_from,
            envelope_to: envelope
                .rcpt_to
                .iter()
                .map(|r| address::normalize(r))
                .collect(),
            subject: subject_text.clone(),
            sent_at,
            received_at,
            problems: problems.clone(),
            remote_addr: envelope.remote_addr.map(|a| a.to_string()),
            references,
            participants,
            auth,
            raw,
        },
        kind,
        queue_id: queue.id,
        plus_tickets,
        subject_tags: subject::ticket_tags(&subject_text),
        title,
        customer_address: sender,
        customer_name: facts.from_name,
        now,
        reopen_window: Duration::days(i64::from(config.tickets.reopen_window_days)),
        auto_reply,
        auto_reply_withheld,
        actor: match mode {
            Mode::Live => "smtp".into(),
            Mode::Import { .. } => "import".into(),
        },
        rules,
    };
    Ok((request, problems))
}

/// The rules of rules.toml for this message, run by the filer once it
/// knows the ticket.
fn rule_hook(
    rules: Arc<crate::rules::Rules>,
    variables: Variables,
    queues: Arc<Vec<Queue>>,
    queue: &Queue,
    customer: &str,
    now: DateTime<Utc>,
) -> RuleHook {
    let queue = queue.clone();
    let customer = customer.to_string();
    Box::new(move |joined: Option<&TicketSnapshot>| {
        let new_ticket = TicketSnapshot {
            queue: queue.name.clone(),
            priority: Priority::Normal,
            status: Status::New,
            customer: customer.clone(),
            created_at: Some(now),
            ..TicketSnapshot::default()
        };
        let ticket = joined.unwrap_or(&new_ticket);
        let evaluation = rules.evaluate(&variables, ticket, joined.is_none(), now);
        crate::rules::effects(&rules, &evaluation, &queues, joined, now)
    })
}

/// What the pipeline reads from a message before it touches the store:
/// for `postdesk` tools, tests and the fuzz targets (all of it is parsing of
/// network input).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub title: String,
    pub ticket_tags: Vec<i64>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub is_report: bool,
    pub bounced: Vec<String>,
    pub problems: Vec<String>,
}

pub fn inspect(raw: &[u8]) -> Inspection {
    let mut problems = Vec::new();
    let (facts, _) = read_facts(raw, &mut problems, None);
    let subject = facts.subject.clone().unwrap_or_default();
    Inspection {
        title: subject::clean(&subject),
        ticket_tags: subject::ticket_tags(&subject),
        message_id: facts.message_id,
        from: facts.from,
        subject: facts.subject,
        in_reply_to: facts.in_reply_to,
        references: facts.references,
        is_report: facts.is_report,
        bounced: bounced_message_ids(raw),
        problems,
    }
}

/// Parses the message once and reads what the pipeline needs, and, with
/// `rules_reached` (the queue address it came in through), the rules'
/// variables from the same parse. A parser panic (mail-parser has debug
/// assertions that malformed MIME can reach) must not cost the message or
/// the session: it is caught and the message is stored flagged, like any
/// other message the parser cannot read (the rules then see an empty one).
fn read_facts(
    raw: &[u8],
    problems: &mut Vec<String>,
    rules_reached: Option<&str>,
) -> (Facts, Option<Variables>) {
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut local = Vec::new();
        let message = MessageParser::default().parse(raw);
        let facts = message
            .as_ref()
            .map(|message| Facts::read(message, &mut local));
        let variables = rules_reached
            .map(|reached| crate::rules::context::variables_of(raw, message.as_ref(), reached));
        (facts, variables, local)
    }));
    match parsed {
        Ok((Some(facts), variables, local)) => {
            problems.extend(local);
            (facts, variables)
        }
        Ok((None, variables, _)) => {
            problems.push("unparseable message".to_string());
            (Facts::default(), variables)
        }
        Err(_) => {
            tracing::warn!("mail parser panicked; message stored unparsed");
            problems.push("unparseable message (parser failure)".to_string());
            let variables = rules_reached
                .map(|reached| crate::rules::context::variables_of(raw, None, reached));
            (Facts::default(), variables)
        }
    }
}

/// What the pipeline reads from a parsed message.
#[derive(Debug, Default)]
struct Facts {
    message_id: Option<String>,
    from: Option<String>,
    from_name: Option<String>,
    reply_to: Option<String>,
    subject: Option<String>,
    date: Option<DateTime<Utc>>,
    in_reply_to: Vec<String>,
    references: Vec<String>,
    /// From, Reply-To, To and Cc.
    addresses: Vec<String>,
    auto_submitted: Option<String>,
    precedence: Option<String>,
    has_list_id: bool,
    has_list_unsubscribe: bool,
    x_auto_response_suppress: Option<String>,
    has_vendor_autoreply_header: bool,
    is_report: bool,
    has_date_header: bool,
}

impl Facts {
    fn read(message: &Message<'_>, problems: &mut Vec<String>) -> Facts {
        let mut facts = Facts::default();
        if message.headers().is_empty() {
            problems.push("no header".into());
        }
        facts.message_id = message
            .message_id()
            .map(message_id::normalize)
            .filter(|id| message_id::is_plausible(id));
        if let Some(from) = message.from().and_then(Address::first) {
            facts.from = from.address.as_deref().map(address::normalize);
            facts.from_name = from
                .name
                .as_deref()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty());
        }
        facts.reply_to = message
            .reply_to()
            .and_then(Address::first)
            .and_then(|a| a.address.as_deref())
            .map(address::normalize);
        facts.subject = message.subject().map(str::to_string);
        facts.date = message
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single());
        facts.has_date_header = message.header(HeaderName::Date).is_some();
        for (name, value) in message.headers_raw() {
            if name.eq_ignore_ascii_case("In-Reply-To") {
                facts.in_reply_to.extend(message_id::extract_ids(value));
            } else if name.eq_ignore_ascii_case("References") {
                facts.references.extend(message_id::extract_ids(value));
            } else if name.eq_ignore_ascii_case("Auto-Submitted") {
                facts.auto_submitted = Some(value.trim().to_string());
            } else if name.eq_ignore_ascii_case("Precedence") {
                facts.precedence = Some(value.trim().to_string());
            } else if name.eq_ignore_ascii_case("X-Auto-Response-Suppress") {
                facts.x_auto_response_suppress = Some(value.trim().to_string());
            } else if [
                "X-Autoreply",
                "X-Autorespond",
                "X-Auto-Reply",
                "X-Autoresponder",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            {
                facts.has_vendor_autoreply_header = true;
            }
        }
        facts.has_list_id = message.header(HeaderName::ListId).is_some();
        facts.has_list_unsubscribe = message.header(HeaderName::ListUnsubscribe).is_some();
        let mut addresses = Vec::new();
        for list in [
            message.from(),
            message.reply_to(),
            message.to(),
            message.cc(),
        ]
        .into_iter()
        .flatten()
        {
            for addr in list.iter() {
                if let Some(a) = addr.address.as_deref() {
                    let a = address::normalize(a);
                    if !addresses.contains(&a) {
                        addresses.push(a);
                    }
                }
            }
        }
        facts.addresses = addresses;
        facts.is_report = message.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        });
        facts
    }
}

/// Message-IDs of the original message quoted in a delivery report: the
/// `Message-ID:` lines of its body (the returned message or its headers),
/// which works for MIME reports and for the older plain-text bounces alike.
pub fn bounced_message_ids(raw: &[u8]) -> Vec<String> {
    let body_start = find_subslice(raw, b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| find_subslice(raw, b"\n\n").map(|p| p + 2))
        .unwrap_or(raw.len());
    let body = String::from_utf8_lossy(&raw[body_start..]);
    let mut ids = Vec::new();
    for line in body.lines() {
        let trimmed = line.trim_start_matches(['>', ' ', '\t']);
        let Some((name, value)) = trimmed.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("Message-ID")
            || name.eq_ignore_ascii_case("Original-Message-ID")
        {
            for id in message_id::extract_ids(value) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    ids
}

/// The recipients a delivery status report (RFC 3464) says failed, as
/// "address: status (diagnostic)". Delays and successes are not failures.
/// Read as text, like [`bounced_message_ids`], so that the per-recipient
/// fields are found whatever the report's MIME looks like.
pub fn delivery_failures(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut failures = Vec::new();
    // Per-recipient blocks are separated by blank lines.
    for block in text.split("\r\n\r\n").flat_map(|b| b.split("\n\n")) {
        let field = |name: &str| {
            block.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_string())
            })
        };
        let failed = field("Action").is_some_and(|a| a.eq_ignore_ascii_case("failed"));
        let Some(recipient) = field("Final-Recipient").or_else(|| field("Original-Recipient"))
        else {
            continue;
        };
        if !failed {
            continue;
        }
        // "rfc822; carol@example.com" → the address.
        let address = recipient
            .split_once(';')
            .map(|(_, a)| a.trim())
            .unwrap_or(&recipient)
            .to_string();
        let mut entry = format!("{address}: {}", field("Status").unwrap_or_default());
        if let Some(diagnostic) = field("Diagnostic-Code") {
            entry.push_str(&format!(" ({diagnostic})"));
        }
        failures.push(entry);
    }
    failures
}

fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The message an acknowledgement answers.
struct Answered {
    to: String,
    to_name: Option<String>,
    /// Its Message-ID, when it had one of its own.
    message_id: Option<String>,
    references: Vec<String>,
    /// The ticket's title, when the acknowledgement may repeat it.
    title: Option<String>,
    /// Knowledge-base articles that read like the message.
    articles: Vec<SuggestedArticle>,
}

/// An article an acknowledgement suggests, as its template reads it.
#[derive(Debug, Clone, Serialize)]
struct SuggestedArticle {
    id: i64,
    title: String,
    url: String,
}

fn ack_plan(app: &App, queue: &Queue, answered: Answered) -> AutoReplyPlan {
    let templates = app.templates.clone();
    let own_ids = app.own_ids.clone();
    let kb_links = app.kb_links.clone();
    let help_center = app.config.help_center_url();
    let Answered {
        to,
        to_name,
        message_id: original_id,
        mut references,
        title,
        articles,
    } = answered;
    references.extend(original_id.clone());
    AutoReplyPlan {
        to: to.clone(),
        queue_name: queue.name.clone(),
        queue_address: queue.address.clone(),
        caps: AckCaps {
            per_recipient: app.config.autoreply.ack_per_recipient_per_hour,
            global: app.config.autoreply.ack_global_per_hour,
        },
        // Built inside the filing transaction, once the ticket number exists;
        // a template error there becomes a ticket event, not a lost message.
        build: Box::new(move |ctx: &AckContext| {
            // What the sender wrote is left out of the context when it may
            // not be repeated, so that no template can repeat it.
            let mut ticket = serde_json::json!({"number": ctx.ticket});
            if let Some(title) = &title {
                ticket["subject"] = serde_json::json!(title);
            }
            // Each suggestion with its "this solved my problem" link,
            // signed for this ticket and article.
            let articles: Vec<serde_json::Value> = articles
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "id": a.id,
                        "title": &a.title,
                        "url": &a.url,
                        "solved_url": format!("{help_center}{}", kb_links.path(ctx.ticket, a.id)),
                    })
                })
                .collect();
            let mut customer = serde_json::json!({"address": &to});
            if let Some(name) = &to_name {
                customer["name"] = serde_json::json!(name);
            }
            let rendered = templates
                .render(
                    &ctx.template,
                    serde_json::json!({
                        "ticket": ticket,
                        "customer": customer,
                        "queue": {"name": ctx.queue_name, "address": ctx.queue_address},
                        "authenticated": title.is_some(),
                        "articles": &articles,
                    }),
                )
                .map_err(|e| e.to_string())?;
            let message_id = own_ids.mint(ctx.ticket);
            let display = queue_team_name(&ctx.queue_name);
            let raw_header = |text: String| mail_builder::headers::raw::Raw::new(text);
            let mut builder = mail_builder::MessageBuilder::new()
                .from((display.clone(), ctx.queue_address.clone()))
                .to(match &to_name {
                    Some(name) => (name.clone(), to.clone()).into(),
                    None => mail_builder::headers::address::Address::from(to.clone()),
                })
                .reply_to(address::plus_address(&ctx.queue_address, ctx.ticket))
                .subject(rendered.subject.clone())
                .message_id(message_id.clone())
                .header("Auto-Submitted", raw_header("auto-replied".into()))
                .header("X-Auto-Response-Suppress", raw_header("All".into()))
                .header("X-Postdesk-Ticket", raw_header(ctx.ticket.to_string()))
                .text_body(rendered.body);
            if let Some(id) = &original_id {
                builder = builder.in_reply_to(id.clone());
            }
            if !references.is_empty() {
                builder = builder.references(references.clone());
            }
            let mut raw = builder.write_to_vec().map_err(|e| e.to_string())?;
            // Stored as it goes over the wire, where a message ends in CRLF.
            if !raw.ends_with(b"\r\n") {
                raw.extend_from_slice(b"\r\n");
            }
            Ok(OutgoingMail {
                message_id,
                mail_from: ctx.queue_address.clone(),
                rcpt_to: to.clone(),
                sender: ctx.queue_address.clone(),
                from_name: Some(display),
                subject: rendered.subject,
                raw,
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounced_ids_come_from_the_returned_headers() {
        let raw = b"From: MAILER-DAEMON@mx.example\r\nMessage-ID: <bounce@mx>\r\n\r\n\
            --b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <pd.7.abc@desk.example>\r\n\
            Subject: hi\r\n\r\n> Message-Id: <quoted@x>\r\n";
        assert_eq!(
            bounced_message_ids(raw),
            vec!["pd.7.abc@desk.example".to_string(), "quoted@x".into()]
        );
    }

    #[test]
    fn failed_recipients_come_from_the_delivery_status() {
        let raw = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
            --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n\
            Final-Recipient: rfc822; carol@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\
            Diagnostic-Code: smtp; 550 no such user\r\n\r\n\
            Final-Recipient: rfc822; dave@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\n--b--\r\n";
        assert_eq!(
            delivery_failures(raw),
            vec!["carol@example.com: 5.1.1 (smtp; 550 no such user)".to_string()]
        );
    }
}
