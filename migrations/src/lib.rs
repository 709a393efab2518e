//! GymAPI's schema, as migrations that run on PostgreSQL and SQLite, and the small
//! runner that applies them.
//!
//! The DDL is written out per backend rather than through a schema builder: the
//! two differ only in identity columns and timestamp types, and plain SQL keeps
//! the constraints that matter (uniques, foreign keys, checks) readable in review.
//!
//! The runner keeps sea-orm-migration's bookkeeping table (`seaql_migrations`,
//! `version` and `applied_at` in Unix seconds), so databases migrated before keep
//! their history; it replaced that crate because it builds sea-orm with every
//! default feature (chrono, rust_decimal, bigdecimal, uuid…), which nothing here uses.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};

mod m20261126_000001_initial;
mod m20261201_000001_list_indexes;
mod m20261201_000002_walk_ins_take_places;

/// One change of the schema, applied (and undone) inside a transaction together with
/// its record in `seaql_migrations`, so a failed migration leaves no trace.
#[async_trait]
pub trait Migration: Send + Sync {
    /// The version recorded when applied; migrations run in the order of [`all`].
    fn name(&self) -> &'static str;
    /// Applies the change.
    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr>;
    /// Undoes the change.
    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr>;
}

/// Every migration, oldest first.
pub fn all() -> Vec<Box<dyn Migration>> {
    vec![
        Box::new(m20261126_000001_initial::Migration),
        Box::new(m20261201_000001_list_indexes::Migration),
        Box::new(m20261201_000002_walk_ins_take_places::Migration),
    ]
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS seaql_migrations \
                     (version VARCHAR NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// The versions applied so far, oldest first (creating the bookkeeping table).
///
/// # Errors
/// The database's.
pub async fn applied(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    // Under the lock too: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against
    // itself (two creators race on the catalog's unique index).
    let tx = begin(db).await?;
    lock(&tx).await?;
    tx.execute_unprepared(TABLE).await?;
    tx.commit().await?;
    let sql = "SELECT version FROM seaql_migrations ORDER BY version";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    rows.iter().map(|r| r.try_get::<String>("", "version")).collect()
}

/// Applies every pending migration, each in its own transaction; returns how many.
///
/// # Errors
/// The first failing migration's error; the ones before it stay applied.
pub async fn up(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let done = applied(db).await?;
    // A database migrated by a newer binary: its schema may not serve this code.
    let known: Vec<&str> = all().iter().map(|m| m.name()).collect();
    if let Some(unknown) = done.iter().find(|v| !known.contains(&v.as_str())) {
        return Err(DbErr::Migration(format!("the database has migration {unknown}, which this binary does not know")));
    }
    let mut count = 0;
    for m in all().into_iter().filter(|m| !done.iter().any(|v| v == m.name())) {
        let tx = begin(db).await?;
        if !claim(&tx, m.name()).await? {
            // Another instance starting at the same time applied it meanwhile.
            tx.rollback().await?;
            continue;
        }
        m.up(&tx).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let record = "INSERT INTO seaql_migrations (version, applied_at) VALUES ($1, $2)";
        let values = [m.name().into(), now.into()];
        tx.execute_raw(Statement::from_sql_and_values(tx.get_database_backend(), record, values)).await?;
        tx.commit().await?;
        count += 1;
    }
    Ok(count)
}

/// Undoes the last `steps` applied migrations, newest first; returns how many.
///
/// # Errors
/// The first failing migration's error (e.g. data the older schema cannot hold).
pub async fn down(db: &DatabaseConnection, steps: usize) -> Result<usize, DbErr> {
    let done = applied(db).await?;
    let mut count = 0;
    for m in all().into_iter().rev().filter(|m| done.iter().any(|v| v == m.name())).take(steps) {
        let tx = begin(db).await?;
        if claim(&tx, m.name()).await? {
            // Undone meanwhile by another process.
            tx.rollback().await?;
            continue;
        }
        m.down(&tx).await?;
        let forget = "DELETE FROM seaql_migrations WHERE version = $1";
        tx.execute_raw(Statement::from_sql_and_values(tx.get_database_backend(), forget, [m.name().into()])).await?;
        tx.commit().await?;
        count += 1;
    }
    Ok(count)
}

/// Whether this transaction is the one to apply `version`. On PostgreSQL, instances
/// that start together queue on a transaction-scoped advisory lock and the later ones
/// find the version recorded; SQLite's single writer serializes them already.
async fn claim(tx: &DatabaseTransaction, version: &str) -> Result<bool, DbErr> {
    lock(tx).await?;
    let b = backend(tx);
    let sql = "SELECT version FROM seaql_migrations WHERE version = $1";
    let found = tx.query_one_raw(Statement::from_sql_and_values(b, sql, [version.into()])).await?;
    Ok(found.is_none())
}

/// A write transaction: on SQLite `BEGIN IMMEDIATE`, so a migration running while
/// a server writes waits for the lock (busy timeout) instead of failing on upgrade.
async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let sqlite = db.get_database_backend() == DbBackend::Sqlite;
    let options = TransactionOptions {
        sqlite_transaction_mode: sqlite.then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    db.begin_with_options(options).await
}

/// Holds the migration lock until the transaction ends (PostgreSQL; a no-op on SQLite).
async fn lock(tx: &DatabaseTransaction) -> Result<(), DbErr> {
    if backend(tx) == DbBackend::Postgres {
        // An arbitrary key of this application's own: "gymapi" in ASCII decimal.
        tx.execute_unprepared("SELECT pg_advisory_xact_lock(103121109097112105)").await?;
    }
    Ok(())
}

/// Runs each `;`-free statement in order.
async fn run(tx: &DatabaseTransaction, statements: &[&str]) -> Result<(), DbErr> {
    for sql in statements {
        tx.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// The backend the transaction runs on.
fn backend(tx: &DatabaseTransaction) -> DbBackend {
    tx.get_database_backend()
}
