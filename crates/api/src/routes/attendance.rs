//! `/attendance`: QR codes, the front-desk check-in, and a member's attendance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::cache::keys;

use crate::app::{Slot, State, cached_json, json};
use crate::dto::{CheckInIn, CheckInOut, DashboardOut, HistoryItemOut, LastAttendanceOut, PageIn, QrOut, SessionOut};
use crate::error::{ApiError, Lang};
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/attendance/my-qr").route(web::get().to(my_qr)))
        .service(web::resource("/attendance/my-qr/rotate").route(web::post().to(rotate_qr)))
        .service(web::resource("/attendance/check-in").route(web::post().to(check_in)))
        .service(web::resource("/attendance/me/last").route(web::get().to(last)))
        .service(web::resource("/attendance/me/history").route(web::get().to(history)));
}

async fn my_qr(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let qr_code = state.attendance.my_qr(actor.user_id).await?;
    json(StatusCode::OK, &QrOut { user_id: actor.user_id.0, qr_code })
}

async fn rotate_qr(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let qr_code = state.attendance.rotate_qr(actor.user_id).await?;
    json(StatusCode::OK, &QrOut { user_id: actor.user_id.0, qr_code })
}

async fn check_in(
    req: HttpRequest,
    state: State,
    Tenant(actor): Tenant,
    body: web::Json<CheckInIn>,
) -> Result<HttpResponse, ApiError> {
    let result = state.attendance.check_in(&actor, &body.qr_code, body.session_id).await;
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

async fn last(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    cached_json(&state, Slot::Key(keys::last_attendance(actor.user_id, actor.gym_id)), async {
        Ok(LastAttendanceOut { last_attendance: state.attendance.last_attendance(&actor).await? })
    })
    .await
}

async fn history(state: State, Tenant(actor): Tenant, q: web::Query<PageIn>) -> Result<HttpResponse, ApiError> {
    let list = state.attendance.history(&actor, q.page()?).await?;
    let out: Vec<HistoryItemOut> =
        list.into_iter().map(|(s, at)| HistoryItemOut { session: SessionOut::from(s), attendance_time: at }).collect();
    json(StatusCode::OK, &out)
}

/// `GET /users/me/dashboard-summary` (registered with the user routes).
pub async fn dashboard(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    cached_json(&state, Slot::Key(keys::dashboard_summary(actor.user_id, actor.gym_id)), async {
        Ok(DashboardOut::from(state.attendance.dashboard(&actor).await?))
    })
    .await
}
