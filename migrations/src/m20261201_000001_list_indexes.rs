//! Every list is read from an index of its own gym (or session, or member), in the
//! list's order, so a page costs what the page holds and not what the platform holds:
//! `GET /members` orders by `memberships.user_id` within the gym, participants by id
//! within the session, a member's history by attendance time.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbErr};

pub struct Migration;

const UP: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS memberships_gym_user ON memberships (gym_id, user_id)",
    "CREATE INDEX IF NOT EXISTS memberships_gym_role_user ON memberships (gym_id, role, user_id)",
    "DROP INDEX IF EXISTS memberships_gym_role",
    "CREATE INDEX IF NOT EXISTS classes_gym_active_id ON classes (gym_id, active, id)",
    "DROP INDEX IF EXISTS classes_gym",
    "CREATE INDEX IF NOT EXISTS sessions_gym_start_id ON sessions (gym_id, start_time, id)",
    "DROP INDEX IF EXISTS sessions_gym_start",
    "CREATE INDEX IF NOT EXISTS events_gym_start_id ON events (gym_id, start_time, id)",
    "DROP INDEX IF EXISTS events_gym_start",
    "CREATE INDEX IF NOT EXISTS participations_session_id ON participations (session_id, id)",
    "CREATE INDEX IF NOT EXISTS participations_member_gym_time \
     ON participations (member_id, gym_id, status, attendance_time)",
    "DROP INDEX IF EXISTS participations_member_gym",
];

const DOWN: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS participations_member_gym ON participations (member_id, gym_id, status)",
    "DROP INDEX IF EXISTS participations_member_gym_time",
    "DROP INDEX IF EXISTS participations_session_id",
    "CREATE INDEX IF NOT EXISTS events_gym_start ON events (gym_id, start_time)",
    "DROP INDEX IF EXISTS events_gym_start_id",
    "CREATE INDEX IF NOT EXISTS sessions_gym_start ON sessions (gym_id, start_time)",
    "DROP INDEX IF EXISTS sessions_gym_start_id",
    "CREATE INDEX IF NOT EXISTS classes_gym ON classes (gym_id, active)",
    "DROP INDEX IF EXISTS classes_gym_active_id",
    "CREATE INDEX IF NOT EXISTS memberships_gym_role ON memberships (gym_id, role)",
    "DROP INDEX IF EXISTS memberships_gym_role_user",
    "DROP INDEX IF EXISTS memberships_gym_user",
];

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261201_000001_list_indexes"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, UP).await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, DOWN).await
    }
}
