//! The satisfaction survey (issue 20, item 5) over real sockets: a
//! resolved ticket's customer gets "How did we do?" once (not again when
//! it is resolved a second time, never for spam), the link on the HTTP
//! listener rates once and takes a comment, a reply with the word rates
//! too, and a rule on `ticket.satisfaction == "bad"` acts on the ticket.

use crate::common;

use crate::common::sink::Sink;
use crate::common::{
    Backend, TestServer, backend_test, deliver, eventually, message, relay, set_status,
};
use postdesk::domain::ticket::{Priority, Status};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(backend: &Backend, sink: &Sink, rules: Option<std::path::PathBuf>) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.outbound.relay = relay(sink.addr);
        c.satisfaction.queues = vec!["support".into()];
        c.satisfaction.url = Some("http://survey.test".into());
        c.rules = rules;
    })
    .await
}

/// A customer's mail in; returns its ticket.
async fn customer_writes(server: &TestServer, from: &str, id: &str, extra: &str) -> i64 {
    let mail = message(
        from,
        "support@desk.test",
        "Printer jam",
        id,
        extra,
        "It jams.",
    );
    let sender = from
        .rsplit(['<', ' '])
        .next()
        .unwrap_or(from)
        .trim_end_matches('>');
    common::ticket_of(&deliver(server.smtp(), sender, &["support@desk.test"], &mail).await)
}

/// The surveys the relay got: the header as sent, then the text decoded
/// (a long link is quoted-printable on the wire).
fn surveys(sink: &Sink) -> Vec<String> {
    sink.accepted()
        .into_iter()
        .filter_map(|m| {
            let raw = String::from_utf8_lossy(&m.data).into_owned();
            let header = raw.split("\r\n\r\n").next().unwrap_or_default().to_string();
            let text = mail_parser::MessageParser::default()
                .parse(&m.data)
                .and_then(|p| p.body_text(0).map(|t| t.into_owned()))
                .unwrap_or_default();
            header
                .contains("How did we do?")
                .then(|| format!("{header}\r\n\r\n{text}"))
        })
        .collect()
}

/// The token in a survey mail's good link.
fn token_of(survey: &str) -> String {
    let at = survey.find("/satisfaction/").expect("a link") + "/satisfaction/".len();
    survey[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn message_id_of(mail: &str) -> String {
    let line = mail
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .expect("Message-ID");
    line.split_once(':')
        .map(|(_, v)| v.trim().trim_matches(['<', '>']).to_string())
        .expect("value")
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect http");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, text)
}

async fn events(server: &TestServer, ticket: i64) -> Vec<String> {
    server
        .store()
        .ticket_events(ticket)
        .await
        .expect("events")
        .into_iter()
        .map(|e| format!("{} {}", e.kind, e.detail))
        .collect()
}

backend_test!(
    async fn a_resolved_ticket_is_surveyed_once_and_spam_never(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server = start(&backend, &sink, None).await;
        let ticket =
            customer_writes(&server, "Carol <carol@example.com>", "s1@example.com", "").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;
        assert!(surveys(&sink).is_empty());

        set_status(server.store(), ticket, Status::Resolved, chrono::Utc::now())
            .await
            .expect("resolve");
        eventually("the survey at the relay", || async {
            surveys(&sink).len() == 1
        })
        .await;
        let survey = &surveys(&sink)[0];
        assert!(
            survey.contains(&format!("Subject: How did we do? [#{ticket}]")),
            "{survey}"
        );
        assert!(
            survey.contains("http://survey.test/satisfaction/"),
            "{survey}"
        );
        assert!(survey.contains("?rating=good"), "{survey}");
        assert!(
            survey.contains("Auto-Submitted: auto-generated"),
            "{survey}"
        );
        assert_eq!(
            sink.accepted()[1].rcpt_to,
            vec!["carol@example.com".to_string()]
        );

        // Reopened and resolved again: no second survey.
        set_status(server.store(), ticket, Status::Open, chrono::Utc::now())
            .await
            .expect("reopen");
        set_status(server.store(), ticket, Status::Resolved, chrono::Utc::now())
            .await
            .expect("resolve again");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(surveys(&sink).len(), 1);
        assert!(
            events(&server, ticket)
                .await
                .iter()
                .any(|e| e.contains("satisfaction survey queued to carol@example.com")),
        );

        // Spam, then resolved: none, and the history says why.
        let spam = customer_writes(
            &server,
            "Spammer <win@lottery.example>",
            "s2@lottery.example",
            "",
        )
        .await;
        let junk = postdesk::domain::views::Folder::Junk
            .move_into(0)
            .expect("junk change");
        server
            .store()
            .change_ticket(
                spam,
                &postdesk::domain::change::ChangeRequest::administrative(
                    junk,
                    "test",
                    "test",
                    chrono::Utc::now(),
                ),
            )
            .await
            .expect("spam");
        set_status(server.store(), spam, Status::Closed, chrono::Utc::now())
            .await
            .expect("close");
        eventually("the skipped survey's note", || async {
            events(&server, spam)
                .await
                .iter()
                .any(|e| e.contains("no satisfaction survey: the ticket is spam"))
        })
        .await;
        // A robot's ticket: none either.
        let robot = customer_writes(&server, "noreply@shop.example", "s3@shop.example", "").await;
        set_status(server.store(), robot, Status::Resolved, chrono::Utc::now())
            .await
            .expect("resolve");
        eventually("the robot's skipped survey", || async {
            events(&server, robot)
                .await
                .iter()
                .any(|e| e.contains("no satisfaction survey") && e.contains("robot"))
        })
        .await;
        assert_eq!(surveys(&sink).len(), 1);
        server.stop().await;
    }
);

backend_test!(
    async fn the_good_link_rates_once_and_takes_a_comment(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server = start(&backend, &sink, None).await;
        let ticket =
            customer_writes(&server, "Carol <carol@example.com>", "l1@example.com", "").await;
        set_status(server.store(), ticket, Status::Resolved, chrono::Utc::now())
            .await
            .expect("resolve");
        eventually("the survey", || async { surveys(&sink).len() == 1 }).await;
        let token = token_of(&surveys(&sink)[0]);

        // Following the link (as a mail scanner does too) picks the
        // rating and records nothing.
        let (status, page) = http(
            server.http(),
            "GET",
            &format!("/satisfaction/{token}?rating=good"),
            "",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("you picked <strong>good</strong>"), "{page}");
        assert!(page.contains("name=\"comment\""), "{page}");
        let snapshot = server
            .store()
            .ticket_snapshot(ticket)
            .await
            .expect("snapshot");
        assert_eq!(snapshot.and_then(|s| s.satisfaction), None);
        // The customer's Send records it.
        let (status, page) = http(
            server.http(),
            "POST",
            &format!("/satisfaction/{token}"),
            "rating=good&comment=",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Thank you!"), "{page}");
        assert!(page.contains("<strong>good</strong>"), "{page}");
        assert!(page.contains("name=\"comment\""), "{page}");
        let snapshot = server
            .store()
            .ticket_snapshot(ticket)
            .await
            .expect("snapshot");
        assert_eq!(
            snapshot.and_then(|s| s.satisfaction).as_deref(),
            Some("good")
        );

        // The second use (another button, or another Send) says so and
        // changes nothing.
        let (status, again) = http(
            server.http(),
            "GET",
            &format!("/satisfaction/{token}?rating=bad"),
            "",
        )
        .await;
        assert_eq!(status, 200);
        assert!(again.contains("Already rated"), "{again}");
        assert!(again.contains("<strong>good</strong>"), "{again}");
        let (status, again) = http(
            server.http(),
            "POST",
            &format!("/satisfaction/{token}"),
            "rating=bad",
        )
        .await;
        assert_eq!(status, 200);
        assert!(again.contains("Already rated"), "{again}");
        assert!(again.contains("<strong>good</strong>"), "{again}");
        let snapshot = server
            .store()
            .ticket_snapshot(ticket)
            .await
            .expect("snapshot");
        assert_eq!(
            snapshot.and_then(|s| s.satisfaction).as_deref(),
            Some("good")
        );

        // A comment, once: a note in the ticket.
        let (status, thanked) = http(
            server.http(),
            "POST",
            &format!("/satisfaction/{token}"),
            "comment=Very+fast%2C+thanks",
        )
        .await;
        assert_eq!(status, 200, "{thanked}");
        assert!(thanked.contains("Thank you for your comment"), "{thanked}");
        let (_, later) = http(
            server.http(),
            "POST",
            &format!("/satisfaction/{token}"),
            "comment=changed+my+mind",
        )
        .await;
        assert!(
            later.contains("Already rated") && later.contains("Very fast, thanks"),
            "{later}"
        );
        let lines = events(&server, ticket).await;
        assert!(
            lines.iter().any(|e| e.contains("customer rated good")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|e| e.contains("customer commented")),
            "{lines:?}"
        );

        // A link that is not one.
        let (status, _) = http(
            server.http(),
            "GET",
            "/satisfaction/not-a-real-token-at-all-000?rating=good",
            "",
        )
        .await;
        assert_eq!(status, 404);
        server.stop().await;
    }
);

backend_test!(
    async fn a_reply_bad_rates_and_the_rule_on_it_fires(backend: Backend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.toml");
        std::fs::write(
            &rules,
            "[[rule]]\nname = \"Unhappy customer\"\nwhen = 'ticket.satisfaction == \"bad\"'\n\
             priority = \"urgent\"\ntags = [\"unhappy\"]\n",
        )
        .expect("rules");
        let sink = Sink::start(vec![], None).await;
        let server = start(&backend, &sink, Some(rules)).await;
        let ticket =
            customer_writes(&server, "Carol <carol@example.com>", "r1@example.com", "").await;
        let before = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(before.priority, Priority::Normal);
        set_status(server.store(), ticket, Status::Resolved, chrono::Utc::now())
            .await
            .expect("resolve");
        eventually("the survey", || async { surveys(&sink).len() == 1 }).await;
        let survey_id = message_id_of(&surveys(&sink)[0]);

        let answer = message(
            "Carol <carol@example.com>",
            &format!("support+{ticket}@desk.test"),
            &format!("Re: How did we do? [#{ticket}]"),
            "r2@example.com",
            &format!("In-Reply-To: <{survey_id}>\r\nReferences: <{survey_id}>\r\n"),
            "Bad.\r\nNobody called me back.\r\n\r\n> How did we do?",
        );
        let reply = deliver(
            server.smtp(),
            "carol@example.com",
            &[&format!("support+{ticket}@desk.test")],
            &answer,
        )
        .await;
        assert_eq!(common::ticket_of(&reply), ticket);
        eventually("the rating and the rule", || async {
            let t = server.store().ticket(ticket).await.expect("ticket");
            t.priority == Priority::Urgent && t.tags.contains(&"unhappy".to_string())
        })
        .await;
        let t = server.store().ticket(ticket).await.expect("ticket");
        // An answer is not a new question: the ticket stays resolved.
        assert_eq!(t.status, Status::Resolved);
        let snapshot = server
            .store()
            .ticket_snapshot(ticket)
            .await
            .expect("snapshot");
        assert_eq!(
            snapshot.and_then(|s| s.satisfaction).as_deref(),
            Some("bad")
        );
        let lines = events(&server, ticket).await;
        assert!(
            lines.iter().any(|e| e.contains("customer rated bad")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|e| e.contains("rule 'Unhappy customer'")),
            "{lines:?}"
        );
        // The link says it was rated (by mail).
        let token = token_of(&surveys(&sink)[0]);
        let (_, page) = http(
            server.http(),
            "GET",
            &format!("/satisfaction/{token}?rating=good"),
            "",
        )
        .await;
        assert!(
            page.contains("Already rated") && page.contains("<strong>bad</strong>"),
            "{page}"
        );
        server.stop().await;
    }
);

/// What a customer's bad answer on the survey of `ticket` (resolved,
/// surveyed as `survey`) goes through: the link, or a reply with the word.
async fn answer_bad(server: &TestServer, sink: &Sink, ticket: i64, customer: &str, by_link: bool) {
    let survey = surveys(sink)
        .into_iter()
        .find(|s| s.contains(&format!("[#{ticket}]")))
        .expect("the ticket's survey");
    if by_link {
        let token = token_of(&survey);
        let (status, page) = http(
            server.http(),
            "GET",
            &format!("/satisfaction/{token}?rating=bad"),
            "",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("you picked <strong>bad</strong>"), "{page}");
        let (status, page) = http(
            server.http(),
            "POST",
            &format!("/satisfaction/{token}"),
            "rating=bad&comment=Still+broken.",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Thank you for your comment"), "{page}");
        return;
    }
    let survey_id = message_id_of(&survey);
    let answer = message(
        customer,
        &format!("support+{ticket}@desk.test"),
        &format!("Re: How did we do? [#{ticket}]"),
        &format!("bad-{ticket}@example.com"),
        &format!("In-Reply-To: <{survey_id}>\r\nReferences: <{survey_id}>\r\n"),
        "Bad\r\nStill broken.\r\n",
    );
    let reply = deliver(
        server.smtp(),
        customer,
        &[&format!("support+{ticket}@desk.test")],
        &answer,
    )
    .await;
    assert_eq!(common::ticket_of(&reply), ticket);
}

backend_test!(
    async fn a_bad_rating_reopens_the_ticket_for_the_lead_by_link_and_by_reply(backend: Backend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.toml");
        std::fs::write(
            &rules,
            // As the README writes it: the tag keeps it from acting again
            // on the ticket's later messages while the rating stays bad.
            "[[rule]]\nname = \"Unhappy customer\"\n\
             when = 'ticket.satisfaction == \"bad\" && !(\"unhappy\" in ticket.tags)'\n\
             status = \"open\"\nowner = \"lena@desk.test\"\npriority = \"high\"\n\
             tags = [\"unhappy\"]\n",
        )
        .expect("rules");
        let sink = Sink::start(vec![], None).await;
        let server = start(&backend, &sink, Some(rules)).await;
        crate::common::imap::add_agent_as(
            &server,
            "lena@desk.test",
            &["support"],
            postdesk::domain::permission::AgentRole::Lead,
        )
        .await;
        // Two customers: each one's survey within the hourly caps.
        for (customer, by_link) in [("carol@example.com", true), ("dora@example.com", false)] {
            let ticket = customer_writes(
                &server,
                customer,
                &format!("reopen-{by_link}@example.com"),
                "",
            )
            .await;
            set_status(server.store(), ticket, Status::Resolved, chrono::Utc::now())
                .await
                .expect("resolve");
            eventually("the survey", || async {
                surveys(&sink)
                    .iter()
                    .any(|s| s.contains(&format!("[#{ticket}]")))
            })
            .await;
            answer_bad(&server, &sink, ticket, customer, by_link).await;
            eventually("the rule reopens the ticket for the lead", || async {
                let t = server.store().ticket(ticket).await.expect("ticket");
                t.status == Status::Open
                    && t.priority == Priority::High
                    && t.owner.as_deref() == Some("lena@desk.test")
            })
            .await;
            let lines = events(&server, ticket).await;
            assert!(
                lines.iter().any(|e| e.contains("customer rated bad")),
                "{lines:?}"
            );
            assert!(
                lines
                    .iter()
                    .any(|e| e.contains("rule 'Unhappy customer' set status open")),
                "{lines:?}"
            );
            // Open now, it waits for the team: it stays open.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let t = server.store().ticket(ticket).await.expect("ticket");
            assert_eq!(t.status, Status::Open, "{lines:?}");
            // The customer writes again: the rule has done its work once.
            let again = customer_writes(
                &server,
                customer,
                &format!("again-{by_link}@example.com"),
                &format!("In-Reply-To: <reopen-{by_link}@example.com>\r\n"),
            )
            .await;
            assert_eq!(again, ticket);
            let lines = events(&server, ticket).await;
            assert_eq!(
                lines
                    .iter()
                    .filter(|e| e.contains("rule 'Unhappy customer' set owner"))
                    .count(),
                1,
                "{lines:?}"
            );
        }
        server.stop().await;
    }
);

backend_test!(
    async fn a_merged_ticket_gets_no_survey_its_target_does(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server = start(&backend, &sink, None).await;
        let target =
            customer_writes(&server, "Carol <carol@example.com>", "m1@example.com", "").await;
        let merged =
            customer_writes(&server, "Dora <dora@example.com>", "m2@example.com", "").await;
        server
            .store()
            .merge_tickets(&postdesk::store::MergeRequest {
                source: merged,
                into: target,
                actor: "admin".into(),
                agent: None,
                at: chrono::Utc::now(),
                reopen_window: chrono::Duration::days(30),
            })
            .await
            .expect("merge");
        // Closed by the merge: no "How did we do?" while the conversation
        // goes on in the target; the history says why.
        eventually("the skipped survey of the merged ticket", || async {
            events(&server, merged).await.iter().any(|e| {
                e.contains(&format!(
                    "no satisfaction survey: the ticket was merged into #{target}"
                ))
            })
        })
        .await;
        assert!(surveys(&sink).is_empty(), "{:?}", surveys(&sink));
        // The target, resolved, is surveyed.
        set_status(server.store(), target, Status::Resolved, chrono::Utc::now())
            .await
            .expect("resolve");
        eventually("the target's survey", || async {
            surveys(&sink)
                .iter()
                .any(|s| s.contains(&format!("[#{target}]")))
        })
        .await;
        assert_eq!(surveys(&sink).len(), 1, "{:?}", surveys(&sink));
        server.stop().await;
    }
);

backend_test!(
    async fn the_survey_page_in_headless_chromium(backend: Backend) {
        let Some(program) = crate::knowledge::chromium() else {
            return;
        };
        let sink = Sink::start(vec![], None).await;
        let server = start(&backend, &sink, None).await;
        let ticket =
            customer_writes(&server, "Carol <carol@example.com>", "c1@example.com", "").await;
        set_status(server.store(), ticket, Status::Resolved, chrono::Utc::now())
            .await
            .expect("resolve");
        eventually("the survey", || async { surveys(&sink).len() == 1 }).await;
        let token = token_of(&surveys(&sink)[0]);
        let url = format!("http://{}/satisfaction/{token}?rating=okay", server.http());
        let profile = server.dir.path().join("chromium-profile");
        let dom = crate::knowledge::run_chromium(
            program,
            &profile,
            vec!["--window-size=390,844".into(), "--dump-dom".into()],
            url.clone(),
        )
        .await;
        let text = String::from_utf8_lossy(&dom.stdout);
        assert!(
            text.contains(&format!(
                "Ticket #{ticket}: you picked <strong>okay</strong>"
            )),
            "{text}\n{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        assert!(text.contains("<textarea"), "{text}");
        assert!(text.contains("Send my rating"), "{text}");
        // The browser's visit rated nothing; the form's Send does.
        let snapshot = server
            .store()
            .ticket_snapshot(ticket)
            .await
            .expect("snapshot");
        assert_eq!(snapshot.and_then(|s| s.satisfaction), None);
        let (status, page) = http(
            server.http(),
            "POST",
            &format!("/satisfaction/{token}"),
            "rating=okay&comment=",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        // The browser's next visit is the "already rated" page.
        let shot = server.dir.path().join("survey.png");
        let screenshot = crate::knowledge::run_chromium(
            program,
            &profile,
            vec![
                "--window-size=390,844".into(),
                format!("--screenshot={}", shot.display()),
            ],
            url,
        )
        .await;
        let png = std::fs::read(&shot).unwrap_or_else(|e| {
            panic!(
                "no screenshot ({e}): {}",
                String::from_utf8_lossy(&screenshot.stderr)
            )
        });
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let snapshot = server
            .store()
            .ticket_snapshot(ticket)
            .await
            .expect("snapshot");
        assert_eq!(
            snapshot.and_then(|s| s.satisfaction).as_deref(),
            Some("okay")
        );
        server.stop().await;
    }
);
