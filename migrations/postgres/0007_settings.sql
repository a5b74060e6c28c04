-- Server-wide values every node shares, made once (the key of the tags in
-- postdesk's own Message-IDs).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
