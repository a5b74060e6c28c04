-- Where each message's header ends (the empty line included), so that the
-- header-only FETCH every client's first sync sends reads only the header.
-- NULL for mail stored before this column existed: read by a prefix then.
ALTER TABLE messages ADD COLUMN header_len INTEGER;
ALTER TABLE agent_messages ADD COLUMN header_len INTEGER;
