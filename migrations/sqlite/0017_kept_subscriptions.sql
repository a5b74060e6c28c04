-- Subscriptions to names that have no mailbox (any more): DELETE leaves a
-- mailbox's subscription in place (RFC 3501 §6.3.6), LIST (SUBSCRIBED)
-- shows such a name as \NonExistent \Subscribed, and a mailbox created
-- again under the name is subscribed again. A name that has a mailbox keeps
-- its subscription in imap_mailboxes.subscribed instead.
CREATE TABLE imap_kept_subscriptions (
    agent_id  INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    PRIMARY KEY (agent_id, name)
);
