//! Bookings that use passes (issue 21).
//!
//! - The gym's settings `booking_requires_pass` (off: a gym that sells nothing books
//!   as before) and `cancel_cutoff_minutes`.
//! - A pass keeps the weekly limit and categories its plan had when it was sold.
//! - A participation names the pass its booking used (`pass_id`) and counts its
//!   bookings that took one (`credit_no`): the row is reused when a member books
//!   again after cancelling, so a booking is `(participation, credit_no)`. A late
//!   cancel leaves it `late_cancelled`.
//! - A ledger entry of a booking names it by `(participation_id, credit_no)`, and the
//!   database allows one `use` per booking and one return (`refund` or `forfeit`):
//!   a booking takes at most one credit and gives it back at most once.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

const GYMS: &[&str] = &[
    "ALTER TABLE gyms ADD COLUMN booking_requires_pass BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE gyms ADD COLUMN cancel_cutoff_minutes INTEGER NOT NULL DEFAULT 0 \
     CONSTRAINT gyms_cancel_cutoff_check CHECK (cancel_cutoff_minutes BETWEEN 0 AND 10080)",
    "ALTER TABLE passes ADD COLUMN weekly_limit INTEGER \
     CONSTRAINT passes_weekly_limit_check CHECK (weekly_limit BETWEEN 1 AND 100)",
    "ALTER TABLE passes ADD COLUMN categories TEXT",
    "UPDATE passes SET \
     weekly_limit = (SELECT pl.weekly_limit FROM plans pl WHERE pl.gym_id = passes.gym_id AND pl.id = passes.plan_id), \
     categories = (SELECT pl.categories FROM plans pl WHERE pl.gym_id = passes.gym_id AND pl.id = passes.plan_id)",
];

/// What a booking's entry must be: `use` takes one credit, `refund` gives it back,
/// `forfeit` records that the gym keeps it (a late cancel); only these name a booking.
const BOOKING_CHECK: &str = "CHECK ((kind IN ('use', 'refund', 'forfeit')) = \
     (participation_id IS NOT NULL AND credit_no IS NOT NULL) \
     AND (kind <> 'use' OR credits = -1) AND (kind <> 'refund' OR credits = 1) AND (kind <> 'forfeit' OR credits = 0))";

const STATUSES: &str = "'registered', 'attended', 'cancelled', 'no_show', 'waitlisted', 'late_cancelled'";

const SQLITE_PARTICIPATIONS: &str = "CREATE TABLE participations_new (
    id INTEGER NOT NULL CONSTRAINT participations_id_key PRIMARY KEY AUTOINCREMENT,
    gym_id BIGINT NOT NULL CONSTRAINT participations_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
    session_id BIGINT NOT NULL,
    member_id BIGINT NOT NULL CONSTRAINT participations_member_fkey REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL CONSTRAINT participations_status_check CHECK (status IN ({STATUSES})),
    attendance_time TEXT,
    created_at TEXT NOT NULL,
    waitlist_seq BIGINT,
    pass_id BIGINT,
    credit_no INTEGER NOT NULL DEFAULT 0 CONSTRAINT participations_credit_no_check CHECK (credit_no >= 0),
    CONSTRAINT participations_pkey UNIQUE (gym_id, id),
    CONSTRAINT participations_member_key UNIQUE (gym_id, session_id, member_id),
    CONSTRAINT participations_session_fkey FOREIGN KEY (gym_id, session_id) REFERENCES sessions (gym_id, id)
        ON DELETE CASCADE,
    CONSTRAINT participations_pass_fkey FOREIGN KEY (gym_id, pass_id) REFERENCES passes (gym_id, id)
)";

const OLD_COLUMNS: &str = "id, gym_id, session_id, member_id, status, attendance_time, created_at, waitlist_seq";

/// The indexes of `participations` as the migrations before made them (SQLite's
/// rebuild drops them with the old table).
const SQLITE_INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS participations_gym_session_id ON participations (gym_id, session_id, id)",
    "CREATE INDEX IF NOT EXISTS participations_gym_member_time \
     ON participations (gym_id, member_id, status, attendance_time)",
    "CREATE INDEX IF NOT EXISTS participations_waitlist \
     ON participations (gym_id, session_id, waitlist_seq) WHERE status = 'waitlisted'",
    "CREATE INDEX IF NOT EXISTS participations_gym_attended ON participations (gym_id, attendance_time) \
     WHERE attendance_time IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS participations_registered ON participations (gym_id, session_id) \
     WHERE status = 'registered'",
];

const INDEXES: &[&str] = &[
    // A pass's bookings (its weekly limit).
    "CREATE INDEX participations_pass ON participations (gym_id, pass_id) WHERE pass_id IS NOT NULL",
    "CREATE UNIQUE INDEX credit_entries_one_use ON credit_entries (gym_id, participation_id, credit_no) \
     WHERE kind = 'use'",
    "CREATE UNIQUE INDEX credit_entries_one_return ON credit_entries (gym_id, participation_id, credit_no) \
     WHERE kind IN ('refund', 'forfeit')",
    // Passes past their expiry with credits left (the expiry job).
    "CREATE INDEX passes_expiry ON passes (expires_at)",
];

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261209_000001_booking_credits"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, GYMS).await?;
        match crate::backend(tx) {
            DbBackend::Postgres => {
                let status = format!(
                    "ALTER TABLE participations ADD CONSTRAINT participations_status_check CHECK (status IN ({STATUSES}))"
                );
                let booking =
                    format!("ALTER TABLE credit_entries ADD CONSTRAINT credit_entries_booking_check {BOOKING_CHECK}");
                crate::run(
                    tx,
                    &[
                        "ALTER TABLE participations DROP CONSTRAINT participations_status_check",
                        &status,
                        "ALTER TABLE participations ADD COLUMN pass_id BIGINT",
                        "ALTER TABLE participations ADD COLUMN credit_no INTEGER NOT NULL DEFAULT 0 \
                         CONSTRAINT participations_credit_no_check CHECK (credit_no >= 0)",
                        "ALTER TABLE participations ADD CONSTRAINT participations_pass_fkey \
                         FOREIGN KEY (gym_id, pass_id) REFERENCES passes (gym_id, id)",
                        "ALTER TABLE credit_entries ADD COLUMN credit_no INTEGER",
                        &booking,
                    ],
                )
                .await?;
            }
            _ => {
                let create = SQLITE_PARTICIPATIONS.replace("{STATUSES}", STATUSES);
                crate::rebuild_sqlite_table(tx, "participations", &create, OLD_COLUMNS, OLD_COLUMNS, SQLITE_INDEXES)
                    .await?;
                // SQLite adds a column with its own CHECK (which may name the others).
                let booking = format!(
                    "ALTER TABLE credit_entries ADD COLUMN credit_no INTEGER CONSTRAINT credit_entries_booking_check {BOOKING_CHECK}"
                );
                crate::run(tx, &[&booking]).await?;
            }
        }
        crate::run(tx, INDEXES).await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &[
                "DROP INDEX IF EXISTS passes_expiry",
                "DROP INDEX IF EXISTS credit_entries_one_return",
                "DROP INDEX IF EXISTS credit_entries_one_use",
                "DROP INDEX IF EXISTS participations_pass",
                // The old schema has no late cancel: the place was given back.
                "UPDATE participations SET status = 'cancelled' WHERE status = 'late_cancelled'",
            ],
        )
        .await?;
        match crate::backend(tx) {
            DbBackend::Postgres => {
                crate::run(
                    tx,
                    &[
                        "ALTER TABLE credit_entries DROP CONSTRAINT credit_entries_booking_check",
                        "ALTER TABLE credit_entries DROP COLUMN credit_no",
                        "ALTER TABLE participations DROP CONSTRAINT participations_pass_fkey",
                        "ALTER TABLE participations DROP COLUMN credit_no",
                        "ALTER TABLE participations DROP COLUMN pass_id",
                        "ALTER TABLE participations DROP CONSTRAINT participations_status_check",
                        "ALTER TABLE participations ADD CONSTRAINT participations_status_check \
                         CHECK (status IN ('registered', 'attended', 'cancelled', 'no_show', 'waitlisted'))",
                    ],
                )
                .await?;
            }
            _ => {
                // The column's own CHECK goes with it.
                crate::run(tx, &["ALTER TABLE credit_entries DROP COLUMN credit_no"]).await?;
                let old = SQLITE_PARTICIPATIONS
                    .replace("{STATUSES}", "'registered', 'attended', 'cancelled', 'no_show', 'waitlisted'")
                    .replace(
                        "    pass_id BIGINT,\n    credit_no INTEGER NOT NULL DEFAULT 0 CONSTRAINT participations_credit_no_check CHECK (credit_no >= 0),\n",
                        "",
                    )
                    .replace(
                        ",\n    CONSTRAINT participations_pass_fkey FOREIGN KEY (gym_id, pass_id) REFERENCES passes (gym_id, id)",
                        "",
                    );
                crate::rebuild_sqlite_table(tx, "participations", &old, OLD_COLUMNS, OLD_COLUMNS, SQLITE_INDEXES)
                    .await?;
            }
        }
        crate::run(
            tx,
            &[
                "ALTER TABLE passes DROP COLUMN categories",
                "ALTER TABLE passes DROP COLUMN weekly_limit",
                "ALTER TABLE gyms DROP COLUMN cancel_cutoff_minutes",
                "ALTER TABLE gyms DROP COLUMN booking_requires_pass",
            ],
        )
        .await
    }
}
