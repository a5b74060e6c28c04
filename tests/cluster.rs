//! Two `postdesk serve` processes on one PostgreSQL database (DESIGN.md
//! §7): an IDLE client of one node hears of what happens on the other
//! (mail delivered there, a move made there, and after the connection
//! that listens for other nodes' changes was cut), outbound mail leaves
//! exactly once, an escalation fires once, and each node's own search
//! index finds mail delivered to the other. PostgreSQL only (with
//! `POSTDESK_TEST_POSTGRES`).

use crate::common::imap::{ImapClient, Line};
use crate::common::sink::Sink;
use crate::common::{deliver, drop_postgres_database, fresh_postgres_database, message, ticket_of};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const RULES: &str = r#"
[sla.fast]
first_response = "4s"

[[rule]]
name = "Everything is fast"
when = 'true'
sla = "fast"

[[escalation]]
name = "Late"
when = "first_response.breached"
tags = ["late"]
notify = ["lead@example.test"]
"#;

/// How long a node may take to tell an IDLE client of another node's
/// change: the product says within a second; the margin is for a loaded
/// test machine.
const PUSH_WITHIN: Duration = Duration::from_secs(3);

struct Node {
    child: Child,
    config: PathBuf,
    smtp: SocketAddr,
    imap: SocketAddr,
}

impl Node {
    async fn start(dir: &Path, name: &str, database_url: &str, relay: SocketAddr) -> Node {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).expect("data dir");
        let rules = dir.join("rules.toml");
        let config = data.join("postdesk.toml");
        std::fs::write(
            &config,
            format!(
                "hostname = \"desk.test\"\ndata_dir = \"{data}\"\ndatabase_url = \"{database_url}\"\n\
                 rules = \"{rules}\"\n\
                 [smtp]\nlisten = \"127.0.0.1:0\"\n\
                 [submission]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
                 [imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\nplaintext_auth_on_loopback = true\n\
                 [outbound]\nrelay = \"smtp://{relay}\"\n\
                 [[queue]]\nname = \"support\"\naddress = \"support@desk.test\"\n",
                data = data.display(),
                rules = rules.display(),
            ),
        )
        .expect("write config");
        let log = std::fs::File::create(data.join("server.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_postdesk"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start postdesk serve");
        // The welcome names the ports the kernel gave.
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut smtp, mut imap) = (None, None);
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let address = |prefix: &str| {
                    line.split_once(prefix).and_then(|(_, rest)| {
                        rest.split([' ', ','])
                            .next()
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                    })
                };
                if line.contains("incoming mail") {
                    smtp = address("smtp://");
                }
                if line.contains("agents (IMAP)") {
                    imap = address("imap://");
                }
                if smtp.is_some() && imap.is_some() {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .unwrap_or_else(|_| panic!("{name} did not start; see {}", data.display()));
        // Nothing more is printed; the rest of stdout is not read.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node {
            child,
            config,
            smtp: smtp.unwrap_or_else(|| panic!("{name}: no SMTP address")),
            imap: imap.unwrap_or_else(|| panic!("{name}: no IMAP address")),
        }
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    async fn search(&self, words: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_postdesk"))
            .arg("--config")
            .arg(&self.config)
            .args(["search", words])
            .output()
            .await
            .expect("postdesk search");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Reads an IDLE client's lines until one ends with `suffix`, within
/// `within` of `since`; returns how long after `since` it came.
async fn heard(
    client: &mut ImapClient,
    suffix: &str,
    since: Instant,
    within: Duration,
    what: &str,
) -> Duration {
    let mut seen: Vec<String> = Vec::new();
    let found = tokio::time::timeout(within.saturating_sub(since.elapsed()), async {
        loop {
            let line: Line = client.read_line().await;
            let done = line.text.ends_with(suffix);
            seen.push(line.text);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{what}: no '{suffix}' within {within:?} (heard {seen:?})"
    );
    since.elapsed()
}

async fn terminate_listeners(database_url: &str) -> u64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect");
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("terminate");
    cut.len() as u64
}

#[tokio::test]
async fn two_nodes_on_one_database() {
    let Some(base) = crate::common::postgres_url() else {
        return;
    };
    crate::common::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.toml"), RULES).expect("rules");
    let database_url = fresh_postgres_database(&base).await;
    let sink = Sink::start(Vec::new(), None).await;
    let one = Node::start(dir.path(), "one", &database_url, sink.addr).await;
    let two = Node::start(dir.path(), "two", &database_url, sink.addr).await;

    // An agent, added by a third process (as the CLI would).
    let admin = postdesk::store::Store::connect(&database_url)
        .await
        .expect("store");
    let queues = admin.queues().await.expect("queues");
    let hash = postdesk::passwords::hash("secret").expect("hash");
    admin
        .add_agent(
            "alice@desk.test",
            "Alice",
            &hash,
            postdesk::domain::permission::AgentRole::Agent,
            &queues,
        )
        .await
        .expect("agent");

    let mut watcher = ImapClient::login(one.imap, "alice@desk.test", "secret").await;
    assert!(watcher.cmd("SELECT Unassigned").await.ok());
    watcher.send_raw(b"w1 IDLE\r\n").await;
    assert!(watcher.read_line().await.text.starts_with('+'));

    // Mail delivered to node two: node one's IDLE client hears of it.
    let first = message(
        "carol@customer.example",
        "support@desk.test",
        "Quokka fjord printer jam",
        "cluster-1@customer.example",
        "",
        "The quokkafjord printer jams.",
    );
    let since = Instant::now();
    let ticket = ticket_of(
        &deliver(
            two.smtp,
            "carol@customer.example",
            &["support@desk.test"],
            &first,
        )
        .await,
    );
    let took = heard(
        &mut watcher,
        "EXISTS",
        since,
        PUSH_WITHIN,
        "mail delivered to node two",
    )
    .await;
    eprintln!("node one's IDLE heard of mail delivered to node two {took:?} after it was sent");

    // A move made over IMAP on node two: node one's client sees it leave.
    let mut mover = ImapClient::login(two.imap, "alice@desk.test", "secret").await;
    assert!(mover.cmd("SELECT Unassigned").await.ok());
    let since = Instant::now();
    let moved = mover.cmd("UID MOVE 1:* INBOX").await;
    assert!(moved.ok(), "{}", moved.all_text());
    let took = heard(
        &mut watcher,
        "EXPUNGE",
        since,
        PUSH_WITHIN,
        "a move on node two",
    )
    .await;
    eprintln!("node one's IDLE heard of a move on node two {took:?} after it was asked for");

    // The connections listening for other nodes' changes are cut: each
    // node reconnects and its sessions catch up (nothing is missed).
    assert!(terminate_listeners(&database_url).await >= 2);
    let second = message(
        "dave@customer.example",
        "support@desk.test",
        "Wombat ledger mismatch",
        "cluster-2@customer.example",
        "",
        "The wombatledger totals differ.",
    );
    let since = Instant::now();
    let second_ticket = ticket_of(
        &deliver(
            two.smtp,
            "dave@customer.example",
            &["support@desk.test"],
            &second,
        )
        .await,
    );
    let took = heard(
        &mut watcher,
        "EXISTS",
        since,
        PUSH_WITHIN + Duration::from_secs(5),
        "mail delivered to node two after the listeners were cut",
    )
    .await;
    eprintln!(
        "node one's IDLE heard of mail delivered to node two after the listeners were cut after {took:?}"
    );
    watcher.send_raw(b"DONE\r\n").await;
    assert!(watcher.read_until_tagged("w1").await.ok());

    // Each ticket's escalation fires once, with one notice, though both
    // nodes run a scheduler.
    for number in [ticket, second_ticket] {
        crate::common::eventually("the escalation fired", || async {
            !admin
                .escalations_fired(number)
                .await
                .expect("fired")
                .is_empty()
        })
        .await;
    }
    // Both schedulers have had their chances by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for number in [ticket, second_ticket] {
        let events = admin.ticket_events(number).await.expect("events");
        let escalated = events.iter().filter(|e| e.kind == "escalated").count();
        assert_eq!(escalated, 1, "ticket #{number}: {events:?}");
    }

    // Every outbound mail (acknowledgements, escalation notices) reaches
    // the relay exactly once, though both nodes deliver.
    let outbound = admin.outbound(None).await.expect("outbound");
    let notices = outbound
        .iter()
        .filter(|o| o.purpose == "escalation")
        .count();
    assert_eq!(notices, 2, "{outbound:?}");
    crate::common::eventually("everything was delivered", || async {
        sink.accepted().len() >= outbound.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ids: Vec<String> = sink
        .accepted()
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data).into_owned();
            text.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let delivered = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(delivered, outbound.len(), "{outbound:?}");
    assert_eq!(
        ids.len(),
        delivered,
        "a message was delivered twice: {ids:?}"
    );

    // Each node's own index finds mail delivered to the other one.
    for (node, words, number) in [
        (&one, "quokkafjord", ticket),
        (&two, "quokkafjord", ticket),
        (&one, "wombatledger", second_ticket),
    ] {
        let wanted = format!("#{number}");
        let mut found = String::new();
        for _ in 0..100 {
            found = node.search(words).await;
            if found.contains(&wanted) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(found.contains(&wanted), "search {words}: {found}");
    }

    one.stop().await;
    two.stop().await;
    admin.close().await;
    drop_postgres_database(&base, &database_url).await;
}
