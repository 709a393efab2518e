//! [`GymRepository`] on SQL.

use async_trait::async_trait;
use domain::gyms::{Gym, GymRepository, MemberEntry, Membership, NewGym};
use domain::members::MemberLock;
use domain::tx::Tx;
use domain::{DomainError, GymId, Page, Result, Role, UserId};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult};
use time::OffsetDateTime;

use super::outbox::txn;
use super::rows::{GYM_COLS, role};
use super::{Cell, Db, PageValues, all, already_member, entities, entity, exec, one, rows_cte, timed, timed_or, ts};

const MEMBERSHIP_COLS: &str = "user_id, gym_id, role, joined_at";

#[derive(FromQueryResult)]
struct GymRoleIdRow {
    gym_id: i64,
    role: String,
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

/// The row lock of a member's membership, as each backend spells it: PostgreSQL's
/// `FOR NO KEY UPDATE` (it conflicts with another member lock and with the removal's
/// `DELETE`, yet writes no new row version); SQLite needs none, as its write
/// transactions are `BEGIN IMMEDIATE` and hold the database's one writer lock.
pub(super) fn member_lock(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "FOR NO KEY UPDATE",
        _ => "",
    }
}

#[async_trait]
impl GymRepository for Db {
    async fn create_with_owner(&self, tx: &mut Tx, gym: &NewGym, owner: UserId, now: OffsetDateTime) -> Result<Gym> {
        let tx = txn(tx)?;
        let created = timed(
            "gym_create",
            entity::<Gym>(
                tx,
                &format!(
                    "INSERT INTO gyms (name, timezone, address, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING {GYM_COLS}"
                ),
                vec![gym.name.clone().into(), gym.timezone.clone().into(), gym.address.clone().into(), ts(now)],
            ),
        )
        .await?
        .ok_or_else(|| DomainError::internal("insert returned no gym"))?;
        timed(
            "membership_create",
            exec(
                tx,
                "INSERT INTO memberships (gym_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)",
                vec![created.id.0.into(), owner.0.into(), ts(now)],
            ),
        )
        .await?;
        Ok(created)
    }

    async fn by_id(&self, id: GymId) -> Result<Option<Gym>> {
        let sql = format!("SELECT {GYM_COLS} FROM gyms WHERE id = $1");
        timed("gym_by_id", entity(&self.conn, &sql, vec![id.0.into()])).await
    }

    async fn membership(&self, user: UserId, gym: GymId) -> Result<Option<Membership>> {
        let sql = format!("SELECT {MEMBERSHIP_COLS} FROM memberships WHERE gym_id = $1 AND user_id = $2");
        timed("membership_get", entity(&self.conn, &sql, vec![gym.0.into(), user.0.into()])).await
    }

    async fn roles_of(&self, user: UserId) -> Result<Vec<(GymId, Role)>> {
        // The one read across gyms: a user's own memberships, by user (its index).
        let rows = timed(
            "roles_of_user",
            all::<GymRoleIdRow>(
                &self.conn,
                "SELECT gym_id, role FROM memberships WHERE user_id = $1 ORDER BY gym_id",
                vec![user.0.into()],
            ),
        )
        .await?;
        rows.into_iter().map(|r| Ok((GymId(r.gym_id), role(&r.role)?))).collect()
    }

    async fn gyms_of(&self, user: UserId) -> Result<Vec<(Gym, Role)>> {
        let sql = "SELECT g.id, g.name, g.timezone, g.address, g.created_at, g.booking_opens_hours, \
                   g.booking_closes_minutes, g.waitlist_cutoff_minutes, g.max_waitlists_per_member, g.qr_mode, g.occupancy_window_minutes, \
                   g.booking_requires_pass, g.cancel_cutoff_minutes, m.role \
                   FROM memberships m JOIN gyms g ON g.id = m.gym_id WHERE m.user_id = $1 ORDER BY g.id";
        timed("gyms_of_user", entities(&self.conn, sql, vec![user.0.into()])).await
    }

    async fn members(&self, gym: GymId, role: Option<Role>, page: Page) -> Result<Vec<MemberEntry>> {
        // The page is cut from this gym's memberships alone (its primary key, in
        // order), and only its rows are joined to users: a deep page costs the gym's
        // rows up to it, never a scan of the platform's users.
        let sql = "SELECT u.id, u.auth0_id, u.email, u.name, u.phone, u.created_at, u.updated_at, m.role, m.joined_at \
                   FROM (SELECT user_id, role, joined_at FROM memberships \
                         WHERE gym_id = $1 AND ($2 IS NULL OR role = $2) ORDER BY user_id LIMIT $3 OFFSET $4) m \
                   JOIN users u ON u.id = m.user_id ORDER BY m.user_id";
        let values =
            vec![gym.0.into(), role.map(|r| r.as_str().to_owned()).into(), page.limit_value(), page.skip_value()];
        self.lagging("members_list", |c| Box::pin(entities(c, sql, values.clone()))).await
    }

    async fn lock_gym(&self, tx: &mut Tx, gym: GymId) -> Result<()> {
        let sql = match self.backend() {
            DbBackend::Postgres => "SELECT id FROM gyms WHERE id = $1 FOR NO KEY UPDATE",
            _ => "SELECT id FROM gyms WHERE id = $1",
        };
        timed("gym_lock", sql_exec(txn(tx)?, sql, vec![gym.0.into()])).await
    }

    async fn locked_gym(&self, tx: &mut Tx, gym: GymId) -> Result<Option<Gym>> {
        let lock = match self.backend() {
            DbBackend::Postgres => "FOR NO KEY UPDATE",
            _ => "",
        };
        let sql = format!("SELECT {GYM_COLS} FROM gyms WHERE id = $1 {lock}");
        timed("gym_lock", entity(txn(tx)?, &sql, vec![gym.0.into()])).await
    }

    async fn update_gym(&self, tx: &mut Tx, gym: &Gym) -> Result<Gym> {
        let sql = format!(
            "UPDATE gyms SET name = $2, timezone = $3, address = $4, booking_opens_hours = $5, \
             booking_closes_minutes = $6, waitlist_cutoff_minutes = $7, max_waitlists_per_member = $8, \
             qr_mode = $9, occupancy_window_minutes = $10, booking_requires_pass = $11, \
             cancel_cutoff_minutes = $12 WHERE id = $1 RETURNING {GYM_COLS}"
        );
        let values = vec![
            gym.id.0.into(),
            gym.name.clone().into(),
            gym.timezone.clone().into(),
            gym.address.clone().into(),
            gym.booking.opens_hours().into(),
            gym.booking.closes_minutes().into(),
            gym.waitlist.cutoff_minutes().into(),
            gym.waitlist.max_per_member().into(),
            gym.qr_mode.as_str().into(),
            gym.occupancy_window_minutes.into(),
            gym.booking_requires_pass.into(),
            gym.cancel_cutoff_minutes.into(),
        ];
        timed("gym_update", entity(txn(tx)?, &sql, values))
            .await?
            .ok_or_else(|| DomainError::internal("the locked gym was not updated"))
    }

    async fn owners(&self, tx: &mut Tx, gym: GymId) -> Result<i64> {
        let sql = "SELECT COUNT(*) AS n FROM memberships WHERE gym_id = $1 AND role = 'owner'";
        let n = timed("gym_owners", one::<Count>(txn(tx)?, sql, vec![gym.0.into()])).await?;
        Ok(n.map_or(0, |c| c.n))
    }

    async fn add_member(
        &self,
        tx: &mut Tx,
        gym: GymId,
        user: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<Membership> {
        let sql = format!(
            "INSERT INTO memberships (gym_id, user_id, role, joined_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) RETURNING {MEMBERSHIP_COLS}"
        );
        let values = vec![gym.0.into(), user.0.into(), role.as_str().to_owned().into(), ts(now)];
        // No row: the user does not exist (the EXISTS guard), so nothing was inserted.
        timed_or("membership_create", entity(txn(tx)?, &sql, values), already_member)
            .await?
            .ok_or(DomainError::UserNotFound)
    }

    async fn set_role(&self, tx: &mut Tx, gym: GymId, user: UserId, role: Role) -> Result<Option<Membership>> {
        let sql =
            format!("UPDATE memberships SET role = $3 WHERE gym_id = $1 AND user_id = $2 RETURNING {MEMBERSHIP_COLS}");
        let values = vec![gym.0.into(), user.0.into(), role.as_str().to_owned().into()];
        timed("membership_set_role", entity(txn(tx)?, &sql, values)).await
    }

    async fn delete_member(&self, tx: &mut Tx, gym: GymId, user: UserId) -> Result<bool> {
        let sql = "DELETE FROM memberships WHERE gym_id = $1 AND user_id = $2";
        Ok(timed("membership_delete", exec(txn(tx)?, sql, vec![gym.0.into(), user.0.into()])).await? == 1)
    }
}

#[async_trait]
impl MemberLock for Db {
    async fn lock_members(&self, tx: &mut Tx, keys: &[(GymId, UserId)]) -> Result<Vec<Membership>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = keys.iter().map(|(g, u)| vec![Cell::Int(Some(g.0)), Cell::Int(Some(u.0))]).collect();
        let (cte, values) = rows_cte(self.backend(), "k", &[("g", "BIGINT"), ("u", "BIGINT")], rows, 1);
        // A join on the keys, not `(gym_id, user_id) IN (…)`, which SQLite answers by
        // scanning the whole index. ORDER BY before the lock: PostgreSQL locks the rows
        // as they come out, sorted.
        let lock = match member_lock(self.backend()) {
            "" => String::new(),
            lock => format!("{lock} OF memberships"),
        };
        let sql = format!(
            "WITH {cte} SELECT {MEMBERSHIP_COLS} FROM k JOIN memberships \
             ON memberships.gym_id = k.g AND memberships.user_id = k.u ORDER BY memberships.gym_id, memberships.user_id {lock}"
        );
        timed("members_lock", entities(txn(tx)?, &sql, values)).await
    }

    async fn lock_member(&self, tx: &mut Tx, gym: GymId, user: UserId) -> Result<Option<Membership>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLS} FROM memberships WHERE gym_id = $1 AND user_id = $2 {}",
            member_lock(self.backend())
        );
        timed("member_lock", entity(txn(tx)?, &sql, vec![gym.0.into(), user.0.into()])).await
    }
}

/// Runs a statement for its locks alone.
async fn sql_exec(c: &impl ConnectionTrait, sql: &str, values: Vec<sea_orm::Value>) -> Result<(), sea_orm::DbErr> {
    c.query_all_raw(sea_orm::Statement::from_sql_and_values(c.get_database_backend(), sql, values)).await.map(drop)
}
