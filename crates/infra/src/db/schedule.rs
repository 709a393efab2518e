//! [`ScheduleRepository`] on SQL: small statements under the locks the domain asks
//! for (the session's row, read with the member's participation), the one statement
//! that moves `registered_count`, and the participation upsert on its
//! `(gym_id, session_id, member_id)` key. Whether a booking is refused, and why, is
//! the domain's decision (`domain::schedule::refusal`).

use async_trait::async_trait;
use domain::credits::CreditRules;
use domain::schedule::{
    Attendance, BookingRules, BookingWindow, Class, ClassPatch, NewClass, Participation, ParticipationStatus,
    ScheduleRepository, Session, SessionDraft, WaitlistRules,
};
use domain::tx::Tx;
use domain::{ClassId, DomainError, GymId, Page, Result, SessionId, UserId};
use sea_orm::{DbBackend, DbErr, FromQueryResult, QueryResult};
use time::OffsetDateTime;

use super::outbox::txn;
use super::rows::{CLASS_COLS, FromColumns, PARTICIPATION_COLS, SESSION_COLS, participation_status};
use super::{Cell, Db, PageValues, all, entities, entity, one, opt_id, rows_cte, timed, timed_or, ts, unknown_user};

/// Guards of the inserts and updates that name a user (instructor, trainer): the
/// parameter is NULL or a member of the gym (`$1`), so another gym's user is refused
/// by the statement itself.
const MEMBER_OR_NULL_5: &str = "($5 IS NULL OR EXISTS (SELECT 1 FROM memberships WHERE gym_id = $1 AND user_id = $5))";
const MEMBER_OR_NULL_7: &str = "($7 IS NULL OR EXISTS (SELECT 1 FROM memberships WHERE gym_id = $1 AND user_id = $7))";
const MEMBER_OR_NULL_8: &str = "($8 IS NULL OR EXISTS (SELECT 1 FROM memberships WHERE gym_id = $1 AND user_id = $8))";

#[derive(FromQueryResult)]
struct SessionIdRow {
    session_id: i64,
}

#[derive(FromQueryResult)]
struct IdRow {
    id: i64,
}

#[derive(FromQueryResult)]
struct MarkedRow {
    session_id: i64,
    member_id: i64,
}

impl MarkedRow {
    fn is(&self, row: &Attendance) -> bool {
        (self.session_id, self.member_id) == (row.session.0, row.member.0)
    }
}

#[derive(FromQueryResult)]
struct StatusRow {
    status: String,
}

#[derive(FromQueryResult)]
struct MemberRow {
    member_id: i64,
}

#[derive(FromQueryResult)]
struct RulesRow {
    booking_opens_hours: Option<i32>,
    booking_closes_minutes: i32,
    waitlist_cutoff_minutes: i32,
    max_waitlists_per_member: i32,
    booking_requires_pass: bool,
    cancel_cutoff_minutes: i32,
    timezone: String,
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

/// A session row and the member's participation in it.
impl FromColumns for (Session, Option<ParticipationStatus>) {
    fn read(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        let status: Option<String> = r.try_get(pre, "p_status")?;
        let status = status.map(|s| participation_status(&s)).transpose().map_err(|e| DbErr::Type(e.to_string()))?;
        Ok((Session::read(r, pre)?, status))
    }
}

/// The one statement that moves sessions' `registered_count` (see
/// [`ScheduleRepository::move_count`]): `(gym, session, delta)` rows, `guard`
/// narrowing which sessions it may move; it answers the ids it moved.
fn counts_moved(backend: DbBackend, rows: &[(GymId, SessionId, i32)], guard: &str) -> (String, Vec<sea_orm::Value>) {
    let rows = rows
        .iter()
        .map(|(g, s, n)| vec![Cell::Int(Some(g.0)), Cell::Int(Some(s.0)), Cell::Int(Some(i64::from(*n)))])
        .collect();
    let (cte, values) = rows_cte(backend, "v", &[("g", "BIGINT"), ("s", "BIGINT"), ("n", "INTEGER")], rows, 1);
    let sql = format!(
        "WITH {cte} UPDATE sessions SET registered_count = registered_count + v.n FROM v \
         WHERE sessions.gym_id = v.g AND sessions.id = v.s{guard} RETURNING sessions.id"
    );
    (sql, values)
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

    async fn create_class(&self, tx: &mut Tx, gym: GymId, c: &NewClass, now: OffsetDateTime) -> Result<Class> {
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
        timed_or("class_create", entity(txn(tx)?, &sql, values), unknown_user).await?.ok_or(DomainError::UserNotFound)
    }

    async fn update_class(&self, tx: &mut Tx, gym: GymId, id: ClassId, p: &ClassPatch) -> Result<Option<Class>> {
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
        let tx = txn(tx)?;
        let updated: Option<Class> = timed_or("class_update", entity(tx, &sql, values), unknown_user).await?;
        let exists = format!("SELECT {CLASS_COLS} FROM classes WHERE gym_id = $1 AND id = $2");
        if updated.is_none()
            && p.instructor_id.is_some()
            && timed("class_get", entity::<Class>(tx, &exists, vec![gym.0.into(), id.0.into()])).await?.is_some()
        {
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

    async fn create_session(&self, tx: &mut Tx, gym: GymId, d: &SessionDraft, now: OffsetDateTime) -> Result<Session> {
        let sql = format!(
            "INSERT INTO sessions \
             (gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, registered_count, \
             created_at, recurrence_id) \
             SELECT $1, $2, $3, $4, 'scheduled', $5, $6, $7, 0, $8, $9 WHERE {MEMBER_OR_NULL_5} RETURNING {SESSION_COLS}"
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
            d.recurrence.map(|r| r.0).into(),
        ];
        // No row: the guard refused a trainer who is not a member of the gym.
        timed_or("session_create", entity(txn(tx)?, &sql, values), unknown_user).await?.ok_or(DomainError::UserNotFound)
    }

    async fn cancel_session(&self, tx: &mut Tx, gym: GymId, id: SessionId) -> Result<Option<Session>> {
        let sql =
            format!("UPDATE sessions SET status = 'cancelled' WHERE gym_id = $1 AND id = $2 RETURNING {SESSION_COLS}");
        timed("session_cancel", entity(txn(tx)?, &sql, vec![gym.0.into(), id.0.into()])).await
    }

    async fn lock_session(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
    ) -> Result<Option<(Session, Option<ParticipationStatus>)>> {
        let values = vec![gym.0.into(), session.0.into(), member.0.into()];
        if self.backend() != DbBackend::Postgres {
            // SQLite's write transactions hold the database's one writer lock already,
            // so one statement reads both as they are.
            let cols: Vec<String> = SESSION_COLS.split(", ").map(|c| format!("s.{c}")).collect();
            let sql = format!(
                "SELECT {}, p.status AS p_status FROM sessions s \
                 LEFT JOIN participations p ON p.gym_id = s.gym_id AND p.session_id = s.id AND p.member_id = $3 \
                 WHERE s.gym_id = $1 AND s.id = $2",
                cols.join(", ")
            );
            return timed("session_lock", entity(txn(tx)?, &sql, values)).await;
        }
        // Two statements: a statement that waited for the row lock reads the other
        // tables as they were when it began, and the participation may have changed
        // under this session's lock meanwhile (a promotion from the waitlist, the
        // session's cancellation), so it is read by the next statement.
        let tx = txn(tx)?;
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE gym_id = $1 AND id = $2 FOR UPDATE");
        let Some(locked) =
            timed("session_lock", entity::<Session>(tx, &sql, vec![gym.0.into(), session.0.into()])).await?
        else {
            return Ok(None);
        };
        let sql = "SELECT status FROM participations WHERE gym_id = $1 AND session_id = $2 AND member_id = $3";
        let row = timed("participation_of", one::<StatusRow>(tx, sql, values)).await?;
        let held = row.map(|r| participation_status(&r.status)).transpose()?;
        Ok(Some((locked, held)))
    }

    async fn move_count(&self, tx: &mut Tx, gym: GymId, session: SessionId, delta: i32) -> Result<()> {
        let (sql, values) = counts_moved(self.backend(), &[(gym, session, delta)], "");
        timed("session_count", all::<IdRow>(txn(tx)?, &sql, values)).await.map(drop)
    }

    async fn take_places(&self, tx: &mut Tx, places: &[(GymId, SessionId, i32)]) -> Result<Vec<SessionId>> {
        if places.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        let tx = txn(tx)?;
        timed("session_take_places", async {
            if places.len() > 1 && backend == DbBackend::Postgres {
                // The rows locked in the caller's (sorted) order first: the UPDATE's
                // join would take them in an order of its own.
                let rows = places.iter().map(|(g, s, _)| vec![Cell::Int(Some(g.0)), Cell::Int(Some(s.0))]).collect();
                let (cte, values) = rows_cte(backend, "k", &[("g", "BIGINT"), ("s", "BIGINT")], rows, 1);
                let lock = format!(
                    "WITH {cte} SELECT sessions.id FROM k JOIN sessions ON sessions.gym_id = k.g AND sessions.id = k.s \
                     ORDER BY sessions.gym_id, sessions.id FOR NO KEY UPDATE OF sessions"
                );
                all::<IdRow>(tx, &lock, values).await?;
            }
            let (sql, values) = counts_moved(backend, places, " AND sessions.status = 'scheduled'");
            let moved = all::<IdRow>(tx, &sql, values).await?;
            Ok(moved.into_iter().map(|r| SessionId(r.id)).collect())
        })
        .await
    }

    async fn mark_attended(&self, tx: &mut Tx, rows: &[Attendance]) -> Result<Vec<Attendance>> {
        let (booked, others): (Vec<&Attendance>, Vec<&Attendance>) = rows.iter().partition(|r| r.registered);
        let columns = [("g", "BIGINT"), ("s", "BIGINT"), ("m", "BIGINT"), ("t", "TIMESTAMPTZ"), ("p", "BIGINT")];
        let cells = |rows: &[&Attendance]| -> Vec<Vec<Cell>> {
            rows.iter()
                .map(|r| {
                    vec![
                        Cell::Int(Some(r.gym.0)),
                        Cell::Int(Some(r.session.0)),
                        Cell::Int(Some(r.member.0)),
                        Cell::Time(Some(r.at)),
                        Cell::Int(r.pass),
                    ]
                })
                .collect()
        };
        let mut unmarked = Vec::new();
        if !booked.is_empty() {
            // Only while the place is still `registered`: a session cancelled since the
            // read (it locks no member) cancelled it, and on PostgreSQL this waits for
            // that cancellation and then skips the row.
            let (cte, values) = rows_cte(self.backend(), "r", &columns, cells(&booked), 1);
            let sql = format!(
                "WITH {cte} UPDATE participations SET status = 'attended', attendance_time = r.t FROM r \
                 WHERE participations.gym_id = r.g AND participations.session_id = r.s \
                 AND participations.member_id = r.m AND participations.status = 'registered' \
                 RETURNING participations.session_id, participations.member_id"
            );
            let marked = timed("participations_attended_booked", all::<MarkedRow>(txn(tx)?, &sql, values)).await?;
            unmarked.extend(booked.iter().filter(|r| !marked.iter().any(|m| m.is(r))).map(|r| **r));
        }
        if !others.is_empty() {
            let (cte, values) = rows_cte(self.backend(), "r", &columns, cells(&others), 1);
            // `WHERE TRUE`: SQLite would read `ON CONFLICT` after a bare `FROM r` as a join's.
            // Not over a place held meanwhile (a promotion from the waitlist). A walk-in
            // with a pass is the participation's next credit number; one without names
            // no pass.
            let sql = format!(
                "WITH {cte} INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, \
                 created_at, pass_id, credit_no) \
                 SELECT g, s, m, 'attended', t, t, p, CASE WHEN p IS NULL THEN 0 ELSE 1 END FROM r WHERE TRUE \
                 ON CONFLICT (gym_id, session_id, member_id) \
                 DO UPDATE SET status = excluded.status, attendance_time = excluded.attendance_time, \
                 pass_id = excluded.pass_id, \
                 credit_no = participations.credit_no + CASE WHEN excluded.pass_id IS NULL THEN 0 ELSE 1 END \
                 WHERE participations.status NOT IN ('registered', 'attended') \
                 RETURNING session_id, member_id"
            );
            let marked = timed("participations_attended", all::<MarkedRow>(txn(tx)?, &sql, values)).await?;
            unmarked.extend(others.iter().filter(|r| !marked.iter().any(|m| m.is(r))).map(|r| **r));
        }
        Ok(unmarked)
    }

    async fn cancel_bookings(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        status: ParticipationStatus,
    ) -> Result<Vec<UserId>> {
        let sql = "UPDATE participations SET status = 'cancelled' \
                   WHERE gym_id = $1 AND session_id = $2 AND status = $3 RETURNING member_id";
        let values = vec![gym.0.into(), session.0.into(), status.as_str().to_owned().into()];
        let rows = timed("participations_cancel_session", all::<MemberRow>(txn(tx)?, sql, values)).await?;
        Ok(rows.into_iter().map(|r| UserId(r.member_id)).collect())
    }

    async fn set_participation(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
        status: ParticipationStatus,
        attendance_time: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Participation> {
        let sql = format!(
            "INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (gym_id, session_id, member_id) \
             DO UPDATE SET status = excluded.status, attendance_time = excluded.attendance_time \
             RETURNING {PARTICIPATION_COLS}"
        );
        let values = vec![
            gym.0.into(),
            session.0.into(),
            member.0.into(),
            status.as_str().to_owned().into(),
            attendance_time.map_or(sea_orm::Value::from(None::<OffsetDateTime>), ts),
            ts(now),
        ];
        timed("participation_set", entity(txn(tx)?, &sql, values))
            .await?
            .ok_or_else(|| DomainError::internal("the participation upsert returned no row"))
    }

    async fn places_after(
        &self,
        tx: &mut Tx,
        gym: GymId,
        member: UserId,
        after: OffsetDateTime,
    ) -> Result<Vec<SessionId>> {
        let sql = "SELECT p.session_id FROM participations p \
                   JOIN sessions s ON s.gym_id = p.gym_id AND s.id = p.session_id \
                   WHERE p.gym_id = $1 AND p.member_id = $2 AND p.status IN ('registered', 'waitlisted') \
                   AND s.start_time > $3 ORDER BY p.session_id";
        let values = vec![gym.0.into(), member.0.into(), ts(after)];
        let rows = timed("member_places", all::<SessionIdRow>(txn(tx)?, sql, values)).await?;
        Ok(rows.into_iter().map(|r| SessionId(r.session_id)).collect())
    }

    async fn time_zone(&self, gym: GymId) -> Result<Option<String>> {
        super::gym_time_zone(&self.conn, gym).await
    }

    async fn booking_rules(&self, gym: GymId) -> Result<Option<BookingRules>> {
        let sql = "SELECT booking_opens_hours, booking_closes_minutes, waitlist_cutoff_minutes, \
                   max_waitlists_per_member, booking_requires_pass, cancel_cutoff_minutes, timezone \
                   FROM gyms WHERE id = $1";
        let row = timed("gym_booking_rules", one::<RulesRow>(&self.conn, sql, vec![gym.0.into()])).await?;
        row.map(|r| {
            Ok(BookingRules {
                window: BookingWindow::new(r.booking_opens_hours, r.booking_closes_minutes)?,
                waitlist: WaitlistRules::new(r.waitlist_cutoff_minutes, r.max_waitlists_per_member)?,
                credits: CreditRules::new(r.booking_requires_pass, r.cancel_cutoff_minutes, r.timezone)?,
            })
        })
        .transpose()
    }

    async fn set_booking(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
        pass: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<Participation> {
        // A booking with a pass is the participation's next credit number; one without
        // names no pass (a pass a booking before it used is not this booking's).
        let sql = format!(
            "INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at, pass_id, \
             credit_no) VALUES ($1, $2, $3, 'registered', NULL, $4, $5, CASE WHEN $5 IS NULL THEN 0 ELSE 1 END) \
             ON CONFLICT (gym_id, session_id, member_id) DO UPDATE SET status = 'registered', attendance_time = NULL, \
             pass_id = excluded.pass_id, \
             credit_no = participations.credit_no + CASE WHEN excluded.pass_id IS NULL THEN 0 ELSE 1 END \
             RETURNING {PARTICIPATION_COLS}"
        );
        let values = vec![gym.0.into(), session.0.into(), member.0.into(), ts(now), pass.into()];
        timed("participation_book", entity(txn(tx)?, &sql, values))
            .await?
            .ok_or_else(|| DomainError::internal("the booking upsert returned no row"))
    }

    async fn waitlist_queue(&self, tx: &mut Tx, gym: GymId, session: SessionId) -> Result<Vec<UserId>> {
        let sql = "SELECT member_id FROM participations WHERE gym_id = $1 AND session_id = $2 \
                   AND status = 'waitlisted' ORDER BY waitlist_seq, id";
        let rows =
            timed("waitlist_queue", all::<MemberRow>(txn(tx)?, sql, vec![gym.0.into(), session.0.into()])).await?;
        Ok(rows.into_iter().map(|r| UserId(r.member_id)).collect())
    }

    async fn join_waitlist(
        &self,
        tx: &mut Tx,
        gym: GymId,
        session: SessionId,
        member: UserId,
        now: OffsetDateTime,
    ) -> Result<(Participation, i64)> {
        let tx = txn(tx)?;
        // The tail's number, taken under the session's lock: no two joins get one. A
        // place in the queue holds no pass (an earlier booking's was given back).
        let sql = format!(
            "INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at, waitlist_seq) \
             VALUES ($1, $2, $3, 'waitlisted', NULL, $4, \
                     (SELECT COALESCE(MAX(waitlist_seq), 0) + 1 FROM participations WHERE gym_id = $1 AND session_id = $2)) \
             ON CONFLICT (gym_id, session_id, member_id) DO UPDATE \
             SET status = excluded.status, attendance_time = NULL, waitlist_seq = excluded.waitlist_seq, pass_id = NULL \
             RETURNING {PARTICIPATION_COLS}"
        );
        let values = vec![gym.0.into(), session.0.into(), member.0.into(), ts(now)];
        let p: Participation = timed("waitlist_join", entity(tx, &sql, values))
            .await?
            .ok_or_else(|| DomainError::internal("the waitlist upsert returned no row"))?;
        let sql = "SELECT COUNT(*) AS n FROM participations WHERE gym_id = $1 AND session_id = $2 \
                   AND status = 'waitlisted' AND waitlist_seq <= \
                   (SELECT waitlist_seq FROM participations WHERE gym_id = $1 AND session_id = $2 AND member_id = $3)";
        let values = vec![gym.0.into(), session.0.into(), member.0.into()];
        let n = timed("waitlist_position", one::<Count>(tx, sql, values)).await?.map_or(0, |c| c.n);
        Ok((p, n))
    }

    async fn waitlist_head(&self, tx: &mut Tx, gym: GymId, session: SessionId) -> Result<Option<UserId>> {
        let sql = "SELECT member_id FROM participations WHERE gym_id = $1 AND session_id = $2 \
                   AND status = 'waitlisted' ORDER BY waitlist_seq, id LIMIT 1";
        let row = timed("waitlist_head", one::<MemberRow>(txn(tx)?, sql, vec![gym.0.into(), session.0.into()])).await?;
        Ok(row.map(|r| UserId(r.member_id)))
    }

    async fn waitlists_of(&self, tx: &mut Tx, gym: GymId, member: UserId, after: OffsetDateTime) -> Result<i64> {
        let sql = "SELECT COUNT(*) AS n FROM participations p \
                   JOIN sessions s ON s.gym_id = p.gym_id AND s.id = p.session_id \
                   WHERE p.gym_id = $1 AND p.member_id = $2 AND p.status = 'waitlisted' AND s.start_time > $3";
        let values = vec![gym.0.into(), member.0.into(), ts(after)];
        Ok(timed("member_waitlists", one::<Count>(txn(tx)?, sql, values)).await?.map_or(0, |c| c.n))
    }

    async fn waitlist(&self, gym: GymId, session: SessionId, page: Page) -> Result<Vec<Participation>> {
        let sql = format!(
            "SELECT {PARTICIPATION_COLS} FROM participations WHERE gym_id = $1 AND session_id = $2 \
             AND status = 'waitlisted' ORDER BY waitlist_seq, id LIMIT $3 OFFSET $4"
        );
        let values = vec![gym.0.into(), session.0.into(), page.limit_value(), page.skip_value()];
        self.lagging("waitlist_list", |c| Box::pin(entities(c, &sql, values.clone()))).await
    }

    async fn participants(&self, gym: GymId, session_id: SessionId, page: Page) -> Result<Vec<Participation>> {
        let sql = format!(
            "SELECT {PARTICIPATION_COLS} FROM participations WHERE gym_id = $1 AND session_id = $2 \
             ORDER BY id LIMIT $3 OFFSET $4"
        );
        let values = vec![gym.0.into(), session_id.0.into(), page.limit_value(), page.skip_value()];
        self.lagging("participants_list", |c| Box::pin(entities(c, &sql, values.clone()))).await
    }
}
