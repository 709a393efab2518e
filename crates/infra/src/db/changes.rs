//! [`ChangeRepository`] on SQL: the outbox's numbered facts of a gym, by the
//! `(gym_id, gym_seq)` key.

use async_trait::async_trait;
use domain::changes::{Change, ChangeRepository};
use domain::{GymId, Result};
use sea_orm::FromQueryResult;
use time::OffsetDateTime;

use super::{Db, all, timed};

#[derive(FromQueryResult)]
struct ChangeRow {
    seq: i64,
    id: i64,
    kind: String,
    data: String,
    created_at: OffsetDateTime,
}

const CHANGES: &str = "SELECT gym_seq AS seq, id, type AS kind, CAST(payload AS TEXT) AS data, created_at \
                       FROM outbox WHERE gym_id = $1 AND gym_seq > $2 ORDER BY gym_seq LIMIT $3";

impl From<ChangeRow> for Change {
    fn from(r: ChangeRow) -> Self {
        Change { seq: r.seq, id: r.id, kind: r.kind, data: r.data, created_at: r.created_at }
    }
}

#[async_trait]
impl ChangeRepository for Db {
    async fn changes(&self, gym: GymId, after: i64, limit: u64) -> Result<Vec<Change>> {
        let values = vec![gym.0.into(), after.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()];
        Ok(timed("changes_list", all::<ChangeRow>(&self.conn, CHANGES, values))
            .await?
            .into_iter()
            .map(Change::from)
            .collect())
    }

    async fn recent_changes(&self, gym: GymId, after: i64, limit: u64) -> Result<Vec<Change>> {
        let values = vec![gym.0.into(), after.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()];
        let rows = self.lagging("changes_list", |c| Box::pin(all::<ChangeRow>(c, CHANGES, values.clone()))).await?;
        Ok(rows.into_iter().map(Change::from).collect())
    }

    async fn head(&self, gym: GymId) -> Result<i64> {
        // The head, not MAX(gym_seq): purged facts keep their numbers given.
        let sql = "SELECT last_seq FROM outbox_heads WHERE gym_id = $1";
        let rows = timed("changes_head", all::<HeadRow>(&self.conn, sql, vec![gym.0.into()])).await?;
        Ok(rows.first().map_or(0, |r| r.last_seq))
    }
}

#[derive(FromQueryResult)]
struct HeadRow {
    last_seq: i64,
}
