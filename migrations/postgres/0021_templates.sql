-- Shared templates (canned replies) per queue, and what the satisfaction
-- survey needs beyond migration 0018.

-- A template: its name is its subject, normalised (lower case, single
-- spaces); one of a name per queue. raw is the mail it was made from (an
-- APPEND to the Templates folder) or one built for it (the CLI).
CREATE TABLE templates (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    queue_id    BIGINT NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT,
    raw         BYTEA NOT NULL,
    author      TEXT NOT NULL,
    author_id   BIGINT REFERENCES agents(id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (queue_id, name)
);

-- The copy of a template in one agent's Templates folder (a stored
-- message of theirs): which template it shows, so that deleting the copy
-- removes the template and a removed template leaves every folder.
CREATE TABLE template_copies (
    stored_id   BIGINT PRIMARY KEY REFERENCES agent_messages(id) ON DELETE CASCADE,
    template_id BIGINT NOT NULL
);
CREATE INDEX template_copies_template ON template_copies(template_id);

-- One survey per ticket, ever: resolving it again sends none.
CREATE UNIQUE INDEX satisfaction_one_per_ticket ON satisfaction_surveys(ticket);
-- The survey mail's Message-ID: a reply naming it is an answer.
ALTER TABLE satisfaction_surveys ADD COLUMN message_id TEXT;
-- Why no survey was sent for a resolved ticket (a robot, the hourly cap):
-- the row keeps it from being asked again; such a row was never sent and
-- its token_hash is of a token nobody has. NULL: the survey was sent.
ALTER TABLE satisfaction_surveys ADD COLUMN skipped TEXT;
CREATE INDEX satisfaction_message_id ON satisfaction_surveys(message_id);
-- The survey worker looks for tickets done within the last hours.
CREATE INDEX tickets_done_at ON tickets(done_at);
