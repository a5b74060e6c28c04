-- The UIDs that left a mailbox, with the MODSEQ they left at: a session
-- that knows a mailbox at some MODSEQ refreshes by reading what changed
-- since (members above it, and these), not the whole mailbox. Kept a day
-- (store/imap.rs, EXPUNGED_KEPT_SECONDS).
CREATE TABLE imap_expunged (
    mailbox_id   BIGINT NOT NULL REFERENCES imap_mailboxes(id) ON DELETE CASCADE,
    uid          BIGINT NOT NULL,
    modseq       BIGINT NOT NULL,
    expunged_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX imap_expunged_modseq ON imap_expunged(mailbox_id, modseq);
