//! One document per message; the ticket's state (status, queue, tags…)
//! is copied onto each of its messages, so that a filter on it is a term
//! lookup and not a join. When the ticket changes, its messages are
//! indexed again (see `indexer`).

use super::tokenizer::{keyword_analyzer, text_analyzer};
use tantivy::Index;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, STORED, Schema,
    TextFieldIndexing, TextOptions,
};

/// Part of the index directory's name: a binary with another schema
/// builds its own index next to the old one instead of misreading it (and
/// the server removes the older ones once it runs, see
/// `SearchIndex::remove_older_versions`). 2: the substring fields of IMAP
/// SEARCH.
pub const SCHEMA_VERSION: u32 = 2;

pub const TEXT_TOKENIZER: &str = "postdesk_text";
pub const KEYWORD_TOKENIZER: &str = "postdesk_keyword";

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// `messages.id`: what a document is replaced and deleted by.
    pub message: Field,
    pub ticket: Field,
    pub kind: Field,
    pub queue: Field,
    pub status: Field,
    pub priority: Field,
    pub tag: Field,
    /// `spam` or `trash`; absent for a ticket in normal standing.
    pub disposition: Field,
    pub customer: Field,
    pub from: Field,
    pub to: Field,
    pub cc: Field,
    pub subject: Field,
    pub body: Field,
    pub quoted: Field,
    pub attachment: Field,
    /// When the message arrived.
    pub date: Field,
    /// IMAP SEARCH SUBJECT/FROM/TO/CC: every suffix of the folded value
    /// (see `substring`), with positions.
    pub subject_suffixes: Field,
    pub from_suffixes: Field,
    pub to_suffixes: Field,
    pub cc_suffixes: Field,
    /// IMAP SEARCH BODY/TEXT: every suffix of every word of the body, the
    /// quoted text and the attachment names, once per message.
    pub word_suffixes: Field,
}

impl Fields {
    /// The full-text fields a word without `field:` is looked for in, with
    /// their weight.
    pub fn default_text(&self) -> [(Field, f32); 8] {
        [
            (self.subject, 2.0),
            (self.body, 1.0),
            (self.attachment, 1.0),
            (self.from, 0.8),
            (self.customer, 0.8),
            (self.to, 0.5),
            (self.cc, 0.5),
            (self.quoted, 0.2),
        ]
    }
}

pub fn build() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |stored: bool| {
        let options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TEXT_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    // Pre-tokenized by `substring`; the tokenizer named is never used.
    let suffixes = |option: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(KEYWORD_TOKENIZER)
                .set_index_option(option),
        )
    };
    let keyword = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(KEYWORD_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_stored();
    let fields = Fields {
        message: builder.add_u64_field("message", INDEXED | STORED | FAST),
        ticket: builder.add_u64_field("ticket", INDEXED | STORED | FAST),
        kind: builder.add_text_field("kind", keyword.clone()),
        queue: builder.add_text_field("queue", keyword.clone()),
        status: builder.add_text_field("status", keyword.clone()),
        priority: builder.add_text_field("priority", keyword.clone()),
        tag: builder.add_text_field("tag", keyword.clone()),
        disposition: builder.add_text_field("disposition", keyword),
        customer: builder.add_text_field("customer", text(false)),
        from: builder.add_text_field("from", text(true)),
        to: builder.add_text_field("to", text(false)),
        cc: builder.add_text_field("cc", text(false)),
        subject: builder.add_text_field("subject", text(true)),
        body: builder.add_text_field("body", text(true)),
        quoted: builder.add_text_field("quoted", text(false)),
        attachment: builder.add_text_field("attachment", text(true)),
        date: builder.add_date_field(
            "date",
            DateOptions::from(INDEXED | STORED | FAST).set_precision(DateTimePrecision::Seconds),
        ),
        subject_suffixes: builder.add_text_field(
            "subject_suffixes",
            suffixes(IndexRecordOption::WithFreqsAndPositions),
        ),
        from_suffixes: builder.add_text_field(
            "from_suffixes",
            suffixes(IndexRecordOption::WithFreqsAndPositions),
        ),
        to_suffixes: builder.add_text_field(
            "to_suffixes",
            suffixes(IndexRecordOption::WithFreqsAndPositions),
        ),
        cc_suffixes: builder.add_text_field(
            "cc_suffixes",
            suffixes(IndexRecordOption::WithFreqsAndPositions),
        ),
        word_suffixes: builder.add_text_field("word_suffixes", suffixes(IndexRecordOption::Basic)),
    };
    (builder.build(), fields)
}

pub fn register_tokenizers(index: &Index) {
    index.tokenizers().register(TEXT_TOKENIZER, text_analyzer());
    index
        .tokenizers()
        .register(KEYWORD_TOKENIZER, keyword_analyzer());
}
