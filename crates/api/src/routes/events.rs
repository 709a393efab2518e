//! `/events`: a gym's events.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use domain::{EventId, policy};

use crate::body::Body;
use crate::cache_keys as keys;
use crate::dto::{DateRangeIn, EventIn, EventNewIn, EventOut};
use crate::dto::{EventNotFound, GymHeader, TenantErrors};
use crate::error::ApiError;
use crate::params::{PathId, Query};
use crate::respond::{Slot, cached_json_at, json};
use crate::state::State;
use crate::tenant::{AtGym, Tenant};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").route(web::get().to(list)).route(web::post().to(create))).service(
        web::resource("/events/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(GymHeader, DateRangeIn),
    responses((status = 200, body = [EventOut]), TenantErrors),
    description = "Events starting within the dates (UTC, or the gym's wall clock with tz=gym) (cached).")]
async fn list(state: State, at: AtGym, q: Query<DateRangeIn>) -> Result<HttpResponse, ApiError> {
    let today = state.clock.now().date();
    let (range, page, dates) =
        at.valid(q.parse().and_then(|q| Ok((q.range(today)?, q.page()?, q.dates_in()?)))).await?;
    let field = format!("{}/{}/{}/{}/{dates:?}", range.from().date(), range.through().date(), page.skip, page.limit);
    let state = &state;
    cached_json_at(state, &at, Slot::Field(keys::events(at.gym_id), field), |actor| async move {
        Ok(state.events.list(&actor, range, dates, page).await?.into_iter().map(EventOut::from).collect::<Vec<_>>())
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/events", tag = "events", params(GymHeader), request_body = EventNewIn,
    responses((status = 201, body = EventOut), TenantErrors),
    description = "Create an event (staff); end after start.")]
async fn create(state: State, Tenant(actor): Tenant, body: Body<EventNewIn>) -> Result<HttpResponse, ApiError> {
    let fields = body.parse_as(&actor, policy::MANAGE_EVENTS)?.try_into()?;
    json(StatusCode::CREATED, &EventOut::from(state.events.create(&actor, fields).await?))
}

#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", params(GymHeader, ("id" = i64, Path)),
    responses((status = 200, body = EventOut), TenantErrors, EventNotFound), description = "One event.")]
async fn get(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &EventOut::from(state.events.get(&actor, EventId(id.parse()?)).await?))
}

#[utoipa::path(patch, path = "/api/v1/events/{id}", tag = "events", params(GymHeader, ("id" = i64, Path)),
    request_body = EventIn, responses((status = 200, body = EventOut), TenantErrors, EventNotFound),
    description = "Change an event (staff).")]
async fn update(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    body: Body<EventIn>,
) -> Result<HttpResponse, ApiError> {
    let id = EventId(id.parse_as(&actor, policy::MANAGE_EVENTS)?);
    let fields = body.parse()?.try_into()?;
    json(StatusCode::OK, &EventOut::from(state.events.update(&actor, id, fields).await?))
}

#[utoipa::path(delete, path = "/api/v1/events/{id}", tag = "events", params(GymHeader, ("id" = i64, Path)),
    responses((status = 204), TenantErrors, EventNotFound), description = "Delete an event (admin).")]
async fn delete(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    state.events.delete(&actor, EventId(id.parse_as(&actor, policy::DELETE_EVENT)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
