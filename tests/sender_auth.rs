//! Inbound authentication over real sockets: SPF, DKIM and DMARC checked
//! by mail-auth against a real DNS server of the test's own (on 127.0.0.1,
//! answering from a table), test mail DKIM-signed with mail-auth's signer
//! and an Ed25519 key made here; a trusted relay's Authentication-Results
//! header, and an untrusted client's; a DNS server that never answers; and
//! the hourly acknowledgement caps, also with two nodes on one database.

use crate::common::dns::DnsStub;
use crate::common::{Backend, TestServer, backend_test, deliver, eventually, message, ticket_of};
use base64::Engine;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use postdesk::config::{Config, VerifyMode};
use postdesk::domain::sender_auth::{AuthSource, AuthVerdict, DmarcPolicy, SenderAuth};
use postdesk::domain::ticket::EventKind;
use ring::signature::KeyPair;
use std::time::{Duration, Instant};

/// Every server here tags a ticket whose mail passed DMARC, so that each
/// scenario also shows what rules see.
const RULES: &str = r#"
[[rule]]
name = "Authenticated"
when = 'auth.dmarc == "pass"'
tags = ["dmarc-pass"]
"#;

/// A server that checks senders against `dns` (`verify = "dmarc"`), with
/// the rules above; the directory holds the rules file.
async fn checking_server(
    backend: &Backend,
    dns: &DnsStub,
    tweak: impl FnOnce(&mut Config),
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).expect("rules");
    let dns = dns.addr;
    let server = TestServer::start_with(backend, |c| {
        c.smtp.verify = VerifyMode::Dmarc;
        c.smtp.dns_servers = vec![dns];
        c.smtp.dns_timeout = 1;
        c.rules = Some(rules);
        tweak(c);
    })
    .await;
    (server, dir)
}

/// A fresh Ed25519 key (PKCS#8) for mail-auth's signer, and its DNS record.
fn dkim_key() -> (Vec<u8>, String) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key pair");
    let public = base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref());
    (
        pkcs8.as_ref().to_vec(),
        format!("v=DKIM1; k=ed25519; p={public}"),
    )
}

/// `raw` with a DKIM-Signature of `domain` (selector `sel`) on top.
fn signed(pkcs8: &[u8], domain: &str, raw: &[u8]) -> Vec<u8> {
    let key = Ed25519Key::from_pkcs8_der(pkcs8).expect("mail-auth key");
    let signature = DkimSigner::from_key(key)
        .domain(domain)
        .selector("sel")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(raw)
        .expect("sign");
    let mut out = signature.to_header().into_bytes();
    out.extend_from_slice(raw);
    out
}

/// The stored verdicts of a ticket's first message.
async fn stored_auth(server: &TestServer, ticket: i64) -> Option<SenderAuth> {
    server
        .store()
        .ticket_messages(ticket)
        .await
        .expect("messages")
        .into_iter()
        .next()
        .and_then(|m| m.auth)
}

/// The raw acknowledgements queued to `to`.
async fn acks_to(server: &TestServer, to: &str) -> Vec<String> {
    let mut raws = Vec::new();
    for item in server.outbound(None).await {
        if item.purpose == "ack" && item.rcpt_to == to {
            let message = item.message.expect("ack message");
            let raw = server.store().raw_message(message).await.expect("raw");
            raws.push(String::from_utf8_lossy(&raw).into_owned());
        }
    }
    raws
}

async fn tags(server: &TestServer, ticket: i64) -> Vec<String> {
    server.store().ticket(ticket).await.expect("ticket").tags
}

async fn suppressions(server: &TestServer, ticket: i64) -> Vec<String> {
    server
        .store()
        .ticket_events(ticket)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == EventKind::AutoReplySuppressed)
        .map(|e| e.detail)
        .collect()
}

backend_test!(
    async fn aligned_dkim_passes_dmarc_and_gets_the_full_acknowledgement(backend: Backend) {
        let dns = DnsStub::start().await;
        let (key, record) = dkim_key();
        dns.txt("good.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.good.test", "v=DMARC1; p=reject")
            .txt("sel._domainkey.good.test", &record);
        let (server, _rules) = checking_server(&backend, &dns, |_| {}).await;
        let body = message(
            "Grace Hopper <grace@good.test>",
            "support@desk.test",
            "Compiler question",
            "g1@good.test",
            "",
            "How do I link?",
        );
        let reply = deliver(
            server.smtp(),
            "grace@good.test",
            &["support@desk.test"],
            &signed(&key, "good.test", &body),
        )
        .await;
        let ticket = ticket_of(&reply);
        assert_eq!(
            stored_auth(&server, ticket).await,
            Some(SenderAuth {
                spf: AuthVerdict::Pass,
                dkim: AuthVerdict::Pass,
                dmarc: AuthVerdict::Pass,
                policy: Some(DmarcPolicy::Reject),
                domain: Some("good.test".into()),
                source: AuthSource::Verified,
            })
        );
        let acks = acks_to(&server, "grace@good.test").await;
        assert_eq!(acks.len(), 1);
        assert!(
            acks[0].contains(&format!("Subject: [#{ticket}] Compiler question")),
            "{}",
            acks[0]
        );
        assert!(acks[0].contains("Hello Grace Hopper,"), "{}", acks[0]);
        assert_eq!(tags(&server, ticket).await, vec!["dmarc-pass".to_string()]);
        assert!(
            dns.queries()
                .iter()
                .any(|q| q == "sel._domainkey.good.test TXT"),
            "{:?}",
            dns.queries()
        );

        // Authenticated, but answered elsewhere (Reply-To): DMARC vouches
        // for the From address only, so that one repeats nothing.
        let body = message(
            "Grace Hopper <grace@good.test>",
            "support@desk.test",
            "Buy cheap pills",
            "g2@good.test",
            "Reply-To: someone@else.test\r\n",
            "Hello",
        );
        let ticket = ticket_of(
            &deliver(
                server.smtp(),
                "grace@good.test",
                &["support@desk.test"],
                &signed(&key, "good.test", &body),
            )
            .await,
        );
        assert_eq!(
            stored_auth(&server, ticket).await.map(|a| a.dmarc),
            Some(AuthVerdict::Pass)
        );
        let acks = acks_to(&server, "someone@else.test").await;
        assert_eq!(acks.len(), 1);
        assert!(
            acks[0].contains(&format!("Subject: We received your message [#{ticket}]")),
            "{}",
            acks[0]
        );
        assert!(
            !acks[0].contains("pills") && !acks[0].contains("Grace"),
            "{}",
            acks[0]
        );
        server.stop().await;
    }
);

backend_test!(
    async fn a_forged_sender_of_a_reject_domain_is_stored_but_not_acknowledged(backend: Backend) {
        let dns = DnsStub::start().await;
        dns.txt("bank.test", "v=spf1 ip4:192.0.2.10 -all")
            .txt("_dmarc.bank.test", "v=DMARC1; p=reject");
        let (server, _rules) = checking_server(&backend, &dns, |_| {}).await;
        let body = message(
            "The CEO <ceo@bank.test>",
            "support@desk.test",
            "Urgent: wire the money to account 12345",
            "f1@bank.test",
            // Its own claim of authentication counts for nothing.
            "Authentication-Results: desk.test; dmarc=pass header.from=bank.test\r\n",
            "Do it now.",
        );
        let reply = deliver(
            server.smtp(),
            "ceo@bank.test",
            &["support@desk.test"],
            &body,
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let ticket = ticket_of(&reply);
        let auth = stored_auth(&server, ticket).await.expect("checked");
        assert_eq!(
            (auth.spf, auth.dkim, auth.dmarc, auth.policy),
            (
                AuthVerdict::Fail,
                AuthVerdict::None,
                AuthVerdict::Fail,
                Some(DmarcPolicy::Reject)
            )
        );
        assert!(acks_to(&server, "ceo@bank.test").await.is_empty());
        assert!(server.outbound(None).await.is_empty());
        let why = suppressions(&server, ticket).await;
        assert_eq!(
            why,
            vec!["no acknowledgement: DMARC failed for bank.test".to_string()]
        );
        assert!(tags(&server, ticket).await.is_empty());

        // `postdesk ticket show`, as text and as JSON.
        let view = postdesk::cli::ticket::TicketView::load(server.store(), ticket)
            .await
            .expect("view");
        let text = postdesk::cli::output::ticket_view(&view);
        assert!(
            text.contains("spf=fail dkim=none dmarc=fail (bank.test, p=reject)"),
            "{text}"
        );
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["messages"][0]["auth"]["dmarc"], "fail", "{json}");
        assert_eq!(json["messages"][0]["auth"]["policy"], "reject", "{json}");
        assert_eq!(json["messages"][0]["auth"]["source"], "verified", "{json}");
        server.stop().await;
    }
);

backend_test!(
    async fn unauthenticated_mail_gets_an_acknowledgement_that_repeats_nothing(backend: Backend) {
        // No SPF and no DMARC record: nobody can say who sent it.
        let dns = DnsStub::start().await;
        dns.a("plain.test", std::net::Ipv4Addr::new(192, 0, 2, 20));
        let (server, _rules) = checking_server(&backend, &dns, |_| {}).await;
        let body = message(
            "Your Bank Security Team <victim@plain.test>",
            "support@desk.test",
            "Click http://evil.example to keep your account",
            "u1@plain.test",
            "",
            "Hello",
        );
        let ticket = ticket_of(
            &deliver(
                server.smtp(),
                "victim@plain.test",
                &["support@desk.test"],
                &body,
            )
            .await,
        );
        let auth = stored_auth(&server, ticket).await.expect("checked");
        assert_eq!(
            (auth.spf, auth.dkim, auth.dmarc, auth.policy),
            (
                AuthVerdict::None,
                AuthVerdict::None,
                AuthVerdict::None,
                None
            )
        );
        let acks = acks_to(&server, "victim@plain.test").await;
        assert_eq!(acks.len(), 1);
        let ack = &acks[0];
        assert!(
            ack.contains(&format!("Subject: We received your message [#{ticket}]")),
            "{ack}"
        );
        assert!(!ack.contains("evil.example"), "{ack}");
        assert!(!ack.contains("Security Team"), "{ack}");
        assert!(ack.contains("Hello,"), "{ack}");
        assert!(tags(&server, ticket).await.is_empty());
        server.stop().await;
    }
);

backend_test!(
    async fn a_trusted_relays_results_are_used_and_an_untrusted_clients_are_ignored(
        backend: Backend,
    ) {
        let dns = DnsStub::start().await;
        // The headers a relay's MTA adds on top, and an older (forged) one.
        let headers = "Authentication-Results: mx.relay.test; spf=pass smtp.mailfrom=plain.test;\r\n \
             dkim=pass header.d=plain.test; dmarc=pass (p=QUARANTINE) header.from=plain.test\r\n\
             Authentication-Results: evil.test; dmarc=fail header.from=plain.test\r\n";
        let body = |id: &str| {
            message(
                "Pat Relayed <pat@plain.test>",
                "support@desk.test",
                "Through the gateway",
                id,
                headers,
                "Hello",
            )
        };

        // Through a relay we trust (127.0.0.1 here): its verdicts count and
        // no DNS is asked.
        let (trusting, _rules) = checking_server(&backend, &dns, |c| {
            c.smtp.trusted_relays = vec!["127.0.0.0/8".parse().expect("net")];
        })
        .await;
        let ticket = ticket_of(
            &deliver(
                trusting.smtp(),
                "pat@plain.test",
                &["support@desk.test"],
                &body("r1@plain.test"),
            )
            .await,
        );
        assert_eq!(
            stored_auth(&trusting, ticket).await,
            Some(SenderAuth {
                spf: AuthVerdict::Pass,
                dkim: AuthVerdict::Pass,
                dmarc: AuthVerdict::Pass,
                policy: Some(DmarcPolicy::Quarantine),
                domain: Some("plain.test".into()),
                source: AuthSource::TrustedRelay,
            })
        );
        let acks = acks_to(&trusting, "pat@plain.test").await;
        assert_eq!(acks.len(), 1);
        assert!(
            acks[0].contains(&format!("Subject: [#{ticket}] Through the gateway")),
            "{}",
            acks[0]
        );
        assert_eq!(
            tags(&trusting, ticket).await,
            vec!["dmarc-pass".to_string()]
        );
        assert!(dns.queries().is_empty(), "{:?}", dns.queries());
        trusting.stop().await;

        // From a client that is not a trusted relay the same header is
        // ignored: postdesk checks, and finds nothing that passes.
        let (checking, _rules) = checking_server(&backend, &dns, |c| {
            c.smtp.trusted_relays = vec!["10.0.0.5/32".parse().expect("net")];
        })
        .await;
        let ticket = ticket_of(
            &deliver(
                checking.smtp(),
                "pat@plain.test",
                &["support@desk.test"],
                &body("r2@plain.test"),
            )
            .await,
        );
        let auth = stored_auth(&checking, ticket).await.expect("checked");
        assert_eq!(
            (auth.dmarc, auth.source),
            (AuthVerdict::None, AuthSource::Verified)
        );
        let acks = acks_to(&checking, "pat@plain.test").await;
        assert_eq!(acks.len(), 1);
        assert!(
            acks[0].contains(&format!("Subject: We received your message [#{ticket}]")),
            "{}",
            acks[0]
        );
        assert!(!acks[0].contains("Pat Relayed"), "{}", acks[0]);
        assert!(tags(&checking, ticket).await.is_empty());
        checking.stop().await;
    }
);

backend_test!(
    async fn a_dns_server_that_does_not_answer_costs_no_mail(backend: Backend) {
        let dns = DnsStub::silent().await;
        let (server, _rules) = checking_server(&backend, &dns, |_| {}).await;
        let body = message(
            "Sam <sam@slow.test>",
            "support@desk.test",
            "DNS is down",
            "t1@slow.test",
            "",
            "Hello",
        );
        let started = Instant::now();
        let reply = deliver(
            server.smtp(),
            "sam@slow.test",
            &["support@desk.test"],
            &body,
        )
        .await;
        let took = started.elapsed();
        assert_eq!(reply.code, 250, "{reply:?}");
        // The checks give up within their budget (4 × dns_timeout).
        assert!(took < Duration::from_secs(10), "{took:?}");
        let ticket = ticket_of(&reply);
        let auth = stored_auth(&server, ticket).await.expect("checked");
        assert_eq!(
            (auth.spf, auth.dmarc),
            (AuthVerdict::TempError, AuthVerdict::TempError)
        );
        assert!(!dns.queries().is_empty());
        // Not known to be forged, not known to be genuine: the neutral
        // acknowledgement.
        let acks = acks_to(&server, "sam@slow.test").await;
        assert_eq!(acks.len(), 1);
        assert!(
            acks[0].contains(&format!("Subject: We received your message [#{ticket}]")),
            "{}",
            acks[0]
        );
        server.stop().await;
    }
);

/// A new ticket from `from` (checks are off: no DNS).
async fn new_ticket(server: &TestServer, from: &str, id: &str) -> i64 {
    let body = message(from, "support@desk.test", "Question", id, "", "Hello");
    ticket_of(&deliver(server.smtp(), from, &["support@desk.test"], &body).await)
}

backend_test!(
    async fn acknowledgements_stop_at_the_hourly_caps(backend: Backend) {
        // The default: three per address and hour.
        let server =
            TestServer::start_with(&backend, |c| c.autoreply.ack_global_per_hour = 5).await;
        let mut tickets = Vec::new();
        for i in 0..4 {
            tickets
                .push(new_ticket(&server, "alice@example.com", &format!("c{i}@example.com")).await);
        }
        assert_eq!(acks_to(&server, "alice@example.com").await.len(), 3);
        assert!(suppressions(&server, tickets[2]).await.is_empty());
        let why = suppressions(&server, tickets[3]).await;
        assert_eq!(
            why,
            vec![
                "rate limit: 3 automatic answers to alice@example.com in the last hour".to_string()
            ]
        );
        // The mail itself is filed all the same.
        assert_eq!(
            server
                .store()
                .ticket_messages(tickets[3])
                .await
                .expect("messages")
                .len(),
            1,
            "the customer's message, and no acknowledgement"
        );

        // Five in all per hour: two more senders get one each, the third none.
        let b = new_ticket(&server, "bob@example.com", "b1@example.com").await;
        let c = new_ticket(&server, "carol@example.com", "c1@example.net").await;
        let d = new_ticket(&server, "dave@example.com", "d1@example.com").await;
        assert_eq!(acks_to(&server, "bob@example.com").await.len(), 1);
        assert_eq!(acks_to(&server, "carol@example.com").await.len(), 1);
        assert!(acks_to(&server, "dave@example.com").await.is_empty());
        assert!(
            suppressions(&server, b).await.is_empty() && suppressions(&server, c).await.is_empty()
        );
        assert_eq!(
            suppressions(&server, d).await,
            vec!["global rate limit: 5 acknowledgements in the last hour".to_string()]
        );
        server.stop().await;
    }
);

backend_test!(
    async fn two_nodes_together_keep_the_cap(backend: Backend) {
        let first = TestServer::start(&backend).await;
        // On PostgreSQL a second node on the same database; SQLite is one
        // node, so there both "nodes" are one server's connections.
        let second = match &backend {
            Backend::Postgres(_) => {
                let mut config = first.config.clone();
                config.data_dir = first.dir.path().join("node2");
                config.smtp.listen = "127.0.0.1:0".parse().expect("addr");
                config.imap.listen = "127.0.0.1:0".parse().expect("addr");
                config.imap.tls_listen = "127.0.0.1:0".parse().expect("addr");
                config.submission.listen = "127.0.0.1:0".parse().expect("addr");
                config.submission.tls_listen = "127.0.0.1:0".parse().expect("addr");
                config.http.listen = Some("127.0.0.1:0".parse().expect("addr"));
                Some(postdesk::server::start(config).await.expect("second node"))
            }
            Backend::Sqlite => None,
        };
        let addrs = [
            first.smtp(),
            second.as_ref().map_or(first.smtp(), |s| s.smtp_addr),
        ];
        let mut sending = Vec::new();
        for i in 0..8 {
            let addr = addrs[i % 2];
            sending.push(tokio::spawn(async move {
                let body = message(
                    "erin@example.com",
                    "support@desk.test",
                    "Race",
                    &format!("race{i}@example.com"),
                    "",
                    "Hello",
                );
                deliver(addr, "erin@example.com", &["support@desk.test"], &body).await
            }));
        }
        for task in sending {
            let reply = task.await.expect("sender");
            assert_eq!(reply.code, 250, "{reply:?}");
        }
        eventually("all eight filed", || async {
            first
                .store()
                .tickets(&Default::default())
                .await
                .expect("tickets")
                .len()
                == 8
        })
        .await;
        assert_eq!(acks_to(&first, "erin@example.com").await.len(), 3);
        if let Some(second) = second {
            second.shutdown().await;
        }
        first.stop().await;
    }
);
