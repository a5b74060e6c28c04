//! The values conditions read: a message (built once per message, shared
//! by all rules), its ticket, and a ticket's SLA clocks for escalations.
//! The names are documented in examples/rules.toml.

use super::condition::{Variables, map, string, strings, timestamp};
use crate::domain::address;
use crate::domain::automation::TicketSnapshot;
use crate::domain::sender_auth::{AuthVerdict, SenderAuth};
use cel::Value;
use chrono::{DateTime, Utc};
use mail_parser::{Address, Message, MessageParser, MimeHeaders};
use std::sync::Arc;

/// Body text beyond this is not matched (a rule looks for words near the
/// top, and a 20 MB log attachment must not cost a regex scan).
const MAX_BODY: usize = 64 * 1024;

/// The `ticket` variable; `new` when the message opens it (number 0).
pub fn ticket_value(t: &TicketSnapshot, new: bool, now: DateTime<Utc>) -> Value {
    let age = t.created_at.map_or(chrono::Duration::zero(), |c| now - c);
    map(vec![
        ("number", Value::Int(t.number)),
        ("queue", string(&t.queue)),
        ("priority", string(t.priority.as_str())),
        ("status", string(t.status.as_str())),
        ("tags", strings(&t.tags)),
        ("customer", string(&t.customer)),
        ("owner", string(t.owner.as_deref().unwrap_or(""))),
        ("age", Value::Duration(age)),
        ("messages", Value::Int(t.messages)),
        ("new", Value::Bool(new)),
        (
            "satisfaction",
            match &t.satisfaction {
                Some(rating) => string(rating),
                None => Value::Null,
            },
        ),
        (
            "suggested_articles",
            Value::List(Arc::new(
                t.suggested_articles
                    .iter()
                    .map(|id| Value::Int(*id))
                    .collect(),
            )),
        ),
    ])
}

fn address_value(address: &str, name: Option<&str>) -> Value {
    let (local, domain) = address::split(address).unwrap_or((address, ""));
    map(vec![
        ("address", string(address)),
        ("name", string(name.unwrap_or(""))),
        ("local", string(&local.to_lowercase())),
        ("domain", string(&domain.to_lowercase())),
    ])
}

fn addresses(list: Option<&Address<'_>>) -> Vec<(String, Option<String>)> {
    let Some(list) = list else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| {
            let addr = a.address.as_deref()?;
            Some((
                address::normalize(addr),
                a.name.as_deref().map(str::to_string),
            ))
        })
        .collect()
}

/// The message variables: `from`, `to` (the address it reached us at),
/// `cc`, `recipients`, `subject`, `body`, `headers`, `attachments`, `auth`.
/// `reached` is the queue address the message came in through.
pub fn message_variables(raw: &[u8], reached: &str) -> Variables {
    variables_of(raw, MessageParser::default().parse(raw).as_ref(), reached)
}

/// As [`message_variables`], from a parse the caller made already (ingest
/// parses each message once, for its own facts and the rules alike).
/// `parsed` is None for a message the parser could not read.
pub fn variables_of(raw: &[u8], parsed: Option<&Message<'_>>, reached: &str) -> Variables {
    let mut v = Variables::default();
    let (from, to, cc, subject) = match parsed {
        Some(m) => (
            addresses(m.from()).into_iter().next(),
            addresses(m.to()),
            addresses(m.cc()),
            m.subject().unwrap_or_default().to_string(),
        ),
        None => (None, Vec::new(), Vec::new(), String::new()),
    };
    let (from_address, from_name) = from.unwrap_or_default();
    v.set("from", address_value(&from_address, from_name.as_deref()));
    let to_name = to
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(reached))
        .and_then(|(_, n)| n.clone());
    v.set("to", address_value(reached, to_name.as_deref()));
    let cc_addresses: Vec<String> = cc.iter().map(|(a, _)| a.clone()).collect();
    let recipients: Vec<String> = to.iter().chain(cc.iter()).map(|(a, _)| a.clone()).collect();
    v.set("cc", strings(&cc_addresses));
    v.set("recipients", strings(&recipients));
    v.set("subject", string(&subject));

    let mut body = parsed
        .and_then(|m| m.body_text(0))
        .map(|b| b.into_owned())
        .unwrap_or_default();
    if body.len() > MAX_BODY {
        let mut end = MAX_BODY;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    v.set("body", string(&body));
    v.set(
        "message",
        map(vec![("text", string(&body)), ("subject", string(&subject))]),
    );

    // The first of each header, by lowercase name.
    let mut headers: Vec<(String, Value)> = Vec::new();
    let mut attachments = Vec::new();
    if let Some(m) = parsed {
        let root = m.parts.first();
        for header in root.map(|p| p.headers.as_slice()).unwrap_or_default() {
            let name = header.name.as_str().to_ascii_lowercase();
            if headers.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let text = header_text(
                raw,
                header.offset_start as usize,
                header.offset_end as usize,
            );
            headers.push((name, string(&text)));
        }
        for part in m.attachments() {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_default()
                .to_ascii_lowercase();
            attachments.push(map(vec![
                ("name", string(part.attachment_name().unwrap_or(""))),
                ("type", string(&content_type)),
                ("size", Value::Int(part.contents().len() as i64)),
            ]));
        }
    }
    v.set(
        "headers",
        map(headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect()),
    );
    v.set("attachments", Value::List(Arc::new(attachments)));
    // Not from the message's own headers: anyone can write an
    // Authentication-Results header. Ingest sets the verified results.
    v.set("auth", auth_value(None));
    v
}

/// The `auth` variable: the verdicts postdesk checked (or took from a
/// trusted relay); "none" each when nothing was checked.
pub fn auth_value(auth: Option<&SenderAuth>) -> Value {
    let verdict = |pick: fn(&SenderAuth) -> AuthVerdict| {
        string(auth.map_or(AuthVerdict::None, pick).as_str())
    };
    map(vec![
        ("spf", verdict(|a| a.spf)),
        ("dkim", verdict(|a| a.dkim)),
        ("dmarc", verdict(|a| a.dmarc)),
    ])
}

/// A header's value as written, unfolded.
fn header_text(raw: &[u8], start: usize, end: usize) -> String {
    let bytes = raw.get(start..end.min(raw.len())).unwrap_or_default();
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}

/// One SLA clock as an escalation reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClockFacts {
    pub due: Option<DateTime<Utc>>,
    pub running: bool,
    pub paused: bool,
}

/// What `remaining` is for a clock that does not run: far enough away that
/// no "remaining < duration(…)" comparison holds.
const NOT_RUNNING: chrono::Duration = chrono::Duration::days(36_500);

pub fn clock_value(c: &ClockFacts, now: DateTime<Utc>) -> Value {
    let remaining = match (c.running, c.due) {
        (true, Some(due)) => due - now,
        _ => NOT_RUNNING,
    };
    map(vec![
        ("due", c.due.map_or(Value::Null, timestamp)),
        ("remaining", Value::Duration(remaining)),
        (
            "breached",
            Value::Bool(c.running && c.due.is_some_and(|d| d <= now)),
        ),
        ("running", Value::Bool(c.running)),
        ("paused", Value::Bool(c.paused)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::condition::{Condition, MESSAGE_SCHEMA};

    const MAIL: &[u8] = b"From: Ann Example <Ann@BigCustomer.example>\r\n\
To: Support <support@example.test>\r\n\
Cc: bob@example.org\r\n\
Subject: Invoice 42 is wrong\r\n\
Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=bigcustomer.example;\r\n dkim=fail header.d=bigcustomer.example; dmarc=none\r\n\
X-Priority: 1\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
Please check the invoice.\r\n\
--b\r\n\
Content-Type: application/pdf; name=invoice.pdf\r\n\
Content-Disposition: attachment; filename=invoice.pdf\r\n\
\r\n\
%PDF\r\n\
--b--\r\n";

    fn check(expr: &str) -> bool {
        let v = message_variables(MAIL, "support@example.test");
        Condition::compile(expr, MESSAGE_SCHEMA)
            .unwrap()
            .evaluate(&v)
            .unwrap()
    }

    #[test]
    fn every_message_field_is_readable() {
        assert!(check(
            "from.address == 'ann@bigcustomer.example' && from.name == 'Ann Example'"
        ));
        assert!(check(
            "from.domain == 'bigcustomer.example' && from.local == 'ann'"
        ));
        assert!(check("to.local == 'support' && to.name == 'Support'"));
        assert!(check("'bob@example.org' in cc && size(recipients) == 2"));
        assert!(check(
            "subject.startsWith('Invoice') && body.contains('check the invoice')"
        ));
        assert!(check("headers['x-priority'] == '1'"));
        assert!(check(
            "attachments.exists(a, a.type == 'application/pdf' && a.name.endsWith('.pdf'))"
        ));
        // The message's own Authentication-Results header is not believed.
        assert!(check(
            "auth.spf == 'none' && auth.dkim == 'none' && auth.dmarc == 'none'"
        ));
    }

    #[test]
    fn auth_is_what_was_verified() {
        use crate::domain::sender_auth::AuthSource;
        let mut v = message_variables(MAIL, "support@example.test");
        v.set(
            "auth",
            auth_value(Some(&SenderAuth {
                spf: AuthVerdict::SoftFail,
                dkim: AuthVerdict::Pass,
                dmarc: AuthVerdict::Pass,
                policy: None,
                domain: None,
                source: AuthSource::Verified,
            })),
        );
        let c = Condition::compile(
            "auth.spf == 'softfail' && auth.dkim == 'pass' && auth.dmarc == 'pass'",
            MESSAGE_SCHEMA,
        )
        .unwrap();
        assert_eq!(c.evaluate(&v), Ok(true));
    }

    #[test]
    fn an_unparseable_message_still_has_every_variable() {
        let v = message_variables(b"", "support@example.test");
        let c = Condition::compile(
            "subject == '' && body == '' && size(attachments) == 0",
            MESSAGE_SCHEMA,
        )
        .unwrap();
        assert_eq!(c.evaluate(&v), Ok(true));
    }
}
