//! The front desk's refusal audit: every refused check-in is kept — the code scanned,
//! the user it names if it parsed, the desk, the time, the refusal's code and the
//! session the desk named — and admins list them, with runs of refusals flagged (a
//! code being guessed, a screenshot passed around, a desk misused).
//!
//! Recording never holds up the scan's answer: the HTTP layer queues refusals and
//! records them in batches ([`RefusalService::record`]), each batch one transaction
//! whose facts say what was refused.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, DateRange, GymId, Page, SessionId, UserId};

/// Longest part of a scanned code kept (a scanner can send anything).
pub const CODE_KEPT: usize = 64;

/// Refusals within this long of each other count as one run.
pub const RUN_WINDOW: Duration = Duration::minutes(5);

/// Refusals of one member's code within [`RUN_WINDOW`] that flag them.
pub const MEMBER_RUN: i64 = 3;

/// Refusals at one desk within [`RUN_WINDOW`] that flag it.
pub const DESK_RUN: i64 = 5;

/// A refused scan, as the desk made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalDraft {
    /// The gym of the desk.
    pub gym: GymId,
    /// The desk's user.
    pub desk: UserId,
    /// What was scanned, cut to [`CODE_KEPT`] characters (NUL replaced).
    pub qr_code: String,
    /// The user the code names, when it parsed.
    pub qr_user: Option<UserId>,
    /// The session the desk named.
    pub session: Option<SessionId>,
    /// The refusal's code (`invalid_qr`, `already_checked_in`, …).
    pub code: String,
    /// When.
    pub at: OffsetDateTime,
}

impl RefusalDraft {
    /// A refusal of `scanned`: the code kept is cut to [`CODE_KEPT`] characters.
    pub fn new(desk: &Actor, scanned: &str, session: Option<SessionId>, code: &str, at: OffsetDateTime) -> Self {
        let qr_user = crate::attendance::QrCode::parse(scanned).ok().map(|c| c.user_id);
        Self {
            gym: desk.gym_id,
            desk: desk.user_id,
            // NUL cannot be stored in PostgreSQL's text; a scanner may send one.
            qr_code: scanned.chars().take(CODE_KEPT).map(|c| if c == '\0' { '\u{fffd}' } else { c }).collect(),
            qr_user,
            session,
            code: code.to_owned(),
            at,
        }
    }
}

/// A refusal as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Its id in the gym.
    pub id: i64,
    /// What was refused.
    pub draft: RefusalDraft,
    /// Part of a run of refusals of the same member's code.
    pub repeated_member: bool,
    /// Part of a run of refusals at the same desk.
    pub repeated_desk: bool,
}

/// A refusal as stored, with how many refusals of its member's code and of its desk
/// fall within [`RUN_WINDOW`] of it (itself included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefusal {
    /// Its id in the gym.
    pub id: i64,
    /// What was refused.
    pub draft: RefusalDraft,
    /// Refusals naming the same user within the window (0 when it names none).
    pub member_nearby: i64,
    /// Refusals at the same desk within the window.
    pub desk_nearby: i64,
}

/// Storage of refusals.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RefusalRepository: Send + Sync {
    /// Stores the refusals.
    ///
    /// # Errors
    /// Storage failures.
    async fn record_refusals(&self, tx: &mut Tx, refusals: &[RefusalDraft]) -> Result<()>;

    /// The gym's refusals from `from` to `through` (both inclusive), newest first,
    /// each with its neighbours counted within `window` either side.
    ///
    /// # Errors
    /// Storage failures.
    async fn refusals(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        window: Duration,
        page: Page,
    ) -> Result<Vec<StoredRefusal>>;
}

/// The refusal audit.
#[derive(Clone)]
pub struct RefusalService {
    repo: Arc<dyn RefusalRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl RefusalService {
    /// Wires the service.
    pub fn new(repo: Arc<dyn RefusalRepository>, uow: UnitOfWork, clock: Arc<dyn Clock>) -> Self {
        Self { repo, uow, clock }
    }

    /// The instant a refusal happens at (the service's clock).
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Records a batch of refusals, each with its fact, in one transaction.
    ///
    /// # Errors
    /// Storage failures: nothing of the batch was recorded.
    pub async fn record(&self, refusals: &[RefusalDraft]) -> Result<()> {
        if refusals.is_empty() {
            return Ok(());
        }
        let mut tx = self.uow.begin().await?;
        self.repo.record_refusals(&mut tx, refusals).await?;
        for r in refusals {
            tx.record(DomainEvent::CheckInRefused {
                gym: r.gym,
                desk: r.desk,
                member: r.qr_user,
                session: r.session,
                code: r.code.clone(),
            });
        }
        self.uow.commit(tx).await
    }

    /// The gym's refusals in the dates (admin), newest first, runs flagged: a
    /// member's code refused [`MEMBER_RUN`] times, or a desk refusing [`DESK_RUN`]
    /// times, within [`RUN_WINDOW`].
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; storage failures.
    pub async fn list(&self, actor: &Actor, dates: DateRange, page: Page) -> Result<Vec<Refusal>> {
        actor.require(crate::policy::SEE_REFUSALS)?;
        let rows = self.repo.refusals(actor.gym_id, dates.from(), dates.through(), RUN_WINDOW, page).await?;
        Ok(rows
            .into_iter()
            .map(|r| Refusal {
                id: r.id,
                repeated_member: r.draft.qr_user.is_some() && r.member_nearby >= MEMBER_RUN,
                repeated_desk: r.desk_nearby >= DESK_RUN,
                draft: r.draft,
            })
            .collect())
    }
}

impl std::fmt::Debug for RefusalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalService").finish_non_exhaustive()
    }
}

/// Refused scans, kept: an error is not a refusal unless the contract answers it
/// as one (§5's 400s).
pub fn is_refusal(e: &DomainError) -> bool {
    matches!(
        e,
        DomainError::InvalidQr
            | DomainError::NotAMember
            | DomainError::SessionNotFound
            | DomainError::SessionOutsideWindow
            | DomainError::NoSessionInWindow
            | DomainError::AlreadyCheckedIn
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::*;
    use crate::values::Role;
    use time::macros::{date, datetime};

    const NOW: OffsetDateTime = datetime!(2026-01-10 10:00 UTC);

    fn desk(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GymId(4), role }
    }

    fn stored(id: i64, qr: &str, member_nearby: i64, desk_nearby: i64) -> StoredRefusal {
        StoredRefusal {
            id,
            draft: RefusalDraft::new(&desk(Role::Trainer), qr, None, "invalid_qr", NOW),
            member_nearby,
            desk_nearby,
        }
    }

    #[test]
    fn a_draft_keeps_a_bounded_code_and_the_user_it_names() {
        let d = RefusalDraft::new(&desk(Role::Trainer), "U42_0a1b2c3d", Some(SessionId(5)), "invalid_qr", NOW);
        assert_eq!((d.qr_user, d.session, d.gym, d.desk), (Some(UserId(42)), Some(SessionId(5)), GymId(4), UserId(1)));
        let junk = "x".repeat(10_000);
        let d = RefusalDraft::new(&desk(Role::Trainer), &junk, None, "invalid_qr", NOW);
        assert_eq!((d.qr_code.chars().count(), d.qr_user), (CODE_KEPT, None));
    }

    #[tokio::test]
    async fn runs_are_flagged_at_their_thresholds() {
        let mut repo = MockRefusalRepository::new();
        repo.expect_refusals().returning(|_, _, _, window, _| {
            assert_eq!(window, RUN_WINDOW);
            Ok(vec![
                stored(1, "U42_00000000", MEMBER_RUN, DESK_RUN - 1),
                stored(2, "U42_00000000", MEMBER_RUN - 1, DESK_RUN),
                stored(3, "junk", 9, 1),
            ])
        });
        let svc = RefusalService::new(Arc::new(repo), untouched(), Arc::new(FixedClock(NOW)));
        let dates = DateRange::new(date!(2026 - 01 - 10), date!(2026 - 01 - 10)).expect("range");
        let got = svc.list(&desk(Role::Admin), dates, Page::default()).await.expect("list");
        let flags: Vec<(bool, bool)> = got.iter().map(|r| (r.repeated_member, r.repeated_desk)).collect();
        assert_eq!(flags, [(true, false), (false, true), (false, false)], "a code naming nobody is no member's run");
    }

    #[tokio::test]
    async fn only_admins_list_refusals() {
        let svc = RefusalService::new(Arc::new(MockRefusalRepository::new()), untouched(), Arc::new(FixedClock(NOW)));
        let dates = DateRange::new(date!(2026 - 01 - 10), date!(2026 - 01 - 10)).expect("range");
        assert_eq!(svc.list(&desk(Role::Trainer), dates, Page::default()).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_batch_is_recorded_with_a_fact_per_refusal_in_one_transaction() {
        let d = RefusalDraft::new(&desk(Role::Trainer), "U42_0a1b2c3d", None, "already_checked_in", NOW);
        let mut repo = MockRefusalRepository::new();
        let expected = vec![d.clone()];
        repo.expect_record_refusals().withf(move |_, r| r == expected.as_slice()).once().returning(|_, _| Ok(()));
        let fact = DomainEvent::CheckInRefused {
            gym: GymId(4),
            desk: UserId(1),
            member: Some(UserId(42)),
            session: None,
            code: "already_checked_in".into(),
        };
        let svc = RefusalService::new(Arc::new(repo), committing(vec![fact]), Arc::new(FixedClock(NOW)));
        svc.record(&[d]).await.expect("recorded");
    }
}
