//! Plans: what a gym sells, modelled on Mindbody's pricing options. A plan is
//! either unlimited (any number of bookings while a pass from it is valid) or a
//! pack of credits (one per booking). A pass copies what it needs from its plan
//! when it is sold, so changing or retiring a plan never changes a pass already
//! held.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, GymId, Page, required_text};
use crate::{limits, policy};

/// Credits of a pack.
pub const CREDITS: std::ops::RangeInclusive<i32> = 1..=1000;
/// Days a pass from the plan is valid.
pub const VALID_DAYS: std::ops::RangeInclusive<i32> = 1..=3660;
/// Bookings per ISO week a plan may allow, when it caps them.
pub const WEEKLY_LIMIT: std::ops::RangeInclusive<i32> = 1..=100;
/// Most categories a plan may be restricted to.
pub const CATEGORIES_MAX: usize = 20;

/// How a plan's passes are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Any number of bookings while valid.
    Unlimited,
    /// One credit per booking.
    Pack,
}

impl PlanKind {
    /// Every kind's name, as the API spells it.
    pub const ALL: [&'static str; 2] = ["unlimited", "pack"];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unlimited => "unlimited",
            Self::Pack => "pack",
        }
    }

    /// The kind of a name.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for any other name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "unlimited" => Ok(Self::Unlimited),
            "pack" => Ok(Self::Pack),
            _ => Err(DomainError::validation("kind must be \"unlimited\" or \"pack\"")),
        }
    }
}

/// A plan of a gym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Identifier.
    pub id: i64,
    /// Owning gym.
    pub gym_id: GymId,
    /// Display name.
    pub name: String,
    /// Unlimited or a pack.
    pub kind: PlanKind,
    /// A pack's credits; `None` for an unlimited plan.
    pub credits: Option<i32>,
    /// Days a pass is valid from its start.
    pub valid_days: i32,
    /// Most bookings per ISO week (the gym's time zone), if capped.
    pub weekly_limit: Option<i32>,
    /// The class categories it is restricted to; `None`: any class.
    pub categories: Option<Vec<String>>,
    /// `false` once retired: no longer sold, passes already sold keep working.
    pub active: bool,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// What is asked to create a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlan {
    /// Display name.
    pub name: String,
    /// Unlimited or a pack.
    pub kind: PlanKind,
    /// Required for a pack, refused for an unlimited plan.
    pub credits: Option<i32>,
    /// Days a pass is valid.
    pub valid_days: i32,
    /// Most bookings per ISO week.
    pub weekly_limit: Option<i32>,
    /// Class categories it is restricted to.
    pub categories: Option<Vec<String>>,
}

/// A change to a plan; `None` leaves a field as it is. A plan's kind is fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanPatch {
    /// New name.
    pub name: Option<String>,
    /// New credits of a pack (for passes sold afterwards).
    pub credits: Option<i32>,
    /// New validity (for passes sold afterwards).
    pub valid_days: Option<i32>,
    /// New weekly cap; `Some(None)` removes it.
    pub weekly_limit: Option<Option<i32>>,
    /// New categories; `Some(None)` lifts the restriction.
    pub categories: Option<Option<Vec<String>>>,
    /// Re-activate or retire.
    pub active: Option<bool>,
}

/// Plans in storage.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PlanRepository: Send + Sync {
    /// Stores a new plan, active.
    ///
    /// # Errors
    /// Storage failures.
    async fn create_plan(&self, tx: &mut Tx, gym: GymId, plan: &NewPlan, now: OffsetDateTime) -> Result<Plan>;

    /// The gym's plans by id, only the active ones unless `retired` too.
    ///
    /// # Errors
    /// Storage failures.
    async fn plans(&self, gym: GymId, retired: bool, page: Page) -> Result<Vec<Plan>>;

    /// One plan of the gym, retired or not.
    ///
    /// # Errors
    /// Storage failures.
    async fn plan(&self, gym: GymId, id: i64) -> Result<Option<Plan>>;

    /// Applies a checked patch; `None` when the gym has no such plan.
    ///
    /// # Errors
    /// Storage failures.
    async fn update_plan(&self, tx: &mut Tx, gym: GymId, id: i64, patch: &PlanPatch) -> Result<Option<Plan>>;
}

/// The plans of a gym.
#[derive(Clone)]
pub struct PlanService {
    repo: Arc<dyn PlanRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PlanService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanService").finish_non_exhaustive()
    }
}

impl PlanService {
    /// Wires the service.
    pub fn new(repo: Arc<dyn PlanRepository>, uow: UnitOfWork, clock: Arc<dyn Clock>) -> Self {
        Self { repo, uow, clock }
    }

    /// Creates a plan (admin).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::Validation`];
    /// storage failures.
    pub async fn create(&self, actor: &Actor, plan: NewPlan) -> Result<Plan> {
        actor.require(policy::MANAGE_PLANS)?;
        let plan = NewPlan {
            name: required_text("name", &plan.name, limits::NAME_MAX)?,
            credits: credits_of(plan.kind, plan.credits)?,
            valid_days: within("valid_days", plan.valid_days, &VALID_DAYS)?,
            weekly_limit: plan.weekly_limit.map(|w| within("weekly_limit", w, &WEEKLY_LIMIT)).transpose()?,
            categories: plan.categories.map(categories).transpose()?,
            ..plan
        };
        let mut tx = self.uow.begin().await?;
        let created = self.repo.create_plan(&mut tx, actor.gym_id, &plan, self.clock.now()).await?;
        self.uow.commit(tx).await?;
        Ok(created)
    }

    /// The gym's active plans (any member); staff may ask for retired ones too.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] for a member asking for retired plans; storage failures.
    pub async fn list(&self, actor: &Actor, retired: bool, page: Page) -> Result<Vec<Plan>> {
        actor.require(if retired { policy::SEE_RETIRED_PLANS } else { policy::SEE_PLANS })?;
        self.repo.plans(actor.gym_id, retired, page).await
    }

    /// One plan of the gym, retired or not (a member's pass may name a retired one).
    ///
    /// # Errors
    /// [`DomainError::PlanNotFound`]; storage failures.
    pub async fn get(&self, actor: &Actor, id: i64) -> Result<Plan> {
        actor.require(policy::SEE_PLANS)?;
        self.repo.plan(actor.gym_id, id).await?.ok_or(DomainError::PlanNotFound)
    }

    /// Changes a plan (admin). Passes already sold keep what they were sold with.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::Validation`] (credits
    /// for an unlimited plan among them); [`DomainError::PlanNotFound`]; storage failures.
    pub async fn update(&self, actor: &Actor, id: i64, patch: PlanPatch) -> Result<Plan> {
        actor.require(policy::MANAGE_PLANS)?;
        let patch = PlanPatch {
            name: patch.name.map(|n| required_text("name", &n, limits::NAME_MAX)).transpose()?,
            credits: patch.credits.map(|c| within("credits", c, &CREDITS)).transpose()?,
            valid_days: patch.valid_days.map(|d| within("valid_days", d, &VALID_DAYS)).transpose()?,
            weekly_limit: patch
                .weekly_limit
                .map(|w| w.map(|w| within("weekly_limit", w, &WEEKLY_LIMIT)).transpose())
                .transpose()?,
            categories: patch.categories.map(|c| c.map(categories).transpose()).transpose()?,
            active: patch.active,
        };
        // A plan's kind never changes, so reading it before the write is no race.
        let plan = self.get(actor, id).await?;
        if plan.kind == PlanKind::Unlimited && patch.credits.is_some() {
            return Err(DomainError::validation("an unlimited plan has no credits"));
        }
        self.patch(actor, id, &patch).await
    }

    /// Retires a plan (admin): it is no longer listed or sold; passes already
    /// sold keep working.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::PlanNotFound`]; storage failures.
    pub async fn retire(&self, actor: &Actor, id: i64) -> Result<()> {
        actor.require(policy::MANAGE_PLANS)?;
        self.patch(actor, id, &PlanPatch { active: Some(false), ..PlanPatch::default() }).await.map(drop)
    }

    async fn patch(&self, actor: &Actor, id: i64, patch: &PlanPatch) -> Result<Plan> {
        let mut tx = self.uow.begin().await?;
        let plan = self.repo.update_plan(&mut tx, actor.gym_id, id, patch).await?.ok_or(DomainError::PlanNotFound)?;
        self.uow.commit(tx).await?;
        Ok(plan)
    }
}

/// A pack's credits, required and in range; none for an unlimited plan.
fn credits_of(kind: PlanKind, credits: Option<i32>) -> Result<Option<i32>> {
    match (kind, credits) {
        (PlanKind::Pack, Some(c)) => within("credits", c, &CREDITS).map(Some),
        (PlanKind::Pack, None) => Err(DomainError::validation("a pack needs credits")),
        (PlanKind::Unlimited, Some(_)) => Err(DomainError::validation("an unlimited plan has no credits")),
        (PlanKind::Unlimited, None) => Ok(None),
    }
}

fn within(field: &str, value: i32, range: &std::ops::RangeInclusive<i32>) -> Result<i32> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(DomainError::validation(format!("{field} must be between {} and {}", range.start(), range.end())))
    }
}

/// A restriction to categories: at least one, each a class category's text,
/// trimmed, without repeats (compared as classes are matched: ignoring case).
fn categories(list: Vec<String>) -> Result<Vec<String>> {
    if list.is_empty() || list.len() > CATEGORIES_MAX {
        return Err(DomainError::validation(format!(
            "categories must list 1 to {CATEGORIES_MAX} categories, or be null for any class"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for c in &list {
        let c = required_text("categories", c, limits::CATEGORY_MAX)?;
        if !out.iter().any(|o| o.to_lowercase() == c.to_lowercase()) {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::{committing, untouched};
    use crate::{Role, UserId};

    const NOW: OffsetDateTime = datetime!(2026-12-08 10:00 UTC);

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GymId(2), role }
    }

    fn pack(credits: Option<i32>) -> NewPlan {
        NewPlan {
            name: "  Ten classes ".into(),
            kind: PlanKind::Pack,
            credits,
            valid_days: 90,
            weekly_limit: None,
            categories: None,
        }
    }

    fn stored(gym: GymId, p: &NewPlan, at: OffsetDateTime) -> Plan {
        Plan {
            id: 5,
            gym_id: gym,
            name: p.name.clone(),
            kind: p.kind,
            credits: p.credits,
            valid_days: p.valid_days,
            weekly_limit: p.weekly_limit,
            categories: p.categories.clone(),
            active: true,
            created_at: at,
        }
    }

    fn service(repo: MockPlanRepository, uow: UnitOfWork) -> PlanService {
        PlanService::new(Arc::new(repo), uow, Arc::new(FixedClock(NOW)))
    }

    #[tokio::test]
    async fn an_admin_creates_a_pack_with_its_name_trimmed_and_its_categories_without_repeats() {
        let mut repo = MockPlanRepository::new();
        repo.expect_create_plan()
            .withf(|_, g, p, at| {
                *g == GymId(2)
                    && p.name == "Ten classes"
                    && p.credits == Some(10)
                    && p.categories == Some(vec!["Yoga".into(), "Spin".into()])
                    && *at == NOW
            })
            .once()
            .returning(|_, g, p, at| Ok(stored(g, p, at)));
        let plan = NewPlan { categories: Some(vec![" Yoga".into(), "Spin".into(), "yoga ".into()]), ..pack(Some(10)) };
        let got = service(repo, committing(vec![])).create(&actor(Role::Admin), plan).await;
        assert_eq!(got.map(|p| p.credits), Ok(Some(10)));
    }

    #[tokio::test]
    async fn credits_follow_the_kind_and_every_number_its_range_before_anything_is_written() {
        let refused = [
            pack(None),
            pack(Some(0)),
            pack(Some(1001)),
            NewPlan { kind: PlanKind::Unlimited, ..pack(Some(5)) },
            NewPlan { valid_days: 0, ..pack(Some(5)) },
            NewPlan { valid_days: 3661, ..pack(Some(5)) },
            NewPlan { weekly_limit: Some(0), ..pack(Some(5)) },
            NewPlan { weekly_limit: Some(101), ..pack(Some(5)) },
            NewPlan { categories: Some(vec![]), ..pack(Some(5)) },
            NewPlan { categories: Some(vec!["  ".into()]), ..pack(Some(5)) },
            NewPlan { categories: Some(vec!["x".repeat(101)]), ..pack(Some(5)) },
            NewPlan { categories: Some((0..21).map(|i| i.to_string()).collect()), ..pack(Some(5)) },
            NewPlan { name: " ".into(), ..pack(Some(5)) },
        ];
        for plan in refused {
            let got = service(MockPlanRepository::new(), untouched()).create(&actor(Role::Owner), plan.clone()).await;
            assert!(matches!(got, Err(DomainError::Validation(_))), "{plan:?}: {got:?}");
        }
    }

    #[tokio::test]
    async fn only_admins_manage_plans_and_only_staff_see_retired_ones() {
        let svc = service(MockPlanRepository::new(), untouched());
        let trainer = actor(Role::Trainer);
        assert_eq!(svc.create(&trainer, pack(Some(5))).await, Err(DomainError::Forbidden));
        assert_eq!(svc.update(&trainer, 5, PlanPatch::default()).await, Err(DomainError::Forbidden));
        assert_eq!(svc.retire(&trainer, 5).await, Err(DomainError::Forbidden));
        assert_eq!(svc.list(&actor(Role::Member), true, Page::default()).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn an_unlimited_plan_takes_no_credits_in_a_patch_and_nothing_is_written() {
        let mut repo = MockPlanRepository::new();
        let unlimited = NewPlan { kind: PlanKind::Unlimited, ..pack(None) };
        repo.expect_plan().returning(move |g, _| Ok(Some(stored(g, &unlimited, NOW))));
        repo.expect_update_plan().never();
        let got = service(repo, untouched())
            .update(&actor(Role::Admin), 5, PlanPatch { credits: Some(3), ..PlanPatch::default() })
            .await;
        assert!(matches!(got, Err(DomainError::Validation(_))), "{got:?}");
    }

    #[tokio::test]
    async fn retiring_a_plan_of_another_gym_is_not_found() {
        let mut repo = MockPlanRepository::new();
        repo.expect_update_plan()
            .withf(|_, g, id, p| *g == GymId(2) && *id == 9 && p.active == Some(false))
            .once()
            .returning(|_, _, _, _| Ok(None));
        let got = service(repo, crate::mocks::rolling_back()).retire(&actor(Role::Admin), 9).await;
        assert_eq!(got, Err(DomainError::PlanNotFound));
    }
}
