//! The state of the application: the domain's services wired to their adapters as
//! the settings say, shared by every worker.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use domain::attendance::AttendanceService;
use domain::cache::Cache;
use domain::clock::{Clock, SystemClock};
use domain::events::EventService;
use domain::facts::Dispatcher;
use domain::gyms::GymService;
use domain::schedule::ScheduleService;
use domain::users::UserService;
use infra::config::Settings;
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
    /// Events.
    pub events: EventService,
    /// QR codes and attendance.
    pub attendance: AttendanceService,
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
}

/// Wires services to adapters as the settings say. The database must already be
/// connected (and migrated).
///
/// # Errors
/// A one-line reason (bad cache URL, bad auth settings).
pub fn build_state(settings: &Settings, db: Db) -> Result<AppState, StartupError> {
    let cache = infra::cache::from_settings(settings)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let repo = Arc::new(db.clone());
    // Every listener of the domain's facts, one line each.
    let events = Dispatcher::new().with(Arc::new(CacheInvalidation::new(cache.clone())));
    let users = UserService::new(repo.clone(), events.clone(), clock.clone());
    let gyms = GymService::new(repo.clone(), events.clone(), clock.clone());
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
    Ok(AppState {
        verifier: web::Data::new(verifier),
        identity: web::Data::new(Identity::new(users.clone(), gyms.clone(), cache.clone(), settings.cache_ttl)),
        schedule: ScheduleService::new(repo.clone(), events.clone(), clock.clone()),
        events: EventService::new(repo.clone(), events.clone(), clock.clone()),
        attendance: AttendanceService::new(repo, events, clock.clone(), window),
        users,
        gyms,
        cache,
        cache_ttl: settings.cache_ttl,
        db,
        clock,
        metrics: telemetry::metrics_handle(),
        lifecycle: web::Data::new(Lifecycle::default()),
    })
}
