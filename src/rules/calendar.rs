//! Business-hours calendars for SLA deadlines.
//!
//! An SLA clock only ticks while the team works, so "respond within 8h" means
//! eight hours of *opening* time. A [`Calendar`] holds weekly opening hours
//! (local wall-clock times in one IANA zone) minus holidays and converts between
//! instants and business time. It is pure (no clock, no I/O) so a scheduler can
//! evaluate many tickets cheaply.
//!
//! DST rule, applied when a day's local ranges become UTC instants: a local time
//! inside a spring-forward gap maps to the first instant after the gap; an
//! ambiguous (fall-back) local time maps to its *earliest* instant when it starts
//! a range and its *latest* when it ends one. A range thus covers every instant
//! whose wall clock reads inside it, and `00:00-24:00` lasts 23h on spring-forward
//! and 25h on fall-back days. Where this makes ranges overlap in UTC, the later
//! range is clipped, so no instant is ever counted twice.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, MappedLocalTime, NaiveDate, NaiveDateTime};
use chrono::{NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

const SECS_PER_DAY: u32 = 86_400;
/// Per-number cap in a duration, so a typo like "80000000h" is rejected
/// instead of producing a deadline centuries away.
const MAX_COMPONENT: u64 = 100_000;
/// Units from largest to smallest, with their size in business days and in
/// seconds. "w" is a working week (5 days): SLAs are written for Mon–Fri teams.
const UNITS: [char; 5] = ['w', 'd', 'h', 'm', 's'];
const UNIT_DAYS: [u64; 5] = [5, 1, 0, 0, 0];
const UNIT_SECS: [u64; 5] = [0, 0, 3600, 60, 1];
/// Hard cap on the days an open-ended search scans (~2700 years): above the
/// largest parseable target on a five-day week, so it only stops nonsense.
const MAX_SCAN_DAYS: u32 = 1_000_000;

/// An SLA target: whole business days plus business time ("1d4h30m").
///
/// Kept apart because a business day has no fixed length: "1d" means "the same
/// point of the next open day", not 8 or 24 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BusinessDuration {
    pub days: u32,
    pub time: Duration,
}

/// Why a duration string was rejected; each message names the culprit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("empty duration (write e.g. \"8h\" or \"1d4h30m\")")]
    Empty,
    #[error("whitespace in duration '{0}' (write it without spaces, e.g. \"1d4h\")")]
    Whitespace(String),
    #[error("unknown unit '{0}' in '{1}' (use w, d, h, m or s)")]
    UnknownUnit(char, String),
    #[error("missing number before '{0}' in '{1}'")]
    MissingNumber(char, String),
    #[error("number '{0}' has no unit in '{1}' (use w, d, h, m or s)")]
    MissingUnit(String, String),
    #[error("unit '{0}' out of order in '{1}' (go from largest to smallest: w, d, h, m, s)")]
    OutOfOrder(char, String),
    #[error("unit '{0}' appears more than once in '{1}'")]
    Repeated(char, String),
    #[error("'{0}' in '{1}' is too large (at most 100000 per unit)")]
    TooLarge(String, String),
    #[error("duration '{0}' is zero; an SLA target must be positive")]
    Zero(String),
}

/// Why a calendar definition was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("unknown time zone '{0}' (use an IANA name such as \"Europe/Berlin\")")]
    UnknownTimeZone(String),
    #[error("unknown weekday '{0}' (use mon, tue, wed, thu, fri, sat or sun)")]
    BadWeekday(String),
    #[error("weekday '{0}' is listed more than once")]
    DuplicateWeekday(String),
    /// Weekday key, the spec as given, and what is wrong with it.
    #[error("bad opening hours for '{0}' in '{1}': {2}")]
    BadHours(String, String, String),
    #[error("bad holiday '{0}' (expected an existing date as YYYY-MM-DD)")]
    BadHoliday(String),
}

impl BusinessDuration {
    /// A target of `days` business days plus `time` of business time.
    pub fn new(days: u32, time: Duration) -> BusinessDuration {
        BusinessDuration { days, time }
    }

    /// Parses "8h", "30m", "1d", "1d4h", "90s", "2w" ("w" = 5 business days).
    ///
    /// Strict on purpose (no whitespace, units from largest to smallest, each
    /// once, numbers ≤ 100000, non-zero total): these strings come from admin
    /// config, and a silently misread SLA is worse than a startup error.
    pub fn parse(text: &str) -> Result<BusinessDuration, DurationError> {
        use DurationError as E;
        let owned = || text.to_owned();
        if text.is_empty() {
            return Err(E::Empty);
        }
        if text.contains(char::is_whitespace) {
            return Err(E::Whitespace(owned()));
        }
        let (mut days, mut secs, mut previous, mut number_start) = (0, 0, None, 0);
        for (i, unit) in text.char_indices().filter(|(_, c)| !c.is_ascii_digit()) {
            let Some(rank) = UNITS.iter().position(|&u| u == unit) else {
                return Err(E::UnknownUnit(unit, owned()));
            };
            let digits = &text[number_start..i];
            let significant = digits.trim_start_matches('0');
            let value = match significant.parse::<u64>() {
                _ if digits.is_empty() => return Err(E::MissingNumber(unit, owned())),
                _ if previous == Some(rank) => return Err(E::Repeated(unit, owned())),
                _ if previous > Some(rank) => return Err(E::OutOfOrder(unit, owned())),
                _ if significant.is_empty() => 0,
                Ok(v) if significant.len() <= 6 && v <= MAX_COMPONENT => v,
                _ => return Err(E::TooLarge(format!("{digits}{unit}"), owned())),
            };
            days += value * UNIT_DAYS[rank];
            secs += value * UNIT_SECS[rank];
            previous = Some(rank);
            number_start = i + unit.len_utf8();
        }
        if number_start < text.len() {
            return Err(E::MissingUnit(text[number_start..].to_owned(), owned()));
        }
        if days == 0 && secs == 0 {
            return Err(E::Zero(owned()));
        }
        // At most 600 000 days and ~3.7e8 s, so both conversions are exact.
        let days = u32::try_from(days).unwrap_or(u32::MAX);
        let time = Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
        Ok(BusinessDuration::new(days, time))
    }
}

impl fmt::Display for BusinessDuration {
    /// Canonical form: days, then time normalised to h/m/s ("90m" → "1h30m",
    /// "2w" → "10d"). Hours are never folded into days since a business day has
    /// no fixed length. Zero renders as "0s"; sub-second parts are dropped. The
    /// output parses back unless normalising pushed a number past 100000.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.time.num_seconds();
        let mut wrote = self.days > 0;
        if wrote {
            write!(f, "{}d", self.days)?;
        }
        if secs < 0 {
            f.write_str("-")?;
        }
        let mut rest = secs.unsigned_abs();
        for (size, unit) in [(3600, 'h'), (60, 'm'), (1, 's')] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                (rest, wrote) = (rest % size, true);
            }
        }
        if !wrote {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

/// Weekly opening hours in a time zone, minus holidays.
/// `Calendar::always()` is the built-in "24x7" (UTC, every second counts, no holidays).
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: Tz,
    /// Per weekday (Monday first): sorted, disjoint `(start, end)` seconds since
    /// local midnight, touching ranges merged; `end` may be 86 400 ("24:00").
    week: [Vec<(u32, u32)>; 7],
    /// Sorted and deduplicated, for binary search.
    holidays: Vec<NaiveDate>,
    /// Business time equals wall time (UTC, 24x7, no holidays): skip the walk.
    continuous: bool,
}

/// Yields opening windows `(local day, start, end)` in time order, day by day,
/// without allocating. Bounded: each step consumes a range or one of `days_left`.
struct Windows<'a> {
    cal: &'a Calendar,
    day: NaiveDate,
    ranges: &'a [(u32, u32)],
    next: usize,
    /// No window may start before this (the latest end so far), which keeps
    /// ranges that overlap in UTC around DST changes from counting twice.
    floor: DateTime<Utc>,
    /// End of the current day's last range (the next day's floor); MIN if none.
    day_end: DateTime<Utc>,
    days_left: u32,
}

impl Iterator for Windows<'_> {
    type Item = (NaiveDate, DateTime<Utc>, DateTime<Utc>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(&(from, to)) = self.ranges.get(self.next) else {
                self.days_left = self.days_left.checked_sub(1)?;
                self.day = self.day.succ_opt()?;
                self.ranges = self.cal.ranges_on(self.day);
                self.next = 0;
                // The previous day alone sets the floor, so a day's windows do
                // not depend on where the walk began (keeps sums additive).
                self.floor = std::mem::replace(&mut self.day_end, DateTime::<Utc>::MIN_UTC);
                continue;
            };
            self.next += 1;
            let start = self.cal.local_to_utc(self.day, from, false)?;
            let end = self.cal.local_to_utc(self.day, to, true)?;
            let start = start.max(self.floor);
            (self.day_end, self.floor) = (end, self.floor.max(end));
            if end > start {
                return Some((self.day, start, end));
            }
        }
    }
}

impl Calendar {
    /// The built-in "24x7" calendar: every second is business time.
    pub fn always() -> Calendar {
        let week = std::array::from_fn(|_| vec![(0, SECS_PER_DAY)]);
        Calendar {
            tz: Tz::UTC,
            week,
            holidays: Vec::new(),
            continuous: true,
        }
    }

    /// `timezone`: IANA name ("Europe/Berlin"). `hours`: (weekday key, spec) pairs
    /// where key is mon|tue|wed|thu|fri|sat|sun and spec is "09:00-17:00" or several
    /// ranges "09:00-12:00,13:00-17:00"; "00:00-24:00" means the whole day; end must
    /// be after start; ranges within a day must not overlap (touching is fine).
    /// Days not listed are closed. `holidays`: "YYYY-MM-DD" local dates, closed all day.
    ///
    /// Strict because a typo here would silently shift every deadline using it.
    pub fn new(
        timezone: &str,
        hours: &[(&str, &str)],
        holidays: &[&str],
    ) -> Result<Calendar, CalendarError> {
        const KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let tz: Tz = timezone
            .parse()
            .map_err(|_| CalendarError::UnknownTimeZone(timezone.to_owned()))?;
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        let mut seen = [false; 7];
        for &(key, spec) in hours {
            let index = KEYS
                .iter()
                .position(|k| k.eq_ignore_ascii_case(key.trim()))
                .ok_or_else(|| CalendarError::BadWeekday(key.to_owned()))?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(CalendarError::DuplicateWeekday(key.to_owned()));
            }
            week[index] = parse_ranges(spec).map_err(|reason| {
                CalendarError::BadHours(key.to_owned(), spec.to_owned(), reason)
            })?;
        }
        let mut holidays = holidays
            .iter()
            .map(|t| parse_date(t))
            .collect::<Result<Vec<_>, _>>()?;
        holidays.sort_unstable();
        holidays.dedup();
        let continuous = matches!(tz, Tz::UTC | Tz::Etc__UTC)
            && holidays.is_empty()
            && week.iter().all(|day| day.as_slice() == [(0, SECS_PER_DAY)]);
        Ok(Calendar {
            tz,
            week,
            holidays,
            continuous,
        })
    }

    /// The calendar's time zone (reports place their days in it).
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Whether `at` is business time. Windows are half-open: open at the
    /// opening instant, closed at the closing instant.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        if self.continuous {
            return true;
        }
        let mut windows = self.walk(self.first_day(at), 2);
        windows
            .find(|&(_, start, end)| start > at || at < end)
            .is_some_and(|(_, start, _)| start <= at)
    }

    /// Business time between two instants (zero if b <= a).
    pub fn business_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::zero();
        }
        if self.continuous {
            return b - a;
        }
        let first = self.first_day(a);
        let last = self.local_date(b).succ_opt().unwrap_or(NaiveDate::MAX);
        let span = u32::try_from((last - first).num_days()).unwrap_or(u32::MAX);
        let mut total = Duration::zero();
        for (_, start, end) in self.walk(first, span) {
            if start >= b {
                break;
            }
            if end > a {
                total += end.min(b) - start.max(a);
            }
        }
        total
    }

    /// Instant when `time` of business time has elapsed after `start`; a zero or
    /// negative `time` returns `start`. The result lies inside a window or exactly
    /// at a closing time (never pushed to the next opening), so work due "by
    /// close" stays on that day. None if no weekday has hours, or the answer lies
    /// beyond the scan cap.
    pub fn add_business_time(&self, start: DateTime<Utc>, time: Duration) -> Option<DateTime<Utc>> {
        if time <= Duration::zero() {
            return Some(start);
        }
        if self.continuous {
            return start.checked_add_signed(time);
        }
        let mut remaining = time;
        for (_, from, end) in self.open_walk(start)? {
            let length = end - from.max(start); // negative for windows before `start`
            if length > Duration::zero() && remaining <= length {
                return from.max(start).checked_add_signed(remaining);
            }
            remaining -= length.max(Duration::zero());
        }
        None
    }

    /// Deadline for an SLA target from `start`: first `days` whole business days,
    /// then `time`. A business day: from `start` (moved forward to the next open
    /// instant if closed), go to the same business-time offset into the N-th
    /// following open day (a non-holiday day with any opening time left after DST
    /// conversion); if that day is shorter than the offset, clamp to its closing
    /// time. Then add `time` as business time. For [`Calendar::always`], 1d == 24h exactly.
    ///
    /// The offset is business time, not wall time, so a ticket arriving an hour
    /// before Friday's early close is due an hour before the target day's close.
    pub fn deadline(
        &self,
        start: DateTime<Utc>,
        target: BusinessDuration,
    ) -> Option<DateTime<Utc>> {
        if self.continuous {
            let time = target.time.max(Duration::zero()); // as add_business_time does
            let span = Duration::try_days(i64::from(target.days))?.checked_add(&time)?;
            return start.checked_add_signed(span);
        }
        if target.days == 0 {
            return self.add_business_time(start, target.time);
        }
        let mut walk = self.open_walk(start)?;
        // Find the open day of `start` and the business time already spent in it.
        let (mut current, mut offset) = (None, Duration::zero());
        for (day, from, end) in walk.by_ref() {
            if current != Some(day) {
                (current, offset) = (Some(day), Duration::zero());
            }
            if end > start {
                offset += from.max(start) - from;
                break;
            }
            offset += end - from;
        }
        let (mut current, mut index, mut landing) = (current?, 0, None);
        for (day, from, end) in walk {
            if day != current {
                if index == target.days {
                    break; // the target day closed before reaching the offset
                }
                (current, index) = (day, index + 1);
            }
            if index < target.days {
                continue;
            }
            if offset <= end - from {
                landing = from.checked_add_signed(offset);
                break;
            }
            offset -= end - from;
            landing = Some(end);
        }
        if index < target.days {
            return None;
        }
        self.add_business_time(landing?, target.time)
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// Walks begin one local day early: the previous day's last range can end
    /// after local midnight when midnight itself is ambiguous.
    fn first_day(&self, at: DateTime<Utc>) -> NaiveDate {
        let day = self.local_date(at);
        day.pred_opt().unwrap_or(day)
    }

    /// Open-ended walk; None when no weekday has hours, so hopeless searches
    /// fail at once. Otherwise the finite holiday list guarantees an open day
    /// soon, and `MAX_SCAN_DAYS` bounds the rest.
    fn open_walk(&self, start: DateTime<Utc>) -> Option<Windows<'_>> {
        let has_hours = self.week.iter().any(|day| !day.is_empty());
        has_hours.then(|| self.walk(self.first_day(start), MAX_SCAN_DAYS))
    }

    fn walk(&self, day: NaiveDate, days_left: u32) -> Windows<'_> {
        let (ranges, none) = (self.ranges_on(day), DateTime::<Utc>::MIN_UTC);
        let floor = day.pred_opt().and_then(|prev| {
            let &(_, end) = self.ranges_on(prev).last()?;
            self.local_to_utc(prev, end, true)
        });
        let floor = floor.unwrap_or(none);
        Windows {
            cal: self,
            day,
            ranges,
            next: 0,
            floor,
            day_end: none,
            days_left,
        }
    }

    /// Opening ranges of a local date; empty on holidays and closed weekdays, so
    /// those are skipped without any time-zone arithmetic.
    fn ranges_on(&self, day: NaiveDate) -> &[(u32, u32)] {
        if self.holidays.binary_search(&day).is_ok() {
            return &[];
        }
        &self.week[day.weekday().num_days_from_monday() as usize]
    }

    /// UTC instant `secs` after local midnight of `day` (86 400 = next midnight)
    /// under the module's DST rule (`latest` selects the range-end mapping).
    fn local_to_utc(&self, day: NaiveDate, secs: u32, latest: bool) -> Option<DateTime<Utc>> {
        let (day, secs) = match secs.checked_sub(SECS_PER_DAY) {
            Some(rest) => (day.succ_opt()?, rest),
            None => (day, secs),
        };
        let local = day.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)?);
        match self.tz.from_local_datetime(&local) {
            MappedLocalTime::Single(t) => Some(t.to_utc()),
            MappedLocalTime::Ambiguous(early, late) => {
                Some(if latest { late } else { early }.to_utc())
            }
            MappedLocalTime::None => self.gap_end(local),
        }
    }

    /// First instant whose wall clock reads later than `local`, a time skipped by a
    /// spring-forward gap. chrono-tz exposes no transition list, so the change is
    /// located by a bounded binary search over whole seconds.
    fn gap_end(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let offset_at = |ts: i64| -> Option<i64> {
            let offset = self
                .tz
                .offset_from_utc_datetime(&DateTime::from_timestamp(ts, 0)?.naive_utc());
            Some(i64::from(offset.fix().local_minus_utc()))
        };
        let wall = local.and_utc().timestamp();
        let before = offset_at(wall - i64::from(SECS_PER_DAY))?;
        let after = offset_at(wall + i64::from(SECS_PER_DAY))?;
        // Invariant: at `lo` the clock reads before `local`, at `hi` after it.
        let (mut lo, mut hi) = (wall - after, wall - before);
        if hi <= lo || hi + offset_at(hi)? <= wall {
            return DateTime::from_timestamp(hi.max(lo), 0); // not a simple gap
        }
        for _ in 0..64 {
            if hi - lo <= 1 {
                break;
            }
            let mid = lo + (hi - lo) / 2;
            if mid + offset_at(mid)? > wall {
                hi = mid
            } else {
                lo = mid
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

/// Parses one day's "09:00-12:00,13:00-17:00" into sorted, merged ranges.
fn parse_ranges(spec: &str) -> Result<Vec<(u32, u32)>, String> {
    if spec.trim().is_empty() {
        return Err("no time ranges (leave the day out to close it)".to_owned());
    }
    let mut ranges = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let (from, to) = part
            .split_once('-')
            .ok_or_else(|| format!("'{part}' is not a range like 09:00-17:00"))?;
        let (start, end) = (
            parse_clock(from.trim(), false)?,
            parse_clock(to.trim(), true)?,
        );
        if end <= start {
            return Err(format!("'{part}' does not end after it starts"));
        }
        ranges.push((start, end));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start < last.1 => {
                let at = format!("{:02}:{:02}", start / 3600, start % 3600 / 60);
                return Err(format!("ranges overlap at {at}"));
            }
            Some(last) if start == last.1 => last.1 = end,
            _ => merged.push((start, end)),
        }
    }
    Ok(merged)
}

/// "HH:MM" (or "H:MM") to seconds since midnight; "24:00" only as an end.
fn parse_clock(text: &str, is_end: bool) -> Result<u32, String> {
    let bad = || format!("'{text}' is not a time like 09:30");
    let number = |s: &str| match s.bytes().all(|b| b.is_ascii_digit()) {
        true if (1..=2).contains(&s.len()) => s.parse::<u32>().ok(),
        _ => None,
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (hour, minute) = (number(h).ok_or_else(bad)?, number(m).ok_or_else(bad)?);
    if m.len() != 2 || minute > 59 || hour > 24 || (hour == 24 && minute != 0) {
        return Err(bad());
    }
    if hour == 24 && !is_end {
        return Err("24:00 can only end a range".to_owned());
    }
    Ok(hour * 3600 + minute * 60)
}

/// Strict "YYYY-MM-DD" via a round trip: chrono alone also accepts "2026-1-5",
/// which in a holiday list is more likely a typo than intent.
fn parse_date(text: &str) -> Result<NaiveDate, CalendarError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|date| date.format("%Y-%m-%d").to_string() == text)
        .ok_or_else(|| CalendarError::BadHoliday(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(tz: &str, text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        let tz: Tz = tz.parse().unwrap();
        tz.from_local_datetime(&naive).unwrap().to_utc()
    }
    fn berlin(text: &str) -> DateTime<Utc> {
        at("Europe/Berlin", text)
    }
    fn utc(text: &str) -> DateTime<Utc> {
        at("UTC", text)
    }
    fn hours(n: i64) -> Duration {
        Duration::hours(n)
    }
    fn dur(text: &str) -> BusinessDuration {
        BusinessDuration::parse(text).unwrap()
    }
    fn calendar(tz: &str, days: &str, spec: &str, holidays: &[&str]) -> Calendar {
        let hours: Vec<_> = days.split(',').map(|day| (day, spec)).collect();
        Calendar::new(tz, &hours, holidays).unwrap()
    }
    /// The example calendar: Berlin, 9–17 Mon–Thu, Fri 9–15, Christmas off.
    fn example() -> Calendar {
        let hours = ["mon", "tue", "wed", "thu"].map(|d| (d, "09:00-17:00"));
        let hours = [hours.as_slice(), &[("fri", "09:00-15:00")]].concat();
        let holidays = ["2026-12-24", "2026-12-25", "2026-12-26"];
        Calendar::new("Europe/Berlin", &hours, &holidays).unwrap()
    }
    fn weekdays(tz: &str) -> Calendar {
        calendar(tz, "mon,tue,wed,thu,fri", "09:00-17:00", &[])
    }

    #[test]
    fn durations_parse_and_render_canonically() {
        let cases = [
            ("8h", 0, 8 * 3600, "8h"),
            ("30m", 0, 1800, "30m"),
            ("1d", 1, 0, "1d"),
            ("1d4h", 1, 4 * 3600, "1d4h"),
            ("90s", 0, 90, "1m30s"),
            ("2w", 10, 0, "10d"),
            ("1w2d3h4m5s", 7, 3 * 3600 + 245, "7d3h4m5s"),
            ("1d4h30m", 1, 4 * 3600 + 1800, "1d4h30m"),
            ("90m", 0, 5400, "1h30m"),
            ("100000h", 0, 360_000_000, "100000h"),
            ("007h", 0, 7 * 3600, "7h"),
        ];
        for (text, days, secs, shown) in cases {
            let expected = BusinessDuration::new(days, Duration::seconds(secs));
            assert_eq!(dur(text), expected, "{text}");
            assert_eq!(expected.to_string(), shown);
            assert_eq!(dur(shown), expected);
        }
        assert_eq!(BusinessDuration::default().to_string(), "0s");
    }

    #[test]
    fn duration_errors_name_the_problem() {
        let err = |t: &str| BusinessDuration::parse(t).unwrap_err().to_string();
        assert_eq!(err("3x"), "unknown unit 'x' in '3x' (use w, d, h, m or s)");
        assert_eq!(BusinessDuration::parse(""), Err(DurationError::Empty));
        let cases = [
            ("1d 4h", "whitespace"),
            ("h", "missing number before 'h'"),
            ("12", "'12' has no unit"),
            ("1h30", "'30' has no unit"),
            ("30m1h", "unit 'h' out of order"),
            ("1h2h", "more than once"),
            ("100001h", "'100001h' in '100001h' is too large"),
            ("99999999999999999999999d", "too large"),
            ("0h", "zero"),
            ("0d0m", "zero"),
            ("-1h", "unknown unit '-'"),
            ("8H", "unknown unit 'H'"),
        ];
        for (text, expected) in cases {
            assert!(err(text).contains(expected), "{text}: {}", err(text));
        }
    }

    #[test]
    fn calendar_definitions_are_validated() {
        use CalendarError::*;
        let err = |hours: &[(&str, &str)], hol: &[&str]| Calendar::new("UTC", hours, hol);
        let zone = Calendar::new("Mars/Olympus", &[], &[]).unwrap_err();
        assert_eq!(zone, UnknownTimeZone("Mars/Olympus".into()));
        let day = err(&[("funday", "09:00-17:00")], &[]).unwrap_err();
        assert_eq!(day, BadWeekday("funday".into()));
        let twice = err(&[("mon", "09:00-10:00"), ("mon", "11:00-12:00")], &[]);
        assert_eq!(twice.unwrap_err(), DuplicateWeekday("mon".into()));
        let bad = ";17:00-09:00;09:00-09:00;9-17;25:00-26:00;09:60-10:00;24:00-24:00;09:00-24:30;\
                   +9:00-10:00;09:00-10:0;009:00-10:00;09:00-12:00,11:00-13:00";
        for spec in bad.split(';') {
            assert!(
                matches!(err(&[("tue", spec)], &[]), Err(BadHours(..))),
                "{spec}"
            );
        }
        let overlap = err(&[("tue", "09:00-12:00,11:00-13:00")], &[]).unwrap_err();
        assert!(
            overlap.to_string().ends_with("ranges overlap at 11:00"),
            "{overlap}"
        );
        for day in [
            "2026-13-01",
            "2026-2-1",
            "2026-02-30",
            "yesterday",
            "2026-02-01 ",
        ] {
            assert_eq!(err(&[], &[day]).unwrap_err(), BadHoliday(day.into()));
        }
        let ok = calendar("UTC", "Sat", " 09:00-12:00 , 12:00-13:00,14:00-24:00", &[]);
        assert_eq!(
            ok.week[5],
            [(9 * 3600, 13 * 3600), (14 * 3600, SECS_PER_DAY)]
        );
    }

    #[test]
    fn example_calendar_adds_business_time() {
        let cal = example();
        let add = |from: &str| cal.add_business_time(berlin(from), hours(8));
        assert_eq!(add("2026-01-05 10:00"), Some(berlin("2026-01-06 10:00")));
        assert_eq!(add("2026-01-09 14:00"), Some(berlin("2026-01-12 16:00")));
        // 1h on Wednesday, Christmas Thu–Sat, closed Sunday, 7h on Monday.
        assert_eq!(add("2026-12-23 16:00"), Some(utc("2026-12-28 15:00")));
        // A Saturday start waits for Monday 09:00.
        assert_eq!(add("2026-01-10 11:00"), Some(berlin("2026-01-12 17:00")));
        assert!(cal.is_open(berlin("2026-01-09 09:00")));
        assert!(!cal.is_open(berlin("2026-01-09 15:00")));
        assert!(!cal.is_open(berlin("2026-12-24 10:00")));
        let (monday, next) = (berlin("2026-01-05 00:00"), berlin("2026-01-12 00:00"));
        assert_eq!(cal.business_between(monday, next), hours(38));
        assert_eq!(cal.business_between(next, monday), hours(0));
    }

    #[test]
    fn full_day_sundays_follow_dst() {
        let cases = [
            ("Europe/Berlin", "2026-03-29", 23),
            ("Europe/Berlin", "2026-10-25", 25),
            ("Europe/Berlin", "2026-04-05", 24),
            ("America/New_York", "2026-03-08", 23),
            ("America/New_York", "2026-11-01", 25),
        ];
        for (tz, day, length) in cases {
            let cal = calendar(tz, "sun", "00:00-24:00", &[]);
            let midnight = at(tz, &format!("{day} 00:00"));
            let total = cal.business_between(midnight - hours(48), midnight + hours(72));
            assert_eq!(total, hours(length), "{tz} {day}");
            let next = midnight + hours(length);
            assert_eq!(cal.add_business_time(midnight, hours(length)), Some(next));
            assert!(cal.is_open(next - Duration::seconds(1)) && !cal.is_open(next));
        }
    }

    #[test]
    fn weekday_hours_shift_in_utc_across_dst_weekends() {
        // Zone, Friday 16:00 local and Monday 10:00 local, both written in UTC.
        let cases = [
            ("Europe/Berlin", "2026-03-27 15:00", "2026-03-30 08:00"),
            ("Europe/Berlin", "2026-10-23 14:00", "2026-10-26 09:00"),
            ("America/New_York", "2026-03-06 21:00", "2026-03-09 14:00"),
            ("America/New_York", "2026-10-30 20:00", "2026-11-02 15:00"),
        ];
        for (tz, friday, monday) in cases {
            let (cal, friday, monday) = (weekdays(tz), utc(friday), utc(monday));
            assert_eq!(
                cal.add_business_time(friday, hours(2)),
                Some(monday),
                "{tz}"
            );
            assert_eq!(cal.business_between(friday, monday), hours(2));
        }
    }

    #[test]
    fn ranges_inside_dst_transitions() {
        let sunday = |spec| calendar("Europe/Berlin", "sun", spec, &[]);
        let whole =
            |cal: &Calendar, day| cal.business_between(utc(day) - hours(9), utc(day) + hours(30));
        let (spring, fall) = ("2026-03-29 00:00", "2026-10-25 00:00");
        // 01:00 CET to 04:00 CEST is two real hours.
        let night = sunday("01:00-04:00");
        assert_eq!(whole(&night, spring), hours(2));
        let one_hour = night.add_business_time(utc(spring), hours(1));
        assert_eq!(one_hour, Some(utc("2026-03-29 01:00")));
        // A start inside the gap opens at 03:00 CEST (01:00 UTC).
        let gap = sunday("02:30-05:00");
        assert_eq!(whole(&gap, spring), hours(2));
        assert!(gap.is_open(utc("2026-03-29 01:00")) && !gap.is_open(utc("2026-03-29 00:59")));
        // Ambiguous fall-back times: earliest for the start, latest for the end.
        assert_eq!(whole(&sunday("02:30-02:45"), fall), Duration::minutes(75));
        // 22:00–04:00 UTC is six real hours; overlapping windows never double count.
        assert_eq!(whole(&sunday("00:00-02:10,02:20-05:00"), fall), hours(6));
        assert_eq!(whole(&sunday("00:00-02:30,02:30-05:00"), fall), hours(6));
    }

    #[test]
    fn deadlines_with_whole_days() {
        let cal = example();
        let cases = [
            ("2026-01-05 10:00", "1d", "2026-01-06 10:00"),
            ("2026-01-09 14:00", "1d", "2026-01-12 14:00"), // 5h into a 6h Friday
            ("2026-01-08 16:30", "1d", "2026-01-09 15:00"), // 7.5h: clamped to Friday's close
            ("2026-01-09 14:00", "1d4h", "2026-01-13 10:00"),
            ("2026-01-10 11:00", "1d", "2026-01-13 09:00"), // Saturday: from Monday's opening
            ("2026-01-09 15:00", "1d", "2026-01-13 09:00"), // exactly at close: same
            ("2026-12-23 10:00", "1d", "2026-12-28 10:00"), // over Christmas
            ("2026-01-05 10:00", "1w", "2026-01-12 10:00"),
            ("2026-01-05 10:00", "8h", "2026-01-06 10:00"),
        ];
        for (from, target, expected) in cases {
            let due = cal.deadline(berlin(from), dur(target));
            assert_eq!(due, Some(berlin(expected)), "{from} + {target}");
        }
        let start = utc("2026-03-28 13:17");
        let due = Calendar::always().deadline(start, dur("2d3h"));
        assert_eq!(due, Some(start + hours(51)));
        // A hand-written UTC 24x7 calendar with a holiday takes the general path.
        let all_days = "mon,tue,wed,thu,fri,sat,sun";
        let by_hand = calendar("Etc/UTC", all_days, "00:00-24:00", &["2026-03-29"]);
        assert_eq!(by_hand.deadline(start, dur("1d")), Some(start + hours(48)));
    }

    #[test]
    fn calendars_without_hours_give_up() {
        let never = Calendar::new("Europe/Berlin", &[], &[]).unwrap();
        let start = utc("2026-01-05 10:00");
        assert_eq!(never.add_business_time(start, hours(1)), None);
        assert_eq!(never.deadline(start, dur("1d")), None);
        assert_eq!(never.business_between(start, start + hours(1000)), hours(0));
        assert!(!never.is_open(start));
        let mondays = calendar("UTC", "mon", "09:00-10:00", &["2026-01-05"]);
        let next_week = mondays.add_business_time(start, hours(1));
        assert_eq!(next_week, Some(utc("2026-01-12 10:00")));
    }

    fn any_calendar(index: usize) -> Calendar {
        match index {
            0 => example(),
            1 => weekdays("America/New_York"),
            // Night ranges that hit the DST gap and overlap: clipping must hold up.
            3 => calendar(
                "Europe/Berlin",
                "sat,sun",
                "00:00-02:10,02:20-05:00,22:00-24:00",
                &[],
            ),
            _ => Calendar::always(),
        }
    }

    /// 2025-01-01 .. 2029-01-01 (UTC).
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (1_735_689_600i64..1_861_920_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    const MAX: i64 = 200 * 3600; // 200 business hours, in seconds
    const SPAN: i64 = 90 * 86_400;

    proptest! {
        #[test]
        fn add_then_measure_round_trips(c in 0usize..4, start in instant(), secs in 1..=MAX) {
            let (cal, d) = (any_calendar(c), Duration::seconds(secs));
            let end = cal.add_business_time(start, d).unwrap();
            prop_assert_eq!(cal.business_between(start, end), d);
            prop_assert!(cal.is_open(end) || cal.is_open(end - Duration::seconds(1)));
            if c == 2 {
                prop_assert_eq!(end, start + d);
            }
        }

        #[test]
        fn add_is_monotonic(c in 0usize..4, start in instant(), x in 0..=MAX, y in 0..=MAX) {
            let cal = any_calendar(c);
            let add = |secs: i64| cal.add_business_time(start, Duration::seconds(secs));
            prop_assert!(add(x.min(y)).unwrap() <= add(x.max(y)).unwrap());
        }

        #[test]
        fn between_is_additive(c in 0usize..4, a in instant(), x in 0..SPAN, y in 0..SPAN) {
            let cal = any_calendar(c);
            let (b, c) = (a + Duration::seconds(x.min(y)), a + Duration::seconds(x.max(y)));
            let parts = cal.business_between(a, b) + cal.business_between(b, c);
            prop_assert_eq!(parts, cal.business_between(a, c));
        }

        #[test]
        fn deadlines_follow_start(
            c in 0usize..4, start in instant(), days in 0u32..30, secs in 0..=MAX,
        ) {
            let (cal, time) = (any_calendar(c), Duration::seconds(secs));
            let due = cal.deadline(start, BusinessDuration::new(days, time)).unwrap();
            prop_assert!(due >= start);
            let plain = cal.deadline(start, BusinessDuration::new(0, time)).unwrap();
            prop_assert_eq!(cal.business_between(start, plain), time);
            if c == 2 {
                prop_assert_eq!(due, start + Duration::days(i64::from(days)) + time);
            }
        }
    }
}
