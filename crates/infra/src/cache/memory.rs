//! In-process cache (moka): for a single instance with nothing installed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::cache::{Cache, CacheHealth, Read};
use moka::Expiry;

use super::count;

#[derive(Clone)]
enum Value {
    Bytes(Arc<[u8]>),
    Group(Arc<Group>),
}

/// One version of a group. Versions come from one process-wide counter and are
/// never reused, so a fill carrying an old version can never match a newer group.
struct Group {
    version: u64,
    fields: Mutex<HashMap<String, Arc<[u8]>>>,
}

static VERSIONS: AtomicU64 = AtomicU64::new(1);

#[derive(Clone)]
struct Entry {
    value: Value,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A bounded in-process cache honouring each entry's TTL.
pub struct MemoryCache {
    inner: moka::future::Cache<String, Entry>,
    /// Life of a group version first seen by a read (a fill cannot extend it).
    group_ttl: Duration,
}

impl MemoryCache {
    /// A cache holding at most `capacity` entries, its groups living `group_ttl`.
    pub fn new(capacity: u64, group_ttl: Duration) -> Self {
        let inner = moka::future::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).build();
        Self { inner, group_ttl }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let hit = match self.inner.get(key).await.map(|e| e.value) {
            Some(Value::Bytes(b)) => Some(b.to_vec()),
            _ => None,
        };
        count("get", if hit.is_some() { "hit" } else { "miss" });
        hit
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        self.inner.insert(key.to_owned(), Entry { value: Value::Bytes(value.into()), ttl }).await;
        count("set", "ok");
    }

    async fn delete(&self, keys: &[String]) -> bool {
        for k in keys {
            self.inner.invalidate(k).await;
        }
        count("delete", "ok");
        true
    }

    async fn read(&self, group: &str, field: &str) -> Read {
        let fresh = || Entry {
            value: Value::Group(Arc::new(Group {
                version: VERSIONS.fetch_add(1, Ordering::Relaxed),
                fields: Mutex::default(),
            })),
            ttl: self.group_ttl,
        };
        let entry = self.inner.get_with(group.to_owned(), async { fresh() }).await;
        let read = match entry.value {
            Value::Group(g) => {
                let value = g.fields.lock().ok().and_then(|f| f.get(field).map(|b| b.to_vec()));
                Read { version: g.version, value }
            }
            Value::Bytes(_) => Read::default(),
        };
        count("get", if read.value.is_some() { "hit" } else { "miss" });
        read
    }

    async fn fill(&self, group: &str, version: u64, field: &str, value: &[u8], _ttl: Duration, max_fields: usize) {
        if let Some(Value::Group(g)) = self.inner.get(group).await.map(|e| e.value)
            && g.version == version
            && let Ok(mut f) = g.fields.lock()
            && (f.len() < max_fields || f.contains_key(field))
        {
            f.insert(field.to_owned(), value.into());
        }
        count("set", "ok");
    }

    async fn invalidate(&self, groups: &[String]) -> bool {
        // The next read starts a new version; fills of older reads no longer match.
        for g in groups {
            self.inner.invalidate(g).await;
        }
        count("delete", "ok");
        true
    }

    async fn health(&self) -> CacheHealth {
        CacheHealth::Disabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn stores_reads_and_forgets() {
        let c = MemoryCache::new(10, TTL);
        assert_eq!(c.get("k").await, None);
        c.set("k", b"v", TTL).await;
        assert_eq!(c.get("k").await.as_deref(), Some(&b"v"[..]));
        c.delete(&["k".to_owned()]).await;
        assert_eq!(c.get("k").await, None);
    }

    #[tokio::test]
    async fn fields_of_a_group_are_invalidated_together() {
        let c = MemoryCache::new(10, TTL);
        let v = c.read("g", "a").await.version;
        c.fill("g", v, "a", b"1", TTL, domain::cache::MAX_FIELDS).await;
        c.fill("g", v, "b", b"2", TTL, domain::cache::MAX_FIELDS).await;
        assert_eq!(c.read("g", "a").await.value.as_deref(), Some(&b"1"[..]));
        assert_eq!(c.read("g", "b").await.value.as_deref(), Some(&b"2"[..]));
        assert_eq!(c.read("g", "c").await.value, None);
        c.invalidate(&["g".to_owned()]).await;
        assert_eq!(c.read("g", "a").await.value, None);
    }

    #[tokio::test]
    async fn a_fill_of_a_read_that_began_before_an_invalidation_is_never_served() {
        let c = MemoryCache::new(10, TTL);
        let before = c.read("g", "a").await;
        assert_eq!(before.value, None);
        // A write commits and invalidates while the read loads from the database.
        c.invalidate(&["g".to_owned()]).await;
        let after = c.read("g", "a").await;
        c.fill("g", before.version, "a", b"old", TTL, domain::cache::MAX_FIELDS).await;
        assert_eq!(c.read("g", "a").await.value, None, "the stale value is not served");
        c.fill("g", after.version, "a", b"new", TTL, domain::cache::MAX_FIELDS).await;
        assert_eq!(c.read("g", "a").await.value.as_deref(), Some(&b"new"[..]));
    }

    #[tokio::test]
    async fn a_group_holds_a_bounded_number_of_fields() {
        let c = MemoryCache::new(10, TTL);
        let v = c.read("g", "0").await.version;
        for i in 0..domain::cache::MAX_FIELDS + 10 {
            c.fill("g", v, &i.to_string(), b"v", TTL, domain::cache::MAX_FIELDS).await;
        }
        assert!(c.read("g", "0").await.value.is_some());
        assert!(c.read("g", &(domain::cache::MAX_FIELDS - 1).to_string()).await.value.is_some());
        assert_eq!(c.read("g", &domain::cache::MAX_FIELDS.to_string()).await.value, None);
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl() {
        let c = MemoryCache::new(10, TTL);
        c.set("k", b"v", Duration::from_millis(20)).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(c.get("k").await, None);
    }
}
