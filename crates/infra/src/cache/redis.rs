//! Redis cache over multiplexed connections.
//!
//! A pool that checks a connection out per call (deadpool) adds a round trip per
//! checkout; a multiplexed connection pipelines every caller's commands instead, so
//! a few shared connections serve all workers. Every call is bounded by a short
//! timeout and any failure is a miss: a Redis that is down slows nothing down.
//!
//! `redis+cluster://host:port[,host:port…]` selects a Redis Cluster: one cluster
//! connection (multiplexed too) that follows the slot map through failovers. Keys
//! carry hash tags (`crate::cache` callers brace a gym or user id; a group without
//! one is braced whole), and what one call touches is sent per tag: a pipeline
//! of one slot per node, never a cross-slot command.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::cache::{Cache, CacheHealth, Read};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use super::count;

/// A `REDIS_URL` the client refuses.
#[derive(Debug, thiserror::Error)]
pub enum CacheConfigError {
    /// The URL does not parse or names an unsupported scheme.
    #[error("REDIS_URL: {0}")]
    Url(#[source] redis::RedisError),
}

/// Why one cache call failed (logged and counted, then answered as a miss).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Redis(redis::RedisError),
    #[error("timed out")]
    TimedOut,
    #[error("no node of the cluster answered a moment ago")]
    Unreachable,
}

/// Longest wait for any one cache call before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// One Redis server, or a cluster of them.
enum Link {
    /// A few multiplexed connections (see [`RedisCache::conn`]).
    Single(Vec<ConnectionManager>),
    /// A Redis Cluster.
    Cluster(Box<ClusterLink>),
}

/// The cluster's client and its connection, made at the first call (and again
/// after a call that could reach no node, once [`RECONNECT_AFTER`] has passed).
struct ClusterLink {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long calls fail at once after no node of the cluster answered: a cluster
/// whose nodes do not answer must not make every request wait for them.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The part of a key Redis Cluster hashes: the first non-empty `{…}`, else the key.
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// `items` grouped by the hash tag of their key, in first-seen order.
fn by_tag<T>(items: impl IntoIterator<Item = (String, T)>) -> Vec<Vec<(String, T)>> {
    let mut out: Vec<Vec<(String, T)>> = Vec::new();
    for (key, item) in items {
        match out.iter_mut().find(|g| g.first().is_some_and(|(k, _)| hash_tag(k) == hash_tag(&key))) {
            Some(g) => g.push((key, item)),
            None => out.push(vec![(key, item)]),
        }
    }
    out
}

/// Redis behind a few shared multiplexed connections, or a cluster.
pub struct RedisCache {
    link: Link,
    prefix: String,
    /// Life of a group's version key in seconds: longer than any version's fields
    /// live, so a version never falls back to one whose fields are still cached.
    version_secs: u64,
    read_script: Script,
    fill_script: Script,
    bump_script: Script,
}

/// A Lua script run by its SHA1 (`EVALSHA`), so a call ships 40 bytes instead of
/// its source. Redis answers the SHA on the first `SCRIPT LOAD`; a Redis that lost
/// its scripts (a restart, `SCRIPT FLUSH`, a failover) answers `NOSCRIPT`, and the
/// call loads the script again and is sent once more.
struct Script {
    source: &'static str,
    sha: std::sync::RwLock<Option<std::sync::Arc<str>>>,
}

impl Script {
    const fn new(source: &'static str) -> Self {
        Self { source, sha: std::sync::RwLock::new(None) }
    }

    fn known(&self) -> Option<std::sync::Arc<str>> {
        self.sha.read().ok().and_then(|s| s.clone())
    }

    fn remember(&self, sha: Option<std::sync::Arc<str>>) {
        if let Ok(mut s) = self.sha.write() {
            *s = sha;
        }
    }
}

/// Counts one exchange with Redis in `gymapi_cache_round_trips_total`.
fn round_trip() {
    metrics::counter!("gymapi_cache_round_trips_total").increment(1);
}

fn is_noscript(e: &CallError) -> bool {
    matches!(e, CallError::Redis(r) if r.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

/// Hands each thread its slot among the connections.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

impl RedisCache {
    /// Prepares `connections` lazily connected multiplexed connections (one per
    /// worker is right: see [`RedisCache::conn`]); nothing is dialled until the first call.
    ///
    /// # Errors
    /// A URL that does not parse.
    pub fn new(url: &str, connections: usize, prefix: &str, ttl: Duration) -> Result<Self, CacheConfigError> {
        let link = if let Some(nodes) = crate::config::cluster_nodes(url) {
            let client = ClusterClient::builder(nodes)
                .connection_timeout(CALL_TIMEOUT)
                .response_timeout(CALL_TIMEOUT)
                .retries(2)
                .max_retry_wait(200)
                .build()
                .map_err(CacheConfigError::Url)?;
            Link::Cluster(Box::new(ClusterLink {
                client,
                conn: tokio::sync::OnceCell::new(),
                failed_at: std::sync::Mutex::new(None),
            }))
        } else {
            let client = redis::Client::open(url).map_err(CacheConfigError::Url)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CALL_TIMEOUT))
                .set_response_timeout(Some(CALL_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            let conns = (0..connections.clamp(1, 64))
                .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(CacheConfigError::Url)?;
            Link::Single(conns)
        };
        Ok(Self {
            link,
            prefix: prefix.to_owned(),
            version_secs: (ttl.saturating_mul(2) + Duration::from_secs(60)).as_secs(),
            read_script: Script::new(READ_SCRIPT),
            fill_script: Script::new(FILL_SCRIPT),
            bump_script: Script::new(BUMP_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A group's version key, and the prefix of its data keys (`…:d{version}`): both
    /// carry the group in a hash tag, so they live in one slot of a Redis cluster.
    fn group_keys(&self, group: &str) -> (String, String) {
        // A group that names its own tag (its gym's) keeps it: one gym, one slot.
        let tag = if hash_tag(group) == group { format!("{{{}{group}}}", self.prefix) } else { self.key(group) };
        (format!("{tag}:v"), format!("{tag}:d"))
    }

    fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(..))
    }

    /// The connection of the calling thread. Each actix worker is a single-threaded
    /// runtime, and a lazily connected manager spawns its I/O task on the runtime of
    /// its first caller: keeping a worker on "its" connection keeps every Redis
    /// reply on the thread that waits for it, with no cross-thread wake-up.
    fn conn(conns: &[ConnectionManager]) -> ConnectionManager {
        thread_local! {
            static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        }
        let i = SLOT.with(|s| *s) % conns.len().max(1);
        conns[i].clone()
    }

    /// The cluster's connection, made now if no call made it yet.
    async fn cluster(link: &ClusterLink) -> Result<ClusterConnection, CallError> {
        if let Some(c) = link.conn.get() {
            return Ok(c.clone());
        }
        let recent = link.failed_at.lock().ok().and_then(|f| *f).is_some_and(|t| t.elapsed() < RECONNECT_AFTER);
        if recent {
            return Err(CallError::Unreachable);
        }
        let made = link
            .conn
            .get_or_try_init(|| async {
                match tokio::time::timeout(CALL_TIMEOUT * 2, link.client.get_async_connection()).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(CallError::Redis(e)),
                    Err(_) => Err(CallError::TimedOut),
                }
            })
            .await
            .cloned();
        if made.is_err()
            && let Ok(mut failed) = link.failed_at.lock()
        {
            *failed = Some(std::time::Instant::now());
        }
        made
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, CallError> {
        round_trip();
        let sent = match &self.link {
            Link::Single(conns) => {
                tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(&mut Self::conn(conns))).await
            }
            Link::Cluster(cluster) => {
                let mut conn = Self::cluster(cluster).await?;
                tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(&mut conn)).await
            }
        };
        match sent {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CallError::Redis(e)),
            Err(_) => Err(CallError::TimedOut),
        }
    }

    async fn run_pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, CallError> {
        round_trip();
        let sent = match &self.link {
            Link::Single(conns) => {
                tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<T>(&mut Self::conn(conns))).await
            }
            Link::Cluster(cluster) => {
                let mut conn = Self::cluster(cluster).await?;
                tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<T>(&mut conn)).await
            }
        };
        match sent {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CallError::Redis(e)),
            Err(_) => Err(CallError::TimedOut),
        }
    }

    /// The script's SHA, loading it into Redis when this process has not yet.
    async fn sha(&self, script: &Script) -> Result<std::sync::Arc<str>, CallError> {
        if let Some(sha) = script.known() {
            return Ok(sha);
        }
        let sha: String = self.run(redis::cmd("SCRIPT").arg("LOAD").arg(script.source).clone()).await?;
        let sha: std::sync::Arc<str> = sha.into();
        script.remember(Some(sha.clone()));
        Ok(sha)
    }

    /// Runs a pipeline that calls `script` by its SHA (`build` adds the commands,
    /// given the SHA); after a `NOSCRIPT`, loads the script and runs it once more.
    async fn with_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        build: impl Fn(&str) -> redis::Pipeline,
    ) -> Result<T, CallError> {
        let sha = self.sha(script).await?;
        match self.run_pipe(&build(&sha)).await {
            Err(e) if is_noscript(&e) => {
                script.remember(None);
                let sha = self.sha(script).await?;
                self.run_pipe(&build(&sha)).await
            }
            other => other,
        }
    }

    /// Adds the read of one field of a group to a pipeline.
    fn add_read(&self, pipe: &mut redis::Pipeline, sha: &str, group: &str, field: &str) {
        let (version_key, data_prefix) = self.group_keys(group);
        pipe.cmd("EVALSHA").arg(sha).arg(1).arg(version_key).arg(data_prefix).arg(field).arg(self.version_secs);
    }

    /// A read's reply (`{version}` or `{version, value}`) as a [`Read`], counted.
    fn read_of(reply: Result<Vec<Option<Vec<u8>>>, CallError>) -> Read {
        match reply {
            Ok(reply) => {
                let version = reply
                    .first()
                    .and_then(|v| v.as_deref())
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(u64::MAX);
                let value = Self::read_outcome(Ok(reply.into_iter().nth(1).flatten()));
                Read { version, value }
            }
            // Nothing is filled at a version the read could not learn.
            Err(e) => Read { version: u64::MAX, value: Self::read_outcome(Err(e)) },
        }
    }

    /// Counts and logs the outcome of a read.
    fn read_outcome(result: Result<Option<Vec<u8>>, CallError>) -> Option<Vec<u8>> {
        match result {
            Ok(Some(v)) => {
                count("get", "hit");
                Some(v)
            }
            Ok(None) => {
                count("get", "miss");
                None
            }
            Err(e) => {
                count("get", "error");
                tracing::warn!(error = %e, "cache get failed; reading from the database");
                None
            }
        }
    }

    /// Counts and logs the outcome of a write; whether it happened.
    fn write_outcome(operation: &'static str, result: Result<(), CallError>) -> bool {
        match result {
            Ok(()) => {
                count(operation, "ok");
                true
            }
            Err(e) => {
                count(operation, "error");
                tracing::warn!(error = %e, operation, "cache write failed");
                false
            }
        }
    }
}

impl RedisCache {
    /// Moves the groups to new versions, in one round trip.
    async fn bump(&self, groups: &[String]) -> Result<(), CallError> {
        let keys: Vec<String> = groups.iter().map(|g| self.group_keys(g).0).collect();
        if !self.is_cluster() {
            return self.bump_keys(&keys).await;
        }
        // A pipeline per slot, all at once.
        let slots = by_tag(keys.into_iter().map(|k| (k, ())));
        let sent = slots.iter().map(|slot| async move {
            let keys: Vec<String> = slot.iter().map(|(k, ())| k.clone()).collect();
            self.bump_keys(&keys).await
        });
        futures_util::future::join_all(sent).await.into_iter().collect()
    }

    async fn bump_keys(&self, version_keys: &[String]) -> Result<(), CallError> {
        self.with_script(&self.bump_script, |sha| {
            let mut pipe = redis::pipe();
            for version_key in version_keys {
                pipe.cmd("EVALSHA").arg(sha).arg(1).arg(version_key).arg(self.version_secs).ignore();
            }
            pipe
        })
        .await
    }
}

/// `read` in one round trip: KEYS[1] the version key; ARGV the data key prefix and
/// the field. Replies `{version}` on a miss, `{version, value}` on a hit.
///
/// Versions never repeat, even after the version key expired or was evicted: a
/// missing version is created from the server's clock in microseconds (so it is
/// newer than any version used before), never reset to a small number that old
/// data keys may still hold. ARGV[3] is the version key's life.
const READ_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if not v then \
      local t = redis.call('TIME') \
      v = t[1] .. string.format('%06d', tonumber(t[2])) \
      if not redis.call('SET', KEYS[1], v, 'NX', 'EX', ARGV[3]) then v = redis.call('GET', KEYS[1]) end \
    end \
    return {v, redis.call('HGET', ARGV[1] .. v, ARGV[2])}";

/// `invalidate` of one group: KEYS[1] the version key, ARGV[1] its life. The new
/// version is the server's clock in microseconds, or one more than the current
/// version when that is already as new (several writes in one microsecond).
const BUMP_SCRIPT: &str = "local t = redis.call('TIME') \
    local v = t[1] .. string.format('%06d', tonumber(t[2])) \
    local cur = redis.call('GET', KEYS[1]) \
    if cur and (string.len(cur) > string.len(v) or (string.len(cur) == string.len(v) and cur >= v)) then \
      redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], ARGV[1]) \
    else redis.call('SET', KEYS[1], v, 'EX', ARGV[1]) end return 0";

/// `fill` as one atomic step: KEYS[1] the data key; ARGV field, value, ttl, most fields.
/// (TTL rather than `EXPIRE … NX`, which Redis before 7 does not know.)
const FILL_SCRIPT: &str = "if redis.call('HLEN', KEYS[1]) < tonumber(ARGV[4]) \
    or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then \
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
    if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end end return 0";

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        Self::read_outcome(self.run(redis::Cmd::get(self.key(key))).await)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        Self::write_outcome("set", self.run(redis::Cmd::set_ex(self.key(key), value, ttl.as_secs().max(1))).await);
    }

    async fn delete(&self, keys: &[String]) -> bool {
        if keys.is_empty() {
            return true;
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        if !self.is_cluster() {
            return Self::write_outcome("delete", self.run(redis::Cmd::del(keys)).await);
        }
        let slots = by_tag(keys.into_iter().map(|k| (k, ())));
        let sent = slots
            .into_iter()
            .map(|slot| self.run::<()>(redis::Cmd::del(slot.into_iter().map(|(k, ())| k).collect::<Vec<_>>())));
        let done: Result<(), CallError> = futures_util::future::join_all(sent).await.into_iter().collect();
        Self::write_outcome("delete", done)
    }

    async fn read(&self, group: &str, field: &str) -> Read {
        let reply = self
            .with_script::<(Vec<Option<Vec<u8>>>,)>(&self.read_script, |sha| {
                let mut pipe = redis::pipe();
                self.add_read(&mut pipe, sha, group, field);
                pipe
            })
            .await;
        Self::read_of(reply.map(|(r,)| r))
    }

    async fn get_and_read(&self, key: &str, group: &str, field: &str) -> (Option<Vec<u8>>, Read) {
        let key = self.key(key);
        if self.is_cluster() && hash_tag(&key) != hash_tag(&self.group_keys(group).0) {
            // Two slots (a user's entry, a gym's group): both at once, on their nodes.
            let plain = async { Self::read_outcome(self.run(redis::Cmd::get(&key)).await) };
            return futures_util::future::join(plain, self.read(group, field)).await;
        }
        // One round trip: the plain GET and the group's read, pipelined.
        let reply = self
            .with_script::<(Option<Vec<u8>>, Vec<Option<Vec<u8>>>)>(&self.read_script, |sha| {
                let mut pipe = redis::pipe();
                pipe.get(&key);
                self.add_read(&mut pipe, sha, group, field);
                pipe
            })
            .await;
        match reply {
            Ok((plain, read)) => (Self::read_outcome(Ok(plain)), Self::read_of(Ok(read))),
            // Counted once; nothing is filled at a version the read could not learn.
            Err(e) => (Self::read_outcome(Err(e)), Read { version: u64::MAX, value: None }),
        }
    }

    async fn fill(&self, group: &str, version: u64, field: &str, value: &[u8], ttl: Duration, max_fields: usize) {
        if version == u64::MAX {
            return;
        }
        // One round trip: HSET unless the version is full, and EXPIRE NX, so its
        // fields live `ttl` from the first.
        let (_, data_prefix) = self.group_keys(group);
        let data_key = format!("{data_prefix}{version}");
        let written = self
            .with_script::<()>(&self.fill_script, |sha| {
                let mut pipe = redis::pipe();
                pipe.cmd("EVALSHA")
                    .arg(sha)
                    .arg(1)
                    .arg(&data_key)
                    .arg(field)
                    .arg(value)
                    .arg(ttl.as_secs().max(1))
                    .arg(max_fields)
                    .ignore();
                pipe
            })
            .await;
        Self::write_outcome("set", written);
    }

    async fn invalidate(&self, groups: &[String]) -> bool {
        if groups.is_empty() {
            return true;
        }
        Self::write_outcome("delete", self.bump(groups).await)
    }

    async fn health(&self) -> CacheHealth {
        match self.run::<String>(redis::cmd("PING").clone()).await {
            Ok(_) => CacheHealth::Ok,
            Err(_) => CacheHealth::Degraded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::cluster_nodes;

    #[test]
    fn a_cluster_url_names_every_node_with_the_credentials() {
        assert_eq!(
            cluster_nodes("redis+cluster://10.0.0.1:7000, 10.0.0.2:7001/"),
            Some(vec!["redis://10.0.0.1:7000".to_owned(), "redis://10.0.0.2:7001".to_owned()])
        );
        assert_eq!(
            cluster_nodes("redis+cluster://:pw@a:1,b:2"),
            Some(vec!["redis://:pw@a:1".to_owned(), "redis://:pw@b:2".to_owned()])
        );
        assert_eq!(cluster_nodes("redis+cluster://"), None);
        assert_eq!(cluster_nodes("redis://a:1"), None);
    }

    #[test]
    fn keys_are_split_by_the_hash_tag_redis_cluster_hashes() {
        assert_eq!(hash_tag("p:gym:{5}:sessions"), "5");
        assert_eq!(hash_tag("{}x{y}"), "{}x{y}", "an empty first tag hashes the whole key");
        assert_eq!(hash_tag("plain"), "plain");
        let keys = ["gym:{5}:a", "auth:memberships:{9}", "gym:{5}:b", "gym:{6}:a"].map(|k| (k.to_owned(), ()));
        let slots: Vec<Vec<String>> =
            by_tag(keys).into_iter().map(|g| g.into_iter().map(|(k, ())| k).collect()).collect();
        assert_eq!(slots, vec![vec!["gym:{5}:a", "gym:{5}:b"], vec!["auth:memberships:{9}"], vec!["gym:{6}:a"]]);
    }
}
