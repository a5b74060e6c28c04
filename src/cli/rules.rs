//! `postdesk rules check|test|reload`: none of them writes the database
//! (`test` reads it; `reload` signals the running server).

use super::{CliError, CliResult, open_read_only, output, print_line, print_out};
use crate::config::Config;
use crate::domain::automation::TicketSnapshot;
use crate::rules::{self, AutoReply, Rules, RulesHandle};
use crate::server::PID_FILE;
use crate::store::{Queue, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;

/// The rules file to use: the one named, else the configured one.
fn rules_file(config: &Config, named: Option<PathBuf>) -> CliResult<PathBuf> {
    named.or_else(|| config.rules_path()).ok_or_else(|| {
        CliError::Invalid(
            "no rules file: name one, or set `rules = \"rules.toml\"` in postdesk.toml".into(),
        )
    })
}

/// Checks a rules file; mistakes are reported with file and line.
pub fn check(config: &Config, file: Option<PathBuf>) -> CliResult<()> {
    let path = rules_file(config, file)?;
    let rules = Rules::load(&path)?;
    print_line(format_args!(
        "{}: ok: {} calendars, {} SLA policies, {} rules, {} escalations",
        path.display(),
        rules.calendars.len(),
        rules.policies.len(),
        rules.rules.len(),
        rules.escalations.len()
    ))
}

/// What `rules test` is asked.
pub struct TestRequest {
    /// The message (.eml, as received).
    pub message: PathBuf,
    /// Treat it as a follow-up in this ticket (default: a new ticket).
    pub ticket: Option<i64>,
    /// A rules file other than the configured one.
    pub rules: Option<PathBuf>,
    /// The queue (address or name) it arrives at (default: the first queue).
    pub to: Option<String>,
}

/// Shows what the rules would do with a message; changes nothing.
pub async fn test(config: &Config, request: TestRequest, json: bool) -> CliResult<()> {
    let path = rules_file(config, request.rules)?;
    let rules = Rules::load(&path)?;
    let raw = std::fs::read(&request.message).map_err(CliError::io(format!(
        "cannot read {}",
        request.message.display()
    )))?;
    let store = open_read_only(config).await?;
    let report = RulesTest::run(&store, &rules, &raw, request.ticket, request.to).await?;
    print_out(json, &report, || output::rules_test(&report))
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

/// The queue a tested message arrives at: the one named, else the
/// ticket's, else the first.
fn arrival_queue(
    queues: &[Queue],
    to: Option<&str>,
    ticket_queue: Option<&str>,
) -> CliResult<Queue, StoreError> {
    match (to, ticket_queue) {
        (Some(address), _) => queues
            .iter()
            .find(|q| q.address.eq_ignore_ascii_case(address) || q.name == address)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("no queue '{address}'"))),
        (None, Some(name)) => queues
            .iter()
            .find(|q| q.name == name)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("no queue '{name}'"))),
        (None, None) => queues
            .first()
            .cloned()
            .ok_or_else(|| StoreError::NotFound("no queues".into())),
    }
}

impl RulesTest {
    pub async fn run(
        store: &Store,
        rules: &Rules,
        raw: &[u8],
        ticket: Option<i64>,
        to: Option<String>,
    ) -> CliResult<RulesTest, StoreError> {
        let now = Utc::now();
        let queues = store.queues().await?;
        let existing = match ticket {
            Some(n) => Some(store.ticket(n).await?),
            None => None,
        };
        let queue = arrival_queue(
            &queues,
            to.as_deref(),
            existing.as_ref().map(|t| t.queue.as_str()),
        )?;
        let mut variables = rules::context::message_variables(raw, &queue.address);
        // A saved message has no SMTP client to check: its topmost
        // Authentication-Results header is taken as a trusted relay's
        // would be (at ingest only a trusted relay's counts).
        let auth = crate::mime::header::field_values(raw, b"Authentication-Results")
            .next()
            .and_then(|value| {
                let value = crate::mime::header::unfold(value);
                crate::domain::sender_auth::from_authentication_results(&String::from_utf8_lossy(
                    &value,
                ))
            });
        variables.set("auth", rules::context::auth_value(auth.as_ref()));
        let snapshot = match &existing {
            Some(t) => rules::scheduler::snapshot(t),
            None => TicketSnapshot {
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
        let effects = rules::effects(
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
            let (first_response, resolution) = rules::sla::initial_dues(policy, start);
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
                (true, Some(AutoReply::Off)) => Some("none".into()),
                (true, Some(AutoReply::Template(t))) => Some(t.clone()),
            },
            deadlines,
        })
    }
}

/// Checks the configured rules file, then asks the running server to load
/// it (SIGHUP to the pid in DATA_DIR/postdesk.pid).
/// Recorded in the audit log with the file's digest, so that "which rules
/// were in force" has an answer.
pub async fn reload(config: &Config) -> CliResult<()> {
    let path = rules_file(config, None)?;
    Rules::load(&path)?;
    let digest = RulesHandle::file_digest(&path)
        .map_err(CliError::io(format!("cannot read {}", path.display())))?;
    let pid_file = config.data_dir.join(PID_FILE);
    let pid = std::fs::read_to_string(&pid_file).map_err(CliError::io(format!(
        "no running server: cannot read {}",
        pid_file.display()
    )))?;
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| CliError::Failed(format!("{} holds no process id", pid_file.display())))?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .map_err(CliError::io("cannot run kill"))?;
    if !status.success() {
        return Err(CliError::Failed(format!(
            "no server runs as process {pid} (stale {})",
            pid_file.display()
        )));
    }
    let store = crate::store::Store::connect(&config.database_url()).await?;
    super::audit::record(
        &store,
        "rules reload",
        &format!("{} sha256 {digest}", path.display()),
    )
    .await?;
    store.close().await;
    print_line(format_args!(
        "{}: ok; server (pid {pid}) asked to reload it",
        path.display()
    ))
}
