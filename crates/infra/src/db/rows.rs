//! Rows as read from SQL, and their conversion into domain entities.

use domain::events::Event;
use domain::gyms::{Gym, MemberEntry, Membership};
use domain::schedule::{
    BookingWindow, Class, Participation, ParticipationStatus, Session, SessionStatus, WaitlistRules,
};
use domain::users::User;
use domain::{ClassId, DomainError, EventId, GymId, ParticipationId, Role, SessionId, Timestamp, UserId};
use sea_orm::{DbErr, QueryResult};
use time::OffsetDateTime;

pub const USER_COLS: &str = "id, auth0_id, email, name, phone, created_at, updated_at";
pub const GYM_COLS: &str = "id, name, timezone, address, created_at, booking_opens_hours, booking_closes_minutes, \
                            waitlist_cutoff_minutes, max_waitlists_per_member, qr_mode, occupancy_window_minutes, \
                            booking_requires_pass, cancel_cutoff_minutes";
pub const CLASS_COLS: &str =
    "id, gym_id, name, description, duration_minutes, max_capacity, category, instructor_id, active";
pub const SESSION_COLS: &str =
    "id, gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, registered_count";
pub const PARTICIPATION_COLS: &str = "id, session_id, member_id, gym_id, status, attendance_time, created_at, pass_id";
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

/// A domain entity read straight from the columns of one row (its `*_COLS`), so no
/// row struct repeats the entity's fields. A stored value the domain does not know
/// (a status, a role, a time out of range) is a type error, which callers report as
/// an internal error.
pub trait FromColumns: Sized {
    /// Reads the entity from the columns named with prefix `pre`.
    ///
    /// # Errors
    /// A missing column, or a stored value of the wrong type or unknown to the domain.
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr>;
}

fn known<T>(parsed: Result<T, DomainError>) -> Result<T, DbErr> {
    parsed.map_err(|e| DbErr::Type(e.to_string()))
}

impl FromColumns for User {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(User {
            id: UserId(r.try_get(pre, "id")?),
            auth0_id: r.try_get(pre, "auth0_id")?,
            email: r.try_get(pre, "email")?,
            name: r.try_get(pre, "name")?,
            phone: r.try_get(pre, "phone")?,
            created_at: r.try_get(pre, "created_at")?,
            updated_at: r.try_get(pre, "updated_at")?,
        })
    }
}

impl FromColumns for Gym {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Gym {
            id: GymId(r.try_get(pre, "id")?),
            name: r.try_get(pre, "name")?,
            timezone: r.try_get(pre, "timezone")?,
            address: r.try_get(pre, "address")?,
            created_at: r.try_get(pre, "created_at")?,
            booking: booking_window(r, pre)?,
            waitlist: waitlist_rules(r, pre)?,
            qr_mode: known(domain::values::QrMode::parse(&r.try_get::<String>(pre, "qr_mode")?))?,
            occupancy_window_minutes: r.try_get(pre, "occupancy_window_minutes")?,
            booking_requires_pass: r.try_get(pre, "booking_requires_pass")?,
            cancel_cutoff_minutes: r.try_get(pre, "cancel_cutoff_minutes")?,
        })
    }
}

/// The gym's booking window from its two columns.
pub fn booking_window(r: &QueryResult, pre: &str) -> Result<BookingWindow, DbErr> {
    known(BookingWindow::new(r.try_get(pre, "booking_opens_hours")?, r.try_get(pre, "booking_closes_minutes")?))
}

/// The gym's waitlist rules from their two columns.
pub fn waitlist_rules(r: &QueryResult, pre: &str) -> Result<WaitlistRules, DbErr> {
    known(WaitlistRules::new(r.try_get(pre, "waitlist_cutoff_minutes")?, r.try_get(pre, "max_waitlists_per_member")?))
}

/// A gym and the caller's role there: the gym's columns plus `role`.
impl FromColumns for (Gym, Role) {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok((Gym::read(r, pre)?, known(role(&r.try_get::<String>(pre, "role")?))?))
    }
}

impl FromColumns for Membership {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Membership {
            user_id: UserId(r.try_get(pre, "user_id")?),
            gym_id: GymId(r.try_get(pre, "gym_id")?),
            role: known(role(&r.try_get::<String>(pre, "role")?))?,
            joined_at: r.try_get(pre, "joined_at")?,
        })
    }
}

/// A member as listed: the user's columns plus `role` and `joined_at`.
impl FromColumns for MemberEntry {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(MemberEntry {
            user: User::read(r, pre)?,
            role: known(role(&r.try_get::<String>(pre, "role")?))?,
            joined_at: r.try_get(pre, "joined_at")?,
        })
    }
}

impl FromColumns for Class {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Class {
            id: ClassId(r.try_get(pre, "id")?),
            gym_id: GymId(r.try_get(pre, "gym_id")?),
            name: r.try_get(pre, "name")?,
            description: r.try_get(pre, "description")?,
            duration_minutes: r.try_get(pre, "duration_minutes")?,
            max_capacity: r.try_get(pre, "max_capacity")?,
            category: r.try_get(pre, "category")?,
            instructor_id: r.try_get::<Option<i64>>(pre, "instructor_id")?.map(UserId),
            active: r.try_get(pre, "active")?,
        })
    }
}

impl FromColumns for Session {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Session {
            id: SessionId(r.try_get(pre, "id")?),
            gym_id: GymId(r.try_get(pre, "gym_id")?),
            class_id: ClassId(r.try_get(pre, "class_id")?),
            start_time: r.try_get(pre, "start_time")?,
            end_time: r.try_get(pre, "end_time")?,
            status: known(session_status(&r.try_get::<String>(pre, "status")?))?,
            trainer_id: r.try_get::<Option<i64>>(pre, "trainer_id")?.map(UserId),
            room: r.try_get(pre, "room")?,
            capacity: r.try_get(pre, "capacity")?,
            registered_count: r.try_get(pre, "registered_count")?,
        })
    }
}

impl FromColumns for Participation {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Participation {
            id: ParticipationId(r.try_get(pre, "id")?),
            session_id: SessionId(r.try_get(pre, "session_id")?),
            member_id: UserId(r.try_get(pre, "member_id")?),
            gym_id: GymId(r.try_get(pre, "gym_id")?),
            status: known(participation_status(&r.try_get::<String>(pre, "status")?))?,
            attendance_time: r.try_get(pre, "attendance_time")?,
            created_at: r.try_get(pre, "created_at")?,
            pass_id: r.try_get(pre, "pass_id")?,
        })
    }
}

impl FromColumns for Event {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Event {
            id: EventId(r.try_get(pre, "id")?),
            gym_id: GymId(r.try_get(pre, "gym_id")?),
            title: r.try_get(pre, "title")?,
            description: r.try_get(pre, "description")?,
            start_time: known(stored(r.try_get(pre, "start_time")?))?,
            end_time: known(stored(r.try_get(pre, "end_time")?))?,
            location: r.try_get(pre, "location")?,
            max_participants: r.try_get(pre, "max_participants")?,
            created_by: r.try_get::<Option<i64>>(pre, "created_by")?.map(UserId),
            created_at: r.try_get(pre, "created_at")?,
        })
    }
}

/// A stored time: always within [`Timestamp`]'s range, since only those are written.
fn stored(t: OffsetDateTime) -> Result<Timestamp, DomainError> {
    Timestamp::new(t).map_err(|_| DomainError::internal(format!("stored time {t} is out of range")))
}
