//! Merge, split and time spent (issue 20, items 2 and 6), over real
//! sockets: `#merge 42` moves a ticket's mail, tags, participants, history
//! and time into #42 (the IMAP views and the search index follow, and mail
//! to the old ticket lands in #42); `#split` opens a linked ticket for a
//! customer's other matter; `postdesk ticket merge|split`; `#time 15m`.

use crate::cli::{config_file, ok, postdesk};
use crate::common::imap::{ImapClient, add_agent};
use crate::common::{Backend, TestServer, backend_test, deliver, eventually, message, ticket_of};
use crate::submission::submit;
use postdesk::domain::change::{ChangeRequest, TicketChange};
use postdesk::domain::ticket::Status;

/// A customer's mail to the support queue (or another address), with
/// extra header lines; returns the ticket it was filed in.
async fn customer(
    server: &TestServer,
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    extra: &str,
    body: &str,
) -> i64 {
    let mail = message(from, to, subject, id, extra, body);
    ticket_of(&deliver(server.smtp(), from, &[to], &mail).await)
}

/// An agent's mail as their client sends it.
fn agent_mail(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n{extra}\r\n{body}\r\n"
    )
    .into_bytes()
}

/// An internal note from `agent` to the ticket's plus-address.
async fn note(server: &TestServer, agent: &str, ticket: i64, id: &str, body: &str) -> String {
    let to = format!("support+{ticket}@desk.test");
    let mail = agent_mail(agent, &to, "Re: the ticket", id, "", body);
    let reply = submit(server, agent, agent, &[&to], &mail).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.text()
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

/// The Message-IDs of a ticket's messages (without acknowledgements).
async fn message_ids(server: &TestServer, ticket: i64) -> Vec<String> {
    server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages")
        .into_iter()
        .filter(|m| m.kind != "auto_reply")
        .map(|m| m.message_id)
        .collect()
}

async fn tag(server: &TestServer, ticket: i64, tag: &str) {
    let change = TicketChange {
        add_tags: vec![tag.to_string()],
        ..TicketChange::default()
    };
    server
        .store()
        .change_ticket(
            ticket,
            &ChangeRequest::administrative(change, "test", "test", chrono::Utc::now()),
        )
        .await
        .expect("tag");
}

backend_test!(
    async fn a_merge_by_mail_moves_the_ticket_and_mail_to_it_follows(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let old = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            "Printer jams",
            "a1@example.com",
            "",
            "The paper feeder grinds.",
        )
        .await;
        let target = customer(
            &server,
            "dave@example.com",
            "support@desk.test",
            "Office printer jams",
            "b1@example.com",
            "",
            "Our printer jams too.",
        )
        .await;
        tag(&server, old, "hardware").await;
        tag(&server, target, "vip").await;
        // Alice answers #target: it is hers (INBOX), with its first
        // response time; #old stays in Unassigned.
        let answer = agent_mail(
            "alice@desk.test",
            "dave@example.com",
            "Re: Office printer jams",
            "rb1@desk.test",
            "In-Reply-To: <b1@example.com>\r\n",
            "We are on it.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["dave@example.com"],
            &answer,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        let before = server.store().ticket(target).await.expect("target");
        assert!(before.first_response_at.is_some());
        let time = note(
            &server,
            "alice@desk.test",
            old,
            "t1@desk.test",
            "#time 10m\n",
        )
        .await;
        assert!(time.contains("Commands for"), "{time}");

        // An IMAP client idles on Unassigned, where #old's mail is.
        let mut idle = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let selected = idle.cmd("SELECT Unassigned").await;
        assert!(selected.all_text().contains("* 1 EXISTS"), "{selected:?}");
        let mut inbox = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let selected = inbox.cmd("SELECT INBOX").await;
        assert!(selected.all_text().contains("* 2 EXISTS"), "{selected:?}");
        idle.send_raw(b"i1 IDLE\r\n").await;
        assert!(idle.read_line().await.text.starts_with('+'));

        let said = note(
            &server,
            "alice@desk.test",
            old,
            "m1@desk.test",
            &format!("#merge {target}\n\nThe same printer as Dave's."),
        )
        .await;
        assert!(
            said.contains(&format!("Internal note added to #{target}"))
                && said.contains(&format!("#{old} merged into #{target}")),
            "{said}"
        );

        // The idle client sees the mail leave Unassigned.
        let line = idle.read_line().await;
        assert_eq!(line.text, "* 1 EXPUNGE");
        idle.send_raw(b"DONE\r\n").await;
        assert!(idle.read_until_tagged("i1").await.ok());
        // And INBOX holds it now, with the note (filed under #target).
        crate::common::imap::eventually(&mut inbox, "NOOP", |r| {
            r.all_text().contains("* 4 EXISTS")
        })
        .await;
        let fetched = inbox
            .cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])")
            .await;
        assert_eq!(fetched.fetches().len(), 4, "{fetched:?}");
        let mut text = fetched.all_text();
        for line in &fetched.untagged {
            for literal in &line.literals {
                text.push_str(&String::from_utf8_lossy(literal));
            }
        }
        assert!(text.contains("a1@example.com"), "{text}");
        assert!(
            text.contains(&format!("[#{target}] [note] Re: the ticket")),
            "the note carries the ticket it is in: {text}"
        );
        // A fresh SELECT agrees.
        let mut fresh = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(
            fresh
                .cmd("SELECT Unassigned")
                .await
                .all_text()
                .contains("* 0 EXISTS")
        );

        // The old ticket: closed, an empty shell that says where it went.
        let merged = server.store().ticket(old).await.expect("old");
        assert_eq!(merged.merged_into, Some(target));
        assert_eq!(merged.status, Status::Closed);
        assert_eq!(merged.message_count, 0);
        assert!(merged.tags.is_empty(), "{:?}", merged.tags);
        let history = events(&server, old).await;
        assert_eq!(history.len(), 1, "its history moved: {history:?}");
        assert!(
            history[0].starts_with(&format!(
                "merged merged into #{target} by alice@desk.test: 2 messages, 1 new participant, "
            )),
            "{history:?}"
        );

        // The target: every message, the tags, the participants, the
        // history (marked where it was written) and the time; its clocks
        // are its own.
        assert_eq!(
            message_ids(&server, target).await,
            [
                "a1@example.com",
                "b1@example.com",
                "rb1@desk.test",
                "m1@desk.test"
            ]
        );
        let after = server.store().ticket(target).await.expect("target");
        assert_eq!(after.tags, ["hardware", "vip"]);
        assert_eq!(after.first_response_at, before.first_response_at);
        assert_eq!(after.created_at, before.created_at);
        assert_eq!(after.status, before.status);
        let participants = server
            .store()
            .ticket_participants(target)
            .await
            .expect("participants");
        assert!(participants.contains(&"carol@example.com".to_string()));
        let moved: Vec<_> = server
            .store()
            .ticket_events(target)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.merged_from == Some(old))
            .map(|e| e.kind.to_string())
            .collect();
        assert!(moved.contains(&"created".to_string()), "{moved:?}");
        assert!(
            events(&server, target)
                .await
                .iter()
                .any(|e| e.starts_with(&format!("merged #{old} merged into this ticket by alice"))),
        );
        let time = server.store().time_spent(target).await.expect("time");
        assert_eq!(time, [("alice@desk.test".to_string(), 10)]);

        // Mail to the old ticket lands in the target: by references, by
        // the plus-address, by the subject tag.
        let by_reference = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            "Re: Printer jams",
            "a2@example.com",
            "In-Reply-To: <a1@example.com>\r\n",
            "Still grinding.",
        )
        .await;
        assert_eq!(by_reference, target);
        let plus = format!("support+{old}@desk.test");
        let by_plus = customer(
            &server,
            "carol@example.com",
            &plus,
            "Another thing",
            "a3@example.com",
            "",
            "Hello again.",
        )
        .await;
        assert_eq!(by_plus, target);
        let by_tag = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            &format!("[#{old}] any news?"),
            "a4@example.com",
            "",
            "Any news?",
        )
        .await;
        assert_eq!(by_tag, target);
        // An agent's mail naming the old ticket goes there too.
        let said = note(
            &server,
            "alice@desk.test",
            old,
            "m2@desk.test",
            "Checked the feeder.",
        )
        .await;
        assert!(
            said.contains(&format!("Internal note added to #{target}")),
            "{said}"
        );

        // The search index follows: the old ticket's words find the target.
        let index = server.app().search.get().expect("index").clone();
        eventually("the index to name the target for the moved mail", || {
            let index = index.clone();
            async move {
                index
                    .search("grinds", 10, false, None)
                    .map(|hits| hits.iter().map(|h| h.ticket).collect::<Vec<_>>() == [target])
                    .unwrap_or(false)
            }
        })
        .await;
        server.stop().await;
    }
);

backend_test!(
    async fn merges_the_agent_may_not_make_are_refused_with_a_note(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        let mine = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            "VPN drops",
            "v1@example.com",
            "",
            "It drops.",
        )
        .await;
        let billing = customer(
            &server,
            "erin@example.com",
            "billing@desk.test",
            "Invoice wrong",
            "i1@example.com",
            "",
            "Wrong amount.",
        )
        .await;
        let other = customer(
            &server,
            "dave@example.com",
            "support@desk.test",
            "VPN down",
            "d1@example.com",
            "",
            "Down.",
        )
        .await;
        let third = customer(
            &server,
            "frank@example.com",
            "support@desk.test",
            "VPN slow",
            "f1@example.com",
            "",
            "Slow.",
        )
        .await;
        // #other was merged into #third (by the administrator).
        let done = server
            .store()
            .merge_tickets(&postdesk::store::MergeRequest {
                source: other,
                into: third,
                actor: "admin".into(),
                agent: None,
                at: chrono::Utc::now(),
                reopen_window: chrono::Duration::days(30),
            })
            .await
            .expect("merge");
        // The customer's mail and its acknowledgement.
        assert_eq!(done.messages, 2);

        for (n, (command, why)) in [
            (
                billing.to_string(),
                format!("ticket #{billing} is not in your queues"),
            ),
            (
                mine.to_string(),
                format!("ticket #{mine} cannot be merged into itself"),
            ),
            (
                "9999".to_string(),
                "there is no ticket #9999 to merge into".to_string(),
            ),
            (
                other.to_string(),
                format!(
                    "ticket #{other} was itself merged into #{third}: merge into #{third} instead"
                ),
            ),
            (
                "soon".to_string(),
                "'soon' is not a ticket number".to_string(),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let said = note(
                &server,
                "bob@desk.test",
                mine,
                &format!("x{n}@desk.test"),
                &format!("#merge {command}\n\nSame thing."),
            )
            .await;
            assert!(said.contains("1 command error(s)"), "{said}");
            let history = events(&server, mine).await;
            assert!(
                history
                    .iter()
                    .any(|e| e.starts_with("command-error") && e.contains(&why)),
                "{why}: {history:?}"
            );
        }
        // A mail naming the merged ticket reaches #third; a #merge there
        // would merge what the agent did not name.
        let said = note(
            &server,
            "bob@desk.test",
            other,
            "y1@desk.test",
            &format!("#merge {mine}\n\nSame thing."),
        )
        .await;
        assert!(
            said.contains(&format!("Internal note added to #{third}")),
            "{said}"
        );
        assert!(
            events(&server, third)
                .await
                .iter()
                .any(|e| e.contains(&format!("ticket #{other} was already merged into #{third}"))),
            "{:?}",
            events(&server, third).await
        );
        assert_eq!(
            server
                .store()
                .ticket(third)
                .await
                .expect("third")
                .merged_into,
            None
        );
        // Nothing moved: #mine keeps its mail (and the notes), the billing
        // ticket its own.
        let kept = server.store().ticket(mine).await.expect("mine");
        assert_eq!(kept.merged_into, None);
        assert_eq!(message_ids(&server, billing).await, ["i1@example.com"]);
        assert!(
            message_ids(&server, mine)
                .await
                .contains(&"v1@example.com".to_string())
        );
        // A reply held with #hold sends nothing when the merge is refused.
        let held = agent_mail(
            "bob@desk.test",
            "carol@example.com",
            "Re: VPN drops",
            "h1@desk.test",
            "In-Reply-To: <v1@example.com>\r\n",
            &format!("#hold\n#merge {billing}\n\nMerged with the invoice ticket."),
        );
        let r = submit(
            &server,
            "bob@desk.test",
            "bob@desk.test",
            &["carol@example.com"],
            &held,
        )
        .await;
        assert!(r.text().contains("held"), "{r:?}");
        assert_eq!(message_ids(&server, billing).await, ["i1@example.com"]);
        server.stop().await;
    }
);

backend_test!(
    async fn a_split_by_mail_opens_a_linked_ticket_for_the_other_matter(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let first = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            "Printer jams",
            "c1@example.com",
            "",
            "The printer jams.",
        )
        .await;
        let r1 = agent_mail(
            "alice@desk.test",
            "carol@example.com",
            "Re: Printer jams",
            "r1@desk.test",
            "In-Reply-To: <c1@example.com>\r\n",
            "Open tray 2.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &r1,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        // Carol thanks, then raises another matter, and writes again on it.
        let c2 = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            &format!("Re: [#{first}] Printer jams"),
            "c2@example.com",
            "In-Reply-To: <r1@desk.test>\r\nReferences: <c1@example.com> <r1@desk.test>\r\n",
            "Thanks, that worked! Also, my VPN drops every hour.",
        )
        .await;
        assert_eq!(c2, first);
        let c3 = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            &format!("Re: [#{first}] Printer jams"),
            "c3@example.com",
            "In-Reply-To: <c2@example.com>\r\n",
            "The VPN dropped again.",
        )
        .await;
        assert_eq!(c3, first);

        // #split without naming the message: refused, nothing moves.
        let said = note(
            &server,
            "alice@desk.test",
            first,
            "n0@desk.test",
            "#split\n\nHm.",
        )
        .await;
        assert!(said.contains("1 command error(s)"), "{said}");
        // #split on the message that opened the ticket: refused.
        let opener = agent_mail(
            "alice@desk.test",
            &format!("support+{first}@desk.test"),
            "Re: Printer jams",
            "n1@desk.test",
            "In-Reply-To: <c1@example.com>\r\n",
            "#split\n\nHm.",
        );
        let to = format!("support+{first}@desk.test");
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&to],
            &opener,
        )
        .await;
        assert!(r.text().contains("1 command error(s)"), "{r:?}");
        let history = events(&server, first).await;
        assert!(
            history
                .iter()
                .any(|e| e.contains("names none in In-Reply-To")),
            "{history:?}"
        );
        assert!(
            history.iter().any(|e| e.contains("nothing to split off")),
            "{history:?}"
        );

        // Alice answers the VPN message with #split.
        let split = agent_mail(
            "alice@desk.test",
            "carol@example.com",
            &format!("Re: [#{first}] Printer jams"),
            "r2@desk.test",
            "In-Reply-To: <c2@example.com>\r\n\
             References: <c1@example.com> <r1@desk.test> <c2@example.com>\r\n",
            "#split\n\nLet us look at the VPN in its own ticket.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &split,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        let text = r.text();
        let new: i64 = text
            .rsplit("new ticket #")
            .next()
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no new ticket in {text}"));
        assert!(
            text.contains(&format!("Reply to #{new} queued for 1 recipient")),
            "{text}"
        );
        let opened = server.store().ticket(new).await.expect("new ticket");
        assert_eq!(opened.linked_ticket, Some(first));
        assert_eq!(opened.customer_address, "carol@example.com");
        assert_eq!(
            message_ids(&server, new).await,
            ["c2@example.com", "c3@example.com", "r2@desk.test"]
        );
        assert!(
            !message_ids(&server, first)
                .await
                .iter()
                .any(|id| id.starts_with("c2") || id.starts_with("c3"))
        );
        // The reply went out under the new ticket's tag.
        let sent = server
            .store()
            .ticket_messages(new)
            .await
            .expect("messages")
            .into_iter()
            .find(|m| m.message_id == "r2@desk.test")
            .expect("the reply");
        let raw = String::from_utf8_lossy(&server.store().raw_message(sent.id).await.expect("raw"))
            .into_owned();
        assert!(
            raw.contains(&format!("Subject: Re: [#{new}] Printer jams")),
            "{raw}"
        );
        assert!(
            events(&server, first)
                .await
                .iter()
                .any(|e| e
                    == &format!("split split by alice@desk.test: 2 messages of carol@example.com moved to new ticket #{new}"))
        );
        assert!(
            events(&server, new)
                .await
                .iter()
                .any(|e| e.starts_with(&format!(
                    "split opened by alice@desk.test splitting #{first}"
                )))
        );

        // Carol's answer to the split reply lands in the new ticket; her
        // answer to the printer reply stays with the printer.
        let vpn = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            &format!("Re: [#{new}] Printer jams"),
            "c4@example.com",
            "In-Reply-To: <r2@desk.test>\r\n\
             References: <c1@example.com> <r1@desk.test> <c2@example.com> <r2@desk.test>\r\n",
            "Sure.",
        )
        .await;
        assert_eq!(vpn, new);
        let printer = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            &format!("Re: [#{first}] Printer jams"),
            "c5@example.com",
            "In-Reply-To: <r1@desk.test>\r\nReferences: <c1@example.com> <r1@desk.test>\r\n",
            "The printer jams again.",
        )
        .await;
        assert_eq!(printer, first);
        server.stop().await;
    }
);

backend_test!(
    async fn the_command_line_merges_and_splits(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        let config = config_file(&server);
        let a = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            "Printer jams",
            "a1@example.com",
            "",
            "Jams.",
        )
        .await;
        let b = customer(
            &server,
            "dave@example.com",
            "support@desk.test",
            "Printer broken",
            "b1@example.com",
            "",
            "Broken.",
        )
        .await;
        let c = customer(
            &server,
            "erin@example.com",
            "support@desk.test",
            "Scanner",
            "e1@example.com",
            "",
            "Scans nothing.",
        )
        .await;
        let k = customer(
            &server,
            "frank@example.com",
            "billing@desk.test",
            "Invoice",
            "k1@example.com",
            "",
            "Wrong.",
        )
        .await;
        let (a_s, b_s, c_s, k_s) = (a.to_string(), b.to_string(), c.to_string(), k.to_string());

        let merged: serde_json::Value = serde_json::from_str(&ok(postdesk(
            &config,
            &["ticket", "merge", &a_s, "--into", &b_s, "--json"],
            None,
        )))
        .expect("json");
        assert_eq!(merged["source"], a);
        assert_eq!(merged["target"], b);
        // Her mail and its acknowledgement.
        assert_eq!(merged["messages"], 2);
        let shown = ok(postdesk(&config, &["ticket", "show", &a_s], None));
        assert!(
            shown.contains(&format!("closed, merged into #{b}")),
            "{shown}"
        );
        let listed = ok(postdesk(&config, &["ticket", "list"], None));
        assert!(listed.contains(&format!("merged into #{b}")), "{listed}");
        let json: serde_json::Value = serde_json::from_str(&ok(postdesk(
            &config,
            &["ticket", "show", &a_s, "--json"],
            None,
        )))
        .expect("json");
        assert_eq!(json["merged_into"], b);
        let shown = ok(postdesk(&config, &["ticket", "show", &b_s], None));
        assert!(shown.contains(&format!("(from #{a})")), "{shown}");

        let fails = |args: &[&str], says: &str| {
            let out = postdesk(&config, args, None);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!out.status.success(), "{args:?} succeeded");
            assert!(err.contains(says), "{args:?}: {err}");
        };
        fails(
            &["ticket", "merge", &c_s, "--into", &c_s],
            "cannot be merged into itself",
        );
        fails(
            &["ticket", "merge", &c_s, "--into", "9999"],
            "there is no ticket #9999",
        );
        fails(
            &["ticket", "merge", &c_s, "--into", &a_s],
            &format!("merge into #{b} instead"),
        );
        fails(
            &["ticket", "merge", &a_s, "--into", &c_s],
            &format!("already merged into #{b}"),
        );
        fails(
            &["ticket", "set", &a_s, "--status", "open"],
            &format!("was merged into #{b}"),
        );
        fails(
            &[
                "--as",
                "bob@desk.test",
                "ticket",
                "merge",
                &c_s,
                "--into",
                &k_s,
            ],
            &format!("ticket #{k} is not in your queues"),
        );

        // Carol writes again into the merged conversation; the CLI splits
        // her new mail off by its Message-ID.
        let again = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            "Re: Printer jams",
            "a2@example.com",
            "In-Reply-To: <a1@example.com>\r\n",
            "And the toner is empty, a different thing.",
        )
        .await;
        assert_eq!(again, b);
        fails(
            &["ticket", "split", &b_s, "--message", "nonsense"],
            "neither a message number",
        );
        let split: serde_json::Value = serde_json::from_str(&ok(postdesk(
            &config,
            &[
                "--as",
                "bob@desk.test",
                "ticket",
                "split",
                &b_s,
                "--message",
                "<a2@example.com>",
                "--json",
            ],
            None,
        )))
        .expect("json");
        let new = split["ticket"].as_i64().expect("new ticket");
        assert_eq!(split["customer"], "carol@example.com");
        assert_eq!(message_ids(&server, new).await, ["a2@example.com"]);
        assert_eq!(
            server.store().ticket(new).await.expect("new").linked_ticket,
            Some(b)
        );
        // By its number too (the ID column of `ticket show`); the message
        // that opened the ticket is not split off.
        let first_id = server.store().ticket_messages(b).await.expect("messages")[0].id;
        fails(
            &["ticket", "split", &b_s, "--message", &first_id.to_string()],
            "nothing to split off",
        );
        let shown = ok(postdesk(
            &config,
            &["ticket", "show", &new.to_string()],
            None,
        ));
        assert!(shown.contains("ID"), "{shown}");
        server.stop().await;
    }
);

backend_test!(
    async fn time_is_recorded_per_agent_and_shown(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        let config = config_file(&server);
        let t = customer(
            &server,
            "carol@example.com",
            "support@desk.test",
            "VPN drops",
            "v1@example.com",
            "",
            "It drops.",
        )
        .await;
        let said = note(
            &server,
            "alice@desk.test",
            t,
            "t1@desk.test",
            "#time 15m\n#time 1h30m\n\nLooked at the logs.",
        )
        .await;
        assert!(said.contains("Internal note added"), "{said}");
        note(&server, "bob@desk.test", t, "t2@desk.test", "#time 45m\n").await;
        let refused = note(
            &server,
            "alice@desk.test",
            t,
            "t3@desk.test",
            "#time soon\n",
        )
        .await;
        assert!(refused.contains("1 command error(s)"), "{refused}");
        note(&server, "alice@desk.test", t, "t4@desk.test", "#time 0m\n").await;

        let history = events(&server, t).await;
        assert!(
            history
                .iter()
                .any(|e| e == "changed mail command: time +1h45m (alice@desk.test)"),
            "{history:?}"
        );
        assert!(
            history
                .iter()
                .any(|e| e.contains("'soon' is not a duration: write it as 15m, 1h, 1h30m or 90m")),
            "{history:?}"
        );
        assert!(
            history.iter().any(|e| e.contains("'0m' is no time at all")),
            "{history:?}"
        );
        let shown: serde_json::Value = serde_json::from_str(&ok(postdesk(
            &config,
            &["ticket", "show", &t.to_string(), "--json"],
            None,
        )))
        .expect("json");
        assert_eq!(shown["time_spent_minutes"], 150);
        assert_eq!(shown["time_spent"][0]["agent"], "alice@desk.test");
        assert_eq!(shown["time_spent"][0]["minutes"], 105);
        assert_eq!(shown["time_spent"][1]["agent"], "bob@desk.test");
        assert_eq!(shown["time_spent"][1]["minutes"], 45);
        let text = ok(postdesk(&config, &["ticket", "show", &t.to_string()], None));
        assert!(
            text.contains("time     2h30m (alice@desk.test 1h45m, bob@desk.test 45m)"),
            "{text}"
        );
        server.stop().await;
    }
);
