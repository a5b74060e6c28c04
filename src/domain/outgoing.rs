//! Mail postdesk writes by itself (acknowledgements, escalation notices),
//! as queued for delivery with the change that caused it.

/// An outgoing message, built once the ticket number is known, stored in
/// its ticket and queued to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub message_id: String,
    pub mail_from: String,
    pub rcpt_to: String,
    pub sender: String,
    pub from_name: Option<String>,
    pub subject: String,
    pub raw: Vec<u8>,
}
