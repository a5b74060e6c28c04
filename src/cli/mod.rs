//! The commands of `postdesk`: what each one loads, computes and prints.
//! `main.rs` parses the arguments and calls one function here per command;
//! [`output`] turns the results into text.
//!
//! Commands that only look at the database open it with
//! [`open_read_only`]: they neither migrate it nor create queues, and
//! cannot write. Commands that change it open it as a server does
//! ([`open_for_writing`]).

pub mod agent;
pub mod audit;
pub mod import;
pub mod kb;
pub mod message;
pub mod migrate;
pub mod outbound;
pub mod output;
pub mod queue;
pub mod report;
pub mod rules;
pub mod search;
pub mod serve;
pub mod sla;
pub mod status;
pub mod template;
pub mod ticket;

use crate::config::{Config, ConfigError};
use crate::domain::permission::{self, Actor, AgentRole, Denied};
use crate::store::{Store, StoreError};
use crate::{App, AppError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    Password(#[from] crate::passwords::PasswordError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Something the user asked for that cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// The command ran and could not do its work, for the reason given.
    #[error("{0}")]
    Failed(String),
    /// `--as AGENT` and the agent may not do this.
    #[error("{0}")]
    Denied(#[from] Denied),
}

impl CliError {
    /// An I/O error with what was being done (a broken pipe stays
    /// recognisable as the source).
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

pub type CliResult<T, E = CliError> = std::result::Result<T, E>;

/// Finds and loads the configuration: the file named (`--config`), else
/// `./postdesk.toml`, else `DATA_DIR/postdesk.toml`, else the defaults.
/// Returns the file it read, if any.
pub fn load_config(
    explicit: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> CliResult<(Config, Option<PathBuf>), ConfigError> {
    let candidates = match &explicit {
        Some(path) => vec![path.clone()],
        None => {
            let data_dir = data_dir
                .clone()
                .unwrap_or_else(|| Config::default().data_dir);
            vec![
                PathBuf::from("postdesk.toml"),
                data_dir.join("postdesk.toml"),
            ]
        }
    };
    let found = candidates
        .into_iter()
        .find(|p| explicit.is_some() || p.exists());
    let mut config = match &found {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok((config, found))
}

/// Opens the database for a command that changes it, as a server start
/// does: migrates it and creates or updates the configured queues.
pub async fn open_for_writing(config: Config) -> CliResult<Arc<App>> {
    let app = App::open(config).await?;
    if let Ok(mut opened) = OPENED.lock() {
        opened.push(app.store.clone());
    }
    Ok(app)
}

/// The stores this command opened for writing (see [`finish`]).
static OPENED: std::sync::Mutex<Vec<Store>> = std::sync::Mutex::new(Vec::new());

/// Sends what the command changed to the running servers (on PostgreSQL
/// the announcements go out a moment after each commit, and the process
/// is about to exit).
pub async fn finish() {
    let opened = match OPENED.lock() {
        Ok(mut opened) => std::mem::take(&mut *opened),
        Err(_) => return,
    };
    for store in opened {
        store.flush_announcements().await;
    }
}

/// Opens the database for a command that only looks at it: no migration,
/// no queue changes, no writes; a database that is missing or not migrated
/// is an error that says to run `postdesk migrate`.
pub async fn open_read_only(config: &Config) -> CliResult<Store> {
    Ok(Store::connect_read_only(&config.database_url()).await?)
}

/// Who runs a command. Whoever can read the data directory can do
/// anything (the database is theirs), so the command line acts as the
/// server's administrator; `--as AGENT` narrows a command to what that
/// agent may do (for delegated shells and scripts), and the audit log
/// names the agent.
#[derive(Debug, Clone, Default)]
pub struct Operator {
    /// The agent named with `--as`, with their role and queues.
    pub agent: Option<Actor>,
}

impl Operator {
    /// Looks up `--as AGENT` (an active agent; the address, any case).
    pub async fn resolve(config: &Config, acting_as: Option<&str>) -> CliResult<Operator> {
        let Some(email) = acting_as else {
            return Ok(Operator::default());
        };
        let store = open_read_only(config).await?;
        let agent = store.login_agent(email).await?;
        store.close().await;
        match agent {
            Some(agent) => Ok(Operator {
                agent: Some(agent.actor()),
            }),
            None => Err(CliError::Invalid(format!(
                "--as {email}: no active agent with this address"
            ))),
        }
    }

    /// Refuses unless the operator may manage agents, queues and rules.
    pub fn administer(&self, what: &str) -> CliResult<()> {
        match &self.agent {
            Some(agent) => Ok(permission::may_administer(agent, what)?),
            None => Ok(()),
        }
    }

    /// Refuses unless the operator may read the reports.
    pub fn read_reports(&self) -> CliResult<()> {
        match &self.agent {
            Some(agent) => Ok(permission::may_read_reports(agent)?),
            None => Ok(()),
        }
    }

    /// Refuses a ticket outside the operator's queues.
    pub fn see_ticket(&self, number: i64, queue: &str) -> CliResult<()> {
        match &self.agent {
            Some(agent) => Ok(permission::may_act_on_ticket(agent, number, queue)?),
            None => Ok(()),
        }
    }

    /// The queues the operator sees; None: every queue.
    pub fn queues(&self) -> Option<&[String]> {
        self.agent
            .as_ref()
            .filter(|a| a.role != AgentRole::Admin)
            .map(|a| a.queues.as_slice())
    }
}

/// Prints `value` as pretty JSON, or `text()` for people.
pub fn print_out<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> CliResult<()> {
    let bytes = if json {
        let mut bytes = serde_json::to_vec_pretty(value)
            .map_err(|err| CliError::Failed(format!("cannot write JSON: {err}")))?;
        bytes.push(b'\n');
        bytes
    } else {
        text().into_bytes()
    };
    write_stdout(&bytes)
}

/// Writes bytes to standard output as they are.
pub fn write_stdout(bytes: &[u8]) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(CliError::io("standard output"))
}

/// A progress bar on standard error for long work (`show` false: hidden).
pub fn progress_bar(show: bool, total: u64, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template =
        format!("{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Prints one line (a broken pipe is an error, not a panic as in `println!`).
pub fn print_line(line: impl std::fmt::Display) -> CliResult<()> {
    write_stdout(format!("{line}\n").as_bytes())
}
