//! Gyms (the tenants), memberships and the rules of granting roles.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::facts::{Dispatcher, DomainEvent};
use crate::users::User;
use crate::values::{Actor, GymId, Page, Role, SessionId, UserId, optional_text, required_text};
use crate::{limits, policy};

/// A gym: the tenant every scoped route acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gym {
    /// Identifier.
    pub id: GymId,
    /// Display name.
    pub name: String,
    /// IANA time zone name, informative (times are stored in UTC).
    pub timezone: String,
    /// Street address.
    pub address: Option<String>,
    /// Creation instant.
    pub created_at: OffsetDateTime,
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

/// A user's place in a gym.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The member.
    pub user_id: UserId,
    /// The gym.
    pub gym_id: GymId,
    /// Their role there.
    pub role: Role,
    /// When they joined.
    pub joined_at: OffsetDateTime,
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

/// Storage of gyms and memberships.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait GymRepository: Send + Sync {
    /// Creates a gym and makes `owner` its owner, atomically.
    ///
    /// # Errors
    /// Storage failures.
    async fn create_with_owner(&self, gym: &NewGym, owner: UserId, now: OffsetDateTime) -> Result<Gym>;

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

    /// Adds a user to a gym.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] for an unknown user, [`DomainError::AlreadyMember`]
    /// when the pair exists (decided by the unique constraint), storage failures.
    async fn add_member(&self, gym: GymId, user: UserId, role: Role, now: OffsetDateTime) -> Result<Membership>;

    /// Sets a member's role; `Ok(None)` when not a member.
    ///
    /// # Errors
    /// [`DomainError::LastOwner`] when it would demote the gym's only owner (checked
    /// atomically with the change), storage failures.
    async fn set_role(&self, gym: GymId, user: UserId, role: Role) -> Result<Option<Membership>>;

    /// Removes a member and, in the same transaction, gives back their places in
    /// sessions starting after `now` (those `registered` participations become
    /// `cancelled` and free their place). `Ok(None)` when not a member, else the ids of
    /// the sessions whose places were freed.
    ///
    /// # Errors
    /// [`DomainError::LastOwner`] when it would remove the gym's only owner (checked
    /// atomically with the change), storage failures.
    async fn remove_member(&self, gym: GymId, user: UserId, now: OffsetDateTime) -> Result<Option<Vec<SessionId>>>;
}

/// Use cases about gyms and their members.
#[derive(Clone)]
pub struct GymService {
    gyms: Arc<dyn GymRepository>,
    events: Dispatcher,
    clock: Arc<dyn Clock>,
}

impl GymService {
    /// Wires the service to its ports.
    pub fn new(gyms: Arc<dyn GymRepository>, events: Dispatcher, clock: Arc<dyn Clock>) -> Self {
        Self { gyms, events, clock }
    }

    /// Creates a gym owned by the caller.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a bad name, time zone or address; storage failures.
    pub async fn create_gym(&self, caller: UserId, gym: NewGym) -> Result<Gym> {
        let gym = NewGym {
            name: required_text("name", &gym.name, limits::NAME_MAX)?,
            timezone: required_text("timezone", &gym.timezone, limits::TIMEZONE_MAX)?,
            address: optional_text("address", gym.address.as_deref(), limits::ADDRESS_MAX)?,
        };
        let created = self.gyms.create_with_owner(&gym, caller, self.clock.now()).await?;
        self.events.publish(DomainEvent::GymCreated { gym: created.id, owner: caller }).await;
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
        let m = self.gyms.add_member(actor.gym_id, user, role, self.clock.now()).await?;
        self.events.publish(DomainEvent::MembershipChanged { gym: actor.gym_id, user }).await;
        Ok(m)
    }

    /// Changes a member's role.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] as for [`Self::add_member`], and for a non-owner touching
    /// an admin or owner; [`DomainError::UserNotFound`] for a non-member;
    /// [`DomainError::LastOwner`] when demoting the only owner.
    pub async fn set_role(&self, actor: &Actor, user: UserId, role: Role) -> Result<Membership> {
        may_grant(actor, role)?;
        self.may_manage(actor, user).await?;
        let m = self.gyms.set_role(actor.gym_id, user, role).await?.ok_or(DomainError::UserNotFound)?;
        self.events.publish(DomainEvent::MembershipChanged { gym: actor.gym_id, user }).await;
        Ok(m)
    }

    /// Removes a member from the gym (admin), or lets the caller leave it (anyone).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin removing someone else, or for a non-owner
    /// removing an admin or owner; [`DomainError::UserNotFound`];
    /// [`DomainError::LastOwner`].
    pub async fn remove_member(&self, actor: &Actor, user: UserId) -> Result<()> {
        // Any member may leave; removing someone else takes an admin. The last-owner
        // rule holds either way (decided by the repository under a lock).
        if user != actor.user_id {
            actor.require(policy::MANAGE_MEMBERS)?;
            self.may_manage(actor, user).await?;
        }
        let freed_sessions =
            self.gyms.remove_member(actor.gym_id, user, self.clock.now()).await?.ok_or(DomainError::UserNotFound)?;
        self.events.publish(DomainEvent::MemberLeft { gym: actor.gym_id, user, freed_sessions }).await;
        Ok(())
    }

    /// Only an owner may change or remove an admin or an owner.
    async fn may_manage(&self, actor: &Actor, user: UserId) -> Result<()> {
        let target = self.gyms.membership(user, actor.gym_id).await?.ok_or(DomainError::UserNotFound)?;
        if target.role >= Role::Admin && actor.role < Role::Owner {
            return Err(DomainError::Forbidden);
        }
        Ok(())
    }
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
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-10 10:00 UTC);
    const GYM: GymId = GymId(7);

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GYM, role }
    }

    fn membership(user: UserId, role: Role) -> Membership {
        Membership { user_id: user, gym_id: GYM, role, joined_at: NOW }
    }

    /// A listener expecting one fact about this user's memberships.
    fn cache_expecting_invalidation_of(user: UserId) -> MockListener {
        let mut l = MockListener::new();
        l.expect_on()
            .withf(move |e| match e {
                DomainEvent::MembershipChanged { user: u, .. } | DomainEvent::MemberLeft { user: u, .. } => *u == user,
                DomainEvent::GymCreated { owner, .. } => *owner == user,
                _ => false,
            })
            .once()
            .return_const(());
        l
    }

    fn service(gyms: MockGymRepository, listener: MockListener) -> GymService {
        GymService::new(Arc::new(gyms), dispatcher_to(listener), Arc::new(FixedClock(NOW)))
    }

    #[tokio::test]
    async fn admin_granting_admin_is_forbidden() {
        let svc = service(MockGymRepository::new(), MockListener::new());
        assert_eq!(svc.add_member(&actor(Role::Admin), UserId(2), Role::Admin).await, Err(DomainError::Forbidden));
        assert_eq!(svc.add_member(&actor(Role::Admin), UserId(2), Role::Owner).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_member_may_leave_but_not_remove_others() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_remove_member()
            .withf(|g, u, now| *g == GYM && *u == UserId(1) && *now == NOW)
            .once()
            .returning(|_, _, _| Ok(Some(vec![])));
        let svc = service(gyms, cache_expecting_invalidation_of(UserId(1)));
        assert_eq!(svc.remove_member(&actor(Role::Member), UserId(1)).await, Ok(()));
        let svc = service(MockGymRepository::new(), MockListener::new());
        assert_eq!(svc.remove_member(&actor(Role::Member), UserId(2)).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn trainer_cannot_add_members() {
        let svc = service(MockGymRepository::new(), MockListener::new());
        assert_eq!(svc.add_member(&actor(Role::Trainer), UserId(2), Role::Member).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn admin_adds_a_member_and_its_cached_membership_is_invalidated() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_add_member()
            .withf(|g, u, r, _| *g == GYM && *u == UserId(2) && *r == Role::Member)
            .once()
            .returning(|_, u, r, _| Ok(membership(u, r)));
        let svc = service(gyms, cache_expecting_invalidation_of(UserId(2)));
        let m = svc.add_member(&actor(Role::Admin), UserId(2), Role::Member).await.expect("added");
        assert_eq!(m.role, Role::Member);
    }

    #[tokio::test]
    async fn owner_grants_owner() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_add_member().once().returning(|_, u, r, _| Ok(membership(u, r)));
        let svc = service(gyms, cache_expecting_invalidation_of(UserId(2)));
        let m = svc.add_member(&actor(Role::Owner), UserId(2), Role::Owner).await.expect("granted");
        assert_eq!(m.role, Role::Owner);
    }

    #[tokio::test]
    async fn admin_cannot_demote_an_owner() {
        let mut gyms = MockGymRepository::new();
        with_membership(&mut gyms, membership(UserId(2), Role::Owner));
        let svc = service(gyms, MockListener::new());
        let got = svc.set_role(&actor(Role::Admin), UserId(2), Role::Member).await;
        assert_eq!(got, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn removing_a_non_member_is_user_not_found() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_membership().once().returning(|_, _| Ok(None));
        let svc = service(gyms, MockListener::new());
        assert_eq!(svc.remove_member(&actor(Role::Admin), UserId(9)).await, Err(DomainError::UserNotFound));
    }

    #[tokio::test]
    async fn creating_a_gym_drops_a_cached_not_a_member_of_its_owner() {
        let mut gyms = MockGymRepository::new();
        gyms.expect_create_with_owner().withf(|g, owner, _| g.name == "Iron" && *owner == UserId(2)).once().returning(
            |g, _, now| {
                Ok(Gym { id: GYM, name: g.name.clone(), timezone: g.timezone.clone(), address: None, created_at: now })
            },
        );
        let svc = service(gyms, cache_expecting_invalidation_of(UserId(2)));
        let gym =
            svc.create_gym(UserId(2), NewGym { name: "Iron".into(), timezone: "UTC".into(), address: None }).await;
        assert_eq!(gym.map(|g| g.id), Ok(GYM));
    }

    #[tokio::test]
    async fn creating_a_gym_with_a_blank_name_stores_nothing() {
        let svc = service(MockGymRepository::new(), MockListener::new());
        let got = svc.create_gym(UserId(1), NewGym { name: "  ".into(), timezone: "UTC".into(), address: None }).await;
        assert!(matches!(got, Err(DomainError::Validation(_))));
    }
}
