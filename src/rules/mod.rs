//! rules.toml: business calendars, SLA policies, rules that run at ingest,
//! and escalations the scheduler fires (DESIGN.md §6).
//!
//! A file is loaded whole or not at all: every condition is compiled and
//! every name it uses is checked before the rules replace the ones in
//! force, so a broken edit never leaves a server without rules.

pub mod calendar;
pub mod condition;
pub mod context;
pub mod scheduler;
pub mod sla;

use crate::config::line_column;
use crate::domain::automation::{QueueChoice, RuleEffects, TicketSnapshot};
use crate::domain::sla::SlaStart;
use crate::domain::ticket::{Priority, Status};
use crate::store::Queue;
use calendar::{BusinessDuration, Calendar};
use chrono::{DateTime, Utc};
use condition::{Condition, ESCALATION_SCHEMA, MESSAGE_SCHEMA, Variables};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use toml::Spanned;

/// A rules file is configuration: its mistakes are reported the same way
/// (file, line, column, problem).
pub use crate::config::ConfigError as RulesError;

/// The name of the built-in calendar where every second is business time.
pub const ALWAYS: &str = "24x7";

/// A loaded, checked rules file.
#[derive(Debug)]
pub struct Rules {
    pub source: Option<PathBuf>,
    pub calendars: BTreeMap<String, Arc<Calendar>>,
    pub policies: BTreeMap<String, Policy>,
    /// The SLA of a new ticket no rule gave one.
    pub default_sla: Option<String>,
    pub rules: Vec<Rule>,
    pub escalations: Vec<Escalation>,
    /// What the rules read, and what the escalations read.
    pub rule_needs: condition::Needs,
    pub escalation_needs: condition::Needs,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub calendar_name: String,
    pub calendar: Arc<Calendar>,
    pub first_response: Option<BusinessDuration>,
    pub next_response: Option<BusinessDuration>,
    pub resolution: Option<BusinessDuration>,
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub line: usize,
    pub when: Condition,
    /// Its condition reads `ticket.satisfaction`: it runs again when a
    /// customer's rating arrives (the others run on messages only).
    pub on_rating: bool,
    pub actions: Actions,
}

/// What a matching rule does, in the order the event log lists it.
#[derive(Debug, Default, Clone)]
pub struct Actions {
    pub priority: Option<Priority>,
    /// `status = "resolved"`: e.g. a customer's "that solved it" after the
    /// acknowledgement suggested articles (issue 19).
    pub status: Option<Status>,
    pub queue: Option<String>,
    pub tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub sla: Option<String>,
    pub owner: Option<String>,
    pub auto_reply: Option<AutoReply>,
    pub stop: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoReply {
    /// No acknowledgement for this message.
    Off,
    /// The acknowledgement from this template (in the templates directory).
    Template(String),
}

#[derive(Debug)]
pub struct Escalation {
    pub name: String,
    pub line: usize,
    pub when: Condition,
    pub priority: Option<Priority>,
    pub queue: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub notify: Vec<String>,
    pub template: String,
}

// The file as written; every value that can be wrong keeps its position.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    default_sla: Option<Spanned<String>>,
    #[serde(default)]
    calendar: BTreeMap<String, Spanned<CalendarToml>>,
    #[serde(default)]
    sla: BTreeMap<String, Spanned<SlaToml>>,
    #[serde(default)]
    rule: Vec<Spanned<RuleToml>>,
    #[serde(default)]
    escalation: Vec<Spanned<EscalationToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarToml {
    timezone: Spanned<String>,
    hours: Spanned<BTreeMap<String, String>>,
    holidays: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlaToml {
    calendar: Option<Spanned<String>>,
    first_response: Option<Spanned<String>>,
    next_response: Option<Spanned<String>>,
    resolution: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    name: String,
    when: Spanned<String>,
    priority: Option<Spanned<String>>,
    status: Option<Spanned<String>>,
    queue: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    remove_tags: Vec<String>,
    sla: Option<Spanned<String>>,
    owner: Option<String>,
    auto_reply: Option<Spanned<AutoReplyToml>>,
    #[serde(default)]
    stop: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AutoReplyToml {
    Enabled(bool),
    Template(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationToml {
    name: String,
    when: Spanned<String>,
    priority: Option<Spanned<String>>,
    queue: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
    template: Option<String>,
}

impl Rules {
    /// No rules, no SLA: what a server runs without a rules file.
    pub fn empty() -> Rules {
        Rules {
            source: None,
            calendars: BTreeMap::from([(ALWAYS.to_string(), Arc::new(Calendar::always()))]),
            policies: BTreeMap::new(),
            default_sla: None,
            rules: Vec::new(),
            escalations: Vec::new(),
            rule_needs: condition::Needs::default(),
            escalation_needs: condition::Needs::default(),
        }
    }

    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Rules::parse(&text, path)
    }

    /// Parses and checks TOML text; `path` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Rules, RulesError> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            RulesError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let file: FileToml = toml::from_str(text).map_err(|err| {
            at(
                err.span().map_or(0, |s| s.start),
                err.message().trim().to_string(),
            )
        })?;
        let mut rules = Rules::empty();
        rules.source = Some(path.to_path_buf());

        for (name, calendar) in &file.calendar {
            if name == ALWAYS {
                return Err(at(
                    calendar.span().start,
                    format!("calendar '{ALWAYS}' is built in and cannot be redefined"),
                ));
            }
            let c = calendar.get_ref();
            let hours: Vec<(&str, &str)> = c
                .hours
                .get_ref()
                .iter()
                .map(|(day, spec)| (day.as_str(), spec.as_str()))
                .collect();
            let holidays: Vec<&str> = c
                .holidays
                .as_ref()
                .map(|h| h.get_ref().iter().map(String::as_str).collect())
                .unwrap_or_default();
            let built = Calendar::new(c.timezone.get_ref(), &hours, &holidays).map_err(|err| {
                let offset = match &err {
                    calendar::CalendarError::UnknownTimeZone(_) => c.timezone.span().start,
                    calendar::CalendarError::BadHoliday(_) => c
                        .holidays
                        .as_ref()
                        .map_or(calendar.span().start, |h| h.span().start),
                    _ => c.hours.span().start,
                };
                at(offset, format!("calendar '{name}': {err}"))
            })?;
            rules.calendars.insert(name.clone(), Arc::new(built));
        }

        for (name, sla) in &file.sla {
            let s = sla.get_ref();
            let (calendar_name, offset) = match &s.calendar {
                Some(c) => (c.get_ref().clone(), c.span().start),
                None => (ALWAYS.to_string(), sla.span().start),
            };
            let calendar = rules
                .calendars
                .get(&calendar_name)
                .cloned()
                .ok_or_else(|| {
                    at(
                        offset,
                        format!(
                            "sla '{name}': unknown calendar '{calendar_name}' (known: {})",
                            rules
                                .calendars
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            let target = |value: &Option<Spanned<String>>, key: &str| {
                value
                    .as_ref()
                    .map(|v| {
                        BusinessDuration::parse(v.get_ref())
                            .map_err(|err| at(v.span().start, format!("sla '{name}' {key}: {err}")))
                    })
                    .transpose()
            };
            let policy = Policy {
                name: name.clone(),
                calendar_name,
                calendar,
                first_response: target(&s.first_response, "first_response")?,
                next_response: target(&s.next_response, "next_response")?,
                resolution: target(&s.resolution, "resolution")?,
            };
            if policy.first_response.is_none()
                && policy.next_response.is_none()
                && policy.resolution.is_none()
            {
                return Err(at(
                    sla.span().start,
                    format!(
                        "sla '{name}' sets no target (first_response, next_response or resolution)"
                    ),
                ));
            }
            rules.policies.insert(name.clone(), policy);
        }

        let known_policy = |name: &Spanned<String>, what: &str| {
            if rules.policies.contains_key(name.get_ref()) {
                Ok(())
            } else {
                Err(at(
                    name.span().start,
                    format!(
                        "{what}: unknown sla '{}' (known: {})",
                        name.get_ref(),
                        rules
                            .policies
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        if let Some(default) = &file.default_sla {
            known_policy(default, "default_sla")?;
        }
        let priority = |value: &Option<Spanned<String>>, what: &str| {
            value
                .as_ref()
                .map(|p| {
                    p.get_ref().parse::<Priority>().map_err(|_| {
                        at(
                            p.span().start,
                            format!(
                                "{what}: unknown priority '{}' (low, normal, high or urgent)",
                                p.get_ref()
                            ),
                        )
                    })
                })
                .transpose()
        };
        let status = |value: &Option<Spanned<String>>, what: &str| {
            value
                .as_ref()
                .map(|s| {
                    s.get_ref().parse::<Status>().map_err(|_| {
                        at(
                            s.span().start,
                            format!(
                                "{what}: unknown status '{}' (open, pending, resolved or closed)",
                                s.get_ref()
                            ),
                        )
                    })
                })
                .transpose()
        };
        let condition = |when: &Spanned<String>, schema, what: &str| {
            Condition::compile(when.get_ref(), schema).map_err(|err| {
                // The expression starts after the quote that opens it.
                let start = when.span().start;
                let quote = text[start..].find(['"', '\'']).map_or(start, |q| start + q);
                let triple =
                    text[quote..].starts_with("\"\"\"") || text[quote..].starts_with("'''");
                let mut offset = quote + if triple { 3 } else { 1 };
                if triple && text[offset..].starts_with('\n') {
                    offset += 1;
                }
                let (line, column) = line_column(text, offset);
                let (line, column) = if err.line > 1 {
                    (line + err.line - 1, err.column)
                } else {
                    (line, column + err.column - 1)
                };
                RulesError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: format!("{what}: {}", err.message),
                }
            })
        };

        let mut seen = Vec::new();
        for rule in &file.rule {
            let r = rule.get_ref();
            let what = format!("rule '{}'", r.name);
            if seen.contains(&r.name) {
                return Err(at(rule.span().start, format!("{what} is defined twice")));
            }
            seen.push(r.name.clone());
            if let Some(sla) = &r.sla {
                known_policy(sla, &what)?;
            }
            let auto_reply = match &r.auto_reply {
                None => None,
                Some(value) => match value.get_ref() {
                    AutoReplyToml::Enabled(false) => Some(AutoReply::Off),
                    AutoReplyToml::Enabled(true) => Some(AutoReply::Template("ack.txt".into())),
                    AutoReplyToml::Template(name) if name.trim().is_empty() => {
                        return Err(at(
                            value.span().start,
                            format!("{what}: auto_reply names no template"),
                        ));
                    }
                    AutoReplyToml::Template(name) => Some(AutoReply::Template(name.clone())),
                },
            };
            rules.rules.push(Rule {
                name: r.name.clone(),
                line: line_column(text, rule.span().start).0,
                when: condition(&r.when, MESSAGE_SCHEMA, &what)?,
                on_rating: r.when.get_ref().contains("satisfaction"),
                actions: Actions {
                    priority: priority(&r.priority, &what)?,
                    status: status(&r.status, &what)?,
                    queue: r.queue.clone(),
                    tags: r.tags.clone(),
                    remove_tags: r.remove_tags.clone(),
                    sla: r.sla.as_ref().map(|s| s.get_ref().clone()),
                    owner: r.owner.clone(),
                    auto_reply,
                    stop: r.stop,
                },
            });
        }
        seen.clear();
        for escalation in &file.escalation {
            let e = escalation.get_ref();
            let what = format!("escalation '{}'", e.name);
            if seen.contains(&e.name) {
                return Err(at(
                    escalation.span().start,
                    format!("{what} is defined twice"),
                ));
            }
            seen.push(e.name.clone());
            let built = Escalation {
                name: e.name.clone(),
                line: line_column(text, escalation.span().start).0,
                when: condition(&e.when, ESCALATION_SCHEMA, &what)?,
                priority: priority(&e.priority, &what)?,
                queue: e.queue.clone(),
                owner: e.owner.clone(),
                tags: e.tags.clone(),
                notify: e.notify.clone(),
                template: e
                    .template
                    .clone()
                    .unwrap_or_else(|| "escalation.txt".into()),
            };
            if built.priority.is_none()
                && built.queue.is_none()
                && built.owner.is_none()
                && built.tags.is_empty()
                && built.notify.is_empty()
            {
                return Err(at(
                    escalation.span().start,
                    format!("{what} does nothing (set priority, queue, owner, tags or notify)"),
                ));
            }
            rules.escalations.push(built);
        }
        rules.default_sla = file.default_sla.map(|s| s.into_inner());
        for rule in &rules.rules {
            rules.rule_needs.add(&rule.when);
        }
        for escalation in &rules.escalations {
            rules.escalation_needs.add(&escalation.when);
        }
        Ok(rules)
    }

    /// Runs the rules over a message in file order.
    pub fn evaluate(
        &self,
        message: &Variables,
        ticket: &TicketSnapshot,
        new: bool,
        now: DateTime<Utc>,
    ) -> Evaluation {
        let context = self.rule_context(message, ticket, new, now);
        let mut evaluation = Evaluation::default();
        for rule in &self.rules {
            match rule.when.evaluate_in(&context) {
                Ok(true) => {
                    evaluation.apply(rule);
                    if rule.actions.stop {
                        break;
                    }
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(rule = %rule.name, %err, "rule skipped: its condition failed");
                    evaluation.errors.push((rule.name.clone(), err));
                }
            }
        }
        evaluation
    }

    /// Runs the rules that read `ticket.satisfaction` when a customer's
    /// rating arrives (`message`: their answer by mail, or none for a
    /// link), in file order.
    pub fn evaluate_rating(
        &self,
        message: &Variables,
        ticket: &TicketSnapshot,
        now: DateTime<Utc>,
    ) -> Evaluation {
        let context = self.rule_context(message, ticket, false, now);
        let mut evaluation = Evaluation::default();
        for rule in self.rules.iter().filter(|r| r.on_rating) {
            match rule.when.evaluate_in(&context) {
                Ok(true) => {
                    evaluation.apply(rule);
                    if rule.actions.stop {
                        break;
                    }
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(rule = %rule.name, %err, "rule skipped: its condition failed");
                    evaluation.errors.push((rule.name.clone(), err));
                }
            }
        }
        evaluation
    }

    /// The CEL context of the rules for a message in its ticket.
    fn rule_context(
        &self,
        message: &Variables,
        ticket: &TicketSnapshot,
        new: bool,
        now: DateTime<Utc>,
    ) -> cel::Context<'static, 'static> {
        let mut variables = message.clone();
        variables.set("ticket", context::ticket_value(ticket, new, now));
        variables.set("now", condition::timestamp(now));
        variables.context(&self.rule_needs)
    }

    /// Each rule's verdict on a message, in file order, for `postdesk
    /// rules test`: "matched", "no match", "not reached" (an earlier rule
    /// stopped) or the error that skips it.
    pub fn explain(
        &self,
        message: &Variables,
        ticket: &TicketSnapshot,
        new: bool,
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let context = self.rule_context(message, ticket, new, now);
        let mut stopped = false;
        self.rules
            .iter()
            .map(|rule| {
                let verdict = if stopped {
                    "not reached".to_string()
                } else {
                    match rule.when.evaluate_in(&context) {
                        Ok(true) => {
                            stopped = rule.actions.stop;
                            "matched".to_string()
                        }
                        Ok(false) => "no match".to_string(),
                        Err(err) => format!("skipped: {err}"),
                    }
                };
                (rule.name.clone(), verdict)
            })
            .collect()
    }

    /// How long before a due time escalations may want a look: every
    /// `duration('…')` they compare with (a negative one: that long after).
    pub fn warning_leads(&self) -> Vec<chrono::Duration> {
        let mut leads: Vec<chrono::Duration> = self
            .escalations
            .iter()
            .flat_map(|e| e.when.durations.iter().copied())
            .filter(|d| !d.is_zero())
            .collect();
        leads.sort();
        leads.dedup();
        leads
    }

    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }
}

/// One thing a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Priority(Priority),
    Status(Status),
    Queue(String),
    Tag(String),
    Untag(String),
    Sla(String),
    Owner(String),
    AutoReply(AutoReply),
    Stop,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Priority(p) => write!(f, "set priority {p}"),
            Action::Status(s) => write!(f, "set status {s}"),
            Action::Queue(q) => write!(f, "set queue {q}"),
            Action::Tag(t) => write!(f, "added tag {t}"),
            Action::Untag(t) => write!(f, "removed tag {t}"),
            Action::Sla(s) => write!(f, "set sla {s}"),
            Action::Owner(o) => write!(f, "set owner {o}"),
            Action::AutoReply(AutoReply::Off) => write!(f, "turned the acknowledgement off"),
            Action::AutoReply(AutoReply::Template(t)) => write!(f, "chose acknowledgement {t}"),
            Action::Stop => write!(f, "stopped the rules"),
        }
    }
}

impl Action {
    /// Actions that replace each other (the last one counts).
    fn slot(&self) -> Option<u8> {
        match self {
            Action::Priority(_) => Some(0),
            Action::Queue(_) => Some(1),
            Action::Sla(_) => Some(2),
            Action::Owner(_) => Some(3),
            Action::AutoReply(_) => Some(4),
            Action::Status(_) => Some(5),
            Action::Tag(_) | Action::Untag(_) | Action::Stop => None,
        }
    }
}

/// What the rules decided for one message; later rules override earlier
/// ones for single-valued actions.
#[derive(Debug, Default, Clone)]
pub struct Evaluation {
    /// The rules that matched, each with its actions.
    pub matched: Vec<(String, Vec<Action>)>,
    /// Rules skipped because their condition failed at run time.
    pub errors: Vec<(String, String)>,
    pub priority: Option<Priority>,
    pub status: Option<Status>,
    pub queue: Option<String>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub sla: Option<String>,
    pub owner: Option<String>,
    pub auto_reply: Option<AutoReply>,
}

impl Evaluation {
    fn apply(&mut self, rule: &Rule) {
        let a = &rule.actions;
        let mut did = Vec::new();
        if let Some(p) = a.priority {
            self.priority = Some(p);
            did.push(Action::Priority(p));
        }
        if let Some(s) = a.status {
            self.status = Some(s);
            did.push(Action::Status(s));
        }
        if let Some(q) = &a.queue {
            self.queue = Some(q.clone());
            did.push(Action::Queue(q.clone()));
        }
        for tag in &a.tags {
            self.remove_tags.retain(|t| t != tag);
            if !self.add_tags.contains(tag) {
                self.add_tags.push(tag.clone());
            }
            did.push(Action::Tag(tag.clone()));
        }
        for tag in &a.remove_tags {
            self.add_tags.retain(|t| t != tag);
            if !self.remove_tags.contains(tag) {
                self.remove_tags.push(tag.clone());
            }
            did.push(Action::Untag(tag.clone()));
        }
        if let Some(s) = &a.sla {
            self.sla = Some(s.clone());
            did.push(Action::Sla(s.clone()));
        }
        if let Some(o) = &a.owner {
            self.owner = Some(o.clone());
            did.push(Action::Owner(o.clone()));
        }
        if let Some(reply) = &a.auto_reply {
            self.auto_reply = Some(reply.clone());
            did.push(Action::AutoReply(reply.clone()));
        }
        if a.stop {
            did.push(Action::Stop);
        }
        self.matched.push((rule.name.clone(), did));
    }

    /// One line per action that takes effect, for the ticket's event log:
    /// an action a later rule replaced, or one that changes nothing on the
    /// ticket (`current`; None: a new ticket), is left out.
    pub fn event_lines(&self, current: Option<&TicketSnapshot>) -> Vec<String> {
        let mut lines = Vec::new();
        let mut replaced = [false; 6];
        let mut added: Vec<&str> = Vec::new();
        for (rule, did) in self.matched.iter().rev() {
            let mut rule_lines = Vec::new();
            for action in did.iter().rev() {
                if let Some(slot) = action.slot() {
                    if replaced[usize::from(slot)] {
                        continue;
                    }
                    replaced[usize::from(slot)] = true;
                }
                let final_tag = match action {
                    Action::Tag(t) => self.add_tags.contains(t),
                    Action::Untag(t) => self.remove_tags.contains(t),
                    _ => true,
                };
                let tag_seen = match action {
                    Action::Tag(t) | Action::Untag(t) => {
                        let seen = added.contains(&t.as_str());
                        added.push(t);
                        seen
                    }
                    _ => false,
                };
                if !final_tag || tag_seen || current.is_some_and(|t| changes_nothing(action, t)) {
                    continue;
                }
                rule_lines.push(format!("rule '{rule}' {action}"));
            }
            let only_stop =
                rule_lines.len() == 1 && did.len() > 1 && did.last() == Some(&Action::Stop);
            if !only_stop {
                lines.extend(rule_lines);
            }
        }
        lines.reverse();
        lines.extend(
            self.errors
                .iter()
                .map(|(rule, err)| format!("rule '{rule}' skipped: {err}")),
        );
        lines
    }
}

/// Whether `action` leaves ticket `t` as it is.
fn changes_nothing(action: &Action, t: &TicketSnapshot) -> bool {
    match action {
        Action::Priority(p) => t.priority == *p,
        Action::Status(s) => t.status == *s,
        Action::Queue(q) => t.queue.eq_ignore_ascii_case(q),
        Action::Tag(tag) => t.tags.contains(tag),
        Action::Untag(tag) => !t.tags.contains(tag),
        Action::Sla(s) => t.sla_policy.as_deref() == Some(s.as_str()),
        Action::Owner(o) => t
            .owner
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(o)),
        // Only a new ticket is acknowledged.
        Action::AutoReply(_) => true,
        Action::Stop => false,
    }
}

/// Turns an evaluation into what the filer applies, leaving out what
/// changes nothing on the ticket (`current`; None: a new ticket): names
/// resolved to queues, the SLA (a rule's, else the default for a new
/// ticket) into due times from `now`.
pub fn effects(
    rules: &Rules,
    evaluation: &Evaluation,
    queues: &[Queue],
    current: Option<&TicketSnapshot>,
    now: DateTime<Utc>,
) -> RuleEffects {
    let new = current.is_none();
    let unchanged = |action: Action| current.is_some_and(|t| changes_nothing(&action, t));
    let mut events = evaluation.event_lines(current);
    let queue = evaluation
        .queue
        .as_ref()
        .filter(|q| !unchanged(Action::Queue((*q).clone())))
        .and_then(|name| {
            let found = queues.iter().find(|q| {
                q.name.eq_ignore_ascii_case(name) || q.address.eq_ignore_ascii_case(name)
            });
            if found.is_none() {
                events.push(format!("queue '{name}' not set: no such queue"));
            }
            found.map(|q| QueueChoice {
                id: q.id,
                name: q.name.clone(),
                address: q.address.clone(),
            })
        });
    let policy_name = evaluation
        .sla
        .clone()
        .filter(|s| !unchanged(Action::Sla(s.clone())))
        .or_else(|| new.then(|| rules.default_sla.clone()).flatten());
    let sla = policy_name.and_then(|name| {
        let policy = rules.policy(&name)?;
        let (first_response_due, resolution_due) = if new {
            sla::initial_dues(policy, now)
        } else {
            // The scheduler measures an existing ticket from its creation.
            (None, None)
        };
        if evaluation.sla.is_none() {
            events.push(format!("default sla {name}"));
        }
        Some(SlaStart {
            policy: name,
            first_response_due,
            resolution_due,
        })
    });
    RuleEffects {
        priority: evaluation
            .priority
            .filter(|p| !unchanged(Action::Priority(*p))),
        status: evaluation.status.filter(|s| !unchanged(Action::Status(*s))),
        queue,
        add_tags: evaluation
            .add_tags
            .iter()
            .filter(|t| !unchanged(Action::Tag((*t).clone())))
            .cloned()
            .collect(),
        remove_tags: evaluation
            .remove_tags
            .iter()
            .filter(|t| !unchanged(Action::Untag((*t).clone())))
            .cloned()
            .collect(),
        owner: evaluation
            .owner
            .clone()
            .filter(|o| !unchanged(Action::Owner(o.clone()))),
        sla,
        auto_reply: evaluation.auto_reply.as_ref().map(|a| match a {
            AutoReply::Off => None,
            AutoReply::Template(t) => Some(t.clone()),
        }),
        events,
    }
}

/// The rules in force, replaced whole by a reload.
pub struct RulesHandle {
    current: RwLock<Arc<Rules>>,
    path: Option<PathBuf>,
}

impl RulesHandle {
    /// Loads the configured file (none configured: no rules); a file with
    /// mistakes is refused, as a server must refuse it.
    pub fn load(path: Option<PathBuf>) -> Result<RulesHandle, RulesError> {
        let rules = match &path {
            Some(p) => Rules::load(p)?,
            None => Rules::empty(),
        };
        Ok(RulesHandle {
            current: RwLock::new(Arc::new(rules)),
            path,
        })
    }

    /// As [`RulesHandle::load`], but a file with mistakes is logged and no
    /// rules are in force: a CLI command still runs.
    pub fn open(path: Option<PathBuf>) -> RulesHandle {
        RulesHandle::load(path.clone()).unwrap_or_else(|err| {
            tracing::error!(%err, "rules not loaded");
            RulesHandle {
                current: RwLock::new(Arc::new(Rules::empty())),
                path,
            }
        })
    }

    pub fn current(&self) -> Arc<Rules> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the file again; a file with mistakes is refused and the rules
    /// in force stay.
    /// The SHA-256 of a rules file's bytes (hex), for the audit log: which
    /// version of the file was checked or loaded.
    pub fn file_digest(path: &std::path::Path) -> std::io::Result<String> {
        let bytes = std::fs::read(path)?;
        Ok(crate::domain::message_id::sha256_hex(&bytes))
    }

    pub fn reload(&self) -> Result<Arc<Rules>, RulesError> {
        let Some(path) = &self.path else {
            return Ok(self.current());
        };
        let rules = Arc::new(Rules::load(path)?);
        match self.current.write() {
            Ok(mut guard) => *guard = rules.clone(),
            Err(poisoned) => *poisoned.into_inner() = rules.clone(),
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests;
