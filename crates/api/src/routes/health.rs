//! Public operational routes: liveness, readiness, metrics.

use actix_web::{HttpResponse, web};
use domain::cache::CacheHealth;
use serde_json::json;

use crate::state::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/ready").route(web::get().to(ready)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

#[utoipa::path(
    get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "{\"status\": \"ok\"}"))
)]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/ready", tag = "operations", security(()), responses(
    (status = 200, description = "{status: ready, database: ok, cache: ok|disabled|degraded}"),
    (status = 503, description = "database_unavailable, or shutting_down after SIGTERM")))]
async fn ready(state: State) -> HttpResponse {
    if state.is_draining() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "draining", "detail": "shutting down", "code": "shutting_down"
        }));
    }
    let cache = match state.cache.health().await {
        CacheHealth::Ok => "ok",
        CacheHealth::Disabled => "disabled",
        CacheHealth::Degraded => "degraded",
    };
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready", "database": "ok", "cache": cache })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable", "database": "unavailable", "cache": cache,
            "detail": "database unavailable", "code": "database_unavailable"
        })),
    }
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"))
)]
async fn metrics(state: State) -> HttpResponse {
    // Pool gauges are sampled when scraped: they are levels, not events.
    let (open, idle) = state.db.pool_stats();
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("gymapi_db_pool_connections", "state" => "in_use").set(f64::from(open.saturating_sub(idle)));
    metrics::gauge!("gymapi_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("gymapi_db_pool_connections", "state" => "max").set(f64::from(state.db.pool_max()));
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
