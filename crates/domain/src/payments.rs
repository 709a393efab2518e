//! Passes granted by a payment system. Payments stay outside GymAPI: the gym's
//! payment system posts a signed event once it has been paid, and GymAPI grants
//! the pass once per event id, however often the event is retried.
//!
//! Events are signed as webhooks are (`X-GymAPI-Signature: t=…,v1=…`, HMAC-SHA256
//! of `t + "." + body` with the gym's payment secret), and `t` must be within
//! [`SKEW`] of GymAPI's clock, so a captured event cannot be played back later.

use std::sync::Arc;

use async_trait::async_trait;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::passes::{Pass, PassService};
use crate::policy;
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, GymId, UserId, optional_text};
use crate::webhooks::{SECRET_OVERLAP, fresh_secret, signature_v1};

/// Most distance between an event's `t` and the clock, either way.
pub const SKEW: Duration = Duration::minutes(5);
/// Longest event id.
pub const EVENT_ID_MAX: usize = 200;

/// A gym's payment signing secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSecrets {
    /// The current secret.
    pub secret: String,
    /// The one it replaced, and until when it still signs.
    pub previous: Option<(String, OffsetDateTime)>,
}

/// A paid event: grant a pass of the plan to the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// The payment system's id of the event: one pass per id.
    pub event_id: String,
    /// The member who paid.
    pub user_id: UserId,
    /// The plan paid for.
    pub plan_id: i64,
}

/// An event whose signature was checked, for its gym: the only way to a grant.
#[derive(Debug)]
pub struct Verified {
    gym: GymId,
}

/// Payment secrets in storage.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentRepository: Send + Sync {
    /// The gym's secrets; `None` before the gym made one.
    ///
    /// # Errors
    /// Storage failures.
    async fn payment_secrets(&self, gym: GymId) -> Result<Option<PaymentSecrets>>;

    /// Sets the gym's secret; the one replaced, if any, keeps signing until
    /// `previous_until`.
    ///
    /// # Errors
    /// Storage failures.
    async fn rotate_payment_secret(
        &self,
        tx: &mut Tx,
        gym: GymId,
        secret: &str,
        now: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<()>;
}

/// The payment integration of gyms.
#[derive(Clone)]
pub struct PaymentService {
    repo: Arc<dyn PaymentRepository>,
    passes: PassService,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PaymentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentService").finish_non_exhaustive()
    }
}

impl PaymentService {
    /// Wires the service.
    pub fn new(repo: Arc<dyn PaymentRepository>, passes: PassService, uow: UnitOfWork, clock: Arc<dyn Clock>) -> Self {
        Self { repo, passes, uow, clock }
    }

    /// Makes the gym's signing secret, or a new one (admin); the one replaced keeps
    /// signing for [`SECRET_OVERLAP`]. Answers the secret and until when the old one signs.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; storage failures.
    pub async fn rotate(&self, actor: &Actor) -> Result<(String, Option<OffsetDateTime>)> {
        actor.require(policy::MANAGE_PAYMENTS)?;
        let had = self.repo.payment_secrets(actor.gym_id).await?.is_some();
        let (secret, now) = (fresh_secret(), self.clock.now());
        let mut tx = self.uow.begin().await?;
        self.repo.rotate_payment_secret(&mut tx, actor.gym_id, &secret, now, now + SECRET_OVERLAP).await?;
        self.uow.commit(tx).await?;
        Ok((secret, had.then_some(now + SECRET_OVERLAP)))
    }

    /// Checks an event's signature header against the gym's secrets.
    ///
    /// # Errors
    /// [`DomainError::InvalidSignature`] for a gym without a secret, a header that
    /// is not `t=…,v1=…`, a `t` further than [`SKEW`] from the clock, or no `v1`
    /// made with a secret that signs now; storage failures.
    pub async fn verify(&self, gym: GymId, header: Option<&str>, body: &str) -> Result<Verified> {
        let secrets = self.repo.payment_secrets(gym).await?.ok_or(DomainError::InvalidSignature)?;
        let now = self.clock.now();
        let (t, signatures) = parse_header(header.ok_or(DomainError::InvalidSignature)?)?;
        let at = OffsetDateTime::from_unix_timestamp(t).map_err(|_| DomainError::InvalidSignature)?;
        if (at - now).abs() > SKEW {
            return Err(DomainError::InvalidSignature);
        }
        let mut signing = vec![secrets.secret];
        signing.extend(secrets.previous.filter(|(_, until)| *until > now).map(|(s, _)| s));
        let matches = signing
            .iter()
            .filter_map(|s| signature_v1(s, t, body))
            .any(|expected| signatures.iter().any(|got| bool::from(expected.as_bytes().ct_eq(got.as_bytes()))));
        if matches { Ok(Verified { gym }) } else { Err(DomainError::InvalidSignature) }
    }

    /// Grants the event's pass, starting today on the gym's clock, once per event
    /// id: a retry answers the pass the first one granted. Answers the pass and
    /// whether this call granted it.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for an event id that is empty, longer than
    /// [`EVENT_ID_MAX`] or holds NUL, or a retired plan;
    /// [`DomainError::PlanNotFound`]; [`DomainError::UserNotFound`]; storage failures.
    pub async fn grant(&self, verified: Verified, event: PaymentEvent) -> Result<(Pass, bool)> {
        let id = optional_text("event_id", Some(&event.event_id), EVENT_ID_MAX)?.unwrap_or_default();
        if id.is_empty() {
            return Err(DomainError::validation("event_id must not be empty"));
        }
        self.passes.grant_paid(verified.gym, event.user_id, event.plan_id, &id).await
    }
}

/// `t` and every `v1` of a signature header.
fn parse_header(header: &str) -> Result<(i64, Vec<&str>)> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| DomainError::InvalidSignature)?),
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    match t {
        Some(t) if !v1.is_empty() => Ok((t, v1)),
        _ => Err(DomainError::InvalidSignature),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::{MockPassRepository, MockPlanRepository, untouched};
    use crate::webhooks::signature;

    const NOW: OffsetDateTime = datetime!(2026-12-08 10:00 UTC);

    fn service(secrets: Option<PaymentSecrets>) -> PaymentService {
        let mut repo = MockPaymentRepository::new();
        repo.expect_payment_secrets().returning(move |_| Ok(secrets.clone()));
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
        let passes = PassService::new(
            Arc::new(MockPassRepository::new()),
            Arc::new(MockPlanRepository::new()),
            untouched(),
            clock.clone(),
        );
        PaymentService::new(Arc::new(repo), passes, untouched(), clock)
    }

    fn secrets(previous_until: Option<OffsetDateTime>) -> Option<PaymentSecrets> {
        Some(PaymentSecrets { secret: "new".into(), previous: previous_until.map(|u| ("old".into(), u)) })
    }

    #[tokio::test]
    async fn an_event_signed_with_a_secret_that_signs_now_within_five_minutes_is_verified() {
        let body = r#"{"event_id":"e1","user_id":3,"plan_id":4}"#;
        let t = NOW.unix_timestamp();
        let svc = service(secrets(Some(NOW + Duration::hours(1))));
        for header in [
            signature(&["new".into()], t, body),
            signature(&["old".into()], t - 299, body),
            signature(&["other".into(), "new".into()], t + 300, body),
        ] {
            assert!(svc.verify(GymId(2), Some(&header), body).await.is_ok(), "{header}");
        }
    }

    #[tokio::test]
    async fn a_wrong_stale_expired_or_malformed_signature_is_refused() {
        let body = r#"{"event_id":"e1","user_id":3,"plan_id":4}"#;
        let t = NOW.unix_timestamp();
        let svc = service(secrets(Some(NOW - Duration::seconds(1))));
        for header in [
            signature(&["other".into()], t, body),
            signature(&["new".into()], t - 301, body),
            signature(&["new".into()], t + 301, body),
            signature(&["old".into()], t, body),
            signature(&["new".into()], t, "{}"),
            format!("t={t}"),
            "v1=abc".into(),
            format!("t=x,v1={}", signature_v1("new", t, body).unwrap_or_default()),
            format!("t={},v1=1", i64::MAX),
            String::new(),
        ] {
            let got = svc.verify(GymId(2), Some(&header), body).await;
            assert!(matches!(got, Err(DomainError::InvalidSignature)), "{header}: {got:?}");
        }
        assert!(matches!(svc.verify(GymId(2), None, body).await, Err(DomainError::InvalidSignature)));
        let none = service(None);
        let header = signature(&["new".into()], t, body);
        assert!(matches!(none.verify(GymId(2), Some(&header), body).await, Err(DomainError::InvalidSignature)));
    }
}
