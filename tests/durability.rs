//! Nothing acknowledged is lost, and no client starves the server: a full
//! disk, a write that fails mid-transaction, clients that trickle bytes or
//! send endless lines, one address taking every slot, refused recipients.

use crate::common::imap::ImapClient;
use crate::common::{self, Backend, Reply, SmtpClient, TestServer, backend_test, message};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn expect(reply: &Reply, code: u16, enhanced: &str) {
    assert_eq!(reply.code, code, "{reply:?}");
    assert!(reply.text().starts_with(enhanced), "{reply:?}");
}

async fn ehlo(client: &mut SmtpClient<TcpStream>) {
    assert_eq!(client.cmd("EHLO client.test").await.code, 250);
}

/// A small file system of its own (tmpfs), unmounted on drop. None when
/// this process may not mount (not root): the test says so and passes,
/// except in CI, where `.ci/run` runs as root and it must run.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            assert!(
                !common::in_ci(),
                "CI must run the disk-full test (as root, to mount a tmpfs)"
            );
            eprintln!("NOTICE: disk-full test skipped: cannot mount a tmpfs (not root?)");
            return None;
        }
        Some(SmallDisk {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }

    /// Takes `megabytes` of the space, for [`SmallDisk::free`] to give back.
    fn ballast(&self, megabytes: usize) -> PathBuf {
        let path = self.path.join("ballast");
        std::fs::write(&path, vec![7u8; megabytes * 1024 * 1024]).expect("ballast");
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn customer_message(n: usize, body_kib: usize) -> (String, Vec<u8>) {
    let id = format!("full-{n}@client.test");
    let body = "All work and no play makes Jack a dull boy.\r\n".repeat(body_kib * 1024 / 45);
    let raw = message(
        &format!("sender{n}@client.test"),
        "support@desk.test",
        &format!("Disk test {n}"),
        &id,
        "",
        &body,
    );
    (id, raw)
}

/// Sends one message in its own transaction; the final reply (or the
/// refusal of MAIL FROM).
async fn offer(client: &mut SmtpClient<TcpStream>, n: usize, raw: &[u8]) -> Reply {
    let from = format!("sender{n}@client.test");
    let r = client.cmd(&format!("MAIL FROM:<{from}>")).await;
    if r.code != 250 {
        return r;
    }
    assert_eq!(client.cmd("RCPT TO:<support@desk.test>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client.send_raw(&common::dot_stuff(raw)).await;
    client.send_raw(b".\r\n").await;
    client.reply().await
}

/// Every message whose Message-ID a 250 named is stored, in the ticket the
/// reply named.
async fn assert_all_stored(server: &TestServer, accepted: &[(String, i64)]) {
    for (id, ticket) in accepted {
        let messages = server
            .store()
            .ticket_messages(*ticket)
            .await
            .expect("ticket messages");
        assert!(
            messages.iter().any(|m| &m.message_id == id),
            "{id} was acknowledged in ticket #{ticket} but is not stored"
        );
    }
}

/// Fills a small disk over SMTP: every 250 is stored, the refusals are
/// `452 4.3.1`, the server stays up, and mail is taken again once space is
/// freed, without a restart. First with the floor off (SQLite itself runs
/// into the wall), then with the floor on (postdesk stops first).
#[tokio::test]
async fn a_full_disk_refuses_with_452_loses_nothing_and_recovers_without_restart() {
    let Some(disk) = SmallDisk::mount(32) else {
        return;
    };
    let data_dir = disk.path.join("data");
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.data_dir = data_dir.clone();
        c.storage.min_free_mb = 0;
        c.search.similar = false;
    })
    .await;
    common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
    // Freed later: room for the index to catch up with what it missed.
    let ballast = disk.ballast(12);
    // Eight senders at once, as on a real server: messages share group
    // commits, and a failing commit takes a whole batch with it.
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..8 {
        let addr = server.smtp();
        senders.spawn(async move {
            let mut client = SmtpClient::connect(addr).await.0;
            ehlo(&mut client).await;
            let (mut accepted, mut refusals) = (Vec::new(), Vec::new());
            for n in (sender * 100)..(sender * 100 + 100) {
                let (id, raw) = customer_message(n, 96);
                let r = offer(&mut client, n, &raw).await;
                if r.code == 250 {
                    accepted.push((id, common::ticket_of(&r)));
                } else {
                    refusals.push(r);
                    if refusals.len() >= 3 {
                        break;
                    }
                }
            }
            (accepted, refusals)
        });
    }
    let (mut accepted, mut refusals) = (Vec::new(), Vec::new());
    while let Some(result) = senders.join_next().await {
        let (a, r) = result.expect("sender");
        accepted.extend(a);
        refusals.extend(r);
    }
    let mut client = SmtpClient::connect(server.smtp()).await.0;
    ehlo(&mut client).await;
    for r in &refusals {
        expect(r, 452, "4.3.1");
    }
    assert_all_stored(&server, &accepted).await;
    let full = server.store().counts().await.expect("counts");

    // IMAP with the disk full: folders do not "vanish", an APPEND is
    // refused as a storage outage, the session goes on.
    let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
    let r = alice.cmd("SELECT Queues/support").await;
    assert!(!r.tagged.contains("NONEXISTENT"), "{}", r.all_text());
    let r = alice
        .append("Drafts", "", b"Subject: draft\r\n\r\nhello\r\n")
        .await;
    assert_eq!(r.status(), "NO", "{}", r.all_text());
    assert!(r.tagged.contains("[UNAVAILABLE]"), "{}", r.all_text());
    assert!(alice.cmd("NOOP").await.ok());

    // Space returns: mail is taken again by the same server (after the
    // moment a failed write holds mail back).
    std::fs::remove_file(&ballast).expect("free space");
    let freed = Instant::now();
    let mut resumed = None;
    for n in 1000..1100 {
        let (id, raw) = customer_message(n, 1);
        let r = offer(&mut client, n, &raw).await;
        if r.code == 250 {
            resumed = Some((id, common::ticket_of(&r), n));
            break;
        }
        expect(&r, 452, "4.3.1");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (resumed_id, resumed_ticket, resumed_n) =
        resumed.expect("mail accepted again after space was freed");
    eprintln!(
        "disk full: {} accepted, recovery {:?} after space was freed",
        accepted.len(),
        freed.elapsed()
    );
    accepted.push((resumed_id, resumed_ticket));
    assert_all_stored(&server, &accepted).await;
    let after = server.store().counts().await.expect("counts");
    assert_eq!(after.1, full.1 + 1, "one more ticket");

    // The search index, whose writer the full disk killed, follows again:
    // every stored message becomes searchable without a restart.
    common::wait_until_indexed(&server, 20).await;
    let index = server.app().search.get().expect("index").clone();
    let hits = index
        .search(&format!("\"Disk test {resumed_n}\""), 50, false, None)
        .expect("search");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].ticket, resumed_ticket);
    assert_eq!(
        index.search("disk", 500, false, None).map(|h| h.len()).ok(),
        Some(accepted.len()),
        "every stored message is searchable"
    );

    // All of it survives a restart.
    let mut server = server;
    server.restart().await;
    assert_all_stored(&server, &accepted).await;
    server.stop().await;
}

#[tokio::test]
async fn below_the_free_space_floor_new_mail_is_refused_before_the_disk_is_full() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let data_dir = disk.path.join("data");
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.data_dir = data_dir.clone();
        c.storage.min_free_mb = 12;
        c.search.similar = false;
    })
    .await;
    let ballast = disk.ballast(4);
    let mut client = SmtpClient::connect(server.smtp()).await.0;
    ehlo(&mut client).await;
    let mut accepted = Vec::new();
    let mut refusal = None;
    for n in 0..400 {
        let (id, raw) = customer_message(n, 96);
        let r = offer(&mut client, n, &raw).await;
        if r.code == 250 {
            accepted.push((id, common::ticket_of(&r)));
        } else {
            refusal = Some(r);
            break;
        }
    }
    let refusal = refusal.expect("refused before 400 messages");
    // Refused at MAIL FROM, before the client sent the message.
    expect(&refusal, 452, "4.3.1");
    assert!(!accepted.is_empty());
    assert_all_stored(&server, &accepted).await;
    let status = server.app().disk.status();
    assert!(status.refusal.is_some(), "{status:?}");
    assert!(status.available.is_some_and(|free| free < 12 * 1024 * 1024));
    // The session goes on.
    assert_eq!(client.cmd("NOOP").await.code, 250);

    // Space returns: taken again within a moment (the free space is read
    // at most once a second).
    std::fs::remove_file(&ballast).expect("free space");
    let mut resumed = None;
    for n in 1000..1040 {
        let (id, raw) = customer_message(n, 1);
        let r = offer(&mut client, n, &raw).await;
        if r.code == 250 {
            resumed = Some((id, common::ticket_of(&r)));
            break;
        }
        expect(&r, 452, "4.3.1");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    accepted.push(resumed.expect("mail accepted again above the floor"));
    assert!(server.app().disk.status().refusal.is_none());
    assert_all_stored(&server, &accepted).await;
    server.stop().await;
}

backend_test!(
    /// A write that makes the database roll the whole transaction back by
    /// itself (as SQLite does on SQLITE_FULL or an I/O error, and as a
    /// killed PostgreSQL connection does) must not leave the writer inside a
    /// transaction: the next message is committed for real, and is there
    /// after a restart.
    async fn a_transaction_the_database_aborted_does_not_poison_the_writer(backend: Backend) {
        let mut server = TestServer::start(&backend).await;
        let store = server.store().clone();
        match backend {
            Backend::Sqlite => store
                .execute_unchecked(
                    "CREATE TRIGGER abort_me BEFORE INSERT ON messages \
                     WHEN NEW.subject = 'abort-me' \
                     BEGIN SELECT RAISE(ROLLBACK, 'injected rollback'); END;",
                )
                .await
                .expect("trigger"),
            Backend::Postgres(_) => {
                // The connection dies mid-transaction, as with
                // pg_terminate_backend from an administrator.
                store
                    .execute_unchecked(
                        "CREATE FUNCTION abort_me() RETURNS trigger LANGUAGE plpgsql AS $$ \
                         BEGIN IF NEW.subject = 'abort-me' THEN \
                         PERFORM pg_terminate_backend(pg_backend_pid()); END IF; \
                         RETURN NEW; END $$;",
                    )
                    .await
                    .expect("function");
                store
                    .execute_unchecked(
                        "CREATE TRIGGER abort_me BEFORE INSERT ON messages \
                         FOR EACH ROW EXECUTE FUNCTION abort_me();",
                    )
                    .await
                    .expect("trigger");
            }
        }
        // Each round: one message the database aborts, sent together with
        // five good ones (so that on SQLite they share a group commit).
        let mut accepted = Vec::new();
        for round in 0..4 {
            let mut senders = tokio::task::JoinSet::new();
            for n in 0..6 {
                let addr = server.smtp();
                senders.spawn(async move {
                    let (subject, id) = if n == 0 {
                        ("abort-me", format!("abort-{round}@client.test"))
                    } else {
                        ("fine", format!("fine-{round}-{n}@client.test"))
                    };
                    let from = format!("sender{n}@client.test");
                    let raw = message(&from, "support@desk.test", subject, &id, "", "Hello.");
                    let r = common::deliver(addr, &from, &["support@desk.test"], &raw).await;
                    (n, id, r)
                });
            }
            while let Some(result) = senders.join_next().await {
                let (n, id, r) = result.expect("sender");
                if n == 0 {
                    assert_eq!(r.code, 451, "{r:?}");
                } else {
                    assert_eq!(r.code, 250, "{r:?}");
                    accepted.push((id, common::ticket_of(&r)));
                }
            }
        }
        assert_all_stored(&server, &accepted).await;
        server.restart().await;
        assert_all_stored(&server, &accepted).await;
        server.stop().await;
    }
);

/// Reads what the server sends until it closes the connection (or 15 s
/// pass); the text, and whether it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), false)
}

/// Sends `byte` every 150 ms (each read alone well in time) until the
/// server closes the connection or 6 s pass; what it said, and after how
/// long it closed.
async fn trickle(stream: &mut TcpStream, byte: u8) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    let mut seen = Vec::new();
    for _ in 0..40 {
        if stream.write_all(&[byte]).await.is_err() {
            return (
                String::from_utf8_lossy(&seen).into_owned(),
                Some(started.elapsed()),
            );
        }
        match tokio::time::timeout(Duration::from_millis(150), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&seen).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), None)
}

/// Writes `total` bytes of one endless line in chunks, reading what the
/// server answers meanwhile; stops when the server closes. Returns the
/// answer and how much was written before the server shut the door.
async fn send_endless_line(stream: TcpStream, total: usize) -> (String, usize) {
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0;
        while written < total {
            match tokio::time::timeout(Duration::from_secs(10), writer.write_all(&chunk)).await {
                Ok(Ok(())) => written += chunk.len(),
                _ => break,
            }
        }
        written
    });
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    let written = writing.await.unwrap_or(0);
    (String::from_utf8_lossy(&seen).into_owned(), written)
}

backend_test!(
    /// One address cannot take every SMTP slot (a sender trickling NOOPs
    /// keeps each of its connections alive): past its allowance it gets
    /// 421, and others are served.
    async fn one_address_cannot_take_every_smtp_slot(backend: Backend) {
        let server =
            TestServer::start_with(&backend, |c| c.smtp.max_connections_per_address = 3).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            let (client, greeting) = SmtpClient::connect(server.smtp()).await;
            assert_eq!(greeting.code, 220, "{greeting:?}");
            held.push(client);
        }
        let (_, refused) = SmtpClient::connect(server.smtp()).await;
        expect(&refused, 421, "4.7.0");
        // The held ones still work; one leaving gives its slot back.
        assert_eq!(held[0].cmd("NOOP").await.code, 250);
        let mut first = held.remove(0);
        assert_eq!(first.cmd("QUIT").await.code, 221);
        drop(first);
        let mut served = None;
        for _ in 0..50 {
            let (client, greeting) = SmtpClient::connect(server.smtp()).await;
            if greeting.code == 220 {
                served = Some(client);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served.is_some(), "a slot came back");
        server.stop().await;
    }
);

/// DATA with a small message from many@client.test; the final reply.
async fn data(client: &mut SmtpClient<TcpStream>, subject: &str, id: &str) -> Reply {
    assert_eq!(client.cmd("DATA").await.code, 354);
    let raw = message(
        "many@client.test",
        "support@desk.test",
        subject,
        id,
        "",
        "Hello.",
    );
    client.send_raw(&common::dot_stuff(&raw)).await;
    client.send_raw(b".\r\n").await;
    client.reply().await
}

backend_test!(
    /// RFC 5321 §4.5.3.1.10: a client sends the message to the recipients
    /// that were accepted. Refused recipients are answers, not errors: the
    /// session does not end in 421 and the message is delivered.
    async fn refused_recipients_do_not_end_the_session(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = SmtpClient::connect(server.smtp()).await.0;
        ehlo(&mut client).await;
        assert_eq!(client.cmd("MAIL FROM:<many@client.test>").await.code, 250);
        assert_eq!(client.cmd("RCPT TO:<support@desk.test>").await.code, 250);
        for n in 0..25 {
            let r = client.cmd(&format!("RCPT TO:<nobody{n}@desk.test>")).await;
            expect(&r, 550, "5.1.1");
        }
        let r = data(
            &mut client,
            "To one queue and 25 strangers",
            "many-1@client.test",
        )
        .await;
        let ticket = common::ticket_of(&r);

        // 150 recipients: the first 100 (the limit) accepted, the rest 452.
        assert_eq!(client.cmd("MAIL FROM:<many@client.test>").await.code, 250);
        for n in 0..150 {
            let r = client
                .cmd(&format!("RCPT TO:<support+{ticket}-{n}@desk.test>"))
                .await;
            if n < 100 {
                assert_eq!(r.code, 250, "{n}: {r:?}");
            } else {
                expect(&r, 452, "4.5.3");
            }
        }
        let r = data(&mut client, "To 150 addresses", "many-2@client.test").await;
        assert_eq!(r.code, 250, "{r:?}");
        assert_eq!(client.cmd("QUIT").await.code, 221);
        server.stop().await;
    }
);

backend_test!(
    async fn bdat_sizes_beyond_reach_are_refused_without_swallowing_commands(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.smtp.max_message_size = 2000).await;
        let mut client = SmtpClient::connect(server.smtp()).await.0;
        ehlo(&mut client).await;
        assert_eq!(client.cmd("MAIL FROM:<big@client.test>").await.code, 250);
        assert_eq!(client.cmd("RCPT TO:<support@desk.test>").await.code, 250);
        let r = client.cmd("BDAT 99999999999999999999999").await;
        expect(&r, 501, "5.5.4");
        assert_eq!(client.cmd("NOOP").await.code, 250);
        assert_eq!(client.cmd("MAIL FROM:<big@client.test>").await.code, 250);
        assert_eq!(client.cmd("RCPT TO:<support@desk.test>").await.code, 250);
        // Larger than a message may be: read (RFC 3030 §2) and refused.
        client.send_raw(b"BDAT 5000 LAST\r\n").await;
        client.send_raw(&[b'x'; 5000]).await;
        expect(&client.reply().await, 552, "5.3.4");
        assert_eq!(client.cmd("NOOP").await.code, 250);
        assert_eq!(client.cmd("QUIT").await.code, 221);
        server.stop().await;
    }
);

backend_test!(
    /// RFC 6531 §3.4: an address in UTF-8 needs SMTPUTF8 on MAIL FROM.
    async fn utf8_addresses_need_smtputf8(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = SmtpClient::connect(server.smtp()).await.0;
        ehlo(&mut client).await;
        let r = client.cmd("MAIL FROM:<jösé@client.test>").await;
        expect(&r, 553, "5.6.7");
        assert_eq!(client.cmd("MAIL FROM:<jose@client.test>").await.code, 250);
        let r = client.cmd("RCPT TO:<süpport@desk.test>").await;
        expect(&r, 553, "5.6.7");
        assert_eq!(client.cmd("RSET").await.code, 250);
        let r = client.cmd("MAIL FROM:<jösé@client.test> SMTPUTF8").await;
        assert_eq!(r.code, 250, "{r:?}");
        assert_eq!(client.cmd("RCPT TO:<support@desk.test>").await.code, 250);
        server.stop().await;
    }
);

backend_test!(
    /// The login phase has one deadline as a whole: a stranger who sends a
    /// byte now and then is sent away when it is up, while an agent logs in.
    async fn a_trickling_stranger_is_sent_away_at_the_login_deadline(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.imap.login_timeout = 2).await;
        common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let (client, greeting) = ImapClient::connect(server.imap()).await;
        assert!(greeting.text.starts_with("* OK"));
        drop(client);
        let mut stream = TcpStream::connect(server.imap()).await.expect("connect");
        stream.write_all(b"a1 LOGIN ").await.expect("write");
        let (seen, closed_after) = trickle(&mut stream, b'x').await;
        let closed_after = closed_after.expect("the server closed the connection");
        assert!(seen.contains("* BYE"), "{seen}");
        assert!(
            closed_after < Duration::from_secs(5),
            "closed after {closed_after:?}"
        );
        // An agent is served all along.
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(alice.cmd("NOOP").await.ok());
        server.stop().await;
    }
);

backend_test!(
    /// A command line without a literal longer than `max_line_length` gets
    /// `BAD [TOOBIG]` and the connection ends, before login and after; the
    /// server reads no more of it (the writer is cut off long before 40 MB).
    async fn an_endless_imap_line_is_refused_as_toobig(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.imap.max_line_length = 4096).await;
        common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let total = 40 * 1024 * 1024;

        let (client, _) = ImapClient::connect(server.imap()).await;
        drop(client);
        let mut stream = TcpStream::connect(server.imap()).await.expect("connect");
        let mut greeting = [0u8; 512];
        let _ = stream.read(&mut greeting).await;
        stream.write_all(b"a1 LOGIN ").await.expect("write");
        let (answer, written) = send_endless_line(stream, total).await;
        assert!(answer.contains("a1 BAD [TOOBIG]"), "{answer}");
        assert!(answer.contains("* BYE [TOOBIG]"), "{answer}");
        assert!(written < total, "the server read all {written} bytes");

        // Logged in, the same.
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        alice.send_raw(b"a2 SEARCH SUBJECT ").await;
        let stream = alice.into_stream();
        let (answer, written) = send_endless_line(stream, total).await;
        assert!(answer.contains("a2 BAD [TOOBIG]"), "{answer}");
        assert!(written < total, "the server read all {written} bytes");

        // Others are served.
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(alice.cmd("NOOP").await.ok());
        server.stop().await;
    }
);

backend_test!(
    /// Connections not logged in have a small cap of their own, and one
    /// address has an allowance: strangers never lock agents out.
    async fn strangers_cannot_take_the_agents_imap_slots(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| {
            c.imap.max_unauthenticated = 3;
            c.imap.max_connections_per_address = 6;
        })
        .await;
        common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let mut strangers = Vec::new();
        for _ in 0..3 {
            let (client, greeting) = ImapClient::connect(server.imap()).await;
            assert!(greeting.text.starts_with("* OK"), "{greeting:?}");
            strangers.push(client);
        }
        let mut fourth = TcpStream::connect(server.imap()).await.expect("connect");
        let (text, closed) = read_until_closed(&mut fourth).await;
        assert!(text.starts_with("* BYE [UNAVAILABLE]"), "{text}");
        assert!(closed);
        // One of them logs in: its stranger's slot is free again.
        let r = strangers[0].cmd("LOGIN alice@desk.test secret").await;
        assert!(r.ok(), "{}", r.all_text());
        let mut agents = vec![strangers.remove(0)];
        let (client, greeting) = ImapClient::connect(server.imap()).await;
        assert!(greeting.text.starts_with("* OK"), "{greeting:?}");
        let mut client = client;
        assert!(client.cmd("LOGIN alice@desk.test secret").await.ok());
        agents.push(client);
        // The address's allowance (6): 2 strangers + 2 agents + 2 more.
        let mut more = Vec::new();
        for _ in 0..2 {
            let (mut client, greeting) = ImapClient::connect(server.imap()).await;
            assert!(greeting.text.starts_with("* OK"), "{greeting:?}");
            assert!(client.cmd("LOGIN alice@desk.test secret").await.ok());
            more.push(client);
        }
        let mut seventh = TcpStream::connect(server.imap()).await.expect("connect");
        let (text, _) = read_until_closed(&mut seventh).await;
        assert!(text.starts_with("* BYE [UNAVAILABLE]"), "{text}");
        server.stop().await;
    }
);

backend_test!(
    /// A logged-in client has `command_timeout` for a command once it has
    /// started one, however it trickles it.
    async fn a_logged_in_command_has_a_deadline(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.imap.command_timeout = 2).await;
        common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let mut stream = alice.into_stream();
        stream.write_all(b"a2 NOO").await.expect("write");
        let (text, closed_after) = trickle(&mut stream, b'O').await;
        assert!(text.contains("* BYE"), "{text}");
        assert!(closed_after.is_some_and(|after| after < Duration::from_secs(5)));
        server.stop().await;
    }
);

backend_test!(
    /// Where PLAIN is refused (no TLS, not an allowed loopback), the client
    /// is told so before it is asked for its credentials.
    async fn authenticate_plain_is_refused_before_credentials_are_sent(backend: Backend) {
        let server =
            TestServer::start_with(&backend, |c| c.imap.plaintext_auth_on_loopback = false).await;
        let (mut client, _) = ImapClient::connect(server.imap()).await;
        let r = client.cmd("AUTHENTICATE PLAIN").await;
        assert_eq!(r.status(), "NO", "{}", r.all_text());
        assert!(r.tagged.contains("[PRIVACYREQUIRED]"), "{}", r.all_text());
        assert!(r.untagged.is_empty(), "no continuation: {}", r.all_text());
        server.stop().await;
    }
);

backend_test!(
    /// RFC 3501 §5.1.3: new mailbox names are modified UTF-7.
    async fn mailbox_names_must_be_modified_utf7(backend: Backend) {
        let server = TestServer::start(&backend).await;
        common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        for bad in ["\"Acme & Co\"", "\"&AGE-\"", "\"&U/BTFw-\""] {
            let r = alice.cmd(&format!("CREATE {bad}")).await;
            assert_eq!(r.status(), "BAD", "{bad}: {}", r.all_text());
        }
        let r = alice.cmd("CREATE \"Entw&APw-rfe\"").await;
        assert!(r.ok(), "{}", r.all_text());
        let r = alice.cmd("RENAME \"Entw&APw-rfe\" \"Bad & name\"").await;
        assert_eq!(r.status(), "BAD", "{}", r.all_text());
        let r = alice.cmd("RENAME \"Entw&APw-rfe\" \"Acme &- Co\"").await;
        assert!(r.ok(), "{}", r.all_text());
        server.stop().await;
    }
);

backend_test!(
    /// Large literals share one budget across connections (twice the
    /// largest literal): while two 40 MB APPENDs are under way a third
    /// waits for its share, and is refused with `NO [LIMIT]` when its
    /// command deadline passes first; the session goes on.
    async fn large_appends_share_a_memory_budget(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| {
            c.imap.max_literal_size = 40 * 1024 * 1024;
            c.imap.command_timeout = 2;
        })
        .await;
        common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let size = 40 * 1024 * 1024;
        let mut holders = Vec::new();
        for _ in 0..2 {
            let mut client = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
            client
                .send_raw(format!("h1 APPEND Drafts {{{size}}}\r\n").as_bytes())
                .await;
            let line = client.read_line().await;
            assert!(line.text.starts_with("+"), "{line:?}");
            holders.push(client);
        }
        let mut third = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let started = Instant::now();
        third
            .send_raw(format!("t1 APPEND Drafts {{{size}}}\r\n").as_bytes())
            .await;
        let r = third.read_until_tagged("t1").await;
        assert!(r.tagged.starts_with("t1 NO [LIMIT]"), "{}", r.all_text());
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(third.cmd("NOOP").await.ok(), "the session goes on");
        // One holder gives up its share (disconnects): room again.
        drop(holders.pop());
        let mut room = false;
        for _ in 0..20 {
            third.send_raw(b"t2 APPEND Drafts {5}\r\n").await;
            let line = third.read_line().await;
            assert!(line.text.starts_with("+"), "small literals need no budget");
            third.send_raw(b"hello\r\n").await;
            assert!(third.read_until_tagged("t2").await.ok());
            third
                .send_raw(format!("t3 APPEND Drafts {{{size}}}\r\n").as_bytes())
                .await;
            let line = third.read_line().await;
            if line.text.starts_with("+") {
                room = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(room, "a share came back");
        server.stop().await;
    }
);
