//! The FETCH encoders together, checked by a strict reader of the IMAP
//! syntax they write: BODY and BODYSTRUCTURE agree with each other and with
//! the bytes `BODY[part]` serves, on hand-made messages, malformed input
//! and the whole shared corpus.

use super::body_structure::line_count;
use super::{SectionKind, section_bytes, write_bodystructure, write_envelope};
use crate::mime::header::header_end;
use crate::mime::tree::{MAX_DEPTH, MAX_PARTS};
use std::borrow::Cow;
use std::path::PathBuf;

// -- A strict reader of the IMAP values this module writes ---------------

/// An IMAP value as a client parses it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Nil,
    Num(u64),
    Str(Vec<u8>),
    List(Vec<Value>),
}

impl Value {
    fn list(&self) -> &[Value] {
        match self {
            Value::List(items) => items,
            other => panic!("expected a list, got {other:?}"),
        }
    }

    fn num(&self) -> u64 {
        match self {
            Value::Num(n) => *n,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Str(s) => String::from_utf8_lossy(s).to_ascii_lowercase(),
            other => panic!("expected a string, got {other:?}"),
        }
    }
}

/// Parses exactly one value covering all of `bytes`, panicking on any
/// syntax error (RFC 3501: single spaces between list items, except
/// that lists may follow each other directly as in `body-type-mpart`
/// and address lists; quoted strings only with `\"` and `\\` escapes;
/// literals with their exact length).
fn parse(bytes: &[u8]) -> Value {
    let mut reader = Reader { s: bytes, pos: 0 };
    let value = reader.value();
    assert_eq!(reader.pos, bytes.len(), "trailing bytes after value");
    value
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> u8 {
        let byte = self.s[self.pos];
        self.pos += 1;
        byte
    }

    fn value(&mut self) -> Value {
        match self.s[self.pos] {
            b'(' => self.list(),
            b'"' => self.quoted(),
            b'{' => self.literal(),
            b'N' => {
                assert_eq!(&self.s[self.pos..self.pos + 3], b"NIL");
                self.pos += 3;
                Value::Nil
            }
            b'0'..=b'9' => {
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap();
                Value::Num(digits.parse().unwrap())
            }
            other => panic!("unexpected byte {other:#x} at {}", self.pos),
        }
    }

    fn list(&mut self) -> Value {
        assert_eq!(self.next(), b'(');
        let mut items: Vec<Value> = Vec::new();
        loop {
            if self.s[self.pos] == b')' {
                self.pos += 1;
                return Value::List(items);
            }
            if let Some(last) = items.last() {
                let adjacent_lists = matches!(last, Value::List(_)) && self.s[self.pos] == b'(';
                if !adjacent_lists {
                    assert_eq!(self.next(), b' ', "missing space at {}", self.pos);
                }
            }
            items.push(self.value());
        }
    }

    fn quoted(&mut self) -> Value {
        assert_eq!(self.next(), b'"');
        let mut out = Vec::new();
        loop {
            match self.next() {
                b'"' => return Value::Str(out),
                b'\\' => {
                    let escaped = self.next();
                    assert!(escaped == b'"' || escaped == b'\\');
                    out.push(escaped);
                }
                byte => {
                    assert!((0x20..0x7f).contains(&byte), "bad quoted byte {byte:#x}");
                    out.push(byte);
                }
            }
        }
    }

    fn literal(&mut self) -> Value {
        assert_eq!(self.next(), b'{');
        let start = self.pos;
        while self.s[self.pos] != b'}' {
            self.pos += 1;
        }
        let len: usize = std::str::from_utf8(&self.s[start..self.pos])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(&self.s[self.pos..self.pos + 3], b"}\r\n");
        self.pos += 3;
        let bytes = self.s[self.pos..self.pos + len].to_vec();
        assert!(!bytes.contains(&0), "NUL in a literal");
        self.pos += len;
        Value::Str(bytes)
    }
}

/// Parenthesis balance outside quoted strings and literals: never
/// negative, zero at the end.
fn balanced(bytes: &[u8]) -> bool {
    let (mut depth, mut i) = (0i64, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => {
                let close = i + bytes[i..].iter().position(|&b| b == b'}').unwrap();
                let len: usize = std::str::from_utf8(&bytes[i + 1..close])
                    .unwrap()
                    .parse()
                    .unwrap();
                i = close + 2 + len;
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
        i += 1;
    }
    depth == 0
}

// -- Helpers ---------------------------------------------------------------

fn structure_bytes(raw: &[u8], extensible: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_bodystructure(&mut out, raw, extensible);
    out
}

fn structure(raw: &[u8], extensible: bool) -> String {
    String::from_utf8(structure_bytes(raw, extensible)).unwrap()
}

fn envelope(raw: &[u8]) -> String {
    let mut out = Vec::new();
    write_envelope(&mut out, raw);
    String::from_utf8_lossy(&out).into_owned()
}

fn section(raw: &[u8], part: &[u32], kind: SectionKind) -> Option<Vec<u8>> {
    section_bytes(raw, part, kind).map(Cow::into_owned)
}

fn names(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|name| name.as_bytes().to_vec()).collect()
}

/// One single part of a BODY/BODYSTRUCTURE, found by walking the parsed
/// structure with RFC 3501 part numbers.
struct Part {
    path: Vec<u32>,
    octets: u64,
    /// For text and message/rfc822 parts.
    lines: Option<u64>,
    message: bool,
}

/// The parts of a message whose body structure is `body`, numbered
/// below `prefix`: the children of a multipart, else the body as part 1.
fn message_parts(body: &Value, prefix: &[u32], out: &mut Vec<Part>) {
    let items = body.list();
    if matches!(items[0], Value::List(_)) {
        for (i, child) in items
            .iter()
            .take_while(|v| matches!(v, Value::List(_)))
            .enumerate()
        {
            collect_parts(child, &[prefix, &[i as u32 + 1]].concat(), out);
        }
    } else {
        collect_parts(body, &[prefix, &[1]].concat(), out);
    }
}

fn collect_parts(body: &Value, path: &[u32], out: &mut Vec<Part>) {
    let items = body.list();
    if matches!(items[0], Value::List(_)) {
        for (i, child) in items
            .iter()
            .take_while(|v| matches!(v, Value::List(_)))
            .enumerate()
        {
            collect_parts(child, &[path, &[i as u32 + 1]].concat(), out);
        }
        return;
    }
    let (kind, subtype) = (items[0].text(), items[1].text());
    let message = kind == "message" && subtype == "rfc822";
    let lines = if kind == "text" {
        Some(items[7].num())
    } else if message {
        Some(items[9].num())
    } else {
        None
    };
    out.push(Part {
        path: path.to_vec(),
        octets: items[6].num(),
        lines,
        message,
    });
    if message {
        assert_eq!(items[7].list().len(), 10, "envelope");
        message_parts(&items[8], path, out);
    }
}

fn parts_of(raw: &[u8], extensible: bool) -> Vec<Part> {
    let mut parts = Vec::new();
    message_parts(&parse(&structure_bytes(raw, extensible)), &[], &mut parts);
    parts
}

fn check_envelope_syntax(raw: &[u8]) {
    let mut out = Vec::new();
    write_envelope(&mut out, raw);
    let value = parse(&out);
    let fields = value.list();
    assert_eq!(fields.len(), 10);
    for addresses in &fields[2..8] {
        if let Value::List(list) = addresses {
            assert!(!list.is_empty());
            for address in list {
                assert_eq!(address.list().len(), 4);
            }
        } else {
            assert_eq!(*addresses, Value::Nil);
        }
    }
}

/// All the consistency checks one message must pass.
fn check_message(name: &str, raw: &[u8]) {
    assert_eq!(
        section(raw, &[], SectionKind::Full).as_deref(),
        Some(raw),
        "{name}: BODY[]"
    );
    let header = section(raw, &[], SectionKind::Header).unwrap();
    let text = section(raw, &[], SectionKind::Text).unwrap();
    assert_eq!(
        [header.as_slice(), &text].concat(),
        raw,
        "{name}: HEADER + TEXT"
    );
    assert_eq!(header.len(), header_end(raw), "{name}: header_end");
    assert_eq!(section(raw, &[], SectionKind::Mime), None);

    for extensible in [true, false] {
        let out = structure_bytes(raw, extensible);
        assert!(
            balanced(&out),
            "{name}: unbalanced {}",
            String::from_utf8_lossy(&out)
        );
    }
    let parts = parts_of(raw, true);
    let plain: Vec<(Vec<u32>, u64)> = parts_of(raw, false)
        .into_iter()
        .map(|p| (p.path, p.octets))
        .collect();
    let extended: Vec<(Vec<u32>, u64)> = parts.iter().map(|p| (p.path.clone(), p.octets)).collect();
    assert_eq!(plain, extended, "{name}: BODY and BODYSTRUCTURE disagree");

    for part in &parts {
        let body = section(raw, &part.path, SectionKind::Full).unwrap_or_default();
        assert_eq!(
            body.len() as u64,
            part.octets,
            "{name}: octets of {:?}",
            part.path
        );
        if let Some(lines) = part.lines {
            assert_eq!(
                line_count(&body) as u64,
                lines,
                "{name}: lines of {:?}",
                part.path
            );
        }
        if part.message {
            // HEADER and TEXT frame the part's body; between them at
            // most the line break that Dovecot gives to a delimiter
            // right after an empty line.
            let header = section(raw, &part.path, SectionKind::Header).unwrap();
            let text = section(raw, &part.path, SectionKind::Text).unwrap();
            assert!(
                body.starts_with(&header) && body.ends_with(&text),
                "{name}: {:?}",
                part.path
            );
            let between = body.len().checked_sub(header.len() + text.len());
            let between = between.map(|len| &body[header.len()..header.len() + len]);
            assert!(
                matches!(between, Some(b"" | b"\n" | b"\r\n")),
                "{name}: {:?}",
                part.path
            );
        } else {
            assert_eq!(section(raw, &part.path, SectionKind::Header), None);
        }
    }
    check_envelope_syntax(raw);
}

fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("POSTDESK_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")));
    assert!(
        dir.join("MANIFEST.md").exists(),
        "corpus missing at {}",
        dir.display()
    );
    dir.join("mime")
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 190,
        "expected the whole corpus, found {}",
        files.len()
    );
    files
        .into_iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect()
}

fn corpus_file(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).unwrap()
}

pub(super) fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

// -- BODY / BODYSTRUCTURE ---------------------------------------------------------

#[test]
fn plain_message_structure() {
    let raw = crlf("From: a@example.org\nSubject: hi\n\nhello\nworld\n");
    assert_eq!(
        structure(&raw, true),
        r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2 NIL NIL NIL NIL)"#
    );
    assert_eq!(
        structure(&raw, false),
        r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2)"#
    );

    // Types and values as written; charset appended only when missing.
    let raw = crlf(
        "Mime-Version: 1.0\nContent-Type: TEXT/Plain; format=flowed\n\
         Content-Transfer-Encoding: 8bit\nContent-Language: en\n\nbody",
    );
    assert_eq!(
        structure(&raw, true),
        r#"("TEXT" "Plain" ("format" "flowed" "charset" "us-ascii") NIL NIL "8bit" 4 0 NIL NIL ("en") NIL)"#
    );
}

/// The expected strings are what Dovecot 2.3.19 answers for the same
/// message (the escaped name it sends as a literal, same value).
#[test]
fn multipart_with_encapsulated_message_structure() {
    let raw = nested_message();
    assert_eq!(
        structure(&raw, true),
        concat!(
            r#"(("text" "plain" ("charset" "utf-8") "<note@example.org>" "Cover note" "7bit" 26 0 NIL NIL NIL NIL)"#,
            r#"("message" "rfc822" NIL NIL NIL "7bit" 381 ("Mon, 2 Jun 2025 09:00:00 +0000" "report" "#,
            r#"(("Carol, C." NIL "carol" "example.com")) (("Carol, C." NIL "carol" "example.com")) "#,
            r#"(("Carol, C." NIL "carol" "example.com")) NIL NIL NIL NIL NIL) "#,
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 1 NIL NIL NIL NIL)"#,
            r#"("text" "html" ("charset" "us-ascii") NIL NIL "quoted-printable" 21 0 NIL NIL ("en" "de") NIL) "#,
            r#""alternative" ("boundary" "inner") NIL NIL NIL) 18 NIL ("inline" ("filename" "report.eml")) NIL NIL)"#,
            r#"("application" "pdf" ("name" "a \"b\".pdf") NIL NIL "base64" 12 "Q2hlY2sgSW50ZWdyaXR5IQ==" NIL NIL "#,
            r#""http://example.org/a.pdf") "mixed" ("boundary" "outer") NIL NIL NIL)"#,
        )
    );
    assert_eq!(
        structure(&raw, false),
        concat!(
            r#"(("text" "plain" ("charset" "utf-8") "<note@example.org>" "Cover note" "7bit" 26 0)"#,
            r#"("message" "rfc822" NIL NIL NIL "7bit" 381 ("Mon, 2 Jun 2025 09:00:00 +0000" "report" "#,
            r#"(("Carol, C." NIL "carol" "example.com")) (("Carol, C." NIL "carol" "example.com")) "#,
            r#"(("Carol, C." NIL "carol" "example.com")) NIL NIL NIL NIL NIL) "#,
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 1)"#,
            r#"("text" "html" ("charset" "us-ascii") NIL NIL "quoted-printable" 21 0) "alternative") 18)"#,
            r#"("application" "pdf" ("name" "a \"b\".pdf") NIL NIL "base64" 12) "mixed")"#,
        )
    );
    check_message("nested", &raw);
}

fn nested_message() -> Vec<u8> {
    crlf(concat!(
        "From: Alice Example <alice@example.org>\n",
        "To: Bob <bob@example.net>\n",
        "Subject: Fwd: report\n",
        "Date: Tue, 3 Jun 2025 10:00:00 +0200\n",
        "Message-ID: <outer@example.org>\n",
        "MIME-Version: 1.0\n",
        "Content-Type: multipart/mixed; boundary=\"outer\"\n",
        "\n",
        "This is a multi-part message in MIME format.\n",
        "--outer\n",
        "Content-Type: text/plain; charset=utf-8\n",
        "Content-ID: <note@example.org>\n",
        "Content-Description: Cover note\n",
        "\n",
        "See the forwarded message.\n",
        "--outer\n",
        "Content-Type: message/rfc822\n",
        "Content-Disposition: inline; filename=\"report.eml\"\n",
        "\n",
        "From: \"Carol, C.\" <carol@example.com>\n",
        "Subject: report\n",
        "Date: Mon, 2 Jun 2025 09:00:00 +0000\n",
        "MIME-Version: 1.0\n",
        "Content-Type: multipart/alternative; boundary=inner\n",
        "\n",
        "--inner\n",
        "Content-Type: text/plain\n",
        "\n",
        "Numbers\ngo up.\n",
        "--inner\n",
        "Content-Type: text/html; charset=us-ascii\n",
        "Content-Transfer-Encoding: quoted-printable\n",
        "Content-Language: en, de\n",
        "\n",
        "<p>Numbers go up.</p>\n",
        "--inner--\n",
        "--outer\n",
        "Content-Type: application/pdf; name=\"a \\\"b\\\".pdf\"\n",
        "Content-Transfer-Encoding: base64\n",
        "Content-Location: http://example.org/a.pdf\n",
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n",
        "\n",
        "JVBERi0xLjQK\n",
        "--outer--\n",
        "epilogue\n",
    ))
}

#[test]
fn multipart_without_parts_gets_an_empty_child() {
    let raw = crlf("Content-Type: multipart/mixed; boundary=\"foo\"\n\n");
    assert_eq!(
        structure(&raw, true),
        r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "foo") NIL NIL NIL)"#
    );
    let raw = crlf("Content-Type: multipart/mixed\n\n--x\n\nnot a part\n");
    assert_eq!(
        structure(&raw, false),
        r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")"#
    );
    assert_eq!(section(&raw, &[1], SectionKind::Full), None);
}

#[test]
fn mime_fields_of_a_message_need_mime() {
    // Without MIME-Version or Content-Type, Content-* fields of a
    // message do not count (Dovecot); inside a multipart they do.
    let raw = crlf("Content-Transfer-Encoding: base64\nContent-ID: <x>\n\nbody\n");
    assert_eq!(
        structure(&raw, false),
        r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)"#
    );
    let raw =
        crlf("MIME-Version: 1.0\nContent-Transfer-Encoding: base64\nContent-ID: <x>\n\nbody\n");
    assert_eq!(
        structure(&raw, false),
        r#"("text" "plain" ("charset" "us-ascii") "<x>" NIL "base64" 6 1)"#
    );
    // A transfer encoding that is not one token is ignored.
    let raw = crlf("MIME-Version: 1.0\nContent-Transfer-Encoding: 8 bit\n\nbody\n");
    assert_eq!(
        structure(&raw, false),
        r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)"#
    );
}

#[test]
fn digest_parts_default_to_message_rfc822() {
    let raw = corpus_file("mailparser-dovecot-thirdparty-007.eml");
    let parts = parts_of(&raw, true);
    let messages: Vec<&[u32]> = parts
        .iter()
        .filter(|p| p.message)
        .map(|p| p.path.as_slice())
        .collect();
    assert_eq!(messages, [&[1][..], &[2], &[3]]);
    // Part 3 encapsulates a multipart: 3.1 and 3.2 are its children.
    let body = section(&raw, &[3, 2], SectionKind::Full).unwrap();
    assert_eq!(body, b"Foobar");
    check_message("digest", &raw);
}

#[test]
fn message_rfc822_is_parsed_whatever_its_encoding() {
    let raw = crlf(concat!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n",
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n",
        "U3ViamVjdDogaGkKCmJvZHkK\n--b--\n",
    ));
    let parts = parts_of(&raw, true);
    assert!(parts[0].message);
    check_message("base64 message", &raw);
}

#[test]
fn nesting_is_limited() {
    let depth = MAX_DEPTH + 50;
    let mut raw = Vec::new();
    for level in 0..depth {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\ndeep\r\n");
    for level in (0..depth).rev() {
        raw.extend_from_slice(format!("--b{level}--\r\n").as_bytes());
    }
    let out = structure(&raw, true);
    assert!(out.contains(r#""application" "octet-stream""#));
    assert!(!out.contains("deep"));
    check_message("deep multipart", &raw);

    let mut raw = Vec::new();
    for _ in 0..depth {
        raw.extend_from_slice(b"Subject: again\r\nContent-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"Subject: last\r\n\r\nbody\r\n");
    check_message("deep message/rfc822", &raw);
}

#[test]
fn part_count_is_limited() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for _ in 0..MAX_PARTS + 100 {
        raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
    }
    raw.extend_from_slice(b"--b--\r\n");
    let parts = parts_of(&raw, false);
    assert_eq!(parts.len(), MAX_PARTS - 1);
    // Past the limit the rest is body of the last part.
    let last = parts.last().unwrap();
    assert!(last.octets > 100);
    let body = section(&raw, &last.path, SectionKind::Full).unwrap();
    assert_eq!(body.len() as u64, last.octets);
    assert!(body.ends_with(b"--b--\r\n"));
}

#[test]
fn delimiters_follow_dovecot() {
    // The line break before a delimiter belongs to it; an empty line
    // right before a delimiter is that line break, not the end of the
    // header (Dovecot 2.3 answers the same).
    let raw = crlf(concat!(
        "Content-Type: multipart/mixed; boundary=\"b\"\n\n",
        "--b\nContent-Type: text/plain\n\n--b\nX-A: 1\n\nbody\n--b\n",
        "Content-Type: message/rfc822\n\nSubject: x\n\n--b--\n",
    ));
    assert_eq!(
        section(&raw, &[1], SectionKind::Mime).unwrap(),
        b"Content-Type: text/plain\r\n"
    );
    assert_eq!(section(&raw, &[1], SectionKind::Full).unwrap(), b"");
    assert_eq!(section(&raw, &[2], SectionKind::Full).unwrap(), b"body");
    assert_eq!(
        section(&raw, &[2], SectionKind::Mime).unwrap(),
        b"X-A: 1\r\n\r\n"
    );
    assert_eq!(
        section(&raw, &[3], SectionKind::Full).unwrap(),
        b"Subject: x\r\n\r\n"
    );
    assert_eq!(
        section(&raw, &[3], SectionKind::Header).unwrap(),
        b"Subject: x\r\n"
    );
    check_message("delimiters", &raw);

    // Delimiters are recognized at line starts only, by prefix, the
    // longest boundary winning; an outer delimiter closes inner parts.
    let raw = crlf(concat!(
        "Content-Type: multipart/mixed; boundary=a\n\n",
        "--a\nContent-Type: multipart/mixed; boundary=ab\n\n",
        "--ab\n\ninner text --ab not here\n",
        "--a\n\nsecond\n--a--\n",
    ));
    assert_eq!(
        section(&raw, &[1, 1], SectionKind::Full).unwrap(),
        b"inner text --ab not here"
    );
    assert_eq!(section(&raw, &[2], SectionKind::Full).unwrap(), b"second");
    check_message("prefix boundaries", &raw);
}

// -- Sections ------------------------------------------------------------------------

#[test]
fn part_numbers() {
    let raw = nested_message();
    let full = |part: &[u32]| {
        section(&raw, part, SectionKind::Full).map(|b| String::from_utf8(b).unwrap())
    };
    let of = |part: &[u32], kind| section(&raw, part, kind).map(|b| String::from_utf8(b).unwrap());
    assert_eq!(full(&[1]).unwrap(), "See the forwarded message.");
    assert_eq!(full(&[2, 1]).unwrap(), "Numbers\r\ngo up.");
    assert_eq!(full(&[2, 2]).unwrap(), "<p>Numbers go up.</p>");
    assert_eq!(full(&[3]).unwrap(), "JVBERi0xLjQK");
    assert!(full(&[2]).unwrap().starts_with("From: \"Carol, C.\""));
    assert!(full(&[2]).unwrap().ends_with("--inner--\r\n"));
    assert_eq!(
        of(&[2], SectionKind::Header).unwrap(),
        "From: \"Carol, C.\" <carol@example.com>\r\nSubject: report\r\nDate: Mon, 2 Jun 2025 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    );
    assert!(
        of(&[2], SectionKind::Text)
            .unwrap()
            .starts_with("--inner\r\n")
    );
    assert_eq!(
        of(&[2], SectionKind::Mime).unwrap(),
        "Content-Type: message/rfc822\r\nContent-Disposition: inline; filename=\"report.eml\"\r\n\r\n"
    );
    assert_eq!(
        of(&[2, 1], SectionKind::Mime).unwrap(),
        "Content-Type: text/plain\r\n\r\n"
    );
    assert_eq!(
        of(&[2], SectionKind::HeaderFields(names(&["subject"]))).unwrap(),
        "Subject: report\r\n\r\n"
    );
    // Parts that do not exist, and kinds that do not apply.
    for part in [&[0][..], &[4], &[1, 2], &[2, 3], &[2, 1, 2], &[3, 1, 1]] {
        assert_eq!(full(part), None, "{part:?}");
    }
    assert_eq!(of(&[1], SectionKind::Header), None);
    assert_eq!(of(&[1], SectionKind::Text), None);
    assert_eq!(of(&[3], SectionKind::HeaderFields(names(&["to"]))), None);
    // As in Dovecot, a leaf also answers to a trailing ".1".
    assert_eq!(full(&[1, 1]), full(&[1]));
    assert_eq!(full(&[2, 1, 1]), full(&[2, 1]));
}

#[test]
fn single_part_numbering() {
    let raw = crlf("Subject: one\n\nonly body\n");
    assert_eq!(
        section(&raw, &[1], SectionKind::Full).unwrap(),
        b"only body\r\n"
    );
    assert_eq!(
        section(&raw, &[1], SectionKind::Mime).unwrap(),
        b"Subject: one\r\n\r\n"
    );
    assert_eq!(section(&raw, &[2], SectionKind::Full), None);

    // A top-level message/rfc822: part 1 is the encapsulated message,
    // 1.1 its body.
    let raw = crlf("Content-Type: message/rfc822\n\nSubject: inner\n\ninner body\n");
    assert_eq!(
        section(&raw, &[1], SectionKind::Full).unwrap(),
        b"Subject: inner\r\n\r\ninner body\r\n"
    );
    assert_eq!(
        section(&raw, &[1], SectionKind::Header).unwrap(),
        b"Subject: inner\r\n\r\n"
    );
    assert_eq!(
        section(&raw, &[1, 1], SectionKind::Full).unwrap(),
        b"inner body\r\n"
    );
    check_message("top-level message/rfc822", &raw);
}

#[test]
fn encapsulated_message_numbering_in_the_corpus() {
    // message/rfc822 (part 2) holding alternative(html, alternative(
    // alternative(plain, plain), plain)).
    let raw = corpus_file("mailparser-dovecot-thirdparty-008.eml");
    let full = |part: &[u32]| section(&raw, part, SectionKind::Full).unwrap();
    assert_eq!(full(&[2, 1]), b"<p>Hello world</p>\n");
    assert_eq!(full(&[2, 2, 1, 1]), b"sub3 text");
    assert_eq!(full(&[2, 2, 1, 2]), b"sub3 text2");
    assert_eq!(full(&[2, 2, 2]), b"sub2 text2");
    assert_eq!(section(&raw, &[2, 2, 3], SectionKind::Full), None);
    assert_eq!(full(&[3]), b"Another part");
    let header = section(&raw, &[2], SectionKind::Header).unwrap();
    assert!(header.starts_with(b"From: sub@domain.org"));
    check_message("thirdparty-008", &raw);
}

#[test]
fn header_fields_are_byte_exact() {
    let raw = crlf(concat!(
        "Received: from a by b;\n Tue, 3 Jun 2025 10:00:00 +0200\n",
        "Subject: a long\n\tfolded subject\n",
        "X-Other: 1\n",
        "from: x@example.org\n",
        "\nbody\n",
    ));
    let fields = |kind| section(&raw, &[], kind).unwrap();
    assert_eq!(
        fields(SectionKind::HeaderFields(names(&["SUBJECT", "FROM"]))),
        b"Subject: a long\r\n\tfolded subject\r\nfrom: x@example.org\r\n\r\n"
    );
    assert_eq!(
        fields(SectionKind::HeaderFieldsNot(names(&["subject", "from"]))),
        b"Received: from a by b;\r\n Tue, 3 Jun 2025 10:00:00 +0200\r\nX-Other: 1\r\n\r\n"
    );
    assert_eq!(
        fields(SectionKind::HeaderFields(names(&["X-None"]))),
        b"\r\n"
    );

    // Line endings are kept as written; a last field without line
    // ending is completed.
    let raw = b"Subject: lf\n only\nTo: t@example.org".to_vec();
    assert_eq!(
        section(
            &raw,
            &[],
            SectionKind::HeaderFields(names(&["subject", "to"]))
        )
        .unwrap(),
        b"Subject: lf\n only\nTo: t@example.org\r\n\r\n"
    );
    // A line without colon is a nameless field: only in .NOT.
    let raw = crlf("From mbox line\nSubject: s\n\n");
    assert_eq!(
        section(&raw, &[], SectionKind::HeaderFieldsNot(names(&["subject"]))).unwrap(),
        b"From mbox line\r\n\r\n"
    );
}

#[test]
fn corpus_folded_subject_and_from() {
    // LF line endings and a Subject folded over three lines.
    let raw = corpus_file("cpython-msg_27.eml");
    let digits = "12345678911234567892123456789312345678941234567895123456789612345678971234567898\
                  112345678911234567892123456789112345678911234567892123456789";
    assert_eq!(
        String::from_utf8(
            section(
                &raw,
                &[],
                SectionKind::HeaderFields(names(&["SUBJECT", "FROM"]))
            )
            .unwrap()
        )
        .unwrap(),
        format!(
            "Subject: bug demonstration\n\t{digits}\n\tmore text\nFrom: aperson@dom.ain (Anne P. Erson)\n\r\n"
        )
    );
    // The envelope has it unfolded (and the comment as the name).
    assert!(envelope(&raw).starts_with(&format!(
        "(\"Tue, 4 Jun 2002 21:46:59 -0400\" \"bug demonstration {digits} more text\" \
         ((\"Anne P. Erson\" NIL \"aperson\" \"dom.ain\"))"
    )));
}

// -- Malformed input ---------------------------------------------------------------

#[test]
fn unparseable_input_gets_a_valid_structure() {
    let empty = r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)"#;
    assert_eq!(structure(b"", true), empty);
    assert_eq!(header_end(b""), 0);
    // No empty line: all header, as in Dovecot.
    let garbage = b"\x00\x01binary\xff\xfe garbage without line breaks";
    assert_eq!(structure(garbage, true), empty);
    assert_eq!(header_end(garbage), garbage.len());
    // An empty header: everything is text.
    let raw = b"\r\njust text\r\n";
    assert_eq!(
        structure(raw, true),
        r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 1 NIL NIL NIL NIL)"#
    );
    assert_eq!(
        section(raw, &[1], SectionKind::Full).unwrap(),
        b"just text\r\n"
    );

    let samples: [&[u8]; 12] = [
        b"",
        b"\n",
        b"\r\n\r\n",
        b"--",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
        b"Content-Type: multipart/mixed; boundary=\"unterminated\r\n\r\n--unterminated\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n--b--",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: (((\r\nFrom: <<<@@@>>> ,,, \"\\\r\nTo: :;:;:; (\r\n\r\n",
        b"From: =?utf-8?b?AAAA?= <\x00@\xff>\r\nSubject: \x00\r\n\r\n",
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n--d\r\n--d--\r\n",
    ];
    for (i, raw) in samples.iter().enumerate() {
        check_message(&format!("sample {i}"), raw);
    }
}

/// Pseudo-random bytes biased towards MIME syntax, and every prefix of
/// small corpus messages: nothing panics, every structure parses.
#[test]
fn malformed_input_never_panics() {
    let alphabet: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"--b",
        b"--b--",
        b"--",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: multipart/digest; boundary=\"b\"\r\n",
        b"From: ",
        b"<a@b>",
        b"\"",
        b"(",
        b")",
        b":",
        b";",
        b",",
        b" ",
        b"\t",
        b"x",
        b"\x00",
        b"\xff",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let len = next() % 60;
        let raw: Vec<u8> = (0..len)
            .flat_map(|_| alphabet[(next() % alphabet.len() as u64) as usize].to_vec())
            .collect();
        check_message("random", &raw);
    }
    for (name, raw) in corpus().iter().filter(|(_, raw)| raw.len() < 8192) {
        for cut in (0..raw.len()).step_by(raw.len() / 16 + 1) {
            check_message(name, &raw[..cut]);
        }
    }
}

// -- The corpus ----------------------------------------------------------------------

#[test]
fn every_corpus_message_is_consistent() {
    let mut total_parts = 0;
    for (name, raw) in corpus() {
        check_message(&name, &raw);
        total_parts += parts_of(&raw, true).len();
    }
    assert!(
        total_parts > 450,
        "only {total_parts} parts: MIME parsing is broken"
    );
}
