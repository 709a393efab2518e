//! [`PassRepository`] on SQL: passes, and the ledger as a chain of entries per
//! pack (see the `passes` migration for how the schema keeps it exact). A pack's
//! credits left are its last entry's balance, read with the pass.

use async_trait::async_trait;
use domain::passes::{Cause, CreditEntry, EntryKind, NewEntry, NewPass, Pass, PassRepository};
use domain::payments::{PaymentRepository, PaymentSecrets};
use domain::plans::PlanKind;
use domain::tx::Tx;
use domain::{DomainError, GymId, Page, Result, UserId};
use sea_orm::{DbBackend, FromQueryResult, Value};
use time::OffsetDateTime;

use super::outbox::txn;
use super::{Db, PageValues, all, exec, gym_time_zone, one, timed, ts};

/// A pass with its credits left, from `passes p`.
const PASS_SELECT: &str = "SELECT p.id, p.gym_id, p.member_id, p.plan_id, p.kind, p.credits_total, \
    (SELECT e.balance FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id \
     ORDER BY e.seq DESC LIMIT 1) AS credits_left, p.starts_at, p.expires_at, p.cancelled_at, p.frozen_from, \
    p.frozen_until, p.created_at \
    FROM passes p";

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
}

impl TryFrom<PassRow> for Pass {
    type Error = DomainError;

    fn try_from(r: PassRow) -> Result<Self> {
        let kind = PlanKind::parse(&r.kind)
            .map_err(|_| DomainError::internal(format!("stored pass {} has kind {:?}", r.id, r.kind)))?;
        if kind == PlanKind::Pack && r.credits_left.is_none() {
            return Err(DomainError::internal(format!("stored pack {} has no grant", r.id)));
        }
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
                   created_at, payment_event_id) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
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
        ];
        let Some(id) = timed("pass_sell", one::<IdRow>(tx, sql, values)).await? else {
            let Some(event) = &p.payment_event_id else { return Ok(None) };
            let sql = format!("{PASS_SELECT} WHERE p.gym_id = $1 AND p.payment_event_id = $2");
            let row =
                timed("pass_by_event", one::<PassRow>(tx, &sql, vec![gym.0.into(), event.clone().into()])).await?;
            return row.map(|r| Pass::try_from(r).map(|pass| (pass, false))).transpose();
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
        let rows = timed("passes_list", all::<PassRow>(&self.conn, &sql, values)).await?;
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
        let rows = timed("ledger_list", all::<EntryRow>(&self.conn, sql, values)).await?;
        rows.into_iter().map(CreditEntry::try_from).collect()
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
