//! The fuzz targets' seeds, replayed on stable Rust (cargo-fuzz needs
//! nightly; see fuzz/README.md): the seeds in fuzz/seeds and, for the
//! message parsers, every sample of the shared MIME corpus.

use std::path::PathBuf;

fn files(dir: PathBuf) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

#[test]
fn smtp_session_seeds() {
    let harness = postdesk::fuzzing::SmtpHarness::new();
    for seed in files(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/smtp_session"
    ))) {
        let data = std::fs::read(&seed).expect("seed");
        let replies = String::from_utf8_lossy(&harness.run(&data)).to_string();
        assert!(replies.starts_with("220 "), "{}: {replies}", seed.display());
    }
}

fn corpus_samples() -> Vec<PathBuf> {
    let corpus = std::env::var_os("POSTDESK_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")));
    files(corpus.join("mime"))
}

#[test]
fn inspect_message_seeds() {
    for sample in corpus_samples() {
        let data = std::fs::read(&sample).expect("sample");
        postdesk::fuzzing::inspect_message(&data);
        // Truncations and a flipped byte on the way, as a fuzzer would try.
        postdesk::fuzzing::inspect_message(&data[..data.len() / 2]);
        let mut flipped = data.clone();
        if let Some(b) = flipped.get_mut(data.len() / 3) {
            *b ^= 0x5a;
        }
        postdesk::fuzzing::inspect_message(&flipped);
    }
}

#[test]
fn mime_render_seeds() {
    for seed in files(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/mime_render"
    ))) {
        let data = std::fs::read(&seed).expect("seed");
        postdesk::fuzzing::mime_render(&data);
    }
    for sample in corpus_samples() {
        let data = std::fs::read(&sample).expect("sample");
        postdesk::fuzzing::mime_render(&data);
        // A truncation, as a fuzzer would try: parts cut off mid-way.
        postdesk::fuzzing::mime_render(&data[..data.len() / 2]);
    }
}
