//! The operations listener over a real socket: `/metrics` moves with the
//! mail and the sessions, `/healthz` answers.
//!
//! The tests share one process and so one metrics recorder: counters are
//! compared before and after; gauges are each server's own.

use crate::common::imap::ImapClient;
use crate::common::{Backend, SmtpClient, TestServer, backend_test, deliver, message, ticket_of};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 GET: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect http");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("http response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    // Small bodies may come chunked: keep only the lines that are not
    // chunk sizes (the metrics' lines all contain a space or a '#').
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.lines()
            .filter(|line| line.contains(' ') || line.starts_with('#') || line.starts_with("ok"))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        body.to_string()
    };
    (status, body)
}

/// The value of a metric with all of these labels (0 when absent).
fn value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            let series = line.split(' ').next().unwrap_or("");
            let bare = series.split('{').next().unwrap_or("");
            bare == name
                && labels
                    .iter()
                    .all(|(key, value)| series.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(server: &TestServer) -> String {
    let (status, body) = get(server.http(), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

backend_test!(
    async fn metrics_count_mail_refusals_and_imap_sessions(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let accepted = |m: &str| {
            value(
                m,
                "postdesk_messages_accepted_total",
                &[("listener", "inbound")],
            )
        };
        let refused = |m: &str, reason: &str| {
            value(
                m,
                "postdesk_messages_refused_total",
                &[("listener", "inbound"), ("reason", reason)],
            )
        };
        let before = metrics(&server).await;
        assert_eq!(
            value(&before, "postdesk_imap_sessions", &[]),
            0.0,
            "{before}"
        );

        let body = message(
            "ann@example.org",
            "support@desk.test",
            "Printer",
            "m1@example.org",
            "",
            "It jams.",
        );
        let reply = deliver(
            server.smtp(),
            "ann@example.org",
            &["support@desk.test"],
            &body,
        )
        .await;
        ticket_of(&reply);

        // Refused: a recipient that is no queue, and a message too big.
        let (mut client, _) = SmtpClient::connect(server.smtp()).await;
        assert_eq!(client.cmd("EHLO client.example.org").await.code, 250);
        assert_eq!(client.cmd("MAIL FROM:<bob@example.org>").await.code, 250);
        assert_eq!(client.cmd("RCPT TO:<nobody@desk.test>").await.code, 550);
        assert_eq!(client.cmd("RSET").await.code, 250);
        let too_big = client
            .cmd("MAIL FROM:<bob@example.org> SIZE=999999999999")
            .await;
        assert_eq!(too_big.code, 552, "{too_big:?}");
        let _ = client.cmd("QUIT").await;

        let (imap, _) = ImapClient::connect(server.imap()).await;
        let after = metrics(&server).await;
        assert!(accepted(&after) >= accepted(&before) + 1.0, "{after}");
        assert!(
            refused(&after, "unknown_recipient") >= refused(&before, "unknown_recipient") + 1.0,
            "{after}"
        );
        assert!(
            refused(&after, "too_big") >= refused(&before, "too_big") + 1.0,
            "{after}"
        );
        assert_eq!(value(&after, "postdesk_imap_sessions", &[]), 1.0, "{after}");
        assert!(
            value(&after, "postdesk_ingest_duration_seconds_count", &[]) >= 1.0,
            "{after}"
        );
        assert!(
            value(&after, "postdesk_disk_free_bytes", &[]) > 0.0,
            "{after}"
        );
        assert!(after.contains("postdesk_outbound_queue_depth"), "{after}");
        assert!(
            after.contains("postdesk_search_index_lag_messages"),
            "{after}"
        );

        drop(imap);
        let mut gone = false;
        for _ in 0..200 {
            if value(&metrics(&server).await, "postdesk_imap_sessions", &[]) == 0.0 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            gone,
            "the IMAP session gauge comes down when the client leaves"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn healthz_is_ok_when_the_store_takes_writes(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let (status, body) = get(server.http(), "/healthz").await;
        assert_eq!((status, body.trim()), (200, "ok"));
        let (status, _) = get(server.http(), "/nothing-here").await;
        assert_eq!(status, 404);
        server.stop().await;
    }
);

backend_test!(
    async fn healthz_is_not_ready_below_the_disk_floor(backend: Backend) {
        // A floor no disk reaches.
        let server = TestServer::start_with(&backend, |config| {
            config.storage.min_free_mb = u64::MAX / 4;
        })
        .await;
        let (status, body) = get(server.http(), "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.starts_with("not ready"), "{body}");
        server.stop().await;
    }
);

backend_test!(
    async fn metrics_show_the_database_pools_and_their_waits(backend: Backend) {
        let server = TestServer::start(&backend).await;
        crate::common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let waits = |m: &str, pool: &str| {
            value(
                m,
                "postdesk_db_acquire_duration_seconds_count",
                &[("pool", pool)],
            )
        };
        let before = metrics(&server).await;
        let body = message(
            "ann@example.org",
            "support@desk.test",
            "Printer",
            "pool-waits@example.org",
            "",
            "It jams.",
        );
        let reply = deliver(
            server.smtp(),
            "ann@example.org",
            &["support@desk.test"],
            &body,
        )
        .await;
        ticket_of(&reply);
        // Reads (this SELECT; the gauges /metrics queries) take their
        // connections apart from the writes, and their waits are counted
        // under their own label.
        let before_select = metrics(&server).await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(alice.cmd("SELECT Unassigned").await.ok());
        let after = metrics(&server).await;
        assert!(
            waits(&after, "write") >= waits(&before, "write") + 1.0,
            "{after}"
        );
        assert!(
            waits(&after, "read") >= waits(&before_select, "read") + 1.0,
            "{after}"
        );
        let max = |pool: &str| {
            value(
                &after,
                "postdesk_db_pool_connections",
                &[("pool", pool), ("state", "max")],
            )
        };
        match backend {
            Backend::Sqlite => {
                // One writer, which queues every write; a few readers.
                assert_eq!(max("write"), 1.0, "{after}");
                assert!(max("read") >= 2.0, "{after}");
                assert!(after.contains("postdesk_db_filing_queue"), "{after}");
            }
            Backend::Postgres(_) => assert!(max("postgres") >= 2.0, "{after}"),
        }
        server.stop().await;
    }
);

backend_test!(
    /// SELECT starts from the members kept at the last SELECT of the
    /// mailbox and a header FETCH from the headers read before: both are
    /// memory an administrator should see.
    async fn metrics_show_what_the_imap_read_caches_hold(backend: Backend) {
        let server = TestServer::start(&backend).await;
        crate::common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let body = message(
            "ann@example.org",
            "support@desk.test",
            "Printer",
            "cache-1@example.org",
            "",
            "It jams.",
        );
        ticket_of(
            &deliver(
                server.smtp(),
                "ann@example.org",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        let before = metrics(&server).await;
        assert_eq!(
            value(&before, "postdesk_imap_header_cache_bytes", &[]),
            0.0,
            "{before}"
        );

        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(alice.cmd("SELECT Unassigned").await.ok());
        let fetched = alice
            .cmd("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)])")
            .await;
        assert!(fetched.ok(), "{}", fetched.all_text());
        assert_eq!(fetched.fetches().len(), 1, "{}", fetched.all_text());

        let after = metrics(&server).await;
        assert!(
            value(&after, "postdesk_imap_snapshot_members", &[]) >= 1.0,
            "{after}"
        );
        assert!(
            value(&after, "postdesk_imap_header_cache_bytes", &[]) > 0.0,
            "{after}"
        );
        server.stop().await;
    }
);
