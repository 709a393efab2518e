//! The timetable: classes, their sessions, and members booking places.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::facts::{Dispatcher, DomainEvent};
use crate::values::{
    Actor, Capacity, ClassId, DateRange, DurationMinutes, GymId, Page, ParticipationId, SessionId, Timestamp, UserId,
    optional_text, required_text,
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
}

impl ParticipationStatus {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Attended => "attended",
            Self::Cancelled => "cancelled",
            Self::NoShow => "no_show",
        }
    }
    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registered" => Some(Self::Registered),
            "attended" => Some(Self::Attended),
            "cancelled" => Some(Self::Cancelled),
            "no_show" => Some(Self::NoShow),
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
}

/// What [`ScheduleRepository::book`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Booking {
    /// A place was taken.
    Booked(Participation),
    /// No place was taken; the state the write transaction saw.
    Refused {
        /// The member already holds a place (registered or attended).
        holds_place: bool,
        /// The session as it is, `None` when it is not in the gym.
        session: Option<Session>,
    },
    /// The member does not belong to the gym (removed since the request was
    /// authorized): nothing was taken.
    NotAMember,
}

impl Session {
    /// Whether a member may book a place now: scheduled and not yet started.
    pub fn open_for_booking(&self, now: OffsetDateTime) -> bool {
        self.status == SessionStatus::Scheduled && self.start_time > now
    }
}

/// Why a booking took no place, in the contract's order: the member's own place
/// first, then the session (missing, not open), then capacity. The one statement of
/// this rule; the database only enforces it.
pub fn refusal(holds_place: bool, session: Option<&Session>, now: OffsetDateTime) -> DomainError {
    match session {
        _ if holds_place => DomainError::AlreadyRegistered,
        None => DomainError::SessionNotFound,
        Some(s) if !s.open_for_booking(now) => DomainError::SessionNotOpen,
        Some(_) => DomainError::SessionFull,
    }
}

/// Storage of classes, sessions and bookings. Every method is scoped to a gym:
/// another gym's rows are invisible, exactly as missing ones.
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
    async fn create_class(&self, gym: GymId, class: &NewClass, now: OffsetDateTime) -> Result<Class>;
    /// Applies a change to a class; `Ok(None)` when absent.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`] when a new `instructor_id` is not a member of the
    /// gym; storage failures.
    async fn update_class(&self, gym: GymId, id: ClassId, patch: &ClassPatch) -> Result<Option<Class>>;
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
    async fn create_session(&self, gym: GymId, draft: &SessionDraft, now: OffsetDateTime) -> Result<Session>;
    /// Marks a session cancelled; `Ok(None)` when absent.
    ///
    /// # Errors
    /// Storage failures.
    async fn cancel_session(&self, gym: GymId, id: SessionId) -> Result<Option<Session>>;
    /// Books a place atomically: the member's participation becomes (or is created as)
    /// `registered` and the session's `registered_count` grows, only while the member
    /// belongs to the gym, the session is scheduled, starts after `now` and has a free
    /// place, and the member holds no place — decided by the database. When no place
    /// was taken it reports what the same transaction saw, and the service says why
    /// ([`refusal`]).
    ///
    /// Locks, in the global order: the member's membership (shared with a removal of
    /// that member, so a booking lands wholly before the removal, which gives its
    /// place back, or is refused as [`Booking::NotAMember`] after it), then the
    /// session row, then the participation.
    ///
    /// # Errors
    /// Storage failures.
    async fn book(&self, gym: GymId, session_id: SessionId, member: UserId, now: OffsetDateTime) -> Result<Booking>;
    /// Gives a `registered` place back (the participation becomes `cancelled`) and frees
    /// it; `Ok(false)` when the member held no registered place.
    ///
    /// # Errors
    /// Storage failures.
    async fn cancel_booking(&self, gym: GymId, session_id: SessionId, member: UserId) -> Result<bool>;
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
    events: Dispatcher,
    clock: Arc<dyn Clock>,
}

impl ScheduleService {
    /// Wires the service to its ports.
    pub fn new(repo: Arc<dyn ScheduleRepository>, events: Dispatcher, clock: Arc<dyn Clock>) -> Self {
        Self { repo, events, clock }
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
        let created = self.repo.create_class(actor.gym_id, &class, self.clock.now()).await?;
        self.events.publish(DomainEvent::ClassChanged { gym: actor.gym_id, class: created.id }).await;
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
        let class = self.repo.update_class(actor.gym_id, id, &patch).await?.ok_or(DomainError::ClassNotFound)?;
        self.events.publish(DomainEvent::ClassChanged { gym: actor.gym_id, class: id }).await;
        Ok(class)
    }

    /// Soft-deletes a class (admin): it leaves the list, its sessions stay.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::ClassNotFound`].
    pub async fn delete_class(&self, actor: &Actor, id: ClassId) -> Result<()> {
        actor.require(policy::DELETE_CLASS)?;
        let patch = ClassPatch { active: Some(false), ..ClassPatch::default() };
        self.repo.update_class(actor.gym_id, id, &patch).await?.ok_or(DomainError::ClassNotFound)?;
        self.events.publish(DomainEvent::ClassChanged { gym: actor.gym_id, class: id }).await;
        Ok(())
    }

    /// Sessions starting within the date range, cancelled ones included.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sessions(&self, actor: &Actor, range: DateRange, page: Page) -> Result<Vec<Session>> {
        self.repo.sessions_between(actor.gym_id, range.from(), range.through(), page).await
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
        };
        let session = self.repo.create_session(actor.gym_id, &draft, self.clock.now()).await?;
        self.events.publish(DomainEvent::SessionScheduled { gym: actor.gym_id, session: session.id }).await;
        Ok(session)
    }

    /// Cancels a session (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::SessionNotFound`].
    pub async fn cancel_session(&self, actor: &Actor, id: SessionId) -> Result<Session> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        let s = self.repo.cancel_session(actor.gym_id, id).await?.ok_or(DomainError::SessionNotFound)?;
        self.events.publish(DomainEvent::SessionCancelled { gym: actor.gym_id, session: id }).await;
        Ok(s)
    }

    /// Books the actor a place in a session.
    ///
    /// The rules, in order: the session exists in the gym; it is scheduled and has not
    /// started (`session_not_open`); the member holds no place yet (`already_registered`);
    /// a place is free (`session_full`). The last two are decided by the database.
    ///
    /// # Errors
    /// The variants named above.
    pub async fn register(&self, actor: &Actor, session_id: SessionId) -> Result<Participation> {
        let now = self.clock.now();
        let session = self.session(actor, session_id).await?;
        if !session.open_for_booking(now) {
            return Err(DomainError::SessionNotOpen);
        }
        let p = match self.repo.book(actor.gym_id, session_id, actor.user_id, now).await? {
            Booking::Booked(p) => p,
            Booking::Refused { holds_place, session } => return Err(refusal(holds_place, session.as_ref(), now)),
            Booking::NotAMember => return Err(DomainError::NotAMember),
        };
        self.events
            .publish(DomainEvent::Booked { gym: actor.gym_id, session: session_id, member: actor.user_id })
            .await;
        Ok(p)
    }

    /// Gives the actor's place back.
    ///
    /// # Errors
    /// [`DomainError::SessionNotFound`] for an unknown session; [`DomainError::NotRegistered`]
    /// when the actor holds no registered place in it.
    pub async fn unregister(&self, actor: &Actor, session_id: SessionId) -> Result<()> {
        self.session(actor, session_id).await?;
        if !self.repo.cancel_booking(actor.gym_id, session_id, actor.user_id).await? {
            return Err(DomainError::NotRegistered);
        }
        let freed = DomainEvent::BookingCancelled { gym: actor.gym_id, session: session_id, member: actor.user_id };
        self.events.publish(freed).await;
        Ok(())
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

    fn svc(repo: MockScheduleRepository, listener: MockListener) -> ScheduleService {
        ScheduleService::new(Arc::new(repo), dispatcher_to(listener), Arc::new(FixedClock(NOW)))
    }

    fn repo_with_session(s: Session) -> MockScheduleRepository {
        let mut repo = MockScheduleRepository::new();
        with_session(&mut repo, s);
        repo
    }

    #[tokio::test]
    async fn booking_a_cancelled_session_is_session_not_open() {
        let repo = repo_with_session(session(NOW + Duration::hours(1), SessionStatus::Cancelled));
        assert_eq!(
            svc(repo, MockListener::new()).register(&member(), SessionId(11)).await,
            Err(DomainError::SessionNotOpen)
        );
    }

    #[tokio::test]
    async fn booking_a_started_session_is_session_not_open() {
        let repo = repo_with_session(session(NOW, SessionStatus::Scheduled));
        assert_eq!(
            svc(repo, MockListener::new()).register(&member(), SessionId(11)).await,
            Err(DomainError::SessionNotOpen)
        );
    }

    #[tokio::test]
    async fn booking_an_unknown_session_is_session_not_found() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_session().returning(|_, _| Ok(None));
        assert_eq!(
            svc(repo, MockListener::new()).register(&member(), SessionId(11)).await,
            Err(DomainError::SessionNotFound)
        );
    }

    #[tokio::test]
    async fn a_full_session_answers_session_full() {
        let mut repo = repo_with_session(session(NOW + Duration::hours(1), SessionStatus::Scheduled));
        let open = session(NOW + Duration::hours(1), SessionStatus::Scheduled);
        repo.expect_book()
            .once()
            .returning(move |_, _, _, _| Ok(Booking::Refused { holds_place: false, session: Some(open.clone()) }));
        assert_eq!(
            svc(repo, MockListener::new()).register(&member(), SessionId(11)).await,
            Err(DomainError::SessionFull)
        );
    }

    #[test]
    fn a_refusal_names_the_members_place_then_the_session_then_capacity() {
        let open = session(NOW + Duration::hours(1), SessionStatus::Scheduled);
        let started = session(NOW, SessionStatus::Scheduled);
        let cancelled = session(NOW + Duration::hours(1), SessionStatus::Cancelled);
        assert_eq!(refusal(true, Some(&started), NOW), DomainError::AlreadyRegistered, "even when not open");
        assert_eq!(refusal(false, None, NOW), DomainError::SessionNotFound);
        assert_eq!(refusal(false, Some(&started), NOW), DomainError::SessionNotOpen);
        assert_eq!(refusal(false, Some(&cancelled), NOW), DomainError::SessionNotOpen);
        assert_eq!(refusal(false, Some(&open), NOW), DomainError::SessionFull);
    }

    #[tokio::test]
    async fn booking_twice_answers_already_registered() {
        let mut repo = repo_with_session(session(NOW + Duration::hours(1), SessionStatus::Scheduled));
        repo.expect_book().once().returning(|_, _, _, _| Ok(Booking::Refused { holds_place: true, session: None }));
        assert_eq!(
            svc(repo, MockListener::new()).register(&member(), SessionId(11)).await,
            Err(DomainError::AlreadyRegistered)
        );
    }

    #[tokio::test]
    async fn a_booking_yields_booked() {
        let mut repo = repo_with_session(session(NOW + Duration::hours(1), SessionStatus::Scheduled));
        repo.expect_book()
            .withf(|g, s, m, now| *g == GYM && *s == SessionId(11) && *m == UserId(5) && *now == NOW)
            .once()
            .returning(|g, s, m, now| {
                Ok(Booking::Booked(Participation {
                    id: ParticipationId(1),
                    session_id: s,
                    member_id: m,
                    gym_id: g,
                    status: ParticipationStatus::Registered,
                    attendance_time: None,
                    created_at: now,
                }))
            });
        let booked = with_facts(vec![DomainEvent::Booked { gym: GYM, session: SessionId(11), member: UserId(5) }]);
        let p = svc(repo, booked).register(&member(), SessionId(11)).await.expect("booked");
        assert_eq!(p.status, ParticipationStatus::Registered);
    }

    #[tokio::test]
    async fn cancelling_without_a_place_is_not_registered_and_publishes_nothing() {
        let mut repo = repo_with_session(session(NOW + Duration::hours(1), SessionStatus::Scheduled));
        repo.expect_cancel_booking().once().returning(|_, _, _| Ok(false));
        assert_eq!(
            svc(repo, MockListener::new()).unregister(&member(), SessionId(11)).await,
            Err(DomainError::NotRegistered)
        );
    }

    #[tokio::test]
    async fn a_member_removed_before_the_place_was_taken_is_not_a_member() {
        let mut repo = repo_with_session(session(NOW + Duration::hours(1), SessionStatus::Scheduled));
        repo.expect_book().once().returning(|_, _, _, _| Ok(Booking::NotAMember));
        assert_eq!(
            svc(repo, MockListener::new()).register(&member(), SessionId(11)).await,
            Err(DomainError::NotAMember)
        );
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
            svc(MockScheduleRepository::new(), MockListener::new()).create_class(&member(), new).await,
            Err(DomainError::Forbidden)
        );
    }

    #[tokio::test]
    async fn a_session_without_end_lasts_its_class_duration_and_takes_its_capacity() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_class().returning(|_, _| Ok(Some(class())));
        repo.expect_create_session()
            .withf(|_, d, _| d.end_time.get() == NOW + Duration::minutes(45) && d.capacity == 12)
            .once()
            .returning(|g, d, _| {
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
        let s = svc(repo, quiet_listener()).create_session(&staff(), new).await.expect("created");
        assert_eq!(s.end_time, NOW + Duration::minutes(45));
    }

    #[tokio::test]
    async fn a_session_of_a_deleted_class_is_class_not_found() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_class().returning(|_, _| Ok(Some(Class { active: false, ..class() })));
        let new =
            NewSession { class_id: ClassId(2), start_time: ts(NOW), end_time: None, trainer_id: None, room: None };
        assert_eq!(svc(repo, MockListener::new()).create_session(&staff(), new).await, Err(DomainError::ClassNotFound));
    }

    #[tokio::test]
    async fn a_session_of_an_unknown_class_is_class_not_found() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_class().returning(|_, _| Ok(None));
        let new =
            NewSession { class_id: ClassId(99), start_time: ts(NOW), end_time: None, trainer_id: None, room: None };
        assert_eq!(svc(repo, MockListener::new()).create_session(&staff(), new).await, Err(DomainError::ClassNotFound));
    }

    #[tokio::test]
    async fn creating_a_class_yields_class_changed() {
        let mut repo = MockScheduleRepository::new();
        repo.expect_create_class().once().returning(|g, c, _| {
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
        let cache = with_facts(vec![DomainEvent::ClassChanged { gym: GYM, class: ClassId(1) }]);
        let new = NewClass {
            name: " Yoga ".into(),
            description: None,
            duration_minutes: DurationMinutes::new(60).expect("in range"),
            max_capacity: Capacity::new(10).expect("in range"),
            category: None,
            instructor_id: None,
        };
        let c = svc(repo, cache).create_class(&staff(), new).await.expect("created");
        assert_eq!(c.name, "Yoga");
    }
}
