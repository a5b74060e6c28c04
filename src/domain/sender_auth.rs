//! Who really sent a message: the SPF, DKIM and DMARC verdicts postdesk
//! keeps with it, how they are read from a trusted relay's
//! `Authentication-Results` header, and what they allow an acknowledgement
//! to do. The checks themselves (DNS, signatures) are mail-auth's, run by
//! the server's verifier (src/verify.rs); everything here is a pure function of their outcome.

use serde::Serialize;

/// One mechanism's result, with the names of RFC 8601 (and of the rules'
/// `auth.spf`, `auth.dkim`, `auth.dmarc`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthVerdict {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    #[default]
    None,
    TempError,
    PermError,
}

impl AuthVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthVerdict::Pass => "pass",
            AuthVerdict::Fail => "fail",
            AuthVerdict::SoftFail => "softfail",
            AuthVerdict::Neutral => "neutral",
            AuthVerdict::None => "none",
            AuthVerdict::TempError => "temperror",
            AuthVerdict::PermError => "permerror",
        }
    }

    /// A result as an `Authentication-Results` header (or the store) writes
    /// it. RFC 7001's `hardfail` is `fail`; DKIM's `policy` (a good
    /// signature the verifier would not accept) counts as `neutral`.
    pub fn parse(text: &str) -> Option<AuthVerdict> {
        Some(match text.to_ascii_lowercase().as_str() {
            "pass" => AuthVerdict::Pass,
            "fail" | "hardfail" => AuthVerdict::Fail,
            "softfail" => AuthVerdict::SoftFail,
            "neutral" | "policy" => AuthVerdict::Neutral,
            "none" => AuthVerdict::None,
            "temperror" => AuthVerdict::TempError,
            "permerror" => AuthVerdict::PermError,
            _ => return None,
        })
    }
}

impl std::fmt::Display for AuthVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the author domain's DMARC record asks receivers to do with mail
/// that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }

    pub fn parse(text: &str) -> Option<DmarcPolicy> {
        Some(match text.to_ascii_lowercase().as_str() {
            "none" => DmarcPolicy::None,
            "quarantine" => DmarcPolicy::Quarantine,
            "reject" => DmarcPolicy::Reject,
            _ => return None,
        })
    }
}

/// Who reached the verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthSource {
    /// postdesk checked them itself (it is the MX).
    Verified,
    /// A trusted relay's `Authentication-Results` header.
    TrustedRelay,
}

impl AuthSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthSource::Verified => "verified",
            AuthSource::TrustedRelay => "trusted_relay",
        }
    }

    pub fn parse(text: &str) -> Option<AuthSource> {
        match text {
            "verified" => Some(AuthSource::Verified),
            "trusted_relay" => Some(AuthSource::TrustedRelay),
            _ => None,
        }
    }
}

/// The authentication of one inbound message, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderAuth {
    pub spf: AuthVerdict,
    pub dkim: AuthVerdict,
    pub dmarc: AuthVerdict,
    /// The author domain's policy, when it publishes a DMARC record.
    pub policy: Option<DmarcPolicy>,
    /// The From domain DMARC was evaluated for.
    pub domain: Option<String>,
    pub source: AuthSource,
}

impl SenderAuth {
    /// Every verdict `temperror`: the checks could not finish (DNS did not
    /// answer in time). The message is stored all the same.
    pub fn unfinished(source: AuthSource) -> SenderAuth {
        SenderAuth {
            spf: AuthVerdict::TempError,
            dkim: AuthVerdict::TempError,
            dmarc: AuthVerdict::TempError,
            policy: None,
            domain: None,
            source,
        }
    }

    /// One line for people: `spf=pass dkim=pass dmarc=pass (example.com p=reject)`.
    pub fn summary(&self) -> String {
        let mut line = format!("spf={} dkim={} dmarc={}", self.spf, self.dkim, self.dmarc);
        let mut about: Vec<String> = Vec::new();
        about.extend(self.domain.clone());
        about.extend(self.policy.map(|p| format!("p={}", p.as_str())));
        if self.source == AuthSource::TrustedRelay {
            about.push("from a trusted relay".into());
        }
        if !about.is_empty() {
            line.push_str(&format!(" ({})", about.join(", ")));
        }
        line
    }
}

/// The DKIM verdict of a message from the verdicts of its signatures: one
/// good signature is enough; otherwise the most telling failure.
pub fn dkim_verdict(signatures: &[AuthVerdict]) -> AuthVerdict {
    let order = [
        AuthVerdict::Pass,
        AuthVerdict::TempError,
        AuthVerdict::Fail,
        AuthVerdict::PermError,
        AuthVerdict::Neutral,
    ];
    order
        .into_iter()
        .find(|v| signatures.contains(v))
        .unwrap_or(AuthVerdict::None)
}

/// What the DMARC evaluation found, in the terms of RFC 7489 §4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmarcFacts {
    /// The author domain (or its organizational domain) publishes a record.
    pub has_record: bool,
    /// SPF or DKIM passed for a domain aligned with From.
    pub aligned_pass: bool,
    /// Looking the record up failed (`temperror`, `permerror`).
    pub lookup_error: Option<AuthVerdict>,
}

/// The DMARC verdict. A record without an aligned pass fails, unless SPF
/// or DKIM could not be checked for a DNS time-out: then nobody knows
/// (`temperror`), and a slow DNS must not read as forgery.
pub fn dmarc_verdict(facts: DmarcFacts, spf: AuthVerdict, dkim: AuthVerdict) -> AuthVerdict {
    if facts.aligned_pass {
        return AuthVerdict::Pass;
    }
    if let Some(error) = facts.lookup_error {
        return error;
    }
    if !facts.has_record {
        return AuthVerdict::None;
    }
    if spf == AuthVerdict::TempError || dkim == AuthVerdict::TempError {
        AuthVerdict::TempError
    } else {
        AuthVerdict::Fail
    }
}

/// Reads the verdicts of an `Authentication-Results` header (RFC 8601)
/// that a trusted relay added. Several DKIM results: one pass is enough.
/// The DMARC policy comes from a `policy.dmarc=` property or from the
/// comment most verifiers write (`dmarc=fail (p=reject dis=none)`). None
/// when the header names none of SPF, DKIM and DMARC.
pub fn from_authentication_results(value: &str) -> Option<SenderAuth> {
    let mut spf = None;
    let mut dkim: Vec<AuthVerdict> = Vec::new();
    let mut dmarc = None;
    let mut policy = None;
    let mut domain = None;
    // The first part is the authserv-id (and version).
    for statement in split_outside_comments(value, ';').into_iter().skip(1) {
        let (words, comments) = words_and_comments(&statement);
        let Some((method, result)) = words.first().and_then(|w| w.split_once('=')) else {
            continue;
        };
        // `dkim/1=pass`: a method may carry a version.
        let method = method.split('/').next().unwrap_or(method).trim();
        let Some(verdict) = AuthVerdict::parse(result.trim()) else {
            continue;
        };
        if method.eq_ignore_ascii_case("spf") {
            spf = spf.or(Some(verdict));
        } else if method.eq_ignore_ascii_case("dkim") {
            dkim.push(verdict);
        } else if method.eq_ignore_ascii_case("dmarc") && dmarc.is_none() {
            dmarc = Some(verdict);
            let property = |name: &str| {
                words.iter().skip(1).find_map(|w| {
                    let (key, value) = w.split_once('=')?;
                    key.eq_ignore_ascii_case(name).then(|| value.to_string())
                })
            };
            policy = property("policy.dmarc")
                .or_else(|| {
                    comments
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("p=").or_else(|| w.strip_prefix("P=")))
                        .map(str::to_string)
                })
                .and_then(|p| DmarcPolicy::parse(&p));
            domain = property("header.from").map(|d| d.to_ascii_lowercase());
        }
    }
    if spf.is_none() && dkim.is_empty() && dmarc.is_none() {
        return None;
    }
    Some(SenderAuth {
        spf: spf.unwrap_or_default(),
        dkim: dkim_verdict(&dkim),
        dmarc: dmarc.unwrap_or_default(),
        policy,
        domain,
        source: AuthSource::TrustedRelay,
    })
}

/// Splits at `separator` where it is not inside a comment or quotes.
fn split_outside_comments(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' && depth == 0 {
            quoted = !quoted;
        } else if !quoted && c == '(' {
            depth += 1;
        } else if !quoted && c == ')' {
            depth = depth.saturating_sub(1);
        } else if !quoted && depth == 0 && c == separator {
            parts.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// The words of a statement outside comments, and the comments' text.
fn words_and_comments(statement: &str) -> (Vec<String>, String) {
    let mut outside = String::new();
    let mut comments = String::new();
    let mut depth = 0usize;
    for c in statement.chars() {
        match c {
            '(' => {
                depth += 1;
                comments.push(' ');
            }
            ')' => {
                depth = depth.saturating_sub(1);
                outside.push(' ');
            }
            c if depth > 0 => comments.push(c),
            c => outside.push(c),
        }
    }
    let words = outside
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    (words, comments)
}

/// What authentication allows the acknowledgement of a new ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckTreatment {
    /// DMARC passed: the acknowledgement may quote the subject and greet
    /// the sender by name.
    Full,
    /// Not shown to be from the From domain (no DMARC record, not checked,
    /// a DNS failure): an acknowledgement that repeats nothing the sender
    /// wrote, so a forger cannot use it to carry a message to a third party.
    Neutral,
    /// None at all: the mail is probably forged and the acknowledgement
    /// would go to the victim.
    Withhold(String),
}

/// Decides the acknowledgement's treatment from the message's verdicts
/// (None: not checked, e.g. `[smtp] verify = "off"`). `to_author`: the
/// acknowledgement goes to the From address DMARC vouches for, not to a
/// Reply-To elsewhere (a sender with a good domain could otherwise aim
/// its own words at anyone).
pub fn ack_treatment(auth: Option<&SenderAuth>, to_author: bool) -> AckTreatment {
    let Some(auth) = auth else {
        return AckTreatment::Neutral;
    };
    let domain = auth.domain.as_deref().unwrap_or("the sender's domain");
    if auth.dmarc == AuthVerdict::Fail {
        return AckTreatment::Withhold(format!("DMARC failed for {domain}"));
    }
    match auth.policy {
        Some(policy @ (DmarcPolicy::Reject | DmarcPolicy::Quarantine))
            if auth.dmarc != AuthVerdict::Pass =>
        {
            return AckTreatment::Withhold(format!(
                "{domain} publishes p={} and the mail is not aligned (dmarc={})",
                policy.as_str(),
                auth.dmarc
            ));
        }
        _ => {}
    }
    if auth.dmarc == AuthVerdict::Pass && to_author {
        AckTreatment::Full
    } else {
        AckTreatment::Neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthVerdict::*;

    fn ack_treatment_of(auth: Option<&SenderAuth>) -> AckTreatment {
        ack_treatment(auth, true)
    }

    #[test]
    fn a_reply_to_elsewhere_gets_the_neutral_acknowledgement() {
        let passed = auth(Pass, Option::None);
        assert_eq!(ack_treatment(Some(&passed), false), AckTreatment::Neutral);
        let failed = auth(Fail, Option::None);
        assert!(matches!(
            ack_treatment(Some(&failed), false),
            AckTreatment::Withhold(_)
        ));
    }

    fn auth(dmarc: AuthVerdict, policy: Option<DmarcPolicy>) -> SenderAuth {
        SenderAuth {
            spf: None,
            dkim: None,
            dmarc,
            policy,
            domain: Some("example.com".into()),
            source: AuthSource::Verified,
        }
    }

    #[test]
    fn only_dmarc_pass_gets_the_full_acknowledgement() {
        assert_eq!(
            ack_treatment_of(Some(&auth(Pass, Some(DmarcPolicy::Reject)))),
            AckTreatment::Full
        );
        assert_eq!(ack_treatment_of(Option::None), AckTreatment::Neutral);
        for verdict in [None, TempError, PermError, SoftFail, Neutral] {
            assert_eq!(
                ack_treatment_of(Some(&auth(verdict, Option::None))),
                AckTreatment::Neutral,
                "{verdict}"
            );
            assert_eq!(
                ack_treatment_of(Some(&auth(verdict, Some(DmarcPolicy::None)))),
                AckTreatment::Neutral,
                "{verdict}"
            );
        }
    }

    #[test]
    fn failing_or_unaligned_mail_of_strict_domains_gets_none() {
        assert!(matches!(
            ack_treatment_of(Some(&auth(Fail, Some(DmarcPolicy::None)))),
            AckTreatment::Withhold(reason) if reason == "DMARC failed for example.com"
        ));
        for policy in [DmarcPolicy::Reject, DmarcPolicy::Quarantine] {
            for verdict in [TempError, PermError, None] {
                assert!(
                    matches!(
                        ack_treatment_of(Some(&auth(verdict, Some(policy)))),
                        AckTreatment::Withhold(reason) if reason.contains("not aligned")
                    ),
                    "{verdict} {policy:?}"
                );
            }
        }
    }

    #[test]
    fn dmarc_needs_an_aligned_pass_and_a_dns_failure_is_no_forgery() {
        let record = DmarcFacts {
            has_record: true,
            aligned_pass: false,
            lookup_error: Option::None,
        };
        assert_eq!(dmarc_verdict(record, Fail, None), Fail);
        assert_eq!(dmarc_verdict(record, TempError, None), TempError);
        assert_eq!(dmarc_verdict(record, Pass, TempError), TempError);
        let pass = DmarcFacts {
            aligned_pass: true,
            ..record
        };
        assert_eq!(dmarc_verdict(pass, Fail, Pass), Pass);
        let none = DmarcFacts {
            has_record: false,
            ..record
        };
        assert_eq!(dmarc_verdict(none, Pass, Pass), None);
        let broken = DmarcFacts {
            lookup_error: Some(TempError),
            ..none
        };
        assert_eq!(dmarc_verdict(broken, Pass, None), TempError);
    }

    #[test]
    fn one_good_signature_is_enough() {
        assert_eq!(dkim_verdict(&[]), None);
        assert_eq!(dkim_verdict(&[Fail, Pass]), Pass);
        assert_eq!(dkim_verdict(&[PermError, Fail]), Fail);
        assert_eq!(dkim_verdict(&[Fail, TempError]), TempError);
    }

    #[test]
    fn a_relays_header_is_read() {
        let header = "mx.example.net; spf=pass smtp.mailfrom=example.com;\r\n \
             dkim=fail (bad signature) header.d=other.example;\r\n \
             dkim=pass header.d=example.com header.s=s1;\r\n \
             dmarc=pass (p=REJECT sp=NONE dis=NONE) header.from=Example.com";
        assert_eq!(
            from_authentication_results(header),
            Some(SenderAuth {
                spf: Pass,
                dkim: Pass,
                dmarc: Pass,
                policy: Some(DmarcPolicy::Reject),
                domain: Some("example.com".into()),
                source: AuthSource::TrustedRelay,
            })
        );
        let opendmarc = "mx.example.net; dmarc=fail policy.dmarc=quarantine header.from=x.test";
        let read = from_authentication_results(opendmarc);
        assert_eq!(read.as_ref().map(|a| a.dmarc), Some(Fail));
        assert_eq!(
            read.as_ref().and_then(|a| a.policy),
            Some(DmarcPolicy::Quarantine)
        );
        assert_eq!(read.map(|a| a.spf), Some(None));
        assert_eq!(
            from_authentication_results("mx.example.net; none"),
            Option::None
        );
        assert_eq!(from_authentication_results(""), Option::None);
        // A semicolon in a comment does not start a statement.
        let tricky = "mx (a; dmarc=pass); spf=fail (x; dmarc=pass) smtp.mailfrom=a.test";
        let read = from_authentication_results(tricky);
        assert_eq!(read.as_ref().map(|a| (a.spf, a.dmarc)), Some((Fail, None)));
    }

    proptest::proptest! {
        #[test]
        fn any_header_is_read_without_panic(text in "\\PC*") {
            let _ = from_authentication_results(&text);
        }
    }

    #[test]
    fn verdicts_keep_their_names() {
        for v in [Pass, Fail, SoftFail, Neutral, None, TempError, PermError] {
            assert_eq!(AuthVerdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(AuthVerdict::parse("hardfail"), Some(Fail));
        assert_eq!(AuthVerdict::parse("bogus"), Option::None);
    }
}
