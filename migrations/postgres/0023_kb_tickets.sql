-- Articles and tickets (issue 19): which article an agent's reply
-- inserted (`#kb 42`) and which draft a ticket gave (`#kb draft`), for
-- the ticket's history and `kb report`.
CREATE TABLE kb_ticket_articles (
    id       BIGSERIAL PRIMARY KEY,
    ticket   BIGINT NOT NULL REFERENCES tickets(number),
    article  BIGINT NOT NULL REFERENCES kb_articles(id),
    usage    TEXT NOT NULL CHECK (usage IN ('inserted', 'drafted')),
    actor    TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX kb_ticket_articles_article ON kb_ticket_articles (article);
CREATE INDEX kb_ticket_articles_ticket ON kb_ticket_articles (ticket);
-- "This solved my problem" from an acknowledgement's link counts once per
-- ticket and article: the ticket it came from.
ALTER TABLE kb_feedback ADD COLUMN ticket BIGINT REFERENCES tickets(number);
CREATE UNIQUE INDEX kb_feedback_ticket ON kb_feedback (ticket, article) WHERE ticket IS NOT NULL;
-- The IMAP folders Knowledge/… (issue 19): a member shows an article's
-- revision, as a mail rendered once and kept byte-exact (a message's bytes
-- never change once shown; a new revision is a new message, new UID).
ALTER TABLE imap_members ADD COLUMN revision_id BIGINT REFERENCES kb_revisions(id);
CREATE TABLE kb_revision_mail (
    revision       BIGINT PRIMARY KEY REFERENCES kb_revisions(id),
    internal_date  TIMESTAMPTZ NOT NULL,
    size           BIGINT NOT NULL,
    header_len     BIGINT NOT NULL,
    raw            BYTEA NOT NULL
);
-- How often the help center showed each article (`kb report`).
ALTER TABLE kb_articles ADD COLUMN views BIGINT NOT NULL DEFAULT 0;
