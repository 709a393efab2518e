//! Gyms (the tenants), memberships and the rules of granting roles.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::credits::Credits;
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::members::MemberLock;
pub use crate::members::Membership;
use crate::passes::Cause;
use crate::schedule::{BookingWindow, Leave, ParticipationStatus, ScheduleRepository, WaitlistRules, free_place};
use crate::tx::{Tx, UnitOfWork};
use crate::users::User;
use crate::values::{Actor, GymId, Page, Role, UserId, optional_text, required_text, time_zone};
use crate::{limits, policy};

/// A gym: the tenant every scoped route acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gym {
    /// Identifier.
    pub id: GymId,
    /// Display name.
    pub name: String,
    /// IANA time zone name (times are stored in UTC; the zone is for the rules that
    /// need the gym's wall clock).
    pub timezone: String,
    /// Street address.
    pub address: Option<String>,
    /// Creation instant.
    pub created_at: OffsetDateTime,
    /// When members may book a session.
    pub booking: BookingWindow,
    /// How the gym's waitlists work.
    pub waitlist: WaitlistRules,
    /// How the front desk reads members' QR codes.
    pub qr_mode: crate::values::QrMode,
    /// Members checked in within this many minutes count as in the gym.
    pub occupancy_window_minutes: i32,
    /// Bookings and walk-ins need a usable pass, and take its credit.
    pub booking_requires_pass: bool,
    /// Minutes before a session's start from which a cancellation is late.
    pub cancel_cutoff_minutes: i32,
}

pub use crate::limits::{OCCUPANCY_WINDOW_DEFAULT, OCCUPANCY_WINDOW_MAX};

/// A change to the gym (admin); `None` leaves a field as it is, and for the
/// nullable ones `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GymPatch {
    /// New name.
    pub name: Option<String>,
    /// New IANA time zone name.
    pub timezone: Option<String>,
    /// New address, or none.
    pub address: Option<Option<String>>,
    /// Hours before a session's start at which booking opens, or no limit.
    pub booking_opens_hours: Option<Option<i32>>,
    /// Minutes before a session's start at which booking closes.
    pub booking_closes_minutes: Option<i32>,
    /// Minutes before a session's start from which freed places are not promoted.
    pub waitlist_cutoff_minutes: Option<i32>,
    /// How many waitlists a member may be on at once.
    pub max_waitlists_per_member: Option<i32>,
    /// Static or rotating QR codes.
    pub qr_mode: Option<crate::values::QrMode>,
    /// Minutes a check-in counts toward the live occupancy.
    pub occupancy_window_minutes: Option<i32>,
    /// Whether bookings need a pass.
    pub booking_requires_pass: Option<bool>,
    /// Minutes before a session's start from which a cancellation is late.
    pub cancel_cutoff_minutes: Option<i32>,
}

impl GymPatch {
    /// The gym with the patch applied, every field checked, and the window checked
    /// as a whole (a new opening against the closing already set, and back).
    ///
    /// # Errors
    /// [`DomainError::Validation`] naming the field.
    pub fn apply(&self, gym: &Gym) -> Result<Gym> {
        let name = match self.name.as_deref() {
            Some(n) => required_text("name", n, limits::NAME_MAX)?,
            None => gym.name.clone(),
        };
        let timezone = match self.timezone.as_deref() {
            Some(tz) => time_zone(tz)?,
            None => gym.timezone.clone(),
        };
        let address = match &self.address {
            Some(a) => optional_text("address", a.as_deref(), limits::ADDRESS_MAX)?,
            None => gym.address.clone(),
        };
        let booking = BookingWindow::new(
            self.booking_opens_hours.unwrap_or(gym.booking.opens_hours()),
            self.booking_closes_minutes.unwrap_or(gym.booking.closes_minutes()),
        )?;
        let waitlist = WaitlistRules::new(
            self.waitlist_cutoff_minutes.unwrap_or(gym.waitlist.cutoff_minutes()),
            self.max_waitlists_per_member.unwrap_or(gym.waitlist.max_per_member()),
        )?;
        let qr_mode = self.qr_mode.unwrap_or(gym.qr_mode);
        let occupancy_window_minutes = self.occupancy_window_minutes.unwrap_or(gym.occupancy_window_minutes);
        if !(1..=OCCUPANCY_WINDOW_MAX).contains(&occupancy_window_minutes) {
            return Err(DomainError::validation(format!(
                "occupancy_window_minutes must be from 1 to {OCCUPANCY_WINDOW_MAX}"
            )));
        }
        let booking_requires_pass = self.booking_requires_pass.unwrap_or(gym.booking_requires_pass);
        let cancel_cutoff_minutes = self.cancel_cutoff_minutes.unwrap_or(gym.cancel_cutoff_minutes);
        crate::credits::CreditRules::new(booking_requires_pass, cancel_cutoff_minutes, timezone.as_str())?;
        Ok(Gym {
            name,
            timezone,
            address,
            booking,
            waitlist,
            qr_mode,
            occupancy_window_minutes,
            booking_requires_pass,
            cancel_cutoff_minutes,
            ..gym.clone()
        })
    }
}

/// What is asked to create a gym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGym {
    /// Display name, 1..=200 characters.
    pub name: String,
    /// Time zone name; `UTC` when not given.
    pub timezone: String,
    /// Street address.
    pub address: Option<String>,
}

/// A member as listed by staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// The user.
    pub user: User,
    /// Their role in the gym.
    pub role: Role,
    /// When they joined.
    pub joined_at: OffsetDateTime,
}

/// Storage of gyms and memberships. Writes take the transaction of the use case
/// ([`crate::tx`]); reads that need no lock do not.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait GymRepository: Send + Sync {
    /// Creates a gym and makes `owner` its owner.
    ///
    /// # Errors
    /// Storage failures.
    async fn create_with_owner(&self, tx: &mut Tx, gym: &NewGym, owner: UserId, now: OffsetDateTime) -> Result<Gym>;

    /// The gym with this id.
    ///
    /// # Errors
    /// Storage failures; a missing gym is `Ok(None)`.
    async fn by_id(&self, id: GymId) -> Result<Option<Gym>>;

    /// The user's membership of the gym (`None` also when the gym does not exist).
    ///
    /// # Errors
    /// Storage failures.
    async fn membership(&self, user: UserId, gym: GymId) -> Result<Option<Membership>>;

    /// The user's role in every gym they belong to, by gym id: what the tenant
    /// check caches per user.
    ///
    /// # Errors
    /// Storage failures.
    async fn roles_of(&self, user: UserId) -> Result<Vec<(GymId, Role)>>;

    /// Every gym the user belongs to, with the role there, by gym id.
    ///
    /// # Errors
    /// Storage failures.
    async fn gyms_of(&self, user: UserId) -> Result<Vec<(Gym, Role)>>;

    /// Members of a gym, optionally of one role, by user id.
    ///
    /// # Errors
    /// Storage failures.
    async fn members(&self, gym: GymId, role: Option<Role>, page: Page) -> Result<Vec<MemberEntry>>;

    /// Locks the gym's row for the rest of the transaction (lock order 1), so that
    /// changes of its owners are serialized.
    ///
    /// # Errors
    /// Storage failures.
    async fn lock_gym(&self, tx: &mut Tx, gym: GymId) -> Result<()>;

    /// Locks the gym's row like [`GymRepository::lock_gym`] and reads it; `Ok(None)`
    /// when it does not exist.
    ///
    /// # Errors
    /// Storage failures.
    async fn locked_gym(&self, tx: &mut Tx, gym: GymId) -> Result<Option<Gym>>;

    /// Stores the gym's name, time zone, address and settings (read under
    /// [`GymRepository::locked_gym`]) and answers it as stored.
    ///
    /// # Errors
    /// Storage failures.
    async fn update_gym(&self, tx: &mut Tx, gym: &Gym) -> Result<Gym>;

    /// How many owners the gym has (read under [`GymRepository::lock_gym`]).
    ///
    /// # Errors
    /// Storage failures.
    async fn owners(&self, tx: &mut Tx, gym: GymId) -> Result<i64>;

    /// Adds a user to a gym.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] for an unknown user, [`DomainError::AlreadyMember`]
    /// when the pair exists (decided by the primary key), storage failures.
    async fn add_member(
        &self,
        tx: &mut Tx,
        gym: GymId,
        user: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<Membership>;

    /// Sets a member's role; `Ok(None)` when not a member.
    ///
    /// # Errors
    /// Storage failures.
    async fn set_role(&self, tx: &mut Tx, gym: GymId, user: UserId, role: Role) -> Result<Option<Membership>>;

    /// Deletes a membership; `Ok(false)` when there was none.
    ///
    /// # Errors
    /// Storage failures.
    async fn delete_member(&self, tx: &mut Tx, gym: GymId, user: UserId) -> Result<bool>;
}

/// Use cases about gyms and their members.
#[derive(Clone)]
pub struct GymService {
    gyms: Arc<dyn GymRepository>,
    members: Arc<dyn MemberLock>,
    schedule: Arc<dyn ScheduleRepository>,
    credits: Credits,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl GymService {
    /// Wires the service to its ports (`schedule` and `credits` to give a leaving
    /// member's places and their credits back).
    pub fn new(
        gyms: Arc<dyn GymRepository>,
        members: Arc<dyn MemberLock>,
        schedule: Arc<dyn ScheduleRepository>,
        credits: Credits,
        uow: UnitOfWork,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { gyms, members, schedule, credits, uow, clock }
    }

    /// Creates a gym owned by the caller.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a bad name, time zone or address; storage failures.
    pub async fn create_gym(&self, caller: UserId, gym: NewGym) -> Result<Gym> {
        let gym = NewGym {
            name: required_text("name", &gym.name, limits::NAME_MAX)?,
            timezone: time_zone(&gym.timezone)?,
            address: optional_text("address", gym.address.as_deref(), limits::ADDRESS_MAX)?,
        };
        let mut tx = self.uow.begin().await?;
        let created = self.gyms.create_with_owner(&mut tx, &gym, caller, self.clock.now()).await?;
        tx.record(DomainEvent::GymCreated { gym: created.id, owner: caller });
        self.uow.commit(tx).await?;
        Ok(created)
    }

    /// The gyms of the caller.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn my_gyms(&self, caller: UserId) -> Result<Vec<(Gym, Role)>> {
        self.gyms.gyms_of(caller).await
    }

    /// The gym the actor acts in.
    ///
    /// # Errors
    /// [`DomainError::NotAMember`] if it vanished; storage failures.
    pub async fn current(&self, actor: &Actor) -> Result<Gym> {
        self.gyms.by_id(actor.gym_id).await?.ok_or(DomainError::NotAMember)
    }

    /// Changes the gym's name, time zone, address or settings (admin), in one
    /// transaction under the gym's lock, so two patches of different fields both
    /// stay.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::Validation`],
    /// [`DomainError::NotAMember`] if the gym vanished.
    pub async fn update_current(&self, actor: &Actor, patch: GymPatch) -> Result<Gym> {
        actor.require(policy::MANAGE_GYM)?;
        let mut tx = self.uow.begin().await?;
        let gym = self.gyms.locked_gym(&mut tx, actor.gym_id).await?.ok_or(DomainError::NotAMember)?;
        let changed = patch.apply(&gym)?;
        if changed == gym {
            return Ok(gym);
        }
        let stored = self.gyms.update_gym(&mut tx, &changed).await?;
        tx.record(DomainEvent::GymChanged { gym: actor.gym_id });
        self.uow.commit(tx).await?;
        Ok(stored)
    }

    /// The caller's role in each of their gyms: what the tenant check needs.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn roles_of(&self, caller: UserId) -> Result<Vec<(GymId, Role)>> {
        self.gyms.roles_of(caller).await
    }

    /// Members of the gym, for staff.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below trainer; storage failures.
    pub async fn members(&self, actor: &Actor, role: Option<Role>, page: Page) -> Result<Vec<MemberEntry>> {
        actor.require(policy::SEE_MEMBERS)?;
        self.gyms.members(actor.gym_id, role, page).await
    }

    /// Adds a user to the gym with a role.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin, or granting admin/owner without being
    /// owner; [`DomainError::UserNotFound`]; [`DomainError::AlreadyMember`].
    pub async fn add_member(&self, actor: &Actor, user: UserId, role: Role) -> Result<Membership> {
        may_grant(actor, role)?;
        let mut tx = self.uow.begin().await?;
        let m = self.gyms.add_member(&mut tx, actor.gym_id, user, role, self.clock.now()).await?;
        tx.record(DomainEvent::MembershipChanged { gym: actor.gym_id, user });
        self.uow.commit(tx).await?;
        Ok(m)
    }

    /// Changes a member's role, under the gym's lock and the member's.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] as for [`Self::add_member`], and for a non-owner touching
    /// an admin or owner; [`DomainError::UserNotFound`] for a non-member;
    /// [`DomainError::LastOwner`] when demoting the only owner.
    pub async fn set_role(&self, actor: &Actor, user: UserId, role: Role) -> Result<Membership> {
        may_grant(actor, role)?;
        let mut tx = self.uow.begin().await?;
        let target = self.locked_target(&mut tx, actor, user).await?;
        may_manage(actor, &target)?;
        if target.role == Role::Owner && role != Role::Owner && self.gyms.owners(&mut tx, actor.gym_id).await? <= 1 {
            return Err(DomainError::LastOwner);
        }
        let m = self.gyms.set_role(&mut tx, actor.gym_id, user, role).await?.ok_or(DomainError::UserNotFound)?;
        tx.record(DomainEvent::MembershipChanged { gym: actor.gym_id, user });
        self.uow.commit(tx).await?;
        Ok(m)
    }

    /// Removes a member from the gym (admin), or lets the caller leave it (anyone),
    /// giving back their places in sessions still ahead (each to the head of its
    /// waitlist) and leaving their waitlists, in one transaction under the
    /// gym's lock, the member's, then each session's (the global lock order).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin removing someone else, or for a non-owner
    /// removing an admin or owner; [`DomainError::UserNotFound`];
    /// [`DomainError::LastOwner`].
    pub async fn remove_member(&self, actor: &Actor, user: UserId) -> Result<()> {
        // Any member may leave; removing someone else takes an admin.
        if user != actor.user_id {
            actor.require(policy::MANAGE_MEMBERS)?;
        }
        let (gym, now) = (actor.gym_id, self.clock.now());
        let rules = self.schedule.booking_rules(gym).await?.ok_or(DomainError::NotAMember)?;
        let mut tx = self.uow.begin().await?;
        let target = self.locked_target(&mut tx, actor, user).await?;
        if user != actor.user_id {
            may_manage(actor, &target)?;
        }
        if target.role == Role::Owner && self.gyms.owners(&mut tx, gym).await? <= 1 {
            return Err(DomainError::LastOwner);
        }
        self.gyms.delete_member(&mut tx, gym, user).await?;
        let mut freed_sessions = Vec::new();
        let mut promoted = Vec::new();
        // Every session's lock before any pass's (order 3 before 4).
        let mut locked = Vec::new();
        for session in self.schedule.places_after(&mut tx, gym, user, now).await? {
            locked.extend(self.schedule.lock_session(&mut tx, gym, session, user).await?);
        }
        // Leaving the gym is not a late cancel: every credit goes back.
        let leave = Leave { cut_off: false, cause: Cause::Member, actor: actor.user_id, at: now };
        let leave = if user == actor.user_id { leave } else { Leave { cause: Cause::Staff, ..leave } };
        for (s, held) in locked {
            match held {
                Some(ParticipationStatus::Registered) => {
                    let freed =
                        free_place(self.schedule.as_ref(), &self.credits, &mut tx, &s, user, &rules, leave).await?;
                    if let Some(next) = freed.promoted {
                        promoted.push(DomainEvent::WaitlistPromoted { gym, session: s.id, member: next });
                    }
                    freed_sessions.push(s.id);
                }
                Some(ParticipationStatus::Waitlisted) => {
                    let cancelled = ParticipationStatus::Cancelled;
                    self.schedule.set_participation(&mut tx, gym, s.id, user, cancelled, None, now).await?;
                }
                _ => {}
            }
        }
        tx.record(DomainEvent::MemberLeft { gym, user, freed_sessions });
        for fact in promoted {
            tx.record(fact);
        }
        self.uow.commit(tx).await
    }

    /// The gym locked, then the target's membership locked and read.
    async fn locked_target(&self, tx: &mut Tx, actor: &Actor, user: UserId) -> Result<Membership> {
        self.gyms.lock_gym(tx, actor.gym_id).await?;
        self.members.lock_member(tx, actor.gym_id, user).await?.ok_or(DomainError::UserNotFound)
    }
}

/// Only an owner may change or remove an admin or an owner.
fn may_manage(actor: &Actor, target: &Membership) -> Result<()> {
    if target.role >= Role::Admin && actor.role < Role::Owner {
        return Err(DomainError::Forbidden);
    }
    Ok(())
}

/// Admins manage members; only an owner grants `admin` or `owner`.
fn may_grant(actor: &Actor, role: Role) -> Result<()> {
    actor.require(policy::MANAGE_MEMBERS)?;
    if role >= Role::Admin {
        actor.require(policy::GRANT_STAFF_ADMIN)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::*;
    use crate::schedule::{BookingRules, Session, SessionStatus};
    use crate::values::{ClassId, SessionId};
    use time::Duration;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-10 10:00 UTC);
    const GYM: GymId = GymId(7);

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GYM, role }
    }

    fn membership(user: UserId, role: Role) -> Membership {
        Membership { user_id: user, gym_id: GYM, role, joined_at: NOW }
    }

    fn service(gyms: MockGymRepository, uow: UnitOfWork) -> GymService {
        with_members(gyms, MockMemberLock::new(), MockScheduleRepository::new(), uow)
    }

    fn with_members(
        gyms: MockGymRepository,
        members: MockMemberLock,
        mut schedule: MockScheduleRepository,
        uow: UnitOfWork,
    ) -> GymService {
        schedule.expect_booking_rules().returning(|_| Ok(Some(BookingRules::default())));
        GymService::new(
            Arc::new(gyms),
            Arc::new(members),
            Arc::new(schedule),
            no_credits(),
            uow,
            Arc::new(FixedClock(NOW)),
        )
    }

    /// The gym lock is taken, then `user`'s membership answers `found`.
    fn locked(user: UserId, found: Option<Membership>) -> (MockGymRepository, MockMemberLock) {
        let mut gyms = MockGymRepository::new();
        gyms.expect_lock_gym().withf(|_, g| *g == GYM).once().returning(|_, _| Ok(()));
        let mut members = MockMemberLock::new();
        with_locked_member(&mut members, GYM, user, found);
        (gyms, members)
    }

    fn iron() -> Gym {
        Gym {
            id: GYM,
            name: "Iron".into(),
            timezone: "UTC".into(),
            address: Some("Calle 1".into()),
            created_at: NOW,
            booking: BookingWindow::new(None, 120).expect("valid"),
            waitlist: WaitlistRules::default(),
            qr_mode: crate::values::QrMode::Static,
            occupancy_window_minutes: OCCUPANCY_WINDOW_DEFAULT,
            booking_requires_pass: false,
            cancel_cutoff_minutes: 0,
        }
    }

    #[test]
    fn a_patch_checks_each_field_and_the_window_as_a_whole() {
        let gym = iron();
        let opens = |h: Option<i32>| GymPatch { booking_opens_hours: Some(h), ..GymPatch::default() };
        assert!(
            matches!(opens(Some(2)).apply(&gym), Err(DomainError::Validation(_))),
            "2 h ahead cannot open before the 120 min close already set"
        );
        assert_eq!(opens(Some(3)).apply(&gym).map(|g| g.booking.opens_hours()), Ok(Some(3)));
        let both =
            GymPatch { booking_opens_hours: Some(Some(2)), booking_closes_minutes: Some(60), ..GymPatch::default() };
        assert_eq!(both.apply(&gym).map(|g| (g.booking.opens_hours(), g.booking.closes_minutes())), Ok((Some(2), 60)));
        let tz = |t: &str| GymPatch { timezone: Some(t.into()), ..GymPatch::default() }.apply(&gym).map(|g| g.timezone);
        assert_eq!(tz("Europe/Madrid"), Ok("Europe/Madrid".into()));
        assert_eq!(tz("America/New_York"), Ok("America/New_York".into()));
        let hint = tz("america/new_york");
        assert!(
            matches!(&hint, Err(DomainError::Validation(m)) if m.contains("did you mean \"America/New_York\"")),
            "{hint:?}"
        );
        for bad in ["Mars/Olympus", "", " ", "../../etc/passwd", "Europe/Madrid\0", "UTC+25"] {
            assert!(matches!(tz(bad), Err(DomainError::Validation(_))), "{bad:?}");
        }
        let cleared = GymPatch { address: Some(None), ..GymPatch::default() }.apply(&gym).expect("valid");
        assert_eq!(cleared.address, None);
        assert_eq!(GymPatch::default().apply(&gym), Ok(gym.clone()), "an empty patch changes nothing");
        let blank = GymPatch { name: Some("  ".into()), ..GymPatch::default() };
        assert!(matches!(blank.apply(&gym), Err(DomainError::Validation(_))));
    }

    #[tokio::test]
    async fn only_an_admin_changes_the_gym() {
        let svc = service(MockGymRepository::new(), untouched());
        let patch = GymPatch { name: Some("Steel".into()), ..GymPatch::default() };
        assert_eq!(svc.update_current(&actor(Role::Trainer), patch).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_gym_change_is_stored_under_the_gyms_lock_and_recorded() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_locked_gym().withf(|_, g| *g == GYM).once().returning(|_, _| Ok(Some(iron())));
        gyms.expect_update_gym()
            .withf(|_, g| g.timezone == "Europe/Madrid" && g.booking.opens_hours() == Some(48))
            .once()
            .returning(|_, g| Ok(g.clone()));
        let svc = service(gyms, committing(vec![DomainEvent::GymChanged { gym: GYM }]));
        let patch = GymPatch {
            timezone: Some("Europe/Madrid".into()),
            booking_opens_hours: Some(Some(48)),
            ..GymPatch::default()
        };
        let got = svc.update_current(&actor(Role::Admin), patch).await.expect("changed");
        assert_eq!((got.timezone.as_str(), got.name.as_str()), ("Europe/Madrid", "Iron"));
    }

    #[tokio::test]
    async fn a_patch_that_changes_nothing_commits_no_fact() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_locked_gym().once().returning(|_, _| Ok(Some(iron())));
        gyms.expect_update_gym().never();
        let svc = service(gyms, rolling_back());
        let same = GymPatch { name: Some("Iron".into()), ..GymPatch::default() };
        assert_eq!(svc.update_current(&actor(Role::Owner), same).await, Ok(iron()));
    }

    #[tokio::test]
    async fn a_gym_with_an_unknown_time_zone_is_not_created() {
        let svc = service(MockGymRepository::new(), untouched());
        let got = svc
            .create_gym(UserId(2), NewGym { name: "Iron".into(), timezone: "Mars/Olympus".into(), address: None })
            .await;
        assert!(matches!(got, Err(DomainError::Validation(_))), "{got:?}");
    }

    #[tokio::test]
    async fn admin_granting_admin_is_forbidden() {
        let svc = service(MockGymRepository::new(), untouched());
        assert_eq!(svc.add_member(&actor(Role::Admin), UserId(2), Role::Admin).await, Err(DomainError::Forbidden));
        assert_eq!(svc.add_member(&actor(Role::Admin), UserId(2), Role::Owner).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_member_may_leave_but_not_remove_others() {
        let (mut gyms, members) = locked(UserId(1), Some(membership(UserId(1), Role::Member)));
        gyms.expect_delete_member().withf(|_, g, u| *g == GYM && *u == UserId(1)).once().returning(|_, _, _| Ok(true));
        let mut schedule = MockScheduleRepository::new();
        schedule
            .expect_places_after()
            .withf(|_, _, u, after| *u == UserId(1) && *after == NOW)
            .returning(|_, _, _, _| Ok(vec![]));
        let left = DomainEvent::MemberLeft { gym: GYM, user: UserId(1), freed_sessions: vec![] };
        let svc = with_members(gyms, members, schedule, committing(vec![left]));
        assert_eq!(svc.remove_member(&actor(Role::Member), UserId(1)).await, Ok(()));
        let svc = service(MockGymRepository::new(), untouched());
        assert_eq!(svc.remove_member(&actor(Role::Member), UserId(2)).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_removal_gives_back_the_places_it_holds_under_each_sessions_lock() {
        let member = UserId(2);
        let (mut gyms, members) = locked(member, Some(membership(member, Role::Member)));
        gyms.expect_delete_member().once().returning(|_, _, _| Ok(true));
        let session = |id: i64| Session {
            id: SessionId(id),
            gym_id: GYM,
            class_id: ClassId(1),
            start_time: NOW + Duration::days(1),
            end_time: NOW + Duration::days(1) + Duration::hours(1),
            status: SessionStatus::Scheduled,
            trainer_id: None,
            room: None,
            capacity: 5,
            registered_count: 1,
        };
        let mut schedule = MockScheduleRepository::new();
        schedule
            .expect_places_after()
            .once()
            .returning(|_, _, _, _| Ok(vec![SessionId(3), SessionId(4), SessionId(5)]));
        // Session 3 still holds the place; session 4's was given back meanwhile; the
        // member waits for a place of session 5.
        let held = Some((session(3), Some(ParticipationStatus::Registered)));
        with_locked_session(&mut schedule, GYM, SessionId(3), member, held);
        let gone = Some((session(4), Some(ParticipationStatus::Cancelled)));
        with_locked_session(&mut schedule, GYM, SessionId(4), member, gone);
        let queued = Some((session(5), Some(ParticipationStatus::Waitlisted)));
        with_locked_session(&mut schedule, GYM, SessionId(5), member, queued);
        // The place of session 3 goes to the head of its queue: the count stays.
        schedule
            .expect_waitlist_head()
            .withf(|_, _, s| *s == SessionId(3))
            .once()
            .returning(|_, _, _| Ok(Some(UserId(9))));
        schedule.expect_move_count().never();
        schedule
            .expect_set_booking()
            .withf(|_, _, s, m, pass, _| *s == SessionId(3) && *m == UserId(9) && pass.is_none())
            .once()
            .returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)));
        for (s_id, who, status) in
            [(3, UserId(2), ParticipationStatus::Cancelled), (5, UserId(2), ParticipationStatus::Cancelled)]
        {
            schedule
                .expect_set_participation()
                .withf(move |_, _, s, m, st, _, _| *s == SessionId(s_id) && *m == who && *st == status)
                .once()
                .returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)));
        }
        let left = DomainEvent::MemberLeft { gym: GYM, user: member, freed_sessions: vec![SessionId(3)] };
        let promoted = DomainEvent::WaitlistPromoted { gym: GYM, session: SessionId(3), member: UserId(9) };
        let svc = with_members(gyms, members, schedule, committing(vec![left, promoted]));
        assert_eq!(svc.remove_member(&actor(Role::Admin), member).await, Ok(()));
    }

    #[tokio::test]
    async fn trainer_cannot_add_members() {
        let svc = service(MockGymRepository::new(), untouched());
        assert_eq!(svc.add_member(&actor(Role::Trainer), UserId(2), Role::Member).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn admin_adds_a_member_and_commits_membership_changed() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_add_member()
            .withf(|_, g, u, r, _| *g == GYM && *u == UserId(2) && *r == Role::Member)
            .once()
            .returning(|_, _, u, r, _| Ok(membership(u, r)));
        let svc = service(gyms, committing(vec![DomainEvent::MembershipChanged { gym: GYM, user: UserId(2) }]));
        let m = svc.add_member(&actor(Role::Admin), UserId(2), Role::Member).await.expect("added");
        assert_eq!(m.role, Role::Member);
    }

    #[tokio::test]
    async fn owner_grants_owner() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_add_member().once().returning(|_, _, u, r, _| Ok(membership(u, r)));
        let svc = service(gyms, committing(vec![DomainEvent::MembershipChanged { gym: GYM, user: UserId(2) }]));
        let m = svc.add_member(&actor(Role::Owner), UserId(2), Role::Owner).await.expect("granted");
        assert_eq!(m.role, Role::Owner);
    }

    #[tokio::test]
    async fn admin_cannot_demote_an_owner_and_nothing_is_committed() {
        let (gyms, members) = locked(UserId(2), Some(membership(UserId(2), Role::Owner)));
        let svc = with_members(gyms, members, MockScheduleRepository::new(), rolling_back());
        let got = svc.set_role(&actor(Role::Admin), UserId(2), Role::Member).await;
        assert_eq!(got, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn the_only_owner_cannot_step_down_or_leave() {
        let (mut gyms, members) = locked(UserId(1), Some(membership(UserId(1), Role::Owner)));
        gyms.expect_owners().withf(|_, g| *g == GYM).returning(|_, _| Ok(1));
        let svc = with_members(gyms, members, MockScheduleRepository::new(), rolling_back());
        assert_eq!(svc.set_role(&actor(Role::Owner), UserId(1), Role::Admin).await, Err(DomainError::LastOwner));
        let (mut gyms, members) = locked(UserId(1), Some(membership(UserId(1), Role::Owner)));
        gyms.expect_owners().returning(|_, _| Ok(1));
        let svc = with_members(gyms, members, MockScheduleRepository::new(), rolling_back());
        assert_eq!(svc.remove_member(&actor(Role::Owner), UserId(1)).await, Err(DomainError::LastOwner));
    }

    #[tokio::test]
    async fn removing_a_non_member_is_user_not_found() {
        let (gyms, members) = locked(UserId(9), None);
        let svc = with_members(gyms, members, MockScheduleRepository::new(), rolling_back());
        assert_eq!(svc.remove_member(&actor(Role::Admin), UserId(9)).await, Err(DomainError::UserNotFound));
    }

    #[tokio::test]
    async fn creating_a_gym_commits_gym_created_for_its_owner() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_create_with_owner()
            .withf(|_, g, owner, _| g.name == "Iron" && *owner == UserId(2))
            .once()
            .returning(|_, g, _, now| {
                Ok(Gym {
                    id: GYM,
                    name: g.name.clone(),
                    timezone: g.timezone.clone(),
                    address: None,
                    created_at: now,
                    booking: BookingWindow::default(),
                    waitlist: WaitlistRules::default(),
                    qr_mode: crate::values::QrMode::Static,
                    occupancy_window_minutes: OCCUPANCY_WINDOW_DEFAULT,
                    booking_requires_pass: false,
                    cancel_cutoff_minutes: 0,
                })
            });
        let svc = service(gyms, committing(vec![DomainEvent::GymCreated { gym: GYM, owner: UserId(2) }]));
        let gym =
            svc.create_gym(UserId(2), NewGym { name: "Iron".into(), timezone: "UTC".into(), address: None }).await;
        assert_eq!(gym.map(|g| g.id), Ok(GYM));
    }

    #[tokio::test]
    async fn creating_a_gym_with_a_blank_name_stores_nothing() {
        let svc = service(MockGymRepository::new(), untouched());
        let got = svc.create_gym(UserId(1), NewGym { name: "  ".into(), timezone: "UTC".into(), address: None }).await;
        assert!(matches!(got, Err(DomainError::Validation(_))));
    }
}
