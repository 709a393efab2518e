//! [`WebhookRepository`] on SQL: endpoints with their cursors into the change feed,
//! and their deliveries.
//!
//! A delivery's body is written when its fact is taken (the envelope
//! `{id, type, created_at, gym_id, data}`), so every attempt and replay sends the
//! same bytes under the same `id`.

use async_trait::async_trait;
use domain::changes::public_type;
use domain::tx::Tx;
use domain::webhooks::{Attempt, Delivery, DeliveryStatus, Outcome, Outgoing, Settle, Webhook, WebhookRepository};
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
struct Endpoint {
    id: i64,
    gym_id: i64,
    events: String,
    cursor: i64,
}

#[derive(FromQueryResult)]
struct GymFact {
    gym_id: i64,
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
fn body(gym: i64, fact: &GymFact, kind: &str) -> String {
    let created_at = fact.created_at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default();
    let data = serde_json::from_str::<serde_json::Value>(&fact.data).unwrap_or(serde_json::Value::Null);
    serde_json::json!({"id": fact.id, "type": kind, "created_at": created_at, "gym_id": gym, "data": data}).to_string()
}

impl Db {
    /// Deletes deliveries done with (delivered, or failed: their last attempt's time)
    /// longer ago than `before`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn purge_webhook_deliveries(&self, before: OffsetDateTime) -> Result<u64> {
        let sql = "DELETE FROM webhook_deliveries WHERE status <> 'pending' \
                   AND COALESCE(delivered_at, next_attempt_at) < $1";
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
        now: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<Option<Webhook>> {
        let sql = format!(
            "UPDATE webhooks SET \
               previous_secret = CASE WHEN previous_until > $1 THEN previous_secret ELSE secret END, \
               previous_until = CASE WHEN previous_until > $1 THEN previous_until ELSE $2 END, \
               secret = $3 \
             WHERE id = $4 AND gym_id = $5 RETURNING {WEBHOOK_COLS}"
        );
        let values = vec![ts(now), ts(previous_until), secret.into(), id.into(), gym.0.into()];
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
        let tx = txn(tx)?;
        let row = timed("webhooks_replay", one::<DeliveryRow>(tx, &sql, values)).await?;
        if row.is_some() {
            timed("webhooks_replay_due", exec(tx, NEXT_DUE, vec![id.into()])).await?;
        }
        row.map(Delivery::try_from).transpose()
    }

    async fn take_facts(&self, now: OffsetDateTime, limit: u32) -> Result<usize> {
        // Most steps find every endpoint caught up: one read, no write.
        let behind = "SELECT w.id FROM webhooks w JOIN outbox_heads h ON h.gym_id = w.gym_id \
                      WHERE h.last_seq > w.cursor LIMIT 1";
        if timed("webhooks_behind", all::<Behind>(&self.conn, behind, vec![])).await?.is_empty() {
            return Ok(0);
        }
        let (tx, _writer) = self.write_tx().await?;
        // Endpoints another instance is taking are passed over (PostgreSQL); SQLite's
        // one writer orders the steps instead.
        let lock = if self.backend() == DbBackend::Postgres { "FOR UPDATE OF w SKIP LOCKED" } else { "" };
        let taken = timed("webhooks_take", async {
            let sql = format!(
                "SELECT w.id, w.gym_id, w.events, w.cursor FROM webhooks w \
                 JOIN outbox_heads h ON h.gym_id = w.gym_id WHERE h.last_seq > w.cursor ORDER BY w.id LIMIT 1000 {lock}"
            );
            let endpoints = all::<Endpoint>(&tx, &sql, vec![]).await?;
            if endpoints.is_empty() {
                return Ok(0);
            }
            // Each gym's facts from its furthest-behind endpoint's cursor, `limit` at most.
            let mut gyms: Vec<(i64, i64)> = Vec::new();
            for e in &endpoints {
                match gyms.iter_mut().find(|(g, _)| *g == e.gym_id) {
                    Some((_, after)) => *after = (*after).min(e.cursor),
                    None => gyms.push((e.gym_id, e.cursor)),
                }
            }
            let rows = gyms.iter().map(|(g, a)| vec![Cell::Int(Some(*g)), Cell::Int(Some(*a))]).collect();
            let (cte, mut values) =
                rows_cte(self.backend(), "c", &[("gym_id", "BIGINT"), ("after", "BIGINT")], rows, 1);
            let sql = format!(
                "WITH {cte} SELECT o.gym_id, o.gym_seq AS seq, o.id, o.type AS kind, CAST(o.payload AS TEXT) AS data, \
                 o.created_at FROM c JOIN outbox o ON o.gym_id = c.gym_id AND o.gym_seq > c.after \
                 AND o.gym_seq <= c.after + ${} ORDER BY o.gym_id, o.gym_seq",
                values.len() + 1
            );
            values.push(i64::from(limit).into());
            let facts = all::<GymFact>(&tx, &sql, values).await?;
            let mut deliveries: Vec<Vec<Cell>> = Vec::new();
            let mut cursors: Vec<Vec<Cell>> = Vec::new();
            for e in &endpoints {
                let wanted: Vec<&str> = e.events.split(',').collect();
                let mine = facts
                    .iter()
                    .filter(|f| f.gym_id == e.gym_id && f.seq > e.cursor && f.seq <= e.cursor + i64::from(limit));
                let mut last = e.cursor;
                let mut any = false;
                for f in mine {
                    last = f.seq;
                    let Some(kind) = public_type(&f.kind).filter(|k| wanted.contains(k)) else { continue };
                    any = true;
                    deliveries.push(vec![
                        Cell::Int(Some(i64::try_from(deliveries.len()).unwrap_or(i64::MAX))),
                        Cell::Int(Some(e.gym_id)),
                        Cell::Int(Some(e.id)),
                        Cell::Int(Some(f.id)),
                        Cell::Text(kind),
                        Cell::Str(Some(body(e.gym_id, f, kind))),
                    ]);
                }
                if last > e.cursor {
                    cursors.push(vec![Cell::Int(Some(e.id)), Cell::Int(Some(last)), Cell::Time(any.then_some(now))]);
                }
            }
            let taken = deliveries.len();
            if taken > 0 {
                let columns =
                    [("n", "BIGINT"), ("g", "BIGINT"), ("w", "BIGINT"), ("e", "BIGINT"), ("k", "TEXT"), ("b", "TEXT")];
                let (cte, mut values) = rows_cte(self.backend(), "r", &columns, deliveries, 1);
                // ORDER BY n: ids follow the feed's order, which is each endpoint's order.
                // `WHERE true`: SQLite would read `ON CONFLICT` after a bare `FROM r` as a join's.
                let sql = format!(
                    "WITH {cte} INSERT INTO webhook_deliveries \
                     (gym_id, webhook_id, event_id, type, body, status, attempts, next_attempt_at, created_at) \
                     SELECT g, w, e, k, b, 'pending', 0, ${0}, ${0} FROM r WHERE true ORDER BY n \
                     ON CONFLICT (gym_id, webhook_id, event_id) DO NOTHING",
                    values.len() + 1
                );
                values.push(ts(now));
                exec(&tx, &sql, values).await?;
            }
            if !cursors.is_empty() {
                let columns = [("i", "BIGINT"), ("c", "BIGINT"), ("d", "TIMESTAMPTZ")];
                let (cte, values) = rows_cte(self.backend(), "v", &columns, cursors, 1);
                let sql = format!(
                    "WITH {cte} UPDATE webhooks SET cursor = v.c, next_due = COALESCE(webhooks.next_due, v.d) \
                     FROM v WHERE webhooks.id = v.i"
                );
                exec(&tx, &sql, values).await?;
            }
            Ok(taken)
        })
        .await?;
        tx.commit().await.map_err(unavailable_or_internal)?;
        Ok(taken)
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        token: i64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        let skip_locked = if self.backend() == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
        // `next_due` is the endpoint's oldest pending delivery's time: what waits
        // behind a retry waits with it (order per endpoint). Longest due first.
        let sql = format!(
            "UPDATE webhooks SET lease_until = $1, lease_token = $2 WHERE id IN (\
               SELECT id FROM webhooks WHERE next_due <= $3 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY next_due LIMIT $4 {skip_locked}) \
             RETURNING id"
        );
        let values = vec![ts(lease_until), token.into(), ts(now), i64::from(limit).into()];
        let _writer = self.writer().await?;
        let rows = timed("webhooks_claim", all::<Behind>(&self.conn, &sql, values)).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn pending(&self, webhook: i64, now: OffsetDateTime, limit: u32) -> Result<Vec<Outgoing>> {
        let sql = "SELECT d.id, d.body, d.attempts, d.next_attempt_at, w.url, w.secret, w.previous_secret, \
                   w.previous_until FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                   WHERE d.webhook_id = $1 AND d.status = 'pending' ORDER BY d.id LIMIT $2";
        let values = vec![webhook.into(), i64::from(limit).into()];
        let rows = timed("webhooks_pending", all::<PendingRow>(&self.conn, sql, values)).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
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
            })
            .collect())
    }

    async fn settle(
        &self,
        webhook: i64,
        token: i64,
        outcomes: &[Outcome],
        lease_until: Option<OffsetDateTime>,
    ) -> Result<bool> {
        let _writer = self.writer().await?;
        timed("webhooks_settle", async {
            if !outcomes.is_empty() {
                let rows = outcomes
                    .iter()
                    .map(|o| {
                        let (code, error) = match &o.attempt {
                            Attempt::Delivered { status } => (Some(i64::from(*status)), None),
                            Attempt::Failed { status, error } => {
                                (status.map(i64::from), Some(error.chars().take(500).collect::<String>()))
                            }
                        };
                        let (status, next, delivered_at, result) = match o.settle {
                            Settle::Delivered(at) => (DeliveryStatus::Delivered, None, Some(at), "delivered"),
                            Settle::RetryAt(at) => (DeliveryStatus::Pending, Some(at), None, "retry"),
                            Settle::Failed => (DeliveryStatus::Failed, None, None, "failed"),
                        };
                        metrics::counter!("gymapi_webhook_attempts_total", "result" => result).increment(1);
                        vec![
                            Cell::Int(Some(o.delivery)),
                            Cell::Int(Some(i64::from(o.attempts_before))),
                            Cell::Text(status.as_str()),
                            Cell::Time(next),
                            Cell::Int(code),
                            Cell::Str(error),
                            Cell::Time(delivered_at),
                        ]
                    })
                    .collect();
                let columns = [
                    ("i", "BIGINT"),
                    ("a", "INTEGER"),
                    ("s", "TEXT"),
                    ("n", "TIMESTAMPTZ"),
                    ("c", "INTEGER"),
                    ("e", "TEXT"),
                    ("d", "TIMESTAMPTZ"),
                ];
                let (cte, mut values) = rows_cte(self.backend(), "v", &columns, rows, 1);
                // Only a delivery still as it was sent: a replay meanwhile wins.
                let sql = format!(
                    "WITH {cte} UPDATE webhook_deliveries SET status = v.s, attempts = webhook_deliveries.attempts + 1, \
                     next_attempt_at = COALESCE(v.n, webhook_deliveries.next_attempt_at), last_status = v.c, \
                     last_error = v.e, delivered_at = v.d FROM v WHERE webhook_deliveries.id = v.i \
                     AND webhook_deliveries.webhook_id = ${} AND webhook_deliveries.status = 'pending' \
                     AND webhook_deliveries.attempts = v.a",
                    values.len() + 1
                );
                values.push(webhook.into());
                exec(&self.conn, &sql, values).await?;
            }
            let lease = lease_until.map_or_else(|| Value::from(None::<OffsetDateTime>), ts);
            let token_after = if lease_until.is_some() { Value::from(token) } else { Value::from(None::<i64>) };
            let sql = format!(
                "UPDATE webhooks SET lease_until = $1, lease_token = $2, next_due = ({NEXT_DUE_OF}) \
                 WHERE id = $3 AND lease_token = $4"
            );
            exec(&self.conn, &sql, vec![lease, token_after, webhook.into(), token.into()]).await
        })
        .await
        .map(|held| held > 0)
    }
}

/// The time of an endpoint's oldest pending delivery (`webhooks.next_due`), for an
/// `UPDATE webhooks` row.
const NEXT_DUE_OF: &str = "SELECT d.next_attempt_at FROM webhook_deliveries d \
                           WHERE d.webhook_id = webhooks.id AND d.status = 'pending' ORDER BY d.id LIMIT 1";

/// Sets an endpoint's `next_due` from its queue (`$1`: the endpoint).
const NEXT_DUE: &str = "UPDATE webhooks SET next_due = (SELECT d.next_attempt_at FROM webhook_deliveries d \
                        WHERE d.webhook_id = webhooks.id AND d.status = 'pending' ORDER BY d.id LIMIT 1) WHERE id = $1";
