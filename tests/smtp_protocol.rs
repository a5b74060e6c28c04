//! The inbound SMTP server over real loopback sockets: extensions, DATA
//! un-stuffing, 8BITMIME/SMTPUTF8, CHUNKING, PIPELINING, STARTTLS, limits
//! and reply codes, "250 only after commit", and duplicate deliveries, on
//! every backend.

use crate::common;

use crate::common::tls::tls_handshake;
use crate::common::{
    Backend, Reply, SmtpClient, TestServer, backend_test, dot_stuff, message, ticket_of,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Client = SmtpClient<TcpStream>;

/// Connects and checks the 220 greeting.
async fn connect(server: &TestServer) -> Client {
    let (client, greeting) = SmtpClient::connect(server.smtp()).await;
    assert_eq!(
        greeting.code,
        220,
        "{}: {greeting:?}",
        server.backend.name()
    );
    client
}

/// Asserts a reply's code and that its text starts with `enhanced` (the
/// enhanced status code, or any prefix of the text).
#[track_caller]
fn expect(backend: &Backend, reply: &Reply, code: u16, enhanced: &str) {
    assert_eq!(reply.code, code, "{}: {reply:?}", backend.name());
    assert!(
        reply.text().starts_with(enhanced),
        "{}: expected {code} {enhanced}…, got {reply:?}",
        backend.name()
    );
}

async fn counts(server: &TestServer) -> (i64, i64) {
    server.store().counts().await.expect("counts")
}

/// The stored bytes of the one customer message in a ticket.
async fn customer_raw(server: &TestServer, ticket: i64) -> Vec<u8> {
    let messages = server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("ticket messages");
    let customer: Vec<_> = messages.iter().filter(|m| m.kind == "customer").collect();
    assert_eq!(
        customer.len(),
        1,
        "{}: ticket #{ticket} has {messages:?}",
        server.backend.name()
    );
    server
        .store()
        .raw_message(customer[0].id)
        .await
        .expect("raw message")
}

/// Asserts byte equality, showing both sides readably when they differ.
#[track_caller]
fn assert_bytes(backend: &Backend, stored: &[u8], sent: &[u8]) {
    assert!(
        stored == sent,
        "{}: stored bytes differ from sent bytes\nstored: {:?}\nsent:   {:?}",
        backend.name(),
        String::from_utf8_lossy(stored),
        String::from_utf8_lossy(sent)
    );
}

/// MAIL (with `mail_params`), RCPT…, DATA with dot-stuffed `raw`, after
/// EHLO; returns the final reply.
async fn transaction(
    client: &mut Client,
    backend: &Backend,
    mail: &str,
    rcpts: &[&str],
    raw: &[u8],
) -> Reply {
    let r = client.cmd(mail).await;
    expect(backend, &r, 250, "2.1.0");
    for rcpt in rcpts {
        let r = client.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        expect(backend, &r, 250, "2.1.5");
    }
    let r = client.cmd("DATA").await;
    assert_eq!(r.code, 354, "{}: {r:?}", backend.name());
    client.send_raw(&dot_stuff(raw)).await;
    client.send_raw(b".\r\n").await;
    client.reply().await
}

async fn ehlo(client: &mut Client, backend: &Backend) -> Reply {
    let r = client.cmd("EHLO client.test").await;
    assert_eq!(r.code, 250, "{}: {r:?}", backend.name());
    r
}

/// Reads one line from a raw socket a byte at a time, so that nothing after
/// it is consumed (what follows a STARTTLS reply belongs to TLS).
async fn read_raw_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let read = async {
        loop {
            let b = stream.read_u8().await.expect("read reply byte");
            line.push(b);
            if line.ends_with(b"\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("reply timeout");
    String::from_utf8(line).expect("utf-8 reply")
}

backend_test!(
    async fn greeting_ehlo_extensions_and_helo(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let (mut client, greeting) = SmtpClient::connect(server.smtp()).await;
        expect(&backend, &greeting, 220, "desk.test");

        let r = ehlo(&mut client, &backend).await;
        assert!(r.lines[0].starts_with("desk.test"), "{r:?}");
        let size = format!("SIZE {}", server.config.smtp.max_message_size);
        for extension in [
            "PIPELINING",
            size.as_str(),
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "STARTTLS",
        ] {
            assert!(
                r.lines.iter().any(|l| l == extension),
                "{}: EHLO lacks {extension}: {r:?}",
                backend.name()
            );
        }
        expect(&backend, &client.cmd("QUIT").await, 221, "2.0.0");
        assert!(client.is_closed().await);

        // HELO is enough for a transaction.
        let mut client = connect(&server).await;
        let r = client.cmd("HELO client.test").await;
        expect(&backend, &r, 250, "desk.test");
        let raw = message(
            "helo@client.test",
            "support@desk.test",
            "Hello via HELO",
            "helo-1@client.test",
            "",
            "Sent after HELO.",
        );
        let r = transaction(
            &mut client,
            &backend,
            "MAIL FROM:<helo@client.test>",
            &["support@desk.test"],
            &raw,
        )
        .await;
        let ticket = ticket_of(&r);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);
        server.stop().await;
    }
);

backend_test!(
    async fn data_is_unstuffed_byte_exact(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;

        // Body lines starting with dots, and a line that is just a dot.
        let body = ".starts with one dot\r\n..starts with two dots\r\n.\r\n...\r\n\
                    a . in the middle\r\n.\r\n\r\n..\r\nlast line";
        let raw = message(
            "dots@client.test",
            "support@desk.test",
            "Dots",
            "dots-1@client.test",
            "",
            body,
        );
        // The very first line of the DATA starting with "." or "..".
        let mut first_dot = b".a first line with one dot\r\n".to_vec();
        first_dot.extend(message(
            "dots@client.test",
            "support@desk.test",
            "First dot",
            "dots-2@client.test",
            "",
            "body",
        ));
        let mut first_dots = b"..a first line with two dots\r\n".to_vec();
        first_dots.extend(message(
            "dots@client.test",
            "support@desk.test",
            "First dots",
            "dots-3@client.test",
            "",
            "body",
        ));

        for sent in [&raw, &first_dot, &first_dots] {
            let r = client
                .send_mail("dots@client.test", &["support@desk.test"], sent)
                .await;
            let ticket = ticket_of(&r);
            assert_bytes(&backend, &customer_raw(&server, ticket).await, sent);
        }

        // The same with every line in its own TCP segment, and the final
        // ".\r\n" split as "." and "\r\n": un-stuffing and the end of data
        // are recognized across reads.
        let split = message(
            "dots@client.test",
            "support@desk.test",
            "Split",
            "dots-4@client.test",
            "",
            body,
        );
        ehlo(&mut client, &backend).await;
        expect(
            &backend,
            &client.cmd("MAIL FROM:<dots@client.test>").await,
            250,
            "2.1.0",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        assert_eq!(client.cmd("DATA").await.code, 354);
        let stuffed = dot_stuff(&split);
        for line in stuffed.split_inclusive(|&b| b == b'\n') {
            client.send_raw(line).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client.send_raw(b".").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.send_raw(b"\r\n").await;
        let ticket = ticket_of(&client.reply().await);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &split);

        // An empty DATA is stored too (nothing is dropped), as zero bytes.
        ehlo(&mut client, &backend).await;
        expect(
            &backend,
            &client.cmd("MAIL FROM:<empty@client.test>").await,
            250,
            "2.1.0",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        assert_eq!(client.cmd("DATA").await.code, 354);
        let r = client.cmd(".").await;
        let ticket = ticket_of(&r);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, b"");

        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");
        server.stop().await;
    }
);

backend_test!(
    async fn command_lines_split_across_reads(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        // A command in two segments, then one a byte at a time: the server
        // must wait for the rest of the line (and answer it), not spin. (A
        // server that spins on a partial line never yields, so a regression
        // shows as this test hanging, not failing.)
        client.send_raw(b"NO").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.send_raw(b"OP\r\n").await;
        expect(&backend, &client.reply().await, 250, "2.0.0");
        for b in b"EHLO slow.client.test\r\n" {
            client.send_raw(&[*b]).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let r = client.reply().await;
        assert_eq!(r.code, 250, "{}: {r:?}", backend.name());
        // A pipelined batch whose last command is incomplete: the complete
        // ones are answered before the rest of the last arrives.
        client
            .send_raw(b"MAIL FROM:<split@client.test>\r\nRCPT TO:<supp")
            .await;
        expect(&backend, &client.reply().await, 250, "2.1.0");
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.send_raw(b"ort@desk.test>\r\n").await;
        expect(&backend, &client.reply().await, 250, "2.1.5");
        expect(&backend, &client.cmd("RSET").await, 250, "2.0.0");
        server.stop().await;
    }
);

backend_test!(
    async fn eight_bit_mime_and_smtputf8(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;

        // 8BITMIME: raw UTF-8 and latin-1 bytes in the body, stored as sent.
        let mut raw = b"From: Eight <eight@client.test>\r\nTo: support@desk.test\r\n\
            Subject: 8bit\r\nMessage-ID: <8bit-1@client.test>\r\n\
            Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
            Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            .to_vec();
        raw.extend("Grüße aus Köln, 日本語のテキスト, emoji 📬\r\n".as_bytes());
        raw.extend(b"latin-1 bytes: caf\xe9 \xfcber \xff\xfe\x80\r\n");
        let r = transaction(
            &mut client,
            &backend,
            "MAIL FROM:<eight@client.test> BODY=8BITMIME",
            &["support@desk.test"],
            &raw,
        )
        .await;
        let ticket = ticket_of(&r);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);

        // SMTPUTF8: an internationalized sender, with UTF-8 headers.
        let utf8 = "From: Jörg <jörg@例え.jp>\r\nTo: support@desk.test\r\n\
            Subject: Größe prüfen\r\nMessage-ID: <utf8-1@例え.jp>\r\n\
            Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHallo, 例え!\r\n"
            .as_bytes()
            .to_vec();
        let r = transaction(
            &mut client,
            &backend,
            "MAIL FROM:<jörg@例え.jp> SMTPUTF8",
            &["support@desk.test"],
            &utf8,
        )
        .await;
        let ticket = ticket_of(&r);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &utf8);
        let messages = server.store().ticket_messages(ticket).await.expect("msgs");
        let stored = messages
            .iter()
            .find(|m| m.kind == "customer")
            .expect("customer message");
        assert_eq!(stored.envelope_from, "jörg@例え.jp", "{}", backend.name());
        assert_eq!(stored.sender, "jörg@例え.jp", "{}", backend.name());
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(t.customer_address, "jörg@例え.jp");
        server.stop().await;
    }
);

backend_test!(
    async fn bdat_chunks_are_stored_exactly(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;

        // BDAT is not dot-stuffed: dots and a lone "." line are content.
        let raw = message(
            "chunks@client.test",
            "support@desk.test",
            "Chunked",
            "bdat-1@client.test",
            "",
            "line one\r\n.\r\n..two dots stay two\r\nQUIT\r\nlast",
        );
        let (first, second) = raw.split_at(raw.len() / 2 + 3);
        expect(
            &backend,
            &client.cmd("MAIL FROM:<chunks@client.test>").await,
            250,
            "2.1.0",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        let mut chunk = format!("BDAT {}\r\n", first.len()).into_bytes();
        chunk.extend_from_slice(first);
        client.send_raw(&chunk).await;
        let r = client.reply().await;
        expect(&backend, &r, 250, "2.0.0");
        assert!(r.text().contains(&first.len().to_string()), "{r:?}");
        let mut chunk = format!("BDAT {} LAST\r\n", second.len()).into_bytes();
        chunk.extend_from_slice(second);
        client.send_raw(&chunk).await;
        let ticket = ticket_of(&client.reply().await);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);

        // Three chunks, the last announced by BDAT 0 LAST; the command and
        // its chunk in separate writes.
        let raw = message(
            "chunks@client.test",
            "support@desk.test",
            "Chunked with BDAT 0 LAST",
            "bdat-2@client.test",
            "",
            "some text\r\nmore text",
        );
        expect(
            &backend,
            &client.cmd("MAIL FROM:<chunks@client.test>").await,
            250,
            "2.1.0",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        for part in raw.chunks(raw.len() / 2 + 1) {
            client
                .send_raw(format!("BDAT {}\r\n", part.len()).as_bytes())
                .await;
            tokio::time::sleep(Duration::from_millis(10)).await;
            client.send_raw(part).await;
            expect(&backend, &client.reply().await, 250, "2.0.0");
        }
        let ticket = ticket_of(&client.cmd("BDAT 0 LAST").await);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);
        server.stop().await;
    }
);

backend_test!(
    async fn bdat_out_of_sequence(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        let before = counts(&server).await;

        // BDAT before MAIL: 503, and the chunk's bytes (which look like
        // commands) are read and dropped, not executed.
        let junk = b"QUIT\r\nRSET\r\nMAIL FROM:<x@y>\r\n";
        let mut chunk = format!("BDAT {}\r\n", junk.len()).into_bytes();
        chunk.extend_from_slice(junk);
        client.send_raw(&chunk).await;
        expect(&backend, &client.reply().await, 503, "5.5.1");
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");
        expect(&backend, &client.cmd("BDAT 0 LAST").await, 503, "5.5.1");

        // BDAT after MAIL but without a recipient: the same.
        expect(
            &backend,
            &client.cmd("MAIL FROM:<seq@client.test>").await,
            250,
            "2.1.0",
        );
        let mut chunk = format!("BDAT {} LAST\r\n", junk.len()).into_bytes();
        chunk.extend_from_slice(junk);
        client.send_raw(&chunk).await;
        expect(&backend, &client.reply().await, 503, "5.5.1");
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");

        // DATA after BDAT in the same transaction is 503; the transaction
        // survives and BDAT 0 LAST completes it.
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        let raw = message(
            "seq@client.test",
            "support@desk.test",
            "BDAT then DATA",
            "bdat-3@client.test",
            "",
            "body",
        );
        let mut chunk = format!("BDAT {}\r\n", raw.len()).into_bytes();
        chunk.extend_from_slice(&raw);
        client.send_raw(&chunk).await;
        expect(&backend, &client.reply().await, 250, "2.0.0");
        expect(&backend, &client.cmd("DATA").await, 503, "5.5.1");
        assert_eq!(counts(&server).await, before, "{}", backend.name());
        let ticket = ticket_of(&client.cmd("BDAT 0 LAST").await);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);
        server.stop().await;
    }
);

backend_test!(
    async fn pipelining(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        let r = ehlo(&mut client, &backend).await;
        assert!(r.lines.iter().any(|l| l == "PIPELINING"), "{r:?}");

        let raw = message(
            "pipe@client.test",
            "support@desk.test, billing@desk.test",
            "Pipelined",
            "pipe-1@client.test",
            "",
            ".dotted\r\nbody",
        );
        client
            .send_raw(
                b"MAIL FROM:<pipe@client.test>\r\nRCPT TO:<support@desk.test>\r\n\
                  RCPT TO:<billing@desk.test>\r\nDATA\r\n",
            )
            .await;
        expect(&backend, &client.reply().await, 250, "2.1.0");
        expect(&backend, &client.reply().await, 250, "2.1.5");
        expect(&backend, &client.reply().await, 250, "2.1.5");
        assert_eq!(client.reply().await.code, 354);
        // The final dot, RSET and NOOP in one write.
        let mut data = dot_stuff(&raw);
        data.extend_from_slice(b".\r\nRSET\r\nNOOP\r\n");
        client.send_raw(&data).await;
        let ticket = ticket_of(&client.reply().await);
        expect(&backend, &client.reply().await, 250, "2.0.0 Reset");
        expect(&backend, &client.reply().await, 250, "2.0.0 OK");
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);

        // A failing recipient in the middle of a batch is answered in its
        // place; RSET and NOOP pipelined after the final reply.
        let raw = message(
            "pipe@client.test",
            "support@desk.test",
            "Pipelined again",
            "pipe-2@client.test",
            "",
            "body",
        );
        client
            .send_raw(
                b"MAIL FROM:<pipe@client.test>\r\nRCPT TO:<support@desk.test>\r\n\
                  RCPT TO:<nobody@desk.test>\r\nRCPT TO:<billing@desk.test>\r\nDATA\r\n",
            )
            .await;
        expect(&backend, &client.reply().await, 250, "2.1.0");
        expect(&backend, &client.reply().await, 250, "2.1.5");
        expect(&backend, &client.reply().await, 550, "5.1.1");
        expect(&backend, &client.reply().await, 250, "2.1.5");
        assert_eq!(client.reply().await.code, 354);
        client.send_raw(&dot_stuff(&raw)).await;
        client.send_raw(b".\r\n").await;
        let ticket = ticket_of(&client.reply().await);
        client.send_raw(b"RSET\r\nNOOP\r\n").await;
        expect(&backend, &client.reply().await, 250, "2.0.0 Reset");
        expect(&backend, &client.reply().await, 250, "2.0.0 OK");
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);
        server.stop().await;
    }
);

backend_test!(
    async fn starttls_then_mail(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        let r = ehlo(&mut client, &backend).await;
        assert!(r.lines.iter().any(|l| l == "STARTTLS"), "{r:?}");
        let mut tcp = client.into_inner();
        tcp.write_all(b"STARTTLS\r\n").await.expect("write");
        let line = read_raw_line(&mut tcp).await;
        assert!(
            line.starts_with("220 2.0.0"),
            "{}: {line:?}",
            backend.name()
        );
        let mut client = SmtpClient::wrap(tls_handshake(tcp).await);

        // A fresh session: EHLO again, without STARTTLS now.
        expect(
            &backend,
            &client.cmd("MAIL FROM:<tls@client.test>").await,
            503,
            "5.5.1",
        );
        let r = client.cmd("EHLO client.test").await;
        assert_eq!(r.code, 250, "{r:?}");
        assert!(!r.lines.iter().any(|l| l == "STARTTLS"), "{r:?}");
        assert!(r.lines.iter().any(|l| l == "CHUNKING"), "{r:?}");
        expect(&backend, &client.cmd("STARTTLS").await, 503, "5.5.1");

        let raw = message(
            "tls@client.test",
            "support@desk.test",
            "Over TLS",
            "tls-1@client.test",
            "",
            "secret\r\n.dot",
        );
        let r = client
            .send_mail("tls@client.test", &["support@desk.test"], &raw)
            .await;
        let ticket = ticket_of(&r);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);
        expect(&backend, &client.cmd("QUIT").await, 221, "2.0.0");
        server.stop().await;
    }
);

backend_test!(
    async fn starttls_discards_pipelined_commands(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        let mut tcp = client.into_inner();
        // Commands pipelined after STARTTLS were sent in clear text: they
        // must be discarded, neither answered in clear text (which would
        // break the handshake: the 220 line is read byte by byte) nor
        // executed after the handshake (their replies would come first).
        tcp.write_all(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<x@y.test>\r\n")
            .await
            .expect("write");
        let line = read_raw_line(&mut tcp).await;
        assert!(
            line.starts_with("220 2.0.0"),
            "{}: {line:?}",
            backend.name()
        );
        let mut client = SmtpClient::wrap(tls_handshake(tcp).await);
        let r = client.cmd("EHLO client.test").await;
        assert_eq!(r.code, 250, "{}: {r:?}", backend.name());
        assert!(r.lines[0].contains("Hello client.test"), "{r:?}");
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            503,
            "5.5.1",
        );
        expect(
            &backend,
            &client.cmd("MAIL FROM:<tls@client.test>").await,
            250,
            "2.1.0",
        );
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");
        server.stop().await;
    }
);

backend_test!(
    async fn size_declared_too_big_is_552(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        let max = server.config.smtp.max_message_size;
        let r = client
            .cmd(&format!("MAIL FROM:<big@client.test> SIZE={}", max + 1))
            .await;
        expect(&backend, &r, 552, "5.3.4");
        let r = client
            .cmd(&format!("MAIL FROM:<big@client.test> SIZE={max}"))
            .await;
        expect(&backend, &r, 250, "2.1.0");
        server.stop().await;
    }
);

backend_test!(
    async fn oversized_messages_are_552_and_not_stored(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.smtp.max_message_size = 2000).await;
        let mut client = connect(&server).await;
        let r = ehlo(&mut client, &backend).await;
        assert!(r.lines.iter().any(|l| l == "SIZE 2000"), "{r:?}");
        let before = counts(&server).await;

        // DATA: refused after the final dot, nothing stored, session goes on.
        let big = message(
            "big@client.test",
            "support@desk.test",
            "Too big",
            "big-1@client.test",
            "",
            &"0123456789abcdef\r\n".repeat(300),
        );
        assert!(big.len() > 5000);
        let r = transaction(
            &mut client,
            &backend,
            "MAIL FROM:<big@client.test>",
            &["support@desk.test"],
            &big,
        )
        .await;
        expect(&backend, &r, 552, "5.3.4");
        assert_eq!(counts(&server).await, before, "{}", backend.name());
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");

        // BDAT: the same, over two chunks.
        expect(
            &backend,
            &client.cmd("MAIL FROM:<big@client.test>").await,
            250,
            "2.1.0",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        let (first, second) = big.split_at(1500);
        let mut chunk = format!("BDAT {}\r\n", first.len()).into_bytes();
        chunk.extend_from_slice(first);
        client.send_raw(&chunk).await;
        expect(&backend, &client.reply().await, 250, "2.0.0");
        let mut chunk = format!("BDAT {} LAST\r\n", second.len()).into_bytes();
        chunk.extend_from_slice(second);
        client.send_raw(&chunk).await;
        expect(&backend, &client.reply().await, 552, "5.3.4");
        assert_eq!(counts(&server).await, before, "{}", backend.name());
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");

        // Exactly at the limit is accepted; one byte more is not.
        let mut exact = message(
            "big@client.test",
            "support@desk.test",
            "Just fits",
            "big-2@client.test",
            "",
            "",
        );
        let pad = 2000 - exact.len() - 2;
        exact.extend(std::iter::repeat_n(b'x', pad));
        exact.extend_from_slice(b"\r\n");
        assert_eq!(exact.len(), 2000);
        let mut over = exact.clone();
        over.insert(over.len() - 2, b'y');
        let r = transaction(
            &mut client,
            &backend,
            "MAIL FROM:<big@client.test>",
            &["support@desk.test"],
            &over,
        )
        .await;
        expect(&backend, &r, 552, "5.3.4");
        let r = transaction(
            &mut client,
            &backend,
            "MAIL FROM:<big@client.test>",
            &["support@desk.test"],
            &exact,
        )
        .await;
        let ticket = ticket_of(&r);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &exact);
        server.stop().await;
    }
);

backend_test!(
    async fn recipients_unknown_plus_and_too_many(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.smtp.max_recipients = 2).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        expect(
            &backend,
            &client.cmd("MAIL FROM:<rcpt@client.test>").await,
            250,
            "2.1.0",
        );
        for unknown in ["nobody@desk.test", "support@elsewhere.test"] {
            let r = client.cmd(&format!("RCPT TO:<{unknown}>")).await;
            expect(&backend, &r, 550, "5.1.1");
        }
        expect(
            &backend,
            &client.cmd("RCPT TO:<support+7@desk.test>").await,
            250,
            "2.1.5",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<Billing@Desk.Test>").await,
            250,
            "2.1.5",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            452,
            "4.5.3",
        );
        // The transaction goes on with the two accepted recipients.
        assert_eq!(client.cmd("DATA").await.code, 354);
        let raw = message(
            "rcpt@client.test",
            "support+7@desk.test",
            "Plus address",
            "rcpt-1@client.test",
            "",
            "body",
        );
        client.send_raw(&dot_stuff(&raw)).await;
        client.send_raw(b".\r\n").await;
        let ticket = ticket_of(&client.reply().await);
        let stored = server.store().ticket_messages(ticket).await.expect("msgs");
        let stored = stored.iter().find(|m| m.kind == "customer").expect("msg");
        assert!(
            stored.envelope_to.contains("support+7@desk.test")
                && stored.envelope_to.contains("billing@desk.test"),
            "{}: {stored:?}",
            backend.name()
        );
        server.stop().await;
    }
);

backend_test!(
    async fn overlong_command_lines_are_500(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.smtp.max_line_length = 600).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;

        // 600 octets with CRLF is allowed; 601 is not.
        let fits = format!("NOOP {}", "x".repeat(600 - 5 - 2));
        expect(&backend, &client.cmd(&fits).await, 250, "2.0.0");
        let long = format!("NOOP {}", "x".repeat(600 - 5 - 1));
        expect(&backend, &client.cmd(&long).await, 500, "5.5.2");
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");

        // Much longer, in the middle of a transaction, which survives.
        expect(
            &backend,
            &client.cmd("MAIL FROM:<long@client.test>").await,
            250,
            "2.1.0",
        );
        let long = format!("RCPT TO:<{}@desk.test>", "a".repeat(5000));
        expect(&backend, &client.cmd(&long).await, 500, "5.5.2");
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );

        // A long line without its end yet: refused before it ends, and the
        // rest of it, when it comes, is skipped without a second reply.
        client.send_raw("A".repeat(1000).as_bytes()).await;
        expect(&backend, &client.reply().await, 500, "5.5.2");
        client.send_raw("B".repeat(3000).as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.send_raw(b"CCC\r\nNOOP\r\n").await;
        expect(&backend, &client.reply().await, 250, "2.0.0");
        expect(&backend, &client.cmd("RSET").await, 250, "2.0.0 Reset");
        server.stop().await;
    }
);

backend_test!(
    async fn idle_clients_time_out_with_421(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.smtp.command_timeout = 1).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        let started = std::time::Instant::now();
        let r = client.reply().await;
        expect(&backend, &r, 421, "4.4.2");
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert!(client.is_closed().await, "{}", backend.name());
        server.stop().await;

        // A stalled DATA transfer times out as well, and nothing is stored.
        let server = TestServer::start_with(&backend, |c| c.smtp.data_timeout = 1).await;
        let before = counts(&server).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        expect(
            &backend,
            &client.cmd("MAIL FROM:<slow@client.test>").await,
            250,
            "2.1.0",
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        assert_eq!(client.cmd("DATA").await.code, 354);
        client.send_raw(b"Subject: stalled\r\n\r\npart").await;
        expect(&backend, &client.reply().await, 421, "4.4.2");
        assert!(client.is_closed().await, "{}", backend.name());
        assert_eq!(counts(&server).await, before, "{}", backend.name());
        server.stop().await;
    }
);

backend_test!(
    async fn a_trickling_client_cannot_outlast_the_transfer_deadline(backend: Backend) {
        // With a per-read timeout of 2 s, a byte every 300 ms until 1.6 s would
        // keep the session until 3.6 s; the deadline for the whole transfer
        // ends it at 2 s.
        let server = TestServer::start_with(&backend, |c| {
            c.smtp.data_timeout = 2;
            c.smtp.command_timeout = 2;
        })
        .await;
        let before = counts(&server).await;
        for in_data in [true, false] {
            let mut client = connect(&server).await;
            ehlo(&mut client, &backend).await;
            if in_data {
                assert_eq!(client.cmd("MAIL FROM:<slow@client.test>").await.code, 250);
                assert_eq!(client.cmd("RCPT TO:<support@desk.test>").await.code, 250);
                assert_eq!(client.cmd("DATA").await.code, 354);
            }
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_millis(1600) {
                client.send_raw(if in_data { b"x" } else { b"N" }).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            expect(&backend, &client.reply().await, 421, "4.4.2");
            let elapsed = started.elapsed();
            assert!(
                elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(3200),
                "421 after {elapsed:?} (in DATA: {in_data})"
            );
            assert!(client.is_closed().await);
        }
        assert_eq!(counts(&server).await, before);
        server.stop().await;
    }
);

backend_test!(
    async fn the_bdat_chunk_that_goes_over_the_limit_is_refused(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.smtp.max_message_size = 2000).await;
        let before = counts(&server).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        assert_eq!(client.cmd("MAIL FROM:<big@client.test>").await.code, 250);
        assert_eq!(client.cmd("RCPT TO:<support@desk.test>").await.code, 250);
        client.send_raw(b"BDAT 1500\r\n").await;
        client.send_raw(&[b'a'; 1500]).await;
        assert_eq!(client.reply().await.code, 250);
        client.send_raw(b"BDAT 1500\r\n").await;
        client.send_raw(&[b'b'; 1500]).await;
        expect(&backend, &client.reply().await, 552, "5.3.4");
        // The transaction is over: a further chunk is read and refused.
        client.send_raw(b"BDAT 10 LAST\r\n0123456789").await;
        assert_eq!(client.reply().await.code, 503);
        assert_eq!(client.cmd("NOOP").await.code, 250);
        assert_eq!(counts(&server).await, before);
        server.stop().await;
    }
);

backend_test!(
    async fn too_many_connections_get_421(backend: Backend) {
        let server = TestServer::start_with(&backend, |c| c.smtp.max_connections = 1).await;
        let mut first = connect(&server).await;
        ehlo(&mut first, &backend).await;

        let (mut second, greeting) = SmtpClient::connect(server.smtp()).await;
        expect(&backend, &greeting, 421, "4.7.0");
        assert!(second.is_closed().await, "{}", backend.name());
        // The first connection is unaffected.
        expect(&backend, &first.cmd("NOOP").await, 250, "2.0.0");
        expect(&backend, &first.cmd("QUIT").await, 221, "2.0.0");
        assert!(first.is_closed().await);

        // Its slot is free again once it has gone.
        let mut accepted = false;
        for _ in 0..100 {
            let (mut client, greeting) = SmtpClient::connect(server.smtp()).await;
            if greeting.code == 220 {
                expect(&backend, &client.cmd("QUIT").await, 221, "2.0.0");
                accepted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(accepted, "{}: slot not released", backend.name());
        server.stop().await;
    }
);

backend_test!(
    async fn command_sequence_errors(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        expect(
            &backend,
            &client.cmd("MAIL FROM:<seq@client.test>").await,
            503,
            "5.5.1",
        );
        ehlo(&mut client, &backend).await;
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            503,
            "5.5.1",
        );
        expect(&backend, &client.cmd("DATA").await, 503, "5.5.1");
        expect(
            &backend,
            &client.cmd("MAIL FROM:<seq@client.test>").await,
            250,
            "2.1.0",
        );
        expect(
            &backend,
            &client.cmd("MAIL FROM:<seq@client.test>").await,
            503,
            "5.5.1",
        );
        let r = client.cmd("DATA").await;
        assert!(
            r.code == 554 || r.code == 503,
            "{}: DATA without RCPT: {r:?}",
            backend.name()
        );
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            250,
            "2.1.5",
        );
        // RSET clears the transaction.
        expect(&backend, &client.cmd("RSET").await, 250, "2.0.0");
        expect(&backend, &client.cmd("DATA").await, 503, "5.5.1");
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            503,
            "5.5.1",
        );
        // So does a new EHLO.
        expect(
            &backend,
            &client.cmd("MAIL FROM:<seq@client.test>").await,
            250,
            "2.1.0",
        );
        ehlo(&mut client, &backend).await;
        expect(
            &backend,
            &client.cmd("RCPT TO:<support@desk.test>").await,
            503,
            "5.5.1",
        );
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");
        assert_eq!(counts(&server).await.0, 0, "{}", backend.name());
        server.stop().await;
    }
);

backend_test!(
    async fn other_commands_and_quit(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut client = connect(&server).await;
        ehlo(&mut client, &backend).await;
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");
        expect(
            &backend,
            &client.cmd("VRFY support@desk.test").await,
            252,
            "2.1.5",
        );
        expect(&backend, &client.cmd("FROBNICATE").await, 500, "5.5.1");
        expect(
            &backend,
            &client.cmd("AUTH PLAIN AGFiYwBkZWY=").await,
            503,
            "5.5.1",
        );
        expect(&backend, &client.cmd("EXPN support").await, 502, "5.5.1");
        expect(&backend, &client.cmd("HELP").await, 214, "2.0.0");
        expect(
            &backend,
            &client.cmd("LHLO client.test").await,
            500,
            "5.5.1",
        );
        expect(&backend, &client.cmd("MAIL FROM:<a b>").await, 501, "5.");
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");
        expect(&backend, &client.cmd("QUIT").await, 221, "2.0.0");
        assert!(client.is_closed().await, "{}", backend.name());

        // A client that does nothing but make errors is sent away.
        let mut client = connect(&server).await;
        client.send_raw("FOO\r\n".repeat(20).as_bytes()).await;
        for _ in 0..20 {
            expect(&backend, &client.reply().await, 500, "5.5.1");
        }
        expect(&backend, &client.reply().await, 421, "4.7.0");
        assert!(client.is_closed().await, "{}", backend.name());
        server.stop().await;
    }
);

backend_test!(
    async fn reply_250_only_after_commit(backend: Backend) {
        let server = TestServer::start(&backend).await;
        common::install_failing_trigger(&server).await;
        let before = counts(&server).await;
        let mut client = connect(&server).await;

        let failing = message(
            "commit@client.test",
            "support@desk.test",
            "fail-me",
            "commit-1@client.test",
            "",
            "This one cannot be stored yet.",
        );
        let r = client
            .send_mail("commit@client.test", &["support@desk.test"], &failing)
            .await;
        expect(&backend, &r, 451, "4.3.0");
        assert_eq!(counts(&server).await, before, "{}", backend.name());

        // The session goes on, and other mail is stored meanwhile.
        expect(&backend, &client.cmd("NOOP").await, 250, "2.0.0");
        let fine = message(
            "commit@client.test",
            "support@desk.test",
            "fine",
            "commit-2@client.test",
            "",
            "This one is fine.",
        );
        let r = client
            .send_mail("commit@client.test", &["support@desk.test"], &fine)
            .await;
        let ticket = ticket_of(&r);
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &fine);
        let after_fine = counts(&server).await;
        assert_eq!(after_fine.1, before.1 + 1, "{}", backend.name());

        // The retry after the fault is gone is accepted, and stored once.
        common::drop_failing_trigger(&server).await;
        let r = client
            .send_mail("commit@client.test", &["support@desk.test"], &failing)
            .await;
        let retried = ticket_of(&r);
        assert!(r.text().contains("accepted"), "{r:?}");
        assert_ne!(retried, ticket);
        assert_bytes(&backend, &customer_raw(&server, retried).await, &failing);
        let after = counts(&server).await;
        assert_eq!(after.1, before.1 + 2, "{}", backend.name());
        assert_eq!(
            after.0 - after_fine.0,
            after_fine.0 - before.0,
            "{}: the retry stores as much as one message does",
            backend.name()
        );
        expect(&backend, &client.cmd("QUIT").await, 221, "2.0.0");
        server.stop().await;
    }
);

backend_test!(
    async fn duplicate_deliveries_are_stored_once(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let before = counts(&server).await;
        let raw = message(
            "dup@client.test",
            "support@desk.test",
            "Sent twice",
            "dup-1@client.test",
            "",
            "The client did not see our 250.",
        );
        let first = common::deliver(
            server.smtp(),
            "dup@client.test",
            &["support@desk.test"],
            &raw,
        )
        .await;
        let ticket = ticket_of(&first);
        assert!(first.text().contains("accepted"), "{first:?}");
        let stored = counts(&server).await;
        assert_eq!(stored.1, before.1 + 1);

        let second = common::deliver(
            server.smtp(),
            "dup@client.test",
            &["support@desk.test"],
            &raw,
        )
        .await;
        assert_eq!(ticket_of(&second), ticket, "{second:?}");
        assert!(second.text().contains("already stored"), "{second:?}");
        assert_eq!(counts(&server).await, stored, "{}", backend.name());
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &raw);

        // Two queue addresses in one transaction: one message, one ticket,
        // in the queue of the first.
        let before = counts(&server).await;
        let both = message(
            "dup@client.test",
            "support@desk.test, billing@desk.test",
            "To both queues",
            "dup-2@client.test",
            "",
            "One ticket, please.",
        );
        let r = common::deliver(
            server.smtp(),
            "dup@client.test",
            &["support@desk.test", "billing@desk.test"],
            &both,
        )
        .await;
        let ticket = ticket_of(&r);
        assert_eq!(counts(&server).await.1, before.1 + 1, "{}", backend.name());
        assert_bytes(&backend, &customer_raw(&server, ticket).await, &both);
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(t.queue, "support", "{}", backend.name());
        server.stop().await;
    }
);

backend_test!(
    async fn shutdown_finishes_transfers_and_sends_idle_clients_away(backend: Backend) {
        let server = TestServer::start(&backend).await;
        let mut idle = connect(&server).await;
        ehlo(&mut idle, &backend).await;
        let mut busy = connect(&server).await;
        ehlo(&mut busy, &backend).await;
        assert_eq!(busy.cmd("MAIL FROM:<late@client.test>").await.code, 250);
        assert_eq!(busy.cmd("RCPT TO:<support@desk.test>").await.code, 250);
        assert_eq!(busy.cmd("DATA").await.code, 354);
        busy.send_raw(b"From: late@client.test\r\nSubject: just in time\r\n")
            .await;

        let stopped = tokio::spawn(server.stop());
        expect(&backend, &idle.reply().await, 421, "4.3.2");
        assert!(idle.is_closed().await);

        // The transfer under way is finished and acknowledged after its commit…
        busy.send_raw(b"Message-ID: <late@client.test>\r\n\r\nbody\r\n.\r\n")
            .await;
        let accepted = busy.reply().await;
        assert_eq!(accepted.code, 250, "{accepted:?}");
        assert!(accepted.text().contains("ticket #"), "{accepted:?}");
        // …and then the session is ended too.
        expect(&backend, &busy.reply().await, 421, "4.3.2");
        assert!(busy.is_closed().await);
        tokio::time::timeout(Duration::from_secs(30), stopped)
            .await
            .expect("shutdown finished")
            .expect("join");
    }
);
