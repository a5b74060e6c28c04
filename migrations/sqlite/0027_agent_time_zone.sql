-- The time zone an agent works in (an IANA name, e.g. "America/New_York";
-- NULL: the report calendar's): a lead's weekly report mail goes out at
-- the configured local time there, and covers the seven local days before.
ALTER TABLE agents ADD COLUMN time_zone TEXT;
