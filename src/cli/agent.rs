//! `postdesk agent add|list|passwd|disable|enable`.

use super::{CliError, CliResult, open_for_writing, open_read_only, output, print_line, print_out};
use crate::config::Config;
use crate::domain::address;
use crate::passwords;
use std::io::BufRead;

/// What `agent add` is asked to create.
pub struct NewAgent {
    pub email: String,
    /// Default: the address's local part.
    pub name: Option<String>,
    pub admin: bool,
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
    let mut members = Vec::new();
    for queue in &agent.queues {
        members.push(app.store.queue_by_name(queue).await?);
    }
    let (password, generated) = read_password(agent.password_stdin)?;
    let hash = passwords::hash(&password)?;
    let name = agent
        .name
        .unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
    app.store
        .add_agent(&email, &name, &hash, agent.admin, &members)
        .await?;
    super::audit::record(&app, "agent add", &email).await?;
    print_line(format_args!(
        "agent {email} added{}",
        if agent.admin { " (admin)" } else { "" }
    ))?;
    if generated {
        print_line(format_args!("password: {password}"))?;
    }
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
    super::audit::record(&app, "agent passwd", &email).await?;
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
    super::audit::record(&app, action, &email).await?;
    if disabled {
        print_line(format_args!(
            "{email} is disabled: logins are refused and open sessions end within seconds"
        ))?;
    } else {
        print_line(format_args!("{email} may log in again"))?;
    }
    Ok(())
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
