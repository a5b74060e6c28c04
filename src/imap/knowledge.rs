//! The Knowledge folders (issue 19): agents browse the knowledge base in
//! their mail client. `Knowledge` holds every published article,
//! `Knowledge/<category>` those of one category, `Knowledge/Drafts` the
//! drafts; one message per article, its newest revision rendered as a
//! mail with a text and an HTML part. Internal articles are marked in the
//! subject (`[Internal]`), in a banner and with the keyword `internal`.
//!
//! What an agent sees is what `domain::knowledge` lets agents read: every
//! published article (internal ones too, marked), whatever its category;
//! in `Knowledge/Drafts` only the drafts they may edit (the categories of
//! their queues and the shared ones, see `knowledge::may_write_category`).
//! The folders are read-only (selected `[READ-ONLY]`; APPEND, STORE,
//! COPY/MOVE into them are refused): an agent writes an article by
//! mail to the knowledge address, and "Reply" on an article's message is
//! exactly that (its Reply-To is the knowledge address, its Message-ID
//! names the article), so a reply is the article's next revision.
//!
//! A message's bytes never change once shown: each revision is rendered
//! once into `kb_revision_mail` and kept; a new revision is a new message
//! under a new UID, and the old one is expunged.

use super::session::{ImapSession, LoggedIn};
use crate::domain::knowledge::{self, ArticleState, Visibility};
use crate::domain::views::{Folder, join_flags};
use crate::store::{Revision, StoreError, ViewRevision};
use base64::Engine;

/// The keyword an internal article's message carries.
pub const INTERNAL_KEYWORD: &str = "internal";

/// The flags a Knowledge member shows: seen (the folders are read-only,
/// nothing could ever mark them read), `\Draft` for drafts, `internal`
/// for internal articles.
pub fn article_flags(revision: &ViewRevision) -> String {
    let mut flags = vec!["\\Seen"];
    if revision.state == ArticleState::Draft {
        flags.push("\\Draft");
    }
    if revision.visibility == Visibility::Internal {
        flags.push(INTERNAL_KEYWORD);
    }
    join_flags(flags)
}

/// The Message-ID of a revision's mail (without brackets).
pub fn message_id(domain: &str, article: i64, number: i64) -> String {
    format!("kb{article}.r{number}@{domain}")
}

/// What the rendering needs besides the revision.
pub struct MailSite<'a> {
    /// Where replies go: the knowledge address.
    pub knowledge_address: &'a str,
    pub message_id_domain: &'a str,
    /// The help center's base URL (no trailing slash).
    pub help_center: &'a str,
}

/// A revision as a mail: deterministic bytes (a function of the revision
/// and the site), with a text part (the article's Markdown) and an HTML
/// part (its rendered HTML), each in base64 so any text survives.
pub fn render(revision: &Revision, site: &MailSite<'_>) -> Vec<u8> {
    let content = &revision.content;
    let internal = content.visibility == Visibility::Internal;
    let prefix = match (content.state, internal) {
        (ArticleState::Draft, _) => "[Draft] ",
        (ArticleState::Archived, _) => "[Archived] ",
        (ArticleState::Published, true) => "[Internal] ",
        (ArticleState::Published, false) => "",
    };
    let subject = format!("{prefix}{}", content.title);
    let path = knowledge::article_path(revision.article, &content.title);
    let status = format!(
        "Article {} revision {} ({}, {}, {}), by {} on {}.",
        revision.article,
        revision.number,
        content.category,
        content.state,
        content.visibility,
        revision.author,
        revision.at.format("%Y-%m-%d %H:%M UTC"),
    );
    let banner = internal.then_some(
        "INTERNAL: for agents only. Never send this text to a customer (#kb refuses it).",
    );
    let public_link = knowledge::is_public(content.state, content.visibility)
        .then(|| format!("{}{path}", site.help_center));
    let how = "Reply to this message (to the knowledge address) to write the next revision; \
               #publish, #internal, #public, #category NAME, #archive at the top set its state.";

    let mut text = String::new();
    if let Some(banner) = banner {
        text.push_str(&format!("*** {banner} ***\n\n"));
    }
    text.push_str(content.body_text.trim_end());
    text.push_str("\n\n-- \n");
    text.push_str(&status);
    text.push('\n');
    if let Some(link) = &public_link {
        text.push_str(&format!("Help center: {link}\n"));
    }
    text.push_str(how);
    text.push('\n');

    let mut html = String::from("<!doctype html><html><head><meta charset=\"utf-8\"></head><body>");
    if let Some(banner) = banner {
        html.push_str(&format!(
            "<p style=\"background:#fde2e1;padding:.5em;font-weight:bold\">{}</p>",
            escape(banner)
        ));
    }
    html.push_str(&format!("<h1>{}</h1>", escape(&content.title)));
    html.push_str(&content.body_html);
    html.push_str(&format!(
        "<hr><p style=\"color:#666;font-size:small\">{}",
        escape(&status)
    ));
    if let Some(link) = &public_link {
        html.push_str(&format!(
            "<br>Help center: <a href=\"{0}\">{0}</a>",
            escape(link)
        ));
    }
    html.push_str(&format!("<br>{}</p></body></html>", escape(how)));

    let id = message_id(site.message_id_domain, revision.article, revision.number);
    let boundary = format!("=_postdesk_kb_{}_{}", revision.article, revision.number);
    let mut out = String::new();
    out.push_str(&format!("Date: {}\r\n", revision.at.to_rfc2822()));
    // The author is an agent's address, or the system user who ran the
    // command line ("root (uid 0)"): then a name on the knowledge address.
    if revision.author.contains('@') && !revision.author.contains(char::is_whitespace) {
        out.push_str(&format!("From: <{}>\r\n", revision.author));
    } else {
        let name: String = revision
            .author
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_'))
            .collect();
        out.push_str(&format!(
            "From: \"{}\" <{}>\r\n",
            name.trim(),
            site.knowledge_address
        ));
    }
    out.push_str(&format!("To: <{}>\r\n", site.knowledge_address));
    out.push_str(&format!("Reply-To: <{}>\r\n", site.knowledge_address));
    out.push_str(&header_text("Subject", &subject));
    out.push_str(&format!("Message-ID: <{id}>\r\n"));
    if revision.number > 1 {
        let earlier = message_id(
            site.message_id_domain,
            revision.article,
            revision.number - 1,
        );
        out.push_str(&format!("References: <{earlier}>\r\n"));
    }
    out.push_str(&format!(
        "X-Postdesk-Article: {}; revision={}; state={}; visibility={}\r\n",
        revision.article, revision.number, content.state, content.visibility
    ));
    if internal {
        out.push_str(&format!("Keywords: {INTERNAL_KEYWORD}\r\n"));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
    ));
    for (subtype, body) in [("plain", text), ("html", html)] {
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str(&format!(
            "Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        out.push_str(&base64_lines(&body.replace('\n', "\r\n")));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out.into_bytes()
}

/// An unstructured header field, encoded (RFC 2047) and folded as needed.
fn header_text(name: &str, value: &str) -> String {
    use mail_builder::headers::Header;
    let mut bytes = format!("{name}: ").into_bytes();
    let written = bytes.len();
    let text = mail_builder::headers::text::Text::new(value.to_string());
    if text.write_header(&mut bytes, written).is_err() {
        bytes.truncate(written);
    }
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn base64_lines(text: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl ImapSession {
    /// The knowledge base's state, as a Knowledge folder's sync marker:
    /// the newest revision's id (every change adds one). `Knowledge/Drafts`
    /// also depends on the categories the agent may not write (their queues,
    /// their role, the configured `knowledge_categories`): a digest of
    /// those, when there are any, so that another session with other
    /// rights brings the folder up to date.
    pub async fn knowledge_marker(
        &self,
        login: &LoggedIn,
        folder: &Folder,
    ) -> Result<String, StoreError> {
        let mut marker = format!("kb{}", self.app.store.kb_generation().await?);
        if *folder == Folder::KnowledgeDrafts {
            let denied = self.app.kb_scopes.denied_to(&login.agent.actor());
            if !denied.is_empty() {
                let digest =
                    ring::digest::digest(&ring::digest::SHA256, denied.join("\n").as_bytes());
                marker.push_str(".w");
                for byte in &digest.as_ref()[..8] {
                    marker.push_str(&format!("{byte:02x}"));
                }
            }
        }
        Ok(marker)
    }

    /// Brings a Knowledge folder in line with the articles (unless the
    /// marker says nothing changed since `known`, or `force`), rendering
    /// the mail of revisions shown for the first time. Returns the marker.
    pub async fn reconcile_knowledge(
        &self,
        login: &LoggedIn,
        mailbox_id: i64,
        folder: &Folder,
        force: bool,
        known: &str,
    ) -> Result<String, StoreError> {
        let store = &self.app.store;
        let marker = self.knowledge_marker(login, folder).await?;
        if !force && marker == known {
            return Ok(marker);
        }
        // Published articles are the whole team's to read; a draft only
        // shows to those who may edit it.
        let actor = login.agent.actor();
        let wanted: Vec<ViewRevision> = store
            .kb_view_revisions()
            .await?
            .into_iter()
            .filter(|r| folder.holds_article(r.state, &r.category))
            .filter(|r| {
                r.state != ArticleState::Draft
                    || knowledge::may_write_category(Some(&actor), &self.app.kb_scopes, &r.category)
                        .is_ok()
            })
            .collect();
        let ids: Vec<i64> = wanted.iter().map(|r| r.revision).collect();
        let missing = store.kb_revisions_without_mail(&ids).await?;
        if !missing.is_empty() {
            let config = &self.app.config;
            let (address, domain, help_center) = (
                config.knowledge_address(),
                config.message_id_domain(),
                config.help_center_url(),
            );
            let site = MailSite {
                knowledge_address: &address,
                message_id_domain: &domain,
                help_center: &help_center,
            };
            for id in missing {
                let revision = store.kb_revision_by_id(id).await?;
                let raw = render(&revision, &site);
                let message_id = message_id(&domain, revision.article, revision.number);
                store
                    .kb_store_revision_mail(id, revision.article, &message_id, &raw, revision.at)
                    .await?;
            }
        }
        let wanted = wanted
            .iter()
            .map(|r| (r.revision, article_flags(r)))
            .collect();
        store
            .imap_reconcile_articles(mailbox_id, wanted, &marker, force)
            .await?;
        Ok(marker)
    }

    /// The names of the Knowledge folders there are now: one per category
    /// of published articles (the fixed `Knowledge` and `Knowledge/Drafts`
    /// are every agent's anyway).
    pub async fn knowledge_folder_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .app
            .store
            .kb_published_categories()
            .await?
            .iter()
            .map(|c| Folder::KnowledgeCategory(crate::domain::mailbox_name::encode(c)).name())
            .filter(|name| *name != Folder::KnowledgeDrafts.name())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::knowledge::ArticleContent;

    fn revision(visibility: Visibility, state: ArticleState) -> Revision {
        let body = "Pull the **plug**. Grüße.\n".to_string();
        Revision {
            article: 42,
            number: 3,
            at: "2026-12-01T10:00:00Z".parse().expect("time"),
            author: "bob@desk.test".into(),
            summary: "published".into(),
            content: ArticleContent {
                title: "Drücker on fire".into(),
                category: "Printers".into(),
                state,
                visibility,
                body_html: knowledge::render_markdown(&body),
                body_text: body,
            },
            source_html: None,
        }
    }

    fn site() -> MailSite<'static> {
        MailSite {
            knowledge_address: "kb@desk.test",
            message_id_domain: "desk.test",
            help_center: "https://help.desk.test",
        }
    }

    #[test]
    fn a_revision_renders_as_the_same_mail_every_time() {
        let public = revision(Visibility::Public, ArticleState::Published);
        let raw = render(&public, &site());
        assert_eq!(raw, render(&public, &site()), "deterministic bytes");
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("a mail");
        assert_eq!(parsed.subject(), Some("Drücker on fire"));
        assert_eq!(parsed.message_id(), Some("kb42.r3@desk.test"));
        let text = parsed.body_text(0).expect("text");
        assert!(text.contains("Pull the **plug**. Grüße."), "{text}");
        assert!(
            text.contains("https://help.desk.test/kb/42-drucker-on-fire"),
            "{text}"
        );
        let html = parsed.body_html(0).expect("html");
        assert!(html.contains("<strong>plug</strong>"), "{html}");
        assert!(!String::from_utf8_lossy(&raw).contains("INTERNAL"));
    }

    #[test]
    fn internal_articles_are_marked() {
        let internal = revision(Visibility::Internal, ArticleState::Published);
        let raw = render(&internal, &site());
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("a mail");
        assert_eq!(parsed.subject(), Some("[Internal] Drücker on fire"));
        assert!(
            parsed
                .body_text(0)
                .expect("text")
                .contains("INTERNAL: for agents only")
        );
        assert!(
            !parsed
                .body_text(0)
                .expect("text")
                .contains("help.desk.test")
        );
        let flags = article_flags(&ViewRevision {
            revision: 1,
            article: 42,
            state: ArticleState::Published,
            visibility: Visibility::Internal,
            category: "Printers".into(),
        });
        assert_eq!(flags, "\\Seen internal");
    }
}
