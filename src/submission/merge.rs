//! `#merge 42` and `#split` in an agent's mail (issue 20): the ticket's
//! mail moves before the agent's own mail is filed, so that the mail goes
//! where its conversation is now (the merge target, the new split
//! ticket), with that ticket's tag in its subject.

use super::SubmitError;
use crate::App;
use crate::store::{LoginAgent, MergeRequest, SplitRequest, StoreError};
use chrono::{DateTime, Utc};

/// A mail command that moves the ticket's mail, with its line as the
/// agent wrote it ("line 1: #merge 42"), for a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Redirect {
    Merge { into: i64, line: String },
    Split { line: String },
}

impl Redirect {
    fn line(&self) -> &str {
        match self {
            Redirect::Merge { line, .. } | Redirect::Split { line } => line,
        }
    }
}

/// Where the mail goes after the move, and what the SMTP reply says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Redirected {
    pub ticket: i64,
    pub summary: String,
}

/// Carries out the move of `source`'s mail. `Ok(Err(why))`: refused, as a
/// command error line (nothing moved); `Err`: the store failed.
/// `in_reply_to`: the message the agent's mail answers, which `#split`
/// splits off.
pub(super) async fn redirect(
    app: &App,
    agent: &LoginAgent,
    source: i64,
    redirect: &Redirect,
    in_reply_to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Result<Redirected, String>, SubmitError> {
    let refused = |why: String| Ok(Err(format!("{}: {why}", redirect.line())));
    let done = match redirect {
        Redirect::Merge { into, .. } => {
            let request = MergeRequest {
                source,
                into: *into,
                actor: agent.email.clone(),
                agent: Some(agent.actor()),
                at: now,
                reopen_window: super::reopen_window(app),
            };
            app.store
                .merge_tickets(&request)
                .await
                .map(|done| Redirected {
                    ticket: done.target,
                    summary: format!("#{} merged into #{}", done.source, done.target),
                })
        }
        Redirect::Split { .. } => {
            let Some(answered) = in_reply_to else {
                return refused(
                    "reply to the customer's message to split off (this mail names none in In-Reply-To)"
                        .into(),
                );
            };
            let Some(message) = app.store.message_in_ticket(source, answered).await? else {
                return refused(format!(
                    "the message this mail answers (<{answered}>) is not in ticket #{source}"
                ));
            };
            let request = SplitRequest {
                source,
                message,
                actor: agent.email.clone(),
                agent: Some(agent.actor()),
                at: now,
            };
            app.store
                .split_ticket(&request)
                .await
                .map(|done| Redirected {
                    ticket: done.ticket,
                    summary: format!(
                        "split off #{} into new ticket #{}",
                        done.source, done.ticket
                    ),
                })
        }
    };
    match done {
        Ok(redirected) => Ok(Ok(redirected)),
        Err(StoreError::Denied(why)) => refused(why.to_string()),
        Err(StoreError::NotFound(why) | StoreError::Conflict(why)) => refused(why),
        Err(err) => Err(err.into()),
    }
}
