//! Message-IDs as threading keys.

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

/// An id worth matching on: non-empty, bounded, and not an address quoted
/// in brackets by a confused client (`<alice@example.com>` is an address,
/// but also a syntactically valid id; we accept it, as others do).
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
