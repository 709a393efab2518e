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

use std::sync::Arc;
use std::time::Instant;

use domain::attendance::{AttendanceService, CheckIn, Scan, ScanResult};
use domain::values::Actor;
use domain::{DomainError, SessionId};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Most scans in one batch.
pub const MAX_BATCH: usize = 64;

/// Batches in flight at a time.
pub const RUNNERS: usize = 2;

/// Scans waiting for a runner, at most (past it, a scan waits to be queued).
const QUEUE: usize = 4096;

struct Job {
    scan: Scan,
    queued: Instant,
    reply: oneshot::Sender<Result<CheckIn, DomainError>>,
}

/// The check-ins of this instance, combined into batches.
pub struct CheckIns {
    attendance: AttendanceService,
    queue: Option<mpsc::Sender<Job>>,
}

impl CheckIns {
    /// Starts the runners on the current Tokio runtime; outside one, every scan is
    /// checked in alone.
    pub fn start(attendance: AttendanceService) -> Self {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Self { attendance, queue: None };
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..RUNNERS {
            rt.spawn(run(attendance.clone(), rx.clone()));
        }
        Self { attendance, queue: Some(queue) }
    }

    /// Checks a member in: see [`AttendanceService::check_in_batch`] for the rules.
    ///
    /// # Errors
    /// The refusal of the scan; [`DomainError::Unavailable`] when the database (or
    /// this process) could not take it.
    pub async fn check_in(
        &self,
        actor: Actor,
        qr: String,
        session_id: Option<SessionId>,
    ) -> Result<CheckIn, DomainError> {
        let Some(queue) = &self.queue else {
            return self.attendance.check_in(&actor, &qr, session_id).await;
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { scan: Scan { actor, qr, session_id }, queued: Instant::now(), reply };
        queue.send(job).await.map_err(|_| DomainError::Unavailable)?;
        answer.await.unwrap_or(Err(DomainError::Unavailable))
    }
}

/// A runner: takes what is queued, checks it in, answers; forever (until the
/// queue's senders are gone with the state).
async fn run(attendance: AttendanceService, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
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
        let scans: Vec<Scan> = batch.iter().map(|j| j.scan.clone()).collect();
        match attendance.check_in_batch(&scans).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    match result {
                        ScanResult::Answered(answer) => {
                            let _ = job.reply.send(answer);
                        }
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
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, scans = batch.len(), "a check-in batch failed; checking its scans in one by one");
                for job in batch {
                    let Scan { actor, qr, session_id } = &job.scan;
                    let _ = job.reply.send(attendance.check_in(actor, qr, *session_id).await);
                }
            }
        }
    }
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
