//! Webhooks (issue 20): endpoints and their deliveries.

use domain::webhooks::{Delivery, Webhook};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UtcTime;

/// `POST /webhooks`.
#[derive(Deserialize, ToSchema)]
pub struct WebhookIn {
    /// Where deliveries are posted: HTTPS to a public host (any http(s) URL in
    /// `development` and `test`), at most 2048 characters, no credentials.
    #[schema(max_length = 2048, example = "https://hooks.example.com/gymapi")]
    pub url: String,
    /// The event types to receive, at least one: `checkin.succeeded`,
    /// `checkin.refused`, `registration.created`, `registration.cancelled`,
    /// `waitlist.promoted`, `session.cancelled`, `pass.granted`, `pass.expired`,
    /// `credit.used`, `credit.refunded`.
    #[schema(value_type = Vec<WebhookEventType>, min_items = 1)]
    pub events: Vec<String>,
}

/// An event type an endpoint may ask for (the schema's; the domain checks them).
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum WebhookEventType {
    #[schema(rename = "checkin.succeeded")]
    CheckinSucceeded,
    #[schema(rename = "checkin.refused")]
    CheckinRefused,
    #[schema(rename = "registration.created")]
    RegistrationCreated,
    #[schema(rename = "registration.cancelled")]
    RegistrationCancelled,
    #[schema(rename = "waitlist.promoted")]
    WaitlistPromoted,
    #[schema(rename = "session.cancelled")]
    SessionCancelled,
    #[schema(rename = "pass.granted")]
    PassGranted,
    #[schema(rename = "pass.expired")]
    PassExpired,
    #[schema(rename = "credit.used")]
    CreditUsed,
    #[schema(rename = "credit.refunded")]
    CreditRefunded,
}

/// A registered endpoint (its secret is shown only when made).
#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: UtcTime,
    /// Until when the secret rotated out still signs beside the current one.
    pub previous_secret_expires_at: Option<UtcTime>,
}

impl From<Webhook> for WebhookOut {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events,
            created_at: w.created_at.into(),
            previous_secret_expires_at: w.previous_until.map(UtcTime::from),
        }
    }
}

/// An endpoint with its new secret: the answer of a registration or a rotation,
/// the only ones that show it.
#[derive(Serialize, ToSchema)]
pub struct WebhookSecretOut {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// Signs every delivery: `X-GymAPI-Signature: t=…,v1=HMAC-SHA256(secret, t + "." + body)`.
    pub secret: String,
}

impl From<Webhook> for WebhookSecretOut {
    fn from(mut w: Webhook) -> Self {
        let secret = std::mem::take(&mut w.secret);
        Self { webhook: WebhookOut::from(w), secret }
    }
}

/// One fact for one endpoint.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    pub webhook_id: i64,
    /// The body's `id` (the fact's): the same in every attempt and replay.
    pub event_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `delivered` or `failed` (every attempt failed).
    pub status: String,
    pub attempts: i32,
    /// When it is attempted next (pending only).
    pub next_attempt_at: Option<UtcTime>,
    /// The receiver's last HTTP status, when it answered.
    pub last_status: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: UtcTime,
    pub delivered_at: Option<UtcTime>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            kind: d.kind,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(UtcTime::from),
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at.into(),
            delivered_at: d.delivered_at.map(UtcTime::from),
        }
    }
}
