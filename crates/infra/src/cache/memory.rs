//! In-process cache (moka): for a single instance with nothing installed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::cache::{Cache, CacheHealth};
use moka::Expiry;

use super::count;

#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
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
        let hit = self.inner.get(key).await.map(|e| e.bytes.to_vec());
        count("get", if hit.is_some() { "hit" } else { "miss" });
        hit
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        self.inner.insert(key.to_owned(), Entry { bytes: value.into(), ttl }).await;
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
    async fn entries_expire_after_their_ttl() {
        let c = MemoryCache::new(10);
        c.set("k", b"v", Duration::from_millis(20)).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(c.get("k").await, None);
    }
}
