//! `/integrations/payments`: passes granted by a payment system (see `domain::payments`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::payments::PaymentEvent;
use domain::{GymId, UserId};

use crate::body::Body;
use crate::dto::{GymHeader, InvalidSignature, PassOut, PaymentEventIn, PaymentEventRefused, PaymentSecretOut};
use crate::dto::{TenantErrors, UtcTime};
use crate::error::ApiError;
use crate::params::PathId;
use crate::respond::json;
use crate::state::State;
use crate::tenant::Tenant;

/// The header of a signed event.
const SIGNATURE: &str = "X-GymAPI-Signature";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/integrations/payments").route(web::post().to(rotate_payment_secret)))
        .service(web::resource("/integrations/payments/{gym_id}/events").route(web::post().to(payment_event)));
}

#[utoipa::path(post, path = "/api/v1/integrations/payments", tag = "passes", params(GymHeader),
    responses((status = 201, body = PaymentSecretOut), TenantErrors),
    description = "Make the gym's payment signing secret, or a new one (admin). The answer is the only one that \
        shows it; the secret it replaces keeps signing for 24 hours.")]
async fn rotate_payment_secret(state: State, Tenant(actor): Tenant) -> Result<HttpResponse, ApiError> {
    let (secret, previous_until) = state.payments.rotate(&actor).await?;
    json(
        StatusCode::CREATED,
        &PaymentSecretOut { secret, previous_secret_expires_at: previous_until.map(UtcTime::from) },
    )
}

#[utoipa::path(post, path = "/api/v1/integrations/payments/{gym_id}/events", tag = "passes",
    params(("gym_id" = i64, Path), ("X-GymAPI-Signature" = String, Header,
        description = "t=UNIX_SECONDS,v1=hex(HMAC-SHA256(secret, t + \".\" + body)); t within five minutes")),
    request_body = PaymentEventIn, security(()),
    responses((status = 201, body = PassOut, description = "The pass granted"),
        (status = 200, body = PassOut, description = "The event was granted before: its pass"),
        InvalidSignature, PaymentEventRefused),
    description = "A payment system grants the pass a member paid for (no token: the body is signed with the \
        gym's payment secret). The pass starts today on the gym's clock. One pass per `event_id`, however often \
        the event is retried, at once or later.")]
async fn payment_event(
    state: State,
    req: HttpRequest,
    gym: PathId,
    body: Body<PaymentEventIn>,
) -> Result<HttpResponse, ApiError> {
    // The signature first, over the bytes as sent: nothing of an unsigned body is read.
    let gym = GymId(gym.parse().map_err(|_| ApiError::from(domain::DomainError::InvalidSignature))?);
    let header = req.headers().get(SIGNATURE).and_then(|h| h.to_str().ok());
    let text = std::str::from_utf8(body.bytes()).map_err(|_| ApiError::from(domain::DomainError::InvalidSignature))?;
    let verified = state.payments.verify(gym, header, text).await?;
    let event = body.parse()?;
    let event = PaymentEvent { event_id: event.event_id, user_id: UserId(event.user_id), plan_id: event.plan_id };
    let (pass, granted) = state.payments.grant(verified, event).await?;
    json(if granted { StatusCode::CREATED } else { StatusCode::OK }, &PassOut::at(pass, state.clock.now()))
}
