//! `/plans`: what a gym sells (see `domain::plans`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::policy;

use crate::body::Body;
use crate::dto::{GymHeader, PlanIn, PlanNotFound, PlanOut, PlanPatchIn, PlansQueryIn, TenantErrors};
use crate::error::ApiError;
use crate::params::{PathId, Query};
use crate::respond::json;
use crate::state::State;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/plans").route(web::get().to(list_plans)).route(web::post().to(create_plan))).service(
        web::resource("/plans/{id}")
            .route(web::get().to(get_plan))
            .route(web::patch().to(update_plan))
            .route(web::delete().to(retire_plan)),
    );
}

#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", params(GymHeader), request_body = PlanIn,
    responses((status = 201, body = PlanOut), TenantErrors),
    description = "Create a plan (admin): `unlimited`, or a `pack` of 1..=1000 credits; valid 1..=3660 days; \
        an optional weekly cap (1..=100 bookings per ISO week) and categories of classes it is restricted to.")]
async fn create_plan(state: State, Tenant(actor): Tenant, body: Body<PlanIn>) -> Result<HttpResponse, ApiError> {
    let plan = body.parse_as(&actor, policy::MANAGE_PLANS)?.try_into()?;
    json(StatusCode::CREATED, &PlanOut::from(state.plans.create(&actor, plan).await?))
}

#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", params(GymHeader, PlansQueryIn),
    responses((status = 200, body = [PlanOut]), TenantErrors),
    description = "The plans on sale (any member), oldest first; staff add `retired=true` to see retired ones too.")]
async fn list_plans(state: State, Tenant(actor): Tenant, q: Query<PlansQueryIn>) -> Result<HttpResponse, ApiError> {
    let q = q.parse()?;
    let list = state.plans.list(&actor, q.retired.unwrap_or(false), q.page()?).await?;
    json(StatusCode::OK, &list.into_iter().map(PlanOut::from).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans", params(GymHeader, ("id" = i64, Path)),
    responses((status = 200, body = PlanOut), TenantErrors, PlanNotFound),
    description = "One plan, retired or not (any member).")]
async fn get_plan(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &PlanOut::from(state.plans.get(&actor, id.parse()?).await?))
}

#[utoipa::path(patch, path = "/api/v1/plans/{id}", tag = "plans", params(GymHeader, ("id" = i64, Path)),
    request_body = PlanPatchIn, responses((status = 200, body = PlanOut), TenantErrors, PlanNotFound),
    description = "Change a plan (admin); its kind is fixed. Passes already sold keep what they were sold with.")]
async fn update_plan(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    body: Body<PlanPatchIn>,
) -> Result<HttpResponse, ApiError> {
    let id = id.parse_as(&actor, policy::MANAGE_PLANS)?;
    let patch = body.parse()?.try_into()?;
    json(StatusCode::OK, &PlanOut::from(state.plans.update(&actor, id, patch).await?))
}

#[utoipa::path(delete, path = "/api/v1/plans/{id}", tag = "plans", params(GymHeader, ("id" = i64, Path)),
    responses((status = 204), TenantErrors, PlanNotFound),
    description = "Retire a plan (admin): it is no longer listed or sold; passes already sold keep working.")]
async fn retire_plan(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    state.plans.retire(&actor, id.parse_as(&actor, policy::MANAGE_PLANS)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
