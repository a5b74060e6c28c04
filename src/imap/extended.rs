//! The command forms imap-codec does not parse yet: `SEARCH RETURN (...)`
//! (ESEARCH, RFC 4731), the extended LIST of RFC 5258 with the STATUS
//! return option of RFC 5819 (LIST-STATUS), Gmail's XLIST, and STATUS with
//! the APPENDLIMIT item of RFC 7889.
//!
//! Written here because imap-codec 2.0.0-alpha.10 models neither (its
//! LIST-EXTENDED feature covers response data only). The parts these
//! extensions add are small, so only they are read by hand: a SEARCH with
//! RETURN options is handed back to imap-codec with the options cut out,
//! so every search key is still parsed by the codec.

use imap_codec::imap_types::status::StatusDataItemName;

/// One argument of a command: an atom, a string (quoted or literal), or a
/// parenthesized list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Atom(Vec<u8>),
    String(Vec<u8>),
    List(Vec<Token>),
}

impl Token {
    pub(super) fn is_atom(&self, word: &str) -> bool {
        matches!(self, Token::Atom(a) if a.eq_ignore_ascii_case(word.as_bytes()))
    }

    /// The token as the client wrote it, for error texts (a list as `(…)`).
    fn describe(&self) -> String {
        match self {
            Token::Atom(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Token::String(bytes) => format!("\"{}\"", String::from_utf8_lossy(bytes)),
            Token::List(items) => {
                let inner: Vec<String> = items.iter().map(Token::describe).collect();
                format!("({})", inner.join(" "))
            }
        }
    }

    /// The bytes of an atom or string (a mailbox name or pattern).
    fn text(&self) -> Option<&[u8]> {
        match self {
            Token::Atom(bytes) | Token::String(bytes) => Some(bytes),
            Token::List(_) => None,
        }
    }
}

/// Reads the token at `pos` (after any spaces); returns it and the position
/// after it. None at the end of the line or on malformed input.
pub(super) fn next_token(input: &[u8], mut pos: usize) -> Option<(Token, usize)> {
    while input.get(pos) == Some(&b' ') {
        pos += 1;
    }
    match *input.get(pos)? {
        b'\r' | b'\n' | b')' => None,
        b'(' => {
            let mut items = Vec::new();
            pos += 1;
            loop {
                while input.get(pos) == Some(&b' ') {
                    pos += 1;
                }
                if input.get(pos) == Some(&b')') {
                    return Some((Token::List(items), pos + 1));
                }
                let (item, next) = next_token(input, pos)?;
                items.push(item);
                pos = next;
            }
        }
        b'"' => {
            let mut value = Vec::new();
            pos += 1;
            loop {
                match *input.get(pos)? {
                    b'"' => return Some((Token::String(value), pos + 1)),
                    b'\\' => {
                        value.push(*input.get(pos + 1)?);
                        pos += 2;
                    }
                    b'\r' | b'\n' => return None,
                    byte => {
                        value.push(byte);
                        pos += 1;
                    }
                }
            }
        }
        b'{' => {
            let close = pos + input[pos..].iter().position(|b| *b == b'}')?;
            let spec = std::str::from_utf8(&input[pos + 1..close]).ok()?;
            let length: usize = spec.trim_end_matches(['+', '-']).parse().ok()?;
            let start = close + 1 + usize::from(input.get(close + 1) == Some(&b'\r')) + 1;
            let end = start.checked_add(length)?;
            Some((Token::String(input.get(start..end)?.to_vec()), end))
        }
        _ => {
            let end = input[pos..]
                .iter()
                .position(|b| matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n'))
                .map_or(input.len(), |n| pos + n);
            Some((Token::Atom(input[pos..end].to_vec()), end))
        }
    }
}

/// What `SEARCH RETURN (...)` asks for (RFC 4731 §3.1, and SAVE of
/// RFC 5182). An empty list means ALL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub tag: String,
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    /// Keep the result for `$` (SEARCHRES).
    pub save: bool,
}

impl SearchReturn {
    /// Whether an ESEARCH response is due: not for SAVE alone (RFC 5182
    /// §2.4).
    pub fn returns_data(&self) -> bool {
        self.min || self.max || self.all || self.count
    }

    /// Whether SAVE keeps only the lowest and highest match: with MIN or
    /// MAX and neither ALL nor COUNT (RFC 5182 §2.4).
    pub fn saves_only_ends(&self) -> bool {
        (self.min || self.max) && !(self.all || self.count)
    }
}

/// A `[UID] SEARCH RETURN (options) keys`: the options, and the command
/// without them for imap-codec. None when the command is no such SEARCH;
/// Err with a reason when its options are malformed or unknown.
pub fn split_search_return(message: &[u8]) -> Option<Result<(Vec<u8>, SearchReturn), String>> {
    let (tag, mut pos) = next_token(message, 0)?;
    let Token::Atom(tag) = tag else {
        return None;
    };
    let (mut word, mut next) = next_token(message, pos)?;
    if word.is_atom("UID") {
        pos = next;
        (word, next) = next_token(message, pos)?;
    }
    if !word.is_atom("SEARCH") {
        return None;
    }
    let return_start = next;
    let (keyword, after_keyword) = next_token(message, next)?;
    if !keyword.is_atom("RETURN") {
        return None;
    }
    let Some((Token::List(options), after)) = next_token(message, after_keyword) else {
        return Some(Err("RETURN needs a list of options".into()));
    };
    let mut wanted = SearchReturn {
        tag: String::from_utf8_lossy(&tag).into_owned(),
        ..Default::default()
    };
    for option in &options {
        let Token::Atom(name) = option else {
            return Some(Err("Malformed RETURN option".into()));
        };
        match name.to_ascii_uppercase().as_slice() {
            b"MIN" => wanted.min = true,
            b"MAX" => wanted.max = true,
            b"ALL" => wanted.all = true,
            b"COUNT" => wanted.count = true,
            b"SAVE" => wanted.save = true,
            other => {
                return Some(Err(format!(
                    "Unknown RETURN option {}",
                    String::from_utf8_lossy(other)
                )));
            }
        }
    }
    if options.is_empty() {
        wanted.all = true;
    }
    let mut rest = message[..return_start].to_vec();
    rest.extend_from_slice(&message[after..]);
    Some(Ok((rest, wanted)))
}

/// Writes `* ESEARCH (TAG "t") [UID] ...` for these hits (ascending
/// message numbers or UIDs, each with its MODSEQ), and `MODSEQ` when the
/// search used it: the highest MODSEQ of the messages the response
/// returns (RFC 4731 §3.2, RFC 7162 §3.1.5), so of the MIN and MAX messages
/// alone when neither ALL nor COUNT was asked for.
pub fn write_esearch(
    out: &mut Vec<u8>,
    wanted: &SearchReturn,
    uid: bool,
    hits: &[(u32, u64)],
    with_modseq: bool,
) {
    let mut line = String::from("* ESEARCH (TAG ");
    line.push_str(&quote(&wanted.tag));
    line.push(')');
    if uid {
        line.push_str(" UID");
    }
    let min = hits.iter().min_by_key(|(n, _)| *n);
    let max = hits.iter().max_by_key(|(n, _)| *n);
    let mut returned_modseq: Option<u64> = None;
    let mut returned = |modseq: u64| {
        returned_modseq = Some(returned_modseq.map_or(modseq, |m| m.max(modseq)));
    };
    if let (true, Some((min, modseq))) = (wanted.min, min) {
        line.push_str(&format!(" MIN {min}"));
        returned(*modseq);
    }
    if let (true, Some((max, modseq))) = (wanted.max, max) {
        line.push_str(&format!(" MAX {max}"));
        returned(*modseq);
    }
    if wanted.all && !hits.is_empty() {
        let numbers: Vec<u32> = hits.iter().map(|(n, _)| *n).collect();
        line.push_str(" ALL ");
        line.push_str(&sequence_set(&numbers));
    }
    if wanted.count {
        line.push_str(&format!(" COUNT {}", hits.len()));
    }
    if wanted.all || wanted.count {
        for (_, modseq) in hits {
            returned(*modseq);
        }
    }
    if let (true, Some(modseq)) = (with_modseq, returned_modseq) {
        line.push_str(&format!(" MODSEQ {modseq}"));
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `1:3,5,7:8` for ascending numbers.
pub fn sequence_set(numbers: &[u32]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
    }
    parts.join(",")
}

/// An extended LIST (RFC 5258): selection options, one or more patterns,
/// return options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExtended {
    pub reference: String,
    pub patterns: Vec<Vec<u8>>,
    /// Selection SUBSCRIBED: only subscribed mailboxes.
    pub only_subscribed: bool,
    /// Selection RECURSIVEMATCH: also parents of selected children.
    pub recursive_match: bool,
    /// Selection SPECIAL-USE (RFC 6154): only special-use mailboxes.
    pub only_special_use: bool,
    /// Return SUBSCRIBED (implied by selecting it): mark \Subscribed.
    pub return_subscribed: bool,
    /// Return STATUS (RFC 5819): a STATUS response per selectable mailbox.
    pub return_status: Option<Vec<StatusItem>>,
    /// Gmail's XLIST, as Outlook 2013/2016 send it: a LIST answered with
    /// `* XLIST` lines whose attributes name the special folders (`\Inbox`,
    /// `\Spam`, …).
    pub xlist: bool,
}

/// Parses `tag LIST [(selection)] reference (pattern | (patterns))
/// [RETURN (options)]`, or `tag XLIST reference pattern`. None when the
/// command is neither; Err with a reason when it is one but malformed.
pub fn parse_list(message: &[u8]) -> Option<Result<(String, ListExtended), String>> {
    let (Token::Atom(tag), pos) = next_token(message, 0)? else {
        return None;
    };
    let (word, mut pos) = next_token(message, pos)?;
    let xlist = word.is_atom("XLIST");
    if !word.is_atom("LIST") && !xlist {
        return None;
    }
    let tag = String::from_utf8_lossy(&tag).into_owned();
    let mut args = Vec::new();
    while let Some((token, next)) = next_token(message, pos) {
        args.push(token);
        pos = next;
    }
    if !message[pos..].trim_ascii().is_empty() {
        return Some(Err("Malformed LIST arguments".into()));
    }
    if xlist {
        let Ok([reference, pattern]) = <[Token; 2]>::try_from(args) else {
            return Some(Err("XLIST takes a reference and a pattern".into()));
        };
        let (Some(reference), Some(pattern)) = (reference.text(), pattern.text()) else {
            return Some(Err("Malformed XLIST arguments".into()));
        };
        return Some(Ok((
            tag,
            ListExtended {
                reference: String::from_utf8_lossy(reference).into_owned(),
                patterns: vec![pattern.to_vec()],
                xlist: true,
                ..Default::default()
            },
        )));
    }
    Some(list_arguments(args).map(|list| (tag, list)))
}

fn list_arguments(mut args: Vec<Token>) -> Result<ListExtended, String> {
    let mut list = ListExtended::default();
    if let Some(Token::List(selection)) = args.first().cloned() {
        args.remove(0);
        for option in &selection {
            match option {
                o if o.is_atom("SUBSCRIBED") => {
                    list.only_subscribed = true;
                    list.return_subscribed = true;
                }
                o if o.is_atom("RECURSIVEMATCH") => list.recursive_match = true,
                o if o.is_atom("REMOTE") => {}
                o if o.is_atom("SPECIAL-USE") => list.only_special_use = true,
                other => {
                    return Err(format!(
                        "Unknown LIST selection option {}",
                        other.describe()
                    ));
                }
            }
        }
        // RFC 5258 §3: RECURSIVEMATCH alone is an error.
        if list.recursive_match && !list.only_subscribed {
            return Err("RECURSIVEMATCH needs another selection option".into());
        }
    }
    let mut args = args.into_iter();
    let reference = args.next().ok_or("LIST needs a reference")?;
    list.reference =
        String::from_utf8_lossy(reference.text().ok_or("Malformed reference")?).into_owned();
    list.patterns = match args.next().ok_or("LIST needs a mailbox pattern")? {
        Token::List(patterns) => patterns
            .iter()
            .map(|p| p.text().map(<[u8]>::to_vec))
            .collect::<Option<_>>()
            .ok_or("Malformed pattern")?,
        single => vec![single.text().ok_or("Malformed pattern")?.to_vec()],
    };
    match (args.next(), args.next(), args.next()) {
        (None, _, _) => {}
        (Some(keyword), Some(Token::List(options)), None) if keyword.is_atom("RETURN") => {
            let mut options = options.into_iter();
            while let Some(option) = options.next() {
                match option {
                    o if o.is_atom("SUBSCRIBED") => list.return_subscribed = true,
                    o if o.is_atom("CHILDREN") || o.is_atom("SPECIAL-USE") => {
                        // Always returned.
                    }
                    o if o.is_atom("STATUS") => {
                        let Some(Token::List(items)) = options.next() else {
                            return Err("STATUS needs a list of items".into());
                        };
                        list.return_status =
                            Some(items.iter().map(status_item).collect::<Result<_, _>>()?);
                    }
                    other => {
                        return Err(format!("Unknown LIST return option {}", other.describe()));
                    }
                }
            }
        }
        _ => return Err("Malformed LIST arguments".into()),
    }
    Ok(list)
}

/// A STATUS item: one imap-codec reads, or APPENDLIMIT (RFC 7889) and
/// SIZE (RFC 8438), which it does not (as built here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusItem {
    Codec(StatusDataItemName),
    AppendLimit,
    Size,
}

/// A STATUS command read by hand: its tag, the mailbox name, the items.
pub type StatusCommand = (String, Vec<u8>, Vec<StatusItem>);

/// Parses `tag STATUS mailbox (items)` with an APPENDLIMIT among the items
/// (imap-codec reads every other STATUS). None when the command is no
/// STATUS; Err with a reason when it is one but malformed.
pub fn parse_status(message: &[u8]) -> Option<Result<StatusCommand, String>> {
    let (Token::Atom(tag), pos) = next_token(message, 0)? else {
        return None;
    };
    let (word, mut pos) = next_token(message, pos)?;
    if !word.is_atom("STATUS") {
        return None;
    }
    let tag = String::from_utf8_lossy(&tag).into_owned();
    let mut args = Vec::new();
    while let Some((token, next)) = next_token(message, pos) {
        args.push(token);
        pos = next;
    }
    let parsed = match <[Token; 2]>::try_from(args) {
        Ok([mailbox, Token::List(items)]) if message[pos..].trim_ascii().is_empty() => {
            let Some(name) = mailbox.text() else {
                return Some(Err("Malformed mailbox name".into()));
            };
            items
                .iter()
                .map(status_item)
                .collect::<Result<Vec<_>, _>>()
                .map(|items| (tag, name.to_vec(), items))
        }
        _ => Err("STATUS takes a mailbox and a list of items".into()),
    };
    Some(parsed)
}

fn status_item(token: &Token) -> Result<StatusItem, String> {
    let Token::Atom(name) = token else {
        return Err("Malformed STATUS item".into());
    };
    Ok(StatusItem::Codec(
        match name.to_ascii_uppercase().as_slice() {
            b"MESSAGES" => StatusDataItemName::Messages,
            b"RECENT" => StatusDataItemName::Recent,
            b"UIDNEXT" => StatusDataItemName::UidNext,
            b"UIDVALIDITY" => StatusDataItemName::UidValidity,
            b"UNSEEN" => StatusDataItemName::Unseen,
            b"HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
            b"DELETED" => StatusDataItemName::Deleted,
            b"APPENDLIMIT" => return Ok(StatusItem::AppendLimit),
            b"SIZE" => return Ok(StatusItem::Size),
            other => {
                return Err(format!(
                    "Unknown STATUS item {}",
                    String::from_utf8_lossy(other)
                ));
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_return_options_are_cut_out_for_the_codec() {
        let Some(Ok((rest, wanted))) =
            split_search_return(b"a1 UID SEARCH RETURN (MIN count) FROM {3}\r\nbob\r\n")
        else {
            panic!("not recognised");
        };
        assert_eq!(rest, b"a1 UID SEARCH FROM {3}\r\nbob\r\n");
        assert!(wanted.min && wanted.count && !wanted.max && !wanted.all);
        assert_eq!(wanted.tag, "a1");
        let Some(Ok((_, wanted))) = split_search_return(b"t SEARCH RETURN () ALL\r\n") else {
            panic!("not recognised");
        };
        assert!(wanted.all);
        assert!(split_search_return(b"t SEARCH ALL\r\n").is_none());
        let Some(Ok((_, wanted))) = split_search_return(b"t SEARCH RETURN (SAVE) ALL\r\n") else {
            panic!("not recognised");
        };
        assert!(wanted.save && !wanted.returns_data());
        let Some(Ok((_, wanted))) = split_search_return(b"t SEARCH RETURN (SAVE MIN) ALL\r\n")
        else {
            panic!("not recognised");
        };
        assert!(wanted.save && wanted.saves_only_ends());
        assert!(matches!(
            split_search_return(b"t SEARCH RETURN (PARTIAL 1:5) ALL\r\n"),
            Some(Err(_))
        ));
    }

    #[test]
    fn esearch_lists_numbers_as_a_compact_set() {
        let wanted = SearchReturn {
            tag: "A".into(),
            min: true,
            max: true,
            all: true,
            count: true,
            save: false,
        };
        let mut out = Vec::new();
        let hits = [(2, 5), (3, 12), (4, 1), (7, 2), (9, 3), (10, 4)];
        write_esearch(&mut out, &wanted, true, &hits, true);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* ESEARCH (TAG \"A\") UID MIN 2 MAX 10 ALL 2:4,7,9:10 COUNT 6 MODSEQ 12\r\n"
        );
        out.clear();
        write_esearch(&mut out, &wanted, false, &[], true);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* ESEARCH (TAG \"A\") COUNT 0\r\n"
        );
        // MIN and MAX alone: the MODSEQ of those two messages, not of
        // every match.
        let min_max = SearchReturn {
            tag: "B".into(),
            min: true,
            max: true,
            ..Default::default()
        };
        out.clear();
        write_esearch(&mut out, &min_max, false, &hits, true);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* ESEARCH (TAG \"B\") MIN 2 MAX 10 MODSEQ 5\r\n"
        );
        let only_max = SearchReturn {
            tag: "C".into(),
            max: true,
            ..Default::default()
        };
        out.clear();
        write_esearch(&mut out, &only_max, false, &hits, true);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* ESEARCH (TAG \"C\") MAX 10 MODSEQ 4\r\n"
        );
    }

    #[test]
    fn status_reads_appendlimit() {
        assert_eq!(
            parse_status(b"s STATUS \"Projects\" (MESSAGES APPENDLIMIT)\r\n"),
            Some(Ok((
                "s".into(),
                b"Projects".to_vec(),
                vec![
                    StatusItem::Codec(StatusDataItemName::Messages),
                    StatusItem::AppendLimit
                ]
            )))
        );
        assert!(matches!(
            parse_status(b"s STATUS Projects (BOGUS)\r\n"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_status(b"s STATUS Projects\r\n"),
            Some(Err(_))
        ));
        assert!(parse_status(b"s SELECT Projects\r\n").is_none());
    }

    #[test]
    fn extended_list_reads_selection_patterns_and_return_options() {
        let Some(Ok((tag, list))) = parse_list(
            b"x LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" %) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
        ) else {
            panic!("not parsed");
        };
        assert_eq!(tag, "x");
        assert!(list.only_subscribed && list.recursive_match && list.return_subscribed);
        assert_eq!(list.patterns, vec![b"INBOX".to_vec(), b"%".to_vec()]);
        assert_eq!(
            list.return_status,
            Some(vec![
                StatusItem::Codec(StatusDataItemName::Messages),
                StatusItem::Codec(StatusDataItemName::Unseen)
            ])
        );
        let Some(Ok((_, plain))) = parse_list(b"y list \"\" {1+}\r\n*\r\n") else {
            panic!("not parsed");
        };
        assert_eq!(plain.patterns, vec![b"*".to_vec()]);
        assert!(matches!(
            parse_list(b"z LIST (RECURSIVEMATCH) \"\" *\r\n"),
            Some(Err(_))
        ));
        assert_eq!(
            parse_list(b"z LIST \"\" * RETURN (BOGUS)\r\n"),
            Some(Err("Unknown LIST return option BOGUS".into()))
        );
        assert_eq!(
            parse_list(b"z LIST (imaptest) \"\" \"\"\r\n"),
            Some(Err("Unknown LIST selection option imaptest".into()))
        );
        assert!(parse_list(b"z LSUB \"\" *\r\n").is_none());
    }
}
