//! Passes and the credit ledger: what a member holds, and every movement of a
//! pack's credits as an append-only entry.
//!
//! A pack's credits exist only as the ledger's running balance: the storage keeps
//! the entries of a pass as a chain in which each names the one before it, so its
//! credits left always equal its grant plus the sum of its entries and never go
//! below zero (see the `passes` migration). A writer appends under the pass's
//! lock; a writer that raced past it anyway fails instead of forking the chain.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Date, Duration, OffsetDateTime, Time};

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::plans::{Plan, PlanKind, PlanRepository};
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, GymId, Page, SessionId, UserId, instant_in, required_text};
use crate::{policy, values};

/// How far from today (the gym's) a pass may start, in days, either way.
pub const STARTS_WITHIN_DAYS: i64 = 366;
/// Most credits one adjustment adds or removes.
pub const ADJUST_MAX: i32 = 1000;
/// Longest freeze, in days.
pub const FREEZE_MAX_DAYS: i64 = 366;
/// Longest reason of an adjustment.
pub const REASON_MAX: usize = 500;
/// Most passes one run of the expiry job expires (the rest wait for the next run).
pub const EXPIRES_PER_RUN: u64 = 500;

/// Where a pass stands at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassStatus {
    /// Usable (from its start).
    Active,
    /// Within its freeze.
    Frozen,
    /// Past its expiry.
    Expired,
    /// Ended by the gym.
    Cancelled,
}

impl PassStatus {
    /// Every status's name, as the API spells it.
    pub const ALL: [&'static str; 4] = ["active", "frozen", "expired", "cancelled"];

    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Frozen => "frozen",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A pass a member holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Identifier.
    pub id: i64,
    /// The gym it is used at.
    pub gym_id: GymId,
    /// Its holder.
    pub member_id: UserId,
    /// The plan it was sold from.
    pub plan_id: i64,
    /// As the plan's at the sale.
    pub kind: PlanKind,
    /// A pack's credits at the sale; `None` for an unlimited pass.
    pub credits_total: Option<i32>,
    /// A pack's credits now (its ledger's balance); `None` for an unlimited pass.
    pub credits_left: Option<i32>,
    /// From when it is valid (the start of its first day, on the gym's wall clock).
    pub starts_at: OffsetDateTime,
    /// When it stops being valid.
    pub expires_at: OffsetDateTime,
    /// When the gym ended it.
    pub cancelled_at: Option<OffsetDateTime>,
    /// Its freeze, if it has had one: from the first instant of its first day to
    /// the first instant after its last (the gym's wall clock).
    pub frozen: Option<(OffsetDateTime, OffsetDateTime)>,
    /// When it was sold.
    pub created_at: OffsetDateTime,
    /// Most bookings per ISO week, as its plan had it at the sale.
    pub weekly_limit: Option<i32>,
    /// The class categories it may book, as its plan had them at the sale; `None`: any.
    pub categories: Option<Vec<String>>,
}

impl Pass {
    /// Its status at `now`.
    pub fn status(&self, now: OffsetDateTime) -> PassStatus {
        if self.cancelled_at.is_some() {
            PassStatus::Cancelled
        } else if now >= self.expires_at {
            PassStatus::Expired
        } else if self.frozen.is_some_and(|(from, until)| from <= now && now < until) {
            PassStatus::Frozen
        } else {
            PassStatus::Active
        }
    }
}

/// What moved a pack's credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The credits a pass was sold with (its first entry).
    Grant,
    /// A booking took one.
    Use,
    /// A cancellation gave one back.
    Refund,
    /// A late cancel kept it for the gym.
    Forfeit,
    /// The pass expired with credits left.
    Expire,
    /// Staff added or removed some by hand.
    Adjust,
}

impl EntryKind {
    /// Every kind's name, as the API spells it.
    pub const ALL: [&'static str; 6] = ["grant", "use", "refund", "forfeit", "expire", "adjust"];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Use => "use",
            Self::Refund => "refund",
            Self::Forfeit => "forfeit",
            Self::Expire => "expire",
            Self::Adjust => "adjust",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().position(|k| *k == s).and_then(|i| {
            [Self::Grant, Self::Use, Self::Refund, Self::Forfeit, Self::Expire, Self::Adjust].get(i).copied()
        })
    }
}

/// Who or what caused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A member of staff (named by the entry's actor).
    Staff,
    /// The member themself (a booking or a cancellation).
    Member,
    /// A payment system's signed event.
    Payment,
    /// A job (expiry, no-shows).
    Job,
}

impl Cause {
    /// Every cause's name, as the API spells it.
    pub const ALL: [&'static str; 4] = ["staff", "member", "payment", "job"];

    /// The cause's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Member => "member",
            Self::Payment => "payment",
            Self::Job => "job",
        }
    }

    /// The cause of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .position(|k| *k == s)
            .and_then(|i| [Self::Staff, Self::Member, Self::Payment, Self::Job].get(i).copied())
    }
}

/// One entry of the ledger: a movement at its place in its pass's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditEntry {
    /// The pass whose credits moved.
    pub pass_id: i64,
    /// Its place in the pass's chain, from 1 (the grant).
    pub seq: i32,
    /// The pass's credits after it.
    pub balance: i32,
    /// What moved, why and by whom.
    pub movement: NewEntry,
}

/// A movement of a pack's credits, to append to its chain (its place and balance
/// are the storage's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// What moves the credits.
    pub kind: EntryKind,
    /// Signed: added (positive) or taken (negative).
    pub credits: i32,
    /// The booking it belongs to, when there is one.
    pub participation_id: Option<i64>,
    /// Why, for an adjustment.
    pub reason: Option<String>,
    /// The user who causes it, when one does.
    pub actor_id: Option<UserId>,
    /// Who or what causes it.
    pub cause: Cause,
    /// When.
    pub at: OffsetDateTime,
}

/// A pass to store, with its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPass {
    /// Its holder.
    pub member_id: UserId,
    /// The plan it is sold from, as it is at the sale.
    pub plan: Plan,
    /// From when it is valid.
    pub starts_at: OffsetDateTime,
    /// When it stops.
    pub expires_at: OffsetDateTime,
    /// Who sold it.
    pub actor_id: Option<UserId>,
    /// Who or what sold it.
    pub cause: Cause,
    /// The payment system's event that paid for it: one pass per event.
    pub payment_event_id: Option<String>,
    /// When.
    pub at: OffsetDateTime,
}

/// What a booking asks of a member's passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditAsk {
    /// The gym.
    pub gym: GymId,
    /// The member booking.
    pub member: UserId,
    /// The session booked.
    pub session: SessionId,
    /// Its start: a pass must be valid then.
    pub start: OffsetDateTime,
    /// The ISO week of the start on the gym's wall clock, `[monday, next monday)`.
    pub week: (OffsetDateTime, OffsetDateTime),
}

/// A pass a booking might use, read under its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usable {
    /// Which ask of the read it answers (its index).
    pub ask: usize,
    /// The pass, with its credits left.
    pub pass: Pass,
    /// Bookings that used it for sessions in the ask's week (not given back); 0 for
    /// a pass without a weekly limit, which no count can refuse.
    pub week_uses: i64,
    /// The category of the ask's session's class; `None` for a pass without
    /// categories, which allows every class.
    pub category: Option<String>,
}

/// A ledger entry of a booking: its participation and credit number are the
/// member's current ones in the session (the storage reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingEntry {
    /// The gym.
    pub gym: GymId,
    /// The pass.
    pub pass: i64,
    /// The session booked.
    pub session: SessionId,
    /// The member.
    pub member: UserId,
    /// `use`, `refund` or `forfeit`, and who caused it.
    pub entry: NewEntry,
}

/// Passes and their ledger in storage.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PassRepository: Send + Sync {
    /// The gym's IANA time zone; `None` when there is no such gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn gym_zone(&self, gym: GymId) -> Result<Option<String>>;

    /// Stores a pass and, for a pack, its grant as the ledger's first entry, and
    /// answers it with `true`; a pass of the same payment event stored before is
    /// answered instead, with `false`. `None` when the holder is not a member.
    ///
    /// # Errors
    /// Storage failures.
    async fn sell(&self, tx: &mut Tx, gym: GymId, pass: &NewPass) -> Result<Option<(Pass, bool)>>;

    /// The pass a payment event granted in the gym, if one did.
    ///
    /// # Errors
    /// Storage failures.
    async fn pass_by_event(&self, gym: GymId, event: &str) -> Result<Option<Pass>>;

    /// Whether the user is a member of the gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn is_member(&self, gym: GymId, user: UserId) -> Result<bool>;

    /// The member's passes, newest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn passes(&self, gym: GymId, member: UserId, page: Page) -> Result<Vec<Pass>>;

    /// One of the member's passes, locked until the transaction ends.
    ///
    /// # Errors
    /// Storage failures.
    async fn lock_pass(&self, tx: &mut Tx, gym: GymId, member: UserId, id: i64) -> Result<Option<Pass>>;

    /// Ends a pass at `at`.
    ///
    /// # Errors
    /// Storage failures.
    async fn cancel_pass(&self, tx: &mut Tx, gym: GymId, id: i64, at: OffsetDateTime) -> Result<()>;

    /// Freezes a pass over `[from, until)` and moves its expiry to `expires_at`.
    ///
    /// # Errors
    /// Storage failures.
    async fn freeze_pass(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        from: OffsetDateTime,
        until: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<()>;

    /// Appends an entry to a pack's chain. A balance that would go below zero, or
    /// a chain extended meanwhile by a writer that did not hold the lock, is an
    /// error and appends nothing.
    ///
    /// # Errors
    /// Storage failures.
    async fn append(&self, tx: &mut Tx, gym: GymId, pass: i64, entry: &NewEntry) -> Result<()>;

    /// The member's entries across their passes, newest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn ledger(&self, gym: GymId, member: UserId, page: Page) -> Result<Vec<CreditEntry>>;

    /// Locks every pass of each ask's member that is not cancelled and is valid at
    /// the ask's start, and the passes `also`, by one statement (lock order 4, in
    /// ascending `(gym, id)`), then reads the asks' passes by the next statement with
    /// their credits left, their uses in the ask's week and the category of the
    /// ask's class.
    ///
    /// # Errors
    /// Storage failures.
    async fn lock_usable(&self, tx: &mut Tx, asks: &[CreditAsk], also: &[(GymId, i64)]) -> Result<Vec<Usable>>;

    /// Locks passes, given in ascending `(gym, id)` (lock order 4).
    ///
    /// # Errors
    /// Storage failures.
    async fn lock_passes(&self, tx: &mut Tx, passes: &[(GymId, i64)]) -> Result<()>;

    /// Appends each booking's entry to its pack's chain, naming the member's current
    /// booking of the session (its participation and credit number), one row per
    /// pass; answers the passes appended to (an unlimited pass has no chain). A
    /// second use or return of one booking is refused by the storage.
    ///
    /// # Errors
    /// Storage failures.
    async fn append_for_bookings(&self, tx: &mut Tx, rows: &[BookingEntry]) -> Result<Vec<(GymId, i64)>>;

    /// The passes the session's places (`registered` or `attended`) were booked
    /// with, and their members (called with the session locked).
    ///
    /// # Errors
    /// Storage failures.
    async fn passes_used_in(&self, tx: &mut Tx, gym: GymId, session: SessionId) -> Result<Vec<(i64, UserId)>>;

    /// Passes past their expiry at `now`, not cancelled, with credits left: at most
    /// `limit`, as `(gym, member, pass)`.
    ///
    /// # Errors
    /// Storage failures.
    async fn expired_with_credits(&self, now: OffsetDateTime, limit: u64) -> Result<Vec<(GymId, UserId, i64)>>;
}

/// One sale, by staff or by a payment.
struct Sale {
    member: UserId,
    plan_id: i64,
    starts_on: Option<Date>,
    actor_id: Option<UserId>,
    cause: Cause,
    event: Option<String>,
}

/// Sells passes and moves their credits by hand.
#[derive(Clone)]
pub struct PassService {
    repo: Arc<dyn PassRepository>,
    plans: Arc<dyn PlanRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PassService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassService").finish_non_exhaustive()
    }
}

impl PassService {
    /// Wires the service.
    pub fn new(
        repo: Arc<dyn PassRepository>,
        plans: Arc<dyn PlanRepository>,
        uow: UnitOfWork,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { repo, plans, uow, clock }
    }

    /// Sells a pass of an active plan to a member (staff). It starts at the first
    /// instant of `starts_on` on the gym's wall clock (today's by default) and
    /// expires at the first instant of the day `valid_days` later.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below staff; [`DomainError::PlanNotFound`];
    /// [`DomainError::Validation`] for a retired plan or a start too far from today;
    /// [`DomainError::UserNotFound`] for someone who is not a member; storage failures.
    pub async fn sell(&self, actor: &Actor, member: UserId, plan_id: i64, starts_on: Option<Date>) -> Result<Pass> {
        actor.require(policy::SELL_PASSES)?;
        let sale = Sale { member, plan_id, starts_on, actor_id: Some(actor.user_id), cause: Cause::Staff, event: None };
        self.store(actor.gym_id, sale).await.map(|(pass, _)| pass)
    }

    /// Grants the pass a payment event paid for, from today on the gym's clock,
    /// once per event id (see `payments`); answers whether this call granted it.
    ///
    /// # Errors
    /// As [`PassService::sell`], but for the role.
    pub async fn grant_paid(&self, gym: GymId, member: UserId, plan_id: i64, event_id: &str) -> Result<(Pass, bool)> {
        let sale = Sale {
            member,
            plan_id,
            starts_on: None,
            actor_id: None,
            cause: Cause::Payment,
            event: Some(event_id.into()),
        };
        self.store(gym, sale).await
    }

    async fn store(&self, gym: GymId, sale: Sale) -> Result<(Pass, bool)> {
        let Sale { member, plan_id, starts_on, actor_id, cause, event } = sale;
        // A retry of an event already granted answers its pass, however the plan
        // has changed since (retired included): the payment system must not see a
        // refusal for what it was told succeeded.
        if let Some(event) = &event
            && let Some(granted) = self.repo.pass_by_event(gym, event).await?
        {
            return Ok((granted, false));
        }
        let plan = self.plans.plan(gym, plan_id).await?.ok_or(DomainError::PlanNotFound)?;
        if !plan.active {
            return Err(DomainError::validation("the plan is retired: it is no longer sold"));
        }
        let zone = self.zone(gym).await?;
        let now = self.clock.now();
        let today = values::local_date(&zone, now)?;
        let starts_on = starts_on.unwrap_or(today);
        if (starts_on - today).whole_days().abs() > STARTS_WITHIN_DAYS {
            return Err(DomainError::validation(format!(
                "starts_on must be within {STARTS_WITHIN_DAYS} days of today"
            )));
        }
        let ends_on = starts_on
            .checked_add(Duration::days(i64::from(plan.valid_days)))
            .ok_or_else(|| DomainError::validation("the pass would end past the calendar"))?;
        let pass = NewPass {
            member_id: member,
            starts_at: instant_in(&zone, starts_on, Time::MIDNIGHT)?,
            expires_at: instant_in(&zone, ends_on, Time::MIDNIGHT)?,
            plan,
            actor_id,
            cause,
            payment_event_id: event,
            at: now,
        };
        let mut tx = self.uow.begin().await?;
        let sold = self.repo.sell(&mut tx, gym, &pass).await?.ok_or(DomainError::UserNotFound)?;
        if let (granted, true) = &sold {
            tx.record(DomainEvent::PassGranted {
                gym,
                pass: granted.id,
                member,
                plan: plan_id,
                credits: granted.credits_total,
            });
        }
        self.uow.commit(tx).await?;
        Ok(sold)
    }

    /// A member's passes, newest first: their own, or anyone's for staff.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`]; [`DomainError::UserNotFound`] for someone who is
    /// not a member; storage failures.
    pub async fn passes(&self, actor: &Actor, member: UserId, page: Page) -> Result<Vec<Pass>> {
        self.may_see(actor, member).await?;
        self.repo.passes(actor.gym_id, member, page).await
    }

    /// A member's ledger, newest first: their own, or anyone's for staff.
    ///
    /// # Errors
    /// As [`PassService::passes`].
    pub async fn ledger(&self, actor: &Actor, member: UserId, page: Page) -> Result<Vec<CreditEntry>> {
        self.may_see(actor, member).await?;
        self.repo.ledger(actor.gym_id, member, page).await
    }

    /// Ends a pass (admin): it can no longer be used; its credits stay as they
    /// are, in the ledger. Ending an ended pass changes nothing.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::PassNotFound`]; storage failures.
    pub async fn cancel(&self, actor: &Actor, member: UserId, id: i64) -> Result<Pass> {
        actor.require(policy::END_PASSES)?;
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        let mut pass =
            self.repo.lock_pass(&mut tx, actor.gym_id, member, id).await?.ok_or(DomainError::PassNotFound)?;
        if pass.cancelled_at.is_none() {
            self.repo.cancel_pass(&mut tx, actor.gym_id, id, now).await?;
            pass.cancelled_at = Some(now);
        }
        self.uow.commit(tx).await?;
        Ok(pass)
    }

    /// Freezes a pass (staff) for the dates `from..=until` on the gym's wall clock:
    /// it cannot be used on those days, and its expiry moves out by as many days.
    /// One freeze at a time, starting today or later and before the pass expires.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below staff; [`DomainError::PassNotFound`];
    /// [`DomainError::Validation`] for dates out of order, longer than
    /// [`FREEZE_MAX_DAYS`], in the past or past the expiry, an ended or expired pass,
    /// or one with a freeze not over yet; storage failures.
    pub async fn freeze(&self, actor: &Actor, member: UserId, id: i64, from: Date, until: Date) -> Result<Pass> {
        actor.require(policy::FREEZE_PASSES)?;
        let days = (until - from).whole_days() + 1;
        if !(1..=FREEZE_MAX_DAYS).contains(&days) {
            return Err(DomainError::validation(format!(
                "a freeze runs from a date to the same or a later one, at most {FREEZE_MAX_DAYS} days"
            )));
        }
        let zone = self.zone(actor.gym_id).await?;
        let now = self.clock.now();
        if from < values::local_date(&zone, now)? {
            return Err(DomainError::validation("a freeze starts today or later"));
        }
        let day_after = until.next_day().ok_or_else(|| DomainError::validation("until is past the calendar"))?;
        let (from_at, until_at) =
            (instant_in(&zone, from, Time::MIDNIGHT)?, instant_in(&zone, day_after, Time::MIDNIGHT)?);
        let mut tx = self.uow.begin().await?;
        let mut pass =
            self.repo.lock_pass(&mut tx, actor.gym_id, member, id).await?.ok_or(DomainError::PassNotFound)?;
        match pass.status(now) {
            PassStatus::Cancelled | PassStatus::Expired => {
                return Err(DomainError::validation("the pass has ended: it cannot be frozen"));
            }
            _ if pass.frozen.is_some_and(|(_, end)| end > now) => {
                return Err(DomainError::validation("the pass has a freeze already: one at a time"));
            }
            _ if from_at >= pass.expires_at => {
                return Err(DomainError::validation("a freeze starts before the pass expires"));
            }
            _ => {}
        }
        let expiry_day = values::local_date(&zone, pass.expires_at)?
            .checked_add(Duration::days(days))
            .ok_or_else(|| DomainError::validation("the pass would end past the calendar"))?;
        let expires_at = instant_in(&zone, expiry_day, Time::MIDNIGHT)?;
        self.repo.freeze_pass(&mut tx, actor.gym_id, id, from_at, until_at, expires_at).await?;
        self.uow.commit(tx).await?;
        pass.frozen = Some((from_at, until_at));
        pass.expires_at = expires_at;
        Ok(pass)
    }

    /// Adds (positive) or removes (negative) a pack's credits by hand (admin), with
    /// the reason kept in the ledger.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::PassNotFound`];
    /// [`DomainError::Validation`] for zero or more than [`ADJUST_MAX`] credits, a
    /// blank reason, an unlimited or ended pass, or a balance that would go below
    /// zero; storage failures.
    pub async fn adjust(&self, actor: &Actor, member: UserId, id: i64, credits: i32, reason: &str) -> Result<Pass> {
        actor.require(policy::ADJUST_CREDITS)?;
        if credits == 0 || credits.unsigned_abs() > ADJUST_MAX.unsigned_abs() {
            return Err(DomainError::validation(format!(
                "credits must be between -{ADJUST_MAX} and {ADJUST_MAX}, and not 0"
            )));
        }
        let reason = required_text("reason", reason, REASON_MAX)?;
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        let mut pass =
            self.repo.lock_pass(&mut tx, actor.gym_id, member, id).await?.ok_or(DomainError::PassNotFound)?;
        let Some(left) = pass.credits_left else {
            return Err(DomainError::validation("an unlimited pass has no credits to adjust"));
        };
        if pass.cancelled_at.is_some() {
            return Err(DomainError::validation("the pass was cancelled"));
        }
        let balance = left.checked_add(credits).filter(|b| *b >= 0).ok_or_else(|| {
            DomainError::validation(format!("the pass has {left} credits: {credits} would leave fewer than none"))
        })?;
        let entry = NewEntry {
            kind: EntryKind::Adjust,
            credits,
            participation_id: None,
            reason: Some(reason),
            actor_id: Some(actor.user_id),
            cause: Cause::Staff,
            at: now,
        };
        self.repo.append(&mut tx, actor.gym_id, id, &entry).await?;
        self.uow.commit(tx).await?;
        pass.credits_left = Some(balance);
        Ok(pass)
    }

    /// Expires the credits left on passes past their expiry (the job every instance
    /// runs): one `expire` entry taking the balance to zero and a `pass_expired` fact
    /// per pass, each pass in its own transaction under its lock, so instances
    /// running at once expire a pass once (the second finds nothing left). At most
    /// [`EXPIRES_PER_RUN`] per run; answers how many were expired. A credit given
    /// back to an expired pass later (its session cancelled) is expired by the next run.
    ///
    /// # Errors
    /// Storage failures (what was committed before stays).
    pub async fn expire_passes(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut expired = 0;
        for (gym, member, id) in self.repo.expired_with_credits(now, EXPIRES_PER_RUN).await? {
            let mut tx = self.uow.begin().await?;
            let Some(pass) = self.repo.lock_pass(&mut tx, gym, member, id).await? else { continue };
            let left = pass.credits_left.unwrap_or(0);
            if left <= 0 || pass.cancelled_at.is_some() || pass.expires_at > now {
                continue;
            }
            let entry = NewEntry {
                kind: EntryKind::Expire,
                credits: -left,
                participation_id: None,
                reason: None,
                actor_id: None,
                cause: Cause::Job,
                at: now,
            };
            self.repo.append(&mut tx, gym, id, &entry).await?;
            tx.record(DomainEvent::PassExpired { gym, pass: id, member, credits: left });
            self.uow.commit(tx).await?;
            expired += 1;
        }
        Ok(expired)
    }

    async fn zone(&self, gym: GymId) -> Result<jiff::tz::TimeZone> {
        values::gym_zone(&self.repo.gym_zone(gym).await?.ok_or(DomainError::NotAMember)?)
    }

    async fn may_see(&self, actor: &Actor, member: UserId) -> Result<()> {
        if actor.user_id != member {
            actor.require(policy::SEE_MEMBERS)?;
            if !self.repo.is_member(actor.gym_id, member).await? {
                return Err(DomainError::UserNotFound);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::Role;
    use crate::clock::FixedClock;
    use crate::mocks::{MockPlanRepository, committing, rolling_back, untouched};

    // 23:30 UTC on the 7th is already the 8th in Madrid (UTC+1).
    const NOW: OffsetDateTime = datetime!(2026-12-07 23:30 UTC);

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GymId(2), role }
    }

    fn plan(active: bool) -> Plan {
        Plan {
            id: 4,
            gym_id: GymId(2),
            name: "Ten".into(),
            kind: PlanKind::Pack,
            credits: Some(10),
            valid_days: 30,
            weekly_limit: None,
            categories: None,
            active,
            created_at: NOW,
        }
    }

    fn pass(credits_left: Option<i32>) -> Pass {
        Pass {
            id: 8,
            gym_id: GymId(2),
            member_id: UserId(3),
            plan_id: 4,
            kind: if credits_left.is_some() { PlanKind::Pack } else { PlanKind::Unlimited },
            credits_total: credits_left.map(|_| 10),
            credits_left,
            starts_at: NOW,
            expires_at: NOW + Duration::days(30),
            cancelled_at: None,
            frozen: None,
            created_at: NOW,
            weekly_limit: None,
            categories: None,
        }
    }

    fn plans_answering(p: Plan) -> MockPlanRepository {
        let mut plans = MockPlanRepository::new();
        plans.expect_plan().returning(move |_, _| Ok(Some(p.clone())));
        plans
    }

    fn service(repo: MockPassRepository, plans: MockPlanRepository, uow: UnitOfWork) -> PassService {
        PassService::new(Arc::new(repo), Arc::new(plans), uow, Arc::new(FixedClock(NOW)))
    }

    #[tokio::test]
    async fn a_pass_runs_from_the_first_instant_of_its_day_on_the_gyms_clock_for_the_plans_days_and_is_a_fact() {
        let mut repo = MockPassRepository::new();
        repo.expect_gym_zone().returning(|_| Ok(Some("Europe/Madrid".into())));
        repo.expect_sell()
            .withf(|_, g, p| {
                *g == GymId(2)
                    && p.member_id == UserId(3)
                    && p.starts_at == datetime!(2026-12-07 23:00 UTC)
                    && p.expires_at == datetime!(2027-01-06 23:00 UTC)
                    && p.plan.credits == Some(10)
                    && p.actor_id == Some(UserId(1))
                    && p.cause == Cause::Staff
            })
            .once()
            .returning(|_, _, _| Ok(Some((pass(Some(10)), true))));
        let got = service(
            repo,
            plans_answering(plan(true)),
            committing(vec![DomainEvent::PassGranted {
                gym: GymId(2),
                pass: 8,
                member: UserId(3),
                plan: 4,
                credits: Some(10),
            }]),
        )
        .sell(&actor(Role::Trainer), UserId(3), 4, None)
        .await;
        assert!(got.is_ok(), "{got:?}");
    }

    #[tokio::test]
    async fn a_retired_plan_a_far_start_and_a_member_below_staff_sell_nothing() {
        let svc = service(MockPassRepository::new(), plans_answering(plan(false)), untouched());
        assert!(matches!(svc.sell(&actor(Role::Admin), UserId(3), 4, None).await, Err(DomainError::Validation(_))));
        let svc = service(MockPassRepository::new(), MockPlanRepository::new(), untouched());
        assert_eq!(svc.sell(&actor(Role::Member), UserId(3), 4, None).await, Err(DomainError::Forbidden));
        let mut repo = MockPassRepository::new();
        repo.expect_gym_zone().returning(|_| Ok(Some("UTC".into())));
        repo.expect_sell().never();
        let svc = service(repo, plans_answering(plan(true)), untouched());
        let far = svc.sell(&actor(Role::Admin), UserId(3), 4, Some(date!(2028 - 01 - 01))).await;
        assert!(matches!(far, Err(DomainError::Validation(_))), "{far:?}");
    }

    #[tokio::test]
    async fn an_adjustment_below_zero_appends_nothing_and_one_within_appends_its_signed_entry() {
        let mut repo = MockPassRepository::new();
        repo.expect_lock_pass().returning(|_, _, _, _| Ok(Some(pass(Some(2)))));
        repo.expect_append().never();
        let got = service(repo, MockPlanRepository::new(), rolling_back())
            .adjust(&actor(Role::Admin), UserId(3), 8, -3, "refund of a broken class")
            .await;
        assert!(matches!(got, Err(DomainError::Validation(_))), "{got:?}");

        let mut repo = MockPassRepository::new();
        repo.expect_lock_pass().returning(|_, _, _, _| Ok(Some(pass(Some(2)))));
        repo.expect_append()
            .withf(|_, g, id, e| {
                *g == GymId(2)
                    && *id == 8
                    && e.kind == EntryKind::Adjust
                    && e.credits == -2
                    && e.reason.as_deref() == Some("double sale")
                    && e.actor_id == Some(UserId(1))
            })
            .once()
            .returning(|_, _, _, _| Ok(()));
        let got = service(repo, MockPlanRepository::new(), committing(vec![]))
            .adjust(&actor(Role::Owner), UserId(3), 8, -2, " double sale ")
            .await;
        assert_eq!(got.map(|p| p.credits_left), Ok(Some(0)));
    }

    #[tokio::test]
    async fn adjustments_need_an_admin_a_reason_a_pack_and_a_bounded_nonzero_amount() {
        let svc = service(MockPassRepository::new(), MockPlanRepository::new(), untouched());
        let admin = actor(Role::Admin);
        assert_eq!(svc.adjust(&actor(Role::Trainer), UserId(3), 8, 1, "x").await, Err(DomainError::Forbidden));
        for (credits, reason) in [(0, "x"), (1001, "x"), (-1001, "x"), (i32::MIN, "x"), (1, " ")] {
            let got = svc.adjust(&admin, UserId(3), 8, credits, reason).await;
            assert!(matches!(got, Err(DomainError::Validation(_))), "{credits} {reason:?}: {got:?}");
        }
        let mut repo = MockPassRepository::new();
        repo.expect_lock_pass().returning(|_, _, _, _| Ok(Some(pass(None))));
        repo.expect_append().never();
        let got = service(repo, MockPlanRepository::new(), rolling_back()).adjust(&admin, UserId(3), 8, 1, "x").await;
        assert!(matches!(got, Err(DomainError::Validation(_))), "unlimited: {got:?}");
    }

    #[tokio::test]
    async fn a_member_sees_their_own_passes_and_not_anothers() {
        let mut repo = MockPassRepository::new();
        repo.expect_passes().withf(|g, m, _| *g == GymId(2) && *m == UserId(1)).once().returning(|_, _, _| Ok(vec![]));
        let svc = service(repo, MockPlanRepository::new(), untouched());
        assert_eq!(svc.passes(&actor(Role::Member), UserId(1), Page::default()).await, Ok(vec![]));
        assert_eq!(svc.passes(&actor(Role::Member), UserId(3), Page::default()).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_freeze_moves_the_expiry_out_by_its_days_on_the_gyms_clock_and_one_at_a_time() {
        let mut repo = MockPassRepository::new();
        repo.expect_gym_zone().returning(|_| Ok(Some("Europe/Madrid".into())));
        // Sold to expire at Madrid's midnight of 2027-01-07 (23:00 UTC the day before).
        let sold = Pass { expires_at: datetime!(2027-01-06 23:00 UTC), ..pass(Some(5)) };
        repo.expect_lock_pass().returning(move |_, _, _, _| Ok(Some(sold.clone())));
        repo.expect_freeze_pass()
            .withf(|_, g, id, from, until, exp| {
                *g == GymId(2)
                    && *id == 8
                    && *from == datetime!(2026-12-09 23:00 UTC)
                    && *until == datetime!(2026-12-12 23:00 UTC)
                    && *exp == datetime!(2027-01-09 23:00 UTC)
            })
            .once()
            .returning(|_, _, _, _, _, _| Ok(()));
        let got = service(repo, MockPlanRepository::new(), committing(vec![]))
            .freeze(&actor(Role::Trainer), UserId(3), 8, date!(2026 - 12 - 10), date!(2026 - 12 - 12))
            .await;
        let frozen = got.expect("frozen");
        assert_eq!(frozen.status(datetime!(2026-12-10 12:00 UTC)), PassStatus::Frozen);
        assert_eq!(frozen.status(datetime!(2026-12-12 23:00 UTC)), PassStatus::Active, "over at the day after");

        let mut repo = MockPassRepository::new();
        repo.expect_gym_zone().returning(|_| Ok(Some("Europe/Madrid".into())));
        let held = Pass { frozen: Some((NOW, NOW + Duration::days(2))), ..pass(Some(5)) };
        repo.expect_lock_pass().returning(move |_, _, _, _| Ok(Some(held.clone())));
        repo.expect_freeze_pass().never();
        let again = service(repo, MockPlanRepository::new(), rolling_back())
            .freeze(&actor(Role::Trainer), UserId(3), 8, date!(2026 - 12 - 20), date!(2026 - 12 - 21))
            .await;
        assert!(matches!(again, Err(DomainError::Validation(_))), "{again:?}");
    }

    #[tokio::test]
    async fn freezes_in_the_past_backwards_or_too_long_touch_nothing() {
        let mut repo = MockPassRepository::new();
        repo.expect_gym_zone().returning(|_| Ok(Some("Europe/Madrid".into())));
        let svc = service(repo, MockPlanRepository::new(), untouched());
        let staff = actor(Role::Trainer);
        for (from, until) in [
            (date!(2026 - 12 - 07), date!(2026 - 12 - 09)),
            (date!(2026 - 12 - 12), date!(2026 - 12 - 10)),
            (date!(2026 - 12 - 10), date!(2027 - 12 - 31)),
        ] {
            let got = svc.freeze(&staff, UserId(3), 8, from, until).await;
            assert!(matches!(got, Err(DomainError::Validation(_))), "{from}..{until}: {got:?}");
        }
        let member = actor(Role::Member);
        assert_eq!(
            svc.freeze(&member, UserId(1), 8, date!(2026 - 12 - 10), date!(2026 - 12 - 11)).await,
            Err(DomainError::Forbidden)
        );
    }

    #[test]
    fn a_pass_is_expired_from_its_expiry_and_cancelled_before_anything_else() {
        let p = pass(Some(1));
        assert_eq!(p.status(p.expires_at - Duration::seconds(1)), PassStatus::Active);
        assert_eq!(p.status(p.expires_at), PassStatus::Expired);
        let ended = Pass { cancelled_at: Some(NOW), ..p.clone() };
        assert_eq!(ended.status(NOW), PassStatus::Cancelled);
        assert_eq!(EntryKind::parse("refund"), Some(EntryKind::Refund));
        assert_eq!(Cause::parse("job"), Some(Cause::Job));
        assert_eq!(EntryKind::parse("gift"), None);
    }
    #[tokio::test]
    async fn the_expiry_job_takes_the_credits_left_once_and_skips_a_pass_found_empty_under_its_lock() {
        let mut repo = MockPassRepository::new();
        repo.expect_expired_with_credits()
            .withf(|now, limit| *now == NOW && *limit == EXPIRES_PER_RUN)
            .returning(|_, _| Ok(vec![(GymId(2), UserId(3), 8), (GymId(2), UserId(3), 9)]));
        let expired = Pass { expires_at: NOW - Duration::days(1), ..pass(Some(3)) };
        let emptied = Pass { id: 9, ..Pass { credits_left: Some(0), ..expired.clone() } };
        repo.expect_lock_pass().withf(|_, _, _, id| *id == 8).returning(move |_, _, _, _| Ok(Some(expired.clone())));
        // Another instance expired pass 9 between the read and the lock.
        repo.expect_lock_pass().withf(|_, _, _, id| *id == 9).returning(move |_, _, _, _| Ok(Some(emptied.clone())));
        repo.expect_append()
            .withf(|_, _, id, e| *id == 8 && e.kind == EntryKind::Expire && e.credits == -3 && e.cause == Cause::Job)
            .once()
            .returning(|_, _, _, _| Ok(()));
        let mut db = crate::tx::MockDatabase::new();
        db.expect_begin().times(2).returning(|| Ok(Tx::detached()));
        let fact = DomainEvent::PassExpired { gym: GymId(2), pass: 8, member: UserId(3), credits: 3 };
        db.expect_commit().withf(move |tx| tx.facts() == [fact.clone()]).once().returning(|_| Ok(vec![]));
        let uow = UnitOfWork::new(Arc::new(db), crate::facts::Dispatcher::new());
        let svc = service(repo, MockPlanRepository::new(), uow);
        assert_eq!(svc.expire_passes().await, Ok(1));
    }
}
