//! What the CLI prints: tables for people, the same data as JSON for
//! scripts (the CLI serializes the structs shown here).

use crate::import::ImportSummary;
use crate::server::RunningServer;
use crate::store::{Agent, Event, MessageRecord, OutboundItem, Queue, Store, StoreError, Ticket};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// Lays out rows in columns; the last column is not padded.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(headers.iter().map(|h| h.to_string()).collect(), &mut out);
    for row in rows {
        line(row, &mut out);
    }
    out
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

/// The earliest due time of a running SLA clock, "!" when past.
fn next_due(t: &Ticket) -> String {
    if t.sla_policy.is_none() {
        return "-".into();
    }
    if t.sla_paused_at.is_some() {
        return "paused".into();
    }
    let first = t
        .first_response_due
        .filter(|_| t.first_response_at.is_none());
    let due = [first, t.next_response_due, t.resolution_due]
        .into_iter()
        .flatten()
        .min();
    match due {
        Some(due) if t.sla_overdue => format!("{}!", when(due)),
        Some(due) => when(due),
        None => "-".into(),
    }
}

/// `postdesk sla report`: one line per queue.
pub fn sla_report_table(rows: &[SlaReportLine]) -> String {
    if rows.is_empty() {
        return "no tickets\n".to_string();
    }
    table(
        &[
            "QUEUE",
            "TICKETS",
            "WITH SLA",
            "BREACHED",
            "OVERDUE NOW",
            "MEDIAN FIRST RESPONSE",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.queue.clone(),
                    r.tickets.to_string(),
                    r.with_sla.to_string(),
                    r.breached.to_string(),
                    r.overdue_now.to_string(),
                    match r.median_first_response_business_hours {
                        Some(h) => format!("{h:.1} business h ({} answered)", r.answered),
                        None => "-".into(),
                    },
                ]
            })
            .collect(),
    )
}

/// A queue's SLA figures, with the median first-response time measured
/// on each ticket's own calendar.
#[derive(Debug, Clone, Serialize)]
pub struct SlaReportLine {
    pub queue: String,
    pub tickets: i64,
    pub with_sla: i64,
    pub breached: i64,
    pub overdue_now: i64,
    pub answered: usize,
    pub median_first_response_business_hours: Option<f64>,
}

impl SlaReportLine {
    pub fn from_store(
        row: crate::store::SlaReportRow,
        rules: &crate::rules::Rules,
    ) -> SlaReportLine {
        let always = crate::rules::calendar::Calendar::always();
        let mut hours: Vec<f64> = row
            .first_responses
            .iter()
            .map(|(created, answered, policy)| {
                let calendar = policy
                    .as_deref()
                    .and_then(|p| rules.policy(p))
                    .map_or(&always, |p| p.calendar.as_ref());
                calendar.business_between(*created, *answered).num_seconds() as f64 / 3600.0
            })
            .collect();
        hours.sort_by(|a, b| a.total_cmp(b));
        let median = match hours.len() {
            0 => None,
            n if n % 2 == 1 => Some(hours[n / 2]),
            n => Some((hours[n / 2 - 1] + hours[n / 2]) / 2.0),
        };
        SlaReportLine {
            queue: row.queue,
            tickets: row.tickets,
            with_sla: row.with_sla,
            breached: row.breached,
            overdue_now: row.overdue_now,
            answered: hours.len(),
            median_first_response_business_hours: median,
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub fn queue_table(queues: &[Queue]) -> String {
    table(
        &["NAME", "ADDRESS"],
        queues
            .iter()
            .map(|q| vec![q.name.clone(), q.address.clone()])
            .collect(),
    )
}

pub fn agent_table(agents: &[Agent]) -> String {
    table(
        &["EMAIL", "NAME", "ROLE", "QUEUES"],
        agents
            .iter()
            .map(|a| {
                vec![
                    a.email.clone(),
                    a.name.clone(),
                    if a.is_admin { "admin" } else { "agent" }.to_string(),
                    if a.is_admin {
                        "(all)".to_string()
                    } else {
                        a.queues.join(", ")
                    },
                ]
            })
            .collect(),
    )
}

pub fn ticket_table(tickets: &[Ticket]) -> String {
    if tickets.is_empty() {
        return "no tickets\n".to_string();
    }
    table(
        &[
            "#", "STATUS", "PRIORITY", "QUEUE", "MSGS", "UPDATED", "DUE", "CUSTOMER", "SUBJECT",
        ],
        tickets
            .iter()
            .map(|t| {
                vec![
                    format!("#{}", t.number),
                    t.status.to_string(),
                    t.priority.to_string(),
                    t.queue.clone(),
                    t.message_count.to_string(),
                    when(t.updated_at),
                    next_due(t),
                    shorten(&t.customer_address, 32),
                    shorten(&t.subject, 60),
                ]
            })
            .collect(),
    )
}

pub fn message_table(messages: &[MessageRecord]) -> String {
    if messages.is_empty() {
        return "no messages\n".to_string();
    }
    table(
        &[
            "ID", "RECEIVED", "KIND", "FROM", "BYTES", "SUBJECT", "PROBLEMS",
        ],
        messages
            .iter()
            .map(|m| {
                vec![
                    m.id.to_string(),
                    when(m.received_at),
                    m.kind.to_string(),
                    shorten(&m.sender, 32),
                    m.size.to_string(),
                    shorten(&m.subject, 40),
                    m.problems.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    )
}

pub fn outbound_table(items: &[OutboundItem], relay_configured: bool) -> String {
    let mut out = String::new();
    if !relay_configured && items.iter().any(|i| i.status.as_str() == "queued") {
        out.push_str("no [outbound] relay is configured: queued mail waits for one\n");
    }
    if items.is_empty() {
        out.push_str("no outbound mail\n");
        return out;
    }
    out.push_str(&table(
        &[
            "ID",
            "TICKET",
            "PURPOSE",
            "STATUS",
            "TRIES",
            "NEXT",
            "TO",
            "LAST ERROR",
        ],
        items
            .iter()
            .map(|i| {
                vec![
                    i.id.to_string(),
                    i.ticket.map(|t| format!("#{t}")).unwrap_or_default(),
                    i.purpose.clone(),
                    i.status.to_string(),
                    i.attempts.to_string(),
                    if matches!(i.status.as_str(), "queued") {
                        when(i.next_attempt_at)
                    } else {
                        String::new()
                    },
                    i.rcpt_to.clone(),
                    shorten(i.last_error.as_deref().unwrap_or(""), 60),
                ]
            })
            .collect(),
    ));
    out
}

pub fn import_summary(summary: &ImportSummary) -> String {
    let mut out = format!(
        "read {}, stored {}, duplicates {}, new tickets {}, stored with problems {}, skipped {}\n",
        summary.read,
        summary.stored,
        summary.duplicates,
        summary.tickets_created,
        summary.flagged,
        summary.skipped.len()
    );
    for (position, reason) in &summary.skipped {
        let _ = writeln!(out, "  skipped message {position}: {reason}");
    }
    out
}

/// A ticket with everything `ticket show` prints.
#[derive(Debug, Serialize)]
pub struct TicketView {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub messages: Vec<MessageRecord>,
    pub events: Vec<Event>,
}

impl TicketView {
    pub async fn load(store: &Store, number: i64) -> Result<TicketView, StoreError> {
        Ok(TicketView {
            ticket: store.ticket(number).await?,
            messages: store.ticket_messages(number).await?,
            events: store.ticket_events(number).await?,
        })
    }

    pub fn render(&self) -> String {
        let t = &self.ticket;
        let mut out = String::new();
        let _ = writeln!(out, "#{} {}", t.number, t.subject);
        let customer = match &t.customer_name {
            Some(name) => format!("{name} <{}>", t.customer_address),
            None => t.customer_address.clone(),
        };
        let fields = [
            ("status", t.status.to_string()),
            ("priority", t.priority.to_string()),
            ("queue", t.queue.clone()),
            ("customer", customer),
            ("owner", t.owner.clone().unwrap_or_else(|| "(none)".into())),
            (
                "tags",
                if t.tags.is_empty() {
                    "(none)".into()
                } else {
                    t.tags.join(", ")
                },
            ),
            ("created", when(t.created_at)),
            ("updated", when(t.updated_at)),
        ];
        for (name, value) in fields {
            let _ = writeln!(out, "  {name:<9}{value}");
        }
        if let Some(linked) = t.linked_ticket {
            let _ = writeln!(out, "  {:<9}#{linked}", "linked");
        }
        let answered = match (t.first_response_at, t.last_response_at) {
            (Some(first), Some(last)) if first != last => {
                format!("first {}, last {}", when(first), when(last))
            }
            (Some(first), _) => when(first),
            _ => "not yet".into(),
        };
        let _ = writeln!(out, "  {:<9}{answered}", "answered");
        if let Some(since) = t.customer_waiting_since {
            let _ = writeln!(out, "  {:<9}since {}", "waiting", when(since));
        }
        if let Some(policy) = &t.sla_policy {
            let mut line = policy.to_string();
            if t.sla_overdue {
                line.push_str(", OVERDUE");
            }
            if let Some(paused) = t.sla_paused_at {
                line.push_str(&format!(", paused since {} ({})", when(paused), t.status));
            }
            let _ = writeln!(out, "  {:<9}{line}", "sla");
            let clocks = [
                ("first response", t.first_response_due, t.first_response_at),
                ("next response", t.next_response_due, None),
                (
                    "resolution",
                    t.resolution_due,
                    t.done_at.filter(|_| t.status.is_done()),
                ),
            ];
            for (name, due, met) in clocks {
                let Some(due) = due else { continue };
                let state = match met {
                    Some(at) if at <= due => format!(", met {}", when(at)),
                    Some(at) => format!(", late: done {}", when(at)),
                    None if t.sla_paused_at.is_none() && due <= Utc::now() => ", late".to_string(),
                    None => String::new(),
                };
                let _ = writeln!(out, "    {name:<16}due {}{state}", when(due));
            }
        }
        let _ = writeln!(out, "\nmessages ({}):", self.messages.len());
        let rows = self
            .messages
            .iter()
            .map(|m| {
                vec![
                    when(m.sent_at),
                    m.kind.to_string(),
                    shorten(&m.sender, 32),
                    m.size.to_string(),
                    shorten(&m.subject, 50),
                    m.problems
                        .clone()
                        .map(|p| format!("[{p}]"))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        for line in table(
            &["DATE", "KIND", "FROM", "BYTES", "SUBJECT", "PROBLEMS"],
            rows,
        )
        .lines()
        {
            let _ = writeln!(out, "  {}", line.trim_end());
        }
        let _ = writeln!(out, "\nhistory:");
        for e in &self.events {
            let _ = writeln!(
                out,
                "  {}  {:<8} {}: {}",
                when(e.at),
                e.actor,
                e.kind,
                e.detail
            );
        }
        out
    }
}

/// Writes a ticket's messages as an mboxrd file (lines beginning with
/// `>*From ` get one more `>`, so the bytes can be recovered exactly).
pub async fn export_mbox(
    store: &Store,
    number: i64,
    out: &mut impl Write,
) -> Result<(), crate::AppError> {
    let io = |source| crate::AppError::Io {
        context: "export".into(),
        source,
    };
    store.ticket(number).await?;
    for message in store.ticket_messages(number).await? {
        let raw = store.raw_message(message.id).await?;
        let sender = if message.envelope_from.is_empty() {
            "MAILER-DAEMON".to_string()
        } else {
            message.envelope_from.clone()
        };
        let date = message.received_at.format("%a %b %e %H:%M:%S %Y");
        writeln!(out, "From {sender} {date}").map_err(io)?;
        out.write_all(&mboxrd_quote(&raw)).map_err(io)?;
        if !raw.ends_with(b"\n") {
            out.write_all(b"\n").map_err(io)?;
        }
        out.write_all(b"\n").map_err(io)?;
    }
    Ok(())
}

fn mboxrd_quote(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let unquoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
        if line[unquoted..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    out
}

/// What `serve` prints once it listens.
pub async fn welcome(running: &RunningServer, config_file: &Path) -> Result<String, StoreError> {
    let app = &running.app;
    let queues = app.store.queues().await?;
    let mut out = String::new();
    let _ = writeln!(out, "postdesk {} is running", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "  configuration  {}", config_file.display());
    let _ = writeln!(out, "  data           {}", app.config.data_dir.display());
    let _ = writeln!(
        out,
        "  database       {} ({})",
        redact(&app.config.database_url()),
        app.store.backend_name()
    );
    let _ = writeln!(
        out,
        "  incoming mail  smtp://{} (STARTTLS available)",
        running.smtp_addr
    );
    let _ = writeln!(
        out,
        "  agents (IMAP)  imap://{} (STARTTLS), imaps://{}",
        running.imap_addr, running.imaps_addr
    );
    let _ = writeln!(
        out,
        "  agents (SMTP)  submission {} (STARTTLS), {} (TLS)",
        running.submission_addr, running.submissions_addr
    );
    for q in &queues {
        let _ = writeln!(out, "  queue          {} <{}>", q.name, q.address);
    }
    match &app.config.outbound.relay {
        Some(relay) => {
            let _ = writeln!(out, "  outbound relay {}:{}", relay.host, relay.port);
        }
        None => {
            let _ = writeln!(
                out,
                "  outbound relay none: replies and acknowledgements stay queued (postdesk outbound list)"
            );
        }
    }
    let rules = app.rules.current();
    match &rules.source {
        Some(path) => {
            let _ = writeln!(
                out,
                "  rules          {}: {} rules, {} SLA policies, {} escalations (postdesk rules reload)",
                path.display(),
                rules.rules.len(),
                rules.policies.len(),
                rules.escalations.len()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  rules          none (set rules = \"rules.toml\" in the configuration; see examples/rules.toml)"
            );
        }
    }
    if let Some((login, password)) = &running.bootstrap_admin {
        let _ = writeln!(
            out,
            "\nAn administrator was created. This password is shown only once:"
        );
        let _ = writeln!(out, "  login     {login}");
        let _ = writeln!(out, "  password  {password}");
        let _ = writeln!(out, "  (change it with: postdesk agent passwd {login})");
    }
    if let Some(q) = queues.first() {
        let _ = writeln!(out, "\nSend a first ticket:");
        let _ = writeln!(
            out,
            "  swaks --server {} --from you@example.com --to {} --header 'Subject: Printer on fire'",
            running.smtp_addr, q.address
        );
        let _ = writeln!(out, "  postdesk ticket list");
    }
    let _ = writeln!(
        out,
        "\nAgents add an IMAP account in their mail client: server {}, port {} (STARTTLS)",
        running.imap_addr.ip(),
        running.imap_addr.port()
    );
    let _ = writeln!(
        out,
        "or {} (TLS), their address and password. Folders are ticket views.",
        running.imaps_addr.port()
    );
    let _ = write!(
        out,
        "Their outgoing server: {}, port {} (STARTTLS) or {} (TLS), same login.\n\
         Replies go to the customer from the queue address; #close, #assign bob, #tag x\n\
         at the top of a mail change the ticket. Stop with Ctrl-C.",
        running.submission_addr.ip(),
        running.submission_addr.port(),
        running.submissions_addr.port()
    );
    Ok(out)
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Search results: one ticket per paragraph, matched words marked (bold
/// on a terminal, `*…*` otherwise).
pub fn search_results(found: &[crate::search::cli::Found], terminal: bool) -> String {
    if found.is_empty() {
        return "no matching tickets\n".to_string();
    }
    let (open, close) = if terminal {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("*", "*")
    };
    let mut out = String::new();
    for hit in found {
        let date = hit.date.map(when).unwrap_or_default();
        let _ = writeln!(
            out,
            "#{}  {}  [{}, {}]  {}  {}",
            hit.ticket,
            shorten(&hit.subject, 70),
            hit.status,
            hit.queue,
            shorten(&hit.customer, 40),
            date
        );
        let mut snippet = String::new();
        let mut at = 0;
        for &(start, end) in &hit.highlighted {
            if start < at || end > hit.snippet.len() {
                continue;
            }
            snippet.push_str(&hit.snippet[at..start]);
            snippet.push_str(open);
            snippet.push_str(&hit.snippet[start..end]);
            snippet.push_str(close);
            at = end;
        }
        snippet.push_str(&hit.snippet[at..]);
        let snippet = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        if !snippet.is_empty() {
            let _ = writeln!(out, "    {snippet}");
        }
        out.push('\n');
    }
    out
}

pub fn index_status(status: &crate::search::cli::IndexStatus) -> String {
    let lag = match status.lag_seconds {
        Some(seconds) if status.lag_messages > 0 => {
            format!(
                "{} messages, oldest waiting {seconds:.1} s",
                status.lag_messages
            )
        }
        _ => "none".to_string(),
    };
    format!(
        "index      {}\ndocuments  {}\nsize       {:.1} MiB\nindexed    messages up to #{} of #{}\nlag        {lag}\nwriter     {}\n",
        status.directory,
        status.documents,
        status.bytes as f64 / (1024.0 * 1024.0),
        status.indexed_through,
        status.newest_message,
        if status.kept_by_server {
            "a running server keeps it current"
        } else {
            "none running: `postdesk search` catches up before it searches"
        }
    )
}

pub fn rebuilt(rebuilt: &crate::search::cli::Rebuilt) -> String {
    format!(
        "search index rebuilt{}: {} documents, {:.1} MiB, {:.1} s\n",
        if rebuilt.by_server {
            " by the running server"
        } else {
            ""
        },
        rebuilt.documents,
        rebuilt.bytes as f64 / (1024.0 * 1024.0),
        rebuilt.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mboxrd_quoting_is_reversible() {
        assert_eq!(
            mboxrd_quote(b"a\nFrom me\n>From you\nnot From\n"),
            b"a\n>From me\n>>From you\nnot From\n".to_vec()
        );
    }

    #[test]
    fn tables_align_columns() {
        let text = table(&["A", "BB"], vec![vec!["xxx".into(), "y".into()]]);
        assert_eq!(text, "A    BB\nxxx  y\n");
    }

    #[test]
    fn passwords_in_database_urls_are_hidden() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:****@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn search_results_mark_the_matched_words() {
        let found = crate::search::cli::Found {
            ticket: 7,
            subject: "VPN drops".into(),
            status: crate::domain::ticket::Status::Closed,
            queue: "support".into(),
            customer: "Kim <kim@example.com>".into(),
            date: None,
            score: 1.0,
            message: 3,
            snippet: "the VPN is\n reset".into(),
            highlighted: vec![(4, 7), (12, 17)],
        };
        let text = search_results(std::slice::from_ref(&found), false);
        assert!(
            text.starts_with("#7  VPN drops  [closed, support]  Kim <kim@example.com>"),
            "{text}"
        );
        assert!(text.contains("    the *VPN* is *reset*\n"), "{text}");
        let terminal = search_results(&[found], true);
        assert!(terminal.contains("\x1b[1mVPN\x1b[0m"), "{terminal}");
        assert_eq!(search_results(&[], false), "no matching tickets\n");
    }
}

/// `postdesk rules test`: what the rules would do with a message.
#[derive(Debug, Clone, Serialize)]
pub struct RulesTest {
    pub ticket: Option<i64>,
    pub queue: String,
    /// Each rule in file order and its verdict.
    pub rules: Vec<RuleVerdict>,
    pub priority: Option<String>,
    pub move_to_queue: Option<String>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub owner: Option<String>,
    pub sla: Option<String>,
    pub auto_reply: Option<String>,
    /// Due times the SLA would set now, per clock.
    pub deadlines: Vec<(String, DateTime<Utc>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleVerdict {
    pub name: String,
    pub verdict: String,
    pub actions: Vec<String>,
}

impl RulesTest {
    pub async fn run(
        app: &crate::App,
        rules: &crate::rules::Rules,
        raw: &[u8],
        ticket: Option<i64>,
        to: Option<String>,
    ) -> Result<RulesTest, StoreError> {
        let now = Utc::now();
        let queues = app.store.queues().await?;
        let existing = match ticket {
            Some(n) => Some(app.store.ticket(n).await?),
            None => None,
        };
        let queue = match (&to, &existing) {
            (Some(address), _) => queues
                .iter()
                .find(|q| q.address.eq_ignore_ascii_case(address) || q.name == *address)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(format!("no queue '{address}'")))?,
            (None, Some(t)) => queues
                .iter()
                .find(|q| q.name == t.queue)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(format!("no queue '{}'", t.queue)))?,
            (None, None) => queues
                .first()
                .cloned()
                .ok_or_else(|| StoreError::NotFound("no queues".into()))?,
        };
        let variables = crate::rules::context::message_variables(raw, &queue.address);
        let snapshot = match &existing {
            Some(t) => crate::rules::scheduler::snapshot(t),
            None => crate::domain::automation::TicketSnapshot {
                queue: queue.name.clone(),
                priority: crate::domain::ticket::Priority::Normal,
                status: crate::domain::ticket::Status::New,
                created_at: Some(now),
                ..Default::default()
            },
        };
        let new = existing.is_none();
        let evaluation = rules.evaluate(&variables, &snapshot, new, now);
        let verdicts = rules.explain(&variables, &snapshot, new, now);
        let effects = crate::rules::effects(
            rules,
            &evaluation,
            &queues,
            existing.as_ref().map(|_| &snapshot),
            now,
        );
        let policy_name = effects
            .sla
            .as_ref()
            .map(|s| s.policy.clone())
            .or_else(|| existing.as_ref().and_then(|t| t.sla_policy.clone()));
        let mut deadlines = Vec::new();
        if let Some(policy) = policy_name.as_deref().and_then(|p| rules.policy(p)) {
            let start = existing.as_ref().map_or(now, |t| t.created_at);
            let (first_response, resolution) = crate::rules::sla::initial_dues(policy, start);
            // A follow-up starts the next-response clock now.
            let next_response = policy
                .next_response
                .filter(|_| !new)
                .and_then(|target| policy.calendar.deadline(now, target));
            for (name, due) in [
                ("first_response", first_response),
                ("next_response", next_response),
                ("resolution", resolution),
            ] {
                if let Some(due) = due {
                    deadlines.push((name.to_string(), due));
                }
            }
        }
        let rules_out = verdicts
            .into_iter()
            .map(|(name, verdict)| {
                let actions = evaluation
                    .matched
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, did)| did.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                RuleVerdict {
                    name,
                    verdict,
                    actions,
                }
            })
            .collect();
        Ok(RulesTest {
            ticket,
            queue: queue.name.clone(),
            rules: rules_out,
            priority: evaluation.priority.map(|p| p.to_string()),
            move_to_queue: effects.queue.map(|queue| queue.name),
            add_tags: evaluation.add_tags.clone(),
            remove_tags: evaluation.remove_tags.clone(),
            owner: evaluation.owner.clone(),
            sla: policy_name,
            auto_reply: match (new, &evaluation.auto_reply) {
                (false, _) => None,
                (true, None) => Some("ack.txt".into()),
                (true, Some(crate::rules::AutoReply::Off)) => Some("none".into()),
                (true, Some(crate::rules::AutoReply::Template(t))) => Some(t.clone()),
            },
            deadlines,
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = match self.ticket {
            Some(n) => writeln!(out, "as a follow-up in ticket #{n} ({})", self.queue),
            None => writeln!(out, "as a new ticket in {}", self.queue),
        };
        let _ = writeln!(out, "\nrules:");
        for r in &self.rules {
            let _ = write!(
                out,
                "  {:<12} {}",
                r.verdict.split(':').next().unwrap_or(""),
                r.name
            );
            if let Some((_, err)) = r.verdict.split_once(": ") {
                let _ = write!(out, " ({err})");
            }
            if !r.actions.is_empty() {
                let _ = write!(out, ": {}", r.actions.join(", "));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "\nresult (nothing was changed):");
        let fields = [
            ("priority", self.priority.clone()),
            ("queue", self.move_to_queue.clone()),
            (
                "add tags",
                (!self.add_tags.is_empty()).then(|| self.add_tags.join(", ")),
            ),
            (
                "remove tags",
                (!self.remove_tags.is_empty()).then(|| self.remove_tags.join(", ")),
            ),
            ("owner", self.owner.clone()),
            ("sla", self.sla.clone()),
            ("auto-reply", self.auto_reply.clone()),
        ];
        for (name, value) in fields {
            let _ = writeln!(out, "  {name:<12} {}", value.as_deref().unwrap_or("-"));
        }
        for (clock, due) in &self.deadlines {
            let _ = writeln!(
                out,
                "  {:<12} {}",
                clock.replace('_', " "),
                due.format("%Y-%m-%d %H:%M UTC")
            );
        }
        out
    }
}
