//! [`PassRepository`] on SQL: passes, and the ledger as a chain of entries per
//! pack (see the `passes` migration for how the schema keeps it exact). A pack's
//! credits left are its last entry's balance, read with the pass.

use async_trait::async_trait;
use domain::passes::{
    BookingEntry, Cause, CreditAsk, CreditEntry, EntryKind, NewEntry, NewPass, Pass, PassRepository, Usable,
};
use domain::payments::{PaymentRepository, PaymentSecrets};
use domain::plans::PlanKind;
use domain::tx::Tx;
use domain::{DomainError, GymId, Page, Result, SessionId, UserId};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryResult, Value};
use time::OffsetDateTime;

use super::outbox::txn;
use super::{Cell, Db, PageValues, all, exec, gym_time_zone, one, rows_cte, timed, ts};

/// A pass's columns with its credits left, from `passes p`.
macro_rules! pass_fields {
    () => {
        "p.id, p.gym_id, p.member_id, p.plan_id, p.kind, p.credits_total, \
         (SELECT e.balance FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id \
          ORDER BY e.seq DESC LIMIT 1) AS credits_left, p.starts_at, p.expires_at, p.cancelled_at, p.frozen_from, \
         p.frozen_until, p.created_at, p.weekly_limit, p.categories"
    };
}

/// A pass with its credits left.
const PASS_SELECT: &str = concat!("SELECT ", pass_fields!(), " FROM passes p");

#[derive(FromQueryResult)]
struct PassRow {
    id: i64,
    gym_id: i64,
    member_id: i64,
    plan_id: i64,
    kind: String,
    credits_total: Option<i32>,
    credits_left: Option<i32>,
    starts_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    cancelled_at: Option<OffsetDateTime>,
    frozen_from: Option<OffsetDateTime>,
    frozen_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    weekly_limit: Option<i32>,
    categories: Option<String>,
}

/// A pass a booking may use, with what the booking's rules read beside it.
struct UsableRow {
    pass: PassRow,
    i: i64,
    week_uses: i64,
    category: Option<String>,
}

impl FromQueryResult for UsableRow {
    fn from_query_result(r: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            pass: PassRow::from_query_result(r, pre)?,
            i: r.try_get(pre, "i")?,
            week_uses: r.try_get(pre, "week_uses")?,
            category: r.try_get(pre, "category")?,
        })
    }
}

#[derive(FromQueryResult)]
struct AppendedRow {
    gym_id: i64,
    pass_id: i64,
}

#[derive(FromQueryResult)]
struct UsedRow {
    pass_id: i64,
    member_id: i64,
}

#[derive(FromQueryResult)]
struct DueRow {
    gym_id: i64,
    member_id: i64,
    id: i64,
}

impl TryFrom<PassRow> for Pass {
    type Error = DomainError;

    fn try_from(r: PassRow) -> Result<Self> {
        let kind = PlanKind::parse(&r.kind)
            .map_err(|_| DomainError::internal(format!("stored pass {} has kind {:?}", r.id, r.kind)))?;
        if kind == PlanKind::Pack && r.credits_left.is_none() {
            return Err(DomainError::internal(format!("stored pack {} has no grant", r.id)));
        }
        let categories = r
            .categories
            .as_deref()
            .map(serde_json::from_str::<Vec<String>>)
            .transpose()
            .map_err(|_| DomainError::internal(format!("stored pass {} has bad categories", r.id)))?;
        Ok(Pass {
            id: r.id,
            gym_id: GymId(r.gym_id),
            member_id: UserId(r.member_id),
            plan_id: r.plan_id,
            kind,
            credits_total: r.credits_total,
            credits_left: r.credits_left.filter(|_| kind == PlanKind::Pack),
            starts_at: r.starts_at,
            expires_at: r.expires_at,
            cancelled_at: r.cancelled_at,
            frozen: r.frozen_from.zip(r.frozen_until),
            created_at: r.created_at,
            weekly_limit: r.weekly_limit,
            categories,
        })
    }
}

#[derive(FromQueryResult)]
struct EntryRow {
    pass_id: i64,
    seq: i32,
    kind: String,
    credits: i32,
    balance: i32,
    participation_id: Option<i64>,
    reason: Option<String>,
    actor_id: Option<i64>,
    cause: String,
    at: OffsetDateTime,
}

impl TryFrom<EntryRow> for CreditEntry {
    type Error = DomainError;

    fn try_from(r: EntryRow) -> Result<Self> {
        let corrupt = || DomainError::internal(format!("stored entry {}/{} is not known", r.pass_id, r.seq));
        Ok(CreditEntry {
            pass_id: r.pass_id,
            seq: r.seq,
            balance: r.balance,
            movement: NewEntry {
                kind: EntryKind::parse(&r.kind).ok_or_else(corrupt)?,
                credits: r.credits,
                participation_id: r.participation_id,
                reason: r.reason.clone(),
                actor_id: r.actor_id.map(UserId),
                cause: Cause::parse(&r.cause).ok_or_else(corrupt)?,
                at: r.at,
            },
        })
    }
}

#[derive(FromQueryResult)]
struct IdRow {
    id: i64,
}

/// The pass a payment event granted in the gym.
async fn by_event(c: &impl ConnectionTrait, gym: GymId, event: &str) -> Result<Option<Pass>> {
    let sql = format!("{PASS_SELECT} WHERE p.gym_id = $1 AND p.payment_event_id = $2");
    timed("pass_by_event", one::<PassRow>(c, &sql, vec![gym.0.into(), event.into()]))
        .await?
        .map(Pass::try_from)
        .transpose()
}

#[async_trait]
impl PassRepository for Db {
    async fn gym_zone(&self, gym: GymId) -> Result<Option<String>> {
        gym_time_zone(&self.conn, gym).await
    }

    async fn sell(&self, tx: &mut Tx, gym: GymId, p: &NewPass) -> Result<Option<(Pass, bool)>> {
        let tx = txn(tx)?;
        // A payment event already granted conflicts on (gym, event): the first pass
        // is answered instead. On PostgreSQL a racer with the same event waits for
        // the first one's commit, then finds its pass by the next statement.
        let sql = "INSERT INTO passes (gym_id, member_id, plan_id, kind, credits_total, starts_at, expires_at, \
                   created_at, payment_event_id, weekly_limit, categories) \
                   SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
                   WHERE EXISTS (SELECT 1 FROM memberships WHERE gym_id = $1 AND user_id = $2) \
                   ON CONFLICT (gym_id, payment_event_id) DO NOTHING RETURNING id";
        let values = vec![
            gym.0.into(),
            p.member_id.0.into(),
            p.plan.id.into(),
            p.plan.kind.as_str().into(),
            p.plan.credits.into(),
            ts(p.starts_at),
            ts(p.expires_at),
            ts(p.at),
            p.payment_event_id.clone().into(),
            p.plan.weekly_limit.into(),
            Value::from(p.plan.categories.as_ref().map(|c| serde_json::Value::from(c.clone()).to_string())),
        ];
        let Some(id) = timed("pass_sell", one::<IdRow>(tx, sql, values)).await? else {
            let Some(event) = &p.payment_event_id else { return Ok(None) };
            return Ok(by_event(tx, gym, event).await?.map(|pass| (pass, false)));
        };
        if let Some(credits) = p.plan.credits {
            let sql = "INSERT INTO credit_entries (gym_id, pass_id, seq, kind, credits, balance, actor_id, cause, at) \
                       VALUES ($1, $2, 1, 'grant', $3, $3, $4, $5, $6)";
            let values = vec![
                gym.0.into(),
                id.id.into(),
                credits.into(),
                Value::from(p.actor_id.map(|u| u.0)),
                p.cause.as_str().into(),
                ts(p.at),
            ];
            timed("credit_grant", exec(tx, sql, values)).await?;
        }
        let sql = format!("{PASS_SELECT} WHERE p.gym_id = $1 AND p.id = $2");
        let row = timed("pass_get", one::<PassRow>(tx, &sql, vec![gym.0.into(), id.id.into()])).await?;
        row.map(|r| Pass::try_from(r).map(|pass| (pass, true))).transpose()
    }

    async fn pass_by_event(&self, gym: GymId, event: &str) -> Result<Option<Pass>> {
        by_event(&self.conn, gym, event).await
    }

    async fn is_member(&self, gym: GymId, user: UserId) -> Result<bool> {
        let sql = "SELECT user_id AS id FROM memberships WHERE gym_id = $1 AND user_id = $2";
        Ok(timed("membership_exists", one::<IdRow>(&self.conn, sql, vec![gym.0.into(), user.0.into()]))
            .await?
            .is_some())
    }

    async fn passes(&self, gym: GymId, member: UserId, page: Page) -> Result<Vec<Pass>> {
        let sql =
            format!("{PASS_SELECT} WHERE p.gym_id = $1 AND p.member_id = $2 ORDER BY p.id DESC LIMIT $3 OFFSET $4");
        let values = vec![gym.0.into(), member.0.into(), page.limit_value(), page.skip_value()];
        let rows = self.lagging("passes_list", |c| Box::pin(all::<PassRow>(c, &sql, values.clone()))).await?;
        rows.into_iter().map(Pass::try_from).collect()
    }

    async fn lock_pass(&self, tx: &mut Tx, gym: GymId, member: UserId, id: i64) -> Result<Option<Pass>> {
        let tx = txn(tx)?;
        let values = vec![gym.0.into(), member.0.into(), id.into()];
        // The lock first, the balance by the next statement: a statement that waited
        // for the lock reads the rest of the database as it was when it began (read
        // committed), so a balance read with the lock would miss the entries of the
        // writer it waited for. SQLite's write transaction holds the only writer.
        if self.backend() == DbBackend::Postgres {
            let sql = "SELECT id FROM passes WHERE gym_id = $1 AND member_id = $2 AND id = $3 FOR NO KEY UPDATE";
            if timed("pass_lock", one::<IdRow>(tx, sql, values.clone())).await?.is_none() {
                return Ok(None);
            }
        }
        let sql = format!("{PASS_SELECT} WHERE p.gym_id = $1 AND p.member_id = $2 AND p.id = $3");
        let row = timed("pass_get", one::<PassRow>(tx, &sql, values)).await?;
        row.map(Pass::try_from).transpose()
    }

    async fn cancel_pass(&self, tx: &mut Tx, gym: GymId, id: i64, at: OffsetDateTime) -> Result<()> {
        let sql = "UPDATE passes SET cancelled_at = $3 WHERE gym_id = $1 AND id = $2 AND cancelled_at IS NULL";
        timed("pass_cancel", exec(txn(tx)?, sql, vec![gym.0.into(), id.into(), ts(at)])).await.map(drop)
    }

    async fn freeze_pass(
        &self,
        tx: &mut Tx,
        gym: GymId,
        id: i64,
        from: OffsetDateTime,
        until: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let sql =
            "UPDATE passes SET frozen_from = $3, frozen_until = $4, expires_at = $5 WHERE gym_id = $1 AND id = $2";
        let values = vec![gym.0.into(), id.into(), ts(from), ts(until), ts(expires_at)];
        timed("pass_freeze", exec(txn(tx)?, sql, values)).await.map(drop)
    }

    async fn append(&self, tx: &mut Tx, gym: GymId, pass: i64, e: &NewEntry) -> Result<()> {
        // The next link from the last one, in one statement: a writer that extended
        // the chain meanwhile makes this one's (pass, seq) a duplicate, and a
        // balance below zero breaks a CHECK; either way nothing is appended.
        let sql = "INSERT INTO credit_entries (gym_id, pass_id, seq, prev_seq, prev_balance, kind, credits, balance, \
                   participation_id, reason, actor_id, cause, at) \
                   SELECT gym_id, pass_id, seq + 1, seq, balance, $3, $4, balance + $4, $5, $6, $7, $8, $9 \
                   FROM credit_entries WHERE gym_id = $1 AND pass_id = $2 ORDER BY seq DESC LIMIT 1";
        let values = vec![
            gym.0.into(),
            pass.into(),
            e.kind.as_str().into(),
            e.credits.into(),
            e.participation_id.into(),
            e.reason.clone().into(),
            Value::from(e.actor_id.map(|u| u.0)),
            e.cause.as_str().into(),
            ts(e.at),
        ];
        match timed("credit_append", exec(txn(tx)?, sql, values)).await? {
            1 => Ok(()),
            _ => Err(DomainError::internal(format!("pass {pass} has no ledger to append to"))),
        }
    }

    async fn ledger(&self, gym: GymId, member: UserId, page: Page) -> Result<Vec<CreditEntry>> {
        let sql = "SELECT e.pass_id, e.seq, e.kind, e.credits, e.balance, e.participation_id, e.reason, e.actor_id, \
                   e.cause, e.at FROM credit_entries e JOIN passes p ON p.gym_id = e.gym_id AND p.id = e.pass_id \
                   WHERE p.gym_id = $1 AND p.member_id = $2 \
                   ORDER BY e.at DESC, e.pass_id DESC, e.seq DESC LIMIT $3 OFFSET $4";
        let values = vec![gym.0.into(), member.0.into(), page.limit_value(), page.skip_value()];
        let rows = self.lagging("ledger_list", |c| Box::pin(all::<EntryRow>(c, sql, values.clone()))).await?;
        rows.into_iter().map(CreditEntry::try_from).collect()
    }

    async fn lock_usable(&self, tx: &mut Tx, asks: &[CreditAsk], also: &[(GymId, i64)]) -> Result<Vec<Usable>> {
        let backend = self.backend();
        let tx = txn(tx)?;
        let columns = [
            ("i", "BIGINT"),
            ("g", "BIGINT"),
            ("m", "BIGINT"),
            ("s", "BIGINT"),
            ("st", "TIMESTAMPTZ"),
            ("wf", "TIMESTAMPTZ"),
            ("wu", "TIMESTAMPTZ"),
        ];
        let cells = || -> Vec<Vec<Cell>> {
            asks.iter()
                .zip(0_i64..)
                .map(|(a, i)| {
                    vec![
                        Cell::Int(Some(i)),
                        Cell::Int(Some(a.gym.0)),
                        Cell::Int(Some(a.member.0)),
                        Cell::Int(Some(a.session.0)),
                        Cell::Time(Some(a.start)),
                        Cell::Time(Some(a.week.0)),
                        Cell::Time(Some(a.week.1)),
                    ]
                })
                .collect()
        };
        // Usable at the ask's start: not ended, started, not expired (the rest of the
        // rules are the domain's).
        let usable = "p.gym_id = a.g AND p.member_id = a.m AND p.cancelled_at IS NULL \
                      AND p.starts_at <= a.st AND p.expires_at > a.st";
        if backend == DbBackend::Postgres {
            // The locks first, every pass of the asks and `also` in one sorted
            // statement; the balances and uses by the next (see `lock_pass`).
            let (asks_cte, mut values) = rows_cte(backend, "a", &columns, cells(), 1);
            let keys = also.iter().map(|(g, p)| vec![Cell::Int(Some(g.0)), Cell::Int(Some(*p))]).collect();
            let (keys_cte, more) = rows_cte(backend, "k", &[("g", "BIGINT"), ("p", "BIGINT")], keys, 2);
            values.extend(more);
            // The keys first (each ask's passes by the member's index, and `also`), then
            // the rows by their primary key: an `OR` of the two in one `WHERE` would
            // scan every pass.
            let lock = format!(
                "WITH {asks_cte}, {keys_cte}, \
                 wanted AS (SELECT p.gym_id AS g, p.id AS id FROM a JOIN passes p ON {usable} \
                            UNION SELECT k.g, k.p FROM k) \
                 SELECT p.id FROM wanted w JOIN passes p ON p.gym_id = w.g AND p.id = w.id \
                 ORDER BY p.gym_id, p.id FOR NO KEY UPDATE OF p"
            );
            timed("passes_lock", all::<IdRow>(tx, &lock, values)).await?;
        }
        let (asks_cte, values) = rows_cte(backend, "a", &columns, cells(), 1);
        // The week's uses and the class's category only for a pass they can refuse
        // (a weekly limit, categories): the count probes the pass's bookings for each
        // session of the week, the most of this statement's work.
        let sql = format!(
            "WITH {asks_cte} SELECT a.i, {fields}, \
             CASE WHEN p.weekly_limit IS NULL THEN 0 ELSE \
             (SELECT COUNT(*) FROM participations q JOIN sessions w ON w.gym_id = q.gym_id AND w.id = q.session_id \
              WHERE q.gym_id = p.gym_id AND q.pass_id = p.id \
              AND q.status IN ('registered', 'attended', 'no_show', 'late_cancelled') \
              AND w.start_time >= a.wf AND w.start_time < a.wu) END AS week_uses, \
             CASE WHEN p.categories IS NULL THEN NULL ELSE \
             (SELECT c.category FROM sessions x JOIN classes c ON c.gym_id = x.gym_id AND c.id = x.class_id \
              WHERE x.gym_id = a.g AND x.id = a.s) END AS category \
             FROM a JOIN passes p ON {usable} ORDER BY a.i, p.id",
            fields = pass_fields!(),
        );
        let rows = timed("passes_usable", all::<UsableRow>(tx, &sql, values)).await?;
        rows.into_iter()
            .map(|r| {
                Ok(Usable {
                    ask: usize::try_from(r.i).map_err(DomainError::internal)?,
                    pass: Pass::try_from(r.pass)?,
                    week_uses: r.week_uses,
                    category: r.category,
                })
            })
            .collect()
    }

    async fn lock_passes(&self, tx: &mut Tx, passes: &[(GymId, i64)]) -> Result<()> {
        if passes.is_empty() || self.backend() != DbBackend::Postgres {
            return Ok(());
        }
        let backend = self.backend();
        let keys = passes.iter().map(|(g, p)| vec![Cell::Int(Some(g.0)), Cell::Int(Some(*p))]).collect();
        let (cte, values) = rows_cte(backend, "k", &[("g", "BIGINT"), ("p", "BIGINT")], keys, 1);
        let sql = format!(
            "WITH {cte} SELECT p.id FROM k JOIN passes p ON p.gym_id = k.g AND p.id = k.p \
             ORDER BY p.gym_id, p.id FOR NO KEY UPDATE OF p"
        );
        timed("passes_lock", all::<IdRow>(txn(tx)?, &sql, values)).await.map(drop)
    }

    async fn append_for_bookings(&self, tx: &mut Tx, rows: &[BookingEntry]) -> Result<Vec<(GymId, i64)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let columns = [
            ("g", "BIGINT"),
            ("pass", "BIGINT"),
            ("s", "BIGINT"),
            ("m", "BIGINT"),
            ("kind", "TEXT"),
            ("credits", "INTEGER"),
            ("actor", "BIGINT"),
            ("cause", "TEXT"),
            ("at", "TIMESTAMPTZ"),
        ];
        let cells = rows
            .iter()
            .map(|r| {
                vec![
                    Cell::Int(Some(r.gym.0)),
                    Cell::Int(Some(r.pass)),
                    Cell::Int(Some(r.session.0)),
                    Cell::Int(Some(r.member.0)),
                    Cell::Text(r.entry.kind.as_str()),
                    Cell::Int(Some(i64::from(r.entry.credits))),
                    Cell::Int(r.entry.actor_id.map(|u| u.0)),
                    Cell::Text(r.entry.cause.as_str()),
                    Cell::Time(Some(r.entry.at)),
                ]
            })
            .collect();
        let (cte, values) = rows_cte(self.backend(), "r", &columns, cells, 1);
        // Each row's next link from its pack's last one, naming the member's current
        // booking of the session; a pass without a chain (unlimited) appends nothing.
        let sql = format!(
            "WITH {cte} INSERT INTO credit_entries (gym_id, pass_id, seq, prev_seq, prev_balance, kind, credits, \
             balance, participation_id, reason, actor_id, cause, at, credit_no) \
             SELECT e.gym_id, e.pass_id, e.seq + 1, e.seq, e.balance, r.kind, r.credits, e.balance + r.credits, \
             q.id, NULL, r.actor, r.cause, r.at, q.credit_no \
             FROM r JOIN credit_entries e ON e.gym_id = r.g AND e.pass_id = r.pass \
             AND e.seq = (SELECT MAX(x.seq) FROM credit_entries x WHERE x.gym_id = r.g AND x.pass_id = r.pass) \
             JOIN participations q ON q.gym_id = r.g AND q.session_id = r.s AND q.member_id = r.m \
             RETURNING gym_id, pass_id"
        );
        let appended = timed("credit_append_bookings", all::<AppendedRow>(txn(tx)?, &sql, values)).await?;
        Ok(appended.into_iter().map(|r| (GymId(r.gym_id), r.pass_id)).collect())
    }

    async fn passes_used_in(&self, tx: &mut Tx, gym: GymId, session: SessionId) -> Result<Vec<(i64, UserId)>> {
        let sql = "SELECT pass_id, member_id FROM participations WHERE gym_id = $1 AND session_id = $2 \
                   AND status IN ('registered', 'attended') AND pass_id IS NOT NULL ORDER BY pass_id";
        let rows = timed("passes_used_in", all::<UsedRow>(txn(tx)?, sql, vec![gym.0.into(), session.0.into()])).await?;
        Ok(rows.into_iter().map(|r| (r.pass_id, UserId(r.member_id))).collect())
    }

    async fn expired_with_credits(&self, now: OffsetDateTime, limit: u64) -> Result<Vec<(GymId, UserId, i64)>> {
        let sql = "SELECT p.gym_id, p.member_id, p.id FROM passes p \
                   WHERE p.expires_at <= $1 AND p.cancelled_at IS NULL AND p.kind = 'pack' \
                   AND (SELECT e.balance FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id \
                        ORDER BY e.seq DESC LIMIT 1) > 0 \
                   ORDER BY p.expires_at, p.gym_id, p.id LIMIT $2";
        let values = vec![ts(now), i64::try_from(limit).unwrap_or(i64::MAX).into()];
        let rows = timed("passes_expired_due", all::<DueRow>(&self.conn, sql, values)).await?;
        Ok(rows.into_iter().map(|r| (GymId(r.gym_id), UserId(r.member_id), r.id)).collect())
    }
}

#[derive(FromQueryResult)]
struct SecretsRow {
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<OffsetDateTime>,
}

#[async_trait]
impl PaymentRepository for Db {
    async fn payment_secrets(&self, gym: GymId) -> Result<Option<PaymentSecrets>> {
        let sql = "SELECT secret, previous_secret, previous_until FROM payment_secrets WHERE gym_id = $1";
        let row = timed("payment_secrets", one::<SecretsRow>(&self.conn, sql, vec![gym.0.into()])).await?;
        Ok(row.map(|r| PaymentSecrets { secret: r.secret, previous: r.previous_secret.zip(r.previous_until) }))
    }

    async fn rotate_payment_secret(
        &self,
        tx: &mut Tx,
        gym: GymId,
        secret: &str,
        now: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<()> {
        // The replaced secret keeps signing until `previous_until`.
        let sql = "INSERT INTO payment_secrets (gym_id, secret, created_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (gym_id) DO UPDATE SET previous_secret = payment_secrets.secret, \
                   previous_until = $4, secret = excluded.secret, created_at = excluded.created_at";
        let values = vec![gym.0.into(), secret.into(), ts(now), ts(previous_until)];
        timed("payment_rotate", exec(txn(tx)?, sql, values)).await.map(drop)
    }
}
