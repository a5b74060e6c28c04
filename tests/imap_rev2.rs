//! IMAP4rev2 (RFC 9051) by `ENABLE IMAP4rev2` (issue 18, item 7), over real
//! sockets on both backends, each time next to an IMAP4rev1 session of the
//! same agent that must see no change: SEARCH answered with ESEARCH, no
//! \Recent and no RECENT, SEARCHRES (`RETURN (SAVE)` and `$`), UTF-8
//! mailbox names (a personal folder and a knowledge category), the LIST
//! line of SELECT, STATUS DELETED.

use crate::cli::{config_file, ok, postdesk};
use crate::common::imap::{ImapClient, Response, add_agent, search_numbers, uid_of};
use crate::common::{Backend, TestServer, backend_test};
use crate::knowledge::add_article;

async fn desk(backend: &Backend) -> TestServer {
    let server = TestServer::start(backend).await;
    add_agent(&server, "alice@desk.test", &["support"], false).await;
    server
}

fn note(n: u32) -> Vec<u8> {
    format!(
        "From: alice@desk.test\r\nTo: alice@desk.test\r\nSubject: note {n}\r\n\
         Message-ID: <rev2-note-{n}@desk.test>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n\
         Note number {n}.\r\n"
    )
    .into_bytes()
}

/// alice's folder `name` (as the client writes it) holding notes `numbers`.
async fn folder_with_notes(
    client: &mut ImapClient,
    name: &str,
    numbers: std::ops::RangeInclusive<u32>,
) {
    let created = client.cmd(&format!("CREATE \"{name}\"")).await;
    assert!(created.ok(), "{}", created.all_text());
    for n in numbers {
        let appended = client.append(name, "", &note(n)).await;
        assert!(appended.ok(), "{}", appended.all_text());
    }
}

/// Logs alice in and enables IMAP4rev2.
async fn rev2_session(server: &TestServer) -> ImapClient {
    let mut client = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
    let enabled = client.cmd("ENABLE IMAP4rev2").await;
    assert!(enabled.ok(), "{}", enabled.all_text());
    assert!(
        enabled
            .untagged
            .iter()
            .any(|l| l.text == "* ENABLED IMAP4rev2"),
        "{}",
        enabled.all_text()
    );
    client
}

/// The one `* ESEARCH` line of a response.
fn esearch(response: &Response) -> String {
    let lines = response.lines("ESEARCH");
    assert_eq!(lines.len(), 1, "{}", response.all_text());
    lines[0].text.clone()
}

/// The tag of a response's tagged line.
fn tag_of(response: &Response) -> &str {
    response.tagged.split(' ').next().unwrap_or("")
}

/// The UIDs of a response's FETCH lines.
fn fetched_uids(response: &Response) -> Vec<u32> {
    response.fetches().iter().map(|l| uid_of(l)).collect()
}

backend_test!(
    async fn a_rev2_session_searches_with_esearch_and_hears_no_recent(backend: Backend) {
        let server = desk(&backend).await;
        let mut rev1 = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let mut rev2 = rev2_session(&server).await;
        let caps = rev2.cmd("CAPABILITY").await.all_text();
        for cap in [" IMAP4rev1 ", " IMAP4rev2 ", " SEARCHRES ", " ESEARCH "] {
            assert!(caps.contains(cap), "{cap} in {caps}");
        }
        folder_with_notes(&mut rev1, "Projects", 1..=3).await;

        // SELECT: EXISTS and the mailbox's LIST line; no RECENT, no UNSEEN.
        let selected = rev2.cmd("SELECT Projects").await;
        let text = selected.all_text();
        assert!(selected.ok(), "{text}");
        assert!(text.contains("* 3 EXISTS"), "{text}");
        assert!(
            selected
                .untagged
                .iter()
                .any(|l| l.text == "* LIST (\\HasNoChildren) \"/\" \"Projects\""),
            "{text}"
        );
        assert!(!text.contains("RECENT"), "{text}");
        assert!(!text.contains("[UNSEEN"), "{text}");
        let uids = rev2.uids().await;
        assert_eq!(uids.len(), 3);

        // SEARCH and UID SEARCH answer ESEARCH (TAG …), never SEARCH.
        let all = rev2.cmd("SEARCH ALL").await;
        assert!(all.lines("SEARCH ").is_empty(), "{}", all.all_text());
        assert_eq!(
            esearch(&all),
            format!("* ESEARCH (TAG \"{}\") ALL 1:3", tag_of(&all))
        );
        let by_uid = rev2.cmd("UID SEARCH SUBJECT \"note 2\"").await;
        assert_eq!(
            esearch(&by_uid),
            format!(
                "* ESEARCH (TAG \"{}\") UID ALL {}",
                tag_of(&by_uid),
                uids[1]
            )
        );
        let none = rev2.cmd("SEARCH SUBJECT nowhere").await;
        assert_eq!(
            esearch(&none),
            format!("* ESEARCH (TAG \"{}\")", tag_of(&none))
        );
        let none = rev2.cmd("UID SEARCH SUBJECT nowhere").await;
        assert_eq!(
            esearch(&none),
            format!("* ESEARCH (TAG \"{}\") UID", tag_of(&none))
        );

        // No \Recent in FETCH; STATUS RECENT is no IMAP4rev2 item.
        let flags = rev2.cmd("FETCH 1:* FLAGS").await;
        assert_eq!(flags.fetches().len(), 3, "{}", flags.all_text());
        assert!(
            !flags.all_text().contains("\\Recent"),
            "{}",
            flags.all_text()
        );
        let status = rev2.cmd("STATUS Projects (MESSAGES RECENT)").await;
        assert_eq!(status.status(), "BAD", "{}", status.all_text());
        let listed = rev2
            .cmd("LIST \"\" Projects RETURN (STATUS (MESSAGES RECENT))")
            .await;
        assert_eq!(listed.status(), "BAD", "{}", listed.all_text());
        let listed = rev2
            .cmd("LIST \"\" Projects RETURN (STATUS (MESSAGES))")
            .await;
        assert!(
            listed
                .untagged
                .iter()
                .any(|l| l.text == "* STATUS \"Projects\" (MESSAGES 3)"),
            "{}",
            listed.all_text()
        );

        // The IMAP4rev1 session of the same agent sees no change: the
        // messages are \Recent for it (the rev2 session claimed none),
        // SEARCH answers SEARCH.
        let selected = rev1.cmd("SELECT Projects").await;
        let text = selected.all_text();
        assert!(text.contains("* 3 RECENT"), "{text}");
        assert!(!text.contains("* LIST"), "{text}");
        let flags = rev1.cmd("FETCH 1:* FLAGS").await;
        assert!(
            flags.fetches().iter().all(|l| l.text.contains("\\Recent")),
            "{}",
            flags.all_text()
        );
        let all = rev1.cmd("SEARCH ALL").await;
        assert!(all.lines("ESEARCH").is_empty(), "{}", all.all_text());
        assert_eq!(search_numbers(&all), vec![1, 2, 3]);
        let status = rev1.cmd("STATUS Projects (MESSAGES RECENT)").await;
        assert!(status.ok(), "{}", status.all_text());

        // A new message: EXISTS without RECENT for the rev2 session.
        let appended = rev1.append("Projects", "", &note(4)).await;
        assert!(appended.ok(), "{}", appended.all_text());
        let noop = rev2.cmd("NOOP").await;
        let text = noop.all_text();
        assert!(text.contains("* 4 EXISTS"), "{text}");
        assert!(!text.contains("RECENT"), "{text}");
        // (The rev1 session heard of its own APPEND in its reply.)
        assert!(
            appended.all_text().contains("* 4 RECENT"),
            "{}",
            appended.all_text()
        );

        // STATUS DELETED counts the messages marked \Deleted.
        assert!(rev2.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await.ok());
        let status = rev2.cmd("STATUS Projects (MESSAGES DELETED)").await;
        assert!(
            status
                .untagged
                .iter()
                .any(|l| l.text == "* STATUS \"Projects\" (MESSAGES 4 DELETED 2)"),
            "{}",
            status.all_text()
        );
        server.stop().await;
    }
);

backend_test!(
    async fn searchres_saves_a_result_that_dollar_names(backend: Backend) {
        let server = desk(&backend).await;
        let mut rev2 = rev2_session(&server).await;
        folder_with_notes(&mut rev2, "Projects", 1..=4).await;
        assert!(rev2.cmd("CREATE Archive").await.ok());
        assert!(rev2.cmd("SELECT Projects").await.ok());
        let uids = rev2.uids().await;

        // SAVE alone: no ESEARCH, the result kept.
        let saved = rev2
            .cmd("SEARCH RETURN (SAVE) OR SUBJECT \"note 2\" SUBJECT \"note 4\"")
            .await;
        assert!(saved.ok(), "{}", saved.all_text());
        assert!(saved.lines("ESEARCH").is_empty(), "{}", saved.all_text());

        // FETCH and STORE of $.
        let fetched = rev2.cmd("FETCH $ (UID FLAGS)").await;
        assert_eq!(fetched_uids(&fetched), vec![uids[1], uids[3]]);
        assert!(fetched.fetches()[0].text.starts_with("* 2 FETCH"));
        let stored = rev2.cmd("STORE $ +FLAGS (\\Flagged)").await;
        assert!(stored.ok(), "{}", stored.all_text());
        let flagged = rev2.cmd("SEARCH FLAGGED").await;
        assert_eq!(
            esearch(&flagged),
            format!("* ESEARCH (TAG \"{}\") ALL 2,4", tag_of(&flagged))
        );
        // $ as a search key, and UID $.
        let keyed = rev2.cmd("UID SEARCH RETURN (COUNT) $ UID $").await;
        assert_eq!(
            esearch(&keyed),
            format!("* ESEARCH (TAG \"{}\") UID COUNT 2", tag_of(&keyed))
        );

        // MOVE $: the messages leave; $ then names nothing.
        let moved = rev2.cmd("UID MOVE $ Archive").await;
        assert!(moved.ok(), "{}", moved.all_text());
        let status = rev2.cmd("STATUS Archive (MESSAGES)").await;
        assert!(
            status.all_text().contains("(MESSAGES 2)"),
            "{}",
            status.all_text()
        );
        let gone = rev2.cmd("FETCH $ UID").await;
        assert!(gone.ok(), "{}", gone.all_text());
        assert!(gone.fetches().is_empty(), "{}", gone.all_text());
        let gone = rev2.cmd("UID SEARCH UID $").await;
        assert_eq!(
            esearch(&gone),
            format!("* ESEARCH (TAG \"{}\") UID", tag_of(&gone))
        );

        // SAVE with MIN keeps the lowest match only (RFC 5182 §2.4).
        let min = rev2.cmd("SEARCH RETURN (SAVE MIN) ALL").await;
        assert_eq!(
            esearch(&min),
            format!("* ESEARCH (TAG \"{}\") MIN 1", tag_of(&min))
        );
        let fetched = rev2.cmd("UID FETCH $ UID").await;
        assert_eq!(fetched_uids(&fetched), vec![uids[0]]);

        // A SEARCH that saves and fails (NO) empties $.
        let failed = rev2
            .cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R SUBJECT note")
            .await;
        assert_eq!(failed.status(), "NO", "{}", failed.all_text());
        assert!(rev2.cmd("FETCH $ UID").await.fetches().is_empty());

        // $ starts empty in a newly selected mailbox.
        assert!(rev2.cmd("SEARCH RETURN (SAVE) ALL").await.ok());
        assert_eq!(rev2.cmd("FETCH $ UID").await.fetches().len(), 2);
        assert!(rev2.cmd("SELECT Archive").await.ok());
        assert!(rev2.cmd("FETCH $ UID").await.fetches().is_empty());
        // And it names nothing without a selected mailbox.
        assert!(rev2.cmd("UNSELECT").await.ok());
        assert_eq!(rev2.cmd("FETCH $ UID").await.status(), "BAD");

        // SEARCHRES is there for IMAP4rev1 sessions too (RFC 5182).
        let mut rev1 = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(rev1.cmd("SELECT Archive").await.ok());
        let saved = rev1
            .cmd("UID SEARCH RETURN (SAVE) SUBJECT \"note 4\"")
            .await;
        assert!(saved.ok(), "{}", saved.all_text());
        let fetched = rev1
            .cmd("FETCH $ (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await;
        assert_eq!(fetched.fetches().len(), 1, "{}", fetched.all_text());
        let header = String::from_utf8_lossy(&fetched.fetches()[0].literals[0]).into_owned();
        assert!(header.contains("note 4"), "{header}");
        server.stop().await;
    }
);

backend_test!(
    async fn a_rev2_session_names_mailboxes_in_utf8(backend: Backend) {
        let server = desk(&backend).await;
        let config = config_file(&server);
        // A published article in a category with umlauts and an ampersand:
        // the folder Knowledge/Drucker & Zubehör.
        let article = add_article(
            &config,
            "Drucker brennt",
            "Drucker & Zubehör",
            true,
            "Stecker ziehen.",
        );
        ok(postdesk(
            &config,
            &["kb", "publish", &article.to_string()],
            None,
        ));
        let mut rev1 = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let mut rev2 = rev2_session(&server).await;
        // IMAP4rev1 writes modified UTF-7.
        assert!(rev1.cmd("CREATE \"Entw&APw-rfe\"").await.ok());

        // LIST shows UTF-8 to the rev2 session, patterns match characters.
        let list = rev2.cmd("LIST \"\" *").await;
        let text = list.all_text();
        assert!(list.ok(), "{text}");
        assert!(!text.contains("&APw-") && !text.contains("&APY-"), "{text}");
        assert!(text.contains("\"Entwürfe\""), "{text}");
        assert!(text.contains("\"Knowledge/Drucker & Zubehör\""), "{text}");
        let matched = rev2.cmd("LIST \"\" \"*ü*\"").await;
        let names: Vec<&str> = matched
            .lines("LIST")
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["* LIST (\\HasNoChildren) \"/\" \"Entwürfe\""],
            "{names:?}"
        );

        // CREATE and APPEND with a UTF-8 quoted name; a name not in NFC
        // (u and a combining diaeresis) is refused.
        let created = rev2.cmd("CREATE \"Grüße\"").await;
        assert!(created.ok(), "{}", created.all_text());
        let refused = rev2.cmd("CREATE \"Gru\u{308}ße 2\"").await;
        assert_eq!(refused.status(), "BAD", "{}", refused.all_text());
        let appended = rev2.append("Grüße", "\\Seen", &note(1)).await;
        assert!(appended.ok(), "{}", appended.all_text());
        let status = rev2.cmd("STATUS \"Grüße\" (MESSAGES)").await;
        assert!(
            status
                .untagged
                .iter()
                .any(|l| l.text == "* STATUS \"Grüße\" (MESSAGES 1)"),
            "{}",
            status.all_text()
        );

        // Other quoted strings may hold UTF-8 too: a SEARCH for a subject.
        let greeting = "From: alice@desk.test\r\nTo: alice@desk.test\r\n\
             Subject: Grüße aus München\r\nMessage-ID: <gruesse@desk.test>\r\n\
             Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nServus.\r\n";
        let appended = rev2.append("Grüße", "", greeting.as_bytes()).await;
        assert!(appended.ok(), "{}", appended.all_text());
        assert!(rev2.cmd("SELECT \"Grüße\"").await.ok());
        let found = rev2.cmd("SEARCH SUBJECT \"aus münchen\"").await;
        assert_eq!(
            esearch(&found),
            format!("* ESEARCH (TAG \"{}\") ALL 2", tag_of(&found))
        );
        assert!(rev2.cmd("UNSELECT").await.ok());

        // The IMAP4rev1 session sees the same mailboxes in modified UTF-7.
        let list = rev1.cmd("LIST \"\" *").await;
        let text = list.all_text();
        assert!(text.contains("\"Gr&APwA3w-e\""), "{text}");
        assert!(
            text.contains("\"Knowledge/Drucker &- Zubeh&APY-r\""),
            "{text}"
        );
        assert!(!text.contains('ü'), "{text}");
        let status = rev1.cmd("STATUS \"Gr&APwA3w-e\" (MESSAGES)").await;
        assert!(
            status
                .all_text()
                .contains("* STATUS \"Gr&APwA3w-e\" (MESSAGES 2)"),
            "{}",
            status.all_text()
        );

        // SELECT by UTF-8 name: the LIST line carries it.
        let selected = rev2.cmd("EXAMINE \"Knowledge/Drucker & Zubehör\"").await;
        let text = selected.all_text();
        assert!(selected.ok(), "{text}");
        assert!(text.contains("* 1 EXISTS"), "{text}");
        assert!(
            text.contains("* LIST (\\HasNoChildren) \"/\" \"Knowledge/Drucker & Zubehör\""),
            "{text}"
        );
        // RENAME to a UTF-8 name; the rev1 session finds it encoded.
        assert!(rev2.cmd("UNSELECT").await.ok());
        let renamed = rev2.cmd("RENAME \"Grüße\" \"Schöne Grüße\"").await;
        assert!(renamed.ok(), "{}", renamed.all_text());
        assert!(
            renamed.untagged.iter().any(|l| l.text
                == "* LIST (\\HasNoChildren) \"/\" \"Schöne Grüße\" (\"OLDNAME\" (\"Grüße\"))"),
            "{}",
            renamed.all_text()
        );
        let examined = rev1.cmd("EXAMINE \"Sch&APY-ne Gr&APwA3w-e\"").await;
        assert!(examined.ok(), "{}", examined.all_text());
        assert!(examined.all_text().contains("* 2 EXISTS"));
        server.stop().await;
    }
);
