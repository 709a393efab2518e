//! `/attendance`: QR codes, the front-desk check-in, and a member's attendance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use domain::{SessionId, policy};

use crate::body::Body;
use crate::cache_keys as keys;
use crate::dto::{CheckInIn, CheckInOut, DashboardOut, HistoryItemOut, LastAttendanceOut, PageIn, QrOut, SessionOut};
use crate::dto::{CheckInRefused, GymHeader, TenantErrors, UtcTime};
use crate::error::{ApiError, Lang};
use crate::params::Query;
use crate::respond::{Slot, cached_json_at, json};
use crate::state::State;
use crate::tenant::{AtGym, Tenant};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/attendance/my-qr").route(web::get().to(my_qr)))
        .service(web::resource("/attendance/my-qr/rotate").route(web::post().to(rotate_qr)))
        .service(web::resource("/attendance/check-in").route(web::post().to(check_in)))
        .service(web::resource("/attendance/me/last").route(web::get().to(last)))
        .service(web::resource("/attendance/me/history").route(web::get().to(history)));
}

#[utoipa::path(get, path = "/api/v1/attendance/my-qr", tag = "attendance", params(GymHeader),
    responses((status = 200, body = QrOut), TenantErrors), description = "The caller's QR code, stable until rotated.")]
async fn my_qr(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let qr_code = state.attendance.my_qr(actor.user_id).await?;
    json(StatusCode::OK, &QrOut { user_id: actor.user_id.0, qr_code })
}

#[utoipa::path(post, path = "/api/v1/attendance/my-qr/rotate", tag = "attendance", params(GymHeader),
    responses((status = 200, body = QrOut), TenantErrors),
    description = "A new QR code; the old one stops working at once.")]
async fn rotate_qr(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let qr_code = state.attendance.rotate_qr(actor.user_id).await?;
    json(StatusCode::OK, &QrOut { user_id: actor.user_id.0, qr_code })
}

#[utoipa::path(post, path = "/api/v1/attendance/check-in", tag = "attendance", params(GymHeader),
    request_body = CheckInIn, responses((status = 200, body = CheckInOut), TenantErrors, CheckInRefused),
    description = "Front-desk check-in from a member's QR code (staff).")]
async fn check_in(
    req: HttpRequest,
    state: State,
    Tenant(actor): Tenant,
    body: Body<CheckInIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse_as(&actor, policy::CHECK_IN)?;
    let result = state.check_ins.check_in(actor, body.qr_code, body.session_id.map(SessionId)).await;
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.code(),
    };
    metrics::counter!("gymapi_checkins_total", "result" => label).increment(1);
    let message = match Lang::of(&req) {
        Lang::En => "Check-in completed successfully",
        Lang::Es => "Check-in realizado correctamente",
    };
    json(StatusCode::OK, &CheckInOut::new(result.map_err(ApiError::check_in)?, message))
}

#[utoipa::path(get, path = "/api/v1/attendance/me/last", tag = "attendance", params(GymHeader),
    responses((status = 200, body = LastAttendanceOut), TenantErrors),
    description = "The caller's latest attendance (cached).")]
async fn last(state: State, at: AtGym) -> Result<HttpResponse, ApiError> {
    let state = &state;
    cached_json_at(state, &at, Slot::Key(keys::last_attendance(at.user_id, at.gym_id)), |actor| async move {
        let last = state.attendance.last_attendance(&actor).await?;
        Ok(LastAttendanceOut { last_attendance: last.map(UtcTime::from) })
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/attendance/me/history", tag = "attendance", params(GymHeader, PageIn),
    responses((status = 200, body = [HistoryItemOut]), TenantErrors),
    description = "The caller's attended sessions, newest first.")]
async fn history(state: State, Tenant(actor): Tenant, q: Query<PageIn>) -> Result<HttpResponse, ApiError> {
    let list = state.attendance.history(&actor, q.parse()?.page()?).await?;
    let out: Vec<HistoryItemOut> = list
        .into_iter()
        .map(|(s, at)| HistoryItemOut { session: SessionOut::from(s), attendance_time: at.into() })
        .collect();
    json(StatusCode::OK, &out)
}

/// `GET /users/me/dashboard-summary` (registered with the user routes).
#[utoipa::path(get, path = "/api/v1/users/me/dashboard-summary", tag = "attendance", params(GymHeader),
    responses((status = 200, body = DashboardOut), TenantErrors),
    description = "The caller's attendance figures and next 5 registrations (cached).")]
pub async fn dashboard(state: State, at: AtGym) -> Result<HttpResponse, ApiError> {
    let slot = Slot::Member(keys::dashboards(at.gym_id), keys::dashboard_field(at.user_id));
    let state = &state;
    cached_json_at(state, &at, slot, |actor| async move {
        Ok(DashboardOut::from(state.attendance.dashboard(&actor).await?))
    })
    .await
}
