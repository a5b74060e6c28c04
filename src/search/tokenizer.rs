//! Words for the index: Latin, Cyrillic, Greek… split at non-letters;
//! Chinese, Japanese and Korean, which have no spaces between words, as
//! overlapping character pairs.
//!
//! Bigrams are what Lucene's CJKAnalyzer does: no dictionary, every word
//! of two or more characters is found as a phrase of its pairs, and a
//! single character still matches on its own. The dictionary tokenizers
//! (lindera, jieba) segment better but bring tens of megabytes of
//! dictionaries per language into a one-binary server; the tantivy
//! tokenizers have no CJK splitting at all, hence this one.

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, RemoveLongFilter, Stemmer,
    StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The analyzer of every full-text field: words (CJK as bigrams),
/// lowercased, accents folded ("Café" finds "cafe"), English stems
/// ("connections" finds "connection").
pub fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(MailTokenizer::default())
        .filter(RemoveLongFilter::limit(48))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Words as written, lowercased and accents folded, not stemmed: what
/// IMAP SEARCH matches substrings of (see `substring`).
pub fn word_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(MailTokenizer::default())
        .filter(RemoveLongFilter::limit(48))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// A whole value lowercased and accents folded, as one token.
pub fn folding_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The analyzer of the "similar tickets" comparison: as [`text_analyzer`],
/// without the words every support mail has (greetings, pronouns,
/// auxiliaries), which would otherwise relate any two tickets.
pub fn similarity_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(MailTokenizer::default())
        .filter(RemoveLongFilter::limit(48))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(StopWordFilter::remove(
            COMMON_WORDS.iter().map(|w| w.to_string()),
        ))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// English function words and the phrases of mail itself.
const COMMON_WORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "best", "but", "by", "can", "cannot", "could", "dear", "did",
    "do", "does", "doing", "done", "each", "even", "ever", "for", "from", "get", "gets", "got",
    "had", "has", "have", "having", "he", "hello", "her", "here", "hi", "him", "his", "how", "i",
    "if", "in", "into", "is", "it", "its", "just", "kind", "let", "like", "many", "may", "me",
    "more", "most", "much", "must", "my", "need", "no", "not", "now", "of", "on", "one", "only",
    "or", "other", "our", "out", "please", "re", "regards", "same", "see", "she", "should",
    "since", "so", "some", "still", "such", "thank", "thanks", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "to", "too", "up", "us", "use",
    "very", "want", "was", "we", "were", "what", "when", "where", "which", "while", "who", "why",
    "will", "with", "would", "you", "your", "fw", "fwd", "wrote",
];

/// The analyzer of keyword fields (status, queue, tag…): the whole value,
/// lowercased.
pub fn keyword_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .build()
}

/// Scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31F0..=0x31FF     // Katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK extensions B–F, compatibility supplement
}

#[derive(Clone, Default)]
pub struct MailTokenizer {
    token: Token,
}

pub struct MailTokenStream<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    token: &'a mut Token,
    /// The last CJK character of the current run, and whether it was
    /// already part of an emitted pair.
    cjk: Option<(usize, char, bool)>,
    /// A word found while a lone CJK character was still to be emitted.
    word: Option<(usize, usize)>,
}

impl Tokenizer for MailTokenizer {
    type TokenStream<'a> = MailTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MailTokenStream<'a> {
        self.token.reset();
        MailTokenStream {
            text,
            chars: text.char_indices().peekable(),
            token: &mut self.token,
            cjk: None,
            word: None,
        }
    }
}

impl MailTokenStream<'_> {
    fn emit(&mut self, from: usize, to: usize) -> bool {
        self.token.position = self.token.position.wrapping_add(1);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        true
    }

    /// The end of a word of non-CJK letters and digits starting at `from`.
    fn word_end(&mut self, from: usize) -> usize {
        let mut end = from;
        while let Some(&(offset, c)) = self.chars.peek() {
            if !c.is_alphanumeric() || is_cjk(c) {
                break;
            }
            end = offset + c.len_utf8();
            self.chars.next();
        }
        end
    }

    /// A CJK run ended: its only character, if it never formed a pair.
    fn lone_cjk(&mut self) -> Option<(usize, usize)> {
        match self.cjk.take() {
            Some((offset, c, false)) => Some((offset, offset + c.len_utf8())),
            _ => None,
        }
    }
}

impl TokenStream for MailTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if let Some((from, to)) = self.word.take() {
            return self.emit(from, to);
        }
        while let Some((offset, c)) = self.chars.next() {
            if is_cjk(c) {
                if let Some((previous, _, _)) = self.cjk {
                    self.cjk = Some((offset, c, true));
                    return self.emit(previous, offset + c.len_utf8());
                }
                self.cjk = Some((offset, c, false));
                continue;
            }
            let lone = self.lone_cjk();
            if c.is_alphanumeric() {
                let end = self.word_end(offset + c.len_utf8());
                match lone {
                    Some((from, to)) => {
                        self.word = Some((offset, end));
                        return self.emit(from, to);
                    }
                    None => return self.emit(offset, end),
                }
            }
            if let Some((from, to)) = lone {
                return self.emit(from, to);
            }
        }
        if let Some((from, to)) = self.lone_cjk() {
            return self.emit(from, to);
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<(String, usize)> {
        let mut analyzer = text_analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push((token.text.clone(), token.position));
        }
        out
    }

    fn words(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn latin_words_are_lowercased_folded_and_stemmed() {
        assert_eq!(
            words("VPN connections keep Resetting, café!"),
            ["vpn", "connect", "keep", "reset", "cafe"]
        );
        assert_eq!(words("Grüße aus München"), ["gruss", "aus", "munchen"]);
        assert_eq!(words("alice@example.com"), ["alic", "exampl", "com"]);
    }

    #[test]
    fn cjk_runs_become_overlapping_pairs() {
        assert_eq!(
            tokens("数据库连接"),
            [
                ("数据".to_string(), 0),
                ("据库".to_string(), 1),
                ("库连".to_string(), 2),
                ("连接".to_string(), 3)
            ]
        );
        // A lone character is kept; mixed text keeps its Latin words.
        assert_eq!(words("错 error"), ["错", "error"]);
        assert_eq!(
            words("VPN接続エラー"),
            ["vpn", "接続", "続エ", "エラ", "ラー"]
        );
        assert_eq!(words("서버 오류"), ["서버", "오류"]);
        assert_eq!(words("a字b"), ["a", "字", "b"]);
    }

    #[test]
    fn empty_and_punctuation_only_text_has_no_tokens() {
        assert!(words("").is_empty());
        assert!(words("--- ... !!!").is_empty());
    }
}
