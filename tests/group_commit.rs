//! Many senders at once: every message gets its own verdict after the
//! commit that holds it. On SQLite concurrent messages share a commit (group
//! commit); one that fails must cost no other message its 250.

use crate::common;

use crate::common::{Backend, TestServer, backend_test, deliver, message};

backend_test!(
    async fn concurrent_senders_each_get_their_own_verdict(backend: Backend) {
        let server = TestServer::start(&backend).await;
        common::install_failing_trigger(&server).await;
        let senders = 40;
        let mut tasks = Vec::new();
        for i in 0..senders {
            let addr = server.smtp();
            tasks.push(tokio::spawn(async move {
                let subject = if i == 17 {
                    "fail-me".to_string()
                } else {
                    format!("Issue {i}")
                };
                let from = format!("customer{i}@example.com");
                let body = message(
                    &from,
                    "support@desk.test",
                    &subject,
                    &format!("g{i}@example.com"),
                    "",
                    "x",
                );
                (i, deliver(addr, &from, &["support@desk.test"], &body).await)
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            let (i, reply) = task.await.expect("join");
            if i == 17 {
                assert_eq!(reply.code, 451, "{reply:?}");
            } else {
                assert_eq!(reply.code, 250, "sender {i}: {reply:?}");
                accepted += 1;
            }
        }
        let tickets = server
            .store()
            .tickets(&Default::default())
            .await
            .expect("tickets");
        assert_eq!(tickets.len(), accepted, "{}", backend.name());
        assert!(tickets.iter().all(|t| t.subject != "fail-me"));
        // Every accepted message is stored with its acknowledgement.
        assert_eq!(
            server.store().counts().await.expect("counts").0 as usize,
            2 * accepted
        );
        server.stop().await;
    }
);

backend_test!(
    async fn the_same_message_from_two_sessions_at_once_is_stored_once(backend: Backend) {
        let server = TestServer::start(&backend).await;
        for round in 0..10 {
            let id = format!("twice{round}@example.com");
            let from = format!("alice{round}@example.com");
            let body = message(&from, "support@desk.test", "Twice", &id, "", "x");
            let a = {
                let (addr, body, from) = (server.smtp(), body.clone(), from.clone());
                tokio::spawn(
                    async move { deliver(addr, &from, &["support@desk.test"], &body).await },
                )
            };
            let b = {
                let (addr, body, from) = (server.smtp(), body.clone(), from.clone());
                tokio::spawn(
                    async move { deliver(addr, &from, &["support@desk.test"], &body).await },
                )
            };
            let (a, b) = (a.await.expect("join"), b.await.expect("join"));
            assert_eq!((a.code, b.code), (250, 250), "{a:?} {b:?}");
            assert_eq!(common::ticket_of(&a), common::ticket_of(&b));
        }
        let tickets = server
            .store()
            .tickets(&Default::default())
            .await
            .expect("tickets");
        assert_eq!(tickets.len(), 10, "{}", backend.name());
        assert!(
            tickets.iter().all(|t| t.message_count == 2),
            "one message and its acknowledgement each"
        );
        server.stop().await;
    }
);
