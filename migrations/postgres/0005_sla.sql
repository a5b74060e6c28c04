-- SLA clocks (rules.toml): the policy of a ticket and its due times, in
-- business time already converted to instants.
ALTER TABLE tickets ADD COLUMN sla_policy TEXT;
ALTER TABLE tickets ADD COLUMN first_response_due TIMESTAMPTZ;
ALTER TABLE tickets ADD COLUMN next_response_due TIMESTAMPTZ;
ALTER TABLE tickets ADD COLUMN resolution_due TIMESTAMPTZ;
-- Set while the ticket waits on the customer (pending) or is done: the
-- clocks stand still, and resume with what was left when it is active again.
ALTER TABLE tickets ADD COLUMN sla_paused_at TIMESTAMPTZ;
-- When a paused ticket became active again (the scheduler gives the
-- clocks back what they had left from this instant on).
ALTER TABLE tickets ADD COLUMN sla_resumed_at TIMESTAMPTZ;
-- When the scheduler must look at the ticket next: a due time, a warning
-- before one, or "now" after anything that moves a clock. NULL: never.
ALTER TABLE tickets ADD COLUMN sla_check_at TIMESTAMPTZ;
-- A running clock is past its due time (the Overdue folder).
ALTER TABLE tickets ADD COLUMN sla_overdue BOOLEAN NOT NULL DEFAULT FALSE;
-- Once overdue, always counted as breached (`postdesk sla report`).
ALTER TABLE tickets ADD COLUMN sla_breached BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX tickets_sla_check ON tickets(sla_check_at) WHERE sla_check_at IS NOT NULL;
CREATE INDEX tickets_sla_overdue ON tickets(sla_overdue) WHERE sla_overdue;

-- Escalations that fired: one row per escalation and breach (the due
-- times of the clocks its condition reads), so none fires twice, across
-- restarts and nodes.
CREATE TABLE sla_escalations (
    ticket BIGINT NOT NULL REFERENCES tickets(number),
    escalation TEXT NOT NULL,
    breach TEXT NOT NULL,
    fired_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ticket, escalation, breach)
);
