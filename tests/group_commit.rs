//! Many senders at once: every message gets its own verdict after the
//! commit that holds it. On SQLite concurrent messages share a commit (group
//! commit); one that fails must cost no other message its 250.

mod common;

use common::{TestServer, deliver, message};

#[tokio::test]
async fn concurrent_senders_each_get_their_own_verdict() {
    for backend in common::backends() {
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
}
