//! Adapters of the [`domain::cache::Cache`] port: Redis shared by all instances, or
//! an in-process cache when `REDIS_URL` is unset.

use std::sync::Arc;

use domain::cache::Cache;

use crate::config::Settings;

mod memory;
mod redis;

pub use self::memory::MemoryCache;
pub use self::redis::{CacheConfigError, RedisCache};

/// The cache the settings ask for. Never fails: a Redis that is down at start is
/// connected to lazily, and until then every read is a miss.
///
/// # Errors
/// Only a `REDIS_URL` that does not parse.
pub fn from_settings(settings: &Settings) -> Result<Arc<dyn Cache>, CacheConfigError> {
    match &settings.redis_url {
        Some(url) => Ok(Arc::new(RedisCache::new(
            url.expose(),
            settings.redis_pool_max_connections,
            &settings.cache_key_prefix,
            settings.cache_ttl,
        )?)),
        None => Ok(Arc::new(MemoryCache::new(100_000, settings.cache_ttl))),
    }
}

/// Counts one cache operation in `gymapi_cache_operations_total{operation,result}`.
fn count(operation: &'static str, result: &'static str) {
    metrics::counter!("gymapi_cache_operations_total", "operation" => operation, "result" => result).increment(1);
}
