//! `/gyms` and `/members`: creating gyms and managing who belongs to them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::gyms::NewGym;
use domain::{Page, Role, UserId};

use domain::policy;

use crate::auth::Caller;
use crate::body::Body;
use crate::dto::{AlreadyMember, AuthErrors, GymHeader, LastOwner, TenantErrors, UserNotFound};
use crate::dto::{GymIn, GymOut, GymPatchIn, MemberIn, MemberOut, MembersQuery, MembershipOut, OccupancyOut, RoleIn};
use crate::error::ApiError;
use crate::params::{PathId, Query};
use crate::respond::json;
use crate::state::State;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/gyms").route(web::post().to(create_gym)))
        .service(web::resource("/gyms/current").route(web::get().to(current)).route(web::patch().to(update_current)))
        .service(web::resource("/gyms/current/occupancy").route(web::get().to(occupancy)))
        .service(web::resource("/members").route(web::get().to(members)).route(web::post().to(add_member)))
        .service(
            web::resource("/members/{user_id}").route(web::patch().to(set_role)).route(web::delete().to(remove_member)),
        );
}

#[utoipa::path(post, path = "/api/v1/gyms", tag = "gyms", request_body = GymIn,
    responses((status = 201, body = GymOut), AuthErrors), description = "Create a gym; the caller becomes its owner.")]
async fn create_gym(state: State, caller: Caller, body: Body<GymIn>) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let new =
        NewGym { name: body.name, timezone: body.timezone.unwrap_or_else(|| "UTC".to_owned()), address: body.address };
    json(StatusCode::CREATED, &GymOut::from(state.gyms.create_gym(caller.user_id, new).await?))
}

#[utoipa::path(get, path = "/api/v1/gyms/current/occupancy", tag = "gyms", params(GymHeader),
    responses((status = 200, body = OccupancyOut), TenantErrors),
    description = "Who is in the gym now (staff): members checked in within the gym's occupancy_window_minutes, \
        in all and per session.")]
async fn occupancy(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &OccupancyOut::from(state.attendance.occupancy(&actor).await?))
}

#[utoipa::path(get, path = "/api/v1/gyms/current", tag = "gyms", params(GymHeader),
    responses((status = 200, body = GymOut), TenantErrors), description = "The gym named by X-Gym-ID.")]
async fn current(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &GymOut::from(state.gyms.current(&actor).await?))
}

#[utoipa::path(patch, path = "/api/v1/gyms/current", tag = "gyms", params(GymHeader), request_body = GymPatchIn,
    responses((status = 200, body = GymOut), TenantErrors),
    description = "Change the gym's name, IANA time zone, address or booking window (admin).")]
async fn update_current(state: State, Tenant(actor): Tenant, body: Body<GymPatchIn>) -> Result<HttpResponse, ApiError> {
    let patch = body.parse_as(&actor, policy::MANAGE_GYM)?;
    json(StatusCode::OK, &GymOut::from(state.gyms.update_current(&actor, patch.try_into()?).await?))
}

#[utoipa::path(get, path = "/api/v1/members", tag = "gyms", params(GymHeader, MembersQuery),
    responses((status = 200, body = [MemberOut]), TenantErrors), description = "Members of the gym (staff).")]
async fn members(state: State, Tenant(actor): Tenant, q: Query<MembersQuery>) -> Result<HttpResponse, ApiError> {
    let q = q.parse_as(&actor, policy::SEE_MEMBERS)?;
    let role = q.role.as_deref().map(Role::parse).transpose()?;
    let page = Page::new(q.skip.unwrap_or(0), q.limit.unwrap_or(100))?;
    let list = state.gyms.members(&actor, role, page).await?;
    json(StatusCode::OK, &list.into_iter().map(MemberOut::from).collect::<Vec<_>>())
}

#[utoipa::path(post, path = "/api/v1/members", tag = "gyms", params(GymHeader), request_body = MemberIn,
    responses((status = 201, body = MembershipOut), TenantErrors, UserNotFound, AlreadyMember),
    description = "Add a user (admin; only an owner grants admin/owner).")]
async fn add_member(state: State, Tenant(actor): Tenant, body: Body<MemberIn>) -> Result<HttpResponse, ApiError> {
    let body = body.parse_as(&actor, policy::MANAGE_MEMBERS)?;
    let m = state.gyms.add_member(&actor, UserId(body.user_id), body.role).await?;
    json(StatusCode::CREATED, &MembershipOut::from(m))
}

#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "gyms", params(GymHeader, ("user_id" = i64, Path)),
    request_body = RoleIn, responses((status = 200, body = MembershipOut), TenantErrors, UserNotFound, LastOwner),
    description = "Change a member's role (admin; only an owner grants admin/owner).")]
async fn set_role(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    body: Body<RoleIn>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId(id.parse_as(&actor, policy::MANAGE_MEMBERS)?);
    let m = state.gyms.set_role(&actor, user, body.parse()?.role).await?;
    json(StatusCode::OK, &MembershipOut::from(m))
}

#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "gyms", params(GymHeader, ("user_id" = i64, Path)),
    responses((status = 204), TenantErrors, UserNotFound, LastOwner),
    description = "Remove a member (admin), or leave the gym (any member, own id); the last owner stays.")]
async fn remove_member(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    state.gyms.remove_member(&actor, UserId(id.parse()?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
