//! What the CLI prints for people: plain values in, text out. (For
//! scripts, `--json` serializes the same values.) Nothing here reads the
//! database or the disk.

use super::rules::RulesTest;
use super::search::{Found, IndexStatus, Rebuilt};
use super::serve::Welcome;
use super::sla::SlaReportLine;
use super::ticket::TicketView;
use crate::domain::permission::AgentRole;
use crate::domain::ticket::Disposition;
use crate::domain::time_spent::format_total;
use crate::import::ImportSummary;
use crate::store::{Agent, MergeDone, MessageRecord, OutboundItem, Queue, SplitDone, Ticket};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

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
        &["EMAIL", "NAME", "ROLE", "QUEUES", "TIME ZONE", "STATE"],
        agents
            .iter()
            .map(|a| {
                vec![
                    a.email.clone(),
                    a.name.clone(),
                    a.role.to_string(),
                    if a.role == AgentRole::Admin {
                        "(all)".to_string()
                    } else {
                        a.queues.join(", ")
                    },
                    a.time_zone.clone().unwrap_or_else(|| "-".into()),
                    match (a.removed_at, a.disabled) {
                        (Some(at), _) => format!("removed {}", at.format("%Y-%m-%d")),
                        (None, true) => "disabled".to_string(),
                        (None, false) => "active".to_string(),
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
                    status_and_standing(t),
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

/// `open`, or `open, in Trash` / `new, in Junk (spam)`: a ticket in Trash
/// or Junk keeps its status for a restore, and the list says where it is.
fn status_and_standing(t: &Ticket) -> String {
    let status = match t.disposition {
        Some(Disposition::Trash) => format!("{}, in Trash", t.status),
        Some(Disposition::Spam) => format!("{}, in Junk (spam)", t.status),
        None => t.status.to_string(),
    };
    match t.merged_into {
        Some(into) => format!("{status}, merged into #{into}"),
        None => status,
    }
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
                    i.recipients().join(", "),
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

/// `postdesk ticket show`.
pub fn ticket_view(view: &TicketView) -> String {
    let t = &view.ticket;
    let mut out = String::new();
    let _ = writeln!(out, "#{} {}", t.number, t.subject);
    let customer = match &t.customer_name {
        Some(name) => format!("{name} <{}>", t.customer_address),
        None => t.customer_address.clone(),
    };
    let fields = [
        ("status", status_and_standing(t)),
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
    // Everyone on the ticket besides its customer: people the customer
    // had in To/Cc, and colleagues.
    let others: Vec<String> = view
        .participants
        .iter()
        .filter(|p| p.address != t.customer_address)
        .map(|p| match p.side {
            "colleague" => format!("{} (colleague)", p.address),
            _ => p.address.clone(),
        })
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "  {:<9}{}", "cc", others.join(", "));
    }
    for held in &view.held_replies {
        let _ = writeln!(out, "  {:<9}reply of {} (not sent)", "held", held.agent);
    }
    if let Some(into) = t.merged_into {
        let _ = writeln!(
            out,
            "  {:<9}into #{into} (its messages, tags and history are there; mail to this ticket goes there)",
            "merged"
        );
    }
    if !view.time.is_empty() {
        let total: i64 = view.time.iter().map(|t| t.minutes).sum();
        let each: Vec<String> = view
            .time
            .iter()
            .map(|t| format!("{} {}", t.agent, format_total(t.minutes)))
            .collect();
        let _ = writeln!(
            out,
            "  {:<9}{} ({})",
            "time",
            format_total(total),
            each.join(", ")
        );
    }
    if let (Some(disposition), Some(since)) = (t.disposition, t.disposition_at) {
        let folder = match disposition {
            Disposition::Trash => "Trash",
            Disposition::Spam => "Junk",
        };
        let _ = writeln!(
            out,
            "  {:<9}{} since {} (moving it out of {folder} restores it)",
            "marked",
            disposition.as_str(),
            when(since)
        );
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
    let _ = writeln!(out, "\nmessages ({}):", view.messages.len());
    let rows = view
        .messages
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                when(m.sent_at),
                m.kind.to_string(),
                shorten(&m.sender, 32),
                m.size.to_string(),
                shorten(&m.subject, 50),
                m.auth.as_ref().map(|a| a.summary()).unwrap_or_default(),
                m.problems
                    .clone()
                    .map(|p| format!("[{p}]"))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    for line in table(
        &[
            "ID", "DATE", "KIND", "FROM", "BYTES", "SUBJECT", "AUTH", "PROBLEMS",
        ],
        rows,
    )
    .lines()
    {
        let _ = writeln!(out, "  {}", line.trim_end());
    }
    let _ = writeln!(out, "\nhistory:");
    for e in &view.events {
        // A line a merge brought here says where it was written.
        let from = e
            .merged_from
            .map(|n| format!(" (from #{n})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}  {:<8} {}{from}: {}",
            when(e.at),
            e.actor,
            e.kind,
            e.detail
        );
    }
    out
}

/// One message of an mboxrd file: the `From ` line, then the bytes with
/// lines beginning `>*From ` given one more `>` (so that they can be
/// recovered exactly), then an empty line.
pub fn mbox_entry(envelope_from: &str, received_at: DateTime<Utc>, raw: &[u8]) -> Vec<u8> {
    let sender = if envelope_from.is_empty() {
        "MAILER-DAEMON"
    } else {
        envelope_from
    };
    let date = received_at.format("%a %b %e %H:%M:%S %Y");
    let mut out = format!("From {sender} {date}\n").into_bytes();
    out.extend_from_slice(&mboxrd_quote(raw));
    if !raw.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
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
pub fn welcome(w: &Welcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "postdesk {} is running", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "  configuration  {}", w.config_file.display());
    let _ = writeln!(out, "  data           {}", w.data_dir.display());
    let _ = writeln!(out, "  database       {} ({})", w.database, w.backend);
    let _ = writeln!(
        out,
        "  incoming mail  smtp://{} (STARTTLS available)",
        w.smtp
    );
    let _ = writeln!(
        out,
        "  agents (IMAP)  imap://{} (STARTTLS), imaps://{}",
        w.imap, w.imaps
    );
    let _ = writeln!(
        out,
        "  agents (SMTP)  submission {} (STARTTLS), {} (TLS)",
        w.submission, w.submissions
    );
    match &w.http {
        Some(addr) => {
            let _ = writeln!(
                out,
                "  operations     http://{addr}/metrics, http://{addr}/healthz"
            );
        }
        None => {
            let _ = writeln!(out, "  operations     off ([http] listen = \"\")");
        }
    }
    for (name, address) in &w.queues {
        let _ = writeln!(out, "  queue          {name} <{address}>");
    }
    match &w.relay {
        Some((host, port)) => {
            let _ = writeln!(out, "  outbound relay {host}:{port}");
        }
        None => {
            let _ = writeln!(
                out,
                "  outbound relay none: replies and acknowledgements stay queued (postdesk outbound list)"
            );
        }
    }
    match &w.rules {
        Some(rules) => {
            let _ = writeln!(
                out,
                "  rules          {}: {} rules, {} SLA policies, {} escalations (postdesk rules reload)",
                rules.file.display(),
                rules.rules,
                rules.policies,
                rules.escalations
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  rules          none (set rules = \"rules.toml\" in the configuration; see examples/rules.toml)"
            );
        }
    }
    if let Some((login, password)) = &w.bootstrap_admin {
        let _ = writeln!(
            out,
            "\nAn administrator was created. This password is shown only once:"
        );
        let _ = writeln!(out, "  login     {login}");
        let _ = writeln!(out, "  password  {password}");
        let _ = writeln!(out, "  (change it with: postdesk agent passwd {login})");
    }
    if let Some((_, address)) = w.queues.first() {
        let _ = writeln!(out, "\nSend a first ticket:");
        let _ = writeln!(
            out,
            "  swaks --server {} --from you@example.com --to {} --header 'Subject: Printer on fire'",
            w.smtp, address
        );
        let _ = writeln!(out, "  postdesk ticket list");
    }
    let _ = writeln!(
        out,
        "\nAgents add an IMAP account in their mail client: server {}, port {} (STARTTLS)",
        w.imap.ip(),
        w.imap.port()
    );
    let _ = writeln!(
        out,
        "or {} (TLS), their address and password. Folders are ticket views.",
        w.imaps.port()
    );
    let _ = write!(
        out,
        "Their outgoing server: {}, port {} (STARTTLS) or {} (TLS), same login.\n\
         Replies go to the customer from the queue address; #close, #assign bob, #tag x\n\
         at the top of a mail change the ticket.\n\
         New tickets arrive in Unassigned, not in INBOX: set the client to check all\n\
         folders for new mail (Thunderbird: Settings > Config Editor,\n\
         mail.server.default.check_all_folders_for_new = true; or each folder's\n\
         Properties > \"Check this folder for new messages\"). Stop with Ctrl-C.",
        w.submission.ip(),
        w.submission.port(),
        w.submissions.port()
    );
    out
}

/// Search results: one ticket per paragraph, matched words marked (bold
/// on a terminal, `*…*` otherwise).
/// `postdesk search kind:article …`: one article a line, with a snippet.
pub fn article_results(found: &[crate::cli::search::FoundArticle]) -> String {
    if found.is_empty() {
        return "no matching articles\n".to_string();
    }
    let mut out = String::new();
    for hit in found {
        let _ = writeln!(
            out,
            "article {}  {}  [{}, {}, {}]  {}",
            hit.article,
            shorten(&hit.title, 70),
            hit.category,
            hit.state,
            hit.visibility,
            hit.path
        );
        if !hit.snippet.is_empty() {
            let _ = writeln!(out, "    {}", shorten(&hit.snippet, 160));
        }
        out.push('\n');
    }
    out
}

pub fn search_results(found: &[Found], terminal: bool) -> String {
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

pub fn audit_table(entries: &[crate::store::AuditEntry]) -> String {
    if entries.is_empty() {
        return "no administrative changes recorded\n".to_string();
    }
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{}  {:<10} {:<14} {:<30} postdesk {}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            e.target,
            e.command
        );
    }
    out
}

pub fn status(status: &super::status::ServerStatus) -> String {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "server     {}",
        match status.server_pid {
            Some(pid) => format!("running (pid {pid})"),
            None => "not running".to_string(),
        }
    );
    for (name, addr) in &status.listeners {
        let _ = writeln!(out, "  {name:<12} {addr}");
    }
    let _ = writeln!(
        out,
        "database   {} ({:.1} MiB)",
        status.backend,
        mib(u64::try_from(status.database_bytes).unwrap_or(0))
    );
    for (name, address) in &status.queues {
        let _ = writeln!(out, "queue      {name} <{address}>");
    }
    let backlog: Vec<String> = status
        .outbound
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    let _ = writeln!(
        out,
        "outbound   {}",
        if backlog.is_empty() {
            "nothing waiting".to_string()
        } else {
            backlog.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "index lag  {}",
        match status.index_lag {
            Some(0) => "none".to_string(),
            Some(n) => format!("{n} messages"),
            None => "no index yet".to_string(),
        }
    );
    let _ = writeln!(
        out,
        "disk free  {} (new mail is refused below {:.0} MiB)",
        match status.disk_free_bytes {
            Some(bytes) => format!("{:.0} MiB", mib(bytes)),
            None => "unknown".to_string(),
        },
        mib(status.disk_floor_bytes)
    );
    if let Some(why) = &status.refusing_mail {
        let _ = writeln!(out, "REFUSING NEW MAIL: {why}");
    }
    out
}

pub fn index_status(status: &IndexStatus) -> String {
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

pub fn rebuilt(rebuilt: &Rebuilt) -> String {
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

/// `postdesk rules test`: each rule's verdict, then what would change.
pub fn rules_test(report: &RulesTest) -> String {
    let mut out = String::new();
    let _ = match report.ticket {
        Some(n) => writeln!(out, "as a follow-up in ticket #{n} ({})", report.queue),
        None => writeln!(out, "as a new ticket in {}", report.queue),
    };
    let _ = writeln!(out, "\nrules:");
    for r in &report.rules {
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
        ("priority", report.priority.clone()),
        ("queue", report.move_to_queue.clone()),
        (
            "add tags",
            (!report.add_tags.is_empty()).then(|| report.add_tags.join(", ")),
        ),
        (
            "remove tags",
            (!report.remove_tags.is_empty()).then(|| report.remove_tags.join(", ")),
        ),
        ("owner", report.owner.clone()),
        ("sla", report.sla.clone()),
        ("auto-reply", report.auto_reply.clone()),
    ];
    for (name, value) in fields {
        let _ = writeln!(out, "  {name:<12} {}", value.as_deref().unwrap_or("-"));
    }
    for (clock, due) in &report.deadlines {
        let _ = writeln!(
            out,
            "  {:<12} {}",
            clock.replace('_', " "),
            due.format("%Y-%m-%d %H:%M UTC")
        );
    }
    out
}

/// `postdesk report`: the totals, then a line per group, then the
/// articles used.
pub fn report_text(report: &crate::domain::report::Report) -> String {
    use crate::domain::report::{ReportRow, TimeStat, format_hours};
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}%"));
    let times = |s: &TimeStat| {
        format!(
            "{}/{}",
            format_hours(s.median_hours),
            format_hours(s.p90_hours)
        )
    };
    let tz: chrono_tz::Tz = report.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let day = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive().to_string();
    let last = day(report.to - chrono::Duration::seconds(1));
    let mut out = match report.from {
        Some(from) => format!(
            "Report {} to {last} ({}; times in business hours)\n\n",
            day(from),
            report.time_zone
        ),
        None => format!(
            "Report up to {last} ({}; times in business hours)\n\n",
            report.time_zone
        ),
    };
    let line = |r: &ReportRow| {
        vec![
            r.key.clone(),
            r.created.to_string(),
            r.resolved.to_string(),
            r.reopened.to_string(),
            r.backlog.to_string(),
            times(&r.first_response),
            times(&r.next_response),
            times(&r.resolution),
            format!(
                "{}/{}/{}",
                pct(r.sla_first_response.percent),
                pct(r.sla_next_response.percent),
                pct(r.sla_resolution.percent)
            ),
            format!(
                "{}/{}/{} {}",
                r.satisfaction.good,
                r.satisfaction.okay,
                r.satisfaction.bad,
                pct(r.satisfaction.percent_good)
            ),
            r.time_spent_minutes.to_string(),
        ]
    };
    let group = report.by.map_or("".to_string(), |b| b.to_string());
    let mut rows: Vec<Vec<String>> = report.rows.iter().map(line).collect();
    rows.push(line(&report.total));
    out.push_str(&table(
        &[
            &group,
            "CREATED",
            "RESOLVED",
            "REOPENED",
            "BACKLOG",
            "FIRST MED/P90",
            "NEXT MED/P90",
            "RESOLUTION MED/P90",
            "SLA MET FIRST/NEXT/RES",
            "GOOD/OKAY/BAD",
            "MINUTES",
        ],
        rows,
    ));
    if !report.articles.is_empty() {
        out.push_str("\nArticles used\n");
        out.push_str(&table(
            &["ID", "TITLE", "SUGGESTED", "HELPED", "DID NOT"],
            report
                .articles
                .iter()
                .map(|a| {
                    vec![
                        a.article.to_string(),
                        a.title.clone(),
                        a.suggested.to_string(),
                        a.helped_yes.to_string(),
                        a.helped_no.to_string(),
                    ]
                })
                .collect(),
        ));
    }
    out
}

/// `postdesk ticket merge`: what moved.
pub fn merged(d: &MergeDone) -> String {
    let mut out = format!(
        "ticket #{} merged into #{}: {} moved",
        d.source,
        d.target,
        crate::domain::merge::Moved {
            messages: d.messages,
            participants: d.participants,
            events: d.events,
            time_entries: d.time_entries,
        }
        .phrase()
    );
    if !d.tags.is_empty() {
        let _ = write!(out, ", tags {}", d.tags.join(", "));
    }
    if d.reopened {
        let _ = write!(out, "; #{} is open again", d.target);
    }
    out.push('\n');
    out
}

/// `postdesk ticket split`: the new ticket.
pub fn split(d: &SplitDone) -> String {
    let plural = if d.messages.len() == 1 { "" } else { "s" };
    format!(
        "ticket #{} opened from #{}: {} message{plural} of {} moved ({})\n",
        d.ticket,
        d.source,
        d.messages.len(),
        d.customer,
        d.messages
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
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
    fn search_results_mark_the_matched_words() {
        let found = Found {
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
