//! What an agent's mail means, end to end over real sockets (issue 18):
//! a forward to a third party is a consult, not the answer to the
//! customer; a customer's mail forwarded to the queue opens her ticket;
//! notes stand in the conversation; and a command line never swallows
//! the agent's words.

use crate::common;

use crate::common::imap::{ImapClient, add_agent};
use crate::common::sink::Sink;
use crate::common::{
    Backend, TestServer, backend_test, deliver, eventually, message, relay, ticket_of,
};
use crate::submission::{customer_writes, submit};
use postdesk::domain::ticket::Status;

/// A mail as an agent's client sends it, with extra header lines.
fn agent_mail(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n{extra}\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The stored bytes of each of a ticket's messages of one kind.
async fn stored(server: &TestServer, ticket: i64, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages")
    {
        if m.kind == kind {
            let raw = server.store().raw_message(m.id).await.expect("raw");
            out.push(String::from_utf8_lossy(&raw).into_owned());
        }
    }
    out
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

/// A response's text with its literals (the fetched bytes).
fn with_literals(response: &common::imap::Response) -> String {
    let mut text = response.all_text();
    for line in &response.untagged {
        for literal in &line.literals {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(literal));
        }
    }
    text
}

/// The unfolded value of a header field in stored bytes.
fn field(raw: &str, name: &str) -> Option<String> {
    let header = &raw[..raw.find("\r\n\r\n").unwrap_or(raw.len())];
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = header.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if line.to_ascii_lowercase().starts_with(&prefix) {
            let mut value = line[prefix.len()..].trim().to_string();
            while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(lines.next().unwrap_or_default().trim());
            }
            return Some(value);
        }
    }
    None
}

backend_test!(
    async fn a_forward_to_a_third_party_answers_nobody(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server =
            TestServer::start_with(&backend, |c| c.outbound.relay = relay(sink.addr)).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "f1@example.com", "VPN drops").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;

        // Ctrl+L in Thunderbird: a forward with the customer's message
        // named in References, to the accountant only.
        let forward = agent_mail(
            "alice <alice@desk.test>",
            "accountant@firm.test",
            "Fwd: VPN drops",
            "fw1@desk.test",
            "References: <f1@example.com>\r\n",
            "Could you check the invoice for this customer?\r\n\r\n\
             -------- Forwarded Message --------\r\nSubject: VPN drops\r\n\
             From: Carol Customer <carol@example.com>\r\n\r\nThe VPN drops every 30 minutes.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["accountant@firm.test"],
            &forward,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(
            r.text().contains(&format!(
                "Forward from #{ticket} queued for 1 recipient (not a reply to the customer)"
            )),
            "{r:?}"
        );
        eventually("the forward at the relay", || async {
            sink.accepted().len() == 2
        })
        .await;
        let delivered = sink.accepted().remove(1);
        assert_eq!(delivered.mail_from, "support@desk.test");
        assert_eq!(delivered.rcpt_to, vec!["accountant@firm.test".to_string()]);
        let data = String::from_utf8_lossy(&delivered.data).into_owned();
        assert!(
            data.contains("From: \"alice via Support\" <support@desk.test>\r\n"),
            "{data}"
        );
        assert!(
            data.contains(&format!("[#{ticket}] Fwd: VPN drops")),
            "{data}"
        );

        // Nothing counts as answered: the clocks run, the ticket stays new
        // and nobody's, and the history says to whom it went.
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(t.status, Status::New);
        assert_eq!(t.owner, None);
        assert_eq!(t.first_response_at, None);
        assert!(t.customer_waiting_since.is_some());
        let kinds: Vec<String> = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages")
            .iter()
            .map(|m| m.kind.to_string())
            .collect();
        assert_eq!(kinds, ["customer", "auto_reply", "forward"]);
        let history = events(&server, ticket).await;
        assert!(
            history.iter().any(|e| e
                == "forwarded forwarded by alice@desk.test to accountant@firm.test (not an answer to the customer)"),
            "{history:?}"
        );
        // The consulted party is not made a participant: mailing them
        // again is a forward again.
        let participants = server
            .store()
            .ticket_participants(ticket)
            .await
            .expect("participants");
        assert!(!participants.contains(&"accountant@firm.test".to_string()));

        // In the view: the forward is part of the conversation, and the
        // customer's message carries no \Answered.
        let mut imap = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(imap.cmd("SELECT Unassigned").await.ok());
        let flags = imap
            .cmd("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await;
        let text = with_literals(&flags);
        assert_eq!(flags.fetches().len(), 2, "{text}");
        assert!(!text.contains("\\Answered"), "{text}");
        assert!(text.contains("Fwd: VPN drops"), "{text}");

        // The customer and a third party: that is a reply (to both).
        let mixed = agent_mail(
            "alice <alice@desk.test>",
            "carol@example.com, accountant@firm.test",
            "Re: VPN drops",
            "re1@desk.test",
            "In-Reply-To: <f1@example.com>\r\n",
            "Our accountant looks at it with you.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com", "accountant@firm.test"],
            &mixed,
        )
        .await;
        assert!(
            r.text()
                .contains(&format!("Reply to #{ticket} queued for 2 recipients")),
            "{r:?}"
        );
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert!(t.first_response_at.is_some() && t.customer_waiting_since.is_none());
        assert_eq!(t.status, Status::Open);
        // Answered and now hers: the ticket moved to her INBOX.
        assert!(imap.cmd("SELECT INBOX").await.ok());
        let flags = imap.cmd("FETCH 1 FLAGS").await;
        assert!(
            flags.all_text().contains("\\Answered"),
            "{}",
            flags.all_text()
        );
        server.stop().await;
    }
);

/// Thunderbird's inline forward of Carol's mail, to the queue's address.
fn inline_forward(id: &str) -> Vec<u8> {
    agent_mail(
        "alice <alice@desk.test>",
        "support@desk.test",
        "Fwd: Printer on fire",
        id,
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\n",
        "#priority high\r\n\r\nShe wrote to me directly, please take it.\r\n\r\n\
         -------- Forwarded Message --------\r\nSubject: \tPrinter on fire\r\n\
         Date: \tMon, 23 Nov 2026 10:00:00 +0100\r\n\
         From: \tCarol Customer <carol@example.com>\r\nTo: \talice@desk.test\r\n\r\n\
         It is really burning.",
    )
}

/// "Forward as attachment": Dave's mail as a message/rfc822 part.
fn attached_forward(id: &str) -> Vec<u8> {
    agent_mail(
        "alice <alice@desk.test>",
        "support@desk.test",
        "Fwd: Invoice wrong",
        id,
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fw\"\r\n",
        "--fw\r\nContent-Type: text/plain\r\n\r\nFor billing.\r\n\r\n--fw\r\n\
         Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n\
         From: Dave <dave@example.org>\r\nTo: alice@desk.test\r\nSubject: Invoice wrong\r\n\
         Message-ID: <d1@example.org>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\n\
         The invoice says 12 seats, we have 10.\r\n\r\n--fw--",
    )
}

/// The ticket number in "Ticket #n opened for the forwarded customer mail".
fn opened(reply: &common::Reply) -> i64 {
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(
        reply
            .text()
            .contains("opened for the forwarded customer mail"),
        "{reply:?}"
    );
    reply
        .text()
        .split('#')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("number")
}

backend_test!(
    async fn a_customer_mail_forwarded_to_the_queue_opens_her_ticket(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let queued_before = server.outbound(None).await.len();

        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["support@desk.test"],
            &inline_forward("fwc1@desk.test"),
        )
        .await;
        let carol = opened(&r);
        let t = server.store().ticket(carol).await.expect("ticket");
        assert_eq!(t.customer_address, "carol@example.com");
        assert_eq!(t.customer_name.as_deref(), Some("Carol Customer"));
        assert_eq!(t.subject, "Printer on fire");
        assert_eq!((t.status, t.owner.clone()), (Status::New, None));
        assert!(t.customer_waiting_since.is_some());
        assert_eq!(
            t.priority,
            postdesk::domain::ticket::Priority::High,
            "its commands apply to the new ticket"
        );
        let history = events(&server, carol).await;
        assert!(
            history.iter().any(|e| e
                == "created ticket opened by alice@desk.test forwarding mail from carol@example.com"),
            "{history:?}"
        );
        assert!(
            history.iter().any(|e| e.starts_with(
                "auto-reply-suppressed no acknowledgement: the customer wrote to an agent"
            )),
            "{history:?}"
        );
        assert_eq!(
            server.outbound(None).await.len(),
            queued_before,
            "no acknowledgement, nothing sent"
        );
        // The forward is the ticket's first message; Reply answers Carol.
        let notes = stored(&server, carol, "note").await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(
            field(&notes[0], "Reply-To").as_deref(),
            Some("\"Carol Customer\" <carol@example.com>")
        );
        assert!(notes[0].contains("It is really burning."));
        assert!(!notes[0].contains("#priority"));
        let reply = agent_mail(
            "alice <alice@desk.test>",
            "Carol Customer <carol@example.com>",
            &format!("Re: [#{carol}] [note] Fwd: Printer on fire"),
            "fwc2@desk.test",
            "In-Reply-To: <fwc1@desk.test>\r\n",
            "We are on it.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &reply,
        )
        .await;
        assert!(
            r.text()
                .contains(&format!("Reply to #{carol} queued for 1 recipient")),
            "{r:?}"
        );
        let replies = stored(&server, carol, "reply").await;
        assert_eq!(
            field(&replies[0], "Subject").as_deref(),
            Some(format!("Re: [#{carol}] Fwd: Printer on fire")).as_deref(),
            "the customer is not told it answers a note"
        );

        // Forwarded as an attachment: Dave's ticket, and his own reply to
        // his first mail finds it.
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["support@desk.test"],
            &attached_forward("fwd1@desk.test"),
        )
        .await;
        let dave = opened(&r);
        assert_ne!(dave, carol);
        let t = server.store().ticket(dave).await.expect("ticket");
        assert_eq!(
            (
                t.customer_address.as_str(),
                t.customer_name.as_deref(),
                t.subject.as_str()
            ),
            ("dave@example.org", Some("Dave"), "Invoice wrong")
        );
        let again = message(
            "dave@example.org",
            "alice@desk.test",
            "Re: Invoice wrong",
            "d2@example.org",
            "In-Reply-To: <d1@example.org>\r\n",
            "Any news?",
        );
        let r = deliver(
            server.smtp(),
            "dave@example.org",
            &["support@desk.test"],
            &again,
        )
        .await;
        assert_eq!(ticket_of(&r), dave);
        // The same mail forwarded again by a colleague is no new ticket:
        // it is a note in Dave's.
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["support@desk.test"],
            &attached_forward("fwd2@desk.test"),
        )
        .await;
        assert!(
            r.text()
                .contains(&format!("Internal note added to #{dave}")),
            "{r:?}"
        );
        // A forward of nobody's mail names no ticket: refused as before.
        let own = agent_mail(
            "alice <alice@desk.test>",
            "support@desk.test",
            "Fwd: mine",
            "fwo@desk.test",
            "",
            "-------- Forwarded Message --------\r\nFrom: alice@desk.test\r\n\r\nx",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["support@desk.test"],
            &own,
        )
        .await;
        assert_eq!(r.code, 550, "{r:?}");
        server.stop().await;
    }
);

backend_test!(
    async fn notes_stand_in_the_conversation_from_the_first_fetch(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "n1@example.com", "VPN drops").await;
        let plus = format!("support+{ticket}@desk.test");

        // A note written fresh to the plus-address (no threading headers
        // of its own) is threaded under the customer's mail.
        let note = agent_mail(
            "alice@desk.test",
            &plus,
            "VPN",
            "note1@desk.test",
            "",
            "Checked the logs.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&plus],
            &note,
        )
        .await;
        assert!(r.text().contains("Internal note added"), "{r:?}");
        let notes = stored(&server, ticket, "note").await;
        assert_eq!(
            field(&notes[0], "In-Reply-To").as_deref(),
            Some("<n1@example.com>")
        );
        assert_eq!(
            field(&notes[0], "References").as_deref(),
            Some("<n1@example.com>")
        );

        // The customer writes again; a system note (a command mistake)
        // goes under the latest message then, with the first as root.
        let again = message(
            "carol@example.com",
            "support@desk.test",
            "Re: VPN drops",
            "n2@example.com",
            "In-Reply-To: <n1@example.com>\r\n",
            "Still dropping.",
        );
        assert_eq!(
            ticket_of(
                &deliver(
                    server.smtp(),
                    "carol@example.com",
                    &["support@desk.test"],
                    &again
                )
                .await
            ),
            ticket
        );
        let mistake = agent_mail(
            "alice@desk.test",
            &plus,
            "x",
            "cmd1@desk.test",
            "",
            "#clsoe",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&plus],
            &mistake,
        )
        .await;
        assert!(r.text().contains("command error"), "{r:?}");
        let notes = stored(&server, ticket, "note").await;
        let system = notes
            .iter()
            .find(|n| n.contains("Mail commands not applied"))
            .expect("the system note");
        assert_eq!(
            field(system, "In-Reply-To").as_deref(),
            Some("<n2@example.com>")
        );
        assert_eq!(
            field(system, "References").as_deref(),
            Some("<n1@example.com> <n2@example.com>")
        );

        // An agent's note that names a message keeps its own threading.
        let answer = agent_mail(
            "alice@desk.test",
            &plus,
            "Re: VPN drops",
            "note2@desk.test",
            "In-Reply-To: <n1@example.com>\r\n",
            "About the first mail.",
        );
        submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&plus],
            &answer,
        )
        .await;
        let notes = stored(&server, ticket, "note").await;
        let own = notes
            .iter()
            .find(|n| n.contains("About the first mail"))
            .expect("note");
        assert_eq!(
            field(own, "In-Reply-To").as_deref(),
            Some("<n1@example.com>")
        );
        assert_eq!(field(own, "References"), None);

        // The client sees the threading headers at the first fetch, and
        // the same bytes after more mail arrived.
        let mut imap = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(imap.cmd("SELECT Unassigned").await.ok());
        let first = imap
            .cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO REFERENCES)])")
            .await;
        let third = message(
            "carol@example.com",
            "support@desk.test",
            "Re: VPN drops",
            "n3@example.com",
            "In-Reply-To: <n2@example.com>\r\n",
            "And again.",
        );
        deliver(
            server.smtp(),
            "carol@example.com",
            &["support@desk.test"],
            &third,
        )
        .await;
        let later = imap
            .cmd("FETCH 1:5 (BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO REFERENCES)])")
            .await;
        let literals = |r: &common::imap::Response| -> Vec<Vec<u8>> {
            r.fetches()
                .iter()
                .flat_map(|l| l.literals.clone())
                .collect()
        };
        assert_eq!(literals(&first).len(), 5, "{}", first.all_text());
        assert_eq!(literals(&first), literals(&later));
        assert!(
            with_literals(&first).contains("In-Reply-To: <n1@example.com>"),
            "{}",
            with_literals(&first)
        );
        server.stop().await;
    }
);

backend_test!(
    async fn commands_never_swallow_the_agents_words(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        let server =
            TestServer::start_with(&backend, |c| c.outbound.relay = relay(sink.addr)).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "w1@example.com", "Server down").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;

        // The reported case: the first line runs a command into the text.
        let reply = agent_mail(
            "alice <alice@desk.test>",
            "Heidi <carol@example.com>",
            "Re: Server down",
            "w2@desk.test",
            "In-Reply-To: <w1@example.com>\r\n",
            "#tag vipHi Heidi, we are looking into your server right now.\r\n\r\nAlice",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &reply,
        )
        .await;
        assert!(
            r.text()
                .contains(&format!("Reply to #{ticket} queued for 1 recipient")),
            "{r:?}"
        );
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert!(t.tags.is_empty(), "no tags from prose: {:?}", t.tags);
        eventually("the reply at the relay", || async {
            sink.accepted().len() == 2
        })
        .await;
        let data = String::from_utf8_lossy(&sink.accepted()[1].data).into_owned();
        assert!(
            data.contains("#tag vipHi Heidi, we are looking into your server right now."),
            "{data}"
        );

        // Commands, then the answer written below the quoted mail: the
        // commands apply, nothing goes to the customer, the words are
        // kept as a note and the agent is told in the ticket.
        let below = agent_mail(
            "alice <alice@desk.test>",
            "carol@example.com",
            "Re: Server down",
            "w3@desk.test",
            "In-Reply-To: <w1@example.com>\r\n",
            "#tag vip\r\n#pending\r\n\r\nOn Mon, Heidi wrote:\r\n> It is down.\r\n\r\n\
             Restart the router, then it comes back.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &below,
        )
        .await;
        assert!(
            r.text().contains(&format!(
                "Nothing sent to the customer of #{ticket}: your text below the quoted mail is kept as an internal note"
            )),
            "{r:?}"
        );
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(t.tags, vec!["vip".to_string()]);
        assert_eq!(t.status, Status::Pending);
        let notes = stored(&server, ticket, "note").await;
        assert!(
            notes
                .iter()
                .any(|n| n.contains("Restart the router") && !n.contains("#pending")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("Your text was not sent")),
            "{notes:?}"
        );
        // Nothing more reached the relay.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sink.accepted().len(), 2);
        assert!(
            server
                .outbound(None)
                .await
                .iter()
                .all(|o| o.rcpt_to == "carol@example.com"),
        );
        assert_eq!(server.outbound(None).await.len(), 2);

        // Thunderbird's default, the answer under the quote and no
        // commands: not sent unasked, not dropped either.
        let bottom = agent_mail(
            "alice <alice@desk.test>",
            "carol@example.com",
            "Re: Server down",
            "w5@desk.test",
            "In-Reply-To: <w1@example.com>\r\n",
            "On Mon, Heidi wrote:\r\n> It is down.\r\n\r\nIt is back since 10:00.\r\n-- \r\nAlice",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &bottom,
        )
        .await;
        assert!(r.text().contains("kept as an internal note"), "{r:?}");
        let notes = stored(&server, ticket, "note").await;
        assert!(
            notes.iter().any(|n| n.contains("It is back since 10:00.")),
            "{notes:?}"
        );
        assert_eq!(server.outbound(None).await.len(), 2, "nothing queued");

        // The same to the ticket's plus-address only is simply a note.
        let plus = format!("support+{ticket}@desk.test");
        let note = agent_mail(
            "alice <alice@desk.test>",
            &plus,
            "Re: Server down",
            "w6@desk.test",
            "In-Reply-To: <w1@example.com>\r\n",
            "On Mon, Heidi wrote:\r\n> It is down.\r\n\r\nChecked: power supply.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&plus],
            &note,
        )
        .await;
        assert!(
            r.text()
                .contains(&format!("Internal note added to #{ticket}")),
            "{r:?}"
        );

        // Commands above the quote and nothing else: applied quietly, as before.
        let quiet = agent_mail(
            "alice <alice@desk.test>",
            "carol@example.com",
            "Re: Server down",
            "w4@desk.test",
            "In-Reply-To: <w1@example.com>\r\n",
            "#close\r\n\r\nOn Mon, Heidi wrote:\r\n> It is down.",
        );
        let notes_before = stored(&server, ticket, "note").await.len();
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &quiet,
        )
        .await;
        assert!(r.text().contains("read; nothing sent"), "{r:?}");
        assert!(!r.text().contains("kept"), "{r:?}");
        assert_eq!(stored(&server, ticket, "note").await.len(), notes_before);
        assert_eq!(
            server.store().ticket(ticket).await.expect("ticket").status,
            Status::Closed
        );
        server.stop().await;
    }
);
