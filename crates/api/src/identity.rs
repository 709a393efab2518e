//! Identity: who the caller is (a user per token subject) and what role they hold
//! in each of their gyms.
//!
//! Both are needed on every request, so both are cached: a subject's user id never
//! changes, so it is kept in process memory; memberships can change on another
//! instance, so they live in the shared cache, and membership changes invalidate them.

use std::sync::Arc;
use std::time::Duration;

use domain::cache::{Cache, Read};
use domain::gyms::GymService;
use domain::users::{Claims, UserService};
use domain::{DomainError, GymId, Role, UserId};

use crate::cache_keys as keys;
use crate::error::ApiError;

/// Longest an authorization entry is trusted. Every membership change deletes the
/// user's entry, so normally a change applies on the next request of any instance;
/// this bounds the damage when that delete is lost (Redis unreachable at the
/// moment of the change): a removed member or a demoted admin keeps their old
/// role for at most this long.
pub const AUTH_ENTRY_TTL: Duration = Duration::from_secs(5);

/// Resolves subjects to users and users to roles, through caches.
pub struct Identity {
    users: UserService,
    gyms: GymService,
    cache: Arc<dyn Cache>,
    ttl: Duration,
    subjects: moka::future::Cache<String, UserId>,
}

/// A user's memberships as cached: `gym:role` pairs separated by commas (`""` for
/// none), small and readable in `redis-cli`.
fn encode_roles(roles: &[(GymId, Role)]) -> String {
    roles.iter().map(|(g, r)| format!("{}:{}", g.0, r.as_str())).collect::<Vec<_>>().join(",")
}

fn decode_roles(bytes: &[u8]) -> Option<Vec<(GymId, Role)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|pair| {
            let (g, r) = pair.split_once(':')?;
            Some((GymId(g.parse().ok()?), Role::parse(r).ok()?))
        })
        .collect()
}

impl Identity {
    /// Wires the resolver; authorization entries live `ttl`, at most [`AUTH_ENTRY_TTL`].
    pub fn new(users: UserService, gyms: GymService, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        let subjects = moka::future::Cache::builder().max_capacity(200_000).build();
        Self { users, gyms, cache, ttl: ttl.min(AUTH_ENTRY_TTL), subjects }
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

    /// The user's role in a gym, from one cache entry per user holding all their
    /// memberships: one round trip on a hit, and a made-up gym id is answered from
    /// the same entry, so it creates no key.
    ///
    /// # Errors
    /// [`DomainError::NotAMember`] when not a member or no such gym; storage failures.
    pub async fn role_in(&self, user: UserId, gym: GymId) -> Result<Role, ApiError> {
        let cached = self.cache.get(&keys::memberships(user)).await;
        self.role_from(cached, user, gym).await
    }

    /// [`Identity::role_in`] and a cached read of the gym (`group`, `field`) in the
    /// same round trip. The read is the caller's to serve only once the role is known.
    ///
    /// # Errors
    /// As [`Identity::role_in`].
    pub async fn role_and_read(
        &self,
        user: UserId,
        gym: GymId,
        group: &str,
        field: &str,
    ) -> Result<(Role, Read), ApiError> {
        let (cached, read) = self.cache.get_and_read(&keys::memberships(user), group, field).await;
        Ok((self.role_from(cached, user, gym).await?, read))
    }

    /// The role in `gym` from the cached memberships, or from the database (and
    /// cached) when they were not cached or unreadable.
    async fn role_from(&self, cached: Option<Vec<u8>>, user: UserId, gym: GymId) -> Result<Role, ApiError> {
        let roles = match cached.as_deref().and_then(decode_roles) {
            Some(roles) => roles,
            None => {
                let roles = self.gyms.roles_of(user).await?;
                self.cache.set(&keys::memberships(user), encode_roles(&roles).as_bytes(), self.ttl).await;
                roles
            }
        };
        roles.iter().find(|(g, _)| *g == gym).map(|(_, r)| *r).ok_or_else(|| DomainError::NotAMember.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_roles_round_trip_and_junk_is_a_miss() {
        let roles = vec![(GymId(3), Role::Owner), (GymId(9007199254740991), Role::Member)];
        assert_eq!(decode_roles(encode_roles(&roles).as_bytes()), Some(roles));
        assert_eq!(decode_roles(b""), Some(vec![]));
        for junk in [&b"3"[..], b"3:king", b"x:member", b"3:member,", b"\xff"] {
            assert_eq!(decode_roles(junk), None, "{junk:?}");
        }
    }
}
