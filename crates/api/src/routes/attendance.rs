//! `/attendance`: QR codes, the front-desk check-in, and a member's attendance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use domain::{SessionId, policy};

use infra::db::idempotency::Hold;

use crate::body::Body;
use crate::cache_keys as keys;
use crate::checkins::{self, Keyed};
use crate::dto::{
    CalendarOut, CheckInIn, CheckInOut, DashboardOut, HistoryItemOut, LastAttendanceOut, PageIn, QrOut, RefusalOut,
    RefusalsIn, SessionOut,
};
use crate::dto::{CheckInRefused, CursorExpired, GymHeader, TenantErrors, UtcTime};
use crate::error::{ApiError, Lang};
use crate::params::Query;
use crate::respond::{Slot, cached_json_at, json};
use crate::state::State;
use crate::tenant::{AtGym, Tenant};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/attendance/my-qr").route(web::get().to(my_qr)))
        .service(web::resource("/attendance/my-qr/rotate").route(web::post().to(rotate_qr)))
        .service(web::resource("/attendance/check-in").route(web::post().to(check_in)))
        .service(web::resource("/attendance/refusals").route(web::get().to(refusals)))
        .service(web::resource("/attendance/stream").route(web::get().to(stream)))
        .service(web::resource("/attendance/me/last").route(web::get().to(last)))
        .service(web::resource("/attendance/me/history").route(web::get().to(history)))
        .service(web::resource("/attendance/calendar").route(web::get().to(calendar)))
        .service(web::resource("/attendance/calendar/rotate").route(web::post().to(rotate_calendar)))
        .service(web::resource("/calendar/{file}").route(web::get().to(feed)));
}

/// The feed's URL, as the caller reached this server.
fn feed_url(req: &HttpRequest, token: &str) -> String {
    let info = req.connection_info();
    format!("{}://{}/api/v1/calendar/{token}.ics", info.scheme(), info.host())
}

#[utoipa::path(get, path = "/api/v1/attendance/stream", tag = "attendance",
    params(GymHeader, ("Last-Event-ID" = Option<i64>, Header,
        description = "The `id` of the last event received: the stream resumes after it, missing nothing.")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Server-Sent Events, one per check-in (`event: checkin.succeeded`) and refused scan \
            (`event: checkin.refused`), in commit order. `id` is the fact's number in the change feed; `data` \
            is `{id, seq, type, created_at, gym_id, data}`, the envelope webhooks deliver. A comment line \
            every 15 s keeps idle connections open."),
        TenantErrors, CursorExpired),
    description = "The gym's live attendance for the desk screen (staff), from every instance, within about \
        a second of the commit. Without `Last-Event-ID` it starts at what happens next; with it, after that \
        event (410 cursor_expired when what follows it is no longer kept; 422 when it is not a number the \
        stream gave). A stream ends after 30 minutes, or when the instance shuts down: reconnect with the \
        last id.")]
async fn stream(state: State, Tenant(actor): Tenant, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    actor.require(policy::WATCH_ATTENDANCE)?;
    // An empty value is no value (EventSource's own before any event).
    let last_seen = match req.headers().get("Last-Event-ID").map(|v| v.to_str().map(str::trim)) {
        None | Some(Ok("")) => None,
        Some(v) => Some(v.ok().and_then(|s| s.parse::<i64>().ok()).ok_or_else(|| {
            domain::DomainError::validation("Last-Event-ID must be the id of an event the stream sent")
        })?),
    };
    let cursor = state.changes.live_from(&actor, last_seen).await?;
    let live =
        crate::streams::Live::new(&state.streams, state.changes.clone(), state.lifecycle.clone(), actor.gym_id, cursor);
    let body = futures_util::stream::unfold(live, |mut live| async move {
        live.next_chunk().await.map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), live))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Proxies that buffer (nginx) would hold events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

#[utoipa::path(get, path = "/api/v1/attendance/calendar", tag = "attendance", params(GymHeader),
    responses((status = 200, body = CalendarOut), TenantErrors),
    description = "The caller's calendar feed in this gym: its unguessable token and URL, made on first use.")]
async fn calendar(state: State, Tenant(actor): Tenant, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = state.calendar.token(&actor).await?;
    json(StatusCode::OK, &CalendarOut { url: feed_url(&req, &token), token })
}

#[utoipa::path(post, path = "/api/v1/attendance/calendar/rotate", tag = "attendance", params(GymHeader),
    responses((status = 200, body = CalendarOut), TenantErrors),
    description = "A new calendar token; the old URL answers 404 at once.")]
async fn rotate_calendar(state: State, Tenant(actor): Tenant, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = state.calendar.rotate(&actor).await?;
    json(StatusCode::OK, &CalendarOut { url: feed_url(&req, &token), token })
}

#[utoipa::path(get, path = "/api/v1/calendar/{file}", tag = "attendance",
    params(("file" = String, Path, description = "`{token}.ics`")),
    responses((status = 200, content_type = "text/calendar", body = String), (status = 304),
        (status = 404, body = crate::dto::ErrorBody)),
    description = "A member's sessions as an RFC 5545 calendar (public: the token is the key). \
        Answers ETag; If-None-Match with it answers 304.")]
async fn feed(state: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let file = req.match_info().get("file").unwrap_or_default();
    let Some(token) = file.strip_suffix(".ics") else { return Err(ApiError::NotFound) };
    let feed = state.calendar.feed(token).await?.ok_or(ApiError::NotFound)?;
    let text = crate::ics::render(&feed);
    let tag = crate::ics::etag(&text);
    let matched = req
        .headers()
        .get_all(actix_web::http::header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| matches!(t.trim(), "*") || t.trim().trim_start_matches("W/") == tag);
    let mut res = if matched { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((actix_web::http::header::ETAG, tag.clone()))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "private, max-age=300"));
    if matched {
        return Ok(res.finish());
    }
    Ok(res.content_type("text/calendar; charset=utf-8").body(text))
}

#[utoipa::path(get, path = "/api/v1/attendance/my-qr", tag = "attendance", params(GymHeader),
    responses((status = 200, body = QrOut), TenantErrors),
    description = "The caller's QR code: in a static gym stable until rotated; in a rotating gym the code of the \
        current 30-second step, current until `expires_at` and accepted one step more.")]
async fn my_qr(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let qr = state.attendance.my_qr(&actor).await?;
    json(StatusCode::OK, &QrOut::new(actor.user_id, qr))
}

#[utoipa::path(post, path = "/api/v1/attendance/my-qr/rotate", tag = "attendance", params(GymHeader),
    responses((status = 200, body = QrOut), TenantErrors),
    description = "A new QR code; the old one stops working at once.")]
async fn rotate_qr(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let qr = state.attendance.rotate_qr(&actor).await?;
    json(StatusCode::OK, &QrOut::new(actor.user_id, qr))
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
    let lang = Lang::of(&req);
    // The request's idempotency key goes into the batch, which keeps the answer.
    let keyed = Hold::current().map(|hold| Keyed { hold, lang });
    let result = state.check_ins.check_in(actor, body.qr_code, body.session_id.map(SessionId), keyed).await;
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.code(),
    };
    metrics::counter!("gymapi_checkins_total", "result" => label).increment(1);
    json(StatusCode::OK, &checkins::answer(result.map_err(ApiError::check_in)?, lang))
}

#[utoipa::path(get, path = "/api/v1/attendance/refusals", tag = "attendance", params(GymHeader, RefusalsIn),
    responses((status = 200, body = [RefusalOut]), TenantErrors),
    description = "Refused check-ins of the gym in the dates (admin), newest first; runs are flagged: 3 or more \
        refusals of one member's code, or 5 or more at one desk, within 5 minutes.")]
async fn refusals(state: State, Tenant(actor): Tenant, q: Query<RefusalsIn>) -> Result<HttpResponse, ApiError> {
    actor.require(policy::SEE_REFUSALS)?;
    let q = q.parse()?;
    let (range, page) = (q.range(state.clock.now().date())?, q.page()?);
    let list = state.refusals.list(&actor, range, page).await?;
    json(StatusCode::OK, &list.into_iter().map(RefusalOut::from).collect::<Vec<_>>())
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
