//! The webhook engine's thread: its own runtime, at a lower priority than the
//! threads that answer requests, so that under a full CPU the front desk goes first
//! and deliveries wait (they are at least once from the outbox: late, never lost).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::error::{DomainError, Result};
use domain::tx::Tx;
use domain::values::{GymId, Page};
use domain::webhooks::{Batch, Delivery, Outcome, Webhook, WebhookEngine, WebhookRepository};
use time::OffsetDateTime;

/// How often the webhook engine looks for new facts and due deliveries when no
/// announcement woke it.
const WEBHOOKS_EVERY: Duration = Duration::from_secs(1);

/// Endpoints drained at once by one instance: each is a task of its own, so one
/// slow receiver holds back its own queue alone.
const WEBHOOK_DRAINS: usize = 32;

/// Least time between two steps of the webhook engine: under load a step takes
/// many commits' facts at once, and costs a few statements whatever their number.
const WEBHOOKS_GAP: Duration = Duration::from_millis(500);

/// The engine thread's nice value: its share of a core that request threads also
/// want is about a tenth (the kernel's weights: 110 against 1024), all of an idle one.
const ENGINE_NICE: i32 = 10;

/// Runs the webhook engine while `alive` can be upgraded: each step leases the
/// endpoints with something to send, each drained by a task of its own, never more
/// than [`WEBHOOK_DRAINS`] at once. An announcement wakes it at once when it has been
/// idle; steps are at least [`WEBHOOKS_GAP`] apart.
///
/// It runs on a thread and runtime of its own, at nice [`ENGINE_NICE`]: building,
/// signing and posting deliveries take CPU that check-ins want more. Its storage
/// calls run on the main runtime: build it over [`on_this_runtime`].
pub fn spawn(engine: WebhookEngine, wake: Arc<tokio::sync::Notify>, alive: std::sync::Weak<()>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "no runtime for the webhook engine: webhooks are not delivered");
            return;
        }
    };
    let spawned = std::thread::Builder::new().name("gymapi-webhooks".into()).spawn(move || {
        // A thread's nice value is its own on Linux (the id is the thread's), and the
        // threads it starts (the resolver's blocking pool) inherit it.
        if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), ENGINE_NICE) {
            tracing::warn!(error = %e, "the webhook engine runs at the priority of requests");
        }
        runtime.block_on(async move {
            let drains = Arc::new(tokio::sync::Semaphore::new(WEBHOOK_DRAINS));
            while alive.upgrade().is_some() {
                let _ = tokio::time::timeout(WEBHOOKS_EVERY, wake.notified()).await;
                let free = u32::try_from(drains.available_permits()).unwrap_or(0);
                // Each step's leases carry a token of their own: a drain whose lease ran
                // out and was taken over records nothing more as the holder.
                let token = rand::random::<i64>();
                match engine.step(free, token).await {
                    Ok(claimed) => {
                        for webhook in claimed {
                            let Ok(permit) = drains.clone().try_acquire_owned() else { break };
                            let engine = engine.clone();
                            tokio::spawn(async move {
                                if let Err(e) = engine.drain(webhook, token).await {
                                    tracing::warn!(error = %e, webhook, "a webhook drain failed; its lease runs out");
                                }
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "the webhook engine failed a step; it runs again"),
                }
                tokio::time::sleep(WEBHOOKS_GAP).await;
            }
        });
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "no thread for the webhook engine: webhooks are not delivered");
    }
}

/// The engine's storage, its calls run as tasks of the runtime this is called on
/// (the main one; without a runtime there is no engine, and `repo` is answered).
pub fn on_this_runtime(repo: Arc<dyn WebhookRepository>) -> Arc<dyn WebhookRepository> {
    match tokio::runtime::Handle::try_current() {
        Ok(main) => Arc::new(OnRuntime { repo, main }),
        Err(_) => repo,
    }
}

/// The engine's storage calls, run as tasks of the main runtime. On SQLite each
/// connection's worker thread is started by the thread that opens it and inherits
/// its nice value: a connection opened by the engine's thread would serve check-ins
/// at the engine's priority. (A measured attempt without this was slower on SQLite.)
struct OnRuntime {
    repo: Arc<dyn WebhookRepository>,
    main: tokio::runtime::Handle,
}

impl OnRuntime {
    async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(Arc<dyn WebhookRepository>) -> futures_util::future::BoxFuture<'static, Result<T>>,
    ) -> Result<T> {
        let repo = self.repo.clone();
        self.main.spawn(call(repo)).await.map_err(|e| DomainError::internal(format!("webhook storage task: {e}")))?
    }
}

#[async_trait]
impl WebhookRepository for OnRuntime {
    async fn count(&self, tx: &mut Tx, gym: GymId) -> Result<u64> {
        self.repo.count(tx, gym).await
    }

    async fn create(
        &self,
        tx: &mut Tx,
        gym: GymId,
        url: &str,
        events: &[String],
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Webhook> {
        self.repo.create(tx, gym, url, events, secret, now).await
    }

    async fn list(&self, gym: GymId) -> Result<Vec<Webhook>> {
        self.repo.list(gym).await
    }

    async fn delete(&self, tx: &mut Tx, gym: GymId, id: i64) -> Result<bool> {
        self.repo.delete(tx, gym, id).await
    }

    async fn rotate_secret(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        secret: &str,
        now: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<Option<Webhook>> {
        self.repo.rotate_secret(tx, gym, id, secret, now, previous_until).await
    }

    async fn deliveries(&self, gym: GymId, id: i64, page: Page) -> Result<Option<Vec<Delivery>>> {
        self.repo.deliveries(gym, id, page).await
    }

    async fn replay(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        delivery: i64,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>> {
        self.repo.replay(tx, gym, id, delivery, now).await
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        token: i64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        self.run(move |repo| Box::pin(async move { repo.claim(now, lease_until, token, limit).await })).await
    }

    async fn next(&self, webhook: i64, now: OffsetDateTime, limit: u32) -> Result<Batch> {
        self.run(move |repo| Box::pin(async move { repo.next(webhook, now, limit).await })).await
    }

    async fn settle(
        &self,
        webhook: i64,
        token: i64,
        outcomes: &[Outcome],
        cursor: Option<i64>,
        lease_until: Option<OffsetDateTime>,
    ) -> Result<bool> {
        let outcomes = outcomes.to_vec();
        self.run(move |repo| Box::pin(async move { repo.settle(webhook, token, &outcomes, cursor, lease_until).await }))
            .await
    }
}
