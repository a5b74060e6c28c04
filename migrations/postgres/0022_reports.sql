-- Reports: reopen events are counted by kind and time (without this, a
-- report scans every event), and the weekly report mail is sent once per
-- period: the row for a period is claimed in the transaction that queues
-- its mail, so several nodes (or a restart) never send it twice.
CREATE INDEX events_kind_at ON ticket_events(kind, at);
CREATE TABLE report_mailings (
    period   TEXT PRIMARY KEY,
    sent_at  TIMESTAMPTZ NOT NULL,
    recipients BIGINT NOT NULL
);
