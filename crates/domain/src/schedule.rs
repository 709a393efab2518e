//! The timetable: classes, their sessions, and members booking places.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::credits::{CreditRules, Credits};
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::members::MemberLock;
use crate::passes::{Cause, EntryKind};
use crate::tx::{Tx, UnitOfWork};
use crate::values::{
    Actor, Capacity, ClassId, DateRange, DatesIn, DurationMinutes, GymId, Page, ParticipationId, SessionId, Timestamp,
    UserId, optional_text, required_text,
};
use crate::{limits, policy};

/// A kind of class a gym offers (e.g. "Spinning, 45 minutes, 20 places").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Identifier.
    pub id: ClassId,
    /// Owning gym.
    pub gym_id: GymId,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Length of one session, 1..=600.
    pub duration_minutes: i32,
    /// Places per session, 1..=1000.
    pub max_capacity: i32,
    /// Free-form category.
    pub category: Option<String>,
    /// Usual instructor.
    pub instructor_id: Option<UserId>,
    /// `false` once deleted (soft).
    pub active: bool,
}

/// What is asked to create a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClass {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Length of one session, 1..=600.
    pub duration_minutes: DurationMinutes,
    /// Places per session, 1..=1000.
    pub max_capacity: Capacity,
    /// Free-form category.
    pub category: Option<String>,
    /// Usual instructor.
    pub instructor_id: Option<UserId>,
}

/// A change to a class; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New duration.
    pub duration_minutes: Option<DurationMinutes>,
    /// New capacity (applies to sessions created afterwards).
    pub max_capacity: Option<Capacity>,
    /// New category.
    pub category: Option<String>,
    /// New instructor.
    pub instructor_id: Option<UserId>,
    /// Re-activate or deactivate.
    pub active: Option<bool>,
}

/// Status of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Will take place.
    Scheduled,
    /// Called off: not bookable, not checkable-in.
    Cancelled,
}

impl SessionStatus {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Cancelled => "cancelled",
        }
    }
    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(Self::Scheduled),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// One occurrence of a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Identifier.
    pub id: SessionId,
    /// Owning gym.
    pub gym_id: GymId,
    /// The class it is of.
    pub class_id: ClassId,
    /// Start, UTC.
    pub start_time: OffsetDateTime,
    /// End, UTC.
    pub end_time: OffsetDateTime,
    /// Scheduled or cancelled.
    pub status: SessionStatus,
    /// Who runs it.
    pub trainer_id: Option<UserId>,
    /// Where.
    pub room: Option<String>,
    /// Places, copied from the class when created.
    pub capacity: i32,
    /// Places taken (registered or attended bookings).
    pub registered_count: i32,
}

/// What is asked to create a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The class.
    pub class_id: ClassId,
    /// Start.
    pub start_time: Timestamp,
    /// End; start + the class's duration when not given.
    pub end_time: Option<Timestamp>,
    /// Who runs it.
    pub trainer_id: Option<UserId>,
    /// Where.
    pub room: Option<String>,
}

/// A session ready to be stored: every derived field settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDraft {
    /// The class.
    pub class_id: ClassId,
    /// Start.
    pub start_time: Timestamp,
    /// End, after start.
    pub end_time: Timestamp,
    /// Who runs it.
    pub trainer_id: Option<UserId>,
    /// Where.
    pub room: Option<String>,
    /// Places: the class's `max_capacity` now.
    pub capacity: i32,
    /// The series that made it, if one did.
    pub recurrence: Option<crate::values::RecurrenceId>,
}

/// Status of a member's participation in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipationStatus {
    /// Holds a place.
    Registered,
    /// Checked in.
    Attended,
    /// Gave the place back.
    Cancelled,
    /// Held a place and did not come.
    NoShow,
    /// Queued for a place of a full session.
    Waitlisted,
    /// Gave the place back after the gym's cancel cut-off: the credit stays with the gym.
    LateCancelled,
}

impl ParticipationStatus {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Attended => "attended",
            Self::Cancelled => "cancelled",
            Self::NoShow => "no_show",
            Self::Waitlisted => "waitlisted",
            Self::LateCancelled => "late_cancelled",
        }
    }
    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registered" => Some(Self::Registered),
            "attended" => Some(Self::Attended),
            "cancelled" => Some(Self::Cancelled),
            "no_show" => Some(Self::NoShow),
            "waitlisted" => Some(Self::Waitlisted),
            "late_cancelled" => Some(Self::LateCancelled),
            _ => None,
        }
    }
}

/// A member's booking of, or attendance at, a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participation {
    /// Identifier.
    pub id: ParticipationId,
    /// The session.
    pub session_id: SessionId,
    /// The member.
    pub member_id: UserId,
    /// The gym.
    pub gym_id: GymId,
    /// Current status.
    pub status: ParticipationStatus,
    /// When the member checked in.
    pub attendance_time: Option<OffsetDateTime>,
    /// When the row was created.
    pub created_at: OffsetDateTime,
    /// The pass its booking used, when the gym required one.
    pub pass_id: Option<i64>,
}

/// A member's attendance of a session, to be written ([`ScheduleRepository::mark_attended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attendance {
    /// The gym.
    pub gym: GymId,
    /// The session.
    pub session: SessionId,
    /// The member.
    pub member: UserId,
    /// When they were checked in.
    pub at: OffsetDateTime,
    /// The member held a `registered` place when the check-in was decided (and took
    /// no place at the door): the mark holds only while it still does.
    pub registered: bool,
    /// The pass a walk-in's place is taken with (a gym that requires passes).
    pub pass: Option<i64>,
}

impl ParticipationStatus {
    /// Whether a participation in this status holds one of the session's places
    /// (`registered_count` counts exactly these).
    pub fn holds_place(self) -> bool {
        matches!(self, Self::Registered | Self::Attended)
    }
}

impl Session {
    /// Whether a member may book a place now: scheduled and not yet started.
    pub fn open_for_booking(&self, now: OffsetDateTime) -> bool {
        self.status == SessionStatus::Scheduled && self.start_time > now
    }
}

/// A gym setting within its range, or the validation error naming both.
fn setting(name: &str, value: i32, range: std::ops::RangeInclusive<i32>) -> Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    let (low, high) = range.into_inner();
    let (field, note) = name.split_once(' ').unwrap_or((name, ""));
    let note = if note.is_empty() { String::new() } else { format!(" {note}") };
    Err(DomainError::validation(format!("{field} must be between {low} and {high}{note}")))
}

/// When members may book a session, relative to its start: a gym's setting
/// (`booking_opens_hours`, `booking_closes_minutes`). The default books any time
/// until the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookingWindow {
    opens_hours: Option<i32>,
    closes_minutes: i32,
}

impl BookingWindow {
    /// The longest a window may open ahead: a year.
    pub const OPENS_HOURS_MAX: i32 = 8_760;
    /// The longest before the start a window may close: a week.
    pub const CLOSES_MINUTES_MAX: i32 = 10_080;

    /// A window opening `opens_hours` before the start (`None`: as soon as the
    /// session is scheduled) and closing `closes_minutes` before it.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a bound out of range, or a window that would
    /// close before it opens.
    pub fn new(opens_hours: Option<i32>, closes_minutes: i32) -> Result<Self> {
        if let Some(h) = opens_hours {
            setting("booking_opens_hours (or null: no limit)", h, 1..=Self::OPENS_HOURS_MAX)?;
        }
        setting("booking_closes_minutes", closes_minutes, 0..=Self::CLOSES_MINUTES_MAX)?;
        if opens_hours.is_some_and(|h| i64::from(h) * 60 <= i64::from(closes_minutes)) {
            return Err(DomainError::validation(
                "booking_opens_hours must open the window before booking_closes_minutes closes it",
            ));
        }
        Ok(Self { opens_hours, closes_minutes })
    }

    /// Hours before the start at which booking opens; `None`: no limit.
    pub fn opens_hours(self) -> Option<i32> {
        self.opens_hours
    }

    /// Minutes before the start at which booking closes.
    pub fn closes_minutes(self) -> i32 {
        self.closes_minutes
    }

    /// Why booking a session starting at `start` is refused at `now` by the window:
    /// [`DomainError::BookingClosed`] after it closed, [`DomainError::BookingNotOpen`]
    /// before it opens.
    pub fn refusal(self, start: OffsetDateTime, now: OffsetDateTime) -> Option<DomainError> {
        let closed_at = start - Duration::minutes(i64::from(self.closes_minutes));
        if now >= closed_at {
            return Some(DomainError::BookingClosed { closed_at });
        }
        let opens_at = self.opens_hours.map(|h| start - Duration::hours(i64::from(h)));
        match opens_at {
            Some(opens_at) if now < opens_at => Some(DomainError::BookingNotOpen { opens_at }),
            _ => None,
        }
    }
}

/// A gym's waitlist settings: how close to the start a freed place still goes to
/// the head of the queue (`waitlist_cutoff_minutes`), and how many queues a member
/// may stand in at once (`max_waitlists_per_member`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitlistRules {
    cutoff_minutes: i32,
    max_per_member: i32,
}

impl Default for WaitlistRules {
    fn default() -> Self {
        Self { cutoff_minutes: 0, max_per_member: 5 }
    }
}

impl WaitlistRules {
    /// The longest cut-off: a week.
    pub const CUTOFF_MINUTES_MAX: i32 = 10_080;
    /// The most queues a gym may let a member stand in.
    pub const MAX_PER_MEMBER_MAX: i32 = 100;

    /// Rules with a cut-off of `cutoff_minutes` and at most `max_per_member` queues.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a value out of range.
    pub fn new(cutoff_minutes: i32, max_per_member: i32) -> Result<Self> {
        setting("waitlist_cutoff_minutes", cutoff_minutes, 0..=Self::CUTOFF_MINUTES_MAX)?;
        setting("max_waitlists_per_member", max_per_member, 0..=Self::MAX_PER_MEMBER_MAX)?;
        Ok(Self { cutoff_minutes, max_per_member })
    }

    /// Minutes before the start from which a freed place is no longer promoted.
    pub fn cutoff_minutes(self) -> i32 {
        self.cutoff_minutes
    }

    /// How many waitlists a member may be on at once.
    pub fn max_per_member(self) -> i32 {
        self.max_per_member
    }

    /// Whether a place freed at `now` goes to the head of the queue of a session
    /// starting at `start`: until the cut-off before the start.
    pub fn promotes(self, start: OffsetDateTime, now: OffsetDateTime) -> bool {
        now < start - Duration::minutes(i64::from(self.cutoff_minutes))
    }
}

/// A gym's rules for bookings, read before a booking's transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookingRules {
    /// When members may book.
    pub window: BookingWindow,
    /// How its waitlists work.
    pub waitlist: WaitlistRules,
    /// Whether bookings use passes, and when a cancellation is late.
    pub credits: CreditRules,
}

/// What a booking asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookingRequest {
    /// Join the waitlist if the session is full (ignored when it has room).
    pub waitlist: bool,
    /// Decide only: answer what the booking would do and change nothing.
    pub dry_run: bool,
}

/// A booking's outcome: the participation, and its place in the queue when waitlisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// The participation, `registered` or `waitlisted`.
    pub participation: Participation,
    /// 1 for the head of the queue; `None` when registered.
    pub waitlist_position: Option<i64>,
}

/// Why a booking is refused, in the contract's order: the session is not open
/// (cancelled or started), the gym's booking window is closed or not yet open, the
/// member holds a place already, no place is free. `None` when the place may be
/// taken. (The session's existence is the caller's.)
pub fn refusal(
    session: &Session,
    held: Option<ParticipationStatus>,
    window: BookingWindow,
    now: OffsetDateTime,
) -> Option<DomainError> {
    if !session.open_for_booking(now) {
        Some(DomainError::SessionNotOpen)
    } else if let Some(refused) = window.refusal(session.start_time, now) {
        Some(refused)
    } else if held.is_some_and(ParticipationStatus::holds_place) {
        Some(DomainError::AlreadyRegistered)
    } else if session.registered_count >= session.capacity {
        Some(DomainError::SessionFull)
    } else {
        None
    }
}

/// Whether an error is one of a booking's own refusals (the ones [`refusal`], the
/// waitlist and the passes give), which a dry run answers instead of failing; not an
/// unknown session, a caller who is no member, or the database.
pub fn is_booking_refusal(e: &DomainError) -> bool {
    use DomainError as D;
    matches!(
        e,
        D::SessionNotOpen
            | D::BookingClosed { .. }
            | D::BookingNotOpen { .. }
            | D::AlreadyRegistered
            | D::SessionFull
            | D::AlreadyWaitlisted
            | D::WaitlistLimit
            | D::NoValidPass
            | D::WeeklyLimitReached
    )
}

/// What freeing a place did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    /// The participation as the cancellation left it (it still names its booking's pass).
    pub cancelled: Participation,
    /// The member promoted from the waitlist into the place.
    pub promoted: Option<UserId>,
}

/// Who gives a place back, and whether the gym's cancel cut-off applies (a member's
/// own cancellation; not a removal from the gym).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leave {
    /// The cancel cut-off applies: a late cancel forfeits the credit.
    pub cut_off: bool,
    /// Who or what causes it, for the ledger.
    pub cause: Cause,
    /// The user who causes it.
    pub actor: UserId,
    /// When.
    pub at: OffsetDateTime,
}

/// Frees a member's `registered` place in a session, inside `tx` and with the
/// session locked ([`ScheduleRepository::lock_session`]), and settles its booking's
/// credit.
///
/// - The participation becomes `cancelled`, or `late_cancelled` from the gym's
///   cancel cut-off on when it applies ([`CreditRules::is_late`]): a late cancel's
///   credit is forfeited, any other is refunded.
/// - The place goes to the head of the session's waitlist unless the session is
///   within the gym's waitlist cut-off (then it stays free for anyone) or walk-ins
///   keep it over capacity (then no place is free). In a gym that requires passes the
///   promotion takes the promoted member's credit, and a head without a usable pass
///   leaves the queue (`cancelled`, named by a `waitlist_skipped` fact) for the next.
///
/// `session` is the row as locked. The promotion's fact is the caller's.
///
/// Locks: the promoted member's own lock is not taken (lock order 2 comes before
/// the session's 3): what else may change their participation meanwhile — leaving
/// the queue, a check-in at the door — takes this session's lock or marks only the
/// status it decided on ([`ScheduleRepository::mark_attended`]). The passes of the
/// queue (its first 200 heads; the next 200 by the next statement in the rare queue
/// whose 200 heads all lack a pass) and of the booking given back are locked by one
/// statement, in ascending order (order 4).
///
/// # Errors
/// Storage failures.
pub async fn free_place(
    repo: &dyn ScheduleRepository,
    credits: &Credits,
    tx: &mut Tx,
    session: &Session,
    member: UserId,
    rules: &BookingRules,
    leave: Leave,
) -> Result<Freed> {
    let (gym, id, now) = (session.gym_id, session.id, leave.at);
    let late = |used_pass| leave.cut_off && rules.credits.is_late(session.start_time, now, used_pass);
    let status = if late(false) { ParticipationStatus::LateCancelled } else { ParticipationStatus::Cancelled };
    let mut cancelled = repo.set_participation(tx, gym, id, member, status, None, now).await?;
    let forfeit = late(cancelled.pass_id.is_some());
    if forfeit && cancelled.status == ParticipationStatus::Cancelled {
        // A gym without a cut-off: late only because the booking used a pass.
        cancelled = repo.set_participation(tx, gym, id, member, ParticipationStatus::LateCancelled, None, now).await?;
    }
    let settled: Vec<(GymId, i64)> = cancelled.pass_id.map(|p| (gym, p)).into_iter().collect();
    // Walk-ins at the door may have taken the session past capacity: a place is free
    // for the queue only when the count falls below it.
    let room = session.registered_count - 1 < session.capacity;
    let mut promoted = None;
    if room && rules.waitlist.promotes(session.start_time, now) {
        if rules.credits.requires_pass() {
            promoted = promote_with_pass(repo, credits, tx, session, rules, &settled, now).await?;
        } else if let Some(next) = repo.waitlist_head(tx, gym, id).await? {
            repo.set_booking(tx, gym, id, next, None, now).await?;
            promoted = Some(next);
        }
    }
    if promoted.is_none() {
        repo.move_count(tx, gym, id, -1).await?;
    }
    let kind = if forfeit { EntryKind::Forfeit } else { EntryKind::Refund };
    let given_back: Vec<(GymId, i64, SessionId, UserId)> =
        cancelled.pass_id.map(|pass| (gym, pass, id, member)).into_iter().collect();
    credits.settle(tx, &given_back, kind, leave.cause, Some(leave.actor), now).await?;
    Ok(Freed { cancelled, promoted })
}

/// Heads of a waitlist whose passes one statement reads.
const QUEUE_READ: usize = 200;

/// Promotes the first member of the session's queue who holds a usable pass, taking
/// its credit; the ones before leave the queue. The queue's passes are locked with
/// `also` (the pass of the booking given back) by one statement.
async fn promote_with_pass(
    repo: &dyn ScheduleRepository,
    credits: &Credits,
    tx: &mut Tx,
    session: &Session,
    rules: &BookingRules,
    also: &[(GymId, i64)],
    now: OffsetDateTime,
) -> Result<Option<UserId>> {
    let (gym, id) = (session.gym_id, session.id);
    let queue = repo.waitlist_queue(tx, gym, id).await?;
    let mut skipped = Vec::new();
    let mut promoted = None;
    // A queue longer than a statement's share of parameters is read a part at a
    // time: the first part (with the pass given back) holds the head in all but the
    // rarest queues.
    for (part, heads) in queue.chunks(QUEUE_READ).enumerate() {
        let asks =
            heads.iter().map(|m| rules.credits.ask(gym, *m, id, session.start_time)).collect::<Result<Vec<_>>>()?;
        let read = credits.read(tx, &asks, if part == 0 { also } else { &[] }).await?;
        for (i, next) in heads.iter().copied().enumerate() {
            match crate::credits::choose(read.iter().filter(|u| u.ask == i), session.start_time) {
                Ok(pass) => {
                    repo.set_booking(tx, gym, id, next, Some(pass.id), now).await?;
                    credits.take(tx, &[(pass.clone(), id, None)], Cause::Job, now).await?;
                    promoted = Some(next);
                    break;
                }
                Err(DomainError::NoValidPass | DomainError::WeeklyLimitReached) => {
                    repo.set_participation(tx, gym, id, next, ParticipationStatus::Cancelled, None, now).await?;
                    skipped.push(next);
                }
                Err(e) => return Err(e),
            }
        }
        if promoted.is_some() {
            break;
        }
    }
    if !skipped.is_empty() {
        tx.record(DomainEvent::WaitlistSkipped { gym, session: id, members: skipped });
    }
    Ok(promoted)
}

/// Storage of classes, sessions and bookings. Every method is scoped to a gym:
/// another gym's rows are invisible, exactly as missing ones. Writes take the
/// transaction of the use case ([`crate::tx`]); reads that need no lock do not.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ScheduleRepository: Send + Sync {
    /// Active classes of the gym, by id.
    ///
    /// # Errors
    /// Storage failures.
    async fn active_classes(&self, gym: GymId, page: Page) -> Result<Vec<Class>>;
    /// One class of the gym, active or not.
    ///
    /// # Errors
    /// Storage failures.
    async fn class(&self, gym: GymId, id: ClassId) -> Result<Option<Class>>;
    /// Stores a class.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] when `instructor_id` is not a member of the gym
    /// (checked by the insert itself); storage failures.
    async fn create_class(&self, tx: &mut Tx, gym: GymId, class: &NewClass, now: OffsetDateTime) -> Result<Class>;
    /// Applies a patch; `Ok(None)` when the class is not in the gym.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] when a new `instructor_id` is not a member of
    /// the gym; storage failures.
    async fn update_class(&self, tx: &mut Tx, gym: GymId, id: ClassId, patch: &ClassPatch) -> Result<Option<Class>>;
    /// Sessions of the gym starting in `[from, through]` (both inclusive), by start then id.
    ///
    /// # Errors
    /// Storage failures.
    async fn sessions_between(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        page: Page,
    ) -> Result<Vec<Session>>;
    /// One session of the gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn session(&self, gym: GymId, id: SessionId) -> Result<Option<Session>>;
    /// Stores a session.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] when `trainer_id` is not a member of the gym
    /// (checked by the insert itself); storage failures.
    async fn create_session(
        &self,
        tx: &mut Tx,
        gym: GymId,
        draft: &SessionDraft,
        now: OffsetDateTime,
    ) -> Result<Session>;
    /// Marks a session cancelled; `Ok(None)` when absent.
    ///
    /// # Errors
    /// Storage failures.
    async fn cancel_session(&self, tx: &mut Tx, gym: GymId, id: SessionId) -> Result<Option<Session>>;
    /// Cancels every participation of the session in `status` (`registered` or
    /// `waitlisted`), called with the session locked, and answers their members. The
    /// count is the caller's ([`ScheduleRepository::move_count`]).
    ///
    /// # Errors
    /// Storage failures.
    async fn cancel_bookings(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        status: ParticipationStatus,
    ) -> Result<Vec<UserId>>;
    /// Locks the session's row for the rest of the transaction (lock order 3: after
    /// the member's membership, before participations) and reads it with `member`'s
    /// participation in it; `Ok(None)` when the session is not in the gym. While the
    /// lock is held, its `registered_count` and its participations change only
    /// through this transaction.
    ///
    /// # Errors
    /// Storage failures.
    async fn lock_session(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
    ) -> Result<Option<(Session, Option<ParticipationStatus>)>>;
    /// Moves the session's `registered_count` by `delta`, called with the session
    /// locked ([`ScheduleRepository::lock_session`]). This and
    /// [`ScheduleRepository::take_places`] are the only writers of the count, through
    /// one statement of the adapter.
    ///
    /// # Errors
    /// Storage failures.
    async fn move_count(&self, tx: &mut Tx, gym: GymId, session: SessionId, delta: i32) -> Result<()>;
    /// Takes places of *scheduled* sessions at the door: locks their rows in the
    /// order of `places` (sorted by the caller: lock order 3) and moves each one's
    /// count up by its number, in one round trip where the adapter can; answers the
    /// sessions whose places were taken (a cancelled session, or one not in its gym,
    /// is left as it is). Capacity is not a bound here: the front desk admits
    /// whoever is at the door.
    ///
    /// # Errors
    /// Storage failures.
    async fn take_places(&self, tx: &mut Tx, places: &[(GymId, SessionId, i32)]) -> Result<Vec<SessionId>>;
    /// Makes each member's participation in the session `attended` at its time,
    /// creating it when absent, in one statement per kind where the adapter can. The
    /// caller decided each under the member's lock, on the status it read; a row is
    /// marked only while that status holds, since two changes lock no member: a
    /// session's cancellation may have cancelled a `registered` place, and a
    /// promotion from the waitlist may have given a walk-in a place. Answers the rows
    /// left unmarked.
    ///
    /// # Errors
    /// Storage failures.
    async fn mark_attended(&self, tx: &mut Tx, rows: &[Attendance]) -> Result<Vec<Attendance>>;
    /// Sets the member's participation in the session to `status` (with the given
    /// attendance time), creating it when absent, and answers it. The caller decided
    /// that the change is allowed, under the session's lock or the member's.
    ///
    /// # Errors
    /// Storage failures.
    #[allow(clippy::too_many_arguments)]
    async fn set_participation(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
        status: ParticipationStatus,
        attendance_time: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Participation>;
    /// Makes the member's participation in the session a `registered` booking, created
    /// when absent, naming the pass it uses (`None`: none, the gym requires no pass);
    /// a booking with a pass counts one more credit number. Answers it.
    ///
    /// # Errors
    /// Storage failures.
    async fn set_booking(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
        pass: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<Participation>;
    /// The sessions, starting after `after`, where the member holds a `registered`
    /// place or waits on the waitlist, by id (the order their locks are taken in).
    ///
    /// # Errors
    /// Storage failures.
    async fn places_after(
        &self,
        tx: &mut Tx,
        gym: GymId,
        member: UserId,
        after: OffsetDateTime,
    ) -> Result<Vec<SessionId>>;
    /// The gym's IANA time zone; `Ok(None)` when the gym does not exist.
    ///
    /// # Errors
    /// Storage failures.
    async fn time_zone(&self, gym: GymId) -> Result<Option<String>>;
    /// The gym's booking window and waitlist rules; `Ok(None)` when the gym does not
    /// exist.
    ///
    /// # Errors
    /// Storage failures.
    async fn booking_rules(&self, gym: GymId) -> Result<Option<BookingRules>>;
    /// Queues the member at the tail of the session's waitlist (called with the
    /// session locked, so the queue's order is the order of the joins): their
    /// participation becomes `waitlisted`, created when absent. Answers it and its
    /// position (1 for the head).
    ///
    /// # Errors
    /// Storage failures.
    async fn join_waitlist(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
        now: OffsetDateTime,
    ) -> Result<(Participation, i64)>;
    /// The head of the session's waitlist (called with the session locked).
    ///
    /// # Errors
    /// Storage failures.
    async fn waitlist_head(&self, tx: &mut Tx, gym: GymId, session: SessionId) -> Result<Option<UserId>>;
    /// The session's whole waitlist, head first (called with the session locked).
    ///
    /// # Errors
    /// Storage failures.
    async fn waitlist_queue(&self, tx: &mut Tx, gym: GymId, session: SessionId) -> Result<Vec<UserId>>;
    /// How many waitlists of the gym's sessions starting after `after` the member is
    /// on (read under the member's lock).
    ///
    /// # Errors
    /// Storage failures.
    async fn waitlists_of(&self, tx: &mut Tx, gym: GymId, member: UserId, after: OffsetDateTime) -> Result<i64>;
    /// The session's waitlist, head first.
    ///
    /// # Errors
    /// Storage failures.
    async fn waitlist(&self, gym: GymId, session: SessionId, page: Page) -> Result<Vec<Participation>>;
    /// Every participation of a session, cancelled ones included, by id.
    ///
    /// # Errors
    /// Storage failures.
    async fn participants(&self, gym: GymId, session_id: SessionId, page: Page) -> Result<Vec<Participation>>;
}

/// Use cases of the timetable.
#[derive(Clone)]
pub struct ScheduleService {
    repo: Arc<dyn ScheduleRepository>,
    members: Arc<dyn MemberLock>,
    credits: Credits,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl ScheduleService {
    /// Wires the service to its ports (`members` for the member's lock of a booking,
    /// `credits` for the passes bookings use).
    pub fn new(
        repo: Arc<dyn ScheduleRepository>,
        members: Arc<dyn MemberLock>,
        credits: Credits,
        uow: UnitOfWork,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { repo, members, credits, uow, clock }
    }

    /// Active classes of the actor's gym.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn classes(&self, actor: &Actor, page: Page) -> Result<Vec<Class>> {
        self.repo.active_classes(actor.gym_id, page).await
    }

    /// One class of the actor's gym.
    ///
    /// # Errors
    /// [`DomainError::ClassNotFound`].
    pub async fn class(&self, actor: &Actor, id: ClassId) -> Result<Class> {
        self.repo.class(actor.gym_id, id).await?.ok_or(DomainError::ClassNotFound)
    }

    /// Creates a class (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::Validation`].
    pub async fn create_class(&self, actor: &Actor, class: NewClass) -> Result<Class> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        let class = NewClass {
            name: required_text("name", &class.name, limits::NAME_MAX)?,
            description: optional_text("description", class.description.as_deref(), limits::CLASS_DESCRIPTION_MAX)?,
            category: optional_text("category", class.category.as_deref(), limits::CATEGORY_MAX)?,
            ..class
        };
        let mut tx = self.uow.begin().await?;
        let created = self.repo.create_class(&mut tx, actor.gym_id, &class, self.clock.now()).await?;
        tx.record(DomainEvent::ClassChanged { gym: actor.gym_id, class: created.id });
        self.uow.commit(tx).await?;
        Ok(created)
    }

    /// Changes a class (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::Validation`], [`DomainError::ClassNotFound`].
    pub async fn update_class(&self, actor: &Actor, id: ClassId, patch: ClassPatch) -> Result<Class> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        let patch = ClassPatch {
            name: match patch.name.as_deref() {
                Some(n) => Some(required_text("name", n, limits::NAME_MAX)?),
                None => None,
            },
            description: optional_text("description", patch.description.as_deref(), limits::CLASS_DESCRIPTION_MAX)?,
            category: optional_text("category", patch.category.as_deref(), limits::CATEGORY_MAX)?,
            ..patch
        };
        self.patch_class(actor, id, &patch).await
    }

    /// Soft-deletes a class (admin): it leaves the list, its sessions stay.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::ClassNotFound`].
    pub async fn delete_class(&self, actor: &Actor, id: ClassId) -> Result<()> {
        actor.require(policy::DELETE_CLASS)?;
        self.patch_class(actor, id, &ClassPatch { active: Some(false), ..ClassPatch::default() }).await.map(drop)
    }

    async fn patch_class(&self, actor: &Actor, id: ClassId, patch: &ClassPatch) -> Result<Class> {
        let mut tx = self.uow.begin().await?;
        let class =
            self.repo.update_class(&mut tx, actor.gym_id, id, patch).await?.ok_or(DomainError::ClassNotFound)?;
        tx.record(DomainEvent::ClassChanged { gym: actor.gym_id, class: id });
        self.uow.commit(tx).await?;
        Ok(class)
    }

    /// Sessions starting within the date range, cancelled ones included; the dates
    /// are UTC's or the gym's wall clock's.
    ///
    /// # Errors
    /// Storage failures; [`DomainError::Validation`] for a gym whose stored zone the
    /// tz database does not know.
    pub async fn sessions(&self, actor: &Actor, range: DateRange, dates: DatesIn, page: Page) -> Result<Vec<Session>> {
        let (from, through) = match dates {
            DatesIn::Utc => (range.from(), range.through()),
            DatesIn::Gym => {
                let tz = self.repo.time_zone(actor.gym_id).await?.ok_or(DomainError::NotAMember)?;
                range.in_zone(&tz)?
            }
        };
        self.repo.sessions_between(actor.gym_id, from, through, page).await
    }

    /// One session.
    ///
    /// # Errors
    /// [`DomainError::SessionNotFound`].
    pub async fn session(&self, actor: &Actor, id: SessionId) -> Result<Session> {
        self.repo.session(actor.gym_id, id).await?.ok_or(DomainError::SessionNotFound)
    }

    /// Schedules a session of a class (staff); its capacity is the class's now.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`]; [`DomainError::ClassNotFound`] for a missing or other
    /// gym's class; [`DomainError::Validation`] for an end not after the start.
    pub async fn create_session(&self, actor: &Actor, new: NewSession) -> Result<Session> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        // A deleted (inactive) class is gone for scheduling, as if it never existed.
        let class = self
            .repo
            .class(actor.gym_id, new.class_id)
            .await?
            .filter(|c| c.active)
            .ok_or(DomainError::ClassNotFound)?;
        let end_time = match new.end_time {
            Some(end) => end,
            None => new.start_time.checked_add(Duration::minutes(i64::from(class.duration_minutes)))?,
        };
        if end_time <= new.start_time {
            return Err(DomainError::validation("end_time must be after start_time"));
        }
        let draft = SessionDraft {
            class_id: class.id,
            start_time: new.start_time,
            end_time,
            trainer_id: new.trainer_id,
            room: optional_text("room", new.room.as_deref(), limits::ROOM_MAX)?,
            capacity: class.max_capacity,
            recurrence: None,
        };
        let mut tx = self.uow.begin().await?;
        let session = self.repo.create_session(&mut tx, actor.gym_id, &draft, self.clock.now()).await?;
        tx.record(DomainEvent::SessionScheduled { gym: actor.gym_id, session: session.id });
        self.uow.commit(tx).await?;
        Ok(session)
    }

    /// Cancels a session (staff), and with it every booking and waitlist entry, in
    /// one transaction under the session's lock (order 3): the places are freed,
    /// and the fact names the members whose bookings or entries were cancelled. Attendances
    /// already made stay. Cancelling a cancelled session changes nothing and records
    /// nothing.
    ///
    /// A check-in decided on a booking this cancels is not lost either way: its mark
    /// holds only while the booking is `registered` ([`ScheduleRepository::mark_attended`]).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::SessionNotFound`].
    pub async fn cancel_session(&self, actor: &Actor, id: SessionId) -> Result<Session> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        let gym = actor.gym_id;
        let mut tx = self.uow.begin().await?;
        let (session, _) =
            self.repo.lock_session(&mut tx, gym, id, actor.user_id).await?.ok_or(DomainError::SessionNotFound)?;
        if session.status == SessionStatus::Cancelled {
            return Ok(session);
        }
        // Every credit used for the session goes back, attended places' too: the gym
        // called the class off.
        let used: Vec<(GymId, i64, SessionId, UserId)> =
            self.credits.used_in(&mut tx, gym, id).await?.into_iter().map(|(p, m)| (gym, p, id, m)).collect();
        let now = self.clock.now();
        self.credits.settle(&mut tx, &used, EntryKind::Refund, Cause::Staff, Some(actor.user_id), now).await?;
        let mut members = self.repo.cancel_bookings(&mut tx, gym, id, ParticipationStatus::Registered).await?;
        if !members.is_empty() {
            let freed = i32::try_from(members.len()).map_err(DomainError::internal)?;
            self.repo.move_count(&mut tx, gym, id, -freed).await?;
        }
        members.extend(self.repo.cancel_bookings(&mut tx, gym, id, ParticipationStatus::Waitlisted).await?);
        members.sort_unstable();
        let s = self.repo.cancel_session(&mut tx, gym, id).await?.ok_or(DomainError::SessionNotFound)?;
        tx.record(DomainEvent::SessionCancelled { gym, session: id, members });
        self.uow.commit(tx).await?;
        Ok(s)
    }

    /// Books the actor a place in a session, in one transaction under the member's
    /// lock and the session's (lock order 2 then 3), and in a gym that requires
    /// passes the passes' (order 4), so a removal of the member, a second booking, a
    /// cancellation or another use of the same credits cannot interleave.
    ///
    /// The rules, in order: the member still belongs to the gym (`not_a_member`); the
    /// session exists in the gym (`session_not_found`); it is scheduled and has not
    /// started (`session_not_open`); the gym's booking window is open
    /// (`session_not_open` after it closed, `booking_not_open` before it opens); the
    /// member holds no place yet (`already_registered`); a place is free
    /// (`session_full`); in a gym that requires passes, a usable pass
    /// (`weekly_limit_reached` when only weekly limits stand in the way, else
    /// `no_valid_pass`; see [`crate::credits::choose`]), whose credit the booking
    /// takes. A full session with `waitlist` asked for queues the member instead,
    /// taking nothing: not already queued there (`already_waitlisted`), and on fewer
    /// of the gym's waitlists than it allows (`waitlist_limit`).
    ///
    /// The gym's rules are read before the transaction: a booking racing a change of
    /// the gym's settings is judged by the settings it started under. A dry run
    /// decides the same way, under the same locks, and rolls everything back.
    ///
    /// # Errors
    /// The variants named above.
    pub async fn register(&self, actor: &Actor, session_id: SessionId, ask: BookingRequest) -> Result<Booking> {
        let (gym, member, now) = (actor.gym_id, actor.user_id, self.clock.now());
        let rules = self.repo.booking_rules(gym).await?.ok_or(DomainError::NotAMember)?;
        let mut tx = self.uow.begin().await?;
        self.members.lock_member(&mut tx, gym, member).await?.ok_or(DomainError::NotAMember)?;
        let (session, held) =
            self.repo.lock_session(&mut tx, gym, session_id, member).await?.ok_or(DomainError::SessionNotFound)?;
        let booking = match refusal(&session, held, rules.window, now) {
            None => {
                let pass = match rules.credits.requires_pass() {
                    true => Some(
                        self.credits
                            .pass_for(&mut tx, &rules.credits, (gym, session_id, session.start_time), member)
                            .await?,
                    ),
                    false => None,
                };
                self.repo.move_count(&mut tx, gym, session_id, 1).await?;
                let p =
                    self.repo.set_booking(&mut tx, gym, session_id, member, pass.as_ref().map(|p| p.id), now).await?;
                tx.record(DomainEvent::Booked { gym, session: session_id, member });
                if let Some(pass) = pass {
                    self.credits.take(&mut tx, &[(pass, session_id, Some(member))], Cause::Member, now).await?;
                }
                Booking { participation: p, waitlist_position: None }
            }
            Some(DomainError::SessionFull) if ask.waitlist => {
                if held == Some(ParticipationStatus::Waitlisted) {
                    return Err(DomainError::AlreadyWaitlisted);
                }
                if self.repo.waitlists_of(&mut tx, gym, member, now).await?
                    >= i64::from(rules.waitlist.max_per_member())
                {
                    return Err(DomainError::WaitlistLimit);
                }
                let (p, position) = self.repo.join_waitlist(&mut tx, gym, session_id, member, now).await?;
                tx.record(DomainEvent::WaitlistJoined { gym, session: session_id, member });
                Booking { participation: p, waitlist_position: Some(position) }
            }
            Some(refused) => return Err(refused),
        };
        if ask.dry_run {
            // Dropped: rolled back, nothing was written and no fact recorded.
            drop(tx);
        } else {
            self.uow.commit(tx).await?;
        }
        Ok(booking)
    }

    /// Gives the actor's place back, or takes them off the session's waitlist, in one
    /// transaction under the member's lock and the session's. A freed place goes to
    /// the head of the waitlist ([`free_place`]). Before the gym's cancel cut-off the
    /// booking's credit goes back to its pass; from it on the cancel is late: the
    /// participation becomes `late_cancelled` and the gym keeps the credit (see
    /// [`CreditRules::is_late`]).
    ///
    /// # Errors
    /// [`DomainError::NotAMember`] when the actor left the gym meanwhile;
    /// [`DomainError::SessionNotFound`] for an unknown session;
    /// [`DomainError::NotRegistered`] when the actor holds no registered place in it
    /// and is not on its waitlist.
    pub async fn unregister(&self, actor: &Actor, session_id: SessionId) -> Result<()> {
        let (gym, member, now) = (actor.gym_id, actor.user_id, self.clock.now());
        let rules = self.repo.booking_rules(gym).await?.ok_or(DomainError::NotAMember)?;
        let mut tx = self.uow.begin().await?;
        self.members.lock_member(&mut tx, gym, member).await?.ok_or(DomainError::NotAMember)?;
        match self.repo.lock_session(&mut tx, gym, session_id, member).await? {
            None => return Err(DomainError::SessionNotFound),
            Some((session, Some(ParticipationStatus::Registered))) => {
                let leave = Leave { cut_off: true, cause: Cause::Member, actor: member, at: now };
                let freed =
                    free_place(self.repo.as_ref(), &self.credits, &mut tx, &session, member, &rules, leave).await?;
                tx.record(DomainEvent::BookingCancelled { gym, session: session_id, member });
                if let Some(next) = freed.promoted {
                    tx.record(DomainEvent::WaitlistPromoted { gym, session: session_id, member: next });
                }
            }
            Some((_, Some(ParticipationStatus::Waitlisted))) => {
                self.repo
                    .set_participation(&mut tx, gym, session_id, member, ParticipationStatus::Cancelled, None, now)
                    .await?;
                tx.record(DomainEvent::WaitlistLeft { gym, session: session_id, member });
            }
            Some(_) => return Err(DomainError::NotRegistered),
        }
        self.uow.commit(tx).await
    }

    /// The session's waitlist, head first, each entry with its place in the queue (1
    /// for the head) (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::SessionNotFound`].
    pub async fn waitlist(
        &self,
        actor: &Actor,
        session_id: SessionId,
        page: Page,
    ) -> Result<Vec<(Participation, i64)>> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        self.session(actor, session_id).await?;
        let skipped = i64::try_from(page.skip).unwrap_or(i64::MAX);
        let queue = self.repo.waitlist(actor.gym_id, session_id, page).await?;
        Ok(queue.into_iter().zip(1_i64..).map(|(p, n)| (p, skipped.saturating_add(n))).collect())
    }

    /// Every participation of a session (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::SessionNotFound`].
    pub async fn participants(&self, actor: &Actor, session_id: SessionId, page: Page) -> Result<Vec<Participation>> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        self.session(actor, session_id).await?;
        self.repo.participants(actor.gym_id, session_id, page).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::*;
    use crate::values::Role;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-10 10:00 UTC);
    const GYM: GymId = GymId(3);

    fn ts(t: OffsetDateTime) -> Timestamp {
        Timestamp::new(t).expect("storable")
    }

    fn member() -> Actor {
        Actor { user_id: UserId(5), gym_id: GYM, role: Role::Member }
    }
    fn staff() -> Actor {
        Actor { user_id: UserId(1), gym_id: GYM, role: Role::Trainer }
    }

    fn session(start: OffsetDateTime, status: SessionStatus) -> Session {
        Session {
            id: SessionId(11),
            gym_id: GYM,
            class_id: ClassId(2),
            start_time: start,
            end_time: start + Duration::hours(1),
            status,
            trainer_id: None,
            room: None,
            capacity: 10,
            registered_count: 0,
        }
    }

    fn class() -> Class {
        Class {
            id: ClassId(2),
            gym_id: GYM,
            name: "Spin".into(),
            description: None,
            duration_minutes: 45,
            max_capacity: 12,
            category: None,
            instructor_id: None,
            active: true,
        }
    }

    fn svc(repo: MockScheduleRepository, gyms: MockMemberLock, uow: UnitOfWork) -> ScheduleService {
        ScheduleService::new(Arc::new(repo), Arc::new(gyms), no_credits(), uow, Arc::new(FixedClock(NOW)))
    }

    /// The member is still a member under the lock.
    fn member_locked() -> MockMemberLock {
        let mut gyms = MockMemberLock::new();
        let m = crate::members::Membership { user_id: UserId(5), gym_id: GYM, role: Role::Member, joined_at: NOW };
        with_locked_member(&mut gyms, GYM, UserId(5), Some(m));
        gyms
    }

    /// Session 11 locked, with the member's participation in it.
    fn locked(s: Option<Session>, held: Option<ParticipationStatus>) -> MockScheduleRepository {
        let mut repo = MockScheduleRepository::new();
        with_locked_session(&mut repo, GYM, SessionId(11), UserId(5), s.map(|s| (s, held)));
        repo.expect_booking_rules().returning(|_| Ok(Some(BookingRules::default())));
        repo
    }

    async fn register(repo: MockScheduleRepository, uow: UnitOfWork) -> Result<Participation> {
        svc(repo, member_locked(), uow)
            .register(&member(), SessionId(11), BookingRequest::default())
            .await
            .map(|b| b.participation)
    }

    #[tokio::test]
    async fn booking_a_cancelled_session_is_session_not_open() {
        let repo = locked(Some(session(NOW + Duration::hours(1), SessionStatus::Cancelled)), None);
        assert_eq!(register(repo, rolling_back()).await, Err(DomainError::SessionNotOpen));
    }

    #[tokio::test]
    async fn booking_a_started_session_is_session_not_open() {
        let repo = locked(Some(session(NOW, SessionStatus::Scheduled)), None);
        assert_eq!(register(repo, rolling_back()).await, Err(DomainError::SessionNotOpen));
    }

    #[tokio::test]
    async fn booking_an_unknown_session_is_session_not_found() {
        assert_eq!(register(locked(None, None), rolling_back()).await, Err(DomainError::SessionNotFound));
    }

    #[tokio::test]
    async fn a_full_session_answers_session_full() {
        let full = Session { registered_count: 10, ..session(NOW + Duration::hours(1), SessionStatus::Scheduled) };
        assert_eq!(register(locked(Some(full), None), rolling_back()).await, Err(DomainError::SessionFull));
    }

    #[test]
    fn a_refusal_names_the_session_then_the_members_place_then_capacity() {
        let open = session(NOW + Duration::hours(1), SessionStatus::Scheduled);
        let started = session(NOW, SessionStatus::Scheduled);
        let cancelled = session(NOW + Duration::hours(1), SessionStatus::Cancelled);
        let full = Session { registered_count: 10, ..open.clone() };
        let held = Some(ParticipationStatus::Registered);
        assert_eq!(refusal(&started, held, BookingWindow::default(), NOW), Some(DomainError::SessionNotOpen));
        assert_eq!(refusal(&cancelled, None, BookingWindow::default(), NOW), Some(DomainError::SessionNotOpen));
        assert_eq!(
            refusal(&full, held, BookingWindow::default(), NOW),
            Some(DomainError::AlreadyRegistered),
            "before capacity"
        );
        assert_eq!(
            refusal(&open, Some(ParticipationStatus::Attended), BookingWindow::default(), NOW),
            Some(DomainError::AlreadyRegistered)
        );
        assert_eq!(refusal(&full, None, BookingWindow::default(), NOW), Some(DomainError::SessionFull));
        assert_eq!(
            refusal(&open, Some(ParticipationStatus::Cancelled), BookingWindow::default(), NOW),
            None,
            "a cancelled booking books again"
        );
        assert_eq!(refusal(&open, None, BookingWindow::default(), NOW), None);
    }

    #[test]
    fn a_booking_window_opens_and_closes_relative_to_the_start() {
        let start = NOW + Duration::hours(48);
        let w = BookingWindow::new(Some(24), 60).expect("valid");
        let opens_at = start - Duration::hours(24);
        let closed_at = start - Duration::minutes(60);
        assert_eq!(w.refusal(start, opens_at - Duration::seconds(1)), Some(DomainError::BookingNotOpen { opens_at }));
        assert_eq!(w.refusal(start, opens_at), None, "open from the first instant");
        assert_eq!(w.refusal(start, closed_at - Duration::seconds(1)), None);
        assert_eq!(w.refusal(start, closed_at), Some(DomainError::BookingClosed { closed_at }), "closed at the bound");
        assert_eq!(BookingWindow::default().refusal(start, NOW), None, "no limit by default");
        assert_eq!(
            BookingWindow::default().refusal(start, start),
            Some(DomainError::BookingClosed { closed_at: start })
        );
    }

    #[test]
    fn a_booking_window_out_of_range_or_empty_is_refused() {
        for (opens, closes) in
            [(Some(0), 0), (Some(8_761), 0), (None, -1), (None, 10_081), (Some(1), 60), (Some(2), 121)]
        {
            assert!(matches!(BookingWindow::new(opens, closes), Err(DomainError::Validation(_))), "{opens:?} {closes}");
        }
        assert!(BookingWindow::new(Some(2), 119).is_ok());
        assert!(BookingWindow::new(None, 10_080).is_ok());
        assert!(BookingWindow::new(Some(8_760), 0).is_ok());
    }

    #[test]
    fn the_booking_window_is_checked_after_the_session_and_before_the_members_place() {
        let open = session(NOW + Duration::hours(30), SessionStatus::Scheduled);
        let full = Session { registered_count: 10, ..open.clone() };
        let cancelled = session(NOW + Duration::hours(30), SessionStatus::Cancelled);
        let not_yet = BookingWindow::new(Some(24), 0).expect("valid");
        let opens_at = open.start_time - Duration::hours(24);
        let closed = BookingWindow::new(None, 31 * 60).expect("valid");
        let closed_at = open.start_time - Duration::minutes(31 * 60);
        let held = Some(ParticipationStatus::Registered);
        assert_eq!(refusal(&cancelled, None, not_yet, NOW), Some(DomainError::SessionNotOpen));
        assert_eq!(refusal(&full, held, not_yet, NOW), Some(DomainError::BookingNotOpen { opens_at }));
        assert_eq!(refusal(&full, held, closed, NOW), Some(DomainError::BookingClosed { closed_at }));
    }

    #[tokio::test]
    async fn booking_before_the_window_opens_is_booking_not_open_and_commits_nothing() {
        let start = NOW + Duration::hours(30);
        let mut repo = MockScheduleRepository::new();
        with_locked_session(
            &mut repo,
            GYM,
            SessionId(11),
            UserId(5),
            Some((session(start, SessionStatus::Scheduled), None)),
        );
        repo.expect_booking_rules().withf(|g| *g == GYM).once().returning(|_| {
            Ok(Some(BookingRules {
                window: BookingWindow::new(Some(24), 0).expect("valid"),
                ..BookingRules::default()
            }))
        });
        assert_eq!(
            register(repo, rolling_back()).await,
            Err(DomainError::BookingNotOpen { opens_at: start - Duration::hours(24) })
        );
    }

    #[tokio::test]
    async fn cancelling_a_session_cancels_its_bookings_frees_their_places_and_names_the_members() {
        let open = Session { registered_count: 3, ..session(NOW + Duration::hours(1), SessionStatus::Scheduled) };
        let mut repo = MockScheduleRepository::new();
        with_locked_session(&mut repo, GYM, SessionId(11), UserId(1), Some((open.clone(), None)));
        repo.expect_cancel_bookings()
            .withf(|_, g, s, st| *g == GYM && *s == SessionId(11) && *st == ParticipationStatus::Registered)
            .once()
            .returning(|_, _, _, _| Ok(vec![UserId(9), UserId(5)]));
        repo.expect_cancel_bookings()
            .withf(|_, _, _, st| *st == ParticipationStatus::Waitlisted)
            .once()
            .returning(|_, _, _, _| Ok(vec![UserId(7)]));
        repo.expect_move_count()
            .withf(|_, _, s, d| *s == SessionId(11) && *d == -2)
            .once()
            .returning(|_, _, _, _| Ok(()));
        let done = Session { status: SessionStatus::Cancelled, registered_count: 1, ..open };
        repo.expect_cancel_session().once().returning(move |_, _, _| Ok(Some(done.clone())));
        let facts = vec![DomainEvent::SessionCancelled {
            gym: GYM,
            session: SessionId(11),
            members: vec![UserId(5), UserId(7), UserId(9)],
        }];
        let got = svc(repo, MockMemberLock::new(), committing(facts)).cancel_session(&staff(), SessionId(11)).await;
        assert_eq!(
            got.map(|s| (s.status, s.registered_count)),
            Ok((SessionStatus::Cancelled, 1)),
            "the attended stays"
        );
    }

    #[tokio::test]
    async fn cancelling_a_cancelled_session_changes_nothing_and_records_nothing() {
        let gone = session(NOW + Duration::hours(1), SessionStatus::Cancelled);
        let mut repo = MockScheduleRepository::new();
        with_locked_session(&mut repo, GYM, SessionId(11), UserId(1), Some((gone.clone(), None)));
        repo.expect_cancel_bookings().never();
        repo.expect_cancel_session().never();
        let got = svc(repo, MockMemberLock::new(), rolling_back()).cancel_session(&staff(), SessionId(11)).await;
        assert_eq!(got, Ok(gone));
        let mut repo = MockScheduleRepository::new();
        with_locked_session(&mut repo, GYM, SessionId(11), UserId(1), None);
        let got = svc(repo, MockMemberLock::new(), rolling_back()).cancel_session(&staff(), SessionId(11)).await;
        assert_eq!(got, Err(DomainError::SessionNotFound));
    }

    #[tokio::test]
    async fn booking_twice_answers_already_registered() {
        let open = session(NOW + Duration::hours(1), SessionStatus::Scheduled);
        let repo = locked(Some(open), Some(ParticipationStatus::Registered));
        assert_eq!(register(repo, rolling_back()).await, Err(DomainError::AlreadyRegistered));
    }

    #[tokio::test]
    async fn a_booking_takes_a_place_and_commits_booked() {
        let mut repo = locked(Some(session(NOW + Duration::hours(1), SessionStatus::Scheduled)), None);
        repo.expect_move_count()
            .withf(|_, g, s, d| *g == GYM && *s == SessionId(11) && *d == 1)
            .once()
            .returning(|_, _, _, _| Ok(()));
        repo.expect_set_booking()
            .withf(|_, g, s, m, pass, now| {
                *g == GYM && *s == SessionId(11) && *m == UserId(5) && pass.is_none() && *now == NOW
            })
            .once()
            .returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)));
        let uow = committing(vec![DomainEvent::Booked { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        let p = register(repo, uow).await.expect("booked");
        assert_eq!(p.status, ParticipationStatus::Registered);
    }

    #[tokio::test]
    async fn cancelling_without_a_place_is_not_registered_and_commits_nothing() {
        let repo = locked(Some(session(NOW + Duration::hours(1), SessionStatus::Scheduled)), None);
        assert_eq!(
            svc(repo, member_locked(), rolling_back()).unregister(&member(), SessionId(11)).await,
            Err(DomainError::NotRegistered)
        );
        assert_eq!(
            svc(locked(None, None), member_locked(), rolling_back()).unregister(&member(), SessionId(11)).await,
            Err(DomainError::SessionNotFound)
        );
    }

    #[tokio::test]
    async fn cancelling_a_place_frees_it_and_commits_booking_cancelled() {
        let held = Some(ParticipationStatus::Registered);
        let mut repo = locked(Some(session(NOW + Duration::hours(1), SessionStatus::Scheduled)), held);
        repo.expect_waitlist_head().once().returning(|_, _, _| Ok(None));
        repo.expect_move_count().withf(|_, _, _, d| *d == -1).once().returning(|_, _, _, _| Ok(()));
        repo.expect_set_participation()
            .withf(|_, _, _, _, st, _, _| *st == ParticipationStatus::Cancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)));
        let uow =
            committing(vec![DomainEvent::BookingCancelled { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        assert_eq!(svc(repo, member_locked(), uow).unregister(&member(), SessionId(11)).await, Ok(()));
    }

    /// Session 11, full (10 of 10), with the member's participation `held`, in a gym
    /// with these waitlist rules.
    fn full(held: Option<ParticipationStatus>, rules: WaitlistRules) -> MockScheduleRepository {
        let full = Session { registered_count: 10, ..session(NOW + Duration::hours(1), SessionStatus::Scheduled) };
        let mut repo = MockScheduleRepository::new();
        with_locked_session(&mut repo, GYM, SessionId(11), UserId(5), Some((full, held)));
        repo.expect_booking_rules()
            .returning(move |_| Ok(Some(BookingRules { waitlist: rules, ..BookingRules::default() })));
        repo
    }

    async fn join(repo: MockScheduleRepository, uow: UnitOfWork) -> Result<Booking> {
        svc(repo, member_locked(), uow)
            .register(&member(), SessionId(11), BookingRequest { waitlist: true, ..BookingRequest::default() })
            .await
    }

    #[tokio::test]
    async fn a_full_session_queues_a_member_who_asks_and_answers_their_position() {
        let mut repo = full(None, WaitlistRules::default());
        repo.expect_waitlists_of()
            .withf(|_, g, m, after| *g == GYM && *m == UserId(5) && *after == NOW)
            .returning(|_, _, _, _| Ok(4));
        repo.expect_join_waitlist()
            .once()
            .returning(|_, g, s, m, now| Ok((stored(g, s, m, ParticipationStatus::Waitlisted, None, now), 3)));
        repo.expect_move_count().never();
        let uow = committing(vec![DomainEvent::WaitlistJoined { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        let got = join(repo, uow).await.expect("queued");
        assert_eq!((got.participation.status, got.waitlist_position), (ParticipationStatus::Waitlisted, Some(3)));
    }

    #[tokio::test]
    async fn a_waitlist_join_is_refused_past_the_limit_twice_in_one_queue_and_without_the_flag() {
        let mut repo = full(None, WaitlistRules::new(0, 2).expect("valid"));
        repo.expect_waitlists_of().returning(|_, _, _, _| Ok(2));
        repo.expect_join_waitlist().never();
        assert_eq!(join(repo, rolling_back()).await, Err(DomainError::WaitlistLimit));
        let mut repo = full(Some(ParticipationStatus::Waitlisted), WaitlistRules::default());
        repo.expect_join_waitlist().never();
        assert_eq!(join(repo, rolling_back()).await, Err(DomainError::AlreadyWaitlisted));
        let repo = full(None, WaitlistRules::default());
        assert_eq!(register(repo, rolling_back()).await, Err(DomainError::SessionFull), "no flag, no queue");
        let repo = full(Some(ParticipationStatus::Registered), WaitlistRules::default());
        assert_eq!(join(repo, rolling_back()).await, Err(DomainError::AlreadyRegistered), "a place already held");
    }

    #[tokio::test]
    async fn the_waitlist_flag_on_a_session_with_room_books_a_place() {
        let mut repo = locked(Some(session(NOW + Duration::hours(1), SessionStatus::Scheduled)), None);
        repo.expect_join_waitlist().never();
        repo.expect_move_count().withf(|_, _, _, d| *d == 1).once().returning(|_, _, _, _| Ok(()));
        repo.expect_set_booking().once().returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)));
        let uow = committing(vec![DomainEvent::Booked { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        let got = join(repo, uow).await.expect("booked");
        assert_eq!((got.participation.status, got.waitlist_position), (ParticipationStatus::Registered, None));
    }

    #[tokio::test]
    async fn a_freed_place_goes_to_the_head_of_the_queue_in_the_same_transaction() {
        let held = Some(ParticipationStatus::Registered);
        let mut repo = locked(Some(session(NOW + Duration::hours(1), SessionStatus::Scheduled)), held);
        repo.expect_waitlist_head().once().returning(|_, _, _| Ok(Some(UserId(8))));
        repo.expect_move_count().never();
        repo.expect_set_participation()
            .withf(|_, _, _, m, st, _, _| *m == UserId(5) && *st == ParticipationStatus::Cancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)));
        repo.expect_set_booking()
            .withf(|_, _, _, m, pass, _| *m == UserId(8) && pass.is_none())
            .once()
            .returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)));
        let uow = committing(vec![
            DomainEvent::BookingCancelled { gym: GYM, session: SessionId(11), member: UserId(5) },
            DomainEvent::WaitlistPromoted { gym: GYM, session: SessionId(11), member: UserId(8) },
        ]);
        assert_eq!(svc(repo, member_locked(), uow).unregister(&member(), SessionId(11)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_place_given_back_in_a_session_walk_ins_took_past_capacity_promotes_nobody() {
        let held = Some(ParticipationStatus::Registered);
        let over = Session { registered_count: 12, ..session(NOW + Duration::hours(1), SessionStatus::Scheduled) };
        let mut repo = locked(Some(over), held);
        repo.expect_waitlist_head().never();
        repo.expect_move_count().withf(|_, _, _, d| *d == -1).once().returning(|_, _, _, _| Ok(()));
        repo.expect_set_participation()
            .withf(|_, _, _, _, st, _, _| *st == ParticipationStatus::Cancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)));
        let uow =
            committing(vec![DomainEvent::BookingCancelled { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        assert_eq!(svc(repo, member_locked(), uow).unregister(&member(), SessionId(11)).await, Ok(()));
    }

    #[tokio::test]
    async fn inside_the_cutoff_a_freed_place_stays_free_and_the_queue_as_it_was() {
        let held = Some(ParticipationStatus::Registered);
        let soon = session(NOW + Duration::minutes(30), SessionStatus::Scheduled);
        let mut repo = MockScheduleRepository::new();
        with_locked_session(&mut repo, GYM, SessionId(11), UserId(5), Some((soon, held)));
        let rules = WaitlistRules::new(30, 5).expect("valid");
        repo.expect_booking_rules()
            .returning(move |_| Ok(Some(BookingRules { waitlist: rules, ..BookingRules::default() })));
        repo.expect_waitlist_head().never();
        repo.expect_move_count().withf(|_, _, _, d| *d == -1).once().returning(|_, _, _, _| Ok(()));
        repo.expect_set_participation()
            .withf(|_, _, _, _, st, _, _| *st == ParticipationStatus::Cancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)));
        let uow =
            committing(vec![DomainEvent::BookingCancelled { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        assert_eq!(svc(repo, member_locked(), uow).unregister(&member(), SessionId(11)).await, Ok(()));
        assert!(rules.promotes(NOW + Duration::minutes(31), NOW) && !rules.promotes(NOW + Duration::minutes(30), NOW));
    }

    #[tokio::test]
    async fn a_waitlist_page_numbers_its_entries_from_the_head_of_the_queue() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_session().returning(|_, _| Ok(Some(session(NOW + Duration::hours(1), SessionStatus::Scheduled))));
        repo.expect_waitlist().withf(|g, s, p| *g == GYM && *s == SessionId(11) && p.skip == 3).returning(|g, s, _| {
            Ok(vec![
                stored(g, s, UserId(8), ParticipationStatus::Waitlisted, None, NOW),
                stored(g, s, UserId(9), ParticipationStatus::Waitlisted, None, NOW),
            ])
        });
        let svc = svc(repo, MockMemberLock::new(), untouched());
        let got = svc.waitlist(&staff(), SessionId(11), Page::new(3, 2).expect("page")).await.expect("listed");
        assert_eq!(got.iter().map(|(p, n)| (p.member_id, *n)).collect::<Vec<_>>(), [(UserId(8), 4), (UserId(9), 5)]);
        let svc2 = ScheduleService::new(
            Arc::new(MockScheduleRepository::new()),
            Arc::new(MockMemberLock::new()),
            no_credits(),
            untouched(),
            Arc::new(FixedClock(NOW)),
        );
        assert_eq!(
            svc2.waitlist(&member(), SessionId(11), Page::new(0, 2).expect("page")).await,
            Err(DomainError::Forbidden)
        );
    }

    #[tokio::test]
    async fn leaving_the_waitlist_cancels_the_entry_and_takes_no_place() {
        let mut repo = locked(
            Some(session(NOW + Duration::hours(1), SessionStatus::Scheduled)),
            Some(ParticipationStatus::Waitlisted),
        );
        repo.expect_move_count().never();
        repo.expect_waitlist_head().never();
        repo.expect_set_participation()
            .withf(|_, _, _, _, st, _, _| *st == ParticipationStatus::Cancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)));
        let uow = committing(vec![DomainEvent::WaitlistLeft { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        assert_eq!(svc(repo, member_locked(), uow).unregister(&member(), SessionId(11)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_member_removed_before_the_place_was_taken_is_not_a_member() {
        let mut gyms = MockMemberLock::new();
        with_locked_member(&mut gyms, GYM, UserId(5), None);
        let mut repo = MockScheduleRepository::new();
        repo.expect_booking_rules().returning(|_| Ok(Some(BookingRules::default())));
        let got = svc(repo, gyms, rolling_back()).register(&member(), SessionId(11), BookingRequest::default()).await;
        assert_eq!(got, Err(DomainError::NotAMember));
    }

    #[tokio::test]
    async fn members_cannot_create_classes() {
        let new = NewClass {
            name: "Yoga".into(),
            description: None,
            duration_minutes: DurationMinutes::new(60).expect("in range"),
            max_capacity: Capacity::new(10).expect("in range"),
            category: None,
            instructor_id: None,
        };
        assert_eq!(
            svc(MockScheduleRepository::new(), MockMemberLock::new(), untouched()).create_class(&member(), new).await,
            Err(DomainError::Forbidden)
        );
    }

    #[tokio::test]
    async fn a_session_without_end_lasts_its_class_duration_and_takes_its_capacity() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_class().returning(|_, _| Ok(Some(class())));
        repo.expect_create_session()
            .withf(|_, _, d, _| d.end_time.get() == NOW + Duration::minutes(45) && d.capacity == 12)
            .once()
            .returning(|_, g, d, _| {
                Ok(Session {
                    id: SessionId(1),
                    gym_id: g,
                    class_id: d.class_id,
                    start_time: d.start_time.get(),
                    end_time: d.end_time.get(),
                    status: SessionStatus::Scheduled,
                    trainer_id: None,
                    room: None,
                    capacity: d.capacity,
                    registered_count: 0,
                })
            });
        let new =
            NewSession { class_id: ClassId(2), start_time: ts(NOW), end_time: None, trainer_id: None, room: None };
        let uow = committing(vec![DomainEvent::SessionScheduled { gym: GYM, session: SessionId(1) }]);
        let s = svc(repo, MockMemberLock::new(), uow).create_session(&staff(), new).await.expect("created");
        assert_eq!(s.end_time, NOW + Duration::minutes(45));
    }

    #[tokio::test]
    async fn a_session_of_a_deleted_class_is_class_not_found() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_class().returning(|_, _| Ok(Some(Class { active: false, ..class() })));
        let new =
            NewSession { class_id: ClassId(2), start_time: ts(NOW), end_time: None, trainer_id: None, room: None };
        let got = svc(repo, MockMemberLock::new(), untouched()).create_session(&staff(), new).await;
        assert_eq!(got, Err(DomainError::ClassNotFound));
    }

    #[tokio::test]
    async fn a_session_of_an_unknown_class_is_class_not_found() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_class().returning(|_, _| Ok(None));
        let new =
            NewSession { class_id: ClassId(99), start_time: ts(NOW), end_time: None, trainer_id: None, room: None };
        let got = svc(repo, MockMemberLock::new(), untouched()).create_session(&staff(), new).await;
        assert_eq!(got, Err(DomainError::ClassNotFound));
    }

    #[tokio::test]
    async fn creating_a_class_commits_class_changed() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_create_class().once().returning(|_, g, c, _| {
            Ok(Class {
                id: ClassId(1),
                gym_id: g,
                name: c.name.clone(),
                description: None,
                duration_minutes: c.duration_minutes.get(),
                max_capacity: c.max_capacity.get(),
                category: None,
                instructor_id: None,
                active: true,
            })
        });
        let uow = committing(vec![DomainEvent::ClassChanged { gym: GYM, class: ClassId(1) }]);
        let new = NewClass {
            name: " Yoga ".into(),
            description: None,
            duration_minutes: DurationMinutes::new(60).expect("in range"),
            max_capacity: Capacity::new(10).expect("in range"),
            category: None,
            instructor_id: None,
        };
        let c = svc(repo, MockMemberLock::new(), uow).create_class(&staff(), new).await.expect("created");
        assert_eq!(c.name, "Yoga");
    }
    // Bookings in a gym that requires passes.

    fn pass_of(id: i64, member: UserId, left: Option<i32>, expires: OffsetDateTime) -> crate::passes::Pass {
        crate::passes::Pass {
            id,
            gym_id: GYM,
            member_id: member,
            plan_id: 1,
            kind: if left.is_some() { crate::plans::PlanKind::Pack } else { crate::plans::PlanKind::Unlimited },
            credits_total: left,
            credits_left: left,
            starts_at: NOW - Duration::days(1),
            expires_at: expires,
            cancelled_at: None,
            frozen: None,
            created_at: NOW - Duration::days(1),
            weekly_limit: None,
            categories: None,
        }
    }

    fn usable(ask: usize, pass: crate::passes::Pass) -> crate::passes::Usable {
        crate::passes::Usable { ask, pass, week_uses: 0, category: None }
    }

    fn pass_rules(cutoff: i32) -> BookingRules {
        BookingRules { credits: CreditRules::new(true, cutoff, "UTC").expect("valid"), ..BookingRules::default() }
    }

    /// Session 11 locked with the member's participation, in a gym requiring passes.
    fn locked_with_passes(s: Session, held: Option<ParticipationStatus>, cutoff: i32) -> MockScheduleRepository {
        let mut repo = MockScheduleRepository::new();
        with_locked_session(&mut repo, GYM, SessionId(11), UserId(5), Some((s, held)));
        repo.expect_booking_rules().returning(move |_| Ok(Some(pass_rules(cutoff))));
        repo
    }

    fn svc_with(repo: MockScheduleRepository, passes: MockPassRepository, uow: UnitOfWork) -> ScheduleService {
        let credits = Credits::new(Arc::new(passes));
        ScheduleService::new(Arc::new(repo), Arc::new(member_locked()), credits, uow, Arc::new(FixedClock(NOW)))
    }

    fn entry_of(kind: EntryKind, credits: i32) -> impl Fn(&crate::passes::BookingEntry) -> bool {
        move |r| r.entry.kind == kind && r.entry.credits == credits
    }

    #[tokio::test]
    async fn a_booking_in_a_gym_that_requires_passes_takes_the_soonest_expiring_packs_credit() {
        let mut repo = locked_with_passes(session(NOW + Duration::days(1), SessionStatus::Scheduled), None, 0);
        repo.expect_move_count().withf(|_, _, _, d| *d == 1).once().returning(|_, _, _, _| Ok(()));
        repo.expect_set_booking()
            .withf(|_, _, _, m, pass, _| *m == UserId(5) && *pass == Some(2))
            .once()
            .returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)));
        let mut passes = MockPassRepository::new();
        passes
            .expect_lock_usable()
            .withf(|_, asks, also| {
                asks.len() == 1
                    && asks[0].member == UserId(5)
                    && asks[0].start == NOW + Duration::days(1)
                    && also.is_empty()
            })
            .once()
            .returning(|_, _, _| {
                Ok(vec![
                    usable(0, pass_of(1, UserId(5), Some(4), NOW + Duration::days(30))),
                    usable(0, pass_of(2, UserId(5), Some(1), NOW + Duration::days(9))),
                ])
            });
        passes
            .expect_append_for_bookings()
            .withf(|_, rows| rows.len() == 1 && rows[0].pass == 2 && entry_of(EntryKind::Use, -1)(&rows[0]))
            .once()
            .returning(|_, rows| Ok(rows.iter().map(|r| (r.gym, r.pass)).collect()));
        let uow = committing(vec![
            DomainEvent::Booked { gym: GYM, session: SessionId(11), member: UserId(5) },
            DomainEvent::CreditUsed { gym: GYM, pass: 2, member: UserId(5), session: SessionId(11) },
        ]);
        let got = svc_with(repo, passes, uow).register(&member(), SessionId(11), BookingRequest::default()).await;
        assert_eq!(got.map(|b| b.participation.pass_id), Ok(Some(2)));
    }

    #[tokio::test]
    async fn without_a_usable_pass_a_booking_is_refused_and_a_dry_run_commits_nothing() {
        let mut repo = locked_with_passes(session(NOW + Duration::days(1), SessionStatus::Scheduled), None, 0);
        repo.expect_move_count().never();
        let mut passes = MockPassRepository::new();
        let empty = pass_of(1, UserId(5), Some(0), NOW + Duration::days(30));
        passes.expect_lock_usable().once().returning(move |_, _, _| Ok(vec![usable(0, empty.clone())]));
        let svc = svc_with(repo, passes, rolling_back());
        assert_eq!(
            svc.register(&member(), SessionId(11), BookingRequest::default()).await,
            Err(DomainError::NoValidPass)
        );

        // A dry run decides as a booking does, writes under the transaction and drops it.
        let mut repo = locked_with_passes(session(NOW + Duration::days(1), SessionStatus::Scheduled), None, 0);
        repo.expect_move_count().once().returning(|_, _, _, _| Ok(()));
        repo.expect_set_booking().once().returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)));
        let mut passes = MockPassRepository::new();
        let open = pass_of(3, UserId(5), None, NOW + Duration::days(30));
        passes.expect_lock_usable().once().returning(move |_, _, _| Ok(vec![usable(0, open.clone())]));
        passes.expect_append_for_bookings().never();
        let ask = BookingRequest { dry_run: true, ..BookingRequest::default() };
        let got = svc_with(repo, passes, rolling_back()).register(&member(), SessionId(11), ask).await;
        assert_eq!(got.map(|b| b.participation.pass_id), Ok(Some(3)), "an unlimited pass keeps no ledger");
    }

    #[tokio::test]
    async fn a_cancel_after_the_cutoff_is_late_and_the_gym_keeps_the_credit() {
        let start = NOW + Duration::minutes(30);
        let mut repo =
            locked_with_passes(session(start, SessionStatus::Scheduled), Some(ParticipationStatus::Registered), 60);
        repo.expect_set_participation()
            .withf(|_, _, _, m, st, _, _| *m == UserId(5) && *st == ParticipationStatus::LateCancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(Participation { pass_id: Some(4), ..stored(g, s, m, st, t, now) }));
        repo.expect_waitlist_queue().once().returning(|_, _, _| Ok(vec![]));
        repo.expect_move_count().withf(|_, _, _, d| *d == -1).once().returning(|_, _, _, _| Ok(()));
        let mut passes = MockPassRepository::new();
        passes.expect_lock_passes().withf(|_, keys| keys == [(GYM, 4)]).once().returning(|_, _| Ok(()));
        passes
            .expect_append_for_bookings()
            .withf(|_, rows| rows.len() == 1 && rows[0].pass == 4 && entry_of(EntryKind::Forfeit, 0)(&rows[0]))
            .once()
            .returning(|_, rows| Ok(rows.iter().map(|r| (r.gym, r.pass)).collect()));
        let uow =
            committing(vec![DomainEvent::BookingCancelled { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        assert_eq!(svc_with(repo, passes, uow).unregister(&member(), SessionId(11)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_cancel_in_time_refunds_and_the_promotion_skips_a_head_without_a_pass() {
        let mut repo = locked_with_passes(
            session(NOW + Duration::days(1), SessionStatus::Scheduled),
            Some(ParticipationStatus::Registered),
            60,
        );
        repo.expect_set_participation()
            .withf(|_, _, _, m, st, _, _| *m == UserId(5) && *st == ParticipationStatus::Cancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(Participation { pass_id: Some(4), ..stored(g, s, m, st, t, now) }));
        repo.expect_waitlist_queue().once().returning(|_, _, _| Ok(vec![UserId(8), UserId(9)]));
        repo.expect_set_participation()
            .withf(|_, _, _, m, st, _, _| *m == UserId(8) && *st == ParticipationStatus::Cancelled)
            .once()
            .returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)));
        repo.expect_set_booking()
            .withf(|_, _, _, m, pass, _| *m == UserId(9) && *pass == Some(7))
            .once()
            .returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)));
        repo.expect_move_count().never();
        let mut passes = MockPassRepository::new();
        // The queue's passes and the one given back, locked by one statement.
        passes
            .expect_lock_usable()
            .withf(|_, asks, also| asks.len() == 2 && also == [(GYM, 4)])
            .once()
            .returning(|_, _, _| Ok(vec![usable(1, pass_of(7, UserId(9), Some(2), NOW + Duration::days(20)))]));
        passes
            .expect_append_for_bookings()
            .withf(|_, rows| rows.len() == 1 && rows[0].pass == 7 && entry_of(EntryKind::Use, -1)(&rows[0]))
            .once()
            .returning(|_, rows| Ok(rows.iter().map(|r| (r.gym, r.pass)).collect()));
        passes.expect_lock_passes().once().returning(|_, _| Ok(()));
        passes
            .expect_append_for_bookings()
            .withf(|_, rows| rows.len() == 1 && rows[0].pass == 4 && entry_of(EntryKind::Refund, 1)(&rows[0]))
            .once()
            .returning(|_, rows| Ok(rows.iter().map(|r| (r.gym, r.pass)).collect()));
        let uow = committing(vec![
            DomainEvent::CreditUsed { gym: GYM, pass: 7, member: UserId(9), session: SessionId(11) },
            DomainEvent::WaitlistSkipped { gym: GYM, session: SessionId(11), members: vec![UserId(8)] },
            DomainEvent::CreditRefunded { gym: GYM, pass: 4, member: UserId(5), session: SessionId(11) },
            DomainEvent::BookingCancelled { gym: GYM, session: SessionId(11), member: UserId(5) },
            DomainEvent::WaitlistPromoted { gym: GYM, session: SessionId(11), member: UserId(9) },
        ]);
        assert_eq!(svc_with(repo, passes, uow).unregister(&member(), SessionId(11)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_session_cancelled_by_the_gym_gives_back_every_credit_used_for_it() {
        let mut repo = MockScheduleRepository::new();
        with_locked_session(
            &mut repo,
            GYM,
            SessionId(11),
            UserId(1),
            Some((session(NOW + Duration::days(1), SessionStatus::Scheduled), None)),
        );
        repo.expect_cancel_bookings()
            .withf(|_, _, _, st| *st == ParticipationStatus::Registered)
            .returning(|_, _, _, _| Ok(vec![UserId(5), UserId(6)]));
        repo.expect_cancel_bookings()
            .withf(|_, _, _, st| *st == ParticipationStatus::Waitlisted)
            .returning(|_, _, _, _| Ok(vec![]));
        repo.expect_move_count().withf(|_, _, _, d| *d == -2).once().returning(|_, _, _, _| Ok(()));
        repo.expect_cancel_session()
            .returning(|_, _, _| Ok(Some(session(NOW + Duration::days(1), SessionStatus::Cancelled))));
        let mut passes = MockPassRepository::new();
        passes.expect_passes_used_in().once().returning(|_, _, _| Ok(vec![(4, UserId(5)), (6, UserId(6))]));
        passes.expect_lock_passes().withf(|_, keys| keys == [(GYM, 4), (GYM, 6)]).once().returning(|_, _| Ok(()));
        passes
            .expect_append_for_bookings()
            .withf(|_, rows| rows.len() == 2 && rows.iter().all(entry_of(EntryKind::Refund, 1)))
            .once()
            // Pass 6 is unlimited: it keeps no ledger.
            .returning(|_, _| Ok(vec![(GYM, 4)]));
        let uow = committing(vec![
            DomainEvent::CreditRefunded { gym: GYM, pass: 4, member: UserId(5), session: SessionId(11) },
            DomainEvent::SessionCancelled { gym: GYM, session: SessionId(11), members: vec![UserId(5), UserId(6)] },
        ]);
        let svc = ScheduleService::new(
            Arc::new(repo),
            Arc::new(MockMemberLock::new()),
            Credits::new(Arc::new(passes)),
            uow,
            Arc::new(FixedClock(NOW)),
        );
        assert!(svc.cancel_session(&staff(), SessionId(11)).await.is_ok());
    }

    #[test]
    fn a_dry_run_answers_the_bookings_own_refusals_and_fails_on_the_rest() {
        for own in [
            DomainError::SessionFull,
            DomainError::NoValidPass,
            DomainError::WeeklyLimitReached,
            DomainError::SessionNotOpen,
        ] {
            assert!(is_booking_refusal(&own), "{own:?}");
        }
        for other in
            [DomainError::SessionNotFound, DomainError::NotAMember, DomainError::Unavailable, DomainError::Forbidden]
        {
            assert!(!is_booking_refusal(&other), "{other:?}");
        }
    }
}
