//! Idempotency keys: what a request with an `Idempotency-Key` did, kept in the same
//! transaction as its work, so a retry through any instance, or after a restart,
//! is answered from what was kept instead of doing the work again.
//!
//! A request that brings a key runs inside a [`Hold`] (a task-local scope). While
//! one is active, the write transaction the request's service begins claims the
//! hold's keys as its first statement (an insert that a concurrent request with
//! the same key waits on, on PostgreSQL, or that SQLite's one writer orders), and
//! its commit does not commit: it parks the transaction in the hold. The HTTP layer
//! renders the answer, then [`Db::settle`] writes it beside the claim and commits
//! the work and the answer at once; only then are the facts delivered. So a key
//! is kept exactly when its work committed, and the answer a retry replays is the
//! one the first request received.
//!
//! Keys are claimed before any other lock of the transaction (lock order 0, see
//! `domain::tx`), several at once in ascending order (a batch of check-ins), so
//! claims never wait on each other in a circle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use domain::facts::Fact;
use domain::{DomainError, Result, UserId};
use sea_orm::{DatabaseTransaction, FromQueryResult, Value};
use time::OffsetDateTime;

use super::{Cell, Db, Writer, all, exec, one, rows_cte, timed, ts};

/// How long a key is kept: a retry within it is recognised; after it, the key is
/// free again and purged.
pub const KEEP: time::Duration = time::Duration::hours(24);

/// One request's key, with the caller it belongs to and the fingerprint of the
/// request it was first sent with (method, route, gym, body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The caller.
    pub user: UserId,
    /// The key as sent.
    pub key: String,
    /// A digest of what the request asked.
    pub fingerprint: String,
}

/// An answer kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Its HTTP status.
    pub status: u16,
    /// Its `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// Its body (the API's answers are JSON text).
    pub body: String,
}

/// What a caller's key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The fingerprint of the request that first sent it.
    pub fingerprint: String,
    /// The answer that request got.
    pub answer: Answer,
}

/// The keys of a request (or of a batch of check-ins), and the transaction of its
/// work once committed by its service and waiting for its answers.
pub struct Hold {
    claims: Vec<Claim>,
    parked: Mutex<Option<Parked>>,
    settled: AtomicBool,
}

/// A transaction whose commit waits for the answers of its keys.
pub(super) struct Parked {
    pub(super) tx: DatabaseTransaction,
    pub(super) written: Vec<Fact>,
    /// Dropped after `tx`, as in `SqlTx`.
    pub(super) writer: Writer,
}

tokio::task_local! {
    static HOLD: Arc<Hold>;
}

impl Hold {
    /// A hold of these keys, claimed in ascending order (the caller sends no key twice).
    pub fn new(mut claims: Vec<Claim>) -> Arc<Self> {
        claims.sort_by(|a, b| (a.user, &a.key).cmp(&(b.user, &b.key)));
        Arc::new(Self { claims, parked: Mutex::new(None), settled: AtomicBool::new(false) })
    }

    /// Runs `work` with this hold active: the write transaction it begins claims the
    /// keys, and its commit parks it here.
    pub async fn run<F: Future>(self: &Arc<Self>, work: F) -> F::Output {
        HOLD.scope(self.clone(), work).await
    }

    /// The hold active on this task, if any.
    pub fn current() -> Option<Arc<Self>> {
        HOLD.try_with(Arc::clone).ok()
    }

    /// The keys, in the order answers are given to [`Db::settle`].
    pub fn claims(&self) -> &[Claim] {
        &self.claims
    }

    /// Whether a transaction is parked, waiting for its answers.
    pub fn is_parked(&self) -> bool {
        self.parked.lock().is_ok_and(|p| p.is_some())
    }

    /// Rolls back the parked transaction, if any: its work is not to be kept (the
    /// request answered an error after all).
    pub fn abandon(&self) {
        drop(self.take());
    }

    /// Says that the keys were settled elsewhere (a batch of check-ins that
    /// carried them): the request's own layer has nothing left to keep.
    pub fn mark_settled(&self) {
        self.settled.store(true, Ordering::Release);
    }

    /// Whether [`Hold::mark_settled`] was said.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    pub(super) fn park(&self, parked: Parked) -> Result<()> {
        let mut slot = self.parked.lock().map_err(|_| DomainError::internal("an idempotency hold was poisoned"))?;
        if slot.is_some() {
            return Err(DomainError::internal("a request with an idempotency key committed two transactions"));
        }
        *slot = Some(parked);
        Ok(())
    }

    fn take(&self) -> Option<Parked> {
        self.parked.lock().ok().and_then(|mut p| p.take())
    }
}

#[derive(FromQueryResult)]
struct KeptRow {
    fingerprint: String,
    status: Option<i32>,
    content_type: Option<String>,
    body: Option<String>,
}

#[derive(FromQueryResult)]
struct ClaimedRow {
    #[allow(dead_code)]
    user_id: i64,
}

impl Db {
    /// What the caller's key holds, if it was used within [`KEEP`].
    ///
    /// # Errors
    /// Storage failures.
    pub async fn kept(&self, user: UserId, key: &str) -> Result<Option<Kept>> {
        let since = self.clock.now() - KEEP;
        let row = timed(
            "idempotency_read",
            one::<KeptRow>(
                &self.conn,
                "SELECT fingerprint, status, content_type, body FROM idempotency_keys \
                 WHERE user_id = $1 AND request_key = $2 AND created_at > $3",
                vec![user.0.into(), key.into(), ts(since)],
            ),
        )
        .await?;
        Ok(row.and_then(|r| {
            let status = u16::try_from(r.status?).ok()?;
            Some(Kept {
                fingerprint: r.fingerprint,
                answer: Answer { status, content_type: r.content_type, body: r.body.unwrap_or_default() },
            })
        }))
    }

    /// Claims the hold's keys in `tx`, its first statement. A key another request
    /// holds makes this wait for its transaction; a key kept within [`KEEP`] is
    /// not claimed. An expired key is taken over.
    ///
    /// # Errors
    /// [`DomainError::IdempotencyKeyInProgress`] when a key could not be claimed;
    /// storage failures.
    pub(super) async fn claim(&self, tx: &DatabaseTransaction, hold: &Hold) -> Result<()> {
        let now = self.clock.now();
        let rows = hold
            .claims
            .iter()
            .map(|c| {
                vec![Cell::Int(Some(c.user.0)), Cell::Str(Some(c.key.clone())), Cell::Str(Some(c.fingerprint.clone()))]
            })
            .collect();
        let columns = [("u", "BIGINT"), ("k", "TEXT"), ("f", "TEXT")];
        let (cte, mut values) = rows_cte(self.backend(), "r", &columns, rows, 1);
        let (at, expired) = (values.len() + 1, values.len() + 2);
        // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
        let sql = format!(
            "WITH {cte} INSERT INTO idempotency_keys (user_id, request_key, fingerprint, created_at) \
             SELECT u, k, f, ${at} FROM r WHERE true ORDER BY u, k \
             ON CONFLICT (user_id, request_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
               status = NULL, content_type = NULL, body = NULL, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at <= ${expired} \
             RETURNING user_id"
        );
        values.push(ts(now));
        values.push(ts(now - KEEP));
        let claimed = timed("idempotency_claim", all::<ClaimedRow>(tx, &sql, values)).await?;
        if claimed.len() == hold.claims.len() { Ok(()) } else { Err(DomainError::IdempotencyKeyInProgress) }
    }

    /// Keeps the answers of the hold's keys (in the order of [`Hold::claims`]; `None`
    /// for a key whose request did nothing to keep) and commits: the parked work
    /// with them, or, when nothing was parked (the request committed nothing, as a
    /// repeated cancellation), the answers alone. Answers the facts of the work, to
    /// deliver now.
    ///
    /// # Errors
    /// Storage failures: then nothing was committed (or, [`DomainError::Unavailable`],
    /// the outcome is unknown), and the work's answer must not be sent.
    pub async fn settle(&self, hold: &Hold, answers: &[Option<Answer>]) -> Result<Vec<Fact>> {
        let kept: Vec<(&Claim, &Answer)> =
            hold.claims.iter().zip(answers).filter_map(|(c, a)| a.as_ref().map(|a| (c, a))).collect();
        let dropped: Vec<&Claim> =
            hold.claims.iter().zip(answers).filter(|(_, a)| a.is_none()).map(|(c, _)| c).collect();
        if let Some(Parked { tx, written, writer }) = hold.take() {
            let kept_and_released = self.keep_answers(&tx, &kept, &dropped).await;
            let committed = match kept_and_released {
                Ok(()) => timed("commit", tx.commit()).await,
                // Rolled back before the writer's turn passes on, as `SqlTx` does.
                Err(e) => {
                    drop(tx);
                    Err(e)
                }
            };
            drop(writer);
            return committed.map(|()| written);
        }
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, writer) = self.write_tx().await?;
        let (cte, mut values) = self.answer_rows(&kept, 1);
        let at = values.len() + 1;
        let sql = format!(
            "WITH {cte} INSERT INTO idempotency_keys (user_id, request_key, fingerprint, status, content_type, body, \
             created_at) SELECT u, k, f, s, c, b, ${at} FROM r WHERE true ON CONFLICT (user_id, request_key) DO NOTHING"
        );
        values.push(ts(self.clock.now()));
        let committed = match timed("idempotency_answer", exec(&tx, &sql, values)).await {
            Ok(_) => timed("commit", tx.commit()).await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        drop(writer);
        committed.map(|()| Vec::new())
    }

    /// Writes the answers kept beside their claims, and deletes the claims released.
    async fn keep_answers(
        &self,
        tx: &DatabaseTransaction,
        kept: &[(&Claim, &Answer)],
        dropped: &[&Claim],
    ) -> Result<()> {
        if !kept.is_empty() {
            let (cte, values) = self.answer_rows(kept, 1);
            let sql = format!(
                "WITH {cte} UPDATE idempotency_keys SET status = r.s, content_type = r.c, body = r.b \
                 FROM r WHERE idempotency_keys.user_id = r.u AND idempotency_keys.request_key = r.k"
            );
            timed("idempotency_answer", exec(tx, &sql, values)).await?;
        }
        if !dropped.is_empty() {
            // Claims of requests that were refused (or go to the next batch): their
            // keys stay free, as if never sent.
            let rows =
                dropped.iter().map(|c| vec![Cell::Int(Some(c.user.0)), Cell::Str(Some(c.key.clone()))]).collect();
            let (cte, values) = rows_cte(self.backend(), "r", &[("u", "BIGINT"), ("k", "TEXT")], rows, 1);
            let sql =
                format!("WITH {cte} DELETE FROM idempotency_keys WHERE (user_id, request_key) IN (SELECT u, k FROM r)");
            timed("idempotency_release", exec(tx, &sql, values)).await?;
        }
        Ok(())
    }

    fn answer_rows(&self, kept: &[(&Claim, &Answer)], first: usize) -> (String, Vec<Value>) {
        let rows = kept
            .iter()
            .map(|(c, a)| {
                vec![
                    Cell::Int(Some(c.user.0)),
                    Cell::Str(Some(c.key.clone())),
                    Cell::Str(Some(c.fingerprint.clone())),
                    Cell::Int(Some(i64::from(a.status))),
                    Cell::Str(a.content_type.clone()),
                    Cell::Str(Some(a.body.clone())),
                ]
            })
            .collect();
        let columns = [("u", "BIGINT"), ("k", "TEXT"), ("f", "TEXT"), ("s", "INTEGER"), ("c", "TEXT"), ("b", "TEXT")];
        rows_cte(self.backend(), "r", &columns, rows, first)
    }

    /// Deletes the keys older than [`KEEP`]; answers how many.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn purge_idempotency_keys(&self) -> Result<u64> {
        let before: OffsetDateTime = self.clock.now() - KEEP;
        let _writer = self.writer().await?;
        timed(
            "idempotency_purge",
            exec(&self.writes, "DELETE FROM idempotency_keys WHERE created_at <= $1", vec![ts(before)]),
        )
        .await
    }
}
