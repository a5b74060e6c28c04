-- Collision hold and Reply All (issue 20, items 1 and 3).

-- An agent's public reply held because the ticket changed after the
-- message it answers. The reply's bytes are the agent's own copy in their
-- Held folder (agent_messages); deleting it there (discarding it) leaves
-- this row with stored_id NULL, sending it again sets released_at.
CREATE TABLE held_replies (
    id           BIGSERIAL PRIMARY KEY,
    agent_id     BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    ticket       BIGINT NOT NULL REFERENCES tickets(number) ON DELETE CASCADE,
    -- The Message-ID the agent's client gave the mail: a client retrying
    -- after a lost reply is recognized, not held twice.
    message_id   TEXT NOT NULL,
    stored_id    BIGINT REFERENCES agent_messages(id) ON DELETE SET NULL,
    reason       TEXT NOT NULL,
    held_at      TIMESTAMPTZ NOT NULL,
    released_at  TIMESTAMPTZ
);
CREATE INDEX held_replies_agent_ticket ON held_replies(agent_id, ticket);
CREATE INDEX held_replies_stored ON held_replies(stored_id);

-- A reply to several people (Reply All) is one delivery: rcpt_to is the
-- first recipient, also_to the others (one per line), all in one SMTP
-- transaction so that everybody gets the same mail.
ALTER TABLE outbound ADD COLUMN also_to TEXT NOT NULL DEFAULT '';
