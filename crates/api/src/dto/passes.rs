//! Passes and the credit ledger (issue 21).

use domain::passes::{CreditEntry, Pass};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::UtcTime;

/// `POST /members/{user_id}/passes`.
#[derive(Deserialize, ToSchema)]
pub struct PassIn {
    /// An active plan of the gym.
    pub plan_id: i64,
    /// The first day it is valid, on the gym's wall clock (`YYYY-MM-DD`; today by
    /// default, at most 366 days either way).
    pub starts_on: Option<String>,
}

/// `POST /members/{user_id}/passes/{pass_id}/freeze`.
#[derive(Deserialize, ToSchema)]
pub struct FreezeIn {
    /// The first frozen day on the gym's wall clock (`YYYY-MM-DD`), today or later.
    pub from: String,
    /// The last frozen day (inclusive), at most 366 days after `from`.
    pub until: String,
}

/// `POST /members/{user_id}/passes/{pass_id}/adjust`.
#[derive(Deserialize, ToSchema)]
pub struct AdjustIn {
    /// Credits to add (positive) or remove (negative): -1000..=1000, not 0.
    pub credits: i32,
    /// Why, kept in the ledger.
    pub reason: String,
}

/// A member's pass.
#[derive(Serialize, ToSchema)]
pub struct PassOut {
    pub id: i64,
    pub gym_id: i64,
    pub member_id: i64,
    pub plan_id: i64,
    /// `unlimited` or `pack`, as the plan was when sold.
    pub kind: &'static str,
    /// A pack's credits when sold; `null` for an unlimited pass.
    pub credits_total: Option<i32>,
    /// A pack's credits now (its ledger's balance); `null` for an unlimited pass.
    pub credits_left: Option<i32>,
    /// The first instant of its first day on the gym's wall clock.
    pub starts_at: UtcTime,
    pub expires_at: UtcTime,
    /// The pass's freeze, if it has had one: the first instant of its first day…
    pub frozen_from: Option<UtcTime>,
    /// …and the first instant after its last day (the gym's wall clock).
    pub frozen_until: Option<UtcTime>,
    /// `active`, `frozen`, `expired` or `cancelled`, as of the answer.
    pub status: &'static str,
    pub created_at: UtcTime,
}

impl PassOut {
    /// The pass as it stands at `now`.
    pub fn at(p: Pass, now: OffsetDateTime) -> Self {
        Self {
            status: p.status(now).as_str(),
            id: p.id,
            gym_id: p.gym_id.0,
            member_id: p.member_id.0,
            plan_id: p.plan_id,
            kind: p.kind.as_str(),
            credits_total: p.credits_total,
            credits_left: p.credits_left,
            starts_at: p.starts_at.into(),
            expires_at: p.expires_at.into(),
            frozen_from: p.frozen.map(|(from, _)| from.into()),
            frozen_until: p.frozen.map(|(_, until)| until.into()),
            created_at: p.created_at.into(),
        }
    }
}

/// One movement of a pack's credits.
#[derive(Serialize, ToSchema)]
pub struct CreditEntryOut {
    pub pass_id: i64,
    /// Its place in the pass's ledger, from 1 (the grant).
    pub seq: i32,
    /// `grant`, `use`, `refund`, `forfeit`, `expire` or `adjust`.
    pub kind: &'static str,
    /// Signed: added (positive) or taken (negative).
    pub credits: i32,
    /// The pass's credits after it.
    pub balance: i32,
    /// The booking it belongs to, when there is one.
    pub participation_id: Option<i64>,
    /// Why, for an adjustment.
    pub reason: Option<String>,
    /// The user who caused it, when one did.
    pub actor_id: Option<i64>,
    /// `staff`, `member`, `payment` or `job`.
    pub cause: &'static str,
    pub at: UtcTime,
}

impl From<CreditEntry> for CreditEntryOut {
    fn from(e: CreditEntry) -> Self {
        let m = e.movement;
        Self {
            pass_id: e.pass_id,
            seq: e.seq,
            kind: m.kind.as_str(),
            credits: m.credits,
            balance: e.balance,
            participation_id: m.participation_id,
            reason: m.reason,
            actor_id: m.actor_id.map(|u| u.0),
            cause: m.cause.as_str(),
            at: m.at.into(),
        }
    }
}

/// `POST /integrations/payments/{gym_id}/events`: a paid event, signed.
#[derive(Deserialize, ToSchema)]
pub struct PaymentEventIn {
    /// The payment system's id of the event (1..=200 characters): one pass per id.
    pub event_id: String,
    /// The member who paid.
    pub user_id: i64,
    /// The plan paid for.
    pub plan_id: i64,
}

/// The gym's payment signing secret, shown once.
#[derive(Serialize, ToSchema)]
pub struct PaymentSecretOut {
    /// Signs events: `X-GymAPI-Signature: t=…,v1=HMAC-SHA256(secret, t + "." + body)`.
    pub secret: String,
    /// Until when the secret it replaced still signs (`null` for a first secret).
    pub previous_secret_expires_at: Option<UtcTime>,
}
