//! [`PlanRepository`] on SQL. A plan's categories are kept as a JSON array in text,
//! the same on both databases.

use async_trait::async_trait;
use domain::plans::{NewPlan, Plan, PlanKind, PlanPatch, PlanRepository};
use domain::tx::Tx;
use domain::{DomainError, GymId, Page, Result};
use sea_orm::{FromQueryResult, Value};
use time::OffsetDateTime;

use super::outbox::txn;
use super::{Db, PageValues, all, one, timed, ts};

const PLAN_COLS: &str = "id, gym_id, name, kind, credits, valid_days, weekly_limit, categories, active, created_at";

#[derive(FromQueryResult)]
struct PlanRow {
    id: i64,
    gym_id: i64,
    name: String,
    kind: String,
    credits: Option<i32>,
    valid_days: i32,
    weekly_limit: Option<i32>,
    categories: Option<String>,
    active: bool,
    created_at: OffsetDateTime,
}

impl TryFrom<PlanRow> for Plan {
    type Error = DomainError;

    fn try_from(r: PlanRow) -> Result<Self> {
        let corrupt = |what: &str| DomainError::internal(format!("stored plan {} has a bad {what}", r.id));
        let kind = PlanKind::parse(&r.kind).map_err(|_| corrupt("kind"))?;
        let categories = r
            .categories
            .as_deref()
            .map(serde_json::from_str::<Vec<String>>)
            .transpose()
            .map_err(|_| corrupt("categories"))?;
        Ok(Plan {
            id: r.id,
            gym_id: GymId(r.gym_id),
            name: r.name,
            kind,
            credits: r.credits,
            valid_days: r.valid_days,
            weekly_limit: r.weekly_limit,
            categories,
            active: r.active,
            created_at: r.created_at,
        })
    }
}

fn categories_text(c: Option<&Vec<String>>) -> Value {
    Value::from(c.map(|c| serde_json::Value::from(c.clone()).to_string()))
}

#[async_trait]
impl PlanRepository for Db {
    async fn create_plan(&self, tx: &mut Tx, gym: GymId, p: &NewPlan, now: OffsetDateTime) -> Result<Plan> {
        let sql = format!(
            "INSERT INTO plans (gym_id, name, kind, credits, valid_days, weekly_limit, categories, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8) RETURNING {PLAN_COLS}"
        );
        let values = vec![
            gym.0.into(),
            p.name.clone().into(),
            p.kind.as_str().into(),
            p.credits.into(),
            p.valid_days.into(),
            p.weekly_limit.into(),
            categories_text(p.categories.as_ref()),
            ts(now),
        ];
        let row = timed("plan_create", one::<PlanRow>(txn(tx)?, &sql, values)).await?;
        row.ok_or_else(|| DomainError::internal("INSERT … RETURNING gave no plan"))?.try_into()
    }

    async fn plans(&self, gym: GymId, retired: bool, page: Page) -> Result<Vec<Plan>> {
        let sql = format!(
            "SELECT {PLAN_COLS} FROM plans WHERE gym_id = $1 AND (active = TRUE OR $2) ORDER BY id LIMIT $3 OFFSET $4"
        );
        let values = vec![gym.0.into(), retired.into(), page.limit_value(), page.skip_value()];
        let rows = self.lagging("plans_list", |c| Box::pin(all::<PlanRow>(c, &sql, values.clone()))).await?;
        rows.into_iter().map(Plan::try_from).collect()
    }

    async fn plan(&self, gym: GymId, id: i64) -> Result<Option<Plan>> {
        let sql = format!("SELECT {PLAN_COLS} FROM plans WHERE gym_id = $1 AND id = $2");
        let row = timed("plan_get", one::<PlanRow>(&self.conn, &sql, vec![gym.0.into(), id.into()])).await?;
        row.map(Plan::try_from).transpose()
    }

    async fn update_plan(&self, tx: &mut Tx, gym: GymId, id: i64, p: &PlanPatch) -> Result<Option<Plan>> {
        // A flag per clearable field: NULL there means "remove", not "leave as is".
        let sql = format!(
            "UPDATE plans SET name = COALESCE($3, name), credits = COALESCE($4, credits), \
             valid_days = COALESCE($5, valid_days), \
             weekly_limit = CASE WHEN $6 THEN $7 ELSE weekly_limit END, \
             categories = CASE WHEN $8 THEN $9 ELSE categories END, active = COALESCE($10, active) \
             WHERE gym_id = $1 AND id = $2 RETURNING {PLAN_COLS}"
        );
        let values = vec![
            gym.0.into(),
            id.into(),
            p.name.clone().into(),
            p.credits.into(),
            p.valid_days.into(),
            p.weekly_limit.is_some().into(),
            p.weekly_limit.flatten().into(),
            p.categories.is_some().into(),
            categories_text(p.categories.as_ref().and_then(Option::as_ref)),
            p.active.into(),
        ];
        let row = timed("plan_update", one::<PlanRow>(txn(tx)?, &sql, values)).await?;
        row.map(Plan::try_from).transpose()
    }
}
