//! In-process cache (moka): for a single instance with nothing installed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::cache::{Cache, CacheHealth};
use moka::Expiry;

use super::count;

#[derive(Clone)]
enum Value {
    Bytes(Arc<[u8]>),
    Fields(Arc<Mutex<HashMap<String, Arc<[u8]>>>>),
}

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
}

impl MemoryCache {
    /// A cache holding at most `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        Self { inner: moka::future::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).build() }
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

    async fn get_field(&self, key: &str, field: &str) -> Option<Vec<u8>> {
        let hit = match self.inner.get(key).await.map(|e| e.value) {
            Some(Value::Fields(f)) => f.lock().ok().and_then(|f| f.get(field).map(|b| b.to_vec())),
            _ => None,
        };
        count("get", if hit.is_some() { "hit" } else { "miss" });
        hit
    }

    async fn set_field(&self, key: &str, field: &str, value: &[u8], ttl: Duration) {
        let fresh = Entry { value: Value::Fields(Arc::default()), ttl };
        let entry = self.inner.get_with(key.to_owned(), async { fresh }).await;
        if let Value::Fields(f) = entry.value
            && let Ok(mut f) = f.lock()
            && (f.len() < domain::cache::MAX_FIELDS || f.contains_key(field))
        {
            f.insert(field.to_owned(), value.into());
        }
        count("set", "ok");
    }

    async fn delete(&self, keys: &[String]) {
        for k in keys {
            self.inner.invalidate(k).await;
        }
        count("delete", "ok");
    }

    async fn health(&self) -> CacheHealth {
        CacheHealth::Disabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_reads_and_forgets() {
        let c = MemoryCache::new(10);
        assert_eq!(c.get("k").await, None);
        c.set("k", b"v", Duration::from_secs(60)).await;
        assert_eq!(c.get("k").await.as_deref(), Some(&b"v"[..]));
        c.delete(&["k".to_owned()]).await;
        assert_eq!(c.get("k").await, None);
    }

    #[tokio::test]
    async fn fields_of_a_group_are_dropped_together() {
        let c = MemoryCache::new(10);
        c.set_field("g", "a", b"1", Duration::from_secs(60)).await;
        c.set_field("g", "b", b"2", Duration::from_secs(60)).await;
        assert_eq!(c.get_field("g", "a").await.as_deref(), Some(&b"1"[..]));
        assert_eq!(c.get_field("g", "b").await.as_deref(), Some(&b"2"[..]));
        assert_eq!(c.get_field("g", "c").await, None);
        c.delete(&["g".to_owned()]).await;
        assert_eq!(c.get_field("g", "a").await, None);
    }

    #[tokio::test]
    async fn a_group_holds_a_bounded_number_of_fields() {
        let c = MemoryCache::new(10);
        for i in 0..domain::cache::MAX_FIELDS + 10 {
            c.set_field("g", &i.to_string(), b"v", Duration::from_secs(60)).await;
        }
        assert!(c.get_field("g", "0").await.is_some());
        assert!(c.get_field("g", &(domain::cache::MAX_FIELDS - 1).to_string()).await.is_some());
        assert_eq!(c.get_field("g", &domain::cache::MAX_FIELDS.to_string()).await, None);
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl() {
        let c = MemoryCache::new(10);
        c.set("k", b"v", Duration::from_millis(20)).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(c.get("k").await, None);
    }
}
