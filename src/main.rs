//! The `postdesk` command line: the arguments, and which function of
//! [`postdesk::cli`] each command calls.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use postdesk::cli;
use postdesk::domain::change::TicketChange;
use postdesk::domain::knowledge::{ArticleState, Visibility};
use postdesk::domain::permission::AgentRole;
use postdesk::domain::ticket::{Priority, Status};
use postdesk::import::Format;
use postdesk::store::{ArticleFilter, OutboundStatus, TicketFilter};
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
    /// Act as this agent: the command may do only what the agent's role
    /// and queues allow, and the audit log names them. Without it the
    /// command line is the server's administrator.
    #[arg(long = "as", global = true, env = "POSTDESK_AS", value_name = "AGENT")]
    acting_as: Option<String>,
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
    /// The administrators' audit log: who changed which agent or queue,
    /// when, with which command.
    Audit {
        #[arg(long)]
        json: bool,
    },
    /// What runs and how it is doing: listeners, queues, outbound backlog,
    /// index lag, disk free against the floor, database size.
    Status {
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
    /// The team report: tickets created, resolved, reopened, backlog;
    /// first-response, next-response and resolution times (median and
    /// 90th percentile, business hours); SLA met; satisfaction; time
    /// spent; article usage.
    Report {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this agent's tickets, time and ratings.
        #[arg(long)]
        agent: Option<String>,
        /// The first day (YYYY-MM-DD, in the report calendar's zone).
        #[arg(long)]
        from: Option<String>,
        /// The last day, inclusive (default: up to now).
        #[arg(long)]
        to: Option<String>,
        /// A line per day, week, agent or queue.
        #[arg(long)]
        by: Option<String>,
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[arg(long)]
        json: bool,
    },
    /// The knowledge base: articles, their revisions, the help center.
    #[command(subcommand)]
    Kb(KbCommand),
    /// Shared templates (canned replies) per queue: the Templates folder
    /// and `#template NAME`.
    #[command(subcommand)]
    Template(TemplateCommand),
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
        /// The queue (address or name) it arrives at (default: the first queue).
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

#[derive(Subcommand)]
enum TemplateCommand {
    /// List the templates (of one queue).
    List {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a template (by name or id).
    Show {
        template: String,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Add a template to a queue, its text from standard input; the name
    /// is what `#template NAME` finds (and its subject in the folder).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        queue: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a template (its author, a lead of its queue or an admin).
    Remove {
        template: String,
        #[arg(long)]
        queue: Option<String>,
    },
}

#[derive(Subcommand)]
enum KbCommand {
    /// List articles, newest change first.
    List {
        /// Only articles in this state: draft, published, archived.
        #[arg(long)]
        state: Option<ArticleState>,
        /// Only articles of this category.
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show an article as it is now (or one of its revisions).
    Show {
        id: i64,
        /// This revision instead of the newest.
        #[arg(long)]
        revision: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Write a new article (a draft) with the body from standard input
    /// (Markdown or plain text).
    Add {
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "General")]
        category: String,
        /// Customers may read it once published (default: internal).
        #[arg(long)]
        public: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change an article's title, category, visibility or body (a new revision).
    Edit {
        id: i64,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long, conflicts_with = "internal")]
        public: bool,
        #[arg(long)]
        internal: bool,
        /// Read the new body from standard input.
        #[arg(long)]
        stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// Publish an article (a lead or an admin).
    Publish {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw an article (a lead or an admin); its history stays.
    Archive {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Every revision of an article: number, time, author, what changed.
    History {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Bring back the title, category and body of an earlier revision, as
    /// a new revision (a lead or an admin).
    Revert {
        id: i64,
        revision: i64,
        #[arg(long)]
        json: bool,
    },
    /// Per article: revisions, how often acknowledgements suggested it,
    /// and the help center's "did this help?" answers.
    Report {
        #[arg(long)]
        json: bool,
    },
    /// Write the help center (published public articles) as static HTML.
    Export {
        /// The directory to write into.
        #[arg(long = "html", value_name = "DIR")]
        dir: PathBuf,
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
        /// agent (their queues), lead (also reassigns tickets and reads
        /// the reports), admin (everything, every queue).
        #[arg(long, default_value = "agent", value_parser = parse_role)]
        role: AgentRole,
        /// The same as --role admin.
        #[arg(long, conflicts_with = "role")]
        admin: bool,
        /// A queue the agent works (repeatable).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an agent's name, role, queues or time zone; a new role or new queues end
    /// the agent's open sessions, so that they apply at once.
    Set {
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_role)]
        role: Option<AgentRole>,
        /// The agent's queues from now on (repeatable; replaces them all).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Take the agent out of every queue.
        #[arg(long, conflicts_with = "queues")]
        no_queues: bool,
        /// The time zone they work in (IANA, e.g. America/New_York): a
        /// lead's weekly report mail goes out at its hour there; "" or
        /// "default": the report calendar's.
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// Remove an agent for good: no more logins, open sessions end, their
    /// open tickets go back to Unassigned; their name stays on what they
    /// wrote and did.
    Remove { email: String },
    /// List agents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set an agent's password; prints a generated one unless --password-stdin.
    /// The agent's open sessions end.
    Passwd {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Refuse an agent's logins from now on and end their open IMAP and
    /// submission sessions within seconds (on every node).
    Disable { email: String },
    /// Let a disabled agent log in again.
    Enable { email: String },
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
    /// Change a ticket as a mail command or an IMAP move would, recorded in
    /// its history (with --as AGENT, within the agent's permissions).
    Set {
        number: TicketNumber,
        /// new, open, pending, resolved, closed.
        #[arg(long)]
        status: Option<Status>,
        /// low, normal, high, urgent.
        #[arg(long)]
        priority: Option<Priority>,
        /// An agent's address, or `nobody`.
        #[arg(long)]
        owner: Option<String>,
        /// A queue by name or address.
        #[arg(long)]
        queue: Option<String>,
        /// Add a tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Remove a tag (repeatable).
        #[arg(long = "untag")]
        untags: Vec<String>,
    },
    /// Move a ticket's messages, participants, tags and history into
    /// another ticket (its clocks stay); the merged ticket is closed and
    /// points there, and mail to it goes there.
    Merge {
        number: TicketNumber,
        /// The ticket that takes the mail.
        #[arg(long)]
        into: TicketNumber,
        #[arg(long)]
        json: bool,
    },
    /// Move a customer message and its sender's later ones into a new
    /// ticket linked to this one.
    Split {
        number: TicketNumber,
        /// The message: its number (ID in `ticket show`) or its Message-ID.
        #[arg(long)]
        message: cli::ticket::MessageChoice,
        #[arg(long)]
        json: bool,
    },
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

fn parse_role(s: &str) -> Result<AgentRole, String> {
    s.parse()
}

fn parse_outbound_status(s: &str) -> Result<OutboundStatus, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not one of queued, sending, sent, failed, cancelled"))
}

async fn kb(
    config: postdesk::config::Config,
    operator: &cli::Operator,
    command: KbCommand,
) -> Result<()> {
    match command {
        KbCommand::List {
            state,
            category,
            json,
        } => {
            let filter = ArticleFilter {
                state,
                category,
                public_only: false,
            };
            cli::kb::list(&config, filter, json).await?
        }
        KbCommand::Show { id, revision, json } => {
            cli::kb::show(&config, id, revision, json).await?
        }
        KbCommand::Add {
            title,
            category,
            public,
            json,
        } => {
            let input = cli::kb::ArticleInput {
                title: Some(title),
                category: Some(category),
                visibility: public.then_some(Visibility::Public),
                body_from_stdin: true,
            };
            cli::kb::add(config, operator, input, json).await?
        }
        KbCommand::Edit {
            id,
            title,
            category,
            public,
            internal,
            stdin,
            json,
        } => {
            let visibility = if public {
                Some(Visibility::Public)
            } else {
                internal.then_some(Visibility::Internal)
            };
            let input = cli::kb::ArticleInput {
                title,
                category,
                visibility,
                body_from_stdin: stdin,
            };
            cli::kb::edit(config, operator, id, input, json).await?
        }
        KbCommand::Publish { id, json } => {
            cli::kb::set_state(config, operator, id, ArticleState::Published, json).await?
        }
        KbCommand::Archive { id, json } => {
            cli::kb::set_state(config, operator, id, ArticleState::Archived, json).await?
        }
        KbCommand::History { id, json } => cli::kb::history(&config, id, json).await?,
        KbCommand::Revert { id, revision, json } => {
            cli::kb::revert(config, operator, id, revision, json).await?
        }
        KbCommand::Export { dir } => cli::kb::export(&config, &dir).await?,
        KbCommand::Report { json } => cli::kb::report(&config, json).await?,
    }
    Ok(())
}

fn main() -> Result<()> {
    postdesk::private_files::make_new_files_private();
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

async fn run(cli: Cli) -> Result<()> {
    let (config, config_file) = cli::load_config(cli.global.config, cli.global.data_dir)?;
    let operator = cli::Operator::resolve(&config, cli.global.acting_as.as_deref()).await?;
    if let Some(agent) = &operator.agent {
        cli::audit::set_acting_agent(&agent.email);
    }
    // What an agent named with --as may not do at all: the server's own
    // work and administration.
    match &cli.command {
        Command::Serve | Command::Migrate => operator.administer("run or migrate the server")?,
        Command::Queue(QueueCommand::Add { .. }) => operator.administer("manage queues")?,
        Command::Agent(AgentCommand::List { .. }) => {}
        Command::Agent(_) => operator.administer("manage agents")?,
        Command::Outbound(OutboundCommand::Retry { .. } | OutboundCommand::Cancel { .. }) => {
            operator.administer("retry or cancel deliveries")?
        }
        Command::Outbound(_) | Command::Message(_) | Command::Status { .. } => {
            operator.administer("look at the server's mail and state")?
        }
        Command::Reindex { .. } | Command::Import { .. } => {
            operator.administer("rebuild the index or import mail")?
        }
        Command::Rules(RulesCommand::Reload) => operator.administer("reload the rules")?,
        Command::Audit { .. } => operator.administer("read the audit log")?,
        Command::Sla(_) => operator.read_reports()?,
        Command::Report { .. } => operator.read_reports()?,
        _ => {}
    }
    let done: Result<()> = async {
        match cli.command {
            Command::Serve => cli::serve::serve(config, config_file).await?,
            Command::Migrate => cli::migrate::migrate(config).await?,
            Command::Queue(QueueCommand::Add { name, address }) => {
                cli::queue::add(config, &name, &address).await?
            }
            Command::Queue(QueueCommand::List { json }) => cli::queue::list(&config, json).await?,
            Command::Agent(AgentCommand::Add {
                email,
                name,
                role,
                admin,
                queues,
                password_stdin,
            }) => {
                let agent = cli::agent::NewAgent {
                    email,
                    name,
                    role: if admin { AgentRole::Admin } else { role },
                    queues,
                    password_stdin,
                };
                cli::agent::add(config, agent).await?
            }
            Command::Agent(AgentCommand::List { json }) => cli::agent::list(&config, json).await?,
            Command::Agent(AgentCommand::Set {
                email,
                name,
                role,
                queues,
                no_queues,
                time_zone,
            }) => {
                let changes = cli::agent::AgentChanges {
                    name,
                    role,
                    queues: (no_queues || !queues.is_empty()).then_some(queues),
                    time_zone,
                };
                cli::agent::set(config, &email, changes).await?
            }
            Command::Agent(AgentCommand::Remove { email }) => {
                cli::agent::remove(config, &email).await?
            }
            Command::Agent(AgentCommand::Passwd {
                email,
                password_stdin,
            }) => cli::agent::passwd(config, &email, password_stdin).await?,
            Command::Agent(AgentCommand::Disable { email }) => {
                cli::agent::set_disabled(config, &email, true).await?
            }
            Command::Agent(AgentCommand::Enable { email }) => {
                cli::agent::set_disabled(config, &email, false).await?
            }
            Command::Ticket(TicketCommand::List {
                status,
                queue,
                overdue,
                json,
            }) => {
                let filter = TicketFilter {
                    status,
                    queue,
                    overdue,
                    ..TicketFilter::default()
                };
                cli::ticket::list(&config, &operator, filter, json).await?
            }
            Command::Ticket(TicketCommand::Show { number, json }) => {
                cli::ticket::show(&config, &operator, number.0, json).await?
            }
            Command::Ticket(TicketCommand::Export { number }) => {
                cli::ticket::export(&config, &operator, number.0).await?
            }
            Command::Ticket(TicketCommand::Set {
                number,
                status,
                priority,
                owner,
                queue,
                tags,
                untags,
            }) => {
                let edit = cli::ticket::TicketEdit {
                    change: TicketChange {
                        status,
                        priority,
                        queue,
                        add_tags: tags,
                        remove_tags: untags,
                        ..TicketChange::default()
                    },
                    owner,
                };
                cli::ticket::set(config, &operator, number.0, edit).await?
            }
            Command::Ticket(TicketCommand::Merge { number, into, json }) => {
                cli::ticket::merge(config, &operator, number.0, into.0, json).await?
            }
            Command::Ticket(TicketCommand::Split {
                number,
                message,
                json,
            }) => cli::ticket::split(config, &operator, number.0, message, json).await?,
            Command::Outbound(OutboundCommand::List { status, json }) => {
                cli::outbound::list(&config, status, json).await?
            }
            Command::Outbound(OutboundCommand::Retry { ids }) => {
                cli::outbound::retry(config, &ids).await?
            }
            Command::Outbound(OutboundCommand::Cancel { ids }) => {
                cli::outbound::cancel(config, &ids).await?
            }
            Command::Message(MessageCommand::Unfiled { json }) => {
                cli::message::unfiled(&config, json).await?
            }
            Command::Message(MessageCommand::Raw { id }) => cli::message::raw(&config, id).await?,
            Command::Search {
                status: true, json, ..
            } => cli::search::status(&config, json).await?,
            Command::Search {
                query,
                limit,
                all,
                json,
                ..
            } => {
                cli::search::search(&config, &operator, &query.join(" "), limit, all, json).await?
            }
            Command::Reindex { json } => cli::search::reindex(&config, json).await?,
            Command::Status { json } => cli::status::status(&config, json).await?,
            Command::Audit { json } => cli::audit::list(&config, json).await?,
            Command::Rules(RulesCommand::Check { file }) => cli::rules::check(&config, file)?,
            Command::Rules(RulesCommand::Test {
                message,
                ticket,
                rules,
                to,
                json,
            }) => {
                let request = cli::rules::TestRequest {
                    message,
                    ticket: ticket.map(|t| t.0),
                    rules,
                    to,
                };
                cli::rules::test(&config, request, json).await?
            }
            Command::Rules(RulesCommand::Reload) => cli::rules::reload(&config).await?,
            Command::Sla(SlaCommand::Report { json }) => {
                cli::sla::report(&config, &operator, json).await?
            }
            Command::Report {
                queue,
                agent,
                from,
                to,
                by,
                csv,
                json,
            } => {
                let request = cli::report::ReportArgs {
                    queue,
                    agent,
                    from,
                    to,
                    by,
                };
                let format = match (csv, json) {
                    (true, _) => cli::report::ReportFormat::Csv,
                    (_, true) => cli::report::ReportFormat::Json,
                    _ => cli::report::ReportFormat::Text,
                };
                cli::report::report(&config, &operator, request, format).await?
            }
            Command::Kb(command) => kb(config, &operator, command).await?,
            Command::Template(command) => match command {
                TemplateCommand::List { queue, json } => {
                    cli::template::list(&config, &operator, queue, json).await?
                }
                TemplateCommand::Show {
                    template,
                    queue,
                    json,
                } => cli::template::show(&config, &operator, &template, queue, json).await?,
                TemplateCommand::Add { name, queue, json } => {
                    cli::template::add(config, &operator, &name, &queue, json).await?
                }
                TemplateCommand::Remove { template, queue } => {
                    cli::template::remove(config, &operator, &template, queue).await?
                }
            },
            Command::Import {
                format,
                path,
                queue,
                json,
            } => {
                let format = match format {
                    ImportFormat::Mbox => Format::Mbox,
                    ImportFormat::Maildir => Format::Maildir,
                };
                cli::import::import(config, format, &path, &queue, json).await?
            }
        }
        Ok(())
    }
    .await;
    // What the command changed reaches the other nodes before it exits.
    cli::finish().await;
    done
}
