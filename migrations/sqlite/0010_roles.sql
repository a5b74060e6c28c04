-- Roles: agent (works their queues), lead (also reassigns and reads the
-- reports), admin (everything). The role replaces is_admin, so that there
-- is one answer to "what may this agent do".
ALTER TABLE agents ADD COLUMN role TEXT NOT NULL DEFAULT 'agent'
    CHECK (role IN ('agent', 'lead', 'admin'));
UPDATE agents SET role = 'admin' WHERE is_admin;
ALTER TABLE agents DROP COLUMN is_admin;
-- A removed agent stays as a row, so that the history keeps their name on
-- what they wrote and did; they cannot log in and are given no tickets.
ALTER TABLE agents ADD COLUMN removed_at TEXT;
-- The digest of the bytes an agent submitted (domain/sent_copy.rs): their
-- client's copy in Sent is linked to the stored mail only when it matches.
ALTER TABLE messages ADD COLUMN submitted_digest TEXT;
