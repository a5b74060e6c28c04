//! The rules engine over real sockets: mail in → rules applied → priority,
//! queue, tags and due times set; the Overdue and Urgent folders; an
//! escalation that fires exactly once with the server restarted between
//! its due time and its firing; reloads, broken and good.

use crate::common;

use crate::common::imap::{ImapClient, add_agent};
use crate::common::sink::Sink;
use crate::common::{
    Backend, TestServer, backend_test, deliver, eventually, message, relay, ticket_of,
};
use postdesk::domain::ticket::Priority;
use postdesk::store::TicketFilter;
use std::path::{Path, PathBuf};
use std::time::Duration;

const RULES: &str = r#"
default_sla = "standard"

[sla.standard]
first_response = "2h"
resolution = "1d"

[sla.urgent]
calendar = "24x7"
first_response = "1h"
resolution = "8h"

[[rule]]
name = "Outages are urgent"
when = 'subject.matches("(?i)\\b(outage|down)\\b") || from.domain in ["bigcustomer.example"]'
priority = "urgent"
sla = "urgent"
tags = ["outage"]

[[rule]]
name = "Billing goes to billing"
when = 'to.local == "billing" || body.contains("invoice")'
queue = "billing"
"#;

fn write_rules(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).expect("write rules");
    path
}

/// A customer's message to support@; returns its ticket.
async fn customer_writes(
    server: &TestServer,
    from: &str,
    subject: &str,
    id: &str,
    body: &str,
) -> i64 {
    let sender = from
        .rsplit(['<', ' '])
        .next()
        .unwrap_or(from)
        .trim_end_matches('>');
    let mail = message(from, "support@desk.test", subject, id, "", body);
    ticket_of(&deliver(server.smtp(), sender, &["support@desk.test"], &mail).await)
}

async fn ticket(server: &TestServer, number: i64) -> postdesk::store::Ticket {
    server.store().ticket(number).await.expect("ticket")
}

/// An agent sets the ticket pending (the clocks stop).
async fn set_pending(server: &TestServer, number: i64, why: &str) {
    let pending = postdesk::domain::change::TicketChange {
        status: Some(postdesk::domain::ticket::Status::Pending),
        ..Default::default()
    };
    let request = postdesk::domain::change::ChangeRequest::administrative(
        pending,
        why,
        "test",
        chrono::Utc::now(),
    );
    server
        .store()
        .change_ticket(number, &request)
        .await
        .expect("pending");
}

/// A server on `text`; the returned directory holds the rules file.
async fn start_with_rules(
    backend: &common::Backend,
    text: &str,
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_rules(dir.path(), text);
    let server = TestServer::start_with(backend, |c| c.rules = Some(path.clone())).await;
    (server, dir)
}

backend_test!(
    async fn mail_in_gets_priority_queue_tags_and_due_times_from_the_rules(backend: Backend) {
        let (server, _rules) = start_with_rules(&backend, RULES).await;
        let before = chrono::Utc::now();
        let number = customer_writes(
            &server,
            "Ann <ann@example.org>",
            "VPN is DOWN",
            "r1@example.org",
            "Nothing works.",
        )
        .await;
        let t = ticket(&server, number).await;
        assert_eq!(t.priority, Priority::Urgent, "{}", backend.name());
        assert_eq!(t.tags, vec!["outage".to_string()]);
        assert_eq!(t.sla_policy.as_deref(), Some("urgent"));
        let due = t.first_response_due.expect("first response due");
        assert!(
            due >= before + chrono::Duration::hours(1)
                && due <= chrono::Utc::now() + chrono::Duration::hours(1)
        );
        let resolution = t.resolution_due.expect("resolution due");
        assert_eq!(resolution - due, chrono::Duration::hours(7));
        let events = server.store().ticket_events(number).await.expect("events");
        let lines: Vec<String> = events.iter().map(|e| e.detail.clone()).collect();
        assert!(
            lines.contains(&"rule 'Outages are urgent' set priority urgent".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"rule 'Outages are urgent' set sla urgent".to_string()),
            "{lines:?}"
        );

        // An invoice goes to billing with the default SLA, and its
        // acknowledgement comes from billing.
        let number = customer_writes(
            &server,
            "bob@example.net",
            "Question",
            "r2@example.net",
            "Where is my invoice?",
        )
        .await;
        let t = ticket(&server, number).await;
        assert_eq!(t.queue, "billing");
        assert_eq!(t.priority, Priority::Normal);
        assert_eq!(t.sla_policy.as_deref(), Some("standard"));
        let acks = server.outbound(None).await;
        let ack = acks.iter().find(|o| o.ticket == Some(number)).expect("ack");
        assert_eq!(ack.mail_from, "billing@desk.test");

        // Nothing is late yet.
        let overdue = server
            .store()
            .tickets(&TicketFilter {
                overdue: true,
                ..TicketFilter::default()
            })
            .await
            .expect("tickets");
        assert!(overdue.is_empty());
        server.stop().await;
    }
);

const FAST: &str = r#"
[sla.fast]
first_response = "3s"
resolution = "1h"

[[rule]]
name = "Everything is fast"
when = 'true'
sla = "fast"

[[escalation]]
name = "Late means urgent"
when = "first_response.breached"
priority = "urgent"
queue = "BILLING"
owner = "nobody@desk.test"
notify = ["lead@example.test"]
"#;

backend_test!(
    async fn an_escalation_fires_once_across_restarts_and_the_ticket_shows_as_overdue(
        backend: Backend,
    ) {
        let sink = Sink::start(Vec::new(), None).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_rules(dir.path(), FAST);
        let mut server = TestServer::start_with(&backend, |c| {
            c.rules = Some(path.clone());
            c.outbound.relay = relay(sink.addr);
        })
        .await;
        add_agent(&server, "alice@desk.test", &["support", "billing"], false).await;
        let number = customer_writes(
            &server,
            "ann@example.org",
            "Printer",
            "f1@example.org",
            "It jams.",
        )
        .await;
        // Down before the due time; up again after it.
        if let Some(running) = server.running.take() {
            running.shutdown().await;
        }
        tokio::time::sleep(Duration::from_millis(3500)).await;
        server.restart().await;

        eventually("the escalation fired after the restart", || async {
            ticket(&server, number).await.priority == Priority::Urgent
        })
        .await;
        // A queue named in another case is found; an owner who is no agent
        // is left out and said, and does not stop the rest.
        let t = ticket(&server, number).await;
        assert_eq!(t.queue, "billing");
        let events = server.store().ticket_events(number).await.expect("events");
        assert!(
            events.iter().any(|e| e.kind == "escalated"
                && e.detail.contains("priority normal → urgent")
                && e.detail
                    .contains("owner nobody@desk.test not set: no such agent")),
            "{events:?}"
        );
        eventually("the ticket is marked overdue", || async {
            ticket(&server, number).await.sla_overdue
        })
        .await;
        let fired = server
            .store()
            .escalations_fired(number)
            .await
            .expect("fired");
        assert_eq!(fired.len(), 1, "{fired:?}");
        eventually("the lead got the notice", || async {
            sink.accepted()
                .iter()
                .any(|m| m.rcpt_to == vec!["lead@example.test".to_string()])
        })
        .await;
        let notice = sink
            .accepted()
            .into_iter()
            .find(|m| m.rcpt_to == vec!["lead@example.test".to_string()])
            .expect("notice");
        let text = String::from_utf8_lossy(&notice.data).to_string();
        assert!(
            text.contains(&format!("[#{number}] Late means urgent")),
            "{text}"
        );

        // Agents see it in Overdue and Urgent.
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        for folder in ["Overdue", "Urgent"] {
            let status = alice.cmd(&format!("STATUS {folder} (MESSAGES)")).await;
            assert!(
                status.all_text().contains("MESSAGES 1"),
                "{folder}: {}",
                status.all_text()
            );
        }

        // Another restart and a reload (every ticket is looked at again):
        // it does not fire twice.
        server.restart().await;
        server.app().reload_rules().await.expect("reload");
        tokio::time::sleep(Duration::from_millis(500)).await;
        postdesk::rules::scheduler::run_due(&server.app().scheduler(), chrono::Utc::now())
            .await
            .expect("round");
        assert_eq!(
            server
                .store()
                .escalations_fired(number)
                .await
                .expect("fired")
                .len(),
            1
        );
        let notices = server
            .outbound(None)
            .await
            .into_iter()
            .filter(|o| o.purpose == "escalation")
            .count();
        assert_eq!(notices, 1);

        // Pending stops the clocks: no longer overdue, out of Overdue.
        set_pending(&server, number, "waiting on the customer").await;
        eventually("the pause took the ticket out of Overdue", || async {
            !ticket(&server, number).await.sla_overdue
        })
        .await;
        let t = ticket(&server, number).await;
        assert!(t.sla_paused_at.is_some());
        server.stop().await;
    }
);

backend_test!(
    async fn a_broken_rules_file_is_refused_on_reload_and_the_old_rules_stay(backend: Backend) {
        let (server, dir) = start_with_rules(&backend, RULES).await;

        write_rules(dir.path(), &RULES.replace("to.local ==", "to.lokal =="));
        let err = server.app().reload_rules().await.expect_err("broken file");
        let text = err.to_string();
        assert!(text.contains("rules.toml:22:"), "{text}");
        assert!(text.contains("unknown field 'to.lokal'"), "{text}");

        let number = customer_writes(
            &server,
            "ann@example.org",
            "Outage",
            "b1@example.org",
            "down",
        )
        .await;
        let t = ticket(&server, number).await;
        assert_eq!(t.priority, Priority::Urgent, "the old rules still apply");

        // A good edit takes effect.
        write_rules(
            dir.path(),
            &RULES.replace("priority = \"urgent\"", "priority = \"high\""),
        );
        server.app().reload_rules().await.expect("reload");
        let number = customer_writes(
            &server,
            "ann@example.org",
            "Outage again",
            "b2@example.org",
            "down",
        )
        .await;
        let t = ticket(&server, number).await;
        assert_eq!(t.priority, Priority::High);
        server.stop().await;
    }
);

#[tokio::test]
async fn a_server_does_not_start_on_a_broken_rules_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_rules(dir.path(), &RULES.replace("\"1h\"", "\"an hour\""));
    let mut config = common::test_config(&common::Backend::Sqlite, dir.path()).await;
    config.rules = Some(path);
    let err = match postdesk::server::start(config).await {
        Err(err) => err.to_string(),
        Ok(_) => panic!("started on a broken rules file"),
    };
    assert!(err.contains("rules.toml:10:"), "{err}");
    assert!(err.contains("first_response"), "{err}");
}

backend_test!(
    async fn rules_choose_the_owner_and_the_acknowledgement(backend: Backend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let templates = dir.path().join("templates");
        std::fs::create_dir_all(&templates).expect("templates dir");
        std::fs::write(
            templates.join("vip-ack.txt"),
            "Subject: [#{{ ticket.number }}] We are on it\n\nDear customer, a senior engineer has your request.\n",
        )
        .expect("template");
        let path = write_rules(
            dir.path(),
            r#"
[[rule]]
name = "VIPs get Alice"
when = 'from.domain == "vip.example"'
owner = "alice@desk.test"
auto_reply = "vip-ack.txt"

[[rule]]
name = "No answer to robots"
when = 'from.local.startsWith("noreply")'
auto_reply = false
"#,
        );
        let server = TestServer::start_with(&backend, |c| {
            c.rules = Some(path.clone());
            c.autoreply.templates_dir = Some(templates.clone());
        })
        .await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;

        let vip = customer_writes(
            &server,
            "ceo@vip.example",
            "Help",
            "v1@vip.example",
            "please",
        )
        .await;
        let t = ticket(&server, vip).await;
        assert_eq!(
            t.owner.as_deref(),
            Some("alice@desk.test"),
            "{}",
            backend.name()
        );
        let messages = server.store().ticket_messages(vip).await.expect("messages");
        let ack = messages
            .iter()
            .find(|m| m.kind == "auto_reply")
            .expect("ack");
        assert_eq!(ack.subject, format!("[#{vip}] We are on it"));

        let robot = customer_writes(
            &server,
            "noreply@shop.example",
            "Order",
            "n1@shop.example",
            "shipped",
        )
        .await;
        let messages = server
            .store()
            .ticket_messages(robot)
            .await
            .expect("messages");
        assert!(
            messages.iter().all(|m| m.kind != "auto_reply"),
            "no acknowledgement"
        );
        let events = server.store().ticket_events(robot).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.detail == "rule 'No answer to robots' turned the acknowledgement off"),
            "{events:?}"
        );
        server.stop().await;
    }
);

const PAUSING: &str = r#"
[sla.quick]
first_response = "6s"

[[rule]]
name = "All quick"
when = 'true'
sla = "quick"

[[escalation]]
name = "Warn"
when = "first_response.remaining < duration('5s')"
notify = ["lead@example.test"]
"#;

backend_test!(
    /// Pending stops the clock; the customer's answer resumes it with what
    /// was left. The warning, sent before the pause, holds again after it: it
    /// is the same clock, so it is not sent again.
    async fn a_paused_clock_resumes_with_what_was_left_and_warns_once(backend: Backend) {
        let (server, _rules) = start_with_rules(&backend, PAUSING).await;
        let number = customer_writes(
            &server,
            "ann@example.org",
            "Slow VPN",
            "p1@example.org",
            "slow",
        )
        .await;
        let first_due = ticket(&server, number)
            .await
            .first_response_due
            .expect("due");
        eventually("the warning fired", || async {
            !server
                .store()
                .escalations_fired(number)
                .await
                .expect("fired")
                .is_empty()
        })
        .await;
        set_pending(&server, number, "asked the customer").await;
        eventually("the clocks stand still", || async {
            ticket(&server, number).await.sla_paused_at.is_some()
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !ticket(&server, number).await.sla_overdue,
            "{}: nothing is late while paused",
            backend.name()
        );
        // The customer answers: open again, the clock goes on.
        let mail = message(
            "ann@example.org",
            "support@desk.test",
            "Re: Slow VPN",
            "p2@example.org",
            "In-Reply-To: <p1@example.org>\r\n",
            "still slow",
        );
        let again = ticket_of(
            &deliver(
                server.smtp(),
                "ann@example.org",
                &["support@desk.test"],
                &mail,
            )
            .await,
        );
        assert_eq!(again, number);
        eventually("the clock resumed", || async {
            ticket(&server, number).await.sla_paused_at.is_none()
        })
        .await;
        let resumed_due = ticket(&server, number)
            .await
            .first_response_due
            .expect("due");
        assert!(
            resumed_due >= first_due + chrono::Duration::seconds(2),
            "the pause moved the due time: {first_due} → {resumed_due}"
        );
        eventually("the resumed clock ran out", || async {
            ticket(&server, number).await.sla_overdue
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let fired = server
            .store()
            .escalations_fired(number)
            .await
            .expect("fired");
        assert_eq!(fired.len(), 1, "{fired:?}");
        let notices = server
            .outbound(None)
            .await
            .into_iter()
            .filter(|o| o.purpose == "escalation")
            .count();
        assert_eq!(notices, 1);
        server.stop().await;
    }
);

const BURST: &str = r#"
[sla.burst]
first_response = "1h"

[[escalation]]
name = "Late"
when = "first_response.breached"
tags = ["late"]
"#;

backend_test!(
    /// Many tickets falling due at the same instant (issue 17): the
    /// scheduler works through them in batches and fires each escalation
    /// once, promptly; on PostgreSQL a second node's scheduler shares the
    /// burst without firing anything twice.
    async fn a_burst_of_due_tickets_fires_each_escalation_once(backend: Backend) {
        const TICKETS: usize = 500;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_rules(dir.path(), BURST);
        let server = TestServer::start_with(&backend, |c| c.rules = Some(path.clone())).await;
        let second_node = postdesk::net::ShutdownTrigger::new();
        let mut second = None;
        if matches!(backend, Backend::Postgres(_)) {
            let app = postdesk::App::open(server.config.clone())
                .await
                .expect("second node");
            // It hears of the first node's changes as a server does.
            let listener = app
                .store
                .change_listener()
                .await
                .expect("listen")
                .expect("a listener on PostgreSQL");
            tokio::spawn(listener.run());
            let task = tokio::spawn(postdesk::rules::scheduler::run(
                app.scheduler(),
                second_node.subscribe(),
            ));
            second = Some((app, task));
        }
        let queue = server.store().queues().await.expect("queues")[0].id;
        let now = chrono::Utc::now();
        let due = now + chrono::Duration::seconds(3);
        let created = (due - chrono::Duration::hours(1)).to_rfc3339();
        let rows = match backend {
            Backend::Postgres(_) => format!("generate_series(1, {TICKETS}) AS i"),
            Backend::Sqlite => format!(
                "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {TICKETS}) SELECT i FROM n)"
            ),
        };
        let sql = format!(
            "INSERT INTO tickets (queue_id, subject, customer_address, status, priority, created_at,
                 updated_at, customer_waiting_since, sla_policy, sla_check_at)
             SELECT {queue}, 'ticket ' || i, 'c' || i || '@example.com', 'open', 'normal',
                 '{created}', '{now}', '{created}', 'burst', '{now}' FROM {rows}",
            now = now.to_rfc3339(),
        );
        server
            .store()
            .execute_unchecked(&sql)
            .await
            .expect("tickets");
        // Written behind the schedulers' backs: a change (here a customer's
        // mail, on any node) makes them look.
        customer_writes(
            &server,
            "ann@example.org",
            "Wake up",
            "wake@example.org",
            "Hi.",
        )
        .await;
        let mut fired = Vec::new();
        for _ in 0..600 {
            fired = server.store().escalation_firings().await.expect("firings");
            if fired.len() >= TICKETS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(fired.len(), TICKETS, "{}", backend.name());
        let tickets: std::collections::BTreeSet<i64> = fired.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            tickets.len(),
            TICKETS,
            "each ticket's escalation fired once"
        );
        let latest = fired.iter().map(|(_, at)| *at).max().expect("fired");
        // The product says within a second; the margin is for a loaded
        // test machine.
        assert!(
            latest - due < chrono::Duration::seconds(10),
            "the last escalation fired {} late",
            latest - due
        );
        if let Some((app, task)) = second {
            second_node.trigger();
            let _ = task.await;
            app.store.close().await;
        }
        server.stop().await;
    }
);
