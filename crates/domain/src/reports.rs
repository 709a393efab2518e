//! Reports for the gym's staff: how each class fills and is attended, and a member's
//! weekly habit.
//!
//! Class figures count the sessions *held* — not cancelled, started within the dates
//! and ended by now — and the places taken in them: `registered` (not yet marked by
//! the no-show job), `attended` (walk-ins included: they take a place) and
//! `no_show`. The fill rate is places taken over places offered (capacities); the
//! attendance and no-show rates are attended, and no-shows, over places taken. A rate
//! over nothing is `None`.
//!
//! A member's weeks are ISO weeks (Monday to Sunday) on the gym's wall clock. The
//! streak counts weeks with at least one attendance, back from the current week; a
//! current week without one yet does not break it (it is not over), and it counts
//! from the week before.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Date, Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{DomainError, Result};
use crate::values::{Actor, ClassId, DateRange, GymId, UserId};

/// Weeks a member report shows.
pub const WEEKS_SHOWN: usize = 12;

/// Most attendances read for a member's streak (years of a daily habit).
pub const ATTENDANCES_READ: u64 = 5000;

/// What the database counts for one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFigures {
    /// The class.
    pub class_id: ClassId,
    /// Its name.
    pub name: String,
    /// Sessions held.
    pub sessions: i64,
    /// Places offered in them (their capacities).
    pub places: i64,
    /// Places taken: registered, attended and no-show participations.
    pub taken: i64,
    /// Attended participations.
    pub attended: i64,
    /// No-show participations.
    pub no_shows: i64,
}

/// One plan's passes and credits over a report's dates: passes sold then, and the
/// ledger's movements then (a pack's credits; unlimited passes keep no ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFigures {
    /// The plan.
    pub plan_id: i64,
    /// Its name.
    pub name: String,
    /// Passes sold (by staff or paid).
    pub passes_sold: i64,
    /// Credits granted with them.
    pub credits_granted: i64,
    /// Credits bookings took.
    pub credits_used: i64,
    /// Credits cancellations gave back.
    pub credits_refunded: i64,
    /// Credits late cancels kept for the gym.
    pub credits_forfeited: i64,
    /// Credits gone with their passes' expiry.
    pub credits_expired: i64,
}

/// A class's figures and rates.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassReport {
    /// The counts.
    pub figures: ClassFigures,
    /// `taken / places`.
    pub fill_rate: Option<f64>,
    /// `attended / taken`.
    pub attendance_rate: Option<f64>,
    /// `no_shows / taken`.
    pub no_show_rate: Option<f64>,
}

/// A member's weekly habit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    /// The member.
    pub member: UserId,
    /// Weeks in a row with an attendance (see the module docs).
    pub streak_weeks: i64,
    /// The last [`WEEKS_SHOWN`] weeks, oldest first: each week's Monday and the
    /// attendances in it.
    pub weeks: Vec<(Date, i64)>,
}

/// What reports read.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ReportRepository: Send + Sync {
    /// Per class of the gym with a session held in `[from, through]` (ended by
    /// `now`), its counts, by class id.
    ///
    /// # Errors
    /// Storage failures.
    async fn class_figures(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Vec<ClassFigures>>;

    /// Per plan of the gym, by plan id, its figures over `[from, through]`.
    ///
    /// # Errors
    /// Storage failures.
    async fn plan_figures(&self, gym: GymId, from: OffsetDateTime, through: OffsetDateTime)
    -> Result<Vec<PlanFigures>>;

    /// The gym's time zone and whether `user` is a member of it; `None` for no gym.
    ///
    /// # Errors
    /// Storage failures.
    async fn member_of(&self, gym: GymId, user: UserId) -> Result<Option<(String, bool)>>;

    /// The member's attendance times in the gym, newest first, at most `limit`.
    ///
    /// # Errors
    /// Storage failures.
    async fn attendance_times(&self, gym: GymId, user: UserId, limit: u64) -> Result<Vec<OffsetDateTime>>;
}

/// The reports.
#[derive(Clone)]
pub struct ReportService {
    repo: Arc<dyn ReportRepository>,
    clock: Arc<dyn Clock>,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    // Counts are far below 2^52: exact as floats.
    #[allow(clippy::cast_precision_loss)]
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl ReportService {
    /// Wires the reports.
    pub fn new(repo: Arc<dyn ReportRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { repo, clock }
    }

    /// Per plan, the passes sold and the credits granted, used, refunded, forfeited
    /// and expired in the dates (UTC) (admin).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; storage failures.
    pub async fn passes(&self, actor: &Actor, dates: DateRange) -> Result<Vec<PlanFigures>> {
        actor.require(crate::policy::SEE_REPORTS)?;
        self.repo.plan_figures(actor.gym_id, dates.from(), dates.through()).await
    }

    /// Per class, the sessions held in the dates (UTC) and their rates (admin).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; storage failures.
    pub async fn classes(&self, actor: &Actor, dates: DateRange) -> Result<Vec<ClassReport>> {
        actor.require(crate::policy::SEE_REPORTS)?;
        let figures = self.repo.class_figures(actor.gym_id, dates.from(), dates.through(), self.clock.now()).await?;
        Ok(figures
            .into_iter()
            .map(|f| ClassReport {
                fill_rate: rate(f.taken, f.places),
                attendance_rate: rate(f.attended, f.taken),
                no_show_rate: rate(f.no_shows, f.taken),
                figures: f,
            })
            .collect())
    }

    /// A member's streak and last weeks (staff).
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below trainer; [`DomainError::UserNotFound`] for
    /// anyone not a member of the gym; storage failures.
    pub async fn member(&self, actor: &Actor, member: UserId) -> Result<MemberReport> {
        actor.require(crate::policy::SEE_MEMBERS)?;
        let (zone, is_member) = self.repo.member_of(actor.gym_id, member).await?.ok_or(DomainError::UserNotFound)?;
        if !is_member {
            return Err(DomainError::UserNotFound);
        }
        let zone = jiff::tz::TimeZone::get(&zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let times = self.repo.attendance_times(actor.gym_id, member, ATTENDANCES_READ).await?;
        let mut mondays: Vec<Date> = times.iter().filter_map(|t| monday_of(&zone, *t)).collect();
        mondays.sort_unstable();
        let this_week = monday_of(&zone, self.clock.now()).ok_or_else(|| DomainError::internal("now has no week"))?;
        let count = |monday: Date| i64::try_from(mondays.iter().filter(|m| **m == monday).count()).unwrap_or(i64::MAX);
        let weeks = (0..WEEKS_SHOWN)
            .rev()
            .filter_map(|back| this_week.checked_sub(Duration::weeks(i64::try_from(back).ok()?)))
            .map(|monday| (monday, count(monday)))
            .collect();
        let mut week = if count(this_week) > 0 { Some(this_week) } else { this_week.checked_sub(Duration::weeks(1)) };
        let mut streak_weeks = 0;
        while let Some(monday) = week.filter(|m| count(*m) > 0) {
            streak_weeks += 1;
            week = monday.checked_sub(Duration::weeks(1));
        }
        Ok(MemberReport { member, streak_weeks, weeks })
    }
}

/// The Monday of the ISO week holding `t` on the zone's wall clock.
fn monday_of(zone: &jiff::tz::TimeZone, t: OffsetDateTime) -> Option<Date> {
    let date = crate::values::local_date(zone, t).ok()?;
    date.checked_sub(Duration::days(i64::from(date.weekday().number_days_from_monday())))
}

impl std::fmt::Debug for ReportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportService").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::values::Role;
    use time::macros::{date, datetime};

    /// A Wednesday.
    const NOW: OffsetDateTime = datetime!(2026-03-11 12:00 UTC);

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GymId(2), role }
    }

    fn member_svc(zone: &'static str, times: Vec<OffsetDateTime>) -> ReportService {
        let mut repo = MockReportRepository::new();
        repo.expect_member_of().returning(move |_, u| Ok(Some((zone.to_owned(), u == UserId(9)))));
        repo.expect_attendance_times().returning(move |_, _, _| Ok(times.clone()));
        ReportService::new(Arc::new(repo), Arc::new(FixedClock(NOW)))
    }

    #[tokio::test]
    async fn rates_are_over_places_and_places_taken_and_none_over_nothing() {
        let mut repo = MockReportRepository::new();
        repo.expect_class_figures().returning(|_, _, _, _| {
            let f = |id, places, taken, attended, no_shows| ClassFigures {
                class_id: ClassId(id),
                name: "Spin".into(),
                sessions: 2,
                places,
                taken,
                attended,
                no_shows,
            };
            Ok(vec![f(1, 20, 10, 6, 3), f(2, 10, 0, 0, 0)])
        });
        let svc = ReportService::new(Arc::new(repo), Arc::new(FixedClock(NOW)));
        let dates = DateRange::new(date!(2026 - 03 - 01), date!(2026 - 03 - 11)).expect("range");
        let got = svc.classes(&actor(Role::Admin), dates).await.expect("report");
        assert_eq!((got[0].fill_rate, got[0].attendance_rate, got[0].no_show_rate), (Some(0.5), Some(0.6), Some(0.3)));
        assert_eq!((got[1].fill_rate, got[1].attendance_rate, got[1].no_show_rate), (Some(0.0), None, None));
        assert_eq!(svc.classes(&actor(Role::Trainer), dates).await, Err(DomainError::Forbidden));
    }

    #[tokio::test]
    async fn the_streak_counts_weeks_back_and_an_unfinished_week_does_not_break_it() {
        // Weeks of 2026-03-02, 02-23 and 02-16 attended (two in one); 02-09 not.
        let times = vec![
            datetime!(2026-03-05 18:00 UTC),
            datetime!(2026-02-24 18:00 UTC),
            datetime!(2026-02-22 10:00 UTC),
            datetime!(2026-02-16 07:00 UTC),
            datetime!(2026-02-02 07:00 UTC),
        ];
        let got = member_svc("UTC", times).member(&actor(Role::Trainer), UserId(9)).await.expect("report");
        assert_eq!(got.streak_weeks, 3, "this week is not over: counted from last week");
        assert_eq!(got.weeks.len(), WEEKS_SHOWN);
        assert_eq!(got.weeks.last(), Some(&(date!(2026 - 03 - 09), 0)));
        let feb16 = got.weeks.iter().find(|(m, _)| *m == date!(2026 - 02 - 16)).map(|(_, n)| *n);
        assert_eq!(feb16, Some(2), "Monday 16th and Sunday 22nd are one week");
        assert_eq!(got.weeks[0].0, date!(2025 - 12 - 22), "twelve weeks back, oldest first");
    }

    #[tokio::test]
    async fn weeks_are_on_the_gyms_wall_clock() {
        // Sunday 23:30 in New York (EDT since the 8th) is Monday 03:30 UTC: a week earlier there.
        let sunday_night = datetime!(2026-03-09 03:30 UTC);
        let ny = member_svc("America/New_York", vec![sunday_night]).member(&actor(Role::Admin), UserId(9)).await;
        let utc = member_svc("UTC", vec![sunday_night]).member(&actor(Role::Admin), UserId(9)).await;
        assert_eq!(ny.expect("ny").streak_weeks, 1, "Sunday the 8th: last week, on the gym's clock");
        assert_eq!(utc.expect("utc").weeks.last(), Some(&(date!(2026 - 03 - 09), 1)), "Monday the 9th in UTC");
    }

    #[tokio::test]
    async fn only_staff_see_a_member_and_only_a_member_of_the_gym() {
        let svc = member_svc("UTC", vec![]);
        assert_eq!(svc.member(&actor(Role::Member), UserId(9)).await, Err(DomainError::Forbidden));
        assert_eq!(svc.member(&actor(Role::Admin), UserId(8)).await, Err(DomainError::UserNotFound));
        let got = svc.member(&actor(Role::Admin), UserId(9)).await.expect("report");
        assert_eq!((got.streak_weeks, got.weeks.iter().map(|(_, n)| n).sum::<i64>()), (0, 0));
    }
}
