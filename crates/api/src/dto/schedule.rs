//! §4 "Schedule": classes, sessions and participations.

use domain::schedule::{Class, ClassPatch, NewClass, NewSession, Participation, Session};
use domain::values::{Capacity, DurationMinutes};
use domain::{ClassId, DomainError, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::times::UtcTime;
use super::wire::response;

response! {
    /// `Class`.
    #[derive(Deserialize)]
    ClassOut from Class {
        id: i64, gym_id: i64, name: String, description: Option<String>, duration_minutes: i32, max_capacity: i32,
        category: Option<String>, instructor_id: Option<i64>, active: bool,
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
    type Error = DomainError;

    fn try_from(c: ClassIn) -> Result<Self, Self::Error> {
        Ok(Self {
            name: c.name,
            description: c.description,
            duration_minutes: DurationMinutes::new(c.duration_minutes)?,
            max_capacity: Capacity::new(c.max_capacity)?,
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
    type Error = DomainError;

    fn try_from(c: ClassPatchIn) -> Result<Self, Self::Error> {
        Ok(Self {
            name: c.name,
            description: c.description,
            duration_minutes: c.duration_minutes.map(DurationMinutes::new).transpose()?,
            max_capacity: c.max_capacity.map(Capacity::new).transpose()?,
            category: c.category,
            instructor_id: c.instructor_id.map(UserId),
            active: c.active,
        })
    }
}

response! {
    /// `Session`.
    SessionOut from Session {
        id: i64, gym_id: i64, class_id: i64, start_time: UtcTime, end_time: UtcTime, status: &'static str,
        trainer_id: Option<i64>, room: Option<String>, capacity: i32, registered_count: i32,
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SessionIn {
    pub class_id: i64,
    pub start_time: UtcTime,
    pub end_time: Option<UtcTime>,
    pub trainer_id: Option<i64>,
    pub room: Option<String>,
}

impl TryFrom<SessionIn> for NewSession {
    type Error = DomainError;

    fn try_from(s: SessionIn) -> Result<Self, Self::Error> {
        Ok(Self {
            class_id: ClassId(s.class_id),
            start_time: s.start_time.storable()?,
            end_time: s.end_time.map(UtcTime::storable).transpose()?,
            trainer_id: s.trainer_id.map(UserId),
            room: s.room,
        })
    }
}

/// `POST /schedule/sessions/{id}/register`'s optional body.
#[derive(Deserialize, ToSchema, Default)]
pub struct RegisterIn {
    /// Join the waitlist when the session is full (ignored when it has room).
    #[serde(default)]
    pub waitlist: bool,
}

/// `POST /schedule/sessions/{id}/register`'s query: `dry_run=true` decides and
/// changes nothing.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegisterQueryIn {
    /// Answer what the booking would do (`200 {ok, code, pass_id}`), and book nothing.
    pub dry_run: Option<bool>,
}

/// What a booking would do (`dry_run=true`).
#[derive(serde::Serialize, ToSchema)]
pub struct DryRunOut {
    /// Whether the booking would be made (a place, or a place in the waitlist).
    pub ok: bool,
    /// The refusal's code when it would not (`session_full`, `no_valid_pass`, …).
    pub code: Option<&'static str>,
    /// The pass it would use (a gym that requires passes, and a place rather than
    /// the waitlist).
    pub pass_id: Option<i64>,
}

/// A booking: the participation, with its place in the queue when `waitlisted`.
#[derive(serde::Serialize, ToSchema)]
pub struct BookingOut {
    #[serde(flatten)]
    pub participation: ParticipationOut,
    /// 1 for the head of the queue; absent when registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waitlist_position: Option<i64>,
}

impl From<domain::schedule::Booking> for BookingOut {
    fn from(b: domain::schedule::Booking) -> Self {
        Self { participation: b.participation.into(), waitlist_position: b.waitlist_position }
    }
}

/// A waitlist entry as staff see it: the participation and its place in the queue.
#[derive(serde::Serialize, ToSchema)]
pub struct WaitlistEntryOut {
    #[serde(flatten)]
    pub participation: ParticipationOut,
    pub waitlist_position: i64,
}

response! {
    /// `Participation`.
    ParticipationOut from Participation {
        id: i64, session_id: i64, member_id: i64, gym_id: i64, status: &'static str,
        attendance_time: Option<UtcTime>, created_at: UtcTime, pass_id: Option<i64>,
    }
}

/// `POST /schedule/classes/{id}/recurrences`.
#[derive(Deserialize, ToSchema)]
pub struct RecurrenceIn {
    /// ISO weekdays: 1 = Monday … 7 = Sunday.
    pub weekdays: Vec<i64>,
    /// The local wall-clock start in the gym's zone, `"HH:MM"`.
    #[schema(example = "09:00")]
    pub local_start_time: String,
    /// The first date, `YYYY-MM-DD` (inclusive).
    pub starts_on: String,
    /// The last date, `YYYY-MM-DD` (inclusive), at most 366 days after `starts_on`.
    pub until: String,
    pub trainer_id: Option<i64>,
    pub room: Option<String>,
}

impl TryFrom<RecurrenceIn> for domain::recurrences::NewRecurrence {
    type Error = DomainError;

    fn try_from(r: RecurrenceIn) -> Result<Self, Self::Error> {
        let weekdays = r
            .weekdays
            .iter()
            .map(|d| u8::try_from(*d).ok().filter(|d| (1..=7).contains(d)))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| DomainError::validation("weekdays must be ISO weekdays, 1 (Monday) to 7 (Sunday)"))?;
        let hhmm = time::macros::format_description!("[hour]:[minute]");
        let local_start_time = (r.local_start_time.len() == 5)
            .then(|| time::Time::parse(&r.local_start_time, hhmm).ok())
            .flatten()
            .ok_or_else(|| DomainError::validation("local_start_time must be a local time HH:MM"))?;
        Ok(Self {
            weekdays,
            local_start_time,
            starts_on: super::parse_date("starts_on", &r.starts_on)?,
            until: super::parse_date("until", &r.until)?,
            trainer_id: r.trainer_id.map(UserId),
            room: r.room,
        })
    }
}

/// A series of sessions.
#[derive(serde::Serialize, ToSchema)]
pub struct RecurrenceOut {
    pub id: i64,
    pub class_id: i64,
    pub weekdays: Vec<u8>,
    /// `"HH:MM"`, in `timezone`.
    pub local_start_time: String,
    /// `YYYY-MM-DD`.
    pub starts_on: String,
    /// `YYYY-MM-DD`.
    pub until: String,
    /// The gym's IANA zone when the series was made.
    pub timezone: String,
    pub trainer_id: Option<i64>,
    pub room: Option<String>,
    pub stopped_at: Option<UtcTime>,
    pub created_at: UtcTime,
    /// Its sessions that still exist, by start.
    pub session_ids: Vec<i64>,
}

impl From<domain::recurrences::Recurrence> for RecurrenceOut {
    fn from(r: domain::recurrences::Recurrence) -> Self {
        let day = time::macros::format_description!("[year]-[month]-[day]");
        let hhmm = time::macros::format_description!("[hour]:[minute]");
        let asked = r.asked;
        Self {
            id: r.id.0,
            class_id: r.class_id.0,
            weekdays: asked.weekdays,
            local_start_time: asked.local_start_time.format(hhmm).unwrap_or_default(),
            starts_on: asked.starts_on.format(day).unwrap_or_default(),
            until: asked.until.format(day).unwrap_or_default(),
            timezone: asked.timezone,
            trainer_id: asked.trainer_id.map(|u| u.0),
            room: asked.room,
            stopped_at: r.stopped_at.map(UtcTime::from),
            created_at: r.created_at.into(),
            session_ids: r.session_ids.into_iter().map(|s| s.0).collect(),
        }
    }
}
