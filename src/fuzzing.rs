//! Entry points of the fuzz targets in `fuzz/`, kept in the library so that
//! `tests/fuzz_replay.rs` replays their seeds on stable Rust in every test
//! run (cargo-fuzz itself needs nightly).

use crate::config::Config;
use crate::smtp::{Limits, Session};
use crate::{App, ingest};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every parser a stored message goes through (ingest and the search
/// index), on arbitrary bytes.
pub fn inspect_message(data: &[u8]) {
    let inspection = ingest::inspect(data);
    // Whatever the input, the title is what its subject says, cleaned.
    if let Some(subject) = &inspection.subject {
        assert!(inspection.title.len() <= subject.len() + 1);
    }
    // What the search index reads of it, and its words.
    let text = crate::search::document::MessageText::parse(data);
    for field in [&text.subject, &text.from, &text.body, &text.quoted] {
        for (_, word) in crate::search::query::analyze(field) {
            assert!(!word.is_empty());
        }
    }
    // The same bytes as a search query: an answer or an error, never a panic.
    let _ = crate::search::query::parse(&String::from_utf8_lossy(data));
}

/// A real SMTP session (over an in-memory pipe) against a real store in a
/// temporary directory, fed arbitrary client bytes.
pub struct SmtpHarness {
    runtime: tokio::runtime::Runtime,
    app: Arc<App>,
    limits: Arc<Limits>,
    dir: std::path::PathBuf,
}

impl SmtpHarness {
    pub fn new() -> SmtpHarness {
        crate::tls::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzz harness runtime: {e}"));
        let dir =
            std::env::temp_dir().join(format!("postdesk-fuzz-{:016x}", rand::random::<u64>()));
        let mut config = Config {
            hostname: "fuzz.test".into(),
            data_dir: dir.clone(),
            ..Config::default()
        };
        config.smtp.max_message_size = 64 * 1024;
        config.smtp.max_recipients = 4;
        config.smtp.command_timeout = 1;
        config.smtp.data_timeout = 1;
        let limits = Arc::new(Limits::from_config(&config.smtp));
        let app = runtime
            .block_on(App::open(config))
            .unwrap_or_else(|e| panic!("fuzz harness store: {e}"));
        SmtpHarness {
            runtime,
            app,
            limits,
            dir,
        }
    }

    /// Runs one session: the client sends `data`, closes its side, and
    /// reads whatever the server answers until it hangs up.
    pub fn run(&self, data: &[u8]) -> Vec<u8> {
        self.runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(256 * 1024);
            let peer = "127.0.0.1:25".parse().unwrap_or_else(|e| panic!("{e}"));
            // Held until the session ends: a fuzzed session never shuts down.
            let never_triggered = crate::net::ShutdownTrigger::new();
            let session = Session::new(
                self.app.clone(),
                crate::smtp::Role::Inbound,
                peer,
                Box::new(server),
                false,
                None,
                self.limits.clone(),
                never_triggered.subscribe(),
            );
            let task = tokio::spawn(session.run());
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut replies = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut replies))
                    .await;
            assert!(read.is_ok(), "the session neither answered nor closed");
            let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert!(
                matches!(ended, Ok(Ok(_))),
                "the session task did not end cleanly"
            );
            for line in replies.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let code = line.get(..3).and_then(|c| std::str::from_utf8(c).ok());
                assert!(
                    code.is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit())),
                    "a reply line without a code: {:?}",
                    String::from_utf8_lossy(line)
                );
            }
            replies
        })
    }
}

impl Default for SmtpHarness {
    fn default() -> Self {
        SmtpHarness::new()
    }
}

impl Drop for SmtpHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
