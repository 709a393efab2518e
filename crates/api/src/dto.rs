//! The JSON shapes of the contract, and their conversion from domain types.
//! Serde lives here, not in the domain.

use domain::attendance::{CheckIn, DashboardSummary};
use domain::events::{Event, EventFields};
use domain::gyms::{Gym, MemberEntry, Membership};
use domain::schedule::{Class, ClassPatch, NewClass, NewSession, Participation, Session};
use domain::users::User;
use domain::{ClassId, Role, Timestamp, UserId};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

/// RFC 3339 in UTC with `Z`, as every response time.
pub mod utc {
    use serde::Serializer;
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t.to_offset(UtcOffset::UTC).format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub mod option {
        use serde::Serializer;
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}

/// A calendar date of the years 1 to 9999, leap days included only in leap years,
/// as a regular expression that means the same in Rust, Python and JavaScript: the
/// server accepts exactly what the OpenAPI document's pattern admits.
const DATE_RE: &str = concat!(
    "(?:(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-",
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29)"
);
/// RFC 3339 time of day with seconds (up to nanoseconds) and its offset.
const TIME_RE: &str =
    "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";

/// The anchored pattern of request date-times (published in the OpenAPI document).
pub fn date_time_pattern() -> String {
    format!("^{DATE_RE}{TIME_RE}$")
}

/// The anchored pattern of request dates (published in the OpenAPI document).
pub fn date_pattern() -> String {
    format!("^{DATE_RE}$")
}

static DATE_TIME: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(&date_time_pattern()).ok());
static DATE: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(&date_pattern()).ok());

/// Parses a request date-time ([`date_time_pattern`]) into a storable [`Timestamp`]
/// (UTC, whole seconds, years 1 to 9999 once in UTC).
///
/// # Errors
/// A message for the client: not a date-time, or not storable.
pub fn parse_time(s: &str) -> Result<Timestamp, TimeError> {
    let not_a_time = || TimeError::NotRfc3339(s.to_owned());
    if !DATE_TIME.as_ref().is_some_and(|re| re.is_match(s)) {
        return Err(not_a_time());
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| not_a_time())?;
    Timestamp::new(t).map_err(|_| TimeError::OutOfRange(s.to_owned()))
}

/// Why a request date-time was refused (the message a client reads).
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// Not of the published pattern.
    #[error("{0:?} is not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.f][Z|+HH:MM])")]
    NotRfc3339(String),
    /// Not within the years 1 to 9999 once in UTC.
    #[error("{0:?} is outside the years 1 to 9999 in UTC")]
    OutOfRange(String),
}

/// Parses a request date ([`date_pattern`]).
///
/// # Errors
/// A message naming the parameter.
pub fn parse_date(name: &str, s: &str) -> Result<time::Date, domain::DomainError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    DATE.as_ref()
        .filter(|re| re.is_match(s))
        .and_then(|_| time::Date::parse(s, fmt).ok())
        .ok_or_else(|| domain::DomainError::validation(format!("{name} must be a date YYYY-MM-DD")))
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let s = String::deserialize(d)?;
    parse_time(&s).map_err(serde::de::Error::custom)
}

fn de_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_time(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

fn de_role<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    let s = String::deserialize(d)?;
    Role::parse(&s).map_err(|e| serde::de::Error::custom(e.to_string()))
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub auth0_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id.0,
            auth0_id: u.auth0_id,
            email: u.email,
            name: u.name,
            phone: u.phone,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ProfileIn {
    pub name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GymOut {
    pub id: i64,
    pub name: String,
    pub timezone: String,
    pub address: Option<String>,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Gym> for GymOut {
    fn from(g: Gym) -> Self {
        Self { id: g.id.0, name: g.name, timezone: g.timezone, address: g.address, created_at: g.created_at }
    }
}

#[derive(Serialize, ToSchema)]
pub struct GymWithRoleOut {
    pub gym: GymOut,
    pub role: &'static str,
}

#[derive(Deserialize, ToSchema)]
pub struct GymIn {
    pub name: String,
    pub timezone: Option<String>,
    pub address: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    pub user: UserOut,
    pub role: &'static str,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: OffsetDateTime,
}

impl From<MemberEntry> for MemberOut {
    fn from(m: MemberEntry) -> Self {
        Self { user: m.user.into(), role: m.role.as_str(), joined_at: m.joined_at }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MembershipOut {
    pub user_id: i64,
    pub gym_id: i64,
    pub role: &'static str,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: OffsetDateTime,
}

impl From<Membership> for MembershipOut {
    fn from(m: Membership) -> Self {
        Self { user_id: m.user_id.0, gym_id: m.gym_id.0, role: m.role.as_str(), joined_at: m.joined_at }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct MemberIn {
    pub user_id: i64,
    #[serde(deserialize_with = "de_role")]
    #[schema(value_type = String, example = "member")]
    pub role: Role,
}

#[derive(Deserialize, ToSchema)]
pub struct RoleIn {
    #[serde(deserialize_with = "de_role")]
    #[schema(value_type = String, example = "member")]
    pub role: Role,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClassOut {
    pub id: i64,
    pub gym_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub duration_minutes: i32,
    pub max_capacity: i32,
    pub category: Option<String>,
    pub instructor_id: Option<i64>,
    pub active: bool,
}

impl From<Class> for ClassOut {
    fn from(c: Class) -> Self {
        Self {
            id: c.id.0,
            gym_id: c.gym_id.0,
            name: c.name,
            description: c.description,
            duration_minutes: c.duration_minutes,
            max_capacity: c.max_capacity,
            category: c.category,
            instructor_id: c.instructor_id.map(|u| u.0),
            active: c.active,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ClassIn {
    pub name: String,
    pub description: Option<String>,
    pub duration_minutes: i32,
    pub max_capacity: i32,
    pub category: Option<String>,
    pub instructor_id: Option<i64>,
}

impl TryFrom<ClassIn> for NewClass {
    type Error = domain::DomainError;

    fn try_from(c: ClassIn) -> Result<Self, Self::Error> {
        Ok(Self {
            name: c.name,
            description: c.description,
            duration_minutes: domain::values::DurationMinutes::new(c.duration_minutes)?,
            max_capacity: domain::values::Capacity::new(c.max_capacity)?,
            category: c.category,
            instructor_id: c.instructor_id.map(UserId),
        })
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ClassPatchIn {
    pub name: Option<String>,
    pub description: Option<String>,
    pub duration_minutes: Option<i32>,
    pub max_capacity: Option<i32>,
    pub category: Option<String>,
    pub instructor_id: Option<i64>,
    pub active: Option<bool>,
}

impl TryFrom<ClassPatchIn> for ClassPatch {
    type Error = domain::DomainError;

    fn try_from(c: ClassPatchIn) -> Result<Self, Self::Error> {
        Ok(Self {
            name: c.name,
            description: c.description,
            duration_minutes: c.duration_minutes.map(domain::values::DurationMinutes::new).transpose()?,
            max_capacity: c.max_capacity.map(domain::values::Capacity::new).transpose()?,
            category: c.category,
            instructor_id: c.instructor_id.map(UserId),
            active: c.active,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    pub id: i64,
    pub gym_id: i64,
    pub class_id: i64,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: OffsetDateTime,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub end_time: OffsetDateTime,
    pub status: &'static str,
    pub trainer_id: Option<i64>,
    pub room: Option<String>,
    pub capacity: i32,
    pub registered_count: i32,
}

impl From<Session> for SessionOut {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.0,
            gym_id: s.gym_id.0,
            class_id: s.class_id.0,
            start_time: s.start_time,
            end_time: s.end_time,
            status: s.status.as_str(),
            trainer_id: s.trainer_id.map(|u| u.0),
            room: s.room,
            capacity: s.capacity,
            registered_count: s.registered_count,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SessionIn {
    pub class_id: i64,
    #[serde(deserialize_with = "de_time")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: Timestamp,
    #[serde(default, deserialize_with = "de_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_time: Option<Timestamp>,
    pub trainer_id: Option<i64>,
    pub room: Option<String>,
}

impl From<SessionIn> for NewSession {
    fn from(s: SessionIn) -> Self {
        Self {
            class_id: ClassId(s.class_id),
            start_time: s.start_time,
            end_time: s.end_time,
            trainer_id: s.trainer_id.map(UserId),
            room: s.room,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ParticipationOut {
    pub id: i64,
    pub session_id: i64,
    pub member_id: i64,
    pub gym_id: i64,
    pub status: &'static str,
    #[serde(with = "utc::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub attendance_time: Option<OffsetDateTime>,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Participation> for ParticipationOut {
    fn from(p: Participation) -> Self {
        Self {
            id: p.id.0,
            session_id: p.session_id.0,
            member_id: p.member_id.0,
            gym_id: p.gym_id.0,
            status: p.status.as_str(),
            attendance_time: p.attendance_time,
            created_at: p.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventOut {
    pub id: i64,
    pub gym_id: i64,
    pub title: String,
    pub description: Option<String>,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: OffsetDateTime,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub end_time: OffsetDateTime,
    pub location: Option<String>,
    pub max_participants: Option<i32>,
    pub created_by: Option<i64>,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Event> for EventOut {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.0,
            gym_id: e.gym_id.0,
            title: e.title,
            description: e.description,
            start_time: e.start_time.get(),
            end_time: e.end_time.get(),
            location: e.location,
            max_participants: e.max_participants,
            created_by: e.created_by.map(|u| u.0),
            created_at: e.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EventIn {
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "de_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_time: Option<Timestamp>,
    pub location: Option<String>,
    pub max_participants: Option<i32>,
}

/// `POST /events`: the fields an event must have.
#[derive(Deserialize, ToSchema)]
pub struct EventNewIn {
    pub title: String,
    pub description: Option<String>,
    #[serde(deserialize_with = "de_time")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: Timestamp,
    #[serde(deserialize_with = "de_time")]
    #[schema(value_type = String, format = DateTime)]
    pub end_time: Timestamp,
    pub location: Option<String>,
    pub max_participants: Option<i32>,
}

impl From<EventNewIn> for EventFields {
    fn from(e: EventNewIn) -> Self {
        Self {
            title: Some(e.title),
            description: e.description,
            start_time: Some(e.start_time),
            end_time: Some(e.end_time),
            location: e.location,
            max_participants: e.max_participants,
        }
    }
}

impl From<EventIn> for EventFields {
    fn from(e: EventIn) -> Self {
        Self {
            title: e.title,
            description: e.description,
            start_time: e.start_time,
            end_time: e.end_time,
            location: e.location,
            max_participants: e.max_participants,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QrOut {
    pub user_id: i64,
    pub qr_code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CheckInIn {
    pub qr_code: String,
    pub session_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckInSessionOut {
    pub id: i64,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: OffsetDateTime,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub end_time: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct CheckInOut {
    pub success: bool,
    pub message: &'static str,
    pub session: CheckInSessionOut,
    pub user_id: i64,
    pub new_participation: bool,
}

impl CheckInOut {
    pub fn new(c: CheckIn, message: &'static str) -> Self {
        Self {
            success: true,
            message,
            session: CheckInSessionOut { id: c.session_id.0, start_time: c.start_time, end_time: c.end_time },
            user_id: c.user_id.0,
            new_participation: c.new_participation,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LastAttendanceOut {
    #[serde(with = "utc::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_attendance: Option<OffsetDateTime>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryItemOut {
    pub session: SessionOut,
    #[serde(with = "utc")]
    #[schema(value_type = String, format = DateTime)]
    pub attendance_time: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct DashboardOut {
    pub total_attendances: i64,
    pub attendances_last_30_days: i64,
    #[serde(with = "utc::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_attendance: Option<OffsetDateTime>,
    pub upcoming_registrations: Vec<SessionOut>,
}

impl From<DashboardSummary> for DashboardOut {
    fn from(d: DashboardSummary) -> Self {
        Self {
            total_attendances: d.total_attendances,
            attendances_last_30_days: d.attendances_last_30_days,
            last_attendance: d.last_attendance,
            upcoming_registrations: d.upcoming_registrations.into_iter().map(SessionOut::from).collect(),
        }
    }
}

/// `skip` and `limit` of list routes, validated by [`domain::Page`].
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageIn {
    pub skip: Option<i64>,
    pub limit: Option<i64>,
}

impl PageIn {
    pub fn page(&self) -> Result<domain::Page, domain::DomainError> {
        domain::Page::new(self.skip.unwrap_or(0), self.limit.unwrap_or(100))
    }
}

/// `start_date` / `end_date` of range routes, with `skip` and `limit`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DateRangeIn {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub skip: Option<i64>,
    pub limit: Option<i64>,
}

impl DateRangeIn {
    pub fn page(&self) -> Result<domain::Page, domain::DomainError> {
        PageIn { skip: self.skip, limit: self.limit }.page()
    }

    /// Missing both: today (UTC) and the week after; only a start: that week; only
    /// an end: the week up to it.
    pub fn range(&self, today: time::Date) -> Result<domain::DateRange, domain::DomainError> {
        let parse = |name: &str, v: &Option<String>| v.as_deref().map(|s| parse_date(name, s)).transpose();
        let week = time::Duration::days(7);
        let (start, end) = match (parse("start_date", &self.start_date)?, parse("end_date", &self.end_date)?) {
            (Some(s), Some(e)) => (s, e),
            (Some(s), None) => (s, s.checked_add(week).unwrap_or(s)),
            // Only an end: the week up to it, so any single date is a valid range.
            (None, Some(e)) => (e.checked_sub(week).filter(|d| d.year() >= 1).unwrap_or(e), e),
            (None, None) => (today, today.checked_add(week).unwrap_or(today)),
        };
        domain::DateRange::new(start, end)
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    pub role: Option<String>,
    pub skip: Option<i64>,
    pub limit: Option<i64>,
}

/// The error body of every failure.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable message (English, or Spanish with `Accept-Language: es`).
    pub detail: String,
    /// Stable snake_case code.
    pub code: String,
}

/// `X-Gym-ID`: the gym a scoped route acts in (documentation only: the tenant
/// extractor reads the header).
#[derive(IntoParams)]
#[into_params(names("X-Gym-ID"), parameter_in = Header)]
pub struct GymHeader(
    /// A positive integer.
    pub i64,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_date_time_pattern_admits_parses_and_the_rest_does_not() {
        for ok in [
            "2026-01-31T10:00:00Z",
            "2024-02-29T23:59:59.123456789+05:30",
            "2000-02-29T00:00:00-23:59",
            "0004-02-29T00:00:00Z",
            "0001-01-01T12:00:00+00:00",
            "9999-12-31T23:59:59.5Z",
            "2026-04-30T00:00:00.1-00:00",
        ] {
            assert!(parse_time(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2026-02-29T10:00:00Z",
            "1900-02-29T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "0000-06-01T00:00:00Z",
            "2026-01-01 10:00:00Z",
            "2026-01-01T10:00Z",
            "2026-01-01t10:00:00z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T10:00:60Z",
            "2026-01-01T10:00:00.1234567890Z",
            "2026-01-01T10:00:00",
            "2026-01-01T10:00:00+24:00",
            "+2026-01-01T10:00:00Z",
            "２０２６-01-01T10:00:00Z",
            "9999-12-31T23:30:00-01:00",
            "0001-01-01T00:30:00+01:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn what_the_date_pattern_admits_parses_and_the_rest_does_not() {
        for ok in ["2026-01-31", "2024-02-29", "0001-01-01", "9999-12-31"] {
            assert!(parse_date("d", ok).is_ok(), "{ok}");
        }
        for bad in ["", "2026-02-29", "0000-01-01", "2026-1-1", "-0001-01-01", "10000-01-01", "2026-13-01"] {
            assert!(parse_date("d", bad).is_err(), "{bad:?}");
        }
    }
}
