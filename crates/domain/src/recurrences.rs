//! Recurring classes: a series of sessions of a class at one wall-clock time on some
//! weekdays, in the gym's time zone, made at once and stopped at will.
//!
//! Times are UTC everywhere else; the gym's zone appears here only, where the rule
//! needs it: "Mondays at 09:00" is 08:00 UTC in a Madrid winter and 07:00 UTC in its
//! summer, and each session is stored at the instant its local time names.
//!
//! A local time a daylight-saving change skips (02:30 on a spring-forward night) is
//! moved forward by the length of the gap (03:30, the first valid time after it);
//! a local time a change repeats (02:30 on a fall-back night) is the first of the two
//! (the earlier instant, still on summer time). This is RFC 5545's rule for
//! recurring events and `jiff`'s "compatible" disambiguation.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Date, Duration, OffsetDateTime, Time};

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::gyms::GymRepository;
use crate::schedule::{ScheduleRepository, SessionDraft};
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, ClassId, GymId, RecurrenceId, SessionId, UserId, instant_in, optional_text};
use crate::{limits, policy};

/// The longest series, in days from its first date to its last.
pub const MAX_DAYS: i64 = 366;

/// What is asked to start a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecurrence {
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub weekdays: Vec<u8>,
    /// The local wall-clock start, in the gym's zone.
    pub local_start_time: Time,
    /// The first date (inclusive).
    pub starts_on: Date,
    /// The last date (inclusive).
    pub until: Date,
    /// Who runs the sessions.
    pub trainer_id: Option<UserId>,
    /// Where.
    pub room: Option<String>,
}

/// A series as stored: what was asked, in the zone it was made in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    /// Identifier.
    pub id: RecurrenceId,
    /// The gym.
    pub gym_id: GymId,
    /// The class its sessions are of.
    pub class_id: ClassId,
    /// What was asked, as checked.
    pub asked: RecurrenceDraft,
    /// When it was stopped, if it was.
    pub stopped_at: Option<OffsetDateTime>,
    /// Creation instant.
    pub created_at: OffsetDateTime,
    /// Its sessions that still exist, by start.
    pub session_ids: Vec<SessionId>,
}

/// The instants of a series: each date from `from` to `until` (inclusive) whose ISO
/// weekday is in `weekdays`, at the local time `at` of the zone `tz`, a skipped or
/// repeated local time resolved as the module says.
///
/// # Errors
/// [`DomainError::Validation`] for a zone the tz database does not know (a gym
/// created before zones were checked).
pub fn occurrences(tz: &str, weekdays: &[u8], at: Time, from: Date, until: Date) -> Result<Vec<OffsetDateTime>> {
    let zone = jiff::tz::TimeZone::get(tz).map_err(|_| {
        DomainError::validation(format!(
            "the gym's timezone {tz:?} is not an IANA time zone name; the gym's admin must set one first"
        ))
    })?;
    let mut out = Vec::new();
    let mut day = from;
    while day <= until {
        if weekdays.contains(&day.weekday().number_from_monday()) {
            out.push(instant_in(&zone, day, at)?);
        }
        day = match day.next_day() {
            Some(next) => next,
            None => break,
        };
    }
    Ok(out)
}

/// A series ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrenceDraft {
    /// ISO weekdays, ascending, without repeats.
    pub weekdays: Vec<u8>,
    /// The local wall-clock start.
    pub local_start_time: Time,
    /// The first date.
    pub starts_on: Date,
    /// The last date.
    pub until: Date,
    /// The gym's zone now.
    pub timezone: String,
    /// Who runs the sessions.
    pub trainer_id: Option<UserId>,
    /// Where.
    pub room: Option<String>,
}

/// Storage of series. Writes take the transaction of the use case.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RecurrenceRepository: Send + Sync {
    /// Stores a series of a class (its sessions are stored apart, naming it).
    ///
    /// # Errors
    /// Storage failures.
    async fn create_recurrence(
        &self,
        tx: &mut Tx,
        gym: GymId,
        class: ClassId,
        draft: &RecurrenceDraft,
        now: OffsetDateTime,
    ) -> Result<Recurrence>;
    /// The series of a class, by id, each with its sessions.
    ///
    /// # Errors
    /// Storage failures.
    async fn recurrences(&self, gym: GymId, class: ClassId) -> Result<Vec<Recurrence>>;
    /// One series of the class, read in `tx`; `Ok(None)` when it is not the class's.
    ///
    /// # Errors
    /// Storage failures.
    async fn recurrence(&self, tx: &mut Tx, gym: GymId, class: ClassId, id: RecurrenceId)
    -> Result<Option<Recurrence>>;
    /// Deletes the series' sessions starting after `after` that nobody ever booked
    /// (no participation of any status), each under its row lock (ascending ids,
    /// lock order 3), and answers them.
    ///
    /// # Errors
    /// Storage failures.
    async fn delete_unbooked_sessions(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: RecurrenceId,
        after: OffsetDateTime,
    ) -> Result<Vec<SessionId>>;
    /// Marks the series stopped at `now`.
    ///
    /// # Errors
    /// Storage failures.
    async fn stop_recurrence(&self, tx: &mut Tx, gym: GymId, id: RecurrenceId, now: OffsetDateTime) -> Result<()>;
}

/// Use cases of series (staff).
#[derive(Clone)]
pub struct RecurrenceService {
    repo: Arc<dyn RecurrenceRepository>,
    schedule: Arc<dyn ScheduleRepository>,
    gyms: Arc<dyn GymRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

impl RecurrenceService {
    /// Wires the service to its ports.
    pub fn new(
        repo: Arc<dyn RecurrenceRepository>,
        schedule: Arc<dyn ScheduleRepository>,
        gyms: Arc<dyn GymRepository>,
        uow: UnitOfWork,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { repo, schedule, gyms, uow, clock }
    }

    /// Starts a series: every session it names from now on, made in one transaction
    /// at the gym's local time, each of the class's length and capacity.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`]; [`DomainError::ClassNotFound`] for a missing or
    /// deleted class; [`DomainError::Validation`] for weekdays out of 1..=7 or none,
    /// `until` before `starts_on` or more than [`MAX_DAYS`] after it, a series with
    /// no session after now; [`DomainError::UserNotFound`] for a trainer who is not
    /// a member of the gym.
    pub async fn create(&self, actor: &Actor, class_id: ClassId, new: NewRecurrence) -> Result<Recurrence> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        let (gym, now) = (actor.gym_id, self.clock.now());
        let mut weekdays = new.weekdays.clone();
        if weekdays.is_empty() || weekdays.iter().any(|d| !(1..=7).contains(d)) {
            return Err(DomainError::validation(
                "weekdays must be ISO weekdays, 1 (Monday) to 7 (Sunday), at least one",
            ));
        }
        weekdays.sort_unstable();
        weekdays.dedup();
        if new.until < new.starts_on {
            return Err(DomainError::validation("until must not be before starts_on"));
        }
        if (new.until - new.starts_on).whole_days() > MAX_DAYS {
            return Err(DomainError::validation(format!("a series spans at most {MAX_DAYS} days")));
        }
        let room = optional_text("room", new.room.as_deref(), limits::ROOM_MAX)?;
        let class = self.schedule.class(gym, class_id).await?.filter(|c| c.active).ok_or(DomainError::ClassNotFound)?;
        let timezone = self.gyms.by_id(gym).await?.ok_or(DomainError::NotAMember)?.timezone;
        let starts: Vec<OffsetDateTime> =
            occurrences(&timezone, &weekdays, new.local_start_time, new.starts_on, new.until)?
                .into_iter()
                .filter(|t| *t > now)
                .collect();
        if starts.is_empty() {
            return Err(DomainError::validation("no session of the series starts after now"));
        }
        let draft = RecurrenceDraft {
            weekdays,
            local_start_time: new.local_start_time,
            starts_on: new.starts_on,
            until: new.until,
            timezone,
            trainer_id: new.trainer_id,
            room: room.clone(),
        };
        let length = Duration::minutes(i64::from(class.duration_minutes));
        let mut tx = self.uow.begin().await?;
        let mut series = self.repo.create_recurrence(&mut tx, gym, class_id, &draft, now).await?;
        for start in starts {
            let start_time = crate::values::Timestamp::new(start)?;
            let session = SessionDraft {
                class_id,
                start_time,
                // Checked: a session at the calendar's last hour ends past it (422).
                end_time: start_time.checked_add(length)?,
                trainer_id: new.trainer_id,
                room: room.clone(),
                capacity: class.max_capacity,
                recurrence: Some(series.id),
            };
            series.session_ids.push(self.schedule.create_session(&mut tx, gym, &session, now).await?.id);
        }
        tx.record(DomainEvent::SeriesScheduled { gym, recurrence: series.id, sessions: series.session_ids.clone() });
        self.uow.commit(tx).await?;
        Ok(series)
    }

    /// The series of a class (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::ClassNotFound`].
    pub async fn list(&self, actor: &Actor, class_id: ClassId) -> Result<Vec<Recurrence>> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        self.schedule.class(actor.gym_id, class_id).await?.ok_or(DomainError::ClassNotFound)?;
        self.repo.recurrences(actor.gym_id, class_id).await
    }

    /// Stops a series (staff): its future sessions that nobody booked are removed,
    /// the others stay (cancel them one by one), and it makes no more. Stopping a
    /// stopped series changes nothing.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`], [`DomainError::RecurrenceNotFound`].
    pub async fn stop(&self, actor: &Actor, class_id: ClassId, id: RecurrenceId) -> Result<()> {
        actor.require(policy::MANAGE_SCHEDULE)?;
        let (gym, now) = (actor.gym_id, self.clock.now());
        let mut tx = self.uow.begin().await?;
        let series = self.repo.recurrence(&mut tx, gym, class_id, id).await?.ok_or(DomainError::RecurrenceNotFound)?;
        if series.stopped_at.is_some() {
            return Ok(());
        }
        let removed = self.repo.delete_unbooked_sessions(&mut tx, gym, id, now).await?;
        self.repo.stop_recurrence(&mut tx, gym, id, now).await?;
        tx.record(DomainEvent::SeriesStopped { gym, recurrence: id, removed });
        self.uow.commit(tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::gyms::MockGymRepository;
    use crate::mocks::{rolling_back, untouched};
    use crate::schedule::MockScheduleRepository;
    use crate::values::Role;
    use time::macros::{date, datetime, time};

    const GYM: GymId = GymId(3);

    fn staff() -> Actor {
        Actor { user_id: UserId(1), gym_id: GYM, role: Role::Trainer }
    }

    fn svc(repo: MockRecurrenceRepository, uow: UnitOfWork) -> RecurrenceService {
        let clock = Arc::new(FixedClock(datetime!(2026-01-01 00:00 UTC)));
        RecurrenceService::new(
            Arc::new(repo),
            Arc::new(MockScheduleRepository::new()),
            Arc::new(MockGymRepository::new()),
            uow,
            clock,
        )
    }

    fn asked(weekdays: Vec<u8>, from: Date, until: Date) -> NewRecurrence {
        NewRecurrence { weekdays, local_start_time: time!(09:00), starts_on: from, until, trainer_id: None, room: None }
    }

    #[tokio::test]
    async fn a_series_out_of_shape_is_refused_before_any_read_or_write() {
        let (from, until) = (date!(2026 - 02 - 02), date!(2026 - 02 - 28));
        for bad in [
            asked(vec![], from, until),
            asked(vec![0], from, until),
            asked(vec![1, 8], from, until),
            asked(vec![1], until, from),
            asked(vec![1], from, from + time::Duration::days(MAX_DAYS + 1)),
        ] {
            let got = svc(MockRecurrenceRepository::new(), untouched()).create(&staff(), ClassId(2), bad.clone()).await;
            assert!(matches!(got, Err(DomainError::Validation(_))), "{bad:?}: {got:?}");
        }
        let member = Actor { role: Role::Member, ..staff() };
        let got = svc(MockRecurrenceRepository::new(), untouched())
            .create(&member, ClassId(2), asked(vec![1], from, until))
            .await;
        assert_eq!(got.map(|r| r.id), Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn a_series_makes_its_future_sessions_in_one_transaction_at_the_gyms_local_time() {
        use crate::gyms::Gym;
        use crate::schedule::{BookingWindow, Class, Session, SessionStatus, WaitlistRules};
        let mut schedule = MockScheduleRepository::new();
        schedule.expect_class().returning(|g, id| {
            Ok(Some(Class {
                id,
                gym_id: g,
                name: "Spin".into(),
                description: None,
                duration_minutes: 45,
                max_capacity: 12,
                category: None,
                instructor_id: None,
                active: true,
            }))
        });
        let made = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = made.clone();
        schedule.expect_create_session().times(2).returning(move |_, g, d, _| {
            seen.lock().expect("drafts").push(d.clone());
            let n = i64::try_from(seen.lock().expect("drafts").len()).expect("few");
            Ok(Session {
                id: SessionId(100 + n),
                gym_id: g,
                class_id: d.class_id,
                start_time: d.start_time.get(),
                end_time: d.end_time.get(),
                status: SessionStatus::Scheduled,
                trainer_id: d.trainer_id,
                room: d.room.clone(),
                capacity: d.capacity,
                registered_count: 0,
            })
        });
        let mut gyms = MockGymRepository::new();
        gyms.expect_by_id().returning(|g| {
            Ok(Some(Gym {
                id: g,
                name: "Iron".into(),
                timezone: "Europe/Madrid".into(),
                address: None,
                created_at: datetime!(2025-01-01 00:00 UTC),
                booking: BookingWindow::default(),
                waitlist: WaitlistRules::default(),
                qr_mode: crate::values::QrMode::Static,
                occupancy_window_minutes: crate::limits::OCCUPANCY_WINDOW_DEFAULT,
                booking_requires_pass: false,
                cancel_cutoff_minutes: 0,
            }))
        });
        let mut repo = MockRecurrenceRepository::new();
        repo.expect_create_recurrence()
            .withf(|_, g, c, d, _| {
                *g == GYM && *c == ClassId(2) && d.timezone == "Europe/Madrid" && d.weekdays == [1, 3]
            })
            .once()
            .returning(|_, g, c, d, now| {
                Ok(Recurrence {
                    id: RecurrenceId(7),
                    gym_id: g,
                    class_id: c,
                    asked: d.clone(),
                    stopped_at: None,
                    created_at: now,
                    session_ids: vec![],
                })
            });
        let facts = vec![DomainEvent::SeriesScheduled {
            gym: GYM,
            recurrence: RecurrenceId(7),
            sessions: vec![SessionId(101), SessionId(102)],
        }];
        let svc = RecurrenceService::new(
            Arc::new(repo),
            Arc::new(schedule),
            Arc::new(gyms),
            crate::mocks::committing(facts),
            Arc::new(FixedClock(datetime!(2026-01-01 00:00 UTC))),
        );
        // Wednesday 1 and Monday 6 July 2026 (CEST), weekdays given unsorted and twice.
        let got = svc
            .create(&staff(), ClassId(2), asked(vec![3, 1, 3], date!(2026 - 07 - 01), date!(2026 - 07 - 06)))
            .await
            .expect("made");
        assert_eq!(got.session_ids, [SessionId(101), SessionId(102)]);
        let drafts = made.lock().expect("drafts").clone();
        let times: Vec<_> = drafts.iter().map(|d| (d.start_time.get(), d.end_time.get(), d.capacity)).collect();
        assert_eq!(
            times,
            [
                (datetime!(2026-07-01 07:00 UTC), datetime!(2026-07-01 07:45 UTC), 12),
                (datetime!(2026-07-06 07:00 UTC), datetime!(2026-07-06 07:45 UTC), 12)
            ]
        );
        assert!(drafts.iter().all(|d| d.recurrence == Some(RecurrenceId(7))));
    }

    #[tokio::test]
    async fn stopping_a_stopped_series_changes_nothing() {
        let mut repo = MockRecurrenceRepository::new();
        repo.expect_recurrence().once().returning(|_, g, c, id| {
            Ok(Some(Recurrence {
                id,
                gym_id: g,
                class_id: c,
                asked: RecurrenceDraft {
                    weekdays: vec![1],
                    local_start_time: time!(09:00),
                    starts_on: date!(2026 - 02 - 02),
                    until: date!(2026 - 02 - 28),
                    timezone: "UTC".into(),
                    trainer_id: None,
                    room: None,
                },
                stopped_at: Some(datetime!(2026-01-01 00:00 UTC)),
                created_at: datetime!(2026-01-01 00:00 UTC),
                session_ids: vec![],
            }))
        });
        repo.expect_delete_unbooked_sessions().never();
        repo.expect_stop_recurrence().never();
        assert_eq!(svc(repo, rolling_back()).stop(&staff(), ClassId(2), RecurrenceId(4)).await, Ok(()));
        let mut repo = MockRecurrenceRepository::new();
        repo.expect_recurrence().once().returning(|_, _, _, _| Ok(None));
        let got = svc(repo, rolling_back()).stop(&staff(), ClassId(2), RecurrenceId(4)).await;
        assert_eq!(got, Err(DomainError::RecurrenceNotFound));
    }

    fn utc(tz: &str, days: &[u8], at: Time, from: Date, until: Date) -> Vec<OffsetDateTime> {
        occurrences(tz, days, at, from, until).expect("a known zone")
    }

    #[test]
    fn a_madrid_class_keeps_its_wall_clock_time_across_both_changes() {
        // Mondays at 09:00: CET (UTC+1) in winter, CEST (UTC+2) from 29 March to 25 October 2026.
        let spring = utc("Europe/Madrid", &[1], time!(09:00), date!(2026 - 03 - 23), date!(2026 - 03 - 30));
        assert_eq!(spring, [datetime!(2026-03-23 08:00 UTC), datetime!(2026-03-30 07:00 UTC)]);
        let autumn = utc("Europe/Madrid", &[1], time!(09:00), date!(2026 - 10 - 19), date!(2026 - 10 - 26));
        assert_eq!(autumn, [datetime!(2026-10-19 07:00 UTC), datetime!(2026-10-26 08:00 UTC)]);
    }

    #[test]
    fn a_new_york_class_keeps_its_wall_clock_time_across_both_changes() {
        // 18:30 on Sundays: EST (UTC-5) until 8 March 2026, EDT (UTC-4) until 1 November.
        let spring = utc("America/New_York", &[7], time!(18:30), date!(2026 - 03 - 01), date!(2026 - 03 - 08));
        assert_eq!(spring, [datetime!(2026-03-01 23:30 UTC), datetime!(2026-03-08 22:30 UTC)]);
        let autumn = utc("America/New_York", &[7], time!(18:30), date!(2026 - 10 - 25), date!(2026 - 11 - 01));
        assert_eq!(autumn, [datetime!(2026-10-25 22:30 UTC), datetime!(2026-11-01 23:30 UTC)]);
    }

    #[test]
    fn a_skipped_local_time_moves_forward_and_a_repeated_one_is_the_first() {
        // Madrid, 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let gap = utc("Europe/Madrid", &[7], time!(02:30), date!(2026 - 03 - 29), date!(2026 - 03 - 29));
        assert_eq!(gap, [datetime!(2026-03-29 01:30 UTC)], "03:30 CEST, the gap's length later");
        // Madrid, 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let fold = utc("Europe/Madrid", &[7], time!(02:30), date!(2026 - 10 - 25), date!(2026 - 10 - 25));
        assert_eq!(fold, [datetime!(2026-10-25 00:30 UTC)], "the first 02:30, still CEST");
        // New York, 8 March 2026 02:30 (skipped) and 1 November 01:30 (repeated).
        let gap = utc("America/New_York", &[7], time!(02:30), date!(2026 - 03 - 08), date!(2026 - 03 - 08));
        assert_eq!(gap, [datetime!(2026-03-08 07:30 UTC)], "03:30 EDT");
        let fold = utc("America/New_York", &[7], time!(01:30), date!(2026 - 11 - 01), date!(2026 - 11 - 01));
        assert_eq!(fold, [datetime!(2026-11-01 05:30 UTC)], "the first 01:30, still EDT");
    }

    #[test]
    fn only_the_asked_weekdays_within_the_dates_inclusive() {
        // 2026-12-07 is a Monday.
        let got = utc("UTC", &[1, 3, 5], time!(07:15), date!(2026 - 12 - 07), date!(2026 - 12 - 14));
        assert_eq!(
            got,
            [
                datetime!(2026-12-07 07:15 UTC),
                datetime!(2026-12-09 07:15 UTC),
                datetime!(2026-12-11 07:15 UTC),
                datetime!(2026-12-14 07:15 UTC)
            ]
        );
        assert!(occurrences("Mars/Olympus", &[1], time!(07:15), date!(2026 - 12 - 07), date!(2026 - 12 - 14)).is_err());
    }
}
