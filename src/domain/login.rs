//! How long a login attempt waits, from the failures seen before it.
//!
//! Failures are counted three ways: for the pair (address, remote IP), for
//! the address from anywhere, and for the remote IP across addresses. The
//! pair's own failures delay every attempt of that pair before the password
//! is checked; the worst of the three delays the answer to a failed
//! attempt. So a guesser waits longer and longer, whichever way it spreads
//! its guesses, while the owner, logging in from where nobody failed, is
//! never slowed down by failures elsewhere (another address of the office,
//! another IP guessing at their address).

use std::time::Duration;

/// Failures the delay starts after.
const FREE_FAILURES: u32 = 3;
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Failures seen (in the last quarter of an hour) for one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    /// This address from this remote IP.
    pub pair: u32,
    /// This address, from any IP.
    pub address: u32,
    /// This remote IP, for any address.
    pub ip: u32,
}

/// Nothing until three failures, then 1 s, doubling up to 30 s.
fn backoff(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(n) => Duration::from_secs(1u64 << n.min(5)).min(MAX_DELAY),
    }
}

/// The wait before the password is checked: the pair's own failures only.
pub fn delay_before_check(failures: Failures) -> Duration {
    backoff(failures.pair)
}

/// The wait before a failure is answered (the failure just made counted).
pub fn delay_after_failure(failures: Failures) -> Duration {
    backoff(failures.pair.max(failures.address).max(failures.ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_elsewhere_never_delay_a_clean_pair() {
        // 300 failures from the office's IP (other addresses) and ten at
        // this address from another IP: the owner is checked at once.
        let failures = Failures {
            pair: 0,
            address: 10,
            ip: 300,
        };
        assert_eq!(delay_before_check(failures), Duration::ZERO);
        // A failure answered from there is slow, though.
        assert_eq!(delay_after_failure(failures), MAX_DELAY);
    }

    #[test]
    fn the_delay_doubles_after_three_failures_up_to_thirty_seconds() {
        let pair = |n| Failures {
            pair: n,
            ..Failures::default()
        };
        // Three failures go free; the attempt after them waits.
        assert_eq!(delay_before_check(pair(2)), Duration::ZERO);
        assert_eq!(delay_before_check(pair(3)), Duration::from_secs(1));
        assert_eq!(delay_before_check(pair(4)), Duration::from_secs(2));
        assert_eq!(delay_after_failure(pair(2)), Duration::ZERO);
        assert_eq!(delay_after_failure(pair(8)), Duration::from_secs(30));
        assert_eq!(delay_after_failure(pair(40)), MAX_DELAY);
    }
}
