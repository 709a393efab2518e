//! Small validated value types shared by every aggregate.

use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use crate::error::{DomainError, Result};

/// Declares an id newtype, so that a session's id can never be passed where a
/// class's is expected: the compiler tells them apart, the database does not.
macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// Identifier of a gym (the tenant).
    GymId
);
id!(
    /// Identifier of a user.
    UserId
);
id!(
    /// Identifier of a class (the template sessions are scheduled from).
    ClassId
);
id!(
    /// Identifier of a scheduled session.
    SessionId
);
id!(
    /// Identifier of a gym event.
    EventId
);
id!(
    /// Identifier of a member's participation in a session.
    ParticipationId
);
id!(
    /// Identifier of a recurring series of sessions of a class.
    RecurrenceId
);

impl UserId {
    /// Ids are below 2^53, so JavaScript clients read them exactly.
    pub const LIMIT: i64 = 1 << 53;

    /// A fresh id for a new user, drawn from the thread's CSPRNG in `1..2^53`.
    /// Sequential ids would let anyone who can add members (every gym owner) walk
    /// through every user's email and phone; a random one is known only to whom
    /// it was given.
    pub fn random() -> Self {
        Self(rand::random_range(1..Self::LIMIT))
    }
}

/// A member's role in a gym, ordered from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Books classes and checks in.
    Member,
    /// Staff: runs classes and the front desk.
    Trainer,
    /// Staff: manages members and the timetable.
    Admin,
    /// Staff: may grant admin and owner.
    Owner,
}

impl Role {
    /// Parses the contract's lower-case name.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for any other text.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "member" => Ok(Self::Member),
            "trainer" => Ok(Self::Trainer),
            "admin" => Ok(Self::Admin),
            "owner" => Ok(Self::Owner),
            other => Err(DomainError::validation(format!(
                "role must be one of member, trainer, admin, owner, not {other:?}"
            ))),
        }
    }

    /// The contract's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Trainer => "trainer",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// Trainer and above.
    pub fn is_staff(self) -> bool {
        self >= Self::Trainer
    }
}

/// Who acts, in which gym, with which role: what the tenant check establishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The caller.
    pub user_id: UserId,
    /// The gym named by the request.
    pub gym_id: GymId,
    /// The caller's role there.
    pub role: Role,
}

impl Actor {
    /// Succeeds when the actor's role is at least `min`.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] otherwise.
    pub fn require(&self, min: Role) -> Result<()> {
        if self.role >= min { Ok(()) } else { Err(DomainError::Forbidden) }
    }
}

/// An instant that both databases store and give back exactly: UTC, whole seconds,
/// within the years 1 to 9999. Every time a request brings in becomes one of these
/// before any rule or adapter sees it, so no adapter ever receives an unstorable value
/// (PostgreSQL's `timestamptz` and SQLite's RFC 3339 text agree only on that range).
///
/// Sub-second input is truncated to the second *before* any comparison, so a rule
/// such as `end > start` holds for what is stored, not only for what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The first storable year.
    pub const MIN_YEAR: i32 = 1;
    /// The last storable year.
    pub const MAX_YEAR: i32 = 9999;

    /// Converts to UTC, truncates to the second and checks the year.
    ///
    /// # Errors
    /// [`DomainError::Validation`] when the instant, once in UTC, falls outside the
    /// years 1 to 9999.
    pub fn new(t: OffsetDateTime) -> Result<Self> {
        let out_of_range = || DomainError::validation("times must fall within the years 1 to 9999 in UTC");
        let utc = t.checked_to_offset(UtcOffset::UTC).ok_or_else(out_of_range)?;
        if !(Self::MIN_YEAR..=Self::MAX_YEAR).contains(&utc.year()) {
            return Err(out_of_range());
        }
        Ok(Self(utc.replace_nanosecond(0).unwrap_or(utc)))
    }

    /// The instant, in UTC.
    pub fn get(self) -> OffsetDateTime {
        self.0
    }

    /// This instant plus `d`.
    ///
    /// # Errors
    /// [`DomainError::Validation`] when the sum leaves the storable range.
    pub fn checked_add(self, d: Duration) -> Result<Self> {
        self.0
            .checked_add(d)
            .ok_or_else(|| DomainError::validation("times must fall within the years 1 to 9999 in UTC"))
            .and_then(Self::new)
    }
}

/// A whole number that can only hold the values of its range: the rule lives in
/// the constructor, so no signature that takes one needs to check it again.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $range:path, $message:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name(i32);

        impl $name {
            /// Checks the bound.
            ///
            /// # Errors
            /// [`DomainError::Validation`] outside the range.
            pub fn new(value: i32) -> Result<Self> {
                if $range.contains(&value) { Ok(Self(value)) } else { Err(DomainError::validation($message)) }
            }

            /// The number.
            pub fn get(self) -> i32 {
                self.0
            }
        }
    };
}

bounded!(
    /// Length of one session of a class, in minutes, within [`crate::limits::DURATION_MINUTES`].
    DurationMinutes,
    crate::limits::DURATION_MINUTES,
    "duration_minutes must be between 1 and 600"
);

bounded!(
    /// Places per session of a class, within [`crate::limits::CAPACITY`].
    Capacity,
    crate::limits::CAPACITY,
    "max_capacity must be between 1 and 1000"
);

/// A window of a list: `skip` rows, then at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to pass over.
    pub skip: u64,
    /// Rows to return, 1..=500.
    pub limit: u64,
}

impl Page {
    /// The largest `limit` a client may ask for.
    pub const MAX_LIMIT: i64 = 500;

    /// Validates `skip >= 0` and `1 <= limit <= 500` (not clamped).
    ///
    /// # Errors
    /// [`DomainError::Validation`] naming the bad parameter.
    pub fn new(skip: i64, limit: i64) -> Result<Self> {
        if skip < 0 {
            return Err(DomainError::validation("skip must be 0 or more"));
        }
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(DomainError::validation("limit must be between 1 and 500"));
        }
        Ok(Self { skip: skip.unsigned_abs(), limit: limit.unsigned_abs() })
    }
}

impl Default for Page {
    fn default() -> Self {
        Self { skip: 0, limit: 100 }
    }
}

/// An inclusive range of UTC dates, at most 62 days long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    start: Date,
    end: Date,
}

impl DateRange {
    /// The longest range, in days between `start` and `end`.
    pub const MAX_DAYS: i64 = 62;

    /// Validates `start <= end` and `end - start <= 62 days`.
    ///
    /// # Errors
    /// [`DomainError::Validation`] saying which rule failed.
    pub fn new(start: Date, end: Date) -> Result<Self> {
        if end < start {
            return Err(DomainError::validation("end_date must not be before start_date"));
        }
        if (end - start).whole_days() > Self::MAX_DAYS {
            return Err(DomainError::validation("the date range must be at most 62 days"));
        }
        let storable = |d: Date| (Timestamp::MIN_YEAR..=Timestamp::MAX_YEAR).contains(&d.year());
        if !storable(start) || !storable(end) {
            return Err(DomainError::validation("dates must fall within the years 1 to 9999"));
        }
        Ok(Self { start, end })
    }

    /// The first instant of the range (start date, 00:00:00 UTC).
    pub fn from(&self) -> OffsetDateTime {
        self.start.with_time(Time::MIDNIGHT).assume_utc()
    }

    /// The last instant of the range (end date, 23:59:59 UTC): stored times are whole
    /// seconds, so `[from, through]` is every instant of the dates, and the range
    /// ending on 9999-12-31 needs no instant after the calendar's last day.
    pub fn through(&self) -> OffsetDateTime {
        self.end.with_hms(23, 59, 59).unwrap_or(self.end.midnight()).assume_utc()
    }

    /// The first and last instants of the dates as they are on the wall clock of the
    /// IANA zone `tz`: from the start date's first local instant to the instant
    /// before the day after the end date begins (a day of 23 or 25 hours included).
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a zone the tz database does not know.
    pub fn in_zone(&self, tz: &str) -> Result<(OffsetDateTime, OffsetDateTime)> {
        let zone = gym_zone(tz)?;
        let first_instant = |d: Date| instant_in(&zone, d, Time::MIDNIGHT);
        let from = first_instant(self.start)?;
        let through = match self.end.next_day() {
            Some(next) => first_instant(next)? - Duration::seconds(1),
            None => self.through(),
        };
        Ok((from, through))
    }
}

/// The instant a date and wall-clock time name in a zone; a time the zone skips
/// moves forward by the gap, a repeated one is the first (`jiff`'s "compatible").
///
/// # Errors
/// [`DomainError::Validation`] for a time past 9999-12-31 in UTC.
pub fn instant_in(zone: &jiff::tz::TimeZone, date: Date, at: Time) -> Result<OffsetDateTime> {
    let civil = jiff::civil::DateTime::new(
        i16::try_from(date.year()).map_err(DomainError::internal)?,
        i8::try_from(u8::from(date.month())).map_err(DomainError::internal)?,
        i8::try_from(date.day()).map_err(DomainError::internal)?,
        i8::try_from(at.hour()).map_err(DomainError::internal)?,
        i8::try_from(at.minute()).map_err(DomainError::internal)?,
        i8::try_from(at.second()).map_err(DomainError::internal)?,
        0,
    )
    .map_err(DomainError::internal)?;
    let Ok(t) = zone.to_ambiguous_timestamp(civil).compatible() else {
        // Past the tz database's last instant (9999-12-30T22:00Z), still a date the
        // contract accepts: the zone's offset at that instant holds to the end.
        let offset = time::Duration::seconds(i64::from(last_offset(zone)?.whole_seconds()));
        return time::PrimitiveDateTime::new(date, at).assume_utc().checked_sub(offset).ok_or_else(past_calendar);
    };
    OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(DomainError::internal)
}

/// The zone's offset at the tz database's last instant.
fn last_offset(zone: &jiff::tz::TimeZone) -> Result<time::UtcOffset> {
    time::UtcOffset::from_whole_seconds(zone.to_offset(jiff::Timestamp::MAX).seconds()).map_err(DomainError::internal)
}

/// A time that falls past 9999-12-31 on the gym's clock (or before year −9999).
fn past_calendar() -> DomainError {
    DomainError::validation("a time past the end of the calendar (9999-12-31) on the gym's clock")
}

/// A gym's stored IANA zone, from the bundled tz database.
///
/// # Errors
/// [`DomainError::Validation`] for a zone the tz database does not know.
pub fn gym_zone(tz: &str) -> Result<jiff::tz::TimeZone> {
    jiff::tz::TimeZone::get(tz)
        .map_err(|_| DomainError::validation(format!("the gym's timezone {tz:?} is not an IANA time zone name")))
}

/// The date an instant falls on, on a zone's wall clock.
///
/// # Errors
/// [`DomainError::Validation`] for an instant whose date is past 9999-12-31 there.
pub fn local_date(zone: &jiff::tz::TimeZone, at: OffsetDateTime) -> Result<Date> {
    let Ok(instant) = jiff::Timestamp::from_second(at.unix_timestamp()) else {
        // Past the tz database's last instant (as in `instant_in`).
        return at.checked_to_offset(last_offset(zone)?).map(OffsetDateTime::date).ok_or_else(past_calendar);
    };
    let local = zone.to_datetime(instant).date();
    let month = u8::try_from(local.month()).map_err(DomainError::internal)?;
    Date::from_calendar_date(
        i32::from(local.year()),
        time::Month::try_from(month).map_err(DomainError::internal)?,
        u8::try_from(local.day()).map_err(DomainError::internal)?,
    )
    .map_err(DomainError::internal)
}

/// Which wall clock a list's dates are read on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DatesIn {
    /// UTC dates (the contract's).
    #[default]
    Utc,
    /// The gym's time zone (`tz=gym`).
    Gym,
}

/// Checks a required text field: trimmed, not empty, at most `max` characters.
///
/// # Errors
/// [`DomainError::Validation`] naming `field`.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String> {
    // The length is of the text as sent (what the OpenAPI document bounds), the
    // blank test that of the document's pattern; what is stored is trimmed.
    optional_text(field, Some(value), max)?;
    let v = value.trim_matches(crate::limits::is_blank);
    if v.is_empty() {
        return Err(DomainError::validation(format!("{field} must not be empty")));
    }
    Ok(v.to_owned())
}

/// Checks an IANA time zone name (`Europe/Madrid`, `UTC`) against the bundled tz
/// database, spelled as the database spells it, so that every later rule that needs
/// the gym's local time can rely on it.
///
/// # Errors
/// [`DomainError::Validation`] for a name the database does not know (naming the
/// right spelling when only the case differs).
pub fn time_zone(value: &str) -> Result<String> {
    let name = required_text("timezone", value, crate::limits::TIMEZONE_MAX)?;
    match jiff::tz::TimeZone::get(&name).ok().as_ref().and_then(jiff::tz::TimeZone::iana_name) {
        Some(known) if known == name => Ok(name),
        Some(known) => Err(DomainError::validation(format!(
            "timezone {name:?} is not an IANA time zone name; did you mean {known:?}?"
        ))),
        None => Err(DomainError::validation(format!("timezone {name:?} is not an IANA time zone name"))),
    }
}

/// Checks an optional text field: at most `max` characters.
///
/// # Errors
/// [`DomainError::Validation`] naming `field`.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(DomainError::validation(format!("{field} must be at most {max} characters")))
        }
        // PostgreSQL's text cannot hold NUL; refusing it here keeps both databases alike.
        Some(v) if v.contains('\0') => Err(DomainError::validation(format!("{field} must not contain NUL characters"))),
        other => Ok(other.map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::date;

    #[test]
    fn the_last_day_of_the_calendar_has_instants_and_dates_past_the_tz_databases_end() {
        use time::macros::datetime;
        let la = gym_zone("America/Los_Angeles").expect("zone");
        let utc = gym_zone("UTC").expect("zone");
        // jiff ends at 9999-12-30T22:00Z; the contract's dates run to 9999-12-31.
        assert_eq!(instant_in(&utc, date!(9999 - 12 - 31), Time::MIDNIGHT), Ok(datetime!(9999-12-31 0:00 UTC)));
        assert_eq!(local_date(&utc, datetime!(9999-12-31 23:59 UTC)), Ok(date!(9999 - 12 - 31)));
        assert_eq!(local_date(&la, datetime!(9999-12-31 23:59 UTC)), Ok(date!(9999 - 12 - 31)));
        let late = instant_in(&la, date!(9999 - 12 - 31), Time::MIDNIGHT).expect("an instant");
        assert_eq!(local_date(&la, late), Ok(date!(9999 - 12 - 31)));
        // Past the end in UTC: a refusal, not a failure.
        let at = Time::from_hms(20, 0, 0).expect("time");
        assert!(matches!(instant_in(&la, date!(9999 - 12 - 31), at), Err(DomainError::Validation(_))));
        let kiritimati = gym_zone("Pacific/Kiritimati").expect("zone");
        assert!(matches!(local_date(&kiritimati, datetime!(9999-12-31 20:00 UTC)), Err(DomainError::Validation(_))));
    }

    #[test]
    fn a_date_range_read_on_a_gyms_wall_clock_spans_its_local_days() {
        use time::macros::datetime;
        // 8 March 2026 is 23 hours long in New York (EST to EDT at 02:00).
        let day = DateRange::new(date!(2026 - 03 - 08), date!(2026 - 03 - 08)).expect("valid");
        assert_eq!(
            day.in_zone("America/New_York"),
            Ok((datetime!(2026-03-08 05:00 UTC), datetime!(2026-03-09 03:59:59 UTC)))
        );
        assert_eq!(day.in_zone("UTC"), Ok((day.from(), day.through())));
        assert!(matches!(day.in_zone("Mars/Olympus"), Err(DomainError::Validation(_))));
    }

    #[test]
    fn random_user_ids_are_positive_below_2_pow_53_and_differ() {
        let ids: std::collections::HashSet<i64> = (0..1000).map(|_| UserId::random().0).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|&id| (1..UserId::LIMIT).contains(&id)));
        // Not clustered at the bottom like a sequence.
        assert!(ids.iter().any(|&id| id > 1 << 50));
    }

    #[test]
    fn texts_with_nul_are_refused_as_postgresql_cannot_store_them() {
        assert!(matches!(optional_text("name", Some("a\0b"), 10), Err(DomainError::Validation(_))));
        assert!(matches!(required_text("name", "\0", 10), Err(DomainError::Validation(_))));
        assert_eq!(required_text("name", " Ana ", 10), Ok("Ana".to_owned()));
    }

    #[test]
    fn class_numbers_are_checked_by_their_types() {
        for d in [0, 601, -1, i32::MAX] {
            assert!(DurationMinutes::new(d).is_err(), "{d}");
        }
        for c in [0, 1001, -5] {
            assert!(Capacity::new(c).is_err(), "{c}");
        }
        assert_eq!(
            (DurationMinutes::new(600).map(DurationMinutes::get), Capacity::new(1).map(Capacity::get)),
            (Ok(600), Ok(1))
        );
    }

    #[test]
    fn roles_are_ordered_from_member_to_owner() {
        assert!(Role::Member < Role::Trainer);
        assert!(Role::Trainer < Role::Admin);
        assert!(Role::Admin < Role::Owner);
        assert!(!Role::Member.is_staff());
        assert!(Role::Trainer.is_staff());
    }

    #[test]
    fn page_rejects_negative_skip_and_out_of_range_limit() {
        assert!(Page::new(-1, 10).is_err());
        assert!(Page::new(0, 0).is_err());
        assert!(Page::new(0, 501).is_err());
        assert_eq!(Page::new(5, 500), Ok(Page { skip: 5, limit: 500 }));
    }

    #[test]
    fn date_range_allows_62_days_and_refuses_63() {
        assert!(DateRange::new(date!(2026 - 01 - 01), date!(2026 - 03 - 04)).is_ok());
        assert!(DateRange::new(date!(2026 - 01 - 01), date!(2026 - 03 - 05)).is_err());
        assert!(DateRange::new(date!(2026 - 01 - 02), date!(2026 - 01 - 01)).is_err());
    }

    #[test]
    fn a_range_ending_on_the_last_day_of_9999_covers_that_whole_day() {
        let last = date!(9999 - 12 - 31);
        let r = DateRange::new(last, last).expect("the last storable day is a range");
        assert_eq!(r.through(), time::macros::datetime!(9999-12-31 23:59:59 UTC));
        assert!(Timestamp::new(r.through()).is_ok(), "both bounds are storable");
    }

    #[test]
    fn a_timestamp_is_utc_whole_seconds_within_years_1_to_9999() {
        let t = Timestamp::new(time::macros::datetime!(2026-03-01 10:00:00.75 +02:00)).expect("valid");
        assert_eq!(t.get(), time::macros::datetime!(2026-03-01 08:00:00 UTC));
        for bad in [
            time::macros::datetime!(9999-12-31 23:30 -01:00),
            time::macros::datetime!(0001-01-01 00:30 +01:00),
            time::macros::datetime!(-0001-06-01 00:00 UTC),
            time::macros::datetime!(0000-06-01 00:00 UTC),
        ] {
            assert!(matches!(Timestamp::new(bad), Err(DomainError::Validation(_))), "{bad}");
        }
        let last = Timestamp::new(time::macros::datetime!(9999-12-31 23:59:59 UTC)).expect("valid");
        assert!(last.checked_add(Duration::seconds(1)).is_err());
    }

    #[test]
    fn a_range_outside_the_calendar_is_refused() {
        assert!(DateRange::new(date!(0000 - 01 - 01), date!(0000 - 01 - 02)).is_err());
        assert!(DateRange::new(date!(-0005 - 01 - 01), date!(-0005 - 01 - 02)).is_err());
        assert!(DateRange::new(date!(9999 - 12 - 30), date!(9999 - 12 - 31)).is_ok());
    }

    #[test]
    fn date_range_covers_whole_end_day() {
        let r = DateRange::new(date!(2026 - 01 - 01), date!(2026 - 01 - 01)).expect("valid");
        assert_eq!(r.through() - r.from(), Duration::days(1) - Duration::seconds(1));
    }
}

/// How a gym's front desk reads members' QR codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QrMode {
    /// The printed secret, stable until the member rotates it.
    #[default]
    Static,
    /// A time-based code of the member's key and the 30-second step: a screenshot
    /// stops working within a minute.
    Rotating,
}

impl QrMode {
    /// The wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Rotating => "rotating",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for anything but `static` and `rotating`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "static" => Ok(Self::Static),
            "rotating" => Ok(Self::Rotating),
            _ => Err(DomainError::validation("qr_mode must be \"static\" or \"rotating\"")),
        }
    }
}
