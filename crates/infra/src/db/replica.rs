//! A PostgreSQL read replica (`DATABASE_READ_URL`) for the reads that tolerate
//! replication lag: lists, history, reports and the change feed. Check-ins, bookings,
//! tenancy and every read of a write's transaction stay on the primary.
//!
//! Two rules keep a replica's answers acceptable:
//!
//! - **Bounded lag.** Every second the primary's WAL position is sampled and the
//!   replica asked how far it has replayed. The replica serves only while it has
//!   replayed everything the primary had written at the previous sample, and only
//!   while that verdict is fresh (2.5 s): so it is at most about 3.5 s behind, and a
//!   replica that lags, is paused or is stopped loses its reads within a second or
//!   two. A read the replica fails (or does not answer within the statement timeout)
//!   is asked of the primary at once: a replica never costs a client an error.
//! - **Read your writes.** After a caller's successful write, their own reads of
//!   lists go to the primary for [`OWN_WRITES_WINDOW`], longer than the lag the
//!   first rule allows. The mark is kept in the cache the instances share, so it
//!   holds on whichever instance the next request lands. Waiting for the replica to
//!   reach the write's LSN was the alternative: it needs the LSN in the caller's next
//!   request, which clients of the contract do not send.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use domain::UserId;
use domain::cache::Cache;
use sea_orm::{DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement};

use super::{Db, unavailable_or_internal};

/// How long after a caller's write their reads skip the replica.
pub const OWN_WRITES_WINDOW: Duration = Duration::from_secs(5);

/// How often the replica's position is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A verdict older than this is no verdict: the checker stalled, so the replica rests.
const VERDICT_FRESH_FOR: Duration = Duration::from_millis(2_500);

/// A read of a pool: the replica's or the primary's.
pub(super) type Read<'c, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 'c>>;

/// The replica's pool and what the checker last found.
pub(super) struct Replica {
    conn: super::pool::Pool,
    /// Whether the last check found it caught up.
    caught_up: AtomicBool,
    /// When that check ended, in milliseconds since `epoch`.
    checked_at_ms: AtomicI64,
    epoch: Instant,
    /// Where reads' callers' own writes are marked (the shared cache).
    own_writes: std::sync::OnceLock<Arc<dyn Cache>>,
}

impl Replica {
    pub(super) fn new(conn: super::pool::Pool) -> Self {
        Self {
            conn,
            caught_up: AtomicBool::new(false),
            checked_at_ms: AtomicI64::new(0),
            epoch: Instant::now(),
            own_writes: std::sync::OnceLock::new(),
        }
    }

    fn millis(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Caught up at a check that is still fresh.
    fn usable(&self) -> bool {
        let age = self.millis().saturating_sub(self.checked_at_ms.load(Ordering::Acquire));
        self.caught_up.load(Ordering::Acquire) && age <= i64::try_from(VERDICT_FRESH_FOR.as_millis()).unwrap_or(0)
    }

    fn verdict(&self, caught_up: bool) {
        self.caught_up.store(caught_up, Ordering::Release);
        self.checked_at_ms.store(self.millis(), Ordering::Release);
        metrics::gauge!("gymapi_db_replica_up").set(if caught_up { 1.0 } else { 0.0 });
    }

    pub(super) async fn close(&self) {
        self.conn.close().await;
    }
}

tokio::task_local! {
    /// The caller of the request being served, once authenticated (set by the HTTP
    /// layer; absent for jobs and anonymous requests).
    static CALLER: std::cell::Cell<Option<UserId>>;
}

/// Runs a request with a place for its caller (see [`set_caller`]).
pub async fn scope<F: Future>(request: F) -> F::Output {
    CALLER.scope(std::cell::Cell::new(None), request).await
}

/// Names the caller of the request in [`scope`] (nothing outside one).
pub fn set_caller(user: UserId) {
    let _ = CALLER.try_with(|c| c.set(Some(user)));
}

fn caller() -> Option<UserId> {
    CALLER.try_with(std::cell::Cell::get).ok().flatten()
}

/// One key per user, whichever gym they wrote in: a write that makes a gym (and
/// its owner's membership) has no gym yet. Braced as a Redis Cluster hash tag.
fn own_writes_key(user: UserId) -> String {
    format!("user:{{{}}}:wrote", user.0)
}

#[derive(FromQueryResult)]
struct LsnRow {
    lsn: i64,
}

/// The WAL position a server has written (a primary) or replayed (a replica), in bytes.
async fn position(c: &impl sea_orm::ConnectionTrait) -> Result<i64, DbErr> {
    // COALESCE stops at the first non-NULL: a replica answers its replay position and
    // never evaluates pg_current_wal_lsn(), which fails during recovery; a read URL
    // that names a primary answers its own position.
    let sql = "SELECT CAST(pg_wal_lsn_diff(COALESCE(pg_last_wal_replay_lsn(), pg_current_wal_lsn()), '0/0') AS BIGINT) \
               AS lsn";
    let row = LsnRow::find_by_statement(Statement::from_string(DbBackend::Postgres, sql)).one(c).await?;
    Ok(row.map_or(0, |r| r.lsn))
}

impl Db {
    /// Whether a read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Uses `cache` (shared by the instances) to mark callers' writes, so that their
    /// next reads see them (see the module docs).
    pub fn with_own_writes(&self, cache: Arc<dyn Cache>) {
        if let Some(r) = &self.replica {
            let _ = r.own_writes.set(cache);
        }
    }

    /// Marks a successful write of `user`: their lists come from the primary for
    /// [`OWN_WRITES_WINDOW`]. Nothing without a replica.
    pub async fn wrote(&self, user: UserId) {
        if let Some(cache) = self.replica.as_ref().and_then(|r| r.own_writes.get()) {
            cache.set(&own_writes_key(user), b"1", OWN_WRITES_WINDOW).await;
        }
    }

    /// Starts the checker of the replica's lag (see the module docs).
    pub(super) fn spawn_replica_checker(&self) {
        let (Some(replica), Ok(rt)) = (self.replica.clone(), tokio::runtime::Handle::try_current()) else { return };
        let primary = self.conn.clone();
        rt.spawn(async move {
            let mut before: Option<i64> = None;
            loop {
                if primary.get_postgres_connection_pool().is_closed() {
                    return;
                }
                let now = tokio::time::timeout(CHECK_EVERY, position(&primary)).await.ok().and_then(Result::ok);
                let replayed =
                    tokio::time::timeout(CHECK_EVERY, position(&replica.conn)).await.ok().and_then(Result::ok);
                // Against the previous sample, so that a replica streaming a busy
                // primary's writes counts as caught up; at the first check (or after a
                // primary that did not answer) against this one.
                let caught_up = match (replayed, before.or(now)) {
                    (Some(r), Some(b)) => r >= b,
                    _ => false,
                };
                if let (Some(r), Some(n)) = (replayed, now) {
                    #[allow(clippy::cast_precision_loss)] // a gauge of bytes
                    metrics::gauge!("gymapi_db_replica_lag_bytes").set(n.saturating_sub(r).max(0) as f64);
                }
                replica.verdict(caught_up);
                // A primary that did not answer keeps the last sample: the replica is
                // then judged against an older position, never a missing one.
                before = now.or(before);
                tokio::time::sleep(CHECK_EVERY).await;
            }
        });
    }

    /// A read that tolerates replication lag: the replica's answer when it may give
    /// one (see the module docs), else the primary's. `read` runs on whichever pool
    /// is chosen, so it is asked again of the primary when the replica fails.
    pub(super) async fn lagging<'a, T>(
        &'a self,
        operation: &'static str,
        read: impl Fn(&'a super::pool::Pool) -> Read<'a, T>,
    ) -> domain::Result<T> {
        if let Some(replica) = &self.replica
            && replica.usable()
            && !self.own_write_pending(replica).await
        {
            let start = Instant::now();
            match tokio::time::timeout(self.statement_timeout, read(&replica.conn)).await {
                Ok(Ok(v)) => {
                    metrics::histogram!("gymapi_db_query_duration_seconds", "operation" => operation)
                        .record(start.elapsed().as_secs_f64());
                    metrics::counter!("gymapi_db_reads_total", "server" => "replica").increment(1);
                    return Ok(v);
                }
                Ok(Err(e)) => {
                    tracing::warn!(operation, error = %e, "the read replica failed a read; asking the primary");
                    replica.verdict(false);
                }
                Err(_) => {
                    tracing::warn!(operation, "the read replica did not answer in time; asking the primary");
                    replica.verdict(false);
                }
            }
        }
        if self.replica.is_some() {
            metrics::counter!("gymapi_db_reads_total", "server" => "primary").increment(1);
        }
        let start = Instant::now();
        let out = read(&self.conn).await;
        metrics::histogram!("gymapi_db_query_duration_seconds", "operation" => operation)
            .record(start.elapsed().as_secs_f64());
        out.map_err(unavailable_or_internal)
    }

    /// Whether the request's caller wrote within [`OWN_WRITES_WINDOW`].
    async fn own_write_pending(&self, replica: &Replica) -> bool {
        match (caller(), replica.own_writes.get()) {
            (Some(user), Some(cache)) => cache.get(&own_writes_key(user)).await.is_some(),
            _ => false,
        }
    }
}

/// Opens the replica's pool: as the primary's, but connecting lazily (a replica
/// that is down at start must not stop the service) and giving up on a checkout
/// after a second (the primary answers instead).
pub(super) async fn connect(url: &str, settings: &crate::config::Settings) -> Result<DatabaseConnection, DbErr> {
    let statement_timeout = settings.database_statement_timeout;
    let mut opt = sea_orm::ConnectOptions::new(url.to_owned());
    opt.max_connections(settings.database_max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy(true)
        .test_before_acquire(false)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(move |o| {
            o.options([("statement_timeout", format!("{}ms", statement_timeout.as_millis()))])
        });
    sea_orm::Database::connect(opt).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_own_writes_key_is_one_hash_slot_per_user() {
        assert_eq!(own_writes_key(UserId(42)), "user:{42}:wrote");
    }

    #[tokio::test]
    async fn the_caller_is_known_only_inside_a_request_scope() {
        set_caller(UserId(2));
        assert_eq!(caller(), None);
        let inside = scope(async {
            assert_eq!(caller(), None);
            set_caller(UserId(2));
            caller()
        })
        .await;
        assert_eq!(inside, Some(UserId(2)));
    }
}
