//! [`UserRepository`] on SQL.

use async_trait::async_trait;
use domain::attendance::QrSecret;
use domain::tx::Tx;
use domain::users::{Claims, ProfilePatch, User, UserRepository};
use domain::{DomainError, GymId, Result, UserId};
use time::OffsetDateTime;

use super::outbox::txn;
use super::rows::USER_COLS;
use super::{Db, entity, exec, timed, ts};

#[async_trait]
impl UserRepository for Db {
    async fn provision(&self, tx: &mut Tx, claims: &Claims, qr_secret: &QrSecret, now: OffsetDateTime) -> Result<User> {
        let c = txn(tx)?;
        let select = format!("SELECT {USER_COLS} FROM users WHERE auth0_id = $1");
        timed("user_provision", async {
            if let Some(u) = entity::<User>(c, &select, vec![claims.sub.clone().into()]).await? {
                return Ok(u);
            }
            // Two first requests of one subject may race: the unique key on auth0_id
            // settles it and both read the one row afterwards. An id clash (one in
            // 2^53 per existing user) is a unique violation of the key: draw again.
            for attempt in 0.. {
                let inserted = exec(
                    c,
                    "INSERT INTO users (id, auth0_id, email, name, qr_secret, qr_key, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $7, $6, $6) ON CONFLICT (auth0_id) DO NOTHING",
                    vec![
                        UserId::random().0.into(),
                        claims.sub.clone().into(),
                        claims.email.clone().into(),
                        claims.name.clone().into(),
                        qr_secret.as_str().to_owned().into(),
                        ts(now),
                        qr_secret.key().map(str::to_owned).into(),
                    ],
                )
                .await;
                match inserted {
                    Err(e)
                        if attempt < 3
                            && matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {}
                    other => {
                        other?;
                        break;
                    }
                }
            }
            entity(c, &select, vec![claims.sub.clone().into()])
                .await?
                .ok_or_else(|| sea_orm::DbErr::RecordNotFound("provisioned user".into()))
        })
        .await
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        timed("user_by_id", entity(&self.conn, &sql, vec![id.0.into()])).await
    }

    async fn member_of(&self, gym: GymId, id: UserId) -> Result<Option<User>> {
        let sql = "SELECT u.id, u.auth0_id, u.email, u.name, u.phone, u.created_at, u.updated_at \
                   FROM users u JOIN memberships m ON m.user_id = u.id WHERE m.gym_id = $1 AND u.id = $2";
        timed("user_member_of", entity(&self.conn, sql, vec![gym.0.into(), id.0.into()])).await
    }

    async fn update_profile(&self, tx: &mut Tx, id: UserId, patch: &ProfilePatch, now: OffsetDateTime) -> Result<User> {
        let sql = format!(
            "UPDATE users SET name = COALESCE($2, name), phone = COALESCE($3, phone), updated_at = $4 \
             WHERE id = $1 RETURNING {USER_COLS}"
        );
        let values = vec![id.0.into(), patch.name.clone().into(), patch.phone.clone().into(), ts(now)];
        timed("user_update", entity(txn(tx)?, &sql, values)).await?.ok_or(DomainError::UserNotFound)
    }
}
