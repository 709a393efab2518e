//! The state of the application: the domain's services wired to their adapters as
//! the settings say, shared by every worker.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use domain::attendance::AttendanceService;
use domain::cache::Cache;
use domain::clock::Clock;
use domain::events::EventService;
use domain::facts::{Dispatcher, Relay};
use domain::gyms::GymService;
use domain::schedule::ScheduleService;
use domain::tx::UnitOfWork;
use domain::users::UserService;
use domain::webhooks::{Reach, WebhookEngine, WebhookService};
use infra::config::{Environment, Settings};
use infra::db::Db;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Verifier;
use crate::cache_keys::CacheInvalidation;
use crate::identity::Identity;
use crate::lifecycle::Lifecycle;
use crate::telemetry;

/// Everything a request may need, shared by all workers.
pub struct AppState {
    /// Token verification (also app data of its own, for the auth extractor).
    pub verifier: web::Data<Verifier>,
    /// Subject → user, user → role (also app data of its own, for the tenant extractor).
    pub identity: web::Data<Identity>,
    /// Users.
    pub users: UserService,
    /// Gyms and members.
    pub gyms: GymService,
    /// Classes, sessions, bookings.
    pub schedule: ScheduleService,
    /// Recurring series of sessions.
    pub recurrences: domain::recurrences::RecurrenceService,
    /// Members' calendar feeds.
    pub calendar: domain::calendar::CalendarService,
    /// Events.
    pub events: EventService,
    /// QR codes and attendance.
    pub attendance: AttendanceService,
    /// Front-desk check-ins, combined into batches.
    pub check_ins: crate::checkins::CheckIns,
    /// Idempotency keys of POST requests (also app data of its own, for their middleware).
    pub idempotency: web::Data<crate::idempotency::Keys>,
    /// The change feed.
    pub changes: domain::changes::ChangeFeed,
    /// Class and member reports.
    pub reports: domain::reports::ReportService,
    /// The refusal audit (lists).
    pub refusals: domain::refusals::RefusalService,
    /// Live streams of this instance, woken when their gym's feed grows.
    pub streams: Arc<crate::streams::Hub>,
    /// Webhook endpoints and their deliveries.
    pub webhooks: domain::webhooks::WebhookService,
    pub plans: domain::plans::PlanService,
    pub passes: domain::passes::PassService,
    pub payments: domain::payments::PaymentService,
    /// The cache behind cached reads.
    pub cache: Arc<dyn Cache>,
    /// TTL of cached reads.
    pub cache_ttl: Duration,
    /// The database (readiness, shutdown).
    pub db: Db,
    /// The clock (date defaults of range queries).
    pub clock: Arc<dyn Clock>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Whether the process is shutting down (also app data of its own, for telemetry).
    pub lifecycle: web::Data<Lifecycle>,
    /// The outbox's relay runs while this state lives (it holds a weak reference).
    _relay: Arc<()>,
}

impl AppState {
    /// Whether the process is shutting down (see [`Lifecycle`]).
    pub fn is_draining(&self) -> bool {
        self.lifecycle.is_draining()
    }
}

/// The state of a request.
pub type State = web::Data<AppState>;

/// Why the state could not be built (a one-line reason, by its setting).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `REDIS_URL` refused.
    #[error(transparent)]
    Cache(#[from] infra::cache::CacheConfigError),
    /// Authentication settings that cannot work.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
    /// The webhooks' HTTP client cannot be built.
    #[error(transparent)]
    Webhooks(#[from] infra::webhooks::TransportError),
}

/// Wires services to adapters as the settings say, and starts the outbox's relay
/// (when called inside a Tokio runtime). The database must already be connected
/// (and migrated); `clock` is every rule's "now" (tests pin and move it).
///
/// # Errors
/// A one-line reason (bad cache URL, bad auth settings).
pub fn build_state(settings: &Settings, db: Db, clock: Arc<dyn Clock>) -> Result<AppState, StartupError> {
    let cache = infra::cache::from_settings(settings)?;
    let db = db.with_clock(clock.clone());
    db.with_own_writes(cache.clone());
    let repo = Arc::new(db.clone());
    // Every listener of the domain's facts, one line each.
    let nudge = Arc::new(tokio::sync::Notify::new());
    let dispatcher = Dispatcher::new()
        .with(Arc::new(CacheInvalidation::new(cache.clone())))
        .with(Arc::new(Nudge(nudge.clone())))
        .with_outbox(repo.clone());
    let uow = UnitOfWork::new(repo.clone(), dispatcher.clone());
    let users = UserService::new(repo.clone(), uow.clone(), clock.clone());
    let credits = domain::credits::Credits::new(repo.clone());
    let gyms = GymService::new(repo.clone(), repo.clone(), repo.clone(), credits.clone(), uow.clone(), clock.clone());
    let window = time::Duration::minutes(settings.checkin_window_minutes);
    let verifier = Verifier::from_settings(settings)?;
    // Keys are fetched at start-up, so the first requests do not wait for them, and
    // again every JWKS_MAX_AGE, so a key the issuer withdrew stops verifying.
    if let (Some(jwks), Ok(rt)) = (verifier.jwks(), tokio::runtime::Handle::try_current()) {
        let jwks = std::sync::Arc::downgrade(&jwks);
        rt.spawn(async move {
            while let Some(j) = jwks.upgrade() {
                j.refresh().await;
                drop(j);
                tokio::time::sleep(crate::auth::JWKS_MAX_AGE).await;
            }
        });
    }
    let attendance = AttendanceService::new(
        repo.clone(),
        repo.clone(),
        repo.clone(),
        credits.clone(),
        uow.clone(),
        clock.clone(),
        window,
    );
    let retention = time::Duration::hours(settings.outbox_retention_hours);
    let refusals = domain::refusals::RefusalService::new(repo.clone(), uow.clone(), clock.clone());
    let relay_guard = Arc::new(());
    let idempotency = web::Data::new(crate::idempotency::Keys::new(db.clone(), dispatcher.clone()));
    let webhook_wake = Arc::new(tokio::sync::Notify::new());
    let streams = crate::streams::Hub::start(
        infra::bus::Bus::from_settings(settings)?,
        webhook_wake.clone(),
        Arc::downgrade(&relay_guard),
    );
    let reach = match settings.env {
        Environment::Development | Environment::Test => Reach::Anywhere,
        Environment::Production => Reach::PublicHttps,
    };
    let transport = infra::webhooks::HttpTransport::new(reach)?;
    crate::webhook_thread::spawn(
        WebhookEngine::new(crate::webhook_thread::on_this_runtime(repo.clone()), Arc::new(transport), clock.clone()),
        webhook_wake,
        Arc::downgrade(&relay_guard),
    );
    let relay = Relay::new(repo.clone(), dispatcher, clock.clone(), retention).with_announcer(streams.clone());
    spawn_sequencer(relay.clone(), nudge, Arc::downgrade(&relay_guard));
    spawn_relay(relay, db.clone(), Arc::downgrade(&relay_guard));
    spawn_no_shows(attendance.clone(), Arc::downgrade(&relay_guard));
    let passes = domain::passes::PassService::new(repo.clone(), repo.clone(), uow.clone(), clock.clone());
    spawn_expiry(passes.clone(), Arc::downgrade(&relay_guard));
    Ok(AppState {
        verifier: web::Data::new(verifier),
        identity: web::Data::new(Identity::new(users.clone(), gyms.clone(), cache.clone(), settings.cache_ttl)),
        schedule: ScheduleService::new(repo.clone(), repo.clone(), credits, uow.clone(), clock.clone()),
        calendar: domain::calendar::CalendarService::new(repo.clone(), uow.clone(), clock.clone()),
        recurrences: domain::recurrences::RecurrenceService::new(
            repo.clone(),
            repo.clone(),
            repo.clone(),
            uow.clone(),
            clock.clone(),
        ),
        events: EventService::new(repo.clone(), uow.clone(), clock.clone()),
        check_ins: crate::checkins::CheckIns::start(
            attendance.clone(),
            idempotency.clone().into_inner(),
            crate::refusals::Recorder::start(refusals.clone()),
        ),
        changes: domain::changes::ChangeFeed::new(repo.clone()),
        reports: domain::reports::ReportService::new(repo.clone(), clock.clone()),
        refusals,
        streams,
        webhooks: WebhookService::new(repo.clone(), uow.clone(), clock.clone(), reach),
        plans: domain::plans::PlanService::new(repo.clone(), uow.clone(), clock.clone()),
        passes: passes.clone(),
        payments: domain::payments::PaymentService::new(repo.clone(), passes, uow.clone(), clock.clone()),
        idempotency,
        attendance,
        users,
        gyms,
        cache,
        cache_ttl: settings.cache_ttl,
        db,
        clock,
        metrics: telemetry::metrics_handle(),
        lifecycle: web::Data::new(Lifecycle::default()),
        _relay: relay_guard,
    })
}

/// How often the relay looks for facts left undelivered, and the sequencer for
/// facts left unnumbered when no commit woke it.
const RELAY_EVERY: Duration = Duration::from_secs(1);

/// How long the sequencer waits after a commit woke it: a burst of commits is
/// numbered in one go (at most ten sequencing transactions a second under any load),
/// and live streams hear of a commit well within a second.
const SEQUENCE_AFTER: Duration = Duration::from_millis(100);

/// How long the sequencer waits to try again when another instance's held the turn.
const SEQUENCE_BUSY: Duration = Duration::from_millis(50);

/// Wakes the sequencer on every commit (a listener that never fails).
struct Nudge(Arc<tokio::sync::Notify>);

#[async_trait::async_trait]
impl domain::facts::Listener for Nudge {
    async fn on(&self, _: &domain::facts::DomainEvent) -> domain::facts::Delivery {
        self.0.notify_one();
        domain::facts::Delivery::Done
    }

    async fn on_many(&self, _: &[domain::facts::DomainEvent]) -> domain::facts::Delivery {
        self.0.notify_one();
        domain::facts::Delivery::Done
    }
}

/// Numbers committed facts soon after each commit (or every [`RELAY_EVERY`]), and
/// so announces them to live streams, while `alive` can be upgraded.
fn spawn_sequencer(relay: Relay, nudge: Arc<tokio::sync::Notify>, alive: std::sync::Weak<()>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(async move {
        while alive.upgrade().is_some() {
            let _ = tokio::time::timeout(RELAY_EVERY, nudge.notified()).await;
            tokio::time::sleep(SEQUENCE_AFTER).await;
            // Another instance's sequencer may have read the pending facts before this
            // instance's last commit: try again shortly rather than a second later.
            for _ in 0..5 {
                match relay.sequence().await {
                    Ok(true) => tokio::time::sleep(SEQUENCE_BUSY).await,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "the outbox sequencer failed; it runs again");
                        break;
                    }
                }
            }
        }
    });
}

/// How often the no-show job runs.
const NO_SHOWS_EVERY: Duration = Duration::from_secs(60);

/// Runs the no-show job every [`NO_SHOWS_EVERY`] while `alive` can be upgraded;
/// every instance runs it (each place is marked once whoever gets there first). A
/// full run goes again at once: a backlog after an outage drains without waiting.
fn spawn_no_shows(attendance: AttendanceService, alive: std::sync::Weak<()>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(async move {
        while alive.upgrade().is_some() {
            match attendance.mark_no_shows().await {
                Ok(n) if n as u64 >= domain::attendance::NO_SHOWS_PER_RUN => continue,
                Ok(0) => {}
                Ok(n) => tracing::info!(places = n, "marked no-shows"),
                Err(e) => tracing::warn!(error = %e, "the no-show job failed; it runs again"),
            }
            tokio::time::sleep(NO_SHOWS_EVERY).await;
        }
    });
}

/// Runs the pass expiry job while `alive` can be upgraded: every instance, every
/// [`NO_SHOWS_EVERY`] (a pass expired twice over is expired once: see
/// `PassService::expire_passes`).
fn spawn_expiry(passes: domain::passes::PassService, alive: std::sync::Weak<()>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(async move {
        while alive.upgrade().is_some() {
            match passes.expire_passes().await {
                Ok(n) if n as u64 >= domain::passes::EXPIRES_PER_RUN => continue,
                Ok(0) => {}
                Ok(n) => tracing::info!(passes = n, "expired passes' credits"),
                Err(e) => tracing::warn!(error = %e, "the pass expiry job failed; it runs again"),
            }
            tokio::time::sleep(NO_SHOWS_EVERY).await;
        }
    });
}

/// How often delivered facts past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Runs the relay's deliveries every [`RELAY_EVERY`] (and the purges of delivered facts and of
/// expired idempotency keys every [`PURGE_EVERY`]) for as long as `alive` can be
/// upgraded: the state that started it is alive.
fn spawn_relay(relay: Relay, db: Db, alive: std::sync::Weak<()>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(async move {
        let mut since_purge = Duration::ZERO;
        while alive.upgrade().is_some() {
            match relay.deliver_pending().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(facts = n, "outbox relay delivered facts left undelivered"),
                Err(e) => tracing::warn!(error = %e, "outbox relay could not claim facts"),
            }
            if since_purge >= PURGE_EVERY {
                since_purge = Duration::ZERO;
                if let Err(e) = relay.purge().await {
                    tracing::warn!(error = %e, "outbox purge failed");
                }
                if let Err(e) = db.purge_idempotency_keys().await {
                    tracing::warn!(error = %e, "idempotency key purge failed");
                }
                if let Err(e) = db.purge_webhook_deliveries(relay.retention_cutoff()).await {
                    tracing::warn!(error = %e, "webhook delivery purge failed");
                }
            }
            tokio::time::sleep(RELAY_EVERY).await;
            since_purge += RELAY_EVERY;
        }
    });
}
