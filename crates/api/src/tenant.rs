//! Identity and tenancy: who the caller is (a user per token subject) and what role
//! they hold in the gym named by `X-Gym-ID`.
//!
//! Both are on every request, so both are cached: a subject's user id never
//! changes, so it is kept in process memory; a membership can change on another
//! instance, so it lives in the shared cache and membership changes invalidate it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use domain::cache::{Cache, keys};
use domain::gyms::GymService;
use domain::users::{Claims, UserService};
use domain::values::Actor;
use domain::{DomainError, GymId, Role, UserId};
use futures_util::future::LocalBoxFuture;

use crate::auth::authenticate;
use crate::error::ApiError;

/// The cached mark of "not a member" (negative caching; a new membership deletes it).
const NOT_A_MEMBER: &[u8] = b"-";

/// Resolves subjects to users and users to roles, through caches.
pub struct Identity {
    users: UserService,
    gyms: GymService,
    cache: Arc<dyn Cache>,
    ttl: Duration,
    subjects: moka::future::Cache<String, UserId>,
}

impl Identity {
    /// Wires the resolver.
    pub fn new(users: UserService, gyms: GymService, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        let subjects = moka::future::Cache::builder().max_capacity(200_000).build();
        Self { users, gyms, cache, ttl, subjects }
    }

    /// The user behind verified claims, provisioned on first sight; `claims` is
    /// only called then, so a known subject costs one in-process lookup.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn user_for(&self, sub: &str, claims: impl FnOnce() -> Claims) -> Result<UserId, ApiError> {
        if let Some(id) = self.subjects.get(sub).await {
            return Ok(id);
        }
        let user = self.users.provision(&claims()).await?;
        self.subjects.insert(sub.to_owned(), user.id).await;
        Ok(user.id)
    }

    /// The user's role in a gym.
    ///
    /// # Errors
    /// [`DomainError::NotAMember`] when not a member or no such gym; storage failures.
    pub async fn role_in(&self, user: UserId, gym: GymId) -> Result<Role, ApiError> {
        let key = keys::membership(user, gym);
        if let Some(bytes) = self.cache.get(&key).await {
            if bytes == NOT_A_MEMBER {
                return Err(DomainError::NotAMember.into());
            }
            if let Some(role) = std::str::from_utf8(&bytes).ok().and_then(|s| Role::parse(s).ok()) {
                return Ok(role);
            }
        }
        match self.gyms.membership(user, gym).await {
            Ok(m) => {
                self.cache.set(&key, m.role.as_str().as_bytes(), self.ttl).await;
                Ok(m.role)
            }
            Err(DomainError::NotAMember) => {
                self.cache.set(&key, NOT_A_MEMBER, self.ttl).await;
                Err(DomainError::NotAMember.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Parses `X-Gym-ID`: ASCII digits only, a positive 64-bit integer.
///
/// # Errors
/// [`ApiError::GymIdRequired`] when absent, [`ApiError::InvalidGymId`] otherwise.
pub fn gym_id(req: &HttpRequest) -> Result<GymId, ApiError> {
    let raw = req.headers().get("X-Gym-ID").ok_or(ApiError::GymIdRequired)?;
    let s = raw.to_str().map_err(|_| ApiError::InvalidGymId)?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidGymId);
    }
    match s.parse::<i64>() {
        Ok(n) if n > 0 => Ok(GymId(n)),
        _ => Err(ApiError::InvalidGymId),
    }
}

/// The caller acting in a gym: authenticated, member, with a role.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub Actor);

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let caller = authenticate(&req).await?;
            let gym = gym_id(&req)?;
            let state = crate::app::state(&req)?;
            let role = state.identity.role_in(caller.user_id, gym).await?;
            let actor = Actor { user_id: caller.user_id, gym_id: gym, role };
            req.extensions_mut().insert(actor);
            Ok(Tenant(actor))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn parse(v: &str) -> Result<GymId, ApiError> {
        gym_id(&TestRequest::default().insert_header(("X-Gym-ID", v)).to_http_request())
    }

    #[test]
    fn gym_id_accepts_only_positive_ascii_integers() {
        assert!(matches!(parse("42"), Ok(GymId(42))));
        for bad in ["0", "-1", "+1", "1 2", "abc", "1.5", "1e3", "0x10", "", "99999999999999999999"] {
            assert!(matches!(parse(bad), Err(ApiError::InvalidGymId)), "{bad:?}");
        }
        assert!(matches!(gym_id(&TestRequest::default().to_http_request()), Err(ApiError::GymIdRequired)));
    }
}
