//! Time spent on a ticket (`#time 15m`): reading a duration as an agent
//! writes it, and writing one back the same way.
//!
//! Only whole minutes in hours and minutes are taken (`15m`, `1h`,
//! `1h30m`, `1h 30m`, `90m`, `2 hours`): a bare number (`15`: minutes or
//! hours?) or a fraction (`1.5h`) is refused with the way to write it, so
//! that nobody's time is recorded as something they did not mean.

/// The most one entry records: a longer one is a typo (`#time 150h` for
/// `#time 1h50m`) far more often than a real day and a half at a desk.
pub const MAX_MINUTES: u32 = 24 * 60;

/// Minutes in `text`, or why it is not a duration (worded for the agent).
pub fn parse_minutes(text: &str) -> Result<u32, String> {
    let shown = text.trim();
    let hint = "write it as 15m, 1h, 1h30m or 90m";
    if shown.is_empty() {
        return Err(format!("how long? {hint}"));
    }
    let lower = shown.to_lowercase();
    let mut rest = lower.as_str();
    let mut total: u64 = 0;
    let mut seen_hours = false;
    let mut seen_minutes = false;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("'{shown}' is not a duration: {hint}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("'{shown}' is too long for one entry"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        match unit {
            "h" | "hr" | "hrs" | "hour" | "hours" if !seen_hours && !seen_minutes => {
                seen_hours = true;
                total = total.saturating_add(number.saturating_mul(60));
            }
            "m" | "min" | "mins" | "minute" | "minutes" if !seen_minutes => {
                seen_minutes = true;
                total = total.saturating_add(number);
            }
            "" if rest.starts_with(['.', ',']) => {
                return Err(format!("'{shown}': no fractions, {hint}"));
            }
            "" => return Err(format!("'{shown}' has no unit (minutes or hours?): {hint}")),
            _ => return Err(format!("'{shown}' is not a duration: {hint}")),
        }
    }
    if total == 0 {
        return Err(format!("'{shown}' is no time at all"));
    }
    if total > u64::from(MAX_MINUTES) {
        return Err(format!(
            "'{shown}' is more than {} in one entry: record it in parts if it is true",
            format_minutes(MAX_MINUTES)
        ));
    }
    u32::try_from(total).map_err(|_| format!("'{shown}' is too long for one entry"))
}

/// `90` → `1h30m`, `60` → `1h`, `15` → `15m`, `0` → `0m`.
pub fn format_minutes(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

/// The same for a total that may exceed one entry's bound.
pub fn format_total(minutes: i64) -> String {
    let minutes = minutes.max(0);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ways_agents_write_a_duration() {
        for (text, minutes) in [
            ("15m", 15),
            ("1h", 60),
            ("1h30m", 90),
            ("1h 30m", 90),
            ("90m", 90),
            ("90 min", 90),
            ("2 hours", 120),
            ("1H30M", 90),
            ("  45mins ", 45),
            ("24h", MAX_MINUTES),
        ] {
            assert_eq!(parse_minutes(text), Ok(minutes), "{text}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_way_to_write_it() {
        for (text, says) in [
            ("", "how long?"),
            ("soon", "is not a duration"),
            ("15", "has no unit"),
            ("1.5h", "no fractions"),
            ("1,5h", "no fractions"),
            ("0m", "no time at all"),
            ("0h0m", "no time at all"),
            ("-5m", "is not a duration"),
            ("30m1h", "is not a duration"),
            ("1h1h", "is not a duration"),
            ("15x", "is not a duration"),
            ("25h", "more than 24h"),
            ("99999999999999999999m", "too long"),
        ] {
            let err = parse_minutes(text).err().unwrap_or_default();
            assert!(err.contains(says), "{text}: {err}");
        }
        assert!(parse_minutes("soon").is_err_and(|e| e.contains("1h30m")));
    }

    #[test]
    fn durations_are_written_back_as_read() {
        assert_eq!(format_minutes(15), "15m");
        assert_eq!(format_minutes(60), "1h");
        assert_eq!(format_minutes(90), "1h30m");
        assert_eq!(format_total(3000), "50h");
        assert_eq!(format_total(-3), "0m");
        for minutes in [1, 59, 61, 600, MAX_MINUTES] {
            assert_eq!(parse_minutes(&format_minutes(minutes)), Ok(minutes));
        }
    }
}
