//! The team report, as `postdesk report`, the report page and the weekly
//! report mail show it: the rows come from the store, business time from
//! the rules' calendars, and the figures from [`crate::domain::report`].
//!
//! Who sees what: an administrator every queue, a lead their queues
//! ([`permission::may_read_reports`] first); an agent none.

pub mod charts;
pub mod mail;

use crate::config::Config;
use crate::domain::permission::{Actor, AgentRole, Denied};
use crate::domain::report::{self, BusinessClock, GroupBy, Report, ReportOptions, ReportTicket};
use crate::rules::Rules;
use crate::rules::calendar::Calendar;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use ring::hmac;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    #[error("{0}")]
    Denied(#[from] Denied),
    /// A request that cannot be answered as asked (unknown queue, bad date).
    #[error("{0}")]
    Invalid(String),
    #[error("cannot build the report mail: {0}")]
    Mail(String),
}

/// What to report on, as a person asks for it.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// The first day (local to the report calendar, or `time_zone`), inclusive.
    pub from: Option<NaiveDate>,
    /// The last day, inclusive (None: up to now).
    pub to: Option<NaiveDate>,
    pub by: Option<GroupBy>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    /// Whose days and weeks (a lead's own zone, for their weekly mail);
    /// None: the report calendar's.
    pub time_zone: Option<Tz>,
}

impl ReportRequest {
    /// `--from`/`--to` as written: YYYY-MM-DD.
    pub fn parse_day(text: &str, what: &str) -> Result<NaiveDate, ReportError> {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
            ReportError::Invalid(format!("{what} '{text}' is not a date (YYYY-MM-DD)"))
        })
    }
}

/// Measures a ticket on its SLA policy's calendar, else on the report
/// calendar.
pub struct ReportClock {
    rules: Arc<Rules>,
    fallback: Arc<Calendar>,
}

impl ReportClock {
    fn calendar(&self, ticket: &ReportTicket) -> &Calendar {
        ticket
            .policy
            .as_deref()
            .and_then(|p| self.rules.policy(p))
            .map_or(self.fallback.as_ref(), |p| p.calendar.as_ref())
    }
}

impl BusinessClock for ReportClock {
    fn business_between(
        &self,
        ticket: &ReportTicket,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Duration {
        self.calendar(ticket).business_between(from, to)
    }

    fn next_response_due(
        &self,
        ticket: &ReportTicket,
        since: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let policy = self.rules.policy(ticket.policy.as_deref()?)?;
        policy.calendar.deadline(since, policy.next_response?)
    }
}

/// The report calendar (`[reports] calendar`), or the 24x7 one.
pub fn report_calendar(config: &Config, rules: &Rules) -> Result<Arc<Calendar>, ReportError> {
    match &config.reports.calendar {
        None => Ok(Arc::new(Calendar::always())),
        Some(name) => rules.calendars.get(name).cloned().ok_or_else(|| {
            ReportError::Invalid(format!(
                "[reports] calendar '{name}' is not a calendar of the rules file (known: {})",
                rules
                    .calendars
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

/// The queues `viewer` may report on (None: all), refusing an agent.
pub fn scope(viewer: Option<&Actor>) -> Result<Option<Vec<String>>, ReportError> {
    match viewer {
        None => Ok(None),
        Some(actor) => {
            crate::domain::permission::may_read_reports(actor)?;
            Ok((actor.role != AgentRole::Admin).then(|| actor.queues.clone()))
        }
    }
}

/// The report `request` asks for, as `viewer` may see it (None: the
/// server's administrator), at `now`.
pub async fn build(
    store: &Store,
    config: &Config,
    rules: Arc<Rules>,
    viewer: Option<&Actor>,
    request: &ReportRequest,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let queues = scope(viewer)?;
    let calendar = report_calendar(config, &rules)?;
    let tz = request.time_zone.unwrap_or_else(|| calendar.time_zone());
    let from = request.from.map(|d| report::day_start(d, tz));
    let to = request
        .to
        .map(|d| report::day_start(d + Duration::days(1), tz))
        .unwrap_or(now);
    if from.is_some_and(|f| f >= to) {
        return Err(ReportError::Invalid(
            "--from must be a day before --to (or the same day)".into(),
        ));
    }
    let queues = match &request.queue {
        Some(name) => {
            let known = store.queues().await?;
            let Some(queue) = known.iter().find(|q| q.name.eq_ignore_ascii_case(name)) else {
                return Err(ReportError::Invalid(format!(
                    "no queue '{name}' (queues: {})",
                    known
                        .iter()
                        .map(|q| q.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if let Some(mine) = &queues
                && !mine.iter().any(|q| q.eq_ignore_ascii_case(&queue.name))
            {
                return Err(ReportError::Invalid(format!(
                    "queue '{}' is not one of yours ({})",
                    queue.name,
                    mine.join(", ")
                )));
            }
            Some(vec![queue.name.clone()])
        }
        None => queues,
    };
    if let Some(agent) = &request.agent
        && !store
            .agents()
            .await?
            .iter()
            .any(|a| a.email.eq_ignore_ascii_case(agent))
    {
        return Err(ReportError::Invalid(format!("no agent '{agent}'")));
    }
    let data = store.report_data(from, to).await?;
    let data = report::narrow(data, queues.as_deref(), request.agent.as_deref());
    let clock = ReportClock {
        rules,
        fallback: calendar,
    };
    let options = ReportOptions {
        from,
        to,
        by: request.by,
        tz,
        now,
    };
    Ok(report::compute(&data, &options, &clock))
}

/// Signed links to the report page (in the report mail): the agent, an
/// expiry, and an HMAC over both with the server's key, so a link opens
/// the page for that agent only and only until it expires.
#[derive(Clone)]
pub struct LinkKey(hmac::Key);

impl LinkKey {
    pub fn new(secret: &[u8]) -> LinkKey {
        LinkKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The key every node shares (made once, kept in the database).
    pub async fn load(store: &Store) -> Result<LinkKey, StoreError> {
        Ok(LinkKey::new(
            store.secret("report-link-key").await?.as_bytes(),
        ))
    }

    fn tag(&self, purpose: &str, agent: i64, expires: i64, extra: i64) -> String {
        let message = format!("{purpose}:{agent}:{expires}:{extra}");
        let tag = hmac::sign(&self.0, message.as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `agent=…&expires=…&sig=…` for the report page's address.
    pub fn link_query(&self, agent: i64, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        format!(
            "agent={agent}&expires={expires}&sig={}",
            self.tag("link", agent, expires, 0)
        )
    }

    /// The agent a link names, if its signature holds and it has not
    /// expired at `now`.
    pub fn check_link(
        &self,
        agent: i64,
        expires: i64,
        sig: &str,
        now: DateTime<Utc>,
    ) -> Option<i64> {
        let good = self.tag("link", agent, expires, 0);
        (expires > now.timestamp() && constant_time_eq(good.as_bytes(), sig.as_bytes()))
            .then_some(agent)
    }

    /// A session cookie's value: agent, expiry, the agent's session epoch
    /// (a new password or disabling ends it) and the signature.
    pub fn session(&self, agent: i64, epoch: i64, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        format!(
            "{agent}.{expires}.{epoch}.{}",
            self.tag("session", agent, expires, epoch)
        )
    }

    /// (agent, epoch) of a session cookie that holds at `now`.
    pub fn check_session(&self, value: &str, now: DateTime<Utc>) -> Option<(i64, i64)> {
        let mut parts = value.trim().split('.');
        let agent: i64 = parts.next()?.parse().ok()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        let epoch: i64 = parts.next()?.parse().ok()?;
        let sig = parts.next()?;
        if parts.next().is_some() || expires <= now.timestamp() {
            return None;
        }
        let good = self.tag("session", agent, expires, epoch);
        constant_time_eq(good.as_bytes(), sig.as_bytes()).then_some((agent, epoch))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The time zone of the report calendar (UTC without one, or with a
/// calendar the rules file lacks).
pub fn time_zone(config: &Config, rules: &Rules) -> Tz {
    report_calendar(config, rules).map_or(Tz::UTC, |c| c.time_zone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn links_and_sessions_hold_only_as_signed_and_until_they_expire() {
        let key = LinkKey::new(b"secret");
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 8, 0, 0)
            .single()
            .unwrap_or_default();
        let query = key.link_query(7, now + Duration::days(14));
        let sig = query.rsplit("sig=").next().unwrap_or_default();
        let expires = (now + Duration::days(14)).timestamp();
        assert_eq!(key.check_link(7, expires, sig, now), Some(7));
        assert_eq!(key.check_link(8, expires, sig, now), None, "another agent");
        assert_eq!(
            key.check_link(7, expires + 1, sig, now),
            None,
            "another expiry"
        );
        assert_eq!(
            key.check_link(7, expires, sig, now + Duration::days(15)),
            None
        );
        assert_eq!(
            LinkKey::new(b"other").check_link(7, expires, sig, now),
            None
        );

        let cookie = key.session(7, 3, now + Duration::hours(12));
        assert_eq!(key.check_session(&cookie, now), Some((7, 3)));
        assert_eq!(key.check_session(&cookie, now + Duration::hours(13)), None);
        assert_eq!(
            key.check_session(&cookie.replacen("7.", "8.", 1), now),
            None
        );
        assert_eq!(key.check_session("garbage", now), None);
    }
}
