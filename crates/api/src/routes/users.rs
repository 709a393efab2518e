//! `/users`: the caller's profile and gyms, and users as seen from a gym.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::UserId;
use domain::users::ProfilePatch;

use crate::auth::Caller;
use crate::body::Body;
use crate::cache_keys as keys;
use crate::dto::{AuthErrors, GymHeader, TenantErrors, UserNotFound};
use crate::dto::{GymOut, GymWithRoleOut, ProfileIn, UserOut};
use crate::error::ApiError;
use crate::params::PathId;
use crate::respond::{Slot, cached_json, json};
use crate::state::State;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users/me").route(web::get().to(me)).route(web::patch().to(update_me)))
        .service(web::resource("/users/me/gyms").route(web::get().to(my_gyms)))
        .service(web::resource("/users/me/dashboard-summary").route(web::get().to(super::attendance::dashboard)))
        .service(web::resource("/users/{user_id}").route(web::get().to(user)));
}

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", responses((status = 200, body = UserOut), AuthErrors),
    description = "The caller's profile (created on the first request of a new sub).")]
async fn me(state: State, caller: Caller) -> Result<HttpResponse, ApiError> {
    cached_json(&state, Slot::Key(keys::user(caller.user_id)), async {
        Ok(UserOut::from(state.users.me(caller.user_id).await?))
    })
    .await
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", request_body = ProfileIn,
    responses((status = 200, body = UserOut), AuthErrors), description = "Change the caller's name and/or phone.")]
async fn update_me(state: State, caller: Caller, body: Body<ProfileIn>) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let user = state.users.update_me(caller.user_id, ProfilePatch { name: body.name, phone: body.phone }).await?;
    json(StatusCode::OK, &UserOut::from(user))
}

#[utoipa::path(get, path = "/api/v1/users/me/gyms", tag = "users",
    responses((status = 200, body = [GymWithRoleOut]), AuthErrors), description = "The caller's gyms with their role.")]
async fn my_gyms(state: State, caller: Caller) -> Result<HttpResponse, ApiError> {
    let gyms = state.gyms.my_gyms(caller.user_id).await?;
    let out: Vec<GymWithRoleOut> =
        gyms.into_iter().map(|(g, r)| GymWithRoleOut { gym: GymOut::from(g), role: r.as_str() }).collect();
    json(StatusCode::OK, &out)
}

#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users", params(GymHeader, ("user_id" = i64, Path)),
    responses((status = 200, body = UserOut), TenantErrors, UserNotFound),
    description = "A user of this gym: oneself, or anyone for staff.")]
async fn user(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    let user = state.users.user_in_gym(&actor, UserId(id.parse()?)).await?;
    json(StatusCode::OK, &UserOut::from(user))
}
