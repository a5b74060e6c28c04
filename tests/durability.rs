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
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let data_dir = disk.path.join("data");
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.data_dir = data_dir.clone();
        c.storage.min_free_mb = 0;
        c.search.similar = false;
    })
    .await;
    let ballast = disk.ballast(4);
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
    let newest = server
        .store()
        .newest_message()
        .await
        .expect("newest")
        .map(|(id, _)| id)
        .unwrap_or(0);
    let index = server.app().search.get().expect("index").clone();
    common::eventually("the index catches up after the disk was full", || {
        let index = index.clone();
        async move { index.indexed_through() >= newest }
    })
    .await;
    let hits = index
        .search(&format!("\"Disk test {resumed_n}\""), 50, false)
        .expect("search");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].ticket, resumed_ticket);
    assert_eq!(
        index.search("disk", 500, false).map(|h| h.len()).ok(),
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
