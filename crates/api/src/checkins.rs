//! Write-combining of front-desk check-ins: concurrent scans of this instance are
//! gathered and checked in together, in one transaction of a few statements
//! ([`AttendanceService::check_in_batch`]), and each request is answered from its own
//! row once that transaction committed.
//!
//! There is no fixed wait: a runner takes whatever is queued (up to [`MAX_BATCH`])
//! the moment it is free, so a lone scan at a quiet gym goes out at once, and under
//! load each batch gathers the scans that arrived while the previous one ran.
//! [`RUNNERS`] batches may be in flight at a time. A scan of a member whose earlier
//! scan is in the same batch waits for its runner's next batch. A batch that fails
//! as a whole for a reason other than the database being gone is done again scan by
//! scan, so one bad row never fails its neighbours; when the database is gone, each
//! of its scans answers `503 database_unavailable`, never a success.
//!
//! A scan sent with an `Idempotency-Key` brings its key into the batch: the batch's
//! transaction claims every key it carries, keeps each success's answer beside it
//! and commits once ([`crate::idempotency`]), so a scanner that retries is answered
//! its first success, never `already_checked_in`. A key that is already held sends
//! the batch round scan by scan, and that scan is answered what its key kept.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use domain::attendance::{AttendanceService, CheckIn, Scan, ScanResult};
use domain::values::Actor;
use domain::{DomainError, SessionId};
use infra::db::idempotency::{Answer, Hold};
use tokio::sync::{Mutex, mpsc, oneshot};

use domain::refusals::{RefusalDraft, is_refusal};

use crate::dto::CheckInOut;
use crate::error::Lang;
use crate::idempotency::{Keys, json_answer};
use crate::refusals::Recorder;

/// Most scans in one batch.
pub const MAX_BATCH: usize = 64;

/// Batches in flight at a time.
pub const RUNNERS: usize = 2;

/// Scans waiting for a runner, at most (past it, a scan waits to be queued).
const QUEUE: usize = 4096;

/// The answer of a successful check-in, in the caller's language.
pub fn answer(done: CheckIn, lang: Lang) -> CheckInOut {
    let message = match lang {
        Lang::En => "Check-in completed successfully",
        Lang::Es => "Check-in realizado correctamente",
    };
    CheckInOut::new(done, message)
}

/// The request's idempotency key, carried into the batch.
pub struct Keyed {
    /// The request's hold (one key).
    pub hold: Arc<Hold>,
    /// The language of its answer, as kept.
    pub lang: Lang,
}

struct Job {
    scan: Scan,
    keyed: Option<Keyed>,
    queued: Instant,
    reply: oneshot::Sender<Result<CheckIn, DomainError>>,
}

impl Job {
    fn key(&self) -> Option<&infra::db::idempotency::Claim> {
        self.keyed.as_ref().and_then(|k| k.hold.claims().first())
    }
}

/// The check-ins of this instance, combined into batches.
pub struct CheckIns {
    attendance: AttendanceService,
    refusals: Recorder,
    queue: Option<mpsc::Sender<Job>>,
}

impl CheckIns {
    /// Starts the runners on the current Tokio runtime; outside one, every scan is
    /// checked in alone.
    pub fn start(attendance: AttendanceService, keys: Arc<Keys>, refusals: Recorder) -> Self {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Self { attendance, refusals, queue: None };
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..RUNNERS {
            rt.spawn(run(attendance.clone(), keys.clone(), refusals.clone(), rx.clone()));
        }
        Self { attendance, refusals, queue: Some(queue) }
    }

    /// Checks a member in: see [`AttendanceService::check_in_batch`] for the rules. A
    /// refusal is recorded in the audit where the scan is answered, off its path.
    ///
    /// # Errors
    /// The refusal of the scan; [`DomainError::Unavailable`] when the database (or
    /// this process) could not take it.
    pub async fn check_in(
        &self,
        actor: Actor,
        qr: String,
        session_id: Option<SessionId>,
        keyed: Option<Keyed>,
    ) -> Result<CheckIn, DomainError> {
        let Some(queue) = &self.queue else {
            // Alone, in the request's own task: its hold (if any) is active here.
            let answer = self.attendance.check_in(&actor, &qr, session_id).await;
            record_refusal(&self.refusals, &Scan { actor, qr, session_id }, &answer).await;
            return answer;
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { scan: Scan { actor, qr, session_id }, keyed, queued: Instant::now(), reply };
        queue.send(job).await.map_err(|_| DomainError::Unavailable)?;
        answer.await.unwrap_or(Err(DomainError::Unavailable))
    }
}

/// A runner: takes what is queued, checks it in, answers; forever (until the
/// queue's senders are gone with the state).
async fn run(attendance: AttendanceService, keys: Arc<Keys>, refusals: Recorder, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut later: Vec<Job> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut later);
        if batch.is_empty() {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
            fill(&mut batch, &mut rx);
        } else if let Ok(mut rx) = rx.try_lock() {
            // Never wait for the queue with scans in hand: the other runner may hold
            // it, asleep until a scan arrives, and the queue is empty then anyway.
            fill(&mut batch, &mut rx);
        }
        let started = Instant::now();
        metrics::histogram!("gymapi_checkin_batch_size").record(batch.len() as f64);
        for job in &batch {
            metrics::histogram!("gymapi_checkin_batch_wait_seconds")
                .record(started.duration_since(job.queued).as_secs_f64());
        }
        // A key twice in one batch (a retry racing its first attempt) would claim one
        // row twice in one statement: the second waits for the next batch, and finds
        // the first's answer kept.
        let mut i = 0;
        while i < batch.len() {
            // One key is the caller's and the key's, whatever the body: a key sent twice
            // with two bodies must not claim one row twice either.
            let same = |a: &infra::db::idempotency::Claim, b: &infra::db::idempotency::Claim| {
                (a.user, &a.key) == (b.user, &b.key)
            };
            let twice = batch[i].key().is_some_and(|k| batch[..i].iter().any(|j| j.key().is_some_and(|o| same(k, o))));
            if twice { later.push(batch.remove(i)) } else { i += 1 }
        }
        let scans: Vec<Scan> = batch.iter().map(|j| j.scan.clone()).collect();
        let claims: Vec<_> = batch.iter().filter_map(|j| j.key().cloned()).collect();
        let hold = (!claims.is_empty()).then(|| Hold::new(claims));
        let outcome = match &hold {
            Some(hold) => hold.run(attendance.check_in_batch(&scans)).await,
            None => attendance.check_in_batch(&scans).await,
        };
        let outcome = match (outcome, &hold) {
            (Ok(results), Some(hold)) => Ok(settle(&keys, hold, &batch, results).await),
            (outcome, _) => outcome,
        };
        match outcome {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    match result {
                        ScanResult::Answered(answer) => reply(&refusals, job, answer).await,
                        ScanResult::Later => later.push(job),
                    }
                }
            }
            Err(DomainError::Unavailable) => {
                for job in batch {
                    let _ = job.reply.send(Err(DomainError::Unavailable));
                }
            }
            Err(e) if batch.len() == 1 => {
                for job in batch {
                    reply(&refusals, job, Err(e.clone())).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, scans = batch.len(), "a check-in batch failed; checking its scans in one by one");
                for job in batch {
                    let answer = alone(&attendance, &keys, &job).await;
                    reply(&refusals, job, answer).await;
                }
            }
        }
    }
}

/// Answers a scan, recording it in the refusal audit when it was refused.
async fn reply(refusals: &Recorder, job: Job, answer: Result<CheckIn, DomainError>) {
    record_refusal(refusals, &job.scan, &answer).await;
    let _ = job.reply.send(answer);
}

/// Queues a refused scan for the audit (never waits for the database).
async fn record_refusal(refusals: &Recorder, scan: &Scan, answer: &Result<CheckIn, DomainError>) {
    if let Err(e) = answer
        && is_refusal(e)
    {
        let Scan { actor, qr, session_id } = scan;
        refusals.record(RefusalDraft::new(actor, qr, *session_id, e.code(), refusals.now())).await;
    }
}

/// Keeps the answers of the batch's keyed successes and commits the batch with
/// them. When that commit fails, none of the batch's successes happened: each
/// answers the failure instead.
async fn settle(keys: &Keys, hold: &Hold, batch: &[Job], mut results: Vec<ScanResult>) -> Vec<ScanResult> {
    let answers: Vec<Option<Answer>> = hold
        .claims()
        .iter()
        .map(|claim| {
            let i = batch.iter().position(|j| j.key() == Some(claim))?;
            let (ScanResult::Answered(Ok(done)), Some(keyed)) = (&results[i], &batch[i].keyed) else { return None };
            json_answer(StatusCode::OK, &answer(done.clone(), keyed.lang))
        })
        .collect();
    match keys.settle(hold, &answers).await {
        Ok(()) => {
            for (job, result) in batch.iter().zip(&results) {
                if let (ScanResult::Answered(Ok(_)), Some(keyed)) = (result, &job.keyed) {
                    keyed.hold.mark_settled();
                }
            }
        }
        Err(e) => {
            for result in &mut results {
                if matches!(result, ScanResult::Answered(Ok(_))) {
                    *result = ScanResult::Answered(Err(e.clone()));
                }
            }
        }
    }
    results
}

/// One scan checked in alone, in its request's hold when it brought a key, its
/// success kept with it.
async fn alone(attendance: &AttendanceService, keys: &Keys, job: &Job) -> Result<CheckIn, DomainError> {
    let Scan { actor, qr, session_id } = &job.scan;
    let Some(keyed) = &job.keyed else { return attendance.check_in(actor, qr, *session_id).await };
    let result = keyed.hold.run(attendance.check_in(actor, qr, *session_id)).await;
    let kept = match &result {
        Ok(done) => json_answer(StatusCode::OK, &answer(done.clone(), keyed.lang)),
        Err(_) => None,
    };
    keys.settle(&keyed.hold, &[kept]).await?;
    if result.is_ok() {
        keyed.hold.mark_settled();
    }
    result
}

/// Adds what is queued to a batch, up to [`MAX_BATCH`], without waiting.
fn fill(batch: &mut Vec<Job>, rx: &mut mpsc::Receiver<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}
