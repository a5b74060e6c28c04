//! Search over real mail: known answers over ../shared/corpus, the index
//! catching up with mail stored while it was not running, IMAP SEARCH
//! kept to the agent's queues, and the similar-tickets note.

use crate::common;

use crate::common::imap::{ImapClient, add_agent, search_numbers};
use crate::common::{Backend, SmtpClient, TestServer, backend_test};
use postdesk::domain::ticket::Status;
use postdesk::search::SearchIndex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn corpus() -> PathBuf {
    let dir = std::env::var_os("POSTDESK_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")));
    assert!(
        dir.join("MANIFEST.md").exists(),
        "corpus missing at {}",
        dir.display()
    );
    dir
}

/// Sends raw mail over SMTP (BDAT: the bytes exactly); returns its ticket.
async fn deliver(server: &TestServer, to: &str, raw: &[u8]) -> i64 {
    let (mut client, _) = SmtpClient::connect(server.smtp()).await;
    assert_eq!(client.cmd("EHLO search.test").await.code, 250);
    let reply = client.send_exact("sender@example.org", to, raw).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let _ = client.cmd("QUIT").await;
    let (id, _) = server
        .store()
        .newest_message()
        .await
        .expect("newest")
        .expect("a message");
    // The newest message is this one or its acknowledgement: same ticket.
    let tickets = server
        .store()
        .message_tickets(&[id])
        .await
        .expect("tickets");
    *tickets.values().next().expect("filed in a ticket")
}

fn mail(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{:016x}@example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        rand::random::<u64>()
    )
    .into_bytes()
}

fn index(server: &TestServer) -> Arc<SearchIndex> {
    server
        .app()
        .search
        .get()
        .expect("the server opened the index")
        .clone()
}

async fn indexed(server: &TestServer) {
    crate::common::wait_until_indexed(server, 5).await;
}

fn tickets(server: &TestServer, query: &str) -> Vec<i64> {
    index(server)
        .search(query, 50, false, None)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .into_iter()
        .map(|hit| hit.ticket)
        .collect()
}

backend_test!(
    async fn corpus_queries_have_known_answers(backend: Backend) {
        let mime = corpus().join("mime");
        let server = TestServer::start(&backend).await;
        let mut ticket_of = std::collections::HashMap::new();
        for name in [
            "mimekit-japanese.eml",
            "mailparser-legacy-002.eml",
            "mailparser-legacy-012.eml",
            "spamassassin-cjk-gb2312.2.eml",
            "mikelmail-japanese_shift_jis.eml",
            "ietf-mailarchive-mail_html.eml",
        ] {
            let raw = std::fs::read(mime.join(name)).expect("corpus file");
            ticket_of.insert(name, deliver(&server, "support@desk.test", &raw).await);
        }
        let summary = postdesk::import::import(
            server.app(),
            postdesk::import::Format::Mbox,
            &corpus().join("threads/asf-httpd-users-2020-07.mbox"),
            &server
                .store()
                .queue_by_name("support")
                .await
                .expect("queue"),
            |_| {},
        )
        .await
        .expect("import");
        assert_eq!(summary.stored, 108);
        indexed(&server).await;
        let t = |name: &str| ticket_of[name];

        // A phrase that only one message has; its words out of order do not match.
        assert_eq!(
            tickets(&server, r#""subject and body works fine""#),
            [t("mimekit-japanese.eml")]
        );
        assert!(tickets(&server, r#""body and subject works fine""#).is_empty());
        // Words of an HTML-only message are its text, not its markup.
        let html = tickets(&server, r#"body:"steter Furcht vor Menschen""#);
        assert!(html.contains(&t("mailparser-legacy-002.eml")), "{html:?}");
        assert!(!tickets(&server, "body:Helvetica").contains(&t("mailparser-legacy-002.eml")));
        // Encoded-word subjects are decoded (ISO-2022-JP, windows-1252).
        assert_eq!(
            tickets(&server, "subject:日本語"),
            [t("mimekit-japanese.eml")]
        );
        assert_eq!(
            tickets(&server, r#"subject:"Frösche (Microsoft Outlook""#),
            [t("mailparser-legacy-012.eml")]
        );
        // Accents are folded both ways.
        let with_accent = tickets(&server, "subject:Frösche");
        assert_eq!(with_accent.len(), 2, "{with_accent:?}");
        let mut folded = tickets(&server, "subject:frosche");
        let mut accented = with_accent.clone();
        folded.sort();
        accented.sort();
        assert_eq!(folded, accented);
        assert!(tickets(&server, "mißliche").contains(&t("mailparser-legacy-012.eml")));
        // CJK text by character pairs: Chinese (GB2312), Japanese (Shift_JIS, ISO-2022-JP).
        assert_eq!(
            tickets(&server, "硬碟"),
            [t("spamassassin-cjk-gb2312.2.eml")]
        );
        assert_eq!(
            tickets(&server, "テスト用"),
            [t("mikelmail-japanese_shift_jis.eml")]
        );
        assert_eq!(tickets(&server, "正常に"), [t("mimekit-japanese.eml")]);
        // The mailing-list threads: a thread is one ticket, found by its words.
        let hello = tickets(&server, r#""TLS Client Hello" mod_ssl"#);
        assert_eq!(hello.len(), 1, "{hello:?}");
        let ssl = tickets(&server, "ssl certificate");
        assert!(ssl.len() >= 3 && ssl.contains(&hello[0]), "{ssl:?}");
        // Filters narrow; a malformed query is an error, not a crash.
        assert!(tickets(&server, "ssl certificate status:closed").is_empty());
        assert_eq!(tickets(&server, &format!("ssl #{}", hello[0])), hello);
        assert!(tickets(&server, "ssl before:2020-01-01").is_empty());
        assert_eq!(
            tickets(
                &server,
                "ssl certificate after:2020-07-01 before:2020-08-01"
            )
            .len(),
            ssl.len()
        );
        let error = index(&server)
            .search("status:clsoed", 5, false, None)
            .unwrap_err();
        assert!(
            error.to_string().contains("unknown status 'clsoed'"),
            "{error}"
        );

        // State changes reach the index: closing a ticket makes it a closed one.
        common::set_status(server.store(), hello[0], Status::Closed, chrono::Utc::now())
            .await
            .expect("close");
        let mut closed = Vec::new();
        for _ in 0..100 {
            closed = tickets(&server, "ssl status:closed");
            if !closed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(closed, hello);
        server.stop().await;
    }
);

backend_test!(
    async fn mail_stored_while_the_indexer_was_down_is_caught_up_at_start(backend: Backend) {
        let mut server = TestServer::start(&backend).await;
        let first = deliver(
            &server,
            "support@desk.test",
            &mail(
                "a@example.org",
                "support@desk.test",
                "Printer",
                "The toner smudges.",
            ),
        )
        .await;
        indexed(&server).await;
        server.running.take().expect("running").shutdown().await;

        // The server is down: mail filed now (as `postdesk import` would)
        // reaches only the store.
        let app = postdesk::App::open(server.config.clone())
            .await
            .expect("open");
        let envelope = postdesk::ingest::Envelope {
            mail_from: "b@example.org".into(),
            rcpt_to: vec!["support@desk.test".into()],
            helo: None,
            remote_addr: None,
            received_at: chrono::Utc::now(),
        };
        let report = postdesk::ingest::ingest(
            &app,
            &envelope,
            mail(
                "b@example.org",
                "support@desk.test",
                "Scanner",
                "The scanner jams on duplex pages.",
            ),
            postdesk::ingest::Mode::Live,
        )
        .await
        .expect("ingest");
        app.store.close().await;
        let progress_before = SearchIndex::open(&SearchIndex::directory(&server.config.data_dir))
            .expect("index")
            .progress()
            .expect("progress");
        assert!(progress_before.messages < report.message);

        server.restart().await;
        indexed(&server).await;
        assert_eq!(tickets(&server, "duplex"), [report.ticket.expect("ticket")]);
        assert_eq!(tickets(&server, "toner"), [first]);

        // An index that cannot be read is moved aside and rebuilt: the
        // server starts, and nothing goes missing from search.
        server.running.take().expect("running").shutdown().await;
        let dir = SearchIndex::directory(&server.config.data_dir);
        std::fs::write(dir.join("meta.json"), b"{ not json").expect("damage the index");
        server.restart().await;
        indexed(&server).await;
        assert_eq!(tickets(&server, "duplex"), [report.ticket.expect("ticket")]);
        assert_eq!(tickets(&server, "toner"), [first]);
        let aside = std::fs::read_dir(&server.config.data_dir)
            .expect("data dir")
            .filter_map(|e| e.ok())
            .filter(|e| {
                let broken = dir.with_extension("broken-");
                let broken = broken.file_name().expect("name").to_string_lossy();
                e.file_name().to_string_lossy().starts_with(&*broken)
            })
            .count();
        assert_eq!(aside, 1);
        server.stop().await;
    }
);

backend_test!(
    async fn imap_search_never_returns_messages_of_queues_the_agent_cannot_see(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "ann@desk.test", &["support"], false).await;
        add_agent(&server, "root@desk.test", &[], true).await;
        let support = deliver(
            &server,
            "support@desk.test",
            &mail(
                "c@example.org",
                "support@desk.test",
                "Zebra printer",
                "The zebra label printer is offline.",
            ),
        )
        .await;
        deliver(
            &server,
            "billing@desk.test",
            &mail(
                "d@example.org",
                "billing@desk.test",
                "Zebra invoice",
                "Your zebra invoice is wrong.",
            ),
        )
        .await;

        // Before and after the index has the messages, the answer is the same.
        for round in 0..2 {
            if round == 1 {
                indexed(&server).await;
            }
            let mut ann = ImapClient::login(server.imap(), "ann@desk.test", "secret").await;
            for folder in ["Unassigned", "Queues/support", "Urgent", "Closed"] {
                assert!(ann.cmd(&format!("SELECT \"{folder}\"")).await.ok());
                let found = search_numbers(&ann.cmd("UID SEARCH TEXT zebra").await);
                let want = usize::from(matches!(folder, "Unassigned" | "Queues/support"));
                assert_eq!(found.len(), want, "{folder}, round {round}");
            }
            assert!(!ann.cmd("SELECT \"Queues/billing\"").await.ok());
            let mut root = ImapClient::login(server.imap(), "root@desk.test", "secret").await;
            assert!(root.cmd("SELECT Unassigned").await.ok());
            assert_eq!(
                search_numbers(&root.cmd("SEARCH TEXT zebra").await).len(),
                2
            );
            assert_eq!(
                search_numbers(&root.cmd("SEARCH SUBJECT invoice").await).len(),
                1
            );
            assert_eq!(
                search_numbers(&root.cmd("SEARCH FROM d@example.org").await).len(),
                1
            );
            assert_eq!(
                search_numbers(
                    &root
                        .cmd("SEARCH OR BODY offline TO billing@desk.test")
                        .await
                )
                .len(),
                2
            );
            assert_eq!(
                search_numbers(&root.cmd("SEARCH NOT BODY offline").await).len(),
                1
            );
        }
        // Answered by the index as substrings, as RFC 3501 asks: "invo"
        // finds "invoice", "invoices" does not.
        let mut root = ImapClient::login(server.imap(), "root@desk.test", "secret").await;
        assert!(root.cmd("SELECT Unassigned").await.ok());
        assert_eq!(search_numbers(&root.cmd("SEARCH BODY invo").await).len(), 1);
        assert!(search_numbers(&root.cmd("SEARCH BODY invoices").await).is_empty());
        let tickets = server
            .store()
            .tickets(&Default::default())
            .await
            .expect("tickets");
        assert!(tickets.iter().any(|t| t.number == support));
        server.stop().await;
    }
);

backend_test!(
    async fn a_new_ticket_gets_a_note_naming_the_similar_resolved_one(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let vpn = deliver(
            &server,
            "support@desk.test",
            &mail(
                "e@example.org",
                "support@desk.test",
                "VPN drops every 30 minutes",
                "Our VPN connection drops every 30 minutes with 'connection reset by peer'. \
                 The Cisco AnyConnect client then reconnects after a minute.",
            ),
        )
        .await;
        let printer = deliver(
            &server,
            "support@desk.test",
            &mail(
                "f@example.org",
                "support@desk.test",
                "Printer out of paper",
                "The printer on the third floor says it is out of paper but the tray is full.",
            ),
        )
        .await;
        for ticket in [vpn, printer] {
            common::set_status(server.store(), ticket, Status::Resolved, chrono::Utc::now())
                .await
                .expect("resolve");
        }
        indexed(&server).await;

        let again = deliver(
            &server,
            "support@desk.test",
            &mail(
                "g@example.org",
                "support@desk.test",
                "VPN keeps dropping",
                "Since Monday the VPN connection drops with connection reset by peer, \
                 AnyConnect reconnects a minute later.",
            ),
        )
        .await;
        let unrelated = deliver(
            &server,
            "support@desk.test",
            &mail(
                "h@example.org",
                "support@desk.test",
                "Password change",
                "How do I change my password for the wiki?",
            ),
        )
        .await;
        let mut note = None;
        for _ in 0..100 {
            let messages = server
                .store()
                .ticket_messages(again)
                .await
                .expect("messages");
            if let Some(m) = messages.iter().find(|m| m.kind == "note") {
                note = Some(server.store().raw_message(m.id).await.expect("raw"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let note = String::from_utf8(note.expect("a similar-tickets note")).expect("utf-8");
        assert!(
            note.contains(&format!(
                "Possibly related: #{vpn} VPN drops every 30 minutes"
            )) && note.contains("resolved"),
            "{note}"
        );
        assert!(!note.contains(&format!("#{printer} ")), "{note}");
        assert!(note.contains("X-Postdesk-Note: yes"));
        // The note stands in the conversation: under the customer's mail.
        let customer_id = server
            .store()
            .ticket_messages(again)
            .await
            .expect("messages")
            .into_iter()
            .find(|m| m.kind == "customer")
            .map(|m| m.message_id)
            .expect("the customer's message");
        assert!(
            note.contains(&format!("In-Reply-To: <{customer_id}>\r\n"))
                && note.contains(&format!("References: <{customer_id}>\r\n")),
            "{note}"
        );
        // Notes are written in the order tickets open: once a later
        // near-duplicate has its note, the password question has had its turn.
        let later = deliver(
            &server,
            "support@desk.test",
            &mail(
                "i@example.org",
                "support@desk.test",
                "VPN drops again",
                "The VPN connection drops every 30 minutes, connection reset by peer.",
            ),
        )
        .await;
        let mut later_note = false;
        for _ in 0..100 {
            let messages = server
                .store()
                .ticket_messages(later)
                .await
                .expect("messages");
            if messages.iter().any(|m| m.kind == "note") {
                later_note = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(later_note, "the later VPN ticket got no note");
        let events = server.store().ticket_events(again).await.expect("events");
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind == "similar-tickets")
                .count(),
            1
        );
        // Nothing like the password question was solved before.
        let messages = server
            .store()
            .ticket_messages(unrelated)
            .await
            .expect("messages");
        if let Some(m) = messages.iter().find(|m| m.kind == "note") {
            let raw = server.store().raw_message(m.id).await.expect("raw");
            panic!("unexpected note: {}", String::from_utf8_lossy(&raw));
        }
        // Nothing was sent: the note is internal.
        assert!(
            server
                .outbound(None)
                .await
                .iter()
                .all(|item| item.purpose == "ack")
        );
        // The note itself stays out of searches for its words.
        assert_eq!(tickets(&server, "\"possibly related\""), Vec::<i64>::new());
        server.stop().await;
    }
);

/// `UID SEARCH` of `criteria` in the selected folder, sorted.
async fn uid_search(client: &mut ImapClient, criteria: &str) -> Vec<u32> {
    let response = client.cmd(&format!("UID SEARCH {criteria}")).await;
    assert!(response.ok(), "UID SEARCH {criteria}: {response:?}");
    let mut uids = search_numbers(&response);
    uids.sort_unstable();
    uids
}

backend_test!(
    async fn imap_search_matches_substrings_of_headers_and_parts_of_words(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "ann@desk.test", &["support"], false).await;
        let invoice = mail(
            "Jürgen Groß <jurgen@customer.example>",
            "support@desk.test",
            "Invoice #4711 overdue",
            "Your invoices are overdue, says accounting.",
        );
        let mut invoice = String::from_utf8(invoice).expect("utf-8");
        invoice = invoice.replacen(
            "Subject:",
            "Cc: Carol Accountant <carol@finance.example>\r\nSubject:",
            1,
        );
        deliver(&server, "support@desk.test", invoice.as_bytes()).await;
        deliver(
            &server,
            "support@desk.test",
            &mail(
                "printer@office.example",
                "support@desk.test",
                "Printer jam",
                "The printer on floor 3 jams.",
            ),
        )
        .await;
        indexed(&server).await;
        let mut ann = ImapClient::login(server.imap(), "ann@desk.test", "secret").await;
        assert!(ann.cmd("SELECT Unassigned").await.ok());
        let all = uid_search(&mut ann, "ALL").await;
        assert_eq!(all.len(), 2);
        let (invoice, printer) = (vec![all[0]], vec![all[1]]);
        let none: Vec<u32> = Vec::new();
        // What Thunderbird's "Run search on server" sends for a few typed
        // letters, and the other RFC 3501 text keys: substrings.
        for (criteria, want) in [
            ("BODY invo", &invoice),
            ("TEXT invo", &invoice),
            ("BODY \"VOICES\"", &invoice),
            ("BODY ccount", &invoice),
            ("BODY \"invoices are over\"", &invoice),
            ("BODY xinvo", &none),
            ("SUBJECT voic", &invoice),
            ("SUBJECT \"#4711 over\"", &invoice),
            ("SUBJECT jam", &printer),
            ("FROM jurg", &invoice),
            ("FROM \"@office.ex\"", &printer),
            ("FROM \"gross <jurgen\"", &invoice),
            ("TO \"port@desk\"", &all),
            ("CC finance", &invoice),
            ("CC \"carol@\"", &invoice),
            ("CC office", &none),
            ("TEXT floor", &printer),
            ("TEXT \"customer.example\"", &invoice),
            ("OR SUBJECT inv BODY printe", &all),
            ("NOT BODY invo", &printer),
        ] {
            assert_eq!(&uid_search(&mut ann, criteria).await, want, "{criteria}");
        }
        server.stop().await;
    }
);

backend_test!(
    async fn a_search_right_after_a_burst_finds_the_messages_not_indexed_yet(backend: Backend) {
        let mut server = TestServer::start(&backend).await;
        add_agent(&server, "ann@desk.test", &["support"], false).await;
        let burst = |from: usize, count: usize| {
            (from..from + count)
                .map(|n| {
                    mail(
                        &format!("customer{n}@example.org"),
                        "support@desk.test",
                        &format!("Order {n}"),
                        &format!("Please send invoice number {n} again."),
                    )
                })
                .collect::<Vec<_>>()
        };
        let send = |messages: Vec<Vec<u8>>, smtp| async move {
            let (mut client, _) = SmtpClient::connect(smtp).await;
            assert_eq!(client.cmd("EHLO burst.test").await.code, 250);
            for raw in &messages {
                let reply = client
                    .send_exact("sender@example.org", "support@desk.test", raw)
                    .await;
                assert_eq!(reply.code, 250, "{reply:?}");
            }
            let _ = client.cmd("QUIT").await;
        };
        send(burst(0, 20), server.smtp()).await;
        indexed(&server).await;
        // From now on the index commits once an hour: what arrives next is
        // certainly not in it when the client searches.
        server.config.search.commit_interval_ms = 3_600_000;
        server.restart().await;
        let through = index(&server).indexed_through();
        send(burst(20, 30), server.smtp()).await;
        let newest = server
            .store()
            .newest_message()
            .await
            .expect("newest")
            .expect("a message")
            .0;
        assert!(through < newest, "the index holds the new messages already");

        let mut ann = ImapClient::login(server.imap(), "ann@desk.test", "secret").await;
        assert!(ann.cmd("SELECT Unassigned").await.ok());
        let all = uid_search(&mut ann, "ALL").await;
        assert_eq!(all.len(), 50);
        assert_eq!(uid_search(&mut ann, "TEXT invo").await, all);
        assert_eq!(uid_search(&mut ann, "BODY \"invoice number\"").await, all);
        // One indexed message and one of the tail, each found by itself.
        assert_eq!(uid_search(&mut ann, "SUBJECT \"Order 7\"").await, [all[7]]);
        assert_eq!(uid_search(&mut ann, "BODY \"number 42 \"").await, [all[42]]);
        assert_eq!(
            uid_search(&mut ann, "OR SUBJECT \"Order 3\" FROM customer45@").await,
            [
                all[3], all[30], all[31], all[32], all[33], all[34], all[35], all[36], all[37],
                all[38], all[39], all[45]
            ]
        );
        assert!(index(&server).indexed_through() < newest);
        server.stop().await;
    }
);

backend_test!(
    async fn an_index_of_an_older_version_is_replaced_by_one_rebuilt_from_the_store(
        backend: Backend,
    ) {
        let mut server = TestServer::start(&backend).await;
        add_agent(&server, "ann@desk.test", &["support"], false).await;
        for n in 0..3 {
            deliver(
                &server,
                "support@desk.test",
                &mail(
                    &format!("c{n}@example.org"),
                    "support@desk.test",
                    &format!("Invoice {n}"),
                    "Where is my invoice?",
                ),
            )
            .await;
        }
        indexed(&server).await;
        server.running.take().expect("running").shutdown().await;
        // The data directory as the previous version left it: its index
        // (another schema, words only) and none of this version.
        let data = server.config.data_dir.clone();
        let current = SearchIndex::directory(&data);
        std::fs::remove_dir_all(&current).expect("remove the current index");
        let old = data.join("index-v1");
        std::fs::create_dir_all(&old).expect("old index dir");
        {
            let mut schema = tantivy::schema::Schema::builder();
            let body = schema.add_text_field("body", tantivy::schema::TEXT);
            let message = schema.add_u64_field("message", tantivy::schema::FAST);
            let old_index = tantivy::Index::create_in_dir(&old, schema.build()).expect("old index");
            let mut writer: tantivy::IndexWriter =
                old_index.writer(15_000_000).expect("old writer");
            writer
                .add_document(tantivy::doc!(body => "where is my invoice", message => 1u64))
                .expect("old document");
            writer.commit().expect("old commit");
        }

        server.restart().await;
        let mut ann = ImapClient::login(server.imap(), "ann@desk.test", "secret").await;
        assert!(ann.cmd("SELECT Unassigned").await.ok());
        let all = uid_search(&mut ann, "ALL").await;
        assert_eq!(all.len(), 3);
        // Right after the start (rebuilding or not) and once rebuilt, the
        // same complete answers.
        assert_eq!(uid_search(&mut ann, "BODY invo").await, all);
        indexed(&server).await;
        assert!(index(&server).documents() >= 3);
        assert_eq!(uid_search(&mut ann, "BODY invo").await, all);
        assert_eq!(uid_search(&mut ann, "SUBJECT \"voice 1\"").await, [all[1]]);
        assert!(!old.exists(), "the old index is removed");
        assert!(current.exists());
        server.stop().await;
    }
);
