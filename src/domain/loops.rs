//! Loop and noise protection: when postdesk must not answer automatically
//! (RFC 3834 and the conventions of list servers and Exchange).

use super::address;

/// The facts of an inbound message that decide whether it may be answered.
#[derive(Debug, Default, Clone)]
pub struct AutoReplyFacts<'a> {
    /// SMTP `MAIL FROM`; empty for the null return path `<>`.
    pub envelope_from: &'a str,
    /// The address the answer would go to.
    pub reply_to_address: &'a str,
    pub auto_submitted: Option<&'a str>,
    pub precedence: Option<&'a str>,
    pub has_list_id: bool,
    pub has_list_unsubscribe: bool,
    pub x_auto_response_suppress: Option<&'a str>,
    /// `X-Autoreply`, `X-Autorespond`, `X-Auto-Reply` or `X-Autoresponder`.
    pub has_vendor_autoreply_header: bool,
    /// The message is a delivery or disposition report.
    pub is_report: bool,
    /// The Message-ID is one of postdesk's own.
    pub is_own_message: bool,
}

/// Why no automatic answer goes out; `None` when one may.
pub fn suppression_reason(facts: &AutoReplyFacts<'_>) -> Option<&'static str> {
    if facts.is_own_message {
        return Some("message is postdesk's own mail");
    }
    if facts.is_report {
        return Some("message is a delivery or disposition report");
    }
    if facts.envelope_from.trim().is_empty() {
        return Some("null return path");
    }
    if let Some(value) = facts.auto_submitted {
        let keyword = value.split(';').next().unwrap_or("").trim();
        if !keyword.eq_ignore_ascii_case("no") {
            return Some("Auto-Submitted");
        }
    }
    if let Some(value) = facts.precedence {
        let value = value.trim().to_ascii_lowercase();
        if matches!(value.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Some("Precedence: bulk/junk/list");
        }
    }
    if facts.has_list_id || facts.has_list_unsubscribe {
        return Some("mailing-list message");
    }
    if let Some(value) = facts.x_auto_response_suppress {
        let suppresses = value.split(',').map(str::trim).any(|v| {
            ["all", "autoreply", "oof"]
                .iter()
                .any(|s| v.eq_ignore_ascii_case(s))
        });
        if suppresses {
            return Some("X-Auto-Response-Suppress");
        }
    }
    if facts.has_vendor_autoreply_header {
        return Some("auto-reply header");
    }
    if address::is_robot_sender(facts.reply_to_address)
        || address::is_robot_sender(facts.envelope_from)
    {
        return Some("robot sender");
    }
    if address::split(&address::normalize(facts.reply_to_address)).is_none() {
        return Some("no usable sender address");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> AutoReplyFacts<'static> {
        AutoReplyFacts {
            envelope_from: "alice@example.com",
            reply_to_address: "alice@example.com",
            ..Default::default()
        }
    }

    #[test]
    fn ordinary_mail_may_be_answered() {
        assert_eq!(suppression_reason(&person()), None);
        let explicit_no = AutoReplyFacts {
            auto_submitted: Some("no"),
            precedence: Some("normal"),
            x_auto_response_suppress: Some("DR, RN"),
            ..person()
        };
        assert_eq!(suppression_reason(&explicit_no), None);
    }

    #[test]
    fn every_loop_signal_suppresses() {
        let cases = [
            AutoReplyFacts {
                envelope_from: "",
                ..person()
            },
            AutoReplyFacts {
                auto_submitted: Some("auto-replied"),
                ..person()
            },
            AutoReplyFacts {
                auto_submitted: Some("auto-generated; owner-email=x"),
                ..person()
            },
            AutoReplyFacts {
                precedence: Some("bulk"),
                ..person()
            },
            AutoReplyFacts {
                precedence: Some("Junk"),
                ..person()
            },
            AutoReplyFacts {
                precedence: Some("list"),
                ..person()
            },
            AutoReplyFacts {
                has_list_id: true,
                ..person()
            },
            AutoReplyFacts {
                x_auto_response_suppress: Some("OOF, AutoReply"),
                ..person()
            },
            AutoReplyFacts {
                x_auto_response_suppress: Some("All"),
                ..person()
            },
            AutoReplyFacts {
                has_vendor_autoreply_header: true,
                ..person()
            },
            AutoReplyFacts {
                is_report: true,
                ..person()
            },
            AutoReplyFacts {
                is_own_message: true,
                ..person()
            },
            AutoReplyFacts {
                reply_to_address: "MAILER-DAEMON@mx.example",
                ..person()
            },
            AutoReplyFacts {
                reply_to_address: "noreply@github.com",
                ..person()
            },
            AutoReplyFacts {
                reply_to_address: "not an address",
                ..person()
            },
        ];
        for facts in cases {
            assert!(suppression_reason(&facts).is_some(), "{facts:?}");
        }
    }
}
