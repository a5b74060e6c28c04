//! Deliveries of postdesk's mail: where one stands, and what an
//! administrator may do with it.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundStatus {
    /// Waiting for its next attempt (or for a relay to be configured).
    Queued,
    /// Claimed by a delivery worker.
    Sending,
    /// The worker has begun handing the message to the relay (DATA): if
    /// it dies now, nobody can tell whether the relay took it.
    HandingOver,
    Sent,
    /// Given up: a permanent error or too many attempts.
    Failed,
    /// Stopped by an admin (`postdesk outbound cancel`).
    Cancelled,
}

impl OutboundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundStatus::Queued => "queued",
            OutboundStatus::Sending => "sending",
            OutboundStatus::HandingOver => "handing-over",
            OutboundStatus::Sent => "sent",
            OutboundStatus::Failed => "failed",
            OutboundStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OutboundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboundStatus {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s {
            "queued" => Ok(OutboundStatus::Queued),
            "sending" => Ok(OutboundStatus::Sending),
            "handing-over" => Ok(OutboundStatus::HandingOver),
            "sent" => Ok(OutboundStatus::Sent),
            "failed" => Ok(OutboundStatus::Failed),
            "cancelled" => Ok(OutboundStatus::Cancelled),
            _ => Err(()),
        }
    }
}

impl OutboundStatus {
    /// Whether an administrator may move a delivery from this status to
    /// `next` (`outbound retry` queues it again, `outbound cancel` stops
    /// it); the reason when not.
    pub fn may_become(self, next: OutboundStatus) -> Result<(), &'static str> {
        let allowed: &[OutboundStatus] = match next {
            OutboundStatus::Queued => &[
                OutboundStatus::Queued,
                OutboundStatus::Failed,
                OutboundStatus::Cancelled,
            ],
            OutboundStatus::Cancelled => &[OutboundStatus::Queued, OutboundStatus::Failed],
            // The worker's transitions, not an administrator's.
            OutboundStatus::Sending
            | OutboundStatus::HandingOver
            | OutboundStatus::Sent
            | OutboundStatus::Failed => &[],
        };
        if allowed.contains(&self) {
            return Ok(());
        }
        Err(match self {
            OutboundStatus::Sending | OutboundStatus::HandingOver => {
                "it is being delivered right now; look again in a moment"
            }
            OutboundStatus::Sent => "it was delivered already",
            _ => "not in that state",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn administrators_retry_what_did_not_go_and_cancel_what_waits() {
        use OutboundStatus::*;
        assert!(Failed.may_become(Queued).is_ok());
        assert!(Cancelled.may_become(Queued).is_ok());
        assert!(Queued.may_become(Cancelled).is_ok());
        assert_eq!(
            Sending.may_become(Cancelled),
            Err("it is being delivered right now; look again in a moment")
        );
        assert_eq!(Sent.may_become(Queued), Err("it was delivered already"));
        assert_eq!(Cancelled.may_become(Cancelled), Err("not in that state"));
    }
}
