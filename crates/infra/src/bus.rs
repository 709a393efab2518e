//! Announcements of numbered facts across instances: Redis pub/sub, or nothing
//! beyond the process without Redis.
//!
//! An announcement names a gym and the last number of its feed. It is a hint, not
//! the data: whoever hears it reads the feed from its own cursor, so a lost or
//! repeated announcement never loses or repeats a fact (streams also look again on
//! their own every few seconds).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::cache::CacheConfigError;
use crate::config::Settings;

/// Longest wait for one publish.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

/// How long a subscriber that lost Redis waits before it connects again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// Publishes and hears announcements of the gyms whose feeds grew.
///
/// On a Redis Cluster a message published on any node reaches the subscribers of
/// every node: the bus publishes through the first node that answers and listens
/// on one node at a time, moving to the next when it loses it.
#[derive(Clone)]
pub struct Bus {
    /// One client and publisher per node (one node unless a cluster).
    redis: Option<Vec<(redis::Client, ConnectionManager)>>,
    channel: String,
    /// The node that last took a publish.
    current: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("redis", &self.redis.is_some()).field("channel", &self.channel).finish()
    }
}

impl Bus {
    /// Redis pub/sub when `REDIS_URL` is set (on the channel `{prefix}changes`, so
    /// deployments sharing a Redis hear only their own), else a bus of one process.
    ///
    /// # Errors
    /// A `REDIS_URL` that does not parse.
    pub fn from_settings(settings: &Settings) -> Result<Self, CacheConfigError> {
        let channel = format!("{}changes", settings.cache_key_prefix);
        let current = Arc::default();
        let Some(url) = &settings.redis_url else { return Ok(Self { redis: None, channel, current }) };
        let urls = crate::config::cluster_nodes(url.expose()).unwrap_or_else(|| vec![url.expose().to_owned()]);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(PUBLISH_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let nodes = urls
            .iter()
            .map(|u| {
                let client = redis::Client::open(u.as_str())?;
                let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
                Ok((client, publisher))
            })
            .collect::<Result<Vec<_>, redis::RedisError>>()
            .map_err(CacheConfigError::Url)?;
        Ok(Self { redis: Some(nodes), channel, current })
    }

    /// Tells the other instances (this one hears it from its caller): one message
    /// of `gym:last` pairs. A Redis that is down loses the hint, not a fact.
    pub async fn publish(&self, heads: &[(i64, i64)]) {
        let Some(nodes) = &self.redis else { return };
        if heads.is_empty() {
            return;
        }
        let message = heads.iter().map(|(g, s)| format!("{g}:{s}")).collect::<Vec<_>>().join(",");
        let cmd = redis::cmd("PUBLISH").arg(&self.channel).arg(message).clone();
        let first = self.current.load(std::sync::atomic::Ordering::Relaxed);
        for i in (0..nodes.len()).map(|n| (first + n) % nodes.len()) {
            let mut conn = nodes[i].1.clone();
            match tokio::time::timeout(PUBLISH_TIMEOUT, cmd.query_async::<i64>(&mut conn)).await {
                Ok(Ok(_)) => {
                    self.current.store(i, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "announcement not published"),
                Err(_) => tracing::debug!("announcement not published: timed out"),
            }
        }
    }

    /// Hears the announcements of every instance (this one's included), for as long
    /// as `alive` lives, connecting again whenever Redis is lost. Without Redis,
    /// nothing: the process hears its own announcements from its caller.
    pub fn listen(&self, alive: std::sync::Weak<()>, on: Arc<dyn Fn(i64, i64) + Send + Sync>) {
        let Some(nodes) = &self.redis else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let clients: Vec<redis::Client> = nodes.iter().map(|(c, _)| c.clone()).collect();
        let channel = self.channel.clone();
        rt.spawn(async move {
            let mut node = 0;
            while alive.upgrade().is_some() {
                // The next node of a cluster after each loss (the same one otherwise).
                let client = clients[node % clients.len()].clone();
                node += 1;
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub.into_on_message())
                };
                match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
                    Ok(Ok(mut messages)) => loop {
                        // Looked at every few seconds: the subscription ends with the app.
                        match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
                            _ if alive.upgrade().is_none() => return,
                            Err(_) => {}
                            Ok(Some(msg)) => {
                                let Ok(text) = msg.get_payload::<String>() else { continue };
                                for (gym, last) in parse(&text) {
                                    on(gym, last);
                                }
                            }
                            Ok(None) => {
                                tracing::warn!("lost the Redis subscription to announcements; subscribing again");
                                break;
                            }
                        }
                    },
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot subscribe to announcements on Redis"),
                    Err(_) => tracing::warn!("cannot subscribe to announcements on Redis: timed out"),
                }
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            }
        });
    }
}

/// `gym:last` pairs, separated by commas; anything else is passed over.
fn parse(text: &str) -> impl Iterator<Item = (i64, i64)> + '_ {
    text.split(',').filter_map(|pair| {
        let (g, s) = pair.split_once(':')?;
        Some((g.parse().ok()?, s.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_and_junk_is_passed_over() {
        assert_eq!(parse("3:17,12:4").collect::<Vec<_>>(), vec![(3, 17), (12, 4)]);
        assert_eq!(parse("x:1,5:,7:8,,9").collect::<Vec<_>>(), vec![(7, 8)]);
    }
}
