//! The refusal audit's writer: a refused scan is queued without waiting, and one
//! task records what is queued in batches ([`RefusalService::record`], one
//! transaction per batch), so recording never slows or fails the answer to the scan.
//!
//! A batch that cannot be recorded is tried again a few times, then dropped and
//! counted (`gymapi_checkin_refusals_dropped_total`), as are refusals arriving while
//! the queue is full: the audit is a record of what the desk saw, not a rule the
//! check-in waits on. What is queued when the process dies is lost (at most one
//! batch and the queue behind it).

use std::time::Duration;

use domain::refusals::{RefusalDraft, RefusalService};
use tokio::sync::mpsc;

/// Refusals waiting at most (past it, a refusal is dropped and counted).
const QUEUE: usize = 8192;

/// Most refusals in one batch.
const BATCH: usize = 256;

/// Attempts at a batch before it is dropped.
const ATTEMPTS: u32 = 3;

/// The recorder of this instance (clones share its queue).
#[derive(Clone)]
pub struct Recorder {
    service: RefusalService,
    queue: Option<mpsc::Sender<RefusalDraft>>,
}

impl Recorder {
    /// Starts the writer on the current Tokio runtime; outside one, each refusal is
    /// recorded in its request.
    pub fn start(service: RefusalService) -> Self {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Self { service, queue: None };
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        rt.spawn(run(service.clone(), rx));
        Self { service, queue: Some(queue) }
    }

    /// The instant a refusal happens at.
    pub fn now(&self) -> time::OffsetDateTime {
        self.service.now()
    }

    /// Queues a refusal; never waits for the database.
    pub async fn record(&self, refusal: RefusalDraft) {
        match &self.queue {
            Some(queue) => {
                if queue.try_send(refusal).is_err() {
                    metrics::counter!("gymapi_checkin_refusals_dropped_total").increment(1);
                }
            }
            None => {
                if let Err(e) = self.service.record(std::slice::from_ref(&refusal)).await {
                    tracing::warn!(error = %e, "a check-in refusal could not be recorded");
                }
            }
        }
    }
}

async fn run(service: RefusalService, mut rx: mpsc::Receiver<RefusalDraft>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match service.record(&batch).await {
                Ok(()) => {
                    for r in &batch {
                        metrics::counter!("gymapi_checkin_refusals_total", "code" => r.code.clone()).increment(1);
                    }
                    break;
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, refusals = batch.len(), attempt, "recording check-in refusals failed");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, refusals = batch.len(), "check-in refusals dropped");
                    metrics::counter!("gymapi_checkin_refusals_dropped_total").increment(batch.len() as u64);
                    break;
                }
            }
        }
        batch.clear();
    }
}
