//! `/webhooks`: a gym's endpoints and their deliveries (see `domain::webhooks`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::policy;

use crate::body::Body;
use crate::dto::{DeliveryNotFound, DeliveryOut, GymHeader, PageIn, TenantErrors, WebhookNotFound};
use crate::dto::{WebhookIn, WebhookOut, WebhookSecretOut};
use crate::error::ApiError;
use crate::params::{PathId, PathIds, Query};
use crate::respond::json;
use crate::state::State;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/webhooks").route(web::get().to(list_webhooks)).route(web::post().to(create_webhook)))
        .service(web::resource("/webhooks/{id}").route(web::delete().to(delete_webhook)))
        .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(webhook_deliveries)))
        .service(web::resource("/webhooks/{id}/deliveries/{delivery_id}/replay").route(web::post().to(replay_delivery)))
        .service(web::resource("/webhooks/{id}/rotate-secret").route(web::post().to(rotate_webhook_secret)));
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", params(GymHeader), request_body = WebhookIn,
    responses((status = 201, body = WebhookSecretOut), TenantErrors),
    description = "Register an endpoint (admin) for the event types given; it receives what happens from now \
        on. The answer is the only one that shows the secret. At most 20 per gym.")]
async fn create_webhook(state: State, Tenant(actor): Tenant, body: Body<WebhookIn>) -> Result<HttpResponse, ApiError> {
    let input = body.parse_as(&actor, policy::MANAGE_WEBHOOKS)?;
    let created = state.webhooks.create(&actor, &input.url, &input.events).await?;
    json(StatusCode::CREATED, &WebhookSecretOut::from(created))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(GymHeader),
    responses((status = 200, body = [WebhookOut]), TenantErrors), description = "The gym's endpoints (admin).")]
async fn list_webhooks(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let list = state.webhooks.list(&actor).await?;
    json(StatusCode::OK, &list.into_iter().map(WebhookOut::from).collect::<Vec<_>>())
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(GymHeader, ("id" = i64, Path)),
    responses((status = 204), TenantErrors, WebhookNotFound),
    description = "Remove an endpoint and its deliveries (admin): nothing more is sent to it.")]
async fn delete_webhook(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    state.webhooks.delete(&actor, id.parse_as(&actor, policy::MANAGE_WEBHOOKS)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(GymHeader, ("id" = i64, Path), PageIn),
    responses((status = 200, body = [DeliveryOut]), TenantErrors, WebhookNotFound),
    description = "The endpoint's deliveries, newest first (admin).")]
async fn webhook_deliveries(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    q: Query<PageIn>,
) -> Result<HttpResponse, ApiError> {
    let id = id.parse_as(&actor, policy::MANAGE_WEBHOOKS)?;
    let page = q.parse()?.page()?;
    let list = state.webhooks.deliveries(&actor, id, page).await?;
    json(StatusCode::OK, &list.into_iter().map(DeliveryOut::from).collect::<Vec<_>>())
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(GymHeader, ("id" = i64, Path), ("delivery_id" = i64, Path)),
    responses((status = 202, body = DeliveryOut), TenantErrors, WebhookNotFound, DeliveryNotFound),
    description = "Send a delivery again (admin): the same body and id, as soon as the endpoint's queue reaches \
        it, with its attempts counted afresh.")]
async fn replay_delivery(state: State, Tenant(actor): Tenant, ids: PathIds) -> Result<HttpResponse, ApiError> {
    let (id, delivery) = ids.parse_as(&actor, policy::MANAGE_WEBHOOKS)?;
    json(StatusCode::ACCEPTED, &DeliveryOut::from(state.webhooks.replay(&actor, id, delivery).await?))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(GymHeader, ("id" = i64, Path)),
    responses((status = 200, body = WebhookSecretOut), TenantErrors, WebhookNotFound),
    description = "A new secret (admin); the old one keeps signing beside it for 24 hours, so receivers can \
        switch without losing a delivery.")]
async fn rotate_webhook_secret(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    let id = id.parse_as(&actor, policy::MANAGE_WEBHOOKS)?;
    json(StatusCode::OK, &WebhookSecretOut::from(state.webhooks.rotate_secret(&actor, id).await?))
}
