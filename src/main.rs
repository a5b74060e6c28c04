//! The `postdesk` command line: parses arguments and calls into the library.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use postdesk::config::Config;
use postdesk::domain::ticket::Status;
use postdesk::rules::Rules;
use postdesk::store::{OutboundStatus, TicketFilter};
use postdesk::{App, cli_output, import, passwords, server};
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "postdesk", version, about = "An email-native helpdesk server")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Configuration file (default: ./postdesk.toml, else DATA_DIR/postdesk.toml, else defaults).
    #[arg(long, global = true, env = "POSTDESK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` of the configuration).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage queues (support addresses).
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Manage agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Look at tickets.
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// Look at mail postdesk sends.
    #[command(subcommand)]
    Outbound(OutboundCommand),
    /// Look at stored messages.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Search every ticket's messages, best tickets first.
    ///
    /// Words must all match; "quoted phrases", OR, NOT or -word, (groups),
    /// field:value for status, queue, priority, tag, kind, from, to, cc,
    /// subject, body, customer, attachment; #812 or ticket:812;
    /// after:/before:/on:YYYY-MM-DD.
    Search {
        /// The query, e.g. 'vpn "connection reset" status:closed after:2026-01-01'.
        #[arg(required_unless_present = "status")]
        query: Vec<String>,
        /// Tickets shown at most.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Include tickets marked as spam or moved to Trash, and postdesk's own notes.
        #[arg(long)]
        all: bool,
        /// Show the index's size and lag instead of searching.
        #[arg(long, conflicts_with = "query")]
        status: bool,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the search index from the store (a running server does it
    /// and this command follows its progress).
    Reindex {
        #[arg(long)]
        json: bool,
    },
    /// Check, try and reload rules.toml.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// SLA figures.
    #[command(subcommand)]
    Sla(SlaCommand),
    /// Import historical mail through the ingest pipeline (no auto-replies).
    Import {
        #[arg(value_enum)]
        format: ImportFormat,
        path: PathBuf,
        /// Queue (name or address) the new tickets go to.
        #[arg(long)]
        queue: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check a rules file (default: the configured one); mistakes are
    /// reported with file and line.
    Check { file: Option<PathBuf> },
    /// Show which rules a message matches and the deadlines it would get,
    /// changing nothing.
    Test {
        /// The message (.eml, as received).
        message: PathBuf,
        /// Treat it as a follow-up in this ticket (default: a new ticket).
        #[arg(long)]
        ticket: Option<TicketNumber>,
        /// A rules file other than the configured one.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The queue address it arrives at (default: the first queue).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check the configured file, then make the running server load it
    /// (SIGHUP to the pid in DATA_DIR/postdesk.pid).
    Reload,
}

#[derive(Subcommand)]
enum SlaCommand {
    /// Per queue: tickets, breaches, and the median first response time in
    /// business hours.
    Report {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportFormat {
    Mbox,
    Maildir,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Add a queue, or change the address of an existing one.
    Add { name: String, address: String },
    /// List queues.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Add an agent; prints a generated password unless --password-stdin.
    Add {
        email: String,
        /// Display name (default: the address's local part).
        #[arg(long)]
        name: Option<String>,
        /// Administrators see every queue.
        #[arg(long)]
        admin: bool,
        /// A queue the agent works (repeatable).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List agents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set an agent's password; prints a generated one unless --password-stdin.
    Passwd {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TicketCommand {
    /// List tickets.
    List {
        /// Only tickets with this status (repeatable): new, open, pending, resolved, closed.
        #[arg(long = "status")]
        status: Vec<Status>,
        /// Only tickets of this queue (name or address).
        #[arg(long)]
        queue: Option<String>,
        /// Only tickets with a running SLA clock past its due time.
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show a ticket with its messages and history.
    Show {
        number: TicketNumber,
        #[arg(long)]
        json: bool,
    },
    /// Write a ticket's messages as an mbox to standard output.
    Export { number: TicketNumber },
}

#[derive(Subcommand)]
enum OutboundCommand {
    /// List outbound mail and its delivery state.
    List {
        /// Only this state: queued, sending, sent, failed, cancelled.
        #[arg(long, value_parser = parse_outbound_status)]
        status: Option<OutboundStatus>,
        #[arg(long)]
        json: bool,
    },
    /// Deliver again now (failed, cancelled, or waiting for its next try).
    Retry {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Stop deliveries that have not gone out.
    Cancel {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

#[derive(Subcommand)]
enum MessageCommand {
    /// Mail kept but filed in no ticket: delivery reports about unknown
    /// mail, and postdesk's own mail coming back.
    Unfiled {
        #[arg(long)]
        json: bool,
    },
    /// Write a stored message's bytes, exactly as received, to standard output.
    Raw { id: i64 },
}

/// A ticket number, written `1042` or `#1042`.
#[derive(Clone, Copy)]
struct TicketNumber(i64);

impl std::str::FromStr for TicketNumber {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim_start_matches('#')
            .parse()
            .map(TicketNumber)
            .map_err(|_| format!("'{s}' is not a ticket number"))
    }
}

fn parse_outbound_status(s: &str) -> Result<OutboundStatus, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not one of queued, sending, sent, failed, cancelled"))
}

fn main() -> Result<()> {
    postdesk::tls::install_crypto_provider();
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match runtime.block_on(run(cli)) {
        // `postdesk ticket export 1 | head`: the reader has seen enough.
        Err(err) if is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Finds and loads the configuration (see `--config`).
fn load_config(global: &Global) -> Result<(Config, Option<PathBuf>)> {
    let explicit = global.config.clone();
    let candidates = match &explicit {
        Some(path) => vec![path.clone()],
        None => {
            let data_dir = global
                .data_dir
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
    if let Some(dir) = &global.data_dir {
        config.data_dir = dir.clone();
    }
    Ok((config, found))
}

async fn run(cli: Cli) -> Result<()> {
    let (config, config_path) = load_config(&cli.global)?;
    match cli.command {
        Command::Serve => serve(config, config_path).await,
        Command::Migrate => {
            let app = App::open(config).await?;
            println!("database {} is up to date", app.config.database_url());
            Ok(())
        }
        Command::Queue(command) => {
            let app = App::open(config).await?;
            match command {
                QueueCommand::Add { name, address } => {
                    postdesk::config::validate_queue_name(&name).map_err(anyhow::Error::msg)?;
                    let address =
                        postdesk::config::validate_address(&address).map_err(anyhow::Error::msg)?;
                    let queue = app.store.upsert_queue(&name, &address).await?;
                    println!("queue {} <{}>", queue.name, queue.address);
                }
                QueueCommand::List { json } => {
                    let queues = app.store.queues().await?;
                    print_out(json, &queues, || cli_output::queue_table(&queues))?;
                }
            }
            Ok(())
        }
        Command::Agent(command) => agent(config, command).await,
        Command::Rules(command) => rules_command(config, command).await,
        Command::Sla(SlaCommand::Report { json }) => {
            let app = App::open(config).await?;
            let rules = app.rules.current();
            let lines: Vec<cli_output::SlaReportLine> = app
                .store
                .sla_report()
                .await?
                .into_iter()
                .map(|row| cli_output::SlaReportLine::from_store(row, &rules))
                .collect();
            print_out(json, &lines, || cli_output::sla_report_table(&lines))
        }
        Command::Ticket(command) => ticket(config, command).await,
        Command::Outbound(OutboundCommand::List { status, json }) => {
            let app = App::open(config).await?;
            let items = app.store.outbound(status).await?;
            print_out(json, &items, || {
                cli_output::outbound_table(&items, app.config.outbound.relay.is_some())
            })
        }
        Command::Outbound(OutboundCommand::Retry { ids }) => {
            let app = App::open(config).await?;
            for id in ids {
                let item = app
                    .store
                    .outbound_retry(id, "cli", chrono::Utc::now())
                    .await?;
                println!("outbound #{id} to {} queued again", item.rcpt_to);
            }
            if app.config.outbound.relay.is_none() {
                println!("(no [outbound] relay is configured: it waits for one)");
            }
            Ok(())
        }
        Command::Outbound(OutboundCommand::Cancel { ids }) => {
            let app = App::open(config).await?;
            for id in ids {
                let item = app
                    .store
                    .outbound_cancel(id, "cli", chrono::Utc::now())
                    .await?;
                println!("outbound #{id} to {} cancelled", item.rcpt_to);
            }
            Ok(())
        }
        Command::Message(command) => {
            let app = App::open(config).await?;
            match command {
                MessageCommand::Unfiled { json } => {
                    let messages = app.store.unfiled_messages().await?;
                    print_out(json, &messages, || cli_output::message_table(&messages))
                }
                MessageCommand::Raw { id } => {
                    let raw = app.store.raw_message(id).await?;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&raw)?;
                    out.flush()?;
                    Ok(())
                }
            }
        }
        Command::Search {
            query,
            limit,
            all,
            status,
            json,
        } => {
            let app = App::open(config).await?;
            if status {
                let status = postdesk::search::cli::status(&app).await?;
                return print_out(json, &status, || cli_output::index_status(&status));
            }
            let query = query.join(" ");
            let found = postdesk::search::cli::search(&app, &query, limit, all, !json).await?;
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            print_out(json, &found, || {
                cli_output::search_results(&found, terminal)
            })
        }
        Command::Reindex { json } => {
            let app = App::open(config).await?;
            let rebuilt = postdesk::search::cli::reindex(&app, !json).await?;
            print_out(json, &rebuilt, || cli_output::rebuilt(&rebuilt))
        }
        Command::Import {
            format,
            path,
            queue,
            json,
        } => {
            let app = App::open(config).await?;
            let queue = app.store.queue_by_name(&queue).await?;
            let format = match format {
                ImportFormat::Mbox => import::Format::Mbox,
                ImportFormat::Maildir => import::Format::Maildir,
            };
            let summary = import::import(&app, format, &path, &queue, !json).await?;
            print_out(json, &summary, || cli_output::import_summary(&summary))
        }
    }
}

async fn serve(config: Config, config_path: Option<PathBuf>) -> Result<()> {
    let written = match config_path {
        Some(path) => path,
        None => {
            // First start without a file: leave the defaults where the admin
            // will look for them, and use that file from now on.
            let path = config.data_dir.join("postdesk.toml");
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            std::fs::write(&path, postdesk::config::DEFAULT_FILE)
                .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
    };
    let pid_file = config.data_dir.join(server::PID_FILE);
    let running = server::start(config).await?;
    // `postdesk rules reload` finds the server here.
    if let Err(err) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        tracing::warn!(%err, file = %pid_file.display(), "cannot write the pid file");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", cli_output::welcome(&running, &written).await?)?;
    drop(out);
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn read_password(from_stdin: bool) -> Result<(String, bool)> {
    if !from_stdin {
        return Ok((passwords::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.len() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok((password, false))
}

async fn agent(config: Config, command: AgentCommand) -> Result<()> {
    let app = App::open(config).await?;
    match command {
        AgentCommand::Add {
            email,
            name,
            admin,
            queues,
            password_stdin,
        } => {
            let email = postdesk::domain::address::normalize(&email);
            if postdesk::domain::address::split(&email).is_none() {
                bail!("'{email}' is not a mail address");
            }
            let mut members = Vec::new();
            for queue in &queues {
                members.push(app.store.queue_by_name(queue).await?);
            }
            let (password, generated) = read_password(password_stdin)?;
            let hash = passwords::hash(&password)?;
            let name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
            app.store
                .add_agent(&email, &name, &hash, admin, &members)
                .await?;
            println!("agent {email} added{}", if admin { " (admin)" } else { "" });
            if generated {
                println!("password: {password}");
            }
        }
        AgentCommand::List { json } => {
            let agents = app.store.agents().await?;
            print_out(json, &agents, || cli_output::agent_table(&agents))?;
        }
        AgentCommand::Passwd {
            email,
            password_stdin,
        } => {
            let email = postdesk::domain::address::normalize(&email);
            let (password, generated) = read_password(password_stdin)?;
            app.store
                .set_agent_password(&email, &passwords::hash(&password)?)
                .await?;
            println!("password of {email} changed");
            if generated {
                println!("password: {password}");
            }
        }
    }
    Ok(())
}

async fn rules_command(config: Config, command: RulesCommand) -> Result<()> {
    let configured = || {
        config
            .rules_path()
            .context("no rules file: name one, or set `rules = \"rules.toml\"` in postdesk.toml")
    };
    match command {
        RulesCommand::Check { file } => {
            let path = match file {
                Some(path) => path,
                None => configured()?,
            };
            let rules = Rules::load(&path)?;
            println!(
                "{}: ok: {} calendars, {} SLA policies, {} rules, {} escalations",
                path.display(),
                rules.calendars.len(),
                rules.policies.len(),
                rules.rules.len(),
                rules.escalations.len()
            );
            Ok(())
        }
        RulesCommand::Test {
            message,
            ticket,
            rules,
            to,
            json,
        } => {
            let path = match rules {
                Some(path) => path,
                None => configured()?,
            };
            let rules = Rules::load(&path)?;
            let raw = std::fs::read(&message)
                .with_context(|| format!("cannot read {}", message.display()))?;
            let app = App::open(config).await?;
            let report =
                cli_output::RulesTest::run(&app, &rules, &raw, ticket.map(|t| t.0), to).await?;
            print_out(json, &report, || report.render())
        }
        RulesCommand::Reload => {
            let path = configured()?;
            Rules::load(&path)?;
            let pid_file = config.data_dir.join(server::PID_FILE);
            let pid = std::fs::read_to_string(&pid_file).with_context(|| {
                format!("no running server: cannot read {}", pid_file.display())
            })?;
            let pid: u32 = pid
                .trim()
                .parse()
                .with_context(|| format!("{} holds no process id", pid_file.display()))?;
            let status = std::process::Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .context("cannot run kill")?;
            if !status.success() {
                bail!(
                    "no server runs as process {pid} (stale {})",
                    pid_file.display()
                );
            }
            println!(
                "{}: ok; server (pid {pid}) asked to reload it",
                path.display()
            );
            Ok(())
        }
    }
}

async fn ticket(config: Config, command: TicketCommand) -> Result<()> {
    let app = App::open(config).await?;
    match command {
        TicketCommand::List {
            status,
            queue,
            overdue,
            json,
        } => {
            let filter = TicketFilter {
                status,
                queue,
                overdue,
                limit: None,
            };
            let tickets = app.store.tickets(&filter).await?;
            print_out(json, &tickets, || cli_output::ticket_table(&tickets))
        }
        TicketCommand::Show { number, json } => {
            let view = cli_output::TicketView::load(&app.store, number.0).await?;
            print_out(json, &view, || view.render())
        }
        TicketCommand::Export { number } => {
            let mut out = std::io::stdout().lock();
            cli_output::export_mbox(&app.store, number.0, &mut out).await?;
            Ok(())
        }
    }
}

fn print_out<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", text())?;
    }
    Ok(())
}
