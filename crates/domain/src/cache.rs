//! The cache port and the names of what is cached.
//!
//! The port is infallible on purpose: a cache that is down, slow or returns garbage
//! must never fail a request, so adapters log and count their failures and answer
//! as a miss. Only invalidations say whether they happened, so that a fact whose
//! invalidation failed stays in the outbox until it can be applied. Values are
//! opaque bytes (serialized by whoever reads them).
//!
//! Cached reads are versioned groups (see [`Cache`]). The domain's services never
//! name a key: they yield facts ([`crate::facts`]), and whoever caches reads maps
//! those facts to what they invalidate.

use std::time::Duration;

use async_trait::async_trait;

/// How the cache is doing, for readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHealth {
    /// Reachable and answering.
    Ok,
    /// No shared cache is configured (in-process cache).
    Disabled,
    /// Configured but not answering; reads go to the database.
    Degraded,
}

/// A read of one field of a versioned group: the group's version at the time of the
/// read, to be handed back to [`Cache::fill`], and the value if it is cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    /// The version the value was read at (and a fill must be stored at).
    pub version: u64,
    /// The cached bytes, `None` on a miss or any failure.
    pub value: Option<Vec<u8>>,
}

/// A key-value cache shared by every instance of the service.
///
/// Cached reads live in *versioned groups* (one group per list, session, profile…,
/// one field per page or variant). A write invalidates a group by moving it to a new
/// version; a read that missed fills the field at the version it read. So a read
/// that loaded from the database before a write and stores its value after the
/// write's invalidation stores it at a version nobody reads any more: a write is
/// visible on the very next read, with no window until the TTL.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// The stored bytes of a plain key, or `None` on a miss *or any failure*.
    async fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores bytes under a plain key for `ttl`; failures are swallowed.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration);
    /// Removes plain keys, in one round trip where the adapter can; `false` when that
    /// failed (the caller keeps the fact for a retry: see [`crate::facts::Relay`]).
    async fn delete(&self, keys: &[String]) -> bool;
    /// One field of a versioned group, with the group's current version, in one round
    /// trip where the adapter can.
    async fn read(&self, group: &str, field: &str) -> Read;
    /// A plain key and one field of a versioned group together, in one round trip
    /// where the adapter can: the caller's memberships and a gym's cached read.
    async fn get_and_read(&self, key: &str, group: &str, field: &str) -> (Option<Vec<u8>>, Read) {
        (self.get(key).await, self.read(group, field).await)
    }
    /// Stores one field of a group at `version` (from [`Cache::read`]). The group's
    /// fields at one version expire `ttl` after the first; a version holds at most
    /// `max_fields` fields ([`MAX_FIELDS`] for the variants of a list, which clients
    /// choose; [`MAX_MEMBER_FIELDS`] for one field per member), past which fills are
    /// dropped (their reads stay uncached), so no client can grow a group.
    async fn fill(&self, group: &str, version: u64, field: &str, value: &[u8], ttl: Duration, max_fields: usize);
    /// Moves each group to a new version: every field cached so far is gone for
    /// every reader, and fills of reads that began before are never served. `false`
    /// when that failed (Redis unreachable): the fact that asked is delivered again.
    async fn invalidate(&self, groups: &[String]) -> bool;
    /// Whether the cache answers.
    async fn health(&self) -> CacheHealth;
}

/// Most fields one version of a group holds (pages and date ranges of a list).
pub const MAX_FIELDS: usize = 32;

/// Most fields of a group with one field per member of a gym (dashboards).
pub const MAX_MEMBER_FIELDS: usize = 20_000;
