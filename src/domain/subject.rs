//! Subjects: the ticket tag `[#1042]` and the title a ticket shows.

/// Reply and forward prefixes of the mail clients support teams meet:
/// English, German (AW, WG), Scandinavian (SV, VS, VB), Dutch (Antw),
/// Italian (R, I, Rif), Polish (Odp, PD), French (TR, Réf), Spanish (RV),
/// Finnish (VL), Turkish (YNT), Chinese (回复, 答复, 转发).
const PREFIXES: &[&str] = &[
    "re", "aw", "sv", "vs", "vb", "antw", "r", "rif", "odp", "fw", "fwd", "wg", "tr", "i", "rv",
    "vl", "ynt", "pd", "réf", "ref", "回复", "答复", "转发",
];

/// Ticket numbers tagged in a subject as `[#1042]`, in order of appearance.
pub fn ticket_tags(subject: &str) -> Vec<i64> {
    let mut tags = Vec::new();
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty()
            && after[digits.len()..].starts_with(']')
            && let Ok(number) = digits.parse::<i64>()
            && number > 0
            && !tags.contains(&number)
        {
            tags.push(number);
        }
        rest = after;
    }
    tags
}

/// The subject without leading reply/forward prefixes (`Re: AW: Fwd[2]:`)
/// and without postdesk's own `[#n]` tags, whitespace collapsed. This is the
/// ticket title; it is never used to join tickets.
pub fn clean(subject: &str) -> String {
    let without_tags = remove_ticket_tags(subject);
    let mut rest = collapse_whitespace(&without_tags);
    loop {
        let stripped = strip_one_prefix(&rest);
        match stripped {
            Some(shorter) => rest = shorter.trim_start().to_string(),
            None => break,
        }
    }
    rest.trim().to_string()
}

/// The subject with a ticket's tag, added in front unless already present.
pub fn with_ticket_tag(subject: &str, ticket: i64) -> String {
    if ticket_tags(subject).contains(&ticket) {
        subject.to_string()
    } else {
        format!("[#{ticket}] {subject}").trim_end().to_string()
    }
}

/// The subject with ticket `from`'s tag made ticket `to`'s (mail moved by a
/// merge or split), or as it was when it has no such tag.
pub fn replace_ticket_tag(subject: &str, from: i64, to: i64) -> String {
    subject.replace(&format!("[#{from}]"), &format!("[#{to}]"))
}

fn remove_ticket_tags(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        let digits = after.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && after[digits..].starts_with(']') {
            out.push_str(&rest[..start]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..start + 2]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Strips one `Prefix:` (optionally `Prefix[n]:` / `Prefix(n):`, ASCII or
/// full-width colon) from the front, if there is one.
fn strip_one_prefix(subject: &str) -> Option<String> {
    let word_end = subject
        .char_indices()
        .find(|(_, c)| matches!(c, ':' | '：' | '[' | '(' | ' '))
        .map(|(i, _)| i)?;
    let word = subject[..word_end].to_lowercase();
    if !PREFIXES.contains(&word.as_str()) {
        return None;
    }
    let mut rest = &subject[word_end..];
    // Optional counter: "Re[2]:" or "Re(2):".
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let Some(inner) = rest.strip_prefix(open)
            && let Some(end) = inner.find(close)
            && inner[..end].chars().all(|c| c.is_ascii_digit())
        {
            rest = &inner[end + close.len_utf8()..];
        }
    }
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))?;
    Some(rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_tags_are_cleaned_from_titles() {
        let cases = [
            ("Re: Printer on fire", "Printer on fire"),
            ("RE: RE: Printer on fire", "Printer on fire"),
            ("AW: Maven 4.0.0", "Maven 4.0.0"),
            ("SV: Fakturа", "Fakturа"),
            ("Fwd: Re: [#12] VPN drops", "VPN drops"),
            ("[#12] Re: VPN drops", "VPN drops"),
            ("Re[2]: counter", "counter"),
            ("Re(3):  spaced   out ", "spaced out"),
            ("R: R: I: Italian", "Italian"),
            ("回复：中文", "中文"),
            (
                "Réf : not a prefix without colon next",
                "Réf : not a prefix without colon next",
            ),
            ("Regarding: not a prefix", "Regarding: not a prefix"),
            ("Re:", ""),
            (
                "[users@httpd] Re: list tag stays",
                "[users@httpd] Re: list tag stays",
            ),
            ("Item [#notanumber] stays", "Item [#notanumber] stays"),
        ];
        for (subject, title) in cases {
            assert_eq!(clean(subject), title, "{subject}");
        }
    }

    #[test]
    fn ticket_tags_are_found_anywhere() {
        assert_eq!(ticket_tags("Re: [#1042] Printer"), vec![1042]);
        assert_eq!(ticket_tags("[#1] and [#2] and [#1]"), vec![1, 2]);
        assert_eq!(
            ticket_tags("[#] [#12x] [# 3] #4 (#5290765)"),
            Vec::<i64>::new()
        );
        assert_eq!(ticket_tags("[#0]"), Vec::<i64>::new());
    }

    #[test]
    fn tagging_is_idempotent() {
        assert_eq!(with_ticket_tag("Printer", 7), "[#7] Printer");
        assert_eq!(with_ticket_tag("Re: [#7] Printer", 7), "Re: [#7] Printer");
        assert_eq!(with_ticket_tag("", 7), "[#7]");
    }

    #[test]
    fn a_moved_ticket_tag_is_replaced() {
        assert_eq!(
            replace_ticket_tag("Re: [#7] Printer", 7, 42),
            "Re: [#42] Printer"
        );
        assert_eq!(
            replace_ticket_tag("Re: [#71] Printer", 7, 42),
            "Re: [#71] Printer"
        );
        assert_eq!(replace_ticket_tag("Re: Printer", 7, 42), "Re: Printer");
    }
}
