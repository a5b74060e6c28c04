//! SPF, DKIM and DMARC of inbound mail, checked with mail-auth when postdesk
//! is the MX (`[smtp] verify = "dmarc"`), or read from the topmost
//! `Authentication-Results` header of a trusted relay (`[smtp]
//! trusted_relays`). What the verdicts mean for the mail is decided in
//! [`crate::domain::sender_auth`].
//!
//! Authentication never costs a message: a DNS server that does not answer
//! makes the verdicts `temperror` within a bounded time, and the message is
//! stored as any other.

use crate::config::{Config, VerifyMode};
use crate::domain::sender_auth::{
    self, AuthSource, AuthVerdict, DmarcFacts, DmarcPolicy, SenderAuth,
};
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// How many DNS time-outs the whole check may take: SPF alone can need a
/// few lookups one after another (include:, a, mx), DKIM and SPF run side
/// by side, then DMARC.
const BUDGET_IN_TIMEOUTS: u32 = 4;

/// The SMTP facts of one delivery that SPF checks.
#[derive(Debug, Clone, Copy)]
pub struct SmtpClient<'a> {
    pub ip: IpAddr,
    /// The EHLO/HELO name, if the client gave one.
    pub helo: Option<&'a str>,
    /// `MAIL FROM`; empty for the null return path.
    pub mail_from: &'a str,
}

/// Checks (or reads) the authentication of inbound mail; one per server.
pub struct SenderVerifier {
    mode: VerifyMode,
    trusted_relays: Vec<ipnet::IpNet>,
    dns_servers: Vec<SocketAddr>,
    dns_timeout: Duration,
    /// Our name, for SPF's `%{r}` macro.
    hostname: String,
    /// Made at the first check (reading resolv.conf), so that CLI commands
    /// and servers with checks off never build one. None: it could not be
    /// made (logged); every check is then `temperror`.
    authenticator: tokio::sync::OnceCell<Option<MessageAuthenticator>>,
}

impl SenderVerifier {
    pub fn new(config: &Config) -> SenderVerifier {
        SenderVerifier {
            mode: config.smtp.verify,
            trusted_relays: config.smtp.trusted_relays.clone(),
            dns_servers: config.smtp.dns_servers.clone(),
            dns_timeout: Duration::from_secs(config.smtp.dns_timeout),
            hostname: config.hostname.clone(),
            authenticator: tokio::sync::OnceCell::new(),
        }
    }

    /// Whether mail from `ip` was checked by a relay we trust.
    pub fn is_trusted_relay(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_relays.iter().any(|net| net.contains(&ip))
    }

    /// The verdicts for a message from `client`: a trusted relay's
    /// topmost `Authentication-Results` header (None if it wrote none),
    /// our own checks, or None when checks are off. From anyone but a
    /// trusted relay that header is never read: a sender can write it.
    pub async fn check(&self, client: &SmtpClient<'_>, raw: &[u8]) -> Option<SenderAuth> {
        if self.is_trusted_relay(client.ip) {
            let header = crate::mime::header::field_values(raw, b"Authentication-Results")
                .next()
                .map(crate::mime::header::unfold)?;
            return sender_auth::from_authentication_results(&String::from_utf8_lossy(&header));
        }
        if self.mode == VerifyMode::Off {
            return None;
        }
        let Some(authenticator) = self
            .authenticator
            .get_or_init(|| async { self.authenticator() })
            .await
        else {
            return Some(SenderAuth::unfinished(AuthSource::Verified));
        };
        let deadline = Instant::now() + self.dns_timeout * BUDGET_IN_TIMEOUTS;
        let auth = verify(authenticator, client, &self.hostname, raw, deadline).await;
        tracing::debug!(ip = %client.ip, mail_from = client.mail_from, auth = %auth.summary(), "sender checked");
        Some(auth)
    }

    fn authenticator(&self) -> Option<MessageAuthenticator> {
        let (config, mut options) = if self.dns_servers.is_empty() {
            match mail_auth::hickory_resolver::system_conf::read_system_conf() {
                Ok(system) => system,
                Err(err) => {
                    tracing::error!(%err, "no DNS resolver for SPF/DKIM/DMARC (set [smtp] dns_servers); mail is stored with temperror");
                    return None;
                }
            }
        } else {
            let servers = self
                .dns_servers
                .iter()
                .map(|server| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = server.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = server.port();
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            (
                ResolverConfig::from_parts(None, Vec::new(), servers),
                ResolverOpts::default(),
            )
        };
        options.timeout = self.dns_timeout;
        options.attempts = 1;
        match MessageAuthenticator::new(config, options) {
            Ok(authenticator) => Some(authenticator),
            Err(err) => {
                tracing::error!(%err, "no DNS resolver for SPF/DKIM/DMARC; mail is stored with temperror");
                None
            }
        }
    }
}

/// SPF (MAIL FROM, or HELO for the null sender), DKIM and DMARC with
/// alignment, each bounded by `deadline`: what did not finish is
/// `temperror`.
async fn verify(
    authenticator: &MessageAuthenticator,
    client: &SmtpClient<'_>,
    hostname: &str,
    raw: &[u8],
    deadline: Instant,
) -> SenderAuth {
    // Without a HELO name SPF has no domain for `%{h}` nor, for the null
    // sender, an identity: the client's address stands in.
    let ip_text = client.ip.to_string();
    let helo = client
        .helo
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .filter(|h| !h.is_empty())
        .unwrap_or(&ip_text);
    let (spf_params, mail_from_domain) = match client.mail_from.rsplit_once('@') {
        Some((_, domain)) if !domain.is_empty() => (
            SpfParameters::verify_mail_from(client.ip, helo, hostname, client.mail_from),
            domain,
        ),
        _ => (SpfParameters::verify_ehlo(client.ip, helo, hostname), helo),
    };
    let message = AuthenticatedMessage::parse(raw);
    let spf_check = timeout_at(deadline, authenticator.verify_spf(spf_params));
    let (spf_output, dkim_outputs) = match &message {
        Some(message) => {
            let dkim_check = timeout_at(deadline, authenticator.verify_dkim(message));
            let (spf, dkim) = tokio::join!(spf_check, dkim_check);
            (spf.ok(), Some(dkim.ok()))
        }
        None => (spf_check.await.ok(), None),
    };
    let spf = spf_output
        .as_ref()
        .map_or(AuthVerdict::TempError, |o| spf_verdict(o.result()));
    let dkim = match &dkim_outputs {
        // Unparseable mail carries no signature anyone could check.
        None => AuthVerdict::None,
        Some(None) => AuthVerdict::TempError,
        Some(Some(outputs)) => {
            let verdicts: Vec<AuthVerdict> =
                outputs.iter().map(|o| dkim_verdict(o.result())).collect();
            sender_auth::dkim_verdict(&verdicts)
        }
    };
    let mut auth = SenderAuth {
        spf,
        dkim,
        dmarc: AuthVerdict::None,
        policy: None,
        domain: None,
        source: AuthSource::Verified,
    };
    let (Some(message), Some(Some(dkim_outputs)), Some(spf_output)) =
        (&message, &dkim_outputs, &spf_output)
    else {
        if spf == AuthVerdict::TempError || dkim == AuthVerdict::TempError {
            auth.dmarc = AuthVerdict::TempError;
        }
        return auth;
    };
    let params = DmarcParameters::new(message, dkim_outputs, mail_from_domain, spf_output);
    let Ok(dmarc) = timeout_at(deadline, authenticator.verify_dmarc(params)).await else {
        auth.dmarc = AuthVerdict::TempError;
        return auth;
    };
    let results = [dmarc.spf_result(), dmarc.dkim_result()];
    let lookup_error = results.iter().find_map(|r| match r {
        DmarcResult::TempError(_) => Some(AuthVerdict::TempError),
        DmarcResult::PermError(_) => Some(AuthVerdict::PermError),
        _ => None,
    });
    let has_record = dmarc.dmarc_record().is_some();
    let facts = DmarcFacts {
        has_record,
        aligned_pass: results.contains(&&DmarcResult::Pass),
        lookup_error,
    };
    auth.dmarc = sender_auth::dmarc_verdict(facts, spf, dkim);
    auth.policy = has_record
        .then(|| match dmarc.policy() {
            Policy::Reject => Some(DmarcPolicy::Reject),
            Policy::Quarantine => Some(DmarcPolicy::Quarantine),
            Policy::None => Some(DmarcPolicy::None),
            Policy::Unspecified => None,
        })
        .flatten();
    auth.domain = Some(dmarc.domain().to_ascii_lowercase()).filter(|d| !d.is_empty());
    auth
}

fn spf_verdict(result: SpfResult) -> AuthVerdict {
    match result {
        SpfResult::Pass => AuthVerdict::Pass,
        SpfResult::Fail => AuthVerdict::Fail,
        SpfResult::SoftFail => AuthVerdict::SoftFail,
        SpfResult::Neutral => AuthVerdict::Neutral,
        SpfResult::TempError => AuthVerdict::TempError,
        SpfResult::PermError => AuthVerdict::PermError,
        SpfResult::None => AuthVerdict::None,
    }
}

fn dkim_verdict(result: &DkimResult) -> AuthVerdict {
    match result {
        DkimResult::Pass => AuthVerdict::Pass,
        DkimResult::Neutral(_) => AuthVerdict::Neutral,
        DkimResult::Fail(_) => AuthVerdict::Fail,
        DkimResult::PermError(_) => AuthVerdict::PermError,
        DkimResult::TempError(_) => AuthVerdict::TempError,
        DkimResult::None => AuthVerdict::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(relays: &[&str]) -> SenderVerifier {
        let mut config = Config::default();
        config.smtp.trusted_relays = relays.iter().filter_map(|r| r.parse().ok()).collect();
        SenderVerifier::new(&config)
    }

    #[test]
    fn only_configured_relays_are_trusted() {
        let v = verifier(&["10.0.0.5/32", "192.0.2.0/24", "2001:db8::/32"]);
        let trusted = |ip: &str| ip.parse().is_ok_and(|ip| v.is_trusted_relay(ip));
        assert!(trusted("10.0.0.5"));
        assert!(!trusted("10.0.0.6"));
        assert!(trusted("192.0.2.200"));
        // An IPv4 client seen on an IPv6 socket is the same client.
        assert!(trusted("::ffff:192.0.2.7"));
        assert!(trusted("2001:db8::25"));
        assert!(!verifier(&[]).is_trusted_relay(IpAddr::from([127, 0, 0, 1])));
    }

    #[tokio::test]
    async fn a_header_from_anyone_else_is_not_read_and_off_checks_nothing() {
        let raw = b"Authentication-Results: mx; dmarc=pass\r\nFrom: a@b.test\r\n\r\nhi\r\n";
        let mut config = Config::default();
        config.smtp.verify = VerifyMode::Off;
        config.smtp.trusted_relays = vec![ipnet::IpNet::from(IpAddr::from([10, 0, 0, 5]))];
        let v = SenderVerifier::new(&config);
        let client = |ip: [u8; 4]| SmtpClient {
            ip: IpAddr::from(ip),
            helo: Some("mx.b.test"),
            mail_from: "a@b.test",
        };
        assert_eq!(v.check(&client([192, 0, 2, 1]), raw).await, None);
        let relayed = v.check(&client([10, 0, 0, 5]), raw).await;
        assert_eq!(
            relayed.map(|a| (a.dmarc, a.source)),
            Some((AuthVerdict::Pass, AuthSource::TrustedRelay))
        );
        // A trusted relay that wrote no verdicts: nothing is known.
        assert_eq!(
            v.check(&client([10, 0, 0, 5]), b"From: a@b.test\r\n\r\nhi\r\n")
                .await,
            None
        );
    }
}
