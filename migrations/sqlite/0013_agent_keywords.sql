-- A mail client's own keywords on a ticket's message (Thunderbird's Junk
-- and NonJunk, $Forwarded, neomutt's Old, Apple Mail's $MailFlagBit0-2):
-- one agent's marks, kept per agent like agent_seen, never ticket tags.
CREATE TABLE agent_keywords (
    agent_id    INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    keyword     TEXT NOT NULL,
    PRIMARY KEY (agent_id, message_id, keyword)
);
