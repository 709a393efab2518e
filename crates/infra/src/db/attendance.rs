//! [`AttendanceRepository`] on SQL: the check-in's one read of everything its rules
//! need (made in its transaction, after the member's lock). What a check-in writes
//! goes through the schedule's primitives.

use async_trait::async_trait;
use domain::attendance::{AttendanceRepository, Candidate, CheckInContext, CheckInTarget, QrSecret};
use domain::schedule::Session;
use domain::tx::Tx;
use domain::{GymId, Page, Result, SessionId, UserId};
use sea_orm::{DbErr, FromQueryResult, QueryResult, Value};
use time::OffsetDateTime;

use super::outbox::txn;
use super::rows::{FromColumns, participation_status, session_status};
use super::{Db, PageValues, all, entities, exec, one, timed, ts};

#[derive(FromQueryResult)]
struct SecretRow {
    qr_secret: String,
}

#[derive(FromQueryResult)]
struct ContextRow {
    qr_secret: String,
    role: Option<String>,
    s_id: Option<i64>,
    s_start: Option<OffsetDateTime>,
    s_end: Option<OffsetDateTime>,
    s_status: Option<String>,
    p_status: Option<String>,
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

const CONTEXT_SELECT: &str = "SELECT u.qr_secret, m.role, s.id AS s_id, s.start_time AS s_start, s.end_time AS s_end, \
     s.status AS s_status, p.status AS p_status \
     FROM users u \
     LEFT JOIN memberships m ON m.user_id = u.id AND m.gym_id = $2 ";
const CONTEXT_TAIL: &str =
    "LEFT JOIN participations p ON p.gym_id = s.gym_id AND p.session_id = s.id AND p.member_id = u.id WHERE u.id = $1";

/// The candidate sessions of a check-in, joined to the row that names the gym
/// (`gym` is that column or parameter; `$3`/`$4` the session or the window).
fn candidate_sessions(target: CheckInTarget, gym: &str, p3: &str, p4: &str) -> (String, Vec<Value>) {
    match target {
        CheckInTarget::Session(id) => {
            (format!("LEFT JOIN sessions s ON s.gym_id = {gym} AND s.id = {p3} "), vec![id.0.into()])
        }
        CheckInTarget::Window { from, until } => (
            format!(
                "LEFT JOIN sessions s ON s.gym_id = {gym} AND s.status = 'scheduled' \
                 AND s.start_time >= {p3} AND s.start_time <= {p4} "
            ),
            vec![ts(from), ts(until)],
        ),
    }
}

impl ContextRow {
    /// The candidate of this row; `None` for the row of a user with no candidate.
    fn candidate(self) -> Result<Option<Candidate>> {
        let (Some(id), Some(start_time), Some(end_time), Some(status)) =
            (self.s_id, self.s_start, self.s_end, self.s_status)
        else {
            return Ok(None);
        };
        Ok(Some(Candidate {
            id: SessionId(id),
            start_time,
            end_time,
            status: session_status(&status)?,
            participation: self.p_status.as_deref().map(participation_status).transpose()?,
        }))
    }
}

#[async_trait]
impl AttendanceRepository for Db {
    async fn qr_secret(&self, user: UserId) -> Result<Option<QrSecret>> {
        let row = timed(
            "qr_get",
            one::<SecretRow>(&self.conn, "SELECT qr_secret FROM users WHERE id = $1", vec![user.0.into()]),
        )
        .await?;
        Ok(row.map(|r| QrSecret::from_stored(r.qr_secret)))
    }

    async fn set_qr_secret(&self, tx: &mut Tx, user: UserId, secret: &QrSecret) -> Result<()> {
        let sql = "UPDATE users SET qr_secret = $2 WHERE id = $1";
        timed("qr_rotate", exec(txn(tx)?, sql, vec![user.0.into(), secret.as_str().to_owned().into()])).await?;
        Ok(())
    }

    async fn check_in_context(
        &self,
        tx: &mut Tx,
        gym: GymId,
        user: UserId,
        target: CheckInTarget,
    ) -> Result<Option<CheckInContext>> {
        let (sessions, extra) = candidate_sessions(target, "$2", "$3", "$4");
        let sql = format!("{CONTEXT_SELECT}{sessions}{CONTEXT_TAIL}");
        let mut values: Vec<Value> = vec![user.0.into(), gym.0.into()];
        values.extend(extra);
        let rows = timed("checkin_context", all::<ContextRow>(txn(tx)?, &sql, values)).await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let qr_secret = QrSecret::from_stored(first.qr_secret.clone());
        let is_member = first.role.is_some();
        let candidates = rows.into_iter().filter_map(|r| r.candidate().transpose()).collect::<Result<Vec<_>>>()?;
        Ok(Some(CheckInContext { qr_secret, is_member, candidates }))
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
        timed("attendance_history", entities(&self.conn, sql, values)).await
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
