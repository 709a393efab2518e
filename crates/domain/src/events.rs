//! Gym events: open days, competitions, talks.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, DateRange, DatesIn, EventId, GymId, Page, Timestamp, UserId, optional_text, required_text};
use crate::{limits, policy};

/// An event of a gym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Identifier.
    pub id: EventId,
    /// Owning gym.
    pub gym_id: GymId,
    /// Title.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// Start, UTC.
    pub start_time: Timestamp,
    /// End, after start.
    pub end_time: Timestamp,
    /// Where.
    pub location: Option<String>,
    /// Places, if limited.
    pub max_participants: Option<i32>,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// Creation instant.
    pub created_at: OffsetDateTime,
}

/// The fields of an event that can be set; a create sets them all, a patch some.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFields {
    /// Title.
    pub title: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Start.
    pub start_time: Option<Timestamp>,
    /// End.
    pub end_time: Option<Timestamp>,
    /// Where.
    pub location: Option<String>,
    /// Places, if limited (1 or more).
    pub max_participants: Option<i32>,
}

/// Storage of events, scoped to a gym.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventRepository: Send + Sync {
    /// Events starting in `[from, through]` (both inclusive), by start then id.
    ///
    /// # Errors
    /// Storage failures.
    async fn between(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        page: Page,
    ) -> Result<Vec<Event>>;
    /// The gym's IANA time zone; `Ok(None)` when the gym does not exist.
    ///
    /// # Errors
    /// Storage failures.
    async fn time_zone(&self, gym: GymId) -> Result<Option<String>>;
    /// One event.
    ///
    /// # Errors
    /// Storage failures.
    async fn get(&self, gym: GymId, id: EventId) -> Result<Option<Event>>;
    /// One event, its row locked for the rest of the transaction (a change reads
    /// what it replaces under the lock, so two changes never lose one another).
    ///
    /// # Errors
    /// Storage failures.
    async fn lock(&self, tx: &mut Tx, gym: GymId, id: EventId) -> Result<Option<Event>>;
    /// Stores a new event, created at `now`.
    ///
    /// # Errors
    /// Storage failures.
    async fn create(&self, tx: &mut Tx, gym: GymId, event: &NewEvent, now: OffsetDateTime) -> Result<Event>;
    /// Replaces an event's fields; `Ok(None)` when absent.
    ///
    /// # Errors
    /// Storage failures.
    async fn update(&self, tx: &mut Tx, gym: GymId, event: &Event) -> Result<Option<Event>>;
    /// Deletes an event; `Ok(false)` when absent.
    ///
    /// # Errors
    /// Storage failures.
    async fn delete(&self, tx: &mut Tx, gym: GymId, id: EventId) -> Result<bool>;
}

/// Use cases of events.
#[derive(Clone)]
pub struct EventService {
    repo: Arc<dyn EventRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl EventService {
    /// Wires the service to its ports.
    pub fn new(repo: Arc<dyn EventRepository>, uow: UnitOfWork, clock: Arc<dyn Clock>) -> Self {
        Self { repo, uow, clock }
    }

    /// Events starting within the range.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self, actor: &Actor, range: DateRange, dates: DatesIn, page: Page) -> Result<Vec<Event>> {
        let (from, through) = match dates {
            DatesIn::Utc => (range.from(), range.through()),
            DatesIn::Gym => {
                let tz = self.repo.time_zone(actor.gym_id).await?.ok_or(DomainError::NotAMember)?;
                range.in_zone(&tz)?
            }
        };
        self.repo.between(actor.gym_id, from, through, page).await
    }

    /// One event.
    ///
    /// # Errors
    /// [`DomainError::EventNotFound`].
    pub async fn get(&self, actor: &Actor, id: EventId) -> Result<Event> {
        self.repo.get(actor.gym_id, id).await?.ok_or(DomainError::EventNotFound)
    }

    /// Creates an event (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`]; [`DomainError::Validation`] for a missing title or
    /// time, or an end not after the start.
    pub async fn create(&self, actor: &Actor, fields: EventFields) -> Result<Event> {
        actor.require(policy::MANAGE_EVENTS)?;
        let event = NewEvent::from_fields(fields, actor.user_id)?;
        let mut tx = self.uow.begin().await?;
        let created = self.repo.create(&mut tx, actor.gym_id, &event, self.clock.now()).await?;
        self.changed(tx, actor, created.id).await?;
        Ok(created)
    }

    /// Changes an event (staff), under its row's lock.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::EventNotFound`], [`DomainError::Validation`].
    pub async fn update(&self, actor: &Actor, id: EventId, fields: EventFields) -> Result<Event> {
        actor.require(policy::MANAGE_EVENTS)?;
        let mut tx = self.uow.begin().await?;
        let current = self.repo.lock(&mut tx, actor.gym_id, id).await?.ok_or(DomainError::EventNotFound)?;
        let event = apply(current, fields)?;
        let updated = self.repo.update(&mut tx, actor.gym_id, &event).await?.ok_or(DomainError::EventNotFound)?;
        self.changed(tx, actor, id).await?;
        Ok(updated)
    }

    /// Deletes an event (admin).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::EventNotFound`].
    pub async fn delete(&self, actor: &Actor, id: EventId) -> Result<()> {
        actor.require(policy::DELETE_EVENT)?;
        let mut tx = self.uow.begin().await?;
        if !self.repo.delete(&mut tx, actor.gym_id, id).await? {
            return Err(DomainError::EventNotFound);
        }
        self.changed(tx, actor, id).await
    }

    async fn changed(&self, mut tx: Tx, actor: &Actor, event: EventId) -> Result<()> {
        tx.record(DomainEvent::EventChanged { gym: actor.gym_id, event });
        self.uow.commit(tx).await
    }
}

/// Applies the given fields and checks the event's rules.
fn apply(mut e: Event, f: EventFields) -> Result<Event> {
    if let Some(t) = f.title {
        e.title = required_text("title", &t, limits::NAME_MAX)?;
    }
    if f.description.is_some() {
        e.description = optional_text("description", f.description.as_deref(), limits::EVENT_DESCRIPTION_MAX)?;
    }
    if f.location.is_some() {
        e.location = optional_text("location", f.location.as_deref(), limits::LOCATION_MAX)?;
    }
    if f.max_participants.is_some() {
        e.max_participants = participants(f.max_participants)?;
    }
    e.start_time = f.start_time.unwrap_or(e.start_time);
    e.end_time = f.end_time.unwrap_or(e.end_time);
    times(e.start_time, e.end_time)?;
    Ok(e)
}

fn participants(max: Option<i32>) -> Result<Option<i32>> {
    match max {
        Some(m) if m < limits::MIN_PARTICIPANTS => Err(DomainError::validation("max_participants must be 1 or more")),
        other => Ok(other),
    }
}

fn times(start: Timestamp, end: Timestamp) -> Result<()> {
    if end <= start {
        return Err(DomainError::validation("end_time must be after start_time"));
    }
    Ok(())
}

/// What is asked to create an event, checked: every required field set, within its
/// bounds, the end after the start. Stored, it becomes an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Title (not blank).
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// Start.
    pub start_time: Timestamp,
    /// End, after start.
    pub end_time: Timestamp,
    /// Where.
    pub location: Option<String>,
    /// Places, 1 or more.
    pub max_participants: Option<i32>,
    /// Who created it.
    pub created_by: UserId,
}

impl NewEvent {
    /// Checks the fields of a creation.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a missing title or time, a bound broken, or an
    /// end not after the start.
    pub fn from_fields(f: EventFields, created_by: UserId) -> Result<Self> {
        let (Some(title), Some(start_time), Some(end_time)) = (f.title, f.start_time, f.end_time) else {
            return Err(DomainError::validation("title, start_time and end_time are required"));
        };
        times(start_time, end_time)?;
        Ok(Self {
            title: required_text("title", &title, limits::NAME_MAX)?,
            description: optional_text("description", f.description.as_deref(), limits::EVENT_DESCRIPTION_MAX)?,
            start_time,
            end_time,
            location: optional_text("location", f.location.as_deref(), limits::LOCATION_MAX)?,
            max_participants: participants(f.max_participants)?,
            created_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::*;
    use crate::values::Role;
    use time::Duration;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-10 10:00 UTC);

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GymId(2), role }
    }

    fn svc(repo: MockEventRepository, uow: UnitOfWork) -> EventService {
        EventService::new(Arc::new(repo), uow, Arc::new(FixedClock(NOW)))
    }

    fn fields(start: OffsetDateTime, end: OffsetDateTime) -> EventFields {
        EventFields {
            title: Some("Open day".into()),
            start_time: Some(Timestamp::new(start).expect("storable")),
            end_time: Some(Timestamp::new(end).expect("storable")),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_event_ending_at_its_start_is_refused() {
        let got = svc(MockEventRepository::new(), untouched()).create(&actor(Role::Trainer), fields(NOW, NOW)).await;
        assert!(matches!(got, Err(DomainError::Validation(_))));
    }

    #[tokio::test]
    async fn members_cannot_create_events() {
        let got = svc(MockEventRepository::new(), untouched())
            .create(&actor(Role::Member), fields(NOW, NOW + Duration::hours(1)))
            .await;
        assert_eq!(got, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn staff_creates_an_event_stamped_with_creator_and_now_and_commits_event_changed() {
        let mut repo = MockEventRepository::new();
        repo.expect_create()
            .withf(|_, g, e, now| *g == GymId(2) && e.created_by == UserId(1) && *now == NOW)
            .once()
            .returning(|_, g, e, now| {
                Ok(Event {
                    id: EventId(9),
                    gym_id: g,
                    title: e.title.clone(),
                    description: e.description.clone(),
                    start_time: e.start_time,
                    end_time: e.end_time,
                    location: e.location.clone(),
                    max_participants: e.max_participants,
                    created_by: Some(e.created_by),
                    created_at: now,
                })
            });
        let uow = committing(vec![DomainEvent::EventChanged { gym: GymId(2), event: EventId(9) }]);
        let e = svc(repo, uow).create(&actor(Role::Trainer), fields(NOW, NOW + Duration::hours(1))).await.expect("ok");
        assert_eq!(e.id, EventId(9), "and committed with EventChanged (the mock expects it once)");
    }

    #[tokio::test]
    async fn a_patch_moving_the_end_before_the_start_is_refused_and_rolled_back() {
        let mut repo = MockEventRepository::new();
        let current = Event {
            id: EventId(1),
            gym_id: GymId(2),
            title: "x".into(),
            description: None,
            start_time: Timestamp::new(NOW).expect("storable"),
            end_time: Timestamp::new(NOW + Duration::hours(1)).expect("storable"),
            location: None,
            max_participants: None,
            created_by: None,
            created_at: NOW,
        };
        repo.expect_lock()
            .withf(|_, g, id| *g == GymId(2) && *id == EventId(1))
            .once()
            .returning(move |_, _, _| Ok(Some(current.clone())));
        let patch = EventFields {
            end_time: Some(Timestamp::new(NOW - Duration::hours(1)).expect("storable")),
            ..Default::default()
        };
        assert!(matches!(
            svc(repo, rolling_back()).update(&actor(Role::Admin), EventId(1), patch).await,
            Err(DomainError::Validation(_))
        ));
    }

    #[tokio::test]
    async fn trainers_cannot_delete_events() {
        assert_eq!(
            svc(MockEventRepository::new(), untouched()).delete(&actor(Role::Trainer), EventId(1)).await,
            Err(DomainError::Forbidden)
        );
    }
}
