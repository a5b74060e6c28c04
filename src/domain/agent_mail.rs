//! What an agent's mail to a ticket is, as pure decisions: a reply to the
//! customer or a forward to someone else (a consult), where a forwarded
//! customer mail came from (forward-to-create), and the threading headers
//! a note gets so that it stands in the conversation.

use super::address;

/// Whom agent mail naming a ticket is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// At least one outside recipient is the ticket's customer or takes
    /// part in it: the customer is answered (also when a third party is
    /// on the mail too).
    Reply,
    /// Every outside recipient is a stranger to the ticket (an accountant,
    /// a vendor): the customer got nothing, so nothing counts as answered.
    Forward,
}

/// Decides reply or forward from the outside recipients (normalized),
/// the ticket's customer and its participants.
pub fn addressing(outside: &[String], customer: &str, participants: &[String]) -> Addressing {
    let customer = address::normalize(customer);
    let known = |rcpt: &String| {
        *rcpt == customer || participants.iter().any(|p| address::normalize(p) == *rcpt)
    };
    if outside.iter().any(known) {
        Addressing::Reply
    } else {
        Addressing::Forward
    }
}

/// The header of a forwarded message, as far as the forward shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedHeader {
    /// The original sender, normalized.
    pub from: String,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    /// The original Message-ID (normalized, no brackets), when shown.
    pub message_id: Option<String>,
}

/// The lines that begin a forwarded message written inline: Gmail's,
/// Thunderbird's, Apple Mail's and Outlook's.
fn begins_forward(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("---------- Forwarded message ---------")
        || line.starts_with("-------- Forwarded Message --------")
        || line.starts_with("Begin forwarded message:")
        || line.starts_with("-----Original Message-----")
}

/// The header block of the first message forwarded inline in `text`: the
/// `Name: value` lines after a forward marker, up to the first blank line
/// after them. None without a marker, or without a From with an address.
pub fn inline_forward(text: &str) -> Option<ForwardedHeader> {
    let mut lines = text.lines().skip_while(|l| !begins_forward(l));
    lines.next()?;
    let mut header = ForwardedHeader::default();
    let mut seen_field = false;
    for line in lines {
        // Apple Mail and some others quote the forwarded block with '>'.
        let line = line.trim().trim_start_matches('>').trim();
        if line.is_empty() {
            if seen_field {
                break;
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            break;
        };
        seen_field = true;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "from" => {
                let (name, addr) = name_and_address(value)?;
                header.from = addr;
                header.from_name = name;
            }
            "subject" => header.subject = Some(value.to_string()).filter(|s| !s.is_empty()),
            "message-id" => {
                header.message_id = super::message_id::extract_ids(value).into_iter().next();
            }
            _ => {}
        }
    }
    (!header.from.is_empty()).then_some(header)
}

/// `Carol <carol@example.com>`, `"Carol" <carol@…>`, Outlook's `Carol
/// [mailto:carol@…]`, or a bare address: (display name, address).
pub fn name_and_address(value: &str) -> Option<(Option<String>, String)> {
    let (name, addr) = if let Some(open) = value.rfind('<') {
        let close = value[open..].find('>')? + open;
        (&value[..open], &value[open + 1..close])
    } else if let Some(at) = value.find("[mailto:") {
        let close = value[at..].find(']')? + at;
        (&value[..at], &value[at + 8..close])
    } else {
        ("", value)
    };
    let addr = address::normalize(addr);
    address::split(&addr)?;
    if addr.contains(char::is_whitespace) {
        return None;
    }
    let name = name.trim().trim_matches('"').trim();
    Some(((!name.is_empty()).then(|| name.to_string()), addr))
}

/// The In-Reply-To and References values that put a note into the
/// ticket's conversation: under the ticket's latest message, with the
/// ticket's first message as the root (clients that thread by References
/// find it even when they lack the messages between). Empty when the
/// ticket holds no message with a Message-ID of its own.
pub fn note_threading(first: Option<&str>, latest: Option<&str>) -> Option<(String, String)> {
    let latest = latest?;
    let references = match first {
        Some(first) if first != latest => format!("<{first}> <{latest}>"),
        _ => format!("<{latest}>"),
    };
    Some((format!("<{latest}>"), references))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_stranger_only_is_a_forward_and_any_known_recipient_makes_a_reply() {
        let participants = strings(&["carol@example.com", "dave@example.com"]);
        let customer = "Carol@Example.com";
        assert_eq!(
            addressing(&strings(&["accountant@firm.test"]), customer, &participants),
            Addressing::Forward
        );
        assert_eq!(
            addressing(&strings(&["carol@example.com"]), customer, &[]),
            Addressing::Reply
        );
        // The customer and a third party: the customer is answered.
        assert_eq!(
            addressing(
                &strings(&["accountant@firm.test", "carol@example.com"]),
                customer,
                &[]
            ),
            Addressing::Reply
        );
        assert_eq!(
            addressing(&strings(&["dave@example.com"]), customer, &participants),
            Addressing::Reply
        );
    }

    #[test]
    fn inline_forwards_of_the_common_clients_name_their_sender() {
        let gmail = "FYI\n\n---------- Forwarded message ---------\nFrom: Carol Customer <carol@example.com>\nDate: Mon, 2 Mar 2026 at 10:00\nSubject: Printer on fire\nTo: <alice@desk.test>\n\nIt burns.\n";
        assert_eq!(
            inline_forward(gmail),
            Some(ForwardedHeader {
                from: "carol@example.com".into(),
                from_name: Some("Carol Customer".into()),
                subject: Some("Printer on fire".into()),
                message_id: None,
            })
        );
        let thunderbird = "\n\n-------- Forwarded Message --------\nSubject: \tPrinter on fire\nDate: \tMon, 2 Mar 2026 10:00:00 +0100\nFrom: \t\"Carol\" <Carol@Example.com>\nTo: \talice@desk.test\nMessage-ID: <p1@example.com>\n\nIt burns.\n";
        let header = inline_forward(thunderbird).expect("thunderbird");
        assert_eq!(header.from, "carol@example.com");
        assert_eq!(header.from_name.as_deref(), Some("Carol"));
        assert_eq!(header.message_id.as_deref(), Some("p1@example.com"));
        let outlook = "See below\n-----Original Message-----\nFrom: Carol [mailto:carol@example.com]\nSent: Monday\nSubject: Printer\n\nbody\n";
        assert_eq!(
            inline_forward(outlook).map(|h| h.from),
            Some("carol@example.com".into())
        );
        let apple = "Begin forwarded message:\n\n> From: carol@example.com\n> Subject: Printer\n>\n> body\n";
        assert_eq!(
            inline_forward(apple).map(|h| h.from),
            Some("carol@example.com".into())
        );
        assert_eq!(inline_forward("no forward here\nFrom: x@y.test\n"), None);
        assert_eq!(
            inline_forward("-------- Forwarded Message --------\nFrom: nobody\n"),
            None
        );
    }

    #[test]
    fn notes_thread_under_the_latest_message_with_the_first_as_root() {
        assert_eq!(
            note_threading(Some("a@x"), Some("c@x")),
            Some(("<c@x>".into(), "<a@x> <c@x>".into()))
        );
        assert_eq!(
            note_threading(Some("a@x"), Some("a@x")),
            Some(("<a@x>".into(), "<a@x>".into()))
        );
        assert_eq!(note_threading(None, None), None);
    }
}
