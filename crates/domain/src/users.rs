//! Users: provisioned from token claims on their first request.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::attendance::QrSecret;
use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::tx::{Tx, UnitOfWork};
use crate::values::GymId;
use crate::values::{Actor, UserId, optional_text};
use crate::{limits, policy};

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// The token subject (`sub`) this user was provisioned from.
    pub auth0_id: String,
    /// E-mail from the claims, if any.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Phone number, set by the user.
    pub phone: Option<String>,
    /// When the user was provisioned.
    pub created_at: OffsetDateTime,
    /// Last profile change.
    pub updated_at: OffsetDateTime,
}

/// What a verified token says about its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The subject (`sub`).
    pub sub: String,
    /// `email`, if present.
    pub email: Option<String>,
    /// `name`, if present.
    pub name: Option<String>,
}

/// A change to one's own profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    /// New display name.
    pub name: Option<String>,
    /// New phone number.
    pub phone: Option<String>,
}

/// Storage of users.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Returns the user of `claims.sub`, creating it (with `qr_secret` and a fresh
    /// [`UserId::random`] id, drawn again on the rare clash) if absent.
    /// Concurrent first requests of one subject must yield one user.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] / [`DomainError::Internal`] on storage failure.
    async fn provision(&self, tx: &mut Tx, claims: &Claims, qr_secret: &QrSecret, now: OffsetDateTime) -> Result<User>;

    /// The user with this id.
    ///
    /// # Errors
    /// Storage failures only; a missing user is `Ok(None)`.
    async fn by_id(&self, id: UserId) -> Result<Option<User>>;

    /// The user, when they are a member of the gym (one read: user and membership).
    ///
    /// # Errors
    /// Storage failures.
    async fn member_of(&self, gym: GymId, id: UserId) -> Result<Option<User>>;

    /// Applies a profile change and returns the new state.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] if the user vanished; storage failures.
    async fn update_profile(&self, tx: &mut Tx, id: UserId, patch: &ProfilePatch, now: OffsetDateTime) -> Result<User>;
}

/// Use cases about users.
#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl UserService {
    /// Wires the service to its ports.
    pub fn new(users: Arc<dyn UserRepository>, uow: UnitOfWork, clock: Arc<dyn Clock>) -> Self {
        Self { users, uow, clock }
    }

    /// The user behind verified claims, created on the subject's first request.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for an empty subject; storage failures.
    pub async fn provision(&self, claims: &Claims) -> Result<User> {
        if claims.sub.trim().is_empty() {
            return Err(DomainError::validation("sub must not be empty"));
        }
        let mut tx = self.uow.begin().await?;
        let user = self.users.provision(&mut tx, claims, &QrSecret::random(), self.clock.now()).await?;
        self.uow.commit(tx).await?;
        Ok(user)
    }

    /// The caller's own user.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] if the user vanished; storage failures.
    pub async fn me(&self, me: UserId) -> Result<User> {
        self.users.by_id(me).await?.ok_or(DomainError::UserNotFound)
    }

    /// Changes the caller's name and/or phone.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for over-long values; storage failures.
    pub async fn update_me(&self, me: UserId, patch: ProfilePatch) -> Result<User> {
        let patch = ProfilePatch {
            name: optional_text("name", patch.name.as_deref(), limits::NAME_MAX)?,
            phone: optional_text("phone", patch.phone.as_deref(), limits::PHONE_MAX)?,
        };
        let mut tx = self.uow.begin().await?;
        let user = self.users.update_profile(&mut tx, me, &patch, self.clock.now()).await?;
        tx.record(DomainEvent::ProfileChanged { user: me });
        self.uow.commit(tx).await?;
        Ok(user)
    }

    /// A user as seen from a gym: oneself always; others only by staff, and only
    /// members of that gym.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] for a plain member reading someone else;
    /// [`DomainError::UserNotFound`] for a user who is not in the gym.
    pub async fn user_in_gym(&self, actor: &Actor, target: UserId) -> Result<User> {
        if target == actor.user_id {
            return self.me(target).await;
        }
        actor.require(policy::SEE_MEMBERS)?;
        self.users.member_of(actor.gym_id, target).await?.ok_or(DomainError::UserNotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::*;
    use crate::values::Role;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-10 10:00 UTC);

    fn user(id: i64) -> User {
        User {
            id: UserId(id),
            auth0_id: format!("auth0|{id}"),
            email: None,
            name: None,
            phone: None,
            created_at: NOW,
            updated_at: NOW,
        }
    }

    fn service(users: MockUserRepository) -> UserService {
        UserService::new(Arc::new(users), untouched(), Arc::new(FixedClock(NOW)))
    }

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GymId(7), role }
    }

    #[tokio::test]
    async fn plain_member_reading_another_user_is_forbidden() {
        let svc = service(MockUserRepository::new());
        let err = svc.user_in_gym(&actor(Role::Member), UserId(2)).await;
        assert_eq!(err, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn staff_reading_a_user_outside_the_gym_gets_user_not_found() {
        let mut users = MockUserRepository::new();
        with_member_of(&mut users, GymId(7), UserId(2), None);
        let svc = service(users);
        let err = svc.user_in_gym(&actor(Role::Trainer), UserId(2)).await;
        assert_eq!(err, Err(DomainError::UserNotFound));
    }

    #[tokio::test]
    async fn anyone_reads_themselves_without_a_membership_lookup() {
        let mut users = MockUserRepository::new();
        users.expect_by_id().once().returning(|id| Ok(Some(user(id.0))));
        let svc = service(users);
        let got = svc.user_in_gym(&actor(Role::Member), UserId(1)).await.expect("self");
        assert_eq!(got.id, UserId(1));
    }

    #[tokio::test]
    async fn a_profile_change_commits_with_profile_changed() {
        let mut users = MockUserRepository::new();
        users
            .expect_update_profile()
            .withf(|_, id, p, now| *id == UserId(1) && p.name.as_deref() == Some("Ana") && *now == NOW)
            .once()
            .returning(|_, id, _, _| Ok(user(id.0)));
        let uow = committing(vec![DomainEvent::ProfileChanged { user: UserId(1) }]);
        let svc = UserService::new(Arc::new(users), uow, Arc::new(FixedClock(NOW)));
        let patch = ProfilePatch { name: Some("Ana".into()), phone: None };
        assert!(svc.update_me(UserId(1), patch).await.is_ok());
    }

    #[tokio::test]
    async fn an_overlong_name_is_a_validation_error_and_nothing_is_stored() {
        let svc = service(MockUserRepository::new());
        let patch = ProfilePatch { name: Some("x".repeat(201)), phone: None };
        assert!(matches!(svc.update_me(UserId(1), patch).await, Err(DomainError::Validation(_))));
    }
}
