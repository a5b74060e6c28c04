//! The satisfaction survey: "How did we do?" once a ticket is resolved.
//! Pure: whether a ticket gets one, what a customer's answer means, how a
//! survey's token is kept.
//!
//! A survey goes once per ticket (resolving it again sends none), only in
//! the queues `[satisfaction] queues` names, never for a ticket in Junk or
//! Trash, never to a robot or an automatic sender (the loop rules of the
//! acknowledgement, on the customer's first message), and within the
//! acknowledgement's hourly caps (the store counts it with them).
//!
//! The links carry a random token; only its SHA-256 is stored, so the
//! database alone cannot rate. A token rates once; a comment may follow
//! the rating once.

use super::ticket::{Disposition, Status};
use serde::Serialize;

/// A customer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Good,
    Okay,
    Bad,
}

impl Rating {
    pub const ALL: [Rating; 3] = [Rating::Good, Rating::Okay, Rating::Bad];

    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::Okay => "okay",
            Rating::Bad => "bad",
        }
    }
}

impl std::fmt::Display for Rating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Rating {
    type Err = String;

    fn from_str(s: &str) -> Result<Rating, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "good" => Ok(Rating::Good),
            "okay" | "ok" => Ok(Rating::Okay),
            "bad" => Ok(Rating::Bad),
            other => Err(format!("'{other}' is not a rating (good, okay, bad)")),
        }
    }
}

/// The rating a reply to the survey gives: its first line of text, when
/// that is one of the words (any case, a full stop or `!` after it). The
/// rest of the reply is its comment.
pub fn rating_of_reply(text: &str) -> Option<(Rating, String)> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next()?;
    let word = first.trim().trim_end_matches(['.', '!', ',']).trim();
    let rating = word.parse::<Rating>().ok()?;
    let (own, _quoted) = super::quoting::split_quoted(&lines.collect::<Vec<_>>().join("\n"));
    Some((rating, own.trim().to_string()))
}

/// What decides whether a resolved ticket's customer is asked.
#[derive(Debug, Clone)]
pub struct SurveyFacts<'a> {
    pub status: Status,
    pub disposition: Option<Disposition>,
    pub customer_address: &'a str,
    /// Why the acknowledgement rules would not answer the customer's first
    /// message (robot, Auto-Submitted, list…), if they would not.
    pub loop_reason: Option<&'a str>,
    /// The ticket it was merged into (closed by the merge, its mail there).
    pub merged_into: Option<i64>,
}

/// Why no survey goes to this ticket's customer; None: one may (within
/// the hourly caps).
pub fn survey_refusal(facts: &SurveyFacts<'_>) -> Option<String> {
    // Closed by a merge, nothing was solved: the conversation goes on in
    // the target, whose own resolution is surveyed.
    if let Some(into) = facts.merged_into {
        return Some(format!("the ticket was merged into #{into}"));
    }
    if !matches!(facts.status, Status::Resolved | Status::Closed) {
        return Some("the ticket is not resolved".into());
    }
    match facts.disposition {
        Some(Disposition::Spam) => return Some("the ticket is spam".into()),
        Some(Disposition::Trash) => return Some("the ticket is in Trash".into()),
        None => {}
    }
    if super::address::is_robot_sender(facts.customer_address) {
        return Some(format!("{} is a robot sender", facts.customer_address));
    }
    facts
        .loop_reason
        .map(|reason| format!("the customer's mail was automatic ({reason})"))
}

/// The hex SHA-256 of a token, as it is stored.
pub fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a string can be a survey token (what [`new_token`] makes), so
/// that a mistyped link is answered before any database work.
pub fn plausible_token(token: &str) -> bool {
    (20..=64).contains(&token.len())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A new random token (32 bytes, base64url).
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_parse() {
        assert_eq!("Good".parse(), Ok(Rating::Good));
        assert_eq!(" ok ".parse(), Ok(Rating::Okay));
        assert!("great".parse::<Rating>().is_err());
    }

    #[test]
    fn a_reply_rates_with_its_first_line() {
        assert_eq!(
            rating_of_reply("\nBad!\nNobody called me back.\n\n> How did we do?\n"),
            Some((Rating::Bad, "Nobody called me back.".to_string()))
        );
        assert_eq!(rating_of_reply("good"), Some((Rating::Good, String::new())));
        assert_eq!(rating_of_reply("It was good, thanks"), None);
        assert_eq!(rating_of_reply(""), None);
    }

    #[test]
    fn surveys_skip_spam_trash_robots_and_automatic_mail() {
        let facts = |status, disposition, to, loop_reason| SurveyFacts {
            status,
            disposition,
            customer_address: to,
            loop_reason,
            merged_into: None,
        };
        assert_eq!(
            survey_refusal(&facts(Status::Resolved, None, "alice@example.com", None)),
            None
        );
        assert!(survey_refusal(&facts(Status::Open, None, "alice@example.com", None)).is_some());
        let spam = facts(
            Status::Resolved,
            Some(Disposition::Spam),
            "alice@example.com",
            None,
        );
        assert!(survey_refusal(&spam).is_some_and(|r| r.contains("spam")));
        let robot = facts(Status::Closed, None, "noreply@example.com", None);
        assert!(survey_refusal(&robot).is_some_and(|r| r.contains("robot")));
        let auto = facts(
            Status::Closed,
            None,
            "alice@example.com",
            Some("Auto-Submitted"),
        );
        assert!(survey_refusal(&auto).is_some_and(|r| r.contains("automatic")));
        let merged = SurveyFacts {
            merged_into: Some(42),
            ..facts(Status::Closed, None, "alice@example.com", None)
        };
        assert_eq!(
            survey_refusal(&merged).as_deref(),
            Some("the ticket was merged into #42")
        );
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(plausible_token(&a), "{a}");
        assert!(!plausible_token("../etc"));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
