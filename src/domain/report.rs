//! The team report (`postdesk report`, the weekly report mail, the report
//! page): tickets created, resolved and reopened, the backlog, first-,
//! next-response and resolution times as median and 90th percentile in
//! business hours, the share of each SLA met, satisfaction, time spent and
//! article usage, per day, week, agent or queue.
//!
//! Pure: the store reads the rows ([`ReportData`]), the rules engine
//! measures business time ([`BusinessClock`], on each ticket's calendar),
//! and everything else (which figure falls in which period and group, the
//! percentiles) is decided here, from the rows and "now".
//!
//! Percentiles: the median of an even count is the mean of the two middle
//! values; the 90th percentile is the nearest rank (the value at rank
//! ⌈0.9·n⌉ of the sorted values), so it is always a measured time.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

/// How business time is measured for a ticket (the calendar of its SLA
/// policy, else the report's calendar); implemented by the rules engine.
pub trait BusinessClock {
    /// Business time between two instants on the ticket's calendar.
    fn business_between(
        &self,
        ticket: &ReportTicket,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Duration;
    /// When an answer to a customer who wrote at `since` is due under the
    /// ticket's next-response target (None: the ticket has none).
    fn next_response_due(
        &self,
        ticket: &ReportTicket,
        since: DateTime<Utc>,
    ) -> Option<DateTime<Utc>>;
}

/// What the report reads of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTicket {
    pub number: i64,
    pub queue: String,
    /// The owner's address (None: unassigned).
    pub owner: Option<String>,
    pub policy: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was resolved, if it is resolved or closed now.
    pub done_at: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
}

/// A customer's message or an agent's public reply, after the ticket's
/// first answer (what the next-response clock runs between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportMessage {
    pub ticket: i64,
    /// A customer's message (false: an agent's public reply).
    pub customer: bool,
    pub at: DateTime<Utc>,
}

/// Minutes an agent recorded on a ticket (`#time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRecorded {
    pub queue: String,
    pub agent: String,
    pub minutes: i64,
    pub at: DateTime<Utc>,
}

/// A customer's answer to the satisfaction survey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyAnswer {
    pub queue: String,
    pub agent: Option<String>,
    /// good, okay or bad.
    pub rating: String,
    pub at: DateTime<Utc>,
}

/// How often an article was used in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArticleUse {
    pub article: i64,
    pub title: String,
    /// Acknowledgements that suggested it.
    pub suggested: i64,
    /// "Did this help?" answers on the help center.
    pub helped_yes: i64,
    pub helped_no: i64,
}

/// Every row the report is computed from.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    pub tickets: Vec<ReportTicket>,
    /// By ticket, then time.
    pub messages: Vec<ReportMessage>,
    /// Reopen events: the ticket and when.
    pub reopens: Vec<(i64, DateTime<Utc>)>,
    pub time_spent: Vec<TimeRecorded>,
    pub surveys: Vec<SurveyAnswer>,
    pub articles: Vec<ArticleUse>,
}

/// `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Day,
    Week,
    Agent,
    Queue,
}

impl FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<GroupBy, String> {
        match s.to_ascii_lowercase().as_str() {
            "day" => Ok(GroupBy::Day),
            "week" => Ok(GroupBy::Week),
            "agent" => Ok(GroupBy::Agent),
            "queue" => Ok(GroupBy::Queue),
            _ => Err(format!("no grouping '{s}' (day, week, agent or queue)")),
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::Agent => "agent",
            GroupBy::Queue => "queue",
        })
    }
}

/// What to report on: figures whose instant lies in `[from, to)`.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// None: since the beginning.
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
    pub by: Option<GroupBy>,
    /// Days and weeks are those of this zone (the report calendar's).
    pub tz: Tz,
    /// A due time not yet passed is not missed.
    pub now: DateTime<Utc>,
}

/// A median and 90th percentile of durations, in business hours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeStat {
    pub count: usize,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
}

/// How often an SLA target was met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaMet {
    /// Answers (or resolutions) measured against a due time, and due times
    /// that passed unanswered.
    pub measured: i64,
    pub met: i64,
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Satisfaction {
    pub good: i64,
    pub okay: i64,
    pub bad: i64,
    pub percent_good: Option<f64>,
}

/// One line of the report: a period, an agent, a queue, or the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub key: String,
    pub created: i64,
    pub resolved: i64,
    pub reopened: i64,
    /// Tickets open at the end of the row's period (of the report's, for
    /// an agent or queue).
    pub backlog: i64,
    pub first_response: TimeStat,
    pub next_response: TimeStat,
    pub resolution: TimeStat,
    pub sla_first_response: SlaMet,
    pub sla_next_response: SlaMet,
    pub sla_resolution: SlaMet,
    pub satisfaction: Satisfaction,
    pub time_spent_minutes: i64,
}

/// Tickets created and resolved on one day (the volume chart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayVolume {
    pub day: NaiveDate,
    pub created: i64,
    pub resolved: i64,
}

/// How many responses took how long (the distribution chart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseBucket {
    pub label: &'static str,
    pub first_response: i64,
    pub next_response: i64,
}

/// The share of each SLA met in one queue (the SLA chart).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSla {
    pub queue: String,
    pub first_response: Option<f64>,
    pub next_response: Option<f64>,
    pub resolution: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
    pub by: Option<GroupBy>,
    pub time_zone: String,
    pub total: ReportRow,
    /// One per group (empty without `by`).
    pub rows: Vec<ReportRow>,
    pub articles: Vec<ArticleUse>,
    pub volume: Vec<DayVolume>,
    pub response_times: Vec<ResponseBucket>,
    pub sla_by_queue: Vec<QueueSla>,
}

/// The upper bounds (business hours) of the response-time buckets.
const BUCKETS: [(&str, Option<i64>); 6] = [
    ("< 1h", Some(3600)),
    ("1-4h", Some(4 * 3600)),
    ("4-8h", Some(8 * 3600)),
    ("8-24h", Some(24 * 3600)),
    ("1-3d", Some(72 * 3600)),
    ("> 3d", None),
];

/// The middle value (mean of the two middle ones for an even count) and
/// the nearest-rank 90th percentile of `values`, which it sorts.
pub fn median_and_p90(values: &mut [i64]) -> (Option<f64>, Option<f64>) {
    values.sort_unstable();
    let n = values.len();
    if n == 0 {
        return (None, None);
    }
    let median = if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0
    };
    // Nearest rank: ⌈0.9·n⌉, 1-based (integer arithmetic, no rounding).
    let rank = (9 * n).div_ceil(10).max(1);
    (Some(median), Some(values[rank - 1] as f64))
}

fn hours(seconds: Option<f64>) -> Option<f64> {
    // Hundredths of an hour are plenty for a person, and keep the JSON short.
    seconds.map(|s| (s / 36.0).round() / 100.0)
}

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// What one ticket contributes, measured once.
struct Figures {
    first_response: Option<(DateTime<Utc>, i64)>,
    resolution: Option<(DateTime<Utc>, i64)>,
    /// (answered at, business seconds waited).
    next_responses: Vec<(DateTime<Utc>, i64)>,
    /// (instant, met) for each SLA: answered or resolved at, or the due
    /// time that passed.
    sla_first: Option<(DateTime<Utc>, bool)>,
    sla_resolution: Option<(DateTime<Utc>, bool)>,
    sla_next: Vec<(DateTime<Utc>, bool)>,
}

#[derive(Default)]
struct Acc {
    created: i64,
    resolved: i64,
    reopened: i64,
    backlog: i64,
    first: Vec<i64>,
    next: Vec<i64>,
    resolution: Vec<i64>,
    sla: [(i64, i64); 3],
    ratings: [i64; 3],
    minutes: i64,
}

impl Acc {
    fn row(mut self, key: String) -> ReportRow {
        let stat = |values: &mut Vec<i64>| {
            let (median, p90) = median_and_p90(values);
            TimeStat {
                count: values.len(),
                median_hours: hours(median),
                p90_hours: hours(p90),
            }
        };
        let met = |(measured, met): (i64, i64)| SlaMet {
            measured,
            met,
            percent: percent(met, measured),
        };
        let [good, okay, bad] = self.ratings;
        ReportRow {
            key,
            created: self.created,
            resolved: self.resolved,
            reopened: self.reopened,
            backlog: self.backlog,
            first_response: stat(&mut self.first),
            next_response: stat(&mut self.next),
            resolution: stat(&mut self.resolution),
            sla_first_response: met(self.sla[0]),
            sla_next_response: met(self.sla[1]),
            sla_resolution: met(self.sla[2]),
            satisfaction: Satisfaction {
                good,
                okay,
                bad,
                percent_good: percent(good, good + okay + bad),
            },
            time_spent_minutes: self.minutes,
        }
    }
}

/// The groups of one grouping while they are summed: keys borrowed from
/// the rows where they can be (an agent, a queue, a period's label), so
/// the ten or so events of each ticket allocate nothing.
#[derive(Default)]
struct Groups<'k> {
    index: HashMap<Cow<'k, str>, usize>,
    accs: Vec<Acc>,
}

impl<'k> Groups<'k> {
    fn slot(&mut self, key: Cow<'k, str>) -> &mut Acc {
        let next = self.accs.len();
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            self.accs.push(Acc::default());
        }
        &mut self.accs[i]
    }

    fn into_sorted(self) -> BTreeMap<String, Acc> {
        let mut accs: Vec<Option<Acc>> = self.accs.into_iter().map(Some).collect();
        self.index
            .into_iter()
            .filter_map(|(key, i)| Some((key.into_owned(), accs[i].take()?)))
            .collect()
    }
}

/// The days or weeks of a report, found by instant with a binary search
/// (converting and formatting each event's local day was most of the
/// grouping's time).
#[derive(Default)]
struct Periods {
    /// When the first period begins.
    start: Option<DateTime<Utc>>,
    /// Each period's label and end, in order.
    periods: Vec<(String, DateTime<Utc>)>,
}

impl Periods {
    fn new(first: DateTime<Utc>, to: DateTime<Utc>, by: Option<GroupBy>, tz: Tz) -> Periods {
        let mut day = local_day(first, tz);
        if by == Some(GroupBy::Week) {
            day = week_start(day);
        }
        Periods {
            start: Some(day_start(day, tz)),
            periods: periods(first, to, by, tz),
        }
    }

    fn label(&self, at: DateTime<Utc>) -> Option<&str> {
        let i = self.periods.partition_point(|(_, end)| *end <= at);
        let begins = match i {
            0 => self.start?,
            _ => self.periods[i - 1].1,
        };
        let (label, _) = self.periods.get(i)?;
        (at >= begins).then_some(label.as_str())
    }
}

/// Computes the report from the rows.
pub fn compute<'r>(
    data: &'r ReportData,
    options: &ReportOptions,
    clock: &dyn BusinessClock,
) -> Report {
    let in_range = |at: DateTime<Utc>| options.from.is_none_or(|f| at >= f) && at < options.to;
    // Due times that passed by now (and within the period) count as missed.
    let passed = |due: DateTime<Utc>| in_range(due) && due <= options.now;
    let mut by_ticket: HashMap<i64, &[ReportMessage]> = HashMap::new();
    let mut rest = data.messages.as_slice();
    while let Some(first) = rest.first() {
        let len = rest.iter().take_while(|m| m.ticket == first.ticket).count();
        let (these, others) = rest.split_at(len);
        by_ticket.insert(first.ticket, these);
        rest = others;
    }
    let figures: Vec<Figures> = data
        .tickets
        .iter()
        .map(|t| {
            let secs = |a, b| clock.business_between(t, a, b).num_seconds();
            let first_response = t
                .first_response_at
                .filter(|at| in_range(*at))
                .map(|at| (at, secs(t.created_at, at)));
            let resolution = t
                .done_at
                .filter(|at| in_range(*at))
                .map(|at| (at, secs(t.created_at, at)));
            let sla_first = t
                .first_response_due
                .and_then(|due| match t.first_response_at {
                    Some(at) => in_range(at).then_some((at, at <= due)),
                    None => passed(due).then_some((due, false)),
                });
            let sla_resolution = t.resolution_due.and_then(|due| match t.done_at {
                Some(at) => in_range(at).then_some((at, at <= due)),
                None => passed(due).then_some((due, false)),
            });
            let mut next_responses = Vec::new();
            let mut sla_next = Vec::new();
            if let Some(first) = t.first_response_at {
                let mut waiting: Option<DateTime<Utc>> = None;
                let messages = by_ticket.get(&t.number).copied().unwrap_or(&[]);
                for m in messages.iter().filter(|m| m.at >= first) {
                    match (m.customer, waiting) {
                        (true, None) => waiting = Some(m.at),
                        (false, Some(since)) => {
                            waiting = None;
                            if in_range(m.at) {
                                next_responses.push((m.at, secs(since, m.at)));
                            }
                            if let Some(due) = clock.next_response_due(t, since)
                                && in_range(m.at)
                            {
                                sla_next.push((m.at, m.at <= due));
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(since) = waiting
                    && let Some(due) = clock.next_response_due(t, since)
                    && passed(due)
                {
                    sla_next.push((due, false));
                }
            }
            Figures {
                first_response,
                resolution,
                next_responses,
                sla_first,
                sla_resolution,
                sla_next,
            }
        })
        .collect();

    let queue_of: HashMap<i64, usize> = data
        .tickets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.number, i))
        .collect();

    let first_instant = options
        .from
        .or_else(|| data.tickets.iter().map(|t| t.created_at).min());
    let group = |by: Option<GroupBy>| -> BTreeMap<String, Acc> {
        let calendar = match (by, first_instant) {
            (Some(GroupBy::Day | GroupBy::Week), Some(first)) => {
                Periods::new(first, options.to, by, options.tz)
            }
            _ => Periods::default(),
        };
        let key = |at: DateTime<Utc>, agent: Option<&'r str>, queue: &'r str| -> Cow<'_, str> {
            match by {
                None => Cow::Borrowed(""),
                Some(GroupBy::Day | GroupBy::Week) => match calendar.label(at) {
                    Some(label) => Cow::Borrowed(label),
                    // Before the first period (imported mail): converted.
                    None if by == Some(GroupBy::Day) => {
                        Cow::Owned(local_day(at, options.tz).to_string())
                    }
                    None => Cow::Owned(week_start(local_day(at, options.tz)).to_string()),
                },
                Some(GroupBy::Agent) => Cow::Borrowed(agent.unwrap_or(UNASSIGNED)),
                Some(GroupBy::Queue) => Cow::Borrowed(queue),
            }
        };
        let mut groups = Groups::default();
        for (t, f) in data.tickets.iter().zip(&figures) {
            let at = |at: DateTime<Utc>| key(at, t.owner.as_deref(), &t.queue);
            if in_range(t.created_at) {
                groups.slot(at(t.created_at)).created += 1;
            }
            if let Some((when, secs)) = f.resolution {
                let acc = groups.slot(at(when));
                acc.resolved += 1;
                acc.resolution.push(secs);
            }
            if let Some((when, secs)) = f.first_response {
                groups.slot(at(when)).first.push(secs);
            }
            for (when, secs) in &f.next_responses {
                groups.slot(at(*when)).next.push(*secs);
            }
            let clocks = f
                .sla_first
                .iter()
                .map(|o| (0, o))
                .chain(f.sla_next.iter().map(|o| (1, o)))
                .chain(f.sla_resolution.iter().map(|o| (2, o)));
            for (clock, (when, met)) in clocks {
                let acc = groups.slot(at(*when));
                acc.sla[clock].0 += 1;
                acc.sla[clock].1 += i64::from(*met);
            }
        }
        for (number, when) in &data.reopens {
            if let Some(t) = queue_of.get(number).map(|i| &data.tickets[*i])
                && in_range(*when)
            {
                groups
                    .slot(key(*when, t.owner.as_deref(), &t.queue))
                    .reopened += 1;
            }
        }
        for entry in data.time_spent.iter().filter(|e| in_range(e.at)) {
            groups
                .slot(key(entry.at, Some(&entry.agent), &entry.queue))
                .minutes += entry.minutes;
        }
        for survey in data.surveys.iter().filter(|s| in_range(s.at)) {
            let slot = match survey.rating.as_str() {
                "good" => 0,
                "okay" => 1,
                "bad" => 2,
                _ => continue,
            };
            groups
                .slot(key(survey.at, survey.agent.as_deref(), &survey.queue))
                .ratings[slot] += 1;
        }
        // The backlog: open at the end of each period (of the report, for
        // agents and queues).
        match by {
            Some(GroupBy::Day | GroupBy::Week) => {
                for (label, end) in &calendar.periods {
                    groups.slot(Cow::Borrowed(label)).backlog = open_at(&data.tickets, *end);
                }
            }
            _ => {
                let end = options.to.min(options.now);
                for t in data.tickets.iter().filter(|t| is_open_at(t, end)) {
                    groups.slot(key(end, t.owner.as_deref(), &t.queue)).backlog += 1;
                }
            }
        }
        groups.into_sorted()
    };

    let total = group(None)
        .into_values()
        .next()
        .unwrap_or_default()
        .row("total".into());
    let rows: Vec<ReportRow> = match options.by {
        None => Vec::new(),
        Some(by) => group(Some(by))
            .into_iter()
            .map(|(key, acc)| acc.row(key))
            .collect(),
    };
    let sla_by_queue = group(Some(GroupBy::Queue))
        .into_iter()
        .map(|(queue, acc)| {
            let row = acc.row(queue);
            QueueSla {
                queue: row.key,
                first_response: row.sla_first_response.percent,
                next_response: row.sla_next_response.percent,
                resolution: row.sla_resolution.percent,
            }
        })
        .collect();

    // The volume chart: every day of the period, created and resolved.
    let mut days: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
    if let Some(first) = options.from {
        for (label, _) in periods(first, options.to, Some(GroupBy::Day), options.tz) {
            if let Ok(day) = label.parse() {
                days.insert(day, (0, 0));
            }
        }
    }
    for t in &data.tickets {
        if in_range(t.created_at) {
            days.entry(local_day(t.created_at, options.tz))
                .or_default()
                .0 += 1;
        }
        if let Some(done) = t.done_at.filter(|d| in_range(*d)) {
            days.entry(local_day(done, options.tz)).or_default().1 += 1;
        }
    }
    let volume = days
        .into_iter()
        .map(|(day, (created, resolved))| DayVolume {
            day,
            created,
            resolved,
        })
        .collect();

    let bucket = |secs: i64| {
        BUCKETS
            .iter()
            .position(|(_, upper)| upper.is_none_or(|u| secs < u))
            .unwrap_or(BUCKETS.len() - 1)
    };
    let mut response_times: Vec<ResponseBucket> = BUCKETS
        .iter()
        .map(|(label, _)| ResponseBucket {
            label,
            first_response: 0,
            next_response: 0,
        })
        .collect();
    for f in &figures {
        if let Some((_, secs)) = f.first_response {
            response_times[bucket(secs)].first_response += 1;
        }
        for (_, secs) in &f.next_responses {
            response_times[bucket(*secs)].next_response += 1;
        }
    }

    let mut articles: Vec<ArticleUse> = data.articles.clone();
    articles.sort_by(|a, b| {
        (b.suggested + b.helped_yes + b.helped_no)
            .cmp(&(a.suggested + a.helped_yes + a.helped_no))
            .then(a.article.cmp(&b.article))
    });

    Report {
        from: options.from,
        to: options.to,
        by: options.by,
        time_zone: options.tz.name().to_string(),
        total,
        rows,
        articles,
        volume,
        response_times,
        sla_by_queue,
    }
}

/// Narrows the rows to some queues (any case) and to one agent's work:
/// the tickets they own, the time they recorded, the ratings of their
/// tickets.
pub fn narrow(mut data: ReportData, queues: Option<&[String]>, agent: Option<&str>) -> ReportData {
    let queue_ok = |q: &str| queues.is_none_or(|qs| qs.iter().any(|x| x.eq_ignore_ascii_case(q)));
    let agent_ok =
        |a: Option<&str>| agent.is_none_or(|want| a.is_some_and(|a| a.eq_ignore_ascii_case(want)));
    if queues.is_none() && agent.is_none() {
        return data;
    }
    data.tickets
        .retain(|t| queue_ok(&t.queue) && agent_ok(t.owner.as_deref()));
    let kept: std::collections::HashSet<i64> = data.tickets.iter().map(|t| t.number).collect();
    data.messages.retain(|m| kept.contains(&m.ticket));
    data.reopens.retain(|(t, _)| kept.contains(t));
    data.time_spent
        .retain(|e| queue_ok(&e.queue) && agent_ok(Some(&e.agent)));
    data.surveys
        .retain(|s| queue_ok(&s.queue) && agent_ok(s.agent.as_deref()));
    data
}

/// The latest weekly instant (`weekday` at local `time` in `tz`) at or
/// before `now`, and the period its report covers: the seven local days
/// before that day.
pub fn last_weekly(
    weekday: chrono::Weekday,
    time: chrono::NaiveTime,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> {
    let today = local_day(now, tz);
    (0..=7).find_map(|back| {
        let day = today - Duration::days(back);
        if day.weekday() != weekday {
            return None;
        }
        let local = day.and_time(time);
        // A time in a DST gap: the first instant after it.
        let at = tz
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(local + Duration::hours(1)))
                    .earliest()
            })?
            .with_timezone(&Utc);
        (at <= now).then(|| {
            let to = day_start(day, tz);
            (at, day_start(day - Duration::days(7), tz), to)
        })
    })
}

/// The key of tickets nobody owns, in a report by agent.
pub const UNASSIGNED: &str = "(unassigned)";

fn is_open_at(t: &ReportTicket, at: DateTime<Utc>) -> bool {
    t.created_at < at && t.done_at.is_none_or(|done| done >= at)
}

fn open_at(tickets: &[ReportTicket], at: DateTime<Utc>) -> i64 {
    tickets.iter().filter(|t| is_open_at(t, at)).count() as i64
}

fn local_day(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

fn week_start(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The start of a local day, as an instant (the first instant of the day
/// when midnight falls in a DST gap).
pub fn day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            // A gap at midnight: the day begins when the gap ends.
            (1..=4).find_map(|h| {
                tz.from_local_datetime(&(midnight + Duration::hours(h)))
                    .earliest()
            })
        })
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// The days or weeks from `from` to `to`: each one's label and end
/// (clamped to `to`). At most ten years of days.
fn periods(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by: Option<GroupBy>,
    tz: Tz,
) -> Vec<(String, DateTime<Utc>)> {
    let mut day = local_day(from, tz);
    if by == Some(GroupBy::Week) {
        day = week_start(day);
    }
    let step = if by == Some(GroupBy::Week) { 7 } else { 1 };
    let mut out = Vec::new();
    while day_start(day, tz) < to && out.len() < 3660 {
        let next = day + Duration::days(step);
        out.push((day.to_string(), day_start(next, tz).min(to)));
        day = next;
    }
    out
}

/// The report as CSV: a header line, then one line per row and the total
/// (hours with two decimals, empty where nothing was measured).
pub fn to_csv(report: &Report) -> String {
    let header = [
        "group",
        "created",
        "resolved",
        "reopened",
        "backlog",
        "first_response_count",
        "first_response_median_hours",
        "first_response_p90_hours",
        "next_response_count",
        "next_response_median_hours",
        "next_response_p90_hours",
        "resolution_count",
        "resolution_median_hours",
        "resolution_p90_hours",
        "sla_first_response_met_percent",
        "sla_next_response_met_percent",
        "sla_resolution_met_percent",
        "satisfaction_good",
        "satisfaction_okay",
        "satisfaction_bad",
        "satisfaction_good_percent",
        "time_spent_minutes",
    ];
    let mut out = header.join(",");
    out.push_str("\r\n");
    let number = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
    for row in report.rows.iter().chain(std::iter::once(&report.total)) {
        let fields = [
            csv_field(&row.key),
            row.created.to_string(),
            row.resolved.to_string(),
            row.reopened.to_string(),
            row.backlog.to_string(),
            row.first_response.count.to_string(),
            number(row.first_response.median_hours),
            number(row.first_response.p90_hours),
            row.next_response.count.to_string(),
            number(row.next_response.median_hours),
            number(row.next_response.p90_hours),
            row.resolution.count.to_string(),
            number(row.resolution.median_hours),
            number(row.resolution.p90_hours),
            number(row.sla_first_response.percent),
            number(row.sla_next_response.percent),
            number(row.sla_resolution.percent),
            row.satisfaction.good.to_string(),
            row.satisfaction.okay.to_string(),
            row.satisfaction.bad.to_string(),
            number(row.satisfaction.percent_good),
            row.time_spent_minutes.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// RFC 4180: quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Hours as a person reads them: "2h30m", "45m", "3d2h" (24-hour days of
/// business time), "-" for nothing measured.
pub fn format_hours(hours: Option<f64>) -> String {
    let Some(hours) = hours else {
        return "-".into();
    };
    let minutes = (hours * 60.0).round() as i64;
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (d, h, m) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Business time: 09:00-17:00 UTC on weekdays, as a simple calendar.
    struct NineToFive;

    impl BusinessClock for NineToFive {
        fn business_between(
            &self,
            _: &ReportTicket,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
        ) -> Duration {
            let mut total = Duration::zero();
            let mut day = from.date_naive();
            while day <= to.date_naive() {
                if day.weekday().num_days_from_monday() < 5 {
                    let open = Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).unwrap_or_default());
                    let close = open + Duration::hours(8);
                    let (a, b) = (from.max(open), to.min(close));
                    if b > a {
                        total += b - a;
                    }
                }
                day += Duration::days(1);
            }
            total
        }

        fn next_response_due(
            &self,
            t: &ReportTicket,
            since: DateTime<Utc>,
        ) -> Option<DateTime<Utc>> {
            // Two hours of wall time (enough for these cases).
            t.policy.as_ref().map(|_| since + Duration::hours(2))
        }
    }

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        // November 2026: the 23rd is a Monday.
        Utc.with_ymd_and_hms(2026, 11, day, h, m, 0)
            .single()
            .unwrap_or_default()
    }

    fn ticket(
        number: i64,
        queue: &str,
        owner: Option<&str>,
        created: DateTime<Utc>,
    ) -> ReportTicket {
        ReportTicket {
            number,
            queue: queue.into(),
            owner: owner.map(str::to_string),
            policy: Some("standard".into()),
            created_at: created,
            done_at: None,
            first_response_at: None,
            first_response_due: None,
            resolution_due: None,
        }
    }

    fn options(by: Option<GroupBy>) -> ReportOptions {
        ReportOptions {
            from: Some(at(23, 0, 0)),
            to: at(30, 0, 0),
            by,
            tz: Tz::UTC,
            now: at(30, 0, 0),
        }
    }

    #[test]
    fn median_of_even_counts_is_the_mean_and_p90_the_nearest_rank() {
        assert_eq!(median_and_p90(&mut []), (None, None));
        assert_eq!(median_and_p90(&mut [5]), (Some(5.0), Some(5.0)));
        assert_eq!(median_and_p90(&mut [4, 1, 3, 2]), (Some(2.5), Some(4.0)));
        let mut ten: Vec<i64> = (1..=10).rev().collect();
        assert_eq!(median_and_p90(&mut ten), (Some(5.5), Some(9.0)));
        let mut eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(median_and_p90(&mut eleven), (Some(6.0), Some(10.0)));
    }

    #[test]
    fn response_times_count_business_hours_only() {
        // Friday 16:00 → Monday 10:00 is two business hours.
        let mut weekend = ticket(1, "support", Some("ann@x"), at(27, 16, 0));
        weekend.first_response_at = Some(at(30, 10, 0));
        let mut quick = ticket(2, "support", Some("ann@x"), at(24, 9, 0));
        quick.first_response_at = Some(at(24, 9, 30));
        let mut slow = ticket(3, "billing", None, at(24, 9, 0));
        slow.first_response_at = Some(at(25, 9, 0)); // one business day: 8h
        slow.done_at = Some(at(25, 13, 0)); // 12h
        let data = ReportData {
            tickets: vec![weekend, quick, slow],
            ..ReportData::default()
        };
        let mut opts = options(None);
        opts.to = at(30, 23, 0);
        opts.now = opts.to;
        let report = compute(&data, &opts, &NineToFive);
        let t = &report.total;
        assert_eq!(t.created, 3);
        assert_eq!(t.first_response.count, 3);
        // 0.5h, 2h, 8h.
        assert_eq!(t.first_response.median_hours, Some(2.0));
        assert_eq!(t.first_response.p90_hours, Some(8.0));
        assert_eq!(t.resolution.median_hours, Some(12.0));
        assert_eq!((t.resolved, t.backlog), (1, 2));
        assert_eq!(report.response_times[0].first_response, 1);
        assert_eq!(report.response_times[1].first_response, 1);
        assert_eq!(report.response_times[2].first_response, 0);
        assert_eq!(report.response_times[3].first_response, 1);
    }

    #[test]
    fn next_responses_run_from_a_customer_message_after_the_first_answer() {
        let mut t = ticket(1, "support", Some("ann@x"), at(23, 9, 0));
        t.first_response_at = Some(at(23, 10, 0));
        let messages = vec![
            ReportMessage {
                ticket: 1,
                customer: false,
                at: at(23, 10, 0),
            },
            // The customer writes twice; the wait counts from the first.
            ReportMessage {
                ticket: 1,
                customer: true,
                at: at(23, 11, 0),
            },
            ReportMessage {
                ticket: 1,
                customer: true,
                at: at(23, 11, 30),
            },
            ReportMessage {
                ticket: 1,
                customer: false,
                at: at(23, 14, 0),
            },
            // Answered in 1h: met; the one before took 3h: missed.
            ReportMessage {
                ticket: 1,
                customer: true,
                at: at(23, 15, 0),
            },
            ReportMessage {
                ticket: 1,
                customer: false,
                at: at(23, 16, 0),
            },
            // Still waiting since Tuesday 9:00: due at 11:00, missed.
            ReportMessage {
                ticket: 1,
                customer: true,
                at: at(24, 9, 0),
            },
        ];
        let data = ReportData {
            tickets: vec![t],
            messages,
            ..ReportData::default()
        };
        let report = compute(&data, &options(None), &NineToFive);
        let total = &report.total;
        assert_eq!(total.next_response.count, 2);
        assert_eq!(total.next_response.median_hours, Some(2.0));
        assert_eq!(total.next_response.p90_hours, Some(3.0));
        assert_eq!(
            (
                total.sla_next_response.measured,
                total.sla_next_response.met
            ),
            (3, 1)
        );
        assert_eq!(total.sla_next_response.percent, Some(33.3));
    }

    #[test]
    fn sla_met_counts_answers_and_due_times_that_passed() {
        let mut on_time = ticket(1, "support", None, at(23, 9, 0));
        on_time.first_response_due = Some(at(23, 11, 0));
        on_time.first_response_at = Some(at(23, 10, 0));
        on_time.resolution_due = Some(at(24, 9, 0));
        on_time.done_at = Some(at(24, 10, 0));
        let mut unanswered = ticket(2, "billing", None, at(23, 9, 0));
        unanswered.first_response_due = Some(at(23, 11, 0));
        // Not due yet at "now": not counted.
        let mut not_yet = ticket(3, "billing", None, at(29, 9, 0));
        not_yet.first_response_due = Some(at(29, 23, 0));
        let data = ReportData {
            tickets: vec![on_time, unanswered, not_yet],
            ..ReportData::default()
        };
        let mut opts = options(Some(GroupBy::Queue));
        opts.now = at(29, 12, 0);
        let report = compute(&data, &opts, &NineToFive);
        let fr = &report.total.sla_first_response;
        assert_eq!((fr.measured, fr.met, fr.percent), (2, 1, Some(50.0)));
        let res = &report.total.sla_resolution;
        assert_eq!((res.measured, res.met), (1, 0));
        assert_eq!(report.rows.len(), 2);
        assert_eq!(report.rows[0].key, "billing");
        assert_eq!(report.rows[0].sla_first_response.percent, Some(0.0));
        assert_eq!(report.sla_by_queue[1].first_response, Some(100.0));
    }

    #[test]
    fn rows_by_day_and_agent_with_satisfaction_time_and_reopens() {
        let mut a = ticket(1, "support", Some("ann@x"), at(23, 9, 0));
        a.done_at = Some(at(24, 9, 0));
        let b = ticket(2, "support", None, at(24, 12, 0));
        let data = ReportData {
            tickets: vec![a, b],
            reopens: vec![(2, at(25, 8, 0))],
            time_spent: vec![TimeRecorded {
                queue: "support".into(),
                agent: "ann@x".into(),
                minutes: 15,
                at: at(24, 10, 0),
            }],
            surveys: vec![
                SurveyAnswer {
                    queue: "support".into(),
                    agent: Some("ann@x".into()),
                    rating: "good".into(),
                    at: at(24, 11, 0),
                },
                SurveyAnswer {
                    queue: "support".into(),
                    agent: Some("ann@x".into()),
                    rating: "bad".into(),
                    at: at(24, 11, 0),
                },
                SurveyAnswer {
                    queue: "support".into(),
                    agent: Some("ann@x".into()),
                    rating: "good".into(),
                    at: at(24, 11, 0),
                },
            ],
            ..ReportData::default()
        };
        let by_day = compute(&data, &options(Some(GroupBy::Day)), &NineToFive);
        // Every day of the period, with the backlog at its end.
        assert_eq!(by_day.rows.len(), 7);
        let monday = &by_day.rows[0];
        assert_eq!(
            (monday.key.as_str(), monday.created, monday.backlog),
            ("2026-11-23", 1, 1)
        );
        let tuesday = &by_day.rows[1];
        assert_eq!(
            (tuesday.created, tuesday.resolved, tuesday.backlog),
            (1, 1, 1)
        );
        assert_eq!(tuesday.time_spent_minutes, 15);
        assert_eq!(tuesday.satisfaction.percent_good, Some(66.7));
        assert_eq!(by_day.rows[2].reopened, 1);
        assert_eq!(by_day.volume.len(), 7);
        assert_eq!(by_day.volume[1].resolved, 1);

        let by_agent = compute(&data, &options(Some(GroupBy::Agent)), &NineToFive);
        let keys: Vec<&str> = by_agent.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["(unassigned)", "ann@x"]);
        assert_eq!(by_agent.rows[0].backlog, 1);
        assert_eq!(by_agent.rows[1].satisfaction.good, 2);

        let by_week = compute(&data, &options(Some(GroupBy::Week)), &NineToFive);
        assert_eq!(by_week.rows.len(), 1);
        assert_eq!(by_week.rows[0].key, "2026-11-23");
        assert_eq!(by_week.total.created, 2);
    }

    #[test]
    fn csv_has_a_header_and_a_line_per_row_and_the_total() {
        let data = ReportData {
            tickets: vec![ticket(1, "sup,port", None, at(23, 9, 0))],
            ..ReportData::default()
        };
        let report = compute(&data, &options(Some(GroupBy::Queue)), &NineToFive);
        let csv = to_csv(&report);
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("group,created,resolved,reopened,backlog,"));
        assert!(
            lines[1].starts_with("\"sup,port\",1,0,0,1,"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("total,1,"));
        assert_eq!(lines[0].split(',').count(), 22);
    }

    #[test]
    fn the_weekly_mail_covers_the_seven_days_before_its_day_in_its_zone() {
        let tz: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        let time = chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default();
        // Monday 2026-11-30 07:30 in Berlin (06:30 UTC): not yet; last week's.
        let before = at(30, 6, 30);
        let (at_, from, to) =
            last_weekly(chrono::Weekday::Mon, time, tz, before).unwrap_or_default();
        assert_eq!(at_, at(23, 7, 0));
        assert_eq!((from, to), (at(15, 23, 0), at(22, 23, 0)));
        // At 08:00 Berlin it is this week's.
        let (at_, from, to) =
            last_weekly(chrono::Weekday::Mon, time, tz, at(30, 7, 0)).unwrap_or_default();
        assert_eq!(at_, at(30, 7, 0));
        assert_eq!((from, to), (at(22, 23, 0), at(29, 23, 0)));
    }

    #[test]
    fn hours_read_as_a_person_writes_them() {
        assert_eq!(format_hours(None), "-");
        assert_eq!(format_hours(Some(0.25)), "15m");
        assert_eq!(format_hours(Some(2.0)), "2h");
        assert_eq!(format_hours(Some(2.5)), "2h30m");
        assert_eq!(format_hours(Some(50.0)), "2d2h");
    }
}
