//! Plans (issue 21): what a gym sells.

use domain::DomainError;
use domain::plans::{NewPlan, Plan, PlanKind, PlanPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UtcTime;
use super::users_gyms::{not_null, present};

/// `POST /plans`.
#[derive(Deserialize, ToSchema)]
pub struct PlanIn {
    pub name: String,
    /// `unlimited` (any number of bookings while valid) or `pack` (`credits` bookings).
    pub kind: String,
    /// Required for a pack, refused for an unlimited plan.
    pub credits: Option<i32>,
    /// Days a pass is valid from its start.
    pub valid_days: i32,
    /// Most bookings per ISO week, in the gym's time zone.
    pub weekly_limit: Option<i32>,
    /// Restricts the plan to classes of these categories (compared ignoring case).
    pub categories: Option<Vec<String>>,
}

impl TryFrom<PlanIn> for NewPlan {
    type Error = DomainError;

    fn try_from(p: PlanIn) -> Result<Self, DomainError> {
        Ok(Self {
            name: p.name,
            kind: PlanKind::parse(&p.kind)?,
            credits: p.credits,
            valid_days: p.valid_days,
            weekly_limit: p.weekly_limit,
            categories: p.categories,
        })
    }
}

/// `PATCH /plans/{id}`: every field optional; `null` removes `weekly_limit` and
/// `categories`, and is refused for the others. A plan's kind is fixed; what changes
/// applies to passes sold afterwards.
#[derive(Deserialize, ToSchema)]
pub struct PlanPatchIn {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i32, required = false)]
    pub credits: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i32, required = false)]
    pub valid_days: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub weekly_limit: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub categories: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub active: Option<Option<bool>>,
}

impl TryFrom<PlanPatchIn> for PlanPatch {
    type Error = DomainError;

    fn try_from(p: PlanPatchIn) -> Result<Self, DomainError> {
        Ok(Self {
            name: not_null("name", p.name)?,
            credits: not_null("credits", p.credits)?,
            valid_days: not_null("valid_days", p.valid_days)?,
            weekly_limit: p.weekly_limit,
            categories: p.categories,
            active: not_null("active", p.active)?,
        })
    }
}

/// A plan.
#[derive(Serialize, ToSchema)]
pub struct PlanOut {
    pub id: i64,
    pub gym_id: i64,
    pub name: String,
    pub kind: &'static str,
    /// A pack's credits; `null` for an unlimited plan.
    pub credits: Option<i32>,
    pub valid_days: i32,
    pub weekly_limit: Option<i32>,
    /// `null`: any class.
    pub categories: Option<Vec<String>>,
    /// `false` once retired: no longer sold; passes already sold keep working.
    pub active: bool,
    pub created_at: UtcTime,
}

impl From<Plan> for PlanOut {
    fn from(p: Plan) -> Self {
        Self {
            id: p.id,
            gym_id: p.gym_id.0,
            name: p.name,
            kind: p.kind.as_str(),
            credits: p.credits,
            valid_days: p.valid_days,
            weekly_limit: p.weekly_limit,
            categories: p.categories,
            active: p.active,
            created_at: p.created_at.into(),
        }
    }
}

/// `GET /plans`: `skip` and `limit`, and `retired=true` (staff) to list retired
/// plans beside the ones on sale.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlansQueryIn {
    pub skip: Option<i64>,
    pub limit: Option<i64>,
    pub retired: Option<bool>,
}

impl PlansQueryIn {
    pub fn page(&self) -> Result<domain::Page, DomainError> {
        super::PageIn { skip: self.skip, limit: self.limit }.page()
    }
}
