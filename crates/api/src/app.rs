//! The one factory of the application, shared by `main` and the tests: the state
//! (services wired to adapters) and the actix `App` around it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, middleware, web};
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
use serde::Serialize;

use crate::auth::Verifier;
use crate::cache_keys::CacheInvalidation;
use crate::error::ApiError;
use crate::tenant::Identity;
use crate::{routes, telemetry};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// Everything a request may need, shared by all workers.
pub struct AppState {
    /// Token verification.
    pub verifier: Verifier,
    /// Subject → user, user → role.
    pub identity: Identity,
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
    /// Set on SIGTERM: `/ready` answers 503 and responses close their connection,
    /// so a load balancer stops sending before the server drains.
    pub draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// Whether the process is shutting down (see [`AppState::draining`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The state of a request.
pub type State = web::Data<AppState>;

/// The app state of a request, for extractors.
///
/// # Errors
/// Only if the app was built without state (a programming error).
pub fn state(req: &HttpRequest) -> Result<State, ApiError> {
    req.app_data::<State>().cloned().ok_or_else(|| domain::DomainError::Internal("app state missing".into()).into())
}

/// Wires services to adapters as the settings say. The database must already be
/// connected (and migrated).
///
/// # Errors
/// A one-line reason (bad cache URL, bad auth settings).
pub fn build_state(settings: &Settings, db: Db) -> Result<AppState, String> {
    let cache = infra::cache::from_settings(settings)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let repo = Arc::new(db.clone());
    // Every listener of the domain's facts, one line each.
    let events = Dispatcher::new().with(Arc::new(CacheInvalidation::new(cache.clone())));
    let users = UserService::new(repo.clone(), repo.clone(), events.clone(), clock.clone());
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
        verifier,
        identity: Identity::new(users.clone(), gyms.clone(), cache.clone(), settings.cache_ttl),
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
        draining: std::sync::atomic::AtomicBool::new(false),
    })
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge.into()
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => ApiError::PayloadTooLarge.into(),
        other => ApiError::validation(format!("invalid JSON body: {other}")).into(),
    }
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::validation(format!("invalid query parameters: {err}")).into()
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::validation(format!("invalid path parameter: {err}")).into()
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Registers every route, the extractor configuration and the middleware.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(MAX_BODY).content_type_required(false).error_handler(json_error))
        .app_data(web::PayloadConfig::default().limit(MAX_BODY))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .configure(routes::health::configure)
        .configure(crate::openapi::configure)
        .service(web::scope("/api/v1").configure(routes::api))
        .default_service(web::to(not_found));
}

/// The HTTP server on a bound listener; with `handle_signals` it stops gracefully
/// on SIGTERM/SIGINT (tests run many servers in one process and pass `false`).
///
/// # Errors
/// When the listener cannot be used.
pub fn server(state: State, listener: TcpListener, workers: usize, handle_signals: bool) -> std::io::Result<Server> {
    let mut server = HttpServer::new(move || {
        // The last `wrap` is the outermost: telemetry sees (and logs) the body limit's 413s.
        App::new()
            .app_data(state.clone())
            .wrap(middleware::from_fn(crate::limits::body_limit))
            .wrap(middleware::from_fn(telemetry::middleware))
            .configure(configure)
    })
    .workers(workers)
    // With SHUTDOWN_GRACE_SECONDS before it, the whole stop fits an orchestrator's
    // usual 30 s kill deadline when the grace is at most 10 s (see the README).
    .shutdown_timeout(20);
    if !handle_signals {
        server = server.disable_signals();
    }
    Ok(server.listen(listener)?.run())
}

/// Serves a JSON body from bytes.
pub fn json_bytes(status: actix_web::http::StatusCode, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").body(bytes)
}

/// Serializes a value as a JSON response.
///
/// # Errors
/// Serialization failures (internal).
pub fn json<T: Serialize>(status: actix_web::http::StatusCode, value: &T) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| domain::DomainError::Internal(e.to_string()))?;
    Ok(json_bytes(status, bytes))
}

/// Where a cached read lives: a group of its own, or one field of a group shared
/// with its variants (pages, date ranges), all invalidated together.
pub enum Slot {
    /// A group holding this one read.
    Key(String),
    /// A field of a group.
    Field(String, String),
}

/// Cache-aside for a read: serves the cached JSON bytes as they are, or loads,
/// serializes, stores and serves. A cached value that is not JSON is ignored.
///
/// # Errors
/// The loader's.
pub async fn cached_json<T, F>(state: &AppState, slot: Slot, load: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: std::future::Future<Output = Result<T, domain::DomainError>>,
{
    use actix_web::http::StatusCode;
    let (group, field) = match &slot {
        Slot::Key(k) => (k.as_str(), ""),
        Slot::Field(k, f) => (k.as_str(), f.as_str()),
    };
    let read = state.cache.read(group, field).await;
    if let Some(bytes) = read.value {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
            return Ok(json_bytes(StatusCode::OK, bytes));
        }
        tracing::warn!("cached value is not JSON; reloading");
    }
    let value = load.await?;
    let bytes = serde_json::to_vec(&value).map_err(|e| domain::DomainError::Internal(e.to_string()))?;
    // At the version read: if a write invalidated the group meanwhile, this value
    // lands where no reader looks.
    state.cache.fill(group, read.version, field, &bytes, state.cache_ttl).await;
    Ok(json_bytes(StatusCode::OK, bytes))
}
