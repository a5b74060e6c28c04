//! `postdesk.toml`: every key optional, every mistake reported with the file,
//! line and column it is on.

use crate::domain::address;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Inconsistent { path: PathBuf, message: String },
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Our name in greetings, Message-IDs and the default queue address.
    pub hostname: String,
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; defaults to `sqlite://DATA_DIR/postdesk.db`.
    pub database_url: Option<String>,
    pub smtp: SmtpConfig,
    pub submission: SubmissionConfig,
    pub imap: ImapConfig,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub outbound: OutboundConfig,
    pub tickets: TicketConfig,
    pub autoreply: AutoReplyConfig,
    pub search: SearchConfig,
    pub storage: StorageConfig,
    pub knowledge: KnowledgeConfig,
    pub reports: ReportsConfig,
    pub satisfaction: SatisfactionConfig,
    /// rules.toml: calendars, SLA policies, rules and escalations. A
    /// relative path is read from the directory of this file.
    pub rules: Option<PathBuf>,
    #[serde(rename = "queue")]
    pub queues: Vec<QueueConfig>,
    /// Where the file came from, for error messages; not a key.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("postdesk-data"),
            database_url: None,
            smtp: SmtpConfig::default(),
            submission: SubmissionConfig::default(),
            imap: ImapConfig::default(),
            http: HttpConfig::default(),
            knowledge: KnowledgeConfig::default(),
            reports: ReportsConfig::default(),
            satisfaction: SatisfactionConfig::default(),
            tls: TlsConfig::default(),
            outbound: OutboundConfig::default(),
            tickets: TicketConfig::default(),
            autoreply: AutoReplyConfig::default(),
            search: SearchConfig::default(),
            storage: StorageConfig::default(),
            rules: None,
            queues: Vec::new(),
            source: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    /// Bytes; larger messages get `552 5.3.4`.
    pub max_message_size: usize,
    /// Recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Simultaneous SMTP connections; more get `421 4.7.0`.
    pub max_connections: usize,
    /// Simultaneous connections from one address (an IPv6 /64 counts as
    /// one), so that one sender cannot take every slot; more get `421 4.7.0`.
    pub max_connections_per_address: usize,
    /// Seconds a client may stay silent between commands (RFC 5321 §4.5.3.2
    /// asks for at least 5 minutes).
    pub command_timeout: u64,
    /// Seconds a client may take for a whole DATA or BDAT transfer.
    pub data_timeout: u64,
    /// Command lines longer than this get `500 5.5.2` (RFC 5321 §4.5.3.1.4: 512).
    pub max_line_length: usize,
    /// Whether postdesk checks SPF, DKIM and DMARC itself (it is the MX).
    pub verify: VerifyMode,
    /// Resolvers for those checks (`"IP"` or `"IP:PORT"`); empty: the
    /// system's (resolv.conf).
    #[serde(deserialize_with = "dns_servers")]
    pub dns_servers: Vec<SocketAddr>,
    /// Seconds one DNS query may take; the whole check gets a few of these,
    /// then whatever is unanswered counts as `temperror` (mail is never
    /// refused or held for authentication alone).
    pub dns_timeout: u64,
    /// Clients (addresses or CIDR networks) that checked the mail already:
    /// from them the topmost `Authentication-Results` header is taken
    /// instead of checking; from anyone else that header is ignored.
    #[serde(deserialize_with = "ip_networks")]
    pub trusted_relays: Vec<ipnet::IpNet>,
}

/// `[smtp] verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// SPF, DKIM and DMARC (with alignment) with mail-auth.
    Dmarc,
    /// No checks: every message's result is unknown (acknowledgements then
    /// never repeat the subject or the sender's name).
    Off,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 500,
            max_connections_per_address: 50,
            command_timeout: 300,
            data_timeout: 600,
            max_line_length: 2048,
            verify: VerifyMode::Dmarc,
            dns_servers: Vec::new(),
            dns_timeout: 5,
            trusted_relays: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionConfig {
    /// SMTP submission with STARTTLS (the port 587 convention).
    pub listen: SocketAddr,
    /// Submission over implicit TLS (the port 465 convention).
    pub tls_listen: SocketAddr,
    /// Allow AUTH without TLS from 127.0.0.1/::1 (local tools, tests).
    pub plaintext_auth_on_loopback: bool,
    /// A public reply to a ticket that changed after the message it
    /// answers: `hold` (give it back to the agent), `warn` (send, and
    /// note it), `off`.
    pub collision: crate::domain::collision::CollisionMode,
}

impl Default for SubmissionConfig {
    fn default() -> Self {
        SubmissionConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2587)),
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 2465)),
            plaintext_auth_on_loopback: true,
            collision: crate::domain::collision::CollisionMode::Hold,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// Plain IMAP with STARTTLS.
    pub listen: SocketAddr,
    /// Implicit TLS (the port 993 convention).
    pub tls_listen: SocketAddr,
    /// Allow LOGIN/AUTHENTICATE without TLS from 127.0.0.1/::1 (local tools, tests).
    pub plaintext_auth_on_loopback: bool,
    pub max_connections: usize,
    pub max_connections_per_agent: usize,
    /// Simultaneous connections from one address (an IPv6 /64 counts as one).
    pub max_connections_per_address: usize,
    /// Connections not logged in yet, from anywhere: strangers can hold at
    /// most these, so logged-in agents always find a slot.
    pub max_unauthenticated: usize,
    /// Seconds a client has from connecting to being logged in.
    pub login_timeout: u64,
    /// Seconds a logged-in client has to send a whole command line once it
    /// started one (a literal gets this plus time for its size at 32 KiB/s).
    pub command_timeout: u64,
    /// The longest command line, and the largest literal (APPEND).
    pub max_line_length: usize,
    pub max_literal_size: usize,
    /// Seconds before an idle client is logged out (RFC 9051 §5.4: at least 30 minutes).
    pub idle_timeout: u64,
    /// How long resolved and closed tickets stay in the Closed folder.
    pub closed_days: u32,
    /// The ticket tags Thunderbird's `$label1`…`$label5` (its Important,
    /// Work, Personal, To Do and Later tags) stand for.
    pub labels: Vec<String>,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2143)),
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 2993)),
            plaintext_auth_on_loopback: true,
            max_connections: 2000,
            max_connections_per_agent: 20,
            max_connections_per_address: 100,
            max_unauthenticated: 200,
            login_timeout: 60,
            command_timeout: 60,
            max_line_length: 64 * 1024,
            max_literal_size: 50 * 1024 * 1024,
            idle_timeout: 30 * 60,
            closed_days: 30,
            labels: crate::domain::keywords::DEFAULT_LABEL_TAGS
                .iter()
                .map(|t| t.to_string())
                .collect(),
        }
    }
}

/// The operations listener (`/metrics`, `/healthz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// None (`listen = ""`): no HTTP listener.
    #[serde(deserialize_with = "optional_address")]
    pub listen: Option<SocketAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 2080))),
        }
    }
}

/// The knowledge base (`[knowledge]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// Where agents mail new articles and their changes (default
    /// `kb@HOSTNAME`); taken on the submission port from agents only.
    pub address: Option<String>,
    /// Where customers reach the help center (the links in
    /// acknowledgements; default `https://HOSTNAME`, a web server in front
    /// of `[http] listen`).
    pub help_center_url: Option<String>,
    /// How many articles an acknowledgement suggests at most (0: none).
    pub suggestions: usize,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            address: None,
            help_center_url: None,
            suggestions: 3,
        }
    }
}

/// The team report (`[reports]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// When the weekly report mail goes to every lead and admin, as
    /// "mon 08:00" in their own time zone (`agents.time_zone`), else in
    /// that of `calendar`; None (`""`, the default): no report mail.
    #[serde(deserialize_with = "weekly_schedule")]
    pub weekly: Option<WeeklySchedule>,
    /// A calendar of rules.toml: its time zone places days, weeks and the
    /// weekly mail, and it measures the business hours of tickets without
    /// an SLA policy (those with one are measured on their policy's
    /// calendar). None: UTC, every hour counts.
    pub calendar: Option<String>,
    /// The report page's address as the mail links to it (default
    /// `http://` and `[http] listen`), without a trailing slash.
    pub url: Option<String>,
}

/// A weekday and a local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklySchedule {
    pub weekday: chrono::Weekday,
    pub time: chrono::NaiveTime,
}

impl WeeklySchedule {
    pub fn parse(text: &str) -> Result<WeeklySchedule, String> {
        let problem = || {
            format!(
                "invalid weekly schedule '{text}': expected a weekday and a time, e.g. \"mon 08:00\""
            )
        };
        let mut parts = text.split_whitespace();
        let (Some(day), Some(time), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(problem());
        };
        let weekday = match day.to_ascii_lowercase().get(..3) {
            Some("mon") => chrono::Weekday::Mon,
            Some("tue") => chrono::Weekday::Tue,
            Some("wed") => chrono::Weekday::Wed,
            Some("thu") => chrono::Weekday::Thu,
            Some("fri") => chrono::Weekday::Fri,
            Some("sat") => chrono::Weekday::Sat,
            Some("sun") => chrono::Weekday::Sun,
            _ => return Err(problem()),
        };
        let time = chrono::NaiveTime::parse_from_str(time, "%H:%M").map_err(|_| problem())?;
        Ok(WeeklySchedule { weekday, time })
    }
}

fn weekly_schedule<'de, D: Deserializer<'de>>(de: D) -> Result<Option<WeeklySchedule>, D::Error> {
    let text = String::deserialize(de)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    WeeklySchedule::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The satisfaction survey (`[satisfaction]`): "How did we do?" to the
/// customer of a resolved ticket, once per ticket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SatisfactionConfig {
    /// The queues whose resolved tickets get the survey (`["*"]`: every
    /// queue). Empty (the default): none.
    #[serde(deserialize_with = "survey_queues")]
    pub queues: Vec<String>,
    /// Where customers follow the survey's links: the HTTP listener, or a
    /// web server in front of it (default: `[knowledge] help_center_url`,
    /// else `https://HOSTNAME`).
    #[serde(deserialize_with = "optional_url")]
    pub url: Option<String>,
    /// Tickets resolved longer ago than this are not asked (a server that
    /// was down catches up within it).
    pub window_hours: u32,
}

impl Default for SatisfactionConfig {
    fn default() -> Self {
        SatisfactionConfig {
            queues: Vec::new(),
            url: None,
            window_hours: 24,
        }
    }
}

impl SatisfactionConfig {
    /// Whether the tickets of `queue` get the survey.
    pub fn asks(&self, queue: &str) -> bool {
        self.queues
            .iter()
            .any(|q| q == "*" || q.eq_ignore_ascii_case(queue))
    }
}

fn survey_queues<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(de)?;
    for name in &names {
        if name != "*" {
            validate_queue_name(name).map_err(serde::de::Error::custom)?;
        }
    }
    Ok(names)
}

fn optional_url<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(de)?;
    let text = text.trim().trim_end_matches('/').to_string();
    if text.is_empty() {
        return Ok(None);
    }
    if !(text.starts_with("http://") || text.starts_with("https://")) || text.contains(' ') {
        return Err(serde::de::Error::custom(format!(
            "invalid url '{text}': expected http://… or https://…"
        )));
    }
    Ok(Some(text))
}

/// `"IP:PORT"`, or `""` for none.
fn optional_address<'de, D: Deserializer<'de>>(de: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(de)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.parse::<SocketAddr>().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid listen address '{text}': expected IP:PORT, or \"\" for no HTTP listener"
        ))
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; absent: a self-signed one is made once in data_dir.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// `smtp://host:port` (plain), `smtp+starttls://host:port` or
    /// `smtps://host:port`, with optional `user:password@`. Absent: outbound
    /// mail is kept queued and shown by `postdesk outbound list`.
    #[serde(deserialize_with = "relay_url")]
    pub relay: Option<RelayUrl>,
    /// Give up on a message after this many attempts...
    pub max_attempts: u32,
    /// ...or after this many seconds in the queue, whichever comes first.
    pub max_age: u64,
    /// First retry delay in seconds; doubles with each attempt.
    pub retry_base: u64,
    /// Accept invalid relay certificates (for a relay on localhost only).
    pub allow_invalid_certs: bool,
    /// PEM private key to DKIM-sign outgoing mail with.
    pub dkim_key: Option<PathBuf>,
    /// The DKIM selector (`SELECTOR._domainkey.DOMAIN`).
    pub dkim_selector: String,
    /// The signing domain; absent: the domain of each message's From.
    pub dkim_domain: Option<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            relay: None,
            max_attempts: 12,
            max_age: 2 * 24 * 3600,
            retry_base: 60,
            allow_invalid_certs: false,
            dkim_key: None,
            dkim_selector: "postdesk".into(),
            dkim_domain: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelaySecurity {
    Plain,
    StartTls,
    ImplicitTls,
}

#[derive(Debug, Clone)]
pub struct RelayUrl {
    pub host: String,
    pub port: u16,
    pub security: RelaySecurity,
    pub credentials: Option<(String, String)>,
}

impl RelayUrl {
    pub fn parse(text: &str) -> Result<RelayUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("invalid relay URL '{text}': {e}"))?;
        let (security, default_port) = match url.scheme() {
            "smtp" => (RelaySecurity::Plain, 25),
            "smtp+starttls" => (RelaySecurity::StartTls, 587),
            "smtps" => (RelaySecurity::ImplicitTls, 465),
            other => {
                return Err(format!(
                    "relay URL scheme '{other}' is not one of smtp, smtp+starttls, smtps"
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("relay URL '{text}' has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((
                decode_userinfo(url.username(), "user name")?,
                decode_userinfo(url.password().unwrap_or(""), "password")?,
            ))
        };
        Ok(RelayUrl {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
        })
    }
}

/// The user name or password of a URL as written before percent-encoding.
/// Only `%XX` is decoded: a `+` in a URL's userinfo is a plus sign (it
/// means a space only in form-encoded query strings).
fn decode_userinfo(text: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| format!("the relay URL's {what} is not UTF-8 once percent-decoded"))
}

fn relay_url<'de, D: Deserializer<'de>>(de: D) -> Result<Option<RelayUrl>, D::Error> {
    let text = Option::<String>::deserialize(de)?;
    text.map(|t| RelayUrl::parse(&t).map_err(serde::de::Error::custom))
        .transpose()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketConfig {
    /// Days after which a reply to a closed ticket opens a new, linked one.
    pub reopen_window_days: u32,
}

impl Default for TicketConfig {
    fn default() -> Self {
        TicketConfig {
            reopen_window_days: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoReplyConfig {
    /// Send the acknowledgement of templates/ack.txt for new tickets.
    pub enabled: bool,
    /// At most this many acknowledgements to one address per hour (the
    /// old name `max_per_sender_per_hour` still works), counted in the
    /// database, so across all nodes.
    #[serde(alias = "max_per_sender_per_hour")]
    pub ack_per_recipient_per_hour: u32,
    /// At most this many acknowledgements per hour altogether (a flood of
    /// forged senders cannot turn postdesk into a mail cannon).
    pub ack_global_per_hour: u32,
    /// A directory whose `ack.txt` replaces the built-in template.
    pub templates_dir: Option<PathBuf>,
}

impl Default for AutoReplyConfig {
    fn default() -> Self {
        AutoReplyConfig {
            enabled: true,
            ack_per_recipient_per_hour: 3,
            ack_global_per_hour: 500,
            templates_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Milliseconds between commits of the search index: how long a new
    /// message may take to become searchable while mail keeps arriving.
    pub commit_interval_ms: u64,
    /// Add a "possibly related" note to new tickets.
    pub similar: bool,
    /// Tickets named in that note at most.
    pub similar_max: usize,
    /// How close a past ticket must be, as a fraction (0–1] of the score
    /// of the new ticket's own message.
    #[serde(deserialize_with = "fraction")]
    pub similar_min_score: f32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            commit_interval_ms: 500,
            similar: true,
            similar_max: 3,
            similar_min_score: 0.25,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Below this much free space (MiB) on the data directory's file
    /// system, new mail is refused with `452 4.3.1` before the database
    /// runs into the wall; 0 turns the floor off (a failed write still
    /// pauses acceptance for a few seconds).
    pub min_free_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { min_free_mb: 256 }
    }
}

/// DNS servers as `"IP"` (port 53) or `"IP:PORT"`.
fn dns_servers<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(de)?
        .iter()
        .map(|text| {
            text.parse::<SocketAddr>()
                .or_else(|_| {
                    text.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "invalid DNS server '{text}': expected an IP address, optionally with :PORT"
                    ))
                })
        })
        .collect()
}

/// Addresses (`10.0.0.5`, `2001:db8::1`) or networks (`192.0.2.0/24`).
fn ip_networks<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<String>::deserialize(de)?
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "invalid trusted relay '{text}': expected an IP address or a network such as 192.0.2.0/24"
                    ))
                })
        })
        .collect()
}

fn fraction<'de, D: Deserializer<'de>>(de: D) -> Result<f32, D::Error> {
    let value = f32::deserialize(de)?;
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} is not a fraction between 0 (exclusive) and 1"
        )))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(deserialize_with = "queue_name")]
    pub name: String,
    #[serde(deserialize_with = "mail_address")]
    pub address: String,
    /// The knowledge-base categories this queue's agents write (and those
    /// of other queues listing them; leads and admins write all). A
    /// category no queue lists is every agent's. The first is the
    /// category of a draft written from one of its tickets (`#kb draft`).
    #[serde(default, deserialize_with = "knowledge_categories")]
    pub knowledge_categories: Vec<String>,
}

fn knowledge_categories<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let mut categories: Vec<String> = Vec::new();
    for name in Vec::<String>::deserialize(de)? {
        let name = crate::domain::knowledge::category_name(&name)
            .map_err(|why| serde::de::Error::custom(format!("knowledge_categories: {why}")))?;
        if categories
            .iter()
            .any(|c| c.to_lowercase() == name.to_lowercase())
        {
            return Err(serde::de::Error::custom(format!(
                "knowledge_categories: '{name}' is listed twice"
            )));
        }
        categories.push(name);
    }
    Ok(categories)
}

fn queue_name<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let name = String::deserialize(de)?;
    validate_queue_name(&name).map_err(serde::de::Error::custom)?;
    Ok(name)
}

/// Queue names become IMAP folder names (`Queues/<name>`): keep them simple.
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid queue name '{name}': use 1-64 letters, digits, spaces, '-', '_' or '.'"
        ))
    }
}

fn mail_address<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    validate_address(&text).map_err(serde::de::Error::custom)
}

pub fn validate_address(text: &str) -> Result<String, String> {
    let normalized = address::normalize(text);
    match address::split(&normalized) {
        // A '+' would make plus-addresses ambiguous (support+1@ vs support+1+2@).
        Some((local, _))
            if !local.contains('+')
                && !normalized.chars().any(|c| c.is_whitespace() || c == ',') =>
        {
            Ok(normalized)
        }
        Some(_) => Err(format!(
            "invalid address '{text}': a queue address may not contain '+' or blanks"
        )),
        None => Err(format!("invalid address '{text}': expected local@domain")),
    }
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: err.message().to_string(),
            }
        })?;
        config.source = Some(path.to_path_buf());
        config.check()?;
        Ok(config)
    }

    /// Checks across keys that a single key's type cannot express.
    fn check(&self) -> Result<(), ConfigError> {
        let path = self
            .source
            .clone()
            .unwrap_or_else(|| PathBuf::from("<defaults>"));
        let inconsistent = |message: String| ConfigError::Inconsistent {
            path: path.clone(),
            message,
        };
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            return Err(inconsistent(format!(
                "hostname '{}' is not a host name",
                self.hostname
            )));
        }
        for (i, q) in self.queues.iter().enumerate() {
            for other in &self.queues[..i] {
                if other.name == q.name {
                    return Err(inconsistent(format!(
                        "queue name '{}' is used twice",
                        q.name
                    )));
                }
                if other.address == q.address {
                    return Err(inconsistent(format!(
                        "queue address '{}' is used twice",
                        q.address
                    )));
                }
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(inconsistent(
                "[tls] needs both cert and key, or neither".into(),
            ));
        }
        if self.smtp.max_message_size == 0 || self.smtp.max_recipients == 0 {
            return Err(inconsistent(
                "[smtp] max_message_size and max_recipients must be positive".into(),
            ));
        }
        if self.smtp.dns_timeout == 0 {
            return Err(inconsistent("[smtp] dns_timeout must be positive".into()));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
        {
            return Err(inconsistent(format!(
                "database_url '{url}' must start with sqlite:// or postgres://"
            )));
        }
        Ok(())
    }

    /// Where the rules file is, if one is configured.
    pub fn rules_path(&self) -> Option<PathBuf> {
        let path = self.rules.as_ref()?;
        if path.is_absolute() {
            return Some(path.clone());
        }
        let base = self
            .source
            .as_ref()
            .and_then(|s| s.parent())
            .filter(|p| !p.as_os_str().is_empty());
        Some(match base {
            Some(dir) => dir.join(path),
            None => path.clone(),
        })
    }

    /// The database URL in force: the configured one, or SQLite in data_dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("postdesk.db").display()),
        }
    }

    /// The queues to create at start: the configured ones, or `support@HOSTNAME`.
    pub fn queues_or_default(&self) -> Vec<QueueConfig> {
        if self.queues.is_empty() {
            vec![QueueConfig {
                name: "support".into(),
                address: format!("support@{}", self.hostname.to_lowercase()),
                knowledge_categories: Vec::new(),
            }]
        } else {
            self.queues.clone()
        }
    }

    /// Which queues' agents write which knowledge-base categories (the
    /// configured queues' `knowledge_categories`).
    pub fn knowledge_scopes(&self) -> crate::domain::knowledge::CategoryScopes {
        crate::domain::knowledge::CategoryScopes::new(
            self.queues
                .iter()
                .map(|q| (q.name.clone(), q.knowledge_categories.clone())),
        )
    }

    /// The knowledge base's address, lower case (`[knowledge] address`,
    /// else `kb@HOSTNAME`).
    pub fn knowledge_address(&self) -> String {
        self.knowledge
            .address
            .clone()
            .unwrap_or_else(|| format!("kb@{}", self.hostname))
            .trim()
            .to_lowercase()
    }

    /// The help center's base URL, without a trailing slash.
    /// The base of the satisfaction survey's links.
    pub fn satisfaction_url(&self) -> String {
        match &self.satisfaction.url {
            Some(url) => url.clone(),
            None => self.help_center_url(),
        }
    }

    pub fn help_center_url(&self) -> String {
        self.knowledge
            .help_center_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.hostname))
            .trim()
            .trim_end_matches('/')
            .to_string()
    }

    /// The report page's base URL (`[reports] url`, else the HTTP
    /// listener's address), without a trailing slash.
    pub fn reports_url(&self) -> String {
        match &self.reports.url {
            Some(url) => url.trim().trim_end_matches('/').to_string(),
            None => match self.http.listen {
                Some(addr) => format!("http://{addr}"),
                None => format!("https://{}", self.hostname),
            },
        }
    }

    /// Our own Message-ID domain: mail whose id ends in it is postdesk's.
    pub fn message_id_domain(&self) -> String {
        self.hostname.to_lowercase()
    }
}

/// The documented defaults, written to the data directory on a first start
/// without a configuration file.
pub const DEFAULT_FILE: &str = include_str!("../examples/postdesk.toml");

/// A database or relay URL as it may be shown: the password replaced by `****`.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("postdesk.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_http_listener_is_on_by_default_and_can_be_turned_off() {
        let on = parse("").ok().and_then(|c| c.http.listen);
        assert_eq!(on, Some(SocketAddr::from(([127, 0, 0, 1], 2080))));
        let off = parse("[http]\nlisten = \"\"\n").map(|c| c.http.listen);
        assert_eq!(off, Ok(None));
        let wrong = parse("[http]\nlisten = \"nowhere\"\n")
            .err()
            .unwrap_or_default();
        assert!(wrong.starts_with("postdesk.toml:2:10:"), "{wrong}");
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        let config = parse("").map_err(|e| e.to_string());
        let config = config.as_ref().ok();
        assert_eq!(config.map(|c| c.hostname.as_str()), Some("localhost"));
        assert_eq!(
            config.map(|c| c.database_url()),
            Some("sqlite://postdesk-data/postdesk.db".to_string())
        );
        assert_eq!(
            config.map(|c| c.queues_or_default()[0].address.clone()),
            Some("support@localhost".to_string())
        );
    }

    #[test]
    fn the_documented_keys_parse() {
        let text = r#"
hostname = "desk.example.test"
data_dir = "/var/lib/postdesk"
database_url = "postgres://postgres@127.0.0.1/postdesk"
[smtp]
listen = "0.0.0.0:25"
max_message_size = 1000
[submission]
listen = "127.0.0.1:587"
[imap]
listen = "127.0.0.1:143"
tls_listen = "127.0.0.1:993"
[tls]
cert = "cert.pem"
key = "key.pem"
[outbound]
relay = "smtp+starttls://user:p%40ss@relay.example:587"
[[queue]]
name = "support"
address = "Support@Example.test"
knowledge_categories = ["Printers", "  Network   cables "]
[[queue]]
name = "billing"
address = "billing@example.test"
"#;
        let config = parse(text);
        let Ok(config) = config else {
            panic!("{config:?}");
        };
        assert_eq!(config.smtp.listen.port(), 25);
        assert_eq!(config.smtp.max_message_size, 1000);
        assert_eq!(config.queues[0].address, "support@example.test");
        assert_eq!(
            config.queues[0].knowledge_categories,
            ["Printers", "Network cables"]
        );
        assert!(config.queues[1].knowledge_categories.is_empty());
        let scopes = config.knowledge_scopes();
        assert_eq!(scopes.queues_using("network cables"), ["support"]);
        assert!(scopes.queues_using("Invoices").is_empty());
        let relay = config.outbound.relay.as_ref();
        assert_eq!(relay.map(|r| r.port), Some(587));
        assert_eq!(
            relay.map(|r| r.security.clone()),
            Some(RelaySecurity::StartTls)
        );
        assert_eq!(
            relay.and_then(|r| r.credentials.clone()),
            Some(("user".into(), "p@ss".into()))
        );
    }

    #[test]
    fn sender_checks_parse() {
        let text = "[smtp]\nverify = \"off\"\ndns_servers = [\"127.0.0.1:5353\", \"::1\"]\n\
                    trusted_relays = [\"10.0.0.5\", \"192.0.2.0/24\", \"2001:db8::/32\"]\n\
                    [autoreply]\nmax_per_sender_per_hour = 7\nack_global_per_hour = 9\n";
        let config = parse(text);
        let Ok(config) = config else {
            panic!("{config:?}");
        };
        assert_eq!(config.smtp.verify, VerifyMode::Off);
        assert_eq!(
            config.smtp.dns_servers,
            vec![
                SocketAddr::from(([127, 0, 0, 1], 5353)),
                "[::1]:53".parse().unwrap_or(SocketAddr::from(([0; 4], 0)))
            ]
        );
        let relays = &config.smtp.trusted_relays;
        assert!(relays[0].contains(&std::net::IpAddr::from([10, 0, 0, 5])));
        assert!(!relays[0].contains(&std::net::IpAddr::from([10, 0, 0, 6])));
        assert!(relays[1].contains(&std::net::IpAddr::from([192, 0, 2, 77])));
        assert_eq!(config.autoreply.ack_per_recipient_per_hour, 7);
        assert_eq!(config.autoreply.ack_global_per_hour, 9);
    }

    #[test]
    fn passwords_in_database_urls_are_hidden() {
        assert_eq!(
            redact_password("postgres://u:secret@h/db"),
            "postgres://u:****@h/db"
        );
        assert_eq!(redact_password("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn relay_credentials_are_percent_decoded_and_plus_stays_plus() {
        let relay = RelayUrl::parse("smtps://us%65r%40corp:a+b%2Bc%25d%3A%2F%20e@relay.example");
        assert_eq!(
            relay.as_ref().ok().and_then(|r| r.credentials.clone()),
            Some(("user@corp".into(), "a+b+c%d:/ e".into()))
        );
        assert_eq!(relay.as_ref().ok().map(|r| r.port), Some(465));
        let no_password = RelayUrl::parse("smtp://user@relay.example:2525");
        assert_eq!(
            no_password.ok().and_then(|r| r.credentials),
            Some(("user".into(), String::new()))
        );
        assert!(
            RelayUrl::parse("smtp://relay.example")
                .ok()
                .is_some_and(|r| r.credentials.is_none())
        );
        let not_utf8 = RelayUrl::parse("smtp://user:%FF@relay.example").err();
        assert!(
            not_utf8.as_deref().is_some_and(|e| e.contains("password")),
            "{not_utf8:?}"
        );
    }

    #[test]
    fn mistakes_name_file_line_and_problem() {
        let cases = [
            (
                "hostname = \"a\"\nbogus = 1\n",
                "postdesk.toml:2:1:",
                "unknown field `bogus`",
            ),
            (
                "[submission]\ncollision = \"block\"\n",
                "postdesk.toml:2:13:",
                "unknown variant `block`, expected one of `hold`, `warn`, `off`",
            ),
            (
                "[smtp]\nlisten = \"nowhere\"\n",
                "postdesk.toml:2:10:",
                "invalid socket address",
            ),
            (
                "[smtp]\nmax_message_size = \"big\"\n",
                "postdesk.toml:2:20:",
                "invalid type",
            ),
            (
                "[[queue]]\nname = \"s\"\naddress = \"nobody\"\n",
                "postdesk.toml:3:11:",
                "expected local@domain",
            ),
            (
                "[outbound]\nrelay = \"http://x\"\n",
                "postdesk.toml:2:9:",
                "scheme 'http'",
            ),
            (
                "[search]\nsimilar_min_score = 1.5\n",
                "postdesk.toml:2:21:",
                "not a fraction",
            ),
            (
                "[smtp]\nverify = \"spf\"\n",
                "postdesk.toml:2:10:",
                "unknown variant `spf`, expected `dmarc` or `off`",
            ),
            (
                "[smtp]\ntrusted_relays = [\"10.0.0.5\", \"10.0.0/8\"]\n",
                "postdesk.toml:2:18:",
                "invalid trusted relay '10.0.0/8'",
            ),
            (
                "[smtp]\ndns_servers = [\"resolver\"]\n",
                "postdesk.toml:2:15:",
                "invalid DNS server 'resolver'",
            ),
            (
                "[reports]\nweekly = \"someday 8\"\n",
                "postdesk.toml:2:10:",
                "invalid weekly schedule 'someday 8'",
            ),
            (
                "[tls]\ncert = \"c.pem\"\n",
                "postdesk.toml:",
                "both cert and key",
            ),
            (
                "[[queue]]\nname = \"s\"\naddress = \"s@x.test\"\nknowledge_category = [\"Printers\"]\n",
                "postdesk.toml:4:1:",
                "unknown field `knowledge_category`",
            ),
            (
                "[[queue]]\nname = \"s\"\naddress = \"s@x.test\"\nknowledge_categories = [\"Printers/Laser\"]\n",
                "postdesk.toml:4:24:",
                "'Printers/Laser' is not a category name",
            ),
            (
                "[[queue]]\nname = \"s\"\naddress = \"s@x.test\"\nknowledge_categories = [\"Printers\", \"printers\"]\n",
                "postdesk.toml:4:24:",
                "'printers' is listed twice",
            ),
        ];
        for (text, location, problem) in cases {
            let err = parse(text).err().unwrap_or_default();
            assert!(err.starts_with(location), "{err}");
            assert!(err.contains(problem), "{err}");
        }
    }

    #[test]
    fn the_example_file_states_the_defaults() {
        let example = parse(DEFAULT_FILE);
        assert!(example.is_ok(), "{example:?}");
        // Uncommenting every default key must parse and change nothing.
        let uncommented: String = DEFAULT_FILE
            .lines()
            .filter(|l| {
                !l.starts_with("#[[queue]]")
                    && !l.starts_with("#name")
                    && !l.starts_with("#address")
                    && !l.starts_with("#knowledge_categories")
                    && *l != "#"
            })
            .filter(|l| {
                !l.contains("/etc/postdesk")
                    && !l.starts_with("#relay")
                    && !l.starts_with("#templates_dir")
                    && !l.starts_with("#dkim_key")
                    && !l.starts_with("#dkim_domain")
            })
            .map(|l| {
                l.strip_prefix('#')
                    .filter(|r| !r.starts_with(' '))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = parse(&uncommented);
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}");
        };
        let defaults = Config::default();
        assert_eq!(parsed.hostname, defaults.hostname);
        assert_eq!(parsed.database_url(), defaults.database_url());
        assert_eq!(parsed.smtp.listen, defaults.smtp.listen);
        assert_eq!(parsed.smtp.max_message_size, defaults.smtp.max_message_size);
        assert_eq!(parsed.smtp.max_line_length, defaults.smtp.max_line_length);
        assert_eq!(parsed.submission.listen, defaults.submission.listen);
        assert_eq!(parsed.submission.tls_listen, defaults.submission.tls_listen);
        assert_eq!(
            parsed.outbound.dkim_selector,
            defaults.outbound.dkim_selector
        );
        assert_eq!(parsed.outbound.max_age, defaults.outbound.max_age);
        assert_eq!(
            parsed.autoreply.ack_per_recipient_per_hour,
            defaults.autoreply.ack_per_recipient_per_hour
        );
        assert_eq!(
            parsed.autoreply.ack_global_per_hour,
            defaults.autoreply.ack_global_per_hour
        );
        assert_eq!(parsed.smtp.verify, defaults.smtp.verify);
        assert_eq!(parsed.smtp.dns_timeout, defaults.smtp.dns_timeout);
        assert!(parsed.smtp.trusted_relays.is_empty() && parsed.smtp.dns_servers.is_empty());
        assert_eq!(
            parsed.search.commit_interval_ms,
            defaults.search.commit_interval_ms
        );
        assert_eq!(parsed.search.similar_max, defaults.search.similar_max);
        assert_eq!(
            parsed.search.similar_min_score,
            defaults.search.similar_min_score
        );
    }

    #[test]
    fn the_weekly_report_schedule_is_a_weekday_and_a_time() {
        let reports = parse("[reports]\nweekly = \"Monday 08:30\"\ncalendar = \"office\"\n")
            .map(|c| c.reports);
        let Ok(reports) = reports else {
            panic!("{reports:?}");
        };
        assert_eq!(
            reports.weekly,
            Some(WeeklySchedule {
                weekday: chrono::Weekday::Mon,
                time: chrono::NaiveTime::from_hms_opt(8, 30, 0).unwrap_or_default(),
            })
        );
        assert_eq!(reports.calendar.as_deref(), Some("office"));
        assert!(parse("").is_ok_and(|c| c.reports.weekly.is_none()));
        assert!(WeeklySchedule::parse("mon 25:00").is_err());
        assert!(WeeklySchedule::parse("08:00").is_err());
        assert!(WeeklySchedule::parse("mon 08:00 utc").is_err());
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
