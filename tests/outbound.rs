//! Outbound delivery through a real relay (a recording SMTP sink): the
//! acknowledgement arrives, temporary failures are retried, permanent ones
//! are recorded on the ticket, the queue survives a restart, and two
//! postdesks answering each other stop.

use crate::common::sink::{Rewrite, Sink};
use crate::common::{
    Backend, TestServer, backend_test, deliver, eventually, message, relay, ticket_of,
};
use postdesk::config::RelayUrl;
use postdesk::store::OutboundStatus;
use std::sync::Arc;
use std::time::Duration;

async fn open_ticket(server: &TestServer, id: &str) -> i64 {
    let body = message(
        "Alice <alice@example.com>",
        "support@desk.test",
        "Printer on fire",
        id,
        "",
        "Help!",
    );
    ticket_of(
        &deliver(
            server.smtp(),
            "alice@example.com",
            &["support@desk.test"],
            &body,
        )
        .await,
    )
}

backend_test!(
    async fn the_acknowledgement_is_delivered_through_the_relay(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        // Authenticated mail (a trusted relay says DMARC passed) gets the
        // acknowledgement that repeats its subject and greets by name.
        let server = TestServer::start_with(&backend, |c| {
            c.outbound.relay = relay(sink.addr);
            c.smtp.trusted_relays = vec!["127.0.0.1/32".parse().expect("net")];
        })
        .await;
        let body = message(
            "Alice <alice@example.com>",
            "support@desk.test",
            "Printer on fire",
            "d1@example.com",
            "Authentication-Results: mx.example.net; dmarc=pass header.from=example.com\r\n",
            "Help!",
        );
        let ticket = ticket_of(
            &deliver(
                server.smtp(),
                "alice@example.com",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        eventually("ack delivered", || async { !sink.accepted().is_empty() }).await;
        let got = &sink.accepted()[0];
        assert_eq!(got.mail_from, "support@desk.test");
        assert_eq!(got.rcpt_to, vec!["alice@example.com".to_string()]);
        let text = String::from_utf8_lossy(&got.data);
        assert!(
            text.contains(&format!("Subject: [#{ticket}] Printer on fire")),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert!(text.contains("In-Reply-To: <d1@example.com>"), "{text}");
        assert!(text.contains("Hello Alice,"), "{text}");
        // What the customer got is what the ticket shows.
        let stored = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        let ack = stored.iter().find(|m| m.kind == "auto_reply").expect("ack");
        assert_eq!(
            server.store().raw_message(ack.id).await.expect("raw"),
            got.data
        );
        eventually("marked sent", || async {
            server.outbound(Some(OutboundStatus::Sent)).await.len() == 1
        })
        .await;
        server.stop().await;
    }
);

backend_test!(
    async fn a_temporary_failure_is_retried_and_a_permanent_one_lands_on_the_ticket(
        backend: Backend,
    ) {
        // 1st attempt of the 1st ack: 451; its retry: 250; the 2nd ack: 550.
        let sink = Sink::start(vec![451, 250, 550], None).await;
        let server = TestServer::start_with(&backend, |c| {
            c.outbound.relay = relay(sink.addr);
            c.outbound.retry_base = 1;
        })
        .await;
        let first = open_ticket(&server, "r1@example.com").await;
        eventually("retry delivered", || async { sink.accepted().len() == 1 }).await;
        // The sink accepts before the worker records the delivery (status
        // and attempt count in one update): wait for that record.
        eventually("retry recorded as sent", || async {
            server.outbound(Some(OutboundStatus::Sent)).await.len() == 1
        })
        .await;
        let items = server.outbound(None).await;
        assert_eq!(items[0].attempts, 2, "{items:?}");
        assert_eq!(items[0].status, OutboundStatus::Sent);
        assert_eq!(sink.messages()[0].code, 451);

        let body = message(
            "bob@example.com",
            "support@desk.test",
            "Another",
            "r2@example.com",
            "",
            "x",
        );
        let second = ticket_of(
            &deliver(
                server.smtp(),
                "bob@example.com",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        assert_ne!(first, second);
        eventually("permanent failure recorded", || async {
            server.outbound(Some(OutboundStatus::Failed)).await.len() == 1
        })
        .await;
        let failed = &server.outbound(Some(OutboundStatus::Failed)).await[0];
        assert!(
            failed.last_error.as_deref().unwrap_or("").contains("550"),
            "{failed:?}"
        );
        let events = server.store().ticket_events(second).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == "delivery-failed" && e.detail.contains("bob@example.com"))
        );
        let notes = server
            .store()
            .ticket_messages(second)
            .await
            .expect("messages");
        assert!(
            notes
                .iter()
                .any(|m| m.kind == "note" && m.subject == "Delivery failed")
        );
        assert_eq!(
            sink.messages().len(),
            3,
            "no retry after a permanent failure"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn queued_mail_waits_for_a_relay_and_survives_a_restart(backend: Backend) {
        let mut server = TestServer::start(&backend).await;
        open_ticket(&server, "q1@example.com").await;
        open_ticket(&server, "q2@example.com").await;
        let queued = server.outbound(Some(OutboundStatus::Queued)).await;
        assert_eq!(queued.len(), 2);
        let sink = Sink::start(vec![], None).await;
        server.config.outbound.relay = relay(sink.addr);
        server.restart().await;
        eventually("both delivered", || async { sink.accepted().len() == 2 }).await;
        // Exactly once each, also after another restart.
        server.restart().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sink.messages().len(), 2);
        server.stop().await;
    }
);

/// A relay that strips every loop signal and threading hint, as a broken
/// forwarder would: only the per-sender rate limit can stop the loop.
fn strip_loop_headers() -> Rewrite {
    Arc::new(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut out = String::new();
        let mut skipping = false;
        for line in head.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                if !skipping {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
                continue;
            }
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            skipping = matches!(
                name.as_str(),
                "auto-submitted"
                    | "x-auto-response-suppress"
                    | "in-reply-to"
                    | "references"
                    | "reply-to"
                    | "subject"
            );
            if !skipping {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!(
            "Subject: forwarded {:016x}\r\n\r\n{body}",
            rand::random::<u64>()
        ));
        out.into_bytes()
    })
}

/// A free loopback address for a server started later (B's, which A's
/// relay must know first). Drawn below Linux's ephemeral range
/// (32768–60999): a port from that range, freed and bound again later,
/// can meanwhile become the source port of any outgoing connection.
fn port_for_later() -> std::net::SocketAddr {
    for _ in 0..200 {
        let port: u16 = rand::random_range(20_000..32_000);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().expect("addr");
        }
    }
    panic!("no free port below the ephemeral range");
}

backend_test!(
    async fn two_auto_responders_facing_each_other_stop(backend: Backend) {
        for honest_headers in [true, false] {
            let limit = 3;
            // A's relay forwards to B and B's to A, through header-stripping
            // forwarders when !honest_headers.
            let b_port = port_for_later();
            let keep: Rewrite = Arc::new(|d: &[u8]| d.to_vec());
            let rewrite = if honest_headers {
                keep.clone()
            } else {
                strip_loop_headers()
            };
            let a_to_b = Sink::start(vec![], Some((b_port, rewrite.clone()))).await;
            let a = TestServer::start_with(&backend, |c| {
                c.hostname = "a.test".into();
                c.queues = vec![postdesk::config::QueueConfig {
                    name: "support".into(),
                    address: "support@a.test".into(),
                    knowledge_categories: Vec::new(),
                }];
                c.outbound.relay = relay(a_to_b.addr);
                c.autoreply.ack_per_recipient_per_hour = limit;
            })
            .await;
            let b_to_a = Sink::start(vec![], Some((a.smtp(), rewrite))).await;
            let b = TestServer::start_with(&backend, |c| {
                c.hostname = "b.test".into();
                c.smtp.listen = b_port;
                c.queues = vec![postdesk::config::QueueConfig {
                    name: "help".into(),
                    address: "help@b.test".into(),
                    knowledge_categories: Vec::new(),
                }];
                c.outbound.relay = relay(b_to_a.addr);
                c.autoreply.ack_per_recipient_per_hour = limit;
            })
            .await;

            // Someone at B's address writes to A; A acknowledges to B, …
            let body = message(
                "help@b.test",
                "support@a.test",
                "Hello A",
                "start@b.test",
                "",
                "ping",
            );
            ticket_of(&deliver(a.smtp(), "help@b.test", &["support@a.test"], &body).await);

            // Wait until nothing moves for a second.
            let mut last = (0, 0);
            let mut still = 0;
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = (a_to_b.messages().len(), b_to_a.messages().len());
                still = if now == last { still + 1 } else { 0 };
                last = now;
                if still >= 10 {
                    break;
                }
            }
            assert!(still >= 10, "the loop did not stop: {last:?}");
            let (a_sent, b_sent) = last;
            if honest_headers {
                // B sees Auto-Submitted on A's acknowledgement and stays quiet.
                assert_eq!((a_sent, b_sent), (1, 0));
            } else {
                assert_eq!(a_sent, limit as usize, "A answered B at most {limit} times");
                assert_eq!(b_sent, limit as usize, "B answered A at most {limit} times");
                let a_events: usize = {
                    let mut n = 0;
                    for t in a
                        .store()
                        .tickets(&Default::default())
                        .await
                        .expect("tickets")
                    {
                        n += a
                            .store()
                            .ticket_events(t.number)
                            .await
                            .expect("events")
                            .iter()
                            .filter(|e| e.kind == "auto-reply-suppressed")
                            .count();
                    }
                    n
                };
                assert!(a_events >= 1, "the suppression is recorded on the ticket");
            }
            a.stop().await;
            b.stop().await;
        }
    }
);

backend_test!(
    async fn delivery_through_a_starttls_relay_is_byte_exact(backend: Backend) {
        // The customer's side: another postdesk, reached with STARTTLS on
        // its self-signed certificate, that files what it receives.
        let customer_side = TestServer::start_with(&backend, |c| {
            c.hostname = "example.com".into();
            c.queues = vec![postdesk::config::QueueConfig {
                name: "alice".into(),
                address: "alice@example.com".into(),
                knowledge_categories: Vec::new(),
            }];
        })
        .await;
        let url = format!("smtp+starttls://{}", customer_side.smtp());
        let server = TestServer::start_with(&backend, |c| {
            c.outbound.relay = Some(RelayUrl::parse(&url).expect("relay url"));
            c.outbound.allow_invalid_certs = true;
        })
        .await;
        let ticket = open_ticket(&server, "tls1@example.com").await;
        eventually("delivered over STARTTLS", || async {
            server.outbound(Some(OutboundStatus::Sent)).await.len() == 1
        })
        .await;
        let sent = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        let ack = sent.iter().find(|m| m.kind == "auto_reply").expect("ack");
        let ack_raw = server.store().raw_message(ack.id).await.expect("raw");
        let received = customer_side
            .store()
            .tickets(&Default::default())
            .await
            .expect("tickets");
        assert_eq!(received.len(), 1);
        // The acknowledgement of unauthenticated mail (checks are off in
        // the tests) repeats nothing of it.
        assert_eq!(
            received[0].subject, "We received your message",
            "the [#n] tag is ours, not the title"
        );
        let got = customer_side
            .store()
            .ticket_messages(received[0].number)
            .await
            .expect("messages");
        assert_eq!(
            customer_side
                .store()
                .raw_message(got[0].id)
                .await
                .expect("raw"),
            ack_raw
        );
        // The acknowledgement is automatic: the other side does not answer it.
        assert!(customer_side.outbound(None).await.is_empty());
        server.stop().await;
        customer_side.stop().await;
    }
);

backend_test!(
    /// A node that died mid-delivery: what it had only claimed is delivered
    /// by the next worker within seconds of its short lease running out;
    /// what it had begun handing to the relay is not sent a second time
    /// blindly but failed with a note, for a person to retry.
    async fn a_dead_workers_deliveries_are_taken_over_and_none_goes_twice(backend: Backend) {
        let sink = Sink::start(vec![], None).await;
        // No relay yet: the acknowledgements wait in the queue.
        let mut server = TestServer::start(&backend).await;
        let claimed_ticket = open_ticket(&server, "t1@example.com").await;
        let body = message(
            "Bob <bob@example.com>",
            "support@desk.test",
            "Scanner on fire",
            "t2@example.com",
            "",
            "Help!",
        );
        let handed_ticket = ticket_of(
            &deliver(
                server.smtp(),
                "bob@example.com",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        // The other node claims both, starts handing one over, and dies:
        // its lease has run out.
        let now = chrono::Utc::now();
        let claimed = server
            .store()
            .claim_outbound(now, chrono::Duration::seconds(-30), 16)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 2);
        let handed = claimed
            .iter()
            .find(|(item, _)| item.ticket == Some(handed_ticket))
            .expect("the second ack")
            .0
            .id;
        server
            .store()
            .outbound_handing_over(handed, now)
            .await
            .expect("handing over");

        server.config.outbound.relay = relay(sink.addr);
        server.restart().await;
        eventually("the claimed delivery is taken over", || async {
            sink.accepted().len() == 1
        })
        .await;
        eventually("the interrupted one is failed", || async {
            server.outbound(Some(OutboundStatus::Failed)).await.len() == 1
        })
        .await;
        let failed = &server.outbound(Some(OutboundStatus::Failed)).await[0];
        assert_eq!(failed.ticket, Some(handed_ticket));
        let error = failed.last_error.clone().unwrap_or_default();
        assert!(error.contains("interrupted"), "{error}");
        assert_eq!(sink.accepted()[0].rcpt_to, ["alice@example.com"]);
        let raw = String::from_utf8_lossy(&sink.accepted()[0].data).into_owned();
        assert!(raw.contains(&format!("#{claimed_ticket}")), "{raw}");
        // The agents learn of it on the ticket.
        let ticket = server.store().ticket(handed_ticket).await.expect("ticket");
        assert!(
            ticket.tags.iter().any(|t| t == "delivery-failed"),
            "{ticket:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sink.messages().len(), 1, "nothing was sent twice");
        server.stop().await;
    }
);
