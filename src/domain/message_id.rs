//! Message-IDs as threading keys, and the ones postdesk mints.

/// A fresh Message-ID under our own domain: `pd.<ticket>.<random>@<hostname>`.
/// The `pd.` prefix and the domain let ingest recognise our own mail coming
/// back (a loop) without a lookup. The random part is the one thing here
/// not derived from the inputs: ids must never repeat.
pub fn own_message_id(hostname: &str, ticket: i64) -> String {
    let random: u64 = rand::random();
    format!("pd.{ticket}.{random:016x}@{}", hostname.to_lowercase())
}

/// Whether `id` is one postdesk minted under `domain` ([`own_message_id`]).
pub fn is_own(id: &str, domain: &str) -> bool {
    id.starts_with("pd.") && self::domain(id).is_some_and(|d| d.eq_ignore_ascii_case(domain))
}

/// The id of a customer's message that came without one: a content hash,
/// so that a client retrying the same bytes is still one message.
pub fn synthetic(raw: &[u8]) -> String {
    format!("{}@no-message-id.postdesk.invalid", content_digest(raw))
}

/// The id of an agent's mail that came without one, the same for the same
/// bytes (so that a client's retry is recognized).
pub fn own_submission_id(hostname: &str, raw: &[u8]) -> String {
    format!(
        "pd.agent.{}@{}",
        content_digest(raw),
        hostname.to_lowercase()
    )
}

/// A new id for an agent's mail whose own id could not be kept (it was
/// another message's).
pub fn fresh_submission_id(hostname: &str) -> String {
    let random: u64 = rand::random();
    format!("pd.agent.{random:016x}@{}", hostname.to_lowercase())
}

/// The first 128 bits of the SHA-256 of a message, in hex: the same bytes
/// always give the same id, so a client retrying them is recognised.
pub fn content_digest(raw: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, raw);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Extracts every `<id>` from a header value, tolerating junk around them
/// (`<id>; from x on date`, comments, folding) as real mail carries it.
/// Ids are returned without brackets and with blanks inside removed (some
/// clients fold long ids across lines).
pub fn extract_ids(value: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        let id = normalize(&after[..end]);
        if is_plausible(&id) && !ids.contains(&id) {
            ids.push(id);
        }
        rest = &after[end + 1..];
    }
    ids
}

/// Normal form of one id: no brackets, no whitespace.
pub fn normalize(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// An id worth matching on: non-empty, bounded, and without a stray `<`.
/// An address in brackets (`<alice@example.com>`, from a confused client)
/// is also a syntactically valid id; we accept it, as others do.
pub fn is_plausible(id: &str) -> bool {
    !id.is_empty() && id.len() <= 2000 && !id.contains('<')
}

/// The domain part of an id (`local@domain`).
pub fn domain(id: &str) -> Option<&str> {
    id.rsplit_once('@').map(|(_, domain)| domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ids_are_stable_per_content() {
        assert_eq!(synthetic(b"abc"), synthetic(b"abc"));
        assert_ne!(synthetic(b"abc"), synthetic(b"abd"));
    }

    #[test]
    fn own_ids_carry_ticket_and_domain() {
        let id = own_message_id("Desk.Example", 42);
        assert!(id.starts_with("pd.42."));
        assert!(id.ends_with("@desk.example"));
        assert!(is_own(&id, "desk.example"));
        assert!(!is_own("pd.42.x@other.example", "desk.example"));
        assert!(!is_own("42.x@desk.example", "desk.example"));
    }

    #[test]
    fn ids_are_extracted_from_noisy_headers() {
        assert_eq!(
            extract_ids("<a@b>; from Bob on Tue, 1 Feb 2000"),
            vec!["a@b".to_string()]
        );
        assert_eq!(
            extract_ids("<one@x> (comment) <two@y>\r\n <three\r\n @z>"),
            vec!["one@x".to_string(), "two@y".into(), "three@z".into()]
        );
        assert_eq!(extract_ids("no ids here"), Vec::<String>::new());
        assert_eq!(extract_ids("<a@b> <a@b>"), vec!["a@b".to_string()]);
        assert_eq!(extract_ids("<unterminated@x"), Vec::<String>::new());
    }

    #[test]
    fn domain_of_an_id() {
        assert_eq!(domain("pd.1.abc@desk.example"), Some("desk.example"));
        assert_eq!(domain("nodomain"), None);
    }
}
