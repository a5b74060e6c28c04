-- Merge and split (`#merge 42`, `#split`, `postdesk ticket merge|split`).
-- A merged ticket keeps its row, closed, pointing at the ticket that took
-- its mail: mail and commands that still name it are led there.
ALTER TABLE tickets ADD COLUMN merged_into INTEGER REFERENCES tickets(number);
CREATE INDEX tickets_merged_into ON tickets(merged_into) WHERE merged_into IS NOT NULL;
-- A history line that moved with a merge remembers the ticket it was
-- written on (shown as "from #7"; reports can tell it from the target's own).
ALTER TABLE ticket_events ADD COLUMN merged_from INTEGER;
