//! The documented failures of the routes, each set written once: a route lists the
//! sets that apply to it (`responses((status = 200, body = X), TenantErrors,
//! ClassNotFound)`), and the codes in the document are the ones the handlers answer.
//! Where a route answers more codes under a status a set already has, its own set
//! comes later in the list and replaces that status (utoipa keeps the last).

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{RefOr, Response};

use super::common::ErrorBody;

/// The failures every authenticated route may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AuthErrors {
    /// missing_token, invalid_token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// insufficient_scope (mutations without resource:write), not_a_member, forbidden
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// validation_error
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// internal_error (nothing a client sent: the cause is logged with the request id)
    #[response(status = 500)]
    Internal(ErrorBody),
    /// database_unavailable
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// [`AuthErrors`] and the `400` of a gym-scoped route's `X-Gym-ID` header.
pub struct TenantErrors;

impl IntoResponses for TenantErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = AuthErrors::responses();
        all.extend(GymHeaderErrors::responses());
        all
    }
}

/// One single-status set per line: name, status, the codes it stands for.
macro_rules! error_responses {
    ($($name:ident = $status:tt $codes:tt;)*) => {$(
        #[doc = concat!("`", stringify!($status), "`: ", $codes, ".")]
        #[derive(IntoResponses)]
        #[response(status = $status, description = $codes)]
        pub struct $name(#[allow(dead_code)] ErrorBody);
    )*};
}

error_responses! {
    GymHeaderErrors = 400 "gym_id_required, invalid_gym_id";
    BookingNotOpen = 400 "gym_id_required, invalid_gym_id, session_not_open, booking_not_open";
    CheckInRefused = 400 "gym_id_required, invalid_gym_id; refused check-ins: invalid_qr, not_a_member, \
        session_not_found, session_outside_window, no_session_in_window, already_checked_in";
    UserNotFound = 404 "user_not_found";
    ClassNotFound = 404 "class_not_found";
    SessionNotFound = 404 "session_not_found";
    SessionOrPlaceNotFound = 404 "session_not_found, not_registered (the caller holds no place in it, nor waits for one)";
    EventNotFound = 404 "event_not_found";
    WebhookNotFound = 404 "webhook_not_found";
    DeliveryNotFound = 404 "delivery_not_found";
    PlanNotFound = 404 "plan_not_found";
    PassNotFound = 404 "pass_not_found";
    InvalidSignature = 401 "invalid_signature (no secret made for the gym, a missing or malformed header, a timestamp more than five minutes away, or no v1 made with a secret that signs now)";
    PaymentEventRefused = 404 "user_not_found (not a member of the gym), plan_not_found";
    MemberOrPlanNotFound = 404 "user_not_found (not a member of the gym), plan_not_found";
    RecurrenceNotFound = 404 "class_not_found, recurrence_not_found";
    InstructorNotFound = 404 "user_not_found (instructor not a member of the gym)";
    ClassOrInstructorNotFound = 404 "class_not_found, user_not_found (instructor not a member of the gym)";
    ClassOrTrainerNotFound = 404 "class_not_found (missing, another gym's or deleted), \
        user_not_found (trainer not a member)";
    AlreadyMember = 409 "already_member";
    LastOwner = 409 "last_owner";
    BookingConflict = 409 "already_registered, session_full, already_waitlisted, waitlist_limit, no_valid_pass, weekly_limit_reached";
    CursorExpired = 410 "cursor_expired (the facts after the cursor were purged)";
}
