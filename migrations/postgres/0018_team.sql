-- Team workflow figures several features share: the report reads them, the
-- mail commands and the satisfaction survey write them.

-- `#time 15m` on a ticket: minutes one agent spent, as many entries as
-- they record.
CREATE TABLE time_entries (
    id          BIGSERIAL PRIMARY KEY,
    ticket      BIGINT NOT NULL REFERENCES tickets(number) ON DELETE CASCADE,
    agent_id    BIGINT NOT NULL REFERENCES agents(id),
    minutes     BIGINT NOT NULL CHECK (minutes > 0),
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX time_entries_ticket ON time_entries(ticket);
CREATE INDEX time_entries_at ON time_entries(at);

-- The "How did we do?" survey sent when a ticket is resolved: one row per
-- survey; rating is NULL until the customer answers (good, okay, bad).
-- token_hash is the hash of the single-use token in the survey's links.
CREATE TABLE satisfaction_surveys (
    id           BIGSERIAL PRIMARY KEY,
    ticket       BIGINT NOT NULL REFERENCES tickets(number) ON DELETE CASCADE,
    queue_id     BIGINT NOT NULL REFERENCES queues(id),
    agent_id     BIGINT REFERENCES agents(id),
    token_hash   TEXT NOT NULL UNIQUE,
    sent_at      TIMESTAMPTZ NOT NULL,
    rating       TEXT CHECK (rating IN ('good', 'okay', 'bad')),
    comment      TEXT,
    rated_at     TIMESTAMPTZ
);
CREATE INDEX satisfaction_ticket ON satisfaction_surveys(ticket);
CREATE INDEX satisfaction_rated_at ON satisfaction_surveys(rated_at);
