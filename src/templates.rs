//! Mail templates (minijinja). A template's first lines are headers
//! (`Subject:`), then a blank line, then the body; the built-in versions are
//! compiled in and a directory of overrides may replace them.

use minijinja::Environment;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template {name}: {source}")]
    Syntax {
        name: String,
        source: minijinja::Error,
    },
    #[error("template {name} renders no Subject: line before its body")]
    NoSubject { name: String },
}

/// Cheap to clone: the compiled templates are shared.
#[derive(Clone)]
pub struct Templates {
    env: std::sync::Arc<Environment<'static>>,
}

/// A rendered template: the subject and the plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

const BUILT_IN: &[(&str, &str)] = &[
    ("ack.txt", include_str!("../templates/ack.txt")),
    (
        "escalation.txt",
        include_str!("../templates/escalation.txt"),
    ),
    (
        "satisfaction.txt",
        include_str!("../templates/satisfaction.txt"),
    ),
];

impl Templates {
    /// The built-in templates, each replaced by `DIR/<name>` when present.
    pub fn load(overrides: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        for (name, source) in BUILT_IN {
            let source = match overrides.map(|dir| dir.join(name)) {
                Some(path) if path.exists() => {
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                        path: path.display().to_string(),
                        source,
                    })?
                }
                _ => (*source).to_string(),
            };
            env.add_template_owned(*name, source)
                .map_err(|source| TemplateError::Syntax {
                    name: (*name).to_string(),
                    source,
                })?;
        }
        // Other templates in the directory (acknowledgements that rules
        // choose by name) are loaded too.
        if let Some(dir) = overrides
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if !name.ends_with(".txt") || BUILT_IN.iter().any(|(n, _)| *n == name) {
                    continue;
                }
                let path = entry.path();
                let source =
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                env.add_template_owned(name.clone(), source)
                    .map_err(|source| TemplateError::Syntax { name, source })?;
            }
        }
        Ok(Templates {
            env: std::sync::Arc::new(env),
        })
    }

    pub fn render(&self, name: &str, context: impl Serialize) -> Result<Rendered, TemplateError> {
        let syntax = |source| TemplateError::Syntax {
            name: name.to_string(),
            source,
        };
        let text = self
            .env
            .get_template(name)
            .map_err(syntax)?
            .render(minijinja::value::Serde(context))
            .map_err(syntax)?;
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or(("", &text));
        let subject = head
            .lines()
            .find_map(|line| line.strip_prefix("Subject:"))
            .map(|s| s.trim().to_string())
            .ok_or_else(|| TemplateError::NoSubject {
                name: name.to_string(),
            })?;
        Ok(Rendered {
            subject,
            body: body.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_acknowledgement_names_the_ticket() {
        let templates = Templates::load(None).map_err(|e| e.to_string());
        let rendered = templates.and_then(|t| {
            t.render(
                "ack.txt",
                json!({
                    "ticket": {"number": 42, "subject": "Printer on fire"},
                    "customer": {"name": "Alice", "address": "alice@example.com"},
                    "queue": {"name": "support", "address": "support@example.test"},
                }),
            )
            .map_err(|e| e.to_string())
        });
        let Ok(rendered) = rendered else {
            panic!("{rendered:?}");
        };
        assert_eq!(rendered.subject, "[#42] Printer on fire");
        assert!(rendered.body.starts_with("Hello Alice,"));
        assert!(rendered.body.contains("ticket #42"));
    }

    #[test]
    fn without_subject_and_name_the_acknowledgement_is_neutral() {
        let templates = Templates::load(None).map_err(|e| e.to_string());
        let rendered = templates.and_then(|t| {
            t.render(
                "ack.txt",
                json!({
                    "ticket": {"number": 7},
                    "customer": {"address": "alice@example.com"},
                    "queue": {"name": "support", "address": "support@example.test"},
                    "authenticated": false,
                }),
            )
            .map_err(|e| e.to_string())
        });
        let Ok(rendered) = rendered else {
            panic!("{rendered:?}");
        };
        assert_eq!(rendered.subject, "We received your message [#7]");
        assert!(rendered.body.starts_with("Hello,\n"), "{}", rendered.body);
        assert!(
            rendered.body.contains("is now ticket #7.\n\nAn agent"),
            "{}",
            rendered.body
        );
    }

    #[test]
    fn an_override_without_subject_is_rejected_at_render() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { return };
        let written = std::fs::write(dir.path().join("ack.txt"), "no header here\n\nbody");
        assert!(written.is_ok());
        let templates = Templates::load(Some(dir.path()));
        let err = templates
            .map_err(|e| e.to_string())
            .and_then(|t| t.render("ack.txt", json!({})).map_err(|e| e.to_string()));
        assert!(err.is_err_and(|e| e.contains("no Subject")));
    }
}
