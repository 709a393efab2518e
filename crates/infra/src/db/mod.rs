//! The database: one SeaORM connection pool, PostgreSQL or SQLite by URL, and the
//! repositories over it.
//!
//! Queries are plain SQL with `$n` placeholders, which both backends accept, so each
//! repository has one code path. Timestamps are bound in UTC with whole seconds:
//! SQLite stores them as RFC 3339 text, which then sorts and compares like time.

use std::future::Future;
use std::time::Instant;

use domain::DomainError;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseTransaction, DbBackend, DbErr, FromQueryResult, RuntimeErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};
use time::OffsetDateTime;

use crate::config::Settings;

mod attendance;
mod calendar;
mod changes;
mod events;
mod gyms;
pub mod idempotency;
mod outbox;
mod passes;
mod plans;
mod pool;
mod recurrences;
mod refusals;
pub mod replica;
mod reports;
mod rows;
mod schedule;
mod users;
mod webhooks;

use rows::FromColumns;

/// The pool, shared by every repository.
#[derive(Clone)]
pub struct Db {
    conn: pool::Pool,
    /// Where write transactions run: on SQLite one connection of its own (see
    /// [`connect`]), on PostgreSQL the same pool.
    writes: pool::Pool,
    /// To open a migration connection of its own (redacted in `Debug`).
    url: crate::config::Secret,
    /// `DATABASE_MAX_CONNECTIONS`: what "the pool is full" means on a dashboard.
    max_connections: u32,
    /// `DATABASE_STATEMENT_TIMEOUT`: also the longest wait for SQLite's writer.
    statement_timeout: std::time::Duration,
    /// The time written into the outbox (the domain's clock, so a pinned clock pins it too).
    clock: std::sync::Arc<dyn domain::clock::Clock>,
    /// Delivery marks of the outbox, written in batches off the request path.
    marks: std::sync::Arc<outbox::Marks>,
    /// SQLite's one writer: write transactions (and the outbox's few writes outside
    /// one) queue here, in order, instead of 20 connections polling the file lock.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// `DATABASE_PGBOUNCER`: behind a transaction-pooling PgBouncer.
    bounced: bool,
    /// `DATABASE_READ_URL`: the replica for reads that tolerate lag.
    replica: Option<std::sync::Arc<replica::Replica>>,
}

/// The SQLite writer's turn, held until the write committed or rolled back
/// (`None` on PostgreSQL, whose row locks order writers).
pub(super) type Writer = Option<tokio::sync::OwnedMutexGuard<()>>;

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("url", &self.url).field("max_connections", &self.max_connections).finish()
    }
}

/// Why the database could not be opened or migrated (the driver's error is the
/// source; it never leaves this crate by its own type).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Unreachable, or the URL is refused.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] DbErr),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[source] DbErr),
    /// The online copy could not be written.
    #[error("backup failed: {0}")]
    Backup(#[source] DbErr),
    /// `gymapi backup` copies SQLite databases; PostgreSQL has its own tools.
    #[error("backup copies an SQLite database; for PostgreSQL use pg_dump (docs/operations.md)")]
    BackupNotSqlite,
    /// `DATABASE_URL` names no GymAPI database (wrong directory or URL).
    #[error("DATABASE_URL names no GymAPI database (no migrations were ever applied there): nothing to back up")]
    BackupNothing,
}

/// Connects to the database named by the settings.
///
/// # Errors
/// [`DbError::Connect`] when the database cannot be reached or the URL is refused.
pub async fn connect(settings: &Settings) -> Result<Db, DbError> {
    let bounced = settings.database_pgbouncer;
    let max = settings.database_max_connections;
    // SQLite's writes are one at a time (`writer`), so they lose nothing on one
    // connection of their own, and that connection's page cache stays valid: a
    // connection throws its cache away (and, memory-mapped, unmaps the file) at every
    // transaction that finds another connection's commit since its last one. Shared
    // by 20, every write transaction began by reading its pages again. The pool's
    // size stays `DATABASE_MAX_CONNECTIONS`, the writer's connection counted.
    let own_writer = keeps_a_writer(settings.is_sqlite(), max);
    let readers = if own_writer { max - 1 } else { max };
    let conn =
        pool::Pool::new(Database::connect(options(settings, readers, None)).await.map_err(DbError::Connect)?, bounced);
    let writes = if own_writer {
        let opt = options(settings, 1, Some(WRITER_CACHE));
        pool::Pool::new(Database::connect(opt).await.map_err(DbError::Connect)?, false)
    } else {
        conn.clone()
    };
    let replica = match &settings.database_read_url {
        Some(url) => Some(std::sync::Arc::new(replica::Replica::new(pool::Pool::new(
            replica::connect(url.expose(), settings).await.map_err(DbError::Connect)?,
            false,
        )))),
        None => None,
    };
    let db = Db {
        conn,
        writes,
        url: settings.database_url.clone(),
        max_connections: settings.database_max_connections,
        statement_timeout: settings.database_statement_timeout,
        clock: std::sync::Arc::new(domain::clock::SystemClock),
        marks: std::sync::Arc::default(),
        writer: std::sync::Arc::default(),
        bounced,
        replica,
    };
    db.spawn_mark_writer();
    db.spawn_replica_checker();
    Ok(db)
}

/// Whether write transactions get a connection of their own: on SQLite, when the
/// pool has room for one beside a reader.
fn keeps_a_writer(sqlite: bool, max_connections: u32) -> bool {
    sqlite && max_connections >= 2
}

/// The SQLite writer connection's page cache, in KiB (negative: SQLite's unit for
/// a size rather than a page count): it keeps what check-ins write warm.
const WRITER_CACHE: &str = "-65536";

/// The pool's options: `max` connections, each set up as [`connect`] describes, with
/// SQLite's page cache of `cache` (its `cache_size`) when given, else SQLite's own.
fn options(settings: &Settings, max: u32, cache: Option<&'static str>) -> ConnectOptions {
    let statement_timeout = settings.database_statement_timeout;
    let bounced = settings.database_pgbouncer;
    let mut opt = ConnectOptions::new(settings.database_url.expose().to_owned());
    opt.max_connections(max)
        .min_connections(1)
        .acquire_timeout(settings.database_acquire_timeout)
        .connect_timeout(settings.database_acquire_timeout)
        // A health query on every checkout costs a round trip per request; broken
        // connections surface as errors and are replaced by the pool instead.
        .test_before_acquire(false)
        .sqlx_logging(false)
        // A stuck statement cannot hold a request: PostgreSQL cancels it server-side
        // (57014, answered 503); SQLite waits for a lock at most as long.
        .map_sqlx_postgres_opts(move |o| {
            if bounced {
                // PgBouncer refuses the `options` startup parameter: the timeout is the
                // role's there (docs/scaling.md); nothing prepared outlives a transaction.
                o.statement_cache_capacity(0)
            } else {
                o.options([("statement_timeout", format!("{}ms", statement_timeout.as_millis()))])
            }
        })
        .map_sqlx_sqlite_opts(move |o| {
            let o = match cache {
                Some(size) => o.pragma("cache_size", size),
                None => o,
            };
            // FULL: an acknowledged write survives a power cut (the WAL is synced at
            // every commit); batched check-ins share that sync.
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(statement_timeout)
                .foreign_keys(true)
                // Pages through a memory map: a connection whose page cache another
                // connection's commit made stale reads them again without a pread and
                // a copy each (most of a check-in's CPU on SQLite before).
                .pragma("mmap_size", "268435456")
        });
    opt
}

impl Db {
    /// Applies pending migrations.
    ///
    /// # Errors
    /// [`DbError::Migrate`] (or [`DbError::Connect`] for the migration connection).
    pub async fn migrate(&self) -> Result<(), DbError> {
        if self.backend() != DbBackend::Postgres {
            return migration::up(&self.writes).await.map(drop).map_err(DbError::Migrate);
        }
        // Not through the pool: its connections carry the statement timeout, and
        // building an index on a large table may rightly take longer than that.
        let mut opt = ConnectOptions::new(self.url.expose().to_owned());
        opt.max_connections(1).min_connections(1).sqlx_logging(false);
        if self.bounced {
            opt.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
        }
        let conn = Database::connect(opt).await.map_err(DbError::Connect)?;
        let applied = migration::up(&conn).await.map(drop).map_err(DbError::Migrate);
        let _ = conn.close().await;
        applied
    }

    /// One round trip, for readiness probes.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when the database does not answer.
    pub async fn ping(&self) -> Result<(), DomainError> {
        self.conn.ping().await.map_err(unavailable_or_internal)
    }

    /// Connections of the pool: `(open, idle)`.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self.backend() {
            DbBackend::Postgres => {
                let p = self.conn.get_postgres_connection_pool();
                (p.size(), p.num_idle())
            }
            DbBackend::Sqlite => {
                let p = self.conn.get_sqlite_connection_pool();
                let (open, idle) = (p.size(), p.num_idle());
                if !self.own_writer() {
                    return (open, idle);
                }
                let w = self.writes.get_sqlite_connection_pool();
                (open + w.size(), idle + w.num_idle())
            }
            _ => (0, 0),
        }
    }

    /// Whether write transactions have a connection of their own (see [`connect`]).
    fn own_writer(&self) -> bool {
        keeps_a_writer(self.backend() == DbBackend::Sqlite, self.max_connections)
    }

    /// Writes a consistent copy of the SQLite database to `path` (a new file) while it
    /// serves: `VACUUM INTO` reads one snapshot, so writers go on and the copy holds
    /// every write committed before it began.
    ///
    /// # Errors
    /// [`DbError::BackupNotSqlite`] on PostgreSQL; [`DbError::Backup`] when the copy
    /// cannot be written (the file exists, the directory is missing, the disk is full).
    pub async fn backup_to(&self, path: &str) -> Result<(), DbError> {
        if self.backend() != DbBackend::Sqlite {
            return Err(DbError::BackupNotSqlite);
        }
        // A wrong working directory or DATABASE_URL opens (and creates) an empty file:
        // refuse to call a copy of nothing a backup.
        let ours = "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'";
        let found = self.conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, ours)).await;
        let tables = found.map_err(DbError::Backup)?.map(|r| r.try_get_by_index::<i64>(0)).transpose();
        if tables.map_err(DbError::Backup)?.unwrap_or(0) == 0 {
            return Err(DbError::BackupNothing);
        }
        let quoted = path.replace('\'', "''");
        self.conn.execute_unprepared(&format!("VACUUM INTO '{quoted}'")).await.map(drop).map_err(DbError::Backup)
    }

    /// The most connections the pool opens.
    pub fn pool_max(&self) -> u32 {
        self.max_connections
    }

    /// The same pool, writing times from `clock` (the application's clock).
    #[must_use]
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn domain::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Closes the pool (graceful shutdown), after writing the delivery marks queued.
    pub async fn close(self) {
        self.flush_marks().await;
        if let Some(r) = &self.replica {
            r.close().await;
        }
        self.conn.close().await;
        if self.own_writer() {
            self.writes.close().await;
        }
    }

    fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// The SQLite writer's turn (see [`Writer`]); waits at most the statement
    /// timeout, as SQLite's own lock would, then answers unavailable.
    async fn writer(&self) -> Result<Writer, DomainError> {
        if self.backend() != DbBackend::Sqlite {
            return Ok(None);
        }
        tokio::time::timeout(self.statement_timeout, self.writer.clone().lock_owned())
            .await
            .map(Some)
            .map_err(|_| DomainError::Unavailable)
    }

    /// Starts a write transaction, with the SQLite writer's turn. On SQLite it is
    /// `BEGIN IMMEDIATE` too: a deferred transaction that reads and then writes fails
    /// at once with SQLITE_BUSY when a writer of another process got in between.
    async fn write_tx(&self) -> Result<(DatabaseTransaction, Writer), DomainError> {
        let writer = self.writer().await?;
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.backend() == DbBackend::Sqlite).then_some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let tx = self.writes.begin_with_options(options).await.map_err(unavailable_or_internal)?;
        Ok((tx, writer))
    }
}

/// One value of a row of [`rows_cte`].
pub(super) enum Cell {
    /// A `BIGINT` (or `INTEGER`), maybe NULL.
    Int(Option<i64>),
    /// A UTC time, maybe NULL.
    Time(Option<OffsetDateTime>),
    /// Text.
    Text(&'static str),
    /// Text of a client's, maybe NULL.
    Str(Option<String>),
    /// A JSON document (`JSONB` on PostgreSQL, its text on SQLite).
    Json(serde_json::Value),
}

/// Rows a batch hands to one statement, as a CTE named `name` with `columns` (name
/// and SQL type), its parameters numbered from `first`. PostgreSQL gets them as one
/// JSON parameter read by `json_to_recordset`: the statement's text is the same for
/// any number of rows, so each connection prepares and plans it once, where a
/// `VALUES` list of each length was planned again at every batch (half a check-in's
/// database time). SQLite, whose statements cost little to prepare, gets `VALUES`,
/// with anonymous `?` placeholders when they are the statement's first parameters:
/// SQLite keeps named ones (`$n`) in a list it scans for each, at prepare and again
/// at every bind (sqlx asks each one's name), so a 100-row, 1,000-parameter batch
/// cost 4 ms of the single writer's time, where anonymous ones cost nothing to find.
/// sqlx numbers anonymous placeholders in order from the first argument and named
/// ones by their digits, so `$n` after the rows still binds argument `n`.
pub(super) fn rows_cte(
    backend: DbBackend,
    name: &str,
    columns: &[(&str, &str)],
    rows: Vec<Vec<Cell>>,
    first: usize,
) -> (String, Vec<Value>) {
    if backend == DbBackend::Postgres {
        let json: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|row| {
                let object = columns.iter().zip(row).map(|((column, _), cell)| {
                    let value = match cell {
                        Cell::Int(v) => serde_json::json!(v),
                        Cell::Time(t) => serde_json::json!(t.and_then(|t| {
                            t.replace_nanosecond(0)
                                .unwrap_or(t)
                                .format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })),
                        Cell::Text(t) => serde_json::json!(t),
                        Cell::Str(t) => serde_json::json!(t),
                        Cell::Json(j) => j,
                    };
                    ((*column).to_owned(), value)
                });
                serde_json::Value::Object(object.collect())
            })
            .collect();
        let typed: Vec<String> = columns.iter().map(|(c, t)| format!("{c} {t}")).collect();
        let cte = format!(
            "{name} AS (SELECT * FROM json_to_recordset(CAST(${first} AS JSON)) AS {name}({}))",
            typed.join(", ")
        );
        return (cte, vec![Value::from(serde_json::Value::Array(json).to_string())]);
    }
    let mut values = Vec::with_capacity(rows.len() * columns.len());
    let mut tuples = Vec::with_capacity(rows.len());
    for row in rows {
        let mut placeholders = Vec::with_capacity(columns.len());
        for ((_, sql_type), cell) in columns.iter().zip(row) {
            let n = first + values.len();
            let p = if first == 1 { "?".to_owned() } else { format!("${n}") };
            // A cast types a column whose first row is NULL; SQLite's times are text,
            // which a cast would read as a number.
            placeholders.push(match cell {
                Cell::Int(_) => format!("CAST({p} AS {sql_type})"),
                _ => p,
            });
            values.push(match cell {
                Cell::Int(v) => Value::from(v),
                Cell::Time(t) => t.map_or(Value::from(None::<OffsetDateTime>), ts),
                Cell::Text(t) => Value::from(t),
                Cell::Str(t) => Value::from(t),
                Cell::Json(j) => Value::from(j.to_string()),
            });
        }
        tuples.push(format!("({})", placeholders.join(", ")));
    }
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    (format!("{name}({}) AS (VALUES {})", names.join(", "), tuples.join(", ")), values)
}

/// Builds a statement for the connection's backend.
fn stmt(c: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(c.get_database_backend(), sql, values)
}

/// Times a repository operation into `gymapi_db_query_duration_seconds{operation}`
/// and turns its error into the domain's.
async fn timed<T>(operation: &'static str, fut: impl Future<Output = Result<T, DbErr>>) -> Result<T, DomainError> {
    timed_or(operation, fut, |_| None).await
}

/// [`timed`], with the constraint violations a client can cause turned into the
/// domain's answer by `violation` instead of an opaque internal error.
async fn timed_or<T>(
    operation: &'static str,
    fut: impl Future<Output = Result<T, DbErr>>,
    violation: fn(&DbErr) -> Option<DomainError>,
) -> Result<T, DomainError> {
    let start = Instant::now();
    let out = fut.await;
    metrics::histogram!("gymapi_db_query_duration_seconds", "operation" => operation)
        .record(start.elapsed().as_secs_f64());
    out.map_err(|e| violation(&e).unwrap_or_else(|| unavailable_or_internal(e)))
}

async fn one<T: FromQueryResult>(c: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<Option<T>, DbErr> {
    T::find_by_statement(stmt(c, sql, values)).one(c).await
}

async fn all<T: FromQueryResult>(c: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<Vec<T>, DbErr> {
    T::find_by_statement(stmt(c, sql, values)).all(c).await
}

/// The entity of the first row, if any (see [`rows::FromColumns`]).
async fn entity<T: FromColumns>(c: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<Option<T>, DbErr> {
    c.query_one_raw(stmt(c, sql, values)).await?.map(|r| T::read(&r, "")).transpose()
}

/// The entity of every row (see [`rows::FromColumns`]).
async fn entities<T: FromColumns>(c: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<Vec<T>, DbErr> {
    c.query_all_raw(stmt(c, sql, values)).await?.iter().map(|r| T::read(r, "")).collect()
}

async fn exec(c: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
    Ok(c.execute_raw(stmt(c, sql, values)).await?.rows_affected())
}

/// A timestamp as bound: UTC, whole seconds (see the module docs).
fn ts(t: OffsetDateTime) -> Value {
    let t = t.to_offset(time::UtcOffset::UTC);
    Value::from(t.replace_nanosecond(0).unwrap_or(t))
}

/// Failures that are the database being unavailable for now — pool exhaustion, lost
/// connections, a server shutting down or restarting, a statement timeout, a lock
/// not granted in time — are `503 database_unavailable`, which a client may retry;
/// any other failure is unexpected and stays opaque to clients.
fn unavailable_or_internal(e: DbErr) -> DomainError {
    if is_transient(&e) { DomainError::Unavailable } else { DomainError::internal(e) }
}

fn is_transient(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sx;
    let inner = match e {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(inner))
        | DbErr::Exec(RuntimeErr::SqlxError(inner))
        | DbErr::Query(RuntimeErr::SqlxError(inner)) => inner,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match inner.as_ref() {
        Sx::Io(_) | Sx::PoolTimedOut | Sx::PoolClosed | Sx::Tls(_) | Sx::WorkerCrashed | Sx::Protocol(_) => true,
        Sx::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// SQLSTATE classes of PostgreSQL, or SQLite result codes, that mean "not now".
fn transient_code(code: &str) -> bool {
    // PostgreSQL codes are five characters (SQLite's, at most four digits): 08
    // connection exception, 53 insufficient resources, 57 operator intervention
    // (57014 statement timeout, 57P01 terminated by a restart), 40001 serialization
    // failure, 40P01 deadlock, 55P03 lock not available.
    if code.len() == 5 {
        return ["08", "53", "57"].iter().any(|c| code.starts_with(c)) || ["40001", "40P01", "55P03"].contains(&code);
    }
    // SQLite: the primary result code is the low byte; 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// A second membership of one user in one gym.
fn already_member(e: &DbErr) -> Option<DomainError> {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))).then_some(DomainError::AlreadyMember)
}

/// The only foreign keys a client can name in a class or session are user ids (an
/// instructor, a trainer): a dangling one is `user_not_found`, not a 500.
fn unknown_user(e: &DbErr) -> Option<DomainError> {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))).then_some(DomainError::UserNotFound)
}

/// `LIMIT` / `OFFSET` values of a page (both databases take 64-bit integers).
trait PageValues {
    fn limit_value(&self) -> Value;
    fn skip_value(&self) -> Value;
}

impl PageValues for domain::Page {
    fn limit_value(&self) -> Value {
        Value::from(i64::try_from(self.limit).unwrap_or(i64::MAX))
    }
    fn skip_value(&self) -> Value {
        Value::from(i64::try_from(self.skip).unwrap_or(i64::MAX))
    }
}

#[derive(FromQueryResult)]
struct ZoneRow {
    timezone: String,
}

/// A gym's IANA time zone (for the ports that read dates on its wall clock).
async fn gym_time_zone(c: &impl ConnectionTrait, gym: domain::GymId) -> Result<Option<String>, DomainError> {
    let row = timed("gym_time_zone", one::<ZoneRow>(c, "SELECT timezone FROM gyms WHERE id = $1", vec![gym.0.into()]))
        .await?;
    Ok(row.map(|r| r.timezone))
}

/// `Some(i64)` for an optional id.
fn opt_id(id: Option<domain::UserId>) -> Value {
    Value::from(id.map(|u| u.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite database of its own in the temporary directory, with a pool of `max`.
    async fn sqlite(name: &str, max: u32) -> (Db, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("gymapi-{name}-{}.db", std::process::id()));
        remove(&path);
        let vars = [
            ("DATABASE_URL", format!("sqlite://{}?mode=rwc", path.display())),
            ("DATABASE_MAX_CONNECTIONS", max.to_string()),
        ];
        let settings = Settings::load_from(std::path::Path::new("/nonexistent"), |k| {
            vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .expect("settings");
        (connect(&settings).await.expect("open a SQLite file"), path)
    }

    fn remove(path: &std::path::Path) {
        for end in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{end}", path.display()));
        }
    }

    /// A temporary table, made by a write transaction. It lives on the connection
    /// that made it: a later statement sees it only when it runs on that connection.
    async fn probe(db: &Db) {
        let (tx, writer) = db.write_tx().await.expect("write");
        tx.execute_unprepared("CREATE TEMP TABLE probe (x INTEGER)").await.expect("make the probe");
        tx.commit().await.expect("commit");
        drop(writer);
    }

    #[tokio::test]
    async fn sqlite_write_transactions_take_one_connection_of_the_pool_which_keeps_its_size() {
        let (db, path) = sqlite("writer", 3).await;
        probe(&db).await;
        for _ in 0..5 {
            let (tx, writer) = db.write_tx().await.expect("next write");
            tx.execute_unprepared("INSERT INTO temp.probe VALUES (1)").await.expect("the writer's own table");
            let cache = tx.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA cache_size")).await;
            let cache = cache.expect("read").expect("a row").try_get_by_index::<i64>(0).expect("a number");
            assert_eq!(cache.to_string(), WRITER_CACHE, "the writer's page cache");
            tx.commit().await.expect("commit");
            drop(writer);
        }
        // The readers never see it.
        let read = db.conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT x FROM temp.probe")).await;
        assert!(read.is_err(), "a reader connection has no such table");
        let readers = db.conn.get_sqlite_connection_pool().options().get_max_connections();
        let writers = db.writes.get_sqlite_connection_pool().options().get_max_connections();
        assert_eq!((readers, writers), (2, 1), "DATABASE_MAX_CONNECTIONS in all, the writer's counted");
        let (open, _) = db.pool_stats();
        assert!((2..=3).contains(&open), "readers and the writer within DATABASE_MAX_CONNECTIONS: {open}");
        db.close().await;
        remove(&path);
    }

    #[tokio::test]
    async fn a_sqlite_pool_of_one_writes_and_reads_on_its_one_connection() {
        let (db, path) = sqlite("alone", 1).await;
        probe(&db).await;
        let read = db.conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT x FROM temp.probe")).await;
        assert!(read.is_ok(), "one connection for all: {read:?}");
        assert_eq!(db.pool_stats().0, 1);
        db.close().await;
        remove(&path);
    }

    #[test]
    fn restarts_timeouts_and_busy_databases_are_transient() {
        for code in ["57P01", "57014", "08006", "53300", "40001", "40P01", "55P03", "5", "517", "6", "262"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["23505", "23503", "23514", "42601", "19", "2067", "1", "11"] {
            assert!(!transient_code(code), "{code}");
        }
    }
}
