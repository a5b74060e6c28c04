//! The `postdesk` binary as an admin uses it, against a running server's
//! configuration and database: queues, agents, tickets, export, outbound,
//! import, and configuration errors with file and line.

use crate::common;

use crate::common::{Backend, TestServer, backend_test, deliver, message, ticket_of};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Writes the server's configuration as a file the CLI can use.
pub(crate) fn config_file(server: &TestServer) -> PathBuf {
    let path = server.dir.path().join("cli.toml");
    let mut text = format!(
        "hostname = \"desk.test\"\ndata_dir = \"{}\"\n",
        server.dir.path().display()
    );
    if let Some(url) = &server.config.database_url {
        text.push_str(&format!("database_url = \"{url}\"\n"));
    }
    std::fs::write(&path, text).expect("write config");
    path
}

pub(crate) fn postdesk(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postdesk"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postdesk");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

pub(crate) fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a command that must succeed and parses its `--json` output.
fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(postdesk(config, args, None))).expect("json")
}

async fn run_all(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let config = config_file(&server);

    // Queues: the configured ones, and a new one.
    ok(postdesk(
        &config,
        &["queue", "add", "sales", "Sales@Desk.test"],
        None,
    ));
    let queues = ok(postdesk(&config, &["queue", "list"], None));
    assert!(
        queues.contains("sales") && queues.contains("sales@desk.test"),
        "{queues}"
    );
    // The running server sees the new queue without a restart.
    let body = message(
        "eve@example.com",
        "sales@desk.test",
        "Quote please",
        "c0@example.com",
        "",
        "hi",
    );
    let sales_ticket = ticket_of(
        &deliver(
            server.smtp(),
            "eve@example.com",
            &["sales@desk.test"],
            &body,
        )
        .await,
    );

    // Agents: the bootstrap admin exists; add one with a password on stdin.
    let added = ok(postdesk(
        &config,
        &[
            "agent",
            "add",
            "Bob@Desk.test",
            "--queue",
            "billing",
            "--password-stdin",
        ],
        Some("s3cret-pass\n"),
    ));
    assert!(added.contains("agent bob@desk.test added"), "{added}");
    assert!(!added.contains("password:"));
    let generated = ok(postdesk(
        &config,
        &["agent", "add", "carol@desk.test", "--admin"],
        None,
    ));
    assert!(generated.contains("password: "), "{generated}");
    let agents = json(&config, &["agent", "list", "--json"]);
    let bob = agents
        .as_array()
        .expect("array")
        .iter()
        .find(|a| a["email"] == "bob@desk.test")
        .expect("bob");
    assert_eq!(bob["queues"], serde_json::json!(["billing"]));
    assert!(
        agents
            .as_array()
            .expect("array")
            .iter()
            .any(|a| a["email"] == "admin@desk.test" && a["role"] == "admin")
    );
    let stored = server.store().agents().await.expect("agents");
    let hash = &stored
        .iter()
        .find(|a| a.email == "bob@desk.test")
        .expect("bob")
        .password_hash;
    assert!(postdesk::passwords::verify("s3cret-pass", hash));
    ok(postdesk(
        &config,
        &["agent", "passwd", "bob@desk.test", "--password-stdin"],
        Some("another-pass\n"),
    ));
    let stored = server.store().agents().await.expect("agents");
    let hash = &stored
        .iter()
        .find(|a| a.email == "bob@desk.test")
        .expect("bob")
        .password_hash;
    assert!(postdesk::passwords::verify("another-pass", hash));
    let duplicate = postdesk(
        &config,
        &["agent", "add", "bob@desk.test", "--password-stdin"],
        Some("s3cret-pass\n"),
    );
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));

    // Tickets.
    let body = message(
        "Alice <alice@example.com>",
        "support@desk.test",
        "Printer on fire",
        "c1@example.com",
        "",
        "From the start\r\n.dot line",
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
    let reply = message(
        "alice@example.com",
        "support@desk.test",
        "Re: Printer on fire",
        "c2@example.com",
        "In-Reply-To: <c1@example.com>\r\n",
        "still",
    );
    deliver(
        server.smtp(),
        "alice@example.com",
        &["support@desk.test"],
        &reply,
    )
    .await;

    let table = ok(postdesk(&config, &["ticket", "list"], None));
    assert!(
        table.contains(&format!("#{ticket}")) && table.contains("Printer on fire"),
        "{table}"
    );
    let filtered = json(&config, &["ticket", "list", "--queue", "sales", "--json"]);
    assert_eq!(filtered.as_array().map(|a| a.len()), Some(1));
    assert_eq!(filtered[0]["number"], sales_ticket);
    let none = ok(postdesk(
        &config,
        &["ticket", "list", "--status", "closed"],
        None,
    ));
    assert_eq!(none, "no tickets\n");
    let bad = postdesk(&config, &["ticket", "list", "--status", "later"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown status 'later'"));

    let shown = json(
        &config,
        &["ticket", "show", &format!("#{ticket}"), "--json"],
    );
    assert_eq!(shown["subject"], "Printer on fire");
    assert_eq!(shown["customer_name"], "Alice");
    assert_eq!(shown["status"], "new");
    let kinds: Vec<&str> = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "customer").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"auto_reply"));
    let text = ok(postdesk(
        &config,
        &["ticket", "show", &ticket.to_string()],
        None,
    ));
    assert!(
        text.contains("history:") && text.contains("created"),
        "{text}"
    );
    let missing = postdesk(&config, &["ticket", "show", "9999"], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no ticket #9999"));

    // Export: an mbox whose messages are the stored bytes.
    let exported = postdesk(&config, &["ticket", "export", &ticket.to_string()], None);
    assert!(exported.status.success());
    let mbox_path = server.dir.path().join("export.mbox");
    std::fs::write(&mbox_path, &exported.stdout).expect("write mbox");
    let messages: Vec<Vec<u8>> = mail_parser::mailbox::mbox::MessageIterator::new(
        std::io::BufReader::new(std::fs::File::open(&mbox_path).expect("open")),
    )
    .map(|m| m.expect("mbox message").unwrap_contents())
    .collect();
    assert_eq!(messages.len(), 3);
    let first = server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages")[0]
        .id;
    let original = server.store().raw_message(first).await.expect("raw");
    // mboxo/mboxrd readers end each message with the separator's newline.
    assert!(
        messages
            .iter()
            .any(|m| m.strip_suffix(b"\n").unwrap_or(m) == original.as_slice())
    );

    // Outbound: without a relay the acknowledgements wait.
    let outbound = ok(postdesk(&config, &["outbound", "list"], None));
    assert!(
        outbound.contains("no [outbound] relay is configured") && outbound.contains("queued"),
        "{outbound}"
    );
    let outbound = json(
        &config,
        &["outbound", "list", "--status", "queued", "--json"],
    );
    assert_eq!(outbound.as_array().map(|a| a.len()), Some(2));
    let first = outbound[0]["id"].as_i64().expect("id").to_string();
    let cancelled = ok(postdesk(&config, &["outbound", "cancel", &first], None));
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    let listed = json(
        &config,
        &["outbound", "list", "--status", "cancelled", "--json"],
    );
    assert_eq!(listed.as_array().map(|a| a.len()), Some(1));
    let again = postdesk(&config, &["outbound", "cancel", &first], None);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is cancelled"),
        "{again:?}"
    );
    let retried = ok(postdesk(&config, &["outbound", "retry", &first], None));
    assert!(retried.contains("queued again"), "{retried}");
    let outbound = json(
        &config,
        &["outbound", "list", "--status", "queued", "--json"],
    );
    assert_eq!(outbound.as_array().map(|a| a.len()), Some(2));
    let missing = postdesk(&config, &["outbound", "retry", "999999"], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no outbound #999999"));

    // Import into a named queue, twice: the second time stores nothing.
    let imported = json(
        &config,
        &[
            "import",
            "mbox",
            mbox_path.to_str().expect("path"),
            "--queue",
            "billing",
            "--json",
        ],
    );
    assert_eq!(imported["read"], 3);
    assert_eq!(
        imported["stored"], 0,
        "already stored messages are recognised: {imported}"
    );

    let wrong_queue = postdesk(
        &config,
        &[
            "import",
            "mbox",
            mbox_path.to_str().expect("path"),
            "--queue",
            "nope",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&wrong_queue.stderr).contains("no queue named 'nope'"));
    // Mail filed in no ticket is listed, and its bytes come back exactly.
    let looped = message(
        "support@desk.test",
        "support@desk.test",
        "Looped",
        &server.app().own_ids.mint(1),
        "",
        "loop",
    );
    deliver(
        server.smtp(),
        "support@desk.test",
        &["support@desk.test"],
        &looped,
    )
    .await;
    let unfiled = json(&config, &["message", "unfiled", "--json"]);
    assert_eq!(unfiled.as_array().map(|a| a.len()), Some(1), "{unfiled}");
    let id = unfiled[0]["id"].as_i64().expect("id").to_string();
    let raw = postdesk(&config, &["message", "raw", &id], None);
    assert!(raw.status.success());
    assert_eq!(raw.stdout, looped);
    assert!(ok(postdesk(&config, &["message", "unfiled"], None)).contains("own mail"));

    ok(postdesk(&config, &["migrate"], None));
    server.stop().await;
}

backend_test!(
    async fn the_cli_manages_a_running_server(backend: Backend) {
        run_all(backend).await;
    }
);

#[test]
fn configuration_mistakes_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("postdesk.toml");
    std::fs::write(
        &path,
        "hostname = \"x\"\n[smtp]\nlisten = \"127.0.0.1:99999\"\n",
    )
    .expect("write");
    let output = postdesk(&path, &["serve"], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:3:10", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("invalid socket address"), "{stderr}");

    std::fs::write(
        &path,
        "[[queue]]\nname = \"support\"\nadress = \"s@x.test\"\n",
    )
    .expect("write");
    let stderr =
        String::from_utf8_lossy(&postdesk(&path, &["queue", "list"], None).stderr).to_string();
    assert!(
        stderr.contains(":3:1") && stderr.contains("unknown field `adress`"),
        "{stderr}"
    );

    let missing = dir.path().join("absent.toml");
    let stderr =
        String::from_utf8_lossy(&postdesk(&missing, &["ticket", "list"], None).stderr).to_string();
    assert!(stderr.contains("absent.toml: cannot read"), "{stderr}");
}

backend_test!(
    /// Commands that only look at the database neither migrate it nor write
    /// to it: queues configured differently in postdesk.toml are not created
    /// or changed by them (only `migrate` and a server start do that).
    async fn read_only_commands_leave_the_database_unchanged(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mail = message(
            "kim@example.com",
            "support@desk.test",
            "Printer jammed",
            "ro-1@example.com",
            "",
            "Paper everywhere.",
        );
        let ticket = ticket_of(
            &deliver(
                server.smtp(),
                "kim@example.com",
                &["support@desk.test"],
                &mail,
            )
            .await,
        )
        .to_string();
        let config = config_file(&server);
        let mut text = std::fs::read_to_string(&config).expect("config");
        text.push_str(
            "[[queue]]\nname = \"support\"\naddress = \"help@desk.test\"\n\
             [[queue]]\nname = \"sales\"\naddress = \"sales@desk.test\"\n",
        );
        std::fs::write(&config, text).expect("config");
        let rules = server.dir.path().join("rules.toml");
        std::fs::write(&rules, RULES).expect("rules");
        let eml = server.dir.path().join("test.eml");
        std::fs::write(&eml, &mail).expect("eml");
        let queues_before = server.store().queues().await.expect("queues");
        let tickets_before = json(&config, &["ticket", "list", "--json"]);

        let rules = rules.to_str().expect("path");
        let eml = eml.to_str().expect("path");
        for args in [
            &["ticket", "list"][..],
            &["ticket", "list", "--overdue", "--json"],
            &["ticket", "show", &ticket],
            &["ticket", "export", &ticket],
            &["queue", "list"],
            &["agent", "list"],
            &["outbound", "list"],
            &["message", "unfiled"],
            &["sla", "report"],
            &["rules", "check", rules],
            &["rules", "test", eml, "--rules", rules],
            &["search", "printer"],
            &["search", "--status"],
            &["reindex"],
        ] {
            ok(postdesk_async(&config, args).await);
        }

        assert_eq!(
            server.store().queues().await.expect("queues"),
            queues_before,
            "{}: no read-only command touched the queues",
            backend.name()
        );
        let listed = json(&config, &["queue", "list", "--json"]);
        assert_eq!(
            listed
                .as_array()
                .map(|queues| queues.iter().any(|q| q["address"] == "help@desk.test")),
            Some(false),
            "{listed}"
        );
        assert_eq!(json(&config, &["ticket", "list", "--json"]), tickets_before);

        // `migrate` is the command that applies the configuration.
        ok(postdesk_async(&config, &["migrate"]).await);
        let support = server
            .store()
            .queue_by_name("support")
            .await
            .expect("support");
        assert_eq!(support.address, "help@desk.test");
        server.stop().await;
    }
);

backend_test!(
    /// A read-only command on a database that does not exist yet creates and
    /// migrates nothing, and says what to do; so does one on a database whose
    /// schema is behind. Once migrated, the read-only store refuses writes.
    async fn read_only_commands_do_not_create_or_migrate_a_database(backend: Backend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let config = dir.path().join("postdesk.toml");
        let mut text = format!(
            "hostname = \"desk.test\"\ndata_dir = \"{}\"\n",
            data_dir.display()
        );
        let postgres = match &backend {
            Backend::Sqlite => None,
            Backend::Postgres(base) => Some(common::fresh_postgres_database(base).await),
        };
        if let Some(url) = &postgres {
            text.push_str(&format!("database_url = \"{url}\"\n"));
        }
        std::fs::write(&config, text).expect("config");

        for args in [
            &["ticket", "list"][..],
            &["queue", "list"],
            &["agent", "list"],
            &["outbound", "list"],
            &["sla", "report"],
            &["search", "--status"],
        ] {
            let out = postdesk_async(&config, args).await;
            assert!(!out.status.success(), "{args:?} on {}", backend.name());
            let stderr = stderr(&out);
            assert!(
                stderr.contains("is not initialized: run `postdesk migrate` or start the server"),
                "{args:?} on {}: {stderr}",
                backend.name()
            );
        }
        match &postgres {
            None => assert!(
                !data_dir.exists(),
                "neither the data directory nor the database was created"
            ),
            Some(url) => assert_eq!(
                postgres_tables(url).await,
                Vec::<String>::new(),
                "no table was created"
            ),
        }

        ok(postdesk_async(&config, &["migrate"]).await);
        assert_eq!(
            ok(postdesk_async(&config, &["ticket", "list"]).await),
            "no tickets\n"
        );
        let url = postgres
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("postdesk.db").display()));
        let read_only = postdesk::store::Store::connect_read_only(&url)
            .await
            .expect("a migrated database opens read-only");
        assert!(
            read_only
                .execute_unchecked("CREATE TABLE probe (x INTEGER)")
                .await
                .is_err(),
            "{}: a read-only store refuses writes",
            backend.name()
        );
        read_only.close().await;

        // A schema that is behind this postdesk's is not migrated either:
        // forget the newest migration, as if an older postdesk had migrated.
        let store = postdesk::store::Store::connect(&url).await.expect("store");
        store
            .execute_unchecked(
                "DELETE FROM _sqlx_migrations \
                 WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
            )
            .await
            .expect("forget the newest migration");
        store.close().await;
        let out = postdesk_async(&config, &["ticket", "list"]).await;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("and this postdesk needs version")
                && stderr(&out).contains("run `postdesk migrate`"),
            "{}",
            stderr(&out)
        );
    }
);

/// The tables of a PostgreSQL database's public schema.
async fn postgres_tables(url: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.expect("postgres");
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut db)
    .await
    .expect("tables")
}

/// Runs the CLI without blocking the runtime the test's server runs on
/// (a rebuild asked of the running server needs that server to run).
async fn postdesk_async(config: &Path, args: &[&str]) -> Output {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        postdesk(&config, &args, None)
    })
    .await
    .expect("cli task")
}

backend_test!(
    async fn search_and_reindex_with_and_without_a_running_server(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let config = config_file(&server);
        for (i, (subject, body)) in [
            ("VPN drops", "The VPN connection is reset every 30 minutes."),
            ("Printer", "The printer on floor 3 is out of toner."),
            ("Invoice 2026-113", "Please resend the invoice as PDF."),
        ]
        .into_iter()
        .enumerate()
        {
            let mail = message(
                "kim@example.com",
                "support@desk.test",
                subject,
                &format!("<search-{i}@example.com>"),
                "",
                body,
            );
            assert_eq!(
                deliver(
                    server.smtp(),
                    "kim@example.com",
                    &["support@desk.test"],
                    &mail
                )
                .await
                .code,
                250
            );
        }
        // The running server keeps the index: wait (bounded) for its lag to end.
        let mut status = serde_json::Value::Null;
        for _ in 0..100 {
            let out = postdesk_async(&config, &["search", "--status", "--json"]).await;
            status = serde_json::from_slice(&out.stdout).expect("status json");
            if status["lag_messages"] == 0 && status["documents"].as_u64() >= Some(3) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status["kept_by_server"], true, "{status}");
        assert_eq!(status["lag_messages"], 0, "{status}");

        let found: serde_json::Value = serde_json::from_slice(
            &postdesk_async(&config, &["search", "--json", "vpn", "reset"])
                .await
                .stdout,
        )
        .expect("search json");
        let found = found.as_array().expect("array");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["subject"], "VPN drops");
        assert_eq!(found[0]["status"], "new");
        assert!(
            found[0]["snippet"]
                .as_str()
                .expect("snippet")
                .contains("VPN")
        );
        let text = ok(postdesk_async(&config, &["search", "toner"]).await);
        assert!(
            text.contains("Printer") && text.contains("*toner*"),
            "{text}"
        );
        assert!(
            ok(postdesk_async(&config, &["search", "zeppelin"]).await)
                .contains("no matching tickets")
        );

        let typo = postdesk_async(&config, &["search", "status:clsoed"]).await;
        assert!(!typo.status.success());
        let stderr = String::from_utf8_lossy(&typo.stderr);
        assert!(stderr.contains("unknown status 'clsoed'"), "{stderr}");

        // Rebuilt by the running server, which the command follows.
        let rebuilt: serde_json::Value =
            serde_json::from_slice(&postdesk_async(&config, &["reindex", "--json"]).await.stdout)
                .expect("reindex json");
        assert_eq!(rebuilt["by_server"], true, "{rebuilt}");
        assert!(rebuilt["documents"].as_u64() >= Some(3), "{rebuilt}");
        assert_eq!(
            json(&config, &["search", "--json", "invoice"])
                .as_array()
                .map(Vec::len),
            Some(1)
        );

        // Without a server the command does the work itself.
        let mut server = server;
        server.running.take().expect("running").shutdown().await;
        let offline: serde_json::Value =
            serde_json::from_slice(&postdesk_async(&config, &["reindex", "--json"]).await.stdout)
                .expect("reindex json");
        assert_eq!(offline["by_server"], false, "{offline}");
        assert_eq!(
            json(&config, &["search", "--json", "toner"])
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        let status = json(&config, &["search", "--status", "--json"]);
        assert_eq!(status["kept_by_server"], false, "{status}");
        assert_eq!(status["documents"], 3, "{status}");
    }
);

const RULES: &str = r#"default_sla = "standard"

[calendar.office]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-15:00" }

[sla.standard]
calendar = "office"
first_response = "8h"
resolution = "5d"

[sla.urgent]
first_response = "1h"

[[rule]]
name = "Outages are urgent"
when = 'subject.matches("(?i)\\b(outage|down)\\b")'
priority = "urgent"
sla = "urgent"
tags = ["outage"]
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

backend_test!(
    async fn rules_check_test_and_sla_report(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let config = config_file(&server);
        let dir = server.dir.path();
        std::fs::write(dir.join("rules.toml"), RULES).expect("rules");
        let mut text = std::fs::read_to_string(&config).expect("config");
        text.insert_str(0, "rules = \"rules.toml\"\n");
        std::fs::write(&config, text).expect("config");

        // check: the configured file, and a broken one named on the line.
        let out = ok(postdesk(&config, &["rules", "check"], None));
        assert!(
            out.contains("ok: 2 calendars, 2 SLA policies, 1 rules, 0 escalations"),
            "{out}"
        );
        std::fs::write(
            dir.join("broken.toml"),
            RULES.replace("\"5d\"", "\"5 days\""),
        )
        .expect("broken");
        let broken = dir.join("broken.toml");
        let failed = postdesk(
            &config,
            &["rules", "check", broken.to_str().expect("path")],
            None,
        );
        assert!(!failed.status.success());
        assert!(
            stderr(&failed).contains("broken.toml:10:"),
            "{}",
            stderr(&failed)
        );
        assert!(
            stderr(&failed).contains("resolution"),
            "{}",
            stderr(&failed)
        );

        // test: which rules match, what the deadlines would be; nothing changes.
        let eml = dir.join("outage.eml");
        std::fs::write(
            &eml,
            message(
                "ann@example.org",
                "support@desk.test",
                "Mail server down",
                "t1@example.org",
                "",
                "Help",
            ),
        )
        .expect("eml");
        let before = json(&config, &["ticket", "list", "--json"]);
        let out = ok(postdesk(
            &config,
            &["rules", "test", eml.to_str().expect("path")],
            None,
        ));
        assert!(
            out.contains("matched      Outages are urgent: set priority urgent"),
            "{out}"
        );
        assert!(out.contains("priority     urgent"), "{out}");
        assert!(out.contains("first response"), "{out}");
        let report = json(
            &config,
            &["rules", "test", eml.to_str().expect("path"), "--json"],
        );
        assert_eq!(report["rules"][0]["verdict"], "matched");
        assert_eq!(report["sla"], "urgent");
        assert_eq!(report["deadlines"][0][0], "first_response");
        assert_eq!(
            json(&config, &["ticket", "list", "--json"]),
            before,
            "rules test changes nothing"
        );

        // The server has no rules configured; a ticket filed now has no SLA,
        // and `rules test --ticket` reads it as a follow-up.
        let reply = deliver(
            server.smtp(),
            "ann@example.org",
            &["support@desk.test"],
            &message(
                "ann@example.org",
                "support@desk.test",
                "Printer",
                "t2@example.org",
                "",
                "jams",
            ),
        )
        .await;
        let number = ticket_of(&reply).to_string();
        let report = json(
            &config,
            &[
                "rules",
                "test",
                eml.to_str().expect("path"),
                "--ticket",
                &number,
                "--json",
            ],
        );
        assert_eq!(
            report["ticket"].as_i64().map(|n| n.to_string()),
            Some(number.clone())
        );
        assert_eq!(report["auto_reply"], serde_json::Value::Null);

        let overdue = json(&config, &["ticket", "list", "--overdue", "--json"]);
        assert_eq!(overdue, serde_json::json!([]));
        let sla = json(&config, &["sla", "report", "--json"]);
        let support = sla
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["queue"] == "support"))
            .expect("support row")
            .clone();
        assert_eq!(support["tickets"], 1);
        assert_eq!(support["breached"], 0);
        let table = ok(postdesk(&config, &["sla", "report"], None));
        assert!(table.contains("MEDIAN FIRST RESPONSE"), "{table}");

        // reload with no server running for this data directory.
        let failed = postdesk(&config, &["rules", "reload"], None);
        assert!(!failed.status.success());
        assert!(
            stderr(&failed).contains("no running server"),
            "{}",
            stderr(&failed)
        );
        server.stop().await;
    }
);

/// `postdesk serve` as a process: `rules reload` checks the file, then the
/// server reloads it on SIGHUP; a broken file never reaches it, and a
/// SIGHUP with a broken file keeps the old rules.
#[test]
fn rules_reload_reaches_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.toml"), RULES).expect("rules");
    let config = dir.path().join("postdesk.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"desk.test\"\ndata_dir = \"{}\"\nrules = \"rules.toml\"\n\
             [smtp]\nlisten = \"127.0.0.1:0\"\nverify = \"off\"\n[imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n\
             [submission]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_postdesk"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    // The server's log, read as it is written.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                log.lock().expect("log").push_str(&(line + "\n"));
            }
        })
    };
    let wait_for_log = |needle: &str| {
        for _ in 0..200 {
            if log.lock().expect("log").contains(needle) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "the server never logged '{needle}': {}",
            log.lock().expect("log")
        );
    };
    let pid_file = dir.path().join("postdesk.pid");
    for _ in 0..600 {
        if pid_file.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(&pid_file).expect("the server wrote its pid");
    assert_eq!(pid.trim(), child.id().to_string());

    let out = ok(postdesk(&config, &["rules", "reload"], None));
    assert!(out.contains("asked to reload it"), "{out}");
    wait_for_log("rules reloaded");
    // A broken file is refused before the server hears of it.
    std::fs::write(
        dir.path().join("rules.toml"),
        RULES.replace("Europe/Berlin", "Mars/Olympus"),
    )
    .expect("broken");
    let failed = postdesk(&config, &["rules", "reload"], None);
    assert!(!failed.status.success());
    assert!(
        stderr(&failed).contains("rules.toml:4:"),
        "{}",
        stderr(&failed)
    );
    // A plain SIGHUP with the broken file: refused by the server too.
    let hup = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .expect("kill");
    assert!(hup.success());
    wait_for_log("rules not reloaded");
    assert_eq!(
        log.lock()
            .expect("log")
            .matches("rules not reloaded")
            .count(),
        1,
        "only the plain SIGHUP reached the server with the broken file"
    );

    let term = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("kill");
    assert!(term.success());
    assert!(child.wait().expect("wait").success());
    let _ = reader.join();
    assert!(
        !pid_file.exists(),
        "the pid file is removed on a clean stop"
    );
}

backend_test!(
    /// `postdesk status`: backend, queues, outbound backlog, index lag, disk
    /// against the floor, database size; and the floor shows as a refusal.
    async fn status_shows_what_an_administrator_checks_first(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let body = message(
            "alice@example.com",
            "support@desk.test",
            "Status",
            "status-1@example.com",
            "",
            "Hello.",
        );
        ticket_of(
            &deliver(
                server.smtp(),
                "alice@example.com",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        let config = config_file(&server);
        let status = json(&config, &["status", "--json"]);
        assert_eq!(status["backend"], backend.name());
        let queues = status["queues"].to_string();
        assert!(queues.contains("support@desk.test"), "{queues}");
        // No relay in tests: the acknowledgement waits.
        assert_eq!(status["outbound"]["queued"], 1, "{status}");
        assert!(status["database_bytes"].as_i64().unwrap_or(0) > 0);
        assert_eq!(status["disk_floor_bytes"], 256 * 1024 * 1024);
        assert!(status["disk_free_bytes"].as_u64().is_some());
        assert!(status["refusing_mail"].is_null(), "{status}");
        let text = ok(postdesk(&config, &["status"], None));
        assert!(text.contains("disk free"), "{text}");

        // A floor above what is free: the refusal is named.
        let mut file = std::fs::read_to_string(&config).expect("config");
        file.push_str("[storage]\nmin_free_mb = 100000000\n");
        std::fs::write(&config, file).expect("config");
        let text = ok(postdesk(&config, &["status"], None));
        assert!(text.contains("REFUSING NEW MAIL"), "{text}");
        server.stop().await;
    }
);

/// Private by default: under umask 022, a first start creates the data
/// directory 0700 and the database, its WAL, the index and the TLS key
/// 0600; a configuration file others can read is named in a warning.
#[cfg(unix)]
#[test]
fn a_first_start_keeps_the_data_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("postdesk.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"desk.test\"\ndata_dir = \"{}\"\n\
             [smtp]\nlisten = \"127.0.0.1:0\"\nverify = \"off\"\n[imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n\
             [submission]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            data.display()
        ),
    )
    .expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" --config \"$1\" serve")
        .arg(env!("CARGO_BIN_EXE_postdesk"))
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let pid_file = data.join("postdesk.pid");
    for _ in 0..600 {
        if pid_file.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(pid_file.exists(), "the server started");
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    for file in [
        "postdesk.db",
        "postdesk.db-wal",
        "postdesk.db-shm",
        "tls/key.pem",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let index = postdesk::search::SearchIndex::directory(&data);
    assert_eq!(mode(&index), 0o700);
    for entry in std::fs::read_dir(&index).expect("index").flatten() {
        assert_eq!(mode(&entry.path()) & 0o077, 0, "{}", entry.path().display());
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let output = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("readable by other users") && log.contains("postdesk.toml"),
        "{log}"
    );
}

backend_test!(
    /// Every administrative change made with the CLI is in the audit log:
    /// who ran it, what, on what, and the command (never a password).
    async fn administrative_changes_are_audited(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let config = config_file(&server);
        ok(postdesk(
            &config,
            &["queue", "add", "hr", "hr@desk.test"],
            None,
        ));
        ok(postdesk(
            &config,
            &[
                "agent",
                "add",
                "erin@desk.test",
                "--queue",
                "hr",
                "--password-stdin",
            ],
            Some("a-secret-password\n"),
        ));
        ok(postdesk(
            &config,
            &["agent", "disable", "erin@desk.test"],
            None,
        ));
        ok(postdesk(
            &config,
            &["agent", "enable", "erin@desk.test"],
            None,
        ));
        let log = json(&config, &["audit", "--json"]);
        let entries = log.as_array().cloned().unwrap_or_default();
        let actions: Vec<&str> = entries
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert_eq!(
            actions,
            ["queue add", "agent add", "agent disable", "agent enable"],
            "{log}"
        );
        assert_eq!(entries[1]["target"], "erin@desk.test role agent queues hr");
        assert!(
            entries[2]["command"]
                .as_str()
                .is_some_and(|c| c.contains("agent disable erin@desk.test"))
        );
        assert!(
            entries
                .iter()
                .all(|e| e["actor"].as_str().is_some_and(|a| !a.is_empty()))
        );
        assert!(!log.to_string().contains("a-secret-password"));
        let text = ok(postdesk(&config, &["audit"], None));
        assert!(text.contains("agent disable"), "{text}");
        server.stop().await;
    }
);

backend_test!(
    /// The command line run `--as` an agent does what the agent may, and
    /// no more: their queues' tickets only (a refusal names no queue), no
    /// administration, no reports but a lead's, reassignment a lead's.
    /// `agent set` changes role and queues and ends the agent's open
    /// sessions; `agent remove` hands their tickets back and keeps their
    /// name on what they did.
    async fn agents_roles_and_removal_on_the_command_line(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let config = config_file(&server);
        for (email, role) in [("bob@desk.test", "agent"), ("lina@desk.test", "lead")] {
            ok(postdesk(
                &config,
                &[
                    "agent",
                    "add",
                    email,
                    "--role",
                    role,
                    "--queue",
                    "support",
                    "--password-stdin",
                ],
                Some("secret-password\n"),
            ));
        }
        let deliver_to = |queue: &'static str, id: &'static str| {
            let body = message("carol@example.com", queue, "Help", id, "", "Please.");
            let smtp = server.smtp();
            async move { ticket_of(&deliver(smtp, "carol@example.com", &[queue], &body).await) }
        };
        let support = deliver_to("support@desk.test", "cli-r1@example.com").await;
        let billing = deliver_to("billing@desk.test", "cli-r2@example.com").await;
        let as_bob = |args: &[&str]| {
            let mut all = vec!["--as", "bob@desk.test"];
            all.extend_from_slice(args);
            postdesk(&config, &all, None)
        };
        let refused = |output: Output| {
            assert!(!output.status.success(), "{output:?}");
            String::from_utf8_lossy(&output.stderr).to_string()
        };

        // Bob sees his queue's tickets only; another queue's ticket is
        // "not in your queues", its queue unnamed.
        let listed = json(
            &config,
            &["--as", "bob@desk.test", "ticket", "list", "--json"],
        );
        let numbers: Vec<i64> = listed
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|t| t["number"].as_i64())
            .collect();
        assert_eq!(numbers, [support]);
        let why = refused(as_bob(&["ticket", "show", &billing.to_string()]));
        assert!(
            why.contains(&format!("ticket #{billing} is not in your queues")),
            "{why}"
        );
        assert!(!why.contains("billing"), "{why}");
        assert!(ok(as_bob(&["ticket", "show", &support.to_string()])).contains("Help"));
        // No administration, no reports.
        let why = refused(as_bob(&["agent", "add", "x@desk.test"]));
        assert!(why.contains("only an admin may manage agents"), "{why}");
        let why = refused(as_bob(&["sla", "report"]));
        assert!(why.contains("only a lead or an admin"), "{why}");
        ok(postdesk(
            &config,
            &["--as", "lina@desk.test", "sla", "report"],
            None,
        ));

        // Bob takes the ticket; Lina (lead) reassigns it; Bob cannot take it back.
        ok(as_bob(&[
            "ticket",
            "set",
            &support.to_string(),
            "--owner",
            "bob@desk.test",
        ]));
        ok(postdesk(
            &config,
            &[
                "--as",
                "lina@desk.test",
                "ticket",
                "set",
                &support.to_string(),
                "--owner",
                "lina@desk.test",
            ],
            None,
        ));
        let why = refused(as_bob(&[
            "ticket",
            "set",
            &support.to_string(),
            "--owner",
            "bob@desk.test",
        ]));
        assert!(why.contains("belongs to a colleague"), "{why}");
        let why = refused(as_bob(&[
            "ticket",
            "set",
            &billing.to_string(),
            "--status",
            "closed",
        ]));
        assert!(why.contains("not in your queues"), "{why}");
        let shown = json(&config, &["ticket", "show", &support.to_string(), "--json"]);
        assert_eq!(shown["owner"], "lina@desk.test");
        assert!(
            shown["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["actor"] == "bob@desk.test"
                    && e["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("postdesk ticket set"))),
            "{shown}"
        );

        // agent set: a new role and queue end Bob's open session, and his
        // next login sees the new queue.
        let mut idle = crate::common::imap::ImapClient::login(
            server.imap(),
            "bob@desk.test",
            "secret-password",
        )
        .await;
        // The views he has seen so far are his support queue's.
        let before = idle.cmd("SELECT Queues").await;
        assert!(
            before.all_text().contains("1 EXISTS"),
            "{}",
            before.all_text()
        );
        assert!(idle.cmd("SELECT INBOX").await.ok());
        idle.send_raw(b"i1 IDLE\r\n").await;
        assert!(idle.read_line().await.text.starts_with('+'));
        let set = ok(postdesk(
            &config,
            &[
                "agent",
                "set",
                "bob@desk.test",
                "--role",
                "lead",
                "--queue",
                "billing",
            ],
            None,
        ));
        assert!(
            set.contains("role lead") && set.contains("queues billing"),
            "{set}"
        );
        let bye = idle.read_line().await;
        assert!(bye.text.starts_with("* BYE"), "{bye:?}");
        let mut bob = crate::common::imap::ImapClient::login(
            server.imap(),
            "bob@desk.test",
            "secret-password",
        )
        .await;
        // His views are worked out anew: the billing ticket, none of support's.
        assert!(bob.cmd("SELECT Queues").await.ok());
        let shown = bob
            .cmd("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (To)])")
            .await;
        let headers: Vec<String> = shown
            .fetches()
            .iter()
            .flat_map(|l| {
                l.literals
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).to_string())
            })
            .collect();
        assert_eq!(headers.len(), 1, "{}", shown.all_text());
        assert!(headers[0].contains("billing@desk.test"), "{headers:?}");
        let list = bob.cmd("LIST \"\" \"Queues/*\"").await.all_text();
        assert!(
            list.contains("Queues/billing") && !list.contains("Queues/support"),
            "{list}"
        );
        let agents = json(&config, &["agent", "list", "--json"]);
        let listed_bob = agents
            .as_array()
            .expect("array")
            .iter()
            .find(|a| a["email"] == "bob@desk.test")
            .cloned()
            .expect("bob");
        assert_eq!(listed_bob["role"], "lead");
        assert_eq!(listed_bob["queues"], serde_json::json!(["billing"]));

        // agent remove: Lina's open ticket goes back to Unassigned, she
        // cannot log in, her name stays in the history, her address stays hers.
        let removed = ok(postdesk(
            &config,
            &["agent", "remove", "lina@desk.test"],
            None,
        ));
        assert!(removed.contains(&format!("#{support}")), "{removed}");
        let shown = json(&config, &["ticket", "show", &support.to_string(), "--json"]);
        assert!(shown["owner"].is_null(), "{shown}");
        assert!(
            shown["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["actor"] == "lina@desk.test"),
            "{shown}"
        );
        let again = postdesk(&config, &["agent", "add", "lina@desk.test"], None);
        assert!(!again.status.success());
        let (mut login, _) = crate::common::imap::ImapClient::connect(server.imap()).await;
        let refused_login = login.cmd("LOGIN lina@desk.test secret-password").await;
        assert!(!refused_login.ok(), "{}", refused_login.all_text());
        let why = refused(postdesk(
            &config,
            &["--as", "lina@desk.test", "ticket", "list"],
            None,
        ));
        assert!(why.contains("no active agent"), "{why}");
        let listed = ok(postdesk(&config, &["agent", "list"], None));
        assert!(listed.contains("removed"), "{listed}");

        // All of it is in the audit log, bob's work named as his.
        let log = json(&config, &["audit", "--json"]);
        let actions: Vec<&str> = log
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert!(
            actions.contains(&"agent set") && actions.contains(&"agent remove"),
            "{log}"
        );
        let why = refused(as_bob(&["audit"]));
        assert!(why.contains("only an admin"), "{why}");
        server.stop().await;
    }
);

backend_test!(
    async fn trash_and_junk_show_in_ticket_list_show_and_json(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let config = config_file(&server);
        crate::common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let body = message(
            "eve@example.com",
            "support@desk.test",
            "Cheap pills",
            "tj1@example.com",
            "",
            "Buy now.",
        );
        let ticket = ticket_of(
            &deliver(
                server.smtp(),
                "eve@example.com",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        let mut imap =
            crate::common::imap::ImapClient::login(server.imap(), "alice@desk.test", "secret")
                .await;
        assert!(imap.cmd("SELECT Unassigned").await.ok());
        assert!(imap.cmd("MOVE 1 Trash").await.ok());

        let list = ok(postdesk(&config, &["ticket", "list"], None));
        assert!(list.contains("new, in Trash"), "{list}");
        let show = ok(postdesk(
            &config,
            &["ticket", "show", &ticket.to_string()],
            None,
        ));
        assert!(show.contains("status   new, in Trash"), "{show}");
        assert!(show.contains("marked   trash since "), "{show}");
        assert!(
            show.contains("moving it out of Trash restores it"),
            "{show}"
        );
        let listed = json(&config, &["ticket", "list", "--json"]);
        assert_eq!(listed[0]["disposition"], "trash", "{listed}");
        assert_eq!(listed[0]["status"], "new");
        assert!(listed[0]["disposition_at"].is_string(), "{listed}");

        assert!(imap.cmd("SELECT Trash").await.ok());
        assert!(imap.cmd("MOVE 1 Junk").await.ok());
        let shown = json(&config, &["ticket", "show", &ticket.to_string(), "--json"]);
        assert_eq!(shown["disposition"], "spam", "{shown}");
        let list = ok(postdesk(&config, &["ticket", "list"], None));
        assert!(list.contains("new, in Junk (spam)"), "{list}");

        // Restored: no standing any more.
        assert!(imap.cmd("SELECT Junk").await.ok());
        assert!(imap.cmd("MOVE 1 Unassigned").await.ok());
        let listed = json(&config, &["ticket", "list", "--json"]);
        assert!(listed[0]["disposition"].is_null(), "{listed}");
        let show = ok(postdesk(
            &config,
            &["ticket", "show", &ticket.to_string()],
            None,
        ));
        assert!(!show.contains("  marked   "), "{show}");
        server.stop().await;
    }
);
