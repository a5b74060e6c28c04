-- postdesk foundation: queues, agents, tickets, messages, events, outbound.
CREATE TABLE queues (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    address     TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE agents (
    id             BIGSERIAL PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE agent_queues (
    agent_id  BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    queue_id  BIGINT NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, queue_id)
);

-- The ticket number is the human number (#1042): a sequence never hands one out twice.
CREATE TABLE tickets (
    number            BIGSERIAL PRIMARY KEY,
    queue_id          BIGINT NOT NULL REFERENCES queues(id),
    subject           TEXT NOT NULL,
    customer_address  TEXT NOT NULL,
    customer_name     TEXT,
    status            TEXT NOT NULL,
    priority          TEXT NOT NULL,
    owner_id          BIGINT REFERENCES agents(id),
    linked_ticket     BIGINT REFERENCES tickets(number),
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    done_at           TIMESTAMPTZ
);
CREATE INDEX tickets_status ON tickets(status, queue_id);
CREATE INDEX tickets_customer ON tickets(customer_address);

CREATE TABLE ticket_tags (
    ticket  BIGINT NOT NULL REFERENCES tickets(number) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (ticket, tag)
);

-- Everyone who wrote or was copied on a ticket: the subject-tag rule only
-- lets participants join by tag.
CREATE TABLE ticket_participants (
    ticket   BIGINT NOT NULL REFERENCES tickets(number) ON DELETE CASCADE,
    address  TEXT NOT NULL,
    PRIMARY KEY (ticket, address)
);
CREATE INDEX participants_address ON ticket_participants(address);

CREATE TABLE messages (
    id             BIGSERIAL PRIMARY KEY,
    ticket         BIGINT REFERENCES tickets(number),
    kind           TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    -- The id as the message carries it; NULL when it had none (message_id is then synthetic).
    has_message_id BOOLEAN NOT NULL,
    sender         TEXT NOT NULL,
    from_name      TEXT,
    envelope_from  TEXT NOT NULL,
    envelope_to    TEXT NOT NULL,
    subject        TEXT NOT NULL,
    sent_at        TIMESTAMPTZ NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL,
    size           BIGINT NOT NULL,
    problems       TEXT,
    remote_addr    TEXT,
    raw            BYTEA NOT NULL
);
-- One email never makes two tickets: the same Message-ID from the same sender is one message.
CREATE UNIQUE INDEX messages_identity ON messages(message_id, sender);
CREATE INDEX messages_ticket ON messages(ticket, id);

-- Message-IDs (own and referenced) that lead to a ticket: threading rule 1.
CREATE TABLE thread_ids (
    message_id  TEXT NOT NULL,
    ticket      BIGINT NOT NULL REFERENCES tickets(number) ON DELETE CASCADE,
    PRIMARY KEY (message_id, ticket)
);

CREATE TABLE ticket_events (
    id         BIGSERIAL PRIMARY KEY,
    ticket     BIGINT NOT NULL REFERENCES tickets(number) ON DELETE CASCADE,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX events_ticket ON ticket_events(ticket, id);

CREATE TABLE outbound (
    id               BIGSERIAL PRIMARY KEY,
    ticket           BIGINT REFERENCES tickets(number),
    message          BIGINT REFERENCES messages(id),
    purpose          TEXT NOT NULL,
    mail_from        TEXT NOT NULL,
    rcpt_to          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    claimed_until    TIMESTAMPTZ,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbound_due ON outbound(status, next_attempt_at);
CREATE INDEX outbound_rcpt ON outbound(rcpt_to, purpose, created_at);
