//! Live streams of a gym's feed (`GET /attendance/stream`): Server-Sent Events read
//! from the change feed, woken when the gym's feed grows.
//!
//! The relay's sequencer announces each gym it numbers ([`Hub`] is its
//! [`Announcer`]): the hub wakes this instance's streams of that gym and publishes
//! the announcement on the [`Bus`] for the other instances, whose hubs wake theirs.
//! A stream then reads the feed after its own cursor, so what it sends is the
//! feed's, numbered, in commit order, and `Last-Event-ID` resumes it exactly. A
//! lost announcement delays a stream until it looks again on its own
//! ([`LOOK_AGAIN`]); it never loses an event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use async_trait::async_trait;
use domain::changes::{Change, public_type};
use domain::facts::Announcer;
use domain::{DomainError, GymId};
use infra::bus::Bus;
use tokio::sync::watch;

use crate::lifecycle::Lifecycle;

/// How long a stream waits for an announcement before it reads the feed anyway.
pub const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// How long a stream stays silent before it sends a comment, so that proxies and
/// load balancers keep an idle connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Longest life of one stream (see [`Live::next_chunk`]).
const MAX_LIFE: Duration = Duration::from_secs(30 * 60);

/// Most facts read per wake-up (the rest follow at once).
const PAGE: u64 = 200;

/// The streams of this instance, by gym: each gym's last number heard, watched by
/// its streams.
pub struct Hub {
    gyms: Mutex<HashMap<i64, watch::Sender<i64>>>,
    bus: Bus,
    /// Woken by every announcement: the webhook engine, which takes new facts.
    webhooks: Arc<tokio::sync::Notify>,
}

impl Hub {
    /// A hub that hears the other instances' announcements on `bus` while `alive`
    /// lives, and wakes `webhooks` at each.
    pub fn start(bus: Bus, webhooks: Arc<tokio::sync::Notify>, alive: std::sync::Weak<()>) -> Arc<Self> {
        let hub = Arc::new(Self { gyms: Mutex::new(HashMap::new()), bus, webhooks });
        let weak = Arc::downgrade(&hub);
        hub.bus.listen(
            alive,
            Arc::new(move |gym, last| {
                if let Some(hub) = weak.upgrade() {
                    hub.heard(gym, last);
                }
            }),
        );
        hub
    }

    /// Wakes the gym's streams when `last` is news; forgets a gym nobody watches.
    fn heard(&self, gym: i64, last: i64) {
        self.webhooks.notify_one();
        let Ok(mut gyms) = self.gyms.lock() else { return };
        let Some(tx) = gyms.get(&gym) else { return };
        if tx.receiver_count() == 0 {
            gyms.remove(&gym);
            return;
        }
        tx.send_if_modified(|seen| {
            let news = last > *seen;
            if news {
                *seen = last;
            }
            news
        });
    }

    /// Announcements of the gym's feed, for one stream.
    fn watch(&self, gym: i64) -> Option<watch::Receiver<i64>> {
        let mut gyms = self.gyms.lock().ok()?;
        Some(gyms.entry(gym).or_insert_with(|| watch::channel(0).0).subscribe())
    }
}

#[async_trait]
impl Announcer for Hub {
    async fn announce(&self, heads: &[(GymId, i64)]) {
        for (gym, last) in heads {
            self.heard(gym.0, *last);
        }
        let heads: Vec<(i64, i64)> = heads.iter().filter(|(g, _)| g.0 != 0).map(|(g, s)| (g.0, *s)).collect();
        self.bus.publish(&heads).await;
    }
}

/// One open stream.
pub struct Live {
    feed: domain::changes::ChangeFeed,
    lifecycle: actix_web::web::Data<Lifecycle>,
    gym: GymId,
    cursor: i64,
    woken: Option<watch::Receiver<i64>>,
    last_write: Instant,
    opened_at: Instant,
    opened: bool,
}

impl Live {
    /// A stream of the gym's attendance after `cursor` (checked by the feed).
    pub fn new(
        hub: &Hub,
        feed: domain::changes::ChangeFeed,
        lifecycle: actix_web::web::Data<Lifecycle>,
        gym: GymId,
        cursor: i64,
    ) -> Self {
        let woken = hub.watch(gym.0);
        let now = Instant::now();
        Self { feed, lifecycle, gym, cursor, woken, last_write: now, opened_at: now, opened: false }
    }

    /// The next chunk of the stream; `None` ends it (the process is draining, or the
    /// cursor fell behind the feed's retention: the client reconnects and is told).
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.opened {
            // Sent at once, so the client sees the stream open, and how long to wait
            // before it reconnects.
            self.opened = true;
            return Some(Bytes::from_static(b"retry: 2000\n\n"));
        }
        loop {
            // Ended when the process drains, and after a while: the client reconnects
            // with its Last-Event-ID, and its token and role are checked again.
            if self.lifecycle.is_draining() || self.opened_at.elapsed() >= MAX_LIFE {
                return None;
            }
            if let Some(w) = &mut self.woken {
                // Seen before the read: an announcement during the read wakes the next wait.
                w.borrow_and_update();
            }
            match self.feed.live(self.gym, self.cursor, PAGE).await {
                Ok(page) => {
                    // Numbers are gapless: a full page means more is waiting now.
                    let full = page.next - self.cursor >= i64::try_from(PAGE).unwrap_or(i64::MAX);
                    self.cursor = page.next;
                    if !page.changes.is_empty() {
                        self.last_write = Instant::now();
                        return Some(render(self.gym, &page.changes));
                    }
                    if full {
                        continue;
                    }
                }
                Err(DomainError::CursorExpired) => return None,
                // The database is away: the stream stays open and reads again later.
                Err(e) => tracing::debug!(error = %e, "live stream could not read the feed"),
            }
            if self.last_write.elapsed() >= KEEP_ALIVE {
                self.last_write = Instant::now();
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            }
            let wait = LOOK_AGAIN.min(KEEP_ALIVE.saturating_sub(self.last_write.elapsed()));
            match &mut self.woken {
                Some(w) => {
                    if let Ok(Err(_)) = tokio::time::timeout(wait, w.changed()).await {
                        self.woken = None;
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// Events in the Server-Sent Events format: `id` is the fact's number in the feed
/// (what `Last-Event-ID` resumes from), `event` its public type, `data` the same
/// envelope a webhook delivers, with its number.
fn render(gym: GymId, changes: &[Change]) -> Bytes {
    let mut out = String::new();
    for c in changes {
        let Some(kind) = public_type(&c.kind) else { continue };
        let data = serde_json::json!({
            "id": c.id,
            "seq": c.seq,
            "type": kind,
            "created_at": crate::dto::UtcTime::from(c.created_at),
            "gym_id": gym.0,
            "data": serde_json::from_str::<serde_json::Value>(&c.data).unwrap_or(serde_json::Value::Null),
        });
        out.push_str(&format!("id: {}\nevent: {kind}\ndata: {data}\n\n", c.seq));
    }
    Bytes::from(out)
}
