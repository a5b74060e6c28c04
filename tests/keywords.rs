//! What the mail clients' habits mean, over real sockets on every backend:
//! the exact keyword sequences Thunderbird, neomutt and Apple Mail send
//! (client bookkeeping stays the agent's, Junk marks a stranger's ticket
//! spam and never real work, `$labelN` are tags), the agent's own mail is
//! read for them, Outlook's delete and folder names, and a move into a
//! folder of one's own is a copy.

use crate::common::imap::{ImapClient, add_agent, eventually};
use crate::common::{Backend, TestServer, backend_test, deliver, message, ticket_of};
use crate::submission::submit;

/// A desk with alice and dave in support.
async fn desk(backend: &Backend) -> TestServer {
    let server = TestServer::start(backend).await;
    add_agent(&server, "alice@desk.test", &["support"], false).await;
    add_agent(&server, "dave@desk.test", &["support"], false).await;
    server
}

/// Mail from `from` to support; returns its ticket.
async fn writes_in(server: &TestServer, from: &str, subject: &str, id: &str, extra: &str) -> i64 {
    let body = message(
        from,
        "support@desk.test",
        subject,
        id,
        extra,
        "Hello there.",
    );
    ticket_of(&deliver(server.smtp(), from, &["support@desk.test"], &body).await)
}

/// The UID of the message with this Message-ID in the selected mailbox.
async fn uid_of_message(client: &mut ImapClient, message_id: &str) -> u32 {
    let fetched = client
        .cmd("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        .await;
    for line in fetched.fetches() {
        let header = String::from_utf8_lossy(&line.literals[0]).to_string();
        if header.contains(&format!("<{message_id}>")) {
            return crate::common::imap::uid_of(line);
        }
    }
    panic!("no message <{message_id}> in {}", fetched.all_text());
}

/// The flags of one message by UID (after a NOOP has brought the session
/// up to date).
async fn flags_of(client: &mut ImapClient, uid: u32) -> Vec<String> {
    client.cmd("NOOP").await;
    let fetched = client.cmd(&format!("UID FETCH {uid} (FLAGS)")).await;
    let text = &fetched
        .fetches()
        .first()
        .unwrap_or_else(|| panic!("no FETCH for {uid}: {}", fetched.all_text()))
        .text;
    let start = text.find("FLAGS (").expect("FLAGS") + 7;
    let end = start + text[start..].find(')').expect(")");
    text[start..end]
        .split(' ')
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect()
}

fn has(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

async fn count_in(client: &mut ImapClient, folder: &str) -> u32 {
    let status = client.cmd(&format!("STATUS \"{folder}\" (MESSAGES)")).await;
    let text = status.all_text();
    let at = text.find("MESSAGES ").expect("MESSAGES") + 9;
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count")
}

async fn tags(server: &TestServer, ticket: i64) -> Vec<String> {
    server.store().ticket(ticket).await.expect("ticket").tags
}

/// An agent's reply through the submission port; returns its Message-ID.
async fn agent_replies(server: &TestServer, agent: &str, to: &str, in_reply_to: &str, id: &str) {
    let raw = format!(
        "From: {agent}\r\nTo: {to}\r\nSubject: Re: help\r\nMessage-ID: <{id}>\r\n\
         In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n\
         Date: Mon, 23 Nov 2026 11:00:00 +0000\r\n\r\nWe are on it.\r\n"
    );
    let reply = submit(server, agent, agent, &[to], raw.as_bytes()).await;
    assert_eq!(reply.code, 250, "{reply:?}");
}

backend_test!(
    async fn the_junk_button_marks_a_strangers_ticket_spam_and_not_junk_restores_it(
        backend: Backend,
    ) {
        let server = desk(&backend).await;
        let ticket = writes_in(
            &server,
            "winner@lottery.example",
            "You won",
            "won-1@lottery.example",
            "",
        )
        .await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let mut dave = ImapClient::login(server.imap(), "dave@desk.test", "secret").await;
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "won-1@lottery.example").await;

        // Thunderbird 153's junk button on the message the agent is looking
        // at (shown, so read): the keyword, then the opposite one away; no
        // move.
        assert!(alice.cmd(&format!("UID FETCH {uid} BODY[]")).await.ok());
        let marked = alice.cmd(&format!("UID STORE {uid} +FLAGS (Junk)")).await;
        assert!(marked.ok());
        // The answer tells the flags asked for, though the ticket is on its
        // way out of this view.
        assert!(
            marked
                .untagged
                .iter()
                .any(|l| l.text.contains("FETCH") && l.text.contains("Junk")),
            "{}",
            marked.all_text()
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} -FLAGS (NonJunk)"))
                .await
                .ok()
        );
        assert_eq!(count_in(&mut alice, "Junk").await, 1);
        assert_eq!(count_in(&mut dave, "Junk").await, 1, "spam for everyone");
        assert_eq!(count_in(&mut dave, "Unassigned").await, 0);
        assert!(tags(&server, ticket).await.is_empty(), "Junk is no tag");
        // The keyword itself is alice's mark, not dave's.
        alice.cmd("SELECT Junk").await;
        let uid = uid_of_message(&mut alice, "won-1@lottery.example").await;
        assert!(has(&flags_of(&mut alice, uid).await, "Junk"));
        dave.cmd("SELECT Junk").await;
        let dave_uid = uid_of_message(&mut dave, "won-1@lottery.example").await;
        assert!(!has(&flags_of(&mut dave, dave_uid).await, "Junk"));

        // "Not junk" in the Junk folder restores the ticket.
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS (NonJunk)"))
                .await
                .ok()
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} -FLAGS (Junk)"))
                .await
                .ok()
        );
        assert_eq!(count_in(&mut alice, "Junk").await, 0);
        assert_eq!(count_in(&mut alice, "Unassigned").await, 1);
        let events = server.store().ticket_events(ticket).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.detail.contains("marked as junk over IMAP")),
            "{events:?}"
        );

        // Apple Mail's spelling of the same: $Junk, then $NotJunk.
        writes_in(
            &server,
            "deals@cheap.example",
            "Cheap pills",
            "pills-1@cheap.example",
            "",
        )
        .await;
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "pills-1@cheap.example").await;
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Seen)"))
                .await
                .ok()
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS.SILENT ($Junk)"))
                .await
                .ok()
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} -FLAGS.SILENT ($NotJunk)"))
                .await
                .ok()
        );
        assert_eq!(count_in(&mut alice, "Junk").await, 1);
        alice.cmd("SELECT Junk").await;
        let uid = uid_of_message(&mut alice, "pills-1@cheap.example").await;
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS.SILENT ($NotJunk)"))
                .await
                .ok()
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} -FLAGS.SILENT ($Junk)"))
                .await
                .ok()
        );
        assert_eq!(count_in(&mut alice, "Junk").await, 0);
        server.stop().await;
    }
);

backend_test!(
    async fn a_classifier_never_marks_real_work_spam(backend: Backend) {
        let server = desk(&backend).await;
        let ticket = writes_in(
            &server,
            "carol@example.com",
            "VPN drops",
            "vpn-1@example.com",
            "",
        )
        .await;
        agent_replies(
            &server,
            "alice@desk.test",
            "carol@example.com",
            "vpn-1@example.com",
            "alice-1@desk.test",
        )
        .await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        alice.cmd("SELECT INBOX").await;
        // Thunderbird's trained classifier on the agent's own reply, and on
        // the customer's message of a ticket an agent answered.
        for id in ["alice-1@desk.test", "vpn-1@example.com"] {
            let uid = uid_of_message(&mut alice, id).await;
            assert!(
                alice
                    .cmd(&format!("UID STORE {uid} +FLAGS (Junk)"))
                    .await
                    .ok()
            );
            assert!(
                alice
                    .cmd(&format!("UID STORE {uid} -FLAGS (NonJunk)"))
                    .await
                    .ok()
            );
        }
        assert_eq!(count_in(&mut alice, "Junk").await, 0);
        assert!(tags(&server, ticket).await.is_empty());

        // A known customer's new ticket: still not spam.
        let second = writes_in(
            &server,
            "carol@example.com",
            "Printer too",
            "printer-1@example.com",
            "",
        )
        .await;
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "printer-1@example.com").await;
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS (Junk)"))
                .await
                .ok()
        );
        assert_eq!(count_in(&mut alice, "Junk").await, 0);
        assert!(tags(&server, second).await.is_empty());
        // The classifier's NonJunk on every new message is no tag either.
        assert!(alice.cmd("UID STORE 1:* +FLAGS (NonJunk)").await.ok());
        assert!(tags(&server, second).await.is_empty());
        let mut dave = ImapClient::login(server.imap(), "dave@desk.test", "secret").await;
        dave.cmd("SELECT Unassigned").await;
        let dave_uid = uid_of_message(&mut dave, "printer-1@example.com").await;
        let flags = flags_of(&mut dave, dave_uid).await;
        assert!(!has(&flags, "NonJunk") && !has(&flags, "Junk"), "{flags:?}");
        server.stop().await;
    }
);

backend_test!(
    async fn a_filter_marking_new_mail_junk_is_no_spam_until_the_agent_says_so(backend: Backend) {
        let server = desk(&backend).await;
        let ticket = writes_in(
            &server,
            "fiona@newcomer.example",
            "My laptop will not start",
            "laptop-1@newcomer.example",
            "",
        )
        .await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "laptop-1@newcomer.example").await;
        // What Thunderbird's trained filter sent when the folder was opened
        // (the real client's transcript): the unread message read with
        // PEEK, then the mark.
        assert!(
            alice
                .cmd(&format!("UID FETCH {uid} (UID BODY.PEEK[])"))
                .await
                .ok()
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS (Junk)"))
                .await
                .ok()
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} -FLAGS (NonJunk)"))
                .await
                .ok()
        );
        assert_eq!(count_in(&mut alice, "Junk").await, 0);
        assert_eq!(count_in(&mut alice, "Unassigned").await, 1);
        // The mark stays alice's own, as her client set it.
        alice.cmd("SELECT Unassigned").await;
        let flags = flags_of(&mut alice, uid).await;
        assert!(has(&flags, "Junk"), "{flags:?}");
        assert!(tags(&server, ticket).await.is_empty());

        // Alice opens it and presses the junk button herself: Thunderbird
        // stores Junk again (it is on already), and now it counts.
        assert!(alice.cmd(&format!("UID FETCH {uid} BODY[]")).await.ok());
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS (Junk)"))
                .await
                .ok()
        );
        assert_eq!(count_in(&mut alice, "Junk").await, 1);
        server.stop().await;
    }
);

backend_test!(
    async fn client_bookkeeping_stays_with_the_agent_and_tags_are_shared(backend: Backend) {
        let server = desk(&backend).await;
        let ticket = writes_in(
            &server,
            "carol@example.com",
            "VPN drops",
            "vpn-1@example.com",
            "",
        )
        .await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "vpn-1@example.com").await;
        // neomutt leaving the folder, Thunderbird after a forward and a
        // read receipt, Apple Mail's flag colours and its bookkeeping.
        for command in [
            format!("UID STORE {uid} +FLAGS.SILENT (Old)"),
            format!("UID STORE {uid} +FLAGS ($Forwarded)"),
            format!("UID STORE {uid} +FLAGS ($MDNSent)"),
            format!("UID STORE {uid} +FLAGS.SILENT ($MailFlagBit0 $MailFlagBit2)"),
            format!("UID STORE {uid} +FLAGS ($HasAttachment $Submitted $Phishing)"),
        ] {
            let stored = alice.cmd(&command).await;
            assert!(stored.ok(), "{command}: {}", stored.all_text());
        }
        assert!(tags(&server, ticket).await.is_empty());
        let flags = flags_of(&mut alice, uid).await;
        for keyword in [
            "Old",
            "$Forwarded",
            "$MDNSent",
            "$MailFlagBit0",
            "$MailFlagBit2",
        ] {
            assert!(has(&flags, keyword), "{keyword}: {flags:?}");
        }
        // Kept for alice across sessions; dave sees none of it.
        let mut again = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        again.cmd("SELECT Unassigned").await;
        assert!(has(&flags_of(&mut again, uid).await, "Old"));
        let mut dave = ImapClient::login(server.imap(), "dave@desk.test", "secret").await;
        dave.cmd("SELECT Unassigned").await;
        let dave_uid = uid_of_message(&mut dave, "vpn-1@example.com").await;
        let flags = flags_of(&mut dave, dave_uid).await;
        assert!(
            flags.iter().all(|f| f.starts_with('\\')),
            "dave sees alice's marks: {flags:?}"
        );
        // Removing one is alice's business too.
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} -FLAGS.SILENT ($MailFlagBit0)"))
                .await
                .ok()
        );
        assert!(!has(&flags_of(&mut alice, uid).await, "$MailFlagBit0"));

        // Thunderbird's Important tag is the tag `important`, both ways.
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS ($label1)"))
                .await
                .ok()
        );
        assert_eq!(tags(&server, ticket).await, vec!["important".to_string()]);
        let flags = flags_of(&mut dave, dave_uid).await;
        assert!(
            has(&flags, "$label1") && has(&flags, "important"),
            "{flags:?}"
        );
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} -FLAGS ($label1)"))
                .await
                .ok()
        );
        assert!(tags(&server, ticket).await.is_empty());

        // A tag set by mail command is a keyword every client is told of.
        let raw = "From: alice@desk.test\r\nTo: support+ID@desk.test\r\nSubject: tagging\r\n\
                   Message-ID: <tagging-1@desk.test>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\n\
                   \r\n#tag vip\r\n#tag later\r\n"
            .replace("ID", &ticket.to_string());
        let reply = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&format!("support+{ticket}@desk.test")],
            raw.as_bytes(),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let mut tagged = tags(&server, ticket).await;
        tagged.sort();
        assert_eq!(tagged, vec!["later".to_string(), "vip".to_string()]);
        let select = dave.cmd("SELECT Unassigned").await;
        let flags_line = select.lines("FLAGS")[0].text.clone();
        assert!(
            flags_line.contains(" vip") && flags_line.contains("$label1"),
            "{flags_line}"
        );
        let permanent = select
            .untagged
            .iter()
            .find(|l| l.text.contains("PERMANENTFLAGS"))
            .expect("PERMANENTFLAGS")
            .text
            .clone();
        assert!(
            permanent.contains(" vip") && permanent.contains("\\*"),
            "{permanent}"
        );
        let flags = flags_of(&mut dave, dave_uid).await;
        assert!(
            has(&flags, "vip") && has(&flags, "later") && has(&flags, "$label5"),
            "{flags:?}"
        );
        server.stop().await;
    }
);

backend_test!(
    async fn what_an_agent_wrote_is_read_for_them_only(backend: Backend) {
        let server = desk(&backend).await;
        let ticket = writes_in(
            &server,
            "carol@example.com",
            "VPN drops",
            "vpn-1@example.com",
            "",
        )
        .await;
        agent_replies(
            &server,
            "alice@desk.test",
            "carol@example.com",
            "vpn-1@example.com",
            "alice-1@desk.test",
        )
        .await;
        // A note to the ticket's plus-address.
        agent_replies(
            &server,
            "alice@desk.test",
            &format!("support+{ticket}@desk.test"),
            "vpn-1@example.com",
            "alice-note@desk.test",
        )
        .await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        alice.cmd("SELECT INBOX").await;
        for id in ["alice-1@desk.test", "alice-note@desk.test"] {
            let uid = uid_of_message(&mut alice, id).await;
            assert!(has(&flags_of(&mut alice, uid).await, "\\Seen"), "{id}");
        }
        let customer = uid_of_message(&mut alice, "vpn-1@example.com").await;
        assert!(!has(&flags_of(&mut alice, customer).await, "\\Seen"));
        let mut dave = ImapClient::login(server.imap(), "dave@desk.test", "secret").await;
        dave.cmd("SELECT Queues").await;
        for id in ["alice-1@desk.test", "alice-note@desk.test"] {
            let uid = uid_of_message(&mut dave, id).await;
            assert!(!has(&flags_of(&mut dave, uid).await, "\\Seen"), "{id}");
        }
        server.stop().await;
    }
);

backend_test!(
    async fn outlook_deletes_to_trash_and_its_folder_names_are_the_special_folders(
        backend: Backend,
    ) {
        let server = desk(&backend).await;
        writes_in(
            &server,
            "carol@example.com",
            "VPN drops",
            "vpn-1@example.com",
            "",
        )
        .await;
        writes_in(
            &server,
            "erin@example.com",
            "Printer",
            "printer-1@example.com",
            "",
        )
        .await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        // Outlook, finding no special folders, creates its own.
        for name in ["Sent Items", "Deleted Items", "Junk Email"] {
            let create = alice.cmd(&format!("CREATE \"{name}\"")).await;
            assert!(
                create.tagged.contains("[ALREADYEXISTS]"),
                "{name}: {}",
                create.all_text()
            );
        }
        let list = alice.cmd("LIST \"\" *").await;
        assert!(
            !list.all_text().contains("Items"),
            "no personal look-alikes: {}",
            list.all_text()
        );

        // The Delete key: \Deleted, then EXPUNGE.
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "vpn-1@example.com").await;
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS (\\Deleted)"))
                .await
                .ok()
        );
        let expunge = alice.cmd("EXPUNGE").await;
        assert!(expunge.ok(), "{}", expunge.all_text());
        assert!(
            expunge.untagged.iter().any(|l| l.text.ends_with("EXPUNGE")),
            "{}",
            expunge.all_text()
        );
        assert_eq!(count_in(&mut alice, "Trash").await, 1);
        assert_eq!(count_in(&mut alice, "Deleted Items").await, 1);
        // Restorable: out of Trash again.
        alice.cmd("SELECT \"Deleted Items\"").await;
        let uid = uid_of_message(&mut alice, "vpn-1@example.com").await;
        assert!(alice.cmd(&format!("UID MOVE {uid} Unassigned")).await.ok());
        assert_eq!(count_in(&mut alice, "Trash").await, 0);

        // A move by name into Outlook's Junk folder marks spam.
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "printer-1@example.com").await;
        let moved = alice.cmd(&format!("UID MOVE {uid} \"Junk Email\"")).await;
        assert!(moved.ok(), "{}", moved.all_text());
        assert_eq!(count_in(&mut alice, "Junk").await, 1);
        // And its Sent copy lands in Sent.
        let sent = b"From: alice@desk.test\r\nSubject: copy\r\n\r\nsent\r\n";
        assert!(alice.append("Sent Items", "\\Seen", sent).await.ok());
        assert_eq!(count_in(&mut alice, "Sent").await, 1);

        // A client without MOVE: COPY into INBOX, \Deleted, EXPUNGE. The
        // copy took the ticket; the expunge finishes the move, it does
        // not delete the ticket.
        alice.cmd("SELECT Unassigned").await;
        let uid = uid_of_message(&mut alice, "vpn-1@example.com").await;
        assert!(alice.cmd(&format!("UID COPY {uid} INBOX")).await.ok());
        assert!(
            alice
                .cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
                .await
                .ok()
        );
        assert!(alice.cmd("EXPUNGE").await.ok());
        assert_eq!(count_in(&mut alice, "Trash").await, 0);
        assert_eq!(count_in(&mut alice, "INBOX").await, 1);
        server.stop().await;
    }
);

backend_test!(
    async fn a_move_from_a_view_into_a_folder_of_ones_own_is_a_copy(backend: Backend) {
        let server = desk(&backend).await;
        writes_in(
            &server,
            "carol@example.com",
            "VPN drops",
            "vpn-1@example.com",
            "",
        )
        .await;
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(alice.cmd("CREATE Projects").await.ok());
        alice.cmd("SELECT Unassigned").await;
        let before = alice.uids().await;
        let uid = uid_of_message(&mut alice, "vpn-1@example.com").await;
        let moved = alice.cmd(&format!("UID MOVE {uid} Projects")).await;
        assert!(moved.ok(), "{}", moved.all_text());
        assert!(
            moved.all_text().contains("[COPYUID"),
            "{}",
            moved.all_text()
        );
        assert!(
            !moved
                .untagged
                .iter()
                .any(|l| l.text.ends_with("EXPUNGE") || l.text.ends_with("EXISTS")),
            "the view keeps its message: {}",
            moved.all_text()
        );
        let noop = alice.cmd("NOOP").await;
        assert!(
            !noop
                .untagged
                .iter()
                .any(|l| l.text.ends_with("EXPUNGE") || l.text.ends_with("EXISTS")),
            "{}",
            noop.all_text()
        );
        assert_eq!(alice.uids().await, before);
        eventually(&mut alice, "STATUS Projects (MESSAGES)", |r| {
            r.all_text().contains("MESSAGES 1")
        })
        .await;
        server.stop().await;
    }
);
