//! Whether new mail may be accepted, given the space left for the store.
//!
//! A message is acknowledged only once it is committed, so a full disk can
//! never lose mail that was acknowledged; but accepting a transaction that
//! is bound to fail wastes the sender's time, and letting SQLite run into
//! the wall risks the writes that keep tickets moving (an agent's reply, a
//! rule's change). So the server stops taking new mail a little before the
//! disk is full, and for a moment after a write failed for want of space,
//! and takes it again by itself when space returns.

use std::time::Duration;

/// After a write failed for want of space, new mail is refused this long
/// before one transaction is let through to try again: the sender's retry
/// (minutes later) will find out whether space returned, and in the
/// meantime nobody waits for a commit that is bound to fail.
pub const HOLD_AFTER_FULL: Duration = Duration::from_secs(5);

/// What the server knows about its storage at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceFacts {
    /// Bytes available to postdesk on the data directory's file system;
    /// None when that could not be read (the guard then relies on write
    /// failures alone).
    pub available: Option<u64>,
    /// The configured floor (`[storage] min_free_mb`), in bytes.
    pub floor: u64,
    /// How long ago a write last failed for want of space, if it did.
    pub since_full: Option<Duration>,
}

/// Why new mail is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Free space is below the floor.
    BelowFloor { available: u64, floor: u64 },
    /// A write failed for want of space a moment ago.
    WriteFailed,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BelowFloor { available, floor } => write!(
                f,
                "{} MiB free on the data directory, below the floor of {} MiB",
                available / MIB,
                floor / MIB
            ),
            Refusal::WriteFailed => f.write_str("the last write failed: the storage is full"),
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// The floor in bytes for a setting in MiB.
pub fn floor_bytes(min_free_mb: u64) -> u64 {
    min_free_mb.saturating_mul(MIB)
}

/// Accept new mail, or refuse it and say why.
pub fn admission(facts: SpaceFacts) -> Result<(), Refusal> {
    if let Some(available) = facts.available
        && available < facts.floor
    {
        return Err(Refusal::BelowFloor {
            available,
            floor: facts.floor,
        });
    }
    match facts.since_full {
        Some(ago) if ago < HOLD_AFTER_FULL => Err(Refusal::WriteFailed),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(available: Option<u64>, floor_mb: u64, since_full: Option<u64>) -> SpaceFacts {
        SpaceFacts {
            available,
            floor: floor_bytes(floor_mb),
            since_full: since_full.map(Duration::from_secs),
        }
    }

    #[test]
    fn mail_is_taken_while_space_is_above_the_floor() {
        assert_eq!(admission(facts(Some(300 * MIB), 256, None)), Ok(()));
        assert_eq!(admission(facts(Some(256 * MIB), 256, None)), Ok(()));
    }

    #[test]
    fn below_the_floor_mail_is_refused_and_the_reason_names_both_sizes() {
        let refusal = admission(facts(Some(100 * MIB), 256, None)).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::BelowFloor {
                available: 100 * MIB,
                floor: 256 * MIB
            }
        );
        assert_eq!(
            refusal.to_string(),
            "100 MiB free on the data directory, below the floor of 256 MiB"
        );
    }

    #[test]
    fn a_failed_write_holds_mail_back_for_a_moment_then_lets_one_try() {
        // The floor is off (0) or the database is elsewhere: only the
        // failed write says the storage is full.
        assert_eq!(
            admission(facts(Some(10 * MIB), 0, Some(1))),
            Err(Refusal::WriteFailed)
        );
        assert_eq!(admission(facts(Some(10 * MIB), 0, Some(5))), Ok(()));
        assert_eq!(admission(facts(None, 256, Some(60))), Ok(()));
    }

    #[test]
    fn unknown_free_space_relies_on_write_failures_alone() {
        assert_eq!(admission(facts(None, 256, None)), Ok(()));
        assert_eq!(
            admission(facts(None, 256, Some(0))),
            Err(Refusal::WriteFailed)
        );
    }
}
