//! `postdesk agent add|list|set|passwd|disable|enable|remove`.

use super::{CliError, CliResult, open_for_writing, open_read_only, output, print_line, print_out};
use crate::config::Config;
use crate::domain::address;
use crate::domain::permission::AgentRole;
use crate::passwords;
use crate::store::AgentUpdate;
use std::io::BufRead;

/// What `agent add` is asked to create.
pub struct NewAgent {
    pub email: String,
    /// Default: the address's local part.
    pub name: Option<String>,
    pub role: AgentRole,
    /// Names or addresses of the queues the agent works.
    pub queues: Vec<String>,
    /// Read the password from standard input instead of generating one.
    pub password_stdin: bool,
}

pub async fn add(config: Config, agent: NewAgent) -> CliResult<()> {
    let email = address::normalize(&agent.email);
    if address::split(&email).is_none() {
        return Err(CliError::Invalid(format!(
            "'{email}' is not a mail address"
        )));
    }
    let app = open_for_writing(config).await?;
    let members = queues_named(&app, &agent.queues).await?;
    let (password, generated) = read_password(agent.password_stdin)?;
    let hash = passwords::hash(&password)?;
    let name = agent
        .name
        .unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
    app.store
        .add_agent(&email, &name, &hash, agent.role, &members)
        .await?;
    super::audit::record(
        &app.store,
        "agent add",
        &format!("{email} role {} queues {}", agent.role, names(&members)),
    )
    .await?;
    print_line(format_args!("agent {email} added ({})", agent.role))?;
    if generated {
        print_line(format_args!("password: {password}"))?;
    }
    // New tickets arrive in Unassigned, not INBOX: a client that checks
    // only INBOX shows them at its next folder visit.
    print_line(
        "tell them: set the mail client to check all folders for new mail \
         (Thunderbird: mail.server.default.check_all_folders_for_new = true in the Config Editor)",
    )?;
    Ok(())
}

/// Read-only.
pub async fn list(config: &Config, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    let agents = store.agents().await?;
    print_out(json, &agents, || output::agent_table(&agents))
}

pub async fn passwd(config: Config, email: &str, password_stdin: bool) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let email = address::normalize(email);
    let (password, generated) = read_password(password_stdin)?;
    app.store
        .set_agent_password(&email, &passwords::hash(&password)?)
        .await?;
    super::audit::record(&app.store, "agent passwd", &email).await?;
    print_line(format_args!("password of {email} changed"))?;
    if generated {
        print_line(format_args!("password: {password}"))?;
    }
    Ok(())
}

/// `postdesk agent disable|enable EMAIL`.
pub async fn set_disabled(config: Config, email: &str, disabled: bool) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let email = address::normalize(email);
    app.store.set_agent_disabled(&email, disabled).await?;
    let action = if disabled {
        "agent disable"
    } else {
        "agent enable"
    };
    super::audit::record(&app.store, action, &email).await?;
    if disabled {
        print_line(format_args!(
            "{email} is disabled: logins are refused and open sessions end within seconds"
        ))?;
    } else {
        print_line(format_args!("{email} may log in again"))?;
    }
    Ok(())
}

/// What `agent set` is asked to change.
pub struct AgentChanges {
    pub name: Option<String>,
    pub role: Option<AgentRole>,
    /// Replaces the agent's queues when given (names or addresses).
    pub queues: Option<Vec<String>>,
    /// An IANA time zone name; "" (or "default"): the report calendar's.
    pub time_zone: Option<String>,
}

/// `postdesk agent set EMAIL`: name, role, queues, time zone. A new role
/// or new queues end the agent's open sessions, so that they apply at once.
pub async fn set(config: Config, email: &str, changes: AgentChanges) -> CliResult<()> {
    if changes.name.is_none()
        && changes.role.is_none()
        && changes.queues.is_none()
        && changes.time_zone.is_none()
    {
        return Err(CliError::Invalid(
            "nothing to change: give --name, --role, --queue or --time-zone".into(),
        ));
    }
    let time_zone = match changes.time_zone.as_deref().map(str::trim) {
        None => None,
        Some("" | "default") => Some(None),
        Some(name) => match name.parse::<chrono_tz::Tz>() {
            Ok(zone) => Some(Some(zone.name().to_string())),
            Err(_) => {
                return Err(CliError::Invalid(format!(
                    "--time-zone '{name}' is not a time zone (an IANA name such as Europe/Berlin or America/New_York)"
                )));
            }
        },
    };
    let app = open_for_writing(config).await?;
    let email = address::normalize(email);
    let queues = match &changes.queues {
        Some(names) => Some(queues_named(&app, names).await?),
        None => None,
    };
    let mut what = Vec::new();
    if let Some(name) = &changes.name {
        what.push(format!("name '{name}'"));
    }
    if let Some(role) = changes.role {
        what.push(format!("role {role}"));
    }
    if let Some(queues) = &queues {
        what.push(format!("queues {}", names(queues)));
    }
    match &time_zone {
        Some(Some(zone)) => what.push(format!("time zone {zone}")),
        Some(None) => what.push("time zone of the report calendar".into()),
        None => {}
    }
    let update = AgentUpdate {
        name: changes.name,
        role: changes.role,
        queues,
        time_zone,
    };
    app.store.update_agent(&email, &update).await?;
    super::audit::record(
        &app.store,
        "agent set",
        &format!("{email} {}", what.join(", ")),
    )
    .await?;
    print_line(format_args!("{email}: {}", what.join(", ")))?;
    if update.role.is_some() || update.queues.is_some() {
        print_line("their open sessions end within seconds and log in again with the new rights")?;
    }
    Ok(())
}

/// `postdesk agent remove EMAIL`.
pub async fn remove(config: Config, email: &str) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    let email = address::normalize(email);
    let handed_back = app
        .store
        .remove_agent(&email, &super::audit::operator())
        .await?;
    super::audit::record(&app.store, "agent remove", &email).await?;
    print_line(format_args!(
        "{email} is removed: no more logins, open sessions end within seconds; \
         their name stays on what they wrote"
    ))?;
    if !handed_back.is_empty() {
        let numbers: Vec<String> = handed_back.iter().map(|n| format!("#{n}")).collect();
        print_line(format_args!(
            "back to Unassigned: {} ticket(s): {}",
            numbers.len(),
            numbers.join(" ")
        ))?;
    }
    Ok(())
}

async fn queues_named(app: &crate::App, names: &[String]) -> CliResult<Vec<crate::store::Queue>> {
    let mut queues = Vec::new();
    for name in names {
        let queue = app.store.queue_by_name(name).await?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    Ok(queues)
}

fn names(queues: &[crate::store::Queue]) -> String {
    if queues.is_empty() {
        return "(none)".to_string();
    }
    queues
        .iter()
        .map(|q| q.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first line of standard input, or a generated password (true).
fn read_password(from_stdin: bool) -> CliResult<(String, bool)> {
    if !from_stdin {
        return Ok((passwords::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(CliError::io("cannot read the password from standard input"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.len() < 8 {
        return Err(CliError::Invalid(
            "the password must have at least 8 characters".into(),
        ));
    }
    Ok((password, false))
}
