//! A walk-in takes a place, and the front desk admits whoever is at the door: a
//! check-in is never refused for capacity (contract §5 lists its refusals, and a
//! full session is not one), so `registered_count` — the session's `registered` and
//! `attended` participations — may pass `capacity` through walk-ins. Bookings
//! still never do: `book` takes a place only while `registered_count < capacity`,
//! in the guarded `UPDATE` itself. The table's CHECK keeps `registered_count >= 0`.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};

pub struct Migration;

const OLD_CHECK: &str = "CHECK (registered_count >= 0 AND registered_count <= capacity)";
const NEW_CHECK: &str = "CHECK (registered_count >= 0)";

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261201_000002_walk_ins_take_places"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        swap_check(tx, OLD_CHECK, NEW_CHECK).await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        // The old CHECK cannot hold sessions that walk-ins took past capacity.
        let over = tx
            .query_one_raw(Statement::from_string(
                crate::backend(tx),
                "SELECT COUNT(*) AS n FROM sessions WHERE registered_count > capacity".to_owned(),
            ))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        if over > 0 {
            return Err(DbErr::Migration(format!(
                "{over} sessions hold more participants than capacity (walk-ins); \
                 the old CHECK (registered_count <= capacity) cannot be restored"
            )));
        }
        swap_check(tx, NEW_CHECK, OLD_CHECK).await
    }
}

async fn swap_check(conn: &DatabaseTransaction, from: &str, to: &str) -> Result<(), DbErr> {
    match crate::backend(conn) {
        DbBackend::Postgres => {
            // The constraint was unnamed: find it by its definition.
            let wanted = if from == OLD_CHECK { "registered_count <= capacity" } else { "registered_count >= 0" };
            let rows = conn
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint \
                     WHERE conrelid = 'sessions'::regclass AND contype = 'c'"
                        .to_owned(),
                ))
                .await?;
            for row in rows {
                let (name, def): (String, String) = (row.try_get("", "conname")?, row.try_get("", "def")?);
                if def.contains(wanted) && def.contains("registered_count") && !def.contains("end_time") {
                    conn.execute_unprepared(&format!("ALTER TABLE sessions DROP CONSTRAINT \"{name}\"")).await?;
                }
            }
            let body = to.trim_start_matches("CHECK ");
            conn.execute_unprepared(&format!(
                "ALTER TABLE sessions ADD CONSTRAINT sessions_registered_count_check CHECK {body}"
            ))
            .await?;
            Ok(())
        }
        _ => {
            // SQLite cannot alter a CHECK; its documented procedure for removing or
            // changing one (which leaves the stored rows as they are) edits the table's
            // SQL in sqlite_schema and bumps the schema version, so that every
            // connection reloads it.
            let version = conn
                .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA schema_version".to_owned()))
                .await?
                .map(|r| r.try_get_by_index::<i64>(0))
                .transpose()?
                .unwrap_or(0);
            // One batch, so that every statement runs on the same pooled connection
            // (writable_schema is a setting of the connection).
            let quote = |t: &str| t.replace('\'', "''");
            conn.execute_unprepared(&format!(
                "PRAGMA writable_schema = ON; \
                 UPDATE sqlite_schema SET sql = replace(sql, '{}', '{}') WHERE type = 'table' AND name = 'sessions'; \
                 PRAGMA schema_version = {}; \
                 PRAGMA writable_schema = OFF;",
                quote(from),
                quote(to),
                version + 1
            ))
            .await?;
            Ok(())
        }
    }
}
