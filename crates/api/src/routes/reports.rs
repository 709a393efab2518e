//! `/reports`: how classes fill and are attended, and a member's weekly habit (see
//! `domain::reports`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use domain::{UserId, policy};

use crate::dto::{
    ClassReportOut, GymHeader, MemberReportOut, PassReportOut, ReportDatesIn, TenantErrors, UserNotFound,
};
use crate::error::ApiError;
use crate::params::{PathId, Query};
use crate::respond::json;
use crate::state::State;
use crate::tenant::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/reports/classes").route(web::get().to(class_report)))
        .service(web::resource("/reports/passes").route(web::get().to(pass_report)))
        .service(web::resource("/reports/members/{id}").route(web::get().to(member_report)));
}

#[utoipa::path(get, path = "/api/v1/reports/classes", tag = "reports", params(GymHeader, ReportDatesIn),
    responses((status = 200, body = [ClassReportOut]), TenantErrors),
    description = "Per class, the sessions held in the dates (UTC; not cancelled, ended), the places offered and \
        taken, attendances and no-shows, and the fill, attendance and no-show rates (admin).")]
async fn class_report(state: State, Tenant(actor): Tenant, q: Query<ReportDatesIn>) -> Result<HttpResponse, ApiError> {
    actor.require(policy::SEE_REPORTS)?;
    let range = q.parse()?.range(state.clock.now().date())?;
    let report = state.reports.classes(&actor, range).await?;
    json(StatusCode::OK, &report.into_iter().map(ClassReportOut::from).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/api/v1/reports/passes", tag = "reports", params(GymHeader, ReportDatesIn),
    responses((status = 200, body = [PassReportOut]), TenantErrors),
    description = "Per plan, the passes sold in the dates (UTC) and the pack credits granted, used, refunded, \
        forfeited (late cancels) and expired in them, from the ledger (admin).")]
async fn pass_report(state: State, Tenant(actor): Tenant, q: Query<ReportDatesIn>) -> Result<HttpResponse, ApiError> {
    actor.require(policy::SEE_REPORTS)?;
    let range = q.parse()?.range(state.clock.now().date())?;
    let report = state.reports.passes(&actor, range).await?;
    json(StatusCode::OK, &report.into_iter().map(PassReportOut::from).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/api/v1/reports/members/{id}", tag = "reports", params(GymHeader, ("id" = i64, Path)),
    responses((status = 200, body = MemberReportOut), TenantErrors, UserNotFound),
    description = "A member's attendance streak in weeks and their last 12 weeks, on the gym's wall clock (staff).")]
async fn member_report(state: State, Tenant(actor): Tenant, id: PathId) -> Result<HttpResponse, ApiError> {
    let member = UserId(id.parse_as(&actor, policy::SEE_MEMBERS)?);
    json(StatusCode::OK, &MemberReportOut::from(state.reports.member(&actor, member).await?))
}
