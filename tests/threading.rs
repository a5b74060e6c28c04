//! Threading over real SMTP, on every backend: every rule of DESIGN.md §3.

use crate::common;

use crate::common::{Backend, TestServer, backend_test, deliver, message, ticket_of};
use chrono::{Duration, Utc};
use postdesk::domain::ticket::Status;

async fn status_of(server: &TestServer, ticket: i64) -> Status {
    server.store().ticket(ticket).await.expect("ticket").status
}

async fn send(
    server: &TestServer,
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    headers: &str,
) -> i64 {
    let body = message(from, to, subject, id, headers, "Hello");
    ticket_of(&deliver(server.smtp(), from, &[to], &body).await)
}

backend_test!(
    async fn references_in_reply_to_and_plus_address_join_the_ticket(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let first = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "VPN drops",
            "t1@example.com",
            "",
        )
        .await;
        // In-Reply-To only.
        let r1 = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Re: VPN drops",
            "t2@example.com",
            "In-Reply-To: <t1@example.com>\r\n",
        )
        .await;
        // References only, naming an older message of the thread.
        let r2 = send(
            &server,
            "bob@example.com",
            "support@desk.test",
            "other words",
            "t3@example.com",
            "References: <unknown@elsewhere> <t1@example.com>\r\n",
        )
        .await;
        // No references at all, but the ticket's plus-address.
        let plus = format!("support+{first}@desk.test");
        let r3 = send(
            &server,
            "alice@example.com",
            &plus,
            "no headers",
            "t4@example.com",
            "",
        )
        .await;
        // A reply to a reply found only through the message it answers.
        let r4 = send(
            &server,
            "carol@example.com",
            "support@desk.test",
            "Re: Re: VPN drops",
            "t5@example.com",
            "In-Reply-To: <t4@example.com>\r\n",
        )
        .await;
        assert_eq!([r1, r2, r3, r4], [first; 4], "{}", backend.name());
        let messages = server
            .store()
            .ticket_messages(first)
            .await
            .expect("messages");
        assert_eq!(messages.iter().filter(|m| m.kind == "customer").count(), 5);
        assert_eq!(
            server.store().ticket(first).await.expect("ticket").subject,
            "VPN drops"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn a_reply_to_our_acknowledgement_joins_the_ticket(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let ticket = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Invoice wrong",
            "a1@example.com",
            "",
        )
        .await;
        let ack = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages")
            .into_iter()
            .find(|m| m.kind == "auto_reply")
            .expect("an acknowledgement was queued");
        assert!(
            ack.message_id.starts_with(&format!("pd.{ticket}."))
                && ack.message_id.ends_with("@desk.test")
        );
        let raw = String::from_utf8(server.store().raw_message(ack.id).await.expect("raw"))
            .expect("utf8");
        assert!(
            // Not authenticated (checks are off in the tests): the
            // acknowledgement repeats nothing the sender wrote.
            raw.contains(&format!("Subject: We received your message [#{ticket}]")),
            "{raw}"
        );
        assert!(raw.contains("Auto-Submitted: auto-replied"), "{raw}");
        assert!(raw.contains("In-Reply-To: <a1@example.com>"), "{raw}");
        assert!(
            raw.contains(&format!("support+{ticket}@desk.test")),
            "{raw}"
        );
        // The customer answers the acknowledgement, from a client that keeps only In-Reply-To.
        let reply = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Re: [#1] Invoice wrong",
            "a2@example.com",
            &format!("In-Reply-To: <{}>\r\n", ack.message_id),
        )
        .await;
        assert_eq!(reply, ticket);
        server.stop().await;
    }
);

backend_test!(
    async fn a_subject_tag_joins_only_for_participants(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let cc = "Cc: Dave <dave@example.com>\r\n";
        let ticket = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Printer",
            "s1@example.com",
            cc,
        )
        .await;
        let tagged = format!("Re: [#{ticket}] Printer");
        // The customer, without any reference header.
        assert_eq!(
            send(
                &server,
                "alice@example.com",
                "support@desk.test",
                &tagged,
                "s2@example.com",
                ""
            )
            .await,
            ticket
        );
        // Someone who was copied is a participant too.
        assert_eq!(
            send(
                &server,
                "dave@example.com",
                "support@desk.test",
                &tagged,
                "s3@example.com",
                ""
            )
            .await,
            ticket
        );
        // A stranger quoting the tag opens a new ticket, linked to the old one.
        let stranger = send(
            &server,
            "mallory@evil.example",
            "support@desk.test",
            &tagged,
            "s4@example.com",
            "",
        )
        .await;
        assert_ne!(stranger, ticket);
        let new = server.store().ticket(stranger).await.expect("ticket");
        assert_eq!(new.linked_ticket, Some(ticket));
        assert_eq!(new.customer_address, "mallory@evil.example");
        let events = server.store().ticket_events(ticket).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == "linked" && e.detail.contains(&format!("#{stranger}")))
        );
        // The old ticket did not gain the stranger's message.
        let messages = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        assert!(messages.iter().all(|m| m.sender != "mallory@evil.example"));
        server.stop().await;
    }
);

backend_test!(
    async fn closed_tickets_reopen_inside_the_window_and_link_after_it(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let recent = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Recent",
            "w1@example.com",
            "",
        )
        .await;
        let old = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Old",
            "w2@example.com",
            "",
        )
        .await;
        let now = Utc::now();
        common::set_status(
            server.store(),
            recent,
            Status::Closed,
            now - Duration::days(29),
        )
        .await
        .expect("close");
        common::set_status(
            server.store(),
            old,
            Status::Closed,
            now - Duration::days(31),
        )
        .await
        .expect("close");

        let again = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Re: Recent",
            "w3@example.com",
            "In-Reply-To: <w1@example.com>\r\n",
        )
        .await;
        assert_eq!(again, recent);
        assert_eq!(status_of(&server, recent).await, Status::Open);
        let events = server.store().ticket_events(recent).await.expect("events");
        assert!(events.iter().any(|e| e.kind == "reopened"), "{events:?}");

        let follow_up = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Re: Old",
            "w4@example.com",
            "In-Reply-To: <w2@example.com>\r\n",
        )
        .await;
        assert_ne!(follow_up, old);
        assert_eq!(status_of(&server, old).await, Status::Closed);
        let new = server.store().ticket(follow_up).await.expect("ticket");
        assert_eq!(new.linked_ticket, Some(old));
        assert_eq!(new.subject, "Old");
        // A pending ticket becomes open when the customer writes.
        common::set_status(server.store(), recent, Status::Pending, Utc::now())
            .await
            .expect("pending");
        send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Re: Recent",
            "w5@example.com",
            "References: <w3@example.com>\r\n",
        )
        .await;
        assert_eq!(status_of(&server, recent).await, Status::Open);
        server.stop().await;
    }
);

backend_test!(
    async fn reopen_window_is_configurable(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.tickets.reopen_window_days = 2).await;
        let ticket = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Short",
            "r1@example.com",
            "",
        )
        .await;
        common::set_status(
            server.store(),
            ticket,
            Status::Resolved,
            Utc::now() - Duration::days(3),
        )
        .await
        .expect("resolve");
        let next = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Re: Short",
            "r2@example.com",
            "References: <r1@example.com>\r\n",
        )
        .await;
        assert_ne!(next, ticket);
        server.stop().await;
    }
);

backend_test!(
    async fn subjects_lose_reply_prefixes_and_queue_follows_the_address(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let t = send(
            &server,
            "alice@example.com",
            "billing@desk.test",
            "AW: SV: Fwd: Re: Rechnung falsch",
            "p1@example.com",
            "",
        )
        .await;
        let ticket = server.store().ticket(t).await.expect("ticket");
        assert_eq!(ticket.subject, "Rechnung falsch");
        assert_eq!(ticket.queue, "billing");
        assert_eq!(ticket.customer_address, "alice@example.com");
        // Same bare subject, no references: never joined by subject.
        let u = send(
            &server,
            "alice@example.com",
            "billing@desk.test",
            "Re: Rechnung falsch",
            "p2@example.com",
            "",
        )
        .await;
        assert_ne!(u, t);
        server.stop().await;
    }
);

backend_test!(
    async fn our_own_mail_never_opens_a_ticket(backend: Backend) {
        let server = TestServer::start(&backend).await;
        // An outsider's mail with an id of our shape but without our key's
        // tag is a customer's mail: it opens a ticket.
        let forged = message(
            "mallory@example.com",
            "support@desk.test",
            "Not yours",
            "pd.99.0123456789abcdef.0a1b2c3d4e5f@desk.test",
            "",
            "hello",
        );
        let r = deliver(
            server.smtp(),
            "mallory@example.com",
            &["support@desk.test"],
            &forged,
        )
        .await;
        assert!(r.text().contains("accepted as ticket"), "{r:?}");
        let before = server.store().counts().await.expect("counts");
        let own_id = server.app().own_ids.mint(99);
        let body = message(
            "support@desk.test",
            "support@desk.test",
            "[#99] Looped",
            &own_id,
            "",
            "loop",
        );
        let reply = deliver(
            server.smtp(),
            "support@desk.test",
            &["support@desk.test"],
            &body,
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let after = server.store().counts().await.expect("counts");
        assert_eq!(after.1, before.1, "no ticket was opened");
        assert_eq!(after.0, before.0 + 1, "but the message is kept");
        let unfiled = server.store().unfiled_messages().await.expect("unfiled");
        assert_eq!(unfiled.len(), 1);
        assert!(
            unfiled[0]
                .problems
                .as_deref()
                .unwrap_or("")
                .contains("own mail")
        );
        server.stop().await;
    }
);

backend_test!(
    async fn delivery_reports_attach_to_the_bounced_ticket(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let ticket = send(
            &server,
            "alice@typo.example",
            "support@desk.test",
            "Help",
            "b1@typo.example",
            "",
        )
        .await;
        let ack = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages")
            .into_iter()
            .find(|m| m.kind == "auto_reply")
            .expect("ack");
        let dsn = format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nTo: support@desk.test\r\n\
             Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example>\r\n\
             Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
             Final-Recipient: rfc822; alice@typo.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
             --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@desk.test\r\nMessage-ID: <{}>\r\n\
             Subject: [#{ticket}] Help\r\n\r\n--B--\r\n",
            ack.message_id
        );
        let before = server.store().counts().await.expect("counts");
        let reply = deliver(server.smtp(), "", &["support@desk.test"], dsn.as_bytes()).await;
        assert_eq!(ticket_of(&reply), ticket);
        let after = server.store().counts().await.expect("counts");
        assert_eq!(after.1, before.1, "a bounce never opens a ticket");
        let messages = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        assert!(messages.iter().any(|m| m.kind == "bounce"));
        let events = server.store().ticket_events(ticket).await.expect("events");
        assert!(events.iter().any(|e| e.kind == "delivery-report"));

        // A report about mail postdesk never sent is kept, unfiled.
        let stray = dsn
            .replace(&ack.message_id, "unknown@nowhere")
            .replace("dsn1@", "dsn2@");
        let reply = deliver(server.smtp(), "", &["support@desk.test"], stray.as_bytes()).await;
        assert_eq!(reply.code, 250);
        assert_eq!(server.store().counts().await.expect("counts").1, before.1);
        assert_eq!(
            server
                .store()
                .unfiled_messages()
                .await
                .expect("unfiled")
                .len(),
            1
        );
        server.stop().await;
    }
);

backend_test!(
    async fn no_acknowledgement_for_automatic_or_list_mail(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let cases = [
            ("Auto-Submitted: auto-replied\r\n", "alice@example.com"),
            ("Precedence: bulk\r\n", "alice@example.com"),
            ("List-Id: <users.lists.example>\r\n", "alice@example.com"),
            ("X-Auto-Response-Suppress: All\r\n", "alice@example.com"),
            ("", "noreply@example.com"),
        ];
        for (i, (header, from)) in cases.iter().enumerate() {
            let t = send(
                &server,
                from,
                "support@desk.test",
                "Automatic",
                &format!("n{i}@example.com"),
                header,
            )
            .await;
            let acks = server
                .store()
                .ticket_messages(t)
                .await
                .expect("messages")
                .into_iter()
                .filter(|m| m.kind == "auto_reply")
                .count();
            assert_eq!(acks, 0, "{header}{from}");
        }
        assert!(server.outbound(None).await.is_empty());
        server.stop().await;
    }
);

backend_test!(
    async fn acknowledgements_are_rate_limited_per_sender(backend: Backend) {
        let server =
            TestServer::start_with(&backend, |c| c.autoreply.ack_per_recipient_per_hour = 3).await;
        for i in 0..6 {
            send(
                &server,
                "alice@example.com",
                "support@desk.test",
                &format!("Problem {i}"),
                &format!("l{i}@example.com"),
                "",
            )
            .await;
        }
        send(
            &server,
            "bob@example.com",
            "support@desk.test",
            "Other sender",
            "l9@example.com",
            "",
        )
        .await;
        let outbound = server.outbound(None).await;
        assert_eq!(
            outbound
                .iter()
                .filter(|o| o.rcpt_to == "alice@example.com")
                .count(),
            3
        );
        assert_eq!(
            outbound
                .iter()
                .filter(|o| o.rcpt_to == "bob@example.com")
                .count(),
            1
        );
        server.stop().await;
    }
);

backend_test!(
    async fn malformed_mail_is_stored_and_flagged(backend: Backend) {
        let server = TestServer::start(&backend).await;
        // No From, no Message-ID, no Date, no blank line before the body.
        let raw = b"Subject: broken\r\nthis line is not a header\r\n".to_vec();
        let reply = deliver(
            server.smtp(),
            "someone@example.com",
            &["support@desk.test"],
            &raw,
        )
        .await;
        let ticket = ticket_of(&reply);
        let messages = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        let stored = &messages[0];
        let problems = stored.problems.clone().unwrap_or_default();
        assert!(
            problems.contains("no From") && problems.contains("no Message-ID"),
            "{problems}"
        );
        assert_eq!(stored.sender, "someone@example.com");
        assert_eq!(
            server.store().raw_message(stored.id).await.expect("raw"),
            raw
        );
        // The same bytes again (a client retrying) are one message.
        let again = deliver(
            server.smtp(),
            "someone@example.com",
            &["support@desk.test"],
            &raw,
        )
        .await;
        assert_eq!(ticket_of(&again), ticket);
        assert_eq!(
            server
                .store()
                .ticket_messages(ticket)
                .await
                .expect("messages")
                .iter()
                .filter(|m| m.kind == "customer")
                .count(),
            1
        );
        server.stop().await;
    }
);

backend_test!(
    async fn an_original_arriving_after_its_reply_joins_the_reply_s_ticket(backend: Backend) {
        let server = TestServer::start(&backend).await;
        // Dave's answer (Alice in Cc) reaches us before Alice's own mail.
        let reply = send(
            &server,
            "dave@example.com",
            "support@desk.test",
            "Re: Outage",
            "o2@example.com",
            "In-Reply-To: <o1@example.com>\r\nReferences: <o1@example.com>\r\n",
        )
        .await;
        let original = send(
            &server,
            "alice@example.com",
            "support@desk.test",
            "Outage",
            "o1@example.com",
            "",
        )
        .await;
        assert_eq!(original, reply);
        server.stop().await;
    }
);
