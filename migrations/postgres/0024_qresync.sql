-- QRESYNC (RFC 7162): a client that knew a mailbox at some MODSEQ is told
-- which of its UIDs vanished since, from imap_expunged. Tombstones are
-- trimmed after a day (store/imap.rs, EXPUNGED_KEPT_SECONDS); this records
-- the MODSEQ up to which they may have been, so that a client older than
-- that is sent every UID it may know that is not there any more (RFC 7162
-- §3.2.5.2 allows reporting UIDs expunged earlier) instead of a short list.
ALTER TABLE imap_mailboxes ADD COLUMN expunged_known_after BIGINT NOT NULL DEFAULT 0;
-- Tombstones trimmed before this migration are unknown: existing mailboxes
-- know their expunges only from now on.
UPDATE imap_mailboxes SET expunged_known_after = highestmodseq;
