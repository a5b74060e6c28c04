//! Real IMAP clients against a real postdesk: curl (list, fetch, search),
//! Python's imaplib (a move that closes a ticket), mbsync (every folder into
//! a Maildir, byte-compared with the store), and IMAPClient parsing every
//! corpus message's BODYSTRUCTURE into the MIME tree mail-parser sees.
//! `.ci/run` installs curl, isync and imapclient; elsewhere a missing tool
//! skips its part with a notice.

use crate::common;

use crate::common::imap::add_agent;
use crate::common::{Backend, TestServer, deliver, message, ticket_of};
use mail_parser::MimeHeaders;
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
        !common::in_ci(),
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

/// `curl -sS` as alice for a path under `base` (imap://host:port).
async fn curl(base: &str, path: &str) -> std::process::Output {
    let url = format!("{base}{path}");
    run(
        "curl",
        vec![
            "-sS".into(),
            "--user".into(),
            "alice@desk.test:secret".into(),
            url,
        ],
    )
    .await
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
    let list = curl(&base, "/").await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("\"Queues/support\""),
        "{text}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(text.contains("\\Trash"), "{text}");

    let fetch = curl(&base, "/Unassigned;UID=1").await;
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

    let search = curl(&base, "/Unassigned?TEXT%20tunnel").await;
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
    // A second run transfers nothing: no message and no flag changed
    // (every file keeps its name, which carries the flags).
    fn files_under(dir: &std::path::Path, into: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("dir").filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path, into);
            } else if !path.to_string_lossy().contains(".mbsync") {
                into.push(path.display().to_string());
            }
        }
    }
    let mut before = Vec::new();
    files_under(&local, &mut before);
    let again = run(
        "mbsync",
        vec!["-c".into(), rc.display().to_string(), "-a".into()],
    )
    .await;
    assert!(again.status.success());
    let mut after = Vec::new();
    files_under(&local, &mut after);
    before.sort();
    after.sort();
    assert_eq!(before, after, "{}", String::from_utf8_lossy(&again.stdout));
    server.stop().await;
}

/// Malformed corpus messages whose MIME tree mail-parser reads one way and
/// the IMAP server (following Dovecot's rules, so that clients see what
/// they see elsewhere) another: a header block after a whitespace-only
/// first line, boundaries that never close or are repeated, base64-encoded
/// message/rfc822, a Content-Type given twice, multiparts cut short. For
/// each of these, postdesk's BODYSTRUCTURE was byte-identical to Dovecot
/// 2.3.19's for the same bytes (side by side over all 197 corpus files on
/// 2026-11-23: 181 identical, the rest differing only on other malformed
/// files, see the issue 3 note). Every other message must match mail-parser.
const DOVECOT_READING: &[&str] = &[
    "flanker-enclosed-bad-encoding.eml",
    "flanker-enclosed-broken.eml",
    "flanker-iphone.eml",
    "mailparser-dovecot-malformed-000.eml",
    "mailparser-dovecot-malformed-007.eml",
    "mailparser-dovecot-malformed-013.eml",
    "mailparser-malformed-021.eml",
    "mailparser-thirdparty-015.eml",
    "mime4j-base64encoded-rfc822message-nested.eml",
    "mime4j-very-very-long-boundary.eml",
    "spamassassin-badmime2.eml",
];

fn corpus_files() -> Vec<std::path::PathBuf> {
    let dir = std::env::var_os("POSTDESK_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus").into())
        .join("mime");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

/// The MIME tree as mail-parser sees it: `type/subtype`, with children in
/// brackets (multipart) or the encapsulated message's tree (message/rfc822),
/// in the two places where IMAP itself decides the shape:
/// - a part without Content-Type inside multipart/digest is message/rfc822
///   (RFC 2046 §5.1.5; mail-parser parses it as a message, without a type);
/// - a multipart without parts, or a message/rfc822 without a message, is
///   shown with one empty text/plain part, because the BODYSTRUCTURE grammar
///   needs at least one (RFC 3501 §9 `body-type-mpart = 1*body ...`), as
///   Dovecot does.
fn mime_tree(message: &mail_parser::Message<'_>, part: usize) -> String {
    let Some(p) = message.parts.get(part) else {
        return "?".into();
    };
    let is_message = matches!(p.body, mail_parser::PartType::Message(_));
    let kind = p
        .content_type()
        .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
        .unwrap_or_else(|| {
            if is_message {
                "message/rfc822"
            } else {
                "text/plain"
            }
            .into()
        })
        .to_lowercase();
    match &p.body {
        mail_parser::PartType::Multipart(children) if !children.is_empty() => {
            let inner: Vec<String> = children
                .iter()
                .map(|c| mime_tree(message, *c as usize))
                .collect();
            format!("{kind}[{}]", inner.join(","))
        }
        mail_parser::PartType::Message(inner) => format!("{kind}[{}]", mime_tree(inner, 0)),
        _ if kind.starts_with("multipart/") || kind == "message/rfc822" => {
            format!("{kind}[text/plain]")
        }
        _ => kind,
    }
}

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn imapclient_reads_every_corpus_bodystructure_as_mail_parser_does() {
    if !require("python3", &["-c", "import imapclient"]) {
        return;
    }
    let server = TestServer::start(&Backend::Sqlite).await;
    add_agent(&server, "alice@desk.test", &["support"], false).await;
    // In over SMTP (BDAT keeps every byte), as customers' mail arrives.
    let mut expected = std::collections::HashMap::new();
    let (mut client, _) = common::SmtpClient::connect(server.smtp()).await;
    assert_eq!(client.cmd("EHLO corpus.test").await.code, 250);
    for file in corpus_files() {
        let raw = std::fs::read(&file).expect("read");
        let reply = client
            .send_exact("corpus@example.org", "support@desk.test", &raw)
            .await;
        assert_eq!(reply.code, 250, "{}", file.display());
        let tree = mail_parser::MessageParser::default()
            .parse(&raw)
            .map(|m| mime_tree(&m, 0))
            .unwrap_or_else(|| "text/plain".into());
        // A literal cannot carry NUL (RFC 3501 §4.3); like Dovecot, the
        // server sends 0x80 in its place. Every other byte is the stored one.
        let served: Vec<u8> = raw
            .iter()
            .map(|b| if *b == 0 { 0x80 } else { *b })
            .collect();
        expected.insert(sha256(&served), (file.display().to_string(), tree));
    }
    let _ = client.cmd("QUIT").await;
    let mut shown = 0;
    for ticket in server
        .store()
        .tickets(&Default::default())
        .await
        .expect("tickets")
    {
        let messages = server
            .store()
            .ticket_messages(ticket.number)
            .await
            .expect("messages");
        shown += messages.iter().filter(|m| m.kind != "auto_reply").count();
    }

    // IMAPClient parses BODYSTRUCTURE itself; the script prints, per
    // message, the SHA-256 of BODY[] and the tree in `mime_tree` notation.
    let script = format!(
        r#"
import hashlib
from imapclient import IMAPClient
c = IMAPClient("127.0.0.1", port={port}, ssl=False)
c.login("alice@desk.test", "secret")
c.select_folder("Queues", readonly=True)
def s(v):
    return (v.decode() if isinstance(v, bytes) else str(v)).lower()
def tree(bs):
    # IMAPClient groups the parts of the top-level multipart into a list;
    # nested ones (inside message/rfc822) stay as leading tuples.
    if isinstance(bs[0], list):
        parts, subtype = bs[0], bs[1]
    elif isinstance(bs[0], tuple):
        n = 0
        while n < len(bs) and isinstance(bs[n], (list, tuple)):
            n += 1
        parts, subtype = bs[:n], bs[n]
    else:
        parts = None
    if parts is not None:
        return "multipart/" + s(subtype) + "[" + ",".join(tree(p) for p in parts) + "]"
    kind = s(bs[0]) + "/" + s(bs[1])
    if kind == "message/rfc822" and len(bs) > 8 and bs[8] is not None:
        return kind + "[" + tree(bs[8]) + "]"
    return kind
for uid, item in sorted(c.fetch(c.search("ALL"), ["BODYSTRUCTURE", "BODY.PEEK[]"]).items()):
    body = item.get(b"BODY[]")
    digest = hashlib.sha256(body).hexdigest() if body is not None else "missing-" + str(uid)
    try:
        shape = tree(item[b"BODYSTRUCTURE"])
    except Exception as e:
        shape = "unparsed:" + repr(item.get(b"BODYSTRUCTURE"))[:300]
    print("MSG", digest, shape)
c.logout()
"#,
        port = server.imap().port(),
    );
    let out = run("python3", vec!["-c".into(), script]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("MSG "))
        .collect();
    assert_eq!(lines.len(), shown, "every ticket message is in the view");
    assert!(shown >= 150, "most of the corpus opens tickets ({shown})");
    let mut mismatches = Vec::new();
    let mut read_as_dovecot = std::collections::BTreeSet::new();
    for line in lines {
        let (sha, tree) = line.split_once(' ').unwrap_or((line, ""));
        let Some((file, wanted)) = expected.get(sha) else {
            mismatches.push(format!("BODY[] {sha} is no corpus file: bytes changed"));
            continue;
        };
        if wanted != tree {
            let name = file.rsplit('/').next().unwrap_or(file).to_string();
            if DOVECOT_READING.contains(&name.as_str()) {
                read_as_dovecot.insert(name);
            } else {
                mismatches.push(format!("{file}: mail-parser {wanted} vs IMAPClient {tree}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The list is exact: a message that comes to agree leaves it.
    let listed: std::collections::BTreeSet<String> =
        DOVECOT_READING.iter().map(|s| s.to_string()).collect();
    assert_eq!(read_as_dovecot, listed, "update DOVECOT_READING");
    server.stop().await;
}
