//! Agents' mail through the submission port, end to end over real sockets:
//! a customer writes in, an agent replies with AUTH over STARTTLS, and a
//! recording relay shows the exact bytes the customer gets; notes, mail
//! commands and their errors, permissions, outbound tickets, retries,
//! bounces and restarts.

use crate::common;

use crate::common::imap::{ImapClient, add_agent};
use crate::common::sink::Sink;
use crate::common::tls::tls_handshake;
use crate::common::{
    Backend, Reply, SmtpClient, TestServer, backend_test, deliver, dot_stuff, eventually, message,
    relay, ticket_of,
};
use postdesk::domain::ticket::{Priority, Status};
use postdesk::store::OutboundStatus;
use std::time::Duration;
use tokio::net::TcpStream;

fn plain_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// Submits `raw` as `user` (password "secret") over STARTTLS with AUTH
/// PLAIN, as a mail client does; returns the reply to the end of data.
pub(crate) async fn submit(
    server: &TestServer,
    user: &str,
    from: &str,
    to: &[&str],
    raw: &[u8],
) -> Reply {
    let (mut client, greeting) = SmtpClient::connect(server.submission()).await;
    assert_eq!(greeting.code, 220);
    let ehlo = client.cmd("EHLO agent.test").await;
    assert!(ehlo.text().contains("STARTTLS"), "{ehlo:?}");
    assert_eq!(client.cmd("STARTTLS").await.code, 220);
    let mut client = SmtpClient::wrap(tls_handshake(client.into_inner()).await);
    let ehlo = client.cmd("EHLO agent.test").await;
    assert!(ehlo.text().contains("AUTH PLAIN LOGIN"), "{ehlo:?}");
    let auth = client
        .cmd(&format!("AUTH PLAIN {}", plain_auth(user, "secret")))
        .await;
    assert_eq!(auth.code, 235, "{auth:?}");
    let r = client.cmd(&format!("MAIL FROM:<{from}>")).await;
    if r.code != 250 {
        return r;
    }
    for rcpt in to {
        let r = client.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    assert_eq!(client.cmd("DATA").await.code, 354);
    client.send_raw(&dot_stuff(raw)).await;
    client.send_raw(b".\r\n").await;
    let reply = client.reply().await;
    let _ = client.cmd("QUIT").await;
    reply
}

/// Alice answers Carol with a Thunderbird reply without commands, accepted.
async fn alice_answers(server: &TestServer, in_reply_to: &str, message_id: &str) {
    let raw = thunderbird_reply("", in_reply_to, message_id);
    let reply = submit(
        server,
        "alice@desk.test",
        "alice@desk.test",
        &["carol@example.com"],
        raw.as_bytes(),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
}

/// A customer's mail in; returns its ticket.
pub(crate) async fn customer_writes(server: &TestServer, message_id: &str, subject: &str) -> i64 {
    let body = message(
        "Carol Customer <carol@example.com>",
        "support@desk.test",
        subject,
        message_id,
        "",
        "The VPN drops every 30 minutes.",
    );
    ticket_of(
        &deliver(
            server.smtp(),
            "carol@example.com",
            &["support@desk.test"],
            &body,
        )
        .await,
    )
}

/// A reply as Thunderbird writes it: threading headers, multipart with a
/// quoted-printable text part, an HTML part and an attachment.
fn thunderbird_reply(commands: &str, in_reply_to: &str, message_id: &str) -> String {
    let html_commands: String = commands.lines().map(|l| format!("{l}<br>\r\n")).collect();
    format!(
        "Message-ID: <{message_id}>\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n\
MIME-Version: 1.0\r\n\
User-Agent: Mozilla Thunderbird\r\n\
Subject: Re: VPN drops\r\n\
To: Carol Customer <carol@example.com>\r\n\
Bcc: boss@desk.test\r\n\
References: <{in_reply_to}>\r\n\
In-Reply-To: <{in_reply_to}>\r\n\
From: alice <alice@desk.test>\r\n\
Content-Type: multipart/mixed; boundary=\"------------mixed\"\r\n\
\r\n\
This is a multi-part message in MIME format.\r\n\
--------------mixed\r\n\
Content-Type: multipart/alternative; boundary=\"------------alt\"\r\n\
\r\n\
--------------alt\r\n\
Content-Type: text/plain; charset=UTF-8; format=flowed\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
{commands}\r\n\
Hello Carol, please update the client to 5.2 =E2=80=93 that fixes the drops.\r\n\
\r\n\
On 24.11.26 09:00, Carol Customer wrote:\r\n\
> The VPN drops every 30 minutes.\r\n\
\r\n\
--------------alt\r\n\
Content-Type: text/html; charset=UTF-8\r\n\
Content-Transfer-Encoding: 7bit\r\n\
\r\n\
<html><head></head><body>\r\n\
<p>{html_commands}</p>\r\n\
<p>Hello Carol, please update the client to 5.2.</p>\r\n\
</body></html>\r\n\
\r\n\
--------------alt--\r\n\
\r\n\
--------------mixed\r\n\
Content-Type: application/pdf; name=\"vpn-guide.pdf\"\r\n\
Content-Disposition: attachment; filename=\"vpn-guide.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n\
--------------mixed--\r\n"
    )
}

backend_test!(
    async fn a_reply_reaches_the_customer_rewritten_threaded_and_without_commands(
        backend: Backend,
    ) {
        let sink = Sink::start(vec![], None).await;
        let server =
            TestServer::start_with(&backend, |c| c.outbound.relay = relay(sink.addr)).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        // A colleague in Bcc is postdesk's own: the ticket shows them the reply.
        add_agent(&server, "boss@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "c1@example.com", "VPN drops").await;
        eventually("the acknowledgement", || async {
            sink.accepted().len() == 1
        })
        .await;

        let raw = thunderbird_reply(
            "#pending\r\n#tag vpn\r\n#priority high\r\n",
            "c1@example.com",
            "r1@desk.test",
        );
        let reply = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com", "boss@desk.test"],
            raw.as_bytes(),
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        assert!(
            reply
                .text()
                .contains(&format!("Reply to #{ticket} queued for 1 recipient")),
            "{reply:?}"
        );

        eventually("the reply at the relay", || async {
            sink.accepted().len() == 2
        })
        .await;
        let delivered = sink.accepted().remove(1);
        assert_eq!(delivered.mail_from, "support@desk.test");
        assert_eq!(delivered.rcpt_to, vec!["carol@example.com".to_string()]);
        // Exactly the agent's message, with the header rewritten for the
        // customer and the command lines gone from both bodies; the rest
        // (other headers, boundaries, the attachment) byte for byte.
        let expected = thunderbird_reply("", "c1@example.com", "r1@desk.test")
            .replace(
                "Subject: Re: VPN drops\r\n",
                &format!("Subject: [#{ticket}] Re: VPN drops\r\n"),
            )
            .replace("Bcc: boss@desk.test\r\n", "")
            .replace(
                "From: alice <alice@desk.test>\r\n",
                "From: \"alice via Support\" <support@desk.test>\r\n",
            )
            .replace(
                "Content-Type: multipart/mixed; boundary=\"------------mixed\"\r\n\r\n",
                &format!(
                    "Content-Type: multipart/mixed; boundary=\"------------mixed\"\r\n\
                     X-Postdesk-Ticket: {ticket}\r\nReply-To: <support+{ticket}@desk.test>\r\n\r\n"
                ),
            )
            .replace(
                "\r\n\r\nHello Carol, please update the client to 5.2 =E2",
                "\r\nHello Carol, please update the client to 5.2 =E2",
            )
            // The line break after the last command's <br> stays.
            .replace("<p></p>", "<p>\r\n</p>");
        let got = String::from_utf8_lossy(&delivered.data).into_owned();
        let expected_text = expected;
        assert_eq!(
            got, expected_text,
            "\n--- got ---\n{got}\n--- expected ---\n{expected_text}"
        );

        // The ticket: the reply is in it, the commands applied, the clocks stopped.
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(t.status, Status::Pending);
        assert_eq!(t.priority, Priority::High);
        assert_eq!(t.tags, vec!["vpn".to_string()]);
        assert_eq!(t.owner.as_deref(), Some("alice@desk.test"));
        assert!(t.first_response_at.is_some() && t.customer_waiting_since.is_none());
        let messages = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        let kinds: Vec<&str> = messages.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["customer", "auto_reply", "reply"]);
        let stored = server
            .store()
            .raw_message(messages[2].id)
            .await
            .expect("raw");
        assert_eq!(
            stored, delivered.data,
            "the ticket holds what the customer got"
        );

        // The customer's answer threads into the ticket by In-Reply-To.
        let answer = message(
            "carol@example.com",
            "support@desk.test",
            "Re: VPN drops",
            "c2@example.com",
            "In-Reply-To: <r1@desk.test>\r\n",
            "Updated, works now.",
        );
        let r = deliver(
            server.smtp(),
            "carol@example.com",
            &["support@desk.test"],
            &answer,
        )
        .await;
        assert_eq!(ticket_of(&r), ticket);
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(
            t.status,
            Status::Open,
            "the customer's answer reopens the pending ticket"
        );
        assert!(t.customer_waiting_since.is_some());

        // Thunderbird's copy in Sent is the stored reply, not a second one.
        let mut imap = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        let appended = imap.append("Sent", "\\Seen", raw.as_bytes()).await;
        assert!(appended.ok(), "{appended:?}");
        let select = imap.cmd("SELECT Sent").await;
        assert!(select.ok());
        let fetched = imap.cmd("FETCH 1 ENVELOPE").await;
        assert!(
            fetched.all_text().contains("alice via Support"),
            "{}",
            fetched.all_text()
        );
        server.stop().await;
    }
);

async fn refused(reply: &Reply, code: u16, text: &str) {
    assert_eq!(reply.code, code, "{reply:?}");
    assert!(reply.text().contains(text), "{reply:?}");
}

backend_test!(
    async fn notes_commands_errors_and_permissions(backend: Backend) {
        let server = TestServer::start(&backend).await;
        // Alice leads the support queue: she hands a ticket to Dan and
        // takes it back (an agent may not take a colleague's ticket).
        crate::common::imap::add_agent_as(
            &server,
            "alice@desk.test",
            &["support"],
            postdesk::domain::permission::AgentRole::Lead,
        )
        .await;
        add_agent(&server, "dan@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["billing"], false).await;
        let ticket = customer_writes(&server, "p1@example.com", "Printer on fire").await;
        let queued = || async { server.outbound(None).await.len() };
        let before = queued().await;
        let plus = format!("support+{ticket}@desk.test");
        let mail = |from: &str, to: &str, subject: &str, body: &str| {
            format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@desk.test>\r\n\r\n{body}\r\n", rand_id())
                .into_bytes()
        };

        // An internal note: only postdesk's own addresses among the recipients.
        let note = mail(
            "alice@desk.test",
            &plus,
            "Printer",
            "#assign dan\r\n#tag hardware\r\n\r\nChecked the logs: toner sensor.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&plus],
            &note,
        )
        .await;
        refused(&r, 250, &format!("Internal note added to #{ticket}")).await;
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(t.owner.as_deref(), Some("dan@desk.test"));
        assert_eq!(t.tags, vec!["hardware".to_string()]);
        assert_eq!(queued().await, before, "a note is sent to nobody");
        let messages = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages");
        let stored_note = messages
            .iter()
            .find(|m| m.kind == "note")
            .expect("the note");
        let raw = String::from_utf8_lossy(
            &server
                .store()
                .raw_message(stored_note.id)
                .await
                .expect("raw"),
        )
        .into_owned();
        assert!(
            raw.contains(&format!("Subject: [#{ticket}] [note] Printer")),
            "{raw}"
        );
        assert!(
            raw.contains("X-Postdesk-Note: yes") && !raw.contains("#assign"),
            "{raw}"
        );

        // Every command on a ticket, then each kind of mistake.
        for (commands, check) in [
            ("#resolve", Status::Resolved),
            ("#open", Status::Open),
            ("#close", Status::Closed),
        ] {
            let m = mail("alice@desk.test", &plus, "x", commands);
            let r = submit(&server, "alice@desk.test", "alice@desk.test", &[&plus], &m).await;
            refused(&r, 250, "Commands for").await;
            assert_eq!(
                server.store().ticket(ticket).await.expect("ticket").status,
                check
            );
        }
        let m = mail(
            "alice@desk.test",
            &plus,
            "x",
            "#untag hardware\n#unassign\n#priority urgent\n#queue support\n#take",
        );
        refused(
            &submit(&server, "alice@desk.test", "alice@desk.test", &[&plus], &m).await,
            250,
            "Commands for",
        )
        .await;
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert!(t.tags.is_empty());
        assert_eq!(t.priority, Priority::Urgent);
        assert_eq!(
            t.owner.as_deref(),
            Some("alice@desk.test"),
            "#take after #unassign"
        );

        let notes_before = note_count(&server, ticket).await;
        for (commands, problem) in [
            ("#clsoe", "unknown command"),
            (
                "#assign bob",
                "bob@desk.test does not work in queue 'support'",
            ),
            ("#queue billing", "you do not work in queue 'billing'"),
            ("#queue nowhere", "no queue 'nowhere'"),
            ("#priority soon", "unknown priority 'soon'"),
            ("#open\n#assign zed", "no agent 'zed'"),
        ] {
            let m = mail("alice@desk.test", &plus, "x", commands);
            let r = submit(&server, "alice@desk.test", "alice@desk.test", &[&plus], &m).await;
            refused(&r, 250, "command error").await;
            let t = server.store().ticket(ticket).await.expect("ticket");
            assert_eq!(
                t.status,
                Status::Closed,
                "{commands}: the ticket is untouched"
            );
            assert_eq!(t.priority, Priority::Urgent);
            let notes = notes_of(&server, ticket).await;
            assert!(
                notes.last().is_some_and(|n| n.contains(problem)),
                "{commands}: {notes:?}"
            );
        }
        assert_eq!(note_count(&server, ticket).await, notes_before + 6);

        // A wrong command in a public reply: sent anyway, unless #hold.
        let reply = mail(
            "alice@desk.test",
            "carol@example.com",
            &format!("Re: Printer [#{ticket}]"),
            "#clsoe\r\n\r\nPlease send a photo.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &reply,
        )
        .await;
        refused(&r, 250, "queued for 1 recipient").await;
        assert_eq!(queued().await, before + 1);
        let held = mail(
            "alice@desk.test",
            "carol@example.com",
            &format!("Re: Printer [#{ticket}]"),
            "#hold\r\n#clsoe\r\n\r\nPlease send a photo.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &held,
        )
        .await;
        refused(&r, 250, "Reply held").await;
        assert_eq!(queued().await, before + 1, "held: nothing sent");

        // Commands above the customer's quoted mail say nothing to the customer.
        let only_commands = mail(
            "alice@desk.test",
            "carol@example.com",
            &format!("Re: Printer [#{ticket}]"),
            "#resolve\r\n\r\nOn Mon, Carol wrote:\r\n> on fire",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &only_commands,
        )
        .await;
        refused(&r, 250, "nothing sent").await;
        assert_eq!(queued().await, before + 1);
        assert_eq!(
            server.store().ticket(ticket).await.expect("ticket").status,
            Status::Resolved
        );

        // Permissions: bob works in billing only.
        let messages = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages")
            .len();
        let bobs = mail(
            "bob@desk.test",
            "carol@example.com",
            &format!("Re: Printer [#{ticket}]"),
            "#close\r\nI'll take it.",
        );
        let r = submit(
            &server,
            "bob@desk.test",
            "bob@desk.test",
            &["carol@example.com"],
            &bobs,
        )
        .await;
        refused(&r, 550, &format!("ticket #{ticket} is not in your queues")).await;
        assert!(r.text().starts_with("5.7.1"), "{r:?}");
        assert!(
            !r.text().contains("support"),
            "the queue is not named: {r:?}"
        );
        assert_eq!(queued().await, before + 1, "refused: nothing sent");
        assert_eq!(
            server
                .store()
                .ticket_messages(ticket)
                .await
                .expect("messages")
                .len(),
            messages
        );
        assert_eq!(
            server.store().ticket(ticket).await.expect("ticket").status,
            Status::Resolved
        );
        // Nor may he send as alice or as the support queue.
        let r = submit(
            &server,
            "bob@desk.test",
            "alice@desk.test",
            &["carol@example.com"],
            &bobs,
        )
        .await;
        refused(&r, 550, "not yours to send as").await;
        let r = submit(
            &server,
            "bob@desk.test",
            "support@desk.test",
            &["carol@example.com"],
            &bobs,
        )
        .await;
        refused(&r, 550, "not yours to send as").await;
        let forged = mail("alice@desk.test", "carol@example.com", "hi", "hi");
        let r = submit(
            &server,
            "bob@desk.test",
            "bob@desk.test",
            &["carol@example.com"],
            &forged,
        )
        .await;
        refused(&r, 550, "<alice@desk.test> is not yours").await;

        // A mail to a customer naming no ticket opens an outbound ticket.
        let first = mail(
            "alice@desk.test",
            "Dave <dave@example.org>",
            "Your order",
            "Your replacement ships today.",
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["dave@example.org"],
            &first,
        )
        .await;
        refused(&r, 250, "(new ticket) queued for 1 recipient").await;
        let number: i64 = r
            .text()
            .split('#')
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("number");
        let t = server.store().ticket(number).await.expect("new ticket");
        assert_eq!(
            (t.status, t.customer_address.as_str(), t.queue.as_str()),
            (Status::Pending, "dave@example.org", "support")
        );
        assert_eq!(t.customer_name.as_deref(), Some("Dave"));
        assert_eq!(t.owner.as_deref(), Some("alice@desk.test"));
        // Neither a ticket nor a customer: refused.
        let lost = mail("alice@desk.test", "support@desk.test", "hello", "hi");
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &["support@desk.test"],
            &lost,
        )
        .await;
        refused(&r, 550, "names no ticket").await;
        server.stop().await;
    }
);

async fn notes_of(server: &TestServer, ticket: i64) -> Vec<String> {
    let mut notes = Vec::new();
    for m in server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages")
    {
        if m.kind == "note" {
            notes.push(
                String::from_utf8_lossy(&server.store().raw_message(m.id).await.expect("raw"))
                    .into_owned(),
            );
        }
    }
    notes
}

async fn note_count(server: &TestServer, ticket: i64) -> usize {
    notes_of(server, ticket).await.len()
}

fn rand_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[tokio::test]
async fn authentication_needs_tls_and_valid_credentials() {
    let backend = common::Backend::Sqlite;
    let server = TestServer::start_with(&backend, |c| {
        c.submission.plaintext_auth_on_loopback = false
    })
    .await;
    add_agent(&server, "alice@desk.test", &["support"], false).await;
    let (mut client, _) = SmtpClient::connect(server.submission()).await;
    let ehlo = client.cmd("EHLO agent.test").await;
    assert!(
        !ehlo.text().contains("AUTH"),
        "no AUTH before TLS: {ehlo:?}"
    );
    refused(
        &client.cmd("MAIL FROM:<alice@desk.test>").await,
        530,
        "5.7.0 Authentication required",
    )
    .await;
    refused(
        &client
            .cmd(&format!(
                "AUTH PLAIN {}",
                plain_auth("alice@desk.test", "secret")
            ))
            .await,
        538,
        "Encryption required",
    )
    .await;
    assert_eq!(client.cmd("STARTTLS").await.code, 220);
    let mut client = SmtpClient::wrap(tls_handshake(client.into_inner()).await);
    client.cmd("EHLO agent.test").await;
    refused(
        &client
            .cmd(&format!(
                "AUTH PLAIN {}",
                plain_auth("alice@desk.test", "wrong")
            ))
            .await,
        535,
        "5.7.8",
    )
    .await;
    refused(&client.cmd("AUTH CRAM-MD5").await, 504, "PLAIN or LOGIN").await;
    // LOGIN, step by step, and the session goes on after the failures.
    assert_eq!(client.cmd("AUTH LOGIN").await.code, 334);
    assert_eq!(client.cmd("YWxpY2VAZGVzay50ZXN0").await.code, 334);
    refused(
        &client.cmd("c2VjcmV0").await,
        235,
        "Authentication successful",
    )
    .await;
    refused(
        &client.cmd("AUTH PLAIN").await,
        503,
        "Already authenticated",
    )
    .await;
    assert_eq!(client.cmd("MAIL FROM:<alice@desk.test>").await.code, 250);
    server.stop().await;
}

#[tokio::test]
async fn implicit_tls_port_accepts_an_agent() {
    let backend = common::Backend::Sqlite;
    let server = TestServer::start(&backend).await;
    add_agent(&server, "alice@desk.test", &["support"], false).await;
    let tcp = TcpStream::connect(server.running().submissions_addr)
        .await
        .expect("connect");
    let mut client = SmtpClient::wrap(tls_handshake(tcp).await);
    assert_eq!(client.reply().await.code, 220);
    let ehlo = client.cmd("EHLO agent.test").await;
    assert!(
        ehlo.text().contains("AUTH PLAIN LOGIN") && !ehlo.text().contains("STARTTLS"),
        "{ehlo:?}"
    );
    refused(
        &client
            .cmd(&format!(
                "AUTH PLAIN {}",
                plain_auth("alice@desk.test", "secret")
            ))
            .await,
        235,
        "successful",
    )
    .await;
    server.stop().await;
}

backend_test!(
    async fn replies_are_retried_failures_and_bounces_land_on_the_ticket_and_a_restart_sends_once(
        backend: Backend,
    ) {
        // The acknowledgement goes through; the first reply is deferred once;
        // the second is refused for good.
        let sink = Sink::start(vec![250, 451, 250, 550], None).await;
        let mut server = TestServer::start_with(&backend, |c| {
            c.outbound.relay = relay(sink.addr);
            c.outbound.retry_base = 1;
        })
        .await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        let ticket = customer_writes(&server, "b1@example.com", "Invoice").await;
        eventually("the acknowledgement", || async {
            sink.messages().len() == 1
        })
        .await;
        alice_answers(&server, "b1@example.com", "rb1@desk.test").await;
        eventually("the retried reply", || async { sink.messages().len() == 3 }).await;
        assert_eq!(
            sink.accepted().len(),
            2,
            "deferred once, then delivered once"
        );
        alice_answers(&server, "b1@example.com", "rb2@desk.test").await;
        eventually("the refused reply recorded", || async {
            server.outbound(Some(OutboundStatus::Failed)).await.len() == 1
        })
        .await;
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert!(
            t.tags.contains(&"delivery-failed".to_string()),
            "{:?}",
            t.tags
        );
        assert!(
            notes_of(&server, ticket)
                .await
                .iter()
                .any(|n| n.contains("550"))
        );

        // A bounce from the customer's side, after the relay took the mail.
        let server_b = TestServer::start(&backend).await;
        add_agent(&server_b, "alice@desk.test", &["support"], false).await;
        let ticket_b = customer_writes(&server_b, "b2@example.com", "Login").await;
        alice_answers(&server_b, "b2@example.com", "rb3@desk.test").await;
        let dsn = "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n\
To: support@desk.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <dsn1@mx.example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n\
Final-Recipient: rfc822; carol@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <carol@example.com>: Recipient address rejected\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <rb3@desk.test>\r\nSubject: [#1] Re: VPN drops\r\n\
--b--\r\n";
        let r = deliver(server_b.smtp(), "", &["support@desk.test"], dsn.as_bytes()).await;
        assert_eq!(ticket_of(&r), ticket_b);
        let t = server_b.store().ticket(ticket_b).await.expect("ticket");
        assert!(
            t.tags.contains(&"delivery-failed".to_string()),
            "{:?}",
            t.tags
        );
        let events = server_b
            .store()
            .ticket_events(ticket_b)
            .await
            .expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.detail.contains("carol@example.com") && e.detail.contains("5.1.1")),
            "{events:?}"
        );
        server_b.stop().await;

        // Replies queued while no relay is there go out once each after a restart.
        let mut config_relay = None;
        std::mem::swap(&mut server.config.outbound.relay, &mut config_relay);
        server.restart().await;
        for n in 0..3 {
            alice_answers(&server, "b1@example.com", &format!("rq{n}@desk.test")).await;
        }
        assert_eq!(server.outbound(Some(OutboundStatus::Queued)).await.len(), 3);
        let accepted_before = sink.accepted().len();
        server.config.outbound.relay = config_relay;
        server.restart().await;
        eventually("the queued replies", || async {
            sink.accepted().len() == accepted_before + 3
        })
        .await;
        server.restart().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ids: Vec<String> = sink
            .accepted()
            .iter()
            .skip(accepted_before)
            .map(|m| {
                String::from_utf8_lossy(&m.data)
                    .lines()
                    .find(|l| l.starts_with("Message-ID"))
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len(), 3, "each exactly once: {ids:?}");
        for n in 0..3 {
            assert!(
                ids.contains(&format!("Message-ID: <rq{n}@desk.test>")),
                "{ids:?}"
            );
        }
        server.stop().await;
    }
);

/// DNS answers for the DKIM check, without DNS.
struct TxtRecords(std::sync::Mutex<std::collections::HashMap<Box<str>, mail_auth::Txt>>);

impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for TxtRecords {
    fn get<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }

    fn insert(&self, key: Box<str>, value: mail_auth::Txt, _: std::time::Instant) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, value);
        }
    }
}

#[tokio::test]
async fn replies_leave_dkim_signed_and_the_signature_verifies() {
    use base64::Engine;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let pkcs8 = Ed25519Key::generate_pkcs8().expect("key");
    let public = Ed25519Key::from_pkcs8_der(&pkcs8)
        .expect("key")
        .public_key();
    let keys = tempfile::tempdir().expect("dir");
    let key_file = keys.path().join("dkim.pem");
    std::fs::write(
        &key_file,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            b64(&pkcs8)
        ),
    )
    .expect("write key");

    let sink = Sink::start(vec![], None).await;
    let server = TestServer::start_with(&common::Backend::Sqlite, |c| {
        c.outbound.relay = relay(sink.addr);
        c.outbound.dkim_key = Some(key_file.clone());
        c.outbound.dkim_selector = "pd2026".into();
    })
    .await;
    add_agent(&server, "alice@desk.test", &["support"], false).await;
    let ticket = customer_writes(&server, "k1@example.com", "VPN drops").await;
    alice_answers(&server, "k1@example.com", "rk1@desk.test").await;
    eventually("the signed reply", || async { sink.accepted().len() == 2 }).await;
    let delivered = sink.accepted().remove(1).data;
    assert!(delivered.starts_with(b"DKIM-Signature: "));
    let messages = server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages");
    let reply = messages.iter().find(|m| m.kind == "reply").expect("reply");
    let stored = server.store().raw_message(reply.id).await.expect("raw");
    assert!(
        delivered.ends_with(&stored),
        "the signature is prepended, nothing else changes"
    );

    let records = TxtRecords(Default::default());
    let record = DomainKey::parse(format!("v=DKIM1; k=ed25519; p={}", b64(&public)).as_bytes())
        .expect("record");
    mail_auth::ResolverCache::insert(
        &records,
        "pd2026._domainkey.desk.test.".into(),
        record.into(),
        std::time::Instant::now() + Duration::from_secs(600),
    );
    let message = mail_auth::AuthenticatedMessage::parse(&delivered).expect("parse");
    let verifier = mail_auth::MessageAuthenticator::new_cloudflare().expect("verifier");
    let results = verifier
        .verify_dkim(mail_auth::Parameters::new(&message).with_txt_cache(&records))
        .await;
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].result(),
        &mail_auth::DkimResult::Pass,
        "{results:?}"
    );
    server.stop().await;
}

backend_test!(
    /// An agent opens tickets in, and sends as, only the queues they work
    /// in: bob (billing) writing to a customer with support@ in Cc, or with
    /// support@ only in the envelope, is refused and nothing is sent.
    async fn a_new_outbound_mail_never_borrows_another_queue(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "bob@desk.test", &["billing"], false).await;
        let before = server.outbound(None).await.len();
        let tickets_before = server.store().counts().await.expect("counts").1;
        // Bob writes to Dave, with `cc` in the header (if any) and
        // `queue` in the envelope.
        let bob_writes = |cc: Option<&'static str>, queue: &'static str, n: u32| {
            let cc = cc.map(|cc| format!("Cc: {cc}\r\n")).unwrap_or_default();
            let raw = format!(
                "From: bob@desk.test\r\nTo: dave@example.com\r\n{cc}Subject: Your account\r\n\
                 Message-ID: <bob-new-{n}@desk.test>\r\n\r\nHello Dave.\r\n"
            );
            let server = &server;
            async move {
                submit(
                    server,
                    "bob@desk.test",
                    "bob@desk.test",
                    &["dave@example.com", queue],
                    raw.as_bytes(),
                )
                .await
            }
        };
        let r = bob_writes(Some("support@desk.test"), "support@desk.test", 1).await;
        refused(&r, 550, "you do not work in queue 'support'").await;
        // The queue address in the envelope only.
        let r = bob_writes(None, "support@desk.test", 2).await;
        refused(&r, 550, "you do not work in queue 'support'").await;
        assert_eq!(server.outbound(None).await.len(), before, "nothing sent");
        assert_eq!(
            server.store().counts().await.expect("counts").1,
            tickets_before,
            "no ticket opened"
        );
        // His own queue is fine: a billing ticket, sent as billing.
        let r = bob_writes(Some("billing@desk.test"), "billing@desk.test", 3).await;
        assert_eq!(r.code, 250, "{r:?}");
        let sent = server.outbound(None).await;
        assert_eq!(sent.len(), before + 1);
        assert_eq!(
            sent.last().map(|o| o.mail_from.as_str()),
            Some("billing@desk.test")
        );
        server.stop().await;
    }
);

backend_test!(
    /// Message-IDs belong to their author: bob (billing) appending a stub
    /// with alice's reply's Message-ID to his Sent folder gets his stub
    /// back, not her text; bob submitting a mail with that Message-ID gets
    /// a fresh one, and the customer's next reply still lands in alice's
    /// ticket.
    async fn message_ids_are_not_borrowed(backend: Backend) {
        let server = TestServer::start(&backend).await;
        add_agent(&server, "alice@desk.test", &["support"], false).await;
        add_agent(&server, "bob@desk.test", &["billing"], false).await;
        let ticket = customer_writes(&server, "vpn-1@example.com", "VPN drops").await;
        alice_answers(&server, "vpn-1@example.com", "alice-reply-1@desk.test").await;

        // Alice's internal note on the ticket.
        let plus = format!("support+{ticket}@desk.test");
        let note = format!(
            "From: alice@desk.test\r\nTo: {plus}\r\nSubject: [#{ticket}] checked\r\n\
             Message-ID: <alice-note-1@desk.test>\r\n\r\nThe VPN gateway logs show resets.\r\n"
        );
        let r = submit(
            &server,
            "alice@desk.test",
            "alice@desk.test",
            &[&plus],
            note.as_bytes(),
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");

        // Bob's Sent copies carrying alice's reply's and note's ids are his
        // own copies: her text stays hers.
        let mut bob = ImapClient::login(server.imap(), "bob@desk.test", "secret").await;
        let note_stub =
            b"Message-ID: <alice-note-1@desk.test>\r\nSubject: stub\r\n\r\nnote stub\r\n";
        assert!(bob.append("Sent", "\\Seen", note_stub).await.ok());
        assert!(bob.cmd("SELECT Sent").await.ok());
        let fetched = bob.cmd("FETCH 1 BODY.PEEK[]").await;
        let bytes = fetched
            .fetches()
            .first()
            .and_then(|line| line.literals.first().cloned())
            .unwrap_or_default();
        assert_eq!(bytes, note_stub, "{}", fetched.all_text());
        assert!(bob.cmd("UNSELECT").await.ok());
        let stub = b"Message-ID: <alice-reply-1@desk.test>\r\nSubject: stub\r\n\r\nstub\r\n";
        assert!(bob.append("Sent", "\\Seen", stub).await.ok());
        assert!(bob.cmd("SELECT Sent").await.ok());
        let fetched = bob.cmd("FETCH 2 BODY.PEEK[]").await;
        let bytes = fetched
            .fetches()
            .first()
            .and_then(|line| line.literals.first().cloned())
            .unwrap_or_default();
        assert_eq!(bytes, stub, "{}", fetched.all_text());

        // Bob submits a new mail with alice's id: it is filed (a billing
        // ticket), under another id.
        let raw = b"From: bob@desk.test\r\nTo: dave@example.com\r\nSubject: Invoice\r\n\
                    Message-ID: <alice-reply-1@desk.test>\r\n\r\nHello Dave.\r\n";
        let r = submit(
            &server,
            "bob@desk.test",
            "bob@desk.test",
            &["dave@example.com"],
            raw,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        // Carol answers alice's reply: it joins alice's ticket.
        let answer = message(
            "Carol Customer <carol@example.com>",
            "support@desk.test",
            "Re: VPN drops",
            "vpn-2@example.com",
            "In-Reply-To: <alice-reply-1@desk.test>\r\nReferences: <alice-reply-1@desk.test>\r\n",
            "Thanks, that helped.",
        );
        let r = deliver(
            server.smtp(),
            "carol@example.com",
            &["support@desk.test"],
            &answer,
        )
        .await;
        assert_eq!(ticket_of(&r), ticket, "the reply stays in alice's ticket");

        // Alice's own stub with her reply's id is not her reply either: the
        // Sent copy links only when it carries the bytes she submitted (a
        // Bcc her client kept in the copy does not matter).
        let mut alice = ImapClient::login(server.imap(), "alice@desk.test", "secret").await;
        assert!(alice.append("Sent", "\\Seen", stub).await.ok());
        let with_bcc = thunderbird_reply("", "vpn-1@example.com", "alice-reply-1@desk.test")
            .replacen("\r\n\r\n", "\r\nBcc: lead@desk.test\r\n\r\n", 1);
        assert!(
            alice
                .append("Sent", "\\Seen", with_bcc.as_bytes())
                .await
                .ok()
        );
        assert!(alice.cmd("SELECT Sent").await.ok());
        let fetched = alice.cmd("FETCH 1:2 BODY.PEEK[]").await;
        let bodies: Vec<Vec<u8>> = fetched
            .fetches()
            .iter()
            .filter_map(|line| line.literals.first().cloned())
            .collect();
        assert_eq!(bodies.len(), 2, "{}", fetched.all_text());
        assert_eq!(bodies[0], stub, "the stub is her own copy");
        let linked = String::from_utf8_lossy(&bodies[1]);
        assert!(
            linked.contains("alice via Support") && !linked.contains("Bcc:"),
            "the real copy shows the stored reply: {linked}"
        );

        // A stranger's new mail whose own Message-ID is alice's reply's (or
        // carol's) does not enter the ticket by it: a new ticket.
        for (n, borrowed) in ["alice-reply-1@desk.test", "vpn-1@example.com"]
            .iter()
            .enumerate()
        {
            let forged = message(
                "Mallory <mallory@example.net>",
                "support@desk.test",
                &format!("Hello {n}"),
                borrowed,
                "",
                "Let me in.",
            );
            let r = deliver(
                server.smtp(),
                "mallory@example.net",
                &["support@desk.test"],
                &forged,
            )
            .await;
            assert_ne!(ticket_of(&r), ticket, "{borrowed} is not mallory's to use");
        }
        // Carol's own mail sent again is still recognized as the same mail.
        let again = message(
            "Carol Customer <carol@example.com>",
            "support@desk.test",
            "Re: VPN drops",
            "vpn-2@example.com",
            "In-Reply-To: <alice-reply-1@desk.test>\r\nReferences: <alice-reply-1@desk.test>\r\n",
            "Thanks, that helped.",
        );
        let before = server
            .store()
            .ticket_messages(ticket)
            .await
            .expect("messages")
            .len();
        let r = deliver(
            server.smtp(),
            "carol@example.com",
            &["support@desk.test"],
            &again,
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        assert_eq!(
            server
                .store()
                .ticket_messages(ticket)
                .await
                .expect("messages")
                .len(),
            before,
            "a duplicate"
        );
        server.stop().await;
    }
);
