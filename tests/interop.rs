//! Real mail clients against a real postdesk: swaks (STARTTLS, PIPELINING,
//! and an agent's AUTH on the submission port) and Python's smtplib
//! (STARTTLS, UTF-8 headers, a reply). `.ci/run` installs swaks; elsewhere a
//! missing swaks skips its part with a notice.

use crate::common;

use crate::common::{Backend, TestServer, backend_test};
use std::process::Command;

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

fn require(program: &str) -> bool {
    if have(program) {
        return true;
    }
    assert!(
        !common::in_ci(),
        "{program} is required in CI (.ci/run installs it)"
    );
    eprintln!("notice: {program} is not installed; its interop test is skipped");
    false
}

backend_test!(
    async fn swaks_delivers_over_starttls_and_with_pipelining(backend: Backend) {
        if !require("swaks") {
            return;
        }
        let server = TestServer::start(&backend).await;
        let addr = server.smtp();
        let run = |args: Vec<String>| {
            tokio::task::spawn_blocking(move || {
                Command::new("swaks").args(args).output().expect("swaks")
            })
        };
        let base = |extra: &[&str]| {
            let mut args: Vec<String> = [
                "--server",
                &addr.ip().to_string(),
                "--port",
                &addr.port().to_string(),
                "--from",
                "swaks@example.com",
                "--to",
                "support@desk.test",
                "--header",
                "Subject: Printer on fire",
                "--body",
                "Sent by swaks",
                "--helo",
                "client.example.com",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        for extra in [
            vec!["--tls"],
            vec!["--pipeline"],
            vec!["--tls", "--pipeline"],
        ] {
            let output = run(base(&extra)).await.expect("join");
            let transcript = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "swaks {extra:?}:\n{transcript}");
            assert!(
                transcript.contains("250 2.0.0 Message accepted as ticket #"),
                "{transcript}"
            );
            if extra.contains(&"--tls") {
                assert!(transcript.contains("TLS started"), "{transcript}");
            }
        }
        // An unknown recipient is refused with 550 and swaks reports it.
        let mut args = base(&[]);
        let to = args
            .iter()
            .position(|a| a == "support@desk.test")
            .expect("to");
        args[to] = "nobody@desk.test".into();
        let output = run(args).await.expect("join");
        assert!(String::from_utf8_lossy(&output.stdout).contains("550 5.1.1"));
        let tickets = server
            .store()
            .tickets(&Default::default())
            .await
            .expect("tickets");
        assert_eq!(tickets.len(), 3, "{}", backend.name());
        assert!(
            tickets.iter().all(
                |t| t.subject == "Printer on fire" && t.customer_address == "swaks@example.com"
            )
        );
        server.stop().await;
    }
);

backend_test!(
    async fn swaks_submits_an_agent_reply_with_auth_over_starttls(backend: Backend) {
        if !require("swaks") {
            return;
        }
        // No loopback exemption: AUTH only after STARTTLS, as from outside.
        let server = TestServer::start_with(&backend, |c| {
            c.submission.plaintext_auth_on_loopback = false;
        })
        .await;
        common::imap::add_agent(&server, "alice@desk.test", &["support"], false).await;
        let customer = common::message(
            "carol@example.com",
            "support@desk.test",
            "Printer on fire",
            "swaks-c1@example.com",
            "",
            "Help",
        );
        let ticket = common::ticket_of(
            &common::deliver(
                server.smtp(),
                "carol@example.com",
                &["support@desk.test"],
                &customer,
            )
            .await,
        );
        let addr = server.submission();
        // swaks as an agent: STARTTLS, AUTH PLAIN, then `extra`.
        let swaks_as_alice = |password: &str, extra: &[&str]| {
            let mut args: Vec<String> = [
                "--server",
                &addr.ip().to_string(),
                "--port",
                &addr.port().to_string(),
                "--tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice@desk.test",
                "--auth-password",
                password,
                "--from",
                "alice@desk.test",
                "--to",
                "carol@example.com",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            tokio::task::spawn_blocking(move || {
                Command::new("swaks").args(args).output().expect("swaks")
            })
        };
        let output = swaks_as_alice(
            "secret",
            &[
                "--header",
                "Subject: Re: Printer on fire",
                "--header",
                "In-Reply-To: <swaks-c1@example.com>",
                "--body",
                "#tag hardware\n\nA technician is on the way.",
            ],
        )
        .await
        .expect("join");
        let transcript = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{transcript}");
        assert!(transcript.contains("235 2.7.0"), "{transcript}");
        assert!(
            transcript.contains(&format!(
                "250 2.0.0 Reply to #{ticket} queued for 1 recipient"
            )),
            "{transcript}"
        );
        let t = server.store().ticket(ticket).await.expect("ticket");
        assert_eq!(t.tags, vec!["hardware".to_string()]);
        let queued = server.outbound(None).await;
        assert!(
            queued
                .iter()
                .any(|o| o.purpose == "reply" && o.rcpt_to == "carol@example.com")
        );
        // A wrong password is refused with 535 and nothing is sent.
        let output = swaks_as_alice("wrong", &[]).await.expect("join");
        assert!(String::from_utf8_lossy(&output.stdout).contains("535 5.7.8"));
        server.stop().await;
    }
);

backend_test!(
    async fn python_smtplib_sends_a_thread(backend: Backend) {
        if !require("python3") {
            return;
        }
        let server = TestServer::start(&backend).await;
        let port = server.smtp().port();
        let script = format!(
            r#"
import smtplib, ssl
from email.message import EmailMessage
first = EmailMessage()
first["From"] = "Jörg Müller <joerg@example.de>"
first["To"] = "support@desk.test"
first["Subject"] = "Drucker brennt – dringend"
first["Message-ID"] = "<py1@example.de>"
first.set_content("Grüße\n.a line starting with a dot\n")
reply = EmailMessage()
reply["From"] = "joerg@example.de"
reply["To"] = "support@desk.test"
reply["Subject"] = "AW: Drucker brennt – dringend"
reply["Message-ID"] = "<py2@example.de>"
reply["In-Reply-To"] = "<py1@example.de>"
reply.set_content("Noch da?")
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.starttls(context=context)
    s.send_message(first)
    s.send_message(reply)
print("sent")
"#
        );
        let output = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg("-c")
                .arg(script)
                .output()
                .expect("python3")
        })
        .await
        .expect("join");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tickets = server
            .store()
            .tickets(&Default::default())
            .await
            .expect("tickets");
        assert_eq!(tickets.len(), 1, "{tickets:?}");
        assert_eq!(tickets[0].subject, "Drucker brennt – dringend");
        assert_eq!(tickets[0].customer_name.as_deref(), Some("Jörg Müller"));
        assert_eq!(
            tickets[0].message_count, 3,
            "two customer messages and the acknowledgement"
        );
        server.stop().await;
    }
);
