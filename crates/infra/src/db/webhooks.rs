//! [`WebhookRepository`] on SQL: endpoints with their cursors into the change feed,
//! and their deliveries.
//!
//! A delivery's body is written when its fact is taken (the envelope
//! `{id, type, created_at, gym_id, data}`), so every attempt and replay sends the
//! same bytes under the same `id`.

use async_trait::async_trait;
use domain::changes::public_type;
use domain::tx::Tx;
use domain::webhooks::{
    Attempt, Batch, Delivery, DeliveryStatus, Outcome, Outgoing, Settle, Source, Webhook, WebhookRepository,
};
use domain::{DomainError, GymId, Page, Result};
use sea_orm::{DbBackend, FromQueryResult, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::outbox::txn;
use super::{Cell, Db, PageValues, all, exec, one, rows_cte, timed, ts};

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

/// An endpoint with one of the facts after its cursor (none: the fact's columns
/// are NULL), and whether it has a queue of failures and replays.
#[derive(FromQueryResult)]
struct NextRow {
    gym_id: i64,
    events: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<OffsetDateTime>,
    queued: bool,
    seq: Option<i64>,
    event_id: Option<i64>,
    kind: Option<String>,
    data: Option<String>,
    created_at: Option<OffsetDateTime>,
}

struct GymFact {
    seq: i64,
    id: i64,
    kind: String,
    data: String,
    created_at: OffsetDateTime,
}

#[derive(FromQueryResult)]
struct PendingRow {
    id: i64,
    kind: String,
    body: String,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
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
        timed("webhooks_purge", exec(&self.writes, sql, vec![ts(before)])).await
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
        let rows =
            self.lagging("webhooks_deliveries", |c| Box::pin(all::<DeliveryRow>(c, &sql, values.clone()))).await?;
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

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        token: i64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        let skip_locked = if self.backend() == DbBackend::Postgres { "FOR UPDATE OF w SKIP LOCKED" } else { "" };
        // `next_due` is the time of the endpoint's oldest pending row: while it has
        // one, new facts wait behind it (order per endpoint). Longest due first.
        let sql = format!(
            "UPDATE webhooks SET lease_until = $1, lease_token = $2 WHERE id IN (\
               SELECT w.id FROM webhooks w LEFT JOIN outbox_heads h ON h.gym_id = w.gym_id \
               WHERE (w.lease_until IS NULL OR w.lease_until < $3) \
               AND (w.next_due <= $3 OR w.next_due IS NULL AND h.last_seq > w.cursor) \
               ORDER BY COALESCE(w.next_due, $3) LIMIT $4 {skip_locked}) \
             RETURNING id"
        );
        let values = vec![ts(lease_until), token.into(), ts(now), i64::from(limit).into()];
        let _writer = self.writer().await?;
        let rows = timed("webhooks_claim", all::<Behind>(&self.writes, &sql, values)).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn next(&self, webhook: i64, now: OffsetDateTime, limit: u32) -> Result<Batch> {
        let secrets = |secret: String, previous: Option<String>, until: Option<OffsetDateTime>| {
            let mut secrets = vec![secret];
            if let (Some(previous), Some(until)) = (previous, until)
                && until > now
            {
                secrets.push(previous);
            }
            secrets
        };
        // One statement in the common case: the endpoint, whether it has a queue, and
        // the facts after its cursor (each a statement of its own cost a drain three
        // round trips, most of a drain's database time on SQLite's busy connections).
        let sql = "SELECT w.gym_id, w.events, w.url, w.secret, w.previous_secret, w.previous_until, \
                   EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending') \
                   AS queued, o.gym_seq AS seq, o.id AS event_id, o.type AS kind, CAST(o.payload AS TEXT) AS data, \
                   o.created_at FROM webhooks w LEFT JOIN outbox o ON o.gym_id = w.gym_id AND o.gym_seq > w.cursor \
                   WHERE w.id = $1 ORDER BY o.gym_seq LIMIT $2";
        let values = vec![webhook.into(), i64::from(limit).into()];
        let rows = timed("webhooks_next", all::<NextRow>(&self.conn, sql, values)).await?;
        let Some(w) = rows.first() else {
            return Ok(Batch::default());
        };
        if w.queued {
            // Failures and replays go before any new fact.
            let sql = "SELECT d.id, d.type AS kind, d.body, d.attempts, d.next_attempt_at FROM webhook_deliveries d \
                       WHERE d.webhook_id = $1 AND d.status = 'pending' ORDER BY d.id LIMIT $2";
            let values = vec![webhook.into(), i64::from(limit).into()];
            let pending = timed("webhooks_pending", all::<PendingRow>(&self.conn, sql, values)).await?;
            let secrets = secrets(w.secret.clone(), w.previous_secret.clone(), w.previous_until);
            let more = pending.len() == limit as usize;
            let items = pending
                .into_iter()
                .map(|r| Outgoing {
                    source: Source::Row(r.id),
                    kind: r.kind,
                    url: w.url.clone(),
                    body: r.body,
                    attempts: r.attempts,
                    due_at: r.next_attempt_at,
                    secrets: secrets.clone(),
                })
                .collect();
            return Ok(Batch { items, through: None, more });
        }
        let facts: Vec<GymFact> = rows
            .iter()
            .filter_map(|r| {
                Some(GymFact {
                    seq: r.seq?,
                    id: r.event_id?,
                    kind: r.kind.clone()?,
                    data: r.data.clone()?,
                    created_at: r.created_at?,
                })
            })
            .collect();
        let wanted: Vec<&str> = w.events.split(',').collect();
        let secrets = secrets(w.secret.clone(), w.previous_secret.clone(), w.previous_until);
        let items = facts
            .iter()
            .filter_map(|f| {
                let kind = public_type(&f.kind).filter(|k| wanted.contains(k))?;
                Some(Outgoing {
                    source: Source::Fact { seq: f.seq, event_id: f.id },
                    kind: kind.to_owned(),
                    url: w.url.clone(),
                    body: body(w.gym_id, f, kind),
                    attempts: 0,
                    due_at: now,
                    secrets: secrets.clone(),
                })
            })
            .collect();
        Ok(Batch { items, through: facts.last().map(|f| f.seq), more: facts.len() == limit as usize })
    }

    async fn settle(
        &self,
        webhook: i64,
        token: i64,
        outcomes: &[Outcome],
        cursor: Option<i64>,
        lease_until: Option<OffsetDateTime>,
    ) -> Result<bool> {
        let mut updates: Vec<Vec<Cell>> = Vec::new();
        let mut inserts: Vec<Vec<Cell>> = Vec::new();
        for o in outcomes {
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
            match o.sent.source {
                Source::Row(id) => updates.push(vec![
                    Cell::Int(Some(id)),
                    Cell::Int(Some(i64::from(o.sent.attempts))),
                    Cell::Text(status.as_str()),
                    Cell::Time(next),
                    Cell::Int(code),
                    Cell::Str(error),
                    Cell::Time(delivered_at),
                ]),
                Source::Fact { event_id, .. } => inserts.push(vec![
                    Cell::Int(Some(i64::try_from(inserts.len()).unwrap_or(i64::MAX))),
                    Cell::Int(Some(event_id)),
                    Cell::Str(Some(o.sent.kind.clone())),
                    Cell::Str(Some(o.sent.body.clone())),
                    Cell::Text(status.as_str()),
                    // A row's time of its next attempt; a done one keeps its attempt's time.
                    Cell::Time(Some(next.or(delivered_at).unwrap_or(o.sent.due_at))),
                    Cell::Int(code),
                    Cell::Str(error),
                    Cell::Time(delivered_at),
                    Cell::Time(Some(o.sent.due_at)),
                ]),
            }
        }
        // One transaction: the log, the cursor and the lease move together, and SQLite
        // syncs its log once per settle instead of once per statement (FULL sync).
        let (tx, _writer) = self.write_tx().await?;
        let held = timed("webhooks_settle", async {
            if !updates.is_empty() {
                let columns = [
                    ("i", "BIGINT"),
                    ("a", "INTEGER"),
                    ("s", "TEXT"),
                    ("n", "TIMESTAMPTZ"),
                    ("c", "INTEGER"),
                    ("e", "TEXT"),
                    ("d", "TIMESTAMPTZ"),
                ];
                let (cte, mut values) = rows_cte(self.backend(), "v", &columns, updates, 1);
                // Only a row still as it was sent: a replay meanwhile wins.
                let sql = format!(
                    "WITH {cte} UPDATE webhook_deliveries SET status = v.s, attempts = webhook_deliveries.attempts + 1, \
                     next_attempt_at = COALESCE(v.n, webhook_deliveries.next_attempt_at), last_status = v.c, \
                     last_error = v.e, delivered_at = v.d FROM v WHERE webhook_deliveries.id = v.i \
                     AND webhook_deliveries.webhook_id = ${} AND webhook_deliveries.status = 'pending' \
                     AND webhook_deliveries.attempts = v.a",
                    values.len() + 1
                );
                values.push(webhook.into());
                exec(&tx, &sql, values).await?;
            }
            if !inserts.is_empty() {
                let columns = [
                    ("o", "BIGINT"),
                    ("e", "BIGINT"),
                    ("k", "TEXT"),
                    ("b", "TEXT"),
                    ("s", "TEXT"),
                    ("n", "TIMESTAMPTZ"),
                    ("c", "INTEGER"),
                    ("x", "TEXT"),
                    ("d", "TIMESTAMPTZ"),
                    ("t", "TIMESTAMPTZ"),
                ];
                let (cte, mut values) = rows_cte(self.backend(), "r", &columns, inserts, 1);
                // ORDER BY o: ids follow the feed's order. ON CONFLICT: a drain whose
                // lease ran out sent it too; the log keeps the first.
                let sql = format!(
                    "WITH {cte} INSERT INTO webhook_deliveries (gym_id, webhook_id, event_id, type, body, status, \
                     attempts, next_attempt_at, last_status, last_error, delivered_at, created_at) \
                     SELECT w.gym_id, w.id, r.e, r.k, r.b, r.s, 1, r.n, r.c, r.x, r.d, r.t FROM r \
                     JOIN webhooks w ON w.id = ${} WHERE true ORDER BY r.o \
                     ON CONFLICT (gym_id, webhook_id, event_id) DO NOTHING",
                    values.len() + 1
                );
                values.push(webhook.into());
                exec(&tx, &sql, values).await?;
            }
            let lease = lease_until.map_or_else(|| Value::from(None::<OffsetDateTime>), ts);
            let token_after = if lease_until.is_some() { Value::from(token) } else { Value::from(None::<i64>) };
            let sql = format!(
                "UPDATE webhooks SET lease_until = $1, lease_token = $2, \
                 cursor = CASE WHEN $5 > cursor THEN $5 ELSE cursor END, next_due = ({NEXT_DUE_OF}) \
                 WHERE id = $3 AND lease_token = $4"
            );
            let values = vec![lease, token_after, webhook.into(), token.into(), cursor.unwrap_or(-1).into()];
            exec(&tx, &sql, values).await
        })
        .await?;
        timed("webhooks_settle_commit", tx.commit()).await?;
        Ok(held > 0)
    }
}

/// The time of an endpoint's oldest pending delivery (`webhooks.next_due`), for an
/// `UPDATE webhooks` row.
const NEXT_DUE_OF: &str = "SELECT d.next_attempt_at FROM webhook_deliveries d \
                           WHERE d.webhook_id = webhooks.id AND d.status = 'pending' ORDER BY d.id LIMIT 1";

/// Sets an endpoint's `next_due` from its queue (`$1`: the endpoint).
const NEXT_DUE: &str = "UPDATE webhooks SET next_due = (SELECT d.next_attempt_at FROM webhook_deliveries d \
                        WHERE d.webhook_id = webhooks.id AND d.status = 'pending' ORDER BY d.id LIMIT 1) WHERE id = $1";
