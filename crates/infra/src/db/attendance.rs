//! [`AttendanceRepository`] on SQL: the check-in's one read of everything its rules
//! need (made in its transaction, after the member's lock). What a check-in writes
//! goes through the schedule's primitives.

use async_trait::async_trait;
use domain::attendance::{
    AttendanceRepository, Candidate, CheckInContext, CheckInTarget, ContextAsk, QrMode, QrSecret,
};
use domain::schedule::Session;
use domain::tx::Tx;
use domain::{GymId, Page, Result, SessionId, UserId};
use sea_orm::{DbBackend, DbErr, FromQueryResult, QueryResult, Value};
use time::OffsetDateTime;

use super::outbox::txn;
use super::rows::{FromColumns, participation_status, session_status};
use super::{Cell, Db, PageValues, all, entities, exec, one, rows_cte, timed, ts};

#[derive(FromQueryResult)]
struct SecretRow {
    qr_secret: String,
    qr_key: Option<String>,
    qr_mode: String,
}

#[derive(FromQueryResult)]
struct ContextRow {
    i: i64,
    /// `None`: no such user (the row of the `LEFT JOIN`).
    qr_secret: Option<String>,
    qr_key: Option<String>,
    qr_mode: Option<String>,
    qr_step_used: Option<i64>,
    role: Option<String>,
    booking_requires_pass: Option<bool>,
    timezone: Option<String>,
    s_id: Option<i64>,
    s_start: Option<OffsetDateTime>,
    s_end: Option<OffsetDateTime>,
    s_status: Option<String>,
    p_status: Option<String>,
}

#[derive(FromQueryResult)]
struct MarkedRow {
    gym_id: i64,
    session_id: i64,
    member_id: i64,
}

#[derive(FromQueryResult)]
struct MinutesRow {
    minutes: i32,
}

#[derive(FromQueryResult)]
struct PresentRow {
    session_id: i64,
    member_id: i64,
}

#[derive(FromQueryResult)]
struct TimeRow {
    t: OffsetDateTime,
}

#[derive(FromQueryResult)]
struct CountsRow {
    total: i64,
    recent: i64,
}

/// A session and when the member attended it: the session's columns plus one.
impl FromColumns for (Session, OffsetDateTime) {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok((Session::read(r, pre)?, r.try_get(pre, "attendance_time")?))
    }
}

/// The one statement of a batch's check-in read: each ask (its index, gym, user,
/// and the named session or the window) a row of the `a` table, joined to the
/// user, their membership, the candidate sessions and their participation in each.
/// Named sessions and windows are read by two halves of a `UNION ALL`, each on its
/// index (the sessions' key, or `(gym_id, start_time)`). Every join is a `LEFT JOIN`,
/// which keeps the asks the outer loop: with an inner join to `users`, SQLite 3.51
/// chose to scan every user against an automatic index on the asks (30 ms a batch).
fn contexts_read(asks: &[ContextAsk], backend: DbBackend) -> (String, Vec<Value>) {
    let rows = asks
        .iter()
        .enumerate()
        .map(|(i, ask)| {
            let (session, from, until) = match ask.target {
                CheckInTarget::Session(id) => (Some(id.0), None, None),
                CheckInTarget::Window { from, until } => (None, Some(from), Some(until)),
            };
            vec![
                Cell::Int(i64::try_from(i).ok()),
                Cell::Int(Some(ask.gym.0)),
                Cell::Int(Some(ask.user.0)),
                Cell::Int(session),
                Cell::Time(from),
                Cell::Time(until),
            ]
        })
        .collect();
    let columns = [
        ("i", "BIGINT"),
        ("gym", "BIGINT"),
        ("uid", "BIGINT"),
        ("sid", "BIGINT"),
        ("wfrom", "TIMESTAMPTZ"),
        ("wuntil", "TIMESTAMPTZ"),
    ];
    let (asks_cte, values) = rows_cte(backend, "a", &columns, rows, 1);
    let select = "SELECT a.i, u.qr_secret, u.qr_key, g.qr_mode, m.qr_step_used, m.role, g.booking_requires_pass, \
                  g.timezone, s.id AS s_id, \
                  s.start_time AS s_start, s.end_time AS s_end, s.status AS s_status, p.status AS p_status \
                  FROM a LEFT JOIN users u ON u.id = a.uid LEFT JOIN gyms g ON g.id = a.gym \
                  LEFT JOIN memberships m ON m.gym_id = a.gym AND m.user_id = a.uid";
    let participation =
        "LEFT JOIN participations p ON p.gym_id = s.gym_id AND p.session_id = s.id AND p.member_id = a.uid";
    let sql = format!(
        "WITH {asks_cte} \
         {select} LEFT JOIN sessions s ON s.gym_id = a.gym AND s.id = a.sid {participation} WHERE a.sid IS NOT NULL \
         UNION ALL \
         {select} LEFT JOIN sessions s ON s.gym_id = a.gym AND s.status = 'scheduled' \
           AND s.start_time >= a.wfrom AND s.start_time <= a.wuntil {participation} WHERE a.sid IS NULL"
    );
    (sql, values)
}

impl ContextRow {
    /// The candidate of this row; `None` for the row of a user with no candidate.
    fn candidate(&self) -> Result<Option<Candidate>> {
        let (Some(id), Some(start_time), Some(end_time), Some(status)) =
            (self.s_id, self.s_start, self.s_end, self.s_status.as_deref())
        else {
            return Ok(None);
        };
        Ok(Some(Candidate {
            id: SessionId(id),
            start_time,
            end_time,
            status: session_status(status)?,
            participation: self.p_status.as_deref().map(participation_status).transpose()?,
        }))
    }
}

#[async_trait]
impl AttendanceRepository for Db {
    async fn qr_of(&self, gym: GymId, user: UserId) -> Result<Option<(QrSecret, QrMode)>> {
        let sql = "SELECT u.qr_secret, u.qr_key, g.qr_mode FROM users u JOIN gyms g ON g.id = $2 WHERE u.id = $1";
        let row = timed("qr_get", one::<SecretRow>(&self.conn, sql, vec![user.0.into(), gym.0.into()])).await?;
        row.map(|r| Ok((QrSecret::from_stored(r.qr_secret, r.qr_key), QrMode::parse(&r.qr_mode)?))).transpose()
    }

    async fn set_qr_secret(&self, tx: &mut Tx, user: UserId, secret: &QrSecret) -> Result<()> {
        let sql = "UPDATE users SET qr_secret = $2, qr_key = $3 WHERE id = $1";
        let values = vec![user.0.into(), secret.as_str().to_owned().into(), secret.key().map(str::to_owned).into()];
        timed("qr_rotate", exec(txn(tx)?, sql, values)).await?;
        Ok(())
    }

    async fn fill_qr_key(&self, tx: &mut Tx, user: UserId, key: &str) -> Result<()> {
        let sql = "UPDATE users SET qr_key = $2 WHERE id = $1 AND qr_key IS NULL";
        timed("qr_key_fill", exec(txn(tx)?, sql, vec![user.0.into(), key.to_owned().into()])).await?;
        Ok(())
    }

    async fn use_qr_steps(&self, tx: &mut Tx, used: &[(GymId, UserId, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let rows = used.iter().map(|(g, u, s)| vec![Cell::Int(Some(g.0)), Cell::Int(Some(u.0)), Cell::Int(Some(*s))]);
        let columns = [("g", "BIGINT"), ("u", "BIGINT"), ("s", "BIGINT")];
        let (cte, values) = rows_cte(self.backend(), "r", &columns, rows.collect(), 1);
        let sql = format!(
            "WITH {cte} UPDATE memberships SET qr_step_used = r.s FROM r \
             WHERE memberships.gym_id = r.g AND memberships.user_id = r.u \
             AND (memberships.qr_step_used IS NULL OR memberships.qr_step_used < r.s)"
        );
        timed("qr_steps", exec(txn(tx)?, &sql, values)).await?;
        Ok(())
    }

    async fn check_in_contexts(&self, tx: &mut Tx, asks: &[ContextAsk]) -> Result<Vec<Option<CheckInContext>>> {
        if asks.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, values) = contexts_read(asks, self.backend());
        let rows = timed("checkin_context", all::<ContextRow>(txn(tx)?, &sql, values)).await?;
        let mut out: Vec<Option<CheckInContext>> = vec![None; asks.len()];
        for row in rows {
            let Some(slot) = usize::try_from(row.i).ok().and_then(|i| out.get_mut(i)) else { continue };
            let Some(secret) = &row.qr_secret else { continue };
            if slot.is_none() {
                // No gym row: a made-up gym id, whose desk is no member of it anyway.
                let qr_mode = row.qr_mode.as_deref().map(QrMode::parse).transpose()?.unwrap_or_default();
                *slot = Some(CheckInContext {
                    qr_secret: QrSecret::from_stored(secret.clone(), row.qr_key.clone()),
                    qr_mode,
                    qr_step_used: row.qr_step_used,
                    is_member: row.role.is_some(),
                    candidates: Vec::new(),
                    // Cloned only for a gym that requires passes: the check-in's hot path.
                    pass_zone: if row.booking_requires_pass == Some(true) { row.timezone.clone() } else { None },
                });
            }
            let Some(ctx) = slot.as_mut() else { continue };
            if let Some(c) = row.candidate()? {
                ctx.candidates.push(c);
            }
        }
        Ok(out)
    }

    async fn mark_no_shows(
        &self,
        tx: &mut Tx,
        ended_by: OffsetDateTime,
        started_before: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<(GymId, SessionId, UserId)>> {
        // The registered places (a partial index holds them alone) of ended sessions.
        // On PostgreSQL a place another job holds is skipped, and the UPDATE's guard
        // leaves a place that stopped being `registered` since (a racing job marked
        // it, a late check-in attended it) as it is.
        let lock = if self.backend() == DbBackend::Postgres { "FOR UPDATE OF p SKIP LOCKED" } else { "" };
        let sql = format!(
            "WITH due AS (SELECT p.gym_id, p.id FROM participations p \
               JOIN sessions s ON s.gym_id = p.gym_id AND s.id = p.session_id \
               WHERE p.status = 'registered' AND s.end_time <= $1 AND s.start_time < $2 \
               ORDER BY p.gym_id, p.id LIMIT $3 {lock}) \
             UPDATE participations SET status = 'no_show' FROM due \
             WHERE participations.gym_id = due.gym_id AND participations.id = due.id \
               AND participations.status = 'registered' \
             RETURNING participations.gym_id, participations.session_id, participations.member_id"
        );
        let values = vec![ts(ended_by), ts(started_before), i64::try_from(limit).unwrap_or(i64::MAX).into()];
        let rows = timed("no_shows_mark", all::<MarkedRow>(txn(tx)?, &sql, values)).await?;
        Ok(rows.into_iter().map(|r| (GymId(r.gym_id), SessionId(r.session_id), UserId(r.member_id))).collect())
    }

    async fn occupancy_window(&self, gym: GymId) -> Result<Option<i32>> {
        let sql = "SELECT occupancy_window_minutes AS minutes FROM gyms WHERE id = $1";
        let row = timed("occupancy_window", one::<MinutesRow>(&self.conn, sql, vec![gym.0.into()])).await?;
        Ok(row.map(|r| r.minutes))
    }

    async fn checked_in_since(&self, gym: GymId, since: OffsetDateTime) -> Result<Vec<(SessionId, UserId)>> {
        let sql = "SELECT session_id, member_id FROM participations \
                   WHERE gym_id = $1 AND attendance_time IS NOT NULL AND attendance_time >= $2 AND status = 'attended'";
        let rows = timed("occupancy_read", all::<PresentRow>(&self.conn, sql, vec![gym.0.into(), ts(since)])).await?;
        Ok(rows.into_iter().map(|r| (SessionId(r.session_id), UserId(r.member_id))).collect())
    }

    async fn last_attendance(&self, gym: GymId, user: UserId) -> Result<Option<OffsetDateTime>> {
        let sql = "SELECT attendance_time AS t FROM participations \
                   WHERE gym_id = $1 AND member_id = $2 AND status = 'attended' AND attendance_time IS NOT NULL \
                   ORDER BY attendance_time DESC LIMIT 1";
        Ok(timed("attendance_last", one::<TimeRow>(&self.conn, sql, vec![gym.0.into(), user.0.into()]))
            .await?
            .map(|r| r.t))
    }

    async fn history(&self, gym: GymId, user: UserId, page: Page) -> Result<Vec<(Session, OffsetDateTime)>> {
        let sql = "SELECT s.id, s.gym_id, s.class_id, s.start_time, s.end_time, s.status, s.trainer_id, s.room, \
                   s.capacity, s.registered_count, p.attendance_time \
                   FROM (SELECT id, session_id, attendance_time FROM participations \
                         WHERE gym_id = $1 AND member_id = $2 AND status = 'attended' AND attendance_time IS NOT NULL \
                         ORDER BY attendance_time DESC, id DESC LIMIT $3 OFFSET $4) p \
                   JOIN sessions s ON s.gym_id = $1 AND s.id = p.session_id ORDER BY p.attendance_time DESC, p.id DESC";
        let values = vec![gym.0.into(), user.0.into(), page.limit_value(), page.skip_value()];
        self.lagging("attendance_history", |c| Box::pin(entities(c, sql, values.clone()))).await
    }

    async fn attendance_counts(
        &self,
        gym: GymId,
        user: UserId,
        since: OffsetDateTime,
    ) -> Result<(i64, i64, Option<OffsetDateTime>)> {
        let sql = "SELECT COUNT(*) AS total, \
                   COALESCE(SUM(CASE WHEN attendance_time >= $3 THEN 1 ELSE 0 END), 0) AS recent \
                   FROM participations WHERE gym_id = $1 AND member_id = $2 AND status = 'attended'";
        let counts =
            timed("attendance_counts", one::<CountsRow>(&self.conn, sql, vec![gym.0.into(), user.0.into(), ts(since)]))
                .await?;
        let last = self.last_attendance(gym, user).await?;
        let (total, recent) = counts.map_or((0, 0), |c| (c.total, c.recent));
        Ok((total, recent, last))
    }

    async fn upcoming_registrations(
        &self,
        gym: GymId,
        user: UserId,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<Session>> {
        let sql = "SELECT s.id, s.gym_id, s.class_id, s.start_time, s.end_time, s.status, s.trainer_id, s.room, \
                   s.capacity, s.registered_count \
                   FROM participations p JOIN sessions s ON s.gym_id = p.gym_id AND s.id = p.session_id \
                   WHERE p.gym_id = $1 AND p.member_id = $2 AND p.status = 'registered' \
                   AND s.status = 'scheduled' AND s.start_time > $3 \
                   ORDER BY s.start_time, s.id LIMIT $4";
        let values = vec![gym.0.into(), user.0.into(), ts(now), (limit as i64).into()];
        timed("attendance_upcoming", entities(&self.conn, sql, values)).await
    }
}
