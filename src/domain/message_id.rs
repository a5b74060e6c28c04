//! Message-IDs as threading keys, and the ones postdesk mints.

/// Mints and recognizes postdesk's own Message-IDs:
/// `pd.<what>.<tag>@<domain>`, where the tag is a keyed hash (HMAC-SHA256
/// with the server's secret, kept in the database so every node shares
/// it) of what precedes it. Ingest recognizes its own mail coming back (a
/// loop) without a lookup, and outside mail cannot pass for postdesk's by
/// choosing an id of that shape.
#[derive(Clone)]
pub struct OwnIds {
    domain: String,
    key: ring::hmac::Key,
}

/// Hex digits of the tag: 48 bits, no guessing them by trying.
const TAG_BYTES: usize = 6;

impl OwnIds {
    pub fn new(domain: &str, secret: &[u8]) -> OwnIds {
        OwnIds {
            domain: domain.to_lowercase(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    fn tag(&self, local: &str) -> String {
        ring::hmac::sign(&self.key, local.as_bytes()).as_ref()[..TAG_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn tagged(&self, local: String) -> String {
        let tag = self.tag(&local);
        format!("{local}.{tag}@{}", self.domain)
    }

    /// A fresh id for mail about `ticket` (an acknowledgement, a note, an
    /// escalation). The random part is the one thing here not derived from
    /// the inputs: ids must never repeat.
    pub fn mint(&self, ticket: i64) -> String {
        let random: u64 = rand::random();
        self.tagged(format!("pd.{ticket}.{random:016x}"))
    }

    /// The id of an agent's mail that came without one, the same for the
    /// same bytes (so that a client's retry is recognized).
    pub fn for_submission(&self, raw: &[u8]) -> String {
        self.tagged(format!("pd.agent.{}", content_digest(raw)))
    }

    /// A new id for an agent's mail whose own id could not be kept (it was
    /// another message's).
    pub fn fresh_submission(&self) -> String {
        let random: u64 = rand::random();
        self.tagged(format!("pd.agent.{random:016x}"))
    }

    /// Whether `id` is one this postdesk minted.
    pub fn is_own(&self, id: &str) -> bool {
        let Some((local, domain)) = id.rsplit_once('@') else {
            return false;
        };
        let Some((body, tag)) = local.rsplit_once('.') else {
            return false;
        };
        domain.eq_ignore_ascii_case(&self.domain)
            && body.starts_with("pd.")
            && tag.eq_ignore_ascii_case(&self.tag(body))
    }
}

/// The id of a customer's message that came without one: a content hash,
/// so that a client retrying the same bytes is still one message.
pub fn synthetic(raw: &[u8]) -> String {
    format!("{}@no-message-id.postdesk.invalid", content_digest(raw))
}

/// The first 128 bits of the SHA-256 of a message, in hex: the same bytes
/// always give the same id, so a client retrying them is recognised.
pub fn content_digest(raw: &[u8]) -> String {
    let mut hex = sha256_hex(raw);
    hex.truncate(32);
    hex
}

/// The SHA-256 of some bytes, in hex (message and file fingerprints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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
    fn own_ids_carry_ticket_domain_and_a_tag_only_the_key_makes() {
        let ids = OwnIds::new("Desk.Example", b"secret");
        let id = ids.mint(42);
        assert!(id.starts_with("pd.42."));
        assert!(id.ends_with("@desk.example"));
        assert!(ids.is_own(&id));
        assert!(ids.is_own(&id.replace("@desk.example", "@DESK.example")));
        assert!(ids.is_own(&ids.for_submission(b"mail")));
        assert!(ids.is_own(&ids.fresh_submission()));
        // The shape alone is not enough: outside mail cannot pass for ours.
        assert!(!ids.is_own("pd.42.0123456789abcdef@desk.example"));
        assert!(!ids.is_own("pd.42.0123456789abcdef.0a1b2c3d4e5f@desk.example"));
        assert!(!OwnIds::new("desk.example", b"another").is_own(&id));
        assert!(!ids.is_own(&id.replace("@desk.example", "@other.example")));
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
