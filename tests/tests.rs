//! The integration tests: one binary, one module per area, and the shared
//! harness in `common`. Per-backend tests are `backend_test!`s, named
//! `<area>::<test>::sqlite` and `<area>::<test>::postgres`.

mod common;

mod agent_mail;
mod architecture;
mod boundary;
mod cli;
mod cluster;
mod collision;
mod corpus;
mod crash;
mod durability;
mod fuzz_replay;
mod group_commit;
mod http;
mod imap;
mod imap_conformance;
mod imap_interop;
mod imap_rev2;
mod interop;
mod keywords;
mod knowledge;
mod knowledge_agents;
mod knowledge_scopes;
mod merge;
mod migrations;
mod outbound;
mod report;
mod rules;
mod satisfaction;
mod search;
mod sender_auth;
mod smtp_protocol;
mod submission;
mod templates;
mod threading;
