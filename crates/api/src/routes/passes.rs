//! A member's passes and ledger (see `domain::passes`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::{UserId, policy};

use crate::body::Body;
use crate::dto::{
    AdjustIn, CreditEntryOut, FreezeIn, GymHeader, MemberOrPlanNotFound, PageIn, PassIn, PassNotFound, PassOut,
};
use crate::dto::{TenantErrors, UserNotFound, parse_date};
use crate::error::ApiError;
use crate::params::{PathId, PathIds, Query};
use crate::respond::json;
use crate::state::State;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/members/{user_id}/passes").route(web::get().to(member_passes)).route(web::post().to(sell_pass)),
    )
    .service(web::resource("/members/{user_id}/passes/{pass_id}/cancel").route(web::post().to(cancel_pass)))
    .service(web::resource("/members/{user_id}/passes/{pass_id}/freeze").route(web::post().to(freeze_pass)))
    .service(web::resource("/members/{user_id}/passes/{pass_id}/adjust").route(web::post().to(adjust_credits)))
    .service(web::resource("/members/{user_id}/ledger").route(web::get().to(member_ledger)));
}

#[utoipa::path(post, path = "/api/v1/members/{user_id}/passes", tag = "passes",
    params(GymHeader, ("user_id" = i64, Path)), request_body = PassIn,
    responses((status = 201, body = PassOut), TenantErrors, MemberOrPlanNotFound),
    description = "Sell a pass of an active plan to a member (staff). It is valid from the first instant of \
        `starts_on` on the gym's wall clock (today by default) for the plan's `valid_days`; a pack's credits \
        are granted in the ledger.")]
async fn sell_pass(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    body: Body<PassIn>,
) -> Result<HttpResponse, ApiError> {
    let member = UserId(id.parse_as(&actor, policy::SELL_PASSES)?);
    let input = body.parse()?;
    let starts_on = input.starts_on.as_deref().map(|s| parse_date("starts_on", s)).transpose()?;
    let pass = state.passes.sell(&actor, member, input.plan_id, starts_on).await?;
    json(StatusCode::CREATED, &PassOut::at(pass, state.clock.now()))
}

#[utoipa::path(get, path = "/api/v1/members/{user_id}/passes", tag = "passes",
    params(GymHeader, ("user_id" = i64, Path), PageIn),
    responses((status = 200, body = [PassOut]), TenantErrors, UserNotFound),
    description = "A member's passes, newest first: the member's own, or anyone's for staff.")]
async fn member_passes(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    q: Query<PageIn>,
) -> Result<HttpResponse, ApiError> {
    let member = UserId(id.parse_self_or(&actor, policy::SEE_MEMBERS)?);
    let page = q.parse()?.page()?;
    let now = state.clock.now();
    let list = state.passes.passes(&actor, member, page).await?;
    json(StatusCode::OK, &list.into_iter().map(|p| PassOut::at(p, now)).collect::<Vec<_>>())
}

#[utoipa::path(post, path = "/api/v1/members/{user_id}/passes/{pass_id}/cancel", tag = "passes",
    params(GymHeader, ("user_id" = i64, Path), ("pass_id" = i64, Path)),
    responses((status = 200, body = PassOut), TenantErrors, PassNotFound),
    description = "End a pass (admin): it can no longer be used; a pack's credits stay in its ledger as they are. \
        Ending an ended pass changes nothing.")]
async fn cancel_pass(state: State, Tenant(actor): Tenant, ids: PathIds) -> Result<HttpResponse, ApiError> {
    let (member, id) = ids.parse_as(&actor, policy::END_PASSES)?;
    let pass = state.passes.cancel(&actor, UserId(member), id).await?;
    json(StatusCode::OK, &PassOut::at(pass, state.clock.now()))
}

#[utoipa::path(post, path = "/api/v1/members/{user_id}/passes/{pass_id}/freeze", tag = "passes",
    params(GymHeader, ("user_id" = i64, Path), ("pass_id" = i64, Path)), request_body = FreezeIn,
    responses((status = 200, body = PassOut), TenantErrors, PassNotFound),
    description = "Freeze a pass (staff) for the days `from`..=`until` on the gym's wall clock: it cannot be \
        used on them, and its expiry moves out by as many days. One freeze at a time, starting today or later \
        and before the pass expires, at most 366 days.")]
async fn freeze_pass(
    state: State,
    Tenant(actor): Tenant,
    ids: PathIds,
    body: Body<FreezeIn>,
) -> Result<HttpResponse, ApiError> {
    let (member, id) = ids.parse_as(&actor, policy::FREEZE_PASSES)?;
    let input = body.parse()?;
    let (from, until) = (parse_date("from", &input.from)?, parse_date("until", &input.until)?);
    let pass = state.passes.freeze(&actor, UserId(member), id, from, until).await?;
    json(StatusCode::OK, &PassOut::at(pass, state.clock.now()))
}

#[utoipa::path(post, path = "/api/v1/members/{user_id}/passes/{pass_id}/adjust", tag = "passes",
    params(GymHeader, ("user_id" = i64, Path), ("pass_id" = i64, Path)), request_body = AdjustIn,
    responses((status = 200, body = PassOut), TenantErrors, PassNotFound),
    description = "Add or remove a pack's credits by hand (admin), with the reason kept in the ledger. A pack \
        never goes below zero credits.")]
async fn adjust_credits(
    state: State,
    Tenant(actor): Tenant,
    ids: PathIds,
    body: Body<AdjustIn>,
) -> Result<HttpResponse, ApiError> {
    let (member, id) = ids.parse_as(&actor, policy::ADJUST_CREDITS)?;
    let input = body.parse()?;
    let pass = state.passes.adjust(&actor, UserId(member), id, input.credits, &input.reason).await?;
    json(StatusCode::OK, &PassOut::at(pass, state.clock.now()))
}

#[utoipa::path(get, path = "/api/v1/members/{user_id}/ledger", tag = "passes",
    params(GymHeader, ("user_id" = i64, Path), PageIn),
    responses((status = 200, body = [CreditEntryOut]), TenantErrors, UserNotFound),
    description = "Every movement of a member's credits, newest first: the member's own, or anyone's for staff.")]
async fn member_ledger(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    q: Query<PageIn>,
) -> Result<HttpResponse, ApiError> {
    let member = UserId(id.parse_self_or(&actor, policy::SEE_MEMBERS)?);
    let page = q.parse()?.page()?;
    let list = state.passes.ledger(&actor, member, page).await?;
    json(StatusCode::OK, &list.into_iter().map(CreditEntryOut::from).collect::<Vec<_>>())
}
