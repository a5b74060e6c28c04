//! `postdesk sla report`: read-only.

use super::{CliResult, Operator, open_read_only, output, print_out};
use crate::config::Config;
use crate::domain::sla::SlaReportRow;
use crate::rules::{Rules, RulesHandle, calendar::Calendar};
use serde::Serialize;

/// A queue's SLA figures, with the median first-response time measured
/// on each ticket's own calendar.
#[derive(Debug, Clone, Serialize)]
pub struct SlaReportLine {
    pub queue: String,
    pub tickets: i64,
    pub with_sla: i64,
    pub breached: i64,
    pub overdue_now: i64,
    pub answered: usize,
    pub median_first_response_business_hours: Option<f64>,
}

impl SlaReportLine {
    pub fn from_store(row: SlaReportRow, rules: &Rules) -> SlaReportLine {
        let always = Calendar::always();
        let mut hours: Vec<f64> = row
            .first_responses
            .iter()
            .map(|(created, answered, policy)| {
                let calendar = policy
                    .as_deref()
                    .and_then(|p| rules.policy(p))
                    .map_or(&always, |p| p.calendar.as_ref());
                calendar.business_between(*created, *answered).num_seconds() as f64 / 3600.0
            })
            .collect();
        hours.sort_by(|a, b| a.total_cmp(b));
        let median = match hours.len() {
            0 => None,
            n if n % 2 == 1 => Some(hours[n / 2]),
            n => Some((hours[n / 2 - 1] + hours[n / 2]) / 2.0),
        };
        SlaReportLine {
            queue: row.queue,
            tickets: row.tickets,
            with_sla: row.with_sla,
            breached: row.breached,
            overdue_now: row.overdue_now,
            answered: hours.len(),
            median_first_response_business_hours: median,
        }
    }
}

/// Run `--as` a lead, only their queues.
pub async fn report(config: &Config, operator: &Operator, json: bool) -> CliResult<()> {
    let store = open_read_only(config).await?;
    // As a CLI command always did: a rules file with mistakes is logged and
    // the report measures on plain clock time.
    let rules = RulesHandle::open(config.rules_path()).current();
    let lines: Vec<SlaReportLine> = store
        .sla_report()
        .await?
        .into_iter()
        .filter(|row| {
            operator
                .queues()
                .is_none_or(|queues| queues.iter().any(|q| q.eq_ignore_ascii_case(&row.queue)))
        })
        .map(|row| SlaReportLine::from_store(row, &rules))
        .collect();
    print_out(json, &lines, || output::sla_report_table(&lines))
}
