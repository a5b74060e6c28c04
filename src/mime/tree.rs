//! The MIME tree of a raw message: every part with the offsets of its
//! header and body, and the part numbers that name them.
//!
//! The split follows Dovecot's message parser, so that part sizes, part
//! numbers and the bytes of each part agree with what mail clients know
//! from Dovecot:
//!
//! * a delimiter is a line starting with `--` and one of the boundaries of
//!   the enclosing multiparts; only a prefix has to match (the longest
//!   matching boundary wins, the innermost among equals), and a delimiter of
//!   an outer multipart also ends the inner parts (and even a header);
//! * the line ending before a delimiter belongs to the delimiter, not to
//!   the part's body;
//! * message/rfc822 is parsed as a message whatever its transfer encoding;
//! * the children of multipart/digest default to message/rfc822.
//!
//! mail-parser is not used here: its part offsets differ from Dovecot's
//! (nested message/rfc822 sizes off by the final line ending, boundaries
//! recognized in mid-line, a whitespace-only first line taken as the end of
//! the header), which would make the sizes IMAP reports disagree with the
//! bytes it serves for a part.

use super::content_type::content_type_of;
use super::header::{blank_line_len, line_end};
use super::slice;
use std::ops::Range;

/// Deepest nesting (multipart or message/rfc822 levels) parsed as
/// structure. Deeper parts are leaves (their body is opaque); this bounds
/// the recursion on hostile input (Dovecot's limit, also 100).
pub const MAX_DEPTH: usize = 100;

/// Most MIME parts looked for in one message (Dovecot's limit): past it,
/// delimiter lines are no longer recognized and the rest of the message is
/// body of the part at hand. Bounds time and memory on hostile input.
pub const MAX_PARTS: usize = 10_000;

/// One MIME part (or a whole message): `start..body.start` is its header
/// (the MIME header, or the message header for a message) including the
/// empty line ending it, `body` its body, both offsets into the raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub start: usize,
    pub body: Range<usize>,
    /// A child of multipart/digest, whose default type is message/rfc822.
    pub in_digest: bool,
    pub kind: PartKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// A part with an opaque body: not multipart or message/rfc822, or
    /// nested past [`MAX_DEPTH`], or cut short by a delimiter in its header.
    Leaf,
    /// A multipart. Without children when none could be found (no boundary
    /// parameter, or no boundary line in the body).
    Multipart(Vec<Part>),
    /// A message/rfc822 part and the encapsulated message in its body.
    Message(Box<Part>),
}

impl Part {
    /// Parses a whole message.
    pub fn parse(raw: &[u8]) -> Part {
        Walker {
            raw,
            boundaries: Vec::new(),
            parts: 0,
        }
        .part(0, false, 0)
        .0
    }

    pub fn header(&self) -> Range<usize> {
        self.start..self.body.start
    }

    /// The bytes of the header (with the empty line ending it) in `raw`,
    /// the message this part was parsed from.
    pub fn header_bytes<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        slice(raw, self.header())
    }

    /// The bytes of the body in `raw`, the message this part was parsed from.
    pub fn body_bytes<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        slice(raw, self.body.clone())
    }

    /// The part a non-empty part path names (`[2, 1]` for part 2.1), numbered
    /// as IMAP numbers them (RFC 3501 §6.4.5) and found as Dovecot finds
    /// them: a number picks a child of a multipart; any other part only has
    /// part 1, itself (which is how part 1 of a single-part message is its
    /// body); a message/rfc822 part followed by more numbers is entered, so
    /// the next number applies to the encapsulated message. As in Dovecot a
    /// leaf also answers to one trailing `.1` (2.1 of a leaf part 2 is
    /// part 2). `None` for the empty path and parts that do not exist.
    pub fn resolve(&self, path: &[u32]) -> Option<&Part> {
        let mut node = self;
        for (i, &number) in path.iter().enumerate() {
            let more = i + 1 < path.len();
            node = match &node.kind {
                PartKind::Multipart(children) => child(children, number)?,
                _ if number != 1 => return None,
                PartKind::Leaf if more => return None,
                _ => node,
            };
            if let (true, PartKind::Message(inner)) = (more, &node.kind) {
                node = inner;
            }
        }
        (!path.is_empty()).then_some(node)
    }
}

fn child(children: &[Part], number: u32) -> Option<&Part> {
    let index = usize::try_from(number).ok()?.checked_sub(1)?;
    children.get(index)
}

/// A boundary line found while scanning.
#[derive(Clone, Copy)]
struct Delimiter {
    /// Index in [`Walker::boundaries`] of the multipart it belongs to.
    level: usize,
    /// Offset after the line (after its LF).
    next: usize,
    /// A close delimiter `--boundary--`.
    close: bool,
}

/// Splits a message into parts (see the module documentation).
struct Walker<'a> {
    raw: &'a [u8],
    /// Boundaries of the enclosing multiparts, innermost last.
    boundaries: Vec<Vec<u8>>,
    /// Parts found so far (see [`MAX_PARTS`]).
    parts: usize,
}

impl Walker<'_> {
    /// Parses the part starting at `start`. Returns it, the offset where it
    /// ends for its parent (usually its body's end) and the delimiter that
    /// ended it (`None` at the end of input).
    fn part(
        &mut self,
        start: usize,
        in_digest: bool,
        depth: usize,
    ) -> (Part, usize, Option<Delimiter>) {
        self.parts += 1;
        let (body_start, cut) = self.header(start, depth);
        let content_type = content_type_of(slice(self.raw, start..body_start));
        let is_message = match &content_type {
            Some(content_type) => content_type.is_message_rfc822(),
            None => in_digest,
        };
        let multipart = content_type
            .as_ref()
            .filter(|content_type| content_type.is_multipart());
        let node = |end: usize, kind| Part {
            start,
            body: body_start..end,
            in_digest,
            kind,
        };

        if let Some((end, delimiter)) = cut {
            let kind = if depth >= MAX_DEPTH {
                PartKind::Leaf
            } else if is_message {
                PartKind::Message(Box::new(Part {
                    start: body_start,
                    body: body_start..body_start,
                    in_digest: false,
                    kind: PartKind::Leaf,
                }))
            } else if multipart.is_some() {
                PartKind::Multipart(Vec::new())
            } else {
                PartKind::Leaf
            };
            return (node(body_start, kind), end, Some(delimiter));
        }
        if depth >= MAX_DEPTH {
            let (end, stop) = self.body(body_start);
            return (node(end, PartKind::Leaf), end, stop);
        }
        if is_message {
            let (inner, end, stop) = self.part(body_start, false, depth + 1);
            return (node(end, PartKind::Message(Box::new(inner))), end, stop);
        }
        if let Some(multipart) = multipart {
            let (children, end, stop) = match multipart.boundary() {
                Some(boundary) => {
                    self.children(body_start, boundary.to_vec(), multipart.is_digest(), depth)
                }
                None => {
                    let (end, stop) = self.body(body_start);
                    (Vec::new(), end, stop)
                }
            };
            return (node(end, PartKind::Multipart(children)), end, stop);
        }
        let (end, stop) = self.body(body_start);
        (node(end, PartKind::Leaf), end, stop)
    }

    /// The children of a multipart whose body starts at `body_start`: the
    /// preamble is skipped, each delimiter of this multipart starts a child,
    /// its close delimiter starts the epilogue, which runs to a delimiter of
    /// an outer multipart or the end. Returns the children, the end of the
    /// multipart's body and the delimiter that ended it.
    fn children(
        &mut self,
        body_start: usize,
        boundary: Vec<u8>,
        digest: bool,
        depth: usize,
    ) -> (Vec<Part>, usize, Option<Delimiter>) {
        let level = self.boundaries.len();
        self.boundaries.push(boundary);
        let mut children = Vec::new();
        let (mut end, mut stop) = self.body(body_start);
        while let Some(delimiter) = stop.filter(|delimiter| delimiter.level == level) {
            if delimiter.close {
                self.boundaries.truncate(level);
                (end, stop) = self.body(delimiter.next);
                break;
            }
            let child;
            (child, end, stop) = self.part(delimiter.next, digest, depth + 1);
            children.push(child);
        }
        self.boundaries.truncate(level);
        (children, end, stop)
    }

    /// Scans a header block from `start` to its empty line; returns where
    /// the body starts. A delimiter ends the header early and leaves the
    /// part without body; then also returns where the part ends for its
    /// parent and the delimiter. As in Dovecot, the line break before the
    /// delimiter is not part of the header but of the parent's body, and an
    /// empty line directly followed by a delimiter counts as that line
    /// break, not as the end of the header, unless the delimiter is the
    /// part's own (a multipart whose body starts with its first delimiter).
    fn header(&mut self, start: usize, depth: usize) -> (usize, Option<(usize, Delimiter)>) {
        let mut pos = start;
        while let Some(rest) = self.raw.get(pos..).filter(|rest| !rest.is_empty()) {
            if let Some(delimiter) = self.delimiter_at(pos) {
                return (self.line_break_before(pos, start), Some((pos, delimiter)));
            }
            if let Some(blank) = blank_line_len(rest) {
                let after = pos + blank;
                return match self.outer_delimiter_at(after, slice(self.raw, start..after), depth) {
                    Some(delimiter) => (pos, Some((after, delimiter))),
                    None => (after, None),
                };
            }
            pos = line_end(self.raw, pos);
        }
        (self.raw.len().max(start), None)
    }

    /// The delimiter at `pos` unless it belongs to the multipart whose
    /// complete `header` precedes it (its boundary competes with the outer
    /// ones, as the longest match wins).
    fn outer_delimiter_at(&mut self, pos: usize, header: &[u8], depth: usize) -> Option<Delimiter> {
        let level = self.boundaries.len();
        let own = content_type_of(header)
            .filter(|content_type| content_type.is_multipart() && depth < MAX_DEPTH)
            .and_then(|content_type| content_type.boundary().map(<[u8]>::to_vec));
        self.boundaries.extend(own);
        let delimiter = self
            .delimiter_at(pos)
            .filter(|delimiter| delimiter.level < level);
        self.boundaries.truncate(level);
        delimiter
    }

    /// Scans a body from `from` to the next delimiter line; returns where
    /// the body ends (before the line break preceding the delimiter, which
    /// belongs to the delimiter) and the delimiter, or the end of input.
    fn body(&self, from: usize) -> (usize, Option<Delimiter>) {
        let mut pos = from;
        while pos < self.raw.len() {
            if let Some(delimiter) = self.delimiter_at(pos) {
                return (self.line_break_before(pos, from), Some(delimiter));
            }
            pos = line_end(self.raw, pos);
        }
        (self.raw.len().max(from), None)
    }

    /// `pos` moved back over the LF or CRLF just before it, not below
    /// `floor`.
    fn line_break_before(&self, pos: usize, floor: usize) -> usize {
        let before = |at: usize, byte: u8| at > floor && self.raw.get(at - 1) == Some(&byte);
        if !before(pos, b'\n') {
            return pos;
        }
        if before(pos - 1, b'\r') {
            pos - 2
        } else {
            pos - 1
        }
    }

    /// The delimiter on the line starting at `pos`, if it is one.
    fn delimiter_at(&self, pos: usize) -> Option<Delimiter> {
        if self.parts >= MAX_PARTS {
            return None;
        }
        let next = line_end(self.raw, pos);
        let line = slice(self.raw, pos..next);
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let text = line.strip_prefix(b"--")?;
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let (level, len) = self.matching_boundary(text)?;
        let close = text.get(len..len + 2) == Some(b"--");
        Some(Delimiter { level, next, close })
    }

    /// The longest boundary `text` starts with (the innermost one among
    /// equally long ones), as (level, length).
    fn matching_boundary(&self, text: &[u8]) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for (level, boundary) in self.boundaries.iter().enumerate().rev() {
            if text.starts_with(boundary) && best.is_none_or(|(_, len)| len < boundary.len()) {
                best = Some((level, boundary.len()));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    /// The body bytes of a part path, as text.
    fn body(raw: &[u8], tree: &Part, path: &[u32]) -> Option<String> {
        tree.resolve(path)
            .map(|part| String::from_utf8_lossy(part.body_bytes(raw)).into_owned())
    }

    #[test]
    fn a_single_part_message_is_its_body() {
        let raw = crlf("Subject: one\n\nonly body\n");
        let tree = Part::parse(&raw);
        assert_eq!(tree.kind, PartKind::Leaf);
        assert_eq!(tree.header_bytes(&raw), b"Subject: one\r\n\r\n");
        assert_eq!(body(&raw, &tree, &[1]).as_deref(), Some("only body\r\n"));
        assert_eq!(body(&raw, &tree, &[1, 1]), None);
        assert_eq!(tree.resolve(&[]), None);
        assert_eq!(tree.resolve(&[2]), None);
        assert_eq!(tree.resolve(&[1, 1, 1]), None);
    }

    #[test]
    fn multiparts_and_encapsulated_messages() {
        let raw = crlf(concat!(
            "Content-Type: multipart/mixed; boundary=outer\n\n",
            "preamble\n--outer\n\nfirst\n--outer\n",
            "Content-Type: message/rfc822\n\n",
            "Subject: inner\nContent-Type: multipart/alternative; boundary=inner\n\n",
            "--inner\n\nplain\n--inner\n\nhtml\n--inner--\n",
            "--outer--\nepilogue\n",
        ));
        let tree = Part::parse(&raw);
        let PartKind::Multipart(children) = &tree.kind else {
            panic!("{tree:?}");
        };
        assert_eq!(children.len(), 2);
        assert_eq!(body(&raw, &tree, &[1]).as_deref(), Some("first"));
        assert_eq!(body(&raw, &tree, &[2, 1]).as_deref(), Some("plain"));
        assert_eq!(body(&raw, &tree, &[2, 2]).as_deref(), Some("html"));
        assert_eq!(body(&raw, &tree, &[2, 3]), None);
        let message = tree.resolve(&[2]).map(|part| &part.kind);
        let Some(PartKind::Message(inner)) = message else {
            panic!("{message:?}");
        };
        assert!(inner.header_bytes(&raw).starts_with(b"Subject: inner\r\n"));
        // The line break before a delimiter belongs to the delimiter (but
        // not the one ending the inner close delimiter, which stands right
        // before it); the epilogue is body of the multipart.
        let encapsulated = body(&raw, &tree, &[2]).unwrap_or_default();
        assert!(
            encapsulated.starts_with("Subject: inner") && encapsulated.ends_with("--inner--\r\n"),
            "{encapsulated:?}"
        );
        assert!(tree.body_bytes(&raw).ends_with(b"epilogue\r\n"));
    }

    #[test]
    fn digest_children_default_to_messages() {
        let raw = crlf(concat!(
            "Content-Type: multipart/digest; boundary=d\n\n",
            "--d\n\nSubject: a\n\nbody a\n",
            "--d\nContent-Type: text/plain\n\nnot a message\n--d--\n",
        ));
        let tree = Part::parse(&raw);
        let kinds: Vec<bool> = [1, 2]
            .iter()
            .filter_map(|&n| tree.resolve(&[n]))
            .map(|part| part.in_digest && matches!(part.kind, PartKind::Message(_)))
            .collect();
        assert_eq!(kinds, [true, false]);
        assert_eq!(body(&raw, &tree, &[1, 1]).as_deref(), Some("body a"));
    }

    #[test]
    fn nesting_and_part_count_are_limited() {
        let depth = MAX_DEPTH + 5;
        let mut raw = Vec::new();
        for _ in 0..depth {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"\r\nbody\r\n");
        let mut levels = 0;
        let tree = Part::parse(&raw);
        let mut node = &tree;
        while let PartKind::Message(inner) = &node.kind {
            levels += 1;
            node = inner;
        }
        assert_eq!(levels, MAX_DEPTH);

        let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for _ in 0..MAX_PARTS + 10 {
            raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        let tree = Part::parse(&raw);
        let PartKind::Multipart(children) = &tree.kind else {
            panic!("not a multipart");
        };
        assert_eq!(children.len(), MAX_PARTS - 1);
    }

    #[test]
    fn malformed_input_gives_a_tree() {
        for raw in [
            &b""[..],
            b"--",
            b"\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n--b--",
            b"Content-Type: message/rfc822\r\n\r\n",
        ] {
            let tree = Part::parse(raw);
            assert!(tree.body.end <= raw.len() && tree.start <= tree.body.start);
        }
    }
}
