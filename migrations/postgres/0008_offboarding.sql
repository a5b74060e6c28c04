-- Offboarding: a disabled agent cannot log in, and every change that must
-- end an agent's open sessions (disabling, a new password) moves the
-- epoch, which running sessions compare with the one they logged in at.
ALTER TABLE agents ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE agents ADD COLUMN sessions_epoch BIGINT NOT NULL DEFAULT 0;
