//! Knowledge-base categories tied to queues (issue 19: "agents of a queue
//! create drafts and edit articles of the categories their queues use"),
//! over real sockets on both backends: mail to the knowledge address, a
//! reply to an article's message, `#kb draft` from a ticket, the command
//! line with `--as`, and what `Knowledge/Drafts` shows; and the
//! configuration key `knowledge_categories` with its mistakes.

use crate::cli::{config_file, ok, postdesk};
use crate::common::imap::{ImapClient, add_agent_as, search_numbers};
use crate::common::{Backend, TestServer, backend_test, deliver, message, ticket_of};
use crate::knowledge::{article_mail, json, mail_kb, refused};
use crate::knowledge_agents::{literals, reply_mail};
use crate::submission::submit;
use postdesk::domain::permission::AgentRole;
use postdesk::store::TicketUsage;
use std::path::PathBuf;

/// A server whose `support` queue uses the categories Printers and
/// Billing (its agents also write the billing articles) and whose
/// `billing` queue uses Invoices; every other category is shared.
async fn scoped_server(backend: &Backend) -> TestServer {
    TestServer::start_with(backend, |config| {
        config.queues[0].knowledge_categories = vec!["Printers".into(), "Billing".into()];
        config.queues[1].knowledge_categories = vec!["Invoices".into()];
    })
    .await
}

/// The command line's configuration of the server, with its queues'
/// categories.
fn scoped_config_file(server: &TestServer) -> PathBuf {
    let path = config_file(server);
    let mut text = std::fs::read_to_string(&path).expect("read config");
    text.push_str(
        "[[queue]]\nname = \"support\"\naddress = \"support@desk.test\"\n\
         knowledge_categories = [\"Printers\", \"Billing\"]\n\
         [[queue]]\nname = \"billing\"\naddress = \"billing@desk.test\"\n\
         knowledge_categories = [\"Invoices\"]\n",
    );
    std::fs::write(&path, text).expect("write config");
    path
}

async fn article_count(server: &TestServer) -> usize {
    server
        .store()
        .kb_articles(&Default::default())
        .await
        .expect("articles")
        .len()
}

/// The subjects of the messages in a folder, as the agent sees them.
async fn subjects(client: &mut ImapClient, folder: &str) -> Vec<String> {
    let examined = client.cmd(&format!("EXAMINE {folder}")).await;
    assert!(examined.ok(), "{examined:?}");
    if examined.all_text().contains("* 0 EXISTS") {
        return Vec::new();
    }
    let fetch = client
        .cmd("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        .await;
    assert!(fetch.ok(), "{fetch:?}");
    let mut subjects: Vec<String> = literals(&fetch)
        .iter()
        .map(|raw| {
            String::from_utf8_lossy(raw)
                .trim()
                .trim_start_matches("Subject: ")
                .to_string()
        })
        .collect();
    subjects.sort();
    subjects
}

backend_test!(
    async fn agents_write_the_categories_of_their_queues_and_the_shared_ones(backend: Backend) {
        let server = scoped_server(&backend).await;
        add_agent_as(&server, "bob@desk.test", &["support"], AgentRole::Agent).await;
        add_agent_as(&server, "bill@desk.test", &["billing"], AgentRole::Agent).await;
        add_agent_as(&server, "lea@desk.test", &["billing"], AgentRole::Lead).await;

        // An agent of support writes a draft in support's category.
        let reply = mail_kb(
            &server,
            "bob@desk.test",
            &article_mail(
                "bob@desk.test",
                "Paper jam",
                "p1@desk.test",
                None,
                "#category Printers\r\n\r\nOpen tray 2 and pull the sheet.",
            ),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        assert!(reply.text().contains("(Printers, draft"), "{reply:?}");
        assert_eq!(article_count(&server).await, 1);
        let printers = server
            .store()
            .kb_articles(&Default::default())
            .await
            .expect("list")[0]
            .id;

        // An agent of billing may not: 550, and nothing is written.
        let reply = mail_kb(
            &server,
            "bill@desk.test",
            &article_mail(
                "bill@desk.test",
                "Toner smears",
                "b1@desk.test",
                None,
                "#category printers\r\n\r\nShake the toner.",
            ),
        )
        .await;
        assert_eq!(reply.code, 550, "{reply:?}");
        assert!(reply.text().starts_with("5.7.1"), "{reply:?}");
        assert!(reply.text().contains("category 'printers'"), "{reply:?}");
        assert!(reply.text().contains("nothing was written"), "{reply:?}");
        assert_eq!(article_count(&server).await, 1);

        // A category no queue uses is everyone's.
        let reply = mail_kb(
            &server,
            "bill@desk.test",
            &article_mail(
                "bill@desk.test",
                "Office hours",
                "b2@desk.test",
                None,
                "#category General\r\n\r\nWe answer from 8 to 5.",
            ),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        assert_eq!(article_count(&server).await, 2);
        let general = server
            .store()
            .kb_article_of_message(&["b2@desk.test".to_string()])
            .await
            .expect("lookup")
            .expect("bill's article");

        // Billing's agent cannot revise support's article by a reply, nor
        // move his own article into support's category.
        let reply = mail_kb(
            &server,
            "bill@desk.test",
            &article_mail(
                "bill@desk.test",
                "Re: [Draft] Paper jam",
                "b3@desk.test",
                Some("p1@desk.test"),
                "Call the vendor.",
            ),
        )
        .await;
        assert_eq!(reply.code, 550, "{reply:?}");
        assert!(reply.text().starts_with("5.7.1"), "{reply:?}");
        assert!(reply.text().contains("category 'Printers'"), "{reply:?}");
        let revisions = server
            .store()
            .kb_revisions(printers)
            .await
            .expect("revisions");
        assert_eq!(revisions.len(), 1, "no revision written");
        let reply = mail_kb(
            &server,
            "bill@desk.test",
            &article_mail(
                "bill@desk.test",
                "Re: [Draft] Office hours",
                "b4@desk.test",
                Some("b2@desk.test"),
                "#category Printers\r\n",
            ),
        )
        .await;
        assert_eq!(reply.code, 550, "{reply:?}");
        assert!(reply.text().contains("category 'Printers'"), "{reply:?}");

        // Support's agent may move it (both categories are his); then
        // billing's agent may not move it back out.
        let reply = mail_kb(
            &server,
            "bob@desk.test",
            &article_mail(
                "bob@desk.test",
                "Re: [Draft] Office hours",
                "p2@desk.test",
                Some("b2@desk.test"),
                "#category Printers\r\n",
            ),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let reply = mail_kb(
            &server,
            "bill@desk.test",
            &article_mail(
                "bill@desk.test",
                "Re: [Draft] Office hours",
                "b5@desk.test",
                Some("p2@desk.test"),
                "#category General\r\n",
            ),
        )
        .await;
        assert_eq!(reply.code, 550, "{reply:?}");
        let moved = server
            .store()
            .kb_article(general)
            .await
            .expect("read")
            .expect("article");
        assert_eq!(moved.content.category, "Printers");

        // A lead writes in any category.
        let reply = mail_kb(
            &server,
            "lea@desk.test",
            &article_mail(
                "lea@desk.test",
                "Printer drivers",
                "l1@desk.test",
                None,
                "#category Printers\r\n\r\nDrivers are on the share.",
            ),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let reply = mail_kb(
            &server,
            "bill@desk.test",
            &article_mail(
                "bill@desk.test",
                "Refunds",
                "b6@desk.test",
                None,
                "#category Invoices\r\n\r\nRefunds take a week.",
            ),
        )
        .await;
        assert_eq!(reply.code, 250, "billing's own category: {reply:?}");

        // Knowledge/Drafts shows each agent the drafts they may edit:
        // billing's agent neither support's drafts (listing, FETCH,
        // SEARCH), support's agent not billing's.
        let mut bill = ImapClient::login(server.imap(), "bill@desk.test", "secret").await;
        assert_eq!(
            subjects(&mut bill, "Knowledge/Drafts").await,
            ["[Draft] Refunds"]
        );
        let found = bill.cmd("SEARCH TEXT tray").await;
        assert!(found.ok(), "{found:?}");
        assert!(search_numbers(&found).is_empty(), "{found:?}");
        let mut bob = ImapClient::login(server.imap(), "bob@desk.test", "secret").await;
        assert_eq!(
            subjects(&mut bob, "Knowledge/Drafts").await,
            [
                "[Draft] Office hours",
                "[Draft] Paper jam",
                "[Draft] Printer drivers"
            ]
        );
        let found = bob.cmd("SEARCH TEXT tray").await;
        assert_eq!(search_numbers(&found).len(), 1, "{found:?}");
        let mut lea = ImapClient::login(server.imap(), "lea@desk.test", "secret").await;
        assert_eq!(subjects(&mut lea, "Knowledge/Drafts").await.len(), 4);

        // Published articles are every agent's to read: the lead
        // publishes support's draft and billing's agent reads it.
        let reply = mail_kb(
            &server,
            "lea@desk.test",
            &article_mail(
                "lea@desk.test",
                "Re: [Draft] Paper jam",
                "l2@desk.test",
                Some("p1@desk.test"),
                "#publish\r\n#public\r\n",
            ),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        assert_eq!(
            subjects(&mut bill, "Knowledge/Printers").await,
            ["Paper jam"]
        );
        assert_eq!(subjects(&mut bill, "Knowledge").await, ["Paper jam"]);
        assert_eq!(
            subjects(&mut bill, "Knowledge/Drafts").await,
            ["[Draft] Refunds"]
        );
        // The open session sees Drafts change with the articles.
        assert_eq!(
            subjects(&mut bob, "Knowledge/Drafts").await,
            ["[Draft] Office hours", "[Draft] Printer drivers"]
        );

        // Rights that change without any article changing (here: support's
        // categories become shared) show in the next session's Drafts.
        drop((bill, bob, lea));
        let mut server = server;
        server.config.queues[0].knowledge_categories.clear();
        server.restart().await;
        let mut bill = ImapClient::login(server.imap(), "bill@desk.test", "secret").await;
        assert_eq!(
            subjects(&mut bill, "Knowledge/Drafts").await,
            [
                "[Draft] Office hours",
                "[Draft] Printer drivers",
                "[Draft] Refunds"
            ]
        );
        server.stop().await;
    }
);

backend_test!(
    async fn kb_draft_goes_to_the_first_category_of_the_tickets_queue(backend: Backend) {
        let server = scoped_server(&backend).await;
        add_agent_as(&server, "bob@desk.test", &["support"], AgentRole::Agent).await;
        add_agent_as(&server, "bill@desk.test", &["billing"], AgentRole::Agent).await;
        let mut tickets = Vec::new();
        for (queue, id) in [("support", "k1@example.com"), ("billing", "k2@example.com")] {
            let address = format!("{queue}@desk.test");
            let mail = message(
                "Carol <carol@example.com>",
                &address,
                "Printer shows E42",
                id,
                "",
                "My printer shows error E42.",
            );
            tickets.push(ticket_of(
                &deliver(server.smtp(), "carol@example.com", &[&address], &mail).await,
            ));
        }

        // Support's ticket: a draft in support's first category, said so.
        let reply = reply_mail(
            "bob@desk.test",
            "carol@example.com",
            "Re: Printer shows E42",
            "k3@desk.test",
            "k1@example.com",
            "#kb draft\r\n\r\nRemove the toner and put it back.",
        );
        let r = submit(
            &server,
            "bob@desk.test",
            "bob@desk.test",
            &["carol@example.com"],
            &reply,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(r.text().contains("in category 'Printers'"), "{r:?}");
        let usage = server
            .store()
            .kb_ticket_usage(tickets[0])
            .await
            .expect("usage");
        let [(article, TicketUsage::Drafted)] = usage.as_slice() else {
            panic!("a draft linked to the ticket: {usage:?}");
        };
        let draft = server
            .store()
            .kb_article(*article)
            .await
            .expect("read")
            .expect("draft");
        assert_eq!(draft.content.category, "Printers");

        // Billing's ticket: billing's first category.
        let reply = reply_mail(
            "bill@desk.test",
            "carol@example.com",
            "Re: Printer shows E42",
            "k4@desk.test",
            "k2@example.com",
            "#kb draft\r\n\r\nWe credited the invoice.",
        );
        let r = submit(
            &server,
            "bill@desk.test",
            "bill@desk.test",
            &["carol@example.com"],
            &reply,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(r.text().contains("in category 'Invoices'"), "{r:?}");
        server.stop().await;
    }
);

backend_test!(
    async fn a_refused_kb_draft_leaves_a_note_in_the_ticket(backend: Backend) {
        // Billing uses no category of its own, so its tickets' drafts go to
        // the category named like the queue: "billing", which support
        // claims (as "Billing").
        let server = TestServer::start_with(&backend, |config| {
            config.queues[0].knowledge_categories = vec!["Printers".into(), "Billing".into()];
        })
        .await;
        add_agent_as(&server, "bill@desk.test", &["billing"], AgentRole::Agent).await;
        let mail = message(
            "Carol <carol@example.com>",
            "billing@desk.test",
            "Invoice twice",
            "r1@example.com",
            "",
            "You charged me twice.",
        );
        let ticket = ticket_of(
            &deliver(
                server.smtp(),
                "carol@example.com",
                &["billing@desk.test"],
                &mail,
            )
            .await,
        );
        let reply = reply_mail(
            "bill@desk.test",
            "carol@example.com",
            "Re: Invoice twice",
            "r2@desk.test",
            "r1@example.com",
            "#kb draft\r\n\r\nWe refunded the second charge.",
        );
        let r = submit(
            &server,
            "bill@desk.test",
            "bill@desk.test",
            &["carol@example.com"],
            &reply,
        )
        .await;
        assert_eq!(r.code, 250, "the reply itself goes: {r:?}");
        assert_eq!(article_count(&server).await, 0, "no draft");
        assert!(
            server
                .store()
                .kb_ticket_usage(ticket)
                .await
                .expect("usage")
                .is_empty()
        );
        let events = server.store().ticket_events(ticket).await.expect("events");
        let note = events
            .iter()
            .find(|e| e.detail.contains("#kb draft"))
            .unwrap_or_else(|| panic!("a note about #kb draft: {events:?}"));
        assert!(note.detail.contains("category 'billing'"), "{note:?}");
        server.stop().await;
    }
);

backend_test!(
    async fn the_command_line_as_an_agent_keeps_to_their_categories(backend: Backend) {
        let server = scoped_server(&backend).await;
        let config = scoped_config_file(&server);
        add_agent_as(&server, "bob@desk.test", &["support"], AgentRole::Agent).await;
        add_agent_as(&server, "bill@desk.test", &["billing"], AgentRole::Agent).await;
        let add = |agent: &str, title: &str, category: &str| {
            postdesk(
                &config,
                &[
                    "--as",
                    agent,
                    "kb",
                    "add",
                    "--title",
                    title,
                    "--category",
                    category,
                    "--json",
                ],
                Some("Some text about printers.\n"),
            )
        };
        let written: serde_json::Value =
            serde_json::from_str(&ok(add("bob@desk.test", "Paper jam", "Printers"))).expect("json");
        let printers = written["article"].as_i64().expect("id");
        let why = refused(add("bill@desk.test", "Toner", "Printers"));
        assert!(why.contains("category 'Printers'"), "{why}");
        ok(add("bill@desk.test", "Printer paper order", "Invoices"));
        let why = refused(postdesk(
            &config,
            &[
                "--as",
                "bill@desk.test",
                "kb",
                "edit",
                &printers.to_string(),
                "--title",
                "Jam",
            ],
            None,
        ));
        assert!(why.contains("category 'Printers'"), "{why}");
        // Without --as: the administrator, every category.
        ok(postdesk(
            &config,
            &["kb", "add", "--title", "Toner", "--category", "Printers"],
            Some("Some text about printers.\n"),
        ));
        assert_eq!(article_count(&server).await, 3);

        // `search kind:article` as an agent finds the drafts they may edit.
        let titles = |agent: &str| -> Vec<String> {
            let found = json(
                &config,
                &["--as", agent, "search", "kind:article", "printer", "--json"],
                None,
            );
            let mut titles: Vec<String> = found
                .as_array()
                .expect("a list")
                .iter()
                .map(|a| a["title"].as_str().unwrap_or_default().to_string())
                .collect();
            titles.sort();
            titles
        };
        assert_eq!(titles("bill@desk.test"), ["Printer paper order"]);
        assert_eq!(titles("bob@desk.test"), ["Paper jam", "Toner"]);
        server.stop().await;
    }
);

#[test]
fn knowledge_categories_are_checked_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("postdesk.toml");
    let run = |text: &str| {
        std::fs::write(
            &path,
            format!(
                "hostname = \"desk.test\"\ndata_dir = \"{}\"\n{text}",
                dir.path().display()
            ),
        )
        .expect("write");
        postdesk(&path, &["migrate"], None)
    };
    let queue = "[[queue]]\nname = \"support\"\naddress = \"support@desk.test\"\n";
    // The key is known, and a good list is taken.
    ok(run(&format!(
        "{queue}knowledge_categories = [\"Printers\", \"Network\"]\n"
    )));
    for (line, problem) in [
        (
            "knowledge_category = [\"Printers\"]",
            "6:1: unknown field `knowledge_category`",
        ),
        (
            "knowledge_categories = [\"Printers/Laser\"]",
            "6:24: knowledge_categories: 'Printers/Laser' is not a category name",
        ),
        (
            "knowledge_categories = [\"Printers\", \" printers \"]",
            "6:24: knowledge_categories: 'printers' is listed twice",
        ),
    ] {
        let why = refused(run(&format!("{queue}{line}\n")));
        assert!(why.contains(&format!("postdesk.toml:{problem}")), "{why}");
    }
}
