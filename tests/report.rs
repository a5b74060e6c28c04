//! The team report (issue 20, item 7) as its users meet it: `postdesk
//! report` against a week of tickets whose business-hours figures were
//! worked out by hand, its CSV and JSON; the weekly report mail at a faked
//! clock (once, to leads and admins, with PNG charts); the report page
//! over HTTP (sign-in, 403 for an agent) and in headless chromium.

use crate::cli::{ok, postdesk};
use crate::common::imap::add_agent_as;
use crate::common::{Backend, TestServer, backend_test, set_status};
use crate::knowledge::{chromium, run_chromium};
use chrono::{DateTime, Duration, TimeZone, Utc};
use postdesk::domain::permission::AgentRole;
use postdesk::domain::ticket::{MessageKind, Status};
use postdesk::ingest::{Envelope, Mode, ingest};
use postdesk::reports::mail::{Sent, run_due};
use postdesk::store::{AgentMailRequest, MergeRequest, ReplyTarget};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Office hours in Berlin; every ticket gets the standard SLA.
const RULES: &str = r#"
default_sla = "standard"

[calendar.office]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-17:00" }

[sla.standard]
calendar = "office"
first_response = "4h"
next_response = "2h"
resolution = "2d"
"#;

/// Berlin wall time in November 2026 (UTC+1); the 23rd is a Monday.
fn berlin(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, 0)
        .single()
        .expect("date")
        - Duration::hours(1)
}

async fn start(backend: &Backend, weekly: Option<&str>) -> TestServer {
    let server = TestServer::start_with(backend, |c| {
        let dir = c.data_dir.clone();
        std::fs::write(dir.join("rules.toml"), RULES).expect("rules");
        c.rules = Some(dir.join("rules.toml"));
        c.reports.calendar = Some("office".into());
        c.reports.weekly =
            weekly.map(|w| postdesk::config::WeeklySchedule::parse(w).expect("schedule"));
    })
    .await;
    add_agent_as(&server, "ann@desk.test", &["support"], AgentRole::Lead).await;
    add_agent_as(&server, "bob@desk.test", &["support"], AgentRole::Agent).await;
    add_agent_as(&server, "root@desk.test", &[], AgentRole::Admin).await;
    add_agent_as(&server, "bill@desk.test", &["billing"], AgentRole::Lead).await;
    server
}

/// The CLI's configuration: the server's database, rules and calendar.
fn cli_config(server: &TestServer) -> PathBuf {
    let path = server.dir.path().join("report-cli.toml");
    let mut text = format!(
        "hostname = \"desk.test\"\ndata_dir = \"{}\"\nrules = \"{}\"\n",
        server.dir.path().display(),
        server.dir.path().join("rules.toml").display()
    );
    if let Some(url) = &server.config.database_url {
        text.push_str(&format!("database_url = \"{url}\"\n"));
    }
    text.push_str("[reports]\ncalendar = \"office\"\n");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A customer's mail arriving at `at` (the pipeline SMTP uses, with the
/// arrival time given); returns its ticket.
async fn customer_at(
    server: &TestServer,
    id: &str,
    reply_to: Option<&str>,
    at: DateTime<Utc>,
) -> i64 {
    let threading = reply_to
        .map(|r| format!("In-Reply-To: <{r}>\r\n"))
        .unwrap_or_default();
    let raw = format!(
        "From: Carla <carla-{id}@example.org>\r\nTo: support@desk.test\r\n\
         Subject: Question {id}\r\nMessage-ID: <{id}@example.org>\r\n{threading}\
         Date: {}\r\n\r\nPlease help.\r\n",
        at.to_rfc2822()
    );
    let envelope = Envelope {
        mail_from: format!("carla-{id}@example.org"),
        rcpt_to: vec!["support@desk.test".into()],
        helo: None,
        remote_addr: None,
        received_at: at,
    };
    let report = ingest(server.app(), &envelope, raw.into_bytes(), Mode::Live)
        .await
        .expect("ingest");
    report.ticket.expect("filed in a ticket")
}

/// An agent's public reply to ticket `ticket` at `at`, filed as
/// submission files it.
async fn reply_at(
    server: &TestServer,
    ticket: i64,
    agent: &str,
    customer: &str,
    n: u32,
    at: DateTime<Utc>,
) {
    let store = server.store();
    let agent_row = store
        .login_agent(agent)
        .await
        .expect("agent")
        .expect("active agent");
    let id = format!("reply-{n}@desk.test");
    let raw = format!(
        "From: Agent via Support <support@desk.test>\r\nTo: {customer}\r\n\
         Subject: Re: [#{ticket}]\r\nMessage-ID: <{id}>\r\n\r\nHere is the answer.\r\n"
    )
    .into_bytes();
    let request = AgentMailRequest {
        target: ReplyTarget::Ticket(ticket),
        kind: MessageKind::Reply,
        agent_id: agent_row.id,
        actor: agent.into(),
        message_id: id,
        sender: "support@desk.test".into(),
        from_name: Some("Agent via Support".into()),
        envelope_from: "support@desk.test".into(),
        envelope_to: vec![customer.into()],
        subject: format!("Re: [#{ticket}]"),
        references: Vec::new(),
        mail_from: "support@desk.test".into(),
        recipients: vec![customer.into()],
        remote_addr: None,
        submitted_digest: format!("digest-{n}"),
        history_note: None,
        hold_if_changed: false,
        participants: None,
        now: at,
        build: Box::new(move |_, _| raw.clone()),
    };
    store.file_agent_mail(&request).await.expect("reply");
}

async fn resolve_at(server: &TestServer, ticket: i64, at: DateTime<Utc>) {
    set_status(server.store(), ticket, Status::Resolved, at)
        .await
        .expect("resolve");
}

async fn sql(server: &TestServer, statement: &str) {
    server
        .store()
        .execute_unchecked(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// The week of 2026-11-23 in Berlin office hours (09-17, Mon-Fri), SLA
/// 4h first response, 2h next response, 2 business days resolution.
/// The figures each ticket contributes, by hand:
///
/// | ticket | agent | first response | next responses | resolved (hours) |
/// |---|---|---|---|---|
/// | T1 Mon 10:00 | ann | Mon 11:00: 1h (met) | Mon 12:00→13:30: 1.5h (met) | Tue 10:00: 8h (met) |
/// | T2 Mon 16:00 | ann | Tue 10:00: 2h (met) | Tue 11:00→15:00: 4h (missed) | Wed 09:00: 9h (met) |
/// | T3 Fri 16:30 | ann | Mon 30 09:30: 1h (met) | | open |
/// | T4 Tue 09:00 | bob | Wed 13:00: 12h (missed) | Wed 14:00→Thu 09:30: 3.5h (missed); Fri 10:00→11:00: 1h (met) | Thu 10:00, reopened Fri 10:00: open, due Thu 09:00 passed (missed) |
/// | T5 Sat 10:00 | bob | Sat 12:00: 0h (met) | | open |
/// | T6 Wed 09:00 | bob | Wed 10:00: 1h, resolved Wed 12:00, reopened Wed 13:00, merged into T5 Sat 13:00 | | |
///
/// T6, merged into T5, is no ticket of its own: not created, resolved,
/// reopened or in the backlog, no response or resolution time; its mail
/// (before T5's first answer, so not in T5's next responses) and its 10
/// minutes of time go to T5.
///
/// First response: 0, 1, 1, 2, 12 → median 1h, p90 (rank 5 of 5) 12h.
/// Next response: 1, 1.5, 3.5, 4 → median 2.5h, p90 (rank 4) 4h.
/// Resolution: 8, 9 → median 8.5h, p90 (rank 2) 9h.
async fn seed_week(server: &TestServer) -> [i64; 5] {
    let t1 = customer_at(server, "t1", None, berlin(23, 10, 0)).await;
    reply_at(
        server,
        t1,
        "ann@desk.test",
        "carla-t1@example.org",
        1,
        berlin(23, 11, 0),
    )
    .await;
    customer_at(server, "t1b", Some("t1@example.org"), berlin(23, 12, 0)).await;
    reply_at(
        server,
        t1,
        "ann@desk.test",
        "carla-t1@example.org",
        2,
        berlin(23, 13, 30),
    )
    .await;
    resolve_at(server, t1, berlin(24, 10, 0)).await;

    let t2 = customer_at(server, "t2", None, berlin(23, 16, 0)).await;
    reply_at(
        server,
        t2,
        "ann@desk.test",
        "carla-t2@example.org",
        3,
        berlin(24, 10, 0),
    )
    .await;
    customer_at(server, "t2b", Some("t2@example.org"), berlin(24, 11, 0)).await;
    reply_at(
        server,
        t2,
        "ann@desk.test",
        "carla-t2@example.org",
        4,
        berlin(24, 15, 0),
    )
    .await;
    resolve_at(server, t2, berlin(25, 9, 0)).await;

    let t4 = customer_at(server, "t4", None, berlin(24, 9, 0)).await;
    reply_at(
        server,
        t4,
        "bob@desk.test",
        "carla-t4@example.org",
        5,
        berlin(25, 13, 0),
    )
    .await;
    customer_at(server, "t4b", Some("t4@example.org"), berlin(25, 14, 0)).await;
    reply_at(
        server,
        t4,
        "bob@desk.test",
        "carla-t4@example.org",
        6,
        berlin(26, 9, 30),
    )
    .await;
    resolve_at(server, t4, berlin(26, 10, 0)).await;
    let again = customer_at(server, "t4c", Some("t4@example.org"), berlin(27, 10, 0)).await;
    assert_eq!(again, t4, "the customer's mail reopens T4");
    reply_at(
        server,
        t4,
        "bob@desk.test",
        "carla-t4@example.org",
        7,
        berlin(27, 11, 0),
    )
    .await;

    let t3 = customer_at(server, "t3", None, berlin(27, 16, 30)).await;
    reply_at(
        server,
        t3,
        "ann@desk.test",
        "carla-t3@example.org",
        8,
        berlin(30, 9, 30),
    )
    .await;

    let t5 = customer_at(server, "t5", None, berlin(28, 10, 0)).await;
    reply_at(
        server,
        t5,
        "bob@desk.test",
        "carla-t5@example.org",
        9,
        berlin(28, 12, 0),
    )
    .await;

    let t6 = customer_at(server, "t6", None, berlin(25, 9, 0)).await;
    reply_at(
        server,
        t6,
        "bob@desk.test",
        "carla-t6@example.org",
        10,
        berlin(25, 10, 0),
    )
    .await;
    resolve_at(server, t6, berlin(25, 12, 0)).await;
    let again = customer_at(server, "t6b", Some("t6@example.org"), berlin(25, 13, 0)).await;
    assert_eq!(again, t6, "the customer's mail reopens T6");
    sql(
        server,
        &format!(
            "INSERT INTO time_entries (ticket, agent_id, minutes, at)
             VALUES ({t6}, (SELECT id FROM agents WHERE email = 'bob@desk.test'), 10,
                     '2026-11-25T10:00:00+00:00')"
        ),
    )
    .await;
    let merged = server
        .store()
        .merge_tickets(&MergeRequest {
            source: t6,
            into: t5,
            actor: "bob@desk.test".into(),
            agent: None,
            at: berlin(28, 13, 0),
            reopen_window: Duration::days(30),
        })
        .await
        .expect("merge T6 into T5");
    assert!(
        merged.messages >= 3 && merged.time_entries == 1,
        "{merged:?}"
    );

    // Ratings and time, as the survey and `#time` write them.
    for (n, (ticket, agent, rating)) in
        [(t1, "ann", "good"), (t2, "ann", "bad"), (t4, "bob", "good")]
            .into_iter()
            .enumerate()
    {
        sql(
            server,
            &format!(
                "INSERT INTO satisfaction_surveys (ticket, queue_id, agent_id, token_hash, sent_at, rating, rated_at)
                 VALUES ({ticket}, (SELECT id FROM queues WHERE name = 'support'),
                         (SELECT id FROM agents WHERE email = '{agent}@desk.test'), 'token-{n}',
                         '2026-11-25T10:00:00+00:00', '{rating}', '2026-11-25T11:00:00+00:00')"
            ),
        )
        .await;
    }
    for (ticket, agent, minutes, at) in [
        (t1, "ann", 15, "2026-11-23T11:00:00+00:00"),
        (t4, "bob", 30, "2026-11-25T11:00:00+00:00"),
    ] {
        sql(
            server,
            &format!(
                "INSERT INTO time_entries (ticket, agent_id, minutes, at)
                 VALUES ({ticket}, (SELECT id FROM agents WHERE email = '{agent}@desk.test'), {minutes}, '{at}')"
            ),
        )
        .await;
    }
    [t1, t2, t3, t4, t5]
}

fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = ok(postdesk(config, args, None));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn hours(stat: &serde_json::Value) -> (u64, Option<f64>, Option<f64>) {
    (
        stat["count"].as_u64().unwrap_or(u64::MAX),
        stat["median_hours"].as_f64(),
        stat["p90_hours"].as_f64(),
    )
}

const WEEK: [&str; 4] = ["--from", "2026-11-23", "--to", "2026-11-30"];

backend_test!(
    async fn figures_match_a_hand_computed_week(backend: Backend) {
        let server = start(&backend, None).await;
        seed_week(&server).await;
        let config = cli_config(&server);

        let mut args = vec!["report", "--json"];
        args.extend(WEEK);
        let report = json(&config, &args);
        let t = &report["total"];
        assert_eq!(t["created"], 5, "{report:#}");
        assert_eq!(t["resolved"], 2, "{t:#}");
        assert_eq!(t["reopened"], 1, "{t:#}");
        assert_eq!(t["backlog"], 3, "{t:#}");
        assert_eq!(
            hours(&t["first_response"]),
            (5, Some(1.0), Some(12.0)),
            "{t:#}"
        );
        assert_eq!(
            hours(&t["next_response"]),
            (4, Some(2.5), Some(4.0)),
            "{t:#}"
        );
        assert_eq!(hours(&t["resolution"]), (2, Some(8.5), Some(9.0)), "{t:#}");
        assert_eq!(t["sla_first_response"]["measured"], 5);
        assert_eq!(t["sla_first_response"]["percent"], 80.0);
        assert_eq!(t["sla_next_response"]["percent"], 50.0);
        assert_eq!(
            (
                t["sla_resolution"]["measured"].as_i64(),
                t["sla_resolution"]["percent"].as_f64()
            ),
            (Some(3), Some(66.7))
        );
        assert_eq!(t["satisfaction"]["good"], 2);
        assert_eq!(t["satisfaction"]["bad"], 1);
        assert_eq!(t["satisfaction"]["percent_good"], 66.7);
        assert_eq!(t["time_spent_minutes"], 55, "T6's time moved to T5");
        assert_eq!(report["time_zone"], "Europe/Berlin");

        // Per agent: ann answered T1-T3, bob T4 and T5.
        let mut args = vec!["report", "--by", "agent", "--json"];
        args.extend(WEEK);
        let by_agent = json(&config, &args);
        let rows = by_agent["rows"].as_array().expect("rows");
        let keys: Vec<&str> = rows.iter().filter_map(|r| r["key"].as_str()).collect();
        assert_eq!(keys, ["ann@desk.test", "bob@desk.test"], "{by_agent:#}");
        assert_eq!(hours(&rows[0]["first_response"]), (3, Some(1.0), Some(2.0)));
        assert_eq!(
            (rows[0]["created"].as_i64(), rows[0]["backlog"].as_i64()),
            (Some(3), Some(1))
        );
        assert_eq!(
            hours(&rows[1]["first_response"]),
            (2, Some(6.0), Some(12.0))
        );
        assert_eq!(hours(&rows[1]["next_response"]), (2, Some(2.25), Some(3.5)));
        assert_eq!(rows[1]["reopened"], 1);
        assert_eq!(rows[1]["time_spent_minutes"], 40);

        // One agent only, and a day per line in Berlin.
        let mut args = vec![
            "report",
            "--agent",
            "bob@desk.test",
            "--by",
            "day",
            "--json",
        ];
        args.extend(WEEK);
        let bob = json(&config, &args);
        let days = bob["rows"].as_array().expect("rows");
        assert_eq!(days.len(), 8, "23 to 30 November");
        assert_eq!(days[1]["key"], "2026-11-24");
        assert_eq!(days[1]["created"], 1);
        // T6, merged: no ticket of bob's created, resolved or open on Wednesday.
        assert_eq!(days[2]["key"], "2026-11-25");
        assert_eq!(
            (days[2]["created"].as_i64(), days[2]["resolved"].as_i64()),
            (Some(0), Some(0)),
            "{bob:#}"
        );
        assert_eq!(bob["total"]["created"], 2);

        // CSV: a header, a line per queue, the total.
        let mut args = vec!["report", "--by", "queue", "--csv"];
        args.extend(WEEK);
        let csv = ok(postdesk(&config, &args, None));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("group,created,resolved,reopened,backlog,first_response_count,first_response_median_hours,first_response_p90_hours,"), "{csv}");
        assert!(lines[1].starts_with("support,5,2,1,3,5,1.00,12.00,4,2.50,4.00,2,8.50,9.00,80.00,50.00,66.70,2,0,1,66.70,55"), "{csv}");
        assert!(lines[2].starts_with("total,5,"), "{csv}");
        assert!(lines.iter().all(|l| l.split(',').count() == 22), "{csv}");

        // The text report names the figures.
        let mut args = vec!["report"];
        args.extend(WEEK);
        let text = ok(postdesk(&config, &args, None));
        assert!(
            text.contains("Report 2026-11-23 to 2026-11-30 (Europe/Berlin"),
            "{text}"
        );
        assert!(text.contains("1h/12h"), "{text}");

        // A lead sees their queues; an agent none; bad input is explained.
        let billing = json(
            &config,
            &[
                "--as",
                "bill@desk.test",
                "report",
                "--json",
                "--from",
                "2026-11-23",
            ],
        );
        assert_eq!(billing["total"]["created"], 0);
        let refused = postdesk(&config, &["--as", "bob@desk.test", "report"], None);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("read the reports"));
        let refused = postdesk(
            &config,
            &["--as", "bill@desk.test", "report", "--queue", "support"],
            None,
        );
        assert!(String::from_utf8_lossy(&refused.stderr).contains("not one of yours"));
        let bad = postdesk(&config, &["report", "--from", "23.11.2026"], None);
        assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a date (YYYY-MM-DD)"));
        let bad = postdesk(&config, &["report", "--by", "month"], None);
        assert!(String::from_utf8_lossy(&bad.stderr).contains("no grouping 'month'"));
        server.stop().await;
    }
);

backend_test!(
    async fn weekly_mail_goes_once_to_leads_and_admins_with_png_charts(backend: Backend) {
        let server = start(&backend, Some("mon 08:00")).await;
        seed_week(&server).await;
        let app = server.app();
        // Ann leads support from New York: her mail comes at 08:00 there
        // (14:00 in Berlin); the others have no zone of their own (the
        // report calendar's, Berlin).
        let config = cli_config(&server);
        let bad = postdesk(
            &config,
            &[
                "agent",
                "set",
                "ann@desk.test",
                "--time-zone",
                "Mars/Olympus",
            ],
            None,
        );
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("is not a time zone"),
            "{bad:?}"
        );
        let set = ok(postdesk(
            &config,
            &[
                "agent",
                "set",
                "ann@desk.test",
                "--time-zone",
                "America/New_York",
            ],
            None,
        ));
        assert!(set.contains("time zone America/New_York"), "{set}");
        let listed = ok(postdesk(&config, &["agent", "list"], None));
        assert!(listed.contains("America/New_York"), "{listed}");

        // Monday 30 November, 07:55 in Berlin: last week's mail is long
        // past its catch-up time, this week's not due yet.
        assert_eq!(run_due(app, berlin(30, 7, 55)).await.expect("run"), []);
        // 08:00 and a minute later, as two nodes would: one sends, to the
        // leads and admins of Berlin; Ann's hour has not come.
        let at = berlin(30, 8, 0);
        let (first, second) =
            tokio::join!(run_due(app, at), run_due(app, at + Duration::minutes(1)));
        let outcomes: Vec<Sent> = [first.expect("first"), second.expect("second")].concat();
        let queued: Vec<&Sent> = outcomes
            .iter()
            .filter(|s| matches!(s, Sent::Queued(..)))
            .collect();
        assert_eq!(queued.len(), 1, "{outcomes:?}");
        let Sent::Queued(period, recipients) = queued[0] else {
            unreachable!()
        };
        let mut recipients = recipients.clone();
        recipients.sort();
        assert_eq!(
            recipients,
            ["admin@desk.test", "bill@desk.test", "root@desk.test"],
            "leads and admins (the first start's too), not agents; Ann later"
        );
        // Later that morning, and after a restart: not again.
        assert_eq!(
            run_due(app, berlin(30, 12, 0)).await.expect("run"),
            [Sent::AlreadySent(period.clone())]
        );
        let server_ref = &server;
        let reports = |from: DateTime<Utc>| async move {
            server_ref
                .outbound(None)
                .await
                .into_iter()
                .filter(|o| o.purpose == "report")
                .filter(|o| o.created_at >= from && o.created_at <= from + Duration::minutes(1))
                .collect::<Vec<_>>()
        };
        let berlin_mails = reports(at).await;
        assert_eq!(berlin_mails.len(), 3, "{berlin_mails:?}");

        // 08:00 in New York: Ann's, once, for the seven days before in
        // her zone.
        let ny = berlin(30, 14, 0);
        let round = run_due(app, ny).await.expect("run");
        assert_eq!(round.len(), 2, "{round:?}");
        assert!(round.contains(&Sent::AlreadySent(period.clone())));
        let Some(Sent::Queued(ny_period, to)) =
            round.iter().find(|s| matches!(s, Sent::Queued(..)))
        else {
            panic!("{round:?}")
        };
        assert_eq!(to, &["ann@desk.test".to_string()]);
        assert!(ny_period.ends_with("America/New_York"), "{ny_period}");
        assert!(
            ny_period.contains("2026-11-30T13:00:00"),
            "08:00 in New York: {ny_period}"
        );
        assert!(
            run_due(app, ny + Duration::minutes(5))
                .await
                .expect("run")
                .iter()
                .all(|s| matches!(s, Sent::AlreadySent(_)))
        );
        let ann_mails = reports(ny).await;
        assert_eq!(ann_mails.len(), 1, "{ann_mails:?}");
        let ann = &ann_mails[0];
        assert_eq!(ann.rcpt_to, "ann@desk.test");
        assert!(ann.ticket.is_none(), "a report is in no ticket");
        let raw = server
            .store()
            .raw_message(ann.message.expect("message"))
            .await
            .expect("raw");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.contains("Subject: Weekly report 2026-11-23 to 2026-11-29"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-generated"));
        assert!(text.contains("multipart/related"), "inline images");
        assert_eq!(text.matches("Content-Type: image/png").count(), 3, "{text}");
        assert!(text.contains("cid:volume.png") && text.contains("cid:sla-by-queue.png"));
        // PNG data (base64 of the PNG signature).
        assert!(text.matches("iVBORw0KGgo").count() >= 3, "PNG parts");
        // The figures of ann's queue and a link to the page for her.
        assert!(text.contains("Tickets created"), "{text}");
        assert!(text.contains("/reports?agent="), "{text}");

        // Bill leads billing, where nothing happened: his mail says so.
        let bill = berlin_mails
            .iter()
            .find(|o| o.rcpt_to == "bill@desk.test")
            .expect("bill's mail");
        let raw = server
            .store()
            .raw_message(bill.message.expect("message"))
            .await
            .expect("raw");
        assert!(String::from_utf8_lossy(&raw).contains("image/png"));

        let mut server = server;
        server.restart().await;
        assert_eq!(
            run_due(server.app(), berlin(30, 9, 0)).await.expect("run"),
            [Sent::AlreadySent(period.clone())]
        );
        // The next Monday is a new period.
        assert!(matches!(
            run_due(server.app(), berlin(30, 8, 0) + Duration::days(7))
                .await
                .expect("run")
                .as_slice(),
            [Sent::Queued(..)]
        ));
        server.stop().await;
    }
);

/// A request over a fresh connection; (status, headers, body).
async fn http(addr: SocketAddr, request: String) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: desk.test\r\n{cookie}Connection: close\r\n\r\n"),
    )
    .await
}

async fn sign_in(addr: SocketAddr, email: &str, password: &str) -> (u16, String, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .finish();
    http(
        addr,
        format!(
            "POST /reports/login HTTP/1.1\r\nHost: desk.test\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

fn session_of(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie in {head}"))
        .to_string()
}

backend_test!(
    async fn report_page_signs_in_leads_and_refuses_agents(backend: Backend) {
        let server = start(&backend, None).await;
        seed_week(&server).await;
        let addr = server.http();

        // Not signed in: the sign-in page.
        let (status, head, _) = get(addr, "/reports", None).await;
        assert_eq!(status, 303, "{head}");
        assert!(
            head.to_lowercase().contains("location: /reports/login"),
            "{head}"
        );
        let (status, _, form) = get(addr, "/reports/login", None).await;
        assert_eq!(status, 200);
        assert!(form.contains("name=\"password\""));

        // A wrong password, an agent, a lead.
        let (status, _, body) = sign_in(addr, "ann@desk.test", "wrong").await;
        assert_eq!(status, 401, "{body}");
        let (status, head, body) = sign_in(addr, "bob@desk.test", "secret").await;
        assert_eq!(status, 403, "{body}");
        assert!(!head.to_lowercase().contains("set-cookie"), "{head}");
        let (status, head, _) = sign_in(addr, "ann@desk.test", "secret").await;
        assert_eq!(status, 303, "{head}");
        let session = session_of(&head);
        let (status, _, page) = get(
            addr,
            "/reports?from=2026-11-23&to=2026-11-30&by=agent",
            Some(&session),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<h1>Team report</h1>"), "{page}");
        assert!(page.contains("<svg"), "charts as inline SVG");
        assert!(
            page.contains("<td>Tickets created</td><td>5</td>"),
            "{page}"
        );
        // (minijinja writes "/" as &#x2f;)
        assert!(page.contains("1h &#x2f; 12h (5 measured)"), "{page}");
        assert!(page.contains("bob@desk.test"), "a line per agent");
        let (status, head, csv) = get(
            addr,
            "/reports/csv?from=2026-11-23&to=2026-11-30&by=queue",
            Some(&session),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            head.to_lowercase().contains("content-type: text/csv"),
            "{head}"
        );
        assert!(csv.contains("support,5,2,1,3,"), "{csv}");
        // A forged cookie is nobody.
        let forged = session.replace(".", "x.");
        assert_eq!(get(addr, "/reports", Some(&forged)).await.0, 303);

        // An agent's signed link (were one made) is refused as well.
        let key = postdesk::reports::LinkKey::load(server.store())
            .await
            .expect("key");
        let bob = server
            .store()
            .login_agent("bob@desk.test")
            .await
            .expect("bob")
            .expect("bob");
        let link = key.link_query(bob.id, Utc::now() + Duration::hours(1));
        let (status, head, _) = get(addr, &format!("/reports?{link}"), None).await;
        assert_eq!(status, 303);
        let bob_session = session_of(&head);
        assert_eq!(get(addr, "/reports", Some(&bob_session)).await.0, 403);
        server.stop().await;
    }
);

backend_test!(
    async fn report_page_in_headless_chromium(backend: Backend) {
        let Some(program) = chromium() else {
            return;
        };
        let server = start(&backend, None).await;
        seed_week(&server).await;
        let base = format!("http://{}", server.http());
        let key = postdesk::reports::LinkKey::load(server.store())
            .await
            .expect("key");
        let store = server.store();
        let person = |email: &'static str| async move {
            store
                .login_agent(email)
                .await
                .expect("agent")
                .expect("active")
                .id
        };
        let expires = Utc::now() + Duration::hours(1);
        let ann = key.link_query(person("ann@desk.test").await, expires);
        let bob = key.link_query(person("bob@desk.test").await, expires);

        // The lead's link from the mail signs her in and shows the page.
        let profile = server.dir.path().join("chromium-ann");
        let dom = run_chromium(
            program,
            &profile,
            vec!["--dump-dom".into()],
            format!("{base}/reports?{ann}"),
        )
        .await;
        let dom_text = String::from_utf8_lossy(&dom.stdout);
        assert!(
            dom_text.contains("<title>Team report · postdesk</title>"),
            "chromium did not show the report: {dom_text}\n{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        assert!(dom_text.contains("<h1>Team report</h1>"), "{dom_text}");
        assert!(dom_text.contains("Tickets created"), "{dom_text}");
        assert!(dom_text.contains("<svg"), "the charts: {dom_text}");
        assert!(dom_text.contains("Tickets per day"), "{dom_text}");

        // The same session, filtered to the hand-computed week.
        let week = run_chromium(
            program,
            &profile,
            vec!["--dump-dom".into()],
            format!("{base}/reports?from=2026-11-23&to=2026-11-30"),
        )
        .await;
        let week_text = String::from_utf8_lossy(&week.stdout);
        assert!(
            week_text.contains("<td>Tickets created</td><td>5</td>"),
            "{week_text}"
        );
        assert!(week_text.contains("1h / 12h (5 measured)"), "{week_text}");

        let shot = server.dir.path().join("report.png");
        let screenshot = run_chromium(
            program,
            &profile,
            vec![
                "--window-size=1200,1600".into(),
                format!("--screenshot={}", shot.display()),
            ],
            format!("{base}/reports?from=2026-11-23&to=2026-11-30"),
        )
        .await;
        let png = std::fs::read(&shot).unwrap_or_else(|e| {
            panic!(
                "no screenshot ({e}): {}",
                String::from_utf8_lossy(&screenshot.stderr)
            )
        });
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        assert_eq!(
            u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
            1200
        );

        // A plain agent gets 403's page.
        let profile = server.dir.path().join("chromium-bob");
        let refused = run_chromium(
            program,
            &profile,
            vec!["--dump-dom".into()],
            format!("{base}/reports?{bob}"),
        )
        .await;
        let refused_text = String::from_utf8_lossy(&refused.stdout);
        assert!(
            refused_text.contains("<h1>Not allowed</h1>"),
            "{refused_text}"
        );
        assert!(!refused_text.contains("Tickets created"), "{refused_text}");
        server.stop().await;
    }
);

backend_test!(
    async fn a_resolved_ticket_an_agent_takes_back_counts_as_reopened(backend: Backend) {
        let server = start(&backend, None).await;
        let t = customer_at(&server, "r1", None, berlin(23, 10, 0)).await;
        resolve_at(&server, t, berlin(23, 12, 0)).await;
        // Not the customer's mail: an agent (here the command line's
        // administrative change) puts it back into work.
        set_status(server.store(), t, Status::Open, berlin(24, 9, 30))
            .await
            .expect("reopen");
        let config = cli_config(&server);
        let mut args = vec!["report", "--json"];
        args.extend(WEEK);
        let report = json(&config, &args);
        assert_eq!(report["total"]["reopened"], 1, "{report:#}");
        assert_eq!(report["total"]["resolved"], 0, "{report:#}");
        server.stop().await;
    }
);
