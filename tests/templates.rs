//! Shared templates (issue 20, item 4) as agents meet them: the Templates
//! folder over IMAP (APPEND adds, every agent of the queue sees it, only
//! the author, a lead or an admin deletes), `#template NAME` and the
//! placeholders in a reply over submission (what the customer gets at the
//! relay), the mistakes that hold a reply, and `postdesk template …`.

use crate::cli::{config_file, ok, postdesk};

use crate::common::imap::{ImapClient, add_agent, add_agent_as};
use crate::common::sink::Sink;
use crate::common::{Backend, TestServer, backend_test, eventually, relay};
use crate::submission::{customer_writes, submit};
use postdesk::domain::permission::AgentRole;
use std::time::Duration;

/// A reply as a mail client writes it.
fn reply(from: &str, to: &str, subject: &str, id: &str, in_reply_to: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         In-Reply-To: <{in_reply_to}>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The ticket's history, one line per event.
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

const TEMPLATE_BODY: &str = "Hello {{ customer.name }},\r\n\r\nyour refund for ticket \
#{{ ticket.number }} is on its way.\r\n\r\n{{ agent.name }} for {{ queue.name }}\r\n";

backend_test!(
    async fn a_template_appended_to_templates_is_the_queues(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        add_agent(&server, "carl@desk.test", &["billing"], false).await;
        add_agent_as(&server, "lea@desk.test", &["support"], AgentRole::Lead).await;

        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let list = alice.cmd("LIST \"\" \"*\"").await;
        assert!(list.all_text().contains("\"Templates\""), "{list:?}");
        let template = format!(
            "From: alice <alice@desk.test>\r\nSubject: Refund\r\n\
             Message-ID: <tpl1@desk.test>\r\n\r\n{TEMPLATE_BODY}"
        );
        let appended = alice
            .append("Templates", "\\Seen", template.as_bytes())
            .await;
        assert!(appended.ok(), "{appended:?}");
        assert!(appended.tagged.contains("APPENDUID"), "{appended:?}");
        let stored = server.store().templates(None).await.expect("templates");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].name, "refund");
        assert_eq!(stored[0].queue, "support");
        assert_eq!(stored[0].author, "alice@desk.test");
        assert!(stored[0].body_text.contains("{{ customer.name }}"));

        // The same name again from a colleague: refused (it is alice's).
        let mut bob = ImapClient::login(server.imap(), "bob@desk.test", "secret").await;
        let again = bob.append("Templates", "", template.as_bytes()).await;
        assert!(!again.ok() && again.tagged.contains("NOPERM"), "{again:?}");

        // Every agent of the queue sees it; another queue's agent does not.
        let selected = bob.cmd("SELECT Templates").await;
        assert!(selected.ok(), "{selected:?}");
        assert!(selected.all_text().contains("* 1 EXISTS"), "{selected:?}");
        let fetched = bob
            .cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await;
        let text: String = fetched
            .untagged
            .iter()
            .flat_map(|l| l.literals.iter())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert!(text.contains("Subject: Refund"), "{fetched:?}");
        let mut carl = ImapClient::login(server.imap(), "carl@desk.test", "secret").await;
        let theirs = carl.cmd("SELECT Templates").await;
        assert!(theirs.all_text().contains("* 0 EXISTS"), "{theirs:?}");

        // A colleague may not delete it: nothing goes.
        assert!(bob.cmd("STORE 1 +FLAGS (\\Deleted)").await.ok());
        let refused = bob.cmd("EXPUNGE").await;
        assert!(
            !refused.ok() && refused.tagged.contains("NOPERM"),
            "{refused:?}"
        );
        assert_eq!(server.store().templates(None).await.expect("t").len(), 1);

        // A second template, then the lead of the queue deletes alice's.
        let second =
            "From: alice@desk.test\r\nSubject: Shipping delay\r\n\r\nSorry for the wait.\r\n";
        assert!(alice.append("Templates", "", second.as_bytes()).await.ok());
        let mut lea = ImapClient::login(server.imap(), "lea@desk.test", "secret").await;
        let lead_view = lea.cmd("SELECT Templates").await;
        assert!(lead_view.all_text().contains("* 2 EXISTS"), "{lead_view:?}");
        assert!(lea.cmd("UID SEARCH ALL").await.ok());
        assert!(lea.cmd("STORE 1 +FLAGS (\\Deleted)").await.ok());
        let expunged = lea.cmd("EXPUNGE").await;
        assert!(expunged.ok(), "{expunged:?}");
        let left = server.store().templates(None).await.expect("templates");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].name, "shipping delay");

        // The author removes her own; the folder of a colleague follows
        // when it is opened again.
        let mine = alice.cmd("SELECT Templates").await;
        assert!(mine.all_text().contains("* 1 EXISTS"), "{mine:?}");
        assert!(alice.cmd("STORE 1 +FLAGS (\\Deleted)").await.ok());
        assert!(alice.cmd("EXPUNGE").await.ok());
        assert!(server.store().templates(None).await.expect("t").is_empty());
        let after = bob.cmd("SELECT Templates").await;
        assert!(after.all_text().contains("* 0 EXISTS"), "{after:?}");
        server.stop().await;
    }
);

backend_test!(
    async fn a_reply_inserts_the_template_and_fills_its_placeholders(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server =
            TestServer::start_with(&backend, |c| c.outbound.relay = relay(sink.addr)).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let config = config_file(&server);
        ok(postdesk(
            &config,
            &["template", "add", "--name", "Refund", "--queue", "support"],
            Some(&TEMPLATE_BODY.replace("\r\n", "\n")),
        ));
        let ticket = customer_writes(&server, "t1@example.com", "Refund please").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;

        let mail = reply(
            "alice <alice@desk.test>",
            "Carol Customer <carol@example.com>",
            &format!("Re: [#{ticket}] Refund please"),
            "a1@desk.test",
            "t1@example.com",
            "#template refund\r\n\r\nAnything else, {{ customer.name }}?\r\n\r\n> The VPN drops {{ whatever }}",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &mail,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(r.text().contains(&format!("Reply to #{ticket}")), "{r:?}");
        eventually("the reply at the relay", || async {
            sink.accepted().len() == 2
        })
        .await;
        let data = String::from_utf8_lossy(&sink.accepted()[1].data).into_owned();
        assert!(data.contains("Hello Carol Customer,"), "{data}");
        assert!(
            data.contains(&format!("your refund for ticket #{ticket} is on its way.")),
            "{data}"
        );
        assert!(data.contains("alice for support"), "{data}");
        assert!(data.contains("Anything else, Carol Customer?"), "{data}");
        // Quoted mail is left as it was; the command is gone.
        assert!(data.contains("> The VPN drops {{ whatever }}"), "{data}");
        assert!(!data.contains("#template"), "{data}");
        // The template comes first, where the command was.
        let hello = data.find("Hello Carol").expect("template");
        assert!(hello < data.find("Anything else").expect("text"), "{data}");
        server.stop().await;
    }
);

backend_test!(
    async fn an_unknown_template_or_placeholder_holds_the_reply(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server =
            TestServer::start_with(&backend, |c| c.outbound.relay = relay(sink.addr)).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "t2@example.com", "Where is my money").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;

        for (n, body, problem) in [
            (
                1,
                "#template refnud\r\n\r\nBest, Alice",
                "no template 'refnud'",
            ),
            (
                2,
                "Hello {{ customer.nmae }}, it is done.\r\n",
                "{{ customer.nmae }}: unknown placeholder",
            ),
        ] {
            let mail = reply(
                "alice <alice@desk.test>",
                "carol@example.com",
                &format!("Re: [#{ticket}] Where is my money"),
                &format!("bad{n}@desk.test"),
                "t2@example.com",
                body,
            );
            let r = submit(
                &server,
                "alice@desk.test",
                "alice@desk.test",
                &["carol@example.com"],
                &mail,
            )
            .await;
            assert_eq!(r.code, 250, "{r:?}");
            assert!(r.text().contains("held"), "{r:?}");
            let found = events(&server, ticket).await;
            assert!(
                found.iter().any(|n| n.contains(problem)),
                "no note naming {problem}: {found:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(sink.accepted().len(), 1, "nothing but the acknowledgement");
        let outbound = server.outbound(None).await;
        assert_eq!(outbound.len(), 1, "{outbound:?}");
        server.stop().await;
    }
);

backend_test!(
    async fn cli_adds_lists_shows_and_removes_templates(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "bob@desk.test", &["support"], false).await;
        add_agent(&server, "dan@desk.test", &["support"], false).await;
        let config = config_file(&server);
        let added = ok(postdesk(
            &config,
            &[
                "--as",
                "bob@desk.test",
                "template",
                "add",
                "--name",
                "Password Reset",
                "--queue",
                "support",
                "--json",
            ],
            Some("Click the link, {{ customer.name }}.\n"),
        ));
        let added: serde_json::Value = serde_json::from_str(&added).expect("json");
        assert_eq!(added["name"], "password reset");
        assert_eq!(added["author"], "bob@desk.test");
        // The same name twice is refused; another queue's agent may not add.
        let twice = postdesk(
            &config,
            &[
                "template",
                "add",
                "--name",
                "password reset",
                "--queue",
                "support",
            ],
            Some("again\n"),
        );
        assert!(!twice.status.success());
        let why = String::from_utf8_lossy(&twice.stderr);
        assert!(why.contains("exists"), "{why}");

        let listed = ok(postdesk(&config, &["template", "list", "--json"], None));
        let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        let table = ok(postdesk(&config, &["template", "list"], None));
        assert!(
            table.contains("password reset") && table.contains("bob@desk.test"),
            "{table}"
        );
        let shown = ok(postdesk(
            &config,
            &["template", "show", "Password reset"],
            None,
        ));
        assert!(
            shown.contains("Click the link, {{ customer.name }}."),
            "{shown}"
        );

        // Only its author (a lead, an admin) removes it.
        let refused = postdesk(
            &config,
            &[
                "--as",
                "dan@desk.test",
                "template",
                "remove",
                "password reset",
            ],
            None,
        );
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("only its author"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        ok(postdesk(
            &config,
            &[
                "--as",
                "bob@desk.test",
                "template",
                "remove",
                "password reset",
            ],
            None,
        ));
        let empty = ok(postdesk(&config, &["template", "list"], None));
        assert!(empty.contains("no templates"), "{empty}");
        let missing = postdesk(&config, &["template", "show", "password reset"], None);
        assert!(!missing.status.success());
        server.stop().await;
    }
);
