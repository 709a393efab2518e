//! [`GymRepository`] on SQL.

use async_trait::async_trait;
use domain::gyms::{Gym, GymRepository, MemberEntry, Membership, NewGym};
use domain::{DomainError, GymId, Page, Result, Role, SessionId, UserId};
use sea_orm::{DatabaseTransaction, DbErr, FromQueryResult};
use time::OffsetDateTime;

use super::rows::{GYM_COLS, role};
use super::schedule::give_back_place;
use super::{
    Db, PageValues, all, already_member, entities, entity, exec, one, timed, timed_or, ts, unavailable_or_internal,
};

const MEMBERSHIP_COLS: &str = "user_id, gym_id, role, joined_at";

#[derive(FromQueryResult)]
struct SessionIdRow {
    session_id: i64,
}

#[derive(FromQueryResult)]
struct GymRoleIdRow {
    gym_id: i64,
    role: String,
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

/// Locks the gym's row for the rest of the transaction, so that two concurrent
/// changes of owners are serialized (portable stand-in for `SELECT … FOR UPDATE`).
async fn lock_gym(tx: &DatabaseTransaction, gym: GymId) -> Result<(), DbErr> {
    exec(tx, "UPDATE gyms SET id = id WHERE id = $1", vec![gym.0.into()]).await.map(|_| ())
}

/// Whether changing `user` away from owner would leave the gym without one.
async fn would_orphan(tx: &DatabaseTransaction, gym: GymId, user: UserId) -> Result<bool, DbErr> {
    let current = entity::<Membership>(
        tx,
        &format!("SELECT {MEMBERSHIP_COLS} FROM memberships WHERE gym_id = $1 AND user_id = $2"),
        vec![gym.0.into(), user.0.into()],
    )
    .await?;
    if current.is_none_or(|m| m.role != Role::Owner) {
        return Ok(false);
    }
    let others = one::<Count>(
        tx,
        "SELECT COUNT(*) AS n FROM memberships WHERE gym_id = $1 AND role = 'owner' AND user_id <> $2",
        vec![gym.0.into(), user.0.into()],
    )
    .await?;
    Ok(others.is_none_or(|c| c.n == 0))
}

#[async_trait]
impl GymRepository for Db {
    async fn create_with_owner(&self, gym: &NewGym, owner: UserId, now: OffsetDateTime) -> Result<Gym> {
        let tx = self.write_tx().await?;
        let created = timed(
            "gym_create",
            entity::<Gym>(
                &tx,
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
                &tx,
                "INSERT INTO memberships (gym_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)",
                vec![created.id.0.into(), owner.0.into(), ts(now)],
            ),
        )
        .await?;
        tx.commit().await.map_err(unavailable_or_internal)?;
        Ok(created)
    }

    async fn by_id(&self, id: GymId) -> Result<Option<Gym>> {
        let sql = format!("SELECT {GYM_COLS} FROM gyms WHERE id = $1");
        timed("gym_by_id", entity(&self.conn, &sql, vec![id.0.into()])).await
    }

    async fn membership(&self, user: UserId, gym: GymId) -> Result<Option<Membership>> {
        let sql = format!("SELECT {MEMBERSHIP_COLS} FROM memberships WHERE user_id = $1 AND gym_id = $2");
        timed("membership_get", entity(&self.conn, &sql, vec![user.0.into(), gym.0.into()])).await
    }

    async fn roles_of(&self, user: UserId) -> Result<Vec<(GymId, Role)>> {
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
        let sql = "SELECT g.id, g.name, g.timezone, g.address, g.created_at, m.role \
                   FROM memberships m JOIN gyms g ON g.id = m.gym_id WHERE m.user_id = $1 ORDER BY g.id";
        timed("gyms_of_user", entities(&self.conn, sql, vec![user.0.into()])).await
    }

    async fn members(&self, gym: GymId, role: Option<Role>, page: Page) -> Result<Vec<MemberEntry>> {
        // The page is cut from this gym's memberships alone (its (gym_id, user_id)
        // index, in order), and only its rows are joined to users: a deep page costs
        // the gym's rows up to it, never a scan of the platform's users.
        let sql = "SELECT u.id, u.auth0_id, u.email, u.name, u.phone, u.created_at, u.updated_at, m.role, m.joined_at \
                   FROM (SELECT user_id, role, joined_at FROM memberships \
                         WHERE gym_id = $1 AND ($2 IS NULL OR role = $2) ORDER BY user_id LIMIT $3 OFFSET $4) m \
                   JOIN users u ON u.id = m.user_id ORDER BY m.user_id";
        let values =
            vec![gym.0.into(), role.map(|r| r.as_str().to_owned()).into(), page.limit_value(), page.skip_value()];
        timed("members_list", entities(&self.conn, sql, values)).await
    }

    async fn add_member(&self, gym: GymId, user: UserId, role: Role, now: OffsetDateTime) -> Result<Membership> {
        let sql = format!(
            "INSERT INTO memberships (gym_id, user_id, role, joined_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) RETURNING {MEMBERSHIP_COLS}"
        );
        let values = vec![gym.0.into(), user.0.into(), role.as_str().to_owned().into(), ts(now)];
        // No row: the user does not exist (the EXISTS guard), so nothing was inserted.
        timed_or("membership_create", entity(&self.conn, &sql, values), already_member)
            .await?
            .ok_or(DomainError::UserNotFound)
    }

    async fn set_role(&self, gym: GymId, user: UserId, role: Role) -> Result<Option<Membership>> {
        let tx = self.write_tx().await?;
        let updated = timed("membership_set_role", async {
            lock_gym(&tx, gym).await?;
            if role != Role::Owner && would_orphan(&tx, gym, user).await? {
                return Ok(Err(DomainError::LastOwner));
            }
            let sql = format!(
                "UPDATE memberships SET role = $3 WHERE gym_id = $1 AND user_id = $2 RETURNING {MEMBERSHIP_COLS}"
            );
            Ok(Ok(entity(&tx, &sql, vec![gym.0.into(), user.0.into(), role.as_str().to_owned().into()]).await?))
        })
        .await??;
        tx.commit().await.map_err(unavailable_or_internal)?;
        Ok(updated)
    }

    async fn remove_member(&self, gym: GymId, user: UserId, now: OffsetDateTime) -> Result<Option<Vec<SessionId>>> {
        let tx = self.write_tx().await?;
        let removed = timed("membership_delete", async {
            lock_gym(&tx, gym).await?;
            if would_orphan(&tx, gym, user).await? {
                return Ok(Err(DomainError::LastOwner));
            }
            let n = exec(
                &tx,
                "DELETE FROM memberships WHERE gym_id = $1 AND user_id = $2",
                vec![gym.0.into(), user.0.into()],
            )
            .await?;
            if n == 0 {
                return Ok(Ok(None));
            }
            // Places held in sessions still ahead go back, each as `cancel_booking`
            // gives one back.
            let held = all::<SessionIdRow>(
                &tx,
                "SELECT p.session_id FROM participations p JOIN sessions s ON s.id = p.session_id \
                 WHERE p.gym_id = $1 AND p.member_id = $2 AND p.status = 'registered' AND s.start_time > $3 \
                 ORDER BY p.session_id",
                vec![gym.0.into(), user.0.into(), ts(now)],
            )
            .await?;
            let mut freed = Vec::with_capacity(held.len());
            for SessionIdRow { session_id } in held {
                let session_id = SessionId(session_id);
                if give_back_place(&tx, gym, session_id, user).await? {
                    freed.push(session_id);
                }
            }
            Ok(Ok(Some(freed)))
        })
        .await??;
        tx.commit().await.map_err(unavailable_or_internal)?;
        Ok(removed)
    }
}
