//! kill -9 under load: a `postdesk serve` child process is killed while
//! several SMTP sessions send to it, a few times over; afterwards every
//! message that got a 250 is stored exactly once, nothing is stored twice,
//! and the search index and the IMAP view agree with the store.

use crate::common::imap::ImapClient;
use crate::common::{self, Backend, backend_test};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A word only these messages have, to find them in the index.
const MARKER: &str = "zyzzyvacrash";

struct Serving {
    child: Child,
    smtp: SocketAddr,
    imap: SocketAddr,
}

/// Starts `postdesk serve` and reads where it listens from its welcome.
fn serve(config: &Path) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postdesk"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut smtp, mut imap) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("welcome");
        if let Some(rest) = line.split("smtp://").nth(1) {
            smtp = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
        if let Some(rest) = line.split("imap://").nth(1) {
            imap = rest
                .split(|c: char| c.is_whitespace() || c == ' ' || c == '(')
                .next()
                .and_then(|a| a.parse().ok());
        }
        if smtp.is_some() && imap.is_some() {
            break;
        }
    }
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Serving {
        child,
        smtp: smtp.expect("smtp address in the welcome"),
        imap: imap.expect("imap address in the welcome"),
    }
}

/// One message over a session; Ok(true) when it got 250. Any error: the
/// server went away (or refused), the message was not acknowledged.
async fn send_one(
    stream: &mut BufReader<TcpStream>,
    id: &str,
) -> Result<bool, Box<dyn std::error::Error>> {
    let body = format!(
        "From: crash@client.test\r\nTo: support@desk.test\r\nSubject: Crash test {id}\r\n\
         Message-ID: <{id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n\
         {MARKER} {}\r\n.\r\n",
        "Lorem ipsum dolor sit amet. ".repeat(40)
    );
    stream
        .get_mut()
        .write_all(b"MAIL FROM:<crash@client.test>\r\nRCPT TO:<support@desk.test>\r\nDATA\r\n")
        .await?;
    for _ in 0..3 {
        let reply = read_reply(stream).await?;
        if !reply.starts_with('2') && !reply.starts_with('3') {
            // Refused before DATA: reset and report not acknowledged.
            stream.get_mut().write_all(b"RSET\r\n").await?;
            read_reply(stream).await?;
            return Ok(false);
        }
    }
    stream.get_mut().write_all(body.as_bytes()).await?;
    Ok(read_reply(stream).await?.starts_with("250"))
}

async fn read_reply(
    stream: &mut BufReader<TcpStream>,
) -> Result<String, Box<dyn std::error::Error>> {
    loop {
        let mut line = String::new();
        let n =
            tokio::time::timeout(Duration::from_secs(20), stream.read_line(&mut line)).await??;
        if n == 0 {
            return Err("closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line);
        }
    }
}

/// Sends until `stop`; the Message-IDs that got 250.
async fn sender(addr: SocketAddr, name: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut stream = BufReader::new(stream);
        if read_reply(&mut stream).await.is_err()
            || stream
                .get_mut()
                .write_all(b"EHLO client.test\r\n")
                .await
                .is_err()
            || read_reply(&mut stream).await.is_err()
        {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let id = format!("crash-{name}-{n}@client.test");
            match send_one(&mut stream, &id).await {
                Ok(true) => acknowledged.push(id),
                Ok(false) => {}
                Err(_) => break,
            }
        }
    }
    acknowledged
}

/// How often each Message-ID of these messages is stored.
async fn stored_ids(backend: &Backend, url: &str) -> HashMap<String, i64> {
    let sql = "SELECT message_id, COUNT(*) FROM messages \
               WHERE message_id LIKE 'crash-%' GROUP BY message_id";
    let rows: Vec<(String, i64)> = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.expect("query");
            pool.close().await;
            rows
        }
        Backend::Postgres(_) => {
            let pool = sqlx::PgPool::connect(url).await.expect("postgres");
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.expect("query");
            pool.close().await;
            rows
        }
    };
    rows.into_iter().collect()
}

backend_test!(
    async fn kill_9_under_load_loses_no_acknowledged_mail_and_stores_none_twice(backend: Backend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = match &backend {
            Backend::Sqlite => format!("sqlite://{}/postdesk.db", dir.path().display()),
            Backend::Postgres(base) => common::fresh_postgres_database(base).await,
        };
        let config = dir.path().join("postdesk.toml");
        std::fs::write(
            &config,
            format!(
                "hostname = \"desk.test\"\ndata_dir = \"{}\"\ndatabase_url = \"{url}\"\n\
                 [smtp]\nlisten = \"127.0.0.1:0\"\nverify = \"off\"\n\
                 [imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n\
                 [submission]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
                 [search]\nsimilar = false\n[storage]\nmin_free_mb = 1\n",
                dir.path().display()
            ),
        )
        .expect("config");

        let mut acknowledged: Vec<String> = Vec::new();
        let started = Instant::now();
        for round in 0..4u64 {
            let mut serving = serve(&config);
            let stop = Arc::new(AtomicBool::new(false));
            let senders: Vec<_> = (0..8)
                .map(|s| tokio::spawn(sender(serving.smtp, format!("{round}-{s}"), stop.clone())))
                .collect();
            // Killed at a different moment of its work each round.
            tokio::time::sleep(Duration::from_millis(1200 + 400 * round)).await;
            serving.child.kill().expect("kill -9");
            let _ = serving.child.wait();
            stop.store(true, Ordering::Relaxed);
            for task in senders {
                acknowledged.extend(task.await.expect("sender"));
            }
        }
        assert!(
            acknowledged.len() > 50,
            "{} acknowledged",
            acknowledged.len()
        );

        // Back up once more: an agent, the index catching up, the view.
        let mut add = Command::new(env!("CARGO_BIN_EXE_postdesk"))
            .arg("--config")
            .arg(&config)
            .args([
                "agent",
                "add",
                "watcher@desk.test",
                "--admin",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agent add");
        add.stdin
            .take()
            .expect("stdin")
            .write_all(b"secret-password\n")
            .expect("password");
        let added = add.wait_with_output().expect("agent add");
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let mut serving = serve(&config);

        let stored = stored_ids(&backend, &url).await;
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .collect();
        let twice: Vec<(&String, &i64)> = stored.iter().filter(|(_, n)| **n > 1).collect();
        eprintln!(
            "{}: kill -9 ×4: {} acknowledged, {} stored, {} missing, {} stored twice ({:?})",
            backend.name(),
            acknowledged.len(),
            stored.len(),
            missing.len(),
            twice.len(),
            started.elapsed()
        );
        assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
        assert!(twice.is_empty(), "stored twice: {twice:?}");

        // The index has every stored message, and says so right after the
        // restart (no false lag, no re-reading).
        let store = postdesk::store::Store::connect_read_only(&url)
            .await
            .expect("store");
        let index = postdesk::search::SearchIndex::open(&postdesk::search::SearchIndex::directory(
            dir.path(),
        ))
        .expect("index");
        let mut lag = (-1, None);
        for _ in 0..200 {
            index.reload().expect("reload");
            lag = postdesk::search::indexer::lag(&index, &store)
                .await
                .expect("lag");
            if lag.0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(lag.0, 0, "the index lags: {lag:?}");
        let hits = index.search(MARKER, 100_000, false, None).expect("search");
        assert_eq!(hits.len(), stored.len(), "every stored message is found");

        // The IMAP view shows each of them once.
        let mut imap =
            ImapClient::login(serving.imap, "watcher@desk.test", "secret-password").await;
        let r = imap.cmd("SELECT Queues/support").await;
        assert!(r.ok(), "{}", r.all_text());
        let r = imap.cmd(&format!("SEARCH BODY {MARKER}")).await;
        let found = common::imap::search_numbers(&r);
        assert_eq!(found.len(), stored.len(), "IMAP finds every stored message");

        serving.child.kill().expect("kill");
        let _ = serving.child.wait();
        store.close().await;
        if let Backend::Postgres(base) = &backend {
            common::drop_postgres_database(base, &url).await;
        }
    }
);
