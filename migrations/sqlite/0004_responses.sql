-- Agent mail: when agents answered, and since when the customer has been
-- waiting for an answer (the first- and next-response SLA clocks).
ALTER TABLE tickets ADD COLUMN first_response_at TEXT;
ALTER TABLE tickets ADD COLUMN last_response_at TEXT;
-- Set by a customer message when nobody is already waiting; cleared by a
-- public reply.
ALTER TABLE tickets ADD COLUMN customer_waiting_since TEXT;
UPDATE tickets SET customer_waiting_since = created_at WHERE status NOT IN ('resolved', 'closed');
-- Outbound mail of a message (a reply goes to each recipient).
CREATE INDEX outbound_message ON outbound(message);
