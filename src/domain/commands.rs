//! Mail commands: lines such as `#close` or `#assign bob` at the top of an
//! agent's mail, which change the ticket and are removed before anyone
//! else sees the mail.
//!
//! Only the leading block counts: blank lines and command lines up to the
//! first line of prose. A `#` further down is text (a ticket number, a
//! hashtag in a quote), and so is `#812` (no letter after the `#`).

use super::ticket::{Priority, Status};

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `#close`, `#resolve`, `#pending`, `#open`.
    Status(Status),
    /// `#priority urgent`.
    Priority(Priority),
    /// `#assign bob`, `#assign bob@example.test`, `#assign me`, `#take`.
    Assign(String),
    /// `#unassign`.
    Unassign,
    /// `#tag billing vip` (spaces or commas between tags).
    Tag(Vec<String>),
    /// `#untag billing`.
    Untag(Vec<String>),
    /// `#queue billing`.
    Queue(String),
    /// `#hold`: if any command fails, send nothing to the customer.
    Hold,
}

/// A command line as written, with its line number (from 1) and what it
/// means, or why it means nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub line: usize,
    pub text: String,
    pub parsed: Result<Command, String>,
}

/// The command block at the top of a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commands {
    pub lines: Vec<CommandLine>,
    /// How many leading lines the block spans (commands and the blank lines
    /// around them): the lines to remove. 0 when there are no commands.
    pub block_lines: usize,
}

/// Every command word, for error messages.
pub const KNOWN: &str = "#close, #resolve, #pending, #open, #priority LEVEL, #assign AGENT|me, \
#take, #unassign, #tag TAG…, #untag TAG…, #queue NAME, #hold";

impl Commands {
    /// Reads the command block of a message's text.
    pub fn read(text: &str) -> Commands {
        let mut lines = Vec::new();
        let mut block_lines = 0;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            if !is_command_line(trimmed) {
                break;
            }
            lines.push(CommandLine {
                line: index + 1,
                text: trimmed.to_string(),
                parsed: parse(trimmed),
            });
            block_lines = index + 1;
        }
        if lines.is_empty() {
            return Commands::default();
        }
        // The blank lines after the last command go too, so the text that
        // is left starts with its first word.
        block_lines += text
            .lines()
            .skip(block_lines)
            .take_while(|l| l.trim().is_empty())
            .count();
        Commands { lines, block_lines }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn hold(&self) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l.parsed, Ok(Command::Hold)))
    }

    /// "line N: problem" for every line that does not parse.
    pub fn errors(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|l| match &l.parsed {
                Ok(_) => None,
                Err(problem) => Some(format!("line {}: {}: {problem}", l.line, l.text)),
            })
            .collect()
    }

    /// The commands that parsed, in order.
    pub fn parsed(&self) -> impl Iterator<Item = (&CommandLine, &Command)> {
        self.lines
            .iter()
            .filter_map(|l| l.parsed.as_ref().ok().map(|c| (l, c)))
    }
}

/// The text without its first `lines` lines, line endings kept as they were.
pub fn strip_lines(text: &str, lines: usize) -> &str {
    if lines == 0 {
        return text;
    }
    let mut rest = text;
    for _ in 0..lines {
        match rest.find('\n') {
            Some(end) => rest = &rest[end + 1..],
            None => return "",
        }
    }
    rest
}

/// `#` and a letter: `#close` is a command line, `#812` and `# heading` are not.
pub fn is_command_line(trimmed: &str) -> bool {
    let mut chars = trimmed.chars();
    chars.next() == Some('#') && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
}

fn parse(line: &str) -> Result<Command, String> {
    let body = line.trim_start_matches('#');
    let (word, argument) = match body.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (body, ""),
    };
    let word = word.to_ascii_lowercase();
    let no_argument = |command: Command| {
        if argument.is_empty() {
            Ok(command)
        } else {
            Err(format!("#{word} takes no argument"))
        }
    };
    match word.as_str() {
        "close" | "closed" => no_argument(Command::Status(Status::Closed)),
        "resolve" | "resolved" | "solved" => no_argument(Command::Status(Status::Resolved)),
        "pending" | "wait" => no_argument(Command::Status(Status::Pending)),
        "open" | "reopen" => no_argument(Command::Status(Status::Open)),
        "unassign" => no_argument(Command::Unassign),
        "take" => no_argument(Command::Assign("me".into())),
        "hold" => no_argument(Command::Hold),
        "priority" | "prio" => match argument {
            "" => Err("which priority? (low, normal, high, urgent)".into()),
            level => level
                .parse::<Priority>()
                .map(Command::Priority)
                .map_err(|e| e.to_string()),
        },
        "assign" => match single_word(argument) {
            Some(agent) => Ok(Command::Assign(agent.to_string())),
            None => Err("#assign takes one agent: an address, a name before the @, or me".into()),
        },
        "queue" => match argument {
            "" => Err("which queue?".into()),
            name => Ok(Command::Queue(name.to_string())),
        },
        "tag" | "untag" => {
            let tags = tag_list(argument)?;
            Ok(if word == "tag" {
                Command::Tag(tags)
            } else {
                Command::Untag(tags)
            })
        }
        _ => Err(format!("unknown command (known: {KNOWN})")),
    }
}

fn single_word(argument: &str) -> Option<&str> {
    (!argument.is_empty() && !argument.contains(char::is_whitespace)).then_some(argument)
}

/// Tags become IMAP keywords (Thunderbird's tags), so they must be atoms:
/// letters, digits and `-_.:/`, lower-cased.
fn tag_list(argument: &str) -> Result<Vec<String>, String> {
    let tags: Vec<String> = argument
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    if tags.is_empty() {
        return Err("which tag?".into());
    }
    for tag in &tags {
        if !is_valid_tag(tag) {
            return Err(format!(
                "'{tag}' is not a tag: use up to 64 letters, digits, '-', '_', '.', ':' or '/'"
            ));
        }
    }
    Ok(tags)
}

pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && !tag.starts_with('\\')
        && tag
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Vec<Result<Command, String>> {
        Commands::read(text)
            .lines
            .into_iter()
            .map(|l| l.parsed)
            .collect()
    }

    #[test]
    fn every_command_parses() {
        let text = "#close\n#resolve\n#pending\n#open\n#priority Urgent\n#assign bob\n\
                    #take\n#unassign\n#tag billing, VIP\n#untag vip\n#queue billing\n#hold\n";
        assert_eq!(
            parsed(text),
            vec![
                Ok(Command::Status(Status::Closed)),
                Ok(Command::Status(Status::Resolved)),
                Ok(Command::Status(Status::Pending)),
                Ok(Command::Status(Status::Open)),
                Ok(Command::Priority(Priority::Urgent)),
                Ok(Command::Assign("bob".into())),
                Ok(Command::Assign("me".into())),
                Ok(Command::Unassign),
                Ok(Command::Tag(vec!["billing".into(), "vip".into()])),
                Ok(Command::Untag(vec!["vip".into()])),
                Ok(Command::Queue("billing".into())),
                Ok(Command::Hold),
            ]
        );
    }

    #[test]
    fn mistakes_are_explained_with_their_line() {
        let commands = Commands::read("\n#clsoe\n#priority hi\n#assign\n#tag a\\b\n#close now\n");
        let errors = commands.errors();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("line 2: #clsoe: unknown command (known: #close"));
        assert!(errors[1].contains("line 3") && errors[1].contains("unknown priority 'hi'"));
        assert!(errors[2].contains("#assign takes one agent"));
        assert!(errors[3].contains("'a\\b' is not a tag"));
        assert!(errors[4].contains("#close takes no argument"));
    }

    #[test]
    fn only_the_leading_block_is_read() {
        let text = "\r\n#close\r\n\r\n#tag x\r\n\r\nThanks, fixed in #812.\r\n#open\r\n";
        let commands = Commands::read(text);
        assert_eq!(commands.lines.len(), 2);
        assert_eq!(commands.block_lines, 5);
        assert_eq!(
            strip_lines(text, commands.block_lines),
            "Thanks, fixed in #812.\r\n#open\r\n"
        );
    }

    #[test]
    fn ticket_numbers_and_headings_are_not_commands() {
        assert!(Commands::read("#812 is the same problem\n#close\n").is_empty());
        assert!(Commands::read("# Summary\n").is_empty());
        assert!(Commands::read("Hello\n#close\n").is_empty());
        assert_eq!(Commands::read("no commands").block_lines, 0);
    }

    #[test]
    fn a_mail_of_only_commands_leaves_nothing() {
        let commands = Commands::read("#close\n\n");
        assert_eq!(strip_lines("#close\n\n", commands.block_lines), "");
        assert!(!commands.hold());
        assert!(Commands::read("#hold\n#close\n").hold());
    }
}
