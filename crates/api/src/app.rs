//! The one factory of the application, shared by `main` and the tests: the actix
//! `App` around the state (see [`crate::state`]) and the HTTP server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, middleware, web};

use crate::error::ApiError;
use crate::limits::MAX_BODY;
pub use crate::state::{AppState, State, build_state};
use crate::{routes, telemetry};

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Registers every route, the extractor configuration and the middleware.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::default().limit(MAX_BODY))
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
    let replica = state.db.has_replica();
    let mut server = HttpServer::new(move || {
        // The last `wrap` is the outermost: telemetry sees (and logs) every answer as
        // it leaves, localized and in the contract's form.
        // The extractors of authentication, tenancy and telemetry get only what they
        // need, as app data of its own.
        App::new()
            .app_data(state.clone())
            .app_data(state.verifier.clone())
            .app_data(state.identity.clone())
            .app_data(state.lifecycle.clone())
            .app_data(state.idempotency.clone())
            .wrap(middleware::from_fn(crate::idempotency::middleware))
            // Outside the idempotency middleware, which commits held work: a write is
            // marked for read-your-writes only once it committed. Without a replica it
            // is not in the chain at all.
            .wrap(middleware::Condition::new(replica, middleware::from_fn(crate::own_writes::middleware)))
            .wrap(middleware::from_fn(crate::limits::body_limit))
            .wrap(middleware::from_fn(crate::error::localize))
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
