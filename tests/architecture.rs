//! The shape of the crate, checked: the layers of ../shared/DESIGN.md §2
//! (no import cycles, no arrow from a lower layer to a higher one), a store
//! whose macros only compile statements, and public type names that mean
//! one thing each. Read from the source, so a change that breaks the shape
//! fails here, not in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and its layer, lowest first. A module may import
/// only modules of a strictly lower layer. `app` is the crate root
/// (lib.rs: `App`, the shared handles).
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("mime", 1),
    ("config", 2),
    ("tls", 3),
    ("passwords", 3),
    ("templates", 3),
    ("dkim", 3),
    ("disk", 3),
    ("verify", 3),
    ("private_files", 2),
    ("telemetry", 2),
    ("store", 3),
    ("net", 4),
    ("rules", 5),
    ("search", 5),
    ("app", 6),
    ("ingest", 7),
    ("outbound", 7),
    ("import", 8),
    ("reports", 8),
    ("submission", 8),
    ("smtp", 9),
    ("imap", 9),
    ("http", 9),
    ("server", 10),
    ("cli", 11),
    ("fuzzing", 11),
];

/// Macros the store may define: each compiles one statement body (or one
/// row decoder) per backend, and decides nothing.
const STORE_MACROS: &[&str] = &[
    "dispatch",
    "dispatch_read",
    "on_tx",
    "item_from_row",
    "ticket_from_row",
    "message_from_row",
    "mailbox_from_row",
    "member_from_row",
    "indexable_from_row",
    "content_from_row",
    "article_from_row",
    "revision_from_row",
    "template_from_row",
    "later_from_row",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments and doc comments; block
/// comments are not used in this crate).
fn code(path: &Path) -> String {
    code_of(&std::fs::read_to_string(path).unwrap_or_default())
}

fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // Not inside a string literal that contains "//" (URLs).
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file belongs to, and how deep it is below it
/// (src/x.rs and src/x/mod.rs: 0; src/x/y.rs: 1).
fn module_of(path: &Path) -> (String, usize) {
    let relative = path.strip_prefix(src()).unwrap_or(path);
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [file] if file == "lib" || file == "main" => ("app".into(), 0),
        [file] => (file.clone(), 0),
        [dir, rest @ ..] => {
            let depth = rest.len() - usize::from(rest.last().is_some_and(|l| l == "mod"));
            (dir.clone(), depth)
        }
        [] => ("app".into(), 0),
    }
}

/// The crate's top-level modules a file names: `crate::x`, `$crate::x`,
/// `use crate::{x, y}`, and `super::` paths that climb out of the file's
/// own module. Items of the crate root (`App`, `AppError`) are `app`.
fn imports(path: &Path) -> BTreeSet<String> {
    let (own, depth) = module_of(path);
    imports_in(&code(path), &own, depth)
}

/// [`imports`] of a piece of code of module `own`, `depth` below its top.
fn imports_in(code: &str, own: &str, depth: usize) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let root_item = |name: &str| -> String {
        if name.chars().next().is_some_and(char::is_uppercase) {
            "app".to_string()
        } else {
            name.to_string()
        }
    };
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.insert(root_item(&ident(rest)));
            continue;
        };
        // `crate::{a::x, b::{y, z}}`: the first name of each item.
        let mut depth = 0;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                    found.insert(root_item(&ident(&group[i..])));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    let climb = regex::Regex::new(r"((?:\bsuper::)+)([A-Za-z_][A-Za-z0-9_]*)").expect("regex");
    // `super::` from src/x.rs (depth 0) names the root; from src/x/y.rs
    // (depth 1) `super::super::`.
    for capture in climb.captures_iter(code) {
        let levels = capture
            .get(1)
            .map(|m| m.as_str().matches("super").count())
            .unwrap_or(0);
        if levels > depth {
            let name = capture.get(2).map(|m| m.as_str()).unwrap_or_default();
            found.insert(root_item(name));
        }
    }
    found.remove(own);
    found.remove("self");
    found
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let (module, _) = module_of(file);
        let Some(from) = layer(&module) else {
            wrong.push(format!(
                "{}: module '{module}' has no layer in LAYERS",
                file.display()
            ));
            continue;
        };
        for target in imports(file) {
            let Some(to) = layer(&target) else {
                // Not a module of ours (a macro or item of an outside crate).
                continue;
            };
            graph
                .entry(module.clone())
                .or_default()
                .insert(target.clone());
            if to >= from {
                wrong.push(format!(
                    "{}: {module} (layer {from}) imports {target} (layer {to})",
                    file.strip_prefix(src()).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that point up or sideways:\n{}",
        wrong.join("\n")
    );
    // Strictly lower layers cannot form a cycle; the graph is kept to say
    // what depends on what when this fails.
    assert!(
        graph.get("domain").is_none_or(BTreeSet::is_empty),
        "{graph:?}"
    );
}

#[test]
fn the_layer_check_sees_the_ways_modules_are_named() {
    let samples: [(&str, usize, &[&str]); 7] = [
        (
            "use crate::{store::Store, domain::x};",
            0,
            &["domain", "store"],
        ),
        ("let a = crate::imap::render::header_end(b);", 0, &["imap"]),
        ("$crate::store::Backend::Sqlite", 1, &["store"]),
        ("use crate::App;", 0, &["app"]),
        ("// use crate::smtp::Stream;", 0, &[]),
        ("use super::App;", 0, &["app"]),
        (
            "use super::super::rules::Rules; use super::Filing;",
            1,
            &["rules"],
        ),
    ];
    for (text, depth, expected) in samples {
        let found = imports_in(&code_of(text), "ingest", depth);
        let expected: BTreeSet<String> = expected.iter().map(|m| m.to_string()).collect();
        assert_eq!(found, expected, "{text}");
    }
}

#[test]
fn store_macros_only_compile_statements() {
    let mut files = Vec::new();
    rust_files(&src().join("store"), &mut files);
    let definition = regex::Regex::new(r"macro_rules!\s*([A-Za-z_][A-Za-z0-9_]*)").expect("regex");
    let mut unexpected = Vec::new();
    for file in &files {
        for capture in definition.captures_iter(&code(file)) {
            let name = capture.get(1).map(|m| m.as_str()).unwrap_or_default();
            if !STORE_MACROS.contains(&name) {
                unexpected.push(format!("{}: macro_rules! {name}", file.display()));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "macros in the store beyond the per-backend statement and row helpers \
         (decisions belong in domain/, as functions):\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn public_type_names_are_unique() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let declaration =
        regex::Regex::new(r"(?m)^\s*pub (?:struct|enum|type|trait) ([A-Za-z_][A-Za-z0-9_]*)")
            .expect("regex");
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        for capture in declaration.captures_iter(&code(file)) {
            let name = capture.get(1).map(|m| m.as_str()).unwrap_or_default();
            seen.entry(name.to_string()).or_default().push(
                file.strip_prefix(src())
                    .unwrap_or(file)
                    .display()
                    .to_string(),
            );
        }
    }
    let twice: Vec<String> = seen
        .iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(name, files)| format!("{name}: {}", files.join(", ")))
        .collect();
    assert!(
        twice.is_empty(),
        "public types that share a name:\n{}",
        twice.join("\n")
    );
}
