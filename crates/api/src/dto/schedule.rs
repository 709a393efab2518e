//! §4 "Schedule": classes, sessions and participations.

use domain::schedule::{Class, ClassPatch, NewClass, NewSession, Participation, Session};
use domain::values::{Capacity, DurationMinutes};
use domain::{ClassId, DomainError, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::times::UtcTime;

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

#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    pub id: i64,
    pub gym_id: i64,
    pub class_id: i64,
    pub start_time: UtcTime,
    pub end_time: UtcTime,
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
            start_time: s.start_time.into(),
            end_time: s.end_time.into(),
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

#[derive(Serialize, ToSchema)]
pub struct ParticipationOut {
    pub id: i64,
    pub session_id: i64,
    pub member_id: i64,
    pub gym_id: i64,
    pub status: &'static str,
    pub attendance_time: Option<UtcTime>,
    pub created_at: UtcTime,
}

impl From<Participation> for ParticipationOut {
    fn from(p: Participation) -> Self {
        Self {
            id: p.id.0,
            session_id: p.session_id.0,
            member_id: p.member_id.0,
            gym_id: p.gym_id.0,
            status: p.status.as_str(),
            attendance_time: p.attendance_time.map(UtcTime::from),
            created_at: p.created_at.into(),
        }
    }
}
