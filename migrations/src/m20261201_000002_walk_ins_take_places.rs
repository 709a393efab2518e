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
            // SQLite cannot alter a CHECK: the table is rebuilt from its own definition
            // with the other CHECK (whatever else the schema has become), and its
            // indexes made again.
            let text = |sql: &str| Statement::from_string(DbBackend::Sqlite, sql.to_owned());
            let table = conn
                .query_one_raw(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"))
                .await?
                .map(|r| r.try_get_by_index::<String>(0))
                .transpose()?
                .ok_or_else(|| DbErr::Migration("no sessions table".into()))?;
            let body = table.find('(').map(|i| &table[i..]).unwrap_or_default();
            let create = format!("CREATE TABLE sessions_new {}", body.replace(from, to));
            let indexes: Vec<String> = conn
                .query_all_raw(text(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sessions' AND sql IS NOT NULL",
                ))
                .await?
                .iter()
                .map(|r| r.try_get_by_index::<String>(0))
                .collect::<Result<_, _>>()?;
            let indexes: Vec<&str> = indexes.iter().map(String::as_str).collect();
            let columns = "id, gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, \
                           registered_count, created_at";
            crate::rebuild_sqlite_table(conn, "sessions", &create, columns, columns, &indexes).await
        }
    }
}
