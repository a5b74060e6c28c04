//! Framing client input into whole commands (lines and their literals),
//! around imap-codec's `Fragmentizer`.
//!
//! The fragmentizer is fed no further than the end of the command being
//! framed: up to the next line end, or exactly the rest of a literal. Bytes
//! the client pipelined beyond it wait here. So once a command is complete
//! the fragmentizer holds nothing else, and after a large command (an
//! APPEND of 50 MB) it can be replaced by a fresh one: otherwise its buffer
//! would keep the largest command's capacity for as long as the connection
//! lives. It also tells the length of the line being framed, which the
//! session limits.

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use imap_codec::imap_types::core::Tag;

/// After a command larger than this the fragmentizer is replaced, to give
/// its buffer back.
const SHRINK_ABOVE: usize = 256 * 1024;

pub struct Framer {
    fragments: Fragmentizer,
    max_message_size: u32,
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
        let max_message_size = u32::try_from(max_message_size).unwrap_or(u32::MAX);
        Framer {
            fragments: Fragmentizer::new(max_message_size),
            max_message_size,
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
                        self.literal_left = Some(literal.length as usize);
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
            self.input.drain(..take);
            if let Some(left) = &mut self.literal_left {
                *left -= take;
            }
        }
    }

    pub fn is_message_complete(&self) -> bool {
        self.fragments.is_message_complete()
    }

    pub fn message_bytes(&self) -> &[u8] {
        self.fragments.message_bytes()
    }

    pub fn fragment_bytes(&self, fragment: FragmentInfo) -> &[u8] {
        self.fragments.fragment_bytes(fragment)
    }

    /// The message was cut short (over the size limit) or poisoned.
    pub fn is_refused(&self) -> bool {
        self.fragments.is_max_message_size_exceeded() || self.fragments.is_message_poisoned()
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
            None => Some(
                self.fragments
                    .message_bytes()
                    .len()
                    .saturating_sub(self.line_start),
            ),
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
        self.pending = self.input.len();
        if self.fragments.message_bytes().len() > SHRINK_ABOVE {
            // Nothing beyond the command was fed: a fresh one loses nothing.
            self.fragments = Fragmentizer::new(self.max_message_size);
        }
    }

    /// After STARTTLS: what was read in clear text is dropped (RFC 3501
    /// §6.2.1).
    pub fn reset(&mut self) {
        self.fragments = Fragmentizer::new(self.max_message_size);
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
                out.push(framer.message_bytes().to_vec());
                framer.end_of_message();
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
