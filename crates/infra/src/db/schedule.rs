//! [`ScheduleRepository`] on SQL. Booking is where concurrency bites: the place is
//! taken by a guarded counter (`registered_count < capacity` in the UPDATE itself)
//! and the member's row by the `(session_id, member_id)` unique key, both inside one
//! write transaction — no read-then-write decides anything.

use async_trait::async_trait;
use domain::schedule::{
    Class, ClassPatch, NewClass, Participation, ScheduleRepository, Session, SessionDraft, SessionStatus,
};
use domain::{DomainError, GymId, Result, UserId};
use time::OffsetDateTime;

use super::rows::{CLASS_COLS, ClassRow, PARTICIPATION_COLS, ParticipationRow, SESSION_COLS, SessionRow, convert};
use super::{Db, all, exec, map_err, one, opt_id, timed, timed_or, ts, unknown_user};

#[async_trait]
impl ScheduleRepository for Db {
    async fn active_classes(&self, gym: GymId) -> Result<Vec<Class>> {
        let sql = format!("SELECT {CLASS_COLS} FROM classes WHERE gym_id = $1 AND active = TRUE ORDER BY id");
        let rows = timed("classes_list", all::<ClassRow>(&self.conn, &sql, vec![gym.0.into()])).await?;
        Ok(rows.into_iter().map(Class::from).collect())
    }

    async fn class(&self, gym: GymId, id: i64) -> Result<Option<Class>> {
        let sql = format!("SELECT {CLASS_COLS} FROM classes WHERE gym_id = $1 AND id = $2");
        Ok(timed("class_get", one::<ClassRow>(&self.conn, &sql, vec![gym.0.into(), id.into()])).await?.map(Class::from))
    }

    async fn create_class(&self, gym: GymId, c: &NewClass, now: OffsetDateTime) -> Result<Class> {
        let sql = format!(
            "INSERT INTO classes (gym_id, name, description, duration_minutes, max_capacity, category, instructor_id, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8) RETURNING {CLASS_COLS}"
        );
        let values = vec![
            gym.0.into(),
            c.name.clone().into(),
            c.description.clone().into(),
            c.duration_minutes.into(),
            c.max_capacity.into(),
            c.category.clone().into(),
            opt_id(c.instructor_id),
            ts(now),
        ];
        timed_or("class_create", one::<ClassRow>(&self.conn, &sql, values), unknown_user)
            .await?
            .map(Class::from)
            .ok_or_else(|| DomainError::Internal("insert returned no class".into()))
    }

    async fn update_class(&self, gym: GymId, id: i64, p: &ClassPatch) -> Result<Option<Class>> {
        let sql = format!(
            "UPDATE classes SET name = COALESCE($3, name), description = COALESCE($4, description), \
             duration_minutes = COALESCE($5, duration_minutes), max_capacity = COALESCE($6, max_capacity), \
             category = COALESCE($7, category), instructor_id = COALESCE($8, instructor_id), active = COALESCE($9, active) \
             WHERE gym_id = $1 AND id = $2 RETURNING {CLASS_COLS}"
        );
        let values = vec![
            gym.0.into(),
            id.into(),
            p.name.clone().into(),
            p.description.clone().into(),
            p.duration_minutes.into(),
            p.max_capacity.into(),
            p.category.clone().into(),
            opt_id(p.instructor_id),
            p.active.into(),
        ];
        Ok(timed_or("class_update", one::<ClassRow>(&self.conn, &sql, values), unknown_user).await?.map(Class::from))
    }

    async fn sessions_between(&self, gym: GymId, from: OffsetDateTime, until: OffsetDateTime) -> Result<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE gym_id = $1 AND start_time >= $2 AND start_time < $3 \
             ORDER BY start_time, id"
        );
        let rows = timed("sessions_list", all::<SessionRow>(&self.conn, &sql, vec![gym.0.into(), ts(from), ts(until)]))
            .await?;
        convert(rows, SessionRow::into_domain)
    }

    async fn session(&self, gym: GymId, id: i64) -> Result<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE gym_id = $1 AND id = $2");
        timed("session_get", one::<SessionRow>(&self.conn, &sql, vec![gym.0.into(), id.into()]))
            .await?
            .map(SessionRow::into_domain)
            .transpose()
    }

    async fn create_session(&self, gym: GymId, d: &SessionDraft, now: OffsetDateTime) -> Result<Session> {
        let sql = format!(
            "INSERT INTO sessions (gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, registered_count, created_at) \
             VALUES ($1, $2, $3, $4, 'scheduled', $5, $6, $7, 0, $8) RETURNING {SESSION_COLS}"
        );
        let values = vec![
            gym.0.into(),
            d.class_id.into(),
            ts(d.start_time.get()),
            ts(d.end_time.get()),
            opt_id(d.trainer_id),
            d.room.clone().into(),
            d.capacity.into(),
            ts(now),
        ];
        timed_or("session_create", one::<SessionRow>(&self.conn, &sql, values), unknown_user)
            .await?
            .ok_or_else(|| DomainError::Internal("insert returned no session".into()))?
            .into_domain()
    }

    async fn cancel_session(&self, gym: GymId, id: i64) -> Result<Option<Session>> {
        let sql =
            format!("UPDATE sessions SET status = 'cancelled' WHERE gym_id = $1 AND id = $2 RETURNING {SESSION_COLS}");
        timed("session_cancel", one::<SessionRow>(&self.conn, &sql, vec![gym.0.into(), id.into()]))
            .await?
            .map(SessionRow::into_domain)
            .transpose()
    }

    async fn book(&self, gym: GymId, session_id: i64, member: UserId, now: OffsetDateTime) -> Result<Participation> {
        let tx = self.write_tx().await?;
        let outcome = timed("session_book", async {
            // The member's row first: a second booking of the same member stops here
            // with already_registered, even when the session is full.
            let upsert = format!(
                "INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at) \
                 VALUES ($1, $2, $3, 'registered', NULL, $4) \
                 ON CONFLICT (session_id, member_id) DO UPDATE SET status = 'registered', attendance_time = NULL \
                 WHERE participations.status = 'cancelled' RETURNING {PARTICIPATION_COLS}"
            );
            let Some(p) =
                one::<ParticipationRow>(&tx, &upsert, vec![gym.0.into(), session_id.into(), member.0.into(), ts(now)]).await?
            else {
                return Ok(Err(DomainError::AlreadyRegistered));
            };
            let taken = exec(
                &tx,
                "UPDATE sessions SET registered_count = registered_count + 1 \
                 WHERE gym_id = $1 AND id = $2 AND status = 'scheduled' AND start_time > $3 AND registered_count < capacity",
                vec![gym.0.into(), session_id.into(), ts(now)],
            )
            .await?;
            if taken == 1 {
                return Ok(Ok(p));
            }
            // No place was taken: say why, from the session as it is now.
            let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE gym_id = $1 AND id = $2");
            let s = one::<SessionRow>(&tx, &sql, vec![gym.0.into(), session_id.into()]).await?;
            Ok(Err(match s {
                None => DomainError::SessionNotFound,
                Some(s) if s.status != SessionStatus::Scheduled.as_str() || s.start_time <= now => DomainError::SessionNotOpen,
                Some(_) => DomainError::SessionFull,
            }))
        })
        .await?;
        match outcome {
            Ok(p) => {
                tx.commit().await.map_err(map_err)?;
                p.into_domain()
            }
            Err(e) => {
                tx.rollback().await.map_err(map_err)?;
                Err(e)
            }
        }
    }

    async fn cancel_booking(&self, gym: GymId, session_id: i64, member: UserId) -> Result<bool> {
        let tx = self.write_tx().await?;
        let cancelled = timed("session_unbook", async {
            let n = exec(
                &tx,
                "UPDATE participations SET status = 'cancelled' \
                 WHERE gym_id = $1 AND session_id = $2 AND member_id = $3 AND status = 'registered'",
                vec![gym.0.into(), session_id.into(), member.0.into()],
            )
            .await?;
            if n == 1 {
                exec(
                    &tx,
                    "UPDATE sessions SET registered_count = registered_count - 1 \
                     WHERE gym_id = $1 AND id = $2 AND registered_count > 0",
                    vec![gym.0.into(), session_id.into()],
                )
                .await?;
            }
            Ok(n == 1)
        })
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(cancelled)
    }

    async fn participants(&self, gym: GymId, session_id: i64) -> Result<Vec<Participation>> {
        let sql = format!(
            "SELECT {PARTICIPATION_COLS} FROM participations WHERE gym_id = $1 AND session_id = $2 ORDER BY id"
        );
        let rows = timed(
            "participants_list",
            all::<ParticipationRow>(&self.conn, &sql, vec![gym.0.into(), session_id.into()]),
        )
        .await?;
        convert(rows, ParticipationRow::into_domain)
    }
}
