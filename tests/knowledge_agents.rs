//! The knowledge base from the agents' side and its way to customers
//! (issue 19), over real sockets on both backends: the Knowledge folders
//! in IMAP (read-only, a new revision is a new UID), `#kb 42` in a reply,
//! `#kb draft` from a ticket, `kind:article` in `postdesk search`, the
//! acknowledgement's "this solved my problem" link, the rule variable
//! `ticket.suggested_articles`, and that an internal article reaches no
//! customer by any route.

use crate::cli::{config_file, ok, postdesk};
use crate::common::imap::{ImapClient, Response, add_agent_as, search_numbers, uid_of};
use crate::common::sink::Sink;
use crate::common::{
    Backend, TestServer, backend_test, deliver, eventually, message, relay, ticket_of,
};
use crate::knowledge::{acknowledgement_of, four_articles, get, http, json, mail_kb};
use crate::submission::submit;
use postdesk::domain::permission::AgentRole;
use postdesk::domain::ticket::Status;
use postdesk::store::TicketUsage;

/// The decoded text and HTML of a mail.
fn parts(raw: &[u8]) -> (String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a mail");
    (
        parsed
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        parsed
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
    )
}

/// The literal of each FETCH line of a response, in order.
pub(crate) fn literals(response: &Response) -> Vec<Vec<u8>> {
    response
        .fetches()
        .iter()
        .map(|l| l.literals.first().cloned().unwrap_or_default())
        .collect()
}

/// A reply of an agent's client: text and HTML, the text as given.
pub(crate) fn reply_mail(
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    parent: &str,
    text: &str,
) -> Vec<u8> {
    let html: String = text.lines().map(|l| format!("<p>{l}</p>\r\n")).collect();
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n\
         Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n{html}</body></html>\r\n\
         --b1--\r\n"
    )
    .into_bytes()
}

/// A customer's new ticket about the printer; returns its number.
async fn printer_ticket(server: &TestServer, id: &str, body: &str) -> i64 {
    let mail = message(
        &format!("Carol Customer <{id}>"),
        "support@desk.test",
        "Help: printer on fire",
        id,
        "",
        body,
    );
    ticket_of(&deliver(server.smtp(), id, &["support@desk.test"], &mail).await)
}

backend_test!(
    async fn knowledge_folders_show_articles_read_only_and_new_revisions_as_new_uids(
        backend: Backend,
    ) {
        let server = TestServer::start(&backend).await;
        let config = config_file(&server);
        add_agent_as(&server, "bob@desk.test", &["support"], AgentRole::Agent).await;
        add_agent_as(&server, "lea@desk.test", &["support"], AgentRole::Lead).await;
        let [public, internal, draft, archived] = four_articles(&config);
        let mut bob = ImapClient::login(server.imap(), "bob@desk.test", "secret").await;

        let list = bob.cmd("LIST \"\" \"Knowledge*\"").await;
        assert!(list.ok(), "{list:?}");
        let names: Vec<String> = list.lines("LIST").iter().map(|l| l.text.clone()).collect();
        for name in [
            "\"Knowledge\"",
            "\"Knowledge/Drafts\"",
            "\"Knowledge/Printers\"",
        ] {
            assert!(
                names.iter().any(|n| n.ends_with(name)),
                "{name} in {names:?}"
            );
        }

        // A category: the published articles, the internal one marked.
        let select = bob.cmd("SELECT Knowledge/Printers").await;
        assert!(select.tagged.contains("[READ-ONLY]"), "{select:?}");
        assert!(select.all_text().contains("* 2 EXISTS"), "{select:?}");
        assert!(
            select.lines("FLAGS")[0].text.contains("internal"),
            "the keyword is announced: {select:?}"
        );
        let fetch = bob.cmd("FETCH 1:* (UID FLAGS BODY.PEEK[])").await;
        let bodies = literals(&fetch);
        assert_eq!(bodies.len(), 2, "{fetch:?}");
        let all = bodies
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(all.contains("Subject: Printer on fire"), "{all}");
        assert!(
            all.contains("Subject: [Internal] Printer admin password"),
            "{all}"
        );
        assert!(
            !all.contains("draft idea") && !all.contains("Old fax"),
            "{all}"
        );
        let public_index = bodies
            .iter()
            .position(|b| String::from_utf8_lossy(b).contains("Subject: Printer on fire"))
            .expect("the public article");
        let internal_line = &fetch.fetches()[1 - public_index];
        assert!(internal_line.text.contains("internal"), "{internal_line:?}");
        let (text, html) = parts(&bodies[public_index]);
        assert!(
            text.contains("Pull the **plug** and open a window."),
            "{text}"
        );
        assert!(html.contains("<strong>plug</strong>"), "{html}");
        let (internal_text, _) = parts(&bodies[1 - public_index]);
        assert!(
            internal_text.contains("hunter2"),
            "agents read internal articles"
        );
        assert!(internal_text.contains("INTERNAL"), "{internal_text}");
        let old_uid = uid_of(fetch.fetches()[public_index]);

        // SEARCH TEXT reads the articles.
        let found = bob.cmd("UID SEARCH TEXT hunter2").await;
        assert_eq!(search_numbers(&found), [uid_of(internal_line)], "{found:?}");

        // Read-only: nothing goes in, nothing changes, nothing moves out.
        let store = bob.cmd("STORE 1 +FLAGS (\\Flagged)").await;
        assert_eq!(store.status(), "NO", "{store:?}");
        assert!(store.tagged.contains("read-only"), "{store:?}");
        let moved = bob.cmd("MOVE 1 INBOX").await;
        assert_eq!(moved.status(), "NO", "{moved:?}");
        let appended = bob
            .append(
                "Knowledge/Printers",
                "",
                b"From: bob@desk.test\r\nSubject: mine\r\n\r\ntext\r\n",
            )
            .await;
        assert_eq!(appended.status(), "NO", "{appended:?}");
        assert!(appended.tagged.contains("read-only"), "{appended:?}");
        assert!(bob.cmd("CREATE Saved").await.ok());
        let copied = bob.cmd("COPY 1 Queues/support").await;
        assert_eq!(copied.status(), "NO", "{copied:?}");
        assert!(bob.cmd("COPY 1 Saved").await.ok(), "a copy of one's own");

        // Drafts only in Knowledge/Drafts; archived nowhere.
        let drafts = bob.cmd("EXAMINE Knowledge/Drafts").await;
        assert!(drafts.all_text().contains("* 1 EXISTS"), "{drafts:?}");
        let fetch = bob.cmd("FETCH 1 (FLAGS BODY.PEEK[])").await;
        let raw = String::from_utf8_lossy(&literals(&fetch)[0]).into_owned();
        assert!(raw.contains("Subject: [Draft] Printer draft idea"), "{raw}");
        assert!(fetch.fetches()[0].text.contains("\\Draft"), "{fetch:?}");
        let everything = bob.cmd("EXAMINE Knowledge").await;
        assert!(
            everything.all_text().contains("* 2 EXISTS"),
            "{everything:?}"
        );
        let _ = (internal, archived);

        // A lead publishes the draft by replying to its message: it leaves
        // Drafts and joins Printers.
        let draft_id = raw
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .map(|l| l.trim_end_matches(['>', '\r']).to_string())
            .expect("the draft's Message-ID");
        let reply = mail_kb(
            &server,
            "lea@desk.test",
            &format!(
                "From: lea@desk.test\r\nTo: kb@desk.test\r\nSubject: Re: [Draft] Printer draft idea\r\n\
                 Message-ID: <lea1@desk.test>\r\nIn-Reply-To: <{draft_id}>\r\n\
                 Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n#publish\r\n"
            ),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        assert!(
            reply
                .text()
                .contains(&format!("Article {draft} revision 2")),
            "{reply:?}"
        );
        let noop = bob.cmd("NOOP").await;
        assert!(noop.all_text().contains("EXISTS"), "{noop:?}");

        // A new revision: the old UID is expunged, the article is back
        // under a new UID with the new text.
        assert!(bob.cmd("SELECT Knowledge/Printers").await.ok());
        ok(postdesk(
            &config,
            &["kb", "edit", &public.to_string(), "--stdin"],
            Some("Pull the plug. Call the fire brigade.\n"),
        ));
        let noop = bob.cmd("NOOP").await;
        assert!(noop.all_text().contains("EXPUNGE"), "{noop:?}");
        let fetch = bob.cmd("UID FETCH 1:* (UID BODY.PEEK[])").await;
        let mut new_uid = None;
        for (line, body) in fetch.fetches().iter().zip(literals(&fetch)) {
            let (text, _) = parts(&body);
            if text.contains("Call the fire brigade") {
                new_uid = Some(uid_of(line));
            }
        }
        let new_uid = new_uid.expect("the new revision");
        assert!(new_uid > old_uid, "{new_uid} after {old_uid}");
        assert!(
            !fetch.fetches().iter().any(|l| uid_of(l) == old_uid),
            "the old UID is gone: {fetch:?}"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn kb_inserts_a_public_article_into_the_reply(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server =
            TestServer::start_with(&backend, |c| c.outbound.relay = relay(sink.addr)).await;
        let config = config_file(&server);
        add_agent_as(&server, "alice@desk.test", &["support"], AgentRole::Agent).await;
        let [public, ..] = four_articles(&config);
        let ticket = printer_ticket(&server, "k1@example.com", "It smokes.").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;

        let reply = reply_mail(
            "alice@desk.test",
            "k1@example.com",
            "Re: Help: printer on fire",
            "kb-r1@desk.test",
            "k1@example.com",
            &format!("#kb {public}\r\n\r\nHi, the article above says it all."),
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["k1@example.com"],
            &reply,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(
            r.text().contains(&format!("article {public} inserted")),
            "{r:?}"
        );
        eventually("the reply at the relay", || async {
            sink.accepted().len() == 2
        })
        .await;
        let sent = sink.accepted().remove(1);
        let (text, html) = parts(&sent.data);
        assert!(
            text.starts_with("Pull the **plug** and open a window."),
            "{text}"
        );
        assert!(text.contains("the article above says it all"), "{text}");
        assert!(!text.contains("#kb"), "{text}");
        let plug = html
            .find("<strong>plug</strong>")
            .expect("the article's HTML");
        let own = html.find("the article above").expect("the agent's words");
        assert!(plug < own, "inserted where the command was: {html}");
        assert!(!html.contains("#kb"), "{html}");

        // The ticket records which article went out; kb report counts it.
        assert_eq!(
            server.store().kb_ticket_usage(ticket).await.expect("usage"),
            [(public, TicketUsage::Inserted)]
        );
        let events = server.store().ticket_events(ticket).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == "knowledge" && e.detail.contains("inserted")),
            "{events:?}"
        );
        let report = json(&config, &["kb", "report", "--json"], None);
        let row = report
            .as_array()
            .and_then(|all| all.iter().find(|u| u["id"] == public).cloned())
            .expect("the article's figures");
        assert_eq!(row["inserted"], 1, "{report}");
        assert_eq!(row["tickets"], 1, "{report}");
        server.stop().await;
    }
);

backend_test!(
    async fn kb_with_an_internal_or_draft_article_is_refused_with_a_note(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server =
            TestServer::start_with(&backend, |c| c.outbound.relay = relay(sink.addr)).await;
        let config = config_file(&server);
        add_agent_as(&server, "alice@desk.test", &["support"], AgentRole::Agent).await;
        let [_, internal, draft, _] = four_articles(&config);
        let ticket = printer_ticket(&server, "k2@example.com", "It smokes.").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;

        // `#kb` of an internal article with #hold: nothing is sent.
        let reply = reply_mail(
            "alice@desk.test",
            "k2@example.com",
            "Re: Help: printer on fire",
            "kb-r2@desk.test",
            "k2@example.com",
            &format!("#kb {internal}\r\n#hold\r\n\r\nHere is how to get in."),
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["k2@example.com"],
            &reply,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(r.text().contains("held"), "{r:?}");
        let messages = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        assert!(!messages.iter().any(|m| m.kind == "reply"), "{messages:?}");
        let mut notes = String::new();
        for m in messages.iter().filter(|m| m.kind == "note") {
            let raw = server.store().raw_message(m.id).await.expect("raw");
            notes.push_str(&parts(&raw).0);
        }
        assert!(
            notes.contains(&format!("article {internal} is internal")),
            "{notes}"
        );
        assert!(!notes.contains("hunter2"), "{notes}");

        // Without #hold the reply goes, without the draft's text, and the
        // agent is told.
        let reply = reply_mail(
            "alice@desk.test",
            "k2@example.com",
            "Re: Help: printer on fire",
            "kb-r3@desk.test",
            "k2@example.com",
            &format!("#kb {draft}\r\n\r\nWe are on it."),
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["k2@example.com"],
            &reply,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(r.text().contains("command error"), "{r:?}");
        eventually("the reply at the relay", || async {
            sink.accepted().len() == 2
        })
        .await;
        let (text, _) = parts(&sink.accepted()[1].data);
        assert!(text.contains("We are on it."), "{text}");
        assert!(!text.contains("Maybe soon"), "{text}");
        for received in sink.accepted() {
            let data = String::from_utf8_lossy(&received.data);
            assert!(!data.contains("hunter2"), "{data}");
        }
        assert!(
            server
                .store()
                .kb_ticket_usage(ticket)
                .await
                .expect("usage")
                .is_empty()
        );
        server.stop().await;
    }
);

backend_test!(
    async fn kb_draft_writes_a_draft_without_the_customer(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent_as(&server, "alice@desk.test", &["support"], AgentRole::Agent).await;
        let customer = message(
            "Carol Customer <carol@example.com>",
            "support@desk.test",
            "Printer shows E42",
            "d1@example.com",
            "",
            "Hi,\r\n\r\nMy printer shows error E42 since Monday. Carol here, mail me at \
             carol@example.com.\r\n\r\nThanks,\r\nCarol Customer\r\nACME Corp",
        );
        let ticket = ticket_of(
            &deliver(
                server.smtp(),
                "carol@example.com",
                &["support@desk.test"],
                &customer,
            )
            .await,
        );
        let reply = reply_mail(
            "alice@desk.test",
            "carol@example.com",
            "Re: Printer shows E42",
            "d2@desk.test",
            "d1@example.com",
            "#kb draft\r\n\r\nHello Carol,\r\n\r\nRemove the toner, wait a minute and \
             put it back.\r\n\r\nBest regards,\r\nalice\r\n\r\nOn Monday, Carol wrote:\r\n> My printer shows error E42",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &reply,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(r.text().contains("draft article"), "{r:?}");
        let usage = server.store().kb_ticket_usage(ticket).await.expect("usage");
        let [(article, TicketUsage::Drafted)] = usage.as_slice() else {
            panic!("a draft linked to the ticket: {usage:?}");
        };
        let draft = server
            .store()
            .kb_article(*article)
            .await
            .expect("read")
            .expect("the draft");
        assert_eq!(draft.content.state.as_str(), "draft");
        assert_eq!(draft.content.visibility.as_str(), "internal");
        assert_eq!(draft.content.title, "Printer shows E42");
        assert_eq!(draft.content.category, "support");
        assert_eq!(draft.updated_by, "alice@desk.test");
        let body = &draft.content.body_text;
        assert!(body.contains("error E42 since Monday"), "{body}");
        assert!(body.contains("Remove the toner"), "{body}");
        for private in [
            "carol",
            "Carol",
            "example.com",
            "ACME",
            "alice",
            "wrote:",
            "Hello",
        ] {
            assert!(!body.contains(private), "{private} in {body}");
        }

        // It is the agent's to edit: in Knowledge/Drafts.
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let drafts = alice.cmd("EXAMINE Knowledge/Drafts").await;
        assert!(drafts.all_text().contains("* 1 EXISTS"), "{drafts:?}");
        let fetch = alice.cmd("FETCH 1 BODY.PEEK[]").await;
        let raw = String::from_utf8_lossy(&literals(&fetch)[0]).into_owned();
        assert!(raw.contains("Subject: [Draft] Printer shows E42"), "{raw}");
        server.stop().await;
    }
);

backend_test!(
    async fn search_finds_articles_with_kind_article(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let config = config_file(&server);
        let [public, internal, draft, _] = four_articles(&config);
        let found = json(
            &config,
            &["search", "kind:article", "printer", "--json"],
            None,
        );
        let ids: Vec<i64> = found
            .as_array()
            .expect("a list")
            .iter()
            .map(|a| {
                assert_eq!(a["kind"], "article", "{a}");
                a["article"].as_i64().expect("id")
            })
            .collect();
        for id in [public, internal, draft] {
            assert!(ids.contains(&id), "{id} in {found}");
        }
        let found = json(&config, &["search", "hunter2 kind:article", "--json"], None);
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
        assert_eq!(found[0]["article"], internal);
        assert_eq!(found[0]["visibility"], "internal");
        let text = ok(postdesk(
            &config,
            &["search", "kind:article", "window"],
            None,
        ));
        assert!(text.contains("Printer on fire"), "{text}");
        assert!(text.contains("open a window"), "{text}");
        let none = ok(postdesk(
            &config,
            &["search", "kind:article", "zebra"],
            None,
        ));
        assert!(none.contains("no matching articles"), "{none}");
        server.stop().await;
    }
);

/// The "this solved my problem" link of an acknowledgement, as a path.
fn solved_path(ack: &str) -> String {
    let at = ack
        .find("/kb/solved/")
        .unwrap_or_else(|| panic!("no solved link in {ack}"));
    ack[at..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

backend_test!(
    async fn the_solved_link_resolves_the_ticket_once_and_forged_ones_nothing(backend: Backend) {
        let server = TestServer::start_with(&backend, |config| {
            config.knowledge.help_center_url = Some("https://help.desk.test/".into());
        })
        .await;
        let config = config_file(&server);
        let [public, ..] = four_articles(&config);
        let ticket = printer_ticket(
            &server,
            "s1@example.org",
            "Our printer is on fire, what do we do?",
        )
        .await;
        let other =
            printer_ticket(&server, "s2@example.org", "The printer is on fire again.").await;
        let ack = parts(acknowledgement_of(&server, ticket).await.as_bytes()).0;
        let path = solved_path(&ack);
        assert!(
            ack.contains(&format!(
                "https://help.desk.test/kb/solved/{ticket}/{public}/"
            )),
            "{ack}"
        );
        let addr = server.http();
        let store = server.store();
        let status = |n: i64| async move { store.ticket(n).await.expect("ticket").status };

        // Following the link asks first (mail scanners follow links).
        let (code, _, page) = get(addr, &path).await;
        assert_eq!(code, 200, "{page}");
        assert!(page.contains("method=\"post\""), "{page}");
        assert_ne!(status(ticket).await, Status::Resolved);

        // Forged: another ticket's number, another article, a made-up token.
        let token = path.rsplit('/').next().unwrap_or_default().to_string();
        for forged in [
            format!("/kb/solved/{other}/{public}/{token}"),
            format!("/kb/solved/{ticket}/{}/{token}", public + 1),
            format!("/kb/solved/{ticket}/{public}/{}", "0".repeat(24)),
            format!("/kb/solved/{ticket}/{public}/x"),
        ] {
            let (code, _, _) = http(addr, "POST", &forged, "").await;
            assert_eq!(code, 404, "{forged}");
        }
        assert_ne!(status(other).await, Status::Resolved);

        // The article's page counts its views (a redirect or the
        // thank-you page does not).
        let (code, _, _) = get(addr, &format!("/kb/{public}-printer-on-fire")).await;
        assert_eq!(code, 200);
        let (code, _, _) = get(addr, &format!("/kb/{public}")).await;
        assert_eq!(code, 308);

        // Confirmed: resolved through the ticket-change operation, once.
        let (code, _, page) = http(addr, "POST", &path, "").await;
        assert_eq!(code, 200, "{page}");
        assert!(page.contains("is now resolved"), "{page}");
        assert_eq!(status(ticket).await, Status::Resolved);
        let events = server.store().ticket_events(ticket).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.detail.contains("solved the problem")),
            "{events:?}"
        );
        let (code, _, page) = http(addr, "POST", &path, "").await;
        assert_eq!(code, 200);
        assert!(page.contains("already resolved"), "{page}");
        let report = json(&config, &["kb", "report", "--json"], None);
        let row = report
            .as_array()
            .and_then(|all| all.iter().find(|u| u["id"] == public).cloned())
            .expect("figures");
        assert_eq!(row["helped_yes"], 1, "counted once: {report}");
        assert_eq!(row["views"], 1, "{report}");
        server.stop().await;
    }
);

const SOLVED_RULES: &str = r#"
[[rule]]
name = "Solved by a suggested article"
when = 'message.text.contains("solved") && size(ticket.suggested_articles) > 0'
status = "resolved"
"#;

backend_test!(
    async fn a_rule_on_suggested_articles_resolves_the_ticket(backend: Backend) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, SOLVED_RULES).expect("rules");
        let server = TestServer::start_with(&backend, |c| c.rules = Some(path.clone())).await;
        let config = config_file(&server);
        let [public, ..] = four_articles(&config);
        let suggested = printer_ticket(&server, "r1@example.org", "Printer on fire, help!").await;
        assert_eq!(
            server
                .store()
                .kb_suggested_for(suggested)
                .await
                .expect("read"),
            [public]
        );
        let plain = ticket_of(
            &deliver(
                server.smtp(),
                "r2@example.org",
                &["support@desk.test"],
                &message(
                    "r2@example.org",
                    "support@desk.test",
                    "Invoice address",
                    "r2@example.org",
                    "",
                    "Please change our invoice address.",
                ),
            )
            .await,
        );
        for (ticket, from, subject) in [
            (suggested, "r1@example.org", "Help"),
            (plain, "r2@example.org", "Invoice address"),
        ] {
            let reply = message(
                from,
                "support@desk.test",
                &format!("Re: [#{ticket}] {subject}"),
                &format!("again-{ticket}@example.org"),
                "",
                "Thanks, that solved it.",
            );
            let joined =
                ticket_of(&deliver(server.smtp(), from, &["support@desk.test"], &reply).await);
            assert_eq!(joined, ticket);
        }
        let store = server.store();
        let status = |n: i64| async move { store.ticket(n).await.expect("ticket").status };
        assert_eq!(status(suggested).await, Status::Resolved);
        assert_ne!(
            status(plain).await,
            Status::Resolved,
            "no suggestion, no rule"
        );
        let events = server
            .store()
            .ticket_events(suggested)
            .await
            .expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.detail.contains("Solved by a suggested article")),
            "{events:?}"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn an_internal_article_reaches_no_customer_by_any_route(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server = TestServer::start_with(&backend, |c| {
            c.outbound.relay = relay(sink.addr);
            c.knowledge.help_center_url = Some("https://help.desk.test".into());
        })
        .await;
        let config = config_file(&server);
        add_agent_as(&server, "alice@desk.test", &["support"], AgentRole::Agent).await;
        let [_, internal, draft, archived] = four_articles(&config);
        // 1. The acknowledgement: a message with the internal article's
        // very title suggests it not (nor the draft, nor the archived one).
        let ticket = printer_ticket(
            &server,
            "leak@example.org",
            "I need the printer admin password, and the printer draft idea, and the old fax machine.",
        )
        .await;
        let ack = parts(acknowledgement_of(&server, ticket).await.as_bytes()).0;
        for id in [internal, draft, archived] {
            assert!(!ack.contains(&format!("/kb/{id}-")), "{ack}");
            assert!(!ack.contains(&format!("/{id}/")), "{ack}");
        }
        assert!(!ack.contains("Printer admin password"), "{ack}");
        // 2. `#kb`: refused, whatever else the reply says.
        for id in [internal, draft, archived] {
            let reply = reply_mail(
                "alice@desk.test",
                "leak@example.org",
                "Re: Help: printer on fire",
                &format!("leak-{id}@desk.test"),
                "leak@example.org",
                &format!("#kb {id}\r\n\r\nSee above."),
            );
            let r = submit(
                &server,
                "alice@desk.test",
                "alice@desk.test",
                &["leak@example.org"],
                &reply,
            )
            .await;
            assert_eq!(r.code, 250, "{r:?}");
        }
        eventually("the acknowledgement and three replies", || async {
            sink.accepted().len() == 4
        })
        .await;
        for received in sink.accepted() {
            let (text, html) = parts(&received.data);
            for secret in ["hunter2", "Maybe soon", "Gone."] {
                assert!(
                    !text.contains(secret) && !html.contains(secret),
                    "{secret} sent: {text}"
                );
            }
        }
        // 3. The help center: not served, not found, not listed.
        let addr = server.http();
        for id in [internal, draft, archived] {
            let (code, _, _) = get(addr, &format!("/kb/{id}")).await;
            assert_eq!(code, 404);
        }
        let (_, _, page) = get(addr, "/kb/search?q=hunter2").await;
        assert!(!page.contains("hunter2") || page.contains("No article matches"));
        assert!(!page.contains("Printer admin password"), "{page}");
        let (_, _, page) = get(addr, "/kb").await;
        assert!(!page.contains("Printer admin password"), "{page}");
        // 4. A "solved" link cannot be made for it.
        let (code, _, _) = get(
            addr,
            &format!("/kb/solved/{ticket}/{internal}/{}", "0".repeat(24)),
        )
        .await;
        assert_eq!(code, 404);
        server.stop().await;
    }
);
