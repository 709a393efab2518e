//! `/schedule`: classes, sessions and bookings. The class list and single
//! sessions are cached reads; the domain invalidates them on every write.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use domain::schedule::BookingRequest;
use domain::{ClassId, RecurrenceId, SessionId, policy};

use crate::body::Body;
use crate::cache_keys as keys;
use crate::dto::{
    BookingConflict, BookingNotOpen, ClassNotFound, ClassOrInstructorNotFound, ClassOrTrainerNotFound, GymHeader,
    InstructorNotFound, RecurrenceNotFound, SessionNotFound, SessionOrPlaceNotFound, TenantErrors,
};
use crate::dto::{
    BookingOut, ClassIn, ClassOut, ClassPatchIn, DateRangeIn, DryRunOut, PageIn, ParticipationOut, RecurrenceIn,
    RecurrenceOut, RegisterIn, RegisterQueryIn, SessionIn, SessionOut, WaitlistEntryOut,
};
use crate::error::ApiError;
use crate::params::{PathId, PathIds, Query};
use crate::respond::{Slot, cached_json_at, json};
use crate::state::State;
use crate::tenant::{AtGym, Tenant};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/schedule/classes").route(web::get().to(classes)).route(web::post().to(create_class)))
        .service(
            web::resource("/schedule/classes/{id}")
                .route(web::get().to(class))
                .route(web::patch().to(update_class))
                .route(web::delete().to(delete_class)),
        )
        .service(
            web::resource("/schedule/classes/{id}/recurrences")
                .route(web::get().to(recurrences))
                .route(web::post().to(create_recurrence)),
        )
        .service(web::resource("/schedule/classes/{id}/recurrences/{rid}").route(web::delete().to(stop_recurrence)))
        .service(
            web::resource("/schedule/sessions").route(web::get().to(sessions)).route(web::post().to(create_session)),
        )
        .service(web::resource("/schedule/sessions/{id}").route(web::get().to(session)))
        .service(web::resource("/schedule/sessions/{id}/cancel").route(web::post().to(cancel_session)))
        .service(
            web::resource("/schedule/sessions/{id}/register")
                .route(web::post().to(register))
                .route(web::delete().to(unregister)),
        )
        .service(web::resource("/schedule/sessions/{id}/participants").route(web::get().to(participants)))
        .service(web::resource("/schedule/sessions/{id}/waitlist").route(web::get().to(waitlist)));
}

#[utoipa::path(get, path = "/api/v1/schedule/classes", tag = "schedule", params(GymHeader, PageIn),
    responses((status = 200, body = [ClassOut]), TenantErrors), description = "Active classes (cached).")]
async fn classes(state: State, at: AtGym, q: Query<PageIn>) -> Result<HttpResponse, ApiError> {
    let page = at.valid(q.parse().and_then(|q| Ok(q.page()?))).await?;
    let slot = Slot::Field(keys::classes(at.gym_id), format!("{}/{}", page.skip, page.limit));
    let state = &state;
    cached_json_at(state, &at, slot, |actor| async move {
        Ok(state.schedule.classes(&actor, page).await?.into_iter().map(ClassOut::from).collect::<Vec<_>>())
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/schedule/classes", tag = "schedule", params(GymHeader), request_body = ClassIn,
    responses((status = 201, body = ClassOut), TenantErrors, InstructorNotFound),
    description = "Create a class (staff); duration 1..=600, capacity 1..=1000.")]
async fn create_class(state: State, Tenant(actor): Tenant, body: Body<ClassIn>) -> Result<HttpResponse, ApiError> {
    let class = body.parse_as(&actor, policy::MANAGE_SCHEDULE)?.try_into()?;
    json(StatusCode::CREATED, &ClassOut::from(state.schedule.create_class(&actor, class).await?))
}

#[utoipa::path(get, path = "/api/v1/schedule/classes/{id}", tag = "schedule", params(GymHeader, ("id" = i64, Path)),
    responses((status = 200, body = ClassOut), TenantErrors, ClassNotFound), description = "One class.")]
async fn class(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &ClassOut::from(state.schedule.class(&actor, ClassId(id.parse()?)).await?))
}

#[utoipa::path(patch, path = "/api/v1/schedule/classes/{id}", tag = "schedule", params(GymHeader, ("id" = i64, Path)),
    request_body = ClassPatchIn, responses((status = 200, body = ClassOut), TenantErrors, ClassOrInstructorNotFound),
    description = "Change a class (staff).")]
async fn update_class(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    body: Body<ClassPatchIn>,
) -> Result<HttpResponse, ApiError> {
    let id = ClassId(id.parse_as(&actor, policy::MANAGE_SCHEDULE)?);
    let patch = body.parse()?.try_into()?;
    let class = state.schedule.update_class(&actor, id, patch).await?;
    json(StatusCode::OK, &ClassOut::from(class))
}

#[utoipa::path(delete, path = "/api/v1/schedule/classes/{id}", tag = "schedule", params(GymHeader, ("id" = i64, Path)),
    responses((status = 204), TenantErrors, ClassNotFound), description = "Deactivate a class (admin).")]
async fn delete_class(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    state.schedule.delete_class(&actor, ClassId(id.parse_as(&actor, policy::DELETE_CLASS)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/schedule/sessions", tag = "schedule", params(GymHeader, DateRangeIn),
    responses((status = 200, body = [SessionOut]), TenantErrors),
    description = "Sessions starting within the dates (UTC, or the gym's wall clock with tz=gym; inclusive, at most 62 days), cancelled ones included (cached).")]
async fn sessions(state: State, at: AtGym, q: Query<DateRangeIn>) -> Result<HttpResponse, ApiError> {
    let today = state.clock.now().date();
    let (range, page, dates) =
        at.valid(q.parse().and_then(|q| Ok((q.range(today)?, q.page()?, q.dates_in()?)))).await?;
    let field = format!("{}/{}/{}/{}/{dates:?}", range.from().date(), range.through().date(), page.skip, page.limit);
    let state = &state;
    cached_json_at(state, &at, Slot::Field(keys::sessions(at.gym_id), field), |actor| async move {
        Ok(state
            .schedule
            .sessions(&actor, range, dates, page)
            .await?
            .into_iter()
            .map(SessionOut::from)
            .collect::<Vec<_>>())
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/schedule/sessions", tag = "schedule", params(GymHeader), request_body = SessionIn,
    responses((status = 201, body = SessionOut), TenantErrors, ClassOrTrainerNotFound),
    description = "Schedule a session (staff); end defaults to start + duration.")]
async fn create_session(state: State, Tenant(actor): Tenant, body: Body<SessionIn>) -> Result<HttpResponse, ApiError> {
    let new = body.parse_as(&actor, policy::MANAGE_SCHEDULE)?.try_into()?;
    json(StatusCode::CREATED, &SessionOut::from(state.schedule.create_session(&actor, new).await?))
}

#[utoipa::path(get, path = "/api/v1/schedule/sessions/{id}", tag = "schedule", params(GymHeader, ("id" = i64, Path)),
    responses((status = 200, body = SessionOut), TenantErrors, SessionNotFound), description = "One session (cached).")]
async fn session(state: State, at: AtGym, id: PathId) -> Result<HttpResponse, ApiError> {
    let id = SessionId(at.valid(id.parse()).await?);
    let state = &state;
    cached_json_at(state, &at, Slot::Key(keys::session(at.gym_id, id)), |actor| async move {
        Ok(SessionOut::from(state.schedule.session(&actor, id).await?))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/schedule/classes/{id}/recurrences", tag = "schedule",
    params(GymHeader, ("id" = i64, Path)), request_body = RecurrenceIn,
    responses((status = 201, body = RecurrenceOut), TenantErrors, ClassOrTrainerNotFound),
    description = "Start a series (staff): a session of the class at the local time, in the gym's time zone, on \
        each of the weekdays from starts_on to until (inclusive, at most 366 days), from now on. A local time a \
        daylight-saving change skips moves forward by the gap; a repeated one is the first.")]
async fn create_recurrence(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    body: Body<RecurrenceIn>,
) -> Result<HttpResponse, ApiError> {
    let class = ClassId(id.parse_as(&actor, policy::MANAGE_SCHEDULE)?);
    let new = body.parse()?.try_into()?;
    json(StatusCode::CREATED, &RecurrenceOut::from(state.recurrences.create(&actor, class, new).await?))
}

#[utoipa::path(get, path = "/api/v1/schedule/classes/{id}/recurrences", tag = "schedule",
    params(GymHeader, ("id" = i64, Path)),
    responses((status = 200, body = [RecurrenceOut]), TenantErrors, ClassNotFound),
    description = "The series of a class, stopped ones included (staff).")]
async fn recurrences(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    let class = ClassId(id.parse_as(&actor, policy::MANAGE_SCHEDULE)?);
    let list = state.recurrences.list(&actor, class).await?;
    json(StatusCode::OK, &list.into_iter().map(RecurrenceOut::from).collect::<Vec<_>>())
}

#[utoipa::path(delete, path = "/api/v1/schedule/classes/{id}/recurrences/{rid}", tag = "schedule",
    params(GymHeader, ("id" = i64, Path), ("rid" = i64, Path)),
    responses((status = 204), TenantErrors, RecurrenceNotFound),
    description = "Stop a series (staff): its future sessions nobody booked are removed, booked ones stay.")]
async fn stop_recurrence(state: State, Tenant(actor): Tenant, ids: PathIds) -> Result<HttpResponse, ApiError> {
    let (class, rid) = ids.parse_as(&actor, policy::MANAGE_SCHEDULE)?;
    state.recurrences.stop(&actor, ClassId(class), RecurrenceId(rid)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/schedule/sessions/{id}/cancel", tag = "schedule",
    params(GymHeader, ("id" = i64, Path)), responses((status = 200, body = SessionOut), TenantErrors, SessionNotFound),
    description = "Cancel a session (staff).")]
async fn cancel_session(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    let id = SessionId(id.parse_as(&actor, policy::MANAGE_SCHEDULE)?);
    json(StatusCode::OK, &SessionOut::from(state.schedule.cancel_session(&actor, id).await?))
}

#[utoipa::path(post, path = "/api/v1/schedule/sessions/{id}/register", tag = "schedule",
    params(GymHeader, ("id" = i64, Path), RegisterQueryIn),
    request_body(content = Option<RegisterIn>, description = "Optional: `{\"waitlist\": true}` joins the waitlist of a full session."),
    responses((status = 201, body = BookingOut),
        (status = 200, body = DryRunOut, description = "`dry_run=true`: what the booking would do; nothing changed"),
        TenantErrors, BookingNotOpen, SessionNotFound, BookingConflict),
    description = "Book a place, or join the waitlist of a full session. In a gym that requires passes the \
        booking uses the member's best usable pass and takes its credit.")]
async fn register(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    q: Query<RegisterQueryIn>,
    body: Body<RegisterIn>,
) -> Result<HttpResponse, ApiError> {
    let id = SessionId(id.parse()?);
    let dry_run = q.parse()?.dry_run.unwrap_or(false);
    let ask = BookingRequest { waitlist: body.parse_or_default()?.waitlist, dry_run };
    if !dry_run {
        return json(StatusCode::CREATED, &BookingOut::from(state.schedule.register(&actor, id, ask).await?));
    }
    let answer = match state.schedule.register(&actor, id, ask).await {
        Ok(b) => DryRunOut { ok: true, code: None, pass_id: b.participation.pass_id },
        // The booking's own refusals are the answer; the rest (an unknown session, a
        // caller who is no member, the database) are errors as for a booking.
        Err(e) if domain::schedule::is_booking_refusal(&e) => {
            DryRunOut { ok: false, code: Some(e.code()), pass_id: None }
        }
        Err(e) => return Err(e.into()),
    };
    json(StatusCode::OK, &answer)
}

#[utoipa::path(delete, path = "/api/v1/schedule/sessions/{id}/register", tag = "schedule",
    params(GymHeader, ("id" = i64, Path)), responses((status = 204), TenantErrors, SessionOrPlaceNotFound),
    description = "Give a booked place back (it goes to the head of the waitlist), or leave the waitlist.")]
async fn unregister(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    state.schedule.unregister(&actor, SessionId(id.parse()?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/schedule/sessions/{id}/waitlist", tag = "schedule",
    params(GymHeader, ("id" = i64, Path), PageIn),
    responses((status = 200, body = [WaitlistEntryOut]), TenantErrors, SessionNotFound),
    description = "The session's waitlist, head first (staff).")]
async fn waitlist(state: State, Tenant(actor): Tenant, id: PathId, q: Query<PageIn>) -> Result<HttpResponse, ApiError> {
    let id = SessionId(id.parse_as(&actor, policy::MANAGE_SCHEDULE)?);
    let queue = state.schedule.waitlist(&actor, id, q.parse()?.page()?).await?;
    let entries: Vec<WaitlistEntryOut> = queue
        .into_iter()
        .map(|(p, position)| WaitlistEntryOut { participation: p.into(), waitlist_position: position })
        .collect();
    json(StatusCode::OK, &entries)
}

#[utoipa::path(get, path = "/api/v1/schedule/sessions/{id}/participants", tag = "schedule",
    params(GymHeader, ("id" = i64, Path), PageIn),
    responses((status = 200, body = [ParticipationOut]), TenantErrors, SessionNotFound),
    description = "Every participation of a session (staff).")]
async fn participants(
    state: State,
    Tenant(actor): Tenant,
    id: PathId,
    q: Query<PageIn>,
) -> Result<HttpResponse, ApiError> {
    let id = SessionId(id.parse_as(&actor, policy::MANAGE_SCHEDULE)?);
    let list = state.schedule.participants(&actor, id, q.parse()?.page()?).await?;
    json(StatusCode::OK, &list.into_iter().map(ParticipationOut::from).collect::<Vec<_>>())
}
