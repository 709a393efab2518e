//! Rows as read from SQL, and their conversion into domain entities.

use domain::events::Event;
use domain::gyms::{Gym, MemberEntry, Membership};
use domain::schedule::{Class, Participation, ParticipationStatus, Session, SessionStatus};
use domain::users::User;
use domain::{ClassId, DomainError, EventId, GymId, ParticipationId, Role, SessionId, Timestamp, UserId};
use sea_orm::{DbErr, FromQueryResult, QueryResult};
use time::OffsetDateTime;

pub const USER_COLS: &str = "id, auth0_id, email, name, phone, created_at, updated_at";
pub const GYM_COLS: &str = "id, name, timezone, address, created_at";
pub const CLASS_COLS: &str =
    "id, gym_id, name, description, duration_minutes, max_capacity, category, instructor_id, active";
pub const SESSION_COLS: &str =
    "id, gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, registered_count";
pub const PARTICIPATION_COLS: &str = "id, session_id, member_id, gym_id, status, attendance_time, created_at";
pub const EVENT_COLS: &str =
    "id, gym_id, title, description, start_time, end_time, location, max_participants, created_by, created_at";

fn corrupt(what: &str, value: &str) -> DomainError {
    DomainError::internal(format!("stored {what} {value:?} is not known"))
}

pub fn role(s: &str) -> Result<Role, DomainError> {
    Role::parse(s).map_err(|_| corrupt("role", s))
}

pub fn participation_status(s: &str) -> Result<ParticipationStatus, DomainError> {
    ParticipationStatus::parse(s).ok_or_else(|| corrupt("participation status", s))
}

pub fn session_status(s: &str) -> Result<SessionStatus, DomainError> {
    SessionStatus::parse(s).ok_or_else(|| corrupt("session status", s))
}

#[derive(Debug, FromQueryResult)]
pub struct UserRow {
    pub id: i64,
    pub auth0_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(r.id),
            auth0_id: r.auth0_id,
            email: r.email,
            name: r.name,
            phone: r.phone,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, FromQueryResult)]
pub struct GymRow {
    pub id: i64,
    pub name: String,
    pub timezone: String,
    pub address: Option<String>,
    pub created_at: OffsetDateTime,
}

impl From<GymRow> for Gym {
    fn from(r: GymRow) -> Self {
        Gym { id: GymId(r.id), name: r.name, timezone: r.timezone, address: r.address, created_at: r.created_at }
    }
}

/// A gym and the caller's role there: the gym's columns plus `role`.
#[derive(Debug)]
pub struct GymRoleRow {
    pub gym: GymRow,
    pub role: String,
}

impl FromQueryResult for GymRoleRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self { gym: GymRow::from_query_result(res, pre)?, role: res.try_get(pre, "role")? })
    }
}

impl GymRoleRow {
    pub fn into_domain(self) -> Result<(Gym, Role), DomainError> {
        Ok((self.gym.into(), role(&self.role)?))
    }
}

#[derive(Debug, FromQueryResult)]
pub struct MembershipRow {
    pub user_id: i64,
    pub gym_id: i64,
    pub role: String,
    pub joined_at: OffsetDateTime,
}

impl MembershipRow {
    pub fn into_domain(self) -> Result<Membership, DomainError> {
        Ok(Membership {
            user_id: UserId(self.user_id),
            gym_id: GymId(self.gym_id),
            role: role(&self.role)?,
            joined_at: self.joined_at,
        })
    }
}

/// A member as listed: the user's columns plus `role` and `joined_at`.
#[derive(Debug)]
pub struct MemberRow {
    pub user: UserRow,
    pub role: String,
    pub joined_at: OffsetDateTime,
}

impl FromQueryResult for MemberRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            user: UserRow::from_query_result(res, pre)?,
            role: res.try_get(pre, "role")?,
            joined_at: res.try_get(pre, "joined_at")?,
        })
    }
}

impl MemberRow {
    pub fn into_domain(self) -> Result<MemberEntry, DomainError> {
        Ok(MemberEntry { user: self.user.into(), role: role(&self.role)?, joined_at: self.joined_at })
    }
}

#[derive(Debug, FromQueryResult)]
pub struct ClassRow {
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

impl From<ClassRow> for Class {
    fn from(r: ClassRow) -> Self {
        Class {
            id: ClassId(r.id),
            gym_id: GymId(r.gym_id),
            name: r.name,
            description: r.description,
            duration_minutes: r.duration_minutes,
            max_capacity: r.max_capacity,
            category: r.category,
            instructor_id: r.instructor_id.map(UserId),
            active: r.active,
        }
    }
}

#[derive(Debug, FromQueryResult)]
pub struct SessionRow {
    pub id: i64,
    pub gym_id: i64,
    pub class_id: i64,
    pub start_time: OffsetDateTime,
    pub end_time: OffsetDateTime,
    pub status: String,
    pub trainer_id: Option<i64>,
    pub room: Option<String>,
    pub capacity: i32,
    pub registered_count: i32,
}

impl SessionRow {
    pub fn into_domain(self) -> Result<Session, DomainError> {
        Ok(Session {
            id: SessionId(self.id),
            gym_id: GymId(self.gym_id),
            class_id: ClassId(self.class_id),
            start_time: self.start_time,
            end_time: self.end_time,
            status: session_status(&self.status)?,
            trainer_id: self.trainer_id.map(UserId),
            room: self.room,
            capacity: self.capacity,
            registered_count: self.registered_count,
        })
    }
}

#[derive(Debug, FromQueryResult)]
pub struct ParticipationRow {
    pub id: i64,
    pub session_id: i64,
    pub member_id: i64,
    pub gym_id: i64,
    pub status: String,
    pub attendance_time: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl ParticipationRow {
    pub fn into_domain(self) -> Result<Participation, DomainError> {
        Ok(Participation {
            id: ParticipationId(self.id),
            session_id: SessionId(self.session_id),
            member_id: UserId(self.member_id),
            gym_id: GymId(self.gym_id),
            status: participation_status(&self.status)?,
            attendance_time: self.attendance_time,
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, FromQueryResult)]
pub struct EventRow {
    pub id: i64,
    pub gym_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub start_time: OffsetDateTime,
    pub end_time: OffsetDateTime,
    pub location: Option<String>,
    pub max_participants: Option<i32>,
    pub created_by: Option<i64>,
    pub created_at: OffsetDateTime,
}

impl EventRow {
    pub fn into_domain(self) -> Result<Event, DomainError> {
        let r = self;
        Ok(Event {
            id: EventId(r.id),
            gym_id: GymId(r.gym_id),
            title: r.title,
            description: r.description,
            start_time: stored(r.start_time)?,
            end_time: stored(r.end_time)?,
            location: r.location,
            max_participants: r.max_participants,
            created_by: r.created_by.map(UserId),
            created_at: r.created_at,
        })
    }
}

/// A stored time: always within [`Timestamp`]'s range, since only those are written.
fn stored(t: OffsetDateTime) -> Result<Timestamp, DomainError> {
    Timestamp::new(t).map_err(|_| DomainError::internal(format!("stored time {t} is out of range")))
}

/// Converts every row, stopping at the first one that does not convert.
pub fn convert<R, T>(rows: Vec<R>, f: impl Fn(R) -> Result<T, DomainError>) -> Result<Vec<T>, DomainError> {
    rows.into_iter().map(f).collect()
}
