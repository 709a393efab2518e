//! The JSON shapes of the contract, and their conversion from domain types.
//! Serde lives here, not in the domain.

use domain::attendance::{CheckIn, DashboardSummary};
use domain::events::{Event, EventFields};
use domain::gyms::{Gym, MemberEntry, Membership};
use domain::schedule::{Class, ClassPatch, NewClass, NewSession, Participation, Session};
use domain::users::User;
use domain::{Role, Timestamp, UserId};
use serde::{Deserialize, Deserializer, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};
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

/// Parses RFC 3339, or a date-time without offset taken as UTC (what FastAPI
/// clients often send), into a storable [`Timestamp`] (UTC, whole seconds, years
/// 1 to 9999 once in UTC).
///
/// # Errors
/// A message for the client: not a date-time, or not storable.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    let parsed = OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let naive = time::macros::format_description!(
            version = 2,
            "[year]-[month]-[day][first [T][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
        );
        PrimitiveDateTime::parse(s, naive).ok().map(PrimitiveDateTime::assume_utc)
    });
    let t = parsed.ok_or_else(|| format!("{s:?} is not an RFC 3339 date-time"))?;
    Timestamp::new(t).map_err(|_| format!("{s:?} is outside the years 1 to 9999 in UTC"))
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
            id: c.id,
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

impl From<ClassIn> for NewClass {
    fn from(c: ClassIn) -> Self {
        Self {
            name: c.name,
            description: c.description,
            duration_minutes: c.duration_minutes,
            max_capacity: c.max_capacity,
            category: c.category,
            instructor_id: c.instructor_id.map(UserId),
        }
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

impl From<ClassPatchIn> for ClassPatch {
    fn from(c: ClassPatchIn) -> Self {
        Self {
            name: c.name,
            description: c.description,
            duration_minutes: c.duration_minutes,
            max_capacity: c.max_capacity,
            category: c.category,
            instructor_id: c.instructor_id.map(UserId),
            active: c.active,
        }
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
            id: s.id,
            gym_id: s.gym_id.0,
            class_id: s.class_id,
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
            class_id: s.class_id,
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
            id: p.id,
            session_id: p.session_id,
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
            id: e.id,
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
            session: CheckInSessionOut { id: c.session_id, start_time: c.start_time, end_time: c.end_time },
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
        domain::Page::new(self.skip.unwrap_or(0), self.limit.unwrap_or(100))
    }

    /// Missing `start_date` is today (UTC); missing `end_date` is a week after the start.
    pub fn range(&self, today: time::Date) -> Result<domain::DateRange, domain::DomainError> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let parse = |name: &str, v: &Option<String>| -> Result<Option<time::Date>, domain::DomainError> {
            v.as_deref()
                .map(|s| {
                    time::Date::parse(s, fmt)
                        .map_err(|_| domain::DomainError::validation(format!("{name} must be a date YYYY-MM-DD")))
                })
                .transpose()
        };
        let start = parse("start_date", &self.start_date)?.unwrap_or(today);
        let end = match parse("end_date", &self.end_date)? {
            Some(d) => d,
            None => start.checked_add(time::Duration::days(7)).unwrap_or(start),
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
