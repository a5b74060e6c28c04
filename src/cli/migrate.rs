//! `postdesk migrate`: creates or updates the database schema (and the
//! configured queues, as a server start does).

use super::{CliResult, open_for_writing, print_line};
use crate::config::Config;

pub async fn migrate(config: Config) -> CliResult<()> {
    let app = open_for_writing(config).await?;
    print_line(format_args!(
        "database {} is up to date",
        app.config.database_url()
    ))
}
