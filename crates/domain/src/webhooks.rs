//! Webhooks: a gym's endpoints, and the delivery of its facts to them.
//!
//! Deliveries come from the change feed, not from the request that made the change:
//! each endpoint keeps a cursor into its gym's numbered facts, "sent through". A
//! drain reads the facts after it that the endpoint wants straight from the outbox,
//! sends them, and records in one statement per batch what became of each (a row of
//! the endpoint's delivery log) and where the cursor now is (the outbox keeps facts
//! an endpoint has not passed). So a process killed between a commit and its
//! delivery loses nothing: the fact is in the outbox, and the next drain of any
//! instance sends it. A delivery that failed is a pending row with its retry time;
//! so is a replay.
//!
//! An endpoint's deliveries go out one at a time, oldest first: a pending row waits
//! for its retry before anything after it is sent (order per gym and endpoint). Each
//! endpoint is drained by a task of its own under a lease, so a slow or dead
//! receiver holds back only its own queue, and never a request.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, GymId, Page};

/// The event types an endpoint may ask for (the public names of facts: see
/// [`crate::changes::public_type`]).
pub const EVENT_TYPES: [&str; 10] = [
    "checkin.succeeded",
    "checkin.refused",
    "registration.created",
    "registration.cancelled",
    "waitlist.promoted",
    "session.cancelled",
    "pass.granted",
    "pass.expired",
    "credit.used",
    "credit.refunded",
];

/// Most endpoints a gym may register.
pub const MAX_PER_GYM: u64 = 20;

/// Longest URL of an endpoint.
pub const MAX_URL_LEN: usize = 2048;

/// Attempts of one delivery before it is `failed` (about 4 hours of retries: see
/// [`retry_delay`]); the endpoint then goes on with the next, and the failed one
/// can be replayed.
pub const MAX_ATTEMPTS: i32 = 16;

/// Longest wait between two attempts of one delivery.
pub const MAX_RETRY_DELAY: Duration = Duration::hours(1);

/// How long a rotated-out secret keeps signing beside the new one.
pub const SECRET_OVERLAP: Duration = Duration::hours(24);

/// How long an instance holds an endpoint it drains (renewed at every attempt).
pub const LEASE: Duration = Duration::seconds(60);

/// The wait after the `failures`-th failed attempt: 1 s, 2 s, 4 s, … doubling, at
/// most [`MAX_RETRY_DELAY`].
pub fn retry_delay(failures: i32) -> Duration {
    let exponent = u32::try_from(failures.clamp(1, 13) - 1).unwrap_or(0);
    Duration::seconds(1_i64 << exponent).min(MAX_RETRY_DELAY)
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// Its gym.
    pub gym_id: GymId,
    /// Where deliveries are posted.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// The secret that signs its deliveries.
    pub secret: String,
    /// The secret rotated out, still signing until `previous_until`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_until: Option<OffsetDateTime>,
    /// When it was registered.
    pub created_at: OffsetDateTime,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// Its name on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One fact for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: i64,
    /// The fact's id: the body's `id`, the same in every attempt and replay.
    pub event_id: i64,
    /// The event type.
    pub kind: String,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i32,
    /// When it is attempted next (pending only).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The HTTP status of the last attempt, when the receiver answered.
    pub last_status: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the fact was taken for this endpoint.
    pub created_at: OffsetDateTime,
    /// When a receiver took it.
    pub delivered_at: Option<OffsetDateTime>,
}

/// Where a delivery about to be sent comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A pending row of the log: a retry, or a replay.
    Row(i64),
    /// A fact after the endpoint's cursor, sent for the first time (its row is
    /// written with its outcome).
    Fact {
        /// The fact's number in the gym's feed.
        seq: i64,
        /// The fact's id: the body's `id`.
        event_id: i64,
    },
}

/// A delivery ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where it comes from.
    pub source: Source,
    /// Its event type.
    pub kind: String,
    /// The endpoint's URL.
    pub url: String,
    /// The body: written when the fact was first sent, the same bytes ever after.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// When it is due (a new fact: now).
    pub due_at: OffsetDateTime,
    /// The secrets that sign it: the current one, then the one rotated out while
    /// it still signs.
    pub secrets: Vec<String>,
}

/// What an endpoint has to send next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Oldest first: its pending rows if it has any, else the new facts it wants.
    pub items: Vec<Outgoing>,
    /// New facts: the number of the last fact read (facts it does not want included),
    /// where its cursor goes once every item is sent.
    pub through: Option<i64>,
    /// As many were read as asked for: more may be waiting.
    pub more: bool,
}

/// What a receiver made of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// It answered 2xx.
    Delivered {
        /// The status it answered.
        status: u16,
    },
    /// It answered otherwise, or could not be reached.
    Failed {
        /// The status it answered, when it did.
        status: Option<u16>,
        /// Why, in a few words (never a secret).
        error: String,
    },
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Delivered at this time.
    Delivered(OffsetDateTime),
    /// Attempted again at this time.
    RetryAt(OffsetDateTime),
    /// Given up.
    Failed,
}

/// Endpoints and deliveries in storage.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// How many endpoints the gym has.
    ///
    /// # Errors
    /// Storage failures.
    async fn count(&self, tx: &mut Tx, gym: GymId) -> Result<u64>;

    /// Registers an endpoint whose cursor starts at the gym's last numbered fact:
    /// it receives what happens from now on.
    ///
    /// # Errors
    /// Storage failures.
    async fn create(
        &self,
        tx: &mut Tx,
        gym: GymId,
        url: &str,
        events: &[String],
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Webhook>;

    /// The gym's endpoints, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn list(&self, gym: GymId) -> Result<Vec<Webhook>>;

    /// Removes an endpoint and its deliveries; `false` when the gym has none by that id.
    ///
    /// # Errors
    /// Storage failures.
    async fn delete(&self, tx: &mut Tx, gym: GymId, id: i64) -> Result<bool>;

    /// Replaces the secret. The one replaced keeps signing until `previous_until`,
    /// unless a previous secret still signs at `now`: that one stays, with its own
    /// end, and the one replaced stops at once (it was current for less than the
    /// overlap, so receivers that never switched to it lose nothing).
    ///
    /// # Errors
    /// Storage failures.
    async fn rotate_secret(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        secret: &str,
        now: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<Option<Webhook>>;

    /// The endpoint's deliveries, newest first; `None` when the gym has no such endpoint.
    ///
    /// # Errors
    /// Storage failures.
    async fn deliveries(&self, gym: GymId, id: i64, page: Page) -> Result<Option<Vec<Delivery>>>;

    /// Makes a delivery pending again, due at `now`, its attempts counted afresh.
    /// `None` when the gym's endpoint has no such delivery.
    ///
    /// # Errors
    /// Storage failures.
    async fn replay(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        delivery: i64,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>>;

    /// Leases to `token`, until `lease_until`, up to `limit` endpoints that have
    /// something to send at `now` (a pending row due, or, with none pending, facts
    /// after their cursor) and which no live lease holds, the longest due first.
    ///
    /// # Errors
    /// Storage failures.
    async fn claim(&self, now: OffsetDateTime, lease_until: OffsetDateTime, token: i64, limit: u32)
    -> Result<Vec<i64>>;

    /// What the endpoint sends next ([`Batch`]): at most `limit` pending rows, or,
    /// with none pending, the facts it wants among the next `limit` of its gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn next(&self, webhook: i64, now: OffsetDateTime, limit: u32) -> Result<Batch>;

    /// Records attempts: a row's only if it is still pending with the attempts it
    /// was sent with (a replay meanwhile wins); a new fact's as a new row of the log.
    /// Moves the cursor forward to `cursor` (never back), then renews the lease
    /// until `lease_until`, or gives it back (`None`). Answers whether `token` still
    /// held the lease; when not, the drain stops.
    ///
    /// # Errors
    /// Storage failures.
    async fn settle(
        &self,
        webhook: i64,
        token: i64,
        outcomes: &[Outcome],
        cursor: Option<i64>,
        lease_until: Option<OffsetDateTime>,
    ) -> Result<bool>;
}

/// One attempt of a delivery, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was sent.
    pub sent: Outgoing,
    /// What the receiver made of it.
    pub attempt: Attempt,
    /// What becomes of the delivery.
    pub settle: Settle,
}

/// Posts a signed body to a receiver.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// One attempt: `body` to `url` with the signature header's value and the delivery's id.
    async fn post(&self, url: &str, body: &str, signature: &str, delivery: i64) -> Attempt;
}

/// `X-GymAPI-Signature`: `t={unix time},v1={hex HMAC-SHA256(secret, t + "." + body)}`,
/// one `v1` per secret that signs (the current first).
pub fn signature(secrets: &[String], t: i64, body: &str) -> String {
    let mut header = format!("t={t}");
    for hex in secrets.iter().filter_map(|secret| signature_v1(secret, t, body)) {
        header.push_str(",v1=");
        header.push_str(&hex);
    }
    header
}

/// One `v1` of a signature: the hex of HMAC-SHA256(secret, t + "." + body).
pub fn signature_v1(secret: &str, t: i64, body: &str) -> Option<String> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Some(mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether an address is on the public internet: not loopback, private, link-local
/// (the cloud metadata services at 169.254.169.254 and fd00:ec2::254 among them),
/// shared, reserved, documentation, multicast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2001 && (v6.segments()[1] == 0x0db8 || v6.segments()[1] == 0)
                // 6to4 reaches IPv4 addresses too; 100::/64 discards.
                || first == 0x2002
                || first == 0x0100 && v6.segments()[1..4].iter().all(|s| *s == 0)
                // NAT64 and IPv4-compatible forms reach IPv4 addresses.
                || first == 0x0064 && v6.segments()[1] == 0xff9b
                || v6.segments()[..6].iter().all(|s| *s == 0))
        }
    }
}

/// What a registration must satisfy beyond its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// `development` and `test`: any http(s) URL, a receiver on this machine included.
    Anywhere,
    /// Elsewhere: HTTPS to a public host only (checked again at every delivery,
    /// against the addresses the name resolves to then).
    PublicHttps,
}

/// The host of an endpoint's URL, after checking its shape: `http(s)://host[:port][/…]`,
/// no credentials, no spaces or control characters, at most [`MAX_URL_LEN`].
///
/// # Errors
/// [`DomainError::Validation`] saying what is wrong.
pub fn check_url(url: &str, reach: Reach) -> Result<()> {
    let bad = |why: &str| Err(DomainError::validation(format!("url: {why}")));
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return bad(&format!("1 to {MAX_URL_LEN} characters"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("no spaces or control characters");
    }
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    match (scheme.to_ascii_lowercase().as_str(), reach) {
        ("https", _) | ("http", Reach::Anywhere) => {}
        ("http", Reach::PublicHttps) => return bad("must be https"),
        _ => return bad("must be an http(s) URL"),
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return bad("no credentials in the URL");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else { return bad("an unclosed [ in the host") };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("brackets hold an IPv6 address");
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return bad("only a port may follow the host"),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return bad("one port at most; an IPv6 address goes in brackets"),
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    // A fully qualified name may end with a dot ("localhost." is localhost).
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.ends_with('.') || host.starts_with('.') || host.contains("..") {
        return bad("a host is required");
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return bad("the port must be 1 to 65535");
    }
    if reach == Reach::PublicHttps {
        let lower = host.to_ascii_lowercase();
        let local_name = lower == "localhost" || lower.ends_with(".localhost") || lower.ends_with(".internal");
        let private_ip = host.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip));
        if local_name || private_ip || !host.contains('.') && host.parse::<IpAddr>().is_err() {
            return bad("must be a public host");
        }
    }
    Ok(())
}

/// The event types asked for: known, at least one, each once, in the order of [`EVENT_TYPES`].
///
/// # Errors
/// [`DomainError::Validation`] naming an unknown type, or for none.
pub fn check_events(events: &[String]) -> Result<Vec<String>> {
    if let Some(unknown) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        let shown: String = unknown.chars().take(64).collect();
        return Err(DomainError::validation(format!(
            "events: unknown type {shown:?} (one of {})",
            EVENT_TYPES.join(", ")
        )));
    }
    let kept: Vec<String> =
        EVENT_TYPES.iter().filter(|t| events.iter().any(|e| e == *t)).map(|t| (*t).to_owned()).collect();
    if kept.is_empty() {
        return Err(DomainError::validation("events: at least one event type"));
    }
    Ok(kept)
}

/// A fresh signing secret: `whsec_` and 256 bits from the thread's CSPRNG, as hex.
pub fn fresh_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("whsec_{}", key.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Registering, listing, removing endpoints; their deliveries (admin).
#[derive(Clone)]
pub struct WebhookService {
    repo: Arc<dyn WebhookRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
    reach: Reach,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService").field("reach", &self.reach).finish_non_exhaustive()
    }
}

impl WebhookService {
    /// Wires the service; `reach` says which URLs are accepted.
    pub fn new(repo: Arc<dyn WebhookRepository>, uow: UnitOfWork, clock: Arc<dyn Clock>, reach: Reach) -> Self {
        Self { repo, uow, clock, reach }
    }

    /// Registers an endpoint; the answer is the only one that shows its secret.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::Validation`] for a
    /// URL or event types refused, or a gym at [`MAX_PER_GYM`]; storage failures.
    pub async fn create(&self, actor: &Actor, url: &str, events: &[String]) -> Result<Webhook> {
        actor.require(crate::policy::MANAGE_WEBHOOKS)?;
        check_url(url, self.reach)?;
        let events = check_events(events)?;
        let mut tx = self.uow.begin().await?;
        if self.repo.count(&mut tx, actor.gym_id).await? >= MAX_PER_GYM {
            return Err(DomainError::validation(format!("a gym has at most {MAX_PER_GYM} webhooks")));
        }
        let created = self.repo.create(&mut tx, actor.gym_id, url, &events, &fresh_secret(), self.clock.now()).await?;
        self.uow.commit(tx).await?;
        Ok(created)
    }

    /// The gym's endpoints.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; storage failures.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<Webhook>> {
        actor.require(crate::policy::MANAGE_WEBHOOKS)?;
        self.repo.list(actor.gym_id).await
    }

    /// Removes an endpoint: nothing more is sent to it.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::WebhookNotFound`];
    /// storage failures.
    pub async fn delete(&self, actor: &Actor, id: i64) -> Result<()> {
        actor.require(crate::policy::MANAGE_WEBHOOKS)?;
        let mut tx = self.uow.begin().await?;
        if !self.repo.delete(&mut tx, actor.gym_id, id).await? {
            return Err(DomainError::WebhookNotFound);
        }
        self.uow.commit(tx).await
    }

    /// A new secret; the old one keeps signing beside it for [`SECRET_OVERLAP`].
    ///
    /// # Errors
    /// As [`WebhookService::delete`].
    pub async fn rotate_secret(&self, actor: &Actor, id: i64) -> Result<Webhook> {
        actor.require(crate::policy::MANAGE_WEBHOOKS)?;
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        let rotated = self
            .repo
            .rotate_secret(&mut tx, actor.gym_id, id, &fresh_secret(), now, now + SECRET_OVERLAP)
            .await?
            .ok_or(DomainError::WebhookNotFound)?;
        self.uow.commit(tx).await?;
        Ok(rotated)
    }

    /// The endpoint's deliveries, newest first.
    ///
    /// # Errors
    /// As [`WebhookService::delete`].
    pub async fn deliveries(&self, actor: &Actor, id: i64, page: Page) -> Result<Vec<Delivery>> {
        actor.require(crate::policy::MANAGE_WEBHOOKS)?;
        self.repo.deliveries(actor.gym_id, id, page).await?.ok_or(DomainError::WebhookNotFound)
    }

    /// Sends a delivery again, with the same body and id, as soon as the endpoint's
    /// queue reaches it (it is the oldest pending, so at once unless an older one waits).
    ///
    /// # Errors
    /// As [`WebhookService::delete`]; [`DomainError::DeliveryNotFound`].
    pub async fn replay(&self, actor: &Actor, id: i64, delivery: i64) -> Result<Delivery> {
        actor.require(crate::policy::MANAGE_WEBHOOKS)?;
        if self.repo.deliveries(actor.gym_id, id, Page { skip: 0, limit: 1 }).await?.is_none() {
            return Err(DomainError::WebhookNotFound);
        }
        let mut tx = self.uow.begin().await?;
        let replayed = self
            .repo
            .replay(&mut tx, actor.gym_id, id, delivery, self.clock.now())
            .await?
            .ok_or(DomainError::DeliveryNotFound)?;
        self.uow.commit(tx).await?;
        Ok(replayed)
    }
}

/// Moves facts to endpoints: takes new facts as deliveries, leases endpoints that
/// have one due, and drains each (the caller runs each drain as a task of its own).
#[derive(Clone)]
pub struct WebhookEngine {
    repo: Arc<dyn WebhookRepository>,
    transport: Arc<dyn WebhookTransport>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WebhookEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEngine").finish_non_exhaustive()
    }
}

impl WebhookEngine {
    /// Endpoints leased per step.
    pub const CLAIM: u32 = 64;

    /// Wires the engine.
    pub fn new(repo: Arc<dyn WebhookRepository>, transport: Arc<dyn WebhookTransport>, clock: Arc<dyn Clock>) -> Self {
        Self { repo, transport, clock }
    }

    /// Leases up to `room` endpoints with something to send (at most
    /// [`WebhookEngine::CLAIM`]) to `token`; answers them, for [`WebhookEngine::drain`].
    ///
    /// # Errors
    /// Storage failures.
    pub async fn step(&self, room: u32, token: i64) -> Result<Vec<i64>> {
        if room == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        self.repo.claim(now, now + LEASE, token, room.min(Self::CLAIM)).await
    }

    /// Sends a leased endpoint's deliveries, oldest first, until none is due, one
    /// fails (it waits for its retry, and everything after it with it), or the
    /// drain's budget ([`DRAIN_BUDGET`] deliveries or [`DRAIN_TIME`]) is spent, so a
    /// busy endpoint gives its turn to others; then gives the lease back. What
    /// became of each is recorded per batch, with the cursor and the lease. Answers
    /// how many were delivered.
    ///
    /// # Errors
    /// Storage failures (the lease then runs out by itself).
    pub async fn drain(&self, webhook: i64, token: i64) -> Result<usize> {
        let started = self.clock.now();
        let mut delivered = 0;
        let mut sent = 0;
        loop {
            let batch = self.repo.next(webhook, self.clock.now(), PENDING_BATCH).await?;
            let mut outcomes: Vec<Outcome> = Vec::new();
            // New facts: the cursor passes each one sent (a failed one becomes a
            // pending row), and every fact read once all are sent.
            let mut cursor = None;
            let mut stop = false;
            let mut recorded = started;
            for out in &batch.items {
                let now = self.clock.now();
                if out.due_at > now {
                    stop = true;
                    break;
                }
                let body_signature = signature(&out.secrets, now.unix_timestamp(), &out.body);
                let id = match out.source {
                    Source::Row(id) => id,
                    Source::Fact { event_id, .. } => event_id,
                };
                let attempt = self.transport.post(&out.url, &out.body, &body_signature, id).await;
                let after = self.clock.now();
                let attempts = out.attempts.saturating_add(1);
                let settle = match &attempt {
                    Attempt::Delivered { .. } => Settle::Delivered(after),
                    Attempt::Failed { .. } if attempts >= MAX_ATTEMPTS => Settle::Failed,
                    Attempt::Failed { .. } => Settle::RetryAt(after + retry_delay(attempts)),
                };
                if let Source::Fact { seq, .. } = out.source {
                    cursor = Some(seq);
                }
                let retry = matches!(settle, Settle::RetryAt(_));
                delivered += usize::from(matches!(settle, Settle::Delivered(_)));
                sent += 1;
                outcomes.push(Outcome { sent: out.clone(), attempt, settle });
                if retry || sent >= DRAIN_BUDGET || after - started >= DRAIN_TIME {
                    stop = true;
                    break;
                }
                // A slow receiver: record what is done and keep the lease alive.
                if after - recorded >= RECORD_EVERY {
                    recorded = after;
                    if !self.repo.settle(webhook, token, &outcomes, cursor, Some(after + LEASE)).await? {
                        return Ok(delivered);
                    }
                    outcomes.clear();
                }
            }
            if !stop {
                cursor = batch.through.or(cursor);
            }
            if stop || !batch.more {
                self.repo.settle(webhook, token, &outcomes, cursor, None).await?;
                return Ok(delivered);
            }
            let now = self.clock.now();
            if !self.repo.settle(webhook, token, &outcomes, cursor, Some(now + LEASE)).await? {
                return Ok(delivered);
            }
        }
    }
}

/// Pending deliveries read at once by a drain.
pub const PENDING_BATCH: u32 = 100;

/// Most deliveries one drain sends before it gives its endpoint's turn back.
pub const DRAIN_BUDGET: usize = 1000;

/// Longest a drain runs before it gives its endpoint's turn back.
pub const DRAIN_TIME: Duration = Duration::seconds(30);

/// How often a drain records its outcomes (and renews its lease) while it sends.
pub const RECORD_EVERY: Duration = Duration::seconds(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use time::macros::datetime;

    #[test]
    fn retries_double_from_a_second_up_to_an_hour() {
        let waits: Vec<i64> = (1..=MAX_ATTEMPTS).map(|n| retry_delay(n).whole_seconds()).collect();
        assert_eq!(&waits[..4], &[1, 2, 4, 8]);
        assert_eq!(waits[11], 2048);
        assert!(waits[12..].iter().all(|w| *w == 3600));
        let total: i64 = waits[..usize::try_from(MAX_ATTEMPTS - 1).unwrap_or(0)].iter().sum();
        assert!((4 * 3600..5 * 3600).contains(&total), "about 4 hours of retries: {total} s");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body_with_one_v1_per_secret() {
        // RFC 4231 has no "t.body" vector: this one was computed with Python's hmac module:
        // hmac.new(b"whsec_k", b"1700000000.{}", hashlib.sha256).hexdigest()
        let header = signature(&["whsec_k".into()], 1_700_000_000, "{}");
        assert_eq!(header, "t=1700000000,v1=8b20524faff2b12e1089e404a8cf60fbe577e5320e899ebff7329ebbcb9ada22");
        let two = signature(&["a".into(), "b".into()], 5, "x");
        assert_eq!(two.matches(",v1=").count(), 2);
        assert!(two.starts_with("t=5,v1="));
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2001::1",
            "fec0::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn urls_outside_development_must_be_https_to_a_public_host() {
        for ok in [
            "https://hooks.example.com/gym",
            "https://93.184.216.34:8443/x?y#z",
            "https://[2606:4700::1]/",
            "https://[2606:4700::1]:8443/",
            "https://hooks.example.com./gym",
        ] {
            assert_eq!(check_url(ok, Reach::PublicHttps), Ok(()), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/",
            "https://localhost/",
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]:8443/",
            "https://metadata.google.internal/",
            "https://intranet/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com:0/",
            "https://hooks.example.com:99999/",
            "https:///path",
            "ftp://hooks.example.com/",
            "hooks.example.com",
            "https://hooks.example.com/a b",
            "https://localhost./",
            "https://LOCALHOST../",
            "https://metadata.google.internal./",
            "https://a.example.com:443:80/",
            "https://[2606:4700::1]junk/",
            "https://[not-an-address]/",
            "https://./",
            "https://.example.com/",
            "https://a..example.com/",
            "",
        ] {
            assert!(matches!(check_url(bad, Reach::PublicHttps), Err(DomainError::Validation(_))), "{bad}");
        }
        assert_eq!(check_url("http://127.0.0.1:9000/hook", Reach::Anywhere), Ok(()));
        assert!(check_url(&format!("https://a.example/{}", "x".repeat(MAX_URL_LEN)), Reach::Anywhere).is_err());
    }

    #[test]
    fn event_types_are_known_at_least_one_and_each_once() {
        let asked = ["session.cancelled".to_owned(), "checkin.succeeded".to_owned(), "checkin.succeeded".to_owned()];
        assert_eq!(check_events(&asked), Ok(vec!["checkin.succeeded".to_owned(), "session.cancelled".to_owned()]));
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["checked_in".to_owned()]).is_err(), "the feed's own names are not event types");
    }

    fn outgoing(source: Source, attempts: i32, due_at: OffsetDateTime) -> Outgoing {
        let id = match source {
            Source::Row(id) | Source::Fact { event_id: id, .. } => id,
        };
        Outgoing {
            source,
            kind: "checkin.succeeded".into(),
            url: "http://127.0.0.1:9/hook".into(),
            body: format!("{{\"id\":{id}}}"),
            attempts,
            due_at,
            secrets: vec!["whsec_k".into()],
        }
    }

    fn fact(seq: i64) -> Outgoing {
        outgoing(Source::Fact { seq, event_id: 100 + seq }, 0, NOW)
    }

    const NOW: OffsetDateTime = datetime!(2026-12-05 10:00 UTC);

    #[tokio::test]
    async fn new_facts_go_oldest_first_and_a_failure_waits_for_its_retry_with_the_cursor_just_past_it() {
        let mut repo = MockWebhookRepository::new();
        repo.expect_next()
            .withf(|w, _, limit| (*w, *limit) == (7, PENDING_BATCH))
            .once()
            .returning(|_, _, _| Ok(Batch { items: vec![fact(3), fact(5), fact(6)], through: Some(9), more: false }));
        repo.expect_settle()
            .withf(|w, token, outcomes, cursor, lease| {
                let settles: Vec<&Settle> = outcomes.iter().map(|o| &o.settle).collect();
                (*w, *token, *cursor, *lease) == (7, 99, Some(5), None)
                    && settles == [&Settle::Delivered(NOW), &Settle::RetryAt(NOW + Duration::seconds(1))]
            })
            .once()
            .returning(|_, _, _, _, _| Ok(true));
        let mut transport = MockWebhookTransport::new();
        transport
            .expect_post()
            .withf(|_, body, sig, id| *id == 103 && *sig == signature(&["whsec_k".into()], NOW.unix_timestamp(), body))
            .once()
            .returning(|_, _, _, _| Attempt::Delivered { status: 204 });
        transport
            .expect_post()
            .withf(|_, _, _, id| *id == 105)
            .once()
            .returning(|_, _, _, _| Attempt::Failed { status: Some(500), error: "HTTP 500".into() });
        let engine = WebhookEngine::new(Arc::new(repo), Arc::new(transport), Arc::new(FixedClock(NOW)));
        assert_eq!(engine.drain(7, 99).await, Ok(1), "the third waits behind the second, which is now a row");
    }

    #[tokio::test]
    async fn every_fact_read_is_passed_once_all_are_sent() {
        let mut repo = MockWebhookRepository::new();
        repo.expect_next()
            .once()
            .returning(|_, _, _| Ok(Batch { items: vec![fact(4)], through: Some(8), more: false }));
        repo.expect_settle()
            .withf(|_, _, outcomes, cursor, lease| outcomes.len() == 1 && *cursor == Some(8) && lease.is_none())
            .once()
            .returning(|_, _, _, _, _| Ok(true));
        let mut transport = MockWebhookTransport::new();
        transport.expect_post().once().returning(|_, _, _, _| Attempt::Delivered { status: 200 });
        let engine = WebhookEngine::new(Arc::new(repo), Arc::new(transport), Arc::new(FixedClock(NOW)));
        assert_eq!(engine.drain(7, 1).await, Ok(1));
    }

    #[tokio::test]
    async fn a_row_not_yet_due_holds_back_its_endpoint_and_the_last_attempt_gives_up() {
        let mut repo = MockWebhookRepository::new();
        repo.expect_next().once().returning(|_, _, _| {
            Ok(Batch {
                items: vec![
                    outgoing(Source::Row(3), MAX_ATTEMPTS - 1, NOW),
                    outgoing(Source::Row(4), 1, NOW + Duration::seconds(1)),
                ],
                through: None,
                more: false,
            })
        });
        repo.expect_settle()
            .withf(|_, _, outcomes, cursor, lease| {
                lease.is_none()
                    && cursor.is_none()
                    && outcomes.len() == 1
                    && (&outcomes[0].sent.source, &outcomes[0].settle) == (&Source::Row(3), &Settle::Failed)
            })
            .once()
            .returning(|_, _, _, _, _| Ok(true));
        let mut transport = MockWebhookTransport::new();
        transport
            .expect_post()
            .once()
            .returning(|_, _, _, _| Attempt::Failed { status: None, error: "connection refused".into() });
        let engine = WebhookEngine::new(Arc::new(repo), Arc::new(transport), Arc::new(FixedClock(NOW)));
        assert_eq!(engine.drain(7, 1).await, Ok(0));
    }

    #[tokio::test]
    async fn a_full_batch_is_recorded_before_the_next_is_read_and_a_lost_lease_stops_the_drain() {
        let mut repo = MockWebhookRepository::new();
        repo.expect_next().once().returning(|_, _, limit| {
            Ok(Batch { items: (1..=i64::from(limit)).map(fact).collect(), through: Some(250), more: true })
        });
        repo.expect_settle()
            .withf(|_, _, outcomes, cursor, lease| {
                outcomes.len() == PENDING_BATCH as usize && *cursor == Some(250) && *lease == Some(NOW + LEASE)
            })
            .once()
            .returning(|_, _, _, _, _| Ok(false));
        let mut transport = MockWebhookTransport::new();
        transport
            .expect_post()
            .times(PENDING_BATCH as usize)
            .returning(|_, _, _, _| Attempt::Delivered { status: 200 });
        let engine = WebhookEngine::new(Arc::new(repo), Arc::new(transport), Arc::new(FixedClock(NOW)));
        assert_eq!(engine.drain(7, 1).await, Ok(PENDING_BATCH as usize), "another instance holds it now: stop");
    }

    fn admin() -> Actor {
        Actor { user_id: crate::UserId(1), gym_id: GymId(2), role: crate::Role::Admin }
    }

    #[tokio::test]
    async fn registration_refuses_private_urls_outside_development_before_touching_storage() {
        let repo = MockWebhookRepository::new();
        let service = WebhookService::new(
            Arc::new(repo),
            crate::mocks::untouched(),
            Arc::new(FixedClock(NOW)),
            Reach::PublicHttps,
        );
        let events = ["checkin.succeeded".to_owned()];
        assert!(matches!(
            service.create(&admin(), "https://10.0.0.5/hook", &events).await,
            Err(DomainError::Validation(_))
        ));
        let trainer = Actor { role: crate::Role::Trainer, ..admin() };
        assert_eq!(service.create(&trainer, "https://a.example/", &events).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_gym_at_its_limit_registers_nothing_more() {
        let mut repo = MockWebhookRepository::new();
        repo.expect_count().withf(|_, g| *g == GymId(2)).once().returning(|_, _| Ok(MAX_PER_GYM));
        repo.expect_create().never();
        let service = WebhookService::new(
            Arc::new(repo),
            crate::mocks::rolling_back(),
            Arc::new(FixedClock(NOW)),
            Reach::Anywhere,
        );
        let got = service.create(&admin(), "http://127.0.0.1:9/x", &["checkin.refused".to_owned()]).await;
        assert!(matches!(got, Err(DomainError::Validation(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_new_endpoint_gets_a_fresh_secret_and_the_types_it_asked_for() {
        let mut repo = MockWebhookRepository::new();
        repo.expect_count().returning(|_, _| Ok(0));
        repo.expect_create()
            .withf(|_, g, url, events, secret, at| {
                *g == GymId(2)
                    && url == "http://127.0.0.1:9/x"
                    && events == ["checkin.succeeded".to_owned()]
                    && secret.starts_with("whsec_")
                    && secret.len() == 6 + 64
                    && *at == NOW
            })
            .once()
            .returning(|_, g, url, events, secret, at| {
                Ok(Webhook {
                    id: 1,
                    gym_id: g,
                    url: url.into(),
                    events: events.to_vec(),
                    secret: secret.into(),
                    previous_secret: None,
                    previous_until: None,
                    created_at: at,
                })
            });
        let service = WebhookService::new(
            Arc::new(repo),
            crate::mocks::committing(vec![]),
            Arc::new(FixedClock(NOW)),
            Reach::Anywhere,
        );
        let got = service.create(&admin(), "http://127.0.0.1:9/x", &["checkin.succeeded".to_owned()]).await;
        assert!(got.is_ok_and(|w| w.secret != fresh_secret()), "random secrets");
    }
}
