//! Where an author's own words end and the quoted history or signature
//! begins: search weighs quotes down, and submission tells a reply that
//! only carries commands from one that says something.

/// Lines that introduce a quoted message in the common clients' languages.
fn introduces_quote(line: &str) -> bool {
    let line = line.trim();
    let attribution = (line.starts_with("On ") && line.ends_with("wrote:"))
        || (line.starts_with("Am ") && line.ends_with("schrieb:"))
        || (line.starts_with("Le ") && (line.ends_with("a écrit :") || line.ends_with("a écrit:")))
        || (line.starts_with("El ") && line.ends_with("escribió:"));
    attribution
        || line.starts_with("-----Original Message-----")
        || line.starts_with("-------- Original Message --------")
}

/// (what the author wrote, what they quoted or signed).
pub fn split_quoted(text: &str) -> (String, String) {
    let mut own = String::with_capacity(text.len());
    let mut quoted = String::new();
    let mut tail = false;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if !tail && (trimmed == "--" || line == "-- " || introduces_quote(trimmed)) {
            tail = true;
        }
        let target = if tail || trimmed.trim_start().starts_with('>') {
            &mut quoted
        } else {
            &mut own
        };
        target.push_str(line);
        target.push('\n');
    }
    (own, quoted)
}

/// The author's words anywhere in a text, also below a quote (answers
/// written inline or under the quoted mail): every line that is not
/// quoted (`>`), not a line introducing a quote, not in a signature
/// (from `-- ` to the next quote) and not in a quoted history without
/// `>` marks (Outlook's "-----Original Message-----" to the end).
pub fn words_anywhere(text: &str) -> String {
    let mut words = String::new();
    let mut in_signature = false;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.starts_with("-----Original Message-----")
            || trimmed.starts_with("-------- Original Message --------")
        {
            break;
        }
        if introduces_quote(trimmed) {
            in_signature = false;
            continue;
        }
        if trimmed == "--" || line == "-- " {
            in_signature = true;
        }
        if in_signature || trimmed.trim_start().starts_with('>') || trimmed.trim().is_empty() {
            continue;
        }
        words.push_str(line);
        words.push('\n');
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_attributions_and_signatures_are_split_off() {
        let text = "Still broken after the update.\n\nOn Mon, 2 Mar 2026, Bob wrote:\n> Try restarting the VPN client.\n> Regards\n";
        let (own, quoted) = split_quoted(text);
        assert_eq!(own, "Still broken after the update.\n\n");
        assert!(quoted.starts_with("On Mon"));
        assert!(quoted.contains("restarting the VPN"));

        let (own, quoted) = split_quoted("Thanks!\n-- \nAlice\nACME Corp\n");
        assert_eq!(own, "Thanks!\n");
        assert_eq!(quoted, "-- \nAlice\nACME Corp\n");

        let (own, quoted) = split_quoted("inline:\n> asked\nanswer\n");
        assert_eq!(own, "inline:\nanswer\n");
        assert_eq!(quoted, "> asked\n");

        let (own, quoted) =
            split_quoted("See below.\n-----Original Message-----\nFrom: x\nold text\n");
        assert_eq!(own, "See below.\n");
        assert!(quoted.contains("old text"));
    }

    #[test]
    fn a_forwarded_message_stays_the_authors_text() {
        let (own, quoted) =
            split_quoted("FYI\n-------- Forwarded Message --------\nThe printer is on fire\n");
        assert!(own.contains("printer is on fire"));
        assert!(quoted.is_empty());
    }

    #[test]
    fn words_below_a_quote_are_found_and_quotes_signatures_are_not() {
        let bottom = "\nOn Mon, 2 Mar 2026, Carol wrote:\n> It is broken.\n\nRestart it, then it works.\n-- \nAlice\n";
        assert_eq!(words_anywhere(bottom), "Restart it, then it works.\n");
        let top = "-- \nAlice\n\nOn Mon, Carol wrote:\n> It is broken.\n> More.\n";
        assert_eq!(words_anywhere(top), "");
        let outlook = "\n-----Original Message-----\nFrom: Carol\nIt is broken.\n";
        assert_eq!(words_anywhere(outlook), "");
    }
}
