//! Entry points of the fuzz targets in `fuzz/`, kept in the library so that
//! `tests/fuzz_replay.rs` replays their seeds on stable Rust in every test
//! run (cargo-fuzz itself needs nightly).

use crate::config::Config;
use crate::imap::encode::body_structure::{Body, line_count};
use crate::imap::encode::{self, SectionKind, section_bytes};
use crate::mime::tree::{Part, PartKind};
use crate::smtp::{SmtpLimits, SmtpSession};
use crate::{App, ingest};
use imap_codec::decode::Decoder;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every parser a stored message goes through (ingest and the search
/// index), and the search query parser, on arbitrary bytes.
pub fn inspect_message(data: &[u8]) {
    let inspection = ingest::inspect(data);
    // Whatever the input, the title is what its subject says, cleaned.
    if let Some(subject) = &inspection.subject {
        assert!(inspection.title.len() <= subject.len() + 1);
    }
    // What the search index reads of it, and its words.
    let text = crate::search::document::MessageText::parse(data);
    for field in [&text.subject, &text.from, &text.body, &text.quoted] {
        for (_, word) in crate::search::query::analyze(field) {
            assert!(!word.is_empty());
        }
    }
    // The same bytes as a search query: an answer or an error, never a panic.
    let _ = crate::search::query::parse(&String::from_utf8_lossy(data));
    // What sender authentication reads of a message: mail-auth's parse (the
    // DKIM signatures, From) and a trusted relay's Authentication-Results
    // header, as its first such field and as the bytes as one value.
    let _ = mail_auth::AuthenticatedMessage::parse(data);
    if let Some(value) = crate::mime::header::field_values(data, b"Authentication-Results").next() {
        let value = crate::mime::header::unfold(value);
        let _ = crate::domain::sender_auth::from_authentication_results(&String::from_utf8_lossy(
            &value,
        ));
    }
    let _ = crate::domain::sender_auth::from_authentication_results(&String::from_utf8_lossy(data));
}

/// A real SMTP session (over an in-memory pipe) against a real store in a
/// temporary directory, fed arbitrary client bytes.
pub struct SmtpHarness {
    runtime: tokio::runtime::Runtime,
    app: Arc<App>,
    limits: Arc<SmtpLimits>,
    dir: std::path::PathBuf,
}

impl SmtpHarness {
    pub fn new() -> SmtpHarness {
        crate::tls::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzz harness runtime: {e}"));
        let dir =
            std::env::temp_dir().join(format!("postdesk-fuzz-{:016x}", rand::random::<u64>()));
        let mut config = Config {
            hostname: "fuzz.test".into(),
            data_dir: dir.clone(),
            ..Config::default()
        };
        config.smtp.max_message_size = 64 * 1024;
        config.smtp.max_recipients = 4;
        config.smtp.command_timeout = 1;
        config.smtp.data_timeout = 1;
        // No DNS per input: the checks' own parsers are fuzzed by
        // `inspect_message`.
        config.smtp.verify = crate::config::VerifyMode::Off;
        let limits = Arc::new(SmtpLimits::from_config(&config.smtp));
        let app = runtime
            .block_on(App::open(config))
            .unwrap_or_else(|e| panic!("fuzz harness store: {e}"));
        SmtpHarness {
            runtime,
            app,
            limits,
            dir,
        }
    }

    /// Runs one session: the client sends `data`, closes its side, and
    /// reads whatever the server answers until it hangs up.
    pub fn run(&self, data: &[u8]) -> Vec<u8> {
        self.runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(256 * 1024);
            let peer = "127.0.0.1:25".parse().unwrap_or_else(|e| panic!("{e}"));
            // Held until the session ends: a fuzzed session never shuts down.
            let never_triggered = crate::net::ShutdownTrigger::new();
            let session = SmtpSession::new(
                self.app.clone(),
                crate::smtp::Role::Inbound,
                peer,
                Box::new(server),
                false,
                None,
                self.limits.clone(),
                never_triggered.subscribe(),
            );
            let task = tokio::spawn(session.run());
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut replies = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut replies))
                    .await;
            assert!(read.is_ok(), "the session neither answered nor closed");
            let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert!(
                matches!(ended, Ok(Ok(_))),
                "the session task did not end cleanly"
            );
            for line in replies.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let code = line.get(..3).and_then(|c| std::str::from_utf8(c).ok());
                assert!(
                    code.is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit())),
                    "a reply line without a code: {:?}",
                    String::from_utf8_lossy(line)
                );
            }
            replies
        })
    }
}

impl Default for SmtpHarness {
    fn default() -> Self {
        SmtpHarness::new()
    }
}

impl Drop for SmtpHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deepest body nesting (the whole message counting as 1) that imap-codec's
/// response parser follows: it gives up after 8 recursions, and each
/// nested `body` takes one, plus one for the innermost part's own fields.
const IMAP_CODEC_MAX_BODY_DEPTH: usize = 7;

/// Parts whose sections are checked one by one (each check parses the
/// message again), so that inputs with thousands of parts stay fast.
const MAX_PARTS_CHECKED: usize = 64;

/// The MIME tree and the IMAP FETCH encoders (ENVELOPE, BODYSTRUCTURE,
/// BODY, `BODY[section]`) on arbitrary bytes: the tree's offsets nest and
/// stay in the input, imap-codec's response parser reads the encoded FETCH
/// data in full, and every part's size and line count are those of the
/// bytes `BODY[part]` serves.
pub fn mime_render(data: &[u8]) {
    let tree = Part::parse(data);
    check_part_offsets(&tree, 0..data.len());

    let body = Body::of_message(data);
    let mut out = b"* 1 FETCH (ENVELOPE ".to_vec();
    encode::write_envelope(&mut out, data);
    out.extend_from_slice(b" BODYSTRUCTURE ");
    body.write(&mut out, true);
    out.extend_from_slice(b" BODY ");
    body.write(&mut out, false);
    out.extend_from_slice(b")\r\n");
    if body_depth(&body) <= IMAP_CODEC_MAX_BODY_DEPTH {
        match imap_codec::ResponseCodec::default().decode(&out) {
            Ok((rest, _)) => assert!(rest.is_empty(), "bytes after the response"),
            Err(error) => panic!(
                "imap-codec cannot decode ({error:?}): {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }

    let whole = section_bytes(data, &[], SectionKind::Full);
    assert_eq!(whole.as_deref(), Some(data), "BODY[]");
    let header = section_bytes(data, &[], SectionKind::Header).unwrap_or_default();
    let text = section_bytes(data, &[], SectionKind::Text).unwrap_or_default();
    assert_eq!([&header[..], &text[..]].concat(), data, "HEADER + TEXT");

    let mut parts = Vec::new();
    collect_parts(&body, &[], &mut parts);
    for (path, part) in parts.iter().take(MAX_PARTS_CHECKED) {
        check_section(data, path, part);
    }
}

/// Every part lies within its parent, its header before its body.
fn check_part_offsets(part: &Part, within: Range<usize>) {
    assert!(
        within.start <= part.start
            && part.start <= part.body.start
            && part.body.start <= part.body.end
            && part.body.end <= within.end,
        "part {part:?} outside {within:?}"
    );
    match &part.kind {
        PartKind::Leaf => {}
        PartKind::Multipart(children) => {
            let mut from = part.body.start;
            for child in children {
                check_part_offsets(child, from..part.body.end);
                from = child.body.end;
            }
        }
        PartKind::Message(inner) => check_part_offsets(inner, part.body.clone()),
    }
}

/// Nesting of `body` levels, the whole message being 1.
fn body_depth(body: &Body) -> usize {
    match body {
        Body::Single(_) => 1,
        Body::Message(message) => 1 + body_depth(&message.body),
        Body::Multipart(multipart) => 1 + multipart.parts.iter().map(body_depth).max().unwrap_or(0),
    }
}

/// The parts of a message whose structure is `body`, with their part
/// numbers below `prefix` (RFC 3501 §6.4.5): the parts of a multipart, or
/// else the body as part 1; the parts of an encapsulated message follow it.
fn collect_parts<'b>(body: &'b Body, prefix: &[u32], out: &mut Vec<(Vec<u32>, &'b Body)>) {
    let numbered = |n: usize| [prefix, &[u32::try_from(n + 1).unwrap_or(u32::MAX)]].concat();
    match body {
        Body::Multipart(multipart) => {
            for (i, part) in multipart.parts.iter().enumerate() {
                collect_parts_below(part, numbered(i), out);
            }
        }
        _ => collect_parts_below(body, numbered(0), out),
    }
}

/// `body` as the part numbered `path`, and the parts inside it.
fn collect_parts_below<'b>(body: &'b Body, path: Vec<u32>, out: &mut Vec<(Vec<u32>, &'b Body)>) {
    match body {
        Body::Multipart(multipart) => {
            for (i, part) in multipart.parts.iter().enumerate() {
                let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
                collect_parts_below(part, [&path[..], &[number]].concat(), out);
            }
        }
        Body::Message(message) => {
            collect_parts(&message.body, &path, out);
            out.push((path, body));
        }
        Body::Single(_) => out.push((path, body)),
    }
}

/// A single part's size and lines are those of its `BODY[part]`; a
/// message/rfc822 part's HEADER and TEXT frame that body; no section of
/// any kind panics.
fn check_section(data: &[u8], path: &[u32], body: &Body) {
    let bytes = section_bytes(data, path, SectionKind::Full).unwrap_or_default();
    let (octets, lines) = match body {
        Body::Single(single) => (single.fields.octets, single.lines),
        Body::Message(message) => (message.fields.octets, Some(message.lines)),
        Body::Multipart(_) => return,
    };
    assert_eq!(bytes.len(), octets, "octets of {path:?}");
    if let Some(lines) = lines {
        assert_eq!(line_count(&bytes), lines, "lines of {path:?}");
    }
    let header = section_bytes(data, path, SectionKind::Header);
    let text = section_bytes(data, path, SectionKind::Text);
    if let Body::Message(_) = body {
        let (header, text) = (header.unwrap_or_default(), text.unwrap_or_default());
        assert!(
            bytes.starts_with(&header) && bytes.ends_with(&text),
            "HEADER and TEXT of {path:?}"
        );
        // Between them at most the line break Dovecot gives to a delimiter
        // right after an empty line.
        let between = bytes
            .len()
            .checked_sub(text.len())
            .and_then(|end| bytes.get(header.len()..end));
        assert!(
            matches!(between, Some(b"" | b"\n" | b"\r\n")),
            "HEADER and TEXT of {path:?}"
        );
    } else {
        assert!(
            header.is_none() && text.is_none(),
            "HEADER of leaf {path:?}"
        );
    }
    let names = vec![b"subject".to_vec(), b"content-type".to_vec()];
    for kind in [
        SectionKind::Mime,
        SectionKind::HeaderFields(names.clone()),
        SectionKind::HeaderFieldsNot(names),
    ] {
        let _ = section_bytes(data, path, kind);
    }
}
