//! [`WebhookRepository`] on SQL: endpoints with their cursors into the change feed,
//! and their deliveries.
//!
//! A delivery's body is written when its fact is taken (the envelope
//! `{id, type, created_at, gym_id, data}`), so every attempt and replay sends the
//! same bytes under the same `id`.

use async_trait::async_trait;
use domain::changes::public_type;
use domain::tx::Tx;
use domain::webhooks::{Attempt, Delivery, DeliveryStatus, Outgoing, Settle, Webhook, WebhookRepository};
use domain::{DomainError, GymId, Page, Result};
use sea_orm::{DbBackend, FromQueryResult, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::outbox::txn;
use super::{Cell, Db, PageValues, all, exec, one, rows_cte, timed, ts, unavailable_or_internal};

const WEBHOOK_COLS: &str = "id, gym_id, url, events, secret, previous_secret, previous_until, created_at";
const DELIVERY_COLS: &str = "id, webhook_id, event_id, type AS kind, status, attempts, next_attempt_at, last_status, \
                             last_error, created_at, delivered_at";

#[derive(FromQueryResult)]
struct WebhookRow {
    id: i64,
    gym_id: i64,
    url: String,
    events: String,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            gym_id: GymId(r.gym_id),
            url: r.url,
            events: r.events.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
            secret: r.secret,
            previous_secret: r.previous_secret,
            previous_until: r.previous_until,
            created_at: r.created_at,
        }
    }
}

#[derive(FromQueryResult)]
struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    event_id: i64,
    kind: String,
    status: String,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    last_status: Option<i32>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    delivered_at: Option<OffsetDateTime>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = DomainError;

    fn try_from(r: DeliveryRow) -> Result<Self> {
        let status = DeliveryStatus::parse(&r.status)
            .ok_or_else(|| DomainError::internal(format!("stored delivery status {:?} is not known", r.status)))?;
        Ok(Delivery {
            id: r.id,
            webhook_id: r.webhook_id,
            event_id: r.event_id,
            kind: r.kind,
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(r.next_attempt_at),
            status,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        })
    }
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

#[derive(FromQueryResult)]
struct Behind {
    id: i64,
}

#[derive(FromQueryResult)]
struct Cursor {
    gym_id: i64,
    events: String,
    cursor: i64,
}

#[derive(FromQueryResult)]
struct FactRow {
    seq: i64,
    id: i64,
    kind: String,
    data: String,
    created_at: OffsetDateTime,
}

#[derive(FromQueryResult)]
struct PendingRow {
    id: i64,
    body: String,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<OffsetDateTime>,
}

/// A delivery's body: the envelope of the fact, as webhooks and streams show it.
fn body(gym: i64, fact: &FactRow, kind: &str) -> String {
    let created_at = fact.created_at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default();
    let data = serde_json::from_str::<serde_json::Value>(&fact.data).unwrap_or(serde_json::Value::Null);
    serde_json::json!({"id": fact.id, "type": kind, "created_at": created_at, "gym_id": gym, "data": data}).to_string()
}

impl Db {
    /// Takes one endpoint's new facts, in one transaction under its row's lock.
    async fn take_for(&self, webhook: i64, now: OffsetDateTime, limit: u32) -> Result<usize> {
        let (tx, _writer) = self.write_tx().await?;
        let lock = if self.backend() == DbBackend::Postgres { "FOR UPDATE" } else { "" };
        let done = timed("webhooks_take", async {
            let sql = format!("SELECT gym_id, events, cursor FROM webhooks WHERE id = $1 {lock}");
            // Deleted meanwhile: nothing to take.
            let Some(w) = one::<Cursor>(&tx, &sql, vec![webhook.into()]).await? else { return Ok(0) };
            let facts = all::<FactRow>(
                &tx,
                "SELECT gym_seq AS seq, id, type AS kind, CAST(payload AS TEXT) AS data, created_at FROM outbox \
                 WHERE gym_id = $1 AND gym_seq > $2 ORDER BY gym_seq LIMIT $3",
                vec![w.gym_id.into(), w.cursor.into(), i64::from(limit).into()],
            )
            .await?;
            let Some(last) = facts.last().map(|f| f.seq) else { return Ok(0) };
            let wanted: Vec<String> = w.events.split(',').map(str::to_owned).collect();
            let rows: Vec<Vec<Cell>> = facts
                .iter()
                .filter_map(|f| {
                    let kind = public_type(&f.kind).filter(|k| wanted.iter().any(|w| w == k))?;
                    Some(vec![Cell::Int(Some(f.id)), Cell::Text(kind), Cell::Str(Some(body(w.gym_id, f, kind)))])
                })
                .collect();
            let taken = rows.len();
            if taken > 0 {
                let columns = [("e", "BIGINT"), ("k", "TEXT"), ("b", "TEXT")];
                let (cte, mut values) = rows_cte(self.backend(), "r", &columns, rows, 1);
                let n = values.len();
                // `WHERE true`: SQLite reads `ON CONFLICT` after a bare `FROM r` as a join's.
                let sql = format!(
                    "WITH {cte} INSERT INTO webhook_deliveries \
                     (gym_id, webhook_id, event_id, type, body, status, attempts, next_attempt_at, created_at) \
                     SELECT ${}, ${}, e, k, b, 'pending', 0, ${}, ${} FROM r WHERE true \
                     ON CONFLICT (gym_id, webhook_id, event_id) DO NOTHING",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4
                );
                values.extend([w.gym_id.into(), webhook.into(), ts(now), ts(now)]);
                exec(&tx, &sql, values).await?;
            }
            exec(&tx, "UPDATE webhooks SET cursor = $1 WHERE id = $2", vec![last.into(), webhook.into()]).await?;
            Ok(taken)
        })
        .await?;
        tx.commit().await.map_err(unavailable_or_internal)?;
        Ok(done)
    }

    /// Deletes deliveries that are done with (delivered or failed) and older than `before`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn purge_webhook_deliveries(&self, before: OffsetDateTime) -> Result<u64> {
        let sql = "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1";
        let _writer = self.writer().await?;
        timed("webhooks_purge", exec(&self.conn, sql, vec![ts(before)])).await
    }
}

#[async_trait]
impl WebhookRepository for Db {
    async fn count(&self, tx: &mut Tx, gym: GymId) -> Result<u64> {
        let tx = txn(tx)?;
        if self.backend() == DbBackend::Postgres {
            // The gym's row orders registrations of one gym: the limit holds under racers.
            let sql = "SELECT id AS n FROM gyms WHERE id = $1 FOR NO KEY UPDATE";
            timed("webhooks_lock_gym", one::<Count>(tx, sql, vec![gym.0.into()])).await?;
        }
        let sql = "SELECT COUNT(*) AS n FROM webhooks WHERE gym_id = $1";
        let n = timed("webhooks_count", one::<Count>(tx, sql, vec![gym.0.into()])).await?;
        Ok(n.map_or(0, |c| u64::try_from(c.n).unwrap_or(0)))
    }

    async fn create(
        &self,
        tx: &mut Tx,
        gym: GymId,
        url: &str,
        events: &[String],
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Webhook> {
        let sql = format!(
            "INSERT INTO webhooks (gym_id, url, events, secret, cursor, created_at) VALUES ($1, $2, $3, $4, \
             COALESCE((SELECT last_seq FROM outbox_heads WHERE gym_id = $1), 0), $5) RETURNING {WEBHOOK_COLS}"
        );
        let values = vec![gym.0.into(), url.into(), events.join(",").into(), secret.into(), ts(now)];
        let row = timed("webhooks_create", one::<WebhookRow>(txn(tx)?, &sql, values)).await?;
        row.map(Webhook::from).ok_or_else(|| DomainError::internal("a webhook insert returned no row"))
    }

    async fn list(&self, gym: GymId) -> Result<Vec<Webhook>> {
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE gym_id = $1 ORDER BY id");
        let rows = timed("webhooks_list", all::<WebhookRow>(&self.conn, &sql, vec![gym.0.into()])).await?;
        Ok(rows.into_iter().map(Webhook::from).collect())
    }

    async fn delete(&self, tx: &mut Tx, gym: GymId, id: i64) -> Result<bool> {
        let sql = "DELETE FROM webhooks WHERE id = $1 AND gym_id = $2";
        Ok(timed("webhooks_delete", exec(txn(tx)?, sql, vec![id.into(), gym.0.into()])).await? > 0)
    }

    async fn rotate_secret(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        secret: &str,
        previous_until: OffsetDateTime,
    ) -> Result<Option<Webhook>> {
        let sql = format!(
            "UPDATE webhooks SET previous_secret = secret, previous_until = $1, secret = $2 \
             WHERE id = $3 AND gym_id = $4 RETURNING {WEBHOOK_COLS}"
        );
        let values = vec![ts(previous_until), secret.into(), id.into(), gym.0.into()];
        Ok(timed("webhooks_rotate", one::<WebhookRow>(txn(tx)?, &sql, values)).await?.map(Webhook::from))
    }

    async fn deliveries(&self, gym: GymId, id: i64, page: Page) -> Result<Option<Vec<Delivery>>> {
        let sql = "SELECT id AS n FROM webhooks WHERE id = $1 AND gym_id = $2";
        if timed("webhooks_get", one::<Count>(&self.conn, sql, vec![id.into(), gym.0.into()])).await?.is_none() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let values = vec![id.into(), page.limit_value(), page.skip_value()];
        let rows = timed("webhooks_deliveries", all::<DeliveryRow>(&self.conn, &sql, values)).await?;
        rows.into_iter().map(Delivery::try_from).collect::<Result<Vec<_>>>().map(Some)
    }

    async fn replay(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        delivery: i64,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>> {
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, delivered_at = NULL \
             WHERE id = $2 AND webhook_id = $3 AND webhook_id IN (SELECT id FROM webhooks WHERE gym_id = $4) \
             RETURNING {DELIVERY_COLS}"
        );
        let values = vec![ts(now), delivery.into(), id.into(), gym.0.into()];
        let row = timed("webhooks_replay", one::<DeliveryRow>(txn(tx)?, &sql, values)).await?;
        row.map(Delivery::try_from).transpose()
    }

    async fn take_facts(&self, now: OffsetDateTime, limit: u32) -> Result<usize> {
        // Most steps find every endpoint caught up: one read, no write.
        let sql = "SELECT w.id FROM webhooks w JOIN outbox_heads h ON h.gym_id = w.gym_id \
                   WHERE h.last_seq > w.cursor ORDER BY w.id LIMIT 100";
        let behind = timed("webhooks_behind", all::<Behind>(&self.conn, sql, vec![])).await?;
        let mut taken = 0;
        for w in behind {
            taken += self.take_for(w.id, now, limit).await?;
        }
        Ok(taken)
    }

    async fn claim(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: u32) -> Result<Vec<i64>> {
        let skip_locked = if self.backend() == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
        // An endpoint is due when its oldest pending delivery is: what waits behind a
        // retry waits with it (order per endpoint).
        let sql = format!(
            "UPDATE webhooks SET lease_until = $1 WHERE id IN (\
               SELECT w.id FROM webhooks w WHERE (w.lease_until IS NULL OR w.lease_until < $2) \
               AND (SELECT d.next_attempt_at FROM webhook_deliveries d \
                    WHERE d.webhook_id = w.id AND d.status = 'pending' ORDER BY d.id LIMIT 1) <= $2 \
               ORDER BY w.id LIMIT $3 {skip_locked}) \
             RETURNING id"
        );
        let values = vec![ts(lease_until), ts(now), i64::from(limit).into()];
        let _writer = self.writer().await?;
        let rows = timed("webhooks_claim", all::<Behind>(&self.conn, &sql, values)).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn oldest_pending(&self, webhook: i64, now: OffsetDateTime) -> Result<Option<Outgoing>> {
        let sql = "SELECT d.id, d.body, d.attempts, d.next_attempt_at, w.url, w.secret, w.previous_secret, \
                   w.previous_until FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                   WHERE d.webhook_id = $1 AND d.status = 'pending' ORDER BY d.id LIMIT 1";
        let row = timed("webhooks_next", one::<PendingRow>(&self.conn, sql, vec![webhook.into()])).await?;
        Ok(row.map(|r| {
            let mut secrets = vec![r.secret];
            if let (Some(previous), Some(until)) = (r.previous_secret, r.previous_until)
                && until > now
            {
                secrets.push(previous);
            }
            Outgoing {
                delivery_id: r.id,
                url: r.url,
                body: r.body,
                attempts: r.attempts,
                due_at: r.next_attempt_at,
                secrets,
            }
        }))
    }

    async fn settle(
        &self,
        webhook: i64,
        delivery: i64,
        attempt: &Attempt,
        settle: &Settle,
        lease_until: OffsetDateTime,
    ) -> Result<()> {
        let (code, error): (Option<i32>, Option<String>) = match attempt {
            Attempt::Delivered { status } => (Some(i32::from(*status)), None),
            Attempt::Failed { status, error } => {
                (status.map(i32::from), Some(error.chars().take(500).collect::<String>()))
            }
        };
        let none = || Value::from(None::<OffsetDateTime>);
        let (status, next, delivered_at, result) = match settle {
            Settle::Delivered(at) => (DeliveryStatus::Delivered, none(), ts(*at), "delivered"),
            Settle::RetryAt(at) => (DeliveryStatus::Pending, ts(*at), none(), "retry"),
            Settle::Failed => (DeliveryStatus::Failed, none(), none(), "failed"),
        };
        metrics::counter!("gymapi_webhook_attempts_total", "result" => result).increment(1);
        let sql = "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
                   next_attempt_at = COALESCE($2, next_attempt_at), last_status = $3, last_error = $4, \
                   delivered_at = $5 WHERE id = $6 AND webhook_id = $7";
        let values = vec![
            status.as_str().into(),
            next,
            code.into(),
            error.into(),
            delivered_at,
            delivery.into(),
            webhook.into(),
        ];
        let _writer = self.writer().await?;
        timed("webhooks_settle", async {
            exec(&self.conn, sql, values).await?;
            exec(
                &self.conn,
                "UPDATE webhooks SET lease_until = $1 WHERE id = $2",
                vec![ts(lease_until), webhook.into()],
            )
            .await
        })
        .await?;
        Ok(())
    }

    async fn release(&self, webhook: i64) -> Result<()> {
        let _writer = self.writer().await?;
        let sql = "UPDATE webhooks SET lease_until = NULL WHERE id = $1";
        timed("webhooks_release", exec(&self.conn, sql, vec![webhook.into()])).await?;
        Ok(())
    }
}
