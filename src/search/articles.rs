//! Article suggestions: the published public knowledge-base articles that
//! read like a customer's new message, for its acknowledgement.
//!
//! A small tantivy index in memory holds the titles of those articles
//! (analysed like the "similar tickets" comparison: stems, without the
//! words every mail has). It is derived from the store like every index,
//! and built again when the knowledge base changed (each change adds a
//! revision, so the newest revision's id tells).
//!
//! BM25 scores mean nothing on their own, so the threshold is on what
//! they found: an article is suggested when more than half of the
//! distinct words of its title, and at least two, occur in the message.
//! "Printer on fire" needs both "printer" and "fire"; an unrelated message
//! gets no suggestion. As only title words can pass that test, only titles are
//! indexed and queried (the query stays small however long the articles
//! are); the BM25 score orders the articles that pass.

use super::SearchError;
use super::tokenizer::similarity_analyzer;
use crate::store::{Article, ArticleFilter, Store};
use std::collections::{HashMap, HashSet};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::{Index, IndexReader, TantivyDocument, Term, doc};

/// The name the analyzer is registered under.
const ANALYZER: &str = "kb_words";

/// How many of the message's words make the query at most.
const MAX_QUERY_TERMS: usize = 200;

/// Title words a message must share with an article at least: one
/// shared word (a title of one word, or "printer" alone) says too little.
const MIN_TITLE_WORDS: usize = 2;

/// How many of the best-scoring articles are looked at.
const CANDIDATES: usize = 20;

/// The suggestion index, built on first use and again after a change of
/// the knowledge base.
#[derive(Default)]
pub struct ArticleIndex {
    built: tokio::sync::Mutex<Option<Built>>,
}

struct Built {
    /// The newest revision it was built from.
    generation: i64,
    reader: IndexReader,
    id: Field,
    title: Field,
    articles: HashMap<i64, Article>,
    /// Each article's distinct title words, analysed.
    title_words: HashMap<i64, HashSet<String>>,
}

fn words(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while stream.advance() {
        words.push(stream.token().text.clone());
    }
    words
}

fn build(generation: i64, articles: Vec<Article>) -> Result<Built, SearchError> {
    let mut schema = Schema::builder();
    let id = schema.add_u64_field("id", INDEXED | STORED);
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let title = schema.add_text_field("title", text);
    let index = Index::create_in_ram(schema.build());
    index.tokenizers().register(ANALYZER, similarity_analyzer());
    let mut writer = index.writer_with_num_threads(1, 15_000_000)?;
    let mut analyzer = similarity_analyzer();
    let mut title_words = HashMap::new();
    for article in &articles {
        writer.add_document(doc!(
            id => u64::try_from(article.id).unwrap_or_default(),
            title => article.content.title.as_str(),
        ))?;
        title_words.insert(
            article.id,
            words(&mut analyzer, &article.content.title)
                .into_iter()
                .collect(),
        );
    }
    writer.commit()?;
    let reader = index.reader()?;
    Ok(Built {
        generation,
        reader,
        id,
        title,
        articles: articles.into_iter().map(|a| (a.id, a)).collect(),
        title_words,
    })
}

impl ArticleIndex {
    /// Up to `max` published public articles that read like the message,
    /// best first.
    pub async fn suggest(
        &self,
        store: &Store,
        subject: &str,
        body: &str,
        max: usize,
    ) -> Result<Vec<Article>, SearchError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let generation = store.kb_generation().await?;
        let mut built = self.built.lock().await;
        if built.as_ref().map(|b| b.generation) != Some(generation) {
            let articles = store
                .kb_articles(&ArticleFilter {
                    public_only: true,
                    ..ArticleFilter::default()
                })
                .await?;
            *built = Some(build(generation, articles)?);
        }
        let Some(built) = built.as_ref() else {
            return Ok(Vec::new());
        };
        built.suggest(subject, body, max)
    }
}

impl Built {
    fn suggest(&self, subject: &str, body: &str, max: usize) -> Result<Vec<Article>, SearchError> {
        if self.articles.is_empty() {
            return Ok(Vec::new());
        }
        let mut analyzer = similarity_analyzer();
        let mut message_words: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for word in words(&mut analyzer, subject)
            .into_iter()
            .chain(words(&mut analyzer, body))
        {
            if message_words.len() >= MAX_QUERY_TERMS {
                break;
            }
            if seen.insert(word.clone()) {
                message_words.push(word);
            }
        }
        if message_words.is_empty() {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = message_words
            .iter()
            .map(|word| {
                let query: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.title, word),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, query)
            })
            .collect();
        let searcher = self.reader.searcher();
        let hits = searcher.search(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(CANDIDATES).order_by_score(),
        )?;
        let mut suggested = Vec::new();
        for (_score, address) in hits {
            let document: TantivyDocument = searcher.doc(address)?;
            let Some(id) = document
                .get_first(self.id)
                .and_then(|v| v.as_u64())
                .and_then(|id| i64::try_from(id).ok())
            else {
                continue;
            };
            let (Some(article), Some(title)) = (self.articles.get(&id), self.title_words.get(&id))
            else {
                continue;
            };
            let found = title.iter().filter(|w| seen.contains(*w)).count();
            if found >= MIN_TITLE_WORDS && found * 2 > title.len() {
                suggested.push(article.clone());
                if suggested.len() == max {
                    break;
                }
            }
        }
        Ok(suggested)
    }
}
