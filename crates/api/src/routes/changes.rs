//! `/changes`: the gym's replayable change feed (see `domain::changes`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::policy;

use crate::dto::{ChangesIn, ChangesOut, CursorExpired, GymHeader, TenantErrors};
use crate::error::ApiError;
use crate::params::Query;
use crate::respond::json;
use crate::state::State;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/changes").route(web::get().to(changes)));
}

#[utoipa::path(get, path = "/api/v1/changes", tag = "gyms", params(GymHeader, ChangesIn),
    responses((status = 200, body = ChangesOut), TenantErrors, CursorExpired),
    description = "The gym's facts in commit order after the cursor `after` (admin): resume with `next`. \
        Facts are kept OUTBOX_RETENTION_HOURS after delivery (7 days by default); a cursor whose next fact \
        is gone is 410 cursor_expired.")]
async fn changes(state: State, Tenant(actor): Tenant, q: Query<ChangesIn>) -> Result<HttpResponse, ApiError> {
    actor.require(policy::READ_CHANGES)?;
    let q = q.parse()?;
    let page = state.changes.after(&actor, q.after.unwrap_or(0), q.page()?).await?;
    json(StatusCode::OK, &ChangesOut::from(page))
}
