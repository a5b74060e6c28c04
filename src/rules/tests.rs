//! rules.toml as a whole: the shipped example, and mistakes reported with
//! file and line.

use super::*;
use crate::domain::automation::TicketSnapshot;
use chrono::TimeZone;

const EXAMPLE: &str = include_str!("../../examples/rules.toml");

fn parse(text: &str) -> Result<Rules, RulesError> {
    Rules::parse(text, Path::new("rules.toml"))
}

fn error(text: &str) -> (usize, String) {
    match parse(text) {
        Err(RulesError::Invalid {
            line,
            message,
            path,
            ..
        }) => {
            assert_eq!(path, Path::new("rules.toml"));
            (line, message)
        }
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

const BASE: &str = r#"
[calendar.office]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", fri = "09:00-15:00" }

[sla.standard]
calendar = "office"
first_response = "8h"
"#;

#[test]
fn the_example_file_loads() {
    let rules = parse(EXAMPLE).unwrap();
    assert!(rules.rules.len() >= 2);
    assert!(rules.escalations.len() >= 2);
    assert!(rules.policies.contains_key("urgent"));
    assert_eq!(rules.warning_leads(), vec![chrono::Duration::minutes(30)]);
}

#[test]
fn a_cel_syntax_error_names_its_line_and_column() {
    let text = format!(
        "{BASE}\n[[rule]]\nname = \"x\"\nwhen = 'subject.contains(\"a\") &&'\npriority = \"high\"\n"
    );
    let (line, message) = error(&text);
    assert_eq!(line, 12, "{message}");
    assert!(message.starts_with("rule 'x':"), "{message}");
}

#[test]
fn an_unknown_field_names_its_line() {
    let text = format!(
        "{BASE}\n[[rule]]\nname = \"x\"\nwhen = '''\nsubject == \"a\" ||\nfrom.domian == \"b\"'''\npriority = \"high\"\n"
    );
    let (line, message) = error(&text);
    assert_eq!(line, 14, "{message}");
    assert!(message.contains("unknown field 'from.domian'"), "{message}");
}

#[test]
fn a_bad_duration_names_its_line() {
    let text = BASE.replace("first_response = \"8h\"", "first_response = \"8 hours\"");
    let (line, message) = error(&text);
    assert_eq!(line, 8, "{message}");
    assert!(message.contains("first_response"), "{message}");
    let text = format!(
        "{BASE}\n[[escalation]]\nname = \"w\"\nwhen = \"first_response.remaining < duration('half an hour')\"\nnotify = [\"lead@example.test\"]\n"
    );
    let (line, message) = error(&text);
    assert_eq!(line, 12, "{message}");
    assert!(message.contains("bad duration"), "{message}");
}

#[test]
fn an_unknown_calendar_names_its_line() {
    let text = BASE.replace("calendar = \"office\"", "calendar = \"ofice\"");
    let (line, message) = error(&text);
    assert_eq!(line, 7, "{message}");
    assert!(message.contains("unknown calendar 'ofice'"), "{message}");
}

#[test]
fn other_mistakes_are_named_too() {
    let (line, message) = error(&BASE.replace("Europe/Berlin", "Europe/Berln"));
    assert_eq!(line, 3, "{message}");
    let (line, message) = error(&format!(
        "{BASE}\n[[rule]]\nname = \"x\"\nwhen = 'true'\nsla = \"gold\"\n"
    ));
    assert_eq!(line, 13, "{message}");
    assert!(message.contains("unknown sla 'gold'"), "{message}");
    let (line, message) = error(&format!(
        "{BASE}\n[[rule]]\nname = \"x\"\nwhen = 'true'\npriority = \"asap\"\n"
    ));
    assert_eq!(line, 13, "{message}");
    assert!(message.contains("unknown priority"), "{message}");
    let (line, message) = error(&format!(
        "{BASE}\n[[rule]]\nname = \"x\"\nwhen = 'true'\nprio = \"high\"\n"
    ));
    assert_eq!(line, 13, "{message}");
    assert!(message.contains("prio"), "{message}");
    let (_, message) = error(&format!(
        "{BASE}\n[[escalation]]\nname = \"x\"\nwhen = 'true'\n"
    ));
    assert!(message.contains("does nothing"), "{message}");
}

fn message(subject: &str, from: &str, body: &str) -> condition::Variables {
    let raw =
        format!("From: {from}\r\nTo: support@example.test\r\nSubject: {subject}\r\n\r\n{body}\r\n");
    context::message_variables(raw.as_bytes(), "support@example.test")
}

#[test]
fn every_action_is_decided_and_logged() {
    let rules = parse(&format!(
        "{BASE}\n[sla.urgent]\nfirst_response = \"1h\"\n\
[[rule]]\nname = \"Outage\"\nwhen = 'subject.matches(\"(?i)outage\")'\npriority = \"urgent\"\nsla = \"urgent\"\ntags = [\"outage\", \"vip\"]\nowner = \"lead@example.test\"\nauto_reply = \"urgent-ack.txt\"\n\
[[rule]]\nname = \"Not vip\"\nwhen = 'from.domain == \"example.org\"'\nremove_tags = [\"vip\"]\nqueue = \"billing\"\nauto_reply = false\nstop = true\n\
[[rule]]\nname = \"Never\"\nwhen = 'true'\npriority = \"low\"\n"
    ))
    .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let ticket = TicketSnapshot::default();
    let e = rules.evaluate(
        &message("Outage!", "ann@example.org", ""),
        &ticket,
        true,
        now,
    );
    assert_eq!(e.priority, Some(Priority::Urgent));
    assert_eq!(e.sla.as_deref(), Some("urgent"));
    assert_eq!(e.add_tags, vec!["outage".to_string()]);
    assert_eq!(e.remove_tags, vec!["vip".to_string()]);
    assert_eq!(e.owner.as_deref(), Some("lead@example.test"));
    assert_eq!(e.queue.as_deref(), Some("billing"));
    assert_eq!(e.auto_reply, Some(AutoReply::Off));
    let lines = e.event_lines(None);
    assert!(
        lines.contains(&"rule 'Outage' set priority urgent".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"rule 'Not vip' stopped the rules".to_string()),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("Never")),
        "stop ends the rules: {lines:?}"
    );

    let queues = vec![crate::store::Queue {
        id: 7,
        name: "billing".into(),
        address: "billing@example.test".into(),
    }];
    let effects = effects(&rules, &e, &queues, None, now);
    assert_eq!(
        effects.queue,
        Some(crate::domain::automation::QueueChoice {
            id: 7,
            name: "billing".into(),
            address: "billing@example.test".into()
        })
    );
    assert_eq!(effects.auto_reply, Some(None));
    let sla = effects.sla.unwrap();
    assert_eq!(sla.policy, "urgent");
    assert_eq!(
        sla.first_response_due,
        Some(now + chrono::Duration::hours(1))
    );

    // Another sender: only the first rule, which chose a template.
    let e = rules.evaluate(
        &message("outage", "bob@example.net", ""),
        &ticket,
        true,
        now,
    );
    assert_eq!(
        e.auto_reply,
        Some(AutoReply::Template("urgent-ack.txt".into()))
    );
    assert_eq!(e.priority, Some(Priority::Low), "later rules override");
}

#[test]
fn a_failing_condition_skips_its_rule_only() {
    let rules = parse(&format!(
        "{BASE}\n[[rule]]\nname = \"Broken\"\nwhen = 'subject.matches(body)'\npriority = \"low\"\n\
[[rule]]\nname = \"Fine\"\nwhen = 'true'\npriority = \"high\"\n"
    ))
    .unwrap();
    let now = Utc::now();
    let e = rules.evaluate(
        &message("x", "a@b.example", "("),
        &TicketSnapshot::default(),
        true,
        now,
    );
    assert_eq!(e.priority, Some(Priority::High));
    assert_eq!(e.errors.len(), 1);
    assert!(
        e.event_lines(None)
            .iter()
            .any(|l| l.starts_with("rule 'Broken' skipped"))
    );
}

#[test]
fn the_default_sla_applies_to_new_tickets_only() {
    let rules = parse(&format!("default_sla = \"standard\"\n{BASE}")).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let e = rules.evaluate(
        &message("x", "a@b.example", ""),
        &TicketSnapshot::default(),
        true,
        now,
    );
    let new = effects(&rules, &e, &[], None, now);
    // 8 business hours from Monday 11:00 Berlin (10:00 UTC): Monday has 6
    // left, Tuesday–Thursday are closed, Friday 09:00 + 2h is 11:00 Berlin.
    assert_eq!(
        new.sla.unwrap().first_response_due,
        Some(Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap())
    );
    assert!(
        effects(&rules, &e, &[], Some(&TicketSnapshot::default()), now)
            .sla
            .is_none()
    );
}

#[test]
fn on_a_follow_up_only_changes_are_applied_and_logged() {
    let rules = parse(&format!(
        "{BASE}\n[[rule]]\nname = \"Outage\"\nwhen = 'true'\npriority = \"urgent\"\ntags = [\"outage\", \"new\"]\nsla = \"standard\"\n"
    ))
    .unwrap();
    let now = Utc::now();
    let current = TicketSnapshot {
        priority: Priority::Urgent,
        tags: vec!["outage".into()],
        sla_policy: Some("standard".into()),
        ..TicketSnapshot::default()
    };
    let e = rules.evaluate(&message("x", "a@b.example", ""), &current, false, now);
    let effects = effects(&rules, &e, &[], Some(&current), now);
    assert_eq!(effects.priority, None);
    assert_eq!(effects.add_tags, vec!["new".to_string()]);
    assert!(effects.sla.is_none());
    assert_eq!(
        effects.events,
        vec!["rule 'Outage' added tag new".to_string()]
    );
}

#[test]
fn a_rule_on_satisfaction_runs_when_a_rating_arrives() {
    let rules = parse(&format!(
        "{BASE}\n[[rule]]\nname = \"Unhappy\"\nwhen = 'ticket.satisfaction == \"bad\"'\npriority = \"urgent\"\n\
         \n[[rule]]\nname = \"Everything\"\nwhen = 'true'\ntags = [\"x\"]\n"
    ))
    .unwrap();
    let now = Utc::now();
    let unrated = TicketSnapshot::default();
    // No rating yet: false, not an error, on every message.
    let e = rules.evaluate(&message("x", "a@b.example", ""), &unrated, false, now);
    assert!(e.errors.is_empty(), "{:?}", e.errors);
    assert_eq!(e.priority, None);
    let bad = TicketSnapshot {
        satisfaction: Some("bad".into()),
        ..TicketSnapshot::default()
    };
    // A rating runs only the rules that read it.
    let e = rules.evaluate_rating(&message("", "", ""), &bad, now);
    assert_eq!(e.priority, Some(Priority::Urgent));
    assert!(e.add_tags.is_empty(), "{:?}", e.add_tags);
    let good = TicketSnapshot {
        satisfaction: Some("good".into()),
        ..TicketSnapshot::default()
    };
    assert_eq!(
        rules
            .evaluate_rating(&message("", "", ""), &good, now)
            .priority,
        None
    );
}

#[test]
fn a_rule_reads_suggested_articles_and_sets_a_status() {
    use crate::domain::ticket::Status;
    let rules = parse(&format!(
        "{BASE}\n[[rule]]\nname = \"Solved\"\n\
         when = 'message.text.contains(\"solved\") && size(ticket.suggested_articles) > 0'\n\
         status = \"resolved\"\n"
    ))
    .unwrap();
    let now = Utc::now();
    let suggested = TicketSnapshot {
        number: 7,
        suggested_articles: vec![42],
        ..TicketSnapshot::default()
    };
    let solved = message("Re: help", "a@b.example", "Thanks, that solved it.");
    let e = rules.evaluate(&solved, &suggested, false, now);
    let done = effects(&rules, &e, &[], Some(&suggested), now);
    assert_eq!(done.status, Some(Status::Resolved));
    assert_eq!(
        done.events,
        vec!["rule 'Solved' set status resolved".to_string()]
    );
    // No suggestion, or no such words: nothing.
    let plain = TicketSnapshot {
        number: 8,
        ..TicketSnapshot::default()
    };
    let e = rules.evaluate(&solved, &plain, false, now);
    assert_eq!(effects(&rules, &e, &[], Some(&plain), now).status, None);
    let other = message("Re: help", "a@b.example", "Still broken.");
    let e = rules.evaluate(&other, &suggested, false, now);
    assert_eq!(effects(&rules, &e, &[], Some(&suggested), now).status, None);
    // A status that is none.
    let (line, error) = error(&format!(
        "{BASE}\n[[rule]]\nname = \"x\"\nwhen = 'true'\nstatus = \"done\"\n"
    ));
    assert!(error.contains("unknown status 'done'"), "{error}");
    assert_eq!(line, 13);
}
