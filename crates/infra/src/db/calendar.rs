//! [`CalendarRepository`] on SQL.

use async_trait::async_trait;
use domain::calendar::{CalendarRepository, Feed, FeedEntry};
use domain::schedule::Session;
use domain::tx::Tx;
use domain::{DomainError, GymId, Result, UserId};
use sea_orm::{DbErr, FromQueryResult, QueryResult};
use time::OffsetDateTime;

use super::outbox::txn;
use super::rows::{FromColumns, SESSION_COLS};
use super::{Db, entities, exec, one, timed, timed_or, ts};

#[derive(FromQueryResult)]
struct TokenRow {
    token: String,
}

#[derive(FromQueryResult)]
struct OwnerRow {
    gym_id: i64,
    member_id: i64,
    name: String,
    timezone: String,
}

impl FromColumns for FeedEntry {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(FeedEntry {
            session: Session::read(r, pre)?,
            class_name: r.try_get(pre, "class_name")?,
            changed_at: r.try_get(pre, "changed_at")?,
        })
    }
}

/// A token for someone who is no longer a member (the foreign key to the membership).
fn membership_gone(e: &DbErr) -> Option<DomainError> {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))).then_some(DomainError::NotAMember)
}

/// The most sessions a feed lists (a member's year of classes, and then some).
const FEED_MAX: i64 = 1000;

#[async_trait]
impl CalendarRepository for Db {
    async fn claim_token(
        &self,
        tx: &mut Tx,
        gym: GymId,
        member: UserId,
        fresh: &str,
        now: OffsetDateTime,
    ) -> Result<String> {
        let tx = txn(tx)?;
        // A second first use waits on the first's row (its key), then keeps it; the
        // next statement reads what was committed.
        let sql = "INSERT INTO calendar_tokens (gym_id, member_id, token, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (gym_id, member_id) DO NOTHING";
        let values = vec![gym.0.into(), member.0.into(), fresh.to_owned().into(), ts(now)];
        timed_or("calendar_token_claim", exec(tx, sql, values), membership_gone).await?;
        let sql = "SELECT token FROM calendar_tokens WHERE gym_id = $1 AND member_id = $2";
        let row = timed("calendar_token", one::<TokenRow>(tx, sql, vec![gym.0.into(), member.0.into()])).await?;
        row.map(|r| r.token).ok_or_else(|| DomainError::internal("a claimed calendar token was not stored"))
    }

    async fn set_token(&self, tx: &mut Tx, gym: GymId, member: UserId, token: &str, now: OffsetDateTime) -> Result<()> {
        let sql = "INSERT INTO calendar_tokens (gym_id, member_id, token, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (gym_id, member_id) DO UPDATE SET token = excluded.token, created_at = excluded.created_at";
        let values = vec![gym.0.into(), member.0.into(), token.to_owned().into(), ts(now)];
        timed_or("calendar_token_set", exec(txn(tx)?, sql, values), membership_gone).await.map(drop)
    }

    async fn feed(&self, gym: GymId, token: &str, after: OffsetDateTime) -> Result<Option<Feed>> {
        let sql = "SELECT t.gym_id, t.member_id, g.name, g.timezone FROM calendar_tokens t \
                   JOIN gyms g ON g.id = t.gym_id WHERE t.gym_id = $1 AND t.token = $2";
        let values = vec![gym.0.into(), token.to_owned().into()];
        let Some(owner) = timed("calendar_owner", one::<OwnerRow>(&self.conn, sql, values)).await? else {
            return Ok(None);
        };
        let cols: Vec<String> = SESSION_COLS.split(", ").map(|c| format!("s.{c}")).collect();
        // A place held in a scheduled session, or a booking of a session the gym
        // cancelled (the cancellation cancelled the booking with it).
        let sql = format!(
            "SELECT {}, c.name AS class_name, p.created_at AS changed_at FROM participations p \
             JOIN sessions s ON s.gym_id = p.gym_id AND s.id = p.session_id \
             JOIN classes c ON c.gym_id = s.gym_id AND c.id = s.class_id \
             WHERE p.gym_id = $1 AND p.member_id = $2 AND s.end_time > $3 \
             AND ((s.status = 'scheduled' AND p.status IN ('registered', 'attended')) \
                  OR (s.status = 'cancelled' AND p.status IN ('registered', 'cancelled'))) \
             ORDER BY s.start_time, s.id LIMIT {FEED_MAX}",
            cols.join(", ")
        );
        let values = vec![owner.gym_id.into(), owner.member_id.into(), ts(after)];
        let entries = timed("calendar_feed", entities::<FeedEntry>(&self.conn, &sql, values)).await?;
        Ok(Some(Feed { gym_id: GymId(owner.gym_id), gym_name: owner.name, timezone: owner.timezone, entries }))
    }
}
