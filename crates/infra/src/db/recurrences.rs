//! [`RecurrenceRepository`] on SQL. A series keeps what was asked as text (weekdays
//! `1,3,5`, a local time `HH:MM`, dates `YYYY-MM-DD`): it is read back as written,
//! never computed with in SQL.

use async_trait::async_trait;
use domain::recurrences::{Recurrence, RecurrenceDraft, RecurrenceRepository};
use domain::tx::Tx;
use domain::{ClassId, DomainError, GymId, RecurrenceId, Result, SessionId, UserId};
use sea_orm::{DbBackend, FromQueryResult};
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};

use super::outbox::txn;
use super::{Db, all, exec, one, opt_id, timed, timed_or, ts, unknown_user};

const COLS: &str = "id, gym_id, class_id, weekdays, local_start_time, starts_on, until_on, timezone, trainer_id, room, stopped_at, created_at";

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    gym_id: i64,
    class_id: i64,
    weekdays: String,
    local_start_time: String,
    starts_on: String,
    until_on: String,
    timezone: String,
    trainer_id: Option<i64>,
    room: Option<String>,
    stopped_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

#[derive(FromQueryResult)]
struct SessionRow {
    id: i64,
}

fn corrupt(what: &str, value: &str) -> DomainError {
    DomainError::internal(format!("stored recurrence {what} {value:?} is not readable"))
}

impl Row {
    fn into_domain(self, session_ids: Vec<SessionId>) -> Result<Recurrence> {
        let day = format_description!("[year]-[month]-[day]");
        let weekdays = self
            .weekdays
            .split(',')
            .map(|d| d.parse::<u8>().map_err(|_| corrupt("weekdays", &self.weekdays)))
            .collect::<Result<Vec<u8>>>()?;
        let asked = RecurrenceDraft {
            weekdays,
            local_start_time: Time::parse(&self.local_start_time, format_description!("[hour]:[minute]"))
                .map_err(|_| corrupt("local time", &self.local_start_time))?,
            starts_on: Date::parse(&self.starts_on, day).map_err(|_| corrupt("date", &self.starts_on))?,
            until: Date::parse(&self.until_on, day).map_err(|_| corrupt("date", &self.until_on))?,
            timezone: self.timezone,
            trainer_id: self.trainer_id.map(UserId),
            room: self.room,
        };
        Ok(Recurrence {
            id: RecurrenceId(self.id),
            gym_id: GymId(self.gym_id),
            class_id: ClassId(self.class_id),
            asked,
            stopped_at: self.stopped_at,
            created_at: self.created_at,
            session_ids,
        })
    }
}

fn text_of(draft: &RecurrenceDraft) -> Result<(String, String, String, String)> {
    let day = format_description!("[year]-[month]-[day]");
    let weekdays = draft.weekdays.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
    let at = draft.local_start_time.format(format_description!("[hour]:[minute]")).map_err(DomainError::internal)?;
    let from = draft.starts_on.format(day).map_err(DomainError::internal)?;
    let until = draft.until.format(day).map_err(DomainError::internal)?;
    Ok((weekdays, at, from, until))
}

impl Db {
    async fn sessions_of(&self, gym: GymId, id: RecurrenceId) -> Result<Vec<SessionId>> {
        let sql = "SELECT id FROM sessions WHERE gym_id = $1 AND recurrence_id = $2 ORDER BY start_time, id";
        let rows =
            timed("recurrence_sessions", all::<SessionRow>(&self.conn, sql, vec![gym.0.into(), id.0.into()])).await?;
        Ok(rows.into_iter().map(|r| SessionId(r.id)).collect())
    }
}

#[async_trait]
impl RecurrenceRepository for Db {
    async fn create_recurrence(
        &self,
        tx: &mut Tx,
        gym: GymId,
        class: ClassId,
        draft: &RecurrenceDraft,
        now: OffsetDateTime,
    ) -> Result<Recurrence> {
        let (weekdays, at, from, until) = text_of(draft)?;
        let sql = format!(
            "INSERT INTO recurrences (gym_id, class_id, weekdays, local_start_time, starts_on, until_on, timezone, \
             trainer_id, room, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLS}"
        );
        let values = vec![
            gym.0.into(),
            class.0.into(),
            weekdays.into(),
            at.into(),
            from.into(),
            until.into(),
            draft.timezone.clone().into(),
            opt_id(draft.trainer_id),
            draft.room.clone().into(),
            ts(now),
        ];
        let row = timed_or("recurrence_create", one::<Row>(txn(tx)?, &sql, values), unknown_user)
            .await?
            .ok_or_else(|| DomainError::internal("the insert returned no recurrence"))?;
        row.into_domain(Vec::new())
    }

    async fn recurrences(&self, gym: GymId, class: ClassId) -> Result<Vec<Recurrence>> {
        let sql = format!("SELECT {COLS} FROM recurrences WHERE gym_id = $1 AND class_id = $2 ORDER BY id");
        let rows = timed("recurrence_list", all::<Row>(&self.conn, &sql, vec![gym.0.into(), class.0.into()])).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let sessions = self.sessions_of(gym, RecurrenceId(row.id)).await?;
            out.push(row.into_domain(sessions)?);
        }
        Ok(out)
    }

    async fn recurrence(
        &self,
        tx: &mut Tx,
        gym: GymId,
        class: ClassId,
        id: RecurrenceId,
    ) -> Result<Option<Recurrence>> {
        let lock = if self.backend() == DbBackend::Postgres { "FOR UPDATE" } else { "" };
        let sql = format!("SELECT {COLS} FROM recurrences WHERE gym_id = $1 AND class_id = $2 AND id = $3 {lock}");
        let values = vec![gym.0.into(), class.0.into(), id.0.into()];
        let row = timed("recurrence_get", one::<Row>(txn(tx)?, &sql, values)).await?;
        row.map(|r| r.into_domain(Vec::new())).transpose()
    }

    async fn delete_unbooked_sessions(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: RecurrenceId,
        after: OffsetDateTime,
    ) -> Result<Vec<SessionId>> {
        let tx = txn(tx)?;
        // The rows first, locked (a booking holds a session's lock while it writes its
        // participation); then, by the next statement, which sees what those bookings
        // committed, the ones nobody ever booked.
        let lock = if self.backend() == DbBackend::Postgres { "FOR UPDATE" } else { "" };
        let sql = format!(
            "SELECT id FROM sessions WHERE gym_id = $1 AND recurrence_id = $2 AND start_time > $3 ORDER BY id {lock}"
        );
        let values = vec![gym.0.into(), id.0.into(), ts(after)];
        timed("recurrence_sessions_lock", all::<SessionRow>(tx, &sql, values.clone())).await?;
        let sql = "DELETE FROM sessions WHERE gym_id = $1 AND recurrence_id = $2 AND start_time > $3 \
                   AND NOT EXISTS (SELECT 1 FROM participations p WHERE p.gym_id = sessions.gym_id \
                                   AND p.session_id = sessions.id) RETURNING id";
        let mut removed: Vec<SessionId> = timed("recurrence_sessions_delete", all::<SessionRow>(tx, sql, values))
            .await?
            .into_iter()
            .map(|r| SessionId(r.id))
            .collect();
        removed.sort_unstable();
        Ok(removed)
    }

    async fn stop_recurrence(&self, tx: &mut Tx, gym: GymId, id: RecurrenceId, now: OffsetDateTime) -> Result<()> {
        let sql = "UPDATE recurrences SET stopped_at = $3 WHERE gym_id = $1 AND id = $2";
        timed("recurrence_stop", exec(txn(tx)?, sql, vec![gym.0.into(), id.0.into(), ts(now)])).await.map(drop)
    }
}
