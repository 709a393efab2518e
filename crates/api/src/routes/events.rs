//! `/events`: a gym's events.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::cache::keys;

use crate::app::{Slot, State, cached_json, json};
use crate::dto::{DateRangeIn, EventIn, EventOut};
use crate::error::ApiError;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").route(web::get().to(list)).route(web::post().to(create))).service(
        web::resource("/events/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

async fn list(state: State, Tenant(actor): Tenant, q: web::Query<DateRangeIn>) -> Result<HttpResponse, ApiError> {
    let range = q.range(state.clock.now().date())?;
    let slot = Slot::Field(keys::events(actor.gym_id), format!("{}/{}", range.from().date(), range.until().date()));
    cached_json(&state, slot, async {
        Ok(state.events.list(&actor, range).await?.into_iter().map(EventOut::from).collect::<Vec<_>>())
    })
    .await
}

async fn create(state: State, Tenant(actor): Tenant, body: web::Json<EventIn>) -> Result<HttpResponse, ApiError> {
    json(StatusCode::CREATED, &EventOut::from(state.events.create(&actor, body.into_inner().into()).await?))
}

async fn get(state: State, Tenant(actor): Tenant, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &EventOut::from(state.events.get(&actor, id.into_inner()).await?))
}

async fn update(
    state: State,
    Tenant(actor): Tenant,
    id: web::Path<i64>,
    body: web::Json<EventIn>,
) -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &EventOut::from(state.events.update(&actor, id.into_inner(), body.into_inner().into()).await?))
}

async fn delete(state: State, Tenant(actor): Tenant, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    state.events.delete(&actor, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
