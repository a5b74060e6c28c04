//! The administrators' audit log: every change to agents and queues made
//! with the CLI is recorded with who ran it, when, and the command line;
//! `postdesk audit` lists it.

use super::{CliResult, open_read_only, output, print_out};
use crate::App;
use crate::config::Config;
use crate::store::AuditEntry;

/// Records one administrative change.
pub async fn record(app: &App, action: &str, target: &str) -> CliResult<()> {
    let command: Vec<String> = std::env::args().skip(1).collect();
    app.store
        .record_audit(&AuditEntry {
            at: chrono::Utc::now(),
            actor: system_user(),
            action: action.to_string(),
            target: target.to_string(),
            command: command.join(" "),
        })
        .await?;
    Ok(())
}

/// Who ran the command: the user behind `sudo` when there is one.
fn system_user() -> String {
    for name in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(user) = std::env::var(name)
            && !user.is_empty()
        {
            return user;
        }
    }
    #[cfg(unix)]
    {
        format!("uid {}", rustix::process::getuid().as_raw())
    }
    #[cfg(not(unix))]
    {
        "unknown user".to_string()
    }
}

/// `postdesk audit`: read-only.
pub async fn list(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let entries = store.audit_log().await?;
    print_out(json, &entries, || output::audit_table(&entries))
}
