//! [`EventRepository`] on SQL.

use async_trait::async_trait;
use domain::events::{Event, EventRepository, NewEvent};
use domain::tx::Tx;
use domain::{DomainError, EventId, GymId, Page, Result, Timestamp};
use sea_orm::{DbBackend, Value};
use time::OffsetDateTime;

use super::outbox::txn;
use super::rows::EVENT_COLS;
use super::{Db, PageValues, entities, entity, exec, timed, ts};

/// The columns both writers set, in the order of their statements' parameters.
fn written(
    title: &str,
    description: &Option<String>,
    start: Timestamp,
    end: Timestamp,
    location: &Option<String>,
    max_participants: Option<i32>,
) -> [Value; 6] {
    [
        title.to_owned().into(),
        description.clone().into(),
        ts(start.get()),
        ts(end.get()),
        location.clone().into(),
        max_participants.into(),
    ]
}

#[async_trait]
impl EventRepository for Db {
    async fn between(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        page: Page,
    ) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE gym_id = $1 AND start_time >= $2 AND start_time <= $3 \
             ORDER BY start_time, id LIMIT $4 OFFSET $5"
        );
        let values = vec![gym.0.into(), ts(from), ts(through), page.limit_value(), page.skip_value()];
        timed("events_list", entities(&self.conn, &sql, values)).await
    }

    async fn time_zone(&self, gym: GymId) -> Result<Option<String>> {
        super::gym_time_zone(&self.conn, gym).await
    }

    async fn get(&self, gym: GymId, id: EventId) -> Result<Option<Event>> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE gym_id = $1 AND id = $2");
        timed("event_get", entity(&self.conn, &sql, vec![gym.0.into(), id.0.into()])).await
    }

    async fn lock(&self, tx: &mut Tx, gym: GymId, id: EventId) -> Result<Option<Event>> {
        let lock = if self.backend() == DbBackend::Postgres { "FOR UPDATE" } else { "" };
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE gym_id = $1 AND id = $2 {lock}");
        timed("event_lock", entity(txn(tx)?, &sql, vec![gym.0.into(), id.0.into()])).await
    }

    async fn create(&self, tx: &mut Tx, gym: GymId, e: &NewEvent, now: OffsetDateTime) -> Result<Event> {
        let sql = format!(
            "INSERT INTO events \
             (gym_id, title, description, start_time, end_time, location, max_participants, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {EVENT_COLS}"
        );
        let mut values = vec![gym.0.into()];
        values.extend(written(&e.title, &e.description, e.start_time, e.end_time, &e.location, e.max_participants));
        values.extend([e.created_by.0.into(), ts(now)]);
        timed("event_create", entity(txn(tx)?, &sql, values))
            .await?
            .ok_or_else(|| DomainError::internal("insert returned no event"))
    }

    async fn update(&self, tx: &mut Tx, gym: GymId, e: &Event) -> Result<Option<Event>> {
        let sql = format!(
            "UPDATE events SET title = $3, description = $4, start_time = $5, end_time = $6, location = $7, \
             max_participants = $8 WHERE gym_id = $1 AND id = $2 RETURNING {EVENT_COLS}"
        );
        let mut values = vec![gym.0.into(), e.id.0.into()];
        values.extend(written(&e.title, &e.description, e.start_time, e.end_time, &e.location, e.max_participants));
        timed("event_update", entity(txn(tx)?, &sql, values)).await
    }

    async fn delete(&self, tx: &mut Tx, gym: GymId, id: EventId) -> Result<bool> {
        let n = timed(
            "event_delete",
            exec(txn(tx)?, "DELETE FROM events WHERE gym_id = $1 AND id = $2", vec![gym.0.into(), id.0.into()]),
        )
        .await?;
        Ok(n == 1)
    }
}
