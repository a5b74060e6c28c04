-- Articles and tickets (issue 19): which article an agent's reply
-- inserted (`#kb 42`) and which draft a ticket gave (`#kb draft`), for
-- the ticket's history and `kb report`.
CREATE TABLE kb_ticket_articles (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket   INTEGER NOT NULL REFERENCES tickets(number),
    article  INTEGER NOT NULL REFERENCES kb_articles(id),
    usage    TEXT NOT NULL CHECK (usage IN ('inserted', 'drafted')),
    actor    TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX kb_ticket_articles_article ON kb_ticket_articles (article);
CREATE INDEX kb_ticket_articles_ticket ON kb_ticket_articles (ticket);
-- "This solved my problem" from an acknowledgement's link counts once per
-- ticket and article: the ticket it came from.
ALTER TABLE kb_feedback ADD COLUMN ticket INTEGER REFERENCES tickets(number);
CREATE UNIQUE INDEX kb_feedback_ticket ON kb_feedback (ticket, article) WHERE ticket IS NOT NULL;
-- The IMAP folders Knowledge/… (issue 19): a member shows an article's
-- revision, as a mail rendered once and kept byte-exact (a message's bytes
-- never change once shown; a new revision is a new message, new UID).
ALTER TABLE imap_members ADD COLUMN revision_id INTEGER REFERENCES kb_revisions(id);
CREATE TABLE kb_revision_mail (
    revision       INTEGER PRIMARY KEY REFERENCES kb_revisions(id),
    internal_date  TEXT NOT NULL,
    size           INTEGER NOT NULL,
    header_len     INTEGER NOT NULL,
    raw            BLOB NOT NULL
);
-- How often the help center showed each article (`kb report`).
ALTER TABLE kb_articles ADD COLUMN views INTEGER NOT NULL DEFAULT 0;
