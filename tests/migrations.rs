//! The SQLite and PostgreSQL migrations (migrations/sqlite,
//! migrations/postgres) describe one schema: a fresh database of each,
//! migrated, has the same tables with the same columns, nullable alike. A
//! column added to one backend only fails here.

use crate::common;

use sqlx::Connection;
use std::collections::BTreeMap;

/// Table (or view) → column → whether it may be NULL.
type Schema = BTreeMap<String, BTreeMap<String, bool>>;

/// sqlx's own bookkeeping, which differs between its drivers.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

async fn migrate(url: &str) {
    let store = postdesk::store::Store::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate {url}: {e}"));
    store.close().await;
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut db = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master \
         WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' AND name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut db)
    .await
    .expect("tables");
    let mut schema = Schema::new();
    for table in tables {
        let columns: Vec<(String, bool, i64)> =
            sqlx::query_as("SELECT name, \"notnull\", pk FROM pragma_table_info($1)")
                .bind(&table)
                .fetch_all(&mut db)
                .await
                .expect("columns");
        // A primary key column is never NULL in PostgreSQL; in SQLite an
        // INTEGER PRIMARY KEY is the rowid, which is not NULL either.
        let columns = columns
            .into_iter()
            .map(|(name, not_null, pk)| (name, !not_null && pk == 0))
            .collect();
        schema.insert(table, columns);
    }
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut db = sqlx::PgConnection::connect(url).await.expect("postgres");
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, is_nullable::text \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut db)
    .await
    .expect("columns");
    let mut schema = Schema::new();
    for (table, column, nullable) in columns {
        schema
            .entry(table)
            .or_default()
            .insert(column, nullable == "YES");
    }
    schema
}

/// Each way `a` (of backend `a_name`) and `b` differ, one line each.
fn differences(a_name: &str, a: &Schema, b_name: &str, b: &Schema) -> Vec<String> {
    let nullability = |nullable: bool| if nullable { "NULL" } else { "NOT NULL" };
    let mut found = Vec::new();
    for (table, columns) in a {
        let Some(other) = b.get(table) else {
            found.push(format!("table {table} only in {a_name}"));
            continue;
        };
        for (column, nullable) in columns {
            match other.get(column) {
                None => found.push(format!("column {table}.{column} only in {a_name}")),
                Some(other_nullable) if other_nullable != nullable => found.push(format!(
                    "column {table}.{column} is {} in {a_name} but {} in {b_name}",
                    nullability(*nullable),
                    nullability(*other_nullable)
                )),
                Some(_) => {}
            }
        }
        for column in other.keys().filter(|c| !columns.contains_key(*c)) {
            found.push(format!("column {table}.{column} only in {b_name}"));
        }
    }
    for table in b.keys().filter(|t| !a.contains_key(*t)) {
        found.push(format!("table {table} only in {b_name}"));
    }
    found
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_make_the_same_tables_and_columns() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("schema.db").display());
    let postgres_url = common::fresh_postgres_database(&base).await;
    migrate(&sqlite_url).await;
    migrate(&postgres_url).await;
    let sqlite = sqlite_schema(&sqlite_url).await;
    let postgres = postgres_schema(&postgres_url).await;

    assert!(
        sqlite
            .get("tickets")
            .is_some_and(|columns| columns.get("number") == Some(&false)),
        "the schema was read: {sqlite:?}"
    );
    let found = differences("sqlite", &sqlite, "postgres", &postgres);
    assert!(
        found.is_empty(),
        "the migrations of the two backends differ:\n  {}",
        found.join("\n  ")
    );
}

/// The comparison itself: every kind of drift is named.
#[test]
fn a_column_or_table_in_one_backend_only_is_a_difference() {
    let schema = |tables: &[(&str, &[(&str, bool)])]| -> Schema {
        tables
            .iter()
            .map(|(table, columns)| {
                let columns = columns.iter().map(|(c, n)| (c.to_string(), *n)).collect();
                (table.to_string(), columns)
            })
            .collect()
    };
    let sqlite = schema(&[
        (
            "tickets",
            &[("number", false), ("subject", false), ("x", true)],
        ),
        ("extra", &[("id", false)]),
    ]);
    let postgres = schema(&[
        ("tickets", &[("number", false), ("subject", true)]),
        ("other", &[("id", false)]),
    ]);
    assert_eq!(
        differences("sqlite", &sqlite, "postgres", &postgres),
        vec![
            "table extra only in sqlite",
            "column tickets.subject is NOT NULL in sqlite but NULL in postgres",
            "column tickets.x only in sqlite",
            "table other only in postgres",
        ]
    );
    assert!(differences("sqlite", &sqlite, "postgres", &sqlite).is_empty());
}
