//! The one place where failures become HTTP: a status and a localized
//! `{"detail", "code"}` body ([`localize`] gives every error response the caller's
//! language and the contract's form). Unexpected causes are logged, never sent.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use domain::DomainError;

/// Language of the messages of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English, the default.
    En,
    /// Spanish, when the first preferred language of `Accept-Language` is `es`.
    Es,
}

impl Lang {
    /// Reads `Accept-Language` as RFC 9110 §12.5.4 does: the language range of the
    /// highest weight wins (the first of equal weights), and `q=0` is "not
    /// acceptable". Spanish when that range is `es` or `es-*`; English otherwise,
    /// including for a header that cannot be read.
    pub fn of(req: &HttpRequest) -> Self {
        // Several header lines are one comma-separated list (RFC 9110 section 5.3). Every
        // request reads this: one line, the common case, is read where it lies.
        let mut lines = req.headers().get_all(header::ACCEPT_LANGUAGE).filter_map(|v| v.to_str().ok());
        let first = lines.next().unwrap_or_default();
        let list: std::borrow::Cow<'_, str> = match lines.next() {
            None => first.into(),
            Some(second) => [first, second].into_iter().chain(lines).collect::<Vec<_>>().join(",").into(),
        };
        match preferred_language(&list) {
            Some(l) if l.eq_ignore_ascii_case("es") || l.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("es-")) => {
                Self::Es
            }
            _ => Self::En,
        }
    }
}

/// The language range of an `Accept-Language` value with the highest weight above 0
/// (the first of equal weights); `None` when no range is acceptable. An element whose
/// weight is not a valid `qvalue` is skipped, as a malformed element says nothing.
fn preferred_language(value: &str) -> Option<&str> {
    let mut best: Option<(&str, u16)> = None;
    for element in value.split(',') {
        let mut parts = element.split(';');
        let range = parts.next().unwrap_or("").trim();
        if range.is_empty() {
            continue;
        }
        let mut weight = Some(1000);
        for param in parts {
            let (name, v) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("q") {
                weight = qvalue(v.trim());
            }
        }
        match weight {
            Some(w) if w > 0 && best.is_none_or(|(_, b)| w > b) => best = Some((range, w)),
            _ => {}
        }
    }
    best.map(|(range, _)| range)
}

/// A `qvalue` (`0`, `0.5`, `1.000`, at most three decimals) in thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths =
        frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0_u16, |n, b| n * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Declares [`Code`]: each code of the contract with the variant that answers it.
macro_rules! codes {
    ($($variant:ident = $text:literal from $source:literal,)*) => {
        /// Every `code` an error body of the contract can carry, one variant each: the
        /// contract's list of failures. A test holds it against the OpenAPI document
        /// (each is documented) and against the code base (each is answered somewhere).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )*
        }

        impl Code {
            /// Every code.
            pub const ALL: &[Code] = &[$(Self::$variant),*];

            /// The snake_case text clients see.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The variant of [`DomainError`] or [`ApiError`] that answers it (what the
            /// test looks for outside this file).
            pub fn source(self) -> &'static str {
                match self {
                    $(Self::$variant => $source,)*
                }
            }
        }
    };
}

codes! {
    ValidationError = "validation_error" from "DomainError::validation",
    NotAMember = "not_a_member" from "DomainError::NotAMember",
    Forbidden = "forbidden" from "DomainError::Forbidden",
    UserNotFound = "user_not_found" from "DomainError::UserNotFound",
    AlreadyMember = "already_member" from "DomainError::AlreadyMember",
    LastOwner = "last_owner" from "DomainError::LastOwner",
    ClassNotFound = "class_not_found" from "DomainError::ClassNotFound",
    SessionNotFound = "session_not_found" from "DomainError::SessionNotFound",
    EventNotFound = "event_not_found" from "DomainError::EventNotFound",
    RecurrenceNotFound = "recurrence_not_found" from "DomainError::RecurrenceNotFound",
    AlreadyRegistered = "already_registered" from "DomainError::AlreadyRegistered",
    NotRegistered = "not_registered" from "DomainError::NotRegistered",
    SessionFull = "session_full" from "DomainError::SessionFull",
    SessionNotOpen = "session_not_open" from "DomainError::SessionNotOpen",
    BookingNotOpen = "booking_not_open" from "DomainError::BookingNotOpen",
    AlreadyWaitlisted = "already_waitlisted" from "DomainError::AlreadyWaitlisted",
    WaitlistLimit = "waitlist_limit" from "DomainError::WaitlistLimit",
    InvalidQr = "invalid_qr" from "DomainError::InvalidQr",
    SessionOutsideWindow = "session_outside_window" from "DomainError::SessionOutsideWindow",
    NoSessionInWindow = "no_session_in_window" from "DomainError::NoSessionInWindow",
    AlreadyCheckedIn = "already_checked_in" from "DomainError::AlreadyCheckedIn",
    IdempotencyKeyInProgress = "idempotency_key_in_progress" from "DomainError::IdempotencyKeyInProgress",
    CursorExpired = "cursor_expired" from "DomainError::CursorExpired",
    WebhookNotFound = "webhook_not_found" from "DomainError::WebhookNotFound",
    DeliveryNotFound = "delivery_not_found" from "DomainError::DeliveryNotFound",
    PlanNotFound = "plan_not_found" from "DomainError::PlanNotFound",
    PassNotFound = "pass_not_found" from "DomainError::PassNotFound",
    NoValidPass = "no_valid_pass" from "DomainError::NoValidPass",
    WeeklyLimitReached = "weekly_limit_reached" from "DomainError::WeeklyLimitReached",
    InvalidSignature = "invalid_signature" from "DomainError::InvalidSignature",
    IdempotencyKeyReused = "idempotency_key_reused" from "ApiError::IdempotencyKeyReused",
    DatabaseUnavailable = "database_unavailable" from "DomainError::Unavailable",
    InternalError = "internal_error" from "DomainError::internal",
    MissingToken = "missing_token" from "ApiError::MissingToken",
    InvalidToken = "invalid_token" from "ApiError::InvalidToken",
    InsufficientScope = "insufficient_scope" from "ApiError::InsufficientScope",
    GymIdRequired = "gym_id_required" from "ApiError::GymIdRequired",
    InvalidGymId = "invalid_gym_id" from "ApiError::InvalidGymId",
    NotFound = "not_found" from "ApiError::NotFound",
    MethodNotAllowed = "method_not_allowed" from "ApiError::MethodNotAllowed",
    PayloadTooLarge = "payload_too_large" from "ApiError::PayloadTooLarge",
    UnsupportedContentEncoding = "unsupported_content_encoding" from "ApiError::UnsupportedEncoding",
    MalformedRequest = "malformed_request" from "ApiError::MalformedRequest",
}

/// Every failure an HTTP route can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A rule of the domain said no.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No `Authorization` header.
    #[error("missing token")]
    MissingToken,
    /// A token that does not verify.
    #[error("invalid token")]
    InvalidToken,
    /// A mutation without the `resource:write` scope.
    #[error("insufficient scope")]
    InsufficientScope,
    /// A gym-scoped route without `X-Gym-ID`.
    #[error("gym id required")]
    GymIdRequired,
    /// An `X-Gym-ID` that is not a positive integer.
    #[error("invalid gym id")]
    InvalidGymId,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A body over 64 KiB.
    #[error("payload too large")]
    PayloadTooLarge,
    /// A request body in a `Content-Encoding` (gzip, br, zstd, …): bodies are taken
    /// as sent, never inflated, so a small compressed body cannot grow in memory.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    /// A body whose framing is broken: a bad chunk, or fewer bytes than its
    /// `Content-Length` before the client stopped sending.
    #[error("malformed request")]
    MalformedRequest,
    /// An `Idempotency-Key` the caller already sent with another request (another
    /// body, route or gym) within the day it is kept.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// A check-in the rules refused: contract §5 answers every such failure with
    /// 400, including `not_a_member` and `session_not_found` that are 403/404 elsewhere.
    #[error(transparent)]
    CheckInRefused(DomainError),
}

impl ApiError {
    /// Wraps a failure of the check-in route (see [`ApiError::CheckInRefused`]).
    pub fn check_in(e: DomainError) -> Self {
        match e {
            DomainError::Forbidden
            | DomainError::Unavailable
            | DomainError::Internal(_)
            | DomainError::Validation(_)
            | DomainError::IdempotencyKeyInProgress
            | DomainError::CursorExpired => Self::Domain(e),
            refused => Self::CheckInRefused(refused),
        }
    }
}

impl ApiError {
    /// A `422 validation_error` with a message.
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::Domain(DomainError::Validation(msg.into()))
    }

    /// The stable code of the contract.
    pub fn code(&self) -> Code {
        use DomainError as D;
        match self {
            Self::Domain(e) | Self::CheckInRefused(e) => match e {
                D::Validation(_) => Code::ValidationError,
                D::NotAMember => Code::NotAMember,
                D::Forbidden => Code::Forbidden,
                D::UserNotFound => Code::UserNotFound,
                D::AlreadyMember => Code::AlreadyMember,
                D::LastOwner => Code::LastOwner,
                D::ClassNotFound => Code::ClassNotFound,
                D::SessionNotFound => Code::SessionNotFound,
                D::EventNotFound => Code::EventNotFound,
                D::RecurrenceNotFound => Code::RecurrenceNotFound,
                D::AlreadyRegistered => Code::AlreadyRegistered,
                D::NotRegistered => Code::NotRegistered,
                D::SessionFull => Code::SessionFull,
                D::SessionNotOpen | D::BookingClosed { .. } => Code::SessionNotOpen,
                D::BookingNotOpen { .. } => Code::BookingNotOpen,
                D::AlreadyWaitlisted => Code::AlreadyWaitlisted,
                D::WaitlistLimit => Code::WaitlistLimit,
                D::InvalidQr => Code::InvalidQr,
                D::SessionOutsideWindow => Code::SessionOutsideWindow,
                D::NoSessionInWindow => Code::NoSessionInWindow,
                D::AlreadyCheckedIn => Code::AlreadyCheckedIn,
                D::IdempotencyKeyInProgress => Code::IdempotencyKeyInProgress,
                D::CursorExpired => Code::CursorExpired,
                D::WebhookNotFound => Code::WebhookNotFound,
                D::DeliveryNotFound => Code::DeliveryNotFound,
                D::PlanNotFound => Code::PlanNotFound,
                D::PassNotFound => Code::PassNotFound,
                D::NoValidPass => Code::NoValidPass,
                D::WeeklyLimitReached => Code::WeeklyLimitReached,
                D::InvalidSignature => Code::InvalidSignature,
                D::Unavailable => Code::DatabaseUnavailable,
                D::Internal(_) => Code::InternalError,
            },
            Self::MissingToken => Code::MissingToken,
            Self::InvalidToken => Code::InvalidToken,
            Self::InsufficientScope => Code::InsufficientScope,
            Self::GymIdRequired => Code::GymIdRequired,
            Self::InvalidGymId => Code::InvalidGymId,
            Self::NotFound => Code::NotFound,
            Self::MethodNotAllowed => Code::MethodNotAllowed,
            Self::PayloadTooLarge => Code::PayloadTooLarge,
            Self::UnsupportedEncoding => Code::UnsupportedContentEncoding,
            Self::MalformedRequest => Code::MalformedRequest,
            Self::IdempotencyKeyReused => Code::IdempotencyKeyReused,
        }
    }

    /// The message in a language.
    pub fn message(&self, lang: Lang) -> String {
        use DomainError as D;
        if let Self::CheckInRefused(e) = self {
            return Self::Domain(e.clone()).message(lang);
        }
        let (en, es) = match self {
            Self::Domain(D::Validation(m)) => {
                return match lang {
                    Lang::En => m.clone(),
                    Lang::Es => format!("Datos no válidos: {m}"),
                };
            }
            Self::Domain(D::BookingNotOpen { opens_at }) => {
                let at = rfc3339(*opens_at);
                return match lang {
                    Lang::En => format!("Booking for this session opens at {at}"),
                    Lang::Es => format!("Las inscripciones a esta sesión abren el {at}"),
                };
            }
            Self::Domain(D::BookingClosed { closed_at }) => {
                let at = rfc3339(*closed_at);
                return match lang {
                    Lang::En => format!("Booking for this session closed at {at}"),
                    Lang::Es => format!("Las inscripciones a esta sesión cerraron el {at}"),
                };
            }
            Self::Domain(D::NotAMember) => ("You are not a member of this gym", "No perteneces a este gimnasio"),
            Self::Domain(D::Forbidden) => ("Your role does not allow this", "Tu rol no permite esta acción"),
            Self::Domain(D::UserNotFound) => ("User not found", "Usuario no encontrado"),
            Self::Domain(D::AlreadyMember) => {
                ("The user is already a member of this gym", "El usuario ya pertenece a este gimnasio")
            }
            Self::Domain(D::LastOwner) => {
                ("The gym must keep at least one owner", "El gimnasio debe conservar al menos un propietario")
            }
            Self::Domain(D::ClassNotFound) => ("Class not found", "Clase no encontrada"),
            Self::Domain(D::SessionNotFound) => {
                ("Session not found", "Sesión no encontrada o no pertenece a este gimnasio")
            }
            Self::Domain(D::EventNotFound) => ("Event not found", "Evento no encontrado"),
            Self::Domain(D::WebhookNotFound) => ("Webhook not found", "Webhook no encontrado"),
            Self::Domain(D::DeliveryNotFound) => ("Delivery not found", "Entrega no encontrada"),
            Self::Domain(D::PlanNotFound) => ("Plan not found", "Plan no encontrado"),
            Self::Domain(D::PassNotFound) => ("Pass not found", "Bono no encontrado"),
            Self::Domain(D::NoValidPass) => {
                ("You hold no pass valid for this session", "No tienes ningún bono válido para esta sesión")
            }
            Self::Domain(D::WeeklyLimitReached) => {
                ("Your pass has reached its bookings for this week", "Tu bono ha alcanzado sus reservas de esta semana")
            }
            Self::Domain(D::InvalidSignature) => (
                "Invalid signature: X-GymAPI-Signature must sign this body with the gym's secret within five minutes",
                "Firma inválida: X-GymAPI-Signature debe firmar este cuerpo con el secreto del gimnasio en menos de cinco minutos",
            ),
            Self::Domain(D::RecurrenceNotFound) => {
                ("Recurrence not found for this class", "Serie no encontrada para esta clase")
            }
            Self::Domain(D::AlreadyRegistered) => {
                ("You are already registered for this session", "Ya estás inscrito en esta sesión")
            }
            Self::Domain(D::SessionFull) => ("The session is full", "La sesión está completa"),
            Self::Domain(D::AlreadyWaitlisted) => {
                ("You are already on this session's waitlist", "Ya estás en la lista de espera de esta sesión")
            }
            Self::Domain(D::WaitlistLimit) => (
                "You are on as many waitlists as this gym allows",
                "Estás en tantas listas de espera como permite este gimnasio",
            ),
            Self::Domain(D::NotRegistered) => ("You hold no place in this session", "No tienes plaza en esta sesión"),
            Self::Domain(D::SessionNotOpen) => {
                ("The session is not open for registration", "La sesión no admite inscripciones")
            }
            Self::Domain(D::InvalidQr) => ("Invalid QR code", "Código QR inválido"),
            Self::Domain(D::SessionOutsideWindow) => {
                ("The session is outside the check-in window", "La sesión está fuera del horario de check-in")
            }
            Self::Domain(D::NoSessionInWindow) => (
                "No classes available for check-in right now",
                "No hay clases disponibles para check-in en este momento",
            ),
            Self::Domain(D::AlreadyCheckedIn) => {
                ("Already checked in to this class", "Ya has hecho check-in en esta clase")
            }
            Self::Domain(D::IdempotencyKeyInProgress) => (
                "A request with this Idempotency-Key is still at work; retry shortly",
                "Una petición con esta Idempotency-Key sigue en curso; reinténtalo en breve",
            ),
            Self::Domain(D::CursorExpired) => (
                "The facts after this cursor are no longer kept; start again from after=0",
                "Los cambios posteriores a este cursor ya no se conservan; empieza de nuevo con after=0",
            ),
            Self::IdempotencyKeyReused => (
                "This Idempotency-Key was already used for a different request",
                "Esta Idempotency-Key ya se usó para otra petición",
            ),
            Self::Domain(D::Unavailable) => {
                ("The database is unavailable, try again", "La base de datos no está disponible, reinténtalo")
            }
            Self::Domain(D::Internal(_)) => ("Internal server error", "Error interno del servidor"),
            Self::MissingToken => {
                ("Not authenticated: a bearer token is required", "No autenticado: se requiere un token")
            }
            Self::InvalidToken => ("Invalid or expired token", "Token inválido o caducado"),
            Self::InsufficientScope => {
                ("The token lacks the resource:write scope", "El token no tiene el permiso resource:write")
            }
            Self::GymIdRequired => ("The X-Gym-ID header is required", "La cabecera X-Gym-ID es obligatoria"),
            Self::InvalidGymId => ("X-Gym-ID must be a positive integer", "X-Gym-ID debe ser un entero positivo"),
            Self::NotFound => ("Not found", "No encontrado"),
            Self::MethodNotAllowed => ("Method not allowed", "Método no permitido"),
            Self::PayloadTooLarge => ("The request body is over 64 KiB", "El cuerpo de la petición supera 64 KiB"),
            Self::UnsupportedEncoding => (
                "Request bodies must not be compressed (Content-Encoding: identity)",
                "El cuerpo de la petición no puede ir comprimido (Content-Encoding: identity)",
            ),
            Self::MalformedRequest => (
                "The request body is malformed (broken chunked encoding or shorter than Content-Length)",
                "El cuerpo de la petición está mal formado (codificación chunked rota o más corto que Content-Length)",
            ),
            Self::CheckInRefused(_) => ("Check-in refused", "Check-in rechazado"),
        };
        match lang {
            Lang::En => en.to_owned(),
            Lang::Es => es.to_owned(),
        }
    }

    /// The full response in a language.
    pub fn render(&self, lang: Lang) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            Self::MissingToken | Self::InvalidToken => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            // RFC 9110 §15.5.16: name the codings that would have been accepted.
            Self::UnsupportedEncoding => {
                res.insert_header((header::ACCEPT_ENCODING, "identity"));
            }
            _ => {}
        }
        res.json(crate::dto::ErrorBody { detail: self.message(lang), code: self.code().as_str().to_owned() })
    }

    /// A failure reading the request body: over the limit, or broken framing.
    pub fn payload(e: &actix_web::error::PayloadError) -> Self {
        match e {
            actix_web::error::PayloadError::Overflow => Self::PayloadTooLarge,
            _ => Self::MalformedRequest,
        }
    }

    /// The error of an actix response that carries no body of ours, by status.
    pub fn from_status(status: StatusCode) -> Option<Self> {
        match status {
            StatusCode::NOT_FOUND => Some(Self::NotFound),
            StatusCode::METHOD_NOT_ALLOWED => Some(Self::MethodNotAllowed),
            StatusCode::PAYLOAD_TOO_LARGE => Some(Self::PayloadTooLarge),
            // actix's own 400s are about the request's framing (a payload error).
            StatusCode::BAD_REQUEST => Some(Self::MalformedRequest),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(Self::UnsupportedEncoding),
            StatusCode::INTERNAL_SERVER_ERROR => {
                Some(Self::Domain(DomainError::internal("actix answered 500 without a body of ours")))
            }
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use DomainError as D;
        match self {
            Self::Domain(e) => match e {
                D::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                D::NotAMember | D::Forbidden => StatusCode::FORBIDDEN,
                D::UserNotFound
                | D::ClassNotFound
                | D::SessionNotFound
                | D::EventNotFound
                | D::WebhookNotFound
                | D::DeliveryNotFound
                | D::PlanNotFound
                | D::PassNotFound
                | D::RecurrenceNotFound
                | D::NotRegistered => StatusCode::NOT_FOUND,
                D::AlreadyMember
                | D::LastOwner
                | D::AlreadyRegistered
                | D::SessionFull
                | D::AlreadyWaitlisted
                | D::WaitlistLimit
                | D::NoValidPass
                | D::WeeklyLimitReached
                | D::IdempotencyKeyInProgress => StatusCode::CONFLICT,
                D::SessionNotOpen
                | D::BookingNotOpen { .. }
                | D::BookingClosed { .. }
                | D::InvalidQr
                | D::SessionOutsideWindow
                | D::NoSessionInWindow
                | D::AlreadyCheckedIn => StatusCode::BAD_REQUEST,
                D::CursorExpired => StatusCode::GONE,
                D::InvalidSignature => StatusCode::UNAUTHORIZED,
                D::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                D::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::MissingToken | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::GymIdRequired | Self::InvalidGymId => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MalformedRequest | Self::CheckInRefused(_) => StatusCode::BAD_REQUEST,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// English; the telemetry middleware re-renders it for Spanish requests.
    fn error_response(&self) -> HttpResponse {
        if let Self::Domain(DomainError::Internal(cause)) = self {
            tracing::error!(cause = %cause.chain(), "internal error");
        }
        self.render(Lang::En)
    }
}

/// The middleware that gives every error response the caller's language and the
/// contract's form: [`ApiError`]s rendered again in Spanish when asked for, and the
/// bodiless answers of actix's own (unknown route, wrong method, …) as their error.
///
/// # Errors
/// Errors of inner services, passed through.
pub async fn localize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let lang = Lang::of(req.request());
    let res = next.call(req).await?.map_into_boxed_body();
    Ok(finish_error_body(res, lang))
}

/// Our errors in the caller's language; actix's own 400/404/405/413/500 in our form.
fn finish_error_body(res: ServiceResponse<BoxBody>, lang: Lang) -> ServiceResponse<BoxBody> {
    if !res.status().is_client_error() && !res.status().is_server_error() {
        return res;
    }
    let ours = res.response().error().and_then(|e| e.as_error::<ApiError>()).map(|e| e.render(lang));
    if let Some(rendered) = ours {
        return if lang == Lang::Es { res.into_response(rendered) } else { res };
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    match ApiError::from_status(res.status()) {
        Some(e) if !is_json => {
            let mut rendered = e.render(lang);
            // actix's 405 names the resource's methods (RFC 9110 requires it): keep it.
            if let Some(allow) = res.headers().get(header::ALLOW) {
                rendered.headers_mut().insert(header::ALLOW, allow.clone());
            }
            res.into_response(rendered)
        }
        _ => res,
    }
}

/// An instant as the API writes it (RFC 3339, UTC), for messages.
fn rfc3339(t: time::OffsetDateTime) -> String {
    crate::dto::UtcTime::from(t).rfc3339().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn lang(accept: &str) -> Lang {
        Lang::of(&TestRequest::default().insert_header(("Accept-Language", accept)).to_http_request())
    }

    #[test]
    fn the_language_of_the_highest_weight_wins() {
        for es in ["es", "es-ES,es;q=0.9", "en;q=0.5, es", "ES-mx", "fr;q=0.1, es;q=0.2", "es;q=1.000", "en;q=0, es"] {
            assert_eq!(lang(es), Lang::Es, "{es:?}");
        }
        for en in ["en-US,es;q=0.9", "es;q=0", "es;q=0.0, en", "en, es", "es;q=0.5, en;q=0.5x, de", "*", "", "espanol"]
        {
            assert_eq!(lang(en), Lang::En, "{en:?}");
        }
        // Equal weights: the first listed wins.
        assert_eq!(lang("es;q=0.5, en;q=0.5"), Lang::Es);
        assert_eq!(lang("en;q=0.5, es;q=0.5"), Lang::En);
        // A weight that is not a qvalue says nothing about its range.
        assert_eq!(lang("es;q=2, en;q=0.1"), Lang::En);
        assert_eq!(lang("en;q=abc, es;q=0.1"), Lang::Es);
        assert_eq!(Lang::of(&TestRequest::default().to_http_request()), Lang::En);
        // Two header lines are one list: Spanish outweighs the first line's English.
        let two = TestRequest::default()
            .append_header((header::ACCEPT_LANGUAGE, "en;q=0.1"))
            .append_header((header::ACCEPT_LANGUAGE, "es"))
            .to_http_request();
        assert_eq!(Lang::of(&two), Lang::Es);
    }

    #[test]
    fn internal_causes_never_reach_the_body() {
        let e = ApiError::from(DomainError::internal("password=hunter2"));
        assert!(!e.message(Lang::En).contains("hunter2"));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
