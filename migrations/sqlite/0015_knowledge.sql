-- The knowledge base. An article is its revisions: each change (an edit,
-- publishing, archiving, going back to an earlier text) adds one
-- immutable row holding the whole article, with its author and time; the
-- newest is the article. `kb_articles` names the newest (kept with each
-- revision, in the same transaction) so that listings need no scan.
CREATE TABLE kb_articles (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    latest_revision INTEGER NOT NULL
);
CREATE TABLE kb_revisions (
    -- In the order written, across articles: the newest tells an index
    -- derived from the articles whether it is up to date.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    article     INTEGER NOT NULL REFERENCES kb_articles(id),
    number      INTEGER NOT NULL,
    at          TEXT NOT NULL,
    author      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('draft', 'published', 'archived')),
    visibility  TEXT NOT NULL CHECK (visibility IN ('internal', 'public')),
    category    TEXT NOT NULL,
    title       TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT NOT NULL,
    -- The HTML part of the mail that wrote this revision, as sent (shown
    -- to agents; the help center shows body_html, rendered from the text).
    source_html TEXT,
    UNIQUE (article, number)
);
-- "Did this help?" on the help center: one row per answer.
CREATE TABLE kb_feedback (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    article  INTEGER NOT NULL REFERENCES kb_articles(id),
    at       TEXT NOT NULL,
    helped   BOOLEAN NOT NULL
);
CREATE INDEX kb_feedback_article ON kb_feedback (article);
-- The Message-IDs of the mails that wrote an article and of the copies
-- postdesk sent of it: a reply to one of them is the article's next revision.
CREATE TABLE kb_article_mail (
    message_id  TEXT PRIMARY KEY,
    article     INTEGER NOT NULL REFERENCES kb_articles(id)
);
-- The articles a new ticket's acknowledgement suggested (once per ticket).
CREATE TABLE kb_suggestions (
    ticket   INTEGER NOT NULL REFERENCES tickets(number),
    article  INTEGER NOT NULL REFERENCES kb_articles(id),
    at       TEXT NOT NULL,
    PRIMARY KEY (ticket, article)
);
