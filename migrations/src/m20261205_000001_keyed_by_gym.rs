//! Tenant tables keyed by gym, every constraint named, and the outbox.
//!
//! A platform that outgrows one PostgreSQL distributes its tenant tables by `gym_id`
//! (the Citus multi-tenant model: tenant tables distributed and co-located by
//! `gym_id`, `users` a reference table). That needs every primary key, unique key
//! and foreign key between tenant tables to include `gym_id`:
//!
//! - `memberships`: keyed `(gym_id, user_id)` (its unused surrogate `id` goes);
//! - `classes`, `sessions`, `participations`, `events`: keyed `(gym_id, id)`, the ids
//!   staying the same numbers (one identity per table, so public ids never repeat);
//! - a session's class is `(gym_id, class_id)`, a participation's session
//!   `(gym_id, session_id)`, and one participation per member and session is
//!   `(gym_id, session_id, member_id)`;
//! - foreign keys to `users` (a reference table) and `gyms` stay single-column.
//!
//! Every constraint gets a name (`{table}_pkey`, `{table}_{what}_fkey`,
//! `{table}_{what}_key`, `{table}_{what}_check`), so later migrations can find them.
//!
//! The outbox (`outbox`, keyed `(gym_id, id)`; facts of a user alone are kept under
//! gym 0) holds the facts written with each change, and `outbox_heads` the last
//! per-gym sequence number given (see `infra::db::outbox`).
//!
//! On PostgreSQL the keys are swapped in place; on SQLite each table is rebuilt with
//! [`crate::rebuild_sqlite_table`]. No row changes.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

/// Drops every primary, unique, foreign-key and check constraint of the tables (the
/// unnamed ones of the first schema have names PostgreSQL chose), foreign keys first.
const PG_DROP_CONSTRAINTS: &str = r#"
DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
           WHERE conrelid = ANY (ARRAY['users', 'gyms', 'memberships', 'classes', 'sessions', 'participations',
                                       'events']::regclass[])
           ORDER BY contype <> 'f'
  LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.tbl, c.conname);
  END LOOP;
END $$
"#;

const PG_UP: &[&str] = &[
    PG_DROP_CONSTRAINTS,
    "ALTER TABLE memberships DROP COLUMN IF EXISTS id",
    "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id), \
     ADD CONSTRAINT users_auth0_id_key UNIQUE (auth0_id)",
    "ALTER TABLE gyms ADD CONSTRAINT gyms_pkey PRIMARY KEY (id)",
    "ALTER TABLE memberships ADD CONSTRAINT memberships_pkey PRIMARY KEY (gym_id, user_id), \
     ADD CONSTRAINT memberships_gym_fkey FOREIGN KEY (gym_id) REFERENCES gyms (id) ON DELETE CASCADE, \
     ADD CONSTRAINT memberships_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE, \
     ADD CONSTRAINT memberships_role_check CHECK (role IN ('member', 'trainer', 'admin', 'owner'))",
    "ALTER TABLE classes ADD CONSTRAINT classes_pkey PRIMARY KEY (gym_id, id), \
     ADD CONSTRAINT classes_gym_fkey FOREIGN KEY (gym_id) REFERENCES gyms (id) ON DELETE CASCADE, \
     ADD CONSTRAINT classes_instructor_fkey FOREIGN KEY (instructor_id) REFERENCES users (id) ON DELETE SET NULL, \
     ADD CONSTRAINT classes_duration_check CHECK (duration_minutes BETWEEN 1 AND 600), \
     ADD CONSTRAINT classes_capacity_check CHECK (max_capacity BETWEEN 1 AND 1000)",
    "ALTER TABLE sessions ADD CONSTRAINT sessions_pkey PRIMARY KEY (gym_id, id), \
     ADD CONSTRAINT sessions_gym_fkey FOREIGN KEY (gym_id) REFERENCES gyms (id) ON DELETE CASCADE, \
     ADD CONSTRAINT sessions_class_fkey FOREIGN KEY (gym_id, class_id) REFERENCES classes (gym_id, id) \
       ON DELETE CASCADE, \
     ADD CONSTRAINT sessions_trainer_fkey FOREIGN KEY (trainer_id) REFERENCES users (id) ON DELETE SET NULL, \
     ADD CONSTRAINT sessions_status_check CHECK (status IN ('scheduled', 'cancelled')), \
     ADD CONSTRAINT sessions_capacity_check CHECK (capacity >= 1), \
     ADD CONSTRAINT sessions_registered_count_check CHECK (registered_count >= 0), \
     ADD CONSTRAINT sessions_times_check CHECK (end_time > start_time)",
    "ALTER TABLE participations ADD CONSTRAINT participations_pkey PRIMARY KEY (gym_id, id), \
     ADD CONSTRAINT participations_member_key UNIQUE (gym_id, session_id, member_id), \
     ADD CONSTRAINT participations_gym_fkey FOREIGN KEY (gym_id) REFERENCES gyms (id) ON DELETE CASCADE, \
     ADD CONSTRAINT participations_session_fkey FOREIGN KEY (gym_id, session_id) REFERENCES sessions (gym_id, id) \
       ON DELETE CASCADE, \
     ADD CONSTRAINT participations_member_fkey FOREIGN KEY (member_id) REFERENCES users (id) ON DELETE CASCADE, \
     ADD CONSTRAINT participations_status_check \
       CHECK (status IN ('registered', 'attended', 'cancelled', 'no_show'))",
    "ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (gym_id, id), \
     ADD CONSTRAINT events_gym_fkey FOREIGN KEY (gym_id) REFERENCES gyms (id) ON DELETE CASCADE, \
     ADD CONSTRAINT events_creator_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL, \
     ADD CONSTRAINT events_times_check CHECK (end_time > start_time)",
];

/// Indexes that change with the keys: the user's memberships (the one lookup across
/// gyms, by user), a session's participants and a member's participations within
/// the gym. The primary keys replace `memberships_gym_user`.
const INDEXES: &[&str] = &[
    "DROP INDEX IF EXISTS memberships_gym_user",
    "CREATE INDEX IF NOT EXISTS memberships_user ON memberships (user_id)",
    "DROP INDEX IF EXISTS participations_session_id",
    "CREATE INDEX IF NOT EXISTS participations_gym_session_id ON participations (gym_id, session_id, id)",
    "DROP INDEX IF EXISTS participations_member_gym_time",
    "CREATE INDEX IF NOT EXISTS participations_gym_member_time \
     ON participations (gym_id, member_id, status, attendance_time)",
];

/// `{ID}` the id column and `{KEY}` the table's key (as for the other tenant tables:
/// on SQLite the id is the rowid and `(gym_id, id)` a unique key), `{TS}` a UTC
/// timestamp, `{JSON}` a JSON document.
const OUTBOX: &[&str] = &[
    "CREATE TABLE outbox (
        gym_id BIGINT NOT NULL,
        id {ID},
        gym_seq BIGINT,
        type TEXT NOT NULL,
        payload {JSON} NOT NULL,
        created_at {TS} NOT NULL,
        claimed_until {TS},
        delivered_at {TS},
        CONSTRAINT outbox_pkey {KEY} (gym_id, id),
        CONSTRAINT outbox_gym_seq_key UNIQUE (gym_id, gym_seq)
    )",
    "CREATE INDEX outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL",
    "CREATE INDEX outbox_unsequenced ON outbox (id) WHERE gym_seq IS NULL",
    "CREATE INDEX outbox_delivered_at ON outbox (delivered_at) WHERE delivered_at IS NOT NULL",
    "CREATE TABLE outbox_heads (
        gym_id BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        CONSTRAINT outbox_heads_pkey PRIMARY KEY (gym_id)
    )",
];

fn outbox_for(backend: DbBackend) -> Vec<String> {
    let (id, key, ts, json) = match backend {
        DbBackend::Postgres => ("BIGINT GENERATED BY DEFAULT AS IDENTITY", "PRIMARY KEY", "TIMESTAMPTZ", "JSONB"),
        _ => ("INTEGER NOT NULL CONSTRAINT outbox_id_key PRIMARY KEY AUTOINCREMENT", "UNIQUE", "TEXT", "TEXT"),
    };
    OUTBOX
        .iter()
        .map(|s| s.replace("{ID}", id).replace("{KEY}", key).replace("{TS}", ts).replace("{JSON}", json))
        .collect()
}

/// SQLite: each tenant table as it now is (created as `{table}_new`), with the
/// columns copied into it. `id INTEGER PRIMARY KEY` stays the rowid, so new rows get
/// ids as before, and `(gym_id, id)` is the unique key the tenant foreign keys name.
const SQLITE_TABLES: &[(&str, &str, &str)] = &[
    (
        "users",
        "CREATE TABLE users_new (
            id INTEGER NOT NULL CONSTRAINT users_pkey PRIMARY KEY,
            auth0_id TEXT NOT NULL CONSTRAINT users_auth0_id_key UNIQUE,
            email TEXT,
            name TEXT,
            phone TEXT,
            qr_secret TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )",
        "id, auth0_id, email, name, phone, qr_secret, created_at, updated_at",
    ),
    (
        "gyms",
        "CREATE TABLE gyms_new (
            id INTEGER NOT NULL CONSTRAINT gyms_pkey PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            timezone TEXT NOT NULL,
            address TEXT,
            created_at TEXT NOT NULL
        )",
        "id, name, timezone, address, created_at",
    ),
    (
        "memberships",
        "CREATE TABLE memberships_new (
            gym_id BIGINT NOT NULL CONSTRAINT memberships_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
            user_id BIGINT NOT NULL CONSTRAINT memberships_user_fkey REFERENCES users (id) ON DELETE CASCADE,
            role TEXT NOT NULL CONSTRAINT memberships_role_check CHECK (role IN ('member', 'trainer', 'admin', 'owner')),
            joined_at TEXT NOT NULL,
            CONSTRAINT memberships_pkey PRIMARY KEY (gym_id, user_id)
        )",
        "gym_id, user_id, role, joined_at",
    ),
    (
        "classes",
        "CREATE TABLE classes_new (
            id INTEGER NOT NULL CONSTRAINT classes_id_key PRIMARY KEY AUTOINCREMENT,
            gym_id BIGINT NOT NULL CONSTRAINT classes_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            description TEXT,
            duration_minutes INTEGER NOT NULL CONSTRAINT classes_duration_check CHECK (duration_minutes BETWEEN 1 AND 600),
            max_capacity INTEGER NOT NULL CONSTRAINT classes_capacity_check CHECK (max_capacity BETWEEN 1 AND 1000),
            category TEXT,
            instructor_id BIGINT CONSTRAINT classes_instructor_fkey REFERENCES users (id) ON DELETE SET NULL,
            active BOOLEAN NOT NULL DEFAULT TRUE,
            created_at TEXT NOT NULL,
            CONSTRAINT classes_pkey UNIQUE (gym_id, id)
        )",
        "id, gym_id, name, description, duration_minutes, max_capacity, category, instructor_id, active, created_at",
    ),
    (
        "sessions",
        "CREATE TABLE sessions_new (
            id INTEGER NOT NULL CONSTRAINT sessions_id_key PRIMARY KEY AUTOINCREMENT,
            gym_id BIGINT NOT NULL CONSTRAINT sessions_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
            class_id BIGINT NOT NULL,
            start_time TEXT NOT NULL,
            end_time TEXT NOT NULL,
            status TEXT NOT NULL CONSTRAINT sessions_status_check CHECK (status IN ('scheduled', 'cancelled')),
            trainer_id BIGINT CONSTRAINT sessions_trainer_fkey REFERENCES users (id) ON DELETE SET NULL,
            room TEXT,
            capacity INTEGER NOT NULL CONSTRAINT sessions_capacity_check CHECK (capacity >= 1),
            registered_count INTEGER NOT NULL DEFAULT 0 CONSTRAINT sessions_registered_count_check CHECK (registered_count >= 0),
            created_at TEXT NOT NULL,
            CONSTRAINT sessions_pkey UNIQUE (gym_id, id),
            CONSTRAINT sessions_class_fkey FOREIGN KEY (gym_id, class_id) REFERENCES classes (gym_id, id) ON DELETE CASCADE,
            CONSTRAINT sessions_times_check CHECK (end_time > start_time)
        )",
        "id, gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, registered_count, created_at",
    ),
    (
        "participations",
        "CREATE TABLE participations_new (
            id INTEGER NOT NULL CONSTRAINT participations_id_key PRIMARY KEY AUTOINCREMENT,
            gym_id BIGINT NOT NULL CONSTRAINT participations_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
            session_id BIGINT NOT NULL,
            member_id BIGINT NOT NULL CONSTRAINT participations_member_fkey REFERENCES users (id) ON DELETE CASCADE,
            status TEXT NOT NULL CONSTRAINT participations_status_check
                CHECK (status IN ('registered', 'attended', 'cancelled', 'no_show')),
            attendance_time TEXT,
            created_at TEXT NOT NULL,
            CONSTRAINT participations_pkey UNIQUE (gym_id, id),
            CONSTRAINT participations_member_key UNIQUE (gym_id, session_id, member_id),
            CONSTRAINT participations_session_fkey FOREIGN KEY (gym_id, session_id) REFERENCES sessions (gym_id, id)
                ON DELETE CASCADE
        )",
        "id, gym_id, session_id, member_id, status, attendance_time, created_at",
    ),
    (
        "events",
        "CREATE TABLE events_new (
            id INTEGER NOT NULL CONSTRAINT events_id_key PRIMARY KEY AUTOINCREMENT,
            gym_id BIGINT NOT NULL CONSTRAINT events_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            description TEXT,
            start_time TEXT NOT NULL,
            end_time TEXT NOT NULL,
            location TEXT,
            max_participants INTEGER,
            created_by BIGINT CONSTRAINT events_creator_fkey REFERENCES users (id) ON DELETE SET NULL,
            created_at TEXT NOT NULL,
            CONSTRAINT events_pkey UNIQUE (gym_id, id),
            CONSTRAINT events_times_check CHECK (end_time > start_time)
        )",
        "id, gym_id, title, description, start_time, end_time, location, max_participants, created_by, created_at",
    ),
];

/// The indexes of each rebuilt SQLite table (dropped with the old table).
const SQLITE_INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS memberships_gym_role_user ON memberships (gym_id, role, user_id)",
    "CREATE INDEX IF NOT EXISTS memberships_user ON memberships (user_id)",
    "CREATE INDEX IF NOT EXISTS classes_gym_active_id ON classes (gym_id, active, id)",
    "CREATE INDEX IF NOT EXISTS sessions_gym_start_id ON sessions (gym_id, start_time, id)",
    "CREATE INDEX IF NOT EXISTS events_gym_start_id ON events (gym_id, start_time, id)",
    "CREATE INDEX IF NOT EXISTS participations_gym_session_id ON participations (gym_id, session_id, id)",
    "CREATE INDEX IF NOT EXISTS participations_gym_member_time \
     ON participations (gym_id, member_id, status, attendance_time)",
];

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261205_000001_keyed_by_gym"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        let backend = crate::backend(tx);
        match backend {
            DbBackend::Postgres => {
                crate::run(tx, PG_UP).await?;
                crate::run(tx, INDEXES).await?;
            }
            _ => {
                for (table, create, columns) in SQLITE_TABLES {
                    crate::rebuild_sqlite_table(tx, table, create, columns, columns, &[]).await?;
                }
                crate::run(tx, SQLITE_INDEXES).await?;
            }
        }
        for sql in outbox_for(backend) {
            tx.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        // The keys are a stricter form of the old ones (every old key is implied by a
        // new one, `memberships.id` aside, which nothing read): going back keeps the
        // new keys and only drops what this migration added.
        crate::run(tx, &["DROP TABLE IF EXISTS outbox_heads", "DROP TABLE IF EXISTS outbox"]).await
    }
}
