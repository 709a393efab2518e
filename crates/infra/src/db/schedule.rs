//! [`ScheduleRepository`] on SQL. Booking is where concurrency bites: the place is
//! taken by a guarded counter (`registered_count < capacity` in the UPDATE itself)
//! and the member's row by the `(session_id, member_id)` unique key, both inside one
//! write transaction — no read-then-write decides anything.

use async_trait::async_trait;
use domain::schedule::{
    Booking, Class, ClassPatch, NewClass, Participation, ScheduleRepository, Session, SessionDraft,
};
use domain::{ClassId, DomainError, GymId, Page, Result, SessionId, UserId};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};
use time::OffsetDateTime;

use super::rows::{CLASS_COLS, PARTICIPATION_COLS, SESSION_COLS};
use super::{
    Db, PageValues, entities, entity, exec, one, opt_id, timed, timed_or, ts, unavailable_or_internal, unknown_user,
};

/// Guards of the inserts and updates that name a user (instructor, trainer): the
/// parameter is NULL or a member of the gym (`$1`), so another gym's user is refused
/// by the statement itself.
const MEMBER_OR_NULL_5: &str = "($5 IS NULL OR EXISTS (SELECT 1 FROM memberships WHERE gym_id = $1 AND user_id = $5))";
const MEMBER_OR_NULL_7: &str = "($7 IS NULL OR EXISTS (SELECT 1 FROM memberships WHERE gym_id = $1 AND user_id = $7))";
const MEMBER_OR_NULL_8: &str = "($8 IS NULL OR EXISTS (SELECT 1 FROM memberships WHERE gym_id = $1 AND user_id = $8))";

#[derive(FromQueryResult)]
struct StatusRow {
    status: String,
}

/// The member's participation in a session, as the transaction sees it now.
pub(super) async fn participation_status_of(
    c: &impl ConnectionTrait,
    session_id: SessionId,
    member: UserId,
) -> std::result::Result<Option<String>, DbErr> {
    Ok(one::<StatusRow>(
        c,
        "SELECT status FROM participations WHERE session_id = $1 AND member_id = $2",
        vec![session_id.0.into(), member.0.into()],
    )
    .await?
    .map(|r| r.status))
}

/// Gives a member's `registered` place back inside a write transaction: the session
/// row first (the lock order of every write to places), then the participation.
/// `Ok(false)`, with nothing changed, when the member held no registered place.
pub(super) async fn give_back_place(
    tx: &DatabaseTransaction,
    gym: GymId,
    session_id: SessionId,
    member: UserId,
) -> std::result::Result<bool, DbErr> {
    let freed = exec(
        tx,
        "UPDATE sessions SET registered_count = registered_count - 1 \
         WHERE gym_id = $1 AND id = $2 AND registered_count > 0",
        vec![gym.0.into(), session_id.0.into()],
    )
    .await?;
    if freed == 0 {
        return Ok(false);
    }
    let cancelled = exec(
        tx,
        "UPDATE participations SET status = 'cancelled' \
         WHERE gym_id = $1 AND session_id = $2 AND member_id = $3 AND status = 'registered'",
        vec![gym.0.into(), session_id.0.into(), member.0.into()],
    )
    .await?;
    if cancelled == 0 {
        // Not this member's place after all: undo the count.
        let undo = "UPDATE sessions SET registered_count = registered_count + 1 WHERE gym_id = $1 AND id = $2";
        exec(tx, undo, vec![gym.0.into(), session_id.0.into()]).await?;
    }
    Ok(cancelled == 1)
}

/// Locks the member's membership row for the rest of the transaction, first of the
/// global lock order (membership → session → participation); `Ok(false)` when the
/// user is not a member of the gym. The no-op `UPDATE` is the one row lock both
/// databases spell alike (SQLite's writer lock is already the whole database's).
pub(super) async fn lock_member(
    tx: &DatabaseTransaction,
    gym: GymId,
    member: UserId,
) -> std::result::Result<bool, DbErr> {
    let sql = "UPDATE memberships SET role = role WHERE gym_id = $1 AND user_id = $2";
    Ok(exec(tx, sql, vec![gym.0.into(), member.0.into()]).await? == 1)
}

/// Whether a stored participation status holds one of the session's places.
pub(super) fn holds_place(status: Option<String>) -> bool {
    matches!(status.as_deref(), Some("registered" | "attended"))
}

#[async_trait]
impl ScheduleRepository for Db {
    async fn active_classes(&self, gym: GymId, page: Page) -> Result<Vec<Class>> {
        let sql = format!(
            "SELECT {CLASS_COLS} FROM classes WHERE gym_id = $1 AND active = TRUE ORDER BY id LIMIT $2 OFFSET $3"
        );
        let values = vec![gym.0.into(), page.limit_value(), page.skip_value()];
        timed("classes_list", entities(&self.conn, &sql, values)).await
    }

    async fn class(&self, gym: GymId, id: ClassId) -> Result<Option<Class>> {
        let sql = format!("SELECT {CLASS_COLS} FROM classes WHERE gym_id = $1 AND id = $2");
        timed("class_get", entity(&self.conn, &sql, vec![gym.0.into(), id.0.into()])).await
    }

    async fn create_class(&self, gym: GymId, c: &NewClass, now: OffsetDateTime) -> Result<Class> {
        let sql = format!(
            "INSERT INTO classes \
             (gym_id, name, description, duration_minutes, max_capacity, category, instructor_id, active, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, TRUE, $8 WHERE {MEMBER_OR_NULL_7} RETURNING {CLASS_COLS}"
        );
        let values = vec![
            gym.0.into(),
            c.name.clone().into(),
            c.description.clone().into(),
            c.duration_minutes.get().into(),
            c.max_capacity.get().into(),
            c.category.clone().into(),
            opt_id(c.instructor_id),
            ts(now),
        ];
        // No row: the guard refused an instructor who is not a member of the gym.
        timed_or("class_create", entity(&self.conn, &sql, values), unknown_user).await?.ok_or(DomainError::UserNotFound)
    }

    async fn update_class(&self, gym: GymId, id: ClassId, p: &ClassPatch) -> Result<Option<Class>> {
        let sql = format!(
            "UPDATE classes SET name = COALESCE($3, name), description = COALESCE($4, description), \
             duration_minutes = COALESCE($5, duration_minutes), max_capacity = COALESCE($6, max_capacity), \
             category = COALESCE($7, category), instructor_id = COALESCE($8, instructor_id), \
             active = COALESCE($9, active) \
             WHERE gym_id = $1 AND id = $2 AND {MEMBER_OR_NULL_8} RETURNING {CLASS_COLS}"
        );
        let values = vec![
            gym.0.into(),
            id.0.into(),
            p.name.clone().into(),
            p.description.clone().into(),
            p.duration_minutes.map(|d| d.get()).into(),
            p.max_capacity.map(|c| c.get()).into(),
            p.category.clone().into(),
            opt_id(p.instructor_id),
            p.active.into(),
        ];
        let updated: Option<Class> = timed_or("class_update", entity(&self.conn, &sql, values), unknown_user).await?;
        if updated.is_none() && p.instructor_id.is_some() && self.class(gym, id).await?.is_some() {
            // The class exists, so the guard refused the instructor.
            return Err(DomainError::UserNotFound);
        }
        Ok(updated)
    }

    async fn sessions_between(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        page: Page,
    ) -> Result<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE gym_id = $1 AND start_time >= $2 AND start_time <= $3 \
             ORDER BY start_time, id LIMIT $4 OFFSET $5"
        );
        let values = vec![gym.0.into(), ts(from), ts(through), page.limit_value(), page.skip_value()];
        timed("sessions_list", entities(&self.conn, &sql, values)).await
    }

    async fn session(&self, gym: GymId, id: SessionId) -> Result<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE gym_id = $1 AND id = $2");
        timed("session_get", entity(&self.conn, &sql, vec![gym.0.into(), id.0.into()])).await
    }

    async fn create_session(&self, gym: GymId, d: &SessionDraft, now: OffsetDateTime) -> Result<Session> {
        let sql = format!(
            "INSERT INTO sessions \
             (gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, registered_count, \
             created_at) \
             SELECT $1, $2, $3, $4, 'scheduled', $5, $6, $7, 0, $8 WHERE {MEMBER_OR_NULL_5} RETURNING {SESSION_COLS}"
        );
        let values = vec![
            gym.0.into(),
            d.class_id.0.into(),
            ts(d.start_time.get()),
            ts(d.end_time.get()),
            opt_id(d.trainer_id),
            d.room.clone().into(),
            d.capacity.into(),
            ts(now),
        ];
        // No row: the guard refused a trainer who is not a member of the gym.
        timed_or("session_create", entity(&self.conn, &sql, values), unknown_user)
            .await?
            .ok_or(DomainError::UserNotFound)
    }

    async fn cancel_session(&self, gym: GymId, id: SessionId) -> Result<Option<Session>> {
        let sql =
            format!("UPDATE sessions SET status = 'cancelled' WHERE gym_id = $1 AND id = $2 RETURNING {SESSION_COLS}");
        timed("session_cancel", entity(&self.conn, &sql, vec![gym.0.into(), id.0.into()])).await
    }

    async fn book(&self, gym: GymId, session_id: SessionId, member: UserId, now: OffsetDateTime) -> Result<Booking> {
        let tx = self.write_tx().await?;
        let outcome = timed("session_book", async {
            // The membership first, then the session's row (the lock order of every
            // write to places, so booking, cancelling, check-in and removal never
            // deadlock). A removal of this member holds the membership row until it
            // has given the member's places back: this booking waits for it and finds
            // no membership, or went first and its place is given back.
            if !lock_member(&tx, gym, member).await? {
                return Ok(Err(None));
            }
            // The place is taken only while the session is open and has one.
            let taken = exec(
                &tx,
                "UPDATE sessions SET registered_count = registered_count + 1 \
                 WHERE gym_id = $1 AND id = $2 AND status = 'scheduled' AND start_time > $3 \
                 AND registered_count < capacity",
                vec![gym.0.into(), session_id.0.into(), ts(now)],
            )
            .await?;
            if taken == 0 {
                // Report what this transaction sees; the domain says why.
                let holds_place = holds_place(participation_status_of(&tx, session_id, member).await?);
                let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE gym_id = $1 AND id = $2");
                let session = entity::<Session>(&tx, &sql, vec![gym.0.into(), session_id.0.into()]).await?;
                return Ok(Err(Some((holds_place, session))));
            }
            let upsert = format!(
                "INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at) \
                 VALUES ($1, $2, $3, 'registered', NULL, $4) \
                 ON CONFLICT (session_id, member_id) DO UPDATE SET status = 'registered', attendance_time = NULL \
                 WHERE participations.status IN ('cancelled', 'no_show') RETURNING {PARTICIPATION_COLS}"
            );
            // No row: the member already holds a place (registered or attended); the
            // rollback gives the counted place back.
            let values = vec![gym.0.into(), session_id.0.into(), member.0.into(), ts(now)];
            match entity::<Participation>(&tx, &upsert, values).await? {
                Some(p) => Ok(Ok(p)),
                None => Ok(Err(Some((true, None)))),
            }
        })
        .await?;
        match outcome {
            Ok(p) => {
                tx.commit().await.map_err(unavailable_or_internal)?;
                Ok(Booking::Booked(p))
            }
            Err(refused) => {
                tx.rollback().await.map_err(unavailable_or_internal)?;
                Ok(refused
                    .map_or(Booking::NotAMember, |(holds_place, session)| Booking::Refused { holds_place, session }))
            }
        }
    }

    async fn cancel_booking(&self, gym: GymId, session_id: SessionId, member: UserId) -> Result<bool> {
        let tx = self.write_tx().await?;
        let cancelled = timed("session_unbook", give_back_place(&tx, gym, session_id, member)).await?;
        if cancelled {
            tx.commit().await.map_err(unavailable_or_internal)?;
        } else {
            // The member held no registered place: the freed count is given back.
            tx.rollback().await.map_err(unavailable_or_internal)?;
        }
        Ok(cancelled)
    }

    async fn participants(&self, gym: GymId, session_id: SessionId, page: Page) -> Result<Vec<Participation>> {
        let sql = format!(
            "SELECT {PARTICIPATION_COLS} FROM participations WHERE gym_id = $1 AND session_id = $2 \
             ORDER BY id LIMIT $3 OFFSET $4"
        );
        let values = vec![gym.0.into(), session_id.0.into(), page.limit_value(), page.skip_value()];
        timed("participants_list", entities(&self.conn, &sql, values)).await
    }
}
