//! Shared templates (canned replies): what a template is called, how a
//! reply's placeholders are filled and where `#template NAME` puts a
//! template's text. Pure: submission reads the templates from the store
//! and rewrites the mail's bytes with what is decided here.
//!
//! Placeholders are minijinja expressions between `{{` and `}}`, evaluated
//! one by one with undefined values an error (strict): `{{ customer.name }}`,
//! `{{ ticket.number }}`, `{{ agent.name }}`, `{{ queue.name }}` and the
//! few others of [`PlaceholderContext`], with minijinja's filters
//! (`{{ customer.name | default("there") }}`). Only expressions are
//! evaluated, never statements (`{% … %}` stays text), and quoted mail
//! (`>` lines, `<blockquote>`) is left as it is: a customer's quoted
//! `{{ … }}` is not the agent's placeholder. A placeholder that does not
//! evaluate makes the whole mail fail: the agent gets a note, the
//! customer nothing, never a half-filled mail.

use super::permission::{self, Actor, AgentRole, Denied};
use super::subject;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// The longest template name.
pub const MAX_NAME_LEN: usize = 100;

/// A template's name: its subject without reply prefixes and ticket tags,
/// in lower case with single spaces (`Refund` and ` refund ` are one).
pub fn template_name(subject_text: &str) -> String {
    subject::clean(subject_text).to_lowercase()
}

/// Why a name cannot be a template's, if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("a template needs a name (its subject)".into())
    } else if name.chars().count() > MAX_NAME_LEN {
        Some(format!(
            "a template's name is at most {MAX_NAME_LEN} characters"
        ))
    } else {
        None
    }
}

/// What the placeholders of a reply can name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlaceholderContext {
    pub customer: PlaceholderPerson,
    pub ticket: PlaceholderTicket,
    pub agent: PlaceholderPerson,
    pub queue: PlaceholderQueue,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlaceholderPerson {
    /// The display name, or the address when none is known.
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlaceholderTicket {
    pub number: i64,
    pub subject: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlaceholderQueue {
    pub name: String,
    pub address: String,
}

/// Whether a text holds anything that looks like a placeholder.
pub fn has_placeholders(text: &str) -> bool {
    text.contains("{{")
}

/// The byte ranges of quoted mail: lines starting with `>` in text, what
/// is inside `<blockquote>` in HTML.
fn quoted_ranges(text: &str, html: bool) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    if !html {
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            if line.trim_start().starts_with('>') {
                ranges.push((at, at + line.len()));
            }
            at += line.len();
        }
        return ranges;
    }
    let lower = text.to_ascii_lowercase();
    let mut depth = 0usize;
    let mut start = 0;
    let mut at = 0;
    while let Some(offset) = lower[at..].find('<') {
        let tag_at = at + offset;
        let rest = &lower[tag_at..];
        if rest.starts_with("<blockquote") {
            if depth == 0 {
                start = tag_at;
            }
            depth += 1;
        } else if rest.starts_with("</blockquote") && depth > 0 {
            depth -= 1;
            if depth == 0 {
                ranges.push((start, tag_at));
            }
        }
        at = tag_at + 1;
    }
    if depth > 0 {
        ranges.push((start, text.len()));
    }
    ranges
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The entities a mail client writes inside an expression.
fn unescape_html(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&nbsp;", " ")
        .replace("&#160;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Fills the placeholders of a text (or an HTML body: values escaped).
/// Err: every placeholder that did not evaluate, with why.
pub fn fill_placeholders(
    text: &str,
    context: &PlaceholderContext,
    html: bool,
) -> Result<String, Vec<String>> {
    if !has_placeholders(text) {
        return Ok(text.to_string());
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let value = minijinja::Value::from(minijinja::value::Serde(context));
    let quoted = quoted_ranges(text, html);
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("{{") {
        let open = at + offset;
        let Some(close_offset) = text[open + 2..].find("}}") else {
            break;
        };
        let close = open + 2 + close_offset;
        out.push_str(&text[at..open]);
        let whole = &text[open..close + 2];
        at = close + 2;
        if quoted.iter().any(|(s, e)| open >= *s && open < *e) {
            out.push_str(whole);
            continue;
        }
        let source = &text[open + 2..close];
        let expression = if html {
            unescape_html(source)
        } else {
            source.to_string()
        };
        let evaluated = env
            .compile_expression(expression.trim())
            .and_then(|e| e.eval(value.clone()));
        match evaluated {
            Ok(v) if v.is_undefined() => {
                errors.push(format!("{}: {}", whole.trim(), unknown()));
            }
            Ok(v) if v.is_none() => {
                errors.push(format!("{} has no value", whole.trim()));
            }
            Ok(v) => {
                let shown = v.to_string();
                if html {
                    out.push_str(&escape_html(&shown));
                } else {
                    out.push_str(&shown);
                }
            }
            Err(err) => errors.push(format!("{}: {}", whole.trim(), explain(&err))),
        }
    }
    out.push_str(&text[at..]);
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.dedup();
        Err(errors)
    }
}

const KNOWN: &str = "customer.name, customer.address, ticket.number, ticket.subject, \
                     agent.name, agent.address, queue.name, queue.address";

fn unknown() -> String {
    format!("unknown placeholder (known: {KNOWN})")
}

fn explain(err: &minijinja::Error) -> String {
    match err.kind() {
        minijinja::ErrorKind::UndefinedError => unknown(),
        _ => format!("{err} (known placeholders: {KNOWN})"),
    }
}

/// A template's bodies as a reply takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateBody {
    pub text: String,
    /// The HTML to insert into an HTML part: the template's own (its
    /// `<body>` content) or its text, escaped.
    pub html: String,
}

impl TemplateBody {
    pub fn new(text: &str, html: Option<&str>) -> TemplateBody {
        TemplateBody {
            text: text.trim_end().to_string(),
            html: match html {
                Some(html) => html_fragment(html).trim().to_string(),
                None => text_as_html(text.trim_end()),
            },
        }
    }
}

/// Plain text as HTML: escaped, lines kept.
pub fn text_as_html(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(escape_html).collect();
    format!("<div>{}</div>", lines.join("<br>\n"))
}

/// What is inside `<body>…</body>` of an HTML document (all of it when it
/// has no body element).
pub fn html_fragment(html: &str) -> &str {
    let lower = html.to_ascii_lowercase();
    let start = lower
        .find("<body")
        .and_then(|at| lower[at..].find('>').map(|end| at + end + 1))
        .unwrap_or(0);
    let end = lower
        .rfind("</body")
        .filter(|e| *e >= start)
        .unwrap_or(html.len());
    &html[start..end]
}

/// The text body with the templates put where the command block was (its
/// top), each followed by a blank line.
pub fn insert_into_text(body: &str, templates: &[TemplateBody]) -> String {
    if templates.is_empty() {
        return body.to_string();
    }
    let crlf = body.contains("\r\n");
    let mut inserted = String::new();
    for template in templates {
        inserted.push_str(&template.text);
        inserted.push_str("\n\n");
    }
    if crlf {
        inserted = inserted.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    inserted.push_str(body.trim_start_matches(['\r', '\n']));
    inserted
}

/// The HTML body with the templates right after `<body>` (the command
/// block's place: it was at the top).
pub fn insert_into_html(body: &str, templates: &[TemplateBody]) -> String {
    if templates.is_empty() {
        return body.to_string();
    }
    let lower = body.to_ascii_lowercase();
    let at = lower
        .find("<body")
        .and_then(|at| lower[at..].find('>').map(|end| at + end + 1))
        .unwrap_or(0);
    let mut out = String::with_capacity(body.len() + 256);
    out.push_str(&body[..at]);
    for template in templates {
        out.push_str(&template.html);
        out.push_str("<br>\n");
    }
    out.push_str(&body[at..]);
    out
}

/// May the actor add a template to `queue` (or replace their own)? Any
/// agent of the queue: no approval needed.
pub fn may_add(actor: &Actor, queue: &str) -> Result<(), Denied> {
    permission::may_use_queue(actor, queue)
}

/// May the actor remove (or replace) a template? Its author, a lead of
/// its queue, or an admin.
pub fn may_remove(
    actor: &Actor,
    template: &str,
    queue: &str,
    author_id: Option<i64>,
    author: &str,
) -> Result<(), String> {
    if actor.role == AgentRole::Admin
        || author_id == Some(actor.id)
        || (actor.role == AgentRole::Lead && actor.works_in(queue))
    {
        return Ok(());
    }
    if !actor.works_in(queue) {
        return Err(format!("you do not work in queue '{queue}'"));
    }
    Err(format!(
        "template '{template}' is {author}'s: only its author, a lead of queue '{queue}' or an admin may remove or replace it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> PlaceholderContext {
        PlaceholderContext {
            customer: PlaceholderPerson {
                name: "Alice <A&B>".into(),
                address: "alice@example.com".into(),
            },
            ticket: PlaceholderTicket {
                number: 42,
                subject: "Printer".into(),
            },
            agent: PlaceholderPerson {
                name: "Bob".into(),
                address: "bob@desk.test".into(),
            },
            queue: PlaceholderQueue {
                name: "support".into(),
                address: "support@desk.test".into(),
            },
        }
    }

    #[test]
    fn names_are_normalised_subjects() {
        assert_eq!(template_name("  Re: Refund   Policy "), "refund policy");
        assert_eq!(template_name("[#12] Refund"), "refund");
        assert!(name_problem("").is_some());
        assert!(name_problem("refund").is_none());
    }

    #[test]
    fn placeholders_are_filled() {
        let filled = fill_placeholders(
            "Hi {{ customer.name }}, ticket #{{ticket.number}} ({{ queue.name | upper }}). {{ agent.name }}",
            &context(),
            false,
        );
        assert_eq!(
            filled,
            Ok("Hi Alice <A&B>, ticket #42 (SUPPORT). Bob".to_string())
        );
        let html = fill_placeholders("<p>Hi {{ customer.name }}</p>", &context(), true);
        assert_eq!(html, Ok("<p>Hi Alice &lt;A&amp;B&gt;</p>".to_string()));
        let quoted = fill_placeholders(
            "<p>{{ customer.name | default(&quot;x&quot;) }}</p>",
            &context(),
            true,
        );
        assert_eq!(quoted, Ok("<p>Alice &lt;A&amp;B&gt;</p>".to_string()));
    }

    #[test]
    fn an_unknown_placeholder_fails_the_whole_text() {
        let filled = fill_placeholders(
            "Hi {{ customer.nmae }} and {{ custmer.name }}, {{ ticket.number }}",
            &context(),
            false,
        );
        let Err(errors) = filled else {
            panic!("{filled:?}")
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("customer.nmae"), "{errors:?}");
        assert!(errors[0].contains("unknown placeholder"), "{errors:?}");
        assert!(fill_placeholders("{{ 1 + }}", &context(), false).is_err());
    }

    #[test]
    fn quoted_mail_and_statements_are_left_alone() {
        let text = "Hi {{ customer.name }}\n> your {{ mistake }} here\n{% if x %}";
        assert_eq!(
            fill_placeholders(text, &context(), false),
            Ok("Hi Alice <A&B>\n> your {{ mistake }} here\n{% if x %}".to_string())
        );
        let html = "<p>{{ agent.name }}</p><blockquote><p>{{ nope }}</p></blockquote>";
        assert_eq!(
            fill_placeholders(html, &context(), true),
            Ok("<p>Bob</p><blockquote><p>{{ nope }}</p></blockquote>".to_string())
        );
        assert_eq!(
            fill_placeholders("no close {{ here", &context(), false),
            Ok("no close {{ here".to_string())
        );
    }

    #[test]
    fn templates_go_where_the_command_was() {
        let refund = TemplateBody::new("We refunded you.\n", None);
        assert_eq!(
            insert_into_text("\r\nThanks\r\n> quoted\r\n", std::slice::from_ref(&refund)),
            "We refunded you.\r\n\r\nThanks\r\n> quoted\r\n"
        );
        assert_eq!(
            insert_into_html("<html><body><p></p>Hi</body></html>", &[refund]),
            "<html><body><div>We refunded you.</div><br>\n<p></p>Hi</body></html>"
        );
        let html = TemplateBody::new("x", Some("<html><body><b>Yes</b></body></html>"));
        assert_eq!(html.html, "<b>Yes</b>");
    }

    #[test]
    fn authors_leads_and_admins_remove_templates() {
        let actor = |id, role| Actor {
            id,
            email: format!("a{id}@x"),
            role,
            queues: vec!["support".into()],
        };
        let mine = may_remove(
            &actor(1, AgentRole::Agent),
            "refund",
            "support",
            Some(1),
            "a1@x",
        );
        assert!(mine.is_ok());
        let theirs = may_remove(
            &actor(2, AgentRole::Agent),
            "refund",
            "support",
            Some(1),
            "a1@x",
        );
        assert!(theirs.is_err_and(|e| e.contains("only its author")));
        assert!(
            may_remove(
                &actor(3, AgentRole::Lead),
                "refund",
                "support",
                Some(1),
                "a1@x"
            )
            .is_ok()
        );
        assert!(
            may_remove(
                &actor(3, AgentRole::Lead),
                "refund",
                "billing",
                Some(1),
                "a1@x"
            )
            .is_err()
        );
        assert!(
            may_remove(
                &actor(4, AgentRole::Admin),
                "refund",
                "billing",
                None,
                "cli"
            )
            .is_ok()
        );
        assert!(may_add(&actor(2, AgentRole::Agent), "support").is_ok());
        assert!(may_add(&actor(2, AgentRole::Agent), "billing").is_err());
    }
}
