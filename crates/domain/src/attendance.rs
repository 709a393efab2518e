//! QR codes, front-desk check-in and attendance history.
//!
//! A member's QR code is `U{user_id}_{secret}`, where the secret is 8 lowercase hex
//! digits drawn from a CSPRNG and stored for the user. A check-in accepts only the
//! current secret, compared in constant time: a guessed, forged or rotated-out code
//! never checks anyone in.

use std::sync::Arc;

use async_trait::async_trait;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::credits::{CreditRules, Credits};
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::members::MemberLock;
use crate::passes::{Cause, Pass};
use crate::policy;
use crate::schedule::{Attendance, ParticipationStatus, ScheduleRepository, Session, SessionStatus};
use crate::tx::{Tx, UnitOfWork};
pub use crate::values::QrMode;
use crate::values::{Actor, GymId, Page, SessionId, UserId};

/// How long one rotating code is the current one (RFC 6238's usual step).
pub const QR_STEP_SECONDS: i64 = 30;

/// The step of an instant: whole 30-second periods since the Unix epoch.
pub fn qr_step(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(QR_STEP_SECONDS)
}

/// A member's QR secret: the printed half (8 lowercase hex digits, the static code)
/// and the key of their rotating codes (256 bits, hex), which never leaves the server.
#[derive(Clone, PartialEq, Eq)]
pub struct QrSecret {
    code: String,
    key: Option<String>,
}

impl std::fmt::Debug for QrSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QrSecret(..)")
    }
}

impl QrSecret {
    /// A fresh secret from the thread's CSPRNG.
    pub fn random() -> Self {
        Self { code: format!("{:08x}", rand::random::<u32>()), key: Some(Self::fresh_key()) }
    }

    /// A fresh key of rotating codes: 256 bits from the thread's CSPRNG, as hex.
    pub fn fresh_key() -> String {
        let key: [u8; 32] = rand::random();
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Wraps a stored secret (a user stored before rotating codes has no key: no
    /// rotating code is theirs until they rotate).
    pub fn from_stored(code: String, key: Option<String>) -> Self {
        Self { code, key }
    }

    /// The printed hex digits.
    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// The key of rotating codes, as stored.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Whether `scanned` is, byte for byte, the code this secret prints for `user`:
    /// compared in constant time, so response timing says nothing about the secret,
    /// and whole, so no other spelling of the same id passes.
    pub fn is_code_of(&self, user: UserId, scanned: &str) -> bool {
        QrCode::format(user, self).as_bytes().ct_eq(scanned.as_bytes()).into()
    }

    /// The rotating code of `user` at `step`: `U{id}_` and 8 hex digits of
    /// HMAC-SHA256(key, step as 8 big-endian bytes), truncated as RFC 4226 §5.3 does
    /// (4 bytes at the offset the last nibble names, the top bit cleared).
    pub fn rotating_code(&self, user: UserId, step: i64) -> Option<String> {
        Some(format!("U{}_{:08x}", user.0, totp(self.key.as_deref()?.as_bytes(), step)?))
    }

    /// The step among `steps` whose rotating code `scanned` is, compared in
    /// constant time.
    pub fn rotating_step_of(&self, user: UserId, scanned: &str, steps: &[i64]) -> Option<i64> {
        steps.iter().copied().find(|&step| {
            self.rotating_code(user, step).is_some_and(|c| bool::from(c.as_bytes().ct_eq(scanned.as_bytes())))
        })
    }
}

/// The dynamic truncation of HMAC-SHA256(key, step): 31 bits.
fn totp(key: &[u8], step: i64) -> Option<u32> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.last()? & 0x0f);
    let bytes: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) & 0x7fff_ffff)
}

/// A parsed QR code: `U{user_id}_{8 lowercase hex}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrCode {
    /// Whose code it claims to be.
    pub user_id: UserId,
    /// The secret part, not yet checked.
    pub secret: String,
}

impl QrCode {
    /// Parses the printed form.
    ///
    /// # Errors
    /// [`DomainError::InvalidQr`] for anything else: a lower-case `u`, a missing or
    /// non-digit id, an id with leading zeros (or 0) or beyond 64 bits, other than 8
    /// lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self> {
        let rest = s.strip_prefix('U').ok_or(DomainError::InvalidQr)?;
        let (id, secret) = rest.split_once('_').ok_or(DomainError::InvalidQr)?;
        if id.is_empty() || id.starts_with('0') || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::InvalidQr);
        }
        let id: i64 = id.parse().map_err(|_| DomainError::InvalidQr)?;
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if secret.len() != 8 || !secret.bytes().all(hex) {
            return Err(DomainError::InvalidQr);
        }
        Ok(Self { user_id: UserId(id), secret: secret.to_owned() })
    }

    /// The printed form of a user's code.
    pub fn format(user: UserId, secret: &QrSecret) -> String {
        format!("U{}_{}", user.0, secret.as_str())
    }
}

/// Which sessions a check-in may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckInTarget {
    /// The session the front desk named (in any status; the rules decide).
    Session(SessionId),
    /// Scheduled sessions starting in `[from, until]`, both inclusive.
    Window {
        /// Earliest start.
        from: OffsetDateTime,
        /// Latest start.
        until: OffsetDateTime,
    },
}

/// A session that a check-in may go to, with the member's participation in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Session id.
    pub id: SessionId,
    /// Start.
    pub start_time: OffsetDateTime,
    /// End.
    pub end_time: OffsetDateTime,
    /// Scheduled or cancelled.
    pub status: SessionStatus,
    /// The member's participation, if any.
    pub participation: Option<ParticipationStatus>,
}

/// Everything a check-in decides on, read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInContext {
    /// The user's current QR secret.
    pub qr_secret: QrSecret,
    /// How the gym reads codes.
    pub qr_mode: QrMode,
    /// The step of the rotating code that last checked the member in at this gym.
    pub qr_step_used: Option<i64>,
    /// Whether the user belongs to the gym.
    pub is_member: bool,
    /// Candidate sessions (see [`CheckInTarget`]).
    pub candidates: Vec<Candidate>,
    /// The gym's IANA zone when it requires passes (a walk-in takes a credit);
    /// `None` when it does not.
    pub pass_zone: Option<String>,
}

/// Most places one run of the no-show job marks (the rest wait for the next run).
pub const NO_SHOWS_PER_RUN: u64 = 1000;

/// How long after a session's check-in window closes its places become no-shows: a
/// batch of check-ins decides on the time it began, and may still be finishing (its
/// lock waits, its rounds) when the window closes on the job's clock.
pub const NO_SHOW_MARGIN: Duration = Duration::minutes(5);

/// Who is in the gym: the members checked in within its occupancy window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    /// Members checked in within the window (each once, whatever their sessions).
    pub total: i64,
    /// The gym's window, in minutes.
    pub window_minutes: i32,
    /// Members checked in within the window, per session, by session id.
    pub sessions: Vec<(SessionId, i64)>,
}

/// A member's QR code as shown to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyQr {
    /// `U{id}_{8 hex}`.
    pub code: String,
    /// When a rotating code stops being the current one; `None` for a static code.
    pub expires_at: Option<OffsetDateTime>,
    /// The gym's mode.
    pub mode: QrMode,
}

/// What a successful check-in reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIn {
    /// The member checked in.
    pub user_id: UserId,
    /// The session: id, start, end.
    pub session_id: SessionId,
    /// Start of the session.
    pub start_time: OffsetDateTime,
    /// End of the session.
    pub end_time: OffsetDateTime,
    /// `true` when no participation existed before.
    pub new_participation: bool,
}

/// One scan at a front desk, as part of a batch ([`AttendanceService::check_in_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The desk: who scans, in which gym.
    pub actor: Actor,
    /// The code scanned.
    pub qr: String,
    /// The session the desk named, if any.
    pub session_id: Option<SessionId>,
}

/// What became of a scan of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    /// Answered: checked in, or refused with the contract's code.
    Answered(Result<CheckIn>),
    /// An earlier scan of the same member is in this batch: this one goes into the
    /// next batch, where it sees what the first one did.
    Later,
}

/// What a check-in reads of one member: their gym, the user the code names, and
/// the sessions to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextAsk {
    /// The gym of the desk.
    pub gym: GymId,
    /// The user the code names.
    pub user: UserId,
    /// The named session, or the window.
    pub target: CheckInTarget,
}

/// A member's attendance figures in a gym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSummary {
    /// Attended sessions, ever.
    pub total_attendances: i64,
    /// Attended sessions in the last 30 days.
    pub attendances_last_30_days: i64,
    /// The latest attendance.
    pub last_attendance: Option<OffsetDateTime>,
    /// The next 5 sessions the member is registered for.
    pub upcoming_registrations: Vec<Session>,
}

/// Storage behind QR codes, check-ins and attendance.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AttendanceRepository: Send + Sync {
    /// The user's current QR secret and how the gym reads codes; `Ok(None)` for an
    /// unknown user or gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn qr_of(&self, gym: GymId, user: UserId) -> Result<Option<(QrSecret, QrMode)>>;
    /// Replaces the user's QR secret.
    ///
    /// # Errors
    /// Storage failures.
    async fn set_qr_secret(&self, tx: &mut Tx, user: UserId, secret: &QrSecret) -> Result<()>;
    /// Gives the user this key of rotating codes unless they have one already (a
    /// key stored meanwhile by another request stays).
    ///
    /// # Errors
    /// Storage failures.
    async fn fill_qr_key(&self, tx: &mut Tx, user: UserId, key: &str) -> Result<()>;
    /// Reads, in one statement and inside the check-in's transaction, for each ask:
    /// the user's secret, membership of the gym, and the candidate sessions of the
    /// gym with the user's participation in each; answers in the order of `asks`,
    /// `None` for an unknown user. Read after the members' locks
    /// ([`MemberLock::lock_members`]), it sees what every earlier holder of those
    /// locks committed.
    ///
    /// # Errors
    /// Storage failures.
    async fn check_in_contexts(&self, tx: &mut Tx, asks: &[ContextAsk]) -> Result<Vec<Option<CheckInContext>>>;
    /// Records, for each `(gym, member, step)`, the step of the rotating code that
    /// checked the member in, under the member's lock (a step never goes back).
    ///
    /// # Errors
    /// Storage failures.
    async fn use_qr_steps(&self, tx: &mut Tx, used: &[(GymId, UserId, i64)]) -> Result<()>;
    /// Marks `no_show`, across gyms, at most `limit` participations still
    /// `registered` in sessions that ended by `ended_by` and started before
    /// `started_before`; answers each marked `(gym, session, member)`. A participation
    /// another transaction holds is left for the next run, and one that is no longer
    /// `registered` when reached is not marked: each is marked once, whoever runs.
    ///
    /// # Errors
    /// Storage failures.
    async fn mark_no_shows(
        &self,
        tx: &mut Tx,
        ended_by: OffsetDateTime,
        started_before: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<(GymId, SessionId, UserId)>>;
    /// The gym's occupancy window in minutes; `None` for an unknown gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn occupancy_window(&self, gym: GymId) -> Result<Option<i32>>;
    /// The gym's check-ins since `since`: the session and the member of each.
    ///
    /// # Errors
    /// Storage failures.
    async fn checked_in_since(&self, gym: GymId, since: OffsetDateTime) -> Result<Vec<(SessionId, UserId)>>;
    /// The member's latest attendance time in the gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn last_attendance(&self, gym: GymId, user: UserId) -> Result<Option<OffsetDateTime>>;
    /// Attended sessions with their attendance time, newest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn history(&self, gym: GymId, user: UserId, page: Page) -> Result<Vec<(Session, OffsetDateTime)>>;
    /// Number of attendances in all and since `since`, and the latest time: `(total,
    /// recent, last)`.
    ///
    /// # Errors
    /// Storage failures.
    async fn attendance_counts(
        &self,
        gym: GymId,
        user: UserId,
        since: OffsetDateTime,
    ) -> Result<(i64, i64, Option<OffsetDateTime>)>;
    /// Sessions starting after `now` where the member is `registered`, soonest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn upcoming_registrations(
        &self,
        gym: GymId,
        user: UserId,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<Session>>;
}

/// Use cases of QR codes and attendance.
#[derive(Clone)]
pub struct AttendanceService {
    repo: Arc<dyn AttendanceRepository>,
    members: Arc<dyn MemberLock>,
    schedule: Arc<dyn ScheduleRepository>,
    credits: Credits,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
    window: Duration,
}

impl AttendanceService {
    /// Wires the service to its ports (`members` for the member's lock, `schedule`
    /// for the place and the participation, `credits` for walk-ins' passes); `window`
    /// is W of the check-in rule.
    pub fn new(
        repo: Arc<dyn AttendanceRepository>,
        members: Arc<dyn MemberLock>,
        schedule: Arc<dyn ScheduleRepository>,
        credits: Credits,
        uow: UnitOfWork,
        clock: Arc<dyn Clock>,
        window: Duration,
    ) -> Self {
        Self { repo, members, schedule, credits, uow, clock, window }
    }

    /// The caller's current QR code in the gym: the printed one in a static gym; in
    /// a rotating gym the code of the current step, current until `expires_at` (and
    /// still accepted for one step after).
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] if the user vanished; storage failures.
    pub async fn my_qr(&self, actor: &Actor) -> Result<MyQr> {
        let (mut secret, mode) =
            self.repo.qr_of(actor.gym_id, actor.user_id).await?.ok_or(DomainError::UserNotFound)?;
        if mode == QrMode::Rotating && secret.key().is_none() {
            // A user stored without a key (by an instance of the release before rotating
            // codes, during an upgrade) gets one on first need.
            let mut tx = self.uow.begin().await?;
            self.repo.fill_qr_key(&mut tx, actor.user_id, &QrSecret::fresh_key()).await?;
            self.uow.commit(tx).await?;
            secret = self.repo.qr_of(actor.gym_id, actor.user_id).await?.ok_or(DomainError::UserNotFound)?.0;
        }
        self.qr_now(actor.user_id, &secret, mode)
    }

    /// Replaces the caller's QR secret (the printed code and the key of rotating
    /// codes); every code of the old one stops working at once.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn rotate_qr(&self, actor: &Actor) -> Result<MyQr> {
        let user = actor.user_id;
        let (_, mode) = self.repo.qr_of(actor.gym_id, user).await?.ok_or(DomainError::UserNotFound)?;
        let secret = QrSecret::random();
        let mut tx = self.uow.begin().await?;
        self.repo.set_qr_secret(&mut tx, user, &secret).await?;
        tx.record(DomainEvent::QrRotated { user });
        self.uow.commit(tx).await?;
        self.qr_now(user, &secret, mode)
    }

    fn qr_now(&self, user: UserId, secret: &QrSecret, mode: QrMode) -> Result<MyQr> {
        match mode {
            QrMode::Static => Ok(MyQr { code: QrCode::format(user, secret), expires_at: None, mode }),
            QrMode::Rotating => {
                let step = qr_step(self.clock.now());
                let code = secret
                    .rotating_code(user, step)
                    .ok_or_else(|| DomainError::internal("a user without a key of rotating codes"))?;
                let expires_at =
                    OffsetDateTime::from_unix_timestamp((step + 1) * QR_STEP_SECONDS).map_err(DomainError::internal)?;
                Ok(MyQr { code, expires_at: Some(expires_at), mode })
            }
        }
    }

    /// Checks a member in from their QR code (staff only): a batch of one (see
    /// [`AttendanceService::check_in_batch`] for the rules).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] for non-staff callers, then the codes of the rules;
    /// storage failures.
    pub async fn check_in(&self, actor: &Actor, qr: &str, session_id: Option<SessionId>) -> Result<CheckIn> {
        let scan = Scan { actor: *actor, qr: qr.to_owned(), session_id };
        match self.check_in_batch(std::slice::from_ref(&scan)).await?.pop() {
            Some(ScanResult::Answered(answer)) => answer,
            _ => Err(DomainError::internal("a batch of one scan left its scan unanswered")),
        }
    }

    /// Checks in a batch of scans of front desks (staff only), in one transaction.
    ///
    /// Rules, for each scan in order: the desk is staff (`forbidden`); the code is
    /// well-formed and the user's current one, byte for byte (`invalid_qr`); the user
    /// belongs to the gym (`not_a_member`); the session — named (`session_not_found`,
    /// `session_outside_window`) or chosen among scheduled sessions starting within
    /// ±W of now by [`choose_session`] (`no_session_in_window`); the member is not
    /// already attended there, nor, for a chosen session, anywhere in the window
    /// (`already_checked_in`). A registered place becomes attended; anyone else (a
    /// walk-in, a cancelled or no-show booking) takes a place.
    ///
    /// Everything is decided on one read made under the members' locks (lock order
    /// 2, taken sorted), so scans of one member on any number of instances check
    /// them in once, and a member removed meanwhile is refused. A second scan of a
    /// member in the same batch is [`ScanResult::Later`]: the caller puts it in the
    /// next batch. A refused scan writes nothing and never fails its neighbours.
    /// The places are taken under the sessions' locks (order 3, sorted); a session
    /// cancelled meanwhile refuses its scans (`session_not_found`) and the rest is
    /// done again without them.
    ///
    /// # Errors
    /// Failures of the whole batch (storage): nothing of it was committed, or the
    /// commit's outcome is unknown ([`DomainError::Unavailable`]).
    pub async fn check_in_batch(&self, scans: &[Scan]) -> Result<Vec<ScanResult>> {
        let now = self.clock.now();
        let window = (now - self.window, now + self.window);
        let mut out: Vec<Option<ScanResult>> = vec![None; scans.len()];
        let mut asks: Vec<(usize, ContextAsk)> = Vec::with_capacity(scans.len());
        for (i, scan) in scans.iter().enumerate() {
            match ask_of(scan, window) {
                Err(e) => out[i] = Some(ScanResult::Answered(Err(e))),
                Ok(ask) if asks.iter().any(|(_, a)| (a.gym, a.user) == (ask.gym, ask.user)) => {
                    out[i] = Some(ScanResult::Later);
                }
                Ok(ask) => asks.push((i, ask)),
            }
        }
        let mut cancelled: Vec<(GymId, SessionId)> = Vec::new();
        let mut rounds = 0;
        while !asks.is_empty() {
            match self.try_batch(scans, &asks, &cancelled, now, window).await? {
                Attempt::Done(answers) => {
                    for (i, answer) in answers {
                        out[i] = Some(ScanResult::Answered(answer));
                    }
                    break;
                }
                // Sessions cancelled since the read: again, their scans refused.
                Attempt::Cancelled(sessions) => cancelled.extend(sessions),
                // Each round follows a change another transaction committed; a run of
                // them is a storm of promotions, which the client may retry later.
                Attempt::Again if rounds >= MAX_ROUNDS => return Err(DomainError::Unavailable),
                Attempt::Again => {}
            }
            rounds += 1;
        }
        Ok(out.into_iter().map(|o| o.unwrap_or(ScanResult::Later)).collect())
    }

    /// One attempt at a batch, in one transaction.
    async fn try_batch(
        &self,
        scans: &[Scan],
        asks: &[(usize, ContextAsk)],
        cancelled: &[(GymId, SessionId)],
        now: OffsetDateTime,
        (from, until): (OffsetDateTime, OffsetDateTime),
    ) -> Result<Attempt> {
        let mut tx = self.uow.begin().await?;
        // The locks before the read: the read then sees every earlier scan of these
        // members, whichever instance made it. Sorted: two batches never wait on
        // each other in a circle.
        let mut keys: Vec<(GymId, UserId)> = asks.iter().map(|(_, a)| (a.gym, a.user)).collect();
        keys.sort_unstable();
        let members = self.members.lock_members(&mut tx, &keys).await?;
        let read: Vec<ContextAsk> = asks.iter().map(|(_, a)| *a).collect();
        let contexts = self.repo.check_in_contexts(&mut tx, &read).await?;
        let mut answers = Vec::with_capacity(asks.len());
        let mut writes: Vec<(usize, ContextAsk, Candidate)> = Vec::new();
        let mut steps: Vec<(GymId, UserId, i64)> = Vec::new();
        // Walk-ins of gyms that require passes, with the gym's zone: decided once
        // their passes are read, after the sessions' locks.
        let mut by_pass: Vec<(usize, String)> = Vec::new();
        for ((i, ask), ctx) in asks.iter().zip(contexts) {
            let is_member = members.iter().any(|m| (m.gym_id, m.user_id) == (ask.gym, ask.user));
            let pass_zone = ctx.as_ref().and_then(|c| c.pass_zone.clone());
            let decided = decide(&scans[*i], ask, ctx, is_member, now, from, until).and_then(|(c, step)| {
                if cancelled.contains(&(ask.gym, c.id)) { Err(DomainError::SessionNotFound) } else { Ok((c, step)) }
            });
            match decided {
                Ok((chosen, step)) => {
                    steps.extend(step.map(|s| (ask.gym, ask.user, s)));
                    if let Some(zone) =
                        pass_zone.filter(|_| chosen.participation != Some(ParticipationStatus::Registered))
                    {
                        by_pass.push((writes.len(), zone));
                    }
                    writes.push((*i, *ask, chosen));
                }
                Err(e) => answers.push((*i, Err(e))),
            }
        }
        if writes.is_empty() {
            return Ok(Attempt::Done(answers));
        }
        let mut places: Vec<(GymId, SessionId, i32)> = Vec::new();
        for (_, ask, chosen) in &writes {
            if chosen.participation != Some(ParticipationStatus::Registered) {
                match places.iter_mut().find(|(g, s, _)| (*g, *s) == (ask.gym, chosen.id)) {
                    Some((_, _, n)) => *n += 1,
                    None => places.push((ask.gym, chosen.id, 1)),
                }
            }
        }
        if by_pass.is_empty() {
            self.record_check_ins(&mut tx, &writes);
        }
        if !places.is_empty() {
            // Places are taken: many scans of one class queue on its row. The facts
            // are written before the lock, so it is held for two statements and the
            // commit only (a batch with walk-ins that need passes knows its facts
            // only once their passes are read, after this lock).
            if by_pass.is_empty() {
                self.uow.flush(&mut tx).await?;
            }
            places.sort_unstable();
            let taken = self.schedule.take_places(&mut tx, &places).await?;
            let gone: Vec<(GymId, SessionId)> =
                places.iter().map(|(g, s, _)| (*g, *s)).filter(|p| !taken.contains(&p.1)).collect();
            if !gone.is_empty() {
                return Ok(Attempt::Cancelled(gone));
            }
        }
        let mut passes: Vec<Option<Pass>> = vec![None; writes.len()];
        if !by_pass.is_empty() {
            let refused = self.walk_in_passes(&mut tx, &writes, &by_pass, &mut passes).await?;
            // Refused walk-ins give back the places taken for them above (their
            // sessions are locked by this transaction).
            let mut kept = Vec::with_capacity(writes.len());
            let mut kept_passes = Vec::with_capacity(writes.len());
            for (n, (w, pass)) in writes.into_iter().zip(passes).enumerate() {
                match refused.iter().find(|(r, _)| *r == n) {
                    Some((_, e)) => {
                        self.schedule.move_count(&mut tx, w.1.gym, w.2.id, -1).await?;
                        // A refused code is not used up.
                        steps.retain(|(g, u, _)| (*g, *u) != (w.1.gym, w.1.user));
                        answers.push((w.0, Err(e.clone())));
                    }
                    None => {
                        kept.push(w);
                        kept_passes.push(pass);
                    }
                }
            }
            writes = kept;
            passes = kept_passes;
            if writes.is_empty() {
                // Only refusals: nothing to commit.
                return Ok(Attempt::Done(answers));
            }
            self.record_check_ins(&mut tx, &writes);
        }
        let rows: Vec<Attendance> = writes
            .iter()
            .zip(&passes)
            .map(|((_, ask, chosen), pass)| Attendance {
                gym: ask.gym,
                session: chosen.id,
                member: ask.user,
                at: now,
                registered: chosen.participation == Some(ParticipationStatus::Registered),
                pass: pass.as_ref().map(|p| p.id),
            })
            .collect();
        let unmarked = self.schedule.mark_attended(&mut tx, &rows).await?;
        let mut gone: Vec<(GymId, SessionId)> = Vec::new();
        for row in unmarked.iter().filter(|r| r.registered) {
            // Their bookings were cancelled with their sessions since the read.
            if !gone.contains(&(row.gym, row.session)) {
                gone.push((row.gym, row.session));
            }
        }
        if !gone.is_empty() {
            return Ok(Attempt::Cancelled(gone));
        }
        if !unmarked.is_empty() {
            // A walk-in was promoted from the waitlist since the read: it holds a place
            // now, so the one taken here would count twice. Read again.
            return Ok(Attempt::Again);
        }
        let uses: Vec<(Pass, SessionId, Option<UserId>)> = writes
            .iter()
            .zip(passes)
            .filter_map(|((i, _, chosen), p)| p.map(|p| (p, chosen.id, Some(scans[*i].actor.user_id))))
            .collect();
        if !uses.is_empty() {
            self.credits.take(&mut tx, &uses, Cause::Staff, now).await?;
        }
        if !steps.is_empty() {
            self.repo.use_qr_steps(&mut tx, &steps).await?;
        }
        self.uow.commit(tx).await?;
        answers.extend(writes.into_iter().map(|(i, ask, chosen)| {
            let new_participation = chosen.participation.is_none();
            let done = CheckIn {
                user_id: ask.user,
                session_id: chosen.id,
                start_time: chosen.start_time,
                end_time: chosen.end_time,
                new_participation,
            };
            (i, Ok(done))
        }));
        Ok(Attempt::Done(answers))
    }

    /// The facts of a batch's check-ins.
    fn record_check_ins(&self, tx: &mut Tx, writes: &[(usize, ContextAsk, Candidate)]) {
        for (_, ask, chosen) in writes {
            let walk_in = chosen.participation.is_none();
            tx.record(DomainEvent::CheckedIn { gym: ask.gym, session: chosen.id, member: ask.user, walk_in });
        }
    }

    /// Chooses the pass of each walk-in of a gym that requires passes (`by_pass`:
    /// the rows of `writes`, with their gym's zone), under the passes' locks (order
    /// 4, after the sessions'), filling `passes`; answers the rows refused, with why
    /// (`no_valid_pass`, `weekly_limit_reached`).
    async fn walk_in_passes(
        &self,
        tx: &mut Tx,
        writes: &[(usize, ContextAsk, Candidate)],
        by_pass: &[(usize, String)],
        passes: &mut [Option<Pass>],
    ) -> Result<Vec<(usize, DomainError)>> {
        let mut asks = Vec::with_capacity(by_pass.len());
        for (n, zone) in by_pass {
            let (_, ask, chosen) = &writes[*n];
            asks.push(CreditRules::new(true, 0, zone.as_str())?.ask(
                ask.gym,
                ask.user,
                chosen.id,
                chosen.start_time,
            )?);
        }
        let read = self.credits.read(tx, &asks, &[]).await?;
        let mut refused = Vec::new();
        for (k, (n, _)) in by_pass.iter().enumerate() {
            let start = writes[*n].2.start_time;
            match crate::credits::choose(read.iter().filter(|u| u.ask == k), start) {
                Ok(pass) => passes[*n] = Some(pass.clone()),
                Err(e) => refused.push((*n, e)),
            }
        }
        Ok(refused)
    }

    /// Marks the places of members who did not come as `no_show` (the job every
    /// instance runs): registrations of sessions that have ended and whose check-in
    /// window closed more than [`NO_SHOW_MARGIN`] ago (a check-in accepts a session
    /// that started at most `W` ago on its batch's clock; the job never takes one a
    /// batch still running could), at most
    /// [`NO_SHOWS_PER_RUN`] per run, with one fact per session. Safe on any number of
    /// instances at once; answers how many were marked.
    ///
    /// # Errors
    /// Storage failures: nothing of the run was marked.
    pub async fn mark_no_shows(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        let started_before = now - self.window - NO_SHOW_MARGIN;
        let marked = self.repo.mark_no_shows(&mut tx, now, started_before, NO_SHOWS_PER_RUN).await?;
        if marked.is_empty() {
            return Ok(0);
        }
        let mut sessions: Vec<(GymId, SessionId, Vec<UserId>)> = Vec::new();
        for (gym, session, member) in &marked {
            match sessions.iter_mut().find(|(g, s, _)| (g, s) == (gym, session)) {
                Some((_, _, members)) => members.push(*member),
                None => sessions.push((*gym, *session, vec![*member])),
            }
        }
        for (gym, session, mut members) in sessions {
            members.sort_unstable();
            tx.record(DomainEvent::NoShows { gym, session, members });
        }
        self.uow.commit(tx).await?;
        Ok(marked.len())
    }

    /// Who is in the gym now (staff): the members checked in within the gym's
    /// occupancy window, in all and per session.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below trainer; storage failures.
    pub async fn occupancy(&self, actor: &Actor) -> Result<Occupancy> {
        actor.require(policy::SEE_OCCUPANCY)?;
        let window_minutes =
            self.repo.occupancy_window(actor.gym_id).await?.unwrap_or(crate::limits::OCCUPANCY_WINDOW_DEFAULT);
        let since = self.clock.now() - Duration::minutes(i64::from(window_minutes));
        let rows = self.repo.checked_in_since(actor.gym_id, since).await?;
        let mut members: Vec<UserId> = rows.iter().map(|(_, m)| *m).collect();
        members.sort_unstable();
        members.dedup();
        let mut sessions: Vec<(SessionId, i64)> = Vec::new();
        for (session, _) in &rows {
            match sessions.iter_mut().find(|(s, _)| s == session) {
                Some((_, n)) => *n += 1,
                None => sessions.push((*session, 1)),
            }
        }
        sessions.sort_unstable();
        Ok(Occupancy { total: i64::try_from(members.len()).unwrap_or(i64::MAX), window_minutes, sessions })
    }

    /// The caller's latest attendance in the gym.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn last_attendance(&self, actor: &Actor) -> Result<Option<OffsetDateTime>> {
        self.repo.last_attendance(actor.gym_id, actor.user_id).await
    }

    /// The caller's attended sessions, newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn history(&self, actor: &Actor, page: Page) -> Result<Vec<(Session, OffsetDateTime)>> {
        self.repo.history(actor.gym_id, actor.user_id, page).await
    }

    /// The caller's dashboard figures in the gym.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn dashboard(&self, actor: &Actor) -> Result<DashboardSummary> {
        let now = self.clock.now();
        let (total, recent, last) =
            self.repo.attendance_counts(actor.gym_id, actor.user_id, now - Duration::days(30)).await?;
        let upcoming = self.repo.upcoming_registrations(actor.gym_id, actor.user_id, now, 5).await?;
        Ok(DashboardSummary {
            total_attendances: total,
            attendances_last_30_days: recent,
            last_attendance: last,
            upcoming_registrations: upcoming,
        })
    }
}

/// What became of one attempt at a batch.
/// Attempts at one batch before it answers `database_unavailable` (each one follows a
/// promotion committed by another transaction since the read).
const MAX_ROUNDS: usize = 8;

enum Attempt {
    /// Every scan of the attempt answered (the successes committed).
    Done(Vec<(usize, Result<CheckIn>)>),
    /// These sessions were cancelled since the read: nothing was committed.
    Cancelled(Vec<(GymId, SessionId)>),
    /// A participation changed since the read: nothing was committed, read again.
    Again,
}

/// The checks of a scan that need no storage, and what it reads.
fn ask_of(scan: &Scan, (from, until): (OffsetDateTime, OffsetDateTime)) -> Result<ContextAsk> {
    scan.actor.require(policy::CHECK_IN)?;
    let code = QrCode::parse(&scan.qr)?;
    let target = match scan.session_id {
        Some(id) => CheckInTarget::Session(id),
        None => CheckInTarget::Window { from, until },
    };
    Ok(ContextAsk { gym: scan.actor.gym_id, user: code.user_id, target })
}

/// The session a scan checks its member into, decided on what was read under the
/// member's lock; or why not.
fn decide(
    scan: &Scan,
    ask: &ContextAsk,
    ctx: Option<CheckInContext>,
    is_member: bool,
    now: OffsetDateTime,
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<(Candidate, Option<i64>)> {
    let ctx = ctx.ok_or(DomainError::InvalidQr)?;
    let step = match ctx.qr_mode {
        QrMode::Static if ctx.qr_secret.is_code_of(ask.user, &scan.qr) => None,
        QrMode::Static => return Err(DomainError::InvalidQr),
        // The current step's code, or the previous one's (a code shown just before
        // the step turned); never a step at or before the one that last checked the
        // member in here, so a code works once, and a screenshot of it not again.
        QrMode::Rotating => {
            let current = qr_step(now);
            let step = ctx
                .qr_secret
                .rotating_step_of(ask.user, &scan.qr, &[current, current - 1])
                .ok_or(DomainError::InvalidQr)?;
            if ctx.qr_step_used.is_some_and(|used| step <= used) {
                return Err(DomainError::InvalidQr);
            }
            Some(step)
        }
    };
    if !is_member || !ctx.is_member {
        return Err(DomainError::NotAMember);
    }
    Ok((pick(ctx.candidates, scan.session_id, now, from, until)?, step))
}

/// The session of a check-in as the read sees it: the named one (scheduled,
/// within the window) or the one [`choose_session`] picks; refused when the member
/// is attended there already.
fn pick(
    candidates: Vec<Candidate>,
    named: Option<SessionId>,
    now: OffsetDateTime,
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Candidate> {
    let chosen = match named {
        Some(id) => {
            let c = candidates
                .into_iter()
                .find(|c| c.id == id && c.status == SessionStatus::Scheduled)
                .ok_or(DomainError::SessionNotFound)?;
            if c.start_time < from || c.start_time > until {
                return Err(DomainError::SessionOutsideWindow);
            }
            c
        }
        None => choose_session(candidates, now, from, until).ok_or(DomainError::NoSessionInWindow)?,
    };
    if chosen.participation == Some(ParticipationStatus::Attended) {
        return Err(DomainError::AlreadyCheckedIn);
    }
    Ok(chosen)
}

/// Picks the session of a check-in without a named session: among scheduled
/// sessions starting in `[from, until]`, those the member registered for *or is
/// already checked into* win — so a second scan in the window finds the session
/// already attended and answers `already_checked_in` instead of checking the member
/// into another one; then the start closest to `now`; then the earlier start; then
/// the lower id.
pub fn choose_session(
    candidates: Vec<Candidate>,
    now: OffsetDateTime,
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> Option<Candidate> {
    candidates
        .into_iter()
        .filter(|c| c.status == SessionStatus::Scheduled && c.start_time >= from && c.start_time <= until)
        .min_by_key(|c| {
            let holds_place =
                matches!(c.participation, Some(ParticipationStatus::Registered | ParticipationStatus::Attended));
            (!holds_place, (c.start_time - now).abs(), c.start_time, c.id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::*;
    use crate::values::Role;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-10 10:00 UTC);
    const GYM: GymId = GymId(4);
    const MEMBER: UserId = UserId(42);
    const SECRET: &str = "0a1b2c3d";
    const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const W: Duration = Duration::minutes(30);

    fn staff() -> Actor {
        Actor { user_id: UserId(1), gym_id: GYM, role: Role::Trainer }
    }

    fn qr() -> String {
        format!("U{}_{SECRET}", MEMBER.0)
    }

    fn cand(id: i64, start: OffsetDateTime, p: Option<ParticipationStatus>) -> Candidate {
        Candidate {
            id: SessionId(id),
            start_time: start,
            end_time: start + Duration::hours(1),
            status: SessionStatus::Scheduled,
            participation: p,
        }
    }

    fn ctx(is_member: bool, candidates: Vec<Candidate>) -> CheckInContext {
        CheckInContext {
            qr_secret: QrSecret::from_stored(SECRET.into(), Some(KEY.into())),
            qr_mode: QrMode::Static,
            qr_step_used: None,
            is_member,
            candidates,
            pass_zone: None,
        }
    }

    /// The context of a gym reading rotating codes, the member's last used step given.
    fn rotating(used: Option<i64>) -> CheckInContext {
        CheckInContext { qr_mode: QrMode::Rotating, qr_step_used: used, ..ctx(true, vec![cand(1, NOW, None)]) }
    }

    fn code_at(step: i64) -> String {
        QrSecret::from_stored(SECRET.into(), Some(KEY.into())).rotating_code(MEMBER, step).expect("a key")
    }

    fn repo_with(ctx: Option<CheckInContext>) -> MockAttendanceRepository {
        let mut repo = MockAttendanceRepository::new();
        with_check_in_context(&mut repo, GYM, MEMBER, ctx);
        repo
    }

    fn checked_in(session: i64, walk_in: bool) -> Vec<DomainEvent> {
        vec![DomainEvent::CheckedIn { gym: GYM, session: SessionId(session), member: MEMBER, walk_in }]
    }

    /// A schedule that marks the member attended in `session`, taking a place first
    /// when `take` (a walk-in, or a cancelled or no-show booking at the door).
    fn marks(session: i64, take: bool) -> MockScheduleRepository {
        let mut schedule = MockScheduleRepository::new();
        if take {
            schedule
                .expect_take_places()
                .withf(move |_, places| places == [(GYM, SessionId(session), 1)])
                .once()
                .returning(move |_, _| Ok(vec![SessionId(session)]));
        }
        let row = crate::schedule::Attendance {
            gym: GYM,
            session: SessionId(session),
            member: MEMBER,
            at: NOW,
            registered: !take,
            pass: None,
        };
        schedule.expect_mark_attended().withf(move |_, rows| rows == [row]).once().returning(|_, _| Ok(vec![]));
        schedule
    }

    /// The member's lock: `member` says whether they still belong to the gym.
    fn locked(member: bool) -> MockMemberLock {
        let mut gyms = MockMemberLock::new();
        let m = crate::members::Membership { user_id: MEMBER, gym_id: GYM, role: Role::Member, joined_at: NOW };
        with_locked_member(&mut gyms, GYM, MEMBER, member.then_some(m));
        gyms
    }

    fn svc(
        repo: MockAttendanceRepository,
        gyms: MockMemberLock,
        schedule: MockScheduleRepository,
        uow: UnitOfWork,
    ) -> AttendanceService {
        AttendanceService::new(
            Arc::new(repo),
            Arc::new(gyms),
            Arc::new(schedule),
            no_credits(),
            uow,
            Arc::new(FixedClock(NOW)),
            W,
        )
    }

    /// A service that must refuse before it begins a transaction.
    fn before_any_write(repo: MockAttendanceRepository) -> AttendanceService {
        svc(repo, MockMemberLock::new(), MockScheduleRepository::new(), untouched())
    }

    /// A service over `repo` that must refuse, under the member's lock, and roll back.
    fn refusing(repo: MockAttendanceRepository) -> AttendanceService {
        svc(repo, locked(true), MockScheduleRepository::new(), rolling_back())
    }

    /// A service that checks the member into `session` and commits its fact.
    fn checking_in(repo: MockAttendanceRepository, session: i64, take: bool, walk_in: bool) -> AttendanceService {
        svc(repo, locked(true), marks(session, take), committing(checked_in(session, walk_in)))
    }

    #[test]
    fn qr_parse_accepts_only_upper_u_digits_and_8_lowercase_hex() {
        assert_eq!(QrCode::parse("U42_0a1b2c3d"), Ok(QrCode { user_id: UserId(42), secret: "0a1b2c3d".into() }));
        for bad in [
            "",
            "u42_0a1b2c3d",
            "U42_0a1b2c3",
            "U42_0a1b2c3d4",
            "U_0a1b2c3d",
            "U4x_0a1b2c3d",
            "U42_0A1B2C3D",
            "U42-0a1b2c3d",
            "U99999999999999999999_0a1b2c3d",
            "U+42_0a1b2c3d",
            "U42_0a1b2c3g",
            "U42_0a1b_2c3",
            "U042_0a1b2c3d",
            "U000000042_0a1b2c3d",
            "U0_0a1b2c3d",
        ] {
            assert_eq!(QrCode::parse(bad), Err(DomainError::InvalidQr), "{bad:?}");
        }
    }

    #[test]
    fn a_secret_matches_only_the_code_as_printed() {
        let secret = QrSecret::from_stored("0a1b2c3d".into(), None);
        assert!(secret.is_code_of(UserId(42), "U42_0a1b2c3d"));
        for other in ["U042_0a1b2c3d", "U42_0a1b2c3d ", "U42_0A1B2C3D", "U43_0a1b2c3d", "U42_0a1b2c3e", ""] {
            assert!(!secret.is_code_of(UserId(42), other), "{other:?}");
        }
    }

    #[test]
    fn the_truncation_is_rfc_6238s() {
        // RFC 6238 appendix B, HMAC-SHA256, T = 59 s (step 1): 46119246 is the
        // truncated value modulo 10^8; the code prints the same 31 bits in hex.
        let value = totp(b"12345678901234567890123456789012", 1).expect("a value");
        assert_eq!(value % 100_000_000, 46_119_246);
        let at_1111111109 = totp(b"12345678901234567890123456789012", 1_111_111_109 / 30).expect("a value");
        assert_eq!(at_1111111109 % 100_000_000, 68_084_774);
    }

    #[test]
    fn rotating_codes_are_printed_codes_that_change_each_step() {
        let step = qr_step(NOW);
        let (now, next) = (code_at(step), code_at(step + 1));
        assert_ne!(now, next);
        assert_eq!(QrCode::parse(&now).map(|c| c.user_id), Ok(MEMBER), "scanners read it as ever: {now}");
        assert_eq!(qr_step(NOW + Duration::seconds(29)), step, "{NOW} starts a step");
        assert_eq!(qr_step(NOW + Duration::seconds(30)), step + 1);
        assert_eq!(QrSecret::from_stored(SECRET.into(), None).rotating_code(MEMBER, step), None);
    }

    #[tokio::test]
    async fn a_rotating_code_checks_in_in_its_step_and_the_next_only() {
        let step = qr_step(NOW);
        for scanned in [code_at(step), code_at(step - 1)] {
            let repo = repo_with(Some(rotating(None)));
            let mut repo = repo;
            repo.expect_use_qr_steps()
                .withf(move |_, used| used.len() == 1 && used[0].0 == GYM && used[0].1 == MEMBER)
                .once()
                .returning(|_, _| Ok(()));
            let got = checking_in(repo, 1, true, true).check_in(&staff(), &scanned, None).await;
            assert!(got.is_ok(), "{scanned}: {got:?}");
        }
        for stale in [code_at(step - 2), code_at(step + 1), qr()] {
            let got = refusing(repo_with(Some(rotating(None)))).check_in(&staff(), &stale, None).await;
            assert_eq!(got, Err(DomainError::InvalidQr), "{stale}");
        }
    }

    #[tokio::test]
    async fn a_user_without_a_key_gets_one_on_first_need_in_a_rotating_gym() {
        let mut repo = MockAttendanceRepository::new();
        let mut reads = 0;
        repo.expect_qr_of().times(2).returning(move |_, _| {
            reads += 1;
            let key = (reads > 1).then(|| KEY.to_owned());
            Ok(Some((QrSecret::from_stored(SECRET.into(), key), QrMode::Rotating)))
        });
        repo.expect_fill_qr_key().withf(|_, u, k| *u == MEMBER && k.len() == 64).once().returning(|_, _, _| Ok(()));
        let me = Actor { user_id: MEMBER, gym_id: GYM, role: Role::Member };
        let got = svc(repo, MockMemberLock::new(), MockScheduleRepository::new(), committing(vec![]))
            .my_qr(&me)
            .await
            .expect("a code");
        assert_eq!((got.code, got.mode), (code_at(qr_step(NOW)), QrMode::Rotating), "the key stored wins");
    }

    #[tokio::test]
    async fn a_rotating_code_works_once_within_its_step() {
        let step = qr_step(NOW);
        let got = refusing(repo_with(Some(rotating(Some(step))))).check_in(&staff(), &code_at(step), None).await;
        assert_eq!(got, Err(DomainError::InvalidQr), "the step that checked the member in");
        let got = refusing(repo_with(Some(rotating(Some(step))))).check_in(&staff(), &code_at(step - 1), None).await;
        assert_eq!(got, Err(DomainError::InvalidQr), "a step before it");
        let mut repo = repo_with(Some(rotating(Some(step - 1))));
        repo.expect_use_qr_steps().withf(move |_, used| used == [(GYM, MEMBER, step)]).once().returning(|_, _| Ok(()));
        let got = checking_in(repo, 1, true, true).check_in(&staff(), &code_at(step), None).await;
        assert!(got.is_ok(), "a later step: {got:?}");
    }

    #[tokio::test]
    async fn no_shows_are_marked_after_the_check_in_window_with_a_fact_per_session() {
        let mut repo = MockAttendanceRepository::new();
        repo.expect_mark_no_shows()
            .withf(|_, ended_by, started_before, limit| {
                (*ended_by, *started_before, *limit) == (NOW, NOW - W - NO_SHOW_MARGIN, NO_SHOWS_PER_RUN)
            })
            .once()
            .returning(|_, _, _, _| {
                Ok(vec![(GYM, SessionId(1), UserId(9)), (GYM, SessionId(2), UserId(8)), (GYM, SessionId(1), UserId(7))])
            });
        let facts = vec![
            DomainEvent::NoShows { gym: GYM, session: SessionId(1), members: vec![UserId(7), UserId(9)] },
            DomainEvent::NoShows { gym: GYM, session: SessionId(2), members: vec![UserId(8)] },
        ];
        let job = svc(repo, MockMemberLock::new(), MockScheduleRepository::new(), committing(facts));
        assert_eq!(job.mark_no_shows().await, Ok(3));
        let mut idle = MockAttendanceRepository::new();
        idle.expect_mark_no_shows().returning(|_, _, _, _| Ok(vec![]));
        let job = svc(idle, MockMemberLock::new(), MockScheduleRepository::new(), rolling_back());
        assert_eq!(job.mark_no_shows().await, Ok(0), "nothing to mark commits nothing");
    }

    #[tokio::test]
    async fn occupancy_counts_each_member_once_within_the_gyms_window() {
        let mut repo = MockAttendanceRepository::new();
        repo.expect_occupancy_window().returning(|_| Ok(Some(30)));
        repo.expect_checked_in_since().withf(|g, since| *g == GYM && *since == NOW - Duration::minutes(30)).returning(
            |_, _| Ok(vec![(SessionId(2), UserId(7)), (SessionId(1), UserId(7)), (SessionId(2), UserId(8))]),
        );
        let got = before_any_write(repo).occupancy(&staff()).await.expect("occupancy");
        assert_eq!(
            got,
            Occupancy { total: 2, window_minutes: 30, sessions: vec![(SessionId(1), 1), (SessionId(2), 2)] }
        );
        let member = Actor { role: Role::Member, ..staff() };
        let got = before_any_write(MockAttendanceRepository::new()).occupancy(&member).await;
        assert_eq!(got, Err(DomainError::Forbidden));
    }

    #[test]
    fn random_secrets_are_8_lowercase_hex_and_differ() {
        let a = QrSecret::random();
        let b = QrSecret::random();
        assert!(QrCode::parse(&QrCode::format(UserId(1), &a)).is_ok());
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn non_staff_cannot_check_in() {
        let actor = Actor { role: Role::Member, ..staff() };
        let got = before_any_write(MockAttendanceRepository::new()).check_in(&actor, &qr(), None).await;
        assert_eq!(got, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_malformed_code_is_invalid_qr_without_touching_storage() {
        let got = before_any_write(MockAttendanceRepository::new()).check_in(&staff(), "INVALID_QR", None).await;
        assert_eq!(got, Err(DomainError::InvalidQr));
    }

    #[tokio::test]
    async fn an_unknown_user_is_invalid_qr() {
        let got = svc(repo_with(None), locked(false), MockScheduleRepository::new(), rolling_back())
            .check_in(&staff(), &qr(), None)
            .await;
        assert_eq!(got, Err(DomainError::InvalidQr));
    }

    #[tokio::test]
    async fn a_right_id_with_a_wrong_secret_is_invalid_qr() {
        let repo = repo_with(Some(ctx(true, vec![cand(1, NOW, None)])));
        let got = refusing(repo).check_in(&staff(), &format!("U{}_ffffffff", MEMBER.0), None).await;
        assert_eq!(got, Err(DomainError::InvalidQr));
    }

    #[tokio::test]
    async fn a_valid_code_of_a_non_member_is_not_a_member() {
        let repo = repo_with(Some(ctx(false, vec![cand(1, NOW, None)])));
        let got = svc(repo, locked(false), MockScheduleRepository::new(), rolling_back())
            .check_in(&staff(), &qr(), None)
            .await;
        assert_eq!(got, Err(DomainError::NotAMember));
    }

    #[tokio::test]
    async fn no_session_in_window_when_there_is_none() {
        let repo = repo_with(Some(ctx(true, vec![])));
        assert_eq!(refusing(repo).check_in(&staff(), &qr(), None).await, Err(DomainError::NoSessionInWindow));
    }

    #[tokio::test]
    async fn a_named_cancelled_session_is_session_not_found() {
        let mut c = cand(7, NOW, None);
        c.status = SessionStatus::Cancelled;
        let repo = repo_with(Some(ctx(true, vec![c])));
        let got = refusing(repo).check_in(&staff(), &qr(), Some(SessionId(7))).await;
        assert_eq!(got, Err(DomainError::SessionNotFound));
    }

    #[tokio::test]
    async fn a_named_missing_session_is_session_not_found() {
        let repo = repo_with(Some(ctx(true, vec![])));
        let got = refusing(repo).check_in(&staff(), &qr(), Some(SessionId(7))).await;
        assert_eq!(got, Err(DomainError::SessionNotFound));
    }

    #[tokio::test]
    async fn window_edges_are_inclusive_for_a_named_session() {
        for start in [NOW - W, NOW + W] {
            let repo = repo_with(Some(ctx(true, vec![cand(7, start, None)])));
            let got = checking_in(repo, 7, true, true).check_in(&staff(), &qr(), Some(SessionId(7))).await;
            assert!(got.is_ok(), "start {start}: {got:?}");
        }
    }

    #[tokio::test]
    async fn one_second_beyond_the_window_is_session_outside_window() {
        for start in [NOW - W - Duration::seconds(1), NOW + W + Duration::seconds(1)] {
            let repo = repo_with(Some(ctx(true, vec![cand(7, start, None)])));
            let got = refusing(repo).check_in(&staff(), &qr(), Some(SessionId(7))).await;
            assert_eq!(got, Err(DomainError::SessionOutsideWindow), "start {start}");
        }
    }

    #[test]
    fn window_edges_are_inclusive_when_choosing() {
        let (from, until) = (NOW - W, NOW + W);
        assert_eq!(choose_session(vec![cand(1, NOW - W, None)], NOW, from, until).map(|c| c.id.0), Some(1));
        assert_eq!(choose_session(vec![cand(1, NOW + W, None)], NOW, from, until).map(|c| c.id.0), Some(1));
        assert_eq!(choose_session(vec![cand(1, NOW + W + Duration::seconds(1), None)], NOW, from, until), None);
        assert_eq!(choose_session(vec![cand(1, NOW - W - Duration::seconds(1), None)], NOW, from, until), None);
    }

    #[test]
    fn the_closest_start_wins_and_the_earlier_start_breaks_a_tie() {
        let (from, until) = (NOW - W, NOW + W);
        let c = vec![cand(1, NOW + Duration::minutes(20), None), cand(2, NOW - Duration::minutes(5), None)];
        assert_eq!(choose_session(c, NOW, from, until).map(|c| c.id.0), Some(2));
        let tie = vec![cand(3, NOW + Duration::minutes(10), None), cand(4, NOW - Duration::minutes(10), None)];
        assert_eq!(choose_session(tie, NOW, from, until).map(|c| c.id.0), Some(4));
    }

    #[test]
    fn a_registered_session_wins_over_a_closer_one() {
        let (from, until) = (NOW - W, NOW + W);
        let c = vec![cand(1, NOW, None), cand(2, NOW + Duration::minutes(25), Some(ParticipationStatus::Registered))];
        assert_eq!(choose_session(c, NOW, from, until).map(|c| c.id.0), Some(2));
    }

    #[test]
    fn cancelled_sessions_are_never_chosen() {
        let (from, until) = (NOW - W, NOW + W);
        let mut c = cand(1, NOW, Some(ParticipationStatus::Registered));
        c.status = SessionStatus::Cancelled;
        assert_eq!(
            choose_session(vec![c, cand(2, NOW + Duration::minutes(29), None)], NOW, from, until).map(|c| c.id.0),
            Some(2)
        );
    }

    #[tokio::test]
    async fn an_attended_participation_is_already_checked_in_and_rolls_back() {
        let repo = repo_with(Some(ctx(true, vec![cand(1, NOW, Some(ParticipationStatus::Attended))])));
        assert_eq!(refusing(repo).check_in(&staff(), &qr(), None).await, Err(DomainError::AlreadyCheckedIn));
    }

    #[tokio::test]
    async fn a_member_removed_before_the_lock_is_not_a_member() {
        // The unlocked view would have let them in; the lock finds no membership.
        let repo = repo_with(Some(ctx(true, vec![cand(1, NOW, None)])));
        let got = svc(repo, locked(false), MockScheduleRepository::new(), rolling_back())
            .check_in(&staff(), &qr(), None)
            .await;
        assert_eq!(got, Err(DomainError::NotAMember));
    }

    #[tokio::test]
    async fn a_session_cancelled_before_the_place_is_taken_is_session_not_found() {
        let repo = repo_with(Some(ctx(true, vec![cand(1, NOW, None)])));
        let mut schedule = MockScheduleRepository::new();
        // Cancelled since the read: nothing taken, and the batch is done again without it.
        schedule.expect_take_places().once().returning(|_, _| Ok(vec![]));
        let got = svc(repo, locked(true), schedule, rolling_back()).check_in(&staff(), &qr(), None).await;
        assert_eq!(got, Err(DomainError::SessionNotFound));
    }

    #[tokio::test]
    async fn a_booking_cancelled_with_its_session_after_the_read_is_not_marked_and_commits_nothing() {
        let registered = vec![cand(1, NOW + Duration::minutes(5), Some(ParticipationStatus::Registered))];
        let repo = repo_with(Some(ctx(true, registered)));
        let mut schedule = MockScheduleRepository::new();
        // The session's cancellation cancelled the booking between the read and the mark.
        schedule.expect_mark_attended().once().returning(|_, rows| Ok(rows.to_vec()));
        let got = svc(repo, locked(true), schedule, rolling_back()).check_in(&staff(), &qr(), None).await;
        assert_eq!(got, Err(DomainError::SessionNotFound));
    }

    #[tokio::test]
    async fn a_registered_member_keeps_their_place_and_commits_checked_in() {
        let registered = vec![cand(1, NOW + Duration::minutes(5), Some(ParticipationStatus::Registered))];
        let repo = repo_with(Some(ctx(true, registered)));
        let got = checking_in(repo, 1, false, false).check_in(&staff(), &qr(), None).await.expect("checked in");
        assert_eq!((got.session_id, got.user_id, got.new_participation), (SessionId(1), MEMBER, false));
    }

    #[tokio::test]
    async fn a_walk_in_takes_a_place_and_gets_a_new_participation() {
        let repo = repo_with(Some(ctx(true, vec![cand(1, NOW, None)])));
        let got = checking_in(repo, 1, true, true).check_in(&staff(), &qr(), None).await;
        assert!(got.expect("checked in").new_participation);
    }

    #[tokio::test]
    async fn a_cancelled_booking_at_the_door_takes_a_place_but_is_not_a_new_participation() {
        let repo = repo_with(Some(ctx(true, vec![cand(1, NOW, Some(ParticipationStatus::Cancelled))])));
        let got = checking_in(repo, 1, true, false).check_in(&staff(), &qr(), None).await;
        assert!(!got.expect("checked in").new_participation);
    }

    #[tokio::test]
    async fn a_second_scan_in_the_window_is_already_checked_in_not_another_session() {
        // Checked into the later session; a closer one without a participation exists.
        let c = vec![cand(1, NOW, None), cand(2, NOW + Duration::minutes(20), Some(ParticipationStatus::Attended))];
        let repo = repo_with(Some(ctx(true, c)));
        assert_eq!(refusing(repo).check_in(&staff(), &qr(), None).await, Err(DomainError::AlreadyCheckedIn));
        // A named session is the desk's explicit choice: only that session counts.
        let c = vec![cand(1, NOW, None), cand(2, NOW + Duration::minutes(20), Some(ParticipationStatus::Attended))];
        let repo = repo_with(Some(ctx(true, c)));
        let got = checking_in(repo, 1, true, true).check_in(&staff(), &qr(), Some(SessionId(1))).await;
        assert!(got.is_ok(), "{got:?}");
    }

    #[test]
    fn an_attended_session_wins_over_a_closer_one() {
        let (from, until) = (NOW - W, NOW + W);
        let c = vec![cand(1, NOW, None), cand(2, NOW - Duration::minutes(25), Some(ParticipationStatus::Attended))];
        assert_eq!(choose_session(c, NOW, from, until).map(|c| c.id.0), Some(2));
    }

    #[tokio::test]
    async fn a_batch_answers_each_scan_and_refusals_never_fail_their_neighbours() {
        let (other_gym, stranger, rotated) = (GymId(99), UserId(7), UserId(43));
        let scan = |actor: Actor, qr: String| Scan { actor, qr, session_id: None };
        let scans = vec![
            scan(Actor { gym_id: other_gym, ..staff() }, format!("U{}_{SECRET}", stranger.0)),
            scan(staff(), format!("U{}_ffffffff", rotated.0)),
            scan(staff(), qr()),
            scan(Actor { role: Role::Member, ..staff() }, qr()),
            scan(staff(), qr()),
        ];
        let mut repo = MockAttendanceRepository::new();
        let member_ctx = ctx(true, vec![cand(1, NOW, None)]);
        let (stranger_ctx, rotated_ctx) = (ctx(false, vec![]), ctx(true, vec![cand(1, NOW, None)]));
        repo.expect_check_in_contexts()
            .withf(move |_, asks| {
                asks.iter().map(|a| (a.gym, a.user)).collect::<Vec<_>>()
                    == [(other_gym, stranger), (GYM, rotated), (GYM, MEMBER)]
            })
            .once()
            .returning(move |_, _| {
                Ok(vec![Some(stranger_ctx.clone()), Some(rotated_ctx.clone()), Some(member_ctx.clone())])
            });
        let mut members = MockMemberLock::new();
        let m = |u: UserId| crate::members::Membership { user_id: u, gym_id: GYM, role: Role::Member, joined_at: NOW };
        members
            .expect_lock_members()
            .withf(move |_, keys| keys == [(GYM, MEMBER), (GYM, rotated), (other_gym, stranger)])
            .once()
            .returning(move |_, _| Ok(vec![m(MEMBER), m(rotated)]));
        let got = svc(repo, members, marks(1, true), committing(checked_in(1, true))).check_in_batch(&scans).await;
        let got = got.expect("the batch as a whole");
        assert_eq!(got[0], ScanResult::Answered(Err(DomainError::NotAMember)), "a member of another gym");
        assert_eq!(got[1], ScanResult::Answered(Err(DomainError::InvalidQr)), "a stale code");
        assert!(matches!(&got[2], ScanResult::Answered(Ok(c)) if c.user_id == MEMBER), "{:?}", got[2]);
        assert_eq!(got[3], ScanResult::Answered(Err(DomainError::Forbidden)), "not a desk");
        assert_eq!(got[4], ScanResult::Later, "a second scan of the member waits for the next batch");
    }

    #[tokio::test]
    async fn the_dashboard_counts_from_thirty_days_ago() {
        let mut repo = MockAttendanceRepository::new();
        repo.expect_attendance_counts()
            .withf(|g, u, since| *g == GYM && *u == MEMBER && *since == NOW - Duration::days(30))
            .once()
            .returning(|_, _, _| Ok((9, 2, Some(NOW))));
        repo.expect_upcoming_registrations()
            .withf(|_, _, now, limit| *now == NOW && *limit == 5)
            .once()
            .returning(|_, _, _, _| Ok(vec![]));
        let actor = Actor { user_id: MEMBER, gym_id: GYM, role: Role::Member };
        let d = before_any_write(repo).dashboard(&actor).await.expect("summary");
        assert_eq!((d.total_attendances, d.attendances_last_30_days, d.last_attendance), (9, 2, Some(NOW)));
    }
    fn in_a_pass_gym(candidates: Vec<Candidate>) -> CheckInContext {
        CheckInContext { pass_zone: Some("UTC".into()), ..ctx(true, candidates) }
    }

    fn pack(id: i64, left: i32) -> crate::passes::Usable {
        let pass = Pass {
            id,
            gym_id: GYM,
            member_id: MEMBER,
            plan_id: 1,
            kind: crate::plans::PlanKind::Pack,
            credits_total: Some(left.max(1)),
            credits_left: Some(left),
            starts_at: NOW - Duration::days(1),
            expires_at: NOW + Duration::days(10),
            cancelled_at: None,
            frozen: None,
            created_at: NOW - Duration::days(1),
            weekly_limit: None,
            categories: None,
        };
        crate::passes::Usable { ask: 0, pass, week_uses: 0, category: None }
    }

    #[tokio::test]
    async fn a_walk_in_in_a_gym_that_requires_passes_pays_with_a_credit_under_the_passes_lock() {
        let repo = repo_with(Some(in_a_pass_gym(vec![cand(1, NOW, None)])));
        let mut schedule = MockScheduleRepository::new();
        schedule.expect_take_places().once().returning(|_, _| Ok(vec![SessionId(1)]));
        schedule
            .expect_mark_attended()
            .withf(|_, rows| rows.len() == 1 && rows[0].pass == Some(6) && !rows[0].registered)
            .once()
            .returning(|_, _| Ok(vec![]));
        let mut passes = MockPassRepository::new();
        passes.expect_lock_usable().once().returning(|_, _, _| Ok(vec![pack(6, 2)]));
        passes
            .expect_append_for_bookings()
            .withf(|_, rows| rows.len() == 1 && rows[0].pass == 6 && rows[0].entry.credits == -1)
            .once()
            .returning(|_, rows| Ok(rows.iter().map(|r| (r.gym, r.pass)).collect()));
        let mut facts = checked_in(1, true);
        facts.push(DomainEvent::CreditUsed { gym: GYM, pass: 6, member: MEMBER, session: SessionId(1) });
        let svc = AttendanceService::new(
            Arc::new(repo),
            Arc::new(locked(true)),
            Arc::new(schedule),
            Credits::new(Arc::new(passes)),
            committing(facts),
            Arc::new(FixedClock(NOW)),
            W,
        );
        assert!(svc.check_in(&staff(), &qr(), Some(SessionId(1))).await.is_ok());
    }

    #[tokio::test]
    async fn a_walk_in_without_a_usable_pass_is_no_valid_pass_and_gives_its_place_back() {
        let repo = repo_with(Some(in_a_pass_gym(vec![cand(1, NOW, None)])));
        let mut schedule = MockScheduleRepository::new();
        schedule.expect_take_places().once().returning(|_, _| Ok(vec![SessionId(1)]));
        schedule
            .expect_move_count()
            .withf(|_, _, s, d| *s == SessionId(1) && *d == -1)
            .once()
            .returning(|_, _, _, _| Ok(()));
        schedule.expect_mark_attended().never();
        let mut passes = MockPassRepository::new();
        passes.expect_lock_usable().once().returning(|_, _, _| Ok(vec![pack(6, 0)]));
        let svc = AttendanceService::new(
            Arc::new(repo),
            Arc::new(locked(true)),
            Arc::new(schedule),
            Credits::new(Arc::new(passes)),
            rolling_back(),
            Arc::new(FixedClock(NOW)),
            W,
        );
        assert_eq!(svc.check_in(&staff(), &qr(), Some(SessionId(1))).await, Err(DomainError::NoValidPass));
    }

    #[tokio::test]
    async fn already_checked_in_comes_before_the_pass_and_a_booked_place_takes_no_credit() {
        let attended = repo_with(Some(in_a_pass_gym(vec![cand(1, NOW, Some(ParticipationStatus::Attended))])));
        assert_eq!(
            refusing(attended).check_in(&staff(), &qr(), Some(SessionId(1))).await,
            Err(DomainError::AlreadyCheckedIn)
        );
        // Registered: the credit was taken at the booking; the passes are not read.
        let booked = repo_with(Some(in_a_pass_gym(vec![cand(1, NOW, Some(ParticipationStatus::Registered))])));
        assert!(checking_in(booked, 1, false, false).check_in(&staff(), &qr(), Some(SessionId(1))).await.is_ok());
    }
}
