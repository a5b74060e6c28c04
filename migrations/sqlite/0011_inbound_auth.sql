-- SPF, DKIM and DMARC of inbound mail, as checked at arrival (or read from
-- a trusted relay's Authentication-Results header). auth_source NULL: not
-- checked (verify off, imports, postdesk's own and agents' mail).
ALTER TABLE messages ADD COLUMN auth_spf TEXT;
ALTER TABLE messages ADD COLUMN auth_dkim TEXT;
ALTER TABLE messages ADD COLUMN auth_dmarc TEXT;
ALTER TABLE messages ADD COLUMN auth_policy TEXT;
ALTER TABLE messages ADD COLUMN auth_domain TEXT;
ALTER TABLE messages ADD COLUMN auth_source TEXT;

-- The hourly acknowledgement caps, shared by every node: one row per
-- acknowledgement sent, per scope ('to:ADDRESS', and 'all').
CREATE TABLE ack_sent (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    scope  TEXT NOT NULL,
    at     TEXT NOT NULL
);
CREATE INDEX ack_sent_scope ON ack_sent(scope, at);

-- One row taken for update while a filing counts and claims an
-- acknowledgement, so that two nodes cannot both take the last one.
CREATE TABLE ack_lock (
    name   TEXT PRIMARY KEY,
    claims BIGINT NOT NULL
);
