//! Mail commands: lines such as `#close` or `#assign bob` at the top of an
//! agent's mail, which change the ticket and are removed before anyone
//! else sees the mail.
//!
//! Only the leading block counts: blank lines and command lines up to the
//! first line of prose. A `#` further down is text (a ticket number, a
//! hashtag in a quote), and so is `#812` (no letter after the `#`).
//!
//! A command line takes only the arguments its command expects: a line
//! that does not parse as one (`#tag vipHi Heidi, we are on it.`, `#close
//! now`) is prose, the first line of the text, never a failed command
//! that swallows the agent's words. A line that is plainly meant as a
//! command but is wrong (`#clsoe` alone, `#priority soon`) is a mistake,
//! reported to the agent.

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
    // Team work by mail (issue 20, collisions and Cc).
    /// `#send`: send this reply even though the ticket changed after the
    /// message it answers (a held reply, sent again after reading).
    Send,
    /// `#cc add x@y`: x@y takes part in the ticket (and gets this reply).
    CcAdd(String),
    /// `#cc remove x@y`: x@y no longer takes part (nor gets this reply).
    CcRemove(String),
    // Issue 20, merge and time: the ticket's mail moves, time is recorded.
    /// `#merge 42`: this ticket's mail, tags and history move into #42.
    Merge(i64),
    /// `#split` (in a reply to a customer's message): that message and the
    /// sender's later ones move into a new linked ticket.
    Split,
    /// `#time 15m`: minutes spent on the ticket.
    Time(u32),
    /// `#template refund`: the queue's template of that name goes where
    /// the command was (submission inserts it; a name of several words is
    /// the rest of the line).
    Template(String),
    // Knowledge base (issue 19).
    /// `#kb 42`: article 42's text goes into the reply where the line was.
    KbInsert(i64),
    /// `#kb draft`: a draft article from the ticket's conversation.
    KbDraft,
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
#take, #unassign, #tag TAG…, #untag TAG…, #queue NAME, #hold, #send, #cc add|remove ADDRESS, #merge N, #split, #time 15m, #template NAME, #kb ARTICLE, #kb draft";

/// The most tags one `#tag` or `#untag` line takes: a longer list is a
/// sentence, not tags.
pub const MAX_TAGS_PER_LINE: usize = 5;

/// What one line at the top of a mail is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineMeaning {
    Command(Command),
    /// Meant as a command, but wrong: why.
    Mistake(String),
    /// Not a command: the agent's text begins here.
    Text,
}

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
            let parsed = match meaning(trimmed) {
                LineMeaning::Text => break,
                LineMeaning::Command(command) => Ok(command),
                LineMeaning::Mistake(why) => Err(why),
            };
            lines.push(CommandLine {
                line: index + 1,
                text: trimmed.to_string(),
                parsed,
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

    /// `#send`: the agent read what changed and sends anyway.
    pub fn send(&self) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l.parsed, Ok(Command::Send)))
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

/// Whether a (trimmed) line is part of a command block: a command, or a
/// mistake in one. Prose that starts with `#` is not.
pub fn is_command_line(trimmed: &str) -> bool {
    !matches!(meaning(trimmed), LineMeaning::Text)
}

/// What a trimmed line means at the top of a mail. Only `#` and a letter
/// can start a command: `#812` and `# heading` are text.
pub fn meaning(line: &str) -> LineMeaning {
    let mut chars = line.chars();
    if chars.next() != Some('#') || !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return LineMeaning::Text;
    }
    let body = &line[1..];
    let (word, argument) = match body.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (body, ""),
    };
    let words: Vec<&str> = argument.split_whitespace().collect();
    let word = word.to_ascii_lowercase();
    let command = |command: Command| LineMeaning::Command(command);
    let mistake = |why: String| LineMeaning::Mistake(why);
    // A command without arguments followed by words is a sentence.
    let alone = |c: Command| {
        if words.is_empty() {
            command(c)
        } else {
            LineMeaning::Text
        }
    };
    match word.as_str() {
        "close" | "closed" => alone(Command::Status(Status::Closed)),
        "resolve" | "resolved" | "solved" => alone(Command::Status(Status::Resolved)),
        "pending" | "wait" => alone(Command::Status(Status::Pending)),
        "open" | "reopen" => alone(Command::Status(Status::Open)),
        "unassign" => alone(Command::Unassign),
        "take" => alone(Command::Assign("me".into())),
        "hold" => alone(Command::Hold),
        "priority" | "prio" => match words.as_slice() {
            [] => mistake("which priority? (low, normal, high, urgent)".into()),
            [level] => match level.parse::<Priority>() {
                Ok(priority) => command(Command::Priority(priority)),
                Err(e) if is_plain_word(level) => mistake(e.to_string()),
                Err(_) => LineMeaning::Text,
            },
            _ => LineMeaning::Text,
        },
        "assign" => match words.as_slice() {
            [] => mistake("#assign takes one agent: an address, a name before the @, or me".into()),
            [agent] => command(Command::Assign((*agent).to_string())),
            _ => LineMeaning::Text,
        },
        "queue" => match words.as_slice() {
            [] => mistake("which queue?".into()),
            [name] => command(Command::Queue((*name).to_string())),
            _ => LineMeaning::Text,
        },
        "send" => alone(Command::Send),
        "cc" => match words.as_slice() {
            [] => mistake("#cc add ADDRESS or #cc remove ADDRESS".into()),
            [verb, address] if is_plain_word(verb) => {
                let verb = verb.to_ascii_lowercase();
                let address = address.trim_matches(|c| c == '<' || c == '>');
                let plausible = super::address::split(&address.to_lowercase()).is_some();
                match verb.as_str() {
                    "add" | "remove" if !plausible => {
                        mistake(format!("'{address}' is not a mail address"))
                    }
                    "add" => command(Command::CcAdd(address.to_lowercase())),
                    "remove" | "rm" | "del" => command(Command::CcRemove(address.to_lowercase())),
                    _ => mistake(format!(
                        "#cc {verb}: write #cc add ADDRESS or #cc remove ADDRESS"
                    )),
                }
            }
            [verb] if is_plain_word(verb) => {
                mistake("#cc add ADDRESS or #cc remove ADDRESS: which address?".into())
            }
            _ => LineMeaning::Text,
        },
        "template" => match words.as_slice() {
            [] => mistake("which template? (#template NAME)".into()),
            _ => command(Command::Template(argument.to_string())),
        },
        // Knowledge base (issue 19).
        "kb" => match words.as_slice() {
            [] => {
                mistake("which article? #kb 42 inserts article 42, #kb draft writes a draft".into())
            }
            [word] if word.eq_ignore_ascii_case("draft") => command(Command::KbDraft),
            [number] => match number.trim_start_matches('#').parse::<i64>() {
                Ok(id) if id > 0 => command(Command::KbInsert(id)),
                _ if is_plain_word(number) || number.starts_with(|c: char| c.is_ascii_digit()) => {
                    mistake(format!(
                        "'{number}' is no article number (#kb 42, #kb draft)"
                    ))
                }
                _ => LineMeaning::Text,
            },
            _ => LineMeaning::Text,
        },
        "tag" | "untag" => match tag_list(argument) {
            Some(tags) if tags.is_empty() => mistake("which tag?".into()),
            Some(tags) if word == "tag" => command(Command::Tag(tags)),
            Some(tags) => command(Command::Untag(tags)),
            None => LineMeaning::Text,
        },
        // Issue 20, merge and time.
        "merge" => match words.as_slice() {
            [] => mistake("into which ticket? e.g. #merge 42".into()),
            [number] => match number.trim_start_matches('#').parse::<i64>() {
                Ok(n) if n > 0 => command(Command::Merge(n)),
                _ => mistake(format!(
                    "'{number}' is not a ticket number: #merge 42 moves this ticket into #42"
                )),
            },
            _ => LineMeaning::Text,
        },
        "split" => alone(Command::Split),
        "time" => match super::time_spent::parse_minutes(argument) {
            Ok(minutes) => command(Command::Time(minutes)),
            // One word, or a number and a unit: meant as a duration.
            Err(why) if words.len() <= 1 || words[0].starts_with(|c: char| c.is_ascii_digit()) => {
                mistake(why)
            }
            Err(_) => LineMeaning::Text,
        },
        // An unknown word alone on its line is a mistyped command; with
        // more words after it, a sentence that starts with a hashtag.
        _ if words.is_empty() => mistake(format!("unknown command (known: {KNOWN})")),
        _ => LineMeaning::Text,
    }
}

/// A word of letters only, as a mistyped argument is (`soon`, not `now.`).
fn is_plain_word(word: &str) -> bool {
    word.chars().all(|c| c.is_alphabetic())
}

/// The tags of a `#tag` line (spaces or commas between them), or None
/// when the line is not a list of tags: more than [`MAX_TAGS_PER_LINE`],
/// or a word that is not a tag as written (capitals, punctuation).
fn tag_list(argument: &str) -> Option<Vec<String>> {
    let tags: Vec<String> = argument
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let all_tags = tags.iter().all(|t| is_command_tag(t));
    (all_tags && tags.len() <= MAX_TAGS_PER_LINE).then_some(tags)
}

/// A tag as a mail command writes it: a lowercase word of letters and
/// digits, joined by `-` or `_` (`vip`, `delivery-failed`), at most 64
/// bytes.
pub fn is_command_tag(tag: &str) -> bool {
    tag.len() <= 64
        && tag.chars().next().is_some_and(|c| c.is_alphanumeric())
        && tag
            .chars()
            .all(|c| (c.is_alphanumeric() && !c.is_uppercase()) || matches!(c, '-' | '_'))
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
                    #take\n#unassign\n#tag billing, vip\n#untag vip\n#queue billing\n#hold\n";
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
        let text = "#merge 42\n#merge #43\n#split\n#time 15m\n#time 1h 30m\n";
        assert_eq!(
            parsed(text),
            vec![
                Ok(Command::Merge(42)),
                Ok(Command::Merge(43)),
                Ok(Command::Split),
                Ok(Command::Time(15)),
                Ok(Command::Time(90)),
            ]
        );
    }

    #[test]
    fn merge_split_and_time_mistakes_and_prose() {
        let commands =
            Commands::read("#merge\n#merge abc\n#time\n#time soon\n#time 15\n#time 0m\n");
        let errors = commands.errors();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors[0].contains("into which ticket?"), "{errors:?}");
        assert!(
            errors[1].contains("'abc' is not a ticket number"),
            "{errors:?}"
        );
        assert!(errors[2].contains("how long?"), "{errors:?}");
        assert!(errors[3].contains("'soon' is not a duration"), "{errors:?}");
        assert!(errors[4].contains("has no unit"), "{errors:?}");
        assert!(errors[5].contains("no time at all"), "{errors:?}");
        for prose in [
            "#merge these two, they are the same",
            "#split the difference",
            "#time flies when you are having fun",
        ] {
            assert_eq!(meaning(prose), LineMeaning::Text, "{prose}");
        }
        assert!(matches!(
            meaning("#time 2 hours"),
            LineMeaning::Command(Command::Time(120))
        ));
        assert!(matches!(meaning("#time 2 weeks"), LineMeaning::Mistake(_)));
    }

    #[test]
    fn kb_commands_insert_an_article_or_draft_one() {
        assert_eq!(
            parsed("#kb 42\n#kb draft\n#KB Draft\n"),
            vec![
                Ok(Command::KbInsert(42)),
                Ok(Command::KbDraft),
                Ok(Command::KbDraft)
            ]
        );
        let commands = Commands::read("#kb\n#kb foo\n#kb 0\n");
        assert_eq!(commands.errors().len(), 3, "{:?}", commands.errors());
        // A sentence that starts with #kb is text.
        assert!(Commands::read("#kb articles help, see below\n").is_empty());
    }

    #[test]
    fn mistakes_are_explained_with_their_line() {
        let commands = Commands::read("\n#clsoe\n#priority hi\n#assign\n#tag\n#queue\n");
        let errors = commands.errors();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("line 2: #clsoe: unknown command (known: #close"));
        assert!(errors[1].contains("line 3") && errors[1].contains("unknown priority 'hi'"));
        assert!(errors[2].contains("#assign takes one agent"));
        assert!(errors[3].contains("which tag?"));
        assert!(errors[4].contains("which queue?"));
    }

    #[test]
    fn a_line_that_is_not_a_command_is_the_text() {
        // The reported case: ten "tags" and the agent's words gone.
        let text = "#tag vipHi Heidi, we are looking into your server right now.\n\nBest, Al\n";
        let commands = Commands::read(text);
        assert!(commands.is_empty(), "{commands:?}");
        assert_eq!(strip_lines(text, commands.block_lines), text);
        // After real commands, such a line is where the text begins.
        let text = "#close\n#tag vip\n#tag Hi Heidi, all fixed.\n";
        let commands = Commands::read(text);
        assert_eq!(commands.lines.len(), 2);
        assert_eq!(
            strip_lines(text, commands.block_lines),
            "#tag Hi Heidi, all fixed.\n"
        );
        for prose in [
            "#close now, thanks for waiting",
            "#close now",
            "#assign bob to this, please",
            "#priority is the printer",
            "#priority now.",
            "#queue billing takes care of it",
            "#tag a b c d e f",
            "#tag billing, Vip",
            "#tag a\\b",
            "#untag now.",
            "#thanks for the logs",
            "#812 again",
        ] {
            assert_eq!(meaning(prose), LineMeaning::Text, "{prose}");
        }
    }

    #[test]
    fn tags_are_lowercase_words_and_bounded() {
        assert_eq!(
            meaning("#tag billing, vip delivery-failed x_1"),
            LineMeaning::Command(Command::Tag(vec![
                "billing".into(),
                "vip".into(),
                "delivery-failed".into(),
                "x_1".into()
            ]))
        );
        assert!(matches!(meaning("#tag a b c d e"), LineMeaning::Command(_)));
        assert_eq!(MAX_TAGS_PER_LINE, 5);
        for bad in ["VIP", "now.", "a/b", "-x", "", &"x".repeat(65)] {
            assert!(!is_command_tag(bad), "{bad}");
        }
        assert!(is_command_tag("größe") && is_command_tag("2fa"));
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
    fn send_and_cc_parse() {
        assert_eq!(
            parsed("#send\n#cc add Carol@Example.com\n#cc remove <dave@example.com>\n"),
            vec![
                Ok(Command::Send),
                Ok(Command::CcAdd("carol@example.com".into())),
                Ok(Command::CcRemove("dave@example.com".into())),
            ]
        );
        assert!(Commands::read("#send\n").send());
        assert!(!Commands::read("#close\n").send());
        let errors = Commands::read("#cc\n#cc add\n#cc add nobody\n#cc invite x@y.test\n").errors();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[2].contains("not a mail address"), "{errors:?}");
        for prose in [
            "#send it now",
            "#cc add me to the list please",
            "#cc: see above.",
        ] {
            assert_eq!(meaning(prose), LineMeaning::Text, "{prose}");
        }
    }

    #[test]
    fn a_mail_of_only_commands_leaves_nothing() {
        let commands = Commands::read("#close\n\n");
        assert_eq!(strip_lines("#close\n\n", commands.block_lines), "");
        assert!(!commands.hold());
        assert!(Commands::read("#hold\n#close\n").hold());
    }
}
