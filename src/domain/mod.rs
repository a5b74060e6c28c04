//! Plain types and pure logic: no sockets, no SQL, no clocks of their own.
//!
//! Everything here takes its inputs as values (including "now") so that the
//! rules can be unit-tested exhaustively and reused by every protocol.

pub mod address;
pub mod agent_mail;
pub mod automation;
pub mod change;
pub mod collision;
pub mod commands;
pub mod delivery;
pub mod filing;
pub mod keywords;
pub mod knowledge;
pub mod login;
pub mod loops;
pub mod mailbox_name;
pub mod merge;
pub mod message_id;
pub mod outgoing;
pub mod permission;
pub mod quoting;
pub mod report;
pub mod satisfaction;
pub mod sender_auth;
pub mod sent_copy;
pub mod sla;
pub mod storage;
pub mod subject;
pub mod templates;
pub mod threading;
pub mod ticket;
pub mod time_spent;
pub mod views;
