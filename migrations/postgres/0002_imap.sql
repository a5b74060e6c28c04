-- The IMAP view: per-agent mailboxes whose membership is materialized with
-- their own UID counter, so UIDs only ever ascend within a UIDVALIDITY.

-- Junk ('spam') and Trash ('trash') are dispositions beside the status, so a
-- restored ticket comes back with the status it had.
ALTER TABLE tickets ADD COLUMN disposition TEXT;
ALTER TABLE tickets ADD COLUMN disposition_at TIMESTAMPTZ;

-- Bumped whenever the agent's \Seen set changes: part of a mailbox's sync marker.
ALTER TABLE agents ADD COLUMN seen_version BIGINT NOT NULL DEFAULT 0;
-- The last UIDVALIDITY handed out: a mailbox made again never repeats one.
ALTER TABLE agents ADD COLUMN last_uidvalidity BIGINT NOT NULL DEFAULT 0;

CREATE TABLE imap_mailboxes (
    id             BIGSERIAL PRIMARY KEY,
    agent_id       BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    uidvalidity    BIGINT NOT NULL,
    uidnext        BIGINT NOT NULL DEFAULT 1,
    highestmodseq  BIGINT NOT NULL DEFAULT 1,
    -- Messages above this UID are \Recent to the next session that selects the mailbox.
    recent_uid     BIGINT NOT NULL DEFAULT 0,
    subscribed     BOOLEAN NOT NULL DEFAULT TRUE,
    -- What the membership was last reconciled against (see store::imap).
    synced_marker  TEXT,
    synced_at      TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (agent_id, name)
);

-- Drafts, sent copies and personal filing: the agent's own stored mail.
CREATE TABLE agent_messages (
    id             BIGSERIAL PRIMARY KEY,
    agent_id       BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    internal_date  TIMESTAMPTZ NOT NULL,
    size           BIGINT NOT NULL,
    raw            BYTEA NOT NULL
);

CREATE TABLE imap_members (
    mailbox_id  BIGINT NOT NULL REFERENCES imap_mailboxes(id) ON DELETE CASCADE,
    uid         BIGINT NOT NULL,
    -- Exactly one of message_id (a ticket's message) and stored_id (agent_messages).
    message_id  BIGINT REFERENCES messages(id),
    stored_id   BIGINT REFERENCES agent_messages(id),
    flags       TEXT NOT NULL DEFAULT '',
    modseq      BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX imap_members_message ON imap_members(message_id);
CREATE INDEX imap_members_stored ON imap_members(stored_id);
CREATE INDEX imap_members_modseq ON imap_members(mailbox_id, modseq);

CREATE TABLE agent_seen (
    agent_id    BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    message_id  BIGINT NOT NULL REFERENCES messages(id),
    PRIMARY KEY (agent_id, message_id)
);
