-- What administrators changed: agents, queues, rules. Who (the system user
-- who ran the command), when, and the command.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    command  TEXT NOT NULL
);
