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
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

mod m20261126_000001_initial;
mod m20261201_000001_list_indexes;
mod m20261201_000002_walk_ins_take_places;
mod m20261205_000001_keyed_by_gym;
mod m20261206_000001_gym_settings;
mod m20261206_000002_waitlist;
mod m20261206_000003_recurrences;
mod m20261206_000004_calendar_tokens;
mod m20261207_000001_idempotency_keys;
mod m20261207_000002_rotating_qr;
mod m20261207_000003_checkin_refusals;
mod m20261207_000004_occupancy;
mod m20261207_000005_no_shows;
mod m20261207_000006_webhooks;
mod m20261208_000001_plans;
mod m20261208_000002_passes;
mod m20261208_000003_pass_freezes;
mod m20261208_000004_payments;
mod m20261209_000001_booking_credits;
mod m20261210_000001_webhook_queue;

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
        Box::new(m20261205_000001_keyed_by_gym::Migration),
        Box::new(m20261206_000001_gym_settings::Migration),
        Box::new(m20261206_000002_waitlist::Migration),
        Box::new(m20261206_000003_recurrences::Migration),
        Box::new(m20261206_000004_calendar_tokens::Migration),
        Box::new(m20261207_000001_idempotency_keys::Migration),
        Box::new(m20261207_000002_rotating_qr::Migration),
        Box::new(m20261207_000003_checkin_refusals::Migration),
        Box::new(m20261207_000004_occupancy::Migration),
        Box::new(m20261207_000005_no_shows::Migration),
        Box::new(m20261207_000006_webhooks::Migration),
        Box::new(m20261208_000001_plans::Migration),
        Box::new(m20261208_000002_passes::Migration),
        Box::new(m20261208_000003_pass_freezes::Migration),
        Box::new(m20261208_000004_payments::Migration),
        Box::new(m20261209_000001_booking_credits::Migration),
        Box::new(m20261210_000001_webhook_queue::Migration),
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
    // Read in the transaction too: behind a transaction-pooling PgBouncer a statement
    // outside one may lose its server between its prepare and its execute.
    let sql = "SELECT version FROM seaql_migrations ORDER BY version";
    let rows = tx.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    tx.commit().await?;
    rows.iter().map(|r| r.try_get::<String>("", "version")).collect()
}

/// Applies every pending migration, each in its own transaction; returns how many.
///
/// On SQLite the migrations run on a connection of their own with foreign keys
/// off, as SQLite's procedure for rebuilding a table requires ([`rebuild_sqlite_table`]),
/// and each checks every foreign key (`PRAGMA foreign_key_check`) before it commits.
///
/// # Errors
/// The first failing migration's error; the ones before it stay applied.
pub async fn up(db: &DatabaseConnection) -> Result<usize, DbErr> {
    up_to(db, None).await
}

/// [`up`], stopping after the migration named `last` (`None`: all of them); for
/// tests of a migration against data written through the schema before it.
///
/// # Errors
/// As [`up`].
pub async fn up_to(db: &DatabaseConnection, last: Option<&str>) -> Result<usize, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let own = sqlite_connection(db).await?;
            let applied = up_on(&own, last).await;
            let _ = own.close().await;
            applied
        }
        _ => up_on(db, last).await,
    }
}

async fn up_on(db: &DatabaseConnection, last: Option<&str>) -> Result<usize, DbErr> {
    let done = applied(db).await?;
    // A database migrated by a newer binary: its schema may not serve this code.
    let known: Vec<&str> = all().iter().map(|m| m.name()).collect();
    if let Some(unknown) = done.iter().find(|v| !known.contains(&v.as_str())) {
        return Err(DbErr::Migration(format!("the database has migration {unknown}, which this binary does not know")));
    }
    let mut count = 0;
    let wanted = all();
    let through = last.and_then(|l| wanted.iter().position(|m| m.name() == l)).unwrap_or(wanted.len() - 1);
    for m in wanted.into_iter().take(through + 1).filter(|m| !done.iter().any(|v| v == m.name())) {
        let tx = begin(db).await?;
        if !claim(&tx, m.name()).await? {
            // Another instance starting at the same time applied it meanwhile.
            tx.rollback().await?;
            continue;
        }
        m.up(&tx).await?;
        foreign_keys_hold(&tx).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let record = "INSERT INTO seaql_migrations (version, applied_at) VALUES ($1, $2)";
        let values = [m.name().into(), now.into()];
        tx.execute_raw(Statement::from_sql_and_values(tx.get_database_backend(), record, values)).await?;
        tx.commit().await?;
        count += 1;
    }
    Ok(count)
}

/// Undoes the last `steps` applied migrations, newest first; returns how many (on
/// SQLite on a connection of its own, as [`up`]).
///
/// # Errors
/// The first failing migration's error (e.g. data the older schema cannot hold).
pub async fn down(db: &DatabaseConnection, steps: usize) -> Result<usize, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let own = sqlite_connection(db).await?;
            let undone = down_on(&own, steps).await;
            let _ = own.close().await;
            undone
        }
        _ => down_on(db, steps).await,
    }
}

async fn down_on(db: &DatabaseConnection, steps: usize) -> Result<usize, DbErr> {
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
        foreign_keys_hold(&tx).await?;
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

/// A connection of the migrations' own to the SQLite file `db` is open on: one
/// connection, foreign keys off (a table rebuild must not fire the foreign-key
/// actions of the table it drops), a patient busy timeout (a serving process may
/// hold the write lock for a moment).
async fn sqlite_connection(db: &DatabaseConnection) -> Result<DatabaseConnection, DbErr> {
    let file = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
        ))
        .await?
        .map(|r| r.try_get_by_index::<String>(0))
        .transpose()?
        .filter(|f| !f.is_empty())
        .ok_or_else(|| DbErr::Migration("the SQLite database is not a file: nothing to migrate into".into()))?;
    let mut opt = ConnectOptions::new(format!("sqlite://{file}"));
    opt.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| o.foreign_keys(false).busy_timeout(std::time::Duration::from_secs(30)));
    Database::connect(opt).await
}

/// On SQLite, fails the migration when any row's foreign key points nowhere (the
/// migrations run with enforcement off: this is where it is enforced).
async fn foreign_keys_hold(tx: &DatabaseTransaction) -> Result<(), DbErr> {
    if backend(tx) != DbBackend::Sqlite {
        return Ok(());
    }
    let broken = tx.query_all_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA foreign_key_check")).await?;
    if let Some(row) = broken.first() {
        let table: String = row.try_get_by_index(0).unwrap_or_default();
        return Err(DbErr::Migration(format!(
            "{} rows break a foreign key (first in table {table}); the migration is rolled back",
            broken.len()
        )));
    }
    Ok(())
}

/// Rebuilds an SQLite table to a new definition, keeping every row: SQLite cannot
/// change a table's keys, constraints or column order in place, so this is its
/// documented procedure (<https://www.sqlite.org/lang_altertable.html#otheralter>),
/// inside the migration's transaction: create `{table}_new` from `create` (a
/// `CREATE TABLE {table}_new …`), copy the rows (`INSERT INTO {table}_new (columns)
/// SELECT select FROM {table}`), drop the old table, rename the new one, and create
/// `indexes` again. The runner's SQLite connection has foreign keys off, as the
/// procedure requires, and checks them all before the commit; other tables' foreign
/// keys name the table, so they point at the new one once it is renamed.
///
/// # Errors
/// The database's (the transaction then rolls back whole).
pub(crate) async fn rebuild_sqlite_table(
    tx: &DatabaseTransaction,
    table: &str,
    create: &str,
    columns: &str,
    select: &str,
    indexes: &[&str],
) -> Result<(), DbErr> {
    // An AUTOINCREMENT counter lives in sqlite_sequence under the table's name and
    // goes with the table: carried over, ids of deleted rows are never given again.
    let counter = format!("SELECT seq FROM sqlite_sequence WHERE name = '{table}'");
    let has_sequence = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'";
    let seq = if tx.query_one_raw(Statement::from_string(DbBackend::Sqlite, has_sequence)).await?.is_some() {
        let row = tx.query_one_raw(Statement::from_string(DbBackend::Sqlite, counter)).await?;
        row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?
    } else {
        None
    };
    tx.execute_unprepared(create).await?;
    tx.execute_unprepared(&format!("INSERT INTO {table}_new ({columns}) SELECT {select} FROM {table}")).await?;
    tx.execute_unprepared(&format!("DROP TABLE {table}")).await?;
    tx.execute_unprepared(&format!("ALTER TABLE {table}_new RENAME TO {table}")).await?;
    if let Some(seq) = seq {
        tx.execute_unprepared(&format!(
            "UPDATE sqlite_sequence SET seq = MAX(seq, {seq}) WHERE name = '{table}'; \
             INSERT INTO sqlite_sequence (name, seq) SELECT '{table}', {seq} \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = '{table}')"
        ))
        .await?;
    }
    run(tx, indexes).await
}
