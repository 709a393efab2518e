//! Waitlists (issue 19): a participation may be `waitlisted`, queued by
//! `waitlist_seq` (given under the session's lock, so the queue is first come,
//! first served even within one second), and the gym's settings
//! `waitlist_cutoff_minutes` (no automatic promotion this close to the start) and
//! `max_waitlists_per_member`.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

const GYMS: &[&str] = &[
    "ALTER TABLE gyms ADD COLUMN waitlist_cutoff_minutes INTEGER NOT NULL DEFAULT 0 \
     CHECK (waitlist_cutoff_minutes BETWEEN 0 AND 10080)",
    "ALTER TABLE gyms ADD COLUMN max_waitlists_per_member INTEGER NOT NULL DEFAULT 5 \
     CHECK (max_waitlists_per_member BETWEEN 0 AND 100)",
];

const PG_UP: &[&str] = &[
    "ALTER TABLE participations DROP CONSTRAINT participations_status_check",
    "ALTER TABLE participations ADD CONSTRAINT participations_status_check \
     CHECK (status IN ('registered', 'attended', 'cancelled', 'no_show', 'waitlisted'))",
    "ALTER TABLE participations ADD COLUMN waitlist_seq BIGINT",
];

const SQLITE_PARTICIPATIONS: &str = "CREATE TABLE participations_new (
    id INTEGER NOT NULL CONSTRAINT participations_id_key PRIMARY KEY AUTOINCREMENT,
    gym_id BIGINT NOT NULL CONSTRAINT participations_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
    session_id BIGINT NOT NULL,
    member_id BIGINT NOT NULL CONSTRAINT participations_member_fkey REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL CONSTRAINT participations_status_check
        CHECK (status IN ('registered', 'attended', 'cancelled', 'no_show', 'waitlisted')),
    attendance_time TEXT,
    created_at TEXT NOT NULL,
    waitlist_seq BIGINT,
    CONSTRAINT participations_pkey UNIQUE (gym_id, id),
    CONSTRAINT participations_member_key UNIQUE (gym_id, session_id, member_id),
    CONSTRAINT participations_session_fkey FOREIGN KEY (gym_id, session_id) REFERENCES sessions (gym_id, id)
        ON DELETE CASCADE
)";

const SQLITE_INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS participations_gym_session_id ON participations (gym_id, session_id, id)",
    "CREATE INDEX IF NOT EXISTS participations_gym_member_time \
     ON participations (gym_id, member_id, status, attendance_time)",
];

/// The queue of a session, head first.
const QUEUE_INDEX: &str = "CREATE INDEX IF NOT EXISTS participations_waitlist \
                           ON participations (gym_id, session_id, waitlist_seq) WHERE status = 'waitlisted'";

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261206_000002_waitlist"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, GYMS).await?;
        match crate::backend(tx) {
            DbBackend::Postgres => crate::run(tx, PG_UP).await?,
            _ => {
                let columns = "id, gym_id, session_id, member_id, status, attendance_time, created_at";
                crate::rebuild_sqlite_table(
                    tx,
                    "participations",
                    SQLITE_PARTICIPATIONS,
                    columns,
                    columns,
                    SQLITE_INDEXES,
                )
                .await?;
            }
        }
        crate::run(tx, &[QUEUE_INDEX]).await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        // A waitlisted place cannot be kept by the old schema: it was never taken.
        crate::run(tx, &["DROP INDEX IF EXISTS participations_waitlist"]).await?;
        crate::run(tx, &["UPDATE participations SET status = 'cancelled' WHERE status = 'waitlisted'"]).await?;
        match crate::backend(tx) {
            DbBackend::Postgres => {
                crate::run(
                    tx,
                    &[
                        "ALTER TABLE participations DROP COLUMN waitlist_seq",
                        "ALTER TABLE participations DROP CONSTRAINT participations_status_check",
                        "ALTER TABLE participations ADD CONSTRAINT participations_status_check \
                         CHECK (status IN ('registered', 'attended', 'cancelled', 'no_show'))",
                    ],
                )
                .await?;
            }
            _ => {
                let old =
                    SQLITE_PARTICIPATIONS.replace(", 'waitlisted')", ")").replace("    waitlist_seq BIGINT,\n", "");
                let columns = "id, gym_id, session_id, member_id, status, attendance_time, created_at";
                crate::rebuild_sqlite_table(tx, "participations", &old, columns, columns, SQLITE_INDEXES).await?;
            }
        }
        crate::run(tx, &["ALTER TABLE gyms DROP COLUMN max_waitlists_per_member"]).await?;
        crate::run(tx, &["ALTER TABLE gyms DROP COLUMN waitlist_cutoff_minutes"]).await
    }
}
