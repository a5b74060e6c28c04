//! Mail addresses as postdesk compares them: queue addresses, plus-addresses
//! (`support+1042@example.test`), and the senders that must never get an
//! automatic answer.

/// Lower-cases an address and strips surrounding angle brackets and blanks.
///
/// Local parts are case-sensitive by the letter of RFC 5321, but no mail
/// system a helpdesk talks to treats them so, and comparing them
/// case-sensitively would split one customer into several.
pub fn normalize(address: &str) -> String {
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase()
}

/// Splits `local@domain`; `None` when there is no `@` or either side is empty.
pub fn split(address: &str) -> Option<(&str, &str)> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some((local, domain))
}

/// A recipient seen against the queue addresses: the base address it belongs
/// to, and the ticket number of a plus-address (`support+1042@…` → 1042).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// `support@example.test` for `support+1042@example.test`.
    pub base: String,
    /// What follows the `+`, if anything.
    pub detail: Option<String>,
}

impl Recipient {
    pub fn parse(address: &str) -> Option<Recipient> {
        let address = normalize(address);
        let (local, domain) = split(&address)?;
        match local.split_once('+') {
            Some((base, detail)) if !base.is_empty() => Some(Recipient {
                base: format!("{base}@{domain}"),
                detail: (!detail.is_empty()).then(|| detail.to_string()),
            }),
            _ => Some(Recipient {
                base: address.clone(),
                detail: None,
            }),
        }
    }

    /// The ticket number a plus-address names, when its detail is a number.
    pub fn ticket_number(&self) -> Option<i64> {
        let detail = self.detail.as_deref()?;
        detail
            .strip_prefix('#')
            .unwrap_or(detail)
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
    }
}

/// The plus-address of a ticket under a queue address.
pub fn plus_address(queue_address: &str, ticket: i64) -> String {
    match split(queue_address) {
        Some((local, domain)) => format!("{local}+{ticket}@{domain}"),
        None => queue_address.to_string(),
    }
}

/// Robot senders that must never get an automatic answer (RFC 3834 §2 and
/// common practice): mailer daemons, postmasters and "no reply" boxes.
pub fn is_robot_sender(address: &str) -> bool {
    let address = normalize(address);
    let local = split(&address).map(|(local, _)| local).unwrap_or(&address);
    let local = local.split('+').next().unwrap_or(local);
    let squashed: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    matches!(
        squashed.as_str(),
        "mailerdaemon" | "postmaster" | "noreply" | "donotreply" | "bounce" | "bounces"
    ) || squashed.starts_with("noreply")
        || squashed.starts_with("donotreply")
        || squashed.starts_with("bounce")
        || squashed.starts_with("mailerdaemon")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_addresses_name_their_ticket() {
        let r = Recipient::parse("<Support+1042@Example.TEST>");
        assert_eq!(
            r,
            Some(Recipient {
                base: "support@example.test".into(),
                detail: Some("1042".into())
            })
        );
        assert_eq!(r.and_then(|r| r.ticket_number()), Some(1042));
        let plain = Recipient::parse("support@example.test");
        assert_eq!(plain.as_ref().and_then(|r| r.ticket_number()), None);
        assert_eq!(
            plain.map(|r| r.base).as_deref(),
            Some("support@example.test")
        );
        let word = Recipient::parse("support+billing@example.test");
        assert_eq!(word.and_then(|r| r.ticket_number()), None);
        assert_eq!(Recipient::parse("not-an-address"), None);
    }

    #[test]
    fn plus_address_is_built_under_the_queue_address() {
        assert_eq!(
            plus_address("support@example.test", 7),
            "support+7@example.test"
        );
    }

    #[test]
    fn robots_are_recognised() {
        for robot in [
            "MAILER-DAEMON@mx.example",
            "postmaster@example.org",
            "no-reply@github.com",
            "noreply@example.com",
            "do-not-reply@bank.example",
            "bounces+123@list.example",
        ] {
            assert!(is_robot_sender(robot), "{robot}");
        }
        for person in [
            "alice@example.com",
            "norbert@example.com",
            "replies@example.com",
        ] {
            assert!(!is_robot_sender(person), "{person}");
        }
    }
}
