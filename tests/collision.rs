//! A team working by mail (issue 20, items 1 and 3), over real sockets:
//! a reply to a ticket that changed after the message it answers is held
//! (Held folder over IMAP, a notice mail, nothing to the customer) and
//! sent by `#send`; the customer's Cc take part; Reply All is one mail;
//! `#cc add` and `#cc remove`.

use crate::common::imap::{ImapClient, add_agent};
use crate::common::sink::{Received, Sink};
use crate::common::{Backend, TestServer, backend_test, deliver, eventually, message, relay};
use crate::submission::{customer_writes, submit};
use postdesk::domain::collision::CollisionMode;
use postdesk::store::OutboundItem;

/// A reply as an agent's client sends it.
fn reply(
    from: &str,
    to: &str,
    cc: Option<&str>,
    id: &str,
    in_reply_to: &str,
    body: &str,
) -> Vec<u8> {
    let cc = cc.map(|c| format!("Cc: {c}\r\n")).unwrap_or_default();
    format!(
        "From: {from}\r\nTo: {to}\r\n{cc}Subject: Re: VPN drops\r\nMessage-ID: <{id}>\r\n\
         In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n\
         Date: Thu, 03 Dec 2026 10:00:00 +0100\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The customer writes again, answering `answers`.
async fn customer_again(server: &TestServer, id: &str, answers: &str) {
    let body = message(
        "Carol Customer <carol@example.com>",
        "support@desk.test",
        "Re: VPN drops",
        id,
        &format!("In-Reply-To: <{answers}>\r\n"),
        "It got worse: now it drops every 5 minutes.",
    );
    let r = deliver(
        server.smtp(),
        "carol@example.com",
        &["support@desk.test"],
        &body,
    )
    .await;
    assert_eq!(r.code, 250, "{r:?}");
}

async fn with_relay(backend: &Backend, mode: CollisionMode) -> (TestServer, Sink) {
    let sink = Sink::start(vec![], None).await;
    let server = TestServer::start_with(backend, |c| {
        c.outbound.relay = relay(sink.addr);
        c.submission.collision = mode;
    })
    .await;
    (server, sink)
}

/// The deliveries of agents' replies (not acknowledgements or notices).
async fn replies(server: &TestServer) -> Vec<OutboundItem> {
    server
        .outbound(None)
        .await
        .into_iter()
        .filter(|o| o.purpose == "reply")
        .collect()
}

fn to(sink: &Sink, rcpt: &str) -> Vec<Received> {
    sink.accepted()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == rcpt))
        .collect()
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

/// The agent's Held folder over IMAP: how many messages, and the bytes of
/// the first.
async fn held_folder(server: &TestServer, agent: &str) -> (usize, String) {
    let mut imap = ImapClient::login(server.imap(), agent, "secret").await;
    let list = imap.cmd("LIST \"\" \"*\"").await;
    assert!(list.all_text().contains("\"Held\""), "{}", list.all_text());
    let select = imap.cmd("SELECT Held").await;
    assert!(select.ok(), "{select:?}");
    let exists = select
        .untagged
        .iter()
        .find_map(|l| {
            l.text
                .strip_prefix("* ")
                .and_then(|t| t.strip_suffix(" EXISTS"))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or_default();
    let mut first = String::new();
    if exists > 0 {
        let fetch = imap.cmd("FETCH 1 BODY.PEEK[]").await;
        for line in &fetch.untagged {
            for literal in &line.literals {
                first.push_str(&String::from_utf8_lossy(literal));
            }
        }
    }
    let _ = imap.cmd("LOGOUT").await;
    (exists, first)
}

backend_test!(
    async fn a_reply_to_an_older_message_is_held_then_sent_with_send(backend: Backend) {
        let (server, sink) = with_relay(&backend, CollisionMode::Hold).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "c1@example.com", "VPN drops").await;
        customer_again(&server, "c2@example.com", "c1@example.com").await;

        // Alice answers the first message, not having seen the second.
        let first = reply(
            "alice <alice@desk.test>",
            "Carol Customer <carol@example.com>",
            None,
            "a1@desk.test",
            "c1@example.com",
            "Please restart the router.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &first,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(
            r.text()
                .contains(&format!("Reply to #{ticket} held, not sent")),
            "{r:?}"
        );

        // Her client retries (the 250 was lost): held once, one notice.
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &first,
        )
        .await;
        assert!(r.text().contains("held, not sent"), "{r:?}");
        let notices = server
            .outbound(None)
            .await
            .into_iter()
            .filter(|o| o.purpose == "collision")
            .count();
        assert_eq!(notices, 1);

        // Nothing for the customer; the reply is in Alice's Held folder;
        // a notice tells her what changed.
        assert!(replies(&server).await.is_empty());
        let (held, bytes) = held_folder(&server, "alice@desk.test").await;
        assert_eq!(held, 1);
        assert!(bytes.contains("Please restart the router."), "{bytes}");
        eventually("the notice to alice", || async {
            !to(&sink, "alice@desk.test").is_empty()
        })
        .await;
        let notice = String::from_utf8_lossy(&to(&sink, "alice@desk.test")[0].data).into_owned();
        assert!(notice.contains("was NOT sent"), "{notice}");
        assert!(
            notice.contains("new message from Carol Customer <carol@example.com>"),
            "{notice}"
        );
        assert!(
            notice.contains("Auto-Submitted: auto-generated"),
            "{notice}"
        );
        assert!(
            events(&server, ticket)
                .await
                .iter()
                .any(|e| e.starts_with("collision reply of alice@desk.test held")),
            "{:?}",
            events(&server, ticket).await
        );
        let ticket_now = server.store().ticket(ticket).await.expect("ticket");
        assert!(
            ticket_now.first_response_at.is_none(),
            "a held reply answers nobody"
        );
        assert_eq!(
            server
                .store()
                .held_replies(ticket)
                .await
                .expect("held")
                .len(),
            1
        );

        // She read it and sends it anyway: #send at the top.
        let again = reply(
            "alice <alice@desk.test>",
            "Carol Customer <carol@example.com>",
            None,
            "a2@desk.test",
            "c1@example.com",
            "#send\r\n\r\nPlease restart the router.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &again,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(
            r.text()
                .contains(&format!("Reply to #{ticket} queued for 1 recipient")),
            "{r:?}"
        );
        eventually("the reply at the relay", || async {
            !to(&sink, "carol@example.com")
                .iter()
                .all(|m| !String::from_utf8_lossy(&m.data).contains("restart the router"))
        })
        .await;
        let sent = to(&sink, "carol@example.com")
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .find(|d| d.contains("restart the router"))
            .unwrap_or_default();
        assert!(!sent.contains("#send"), "the command is cut out: {sent}");
        let (held, _) = held_folder(&server, "alice@desk.test").await;
        assert_eq!(held, 0, "sent: no longer held");
        assert!(
            server
                .store()
                .held_replies(ticket)
                .await
                .expect("held")
                .is_empty()
        );
        server.stop().await;
    }
);

backend_test!(
    async fn two_agents_answering_the_same_message_the_second_is_held(backend: Backend) {
        let (server, sink) = with_relay(&backend, CollisionMode::Hold).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "d1@example.com", "VPN drops").await;

        let alice = reply(
            "alice <alice@desk.test>",
            "carol@example.com",
            None,
            "da@desk.test",
            "d1@example.com",
            "Alice here: restart the router.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &alice,
        )
        .await;
        assert!(r.text().contains("queued for 1 recipient"), "{r:?}");

        let bob = reply(
            "bob <bob@desk.test>",
            "carol@example.com",
            None,
            "db@desk.test",
            "d1@example.com",
            "Bob here: update the client.",
        );
        let r = submit(
            &server,
            "bob@desk.test",
            "bob@desk.test",
            &["carol@example.com"],
            &bob,
        )
        .await;
        assert!(r.text().contains("held, not sent"), "{r:?}");
        assert_eq!(replies(&server).await.len(), 1, "only alice's went out");
        let (held, bytes) = held_folder(&server, "bob@desk.test").await;
        assert_eq!(held, 1);
        assert!(bytes.contains("Bob here"), "{bytes}");
        let (alices, _) = held_folder(&server, "alice@desk.test").await;
        assert_eq!(alices, 0, "Held is per agent");
        eventually("the notice to bob", || async {
            !to(&sink, "bob@desk.test").is_empty()
        })
        .await;
        let notice = String::from_utf8_lossy(&to(&sink, "bob@desk.test")[0].data).into_owned();
        assert!(notice.contains("reply by alice@desk.test"), "{notice}");

        // Bob answers the newest message (Alice's reply): sent, and his
        // held reply leaves Held. The ticket is Alice's now (her reply
        // took it): not a collision, but the history says whose it is.
        let bob_again = reply(
            "bob <bob@desk.test>",
            "carol@example.com",
            None,
            "db2@desk.test",
            "da@desk.test",
            "Bob here: and update the client too.",
        );
        let r = submit(
            &server,
            "bob@desk.test",
            "bob@desk.test",
            &["carol@example.com"],
            &bob_again,
        )
        .await;
        assert!(r.text().contains("queued for 1 recipient"), "{r:?}");
        assert_eq!(replies(&server).await.len(), 2);
        let (held, _) = held_folder(&server, "bob@desk.test").await;
        assert_eq!(held, 0);
        let history = events(&server, ticket).await;
        assert!(
            history.iter().any(|e| e
                == "reply reply by bob@desk.test: the ticket belongs to alice@desk.test; answered by a colleague"),
            "{history:?}"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn collision_off_sends_and_warn_sends_with_a_note(backend: Backend) {
        for mode in [CollisionMode::Off, CollisionMode::Warn] {
            let (server, sink) = with_relay(&backend, mode).await;
            add_agent(&server, "alice@desk.test", &["support"], false).await;
            let ticket = customer_writes(&server, "o1@example.com", "VPN drops").await;
            customer_again(&server, "o2@example.com", "o1@example.com").await;
            let first = reply(
                "alice <alice@desk.test>",
                "carol@example.com",
                None,
                "oa@desk.test",
                "o1@example.com",
                "Please restart the router.",
            );
            let r = submit(
                &server,
                "alice@desk.test",
                "alice@desk.test",
                &["carol@example.com"],
                &first,
            )
            .await;
            assert!(
                r.text().contains("queued for 1 recipient"),
                "{mode:?}: {r:?}"
            );
            assert_eq!(replies(&server).await.len(), 1, "{mode:?}");
            let (held, _) = held_folder(&server, "alice@desk.test").await;
            assert_eq!(held, 0, "{mode:?}");
            let history = events(&server, ticket).await;
            let noted = history
                .iter()
                .any(|e| e.starts_with("collision reply of alice@desk.test sent although"));
            match mode {
                CollisionMode::Off => {
                    assert!(!noted, "{history:?}");
                    assert!(!r.text().contains("changed"), "{r:?}");
                }
                _ => {
                    assert!(noted, "{history:?}");
                    assert!(
                        r.text()
                            .contains("the ticket changed after the message you answer"),
                        "{r:?}"
                    );
                    eventually("the warning to alice", || async {
                        !to(&sink, "alice@desk.test").is_empty()
                    })
                    .await;
                }
            }
            server.stop().await;
        }
    }
);

backend_test!(
    async fn the_customers_cc_take_part_and_reply_all_is_one_mail(backend: Backend) {
        let (server, sink) = with_relay(&backend, CollisionMode::Hold).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        let body = message(
            "Carol Customer <carol@example.com>",
            "support@desk.test, Dave <dave@example.com>",
            "VPN drops",
            "p1@example.com",
            "Cc: bob@desk.test, kb@desk.test\r\n",
            "The VPN drops. Dave sees it too.",
        );
        let r = deliver(
            server.smtp(),
            "carol@example.com",
            &["support@desk.test"],
            &body,
        )
        .await;
        let ticket = crate::common::ticket_of(&r);
        let view = postdesk::cli::ticket::TicketView::load(server.store(), ticket)
            .await
            .expect("view");
        let sides: Vec<(String, &str)> = view
            .participants
            .iter()
            .map(|p| (p.address.clone(), p.side))
            .collect();
        assert_eq!(
            sides,
            vec![
                ("bob@desk.test".to_string(), "colleague"),
                ("carol@example.com".to_string(), "customer"),
                ("dave@example.com".to_string(), "customer"),
            ],
            "queue and knowledge addresses take no part"
        );
        let shown = postdesk::cli::output::ticket_view(&view);
        assert!(
            shown.contains("cc       bob@desk.test (colleague), dave@example.com"),
            "{shown}"
        );
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["participants"][2]["address"], "dave@example.com");
        assert_eq!(json["participants"][2]["side"], "customer");

        // Reply All: To Carol, Cc Dave and Bob; one mail to Carol and Dave
        // (Bob is a colleague: he sees it in the ticket).
        let all = reply(
            "alice <alice@desk.test>",
            "Carol Customer <carol@example.com>",
            Some("Dave <dave@example.com>, bob@desk.test"),
            "pa@desk.test",
            "p1@example.com",
            "Both of you: restart the router.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com", "dave@example.com", "bob@desk.test"],
            &all,
        )
        .await;
        assert!(r.text().contains("queued for 2 recipients"), "{r:?}");
        let queued = replies(&server).await;
        assert_eq!(queued.len(), 1, "one mail: {queued:?}");
        assert_eq!(queued[0].rcpt_to, "carol@example.com");
        assert_eq!(queued[0].also_to, vec!["dave@example.com".to_string()]);
        eventually("the reply at the relay", || async {
            !to(&sink, "dave@example.com").is_empty()
        })
        .await;
        let delivered = to(&sink, "dave@example.com");
        assert_eq!(delivered.len(), 1);
        assert_eq!(
            delivered[0].rcpt_to,
            vec![
                "carol@example.com".to_string(),
                "dave@example.com".to_string()
            ]
        );
        let data = String::from_utf8_lossy(&delivered[0].data).into_owned();
        assert!(
            data.contains("Cc: Dave <dave@example.com>, bob@desk.test\r\n"),
            "everybody sees who else got it: {data}"
        );

        // Dave (customer side) answers: the next-response clock runs.
        let answered = server.store().ticket(ticket).await.expect("ticket");
        assert!(answered.customer_waiting_since.is_none());
        let dave = message(
            "Dave <dave@example.com>",
            "support@desk.test",
            "Re: VPN drops",
            "p2@example.com",
            "In-Reply-To: <pa@desk.test>\r\n",
            "Restarted, still drops.",
        );
        deliver(
            server.smtp(),
            "dave@example.com",
            &["support@desk.test"],
            &dave,
        )
        .await;
        let waiting = server.store().ticket(ticket).await.expect("ticket");
        assert!(waiting.customer_waiting_since.is_some(), "a customer waits");

        // Alice answers Dave; then Bob, a colleague in Cc, writes from his
        // own mailbox: it joins, and no customer waits for it.
        let again = reply(
            "alice <alice@desk.test>",
            "dave@example.com",
            None,
            "pb@desk.test",
            "p2@example.com",
            "Then update the client.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["dave@example.com"],
            &again,
        )
        .await;
        assert!(r.text().contains("queued for 1 recipient"), "{r:?}");
        let bob = message(
            "bob@desk.test",
            "support@desk.test",
            "Re: VPN drops",
            "p3@desk.test",
            "In-Reply-To: <pb@desk.test>\r\n",
            "I know this one: it is the MTU.",
        );
        deliver(server.smtp(), "bob@desk.test", &["support@desk.test"], &bob).await;
        let after = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(
            after.message_count,
            waiting.message_count + 2,
            "bob's mail joined"
        );
        assert!(
            after.customer_waiting_since.is_none(),
            "a colleague's mail starts no customer clock"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn cc_add_and_cc_remove(backend: Backend) {
        let (server, sink) = with_relay(&backend, CollisionMode::Hold).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let body = message(
            "Carol Customer <carol@example.com>",
            "support@desk.test",
            "VPN drops",
            "q1@example.com",
            "Cc: dave@example.com\r\n",
            "The VPN drops.",
        );
        let ticket = crate::common::ticket_of(
            &deliver(
                server.smtp(),
                "carol@example.com",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        let participants = || async {
            server
                .store()
                .ticket_participants(ticket)
                .await
                .expect("participants")
        };

        // #cc add: Erin takes part, and gets this reply in Cc.
        let add = reply(
            "alice <alice@desk.test>",
            "carol@example.com",
            Some("dave@example.com"),
            "qa@desk.test",
            "q1@example.com",
            "#cc add erin@example.com\r\n\r\nErin from networking joins us.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com", "dave@example.com"],
            &add,
        )
        .await;
        assert!(r.text().contains("queued for 3 recipients"), "{r:?}");
        assert!(
            participants()
                .await
                .contains(&"erin@example.com".to_string())
        );
        eventually("the reply at the relay", || async {
            !to(&sink, "erin@example.com").is_empty()
        })
        .await;
        let data = String::from_utf8_lossy(&to(&sink, "erin@example.com")[0].data).into_owned();
        assert!(data.contains("erin@example.com"), "{data}");
        assert!(!data.contains("#cc"), "{data}");
        let header = &data[..data.find("\r\n\r\n").unwrap_or(data.len())];
        assert!(
            header.lines().any(|l| l.starts_with("Cc: ")
                && l.contains("dave@example.com")
                && l.contains("erin@example.com")),
            "{header}"
        );
        assert!(
            events(&server, ticket)
                .await
                .iter()
                .any(|e| e.contains("participant +erin@example.com")),
            "{:?}",
            events(&server, ticket).await
        );

        // #cc remove: Dave no longer takes part nor gets the reply, though
        // the client still had him in Cc.
        let remove = reply(
            "alice <alice@desk.test>",
            "carol@example.com",
            Some("dave@example.com, erin@example.com"),
            "qb@desk.test",
            "qa@desk.test",
            "#cc remove dave@example.com\r\n\r\nDave is on holiday.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com", "dave@example.com", "erin@example.com"],
            &remove,
        )
        .await;
        assert!(r.text().contains("queued for 2 recipients"), "{r:?}");
        assert!(
            !participants()
                .await
                .contains(&"dave@example.com".to_string())
        );
        let last = replies(&server).await.pop().expect("queued");
        assert_eq!(
            last.recipients(),
            vec!["carol@example.com", "erin@example.com"]
        );
        eventually("the second reply at the relay", || async {
            to(&sink, "erin@example.com").len() == 2
        })
        .await;
        let data = String::from_utf8_lossy(&to(&sink, "erin@example.com")[1].data).into_owned();
        let header = &data[..data.find("\r\n\r\n").unwrap_or(data.len())];
        assert!(!header.contains("dave@example.com"), "{header}");
        assert!(
            header
                .lines()
                .any(|l| l.starts_with("Cc: ") && l.contains("erin@example.com")),
            "{header}"
        );

        // A mistaken #cc leaves a note and changes nothing.
        let wrong = reply(
            "alice <alice@desk.test>",
            "carol@example.com",
            None,
            "qc@desk.test",
            "qb@desk.test",
            "#cc add nobody\r\n\r\nHello.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &wrong,
        )
        .await;
        assert!(r.text().contains("1 command error"), "{r:?}");
        server.stop().await;
    }
);

backend_test!(
    async fn two_agents_answering_at_the_same_moment_one_is_held(backend: Backend) {
        let (server, _sink) = with_relay(&backend, CollisionMode::Hold).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        for round in 0..3 {
            let first = format!("r{round}@example.com");
            let ticket = customer_writes(&server, &first, "VPN drops").await;
            let alice = reply(
                "alice <alice@desk.test>",
                "carol@example.com",
                None,
                &format!("ra{round}@desk.test"),
                &first,
                "Alice here.",
            );
            let bob = reply(
                "bob <bob@desk.test>",
                "carol@example.com",
                None,
                &format!("rb{round}@desk.test"),
                &first,
                "Bob here.",
            );
            let (a, b) = tokio::join!(
                submit(
                    &server,
                    "alice@desk.test",
                    "alice@desk.test",
                    &["carol@example.com"],
                    &alice
                ),
                submit(
                    &server,
                    "bob@desk.test",
                    "bob@desk.test",
                    &["carol@example.com"],
                    &bob
                ),
            );
            let sent = [&a, &b]
                .iter()
                .filter(|r| r.text().contains("queued for 1 recipient"))
                .count();
            let held = [&a, &b]
                .iter()
                .filter(|r| r.text().contains("held, not sent"))
                .count();
            assert_eq!((sent, held), (1, 1), "round {round}: {a:?} {b:?}");
            let replies_now = replies(&server)
                .await
                .into_iter()
                .filter(|o| o.ticket == Some(ticket))
                .count();
            assert_eq!(replies_now, 1, "round {round}");
        }
        server.stop().await;
    }
);

backend_test!(
    async fn discarding_a_held_reply_is_written_in_the_history(backend: Backend) {
        let (server, _sink) = with_relay(&backend, CollisionMode::Hold).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "x1@example.com", "VPN drops").await;
        customer_again(&server, "x2@example.com", "x1@example.com").await;
        // Two replies to the older message: both held.
        for (n, id) in ["xa@desk.test", "xb@desk.test"].into_iter().enumerate() {
            let held = reply(
                "alice <alice@desk.test>",
                "carol@example.com",
                None,
                id,
                "x1@example.com",
                &format!("Draft {n}: restart the router."),
            );
            let r = submit(
                &server,
                "alice@desk.test",
                "alice@desk.test",
                &["carol@example.com"],
                &held,
            )
            .await;
            assert!(r.text().contains("held, not sent"), "{r:?}");
        }
        let discarded = || async {
            events(&server, ticket)
                .await
                .into_iter()
                .filter(|e| e == "collision held reply discarded by alice@desk.test")
                .count()
        };
        assert_eq!(discarded().await, 0);

        // The first: flagged \Deleted and expunged.
        let mut imap = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(imap.cmd("SELECT Held").await.ok());
        assert!(imap.cmd("STORE 1 +FLAGS (\\Deleted)").await.ok());
        let expunge = imap.cmd("EXPUNGE").await;
        assert!(expunge.ok(), "{expunge:?}");
        assert_eq!(discarded().await, 1, "{:?}", events(&server, ticket).await);
        assert_eq!(
            server
                .store()
                .held_replies(ticket)
                .await
                .expect("held")
                .len(),
            1
        );

        // The second: the Delete key of a client that moves to Trash.
        let moved = imap.cmd("MOVE 1 Trash").await;
        assert!(moved.ok(), "{moved:?}");
        assert!(moved.all_text().contains("discarded"), "{moved:?}");
        let _ = imap.cmd("LOGOUT").await;
        assert_eq!(discarded().await, 2, "{:?}", events(&server, ticket).await);
        assert!(
            server
                .store()
                .held_replies(ticket)
                .await
                .expect("held")
                .is_empty()
        );
        let (held, _) = held_folder(&server, "alice@desk.test").await;
        assert_eq!(held, 0);
        assert!(replies(&server).await.is_empty(), "nothing was sent");
        server.stop().await;
    }
);

backend_test!(
    async fn cc_add_of_a_reply_held_at_the_locked_recheck_waits_for_send(backend: Backend) {
        let (server, _sink) = with_relay(&backend, CollisionMode::Hold).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        // Several rounds at the same moment: the second reply to be filed
        // is held by the re-check with the ticket locked, after the first
        // check let both through.
        for round in 0..4 {
            let first = format!("cc{round}@example.com");
            let ticket = customer_writes(&server, &first, "VPN drops").await;
            let alice = reply(
                "alice <alice@desk.test>",
                "carol@example.com",
                None,
                &format!("cca{round}@desk.test"),
                &first,
                &format!("#cc add ann{round}@example.com\r\n\r\nAlice here."),
            );
            let bob = reply(
                "bob <bob@desk.test>",
                "carol@example.com",
                None,
                &format!("ccb{round}@desk.test"),
                &first,
                &format!("#cc add ben{round}@example.com\r\n\r\nBob here."),
            );
            let (a, b) = tokio::join!(
                submit(
                    &server,
                    "alice@desk.test",
                    "alice@desk.test",
                    &["carol@example.com"],
                    &alice
                ),
                submit(
                    &server,
                    "bob@desk.test",
                    "bob@desk.test",
                    &["carol@example.com"],
                    &bob
                ),
            );
            let held = |r: &crate::common::Reply| r.text().contains("held, not sent");
            assert_eq!(
                [&a, &b].iter().filter(|r| held(r)).count(),
                1,
                "round {round}: {a:?} {b:?}"
            );
            let (sent_by, held_by) = if held(&b) {
                ("alice", "bob")
            } else {
                ("bob", "alice")
            };
            let added = |who: &str| {
                if who == "alice" {
                    format!("ann{round}@example.com")
                } else {
                    format!("ben{round}@example.com")
                }
            };
            let participants = server
                .store()
                .ticket_participants(ticket)
                .await
                .expect("participants");
            assert!(
                participants.contains(&added(sent_by)),
                "round {round}: {participants:?}"
            );
            assert!(
                !participants.contains(&added(held_by)),
                "round {round}: the held reply's #cc took effect: {participants:?}"
            );

            // Sent with #send: now the participant is added.
            let again = reply(
                &format!("{held_by} <{held_by}@desk.test>"),
                "carol@example.com",
                None,
                &format!("ccs{round}@desk.test"),
                &first,
                &format!("#send\r\n#cc add {}\r\n\r\nAs I said.", added(held_by)),
            );
            let r = submit(
                &server,
                &format!("{held_by}@desk.test"),
                &format!("{held_by}@desk.test"),
                &["carol@example.com"],
                &again,
            )
            .await;
            assert!(r.text().contains("queued for"), "{r:?}");
            let participants = server
                .store()
                .ticket_participants(ticket)
                .await
                .expect("participants");
            assert!(
                participants.contains(&added(held_by)),
                "round {round}: {participants:?}"
            );
        }
        server.stop().await;
    }
);
