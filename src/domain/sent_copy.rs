//! Recognizing the copy of a submitted mail that the agent's client
//! appends to Sent: it is linked to the stored reply (not stored twice)
//! only when it is the agent's own mail and carries the bytes they
//! submitted. A Message-ID alone proves nothing: anyone who saw it could
//! append a stub carrying it and read the stored message through the link.

/// The digest a submission and its Sent copy share: SHA-256 (hex) of the
/// message with its `Bcc` fields left out (clients keep Bcc in the Sent
/// copy and leave it out of what they send) and line ends written CRLF,
/// trailing line ends ignored (SMTP ends the data with one, an APPEND
/// need not).
pub fn submission_digest(raw: &[u8]) -> String {
    let mut canonical = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut in_header = true;
    let mut skipping_bcc = false;
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if in_header {
            if line.is_empty() {
                in_header = false;
            } else {
                let continues = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
                if !continues {
                    skipping_bcc = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
                }
                if skipping_bcc {
                    continue;
                }
            }
        }
        canonical.extend_from_slice(line);
        canonical.extend_from_slice(b"\r\n");
    }
    while canonical.ends_with(b"\r\n") {
        canonical.truncate(canonical.len() - 2);
    }
    super::message_id::sha256_hex(&canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sent_copy_matches_whatever_the_client_did_to_bcc_and_line_ends() {
        let sent = b"From: a@desk.test\r\nTo: c@example.com\r\nSubject: Hi\r\n\r\nHello.\r\n";
        let copy = b"From: a@desk.test\nTo: c@example.com\nBcc: boss@desk.test,\n  other@desk.test\nSubject: Hi\n\nHello.";
        assert_eq!(submission_digest(sent), submission_digest(copy));
    }

    #[test]
    fn any_other_change_is_another_message() {
        let sent = b"From: a@desk.test\r\nSubject: Hi\r\n\r\nHello.\r\n";
        let stub = b"From: a@desk.test\r\nSubject: Hi\r\n\r\n\r\n";
        let body_bcc = b"From: a@desk.test\r\nSubject: Hi\r\n\r\nBcc: x\r\nHello.\r\n";
        assert_ne!(submission_digest(sent), submission_digest(stub));
        assert_ne!(
            submission_digest(sent),
            submission_digest(body_bcc),
            "Bcc is left out of the header only"
        );
    }
}
