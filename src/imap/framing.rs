//! Framing client input into whole commands (lines and their literals),
//! around imap-codec's `Fragmentizer`.
//!
//! The fragmentizer is fed no further than the end of the command being
//! framed: up to the next line end, or exactly the rest of a literal. Bytes
//! the client pipelined beyond it wait here, so the command's bytes are
//! exactly what was fed. It also tells the length of the line being
//! framed, which the session limits.
//!
//! The command's bytes are collected here, not in the fragmentizer (which
//! keeps only its first few KiB, for the tag): a literal's room is reserved
//! once when it is announced, and the finished command is handed over
//! without a copy. A 48 MiB APPEND peaked at 349 MiB of server memory with
//! the fragmentizer's buffer and its copy; see the README's limits.

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use imap_codec::imap_types::core::Tag;

/// What the fragmentizer itself keeps of a command: enough for its tag.
const FRAGMENTIZER_KEEPS: u32 = 4096;

pub struct Framer {
    fragments: Fragmentizer,
    max_message_size: usize,
    /// The command framed so far.
    message: Vec<u8>,
    /// It grew past `max_message_size`: the rest is read and dropped.
    too_long: bool,
    /// Read from the client, not yet fed to the fragmentizer.
    input: Vec<u8>,
    /// Bytes read toward the command being framed (0: between commands).
    pending: usize,
    /// Where the line being framed starts in the command's bytes.
    line_start: usize,
    /// Bytes of the literal being read still to come; None: a line is.
    literal_left: Option<usize>,
}

impl Framer {
    pub fn new(max_message_size: usize) -> Framer {
        Framer {
            fragments: Fragmentizer::new(FRAGMENTIZER_KEEPS),
            max_message_size,
            message: Vec::new(),
            too_long: false,
            input: Vec::new(),
            pending: 0,
            line_start: 0,
            literal_left: None,
        }
    }

    /// Bytes just read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending += bytes.len();
        self.input.extend_from_slice(bytes);
    }

    /// The next fragment of the command, feeding the fragmentizer as far
    /// as the command goes; None when more input is needed.
    pub fn next(&mut self) -> Option<FragmentInfo> {
        loop {
            if let Some(fragment) = self.fragments.progress() {
                match fragment {
                    FragmentInfo::Line {
                        announcement: Some(literal),
                        end,
                        ..
                    } => {
                        self.line_start = end;
                        let length = literal.length as usize;
                        self.literal_left = Some(length);
                        if self.message.len().saturating_add(length) <= self.max_message_size {
                            self.message.reserve_exact(length);
                        }
                    }
                    FragmentInfo::Literal { end, .. } => {
                        self.line_start = end;
                        self.literal_left = None;
                    }
                    FragmentInfo::Line { .. } => {}
                }
                return Some(fragment);
            }
            let take = match self.literal_left {
                Some(left) => left.min(self.input.len()),
                None => self
                    .input
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(self.input.len(), |end| end + 1),
            };
            if take == 0 {
                return None;
            }
            self.fragments.enqueue_bytes(&self.input[..take]);
            if self.message.len() + take <= self.max_message_size {
                self.message.extend_from_slice(&self.input[..take]);
            } else {
                self.too_long = true;
            }
            self.input.drain(..take);
            if let Some(left) = &mut self.literal_left {
                *left -= take;
            }
        }
    }

    pub fn is_message_complete(&self) -> bool {
        self.fragments.is_message_complete()
    }

    /// The command framed so far (cut at the size limit).
    pub fn message_bytes(&self) -> &[u8] {
        &self.message
    }

    /// The finished command, handed over whole (no copy); the framer
    /// starts the next one.
    pub fn take_message(&mut self) -> Vec<u8> {
        let message = std::mem::take(&mut self.message);
        self.end_of_message();
        message
    }

    pub fn fragment_bytes(&self, fragment: FragmentInfo) -> &[u8] {
        let range = fragment.range();
        let end = range.end.min(self.message.len());
        &self.message[range.start.min(end)..end]
    }

    /// The message was cut short (over the size limit) or poisoned.
    pub fn is_refused(&self) -> bool {
        self.too_long || self.fragments.is_message_poisoned()
    }

    /// A synchronizing literal was refused: the client sends no data, the
    /// next line is a new command.
    pub fn skip_message(&mut self) {
        self.fragments.skip_message();
        self.end_of_message();
    }

    /// A non-synchronizing literal that cannot be taken: its data is read
    /// and dropped, and the command fails.
    pub fn poison_message(&mut self) {
        self.fragments.poison_message();
    }

    pub fn decode_tag(&self) -> Option<Tag<'_>> {
        self.fragments.decode_tag()
    }

    /// Whether a line (not a literal) is being framed, and how long it is.
    pub fn line_so_far(&self) -> Option<usize> {
        match self.literal_left {
            Some(_) => None,
            None => Some(self.message.len().saturating_sub(self.line_start)),
        }
    }

    /// Bytes read toward the command being framed (0: between commands).
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The command was taken (or refused): the next one starts with what
    /// the client pipelined after it.
    pub fn end_of_message(&mut self) {
        self.line_start = 0;
        self.literal_left = None;
        self.too_long = false;
        self.pending = self.input.len();
        self.message.clear();
        if self.message.capacity() > 64 * 1024 {
            // A large command's room goes back (a taken message left none).
            self.message = Vec::new();
        }
    }

    /// After STARTTLS: what was read in clear text is dropped (RFC 3501
    /// §6.2.1).
    pub fn reset(&mut self) {
        self.fragments = Fragmentizer::new(FRAGMENTIZER_KEEPS);
        self.message = Vec::new();
        self.too_long = false;
        self.input = Vec::new();
        self.pending = 0;
        self.line_start = 0;
        self.literal_left = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames everything pushed so far into whole messages.
    fn messages(framer: &mut Framer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while framer.next().is_some() {
            if framer.is_message_complete() {
                out.push(framer.take_message());
            }
        }
        out
    }

    #[test]
    fn pipelined_commands_wait_outside_the_fragmentizer() {
        let mut framer = Framer::new(1 << 20);
        framer.push(b"a1 NOOP\r\na2 LOGIN {3+}\r\nbob {6+}\r\nsecret\r\na3 NO");
        assert_eq!(
            messages(&mut framer),
            [
                b"a1 NOOP\r\n".to_vec(),
                b"a2 LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n".to_vec()
            ]
        );
        assert_eq!(framer.pending(), 5, "a3's start waits");
        assert_eq!(framer.line_so_far(), Some(5));
        framer.push(b"OP\r\n");
        assert_eq!(messages(&mut framer), [b"a3 NOOP\r\n".to_vec()]);
    }

    #[test]
    fn a_large_command_gives_its_buffer_back_and_what_follows_is_kept() {
        let mut framer = Framer::new(4 << 20);
        let mut input = format!("a1 APPEND Drafts {{{}+}}\r\n", 1 << 20).into_bytes();
        input.extend(std::iter::repeat_n(b'x', 1 << 20));
        input.extend_from_slice(b"\r\na2 NOOP\r\n");
        framer.push(&input);
        let framed = messages(&mut framer);
        assert_eq!(framed.len(), 2);
        assert!(framed[0].len() > 1 << 20);
        assert_eq!(framed[1], b"a2 NOOP\r\n");
    }

    #[test]
    fn a_literal_is_fed_exactly_even_when_it_holds_line_ends() {
        let mut framer = Framer::new(1 << 20);
        framer.push(b"a1 LOGIN {4}\r\n");
        assert!(framer.next().is_some());
        assert_eq!(framer.line_so_far(), None, "a literal is expected");
        framer.push(b"a\nb\n x\r\n");
        assert_eq!(
            messages(&mut framer),
            [b"a1 LOGIN {4}\r\na\nb\n x\r\n".to_vec()]
        );
    }
}
