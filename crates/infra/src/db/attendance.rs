//! [`AttendanceRepository`] on SQL: the check-in is two statements — one read of
//! everything the rules need, one atomic upsert — and the unique key on
//! `(session_id, member_id)` makes it exactly-once across any number of instances.

use async_trait::async_trait;
use domain::attendance::{AttendanceRepository, Candidate, CheckInContext, CheckInTarget, MarkOutcome, QrSecret};
use domain::schedule::{ParticipationStatus, Session};
use domain::{GymId, Page, Result, SessionId, UserId};
use sea_orm::{DbErr, FromQueryResult, QueryResult, Value};
use time::OffsetDateTime;

use super::rows::{FromColumns, participation_status, session_status};
use super::schedule::{lock_member, participation_status_of};
use super::{Db, PageValues, all, entities, exec, one, timed, ts, unavailable_or_internal};

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
const CONTEXT_TAIL: &str = "LEFT JOIN participations p ON p.session_id = s.id AND p.member_id = u.id WHERE u.id = $1";

#[derive(FromQueryResult)]
struct Found {
    #[allow(dead_code)]
    found: i32,
}

/// What a check-in transaction acts on.
struct Attempt {
    gym: GymId,
    session_id: SessionId,
    user: UserId,
    /// The participation the context read saw.
    seen: Option<ParticipationStatus>,
    /// Whether the one-statement path already tried (and failed) a registered place.
    tried: bool,
    window: Option<(OffsetDateTime, OffsetDateTime)>,
    now: OffsetDateTime,
}

impl Db {
    /// A check-in as one write transaction, its locks taken in the order every writer
    /// of places uses: the member's membership (so that a member leaving meanwhile is
    /// refused rather than given a place, and two scans choosing different sessions of
    /// one window queue here and the second finds the first's attendance), then —
    /// only when a place must be taken — the session row, then the participation.
    async fn check_in_tx(&self, attempt: Attempt) -> Result<MarkOutcome> {
        let Attempt { gym, session_id, user, seen, tried, window, now } = attempt;
        let tx = self.write_tx().await?;
        let outcome = timed("checkin_mark_attended", async {
            if !lock_member(&tx, gym, user).await? {
                return Ok(MarkOutcome::NotAMember);
            }
            if let Some((from, until)) = window {
                let attended = one::<Found>(
                    &tx,
                    "SELECT 1 AS found FROM participations p JOIN sessions s ON s.id = p.session_id \
                     WHERE p.gym_id = $1 AND p.member_id = $2 AND p.status = 'attended' AND s.status = 'scheduled' \
                     AND s.start_time >= $3 AND s.start_time <= $4 LIMIT 1",
                    vec![gym.0.into(), user.0.into(), ts(from), ts(until)],
                )
                .await?;
                if attended.is_some() {
                    return Ok(MarkOutcome::AlreadyAttended);
                }
            }
            let values = || vec![gym.0.into(), session_id.0.into(), user.0.into(), ts(now)];
            // A held place: the guarded update is exactly-once and the count stands,
            // so the session row is not locked (check-ins of one class run side by side).
            let held = seen == Some(ParticipationStatus::Registered) && !tried;
            if held && exec(&tx, MARK_REGISTERED, values()).await? == 1 {
                return Ok(MarkOutcome::Marked { created: false });
            }
            // No held place: take one (the session row first, the lock order of every
            // write to places), then make the row attended. The desk admits whoever
            // is at the door, so there is no capacity guard here (migration
            // m20261201_000002).
            let take = "UPDATE sessions SET registered_count = registered_count + 1 \
                        WHERE gym_id = $1 AND id = $2 AND status = 'scheduled'";
            if exec(&tx, take, vec![gym.0.into(), session_id.0.into()]).await? == 0 {
                // Cancelled since the context read.
                return Ok(MarkOutcome::SessionGone);
            }
            let walk_in = "INSERT INTO participations \
                           (gym_id, session_id, member_id, status, attendance_time, created_at) \
                           VALUES ($1, $2, $3, 'attended', $4, $4) \
                           ON CONFLICT (session_id, member_id) DO UPDATE \
                           SET status = 'attended', attendance_time = excluded.attendance_time \
                           WHERE participations.status IN ('cancelled', 'no_show')";
            if exec(&tx, walk_in, values()).await? == 1 {
                // `created` from the read: a timestamp cannot tell a row created in
                // this second from one revived.
                return Ok(MarkOutcome::Marked { created: seen.is_none() });
            }
            // The row holds a place after all (booked or checked in meanwhile); under
            // the session lock its status is stable, as every writer of places takes it.
            let give_back = "UPDATE sessions SET registered_count = registered_count - 1 WHERE gym_id = $1 AND id = $2";
            exec(&tx, give_back, vec![gym.0.into(), session_id.0.into()]).await?;
            Ok(match participation_status_of(&tx, session_id, user).await?.as_deref() {
                Some("registered") => {
                    exec(&tx, MARK_REGISTERED, values()).await?;
                    MarkOutcome::Marked { created: false }
                }
                _ => MarkOutcome::AlreadyAttended,
            })
        })
        .await?;
        match outcome {
            MarkOutcome::Marked { .. } => tx.commit().await.map_err(unavailable_or_internal)?,
            _ => tx.rollback().await.map_err(unavailable_or_internal)?,
        }
        Ok(outcome)
    }
}

/// A registered participation becomes attended (its place is already counted).
/// (Only while the session is still scheduled and the user still a member: a
/// cancellation or a departure since the context read leaves the row alone, and the
/// transaction path answers `SessionGone` or `NotAMember` under its locks.)
const MARK_REGISTERED: &str = "UPDATE participations SET status = 'attended', attendance_time = $4 \
                               WHERE gym_id = $1 AND session_id = $2 AND member_id = $3 AND status = 'registered' \
                               AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $2 AND s.status = 'scheduled') \
                               AND EXISTS (SELECT 1 FROM memberships m WHERE m.gym_id = $1 AND m.user_id = $3)";

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

    async fn set_qr_secret(&self, user: UserId, secret: &QrSecret) -> Result<()> {
        let sql = "UPDATE users SET qr_secret = $2 WHERE id = $1";
        timed("qr_rotate", exec(&self.conn, sql, vec![user.0.into(), secret.as_str().to_owned().into()])).await?;
        Ok(())
    }

    async fn check_in_context(
        &self,
        gym: GymId,
        user: UserId,
        target: CheckInTarget,
    ) -> Result<Option<CheckInContext>> {
        let (sessions, extra): (&str, Vec<Value>) = match target {
            CheckInTarget::Session(id) => ("LEFT JOIN sessions s ON s.gym_id = $2 AND s.id = $3 ", vec![id.0.into()]),
            CheckInTarget::Window { from, until } => (
                "LEFT JOIN sessions s ON s.gym_id = $2 AND s.status = 'scheduled' \
                 AND s.start_time >= $3 AND s.start_time <= $4 ",
                vec![ts(from), ts(until)],
            ),
        };
        let sql = format!("{CONTEXT_SELECT}{sessions}{CONTEXT_TAIL}");
        let mut values: Vec<Value> = vec![user.0.into(), gym.0.into()];
        values.extend(extra);
        let rows = timed("checkin_context", all::<ContextRow>(&self.conn, &sql, values)).await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let qr_secret = QrSecret::from_stored(first.qr_secret.clone());
        let is_member = first.role.is_some();
        let mut candidates = Vec::with_capacity(rows.len());
        for r in rows {
            if let (Some(id), Some(start_time), Some(end_time), Some(status)) = (r.s_id, r.s_start, r.s_end, r.s_status)
            {
                candidates.push(Candidate {
                    id: SessionId(id),
                    start_time,
                    end_time,
                    status: session_status(&status)?,
                    participation: r.p_status.as_deref().map(participation_status).transpose()?,
                });
            }
        }
        Ok(Some(CheckInContext { qr_secret, is_member, candidates }))
    }

    async fn mark_attended(
        &self,
        gym: GymId,
        session_id: SessionId,
        user: UserId,
        seen: Option<ParticipationStatus>,
        window: Option<(OffsetDateTime, OffsetDateTime)>,
        now: OffsetDateTime,
    ) -> Result<MarkOutcome> {
        // A registered member at a named session: one statement, whose guard on the
        // status makes it exactly-once. Anything else, or a status that changed since
        // the read, takes the transaction.
        if window.is_none() && seen == Some(ParticipationStatus::Registered) {
            let values = vec![gym.0.into(), session_id.0.into(), user.0.into(), ts(now)];
            if timed("checkin_mark_registered", exec(&self.conn, MARK_REGISTERED, values)).await? == 1 {
                return Ok(MarkOutcome::Marked { created: false });
            }
        }
        // Seen registered but not marked: the status changed; the transaction finds out.
        let tried = window.is_none() && seen == Some(ParticipationStatus::Registered);
        self.check_in_tx(Attempt { gym, session_id, user, seen, tried, window, now }).await
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
                   JOIN sessions s ON s.id = p.session_id ORDER BY p.attendance_time DESC, p.id DESC";
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
                   FROM participations p JOIN sessions s ON s.id = p.session_id \
                   WHERE p.gym_id = $1 AND p.member_id = $2 AND p.status = 'registered' \
                   AND s.status = 'scheduled' AND s.start_time > $3 \
                   ORDER BY s.start_time, s.id LIMIT $4";
        let values = vec![gym.0.into(), user.0.into(), ts(now), (limit as i64).into()];
        timed("attendance_upcoming", entities(&self.conn, sql, values)).await
    }
}
