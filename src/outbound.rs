//! Outbound delivery: a worker that sends what the store has queued through
//! the configured relay (mail-send), retries temporary failures with
//! exponential backoff, and records permanent failures on the ticket.
//!
//! Without a relay nothing is sent: mail stays queued, visible in
//! `postdesk outbound list`, and goes out once a relay is configured.

use crate::App;
use crate::config::{OutboundConfig, RelaySecurity, RelayUrl};
use crate::dkim::Dkim;
use crate::net::Shutdown;
use crate::store::{Change, FailureNote, OutboundItem};
use chrono::{DateTime, Duration, Utc};
use mail_send::SmtpClientBuilder;
use std::sync::Arc;
use tokio::sync::broadcast;

/// How long a claimed delivery is ours before another worker may take it
/// over. Short, and renewed every [`RENEW_EVERY`] while the delivery is
/// under way, so that a crashed node's claims are taken over within
/// seconds, not minutes.
const LEASE_SECONDS: i64 = 20;
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Deliveries claimed per round.
const BATCH: i64 = 16;
/// How long an idle worker sleeps before it looks at the queue again.
const IDLE_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest pause between retries, whatever the attempt count.
const MAX_BACKOFF_SECONDS: i64 = 4 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered(String),
    Temporary(String),
    Permanent(String),
}

/// Runs until the shutdown; signs with `dkim` when it is given.
pub async fn run(app: Arc<App>, dkim: Option<Arc<Dkim>>, mut shutdown: Shutdown) {
    let mut changes = app.store.subscribe();
    let Some(relay) = app.config.outbound.relay.clone() else {
        tracing::info!("no [outbound] relay configured: outbound mail stays queued");
        return;
    };
    loop {
        if shutdown.is_stopping() {
            return;
        }
        match deliver_due(&app, &relay, dkim.as_deref()).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(err) => tracing::warn!(%err, "outbound queue"),
        }
        let wait = match app.store.next_outbound_due().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(std::time::Duration::ZERO)
                .clamp(std::time::Duration::from_millis(50), IDLE_RECHECK),
            // Nothing due: look again now and then for mail that another
            // process queued (`postdesk outbound retry`, another node).
            Ok(None) => IDLE_RECHECK,
            Err(err) => {
                tracing::warn!(%err, "outbound queue");
                std::time::Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = shutdown.stopped() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = wait_for_queued(&mut changes) => {}
        }
    }
}

async fn wait_for_queued(changes: &mut broadcast::Receiver<Change>) {
    loop {
        match changes.recv().await {
            Ok(Change::OutboundQueued) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Claims and delivers one batch; returns how many were claimed.
pub async fn deliver_due(
    app: &App,
    relay: &RelayUrl,
    dkim: Option<&Dkim>,
) -> Result<usize, crate::store::StoreError> {
    let now = Utc::now();
    let lease = Duration::seconds(LEASE_SECONDS);
    for item in app.store.interrupted_handovers(now, lease).await? {
        let error = "the delivery was interrupted while the relay was receiving it \
                     (postdesk stopped); it may or may not have arrived, so it is not \
                     sent again by itself: `postdesk outbound retry` sends it again";
        tracing::warn!(id = item.id, to = %item.rcpt_to, "{error}");
        give_up(app, &item, now, error).await?;
    }
    let claimed = app.store.claim_outbound(now, lease, BATCH).await?;
    let count = claimed.len();
    let ids: Vec<i64> = claimed.iter().map(|(item, _)| item.id).collect();
    let config = &app.config.outbound;
    let deliveries = claimed.into_iter().map(|(item, raw)| async move {
        let verdict = match sign(dkim, raw) {
            Ok(signed) => {
                let handing_over = || app.store.outbound_handing_over(item.id, Utc::now());
                send(
                    relay,
                    config,
                    &app.config.hostname,
                    &item,
                    &signed,
                    handing_over,
                )
                .await
            }
            Err(problem) => Verdict::Permanent(format!("cannot DKIM-sign: {problem}")),
        };
        settle(app, config, &item, verdict).await
    });
    // The claims are renewed while the deliveries run (a slow relay may
    // take its time), and lapse within seconds if this process dies.
    let all = futures_util::future::join_all(deliveries);
    tokio::pin!(all);
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            _ = tokio::time::sleep(RENEW_EVERY) => {
                if let Err(err) = app.store.renew_outbound_claims(&ids, Utc::now() + lease).await {
                    tracing::warn!(%err, "outbound: renewing claims");
                }
            }
        }
    };
    for result in results {
        result?;
    }
    Ok(count)
}

async fn settle(
    app: &App,
    config: &OutboundConfig,
    item: &OutboundItem,
    verdict: Verdict,
) -> Result<(), crate::store::StoreError> {
    let now = Utc::now();
    match verdict {
        Verdict::Delivered(reply) => {
            tracing::info!(id = item.id, to = %item.rcpt_to, "delivered");
            app.store.outbound_sent(item.id, now, &reply).await
        }
        Verdict::Permanent(error) => {
            metrics::counter!(crate::telemetry::OUTBOUND_FAILURES, "kind" => "permanent")
                .increment(1);
            tracing::warn!(id = item.id, to = %item.rcpt_to, %error, "delivery failed permanently");
            give_up(app, item, now, &error).await
        }
        Verdict::Temporary(error) => {
            metrics::counter!(crate::telemetry::OUTBOUND_FAILURES, "kind" => "temporary")
                .increment(1);
            let attempts = item.attempts + 1;
            let age = now - item.created_at;
            if attempts >= i64::from(config.max_attempts)
                || age >= Duration::seconds(i64::try_from(config.max_age).unwrap_or(i64::MAX))
            {
                let error = format!("gave up after {attempts} attempts: {error}");
                tracing::warn!(id = item.id, to = %item.rcpt_to, %error, "delivery failed");
                give_up(app, item, now, &error).await
            } else {
                let next = next_attempt(now, config.retry_base, attempts);
                tracing::info!(id = item.id, to = %item.rcpt_to, %error, %next, "delivery deferred");
                app.store
                    .outbound_retry_later(item.id, now, next, &error)
                    .await
            }
        }
    }
}

/// Marks a delivery failed and leaves an internal note on its ticket.
async fn give_up(
    app: &App,
    item: &OutboundItem,
    now: DateTime<Utc>,
    error: &str,
) -> Result<(), crate::store::StoreError> {
    let note = item
        .ticket
        .and_then(|ticket| failure_note(app, ticket, item, error));
    app.store
        .outbound_failed(item.id, now, error, note.as_ref())
        .await
}

/// The note agents see in the ticket: an internal message from postdesk.
fn failure_note(app: &App, ticket: i64, item: &OutboundItem, error: &str) -> Option<FailureNote> {
    let detail = format!(
        "delivery of {} to {} failed permanently: {error}",
        item.purpose, item.rcpt_to
    );
    let message_id = app.own_ids.mint(ticket);
    match FailureNote::compose(
        &app.config.hostname,
        ticket,
        message_id,
        "Delivery failed",
        &detail,
        detail.clone(),
    ) {
        Ok(note) => Some(note),
        Err(err) => {
            tracing::warn!(%err, ticket, "cannot compose the delivery-failure note");
            None
        }
    }
}

/// The message with its DKIM-Signature in front, when a key is configured.
fn sign(dkim: Option<&Dkim>, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let Some(dkim) = dkim else {
        return Ok(raw);
    };
    if raw.is_empty() {
        return Ok(raw);
    }
    let mut signed = dkim.signature(&raw)?;
    signed.extend_from_slice(&raw);
    Ok(signed)
}

/// `base · 2^(attempts-1)` seconds after now, at most four hours.
pub fn next_attempt(now: DateTime<Utc>, base_seconds: u64, attempts: i64) -> DateTime<Utc> {
    let base = i64::try_from(base_seconds).unwrap_or(60).max(1);
    let exponent = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
    let delay = base
        .saturating_mul(2i64.saturating_pow(exponent))
        .min(MAX_BACKOFF_SECONDS);
    now + Duration::seconds(delay)
}

/// One delivery attempt; classifies the outcome by the relay's reply code.
/// `handing_over` is recorded after the relay accepted the envelope and
/// before the message itself goes out: a crash before it is safe to repeat,
/// one after it is not (see [`deliver_due`]). What stays at-least-once is
/// the moment between the relay's 250 and the record of it: a crash there
/// leaves the row `handing-over`, which is failed with a note, not resent.
pub async fn send<F, Fut>(
    relay: &RelayUrl,
    config: &OutboundConfig,
    hostname: &str,
    item: &OutboundItem,
    raw: &[u8],
    handing_over: F,
) -> Verdict
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::store::StoreError>>,
{
    if raw.is_empty() {
        return Verdict::Permanent("nothing to send: the message body is missing".into());
    }
    // mail-send always ends DATA with "\r\n.\r\n"; a message that already
    // ends in CRLF would arrive with an extra blank line. Handing it over
    // without its last CRLF delivers exactly the stored bytes.
    let body = raw.strip_suffix(b"\r\n").unwrap_or(raw);
    let message =
        mail_send::smtp::message::Message::new(item.mail_from.as_str(), item.recipients(), body);
    let mut builder = match SmtpClientBuilder::new(relay.host.as_str(), relay.port) {
        Ok(builder) => builder,
        Err(error) => return Verdict::Permanent(format!("relay {}: {error}", relay.host)),
    };
    builder = builder
        .implicit_tls(relay.security == RelaySecurity::ImplicitTls)
        .helo_host(hostname)
        .timeout(std::time::Duration::from_secs(60));
    if config.allow_invalid_certs {
        builder = builder.allow_invalid_certs();
    }
    if let Some((user, password)) = &relay.credentials {
        builder = builder.credentials((user.as_str(), password.as_str()));
    }
    let result = match relay.security {
        RelaySecurity::Plain => match builder.connect_plain().await {
            Ok(client) => transmit(client, message, handing_over).await,
            Err(err) => Err(err.into()),
        },
        RelaySecurity::StartTls | RelaySecurity::ImplicitTls => match builder.connect().await {
            Ok(client) => transmit(client, message, handing_over).await,
            Err(err) => Err(err.into()),
        },
    };
    match result {
        Ok(refused) if refused.is_empty() => {
            Verdict::Delivered(format!("accepted by {}:{}", relay.host, relay.port))
        }
        Ok(refused) => Verdict::Delivered(format!(
            "accepted by {}:{}, except for {}",
            relay.host,
            relay.port,
            refused.join("; ")
        )),
        Err(Attempt::Relay(err)) => classify(err),
        Err(Attempt::Store(err)) => Verdict::Temporary(format!("not handed over: {err}")),
    }
}

/// What stopped an attempt.
enum Attempt {
    Relay(mail_send::Error),
    /// The hand-over could not be recorded: nothing was sent.
    Store(crate::store::StoreError),
}

impl From<mail_send::Error> for Attempt {
    fn from(err: mail_send::Error) -> Attempt {
        Attempt::Relay(err)
    }
}

/// Sends one message on a connected client (plain or TLS) and says
/// goodbye: the envelope, then the hand-over record, then the message.
/// With several recipients (Reply All), one the relay refuses for good
/// does not stop the others: the mail goes to those accepted, and the
/// refusals are returned ("address: 550 …"). All refused, or any refused
/// for now, is the attempt's failure (retried as a whole).
async fn transmit<T, F, Fut>(
    mut client: mail_send::SmtpClient<T>,
    message: mail_send::smtp::message::Message<'_>,
    handing_over: F,
) -> Result<Vec<String>, Attempt>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::store::StoreError>>,
{
    let sent = async {
        client
            .mail_from(
                message.mail_from.email.as_ref(),
                &message.mail_from.parameters,
            )
            .await?;
        let several = message.rcpt_to.len() > 1;
        let mut refused = Vec::new();
        let mut last_refusal = None;
        for rcpt in &message.rcpt_to {
            match client.rcpt_to(rcpt.email.as_ref(), &rcpt.parameters).await {
                Ok(()) => {}
                Err(mail_send::Error::UnexpectedReply(reply))
                    if several && (500..600).contains(&reply.code) =>
                {
                    refused.push(format!("{}: {} {}", rcpt.email, reply.code, reply.message));
                    last_refusal = Some(mail_send::Error::UnexpectedReply(reply));
                }
                Err(err) => return Err(err.into()),
            }
        }
        if refused.len() == message.rcpt_to.len()
            && let Some(err) = last_refusal
        {
            return Err(err.into());
        }
        handing_over().await.map_err(Attempt::Store)?;
        client.data(message.body.as_ref()).await?;
        Ok(refused)
    }
    .await;
    let _ = client.quit().await;
    sent
}

fn classify(err: mail_send::Error) -> Verdict {
    match &err {
        mail_send::Error::UnexpectedReply(reply) if (500..600).contains(&reply.code) => {
            Verdict::Permanent(format!("{} {}", reply.code, reply.message))
        }
        mail_send::Error::UnexpectedReply(reply) => {
            Verdict::Temporary(format!("{} {}", reply.code, reply.message))
        }
        _ => Verdict::Temporary(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let now = Utc::now();
        assert_eq!(next_attempt(now, 60, 1) - now, Duration::seconds(60));
        assert_eq!(next_attempt(now, 60, 2) - now, Duration::seconds(120));
        assert_eq!(next_attempt(now, 60, 4) - now, Duration::seconds(480));
        assert_eq!(
            next_attempt(now, 60, 30) - now,
            Duration::seconds(MAX_BACKOFF_SECONDS)
        );
    }

    #[test]
    fn relay_replies_are_classified_by_code() {
        let reply = |code| {
            mail_send::Error::UnexpectedReply(smtp_proto::Response {
                code,
                esc: [0, 0, 0],
                message: "x".to_string(),
            })
        };
        assert!(matches!(classify(reply(550)), Verdict::Permanent(_)));
        assert!(matches!(classify(reply(451)), Verdict::Temporary(_)));
        assert!(matches!(
            classify(mail_send::Error::Timeout),
            Verdict::Temporary(_)
        ));
    }
}
