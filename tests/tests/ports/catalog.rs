//! The schema's shape for distribution by gym, read from PostgreSQL's catalog, and the
//! migration to it keeping every row, on both databases.

use gymapi_tests::{Backend, TestDb};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// Tables every gym shares (a reference table, the tenants themselves, bookkeeping,
/// the idempotency keys of callers).
const GLOBAL: [&str; 4] = ["users", "gyms", "seaql_migrations", "idempotency_keys"];

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<Vec<String>> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("catalog");
    rows.iter()
        .map(|r| {
            (0..).map_while(|i| r.try_get_by_index::<Option<String>>(i).ok()).map(Option::unwrap_or_default).collect()
        })
        .collect()
}

#[tokio::test]
async fn every_tenant_key_and_foreign_key_between_tenant_tables_includes_gym_id_on_postgres() {
    let file = TestDb::empty(Backend::Postgres).await;
    let db = Database::connect(file.url.as_str()).await.expect("connect");
    migration::up(&db).await.expect("migrate");
    let tables =
        strings(&db, "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'").await;
    let tenant: Vec<String> =
        tables.into_iter().map(|r| r[0].clone()).filter(|t| !GLOBAL.contains(&t.as_str())).collect();
    assert!(tenant.len() >= 6, "tenant tables found: {tenant:?}");
    // Every constraint of the schema, with its columns and, for foreign keys, the
    // referenced table and columns.
    let constraints = strings(
        &db,
        "SELECT c.conrelid::regclass::text, c.conname::text, c.contype::text, \
                (SELECT string_agg(a.attname::text, ',' ORDER BY a.attnum) FROM pg_attribute a \
                  WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)), \
                c.confrelid::regclass::text, \
                (SELECT string_agg(a.attname::text, ',' ORDER BY a.attnum) FROM pg_attribute a \
                  WHERE a.attrelid = c.confrelid AND a.attnum = ANY (c.confkey)) \
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'",
    )
    .await;
    let mut problems = Vec::new();
    for table in &tenant {
        let keys: Vec<&Vec<String>> = constraints.iter().filter(|c| &c[0] == table && c[2] == "p").collect();
        if keys.len() != 1 || !keys[0][3].split(',').any(|c| c == "gym_id") {
            problems.push(format!("{table}: primary key {keys:?} without gym_id"));
        }
    }
    for c in &constraints {
        let (table, name, kind, cols) = (&c[0], &c[1], c[2].as_str(), &c[3]);
        let is_tenant = tenant.contains(table);
        if !name.starts_with(&format!("{table}_")) {
            problems.push(format!("{table}: constraint {name} is not named after its table"));
        }
        if is_tenant && kind == "u" && !cols.split(',').any(|c| c == "gym_id") {
            problems.push(format!("{table}: unique key {name} ({cols}) without gym_id"));
        }
        if is_tenant && kind == "f" && tenant.contains(&c[4]) {
            let both = cols.split(',').any(|c| c == "gym_id") && c[5].split(',').any(|c| c == "gym_id");
            if !both {
                problems.push(format!("{table}: foreign key {name} ({cols}) -> {}({}) without gym_id", c[4], c[5]));
            }
        }
    }
    assert!(problems.is_empty(), "the schema breaks distribution by gym:\n{}", problems.join("\n"));
    let _ = db.close().await;
}

/// Rows of every table as the schema before the migration held them.
const FILL: &[&str] = &[
    "INSERT INTO users (id, auth0_id, email, name, phone, qr_secret, created_at, updated_at) VALUES \
     (101, 'sub|a', 'a@x.io', 'Ana', NULL, '0a1b2c3d', '2026-12-01T10:00:00Z', '2026-12-01T10:00:00Z'), \
     (102, 'sub|b', NULL, NULL, '+34', 'deadbeef', '2026-12-01T10:00:00Z', '2026-12-01T10:00:00Z')",
    "INSERT INTO gyms (id, name, timezone, address, created_at) VALUES \
     (7, 'Iron', 'UTC', NULL, '2026-12-01T10:00:00Z'), (8, 'Zen', 'Europe/Madrid', 'Main St', '2026-12-01T10:00:00Z')",
    "INSERT INTO memberships (gym_id, user_id, role, joined_at) VALUES \
     (7, 101, 'owner', '2026-12-01T10:00:00Z'), (7, 102, 'member', '2026-12-01T10:00:00Z'), \
     (8, 102, 'owner', '2026-12-01T10:00:00Z')",
    "INSERT INTO classes (id, gym_id, name, description, duration_minutes, max_capacity, category, instructor_id, \
     active, created_at) VALUES (30, 7, 'Spin', NULL, 45, 10, 'cardio', 101, TRUE, '2026-12-01T10:00:00Z'), \
     (31, 8, 'Yoga', 'calm', 60, 5, NULL, NULL, FALSE, '2026-12-01T10:00:00Z')",
    "INSERT INTO sessions (id, gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, \
     registered_count, created_at) VALUES \
     (40, 7, 30, '2026-12-10T10:00:00Z', '2026-12-10T10:45:00Z', 'scheduled', 101, 'A', 10, 2, '2026-12-01T10:00:00Z'), \
     (41, 8, 31, '2026-12-11T10:00:00Z', '2026-12-11T11:00:00Z', 'cancelled', NULL, NULL, 5, 0, '2026-12-01T10:00:00Z')",
    "INSERT INTO participations (id, gym_id, session_id, member_id, status, attendance_time, created_at) VALUES \
     (50, 7, 40, 102, 'registered', NULL, '2026-12-01T10:00:00Z'), \
     (51, 7, 40, 101, 'attended', '2026-12-10T10:01:00Z', '2026-12-01T10:00:00Z'), \
     (52, 8, 41, 102, 'cancelled', NULL, '2026-12-01T10:00:00Z')",
    "INSERT INTO events (id, gym_id, title, description, start_time, end_time, location, max_participants, \
     created_by, created_at) VALUES (60, 7, 'Open day', NULL, '2026-12-20T10:00:00Z', '2026-12-20T12:00:00Z', \
     'Hall', 30, 101, '2026-12-01T10:00:00Z')",
];

/// Every row of every table but bookkeeping, as text, by table then id: what must
/// survive the migration unchanged.
async fn snapshot(db: &DatabaseConnection) -> Vec<String> {
    let mut all = Vec::new();
    for (table, cols) in [
        ("users", "id, auth0_id, email, name, phone, qr_secret"),
        ("gyms", "id, name, timezone, address"),
        ("memberships", "gym_id, user_id, role"),
        ("classes", "id, gym_id, name, description, duration_minutes, max_capacity, category, instructor_id"),
        ("sessions", "id, gym_id, class_id, status, trainer_id, room, capacity, registered_count"),
        ("participations", "id, gym_id, session_id, member_id, status"),
        ("events", "id, gym_id, title, description, location, max_participants, created_by"),
    ] {
        let casts: Vec<String> = cols.split(", ").map(|c| format!("CAST({c} AS TEXT)")).collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY 1, 2", casts.join(", "));
        for row in strings(db, &sql).await {
            all.push(format!("{table}: {}", row.join("|")));
        }
    }
    all
}

async fn the_migration_keeps_every_row(backend: Backend) {
    let file = TestDb::empty(backend).await;
    let db = Database::connect(file.url.as_str()).await.expect("connect");
    migration::up_to(&db, Some("m20261201_000002_walk_ins_take_places")).await.expect("the schema before");
    for sql in FILL {
        db.execute_unprepared(sql).await.expect("fill the old schema");
    }
    let before = snapshot(&db).await;
    assert_eq!(before.len(), 15, "{before:#?}");
    migration::up(&db).await.expect("migrate to keys by gym");
    assert_eq!(snapshot(&db).await, before, "every row, every value");
    // The new keys hold on the moved rows: a second participation of a member in a
    // session is refused, and new rows are written as before.
    let dup = "INSERT INTO participations (gym_id, session_id, member_id, status, created_at) \
               VALUES (7, 40, 102, 'registered', '2026-12-02T10:00:00Z')";
    assert!(db.execute_unprepared(dup).await.is_err(), "(gym_id, session_id, member_id) is unique");
    let fresh = "INSERT INTO events (gym_id, title, start_time, end_time, created_at) \
                 VALUES (8, 'New', '2026-12-21T10:00:00Z', '2026-12-21T11:00:00Z', '2026-12-02T10:00:00Z')";
    db.execute_unprepared(fresh).await.expect("insert after the move");
    let _ = db.close().await;
}

#[tokio::test]
async fn the_migration_to_keys_by_gym_keeps_every_row_on_postgres() {
    the_migration_keeps_every_row(Backend::Postgres).await;
}

#[tokio::test]
async fn the_migration_to_keys_by_gym_keeps_every_row_on_sqlite() {
    the_migration_keeps_every_row(Backend::Sqlite).await;
}
