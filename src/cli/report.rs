//! `postdesk report`: read-only. `--as` a lead: only their queues; an
//! agent is refused.

use super::{CliError, CliResult, Operator, open_read_only, output, print_out, write_stdout};
use crate::config::Config;
use crate::domain::report::{GroupBy, to_csv};
use crate::reports::{ReportError, ReportRequest};
use crate::rules::RulesHandle;

/// The options as typed.
#[derive(Debug, Clone, Default)]
pub struct ReportArgs {
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Csv,
    Json,
}

impl From<ReportError> for CliError {
    fn from(err: ReportError) -> CliError {
        match err {
            ReportError::Store(err) => CliError::Store(err),
            ReportError::Denied(denied) => CliError::Denied(denied),
            ReportError::Invalid(message) => CliError::Invalid(message),
            other => CliError::Failed(other.to_string()),
        }
    }
}

pub async fn report(
    config: &Config,
    operator: &Operator,
    options: ReportArgs,
    format: ReportFormat,
) -> CliResult<()> {
    let request = ReportRequest {
        from: options
            .from
            .as_deref()
            .map(|d| ReportRequest::parse_day(d, "--from"))
            .transpose()?,
        to: options
            .to
            .as_deref()
            .map(|d| ReportRequest::parse_day(d, "--to"))
            .transpose()?,
        by: options
            .by
            .as_deref()
            .map(|b| b.parse::<GroupBy>().map_err(CliError::Invalid))
            .transpose()?,
        queue: options.queue,
        agent: options.agent,
        time_zone: None,
    };
    let store = open_read_only(config).await?;
    // As `sla report`: a rules file with mistakes is logged, and tickets
    // are measured on plain clock time.
    let rules = RulesHandle::open(config.rules_path()).current();
    let report = crate::reports::build(
        &store,
        config,
        rules,
        operator.agent.as_ref(),
        &request,
        chrono::Utc::now(),
    )
    .await;
    store.close().await;
    let report = report?;
    match format {
        ReportFormat::Csv => write_stdout(to_csv(&report).as_bytes()),
        ReportFormat::Json => print_out(true, &report, String::new),
        ReportFormat::Text => print_out(false, &report, || output::report_text(&report)),
    }
}
