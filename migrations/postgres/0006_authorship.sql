-- Who wrote an agent's reply or note: a Sent copy is linked to a stored
-- message only by its author, and a Message-ID is not borrowed.
ALTER TABLE messages ADD COLUMN author_agent_id BIGINT REFERENCES agents(id);
