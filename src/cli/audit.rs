//! The administrators' audit log: every change to agents, queues and the
//! rules made with the CLI is recorded with who ran it, when, and the
//! command line; `postdesk audit` lists it.

use super::{CliResult, open_read_only, output, print_out};
use crate::config::Config;
use crate::store::{AuditEntry, Store};
use std::sync::OnceLock;

/// The agent named with `--as`, for the log: set once, by `main`, before
/// the command runs (who runs a command is a fact of the process, like its
/// arguments, which the log records too).
static ACTING_AGENT: OnceLock<String> = OnceLock::new();

/// Records that this process acts as an agent (`--as`).
pub fn set_acting_agent(email: &str) {
    let _ = ACTING_AGENT.set(email.to_string());
}

/// Who runs this command, for the log and the tickets' history: the agent
/// of `--as` (and the system user behind them), else the system user.
pub fn operator() -> String {
    match ACTING_AGENT.get() {
        Some(agent) => format!("{agent} (system user {})", system_user()),
        None => system_user(),
    }
}

/// Records one administrative change.
pub async fn record(store: &Store, action: &str, target: &str) -> CliResult<()> {
    let command: Vec<String> = std::env::args().skip(1).collect();
    store
        .record_audit(&AuditEntry {
            at: chrono::Utc::now(),
            actor: operator(),
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
        // No login variables (a service, a container): the name the
        // password database gives the uid, which says more than a number.
        let uid = rustix::process::getuid().as_raw();
        let named = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| user_name(&passwd, uid));
        match named {
            Some(name) => format!("{name} (uid {uid})"),
            None => format!("uid {uid}"),
        }
    }
    #[cfg(not(unix))]
    {
        "unknown user".to_string()
    }
}

/// The user name of `uid` in an /etc/passwd text.
#[cfg(unix)]
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid_field = fields.nth(1)?;
        (uid_field.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// `postdesk audit`: read-only.
pub async fn list(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let entries = store.audit_log().await?;
    print_out(json, &entries, || output::audit_table(&entries))
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn a_uid_is_named_from_the_password_database() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\npostdesk:x:998:998::/var/lib/postdesk:/usr/sbin/nologin\n";
        assert_eq!(super::user_name(passwd, 998).as_deref(), Some("postdesk"));
        assert_eq!(super::user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(super::user_name(passwd, 5), None);
    }
}
