//! The query language of `postdesk search`:
//!
//! ```text
//! vpn "connection reset" status:closed queue:support after:2026-01-01
//! (printer OR scanner) -toner from:alice@example.com tag:billing #812
//! ```
//!
//! Words must all match (AND is implied); `OR`, `AND`, `NOT` / `-` and
//! parentheses combine them; `"…"` is a phrase. `field:value` restricts to
//! a field: text fields (`subject`, `body`, `from`, `to`, `cc`, `customer`,
//! `attachment`), keyword fields (`status`, `queue`, `priority`, `tag`,
//! `kind`), `ticket:812` or `#812`, and dates (`after:`, `before:`, `on:`,
//! `YYYY-MM-DD`, UTC, `after` inclusive, `before` exclusive).
//!
//! tantivy's own QueryParser has no dates by day, no ticket numbers and
//! reports errors in terms of the index's fields; a helpdesk query should
//! say "unknown status 'clsoed' (new, open, pending, resolved, closed)".
//! The grammar is small enough to parse here and compile straight into
//! tantivy queries.

use super::schema::Fields;
use super::tokenizer::text_analyzer;
use crate::domain::ticket::{Priority, Status};
use chrono::NaiveDate;
use std::ops::Bound;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;
use tantivy::{DateTime, Term};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
}

fn error<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        message: message.into(),
    })
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Free text in every text field (a phrase when quoted).
    Text {
        text: String,
        phrase: bool,
    },
    /// Text in named fields.
    FieldText {
        fields: Vec<FieldName>,
        text: String,
        phrase: bool,
    },
    Keyword {
        field: FieldName,
        value: String,
    },
    Ticket(u64),
    Date {
        after: Option<NaiveDate>,
        before: Option<NaiveDate>,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldName {
    Subject,
    Body,
    From,
    To,
    Cc,
    Customer,
    Attachment,
    /// Quoted text and signatures (not a query field: IMAP BODY reads it).
    Quoted,
    Status,
    Queue,
    Priority,
    Tag,
    Kind,
}

const FIELD_NAMES: &str = "subject, body, from, to, cc, customer, attachment, status, queue, priority, tag, kind, ticket, after, before, on";

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Phrase(String),
}

/// The text up to the closing quote (consumed); `None` when there is none.
fn until_quote(chars: &mut impl Iterator<Item = (usize, char)>) -> Option<String> {
    let mut phrase = String::new();
    for (_, c) in chars {
        if c == '"' {
            return Some(phrase);
        }
        phrase.push(c);
    }
    None
}

fn lex(input: &str) -> Result<Vec<Token>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let Some(phrase) = until_quote(&mut chars) else {
                    return error(format!(
                        "unclosed quote at character {}",
                        input[..start].chars().count() + 1
                    ));
                };
                tokens.push(Token::Phrase(phrase));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    // `subject:"a b"`: the phrase belongs to the field.
                    if c == '"' && word.ends_with(':') {
                        chars.next();
                        let Some(phrase) = until_quote(&mut chars) else {
                            return error(format!("unclosed quote after '{word}'"));
                        };
                        word.push('"');
                        word.push_str(&phrase);
                        word.push('"');
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Parentheses and NOTs nested deeper than this are refused (the parser
/// recurses once per level).
const MAX_DEPTH: usize = 32;

/// Parses a query; an empty query is an error (say what to look for).
pub fn parse(input: &str) -> Result<Node, QueryError> {
    let mut parser = Parser {
        tokens: lex(input)?,
        at: 0,
        depth: 0,
    };
    if parser.tokens.is_empty() {
        return error("empty query: give words to look for or filters such as status:closed");
    }
    let node = parser.or()?;
    if parser.at < parser.tokens.len() {
        return error("unbalanced ')'");
    }
    Ok(node)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn or(&mut self) -> Result<Node, QueryError> {
        let mut alternatives = vec![self.and()?];
        while self.is_word("OR") {
            self.at += 1;
            if self.peek().is_none() {
                return error("OR at the end of the query: OR what?");
            }
            alternatives.push(self.and()?);
        }
        Ok(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Node::Or(alternatives)
        })
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let mut all = Vec::new();
        loop {
            match self.peek() {
                None | Some(Token::Close) => break,
                Some(Token::Word(w)) if w == "OR" => break,
                Some(Token::Word(w)) if w == "AND" => {
                    self.at += 1;
                    if matches!(self.peek(), None | Some(Token::Close)) {
                        return error("AND at the end of a query: AND what?");
                    }
                }
                _ => all.push(self.unary()?),
            }
        }
        match all.len() {
            0 => error("nothing to search for before OR or ')'"),
            1 => Ok(all.remove(0)),
            _ => Ok(Node::And(all)),
        }
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        self.depth += 1;
        let node = self.unary_inner();
        self.depth -= 1;
        node
    }

    fn unary_inner(&mut self) -> Result<Node, QueryError> {
        if self.depth > MAX_DEPTH {
            return error(format!("the query nests deeper than {MAX_DEPTH} levels"));
        }
        if self.is_word("NOT") {
            self.at += 1;
            if self.peek().is_none() {
                return error("NOT at the end of the query: NOT what?");
            }
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        if let Some(Token::Word(w)) = self.peek()
            && let Some(rest) = w.strip_prefix('-')
            && !rest.is_empty()
        {
            let rest = rest.to_string();
            self.tokens[self.at] = Token::Word(rest);
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, QueryError> {
        let Some(token) = self.peek().cloned() else {
            return error("the query ends too early");
        };
        self.at += 1;
        match token {
            Token::Open => {
                let node = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return error("'(' without its ')'");
                }
                self.at += 1;
                Ok(node)
            }
            Token::Close => error("unbalanced ')'"),
            Token::Phrase(text) => Ok(Node::Text { text, phrase: true }),
            Token::Word(word) => word_node(&word),
        }
    }
}

fn word_node(word: &str) -> Result<Node, QueryError> {
    if let Some(number) = word.strip_prefix('#')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
    {
        return ticket_number(number);
    }
    let Some((name, value)) = word.split_once(':') else {
        return Ok(Node::Text {
            text: word.to_string(),
            phrase: false,
        });
    };
    // "http://…", "re:", "10:30": words with a colon, not filters.
    if name.is_empty()
        || value.is_empty()
        || value.starts_with("//")
        || !name.chars().all(|c| c.is_ascii_alphabetic())
    {
        return Ok(Node::Text {
            text: word.to_string(),
            phrase: false,
        });
    }
    let (value, phrase) = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => (inner.to_string(), true),
        None => (value.to_string(), false),
    };
    let text = |fields: Vec<FieldName>| {
        Ok(Node::FieldText {
            fields,
            text: value.clone(),
            phrase,
        })
    };
    let keyword = |field: FieldName| {
        Ok(Node::Keyword {
            field,
            value: value.to_lowercase(),
        })
    };
    match name.to_ascii_lowercase().as_str() {
        "subject" => text(vec![FieldName::Subject]),
        "body" => text(vec![FieldName::Body]),
        "from" => text(vec![FieldName::From]),
        "to" => text(vec![FieldName::To]),
        "cc" => text(vec![FieldName::Cc]),
        "customer" => text(vec![FieldName::Customer]),
        "attachment" | "filename" => text(vec![FieldName::Attachment]),
        "status" | "is" => match value.to_lowercase().parse::<Status>() {
            Ok(status) => Ok(Node::Keyword {
                field: FieldName::Status,
                value: status.as_str().to_string(),
            }),
            Err(_) => error(format!(
                "unknown status '{value}' (new, open, pending, resolved, closed)"
            )),
        },
        "priority" => match value.to_lowercase().parse::<Priority>() {
            Ok(priority) => Ok(Node::Keyword {
                field: FieldName::Priority,
                value: priority.as_str().to_string(),
            }),
            Err(_) => error(format!(
                "unknown priority '{value}' (low, normal, high, urgent)"
            )),
        },
        "queue" => keyword(FieldName::Queue),
        "tag" => keyword(FieldName::Tag),
        "kind" => match value.to_lowercase().as_str() {
            "customer" | "reply" | "note" | "bounce" | "system" => keyword(FieldName::Kind),
            _ => error(format!(
                "unknown kind '{value}' (customer, reply, note, bounce, system)"
            )),
        },
        "ticket" => ticket_number(value.trim_start_matches('#')),
        "after" | "since" => Ok(Node::Date {
            after: Some(date(&value)?),
            before: None,
        }),
        "before" => Ok(Node::Date {
            after: None,
            before: Some(date(&value)?),
        }),
        "on" => {
            let day = date(&value)?;
            Ok(Node::Date {
                after: Some(day),
                before: day.succ_opt(),
            })
        }
        other => error(format!("unknown field '{other}:' (known: {FIELD_NAMES})")),
    }
}

fn ticket_number(text: &str) -> Result<Node, QueryError> {
    match text.parse::<u64>() {
        Ok(n) => Ok(Node::Ticket(n)),
        Err(_) => error(format!("'{text}' is not a ticket number")),
    }
}

fn date(text: &str) -> Result<NaiveDate, QueryError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| QueryError {
        message: format!("'{text}' is not a date: write YYYY-MM-DD"),
    })
}

/// Turns parsed queries into tantivy queries over the index's fields.
pub struct Compiler {
    pub fields: Fields,
}

impl Compiler {
    pub fn compile(&self, node: &Node) -> Box<dyn Query> {
        match node {
            Node::Text { text, .. } => self.text(&self.fields.default_text(), text),
            Node::FieldText { fields, text, .. } => {
                let fields: Vec<(Field, f32)> =
                    fields.iter().map(|f| (self.field(*f), 1.0)).collect();
                self.text(&fields, text)
            }
            Node::Keyword { field, value } => Box::new(TermQuery::new(
                Term::from_field_text(self.field(*field), value),
                IndexRecordOption::Basic,
            )),
            Node::Ticket(n) => Box::new(TermQuery::new(
                Term::from_field_u64(self.fields.ticket, *n),
                IndexRecordOption::Basic,
            )),
            Node::Date { after, before } => {
                let bound = |day: &Option<NaiveDate>, inclusive: bool| match day
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                {
                    Some(t) => {
                        let term = Term::from_field_date(
                            self.fields.date,
                            DateTime::from_timestamp_secs(t.and_utc().timestamp()),
                        );
                        if inclusive {
                            Bound::Included(term)
                        } else {
                            Bound::Excluded(term)
                        }
                    }
                    None => Bound::Unbounded,
                };
                Box::new(RangeQuery::new(bound(after, true), bound(before, false)))
            }
            Node::And(nodes) => self.boolean(nodes, Occur::Must),
            Node::Or(nodes) => self.boolean(nodes, Occur::Should),
            Node::Not(node) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.compile(node)),
            ])),
        }
    }

    fn boolean(&self, nodes: &[Node], occur: Occur) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for node in nodes {
            match (occur, node) {
                // A negation inside AND excludes, instead of adding an
                // "everything but" that would match all.
                (Occur::Must, Node::Not(inner)) => {
                    clauses.push((Occur::MustNot, self.compile(inner)))
                }
                _ => clauses.push((occur, self.compile(node))),
            }
        }
        if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Text in any of `fields`: one term, or a phrase of the text's words
    /// (a quoted phrase, and also a single "word" that the analyzer splits,
    /// such as an address or CJK text: both are words in sequence).
    fn text(&self, fields: &[(Field, f32)], text: &str) -> Box<dyn Query> {
        let words = analyze(text);
        if words.is_empty() {
            // Only punctuation: nothing can match it.
            return Box::new(EmptyQuery);
        }
        let mut per_field: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for &(field, boost) in fields {
            let query: Box<dyn Query> = if words.len() == 1 {
                Box::new(TermQuery::new(
                    Term::from_field_text(field, &words[0].1),
                    IndexRecordOption::WithFreqs,
                ))
            } else {
                Box::new(PhraseQuery::new_with_offset(
                    words
                        .iter()
                        .map(|(position, word)| (*position, Term::from_field_text(field, word)))
                        .collect(),
                ))
            };
            let query: Box<dyn Query> = if (boost - 1.0).abs() > f32::EPSILON {
                Box::new(BoostQuery::new(query, boost))
            } else {
                query
            };
            per_field.push((Occur::Should, query));
        }
        if per_field.len() == 1 {
            return per_field.remove(0).1;
        }
        Box::new(BooleanQuery::new(per_field))
    }

    fn field(&self, name: FieldName) -> Field {
        let f = &self.fields;
        match name {
            FieldName::Subject => f.subject,
            FieldName::Body => f.body,
            FieldName::From => f.from,
            FieldName::To => f.to,
            FieldName::Cc => f.cc,
            FieldName::Customer => f.customer,
            FieldName::Attachment => f.attachment,
            FieldName::Quoted => f.quoted,
            FieldName::Status => f.status,
            FieldName::Queue => f.queue,
            FieldName::Priority => f.priority,
            FieldName::Tag => f.tag,
            FieldName::Kind => f.kind,
        }
    }
}

/// The words of `text` as the index holds them, with their positions.
pub fn analyze(text: &str) -> Vec<(usize, String)> {
    let mut analyzer = text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    let mut first = None;
    while let Some(token) = stream.next() {
        let base = *first.get_or_insert(token.position);
        words.push((token.position - base, token.text.clone()));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Node {
        Node::Text {
            text: t.into(),
            phrase: false,
        }
    }

    #[test]
    fn words_phrases_and_filters() {
        let node = parse(r#"vpn "connection reset" status:closed queue:Support after:2026-01-01"#)
            .unwrap();
        assert_eq!(
            node,
            Node::And(vec![
                text("vpn"),
                Node::Text {
                    text: "connection reset".into(),
                    phrase: true
                },
                Node::Keyword {
                    field: FieldName::Status,
                    value: "closed".into()
                },
                Node::Keyword {
                    field: FieldName::Queue,
                    value: "support".into()
                },
                Node::Date {
                    after: NaiveDate::from_ymd_opt(2026, 1, 1),
                    before: None
                },
            ])
        );
    }

    #[test]
    fn boolean_operators_and_grouping() {
        assert_eq!(
            parse("(printer OR scanner) -toner NOT ink").unwrap(),
            Node::And(vec![
                Node::Or(vec![text("printer"), text("scanner")]),
                Node::Not(Box::new(text("toner"))),
                Node::Not(Box::new(text("ink"))),
            ])
        );
        assert_eq!(
            parse("a AND b OR c").unwrap(),
            Node::Or(vec![Node::And(vec![text("a"), text("b")]), text("c")])
        );
    }

    #[test]
    fn tickets_fields_and_words_with_colons() {
        assert_eq!(parse("#812").unwrap(), Node::Ticket(812));
        assert_eq!(parse("ticket:#7").unwrap(), Node::Ticket(7));
        assert_eq!(
            parse(r#"subject:"out of paper""#).unwrap(),
            Node::FieldText {
                fields: vec![FieldName::Subject],
                text: "out of paper".into(),
                phrase: true
            }
        );
        assert_eq!(
            parse("https://vpn.example").unwrap(),
            text("https://vpn.example")
        );
        assert_eq!(parse("10:30").unwrap(), text("10:30"));
        assert_eq!(
            parse("on:2026-03-02").unwrap(),
            Node::Date {
                after: NaiveDate::from_ymd_opt(2026, 3, 2),
                before: NaiveDate::from_ymd_opt(2026, 3, 3)
            }
        );
    }

    #[test]
    fn mistakes_are_explained() {
        let message = |q: &str| parse(q).unwrap_err().message;
        assert!(message("stauts:closed").contains("unknown field 'stauts:'"));
        assert!(message("status:clsoed").contains("unknown status 'clsoed'"));
        assert!(message("priority:asap").contains("unknown priority"));
        assert!(message("after:yesterday").contains("YYYY-MM-DD"));
        assert!(message("\"open quote").contains("unclosed quote"));
        assert!(message("(vpn").contains("without its ')'"));
        assert!(message("vpn)").contains("unbalanced"));
        assert!(message("vpn OR").contains("OR what"));
        assert!(message("NOT").contains("NOT what"));
        assert!(message("   ").contains("empty query"));
        assert!(message("ticket:abc").contains("not a ticket number"));
        assert!(message(&"(".repeat(100_000)).contains("nests deeper"));
        assert!(message(&"NOT ".repeat(1000)).contains("nests deeper"));
        assert!(message(&format!("{}x", "-".repeat(1000))).contains("nests deeper"));
    }

    #[test]
    fn analyzed_words_keep_their_relative_positions() {
        assert_eq!(
            analyze("Connection, reset!"),
            [(0, "connect".to_string()), (1, "reset".to_string())]
        );
        assert!(analyze("...").is_empty());
    }
}
