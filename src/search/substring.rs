//! IMAP SEARCH's substring matching (RFC 3501 §6.4.4: SUBJECT, FROM, TO,
//! CC, BODY and TEXT match "messages that contain the specified string"),
//! answered from the index instead of reading every message.
//!
//! A substring of a text is a prefix of one of its suffixes, and a prefix
//! is a range of the term dictionary (one seek, then the postings of the
//! terms in the range). So the index keeps suffixes:
//!
//! - **Short fields** (subject and the From/To/Cc addresses as a header
//!   shows them): every suffix of the whole folded value, cut to
//!   [`SUFFIX_CHARS`] characters, at the position of the character it
//!   starts at. A needle up to that length is a prefix query; a longer one
//!   is a phrase of its [`SUFFIX_CHARS`]-character pieces at their offsets.
//!   Both are exact, spaces and punctuation included ("@example.com",
//!   "Re: Invoice 12").
//! - **Body** (what the author wrote, the quoted text, attachment names):
//!   every suffix of every distinct word, once per message, without
//!   positions. A needle of one word finds every message with a word that
//!   contains it (`invo` finds "invoice", `voice` finds "invoices"). A
//!   needle of several words is the phrase of its complete words (by
//!   their stems, as `postdesk search` matches them) and, anywhere in the
//!   message, a word containing the last, partly typed one ("invoices
//!   are over" finds "your invoices are overdue"): close to a substring
//!   across words, without suffixes with positions for every word of
//!   every body, and without tantivy's phrase-prefix query, which caps how
//!   many words a prefix stands for (a SEARCH answer must be complete).
//!
//! Text is compared folded: lowercase, accents folded ("cafe" finds
//! "Café"), runs of white space as one space. The alternatives weighed: a
//! regex or wildcard on the term dictionary (`.*invo.*`) walks the whole
//! dictionary of every segment on each search; character n-grams with
//! positions find any substring but index every character of every body
//! with a position, several times the index, and a phrase of common
//! trigrams is slow to intersect. Suffixes of distinct words cost one
//! posting per suffix per message, and a search is a range scan.

use super::SearchIndex;
use super::schema::Fields;
use super::tokenizer::{folding_analyzer, word_analyzer};
use std::collections::BTreeSet;
use std::ops::Bound;
use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, InvertedIndexRangeQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::{PreTokenizedString, Token, TokenStream};

/// Characters a suffix of a short field keeps.
pub const SUFFIX_CHARS: usize = 32;

/// The IMAP SEARCH keys the index answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapKey {
    Subject,
    From,
    To,
    Cc,
    Body,
    Text,
}

/// Lowercased, accents folded, white space runs as one space.
pub fn fold(text: &str) -> String {
    let mut spaced = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                spaced.push(' ');
            }
            in_space = true;
        } else {
            spaced.push(c);
            in_space = false;
        }
    }
    if spaced.is_empty() {
        return spaced;
    }
    let mut analyzer = folding_analyzer();
    let mut stream = analyzer.token_stream(&spaced);
    let mut folded = String::with_capacity(spaced.len());
    while let Some(token) = stream.next() {
        folded.push_str(&token.text);
    }
    folded
}

fn token(text: &str, position: usize) -> Token {
    Token {
        offset_from: 0,
        offset_to: 0,
        position,
        text: text.to_string(),
        position_length: 1,
    }
}

/// The terms of a short field: every suffix of the folded value, cut to
/// [`SUFFIX_CHARS`] characters, positioned at its first character.
pub fn value_suffixes(value: &str) -> PreTokenizedString {
    let folded = fold(value.trim());
    let starts: Vec<usize> = folded.char_indices().map(|(i, _)| i).collect();
    let mut tokens = Vec::with_capacity(starts.len());
    for (position, &start) in starts.iter().enumerate() {
        let end = starts
            .get(position + SUFFIX_CHARS)
            .copied()
            .unwrap_or(folded.len());
        tokens.push(token(&folded[start..end], position));
    }
    PreTokenizedString {
        text: String::new(),
        tokens,
    }
}

/// The terms of the body: every suffix of every distinct word of `texts`,
/// once.
pub fn word_suffixes<'a>(texts: impl IntoIterator<Item = &'a str>) -> PreTokenizedString {
    let mut analyzer = word_analyzer();
    let mut words = BTreeSet::new();
    for text in texts {
        let mut stream = analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            words.insert(token.text.clone());
        }
    }
    let mut suffixes = BTreeSet::new();
    for word in &words {
        for (start, _) in word.char_indices() {
            suffixes.insert(&word[start..]);
        }
    }
    PreTokenizedString {
        text: String::new(),
        tokens: suffixes.into_iter().map(|s| token(s, 0)).collect(),
    }
}

/// The words of a needle as the word fields hold them.
fn words(text: &str) -> Vec<String> {
    let mut analyzer = word_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while let Some(token) = stream.next() {
        words.push(token.text.clone());
    }
    words
}

/// The documents with a term of `field` that starts with `prefix`.
fn prefix_query(field: Field, prefix: &str) -> Box<dyn Query> {
    // The first byte string after every one that starts with the prefix:
    // its last byte one up (UTF-8 text has no 0xFF byte to carry over).
    let mut end = prefix.as_bytes().to_vec();
    let upper = match end.pop() {
        Some(last) if last < u8::MAX => {
            end.push(last + 1);
            Bound::Excluded(Term::from_field_bytes(field, &end))
        }
        _ => Bound::Unbounded,
    };
    Box::new(InvertedIndexRangeQuery::new(
        Bound::Included(Term::from_field_text(field, prefix)),
        upper,
    ))
}

/// Substring of a short field's folded value (already folded `needle`).
fn value_query(field: Field, needle: &str) -> Box<dyn Query> {
    let starts: Vec<usize> = needle.char_indices().map(|(i, _)| i).collect();
    if starts.is_empty() {
        return Box::new(AllQuery);
    }
    if starts.len() <= SUFFIX_CHARS {
        return prefix_query(field, needle);
    }
    // Pieces of exactly SUFFIX_CHARS characters: each is a whole stored
    // suffix at its offset; the last one ends where the needle ends.
    let piece = |offset: usize| {
        let end = starts
            .get(offset + SUFFIX_CHARS)
            .copied()
            .unwrap_or(needle.len());
        (
            offset,
            Term::from_field_text(field, &needle[starts[offset]..end]),
        )
    };
    let last = starts.len() - SUFFIX_CHARS;
    let mut pieces: Vec<(usize, Term)> = (0..last).step_by(SUFFIX_CHARS).map(piece).collect();
    pieces.push(piece(last));
    Box::new(PhraseQuery::new_with_offset(pieces))
}

impl SearchIndex {
    /// The query that answers an IMAP SEARCH text key, or None when the
    /// index cannot (a BODY or TEXT needle without a letter or digit is
    /// left to reading the messages).
    pub fn substring_query(&self, key: ImapKey, needle: &str) -> Option<Box<dyn Query>> {
        let f = self.fields();
        let folded = fold(needle);
        Some(match key {
            ImapKey::Subject => value_query(f.subject_suffixes, &folded),
            ImapKey::From => value_query(f.from_suffixes, &folded),
            ImapKey::To => value_query(f.to_suffixes, &folded),
            ImapKey::Cc => value_query(f.cc_suffixes, &folded),
            ImapKey::Body => body_query(&f, needle)?,
            ImapKey::Text => {
                let mut any: Vec<(Occur, Box<dyn Query>)> = [
                    f.subject_suffixes,
                    f.from_suffixes,
                    f.to_suffixes,
                    f.cc_suffixes,
                ]
                .into_iter()
                .map(|field| (Occur::Should, value_query(field, &folded)))
                .collect();
                any.push((Occur::Should, body_query(&f, needle)?));
                Box::new(BooleanQuery::new(any))
            }
        })
    }
}

/// Words of the body: one word anywhere inside a word; several as the
/// phrase of the complete words (all but the last, by their stems) and a
/// word containing the last one, which may be partial.
fn body_query(f: &Fields, needle: &str) -> Option<Box<dyn Query>> {
    let written = words(needle);
    let last = written.last()?;
    let partial = prefix_query(f.word_suffixes, last);
    if written.len() == 1 {
        return Some(partial);
    }
    let mut complete = super::query::analyze(needle);
    complete.pop();
    let in_field = |field: Field| -> Box<dyn Query> {
        if let [(_, word)] = complete.as_slice() {
            Box::new(TermQuery::new(
                Term::from_field_text(field, word),
                IndexRecordOption::Basic,
            ))
        } else {
            Box::new(PhraseQuery::new_with_offset(
                complete
                    .iter()
                    .map(|(offset, word)| (*offset, Term::from_field_text(field, word)))
                    .collect(),
            ))
        }
    };
    let phrase = BooleanQuery::new(
        [f.body, f.quoted, f.attachment]
            .into_iter()
            .map(|field| (Occur::Should, in_field(field)))
            .collect(),
    );
    Some(Box::new(BooleanQuery::new(vec![
        (Occur::Must, Box::new(phrase)),
        (Occur::Must, partial),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(tokens: &PreTokenizedString) -> Vec<(String, usize)> {
        tokens
            .tokens
            .iter()
            .map(|t| (t.text.clone(), t.position))
            .collect()
    }

    /// An index of these (subject, from, body) messages, ids from 1.
    fn index_of(
        messages: &[(&str, &str, &str)],
    ) -> (tempfile::TempDir, std::sync::Arc<SearchIndex>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = SearchIndex::open(dir.path()).expect("index");
        let f = index.fields();
        let mut writer: tantivy::IndexWriter = index.index.writer(20_000_000).expect("writer");
        for (id, (subject, from, body)) in messages.iter().enumerate() {
            let mut doc = tantivy::TantivyDocument::default();
            doc.add_u64(f.message, id as u64 + 1);
            doc.add_text(f.subject, subject);
            doc.add_pre_tokenized_text(f.subject_suffixes, value_suffixes(subject));
            doc.add_text(f.from, from);
            doc.add_pre_tokenized_text(f.from_suffixes, value_suffixes(from));
            doc.add_text(f.body, body);
            doc.add_pre_tokenized_text(f.word_suffixes, word_suffixes([*body]));
            writer.add_document(doc).expect("add");
        }
        writer.commit().expect("commit");
        index.reload().expect("reload");
        (dir, index)
    }

    fn found(index: &SearchIndex, key: ImapKey, needle: &str) -> Vec<i64> {
        let query = index.substring_query(key, needle).expect("answerable");
        let mut ids = index.matching_messages(query.as_ref()).expect("search");
        ids.sort_unstable();
        ids
    }

    #[test]
    fn substrings_are_found_as_a_client_expects() {
        let long_subject = "Quarterly invoice 2026-Q1 for ACME Corporation, third reminder";
        let (_dir, index) = index_of(&[
            (
                "Invoice #4711 overdue",
                "Jürgen Groß <jurgen@example.com>",
                "Your invoices are overdue.",
            ),
            (
                long_subject,
                "billing@acme.example",
                "Please pay the quarterly invoice.",
            ),
            (
                "VPN",
                "ann@example.org",
                "The VPN connection drops; 数据库连接 fails.",
            ),
        ]);
        // Parts of words, in any case, accents folded.
        assert_eq!(found(&index, ImapKey::Body, "invo"), [1, 2]);
        assert_eq!(found(&index, ImapKey::Body, "VOICES"), [1]);
        assert_eq!(found(&index, ImapKey::Body, "nnect"), [3]);
        assert_eq!(found(&index, ImapKey::Body, "xinvo"), Vec::<i64>::new());
        // Several words: the phrase of the complete ones, the last partial.
        assert_eq!(found(&index, ImapKey::Body, "invoices are over"), [1]);
        assert_eq!(found(&index, ImapKey::Body, "the quarterly inv"), [2]);
        assert_eq!(
            found(&index, ImapKey::Body, "are invoices over"),
            Vec::<i64>::new()
        );
        assert_eq!(
            found(&index, ImapKey::Body, "invoices are xyz"),
            Vec::<i64>::new()
        );
        // CJK: a character, and a run as its pairs.
        assert_eq!(found(&index, ImapKey::Body, "据"), [3]);
        assert_eq!(found(&index, ImapKey::Body, "数据库"), [3]);
        // Short fields: exact substrings, punctuation and spaces included.
        assert_eq!(found(&index, ImapKey::Subject, "#47"), [1]);
        assert_eq!(found(&index, ImapKey::Subject, "ice #4711 o"), [1]);
        assert_eq!(found(&index, ImapKey::From, "@example."), [1, 3]);
        assert_eq!(found(&index, ImapKey::From, "gross <jur"), [1]);
        assert_eq!(
            found(&index, ImapKey::From, "jurgen@example.org"),
            Vec::<i64>::new()
        );
        // Longer than a stored suffix: pieces at their offsets.
        assert_eq!(found(&index, ImapKey::Subject, &long_subject[3..]), [2]);
        assert_eq!(found(&index, ImapKey::Subject, long_subject), [2]);
        let mut wrong = long_subject.to_string();
        wrong.push('!');
        assert_eq!(found(&index, ImapKey::Subject, &wrong), Vec::<i64>::new());
        // TEXT is any of them.
        assert_eq!(found(&index, ImapKey::Text, "acme"), [2]);
        assert_eq!(found(&index, ImapKey::Text, "vpn"), [3]);
        // Punctuation alone in a body is left to reading the messages.
        assert!(index.substring_query(ImapKey::Body, "?!").is_none());
    }

    #[test]
    fn values_are_folded_and_spaced_once() {
        assert_eq!(fold("Re:  Café\tCRÈME"), "re: cafe creme");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn a_value_is_indexed_as_its_suffixes() {
        assert_eq!(
            texts(&value_suffixes(" Ab c ")),
            [
                ("ab c".to_string(), 0),
                ("b c".to_string(), 1),
                (" c".to_string(), 2),
                ("c".to_string(), 3)
            ]
        );
        let long = "x".repeat(40);
        let suffixes = value_suffixes(&long);
        assert_eq!(suffixes.tokens.len(), 40);
        assert_eq!(suffixes.tokens[0].text.chars().count(), SUFFIX_CHARS);
        assert_eq!(suffixes.tokens[39].text, "x");
    }

    #[test]
    fn body_words_give_each_suffix_once() {
        let suffixes = word_suffixes(["Invoice invoice", "voice"]);
        assert_eq!(
            suffixes
                .tokens
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>(),
            ["ce", "e", "ice", "invoice", "nvoice", "oice", "voice"]
        );
    }
}
